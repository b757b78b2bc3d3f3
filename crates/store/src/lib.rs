//! Persistence of the register, behind one trait with two backends.
//!
//! The store owns durability and atomicity, nothing else: it appends events to per-stream logs
//! with optimistic versions, writes the projection of each stream in the same transaction, keeps
//! idempotency records, the register of officers and the read-access log. It also keeps the
//! e-ID service's records as versioned documents, one-shot keys and a usage log ([`docs`]),
//! without knowing their types. It holds no rule (that is `dancu-domain` and the use-case
//! crates) and knows nothing of HTTP.
//!
//! Backends: [`sqlite::SqliteStore`] (embedded default, WAL, one writer connection and a pool of
//! readers; the read-access log in its own file beside the register) and [`postgres::PgStore`]
//! (scale-out; the schema is keyed by personal ID so it can be distributed). Both pass the same
//! contract tests (`tests/contract.rs`). The layout's version is recorded ([`SCHEMA_VERSION`]).
//!
//! Imports go through [`Importer`]: batch by batch with a progress mark, or, on SQLite into an
//! empty register, as a bulk load that writes each page once and builds the indexes at the end
//! (see the `sqlite_bulk` module).
//!
//! Every method is blocking; async callers run them on a blocking thread pool.

use chrono::{DateTime, Utc};
use dancu_domain::PersonalId;
use dancu_domain::event::{EventMeta, Household, HouseholdChange, PersonChange};
use dancu_domain::officer::Officer;
use dancu_domain::person::Person;
use serde::{Deserialize, Serialize};

mod access_journal;
mod access_runs;
pub mod docs;
mod docs_postgres;
mod docs_sqlite;
pub mod postgres;
pub mod record_cache;
pub mod sqlite;
mod sqlite_bulk;

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The stream is not at the version the writer read: someone else wrote in between.
    #[error("stream {stream} is at version {actual}, not the expected {expected}")]
    Conflict {
        stream: String,
        expected: u64,
        actual: u64,
    },
    /// A stream that was to be created exists already (e.g. an ID number collision).
    #[error("stream {0} already exists")]
    Exists(String),
    /// An idempotency key was reused for a different request.
    #[error("idempotency key reused for a different request")]
    IdempotencyMismatch,
    /// Any failure of the database itself (I/O, full disk, lost connection).
    #[error("database error: {0}")]
    Backend(String),
}

/// Result of a store call.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which stream an event belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StreamId {
    /// A person's stream.
    Person(PersonalId),
    /// A household's stream.
    Household(String),
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Person(id) => write!(f, "p:{id}"),
            Self::Household(h) => write!(f, "h:{h}"),
        }
    }
}

/// One change to append, with the state it produces (computed by the domain fold).
// A commit holds a handful of these for the duration of one call, so boxing the larger variant
// would buy nothing measurable.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Append {
    /// A person event; `expected` is the version the writer read (0 for a new person).
    Person {
        expected: u64,
        change: PersonChange,
        state: Person,
    },
    /// A household event.
    Household {
        expected: u64,
        change: HouseholdChange,
        state: Household,
    },
}

impl Append {
    /// The stream the change belongs to.
    pub fn stream(&self) -> StreamId {
        match self {
            Self::Person { state, .. } => StreamId::Person(state.id),
            Self::Household { state, .. } => StreamId::Household(state.id.clone()),
        }
    }
    fn expected(&self) -> u64 {
        match self {
            Self::Person { expected, .. } | Self::Household { expected, .. } => *expected,
        }
    }
    fn kind(&self) -> &'static str {
        match self {
            Self::Person { change, .. } => change.kind(),
            Self::Household { change, .. } => change.kind(),
        }
    }
    fn change_json(&self) -> Result<String> {
        match self {
            Self::Person { change, .. } => to_json(change),
            Self::Household { change, .. } => to_json(change),
        }
    }
}

