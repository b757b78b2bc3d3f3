//! Where each person's exchanges sit in the log (chỉ mục tra cứu theo công dân), so the
//! citizen's tracker reads that person's records instead of the whole log.
//!
//! The index is derived data beside the segments; the log stays the evidence. It has three
//! parts:
//! - the open segment's entries, in memory, added by [`crate::audit::AuditLog`] once a group of
//!   records is durable;
//! - for each closed segment, a file `segment-<n>.idx` of (person key, frame offset) pairs
//!   sorted by key, written by a thread of its own when the log moves on to the next segment
//!   (until then the closed segment's entries stay in memory);
//! - for a segment whose file is missing, damaged or older than the segment (a crash, an older
//!   version), a full read of that segment, while the same thread writes its file again.
//!
//! So an answer never depends on the index files being there or right: a record the files
//! miss is found by reading the segment, and every record found through them is read back from
//! the segment and kept only if it names the person.
//!
//! The file (all integers little-endian):
//!
//! ```text
//! header   8 magic "DCTRKIX1", segment number, segment length in bytes, entries, blocks,
//!          check (FNV-1a of the header's first 40 bytes and the fences)        48 bytes
//! blocks   up to 256 entries of (key u64, offset u32), then the block's FNV-1a u64
//! fences   the first key of each block                                          8 bytes each
//! ```
//!
//! Opening reads the header and the fences only; a lookup reads the blocks that may hold the
//! key (usually one) with a single positioned read and checks their sums. A person key is the
//! 12-digit personal ID as a number; anything else is hashed into the range above every ID.

use dancu_exchange::log::record::LogEntry;
use rustc_hash::FxHashMap;
use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

const MAGIC: &[u8; 8] = b"DCTRKIX1";
const HEADER: usize = 48;
/// Entries per block: a lookup reads about 3 KB.
const BLOCK: usize = 256;
const ENTRY: usize = 12;

/// The index file of segment `number`.
pub fn index_file_name(number: u64) -> String {
    format!("segment-{number:020}.idx")
}

/// The name an index file is written under before it is renamed into place.
fn temp_index_file_name(number: u64) -> String {
    format!("{}.{}.tmp", index_file_name(number), std::process::id())
}

/// Whether `name` is one of [`temp_index_file_name`]'s (of any process).
fn is_temp_index_file_name(name: &str) -> bool {
    name.starts_with("segment-") && name.contains(".idx.") && name.ends_with(".tmp")
}

fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in parts.iter().flat_map(|p| p.iter()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The index key of a person: the personal ID's 12 digits as a number, or a hash with the top
/// bit set for anything else (never equal to an ID's key).
pub fn person_key(person: &str) -> u64 {
    if person.len() == 12 && person.bytes().all(|b| b.is_ascii_digit()) {
        person
            .bytes()
            .fold(0u64, |k, b| k * 10 + u64::from(b - b'0'))
    } else {
        fnv1a(&[person.as_bytes()]) | 1 << 63
    }
}

/// Frame offsets of one person in one segment, in log order (most people have one).
#[derive(Debug, Clone)]
enum Offsets {
    One(u32),
    Many(Vec<u32>),
}

impl Offsets {
    fn push(&mut self, offset: u32) {
        match self {
            Self::One(first) => *self = Self::Many(vec![*first, offset]),
            Self::Many(v) => v.push(offset),
        }
    }

    fn to_vec(&self) -> Vec<u32> {
        match self {
            Self::One(o) => vec![*o],
            Self::Many(v) => v.clone(),
        }
    }
}

type SegmentMap = FxHashMap<u64, Offsets>;

/// A closed segment's index file, opened: where its blocks start with the fences in memory.
#[derive(Debug)]
struct IndexFile {
    path: PathBuf,
    entries: u64,
    fences: Vec<u64>,
}

impl IndexFile {
    /// Opens the index of segment `number` whose file is `segment_len` bytes long; `None`
    /// when it is missing, of another segment or length, or its header or fences do not
    /// check.
    fn open(dir: &Path, number: u64, segment_len: u64) -> Option<Self> {
        let path = dir.join(index_file_name(number));
        let f = File::open(&path).ok()?;
        let mut head = [0u8; HEADER];
        f.read_exact_at(&mut head, 0).ok()?;
        let word = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&head[8 * i..8 * i + 8]);
            u64::from_le_bytes(b)
        };
        if &head[..8] != MAGIC || word(1) != number || word(2) != segment_len {
            return None;
        }
        let (entries, blocks) = (word(3), word(4));
        if blocks != entries.div_ceil(BLOCK as u64) || entries > u64::from(u32::MAX) {
            return None;
        }
        let mut raw = vec![0u8; usize::try_from(blocks).ok()? * 8];
        f.read_exact_at(&mut raw, HEADER as u64 + body_len(entries))
            .ok()?;
        if fnv1a(&[&head[..40], &raw]) != word(5) {
            return None;
        }
        let fences = raw
            .chunks_exact(8)
            .map(|c| {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                u64::from_le_bytes(b)
            })
            .collect();
        Some(Self {
            path,
            entries,
            fences,
        })
    }

    /// The offsets under `key`, in log order; `None` when a block read does not check.
    fn lookup(&self, key: u64) -> Option<Vec<u32>> {
        let hi = self.fences.partition_point(|f| *f <= key);
        if hi == 0 {
            return Some(Vec::new());
        }
        let lo = self.fences.partition_point(|f| *f < key).saturating_sub(1);
        let start = HEADER as u64 + lo as u64 * (BLOCK * ENTRY + 8) as u64;
        let end = HEADER as u64 + block_end(hi - 1, self.entries);
        let mut buf = vec![0u8; usize::try_from(end - start).ok()?];
        File::open(&self.path)
            .and_then(|f| f.read_exact_at(&mut buf, start))
            .ok()?;
        let mut out = Vec::new();
        let mut rest = buf.as_slice();
        for block in lo..hi {
            let n = block_entries(block, self.entries);
            let (body, tail) = rest.split_at_checked(n * ENTRY)?;
            let (sum, tail) = tail.split_at_checked(8)?;
            if fnv1a(&[body]).to_le_bytes() != sum {
                return None;
            }
            for e in body.chunks_exact(ENTRY) {
                let (k, o) = e.split_at(8);
                if k == key.to_le_bytes() {
                    out.push(u32::from_le_bytes([o[0], o[1], o[2], o[3]]));
                }
            }
            rest = tail;
        }
        Some(out)
    }
}

/// Bytes of the blocks of an index of `entries` entries.
fn body_len(entries: u64) -> u64 {
    entries * ENTRY as u64 + entries.div_ceil(BLOCK as u64) * 8
}

fn block_entries(block: usize, entries: u64) -> usize {
    let before = (block * BLOCK) as u64;
    entries.saturating_sub(before).min(BLOCK as u64) as usize
}

/// Where block `block` ends, from the end of the header.
fn block_end(block: usize, entries: u64) -> u64 {
    block as u64 * (BLOCK * ENTRY + 8) as u64 + (block_entries(block, entries) * ENTRY + 8) as u64
}

/// The bytes of the index of segment `number` (`segment_len` bytes) holding `pairs`, and its
/// fences.
pub(crate) fn encode_index(
    number: u64,
    segment_len: u64,
    mut pairs: Vec<(u64, u32)>,
) -> (Vec<u8>, Vec<u64>) {
    pairs.sort_unstable();
    let entries = pairs.len() as u64;
    let blocks = entries.div_ceil(BLOCK as u64);
    let mut body = Vec::with_capacity(usize::try_from(body_len(entries)).unwrap_or(0));
    let mut fences = Vec::with_capacity(pairs.len().div_ceil(BLOCK));
    for chunk in pairs.chunks(BLOCK) {
        fences.push(chunk[0].0);
        let start = body.len();
        for (k, o) in chunk {
            body.extend_from_slice(&k.to_le_bytes());
            body.extend_from_slice(&o.to_le_bytes());
        }
        let sum = fnv1a(&[&body[start..]]);
        body.extend_from_slice(&sum.to_le_bytes());
    }
    let raw_fences: Vec<u8> = fences.iter().flat_map(|f| f.to_le_bytes()).collect();
    let mut out = Vec::with_capacity(HEADER + body.len() + raw_fences.len());
    out.extend_from_slice(MAGIC);
    for w in [number, segment_len, entries, blocks] {
        out.extend_from_slice(&w.to_le_bytes());
    }
    let check = fnv1a(&[&out, &raw_fences]);
    out.extend_from_slice(&check.to_le_bytes());
    out.extend_from_slice(&body);
    out.extend_from_slice(&raw_fences);
    (out, fences)
}

