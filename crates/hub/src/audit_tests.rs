#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The log on disk against edits, removals, reorderings, torn writes and a full budget.

use crate::audit::*;
use chrono::{TimeDelta, TimeZone, Utc};
use dancu_exchange::log::checkpoint::CheckpointPolicy;
use dancu_exchange::log::record::{AuditRecord, ExchangeResult};
use dancu_exchange::log::verify::{CheckpointStatus, Defect};
use std::path::Path;

pub(crate) fn t(i: i64) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 3, 0, 0).unwrap() + TimeDelta::seconds(i)
}

pub(crate) fn record(i: u64) -> AuditRecord {
    AuditRecord {
        time: t(i as i64),
        caller_org: "bank-a".into(),
        subsystem: "ekyc".into(),
        end_user: Some(format!("op-{i}")),
        service: "attribute_match".into(),
        person: Some(format!("{:012}", 1_090_000_000 + i)),
        fields: vec!["name".into(), "date_of_birth".into()],
        purpose: "account_opening".into(),
        case_ref: Some(format!("HS-{i}")),
        result: ExchangeResult::Served,
        covert_until: None,
    }
}

pub(crate) fn settings() -> AuditSettings {
    AuditSettings {
        segment_max_bytes: 1500,
        fsync_each_record: false,
        checkpoint: CheckpointPolicy {
            every_records: 10,
            every: TimeDelta::hours(1),
        },
        max_live_bytes: None,
    }
}

/// A log of `n` records over several segments, with checkpoints every 10 records.
fn write_log(dir: &Path, n: u64) {
    let mut log = AuditLog::open(dir, settings()).unwrap();
    for i in 0..n {
        let a = log.append(&record(i), t(i as i64)).unwrap();
        assert_eq!(a.seq, i);
    }
    log.checkpoint_now(t(n as i64)).unwrap();
}

fn segments(dir: &Path) -> Vec<std::path::PathBuf> {
    list_segments(dir)
        .unwrap()
        .into_iter()
        .map(|(_, p)| p)
        .collect()
}

#[test]
fn an_untouched_log_verifies_across_segments_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 25);
    // A restart continues the same chain in a new segment.
    let mut log = AuditLog::open(dir.path(), settings()).unwrap();
    assert_eq!(log.size(), 25);
    assert_eq!(log.append(&record(25), t(30)).unwrap().seq, 25);
    log.checkpoint_now(t(31)).unwrap();
    drop(log);
    let v = verify_dir(dir.path(), None).unwrap();
    assert!(v.is_intact(), "{}", v.summary());
    assert_eq!(v.report.records, 26);
    assert!(v.report.segments >= 3, "{} segments", v.report.segments);
    assert!(
        v.report
            .checkpoints
            .iter()
            .all(|c| *c == CheckpointStatus::Verified)
    );
    assert!(v.summary().starts_with("intact: 26 records"));
}

#[test]
fn an_edited_byte_is_named_as_the_first_bad_record() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 25);
    let files = segments(dir.path());
    let seg = &files[1];
    let mut bytes = std::fs::read(seg).unwrap();
    let frames = frame_ranges(&bytes);
    // Change one letter of the purpose inside the segment's second record.
    let r = frames[1].clone();
    let pos = r.start
        + bytes[r.clone()]
            .windows(7)
            .position(|w| w == b"account")
            .unwrap();
    bytes[pos] = b'A';
    std::fs::write(seg, &bytes).unwrap();

    let v = verify_dir(dir.path(), None).unwrap();
    assert!(!v.is_intact());
    let bad = v.report.first_bad.clone().unwrap();
    assert_eq!(bad.segment_index, 1);
    assert_eq!(bad.record_index, Some(1));
    assert_eq!(bad.defect, Defect::Edited);
    assert_eq!(v.report.records, bad.expected_seq);
    let s = v.summary();
    assert!(s.contains("segment-00000000000000000001.log"), "{s}");
    assert!(s.contains("record 1"), "{s}");
}

#[test]
fn a_removed_record_is_named() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 25);
    let seg = &segments(dir.path())[0];
    let mut bytes = std::fs::read(seg).unwrap();
    let frames = frame_ranges(&bytes);
    bytes.drain(frames[3].clone());
    std::fs::write(seg, &bytes).unwrap();

    let v = verify_dir(dir.path(), None).unwrap();
    let bad = v.report.first_bad.clone().unwrap();
    assert_eq!((bad.segment_index, bad.record_index), (0, Some(3)));
    assert_eq!(
        bad.defect,
        Defect::Missing {
            expected: 3,
            found: 4
        }
    );
    assert!(v.summary().contains("expected seq 3"), "{}", v.summary());
}

