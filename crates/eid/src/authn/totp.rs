//! Time-based one-time passwords (RFC 6238): HMAC-SHA-1, 30-second steps, six digits, as
//! authenticator apps expect. Verification accepts one step either side for clock drift and
//! refuses any step at or before the last one used, so a code cannot be replayed.

use chrono::{DateTime, Utc};
use dancu_domain::Problem;
use hmac::{Hmac, KeyInit, Mac};
use rand::CryptoRng;
use serde::{Deserialize, Serialize};
use sha1::Sha1;
use subtle::ConstantTimeEq;

/// HOTP (RFC 4226) value of `counter` under `secret`, truncated to `digits` digits.
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> u32 {
    let mut m = <Hmac<Sha1> as KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    m.update(&counter.to_be_bytes());
    let h = m.finalize().into_bytes();
    let offset = usize::from(h[19] & 0x0f);
    let bin = u32::from_be_bytes([
        h[offset] & 0x7f,
        h[offset + 1],
        h[offset + 2],
        h[offset + 3],
    ]);
    bin % 10u32.pow(digits)
}

/// A TOTP credential as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotpCredential {
    /// The shared secret (20 bytes).
    pub secret: Vec<u8>,
    /// Digits per code (6).
    pub digits: u32,
    /// Step length in seconds (30).
    pub step_secs: u64,
    /// The last step a code was accepted for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_step: Option<u64>,
}

impl TotpCredential {
    /// A new credential with a random 160-bit secret.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut secret = vec![0u8; 20];
        rng.fill_bytes(&mut secret);
        Self {
            secret,
            digits: 6,
            step_secs: 30,
            last_step: None,
        }
    }

    /// The step number at `now`.
    pub fn step_at(&self, now: DateTime<Utc>) -> u64 {
        u64::try_from(now.timestamp()).unwrap_or(0) / self.step_secs.max(1)
    }

    /// The code for a step.
    pub fn code_for_step(&self, step: u64) -> String {
        format!(
            "{:0width$}",
            hotp(&self.secret, step, self.digits),
            width = self.digits as usize
        )
    }

    /// Verifies `code` at `now`, accepting steps now−1, now, now+1 that are after the last step
    /// used; on success remembers the step (store the credential back) and returns it.
    pub fn verify(&mut self, code: &str, now: DateTime<Utc>) -> Result<u64, TotpError> {
        let code = code.trim();
        if code.len() != self.digits as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(TotpError::Wrong);
        }
        let current = self.step_at(now);
        let mut replayed = false;
        for step in [current.saturating_sub(1), current, current + 1] {
            let expected = self.code_for_step(step);
            if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) {
                if self.last_step.is_some_and(|last| step <= last) {
                    replayed = true;
                    continue;
                }
                self.last_step = Some(step);
                return Ok(step);
            }
        }
        Err(if replayed {
            TotpError::Replayed
        } else {
            TotpError::Wrong
        })
    }

    /// The `otpauth://` URI that authenticator apps scan as a QR code.
    pub fn provisioning_uri(&self, issuer: &str, account: &str) -> String {
        format!(
            "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={}&period={}",
            percent(issuer),
            percent(account),
            base32(&self.secret),
            percent(issuer),
            self.digits,
            self.step_secs
        )
    }
}

/// RFC 4648 base32 without padding, as `otpauth` URIs carry secrets.
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((acc >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (5 - bits)) & 31) as usize]));
    }
    out
}

fn percent(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Why a TOTP code was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TotpError {
    /// Not a code for these steps.
    #[error("wrong code")]
    Wrong,
    /// A code already used (or older than one used).
    #[error("this code was already used; wait for the next one")]
    Replayed,
}

impl Problem for TotpError {
    fn code(&self) -> &'static str {
        match self {
            Self::Wrong => "eid_totp_wrong",
            Self::Replayed => "eid_totp_replayed",
        }
    }
    fn message_vi(&self) -> String {
        match self {
            Self::Wrong => "Mã xác thực không đúng",
            Self::Replayed => "Mã này đã được sử dụng; vui lòng chờ mã tiếp theo",
        }
        .to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, 0).unwrap()
    }

    /// RFC 6238 appendix B, SHA-1 column (the 20-byte ASCII secret, 8 digits).
    #[test]
    fn rfc6238_test_vectors() {
        let cred = TotpCredential {
            secret: b"12345678901234567890".to_vec(),
            digits: 8,
            step_secs: 30,
            last_step: None,
        };
        let vectors = [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ];
        for (t, code) in vectors {
            assert_eq!(cred.code_for_step(cred.step_at(at(t))), code, "T={t}");
            let mut c = cred.clone();
            assert!(c.verify(code, at(t)).is_ok(), "T={t}");
        }
    }

    /// RFC 4226 appendix D (HOTP, 6 digits).
    #[test]
    fn rfc4226_hotp_vectors() {
        let expected = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        for (counter, want) in expected.into_iter().enumerate() {
            assert_eq!(hotp(b"12345678901234567890", counter as u64, 6), want);
        }
    }

    #[test]
    fn window_and_replay() {
        let mut c = TotpCredential {
            secret: b"12345678901234567890".to_vec(),
            digits: 6,
            step_secs: 30,
            last_step: None,
        };
        let now = at(1_700_000_000);
        let step = c.step_at(now);
        let prev = c.code_for_step(step - 1);
        let next = c.code_for_step(step + 1);
        let far = c.code_for_step(step + 2);
        assert_eq!(c.verify(&far, now), Err(TotpError::Wrong));
        assert_eq!(c.verify(&prev, now), Ok(step - 1));
        assert_eq!(c.verify(&prev, now), Err(TotpError::Replayed));
        assert_eq!(c.verify(&next, now), Ok(step + 1));
        // The current step is now behind the last used one: refused as a replay.
        let cur = c.code_for_step(step);
        assert_eq!(c.verify(&cur, now), Err(TotpError::Replayed));
        assert_eq!(c.verify("12345", now), Err(TotpError::Wrong));
        assert_eq!(c.verify("abcdef", now), Err(TotpError::Wrong));
    }

    #[test]
    fn provisioning() {
        assert_eq!(
            base32(b"12345678901234567890"),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32(b"fooba"), "MZXW6YTB");
        let c = TotpCredential {
            secret: b"12345678901234567890".to_vec(),
            digits: 6,
            step_secs: 30,
            last_step: None,
        };
        assert_eq!(
            c.provisioning_uri("dancu", "Nguyễn An"),
            "otpauth://totp/dancu:Nguy%E1%BB%85n%20An?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=dancu&algorithm=SHA1&digits=6&period=30"
        );
    }
}
