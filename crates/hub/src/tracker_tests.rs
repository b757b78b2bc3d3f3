#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The citizen's tracker index against the whole log: every segment state (open, closing,
//! indexed, never indexed), restarts, damaged and missing index files, archiving.

use crate::audit::*;
use crate::audit_tests::{record, settings, t};
use crate::tracker_index::{TrackerIndex, index_file_name, person_key};
use dancu_exchange::log::record::{AuditRecord, LogEntry};
use std::path::Path;

/// Five people take turns; every seventh record names nobody, every eleventh an old
/// 9-digit CMND number (not a personal ID).
fn person_of(i: u64) -> Option<String> {
    if i % 7 == 3 {
        None
    } else if i % 11 == 5 {
        Some("025123456".into())
    } else {
        Some(format!("{:012}", 1_090_000_000 + i % 5))
    }
}

fn people() -> Vec<String> {
    let mut p: Vec<String> = (0..5)
        .map(|i| format!("{:012}", 1_090_000_000 + i))
        .collect();
    p.push("025123456".into());
    p.push("001099999999".into()); // never accessed
    p
}

fn rec(i: u64) -> AuditRecord {
    AuditRecord {
        person: person_of(i),
        ..record(i)
    }
}

fn append(log: &mut AuditLog, from: u64, to: u64) {
    for i in from..to {
        log.append(&rec(i), t(i as i64)).unwrap();
    }
}

/// What a full read of the live log gives for `person`.
fn expected(dir: &Path, person: &str) -> Vec<LogEntry> {
    read_entries(dir)
        .unwrap()
        .into_iter()
        .filter(|e| e.record.person.as_deref() == Some(person))
        .collect()
}

fn assert_same(dir: &Path, tracker: &TrackerIndex) {
    for p in people() {
        let got = tracker.entries_of(&p).unwrap();
        assert_eq!(got, expected(dir, &p), "person {p}");
    }
}

#[test]
fn keys_keep_ids_apart_from_anything_else() {
    assert_eq!(person_key("001090000001"), 1_090_000_001);
    assert!(person_key("025123456") >= 1 << 63);
    assert!(person_key("00109000000a") >= 1 << 63);
    assert_ne!(person_key("025123456"), person_key("025123457"));
}

#[test]
fn each_record_s_offset_is_where_its_frame_starts() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = AuditLog::open(dir.path(), settings()).unwrap();
    let mut placed = Vec::new();
    for i in 0..20 {
        placed.push(log.append(&rec(i), t(i as i64)).unwrap());
    }
    drop(log);
    for (n, path) in list_segments(dir.path()).unwrap() {
        let frames = frame_ranges(&std::fs::read(path).unwrap());
        let starts: Vec<u64> = placed
            .iter()
            .filter(|a| a.segment == n)
            .map(|a| a.offset)
            .collect();
        assert_eq!(
            starts,
            frames.iter().map(|r| r.start as u64).collect::<Vec<_>>()
        );
    }
}

#[test]
fn the_tracker_answers_as_a_full_read_in_every_state_of_a_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = AuditLog::open(dir.path(), settings()).unwrap();
    let tracker = log.tracker();
    append(&mut log, 0, 40);
    assert!(list_segments(dir.path()).unwrap().len() >= 5);
    // Closed segments may still be in memory or already in their files: the same answer.
    assert_same(dir.path(), &tracker);
    tracker.settle();
    assert_same(dir.path(), &tracker);
    let (indexed, waiting) = tracker.status();
    assert_eq!(waiting, 0);
    assert_eq!(indexed, list_segments(dir.path()).unwrap().len() - 1);
    // One group of several records, some in a new segment.
    let group: Vec<AuditRecord> = (40..52).map(rec).collect();
    assert!(log.append_group(&group, t(52)).iter().all(Result::is_ok));
    // A batch through `append_many`.
    let batch: Vec<AuditRecord> = (52..60).map(rec).collect();
    log.append_many(&batch, t(60)).unwrap();
    assert_same(dir.path(), &tracker);
    drop(log);
    drop(tracker);

    // After a restart the last segment gets its file too, and new records are found.
    let mut log = AuditLog::open(dir.path(), settings()).unwrap();
    let tracker = log.tracker();
    assert_same(dir.path(), &tracker);
    tracker.settle();
    let segments = list_segments(dir.path()).unwrap();
    assert_eq!(tracker.status(), (segments.len(), 0));
    for (n, _) in &segments {
        assert!(dir.path().join(index_file_name(*n)).exists());
    }
    append(&mut log, 60, 75);
    assert_same(dir.path(), &tracker);
    assert!(tracker.entries_of("001099999999").unwrap().is_empty());
    assert_eq!(tracker.entries_of("025123456").unwrap().len(), {
        (0..75)
            .filter(|i| person_of(*i).as_deref() == Some("025123456"))
            .count()
    });
}

