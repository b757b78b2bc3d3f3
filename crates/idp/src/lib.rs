//! The e-ID service (dịch vụ định danh và xác thực điện tử): the use-case layer between the pure
//! `dancu-eid` core and the HTTP surface.
//!
//! What it owns:
//! - loading and storing the core's records (accounts, passcode hashes, throttle states, one-time
//!   codes, clients, sessions, pending authorizations, codes, refresh families, pushed requests,
//!   consents) as documents of a [`dancu_store::docs::DocStore`], on SQLite or PostgreSQL, each
//!   read-modify-write naming the version it read;
//! - reading the person from the register (claims, date of birth for the age rules, death and
//!   card status for the locks that follow the register);
//! - the provider's secrets: the ES256 signing keys (generated on first start, kept in the
//!   document store, rotatable with the old key verifying until its tokens expire), the key of
//!   the one-time codes and the salt of pairwise subjects;
//! - the holder's second factors: a TOTP authenticator (enrolled with a first code) and
//!   passkeys (WebAuthn registration and login ceremonies, one-time challenges, counters);
//! - the holder's management of them: passcode change, removing the TOTP app or a passkey;
//! - the usage history (five years) of every authentication and consent;
//! - sending one-time codes through an [`sms::SmsGateway`].
//!
//! What it must **not** do: HTTP types, HTML, or a database driver. Every method blocks (call it
//! from a blocking thread); every refusal is an [`IdpError`].

mod accounts;
mod error;
mod factors;
mod flow;
mod security;
pub mod sms;
pub mod store;

pub use accounts::{Level1Registration, Level2Raise, LoginOutcome};
pub use error::IdpError;
pub use factors::{PasskeyAssertion, TotpEnrolment};
pub use flow::{AuthorizeStep, ClientRegistration, RegisteredClient, TokenRequest, UserinfoAnswer};
pub use security::PasskeySummary;

use chrono::{DateTime, Duration, Utc};
use dancu_domain::clock::Clock;
use dancu_eid::authn::otp::{OtpKey, OtpPolicy};
use dancu_eid::authn::passcode::{PasscodeHasher, PasscodeParams};
use dancu_eid::authn::throttle::LoginThrottle;
use dancu_eid::face::FaceVerifier;
use dancu_eid::oidc::grants::RefreshPolicy;
use dancu_eid::oidc::issue::TokenConfig;
use dancu_eid::oidc::jws::{KeySet, StoredKeySet};
use dancu_eid::oidc::subject::SubjectSalt;
use dancu_eid::webauthn::RelyingParty;
use dancu_registry::Registry;
use dancu_store::docs::DocStore;
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use store::kind;

/// Settings of the provider.
#[derive(Debug, Clone)]
pub struct IdpConfig {
    /// Issuer identifier: the base URL the endpoints hang under (`{issuer}/token`, …).
    pub issuer: String,
    /// Argon2id parameters of passcodes.
    pub passcode: PasscodeParams,
    /// Token lifetimes.
    pub tokens: TokenConfig,
    /// Refresh-token lifetimes.
    pub refresh: RefreshPolicy,
    /// One-time code lifetimes and attempts.
    pub otp: OtpPolicy,
    /// Login throttling per account and per source address.
    pub throttle: LoginThrottle,
    /// How long a browser session lasts.
    pub session_lifetime: Duration,
    /// How long the signing keys are cached before the store is read again (other nodes may
    /// have rotated).
    pub key_cache: std::time::Duration,
    /// The WebAuthn relying party of passkeys: by default the issuer's host as RP ID and the
    /// issuer's origin as the only allowed origin, user verification required.
    pub webauthn: RelyingParty,
}

impl IdpConfig {
    /// Defaults for an issuer URL (no trailing slash).
    pub fn new(issuer: &str) -> Self {
        let issuer = issuer.trim_end_matches('/');
        Self {
            issuer: issuer.to_owned(),
            passcode: PasscodeParams::default(),
            tokens: TokenConfig::new(issuer),
            refresh: RefreshPolicy::default(),
            otp: OtpPolicy::default(),
            throttle: LoginThrottle::default(),
            session_lifetime: Duration::hours(8),
            key_cache: std::time::Duration::from_secs(30),
            webauthn: relying_party_of(issuer),
        }
    }

