//! Card verification end to end through the real server: a member subsystem (client assertion,
//! `card_verify` right) and an officer (Bearer token) send a card's QR text, MRZ and chip files;
//! the answers are checked against register records made for each case: a matching card, a
//! mismatched name, a replaced card, a dead holder, the under-14 expiry rules and tampered chip
//! data. The chip files are the card crate's generated fixtures (`crates/card/fixtures`).

use crate::common::{addr2025, api_backend_url, date, off_runtime};
use base64ct::{Base64, Encoding};
use chrono::{NaiveDate, TimeZone, Utc};
use dancu_domain::admin::{Address, Scheme};
use dancu_domain::clock::{Clock, FixedClock};
use dancu_domain::event::{EventMeta, PersonChange, apply};
use dancu_domain::officer::{Jurisdiction, Officer, Role};
use dancu_domain::person::*;
use dancu_domain::{CmndNumber, PartialDate, PersonName, PersonalId};
use dancu_eid::oidc::jws::{Jwk, sign_es256};
use dancu_exchange::log::record::ExchangeResult;
use dancu_hub::audit::{AuditSettings, read_entries};
use dancu_hub::cards::CardTrust;
use dancu_hub::members::HubConfig;
use dancu_hub::service::Hub;
use dancu_registry::{Registry, credentials};
use dancu_store::{ImportRow, OfficerRecord, Store};
use p256::ecdsa::SigningKey;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../card/fixtures");

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{name}")).unwrap()
}

fn b64(name: &str) -> String {
    Base64::encode_string(&fixture(name))
}

/// The fixture chip: P-256 SOD over DG1, DG2, DG13, DG14, DG15 (DG13 optionally tampered).
fn chip(dg13: &str) -> Value {
    json!({
        "sod": b64("p256_sod.bin"),
        "data_groups": {
            "1": b64("dg1.bin"), "2": b64("dg2.bin"), "13": b64(dg13),
            "dg14": b64("dg14.bin"), "DG15": b64("dg15.bin"),
        },
    })
}

/// The MRZ text the fixture's DG1 holds.
fn fixture_mrz() -> String {
    dancu_card::lds::parse_dg1(&fixture("dg1.bin"))
        .unwrap()
        .lines
        .join("\n")
}

fn key(n: u8) -> SigningKey {
    SigningKey::from_slice(&[n; 32]).unwrap()
}

