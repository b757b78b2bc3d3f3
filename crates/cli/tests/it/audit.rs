//! `dancu audit verify` on a real log directory: intact, then edited, removed and reordered
//! records are named, with a non-zero exit.

use chrono::{TimeDelta, TimeZone, Utc};
use dancu_exchange::log::checkpoint::CheckpointPolicy;
use dancu_exchange::log::record::{AuditRecord, ExchangeResult};
use dancu_hub::audit::{AuditLog, AuditSettings, frame_ranges, list_segments};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_dancu");

fn write_log(data_dir: &Path, n: u64) {
    let settings = AuditSettings {
        segment_max_bytes: 2000,
        fsync_each_record: false,
        checkpoint: CheckpointPolicy {
            every_records: 5,
            every: TimeDelta::hours(1),
        },
        max_live_bytes: None,
    };
    let t0 = Utc.with_ymd_and_hms(2026, 3, 1, 3, 0, 0).unwrap();
    let mut log = AuditLog::open(&data_dir.join("audit"), settings).unwrap();
    for i in 0..n {
        let r = AuditRecord {
            time: t0 + TimeDelta::seconds(i as i64),
            caller_org: "bank-a".into(),
            subsystem: "ekyc".into(),
            end_user: Some("op-1".into()),
            service: "verify_attributes".into(),
            person: Some(format!("{:012}", 1_090_000_000 + i)),
            fields: vec!["name".into()],
            purpose: "account_opening".into(),
            case_ref: Some(format!("HS-{i}")),
            result: ExchangeResult::Served,
            covert_until: None,
        };
        log.append(&r, r.time).unwrap();
    }
    log.checkpoint_now(t0 + TimeDelta::hours(1)).unwrap();
}

fn verify(data_dir: &Path) -> (bool, Value, String) {
    let out = Command::new(BIN)
        .args(["audit", "verify", "--data-dir"])
        .arg(data_dir)
        .env_remove("DANCU_DATABASE_URL")
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        out.status.success(),
        report,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn first_segment(data_dir: &Path) -> std::path::PathBuf {
    list_segments(&data_dir.join("audit")).unwrap()[0].1.clone()
}

#[test]
fn audit_verify_passes_an_intact_log_and_names_the_first_bad_record() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 20);
    let (ok, report, _) = verify(dir.path());
    assert!(ok, "{report}");
    assert_eq!(report["intact"], true);
    assert_eq!(report["records"], 20);

    let seg = first_segment(dir.path());
    let original = std::fs::read(&seg).unwrap();
    let frames = frame_ranges(&original);

    // Edited: one byte of the fourth record's case reference.
    let mut edited = original.clone();
    let r = frames[3].clone();
    let pos = r.start + edited[r].windows(3).position(|w| w == b"HS-").unwrap();
    edited[pos] = b'X';
    std::fs::write(&seg, &edited).unwrap();
    let (ok, report, stderr) = verify(dir.path());
    assert!(!ok);
    assert_eq!(report["intact"], false);
    assert_eq!(report["first_bad"]["record_index"], 3);
    assert_eq!(report["first_bad"]["expected_seq"], 3);
    assert!(
        report["first_bad"]["file"]
            .as_str()
            .unwrap()
            .ends_with("segment-00000000000000000000.log")
    );
    assert!(stderr.contains("record 3 (expected seq 3)"), "{stderr}");

    // Removed: the second record is gone.
    let mut removed = original.clone();
    removed.drain(frames[1].clone());
    std::fs::write(&seg, &removed).unwrap();
    let (ok, report, _) = verify(dir.path());
    assert!(!ok);
    assert_eq!(report["first_bad"]["expected_seq"], 1);
    assert!(
        report["first_bad"]["defect"]
            .as_str()
            .unwrap()
            .contains("removed"),
        "{report}"
    );

    // Reordered: records 4 and 5 swapped.
    let (a, b) = (frames[4].clone(), frames[5].clone());
    let mut swapped = original[..a.start].to_vec();
    swapped.extend_from_slice(&original[b.clone()]);
    swapped.extend_from_slice(&original[a]);
    swapped.extend_from_slice(&original[b.end..]);
    std::fs::write(&seg, &swapped).unwrap();
    let (ok, report, _) = verify(dir.path());
    assert!(!ok);
    assert_eq!(report["first_bad"]["record_index"], 4);
    assert_eq!(report["records"], 4);

    // Restored: intact again.
    std::fs::write(&seg, &original).unwrap();
    assert!(verify(dir.path()).0);
}

#[test]
fn audit_archive_moves_old_segments_and_the_live_log_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 20);
    let segments = list_segments(&dir.path().join("audit")).unwrap().len();
    assert!(segments >= 2);
    // The records are from March 2026, so with a one-day retention all but the newest go.
    let out = Command::new(BIN)
        .args(["audit", "archive", "--keep-days", "1", "--data-dir"])
        .arg(dir.path())
        .env_remove("DANCU_DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["archived"].as_array().unwrap().len(), segments - 1);
    assert_eq!(plan["held_because"], "Minimum");
    assert_eq!(list_segments(&dir.path().join("audit")).unwrap().len(), 1);
    let (ok, report, _) = verify(dir.path());
    assert!(ok, "{report}");
    assert!(report["first_seq"].as_u64().unwrap() > 0);
}