#[test]
fn missing_and_damaged_index_files_are_read_around_and_written_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = AuditLog::open(dir.path(), settings()).unwrap();
    append(&mut log, 0, 40);
    drop(log);
    let log = AuditLog::open(dir.path(), settings()).unwrap();
    log.tracker().settle();
    drop(log);
    let file = |n: u64| dir.path().join(index_file_name(n));
    let original: Vec<Vec<u8>> = (1..4).map(|n| std::fs::read(file(n)).unwrap()).collect();
    // Segment 1 loses its file, segment 2's block is damaged, segment 3's header names
    // another segment length.
    std::fs::remove_file(file(1)).unwrap();
    let mut b = original[1].clone();
    b[48 + 3] ^= 0x40;
    std::fs::write(file(2), &b).unwrap();
    let mut b = original[2].clone();
    b[16] ^= 1;
    std::fs::write(file(3), &b).unwrap();

    // And a process stopped while writing one left its temporary file.
    let stray = dir.path().join(format!("{}.4242.tmp", index_file_name(1)));
    std::fs::write(&stray, b"half").unwrap();

    let log = AuditLog::open(dir.path(), settings()).unwrap();
    let tracker = log.tracker();
    assert!(!stray.exists());
    assert_same(dir.path(), &tracker);
    tracker.settle();
    assert_same(dir.path(), &tracker);
    for n in 1..4u64 {
        assert_eq!(
            std::fs::read(file(n)).unwrap(),
            original[n as usize - 1],
            "segment {n}"
        );
    }
}

#[test]
fn a_refused_group_leaves_no_trace_in_the_tracker() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = AuditLog::open(dir.path(), settings()).unwrap();
    let tracker = log.tracker();
    append(&mut log, 0, 3);
    // The next segment cannot be created: its name is taken by a directory.
    let next = list_segments(dir.path()).unwrap().last().unwrap().0 + 1;
    let blocker = dir.path().join(segment_file_name(next));
    std::fs::create_dir(&blocker).unwrap();
    let group: Vec<AuditRecord> = (3..20).map(rec).collect();
    assert!(log.append_group(&group, t(20)).iter().all(Result::is_err));
    std::fs::remove_dir(&blocker).unwrap();
    assert_same(dir.path(), &tracker);
    assert_eq!(read_entries(dir.path()).unwrap().len(), 3);
    append(&mut log, 3, 20);
    assert_same(dir.path(), &tracker);
    tracker.settle();
    assert_same(dir.path(), &tracker);
}

#[test]
fn archived_segments_take_their_index_files_along() {
    use dancu_exchange::log::retention::RetentionPolicy;
    let dir = tempfile::tempdir().unwrap();
    let mut log = AuditLog::open(dir.path(), settings()).unwrap();
    append(&mut log, 0, 40);
    log.checkpoint_now(t(40)).unwrap();
    let tracker = log.tracker();
    tracker.settle();
    let policy = RetentionPolicy {
        keep_for: chrono::TimeDelta::days(1),
        ..RetentionPolicy::default()
    };
    let (_, moved) = archive(dir.path(), &policy, t(365 * 86_400)).unwrap();
    assert!(!moved.is_empty());
    for path in &moved {
        let name = path.file_name().unwrap().to_str().unwrap();
        let n: u64 = name[8..28].parse().unwrap();
        assert!(path.with_file_name(index_file_name(n)).exists(), "{name}");
        assert!(!dir.path().join(index_file_name(n)).exists());
    }
    // The tracker serves the live log, as a full read does.
    assert_same(dir.path(), &tracker);
}

