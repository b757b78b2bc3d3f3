//! The embedded backend: one SQLite database file in WAL mode.
//!
//! Writes go through one connection behind a mutex (SQLite allows one writer at a time, and
//! queueing in-process is cheaper than busy-waiting); reads use a pool of connections that see
//! the last committed state. `synchronous=NORMAL` with WAL keeps every commit atomic and the
//! database consistent after a crash at any instant; a power cut may lose the last commits.
//! Set `synchronous=FULL` with [`SqliteStore::open_with`] when that matters more than speed.
//!
//! ## Stored records
//!
//! A person's current record is the JSON in `persons.data`, except for a record written by a
//! bulk load ([`crate::sqlite_bulk`]) and not changed since: its `data` is `#` followed by the
//! seq of the person's `record_imported` event (`change` =
//! `{"type":"record_imported","record":<record JSON>}`), which holds the record, so that a bulk
//! load writes each record once. (An empty `data` refers to the same event by stream `p:<id>`
//! and version 1; bulk loads of an earlier build wrote that.) Every read of `persons.data` goes
//! through `person_data!` and [`record_text`], which hand back the same JSON text either way;
//! the person's first change writes the whole new record into `data` as usual, and the event
//! keeps the imported one. Reading such a person costs one more row lookup (the event by its
//! seq, the table's own key).
//! Schema version 3 ([`SQLITE_SCHEMA_VERSION`]) marks databases that may hold such rows, so
//! that an older build refuses them instead of failing on an empty record; databases of
//! versions 1 and 2 (always plain JSON) are read as they are.

use crate::access_journal::AccessJournal;
use crate::*;
use dancu_domain::event::Household;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

// Tables whose rows carry a whole record (persons, households, idempotent answers, events) are
// ordinary rowid tables: rows are appended and the key lives in a small separate index.
// `WITHOUT ROWID` would keep ~1 KB rows inside a B-tree ordered by a random ID, which made bulk
// loads about seven times slower.
/// Path of the access log's index database that goes with a register database
/// (`<name>-access.sqlite3`). The log itself is an append-only journal beside it, indexed by
/// person into sorted run files in `<name>-access-runs/`, which this database lists; see
/// [`crate::access_journal`].
pub fn access_log_path(path: &Path) -> PathBuf {
    beside(path, "access.sqlite3")
}

/// A file next to the register's database, named after it: `<name>-<suffix>`.
pub(crate) fn beside(path: &Path, suffix: &str) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "dancu".into());
    path.with_file_name(format!("{stem}-{suffix}"))
}

/// The indexes of the person and event tables. They are separate statements (not inline
/// `PRIMARY KEY`/`UNIQUE` constraints) so that a bulk load into an empty register can drop them
/// and build them once at the end by sorting, which is several times cheaper than keeping
/// four B-trees ordered by random keys row by row.
pub(crate) const BULK_INDEXES: &str = r#"
CREATE UNIQUE INDEX IF NOT EXISTS events_stream ON events (stream, version);
CREATE UNIQUE INDEX IF NOT EXISTS persons_id ON persons (id);
-- Ordered as search results are returned, with the filter columns included, so a search
-- walks the index and stops after one page instead of sorting every namesake.
CREATE INDEX IF NOT EXISTS persons_name ON persons (name_key, birth_year, id, commune, province);
CREATE INDEX IF NOT EXISTS persons_commune ON persons (commune, id);
"#;

/// Names of [`BULK_INDEXES`], for dropping them.
pub(crate) const BULK_INDEX_NAMES: [&str; 4] = [
    "events_stream",
    "persons_id",
    "persons_name",
    "persons_commune",
];

/// Schema version 1 kept the person key and the event stream key as inline constraints; version
/// 2 moves them into [`BULK_INDEXES`]. SQLite cannot drop an inline constraint, so the two
/// tables are rebuilt (row ids and event sequence numbers are kept).
const MIGRATE_V1_TO_V2: &str = r#"
ALTER TABLE persons RENAME TO persons_v1;
CREATE TABLE persons (
    id TEXT NOT NULL, version INTEGER NOT NULL, name_key TEXT NOT NULL,
    birth_year INTEGER NOT NULL, commune TEXT, province TEXT, alive INTEGER NOT NULL,
    data TEXT NOT NULL
);
INSERT INTO persons (rowid, id, version, name_key, birth_year, commune, province, alive, data)
    SELECT rowid, id, version, name_key, birth_year, commune, province, alive, data FROM persons_v1;
DROP TABLE persons_v1;
ALTER TABLE events RENAME TO events_v1;
CREATE TABLE events (
    seq INTEGER PRIMARY KEY, stream TEXT NOT NULL, version INTEGER NOT NULL, kind TEXT NOT NULL,
    at TEXT NOT NULL, meta TEXT NOT NULL, change TEXT NOT NULL
);
INSERT INTO events SELECT seq, stream, version, kind, at, meta, change FROM events_v1;
DROP TABLE events_v1;
UPDATE meta SET value = '2' WHERE key = 'schema_version';
"#;