/// The response stored under an idempotency key, replayed when the same request comes again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotentResponse {
    /// Key given by the client.
    pub key: String,
    /// Who sent it: keys are scoped per actor.
    pub actor: String,
    /// Hash of the request body, to detect a key reused for another request.
    pub request_hash: String,
    /// HTTP status of the first answer.
    pub status: u16,
    /// Body of the first answer.
    pub body: String,
}

/// Everything one command writes, committed atomically or not at all.
#[derive(Debug, Clone)]
pub struct Commit {
    /// Who, when, why: shared by every event of the commit.
    pub meta: EventMeta,
    /// The events, in order.
    pub appends: Vec<Append>,
    /// The answer to remember under the client's idempotency key.
    pub idempotency: Option<IdempotentResponse>,
}

/// An event as stored, with its global sequence number (the outbox order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    /// Global, gap-free-per-commit, increasing sequence number.
    pub seq: i64,
    /// Stream, as `p:<id>` or `h:<household>`.
    pub stream: String,
    /// Version of the stream this event made.
    pub version: u64,
    /// Event type, e.g. `birth_registered`.
    pub kind: String,
    /// Who, when, why.
    pub meta: EventMeta,
    /// The change, as JSON (a `PersonChange` or `HouseholdChange`).
    pub change: serde_json::Value,
}

/// A name search. `name_key` is the accent-free key (`dancu_domain::name::match_key`).
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    /// The key to look for.
    pub name_key: String,
    /// Match names that start with the key, not only the whole name.
    pub prefix: bool,
    /// Birth year filter.
    pub birth_year: Option<i32>,
    /// Home commune (2025 code) filter.
    pub commune: Option<String>,
    /// Province (2025 code) filter: used for provincial officers.
    pub province: Option<String>,
    /// Most rows to return.
    pub limit: u32,
}

/// One read of a person's data, for the access log (nhật ký khai thác).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessEntry {
    /// Officer (or client system) that read.
    pub actor: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Whose data.
    pub person: PersonalId,
    /// Purpose the reader gave.
    pub purpose: String,
    /// What was read (`record`, `history`, `search`, …).
    pub action: String,
}

/// A stored officer with the hash of their API credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfficerRecord {
    /// The officer.
    pub officer: Officer,
    /// SHA-256 (hex) of the API token; the token itself is never stored.
    pub token_hash: String,
    /// When created.
    pub created_at: DateTime<Utc>,
}

/// A row of a bulk import: the record and its place in the source file.
#[derive(Debug, Clone)]
pub struct ImportRow {
    /// Line (NDJSON) or record (CSV) number in the source, from 1.
    pub line: u64,
    /// The record, already validated by the caller.
    pub person: Person,
}

/// A person's current record as stored JSON, with its home commune (2025 code) when one can be
/// decided: what the hot read path passes through without decoding.
pub type PersonJson = (String, Option<String>);

/// A personal ID read back from the database (stored IDs were checked when written, so a
/// failure here means the database was changed behind the register's back).
pub(crate) fn stored_id(id: &str) -> Result<PersonalId> {
    PersonalId::parse(id).map_err(|e| StoreError::Backend(format!("stored ID {id:?}: {e}")))
}

/// What [`Store::scan_persons_json`] calls for each person: ID, stored record JSON, home
/// commune (2025 code).
pub type ScanPerson<'a> = dyn FnMut(PersonalId, &str, Option<&str>) -> Result<()> + 'a;

