//! The embedded store's read-access log: an append-only journal file, indexed behind the
//! readers.
//!
//! Every read of a person's data must be recorded before the data is released, so the log sits on
//! the hottest path there is. Appending a batch of entries is one `write` to the end of
//! `<name>-access.journal` (one `fdatasync` too under [`Durability::Full`]); nothing else
//! happens on the request path. The store's upkeep (every half second) syncs the journal and,
//! once 65,536 entries have gathered or the oldest has waited 30 s, writes them as one sorted
//! run file into `<name>-access-runs/` (see [`crate::access_runs`]) and records the run, with
//! how far the journal is indexed, in one transaction of `<name>-access.sqlite3`. Runs of a
//! level are merged four at a time into one of the next level by streaming the files, so the
//! indexing costs a few sequential copies per entry instead of a B-tree insert per entry and
//! level. Merges run apart from the upkeep ([`AccessJournal::compact`], on a thread of the
//! registry's that yields to requests), so a merge of large runs neither delays the next sync
//! nor takes CPU from reads; the upkeep merges only when a level has gathered twelve runs, a
//! sign that requests have kept the merging thread from running. Entries not yet indexed are
//! kept in memory too, so the per-person query sees them at once. (Databases of earlier builds
//! kept runs as tables of the index database; those are still read, and no longer written.)
//!
//! Crash safety: each record carries its length and a checksum, so a record torn by a crash is
//! recognised and cut off at the next open; a run file is complete under its name before any
//! transaction lists it, and a file no transaction lists is removed at the next open. The
//! index records the journal's generation and the offset it reached in the same transaction as
//! the run. Once the journal has grown past [`ROTATE_AT`] it is renamed aside
//! (`<name>-access.journal.<generation>`) and appends go on in a new file of the next
//! generation; the old file's entries still waiting are indexed from memory, and then it is
//! removed. This does not wait for a moment when nothing is waiting for the index, which under
//! steady load never comes (a bench server's journal had grown to 574 MB, read whole at each
//! start). A crash before the removal leaves a retired file that the next open indexes, as far
//! as the index lacks it, and removes; an older, fully indexed journal under the journal's own
//! name (from builds that emptied it in place) is emptied. Sequence numbers continue after the
//! highest the index holds.
//!
//! Record layout (little-endian): `len u32 | check u64 | payload`, where `check` is FNV-1a of
//! the payload and the payload is `seq i64 | at µs i64 | person [12] | actor | purpose |
//! action`, each string a `u32` length and UTF-8 bytes. The file starts with `DANCUACC` and its
//! generation (`u64`).

use crate::access_runs::{self, Run, RunWriter};
use crate::sqlite::Durability;
use crate::{AccessEntry, Result, StoreError};
use chrono::{DateTime, Utc};
use dancu_domain::PersonalId;
use rusqlite::{Connection, params};
use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

const MAGIC: &[u8; 8] = b"DANCUACC";
const HEADER: u64 = 16;
/// Size past which a fully indexed journal is emptied.
pub(crate) const ROTATE_AT: u64 = 64 << 20;
/// Entries gathered before they are indexed. Their person keys are random, so each one lands
/// on its own leaf page of the index unless a batch is large beside the index: every dirtied
/// page is written twice (WAL, checkpoint) however few entries it gained. Large, rare batches
/// keep that cost per entry small; until then the entries are answered from memory.
const INDEX_AT: usize = 65_536;
/// The longest an entry waits for the index.
const INDEX_AFTER: std::time::Duration = std::time::Duration::from_secs(30);
/// Longest record accepted when reading back (a longer length field means a torn record).
pub(crate) const MAX_RECORD: u32 = 1 << 20;

