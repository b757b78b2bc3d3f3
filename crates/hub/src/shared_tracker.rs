//! The citizen's tracker across nodes (nhật ký khai thác dùng chung): each node of a deployment
//! over one database copies the tracker lines of its own exchange log into the document store's
//! usage log, and a node answering a citizen adds the other nodes' lines to its own.
//!
//! The node's log stays the evidence and its own lines are read from it (through
//! [`crate::tracker_index`], so they show at once); the copies serve only to show a citizen
//! what other nodes answered. A thread tails the log up to what is durable
//! ([`TrackerIndex::durable`]) and appends the lines in batches, then moves its cursor, kept in
//! `<log dir>/tracker-shipped`. A crash between the two sends a batch again; copies are told
//! apart by node and sequence number, so a line is shown once. The lag is the thread's pause
//! ([`PAUSE`]) plus a batch's write.
//!
//! A node is named by a random id kept in `<log dir>/node-id`.

use crate::audit::list_segments;
use crate::tracker_index::TrackerIndex;
use chrono::{DateTime, NaiveDate, Utc};
use dancu_exchange::log::record::{ExchangeResult, LogEntry};
use dancu_exchange::log::segment::{FrameReader, SegmentHeader};
use dancu_exchange::log::tracker::AccessLine;
use dancu_store::docs::DocStore;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fs;
use std::io::{self, Read, Seek};
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{RecvTimeoutError, Sender};
use std::time::Duration;

/// File naming this node.
pub const NODE_ID_FILE: &str = "node-id";
/// File holding how far this node's lines are copied: `<segment> <byte offset>`.
pub const CURSOR_FILE: &str = "tracker-shipped";
/// The copying thread's pause between rounds.
pub const PAUSE: Duration = Duration::from_millis(200);
/// Lines per append.
const BATCH: usize = 2000;
/// Most copied lines read for one person.
const MAX_LINES: u32 = 100_000;

/// Usage-log subject of a person's copied lines.
fn subject(person: &str) -> String {
    format!("hub_access/{person}")
}

/// This node's id: read from `dir`, or made and kept there.
pub fn node_id(dir: &Path) -> io::Result<String> {
    let path = dir.join(NODE_ID_FILE);
    match fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is empty", path.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let id = hex::encode(rand::random::<[u8; 8]>());
            let tmp = dir.join(format!("{NODE_ID_FILE}.tmp"));
            fs::write(&tmp, &id)?;
            fs::rename(&tmp, &path)?;
            Ok(id)
        }
        Err(e) => Err(e),
    }
}

/// A copied tracker line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedLine {
    /// The node whose log holds the exchange.
    pub node: String,
    /// Its seq in that log.
    pub seq: u64,
    /// The line as the person sees it.
    #[serde(flatten)]
    pub line: AccessLine,
    /// The embargo of a covert access.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub covert_until: Option<NaiveDate>,
}

impl SharedLine {
    fn of(node: &str, e: &LogEntry) -> Self {
        let r = &e.record;
        Self {
            node: node.to_owned(),
            seq: e.seq,
            line: AccessLine {
                time: r.time,
                org: r.caller_org.clone(),
                subsystem: r.subsystem.clone(),
                service: r.service.clone(),
                fields: r.fields.clone(),
                purpose: r.purpose.clone(),
                served: r.result == ExchangeResult::Served,
            },
            covert_until: r.covert_until,
        }
    }
}

/// The other nodes' lines of `person` visible on `today`, each once, oldest first.
pub fn other_nodes_lines(
    docs: &dyn DocStore,
    person: &str,
    own_node: &str,
    today: NaiveDate,
) -> Result<Vec<AccessLine>, dancu_store::StoreError> {
    let mut seen = HashSet::new();
    let mut out: Vec<AccessLine> = docs
        .usage(&subject(person), None, None, MAX_LINES)?
        .into_iter()
        .filter_map(|u| serde_json::from_str::<SharedLine>(&u.json).ok())
        .filter(|l| l.node != own_node)
        .filter(|l| l.covert_until.is_none_or(|d| today >= d))
        .filter(|l| seen.insert((l.node.clone(), l.seq)))
        .map(|l| l.line)
        .collect();
    out.reverse();
    Ok(out)
}

/// Where the copying stands: the next frame to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cursor {
    segment: u64,
    /// Byte offset of the next frame (0: the segment's first).
    offset: u64,
}

