//! Batch verification (đối chiếu hàng loạt): a member uploads up to [`MAX_ROWS`] attribute-match
//! requests as one job; the hub checks the whole upload before accepting it, then answers the
//! rows in the background, in chunks, with the same rules as the single call: every row is
//! decided with the caller's rights and limits (quota and rate are charged per row) and logged
//! as its own exchange (so the log names every person checked and fees are metered per row).
//! A chunk's records reach the log with one disk sync, before its answers are stored.
//!
//! A job lives in the document store, so that every node over one database can report it and
//! hand out its results, and none holds it on its own disk:
//!
//! - `hub_batch_job/<id>`: owner, call metadata, progress, state, and the lease of the node
//!   answering it;
//! - `hub_batch_input/<id>/<n>` and `hub_batch_result/<id>/<n>`: chunk `n` (rows
//!   `n × CHUNK + 1` onwards) of the accepted rows and of their answers, each a JSON array;
//! - `hub_batch_running/<id>`: present while the job runs, so that nodes find unfinished jobs
//!   without reading every job.
//!
//! The upload is stored whole in one transaction before the job is acknowledged. Each chunk
//! then ends with one transaction that stores its answers, drops its input, records the
//! progress and renews the lease; it names the job's version, so a node that lost its lease
//! stores nothing and stops. A job whose node stopped (killed, or gone from the cluster) is
//! taken over by any node once the lease has lapsed ([`resume`], run when a node starts and
//! every few seconds), and by its own node at once after a restart; it goes on from its last
//! stored chunk. Rows of a chunk interrupted after logging are logged again when it is redone
//! (the log errs on the side of more evidence, never less). Jobs are kept [`JOB_KEEP_DAYS`] days.
//!
//! Upload format (NDJSON): a first line with the call metadata (`purpose`, `end_user`,
//! `case_ref`), then one row per line: `{"id": "<personal ID>", "claims": {...}}`. The
//! results are NDJSON too: one answer per row, in row order.
//!
//! Jobs of earlier builds, kept as files in the node's `jobs` directory, are moved into the
//! store when the node starts.

use crate::service::{
    CallMeta, Client, Hub, HubError, SERVICE_VERIFY_ATTRIBUTES, claimed_fields, parse_id,
};
use chrono::{DateTime, TimeDelta, Utc};
use dancu_domain::{PersonalId, Problem};
use dancu_exchange::log::record::{AuditRecord, ExchangeResult};
use dancu_exchange::matching::{self, Claims, FieldAnswer};
use dancu_store::StoreError;
use dancu_store::docs::DocWrite;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io::{BufRead, BufReader};
use std::sync::Arc;

/// Most rows one job may hold.
pub const MAX_ROWS: usize = 1_000_000;
/// Rows answered (and logged with one sync) per chunk.
#[cfg(not(test))]
const CHUNK: usize = 10_000;
#[cfg(test)]
const CHUNK: usize = 2;
/// How long a job and its results are kept after it was accepted.
pub const JOB_KEEP_DAYS: i64 = 90;
/// How long a node's claim on a job lasts without a stored chunk. A chunk takes well under a
/// second; a node that has stored nothing for this long is taken to have stopped.
const LEASE: TimeDelta = TimeDelta::seconds(60);

const JOB_KIND: &str = "hub_batch_job";
const INPUT_KIND: &str = "hub_batch_input";
const RESULT_KIND: &str = "hub_batch_result";
const RUNNING_KIND: &str = "hub_batch_running";

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Rows are being answered.
    Running,
    /// Every row has an answer; the results can be downloaded.
    Done,
    /// The job stopped (e.g. the exchange log refused the records); `error` says why.
    Failed,
}

/// A job's owner, metadata and progress (no personal data).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobStatus {
    /// Job id.
    pub id: String,
    /// Member organisation that submitted it.
    pub org: String,
    /// Its subsystem.
    pub subsystem: String,
    /// The call metadata every row is logged with.
    pub meta: CallMeta,
    /// State.
    pub state: JobState,
    /// Rows in the job.
    pub total: u64,
    /// Rows answered so far.
    pub done: u64,
    /// Rows served.
    pub served: u64,
    /// Rows refused by the rights or limits.
    pub refused: u64,
    /// Rows that failed (e.g. no such person).
    pub failed: u64,
    /// When it was accepted.
    pub created_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Why it failed.
    pub error: Option<String>,
}

/// The jobs this process is answering, so that it never answers one twice at once.
#[derive(Debug, Default)]
pub(crate) struct LocalJobs {
    running: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Whether the job files of earlier builds have been moved into the store: they can only
    /// be there from before this process started, so [`resume`] looks once.
    files_moved: std::sync::atomic::AtomicBool,
}

impl LocalJobs {
    /// Marks a job as answered here; false if it already is.
    fn claim(&self, id: &str) -> bool {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_owned())
    }

    fn release(&self, id: &str) {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }
}

/// The node answering a job, until when.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Lease {
    node: String,
    until: DateTime<Utc>,
}

/// A job as stored: its status and the lease of the node answering it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredJob {
    status: JobStatus,
    #[serde(default)]
    runner: Option<Lease>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Row {
    id: String,
    claims: Claims,
}

/// One answer of the results file.
#[derive(Debug, Serialize)]
struct RowAnswer<'a> {
    row: u64,
    id: &'a str,
    result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fields: Option<Vec<FieldAnswer>>,
}

fn invalid(code: &'static str, vi: String, en: String) -> HubError {
    HubError::Invalid { code, vi, en }
}

fn io(e: impl std::fmt::Display) -> HubError {
    HubError::internal(e)
}