/// The schema of the index database.
pub(crate) const INDEX_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS access_log (
    seq INTEGER PRIMARY KEY, person TEXT NOT NULL, actor TEXT NOT NULL, at TEXT NOT NULL,
    purpose TEXT NOT NULL, action TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS access_log_person ON access_log (person, seq);
CREATE TABLE IF NOT EXISTS access_runs (
    id INTEGER PRIMARY KEY, level INTEGER NOT NULL, entries INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS access_run_files (
    id INTEGER PRIMARY KEY, level INTEGER NOT NULL, entries INTEGER NOT NULL,
    last_seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS access_journal (
    id INTEGER PRIMARY KEY CHECK (id = 1), generation INTEGER NOT NULL, indexed INTEGER NOT NULL
);
"#;

fn io(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Backend(format!("{what} {}: {e}", path.display()))
}

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(format!("access index: {e}"))
}

/// FNV-1a of `bytes`: the check each record carries.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut f = access_runs::Fnv::new();
    f.feed(bytes);
    f.sum()
}

/// Bytes before a record's payload: its length (`u32`) and check (`u64`).
pub(crate) const RECORD_HEAD: usize = 12;

/// The payload length and check a record's head gives; `None` for a length past
/// [`MAX_RECORD`] (a torn or damaged record).
pub(crate) fn record_head(head: &[u8; RECORD_HEAD]) -> Option<(usize, u64)> {
    let len = u32::from_le_bytes(head[..4].try_into().ok()?);
    let check = u64::from_le_bytes(head[4..].try_into().ok()?);
    (len <= MAX_RECORD).then_some((len as usize, check))
}

/// Path of the journal that goes with a register database.
pub fn journal_path(db: &Path) -> PathBuf {
    crate::sqlite::beside(db, "access.journal")
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn encode(out: &mut Vec<u8>, seq: i64, e: &AccessEntry) {
    let start = out.len();
    out.extend_from_slice(&[0; 12]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&e.at.timestamp_micros().to_le_bytes());
    out.extend_from_slice(e.person.as_str().as_bytes());
    put_str(out, &e.actor);
    put_str(out, &e.purpose);
    put_str(out, &e.action);
    let len = (out.len() - start - 12) as u32;
    let check = fnv1a(&out[start + 12..]);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 12].copy_from_slice(&check.to_le_bytes());
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn string(&mut self) -> Option<String> {
        let n = u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

pub(crate) fn decode(payload: &[u8]) -> Option<(i64, AccessEntry)> {
    let mut c = Cursor(payload);
    let seq = c.i64()?;
    let at = DateTime::<Utc>::from_timestamp_micros(c.i64()?)?;
    let person = std::str::from_utf8(c.take(12)?).ok()?.parse().ok()?;
    let actor = c.string()?;
    let purpose = c.string()?;
    let action = c.string()?;
    c.0.is_empty().then_some((
        seq,
        AccessEntry {
            actor,
            at,
            person,
            purpose,
            action,
        },
    ))
}

/// Reads the records of `bytes` (which starts at a record boundary); returns them with the
/// length of the valid prefix. Reading stops at the first torn or damaged record.
fn read_records(bytes: &[u8]) -> (Vec<(i64, AccessEntry)>, usize) {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(head) = bytes.get(at..at + RECORD_HEAD) {
        let head: &[u8; RECORD_HEAD] = head.try_into().unwrap_or(&[0xff; RECORD_HEAD]);
        let Some((len, check)) = record_head(head) else {
            break;
        };
        let Some(payload) = bytes.get(at + RECORD_HEAD..at + RECORD_HEAD + len) else {
            break;
        };
        if fnv1a(payload) != check {
            break;
        }
        let Some(rec) = decode(payload) else { break };
        out.push(rec);
        at += RECORD_HEAD + len;
    }
    (out, at)
}

/// Moves the pending entries behind any batch whose indexing failed earlier, into `indexing`.
fn take_pending(p: &mut Pending) {
    if p.entries.is_empty() {
        return;
    }
    let mut batch = std::sync::Arc::try_unwrap(std::mem::take(&mut p.indexing))
        .unwrap_or_else(|shared| (*shared).clone());
    batch.append(&mut p.entries);
    p.indexing = std::sync::Arc::new(batch);
    p.since = None;
}

/// Where a journal of `generation` waits for the index after a rotation: beside the journal,
/// its name followed by `.` and the generation.
fn retired_path(journal: &Path, generation: u64) -> PathBuf {
    let mut name = journal.as_os_str().to_owned();
    name.push(format!(".{generation}"));
    PathBuf::from(name)
}

/// The directory a file is in (`.` for a bare file name).
fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Retired journals beside `journal` (see [`retired_path`]), oldest generation first.
fn retired_journals(journal: &Path) -> Result<Vec<PathBuf>> {
    let Some(name) = journal.file_name() else {
        return Ok(Vec::new());
    };
    let dir = dir_of(journal);
    let prefix = format!("{}.", name.to_string_lossy());
    let mut found: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .map_err(|e| io("listing", dir, e))?
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            let generation = n.strip_prefix(&prefix)?.parse().ok()?;
            Some((generation, e.path()))
        })
        .collect();
    found.sort();
    Ok(found.into_iter().map(|(_, p)| p).collect())
}

/// Makes a file's creation or renaming in its directory durable.
fn sync_parent(path: &Path) -> Result<()> {
    File::open(dir_of(path))
        .and_then(|d| d.sync_all())
        .map_err(|e| io("syncing the directory of", path, e))
}

/// The generation in a journal's header, if it has one.
fn header_generation(bytes: &[u8]) -> Option<u64> {
    (bytes.len() >= HEADER as usize && &bytes[..8] == MAGIC)
        .then(|| u64::from_le_bytes(bytes[8..16].try_into().unwrap_or([0; 8])))
}

struct JournalFile {
    file: File,
    generation: u64,
    len: u64,
    next_seq: i64,
    unsynced: bool,
}

/// Entries written to the journal and not yet known to be in the index, oldest first, with the
/// journal offset after the last of them.
#[derive(Default)]
struct Pending {
    entries: Vec<(i64, AccessEntry)>,
    /// Entries taken out of `entries` by the indexer and not yet committed to the index.
    indexing: std::sync::Arc<Vec<(i64, AccessEntry)>>,
    end: u64,
    generation: u64,
    /// When the oldest of `entries` arrived.
    since: Option<std::time::Instant>,
}

/// The journal with its index.
pub(crate) struct AccessJournal {
    path: PathBuf,
    durability: Durability,
    file: Mutex<JournalFile>,
    pending: Mutex<Pending>,
    /// The index database's writer (also used for queries), with the open run files.
    index: Mutex<Index>,
    /// Held through an upkeep, so that two never interleave.
    upkeep: Mutex<()>,
}

impl std::fmt::Debug for AccessJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessJournal")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn write_header(file: &mut File, path: &Path, generation: u64) -> Result<()> {
    file.set_len(0).map_err(|e| io("emptying", path, e))?;
    let mut h = Vec::with_capacity(HEADER as usize);
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&generation.to_le_bytes());
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.write_all(&h))
        .and_then(|()| file.sync_all())
        .map_err(|e| io("writing the header of", path, e))
}

/// Runs merged into one of the next level once this many share a level.
const MERGE_FANOUT: usize = 4;

/// Name of a run table of the earlier layout (runs as tables of the index database). Such runs
/// are still read, and no longer written or merged.
fn run_table(id: i64) -> String {
    format!("access_run_{id}")
}

/// Runs a level may hold before the upkeep merges them itself instead of leaving them to
/// [`AccessJournal::compact`]: that runs at low priority and yields to requests, so under
/// sustained load it may fall behind; this bounds the runs a query has to look through.
const BACKLOG: usize = 3 * MERGE_FANOUT;

/// The index database with the run files open so far.
struct Index {
    conn: Connection,
    dir: PathBuf,
    open: HashMap<i64, Run>,
    /// The id the next run file takes (a new run or a merge's output): allocated here, under
    /// the index's lock, because a merge writes its file while a new run may be written.
    next_id: i64,
    /// Runs a merge in progress is reading: no other merge takes them.
    merging: HashSet<i64>,
}

impl Index {
    /// A fresh run id.
    fn take_id(&mut self) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn run(&mut self, id: i64) -> Result<&Run> {
        if !self.open.contains_key(&id) {
            let run = Run::open(access_runs::run_path(&self.dir, id))?;
            self.open.insert(id, run);
        }
        self.open
            .get(&id)
            .ok_or_else(|| StoreError::Backend("access-log run vanished".into()))
    }
}

