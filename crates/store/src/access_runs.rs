//! Sorted runs of the embedded access log, one file each.
//!
//! The indexer turns each batch of journal entries into a run: a file holding the entries
//! ordered by person and sequence number, with a fixed-width key per entry so that one person's
//! entries are found by binary search. Runs of the same level are merged into one of the next
//! level by streaming them side by side, so an entry is rewritten once per level with plain
//! sequential I/O, and a query looks into a few runs per level.
//!
//! File layout (little-endian):
//!
//! ```text
//! header  "DANCURUN" | count u64 | records_at u64 | key_check u64          (32 bytes)
//! keys    count × (person [12] | seq i64 | offset u64)   ordered by (person, seq)
//! records from records_at: count × journal record (len u32 | check u64 | payload), in key order
//! ```
//!
//! `key_check` is FNV-1a of the key area; each record carries its own check as in the journal.
//! A run is written under a temporary name, synced, renamed and its directory synced, so a file
//! under a run's name is always whole. Which runs exist is recorded in the index database (in
//! the same transaction as how far the journal is indexed); a file it does not list is left over
//! from a crash and removed at the next open.

use crate::access_journal::{RECORD_HEAD, decode, fnv1a, record_head};
use crate::{AccessEntry, Result, StoreError};
use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"DANCURUN";
const HEADER: u64 = 32;
/// Bytes per key: person, seq, offset of the record.
const KEY: u64 = 28;

fn io(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Backend(format!("{what} {}: {e}", path.display()))
}

fn damaged(path: &Path, what: &str) -> StoreError {
    StoreError::Backend(format!(
        "access-log run {} is damaged: {what}",
        path.display()
    ))
}

/// FNV-1a, fed in pieces.
#[derive(Clone, Copy)]
pub(crate) struct Fnv(u64);

impl Fnv {
    pub(crate) fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    pub(crate) fn sum(self) -> u64 {
        self.0
    }
}

/// The directory of the runs that go with a register database.
pub(crate) fn runs_dir(db: &Path) -> PathBuf {
    crate::sqlite::beside(db, "access-runs")
}

/// The file of run `id`.
pub(crate) fn run_path(dir: &Path, id: i64) -> PathBuf {
    dir.join(format!("{id}.run"))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io("syncing the directory", dir, e))
}

/// Removes files of `dir` that are not runs listed in `keep` (left over from a crash).
pub(crate) fn remove_strays(dir: &Path, keep: &std::collections::HashSet<i64>) -> Result<()> {
    let listing = std::fs::read_dir(dir).map_err(|e| io("listing", dir, e))?;
    for item in listing {
        let item = item.map_err(|e| io("listing", dir, e))?;
        let name = item.file_name();
        let name = name.to_string_lossy();
        let listed = name
            .strip_suffix(".run")
            .and_then(|n| n.parse::<i64>().ok())
            .is_some_and(|id| keep.contains(&id));
        if !listed {
            tracing::info!(file = %item.path().display(), "removing an access-log run left over from a crash");
            std::fs::remove_file(item.path()).map_err(|e| io("removing", &item.path(), e))?;
        }
    }
    Ok(())
}

/// Writes one run; entries must come in (person, seq) order.
pub(crate) struct RunWriter {
    tmp: PathBuf,
    path: PathBuf,
    keys: BufWriter<File>,
    records: BufWriter<File>,
    /// Keys the key area has room for.
    room: u64,
    written: u64,
    offset: u64,
    check: Fnv,
    last: Option<([u8; 12], i64)>,
}

