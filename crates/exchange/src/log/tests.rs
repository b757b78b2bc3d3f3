//! The log as a whole: write through a sink, tamper with the bytes, verify.

use super::checkpoint::Checkpoint;
use super::merkle::{self, leaf_hash};
use super::record::tests::sample;
use super::retention::{HeldBecause, RetentionPolicy, SegmentInfo, plan_retention};
use super::segment::{
    FrameReader, LogConfig, LogState, LogWriter, MemorySink, SegmentHeader, read_segment,
};
use super::verify::{CheckpointStatus, Defect, verify};
use chrono::{TimeDelta, TimeZone, Utc};
use p256::ecdsa::SigningKey;
use p256::elliptic_curve::Generate;
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn key() -> SigningKey {
    SigningKey::generate_from_rng(&mut StdRng::seed_from_u64(42))
}

/// Writes `n` records in segments of about `seg` bytes, with a checkpoint every `every`
/// records and one at the end.
fn build(n: u64, seg: u64, every: u64) -> (Vec<Vec<u8>>, Vec<Checkpoint>) {
    let k = key();
    let mut w = LogWriter::create(
        MemorySink::new(),
        LogConfig {
            segment_max_bytes: seg,
            flush_each_append: true,
        },
    );
    let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let mut cps = Vec::new();
    for i in 0..n {
        w.append(&sample(i)).unwrap();
        if (i + 1).is_multiple_of(every) || i + 1 == n {
            let st = w.state();
            cps.push(Checkpoint::sign(st.next_seq, st.frontier.root(), t, &k));
        }
    }
    (w.sink().segments(), cps)
}

fn run(segs: &[Vec<u8>], cps: &[Checkpoint]) -> super::verify::VerifyReport {
    let refs: Vec<&[u8]> = segs.iter().map(Vec::as_slice).collect();
    verify(&refs, cps, key().verifying_key())
}

/// Byte offset of record `i` of segment `s`, and its record length.
fn frame_at(segs: &[Vec<u8>], s: usize, i: usize) -> (usize, usize) {
    let (_, hlen) = SegmentHeader::decode(&segs[s]).unwrap();
    let f = FrameReader::new(&segs[s], hlen).nth(i).unwrap().unwrap();
    (f.offset, f.record.len())
}

#[test]
fn an_untouched_log_verifies_across_segments() {
    let (segs, cps) = build(200, 4096, 25);
    assert!(segs.len() > 3, "segments should roll: {}", segs.len());
    let r = run(&segs, &cps);
    assert!(r.is_intact(), "{r:?}");
    assert_eq!(r.records, 200);
    assert!(
        r.checkpoints
            .iter()
            .all(|c| *c == CheckpointStatus::Verified)
    );
    for s in &segs {
        assert!(s.len() as u64 <= 4096);
    }
}

#[test]
fn an_edited_byte_names_the_record() {
    let (mut segs, cps) = build(100, 4096, 10);
    let (off, _) = frame_at(&segs, 1, 3);
    segs[1][off + 4 + 30] ^= 0x01;
    let r = run(&segs, &cps);
    let bad = r.first_bad.unwrap();
    assert_eq!((bad.segment_index, bad.record_index), (1, Some(3)));
    assert!(matches!(
        bad.defect,
        Defect::Edited | Defect::Unparseable(_)
    ));
    assert!(bad.to_string().contains("record 3"), "{bad}");
}

#[test]
fn an_edit_with_a_recomputed_chain_is_caught_by_the_checkpoint() {
    // Rewrite record 5's purpose and recompute every later hash, as an attacker with write
    // access but without the signing key would.
    let (segs, cps) = build(20, 1 << 20, 20);
    let mut w = LogWriter::create(MemorySink::new(), LogConfig::default());
    for i in 0..20 {
        let mut r = sample(i);
        if i == 5 {
            r.purpose = "something_else".into();
        }
        w.append(&r).unwrap();
    }
    let forged = w.sink().segments();
    assert_ne!(forged, segs);
    let r = run(&forged, &cps);
    assert!(r.first_bad.is_none());
    assert_eq!(r.checkpoints, vec![CheckpointStatus::RootMismatch]);
    assert!(!r.is_intact());
}

