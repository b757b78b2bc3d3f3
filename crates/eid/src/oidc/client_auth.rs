//! Client authentication at the token, PAR, revocation and introspection endpoints:
//! `private_key_jwt` (RFC 7523 client assertions) and `client_secret_basic`.

use super::OidcError;
use super::jws::{Alg, Jwk, decode_unverified};
use base64ct::{Base64, Encoding};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The only client assertion type accepted.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// What a client assertion is checked against.
#[derive(Debug, Clone, Copy)]
pub struct AssertionCheck<'a> {
    /// The client the assertion must be from (`iss` = `sub` = this).
    pub client_id: &'a str,
    /// The client's registered public keys.
    pub keys: &'a [Jwk],
    /// Accepted audiences: the issuer identifier, and the endpoint URL being called.
    pub audiences: &'a [&'a str],
    /// Longest lifetime (`exp` − `iat`) accepted.
    pub max_lifetime: Duration,
    /// Clock skew allowed.
    pub leeway: Duration,
}

/// A verified assertion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAssertion {
    /// Its ID.
    pub jti: String,
    /// Its expiry.
    pub exp: i64,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct AssertionClaims {
    iss: String,
    sub: String,
    aud: Audience,
    exp: i64,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    nbf: Option<i64>,
    jti: String,
}

/// Verifies a `private_key_jwt` client assertion. `seen` is asked last whether the `jti` was
/// used before (remember it until the instant given, the assertion's expiry); `true` means a
/// replay.
pub fn verify_client_assertion(
    assertion: &str,
    assertion_type: Option<&str>,
    check: &AssertionCheck<'_>,
    now: DateTime<Utc>,
    seen: impl FnOnce(&str, DateTime<Utc>) -> bool,
) -> Result<ClientAssertion, OidcError> {
    let bad = OidcError::InvalidClient;
    if assertion_type != Some(JWT_BEARER) {
        return Err(bad("client_assertion_type"));
    }
    let u = decode_unverified(assertion).map_err(|_| bad("malformed assertion"))?;
    let candidates: Vec<&Jwk> = check
        .keys
        .iter()
        .filter(|k| match (&u.header.kid, &k.kid) {
            (Some(want), Some(have)) => want == have,
            _ => true,
        })
        .collect();
    let claims: AssertionClaims = candidates
        .iter()
        .find_map(|k| u.verify(k, &[Alg::ES256, Alg::RS256]).ok())
        .ok_or(bad("signature"))?;
    if claims.iss != check.client_id || claims.sub != check.client_id {
        return Err(bad("iss and sub must be the client ID"));
    }
    let auds = match &claims.aud {
        Audience::One(a) => std::slice::from_ref(a),
        Audience::Many(v) => v.as_slice(),
    };
    if !auds.iter().any(|a| check.audiences.contains(&a.as_str())) {
        return Err(bad("audience"));
    }
    let t = now.timestamp();
    let skew = check.leeway.num_seconds();
    if claims.exp <= t - skew {
        return Err(bad("expired"));
    }
    if claims.nbf.is_some_and(|nbf| nbf > t + skew) || claims.iat.is_some_and(|iat| iat > t + skew)
    {
        return Err(bad("not yet valid"));
    }
    if claims.exp - claims.iat.unwrap_or(t) > check.max_lifetime.num_seconds() {
        return Err(bad("lifetime too long"));
    }
    if claims.jti.is_empty() || claims.jti.len() > 256 {
        return Err(bad("jti"));
    }
    let until = DateTime::from_timestamp(claims.exp, 0).unwrap_or(now) + check.leeway;
    if seen(&claims.jti, until) {
        return Err(OidcError::Replay);
    }
    Ok(ClientAssertion {
        jti: claims.jti,
        exp: claims.exp,
    })
}

/// A client secret as stored: SHA-256 of the secret. Secrets are 32 random bytes made by the
/// provider, so a fast hash suffices (nothing to guess from a dictionary).
pub fn hash_client_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Parses an `Authorization: Basic …` value into client ID and secret, each form-URL-decoded
/// as RFC 6749 §2.3.1 asks.
pub fn parse_basic(header: &str) -> Result<(String, String), OidcError> {
    let bad = OidcError::InvalidClient("malformed basic credentials");
    let b64 = header
        .strip_prefix("Basic ")
        .or_else(|| header.strip_prefix("basic "))
        .ok_or(bad.clone())?;
    if b64.len() > 2048 {
        return Err(bad);
    }
    let raw = Base64::decode_vec(b64.trim()).map_err(|_| bad.clone())?;
    let text = String::from_utf8(raw).map_err(|_| bad.clone())?;
    let (id, secret) = text.split_once(':').ok_or(bad.clone())?;
    Ok((
        form_decode(id).ok_or(bad.clone())?,
        form_decode(secret).ok_or(bad)?,
    ))
}

