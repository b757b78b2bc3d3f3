//! The segment file format and the append-only writer.
//!
//! A segment is a header then frames:
//!
//! ```text
//! header: magic "DNCULOG\0" | format u16 | segment number u64 | first seq u64
//!         | previous segment's last chain hash [32] | peak count u8 | Merkle peaks [32 × count]
//! frame:  record length u32 (1..=MAX_RECORD_BYTES) | canonical record | chain hash [32]
//! ```
//!
//! All integers are big-endian. The peaks are the [`Frontier`] of the records before this
//! segment, so the tree head can be recomputed from this segment on even after older segments
//! are archived. The chain hash of a record is
//! `SHA-256("dancu/audit-chain/v1\0" || previous chain hash || record bytes)`; the first record
//! of the log chains from [`genesis_hash`].
//!
//! The writer never rewrites: it writes each frame with one `write_all` to the segment the
//! caller's [`SegmentSink`] opened, and after an I/O error it refuses everything (the caller
//! recovers with [`LogState::recover`], which drops a torn tail, and resumes in a new segment).

use super::merkle::{Frontier, Hash, leaf_hash};
use super::record::{AuditRecord, LogEntry, MAX_RECORD_BYTES, RecordError, encode_entry};
use sha2::{Digest, Sha256};
use std::io::{self, Read, Write};

/// First bytes of every segment.
pub const SEGMENT_MAGIC: [u8; 8] = *b"DNCULOG\0";
/// The segment format this build writes and reads.
pub const SEGMENT_FORMAT: u16 = 1;
const FIXED_HEADER: usize = 8 + 2 + 8 + 8 + 32 + 1;
/// Bytes a frame adds around its record.
pub const FRAME_OVERHEAD: usize = 4 + 32;

/// The chain value before the first record of the log.
pub fn genesis_hash() -> Hash {
    Sha256::digest(b"dancu/audit-genesis/v1").into()
}

/// `SHA-256("dancu/audit-chain/v1\0" || prev || record)`.
pub fn chain_hash(prev: &Hash, record: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update(b"dancu/audit-chain/v1\0");
    h.update(prev);
    h.update(record);
    h.finalize().into()
}

/// A parsed segment header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Segment number, consecutive from 0.
    pub number: u64,
    /// Seq of the first record in this segment.
    pub first_seq: u64,
    /// Chain hash of the last record before this segment ([`genesis_hash`] for the first).
    pub prev_hash: Hash,
    /// Merkle frontier of the records before this segment.
    pub frontier: Frontier,
}

impl SegmentHeader {
    /// Encoded form.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(FIXED_HEADER + 32 * self.frontier.peaks().len());
        v.extend_from_slice(&SEGMENT_MAGIC);
        v.extend_from_slice(&SEGMENT_FORMAT.to_be_bytes());
        v.extend_from_slice(&self.number.to_be_bytes());
        v.extend_from_slice(&self.first_seq.to_be_bytes());
        v.extend_from_slice(&self.prev_hash);
        // One peak per set bit of a u64: at most 64.
        v.push(self.frontier.peaks().len() as u8);
        for p in self.frontier.peaks() {
            v.extend_from_slice(p);
        }
        v
    }

    /// Parses a header at the start of `bytes`; returns it with its length.
    pub fn decode(bytes: &[u8]) -> Result<(Self, usize), HeaderError> {
        if bytes.len() < FIXED_HEADER {
            return Err(HeaderError::Truncated);
        }
        if bytes[..8] != SEGMENT_MAGIC {
            return Err(HeaderError::Magic);
        }
        let format = u16::from_be_bytes([bytes[8], bytes[9]]);
        if format != SEGMENT_FORMAT {
            return Err(HeaderError::Format(format));
        }
        let number = be_u64(&bytes[10..18]);
        let first_seq = be_u64(&bytes[18..26]);
        let mut prev_hash = [0u8; 32];
        prev_hash.copy_from_slice(&bytes[26..58]);
        let count = bytes[58] as usize;
        let len = FIXED_HEADER + 32 * count;
        if bytes.len() < len {
            return Err(HeaderError::Truncated);
        }
        let peaks = bytes[FIXED_HEADER..len]
            .chunks_exact(32)
            .map(|c| {
                let mut h = [0u8; 32];
                h.copy_from_slice(c);
                h
            })
            .collect();
        let frontier = Frontier::from_parts(first_seq, peaks).ok_or(HeaderError::Frontier)?;
        Ok((
            Self {
                number,
                first_seq,
                prev_hash,
                frontier,
            },
            len,
        ))
    }
}

fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

