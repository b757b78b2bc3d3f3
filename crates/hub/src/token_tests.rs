#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Access tokens: issued for a valid client assertion within the subsystem's rights, honoured
//! by another node on the same store and after a restart, refused once expired, outside their
//! scope, or when the key that obtained them is no longer registered.

use crate::audit::{AuditSettings, load_or_create_key};
use crate::members::HubConfig;
use crate::service::{CallMeta, Hub, HubError};
use chrono::{Duration, TimeZone, Utc};
use dancu_domain::Problem;
use dancu_domain::clock::{Clock, FixedClock};
use dancu_eid::oidc::jws::{Jwk, sign_es256};
use dancu_exchange::matching::Claims;
use p256::ecdsa::SigningKey;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;

fn t0() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 3, 0, 0).unwrap()
}

fn config(keys: Value) -> HubConfig {
    serde_json::from_value(json!({
        "members": [{"id": "bank-a", "name": "A", "class": "bank",
                     "subsystems": [{"id": "ekyc", "keys": keys}]}],
        "rights": [
            {"id": "r-attr", "org": "bank-a", "subsystem": "ekyc", "service": "verify_attributes",
             "fields": ["sex"], "purpose": "account_opening", "legal_basis": "test",
             "requires_consent": false, "requires_end_user": false,
             "requires_case_reference": false},
            {"id": "r-cmnd", "org": "bank-a", "subsystem": "ekyc", "service": "verify_cmnd",
             "fields": ["personal_id"], "purpose": "account_opening", "legal_basis": "test",
             "requires_consent": false, "requires_end_user": false,
             "requires_case_reference": false},
        ],
    }))
    .unwrap()
}

fn open(dir: &Path, node: &str, config: HubConfig, clock: Arc<FixedClock>) -> Hub {
    let (store, docs) =
        dancu_store::docs::open_with_docs(dir.join("db.sqlite3").to_str().unwrap()).unwrap();
    Hub::open(
        config,
        store,
        docs,
        clock as Arc<dyn Clock>,
        &dir.join(node).join("audit"),
        &dir.join(node).join("hub"),
        AuditSettings::default(),
    )
    .unwrap()
}