struct CardServer {
    base: String,
    http: reqwest::Client,
    clock: Arc<FixedClock>,
    store: Arc<dyn Store>,
    officer: String,
    data_dir: PathBuf,
    next_jti: AtomicU32,
    pg_schema: Option<String>,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Drop for CardServer {
    fn drop(&mut self) {
        if self.pg_schema.is_some() {
            // The server task may be the last holder of the PostgreSQL pool and is dropped on a
            // runtime worker when the test's runtime shuts down, where the synchronous client
            // cannot close its connections. Keep the pool alive until the process ends instead.
            std::mem::forget(self.store.clone());
        }
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

fn hub_config() -> HubConfig {
    let jwk = |n| serde_json::to_value(Jwk::from_p256(key(n).verifying_key())).unwrap();
    serde_json::from_value(json!({
        "members": [{
            "id": "bank-a", "name": "Ngân hàng A", "class": "bank",
            "subsystems": [
                {"id": "kyc", "keys": [{"jwk": jwk(1)}]},
                {"id": "other", "keys": [{"jwk": jwk(2)}]},
            ],
        }],
        "rights": [{
            "id": "r-card", "org": "bank-a", "subsystem": "kyc", "service": "card_verify",
            "fields": ["card_data_match", "card_status", "vital_status"],
            "purpose": "account_opening", "legal_basis": "Quyết định 2345/QĐ-NHNN",
            "requires_consent": false, "requires_end_user": true,
            "requires_case_reference": false,
            "covert_embargo_days": null, "quota": null, "rate": null,
        }, {
            "id": "r-door", "org": "bank-a", "subsystem": "kyc", "service": "checkpoint",
            "fields": ["check_in"], "purpose": "checkpoint",
            "legal_basis": "Quyết định 06/QĐ-TTg",
            "requires_consent": false, "requires_end_user": false,
            "requires_case_reference": false,
            "covert_embargo_days": null, "quota": null, "rate": null,
        }],
    }))
    .unwrap()
}

impl CardServer {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().to_owned();
        let db = data_dir.join("dancu.sqlite3");
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
        // The trust directory as an operator lays it out: CSCA certificates and a CRL.
        let trust_dir = data_dir.join("card-trust");
        std::fs::create_dir_all(&trust_dir).unwrap();
        std::fs::write(trust_dir.join("csca.pem"), fixture("trust.pem")).unwrap();
        std::fs::write(trust_dir.join("p256.crl"), fixture("p256_csca.crl")).unwrap();
        let trust = CardTrust::load_dir(&trust_dir).unwrap();
        assert_eq!(trust.store.len(), 4);
        // Over PostgreSQL, opening the hub reads the shared configuration: off the runtime.
        let hub = off_runtime(|| {
            Hub::open(
                hub_config(),
                store.clone(),
                docs,
                clock.clone() as Arc<dyn Clock>,
                &data_dir.join("audit"),
                &data_dir.join("hub"),
                AuditSettings {
                    fsync_each_record: false,
                    ..AuditSettings::default()
                },
            )
            .unwrap()
        })
        .with_card_trust(trust);
        let registry = Arc::new(Registry::new(
            store.clone(),
            clock.clone() as Arc<dyn Clock>,
            Some(42),
        ));
        let app = dancu_http::router(dancu_http::AppState::new(registry).with_hub(Arc::new(hub)));
        let bound = dancu::server::Bound::bind("127.0.0.1:0".parse().unwrap(), app)
            .await
            .unwrap();
        let base = format!("http://{}", bound.local_addr());
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(bound.serve(async move {
            let _ = rx.await;
        }));
        let officer = off_runtime(|| {
            let token = credentials::new_token();
            store
                .add_officer(&OfficerRecord {
                    officer: Officer {
                        id: "canbo-01".into(),
                        name: "Officer".into(),
                        role: Role::Registrar,
                        jurisdiction: Jurisdiction::National,
                        person: None,
                    },
                    token_hash: credentials::token_hash(&token),
                    created_at: Utc::now(),
                })
                .unwrap();
            token
        });
        Self {
            base,
            http: reqwest::Client::new(),
            clock,
            store,
            officer,
            data_dir,
            next_jti: AtomicU32::new(0),
            pg_schema: pg.map(|(_, schema)| schema),
            _dir: dir,
            _stop: stop,
        }
    }

    /// Imports a person born on `dob` with the given cards (numbered with the ID) and vital
    /// status; returns the ID.
    fn person(
        &self,
        serial: u32,
        name: &str,
        sex: Sex,
        dob: NaiveDate,
        cards: &[(NaiveDate, Option<NaiveDate>, CardStatus)],
        dead: bool,
    ) -> PersonalId {
        use chrono::Datelike;
        let id = PersonalId::compose("001", sex, dob.year(), serial).unwrap();
        let p = Person {
            id,
            version: 0,
            name: PersonName::parse(name).unwrap(),
            other_names: vec![],
            date_of_birth: PartialDate::Full(dob),
            sex,
            birth_registration: Address::new(Scheme::Legacy, "00001", "", dob).unwrap(),
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
                address: addr2025("00004", "Số 1 Tràng Tiền", date(2025, 8, 1)),
                from: date(2025, 8, 1),
                until: None,
            }),
            temporary_residence: None,
            temporary_absence: None,
            last_stay: None,
            household: None,
            legacy_cmnd: vec![LegacyCmnd {
                number: CmndNumber::parse("012345678").unwrap(),
                issued_on: None,
            }],
            cards: cards
                .iter()
                .map(|(issued_on, expires_on, status)| CardRecord {
                    number: id.to_string(),
                    kind: CardKind::Cccd,
                    issued_on: *issued_on,
                    expires_on: *expires_on,
                    status: *status,
                })
                .collect(),
            vital_status: if dead {
                VitalStatus::Dead {
                    date_of_death: PartialDate::Full(date(2026, 1, 10)),
                }
            } else {
                VitalStatus::Alive
            },
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
                    &format!("card-{serial}"),
                    &[ImportRow { line: 1, person: p }],
                    &meta,
                )
                .unwrap()
        });
        id
    }

    fn assertion(&self, sub: &str, n: u8) -> String {
        let now = self.clock.now().timestamp();
        let jti = format!("jti-{}", self.next_jti.fetch_add(1, Ordering::Relaxed));
        let iss = format!("bank-a/{sub}");
        sign_es256(
            &key(n),
            "JWT",
            None,
            false,
            &json!({"iss": iss, "sub": iss, "aud": "urn:dancu:hub", "iat": now, "exp": now + 60, "jti": jti}),
        )
        .unwrap()
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let v: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
        if status >= 400 {
            assert_eq!(ct, "application/problem+json", "{v}");
            assert!(v["message_vi"].as_str().is_some_and(|m| !m.is_empty()));
            assert!(v["message_en"].as_str().is_some_and(|m| !m.is_empty()));
        }
        (status, v)
    }

    /// A member call (bank-a/`sub`, key `n`).
    async fn member(&self, sub: &str, n: u8, card: Value) -> (u16, Value) {
        let mut body = json!({"purpose": "account_opening", "end_user": "gdv-01"});
        for (k, v) in card.as_object().unwrap() {
            body[k] = v.clone();
        }
        let req = self
            .http
            .post(format!("{}/api/hub/v1/cards/verify", self.base))
            .header("x-client-assertion", self.assertion(sub, n))
            .json(&body);
        self.send(req).await
    }

    /// A member call to any hub path.
    async fn member_at(&self, sub: &str, n: u8, path: &str, body: Value) -> (u16, Value) {
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("x-client-assertion", self.assertion(sub, n))
            .json(&body);
        self.send(req).await
    }

    /// An officer call.
    async fn officer(&self, token: Option<&str>, card: Value) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{}/api/v1/cards/verify", self.base))
            .header("x-purpose", "identity_check")
            .json(&card);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        self.send(req).await
    }

    fn log(&self) -> Vec<dancu_exchange::log::record::AuditRecord> {
        read_entries(&self.data_dir.join("audit"))
            .unwrap()
            .into_iter()
            .map(|e| e.record)
            .collect()
    }
}

