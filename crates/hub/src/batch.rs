//! Batch verification (đối chiếu hàng loạt): a member uploads up to [`MAX_ROWS`] attribute-match
//! requests as one job; the hub checks the whole upload before accepting it, then answers the
//! rows in the background, in chunks, with the same rules as the single call: every row is
//! decided with the caller's rights and limits (quota and rate are charged per row) and logged
//! as its own exchange (so the log names every person checked and fees are metered per row).
//! A chunk's records reach the log with one disk sync, before its answers are written.
//!
//! A job lives in three files of the jobs directory: `<id>.json` (owner, call metadata,
//! progress, state), `<id>.input.ndjson` (the accepted rows) and `<id>.results.ndjson` (one
//! answer per row, in row order). After each chunk the results are synced and then the state
//! is replaced atomically; a job that was running when the process stopped is resumed from its
//! last saved chunk ([`resume`]). Rows of a chunk interrupted after logging are logged again
//! when it is redone (the log errs on the side of more evidence, never less).
//!
//! Upload format (NDJSON): a first line with the call metadata (`purpose`, `end_user`,
//! `case_ref`), then one row per line: `{"id": "<personal ID>", "claims": {...}}`.

use crate::service::{
    CallMeta, Client, Hub, HubError, SERVICE_VERIFY_ATTRIBUTES, claimed_fields, parse_id,
};
use chrono::{DateTime, TimeDelta, Utc};
use dancu_domain::Problem;
use dancu_exchange::log::record::{AuditRecord, ExchangeResult};
use dancu_exchange::matching::{self, Claims, FieldAnswer};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Most rows one job may hold.
pub const MAX_ROWS: usize = 1_000_000;
/// Rows answered (and logged with one sync) per chunk.
const CHUNK: usize = 10_000;

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
    /// Bytes of the results file that belong to saved chunks.
    #[serde(default)]
    pub results_bytes: u64,
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

fn paths(dir: &Path, id: &str) -> (PathBuf, PathBuf, PathBuf) {
    (
        dir.join(format!("{id}.json")),
        dir.join(format!("{id}.input.ndjson")),
        dir.join(format!("{id}.results.ndjson")),
    )
}

fn valid_job_id(id: &str) -> bool {
    id.len() == 36 && id.starts_with("job_") && id[4..].bytes().all(|b| b.is_ascii_hexdigit())
}

fn save(dir: &Path, st: &JobStatus) -> Result<(), HubError> {
    let (path, _, _) = paths(dir, &st.id);
    let tmp = dir.join(format!("{}.json.tmp", st.id));
    let json = serde_json::to_vec(st).map_err(io)?;
    let mut f = File::create(&tmp).map_err(io)?;
    f.write_all(&json).and_then(|()| f.sync_all()).map_err(io)?;
    fs::rename(&tmp, &path).map_err(io)
}

fn load(dir: &Path, id: &str) -> Result<Option<JobStatus>, HubError> {
    let (path, _, _) = paths(dir, id);
    match fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(io),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(e)),
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
/// purpose and fields (that refusal is logged, like a single call's).
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
    let dir = hub.jobs_dir();
    fs::create_dir_all(dir).map_err(io)?;
    let mut raw = [0u8; 16];
    rand::Rng::fill_bytes(&mut rand::rng(), &mut raw);
    let id = format!("job_{}", hex::encode(raw));
    if hub.shares_database() {
        // Which node holds the job, so that another node can say so instead of "not found".
        let json = serde_json::json!({"node": hub.node(), "org": client.org,
                                      "subsystem": client.subsystem})
        .to_string();
        hub.docs()
            .put(
                JOB_NODE_KIND,
                &id,
                0,
                &json,
                Some(now + TimeDelta::days(90)),
            )
            .map_err(HubError::internal)?;
    }
    let (_, input, results) = paths(dir, &id);
    let mut out = std::io::BufWriter::new(File::create(&input).map_err(io)?);
    for r in &rows {
        serde_json::to_writer(&mut out, r).map_err(io)?;
        out.write_all(b"\n").map_err(io)?;
    }
    out.into_inner().map_err(io)?.sync_all().map_err(io)?;
    File::create(&results).map_err(io)?;
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
        results_bytes: 0,
    };
    save(dir, &st)?;
    spawn(hub.clone(), id);
    Ok(st)
}

fn spawn(hub: Arc<Hub>, id: String) {
    std::thread::spawn(move || {
        if let Err(e) = run(&hub, &id) {
            // Record why it stopped (a failed job is not resumed: its owner resubmits).
            if let Ok(Some(mut st)) = load(hub.jobs_dir(), &id) {
                st.state = JobState::Failed;
                st.error = Some(e.to_string());
                st.finished_at = Some(hub.now());
                let _ = save(hub.jobs_dir(), &st);
            }
        }
    });
}

/// Resumes every job that was running when the process stopped; returns how many.
pub fn resume(hub: &Arc<Hub>) -> Result<usize, HubError> {
    let dir = hub.jobs_dir();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io(e)),
    };
    let mut n = 0;
    for e in entries {
        let name = e.map_err(io)?.file_name();
        let Some(id) = name.to_str().and_then(|s| s.strip_suffix(".json")) else {
            continue;
        };
        if !valid_job_id(id) {
            continue;
        }
        if let Some(st) = load(dir, id)?
            && st.state == JobState::Running
        {
            spawn(hub.clone(), id.to_owned());
            n += 1;
        }
    }
    Ok(n)
}

