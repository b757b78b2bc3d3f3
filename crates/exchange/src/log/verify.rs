//! `verify`: re-reads segments and checkpoints and says whether the log is intact, naming the
//! first bad record (segment, index, why) when it is not.
//!
//! What it catches and how:
//! - an edited record or stored hash: its recomputed chain hash differs ([`Defect::Edited`]);
//! - a removed, inserted, duplicated or reordered record: its seq is not the next one
//!   ([`Defect::Missing`], [`Defect::OutOfOrder`]); if seqs were rewritten too, the chain breaks;
//! - a removed or replaced segment: numbers, first seq, previous hash and Merkle frontier in the
//!   header must continue the previous segment;
//! - records cut from the end, or a log rewritten wholesale with fresh hashes: the signed
//!   checkpoints no longer match ([`CheckpointStatus::BeyondLog`], [`CheckpointStatus::RootMismatch`]).
//!
//! A cut after the last checkpoint cannot be told from a log that simply ended there; the
//! writer's checkpoint cadence bounds that window.

use super::checkpoint::Checkpoint;
use super::merkle::{Frontier, Hash, leaf_hash};
use super::record::{LogEntry, RecordError};
use super::segment::{
    FRAME_OVERHEAD, FrameError, FrameReader, HeaderError, SegmentHeader, chain_hash, genesis_hash,
};
use p256::ecdsa::VerifyingKey;
use std::fmt;

/// What is wrong at the first bad place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Defect {
    /// The segment header does not parse.
    Header(HeaderError),
    /// Segment numbers do not follow on (a segment removed, inserted or swapped).
    SegmentNumber {
        /// The number that should come next.
        expected: u64,
        /// The number found.
        found: u64,
    },
    /// The segment does not start where the previous one ended.
    SegmentStart {
        /// Seq that should start it.
        expected: u64,
        /// Seq its header claims.
        found: u64,
    },
    /// The header's previous hash is not the previous segment's last chain hash.
    PrevHash,
    /// The header's Merkle frontier is not the one of the records before it.
    Frontier,
    /// A log that starts at seq 0 must chain from the genesis value.
    Genesis,
    /// The frame structure is broken here (bad length, or the segment ends inside a frame).
    Frame(FrameError),
    /// The record bytes are not a canonical record (edited).
    Unparseable(RecordError),
    /// Records are missing before this one.
    Missing {
        /// Seq that should be here.
        expected: u64,
        /// Seq found.
        found: u64,
    },
    /// This record is out of place (reordered, duplicated or inserted).
    OutOfOrder {
        /// Seq that should be here.
        expected: u64,
        /// Seq found.
        found: u64,
    },
    /// The content or its stored hash was changed: the chain hash does not match.
    Edited,
}

impl fmt::Display for Defect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Header(e) => write!(f, "bad segment header: {e}"),
            Self::SegmentNumber { expected, found } => {
                write!(f, "segment number {found} where {expected} should follow")
            }
            Self::SegmentStart { expected, found } => write!(
                f,
                "segment starts at seq {found} but the previous one ended before seq {expected}"
            ),
            Self::PrevHash => f.write_str("header does not chain from the previous segment"),
            Self::Frontier => {
                f.write_str("header's Merkle frontier does not match the records before it")
            }
            Self::Genesis => f.write_str("the log's first segment does not chain from genesis"),
            Self::Frame(e) => write!(f, "broken frame: {e}"),
            Self::Unparseable(e) => write!(f, "record does not parse ({e}): edited"),
            Self::Missing { expected, found } => write!(
                f,
                "found seq {found} where seq {expected} should be: records {expected}..{found} removed \
                 (or this record's seq edited)"
            ),
            Self::OutOfOrder { expected, found } => write!(
                f,
                "found seq {found} where seq {expected} should be: reordered, duplicated or inserted \
                 (or this record's seq edited)"
            ),
            Self::Edited => f.write_str("chain hash mismatch: the record or its hash was edited"),
        }
    }
}

/// The first place where the log is not intact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRecord {
    /// Position of the segment in the list given to [`verify`], from 0.
    pub segment_index: usize,
    /// The segment's own number, when its header parsed.
    pub segment_number: Option<u64>,
    /// Index of the record within the segment, from 0; `None` for the header.
    pub record_index: Option<usize>,
    /// Byte offset in the segment.
    pub offset: usize,
    /// The seq the log should have had here.
    pub expected_seq: u64,
    /// Why.
    pub defect: Defect,
}

impl fmt::Display for BadRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "segment #{}", self.segment_index)?;
        if let Some(n) = self.segment_number {
            write!(f, " (number {n})")?;
        }
        match self.record_index {
            Some(i) => write!(f, ", record {i} (expected seq {})", self.expected_seq)?,
            None => f.write_str(", header")?,
        }
        write!(f, " at byte {}: {}", self.offset, self.defect)
    }
}

/// What became of one checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointStatus {
    /// Signature good and the root matches the records.
    Verified,
    /// Not signed by the trusted key (forged or damaged): nothing else was checked.
    BadSignature,
    /// Signature good but the records give another root: the log was rewritten.
    RootMismatch,
    /// Signature good but it covers more records than the log holds: records were removed
    /// from the end.
    BeyondLog {
        /// How many records the log holds.
        log_size: u64,
    },
    /// Covers records in archived segments: the signature was checked, the root cannot be.
    Archived,
    /// Covers records after the first bad one: not checked.
    AfterDamage,
}

/// The outcome of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VerifyReport {
    /// Segments read.
    pub segments: usize,
    /// Records that verified, up to the first bad one.
    pub records: u64,
    /// Seq of the first record present (after archiving, not 0).
    pub first_seq: Option<u64>,
    /// The first defect, if any.
    pub first_bad: Option<BadRecord>,
    /// One status per checkpoint given, in the same order.
    pub checkpoints: Vec<CheckpointStatus>,
}

