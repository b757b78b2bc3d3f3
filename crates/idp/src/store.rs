//! Typed access to the document store: each record kind of the eid core as a JSON document with
//! its version, so a read-modify-write names the version it read.

use crate::IdpError;
use chrono::{DateTime, Utc};
use dancu_store::docs::{DocStore, DocWrite};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Record kinds, one per eid type.
pub mod kind {
    /// `Account`, keyed by personal ID.
    pub const ACCOUNT: &str = "eid_account";
    /// Argon2id PHC string of the passcode, keyed by personal ID.
    pub const PASSCODE: &str = "eid_passcode";
    /// Throttle state, keyed by `acct:<id>` or `src:<source key>`.
    pub const THROTTLE: &str = "eid_throttle";
    /// `OtpRecord`, keyed by a random ID.
    pub const OTP: &str = "eid_otp";
    /// The register's face reference for the demo verifier, keyed by personal ID.
    pub const FACE: &str = "eid_face_reference";
    /// Provider secrets (signing keys, OTP key, subject salt), keyed by name.
    pub const SECRET: &str = "oidc_secret";
    /// Registered clients, keyed by client ID.
    pub const CLIENT: &str = "oidc_client";
    /// Pending authorization requests, keyed by a random ID.
    pub const AUTHZ: &str = "oidc_authz";
    /// Browser sessions, keyed by the hash of the cookie.
    pub const SESSION: &str = "oidc_session";
    /// Authorization codes, keyed by the hash of the code.
    pub const CODE: &str = "oidc_code";
    /// Refresh-token families, keyed by family ID.
    pub const REFRESH: &str = "oidc_refresh";
    /// Access tokens issued (for revocation and userinfo), keyed by `jti`.
    pub const ACCESS: &str = "oidc_access";
    /// Revoked grants, keyed by grant ID.
    pub const REVOKED_GRANT: &str = "oidc_revoked_grant";
    /// Pushed authorization requests, keyed by the hash of the request URI.
    pub const PAR: &str = "oidc_par";
    /// Consents, keyed by `<personal id>/<client id>`.
    pub const CONSENT: &str = "oidc_consent";
    /// The holder's TOTP authenticator (pending until a first code confirms it), keyed by
    /// personal ID.
    pub const TOTP: &str = "eid_totp";
    /// The holder's passkeys, keyed by personal ID.
    pub const PASSKEYS: &str = "eid_passkeys";
    /// Which person a passkey credential ID belongs to, keyed by the hex of the ID.
    pub const PASSKEY_OWNER: &str = "eid_passkey_owner";
    /// Outstanding WebAuthn challenges (one use each), keyed by a random ID.
    pub const WEBAUTHN_CHALLENGE: &str = "eid_webauthn_challenge";
}

/// Lower-case hex of bytes (document keys of hashed secrets).
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Reads a document and decodes it; `None` when absent.
pub fn load<T: DeserializeOwned>(
    docs: &dyn DocStore,
    kind: &str,
    key: &str,
) -> Result<Option<(T, u64)>, IdpError> {
    match docs.get(kind, key)? {
        None => Ok(None),
        Some(d) => {
            let v = serde_json::from_str(&d.json)
                .map_err(|e| IdpError::internal(&format!("stored {kind}/{key}: {e}")))?;
            Ok(Some((v, d.version)))
        }
    }
}

/// A put of a record, for [`DocStore::commit_docs`].
pub fn put<T: Serialize>(
    kind: &str,
    key: &str,
    expected_version: u64,
    value: &T,
    expires_at: Option<DateTime<Utc>>,
) -> Result<DocWrite, IdpError> {
    Ok(DocWrite::Put {
        kind: kind.to_owned(),
        key: key.to_owned(),
        expected_version,
        json: serde_json::to_string(value).map_err(|e| IdpError::internal(&e.to_string()))?,
        expires_at,
    })
}

/// A usage-history entry, for [`DocStore::commit_docs`].
pub fn usage(entry: &dancu_eid::history::UsageEntry) -> Result<DocWrite, IdpError> {
    Ok(DocWrite::Usage {
        subject: entry.person.to_string(),
        at: entry.at,
        json: serde_json::to_string(entry).map_err(|e| IdpError::internal(&e.to_string()))?,
    })
}
