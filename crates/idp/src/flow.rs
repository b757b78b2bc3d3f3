//! The OpenID Connect flows over stored records: client registration, the authorization
//! endpoint's steps (login, step-up code, consent, code issue), pushed requests, the token
//! endpoint's grants with client authentication and DPoP, userinfo, revocation, introspection
//! and logout.

use crate::store::{self, hex, kind};
use crate::{Idp, IdpError};
use chrono::{DateTime, Duration, Utc};
use dancu_domain::PersonalId;
use dancu_eid::account::Level;
use dancu_eid::history::UsageKind;
use dancu_eid::oidc::OidcError;
use dancu_eid::oidc::authorize::{
    AuthorizationRequest, AuthorizeError, Client, ClientAuth, error_response, success_response,
    validate_authorization_request,
};
use dancu_eid::oidc::claims::{AccessTokenClaims, Amr, TYP_ACCESS_TOKEN, achieved_level};
use dancu_eid::oidc::client_auth::{
    AssertionCheck, hash_client_secret, parse_basic, verify_client_assertion, verify_client_secret,
};
use dancu_eid::oidc::consent::Consent;
use dancu_eid::oidc::dpop::{DpopPolicy, DpopRequest, verify_dpop_proof};
use dancu_eid::oidc::grants::{
    AuthorizationCode, CodeRedemption, Grant, RefreshFamily, RevokedBy, family_of, new_token,
    token_hash,
};
use dancu_eid::oidc::issue::{client_credentials_token, user_tokens};
use dancu_eid::oidc::jws::Jwk;
use dancu_eid::oidc::par::{PAR_LIFETIME, PushedRequest, REQUEST_URI_PREFIX};
use dancu_eid::oidc::session::{AuthRequirements, Interaction, Session, next_interaction};
use dancu_eid::oidc::subject::SubjectType;
use dancu_store::docs::DocWrite;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// How long a pending authorization waits for the user.
pub(crate) const PENDING_LIFETIME: Duration = Duration::minutes(15);

/// What an admin registers.
#[derive(Debug, Clone, Deserialize)]
pub struct ClientRegistration {
    /// Client ID.
    pub id: String,
    /// Name shown on the consent page.
    pub name: String,
    /// Redirect URIs, matched exactly.
    pub redirect_uris: Vec<String>,
    /// `client_secret_basic` (a secret is generated and shown once) or `private_key_jwt`.
    pub token_endpoint_auth_method: String,
    /// The client's public keys, for `private_key_jwt`.
    #[serde(default)]
    pub jwks: Vec<Jwk>,
    /// Authorization requests only through PAR.
    #[serde(default)]
    pub require_par: bool,
    /// Tokens only DPoP-bound.
    #[serde(default)]
    pub require_dpop: bool,
    /// `public` (dancu's own pages) or `pairwise` (default; sector = host of the first redirect
    /// URI).
    #[serde(default)]
    pub subject_type: Option<String>,
    /// Scopes it may ask for; default `openid profile`.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// May use the client-credentials grant.
    #[serde(default)]
    pub machine: bool,
}

/// A registered client and, for `client_secret_basic`, its secret (shown once).
#[derive(Debug, Clone, Serialize)]
pub struct RegisteredClient {
    /// The client as stored (its JSON form leaves out the secret's hash).
    #[serde(serialize_with = "client_view")]
    pub client: Client,
    /// The generated secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

/// A client as shown to admins: the authentication method by name, never the secret's hash.
fn client_view<S: serde::Serializer>(c: &Client, ser: S) -> Result<S::Ok, S::Error> {
    let (method, jwks) = match &c.auth {
        ClientAuth::ClientSecretBasic { .. } => ("client_secret_basic", None),
        ClientAuth::PrivateKeyJwt { jwks } => ("private_key_jwt", Some(jwks)),
    };
    json!({
        "id": c.id,
        "name": c.name,
        "redirect_uris": c.redirect_uris,
        "token_endpoint_auth_method": method,
        "jwks": jwks,
        "require_par": c.require_par,
        "require_dpop": c.require_dpop,
        "subject_type": c.subject_type,
        "scopes": c.allowed_scopes,
        "machine": c.machine,
    })
    .serialize(ser)
}

/// The next thing the authorization endpoint shows or does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeStep {
    /// Send the browser to this URL (the client's redirect URI with a code or an error).
    Redirect(String),
    /// Show an error page; never redirect (unknown client, unregistered redirect URI, ...).
    Error(IdpError),
    /// Show the login page.
    Login {
        /// The pending authorization.
        tx: String,
        /// Who asks.
        client_name: String,
        /// Why the previous attempt failed.
        error: Option<IdpError>,
    },
    /// Show the one-time code page (step-up to level 2).
    Otp {
        /// The pending authorization.
        tx: String,
        /// Where the code went (empty when the code comes from the authenticator app).
        masked_phone: String,
        /// The code is a TOTP code of the holder's authenticator app, not an SMS.
        totp: bool,
        /// Why the previous attempt failed.
        error: Option<IdpError>,
    },
    /// Show the consent page.
    Consent {
        /// The pending authorization.
        tx: String,
        /// Who asks.
        client_name: String,
        /// The claims asked for (scopes).
        claims: Vec<String>,
    },
}

/// A token-endpoint (or PAR, revocation, introspection) request.
#[derive(Debug, Clone)]
pub struct TokenRequest<'a> {
    /// The form parameters.
    pub form: &'a BTreeMap<String, String>,
    /// The `Authorization` header.
    pub authorization: Option<&'a str>,
    /// The `DPoP` header.
    pub dpop: Option<&'a str>,
}

