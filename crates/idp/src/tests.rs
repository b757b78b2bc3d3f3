//! The service over both document-store backends (PostgreSQL when `DANCU_TEST_DATABASE_URL` is
//! set, in a schema of its own): keys that survive restarts and rotate across nodes, and a code
//! that only one of two racing exchanges can redeem.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::sms::OutboxGateway;
use crate::*;
use chrono::{NaiveDate, TimeZone, Utc};
use dancu_domain::admin::{Address, Scheme};
use dancu_domain::clock::{Clock, FixedClock};
use dancu_domain::event::{EventMeta, PersonChange, apply};
use dancu_domain::person::*;
use dancu_domain::{PartialDate, PersonName, PersonalId};
use dancu_eid::face::DemoFaceVerifier;
use dancu_eid::oidc::pkce::challenge_s256;
use dancu_store::{ImportRow, Store};
use std::collections::BTreeMap;

struct Env {
    store: Arc<dyn Store>,
    docs: Arc<dyn DocStore>,
    clock: Arc<FixedClock>,
    dir: tempfile::TempDir,
    schema: Option<(String, String)>,
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some((admin, schema)) = &self.schema
            && let Ok(mut c) = postgres::Client::connect(admin, postgres::NoTls)
        {
            let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
        }
    }
}

fn env(test: &str, pg: bool) -> Option<Env> {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FixedClock::new(
        Utc.with_ymd_and_hms(2026, 3, 1, 3, 0, 0).unwrap(),
    ));
    if !pg {
        let path = dir.path().join("t.sqlite3");
        let (store, docs) = dancu_store::docs::open_with_docs(path.to_str().unwrap()).unwrap();
        return Some(Env {
            store,
            docs,
            clock,
            dir,
            schema: None,
        });
    }
    let admin = std::env::var("DANCU_TEST_DATABASE_URL")
        .ok()
        .filter(|s| !s.is_empty())?;
    let schema = format!("idp_{test}_{}", std::process::id());
    let mut c = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
    c.batch_execute(&format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
    ))
    .unwrap();
    let sep = if admin.contains('?') { '&' } else { '?' };
    let url = format!("{admin}{sep}pool_max=8&options=-csearch_path%3D{schema}");
    let (store, docs) = dancu_store::docs::open_with_docs(&url).unwrap();
    Some(Env {
        store,
        docs,
        clock,
        dir,
        schema: Some((admin, schema)),
    })
}

impl Env {
    fn idp(&self) -> Idp {
        let registry = Arc::new(Registry::new(
            self.store.clone(),
            self.clock.clone() as Arc<dyn Clock>,
            Some(1),
        ));
        let mut cfg = IdpConfig::new("https://id.dancu.example");
        cfg.passcode = dancu_eid::authn::passcode::PasscodeParams {
            m_kib: 1024,
            t: 1,
            p: 1,
        };
        cfg.key_cache = std::time::Duration::ZERO;
        Idp::open(
            cfg,
            IdpDeps {
                docs: self.docs.clone(),
                registry,
                clock: self.clock.clone() as Arc<dyn Clock>,
                sms: Arc::new(OutboxGateway::new(self.dir.path().join("sms.ndjson"))),
                face: Arc::new(DemoFaceVerifier),
                seed: None,
            },
        )
        .unwrap()
    }

    /// An adult with a valid card and a level-1 account with passcode 480916.
    fn citizen(&self, idp: &Idp) -> PersonalId {
        let id = PersonalId::compose("001", Sex::Female, 1990, 7).unwrap();
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap();
        let p = Person {
            id,
            version: 0,
            name: PersonName::parse("Lê Thu Hà").unwrap(),
            other_names: vec![],
            date_of_birth: PartialDate::Full(d(1990, 5, 1)),
            sex: Sex::Female,
            birth_registration: Address::new(Scheme::Legacy, "00001", "", d(1990, 5, 10)).unwrap(),
            home_town: None,
            ethnicity: "Kinh".into(),
            religion: "Không".into(),
            nationality: "VN".into(),
            marital_status: MaritalStatus::Single,
            blood_type: None,
            father: None,
            mother: None,
            spouse: None,
            permanent_residence: None,
            temporary_residence: None,
            temporary_absence: None,
            last_stay: None,
            household: None,
            legacy_cmnd: vec![],
            cards: vec![CardRecord {
                number: id.to_string(),
                kind: CardKind::CanCuoc,
                issued_on: d(2025, 1, 10),
                expires_on: None,
                status: CardStatus::Valid,
            }],
            vital_status: VitalStatus::Alive,
        };
        let p = apply(
            None,
            &PersonChange::RecordImported {
                record: Box::new(p),
            },
        )
        .unwrap();
        let meta = EventMeta {
            actor: "fixture".into(),
            at: self.clock.now(),
            reason: None,
            legal_basis: None,
            document_ref: None,
        };
        self.store
            .import_batch("fixture", &[ImportRow { line: 1, person: p }], &meta)
            .unwrap();
        idp.set_face_reference(&id, b"face").unwrap();
        let otp_id = idp.send_phone_code("0912000111").unwrap();
        let outbox = std::fs::read_to_string(self.dir.path().join("sms.ndjson")).unwrap();
        let text = outbox.lines().last().unwrap();
        let at = text.find(": ").unwrap() + 2;
        let code = text[at..at + 6].to_owned();
        idp.register_level1(&Level1Registration {
            id,
            phone: "0912000111".into(),
            otp_id,
            code,
            face_image: b"face".to_vec(),
            passcode: "480916".into(),
            guardian: None,
        })
        .unwrap();
        id
    }
}