fn valid_job_id(id: &str) -> bool {
    id.len() == 36 && id.starts_with("job_") && id[4..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// The key of chunk `n` of a job.
fn chunk_key(id: &str, n: u64) -> String {
    format!("{id}/{n:06}")
}

fn store_err(e: StoreError) -> HubError {
    HubError::internal(e)
}

/// The stored job and its version.
fn load(hub: &Hub, id: &str) -> Result<Option<(StoredJob, u64)>, HubError> {
    let Some(doc) = hub.docs().get(JOB_KIND, id).map_err(store_err)? else {
        return Ok(None);
    };
    let job = serde_json::from_str(&doc.json).map_err(io)?;
    Ok(Some((job, doc.version)))
}

fn job_write(job: &StoredJob, expected_version: u64) -> Result<DocWrite, HubError> {
    Ok(DocWrite::Put {
        kind: JOB_KIND.into(),
        key: job.status.id.clone(),
        expected_version,
        json: serde_json::to_string(job).map_err(io)?,
        expires_at: Some(kept_until(&job.status)),
    })
}

fn kept_until(st: &JobStatus) -> DateTime<Utc> {
    st.created_at + TimeDelta::days(JOB_KEEP_DAYS)
}

/// A chunk's NDJSON lines (each one line of compact JSON) as one JSON array, one element a
/// line. Compact JSON never holds a raw line break, so [`ndjson_of_array`] gives the lines
/// back exactly.
fn array_of_ndjson(ndjson: &str) -> String {
    let lines = ndjson.strip_suffix('\n').unwrap_or(ndjson);
    format!("[{}]", lines.replace('\n', ",\n"))
}

/// Appends the NDJSON lines of an array written by [`array_of_ndjson`] to `out`.
fn ndjson_of_array(array: &str, out: &mut Vec<u8>) -> Result<(), HubError> {
    let inner = array
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .ok_or_else(|| HubError::internal("a stored chunk of results is not an array"))?;
    if !inner.is_empty() {
        out.extend_from_slice(inner.replace(",\n", "\n").as_bytes());
        out.push(b'\n');
    }
    Ok(())
}

/// The writes that store rows as input chunks, the first numbered `first_chunk`.
fn input_writes(
    id: &str,
    first_chunk: u64,
    rows: &[Row],
    until: DateTime<Utc>,
) -> Result<Vec<DocWrite>, HubError> {
    rows.chunks(CHUNK)
        .zip(first_chunk..)
        .map(|(chunk, n)| {
            Ok(DocWrite::Put {
                kind: INPUT_KIND.into(),
                key: chunk_key(id, n),
                expected_version: 0,
                json: serde_json::to_string(chunk).map_err(io)?,
                expires_at: Some(until),
            })
        })
        .collect()
}

fn running_write(id: &str, until: DateTime<Utc>) -> DocWrite {
    DocWrite::Put {
        kind: RUNNING_KIND.into(),
        key: id.to_owned(),
        expected_version: 0,
        json: "{}".into(),
        expires_at: Some(until),
    }
}

fn running_delete(id: &str) -> DocWrite {
    DocWrite::Delete {
        kind: RUNNING_KIND.into(),
        key: id.to_owned(),
        expected_version: 1,
    }
}

/// Parses and checks an upload; any bad line refuses the whole upload (nothing is stored).
fn parse_upload(body: &[u8]) -> Result<(CallMeta, Vec<Row>), HubError> {
    let text = std::str::from_utf8(body).map_err(|_| {
        invalid(
            "invalid_batch",
            "Tệp tải lên phải là văn bản UTF-8 (NDJSON)".into(),
            "The upload must be UTF-8 text (NDJSON)".into(),
        )
    })?;
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, head)) = lines.next() else {
        return Err(invalid(
            "invalid_batch",
            "Tệp tải lên trống".into(),
            "The upload is empty".into(),
        ));
    };
    let meta: CallMeta = serde_json::from_str(head).map_err(|e| {
        invalid(
            "invalid_batch",
            format!("Dòng 1 phải nêu mục đích, người dùng và hồ sơ: {e}"),
            format!("Line 1 must give the purpose, end user and case reference: {e}"),
        )
    })?;
    let mut rows = Vec::new();
    for (n, line) in lines {
        if rows.len() == MAX_ROWS {
            return Err(invalid(
                "too_many_rows",
                format!("Một lô tối đa {MAX_ROWS} dòng"),
                format!("A batch holds at most {MAX_ROWS} rows"),
            ));
        }
        let bad = |why: String| {
            invalid(
                "invalid_batch_row",
                format!("Dòng {} không hợp lệ: {why}", n + 1),
                format!("Line {} is invalid: {why}", n + 1),
            )
        };
        let row: Row = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        parse_id(&row.id).map_err(|e| bad(e.to_string()))?;
        claimed_fields(&row.claims).map_err(|e| bad(e.to_string()))?;
        rows.push(row);
    }
    if rows.is_empty() {
        return Err(invalid(
            "invalid_batch",
            "Lô không có dòng nào cần đối chiếu".into(),
            "The batch has no rows".into(),
        ));
    }
    Ok((meta, rows))
}