fn qr(id: &PersonalId, name: &str, dob: &str, sex: &str, issued: &str) -> String {
    format!("{id}|012345678|{name}|{dob}|{sex}|Số 1 Tràng Tiền, Hoàn Kiếm, Hà Nội|{issued}")
}

/// `field` from `source` in the answer's field list.
fn field(v: &Value, field: &str, source: &str) -> String {
    v["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["field"] == field && f["source"] == source)
        .unwrap_or_else(|| panic!("no {field} from {source}: {v}"))["result"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn check<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {v}"))
}

/// The fixture card's holder, as the register should have them.
fn fixture_holder(s: &CardServer, name: &str) -> PersonalId {
    let id = s.person(
        12345,
        name,
        Sex::Male,
        date(1999, 1, 1),
        &[(date(2021, 6, 15), Some(date(2039, 1, 1)), CardStatus::Valid)],
        false,
    );
    assert_eq!(id.as_str(), "001099012345");
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn card_matching_the_register_is_authentic_valid_and_logged() {
    let s = CardServer::start().await;
    let id = fixture_holder(&s, "Nguyễn Văn An");
    let card = json!({
        "qr": qr(&id, "Nguyễn Văn An", "01011999", "Nam", "15062021"),
        "mrz": fixture_mrz(),
        "chip": chip("dg13.bin"),
    });
    let (st, v) = s.member("kyc", 1, card.clone()).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["authenticity"], "authentic", "{v}");
    assert_eq!(v["personal_id"], id.as_str());
    for name in [
        "qr_parse",
        "mrz_check_digits",
        "dg1_hash",
        "dg13_hash",
        "sod_signature",
        "certificate_chain",
        "signer_validity",
        "revocation",
        "sources_agree",
    ] {
        assert_eq!(check(&v, name)["result"], "passed", "{name}: {v}");
    }
    for f in v["fields"].as_array().unwrap() {
        let expected = if f["field"] == "residence" {
            "unknown"
        } else {
            "match"
        };
        assert_eq!(f["result"], expected, "{f}");
    }
    for source in ["qr", "mrz", "chip_dg1", "chip_dg13"] {
        assert_eq!(field(&v, "full_name", source), "match");
    }
    assert_eq!(field(&v, "expiry_date", "chip_dg13"), "match");
    assert_eq!(v["card"]["status"], "valid");
    assert_eq!(v["card"]["expires_on"], "2039-01-01");
    assert_eq!(v["vital_status"], "alive");
    // No register value travels back.
    assert!(!v.to_string().contains("Tràng Tiền"));

    let (st, o) = s.officer(Some(&s.officer), card).await;
    assert_eq!(st, 200, "{o}");
    assert_eq!(o["authenticity"], "authentic");

    let log = s.log();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].service, "card_verify");
    assert_eq!(log[0].caller_org, "bank-a");
    assert_eq!(log[0].person.as_deref(), Some(id.as_str()));
    assert_eq!(log[0].result, ExchangeResult::Served);
    assert_eq!(log[1].caller_org, "register-officer");
    assert_eq!(log[1].end_user.as_deref(), Some("canbo-01"));
    assert_eq!(log[1].purpose, "identity_check");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn card_with_a_name_the_register_does_not_have_is_a_mismatch_on_that_field_only() {
    let s = CardServer::start().await;
    let id = fixture_holder(&s, "Nguyễn Văn Anh");
    let (st, v) = s
        .member(
            "kyc",
            1,
            json!({"qr": qr(&id, "Nguyễn Văn An", "01011999", "Nam", "15062021"), "chip": chip("dg13.bin")}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    // The card itself is genuine: the register differs.
    assert_eq!(v["authenticity"], "authentic", "{v}");
    assert_eq!(field(&v, "full_name", "qr"), "mismatch");
    assert_eq!(field(&v, "full_name", "chip_dg13"), "mismatch");
    assert_eq!(field(&v, "full_name", "chip_dg1"), "mismatch");
    assert_eq!(field(&v, "date_of_birth", "qr"), "match");
    assert_eq!(field(&v, "sex", "chip_dg13"), "match");
    assert_eq!(field(&v, "old_id", "qr"), "match");
    assert_eq!(v["card"]["status"], "valid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_card_dead_holder_and_unknown_card_are_told_apart() {
    let s = CardServer::start().await;
    let dob = date(1990, 3, 2);
    let replaced = s.person(
        7,
        "Trần Thị Bình",
        Sex::Female,
        dob,
        &[
            (
                date(2016, 4, 1),
                Some(date(2030, 3, 2)),
                CardStatus::Replaced,
            ),
            (date(2025, 9, 1), Some(date(2050, 3, 2)), CardStatus::Valid),
        ],
        false,
    );
    let old = qr(&replaced, "Trần Thị Bình", "02031990", "Nữ", "01042016");
    let (st, v) = s.officer(Some(&s.officer), json!({"qr": old})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["card"]["status"], "replaced", "{v}");
    // QR alone proves nothing about authenticity.
    assert_eq!(v["authenticity"], "not_established");
    assert_eq!(field(&v, "issue_date", "qr"), "match");
    let new = qr(&replaced, "Trần Thị Bình", "02031990", "Nữ", "01092025");
    let (_, v) = s.officer(Some(&s.officer), json!({"qr": new})).await;
    assert_eq!(v["card"]["status"], "valid", "{v}");
    let never = qr(&replaced, "Trần Thị Bình", "02031990", "Nữ", "01092024");
    let (_, v) = s.officer(Some(&s.officer), json!({"qr": never})).await;
    assert_eq!(v["card"]["status"], "not_in_register", "{v}");
    assert_eq!(field(&v, "issue_date", "qr"), "unknown");

    let dead = s.person(
        8,
        "Lê Văn Cường",
        Sex::Male,
        date(1950, 7, 7),
        &[(date(2021, 1, 5), None, CardStatus::HolderDeceased)],
        true,
    );
    let (_, v) = s
        .member(
            "kyc",
            1,
            json!({"qr": qr(&dead, "Lê Văn Cường", "07071950", "Nam", "05012021")}),
        )
        .await;
    assert_eq!(v["vital_status"], "dead", "{v}");
    assert_eq!(v["card"]["status"], "holder_deceased", "{v}");
    assert_eq!(field(&v, "full_name", "qr"), "match");

    // An ID nobody holds.
    let nobody = PersonalId::compose("001", Sex::Male, 1980, 999).unwrap();
    let (_, v) = s
        .member(
            "kyc",
            1,
            json!({"qr": qr(&nobody, "Ai Đó", "01011980", "Nam", "01012022")}),
        )
        .await;
    assert_eq!(v["person_found"], false);
    assert_eq!(v["vital_status"], "unknown");
    assert_eq!(v["card"]["status"], "not_in_register");
    assert_eq!(field(&v, "full_name", "qr"), "unknown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cards_issued_under_14_expire_by_the_exchange_ages() {
    // The test clock says 1 March 2026.
    let s = CardServer::start().await;
    // Issued at 6, no printed expiry: valid to the 14th birthday (1 May 2028).
    let young = s.person(
        1,
        "Phạm Minh Châu",
        Sex::Female,
        date(2014, 5, 1),
        &[(date(2020, 6, 1), None, CardStatus::Valid)],
        false,
    );
    // Issued at 5: the 14th birthday (1 May 2025) has passed.
    let expired = s.person(
        2,
        "Phạm Minh Đức",
        Sex::Male,
        date(2011, 5, 1),
        &[(date(2016, 6, 1), None, CardStatus::Valid)],
        false,
    );
    // Issued at 12, within two years before 14: valid to 25 (1 June 2037).
    let grace = s.person(
        3,
        "Phạm Minh Khoa",
        Sex::Male,
        date(2012, 6, 1),
        &[(date(2024, 7, 1), None, CardStatus::Valid)],
        false,
    );
    let cases = [
        (
            young,
            "Phạm Minh Châu",
            "01052014",
            "Nữ",
            "01062020",
            "valid",
            "2028-05-01",
        ),
        (
            expired,
            "Phạm Minh Đức",
            "01052011",
            "Nam",
            "01062016",
            "expired",
            "2025-05-01",
        ),
        (
            grace,
            "Phạm Minh Khoa",
            "01062012",
            "Nam",
            "01072024",
            "valid",
            "2037-06-01",
        ),
    ];
    for (id, name, dob, sex, issued, status, until) in cases {
        let (st, v) = s
            .officer(
                Some(&s.officer),
                json!({"qr": qr(&id, name, dob, sex, issued)}),
            )
            .await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["card"]["status"], status, "{name}: {v}");
        assert_eq!(v["card"]["expires_on"], until, "{name}");
        assert_eq!(v["card"]["age_rule_expires_on"], until, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_chip_data_is_not_authentic_and_not_used_as_card_data() {
    let s = CardServer::start().await;
    fixture_holder(&s, "Nguyễn Văn An");
    let (st, v) = s
        .member("kyc", 1, json!({"chip": chip("dg13_tampered.bin")}))
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["authenticity"], "not_authentic", "{v}");
    assert_eq!(check(&v, "dg13_hash")["result"], "failed");
    assert_eq!(check(&v, "dg13_hash")["code"], "dg.hash_mismatch");
    assert_eq!(check(&v, "dg1_hash")["result"], "passed");
    assert_eq!(check(&v, "sod_signature")["result"], "passed");
    // The altered DG13 is not compared; DG1 (intact) still is.
    assert!(
        !v["fields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["source"] == "chip_dg13")
    );
    assert_eq!(field(&v, "full_name", "chip_dg1"), "match");

    // A QR whose date does not exist fails its check; the card is not authentic.
    let (_, v) = s
        .officer(
            Some(&s.officer),
            json!({"qr": "001099012345||Nguyễn Văn An|30021999|Nam||15062021"}),
        )
        .await;
    assert_eq!(v["authenticity"], "not_authentic");
    assert_eq!(check(&v, "qr_parse")["result"], "failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn card_verification_refusals_are_problems_with_stable_codes() {
    let s = CardServer::start().await;
    fixture_holder(&s, "Nguyễn Văn An");
    let (st, v) = s.member("kyc", 1, json!({})).await;
    assert_eq!((st, v["code"].as_str()), (422, Some("card_input_missing")));
    let (st, v) = s
        .member("kyc", 1, json!({"chip": {"sod": "%%%", "data_groups": {}}}))
        .await;
    assert_eq!((st, v["code"].as_str()), (422, Some("chip_base64_invalid")));
    let (st, v) = s
        .member(
            "kyc",
            1,
            json!({"chip": {"sod": b64("p256_sod.bin"), "data_groups": {"dg99": "AA=="}}}),
        )
        .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (422, Some("chip_data_group_invalid"))
    );
    // A subsystem without the right is refused, and the refusal is logged.
    let (st, v) = s
        .member("other", 2, json!({"qr": qr(&"001099012345".parse().unwrap(), "Nguyễn Văn An", "01011999", "Nam", "15062021")}))
        .await;
    assert_eq!((st, v["code"].as_str()), (403, Some("no_right")), "{v}");
    let log = s.log();
    assert_eq!(log.len(), 1);
    assert!(matches!(log[0].result, ExchangeResult::Refused(_)));
    // Officers need a token and a purpose.
    let (st, v) = s.officer(None, json!({"mrz": fixture_mrz()})).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (401, Some("unauthenticated")),
        "{v}"
    );
    let req = s
        .http
        .post(format!("{}/api/v1/cards/verify", s.base))
        .bearer_auth(&s.officer)
        .json(&json!({"mrz": fixture_mrz()}));
    let (st, v) = s.send(req).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (422, Some("purpose_required")),
        "{v}"
    );
    assert_eq!(s.log().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_pass_verifies_offline_checks_in_once_and_shows_to_org_and_person() {
    use dancu_hub::checkpoint::{PASS_TYPE, PassClaims, PassError, verify_pass};
    let s = CardServer::start().await;
    let id = fixture_holder(&s, "Nguyễn Văn An");
    let issue = |level: u8| {
        let req = s
            .http
            .post(format!("{}/api/hub/v1/checkpoint/pass", s.base))
            .bearer_auth(&s.officer)
            .json(&json!({"person": id.as_str(), "level": level, "photo_hash": "ab".repeat(32)}));
        s.send(req)
    };
    let (st, p) = issue(2).await;
    assert_eq!(st, 200, "{p}");
    let qr = p["qr"].as_str().unwrap().to_owned();
    // The checkpoint verifies offline with the published keys.
    let jwks: Value = s
        .http
        .get(format!("{}/api/hub/v1/jwks", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let claims = verify_pass(&qr, &jwks, s.clock.now()).unwrap();
    assert_eq!(claims.lvl, 2);
    assert!(claims.sub.starts_with("ps_"));
    assert_eq!(claims.ph.as_deref(), Some("ab".repeat(32).as_str()));
    let payload = dancu_eid::oidc::jws::decode_unverified(&qr).unwrap();
    let raw: Value = payload
        .verify(
            &serde_json::from_value(jwks["keys"][0].clone()).unwrap(),
            &[dancu_eid::oidc::jws::Alg::ES256],
        )
        .unwrap();
    assert!(
        !raw.to_string().contains(id.as_str()),
        "no ID number in the pass"
    );
    // Another key's JWKS does not verify it.
    let other = json!({"keys": [Jwk::from_p256(key(9).verifying_key())]});
    assert_eq!(
        verify_pass(&qr, &other, s.clock.now()),
        Err(PassError::BadSignature)
    );

    let door = "/api/hub/v1/checkpoint/check-in";
    let (st, c) = s
        .member_at("kyc", 1, door, json!({"place": "cong-chinh", "pass": qr}))
        .await;
    assert_eq!(st, 200, "{c}");
    assert_eq!(
        (c["org"].as_str(), c["place"].as_str()),
        (Some("bank-a"), Some("cong-chinh"))
    );
    // The same QR again is refused.
    let (st, c) = s
        .member_at("kyc", 1, door, json!({"place": "cong-chinh", "pass": qr}))
        .await;
    assert_eq!(
        (st, c["code"].as_str()),
        (422, Some("pass_replayed")),
        "{c}"
    );
    // A pass signed with another key is refused.
    let now = s.clock.now().timestamp();
    let forged = sign_es256(
        &key(9),
        PASS_TYPE,
        None,
        false,
        &PassClaims {
            sub: claims.sub.clone(),
            lvl: 2,
            jti: "forged".into(),
            iat: now,
            exp: now + 60,
            ph: None,
        },
    )
    .unwrap();
    let (st, c) = s
        .member_at(
            "kyc",
            1,
            door,
            json!({"place": "cong-chinh", "pass": forged}),
        )
        .await;
    assert_eq!(
        (st, c["code"].as_str()),
        (422, Some("pass_signature_invalid")),
        "{c}"
    );
    // An expired pass is refused, offline and by the hub.
    let (_, p) = issue(1).await;
    let late = p["qr"].as_str().unwrap().to_owned();
    s.clock.advance(chrono::Duration::minutes(3));
    assert_eq!(
        verify_pass(&late, &jwks, s.clock.now()),
        Err(PassError::Expired)
    );
    let (st, c) = s
        .member_at("kyc", 1, door, json!({"place": "cong-phu", "pass": late}))
        .await;
    assert_eq!((st, c["code"].as_str()), (422, Some("pass_expired")), "{c}");
    // A subsystem without the right cannot record check-ins.
    let (_, p) = issue(1).await;
    let (st, c) = s
        .member_at("other", 2, door, json!({"place": "x", "pass": p["qr"]}))
        .await;
    assert_eq!((st, c["code"].as_str()), (403, Some("no_right")), "{c}");

    // The organisation sees its check-ins (a pseudonym, never the ID); the person sees theirs.
    let (st, list) = s
        .member_at("kyc", 1, "/api/hub/v1/checkpoint/check-ins", json!({}))
        .await;
    assert_eq!(st, 200, "{list}");
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["place"], "cong-chinh");
    assert!(!list.to_string().contains(id.as_str()));
    let req = s
        .http
        .post(format!("{}/api/hub/v1/checkpoint/person", s.base))
        .bearer_auth(&s.officer)
        .json(&json!({"person": id.as_str()}));
    let (st, mine) = s.send(req).await;
    assert_eq!(st, 200, "{mine}");
    assert_eq!(mine.as_array().unwrap().len(), 1, "{mine}");
    assert_eq!(
        (mine[0]["org"].as_str(), mine[0]["place"].as_str()),
        (Some("bank-a"), Some("cong-chinh"))
    );
}