impl VerifyReport {
    /// No defect, and every checkpoint verified (or only covers archived records).
    pub fn is_intact(&self) -> bool {
        self.first_bad.is_none()
            && self
                .checkpoints
                .iter()
                .all(|c| matches!(c, CheckpointStatus::Verified | CheckpointStatus::Archived))
    }
}

struct Walk {
    segment_number: u64,
    next_seq: u64,
    last_hash: Hash,
    frontier: Frontier,
}

/// Verifies segments (oldest first, as stored) against checkpoints signed by `trusted_key`.
pub fn verify(
    segments: &[&[u8]],
    checkpoints: &[Checkpoint],
    trusted_key: &VerifyingKey,
) -> VerifyReport {
    let mut report = VerifyReport {
        segments: segments.len(),
        checkpoints: vec![CheckpointStatus::AfterDamage; checkpoints.len()],
        ..VerifyReport::default()
    };
    // Checkpoints with a good signature, by tree size, still waiting for their root check.
    let mut pending: Vec<(u64, usize)> = Vec::new();
    for (i, c) in checkpoints.iter().enumerate() {
        if c.verify_signature(trusted_key) {
            pending.push((c.tree_size, i));
        } else {
            report.checkpoints[i] = CheckpointStatus::BadSignature;
        }
    }
    pending.sort_unstable();
    let mut next_pending = 0;
    let mut settle = |frontier: &Frontier, report: &mut VerifyReport| {
        while next_pending < pending.len() && pending[next_pending].0 <= frontier.size() {
            let (size, i) = pending[next_pending];
            if size == frontier.size() {
                report.checkpoints[i] = if checkpoints[i].root == frontier.root() {
                    CheckpointStatus::Verified
                } else {
                    CheckpointStatus::RootMismatch
                };
            } else {
                report.checkpoints[i] = CheckpointStatus::Archived;
            }
            next_pending += 1;
        }
    };

    let mut walk: Option<Walk> = None;
    let mut bad: Option<BadRecord> = None;
    'segments: for (si, bytes) in segments.iter().enumerate() {
        let expected_seq = walk.as_ref().map_or(0, |w| w.next_seq);
        let header_bad = |number, defect| BadRecord {
            segment_index: si,
            segment_number: number,
            record_index: None,
            offset: 0,
            expected_seq,
            defect,
        };
        let (h, hlen) = match SegmentHeader::decode(bytes) {
            Ok(x) => x,
            Err(e) => {
                bad = Some(header_bad(None, Defect::Header(e)));
                break;
            }
        };
        let num = Some(h.number);
        match &walk {
            Some(w) => {
                let defect = if h.number != w.segment_number + 1 {
                    Some(Defect::SegmentNumber {
                        expected: w.segment_number + 1,
                        found: h.number,
                    })
                } else if h.first_seq != w.next_seq {
                    Some(Defect::SegmentStart {
                        expected: w.next_seq,
                        found: h.first_seq,
                    })
                } else if h.prev_hash != w.last_hash {
                    Some(Defect::PrevHash)
                } else if h.frontier != w.frontier {
                    Some(Defect::Frontier)
                } else {
                    None
                };
                if let Some(d) = defect {
                    bad = Some(header_bad(num, d));
                    break;
                }
            }
            None => {
                if h.first_seq == 0 && h.prev_hash != genesis_hash() {
                    bad = Some(header_bad(num, Defect::Genesis));
                    break;
                }
                report.first_seq = Some(h.first_seq);
                settle(&h.frontier, &mut report);
            }
        }
        let w = walk.get_or_insert_with(|| Walk {
            segment_number: h.number,
            next_seq: h.first_seq,
            last_hash: h.prev_hash,
            frontier: h.frontier.clone(),
        });
        w.segment_number = h.number;
        let mut offset = hlen;
        for (ri, frame) in FrameReader::new(bytes, hlen).enumerate() {
            let here = |defect| BadRecord {
                segment_index: si,
                segment_number: num,
                record_index: Some(ri),
                offset,
                expected_seq: w.next_seq,
                defect,
            };
            let f = match frame {
                Ok(f) => f,
                Err(e) => {
                    bad = Some(here(Defect::Frame(e)));
                    break 'segments;
                }
            };
            let defect = match LogEntry::decode(f.record) {
                Err(e) => Some(Defect::Unparseable(e)),
                Ok(e) if e.seq > w.next_seq => Some(Defect::Missing {
                    expected: w.next_seq,
                    found: e.seq,
                }),
                Ok(e) if e.seq < w.next_seq => Some(Defect::OutOfOrder {
                    expected: w.next_seq,
                    found: e.seq,
                }),
                Ok(_) => None,
            };
            let h = chain_hash(&w.last_hash, f.record);
            let defect = defect.or_else(|| (h != f.stored_hash).then_some(Defect::Edited));
            if let Some(d) = defect {
                bad = Some(here(d));
                break 'segments;
            }
            w.last_hash = h;
            w.frontier.push(leaf_hash(&h));
            w.next_seq += 1;
            report.records += 1;
            offset = f.offset + FRAME_OVERHEAD + f.record.len();
            settle(&w.frontier, &mut report);
        }
    }
    let log_size = walk.as_ref().map_or(0, |w| w.next_seq);
    if bad.is_none() {
        for &(_, i) in &pending[next_pending..] {
            report.checkpoints[i] = CheckpointStatus::BeyondLog { log_size };
        }
    }
    report.first_bad = bad;
    report
}
