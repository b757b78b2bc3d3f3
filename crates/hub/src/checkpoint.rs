//! QR checkpoints (điểm kiểm soát bằng mã QR): a person's app shows a short-lived pass signed
//! with the hub's key; a checkpoint verifies it offline with the published JWKS
//! ([`verify_pass`], pure) and records the check-in with the hub, which refuses a pass seen
//! before. A pass carries no personal data: a pseudonymous token, the e-ID level, a one-time
//! nonce, its expiry and optionally a photo hash.

use chrono::{DateTime, Utc};
use dancu_eid::oidc::jws::{Alg, JoseError, Jwk, decode_unverified};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `typ` of a checkpoint pass.
pub const PASS_TYPE: &str = "dancu-pass+jwt";
/// How long a pass is valid, in seconds.
pub const PASS_SECONDS: i64 = 120;
/// Service code of check-in recording in the hub's rights.
pub const SERVICE_CHECKPOINT: &str = "checkpoint";
/// Clock difference tolerated between a checkpoint and the hub, in seconds.
const LEEWAY_SECONDS: i64 = 5;

/// The claims of a pass (short names keep the QR small).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassClaims {
    /// Pseudonymous token of the holder, new for every pass.
    pub sub: String,
    /// e-ID level (1 or 2).
    pub lvl: u8,
    /// One-time nonce.
    pub jti: String,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// SHA-256 of the holder's face photo (hex), when the app shows it for comparison.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ph: Option<String>,
}

/// Why a pass was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PassError {
    /// Not a pass at all.
    #[error("not a checkpoint pass")]
    Malformed,
    /// Signed by no key of the JWKS, or the signature does not verify.
    #[error("the pass is not signed by the hub")]
    BadSignature,
    /// Past its expiry.
    #[error("the pass has expired")]
    Expired,
}

impl PassError {
    /// Stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed => "pass_malformed",
            Self::BadSignature => "pass_signature_invalid",
            Self::Expired => "pass_expired",
        }
    }

    /// Vietnamese message.
    pub fn message_vi(&self) -> &'static str {
        match self {
            Self::Malformed => "Mã QR không phải thẻ qua điểm kiểm soát",
            Self::BadSignature => "Mã QR không do nền tảng ký",
            Self::Expired => "Mã QR đã hết hạn; hãy mở lại mã mới trên ứng dụng",
        }
    }
}

/// Verifies a pass offline with the hub's JWKS (as published at `/api/hub/v1/jwks`) at `now`.
pub fn verify_pass(token: &str, jwks: &Value, now: DateTime<Utc>) -> Result<PassClaims, PassError> {
    let unverified = decode_unverified(token).map_err(|_| PassError::Malformed)?;
    if unverified.header.typ.as_deref() != Some(PASS_TYPE) {
        return Err(PassError::Malformed);
    }
    let keys: Vec<Jwk> = jwks
        .get("keys")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|k| serde_json::from_value(k.clone()).ok())
                .collect()
        })
        .unwrap_or_default();
    let kid = unverified.header.kid.as_deref();
    let claims: PassClaims = keys
        .iter()
        .filter(|k| kid.is_none() || k.kid.as_deref() == kid)
        .find_map(
            |k| match unverified.verify::<PassClaims>(k, &[Alg::ES256]) {
                Ok(c) => Some(Ok(c)),
                Err(JoseError::Malformed) => Some(Err(PassError::Malformed)),
                Err(_) => None,
            },
        )
        .ok_or(PassError::BadSignature)??;
    if now.timestamp() >= claims.exp + LEEWAY_SECONDS {
        return Err(PassError::Expired);
    }
    Ok(claims)
}

/// A recorded check-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckIn {
    /// Organisation that runs the checkpoint.
    pub org: String,
    /// Place (the organisation's own code for the door, office or school).
    pub place: String,
    /// When.
    pub at: DateTime<Utc>,
    /// The pass's e-ID level.
    pub level: u8,
    /// The pass's pseudonymous token (the organisation never learns the ID number).
    pub token: String,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use dancu_eid::oidc::jws::sign_es256;
    use p256::ecdsa::SigningKey;
    use serde_json::json;

    fn jwks(key: &SigningKey) -> Value {
        let mut jwk = Jwk::from_p256(key.verifying_key());
        jwk.kid = Some("k1".into());
        json!({"keys": [jwk]})
    }

    fn pass(key: &SigningKey, exp: i64) -> String {
        let c = PassClaims {
            sub: "ps_1".into(),
            lvl: 2,
            jti: "n1".into(),
            iat: exp - PASS_SECONDS,
            exp,
            ph: None,
        };
        sign_es256(key, PASS_TYPE, Some("k1"), false, &c).unwrap()
    }

    #[test]
    fn a_pass_verifies_offline_until_it_expires_and_only_with_the_hub_key() {
        let hub = SigningKey::from_slice(&[7; 32]).unwrap();
        let other = SigningKey::from_slice(&[8; 32]).unwrap();
        let now = Utc.with_ymd_and_hms(2026, 3, 1, 3, 0, 0).unwrap();
        let p = pass(&hub, now.timestamp() + 60);
        assert_eq!(verify_pass(&p, &jwks(&hub), now).unwrap().lvl, 2);
        assert!(p.len() < 400, "compact enough for a QR: {}", p.len());
        let later = now + chrono::Duration::seconds(70);
        assert_eq!(verify_pass(&p, &jwks(&hub), later), Err(PassError::Expired));
        assert_eq!(
            verify_pass(&p, &jwks(&other), now),
            Err(PassError::BadSignature)
        );
        let forged = pass(&other, now.timestamp() + 60);
        assert_eq!(
            verify_pass(&forged, &jwks(&hub), now),
            Err(PassError::BadSignature)
        );
        assert_eq!(
            verify_pass("a.b.c", &jwks(&hub), now),
            Err(PassError::Malformed)
        );
    }
}