/// Accepts a batch and starts answering it in the background. The upload is refused whole
/// when a line is invalid, or when the caller's rights refuse the service for the batch's
/// purpose and fields (that refusal is logged, like a single call's). The job and its rows are
/// stored in one transaction before this returns.
pub fn submit(hub: &Arc<Hub>, client: &Client, body: &[u8]) -> Result<JobStatus, HubError> {
    let (meta, rows) = parse_upload(body)?;
    let fields: Vec<String> = rows
        .iter()
        .filter_map(|r| claimed_fields(&r.claims).ok())
        .flatten()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let now = hub.now();
    if let Err(refusal) = hub.decide_call(
        client,
        &meta,
        SERVICE_VERIFY_ATTRIBUTES,
        None,
        &fields,
        now,
        true,
    )? {
        let mut record =
            hub.record_for(client, &meta, SERVICE_VERIFY_ATTRIBUTES, None, &fields, now);
        record.result = ExchangeResult::Refused(refusal.code().to_owned());
        hub.log_one(&record)?;
        return Err(refusal.into());
    }
    let mut raw = [0u8; 16];
    rand::Rng::fill_bytes(&mut rand::rng(), &mut raw);
    let id = format!("job_{}", hex::encode(raw));
    let st = JobStatus {
        id: id.clone(),
        org: client.org.clone(),
        subsystem: client.subsystem.clone(),
        meta,
        state: JobState::Running,
        total: rows.len() as u64,
        done: 0,
        served: 0,
        refused: 0,
        failed: 0,
        created_at: now,
        finished_at: None,
        error: None,
    };
    let until = kept_until(&st);
    let job = StoredJob {
        status: st.clone(),
        runner: Some(Lease {
            node: hub.node().to_owned(),
            until: now + LEASE,
        }),
    };
    let mut writes = vec![job_write(&job, 0)?, running_write(&id, until)];
    writes.extend(input_writes(&id, 0, &rows, until)?);
    drop(rows);
    hub.docs().commit_docs(&writes).map_err(store_err)?;
    if hub.batch_local().claim(&id) {
        spawn(hub.clone(), id);
    }
    Ok(st)
}

/// Answers a job on a thread of its own; the job must have been claimed in this process
/// ([`LocalJobs::claim`]), and is released when the thread ends.
fn spawn(hub: Arc<Hub>, id: String) {
    std::thread::spawn(move || {
        match run(&hub, &id) {
            Ok(Run::Finished) => {}
            Ok(Run::LostLease) => {
                tracing::warn!(job = %id, "another node took this batch job over; stopped here");
            }
            Err(e) => {
                tracing::error!(job = %id, error = %e, "batch job failed");
                // Record why it stopped (a failed job is not resumed: its owner resubmits).
                if let Err(e2) = fail(&hub, &id, &e) {
                    tracing::error!(job = %id, error = %e2, "recording a batch job's failure");
                }
            }
        }
        hub.batch_local().release(&id);
    });
}

fn fail(hub: &Hub, id: &str, e: &HubError) -> Result<(), HubError> {
    let Some((mut job, version)) = load(hub, id)? else {
        return Ok(());
    };
    let ours = job.runner.as_ref().is_some_and(|l| l.node == hub.node());
    if job.status.state != JobState::Running || !ours {
        return Ok(());
    }
    job.status.state = JobState::Failed;
    job.status.error = Some(e.to_string());
    job.status.finished_at = Some(hub.now());
    job.runner = None;
    hub.docs()
        .commit_docs(&[job_write(&job, version)?, running_delete(id)])
        .map_err(store_err)?;
    Ok(())
}

/// Starts every unfinished job that no live node is answering: its lease has lapsed, it names
/// this node (which has restarted), or it names none. Run when a node starts and every few
/// seconds after; returns how many jobs this call started. Jobs kept as files by earlier
/// builds are moved into the store first, at the first call that gets through it.
pub fn resume(hub: &Arc<Hub>) -> Result<usize, HubError> {
    let moved = &hub.batch_local().files_moved;
    if !moved.load(std::sync::atomic::Ordering::Acquire) {
        migrate_files(hub)?;
        moved.store(true, std::sync::atomic::Ordering::Release);
    }
    let now = hub.now();
    let mut started = 0;
    let running = hub
        .docs()
        .list(RUNNING_KIND, "", MAX_RUNNING_LISTED as u32)
        .map_err(store_err)?;
    for (id, marker) in running {
        if !valid_job_id(&id) || !hub.batch_local().claim(&id) {
            continue;
        }
        match take(hub, &id, marker.version, now) {
            Ok(true) => {
                spawn(hub.clone(), id);
                started += 1;
            }
            Ok(false) => hub.batch_local().release(&id),
            Err(e) => {
                hub.batch_local().release(&id);
                return Err(e);
            }
        }
    }
    Ok(started)
}

/// Most unfinished jobs one [`resume`] looks at.
const MAX_RUNNING_LISTED: usize = 10_000;

/// Claims a job for this node if no live node answers it; whether it did.
fn take(hub: &Hub, id: &str, marker_version: u64, now: DateTime<Utc>) -> Result<bool, HubError> {
    let Some((mut job, version)) = load(hub, id)? else {
        return Ok(false);
    };
    if job.status.state != JobState::Running {
        // A marker left behind: nothing to run. Another node may remove it at the same time.
        let _ = hub.docs().delete(RUNNING_KIND, id, marker_version);
        return Ok(false);
    }
    let free = job
        .runner
        .as_ref()
        .is_none_or(|l| l.node == hub.node() || l.until <= now);
    if !free {
        return Ok(false);
    }
    job.runner = Some(Lease {
        node: hub.node().to_owned(),
        until: now + LEASE,
    });
    match hub.docs().commit_docs(&[job_write(&job, version)?]) {
        Ok(_) => Ok(true),
        Err(StoreError::Conflict { .. } | StoreError::Exists(_)) => Ok(false),
        Err(e) => Err(store_err(e)),
    }
}

