//! The data-sharing hub end to end through the real server: each service, each refusal,
//! consents, the signed eKYC answer, fee metering from the log, and `dancu audit verify` on the
//! log the server wrote.

use crate::common::{addr2025, api_backend_url, date, off_runtime};
use chrono::{Duration, TimeZone, Utc};
use dancu_domain::admin::{Address, Scheme};
use dancu_domain::clock::{Clock, FixedClock};
use dancu_domain::event::{EventMeta, PersonChange, apply};
use dancu_domain::officer::{Jurisdiction, Officer, Role};
use dancu_domain::person::*;
use dancu_domain::{CmndNumber, PartialDate, PersonName, PersonalId};
use dancu_eid::oidc::jws::{Alg, Jwk, decode_unverified, sign_es256};
use dancu_exchange::log::record::ExchangeResult;
use dancu_hub::audit::{AuditSettings, frame_ranges, list_segments, read_entries};
use dancu_hub::members::HubConfig;
use dancu_hub::service::Hub;
use dancu_registry::{Registry, credentials};
use dancu_store::{ImportRow, OfficerRecord, Store};
use p256::ecdsa::SigningKey;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

const BA_DINH: &str = "00004";

struct HubServer {
    base: String,
    http: reqwest::Client,
    clock: Arc<FixedClock>,
    store: Arc<dyn Store>,
    supervisor: String,
    registrar: String,
    data_dir: PathBuf,
    next_jti: AtomicU32,
    pg_schema: Option<String>,
    docs: Arc<dyn dancu_store::docs::DocStore>,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Another node of the same deployment: its own hub (log, keys, memory) over the first
/// server's register and document store, serving at `base` until dropped.
struct Node {
    base: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

fn key(n: u8) -> SigningKey {
    SigningKey::from_slice(&[n; 32]).unwrap()
}

fn jwk(n: u8) -> Value {
    serde_json::to_value(Jwk::from_p256(key(n).verifying_key())).unwrap()
}

fn right(id: &str, sub: &str, service: &str, fields: &[&str], extra: Value) -> Value {
    let mut r = json!({
        "id": id, "org": "bank-a", "subsystem": sub, "service": service,
        "fields": fields, "purpose": "account_opening",
        "legal_basis": "Nghị định 13/2023/NĐ-CP",
        "requires_consent": false, "requires_end_user": true, "requires_case_reference": true,
        "covert_embargo_days": null, "quota": null, "rate": null,
    });
    for (k, v) in extra.as_object().unwrap() {
        r[k] = v.clone();
    }
    r
}

fn hub_config(now: chrono::DateTime<Utc>, webhook: Option<&str>, nats: bool) -> HubConfig {
    let attrs = ["name", "date_of_birth", "sex", "commune_code", "alive"];
    let mut c: HubConfig = serde_json::from_value(json!({
        "members": [{
            "id": "police", "name": "Cơ quan điều tra", "class": "ministry",
            "subsystems": [{"id": "investigation", "keys": [{"jwk": jwk(4)}]}],
        }, {
            "id": "bhxh", "name": "Bảo hiểm xã hội", "class": "ministry",
            "subsystems": [{"id": "registry", "keys": [{"jwk": jwk(5)}]}],
        }, {
            "id": "bank-a", "name": "Ngân hàng A", "class": "bank",
            "subsystems": [
                {"id": "ekyc", "keys": [{"jwk": jwk(1)}]},
                {"id": "old", "keys": [{"jwk": jwk(2), "not_after": now - Duration::days(1)}]},
                {"id": "small", "keys": [{"jwk": jwk(3)}]},
            ],
        }],
        "rights": [
            right("r-attr", "ekyc", "verify_attributes", &attrs, json!({})),
            right("r-cmnd", "ekyc", "verify_cmnd", &["personal_id"], json!({})),
            right("r-ekyc", "ekyc", "ekyc", &["full_name", "date_of_birth", "sex"],
                json!({"requires_consent": true})),
            right("r-old", "old", "verify_attributes", &attrs, json!({})),
            right("r-small", "small", "verify_attributes", &attrs,
                json!({"quota": {"limit": 2, "period": "day"}, "requires_end_user": false})),
            with(right("r-covert", "investigation", "verify_attributes", &attrs,
                json!({"covert_embargo_days": 30})), json!({"org": "police"})),
            with(right("r-enrich", "registry", "enrich",
                &["health_insurance_number", "social_insurance_number"], json!({})),
                json!({"org": "bhxh", "purpose": "insurance_registry"})),
            right("r-linked", "ekyc", "linked_records", &["health_insurance_number"], json!({})),
            right("r-events", "ekyc", "change_events", &["record_imported", "death_registered"],
                json!({"requires_end_user": false, "requires_case_reference": false})),
        ],
        "subscriptions": [
            {"id": "ba-dinh", "org": "bank-a", "subsystem": "ekyc",
             "event_types": ["record_imported"], "communes": [BA_DINH]},
            {"id": "one-person", "org": "bank-a", "subsystem": "ekyc",
             "event_types": ["record_imported"], "persons": [PersonalId::compose("001", Sex::Male, 1960, 12).unwrap().to_string()]},
            {"id": "hanoi-all", "org": "bank-a", "subsystem": "ekyc",
             "event_types": ["record_imported", "death_registered"], "provinces": ["01"]},
            {"id": "births", "org": "bank-a", "subsystem": "ekyc",
             "event_types": ["birth_registered"]},
            {"id": "other-sub", "org": "bank-a", "subsystem": "small",
             "event_types": ["record_imported"]},
        ],
    }))
    .unwrap();
    if let Some(url) = webhook {
        c.subscriptions.push(
            serde_json::from_value(json!({
                "id": "push", "org": "bank-a", "subsystem": "ekyc",
                "event_types": ["record_imported"], "purpose": "account_opening",
                "webhook": {"url": url, "max_attempts": 3},
            }))
            .unwrap(),
        );
    }
    if nats {
        c.subscriptions.push(
            serde_json::from_value(json!({
                "id": "push-nats", "org": "bank-a", "subsystem": "ekyc",
                "event_types": ["record_imported"], "purpose": "account_opening",
                "nats": {"subject": "dancu.events.bank-a", "max_attempts": 50},
            }))
            .unwrap(),
        );
    }
    c.check().unwrap();
    c
}

fn officer(store: &dyn Store, id: &str, role: Role) -> String {
    let token = credentials::new_token();
    store
        .add_officer(&OfficerRecord {
            officer: Officer {
                id: id.into(),
                name: format!("Officer {id}"),
                role,
                jurisdiction: Jurisdiction::National,
                person: None,
            },
            token_hash: credentials::token_hash(&token),
            created_at: Utc::now(),
        })
        .unwrap();
    token
}

impl Drop for HubServer {
    fn drop(&mut self) {
        if let (Some(schema), Ok(admin)) = (
            self.pg_schema.take(),
            std::env::var("DANCU_TEST_DATABASE_URL"),
        ) {
            let _ = std::thread::spawn(move || {
                if let Ok(mut c) = postgres::Client::connect(&admin, postgres::NoTls) {
                    let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
                }
            })
            .join();
        }
    }
}

impl HubServer {
    async fn start() -> Self {
        Self::start_with(None).await
    }

    async fn start_with(webhook: Option<&str>) -> Self {
        Self::start_with_push(webhook, None).await
    }

    /// With a webhook subscription (`push`) and/or a NATS one (`push-nats`, published through
    /// the server at `nats`).
    async fn start_with_push(webhook: Option<&str>, nats: Option<&str>) -> Self {
        Self::start_inner(webhook, nats, false).await
    }

    /// A first node whose citizen's tracker is shared with [`Self::second_node`]s even over
    /// SQLite (over PostgreSQL it is anyway).
    async fn start_shared() -> Self {
        Self::start_inner(None, None, true).await
    }

    /// [`Self::start_shared`] with a webhook subscription (`push`).
    async fn start_shared_with(webhook: &str) -> Self {
        Self::start_inner(Some(webhook), None, true).await
    }

    async fn start_inner(webhook: Option<&str>, nats: Option<&str>, shared: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().to_owned();
        let db = data_dir.join("dancu.sqlite3");
        // With DANCU_TEST_API_BACKEND=postgres, the register and the document store (consents,
        // assertion ids) are on a fresh PostgreSQL schema; the log is files either way.
        let pg = off_runtime(api_backend_url);
        let (store, docs) = off_runtime(|| {
            let url = pg
                .as_ref()
                .map_or(db.to_str().unwrap(), |(u, _)| u.as_str());
            dancu_store::docs::open_with_docs(url).unwrap()
        });
        let clock = Arc::new(FixedClock::new(
            Utc.with_ymd_and_hms(2026, 3, 1, 3, 0, 0).unwrap(),
        ));
        // Over PostgreSQL, opening the hub reads the shared configuration: off the runtime.
        let hub = off_runtime(|| {
            let hub = Hub::open(
                hub_config(clock.now(), webhook, nats.is_some()),
                store.clone(),
                docs.clone(),
                clock.clone() as Arc<dyn Clock>,
                &data_dir.join("audit"),
                &data_dir.join("hub"),
                AuditSettings {
                    fsync_each_record: false,
                    ..AuditSettings::default()
                },
            )
            .unwrap();
            if shared {
                hub.with_other_nodes().unwrap()
            } else {
                hub
            }
        });
        let registry = Arc::new(Registry::new(
            store.clone(),
            clock.clone() as Arc<dyn Clock>,
            Some(42),
        ));
        let hub = Arc::new(hub);
        let nats = nats.map(|url| dancu::push::NatsSettings {
            url: url.to_owned(),
            stream: "DANCU_TEST".into(),
        });
        dancu::server::spawn_webhook_sender(
            hub.clone(),
            std::time::Duration::from_millis(20),
            nats,
        );
        let app = dancu_http::router(dancu_http::AppState::new(registry).with_hub(hub));
        let bound = dancu::server::Bound::bind("127.0.0.1:0".parse().unwrap(), app)
            .await
            .unwrap();
        let base = format!("http://{}", bound.local_addr());
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(bound.serve(async move {
            let _ = rx.await;
        }));
        let (supervisor, registrar) = off_runtime(|| {
            (
                officer(store.as_ref(), "sup", Role::Supervisor),
                officer(store.as_ref(), "reg", Role::Registrar),
            )
        });
        Self {
            base,
            http: reqwest::Client::new(),
            clock,
            store,
            supervisor,
            registrar,
            data_dir,
            next_jti: AtomicU32::new(0),
            pg_schema: pg.map(|(_, schema)| schema),
            docs,
            _dir: dir,
            _stop: stop,
        }
    }

    /// Starts a second node over the same register and document store, with its own log in
    /// `<data dir>/node-2`.
    async fn second_node(&self) -> Node {
        self.second_node_sending(false).await
    }

    /// [`Self::second_node`], running a webhook sender of its own when `sender`.
    async fn second_node_sending(&self, sender: bool) -> Node {
        let dir = self.data_dir.join("node-2");
        let hub = off_runtime(|| {
            Hub::open(
                hub_config(self.clock.now(), None, false),
                self.store.clone(),
                self.docs.clone(),
                self.clock.clone() as Arc<dyn Clock>,
                &dir.join("audit"),
                &dir.join("hub"),
                AuditSettings {
                    fsync_each_record: false,
                    ..AuditSettings::default()
                },
            )
            .unwrap()
            .with_other_nodes()
            .unwrap()
        });
        let registry = Arc::new(Registry::new(
            self.store.clone(),
            self.clock.clone() as Arc<dyn Clock>,
            Some(43),
        ));
        let hub = Arc::new(hub);
        if sender {
            dancu::server::spawn_webhook_sender(
                hub.clone(),
                std::time::Duration::from_millis(20),
                None,
            );
        }
        let app = dancu_http::router(dancu_http::AppState::new(registry).with_hub(hub));
        let bound = dancu::server::Bound::bind("127.0.0.1:0".parse().unwrap(), app)
            .await
            .unwrap();
        let base = format!("http://{}", bound.local_addr());
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(bound.serve(async move {
            let _ = rx.await;
        }));
        Node { base, _stop: stop }
    }

