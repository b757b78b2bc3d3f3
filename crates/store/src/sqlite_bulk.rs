//! Bulk loading into an empty SQLite register.
//!
//! An ordinary import keeps four B-trees ordered by random keys (person ID, name key, commune,
//! event stream) up to date row by row, and writes every page twice (WAL, then checkpoint).
//! A bulk load into an empty register instead:
//!
//! - takes the database file to itself (`locking_mode=EXCLUSIVE`) and leaves WAL mode for a
//!   rollback journal, so the appended pages are written once and the journal holds only the
//!   few pages each commit changes; when another connection has the file open (a running
//!   server), leaving WAL mode fails and the caller falls back to the ordinary path;
//! - drops the secondary indexes and builds them by sorting at the end, inside one transaction;
//! - writes each record once: in the person's `record_imported` event, with an empty `data`
//!   in the projection row that reads fall back from to the event until the person's first
//!   change (see "Stored records" in [`crate::sqlite`]); the projection table then holds only
//!   the short index columns, so building its three indexes scans a small table;
//! - encodes records on helper threads while this one inserts, many rows to an `INSERT`;
//! - leaves each batch's transaction open when [`BulkLoad::people`] returns and commits it at
//!   the start of the next call (or in `households`/`finish`), while the helper threads
//!   already encode the next batch, so that the commit's writes and syncs are not spent
//!   waiting with nothing else to do;
//! - keeps the ID numbers loaded so far in memory to refuse duplicates (the unique index is
//!   not there to do it).
//!
//! Every batch is still one transaction with the import's progress mark, so a load killed at
//! any instant keeps whole batches and resumes after the last committed one (a batch is
//! durable once the next call on the load returns). A `bulk_load` row in `meta`
//! marks a load in progress: the same import may resume it in bulk mode; any ordinary open
//! before that rebuilds the missing indexes (`CREATE INDEX IF NOT EXISTS`), so the register is
//! never left without them for ordinary use.

use crate::sqlite::{
    BULK_INDEX_NAMES, BULK_INDEXES, IMPORTED_PREFIX, RECORD_REF, SqliteStore, db,
    insert_households, reader_pool, ts,
};
use crate::*;
use rusqlite::{Connection, OptionalExtension, params};
use std::fmt::Write as _;
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

/// How many threads encode records while this one inserts. Encoding (serialising the record,
/// working out the index columns) costs more than inserting, so one encoder left the
/// inserting thread waiting for most of the load.
fn encoders() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 4))
}

/// Records are encoded in chunks of this many on the helper threads.
const ENCODE_CHUNK: usize = 1024;

/// The set of loaded IDs, with rustc's Fx hash: the keys are ID numbers from the file being
/// loaded, not chosen by a remote client, and SipHash took a few percent of the inserting
/// thread.
type IdSet = rustc_hash::FxHashSet<PersonalId>;

/// A bulk load holding the writer connection.
pub(crate) struct SqliteBulk<'a> {
    conn: MutexGuard<'a, Connection>,
    /// The store's record cache, whose epoch counts register commits: forgotten (and so
    /// moved) after each of this load's, as by every import.
    records: &'a crate::record_cache::RecordCache,
    import_id: String,
    meta_json: String,
    at: String,
    seen: IdSet,
    /// Home communes looked up so far, kept across batches: one cache per encoding thread.
    units: Vec<HomeUnitsCache>,
    /// Whether the last batch's transaction is still open (see [`Self::commit_pending`]).
    pending: bool,
    timing: Timing,
    finished: bool,
}

impl std::fmt::Debug for SqliteBulk<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteBulk")
            .field("import_id", &self.import_id)
            .field("loaded", &self.seen.len())
            .finish_non_exhaustive()
    }
}

/// Where the inserting thread's time went, logged when the load finishes.
#[derive(Debug, Default)]
struct Timing {
    waiting: Duration,
    inserting: Duration,
    committing: Duration,
}

/// One person ready to insert.
struct Encoded {
    line: u64,
    id: PersonalId,
    /// The seq its import event gets (set by the inserting thread).
    seq: i64,
    /// The event's stream, `p:<id>`.
    stream: String,
    /// The projection row's `data`: `#<seq>` (set by the inserting thread).
    reference: String,
    index: PersonIndex,
    /// The import event's change, holding the record: the only copy of it.
    change: String,
}

