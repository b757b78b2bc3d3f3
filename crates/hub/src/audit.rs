//! The exchange log on disk (nhật ký trao đổi): segment files and signed checkpoints in one
//! directory, written with the format, hash chain and Merkle tree of
//! [`dancu_exchange::log`], and verified from the files alone.
//!
//! Layout of the directory (by default `<data dir>/audit`):
//!
//! ```text
//! segment-00000000000000000000.log   segments, numbered from 0, never appended to after a restart
//! checkpoints.bin                     signed tree heads, fixed 112-byte records, append-only
//! checkpoint-key.hex                  the ES256 private scalar that signs checkpoints (mode 0600)
//! checkpoint-key.jwk.json             its public key as a JWK, for `dancu audit verify`
//! archive/                            segments moved out by [`archive`] (retention)
//! ```
//!
//! Failure rules:
//! - a write that fails (disk full, I/O error) refuses that exchange and stops the writer; the
//!   next exchange first recovers the log from disk (a torn last frame is cut off and kept
//!   beside the segment as `*.torn`) and continues in a new segment, so a record is either
//!   whole in the log or not there;
//! - a byte budget ([`AuditSettings::max_live_bytes`]) refuses an exchange before anything is
//!   written when the log would grow past it;
//! - on start, a last segment that does not verify for any reason other than a torn tail is
//!   not continued: [`AuditLog::open`] fails and `dancu audit verify` says where.
//!
//! The checkpoint key lives beside the log, so someone who can rewrite the files can also
//! re-sign them: keep a copy of the public key elsewhere and pass it to `dancu audit verify
//! --trusted-key` to detect that too.

use chrono::{DateTime, Utc};
use dancu_eid::oidc::jws::Jwk;
use dancu_exchange::log::checkpoint::{CHECKPOINT_BYTES, Checkpoint, CheckpointPolicy};
use dancu_exchange::log::record::{AuditRecord, LogEntry, RecordError};
use dancu_exchange::log::retention::{RetentionPlan, RetentionPolicy, SegmentInfo, plan_retention};
use dancu_exchange::log::segment::{
    Appended, FrameError, FrameReader, HeaderError, LogConfig, LogError, LogState, LogWriter,
    SegmentHeader, SegmentSink, read_segment,
};
use dancu_exchange::log::verify::{VerifyReport, verify};
use p256::ecdsa::{SigningKey, VerifyingKey};
use p256::elliptic_curve::Generate;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::tracker_index::TrackerIndex;

/// File holding the signed checkpoints.
pub const CHECKPOINTS_FILE: &str = "checkpoints.bin";
/// File holding the checkpoint signing key (hex of the private scalar).
pub const KEY_FILE: &str = "checkpoint-key.hex";
/// File holding the checkpoint public key (JWK).
pub const PUBLIC_KEY_FILE: &str = "checkpoint-key.jwk.json";
/// Largest segment file `verify` reads.
const MAX_SEGMENT_READ: u64 = 1 << 30;

/// The name of segment `number`.
pub fn segment_file_name(number: u64) -> String {
    format!("segment-{number:020}.log")
}

fn segment_number(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("segment-")?.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The segment files of `dir`, by number.
pub fn list_segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(n) = entry.file_name().to_str().and_then(segment_number) {
            out.push((n, entry.path()));
        }
    }
    out.sort_unstable_by_key(|(n, _)| *n);
    Ok(out)
}

/// How the log is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditSettings {
    /// A segment rolls before it would grow past this many bytes.
    pub segment_max_bytes: u64,
    /// `fsync` every record before the exchange is answered (otherwise records reach the
    /// operating system at once and the disk at the next checkpoint or segment roll).
    pub fsync_each_record: bool,
    /// When to sign checkpoints.
    pub checkpoint: CheckpointPolicy,
    /// Most bytes the live segments may take; an exchange that would go past is refused.
    pub max_live_bytes: Option<u64>,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            segment_max_bytes: 64 * 1024 * 1024,
            fsync_each_record: true,
            checkpoint: CheckpointPolicy::default(),
            max_live_bytes: None,
        }
    }
}