/// How [`run`] ended without an error.
enum Run {
    /// Every row is answered.
    Finished,
    /// Another node holds the job now; this one stored nothing more.
    LostLease,
}

/// Answers the rest of a job, chunk by chunk.
fn run(hub: &Hub, id: &str) -> Result<Run, HubError> {
    let Some((mut job, mut version)) = load(hub, id)? else {
        return Ok(Run::Finished);
    };
    if job.status.state != JobState::Running {
        return Ok(Run::Finished);
    }
    if job.runner.as_ref().is_none_or(|l| l.node != hub.node()) {
        return Ok(Run::LostLease);
    }
    let client = Client {
        org: job.status.org.clone(),
        subsystem: job.status.subsystem.clone(),
        key_not_after: None,
        scope: None,
    };
    let first = job.status.done / CHUNK as u64;
    let chunks = job.status.total.div_ceil(CHUNK as u64);
    let until = kept_until(&job.status);
    // A reader thread reads and parses the next chunk and matches its rows against the register
    // while this one answers, logs and stores the current chunk.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Chunk, HubError>>(1);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            for n in first..chunks {
                let next = read_chunk(hub, id, n);
                let stop = next.is_err();
                // The receiver has gone when the answering side stopped.
                if tx.send(next).is_err() || stop {
                    return;
                }
            }
        });
        let mut buf = Vec::new();
        for next in rx {
            let (n, rows, answers) = next?;
            buf.clear();
            answer_chunk(hub, &client, &mut job.status, &rows, answers, &mut buf)?;
            job.status.done += rows.len() as u64;
            let now = hub.now();
            let answers = std::str::from_utf8(&buf).map_err(io)?;
            let mut writes = vec![
                DocWrite::Put {
                    kind: RESULT_KIND.into(),
                    key: chunk_key(id, n),
                    expected_version: 0,
                    json: array_of_ndjson(answers),
                    expires_at: Some(until),
                },
                DocWrite::Delete {
                    kind: INPUT_KIND.into(),
                    key: chunk_key(id, n),
                    expected_version: 1,
                },
            ];
            if job.status.done >= job.status.total {
                job.status.state = JobState::Done;
                job.status.finished_at = Some(now);
                job.runner = None;
                writes.push(running_delete(id));
            } else {
                job.runner = Some(Lease {
                    node: hub.node().to_owned(),
                    until: now + LEASE,
                });
            }
            writes.push(job_write(&job, version)?);
            match hub.docs().commit_docs(&writes) {
                Ok(versions) => version = versions.last().copied().unwrap_or(version),
                Err(StoreError::Conflict { .. } | StoreError::Exists(_)) => {
                    return Ok(Run::LostLease);
                }
                Err(e) => return Err(store_err(e)),
            }
        }
        Ok(Run::Finished)
    })
}

/// Chunk `n` of a job's rows and their answers.
fn read_chunk(hub: &Hub, id: &str, n: u64) -> Result<Chunk, HubError> {
    let doc = hub
        .docs()
        .get(INPUT_KIND, &chunk_key(id, n))
        .map_err(store_err)?
        .ok_or_else(|| HubError::internal(format!("chunk {n} of batch job {id} is missing")))?;
    let rows: Vec<Row> = serde_json::from_str(&doc.json).map_err(io)?;
    let answers = match_rows(hub, &rows)?;
    Ok((n, rows, answers))
}

/// What a job file of an earlier build holds beside the status.
#[derive(Deserialize)]
struct LegacyMark {
    #[serde(default)]
    results_bytes: u64,
}

/// Moves the jobs that earlier builds kept as files (`<id>.json`, `<id>.input.ndjson`,
/// `<id>.results.ndjson` in the node's `jobs` directory) into the store, then removes the
/// files. An unfinished job goes on from its last whole chunk; its counts are taken from the
/// answers kept.
fn migrate_files(hub: &Hub) -> Result<usize, HubError> {
    let dir = hub.jobs_dir();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io(e)),
    };
    let mut moved = 0;
    for e in entries {
        let name = e.map_err(io)?.file_name();
        let Some(id) = name.to_str().and_then(|s| s.strip_suffix(".json")) else {
            continue;
        };
        if !valid_job_id(id) {
            continue;
        }
        let files = [
            dir.join(format!("{id}.json")),
            dir.join(format!("{id}.input.ndjson")),
            dir.join(format!("{id}.results.ndjson")),
        ];
        if load(hub, id)?.is_none() {
            // A job that cannot be read is left where it is, and the node starts anyway.
            if let Err(e) = migrate_job(hub, &files) {
                tracing::error!(job = id, error = %e, "a batch job of an earlier build could not be moved into the store; its files are left");
                continue;
            }
            moved += 1;
        }
        for f in &files {
            match fs::remove_file(f) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(e)),
            }
        }
    }
    if moved > 0 {
        tracing::info!(jobs = moved, "batch jobs moved from files into the store");
    }
    Ok(moved)
}

