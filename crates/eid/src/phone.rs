//! Vietnamese mobile phone numbers (số điện thoại di động) as e-ID accounts hold them.

use dancu_domain::Problem;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A Vietnamese mobile number in E.164 form, `+84` followed by nine digits whose first is 3, 5,
/// 7, 8 or 9 (the mobile prefixes since the 2018 renumbering).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PhoneNumber(String);

/// Why a text is not a mobile number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a Vietnamese mobile number (expected 0xxxxxxxxx or +84xxxxxxxxx)")]
pub struct PhoneError;

impl Problem for PhoneError {
    fn code(&self) -> &'static str {
        "eid_phone_invalid"
    }
    fn message_vi(&self) -> String {
        "Số điện thoại di động không hợp lệ (dạng 0xxxxxxxxx hoặc +84xxxxxxxxx)".to_owned()
    }
}

impl PhoneNumber {
    /// Parses `0912345678`, `+84912345678` or `84912345678`; spaces, dots and dashes between
    /// digits are ignored.
    pub fn parse(s: &str) -> Result<Self, PhoneError> {
        if s.len() > 32 {
            return Err(PhoneError);
        }
        let trimmed = s.trim();
        let (plus, rest) = match trimmed.strip_prefix('+') {
            Some(r) => (true, r),
            None => (false, trimmed),
        };
        let mut digits = String::with_capacity(12);
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '.' | '-' => {}
                _ => return Err(PhoneError),
            }
        }
        let national = if let Some(n) = digits.strip_prefix("84").filter(|n| n.len() == 9) {
            n
        } else if let Some(n) = digits.strip_prefix('0').filter(|_| !plus) {
            n
        } else {
            return Err(PhoneError);
        };
        let ok = national.len() == 9
            && matches!(national.as_bytes()[0], b'3' | b'5' | b'7' | b'8' | b'9');
        if !ok {
            return Err(PhoneError);
        }
        Ok(Self(format!("+84{national}")))
    }

    /// The E.164 form, `+84…`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number with all but the last three digits hidden, for pages and messages.
    pub fn masked(&self) -> String {
        let tail = &self.0[self.0.len() - 3..];
        format!("0*******{tail}")
    }
}

impl TryFrom<String> for PhoneNumber {
    type Error = PhoneError;
    fn try_from(s: String) -> Result<Self, PhoneError> {
        Self::parse(&s)
    }
}

impl From<PhoneNumber> for String {
    fn from(p: PhoneNumber) -> String {
        p.0
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Debug output ends up in logs: keep the number out of them.
        write!(f, "PhoneNumber({})", self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_the_usual_spellings() {
        for s in [
            "0912345678",
            "+84912345678",
            "84912345678",
            "091 234 5678",
            "+84 91-234.5678",
        ] {
            assert_eq!(
                PhoneNumber::parse(s).unwrap().as_str(),
                "+84912345678",
                "{s}"
            );
        }
    }

    #[test]
    fn rejects_landlines_short_and_foreign() {
        for s in [
            "0241234567",
            "091234567",
            "+14155550100",
            "+840912345678",
            "09123456789",
            "abc",
            "",
        ] {
            assert!(PhoneNumber::parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn debug_masks() {
        let p = PhoneNumber::parse("0912345678").unwrap();
        assert_eq!(format!("{p:?}"), "PhoneNumber(0*******678)");
    }

    proptest! {
        #[test]
        fn never_panics(s in ".{0,40}") {
            let _ = PhoneNumber::parse(&s);
        }

        #[test]
        fn parsed_is_canonical(n in "[35789][0-9]{8}") {
            let p = PhoneNumber::parse(&format!("0{n}")).unwrap();
            prop_assert_eq!(PhoneNumber::parse(p.as_str()).unwrap(), p.clone());
            prop_assert_eq!(p.as_str().len(), 12);
        }
    }
}