/// Why the log refused or could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: io::Error,
    },
    /// The log on disk does not verify where it must be continued.
    #[error("the exchange log is damaged: {0}; run `dancu audit verify`")]
    Damaged(String),
    /// The byte budget would be exceeded; nothing was written.
    #[error("the exchange log is full: {needed} bytes needed, {available} left")]
    Full {
        /// Bytes the record needs.
        needed: u64,
        /// Bytes left in the budget.
        available: u64,
    },
    /// The record cannot be encoded (a text over its bound).
    #[error("record refused: {0}")]
    Record(#[from] RecordError),
    /// The checkpoint key file is unusable.
    #[error("checkpoint key: {0}")]
    Key(String),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> AuditError {
    let what = what.into();
    move |source| AuditError::Io { what, source }
}

/// Creates segment files (create-new, so nothing is ever overwritten).
#[derive(Debug)]
struct FileSink {
    dir: PathBuf,
    /// Numbers of the segments this sink created, oldest first (to undo a failed group).
    created: Vec<u64>,
    /// Whether the segments hold a group's records in memory until its sync (see
    /// [`SegmentFile`]).
    buffered: bool,
}

/// One open segment file; `flush` writes what it holds, then `fsync`s.
///
/// When every group ends with a sync (the default), the records of a group are gathered here
/// and reach the file in one `write` at the sync, rather than one system call each. Nothing is
/// lost by it: a record is answered only after the sync. Dropped without a flush (a failed
/// group, whose records the log then cuts off), it writes nothing. Without a sync per group
/// the records go to the file as they come, so that a killed process loses none that were
/// answered.
#[derive(Debug)]
struct SegmentFile {
    file: File,
    pending: Vec<u8>,
    buffered: bool,
}

/// Held records are written early past this many bytes.
const SEGMENT_BUFFER: usize = 1 << 20;

impl Write for SegmentFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.buffered {
            return self.file.write(buf);
        }
        self.pending.extend_from_slice(buf);
        if self.pending.len() >= SEGMENT_BUFFER {
            self.file.write_all(&self.pending)?;
            self.pending.clear();
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            self.file.write_all(&self.pending)?;
            self.pending.clear();
        }
        self.file.sync_data()
    }
}

impl SegmentSink for FileSink {
    type Segment = SegmentFile;
    fn create(&mut self, number: u64) -> io::Result<SegmentFile> {
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(self.dir.join(segment_file_name(number)))?;
        // Make the new name durable with the file.
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        self.created.push(number);
        Ok(SegmentFile {
            file: f,
            pending: Vec::new(),
            buffered: self.buffered,
        })
    }
}

/// Loads a P-256 signing key from `dir/key_file`, making one (with its public JWK in
/// `dir/public_file`) the first time.
pub fn load_or_create_key(
    dir: &Path,
    key_file: &str,
    public_file: &str,
) -> Result<SigningKey, AuditError> {
    fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
    let path = dir.join(key_file);
    match fs::read_to_string(&path) {
        Ok(text) => {
            let bytes = hex::decode(text.trim())
                .map_err(|_| AuditError::Key(format!("{} is not hex", path.display())))?;
            SigningKey::from_slice(&bytes)
                .map_err(|_| AuditError::Key(format!("{} is not a P-256 key", path.display())))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let key = SigningKey::generate_from_rng(&mut rand::rng());
            let mut opts = OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let mut f = opts
                .open(&path)
                .map_err(io_err("creating the checkpoint key"))?;
            f.write_all(hex::encode(key.to_bytes()).as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(io_err("writing the checkpoint key"))?;
            let jwk = serde_json::to_string_pretty(&public_jwk(key.verifying_key()))
                .map_err(|e| AuditError::Key(e.to_string()))?;
            fs::write(dir.join(public_file), jwk).map_err(io_err("writing a public key"))?;
            Ok(key)
        }
        Err(e) => Err(io_err("reading the checkpoint key")(e)),
    }
}

/// The JWK form of a checkpoint public key.
pub fn public_jwk(key: &VerifyingKey) -> Jwk {
    let mut jwk = Jwk::from_p256(key);
    jwk.alg = Some("ES256".into());
    jwk.use_ = Some("sig".into());
    jwk
}

/// Reads a P-256 public key from a JWK file.
pub fn read_public_key(path: &Path) -> Result<VerifyingKey, AuditError> {
    let text = fs::read_to_string(path).map_err(io_err(format!("reading {}", path.display())))?;
    let jwk: Jwk = serde_json::from_str(&text)
        .map_err(|e| AuditError::Key(format!("{}: {e}", path.display())))?;
    let bad = || AuditError::Key(format!("{} is not a P-256 public JWK", path.display()));
    if jwk.kty != "EC" || jwk.crv.as_deref() != Some("P-256") || jwk.d.is_some() {
        return Err(bad());
    }
    let coord = |c: &Option<String>| {
        c.as_deref()
            .and_then(base64url_decode)
            .filter(|v| v.len() == 32)
    };
    let (Some(x), Some(y)) = (coord(&jwk.x), coord(&jwk.y)) else {
        return Err(bad());
    };
    let mut sec1 = Vec::with_capacity(65);
    sec1.push(0x04);
    sec1.extend(x);
    sec1.extend(y);
    VerifyingKey::from_sec1_bytes(&sec1).map_err(|_| bad())
}

/// Unpadded base64url, strict enough for key coordinates.
pub fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    (acc == 0).then_some(out)
}

