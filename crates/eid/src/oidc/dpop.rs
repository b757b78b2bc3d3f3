//! DPoP proofs (RFC 9449): a JWT signed by a key the client holds, binding each request (method
//! and URL) and, with `ath`, the access token presented, to that key.

use super::OidcError;
use super::jws::{Alg, decode_unverified};
use crate::b64;
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Time limits for proofs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DpopPolicy {
    /// Oldest `iat` accepted, before now.
    pub max_age: Duration,
    /// How far in the future `iat` may be (clock skew).
    pub leeway: Duration,
}

impl Default for DpopPolicy {
    fn default() -> Self {
        Self {
            max_age: Duration::seconds(300),
            leeway: Duration::seconds(5),
        }
    }
}

/// The request a proof must match.
#[derive(Debug, Clone, Copy)]
pub struct DpopRequest<'a> {
    /// HTTP method, e.g. `POST`.
    pub method: &'a str,
    /// The URL requested (query and fragment are ignored).
    pub url: &'a str,
    /// The access token sent with the request, when there is one: the proof must carry its
    /// `ath`.
    pub access_token: Option<&'a str>,
    /// The thumbprint the token (or code, or refresh token) is bound to, if any.
    pub expected_jkt: Option<&'a str>,
    /// A server nonce the client was told to use, if any.
    pub nonce: Option<&'a str>,
}

/// A verified proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpopProof {
    /// RFC 7638 thumbprint of the proof's key (goes into `cnf.jkt`).
    pub jkt: String,
    /// The proof's ID.
    pub jti: String,
    /// When it was made.
    pub iat: i64,
}

#[derive(Deserialize)]
struct ProofClaims {
    jti: String,
    htm: String,
    htu: String,
    iat: i64,
    #[serde(default)]
    ath: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
}

/// `base64url(SHA-256(access_token))`, the `ath` of a proof.
pub fn access_token_hash(token: &str) -> String {
    b64::encode(&Sha256::digest(token.as_bytes()))
}

/// Normalises an `htu` for comparison: scheme and host lower-cased, default port dropped, empty
/// path as `/`, query and fragment removed. `None` when it is not an absolute http(s) URL.
pub fn normalize_htu(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => ":443",
        "http" => ":80",
        _ => return None,
    };
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let mut host = authority.to_ascii_lowercase();
    if let Some(h) = host.strip_suffix(default_port) {
        host = h.to_owned();
    }
    Some(format!("{scheme}://{host}{path}"))
}

