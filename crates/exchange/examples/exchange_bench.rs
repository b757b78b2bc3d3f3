//! Benchmark of the exchange core, printing one JSON object.
//!
//! `cargo run --release -p dancu-exchange --example exchange_bench [records]`
//!
//! - `log_append`: records appended per second (encoding + chain hash + Merkle frontier), into
//!   a sink that only counts bytes;
//! - `handler_with_log`: an "empty handler" (build the log record, append it) against the
//!   attribute-match handler (right decision + attribute match with the person's name keys
//!   precomputed, as a verification index holds them + append): the ratio is the share of the
//!   empty handler's throughput that attribute match keeps;
//! - `merkle_root`: tree head over N chain hashes (leaf hashing included and separate);
//! - `proofs`: one inclusion and one consistency proof over N leaves, generated and checked;
//! - `verify`: full verification of N records in 64 MiB segments with one checkpoint.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use dancu_domain::person::{Person, Sex};
use dancu_exchange::log::checkpoint::Checkpoint;
use dancu_exchange::log::merkle::{self, Hash, leaf_hash};
use dancu_exchange::log::record::{AuditRecord, ExchangeResult};
use dancu_exchange::log::segment::{LogConfig, LogWriter, MemorySink, SegmentSink};
use dancu_exchange::log::verify::verify;
use dancu_exchange::matching::{Claims, NameKeys, attribute_match, attribute_match_prepared};
use dancu_exchange::rights::{AccessRequest, AccessRight, Limits, decide};
use p256::ecdsa::SigningKey;
use p256::elliptic_curve::Generate;
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::hint::black_box;
use std::io::{self, Write};
use std::time::Instant;

#[derive(Debug, Default)]
struct Counting(u64);

impl Write for Counting {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[derive(Debug, Default)]
struct CountingSink;

impl SegmentSink for CountingSink {
    type Segment = Counting;
    fn create(&mut self, _: u64) -> io::Result<Counting> {
        Ok(Counting::default())
    }
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 2, 0, 0)
        .single()
        .unwrap_or_default()
}

fn record(i: u64, now: DateTime<Utc>) -> AuditRecord {
    AuditRecord {
        time: now,
        caller_org: "bank-vcb".into(),
        subsystem: "ekyc".into(),
        end_user: Some("op-17".into()),
        service: "attribute_match".into(),
        person: Some(format!("{:012}", 1_090_000_000 + i)),
        fields: vec!["name".into(), "date_of_birth".into(), "sex".into()],
        purpose: "account_opening".into(),
        case_ref: Some("HS-2026-000123".into()),
        result: ExchangeResult::Served,
        covert_until: None,
    }
}

fn person() -> Person {
    let json = serde_json::json!({
        "id": "001190000001", "version": 1,
        "name": {"family": "Đặng", "middle": "Thị", "given": "Thủy"},
        "date_of_birth": "1990-05-01", "sex": "female",
        "birth_registration": {"scheme": "2025", "commune_code": "00004", "detail": "",
            "effective_from": "2025-07-01"},
        "ethnicity": "Kinh", "religion": "Không", "nationality": "VN",
    });
    match serde_json::from_value(json) {
        Ok(p) => p,
        Err(e) => panic!("fixture person: {e}"),
    }
}

fn right() -> AccessRight {
    AccessRight {
        id: "r-1".into(),
        org: "bank-vcb".into(),
        subsystem: "ekyc".into(),
        service: "attribute_match".into(),
        fields: ["name", "date_of_birth", "sex"].map(String::from).into(),
        purpose: "account_opening".into(),
        legal_basis: "Luật Căn cước 2023".into(),
        requires_consent: false,
        requires_end_user: true,
        requires_case_reference: true,
        covert_embargo_days: None,
        quota: None,
        rate: None,
    }
}