/// The register's persistence.
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Backend name for logs and `/readyz` (`sqlite` or `postgres`).
    fn backend(&self) -> &'static str;
    /// Checks the database answers.
    fn ping(&self) -> Result<()>;

    /// Appends all events and writes all projections atomically. Fails with
    /// [`StoreError::Conflict`] / [`StoreError::Exists`] if any stream moved, writing nothing.
    /// Returns the global sequence numbers given to the events.
    fn commit(&self, commit: &Commit) -> Result<Vec<i64>>;

    /// The current record of a person.
    fn person(&self, id: &PersonalId) -> Result<Option<Person>>;
    /// The stored JSON of a person's current record with its home commune (2025 code), for
    /// read paths that pass the record through without decoding it.
    fn person_json(&self, id: &PersonalId) -> Result<Option<(String, Option<String>)>> {
        Ok(self.person(id)?.map(|p| {
            let commune = p.home_commune();
            (serde_json::to_string(&p).unwrap_or_default(), commune)
        }))
    }
    /// [`Self::person_json`] for several IDs in one go: one answer per ID asked, in the same
    /// order (`None` for an unknown ID; an ID asked twice is answered twice).
    fn persons_json(&self, ids: &[PersonalId]) -> Result<Vec<Option<PersonJson>>> {
        ids.iter().map(|id| self.person_json(id)).collect()
    }
    /// Whether concurrent single-record reads are better gathered and answered by
    /// [`Self::persons_json`] in one go: true when every read costs a network round trip (and a
    /// pooled connection held for it), so that one query for many readers costs little more
    /// than one for a single reader.
    fn reads_gather(&self) -> bool {
        false
    }
    /// Several records at once (missing IDs are skipped).
    fn persons(&self, ids: &[PersonalId]) -> Result<Vec<Person>>;
    /// Loads the store's in-memory cache of rendered records (see [`record_cache`]) up to its
    /// budget, once per store. `None` when the store keeps no such cache; else how many records
    /// it then held and how long the call took (a later call loads nothing and returns at once).
    fn fill_record_cache(&self) -> Result<Option<(usize, std::time::Duration)>> {
        Ok(None)
    }
    /// What the record cache holds and how it answered, when the store has one.
    fn record_cache_stats(&self) -> Option<record_cache::RecordCacheStats> {
        None
    }
    /// A household.
    fn household(&self, id: &str) -> Result<Option<Household>>;
    /// The events of a stream, oldest first, optionally only those recorded up to `until`.
    fn events(&self, stream: &StreamId, until: Option<DateTime<Utc>>)
    -> Result<Vec<RecordedEvent>>;
    /// Events of every stream after a global sequence number (the outbox feed).
    fn events_after(&self, seq: i64, limit: u32) -> Result<Vec<RecordedEvent>>;
    /// The seq and stream of up to `limit` events after `seq`, without decoding them (for
    /// in-memory views that only need to know which streams moved).
    fn streams_after(&self, seq: i64, limit: u32) -> Result<Vec<(i64, String)>> {
        Ok(self
            .events_after(seq, limit)?
            .into_iter()
            .map(|e| (e.seq, e.stream))
            .collect())
    }
    /// The highest event seq committed so far (0 for an empty register).
    fn last_event_seq(&self) -> Result<i64> {
        let mut last = 0;
        loop {
            let page = self.streams_after(last, 10_000)?;
            match page.last() {
                Some((seq, _)) => last = *seq,
                None => return Ok(last),
            }
        }
    }
    /// A counter that this process bumps after every commit that may change the register
    /// (persons, households, events), or `None` when the register can change without this
    /// process knowing (another node writing to the same server database). An in-memory view
    /// kept beside the register is up to date as long as the counter has not moved since the
    /// view last caught up with [`Self::streams_after`]: the counter moves only after a
    /// commit, so a view that reads it before catching up never misses that commit.
    fn register_writes(&self) -> Option<u64> {
        None
    }
    /// Search by name key with filters, ordered by name key, birth year, then ID.
    fn search(&self, q: &SearchQuery) -> Result<Vec<Person>> {
        self.search_json(q)?
            .iter()
            .map(|(_, data)| from_json(data))
            .collect()
    }
    /// The same search, answering with each record's stored JSON (no decoding).
    fn search_json(&self, q: &SearchQuery) -> Result<Vec<(PersonalId, String)>>;
    /// People whose home commune is `commune`, ordered by ID, after `after`.
    fn people_of_commune(
        &self,
        commune: &str,
        after: Option<&PersonalId>,
        limit: u32,
    ) -> Result<Vec<Person>>;
    /// Number of people recorded.
    fn count_people(&self) -> Result<u64>;
    /// Whether a household number is taken.
    fn household_exists(&self, id: &str) -> Result<bool>;

    /// The stored answer for an idempotency key of an actor.
    fn idempotent(&self, actor: &str, key: &str) -> Result<Option<IdempotentResponse>>;

    /// Adds an officer (fails with `Exists` for a taken id).
    fn add_officer(&self, officer: &OfficerRecord) -> Result<()>;
    /// The officer holding a token hash.
    fn officer_by_token(&self, token_hash: &str) -> Result<Option<Officer>>;
    /// All officers.
    fn officers(&self) -> Result<Vec<Officer>>;

    /// Appends entries to the read-access log in one transaction.
    fn record_access(&self, entries: &[AccessEntry]) -> Result<()>;
    /// Upkeep of the access log that need not delay anyone waiting for a commit (SQLite syncs
    /// its journal, writes the sorted runs, and checkpoints the index database here). A thread
    /// of its own calls it every half second.
    fn access_log_upkeep(&self) -> Result<()> {
        Ok(())
    }
    /// Background work on the access log that may take long and can wait for idle CPU (SQLite
    /// merges its sorted runs here). A thread of its own, at low priority, calls it every half
    /// second.
    fn access_log_compact(&self) -> Result<()> {
        Ok(())
    }
    /// Whether appending to the access log is cheap enough to do on the reader's own thread:
    /// no network round trip and no sync per append. Handing such an append to the batching
    /// writer thread (a wake-up and a context switch each way) would cost more than it saves.
    fn access_append_is_local(&self) -> bool {
        false
    }
    /// How many threads should commit access-log batches at once. One suits a store whose
    /// commit is a local append or sync. A database server takes a commit's rows while another
    /// commit waits for its WAL flush and flushes the waiting commits together, so overlapping
    /// writers shorten the wait of every read.
    fn access_log_writers(&self) -> usize {
        1
    }
    /// The access log of one person, newest first.
    fn access_log(&self, person: &PersonalId, limit: u32) -> Result<Vec<AccessEntry>>;

    /// Loads a batch of new records in one transaction together with the import's progress mark,
    /// so a killed import leaves either the whole batch and its mark or neither. Returns the
    /// lines whose ID already existed (skipped, not overwritten).
    fn import_batch(
        &self,
        import_id: &str,
        rows: &[ImportRow],
        meta: &EventMeta,
    ) -> Result<Vec<u64>>;
    /// Loads new households (creation events and projections) in one transaction. Households
    /// whose number exists are skipped and returned.
    fn import_households(&self, households: &[Household], meta: &EventMeta) -> Result<Vec<String>> {
        // Portable fallback: one commit per household. Backends override it with a batch.
        let mut taken = Vec::new();
        for h in households {
            let change = HouseholdChange::Created {
                address: h.address.clone(),
                members: h.members.clone(),
            };
            let commit = Commit {
                meta: meta.clone(),
                appends: vec![Append::Household {
                    expected: 0,
                    change,
                    state: h.clone(),
                }],
                idempotency: None,
            };
            match self.commit(&commit) {
                Ok(_) => {}
                Err(StoreError::Exists(_)) => taken.push(h.id.clone()),
                Err(e) => return Err(e),
            }
        }
        Ok(taken)
    }
    /// The last line of an import committed so far.
    fn import_progress(&self, import_id: &str) -> Result<Option<u64>>;
    /// Up to `limit` people in ID order, after `after` (a page of an export or a sample).
    fn persons_after(&self, after: Option<&PersonalId>, limit: u32) -> Result<Vec<Person>>;
    /// Calls `f` with every person's ID, stored record JSON and home commune, in no particular
    /// order, a page at a time (each page read on its own: a person changed during the scan
    /// may be seen before or after the change); stops at the first error `f` returns.
    fn scan_persons_json(&self, f: &mut ScanPerson<'_>) -> Result<()> {
        self.for_each_person(&mut |p| {
            let commune = p.home_commune();
            f(p.id, &to_json(&p)?, commune.as_deref())
        })
    }
    /// Calls `f` for every person, in ID order, a page at a time (for export); stops at the
    /// first error `f` returns.
    fn for_each_person(&self, f: &mut dyn FnMut(Person) -> Result<()>) -> Result<()> {
        let mut after: Option<PersonalId> = None;
        loop {
            let page = self.persons_after(after.as_ref(), 5_000)?;
            let Some(last) = page.last() else {
                return Ok(());
            };
            after = Some(last.id);
            for p in page {
                f(p)?;
            }
        }
    }

    /// Starts a bulk load, if this backend has a faster path for loading into an empty register
    /// and can have the database to itself now; `None` means "use [`Store::import_batch`]".
    /// A bulk load started by `import_id` that was interrupted may be resumed by the same id.
    /// Use it through [`Importer`], which falls back to the ordinary path.
    fn bulk_load<'a>(
        &'a self,
        _import_id: &str,
        _meta: &EventMeta,
    ) -> Result<Option<Box<dyn BulkLoad + 'a>>> {
        Ok(None)
    }
}

