//! Compact JWS (RFC 7515) for the provider: ES256 signing and verification, RS256 verification
//! (for relying parties whose `private_key_jwt` keys are RSA), JWKs and their RFC 7638
//! thumbprints, and the provider's rotating [`KeySet`].
//!
//! Written directly over `p256`/`rsa`/`serde_json` rather than with a JOSE crate: the crates
//! that exist pull a second, older copy of the RustCrypto stack (or a C library), and the
//! provider needs only this small, strict subset. `alg: none`, unknown algorithms, a key whose
//! type does not fit the algorithm, and `crit` headers are all refused.

use crate::b64;
use chrono::{DateTime, Duration, Utc};
use dancu_domain::Problem;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::elliptic_curve::Generate;
use rand::CryptoRng;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Signature algorithms understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Alg {
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (verification only).
    RS256,
}

impl Alg {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "ES256" => Some(Self::ES256),
            "RS256" => Some(Self::RS256),
            _ => None,
        }
    }
}

/// A public JSON Web Key (EC P-256 or RSA).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// `EC` or `RSA`.
    pub kty: String,
    /// Curve, `P-256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// EC x coordinate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// EC y coordinate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// RSA modulus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA exponent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// Key ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// `sig`.
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    /// Algorithm the key is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// A private part must never travel: its presence makes the key unusable here.
    #[serde(default, skip_serializing)]
    pub d: Option<String>,
}

impl Jwk {
    /// The JWK of a P-256 public key.
    pub fn from_p256(key: &VerifyingKey) -> Self {
        let point = key.to_sec1_point(false);
        let raw = point.as_bytes();
        Self {
            kty: "EC".into(),
            crv: Some("P-256".into()),
            x: Some(b64::encode(&raw[1..33])),
            y: Some(b64::encode(&raw[33..65])),
            n: None,
            e: None,
            kid: None,
            use_: None,
            alg: None,
            d: None,
        }
    }

    /// The RFC 7638 thumbprint: base64url(SHA-256) of the required members in lexicographic
    /// order, no whitespace.
    pub fn thumbprint(&self) -> Result<String, JoseError> {
        let canonical = match self.kty.as_str() {
            "EC" => {
                let (Some(crv), Some(x), Some(y)) = (&self.crv, &self.x, &self.y) else {
                    return Err(JoseError::BadKey);
                };
                serde_json::json!({"crv": crv, "kty": "EC", "x": x, "y": y})
            }
            "RSA" => {
                let (Some(n), Some(e)) = (&self.n, &self.e) else {
                    return Err(JoseError::BadKey);
                };
                serde_json::json!({"e": e, "kty": "RSA", "n": n})
            }
            _ => return Err(JoseError::BadKey),
        };
        // serde_json maps are ordered by key (no preserve_order feature), as RFC 7638 needs.
        let text = canonical.to_string();
        Ok(b64::encode(&Sha256::digest(text.as_bytes())))
    }

    /// Whether this is a public key signatures can be verified with here: a P-256 point on the
    /// curve or an RSA key of an accepted size, without a private part.
    pub fn is_usable_public_key(&self) -> bool {
        self.d.is_none() && (self.p256().is_ok() || self.rsa().is_ok())
    }

    fn p256(&self) -> Result<VerifyingKey, JoseError> {
        if self.kty != "EC" || self.crv.as_deref() != Some("P-256") || self.d.is_some() {
            return Err(JoseError::BadKey);
        }
        let x = self
            .x
            .as_deref()
            .and_then(b64::decode)
            .ok_or(JoseError::BadKey)?;
        let y = self
            .y
            .as_deref()
            .and_then(b64::decode)
            .ok_or(JoseError::BadKey)?;
        if x.len() != 32 || y.len() != 32 {
            return Err(JoseError::BadKey);
        }
        let mut sec1 = vec![0x04];
        sec1.extend(x);
        sec1.extend(y);
        VerifyingKey::from_sec1_bytes(&sec1).map_err(|_| JoseError::BadKey)
    }

