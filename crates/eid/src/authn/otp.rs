//! One-time codes (mã OTP) sent by SMS: six digits, stored only as a keyed hash, valid for a few
//! minutes and for a bounded number of attempts, used once.
//!
//! Sending is not done here: the caller hands the code from [`issue`] to an SMS gateway and
//! stores the returned [`OtpRecord`]. A six-digit code has only a million values, so a plain hash
//! would be reversible by trying them all; the record keeps an HMAC-SHA256 under a server key
//! ([`OtpKey`], kept outside the database) and a per-record salt.

use crate::account::PhoneProof;
use crate::phone::PhoneNumber;
use chrono::{DateTime, Duration, Utc};
use dancu_domain::Problem;
use hmac::{Hmac, KeyInit, Mac};
use rand::{CryptoRng, RngExt};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The server key that one-time codes are hashed under.
#[derive(Clone)]
pub struct OtpKey([u8; 32]);

impl OtpKey {
    /// From 32 bytes of configuration.
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl std::fmt::Debug for OtpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OtpKey(..)")
    }
}

/// What a code is for; a code for one purpose never serves another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OtpPurpose {
    /// Proving a phone number at registration or change.
    PhoneOwnership,
    /// A login factor.
    Login,
    /// Resetting a forgotten passcode.
    Recovery,
}

/// Lifetime and attempt limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OtpPolicy {
    /// How long a code is valid (default 5 minutes).
    pub lifetime: Duration,
    /// Wrong entries allowed before the code is burnt (default 5).
    pub max_attempts: u8,
    /// Minimum time before another code may be sent for the same purpose (default 60 s).
    pub resend_after: Duration,
}

impl Default for OtpPolicy {
    fn default() -> Self {
        Self {
            lifetime: Duration::minutes(5),
            max_attempts: 5,
            resend_after: Duration::seconds(60),
        }
    }
}

/// A code as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OtpRecord {
    /// Purpose.
    pub purpose: OtpPurpose,
    /// Where it went (E.164 number).
    pub target: String,
    /// Per-record salt.
    pub salt: [u8; 16],
    /// HMAC-SHA256(key, salt ‖ purpose ‖ target ‖ code).
    pub mac: [u8; 32],
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
    /// When it stops being valid.
    pub expires_at: DateTime<Utc>,
    /// Wrong entries so far.
    pub attempts: u8,
    /// Wrong entries allowed.
    pub max_attempts: u8,
    /// Whether it was used (successfully) already.
    pub consumed: bool,
}

/// The code to send; shown to nobody but the gateway.
#[derive(Clone, PartialEq, Eq)]
pub struct OtpCode(String);

impl OtpCode {
    /// The six digits.
    pub fn digits(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for OtpCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OtpCode(******)")
    }
}

fn mac(key: &OtpKey, salt: &[u8; 16], purpose: OtpPurpose, target: &str, code: &str) -> [u8; 32] {
    // Infallible: HMAC takes keys of any length.
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(&key.0)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    m.update(salt);
    m.update(&[purpose as u8]);
    m.update(&(target.len() as u32).to_be_bytes());
    m.update(target.as_bytes());
    m.update(code.as_bytes());
    m.finalize().into_bytes().into()
}

/// Issues a code for `target`: returns the record to store and the code to send.
pub fn issue(
    key: &OtpKey,
    rng: &mut impl CryptoRng,
    purpose: OtpPurpose,
    target: &str,
    now: DateTime<Utc>,
    policy: &OtpPolicy,
) -> (OtpRecord, OtpCode) {
    let code = format!("{:06}", rng.random_range(0..1_000_000u32));
    let mut salt = [0u8; 16];
    rng.fill_bytes(&mut salt);
    let record = OtpRecord {
        purpose,
        target: target.to_owned(),
        salt,
        mac: mac(key, &salt, purpose, target, &code),
        issued_at: now,
        expires_at: now + policy.lifetime,
        attempts: 0,
        max_attempts: policy.max_attempts,
        consumed: false,
    };
    (record, OtpCode(code))
}

impl OtpRecord {
    /// Checks an entered code. A right code consumes the record; a wrong one counts an attempt.
    /// The caller stores the record back whatever the outcome.
    pub fn verify(
        &mut self,
        key: &OtpKey,
        purpose: OtpPurpose,
        entered: &str,
        now: DateTime<Utc>,
    ) -> Result<(), OtpError> {
        if self.consumed {
            return Err(OtpError::AlreadyUsed);
        }
        if now >= self.expires_at {
            return Err(OtpError::Expired);
        }
        if self.attempts >= self.max_attempts {
            return Err(OtpError::TooManyAttempts);
        }
        let entered = entered.trim();
        let shaped = entered.len() == 6 && entered.bytes().all(|b| b.is_ascii_digit());
        let expected = mac(key, &self.salt, purpose, &self.target, entered);
        if shaped && purpose == self.purpose && bool::from(expected.ct_eq(&self.mac)) {
            self.consumed = true;
            return Ok(());
        }
        self.attempts += 1;
        if self.attempts >= self.max_attempts {
            Err(OtpError::TooManyAttempts)
        } else {
            Err(OtpError::Wrong {
                remaining: self.max_attempts - self.attempts,
            })
        }
    }

