//! Short-lived access tokens for members' subsystems (OAuth 2.0 client credentials).
//!
//! A subsystem proves who it is once with a `private_key_jwt` client assertion at the hub's
//! token endpoint and receives an opaque random token for [`TOKEN_SECONDS`], scoped to some of
//! the services its rights open. It then calls services with `Authorization: Bearer`, and the
//! hub checks each call with a hash and a map lookup instead of a signature verification and a
//! durable `jti` claim.
//!
//! The token itself is never stored: the document store keeps its SHA-256 (so a copy of the
//! database hands out no usable token) with the grant (member, subsystem, the key that
//! authenticated, scope, expiry), and every node keeps the grants it has seen in memory. Another
//! node or a restarted one finds a token it has not seen in the store. Every call re-checks the
//! grant against the current members: once the subsystem or the key that obtained the token is
//! gone from the configuration, or the key's `not_after` has passed, its tokens stop working.

use chrono::{DateTime, Utc};
use dancu_eid::oidc::jws::Jwk;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::RwLock;

/// Lifetime of an access token.
pub const TOKEN_SECONDS: i64 = 600;
/// Kind of the token grants in the document store.
pub(crate) const TOKEN_KIND: &str = "hub_access_token";

/// What the hub answers at its token endpoint (RFC 6749 §5.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessToken {
    /// The bearer token.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until it expires.
    pub expires_in: i64,
    /// The services it opens, separated by spaces.
    pub scope: String,
}

/// What a token stands for, as stored under the token's hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TokenGrant {
    /// Member organisation.
    pub org: String,
    /// Subsystem.
    pub subsystem: String,
    /// The public key whose assertion obtained the token.
    pub key: Jwk,
    /// Services the token opens.
    pub scope: Vec<String>,
    /// The token is refused from this instant on.
    pub expires_at: DateTime<Utc>,
}

/// A token's SHA-256: the key of its grant in memory.
pub(crate) fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The store key of a token: its SHA-256, hex.
pub(crate) fn token_hash(token: &str) -> String {
    hex::encode(token_digest(token))
}

/// A fresh token: 32 random bytes, base64url without padding.
pub(crate) fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::Rng::fill_bytes(&mut rand::rng(), &mut bytes);
    <base64ct::Base64UrlUnpadded as base64ct::Encoding>::encode_string(&bytes)
}

/// Two public keys are the same key.
pub(crate) fn same_key(a: &Jwk, b: &Jwk) -> bool {
    a.kty == b.kty && a.crv == b.crv && a.x == b.x && a.y == b.y && a.n == b.n && a.e == b.e
}

/// A grant as this node keeps it: with the caller it admits, as last checked against the
/// members' configuration.
#[derive(Debug)]
pub(crate) struct CachedGrant {
    pub grant: TokenGrant,
    /// The caller, built when the grant was checked.
    pub client: crate::service::Client,
    /// The configuration generation under which the grant's key was found registered.
    pub generation: u64,
}

impl CachedGrant {
    /// Admits the call at `now` without looking the key up again: valid while the
    /// configuration is still the one of [`Self::generation`].
    pub fn admit(
        &self,
        now: DateTime<Utc>,
    ) -> Result<crate::service::Client, crate::service::HubError> {
        if self.grant.expires_at <= now {
            return Err(crate::service::HubError::Unauthenticated(
                "access token expired",
            ));
        }
        if let Some(t) = self.client.key_not_after
            && t <= now
        {
            return Err(dancu_exchange::rights::Refusal::ClientKeyExpired(t).into());
        }
        Ok(self.client.clone())
    }
}

/// The grants this node has seen, by token digest.
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    grants: RwLock<HashMap<[u8; 32], CachedGrant>>,
}

impl TokenCache {
    /// Runs `f` over a token's grant, if this node has seen it, under the map's read lock
    /// (no reference count changes on the hub's busiest path).
    pub fn with<T>(&self, digest: &[u8; 32], f: impl FnOnce(&CachedGrant) -> T) -> Option<T> {
        self.grants
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(digest)
            .map(f)
    }

    /// Remembers a grant (or its newer check).
    pub fn insert(&self, digest: [u8; 32], grant: CachedGrant) {
        self.grants
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(digest, grant);
    }

    /// Forgets the grants expired at `now`.
    pub fn purge(&self, now: DateTime<Utc>) {
        self.grants
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, g| g.grant.expires_at > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_stored_only_as_their_hash() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        let h = token_hash(&a);
        assert_eq!(h.len(), 64);
        assert!(!h.contains(&a));
        assert_eq!(h, token_hash(&a));
        assert_ne!(h, token_hash(&b));
    }
}