    /// The URL of an endpoint path such as `/token`.
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }
}

/// The WebAuthn relying party of an issuer URL: RP ID the host (without port), origin the
/// scheme, host and port.
fn relying_party_of(issuer: &str) -> RelyingParty {
    let (scheme, rest) = issuer.split_once("://").unwrap_or(("https", issuer));
    let authority = rest.split('/').next().unwrap_or(rest);
    let host = match authority.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    };
    RelyingParty {
        id: host.to_owned(),
        origins: vec![format!("{scheme}://{authority}")],
        require_user_verification: true,
    }
}

/// What the provider needs from the outside.
#[derive(Debug, Clone)]
pub struct IdpDeps {
    /// Records.
    pub docs: Arc<dyn DocStore>,
    /// The population register.
    pub registry: Arc<Registry>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Where one-time codes go.
    pub sms: Arc<dyn SmsGateway>,
    /// The face check of level-1 registration.
    pub face: Arc<dyn FaceVerifier>,
    /// A seed for reproducible tests; `None` seeds from the operating system.
    pub seed: Option<u64>,
}

pub use sms::SmsGateway;

#[derive(Debug, Clone)]
struct KeyCache {
    keys: KeySet,
    version: u64,
    loaded: std::time::Instant,
}

/// The e-ID service.
#[derive(Debug)]
pub struct Idp {
    cfg: IdpConfig,
    docs: Arc<dyn DocStore>,
    registry: Arc<Registry>,
    clock: Arc<dyn Clock>,
    sms: Arc<dyn SmsGateway>,
    face: Arc<dyn FaceVerifier>,
    rng: Mutex<StdRng>,
    hasher: PasscodeHasher,
    otp_key: OtpKey,
    salt: SubjectSalt,
    keys: RwLock<KeyCache>,
}