fn form_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Verifies `client_secret_basic` credentials against the stored hash.
pub fn verify_client_secret(presented: &str, stored: &[u8; 32]) -> Result<(), OidcError> {
    if bool::from(hash_client_secret(presented).ct_eq(stored)) {
        Ok(())
    } else {
        Err(OidcError::InvalidClient("secret"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oidc::jws::sign_es256;
    use chrono::TimeZone;
    use p256::ecdsa::SigningKey;
    use p256::elliptic_curve::Generate;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use std::collections::HashSet;

    const ISSUER: &str = "https://id.dancu.example";
    const TOKEN: &str = "https://id.dancu.example/token";

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 9, 1, 3, 0, 0).unwrap()
    }

    fn setup() -> (SigningKey, Vec<Jwk>) {
        let k = SigningKey::generate_from_rng(&mut StdRng::seed_from_u64(8));
        let mut jwk = Jwk::from_p256(k.verifying_key());
        jwk.kid = Some("rp-1".into());
        (k, vec![jwk])
    }

    fn assertion(k: &SigningKey, claims: serde_json::Value) -> String {
        sign_es256(k, "JWT", Some("rp-1"), false, &claims).unwrap()
    }

    fn claims(aud: serde_json::Value, jti: &str) -> serde_json::Value {
        let t = now().timestamp();
        serde_json::json!({"iss": "bank", "sub": "bank", "aud": aud, "iat": t, "exp": t + 60, "jti": jti})
    }

    fn check(keys: &[Jwk]) -> AssertionCheck<'_> {
        AssertionCheck {
            client_id: "bank",
            keys,
            audiences: &[ISSUER, TOKEN],
            max_lifetime: Duration::minutes(5),
            leeway: Duration::seconds(5),
        }
    }

    fn never(_: &str, _: DateTime<Utc>) -> bool {
        false
    }

    #[test]
    fn accepts_issuer_or_endpoint_audience() {
        let (k, keys) = setup();
        for aud in [serde_json::json!(ISSUER), serde_json::json!([TOKEN, "x"])] {
            let a = assertion(&k, claims(aud, "j1"));
            assert!(
                verify_client_assertion(&a, Some(JWT_BEARER), &check(&keys), now(), never).is_ok()
            );
        }
    }

    #[test]
    fn wrong_audience_issuer_type_and_key() {
        let (k, keys) = setup();
        let a = assertion(
            &k,
            claims(serde_json::json!("https://other.example/token"), "j"),
        );
        assert_eq!(
            verify_client_assertion(&a, Some(JWT_BEARER), &check(&keys), now(), never),
            Err(OidcError::InvalidClient("audience"))
        );
        let mut c = claims(serde_json::json!(ISSUER), "j");
        c["sub"] = "someone-else".into();
        let a = assertion(&k, c);
        assert!(
            verify_client_assertion(&a, Some(JWT_BEARER), &check(&keys), now(), never).is_err()
        );
        let a = assertion(&k, claims(serde_json::json!(ISSUER), "j"));
        assert!(
            verify_client_assertion(&a, Some("urn:other"), &check(&keys), now(), never).is_err()
        );
        let stranger = SigningKey::generate_from_rng(&mut StdRng::seed_from_u64(9));
        let a = assertion(&stranger, claims(serde_json::json!(ISSUER), "j"));
        assert_eq!(
            verify_client_assertion(&a, Some(JWT_BEARER), &check(&keys), now(), never),
            Err(OidcError::InvalidClient("signature"))
        );
    }

    #[test]
    fn expiry_and_lifetime() {
        let (k, keys) = setup();
        let t = now().timestamp();
        let mut c = claims(serde_json::json!(ISSUER), "j");
        c["exp"] = (t - 10).into();
        c["iat"] = (t - 70).into();
        assert!(
            verify_client_assertion(
                &assertion(&k, c),
                Some(JWT_BEARER),
                &check(&keys),
                now(),
                never
            )
            .is_err()
        );
        let mut c = claims(serde_json::json!(ISSUER), "j");
        c["exp"] = (t + 3600).into();
        assert_eq!(
            verify_client_assertion(
                &assertion(&k, c),
                Some(JWT_BEARER),
                &check(&keys),
                now(),
                never
            ),
            Err(OidcError::InvalidClient("lifetime too long"))
        );
    }

    #[test]
    fn replayed_jti_is_refused() {
        let (k, keys) = setup();
        let a = assertion(&k, claims(serde_json::json!(ISSUER), "once"));
        let mut seen = HashSet::new();
        let mut remember = |j: &str, _: DateTime<Utc>| !seen.insert(j.to_owned());
        assert!(
            verify_client_assertion(&a, Some(JWT_BEARER), &check(&keys), now(), &mut remember)
                .is_ok()
        );
        assert_eq!(
            verify_client_assertion(&a, Some(JWT_BEARER), &check(&keys), now(), &mut remember),
            Err(OidcError::Replay)
        );
    }

    #[test]
    fn client_secret_basic() {
        // "client id" / "s3cr%t" form-encoded, then base64.
        let header = format!("Basic {}", Base64::encode_string(b"client+id:s3cr%25t"));
        let (id, secret) = parse_basic(&header).unwrap();
        assert_eq!((id.as_str(), secret.as_str()), ("client id", "s3cr%t"));
        let stored = hash_client_secret("s3cr%t");
        assert!(verify_client_secret(&secret, &stored).is_ok());
        assert!(verify_client_secret("wrong", &stored).is_err());
        assert!(parse_basic("Bearer x").is_err());
        assert!(parse_basic("Basic !!!").is_err());
        assert!(parse_basic(&format!("Basic {}", Base64::encode_string(b"nocolon"))).is_err());
    }

    proptest::proptest! {
        #[test]
        fn basic_parsing_never_panics(s in ".{0,120}") {
            let _ = parse_basic(&s);
            let _ = parse_basic(&format!("Basic {}", Base64::encode_string(s.as_bytes())));
        }
    }
}