/// Writes the index of segment `number` (`segment_len` bytes) holding `pairs`, through a
/// temporary file renamed into place.
fn write_index(
    dir: &Path,
    number: u64,
    segment_len: u64,
    pairs: Vec<(u64, u32)>,
) -> io::Result<IndexFile> {
    let entries = pairs.len() as u64;
    let (bytes, fences) = encode_index(number, segment_len, pairs);
    let path = dir.join(index_file_name(number));
    let tmp = dir.join(temp_index_file_name(number));
    File::create(&tmp)?.write_all(&bytes)?;
    fs::rename(&tmp, &path)?;
    Ok(IndexFile {
        path,
        entries,
        fences,
    })
}

/// The (key, offset) pairs of a segment's well-formed records.
pub(crate) fn segment_pairs(bytes: &[u8]) -> Vec<(u64, u32)> {
    let mut pairs = Vec::new();
    for e in crate::audit::segment_entries(bytes) {
        if let (Some(p), Ok(offset)) = (&e.1.record.person, u32::try_from(e.0)) {
            pairs.push((person_key(p), offset));
        }
    }
    pairs
}

/// The (key, offset) pairs of a segment file's well-formed records, and its length.
fn scan_segment(path: &Path) -> io::Result<(Vec<(u64, u32)>, u64)> {
    let bytes = fs::read(path)?;
    Ok((segment_pairs(&bytes), bytes.len() as u64))
}

/// Whether the index file of segment `number` in `dir`, if the hub would use it (its header
/// names this segment at its length and its fences check), says exactly what the segment
/// holds. `false` for one that would be used and says otherwise (edited, or written wrong):
/// it would hide or misplace records in the citizen's tracker. For `dancu audit verify`.
pub fn index_matches(dir: &Path, number: u64, segment: &[u8]) -> bool {
    if IndexFile::open(dir, number, segment.len() as u64).is_none() {
        // Missing or not used: the hub reads the segment and writes the file again.
        return true;
    }
    let (want, _) = encode_index(number, segment.len() as u64, segment_pairs(segment));
    fs::read(dir.join(index_file_name(number))).is_ok_and(|have| have == want)
}

/// What the index knows of each segment.
#[derive(Debug, Default)]
struct State {
    /// The segment being written and its entries so far.
    open: Option<(u64, SegmentMap)>,
    /// Closed segments whose index file is being written.
    closing: BTreeMap<u64, Arc<SegmentMap>>,
    /// Closed segments with an index file.
    files: BTreeMap<u64, Arc<IndexFile>>,
    /// Segments handed to the index thread and not finished.
    queued: HashSet<u64>,
    /// How far the log is known durable: every record of the segments before `.0`, and those
    /// of segment `.0` whose frame starts at or before `.1`.
    durable: (u64, Option<u64>),
}

/// A job of the index thread.
enum Job {
    /// Write the index of a segment that just closed, from its entries in memory.
    Closed(u64, Arc<SegmentMap>),
    /// Read a segment and write its index.
    Rebuild(u64),
}