/// Writes a batch of entries as a new sorted run file, then records it and how far the journal
/// is indexed in one transaction. A crash in between leaves a file that no transaction lists,
/// removed at the next open.
fn index_rows(
    index: &mut Index,
    rows: &[(i64, AccessEntry)],
    generation: u64,
    indexed: u64,
) -> Result<()> {
    let run = if rows.is_empty() {
        None
    } else {
        let mut order: Vec<&(i64, AccessEntry)> = rows.iter().collect();
        // ID digits are ASCII, so their byte order is the order of the IDs.
        order.sort_unstable_by_key(|r| (r.1.person, r.0));
        let id = index.take_id();
        let mut writer = RunWriter::create(&index.dir, id, order.len() as u64)?;
        let mut record = Vec::with_capacity(128);
        let mut last_seq = 0;
        for (seq, e) in order {
            record.clear();
            encode(&mut record, *seq, e);
            let person: &[u8; 12] = e
                .person
                .as_str()
                .as_bytes()
                .try_into()
                .map_err(|_| StoreError::Backend("an ID number is not 12 bytes".into()))?;
            writer.push(person, *seq, &record)?;
            last_seq = last_seq.max(*seq);
        }
        writer.finish()?;
        Some((id, rows.len() as i64, last_seq))
    };
    let tx = index
        .conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(db)?;
    if let Some((id, entries, last_seq)) = run {
        tx.execute(
            "INSERT INTO access_run_files (id, level, entries, last_seq) VALUES (?1, 0, ?2, ?3)",
            params![id, entries, last_seq],
        )
        .map_err(db)?;
    }
    tx.execute(
        "INSERT INTO access_journal (id, generation, indexed) VALUES (1, ?1, ?2) \
         ON CONFLICT (id) DO UPDATE SET generation = ?1, indexed = ?2",
        params![generation as i64, indexed as i64],
    )
    .map_err(db)?;
    tx.commit().map_err(db)
}

/// The oldest [`MERGE_FANOUT`] runs of the lowest level that holds at least `at_least` runs
/// no other merge is reading, claimed for this merge, with the id of the run they become.
fn merge_plan(index: &mut Index, at_least: usize) -> Result<Option<(i64, Vec<i64>, i64)>> {
    let listed: Vec<(i64, i64)> = index
        .conn
        .prepare_cached("SELECT level, id FROM access_run_files ORDER BY level, id")
        .map_err(db)?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(db)?
        .collect::<rusqlite::Result<_>>()
        .map_err(db)?;
    let free: Vec<(i64, i64)> = listed
        .into_iter()
        .filter(|(_, id)| !index.merging.contains(id))
        .collect();
    let Some(runs) = free
        .chunk_by(|a, b| a.0 == b.0)
        .find(|level| level.len() >= at_least.max(MERGE_FANOUT))
    else {
        return Ok(None);
    };
    let level = runs[0].0;
    let runs: Vec<i64> = runs[..MERGE_FANOUT].iter().map(|r| r.1).collect();
    index.merging.extend(&runs);
    Ok(Some((level, runs, index.take_id())))
}

/// Merges run files while a level holds `at_least` runs that no other merge is reading: the
/// oldest [`MERGE_FANOUT`] of that level become one run of the next, streamed into a new file
/// without holding the index (queries, new runs and other merges go on meanwhile); the switch
/// is one transaction, after which the merged files are removed. Each entry is rewritten once
/// per level, sequentially.
fn merge_runs(index: &Mutex<Index>, at_least: usize) -> Result<()> {
    loop {
        let (dir, plan) = {
            let mut index = index.lock().unwrap_or_else(|p| p.into_inner());
            let plan = merge_plan(&mut index, at_least)?;
            (index.dir.clone(), plan)
        };
        let Some((level, runs, id)) = plan else {
            return Ok(());
        };
        let inputs = runs
            .iter()
            .map(|r| access_runs::run_path(&dir, *r))
            .collect();
        let merged = access_runs::merge(&dir, id, inputs);
        let mut index = index.lock().unwrap_or_else(|p| p.into_inner());
        let switched = merged.and_then(|(entries, last_seq)| {
            let tx = index
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(db)?;
            for r in &runs {
                tx.execute("DELETE FROM access_run_files WHERE id = ?1", [r])
                    .map_err(db)?;
            }
            tx.execute(
                "INSERT INTO access_run_files (id, level, entries, last_seq) VALUES (?1, ?2, ?3, ?4)",
                params![id, level + 1, entries as i64, last_seq],
            )
            .map_err(db)?;
            tx.commit().map_err(db)
        });
        for r in &runs {
            index.merging.remove(r);
        }
        // On failure the inputs stay listed and are taken again by a later merge; a file left
        // under the output's id is listed nowhere and goes at the next open.
        switched?;
        // Queries hold the index while they read runs, so none is reading these now.
        for r in &runs {
            index.open.remove(r);
            let path = access_runs::run_path(&dir, *r);
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(file = %path.display(), error = %e, "could not remove a merged access-log run");
            }
        }
    }
}

/// The highest seq the index holds, over the run files, the runs of the earlier layout and the
/// table before them: new entries continue after it even when the journal was emptied.
fn indexed_max_seq(conn: &Connection) -> Result<i64> {
    let mut max: i64 = conn
        .query_row(
            "SELECT max(COALESCE((SELECT MAX(last_seq) FROM access_run_files), 0), \
                        COALESCE((SELECT MAX(seq) FROM access_log), 0))",
            [],
            |r| r.get(0),
        )
        .map_err(db)?;
    let old: Vec<i64> = conn
        .prepare("SELECT id FROM access_runs")
        .map_err(db)?
        .query_map([], |r| r.get(0))
        .map_err(db)?
        .collect::<rusqlite::Result<_>>()
        .map_err(db)?;
    for id in old {
        let m: Option<i64> = conn
            .query_row(
                &format!("SELECT MAX(seq) FROM {}", run_table(id)),
                [],
                |r| r.get(0),
            )
            .map_err(db)?;
        max = max.max(m.unwrap_or(0));
    }
    Ok(max)
}

