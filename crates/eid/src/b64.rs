//! Base64url without padding (RFC 4648 §5), the encoding of JOSE, WebAuthn and PKCE.

use base64ct::{Base64UrlUnpadded, Encoding};

/// Encodes bytes as base64url without padding.
pub fn encode(bytes: &[u8]) -> String {
    Base64UrlUnpadded::encode_string(bytes)
}

/// Decodes base64url without padding; `None` on any other alphabet, padding or bad length.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    Base64UrlUnpadded::decode_vec(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rejects_padding_and_standard_alphabet() {
        assert!(decode("YQ==").is_none());
        assert!(decode("+/").is_none());
        assert_eq!(decode("YQ").unwrap(), b"a");
    }

    proptest! {
        #[test]
        fn round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            prop_assert_eq!(decode(&encode(&bytes)).unwrap(), bytes);
        }

        #[test]
        fn never_panics(s in ".{0,80}") {
            let _ = decode(&s);
        }
    }
}