    /// A person in the register, with legacy CMND numbers.
    fn person(&self, serial: u32, name: &str, sex: Sex, year: i32, cmnd: &[&str]) -> String {
        self.person_in(serial, name, sex, year, cmnd, BA_DINH)
    }

    fn person_in(
        &self,
        serial: u32,
        name: &str,
        sex: Sex,
        year: i32,
        cmnd: &[&str],
        commune: &str,
    ) -> String {
        let id = PersonalId::compose("001", sex, year, serial).unwrap();
        let p = Person {
            id,
            version: 0,
            name: PersonName::parse(name).unwrap(),
            other_names: vec![],
            date_of_birth: PartialDate::Full(date(year, 5, 1)),
            sex,
            birth_registration: Address::new(Scheme::Legacy, "00001", "", date(year, 5, 10))
                .unwrap(),
            home_town: None,
            ethnicity: "Kinh".into(),
            religion: "Không".into(),
            nationality: "VN".into(),
            marital_status: MaritalStatus::Single,
            blood_type: None,
            father: None,
            mother: None,
            spouse: None,
            permanent_residence: Some(Residence {
                address: addr2025(commune, "Số 1 phố Đội Cấn", date(2025, 8, 1)),
                from: date(2025, 8, 1),
                until: None,
            }),
            temporary_residence: None,
            temporary_absence: None,
            last_stay: None,
            household: None,
            legacy_cmnd: cmnd
                .iter()
                .map(|c| LegacyCmnd {
                    number: CmndNumber::parse(c).unwrap(),
                    issued_on: None,
                })
                .collect(),
            cards: vec![],
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
        off_runtime(|| {
            self.store
                .import_batch(
                    &format!("fixture-{serial}"),
                    &[ImportRow { line: 1, person: p }],
                    &meta,
                )
                .unwrap()
        });
        id.to_string()
    }

    /// A fresh client assertion of `bank-a/sub` signed by key `n`.
    fn assertion(&self, sub: &str, n: u8, aud: &str) -> String {
        self.assertion_of("bank-a", sub, n, aud)
    }

    /// A fresh client assertion of `org/sub` signed by key `n`.
    fn assertion_of(&self, org: &str, sub: &str, n: u8, aud: &str) -> String {
        let now = self.clock.now().timestamp();
        let jti = format!("jti-{}", self.next_jti.fetch_add(1, Ordering::Relaxed));
        let iss = format!("{org}/{sub}");
        sign_es256(
            &key(n),
            "JWT",
            None,
            false,
            &json!({"iss": iss, "sub": iss, "aud": aud, "iat": now, "exp": now + 60, "jti": jti}),
        )
        .unwrap()
    }

    async fn call_with(&self, path: &str, assertion: Option<&str>, body: Value) -> (u16, Value) {
        self.call_at(&self.base, path, assertion, body).await
    }

    /// As [`Self::call_with`], to the server at `base`.
    async fn call_at(
        &self,
        base: &str,
        path: &str,
        assertion: Option<&str>,
        body: Value,
    ) -> (u16, Value) {
        let mut req = self.http.post(format!("{base}{path}")).json(&body);
        if let Some(a) = assertion {
            req = req.header("x-client-assertion", a);
        }
        decode(req.send().await.unwrap()).await
    }

    /// Asks the token endpoint for an access token of `bank-a/ekyc` (client credentials with a
    /// fresh client assertion), with this form besides the assertion.
    async fn token_request(&self, form: &str) -> (u16, Value) {
        let a = self.assertion("ekyc", 1, "urn:dancu:hub");
        let body = format!(
            "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={a}{form}"
        );
        let req = self
            .http
            .post(format!("{}/api/hub/v1/token", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        decode(req.send().await.unwrap()).await
    }

    async fn bearer_call(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body);
        decode(req.send().await.unwrap()).await
    }

    async fn call(&self, path: &str, body: Value) -> (u16, Value) {
        let a = self.assertion("ekyc", 1, "urn:dancu:hub");
        self.call_with(path, Some(&a), body).await
    }

    async fn officer_post(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body);
        decode(req.send().await.unwrap()).await
    }

    fn log(&self) -> Vec<dancu_exchange::log::record::AuditRecord> {
        read_entries(&self.data_dir.join("audit"))
            .unwrap()
            .into_iter()
            .map(|e| e.record)
            .collect()
    }
}

async fn decode(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = resp.text().await.unwrap();
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if status >= 400 {
        assert_eq!(ct, "application/problem+json", "{v}");
        assert!(
            v["message_vi"].as_str().is_some_and(|m| !m.is_empty()),
            "{v}"
        );
        assert!(
            v["message_en"].as_str().is_some_and(|m| !m.is_empty()),
            "{v}"
        );
    }
    (status, v)
}

fn meta() -> Value {
    json!({"purpose": "account_opening", "end_user": "gdv-01", "case_ref": "HS-2026-1"})
}

fn with(mut base: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}

#[tokio::test]
async fn hub_attribute_match_is_served_logged_metered_and_verifiable() {
    let s = HubServer::start().await;
    let id = s.person(1, "Nguyễn Văn An", Sex::Male, 1990, &[]);
    let (st, v) = s
        .call(
            "/api/hub/v1/verify/attributes",
            with(
                meta(),
                json!({"id": id, "claims": {"name": "NGUYEN VAN AN", "date_of_birth": "1990-05-01", "sex": "female"}}),
            ),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let f = v["fields"].as_array().unwrap();
    assert_eq!(
        f[0],
        json!({"field": "name", "verdict": "match", "method": "accent_insensitive"})
    );
    assert_eq!(f[1]["verdict"], "match");
    assert_eq!(f[2]["verdict"], "no_match");
    // No register value is returned.
    assert!(!v.to_string().contains("Nguyễn"));
    assert_eq!(v["audit_seq"], 0);

    // The OpenAPI document describes the hub's endpoints.
    let doc: Value = s
        .http
        .get(format!("{}/api/openapi.json", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for p in [
        "/api/hub/v1/token",
        "/api/hub/v1/admin/rights",
        "/api/hub/v1/admin/keys/revoke",
        "/api/hub/v1/verify/attributes",
        "/api/hub/v1/verify/cmnd",
        "/api/hub/v1/ekyc",
        "/api/hub/v1/events/feed",
        "/api/hub/v1/consents/grant",
        "/api/hub/v1/fees/statement",
    ] {
        assert!(doc["paths"][p].is_object(), "{p} missing from OpenAPI");
    }
    assert!(doc["paths"]["/api/hub/v1/fees/statement"]["get"].is_object());

    // An unknown person is answered honestly, and logged as failed.
    let other = PersonalId::compose("001", Sex::Female, 1991, 777)
        .unwrap()
        .to_string();
    let (st, v) = s
        .call(
            "/api/hub/v1/verify/attributes",
            with(meta(), json!({"id": other, "claims": {"name": "Ai Đó"}})),
        )
        .await;
    assert_eq!((st, v["code"].as_str().unwrap()), (404, "person_not_found"));

    // The log holds metadata only.
    let log = off_runtime(|| s.log());
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].result, ExchangeResult::Served);
    assert_eq!(log[0].person.as_deref(), Some(id.as_str()));
    assert_eq!(log[0].fields, ["name", "date_of_birth", "sex"]);
    assert_eq!(log[0].case_ref.as_deref(), Some("HS-2026-1"));
    assert_eq!(log[0].end_user.as_deref(), Some("gdv-01"));
    assert_eq!(
        log[1].result,
        ExchangeResult::Failed("person_not_found".into())
    );

    // Fees: the served call's three fields at VND 1,000.
    let resp = s
        .http
        .get(format!(
            "{}/api/hub/v1/fees/statement?year=2026&month=3",
            s.base
        ))
        .bearer_auth(&s.supervisor)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = resp.text().await.unwrap();
    assert!(
        csv.starts_with("member,period,service,unit_price_vnd,calls,fields,amount_vnd\n"),
        "{csv}"
    );
    assert!(
        csv.contains("bank-a,2026-03,verify_attributes,1000,1,3,3000"),
        "{csv}"
    );
    // Only a national supervisor reads statements.
    let resp = s
        .http
        .get(format!(
            "{}/api/hub/v1/fees/statement?year=2026&month=3",
            s.base
        ))
        .bearer_auth(&s.registrar)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);

    // `dancu audit verify` on the log the server wrote: intact, then an edited record is named.
    let audit = s.data_dir.join("audit");
    let verify = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_dancu"))
            .args(["audit", "verify", "--data-dir"])
            .arg(&s.data_dir)
            .env_remove("DANCU_DATABASE_URL")
            .output()
            .unwrap()
    };
    let out = verify();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seg = list_segments(&audit).unwrap()[0].1.clone();
    let mut bytes = std::fs::read(&seg).unwrap();
    let r = frame_ranges(&bytes)[1].clone();
    let pos = r.start + bytes[r].windows(3).position(|w| w == b"HS-").unwrap();
    bytes[pos] = b'X';
    std::fs::write(&seg, &bytes).unwrap();
    let out = verify();
    assert!(!out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["first_bad"]["expected_seq"], 1, "{report}");
    assert_eq!(report["first_bad"]["record_index"], 1);
}

#[tokio::test]
async fn hub_access_tokens_open_the_scoped_services_by_bearer_until_they_expire() {
    let s = HubServer::start().await;
    let id = s.person(11, "Nguyễn Văn An", Sex::Male, 1990, &[]);
    let attrs = with(meta(), json!({"id": id, "claims": {"sex": "male"}}));
    let path = "/api/hub/v1/verify/attributes";
    let code = |v: &Value| v["code"].as_str().unwrap().to_owned();

    let (st, t) = s
        .token_request("&grant_type=client_credentials&scope=verify_attributes+verify_cmnd")
        .await;
    assert_eq!(st, 200, "{t}");
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_in"], 600);
    assert_eq!(t["scope"], "verify_attributes verify_cmnd");
    let token = t["access_token"].as_str().unwrap().to_owned();

    // The token serves many calls; each is logged like an assertion-authenticated one.
    for _ in 0..3 {
        let (st, v) = s.bearer_call(path, &token, attrs.clone()).await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["fields"][0]["verdict"], "match");
    }
    let log = s.log();
    assert_eq!(log.len(), 3);
    assert!(
        log.iter()
            .all(|r| r.caller_org == "bank-a" && r.subsystem == "ekyc")
    );

    // Outside its scope.
    let (st, v) = s
        .bearer_call(
            "/api/hub/v1/ekyc",
            &token,
            with(meta(), json!({"id": id, "fields": ["sex"]})),
        )
        .await;
    assert_eq!((st, code(&v).as_str()), (403, "insufficient_scope"));
    assert_eq!(s.log().len(), 3, "a scope refusal is not an exchange");

    // Bad token requests change nothing and say why.
    let (st, v) = s.token_request("&grant_type=password").await;
    assert_eq!((st, code(&v).as_str()), (400, "unsupported_grant_type"));
    let (st, v) = s
        .token_request("&grant_type=client_credentials&scope=ekyc+no_such_service")
        .await;
    assert_eq!((st, code(&v).as_str()), (400, "invalid_scope"));
    let (st, v) = s
        .token_request("&grant_type=client_credentials&grant_type=client_credentials")
        .await;
    assert_eq!((st, code(&v).as_str()), (400, "invalid_request"));