/// Why a segment header is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Shorter than a header.
    #[error("segment header is truncated")]
    Truncated,
    /// Not a dancu log segment.
    #[error("not a dancu log segment (bad magic)")]
    Magic,
    /// A format this build does not read.
    #[error("unknown segment format {0}")]
    Format(u16),
    /// The number of Merkle peaks does not fit the first seq.
    #[error("Merkle frontier in the header does not fit its first seq")]
    Frontier,
}

/// One frame as found in a segment, not yet checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawFrame<'a> {
    /// Byte offset of the frame in the segment.
    pub offset: usize,
    /// The canonical record bytes.
    pub record: &'a [u8],
    /// The chain hash stored after it.
    pub stored_hash: Hash,
}

/// Why the frames of a segment stop before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length prefix is zero or above [`MAX_RECORD_BYTES`].
    #[error("frame length {0} is outside 1..={MAX_RECORD_BYTES}")]
    Length(u32),
    /// The segment ends inside a frame (a torn write, or a cut file).
    #[error("the segment ends inside a frame")]
    Torn,
}

/// Iterates the frames of a segment body, stopping at the first malformed one.
#[derive(Debug, Clone)]
pub struct FrameReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> FrameReader<'a> {
    /// Reads frames of `bytes` starting at `pos` (the end of the header).
    pub fn new(bytes: &'a [u8], pos: usize) -> Self {
        Self {
            bytes,
            pos,
            failed: false,
        }
    }
    /// Offset of the next unread byte.
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for FrameReader<'a> {
    type Item = Result<RawFrame<'a>, FrameError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.bytes.len() {
            return None;
        }
        let rest = &self.bytes[self.pos..];
        let fail = |s: &mut Self, e| {
            s.failed = true;
            Some(Err(e))
        };
        if rest.len() < 4 {
            return fail(self, FrameError::Torn);
        }
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
        if len == 0 || len as usize > MAX_RECORD_BYTES {
            return fail(self, FrameError::Length(len));
        }
        let total = 4 + len as usize + 32;
        if rest.len() < total {
            return fail(self, FrameError::Torn);
        }
        let record = &rest[4..4 + len as usize];
        let mut stored_hash = [0u8; 32];
        stored_hash.copy_from_slice(&rest[4 + len as usize..total]);
        let offset = self.pos;
        self.pos += total;
        Some(Ok(RawFrame {
            offset,
            record,
            stored_hash,
        }))
    }
}

/// The stored chain hashes of a segment's well-formed frames, in order (the Merkle leaves'
/// data, for building proofs). Run [`super::verify::verify`] first to trust them.
pub fn chain_hashes(segment: &[u8]) -> Result<Vec<Hash>, HeaderError> {
    let (_, hlen) = SegmentHeader::decode(segment)?;
    Ok(FrameReader::new(segment, hlen)
        .map_while(Result::ok)
        .map(|f| f.stored_hash)
        .collect())
}

/// Reads a whole segment from `r`, refusing more than `max_bytes`.
pub fn read_segment(r: impl Read, max_bytes: u64) -> io::Result<Vec<u8>> {
    let mut v = Vec::new();
    r.take(max_bytes.saturating_add(1)).read_to_end(&mut v)?;
    if v.len() as u64 > max_bytes {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("segment is larger than the {max_bytes} bytes allowed"),
        ));
    }
    Ok(v)
}

/// Where the writer's segments go. The caller owns the files: each segment is a fresh
/// `Write` the sink creates (for a file: create-new, and `flush` should `fsync`).
pub trait SegmentSink {
    /// One segment's output.
    type Segment: Write;
    /// Creates segment `number`, empty.
    fn create(&mut self, number: u64) -> io::Result<Self::Segment>;
}

/// An in-memory sink, for tests and benchmarks.
#[derive(Debug, Default, Clone)]
pub struct MemorySink {
    segments: Vec<SharedBuf>,
}

/// A byte buffer shared between a [`MemorySink`] and the writer.
#[derive(Debug, Default, Clone)]
pub struct SharedBuf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        g.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }
    /// A copy of every segment written so far, in order.
    pub fn segments(&self) -> Vec<Vec<u8>> {
        self.segments
            .iter()
            .map(|s| s.0.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .collect()
    }
}

impl SegmentSink for MemorySink {
    type Segment = SharedBuf;
    fn create(&mut self, _number: u64) -> io::Result<SharedBuf> {
        let b = SharedBuf::default();
        self.segments.push(b.clone());
        Ok(b)
    }
}

/// Writer settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    /// A segment rolls before a frame would take it past this size (a segment always holds at
    /// least one record).
    pub segment_max_bytes: u64,
    /// Call `flush` on the segment after every append (durability per record).
    pub flush_each_append: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_max_bytes: 64 * 1024 * 1024,
            flush_each_append: true,
        }
    }
}