/// Answers the rest of a job, chunk by chunk.
fn run(hub: &Hub, id: &str) -> Result<(), HubError> {
    let dir = hub.jobs_dir();
    let Some(mut st) = load(dir, id)? else {
        return Ok(());
    };
    let (_, input, results) = paths(dir, id);
    let cut = OpenOptions::new().write(true).open(&results).map_err(io)?;
    // Drop answers of a chunk that was not saved.
    cut.set_len(st.results_bytes).map_err(io)?;
    drop(cut);
    let mut out = OpenOptions::new().append(true).open(&results).map_err(io)?;
    let mut lines = BufReader::new(File::open(&input).map_err(io)?).lines();
    for _ in 0..st.done {
        lines.next();
    }
    let client = Client {
        org: st.org.clone(),
        subsystem: st.subsystem.clone(),
        key_not_after: None,
        scope: None,
    };
    // A reader thread parses the next chunk and reads its people from the register while
    // this one answers, logs and saves the current chunk.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Chunk, HubError>>(1);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            loop {
                let mut rows: Vec<Row> = Vec::with_capacity(CHUNK);
                let mut failed = None;
                for line in lines.by_ref() {
                    match line
                        .map_err(io)
                        .and_then(|l| serde_json::from_str(&l).map_err(io))
                    {
                        Ok(r) => rows.push(r),
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                    if rows.len() == CHUNK {
                        break;
                    }
                }
                let next = match failed {
                    Some(e) => Err(e),
                    None if rows.is_empty() => return,
                    None => read_people(hub, &rows).map(|people| (rows, people)),
                };
                let stop = next.is_err();
                // The receiver has gone when the answering side failed.
                if tx.send(next).is_err() || stop {
                    return;
                }
            }
        });
        let mut buf = Vec::new();
        for next in rx {
            let (chunk, people) = next?;
            buf.clear();
            answer_chunk(hub, &client, &mut st, &chunk, &people, &mut buf)?;
            out.write_all(&buf)
                .and_then(|()| out.sync_data())
                .map_err(io)?;
            st.results_bytes += buf.len() as u64;
            st.done += chunk.len() as u64;
            save(dir, &st)?;
        }
        Ok::<(), HubError>(())
    })?;
    st.state = JobState::Done;
    st.finished_at = Some(hub.now());
    save(dir, &st)
}

type People = HashMap<String, dancu_domain::person::Person>;
type Chunk = (Vec<Row>, People);

/// The register records of a chunk's people, by personal ID.
fn read_people(hub: &Hub, rows: &[Row]) -> Result<People, HubError> {
    let ids: Vec<_> = rows.iter().filter_map(|r| r.id.parse().ok()).collect();
    Ok(hub
        .store()
        .persons(&ids)
        .map_err(io)?
        .into_iter()
        .map(|p| (p.id.to_string(), p))
        .collect())
}

/// Decides, answers and logs one chunk; appends its answers to `out`.
fn answer_chunk(
    hub: &Hub,
    client: &Client,
    st: &mut JobStatus,
    rows: &[Row],
    people: &People,
    out: &mut Vec<u8>,
) -> Result<(), HubError> {
    let now = hub.now();
    let mut records: Vec<AuditRecord> = Vec::with_capacity(rows.len());
    let (mut served, mut refused, mut failed) = (0, 0, 0);
    for (i, row) in rows.iter().enumerate() {
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
        let answer = match hub.decide_call(
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
                serde_json::to_writer(
                    &mut *out,
                    &RowAnswer {
                        row: n,
                        id: &row.id,
                        result: "refused",
                        code: Some(code),
                        fields: None,
                    },
                )
            }
            Ok(grant) => {
                record.covert_until = grant.covert_until;
                match people.get(&row.id) {
                    Some(p) => {
                        served += 1;
                        serde_json::to_writer(
                            &mut *out,
                            &RowAnswer {
                                row: n,
                                id: &row.id,
                                result: "served",
                                code: None,
                                fields: Some(matching::attribute_match(p, &row.claims)),
                            },
                        )
                    }
                    None => {
                        failed += 1;
                        record.result = ExchangeResult::Failed("person_not_found".into());
                        serde_json::to_writer(
                            &mut *out,
                            &RowAnswer {
                                row: n,
                                id: &row.id,
                                result: "failed",
                                code: Some("person_not_found"),
                                fields: None,
                            },
                        )
                    }
                }
            }
        };
        answer.map_err(io)?;
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

/// The job's status, for its owner only (another caller is told it does not exist).
pub fn status(hub: &Hub, client: &Client, id: &str) -> Result<JobStatus, HubError> {
    if !valid_job_id(id) {
        return Err(HubError::JobNotFound);
    }
    match load(hub.jobs_dir(), id)? {
        Some(st) if st.org == client.org && st.subsystem == client.subsystem => Ok(st),
        Some(_) => Err(HubError::JobNotFound),
        None => Err(elsewhere(hub, client, id).unwrap_or(HubError::JobNotFound)),
    }
}

/// Document kind naming the node that holds a job, over a shared database (key: the job id).
const JOB_NODE_KIND: &str = "hub_batch_node";

/// The error for a job of `client` that another node over the same database holds.
fn elsewhere(hub: &Hub, client: &Client, id: &str) -> Option<HubError> {
    if !hub.shares_database() {
        return None;
    }
    let doc = hub.docs().get(JOB_NODE_KIND, id).ok()??;
    let v: serde_json::Value = serde_json::from_str(&doc.json).ok()?;
    let node = v["node"].as_str()?;
    (v["org"] == client.org.as_str()
        && v["subsystem"] == client.subsystem.as_str()
        && node != hub.node())
    .then(|| HubError::Conflict {
        code: "job_on_another_node",
        vi: format!("Lô đối chiếu này do nút {node} xử lý; hãy hỏi nút đó"),
        en: format!("This job is held by node {node}; ask that node"),
    })
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
    let (_, _, results) = paths(hub.jobs_dir(), id);
    fs::read(results).map_err(io)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

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
}