/// Verifies a DPoP proof for `req`. `seen` is asked last, once everything else holds, whether
/// the `jti` was used before (and should remember it until the instant given, after which the
/// proof would be too old anyway); it returns `true` for a replay.
pub fn verify_dpop_proof(
    proof: &str,
    req: &DpopRequest<'_>,
    now: DateTime<Utc>,
    policy: &DpopPolicy,
    seen: impl FnOnce(&str, DateTime<Utc>) -> bool,
) -> Result<DpopProof, OidcError> {
    let bad = OidcError::InvalidDpopProof;
    let u = decode_unverified(proof).map_err(|_| bad("malformed"))?;
    if u.header.typ.as_deref() != Some("dpop+jwt") {
        return Err(bad("typ must be dpop+jwt"));
    }
    if u.alg != Alg::ES256 {
        return Err(bad("alg must be ES256"));
    }
    let jwk = u.header.jwk.clone().ok_or(bad("missing jwk"))?;
    if jwk.d.is_some() {
        return Err(bad("private key in jwk"));
    }
    let claims: ProofClaims = u
        .verify(&jwk, &[Alg::ES256])
        .map_err(|_| bad("signature"))?;
    if claims.jti.is_empty() || claims.jti.len() > 256 {
        return Err(bad("jti"));
    }
    if claims.htm != req.method {
        return Err(bad("htm does not match the method"));
    }
    let (Some(htu), Some(url)) = (normalize_htu(&claims.htu), normalize_htu(req.url)) else {
        return Err(bad("htu"));
    };
    if htu != url {
        return Err(bad("htu does not match the URL"));
    }
    let t = now.timestamp();
    if claims.iat > t + policy.leeway.num_seconds() || claims.iat < t - policy.max_age.num_seconds()
    {
        return Err(bad("iat outside the accepted window"));
    }
    match (req.access_token, claims.ath.as_deref()) {
        (Some(token), Some(ath)) if ath == access_token_hash(token) => {}
        (Some(_), _) => return Err(bad("ath does not match the access token")),
        (None, _) => {}
    }
    if let Some(nonce) = req.nonce
        && claims.nonce.as_deref() != Some(nonce)
    {
        return Err(bad("nonce"));
    }
    let jkt = jwk.thumbprint().map_err(|_| bad("jwk"))?;
    if let Some(expected) = req.expected_jkt
        && expected != jkt
    {
        return Err(OidcError::DpopKeyMismatch);
    }
    let remember_until = DateTime::from_timestamp(claims.iat, 0).unwrap_or(now) + policy.max_age;
    if seen(&claims.jti, remember_until) {
        return Err(OidcError::Replay);
    }
    Ok(DpopProof {
        jkt,
        jti: claims.jti,
        iat: claims.iat,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::oidc::jws::{Jwk, sign_es256};
    use chrono::TimeZone;
    use p256::ecdsa::SigningKey;
    use p256::elliptic_curve::Generate;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use std::collections::HashSet;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 9, 1, 3, 0, 0).unwrap()
    }

    const TOKEN_URL: &str = "https://id.dancu.example/token";

    pub(crate) fn proof(
        key: &SigningKey,
        htm: &str,
        htu: &str,
        iat: i64,
        ath: Option<&str>,
        jti: &str,
    ) -> String {
        let mut c = serde_json::json!({"jti": jti, "htm": htm, "htu": htu, "iat": iat});
        if let Some(a) = ath {
            c["ath"] = a.into();
        }
        sign_es256(key, "dpop+jwt", None, true, &c).unwrap()
    }

    fn req<'a>(method: &'a str, url: &'a str, token: Option<&'a str>) -> DpopRequest<'a> {
        DpopRequest {
            method,
            url,
            access_token: token,
            expected_jkt: None,
            nonce: None,
        }
    }

    fn key() -> SigningKey {
        SigningKey::generate_from_rng(&mut StdRng::seed_from_u64(3))
    }

    fn never(_: &str, _: DateTime<Utc>) -> bool {
        false
    }

    #[test]
    fn a_good_proof() {
        let k = key();
        let p = proof(&k, "POST", TOKEN_URL, now().timestamp(), None, "j1");
        let out = verify_dpop_proof(
            &p,
            &req("POST", TOKEN_URL, None),
            now(),
            &DpopPolicy::default(),
            never,
        )
        .unwrap();
        assert_eq!(
            out.jkt,
            Jwk::from_p256(k.verifying_key()).thumbprint().unwrap()
        );
        // Query strings and default ports do not matter.
        let p = proof(
            &k,
            "POST",
            "HTTPS://ID.dancu.example:443/token?x=1",
            now().timestamp(),
            None,
            "j2",
        );
        assert!(
            verify_dpop_proof(
                &p,
                &req("POST", TOKEN_URL, None),
                now(),
                &DpopPolicy::default(),
                never
            )
            .is_ok()
        );
    }

    #[test]
    fn wrong_method_url_and_ath() {
        let k = key();
        let t = now().timestamp();
        let pol = DpopPolicy::default();
        let p = proof(&k, "GET", TOKEN_URL, t, None, "j");
        assert_eq!(
            verify_dpop_proof(&p, &req("POST", TOKEN_URL, None), now(), &pol, never),
            Err(OidcError::InvalidDpopProof("htm does not match the method"))
        );
        let p = proof(
            &k,
            "POST",
            "https://id.dancu.example/userinfo",
            t,
            None,
            "j",
        );
        assert_eq!(
            verify_dpop_proof(&p, &req("POST", TOKEN_URL, None), now(), &pol, never),
            Err(OidcError::InvalidDpopProof("htu does not match the URL"))
        );
        let ui = "https://id.dancu.example/userinfo";
        let p = proof(&k, "GET", ui, t, None, "j");
        assert_eq!(
            verify_dpop_proof(&p, &req("GET", ui, Some("tok")), now(), &pol, never),
            Err(OidcError::InvalidDpopProof(
                "ath does not match the access token"
            ))
        );
        let p = proof(&k, "GET", ui, t, Some(&access_token_hash("other")), "j");
        assert_eq!(
            verify_dpop_proof(&p, &req("GET", ui, Some("tok")), now(), &pol, never),
            Err(OidcError::InvalidDpopProof(
                "ath does not match the access token"
            ))
        );
        let p = proof(&k, "GET", ui, t, Some(&access_token_hash("tok")), "j");
        assert!(verify_dpop_proof(&p, &req("GET", ui, Some("tok")), now(), &pol, never).is_ok());
    }

    #[test]
    fn iat_window_replay_binding_and_typ() {
        let k = key();
        let t = now().timestamp();
        let pol = DpopPolicy::default();
        let r = req("POST", TOKEN_URL, None);
        for iat in [t - 301, t + 6] {
            let p = proof(&k, "POST", TOKEN_URL, iat, None, "j");
            assert!(
                verify_dpop_proof(&p, &r, now(), &pol, never).is_err(),
                "{iat}"
            );
        }
        let mut seen = HashSet::new();
        let p = proof(&k, "POST", TOKEN_URL, t, None, "once");
        assert!(verify_dpop_proof(&p, &r, now(), &pol, |j, _| !seen.insert(j.to_owned())).is_ok());
        assert_eq!(
            verify_dpop_proof(&p, &r, now(), &pol, |j, _| !seen.insert(j.to_owned())),
            Err(OidcError::Replay)
        );
        let other = SigningKey::generate_from_rng(&mut StdRng::seed_from_u64(4));
        let bound = Jwk::from_p256(other.verifying_key()).thumbprint().unwrap();
        let mut r2 = r;
        r2.expected_jkt = Some(&bound);
        let p = proof(&k, "POST", TOKEN_URL, t, None, "j3");
        assert_eq!(
            verify_dpop_proof(&p, &r2, now(), &pol, never),
            Err(OidcError::DpopKeyMismatch)
        );
        // A plain JWT is not a DPoP proof.
        let c = serde_json::json!({"jti": "j", "htm": "POST", "htu": TOKEN_URL, "iat": t});
        let jwt = sign_es256(&k, "JWT", None, true, &c).unwrap();
        assert!(verify_dpop_proof(&jwt, &r, now(), &pol, never).is_err());
        // A proof signed by a key other than the embedded one.
        let swapped = {
            let p = proof(&k, "POST", TOKEN_URL, t, None, "j4");
            let q = proof(&other, "POST", TOKEN_URL, t, None, "j4");
            let (ph, _) = p.split_once('.').unwrap();
            let (_, qrest) = q.split_once('.').unwrap();
            format!("{ph}.{qrest}")
        };
        assert!(verify_dpop_proof(&swapped, &r, now(), &pol, never).is_err());
    }

    #[test]
    fn htu_normalisation() {
        assert_eq!(
            normalize_htu("https://A.example").as_deref(),
            Some("https://a.example/")
        );
        assert_eq!(
            normalize_htu("http://a.example:80/x#f").as_deref(),
            Some("http://a.example/x")
        );
        assert_eq!(
            normalize_htu("https://a.example:8443/x").as_deref(),
            Some("https://a.example:8443/x")
        );
        assert!(normalize_htu("ftp://a.example/").is_none());
        assert!(normalize_htu("https://user@a.example/").is_none());
        assert!(normalize_htu("/token").is_none());
    }

    proptest::proptest! {
        #[test]
        fn htu_never_panics(s in ".{0,100}") {
            let _ = normalize_htu(&s);
        }
    }
}