/// A bulk load in progress: the same contract as [`Store::import_batch`] and
/// [`Store::import_households`] (each call is one transaction with the import's progress mark),
/// with secondary indexes built once in [`BulkLoad::finish`]. Until then the backend may refuse
/// other users of the database. Dropping it without `finish` still restores the indexes.
/// A backend may leave the last batch's transaction open until the next call (which commits it
/// first) so that committing overlaps work on the next batch: a batch is then durable once the
/// next call returns, and a crash before that loses it whole, progress mark included.
pub trait BulkLoad: std::fmt::Debug {
    /// Loads new records; returns the lines whose ID was already loaded (skipped).
    fn people(&mut self, rows: &[ImportRow]) -> Result<Vec<u64>>;
    /// Loads new households; returns the numbers already taken (skipped).
    fn households(&mut self, households: &[Household]) -> Result<Vec<String>>;
    /// Builds the indexes and returns the database to ordinary use.
    fn finish(self: Box<Self>) -> Result<()>;
}

/// Loads records into a store by the fastest path it offers: a [`BulkLoad`] when the register is
/// empty and the backend has one, else [`Store::import_batch`] batch by batch.
#[derive(Debug)]
pub struct Importer<'a> {
    store: &'a dyn Store,
    bulk: Option<Box<dyn BulkLoad + 'a>>,
    import_id: String,
    meta: EventMeta,
}