/// Userinfo as JSON or as a signed JWT.
#[derive(Debug, Clone, PartialEq)]
pub enum UserinfoAnswer {
    /// `application/json`.
    Json(Value),
    /// `application/jwt`.
    Jwt(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Pending {
    pub(crate) params: BTreeMap<String, String>,
    via_par: bool,
    pub(crate) authenticated: bool,
    consented: bool,
    pub(crate) person: Option<PersonalId>,
    otp_id: Option<String>,
    /// The step-up asks for a code of the holder's authenticator app instead of an SMS.
    #[serde(default)]
    totp: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SessionRec {
    pub(crate) person: PersonalId,
    /// The parent or guardian acting for `person` (a minor), who authenticated.
    #[serde(default)]
    pub(crate) actor: Option<PersonalId>,
    pub(crate) amr: Vec<Amr>,
    pub(crate) auth_time: DateTime<Utc>,
    pub(crate) expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CodeRec {
    code: AuthorizationCode,
    #[serde(default)]
    family: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct AccessRec {
    grant_id: Option<String>,
    person: Option<PersonalId>,
    client_id: String,
    revoked: bool,
}

fn session_key(cookie: &str) -> String {
    hex(&token_hash(cookie))
}

/// Scopes that name claims (consent is asked for these).
fn claim_scopes(scopes: &[String]) -> Vec<String> {
    scopes
        .iter()
        .filter(|s| !matches!(s.as_str(), "openid" | "offline_access"))
        .cloned()
        .collect()
}

/// Percent-encodes a query component (RFC 3986 unreserved characters kept).
pub(crate) fn pct(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn with_query(uri: &str, pairs: &[(&str, String)]) -> String {
    let mut out = uri.to_owned();
    let mut sep = if uri.contains('?') { '&' } else { '?' };
    for (k, v) in pairs {
        out.push(sep);
        out.push_str(k);
        out.push('=');
        out.push_str(&pct(v));
        sep = '&';
    }
    out
}

/// Decodes base64url without padding.
fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// The `iss` of an unverified JWT (to find which client's keys to verify it with).
fn unverified_issuer(jwt: &str) -> Option<String> {
    let payload = jwt.split('.').nth(1)?;
    let v: Value = serde_json::from_slice(&b64url_decode(payload)?).ok()?;
    v.get("iss")?.as_str().map(str::to_owned)
}

fn invalid_token(why: &str) -> IdpError {
    IdpError {
        oauth: "invalid_token",
        ..IdpError::new(
            401,
            "oidc_invalid_token",
            &format!("Mã truy cập không hợp lệ ({why})"),
            &format!("Invalid access token ({why})"),
        )
    }
}

pub(crate) fn tx_unknown() -> IdpError {
    IdpError::new(
        400,
        "oidc_authorization_expired",
        "Phiên đăng nhập đã hết hạn; vui lòng quay lại ứng dụng và thử lại",
        "The login request has expired; go back to the application and try again",
    )
}

impl Idp {
    // ----- clients -------------------------------------------------------------------------

    /// Registers a client; a `client_secret_basic` client gets a generated secret, shown once.
    pub fn register_client(&self, reg: &ClientRegistration) -> Result<RegisteredClient, IdpError> {
        let bad = |en: &str, vi: &str| IdpError::new(422, "oidc_client_invalid", vi, en);
        let id_ok = !reg.id.is_empty()
            && reg.id.len() <= 64
            && reg
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !id_ok {
            return Err(bad(
                "client id: 1 to 64 letters, digits, '-', '_' or '.'",
                "Mã ứng dụng: 1 đến 64 chữ cái, chữ số, '-', '_' hoặc '.'",
            ));
        }
        if reg.name.trim().is_empty() || reg.name.len() > 200 {
            return Err(bad("name required", "Cần tên ứng dụng"));
        }
        let uri_ok = |u: &String| {
            (u.starts_with("https://")
                || u.starts_with("http://127.0.0.1:")
                || u.starts_with("http://localhost:"))
                && !u.contains('#')
                && u.len() <= 500
        };
        if (!reg.machine && reg.redirect_uris.is_empty()) || !reg.redirect_uris.iter().all(uri_ok) {
            return Err(bad(
                "redirect URIs must be https (or http on localhost) without fragment",
                "Địa chỉ chuyển hướng phải là https (hoặc http trên localhost), không có phân đoạn #",
            ));
        }
        let mut secret = None;
        let auth = match reg.token_endpoint_auth_method.as_str() {
            "client_secret_basic" => {
                let s = new_token(&mut *self.rng());
                let hash = hash_client_secret(&s);
                secret = Some(s);
                ClientAuth::ClientSecretBasic {
                    secret_sha256: hash,
                }
            }
            "private_key_jwt" => {
                if reg.jwks.is_empty()
                    || reg
                        .jwks
                        .iter()
                        .any(|k| k.thumbprint().is_err() || k.kty != "EC" || k.d.is_some())
                {
                    return Err(bad(
                        "private_key_jwt needs P-256 public keys in jwks",
                        "private_key_jwt cần khóa công khai P-256 trong jwks",
                    ));
                }
                ClientAuth::PrivateKeyJwt {
                    jwks: reg.jwks.clone(),
                }
            }
            _ => {
                return Err(bad(
                    "token_endpoint_auth_method: client_secret_basic or private_key_jwt",
                    "token_endpoint_auth_method: client_secret_basic hoặc private_key_jwt",
                ));
            }
        };
        let subject_type = match reg.subject_type.as_deref() {
            Some("public") => SubjectType::Public,
            None | Some("pairwise") => {
                let host = reg
                    .redirect_uris
                    .first()
                    .and_then(|u| u.split("://").nth(1))
                    .and_then(|r| r.split(['/', ':']).next())
                    .unwrap_or(&reg.id);
                SubjectType::Pairwise {
                    sector: host.to_owned(),
                }
            }
            Some(_) => {
                return Err(bad(
                    "subject_type: public or pairwise",
                    "subject_type: public hoặc pairwise",
                ));
            }
        };
        let client = Client {
            id: reg.id.clone(),
            name: reg.name.trim().to_owned(),
            redirect_uris: reg.redirect_uris.clone(),
            auth,
            require_par: reg.require_par,
            require_dpop: reg.require_dpop,
            subject_type,
            allowed_scopes: reg
                .scopes
                .clone()
                .unwrap_or_else(|| vec!["openid".into(), "profile".into()]),
            machine: reg.machine,
        };
        match self
            .docs
            .put(kind::CLIENT, &client.id, 0, &crate::to_json(&client)?, None)
        {
            Ok(_) => Ok(RegisteredClient {
                client,
                client_secret: secret,
            }),
            Err(dancu_store::StoreError::Exists(_)) => Err(IdpError::new(
                409,
                "oidc_client_exists",
                "Mã ứng dụng đã được đăng ký",
                "A client with this ID is registered already",
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// A registered client.
    pub fn client(&self, id: &str) -> Result<Option<Client>, IdpError> {
        if id.is_empty() || id.len() > 64 {
            return Ok(None);
        }
        Ok(store::load::<Client>(self.docs.as_ref(), kind::CLIENT, id)?.map(|x| x.0))
    }

    // ----- sessions ------------------------------------------------------------------------

    fn session(&self, cookie: Option<&str>) -> Result<Option<SessionRec>, IdpError> {
        let Some(cookie) = cookie.filter(|c| !c.is_empty() && c.len() < 100) else {
            return Ok(None);
        };
        let now = self.now();
        Ok(
            store::load::<SessionRec>(self.docs.as_ref(), kind::SESSION, &session_key(cookie))?
                .map(|x| x.0)
                .filter(|s| now < s.expires_at),
        )
    }

    pub(crate) fn put_session(
        &self,
        cookie: Option<&str>,
        rec: &SessionRec,
    ) -> Result<(String, DocWrite), IdpError> {
        // A login always starts a fresh session ID (no fixation); an upgrade keeps it.
        let (cookie, version) = match cookie.and_then(|c| {
            self.docs
                .get(kind::SESSION, &session_key(c))
                .ok()
                .flatten()
                .map(|d| (c.to_owned(), d.version))
        }) {
            Some(x) => x,
            None => (new_token(&mut *self.rng()), 0),
        };
        let w = store::put(
            kind::SESSION,
            &session_key(&cookie),
            version,
            rec,
            Some(rec.expires_at),
        )?;
        Ok((cookie, w))
    }

    // ----- authorization endpoint ----------------------------------------------------------

    pub(crate) fn load_pending(&self, tx: &str) -> Result<(Pending, u64), IdpError> {
        if tx.is_empty() || tx.len() > 64 {
            return Err(tx_unknown());
        }
        store::load::<Pending>(self.docs.as_ref(), kind::AUTHZ, tx)?.ok_or_else(tx_unknown)
    }

    fn validate(&self, p: &Pending) -> Result<(Client, AuthorizationRequest), Box<AuthorizeStep>> {
        let client_id = p.params.get("client_id").map(String::as_str).unwrap_or("");
        let client = self
            .client(client_id)
            .map_err(|e| Box::new(AuthorizeStep::Error(e)))?;
        match validate_authorization_request(client.as_ref(), &p.params, p.via_par) {
            Ok(req) => match client {
                Some(c) => Ok((c, req)),
                None => Err(Box::new(AuthorizeStep::Error(
                    OidcError::InvalidClient("unknown client_id").into(),
                ))),
            },
            Err(AuthorizeError::NoRedirect(e)) => Err(Box::new(AuthorizeStep::Error(e.into()))),
            Err(AuthorizeError::Redirect {
                error,
                redirect_uri,
                state,
            }) => Err(Box::new(AuthorizeStep::Redirect(with_query(
                &redirect_uri,
                &error_response(&error, state.as_deref(), &self.cfg.issuer),
            )))),
        }
    }

    /// Starts an authorization request (the GET of `/authorize`), from its query parameters and
    /// the browser's session cookie.
    pub fn authorize(
        &self,
        query: &BTreeMap<String, String>,
        cookie: Option<&str>,
    ) -> AuthorizeStep {
        self.authorize_inner(query, cookie)
            .unwrap_or_else(AuthorizeStep::Error)
    }

    fn authorize_inner(
        &self,
        query: &BTreeMap<String, String>,
        cookie: Option<&str>,
    ) -> Result<AuthorizeStep, IdpError> {
        let now = self.now();
        let mut pending = Pending {
            params: query.clone(),
            via_par: false,
            authenticated: false,
            consented: false,
            person: None,
            otp_id: None,
            totp: false,
        };
        let mut writes = Vec::new();
        if let Some(uri) = query.get("request_uri") {
            let client_id = query.get("client_id").map(String::as_str).unwrap_or("");
            let key = hex(&token_hash(uri));
            let (mut pushed, v) =
                store::load::<PushedRequest>(self.docs.as_ref(), kind::PAR, &key)?
                    .ok_or(OidcError::InvalidRequest("invalid or expired request_uri"))?;
            let params = pushed.take(uri, client_id, now)?.clone();
            pending.params = serde_json::from_value(params)
                .map_err(|_| IdpError::internal("stored pushed request is not a string map"))?;
            pending.via_par = true;
            writes.push(store::put(
                kind::PAR,
                &key,
                v,
                &pushed,
                Some(pushed.expires_at),
            )?);
        }
        if let Err(step) = self.validate(&pending) {
            self.docs.commit_docs(&writes)?;
            return Ok(*step);
        }
        let tx = new_token(&mut *self.rng());
        writes.push(store::put(
            kind::AUTHZ,
            &tx,
            0,
            &pending,
            Some(now + PENDING_LIFETIME),
        )?);
        self.docs.commit_docs(&writes)?;
        self.advance(&tx, cookie)
    }

    /// Decides and carries out the next step of a pending authorization.
    pub(crate) fn advance(
        &self,
        tx: &str,
        cookie: Option<&str>,
    ) -> Result<AuthorizeStep, IdpError> {
        let now = self.now();
        let (mut pending, version) = self.load_pending(tx)?;
        let (client, req) = match self.validate(&pending) {
            Ok(x) => x,
            Err(step) => return Ok(*step),
        };
        let redirect_err = |e: OidcError| {
            AuthorizeStep::Redirect(with_query(
                &req.redirect_uri,
                &error_response(&e, req.state.as_deref(), &self.cfg.issuer),
            ))
        };
        let mut session = self.session(cookie)?;
        if let (Some(s), Some(p)) = (&session, &pending.person)
            && s.person != *p
        {
            session = None;
        }
        let account = match &session {
            Some(s) => self.sync_with_register(&s.person)?,
            None => None,
        };
        if let (Some(a), Some(s)) = (&account, &session) {
            let allowed = match &s.actor {
                None => a.holder_may_authenticate().map_err(IdpError::from),
                // The guardian's right to act is checked again: the child may have turned 14.
                Some(g) => self
                    .check_guardian_acts(g, &s.person.to_string())
                    .map(|_| ()),
            };
            if let Err(e) = allowed {
                return Ok(AuthorizeStep::Error(e));
            }
        }
        let claims = claim_scopes(&req.scopes);
        let consent_remembered = match &session {
            // Nothing but the subject identifier is released: nothing to consent to.
            Some(_) if claims.is_empty() => true,
            Some(s) => store::load::<Consent>(
                self.docs.as_ref(),
                kind::CONSENT,
                &format!("{}/{}", s.person, client.id),
            )?
            .is_some_and(|(c, _)| c.covers(claims.iter().map(String::as_str))),
            None => false,
        };
        let reqs = AuthRequirements {
            acr_values: req.acr_values.clone(),
            max_age: req.max_age,
            prompt: req.prompt.clone(),
            authenticated_in_this_request: pending.authenticated,
            consented_in_this_request: pending.consented,
        };
        let level = account.as_ref().map(|a| a.level);
        let core_session = match (&session, level) {
            (Some(s), Some(l)) => Some(Session {
                level: achieved_level(l, &s.amr),
                auth_time: s.auth_time,
            }),
            _ => None,
        };
        let step =
            match next_interaction(core_session.as_ref(), level, &reqs, consent_remembered, now) {
                Ok(i) => i,
                Err(e) => {
                    self.docs.delete(kind::AUTHZ, tx, version)?;
                    return Ok(redirect_err(e));
                }
            };
        match step {
            Interaction::Login => Ok(AuthorizeStep::Login {
                tx: tx.to_owned(),
                client_name: client.name,
                error: None,
            }),
            Interaction::Consent => Ok(AuthorizeStep::Consent {
                tx: tx.to_owned(),
                client_name: client.name,
                claims,
            }),
            Interaction::StepUp { .. } => {
                let Some(s) = &session else {
                    return Err(tx_unknown());
                };
                let totp = self.has_totp(&s.person)?;
                let masked = if totp {
                    // The holder's authenticator app answers: no text message is sent.
                    pending.otp_id = None;
                    String::new()
                } else {
                    let (otp_id, masked) = self.send_login_code(&s.person)?;
                    pending.otp_id = Some(otp_id);
                    masked
                };
                pending.totp = totp;
                pending.person = Some(s.person);
                self.docs.commit_docs(&[store::put(
                    kind::AUTHZ,
                    tx,
                    version,
                    &pending,
                    Some(now + PENDING_LIFETIME),
                )?])?;
                Ok(AuthorizeStep::Otp {
                    tx: tx.to_owned(),
                    masked_phone: masked,
                    totp,
                    error: None,
                })
            }
            Interaction::Proceed { level } => {
                let Some(s) = session else {
                    return Err(tx_unknown());
                };
                self.issue_code(tx, version, &client, &req, &s, level)
            }
        }
    }

    fn issue_code(
        &self,
        tx: &str,
        version: u64,
        client: &Client,
        req: &AuthorizationRequest,
        s: &SessionRec,
        level: Level,
    ) -> Result<AuthorizeStep, IdpError> {
        let now = self.now();
        let (rec, code) = {
            let mut rng = self.rng();
            let grant = Grant {
                id: new_token(&mut *rng),
                client_id: client.id.clone(),
                person: s.person,
                actor: s.actor,
                scope: req.scopes.join(" "),
                level,
                amr: s.amr.clone(),
                auth_time: s.auth_time,
                dpop_jkt: req.dpop_jkt.clone(),
            };
            AuthorizationCode::issue(
                &mut *rng,
                grant,
                req.redirect_uri.clone(),
                req.code_challenge.clone(),
                req.nonce.clone(),
                now,
            )
        };
        let expires = rec.expires_at;
        let mut usage = Vec::new();
        if let Some(g) = s.actor {
            usage.push(self.usage_write(
                s.person,
                UsageKind::GuardianAction {
                    guardian: g,
                    client_id: client.id.clone(),
                },
            )?);
        }
        let mut writes = vec![
            DocWrite::Delete {
                kind: kind::AUTHZ.to_owned(),
                key: tx.to_owned(),
                expected_version: version,
            },
            store::put(
                kind::CODE,
                &hex(&rec.code_hash),
                0,
                &CodeRec {
                    code: rec,
                    family: None,
                },
                // Kept past its expiry so that a late reuse is still recognised as reuse.
                Some(expires + Duration::hours(1)),
            )?,
        ];
        writes.extend(usage);
        self.docs.commit_docs(&writes)?;
        Ok(AuthorizeStep::Redirect(with_query(
            &req.redirect_uri,
            &success_response(&code, req.state.as_deref(), &self.cfg.issuer),
        )))
    }

    /// The login form of a pending authorization: ID number and passcode, and, for a parent or
    /// guardian acting for a minor, the minor's ID number. On success returns the next step and
    /// the new session cookie.
    pub fn authorize_login(
        &self,
        tx: &str,
        id_number: &str,
        passcode: &str,
        acting_for: Option<&str>,
        source: &str,
    ) -> Result<(AuthorizeStep, Option<String>), IdpError> {
        let (mut pending, version) = self.load_pending(tx)?;
        let client_id = pending.params.get("client_id").cloned();
        let client_name = client_id
            .as_deref()
            .and_then(|c| self.client(c).ok().flatten())
            .map(|c| c.name)
            .unwrap_or_default();
        let login_page = |e: IdpError| AuthorizeStep::Login {
            tx: tx.to_owned(),
            client_name: client_name.clone(),
            error: Some(e),
        };
        let id = match PersonalId::parse(id_number.trim()) {
            Ok(id) => id,
            Err(e) => return Ok((login_page(IdpError::from_problem(422, &e)), None)),
        };
        let outcome = match self.login_passcode(&id, passcode, source, client_id.as_deref()) {
            Ok(o) => o,
            Err(e) if e.status < 500 => return Ok((login_page(e), None)),
            Err(e) => return Err(e),
        };
        let now = self.now();
        let (person, actor) = match acting_for.map(str::trim).filter(|f| !f.is_empty()) {
            None => (outcome.person, None),
            Some(minor) => match self.check_guardian_acts(&outcome.person, minor) {
                Ok(minor) => (minor, Some(outcome.person)),
                Err(e) if e.status < 500 => return Ok((login_page(e), None)),
                Err(e) => return Err(e),
            },
        };
        let rec = SessionRec {
            person,
            actor,
            amr: outcome.amr,
            auth_time: now,
            expires_at: now + self.cfg.session_lifetime,
        };
        let (cookie, w) = self.put_session(None, &rec)?;
        pending.authenticated = true;
        pending.person = Some(person);
        self.docs.commit_docs(&[
            w,
            store::put(
                kind::AUTHZ,
                tx,
                version,
                &pending,
                Some(now + PENDING_LIFETIME),
            )?,
        ])?;
        let step = self.advance(tx, Some(&cookie))?;
        Ok((step, Some(cookie)))
    }

    /// Whether `guardian` may act now for the minor whose ID number is `minor`: the minor's
    /// account names them as guardian, the minor is under 14 and the account is not locked.
    fn check_guardian_acts(
        &self,
        guardian: &PersonalId,
        minor: &str,
    ) -> Result<PersonalId, IdpError> {
        let minor = PersonalId::parse(minor).map_err(|e| IdpError::from_problem(422, &e))?;
        let account = self
            .sync_with_register(&minor)?
            .ok_or(dancu_eid::account::AccountError::NotTheGuardian)?;
        let person = self.person(&minor)?;
        account.guardian_may_act(
            guardian,
            &person.date_of_birth,
            dancu_eid::account::vietnam_date(self.now()),
        )?;
        Ok(minor)
    }

    /// The one-time code form of a step-up.
    pub fn authorize_otp(
        &self,
        tx: &str,
        code: &str,
        cookie: Option<&str>,
        source: &str,
    ) -> Result<AuthorizeStep, IdpError> {
        let (pending, _) = self.load_pending(tx)?;
        let Some(person) = pending.person else {
            return Err(tx_unknown());
        };
        let Some(mut s) = self.session(cookie)?.filter(|s| s.person == person) else {
            return Err(tx_unknown());
        };
        let client_id = pending.params.get("client_id").cloned();
        let (checked, method) = match (&pending.otp_id, pending.totp) {
            (_, true) => (
                self.verify_totp(&person, code, source, client_id.as_deref()),
                Amr::Totp,
            ),
            (Some(otp_id), false) => (
                self.verify_login_code(&person, otp_id, code, source, client_id.as_deref()),
                Amr::Sms,
            ),
            (None, false) => return Err(tx_unknown()),
        };
        if let Err(e) = checked {
            if e.status >= 500 {
                return Err(e);
            }
            let masked = if pending.totp {
                String::new()
            } else {
                self.account(&person)?
                    .map(|a| a.phone.masked())
                    .unwrap_or_default()
            };
            return Ok(AuthorizeStep::Otp {
                tx: tx.to_owned(),
                masked_phone: masked,
                totp: pending.totp,
                error: Some(e),
            });
        }
        if !s.amr.contains(&method) {
            s.amr.push(method);
        }
        s.auth_time = self.now();
        let (_, w) = self.put_session(cookie, &s)?;
        self.docs.commit_docs(&[w])?;
        self.advance(tx, cookie)
    }

    /// The consent form: `allow` records (or widens) the person's consent for the client.
    pub fn authorize_consent(
        &self,
        tx: &str,
        allow: bool,
        cookie: Option<&str>,
    ) -> Result<AuthorizeStep, IdpError> {
        let now = self.now();
        let (mut pending, version) = self.load_pending(tx)?;
        let (client, req) = match self.validate(&pending) {
            Ok(x) => x,
            Err(step) => return Ok(*step),
        };
        let Some(s) = self.session(cookie)? else {
            return Err(tx_unknown());
        };
        if !allow {
            self.docs.commit_docs(&[DocWrite::Delete {
                kind: kind::AUTHZ.to_owned(),
                key: tx.to_owned(),
                expected_version: version,
            }])?;
            let mut q = vec![
                ("error", "access_denied".to_owned()),
                ("error_description", "the user declined".to_owned()),
            ];
            if let Some(st) = &req.state {
                q.push(("state", st.clone()));
            }
            q.push(("iss", self.cfg.issuer.clone()));
            return Ok(AuthorizeStep::Redirect(with_query(&req.redirect_uri, &q)));
        }
        let claims = claim_scopes(&req.scopes);
        let key = format!("{}/{}", s.person, client.id);
        let (consent, cv) = match store::load::<Consent>(self.docs.as_ref(), kind::CONSENT, &key)? {
            Some((mut c, v)) => {
                if c.revoked_at.is_some() {
                    c = Consent::grant(s.person, &client.id, claims.clone(), now);
                } else {
                    c.widen(claims.clone(), now);
                }
                (c, v)
            }
            None => (Consent::grant(s.person, &client.id, claims.clone(), now), 0),
        };
        pending.consented = true;
        self.docs.commit_docs(&[
            store::put(kind::CONSENT, &key, cv, &consent, None)?,
            store::put(
                kind::AUTHZ,
                tx,
                version,
                &pending,
                Some(now + PENDING_LIFETIME),
            )?,
            self.usage_write(
                s.person,
                UsageKind::Consent {
                    client_id: client.id.clone(),
                    claims,
                    given: true,
                },
            )?,
        ])?;
        self.advance(tx, cookie)
    }

    /// The person's consents to clients (given and withdrawn), by client.
    pub fn consents(&self, person: &PersonalId) -> Result<Vec<Consent>, IdpError> {
        self.docs
            .list(kind::CONSENT, &format!("{person}/"), 500)?
            .into_iter()
            .map(|(_, d)| {
                serde_json::from_str(&d.json).map_err(|e| IdpError::internal(&e.to_string()))
            })
            .collect()
    }

    /// Makes sure one of dancu's own web applications (the portals) is registered as a
    /// `client_secret_basic` client with public subjects, exactly these redirect URIs and
    /// scopes, and returns its secret. The secret is made once and kept with the provider's
    /// secrets, so every node of a deployment and every restart share it.
    pub fn first_party_client(
        &self,
        id: &str,
        name: &str,
        redirect_uris: &[String],
        scopes: &[&str],
    ) -> Result<String, IdpError> {
        let secret_name = format!("client_secret/{id}");
        let secret = match self.docs.get(kind::SECRET, &secret_name)? {
            Some(d) => serde_json::from_str::<String>(&d.json)
                .map_err(|e| IdpError::internal(&e.to_string()))?,
            None => {
                let s = new_token(&mut *self.rng());
                match self
                    .docs
                    .put(kind::SECRET, &secret_name, 0, &crate::to_json(&s)?, None)
                {
                    Ok(_) => s,
                    // Another node made it first: use theirs.
                    Err(dancu_store::StoreError::Exists(_)) => {
                        let d = self
                            .docs
                            .get(kind::SECRET, &secret_name)?
                            .ok_or_else(|| IdpError::internal("client secret vanished"))?;
                        serde_json::from_str::<String>(&d.json)
                            .map_err(|e| IdpError::internal(&e.to_string()))?
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        let wanted = Client {
            id: id.to_owned(),
            name: name.to_owned(),
            redirect_uris: redirect_uris.to_vec(),
            auth: ClientAuth::ClientSecretBasic {
                secret_sha256: hash_client_secret(&secret),
            },
            require_par: false,
            require_dpop: false,
            subject_type: SubjectType::Public,
            allowed_scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            machine: false,
        };
        let json = crate::to_json(&wanted)?;
        match self.docs.get(kind::CLIENT, id)? {
            Some(d) if d.json == json => {}
            Some(d) => {
                self.docs.put(kind::CLIENT, id, d.version, &json, None)?;
            }
            None => match self.docs.put(kind::CLIENT, id, 0, &json, None) {
                Ok(_) | Err(dancu_store::StoreError::Exists(_)) => {}
                Err(e) => return Err(e.into()),
            },
        }
        Ok(secret)
    }

    /// Withdraws a person's consent for a client; the next login asks again.
    pub fn revoke_consent(&self, person: &PersonalId, client_id: &str) -> Result<bool, IdpError> {
        let key = format!("{person}/{client_id}");
        let Some((mut c, v)) = store::load::<Consent>(self.docs.as_ref(), kind::CONSENT, &key)?
        else {
            return Ok(false);
        };
        c.revoke(self.now());
        let claims = c.claims.iter().cloned().collect();
        self.docs.commit_docs(&[
            store::put(kind::CONSENT, &key, v, &c, None)?,
            self.usage_write(
                *person,
                UsageKind::Consent {
                    client_id: client_id.to_owned(),
                    claims,
                    given: false,
                },
            )?,
        ])?;
        Ok(true)
    }

    // ----- client authentication and DPoP --------------------------------------------------

    /// Authenticates the client of a back-channel request (`client_secret_basic` or
    /// `private_key_jwt`); `endpoint` is the URL it was sent to (an accepted audience besides
    /// the issuer).
    pub fn authenticate_client(
        &self,
        req: &TokenRequest<'_>,
        endpoint: &str,
    ) -> Result<Client, IdpError> {
        let now = self.now();
        if let Some(basic) = req
            .authorization
            .filter(|a| a.starts_with("Basic ") || a.starts_with("basic "))
        {
            let (id, secret) = parse_basic(basic.trim())?;
            let client = self
                .client(&id)?
                .ok_or(OidcError::InvalidClient("unknown client"))?;
            let ClientAuth::ClientSecretBasic { secret_sha256 } = &client.auth else {
                return Err(OidcError::InvalidClient("client must use private_key_jwt").into());
            };
            verify_client_secret(&secret, secret_sha256)?;
            return Ok(client);
        }
        let Some(assertion) = req.form.get("client_assertion") else {
            return Err(OidcError::InvalidClient("no client authentication").into());
        };
        let id = match req.form.get("client_id") {
            Some(id) => id.clone(),
            None => unverified_issuer(assertion)
                .ok_or(OidcError::InvalidClient("malformed client assertion"))?,
        };
        let client = self
            .client(&id)?
            .ok_or(OidcError::InvalidClient("unknown client"))?;
        let ClientAuth::PrivateKeyJwt { jwks } = &client.auth else {
            return Err(OidcError::InvalidClient("client must use client_secret_basic").into());
        };
        let token_url = self.cfg.endpoint("/token");
        let audiences = [self.cfg.issuer.as_str(), endpoint, token_url.as_str()];
        let check = AssertionCheck {
            client_id: &client.id,
            keys: jwks,
            audiences: &audiences,
            max_lifetime: Duration::minutes(5),
            leeway: Duration::seconds(5),
        };
        let docs = self.docs.clone();
        let cid = client.id.clone();
        verify_client_assertion(
            assertion,
            req.form.get("client_assertion_type").map(String::as_str),
            &check,
            now,
            |jti, until| {
                // A store failure counts as a replay: refuse rather than risk accepting twice.
                !docs
                    .remember_once("oidc_assertion_jti", &format!("{cid}/{jti}"), now, until)
                    .unwrap_or(false)
            },
        )?;
        Ok(client)
    }

    fn dpop_jkt(
        &self,
        proof: Option<&str>,
        method: &str,
        url: &str,
        access_token: Option<&str>,
        expected_jkt: Option<&str>,
    ) -> Result<Option<String>, IdpError> {
        let Some(proof) = proof else {
            return Ok(None);
        };
        let now = self.now();
        let docs = self.docs.clone();
        let p = verify_dpop_proof(
            proof,
            &DpopRequest {
                method,
                url,
                access_token,
                expected_jkt,
                nonce: None,
            },
            now,
            &DpopPolicy::default(),
            |jti, until| {
                !docs
                    .remember_once("oidc_dpop_jti", jti, now, until)
                    .unwrap_or(false)
            },
        )
        .map_err(|e| match e {
            OidcError::Replay => OidcError::InvalidDpopProof("replayed jti"),
            other => other,
        })?;
        Ok(Some(p.jkt))
    }

    // ----- PAR -----------------------------------------------------------------------------

    /// A pushed authorization request (RFC 9126): authenticates the client, binds a DPoP key if
    /// a proof came, validates the parameters now and stores them for a minute.
    pub fn push_authorization(&self, req: &TokenRequest<'_>) -> Result<Value, IdpError> {
        let url = self.cfg.endpoint("/par");
        let client = self.authenticate_client(req, &url)?;
        let now = self.now();
        let mut params: BTreeMap<String, String> = req
            .form
            .iter()
            .filter(|(k, _)| !k.starts_with("client_assertion"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if params.contains_key("request_uri") {
            return Err(OidcError::InvalidRequest(
                "request_uri is not allowed in a pushed request",
            )
            .into());
        }
        params.insert("client_id".into(), client.id.clone());
        if let Some(jkt) = self.dpop_jkt(req.dpop, "POST", &url, None, None)? {
            if params.get("dpop_jkt").is_some_and(|j| *j != jkt) {
                return Err(
                    OidcError::InvalidDpopProof("dpop_jkt differs from the proof's key").into(),
                );
            }
            params.insert("dpop_jkt".into(), jkt);
        }
        match validate_authorization_request(Some(&client), &params, true) {
            Ok(_) => {}
            Err(AuthorizeError::NoRedirect(e)) | Err(AuthorizeError::Redirect { error: e, .. }) => {
                return Err(e.into());
            }
        }
        let value =
            serde_json::to_value(&params).map_err(|e| IdpError::internal(&e.to_string()))?;
        let (rec, uri) =
            PushedRequest::push(&mut *self.rng(), &client.id, value, now, PAR_LIFETIME);
        debug_assert!(uri.starts_with(REQUEST_URI_PREFIX));
        self.docs.commit_docs(&[store::put(
            kind::PAR,
            &hex(&rec.uri_hash),
            0,
            &rec,
            Some(rec.expires_at),
        )?])?;
        Ok(json!({"request_uri": uri, "expires_in": PAR_LIFETIME.num_seconds()}))
    }

    // ----- token endpoint ------------------------------------------------------------------

    /// The token endpoint: `authorization_code`, `refresh_token` and `client_credentials`.
    pub fn token(&self, req: &TokenRequest<'_>) -> Result<Value, IdpError> {
        let url = self.cfg.endpoint("/token");
        let client = self.authenticate_client(req, &url)?;
        let jkt = self.dpop_jkt(req.dpop, "POST", &url, None, None)?;
        if client.require_dpop && jkt.is_none() {
            return Err(
                OidcError::InvalidDpopProof("a DPoP proof is required for this client").into(),
            );
        }
        let result = match req.form.get("grant_type").map(String::as_str) {
            Some("authorization_code") => self.code_grant(&client, req.form, jkt.as_deref()),
            Some("refresh_token") => self.refresh_grant(&client, req.form, jkt.as_deref()),
            Some("client_credentials") => {
                self.client_credentials(&client, req.form, jkt.as_deref())
            }
            _ => Err(IdpError {
                oauth: "unsupported_grant_type",
                ..IdpError::new(
                    400,
                    "oidc_unsupported_grant_type",
                    "Loại cấp quyền không được hỗ trợ",
                    "Unsupported grant_type",
                )
            }),
        };
        // A concurrent request used the same code or refresh token first.
        result.map_err(|e| match e.code {
            "eid_conflict" => IdpError {
                status: 400,
                oauth: "invalid_grant",
                ..e
            },
            _ => e,
        })
    }

    fn revoke_grant_writes(
        &self,
        grant_id: &str,
        family: Option<&str>,
        why: RevokedBy,
    ) -> Result<Vec<DocWrite>, IdpError> {
        let mut writes = Vec::new();
        if self.docs.get(kind::REVOKED_GRANT, grant_id)?.is_none() {
            writes.push(store::put(
                kind::REVOKED_GRANT,
                grant_id,
                0,
                &why,
                Some(self.now() + self.cfg.refresh.absolute + Duration::days(1)),
            )?);
        }
        if let Some(f) = family
            && let Some((mut fam, v)) =
                store::load::<RefreshFamily>(self.docs.as_ref(), kind::REFRESH, f)?
        {
            fam.revoke(why);
            writes.push(store::put(kind::REFRESH, f, v, &fam, Some(fam.expires_at))?);
        }
        Ok(writes)
    }

    /// Whether the person of a grant (and the guardian acting, if any) may still get tokens:
    /// the account follows the register first, so a death or a revoked card ends it.
    fn may_still_act(&self, grant: &Grant) -> Result<(), IdpError> {
        let account = self
            .sync_with_register(&grant.person)?
            .ok_or(dancu_eid::account::AccountError::Locked)?;
        match &grant.actor {
            None => account.ensure_unlocked().map_err(IdpError::from),
            Some(g) => self
                .check_guardian_acts(g, &grant.person.to_string())
                .map(|_| ()),
        }
    }

    fn grant_revoked(&self, grant_id: &str) -> Result<bool, IdpError> {
        Ok(self.docs.get(kind::REVOKED_GRANT, grant_id)?.is_some())
    }

    fn token_response(
        &self,
        client: &Client,
        grant: &Grant,
        nonce: Option<&str>,
        refresh: Option<String>,
        writes: &mut Vec<DocWrite>,
    ) -> Result<Value, IdpError> {
        let now = self.now();
        let keys = self.keys()?;
        let tokens = user_tokens(
            &self.cfg.tokens,
            &keys,
            &self.salt,
            &client.subject_type,
            grant,
            nonce,
            &self.cfg.issuer,
            &mut *self.rng(),
            now,
        )?;
        writes.push(store::put(
            kind::ACCESS,
            &tokens.access_claims.jti,
            0,
            &AccessRec {
                grant_id: Some(grant.id.clone()),
                person: Some(grant.person),
                client_id: client.id.clone(),
                revoked: false,
            },
            DateTime::from_timestamp(tokens.access_claims.exp, 0),
        )?);
        let mut out = json!({
            "access_token": tokens.access_token,
            "token_type": if grant.dpop_jkt.is_some() { "DPoP" } else { "Bearer" },
            "expires_in": self.cfg.tokens.access_token_lifetime.num_seconds(),
            "scope": grant.scope,
        });
        if let Some(id) = tokens.id_token {
            out["id_token"] = id.into();
        }
        if let Some(r) = refresh {
            out["refresh_token"] = r.into();
        }
        Ok(out)
    }

    fn code_grant(
        &self,
        client: &Client,
        form: &BTreeMap<String, String>,
        jkt: Option<&str>,
    ) -> Result<Value, IdpError> {
        let now = self.now();
        let code = form
            .get("code")
            .ok_or(OidcError::InvalidRequest("code is required"))?;
        let key = hex(&token_hash(code));
        let (mut rec, version) = store::load::<CodeRec>(self.docs.as_ref(), kind::CODE, &key)?
            .ok_or(OidcError::InvalidCode)?;
        let redemption = CodeRedemption {
            client_id: &client.id,
            redirect_uri: form.get("redirect_uri").map(String::as_str),
            code_verifier: form.get("code_verifier").map(String::as_str),
            dpop_jkt: jkt,
        };
        let grant = match rec.code.redeem(&redemption, now) {
            Ok(g) => g.clone(),
            Err(OidcError::CodeReused) => {
                // The code came back: revoke everything issued from it (FAPI / RFC 6749 §4.1.2).
                let grant_id = rec.code.grant.id.clone();
                let writes = self.revoke_grant_writes(
                    &grant_id,
                    rec.family.as_deref(),
                    RevokedBy::CodeReuse,
                )?;
                self.docs.commit_docs(&writes)?;
                return Err(OidcError::CodeReused.into());
            }
            Err(e) => {
                // A failed PKCE check burns the code: store its new state.
                self.docs.commit_docs(&[store::put(
                    kind::CODE,
                    &key,
                    version,
                    &rec,
                    Some(rec.code.expires_at + Duration::hours(1)),
                )?])?;
                return Err(e.into());
            }
        };
        let (family, refresh) =
            RefreshFamily::start(&mut *self.rng(), grant.clone(), now, &self.cfg.refresh);
        rec.family = Some(family.id.clone());
        let mut writes = vec![
            store::put(
                kind::CODE,
                &key,
                version,
                &rec,
                Some(rec.code.expires_at + Duration::hours(1)),
            )?,
            store::put(
                kind::REFRESH,
                &family.id,
                0,
                &family,
                Some(family.expires_at),
            )?,
        ];
        let out = self.token_response(
            client,
            &grant,
            rec.code.nonce.as_deref(),
            Some(refresh),
            &mut writes,
        )?;
        self.docs.commit_docs(&writes)?;
        Ok(out)
    }

    fn refresh_grant(
        &self,
        client: &Client,
        form: &BTreeMap<String, String>,
        jkt: Option<&str>,
    ) -> Result<Value, IdpError> {
        let now = self.now();
        let token = form
            .get("refresh_token")
            .ok_or(OidcError::InvalidRequest("refresh_token is required"))?;
        let family_id = family_of(token).ok_or(OidcError::InvalidRefreshToken)?;
        let (mut family, version) =
            store::load::<RefreshFamily>(self.docs.as_ref(), kind::REFRESH, family_id)?
                .ok_or(OidcError::InvalidRefreshToken)?;
        if self.grant_revoked(&family.grant.id)? {
            return Err(OidcError::InvalidRefreshToken.into());
        }
        // A lock set since (death, card revoked, the holder's request) ends the grant.
        if let Err(e) = self.may_still_act(&family.grant) {
            let grant_id = family.grant.id.clone();
            let writes =
                self.revoke_grant_writes(&grant_id, Some(family_id), RevokedBy::Session)?;
            self.docs.commit_docs(&writes)?;
            return Err(IdpError {
                status: 400,
                oauth: "invalid_grant",
                ..e
            });
        }
        let next = match family.rotate(
            &mut *self.rng(),
            token,
            &client.id,
            jkt,
            now,
            &self.cfg.refresh,
        ) {
            Ok(t) => t,
            Err(OidcError::RefreshTokenReused) => {
                let grant_id = family.grant.id.clone();
                let mut writes = vec![store::put(
                    kind::REFRESH,
                    family_id,
                    version,
                    &family,
                    Some(family.expires_at),
                )?];
                writes.extend(self.revoke_grant_writes(&grant_id, None, RevokedBy::Reuse)?);
                self.docs.commit_docs(&writes)?;
                return Err(OidcError::RefreshTokenReused.into());
            }
            Err(e) => return Err(e.into()),
        };
        let mut writes = vec![store::put(
            kind::REFRESH,
            family_id,
            version,
            &family,
            Some(family.expires_at),
        )?];
        let grant = family.grant.clone();
        let out = self.token_response(client, &grant, None, Some(next), &mut writes)?;
        self.docs.commit_docs(&writes)?;
        Ok(out)
    }

    fn client_credentials(
        &self,
        client: &Client,
        form: &BTreeMap<String, String>,
        jkt: Option<&str>,
    ) -> Result<Value, IdpError> {
        if !client.machine {
            return Err(IdpError {
                oauth: "unauthorized_client",
                ..IdpError::new(
                    400,
                    "oidc_unauthorized_client",
                    "Ứng dụng không được phép dùng client_credentials",
                    "This client may not use client_credentials",
                )
            });
        }
        let scope: Vec<&str> = form
            .get("scope")
            .map(|s| s.split(' ').filter(|x| !x.is_empty()).collect())
            .unwrap_or_default();
        if scope
            .iter()
            .any(|s| *s == "openid" || !client.allowed_scopes.iter().any(|a| a == s))
        {
            return Err(IdpError {
                oauth: "invalid_scope",
                ..IdpError::new(
                    400,
                    "oidc_invalid_scope",
                    "Phạm vi không được phép",
                    "Scope not allowed",
                )
            });
        }
        let now = self.now();
        let keys = self.keys()?;
        let (token, claims) = client_credentials_token(
            &self.cfg.tokens,
            &keys,
            &client.id,
            &scope.join(" "),
            &self.cfg.issuer,
            jkt,
            &mut *self.rng(),
            now,
        )?;
        self.docs.commit_docs(&[store::put(
            kind::ACCESS,
            &claims.jti,
            0,
            &AccessRec {
                grant_id: None,
                person: None,
                client_id: client.id.clone(),
                revoked: false,
            },
            DateTime::from_timestamp(claims.exp, 0),
        )?])?;
        Ok(json!({
            "access_token": token,
            "token_type": if jkt.is_some() { "DPoP" } else { "Bearer" },
            "expires_in": self.cfg.tokens.access_token_lifetime.num_seconds(),
            "scope": claims.scope,
        }))
    }

    // ----- access tokens: userinfo, introspection, revocation ------------------------------

    /// Verifies an access token issued here and still in force (signature, expiry, audience,
    /// not revoked, grant not revoked).
    fn active_access(&self, token: &str) -> Result<(AccessTokenClaims, AccessRec, u64), IdpError> {
        let now = self.now();
        let claims: AccessTokenClaims = self
            .keys()?
            .verify(token, TYP_ACCESS_TOKEN, now)
            .map_err(|_| invalid_token("signature, type or expiry"))?;
        if claims.iss != self.cfg.issuer || claims.aud != self.cfg.issuer {
            return Err(invalid_token("issuer or audience"));
        }
        let (rec, v) = store::load::<AccessRec>(self.docs.as_ref(), kind::ACCESS, &claims.jti)?
            .ok_or_else(|| invalid_token("unknown"))?;
        if rec.revoked {
            return Err(invalid_token("revoked"));
        }
        if let Some(g) = &rec.grant_id
            && self.grant_revoked(g)?
        {
            return Err(invalid_token("revoked"));
        }
        Ok((claims, rec, v))
    }

    /// The access token of a resource request (`Authorization: Bearer …`, or `DPoP …` with its
    /// proof for `method` and `url`), checked as [`Self::active_access`] does.
    fn presented_access(
        &self,
        authorization: Option<&str>,
        dpop: Option<&str>,
        method: &str,
        url: &str,
    ) -> Result<(AccessTokenClaims, AccessRec), IdpError> {
        let (scheme, token) = authorization
            .and_then(|a| a.split_once(' '))
            .ok_or_else(|| invalid_token("missing"))?;
        let token = token.trim();
        let (claims, rec, _) = self.active_access(token)?;
        match (&claims.cnf, scheme) {
            (Some(cnf), "DPoP") => {
                if dpop.is_none() {
                    return Err(OidcError::InvalidDpopProof("DPoP proof required").into());
                }
                self.dpop_jkt(dpop, method, url, Some(token), Some(&cnf.jkt))?;
            }
            (Some(_), _) => return Err(invalid_token("DPoP-bound token sent as Bearer")),
            (None, "Bearer") => {}
            (None, _) => return Err(invalid_token("scheme")),
        }
        Ok((claims, rec))
    }

    /// The person an access token presented by the holder is for (the holder's own pages:
    /// usage history, consents). Tokens a guardian obtained for a minor name the minor.
    pub fn holder(
        &self,
        authorization: Option<&str>,
        dpop: Option<&str>,
        method: &str,
        path: &str,
    ) -> Result<PersonalId, IdpError> {
        let (_, rec) =
            self.presented_access(authorization, dpop, method, &self.cfg.endpoint(path))?;
        rec.person.ok_or_else(|| invalid_token("no person"))
    }

    /// Userinfo: the claims of the person the token is for, limited to the consented scopes.
    /// `authorization` is the header (`Bearer …` or `DPoP …`), `url` the URL requested.
    pub fn userinfo(
        &self,
        authorization: Option<&str>,
        dpop: Option<&str>,
        method: &str,
        want_jwt: bool,
    ) -> Result<UserinfoAnswer, IdpError> {
        let url = self.cfg.endpoint("/userinfo");
        let (claims, rec) = self.presented_access(authorization, dpop, method, &url)?;
        let person_id = rec.person.ok_or_else(|| invalid_token("no person"))?;
        let scopes: Vec<String> = claims.scope.split(' ').map(str::to_owned).collect();
        let wanted = claim_scopes(&scopes);
        let consent = store::load::<Consent>(
            self.docs.as_ref(),
            kind::CONSENT,
            &format!("{person_id}/{}", rec.client_id),
        )?;
        if !wanted.is_empty()
            && !consent.is_some_and(|(c, _)| c.covers(wanted.iter().map(String::as_str)))
        {
            return Err(IdpError {
                oauth: "insufficient_scope",
                ..IdpError::new(
                    403,
                    "oidc_consent_withdrawn",
                    "Công dân đã rút lại sự đồng ý chia sẻ thông tin",
                    "The person has withdrawn consent to share these claims",
                )
            });
        }
        let mut out = json!({"sub": claims.sub});
        if wanted.iter().any(|s| s == "profile") {
            let p = self.person(&person_id)?;
            out["name"] = p.name.full().into();
            out["family_name"] = p.name.family.clone().into();
            out["given_name"] = p.name.given.clone().into();
            if !p.name.middle.is_empty() {
                out["middle_name"] = p.name.middle.clone().into();
            }
            out["birthdate"] = p.date_of_birth.to_string().into();
            out["gender"] = match p.sex {
                dancu_domain::person::Sex::Male => "male",
                dancu_domain::person::Sex::Female => "female",
            }
            .into();
        }
        if wanted.iter().any(|s| s == "phone")
            && let Some(a) = self.account(&person_id)?
        {
            out["phone_number"] = a.phone.as_str().into();
            out["phone_number_verified"] = true.into();
        }
        if let Some(act) = &claims.act {
            out["act"] = json!({"sub": act.sub});
        }
        if want_jwt {
            out["iss"] = self.cfg.issuer.clone().into();
            out["aud"] = rec.client_id.clone().into();
            out["iat"] = self.now().timestamp().into();
            out["exp"] = (self.now() + Duration::minutes(5)).timestamp().into();
            return Ok(UserinfoAnswer::Jwt(self.keys()?.sign("JWT", &out)?));
        }
        Ok(UserinfoAnswer::Json(out))
    }

    /// Token introspection (RFC 7662) for an authenticated client: access tokens it was issued
    /// (or any, for a machine client acting as resource server) and refresh tokens.
    pub fn introspect(&self, req: &TokenRequest<'_>) -> Result<Value, IdpError> {
        let client = self.authenticate_client(req, &self.cfg.endpoint("/introspect"))?;
        let token = req.form.get("token").map(String::as_str).unwrap_or("");
        if let Some(f) = family_of(token) {
            let active = match store::load::<RefreshFamily>(self.docs.as_ref(), kind::REFRESH, f)? {
                Some((fam, _)) => {
                    fam.revoked.is_none()
                        && fam.grant.client_id == client.id
                        && fam.current_hash == token_hash(token)
                        && self.now() < fam.idle_expires_at
                        && !self.grant_revoked(&fam.grant.id)?
                }
                None => false,
            };
            return Ok(json!({"active": active, "token_type": "refresh_token"}));
        }
        match self.active_access(token) {
            Ok((c, rec, _)) if rec.client_id == client.id || client.machine => {
                let mut v =
                    serde_json::to_value(&c).map_err(|e| IdpError::internal(&e.to_string()))?;
                v["active"] = true.into();
                v["token_type"] = if c.cnf.is_some() { "DPoP" } else { "Bearer" }.into();
                Ok(v)
            }
            _ => Ok(json!({"active": false})),
        }
    }

    /// Token revocation (RFC 7009): a refresh token revokes its whole grant; an access token
    /// just itself. Unknown tokens are not an error.
    pub fn revoke(&self, req: &TokenRequest<'_>) -> Result<(), IdpError> {
        let client = self.authenticate_client(req, &self.cfg.endpoint("/revoke"))?;
        let token = req.form.get("token").map(String::as_str).unwrap_or("");
        if let Some(f) = family_of(token) {
            if let Some((fam, _)) =
                store::load::<RefreshFamily>(self.docs.as_ref(), kind::REFRESH, f)?
                && fam.grant.client_id == client.id
            {
                let writes =
                    self.revoke_grant_writes(&fam.grant.id, Some(f), RevokedBy::Request)?;
                self.docs.commit_docs(&writes)?;
            }
            return Ok(());
        }
        if let Ok((c, mut rec, v)) = self.active_access(token)
            && rec.client_id == client.id
        {
            rec.revoked = true;
            self.docs.commit_docs(&[store::put(
                kind::ACCESS,
                &c.jti,
                v,
                &rec,
                DateTime::from_timestamp(c.exp, 0),
            )?])?;
        }
        Ok(())
    }

    /// RP-initiated logout: ends the browser session; returns where to send the browser when
    /// `post_logout_redirect_uri` is registered for the client named by `client_id` or by the
    /// `aud` of `id_token_hint`.
    pub fn logout(
        &self,
        cookie: Option<&str>,
        params: &BTreeMap<String, String>,
    ) -> Result<Option<String>, IdpError> {
        if let Some(c) = cookie.filter(|c| !c.is_empty() && c.len() < 100) {
            let key = session_key(c);
            if let Some(d) = self.docs.get(kind::SESSION, &key)? {
                self.docs.delete(kind::SESSION, &key, d.version)?;
            }
        }
        let Some(target) = params.get("post_logout_redirect_uri") else {
            return Ok(None);
        };
        let client_id = params.get("client_id").cloned().or_else(|| {
            let hint = params.get("id_token_hint")?;
            let payload = hint.split('.').nth(1)?;
            let v: Value = serde_json::from_slice(&b64url_decode(payload)?).ok()?;
            v.get("aud")?.as_str().map(str::to_owned)
        });
        let Some(client) = client_id.and_then(|c| self.client(&c).ok().flatten()) else {
            return Ok(None);
        };
        if !client.redirect_uris.iter().any(|u| u == target) {
            return Ok(None);
        }
        let mut q = Vec::new();
        if let Some(s) = params.get("state") {
            q.push(("state", s.clone()));
        }
        Ok(Some(with_query(target, &q)))
    }

    /// The discovery document.
    pub fn discovery(&self) -> Value {
        let e = |p: &str| self.cfg.endpoint(p);
        json!({
            "issuer": self.cfg.issuer,
            "authorization_endpoint": e("/authorize"),
            "pushed_authorization_request_endpoint": e("/par"),
            "token_endpoint": e("/token"),
            "userinfo_endpoint": e("/userinfo"),
            "jwks_uri": e("/jwks"),
            "revocation_endpoint": e("/revoke"),
            "introspection_endpoint": e("/introspect"),
            "end_session_endpoint": e("/logout"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "subject_types_supported": ["public", "pairwise"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "userinfo_signing_alg_values_supported": ["ES256"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic"],
            "token_endpoint_auth_signing_alg_values_supported": ["ES256", "RS256"],
            "code_challenge_methods_supported": ["S256"],
            "dpop_signing_alg_values_supported": ["ES256"],
            "authorization_response_iss_parameter_supported": true,
            "require_pushed_authorization_requests": false,
            "scopes_supported": ["openid", "profile", "phone", "offline_access"],
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "act", "name", "family_name", "middle_name", "given_name", "birthdate", "gender", "phone_number", "phone_number_verified"],
            "acr_values_supported": [dancu_eid::oidc::claims::ACR_LEVEL_1, dancu_eid::oidc::claims::ACR_LEVEL_2],
            "prompt_values_supported": ["none", "login", "consent", "select_account"],
            "claims_parameter_supported": false,
            "request_parameter_supported": false,
            "request_uri_parameter_supported": true,
        })
    }
}
