#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Quotas survive a restart and hold across nodes: the count is shared in the document store
//! and each node leases from it; rate buckets are rebuilt from the exchange log when a node
//! opens.

use crate::audit::AuditSettings;
use crate::members::HubConfig;
use crate::service::{CallMeta, Client, Hub};
use chrono::{Duration, TimeZone, Utc};
use dancu_domain::Problem;
use dancu_domain::clock::{Clock, FixedClock};
use dancu_exchange::matching::Claims;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;

fn open(dir: &Path, clock: Arc<FixedClock>) -> Hub {
    open_node(dir, "audit", clock)
}

/// A hub node with its own exchange log in `dir/<log>`, over the database in `dir`.
pub(crate) fn open_node(dir: &Path, log: &str, clock: Arc<FixedClock>) -> Hub {
    open_with(dir, log, clock, config())
}

fn open_with(dir: &Path, log: &str, clock: Arc<FixedClock>, config: HubConfig) -> Hub {
    let (store, docs) =
        dancu_store::docs::open_with_docs(dir.join("db.sqlite3").to_str().unwrap()).unwrap();
    Hub::open(
        config,
        store,
        docs,
        clock as Arc<dyn Clock>,
        &dir.join(log),
        &dir.join(format!("{log}-keys")),
        AuditSettings::default(),
    )
    .unwrap()
}

fn config() -> HubConfig {
    serde_json::from_value(json!({
        "members": [{"id": "bank-a", "name": "A", "class": "bank",
                     "subsystems": [{"id": "small", "keys": []}, {"id": "big", "keys": []},
                                    {"id": "burst", "keys": []}]}],
        "rights": [
            {"id": "r-small", "org": "bank-a", "subsystem": "small", "service": "verify_attributes",
             "fields": ["sex"], "purpose": "account_opening", "legal_basis": "test",
             "requires_consent": false, "requires_end_user": false,
             "requires_case_reference": false, "quota": {"limit": 3, "period": "day"}},
            {"id": "r-big", "org": "bank-a", "subsystem": "big", "service": "verify_attributes",
             "fields": ["sex"], "purpose": "account_opening", "legal_basis": "test",
             "requires_consent": false, "requires_end_user": false,
             "requires_case_reference": false, "quota": {"limit": 1000, "period": "month"}},
            {"id": "r-burst", "org": "bank-a", "subsystem": "burst", "service": "verify_attributes",
             "fields": ["sex"], "purpose": "account_opening", "legal_basis": "test",
             "requires_consent": false, "requires_end_user": false,
             "requires_case_reference": false, "rate": {"per_second": 1, "burst": 2}},
        ],
    }))
    .unwrap()
}

fn client(sub: &str) -> Client {
    Client {
        org: "bank-a".into(),
        subsystem: sub.into(),
        key_not_after: None,
        scope: None,
    }
}

fn call(hub: &Hub, sub: &str, purpose: &str) -> Result<(), String> {
    // Nobody is in the register: an allowed call fails with person_not_found (and still uses
    // the quota, as it was allowed); a refused one says why.
    let person = dancu_domain::PersonalId::compose("001", dancu_domain::person::Sex::Male, 1990, 1)
        .unwrap()
        .to_string();
    let claims: Claims = serde_json::from_value(json!({"sex": "male"})).unwrap();
    let meta = CallMeta {
        purpose: purpose.into(),
        end_user: None,
        case_ref: None,
    };
    match hub.verify_attributes(&client(sub), &meta, &person, &claims) {
        Ok(_) => Ok(()),
        Err(e) => Err(e.code().to_owned()),
    }
}

#[test]
fn a_used_up_quota_stays_used_up_after_a_restart_until_the_period_ends() {
    let dir = tempfile::tempdir().unwrap();
    // 10:00 on 14 March in Vietnam.
    let clock = Arc::new(FixedClock::new(
        Utc.with_ymd_and_hms(2026, 3, 14, 3, 0, 0).unwrap(),
    ));
    let hub = open(dir.path(), clock.clone());
    // A refused call (wrong purpose) uses nothing.
    assert_eq!(
        call(&hub, "small", "marketing").unwrap_err(),
        "wrong_purpose"
    );
    for _ in 0..3 {
        assert_eq!(
            call(&hub, "small", "account_opening").unwrap_err(),
            "person_not_found"
        );
    }
    assert_eq!(
        call(&hub, "small", "account_opening").unwrap_err(),
        "quota_exceeded"
    );
    for _ in 0..5 {
        assert_eq!(
            call(&hub, "big", "account_opening").unwrap_err(),
            "person_not_found"
        );
    }
    drop(hub);

    // Restarted the same day: still used up; the other subsystem keeps its own count.
    clock.advance(Duration::hours(2));
    let hub = open(dir.path(), clock.clone());
    assert_eq!(
        call(&hub, "small", "account_opening").unwrap_err(),
        "quota_exceeded"
    );
    assert_eq!(
        call(&hub, "big", "account_opening").unwrap_err(),
        "person_not_found"
    );
    drop(hub);

    // Restarted after midnight in Vietnam (17:00 UTC): a new day, a new daily quota; the
    // monthly one still counts the six calls of the month.
    clock.advance(Duration::hours(12));
    assert_eq!(
        clock.now(),
        Utc.with_ymd_and_hms(2026, 3, 14, 17, 0, 0).unwrap()
    );
    let hub = open(dir.path(), clock.clone());
    for _ in 0..3 {
        assert_eq!(
            call(&hub, "small", "account_opening").unwrap_err(),
            "person_not_found"
        );
    }
    assert_eq!(
        call(&hub, "small", "account_opening").unwrap_err(),
        "quota_exceeded"
    );
    let used = hub.quota_used("bank-a", "big", "verify_attributes", "account_opening");
    assert_eq!(used, Some(6));
}