impl RunWriter {
    /// Starts run `id` of at most `room` entries in `dir`.
    pub(crate) fn create(dir: &Path, id: i64, room: u64) -> Result<Self> {
        let path = run_path(dir, id);
        let tmp = dir.join(format!("{id}.run.tmp"));
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| io("creating", &tmp, e))?;
        // A second handle with its own position, so keys and records stream side by side.
        let mut second = OpenOptions::new()
            .write(true)
            .open(&tmp)
            .map_err(|e| io("opening", &tmp, e))?;
        let offset = HEADER + room * KEY;
        second
            .seek(SeekFrom::Start(offset))
            .map_err(|e| io("seeking in", &tmp, e))?;
        let mut keys = BufWriter::with_capacity(1 << 16, file);
        keys.seek(SeekFrom::Start(HEADER))
            .map_err(|e| io("seeking in", &tmp, e))?;
        Ok(Self {
            tmp,
            path,
            keys,
            records: BufWriter::with_capacity(1 << 16, second),
            room,
            written: 0,
            offset,
            check: Fnv::new(),
            last: None,
        })
    }

    /// Adds an entry: its person, seq and whole journal record (head and payload).
    pub(crate) fn push(&mut self, person: &[u8; 12], seq: i64, record: &[u8]) -> Result<()> {
        if self.written == self.room {
            return Err(StoreError::Backend(format!(
                "access-log run {}: more entries than room for",
                self.path.display()
            )));
        }
        if self.last.is_some_and(|l| l >= (*person, seq)) {
            return Err(StoreError::Backend(format!(
                "access-log run {}: entries out of order",
                self.path.display()
            )));
        }
        self.last = Some((*person, seq));
        let mut key = [0u8; KEY as usize];
        key[..12].copy_from_slice(person);
        key[12..20].copy_from_slice(&seq.to_le_bytes());
        key[20..28].copy_from_slice(&self.offset.to_le_bytes());
        self.check.feed(&key);
        self.keys
            .write_all(&key)
            .and_then(|()| self.records.write_all(record))
            .map_err(|e| io("writing", &self.tmp, e))?;
        self.offset += record.len() as u64;
        self.written += 1;
        Ok(())
    }

    /// Makes the run durable under its name; answers its path.
    pub(crate) fn finish(self) -> Result<PathBuf> {
        let tmp = self.tmp;
        let records = self
            .records
            .into_inner()
            .map_err(|e| io("writing", &tmp, e.into_error()))?;
        let keys = self
            .keys
            .into_inner()
            .map_err(|e| io("writing", &tmp, e.into_error()))?;
        let mut head = [0u8; HEADER as usize];
        head[..8].copy_from_slice(MAGIC);
        head[8..16].copy_from_slice(&self.written.to_le_bytes());
        head[16..24].copy_from_slice(&(HEADER + self.room * KEY).to_le_bytes());
        head[24..32].copy_from_slice(&self.check.sum().to_le_bytes());
        keys.write_all_at(&head, 0)
            .and_then(|()| records.sync_all())
            .and_then(|()| keys.sync_all())
            .map_err(|e| io("writing", &tmp, e))?;
        drop((keys, records));
        std::fs::rename(&tmp, &self.path).map_err(|e| io("naming", &self.path, e))?;
        if let Some(dir) = self.path.parent() {
            sync_dir(dir)?;
        }
        Ok(self.path)
    }
}

/// An open run, for lookups.
#[derive(Debug)]
pub(crate) struct Run {
    path: PathBuf,
    file: File,
    count: u64,
}

/// A key's person, seq and record offset.
fn parse_key(k: &[u8; KEY as usize]) -> ([u8; 12], i64, u64) {
    let mut person = [0u8; 12];
    person.copy_from_slice(&k[..12]);
    let seq = i64::from_le_bytes(k[12..20].try_into().unwrap_or([0; 8]));
    let offset = u64::from_le_bytes(k[20..28].try_into().unwrap_or([0; 8]));
    (person, seq, offset)
}

fn read_header(path: &Path, file: &File) -> Result<(u64, u64, u64)> {
    let mut head = [0u8; HEADER as usize];
    file.read_exact_at(&mut head, 0)
        .map_err(|e| io("reading", path, e))?;
    if &head[..8] != MAGIC {
        return Err(damaged(path, "not a run file"));
    }
    let word = |at: usize| u64::from_le_bytes(head[at..at + 8].try_into().unwrap_or([0; 8]));
    let (count, payload_at, check) = (word(8), word(16), word(24));
    if payload_at < HEADER + count.saturating_mul(KEY) {
        return Err(damaged(path, "header"));
    }
    Ok((count, payload_at, check))
}

impl Run {
    pub(crate) fn open(path: PathBuf) -> Result<Self> {
        let file = File::open(&path).map_err(|e| io("opening", &path, e))?;
        let (count, _, _) = read_header(&path, &file)?;
        Ok(Self { path, file, count })
    }

    fn key(&self, i: u64) -> Result<([u8; 12], i64, u64)> {
        let mut k = [0u8; KEY as usize];
        self.file
            .read_exact_at(&mut k, HEADER + i * KEY)
            .map_err(|e| io("reading", &self.path, e))?;
        Ok(parse_key(&k))
    }

