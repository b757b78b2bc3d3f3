//! Registered clients and the validation of authorization requests: the rules the
//! authorization endpoint applies before any page is shown.
//!
//! Errors come in two kinds, as OAuth requires: [`AuthorizeError::NoRedirect`] when the client or
//! redirect URI cannot be trusted (show an error page, never redirect), and
//! [`AuthorizeError::Redirect`] when the error goes back to the client's redirect URI with
//! `state` and `iss` (RFC 9207).

use super::OidcError;
use super::grants::redirect_uri_registered;
use super::jws::Jwk;
use super::pkce;
use super::session::{Prompt, parse_prompt};
use super::subject::SubjectType;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How a client authenticates at the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum ClientAuth {
    /// `private_key_jwt` with these public keys.
    PrivateKeyJwt {
        /// The client's keys.
        jwks: Vec<Jwk>,
    },
    /// `client_secret_basic`, stored as SHA-256.
    ClientSecretBasic {
        /// SHA-256 of the secret.
        secret_sha256: [u8; 32],
    },
}

/// A registered client (relying party).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    /// Client ID.
    pub id: String,
    /// Display name for the consent page.
    pub name: String,
    /// Registered redirect URIs, matched exactly.
    pub redirect_uris: Vec<String>,
    /// Token-endpoint authentication.
    pub auth: ClientAuth,
    /// Whether authorization requests must come through PAR.
    pub require_par: bool,
    /// Whether tokens must be DPoP-bound.
    pub require_dpop: bool,
    /// How it sees subjects.
    pub subject_type: SubjectType,
    /// Scopes it may ask for.
    pub allowed_scopes: Vec<String>,
    /// Whether it may use the client-credentials grant.
    pub machine: bool,
}

/// A validated authorization request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationRequest {
    /// The client.
    pub client_id: String,
    /// Exact redirect URI.
    pub redirect_uri: String,
    /// Scopes, deduplicated, in request order.
    pub scopes: Vec<String>,
    /// Client state, returned as is.
    pub state: Option<String>,
    /// Nonce for the ID token.
    pub nonce: Option<String>,
    /// PKCE challenge (S256).
    pub code_challenge: String,
    /// `acr_values`.
    pub acr_values: Vec<String>,
    /// `max_age`.
    pub max_age: Option<i64>,
    /// `prompt`.
    pub prompt: Vec<Prompt>,
    /// `dpop_jkt`, binding the code to a DPoP key.
    pub dpop_jkt: Option<String>,
}

/// Why an authorization request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizeError {
    /// Do not redirect: unknown client or unregistered redirect URI.
    #[error("{0}")]
    NoRedirect(OidcError),
    /// Redirect the error to the client.
    #[error("{error}")]
    Redirect {
        /// The error.
        error: OidcError,
        /// Where to.
        redirect_uri: String,
        /// The client's state.
        state: Option<String>,
    },
}

const MAX_PARAM: usize = 2048;

/// Validates authorization parameters for `client` (`None` when the `client_id` is unknown).
/// `via_par` tells whether they came from a pushed request.
pub fn validate_authorization_request(
    client: Option<&Client>,
    params: &BTreeMap<String, String>,
    via_par: bool,
) -> Result<AuthorizationRequest, AuthorizeError> {
    let get = |k: &str| params.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let no_redirect = |e| Err(AuthorizeError::NoRedirect(e));
    let Some(client) = client else {
        return no_redirect(OidcError::InvalidClient("unknown client_id"));
    };
    if params.values().any(|v| v.len() > MAX_PARAM) {
        return no_redirect(OidcError::InvalidRequest("parameter too long"));
    }
    if get("client_id") != Some(client.id.as_str()) {
        return no_redirect(OidcError::InvalidClient("client_id"));
    }
    let redirect_uri = match get("redirect_uri") {
        Some(r) if redirect_uri_registered(&client.redirect_uris, r) => r.to_owned(),
        _ => return no_redirect(OidcError::RedirectUriMismatch),
    };
    let state = get("state").map(str::to_owned);
    let fail = |error| {
        Err(AuthorizeError::Redirect {
            error,
            redirect_uri: redirect_uri.clone(),
            state: state.clone(),
        })
    };
    if client.require_par && !via_par {
        return fail(OidcError::InvalidRequest(
            "this client must use pushed authorization requests",
        ));
    }
    if get("request").is_some() {
        return fail(OidcError::InvalidRequest(
            "request objects are not supported",
        ));
    }
    if get("response_type") != Some("code") {
        return fail(OidcError::InvalidRequest("response_type must be code"));
    }
    if get("response_mode").is_some_and(|m| m != "query") {
        return fail(OidcError::InvalidRequest("response_mode must be query"));
    }
    let Some(challenge) = get("code_challenge") else {
        return fail(OidcError::InvalidRequest("code_challenge is required"));
    };
    if let Err(e) = pkce::check_challenge(challenge, get("code_challenge_method")) {
        return fail(e);
    }
    let mut scopes: Vec<String> = Vec::new();
    for s in get("scope")
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
    {
        if !client.allowed_scopes.iter().any(|a| a == s) {
            return fail(OidcError::InvalidRequest(
                "scope not allowed for this client",
            ));
        }
        if !scopes.iter().any(|x| x == s) {
            scopes.push(s.to_owned());
        }
    }
    let openid = scopes.iter().any(|s| s == "openid");
    let nonce = get("nonce").map(str::to_owned);
    if openid && nonce.is_none() {
        // dancu requires a nonce in every OpenID request, so that ID tokens cannot be replayed
        // into another login.
        return fail(OidcError::InvalidRequest("nonce is required"));
    }
    let max_age = match get("max_age") {
        None => None,
        Some(m) => match m.parse::<i64>() {
            Ok(v) if v >= 0 => Some(v),
            _ => {
                return fail(OidcError::InvalidRequest(
                    "max_age must be a non-negative integer",
                ));
            }
        },
    };
    let prompt = match parse_prompt(get("prompt")) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let dpop_jkt = get("dpop_jkt").map(str::to_owned);
    if client.require_dpop && dpop_jkt.is_none() && !via_par {
        // Without PAR the DPoP key is not known at this point; FAPI 2.0 asks for dpop_jkt here.
        return fail(OidcError::InvalidRequest(
            "dpop_jkt is required for this client",
        ));
    }
    Ok(AuthorizationRequest {
        client_id: client.id.clone(),
        redirect_uri,
        scopes,
        state,
        nonce,
        code_challenge: challenge.to_owned(),
        acr_values: get("acr_values")
            .unwrap_or("")
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        max_age,
        prompt,
        dpop_jkt,
    })
}