fn assertion(key: &SigningKey, jti: &str) -> String {
    let now = t0().timestamp();
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

/// A directory with two client keys and node "a", both keys registered for bank-a/ekyc.
struct TwoKeys {
    dir: tempfile::TempDir,
    key: SigningKey,
    other: SigningKey,
    clock: Arc<FixedClock>,
    a: Hub,
}

fn jwk(k: &SigningKey) -> Value {
    json!({"jwk": Jwk::from_p256(k.verifying_key())})
}

fn two_keys() -> TwoKeys {
    let dir = tempfile::tempdir().unwrap();
    let key = load_or_create_key(dir.path(), "client.hex", "client.jwk.json").unwrap();
    let other = load_or_create_key(dir.path(), "other.hex", "other.jwk.json").unwrap();
    let clock = Arc::new(FixedClock::new(t0()));
    let a = open(
        dir.path(),
        "a",
        config(json!([jwk(&key), jwk(&other)])),
        clock.clone(),
    );
    TwoKeys {
        dir,
        key,
        other,
        clock,
        a,
    }
}

#[test]
fn access_tokens_follow_the_scope_the_expiry_and_the_registered_keys_across_nodes() {
    let TwoKeys {
        dir,
        key,
        other,
        clock,
        a,
    } = two_keys();

    // Default scope: every service of the subsystem's rights.
    let all = a.issue_token(&assertion(&key, "t1"), None).unwrap();
    assert_eq!(all.token_type, "Bearer");
    assert_eq!(all.expires_in, 600);
    assert_eq!(all.scope, "verify_attributes verify_cmnd");
    let c = a
        .authenticate_token_cached(&all.access_token)
        .unwrap()
        .unwrap();
    assert_eq!((c.org.as_str(), c.subsystem.as_str()), ("bank-a", "ekyc"));

    // A narrower scope, and one outside the rights.
    let cmnd = a
        .issue_token(&assertion(&key, "t2"), Some("verify_cmnd"))
        .unwrap();
    assert_eq!(cmnd.scope, "verify_cmnd");
    let e = a
        .issue_token(&assertion(&key, "t3"), Some("verify_cmnd ekyc"))
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (400, "invalid_scope"));
    // The assertion is single-use at the token endpoint too.
    let e = a.issue_token(&assertion(&key, "t2"), None).unwrap_err();
    assert!(matches!(e, HubError::Replay), "{e}");

    // A call outside the token's scope is refused before anything else.
    let c = a.authenticate_token(&cmnd.access_token).unwrap();
    let claims: Claims = serde_json::from_value(json!({"sex": "male"})).unwrap();
    let person = dancu_domain::PersonalId::compose("001", dancu_domain::person::Sex::Male, 1990, 1)
        .unwrap()
        .to_string();
    let meta = CallMeta {
        purpose: "account_opening".into(),
        end_user: None,
        case_ref: None,
    };
    let e = a
        .verify_attributes(&c, &meta, &person, &claims)
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (403, "insufficient_scope"));

    // An unknown token.
    let e = a.authenticate_token("not-a-token").unwrap_err();
    assert_eq!(e.code(), "client_unauthenticated");
    assert!(a.authenticate_token_cached("not-a-token").is_none());

    // Another node on the same store (or this one after a restart) has not seen the token
    // but finds it in the store; without the key that obtained it, the token is dead.
    let b = open(
        dir.path(),
        "b",
        config(json!([jwk(&key), jwk(&other)])),
        clock.clone(),
    );
    assert!(b.authenticate_token_cached(&all.access_token).is_none());
    assert!(b.authenticate_token(&all.access_token).is_ok());
    assert!(b.authenticate_token_cached(&all.access_token).is_some());
    let c = open(dir.path(), "c", config(json!([jwk(&other)])), clock.clone());
    let e = c.authenticate_token(&all.access_token).unwrap_err();
    assert_eq!((e.status(), e.code()), (401, "client_unauthenticated"));

    // A key that expires soon bounds its tokens' lifetime, and a key past its not_after
    // stops its tokens.
    let soon = t0() + Duration::seconds(100);
    let d = open(
        dir.path(),
        "d",
        config(json!([{"jwk": Jwk::from_p256(key.verifying_key()), "not_after": soon}])),
        clock.clone(),
    );
    let short = d.issue_token(&assertion(&key, "t4"), None).unwrap();
    assert_eq!(short.expires_in, 100);
    clock.advance(Duration::seconds(100));
    let e = d.authenticate_token(&short.access_token).unwrap_err();
    assert_eq!(e.status(), 401);

    // Expiry: refused from memory and from the store alike.
    clock.advance(Duration::seconds(500));
    let e = a.authenticate_token(&all.access_token).unwrap_err();
    assert_eq!(e.code(), "client_unauthenticated");
    let e = b.authenticate_token(&cmnd.access_token).unwrap_err();
    assert_eq!(e.code(), "client_unauthenticated");
}

/// A node answers known tokens from memory; a change of its members' configuration (here a
/// key revoked, then registered again) is seen by the very next call.
#[test]
fn a_token_answered_from_memory_follows_each_change_of_the_keys() {
    let TwoKeys {
        dir: _dir,
        key,
        clock,
        a,
        ..
    } = two_keys();
    let token = a.issue_token(&assertion(&key, "m1"), None).unwrap();
    for _ in 0..2 {
        let c = a.authenticate_token_cached(&token.access_token).unwrap();
        assert_eq!(c.unwrap().org, "bank-a");
    }
    let kid = Jwk::from_p256(key.verifying_key()).thumbprint().unwrap();
    a.admin_revoke_key("bank-a", "ekyc", &kid).unwrap();
    for _ in 0..2 {
        let e = a
            .authenticate_token_cached(&token.access_token)
            .unwrap()
            .unwrap_err();
        assert_eq!((e.status(), e.code()), (401, "client_unauthenticated"));
    }
    a.admin_add_key(crate::admin::NewKey {
        org: "bank-a".into(),
        subsystem: "ekyc".into(),
        jwk: Jwk::from_p256(key.verifying_key()),
        not_after: Some(t0() + Duration::seconds(60)),
    })
    .unwrap();
    let c = a
        .authenticate_token_cached(&token.access_token)
        .unwrap()
        .unwrap();
    assert_eq!(c.key_not_after, Some(t0() + Duration::seconds(60)));
    // The key's new not_after is checked from memory too.
    clock.advance(Duration::seconds(60));
    let e = a
        .authenticate_token_cached(&token.access_token)
        .unwrap()
        .unwrap_err();
    assert_eq!(e.status(), 403, "{e:?}");
}