/// Reads the checkpoints file: the whole records, and how many trailing bytes do not make one.
fn read_checkpoints(path: &Path) -> Result<(Vec<Checkpoint>, usize), AuditError> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut bytes)
                .map_err(io_err("reading the checkpoints"))?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("opening the checkpoints")(e)),
    }
    let chunks = bytes.chunks_exact(CHECKPOINT_BYTES);
    let tail = chunks.remainder().len();
    let mut out = Vec::new();
    for c in chunks {
        match Checkpoint::from_bytes(c) {
            Some(cp) => out.push(cp),
            None => {
                return Err(AuditError::Damaged(
                    "a checkpoint record does not parse".into(),
                ));
            }
        }
    }
    Ok((out, tail))
}

/// The append side of the log: one per data directory, behind a lock in the service.
#[derive(Debug)]
pub struct AuditLog {
    dir: PathBuf,
    settings: AuditSettings,
    writer: Option<LogWriter<FileSink>>,
    key: SigningKey,
    checkpoints: File,
    last_checkpoint: Option<Checkpoint>,
    /// Bytes of a failed group still to be cut off before the log continues.
    pending_undo: Option<Undo>,
    /// Where each person's records are, for the citizen's tracker.
    tracker: Arc<TrackerIndex>,
}

/// How to take a failed group's bytes back out of the files: cut the segment that was open
/// when the group started back to its length then, and remove the segments the group
/// created. The bytes taken out are kept aside as `*.refused` (they were never acknowledged).
#[derive(Debug, Clone)]
struct Undo {
    cut: Option<(PathBuf, u64)>,
    remove: Vec<PathBuf>,
}

impl Undo {
    fn is_empty(&self) -> bool {
        self.cut.is_none() && self.remove.is_empty()
    }

    fn apply(&self) -> Result<(), AuditError> {
        for path in self.remove.iter().rev() {
            match fs::read(path) {
                Ok(bytes) => {
                    keep_aside(path, "refused", &bytes)?;
                    fs::remove_file(path)
                        .map_err(io_err(format!("removing {}", path.display())))?;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(format!("reading {}", path.display()))(e)),
            }
        }
        if let Some((path, len)) = &self.cut {
            let bytes = fs::read(path).map_err(io_err(format!("reading {}", path.display())))?;
            if bytes.len() as u64 > *len {
                keep_aside(path, "refused", &bytes[*len as usize..])?;
                let f = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(io_err(format!("opening {}", path.display())))?;
                f.set_len(*len)
                    .and_then(|()| f.sync_all())
                    .map_err(io_err(format!("cutting {}", path.display())))?;
            }
        }
        if let Some(dir) = self
            .cut
            .as_ref()
            .map(|(p, _)| p)
            .or(self.remove.first())
            .and_then(|p| p.parent())
        {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io_err(format!("syncing {}", dir.display())))?;
        }
        Ok(())
    }
}

/// A copy of an error for each caller of a failed group (I/O errors are not `Clone`).
pub fn copy_error(e: &AuditError) -> AuditError {
    match e {
        AuditError::Io { what, source } => AuditError::Io {
            what: what.clone(),
            source: io::Error::new(source.kind(), source.to_string()),
        },
        AuditError::Damaged(s) => AuditError::Damaged(s.clone()),
        AuditError::Full { needed, available } => AuditError::Full {
            needed: *needed,
            available: *available,
        },
        AuditError::Record(r) => AuditError::Record(r.clone()),
        AuditError::Key(s) => AuditError::Key(s.clone()),
    }
}

