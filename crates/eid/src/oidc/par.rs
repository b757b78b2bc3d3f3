//! Pushed authorization requests (RFC 9126): the client posts its parameters first and gets a
//! short-lived, single-use `request_uri` to send the browser with.

use super::OidcError;
use super::grants::{new_token, token_hash};
use chrono::{DateTime, Duration, Utc};
use rand::CryptoRng;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// Prefix RFC 9126 gives `request_uri` values.
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// Default lifetime of a pushed request (60 s, within RFC 9126's advice of 5 to 600 s).
pub const PAR_LIFETIME: Duration = Duration::seconds(60);

/// A pushed request as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushedRequest {
    /// SHA-256 of the `request_uri`.
    pub uri_hash: [u8; 32],
    /// The client that pushed it.
    pub client_id: String,
    /// The authorization parameters, as pushed (already validated by the caller).
    pub params: serde_json::Value,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// Used already.
    pub used: bool,
}

impl PushedRequest {
    /// Stores `params` for `client_id`; returns the record and the `request_uri`.
    pub fn push(
        rng: &mut impl CryptoRng,
        client_id: &str,
        params: serde_json::Value,
        now: DateTime<Utc>,
        lifetime: Duration,
    ) -> (Self, String) {
        let uri = format!("{REQUEST_URI_PREFIX}{}", new_token(rng));
        let rec = Self {
            uri_hash: token_hash(&uri),
            client_id: client_id.to_owned(),
            params,
            expires_at: now + lifetime,
            used: false,
        };
        (rec, uri)
    }

    /// Takes the parameters at the authorization endpoint: once, before expiry, by the client
    /// that pushed them.
    pub fn take(
        &mut self,
        request_uri: &str,
        client_id: &str,
        now: DateTime<Utc>,
    ) -> Result<&serde_json::Value, OidcError> {
        let bad = OidcError::InvalidRequest("invalid or expired request_uri");
        if !bool::from(token_hash(request_uri).ct_eq(&self.uri_hash))
            || client_id != self.client_id
            || self.used
            || now >= self.expires_at
        {
            return Err(bad);
        }
        self.used = true;
        Ok(&self.params)
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

    #[test]
    fn single_use_by_the_pushing_client_before_expiry() {
        let mut rng = StdRng::seed_from_u64(1);
        let params = serde_json::json!({"scope": "openid"});
        let (rec, uri) = PushedRequest::push(&mut rng, "bank", params.clone(), now(), PAR_LIFETIME);
        assert!(uri.starts_with(REQUEST_URI_PREFIX));
        let mut r = rec.clone();
        assert!(r.take(&uri, "other", now()).is_err());
        assert_eq!(r.take(&uri, "bank", now()).unwrap(), &params);
        assert!(r.take(&uri, "bank", now()).is_err(), "single use");
        let mut r = rec.clone();
        assert!(
            r.take(&uri, "bank", now() + PAR_LIFETIME).is_err(),
            "expired request_uri"
        );
        let mut r = rec;
        assert!(
            r.take("urn:ietf:params:oauth:request_uri:guess", "bank", now())
                .is_err()
        );
    }
}