#[test]
fn two_swapped_records_are_named() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 25);
    let seg = &segments(dir.path())[0];
    let bytes = std::fs::read(seg).unwrap();
    let frames = frame_ranges(&bytes);
    let (a, b) = (frames[2].clone(), frames[3].clone());
    let mut swapped = bytes[..a.start].to_vec();
    swapped.extend_from_slice(&bytes[b.clone()]);
    swapped.extend_from_slice(&bytes[a.clone()]);
    swapped.extend_from_slice(&bytes[b.end..]);
    std::fs::write(seg, &swapped).unwrap();

    let v = verify_dir(dir.path(), None).unwrap();
    let bad = v.report.first_bad.clone().unwrap();
    assert_eq!((bad.segment_index, bad.record_index), (0, Some(2)));
    assert_eq!(bad.expected_seq, 2);
    assert_eq!(v.report.records, 2);
}

#[test]
fn records_cut_from_the_end_are_caught_by_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 25);
    let files = segments(dir.path());
    let last = files.last().unwrap();
    let bytes = std::fs::read(last).unwrap();
    let frames = frame_ranges(&bytes);
    std::fs::write(last, &bytes[..frames.last().unwrap().start]).unwrap();
    let v = verify_dir(dir.path(), None).unwrap();
    assert!(v.report.first_bad.is_none());
    assert!(!v.is_intact());
    assert!(
        v.report
            .checkpoints
            .contains(&CheckpointStatus::BeyondLog { log_size: 24 })
    );
}

#[test]
fn a_log_re_signed_with_another_key_fails_against_the_trusted_key() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 5);
    let trusted = read_public_key(&dir.path().join(PUBLIC_KEY_FILE)).unwrap();
    // Someone replaces the key files and the checkpoints.
    std::fs::remove_file(dir.path().join(KEY_FILE)).unwrap();
    std::fs::remove_file(dir.path().join(PUBLIC_KEY_FILE)).unwrap();
    std::fs::remove_file(dir.path().join(CHECKPOINTS_FILE)).unwrap();
    let mut log = AuditLog::open(dir.path(), settings()).unwrap();
    log.append(&record(5), t(5)).unwrap();
    log.checkpoint_now(t(6)).unwrap();
    drop(log);
    assert!(verify_dir(dir.path(), None).unwrap().is_intact());
    let v = verify_dir(dir.path(), Some(&trusted)).unwrap();
    assert!(!v.is_intact());
    assert_eq!(v.report.checkpoints, vec![CheckpointStatus::BadSignature]);
}

#[test]
fn a_torn_last_frame_is_cut_kept_aside_and_the_log_continues() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 12);
    let last = segments(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&last).unwrap();
    let frames = frame_ranges(&bytes);
    // A crash in the middle of writing one more frame.
    let partial = bytes[frames[0].clone()][..20].to_vec();
    bytes.extend_from_slice(&partial);
    std::fs::write(&last, &bytes).unwrap();
    assert!(
        verify_dir(dir.path(), None)
            .unwrap()
            .report
            .first_bad
            .is_some()
    );

    let mut log = AuditLog::open(dir.path(), settings()).unwrap();
    assert_eq!(log.append(&record(12), t(12)).unwrap().seq, 12);
    log.checkpoint_now(t(13)).unwrap();
    drop(log);
    let v = verify_dir(dir.path(), None).unwrap();
    assert!(v.is_intact(), "{}", v.summary());
    let mut aside = last.as_os_str().to_owned();
    aside.push(".torn");
    assert_eq!(std::fs::read(aside).unwrap(), partial);
}

#[test]
fn a_damaged_last_segment_is_not_continued() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 3);
    let last = segments(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&last).unwrap();
    let frames = frame_ranges(&bytes);
    let r = frames[1].clone();
    bytes[r.end - 1] ^= 1;
    std::fs::write(&last, &bytes).unwrap();
    let err = AuditLog::open(dir.path(), settings()).unwrap_err();
    assert!(matches!(err, AuditError::Damaged(_)), "{err}");
}