impl AuditLog {
    /// Opens (or starts) the log in `dir`, recovering from a torn last write.
    pub fn open(dir: &Path, settings: AuditSettings) -> Result<Self, AuditError> {
        fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
        let key = load_or_create_key(dir, KEY_FILE, PUBLIC_KEY_FILE)?;
        let cp_path = dir.join(CHECKPOINTS_FILE);
        let (cps, tail) = read_checkpoints(&cp_path)?;
        let checkpoints = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&cp_path)
            .map_err(io_err("opening the checkpoints"))?;
        if tail > 0 {
            // A checkpoint write torn by a crash: drop the partial record.
            let len = (cps.len() * CHECKPOINT_BYTES) as u64;
            checkpoints
                .set_len(len)
                .and_then(|()| checkpoints.sync_all())
                .map_err(io_err("cutting a torn checkpoint"))?;
        }
        let last_checkpoint = cps
            .into_iter()
            .rev()
            .find(|c| c.verify_signature(key.verifying_key()));
        // Every segment is closed now (the writer continues in a new one), so the tracker's
        // index can take them as they are.
        let writer = new_writer(dir, settings)?;
        let tracker = TrackerIndex::open(dir).map_err(io_err("opening the tracker index"))?;
        Ok(Self {
            dir: dir.to_owned(),
            settings,
            writer: Some(writer),
            key,
            checkpoints,
            last_checkpoint,
            pending_undo: None,
            tracker: Arc::new(tracker),
        })
    }

    /// The per-person index of this log, for the citizen's tracker.
    pub fn tracker(&self) -> Arc<TrackerIndex> {
        self.tracker.clone()
    }

    /// Rebuilds the writer from the files: recovers the state from the newest segment and
    /// resumes in a new one.
    fn reopen(&mut self) -> Result<(), AuditError> {
        self.writer = None;
        if let Some(undo) = &self.pending_undo {
            undo.apply()?;
            self.pending_undo = None;
        }
        self.writer = Some(new_writer(&self.dir, self.settings)?);
        Ok(())
    }

    /// Appends one exchange; signs a checkpoint when one is due. An error means the record
    /// is not in the log and the exchange must be refused.
    pub fn append(
        &mut self,
        record: &AuditRecord,
        now: DateTime<Utc>,
    ) -> Result<Appended, AuditError> {
        self.append_group(std::slice::from_ref(record), now)
            .pop()
            .unwrap_or_else(|| Err(AuditError::Damaged("no result".into())))
    }

    /// Appends the records of several exchanges in order and makes them durable with one
    /// disk sync (group commit); signs a checkpoint when one is due. Returns one result per
    /// record, in order. A record refused on its own (too large, over the byte budget) fails
    /// alone, before anything of it is written. A write or sync failure fails every record of
    /// the group: their bytes are cut off again (kept aside as `*.refused`), so the log holds
    /// none of them, and the writer is rebuilt from the files at the next append.
    pub fn append_group(
        &mut self,
        records: &[AuditRecord],
        now: DateTime<Utc>,
    ) -> Vec<Result<Appended, AuditError>> {
        let fail_all = |e: AuditError| records.iter().map(|_| Err(copy_error(&e))).collect();
        if self.writer.is_none()
            && let Err(e) = self.reopen()
        {
            return fail_all(e);
        }
        let sync = self.settings.fsync_each_record;
        let Some(w) = self.writer.as_mut() else {
            return fail_all(AuditError::Damaged("no writer".into()));
        };
        let (start, created_before) = (w.position(), w.sink().created.len());
        let mut out = Vec::with_capacity(records.len());
        let mut failure = None;
        for r in records {
            match w.append_unflushed(r) {
                Ok(a) => out.push(Ok(a)),
                Err(LogError::Record(e)) => out.push(Err(e.into())),
                Err(LogError::Full { needed, available }) => {
                    out.push(Err(AuditError::Full { needed, available }));
                }
                Err(LogError::Io(e)) => {
                    failure = Some(io_err("writing the exchange log")(e));
                    break;
                }
                Err(LogError::Poisoned) => {
                    failure = Some(AuditError::Damaged("the writer stopped".into()));
                    break;
                }
            }
        }
        let wrote = out.iter().any(Result::is_ok);
        if failure.is_none()
            && sync
            && wrote
            && let Err(e) = w.flush()
        {
            failure = Some(match e {
                LogError::Io(e) => io_err("syncing the exchange log")(e),
                e => AuditError::Damaged(e.to_string()),
            });
        }
        if let Some(e) = failure {
            let undo = Undo {
                cut: start.map(|(n, len)| (self.dir.join(segment_file_name(n)), len)),
                remove: w.sink().created[created_before..]
                    .iter()
                    .map(|n| self.dir.join(segment_file_name(*n)))
                    .collect(),
            };
            // Close the files before cutting them.
            self.writer = None;
            if !undo.is_empty() && undo.apply().is_err() {
                // Tried again before the log continues; until then every exchange is refused.
                self.pending_undo = Some(undo);
            }
            return fail_all(e);
        }
        self.tracker
            .note(records.iter().zip(&out).filter_map(|(r, a)| {
                let a = a.as_ref().ok()?;
                Some((r.person.as_deref(), a.segment, a.offset))
            }));
        let last = out
            .iter()
            .rev()
            .find_map(|r| r.as_ref().ok().map(|a| a.seq));
        if let Some(seq) = last
            && self
                .settings
                .checkpoint
                .due(seq + 1, self.last_checkpoint.as_ref(), now)
            && self.checkpoint_now(now).is_err()
        {
            // The records are in the log; a failed checkpoint is retried at the next append
            // (the writer is rebuilt, so a failing disk also stops further exchanges).
            self.writer = None;
        }
        out
    }

    /// Appends several exchanges with one disk sync; signs a checkpoint when one is due. On
    /// an error, the number of records that did reach the log is returned with it.
    pub fn append_many(
        &mut self,
        records: &[AuditRecord],
        now: DateTime<Utc>,
    ) -> Result<Vec<Appended>, (usize, AuditError)> {
        if self.writer.is_none() {
            self.reopen().map_err(|e| (0, e))?;
        }
        let Some(w) = self.writer.as_mut() else {
            return Err((0, AuditError::Damaged("no writer".into())));
        };
        let (appended, failed) = match w.append_many(records) {
            Ok(a) => (a, None),
            Err((a, e)) => (a, Some(e)),
        };
        // Records written before a failure are in the log, as the error says: index them too.
        self.tracker.note(
            records
                .iter()
                .zip(&appended)
                .map(|(r, a)| (r.person.as_deref(), a.segment, a.offset)),
        );
        let n = appended.len();
        match failed {
            None => {}
            Some(LogError::Record(e)) => return Err((n, e.into())),
            Some(LogError::Full { needed, available }) => {
                return Err((n, AuditError::Full { needed, available }));
            }
            Some(LogError::Io(e)) => {
                self.writer = None;
                return Err((n, io_err("writing the exchange log")(e)));
            }
            Some(LogError::Poisoned) => {
                self.writer = None;
                return Err((n, AuditError::Damaged("the writer stopped".into())));
            }
        }
        if let Some(last) = appended.last()
            && self
                .settings
                .checkpoint
                .due(last.seq + 1, self.last_checkpoint.as_ref(), now)
            && self.checkpoint_now(now).is_err()
        {
            self.writer = None;
        }
        Ok(appended)
    }

    /// Signs a checkpoint if the time-based cadence says so (call it from a timer).
    pub fn tick(&mut self, now: DateTime<Utc>) -> Result<Option<Checkpoint>, AuditError> {
        let size = self.size();
        if self
            .settings
            .checkpoint
            .due(size, self.last_checkpoint.as_ref(), now)
        {
            self.checkpoint_now(now)
        } else {
            Ok(None)
        }
    }

    /// Records in the log so far.
    pub fn size(&self) -> u64 {
        self.writer
            .as_ref()
            .map_or(0, |w| w.state().next_seq)
            .max(self.last_checkpoint.as_ref().map_or(0, |c| c.tree_size))
    }

    /// The last checkpoint written.
    pub fn last_checkpoint(&self) -> Option<&Checkpoint> {
        self.last_checkpoint.as_ref()
    }

    /// The checkpoint public key.
    pub fn public_key(&self) -> &VerifyingKey {
        self.key.verifying_key()
    }

    /// Signs and stores a checkpoint over every record so far (none if nothing is new).
    /// Records are synced to disk before the checkpoint that covers them is written.
    pub fn checkpoint_now(&mut self, now: DateTime<Utc>) -> Result<Option<Checkpoint>, AuditError> {
        let Some(w) = self.writer.as_mut() else {
            return Ok(None);
        };
        let covered = self.last_checkpoint.as_ref().map_or(0, |c| c.tree_size);
        if w.state().next_seq <= covered {
            return Ok(None);
        }
        if let Err(e) = w.flush() {
            return Err(AuditError::Damaged(format!("syncing the log: {e}")));
        }
        let cp = w.checkpoint(now, &self.key);
        self.checkpoints
            .write_all(&cp.to_bytes())
            .and_then(|()| self.checkpoints.sync_data())
            .map_err(io_err("writing a checkpoint"))?;
        self.last_checkpoint = Some(cp.clone());
        Ok(Some(cp))
    }
}

