//! PKCE (RFC 7636) with the S256 method only: `plain` is refused, as OAuth 2.1 and FAPI 2.0 ask.

use super::OidcError;
use crate::b64;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The S256 challenge of a verifier: base64url(SHA-256(verifier)).
pub fn challenge_s256(verifier: &str) -> String {
    b64::encode(&Sha256::digest(verifier.as_bytes()))
}

/// Checks a challenge as sent to the authorization endpoint: method `S256`, and 43 base64url
/// characters (a SHA-256 digest).
pub fn check_challenge(challenge: &str, method: Option<&str>) -> Result<(), OidcError> {
    if method != Some("S256") {
        return Err(OidcError::InvalidRequest(
            "code_challenge_method must be S256",
        ));
    }
    match b64::decode(challenge) {
        Some(d) if d.len() == 32 && challenge.len() == 43 => Ok(()),
        _ => Err(OidcError::InvalidRequest("malformed code_challenge")),
    }
}

/// Verifies a `code_verifier` at the token endpoint against the stored challenge. The verifier
/// must be 43 to 128 characters of `[A-Za-z0-9-._~]`.
pub fn verify_s256(verifier: Option<&str>, challenge: &str) -> Result<(), OidcError> {
    let v = verifier.ok_or(OidcError::PkceMismatch)?;
    let shaped = (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    if !shaped {
        return Err(OidcError::PkceMismatch);
    }
    if bool::from(challenge_s256(v).as_bytes().ct_eq(challenge.as_bytes())) {
        Ok(())
    } else {
        Err(OidcError::PkceMismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RFC 7636 appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn rfc7636_example() {
        assert_eq!(challenge_s256(VERIFIER), CHALLENGE);
        assert!(verify_s256(Some(VERIFIER), CHALLENGE).is_ok());
        assert!(check_challenge(CHALLENGE, Some("S256")).is_ok());
    }

    #[test]
    fn missing_or_wrong_verifier() {
        assert_eq!(verify_s256(None, CHALLENGE), Err(OidcError::PkceMismatch));
        let wrong = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXl";
        assert_eq!(
            verify_s256(Some(wrong), CHALLENGE),
            Err(OidcError::PkceMismatch)
        );
        assert_eq!(
            verify_s256(Some("short"), CHALLENGE),
            Err(OidcError::PkceMismatch)
        );
        // plain: the challenge itself as verifier.
        assert_eq!(
            verify_s256(Some(CHALLENGE), CHALLENGE),
            Err(OidcError::PkceMismatch)
        );
    }

    #[test]
    fn plain_method_refused() {
        assert!(check_challenge(CHALLENGE, Some("plain")).is_err());
        assert!(check_challenge(CHALLENGE, None).is_err());
        assert!(check_challenge("abc", Some("S256")).is_err());
    }

    proptest! {
        #[test]
        fn any_good_verifier_matches_its_own_challenge(v in "[A-Za-z0-9._~-]{43,128}") {
            prop_assert!(verify_s256(Some(&v), &challenge_s256(&v)).is_ok());
            prop_assert!(check_challenge(&challenge_s256(&v), Some("S256")).is_ok());
        }

        #[test]
        fn never_panics(v in ".{0,200}", c in ".{0,60}") {
            let _ = verify_s256(Some(&v), &c);
            let _ = check_challenge(&c, Some("S256"));
        }
    }
}