    fn rsa(&self) -> Result<rsa::pkcs1v15::VerifyingKey<Sha256>, JoseError> {
        use rsa::BoxedUint;
        if self.kty != "RSA" || self.d.is_some() {
            return Err(JoseError::BadKey);
        }
        let n = self
            .n
            .as_deref()
            .and_then(b64::decode)
            .ok_or(JoseError::BadKey)?;
        let e = self
            .e
            .as_deref()
            .and_then(b64::decode)
            .ok_or(JoseError::BadKey)?;
        let n = n.strip_prefix(&[0u8][..]).unwrap_or(&n);
        // 2048 to 8192 bits.
        if !(256..=1024).contains(&n.len()) || e.is_empty() || e.len() > 8 {
            return Err(JoseError::BadKey);
        }
        let bits = u32::try_from(n.len() * 8).map_err(|_| JoseError::BadKey)?;
        let n = BoxedUint::from_be_slice(n, bits).map_err(|_| JoseError::BadKey)?;
        let e = BoxedUint::from_be_slice(&e, 64).map_err(|_| JoseError::BadKey)?;
        let key = rsa::RsaPublicKey::new(n, e).map_err(|_| JoseError::BadKey)?;
        Ok(rsa::pkcs1v15::VerifyingKey::new(key))
    }
}

/// The JOSE header members this crate reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Algorithm.
    pub alg: String,
    /// Key ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Type, e.g. `JWT`, `at+jwt`, `dpop+jwt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    /// Embedded public key (DPoP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwk: Option<Jwk>,
    /// Critical extensions: none are understood, so any makes the token invalid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crit: Option<Value>,
}

/// A compact JWS split and decoded, signature not yet checked.
#[derive(Debug, Clone)]
pub struct Unverified<'a> {
    /// The header.
    pub header: Header,
    /// The algorithm named by the header.
    pub alg: Alg,
    signing_input: &'a str,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

/// Longest token accepted, in bytes.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Splits and decodes a compact JWS without checking its signature.
pub fn decode_unverified(token: &str) -> Result<Unverified<'_>, JoseError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JoseError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JoseError::Malformed);
    };
    let header_bytes = b64::decode(h).ok_or(JoseError::Malformed)?;
    let header: Header = serde_json::from_slice(&header_bytes).map_err(|_| JoseError::Malformed)?;
    if header.crit.is_some() {
        return Err(JoseError::Malformed);
    }
    let alg = Alg::parse(&header.alg).ok_or(JoseError::UnsupportedAlg)?;
    Ok(Unverified {
        header,
        alg,
        signing_input: &token[..h.len() + 1 + p.len()],
        payload: b64::decode(p).ok_or(JoseError::Malformed)?,
        signature: b64::decode(s).ok_or(JoseError::Malformed)?,
    })
}

impl Unverified<'_> {
    /// Checks the signature with `key`, allowing only `allowed` algorithms, and returns the
    /// payload parsed as `T`.
    pub fn verify<T: DeserializeOwned>(&self, key: &Jwk, allowed: &[Alg]) -> Result<T, JoseError> {
        if !allowed.contains(&self.alg) {
            return Err(JoseError::UnsupportedAlg);
        }
        if key.alg.as_deref().is_some_and(|a| a != self.header.alg) {
            return Err(JoseError::BadKey);
        }
        let msg = self.signing_input.as_bytes();
        match self.alg {
            Alg::ES256 => self.verify_p256(&key.p256()?)?,
            Alg::RS256 => {
                let sig = rsa::pkcs1v15::Signature::try_from(self.signature.as_slice())
                    .map_err(|_| JoseError::BadSignature)?;
                key.rsa()?
                    .verify(msg, &sig)
                    .map_err(|_| JoseError::BadSignature)?;
            }
        }
        self.payload()
    }

    fn verify_p256(&self, key: &VerifyingKey) -> Result<(), JoseError> {
        if self.alg != Alg::ES256 {
            return Err(JoseError::UnsupportedAlg);
        }
        let sig = Signature::from_slice(&self.signature).map_err(|_| JoseError::BadSignature)?;
        key.verify(self.signing_input.as_bytes(), &sig.normalize_s())
            .map_err(|_| JoseError::BadSignature)
    }

    fn payload<T: DeserializeOwned>(&self) -> Result<T, JoseError> {
        serde_json::from_slice(&self.payload).map_err(|_| JoseError::Malformed)
    }
}

