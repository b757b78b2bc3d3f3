//! Authorization codes and refresh tokens as records with pure state transitions: a code is
//! redeemed once (a second redemption reports reuse so that the caller revokes what the first
//! issued), refresh tokens rotate on every use, and a rotated-out token coming back revokes its
//! whole family (OAuth 2.0 Security BCP §4.14).
//!
//! Tokens handed out are random; only their SHA-256 is stored.

use super::OidcError;
use super::claims::Amr;
use super::pkce;
use crate::account::Level;
use crate::b64;
use chrono::{DateTime, Duration, Utc};
use dancu_domain::PersonalId;
use rand::CryptoRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A new random token: 32 bytes, base64url.
pub fn new_token(rng: &mut impl CryptoRng) -> String {
    let mut b = [0u8; 32];
    rng.fill_bytes(&mut b);
    b64::encode(&b)
}

/// SHA-256 of a token, the form stored.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether `presented` is one of the client's registered redirect URIs, compared exactly
/// (no prefix, case folding or normalisation).
pub fn redirect_uri_registered(registered: &[String], presented: &str) -> bool {
    registered.iter().any(|r| r == presented)
}

/// What an authorization stands for, carried from the code to the tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Grant ID: every token issued from this authorization carries it, so that they can be
    /// revoked together.
    pub id: String,
    /// The client.
    pub client_id: String,
    /// The person.
    pub person: PersonalId,
    /// The guardian acting for the person, when one does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<PersonalId>,
    /// Scope granted.
    pub scope: String,
    /// Level reached.
    pub level: Level,
    /// Methods used.
    pub amr: Vec<Amr>,
    /// When the user authenticated.
    pub auth_time: DateTime<Utc>,
    /// DPoP key the tokens are bound to, if any (RFC 9449 `dpop_jkt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<String>,
}

/// State of a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", content = "at", rename_all = "snake_case")]
pub enum CodeState {
    /// Waiting for the token request.
    Issued,
    /// Exchanged for tokens.
    Redeemed(DateTime<Utc>),
    /// Burnt by a failed PKCE check: never usable.
    Burnt,
}

/// An authorization code as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationCode {
    /// SHA-256 of the code.
    pub code_hash: [u8; 32],
    /// The authorization.
    pub grant: Grant,
    /// The redirect URI of the request.
    pub redirect_uri: String,
    /// PKCE S256 challenge.
    pub code_challenge: String,
    /// Nonce to echo in the ID token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// State.
    pub state: CodeState,
}

/// The token request's side of a code exchange.
#[derive(Debug, Clone, Copy)]
pub struct CodeRedemption<'a> {
    /// The authenticated client.
    pub client_id: &'a str,
    /// `redirect_uri` as sent.
    pub redirect_uri: Option<&'a str>,
    /// `code_verifier` as sent.
    pub code_verifier: Option<&'a str>,
    /// Thumbprint of the DPoP proof's key, when a proof came with the request.
    pub dpop_jkt: Option<&'a str>,
}

/// Default code lifetime (60 s; FAPI 2.0 asks for at most 60 s).
pub const CODE_LIFETIME: Duration = Duration::seconds(60);

impl AuthorizationCode {
    /// Issues a code; returns the record and the code to send to the client.
    pub fn issue(
        rng: &mut impl CryptoRng,
        grant: Grant,
        redirect_uri: String,
        code_challenge: String,
        nonce: Option<String>,
        now: DateTime<Utc>,
    ) -> (Self, String) {
        let code = new_token(rng);
        let rec = Self {
            code_hash: token_hash(&code),
            grant,
            redirect_uri,
            code_challenge,
            nonce,
            expires_at: now + CODE_LIFETIME,
            state: CodeState::Issued,
        };
        (rec, code)
    }

