//! Test server and fixtures.

use chrono::{NaiveDate, TimeZone, Utc};
use dancu_domain::PersonalId;
use dancu_domain::admin::{Address, Scheme};
use dancu_domain::clock::{Clock, FixedClock};
use dancu_domain::event::EventMeta;
use dancu_domain::officer::{Jurisdiction, Officer, Role};
use dancu_domain::person::*;
use dancu_domain::{PartialDate, PersonName};
use dancu_registry::{Registry, credentials};
use dancu_store::{ImportRow, OfficerRecord, Store};
use serde_json::{Value, json};
use std::sync::Arc;

/// The commune most fixtures live in: Phường Ba Đình, Hà Nội (2025 scheme).
pub const BA_DINH: &str = "00004";
/// Another commune of Hà Nội.
pub const NGOC_HA: &str = "00008";

/// With `DANCU_TEST_API_BACKEND=postgres` (and `DANCU_TEST_DATABASE_URL`), each test server
/// runs on a fresh PostgreSQL schema instead of SQLite, so the API suite covers both backends.
pub fn api_backend_url() -> Option<(String, String)> {
    if std::env::var("DANCU_TEST_API_BACKEND").ok().as_deref() != Some("postgres") {
        return None;
    }
    let admin = std::env::var("DANCU_TEST_DATABASE_URL")
        .expect("DANCU_TEST_API_BACKEND=postgres needs DANCU_TEST_DATABASE_URL");
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let schema = format!("api_{}_{n}", std::process::id());
    let mut client = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        ))
        .unwrap();
    let sep = if admin.contains('?') { '&' } else { '?' };
    Some((
        format!("{admin}{sep}pool_max=8&options=-csearch_path%3D{schema}"),
        schema,
    ))
}

/// Runs blocking store work on its own OS thread: the synchronous PostgreSQL client refuses to run
/// inside the test's async runtime.
pub fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| scope.spawn(f).join().unwrap())
}

/// The e-ID service of a test server at `issuer`.
fn open_idp(
    issuer: &str,
    docs: &Arc<dyn dancu_store::docs::DocStore>,
    registry: &Arc<Registry>,
    clock: &Arc<FixedClock>,
    sms_outbox: &std::path::Path,
) -> Arc<dancu_idp::Idp> {
    let mut cfg = dancu_idp::IdpConfig::new(issuer);
    // Cheaper Argon2id in tests; the parameters themselves are tested in the eid crate.
    cfg.passcode = dancu_eid::authn::passcode::PasscodeParams {
        m_kib: 1024,
        t: 1,
        p: 1,
    };
    cfg.key_cache = std::time::Duration::ZERO;
    let deps = dancu_idp::IdpDeps {
        docs: docs.clone(),
        registry: registry.clone(),
        clock: clock.clone() as Arc<dyn Clock>,
        sms: Arc::new(dancu_idp::sms::OutboxGateway::new(sms_outbox.to_owned())),
        face: Arc::new(dancu_eid::face::DemoFaceVerifier),
        seed: Some(7),
    };
    Arc::new(off_runtime(|| dancu_idp::Idp::open(cfg, deps).unwrap()))
}

pub struct TestServer {
    pub base: String,
    pub http: reqwest::Client,
    pub store: Arc<dyn Store>,
    pub clock: Arc<FixedClock>,
    pub national: String,
    pub commune: String,
    pub viewer: String,
    pub registrar: String,
    /// The e-ID service, for servers started with [`TestServer::start_with_idp`].
    pub idp: Option<Arc<dancu_idp::Idp>>,
    /// Where the development SMS gateway writes one-time codes.
    pub sms_outbox: std::path::PathBuf,
    /// The data-sharing hub, for servers started with [`TestServer::start_with_idp_and_hub`].
    pub hub: Option<Arc<dancu_hub::service::Hub>>,
    /// The document store (e-ID records, portal sessions).
    docs: Arc<dyn dancu_store::docs::DocStore>,
    pg_schema: Option<String>,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Best effort: leave no test schema behind in the PostgreSQL database.
        if let (Some(schema), Ok(admin)) =
            (&self.pg_schema, std::env::var("DANCU_TEST_DATABASE_URL"))
        {
            let schema = schema.clone();
            let _ = std::thread::spawn(move || {
                if let Ok(mut c) = postgres::Client::connect(&admin, postgres::NoTls) {
                    let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
                }
            })
            .join();
        }
    }
}

