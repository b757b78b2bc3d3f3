//! The officer desk's command forms over HTTP: a temporary residence refused in place, then
//! reported stale after a concurrent change, then recorded; validation as you type; e-ID locks
//! from the desk; and a citizen's correction request from the citizen portal to the desk's task
//! list, applied through the correction form, and a second one rejected.

use crate::common::*;
use crate::oidc::{citizen, post_json};
use crate::portal::{Browser, Resp, hidden, login};
use dancu_domain::officer::{Jurisdiction, Officer, Role};
use serde_json::json;

async fn post(b: &mut Browser, path: &str, form: &[(&str, &str)]) -> Resp {
    b.post(path, form).await
}

/// The text of the element with this id (up to the next tag).
fn text_of(body: &str, id: &str) -> String {
    let key = format!("id=\"{id}\">");
    let at = body
        .find(&key)
        .unwrap_or_else(|| panic!("no #{id} in {body}"))
        + key.len();
    body[at..at + body[at..].find('<').unwrap()].to_owned()
}

/// The error shown next to a field (its `data-code`), if any.
fn field_error(body: &str, field: &str) -> Option<String> {
    let key = format!("id=\"err-{field}\" aria-live=\"polite\">");
    let at = body.find(&key)? + key.len();
    let rest = &body[at..];
    let rest = rest.strip_prefix("<p class=\"err\" data-code=\"")?;
    Some(rest[..rest.find('"')?].to_owned())
}