/// A writer continuing the log of `dir` in a new segment, after recovering it from a torn
/// last write.
fn new_writer(dir: &Path, settings: AuditSettings) -> Result<LogWriter<FileSink>, AuditError> {
    let state = recover_dir(dir)?;
    let sink = FileSink {
        dir: dir.to_owned(),
        created: Vec::new(),
        buffered: settings.fsync_each_record,
    };
    let config = LogConfig {
        segment_max_bytes: settings.segment_max_bytes,
        flush_each_append: settings.fsync_each_record,
    };
    let mut writer = match state {
        None => LogWriter::create(sink, config),
        Some(st) => LogWriter::resume(sink, config, st),
    };
    if let Some(max) = settings.max_live_bytes {
        let live = live_bytes(dir)?;
        writer.set_space_budget(Some(max.saturating_sub(live)));
    }
    Ok(writer)
}

fn live_bytes(dir: &Path) -> Result<u64, AuditError> {
    let mut n = 0;
    for (_, p) in list_segments(dir).map_err(io_err("listing segments"))? {
        n += fs::metadata(&p)
            .map_err(io_err(format!("reading {}", p.display())))?
            .len();
    }
    Ok(n)
}

/// Writes `bytes` aside into `<path>.<suffix>` (kept as evidence), without overwriting.
fn keep_aside(path: &Path, suffix: &str, bytes: &[u8]) -> Result<(), AuditError> {
    let mut aside = path.as_os_str().to_owned();
    aside.push(format!(".{suffix}"));
    let mut aside = PathBuf::from(aside);
    let mut i = 1;
    while aside.exists() {
        let mut next = path.as_os_str().to_owned();
        next.push(format!(".{suffix}.{i}"));
        aside = PathBuf::from(next);
        i += 1;
    }
    fs::write(&aside, bytes).map_err(io_err(format!("writing {}", aside.display())))
}

