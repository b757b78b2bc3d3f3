//! `dancu audit verify` checks the exchange log of the data directory from its files alone;
//! `dancu audit archive` applies retention.

use crate::config::Config;
use dancu_exchange::log::verify::CheckpointStatus;
use dancu_hub::audit::{self, DirVerification};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// The exchange log's directory inside the data directory.
pub fn log_dir(config: &Config) -> PathBuf {
    config.data_dir.join("audit")
}

fn checkpoint_status(c: &CheckpointStatus) -> Value {
    match c {
        CheckpointStatus::Verified => json!("verified"),
        CheckpointStatus::BadSignature => json!("bad_signature"),
        CheckpointStatus::RootMismatch => json!("root_mismatch"),
        CheckpointStatus::BeyondLog { log_size } => {
            json!({"beyond_log": {"log_size": log_size}})
        }
        CheckpointStatus::Archived => json!("archived"),
        CheckpointStatus::AfterDamage => json!("after_damage"),
    }
}

/// The machine-readable report.
pub fn report_json(v: &DirVerification) -> Value {
    let first_bad = v.report.first_bad.as_ref().map(|b| {
        json!({
            "file": v.files.get(b.segment_index).map(|p| p.display().to_string()),
            "segment_index": b.segment_index,
            "segment_number": b.segment_number,
            "record_index": b.record_index,
            "expected_seq": b.expected_seq,
            "offset": b.offset,
            "defect": b.defect.to_string(),
        })
    });
    json!({
        "intact": v.is_intact(),
        "records": v.report.records,
        "segments": v.report.segments,
        "first_seq": v.report.first_seq,
        "first_bad": first_bad,
        "checkpoints": v.report.checkpoints.iter().map(checkpoint_status).collect::<Vec<_>>(),
        "checkpoint_tail_bytes": v.checkpoint_tail_bytes,
        "tracker_index_mismatches": v.index_mismatches,
        "summary": v.summary(),
    })
}

/// Runs the verification, prints the JSON report, and fails when the log is not intact.
pub fn verify(config: &Config, trusted_key: Option<&Path>) -> Result<(), String> {
    let dir = log_dir(config);
    if !dir.is_dir() {
        return Err(format!("no exchange log at {}", dir.display()));
    }
    let key = trusted_key
        .map(audit::read_public_key)
        .transpose()
        .map_err(|e| e.to_string())?;
    let v = audit::verify_dir(&dir, key.as_ref()).map_err(|e| e.to_string())?;
    println!("{}", report_json(&v));
    if v.is_intact() {
        eprintln!("{}", v.summary());
        Ok(())
    } else {
        Err(v.summary())
    }
}

/// Moves the segments retention lets go to the archive directory and prints the plan.
pub fn archive(config: &Config, keep_days: u32, max_live_bytes: Option<u64>) -> Result<(), String> {
    let dir = log_dir(config);
    if !dir.is_dir() {
        return Err(format!("no exchange log at {}", dir.display()));
    }
    let policy = dancu_exchange::log::retention::RetentionPolicy {
        keep_for: chrono::TimeDelta::days(i64::from(keep_days)),
        max_live_bytes,
        min_segments: 1,
    };
    let (plan, moved) =
        audit::archive(&dir, &policy, chrono::Utc::now()).map_err(|e| e.to_string())?;
    println!(
        "{}",
        json!({
            "archived": moved.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "held_because": plan.held.map(|h| format!("{h:?}")),
            "live_bytes_after": plan.live_bytes_after,
            "over_budget": plan.over_budget,
        })
    );
    if plan.over_budget {
        Err("the live log is still over its byte budget".into())
    } else {
        Ok(())
    }
}