/// Layout version of the SQLite database: the shared [`SCHEMA_VERSION`] (2) plus version 3,
/// which lets a bulk-loaded person's `data` refer to its import event (see the module docs).
/// Version 3 changes no table, so migrating from 2 only records the new number. PostgreSQL's
/// layout is unchanged and stays at [`SCHEMA_VERSION`].
pub(crate) const SQLITE_SCHEMA_VERSION: u32 = 3;

/// The columns that give a person's record, for `persons p`: `data`, and when `data` is empty
/// (a bulk-loaded record never changed since), the person's import event. Read them with
/// [`record_text`]. A macro so that statements can be `concat!`ed at compile time.
macro_rules! person_data {
    () => {
        "p.data, CASE WHEN substr(p.data, 1, 1) = '#' THEN \
         (SELECT e.change FROM events e WHERE e.seq = CAST(substr(p.data, 2) AS INTEGER)) \
         WHEN p.data = '' THEN \
         (SELECT e.change FROM events e WHERE e.stream = 'p:' || p.id AND e.version = 1) END"
    };
}

/// How a projection row's `data` names the event holding its record: `#` and the event's seq
/// (a record itself is a JSON object, so it never starts with `#`).
pub(crate) const RECORD_REF: char = '#';

/// How a `record_imported` event's change starts; the record follows, then one `}`.
pub(crate) const IMPORTED_PREFIX: &str = r#"{"type":"record_imported","record":"#;