/// The state to continue the log of `dir` from (`None` for an empty log). Cuts a torn last
/// frame (or removes a segment whose header write was torn); refuses any other damage.
fn recover_dir(dir: &Path) -> Result<Option<LogState>, AuditError> {
    let mut segments = list_segments(dir).map_err(io_err("listing segments"))?;
    while let Some((number, path)) = segments.last().cloned() {
        let bytes = read_segment(
            File::open(&path).map_err(io_err(format!("opening {}", path.display())))?,
            MAX_SEGMENT_READ,
        )
        .map_err(io_err(format!("reading {}", path.display())))?;
        match LogState::recover(&bytes) {
            Err(HeaderError::Truncated) => {
                // Created but its header never fully written: it holds no record.
                keep_aside(&path, "torn", &bytes)?;
                fs::remove_file(&path).map_err(io_err(format!("removing {}", path.display())))?;
                segments.pop();
            }
            Err(e) => {
                return Err(AuditError::Damaged(format!(
                    "{}: {e}",
                    segment_file_name(number)
                )));
            }
            Ok((state, valid)) => {
                if state.segment != number {
                    return Err(AuditError::Damaged(format!(
                        "{} holds segment number {}",
                        segment_file_name(number),
                        state.segment
                    )));
                }
                if valid < bytes.len() {
                    let torn = matches!(
                        FrameReader::new(&bytes, valid).next(),
                        Some(Err(FrameError::Torn))
                    );
                    if !torn {
                        return Err(AuditError::Damaged(format!(
                            "{}: the record at byte {valid} does not verify",
                            segment_file_name(number)
                        )));
                    }
                    keep_aside(&path, "torn", &bytes[valid..])?;
                    let f = OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .map_err(io_err(format!("opening {}", path.display())))?;
                    f.set_len(valid as u64)
                        .and_then(|()| f.sync_all())
                        .map_err(io_err(format!(
                            "cutting the torn tail of {}",
                            path.display()
                        )))?;
                }
                return Ok(Some(state));
            }
        }
    }
    Ok(None)
}