impl<'a> Importer<'a> {
    /// Starts an import identified by `import_id` (the same id resumes it).
    pub fn new(store: &'a dyn Store, import_id: &str, meta: &EventMeta) -> Result<Self> {
        Ok(Self {
            store,
            bulk: store.bulk_load(import_id, meta)?,
            import_id: import_id.to_owned(),
            meta: meta.clone(),
        })
    }
    /// Whether the bulk path is in use.
    pub fn is_bulk(&self) -> bool {
        self.bulk.is_some()
    }
    /// Loads a batch of people; returns the lines skipped as already present.
    pub fn people(&mut self, rows: &[ImportRow]) -> Result<Vec<u64>> {
        match &mut self.bulk {
            Some(b) => b.people(rows),
            None => self.store.import_batch(&self.import_id, rows, &self.meta),
        }
    }
    /// Loads households; returns the numbers skipped as taken.
    pub fn households(&mut self, households: &[Household]) -> Result<Vec<String>> {
        match &mut self.bulk {
            Some(b) => b.households(households),
            None => self.store.import_households(households, &self.meta),
        }
    }
    /// Finishes the load (builds the indexes of a bulk load).
    pub fn finish(self) -> Result<()> {
        match self.bulk {
            Some(b) => b.finish(),
            None => Ok(()),
        }
    }
}