/// The record JSON of a person row read through `person_data!` (columns `at` and `at + 1`).
pub(crate) fn record_text(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<String> {
    let data: String = row.get(at)?;
    if !data.is_empty() && !data.starts_with(RECORD_REF) {
        return Ok(data);
    }
    let change: Option<String> = row.get(at + 1)?;
    let Some(change) = change else {
        return Err(rusqlite::Error::InvalidColumnType(
            at + 1,
            "record_imported event of a bulk-loaded person missing".into(),
            rusqlite::types::Type::Null,
        ));
    };
    if change.starts_with(IMPORTED_PREFIX) && change.ends_with('}') {
        // Cut the wrapper off in place rather than copying the record out.
        let mut record = change;
        record.truncate(record.len() - 1);
        record.drain(..IMPORTED_PREFIX.len());
        return Ok(record);
    }
    // Not the layout the bulk load writes: decode it the long way.
    match serde_json::from_str::<PersonChange>(&change) {
        Ok(PersonChange::RecordImported { record }) => serde_json::to_string(&record)
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e))),
        _ => Err(rusqlite::Error::InvalidColumnType(
            at + 1,
            "first event of a bulk-loaded person is not a record_imported event".into(),
            rusqlite::types::Type::Text,
        )),
    }
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    stream TEXT NOT NULL,
    version INTEGER NOT NULL,
    kind TEXT NOT NULL,
    at TEXT NOT NULL,
    meta TEXT NOT NULL,
    change TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS persons (
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    name_key TEXT NOT NULL,
    birth_year INTEGER NOT NULL,
    commune TEXT,
    province TEXT,
    alive INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS households (id TEXT PRIMARY KEY, version INTEGER NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS idempotency (
    actor TEXT NOT NULL, key TEXT NOT NULL, request_hash TEXT NOT NULL,
    status INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY (actor, key)
);
CREATE TABLE IF NOT EXISTS officers (
    id TEXT PRIMARY KEY, data TEXT NOT NULL, token_hash TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS imports (id TEXT PRIMARY KEY, last_line INTEGER NOT NULL, updated_at TEXT NOT NULL);
-- Documents, one-shot keys and usage logs of `crate::docs` (the e-ID service's records).
CREATE TABLE IF NOT EXISTS docs (
    kind TEXT NOT NULL, key TEXT NOT NULL, version INTEGER NOT NULL, json TEXT NOT NULL,
    expires_at TEXT, PRIMARY KEY (kind, key)
);
CREATE INDEX IF NOT EXISTS docs_expiry ON docs (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS seen_once (
    kind TEXT NOT NULL, key TEXT NOT NULL, expires_at TEXT NOT NULL, PRIMARY KEY (kind, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_once_expiry ON seen_once (expires_at);
CREATE TABLE IF NOT EXISTS usage_log (
    seq INTEGER PRIMARY KEY, subject TEXT NOT NULL, at TEXT NOT NULL, json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS usage_log_subject ON usage_log (subject, at, seq);
CREATE INDEX IF NOT EXISTS usage_log_at ON usage_log (at);
"#;

pub(crate) fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Instants are stored as RFC 3339 UTC with microseconds, which sorts as text.
pub(crate) fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Page size of a new register database.
const PAGE_SIZE: i64 = 8192;

#[derive(Debug)]
pub(crate) struct ReaderManager(PathBuf);

impl r2d2::ManageConnection for ReaderManager {
    type Connection = Connection;
    type Error = rusqlite::Error;
    fn connect(&self) -> Result<Connection, rusqlite::Error> {
        let c = Connection::open_with_flags(
            &self.0,
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )?;
        c.busy_timeout(std::time::Duration::from_secs(5))?;
        c.pragma_update(None, "cache_size", -32_000)?;
        // Map the whole file (the build raises SQLite's 2 GB cap; see .cargo/config.toml).
        c.pragma_update(None, "mmap_size", 1_i64 << 40)?;
        Ok(c)
    }
    fn is_valid(&self, conn: &mut Connection) -> Result<(), rusqlite::Error> {
        conn.query_row("SELECT 1", [], |_| Ok(()))
    }
    fn has_broken(&self, _: &mut Connection) -> bool {
        false
    }
}

/// The SQLite store.
#[derive(Debug)]
pub struct SqliteStore {
    pub(crate) path: PathBuf,
    pub(crate) writer: Mutex<Connection>,
    /// Replaced by a fresh pool when a bulk load needs the file to itself (see
    /// [`crate::sqlite_bulk`]): idle readers would keep it from leaving WAL mode.
    pub(crate) readers: RwLock<r2d2::Pool<ReaderManager>>,
    access: AccessJournal,
    /// A second connection to the access log's index for checkpoints, so that they run beside
    /// the indexer rather than between its commits.
    access_upkeep: Mutex<Option<Connection>>,
    /// Rendered records in memory (see [`crate::record_cache`]); its epoch is also the count
    /// of this process's register commits ([`Store::register_writes`]).
    pub(crate) records: crate::record_cache::RecordCache,
    /// Set by the first [`Store::fill_record_cache`].
    records_filled: std::sync::atomic::AtomicBool,
}

/// A pool of read-only connections, opened on demand (none at first, so that a bulk load right
/// after opening finds the file to itself).
pub(crate) fn reader_pool(path: &Path) -> Result<r2d2::Pool<ReaderManager>> {
    r2d2::Pool::builder()
        .max_size(16)
        .min_idle(Some(0))
        // A `SELECT 1` on every checkout parsed and ran a statement per read.
        .test_on_check_out(false)
        .build(ReaderManager(path.to_owned()))
        .map_err(|e| StoreError::Backend(format!("opening readers: {e}")))
}

/// Durability setting for commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous=NORMAL`: atomic and crash-consistent; a power cut may lose the last commits.
    Normal,
    /// `synchronous=FULL`: every commit is on disk before it returns.
    Full,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file, with [`Durability::Normal`].
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, Durability::Normal)
    }

    /// Opens with a chosen durability.
    pub fn open_with(path: &Path, durability: Durability) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Backend(format!("creating {}: {e}", dir.display())))?;
        }
        let w = Connection::open(path).map_err(db)?;
        w.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(db)?;
        // Takes effect only when the file is new (a database keeps the page size it was made
        // with). An imported event row is about 1 KB; at 1M people (`dbstat`) the event table's
        // leaves held 3.7 rows a 4 KB page, 84 % full, against 8.2 rows an 8 KB page, 93 % full.
        // The file came out 8 % smaller and the bulk load about a fifth faster (151k → 180k
        // people/s); reads were unchanged within the noise.
        w.pragma_update(None, "page_size", PAGE_SIZE).map_err(db)?;
        w.pragma_update(None, "journal_mode", "WAL").map_err(db)?;
        let sync = match durability {
            Durability::Normal => "NORMAL",
            Durability::Full => "FULL",
        };
        w.pragma_update(None, "synchronous", sync).map_err(db)?;
        w.pragma_update(None, "cache_size", -256_000).map_err(db)?;
        w.pragma_update(None, "foreign_keys", "ON").map_err(db)?;
        w.execute_batch(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        )
        .map_err(db)?;
        w.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?1) ON CONFLICT DO NOTHING",
            [SQLITE_SCHEMA_VERSION.to_string()],
        )
        .map_err(db)?;
        let version: String = w
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .map_err(db)?;
        check_schema_version_upto(&version, SQLITE_SCHEMA_VERSION)?;
        if version == "1" {
            w.execute_batch(&format!("BEGIN IMMEDIATE; {MIGRATE_V1_TO_V2} COMMIT;"))
                .map_err(|e| {
                    StoreError::Backend(format!("migrating the schema from version 1: {e}"))
                })?;
        }
        if version == "1" || version == "2" {
            w.execute(
                "UPDATE meta SET value = ?1 WHERE key = 'schema_version'",
                [SQLITE_SCHEMA_VERSION.to_string()],
            )
            .map_err(db)?;
        }
        w.execute_batch(SCHEMA).map_err(db)?;
        w.execute_batch(BULK_INDEXES).map_err(db)?;
        let readers = RwLock::new(reader_pool(path)?);
        let a = Connection::open(access_log_path(path)).map_err(db)?;
        a.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(db)?;
        a.pragma_update(None, "journal_mode", "WAL").map_err(db)?;
        a.pragma_update(None, "synchronous", sync).map_err(db)?;
        // Checkpoints run in `access_log_upkeep` on another connection, after indexing.
        a.pragma_update(None, "wal_autocheckpoint", 0).map_err(db)?;
        let access = AccessJournal::open(path, a, durability)?;
        Ok(Self {
            path: path.to_owned(),
            writer: Mutex::new(w),
            readers,
            access,
            access_upkeep: Mutex::new(None),
            records: crate::record_cache::RecordCache::new(
                crate::record_cache::RecordCache::budget_from_env()?,
            ),
            records_filled: std::sync::atomic::AtomicBool::new(false),
        })
    }

    pub(crate) fn reader(&self) -> Result<r2d2::PooledConnection<ReaderManager>> {
        let pool = self
            .readers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        pool.get()
            .map_err(|e| StoreError::Backend(format!("no reader connection: {e}")))
    }

    pub(crate) fn write<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db)?;
        let out = f(&tx)?;
        tx.commit().map_err(db)?;
        Ok(out)
    }

    /// Notes a register commit that wrote these people (or a failed attempt: a spare bump
    /// only costs a view a look): moves the commit count and forgets their cached records.
    fn people_written(&self, people: impl IntoIterator<Item = PersonalId>) {
        self.records.forget(people);
    }

    /// Notes a register commit that may have written anyone (an import).
    pub(crate) fn register_written(&self) {
        self.records.forget_all();
    }

    /// One page of the projection in rowid order after `after`.
    fn persons_page(&self, after: i64) -> Result<Vec<PageRow>> {
        let c = self.reader()?;
        let mut stmt = c
            .prepare_cached(concat!(
                "SELECT p.rowid, p.id, p.commune, ",
                person_data!(),
                " FROM persons p WHERE p.rowid > ?1 ORDER BY p.rowid LIMIT 5000"
            ))
            .map_err(db)?;
        stmt.query_map([after], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                record_text(r, 3)?,
            ))
        })
        .map_err(db)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db)
    }
}

