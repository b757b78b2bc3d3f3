//! The hub's services: authenticate the calling subsystem, decide with its rights, do the work
//! over the register, and log every exchange (served, refused or failed) to the tamper-evident
//! log before answering. An exchange that cannot be logged is not served.
//!
//! Services: attribute match (`verify_attributes`), CMND → personal ID (`verify_cmnd`) and
//! data retrieval (`ekyc`, answered as a JWS signed by the hub). Consents are kept in the
//! document store; fees are metered from the log itself, so a statement is exactly what the
//! log shows.

use crate::audit::{AuditError, AuditLog, AuditSettings, load_or_create_key, read_entries_since};
use crate::cards::{CardInput, CardTrust, CardVerification, SERVICE_CARD_VERIFY};
use crate::commit::{Batcher, GroupLog, LogReceipt};
use crate::events::{
    EventNotice, FeedPage, SERVICE_CHANGE_EVENTS, Subscription, by_id, stream_person,
};
use crate::members::HubConfig;
use crate::tokens::{
    AccessToken, CachedGrant, TOKEN_KIND, TOKEN_SECONDS, TokenCache, TokenGrant, new_token,
    same_key, token_digest, token_hash,
};
use chrono::{DateTime, Utc};
use dancu_domain::clock::Clock;
use dancu_domain::{CmndNumber, PartialDate, PersonalId, Problem};
use dancu_eid::oidc::OidcError;
use dancu_eid::oidc::client_auth::{AssertionCheck, JWT_BEARER, verify_client_assertion};
use dancu_eid::oidc::jws::{Jwk, sign_es256};
use dancu_exchange::consent::{Consent, ConsentKind};
use dancu_exchange::fees::{MeteredCall, Tariff, monthly_statements};
use dancu_exchange::log::record::{AuditRecord, ExchangeResult};
use dancu_exchange::log::segment::Appended;
use dancu_exchange::log::tracker::{AccessLine, person_view};
use dancu_exchange::matching::{self, Claims, CmndResolution, FieldAnswer};
use dancu_exchange::rights::{
    AccessRequest, Grant, Limits, Refusal, decide, right_for, vietnam_date,
};
use dancu_store::docs::DocStore;
use dancu_store::{SearchQuery, Store, StoreError};
use p256::ecdsa::SigningKey;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Service code of attribute match.
pub const SERVICE_VERIFY_ATTRIBUTES: &str = "verify_attributes";
/// Service code of CMND → personal ID.
pub const SERVICE_VERIFY_CMND: &str = "verify_cmnd";
/// Service code of data retrieval.
pub const SERVICE_EKYC: &str = "ekyc";
/// The one field CMND resolution exploits.
pub const FIELD_PERSONAL_ID: &str = "personal_id";
const CONSENT_KIND: &str = "hub_consent";
const JTI_KIND: &str = "hub_jti";
/// Longest client-assertion lifetime accepted.
const MAX_ASSERTION_SECONDS: i64 = 300;
/// Most people a CMND lookup considers by name.
const CMND_CANDIDATES: u32 = 1000;

/// Why a call was not served.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The client assertion is missing, malformed, unknown or wrongly signed.
    #[error("client authentication failed: {0}")]
    Unauthenticated(&'static str),
    /// The assertion's `jti` was used before.
    #[error("the client assertion was used before")]
    Replay,
    /// The access token does not open this service.
    #[error("the access token's scope does not include the service {0}")]
    InsufficientScope(String),
    /// A token was asked for a scope the subsystem's rights do not open.
    #[error("the scope {0} is not a service this subsystem has a right to")]
    InvalidScope(String),
    /// The rights refuse the call.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The request is malformed.
    #[error("{en}")]
    Invalid {
        /// Stable code.
        code: &'static str,
        /// Vietnamese message.
        vi: String,
        /// English message.
        en: String,
    },
    /// A member, subsystem, key or right the administration names does not exist.
    #[error("{en}")]
    NotFound {
        /// Stable code.
        code: &'static str,
        /// Vietnamese message.
        vi: String,
        /// English message.
        en: String,
    },
    /// A member, subsystem, key or right to add exists already.
    #[error("{en}")]
    Conflict {
        /// Stable code.
        code: &'static str,
        /// Vietnamese message.
        vi: String,
        /// English message.
        en: String,
    },
    /// No person with that personal ID.
    #[error("no person with this personal ID")]
    PersonNotFound,
    /// No such consent of the person.
    #[error("no such consent")]
    ConsentNotFound,
    /// No such batch job of the caller.
    #[error("no such batch job")]
    JobNotFound,
    /// The exchange could not be logged, so it was not served.
    #[error("the exchange log cannot take the record: {0}")]
    AuditUnavailable(String),
    /// A store or signing failure.
    #[error("internal error: {0}")]
    Internal(String),
}

impl HubError {
    fn invalid(code: &'static str, vi: &str, en: &str) -> Self {
        Self::Invalid {
            code,
            vi: vi.to_owned(),
            en: en.to_owned(),
        }
    }

    /// The HTTP status that fits.
    pub fn status(&self) -> u16 {
        match self {
            Self::Unauthenticated(_) | Self::Replay => 401,
            Self::InsufficientScope(_) => 403,
            Self::InvalidScope(_) => 400,
            Self::Refused(Refusal::QuotaExceeded { .. } | Refusal::RateLimited { .. }) => 429,
            Self::Refused(_) => 403,
            Self::Invalid { .. } => 422,
            Self::NotFound { .. } => 404,
            Self::Conflict { .. } => 409,
            Self::PersonNotFound | Self::ConsentNotFound | Self::JobNotFound => 404,
            Self::AuditUnavailable(_) => 503,
            Self::Internal(_) => 500,
        }
    }
}

impl Problem for HubError {
    fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated(_) => "client_unauthenticated",
            Self::Replay => "client_assertion_replayed",
            Self::InsufficientScope(_) => "insufficient_scope",
            Self::InvalidScope(_) => "invalid_scope",
            Self::Refused(r) => r.code(),
            Self::Invalid { code, .. }
            | Self::NotFound { code, .. }
            | Self::Conflict { code, .. } => code,
            Self::PersonNotFound => "person_not_found",
            Self::ConsentNotFound => "consent_not_found",
            Self::JobNotFound => "job_not_found",
            Self::AuditUnavailable(_) => "audit_log_unavailable",
            Self::Internal(_) => "internal_error",
        }
    }
    fn message_vi(&self) -> String {
        match self {
            Self::Unauthenticated(why) => {
                format!("Xác thực hệ thống kết nối không thành công ({why})")
            }
            Self::Replay => "Bằng chứng xác thực (client assertion) đã được dùng trước đó".into(),
            Self::InsufficientScope(s) => {
                format!("Mã truy cập không bao gồm dịch vụ {s}")
            }
            Self::InvalidScope(s) => {
                format!("Phạm vi {s} không phải dịch vụ mà hệ thống này có quyền khai thác")
            }
            Self::Refused(r) => r.message_vi(),
            Self::Invalid { vi, .. } | Self::NotFound { vi, .. } | Self::Conflict { vi, .. } => {
                vi.clone()
            }
            Self::PersonNotFound => "Không có công dân mang số định danh này".into(),
            Self::ConsentNotFound => "Không tìm thấy sự đồng ý này".into(),
            Self::JobNotFound => "Không có lô đối chiếu này".into(),
            Self::AuditUnavailable(_) => {
                "Nhật ký trao đổi không ghi được; yêu cầu không được thực hiện. Vui lòng thử lại sau"
                    .into()
            }
            Self::Internal(_) => "Lỗi hệ thống; yêu cầu chưa được thực hiện".into(),
        }
    }
    fn message_en(&self) -> String {
        match self {
            Self::AuditUnavailable(_) => {
                "The exchange log cannot record the call, so it was not carried out; try again later"
                    .into()
            }
            Self::Internal(_) => "Internal error; the request was not carried out".into(),
            other => other.to_string(),
        }
    }
}

fn internal(e: impl std::fmt::Display) -> HubError {
    HubError::Internal(e.to_string())
}

/// A subsystem that proved who it is for this call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// Member organisation.
    pub org: String,
    /// Subsystem.
    pub subsystem: String,
    /// Expiry of the key that signed the assertion.
    pub key_not_after: Option<DateTime<Utc>>,
    /// The services an access token opens (`None`: authenticated by a client assertion,
    /// which is not limited to some services).
    pub scope: Option<Arc<[String]>>,
}

impl Client {
    /// Refuses a service outside the access token's scope.
    pub fn check_scope(&self, service: &str) -> Result<(), HubError> {
        match &self.scope {
            Some(s) if !s.iter().any(|x| x == service) => {
                Err(HubError::InsufficientScope(service.to_owned()))
            }
            _ => Ok(()),
        }
    }
}

/// What every call declares besides its data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallMeta {
    /// Purpose code.
    pub purpose: String,
    /// Officer or operator on whose behalf the call is made.
    #[serde(default)]
    pub end_user: Option<String>,
    /// Case or dossier reference.
    #[serde(default)]
    pub case_ref: Option<String>,
}

/// The answer of attribute match.
#[derive(Debug, Clone, Serialize)]
pub struct AttributeAnswer {
    /// One answer per claimed field (no register values).
    pub fields: Vec<FieldAnswer>,
    /// Seq of the exchange in the log.
    pub audit_seq: u64,
}

/// The outcome of an exchange whose log record has been handed to the log writer: released
/// only once the record is durable, with the record's seq. If the record cannot be logged the
/// outcome is withheld and the caller gets `audit_log_unavailable` instead.
#[derive(Debug)]
#[must_use = "the outcome is released by wait() or release()"]
pub struct Pending<T> {
    outcome: Result<T, HubError>,
    /// `None` when the exchange failed before anything was decided (nothing is logged).
    receipt: Option<LogReceipt>,
}