pub fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

pub fn addr2025(commune: &str, detail: &str, from: NaiveDate) -> Address {
    Address::new(Scheme::Y2025, commune, detail, from).unwrap()
}

fn officer(store: &dyn Store, id: &str, role: Role, j: Jurisdiction) -> String {
    let token = credentials::new_token();
    store
        .add_officer(&OfficerRecord {
            officer: Officer {
                id: id.into(),
                name: format!("Officer {id}"),
                role,
                jurisdiction: j,
                person: None,
            },
            token_hash: credentials::token_hash(&token),
            created_at: Utc::now(),
        })
        .unwrap();
    token
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_inner(false, None).await
    }

    /// A server that also runs the e-ID service and OpenID Connect provider, its issuer being
    /// the server's own base URL.
    pub async fn start_with_idp() -> Self {
        Self::start_inner(true, None).await
    }

    /// With the e-ID service and a data-sharing hub of these members and rights.
    pub async fn start_with_idp_and_hub(hub: dancu_hub::members::HubConfig) -> Self {
        Self::start_inner(true, Some(hub)).await
    }

    async fn start_inner(
        with_idp: bool,
        hub_config: Option<dancu_hub::members::HubConfig>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pg = off_runtime(api_backend_url);
        let sqlite_path = dir.path().join("t.sqlite3");
        let (store, docs) = off_runtime(|| match &pg {
            Some((url, _)) => dancu_store::docs::open_with_docs(url).unwrap(),
            None => dancu_store::docs::open_with_docs(sqlite_path.to_str().unwrap()).unwrap(),
        });
        let clock = Arc::new(FixedClock::new(
            Utc.with_ymd_and_hms(2026, 3, 1, 3, 0, 0).unwrap(),
        ));
        let registry = Arc::new(Registry::new(
            store.clone(),
            clock.clone() as Arc<dyn Clock>,
            Some(42),
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let sms_outbox = dir.path().join("sms-outbox.ndjson");
        let mut state = dancu_http::AppState::new(registry.clone());
        let mut hub = None;
        if let Some(config) = hub_config {
            let h = off_runtime(|| {
                dancu_hub::service::Hub::open(
                    config,
                    store.clone(),
                    docs.clone(),
                    clock.clone() as Arc<dyn Clock>,
                    &dir.path().join("audit"),
                    &dir.path().join("hub"),
                    dancu_hub::audit::AuditSettings {
                        fsync_each_record: false,
                        ..Default::default()
                    },
                )
                .unwrap()
            });
            let h = Arc::new(h);
            state = state.with_hub(h.clone());
            hub = Some(h);
        }
        let mut idp = None;
        if with_idp {
            let i = open_idp(&base, &docs, &registry, &clock, &sms_outbox);
            state = state.with_idp(i.clone());
            idp = Some(i);
        }
        let app = dancu_http::router(state);
        let bound = dancu::server::Bound::from_listener(listener, app);
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(bound.serve(async move {
            let _ = rx.await;
        }));
        let (national, commune, viewer, registrar) = off_runtime(|| {
            let s = store.as_ref();
            (
                officer(s, "national", Role::Supervisor, Jurisdiction::National),
                officer(
                    s,
                    "badinh",
                    Role::Registrar,
                    Jurisdiction::Commune(BA_DINH.into()),
                ),
                officer(s, "viewer", Role::Viewer, Jurisdiction::National),
                officer(s, "registrar", Role::Registrar, Jurisdiction::National),
            )
        });
        Self {
            base,
            http: reqwest::Client::new(),
            store,
            clock,
            national,
            commune,
            viewer,
            registrar,
            idp,
            sms_outbox,
            hub,
            docs,
            pg_schema: pg.map(|(_, schema)| schema),
            _dir: dir,
            _stop: stop,
        }
    }

    /// POSTs JSON with a token (and the purpose header), returning status and JSON body.
    pub async fn post(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        self.post_with(token, path, body, &[]).await
    }

    pub async fn post_with(
        &self,
        token: &str,
        path: &str,
        body: Value,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("x-purpose", "integration test")
            .json(&body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let text = resp.text().await.unwrap();
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status >= 400 {
            assert_eq!(
                ct, "application/problem+json",
                "errors are problem+json: {v}"
            );
            assert!(
                v["message_vi"].as_str().is_some_and(|m| !m.is_empty()),
                "Vietnamese message: {v}"
            );
            assert!(
                v["message_en"].as_str().is_some_and(|m| !m.is_empty()),
                "English message: {v}"
            );
        }
        (status, v)
    }

    pub async fn get_person(&self, id: &str) -> Value {
        let (s, v) = self
            .post(&self.national, "/api/v1/persons/get", json!({"id": id}))
            .await;
        assert_eq!(s, 200, "{v}");
        v
    }

    pub async fn history(&self, id: &str) -> Vec<Value> {
        let (s, v) = self
            .post(&self.national, "/api/v1/persons/history", json!({"id": id}))
            .await;
        assert_eq!(s, 200, "{v}");
        v.as_array().unwrap().clone()
    }

    /// Loads an adult directly into the store (as a bulk import would), living in `commune`.
    pub fn adult(&self, serial: u32, name: &str, sex: Sex, year: i32, commune: &str) -> String {
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
            legacy_cmnd: vec![],
            cards: vec![],
            vital_status: VitalStatus::Alive,
        };
        let p = dancu_domain::event::apply(
            None,
            &dancu_domain::event::PersonChange::RecordImported {
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
        let dupes = off_runtime(|| {
            self.store
                .import_batch(
                    &format!("fixture-{serial}"),
                    &[ImportRow { line: 1, person: p }],
                    &meta,
                )
                .unwrap()
        });
        assert!(dupes.is_empty());
        id.to_string()
    }

    /// Stops the server and starts a fresh one over the same stores (new application state,
    /// new e-ID service, nothing kept in memory) on a new port, as after a restart; `base`
    /// follows. The issuer stays the first server's.
    pub async fn restart(&mut self) {
        let issuer = self.idp.as_ref().map(|i| i.config().issuer.clone());
        let registry = Arc::new(Registry::new(
            self.store.clone(),
            self.clock.clone() as Arc<dyn Clock>,
            Some(42),
        ));
        let mut state = dancu_http::AppState::new(registry.clone());
        if let Some(h) = &self.hub {
            state = state.with_hub(h.clone());
        }
        if let Some(issuer) = issuer {
            let i = open_idp(
                &issuer,
                &self.docs,
                &registry,
                &self.clock,
                &self.sms_outbox,
            );
            state = state.with_idp(i.clone());
            self.idp = Some(i);
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let bound = dancu::server::Bound::from_listener(listener, dancu_http::router(state));
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(bound.serve(async move {
            let _ = rx.await;
        }));
        // Dropping the old sender stops the old server.
        self._stop = stop;
        self.base = base;
    }

    /// The test clock's now.
    pub fn now_utc(&self) -> chrono::DateTime<Utc> {
        self.clock.now()
    }

    pub fn advance_days(&self, days: i64) {
        self.clock.advance(chrono::Duration::days(days));
    }
}

/// A birth-registration body for a child born in Ba Đình.
pub fn birth(name: &str, sex: &str, dob: &str) -> Value {
    json!({
        "name": name,
        "sex": sex,
        "date_of_birth": dob,
        "registration_commune": BA_DINH,
        "reason": "Đăng ký khai sinh đúng hạn",
        "legal_basis": "Luật Hộ tịch 2014, Điều 16",
        "document_ref": "GCS-2026-0001",
    })
}

pub fn address_json(commune: &str, detail: &str, from: &str) -> Value {
    json!({"scheme": "2025", "commune_code": commune, "detail": detail, "effective_from": from})
}