fn migrate_job(
    hub: &Hub,
    [status, input, results]: &[std::path::PathBuf; 3],
) -> Result<(), HubError> {
    let bytes = fs::read(status).map_err(io)?;
    let mut st: JobStatus = serde_json::from_slice(&bytes).map_err(io)?;
    let mark: LegacyMark = serde_json::from_slice(&bytes).map_err(io)?;
    let until = kept_until(&st);
    let running = st.state == JobState::Running;
    // The answers of saved chunks; a running job keeps whole chunks only.
    let answers = match fs::read(results) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io(e)),
    };
    let saved = answers
        .get(..mark.results_bytes as usize)
        .unwrap_or(&answers);
    let mut lines: Vec<&str> = std::str::from_utf8(saved)
        .map_err(io)?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    if running {
        lines.truncate(lines.len().min(st.done as usize) / CHUNK * CHUNK);
        st.done = lines.len() as u64;
        let count = |what: &str| {
            lines
                .iter()
                .filter(|l| {
                    serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| v["result"] == what)
                })
                .count() as u64
        };
        (st.served, st.refused, st.failed) = (count("served"), count("refused"), count("failed"));
    }
    let mut writes = Vec::new();
    for (chunk, n) in lines.chunks(CHUNK).zip(0u64..) {
        writes.push(DocWrite::Put {
            kind: RESULT_KIND.into(),
            key: chunk_key(&st.id, n),
            expected_version: 0,
            json: format!("[{}]", chunk.join(",\n")),
            expires_at: Some(until),
        });
    }
    if running {
        let rows = BufReader::new(fs::File::open(input).map_err(io)?)
            .lines()
            .skip(st.done as usize)
            .map(|l| {
                l.map_err(io)
                    .and_then(|l| serde_json::from_str::<Row>(&l).map_err(io))
            })
            .collect::<Result<Vec<Row>, HubError>>()?;
        writes.extend(input_writes(&st.id, st.done / CHUNK as u64, &rows, until)?);
        writes.push(running_write(&st.id, until));
    }
    writes.push(job_write(
        &StoredJob {
            status: st,
            runner: None,
        },
        0,
    )?);
    hub.docs().commit_docs(&writes).map_err(store_err)?;
    Ok(())
}

/// A row's answers: per claimed field, or `None` when the register has no such person.
type Answers = Option<Vec<FieldAnswer>>;
type Chunk = (u64, Vec<Row>, Vec<Answers>);

/// The attribute-match answers of a chunk's rows: from the hub's in-memory view of the register
/// where it holds the person (as a single call is answered), else from the records read from
/// the store in one go.
fn match_rows(hub: &Hub, rows: &[Row]) -> Result<Vec<Answers>, HubError> {
    let ids: Vec<Option<PersonalId>> = rows.iter().map(|r| r.id.parse().ok()).collect();
    let index = hub.match_index();
    let mut answers: Vec<Option<Answers>> = rows
        .iter()
        .zip(&ids)
        .map(|(row, id)| {
            let id = id.as_ref()?;
            index.and_then(|m| m.answer(id, &row.claims)).map(Some)
        })
        .collect();
    let unread: Vec<PersonalId> = ids
        .iter()
        .zip(&answers)
        .filter(|(_, a)| a.is_none())
        .filter_map(|(id, _)| *id)
        .collect();
    if !unread.is_empty() {
        let people: HashMap<String, dancu_domain::person::Person> = hub
            .store()
            .persons(&unread)
            .map_err(io)?
            .into_iter()
            .map(|p| (p.id.to_string(), p))
            .collect();
        for (row, answer) in rows.iter().zip(answers.iter_mut()) {
            if answer.is_none() {
                *answer = Some(
                    people
                        .get(&row.id)
                        .map(|p| matching::attribute_match(p, &row.claims)),
                );
            }
        }
    }
    Ok(answers.into_iter().map(Option::flatten).collect())
}

/// Decides, answers and logs one chunk; appends its answers to `out`.
fn answer_chunk(
    hub: &Hub,
    client: &Client,
    st: &mut JobStatus,
    rows: &[Row],
    answers: Vec<Answers>,
    out: &mut Vec<u8>,
) -> Result<(), HubError> {
    let now = hub.now();
    let mut records: Vec<AuditRecord> = Vec::with_capacity(rows.len());
    let (mut served, mut refused, mut failed) = (0, 0, 0);
    for ((i, row), fields_answer) in rows.iter().enumerate().zip(answers) {
        let n = st.done + i as u64 + 1;
        let fields = claimed_fields(&row.claims)?;
        let mut record = hub.record_for(
            client,
            &st.meta,
            SERVICE_VERIFY_ATTRIBUTES,
            Some(&row.id),
            &fields,
            now,
        );
        let (result, code, fields) = match hub.decide_call(
            client,
            &st.meta,
            SERVICE_VERIFY_ATTRIBUTES,
            Some(&row.id),
            &fields,
            now,
            false,
        )? {
            Err(refusal) => {
                refused += 1;
                let code = refusal.code();
                record.result = ExchangeResult::Refused(code.to_owned());
                ("refused", Some(code), None)
            }
            Ok(grant) => {
                record.covert_until = grant.covert_until;
                match fields_answer {
                    Some(field_answers) => {
                        served += 1;
                        ("served", None, Some(field_answers))
                    }
                    None => {
                        failed += 1;
                        record.result = ExchangeResult::Failed("person_not_found".into());
                        ("failed", Some("person_not_found"), None)
                    }
                }
            }
        };
        let answer = RowAnswer {
            row: n,
            id: &row.id,
            result,
            code,
            fields,
        };
        serde_json::to_writer(&mut *out, &answer).map_err(io)?;
        out.push(b'\n');
        records.push(record);
    }
    // Evidence first: the answers are kept only once their exchanges are in the log.
    hub.log_many(&records)?;
    st.served += served;
    st.refused += refused;
    st.failed += failed;
    Ok(())
}

/// The job's status, for its owner only (another caller is told it does not exist), at any
/// node over the job's database.
pub fn status(hub: &Hub, client: &Client, id: &str) -> Result<JobStatus, HubError> {
    owned(hub, client, id).map(|(job, _)| job.status)
}