/// The query of a successful authorization response: `code`, `state` and `iss` (RFC 9207).
pub fn success_response(
    code: &str,
    state: Option<&str>,
    issuer: &str,
) -> Vec<(&'static str, String)> {
    let mut out = vec![("code", code.to_owned())];
    if let Some(s) = state {
        out.push(("state", s.to_owned()));
    }
    out.push(("iss", issuer.to_owned()));
    out
}

/// The query of an error response: `error`, `error_description`, `state` and `iss`.
pub fn error_response(
    error: &OidcError,
    state: Option<&str>,
    issuer: &str,
) -> Vec<(&'static str, String)> {
    let mut out = vec![
        ("error", error.oauth_error().to_owned()),
        ("error_description", error.to_string()),
    ];
    if let Some(s) = state {
        out.push(("state", s.to_owned()));
    }
    out.push(("iss", issuer.to_owned()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CB: &str = "https://bank.example/cb";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn client() -> Client {
        Client {
            id: "bank".into(),
            name: "Ngân hàng".into(),
            redirect_uris: vec![CB.into()],
            auth: ClientAuth::ClientSecretBasic {
                secret_sha256: [0; 32],
            },
            require_par: false,
            require_dpop: false,
            subject_type: SubjectType::Pairwise {
                sector: "bank.example".into(),
            },
            allowed_scopes: vec!["openid".into(), "profile".into()],
            machine: false,
        }
    }

    fn params(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut p: BTreeMap<String, String> = [
            ("client_id", "bank"),
            ("redirect_uri", CB),
            ("response_type", "code"),
            ("scope", "openid profile"),
            ("state", "st"),
            ("nonce", "n"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in extra {
            if v.is_empty() {
                p.remove(*k);
            } else {
                p.insert(k.to_string(), v.to_string());
            }
        }
        p
    }

    fn redirected(r: Result<AuthorizationRequest, AuthorizeError>) -> OidcError {
        match r {
            Err(AuthorizeError::Redirect { error, state, .. }) => {
                assert_eq!(state.as_deref(), Some("st"));
                error
            }
            other => panic!("expected a redirected error, got {other:?}"),
        }
    }

    #[test]
    fn a_good_request() {
        let r = validate_authorization_request(
            Some(&client()),
            &params(&[("max_age", "300"), ("acr_values", "urn:dancu:loa:2")]),
            false,
        )
        .unwrap();
        assert_eq!(r.scopes, vec!["openid", "profile"]);
        assert_eq!(r.max_age, Some(300));
        assert_eq!(r.acr_values, vec!["urn:dancu:loa:2"]);
    }

    #[test]
    fn never_redirects_to_an_unregistered_uri() {
        for bad in ["https://bank.example/cb/", "https://evil.example/cb", ""] {
            let r = validate_authorization_request(
                Some(&client()),
                &params(&[("redirect_uri", bad)]),
                false,
            );
            assert_eq!(
                r,
                Err(AuthorizeError::NoRedirect(OidcError::RedirectUriMismatch)),
                "{bad}"
            );
        }
        let r = validate_authorization_request(None, &params(&[]), false);
        assert!(matches!(r, Err(AuthorizeError::NoRedirect(_))));
    }

    #[test]
    fn pkce_nonce_par_and_shape_rules() {
        let c = client();
        for (k, v) in [
            ("code_challenge", ""),
            ("code_challenge_method", "plain"),
            ("nonce", ""),
            ("response_type", "token"),
            ("response_mode", "fragment"),
            ("scope", "openid admin"),
            ("max_age", "-1"),
            ("prompt", "none login"),
            ("request", "eyJ..."),
        ] {
            let e = redirected(validate_authorization_request(
                Some(&c),
                &params(&[(k, v)]),
                false,
            ));
            assert_eq!(e.oauth_error(), "invalid_request", "{k}={v}");
        }
        let mut par_client = client();
        par_client.require_par = true;
        let e = redirected(validate_authorization_request(
            Some(&par_client),
            &params(&[]),
            false,
        ));
        assert_eq!(e.oauth_error(), "invalid_request");
        assert!(validate_authorization_request(Some(&par_client), &params(&[]), true).is_ok());
    }

    #[test]
    fn responses_carry_iss() {
        let ok = success_response("c", Some("st"), "https://id.dancu.example");
        assert_eq!(
            ok.last().unwrap(),
            &("iss", "https://id.dancu.example".to_owned())
        );
        let err = error_response(&OidcError::LoginRequired, None, "https://id.dancu.example");
        assert_eq!(err[0], ("error", "login_required".to_owned()));
        assert_eq!(err.last().unwrap().0, "iss");
    }
}