    /// Verifies a phone-ownership code and returns the proof a registration needs.
    pub fn prove_phone(
        &mut self,
        key: &OtpKey,
        phone: &PhoneNumber,
        entered: &str,
        now: DateTime<Utc>,
    ) -> Result<PhoneProof, OtpError> {
        if self.target != phone.as_str() {
            return Err(OtpError::WrongTarget);
        }
        self.verify(key, OtpPurpose::PhoneOwnership, entered, now)?;
        Ok(PhoneProof {
            phone: phone.clone(),
            verified_at: now,
        })
    }

    /// Whether a new code for the same purpose and target may be sent now.
    pub fn may_resend(&self, now: DateTime<Utc>, policy: &OtpPolicy) -> bool {
        self.consumed || now - self.issued_at >= policy.resend_after
    }
}

/// Why a code was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OtpError {
    /// Wrong code.
    #[error("wrong code; {remaining} attempts left")]
    Wrong {
        /// Attempts left.
        remaining: u8,
    },
    /// The code went to another number than the one being proved.
    #[error("the code was sent to another number")]
    WrongTarget,
    /// Past its lifetime.
    #[error("the code has expired; request a new one")]
    Expired,
    /// Burnt by wrong entries.
    #[error("too many wrong entries; request a new code")]
    TooManyAttempts,
    /// Used once already.
    #[error("the code was already used")]
    AlreadyUsed,
}

impl Problem for OtpError {
    fn code(&self) -> &'static str {
        match self {
            Self::Wrong { .. } => "eid_otp_wrong",
            Self::WrongTarget => "eid_otp_wrong_target",
            Self::Expired => "eid_otp_expired",
            Self::TooManyAttempts => "eid_otp_too_many_attempts",
            Self::AlreadyUsed => "eid_otp_used",
        }
    }
    fn message_vi(&self) -> String {
        match self {
            Self::Wrong { remaining } => format!("Mã OTP không đúng; còn {remaining} lần thử"),
            Self::WrongTarget => "Mã OTP được gửi tới số điện thoại khác".to_owned(),
            Self::Expired => "Mã OTP đã hết hạn; vui lòng lấy mã mới".to_owned(),
            Self::TooManyAttempts => "Nhập sai quá số lần cho phép; vui lòng lấy mã mới".to_owned(),
            Self::AlreadyUsed => "Mã OTP đã được sử dụng".to_owned(),
        }
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

    fn setup() -> (OtpKey, OtpRecord, OtpCode, PhoneNumber) {
        let mut rng = StdRng::seed_from_u64(7);
        let key = OtpKey::new([9; 32]);
        let phone = PhoneNumber::parse("0912345678").unwrap();
        let (rec, code) = issue(
            &key,
            &mut rng,
            OtpPurpose::PhoneOwnership,
            phone.as_str(),
            now(),
            &OtpPolicy::default(),
        );
        (key, rec, code, phone)
    }

    #[test]
    fn right_code_once() {
        let (key, mut rec, code, phone) = setup();
        assert_eq!(code.digits().len(), 6);
        assert_eq!(format!("{code:?}"), "OtpCode(******)");
        let later = now() + Duration::seconds(30);
        let proof = rec.prove_phone(&key, &phone, code.digits(), later).unwrap();
        assert_eq!(proof.verified_at, later);
        let other = PhoneNumber::parse("0987654321").unwrap();
        assert_eq!(
            rec.clone().prove_phone(&key, &other, code.digits(), later),
            Err(OtpError::WrongTarget)
        );
        assert_eq!(
            rec.verify(&key, OtpPurpose::PhoneOwnership, code.digits(), later),
            Err(OtpError::AlreadyUsed)
        );
    }

    #[test]
    fn not_stored_in_clear() {
        let (_, rec, code, _) = setup();
        let json = serde_json::to_string(&rec).unwrap();
        assert!(!json.contains(code.digits()));
    }

    #[test]
    fn expiry_attempts_and_purpose() {
        let (key, rec, code, _) = setup();
        let mut r = rec.clone();
        assert_eq!(
            r.verify(
                &key,
                OtpPurpose::PhoneOwnership,
                code.digits(),
                now() + Duration::minutes(5)
            ),
            Err(OtpError::Expired)
        );
        let mut r = rec.clone();
        assert_eq!(
            r.verify(&key, OtpPurpose::Login, code.digits(), now()),
            Err(OtpError::Wrong { remaining: 4 })
        );
        let wrong = if code.digits() == "000000" {
            "000001"
        } else {
            "000000"
        };
        for left in (1..4).rev() {
            assert_eq!(
                r.verify(&key, OtpPurpose::PhoneOwnership, wrong, now()),
                Err(OtpError::Wrong { remaining: left })
            );
        }
        assert_eq!(
            r.verify(&key, OtpPurpose::PhoneOwnership, wrong, now()),
            Err(OtpError::TooManyAttempts)
        );
        // Even the right code is refused now.
        assert_eq!(
            r.verify(&key, OtpPurpose::PhoneOwnership, code.digits(), now()),
            Err(OtpError::TooManyAttempts)
        );
        // Another key (another deployment) does not accept it either.
        let mut r = rec;
        assert!(
            r.verify(
                &OtpKey::new([1; 32]),
                OtpPurpose::PhoneOwnership,
                code.digits(),
                now()
            )
            .is_err()
        );
    }

    #[test]
    fn resend_spacing() {
        let (_, rec, _, _) = setup();
        let p = OtpPolicy::default();
        assert!(!rec.may_resend(now() + Duration::seconds(59), &p));
        assert!(rec.may_resend(now() + Duration::seconds(60), &p));
    }
}