/// The stored job and its version, if `client` submitted it (another caller is told it does
/// not exist).
fn owned(hub: &Hub, client: &Client, id: &str) -> Result<(StoredJob, u64), HubError> {
    if !valid_job_id(id) {
        return Err(HubError::JobNotFound);
    }
    match load(hub, id)? {
        Some((job, version))
            if job.status.org == client.org && job.status.subsystem == client.subsystem =>
        {
            Ok((job, version))
        }
        _ => Err(HubError::JobNotFound),
    }
}

/// The results (NDJSON, one answer per row in row order) of a finished job, for its owner.
pub fn results(hub: &Hub, client: &Client, id: &str) -> Result<Vec<u8>, HubError> {
    let st = status(hub, client, id)?;
    if st.state != JobState::Done {
        return Err(invalid(
            "job_not_finished",
            format!("Lô chưa xong: {}/{} dòng", st.done, st.total),
            format!("The job has not finished: {}/{} rows", st.done, st.total),
        ));
    }
    let mut out = Vec::new();
    for n in 0..st.total.div_ceil(CHUNK as u64) {
        let doc = hub
            .docs()
            .get(RESULT_KIND, &chunk_key(id, n))
            .map_err(store_err)?
            .ok_or_else(|| {
                HubError::internal(format!("chunk {n} of batch job {id}'s results is missing"))
            })?;
        ndjson_of_array(&doc.json, &mut out)?;
    }
    Ok(out)
}