    /// Exchanges the code. On [`OidcError::CodeReused`] the caller must revoke every token
    /// carrying this code's grant ID. A wrong PKCE verifier burns the code.
    pub fn redeem(
        &mut self,
        req: &CodeRedemption<'_>,
        now: DateTime<Utc>,
    ) -> Result<&Grant, OidcError> {
        match self.state {
            CodeState::Redeemed(_) => return Err(OidcError::CodeReused),
            CodeState::Burnt => return Err(OidcError::InvalidCode),
            CodeState::Issued => {}
        }
        if now >= self.expires_at || req.client_id != self.grant.client_id {
            return Err(OidcError::InvalidCode);
        }
        if req.redirect_uri != Some(self.redirect_uri.as_str()) {
            return Err(OidcError::InvalidCode);
        }
        if let Err(e) = pkce::verify_s256(req.code_verifier, &self.code_challenge) {
            self.state = CodeState::Burnt;
            return Err(e);
        }
        match (&self.grant.dpop_jkt, req.dpop_jkt) {
            (Some(bound), Some(presented)) if bound != presented => {
                return Err(OidcError::DpopKeyMismatch);
            }
            (Some(_), None) => return Err(OidcError::DpopKeyMismatch),
            (None, Some(presented)) => self.grant.dpop_jkt = Some(presented.to_owned()),
            _ => {}
        }
        self.state = CodeState::Redeemed(now);
        Ok(&self.grant)
    }
}

/// Refresh-token lifetimes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshPolicy {
    /// Unused for this long, the family expires.
    pub idle: Duration,
    /// The family never outlives this, counted from the authentication.
    pub absolute: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self {
            idle: Duration::days(30),
            absolute: Duration::days(90),
        }
    }
}

/// Why a family was revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevokedBy {
    /// A rotated-out token was presented.
    Reuse,
    /// The client or the holder revoked it.
    Request,
    /// The authorization code was reused.
    CodeReuse,
    /// Logout, account lock or consent withdrawn.
    Session,
}

/// A chain of refresh tokens descending from one authorization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshFamily {
    /// Family ID, the first part of each of its tokens.
    pub id: String,
    /// The authorization.
    pub grant: Grant,
    /// SHA-256 of the one valid token.
    pub current_hash: [u8; 32],
    /// How many rotations so far.
    pub generation: u32,
    /// Expiry if unused.
    pub idle_expires_at: DateTime<Utc>,
    /// Hard expiry.
    pub expires_at: DateTime<Utc>,
    /// Set once revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<RevokedBy>,
}

/// The family ID inside a refresh token (tokens are `<family>.<secret>`), to look the family up.
pub fn family_of(token: &str) -> Option<&str> {
    let (family, secret) = token.split_once('.')?;
    (family.len() == 22 && secret.len() == 43).then_some(family)
}

impl RefreshFamily {
    /// Starts a family for a grant; returns it and the first token.
    pub fn start(
        rng: &mut impl CryptoRng,
        grant: Grant,
        now: DateTime<Utc>,
        policy: &RefreshPolicy,
    ) -> (Self, String) {
        let mut id = [0u8; 16];
        rng.fill_bytes(&mut id);
        let id = b64::encode(&id);
        let token = format!("{id}.{}", new_token(rng));
        let fam = Self {
            id,
            current_hash: token_hash(&token),
            generation: 0,
            idle_expires_at: now + policy.idle,
            expires_at: grant.auth_time + policy.absolute,
            grant,
            revoked: None,
        };
        (fam, token)
    }