impl Idp {
    /// Opens the service: loads the provider's secrets, generating them on first start.
    pub fn open(cfg: IdpConfig, deps: IdpDeps) -> Result<Self, IdpError> {
        let mut rng = match deps.seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => rand::make_rng(),
        };
        let hasher = PasscodeHasher::new(cfg.passcode)?;
        let docs = deps.docs;
        let otp_key = OtpKey::new(secret_bytes(docs.as_ref(), "otp_key", &mut rng)?);
        let salt = SubjectSalt::new(secret_bytes(docs.as_ref(), "subject_salt", &mut rng)?);
        let now = deps.clock.now();
        let (keys, version) =
            match store::load::<StoredKeySet>(docs.as_ref(), kind::SECRET, "signing_keys")? {
                Some((s, v)) => (KeySet::from_stored(&s)?, v),
                None => {
                    let ks = KeySet::generate(&mut rng, now)?;
                    match docs.put(
                        kind::SECRET,
                        "signing_keys",
                        0,
                        &to_json(&ks.to_stored())?,
                        None,
                    ) {
                        Ok(v) => (ks, v),
                        // Another node generated them first: use theirs.
                        Err(dancu_store::StoreError::Exists(_)) => {
                            let (s, v) = store::load::<StoredKeySet>(
                                docs.as_ref(),
                                kind::SECRET,
                                "signing_keys",
                            )?
                            .ok_or_else(|| IdpError::internal("signing keys vanished"))?;
                            (KeySet::from_stored(&s)?, v)
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            };
        Ok(Self {
            cfg,
            docs,
            registry: deps.registry,
            clock: deps.clock,
            sms: deps.sms,
            face: deps.face,
            rng: Mutex::new(rng),
            hasher,
            otp_key,
            salt,
            keys: RwLock::new(KeyCache {
                keys,
                version,
                loaded: std::time::Instant::now(),
            }),
        })
    }

    /// The settings.
    pub fn config(&self) -> &IdpConfig {
        &self.cfg
    }

    /// The document store the service keeps its records in (shared with other small
    /// use-cases of the same deployment: the register's correction requests, the web portals'
    /// sessions).
    pub fn docs(&self) -> &Arc<dyn DocStore> {
        &self.docs
    }

    /// The clock's now.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    fn rng(&self) -> MutexGuard<'_, StdRng> {
        // A poisoned RNG mutex only means another thread panicked mid-draw; the generator state
        // is still a valid generator.
        self.rng.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The signing keys, re-read from the store when the cache is older than configured.
    pub fn keys(&self) -> Result<KeySet, IdpError> {
        if let Ok(c) = self.keys.read()
            && c.loaded.elapsed() < self.cfg.key_cache
        {
            return Ok(c.keys.clone());
        }
        let (stored, version) =
            store::load::<StoredKeySet>(self.docs.as_ref(), kind::SECRET, "signing_keys")?
                .ok_or_else(|| IdpError::internal("signing keys missing"))?;
        let keys = KeySet::from_stored(&stored)?;
        if let Ok(mut c) = self.keys.write() {
            *c = KeyCache {
                keys: keys.clone(),
                version,
                loaded: std::time::Instant::now(),
            };
        }
        Ok(keys)
    }

    /// The JWKS document: the active key and retired keys still verifying.
    pub fn jwks(&self) -> Result<serde_json::Value, IdpError> {
        Ok(self.keys()?.jwks(self.now()))
    }

    /// Rotates the signing key: a new key signs from now on; the old one stays in the JWKS and
    /// keeps verifying for the longest token lifetime plus a minute. Returns the new key ID.
    pub fn rotate_keys(&self) -> Result<String, IdpError> {
        let now = self.now();
        let (stored, version) =
            store::load::<StoredKeySet>(self.docs.as_ref(), kind::SECRET, "signing_keys")?
                .ok_or_else(|| IdpError::internal("signing keys missing"))?;
        let mut keys = KeySet::from_stored(&stored)?;
        keys.prune(now);
        keys.rotate(
            &mut *self.rng(),
            now,
            self.cfg.tokens.longest_lifetime() + Duration::minutes(1),
        )?;
        let v = self.docs.put(
            kind::SECRET,
            "signing_keys",
            version,
            &to_json(&keys.to_stored())?,
            None,
        )?;
        let kid = keys.active_kid().to_owned();
        if let Ok(mut c) = self.keys.write() {
            *c = KeyCache {
                keys,
                version: v,
                loaded: std::time::Instant::now(),
            };
        }
        Ok(kid)
    }

    /// The version of the signing keys in the cache (for tests and metrics).
    pub fn keys_version(&self) -> u64 {
        self.keys.read().map(|c| c.version).unwrap_or(0)
    }

    /// Deletes expired records (codes, sessions, pushed requests, replay keys) and usage
    /// entries older than the five-year retention; returns how many rows went.
    pub fn purge(&self) -> Result<u64, IdpError> {
        let now = self.now();
        let a = self.docs.purge_expired(now)?;
        let cutoff = now
            .checked_sub_months(chrono::Months::new(
                12 * dancu_eid::history::RETENTION_YEARS as u32,
            ))
            .unwrap_or(now);
        let b = self.docs.purge_usage_before(cutoff)?;
        Ok(a + b)
    }
}

#[cfg(test)]
mod tests;

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, IdpError> {
    serde_json::to_string(v).map_err(|e| IdpError::internal(&e.to_string()))
}

/// A 32-byte secret kept under `name`, made on first use.
fn secret_bytes(docs: &dyn DocStore, name: &str, rng: &mut StdRng) -> Result<[u8; 32], IdpError> {
    let parse = |s: &str| -> Result<[u8; 32], IdpError> {
        let s: String = serde_json::from_str(s).map_err(|e| IdpError::internal(&e.to_string()))?;
        let mut out = [0u8; 32];
        if s.len() != 64 {
            return Err(IdpError::internal("stored secret has the wrong length"));
        }
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16)
                .map_err(|_| IdpError::internal("stored secret is not hex"))?;
        }
        Ok(out)
    };
    if let Some(d) = docs.get(kind::SECRET, name)? {
        return parse(&d.json);
    }
    let mut b = [0u8; 32];
    rand::Rng::fill_bytes(rng, &mut b);
    match docs.put(kind::SECRET, name, 0, &to_json(&store::hex(&b))?, None) {
        Ok(_) => Ok(b),
        Err(dancu_store::StoreError::Exists(_)) => match docs.get(kind::SECRET, name)? {
            Some(d) => parse(&d.json),
            None => Err(IdpError::internal("secret vanished")),
        },
        Err(e) => Err(e.into()),
    }
}