#[test]
fn another_node_sees_each_copied_line_once_even_when_a_round_is_sent_again() {
    use crate::shared_tracker::{CURSOR_FILE, node_id, other_nodes_lines, ship_round};
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("audit");
    let (_, docs) =
        dancu_store::docs::open_with_docs(dir.path().join("db.sqlite3").to_str().unwrap()).unwrap();
    let mut log = AuditLog::open(&log_dir, settings()).unwrap();
    let node = node_id(&log_dir).unwrap();
    assert_eq!(node_id(&log_dir).unwrap(), node, "kept");
    append(&mut log, 0, 30);
    let today = chrono::NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
    let seen = |p: &str| {
        other_nodes_lines(&*docs, p, "another-node", today)
            .unwrap()
            .len()
    };
    let own = |p: &str| expected(&log_dir, p).len();
    let copied = ship_round(&log_dir, &node, &log.tracker(), &*docs).unwrap();
    assert_eq!(copied, (0..30).filter(|i| person_of(*i).is_some()).count());
    for p in people() {
        assert_eq!(seen(&p), own(&p), "{p}");
        // The node itself leaves its own copies out.
        assert!(
            other_nodes_lines(&*docs, &p, &node, today)
                .unwrap()
                .is_empty()
        );
    }
    // Nothing new: nothing copied.
    assert_eq!(
        ship_round(&log_dir, &node, &log.tracker(), &*docs).unwrap(),
        0
    );
    // A crash before the cursor was kept sends everything again; still one line each.
    std::fs::remove_file(log_dir.join(CURSOR_FILE)).unwrap();
    assert_eq!(
        ship_round(&log_dir, &node, &log.tracker(), &*docs).unwrap(),
        copied
    );
    for p in people() {
        assert_eq!(seen(&p), own(&p), "{p}");
    }
    // After a restart the node carries on where it stopped.
    drop(log);
    let mut log = AuditLog::open(&log_dir, settings()).unwrap();
    append(&mut log, 30, 45);
    let more = ship_round(&log_dir, &node, &log.tracker(), &*docs).unwrap();
    assert_eq!(more, (30..45).filter(|i| person_of(*i).is_some()).count());
    for p in people() {
        assert_eq!(seen(&p), own(&p), "{p}");
    }
}

#[test]
fn audit_verify_catches_an_index_rewritten_to_hide_a_record() {
    use crate::tracker_index::{encode_index, segment_pairs};
    let dir = tempfile::tempdir().unwrap();
    let mut log = AuditLog::open(dir.path(), settings()).unwrap();
    append(&mut log, 0, 40);
    log.checkpoint_now(t(40)).unwrap();
    log.tracker().settle();
    drop(log);
    let v = verify_dir(dir.path(), None).unwrap();
    assert!(v.is_intact(), "{}", v.summary());
    assert!(v.index_mismatches.is_empty());
    // Segment 2's index rewritten without its first record, every sum made good again.
    let seg = std::fs::read(dir.path().join(segment_file_name(2))).unwrap();
    let mut pairs = segment_pairs(&seg);
    let hidden = pairs.remove(0);
    let (bytes, _) = encode_index(2, seg.len() as u64, pairs);
    std::fs::write(dir.path().join(index_file_name(2)), bytes).unwrap();
    // The hub would use it, and the citizen would not see the record.
    let log = AuditLog::open(dir.path(), settings()).unwrap();
    let person = read_entries(dir.path())
        .unwrap()
        .into_iter()
        .find(|e| {
            e.record
                .person
                .as_deref()
                .is_some_and(|p| person_key(p) == hidden.0)
        })
        .unwrap()
        .record
        .person
        .unwrap();
    assert!(log.tracker().entries_of(&person).unwrap().len() < expected(dir.path(), &person).len());
    drop(log);
    let v = verify_dir(dir.path(), None).unwrap();
    assert!(!v.is_intact());
    assert_eq!(v.index_mismatches, [2]);
    assert!(v.summary().contains(&index_file_name(2)), "{}", v.summary());
    // Removed, it is written again correctly.
    std::fs::remove_file(dir.path().join(index_file_name(2))).unwrap();
    let log = AuditLog::open(dir.path(), settings()).unwrap();
    log.tracker().settle();
    assert_same(dir.path(), &log.tracker());
    drop(log);
    assert!(verify_dir(dir.path(), None).unwrap().is_intact());
}

#[test]
fn the_newest_lines_are_read_from_the_end_in_every_state_of_a_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = AuditLog::open(dir.path(), settings()).unwrap();
    append(&mut log, 0, 40);
    drop(log);
    // Closed segments without index files yet (read whole), then an open one in memory.
    let mut log = AuditLog::open(dir.path(), settings()).unwrap();
    let tracker = log.tracker();
    append(&mut log, 40, 47);
    let check = |tracker: &TrackerIndex| {
        for p in people() {
            let all = expected(dir.path(), &p);
            for k in [1, 2, 3, all.len(), all.len() + 1] {
                let got = tracker.newest_of(&p, k, &|_| true).unwrap();
                assert_eq!(got, all[all.len().saturating_sub(k)..], "{p}, {k}");
            }
            // A filter is applied before counting.
            let even: Vec<LogEntry> = all.iter().filter(|e| e.seq % 2 == 0).cloned().collect();
            let got = tracker.newest_of(&p, 2, &|e| e.seq % 2 == 0).unwrap();
            assert_eq!(got, even[even.len().saturating_sub(2)..], "{p}");
        }
    };
    check(&tracker);
    tracker.settle();
    check(&tracker);
}