    /// Uses a refresh token: on success the family moves on and the new token is returned. A
    /// token of this family that is not the current one revokes the family.
    pub fn rotate(
        &mut self,
        rng: &mut impl CryptoRng,
        presented: &str,
        client_id: &str,
        dpop_jkt: Option<&str>,
        now: DateTime<Utc>,
        policy: &RefreshPolicy,
    ) -> Result<String, OidcError> {
        if self.revoked.is_some() || family_of(presented) != Some(self.id.as_str()) {
            return Err(OidcError::InvalidRefreshToken);
        }
        if client_id != self.grant.client_id {
            return Err(OidcError::InvalidRefreshToken);
        }
        if !bool::from(token_hash(presented).ct_eq(&self.current_hash)) {
            self.revoked = Some(RevokedBy::Reuse);
            return Err(OidcError::RefreshTokenReused);
        }
        if now >= self.idle_expires_at || now >= self.expires_at {
            return Err(OidcError::InvalidRefreshToken);
        }
        if let Some(bound) = &self.grant.dpop_jkt
            && dpop_jkt != Some(bound.as_str())
        {
            return Err(OidcError::DpopKeyMismatch);
        }
        let token = format!("{}.{}", self.id, new_token(rng));
        self.current_hash = token_hash(&token);
        self.generation += 1;
        self.idle_expires_at = (now + policy.idle).min(self.expires_at);
        Ok(token)
    }