#[test]
fn a_full_budget_refuses_before_writing_and_the_log_stays_intact() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings();
    s.max_live_bytes = Some(700);
    let mut log = AuditLog::open(dir.path(), s).unwrap();
    let mut ok = 0;
    let err = loop {
        match log.append(&record(ok), t(ok as i64)) {
            Ok(_) => ok += 1,
            Err(e) => break e,
        }
        assert!(ok < 100);
    };
    assert!(matches!(err, AuditError::Full { .. }), "{err}");
    assert!(ok > 0);
    // Refused again, and nothing half-written.
    assert!(matches!(
        log.append(&record(ok), t(ok as i64)),
        Err(AuditError::Full { .. })
    ));
    log.checkpoint_now(t(100)).unwrap();
    drop(log);
    let v = verify_dir(dir.path(), None).unwrap();
    assert!(v.is_intact(), "{}", v.summary());
    assert_eq!(v.report.records, ok);
    let total: u64 = segments(dir.path())
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert!(total <= 700);
}

#[test]
fn a_failed_write_refuses_the_exchange_and_the_next_one_recovers() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 3);
    let mut log = AuditLog::open(dir.path(), settings()).unwrap();
    // The next segment cannot be created: its name is taken by a directory.
    let next = list_segments(dir.path()).unwrap().last().unwrap().0 + 1;
    let blocker = dir.path().join(segment_file_name(next));
    std::fs::create_dir(&blocker).unwrap();
    let err = log.append(&record(3), t(3)).unwrap_err();
    assert!(matches!(err, AuditError::Io { .. }), "{err}");
    // Still failing while the cause is there; nothing is written meanwhile.
    assert!(log.append(&record(3), t(3)).is_err());
    std::fs::remove_dir(&blocker).unwrap();
    assert_eq!(log.append(&record(3), t(4)).unwrap().seq, 3);
    log.checkpoint_now(t(5)).unwrap();
    drop(log);
    let v = verify_dir(dir.path(), None).unwrap();
    assert!(v.is_intact(), "{}", v.summary());
    assert_eq!(v.report.records, 4);
}

#[test]
fn checkpoints_fall_due_by_record_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = AuditLog::open(dir.path(), settings()).unwrap();
    for i in 0..9 {
        log.append(&record(i), t(i as i64)).unwrap();
    }
    // The first append signs at once (no checkpoint yet), then every 10 records.
    assert_eq!(log.last_checkpoint().unwrap().tree_size, 1);
    log.append(&record(9), t(9)).unwrap();
    log.append(&record(10), t(10)).unwrap();
    assert_eq!(log.last_checkpoint().unwrap().tree_size, 11);
    // The timer signs when the period has passed.
    log.append(&record(11), t(11)).unwrap();
    assert!(log.tick(t(12)).unwrap().is_none());
    assert_eq!(log.tick(t(11 + 3600)).unwrap().unwrap().tree_size, 12);
}

#[test]
fn archiving_moves_old_checkpointed_segments_and_the_rest_still_verifies() {
    use dancu_exchange::log::retention::{HeldBecause, RetentionPolicy};
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 25);
    let before = segments(dir.path()).len();
    assert!(before >= 3);
    // Nothing is old enough under the default five years.
    let (plan, moved) = archive(dir.path(), &RetentionPolicy::default(), t(100)).unwrap();
    assert!(moved.is_empty());
    assert_eq!(plan.held, Some(HeldBecause::Retention));
    // With a one-day retention, a year later, all but the newest segment go.
    let policy = RetentionPolicy {
        keep_for: TimeDelta::days(1),
        ..RetentionPolicy::default()
    };
    let (plan, moved) = archive(dir.path(), &policy, t(365 * 86_400)).unwrap();
    assert_eq!(moved.len(), before - 1);
    assert_eq!(plan.held, Some(HeldBecause::Minimum));
    assert!(
        moved
            .iter()
            .all(|p| p.parent().unwrap().ends_with(ARCHIVE_DIR))
    );
    let v = verify_dir(dir.path(), None).unwrap();
    assert!(v.is_intact(), "{}", v.summary());
    assert!(v.report.first_seq.unwrap() > 0);
    assert_eq!(v.report.segments, 1);
    // Editing the live part is still caught.
    let live = segments(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&live).unwrap();
    let r = frame_ranges(&bytes)[0].clone();
    bytes[r.end - 1] ^= 1;
    std::fs::write(&live, &bytes).unwrap();
    assert!(!verify_dir(dir.path(), None).unwrap().is_intact());
}