fn rate(n: u64, secs: f64) -> f64 {
    (n as f64 / secs).round()
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let now = start();
    let cfg = LogConfig {
        segment_max_bytes: 64 * 1024 * 1024,
        flush_each_append: false,
    };

    // 1. Appends.
    let recs: Vec<AuditRecord> = (0..n.min(100_000)).map(|i| record(i, now)).collect();
    let mut w = LogWriter::create(CountingSink, cfg);
    let t = Instant::now();
    for i in 0..n {
        if let Err(e) = w.append(&recs[(i % recs.len() as u64) as usize]) {
            panic!("append: {e}");
        }
    }
    let append_s = t.elapsed().as_secs_f64();

    // 2. Empty handler vs attribute match, both with the log on.
    let m = n.min(500_000);
    let p = person();
    let rights = [right()];
    let fields: Vec<String> = ["name", "date_of_birth", "sex"].map(String::from).into();
    let claims = Claims {
        name: Some("DANG THI THUY".into()),
        date_of_birth: Some("1990-05-01".into()),
        sex: Some(Sex::Female),
        ..Claims::default()
    };
    let mut w = LogWriter::create(CountingSink, cfg);
    let t = Instant::now();
    for i in 0..m {
        let r = record(i, now);
        if let Err(e) = w.append(black_box(&r)) {
            panic!("append: {e}");
        }
    }
    let empty_s = t.elapsed().as_secs_f64();
    // The verification index keeps each person's name keys, as a hot path would.
    let keys = NameKeys::of(&p);
    let mut w = LogWriter::create(CountingSink, cfg);
    let mut limits = Limits::default();
    let t = Instant::now();
    for i in 0..m {
        let req = AccessRequest {
            org: "bank-vcb",
            subsystem: "ekyc",
            service: "attribute_match",
            fields: &fields,
            purpose: "account_opening",
            person: "001190000001",
            end_user: Some("op-17"),
            case_ref: Some("HS-2026-000123"),
            consent: None,
            client_key_not_after: None,
            now,
        };
        let grant = decide(&rights, &req, &mut limits);
        let answer = attribute_match_prepared(black_box(&p), &keys, black_box(&claims));
        black_box((&grant, &answer));
        let r = record(i, now);
        if let Err(e) = w.append(&r) {
            panic!("append: {e}");
        }
    }
    let match_s = t.elapsed().as_secs_f64();

    // Components alone, per call.
    let t = Instant::now();
    for _ in 0..m {
        black_box(attribute_match(black_box(&p), black_box(&claims)));
    }
    let match_unprepared_ns = t.elapsed().as_secs_f64() * 1e9 / m as f64;
    let t = Instant::now();
    for _ in 0..m {
        black_box(attribute_match_prepared(
            black_box(&p),
            &keys,
            black_box(&claims),
        ));
    }
    let match_only_ns = t.elapsed().as_secs_f64() * 1e9 / m as f64;
    let t = Instant::now();
    for _ in 0..m {
        let req = AccessRequest {
            org: "bank-vcb",
            subsystem: "ekyc",
            service: "attribute_match",
            fields: &fields,
            purpose: "account_opening",
            person: "001190000001",
            end_user: Some("op-17"),
            case_ref: Some("HS-2026-000123"),
            consent: None,
            client_key_not_after: None,
            now,
        };
        black_box(decide(black_box(&rights), &req, &mut limits).is_ok());
    }
    let decide_only_ns = t.elapsed().as_secs_f64() * 1e9 / m as f64;

    // 3. Merkle root over n chain hashes.
    let chain: Vec<Hash> = (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect();
    let t = Instant::now();
    let leaves: Vec<Hash> = chain.iter().map(|h| leaf_hash(h)).collect();
    let leaf_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let root = merkle::root(&leaves);
    let root_s = t.elapsed().as_secs_f64();

    // 4. Proofs.
    let idx = (n / 3) as usize;
    let t = Instant::now();
    let ip = merkle::inclusion_proof(&leaves, idx).unwrap_or_default();
    let incl_gen_s = t.elapsed().as_secs_f64();
    let incl_ok = merkle::verify_inclusion(&leaves[idx], idx as u64, n, &ip, &root);
    let old = (n / 2) as usize;
    let old_root = merkle::root(&leaves[..old]);
    let t = Instant::now();
    let cp = merkle::consistency_proof(&leaves, old).unwrap_or_default();
    let cons_gen_s = t.elapsed().as_secs_f64();
    let cons_ok = merkle::verify_consistency(old as u64, &old_root, n, &root, &cp);

    // 5. Verify a real log of n records.
    let key = SigningKey::generate_from_rng(&mut StdRng::seed_from_u64(1));
    let mut w = LogWriter::create(MemorySink::new(), cfg);
    for i in 0..n {
        let r = record(i, now + TimeDelta::milliseconds(i as i64));
        if let Err(e) = w.append(&r) {
            panic!("append: {e}");
        }
    }
    let st = w.state().clone();
    let checkpoint = Checkpoint::sign(st.next_seq, st.frontier.root(), now, &key);
    let segs = w.sink().segments();
    let bytes: u64 = segs.iter().map(|s| s.len() as u64).sum();
    let refs: Vec<&[u8]> = segs.iter().map(Vec::as_slice).collect();
    let t = Instant::now();
    let report = verify(&refs, &[checkpoint], key.verifying_key());
    let verify_s = t.elapsed().as_secs_f64();

    let out = serde_json::json!({
        "records": n,
        "log_append": {
            "seconds": append_s,
            "appends_per_s": rate(n, append_s),
        },
        "handler_with_log": {
            "calls": m,
            "empty_handler_per_s": rate(m, empty_s),
            "attribute_match_per_s": rate(m, match_s),
            "attribute_match_share_of_empty": (empty_s / match_s * 1000.0).round() / 1000.0,
            "target_share": 0.5,
            "attribute_match_alone_ns": match_only_ns.round(),
            "attribute_match_unprepared_ns": match_unprepared_ns.round(),
            "decide_alone_ns": decide_only_ns.round(),
            "append_ns": (empty_s * 1e9 / m as f64).round(),
        },
        "merkle_root": {
            "leaves": n,
            "leaf_hashing_ms": (leaf_s * 1e3 * 10.0).round() / 10.0,
            "root_ms": (root_s * 1e3 * 10.0).round() / 10.0,
        },
        "proofs": {
            "inclusion_generate_ms": (incl_gen_s * 1e3 * 10.0).round() / 10.0,
            "inclusion_path_len": ip.len(),
            "inclusion_ok": incl_ok,
            "consistency_generate_ms": (cons_gen_s * 1e3 * 10.0).round() / 10.0,
            "consistency_ok": cons_ok,
        },
        "verify": {
            "segments": segs.len(),
            "bytes": bytes,
            "seconds": verify_s,
            "records_per_s": rate(report.records, verify_s),
            "mib_per_s": ((bytes as f64 / 1048576.0 / verify_s) * 10.0).round() / 10.0,
            "intact": report.is_intact(),
        },
    });
    println!("{out}");
}
