//! Passcodes (mật khẩu / mã PIN của tài khoản định danh): six digits chosen by the holder, stored
//! only as an Argon2id hash in a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`).
//!
//! Six digits are weak against anyone holding the hashes, so the hash is only one layer: online
//! guessing is bounded by [`super::throttle`], and the store must keep the hashes out of reach.

use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version};
use dancu_domain::{PartialDate, Problem};
use rand::CryptoRng;
use serde::{Deserialize, Serialize};

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasscodeParams {
    /// Memory in KiB (default 19,456 = 19 MiB, the OWASP baseline).
    pub m_kib: u32,
    /// Iterations (default 2).
    pub t: u32,
    /// Lanes (default 1).
    pub p: u32,
}

impl Default for PasscodeParams {
    fn default() -> Self {
        Self {
            m_kib: 19 * 1024,
            t: 2,
            p: 1,
        }
    }
}

/// Hashes and verifies passcodes at configured parameters.
#[derive(Debug, Clone)]
pub struct PasscodeHasher {
    params: PasscodeParams,
    argon: Argon2<'static>,
}

/// The outcome of a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasscodeCheck {
    /// Right passcode. `needs_rehash` when the stored hash used other parameters than the
    /// configured ones: the caller should store a fresh hash now that it has the passcode.
    Valid {
        /// Whether to store a new hash.
        needs_rehash: bool,
    },
    /// Wrong passcode.
    Invalid,
}

impl PasscodeHasher {
    /// A hasher at `params`; refuses parameters Argon2 does not accept.
    pub fn new(params: PasscodeParams) -> Result<Self, PasscodeError> {
        let p = Params::new(params.m_kib, params.t, params.p, None)
            .map_err(|_| PasscodeError::BadParameters)?;
        Ok(Self {
            params,
            argon: Argon2::new(Algorithm::Argon2id, Version::V0x13, p),
        })
    }

    /// The configured parameters.
    pub fn params(&self) -> PasscodeParams {
        self.params
    }

    /// Hashes a passcode with a fresh 16-byte salt, returning the PHC string.
    pub fn hash(&self, passcode: &str, rng: &mut impl CryptoRng) -> Result<String, PasscodeError> {
        let mut salt = [0u8; 16];
        rng.fill_bytes(&mut salt);
        let h = self
            .argon
            .hash_password_with_salt(passcode.as_bytes(), &salt)
            .map_err(|_| PasscodeError::BadParameters)?;
        Ok(h.to_string())
    }

    /// Verifies a passcode against a stored PHC string, using the parameters the string names
    /// (so hashes made under older parameters keep working and are flagged for rehash).
    pub fn verify(&self, passcode: &str, phc: &str) -> Result<PasscodeCheck, PasscodeError> {
        let hash = PasswordHash::new(phc).map_err(|_| PasscodeError::MalformedHash)?;
        if hash.algorithm.as_str() != "argon2id" {
            return Err(PasscodeError::MalformedHash);
        }
        let stored = Params::try_from(&hash).map_err(|_| PasscodeError::MalformedHash)?;
        match self.argon.verify_password(passcode.as_bytes(), &hash) {
            Ok(()) => Ok(PasscodeCheck::Valid {
                needs_rehash: stored.m_cost() != self.params.m_kib
                    || stored.t_cost() != self.params.t
                    || stored.p_cost() != self.params.p
                    || hash.version != Some(0x13),
            }),
            Err(argon2::password_hash::Error::PasswordInvalid) => Ok(PasscodeCheck::Invalid),
            Err(_) => Err(PasscodeError::MalformedHash),
        }
    }
}

/// Checks a new passcode: exactly six ASCII digits, not one digit repeated, not a run up or down
/// (123456, 987654), and not the holder's date of birth as DDMMYY or YYMMDD when it is known.
pub fn check_new_passcode(passcode: &str, dob: Option<&PartialDate>) -> Result<(), PasscodeError> {
    let b = passcode.as_bytes();
    if b.len() != 6 || !b.iter().all(u8::is_ascii_digit) {
        return Err(PasscodeError::Shape);
    }
    let steps: Vec<i16> = b
        .windows(2)
        .map(|w| i16::from(w[1]) - i16::from(w[0]))
        .collect();
    let trivial = [0, 1, -1].iter().any(|d| steps.iter().all(|s| s == d));
    if trivial {
        return Err(PasscodeError::TooSimple);
    }
    if let Some(PartialDate::Full(d)) = dob {
        let forms = [
            d.format("%d%m%y").to_string(),
            d.format("%y%m%d").to_string(),
        ];
        if forms.iter().any(|f| f == passcode) {
            return Err(PasscodeError::TooSimple);
        }
    }
    Ok(())
}