async fn send(b: &mut Browser, form: Vec<(&'static str, String)>) -> Resp {
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    b.post("/portal/desk/form", &pairs).await
}

/// Validation as you type: one field checked, the form along, as htmx sends it.
async fn check(b: &mut Browser, csrf: &str, name: &str, value: &str) -> Resp {
    let body = format!("csrf={csrf}&kind=temporary&from=2026-03-01&{name}={value}");
    let req = b
        .http
        .post(b.url("/portal/desk/check"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("hx-request", "true")
        .header("hx-trigger-name", name)
        .body(body);
    b.send(req).await
}

#[tokio::test]
async fn desk_forms_report_errors_in_place_and_concurrent_changes_and_handle_correction_requests() {
    let s = TestServer::start_with_idp().await;
    let person = citizen(&s, 140, "0912340140").await;
    // The officer: a supervisor of Ba Đình, logged in with their own level-2 e-ID account.
    let me = citizen(&s, 141, "0987000141").await;
    let raise = json!({"id": me, "place": "Công an phường Ba Đình", "face_checked": true, "fingerprints_checked": true});
    let (st, v) = post_json(&s, Some(&s.registrar), "/api/v1/eid/level2", raise).await;
    assert_eq!(st, 200, "{v}");
    let store = s.store.clone();
    let me_id = dancu_domain::PersonalId::parse(&me).unwrap();
    off_runtime(|| {
        store
            .add_officer(&dancu_store::OfficerRecord {
                officer: Officer {
                    id: "sup-1".into(),
                    name: "Lãnh đạo Ba Đình".into(),
                    role: Role::Supervisor,
                    jurisdiction: Jurisdiction::Commune(BA_DINH.into()),
                    person: Some(me_id),
                },
                token_hash: "unused".into(),
                created_at: chrono::Utc::now(),
            })
            .unwrap()
    });
    let mut b = Browser::new(&s);
    let r = login(&mut b, &s, "officer", &me, "+84987000141").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let csrf = hidden(&r.body, "csrf");
    let purpose = "dang-ky-cu-tru";

    // The person page offers the forms and shows the e-ID account.
    let r = post(
        &mut b,
        "/portal/desk/person",
        &[("csrf", &csrf), ("id", &person), ("purpose", purpose)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    for k in ["temporary", "correction", "eid-lock", "household-create"] {
        assert!(r.body.contains(&format!("value=\"{k}\"")), "{k}");
    }
    assert!(text_of(&r.body, "eid").contains("Mức 1"), "{}", r.body);
    // The residence the record was imported with opens the residence history.
    let at = r
        .body
        .find("id=\"residences\"")
        .expect("a residence history");
    assert!(r.body[at..].contains("Số 1 phố Đội Cấn"), "{}", r.body);

    // The temporary-residence form, pre-filled: the officer's commune, today, the version.
    let r = post(
        &mut b,
        "/portal/desk/form",
        &[
            ("csrf", &csrf),
            ("kind", "temporary"),
            ("step", "form"),
            ("id", &person),
            ("purpose", purpose),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let version = hidden(&r.body, "version");
    let idem = hidden(&r.body, "idem");
    assert!(
        r.body.contains(&format!(
            "id=\"commune\" name=\"commune\" type=\"text\" value=\"{BA_DINH}\""
        )),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("value=\"2026-03-01\""),
        "today is the start"
    );
    let submit = |version: String, until: &'static str, commune: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("kind", "temporary".to_owned()),
            ("id", person.clone()),
            ("purpose", purpose.to_owned()),
            ("version", version),
            ("hversion", String::new()),
            ("idem", idem.clone()),
            ("request", String::new()),
            ("commune", commune.to_owned()),
            ("detail", "Số 3 ngõ 5 phố Kim Mã".to_owned()),
            ("from", "2026-03-01".to_owned()),
            ("until", until.to_owned()),
            ("reason", "Thuê nhà".to_owned()),
            ("document_ref", "HĐ-2026-07".to_owned()),
        ]
    };
    // The end before the start, and an unknown commune: refused next to the fields.
    let r = send(&mut b, submit(version.clone(), "2026-02-01", "99999")).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(
        field_error(&r.body, "until").as_deref(),
        Some("dates_inconsistent")
    );
    assert_eq!(
        field_error(&r.body, "commune").as_deref(),
        Some("address_commune_unknown")
    );
    assert!(
        r.body.contains("value=\"Số 3 ngõ 5 phố Kim Mã\""),
        "what was typed stays"
    );
    // A refusal of the register itself, in place: outside the officer's commune.
    let r = send(&mut b, submit(version.clone(), "2026-12-31", NGOC_HA)).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(
        field_error(&r.body, "commune").as_deref(),
        Some("outside_jurisdiction")
    );

    // Validation as you type: one field, the fragment only.
    let r = check(&mut b, &csrf, "commune", "12").await;
    assert_eq!(r.status, 200);
    assert!(
        r.body.contains("address_commune_code_malformed") && !r.body.contains("<html"),
        "{}",
        r.body
    );
    let r = check(&mut b, &csrf, "commune", BA_DINH).await;
    assert_eq!(r.body.trim(), "", "an acceptable value clears the message");
    let r = check(&mut b, &csrf, "until", "2026-02-30").await;
    assert!(r.body.contains("date_impossible"), "{}", r.body);
    let r = check(&mut b, &csrf, "given", "Khang2").await;
    assert!(
        r.body.contains("data-code=\"name_bad_character\""),
        "{}",
        r.body
    );
    let r = check(&mut b, &csrf, "date_of_birth", "2030-01-01").await;
    assert!(r.body.contains("date_in_future"), "{}", r.body);
    let r = check(&mut b, &csrf, "until", "2026-02-01").await;
    assert!(r.body.contains("dates_inconsistent"), "{}", r.body);

    // Meanwhile someone else changes the record (a stay notified through the JSON API).
    let (st, v) = post_json(
        &s,
        Some(&s.national),
        "/api/v1/stays",
        json!({"person": person, "expected_version": version.parse::<u64>().unwrap(),
            "address": address_json(BA_DINH, "Khách sạn Hoà Bình", "2026-02-20"),
            "from": "2026-02-20", "until": "2026-02-22", "host": "Khách sạn Hoà Bình"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let r = send(&mut b, submit(version.clone(), "2026-12-31", BA_DINH)).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("data-code=\"stale_version\""), "{}", r.body);
    assert!(
        r.body.contains("id=\"current\""),
        "the record as it now stands is shown"
    );
    let newer = hidden(&r.body, "version");
    assert_eq!(
        newer.parse::<u64>().unwrap(),
        version.parse::<u64>().unwrap() + 1
    );
    assert!(
        r.body.contains("value=\"2026-12-31\""),
        "what was typed stays"
    );
    let history = s.history(&person).await;
    assert!(
        !history
            .iter()
            .any(|e| e["kind"] == "temporary_residence_registered"),
        "nothing was overwritten"
    );
    // Reviewed and submitted again: recorded, and shown on the person page.
    let r = send(&mut b, submit(newer.clone(), "2026-12-31", BA_DINH)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("data-code=\"recorded\""), "{}", r.body);
    assert!(
        r.body.contains("temporary_residence_registered"),
        "{}",
        r.body
    );
    assert!(r.body.contains("id=\"residences\""), "{}", r.body);
    assert!(r.body.contains("Số 3 ngõ 5 phố Kim Mã"), "{}", r.body);
    // A double submission acts once (the form's idempotency key).
    let r = send(&mut b, submit(newer, "2026-12-31", BA_DINH)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let n = s
        .history(&person)
        .await
        .iter()
        .filter(|e| e["kind"] == "temporary_residence_registered")
        .count();
    assert_eq!(n, 1);

    // e-ID from the desk: lock with a legal reason, then unlock.
    for (kind, state) in [
        ("eid-lock", "đang bị khóa"),
        ("eid-unlock", "đang hoạt động"),
    ] {
        let r = post(
            &mut b,
            "/portal/desk/form",
            &[
                ("csrf", &csrf),
                ("kind", kind),
                ("id", &person),
                ("purpose", purpose),
                ("version", "0"),
                ("lock_reason", "holder_request"),
                ("decision_ref", ""),
            ],
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(text_of(&r.body, "eid").contains(state), "{}", r.body);
    }

    // The citizen asks for a correction in the citizen portal.
    let mut c = Browser::new(&s);
    let r = login(&mut c, &s, "citizen", &person, "+84912340140").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ccsrf = hidden(&r.body, "csrf");
    let r = c.get("/portal/me/requests").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = c
        .post(
            "/portal/me/requests",
            &[
                ("csrf", &ccsrf),
                ("field", "nationality"),
                ("proposed", "vn"),
                ("explanation", "Sai quốc tịch"),
            ],
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("correction_bad_value"), "{}", r.body);
    let r = c
        .post(
            "/portal/me/requests",
            &[
                ("csrf", &ccsrf),
                ("field", "religion"),
                ("proposed", "Phật giáo"),
                (
                    "explanation",
                    "Tôi theo đạo Phật từ nhỏ; giấy xác nhận của chùa kèm theo",
                ),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("request_sent") && r.body.contains("data-status=\"open\""));

    // It reaches the desk as a task for the officer of the person's commune.
    let r = b.get("/portal/desk/tasks").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains(&person) && r.body.contains("Phật giáo"),
        "{}",
        r.body
    );
    let log = off_runtime(|| {
        s.store
            .access_log(&dancu_domain::PersonalId::parse(&person).unwrap(), 50)
            .unwrap()
    });
    assert!(
        log.iter().any(|e| e.action == "correction_tasks"
            && e.actor == "sup-1"
            && e.purpose.contains("dieu-chinh-theo-yeu-cau")),
        "listing the tasks is logged: {log:?}"
    );
    let request = hidden(&r.body, "request");
    let r = post(
        &mut b,
        "/portal/desk/task",
        &[("csrf", &csrf), ("request", &request)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(text_of(&r.body, "proposed"), "Phật giáo");
    // Applied through the correction form, pre-filled with the request.
    let r = post(
        &mut b,
        "/portal/desk/form",
        &[
            ("csrf", &csrf),
            ("kind", "correction"),
            ("step", "form"),
            ("id", &person),
            ("purpose", "dieu-chinh-theo-yeu-cau"),
            ("request", &request),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("<option value=\"religion\" selected>"),
        "{}",
        r.body
    );
    assert!(r.body.contains("value=\"Phật giáo\""), "{}", r.body);
    let version = hidden(&r.body, "version");
    let idem = hidden(&r.body, "idem");
    let correction = |legal: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("kind", "correction".to_owned()),
            ("id", person.clone()),
            ("purpose", "dieu-chinh-theo-yeu-cau".to_owned()),
            ("version", version.clone()),
            ("hversion", String::new()),
            ("idem", idem.clone()),
            ("request", request.clone()),
            ("field", "religion".to_owned()),
            ("value", "Phật giáo".to_owned()),
            ("reason", format!("Theo yêu cầu của công dân {request}")),
            ("legal_basis", legal.to_owned()),
            ("document_ref", String::new()),
        ]
    };
    // The legal basis is required.
    let r = send(&mut b, correction("")).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(
        field_error(&r.body, "legal_basis").as_deref(),
        Some("field_required")
    );
    let r = send(&mut b, correction("Điều 6 Nghị định 70/2024/NĐ-CP")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("field_corrected") && r.body.contains("Phật giáo"),
        "{}",
        r.body
    );
    let p = s.get_person(&person).await;
    assert_eq!(p["religion"], "Phật giáo");
    let r = b.get("/portal/desk/tasks").await;
    assert!(
        r.body.contains("id=\"no-tasks\""),
        "the task is closed: {}",
        r.body
    );
    let r = c.get("/portal/me/requests").await;
    assert!(r.body.contains("data-status=\"applied\""), "{}", r.body);

    // A second request, rejected with a reason the citizen sees.
    let r = c
        .post(
            "/portal/me/requests",
            &[
                ("csrf", &ccsrf),
                ("field", "ethnicity"),
                ("proposed", "Tày"),
                ("explanation", "Mẹ tôi là người Tày"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = b.get("/portal/desk/tasks").await;
    let request = hidden(&r.body, "request");
    let r = post(
        &mut b,
        "/portal/desk/task/reject",
        &[("csrf", &csrf), ("request", &request), ("reason", "")],
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("rejection_reason_required"), "{}", r.body);
    let r = post(
        &mut b,
        "/portal/desk/task/reject",
        &[
            ("csrf", &csrf),
            ("request", &request),
            (
                "reason",
                "Dân tộc xác định theo cha mẹ khi khai sinh; cần giấy tờ",
            ),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("request_rejected"), "{}", r.body);
    let r = c.get("/portal/me/requests").await;
    assert!(
        r.body.contains("data-status=\"rejected\"") && r.body.contains("cần giấy tờ"),
        "{}",
        r.body
    );
    // Closed already: a second rejection is refused.
    let r = post(
        &mut b,
        "/portal/desk/task/reject",
        &[("csrf", &csrf), ("request", &request), ("reason", "again")],
    )
    .await;
    assert!(r.body.contains("request_closed"), "{}", r.body);
    // The officer's reads for the request are in the citizen's data tracker, with the purpose.
    let r = c.get("/portal/me/tracker").await;
    assert!(
        r.body.contains("sup-1") && r.body.contains("dieu-chinh-theo-yeu-cau"),
        "{}",
        r.body
    );
}

/// Opens a form from the person page (pre-filled: version, household version, idempotency
/// key), then submits it with `fields`.
async fn run_form(
    b: &mut Browser,
    csrf: &str,
    kind: &str,
    person: &str,
    fields: &[(&str, &str)],
) -> Resp {
    let purpose = "dang-ky-cu-tru";
    let r = b
        .post(
            "/portal/desk/form",
            &[
                ("csrf", csrf),
                ("kind", kind),
                ("step", "form"),
                ("id", person),
                ("purpose", purpose),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{kind}: {}", r.body);
    let (version, hversion, idem) = (
        hidden(&r.body, "version"),
        hidden(&r.body, "hversion"),
        hidden(&r.body, "idem"),
    );
    let mut form = vec![
        ("csrf", csrf),
        ("kind", kind),
        ("id", person),
        ("purpose", purpose),
        ("version", &version),
        ("hversion", &hversion),
        ("idem", &idem),
    ];
    form.extend_from_slice(fields);
    b.post("/portal/desk/form", &form).await
}

fn recorded(kind: &str, r: &Resp) {
    assert_eq!(r.status, 200, "{kind}: {}", r.body);
    assert!(
        r.body.contains("data-code=\"recorded\""),
        "{kind}: {}",
        r.body
    );
}

#[tokio::test]
async fn every_desk_form_runs_the_registers_command() {
    use dancu_domain::person::Sex;
    let s = TestServer::start_with_idp().await;
    let me = citizen(&s, 141, "0987000141").await;
    let raise = json!({"id": me, "place": "Công an phường Ba Đình", "face_checked": true, "fingerprints_checked": true});
    let (st, v) = post_json(&s, Some(&s.registrar), "/api/v1/eid/level2", raise).await;
    assert_eq!(st, 200, "{v}");
    let store = s.store.clone();
    let me_id = dancu_domain::PersonalId::parse(&me).unwrap();
    off_runtime(|| {
        store
            .add_officer(&dancu_store::OfficerRecord {
                officer: Officer {
                    id: "sup-2".into(),
                    name: "Lãnh đạo".into(),
                    role: Role::Supervisor,
                    jurisdiction: Jurisdiction::Commune(BA_DINH.into()),
                    person: Some(me_id),
                },
                token_hash: "unused".into(),
                created_at: chrono::Utc::now(),
            })
            .unwrap()
    });
    let a = s.adult(150, "Trần Văn An", Sex::Male, 1985, BA_DINH);
    let bb = s.adult(151, "Lê Thị Bình", Sex::Female, 1988, BA_DINH);
    let c = s.adult(152, "Trần Văn Cường", Sex::Male, 2000, BA_DINH);
    let holder = citizen(&s, 153, "0912340153").await;
    let mut b = Browser::new(&s);
    let r = login(&mut b, &s, "officer", &me, "+84987000141").await;
    let csrf = hidden(&r.body, "csrf");

    let r = run_form(
        &mut b,
        &csrf,
        "household-create",
        &a,
        &[
            ("commune", BA_DINH),
            ("detail", "Số 5 phố Kim Mã"),
            ("from", "2026-03-01"),
        ],
    )
    .await;
    recorded("household-create", &r);
    let hid = s.get_person(&a).await["household"]["household_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The head's page adds a member by ID; a person without a household joins by number.
    let r = run_form(
        &mut b,
        &csrf,
        "household-add",
        &a,
        &[("member", &bb), ("relationship", "spouse")],
    )
    .await;
    recorded("household-add", &r);
    let r = run_form(
        &mut b,
        &csrf,
        "household-add",
        &c,
        &[("household", &hid), ("relationship", "child")],
    )
    .await;
    recorded("household-join", &r);
    let r = run_form(
        &mut b,
        &csrf,
        "marriage",
        &a,
        &[("spouse", &bb), ("on", "2026-02-01")],
    )
    .await;
    recorded("marriage", &r);
    assert_eq!(s.get_person(&bb).await["marital_status"], "married");
    // A marriage to someone married already is refused next to the spouse field.
    let r = run_form(
        &mut b,
        &csrf,
        "marriage",
        &c,
        &[("spouse", &bb), ("on", "2026-02-01")],
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(
        field_error(&r.body, "spouse").as_deref(),
        Some("already_married")
    );
    // The spouse becomes head: every other member's relation to her, pre-guessed, reviewed.
    let r = run_form(&mut b, &csrf, "household-head", &bb, &[]).await;
    assert_eq!(r.status, 422, "relations are needed: {}", r.body);
    let (rel_a, rel_c) = (format!("rel_{a}"), format!("rel_{c}"));
    let r = run_form(
        &mut b,
        &csrf,
        "household-head",
        &bb,
        &[(&rel_a, "spouse"), (&rel_c, "child")],
    )
    .await;
    recorded("household-head", &r);
    let h = s.get_person(&bb).await;
    assert_eq!(h["household"]["relationship"], "head", "{h}");
    // The son splits off into a household of his own; his father stays.
    let r = run_form(
        &mut b,
        &csrf,
        "household-split",
        &c,
        &[
            ("commune", BA_DINH),
            ("detail", "Số 8 ngõ 3 phố Đội Cấn"),
            ("from", "2026-03-01"),
            (&rel_a, ""),
        ],
    )
    .await;
    recorded("household-split", &r);
    let cp = s.get_person(&c).await;
    assert_eq!(cp["household"]["relationship"], "head", "{cp}");
    assert_ne!(cp["household"]["household_id"], hid.as_str());
    let r = run_form(
        &mut b,
        &csrf,
        "permanent",
        &c,
        &[
            ("commune", BA_DINH),
            ("detail", "Số 8 ngõ 3 phố Đội Cấn"),
            ("from", "2026-03-01"),
        ],
    )
    .await;
    recorded("permanent", &r);
    let r = run_form(
        &mut b,
        &csrf,
        "stay",
        &a,
        &[
            ("commune", BA_DINH),
            ("detail", "Nhà nghỉ Hoa Sen"),
            ("from", "2026-02-10"),
            ("until", "2026-02-12"),
            ("host", "Nhà nghỉ Hoa Sen"),
        ],
    )
    .await;
    recorded("stay", &r);
    let r = run_form(
        &mut b,
        &csrf,
        "divorce",
        &a,
        &[("on", "2026-02-20"), ("document_ref", "BA-12/2026")],
    )
    .await;
    recorded("divorce", &r);
    assert_eq!(s.get_person(&bb).await["marital_status"], "divorced");
    let r = run_form(&mut b, &csrf, "death", &a, &[("date_of_death", "2026-02")]).await;
    recorded("death", &r);
    assert!(
        !r.body.contains("value=\"temporary\""),
        "no residence forms for the dead"
    );
    assert!(r.body.contains("death_registered"), "{}", r.body);
    // e-ID: level 2 needs both in-person checks.
    let r = run_form(
        &mut b,
        &csrf,
        "eid-level2",
        &holder,
        &[("place", "Công an phường Ba Đình"), ("face_checked", "yes")],
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.body);
    let r = run_form(
        &mut b,
        &csrf,
        "eid-level2",
        &holder,
        &[
            ("place", "Công an phường Ba Đình"),
            ("face_checked", "yes"),
            ("fingerprints_checked", "yes"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(text_of(&r.body, "eid").contains("Mức 2"), "{}", r.body);
}

/// The person page shows what sectoral registers linked to the person through the hub, and
/// the desk's read of it goes into the access log with the purpose chosen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desk_person_page_shows_records_linked_through_the_hub() {
    let s = TestServer::start_with_idp_and_hub(crate::account::enriching_hub()).await;
    let person = citizen(&s, 150, "0912340150").await;
    let me = citizen(&s, 151, "0987000151").await;
    let raise = json!({"id": me, "place": "Công an phường Ba Đình", "face_checked": true, "fingerprints_checked": true});
    let (st, v) = post_json(&s, Some(&s.registrar), "/api/v1/eid/level2", raise).await;
    assert_eq!(st, 200, "{v}");
    let store = s.store.clone();
    let me_id = dancu_domain::PersonalId::parse(&me).unwrap();
    let hub = s.hub.clone().unwrap();
    let pid = person.clone();
    off_runtime(move || {
        store
            .add_officer(&dancu_store::OfficerRecord {
                officer: Officer {
                    id: "reg-linked".into(),
                    name: "Cán bộ Ba Đình".into(),
                    role: Role::Registrar,
                    jurisdiction: Jurisdiction::Commune(BA_DINH.into()),
                    person: Some(me_id),
                },
                token_hash: "unused".into(),
                created_at: chrono::Utc::now(),
            })
            .unwrap();
        let who = dancu_hub::service::Client {
            org: "bhxh".into(),
            subsystem: "registry".into(),
            key_not_after: None,
            scope: None,
        };
        let meta = dancu_hub::service::CallMeta {
            purpose: "insurance_registry".into(),
            ..Default::default()
        };
        let sub: dancu_hub::enrich::Submission = serde_json::from_value(json!({
            "id": pid, "kind": "health_insurance_number", "value": "DN4010123450150",
            "attributes": {}, "source_ref": "BHXH-2026-150",
        }))
        .unwrap();
        hub.enrich(&who, &meta, &sub).unwrap();
    });
    let mut b = Browser::new(&s);
    let r = login(&mut b, &s, "officer", &me, "+84987000151").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let csrf = hidden(&r.body, "csrf");
    let r = post(
        &mut b,
        "/portal/desk/person",
        &[
            ("csrf", &csrf),
            ("id", &person),
            ("purpose", "dang-ky-cu-tru"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let at = r
        .body
        .find("id=\"linked\"")
        .expect("a table of linked records");
    let linked = &r.body[at..];
    assert!(linked.contains("DN4010123450150"), "{}", r.body);
    assert!(
        linked.contains("BHXH-2026-150") || linked.contains("bhxh"),
        "{}",
        r.body
    );
    // The read is in the person's access log, by this officer, with the purpose chosen.
    let store = s.store.clone();
    let log = off_runtime(move || {
        store
            .access_log(&dancu_domain::PersonalId::parse(&person).unwrap(), 50)
            .unwrap()
    });
    assert!(
        log.iter()
            .any(|e| e.actor == "reg-linked" && e.purpose.contains("dang-ky-cu-tru")),
        "{log:?}"
    );
}