#[test]
fn a_deleted_record_is_named() {
    let (mut segs, cps) = build(30, 1 << 20, 10);
    let (off, len) = frame_at(&segs, 0, 7);
    segs[0].drain(off..off + 36 + len);
    let r = run(&segs, &cps);
    let bad = r.first_bad.unwrap();
    assert_eq!(bad.record_index, Some(7));
    assert_eq!(
        bad.defect,
        Defect::Missing {
            expected: 7,
            found: 8
        }
    );
    assert_eq!(r.records, 7);
    assert_eq!(r.checkpoints[0], CheckpointStatus::AfterDamage);
}

#[test]
fn swapped_records_are_named() {
    let (mut segs, cps) = build(30, 1 << 20, 10);
    let (a, la) = frame_at(&segs, 0, 4);
    let (b, lb) = frame_at(&segs, 0, 5);
    let first = segs[0][a..a + 36 + la].to_vec();
    let second = segs[0][b..b + 36 + lb].to_vec();
    let mut swapped = second;
    swapped.extend_from_slice(&first);
    segs[0].splice(a..b + 36 + lb, swapped);
    let r = run(&segs, &cps);
    let bad = r.first_bad.unwrap();
    assert_eq!(bad.record_index, Some(4));
    assert_eq!(
        bad.defect,
        Defect::Missing {
            expected: 4,
            found: 5
        }
    );
}

#[test]
fn an_inserted_duplicate_is_named() {
    let (mut segs, cps) = build(30, 1 << 20, 10);
    let (a, la) = frame_at(&segs, 0, 2);
    let (b, _) = frame_at(&segs, 0, 3);
    let dup = segs[0][a..a + 36 + la].to_vec();
    segs[0].splice(b..b, dup);
    let bad = run(&segs, &cps).first_bad.unwrap();
    assert_eq!(bad.record_index, Some(3));
    assert_eq!(
        bad.defect,
        Defect::OutOfOrder {
            expected: 3,
            found: 2
        }
    );
}

#[test]
fn truncation_is_caught_by_checkpoints_and_a_torn_frame_is_named() {
    let (segs, cps) = build(50, 1 << 20, 10);
    // Whole records cut from the end: the chain is fine, the last checkpoint is beyond it.
    let (off, _) = frame_at(&segs, 0, 45);
    let cut = vec![segs[0][..off].to_vec()];
    let r = run(&cut, &cps);
    assert!(r.first_bad.is_none());
    assert_eq!(
        r.checkpoints[4],
        CheckpointStatus::BeyondLog { log_size: 45 }
    );
    assert_eq!(r.checkpoints[3], CheckpointStatus::Verified);
    assert!(!r.is_intact());
    // Cut in the middle of a frame.
    let torn = vec![segs[0][..off + 10].to_vec()];
    let bad = run(&torn, &cps).first_bad.unwrap();
    assert_eq!(bad.record_index, Some(45));
    assert!(matches!(bad.defect, Defect::Frame(_)));
    // A whole segment removed from the middle.
    let (segs, cps) = build(200, 4096, 50);
    let mut gap = segs.clone();
    gap.remove(2);
    let bad = run(&gap, &cps).first_bad.unwrap();
    assert_eq!((bad.segment_index, bad.record_index), (2, None));
    assert!(matches!(bad.defect, Defect::SegmentNumber { .. }));
}

#[test]
fn a_forged_checkpoint_is_refused() {
    let (segs, mut cps) = build(20, 1 << 20, 20);
    cps[0].signature[10] ^= 0x80;
    let stranger = SigningKey::generate_from_rng(&mut StdRng::seed_from_u64(7));
    let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    cps.push(Checkpoint::sign(20, cps[0].root, t, &stranger));
    let r = run(&segs, &cps);
    assert_eq!(
        r.checkpoints,
        vec![
            CheckpointStatus::BadSignature,
            CheckpointStatus::BadSignature
        ]
    );
    assert!(!r.is_intact());
}

#[test]
fn archived_prefix_still_verifies_from_the_header_frontier() {
    let (segs, cps) = build(200, 4096, 50);
    let r = run(&segs[2..], &cps);
    assert!(r.first_bad.is_none(), "{r:?}");
    assert!(r.first_seq.unwrap() > 0);
    assert!(r.is_intact());
    assert!(r.checkpoints.contains(&CheckpointStatus::Verified));
}