/// Version of the database layout this build writes. Stored in the `meta` table on first open;
/// a database written by a newer build is refused rather than misread, and an older one is
/// migrated step by step on open. Version 2 moved SQLite's person and event keys into separate
/// indexes, so that a bulk load can build them at the end. SQLite's layout has gone on to
/// version 3 (`sqlite::SQLITE_SCHEMA_VERSION`: bulk-loaded records stored once); PostgreSQL's
/// is this one.
pub const SCHEMA_VERSION: u32 = 2;

fn check_schema_version(found: &str) -> Result<()> {
    check_schema_version_upto(found, SCHEMA_VERSION)
}

/// [`check_schema_version`] for a backend whose newest layout is `newest`.
fn check_schema_version_upto(found: &str, newest: u32) -> Result<()> {
    match found.parse::<u32>() {
        Ok(v) if v <= newest => Ok(()),
        Ok(v) => Err(StoreError::Backend(format!(
            "the database has schema version {v}, newer than this build's {newest}: use a newer dancu"
        ))),
        Err(_) => Err(StoreError::Backend(format!(
            "unreadable schema version {found:?} in the meta table"
        ))),
    }
}

fn to_json<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Backend(format!("encoding JSON: {e}")))
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Backend(format!("decoding stored JSON: {e}")))
}

/// The columns a person's projection is indexed by.
#[derive(Debug)]
pub(crate) struct PersonIndex {
    pub(crate) name_key: String,
    pub(crate) birth_year: i32,
    pub(crate) commune: Option<String>,
    pub(crate) province: Option<String>,
    pub(crate) alive: bool,
}

/// The 2025 commune and province of a commune code of some scheme.
type HomeUnits = (Option<String>, Option<String>);

fn home_units(address: &dancu_domain::admin::Address) -> HomeUnits {
    let commune = address.current_commune_code();
    let province = commune.as_deref().and_then(|c| {
        dancu_domain::admin::AdminUnits::get()
            .commune(dancu_domain::admin::Scheme::Y2025, c)
            .map(|c| c.province_code.to_owned())
    });
    (commune, province)
}

/// Remembers [`home_units`] by scheme and commune code (all they depend on), for loads that
/// index many people of the same communes.
#[derive(Debug, Default)]
pub(crate) struct HomeUnitsCache(
    std::collections::HashMap<(dancu_domain::admin::Scheme, String), HomeUnits>,
);

impl PersonIndex {
    pub(crate) fn of(p: &Person) -> Self {
        Self::with_units(p, home_units(p.home_address()))
    }

    /// [`PersonIndex::of`], looking the home commune up through `cache`.
    pub(crate) fn of_cached(p: &Person, cache: &mut HomeUnitsCache) -> Self {
        let address = p.home_address();
        let key = (address.scheme, address.commune_code.clone());
        let units = match cache.0.get(&key) {
            Some(units) => units.clone(),
            None => {
                let units = home_units(address);
                cache.0.insert(key, units.clone());
                units
            }
        };
        Self::with_units(p, units)
    }

    fn with_units(p: &Person, (commune, province): HomeUnits) -> Self {
        Self {
            name_key: p.name.match_key(),
            birth_year: p.date_of_birth.year(),
            commune,
            province,
            alive: !p.is_dead(),
        }
    }
}

/// Opens the store a URL names: `postgres://…` selects PostgreSQL; anything else is taken as a
/// SQLite database file path.
pub fn open(url_or_path: &str) -> Result<std::sync::Arc<dyn Store>> {
    if url_or_path.starts_with("postgres://") || url_or_path.starts_with("postgresql://") {
        Ok(std::sync::Arc::new(postgres::PgStore::open(url_or_path)?))
    } else {
        Ok(std::sync::Arc::new(sqlite::SqliteStore::open(
            std::path::Path::new(url_or_path),
        )?))
    }
}