/// Where the log stands: enough to continue it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogState {
    /// Number of the segment that holds the last record (or would hold the first).
    pub segment: u64,
    /// Seq the next record gets.
    pub next_seq: u64,
    /// Chain hash of the last record.
    pub last_hash: Hash,
    /// Merkle frontier over every record so far.
    pub frontier: Frontier,
}

impl LogState {
    /// The state of an empty log.
    pub fn genesis() -> Self {
        Self {
            segment: 0,
            next_seq: 0,
            last_hash: genesis_hash(),
            frontier: Frontier::new(),
        }
    }

    /// Recovers the state from the newest segment. Returns the state and the length of the
    /// valid prefix: anything after it is a torn or damaged tail the caller should cut off (or
    /// keep aside) before resuming. Frames are checked against their chain hashes and seqs.
    pub fn recover(last_segment: &[u8]) -> Result<(Self, usize), HeaderError> {
        let (h, hlen) = SegmentHeader::decode(last_segment)?;
        let mut st = Self {
            segment: h.number,
            next_seq: h.first_seq,
            last_hash: h.prev_hash,
            frontier: h.frontier,
        };
        let mut valid = hlen;
        for f in FrameReader::new(last_segment, hlen) {
            let Ok(f) = f else { break };
            let h = chain_hash(&st.last_hash, f.record);
            let seq_ok = matches!(LogEntry::decode(f.record), Ok(e) if e.seq == st.next_seq);
            if h != f.stored_hash || !seq_ok {
                break;
            }
            st.last_hash = h;
            st.frontier.push(leaf_hash(&h));
            st.next_seq += 1;
            valid = f.offset + FRAME_OVERHEAD + f.record.len();
        }
        Ok((st, valid))
    }
}

/// Why an append was refused. After [`LogError::Io`] the writer is poisoned.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The record cannot be encoded within the bounds.
    #[error("record refused: {0}")]
    Record(#[from] RecordError),
    /// Writing failed (disk full, ...); nothing more is accepted until the caller recovers.
    #[error("writing the log failed: {0}")]
    Io(#[from] io::Error),
    /// An earlier write failed; the log must be recovered before new exchanges are accepted.
    #[error("the log is stopped after a write failure")]
    Poisoned,
    /// The space budget the caller set would be exceeded: the record was not written and the
    /// log is intact; free space (retention) and raise the budget.
    #[error("the log has no room for {needed} more bytes ({available} left)")]
    Full {
        /// Bytes the append needs.
        needed: u64,
        /// Bytes the budget has left.
        available: u64,
    },
}

/// What an append returns: where the record went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Its seq.
    pub seq: u64,
    /// Its chain hash.
    pub hash: Hash,
    /// Segment it is in.
    pub segment: u64,
    /// Byte offset of its frame in that segment (where its length prefix starts).
    pub offset: u64,
}

/// Appends records to segments created by a [`SegmentSink`].
#[derive(Debug)]
pub struct LogWriter<S: SegmentSink> {
    sink: S,
    config: LogConfig,
    state: LogState,
    /// The open segment, bytes written to it, and its header length.
    current: Option<(S::Segment, u64, u64)>,
    buf: Vec<u8>,
    poisoned: bool,
    budget: Option<u64>,
}

impl<S: SegmentSink> LogWriter<S> {
    /// Starts a new log (segment 0 is created at the first append).
    pub fn create(sink: S, config: LogConfig) -> Self {
        Self::from_state(sink, config, LogState::genesis(), false)
    }

    /// Continues a log from a recovered state; the next record goes to a new segment
    /// (`state.segment + 1`), so no existing file is ever appended to.
    pub fn resume(sink: S, config: LogConfig, state: LogState) -> Self {
        Self::from_state(sink, config, state, true)
    }

    fn from_state(sink: S, config: LogConfig, mut state: LogState, bump: bool) -> Self {
        if bump {
            state.segment += 1;
        }
        Self {
            sink,
            config,
            state,
            current: None,
            buf: Vec::with_capacity(1024),
            poisoned: false,
            budget: None,
        }
    }

    /// The current state (last hash, next seq, frontier).
    pub fn state(&self) -> &LogState {
        &self.state
    }

    /// Sets how many more bytes the writer may write (e.g. free disk space minus a reserve);
    /// `None` for no limit. An append that would not fit is refused with [`LogError::Full`]
    /// before anything is written, so a full disk never leaves a torn record.
    pub fn set_space_budget(&mut self, bytes: Option<u64>) {
        self.budget = bytes;
    }

    /// The space budget left, if one is set.
    pub fn space_budget(&self) -> Option<u64> {
        self.budget
    }

    /// The sink (e.g. to read a [`MemorySink`] back).
    pub fn sink(&self) -> &S {
        &self.sink
    }