fn encode(row: &ImportRow, units: &mut HomeUnitsCache) -> Result<Encoded> {
    // Serialised on its own and copied after the prefix: cheaper than checking the UTF-8 of
    // a buffer written through `to_writer`.
    let record = to_json(&row.person)?;
    let mut change = String::with_capacity(IMPORTED_PREFIX.len() + record.len() + 1);
    change.push_str(IMPORTED_PREFIX);
    change.push_str(&record);
    change.push('}');
    let id = row.person.id;
    let mut stream = String::with_capacity(14);
    stream.push_str("p:");
    stream.push_str(id.as_str());
    Ok(Encoded {
        line: row.line,
        id,
        seq: 0,
        stream,
        reference: String::with_capacity(12),
        index: PersonIndex::of_cached(&row.person, units),
        change,
    })
}

/// Rows per multi-row `INSERT`: one statement run per this many people instead of one per
/// person saves the virtual machine's start and reset per row.
const ROWS_PER_INSERT: usize = 32;

/// The two statements that insert `n` people: their events and their projection rows.
struct Inserts<'t> {
    n: usize,
    events: rusqlite::CachedStatement<'t>,
    persons: rusqlite::CachedStatement<'t>,
}

impl<'t> Inserts<'t> {
    /// Event columns bound per row (seq, stream, change) after the two shared ones (at, meta).
    const EVENT_PARAMS: usize = 3;
    /// Projection columns bound per row.
    const PERSON_PARAMS: usize = 7;

    fn prepare(conn: &'t Connection, n: usize, at: &str, meta: &str) -> Result<Self> {
        let mut events = String::from(
            "INSERT INTO events (seq, stream, version, kind, at, meta, change) VALUES ",
        );
        let mut persons = String::from(
            "INSERT INTO persons (id, version, name_key, birth_year, commune, province, alive, data) VALUES ",
        );
        for i in 0..n {
            let sep = if i == 0 { "" } else { "," };
            let e = 3 + i * Self::EVENT_PARAMS;
            let _ = write!(
                events,
                "{sep}(?{e}, ?{}, 1, 'record_imported', ?1, ?2, ?{})",
                e + 1,
                e + 2
            );
            let p = 1 + i * Self::PERSON_PARAMS;
            let _ = write!(
                persons,
                "{sep}(?{p}, 1, ?{}, ?{}, ?{}, ?{}, ?{}, ?{})",
                p + 1,
                p + 2,
                p + 3,
                p + 4,
                p + 5,
                p + 6
            );
        }
        let mut events = conn.prepare_cached(&events).map_err(db)?;
        // Bound once: a binding stays until the statement goes back to the cache.
        events.raw_bind_parameter(1, at).map_err(db)?;
        events.raw_bind_parameter(2, meta).map_err(db)?;
        let persons = conn.prepare_cached(&persons).map_err(db)?;
        Ok(Self { n, events, persons })
    }

    /// Inserts exactly `n` encoded people.
    fn insert(&mut self, group: &[Encoded]) -> Result<()> {
        debug_assert_eq!(group.len(), self.n);
        for (i, e) in group.iter().enumerate() {
            let at = 3 + i * Self::EVENT_PARAMS;
            let s = &mut self.events;
            s.raw_bind_parameter(at, e.seq).map_err(db)?;
            s.raw_bind_parameter(at + 1, &e.stream).map_err(db)?;
            s.raw_bind_parameter(at + 2, &e.change).map_err(db)?;
            let at = 1 + i * Self::PERSON_PARAMS;
            let s = &mut self.persons;
            let ix = &e.index;
            s.raw_bind_parameter(at, e.id.as_str()).map_err(db)?;
            s.raw_bind_parameter(at + 1, &ix.name_key).map_err(db)?;
            s.raw_bind_parameter(at + 2, ix.birth_year).map_err(db)?;
            s.raw_bind_parameter(at + 3, &ix.commune).map_err(db)?;
            s.raw_bind_parameter(at + 4, &ix.province).map_err(db)?;
            s.raw_bind_parameter(at + 5, ix.alive).map_err(db)?;
            s.raw_bind_parameter(at + 6, &e.reference).map_err(db)?;
        }
        // The events first: the projection rows name them.
        self.events.raw_execute().map_err(db)?;
        self.persons.raw_execute().map_err(db)?;
        Ok(())
    }
}