impl<T> Pending<T> {
    fn failed(e: HubError) -> Self {
        Self {
            outcome: Err(e),
            receipt: None,
        }
    }

    fn settle(
        outcome: Result<T, HubError>,
        logged: Result<Appended, AuditError>,
    ) -> Result<(T, u64), HubError> {
        match logged {
            Ok(a) => outcome.map(|v| (v, a.seq)),
            Err(e) => Err(HubError::AuditUnavailable(e.to_string())),
        }
    }

    /// Blocks until the record is durable; not for an async runtime's worker thread.
    pub fn wait(self) -> Result<(T, u64), HubError> {
        match self.receipt {
            None => self.outcome.map(|v| (v, 0)),
            Some(r) => Self::settle(self.outcome, r.wait()),
        }
    }

    /// Awaits the record without holding a thread.
    pub async fn release(self) -> Result<(T, u64), HubError> {
        match self.receipt {
            None => self.outcome.map(|v| (v, 0)),
            Some(r) => Self::settle(self.outcome, r.committed().await),
        }
    }
}

/// The answer of CMND resolution.
#[derive(Debug, Clone, Serialize)]
pub struct CmndAnswer {
    /// The resolution (unique, ambiguous, not found).
    pub resolution: CmndResolution,
    /// Seq of the exchange in the log.
    pub audit_seq: u64,
}

/// The answer of data retrieval.
#[derive(Debug, Clone, Serialize)]
pub struct EkycAnswer {
    /// Compact JWS (ES256, signed by the hub) over the data, the person, the caller, the
    /// purpose, the case and the log seq.
    pub jws: String,
    /// The same data, unsigned, for convenience.
    pub data: Value,
    /// Seq of the exchange in the log.
    pub audit_seq: u64,
}

/// A person's grant of consent.
#[derive(Debug, Clone, Deserialize)]
pub struct ConsentGrant {
    /// Organisation that may receive the data.
    pub recipient_org: String,
    /// Fields it may receive.
    pub fields: BTreeSet<String>,
    /// Purpose.
    pub purpose: String,
    /// Once or repeatedly.
    pub kind: ConsentKind,
    /// Start (default now).
    #[serde(default)]
    pub valid_from: Option<DateTime<Utc>>,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
}

/// The hub.
#[derive(Debug)]
pub struct Hub {
    config: Arc<ConfigCell>,
    config_file: Option<PathBuf>,
    store: Arc<dyn Store>,
    docs: Arc<dyn DocStore>,
    clock: Arc<dyn Clock>,
    audit: GroupLog,
    jti_claims: Batcher<(String, DateTime<Utc>), Result<bool, String>>,
    tokens: TokenCache,
    audit_dir: PathBuf,
    jobs_dir: PathBuf,
    batch_local: crate::batch::LocalJobs,
    limits: Mutex<HashMap<String, Limits>>,
    /// Nodes alive over this hub's database, this one included: rates are divided between
    /// them (see [`crate::quota`]).
    live_nodes: Arc<std::sync::atomic::AtomicU32>,
    response_key: SigningKey,
    response_kid: String,
    tariff: Tariff,
    card_trust: CardTrust,
    /// What attribute match compares, in memory, over an embedded register (see
    /// [`crate::match_index`]).
    match_index: Option<Arc<crate::match_index::MatchIndex>>,
    /// Where each person's exchanges are in the log (the citizen's tracker).
    tracker: Arc<crate::tracker_index::TrackerIndex>,
    /// This node's name among the nodes over one database.
    node: String,
    /// Copies this node's tracker lines for the other nodes, when the database is shared.
    shipper: Option<crate::shared_tracker::Worker>,
    /// Takes the configuration changes other nodes make, when shared.
    follower: Option<crate::shared_tracker::Worker>,
    /// The other nodes' response-signing public keys, when shared (kept current by the
    /// follower), so that this node's JWKS verifies what any node signed.
    node_keys: Arc<RwLock<Vec<Jwk>>>,
}

/// Document kind of each node's public response-signing key (key: the node's name).
const NODE_KEY_KIND: &str = "hub_node_key";

/// The response-signing public keys the nodes over one database published.
fn published_keys(docs: &dyn DocStore) -> Result<Vec<Jwk>, StoreError> {
    Ok(docs
        .list(NODE_KEY_KIND, "", 1000)?
        .into_iter()
        .filter_map(|(_, d)| serde_json::from_str(&d.json).ok())
        .collect())
}

/// The configuration every call reads, and what changes it.
#[derive(Debug)]
struct ConfigCell {
    current: RwLock<Arc<HubConfig>>,
    /// The version of the database's configuration this node runs (when shared).
    version: AtomicU64,
    /// Changes are made one at a time.
    writer: Mutex<()>,
    /// Counts the configurations this node has run: what was checked against one generation
    /// holds until the next.
    generation: AtomicU64,
}

impl ConfigCell {
    fn get(&self) -> Arc<HubConfig> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set(&self, c: HubConfig, version: Option<u64>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(c);
        // After the swap: a check that read the generation before it and the configuration
        // after is only made again.
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(v) = version {
            self.version.store(v, Ordering::Release);
        }
    }

    /// Takes the database's configuration if it is newer than the one this node runs.
    fn follow(&self, docs: &dyn DocStore) {
        // A change under way here sets the configuration itself.
        let Ok(_one_at_a_time) = self.writer.try_lock() else {
            return;
        };
        // The version first: the configuration itself is read only when it changed.
        if docs
            .version(CONFIG_KIND, CONFIG_KEY)
            .is_ok_and(|v| v > self.version.load(Ordering::Acquire))
            && let Ok(Some(d)) = docs.get(CONFIG_KIND, CONFIG_KEY)
            && d.version > self.version.load(Ordering::Acquire)
            && let Ok(c) = serde_json::from_str::<HubConfig>(&d.json)
            && c.check().is_ok()
        {
            self.set(c, Some(d.version));
        }
    }
}

/// Lines of the citizen's view given unless fewer are asked for.
pub const TRACKER_LINES: usize = 1000;
/// Most lines of the citizen's view one call gives.
pub const TRACKER_MAX_LINES: usize = 10_000;

/// The configuration shared by the nodes over one database: a document of this kind and key.
const CONFIG_KIND: &str = "hub_config";
const CONFIG_KEY: &str = "current";
/// How soon a node takes a configuration change made at another node.
pub const CONFIG_FOLLOW: std::time::Duration = std::time::Duration::from_secs(1);

/// The rate buckets as the exchange log shows them: every call a right with a rate allowed
/// (served, or failed after it was allowed) recent enough to weigh on its bucket, so a restart
/// hands out no fresh burst. Quotas need no replay: their count is shared in the document
/// store (see [`crate::quota`]).
fn rate_usage(
    config: &HubConfig,
    audit_dir: &Path,
    now: DateTime<Utc>,
) -> Result<HashMap<String, Limits>, String> {
    let mut limits: HashMap<String, Limits> = HashMap::new();
    // A rate bucket refills from empty within burst / rate seconds: only calls that recent
    // still weigh on it.
    let Some(refill) = config
        .rights
        .iter()
        .filter_map(|r| r.rate)
        .map(|r| i64::from(r.burst) / i64::from(r.per_second.max(1)) + 1)
        .max()
    else {
        return Ok(limits);
    };
    let since = now - chrono::TimeDelta::seconds(refill);
    let entries = read_entries_since(audit_dir, since).map_err(|e| e.to_string())?;
    for e in entries {
        let r = &e.record;
        if matches!(r.result, ExchangeResult::Refused(_)) {
            continue;
        }
        let Some(right) = right_for(
            &config.rights,
            &r.caller_org,
            &r.subsystem,
            &r.service,
            &r.purpose,
            &r.fields,
        ) else {
            continue;
        };
        if right.rate.is_none() {
            continue;
        }
        let key = format!(
            "{}/{}/{}/{}",
            r.caller_org, r.subsystem, r.service, r.purpose
        );
        limits
            .entry(key)
            .or_insert_with(Limits::leased)
            .count_past(right, r.time, now);
    }
    Ok(limits)
}

/// Response-signing key files, beside the log.
const RESPONSE_KEY_FILE: &str = "response-key.hex";
const RESPONSE_PUBLIC_KEY_FILE: &str = "response-key.jwk.json";

impl Hub {
    /// Opens the hub: the log in `audit_dir`, the response key in `key_dir`.
    pub fn open(
        config: HubConfig,
        store: Arc<dyn Store>,
        docs: Arc<dyn DocStore>,
        clock: Arc<dyn Clock>,
        audit_dir: &Path,
        key_dir: &Path,
        settings: AuditSettings,
    ) -> Result<Self, String> {
        config.check()?;
        let audit = AuditLog::open(audit_dir, settings).map_err(|e| e.to_string())?;
        let limits = rate_usage(&config, audit_dir, clock.now())?;
        let response_key = load_or_create_key(key_dir, RESPONSE_KEY_FILE, RESPONSE_PUBLIC_KEY_FILE)
            .map_err(|e| e.to_string())?;
        let response_kid = Jwk::from_p256(response_key.verifying_key())
            .thumbprint()
            .map_err(|e| e.to_string())?;
        let mut tariff = Tariff::circular_48_2022();
        tariff
            .exempt_classes
            .extend(config.fee_exempt_classes.iter().cloned());
        let store_for_index = store.clone();
        let tracker = audit.tracker();
        let node = crate::shared_tracker::node_id(audit_dir).map_err(|e| e.to_string())?;
        // A register that can change without this process knowing is another node's too.
        let shared = store.register_writes().is_none();
        let hub = Self {
            config: Arc::new(ConfigCell {
                current: RwLock::new(Arc::new(config)),
                version: AtomicU64::new(0),
                writer: Mutex::new(()),
                generation: AtomicU64::new(0),
            }),
            config_file: None,
            store,
            docs,
            clock,
            audit: GroupLog::new(audit),
            jti_claims: Batcher::default(),
            tokens: TokenCache::default(),
            audit_dir: audit_dir.to_owned(),
            jobs_dir: key_dir.join("jobs"),
            batch_local: crate::batch::LocalJobs::default(),
            limits: Mutex::new(limits),
            live_nodes: Arc::new(std::sync::atomic::AtomicU32::new(1)),
            response_key,
            response_kid,
            tariff,
            card_trust: CardTrust::default(),
            match_index: crate::match_index::MatchIndex::start(store_for_index),
            tracker,
            node,
            shipper: None,
            follower: None,
            node_keys: Arc::new(RwLock::new(Vec::new())),
        };
        if shared {
            hub.with_other_nodes()
        } else {
            Ok(hub)
        }
    }