/// A row of [`SqliteStore::persons_page`]: rowid, ID, home commune, record.
type PageRow = (i64, String, Option<String>, String);

/// Inserts new households and their creation events; returns the numbers already taken.
pub(crate) fn insert_households(
    tx: &rusqlite::Transaction<'_>,
    households: &[Household],
    meta_json: &str,
    at: &str,
) -> Result<Vec<String>> {
    let mut taken = Vec::new();
    let mut ins = tx
        .prepare_cached(
            "INSERT INTO households (id, version, data) VALUES (?1, 1, ?2) ON CONFLICT DO NOTHING",
        )
        .map_err(db)?;
    let mut ev = tx
        .prepare_cached(
            "INSERT INTO events (stream, version, kind, at, meta, change)
             VALUES (?1, 1, 'household_created', ?2, ?3, ?4)",
        )
        .map_err(db)?;
    for h in households {
        if ins.execute(params![h.id, to_json(h)?]).map_err(db)? == 0 {
            taken.push(h.id.clone());
            continue;
        }
        let change = HouseholdChange::Created {
            address: h.address.clone(),
            members: h.members.clone(),
        };
        ev.execute(params![
            format!("h:{}", h.id),
            at,
            meta_json,
            to_json(&change)?
        ])
        .map_err(db)?;
    }
    Ok(taken)
}

fn person_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<String> {
    record_text(row, 0)
}

fn decode_persons(rows: Vec<String>) -> Result<Vec<Person>> {
    rows.iter().map(|s| from_json(s)).collect()
}

fn event_row(
    row: &rusqlite::Row<'_>,
) -> rusqlite::Result<(i64, String, i64, String, String, String)> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
    ))
}

fn decode_event(
    (seq, stream, version, kind, meta, change): (i64, String, i64, String, String, String),
) -> Result<RecordedEvent> {
    Ok(RecordedEvent {
        seq,
        stream,
        version: version as u64,
        kind,
        meta: from_json(&meta)?,
        change: from_json(&change)?,
    })
}

fn upsert_person(tx: &rusqlite::Transaction<'_>, p: &Person, data: &str) -> Result<()> {
    let ix = PersonIndex::of(p);
    tx.prepare_cached(
        "INSERT INTO persons (id, version, name_key, birth_year, commune, province, alive, data)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (id) DO UPDATE SET version = excluded.version, name_key = excluded.name_key,
           birth_year = excluded.birth_year, commune = excluded.commune, province = excluded.province,
           alive = excluded.alive, data = excluded.data",
    )
    .map_err(db)?
    .execute(params![p.id.as_str(), p.version as i64, ix.name_key, ix.birth_year, ix.commune, ix.province, ix.alive, data])
    .map_err(db)?;
    Ok(())
}

impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn ping(&self) -> Result<()> {
        self.reader()?
            .query_row("SELECT 1", [], |_| Ok(()))
            .map_err(db)
    }

    fn commit(&self, commit: &Commit) -> Result<Vec<i64>> {
        let meta_json = to_json(&commit.meta)?;
        let at = ts(&commit.meta.at);
        let out = self.write(|tx| {
            let mut seqs = Vec::with_capacity(commit.appends.len());
            let mut seen: Vec<(String, u64)> = Vec::new();
            for a in &commit.appends {
                let stream = a.stream().to_string();
                // Several appends to one stream in a commit chain their versions.
                let expected = a.expected();
                let actual = match seen.iter().rev().find(|(s, _)| *s == stream) {
                    Some((_, v)) => *v,
                    None => {
                        let v: Option<i64> = tx
                            .prepare_cached("SELECT max(version) FROM events WHERE stream = ?1")
                            .map_err(db)?
                            .query_row([&stream], |r| r.get(0))
                            .map_err(db)?;
                        v.unwrap_or(0) as u64
                    }
                };
                if expected == 0 && actual > 0 {
                    return Err(StoreError::Exists(stream));
                }
                if actual != expected {
                    return Err(StoreError::Conflict { stream, expected, actual });
                }
                let version = expected + 1;
                tx.prepare_cached(
                    "INSERT INTO events (stream, version, kind, at, meta, change) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(db)?
                .execute(params![stream, version as i64, a.kind(), at, meta_json, a.change_json()?])
                .map_err(db)?;
                seqs.push(tx.last_insert_rowid());
                match a {
                    Append::Person { state, .. } => upsert_person(tx, state, &to_json(state)?)?,
                    Append::Household { state, .. } => {
                        tx.prepare_cached(
                            "INSERT INTO households (id, version, data) VALUES (?1, ?2, ?3)
                             ON CONFLICT (id) DO UPDATE SET version = excluded.version, data = excluded.data",
                        )
                        .map_err(db)?
                        .execute(params![state.id, state.version as i64, to_json(state)?])
                        .map_err(db)?;
                    }
                }
                seen.push((stream, version));
            }
            if let Some(i) = &commit.idempotency {
                let n = tx
                    .prepare_cached(
                        "INSERT INTO idempotency (actor, key, request_hash, status, body) VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT DO NOTHING",
                    )
                    .map_err(db)?
                    .execute(params![i.actor, i.key, i.request_hash, i.status, i.body])
                    .map_err(db)?;
                if n == 0 {
                    return Err(StoreError::IdempotencyMismatch);
                }
            }
            Ok(seqs)
        });
        self.people_written(commit.appends.iter().filter_map(|a| match a {
            Append::Person { state, .. } => Some(state.id),
            Append::Household { .. } => None,
        }));
        out
    }

    fn person(&self, id: &PersonalId) -> Result<Option<Person>> {
        let c = self.reader()?;
        let s: Option<String> = c
            .prepare_cached(concat!(
                "SELECT ",
                person_data!(),
                " FROM persons p WHERE p.id = ?1"
            ))
            .map_err(db)?
            .query_row([id.as_str()], person_row)
            .optional()
            .map_err(db)?;
        s.map(|s| from_json(&s)).transpose()
    }

    fn person_json(&self, id: &PersonalId) -> Result<Option<(String, Option<String>)>> {
        if let Some(found) = self.records.get(id) {
            return Ok(Some(found));
        }
        let epoch = self.records.epoch();
        let c = self.reader()?;
        let found: Option<(String, Option<String>)> = c
            .prepare_cached(concat!(
                "SELECT p.commune, ",
                person_data!(),
                " FROM persons p WHERE p.id = ?1"
            ))
            .map_err(db)?
            .query_row([id.as_str()], |r| Ok((record_text(r, 1)?, r.get(0)?)))
            .optional()
            .map_err(db)?;
        if let Some((json, commune)) = &found {
            self.records.offer(epoch, *id, json, commune.as_deref());
        }
        Ok(found)
    }

    fn fill_record_cache(&self) -> Result<Option<(usize, std::time::Duration)>> {
        use std::sync::atomic::Ordering;
        let clock = std::time::Instant::now();
        if self.records_filled.swap(true, Ordering::AcqRel) {
            return Ok(Some((self.records.stats().records, clock.elapsed())));
        }
        // Page by page, each read in its own snapshot after taking the epoch: a commit during
        // the loading costs only the page it overlaps. Stops once the budget is spent.
        let mut after = 0_i64;
        while self.records.has_room() {
            let epoch = self.records.epoch();
            let page = self.persons_page(after)?;
            let Some((last, ..)) = page.last() else { break };
            after = *last;
            for (_, id, commune, json) in &page {
                self.records
                    .offer(epoch, stored_id(id)?, json, commune.as_deref());
            }
        }
        Ok(Some((self.records.stats().records, clock.elapsed())))
    }

    fn record_cache_stats(&self) -> Option<crate::record_cache::RecordCacheStats> {
        Some(self.records.stats())
    }

    fn persons(&self, ids: &[PersonalId]) -> Result<Vec<Person>> {
        let c = self.reader()?;
        let mut stmt = c
            .prepare_cached(concat!(
                "SELECT ",
                person_data!(),
                " FROM persons p WHERE p.id = ?1"
            ))
            .map_err(db)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(s) = stmt
                .query_row([id.as_str()], person_row)
                .optional()
                .map_err(db)?
            {
                out.push(from_json(&s)?);
            }
        }
        Ok(out)
    }

    fn household(&self, id: &str) -> Result<Option<Household>> {
        let c = self.reader()?;
        let s: Option<String> = c
            .prepare_cached("SELECT data FROM households WHERE id = ?1")
            .map_err(db)?
            .query_row([id], |r| r.get(0))
            .optional()
            .map_err(db)?;
        s.map(|s| from_json(&s)).transpose()
    }

    fn household_exists(&self, id: &str) -> Result<bool> {
        let c = self.reader()?;
        let n: i64 = c
            .prepare_cached("SELECT count(*) FROM events WHERE stream = ?1")
            .map_err(db)?
            .query_row([format!("h:{id}")], |r| r.get(0))
            .map_err(db)?;
        Ok(n > 0)
    }

    fn events(
        &self,
        stream: &StreamId,
        until: Option<DateTime<Utc>>,
    ) -> Result<Vec<RecordedEvent>> {
        let c = self.reader()?;
        let until = until.map(|t| ts(&t)).unwrap_or_else(|| "9999".to_owned());
        let mut stmt = c
            .prepare_cached(
                "SELECT seq, stream, version, kind, meta, change FROM events
                 WHERE stream = ?1 AND at <= ?2 ORDER BY version",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map(params![stream.to_string(), until], event_row)
            .map_err(db)?;
        rows.map(|r| r.map_err(db).and_then(decode_event)).collect()
    }

    fn events_after(&self, seq: i64, limit: u32) -> Result<Vec<RecordedEvent>> {
        let c = self.reader()?;
        let mut stmt = c
            .prepare_cached("SELECT seq, stream, version, kind, meta, change FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2")
            .map_err(db)?;
        let rows = stmt.query_map(params![seq, limit], event_row).map_err(db)?;
        rows.map(|r| r.map_err(db).and_then(decode_event)).collect()
    }

    fn streams_after(&self, seq: i64, limit: u32) -> Result<Vec<(i64, String)>> {
        let c = self.reader()?;
        let mut stmt = c
            .prepare_cached("SELECT seq, stream FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2")
            .map_err(db)?;
        let rows = stmt
            .query_map(params![seq, limit], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(db)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db)
    }

    fn last_event_seq(&self) -> Result<i64> {
        self.reader()?
            .query_row("SELECT coalesce(max(seq), 0) FROM events", [], |r| r.get(0))
            .map_err(db)
    }

    fn register_writes(&self) -> Option<u64> {
        Some(self.records.epoch())
    }

    fn scan_persons_json(&self, f: &mut ScanPerson<'_>) -> Result<()> {
        // In rowid order, the order the rows (and a bulk load's records) were written in,
        // rather than ID order through the index, which would visit the pages at random.
        let mut after = 0_i64;
        loop {
            let page = self.persons_page(after)?;
            let Some((last, ..)) = page.last() else {
                return Ok(());
            };
            after = *last;
            for (_, id, commune, data) in page {
                f(stored_id(&id)?, &data, commune.as_deref())?;
            }
        }
    }

    fn search_json(&self, q: &SearchQuery) -> Result<Vec<(PersonalId, String)>> {
        let c = self.reader()?;
        // Prefix match as a range on the index: [key, key + U+FFFF).
        let (lo, hi) = if q.prefix {
            (q.name_key.clone(), format!("{}\u{ffff}", q.name_key))
        } else {
            (q.name_key.clone(), q.name_key.clone())
        };
        // One statement per filter combination keeps each plan a plain index walk.
        let mut sql = String::from(concat!(
            "SELECT p.id, ",
            person_data!(),
            " FROM persons p WHERE name_key >= ?1 AND name_key <= ?2"
        ));
        let mut args: Vec<&dyn rusqlite::ToSql> = vec![&lo, &hi];
        if let Some(y) = &q.birth_year {
            sql.push_str(" AND birth_year = ?");
            args.push(y);
        }
        if let Some(c) = &q.commune {
            sql.push_str(" AND commune = ?");
            args.push(c);
        }
        if let Some(p) = &q.province {
            sql.push_str(" AND province = ?");
            args.push(p);
        }
        sql.push_str(" ORDER BY name_key, birth_year, id LIMIT ?");
        args.push(&q.limit);
        let mut stmt = c.prepare_cached(&sql).map_err(db)?;
        let rows = stmt
            .query_map(args.as_slice(), |r| {
                Ok((r.get::<_, String>(0)?, record_text(r, 1)?))
            })
            .map_err(db)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(db)?;
        rows.into_iter()
            .map(|(id, data)| Ok((stored_id(&id)?, data)))
            .collect()
    }

    fn people_of_commune(
        &self,
        commune: &str,
        after: Option<&PersonalId>,
        limit: u32,
    ) -> Result<Vec<Person>> {
        let c = self.reader()?;
        let after = after.map(|a| a.as_str().to_owned()).unwrap_or_default();
        let mut stmt = c
            .prepare_cached(concat!(
                "SELECT ",
                person_data!(),
                " FROM persons p WHERE commune = ?1 AND id > ?2 ORDER BY id LIMIT ?3"
            ))
            .map_err(db)?;
        let rows = stmt
            .query_map(params![commune, after, limit], person_row)
            .map_err(db)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(db)?;
        decode_persons(rows)
    }

    fn count_people(&self) -> Result<u64> {
        let c = self.reader()?;
        let n: i64 = c
            .query_row("SELECT count(*) FROM persons", [], |r| r.get(0))
            .map_err(db)?;
        Ok(n as u64)
    }

    fn idempotent(&self, actor: &str, key: &str) -> Result<Option<IdempotentResponse>> {
        let c = self.reader()?;
        c.prepare_cached(
            "SELECT request_hash, status, body FROM idempotency WHERE actor = ?1 AND key = ?2",
        )
        .map_err(db)?
        .query_row([actor, key], |r| {
            Ok(IdempotentResponse {
                key: key.to_owned(),
                actor: actor.to_owned(),
                request_hash: r.get(0)?,
                status: r.get(1)?,
                body: r.get(2)?,
            })
        })
        .optional()
        .map_err(db)
    }

    fn add_officer(&self, o: &OfficerRecord) -> Result<()> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "INSERT INTO officers (id, data, token_hash, created_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                    params![o.officer.id, to_json(&o.officer)?, o.token_hash, ts(&o.created_at)],
                )
                .map_err(db)?;
            if n == 0 { Err(StoreError::Exists(format!("officer {}", o.officer.id))) } else { Ok(()) }
        })
    }

    fn officer_by_token(&self, token_hash: &str) -> Result<Option<Officer>> {
        let c = self.reader()?;
        let s: Option<String> = c
            .prepare_cached("SELECT data FROM officers WHERE token_hash = ?1")
            .map_err(db)?
            .query_row([token_hash], |r| r.get(0))
            .optional()
            .map_err(db)?;
        s.map(|s| from_json(&s)).transpose()
    }

    fn officers(&self) -> Result<Vec<Officer>> {
        let c = self.reader()?;
        let mut stmt = c
            .prepare_cached("SELECT data FROM officers ORDER BY id")
            .map_err(db)?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(db)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(db)?;
        rows.iter().map(|s| from_json(s)).collect()
    }

    fn access_log_compact(&self) -> Result<()> {
        self.access.compact()
    }

    fn access_log_upkeep(&self) -> Result<()> {
        self.access.upkeep()?;
        let mut slot = self.access_upkeep.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            let c = Connection::open(access_log_path(&self.path)).map_err(db)?;
            c.busy_timeout(std::time::Duration::from_secs(5))
                .map_err(db)?;
            *slot = Some(c);
        }
        let Some(conn) = slot.as_ref() else {
            return Ok(());
        };
        // PASSIVE: copy what no reader still needs, never wait. Each 4 KB page of the log holds
        // ~50 entries, so the WAL stays within a few MB between calls at any read rate.
        let (_, wal_pages, _): (i64, i64, i64) = conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(db)?;
        if wal_pages > 100_000 {
            // Readers of the log kept the WAL from being reset: try to restart it.
            conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()))
                .map_err(db)?;
        }
        Ok(())
    }

    fn record_access(&self, entries: &[AccessEntry]) -> Result<()> {
        self.access.append(entries)
    }

    fn access_append_is_local(&self) -> bool {
        !self.access.syncs_each_append()
    }

    fn access_log(&self, person: &PersonalId, limit: u32) -> Result<Vec<AccessEntry>> {
        self.access.query(person, limit)
    }

    fn import_batch(
        &self,
        import_id: &str,
        rows: &[ImportRow],
        meta: &EventMeta,
    ) -> Result<Vec<u64>> {
        // Nothing to load: leave the progress mark where it is.
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let meta_json = to_json(meta)?;
        let at = ts(&meta.at);
        let last = rows.iter().map(|r| r.line).max().unwrap_or(0);
        let out = self.write(|tx| {
            let mut dupes = Vec::new();
            let mut ins_person = tx
                .prepare_cached(
                    "INSERT INTO persons (id, version, name_key, birth_year, commune, province, alive, data)
                     VALUES (?1, 1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
                )
                .map_err(db)?;
            let mut ins_event = tx
                .prepare_cached(
                    "INSERT INTO events (stream, version, kind, at, meta, change)
                     VALUES (?1, 1, 'record_imported', ?2, ?3, ?4)",
                )
                .map_err(db)?;
            let mut stream = String::with_capacity(14);
            let mut change = String::with_capacity(1024);
            for row in rows {
                let p = &row.person;
                let ix = PersonIndex::of(p);
                let data = to_json(p)?;
                let n = ins_person
                    .execute(params![p.id.as_str(), ix.name_key, ix.birth_year, ix.commune, ix.province, ix.alive, data])
                    .map_err(db)?;
                if n == 0 {
                    dupes.push(row.line);
                    continue;
                }
                stream.clear();
                stream.push_str("p:");
                stream.push_str(p.id.as_str());
                change.clear();
                change.push_str(r#"{"type":"record_imported","record":"#);
                change.push_str(&data);
                change.push('}');
                ins_event.execute(params![stream, at, meta_json, change]).map_err(db)?;
            }
            tx.execute(
                "INSERT INTO imports (id, last_line, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET last_line = excluded.last_line, updated_at = excluded.updated_at",
                params![import_id, last as i64, at],
            )
            .map_err(db)?;
            Ok(dupes)
        });
        self.register_written();
        out
    }

    fn import_households(&self, households: &[Household], meta: &EventMeta) -> Result<Vec<String>> {
        let meta_json = to_json(meta)?;
        let at = ts(&meta.at);
        let out = self.write(|tx| insert_households(tx, households, &meta_json, &at));
        self.register_written();
        out
    }

    fn import_progress(&self, import_id: &str) -> Result<Option<u64>> {
        // Asked through the writer, so that a bulk load that follows finds no idle reader.
        let c = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let v: Option<i64> = c
            .query_row(
                "SELECT last_line FROM imports WHERE id = ?1",
                [import_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(db)?;
        Ok(v.map(|v| v as u64))
    }

    fn bulk_load<'a>(
        &'a self,
        import_id: &str,
        meta: &EventMeta,
    ) -> Result<Option<Box<dyn BulkLoad + 'a>>> {
        Ok(
            crate::sqlite_bulk::SqliteBulk::start(self, import_id, meta)?
                .map(|b| Box::new(b) as Box<dyn BulkLoad + 'a>),
        )
    }

    fn persons_after(&self, after: Option<&PersonalId>, limit: u32) -> Result<Vec<Person>> {
        let c = self.reader()?;
        let rows = c
            .prepare_cached(concat!(
                "SELECT ",
                person_data!(),
                " FROM persons p WHERE id > ?1 ORDER BY id LIMIT ?2"
            ))
            .map_err(db)?
            .query_map(
                params![after.map(|a| a.as_str()).unwrap_or(""), limit],
                person_row,
            )
            .map_err(db)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(db)?;
        decode_persons(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_database_gets_the_larger_page_and_an_existing_one_keeps_its_own() {
        let page = |p: &Path| -> i64 {
            Connection::open(p)
                .unwrap()
                .query_row("PRAGMA page_size", [], |r| r.get(0))
                .unwrap()
        };
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("new.sqlite3");
        drop(SqliteStore::open(&new).unwrap());
        assert_eq!(page(&new), PAGE_SIZE);
        // A register made before the page size was chosen.
        let old = dir.path().join("old.sqlite3");
        {
            let c = Connection::open(&old).unwrap();
            c.pragma_update(None, "page_size", 4096).unwrap();
            c.execute_batch("CREATE TABLE t (x)").unwrap();
        }
        let s = SqliteStore::open(&old).unwrap();
        assert_eq!(page(&old), 4096);
        assert!(
            s.person(&"001190000001".parse().unwrap())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn reopens_its_own_schema_and_refuses_a_newer_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.sqlite3");
        drop(SqliteStore::open(&path).unwrap());
        drop(SqliteStore::open(&path).unwrap());
        let c = Connection::open(&path).unwrap();
        c.execute(
            "UPDATE meta SET value = '999' WHERE key = 'schema_version'",
            [],
        )
        .unwrap();
        drop(c);
        let err = SqliteStore::open(&path).unwrap_err().to_string();
        assert!(err.contains("newer"), "{err}");
    }
}