/// Why a passcode operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasscodeError {
    /// Not six digits.
    #[error("the passcode must be exactly six digits")]
    Shape,
    /// Easy to guess.
    #[error("the passcode is too easy to guess")]
    TooSimple,
    /// The configured Argon2 parameters are out of range.
    #[error("the passcode hashing parameters are out of range")]
    BadParameters,
    /// The stored hash is not an Argon2id PHC string.
    #[error("the stored passcode hash is malformed")]
    MalformedHash,
}

impl Problem for PasscodeError {
    fn code(&self) -> &'static str {
        match self {
            Self::Shape => "eid_passcode_shape",
            Self::TooSimple => "eid_passcode_too_simple",
            Self::BadParameters => "eid_passcode_parameters",
            Self::MalformedHash => "eid_passcode_hash_malformed",
        }
    }
    fn message_vi(&self) -> String {
        match self {
            Self::Shape => "Mật mã phải gồm đúng 6 chữ số",
            Self::TooSimple => "Mật mã quá dễ đoán",
            Self::BadParameters => "Tham số băm mật mã không hợp lệ",
            Self::MalformedHash => "Dữ liệu mật mã đã lưu không hợp lệ",
        }
        .to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    // Small parameters keep the tests fast; the default is exercised once.
    fn cheap() -> PasscodeHasher {
        PasscodeHasher::new(PasscodeParams {
            m_kib: 64,
            t: 1,
            p: 1,
        })
        .unwrap()
    }

    #[test]
    fn hash_and_verify() {
        let mut rng = StdRng::seed_from_u64(1);
        let h = cheap();
        let phc = h.hash("271828", &mut rng).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{phc}");
        assert_eq!(
            h.verify("271828", &phc).unwrap(),
            PasscodeCheck::Valid {
                needs_rehash: false
            }
        );
        assert_eq!(h.verify("271829", &phc).unwrap(), PasscodeCheck::Invalid);
        // Same passcode, new salt, new string.
        assert_ne!(h.hash("271828", &mut rng).unwrap(), phc);
    }

    #[test]
    fn default_parameters_and_rehash_flag() {
        let mut rng = StdRng::seed_from_u64(2);
        let strong = PasscodeHasher::new(PasscodeParams::default()).unwrap();
        let phc = strong.hash("314159", &mut rng).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        // A hasher configured otherwise still verifies, and asks for a rehash.
        assert_eq!(
            cheap().verify("314159", &phc).unwrap(),
            PasscodeCheck::Valid { needs_rehash: true }
        );
    }

    #[test]
    fn malformed_hashes_are_errors_not_mismatches() {
        let h = cheap();
        for bad in [
            "",
            "plain",
            "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaA",
            "$argon2id$",
        ] {
            assert_eq!(
                h.verify("123456", bad),
                Err(PasscodeError::MalformedHash),
                "{bad}"
            );
        }
        assert_eq!(
            PasscodeHasher::new(PasscodeParams {
                m_kib: 1,
                t: 1,
                p: 1
            })
            .unwrap_err(),
            PasscodeError::BadParameters
        );
    }

    #[test]
    fn new_passcode_rules() {
        let dob = PartialDate::parse("1990-05-17").unwrap();
        assert!(check_new_passcode("271828", Some(&dob)).is_ok());
        for bad in ["12345", "1234567", "12a456", "１２３４５６"] {
            assert_eq!(
                check_new_passcode(bad, None),
                Err(PasscodeError::Shape),
                "{bad}"
            );
        }
        for weak in ["000000", "123456", "987654", "170590", "900517"] {
            assert_eq!(
                check_new_passcode(weak, Some(&dob)),
                Err(PasscodeError::TooSimple),
                "{weak}"
            );
        }
    }
}