/// Signs `claims` with ES256 under a header of `typ` and `kid` (and optionally an embedded
/// `jwk`, as DPoP proofs carry).
pub fn sign_es256(
    key: &SigningKey,
    typ: &str,
    kid: Option<&str>,
    embed_jwk: bool,
    claims: &impl Serialize,
) -> Result<String, JoseError> {
    let header = Header {
        alg: "ES256".into(),
        kid: kid.map(str::to_owned),
        typ: Some(typ.to_owned()),
        jwk: embed_jwk.then(|| Jwk::from_p256(key.verifying_key())),
        crit: None,
    };
    let h = serde_json::to_vec(&header).map_err(|_| JoseError::Malformed)?;
    let p = serde_json::to_vec(claims).map_err(|_| JoseError::Malformed)?;
    let mut out = b64::encode(&h);
    out.push('.');
    out.push_str(&b64::encode(&p));
    let sig: Signature = key.sign(out.as_bytes());
    out.push('.');
    out.push_str(&b64::encode(&sig.to_bytes()));
    Ok(out)
}

/// The provider's signing keys: one active key that signs, and retired keys that still verify
/// (and stay in the JWKS) until every token they signed has expired.
#[derive(Debug, Clone)]
pub struct KeySet {
    active: ActiveKey,
    retired: Vec<RetiredKey>,
}

#[derive(Debug, Clone)]
struct ActiveKey {
    kid: String,
    key: SigningKey,
    created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
struct RetiredKey {
    kid: String,
    key: VerifyingKey,
    verify_until: DateTime<Utc>,
}

/// The persisted form of a [`KeySet`]. It holds the private key: store it where only the
/// provider reads (the data directory, mode 0600), never in the database dump.
#[derive(Clone, Serialize, Deserialize)]
pub struct StoredKeySet {
    /// Active key ID.
    pub active_kid: String,
    /// Active private scalar, base64url of 32 bytes.
    pub active_d: String,
    /// When the active key was made.
    pub active_created_at: DateTime<Utc>,
    /// Retired public keys with their last verification instant.
    pub retired: Vec<StoredRetiredKey>,
}

impl std::fmt::Debug for StoredKeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKeySet")
            .field("active_kid", &self.active_kid)
            .field("retired", &self.retired.len())
            .finish_non_exhaustive()
    }
}

/// A retired key as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredRetiredKey {
    /// Key ID.
    pub kid: String,
    /// Public key as a JWK.
    pub jwk: Jwk,
    /// Tokens it signed are accepted until then.
    pub verify_until: DateTime<Utc>,
}

fn new_active(rng: &mut impl CryptoRng, now: DateTime<Utc>) -> Result<ActiveKey, JoseError> {
    let key = SigningKey::generate_from_rng(rng);
    let kid = Jwk::from_p256(key.verifying_key()).thumbprint()?;
    Ok(ActiveKey {
        kid,
        key,
        created_at: now,
    })
}

/// Claims every provider token carries and that [`KeySet::verify`] checks.
#[derive(Debug, Clone, Deserialize)]
struct TimeClaims {
    exp: i64,
    #[serde(default)]
    nbf: Option<i64>,
}

impl KeySet {
    /// A set with one fresh key.
    pub fn generate(rng: &mut impl CryptoRng, now: DateTime<Utc>) -> Result<Self, JoseError> {
        Ok(Self {
            active: new_active(rng, now)?,
            retired: Vec::new(),
        })
    }

    /// The key ID that signs now.
    pub fn active_kid(&self) -> &str {
        &self.active.kid
    }

    /// When the active key was made (to decide when to rotate).
    pub fn active_since(&self) -> DateTime<Utc> {
        self.active.created_at
    }