    /// Appends one record, assigning the next seq.
    pub fn append(&mut self, record: &AuditRecord) -> Result<Appended, LogError> {
        self.append_inner(record, self.config.flush_each_append)
    }

    /// Appends one record without flushing, whatever the config says: for a group of records
    /// that the caller makes durable with one [`Self::flush`] before anyone relies on them.
    pub fn append_unflushed(&mut self, record: &AuditRecord) -> Result<Appended, LogError> {
        self.append_inner(record, false)
    }

    /// The open segment and the bytes written to it (`None` before the first append, or
    /// after a roll failed): where the log ends now, to cut back to if a group fails.
    pub fn position(&self) -> Option<(u64, u64)> {
        self.current
            .as_ref()
            .map(|(_, written, _)| (self.state.segment, *written))
    }

    fn append_inner(&mut self, record: &AuditRecord, flush: bool) -> Result<Appended, LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned);
        }
        // Frame: length placeholder, record, hash.
        self.buf.clear();
        self.buf.extend_from_slice(&[0; 4]);
        encode_entry(self.state.next_seq, record, &mut self.buf)?;
        let len = self.buf.len() - 4;
        // Bounded by MAX_RECORD_BYTES (checked by the encoder), so it fits in u32.
        self.buf[..4].copy_from_slice(&(len as u32).to_be_bytes());
        let hash = chain_hash(&self.state.last_hash, &self.buf[4..]);
        self.buf.extend_from_slice(&hash);
        let frame_len = self.buf.len() as u64;

        let roll = match &self.current {
            None => true,
            Some((_, written, header)) => {
                written + frame_len > self.config.segment_max_bytes && written > header
            }
        };
        if let Some(available) = self.budget {
            let header = if roll {
                (FIXED_HEADER + 32 * self.state.next_seq.count_ones() as usize) as u64
            } else {
                0
            };
            let needed = frame_len + header;
            if needed > available {
                return Err(LogError::Full { needed, available });
            }
            self.budget = Some(available - needed);
        }
        if roll && let Err(e) = self.start_segment() {
            self.poisoned = true;
            return Err(e.into());
        }
        let Some((out, written, _)) = self.current.as_mut() else {
            return Err(LogError::Poisoned);
        };
        let res = out
            .write_all(&self.buf)
            .and_then(|()| if flush { out.flush() } else { Ok(()) });
        if let Err(e) = res {
            self.poisoned = true;
            return Err(e.into());
        }
        let offset = *written;
        *written += frame_len;
        let seq = self.state.next_seq;
        self.state.next_seq += 1;
        self.state.last_hash = hash;
        self.state.frontier.push(leaf_hash(&hash));
        Ok(Appended {
            seq,
            hash,
            segment: self.state.segment,
            offset,
        })
    }

    /// Appends several records and flushes once at the end (when the writer flushes each
    /// append), so a batch costs one disk sync instead of one per record. On an error the
    /// records before the failing one are in the log; where they went is returned with the
    /// error.
    pub fn append_many(
        &mut self,
        records: &[AuditRecord],
    ) -> Result<Vec<Appended>, (Vec<Appended>, LogError)> {
        let each = self.config.flush_each_append;
        let mut out = Vec::with_capacity(records.len());
        let mut failed = None;
        for r in records {
            match self.append_unflushed(r) {
                Ok(a) => out.push(a),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if each && let Err(e) = self.flush() {
            return Err((out, e));
        }
        match failed {
            Some(e) => Err((out, e)),
            None => Ok(out),
        }
    }

    /// Signs a checkpoint over every record appended so far.
    pub fn checkpoint(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        key: &p256::ecdsa::SigningKey,
    ) -> super::checkpoint::Checkpoint {
        super::checkpoint::Checkpoint::sign(
            self.state.next_seq,
            self.state.frontier.root(),
            now,
            key,
        )
    }

    /// Flushes the current segment.
    pub fn flush(&mut self) -> Result<(), LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned);
        }
        if let Some((out, _, _)) = self.current.as_mut()
            && let Err(e) = out.flush()
        {
            self.poisoned = true;
            return Err(e.into());
        }
        Ok(())
    }

    /// Closes the current segment (if any) and makes the next record start a new one.
    fn start_segment(&mut self) -> io::Result<()> {
        if let Some((mut out, _, _)) = self.current.take() {
            out.flush()?;
            self.state.segment += 1;
        }
        let header = SegmentHeader {
            number: self.state.segment,
            first_seq: self.state.next_seq,
            prev_hash: self.state.last_hash,
            frontier: self.state.frontier.clone(),
        }
        .encode();
        let mut out = self.sink.create(self.state.segment)?;
        out.write_all(&header)?;
        let n = header.len() as u64;
        self.current = Some((out, n, n));
        Ok(())
    }
}