/// The per-person index of one log directory. See the module doc.
#[derive(Debug)]
pub struct TrackerIndex {
    dir: PathBuf,
    state: Arc<Mutex<State>>,
    jobs: Mutex<Option<std::sync::mpsc::Sender<Job>>>,
    stop: Arc<AtomicBool>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl TrackerIndex {
    /// The index of the log in `dir`, whose segment files are all closed (the writer starts a
    /// new one): opens their index files and queues a rebuild of those that do not check.
    pub fn open(dir: &Path) -> io::Result<Self> {
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let index = Self {
            dir: dir.to_owned(),
            state: state.clone(),
            jobs: Mutex::new(None),
            stop: stop.clone(),
        };
        let thread_dir = dir.to_owned();
        let started = std::thread::Builder::new()
            .name("tracker-index".into())
            .spawn(move || run_jobs(&thread_dir, &state, &rx, &stop))
            .is_ok();
        if started {
            *index
                .jobs
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(tx);
        }
        // Index files half-written when a process stopped: never renamed into place.
        for entry in fs::read_dir(dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if is_temp_index_file_name(&name) {
                let _ = fs::remove_file(dir.join(name.as_ref()));
            }
        }
        let segments = crate::audit::list_segments(dir)?;
        lock(&index.state).durable = (segments.last().map_or(0, |(n, _)| n + 1), None);
        for (n, path) in segments {
            let len = fs::metadata(&path)?.len();
            match IndexFile::open(dir, n, len) {
                Some(f) => {
                    lock(&index.state).files.insert(n, Arc::new(f));
                }
                None => index.queue_rebuild(n),
            }
        }
        Ok(index)
    }

    fn send(&self, job: Job) -> bool {
        self.jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .is_some_and(|tx| tx.send(job).is_ok())
    }

    fn queue_rebuild(&self, n: u64) {
        if lock(&self.state).queued.insert(n) && !self.send(Job::Rebuild(n)) {
            lock(&self.state).queued.remove(&n);
        }
    }

    /// Adds durable records: `(person, segment, frame offset)` in log order. A record in a
    /// later segment than the open one closes it (its index file is written in the
    /// background).
    pub fn note<'a>(&self, records: impl IntoIterator<Item = (Option<&'a str>, u64, u64)>) {
        let mut closed = Vec::new();
        {
            let mut st = lock(&self.state);
            for (person, segment, offset) in records {
                if st.open.as_ref().is_none_or(|(n, _)| *n != segment) {
                    if let Some((n, map)) = st.open.take() {
                        let map = Arc::new(map);
                        st.closing.insert(n, map.clone());
                        closed.push((n, map));
                    }
                    st.open = Some((segment, SegmentMap::default()));
                }
                st.durable = (segment, Some(offset));
                let (Some(p), Ok(offset)) = (person, u32::try_from(offset)) else {
                    continue;
                };
                if let Some((_, map)) = st.open.as_mut() {
                    map.entry(person_key(p))
                        .and_modify(|o| o.push(offset))
                        .or_insert(Offsets::One(offset));
                }
            }
        }
        for (n, map) in closed {
            if !self.send(Job::Closed(n, map)) {
                // No index thread: the segment is read whole when asked for.
                lock(&self.state).closing.remove(&n);
            }
        }
    }

    /// The records of `person` in the live log, oldest first, each read back from its
    /// segment. Records that no longer read (a segment archived meanwhile) are left out.
    pub fn entries_of(&self, person: &str) -> io::Result<Vec<LogEntry>> {
        self.newest_of(person, usize::MAX, &|_| true)
    }

    /// The newest `limit` records of `person` that `keep` lets through, oldest first: the
    /// segments are read from the newest back and each from its end, so a person with many
    /// records costs no more than `limit` reads.
    pub fn newest_of(
        &self,
        person: &str,
        limit: usize,
        keep: &dyn Fn(&LogEntry) -> bool,
    ) -> io::Result<Vec<LogEntry>> {
        let key = person_key(person);
        let segments = crate::audit::list_segments(&self.dir)?;
        enum Source {
            Offsets(Vec<u32>),
            File(Arc<IndexFile>),
            Scan,
        }
        let plan: Vec<(u64, PathBuf, Source)> = {
            let st = lock(&self.state);
            segments
                .into_iter()
                .map(|(n, path)| {
                    let source = if let Some((_, map)) = st.open.as_ref().filter(|(o, _)| *o == n) {
                        Source::Offsets(map.get(&key).map(Offsets::to_vec).unwrap_or_default())
                    } else if let Some(map) = st.closing.get(&n) {
                        Source::Offsets(map.get(&key).map(Offsets::to_vec).unwrap_or_default())
                    } else if let Some(f) = st.files.get(&n) {
                        Source::File(f.clone())
                    } else {
                        Source::Scan
                    };
                    (n, path, source)
                })
                .collect()
        };
        // Newest first while reading; turned round at the end.
        let mut out = Vec::new();
        for (n, path, source) in plan.into_iter().rev() {
            if out.len() >= limit {
                break;
            }
            // `None`: no sound index (yet), so the segment is read whole.
            let offsets = match source {
                Source::Offsets(o) => Some(o),
                Source::File(f) => {
                    let found = f.lookup(key);
                    if found.is_none() {
                        // A damaged block: forget the file and write it again.
                        lock(&self.state).files.remove(&n);
                        self.queue_rebuild(n);
                    }
                    found
                }
                Source::Scan => {
                    self.queue_rebuild(n);
                    None
                }
            };
            let Some(offsets) = offsets else {
                let found = scan_person(&path, person)?;
                out.extend(found.into_iter().rev().filter(|e| keep(e)));
                out.truncate(limit);
                continue;
            };
            if offsets.is_empty() {
                continue;
            }
            let file = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for o in offsets.into_iter().rev() {
                if out.len() >= limit {
                    break;
                }
                if let Some(e) = read_entry_at(&file, u64::from(o))
                    && e.record.person.as_deref() == Some(person)
                    && keep(&e)
                {
                    out.push(e);
                }
            }
        }
        out.reverse();
        Ok(out)
    }

    /// How far the log is durable: every record of the segments before `.0`, and those of
    /// segment `.0` whose frame starts at or before `.1` (none of it for `None`).
    pub fn durable(&self) -> (u64, Option<u64>) {
        lock(&self.state).durable
    }

    /// Closed segments with a checked index file, and segments still waiting for one.
    pub fn status(&self) -> (usize, usize) {
        let st = lock(&self.state);
        (st.files.len(), st.queued.len() + st.closing.len())
    }

    /// Waits until no index file is being written (for tests and tools).
    pub fn settle(&self) {
        while {
            let st = lock(&self.state);
            !st.queued.is_empty() || !st.closing.is_empty()
        } {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
}

impl Drop for TrackerIndex {
    fn drop(&mut self) {
        // Jobs not started are left: a missing index file is rebuilt at the next open.
        self.stop.store(true, Ordering::Relaxed);
        self.jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
    }
}

/// The index thread: writes the index file of each closed or unindexed segment.
fn run_jobs(
    dir: &Path,
    state: &Mutex<State>,
    rx: &std::sync::mpsc::Receiver<Job>,
    stop: &AtomicBool,
) {
    while let Ok(job) = rx.recv() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let path = dir.join(crate::audit::segment_file_name(match &job {
            Job::Closed(n, _) | Job::Rebuild(n) => *n,
        }));
        let written = match job {
            Job::Closed(n, map) => {
                let pairs = map
                    .iter()
                    .flat_map(|(k, o)| o.to_vec().into_iter().map(move |o| (*k, o)))
                    .collect();
                let done = fs::metadata(&path)
                    .and_then(|m| write_index(dir, n, m.len(), pairs))
                    .ok();
                let mut st = lock(state);
                st.closing.remove(&n);
                (n, done)
            }
            Job::Rebuild(n) => {
                let done = scan_segment(&path)
                    .and_then(|(pairs, len)| write_index(dir, n, len, pairs))
                    .ok();
                lock(state).queued.remove(&n);
                (n, done)
            }
        };
        if let (n, Some(f)) = written {
            lock(state).files.insert(n, Arc::new(f));
        }
    }
}

/// The record whose frame starts at `offset` of `file`, if it reads and decodes.
fn read_entry_at(file: &File, offset: u64) -> Option<LogEntry> {
    let mut len = [0u8; 4];
    file.read_exact_at(&mut len, offset).ok()?;
    let len = u32::from_be_bytes(len) as usize;
    if len == 0 || len > dancu_exchange::log::record::MAX_RECORD_BYTES {
        return None;
    }
    let mut record = vec![0u8; len];
    file.read_exact_at(&mut record, offset + 4).ok()?;
    LogEntry::decode(&record).ok()
}

/// The records of `person` in the segment at `path`, read whole (no index file yet).
fn scan_person(path: &Path, person: &str) -> io::Result<Vec<LogEntry>> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(crate::audit::segment_entries(&bytes)
        .into_iter()
        .map(|(_, e)| e)
        .filter(|e| e.record.person.as_deref() == Some(person))
        .collect())
}