fn keys_survive_restarts_and_rotate_across_nodes(e: &Env) {
    let a = e.idp();
    let b = e.idp();
    let kid = |i: &Idp| i.jwks().unwrap()["keys"][0]["kid"].clone();
    assert_eq!(kid(&a), kid(&b), "one key set, generated once");
    let old = kid(&a);
    let new = a.rotate_keys().unwrap();
    let jwks = b.jwks().unwrap();
    assert_eq!(
        jwks["keys"][0]["kid"],
        new.as_str(),
        "the other node signs with it"
    );
    assert_eq!(jwks["keys"][1]["kid"], old, "the old key keeps verifying");
    assert_eq!(e.idp().jwks().unwrap(), jwks, "a restart keeps both");
}

fn only_one_of_two_racing_exchanges_redeems_a_code(e: &Env) {
    let idp = Arc::new(e.idp());
    let id = e.citizen(&idp);
    let reg: ClientRegistration = serde_json::from_value(serde_json::json!({
        "id": "rp", "name": "RP", "redirect_uris": ["https://rp.example/cb"],
        "token_endpoint_auth_method": "client_secret_basic"
    }))
    .unwrap();
    let secret = idp.register_client(&reg).unwrap().client_secret.unwrap();
    let verifier = "v".repeat(50);
    let params: BTreeMap<String, String> = [
        ("response_type", "code".to_owned()),
        ("client_id", "rp".to_owned()),
        ("redirect_uri", "https://rp.example/cb".to_owned()),
        ("scope", "openid profile".to_owned()),
        ("nonce", "n".to_owned()),
        ("code_challenge", challenge_s256(&verifier)),
        ("code_challenge_method", "S256".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let AuthorizeStep::Login { tx, .. } = idp.authorize(&params, None) else {
        panic!("login first")
    };
    let (step, cookie) = idp
        .authorize_login(&tx, &id.to_string(), "480916", None, "test")
        .unwrap();
    let AuthorizeStep::Consent { tx, .. } = step else {
        panic!("consent next: {step:?}")
    };
    let AuthorizeStep::Redirect(url) = idp.authorize_consent(&tx, true, cookie.as_deref()).unwrap()
    else {
        panic!("code")
    };
    let code = url
        .split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("code="))
        .unwrap()
        .to_owned();
    let basic = format!("Basic {}", b64_std(format!("rp:{secret}").as_bytes()));
    let form: BTreeMap<String, String> = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", "https://rp.example/cb"),
        ("code_verifier", verifier.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let barrier = Arc::new(std::sync::Barrier::new(2));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let (idp, form, basic, barrier) =
                (idp.clone(), form.clone(), basic.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                idp.token(&TokenRequest {
                    form: &form,
                    authorization: Some(&basic),
                    dpop: None,
                })
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 1, "{results:?}");
    // Whoever lost sees a conflict (lost the race) or a reuse (came second).
    let err = results.iter().find_map(|r| r.as_ref().err()).unwrap();
    assert!(
        matches!(err.code, "eid_conflict" | "oidc_code_reused"),
        "{err:?}"
    );
}

fn b64_std(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |a, b| (a << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

macro_rules! both_backends {
    ($($case:ident),* $(,)?) => {
        mod on_sqlite {
            $(#[test] fn $case() { super::$case(&super::env(stringify!($case), false).unwrap()); })*
        }
        mod on_postgres {
            $(#[test] fn $case() {
                // Without DANCU_TEST_DATABASE_URL this half does not run (CI sets it).
                if let Some(e) = super::env(stringify!($case), true) { super::$case(&e); }
            })*
        }
    };
}

/// Logins racing on the same throttle records (one account, one source address, as behind a
/// carrier NAT) all succeed: a conflict re-reads the throttles instead of refusing.
fn concurrent_logins_from_one_address_all_succeed(e: &Env) {
    let idp = Arc::new(e.idp());
    let id = e.citizen(&idp);
    let results: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let idp = idp.clone();
                s.spawn(move || idp.login_passcode(&id, "480916", "ip:203.0.113.7", None))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in &results {
        assert!(r.is_ok(), "{r:?}");
    }
    let history = idp.usage_history(&id, 50).unwrap();
    let logins = history
        .iter()
        .filter(|u| {
            matches!(
                u.kind,
                dancu_eid::history::UsageKind::Authentication { success: true, .. }
            )
        })
        .count();
    assert_eq!(logins, 4, "each login recorded once");
}

both_backends!(
    keys_survive_restarts_and_rotate_across_nodes,
    only_one_of_two_racing_exchanges_redeems_a_code,
    concurrent_logins_from_one_address_all_succeed,
);

#[test]
fn the_passkey_relying_party_follows_the_issuer() {
    let cfg = crate::IdpConfig::new("https://id.dancu.example:8443/oidc/");
    assert_eq!(cfg.webauthn.id, "id.dancu.example");
    assert_eq!(cfg.webauthn.origins, vec!["https://id.dancu.example:8443"]);
    assert!(cfg.webauthn.require_user_verification);
    let cfg = crate::IdpConfig::new("http://127.0.0.1:8080");
    assert_eq!(cfg.webauthn.id, "127.0.0.1");
    assert_eq!(cfg.webauthn.origins, vec!["http://127.0.0.1:8080"]);
}