#[test]
fn recovery_drops_a_torn_tail_and_resumes_in_a_new_segment() {
    let (segs, _) = build(10, 1 << 20, 10);
    let mut last = segs[0].clone();
    let full = last.len();
    last.truncate(full - 5);
    let (state, valid) = LogState::recover(&last).unwrap();
    assert_eq!(state.next_seq, 9);
    last.truncate(valid);
    let mut w = LogWriter::resume(MemorySink::new(), LogConfig::default(), state);
    for i in 9..15 {
        w.append(&sample(i)).unwrap();
    }
    let cp = w.checkpoint(Utc::now(), &key());
    let mut all = vec![last];
    all.extend(w.sink().segments());
    let r = run(&all, &[cp]);
    assert!(r.is_intact(), "{r:?}");
    assert_eq!(r.records, 15);
}

#[test]
fn a_write_failure_poisons_the_writer() {
    struct Full;
    impl super::segment::SegmentSink for Full {
        type Segment = std::io::Sink;
        fn create(&mut self, _: u64) -> std::io::Result<std::io::Sink> {
            Err(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                "disk full",
            ))
        }
    }
    let mut w = LogWriter::create(Full, LogConfig::default());
    assert!(matches!(
        w.append(&sample(0)),
        Err(super::segment::LogError::Io(_))
    ));
    assert!(matches!(
        w.append(&sample(1)),
        Err(super::segment::LogError::Poisoned)
    ));
    assert_eq!(w.state().next_seq, 0);
}

#[test]
fn a_space_budget_refuses_cleanly_and_the_log_stays_intact() {
    let mut w = LogWriter::create(MemorySink::new(), LogConfig::default());
    w.set_space_budget(Some(700));
    let mut written = 0;
    let err = loop {
        match w.append(&sample(written)) {
            Ok(_) => written += 1,
            Err(e) => break e,
        }
    };
    assert!(
        matches!(err, super::segment::LogError::Full { .. }),
        "{err}"
    );
    assert!(written > 0);
    let used: usize = w.sink().segments().iter().map(Vec::len).sum();
    assert_eq!(used as u64 + w.space_budget().unwrap(), 700);
    // More room: appends go on, and the log verifies.
    w.set_space_budget(None);
    w.append(&sample(written)).unwrap();
    let st = w.state().clone();
    let cp = Checkpoint::sign(st.next_seq, st.frontier.root(), Utc::now(), &key());
    assert!(run(&w.sink().segments(), &[cp]).is_intact());
}

#[test]
fn reading_a_segment_respects_the_limit() {
    let (segs, _) = build(10, 1 << 20, 10);
    let n = segs[0].len() as u64;
    assert_eq!(read_segment(&segs[0][..], n).unwrap(), segs[0]);
    assert!(read_segment(&segs[0][..], n - 1).is_err());
}

#[test]
fn proofs_over_the_log_verify_against_a_checkpoint() {
    let (segs, cps) = build(37, 1 << 20, 37);
    let leaves: Vec<_> = super::segment::chain_hashes(&segs[0])
        .unwrap()
        .iter()
        .map(|h| leaf_hash(h))
        .collect();
    let cp = &cps[0];
    let p = merkle::inclusion_proof(&leaves, 11).unwrap();
    assert!(merkle::verify_inclusion(&leaves[11], 11, 37, &p, &cp.root));
    let old = merkle::root(&leaves[..20]);
    let c = merkle::consistency_proof(&leaves, 20).unwrap();
    assert!(merkle::verify_consistency(20, &old, 37, &cp.root, &c));
}