    /// Revokes the family.
    pub fn revoke(&mut self, why: RevokedBy) {
        self.revoked.get_or_insert(why);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 9, 1, 3, 0, 0).unwrap()
    }

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const REDIRECT: &str = "https://bank.example/cb";

    fn grant(jkt: Option<&str>) -> Grant {
        Grant {
            id: "g1".into(),
            client_id: "bank".into(),
            person: PersonalId::parse("001090000001").unwrap(),
            actor: None,
            scope: "openid".into(),
            level: Level::One,
            amr: vec![Amr::Passcode],
            auth_time: now(),
            dpop_jkt: jkt.map(str::to_owned),
        }
    }

    fn code(jkt: Option<&str>) -> AuthorizationCode {
        let mut rng = StdRng::seed_from_u64(1);
        AuthorizationCode::issue(
            &mut rng,
            grant(jkt),
            REDIRECT.into(),
            pkce::challenge_s256(VERIFIER),
            Some("n".into()),
            now(),
        )
        .0
    }

    fn redemption<'a>(verifier: Option<&'a str>) -> CodeRedemption<'a> {
        CodeRedemption {
            client_id: "bank",
            redirect_uri: Some(REDIRECT),
            code_verifier: verifier,
            dpop_jkt: None,
        }
    }

    #[test]
    fn code_once_then_reuse_is_reported() {
        let mut c = code(None);
        assert_eq!(
            c.redeem(&redemption(Some(VERIFIER)), now()).unwrap().id,
            "g1"
        );
        assert_eq!(
            c.redeem(&redemption(Some(VERIFIER)), now()).unwrap_err(),
            OidcError::CodeReused
        );
    }

    #[test]
    fn code_checks() {
        let mut c = code(None);
        let mut r = redemption(Some(VERIFIER));
        r.client_id = "other";
        assert_eq!(c.redeem(&r, now()).unwrap_err(), OidcError::InvalidCode);
        let mut r = redemption(Some(VERIFIER));
        r.redirect_uri = Some("https://bank.example/cb/");
        assert_eq!(c.redeem(&r, now()).unwrap_err(), OidcError::InvalidCode);
        r.redirect_uri = None;
        assert_eq!(c.redeem(&r, now()).unwrap_err(), OidcError::InvalidCode);
        assert_eq!(
            c.redeem(&redemption(Some(VERIFIER)), now() + CODE_LIFETIME)
                .unwrap_err(),
            OidcError::InvalidCode
        );
        // Missing verifier burns the code; even the right one fails afterwards.
        assert_eq!(
            c.redeem(&redemption(None), now()).unwrap_err(),
            OidcError::PkceMismatch
        );
        assert_eq!(
            c.redeem(&redemption(Some(VERIFIER)), now()).unwrap_err(),
            OidcError::InvalidCode
        );
        let mut c = code(None);
        let wrong = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXl";
        assert_eq!(
            c.redeem(&redemption(Some(wrong)), now()).unwrap_err(),
            OidcError::PkceMismatch
        );
    }

    #[test]
    fn code_bound_to_a_dpop_key() {
        let mut c = code(Some("jkt-a"));
        let mut r = redemption(Some(VERIFIER));
        assert_eq!(c.redeem(&r, now()).unwrap_err(), OidcError::DpopKeyMismatch);
        r.dpop_jkt = Some("jkt-b");
        assert_eq!(c.redeem(&r, now()).unwrap_err(), OidcError::DpopKeyMismatch);
        r.dpop_jkt = Some("jkt-a");
        assert!(c.redeem(&r, now()).is_ok());
        // An unbound code takes the key of the token request's proof.
        let mut c = code(None);
        r.dpop_jkt = Some("jkt-c");
        assert_eq!(
            c.redeem(&r, now()).unwrap().dpop_jkt.as_deref(),
            Some("jkt-c")
        );
    }

    #[test]
    fn exact_redirect_uri_matching() {
        let reg = vec!["https://bank.example/cb".to_owned()];
        assert!(redirect_uri_registered(&reg, "https://bank.example/cb"));
        for bad in [
            "https://bank.example/cb/",
            "https://bank.example/cb?x=1",
            "https://BANK.example/cb",
            "https://bank.example/c",
            "https://bank.example/cb#",
        ] {
            assert!(!redirect_uri_registered(&reg, bad), "{bad}");
        }
    }

    #[test]
    fn refresh_rotation_and_reuse_revokes_the_family() {
        let mut rng = StdRng::seed_from_u64(2);
        let p = RefreshPolicy::default();
        let (mut fam, t0) = RefreshFamily::start(&mut rng, grant(None), now(), &p);
        assert_eq!(family_of(&t0), Some(fam.id.as_str()));
        let t1 = fam.rotate(&mut rng, &t0, "bank", None, now(), &p).unwrap();
        let t2 = fam.rotate(&mut rng, &t1, "bank", None, now(), &p).unwrap();
        assert_eq!(fam.generation, 2);
        // An attacker replays t0: the family is revoked, and the legitimate t2 dies with it.
        assert_eq!(
            fam.rotate(&mut rng, &t0, "bank", None, now(), &p),
            Err(OidcError::RefreshTokenReused)
        );
        assert_eq!(fam.revoked, Some(RevokedBy::Reuse));
        assert_eq!(
            fam.rotate(&mut rng, &t2, "bank", None, now(), &p),
            Err(OidcError::InvalidRefreshToken)
        );
    }

    #[test]
    fn refresh_checks() {
        let mut rng = StdRng::seed_from_u64(3);
        let p = RefreshPolicy::default();
        let (mut fam, t0) = RefreshFamily::start(&mut rng, grant(Some("k")), now(), &p);
        assert_eq!(
            fam.rotate(&mut rng, &t0, "other", Some("k"), now(), &p),
            Err(OidcError::InvalidRefreshToken)
        );
        assert_eq!(
            fam.rotate(&mut rng, &t0, "bank", Some("x"), now(), &p),
            Err(OidcError::DpopKeyMismatch)
        );
        assert_eq!(
            fam.rotate(
                &mut rng,
                &t0,
                "bank",
                Some("k"),
                now() + Duration::days(31),
                &p
            ),
            Err(OidcError::InvalidRefreshToken)
        );
        let t1 = fam
            .rotate(
                &mut rng,
                &t0,
                "bank",
                Some("k"),
                now() + Duration::days(29),
                &p,
            )
            .unwrap();
        // The absolute limit holds however often it is used.
        assert_eq!(
            fam.rotate(
                &mut rng,
                &t1,
                "bank",
                Some("k"),
                now() + Duration::days(90),
                &p
            ),
            Err(OidcError::InvalidRefreshToken)
        );
        assert_eq!(fam.revoked, None);
        assert!(family_of("garbage").is_none());
        assert_eq!(
            fam.rotate(&mut rng, "garbage", "bank", Some("k"), now(), &p),
            Err(OidcError::InvalidRefreshToken)
        );
    }
}