    /// Makes a new active key; the old one keeps verifying for `keep_for` (the longest lifetime
    /// of a token it may have signed, plus leeway), then [`KeySet::prune`] drops it.
    pub fn rotate(
        &mut self,
        rng: &mut impl CryptoRng,
        now: DateTime<Utc>,
        keep_for: Duration,
    ) -> Result<(), JoseError> {
        let old = std::mem::replace(&mut self.active, new_active(rng, now)?);
        self.retired.push(RetiredKey {
            kid: old.kid,
            key: *old.key.verifying_key(),
            verify_until: now + keep_for,
        });
        Ok(())
    }

    /// Drops retired keys past their last verification instant.
    pub fn prune(&mut self, now: DateTime<Utc>) {
        self.retired.retain(|k| now <= k.verify_until);
    }

    /// Signs claims with the active key.
    pub fn sign(&self, typ: &str, claims: &impl Serialize) -> Result<String, JoseError> {
        sign_es256(&self.active.key, typ, Some(&self.active.kid), false, claims)
    }

    /// Verifies a token this provider signed: known `kid` (retired keys only until their
    /// instant), ES256, the expected `typ`, and `exp`/`nbf` against `now`.
    pub fn verify<T: DeserializeOwned>(
        &self,
        token: &str,
        typ: &str,
        now: DateTime<Utc>,
    ) -> Result<T, JoseError> {
        let u = decode_unverified(token)?;
        if u.header.typ.as_deref() != Some(typ) {
            return Err(JoseError::WrongType);
        }
        let kid = u.header.kid.as_deref().ok_or(JoseError::UnknownKey)?;
        let key = if kid == self.active.kid {
            *self.active.key.verifying_key()
        } else {
            self.retired
                .iter()
                .find(|k| k.kid == kid && now <= k.verify_until)
                .map(|k| k.key)
                .ok_or(JoseError::UnknownKey)?
        };
        u.verify_p256(&key)?;
        let times: TimeClaims = u.payload()?;
        let t = now.timestamp();
        if t >= times.exp {
            return Err(JoseError::Expired);
        }
        if times.nbf.is_some_and(|nbf| t < nbf) {
            return Err(JoseError::NotYetValid);
        }
        u.payload()
    }

    /// The JWKS document: the active key and the retired keys still verifying.
    pub fn jwks(&self, now: DateTime<Utc>) -> Value {
        let mut keys = Vec::with_capacity(1 + self.retired.len());
        let entry = |kid: &str, key: &VerifyingKey| {
            let mut jwk = Jwk::from_p256(key);
            jwk.kid = Some(kid.to_owned());
            jwk.use_ = Some("sig".into());
            jwk.alg = Some("ES256".into());
            jwk
        };
        keys.push(entry(&self.active.kid, self.active.key.verifying_key()));
        for k in self.retired.iter().filter(|k| now <= k.verify_until) {
            keys.push(entry(&k.kid, &k.key));
        }
        serde_json::json!({ "keys": keys })
    }

    /// The form to persist.
    pub fn to_stored(&self) -> StoredKeySet {
        StoredKeySet {
            active_kid: self.active.kid.clone(),
            active_d: b64::encode(&self.active.key.to_bytes()),
            active_created_at: self.active.created_at,
            retired: self
                .retired
                .iter()
                .map(|k| StoredRetiredKey {
                    kid: k.kid.clone(),
                    jwk: Jwk::from_p256(&k.key),
                    verify_until: k.verify_until,
                })
                .collect(),
        }
    }

    /// Back from the persisted form; checks the active key ID matches its key.
    pub fn from_stored(s: &StoredKeySet) -> Result<Self, JoseError> {
        let d = b64::decode(&s.active_d).ok_or(JoseError::BadKey)?;
        let key = SigningKey::from_slice(&d).map_err(|_| JoseError::BadKey)?;
        if Jwk::from_p256(key.verifying_key()).thumbprint()? != s.active_kid {
            return Err(JoseError::BadKey);
        }
        let retired = s
            .retired
            .iter()
            .map(|r| {
                Ok(RetiredKey {
                    kid: r.kid.clone(),
                    key: r.jwk.p256()?,
                    verify_until: r.verify_until,
                })
            })
            .collect::<Result<_, JoseError>>()?;
        Ok(Self {
            active: ActiveKey {
                kid: s.active_kid.clone(),
                key,
                created_at: s.active_created_at,
            },
            retired,
        })
    }
}