impl<'a> SqliteBulk<'a> {
    /// Starts (or resumes) a bulk load, or answers `None` when the register is not empty or
    /// another connection has the file open.
    pub(crate) fn start(
        store: &'a SqliteStore,
        import_id: &str,
        meta: &EventMeta,
    ) -> Result<Option<Self>> {
        let conn = store.writer.lock().unwrap_or_else(|p| p.into_inner());
        let pending: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'bulk_load'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(db)?;
        let resuming = pending.as_deref() == Some(import_id);
        if !resuming {
            let empty: bool = conn
                .query_row(
                    "SELECT NOT EXISTS (SELECT 1 FROM persons) AND NOT EXISTS (SELECT 1 FROM events)",
                    [],
                    |r| r.get(0),
                )
                .map_err(db)?;
            if !empty {
                return Ok(None);
            }
        }
        // Close this store's idle readers: any open connection keeps the file in WAL mode.
        *store.readers.write().unwrap_or_else(|p| p.into_inner()) = reader_pool(&store.path)?;
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")
            .map_err(db)?;
        // The old pool's connections close when its last handle goes, which a background
        // task of the pool may hold for a moment: try a few times before deciding that
        // another process has the file open.
        let mut switched = false;
        for attempt in 0..20 {
            let mode: rusqlite::Result<String> =
                conn.query_row("PRAGMA journal_mode = TRUNCATE", [], |r| r.get(0));
            if matches!(mode.as_deref(), Ok("truncate")) {
                switched = true;
                break;
            }
            if attempt < 19 {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        if !switched {
            tracing::info!(
                "bulk load not possible (the database is in use); loading batch by batch"
            );
            conn.pragma_update(None, "locking_mode", "NORMAL")
                .map_err(db)?;
            conn.query_row("SELECT 1", [], |_| Ok(())).map_err(db)?;
            return Ok(None);
        }
        let mut bulk = Self {
            conn,
            records: &store.records,
            import_id: import_id.to_owned(),
            meta_json: to_json(meta)?,
            at: ts(&meta.at),
            seen: IdSet::default(),
            units: (0..encoders()).map(|_| HomeUnitsCache::default()).collect(),
            pending: false,
            timing: Timing::default(),
            finished: false,
        };
        let tx = bulk.conn.transaction().map_err(db)?;
        for name in BULK_INDEX_NAMES {
            tx.execute_batch(&format!("DROP INDEX IF EXISTS {name}"))
                .map_err(db)?;
        }
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('bulk_load', ?1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [import_id],
        )
        .map_err(db)?;
        if resuming {
            let mut stmt = tx.prepare("SELECT id FROM persons").map_err(db)?;
            let ids = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(db)?;
            for id in ids {
                let id = id.map_err(db)?;
                let id = PersonalId::parse(&id).map_err(|e| {
                    StoreError::Backend(format!("stored ID {id:?} unreadable: {e}"))
                })?;
                bulk.seen.insert(id);
            }
        }
        tx.commit().map_err(db)?;
        Ok(Some(bulk))
    }

    /// Commits the last batch loaded, which [`BulkLoad::people`] leaves open so that its
    /// commit overlaps the encoding of the next batch.
    fn commit_pending(&mut self) -> Result<()> {
        if std::mem::take(&mut self.pending) {
            let clock = Instant::now();
            if let Err(e) = self.conn.execute_batch("COMMIT") {
                if !self.conn.is_autocommit() {
                    let _ = self.conn.execute_batch("ROLLBACK");
                }
                return Err(db(e));
            }
            self.written();
            self.timing.committing += clock.elapsed();
        }
        Ok(())
    }

    fn written(&self) {
        self.records.forget_all();
    }

    fn restore(&mut self) -> Result<()> {
        self.commit_pending()?;
        let clock = Instant::now();
        // The sorter of an index build keeps rows in memory up to the page cache's size. A
        // small cache makes it write sorted runs of a few MB that helper threads sort while
        // this one reads on, then merge: at 1M people this took about half the time of one
        // run sorted in a 1 GB cache, whose pages the kernel must also zero first.
        self.conn
            .pragma_update(None, "cache_size", -4_000)
            .map_err(db)?;
        self.conn.pragma_update(None, "threads", 4).map_err(db)?;
        // Each build scans its whole table: read it through a mapping rather than copying
        // every page out of the kernel (about half the build's system time).
        self.conn
            .pragma_update(None, "mmap_size", 1_i64 << 40)
            .map_err(db)?;
        let tx = self.conn.transaction().map_err(db)?;
        tx.execute_batch(BULK_INDEXES).map_err(db)?;
        tx.execute("DELETE FROM meta WHERE key = 'bulk_load'", [])
            .map_err(db)?;
        tx.commit().map_err(db)?;
        self.written();
        let t = &self.timing;
        tracing::info!(
            people = self.seen.len(),
            waiting_for_encoders_s = t.waiting.as_secs_f64(),
            inserting_s = t.inserting.as_secs_f64(),
            committing_s = t.committing.as_secs_f64(),
            building_indexes_s = clock.elapsed().as_secs_f64(),
            "bulk load: where the inserting thread's time went"
        );
        // Release the exclusive lock before going back to WAL: entering WAL under an exclusive
        // lock would keep it exclusive for good.
        self.conn
            .pragma_update(None, "locking_mode", "NORMAL")
            .map_err(db)?;
        self.conn
            .query_row("SELECT 1 FROM meta LIMIT 1", [], |_| Ok(()))
            .optional()
            .map_err(db)?;
        let mode: String = self
            .conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(db)?;
        if mode != "wal" {
            return Err(StoreError::Backend(format!(
                "could not return to WAL mode after a bulk load (mode {mode})"
            )));
        }
        self.conn
            .pragma_update(None, "cache_size", -256_000)
            .map_err(db)?;
        self.conn.pragma_update(None, "threads", 0).map_err(db)?;
        self.conn.pragma_update(None, "mmap_size", 0).map_err(db)?;
        self.finished = true;
        Ok(())
    }
}

impl BulkLoad for SqliteBulk<'_> {
    fn people(&mut self, rows: &[ImportRow]) -> Result<Vec<u64>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let last = rows.iter().map(|r| r.line).max().unwrap_or(0);
        let Self {
            conn,
            import_id,
            meta_json,
            at,
            seen,
            units,
            pending,
            timing,
            records,
            ..
        } = self;
        let conn: &Connection = conn;
        let (import_id, meta_json, at) = (&**import_id, &**meta_json, &**at);
        let mut dupes = Vec::new();
        let loaded = std::thread::scope(|scope| -> Result<()> {
            // Chunk k goes to encoder k % n; this thread takes the chunks back in order.
            let n = units.len();
            let mut receivers = Vec::with_capacity(n);
            for (k, units) in units.iter_mut().enumerate() {
                // Unbounded (a batch at most): the encoders run on through the commit of the
                // previous batch, so that this thread then finds the chunks ready.
                let (send, recv) = std::sync::mpsc::channel::<Result<Vec<Encoded>>>();
                receivers.push(recv);
                scope.spawn(move || {
                    for chunk in rows.chunks(ENCODE_CHUNK).skip(k).step_by(n) {
                        let encoded = chunk
                            .iter()
                            .map(|row| encode(row, units))
                            .collect::<Result<Vec<_>>>();
                        if send.send(encoded).is_err() {
                            return;
                        }
                    }
                });
            }
            // The previous batch commits now, while the encoders start on this one.
            let clock = Instant::now();
            if std::mem::take(pending) {
                conn.execute_batch("COMMIT").map_err(db)?;
                records.forget_all();
            }
            timing.committing += clock.elapsed();
            conn.execute_batch("BEGIN").map_err(db)?;
            *pending = true;
            // Events get their seq from here rather than from SQLite, so that the projection
            // rows can name them before they are inserted and both can go many rows to a
            // statement.
            let mut next_seq: i64 = conn
                .query_row("SELECT coalesce(max(seq), 0) + 1 FROM events", [], |r| {
                    r.get(0)
                })
                .map_err(db)?;
            let mut many = Inserts::prepare(conn, ROWS_PER_INSERT, at, meta_json)?;
            let mut one = Inserts::prepare(conn, 1, at, meta_json)?;
            for k in 0..rows.len().div_ceil(ENCODE_CHUNK) {
                let clock = Instant::now();
                let received = receivers[k % n].recv();
                timing.waiting += clock.elapsed();
                let clock = Instant::now();
                let Ok(chunk) = received else {
                    return Err(StoreError::Backend(
                        "an encoding thread of the bulk load stopped".into(),
                    ));
                };
                let mut chunk = chunk?;
                chunk.retain(|e| {
                    let new = seen.insert(e.id);
                    if !new {
                        dupes.push(e.line);
                    }
                    new
                });
                for e in &mut chunk {
                    e.seq = next_seq;
                    next_seq += 1;
                    let _ = write!(e.reference, "{RECORD_REF}{}", e.seq);
                }
                let mut groups = chunk.chunks_exact(ROWS_PER_INSERT);
                for group in &mut groups {
                    many.insert(group)?;
                }
                for e in groups.remainder() {
                    one.insert(std::slice::from_ref(e))?;
                }
                timing.inserting += clock.elapsed();
            }
            conn.execute(
                "INSERT INTO imports (id, last_line, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET last_line = excluded.last_line, updated_at = excluded.updated_at",
                params![import_id, last as i64, at],
            )
            .map_err(db)?;
            Ok(())
        });
        if let Err(e) = loaded {
            // Whatever failed, this batch goes (and the previous one if its commit failed).
            *pending = false;
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            return Err(e);
        }
        Ok(dupes)
    }