    /// Makes this hub one of several nodes over its database, as it is by itself over
    /// PostgreSQL (and must be told for several processes over one SQLite file):
    /// - the members, rights and subscriptions are the database's (seeded from this node's
    ///   configuration if it has none); a change made at any node reaches the others within
    ///   [`CONFIG_FOLLOW`];
    /// - this node's citizen's-tracker lines are copied to the document store and the other
    ///   nodes' shown with its own ([`crate::shared_tracker`]).
    ///
    /// - rate limits are divided between the nodes alive, each saying so every
    ///   [`CONFIG_FOLLOW`] ([`crate::quota::heartbeat`]).
    ///
    /// Quotas and assertion replays are shared by every hub anyway (document store).
    pub fn with_other_nodes(mut self) -> Result<Self, String> {
        if self.shares_database() {
            return Ok(self);
        }
        self.join_shared_config()?;
        self.publish_response_key()?;
        self.shipper = Some(
            crate::shared_tracker::start_shipper(
                &self.audit_dir,
                self.node.clone(),
                self.tracker.clone(),
                self.docs.clone(),
            )
            .map_err(|e| e.to_string())?,
        );
        let (cell, docs, keys) = (
            self.config.clone(),
            self.docs.clone(),
            self.node_keys.clone(),
        );
        let (clock, node, live) = (
            self.clock.clone(),
            self.node.clone(),
            self.live_nodes.clone(),
        );
        self.follower = Some(
            crate::shared_tracker::Worker::start("hub-config-follower", CONFIG_FOLLOW, move || {
                cell.follow(&*docs);
                if let Ok(k) = published_keys(&*docs) {
                    *keys.write().unwrap_or_else(|e| e.into_inner()) = k;
                }
                // Unreadable heartbeats leave the count as it was.
                if let Ok(n) = crate::quota::heartbeat(&*docs, &node, clock.now()) {
                    live.store(n, std::sync::atomic::Ordering::Relaxed);
                }
            })
            .map_err(|e| e.to_string())?,
        );
        Ok(self)
    }

    /// Publishes this node's response-signing public key for the other nodes' JWKS. Only this
    /// node writes its document, so a concurrent change means another process runs under the
    /// same node name, and is reported rather than overwritten.
    fn publish_response_key(&self) -> Result<(), String> {
        let json = serde_json::to_string(&self.response_jwk()).map_err(|e| e.to_string())?;
        let stored = self
            .docs
            .get(NODE_KEY_KIND, &self.node)
            .map_err(|e| e.to_string())?;
        if stored.as_ref().is_none_or(|d| d.json != json) {
            let version = stored.map_or(0, |d| d.version);
            self.docs
                .put(NODE_KEY_KIND, &self.node, version, &json, None)
                .map_err(|e| format!("publishing node {}'s response key: {e}", self.node))?;
        }
        let keys = published_keys(&*self.docs).map_err(|e| e.to_string())?;
        *self.node_keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
        Ok(())
    }

    /// Whether this hub is one of several nodes over its database ([`Self::with_other_nodes`]).
    pub fn shares_database(&self) -> bool {
        self.shipper.is_some()
    }