#[test]
fn a_restart_hands_out_no_fresh_burst() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FixedClock::new(
        Utc.with_ymd_and_hms(2026, 3, 14, 3, 0, 0).unwrap(),
    ));
    let hub = open(dir.path(), clock.clone());
    for _ in 0..2 {
        assert_eq!(
            call(&hub, "burst", "account_opening").unwrap_err(),
            "person_not_found"
        );
    }
    assert_eq!(
        call(&hub, "burst", "account_opening").unwrap_err(),
        "rate_limited"
    );
    drop(hub);
    // Restarted at the same instant: the burst is still spent.
    let hub = open(dir.path(), clock.clone());
    assert_eq!(
        call(&hub, "burst", "account_opening").unwrap_err(),
        "rate_limited"
    );
    drop(hub);
    // A second later one token has come back, and only one.
    clock.advance(Duration::seconds(1));
    let hub = open(dir.path(), clock.clone());
    assert_eq!(
        call(&hub, "burst", "account_opening").unwrap_err(),
        "person_not_found"
    );
    assert_eq!(
        call(&hub, "burst", "account_opening").unwrap_err(),
        "rate_limited"
    );
}

#[test]
fn two_nodes_over_one_database_share_each_quota() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FixedClock::new(
        Utc.with_ymd_and_hms(2026, 3, 14, 3, 0, 0).unwrap(),
    ));
    let a = open_node(dir.path(), "audit-a", clock.clone());
    let b = open_node(dir.path(), "audit-b", clock.clone());
    let allowed = |hub: &Hub| call(hub, "small", "account_opening").unwrap_err();
    assert_eq!(allowed(&a), "person_not_found");
    assert_eq!(allowed(&b), "person_not_found");
    assert_eq!(allowed(&a), "person_not_found");
    // The daily quota of 3 is spent between them: neither node lets a fourth call through.
    assert_eq!(allowed(&b), "quota_exceeded");
    assert_eq!(allowed(&a), "quota_exceeded");
    for _ in 0..4 {
        call(&a, "big", "account_opening").unwrap_err();
    }
    call(&b, "big", "account_opening").unwrap_err();
    for hub in [&a, &b] {
        assert_eq!(
            hub.quota_used("bank-a", "big", "verify_attributes", "account_opening"),
            Some(5)
        );
    }
    // Each node's log holds its own calls.
    let logged = |log: &str| {
        crate::audit::read_entries(&dir.path().join(log))
            .unwrap()
            .len()
    };
    assert_eq!((logged("audit-a"), logged("audit-b")), (7, 3));
}

#[test]
fn the_database_s_configuration_wins_unless_it_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FixedClock::new(
        Utc.with_ymd_and_hms(2026, 3, 14, 3, 0, 0).unwrap(),
    ));
    let shared = |log: &str, c: HubConfig| {
        open_with(dir.path(), log, clock.clone(), c)
            .with_other_nodes()
            .unwrap()
    };
    // A node started first with an empty configuration does not hide the real one.
    let empty = shared("audit-e", HubConfig::default());
    assert!(empty.config().members.is_empty());
    let real = shared("audit-r", config());
    assert_eq!(real.config().rights.len(), 3);
    // A node started later with another configuration takes the database's.
    let mut other = config();
    other.rights.truncate(1);
    let late = shared("audit-l", other);
    assert_eq!(late.config().rights.len(), 3);
    // The empty node follows within a second or so.
    let started = std::time::Instant::now();
    while empty.config().rights.len() != 3 {
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn nodes_alive_divide_a_rate_between_them() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FixedClock::new(
        Utc.with_ymd_and_hms(2026, 3, 14, 3, 0, 0).unwrap(),
    ));
    let shared = |log: &str| {
        open_node(dir.path(), log, clock.clone())
            .with_other_nodes()
            .unwrap()
    };
    let (a, b) = (shared("audit-a"), shared("audit-b"));
    let started = std::time::Instant::now();
    while (a.live_nodes(), b.live_nodes()) != (2, 2) {
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // A burst of 2 at 1 a second: one call at each node, not two at each.
    for hub in [&a, &b] {
        assert_eq!(
            call(hub, "burst", "account_opening").unwrap_err(),
            "person_not_found"
        );
        assert_eq!(
            call(hub, "burst", "account_opening").unwrap_err(),
            "rate_limited"
        );
    }
    // Each refills at half the rate.
    clock.advance(Duration::seconds(1));
    assert_eq!(
        call(&a, "burst", "account_opening").unwrap_err(),
        "rate_limited"
    );
    clock.advance(Duration::seconds(1));
    assert_eq!(
        call(&a, "burst", "account_opening").unwrap_err(),
        "person_not_found"
    );
    // B stops; once its heartbeat is older than ALIVE_FOR, A has the whole rate again.
    drop(b);
    clock.advance(crate::quota::ALIVE_FOR + Duration::seconds(1));
    let started = std::time::Instant::now();
    while a.live_nodes() != 1 {
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    for _ in 0..2 {
        assert_eq!(
            call(&a, "burst", "account_opening").unwrap_err(),
            "person_not_found"
        );
    }
    assert_eq!(
        call(&a, "burst", "account_opening").unwrap_err(),
        "rate_limited"
    );
}