#[test]
fn retention_archives_an_old_checkpointed_prefix_only() {
    let (segs, cps) = build(200, 4096, 50);
    let infos: Vec<SegmentInfo> = segs.iter().map(|s| SegmentInfo::scan(s).unwrap()).collect();
    let last = cps.last().unwrap();
    let records_time = infos[0].newest.unwrap();
    // Young records: nothing goes.
    let p = plan_retention(
        &infos,
        &RetentionPolicy::default(),
        Some(last),
        records_time,
    );
    assert!(p.archive.is_empty());
    assert_eq!(p.held, Some(HeldBecause::Retention));
    // Old: everything but the newest segment goes, except from the first covert embargo.
    let later = records_time + TimeDelta::days(20 * 365);
    let p = plan_retention(&infos, &RetentionPolicy::default(), Some(last), later);
    assert_eq!(p.archive.len(), infos.len() - 1);
    assert_eq!(p.held, Some(HeldBecause::Minimum));
    // Embargo (2030-01-01 on every 7th sample) holds a segment when still running.
    let in_2029 = Utc.with_ymd_and_hms(2029, 6, 1, 0, 0, 0).unwrap();
    let policy = RetentionPolicy {
        keep_for: TimeDelta::days(1),
        ..RetentionPolicy::default()
    };
    let p = plan_retention(&infos, &policy, Some(last), in_2029);
    assert_eq!(p.held, Some(HeldBecause::Embargo));
    // Without a checkpoint nothing is provable, so nothing goes.
    let p = plan_retention(&infos, &RetentionPolicy::default(), None, later);
    assert!(p.archive.is_empty());
    assert_eq!(p.held, Some(HeldBecause::NotCheckpointed));
    // A byte budget that cannot be met is reported.
    let tight = RetentionPolicy {
        max_live_bytes: Some(1),
        ..RetentionPolicy::default()
    };
    let p = plan_retention(&infos, &tight, None, records_time);
    assert!(p.over_budget);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn verify_never_panics_on_arbitrary_bytes(
        segs in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..400), 0..3),
    ) {
        let refs: Vec<&[u8]> = segs.iter().map(Vec::as_slice).collect();
        let r = verify(&refs, &[], key().verifying_key());
        prop_assert!(r.first_bad.is_some() || segs.is_empty());
    }

    #[test]
    fn any_flipped_header_byte_of_a_later_segment_is_caught(
        pick in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let (mut segs, cps) = build(40, 1500, 40);
        prop_assert!(segs.len() >= 3);
        let (_, hlen) = SegmentHeader::decode(&segs[1]).unwrap();
        let b = pick.index(hlen);
        segs[1][b] ^= 1 << bit;
        let r = run(&segs, &cps);
        prop_assert!(!r.is_intact());
        let bad = r.first_bad.unwrap();
        prop_assert_eq!(bad.segment_index, 1);
    }

    #[test]
    fn random_logs_verify_and_any_flipped_record_byte_is_caught(
        n in 1u64..60,
        seg in 600u64..5000,
        pick in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let (mut segs, cps) = build(n, seg, 7);
        prop_assert!(run(&segs, &cps).is_intact());
        // Choose one byte among all record frames (length prefix, record, stored hash).
        let mut spots = Vec::new();
        for (s, bytes) in segs.iter().enumerate() {
            let (_, hlen) = SegmentHeader::decode(bytes).unwrap();
            for b in hlen..bytes.len() {
                spots.push((s, b));
            }
        }
        let (s, b) = spots[pick.index(spots.len())];
        segs[s][b] ^= 1 << bit;
        let r = run(&segs, &cps);
        prop_assert!(!r.is_intact());
        prop_assert!(r.first_bad.is_some() || r.checkpoints.iter().any(|c| *c != CheckpointStatus::Verified));
    }
}

#[test]
fn appending_many_writes_the_same_bytes_as_one_by_one_and_stops_at_a_full_budget() {
    let config = LogConfig {
        segment_max_bytes: 4096,
        flush_each_append: true,
    };
    let records: Vec<_> = (0..40).map(sample).collect();
    let mut one = LogWriter::create(MemorySink::new(), config);
    for r in &records {
        one.append(r).unwrap();
    }
    let mut many = LogWriter::create(MemorySink::new(), config);
    let appended = many.append_many(&records).unwrap();
    assert_eq!(appended.len(), 40);
    assert_eq!(appended[39].seq, 39);
    assert_eq!(many.sink().segments(), one.sink().segments());

    // A budget for about two records: those that fit are written and counted, no more.
    let mut w = LogWriter::create(MemorySink::new(), config);
    w.set_space_budget(Some(700));
    let (written, err) = w.append_many(&records).unwrap_err();
    let written = written.len();
    assert!(matches!(err, super::segment::LogError::Full { .. }));
    assert!(written > 0 && written < 40);
    assert_eq!(w.state().next_seq, written as u64);
}