/// Why a JWS was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoseError {
    /// Not a compact JWS with JSON header and payload.
    #[error("malformed token")]
    Malformed,
    /// `none`, an unknown algorithm, or one not allowed here.
    #[error("algorithm not accepted")]
    UnsupportedAlg,
    /// The key is malformed, private, or does not fit the algorithm.
    #[error("unusable key")]
    BadKey,
    /// No key with that ID (or it was retired too long ago).
    #[error("unknown key ID")]
    UnknownKey,
    /// The signature does not verify.
    #[error("the signature does not verify")]
    BadSignature,
    /// Wrong `typ` header.
    #[error("wrong token type")]
    WrongType,
    /// Past `exp`.
    #[error("the token has expired")]
    Expired,
    /// Before `nbf`.
    #[error("the token is not valid yet")]
    NotYetValid,
}

impl Problem for JoseError {
    fn code(&self) -> &'static str {
        match self {
            Self::Malformed => "jose_malformed",
            Self::UnsupportedAlg => "jose_alg",
            Self::BadKey => "jose_key",
            Self::UnknownKey => "jose_unknown_kid",
            Self::BadSignature => "jose_signature",
            Self::WrongType => "jose_typ",
            Self::Expired => "jose_expired",
            Self::NotYetValid => "jose_not_yet_valid",
        }
    }
    fn message_vi(&self) -> String {
        match self {
            Self::Malformed => "Mã thông báo không đúng định dạng",
            Self::UnsupportedAlg => "Thuật toán ký không được chấp nhận",
            Self::BadKey => "Khóa không dùng được",
            Self::UnknownKey => "Không biết khóa ký này",
            Self::BadSignature => "Chữ ký không hợp lệ",
            Self::WrongType => "Sai loại mã thông báo",
            Self::Expired => "Mã thông báo đã hết hạn",
            Self::NotYetValid => "Mã thông báo chưa có hiệu lực",
        }
        .to_owned()
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

    fn claims(exp_in: i64) -> Value {
        serde_json::json!({"sub": "x", "exp": now().timestamp() + exp_in})
    }

    #[test]
    fn rfc7638_thumbprint_example() {
        // The RSA key of RFC 7638 §3.1 and its published thumbprint.
        let jwk: Jwk = serde_json::from_value(serde_json::json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        }))
        .unwrap();
        assert_eq!(
            jwk.thumbprint().unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn sign_and_verify_with_the_key_set() {
        let mut rng = StdRng::seed_from_u64(1);
        let ks = KeySet::generate(&mut rng, now()).unwrap();
        let t = ks.sign("JWT", &claims(60)).unwrap();
        let v: Value = ks.verify(&t, "JWT", now()).unwrap();
        assert_eq!(v["sub"], "x");
        assert_eq!(
            ks.verify::<Value>(&t, "at+jwt", now()),
            Err(JoseError::WrongType)
        );
        assert_eq!(
            ks.verify::<Value>(&t, "JWT", now() + Duration::seconds(60)),
            Err(JoseError::Expired)
        );
        // Tampered payload.
        let parts: Vec<&str> = t.split('.').collect();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            b64::encode(br#"{"sub":"y","exp":9999999999}"#),
            parts[2]
        );
        assert_eq!(
            ks.verify::<Value>(&forged, "JWT", now()),
            Err(JoseError::BadSignature)
        );
        // alg none.
        let none = format!(
            "{}.{}.",
            b64::encode(br#"{"alg":"none","typ":"JWT"}"#),
            parts[1]
        );
        assert_eq!(
            ks.verify::<Value>(&none, "JWT", now()),
            Err(JoseError::UnsupportedAlg)
        );
    }

    #[test]
    fn rotation_keeps_old_tokens_valid_until_they_expire() {
        let mut rng = StdRng::seed_from_u64(2);
        let mut ks = KeySet::generate(&mut rng, now()).unwrap();
        let old_kid = ks.active_kid().to_owned();
        let old_token = ks.sign("JWT", &claims(600)).unwrap();
        ks.rotate(&mut rng, now(), Duration::seconds(600)).unwrap();
        assert_ne!(ks.active_kid(), old_kid);
        let new_token = ks.sign("JWT", &claims(600)).unwrap();
        let later = now() + Duration::seconds(300);
        assert!(ks.verify::<Value>(&old_token, "JWT", later).is_ok());
        assert!(ks.verify::<Value>(&new_token, "JWT", later).is_ok());
        let jwks = ks.jwks(later);
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
        // After the keep period the retired key leaves the JWKS and verifies nothing.
        let after = now() + Duration::seconds(601);
        ks.prune(after);
        assert_eq!(ks.jwks(after)["keys"].as_array().unwrap().len(), 1);
        assert_eq!(
            ks.verify::<Value>(&old_token, "JWT", now() + Duration::seconds(100)),
            Err(JoseError::UnknownKey)
        );
    }

    #[test]
    fn jwks_verifies_externally_and_round_trips_storage() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut ks = KeySet::generate(&mut rng, now()).unwrap();
        ks.rotate(&mut rng, now(), Duration::hours(1)).unwrap();
        let t = ks.sign("JWT", &claims(60)).unwrap();
        // A relying party: picks the key by kid from the published JWKS.
        let jwks = ks.jwks(now());
        let u = decode_unverified(&t).unwrap();
        let jwk: Jwk = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| serde_json::from_value::<Jwk>(k.clone()).unwrap())
            .find(|k| k.kid == u.header.kid)
            .unwrap();
        assert_eq!(jwk.thumbprint().unwrap(), ks.active_kid());
        let v: Value = u.verify(&jwk, &[Alg::ES256]).unwrap();
        assert_eq!(v["sub"], "x");
        assert_eq!(
            u.verify::<Value>(&jwk, &[Alg::RS256]),
            Err(JoseError::UnsupportedAlg)
        );
        let stored = serde_json::to_string(&ks.to_stored()).unwrap();
        let back = KeySet::from_stored(&serde_json::from_str(&stored).unwrap()).unwrap();
        assert_eq!(back.active_kid(), ks.active_kid());
        assert!(back.verify::<Value>(&t, "JWT", now()).is_ok());
        assert_eq!(back.jwks(now()), ks.jwks(now()));
    }

    #[test]
    fn rs256_verification() {
        use rsa::pkcs1v15::SigningKey as RsaSigningKey;
        use rsa::traits::PublicKeyParts;
        let mut rng = StdRng::seed_from_u64(4);
        let private = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
        let public = private.to_public_key();
        let jwk = Jwk {
            kty: "RSA".into(),
            crv: None,
            x: None,
            y: None,
            n: Some(b64::encode(&public.n().to_be_bytes())),
            e: Some(b64::encode(&public.e().to_be_bytes())),
            kid: None,
            use_: None,
            alg: None,
            d: None,
        };
        let signer = RsaSigningKey::<Sha256>::new(private);
        let input = format!(
            "{}.{}",
            b64::encode(br#"{"alg":"RS256"}"#),
            b64::encode(br#"{"sub":"rp"}"#)
        );
        let sig: rsa::pkcs1v15::Signature = signer.sign(input.as_bytes());
        let token = format!(
            "{input}.{}",
            b64::encode(&rsa::signature::SignatureEncoding::to_vec(&sig))
        );
        let u = decode_unverified(&token).unwrap();
        let v: Value = u.verify(&jwk, &[Alg::RS256]).unwrap();
        assert_eq!(v["sub"], "rp");
        let bad = format!("{input}x.{}", token.rsplit('.').next().unwrap());
        assert!(
            decode_unverified(&bad).is_err()
                || decode_unverified(&bad)
                    .unwrap()
                    .verify::<Value>(&jwk, &[Alg::RS256])
                    .is_err()
        );
    }

    proptest::proptest! {
        #[test]
        fn decoding_never_panics(s in ".{0,200}") {
            let _ = decode_unverified(&s);
        }
    }
}