/// What `dancu audit verify` found in a directory.
#[derive(Debug, Clone)]
pub struct DirVerification {
    /// The segment files read, in order.
    pub files: Vec<PathBuf>,
    /// The report of [`verify`].
    pub report: VerifyReport,
    /// Bytes at the end of the checkpoints file that do not make a whole checkpoint.
    pub checkpoint_tail_bytes: usize,
    /// Segments whose tracker index file the hub would use but which does not say what the
    /// segment holds (it would hide or misplace records in the citizen's tracker).
    pub index_mismatches: Vec<u64>,
}

impl DirVerification {
    /// Intact: no bad record, every checkpoint verified, no stray checkpoint bytes.
    pub fn is_intact(&self) -> bool {
        self.report.is_intact()
            && self.checkpoint_tail_bytes == 0
            && self.index_mismatches.is_empty()
    }

    /// One line naming the first bad record and its file, or saying the log is intact.
    pub fn summary(&self) -> String {
        if let Some(bad) = &self.report.first_bad {
            let file = self
                .files
                .get(bad.segment_index)
                .and_then(|p| p.file_name())
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            return format!("first bad record: {file}: {bad}");
        }
        if !self.report.is_intact() {
            return format!(
                "records chain correctly but checkpoints do not match: {:?}",
                self.report.checkpoints
            );
        }
        if let Some(n) = self.index_mismatches.first() {
            return format!(
                "the records verify, but the tracker index {} does not match its segment: \
                 remove it and the hub writes it again",
                crate::tracker_index::index_file_name(*n)
            );
        }
        if self.checkpoint_tail_bytes > 0 {
            return format!(
                "{} stray bytes at the end of {CHECKPOINTS_FILE}",
                self.checkpoint_tail_bytes
            );
        }
        format!(
            "intact: {} records in {} segments, {} checkpoints verified",
            self.report.records,
            self.report.segments,
            self.report.checkpoints.len()
        )
    }
}

/// Verifies the log in `dir` against `trusted` (default: the public key file in `dir`).
pub fn verify_dir(
    dir: &Path,
    trusted: Option<&VerifyingKey>,
) -> Result<DirVerification, AuditError> {
    let key = match trusted {
        Some(k) => *k,
        None => read_public_key(&dir.join(PUBLIC_KEY_FILE))?,
    };
    let segments = list_segments(dir).map_err(io_err(format!("listing {}", dir.display())))?;
    let mut contents = Vec::with_capacity(segments.len());
    let mut files = Vec::with_capacity(segments.len());
    let mut index_mismatches = Vec::new();
    for (n, p) in segments {
        let bytes = read_segment_file(&p)?;
        if !crate::tracker_index::index_matches(dir, n, &bytes) {
            index_mismatches.push(n);
        }
        contents.push(bytes);
        files.push(p);
    }
    let (checkpoints, checkpoint_tail_bytes) = read_checkpoints(&dir.join(CHECKPOINTS_FILE))?;
    let refs: Vec<&[u8]> = contents.iter().map(Vec::as_slice).collect();
    let report = verify(&refs, &checkpoints, &key);
    Ok(DirVerification {
        files,
        report,
        checkpoint_tail_bytes,
        index_mismatches,
    })
}

/// The records of a segment file's well-formed frames that decode, with each frame's offset
/// (nothing for a segment whose header does not decode).
pub fn segment_entries(bytes: &[u8]) -> Vec<(usize, LogEntry)> {
    let Ok((_, hlen)) = SegmentHeader::decode(bytes) else {
        return Vec::new();
    };
    FrameReader::new(bytes, hlen)
        .map_while(Result::ok)
        .filter_map(|frame| Some((frame.offset, LogEntry::decode(frame.record).ok()?)))
        .collect()
}