impl AccessJournal {
    /// Opens the journal beside `db_path` with its index connection (schema already applied),
    /// indexing whatever an earlier run wrote and did not index.
    pub(crate) fn open(db_path: &Path, conn: Connection, durability: Durability) -> Result<Self> {
        conn.execute_batch(INDEX_SCHEMA).map_err(db)?;
        let dir = access_runs::runs_dir(db_path);
        std::fs::create_dir_all(&dir).map_err(|e| io("creating", &dir, e))?;
        let listed: HashSet<i64> = conn
            .prepare("SELECT id FROM access_run_files")
            .map_err(db)?
            .query_map([], |r| r.get(0))
            .map_err(db)?
            .collect::<rusqlite::Result<_>>()
            .map_err(db)?;
        access_runs::remove_strays(&dir, &listed)?;
        let mut index = Index {
            conn,
            dir,
            open: HashMap::new(),
            next_id: listed.iter().max().map_or(1, |m| m + 1),
            merging: HashSet::new(),
        };
        let path = journal_path(db_path);
        let state: Option<(i64, i64)> = index
            .conn
            .query_row(
                "SELECT generation, indexed FROM access_journal WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(db(e)),
            })?;
        let (mut indexed_gen, mut indexed_at) = state
            .map(|(g, o)| (g as u64, o as u64))
            .unwrap_or((1, HEADER));
        // Journals set aside by a rotation that a crash kept from being removed: index what
        // the index lacks of them, then remove them.
        for retired in retired_journals(&path)? {
            let bytes = std::fs::read(&retired).map_err(|e| io("reading", &retired, e))?;
            match header_generation(&bytes) {
                Some(g)
                    if g > indexed_gen
                        || (g == indexed_gen && indexed_at <= bytes.len() as u64) =>
                {
                    let from = if g == indexed_gen { indexed_at } else { HEADER };
                    let (rows, valid) = read_records(&bytes[from as usize..]);
                    index_rows(&mut index, &rows, g, from + valid as u64)?;
                    (indexed_gen, indexed_at) = (g, from + valid as u64);
                }
                Some(_) => {}
                None => {
                    tracing::warn!(file = %retired.display(), "not an access journal; left in place");
                    continue;
                }
            }
            std::fs::remove_file(&retired).map_err(|e| io("removing", &retired, e))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io("opening", &path, e))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| io("reading", &path, e))?;
        let file_gen = header_generation(&bytes);
        let max_seq = indexed_max_seq(&index.conn)?;
        let (generation, len, mut next_seq) = match file_gen {
            // Not yet indexed entries of the current generation (or, if the index was lost, all
            // of a newer one): index them now.
            Some(g)
                if g > indexed_gen || (g == indexed_gen && indexed_at <= bytes.len() as u64) =>
            {
                let from = if g == indexed_gen { indexed_at } else { HEADER } as usize;
                let (rows, valid) = read_records(&bytes[from..]);
                let end = (from + valid) as u64;
                if end < bytes.len() as u64 {
                    tracing::warn!(
                        journal = %path.display(),
                        cut = bytes.len() as u64 - end,
                        "access journal ended in a torn record; cutting it off"
                    );
                    file.set_len(end).map_err(|e| io("truncating", &path, e))?;
                }
                if !rows.is_empty() || g != indexed_gen {
                    index_rows(&mut index, &rows, g, end)?;
                }
                let last = rows.last().map(|r| r.0).unwrap_or(0);
                (g, end, max_seq.max(last) + 1)
            }
            // Missing, damaged header, or an older generation that the index already holds.
            _ => {
                let g = indexed_gen.max(file_gen.unwrap_or(0)) + 1;
                index_rows(&mut index, &[], g, HEADER)?;
                write_header(&mut file, &path, g)?;
                (g, HEADER, max_seq + 1)
            }
        };
        file.seek(SeekFrom::Start(len))
            .map_err(|e| io("seeking", &path, e))?;
        next_seq = next_seq.max(1);
        Ok(Self {
            path,
            durability,
            file: Mutex::new(JournalFile {
                file,
                generation,
                len,
                next_seq,
                unsynced: false,
            }),
            pending: Mutex::new(Pending {
                entries: Vec::new(),
                end: len,
                generation,
                since: None,
                indexing: Default::default(),
            }),
            index: Mutex::new(index),
            upkeep: Mutex::new(()),
        })
    }

    /// Merges runs while a level holds [`MERGE_FANOUT`] that no other merge is reading. Meant
    /// for a thread of its own at low priority: it may take seconds, and it holds no lock that
    /// appends, queries or the upkeep wait for, except for a moment at each switch.
    pub(crate) fn compact(&self) -> Result<()> {
        merge_runs(&self.index, MERGE_FANOUT)
    }

    /// The directory of the run files.
    #[cfg(test)]
    fn runs_dir(&self) -> PathBuf {
        self.index
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .dir
            .clone()
    }

    /// Whether every append waits for the disk (full durability).
    pub(crate) fn syncs_each_append(&self) -> bool {
        self.durability == Durability::Full
    }

    /// Appends entries: one write (and one sync under full durability).
    pub(crate) fn append(&self, entries: &[AccessEntry]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let mut buf = Vec::with_capacity(entries.len() * 128);
        let first = f.next_seq;
        for (i, e) in entries.iter().enumerate() {
            encode(&mut buf, first + i as i64, e);
        }
        let written = f.file.write_all(&buf).and_then(|()| {
            if self.durability == Durability::Full {
                f.file.sync_data()
            } else {
                Ok(())
            }
        });
        if let Err(e) = written {
            // Leave no partial record behind; the next append starts where this one did.
            let len = f.len;
            let _ = f.file.set_len(len);
            let _ = f.file.seek(SeekFrom::Start(len));
            return Err(io("appending to", &self.path, e));
        }
        f.len += buf.len() as u64;
        f.next_seq += entries.len() as i64;
        f.unsynced = self.durability != Durability::Full;
        let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if p.entries.is_empty() {
            p.since = Some(std::time::Instant::now());
            // Room for a whole batch at once: growing by doubling copied every entry each
            // time, on the request path.
            p.entries.reserve(INDEX_AT);
        }
        p.entries.extend(
            entries
                .iter()
                .enumerate()
                .map(|(i, e)| (first + i as i64, e.clone())),
        );
        p.end = f.len;
        p.generation = f.generation;
        Ok(())
    }

    /// Syncs the journal under normal durability; once enough entries have gathered (or the
    /// oldest has waited long enough) moves them into the index, and empties the journal when
    /// it is large and fully indexed. Merging runs is left to [`Self::compact`], unless a level
    /// has gathered [`BACKLOG`] runs: so a long merge never holds up the next sync.
    pub(crate) fn upkeep(&self) -> Result<()> {
        self.upkeep_with(INDEX_AT, INDEX_AFTER)
    }

    /// [`Self::upkeep`] with the indexing thresholds given.
    pub(crate) fn upkeep_with(&self, at: usize, after: std::time::Duration) -> Result<()> {
        let _one = self.upkeep.lock().unwrap_or_else(|p| p.into_inner());
        {
            let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
            if f.unsynced {
                f.file
                    .sync_data()
                    .map_err(|e| io("syncing", &self.path, e))?;
                f.unsynced = false;
            }
        }
        self.rotate_if_large()?;
        let (rows, end, generation) = {
            let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            let due = p.entries.len() >= at || p.since.is_some_and(|t| t.elapsed() >= after);
            if due {
                take_pending(&mut p);
            }
            (
                if due {
                    p.indexing.clone()
                } else {
                    Default::default()
                },
                p.end,
                p.generation,
            )
        };
        if !rows.is_empty() {
            // The end offset covers entries appended after `rows` were taken: the index may
            // only claim what it holds, so record the offset after the last indexed entry.
            let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
            index_rows(&mut index, &rows[..], generation, end)?;
            // Cleared under the index lock, so a query never misses entries between the two.
            let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            p.indexing = Default::default();
        }
        merge_runs(&self.index, BACKLOG)
    }

    /// Once the journal has grown past [`ROTATE_AT`], moves on to a new file whatever is still
    /// waiting for the index (under steady load something always is, and the journal would
    /// grow without end): the file is renamed aside as retired, appends go on at once in a
    /// fresh file of the next generation, the entries of the old one still waiting are indexed
    /// from memory, and then the old file is removed. A crash on the way leaves a retired file
    /// that the next open indexes (what the index lacks of it) and removes.
    fn rotate_if_large(&self) -> Result<()> {
        let (rows, generation, end, retired) = {
            let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
            if f.len < ROTATE_AT {
                return Ok(());
            }
            let (generation, end) = (f.generation, f.len);
            let retired = retired_path(&self.path, generation);
            std::fs::rename(&self.path, &retired)
                .map_err(|e| io("setting aside", &self.path, e))?;
            let fresh = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&self.path)
                .map_err(|e| io("creating", &self.path, e))
                .and_then(|mut file| {
                    write_header(&mut file, &self.path, generation + 1)?;
                    sync_parent(&self.path)?;
                    Ok(file)
                });
            let file = match fresh {
                Ok(file) => file,
                Err(e) => {
                    // Appends still go to the old file: give it its name back.
                    let _ = std::fs::rename(&retired, &self.path);
                    return Err(e);
                }
            };
            f.file = file;
            f.generation = generation + 1;
            f.len = HEADER;
            f.unsynced = false;
            let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            // Every entry of the old file is in memory: all of them go to the index now.
            take_pending(&mut p);
            p.end = HEADER;
            p.generation = generation + 1;
            (p.indexing.clone(), generation, end, retired)
        };
        {
            let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
            // On failure the entries stay in `indexing` and go with the next indexing (which
            // records the new generation); the retired file is removed by the next open.
            index_rows(&mut index, &rows[..], generation, end)?;
            let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            p.indexing = Default::default();
        }
        if let Err(e) = std::fs::remove_file(&retired) {
            tracing::warn!(file = %retired.display(), error = %e, "could not remove an indexed access journal");
        }
        Ok(())
    }

    /// One person's entries, newest first: those still waiting for the index and those in it.
    pub(crate) fn query(&self, person: &PersonalId, limit: u32) -> Result<Vec<AccessEntry>> {
        // Pending first, then the index: an entry leaves `pending` only after the index has it
        // (the indexer clears it while holding the index's lock).
        let mut found: Vec<(i64, AccessEntry)> = {
            let p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            p.indexing
                .iter()
                .chain(p.entries.iter())
                .filter(|(_, e)| e.person == *person)
                .cloned()
                .collect()
        };
        let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        let key: &[u8; 12] = person
            .as_str()
            .as_bytes()
            .try_into()
            .map_err(|_| StoreError::Backend("an ID number is not 12 bytes".into()))?;
        let files: Vec<i64> = index
            .conn
            .prepare_cached("SELECT id FROM access_run_files ORDER BY id")
            .map_err(db)?
            .query_map([], |r| r.get(0))
            .map_err(db)?
            .collect::<rusqlite::Result<_>>()
            .map_err(db)?;
        for id in files {
            index.run(id)?.lookup(key, limit as usize, &mut found)?;
        }
        // Runs of the earlier layout, and the table that held the log before any runs.
        let mut tables: Vec<String> = index
            .conn
            .prepare_cached("SELECT id FROM access_runs ORDER BY id")
            .map_err(db)?
            .query_map([], |r| r.get::<_, i64>(0))
            .map_err(db)?
            .map(|id| id.map(run_table))
            .collect::<rusqlite::Result<_>>()
            .map_err(db)?;
        tables.push("access_log".into());
        let mut rows = Vec::new();
        for table in tables {
            let mut stmt = index
                .conn
                .prepare_cached(&format!(
                    "SELECT seq, actor, at, purpose, action FROM {table} WHERE person = ?1 \
                     ORDER BY seq DESC LIMIT ?2"
                ))
                .map_err(db)?;
            let got = stmt
                .query_map(params![person.as_str(), limit], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                    ))
                })
                .map_err(db)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(db)?;
            rows.extend(got);
        }
        drop(index);
        for (seq, actor, at, purpose, action) in rows {
            let at = DateTime::parse_from_rfc3339(&at)
                .map_err(|e| StoreError::Backend(format!("bad timestamp {at}: {e}")))?
                .with_timezone(&Utc);
            found.push((
                seq,
                AccessEntry {
                    actor,
                    at,
                    person: *person,
                    purpose,
                    action,
                },
            ));
        }
        found.sort_unstable_by_key(|r| std::cmp::Reverse(r.0));
        found.dedup_by_key(|r| r.0);
        found.truncate(limit as usize);
        Ok(found.into_iter().map(|r| r.1).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(person: &str, n: u32) -> AccessEntry {
        AccessEntry {
            actor: format!("officer-{n}"),
            at: DateTime::<Utc>::from_timestamp(1_700_000_000 + i64::from(n), 0).unwrap(),
            person: person.parse().unwrap(),
            purpose: "kiểm tra hồ sơ".into(),
            action: "record".into(),
        }
    }

    fn open(dir: &Path) -> AccessJournal {
        let db = dir.join("r.sqlite3");
        let c = Connection::open(dir.join("r-access.sqlite3")).unwrap();
        AccessJournal::open(&db, c, Durability::Normal).unwrap()
    }

    const A: &str = "001190000001";
    const B: &str = "079085000002";

    #[test]
    fn entries_are_seen_before_and_after_indexing_and_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let j = open(dir.path());
        j.append(&[entry(A, 1), entry(B, 2)]).unwrap();
        j.append(&[entry(A, 3)]).unwrap();
        let before = j.query(&A.parse().unwrap(), 10).unwrap();
        assert_eq!(
            before.iter().map(|e| e.actor.as_str()).collect::<Vec<_>>(),
            ["officer-3", "officer-1"]
        );
        j.upkeep_with(0, std::time::Duration::ZERO).unwrap();
        assert_eq!(j.query(&A.parse().unwrap(), 10).unwrap(), before);
        j.append(&[entry(A, 4)]).unwrap();
        drop(j);
        // Entry 4 was never indexed: the next open indexes it from the journal.
        let j = open(dir.path());
        let after = j.query(&A.parse().unwrap(), 2).unwrap();
        assert_eq!(
            after.iter().map(|e| e.actor.as_str()).collect::<Vec<_>>(),
            ["officer-4", "officer-3"]
        );
        assert_eq!(j.query(&B.parse().unwrap(), 10).unwrap().len(), 1);
        // New entries continue the sequence rather than colliding with indexed ones.
        j.append(&[entry(A, 5)]).unwrap();
        j.upkeep_with(0, std::time::Duration::ZERO).unwrap();
        assert_eq!(j.query(&A.parse().unwrap(), 10).unwrap().len(), 4);
    }

    #[test]
    fn batches_become_runs_that_merge_level_by_level_and_answer_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let j = open(dir.path());
        for n in 0..21 {
            j.append(&[entry(A, n), entry(B, 100 + n)]).unwrap();
            j.upkeep_with(0, std::time::Duration::ZERO).unwrap();
            j.compact().unwrap();
        }
        let levels: Vec<(i64, i64)> = {
            let c = j.index.lock().unwrap();
            let mut stmt = c
                .conn
                .prepare(
                    "SELECT level, count(*) FROM access_run_files GROUP BY level ORDER BY level",
                )
                .unwrap();
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        // 21 batches: one run of 16 (level 2), one of 4 (level 1), one of 1 (level 0).
        assert_eq!(levels, [(0, 1), (1, 1), (2, 1)]);
        // The merged runs' files are gone: three files for three runs.
        assert_eq!(std::fs::read_dir(j.runs_dir()).unwrap().count(), 3);
        let got = j.query(&A.parse().unwrap(), 100).unwrap();
        let want: Vec<String> = (0..21).rev().map(|n| format!("officer-{n}")).collect();
        assert_eq!(
            got.iter().map(|e| e.actor.clone()).collect::<Vec<_>>(),
            want
        );
        let last3 = j.query(&B.parse().unwrap(), 3).unwrap();
        assert_eq!(
            last3.iter().map(|e| e.actor.as_str()).collect::<Vec<_>>(),
            ["officer-120", "officer-119", "officer-118"]
        );
        drop(j);
        let j = open(dir.path());
        assert_eq!(j.query(&A.parse().unwrap(), 100).unwrap().len(), 21);
    }

    #[test]
    fn a_torn_last_record_is_cut_off_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let j = open(dir.path());
        j.append(&[entry(A, 1), entry(A, 2)]).unwrap();
        drop(j);
        let path = journal_path(&dir.path().join("r.sqlite3"));
        let len = std::fs::metadata(&path).unwrap().len();
        // A crash in the middle of the second record.
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 5)
            .unwrap();
        let j = open(dir.path());
        let got = j.query(&A.parse().unwrap(), 10).unwrap();
        assert_eq!(
            got.iter().map(|e| e.actor.as_str()).collect::<Vec<_>>(),
            ["officer-1"]
        );
        j.append(&[entry(A, 3)]).unwrap();
        drop(j);
        let j = open(dir.path());
        assert_eq!(j.query(&A.parse().unwrap(), 10).unwrap().len(), 2);
    }

    #[test]
    fn a_damaged_record_stops_reading_there() {
        let dir = tempfile::tempdir().unwrap();
        let j = open(dir.path());
        j.append(&[entry(A, 1), entry(A, 2), entry(A, 3)]).unwrap();
        drop(j);
        let path = journal_path(&dir.path().join("r.sqlite3"));
        let mut bytes = std::fs::read(&path).unwrap();
        let second =
            HEADER as usize + 12 + u32::from_le_bytes(bytes[16..20].try_into().unwrap()) as usize;
        bytes[second + 30] ^= 0x55;
        std::fs::write(&path, &bytes).unwrap();
        let j = open(dir.path());
        assert_eq!(j.query(&A.parse().unwrap(), 10).unwrap().len(), 1);
    }

    #[test]
    fn a_fully_indexed_journal_is_emptied_into_a_new_generation() {
        let dir = tempfile::tempdir().unwrap();
        let j = open(dir.path());
        let path = journal_path(&dir.path().join("r.sqlite3"));
        // Force a rotation by pretending the journal is large.
        j.append(&[entry(A, 1)]).unwrap();
        j.file.lock().unwrap().len = ROTATE_AT;
        j.upkeep_with(0, std::time::Duration::ZERO).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), HEADER);
        j.append(&[entry(A, 2)]).unwrap();
        drop(j);
        let j = open(dir.path());
        assert_eq!(j.query(&A.parse().unwrap(), 10).unwrap().len(), 2);
        // A crash after the index moved on but before the journal was emptied: the old journal
        // (generation 1, fully indexed) is emptied at open, nothing is indexed twice.
        drop(j);
        let c = Connection::open(dir.path().join("r-access.sqlite3")).unwrap();
        c.execute(
            "UPDATE access_journal SET generation = generation + 1, indexed = 16",
            [],
        )
        .unwrap();
        drop(c);
        let j = open(dir.path());
        assert_eq!(j.query(&A.parse().unwrap(), 10).unwrap().len(), 2);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), HEADER);
    }

    #[test]
    fn a_large_journal_moves_to_a_new_file_while_entries_still_wait_for_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let j = open(dir.path());
        let path = journal_path(&dir.path().join("r.sqlite3"));
        j.append(&[entry(A, 1), entry(B, 2)]).unwrap();
        // Steady load: entries keep arriving, and none is due for the index yet.
        j.file.lock().unwrap().len = ROTATE_AT;
        let long = std::time::Duration::from_secs(3600);
        j.upkeep_with(usize::MAX, long).unwrap();
        // The journal moved on all the same; the waiting entries went to the index.
        assert_eq!(std::fs::metadata(&path).unwrap().len(), HEADER);
        assert!(retired_journals(&path).unwrap().is_empty());
        assert!(j.pending.lock().unwrap().entries.is_empty());
        j.append(&[entry(A, 3)]).unwrap();
        j.upkeep_with(usize::MAX, long).unwrap();
        let got = j.query(&A.parse().unwrap(), 10).unwrap();
        assert_eq!(
            got.iter().map(|e| e.actor.as_str()).collect::<Vec<_>>(),
            ["officer-3", "officer-1"]
        );
        drop(j);
        // Entry 3 was never indexed: it is read from the new journal at the next open.
        let j = open(dir.path());
        assert_eq!(j.query(&A.parse().unwrap(), 10).unwrap().len(), 2);
        assert_eq!(j.query(&B.parse().unwrap(), 10).unwrap().len(), 1);
        j.append(&[entry(A, 4)]).unwrap();
        let seqs: Vec<i64> = {
            let p = j.pending.lock().unwrap();
            p.entries.iter().map(|(seq, _)| *seq).collect()
        };
        assert_eq!(seqs, [4], "sequence numbers go on after a rotation");
    }

    #[test]
    fn a_retired_journal_left_by_a_crash_is_indexed_once_and_removed() {
        let path_of = |dir: &Path| journal_path(&dir.join("r.sqlite3"));
        // A crash after the journal was set aside and the new one begun, before the old one's
        // waiting entries reached the index: the files as they were, made by hand.
        let dir = tempfile::tempdir().unwrap();
        let j = open(dir.path());
        j.append(&[entry(A, 1)]).unwrap();
        j.upkeep_with(0, std::time::Duration::ZERO).unwrap();
        j.append(&[entry(A, 2), entry(B, 3)]).unwrap();
        let generation = j.file.lock().unwrap().generation;
        drop(j);
        let path = path_of(dir.path());
        std::fs::rename(&path, retired_path(&path, generation)).unwrap();
        let mut fresh = File::create(&path).unwrap();
        write_header(&mut fresh, &path, generation + 1).unwrap();
        drop(fresh);
        let j = open(dir.path());
        assert!(retired_journals(&path).unwrap().is_empty());
        let got = j.query(&A.parse().unwrap(), 10).unwrap();
        assert_eq!(
            got.iter().map(|e| e.actor.as_str()).collect::<Vec<_>>(),
            ["officer-2", "officer-1"],
            "entry 1 once (it was indexed before), entry 2 from the retired file"
        );
        assert_eq!(j.query(&B.parse().unwrap(), 10).unwrap().len(), 1);
        drop(j);
        // A crash after the old journal was indexed, before it was removed: nothing twice.
        let j = open(dir.path());
        j.append(&[entry(A, 4)]).unwrap();
        j.file.lock().unwrap().len = ROTATE_AT;
        let generation = j.file.lock().unwrap().generation;
        let bytes = std::fs::read(&path).unwrap();
        j.upkeep_with(usize::MAX, std::time::Duration::from_secs(3600))
            .unwrap();
        drop(j);
        std::fs::write(retired_path(&path, generation), &bytes).unwrap();
        let j = open(dir.path());
        assert!(retired_journals(&path).unwrap().is_empty());
        assert_eq!(j.query(&A.parse().unwrap(), 10).unwrap().len(), 3);
    }

    #[test]
    fn seqs_continue_after_the_journal_was_emptied_and_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let j = open(dir.path());
        j.append(&[entry(A, 1), entry(A, 2)]).unwrap();
        j.file.lock().unwrap().len = ROTATE_AT;
        j.upkeep_with(0, std::time::Duration::ZERO).unwrap();
        drop(j);
        // Everything indexed, the journal empty: the next seq comes from the index.
        let j = open(dir.path());
        j.append(&[entry(A, 3)]).unwrap();
        j.upkeep_with(0, std::time::Duration::ZERO).unwrap();
        let got = j.query(&A.parse().unwrap(), 10).unwrap();
        assert_eq!(
            got.iter().map(|e| e.actor.as_str()).collect::<Vec<_>>(),
            ["officer-3", "officer-2", "officer-1"]
        );
    }

    #[test]
    fn a_run_file_no_transaction_lists_is_removed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let j = open(dir.path());
        j.append(&[entry(A, 1)]).unwrap();
        j.upkeep_with(0, std::time::Duration::ZERO).unwrap();
        let runs = j.runs_dir();
        drop(j);
        // A crash after a run (or a merge) was written but before its transaction.
        std::fs::write(runs.join("7.run"), b"half a run").unwrap();
        std::fs::write(runs.join("8.run.tmp"), b"partial").unwrap();
        let j = open(dir.path());
        let names: Vec<String> = std::fs::read_dir(&runs)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["1.run"]);
        assert_eq!(j.query(&A.parse().unwrap(), 10).unwrap().len(), 1);
    }

    /// A journal whose first run holds A's and B's entries, with `damage` applied to the run
    /// file's bytes; answers the run's path.
    fn damaged_first_run(
        dir: &Path,
        damage: impl FnOnce(&mut Vec<u8>),
    ) -> (AccessJournal, PathBuf) {
        let j = open(dir);
        j.append(&[entry(A, 1), entry(B, 2)]).unwrap();
        j.upkeep_with(0, std::time::Duration::ZERO).unwrap();
        let path = access_runs::run_path(&j.runs_dir(), 1);
        let mut bytes = std::fs::read(&path).unwrap();
        damage(&mut bytes);
        std::fs::write(&path, &bytes).unwrap();
        (j, path)
    }

    #[test]
    fn a_damaged_run_is_reported_not_misread() {
        let dir = tempfile::tempdir().unwrap();
        let (j, path) = damaged_first_run(dir.path(), |bytes| {
            let n = bytes.len();
            bytes[n - 3] ^= 0x55;
        });
        drop(j);
        let j = open(dir.path());
        // B's record is the last one in the file (keys sorted by person).
        let err = j.query(&B.parse().unwrap(), 10).unwrap_err();
        assert!(err.to_string().contains("damaged"), "{err}");
        assert_eq!(j.query(&A.parse().unwrap(), 10).unwrap().len(), 1);
        // A merge copies records whole, their checks with them: the damaged record is carried
        // into the merged run and still reported there, and the rest stays readable.
        for n in 3..6 {
            j.append(&[entry(A, n)]).unwrap();
            j.upkeep_with(0, std::time::Duration::ZERO).unwrap();
        }
        j.compact().unwrap();
        assert!(!path.exists(), "the fourth run of level 0 merged the four");
        let err = j.query(&B.parse().unwrap(), 10).unwrap_err();
        assert!(err.to_string().contains("damaged"), "{err}");
        assert_eq!(j.query(&A.parse().unwrap(), 10).unwrap().len(), 4);
    }

    #[test]
    fn a_run_with_a_damaged_key_area_is_not_merged() {
        let dir = tempfile::tempdir().unwrap();
        // The first key's seq (the header is 32 bytes, the person 12).
        let (j, path) = damaged_first_run(dir.path(), |bytes| bytes[32 + 12] ^= 0x01);
        for n in 3..5 {
            j.append(&[entry(A, n)]).unwrap();
            j.upkeep_with(0, std::time::Duration::ZERO).unwrap();
        }
        j.append(&[entry(A, 5)]).unwrap();
        j.upkeep_with(0, std::time::Duration::ZERO).unwrap();
        let err = j.compact().unwrap_err();
        assert!(err.to_string().contains("damaged"), "{err}");
        assert!(path.exists(), "the damaged run is left in place");
        // The runs are released, not held by the failed merge: the next attempt reads them
        // again and fails the same way, and the upkeep goes on.
        let err = j.compact().unwrap_err();
        assert!(err.to_string().contains("damaged"), "{err}");
        j.append(&[entry(B, 6)]).unwrap();
        j.upkeep_with(0, std::time::Duration::ZERO).unwrap();
        assert_eq!(runs_per_level(&j), [(0, 5)]);
    }

    fn runs_per_level(j: &AccessJournal) -> Vec<(i64, i64)> {
        let c = j.index.lock().unwrap();
        let mut stmt = c
            .conn
            .prepare("SELECT level, count(*) FROM access_run_files GROUP BY level ORDER BY level")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn the_upkeep_leaves_merging_to_compaction_until_a_backlog_gathers() {
        let dir = tempfile::tempdir().unwrap();
        let j = open(dir.path());
        for n in 0..BACKLOG as u32 - 1 {
            j.append(&[entry(A, n)]).unwrap();
            j.upkeep_with(0, std::time::Duration::ZERO).unwrap();
        }
        assert_eq!(runs_per_level(&j), [(0, BACKLOG as i64 - 1)]);
        // The twelfth run of a level: the upkeep merges what the compaction has not.
        j.append(&[entry(A, 99)]).unwrap();
        j.upkeep_with(0, std::time::Duration::ZERO).unwrap();
        // It merges until the level holds fewer than the backlog, no further.
        assert_eq!(
            runs_per_level(&j),
            [(0, (BACKLOG - MERGE_FANOUT) as i64), (1, 1)]
        );
        assert_eq!(j.query(&A.parse().unwrap(), 100).unwrap().len(), BACKLOG);
    }

    #[test]
    fn a_merge_in_progress_keeps_its_runs_from_other_merges_and_new_runs_from_its_id() {
        let dir = tempfile::tempdir().unwrap();
        let j = open(dir.path());
        for n in 0..2 * MERGE_FANOUT as u32 {
            j.append(&[entry(A, n)]).unwrap();
            j.upkeep_with(0, std::time::Duration::ZERO).unwrap();
        }
        // A merge has claimed the oldest four runs and the next id.
        let (first, taken) = {
            let mut index = j.index.lock().unwrap();
            let (level, runs, id) = merge_plan(&mut index, MERGE_FANOUT).unwrap().unwrap();
            assert_eq!((level, runs.as_slice()), (0, &[1, 2, 3, 4][..]));
            (id, runs)
        };
        // Another merge takes the other four; a new run gets an id of its own.
        let second = {
            let mut index = j.index.lock().unwrap();
            let (_, runs, id) = merge_plan(&mut index, MERGE_FANOUT).unwrap().unwrap();
            assert_eq!(runs, [5, 6, 7, 8]);
            assert!(merge_plan(&mut index, MERGE_FANOUT).unwrap().is_none());
            id
        };
        j.append(&[entry(A, 50)]).unwrap();
        j.upkeep_with(0, std::time::Duration::ZERO).unwrap();
        let ids: Vec<i64> = {
            let index = j.index.lock().unwrap();
            let mut stmt = index
                .conn
                .prepare("SELECT id FROM access_run_files")
                .unwrap();
            stmt.query_map([], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        let newest = ids.iter().max().copied().unwrap();
        assert!(
            newest != first && newest != second,
            "{ids:?}, {first}, {second}"
        );
        // Released claims are merged by the next compaction, all of them.
        {
            let mut index = j.index.lock().unwrap();
            for r in taken.iter().chain(&[5, 6, 7, 8]) {
                index.merging.remove(r);
            }
        }
        j.compact().unwrap();
        assert_eq!(runs_per_level(&j), [(0, 1), (1, 2)]);
        assert_eq!(j.query(&A.parse().unwrap(), 100).unwrap().len(), 9);
    }

    #[test]
    fn runs_of_the_earlier_layout_are_still_read() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = Connection::open(dir.path().join("r-access.sqlite3")).unwrap();
            c.execute_batch(INDEX_SCHEMA).unwrap();
            c.execute_batch(
                "CREATE TABLE access_run_1 (person TEXT NOT NULL, seq INTEGER NOT NULL, \
                 actor TEXT NOT NULL, at TEXT NOT NULL, purpose TEXT NOT NULL, \
                 action TEXT NOT NULL, PRIMARY KEY (person, seq)) WITHOUT ROWID; \
                 INSERT INTO access_run_1 VALUES \
                 ('001190000001', 5, 'officer-old', '2024-01-02T03:04:05.000000Z', 'p', 'record'); \
                 INSERT INTO access_runs (id, level, entries) VALUES (1, 0, 1); \
                 INSERT INTO access_journal (id, generation, indexed) VALUES (1, 1, 16);",
            )
            .unwrap();
        }
        let j = open(dir.path());
        j.append(&[entry(A, 1)]).unwrap();
        j.upkeep_with(0, std::time::Duration::ZERO).unwrap();
        let got = j.query(&A.parse().unwrap(), 10).unwrap();
        // The new entry took seq 6, after the old run's 5.
        assert_eq!(
            got.iter().map(|e| e.actor.as_str()).collect::<Vec<_>>(),
            ["officer-1", "officer-old"]
        );
    }
}