    // Unknown or malformed bearer tokens.
    let (st, v) = s.bearer_call(path, "forged-token", attrs.clone()).await;
    assert_eq!((st, code(&v).as_str()), (401, "client_unauthenticated"));
    let req = s
        .http
        .post(format!("{}{path}", s.base))
        .header("authorization", "Basic abc")
        .json(&attrs);
    let (st, v) = decode(req.send().await.unwrap()).await;
    assert_eq!((st, code(&v).as_str()), (401, "client_unauthenticated"));

    // Expired after ten minutes.
    s.clock.advance(Duration::seconds(600));
    let (st, v) = s.bearer_call(path, &token, attrs.clone()).await;
    assert_eq!((st, code(&v).as_str()), (401, "client_unauthenticated"));
    assert_eq!(s.log().len(), 3);
}

#[tokio::test]
async fn hub_rights_admin_adds_and_revokes_members_keys_and_rights_effective_at_once() {
    let s = HubServer::start().await;
    let id = s.person(12, "Nguyễn Văn An", Sex::Male, 1990, &[]);
    let code = |v: &Value| v["code"].as_str().unwrap().to_owned();
    let server = &s;
    let admin = |path: &str, body: Value| {
        let path = format!("/api/hub/v1/admin/{path}");
        async move { server.officer_post(&server.supervisor, &path, body).await }
    };

    // Only national supervisors.
    let (st, v) = s
        .officer_post(
            &s.registrar,
            "/api/hub/v1/admin/members",
            json!({"id": "x", "name": "X", "class": "bank"}),
        )
        .await;
    assert_eq!((st, code(&v).as_str()), (403, "role_not_allowed"));
    let (st, _) = s
        .call_with(
            "/api/hub/v1/admin/members",
            None,
            json!({"id": "x", "name": "X", "class": "bank"}),
        )
        .await;
    assert_eq!(st, 401);
    let list = s
        .http
        .get(format!("{}/api/hub/v1/admin/rights", s.base))
        .bearer_auth(&s.supervisor)
        .send()
        .await
        .unwrap();
    let (st, v) = decode(list).await;
    assert_eq!(st, 200);
    assert_eq!(v["members"].as_array().unwrap().len(), 3);
    assert!(v["members"][2]["subsystems"][0]["keys"][0]["kid"].is_string());

    // Members: validation, creation, duplicates.
    let (st, v) = admin(
        "members",
        json!({"id": "Bank B!", "name": "B", "class": "bank"}),
    )
    .await;
    assert_eq!((st, code(&v).as_str()), (422, "invalid_identifier"));
    let (st, v) = admin(
        "members",
        json!({"id": "bank-b", "name": "Ngân hàng B", "class": "bank"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["members"].as_array().unwrap().len(), 4);
    let (st, v) = admin(
        "members",
        json!({"id": "bank-b", "name": "B", "class": "bank"}),
    )
    .await;
    assert_eq!((st, code(&v).as_str()), (409, "member_exists"));

    // Subsystems and keys.
    let (st, v) = admin("subsystems", json!({"org": "nobody", "id": "app"})).await;
    assert_eq!((st, code(&v).as_str()), (404, "member_not_found"));
    let (st, _) = admin("subsystems", json!({"org": "bank-b", "id": "app"})).await;
    assert_eq!(st, 200);
    let mut private = jwk(7);
    private["d"] = json!("AAAA");
    let (st, v) = admin(
        "keys",
        json!({"org": "bank-b", "subsystem": "app", "jwk": private}),
    )
    .await;
    assert_eq!((st, code(&v).as_str()), (422, "invalid_key"));
    let mut off_curve = jwk(7);
    off_curve["y"] = jwk(8)["y"].clone();
    let (st, v) = admin(
        "keys",
        json!({"org": "bank-b", "subsystem": "app", "jwk": off_curve}),
    )
    .await;
    assert_eq!((st, code(&v).as_str()), (422, "invalid_key"));
    let (st, v) = admin(
        "keys",
        json!({"org": "bank-b", "subsystem": "app", "jwk": jwk(7)}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let kid = v["members"][3]["subsystems"][0]["keys"][0]["kid"]
        .as_str()
        .unwrap()
        .to_owned();

    // Rights.
    let r = with(
        right(
            "r-b",
            "app",
            "verify_attributes",
            &["sex", "name"],
            json!({"quota": {"limit": 100, "period": "day"}}),
        ),
        json!({"org": "bank-b"}),
    );
    let (st, v) = admin("rights", with(r.clone(), json!({"fields": []}))).await;
    assert_eq!((st, code(&v).as_str()), (422, "invalid_fields"));
    let (st, v) = admin(
        "rights",
        with(r.clone(), json!({"quota": {"limit": 0, "period": "day"}})),
    )
    .await;
    assert_eq!((st, code(&v).as_str()), (422, "invalid_limits"));
    let (st, v) = admin("rights", with(r.clone(), json!({"subsystem": "ghost"}))).await;
    assert_eq!((st, code(&v).as_str()), (404, "subsystem_not_found"));
    let (st, v) = admin("rights", with(r.clone(), json!({"legal_basis": 5}))).await;
    assert_eq!((st, code(&v).as_str()), (422, "invalid_body"));
    let (st, _) = admin("rights", r.clone()).await;
    assert_eq!(st, 200);
    let (st, v) = admin("rights", r.clone()).await;
    assert_eq!((st, code(&v).as_str()), (409, "right_exists"));

    // The new subsystem obtains a token with its new key and is served.
    let token = {
        let a = s.assertion_of("bank-b", "app", 7, "urn:dancu:hub");
        let req = s
            .http
            .post(format!("{}/api/hub/v1/token", s.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={a}"));
        let (st, v) = decode(req.send().await.unwrap()).await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["scope"], "verify_attributes");
        v["access_token"].as_str().unwrap().to_owned()
    };
    let attrs = with(meta(), json!({"id": id, "claims": {"sex": "male"}}));
    let path = "/api/hub/v1/verify/attributes";
    let (st, v) = s.bearer_call(path, &token, attrs.clone()).await;
    assert_eq!(st, 200, "{v}");

    // A revoked right refuses the very next call.
    let (st, _) = admin("rights/revoke", json!({"id": "r-b"})).await;
    assert_eq!(st, 200);
    let (st, v) = s.bearer_call(path, &token, attrs.clone()).await;
    assert_eq!((st, code(&v).as_str()), (403, "no_right"));
    let (st, v) = admin("rights/revoke", json!({"id": "r-b"})).await;
    assert_eq!((st, code(&v).as_str()), (404, "right_not_found"));
    let (st, _) = admin("rights", r.clone()).await;
    assert_eq!(st, 200);
    let (st, _) = s.bearer_call(path, &token, attrs.clone()).await;
    assert_eq!(st, 200);

    // A revoked key stops its token and its assertions at once.
    let (st, v) = admin(
        "keys/revoke",
        json!({"org": "bank-b", "subsystem": "app", "kid": "nope"}),
    )
    .await;
    assert_eq!((st, code(&v).as_str()), (404, "key_not_found"));
    let (st, _) = admin(
        "keys/revoke",
        json!({"org": "bank-b", "subsystem": "app", "kid": kid}),
    )
    .await;
    assert_eq!(st, 200);
    let (st, v) = s.bearer_call(path, &token, attrs.clone()).await;
    assert_eq!((st, code(&v).as_str()), (401, "client_unauthenticated"));
    let a = s.assertion_of("bank-b", "app", 7, "urn:dancu:hub");
    let (st, v) = s.call_with(path, Some(&a), attrs.clone()).await;
    assert_eq!((st, code(&v).as_str()), (401, "client_unauthenticated"));

    // Revoking a subsystem takes its rights; revoking a member takes its subsystems.
    let (st, v) = admin("subsystems/revoke", json!({"org": "bank-b", "id": "app"})).await;
    assert_eq!(st, 200);
    assert!(
        v["rights"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["id"] != "r-b")
    );
    let (st, v) = admin("subsystems/revoke", json!({"org": "bank-b", "id": "app"})).await;
    assert_eq!((st, code(&v).as_str()), (404, "subsystem_not_found"));
    let (st, v) = admin("members/revoke", json!({"org": "bank-b"})).await;
    assert_eq!(st, 200);
    assert_eq!(v["members"].as_array().unwrap().len(), 3);
    let (st, v) = admin("members/revoke", json!({"org": "bank-b"})).await;
    assert_eq!((st, code(&v).as_str()), (404, "member_not_found"));

    // Existing members are untouched and served.
    let (st, _) = s.call(path, attrs).await;
    assert_eq!(st, 200);
}

#[tokio::test]
async fn hub_refusals_are_problems_with_stable_codes_and_are_logged() {
    let s = HubServer::start().await;
    let id = s.person(2, "Trần Thị Bình", Sex::Female, 1985, &[]);
    let attrs = |extra: Value| {
        with(
            with(
                meta(),
                json!({"id": id, "claims": {"name": "Trần Thị Bình"}}),
            ),
            extra,
        )
    };
    let path = "/api/hub/v1/verify/attributes";
    let code = |v: &Value| v["code"].as_str().unwrap().to_owned();

    // Authentication.
    let (st, v) = s.call_with(path, None, attrs(json!({}))).await;
    assert_eq!((st, code(&v).as_str()), (401, "client_unauthenticated"));
    let a = s.assertion("ekyc", 9, "urn:dancu:hub");
    let (st, v) = s.call_with(path, Some(&a), attrs(json!({}))).await;
    assert_eq!(
        (st, code(&v).as_str()),
        (401, "client_unauthenticated"),
        "wrong key"
    );
    let a = s.assertion("ekyc", 1, "https://elsewhere");
    let (st, v) = s.call_with(path, Some(&a), attrs(json!({}))).await;
    assert_eq!(
        (st, code(&v).as_str()),
        (401, "client_unauthenticated"),
        "audience"
    );
    let a = s.assertion("ekyc", 1, "urn:dancu:hub");
    let (st, _) = s.call_with(path, Some(&a), attrs(json!({}))).await;
    assert_eq!(st, 200);
    let (st, v) = s.call_with(path, Some(&a), attrs(json!({}))).await;
    assert_eq!((st, code(&v).as_str()), (401, "client_assertion_replayed"));

    // Rights.
    let (st, v) = s.call(path, attrs(json!({"purpose": "marketing"}))).await;
    assert_eq!((st, code(&v).as_str()), (403, "wrong_purpose"));
    let (st, v) = s.call(path, attrs(json!({"case_ref": null}))).await;
    assert_eq!((st, code(&v).as_str()), (403, "missing_case_reference"));
    let (st, v) = s.call(path, attrs(json!({"end_user": " "}))).await;
    assert_eq!((st, code(&v).as_str()), (403, "missing_end_user"));
    let a = s.assertion("old", 2, "urn:dancu:hub");
    let (st, v) = s.call_with(path, Some(&a), attrs(json!({}))).await;
    assert_eq!((st, code(&v).as_str()), (403, "client_key_expired"));
    let a = s.assertion("small", 3, "urn:dancu:hub");
    let (st, v) = s
        .call_with(
            "/api/hub/v1/ekyc",
            Some(&a),
            with(meta(), json!({"id": id, "fields": ["sex"]})),
        )
        .await;
    assert_eq!((st, code(&v).as_str()), (403, "no_right"));
    let (st, v) = s
        .call(
            "/api/hub/v1/ekyc",
            with(meta(), json!({"id": id, "fields": ["religion"]})),
        )
        .await;
    assert_eq!((st, code(&v).as_str()), (403, "field_not_allowed"));
    for i in 0..3 {
        let a = s.assertion("small", 3, "urn:dancu:hub");
        let (st, v) = s.call_with(path, Some(&a), attrs(json!({}))).await;
        if i < 2 {
            assert_eq!(st, 200, "{v}");
        } else {
            assert_eq!((st, code(&v).as_str()), (429, "quota_exceeded"));
        }
    }
    // The next day the quota is back.
    s.clock.advance(Duration::days(1));
    let a = s.assertion("small", 3, "urn:dancu:hub");
    assert_eq!(s.call_with(path, Some(&a), attrs(json!({}))).await.0, 200);

    // Bad input: nothing logged.
    let (st, v) = s.call(path, json!({"purpose": "account_opening"})).await;
    assert_eq!((st, code(&v).as_str()), (422, "invalid_body"));
    let (st, v) = s.call(path, attrs(json!({"id": "12345"}))).await;
    assert_eq!((st, code(&v).as_str()), (422, "invalid_personal_id"));

    let log = off_runtime(|| s.log());
    let results: Vec<String> = log
        .iter()
        .map(|r| match &r.result {
            ExchangeResult::Served => "served".to_owned(),
            ExchangeResult::Refused(c) | ExchangeResult::Failed(c) => c.clone(),
        })
        .collect();
    assert_eq!(
        results,
        [
            "served",
            "wrong_purpose",
            "missing_case_reference",
            "missing_end_user",
            "client_key_expired",
            "no_right",
            "field_not_allowed",
            "served",
            "served",
            "quota_exceeded",
            "served",
        ]
    );
}

#[tokio::test]
async fn hub_nodes_over_one_database_share_rights_quotas_replay_refusals_and_the_tracker() {
    let s = HubServer::start_shared().await;
    let n2 = s.second_node().await;
    let id = s.person(2, "Trần Thị Bình", Sex::Female, 1985, &[]);
    let path = "/api/hub/v1/verify/attributes";
    let body = with(
        meta(),
        json!({"id": id, "claims": {"name": "Trần Thị Bình"}}),
    );
    let at = |node: usize| {
        if node == 1 {
            s.base.clone()
        } else {
            n2.base.clone()
        }
    };
    // `bank-a/small` may make 2 calls a day, whichever node answers them.
    // A second between calls, so that the tracker's order across nodes is the calls' order.
    for (node, want) in [(1, 200), (2, 200), (1, 429), (2, 429)] {
        s.clock.advance(Duration::seconds(1));
        let a = s.assertion("small", 3, "urn:dancu:hub");
        let (st, v) = s.call_at(&at(node), path, Some(&a), body.clone()).await;
        assert_eq!(st, want, "node {node}: {v}");
        if st == 429 {
            assert_eq!(v["code"], "quota_exceeded");
        }
    }
    // An assertion used at one node is refused at the other.
    s.clock.advance(Duration::seconds(1));
    let a = s.assertion("ekyc", 1, "urn:dancu:hub");
    assert_eq!(s.call_at(&at(2), path, Some(&a), body.clone()).await.0, 200);
    let (st, v) = s.call_at(&at(1), path, Some(&a), body.clone()).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (401, Some("client_assertion_replayed"))
    );
    // Each node logged what it answered.
    let node2 = off_runtime(|| read_entries(&s.data_dir.join("node-2/audit")).unwrap());
    assert_eq!(node2.len(), 3);
    assert_eq!(off_runtime(|| s.log()).len(), 2);

    // A covert access through node 2.
    s.clock.advance(Duration::seconds(1));
    let police = s.assertion_of("police", "investigation", 4, "urn:dancu:hub");
    assert_eq!(s.call_at(&at(2), path, Some(&police), body).await.0, 200);
    // The citizen's tracker at either node shows what both answered, each once, oldest
    // first, the covert access hidden; the copies arrive within a few pauses.
    let tracker = async |node: usize| {
        let resp = s
            .http
            .post(format!("{}/api/hub/v1/tracker", at(node)))
            .bearer_auth(&s.registrar)
            .json(&json!({"person": id}))
            .send()
            .await
            .unwrap();
        let (st, v) = decode(resp).await;
        assert_eq!(st, 200, "{v}");
        v.as_array().unwrap().clone()
    };
    let settled = async |node: usize, want: usize| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let lines = tracker(node).await;
            if lines.len() >= want || std::time::Instant::now() > deadline {
                return lines;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    for node in [1, 2] {
        let lines = settled(node, 5).await;
        let served: Vec<bool> = lines.iter().map(|l| l["served"] == true).collect();
        assert_eq!(
            served,
            [true, true, false, false, true],
            "node {node}: {lines:?}"
        );
        assert!(lines.iter().all(|l| l["org"] == "bank-a"), "{lines:?}");
    }
    s.clock.advance(Duration::days(31));
    for node in [1, 2] {
        let lines = tracker(node).await;
        assert_eq!(lines.len(), 6, "node {node}: {lines:?}");
        assert_eq!(lines[5]["org"], "police");
    }

    // A right revoked at node 2 refuses the next call there at once, and at node 1 within
    // the second it takes to follow the change.
    let resp = s
        .http
        .post(format!("{}/api/hub/v1/admin/rights/revoke", at(2)))
        .bearer_auth(&s.supervisor)
        .json(&json!({"id": "r-attr"}))
        .send()
        .await
        .unwrap();
    assert_eq!(decode(resp).await.0, 200);
    let body = with(
        meta(),
        json!({"id": id, "claims": {"name": "Trần Thị Bình"}}),
    );
    let refused = async |node: usize| {
        let a = s.assertion("ekyc", 1, "urn:dancu:hub");
        let (st, v) = s.call_at(&at(node), path, Some(&a), body.clone()).await;
        (st, v["code"].as_str().unwrap_or_default().to_owned())
    };
    assert_eq!(refused(2).await, (403, "no_right".to_owned()));
    let started = std::time::Instant::now();
    loop {
        let got = refused(1).await;
        if got.0 == 403 {
            assert_eq!(got.1, "no_right");
            break;
        }
        assert_eq!(got.0, 200);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "node 1 still serves a right revoked at node 2"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn hub_ekyc_needs_a_live_consent_and_is_signed_by_the_hub() {
    let s = HubServer::start().await;
    let id = s.person(3, "Lê Văn Cường", Sex::Male, 1979, &[]);
    let ekyc = |consent: Option<&str>| {
        with(
            meta(),
            json!({"id": id, "fields": ["full_name", "date_of_birth"], "consent_id": consent}),
        )
    };
    let (st, v) = s.call("/api/hub/v1/ekyc", ekyc(None)).await;
    assert_eq!((st, v["code"].as_str().unwrap()), (403, "consent_missing"));

    let grant = |kind: &str| {
        json!({
            "person": id, "recipient_org": "bank-a", "fields": ["full_name", "date_of_birth"],
            "purpose": "account_opening", "kind": kind,
            "expires_at": s.clock.now() + Duration::days(30),
        })
    };
    let (st, periodic) = s
        .officer_post(
            &s.registrar,
            "/api/hub/v1/consents/grant",
            grant("periodic"),
        )
        .await;
    assert_eq!(st, 201, "{periodic}");
    let cid = periodic["id"].as_str().unwrap().to_owned();

    let (st, v) = s.call("/api/hub/v1/ekyc", ekyc(Some(&cid))).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["full_name"], "Lê Văn Cường");
    assert_eq!(v["data"]["date_of_birth"], "1979-05-01");
    // The receiver can prove what it got: the JWS verifies with the hub's published key.
    let jwks: Value = s
        .http
        .get(format!("{}/api/hub/v1/jwks", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hub_key: Jwk = serde_json::from_value(jwks["keys"][0].clone()).unwrap();
    let jws = v["jws"].as_str().unwrap();
    let claims: Value = decode_unverified(jws)
        .unwrap()
        .verify(&hub_key, &[Alg::ES256])
        .unwrap();
    assert_eq!(claims["data"], v["data"]);
    assert_eq!(claims["sub"], id.as_str());
    assert_eq!(claims["aud"], "bank-a/ekyc");
    assert_eq!(claims["audit_seq"], v["audit_seq"]);
    let mut tampered = jws.to_owned();
    tampered.replace_range(jws.len() - 4.., "AAAA");
    assert!(
        decode_unverified(&tampered)
            .unwrap()
            .verify::<Value>(&hub_key, &[Alg::ES256])
            .is_err()
    );

    // The person lists, then revokes: access stops at once.
    let (st, list) = s
        .officer_post(
            &s.registrar,
            "/api/hub/v1/consents/list",
            json!({"person": id}),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (st, _) = s
        .officer_post(
            &s.registrar,
            "/api/hub/v1/consents/revoke",
            json!({"person": id, "consent_id": cid}),
        )
        .await;
    assert_eq!(st, 200);
    let (st, v) = s.call("/api/hub/v1/ekyc", ekyc(Some(&cid))).await;
    assert_eq!((st, v["code"].as_str().unwrap()), (403, "consent_revoked"));

    // A one-time consent serves once.
    let (_, once) = s
        .officer_post(
            &s.registrar,
            "/api/hub/v1/consents/grant",
            grant("one_time"),
        )
        .await;
    let once = once["id"].as_str().unwrap().to_owned();
    assert_eq!(s.call("/api/hub/v1/ekyc", ekyc(Some(&once))).await.0, 200);
    let (st, v) = s.call("/api/hub/v1/ekyc", ekyc(Some(&once))).await;
    assert_eq!((st, v["code"].as_str().unwrap()), (403, "consent_missing"));
    // A consent past its expiry.
    let (_, later) = s
        .officer_post(
            &s.registrar,
            "/api/hub/v1/consents/grant",
            grant("periodic"),
        )
        .await;
    s.clock.advance(Duration::days(31));
    let (st, v) = s
        .call(
            "/api/hub/v1/ekyc",
            ekyc(Some(later["id"].as_str().unwrap())),
        )
        .await;
    assert_eq!((st, v["code"].as_str().unwrap()), (403, "consent_expired"));
    // Unknown consent id.
    let (st, v) = s
        .officer_post(
            &s.registrar,
            "/api/hub/v1/consents/revoke",
            json!({"person": id, "consent_id": "cs_nope"}),
        )
        .await;
    assert_eq!(
        (st, v["code"].as_str().unwrap()),
        (404, "consent_not_found")
    );

    // Refusals are logged too, but only the two served calls count for fees.
    let log = off_runtime(|| s.log());
    let served = log
        .iter()
        .filter(|r| r.result == ExchangeResult::Served)
        .count();
    assert_eq!(served, 2);
}

#[tokio::test]
async fn hub_cmnd_resolution_is_honest_about_ambiguity() {
    let s = HubServer::start().await;
    let a = s.person(4, "Phạm Văn Dũng", Sex::Male, 1970, &["012345678"]);
    let _b = s.person(5, "Phạm Văn Dũng", Sex::Male, 1972, &["012345678"]);
    let _c = s.person(6, "Hoàng Thị Em", Sex::Female, 1970, &["012345678"]);
    let cmnd = |name: &str, dob: Option<&str>| {
        with(
            meta(),
            json!({"cmnd": "012345678", "name": name, "date_of_birth": dob}),
        )
    };
    let path = "/api/hub/v1/verify/cmnd";
    let (st, v) = s.call(path, cmnd("Phạm Văn Dũng", Some("1970"))).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["resolution"]["outcome"], "unique");
    assert_eq!(v["resolution"]["id"], a.as_str());
    let (_, v) = s.call(path, cmnd("PHAM VAN DUNG", None)).await;
    assert_eq!(v["resolution"]["outcome"], "ambiguous");
    assert_eq!(v["resolution"]["candidates"].as_array().unwrap().len(), 2);
    let (_, v) = s.call(path, cmnd("Ngô Văn Phúc", None)).await;
    assert_eq!(v["resolution"]["outcome"], "not_found");
    let (st, v) = s.call(path, cmnd("", None)).await;
    assert_eq!((st, v["code"].as_str().unwrap()), (422, "name_required"));
    let (st, v) = s
        .call(
            path,
            with(cmnd("Phạm Văn Dũng", None), json!({"cmnd": "12a"})),
        )
        .await;
    assert_eq!((st, v["code"].as_str().unwrap()), (422, "invalid_cmnd"));
    let log = off_runtime(|| s.log());
    assert_eq!(log.len(), 3);
    assert_eq!(log[0].person.as_deref(), Some(a.as_str()));
    assert_eq!(log[1].person, None);
}

#[tokio::test]
async fn hub_change_event_feed_filters_by_place_and_person_with_a_cursor() {
    let s = HubServer::start().await;
    let a = s.person_in(10, "Vũ Văn Giang", Sex::Male, 1960, &[], BA_DINH);
    let _b = s.person_in(11, "Đỗ Thị Hà", Sex::Female, 1961, &[], "00008");
    let c = s.person_in(12, "Bùi Văn Khánh", Sex::Male, 1960, &[], "00008");
    let d = s.person_in(13, "Đặng Thị Lan", Sex::Female, 1962, &[], BA_DINH);
    let feed = |sub: &str, after: i64, limit: u32| json!({"purpose": "account_opening", "subscription": sub, "after": after, "limit": limit});
    let path = "/api/hub/v1/events/feed";
    let people = |v: &Value| -> Vec<String> {
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["person"].as_str().unwrap().to_owned())
            .collect()
    };

    // By commune, one page at a time.
    let (st, p1) = s.call(path, feed("ba-dinh", 0, 1)).await;
    assert_eq!(st, 200, "{p1}");
    assert_eq!(people(&p1), [a.as_str()]);
    let e = &p1["events"][0];
    assert_eq!(e["type"], "record_imported");
    assert_eq!(e["event_id"], format!("{a}/1"));
    // Metadata only: no name, no address.
    assert!(!p1.to_string().contains("Giang"));
    let after = p1["next_after"].as_i64().unwrap();
    let (_, p2) = s.call(path, feed("ba-dinh", after, 10)).await;
    assert_eq!(people(&p2), [d.as_str()]);
    let end = p2["next_after"].as_i64().unwrap();
    let (_, p3) = s.call(path, feed("ba-dinh", end, 10)).await;
    assert_eq!(people(&p3), Vec::<String>::new());
    assert_eq!(p3["next_after"].as_i64().unwrap(), end);

    // By ID list, and by province (Hà Nội: 01 in the 2025 scheme).
    let (_, v) = s.call(path, feed("one-person", 0, 10)).await;
    assert_eq!(people(&v), [c]);
    let (_, v) = s.call(path, feed("hanoi-all", 0, 10)).await;
    assert_eq!(people(&v).len(), 4);

    // Only the subscriber's own subscriptions, and only within its rights.
    let (st, v) = s.call(path, feed("nope", 0, 10)).await;
    assert_eq!(
        (st, v["code"].as_str().unwrap()),
        (422, "unknown_subscription")
    );
    let a3 = s.assertion("small", 3, "urn:dancu:hub");
    let (st, v) = s.call_with(path, Some(&a3), feed("other-sub", 0, 10)).await;
    assert_eq!((st, v["code"].as_str().unwrap()), (403, "no_right"));
    let (st, v) = s.call(path, feed("births", 0, 10)).await;
    assert_eq!(
        (st, v["code"].as_str().unwrap()),
        (403, "field_not_allowed"),
        "birth_registered is outside the right"
    );
}

/// A webhook receiver that can be down, or fail a number of requests, and keeps what it
/// accepted.
#[derive(Default)]
struct Receiver {
    down: std::sync::atomic::AtomicBool,
    fail_next: AtomicU32,
    attempts: AtomicU32,
    accepted: std::sync::Mutex<Vec<(String, String)>>,
}

async fn receiver(r: Arc<Receiver>) -> String {
    use axum::http::{HeaderMap, StatusCode};
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let r = r.clone();
            async move {
                r.attempts.fetch_add(1, Ordering::SeqCst);
                let failing = r
                    .fail_next
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                if failing || r.down.load(Ordering::SeqCst) {
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                let id = headers["idempotency-key"].to_str().unwrap().to_owned();
                r.accepted.lock().unwrap().push((id, body));
                StatusCode::OK
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    url
}

impl HubServer {
    async fn hub_key(&self) -> Jwk {
        self.hub_keys().await.remove(0)
    }

    /// Every key of the hub's JWKS, this node's first.
    async fn hub_keys(&self) -> Vec<Jwk> {
        let jwks: Value = self
            .http
            .get(format!("{}/api/hub/v1/jwks", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        serde_json::from_value(jwks["keys"].clone()).unwrap()
    }

    /// Lets time pass (for the backoff) until `done`, or fails after a few seconds.
    async fn wait_until(&self, what: &str, done: impl AsyncFnMut() -> bool) {
        self.wait_within(what, std::time::Duration::ZERO, done)
            .await;
    }

    /// [`Self::wait_until`], going on until at least `limit` of real time has passed too.
    async fn wait_within(
        &self,
        what: &str,
        limit: std::time::Duration,
        mut done: impl AsyncFnMut() -> bool,
    ) {
        let start = std::time::Instant::now();
        let mut turns = 0;
        while turns < 400 || start.elapsed() < limit {
            turns += 1;
            if done().await {
                return;
            }
            self.clock.advance(Duration::minutes(10));
            tokio::time::sleep(std::time::Duration::from_millis(15)).await;
        }
        panic!("timed out waiting for {what}");
    }
}

/// The events of the accepted deliveries, checking each body's signature with the key of
/// the JWKS it names.
fn accepted_events(r: &Receiver, keys: &[Jwk]) -> Vec<Value> {
    let mut out = Vec::new();
    for (id, body) in r.accepted.lock().unwrap().iter() {
        let jws = decode_unverified(body).unwrap();
        let key = keys
            .iter()
            .find(|k| k.kid == jws.header.kid)
            .expect("a key of the hub's JWKS");
        let claims: Value = jws.verify(key, &[Alg::ES256]).unwrap();
        assert_eq!(claims["delivery_id"], id.as_str());
        assert_eq!(claims["sub"], "push");
        out.extend(claims["events"].as_array().unwrap().iter().cloned());
    }
    out
}

#[tokio::test]
async fn hub_webhooks_reach_a_subscriber_that_fails_and_recovers_in_order() {
    let r = Arc::new(Receiver::default());
    // Two failures: below the limit of three attempts, so nothing is dead-lettered.
    r.fail_next.store(2, Ordering::SeqCst);
    let url = receiver(r.clone()).await;
    let s = HubServer::start_with(Some(&url)).await;
    let mut ids = Vec::new();
    for i in 0..5u32 {
        ids.push(s.person_in(20 + i, "Ngô Văn Minh", Sex::Male, 1980, &[], BA_DINH));
    }
    let key = [s.hub_key().await];
    s.wait_until("five events", async || accepted_events(&r, &key).len() >= 5)
        .await;
    let events = accepted_events(&r, &key);
    // Nothing lost, nothing duplicated, in register order (so in order per person).
    let people: Vec<&str> = events
        .iter()
        .map(|e| e["person"].as_str().unwrap())
        .collect();
    assert_eq!(people, ids.iter().map(String::as_str).collect::<Vec<_>>());
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert!(r.attempts.load(Ordering::SeqCst) >= 3);
    let a = s.assertion("ekyc", 1, "urn:dancu:hub");
    let (st, v) = s
        .call_with(
            "/api/hub/v1/events/webhook/status",
            Some(&a),
            json!({"subscription": "push"}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["cursor"], seqs[4]);
    assert_eq!(v["dead_letters"], json!([]));
}

#[tokio::test]
async fn hub_webhooks_go_out_once_when_two_nodes_send_the_same_subscription() {
    let r = Arc::new(Receiver::default());
    let url = receiver(r.clone()).await;
    let s = HubServer::start_shared_with(&url).await;
    // Node 2 takes the subscriptions from the database and runs a sender as well.
    let _n2 = s.second_node_sending(true).await;
    let mut ids = Vec::new();
    for i in 0..12u32 {
        ids.push(s.person_in(40 + i, "Lý Văn Nam", Sex::Male, 1975, &[], BA_DINH));
        tokio::time::sleep(std::time::Duration::from_millis(15)).await;
    }
    // Node 1's JWKS lists node 2's key too (its follower reads it within a second), so a
    // receiver verifies whichever node sent.
    let started = std::time::Instant::now();
    let keys = loop {
        let keys = s.hub_keys().await;
        if keys.len() == 2 {
            break keys;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{keys:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    // In real time (the lease is 30 s of the hub's clock, which stands still here).
    while accepted_events(&r, &keys).len() < 12 {
        assert!(started.elapsed() < std::time::Duration::from_secs(15));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Both senders poll every 20 ms for a while longer: still each delivery once.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let key = keys;
    let events = accepted_events(&r, &key);
    let people: Vec<&str> = events
        .iter()
        .map(|e| e["person"].as_str().unwrap())
        .collect();
    assert_eq!(people, ids.iter().map(String::as_str).collect::<Vec<_>>());
    let deliveries: Vec<String> = r
        .accepted
        .lock()
        .unwrap()
        .iter()
        .map(|d| d.0.clone())
        .collect();
    let mut unique = deliveries.clone();
    unique.dedup();
    assert_eq!(unique, deliveries, "a delivery went out twice");
}

#[tokio::test]
async fn hub_webhooks_dead_letter_after_the_limit_and_replay_from_a_sequence() {
    let r = Arc::new(Receiver::default());
    r.down.store(true, Ordering::SeqCst);
    let url = receiver(r.clone()).await;
    let s = HubServer::start_with(Some(&url)).await;
    let a = s.person_in(30, "Lý Thị Ngọc", Sex::Female, 1990, &[], BA_DINH);
    let b = s.person_in(31, "Lý Văn Phong", Sex::Male, 1991, &[], BA_DINH);
    let status = async || {
        let assertion = s.assertion("ekyc", 1, "urn:dancu:hub");
        s.call_with(
            "/api/hub/v1/events/webhook/status",
            Some(&assertion),
            json!({"subscription": "push"}),
        )
        .await
        .1
    };
    s.wait_until("two dead letters", async || {
        status().await["dead_letters"].as_array().unwrap().len() == 2
    })
    .await;
    let dead = status().await["dead_letters"].clone();
    assert_eq!(dead[0]["person"], a.as_str());
    assert_eq!(dead[1]["person"], b.as_str());
    assert!(r.accepted.lock().unwrap().is_empty());

    // The subscriber is back and replays from the start.
    r.down.store(false, Ordering::SeqCst);
    let assertion = s.assertion("ekyc", 1, "urn:dancu:hub");
    let (st, v) = s
        .call_with(
            "/api/hub/v1/events/webhook/replay",
            Some(&assertion),
            json!({"subscription": "push", "after": 0}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let c = s.person_in(32, "Lý Thị Quyên", Sex::Female, 1992, &[], BA_DINH);
    let key = [s.hub_key().await];
    s.wait_until("replayed events", async || {
        accepted_events(&r, &key).len() >= 3
    })
    .await;
    let people: Vec<String> = accepted_events(&r, &key)
        .iter()
        .map(|e| e["person"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(people, [a, b, c]);
    // Only the owner may replay.
    let other = s.assertion("small", 3, "urn:dancu:hub");
    let (st, v) = s
        .call_with(
            "/api/hub/v1/events/webhook/replay",
            Some(&other),
            json!({"subscription": "push", "after": 0}),
        )
        .await;
    assert_eq!(
        (st, v["code"].as_str().unwrap()),
        (422, "unknown_subscription")
    );
}

#[tokio::test]
async fn hub_refuses_exchanges_cleanly_when_the_log_cannot_be_written() {
    let s = HubServer::start().await;
    let id = s.person(40, "Mai Văn Sơn", Sex::Male, 1975, &[]);
    let body = with(meta(), json!({"id": id, "claims": {"name": "Mai Văn Sơn"}}));
    let path = "/api/hub/v1/verify/attributes";
    // The first segment cannot be created (its name is taken), as when the disk fails.
    let audit = s.data_dir.join("audit");
    let blocker = audit.join(dancu_hub::audit::segment_file_name(0));
    std::fs::create_dir(&blocker).unwrap();
    let (st, v) = s.call(path, body.clone()).await;
    assert_eq!(
        (st, v["code"].as_str().unwrap()),
        (503, "audit_log_unavailable")
    );
    assert!(
        v.get("fields").is_none(),
        "no answer without a log record: {v}"
    );
    let (st, _) = s.call(path, body.clone()).await;
    assert_eq!(st, 503);
    // Once the cause is gone the hub recovers by itself, and the log verifies.
    std::fs::remove_dir(&blocker).unwrap();
    let (st, v) = s.call(path, body).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["audit_seq"], 0);
    let v = dancu_hub::audit::verify_dir(&audit, None).unwrap();
    assert!(v.is_intact(), "{}", v.summary());
    assert_eq!(v.report.records, 1);
}

#[tokio::test]
async fn hub_tracker_shows_the_person_who_accessed_their_data_and_hides_covert_accesses_until_the_embargo_ends()
 {
    let s = HubServer::start().await;
    let id = s.person(50, "Tạ Thị Uyên", Sex::Female, 1988, &[]);
    let body = with(meta(), json!({"id": id, "claims": {"name": "Tạ Thị Uyên"}}));
    let path = "/api/hub/v1/verify/attributes";
    assert_eq!(s.call(path, body.clone()).await.0, 200);
    let police = s.assertion_of("police", "investigation", 4, "urn:dancu:hub");
    assert_eq!(s.call_with(path, Some(&police), body).await.0, 200);
    let tracker = async || {
        let (st, v) = s
            .officer_post(&s.registrar, "/api/hub/v1/tracker", json!({"person": id}))
            .await;
        assert_eq!(st, 200, "{v}");
        v.as_array().unwrap().clone()
    };
    let lines = tracker().await;
    assert_eq!(lines.len(), 1, "the covert access is hidden: {lines:?}");
    assert_eq!(lines[0]["org"], "bank-a");
    assert_eq!(lines[0]["purpose"], "account_opening");
    assert_eq!(lines[0]["fields"], json!(["name"]));
    assert!(
        lines[0].get("end_user").is_none(),
        "the officer stays out of the view"
    );
    s.clock.advance(Duration::days(31));
    let lines = tracker().await;
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["org"], "police");
    // The newest lines only, when asked.
    let (st, v) = s
        .officer_post(
            &s.registrar,
            "/api/hub/v1/tracker",
            json!({"person": id, "limit": 1}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["org"], "police");
    let (st, v) = s
        .officer_post(
            &s.registrar,
            "/api/hub/v1/tracker",
            json!({"person": id, "limit": 0}),
        )
        .await;
    assert_eq!((st, v["code"].as_str()), (422, Some("invalid_limit")));
}

/// Runs the `dancu` binary on `data` listening on `port`.
fn spawn_server(data: &std::path::Path, port: u16) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_dancu"))
        .env("DANCU_DATA_DIR", data)
        .env("DANCU_LISTEN", format!("127.0.0.1:{port}"))
        .env_remove("DANCU_DATABASE_URL")
        .env_remove("DANCU_HUB_CONFIG")
        .env("DANCU_LOG", "warn")
        .arg("serve")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

async fn wait_ready(http: &reqwest::Client, base: &str) {
    for _ in 0..200 {
        if http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the server did not start");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_sigkill_between_a_register_write_and_its_webhook_loses_no_event() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let r = Arc::new(Receiver::default());
    r.down.store(true, Ordering::SeqCst);
    let url = receiver(r.clone()).await;
    let token = String::from_utf8(
        std::process::Command::new(env!("CARGO_BIN_EXE_dancu"))
            .env("DANCU_DATA_DIR", &data)
            .env_remove("DANCU_DATABASE_URL")
            .args([
                "officer",
                "add",
                "--id",
                "reg",
                "--name",
                "Reg",
                "--role",
                "registrar",
            ])
            .args(["--jurisdiction", "national"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_owned();
    let config = json!({
        "members": [{"id": "bank-a", "name": "A", "class": "bank",
                     "subsystems": [{"id": "ekyc", "keys": [{"jwk": jwk(1)}]}]}],
        "rights": [right("r-births", "ekyc", "change_events", &["birth_registered"],
            json!({"requires_end_user": false, "requires_case_reference": false}))],
        "subscriptions": [{"id": "push", "org": "bank-a", "subsystem": "ekyc",
            "event_types": ["birth_registered"], "purpose": "account_opening",
            "webhook": {"url": url}}],
    });
    std::fs::write(data.join("hub.json"), config.to_string()).unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();

    let mut server = spawn_server(&data, port);
    wait_ready(&http, &base).await;
    let mut born = Vec::new();
    for i in 0..5 {
        let body = crate::common::birth(
            &format!("Hà Văn {}", ["An", "Bình", "Cường", "Dũng", "Giang"][i]),
            "male",
            "2026-02-01",
        );
        let resp = http
            .post(format!("{base}/api/v1/births"))
            .bearer_auth(&token)
            .header("x-purpose", "khai sinh")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 201);
        let v: Value = resp.json().await.unwrap();
        born.push(v["id"].as_str().unwrap().to_owned());
    }
    // Killed with the births committed and none delivered (the receiver is down).
    server.kill().unwrap();
    let _ = tokio::task::spawn_blocking(move || server.wait()).await;
    assert!(r.accepted.lock().unwrap().is_empty());

    r.down.store(false, Ordering::SeqCst);
    let mut server = spawn_server(&data, port);
    wait_ready(&http, &base).await;
    let jwks: Value = http
        .get(format!("{base}/api/hub/v1/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key: Vec<Jwk> = serde_json::from_value(jwks["keys"].clone()).unwrap();
    let mut delivered = Vec::new();
    for _ in 0..600 {
        delivered = accepted_events(&r, &key);
        if delivered.len() >= born.len() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    server.kill().unwrap();
    let _ = tokio::task::spawn_blocking(move || server.wait()).await;
    let people: Vec<&str> = delivered
        .iter()
        .map(|e| e["person"].as_str().unwrap())
        .collect();
    assert_eq!(people, born.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(delivered.iter().all(|e| e["type"] == "birth_registered"));

    // The log survived both kills.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dancu"))
        .args(["audit", "verify", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl HubServer {
    /// Uploads a batch (NDJSON: the metadata line, then the rows) as `bank-a/sub`.
    async fn submit_batch(&self, sub: &str, n: u8, meta: Value, rows: &[Value]) -> (u16, Value) {
        let mut body = meta.to_string();
        for r in rows {
            body.push('\n');
            body.push_str(&r.to_string());
        }
        body.push('\n');
        let a = self.assertion(sub, n, "urn:dancu:hub");
        let req = self
            .http
            .post(format!("{}/api/hub/v1/batch/jobs", self.base))
            .header("x-client-assertion", a)
            .header("content-type", "application/x-ndjson")
            .body(body);
        decode(req.send().await.unwrap()).await
    }

    async fn batch_get(&self, sub: &str, n: u8, path: &str) -> (u16, Value) {
        self.batch_get_at(&self.base, sub, n, path).await
    }

    /// As [`Self::batch_get`], to the server at `base`.
    async fn batch_get_at(&self, base: &str, sub: &str, n: u8, path: &str) -> (u16, Value) {
        let a = self.assertion(sub, n, "urn:dancu:hub");
        let req = self
            .http
            .get(format!("{base}{path}"))
            .header("x-client-assertion", a);
        decode(req.send().await.unwrap()).await
    }

    /// Polls the job until it is no longer running; returns its last status.
    async fn wait_job(&self, sub: &str, n: u8, id: &str) -> Value {
        for _ in 0..400 {
            let (st, v) = self
                .batch_get(sub, n, &format!("/api/hub/v1/batch/jobs/{id}"))
                .await;
            assert_eq!(st, 200, "{v}");
            if v["state"] != "running" {
                return v;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("the batch job did not finish");
    }
}

impl HubServer {
    /// Submits a linked record as the social-insurance register.
    async fn enrich_call(&self, body: Value) -> (u16, Value) {
        let a = self.assertion_of("bhxh", "registry", 5, "urn:dancu:hub");
        self.call_with("/api/hub/v1/enrich", Some(&a), body).await
    }
}

fn ndjson_lines(v: &Value) -> Vec<Value> {
    v.as_str()
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn hub_a_batch_job_is_reported_and_handed_out_at_any_node() {
    let s = HubServer::start_shared().await;
    let n2 = s.second_node().await;
    let an = s.person(11, "Nguyễn Văn An", Sex::Male, 1990, &[]);
    let rows = [
        json!({"id": an, "claims": {"name": "NGUYEN VAN AN"}}),
        json!({"id": an, "claims": {"name": "Nguyễn Văn Bình"}}),
    ];
    let (st, job) = s.submit_batch("ekyc", 1, meta(), &rows).await;
    assert_eq!(st, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    let done = s.wait_job("ekyc", 1, &id).await;
    assert_eq!(done["state"], "done");
    let status = format!("/api/hub/v1/batch/jobs/{id}");
    let results = format!("{status}/results");
    let (st, there) = s.batch_get_at(&n2.base, "ekyc", 1, &status).await;
    assert_eq!(st, 200, "{there}");
    assert_eq!(there, done);
    let (_, here) = s.batch_get("ekyc", 1, &results).await;
    let (st, there) = s.batch_get_at(&n2.base, "ekyc", 1, &results).await;
    assert_eq!(st, 200, "{there}");
    assert_eq!(there, here);
    let answers = ndjson_lines(&there);
    assert_eq!(
        answers.iter().map(|a| &a["result"]).collect::<Vec<_>>(),
        [&json!("served"), &json!("served")]
    );
    // Another subsystem is told nothing about it, nor may it delete it.
    for path in [&status, &results] {
        let (st, v) = s.batch_get_at(&n2.base, "small", 3, path).await;
        assert_eq!(
            (st, v["code"].as_str().unwrap_or_default()),
            (404, "job_not_found"),
            "{v}"
        );
    }
    let delete = |base: &str, sub: &str, n: u8| {
        s.http
            .delete(format!("{base}{status}"))
            .header("x-client-assertion", s.assertion(sub, n, "urn:dancu:hub"))
            .send()
    };
    assert_eq!(delete(&n2.base, "small", 3).await.unwrap().status(), 404);
    // Its owner deletes it at the other node; it is gone at both.
    assert_eq!(delete(&n2.base, "ekyc", 1).await.unwrap().status(), 204);
    let (st, v) = s.batch_get("ekyc", 1, &results).await;
    assert_eq!(
        (st, v["code"].as_str().unwrap_or_default()),
        (404, "job_not_found"),
        "{v}"
    );
    assert_eq!(delete(&s.base, "ekyc", 1).await.unwrap().status(), 404);
}

#[tokio::test]
async fn hub_batch_verification_answers_every_row_logs_each_person_and_meters_fees() {
    let s = HubServer::start().await;
    let an = s.person(11, "Nguyễn Văn An", Sex::Male, 1990, &[]);
    let binh = s.person(12, "Trần Thị Bình", Sex::Female, 1985, &[]);
    let nobody = PersonalId::compose("001", Sex::Male, 1970, 99)
        .unwrap()
        .to_string();
    let rows = [
        json!({"id": an, "claims": {"name": "NGUYEN VAN AN", "date_of_birth": "1990-05-01"}}),
        json!({"id": binh, "claims": {"name": "Trần Thị Bình", "sex": "male"}}),
        json!({"id": nobody, "claims": {"name": "Không Ai"}}),
    ];
    let before = s.log().len();
    let (st, job) = s.submit_batch("ekyc", 1, meta(), &rows).await;
    assert_eq!(st, 202, "{job}");
    assert_eq!(job["total"], 3);
    let id = job["id"].as_str().unwrap().to_owned();
    let done = s.wait_job("ekyc", 1, &id).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(
        (
            &done["done"],
            &done["served"],
            &done["failed"],
            &done["refused"]
        ),
        (&json!(3), &json!(2), &json!(1), &json!(0))
    );

    let (st, v) = s
        .batch_get("ekyc", 1, &format!("/api/hub/v1/batch/jobs/{id}/results"))
        .await;
    assert_eq!(st, 200, "{v}");
    let answers = ndjson_lines(&v);
    assert_eq!(answers.len(), 3);
    assert_eq!(answers[0]["row"], 1);
    assert_eq!(answers[0]["id"], an.as_str());
    assert_eq!(answers[0]["result"], "served");
    let verdicts: Vec<&str> = answers[0]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["verdict"].as_str().unwrap())
        .collect();
    assert_eq!(verdicts, ["match", "match"]);
    let sex = answers[1]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["field"] == "sex")
        .unwrap();
    assert_eq!(sex["verdict"], "no_match");
    assert_eq!(
        (&answers[2]["result"], &answers[2]["code"]),
        (&json!("failed"), &json!("person_not_found"))
    );

    // One exchange per row, naming the person, with the call's metadata and no values.
    let log = s.log();
    let batch: Vec<_> = log[before..].iter().collect();
    assert_eq!(batch.len(), 3);
    let persons: Vec<&str> = batch.iter().map(|r| r.person.as_deref().unwrap()).collect();
    assert_eq!(persons, [an.as_str(), binh.as_str(), nobody.as_str()]);
    assert!(batch.iter().all(|r| r.service == "verify_attributes"
        && r.case_ref.as_deref() == Some("HS-2026-1")
        && r.end_user.as_deref() == Some("gdv-01")));
    assert_eq!(batch[0].result, ExchangeResult::Served);
    assert_eq!(
        batch[2].result,
        ExchangeResult::Failed("person_not_found".into())
    );

    // Fees: the served rows' fields, like single calls.
    let resp = s
        .http
        .get(format!(
            "{}/api/hub/v1/fees/statement?year=2026&month=3&member=bank-a",
            s.base
        ))
        .bearer_auth(&s.supervisor)
        .send()
        .await
        .unwrap();
    let csv = resp.text().await.unwrap();
    assert!(
        csv.contains("bank-a,2026-03,verify_attributes,1000,2,4,4000"),
        "{csv}"
    );

    // The citizen sees the batch check in their tracker.
    let (st, lines) = s
        .officer_post(&s.registrar, "/api/hub/v1/tracker", json!({"person": an}))
        .await;
    assert_eq!(st, 200);
    assert_eq!(lines.as_array().unwrap().len(), 1);

    // Another subsystem cannot see the job.
    let (st, v) = s
        .batch_get("small", 3, &format!("/api/hub/v1/batch/jobs/{id}"))
        .await;
    assert_eq!((st, v["code"].as_str().unwrap()), (404, "job_not_found"));
}

#[tokio::test]
async fn hub_batch_refusals_store_nothing_and_rows_are_held_to_the_quota() {
    let s = HubServer::start().await;
    let an = s.person(21, "Nguyễn Văn An", Sex::Male, 1990, &[]);
    let row = json!({"id": an, "claims": {"name": "Nguyễn Văn An"}});
    let jobs = s.data_dir.join("hub").join("jobs");
    let code = |v: &Value| v["code"].as_str().unwrap().to_owned();

    // Refused by the rights: logged like a single call, no job.
    let before = s.log().len();
    let (st, v) = s
        .submit_batch(
            "ekyc",
            1,
            with(meta(), json!({"purpose": "marketing"})),
            std::slice::from_ref(&row),
        )
        .await;
    assert_eq!((st, code(&v).as_str()), (403, "wrong_purpose"), "{v}");
    let (st, v) = s
        .submit_batch(
            "ekyc",
            1,
            json!({"purpose": "account_opening"}),
            std::slice::from_ref(&row),
        )
        .await;
    assert_eq!((st, code(&v).as_str()), (403, "missing_end_user"), "{v}");
    let (st, v) = s
        .submit_batch("old", 2, meta(), std::slice::from_ref(&row))
        .await;
    assert_eq!((st, code(&v).as_str()), (403, "client_key_expired"), "{v}");
    let log = s.log();
    assert_eq!(log.len(), before + 3);
    assert!(matches!(log[before].result, ExchangeResult::Refused(ref c) if c == "wrong_purpose"));

    // Bad input: one bad row refuses the whole upload.
    let (st, v) = s
        .submit_batch(
            "ekyc",
            1,
            meta(),
            &[row.clone(), json!({"id": "123", "claims": {"name": "X"}})],
        )
        .await;
    assert_eq!((st, code(&v).as_str()), (422, "invalid_batch_row"), "{v}");
    let (st, v) = s
        .submit_batch("ekyc", 1, meta(), &[json!({"id": an, "claims": {}})])
        .await;
    assert_eq!((st, code(&v).as_str()), (422, "invalid_batch_row"), "{v}");
    let (st, v) = s.submit_batch("ekyc", 1, meta(), &[]).await;
    assert_eq!((st, code(&v).as_str()), (422, "invalid_batch"), "{v}");
    assert!(!jobs.exists() || std::fs::read_dir(&jobs).unwrap().next().is_none());
    assert_eq!(s.log().len(), before + 3, "bad input is not an exchange");

    // Quota of 2 a day, charged per row: the third row is refused, the job still finishes.
    let (st, job) = s
        .submit_batch("small", 3, meta(), &[row.clone(), row.clone(), row.clone()])
        .await;
    assert_eq!(st, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    let done = s.wait_job("small", 3, &id).await;
    assert_eq!((&done["served"], &done["refused"]), (&json!(2), &json!(1)));
    let (_, v) = s
        .batch_get("small", 3, &format!("/api/hub/v1/batch/jobs/{id}/results"))
        .await;
    let answers = ndjson_lines(&v);
    assert_eq!(
        (&answers[2]["result"], &answers[2]["code"]),
        (&json!("refused"), &json!("quota_exceeded"))
    );
    let (st, v) = s
        .batch_get("small", 3, "/api/hub/v1/batch/jobs/job_nothing")
        .await;
    assert_eq!((st, code(&v).as_str()), (404, "job_not_found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_batch_job_killed_midway_resumes_after_restart_answering_each_row_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let config = json!({
        "members": [{"id": "bank-a", "name": "A", "class": "bank",
                     "subsystems": [{"id": "ekyc", "keys": [{"jwk": jwk(1)}]}]}],
        "rights": [right("r-attr", "ekyc", "verify_attributes", &["name"], json!({}))],
    });
    std::fs::write(data.join("hub.json"), config.to_string()).unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let assertion = |jti: &str| {
        let now = Utc::now().timestamp();
        sign_es256(
            &key(1),
            "JWT",
            None,
            false,
            &json!({"iss": "bank-a/ekyc", "sub": "bank-a/ekyc", "aud": "urn:dancu:hub",
                    "iat": now, "exp": now + 60, "jti": jti}),
        )
        .unwrap()
    };
    let status_of = |id: String, jti: String| {
        let (http, base, a) = (http.clone(), base.clone(), assertion(&jti));
        async move {
            let v: Value = http
                .get(format!("{base}/api/hub/v1/batch/jobs/{id}"))
                .header("x-client-assertion", a)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v
        }
    };
    // Eight chunks of 10,000 rows, of people the register does not hold.
    const ROWS: u32 = 80_000;
    let mut body = meta().to_string();
    for i in 1..=ROWS {
        let id = PersonalId::compose("001", Sex::Female, 1980, i).unwrap();
        body.push_str(&format!(
            "\n{}",
            json!({"id": id, "claims": {"name": "Lê Thị Hoa"}})
        ));
    }

    let mut server = spawn_server(&data, port);
    wait_ready(&http, &base).await;
    let resp = http
        .post(format!("{base}/api/hub/v1/batch/jobs"))
        .header("x-client-assertion", assertion("a1"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let job: Value = resp.json().await.unwrap();
    let id = job["id"].as_str().unwrap().to_owned();
    // Killed once a chunk or more is stored, before the last.
    let mut killed_at = 0;
    for i in 0..4000 {
        let st = status_of(id.clone(), format!("p{i}")).await;
        let done = st["done"].as_u64().unwrap();
        if done > 0 {
            assert!(
                done < u64::from(ROWS),
                "the job ended before the kill: {st}"
            );
            server.kill().unwrap();
            killed_at = done;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(killed_at > 0, "no chunk was stored");
    let _ = tokio::task::spawn_blocking(move || server.wait()).await;

    let mut server = spawn_server(&data, port);
    wait_ready(&http, &base).await;
    let mut status = Value::Null;
    for i in 0..2400 {
        status = status_of(id.clone(), format!("s{i}")).await;
        if status["state"] != "running" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let results = http
        .get(format!("{base}/api/hub/v1/batch/jobs/{id}/results"))
        .header("x-client-assertion", assertion("r"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    server.kill().unwrap();
    let _ = tokio::task::spawn_blocking(move || server.wait()).await;
    assert_eq!(status["state"], "done", "{status}");
    let rows = u64::from(ROWS);
    assert_eq!(
        (&status["done"], &status["failed"]),
        (&json!(rows), &json!(rows))
    );
    let answered: Vec<u64> = std::str::from_utf8(&results)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["row"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(
        answered,
        (1..=rows).collect::<Vec<_>>(),
        "every row once, in order (killed at {killed_at})"
    );
}

#[tokio::test]
async fn hub_enrichment_links_sectoral_identifiers_beside_the_register_with_history() {
    let s = HubServer::start().await;
    let id = s.person(31, "Phạm Văn Cường", Sex::Male, 1975, &[]);
    let reg = |v: Value| {
        with(
            json!({"purpose": "insurance_registry", "end_user": "bhxh-op-1", "case_ref": "BHXH-1"}),
            v,
        )
    };
    let register_view = || async {
        let resp = s
            .http
            .post(format!("{}/api/v1/persons/get", s.base))
            .bearer_auth(&s.registrar)
            .header("x-purpose", "kiem tra ho so")
            .json(&json!({"id": id}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        resp.json::<Value>().await.unwrap()
    };
    let before = register_view().await;

    let (st, v) = s.enrich_call(reg(json!({"id": id, "kind": "health_insurance_number",
        "value": "DN4797912345678", "source_ref": "BHXH/2026/1", "attributes": {"hospital": "79024"}})))
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["source_org"], "bhxh");
    assert_eq!(v["current"]["value"], "DN4797912345678");
    let (st, v) = s
        .enrich_call(reg(json!({"id": id, "kind": "health_insurance_number",
        "value": "DN4797912345999", "source_ref": "BHXH/2026/2"})))
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["current"]["value"], "DN4797912345999");
    assert_eq!(v["history"].as_array().unwrap().len(), 1);
    assert_eq!(v["history"][0]["value"], "DN4797912345678");
    assert_eq!(v["history"][0]["source_ref"], "BHXH/2026/1");

    // Refusals change nothing.
    let code = |v: &Value| v["code"].as_str().unwrap().to_owned();
    let (st, v) = s
        .enrich_call(reg(
            json!({"id": id, "kind": "tax_code", "value": "8001234567", "source_ref": "T-1"}),
        ))
        .await;
    assert_eq!((st, code(&v).as_str()), (403, "field_not_allowed"), "{v}");
    let (st, v) = s
        .enrich_call(reg(
            json!({"id": id, "kind": "health_insurance_number", "value": " ", "source_ref": "X"}),
        ))
        .await;
    assert_eq!(
        (st, code(&v).as_str()),
        (422, "invalid_linked_record"),
        "{v}"
    );
    let nobody = PersonalId::compose("001", Sex::Male, 1970, 98)
        .unwrap()
        .to_string();
    let (st, v) = s.enrich_call(reg(
        json!({"id": nobody, "kind": "health_insurance_number", "value": "DN1", "source_ref": "X"}),
    ))
    .await;
    assert_eq!((st, code(&v).as_str()), (404, "person_not_found"), "{v}");
    let a = s.assertion("ekyc", 1, "urn:dancu:hub");
    let (st, v) = s
        .call_with("/api/hub/v1/enrich", Some(&a), with(meta(), json!({"id": id, "kind": "health_insurance_number", "value": "X1", "source_ref": "X"})))
        .await;
    assert_eq!((st, code(&v).as_str()), (403, "no_right"), "{v}");

    // Never over the register record.
    assert_eq!(register_view().await, before);

    // Officers read them through the register API (purpose required, read access-logged).
    let resp = s
        .http
        .post(format!("{}/api/v1/persons/linked-records", s.base))
        .bearer_auth(&s.registrar)
        .header("x-purpose", "kiem tra ho so")
        .json(&json!({"id": id}))
        .send()
        .await
        .unwrap();
    let (st, v) = decode(resp).await;
    assert_eq!(st, 200, "{v}");
    let recs = v["linked_records"].as_array().unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["kind"], "health_insurance_number");
    assert_eq!(recs[0]["history"].as_array().unwrap().len(), 1);

    // Members within their rights.
    let (st, v) = s
        .call(
            "/api/hub/v1/linked-records",
            with(
                meta(),
                json!({"id": id, "kinds": ["health_insurance_number"]}),
            ),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v[0]["current"]["value"], "DN4797912345999");
    let (st, v) = s
        .call(
            "/api/hub/v1/linked-records",
            with(
                meta(),
                json!({"id": id, "kinds": ["social_insurance_number"]}),
            ),
        )
        .await;
    assert_eq!((st, code(&v).as_str()), (403, "field_not_allowed"), "{v}");

    // The log holds the kinds, never the values.
    let log = s.log();
    let enrich: Vec<_> = log.iter().filter(|r| r.service == "enrich").collect();
    assert_eq!(enrich.len(), 5, "two served, refusals and failures logged");
    assert!(enrich.iter().all(|r| !format!("{r:?}").contains("DN479")));
    assert_eq!(enrich[0].fields, ["health_insurance_number"]);
    assert_eq!(enrich[0].person.as_deref(), Some(id.as_str()));

    // Giving identifiers is not exploiting register data: no fee for the sectoral register.
    let csv = s
        .http
        .get(format!(
            "{}/api/hub/v1/fees/statement?year=2026&month=3&member=bhxh",
            s.base
        ))
        .bearer_auth(&s.supervisor)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(csv.lines().count(), 1, "{csv}");
    let csv = s
        .http
        .get(format!(
            "{}/api/hub/v1/fees/statement?year=2026&month=3&member=bank-a",
            s.base
        ))
        .bearer_auth(&s.supervisor)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        csv.contains("bank-a,2026-03,linked_records,1000,1,1,1000"),
        "{csv}"
    );
}

#[tokio::test]
async fn hub_batch_job_spanning_several_chunks_answers_every_row_once_in_order() {
    let s = HubServer::start().await;
    let an = s.person(41, "Nguyễn Văn An", Sex::Male, 1990, &[]);
    // 10,000 rows make a chunk: three chunks, the person on the first and last rows.
    let rows: Vec<Value> = (0..20_005u32)
        .map(|i| {
            let id = if i == 0 || i == 20_004 {
                an.clone()
            } else {
                PersonalId::compose("001", Sex::Female, 1950 + (i % 50) as i32, 1000 + i)
                    .unwrap()
                    .to_string()
            };
            json!({"id": id, "claims": {"sex": "male"}})
        })
        .collect();
    let (st, job) = s.submit_batch("ekyc", 1, meta(), &rows).await;
    assert_eq!(st, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    let mut done = Value::Null;
    for _ in 0..60 {
        done = s.wait_job("ekyc", 1, &id).await;
        if done["state"] != "running" {
            break;
        }
    }
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(
        (&done["served"], &done["failed"]),
        (&json!(2), &json!(20_003))
    );
    let (_, v) = s
        .batch_get("ekyc", 1, &format!("/api/hub/v1/batch/jobs/{id}/results"))
        .await;
    let answers = ndjson_lines(&v);
    assert_eq!(answers.len(), 20_005);
    assert!(answers.iter().zip(1..).all(|(a, n)| a["row"] == n));
    assert_eq!(answers[20_004]["result"], "served");
    assert_eq!(s.log().len(), 20_005);
}

/// A real `nats-server` with JetStream on a port of its own, storing in `dir`.
struct Nats {
    child: std::process::Child,
    port: u16,
}

impl Nats {
    /// Starts the server (again, on the same port and storage, when `port` is given); `None`
    /// when `nats-server` is not installed and the run does not require it.
    fn start(dir: &std::path::Path, port: Option<u16>) -> Option<Self> {
        let bin = [
            "/usr/sbin/nats-server",
            "/usr/bin/nats-server",
            "/usr/local/bin/nats-server",
        ]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
        let Some(bin) = bin else {
            assert!(
                std::env::var_os("DANCU_REQUIRE_NATS").is_none(),
                "DANCU_REQUIRE_NATS is set but nats-server is not installed"
            );
            eprintln!("skipping: nats-server is not installed (apt-get install nats-server)");
            return None;
        };
        let port = port.unwrap_or_else(|| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        });
        let mut child = std::process::Command::new(bin)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(Self { child, port });
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("nats-server did not start on port {port}");
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn stop(mut self) -> u16 {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.port
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The messages of the test stream, as (Nats-Msg-Id, verified claims), in stream order.
async fn stream_messages(url: &str, key: &Jwk) -> Vec<(String, Value)> {
    let Ok(client) = async_nats::connect(url).await else {
        return Vec::new();
    };
    let js = async_nats::jetstream::new(client);
    let Ok(stream) = js.get_stream("DANCU_TEST").await else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for seq in 1.. {
        let Ok(m) = stream.get_raw_message(seq).await else {
            break;
        };
        assert_eq!(m.subject.as_str(), "dancu.events.bank-a");
        let id = m.headers.get("Nats-Msg-Id").unwrap().as_str().to_owned();
        let body = std::str::from_utf8(&m.payload).unwrap();
        let claims: Value = decode_unverified(body)
            .unwrap()
            .verify(key, &[Alg::ES256])
            .unwrap();
        out.push((id, claims));
    }
    out
}

fn events_of(messages: &[(String, Value)]) -> Vec<Value> {
    let mut out = Vec::new();
    for (id, claims) in messages {
        assert_eq!(claims["delivery_id"], id.as_str());
        assert_eq!(claims["sub"], "push-nats");
        out.extend(claims["events"].as_array().unwrap().iter().cloned());
    }
    out
}

#[tokio::test]
async fn hub_nats_jetstream_gets_every_event_in_order_through_a_server_restart() {
    let nats_dir = tempfile::tempdir().unwrap();
    let Some(nats) = Nats::start(nats_dir.path(), None) else {
        return;
    };
    let url = nats.url();
    let s = HubServer::start_with_push(None, Some(&url)).await;
    let key = s.hub_key().await;
    let mut ids = Vec::new();
    for i in 0..3u32 {
        ids.push(s.person_in(40 + i, "Đinh Thị Lan", Sex::Female, 1985, &[], BA_DINH));
    }
    s.wait_until("three events on the stream", async || {
        events_of(&stream_messages(&url, &key).await).len() >= 3
    })
    .await;

    // The NATS server goes away: deliveries fail and back off, nothing is skipped.
    let port = nats.stop();
    for i in 3..5u32 {
        ids.push(s.person_in(40 + i, "Đinh Thị Lan", Sex::Female, 1985, &[], BA_DINH));
    }
    // A publish that set out before the client saw the server go waits for its
    // acknowledgement until the sender's 10 s limit, so this waits longer than that.
    s.wait_within(
        "a failed attempt",
        std::time::Duration::from_secs(25),
        async || {
            // A fresh assertion each time: the clock moves on while waiting.
            let a = s.assertion("ekyc", 1, "urn:dancu:hub");
            let (st, v) = s
                .call_with(
                    "/api/hub/v1/events/webhook/status",
                    Some(&a),
                    json!({"subscription": "push-nats"}),
                )
                .await;
            st == 200 && v["attempts"].as_u64().unwrap_or(0) >= 1
        },
    )
    .await;

    // Back on the same storage: the rest arrive, in register order, each once.
    let _nats = Nats::start(nats_dir.path(), Some(port)).unwrap();
    s.wait_until("five events on the stream", async || {
        events_of(&stream_messages(&url, &key).await).len() >= 5
    })
    .await;
    let events = events_of(&stream_messages(&url, &key).await);
    let people: Vec<&str> = events
        .iter()
        .map(|e| e["person"].as_str().unwrap())
        .collect();
    assert_eq!(people, ids.iter().map(String::as_str).collect::<Vec<_>>());
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let a = s.assertion("ekyc", 1, "urn:dancu:hub");
    let (st, v) = s
        .call_with(
            "/api/hub/v1/events/webhook/status",
            Some(&a),
            json!({"subscription": "push-nats"}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["cursor"], seqs[4], "{v}");
    assert_eq!(v["dead_letters"], json!([]));
}

#[test]
fn hub_config_refuses_a_subscription_with_both_targets_or_a_wildcard_subject() {
    let mut c = hub_config(Utc::now(), Some("http://127.0.0.1:9/hook"), true);
    c.subscriptions.last_mut().unwrap().webhook =
        c.subscriptions[c.subscriptions.len() - 2].webhook.clone();
    assert!(c.check().unwrap_err().contains("both"), "{:?}", c.check());
    let mut c = hub_config(Utc::now(), None, true);
    c.subscriptions
        .last_mut()
        .unwrap()
        .nats
        .as_mut()
        .unwrap()
        .subject = "dancu.>".into();
    assert!(c.check().unwrap_err().contains("NATS subject"));
}