    /// Takes the database's configuration, or gives it this node's when it has none.
    /// A stored configuration with no member is replaced by this node's when it has some, so
    /// a node started first with an empty `hub.json` does not hide the real one.
    fn join_shared_config(&self) -> Result<(), String> {
        let mine = self.config.get();
        let blank = |c: &HubConfig| c.members.is_empty() && c.rights.is_empty();
        loop {
            let stored = self
                .docs
                .get(CONFIG_KIND, CONFIG_KEY)
                .map_err(|e| e.to_string())?;
            let version = match stored {
                Some(d) => {
                    let c: HubConfig = serde_json::from_str(&d.json).map_err(|e| e.to_string())?;
                    if !blank(&c) || blank(&mine) {
                        c.check()?;
                        self.config.set(c, Some(d.version));
                        return Ok(());
                    }
                    d.version
                }
                None => 0,
            };
            let json = serde_json::to_string(&*mine).map_err(|e| e.to_string())?;
            match self.docs.put(CONFIG_KIND, CONFIG_KEY, version, &json, None) {
                Ok(v) => {
                    self.config.version.store(v, Ordering::Release);
                    return Ok(());
                }
                // Another node wrote it first: look again.
                Err(StoreError::Exists(_) | StoreError::Conflict { .. }) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// The in-memory view attribute match answers from, when the register has one.
    pub fn match_index(&self) -> Option<&Arc<crate::match_index::MatchIndex>> {
        self.match_index.as_ref()
    }

    /// Where each person's exchanges are in the log (the citizen's tracker).
    pub fn tracker(&self) -> &Arc<crate::tracker_index::TrackerIndex> {
        &self.tracker
    }

    /// The same hub with the CSCA certificates and CRLs that card verification trusts
    /// (without them, every chip fails its certificate-chain check).
    pub fn with_card_trust(mut self, trust: CardTrust) -> Self {
        self.card_trust = trust;
        self
    }

    fn response_jwk(&self) -> Jwk {
        let mut jwk = Jwk::from_p256(self.response_key.verifying_key());
        jwk.kid = Some(self.response_kid.clone());
        jwk.alg = Some("ES256".into());
        jwk.use_ = Some("sig".into());
        jwk
    }

    /// The hub's response-signing keys as a JWKS: this node's first, then those the other
    /// nodes over the same database published (what any of them signed verifies with it).
    pub fn jwks(&self) -> Value {
        let mut keys = vec![self.response_jwk()];
        for k in self
            .node_keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            if k.kid != keys[0].kid {
                keys.push(k.clone());
            }
        }
        json!({ "keys": keys })
    }

    /// Housekeeping for a timer: signs a checkpoint if one is due by time, and forgets
    /// expired assertion ids and consents.
    pub fn tick(&self) -> Result<(), String> {
        let now = self.clock.now();
        self.audit.lock().tick(now).map_err(|e| e.to_string())?;
        self.tokens.purge(now);
        self.docs
            .purge_expired(now)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Authenticates a call by its `private_key_jwt` client assertion.
    pub fn authenticate(&self, assertion: &str) -> Result<Client, HubError> {
        self.authenticate_key(assertion).map(|(c, _)| c)
    }

    /// Issues an access token to the subsystem that signed `assertion` (client credentials
    /// with `private_key_jwt`), for the services named in `scope` (separated by spaces), or
    /// for every service its rights open when `scope` is absent. The key must not be expired;
    /// the token lives [`TOKEN_SECONDS`] at most, and never past the key's `not_after`.
    pub fn issue_token(
        &self,
        assertion: &str,
        scope: Option<&str>,
    ) -> Result<AccessToken, HubError> {
        let (client, key) = self.authenticate_key(assertion)?;
        let now = self.clock.now();
        if let Some(t) = client.key_not_after
            && t <= now
        {
            return Err(Refusal::ClientKeyExpired(t).into());
        }
        let config = self.config();
        let open: BTreeSet<&str> = config
            .rights
            .iter()
            .filter(|r| r.org == client.org && r.subsystem == client.subsystem)
            .map(|r| r.service.as_str())
            .collect();
        let scope: Vec<String> = match scope.map(str::trim).filter(|s| !s.is_empty()) {
            None => open.iter().map(|s| (*s).to_owned()).collect(),
            Some(asked) => {
                let mut out: Vec<String> = Vec::new();
                for s in asked.split(' ').filter(|s| !s.is_empty()) {
                    if !open.contains(s) {
                        return Err(HubError::InvalidScope(s.chars().take(64).collect()));
                    }
                    if !out.iter().any(|o| o == s) {
                        out.push(s.to_owned());
                    }
                }
                out
            }
        };
        if scope.is_empty() {
            return Err(HubError::InvalidScope(String::new()));
        }
        let mut expires_at = now + chrono::Duration::seconds(TOKEN_SECONDS);
        if let Some(t) = client.key_not_after {
            expires_at = expires_at.min(t);
        }
        let token = new_token();
        let digest = token_digest(&token);
        let hash = hex::encode(digest);
        let grant = TokenGrant {
            org: client.org,
            subsystem: client.subsystem,
            key,
            scope,
            expires_at,
        };
        let json = serde_json::to_string(&grant).map_err(internal)?;
        self.docs
            .put(TOKEN_KIND, &hash, 0, &json, Some(expires_at))
            .map_err(internal)?;
        let scope = grant.scope.join(" ");
        let _ = self.check_and_keep(digest, grant);
        Ok(AccessToken {
            access_token: token,
            token_type: "Bearer".into(),
            expires_in: (expires_at - now).num_seconds(),
            scope,
        })
    }

    /// Authenticates a call by its bearer access token if this node has the token's grant in
    /// memory; `None` when the document store must be asked ([`Self::authenticate_token`]).
    /// Never blocks on I/O. While the members' configuration is the one the grant was last
    /// checked against, only the expiry times are compared.
    pub fn authenticate_token_cached(&self, token: &str) -> Option<Result<Client, HubError>> {
        let digest = token_digest(token);
        let generation = self.config.generation.load(Ordering::Acquire);
        let now = self.clock.now();
        let admitted = self.tokens.with(&digest, |g| {
            (g.generation == generation).then(|| g.admit(now))
        })?;
        if admitted.is_some() {
            return admitted;
        }
        // The configuration changed since the grant was checked: look its key up again.
        let grant = self.tokens.with(&digest, |g| g.grant.clone())?;
        Some(self.check_and_keep(digest, grant))
    }

    /// Authenticates a call by its bearer access token, from memory or else from the document
    /// store (a token another node issued, or issued before a restart).
    pub fn authenticate_token(&self, token: &str) -> Result<Client, HubError> {
        if let Some(r) = self.authenticate_token_cached(token) {
            return r;
        }
        let doc = self
            .docs
            .get(TOKEN_KIND, &token_hash(token))
            .map_err(internal)?
            .ok_or(HubError::Unauthenticated("unknown access token"))?;
        let grant: TokenGrant = serde_json::from_str(&doc.json).map_err(internal)?;
        self.check_and_keep(token_digest(token), grant)
    }

    /// Checks a grant against the current configuration and, when it holds, keeps it in memory
    /// with the caller it admits.
    fn check_and_keep(&self, digest: [u8; 32], grant: TokenGrant) -> Result<Client, HubError> {
        // Read before the configuration the check uses, so that a change in between only
        // makes the next call check again.
        let generation = self.config.generation.load(Ordering::Acquire);
        let client = self.check_grant(&grant)?;
        self.tokens.insert(
            digest,
            CachedGrant {
                grant,
                client: client.clone(),
                generation,
            },
        );
        Ok(client)
    }

    /// A token's grant holds while it is not expired and its key is still registered for its
    /// subsystem and not past its `not_after`.
    fn check_grant(&self, g: &TokenGrant) -> Result<Client, HubError> {
        let now = self.clock.now();
        if g.expires_at <= now {
            return Err(HubError::Unauthenticated("access token expired"));
        }
        let config = self.config();
        let key = config
            .subsystem(&g.org, &g.subsystem)
            .and_then(|s| s.keys.iter().find(|k| same_key(&k.jwk, &g.key)))
            .ok_or(HubError::Unauthenticated("access token revoked"))?;
        if let Some(t) = key.not_after
            && t <= now
        {
            return Err(Refusal::ClientKeyExpired(t).into());
        }
        Ok(Client {
            org: g.org.clone(),
            subsystem: g.subsystem.clone(),
            key_not_after: key.not_after,
            scope: Some(g.scope.iter().cloned().collect()),
        })
    }

    /// Authenticates a client assertion and names the key that signed it.
    fn authenticate_key(&self, assertion: &str) -> Result<(Client, Jwk), HubError> {
        let iss = assertion_issuer(assertion).ok_or(HubError::Unauthenticated("malformed"))?;
        let (org, sub) = iss
            .split_once('/')
            .ok_or(HubError::Unauthenticated("iss must be member/subsystem"))?;
        let config = self.config();
        let subsystem = config
            .subsystem(org, sub)
            .ok_or(HubError::Unauthenticated("unknown subsystem"))?;
        let now = self.clock.now();
        let config = self.config();
        let audiences = config.audiences();
        let mut store_error = None;
        for key in &subsystem.keys {
            let check = AssertionCheck {
                client_id: &iss,
                keys: std::slice::from_ref(&key.jwk),
                audiences: &audiences,
                max_lifetime: chrono::Duration::seconds(MAX_ASSERTION_SECONDS),
                leeway: chrono::Duration::seconds(30),
            };
            let res =
                verify_client_assertion(assertion, Some(JWT_BEARER), &check, now, |jti, until| {
                    match self.claim_jti(format!("{iss}\n{jti}"), until) {
                        Ok(first) => !first,
                        Err(e) => {
                            // Refuse rather than risk accepting a replay.
                            store_error = Some(e);
                            true
                        }
                    }
                });
            match res {
                Ok(_) => {
                    return Ok((
                        Client {
                            org: org.to_owned(),
                            subsystem: sub.to_owned(),
                            key_not_after: key.not_after,
                            scope: None,
                        },
                        key.jwk.clone(),
                    ));
                }
                Err(OidcError::InvalidClient("signature")) => continue,
                Err(OidcError::Replay) => {
                    return Err(match store_error {
                        Some(e) => HubError::Internal(e),
                        None => HubError::Replay,
                    });
                }
                Err(OidcError::InvalidClient(why)) => return Err(HubError::Unauthenticated(why)),
                Err(_) => return Err(HubError::Unauthenticated("assertion")),
            }
        }
        Err(HubError::Unauthenticated("signature"))
    }

    /// Records an assertion id in the document store until `until`: `true` the first time.
    /// Concurrent calls share one store transaction (one commit for the group), and the store
    /// stays the one authority, so nodes sharing a database refuse each other's replays and a
    /// restart forgets nothing.
    fn claim_jti(&self, key: String, until: DateTime<Utc>) -> Result<bool, String> {
        self.jti_claims.submit(
            (key, until),
            |keys| match self.docs.remember_many(JTI_KIND, &keys, self.clock.now()) {
                Ok(first) if first.len() == keys.len() => first.into_iter().map(Ok).collect(),
                Ok(_) => keys
                    .iter()
                    .map(|_| Err("the replay check answered the wrong count".to_owned()))
                    .collect(),
                Err(e) => keys.iter().map(|_| Err(e.to_string())).collect(),
            },
            &|| Err("the replay check stopped".to_owned()),
        )
    }

    fn log(&self, record: &AuditRecord) -> Result<u64, HubError> {
        // Group commit: returns once the record is durable, with one sync for every record
        // that was waiting at the same time.
        self.audit
            .append(record.clone())
            .map(|a| a.seq)
            .map_err(|e: AuditError| HubError::AuditUnavailable(e.to_string()))
    }

    /// Runs one exchange: decide, do the work, log, answer (blocking until the record is
    /// durable).
    #[allow(clippy::too_many_arguments)]
    fn exchange<T>(
        &self,
        client: &Client,
        meta: &CallMeta,
        service: &str,
        person: Option<&str>,
        fields: &[String],
        consent_id: Option<&str>,
        work: impl FnOnce(&Grant) -> Result<(T, Option<String>), HubError>,
    ) -> Result<(T, u64), HubError> {
        self.submit(self.decide_exchange(client, meta, service, person, fields, consent_id, work))
            .wait()
    }

    /// Hands the record of a decided exchange to the log writer without waiting: the outcome
    /// is released once the record is durable. Nothing is logged for an exchange that failed
    /// before anything was decided.
    fn submit<T>(
        &self,
        decided: Result<(Result<T, HubError>, AuditRecord), HubError>,
    ) -> Pending<T> {
        match decided {
            Ok((outcome, record)) => Pending {
                outcome,
                receipt: Some(self.audit.submit(record)),
            },
            Err(e) => Pending::failed(e),
        }
    }

    /// The outcome of an exchange and the record to log for it; `Err` when it failed before
    /// anything was decided (nothing to log).
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn decide_exchange<T>(
        &self,
        client: &Client,
        meta: &CallMeta,
        service: &str,
        person: Option<&str>,
        fields: &[String],
        consent_id: Option<&str>,
        work: impl FnOnce(&Grant) -> Result<(T, Option<String>), HubError>,
    ) -> Result<(Result<T, HubError>, AuditRecord), HubError> {
        client.check_scope(service)?;
        let now = self.clock.now();
        let mut record = AuditRecord {
            time: now,
            caller_org: client.org.clone(),
            subsystem: client.subsystem.clone(),
            end_user: meta.end_user.clone().filter(|s| !s.trim().is_empty()),
            service: service.to_owned(),
            person: person.map(str::to_owned),
            fields: fields.to_vec(),
            purpose: meta.purpose.clone(),
            case_ref: meta.case_ref.clone().filter(|s| !s.trim().is_empty()),
            result: ExchangeResult::Served,
            covert_until: None,
        };
        let consent = match (consent_id, person) {
            (Some(id), Some(p)) => self.consent_doc(p, id)?,
            _ => None,
        };
        let decision = {
            let mut limits = self
                .limits
                .lock()
                .map_err(|_| internal("limits lock poisoned"))?;
            let key = format!(
                "{}/{}/{service}/{}",
                client.org, client.subsystem, meta.purpose
            );
            let config = self.config();
            let l = limits.entry(key.clone()).or_insert_with(Limits::leased);
            l.share_rate(self.live_nodes());
            crate::quota::ensure_lease(
                &*self.docs,
                &config.rights,
                &key,
                &client.org,
                &client.subsystem,
                service,
                &meta.purpose,
                fields,
                l,
                now,
            )
            .map_err(internal)?;
            decide(
                &config.rights,
                &AccessRequest {
                    org: &client.org,
                    subsystem: &client.subsystem,
                    service,
                    fields,
                    purpose: &meta.purpose,
                    person: person.unwrap_or(""),
                    end_user: meta.end_user.as_deref(),
                    case_ref: meta.case_ref.as_deref(),
                    consent: consent.as_ref().map(|(c, _)| c),
                    client_key_not_after: client.key_not_after,
                    now,
                },
                l,
            )
        };
        let grant = match decision {
            Ok(g) => g,
            Err(refusal) => {
                record.result = ExchangeResult::Refused(refusal.code().to_owned());
                return Ok((Err(refusal.into()), record));
            }
        };
        record.covert_until = grant.covert_until;
        if let (Some(id), Some((mut c, version))) = (&grant.consumes_consent, consent) {
            c.consume(now);
            let json = serde_json::to_string(&c).map_err(internal)?;
            let key = format!("{}/{id}", c.person);
            match self
                .docs
                .put(CONSENT_KIND, &key, version, &json, Some(c.expires_at))
            {
                Ok(_) => {}
                Err(StoreError::Conflict { .. }) => {
                    // Another call used the one-time consent at the same moment.
                    let refusal = Refusal::ConsentMissing("already used");
                    record.result = ExchangeResult::Refused(refusal.code().to_owned());
                    return Ok((Err(refusal.into()), record));
                }
                Err(e) => return Err(internal(e)),
            }
        }
        match work(&grant) {
            Ok((value, logged_person)) => {
                if logged_person.is_some() {
                    record.person = logged_person;
                }
                Ok((Ok(value), record))
            }
            Err(e) => {
                record.result = ExchangeResult::Failed(e.code().to_owned());
                Ok((Err(e), record))
            }
        }
    }

    fn person(&self, id: &PersonalId) -> Result<dancu_domain::person::Person, HubError> {
        self.store
            .person(id)
            .map_err(internal)?
            .ok_or(HubError::PersonNotFound)
    }

    /// Attribute match: per claimed field, match / no_match / unknown; no value returned.
    pub fn verify_attributes(
        &self,
        client: &Client,
        meta: &CallMeta,
        id: &str,
        claims: &Claims,
    ) -> Result<AttributeAnswer, HubError> {
        let (fields, audit_seq) = self
            .verify_attributes_start(client, meta, id, claims)
            .wait()?;
        Ok(AttributeAnswer { fields, audit_seq })
    }

    /// [`Self::verify_attributes`] without waiting for the log: the answers are released by
    /// [`Pending::release`] once the exchange's record is durable. Reads the register, so on
    /// a store that blocks on the network it belongs on a blocking thread.
    pub fn verify_attributes_start(
        &self,
        client: &Client,
        meta: &CallMeta,
        id: &str,
        claims: &Claims,
    ) -> Pending<Vec<FieldAnswer>> {
        let pid = match parse_id(id) {
            Ok(p) => p,
            Err(e) => return Pending::failed(e),
        };
        let fields = match claimed_fields(claims) {
            Ok(f) => f,
            Err(e) => return Pending::failed(e),
        };
        self.submit(self.decide_exchange(
            client,
            meta,
            SERVICE_VERIFY_ATTRIBUTES,
            Some(id),
            &fields,
            None,
            |_| {
                if let Some(answers) = self
                    .match_index
                    .as_ref()
                    .and_then(|m| m.answer(&pid, claims))
                {
                    return Ok((answers, None));
                }
                // Only the compared fields are decoded; the home commune is stored beside
                // the record.
                let (json, home) = self
                    .store
                    .person_json(&pid)
                    .map_err(internal)?
                    .ok_or(HubError::PersonNotFound)?;
                let record: matching::MatchRecord =
                    serde_json::from_str(&json).map_err(internal)?;
                Ok((
                    matching::attribute_match_record(&record, home.as_deref(), claims),
                    None,
                ))
            },
        ))
    }

    /// CMND → personal ID: one ID only when exactly one holder fits the claimed name (and date
    /// of birth); otherwise the candidates or "not found".
    pub fn verify_cmnd(
        &self,
        client: &Client,
        meta: &CallMeta,
        cmnd: &str,
        name: &str,
        date_of_birth: Option<&str>,
    ) -> Result<CmndAnswer, HubError> {
        let number = CmndNumber::parse(cmnd).map_err(|e| HubError::Invalid {
            code: "invalid_cmnd",
            vi: format!("Số CMND không hợp lệ: {e}"),
            en: format!("Invalid CMND number: {e}"),
        })?;
        let key = dancu_domain::name::match_key(name);
        if key.chars().count() < 2 {
            return Err(HubError::invalid(
                "name_required",
                "Cần nêu họ tên người mang số CMND",
                "Give the name of the CMND holder",
            ));
        }
        let dob = date_of_birth
            .map(|d| {
                PartialDate::parse(d).map_err(|_| {
                    HubError::invalid(
                        "invalid_date_of_birth",
                        "Ngày sinh không hợp lệ (YYYY, YYYY-MM hoặc YYYY-MM-DD)",
                        "Invalid date of birth (YYYY, YYYY-MM or YYYY-MM-DD)",
                    )
                })
            })
            .transpose()?;
        let fields = vec![FIELD_PERSONAL_ID.to_owned()];
        let (resolution, seq) = self.exchange(
            client,
            meta,
            SERVICE_VERIFY_CMND,
            None,
            &fields,
            None,
            |_| {
                let candidates = self
                    .store
                    .search(&SearchQuery {
                        name_key: key.clone(),
                        prefix: false,
                        birth_year: dob.as_ref().map(PartialDate::year),
                        commune: None,
                        province: None,
                        limit: CMND_CANDIDATES,
                    })
                    .map_err(internal)?;
                let r = matching::resolve_cmnd(&number, Some(name), dob.as_ref(), &candidates);
                let person = match &r {
                    CmndResolution::Unique { id, .. } => Some(id.to_string()),
                    _ => None,
                };
                Ok((r, person))
            },
        )?;
        Ok(CmndAnswer {
            resolution,
            audit_seq: seq,
        })
    }

    /// Data retrieval: the fields the right allows for the purpose, with the person's consent
    /// when the right requires it, signed by the hub.
    pub fn ekyc(
        &self,
        client: &Client,
        meta: &CallMeta,
        id: &str,
        fields: &[String],
        consent_id: Option<&str>,
    ) -> Result<EkycAnswer, HubError> {
        let pid = parse_id(id)?;
        if fields.is_empty() {
            return Err(HubError::invalid(
                "no_fields",
                "Cần nêu các trường thông tin cần lấy",
                "Name the fields to retrieve",
            ));
        }
        let (data, seq) = self.exchange(
            client,
            meta,
            SERVICE_EKYC,
            Some(id),
            fields,
            consent_id,
            |grant| {
                let p = self.person(&pid)?;
                let full = serde_json::to_value(&p).map_err(internal)?;
                let mut data = serde_json::Map::new();
                for f in &grant.fields {
                    let v = match f.as_str() {
                        "full_name" => Value::String(p.name.full()),
                        other => full.get(other).cloned().unwrap_or(Value::Null),
                    };
                    data.insert(f.clone(), v);
                }
                Ok((Value::Object(data), None))
            },
        )?;
        let now = self.clock.now();
        let claims = json!({
            "iss": "dancu-hub",
            "aud": format!("{}/{}", client.org, client.subsystem),
            "sub": id,
            "iat": now.timestamp(),
            "purpose": meta.purpose,
            "case_ref": meta.case_ref,
            "audit_seq": seq,
            "data": data,
        });
        let jws = sign_es256(
            &self.response_key,
            "dancu-hub-ekyc+jwt",
            Some(&self.response_kid),
            false,
            &claims,
        )
        .map_err(internal)?;
        Ok(EkycAnswer {
            jws,
            data,
            audit_seq: seq,
        })
    }

    fn consent_doc(&self, person: &str, id: &str) -> Result<Option<(Consent, u64)>, HubError> {
        let Some(doc) = self
            .docs
            .get(CONSENT_KIND, &format!("{person}/{id}"))
            .map_err(internal)?
        else {
            return Ok(None);
        };
        let c: Consent = serde_json::from_str(&doc.json).map_err(internal)?;
        Ok(Some((c, doc.version)))
    }

    /// The person grants a consent.
    pub fn grant_consent(&self, person: &str, g: ConsentGrant) -> Result<Consent, HubError> {
        parse_id(person)?;
        let now = self.clock.now();
        if self.config().member(&g.recipient_org).is_none() {
            return Err(HubError::invalid(
                "unknown_member",
                "Tổ chức nhận dữ liệu không phải thành viên của nền tảng",
                "The recipient is not a member of the hub",
            ));
        }
        let valid_from = g.valid_from.unwrap_or(now);
        if g.fields.is_empty() || g.purpose.trim().is_empty() || g.expires_at <= valid_from {
            return Err(HubError::invalid(
                "invalid_consent",
                "Sự đồng ý phải nêu trường thông tin, mục đích và thời hạn sau thời điểm bắt đầu",
                "A consent needs fields, a purpose and an expiry after its start",
            ));
        }
        let mut raw = [0u8; 16];
        rand::Rng::fill_bytes(&mut rand::rng(), &mut raw);
        let c = Consent {
            id: format!("cs_{}", hex::encode(raw)),
            person: person.to_owned(),
            recipient_org: g.recipient_org,
            fields: g.fields,
            purpose: g.purpose,
            kind: g.kind,
            granted_at: now,
            valid_from,
            expires_at: g.expires_at,
            revoked_at: None,
            used_at: None,
        };
        let json = serde_json::to_string(&c).map_err(internal)?;
        self.docs
            .put(
                CONSENT_KIND,
                &format!("{person}/{}", c.id),
                0,
                &json,
                Some(c.expires_at),
            )
            .map_err(internal)?;
        Ok(c)
    }

    /// The person's consents, newest key order.
    pub fn consents(&self, person: &str) -> Result<Vec<Consent>, HubError> {
        parse_id(person)?;
        self.docs
            .list(CONSENT_KIND, &format!("{person}/"), 1000)
            .map_err(internal)?
            .into_iter()
            .map(|(_, d)| serde_json::from_str(&d.json).map_err(internal))
            .collect()
    }

    /// The person revokes a consent; access stops at once.
    pub fn revoke_consent(&self, person: &str, id: &str) -> Result<Consent, HubError> {
        parse_id(person)?;
        let (mut c, version) = self
            .consent_doc(person, id)?
            .ok_or(HubError::ConsentNotFound)?;
        c.revoke(self.clock.now());
        let json = serde_json::to_string(&c).map_err(internal)?;
        self.docs
            .put(
                CONSENT_KIND,
                &format!("{person}/{id}"),
                version,
                &json,
                Some(c.expires_at),
            )
            .map_err(internal)?;
        Ok(c)
    }

    /// The citizen's view of the log: who accessed or received the person's data, when, which
    /// fields and why; covert accesses only once their embargo has ended (Vietnam date).
    /// At most the newest [`TRACKER_LINES`] of them.
    pub fn person_accesses(&self, person: &str) -> Result<Vec<AccessLine>, HubError> {
        self.person_accesses_newest(person, TRACKER_LINES)
    }

    /// The newest `limit` (1 to [`TRACKER_MAX_LINES`]) lines of the citizen's view, oldest
    /// first.
    pub fn person_accesses_newest(
        &self,
        person: &str,
        limit: usize,
    ) -> Result<Vec<AccessLine>, HubError> {
        parse_id(person)?;
        if !(1..=TRACKER_MAX_LINES).contains(&limit) {
            return Err(HubError::invalid(
                "invalid_limit",
                &format!("Số dòng phải từ 1 đến {TRACKER_MAX_LINES}"),
                &format!("The limit must be 1 to {TRACKER_MAX_LINES}"),
            ));
        }
        let today = vietnam_date(self.clock.now());
        // Covert accesses under embargo are left out before counting.
        let visible = |e: &dancu_exchange::log::record::LogEntry| {
            e.record.covert_until.is_none_or(|d| today >= d)
        };
        let entries = self
            .tracker
            .newest_of(person, limit, &visible)
            .map_err(internal)?;
        let mut lines = person_view(&entries, person, today);
        if self.shares_database() {
            lines.extend(
                crate::shared_tracker::other_nodes_lines(&*self.docs, person, &self.node, today)
                    .map_err(internal)?,
            );
            // Oldest first across nodes (a stable sort keeps each node's order).
            lines.sort_by_key(|l| l.time);
            let over = lines.len().saturating_sub(limit);
            lines.drain(..over);
        }
        Ok(lines)
    }

    /// The fee statement of a month as CSV (every member, or one), metered from the log's
    /// served exchanges.
    pub fn fee_statement_csv(
        &self,
        year: i32,
        month: u32,
        member: Option<&str>,
    ) -> Result<String, HubError> {
        if !(1..=12).contains(&month) || !(2000..=2200).contains(&year) {
            return Err(HubError::invalid(
                "invalid_period",
                "Kỳ không hợp lệ (năm, tháng 1–12)",
                "Invalid period (year, month 1–12)",
            ));
        }
        // The month starts at midnight Vietnam time (UTC+7); later months' records are
        // filtered out by the statement.
        let since = chrono::NaiveDate::from_ymd_opt(year, month, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc() - chrono::TimeDelta::hours(7))
            .ok_or_else(|| internal("month start"))?;
        let entries = read_entries_since(&self.audit_dir, since).map_err(internal)?;
        let calls: Vec<MeteredCall> = entries
            .iter()
            .map(|e| &e.record)
            .filter(|r| r.result == ExchangeResult::Served)
            // A sectoral register giving its identifiers exploits no register data.
            .filter(|r| r.service != crate::enrich::SERVICE_ENRICH)
            .filter(|r| member.is_none_or(|m| r.caller_org == m))
            .map(|r| {
                let config = self.config();
                let class = config
                    .member(&r.caller_org)
                    .map_or("", |m| m.class.as_str());
                MeteredCall::new(&r.caller_org, class, r.time, &r.service, &r.fields)
            })
            .collect();
        let mut out = String::new();
        for (i, s) in monthly_statements(&self.tariff, year, month, &calls)
            .iter()
            .enumerate()
        {
            let csv = s.to_csv().map_err(internal)?;
            // One header for the whole file.
            let body = if i == 0 {
                csv.as_str()
            } else {
                csv.split_once('\n').map_or("", |(_, rest)| rest)
            };
            out.push_str(body);
        }
        if out.is_empty() {
            out.push_str("member,period,service,unit_price_vnd,calls,fields,amount_vnd\n");
        }
        Ok(out)
    }
}

impl Hub {
    /// One page of a subscription's change events after the cursor `after` (metadata only),
    /// within the caller's right to the change-event service. At most `limit` notices; at most
    /// a bounded number of register events are read per call, and `next_after` moves past
    /// those that did not match.
    pub fn event_feed(
        &self,
        client: &Client,
        meta: &CallMeta,
        subscription: &str,
        after: i64,
        limit: u32,
    ) -> Result<FeedPage, HubError> {
        let config = self.config();
        let sub = config
            .subscriptions
            .iter()
            .find(|s| {
                s.id == subscription && s.org == client.org && s.subsystem == client.subsystem
            })
            .ok_or_else(|| {
                HubError::invalid(
                    "unknown_subscription",
                    "Hệ thống không có đăng ký nhận thông báo này",
                    "The subsystem has no such subscription",
                )
            })?;
        let fields: Vec<String> = sub.event_types.iter().cloned().collect();
        let (page, _) = self.exchange(
            client,
            meta,
            SERVICE_CHANGE_EVENTS,
            None,
            &fields,
            None,
            |_| Ok((self.collect_events(sub, after, limit)?, None)),
        )?;
        Ok(page)
    }
}

impl Hub {
    /// The subscription's events after `after` (no rights check, no log: callers do both).
    pub(crate) fn collect_events(
        &self,
        sub: &Subscription,
        after: i64,
        limit: u32,
    ) -> Result<FeedPage, HubError> {
        let limit = limit.clamp(1, 1000) as usize;
        let mut cursor = after;
        let mut events = Vec::new();
        let mut scanned = 0usize;
        while events.len() < limit && scanned < FEED_SCAN {
            let batch = self.store.events_after(cursor, 500).map_err(internal)?;
            if batch.is_empty() {
                break;
            }
            let ids: Vec<PersonalId> = batch
                .iter()
                .filter(|e| sub.event_types.contains(&e.kind))
                .filter_map(|e| stream_person(&e.stream))
                .collect();
            let people = if sub.communes.is_empty() && sub.provinces.is_empty() {
                Default::default()
            } else {
                by_id(self.store.persons(&ids).map_err(internal)?)
            };
            for e in &batch {
                scanned += 1;
                cursor = e.seq;
                if let Some(pid) = stream_person(&e.stream) {
                    let person = pid.to_string();
                    if sub.wants(&e.kind, &person, people.get(&person)) {
                        events.push(EventNotice {
                            event_id: format!("{person}/{}", e.version),
                            kind: e.kind.clone(),
                            person,
                            seq: e.seq,
                            time: e.meta.at,
                        });
                        if events.len() == limit {
                            break;
                        }
                    }
                }
            }
        }
        Ok(FeedPage {
            events,
            next_after: cursor,
        })
    }

    /// Logs (and decides) a webhook delivery of events already collected.
    pub(crate) fn authorize_delivery(
        &self,
        sub: &Subscription,
        page: FeedPage,
    ) -> Result<FeedPage, HubError> {
        let client = Client {
            org: sub.org.clone(),
            subsystem: sub.subsystem.clone(),
            key_not_after: None,
            scope: None,
        };
        let meta = CallMeta {
            purpose: sub.purpose.clone(),
            end_user: None,
            case_ref: None,
        };
        let fields: Vec<String> = sub.event_types.iter().cloned().collect();
        let (page, _) = self.exchange(
            &client,
            &meta,
            SERVICE_CHANGE_EVENTS,
            None,
            &fields,
            None,
            |_| Ok((page, None)),
        )?;
        Ok(page)
    }

    /// Runs one exchange without a consent: decide, do the work, log, answer (for the
    /// services of sibling modules).
    pub(crate) fn exchange_public<T>(
        &self,
        client: &Client,
        meta: &CallMeta,
        service: &str,
        person: Option<&str>,
        fields: &[String],
        work: impl FnOnce() -> Result<T, HubError>,
    ) -> Result<(T, u64), HubError> {
        self.exchange(client, meta, service, person, fields, None, |_| {
            Ok((work()?, None))
        })
    }

    /// The directory of batch jobs.
    pub(crate) fn jobs_dir(&self) -> &Path {
        &self.jobs_dir
    }

    /// How many nodes over this hub's database are alive, this one included (1 when it is
    /// the only node, or does not share its database).
    pub fn live_nodes(&self) -> u32 {
        self.live_nodes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The batch jobs this process is answering.
    pub(crate) fn batch_local(&self) -> &crate::batch::LocalJobs {
        &self.batch_local
    }

    /// The register.
    pub(crate) fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// The log record of one exchange before its outcome is known.
    pub(crate) fn record_for(
        &self,
        client: &Client,
        meta: &CallMeta,
        service: &str,
        person: Option<&str>,
        fields: &[String],
        now: DateTime<Utc>,
    ) -> AuditRecord {
        AuditRecord {
            time: now,
            caller_org: client.org.clone(),
            subsystem: client.subsystem.clone(),
            end_user: meta.end_user.clone().filter(|s| !s.trim().is_empty()),
            service: service.to_owned(),
            person: person.map(str::to_owned),
            fields: fields.to_vec(),
            purpose: meta.purpose.clone(),
            case_ref: meta.case_ref.clone().filter(|s| !s.trim().is_empty()),
            result: ExchangeResult::Served,
            covert_until: None,
        }
    }

    /// Decides one exchange with the rights and the caller's limits (quota and rate are
    /// consumed as for a single call). `dry_run` decides on a copy of the limits, so nothing
    /// is consumed.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn decide_call(
        &self,
        client: &Client,
        meta: &CallMeta,
        service: &str,
        person: Option<&str>,
        fields: &[String],
        now: DateTime<Utc>,
        dry_run: bool,
    ) -> Result<Result<Grant, Refusal>, HubError> {
        client.check_scope(service)?;
        let mut limits = self
            .limits
            .lock()
            .map_err(|_| internal("limits lock poisoned"))?;
        let key = format!(
            "{}/{}/{service}/{}",
            client.org, client.subsystem, meta.purpose
        );
        let config = self.config();
        // A dry run may take a lease (it moves shared units to this node, using none).
        let held = limits.entry(key.clone()).or_insert_with(Limits::leased);
        held.share_rate(self.live_nodes());
        crate::quota::ensure_lease(
            &*self.docs,
            &config.rights,
            &key,
            &client.org,
            &client.subsystem,
            service,
            &meta.purpose,
            fields,
            held,
            now,
        )
        .map_err(internal)?;
        let mut scratch;
        let l = if dry_run {
            scratch = held.clone();
            &mut scratch
        } else {
            held
        };
        Ok(decide(
            &config.rights,
            &AccessRequest {
                org: &client.org,
                subsystem: &client.subsystem,
                service,
                fields,
                purpose: &meta.purpose,
                person: person.unwrap_or(""),
                end_user: meta.end_user.as_deref(),
                case_ref: meta.case_ref.as_deref(),
                consent: None,
                client_key_not_after: client.key_not_after,
                now,
            },
            l,
        ))
    }

    /// Calls counted in the current period against the quota of the right `org/subsystem`
    /// holds for `service` and `purpose` (the one a call asking no fields would use); `None`
    /// when there is no such right or it has no quota.
    pub fn quota_used(
        &self,
        org: &str,
        subsystem: &str,
        service: &str,
        purpose: &str,
    ) -> Option<u64> {
        let config = self.config();
        let right = right_for(&config.rights, org, subsystem, service, purpose, &[])?;
        right.quota?;
        let mut limits = self.limits.lock().unwrap_or_else(|e| e.into_inner());
        let key = format!("{org}/{subsystem}/{service}/{purpose}");
        // Every node's leases, less what this node holds unused.
        let (period, room) = limits
            .entry(key.clone())
            .or_insert_with(Limits::leased)
            .quota_room(right, self.clock.now())?;
        let claimed = crate::quota::claimed(&*self.docs, &key, period).ok()?;
        Some(claimed.saturating_sub(room))
    }

    /// Logs one exchange (pub(crate) for the batch jobs).
    pub(crate) fn log_one(&self, record: &AuditRecord) -> Result<u64, HubError> {
        self.log(record)
    }

    /// Logs many exchanges with one disk sync.
    pub(crate) fn log_many(&self, records: &[AuditRecord]) -> Result<(), HubError> {
        let now = self.clock.now();
        self.audit
            .lock()
            .append_many(records, now)
            .map(|_| ())
            .map_err(|(_, e)| HubError::AuditUnavailable(e.to_string()))
    }

    /// The hub's members, rights and subscriptions as they stand now (the rights admin API
    /// may replace them at any time; each call works on the snapshot it took).
    pub fn config(&self) -> Arc<HubConfig> {
        self.config.get()
    }

    /// Changes the configuration: `change` edits a copy, the copy must pass
    /// [`HubConfig::check`], is written to the configuration file when the hub has one (in full,
    /// to a temporary file renamed over the old one after a sync), and only then replaces the
    /// configuration every following call sees. Changes are serialised; a refused change
    /// changes nothing.
    pub fn update_config<T>(
        &self,
        change: impl FnOnce(&mut HubConfig) -> Result<T, HubError>,
    ) -> Result<T, HubError> {
        let _one_at_a_time = self.config.writer.lock().unwrap_or_else(|e| e.into_inner());
        // Shared: the change applies to the database's configuration as it stands.
        let shared = match self.shares_database() {
            true => match self.docs.get(CONFIG_KIND, CONFIG_KEY).map_err(internal)? {
                Some(d) => Some((
                    serde_json::from_str::<HubConfig>(&d.json).map_err(internal)?,
                    d.version,
                )),
                None => Some(((*self.config.get()).clone(), 0)),
            },
            false => None,
        };
        let mut next = match &shared {
            Some((c, _)) => c.clone(),
            None => (*self.config.get()).clone(),
        };
        let out = change(&mut next)?;
        next.check().map_err(|e| HubError::Invalid {
            code: "invalid_hub_configuration",
            vi: format!("Thay đổi làm cấu hình nền tảng không hợp lệ: {e}"),
            en: format!("The change would make the hub configuration invalid: {e}"),
        })?;
        if let Some((_, version)) = shared {
            let json = serde_json::to_string(&next).map_err(internal)?;
            match self.docs.put(CONFIG_KIND, CONFIG_KEY, version, &json, None) {
                Ok(v) => self.config.version.store(v, Ordering::Release),
                Err(StoreError::Conflict { .. } | StoreError::Exists(_)) => {
                    return Err(HubError::Conflict {
                        code: "configuration_changed",
                        vi: "Cấu hình vừa được thay đổi ở nút khác; hãy thử lại".into(),
                        en: "The configuration was changed at another node meanwhile; try again"
                            .into(),
                    });
                }
                Err(e) => return Err(internal(e)),
            }
        }
        if let Some(path) = &self.config_file {
            next.save(path).map_err(internal)?;
        }
        self.config.set(next, None);
        Ok(out)
    }

    /// The same hub, writing the configuration changes of the rights admin API to `path` (the
    /// file it was loaded from).
    pub fn with_config_file(mut self, path: &Path) -> Self {
        self.config_file = Some(path.to_owned());
        self
    }

    /// This node's name among the nodes over its database (kept in its log directory).
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The document store.
    pub(crate) fn docs(&self) -> &dyn DocStore {
        self.docs.as_ref()
    }

    /// Now, by the hub's clock.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Signs a webhook delivery's body.
    pub(crate) fn sign_delivery(
        &self,
        sub: &Subscription,
        id: &str,
        events: &[EventNotice],
    ) -> Result<String, HubError> {
        let claims = json!({
            "iss": "dancu-hub",
            "aud": format!("{}/{}", sub.org, sub.subsystem),
            "sub": sub.id,
            "delivery_id": id,
            "iat": self.clock.now().timestamp(),
            "events": events,
        });
        sign_es256(
            &self.response_key,
            "dancu-hub-events+jwt",
            Some(&self.response_kid),
            false,
            &claims,
        )
        .map_err(internal)
    }
}

/// Fields card verification exploits (names in the rights and the log).
pub const CARD_VERIFY_FIELDS: [&str; 3] = ["card_data_match", "card_status", "vital_status"];

/// The answer of card verification.
#[derive(Debug, Clone, Serialize)]
pub struct CardAnswer {
    /// The verification, check by check and field by field.
    #[serde(flatten)]
    pub verification: CardVerification,
    /// Seq of the exchange in the log.
    pub audit_seq: u64,
}

impl Hub {
    fn card_work(&self, input: &CardInput) -> Result<CardVerification, HubError> {
        let chip = crate::cards::decode_input(input).map_err(|e| HubError::Invalid {
            code: e.code,
            vi: e.vi,
            en: e.en,
        })?;
        let today = vietnam_date(self.clock.now());
        let mut store_error = None;
        let v = crate::cards::check_card(input, chip.as_ref(), &self.card_trust, today, |id| {
            self.store.person(id).unwrap_or_else(|e| {
                store_error = Some(e.to_string());
                None
            })
        });
        match store_error {
            Some(e) => Err(HubError::Internal(e)),
            None => Ok(v),
        }
    }

    /// Card verification for a member subsystem, within a `card_verify` right: authenticity
    /// check by check, the card's data against the register, the card's status and the
    /// holder's vital status. Logged like every exchange.
    pub fn verify_card(
        &self,
        client: &Client,
        meta: &CallMeta,
        input: &CardInput,
    ) -> Result<CardAnswer, HubError> {
        crate::cards::decode_input(input).map_err(|e| HubError::Invalid {
            code: e.code,
            vi: e.vi,
            en: e.en,
        })?;
        let fields: Vec<String> = CARD_VERIFY_FIELDS.iter().map(|f| (*f).to_owned()).collect();
        let (verification, seq) = self.exchange(
            client,
            meta,
            SERVICE_CARD_VERIFY,
            None,
            &fields,
            None,
            |_| {
                let v = self.card_work(input)?;
                let person = v.personal_id.clone().filter(|_| v.person_found);
                Ok((v, person))
            },
        )?;
        Ok(CardAnswer {
            verification,
            audit_seq: seq,
        })
    }

    /// Card verification for a police officer of the register (Bearer token): the same answer,
    /// logged in the exchange log under the caller `register-officer` with the officer as the
    /// end user. The purpose is required.
    pub fn verify_card_for_officer(
        &self,
        officer_id: &str,
        purpose: &str,
        input: &CardInput,
    ) -> Result<CardAnswer, HubError> {
        if purpose.trim().is_empty() {
            return Err(HubError::invalid(
                "purpose_required",
                "Cần nêu mục đích đối chiếu thẻ",
                "State the purpose of the card check",
            ));
        }
        crate::cards::decode_input(input).map_err(|e| HubError::Invalid {
            code: e.code,
            vi: e.vi,
            en: e.en,
        })?;
        let mut record = AuditRecord {
            time: self.clock.now(),
            caller_org: OFFICER_CALLER.to_owned(),
            subsystem: "api".to_owned(),
            end_user: Some(officer_id.to_owned()),
            service: SERVICE_CARD_VERIFY.to_owned(),
            person: None,
            fields: CARD_VERIFY_FIELDS.iter().map(|f| (*f).to_owned()).collect(),
            purpose: purpose.trim().to_owned(),
            case_ref: None,
            result: ExchangeResult::Served,
            covert_until: None,
        };
        match self.card_work(input) {
            Ok(v) => {
                record.person = v.personal_id.clone().filter(|_| v.person_found);
                let seq = self.log(&record)?;
                Ok(CardAnswer {
                    verification: v,
                    audit_seq: seq,
                })
            }
            Err(e) => {
                record.result = ExchangeResult::Failed(e.code().to_owned());
                self.log(&record)?;
                Err(e)
            }
        }
    }
}

const PASS_PSEUDONYM_KIND: &str = "hub_pass_pseudonym";
const PASS_NONCE_KIND: &str = "hub_pass_nonce";
const CHECK_IN_KIND: &str = "hub_check_in";
/// Most check-ins one listing returns.
const CHECK_IN_LIST: u32 = 500;

/// A pass as issued to the person's app.
#[derive(Debug, Clone, Serialize)]
pub struct IssuedPass {
    /// The compact JWS to show as a QR code.
    pub qr: String,
    /// Its expiry.
    pub expires_at: DateTime<Utc>,
}

fn pass_refusal(e: crate::checkpoint::PassError) -> HubError {
    HubError::Invalid {
        code: e.code(),
        vi: e.message_vi().to_owned(),
        en: e.to_string(),
    }
}

impl Hub {
    /// Issues a checkpoint pass for a person: a fresh pseudonym and nonce, signed with the
    /// hub's key, valid for [`crate::checkpoint::PASS_SECONDS`].
    pub fn issue_pass(
        &self,
        person: &str,
        level: u8,
        photo_hash: Option<String>,
    ) -> Result<IssuedPass, HubError> {
        let pid = parse_id(person)?;
        if !(1..=2).contains(&level) {
            return Err(HubError::invalid(
                "invalid_level",
                "Mức định danh phải là 1 hoặc 2",
                "The level must be 1 or 2",
            ));
        }
        if photo_hash
            .as_ref()
            .is_some_and(|h| h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(HubError::invalid(
                "invalid_photo_hash",
                "Mã băm ảnh phải là SHA-256 dạng hex",
                "The photo hash must be a hex SHA-256",
            ));
        }
        let p = self.person(&pid)?;
        if p.is_dead() {
            return Err(HubError::invalid(
                "person_dead",
                "Công dân đã chết; không cấp mã qua điểm kiểm soát",
                "The person is recorded as dead; no pass is issued",
            ));
        }
        let now = self.clock.now();
        let exp = now + chrono::Duration::seconds(crate::checkpoint::PASS_SECONDS);
        let mut raw = [0u8; 24];
        rand::Rng::fill_bytes(&mut rand::rng(), &mut raw);
        let pseudonym = format!("ps_{}", hex::encode(&raw[..12]));
        let nonce = hex::encode(&raw[12..]);
        // The pseudonym resolves to the person only at the hub, and only until the pass is
        // long expired.
        self.docs
            .put(
                PASS_PSEUDONYM_KIND,
                &pseudonym,
                0,
                &serde_json::to_string(person).map_err(internal)?,
                Some(exp + chrono::Duration::days(1)),
            )
            .map_err(internal)?;
        let claims = crate::checkpoint::PassClaims {
            sub: pseudonym,
            lvl: level,
            jti: nonce,
            iat: now.timestamp(),
            exp: exp.timestamp(),
            ph: photo_hash,
        };
        let qr = sign_es256(
            &self.response_key,
            crate::checkpoint::PASS_TYPE,
            Some(&self.response_kid),
            false,
            &claims,
        )
        .map_err(internal)?;
        Ok(IssuedPass {
            qr,
            expires_at: exp,
        })
    }

    /// Records a check-in by a member's checkpoint at `place`: the pass must verify with the
    /// hub's key, be unexpired and never seen before. Logged like every exchange.
    pub fn check_in(
        &self,
        client: &Client,
        place: &str,
        pass: &str,
    ) -> Result<crate::checkpoint::CheckIn, HubError> {
        let place = place.trim();
        if place.is_empty() || place.len() > 100 || place.contains('/') {
            return Err(HubError::invalid(
                "invalid_place",
                "Mã địa điểm phải có từ 1 đến 100 ký tự, không chứa '/'",
                "The place code must be 1 to 100 characters without '/'",
            ));
        }
        let now = self.clock.now();
        let claims =
            crate::checkpoint::verify_pass(pass, &self.jwks(), now).map_err(pass_refusal)?;
        let meta = CallMeta {
            purpose: crate::checkpoint::SERVICE_CHECKPOINT.to_owned(),
            end_user: None,
            case_ref: None,
        };
        let fields = vec!["check_in".to_owned()];
        let (check_in, _) = self.exchange(
            client,
            &meta,
            crate::checkpoint::SERVICE_CHECKPOINT,
            None,
            &fields,
            None,
            |_| {
                let until = DateTime::from_timestamp(claims.exp, 0).unwrap_or(now)
                    + chrono::Duration::minutes(10);
                if !self
                    .docs
                    .remember_once(PASS_NONCE_KIND, &claims.jti, now, until)
                    .map_err(internal)?
                {
                    return Err(HubError::invalid(
                        "pass_replayed",
                        "Mã QR này đã được dùng; hãy mở lại mã mới trên ứng dụng",
                        "This pass was used before; open a new one in the app",
                    ));
                }
                let person: Option<String> = self
                    .docs
                    .get(PASS_PSEUDONYM_KIND, &claims.sub)
                    .map_err(internal)?
                    .and_then(|d| serde_json::from_str(&d.json).ok());
                let c = crate::checkpoint::CheckIn {
                    org: client.org.clone(),
                    place: place.to_owned(),
                    at: now,
                    level: claims.lvl,
                    token: claims.sub.clone(),
                };
                let json = serde_json::to_string(&c).map_err(internal)?;
                let stamp = now.format("%Y%m%dT%H%M%S%.3f");
                let mut keys = vec![format!("org/{}/{stamp}/{}", client.org, claims.jti)];
                if let Some(p) = &person {
                    keys.push(format!("person/{p}/{stamp}/{}", claims.jti));
                }
                for k in keys {
                    self.docs
                        .put(CHECK_IN_KIND, &k, 0, &json, None)
                        .map_err(internal)?;
                }
                Ok((c, person))
            },
        )?;
        Ok(check_in)
    }

    /// The check-ins at the member's own places, oldest first.
    pub fn org_check_ins(
        &self,
        client: &Client,
    ) -> Result<Vec<crate::checkpoint::CheckIn>, HubError> {
        self.check_ins(&format!("org/{}/", client.org))
    }

    /// Where the person checked in, oldest first.
    pub fn person_check_ins(
        &self,
        person: &str,
    ) -> Result<Vec<crate::checkpoint::CheckIn>, HubError> {
        parse_id(person)?;
        self.check_ins(&format!("person/{person}/"))
    }

    fn check_ins(&self, prefix: &str) -> Result<Vec<crate::checkpoint::CheckIn>, HubError> {
        self.docs
            .list(CHECK_IN_KIND, prefix, CHECK_IN_LIST)
            .map_err(internal)?
            .into_iter()
            .map(|(_, d)| serde_json::from_str(&d.json).map_err(internal))
            .collect()
    }
}

/// The caller recorded in the exchange log for officers' card checks.
pub const OFFICER_CALLER: &str = "register-officer";

impl HubError {
    pub(crate) fn internal(e: impl std::fmt::Display) -> Self {
        Self::Internal(e.to_string())
    }
}

/// Most register events one feed call reads.
const FEED_SCAN: usize = 20_000;

pub(crate) fn parse_id(id: &str) -> Result<PersonalId, HubError> {
    id.parse().map_err(|_| {
        HubError::invalid(
            "invalid_personal_id",
            "Số định danh cá nhân phải gồm 12 chữ số hợp lệ",
            "The personal ID must be 12 valid digits",
        )
    })
}

/// The fields an attribute-match request claims (at least one).
pub(crate) fn claimed_fields(claims: &Claims) -> Result<Vec<String>, HubError> {
    let mut fields = Vec::new();
    for (name, present) in [
        ("name", claims.name.is_some()),
        ("date_of_birth", claims.date_of_birth.is_some()),
        ("sex", claims.sex.is_some()),
        ("commune_code", claims.commune_code.is_some()),
        ("alive", claims.alive.is_some()),
    ] {
        if present {
            fields.push(name.to_owned());
        }
    }
    if fields.is_empty() {
        return Err(HubError::invalid(
            "no_claims",
            "Cần nêu ít nhất một thông tin để đối chiếu",
            "Claim at least one field to match",
        ));
    }
    Ok(fields)
}

/// The `iss` claim of a compact JWS, unverified (to find the keys to verify it with).
fn assertion_issuer(token: &str) -> Option<String> {
    let mut parts = token.split('.');
    let (_, payload) = (parts.next()?, parts.next()?);
    let bytes = crate::audit::base64url_decode(payload)?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v.get("iss")?.as_str().map(str::to_owned)
}
