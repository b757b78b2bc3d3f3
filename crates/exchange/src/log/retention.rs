//! Which whole segments may leave the live log (to an archive, or be deleted).
//!
//! Only a prefix of the log may go, oldest first, so the rest still verifies from its first
//! segment's header. A segment may go only when every record in it is covered by the last
//! signed checkpoint (so its content stays provable), it is not the segment being written,
//! enough segments remain, and no covert record in it is still under embargo (the citizen
//! tracker must show it once the embargo ends). Within that, a segment goes when its newest
//! record is older than the retention period, or while the live log is over its byte budget.

use super::checkpoint::Checkpoint;
use super::record::LogEntry;
use super::segment::{FrameReader, HeaderError, SegmentHeader};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

/// What retention needs to know about one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Segment number.
    pub number: u64,
    /// Seq of its first record.
    pub first_seq: u64,
    /// Number of records.
    pub records: u64,
    /// Size in bytes.
    pub bytes: u64,
    /// Time of its newest record.
    pub newest: Option<DateTime<Utc>>,
    /// Latest embargo date of a covert record in it.
    pub latest_embargo: Option<NaiveDate>,
}

impl SegmentInfo {
    /// Summarises a segment (records after a malformed frame are not counted).
    pub fn scan(bytes: &[u8]) -> Result<Self, HeaderError> {
        let (h, hlen) = SegmentHeader::decode(bytes)?;
        let mut info = Self {
            number: h.number,
            first_seq: h.first_seq,
            records: 0,
            bytes: bytes.len() as u64,
            newest: None,
            latest_embargo: None,
        };
        for f in FrameReader::new(bytes, hlen) {
            let Ok(f) = f else { break };
            info.records += 1;
            if let Ok(e) = LogEntry::decode(f.record) {
                info.newest = info.newest.max(Some(e.record.time));
                info.latest_embargo = info.latest_embargo.max(e.record.covert_until);
            }
        }
        Ok(info)
    }
}

/// The retention rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Keep records at least this long.
    pub keep_for: TimeDelta,
    /// Live log byte budget; over it, the oldest eligible segments go even if young.
    pub max_live_bytes: Option<u64>,
    /// Never go below this many live segments (at least 1: the one being written).
    pub min_segments: usize,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self {
            keep_for: TimeDelta::days(5 * 365),
            max_live_bytes: None,
            min_segments: 1,
        }
    }
}

/// Why the oldest segment that stays could not go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeldBecause {
    /// Nothing asks for it to go (young enough and within the budget).
    Retention,
    /// Not all its records are under the last checkpoint yet.
    NotCheckpointed,
    /// A covert record in it is still under embargo.
    Embargo,
    /// It is the newest segment or `min_segments` is reached.
    Minimum,
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionPlan {
    /// Segment numbers that may be archived, oldest first (a prefix of the input).
    pub archive: Vec<u64>,
    /// Why the next one stays, if there is one.
    pub held: Option<HeldBecause>,
    /// Live bytes once the plan is carried out.
    pub live_bytes_after: u64,
    /// Still over the byte budget afterwards: the caller should refuse new exchanges until
    /// space is freed, rather than let the disk fill.
    pub over_budget: bool,
}

/// Plans retention for `segments` (oldest first) at `now`, given the last checkpoint.
pub fn plan_retention(
    segments: &[SegmentInfo],
    policy: &RetentionPolicy,
    last_checkpoint: Option<&Checkpoint>,
    now: DateTime<Utc>,
) -> RetentionPlan {
    let mut live: u64 = segments.iter().map(|s| s.bytes).sum();
    let covered = last_checkpoint.map_or(0, |c| c.tree_size);
    let cutoff = now - policy.keep_for;
    let today = now.date_naive();
    let keep = policy.min_segments.max(1);
    let mut archive = Vec::new();
    let mut held = None;
    for (i, s) in segments.iter().enumerate() {
        let remaining = segments.len() - i;
        let over = policy.max_live_bytes.is_some_and(|m| live > m);
        let reason = if remaining <= keep {
            Some(HeldBecause::Minimum)
        } else if s.first_seq + s.records > covered {
            Some(HeldBecause::NotCheckpointed)
        } else if !over && s.newest.is_some_and(|t| t >= cutoff) {
            Some(HeldBecause::Retention)
        } else if s.latest_embargo.is_some_and(|d| d >= today) {
            Some(HeldBecause::Embargo)
        } else {
            None
        };
        if let Some(r) = reason {
            held = Some(r);
            break;
        }
        archive.push(s.number);
        live -= s.bytes;
    }
    RetentionPlan {
        archive,
        held,
        live_bytes_after: live,
        over_budget: policy.max_live_bytes.is_some_and(|m| live > m),
    }
}