fn read_segment_file(p: &Path) -> Result<Vec<u8>, AuditError> {
    let f = File::open(p).map_err(io_err(format!("opening {}", p.display())))?;
    read_segment(f, MAX_SEGMENT_READ).map_err(io_err(format!("reading {}", p.display())))
}

/// Every record of the log in `dir` that verifies in its segment, oldest first (run
/// [`verify_dir`] to know the log is intact). The citizen's view reads one person's records
/// through [`AuditLog::tracker`] instead.
pub fn read_entries(dir: &Path) -> Result<Vec<LogEntry>, AuditError> {
    let mut out = Vec::new();
    for (_, p) in list_segments(dir).map_err(io_err("listing segments"))? {
        out.extend(
            segment_entries(&read_segment_file(&p)?)
                .into_iter()
                .map(|(_, e)| e),
        );
    }
    Ok(out)
}

/// The records of the live log in `dir` timed at or after `since`, oldest first. Reads the
/// segments from the newest back and stops after the first one that starts before `since`
/// (records are appended in time order), so a restart or a monthly statement reads the
/// period asked for, not the whole log.
pub fn read_entries_since(dir: &Path, since: DateTime<Utc>) -> Result<Vec<LogEntry>, AuditError> {
    let mut segments = Vec::new();
    for (_, p) in list_segments(dir)
        .map_err(io_err("listing segments"))?
        .into_iter()
        .rev()
    {
        let entries: Vec<LogEntry> = segment_entries(&read_segment_file(&p)?)
            .into_iter()
            .map(|(_, e)| e)
            .collect();
        let older = entries.first().is_some_and(|e| e.record.time < since);
        segments.push(entries);
        if older {
            break;
        }
    }
    Ok(segments
        .into_iter()
        .rev()
        .flatten()
        .filter(|e| e.record.time >= since)
        .collect())
}

/// Directory (inside the log directory) that archived segments move to.
pub const ARCHIVE_DIR: &str = "archive";

/// Moves the segments that retention lets go into `<dir>/archive/` (oldest first, only those
/// under the last checkpoint signed by the key in `dir`, never one with a covert record still
/// under embargo, never the newest). The live log still verifies from its first segment.
/// Returns the plan and the files moved.
pub fn archive(
    dir: &Path,
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
) -> Result<(RetentionPlan, Vec<PathBuf>), AuditError> {
    let key = read_public_key(&dir.join(PUBLIC_KEY_FILE))?;
    let segments = list_segments(dir).map_err(io_err("listing segments"))?;
    let mut infos = Vec::with_capacity(segments.len());
    for (_, p) in &segments {
        let bytes = read_segment_file(p)?;
        infos.push(
            SegmentInfo::scan(&bytes)
                .map_err(|e| AuditError::Damaged(format!("{}: {e}", p.display())))?,
        );
    }
    let (checkpoints, _) = read_checkpoints(&dir.join(CHECKPOINTS_FILE))?;
    let last = checkpoints
        .iter()
        .filter(|c| c.verify_signature(&key))
        .max_by_key(|c| c.tree_size);
    let plan = plan_retention(&infos, policy, last, now);
    let target = dir.join(ARCHIVE_DIR);
    let mut moved = Vec::new();
    if !plan.archive.is_empty() {
        fs::create_dir_all(&target).map_err(io_err(format!("creating {}", target.display())))?;
    }
    for n in &plan.archive {
        let from = dir.join(segment_file_name(*n));
        let to = target.join(segment_file_name(*n));
        fs::rename(&from, &to).map_err(io_err(format!("moving {}", from.display())))?;
        moved.push(to);
        // The tracker's index of it goes along (it serves the live log only).
        let index = crate::tracker_index::index_file_name(*n);
        match fs::rename(dir.join(&index), target.join(&index)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(io_err(format!("moving {index}"))(e));
            }
            _ => {}
        }
    }
    Ok((plan, moved))
}

/// Byte ranges of the frames of a segment file (for tests and forensics).
pub fn frame_ranges(segment: &[u8]) -> Vec<std::ops::Range<usize>> {
    let Ok((_, hlen)) = SegmentHeader::decode(segment) else {
        return Vec::new();
    };
    FrameReader::new(segment, hlen)
        .map_while(Result::ok)
        .map(|f| f.offset..f.offset + 4 + f.record.len() + 32)
        .collect()
}
