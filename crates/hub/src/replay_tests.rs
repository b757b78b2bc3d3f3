#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Client-assertion ids: refused the second time, whoever asks at the same moment, and after
//! a restart of the hub on the same store.

use crate::audit::{AuditSettings, load_or_create_key};
use crate::members::HubConfig;
use crate::service::{Hub, HubError};
use chrono::{TimeZone, Utc};
use dancu_domain::clock::{Clock, FixedClock};
use dancu_eid::oidc::jws::{Jwk, sign_es256};
use p256::ecdsa::SigningKey;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;

fn open(dir: &Path, key: &SigningKey) -> Hub {
    let config: HubConfig = serde_json::from_value(json!({
        "members": [{"id": "bank-a", "name": "A", "class": "bank",
                     "subsystems": [{"id": "ekyc", "keys": [{"jwk": Jwk::from_p256(key.verifying_key())}]}]}],
        "rights": [],
    }))
    .unwrap();
    let (store, docs) =
        dancu_store::docs::open_with_docs(dir.join("db.sqlite3").to_str().unwrap()).unwrap();
    let clock = Arc::new(FixedClock::new(
        Utc.with_ymd_and_hms(2026, 3, 1, 3, 0, 0).unwrap(),
    ));
    Hub::open(
        config,
        store,
        docs,
        clock as Arc<dyn Clock>,
        &dir.join("audit"),
        &dir.join("hub"),
        AuditSettings::default(),
    )
    .unwrap()
}

fn assertion(key: &SigningKey, jti: &str) -> String {
    let now = Utc
        .with_ymd_and_hms(2026, 3, 1, 3, 0, 0)
        .unwrap()
        .timestamp();
    sign_es256(
        key,
        "JWT",
        None,
        false,
        &json!({"iss": "bank-a/ekyc", "sub": "bank-a/ekyc", "aud": "urn:dancu:hub",
                "iat": now, "exp": now + 120, "jti": jti}),
    )
    .unwrap()
}

#[test]
fn a_client_assertion_is_accepted_once_also_concurrently_and_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let key = load_or_create_key(dir.path(), "client.hex", "client.jwk.json").unwrap();
    let hub = Arc::new(open(dir.path(), &key));

    // Many distinct assertions at once: each accepted.
    let handles: Vec<_> = (0..16)
        .map(|i| {
            let (hub, a) = (hub.clone(), assertion(&key, &format!("fresh-{i}")));
            std::thread::spawn(move || hub.authenticate(&a).is_ok())
        })
        .collect();
    assert!(handles.into_iter().all(|h| h.join().unwrap()));

    // The same assertion sent by many threads at once: exactly one is accepted.
    let same = assertion(&key, "contested");
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let (hub, a) = (hub.clone(), same.clone());
            std::thread::spawn(move || hub.authenticate(&a))
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| matches!(e, HubError::Replay))
    );

    // After a restart on the same store, a used id is still refused.
    let used = assertion(&key, "fresh-3");
    drop(hub);
    let hub = open(dir.path(), &key);
    assert!(matches!(hub.authenticate(&used), Err(HubError::Replay)));
    assert!(matches!(hub.authenticate(&same), Err(HubError::Replay)));
    assert!(hub.authenticate(&assertion(&key, "after-restart")).is_ok());
}