    /// The newest `limit` entries of `person` in this run, added to `out` with their seqs.
    pub(crate) fn lookup(
        &self,
        person: &[u8; 12],
        limit: usize,
        out: &mut Vec<(i64, AccessEntry)>,
    ) -> Result<()> {
        // First key not below `person`, then first key above it.
        let bound = |above: bool| -> Result<u64> {
            let (mut lo, mut hi) = (0, self.count);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                let (p, _, _) = self.key(mid)?;
                if p < *person || (above && p == *person) {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            Ok(lo)
        };
        let start = bound(false)?;
        if start == self.count || self.key(start)?.0 != *person {
            return Ok(());
        }
        let end = bound(true)?;
        for i in end.saturating_sub(limit as u64).max(start)..end {
            let (_, seq, offset) = self.key(i)?;
            let mut head = [0u8; RECORD_HEAD];
            self.file
                .read_exact_at(&mut head, offset)
                .map_err(|e| io("reading", &self.path, e))?;
            let (len, check) =
                record_head(&head).ok_or_else(|| damaged(&self.path, "record length"))?;
            let mut payload = vec![0u8; len];
            self.file
                .read_exact_at(&mut payload, offset + RECORD_HEAD as u64)
                .map_err(|e| io("reading", &self.path, e))?;
            let entry = (fnv1a(&payload) == check)
                .then(|| decode(&payload))
                .flatten()
                .filter(|(s, e)| *s == seq && e.person.as_str().as_bytes() == person)
                .ok_or_else(|| damaged(&self.path, "record"))?;
            out.push(entry);
        }
        Ok(())
    }
}

/// Reads a run from the start, entry by entry, into one buffer it reuses.
///
/// It checks the run's structure (the key area's check, each key's record offset, each record's
/// length) but not each record's own check: a merge copies records whole, check included, so a
/// damaged record stays detectable by every later lookup, and the merge does not pay for hashing
/// every record it moves.
pub(crate) struct RunReader {
    path: PathBuf,
    keys: BufReader<File>,
    records: BufReader<File>,
    count: u64,
    read: u64,
    offset: u64,
    check: Fnv,
    expected_check: u64,
    /// The current entry's person and seq (after a successful [`Self::advance`]).
    person: [u8; 12],
    seq: i64,
    /// The current entry's whole journal record (head and payload).
    record: Vec<u8>,
}

impl RunReader {
    pub(crate) fn open(path: PathBuf) -> Result<Self> {
        let file = File::open(&path).map_err(|e| io("opening", &path, e))?;
        let (count, payload_at, expected_check) = read_header(&path, &file)?;
        let mut second = File::open(&path).map_err(|e| io("opening", &path, e))?;
        second
            .seek(SeekFrom::Start(payload_at))
            .map_err(|e| io("seeking in", &path, e))?;
        let mut keys = BufReader::with_capacity(1 << 16, file);
        keys.seek(SeekFrom::Start(HEADER))
            .map_err(|e| io("seeking in", &path, e))?;
        Ok(Self {
            path,
            keys,
            records: BufReader::with_capacity(1 << 16, second),
            count,
            read: 0,
            offset: payload_at,
            check: Fnv::new(),
            expected_check,
            person: [0; 12],
            seq: 0,
            record: Vec::with_capacity(256),
        })
    }

    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// Moves to the next entry; `false` after the last (when the key area's check is verified).
    pub(crate) fn advance(&mut self) -> Result<bool> {
        if self.read == self.count {
            if self.check.sum() != self.expected_check {
                return Err(damaged(&self.path, "key check"));
            }
            return Ok(false);
        }
        let mut k = [0u8; KEY as usize];
        self.keys
            .read_exact(&mut k)
            .map_err(|e| io("reading", &self.path, e))?;
        self.check.feed(&k);
        let (person, seq, offset) = parse_key(&k);
        if offset != self.offset {
            return Err(damaged(&self.path, "record offset"));
        }
        let mut head = [0u8; RECORD_HEAD];
        self.records
            .read_exact(&mut head)
            .map_err(|e| io("reading", &self.path, e))?;
        let (len, _) = record_head(&head).ok_or_else(|| damaged(&self.path, "record length"))?;
        self.record.clear();
        self.record.extend_from_slice(&head);
        self.record.resize(RECORD_HEAD + len, 0);
        self.records
            .read_exact(&mut self.record[RECORD_HEAD..])
            .map_err(|e| io("reading", &self.path, e))?;
        self.offset += self.record.len() as u64;
        self.read += 1;
        self.person = person;
        self.seq = seq;
        Ok(true)
    }
}

/// Merges runs into run `id` of `dir`, keeping one entry per (person, seq) key; answers the
/// number of entries written and the highest seq.
pub(crate) fn merge(dir: &Path, id: i64, inputs: Vec<PathBuf>) -> Result<(u64, i64)> {
    let mut readers = inputs
        .into_iter()
        .map(RunReader::open)
        .collect::<Result<Vec<_>>>()?;
    let room: u64 = readers.iter().map(RunReader::count).sum();
    // Readers standing on an entry; a reader is dropped from the merge once it is used up.
    let mut live = Vec::with_capacity(readers.len());
    for (i, r) in readers.iter_mut().enumerate() {
        if r.advance()? {
            live.push(i);
        }
    }
    let mut writer = RunWriter::create(dir, id, room)?;
    let mut max_seq = 0i64;
    let mut last: Option<([u8; 12], i64)> = None;
    while let Some(at) = (0..live.len()).min_by_key(|&j| {
        let r = &readers[live[j]];
        (r.person, r.seq)
    }) {
        let r = &mut readers[live[at]];
        let key = (r.person, r.seq);
        // An entry is indexed once, so a key never repeats; should one anyway, it is the same
        // journal record and is kept once.
        if last != Some(key) {
            last = Some(key);
            max_seq = max_seq.max(key.1);
            writer.push(&key.0, key.1, &r.record)?;
        }
        if !r.advance()? {
            live.swap_remove(at);
        }
    }
    let written = writer.written;
    writer.finish()?;
    Ok((written, max_seq))
}