/// Deletes a job that is no longer running, with its answers and any rows left, for its
/// owner (at any node): a member that has its results need not leave them with the hub for
/// the [`JOB_KEEP_DAYS`] days it would otherwise keep them.
pub fn delete(hub: &Hub, client: &Client, id: &str) -> Result<(), HubError> {
    let (StoredJob { status: st, .. }, version) = owned(hub, client, id)?;
    if st.state == JobState::Running {
        return Err(HubError::Conflict {
            code: "job_running",
            vi: format!(
                "Lô đang được xử lý ({}/{} dòng); chỉ xoá được lô đã xong hoặc đã dừng",
                st.done, st.total
            ),
            en: format!(
                "The job is running ({}/{} rows); only a finished or stopped job can be deleted",
                st.done, st.total
            ),
        });
    }
    let prefix = format!("{id}/");
    let mut writes = vec![DocWrite::Delete {
        kind: JOB_KIND.into(),
        key: id.to_owned(),
        expected_version: version,
    }];
    for kind in [RESULT_KIND, INPUT_KIND] {
        let chunks = hub
            .docs()
            .list(kind, &prefix, st.total.div_ceil(CHUNK as u64) as u32 + 1)
            .map_err(store_err)?;
        writes.extend(chunks.into_iter().map(|(key, doc)| DocWrite::Delete {
            kind: kind.into(),
            key,
            expected_version: doc.version,
        }));
    }
    match hub.docs().commit_docs(&writes) {
        Ok(_) => Ok(()),
        // Deleted at the same time elsewhere.
        Err(StoreError::Conflict { .. }) => Err(HubError::JobNotFound),
        Err(e) => Err(store_err(e)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::quota_tests::open_node;
    use chrono::TimeZone;
    use dancu_domain::clock::FixedClock;
    use dancu_domain::person::Sex;
    use serde_json::{Value, json};
    use std::path::Path;

    #[test]
    fn uploads_are_checked_whole() {
        let ok = b"{\"purpose\":\"kyc\"}\n{\"id\":\"001090000001\",\"claims\":{\"name\":\"A\"}}\n";
        let (meta, rows) = parse_upload(ok).unwrap();
        assert_eq!(meta.purpose, "kyc");
        assert_eq!(rows.len(), 1);
        for bad in [
            &b""[..],
            b"{\"purpose\":\"kyc\"}\n",
            b"{\"purpose\":\"kyc\"}\n{\"id\":\"12\",\"claims\":{\"name\":\"A\"}}\n",
            b"{\"purpose\":\"kyc\"}\n{\"id\":\"001090000001\",\"claims\":{}}\n",
            b"not json\n",
        ] {
            assert!(
                parse_upload(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(valid_job_id(&format!("job_{}", "a".repeat(32))));
        assert!(!valid_job_id("job_../../etc"));
    }

    #[test]
    fn stored_answers_give_back_the_same_lines() {
        for ndjson in ["{\"a\":\"x,\\ny\"}\n{\"b\":[1,2]}\n", "{\"a\":1}\n"] {
            let mut out = Vec::new();
            ndjson_of_array(&array_of_ndjson(ndjson), &mut out).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), ndjson);
            let v: Value = serde_json::from_str(&array_of_ndjson(ndjson)).unwrap();
            assert!(v.is_array(), "stored as one JSON array");
        }
    }

    fn client() -> Client {
        Client {
            org: "bank-a".into(),
            subsystem: "big".into(),
            key_not_after: None,
            scope: None,
        }
    }

    /// Five rows (three chunks in test builds) of people the register does not hold.
    fn rows() -> Vec<Row> {
        (1..=5)
            .map(|i| Row {
                id: PersonalId::compose("001", Sex::Male, 1990, i)
                    .unwrap()
                    .to_string(),
                claims: serde_json::from_value(json!({"sex": "male"})).unwrap(),
            })
            .collect()
    }

    fn upload(rows: &[Row]) -> Vec<u8> {
        let mut body = json!({"purpose": "account_opening"}).to_string();
        for r in rows {
            body.push('\n');
            body.push_str(&serde_json::to_string(r).unwrap());
        }
        body.into_bytes()
    }

    fn wait_done(hub: &Hub, id: &str) -> JobStatus {
        for _ in 0..500 {
            let st = status(hub, &client(), id).unwrap();
            if st.state != JobState::Running {
                return st;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("the job did not finish");
    }

    fn nodes(dir: &Path) -> (Arc<FixedClock>, Arc<Hub>, Arc<Hub>) {
        let clock = Arc::new(FixedClock::new(
            Utc.with_ymd_and_hms(2026, 3, 14, 3, 0, 0).unwrap(),
        ));
        let a = Arc::new(open_node(dir, "a", clock.clone()));
        let b = Arc::new(open_node(dir, "b", clock.clone()));
        (clock, a, b)
    }

    /// Puts a finished job back as its node would leave it killed after `kept` chunks: the
    /// later chunks' answers gone, their rows back, the lease held by `node` for a minute.
    /// A job of [`rows`] answered whole at node A, then set back to where A would have been
    /// had it stopped after `kept` chunks, still holding the lease; with A's whole answers.
    fn stopped_job(
        dir: &Path,
        kept: u64,
    ) -> (Arc<FixedClock>, Arc<Hub>, Arc<Hub>, String, Vec<u8>) {
        let (clock, a, b) = nodes(dir);
        let rows = rows();
        let id = submit(&a, &client(), &upload(&rows)).unwrap().id;
        wait_done(&a, &id);
        let whole = results(&a, &client(), &id).unwrap();
        rewind(&a, &id, &rows, kept, a.node());
        (clock, a, b, id, whole)
    }

    fn rewind(hub: &Hub, id: &str, rows: &[Row], kept: u64, node: &str) {
        let (mut job, version) = load(hub, id).unwrap().unwrap();
        let until = kept_until(&job.status);
        let mut writes = Vec::new();
        for n in kept..job.status.total.div_ceil(CHUNK as u64) {
            writes.push(DocWrite::Delete {
                kind: RESULT_KIND.into(),
                key: chunk_key(id, n),
                expected_version: 1,
            });
        }
        let done = kept * CHUNK as u64;
        writes.extend(input_writes(id, kept, &rows[done as usize..], until).unwrap());
        writes.push(running_write(id, until));
        job.status.state = JobState::Running;
        job.status.done = done;
        job.status.failed = done;
        job.status.finished_at = None;
        job.runner = Some(Lease {
            node: node.to_owned(),
            until: hub.now() + LEASE,
        });
        writes.push(job_write(&job, version).unwrap());
        hub.docs().commit_docs(&writes).unwrap();
    }

    fn answers(out: &[u8]) -> Vec<Value> {
        std::str::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn a_job_is_answered_in_chunks_and_read_at_any_node() {
        let dir = tempfile::tempdir().unwrap();
        let (_clock, a, b) = nodes(dir.path());
        let rows = rows();
        let st = submit(&a, &client(), &upload(&rows)).unwrap();
        let done = wait_done(&a, &st.id);
        assert_eq!((done.state, done.done, done.failed), (JobState::Done, 5, 5));
        let at_a = results(&a, &client(), &st.id).unwrap();
        assert_eq!(results(&b, &client(), &st.id).unwrap(), at_a);
        assert_eq!(status(&b, &client(), &st.id).unwrap().done, 5);
        let lines = answers(&at_a);
        assert_eq!(lines.len(), 5);
        for (i, (l, r)) in lines.iter().zip(&rows).enumerate() {
            assert_eq!(
                (&l["row"], l["id"].as_str()),
                (&json!(i + 1), Some(r.id.as_str()))
            );
            assert_eq!(l["code"], "person_not_found");
        }
        // Nothing of the rows is left beside the answers, and no marker of a running job.
        assert!(a.docs().list(INPUT_KIND, "", 100).unwrap().is_empty());
        assert!(a.docs().list(RUNNING_KIND, "", 100).unwrap().is_empty());
        // Another subsystem is told nothing, at either node, and may not delete it.
        let other = Client {
            subsystem: "small".into(),
            ..client()
        };
        for hub in [&a, &b] {
            assert_eq!(
                status(hub, &other, &st.id).unwrap_err().code(),
                "job_not_found"
            );
            assert_eq!(
                results(hub, &other, &st.id).unwrap_err().code(),
                "job_not_found"
            );
            assert_eq!(
                delete(hub, &other, &st.id).unwrap_err().code(),
                "job_not_found"
            );
        }
        // Its owner deletes it at the other node: nothing of it is left.
        delete(&b, &client(), &st.id).unwrap();
        assert_eq!(
            status(&a, &client(), &st.id).unwrap_err().code(),
            "job_not_found"
        );
        for kind in [JOB_KIND, RESULT_KIND, INPUT_KIND, RUNNING_KIND] {
            assert!(a.docs().list(kind, "", 100).unwrap().is_empty(), "{kind}");
        }
        assert_eq!(
            delete(&a, &client(), &st.id).unwrap_err().code(),
            "job_not_found"
        );
    }

    #[test]
    fn a_job_whose_node_stopped_is_finished_by_another_once_its_lease_lapses() {
        let dir = tempfile::tempdir().unwrap();
        // Node A stops after the first chunk, holding the job.
        let (clock, a, b, id, whole) = stopped_job(dir.path(), 1);
        assert_eq!(resume(&b).unwrap(), 0, "A's lease still runs");
        let st = status(&b, &client(), &id).unwrap();
        assert_eq!((st.state, st.done), (JobState::Running, 2));
        assert_eq!(
            results(&b, &client(), &id).unwrap_err().code(),
            "job_not_finished"
        );
        assert_eq!(
            delete(&b, &client(), &id).unwrap_err().code(),
            "job_running"
        );

        clock.advance(LEASE + TimeDelta::seconds(1));
        assert_eq!(resume(&b).unwrap(), 1);
        let st = wait_done(&b, &id);
        assert_eq!((st.done, st.failed), (5, 5));
        assert_eq!(
            results(&a, &client(), &id).unwrap(),
            whole,
            "each row answered once"
        );
        let (job, _) = load(&b, &id).unwrap().unwrap();
        assert_eq!(job.runner, None);
        assert!(b.docs().list(RUNNING_KIND, "", 100).unwrap().is_empty());
        assert!(b.docs().list(INPUT_KIND, "", 100).unwrap().is_empty());
        assert_eq!(resume(&a).unwrap(), 0, "nothing left to run");
    }

    #[test]
    fn a_node_whose_lease_was_taken_stores_nothing_more() {
        let dir = tempfile::tempdir().unwrap();
        let (clock, a, b, id, _) = stopped_job(dir.path(), 1);
        clock.advance(LEASE + TimeDelta::seconds(1));
        let marker = b.docs().get(RUNNING_KIND, &id).unwrap().unwrap();
        assert!(take(&b, &id, marker.version, b.now()).unwrap());
        assert!(
            !take(&a, &id, marker.version, a.now()).unwrap(),
            "B's lease runs"
        );
        let before = load(&a, &id).unwrap().unwrap().1;
        assert!(matches!(run(&a, &id).unwrap(), Run::LostLease));
        assert_eq!(load(&a, &id).unwrap().unwrap().1, before, "nothing stored");
        assert!(matches!(run(&b, &id).unwrap(), Run::Finished));
        assert_eq!(status(&a, &client(), &id).unwrap().done, 5);
    }

    #[test]
    fn a_restarted_node_goes_on_with_its_own_job_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (_clock, a, b, id, whole) = stopped_job(dir.path(), 2);
        assert_eq!(resume(&b).unwrap(), 0);
        assert_eq!(resume(&a).unwrap(), 1, "its own lease: no need to wait");
        wait_done(&a, &id);
        assert_eq!(results(&b, &client(), &id).unwrap(), whole);
    }

    #[test]
    fn jobs_kept_as_files_by_earlier_builds_move_into_the_store_and_finish() {
        let dir = tempfile::tempdir().unwrap();
        let (_clock, a, _b) = nodes(dir.path());
        let rows = rows();
        // The same job answered whole, for comparison.
        let fresh = submit(&a, &client(), &upload(&rows)).unwrap().id;
        wait_done(&a, &fresh);
        let whole = String::from_utf8(results(&a, &client(), &fresh).unwrap()).unwrap();

        // An earlier build saved one chunk of answers and was stopped half-way through
        // writing the next answer.
        let id = format!("job_{}", "b".repeat(32));
        let jobs = a.jobs_dir().to_owned();
        fs::create_dir_all(&jobs).unwrap();
        let saved: String = whole.lines().take(2).map(|l| format!("{l}\n")).collect();
        let mut st = status(&a, &client(), &fresh).unwrap();
        st.id.clone_from(&id);
        st.state = JobState::Running;
        (st.done, st.failed, st.finished_at) = (2, 2, None);
        let mut legacy = serde_json::to_value(&st).unwrap();
        legacy["results_bytes"] = json!(saved.len());
        fs::write(jobs.join(format!("{id}.json")), legacy.to_string()).unwrap();
        let input: String = rows
            .iter()
            .map(|r| serde_json::to_string(r).unwrap() + "\n")
            .collect();
        fs::write(jobs.join(format!("{id}.input.ndjson")), input).unwrap();
        fs::write(
            jobs.join(format!("{id}.results.ndjson")),
            format!("{saved}{{\"row\":3,\"id\":"),
        )
        .unwrap();
        // A finished one too.
        let done_id = format!("job_{}", "c".repeat(32));
        let mut done = status(&a, &client(), &fresh).unwrap();
        done.id.clone_from(&done_id);
        let mut legacy = serde_json::to_value(&done).unwrap();
        legacy["results_bytes"] = json!(whole.len());
        fs::write(jobs.join(format!("{done_id}.json")), legacy.to_string()).unwrap();
        fs::write(jobs.join(format!("{done_id}.results.ndjson")), &whole).unwrap();
        // And a job file that cannot be read.
        let broken = jobs.join(format!("job_{}.json", "d".repeat(32)));
        fs::write(&broken, b"{not json").unwrap();

        assert_eq!(resume(&a).unwrap(), 1);
        let st = wait_done(&a, &id);
        assert_eq!((st.state, st.done, st.failed), (JobState::Done, 5, 5));
        let rows_of = |out: Vec<u8>| {
            answers(&out)
                .into_iter()
                .map(|mut v| {
                    v.as_object_mut().unwrap().remove("row");
                    v
                })
                .collect::<Vec<_>>()
        };
        let expected = rows_of(whole.clone().into_bytes());
        assert_eq!(rows_of(results(&a, &client(), &id).unwrap()), expected);
        assert_eq!(results(&a, &client(), &done_id).unwrap(), whole.as_bytes());
        assert_eq!(
            answers(&results(&a, &client(), &id).unwrap())
                .iter()
                .map(|v| v["row"].as_u64().unwrap())
                .collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        assert_eq!(
            fs::read_dir(&jobs).unwrap().count(),
            1,
            "the files are gone but the unreadable one"
        );
        // The job file that cannot be read stays where it is and stops nothing.
        assert_eq!(resume(&a).unwrap(), 0);
        assert!(broken.exists());
    }
}