    fn households(&mut self, households: &[Household]) -> Result<Vec<String>> {
        self.commit_pending()?;
        let tx = self.conn.transaction().map_err(db)?;
        let taken = insert_households(&tx, households, &self.meta_json, &self.at)?;
        tx.commit().map_err(db)?;
        self.written();
        Ok(taken)
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        self.restore()
    }
}

impl Drop for SqliteBulk<'_> {
    fn drop(&mut self) {
        if !self.finished
            && let Err(e) = self.restore()
        {
            tracing::error!(error = %e, "restoring the indexes after an unfinished bulk load");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::sqlite::SqliteStore;

    fn person(serial: u32) -> Person {
        let id = format!("095097{serial:06}");
        let json = format!(
            r#"{{"id":"{id}","version":1,"name":{{"family":"Đỗ","middle":"","given":"Anh"}},"other_names":[],
            "date_of_birth":"1997-02-20","sex":"male","birth_registration":{{"scheme":"legacy","commune_code":"31960",
            "detail":"","effective_from":"1997-03-03"}},"ethnicity":"Kinh","religion":"Không","nationality":"VN",
            "marital_status":"single","legacy_cmnd":[],"cards":[],"vital_status":{{"status":"alive"}}}}"#
        );
        serde_json::from_str(&json).unwrap()
    }

    fn rows(from: u32, n: u32) -> Vec<ImportRow> {
        (from..from + n)
            .map(|i| ImportRow {
                line: u64::from(i) + 1,
                person: person(i),
            })
            .collect()
    }

    fn meta() -> EventMeta {
        EventMeta {
            actor: "test".into(),
            at: Utc::now(),
            reason: None,
            legal_basis: None,
            document_ref: None,
        }
    }

    fn journal_mode(path: &std::path::Path) -> String {
        Connection::open(path)
            .unwrap()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap()
    }

    fn index_count(path: &std::path::Path) -> i64 {
        Connection::open(path)
            .unwrap()
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN
                 ('events_stream', 'persons_id', 'persons_name', 'persons_commune')",
                [],
                |r| r.get(0),
            )
            .unwrap()
    }

    #[test]
    fn falls_back_when_another_connection_has_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.sqlite3");
        let store = SqliteStore::open(&path).unwrap();
        let other = Connection::open(&path).unwrap();
        other
            .query_row("SELECT count(*) FROM persons", [], |r| r.get::<_, i64>(0))
            .unwrap();
        let mut importer = Importer::new(&store, "x", &meta()).unwrap();
        assert!(
            !importer.is_bulk(),
            "an open connection keeps the file in WAL mode"
        );
        assert!(importer.people(&rows(0, 10)).unwrap().is_empty());
        importer.finish().unwrap();
        drop(other);
        assert_eq!(store.count_people().unwrap(), 10);
        assert_eq!(journal_mode(&path), "wal");
    }

    #[test]
    fn returns_to_wal_with_every_index_and_lets_readers_in() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.sqlite3");
        let store = SqliteStore::open(&path).unwrap();
        // A read before the load leaves an idle reader in the pool; the load closes it.
        assert_eq!(store.count_people().unwrap(), 0);
        let mut importer = Importer::new(&store, "x", &meta()).unwrap();
        assert!(importer.is_bulk());
        importer.people(&rows(0, 100)).unwrap();
        importer.finish().unwrap();
        assert_eq!(journal_mode(&path), "wal");
        assert_eq!(index_count(&path), 4);
        // Another connection can read and write again.
        let other = Connection::open(&path).unwrap();
        assert_eq!(
            other
                .query_row("SELECT count(*) FROM persons", [], |r| r.get::<_, i64>(0))
                .unwrap(),
            100
        );
        assert_eq!(store.person(&person(7).id).unwrap().unwrap(), person(7));
    }

    #[test]
    fn an_interrupted_bulk_load_is_repaired_on_open_and_resumed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.sqlite3");
        {
            let store = SqliteStore::open(&path).unwrap();
            let mut bulk = SqliteBulk::start(&store, "x", &meta()).unwrap().unwrap();
            bulk.people(&rows(0, 50)).unwrap();
            // The next batch commits the previous one; the last stays open until then.
            bulk.people(&rows(50, 10)).unwrap();
            // A crash: the process ends without restoring anything or committing the open
            // batch, which is lost whole.
            bulk.finished = true;
            bulk.pending = false;
            drop(bulk);
        }
        assert_eq!(index_count(&path), 0, "the crash left the indexes dropped");
        // An ordinary open rebuilds them; the mark stays so the same import may resume.
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(index_count(&path), 4);
        assert_eq!(store.import_progress("x").unwrap(), Some(50));
        let mut importer = Importer::new(&store, "x", &meta()).unwrap();
        assert!(importer.is_bulk(), "the same import resumes in bulk");
        // Rows loaded before the crash are refused as duplicates.
        assert_eq!(
            importer.people(&rows(45, 10)).unwrap(),
            vec![46, 47, 48, 49, 50]
        );
        importer.finish().unwrap();
        assert_eq!(store.count_people().unwrap(), 55);
        // Another import id does not get the bulk path on a non-empty register.
        assert!(!Importer::new(&store, "y", &meta()).unwrap().is_bulk());
    }

    #[test]
    fn a_version_1_database_is_migrated_keeping_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.sqlite3");
        let c = Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             INSERT INTO meta VALUES ('schema_version', '1');
             CREATE TABLE events (seq INTEGER PRIMARY KEY, stream TEXT NOT NULL, version INTEGER NOT NULL,
               kind TEXT NOT NULL, at TEXT NOT NULL, meta TEXT NOT NULL, change TEXT NOT NULL, UNIQUE (stream, version));
             CREATE TABLE persons (id TEXT PRIMARY KEY, version INTEGER NOT NULL, name_key TEXT NOT NULL,
               birth_year INTEGER NOT NULL, commune TEXT, province TEXT, alive INTEGER NOT NULL, data TEXT NOT NULL);",
        )
        .unwrap();
        let p = person(3);
        let data = serde_json::to_string(&p).unwrap();
        c.execute(
            "INSERT INTO persons VALUES (?1, 1, 'do anh', 1997, NULL, NULL, 1, ?2)",
            params![p.id.as_str(), data],
        )
        .unwrap();
        c.execute(
            "INSERT INTO events VALUES (7, ?1, 1, 'record_imported', '2026-01-01T00:00:00.000000Z', ?2, ?3)",
            params![
                format!("p:{}", p.id),
                serde_json::to_string(&meta()).unwrap(),
                format!(r#"{{"type":"record_imported","record":{data}}}"#)
            ],
        )
        .unwrap();
        drop(c);
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.person(&p.id).unwrap(), Some(p.clone()));
        let events = store.events(&StreamId::Person(p.id), None).unwrap();
        assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![7]);
        let c = Connection::open(&path).unwrap();
        let v: String = c
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(v, "3");
        assert_eq!(index_count(&path), 4);
    }

    #[test]
    fn a_record_by_reference_reads_from_an_import_event_of_another_layout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.sqlite3");
        let store = SqliteStore::open(&path).unwrap();
        let p = person(4);
        let c = Connection::open(&path).unwrap();
        c.execute(
            "INSERT INTO persons (id, version, name_key, birth_year, alive, data)
             VALUES (?1, 1, 'do anh', 1997, 1, '')",
            [p.id.as_str()],
        )
        .unwrap();
        // Fields in another order than the bulk load writes them.
        c.execute(
            "INSERT INTO events (stream, version, kind, at, meta, change)
             VALUES (?1, 1, 'record_imported', '2026-01-01T00:00:00.000000Z', ?2, ?3)",
            params![
                format!("p:{}", p.id),
                serde_json::to_string(&meta()).unwrap(),
                format!(
                    r#"{{"record":{},"type":"record_imported"}}"#,
                    serde_json::to_string(&p).unwrap()
                )
            ],
        )
        .unwrap();
        drop(c);
        assert_eq!(store.person(&p.id).unwrap(), Some(p.clone()));
        assert_eq!(
            store.person_json(&p.id).unwrap().unwrap().0,
            serde_json::to_string(&p).unwrap()
        );
    }

    #[test]
    fn a_bulk_loaded_record_is_stored_once_and_reads_the_same_on_every_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.sqlite3");
        let store = SqliteStore::open(&path).unwrap();
        let mut importer = Importer::new(&store, "x", &meta()).unwrap();
        assert!(importer.is_bulk());
        importer.people(&rows(0, 20)).unwrap();
        importer.finish().unwrap();
        // The projection rows refer to the import events by their seq.
        let c = Connection::open(&path).unwrap();
        let referring: i64 = c
            .query_row(
                "SELECT count(*) FROM persons p JOIN events e
                   ON p.data = '#' || e.seq AND e.stream = 'p:' || p.id AND e.version = 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(referring, 20);
        drop(c);
        let p = person(7);
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(store.person(&p.id).unwrap(), Some(p.clone()));
        assert_eq!(
            store.person_json(&p.id).unwrap(),
            Some((json.clone(), p.home_commune()))
        );
        assert_eq!(
            store.persons(&[person(3).id, p.id]).unwrap(),
            vec![person(3), p.clone()]
        );
        let q = SearchQuery {
            name_key: PersonIndex::of(&p).name_key,
            prefix: false,
            birth_year: None,
            commune: None,
            province: None,
            limit: 5,
        };
        let found = store.search_json(&q).unwrap();
        assert_eq!(found.len(), 5);
        assert_eq!(
            found[0],
            (person(0).id, serde_json::to_string(&person(0)).unwrap())
        );
        assert_eq!(store.search(&q).unwrap()[1], person(1));
        assert_eq!(
            store.persons_after(Some(&person(5).id), 2).unwrap(),
            vec![person(6), p.clone()]
        );
        let commune = p.home_commune().unwrap();
        assert_eq!(
            store
                .people_of_commune(&commune, Some(&person(6).id), 1)
                .unwrap(),
            vec![p.clone()]
        );
        // The first change writes the whole record into the projection; the event keeps the
        // imported one, so history still reads it.
        let mut changed = p.clone();
        changed.version = 2;
        changed.religion = "Phật giáo".into();
        store
            .commit(&Commit {
                meta: meta(),
                appends: vec![Append::Person {
                    expected: 1,
                    change: PersonChange::DivorceRegistered {
                        on: chrono::NaiveDate::from_ymd_opt(2020, 1, 1).unwrap(),
                    },
                    state: changed.clone(),
                }],
                idempotency: None,
            })
            .unwrap();
        assert_eq!(store.person(&p.id).unwrap(), Some(changed.clone()));
        assert_eq!(
            store.person_json(&p.id).unwrap().unwrap().0,
            serde_json::to_string(&changed).unwrap()
        );
        let events = store.events(&StreamId::Person(p.id), None).unwrap();
        assert_eq!(events.len(), 2);
        let first: PersonChange = serde_json::from_value(events[0].change.clone()).unwrap();
        assert_eq!(
            first,
            PersonChange::RecordImported {
                record: Box::new(p.clone())
            }
        );
        assert_eq!(store.person(&person(8).id).unwrap(), Some(person(8)));
    }
}