fn read_cursor(dir: &Path) -> Cursor {
    let text = fs::read_to_string(dir.join(CURSOR_FILE)).unwrap_or_default();
    let mut words = text.split_whitespace().map(str::parse::<u64>);
    match (words.next(), words.next()) {
        (Some(Ok(segment)), Some(Ok(offset))) => Cursor { segment, offset },
        _ => Cursor {
            segment: 0,
            offset: 0,
        },
    }
}

fn write_cursor(dir: &Path, c: Cursor) -> io::Result<()> {
    let tmp = dir.join(format!("{CURSOR_FILE}.tmp"));
    fs::write(&tmp, format!("{} {}\n", c.segment, c.offset))?;
    fs::rename(&tmp, dir.join(CURSOR_FILE))
}

/// The durable records after `from`, with the cursor past the last one read.
fn read_durable(
    dir: &Path,
    from: Cursor,
    durable: (u64, Option<u64>),
) -> io::Result<(Vec<LogEntry>, Cursor)> {
    let mut out = Vec::new();
    let mut cursor = from;
    for (n, path) in list_segments(dir)? {
        if n < cursor.segment || n > durable.0 || (n == durable.0 && durable.1.is_none()) {
            continue;
        }
        if n > cursor.segment {
            cursor = Cursor {
                segment: n,
                offset: 0,
            };
        }
        let mut f = match fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let (base, bytes) = if cursor.offset == 0 {
            let mut all = Vec::new();
            f.read_to_end(&mut all)?;
            let Ok((_, hlen)) = SegmentHeader::decode(&all) else {
                continue;
            };
            (hlen as u64, all.split_off(hlen))
        } else {
            f.seek(io::SeekFrom::Start(cursor.offset))?;
            let mut rest = Vec::new();
            f.read_to_end(&mut rest)?;
            (cursor.offset, rest)
        };
        let last = if n == durable.0 { durable.1 } else { None };
        for frame in FrameReader::new(&bytes, 0).map_while(Result::ok) {
            let at = base + frame.offset as u64;
            if last.is_some_and(|l| at > l) {
                break;
            }
            if let Ok(e) = LogEntry::decode(frame.record) {
                out.push(e);
            }
            cursor.offset = at + 4 + frame.record.len() as u64 + 32;
        }
        if n < durable.0 {
            // A closed segment is read to its end: carry on with the next one.
            cursor = Cursor {
                segment: n + 1,
                offset: 0,
            };
        }
        if out.len() >= 50 * BATCH {
            break;
        }
    }
    Ok((out, cursor))
}

/// A thread doing one round of work every `every` until dropped, and a last round then.
#[derive(Debug)]
pub struct Worker {
    stop: Option<Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Worker {
    /// Starts `round` on a thread named `name`.
    pub fn start(
        name: &str,
        every: Duration,
        mut round: impl FnMut() + Send + 'static,
    ) -> io::Result<Self> {
        let (stop, rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                loop {
                    round();
                    match rx.recv_timeout(every) {
                        Err(RecvTimeoutError::Timeout) => {}
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                            round();
                            return;
                        }
                    }
                }
            })?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts copying the lines of the log in `dir` (named `node`) into `docs`, every [`PAUSE`]
/// and once more when stopped (so a node stopping cleanly leaves nothing behind). A failed
/// round (the database away) is tried again at the next, from the cursor.
pub fn start_shipper(
    dir: &Path,
    node: String,
    tracker: Arc<TrackerIndex>,
    docs: Arc<dyn DocStore>,
) -> io::Result<Worker> {
    let dir = dir.to_owned();
    Worker::start("tracker-shipper", PAUSE, move || {
        let _ = ship_round(&dir, &node, &tracker, &*docs);
    })
}

/// One round: copies what is durable and not yet copied; returns the lines copied.
pub(crate) fn ship_round(
    dir: &Path,
    node: &str,
    tracker: &TrackerIndex,
    docs: &dyn DocStore,
) -> Result<usize, String> {
    let from = read_cursor(dir);
    let (entries, to) = read_durable(dir, from, tracker.durable()).map_err(|e| e.to_string())?;
    let lines: Vec<(String, DateTime<Utc>, String)> = entries
        .iter()
        .filter_map(|e| {
            let person = e.record.person.as_deref()?;
            let json = serde_json::to_string(&SharedLine::of(node, e)).ok()?;
            Some((subject(person), e.record.time, json))
        })
        .collect();
    for chunk in lines.chunks(BATCH) {
        docs.append_usage_many(chunk).map_err(|e| e.to_string())?;
    }
    if to != from {
        write_cursor(dir, to).map_err(|e| e.to_string())?;
    }
    Ok(lines.len())
}
