//! The officer API end to end: every command's happy path, the refusals, history and as-of.

use crate::common::*;
use dancu_domain::person::Sex;
use serde_json::{Value, json};

async fn born(s: &TestServer, name: &str, sex: &str) -> Value {
    let (status, v) = s
        .post(
            &s.national,
            "/api/v1/births",
            birth(name, sex, "2026-02-20"),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn birth_assigns_an_id_that_encodes_place_sex_and_year() {
    let s = TestServer::start().await;
    let v = born(&s, "Nguyễn Thị Minh Anh", "female").await;
    let id = v["id"].as_str().unwrap();
    assert_eq!(&id[..3], "001", "Hà Nội place code: {id}");
    assert_eq!(&id[3..4], "3", "female born 2000-2099");
    assert_eq!(&id[4..6], "26");
    assert_eq!(v["version"], 1);
    assert_eq!(v["name"]["given"], "Anh");
    let p = s.get_person(id).await;
    assert_eq!(p, v);
    let h = s.history(id).await;
    assert_eq!(h.len(), 1);
    assert_eq!(h[0]["kind"], "birth_registered");
    assert_eq!(h[0]["meta"]["actor"], "national");
    assert_eq!(h[0]["meta"]["legal_basis"], "Luật Hộ tịch 2014, Điều 16");
    assert_eq!(h[0]["meta"]["document_ref"], "GCS-2026-0001");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_births_never_share_an_id() {
    let s = std::sync::Arc::new(TestServer::start().await);
    let mut tasks = Vec::new();
    for i in 0..40 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let (st, v) = s
                .post(
                    &s.national,
                    "/api/v1/births",
                    birth(
                        &format!("Trần Văn Bình {}", ["An", "Bảo", "Cường", "Dũng"][i % 4]),
                        "male",
                        "2026-01-15",
                    ),
                )
                .await;
            assert_eq!(st, 201, "{v}");
            v["id"].as_str().unwrap().to_owned()
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn birth_refusals_name_their_rule() {
    let s = TestServer::start().await;
    let mut b = birth("Lê Văn Cường", "male", "2026-02-20");
    b["registration_commune"] = json!("99999");
    let (st, v) = s.post(&s.national, "/api/v1/births", b).await;
    assert_eq!((st, v["code"].as_str().unwrap()), (422, "unknown_commune"));
    let (st, v) = s
        .post(
            &s.national,
            "/api/v1/births",
            birth("Lê Văn Cường", "male", "2026-12-20"),
        )
        .await;
    assert_eq!((st, v["code"].as_str().unwrap()), (422, "date_in_future"));
    let (st, v) = s
        .post(
            &s.national,
            "/api/v1/births",
            birth("Lê Văn 3", "male", "2026-02-20"),
        )
        .await;
    assert_eq!((st, v["code"].as_str().unwrap()), (422, "invalid_body"));
    let mut b = birth("Lê Văn Cường", "male", "2026-02-20");
    b["registration_commune"] = json!(NGOC_HA);
    let (st, v) = s.post(&s.commune, "/api/v1/births", b).await;
    assert_eq!(
        (st, v["code"].as_str().unwrap()),
        (403, "outside_jurisdiction")
    );
    let (st, v) = s
        .post(
            &s.viewer,
            "/api/v1/births",
            birth("Lê Văn Cường", "male", "2026-02-20"),
        )
        .await;
    assert_eq!(
        (st, v["code"].as_str().unwrap()),
        (403, "role_cannot_write")
    );
    let (st, v) = s
        .post(
            "not-a-token",
            "/api/v1/births",
            birth("Lê Văn Cường", "male", "2026-02-20"),
        )
        .await;
    assert_eq!((st, v["code"].as_str().unwrap()), (401, "unauthenticated"));
    assert_eq!(
        off_runtime(|| s.store.count_people().unwrap()),
        0,
        "refusals change nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_ids_are_refused_with_the_failed_rule() {
    let s = TestServer::start().await;
    for (id, code) in [
        ("12345", "id_length"),
        ("00109901234x", "id_not_digit"),
        ("003099012345", "id_unknown_place"),
    ] {
        let (st, v) = s
            .post(&s.national, "/api/v1/persons/get", json!({"id": id}))
            .await;
        assert_eq!(st, 422, "{v}");
        assert!(
            v["message_en"].as_str().unwrap().contains(match code {
                "id_length" => "12 digits",
                "id_not_digit" => "only digits",
                _ => "place code",
            }),
            "{v}"
        );
    }
    let (st, v) = s
        .post(
            &s.national,
            "/api/v1/persons/get",
            json!({"id": "001099012345"}),
        )
        .await;
    assert_eq!((st, v["code"].as_str().unwrap()), (404, "not_found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_need_a_purpose_and_are_logged() {
    let s = TestServer::start().await;
    let id = s.adult(1, "Phạm Văn Đồng", Sex::Male, 1980, BA_DINH);
    let resp = s
        .http
        .post(format!("{}/api/v1/persons/get", s.base))
        .bearer_auth(&s.national)
        .json(&json!({"id": id}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 422);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["code"], "purpose_required");
    s.get_person(&id).await;
    let (st, log) = s
        .post_with(
            &s.commune,
            "/api/v1/persons/access-log",
            json!({"id": id}),
            &[("x-purpose", "kiểm tra hồ sơ")],
        )
        .await;
    assert_eq!(st, 200, "{log}");
    let log = log.as_array().unwrap();
    assert!(
        log.iter().any(|e| e["actor"] == "national"
            && e["purpose"] == "integration test"
            && e["action"] == "record"),
        "{log:?}"
    );
}

/// A body over the API's limit is refused as problem+json; a body sent in several chunks is
/// read whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_too_large_are_refused_and_chunked_ones_read_whole() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::start().await;
    let id = s.adult(1, "Phạm Văn Đồng", Sex::Male, 1980, BA_DINH);
    let padding = "x".repeat(300 * 1024);
    let (st, v) = s
        .post(
            &s.national,
            "/api/v1/persons/get",
            json!({"id": id, "padding": padding}),
        )
        .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (413, Some("body_too_large")),
        "{v}"
    );

    // Chunked transfer, each chunk in its own write with a pause between them, so that the
    // server sees the body arrive in pieces.
    let addr = s.base.trim_start_matches("http://").to_owned();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    conn.set_nodelay(true).unwrap();
    let head = format!(
        "POST /api/v1/persons/get HTTP/1.1\r\nhost: t\r\nauthorization: Bearer {}\r\n\
         x-purpose: test\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n",
        s.national
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let body = format!(r#"{{"id": "{id}"}}"#);
    for piece in [&body[..3], &body[3..9], &body[9..]] {
        conn.write_all(format!("{:x}\r\n{piece}\r\n", piece.len()).as_bytes())
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }
    conn.write_all(b"0\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(&format!(r#""id":"{id}""#)), "{answer}");
}

/// A route called with a method it does not take answers problem+json and names the methods
/// it does take; so does a path that does not decode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_method_is_problem_json_with_the_allowed_ones() {
    let s = TestServer::start().await;
    let resp = s
        .http
        .get(format!("{}/api/v1/persons/get", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    assert_eq!(header("allow").as_deref(), Some("POST"));
    assert_eq!(
        header("content-type").as_deref(),
        Some("application/problem+json")
    );
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["code"], "method_not_allowed");
    assert!(v["message_vi"].as_str().is_some_and(|m| !m.is_empty()));

    // A path parameter that does not decode is problem+json too.
    let resp = s
        .http
        .get(format!("{}/api/hub/v1/batch/jobs/%FF", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["code"], "invalid_path");
}

/// Many reads at once (on PostgreSQL they are answered together, several IDs per query): each
/// gets the answer for its own ID — the record, 404 for an unknown ID, 403 outside the
/// officer's commune — and exactly the records released are in the access log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reads_each_get_their_own_answer_and_are_logged() {
    let s = std::sync::Arc::new(TestServer::start().await);
    let inside: Vec<String> = (0..5)
        .map(|n| s.adult(20 + n, "Lê Văn Hưu", Sex::Male, 1970 + n as i32, BA_DINH))
        .collect();
    let outside = s.adult(30, "Lê Thị Riêng", Sex::Female, 1975, NGOC_HA);
    let missing: Vec<String> = (0..3).map(|n| format!("00109901234{n}")).collect();
    let mut asked: Vec<String> = Vec::new();
    for round in 0..8 {
        asked.extend(inside.iter().skip(round % 5).cloned());
        asked.push(outside.clone());
        asked.push(missing[round % 3].clone());
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (n, id) in asked.iter().cloned().enumerate() {
        let s = s.clone();
        tasks.spawn(async move {
            // Each read gives its own purpose, so the log shows which reads were recorded.
            let resp = s
                .http
                .post(format!("{}/api/v1/persons/get", s.base))
                .bearer_auth(&s.commune)
                .header("x-purpose", format!("read {n}"))
                .json(&json!({ "id": id }))
                .send()
                .await
                .unwrap();
            let st = resp.status().as_u16();
            let v: Value = resp.json().await.unwrap();
            (n, id, st, v)
        });
    }
    let mut released = std::collections::BTreeMap::<String, Vec<String>>::new();
    while let Some(done) = tasks.join_next().await {
        let (n, id, st, v) = done.unwrap();
        if inside.contains(&id) {
            assert_eq!((st, v["id"].as_str()), (200, Some(id.as_str())), "{v}");
            released.entry(id).or_default().push(format!("read {n}"));
        } else if id == outside {
            assert_eq!(
                (st, v["code"].as_str()),
                (403, Some("outside_jurisdiction"))
            );
        } else {
            assert_eq!((st, v["code"].as_str()), (404, Some("not_found")), "{id}");
        }
    }
    assert_eq!(released.len(), inside.len());
    for id in inside.iter().chain([&outside]) {
        let pid: dancu_domain::PersonalId = id.parse().unwrap();
        let store = s.store.clone();
        let log = off_runtime(move || store.access_log(&pid, 1000).unwrap());
        let mut purposes: Vec<String> = log
            .iter()
            .filter(|e| e.actor == "badinh" && e.action == "record")
            .map(|e| e.purpose.clone())
            .collect();
        purposes.sort();
        let mut want = released.get(id).cloned().unwrap_or_default();
        want.sort();
        assert_eq!(purposes, want, "access log of {id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jurisdiction_limits_reads_and_writes() {
    let s = TestServer::start().await;
    let inside = s.adult(2, "Hoàng Văn Thụ", Sex::Male, 1985, BA_DINH);
    let outside = s.adult(3, "Võ Thị Sáu", Sex::Female, 1987, NGOC_HA);
    let (st, _) = s
        .post(&s.commune, "/api/v1/persons/get", json!({"id": inside}))
        .await;
    assert_eq!(st, 200);
    let (st, v) = s
        .post(&s.commune, "/api/v1/persons/get", json!({"id": outside}))
        .await;
    assert_eq!(
        (st, v["code"].as_str().unwrap()),
        (403, "outside_jurisdiction")
    );
    let (st, v) = s
        .post(&s.commune, "/api/v1/absences", json!({"person": outside, "expected_version": 1, "from": "2026-03-01", "until": "2026-04-01", "destination": "Đà Nẵng", "absence_reason": "công tác"}))
        .await;
    assert_eq!(
        (st, v["code"].as_str().unwrap()),
        (403, "outside_jurisdiction")
    );
    // A commune officer's search only sees their commune.
    let (st, v) = s
        .post(
            &s.commune,
            "/api/v1/persons/search",
            json!({"name": "vo thi sau"}),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(v["people"].as_array().unwrap().len(), 0);
    let (_, v) = s
        .post(
            &s.national,
            "/api/v1/persons/search",
            json!({"name": "vo thi sau"}),
        )
        .await;
    assert_eq!(v["people"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_ignores_accents_and_tone_placement() {
    let s = TestServer::start().await;
    s.adult(10, "Nguyễn Văn Hòa", Sex::Male, 1990, BA_DINH);
    s.adult(11, "Nguyễn Thị Thủy", Sex::Female, 1992, NGOC_HA);
    s.adult(12, "Nguyễn Văn Hoà", Sex::Male, 1970, BA_DINH);
    let (st, v) = s
        .post(
            &s.national,
            "/api/v1/persons/search",
            json!({"name": "NGUYEN VAN HOA"}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["people"].as_array().unwrap().len(), 2);
    assert_eq!(v["prefix"], false);
    assert_eq!(v["key"], "nguyen van hoa");
    assert!(
        v["people"][0]["id"].as_str().is_some(),
        "whole records: {v}"
    );
    let (_, v) = s
        .post(
            &s.national,
            "/api/v1/persons/search",
            json!({"name": "nguyễn văn hoà", "birth_year": 1990}),
        )
        .await;
    assert_eq!(v["people"].as_array().unwrap().len(), 1);
    let (_, v) = s
        .post(
            &s.national,
            "/api/v1/persons/search",
            json!({"name": "nguyen van hoa", "date_of_birth": "1970-05-01"}),
        )
        .await;
    assert_eq!(v["people"].as_array().unwrap().len(), 1);
    let (_, v) = s
        .post(
            &s.national,
            "/api/v1/persons/search",
            json!({"name": "Nguyen Thi Thuy", "commune": NGOC_HA}),
        )
        .await;
    assert_eq!(v["people"].as_array().unwrap().len(), 1);
    let (_, v) = s
        .post(
            &s.national,
            "/api/v1/persons/search",
            json!({"name": "nguyen t"}),
        )
        .await;
    assert_eq!(
        (v["prefix"].as_bool(), v["people"].as_array().unwrap().len()),
        (Some(true), 1)
    );
    let (st, v) = s
        .post(&s.national, "/api/v1/persons/search", json!({"name": "n"}))
        .await;
    assert_eq!(
        (st, v["code"].as_str().unwrap()),
        (422, "search_name_too_short")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_residence_closes_the_previous_one_and_history_answers_as_of() {
    let s = TestServer::start().await;
    let id = s.adult(20, "Đặng Văn Lâm", Sex::Male, 1993, BA_DINH);
    s.advance_days(10);
    let before_move = s.clock_now();
    s.advance_days(1);
    let (st, v) = s
        .post(&s.national, "/api/v1/residences/permanent", json!({"person": id, "expected_version": 1, "address": address_json(NGOC_HA, "Số 5 ngõ 10 phố Kim Mã", "2026-03-12"), "from": "2026-03-12", "legal_basis": "Luật Cư trú 2020, Điều 20"}))
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["permanent_residence"]["address"]["commune_code"], NGOC_HA);
    assert_eq!(v["version"], 2);
    let (st, old) = s
        .post(
            &s.national,
            "/api/v1/persons/as-of",
            json!({"id": id, "at": before_move}),
        )
        .await;
    assert_eq!(st, 200, "{old}");
    assert_eq!(
        old["permanent_residence"]["address"]["commune_code"],
        BA_DINH
    );
    assert_eq!(old["version"], 1);
    let (st, v) = s
        .post(
            &s.national,
            "/api/v1/persons/as-of",
            json!({"id": id, "at": "2020-01-01"}),
        )
        .await;
    assert_eq!((st, v["code"].as_str().unwrap()), (404, "not_found"));
    let h = s.history(&id).await;
    assert_eq!(
        h.iter()
            .map(|e| e["kind"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["record_imported", "permanent_residence_registered"]
    );
    // Now under Ngọc Hà, the Ba Đình officer cannot read the record any more.
    let (st, _) = s
        .post(&s.commune, "/api/v1/persons/get", json!({"id": id}))
        .await;
    assert_eq!(st, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_version_is_rejected_not_merged() {
    let s = TestServer::start().await;
    let id = s.adult(30, "Bùi Thị Xuân", Sex::Female, 1991, BA_DINH);
    let body = |v: u64| json!({"person": id, "expected_version": v, "address": address_json(BA_DINH, "Số 9 phố Liễu Giai", "2026-03-01"), "from": "2026-03-01", "until": "2026-09-01"});
    let (st, _) = s
        .post(&s.national, "/api/v1/residences/temporary", body(1))
        .await;
    assert_eq!(st, 200);
    let (st, v) = s
        .post(&s.national, "/api/v1/residences/temporary", body(1))
        .await;
    assert_eq!((st, v["code"].as_str().unwrap()), (409, "stale_version"));
    assert_eq!(s.history(&id).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_residence_absence_and_stay() {
    let s = TestServer::start().await;
    let id = s.adult(31, "Lý Thường Kiệt", Sex::Male, 1980, BA_DINH);
    let (st, v) = s
        .post(&s.national, "/api/v1/residences/temporary", json!({"person": id, "expected_version": 1, "address": address_json(NGOC_HA, "Phòng 3", "2026-03-01"), "from": "2026-03-01", "until": "2026-02-01"}))
        .await;
    assert_eq!(
        (st, v["code"].as_str().unwrap()),
        (409, "dates_inconsistent")
    );
    let (st, v) = s
        .post(&s.national, "/api/v1/residences/temporary", json!({"person": id, "expected_version": 1, "address": address_json(NGOC_HA, "Phòng 3", "2026-03-01"), "from": "2026-03-01"}))
        .await;
    assert_eq!(
        (st, v["code"].as_str().unwrap()),
        (422, "invalid_body"),
        "until is required"
    );
    let (st, v) = s
        .post(&s.national, "/api/v1/absences", json!({"person": id, "expected_version": 1, "from": "2026-03-02", "until": "2026-06-01", "destination": "Cần Thơ", "absence_reason": "học tập"}))
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["temporary_absence"]["destination"], "Cần Thơ");
    let (st, v) = s
        .post(&s.national, "/api/v1/stays", json!({"person": id, "expected_version": 2, "address": address_json(NGOC_HA, "Khách sạn Hoa Sen", "2026-03-01"), "from": "2026-03-01", "until": "2026-03-03", "host": "Khách sạn Hoa Sen"}))
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["last_stay"]["host"], "Khách sạn Hoa Sen");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marriage_divorce_and_marriage_age() {
    let s = TestServer::start().await;
    let a = s.adult(40, "Trần Văn Nam", Sex::Male, 1995, BA_DINH);
    let b = s.adult(41, "Lê Thị Hoa", Sex::Female, 1997, NGOC_HA);
    let young = s.adult(42, "Phan Văn Trẻ", Sex::Male, 2007, BA_DINH);
    let other = s.adult(43, "Phan Thị Thu", Sex::Female, 1996, BA_DINH);
    let (st, v) = s
        .post(&s.national, "/api/v1/marriages", json!({"first": {"person": young, "expected_version": 1}, "second": {"person": b, "expected_version": 1}, "on": "2026-02-01"}))
        .await;
    assert_eq!(
        (st, v["code"].as_str().unwrap()),
        (422, "under_marriage_age")
    );
    let (st, v) = s
        .post(&s.national, "/api/v1/marriages", json!({"first": {"person": a, "expected_version": 1}, "second": {"person": b, "expected_version": 1}, "on": "2026-02-01"}))
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["marital_status"], "married");
    assert_eq!(v["spouse"]["id"], b.as_str());
    assert_eq!(s.get_person(&b).await["spouse"]["id"], a.as_str());
    let (st, v) = s
        .post(&s.national, "/api/v1/marriages", json!({"first": {"person": a, "expected_version": 2}, "second": {"person": other, "expected_version": 1}, "on": "2026-02-02"}))
        .await;
    assert_eq!((st, v["code"].as_str().unwrap()), (409, "already_married"));
    let (st, v) = s
        .post(
            &s.national,
            "/api/v1/divorces",
            json!({"person": {"person": a, "expected_version": 2}, "on": "2026-02-25"}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["marital_status"], "divorced");
    assert_eq!(s.get_person(&b).await["marital_status"], "divorced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn death_closes_residences_invalidates_cards_and_widows_the_spouse() {
    let s = TestServer::start().await;
    let a = s.adult(50, "Ngô Văn Sở", Sex::Male, 1950, BA_DINH);
    let b = s.adult(51, "Đỗ Thị Mai", Sex::Female, 1952, BA_DINH);
    let (st, _) = s
        .post(&s.national, "/api/v1/marriages", json!({"first": {"person": a, "expected_version": 1}, "second": {"person": b, "expected_version": 1}, "on": "2000-02-01"}))
        .await;
    assert_eq!(st, 200);
    let (st, v) = s
        .post(&s.national, "/api/v1/cards", json!({"person": a, "expected_version": 2, "card": {"number": a, "kind": "can_cuoc", "issued_on": "2025-01-10", "status": "valid"}}))
        .await;
    assert_eq!(st, 201, "{v}");
    let (st, v) = s.post(&s.national, "/api/v1/deaths", json!({"person": a, "expected_version": 3, "date_of_death": "2026-02-10", "document_ref": "TK-01"})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["vital_status"]["status"], "dead");
    assert_eq!(v["permanent_residence"]["until"], "2026-02-10");
    assert_eq!(v["cards"][0]["status"], "holder_deceased");
    assert_eq!(s.get_person(&b).await["marital_status"], "widowed");
    let (st, v) = s
        .post(
            &s.national,
            "/api/v1/deaths",
            json!({"person": a, "expected_version": 4, "date_of_death": "2026-02-10"}),
        )
        .await;
    assert_eq!(
        (st, v["code"].as_str().unwrap()),
        (409, "death_already_registered")
    );
    let (st, v) = s
        .post(&s.national, "/api/v1/residences/permanent", json!({"person": a, "expected_version": 4, "address": address_json(NGOC_HA, "Số 1", "2026-03-01"), "from": "2026-03-01"}))
        .await;
    assert_eq!((st, v["code"].as_str().unwrap()), (409, "person_dead"));
    assert_eq!(s.history(&a).await.len(), 4, "refusals write nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrections_keep_the_old_value_and_need_a_legal_basis() {
    let s = TestServer::start().await;
    let id = s.adult(60, "Dương Văn Minh", Sex::Male, 1960, BA_DINH);
    let body = json!({"person": id, "expected_version": 1, "field": "name", "value": "Dương Văn Mính", "reason": "Sai chính tả"});
    let (st, v) = s
        .post(&s.national, "/api/v1/corrections", body.clone())
        .await;
    assert_eq!(
        (st, v["code"].as_str().unwrap()),
        (422, "correction_needs_basis")
    );
    let (st, v) = s
        .post(&s.registrar, "/api/v1/corrections", body.clone())
        .await;
    assert_eq!(
        (st, v["code"].as_str().unwrap()),
        (403, "role_cannot_correct")
    );
    let mut body = body;
    body["legal_basis"] = json!("Nghị định 123/2015/NĐ-CP");
    let (st, v) = s.post(&s.national, "/api/v1/corrections", body).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["name"]["given"], "Mính");
    let h = s.history(&id).await;
    assert_eq!(h[1]["change"]["old"]["given"], "Minh");
    assert_eq!(h[1]["change"]["new"], "Dương Văn Mính");
    // A date of birth that disagrees with the ID number is refused.
    let (st, v) = s
        .post(&s.national, "/api/v1/corrections", json!({"person": id, "expected_version": 2, "field": "date_of_birth", "value": "1961-01-01", "reason": "x", "legal_basis": "y"}))
        .await;
    assert_eq!((st, v["code"].as_str().unwrap()), (409, "id_year_mismatch"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cmnd_links_and_cards() {
    let s = TestServer::start().await;
    let id = s.adult(70, "Hồ Thị Lan", Sex::Female, 1975, BA_DINH);
    let (st, v) = s.post(&s.national, "/api/v1/cmnd-links", json!({"person": id, "expected_version": 1, "cmnd": "012345678", "issued_on": "1993-04-01"})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["legacy_cmnd"][0]["number"], "012345678");
    let (st, v) = s
        .post(
            &s.national,
            "/api/v1/cmnd-links",
            json!({"person": id, "expected_version": 2, "cmnd": "01234"}),
        )
        .await;
    assert_eq!((st, v["code"].as_str().unwrap()), (422, "invalid_body"));
    let card = |d: &str| json!({"number": id, "kind": "cccd", "issued_on": d, "expires_on": "2035-05-01", "status": "valid"});
    let (st, _) = s
        .post(
            &s.national,
            "/api/v1/cards",
            json!({"person": id, "expected_version": 2, "card": card("2021-05-01")}),
        )
        .await;
    assert_eq!(st, 201);
    let (st, v) = s
        .post(
            &s.national,
            "/api/v1/cards",
            json!({"person": id, "expected_version": 3, "card": card("2025-01-01")}),
        )
        .await;
    assert_eq!(st, 201);
    assert_eq!(v["cards"][0]["status"], "replaced");
    assert_eq!(v["cards"][1]["status"], "valid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn households_create_add_birth_change_head_and_split() {
    let s = TestServer::start().await;
    let father = s.adult(80, "Vũ Văn Hùng", Sex::Male, 1985, BA_DINH);
    let mother = s.adult(81, "Phạm Thị Hằng", Sex::Female, 1988, BA_DINH);
    let grandma = s.adult(82, "Vũ Thị Nụ", Sex::Female, 1955, BA_DINH);
    let (st, h) = s
        .post(&s.national, "/api/v1/households", json!({"head": {"person": grandma, "expected_version": 1}, "address": address_json(BA_DINH, "Số 7 phố Đội Cấn", "2026-03-01")}))
        .await;
    assert_eq!(st, 201, "{h}");
    let hid = h["id"].as_str().unwrap().to_owned();
    let (st, h) = s
        .post(&s.national, "/api/v1/households/members", json!({"household_id": hid, "expected_version": 1, "member": {"person": father, "expected_version": 1}, "relationship": "child"}))
        .await;
    assert_eq!(st, 200, "{h}");
    let (st, _) = s
        .post(&s.national, "/api/v1/households/members", json!({"household_id": hid, "expected_version": 2, "member": {"person": mother, "expected_version": 1}, "relationship": "other_relative"}))
        .await;
    assert_eq!(st, 200);
    // A birth joins the household in the same transaction.
    let mut b = birth("Vũ Minh Khoa", "male", "2026-02-20");
    b["father"] = json!({"id": father, "name": "Vũ Văn Hùng"});
    b["mother"] = json!({"id": mother, "name": "Phạm Thị Hằng"});
    b["household"] = json!({"household_id": hid, "relationship": "grandchild"});
    b["permanent_residence"] = address_json(BA_DINH, "Số 7 phố Đội Cấn", "2026-02-20");
    let (st, child) = s.post(&s.national, "/api/v1/births", b).await;
    assert_eq!(st, 201, "{child}");
    let child_id = child["id"].as_str().unwrap().to_owned();
    assert_eq!(child["household"]["household_id"], hid.as_str());
    assert_eq!(child["father"]["id"], father.as_str());
    let (st, view) = s
        .post(
            &s.national,
            "/api/v1/households/get",
            json!({"household_id": hid}),
        )
        .await;
    assert_eq!(st, 200, "{view}");
    assert_eq!(view["household"]["members"].as_array().unwrap().len(), 4);
    assert_eq!(view["members"].as_array().unwrap().len(), 4);
    // The father becomes the head.
    let (st, h) = s
        .post(&s.national, "/api/v1/households/head", json!({"household_id": hid, "expected_version": 4, "new_head": father, "relationships": [
            {"person": grandma, "relationship": "parent"}, {"person": mother, "relationship": "spouse"}, {"person": child_id, "relationship": "child"}]}))
        .await;
    assert_eq!(st, 200, "{h}");
    assert_eq!(h["members"][0]["person"], father.as_str());
    assert_eq!(
        s.get_person(&grandma).await["household"]["relationship"],
        "parent"
    );
    // Grandma splits off into her own household.
    let (st, nh) = s
        .post(&s.national, "/api/v1/households/split", json!({"household_id": hid, "expected_version": 5, "new_head": grandma, "address": address_json(BA_DINH, "Số 9 phố Đội Cấn", "2026-03-01")}))
        .await;
    assert_eq!(st, 201, "{nh}");
    assert_eq!(nh["members"].as_array().unwrap().len(), 1);
    assert_ne!(nh["id"], hid.as_str());
    assert_eq!(
        s.get_person(&grandma).await["household"]["household_id"],
        nh["id"]
    );
    let (_, view) = s
        .post(
            &s.national,
            "/api/v1/households/get",
            json!({"household_id": hid}),
        )
        .await;
    assert_eq!(view["household"]["members"].as_array().unwrap().len(), 3);
    // Split with the current head is refused.
    let (st, v) = s
        .post(&s.national, "/api/v1/households/split", json!({"household_id": hid, "expected_version": 6, "new_head": father, "address": address_json(BA_DINH, "Số 11", "2026-03-01")}))
        .await;
    assert_eq!((st, v["code"].as_str().unwrap()), (422, "split_head"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_replay_and_detect_reuse() {
    let s = TestServer::start().await;
    let b = birth("Lương Văn Can", "male", "2026-02-20");
    let (st1, v1) = s
        .post_with(
            &s.national,
            "/api/v1/births",
            b.clone(),
            &[("idempotency-key", "k-1")],
        )
        .await;
    let resp = s
        .http
        .post(format!("{}/api/v1/births", s.base))
        .bearer_auth(&s.national)
        .header("idempotency-key", "k-1")
        .json(&b)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()
            .get("idempotent-replayed")
            .map(|v| v.to_str().unwrap()),
        Some("true")
    );
    let st2 = resp.status().as_u16();
    let v2: Value = resp.json().await.unwrap();
    assert_eq!((st1, &v1), (st2, &v2));
    assert_eq!(
        off_runtime(|| s.store.count_people().unwrap()),
        1,
        "the retry did not register a second birth"
    );
    let (st, v) = s
        .post_with(
            &s.national,
            "/api/v1/births",
            birth("Khác Tên", "male", "2026-02-20"),
            &[("idempotency-key", "k-1")],
        )
        .await;
    assert_eq!(
        (st, v["code"].as_str().unwrap()),
        (422, "idempotency_key_reused")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_of_a_commune_page_in_id_order() {
    let s = TestServer::start().await;
    for i in 0..7 {
        s.adult(100 + i, "Kiều Văn Tâm", Sex::Male, 1980 + i as i32, BA_DINH);
    }
    s.adult(200, "Kiều Thị Tâm", Sex::Female, 1980, NGOC_HA);
    let mut after: Option<String> = None;
    let mut all = Vec::new();
    loop {
        let (st, v) = s
            .post(
                &s.commune,
                "/api/v1/communes/people",
                json!({"commune": BA_DINH, "after": after, "limit": 3}),
            )
            .await;
        assert_eq!(st, 200, "{v}");
        all.extend(
            v["people"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["id"].as_str().unwrap().to_owned()),
        );
        match v["next_after"].as_str() {
            Some(n) => after = Some(n.to_owned()),
            None => break,
        }
    }
    assert_eq!(all.len(), 7);
    assert!(all.windows(2).all(|w| w[0] < w[1]));
    let (st, _) = s
        .post(
            &s.commune,
            "/api/v1/communes/people",
            json!({"commune": NGOC_HA}),
        )
        .await;
    assert_eq!(st, 403);
    let (st, v) = s
        .post(
            &s.national,
            "/api/v1/communes/people",
            json!({"commune": "12"}),
        )
        .await;
    assert_eq!((st, v["code"].as_str().unwrap()), (422, "unknown_commune"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_endpoints_and_openapi() {
    let s = TestServer::start().await;
    let get = |p: &str| s.http.get(format!("{}{p}", s.base)).send();
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    let r: Value = get("/readyz").await.unwrap().json().await.unwrap();
    assert_eq!(r["backend"], s.store.backend());
    let doc: Value = get("/api/openapi.json")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.contains_key("/api/v1/births") && paths.contains_key("/api/v1/persons/search"));
    // Personal data never in URLs: every path that takes a person is a POST.
    for (path, item) in paths {
        if path.contains("persons") {
            assert!(item.get("get").is_none(), "{path} must not be a GET");
        }
    }
    s.get_person(&s.adult(300, "Mai Hắc Đế", Sex::Male, 1970, BA_DINH))
        .await;
    let m = get("/metrics").await.unwrap().text().await.unwrap();
    assert!(
        m.contains("dancu_http_requests_total") && m.contains("/api/v1/persons/get"),
        "{m}"
    );
    let r = get("/nowhere").await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
}

impl TestServer {
    pub fn clock_now(&self) -> String {
        use dancu_domain::clock::Clock;
        self.clock.now().to_rfc3339()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_in_joins_the_household_at_the_new_address() {
    let s = TestServer::start().await;
    let head = s.adult(90, "Trịnh Văn Quý", Sex::Male, 1975, NGOC_HA);
    let mover = s.adult(91, "Trịnh Thị Quyên", Sex::Female, 1978, BA_DINH);
    let (st, h) = s
        .post(
            &s.national,
            "/api/v1/households",
            json!({"head": {"person": head, "expected_version": 1}, "address": address_json(NGOC_HA, "Số 2 phố Kim Mã", "2026-03-01")}),
        )
        .await;
    assert_eq!(st, 201, "{h}");
    let hid = h["id"].as_str().unwrap().to_owned();
    let (st, p) = s
        .post(
            &s.national,
            "/api/v1/residences/permanent",
            json!({"person": mover, "expected_version": 1, "address": address_json(NGOC_HA, "Số 2 phố Kim Mã", "2026-03-01"),
                   "from": "2026-03-01", "household": {"household_id": hid, "relationship": "spouse"}}),
        )
        .await;
    assert_eq!(st, 200, "{p}");
    assert_eq!(p["household"]["household_id"], hid.as_str());
    assert_eq!(p["household"]["relationship"], "spouse");
    assert_eq!(
        p["version"], 3,
        "residence and membership are two events in one commit"
    );
    let (_, view) = s
        .post(
            &s.national,
            "/api/v1/households/get",
            json!({"household_id": hid}),
        )
        .await;
    assert_eq!(view["household"]["members"].as_array().unwrap().len(), 2);
}
