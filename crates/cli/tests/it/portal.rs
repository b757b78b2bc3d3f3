//! The web portals over HTTP: login through the server's own OpenID Connect provider, the
//! citizen pages, the officer desk (search, person page, birth registration), CSRF refusals
//! and the language switch.

use crate::common::*;
use crate::oidc::{citizen, last_code, post_json};
use dancu_domain::officer::{Jurisdiction, Officer, Role};
use serde_json::json;
use std::collections::HashMap;

const PASSCODE: &str = "480916";

/// A browser with a cookie jar, never following redirects by itself.
pub(crate) struct Browser {
    pub(crate) http: reqwest::Client,
    base: String,
    pub(crate) cookies: HashMap<String, String>,
}

pub(crate) struct Resp {
    pub(crate) status: u16,
    pub(crate) location: Option<String>,
    pub(crate) body: String,
}

impl Browser {
    pub(crate) fn new(s: &TestServer) -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: s.base.clone(),
            cookies: HashMap::new(),
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    pub(crate) async fn send(&mut self, r: reqwest::RequestBuilder) -> Resp {
        let jar: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let resp = r.header("cookie", jar.join("; ")).send().await.unwrap();
        for v in resp.headers().get_all("set-cookie") {
            let pair = v.to_str().unwrap().split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            if v.is_empty() {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
        Resp {
            status: resp.status().as_u16(),
            location: resp
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_owned()),
            body: resp.text().await.unwrap(),
        }
    }

    pub(crate) async fn get(&mut self, path: &str) -> Resp {
        let r = self.http.get(self.url(path));
        self.send(r).await
    }

    pub(crate) async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Resp {
        let body: String = form
            .iter()
            .map(|(k, v)| format!("{k}={}", enc(v)))
            .collect::<Vec<_>>()
            .join("&");
        let r = self
            .http
            .post(self.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        self.send(r).await
    }

    /// Follows redirects from a response until a page.
    pub(crate) async fn follow(&mut self, mut r: Resp) -> Resp {
        for _ in 0..10 {
            match r.location.clone() {
                Some(l) if (300..400).contains(&r.status) => r = self.get(&l).await,
                _ => return r,
            }
        }
        panic!("too many redirects");
    }
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The value of a hidden input in a page.
pub(crate) fn hidden(body: &str, name: &str) -> String {
    let key = format!("name=\"{name}\" value=\"");
    let at = body
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in {body}"))
        + key.len();
    body[at..at + body[at..].find('"').unwrap()].to_owned()
}

/// Logs in through the provider's pages (passcode, and the SMS code when asked).
pub(crate) async fn login(
    b: &mut Browser,
    s: &TestServer,
    side: &str,
    id: &str,
    phone: &str,
) -> Resp {
    let r = b.get(&format!("/portal/login?as={side}")).await;
    assert_eq!(r.status, 303);
    assert!(r.location.as_deref().unwrap().starts_with("/authorize?"));
    let page = b.follow(r).await;
    assert!(page.body.contains("/authorize/login"), "{}", page.body);
    let tx = hidden(&page.body, "tx");
    let mut r = b
        .post(
            "/authorize/login",
            &[("tx", &tx), ("id_number", id), ("passcode", PASSCODE)],
        )
        .await;
    if r.status == 200 && r.body.contains("/authorize/otp") {
        let tx = hidden(&r.body, "tx");
        let code = last_code(s, phone);
        r = b
            .post("/authorize/otp", &[("tx", &tx), ("code", &code)])
            .await;
    }
    if r.status == 200 && r.body.contains("/authorize/consent") {
        let tx = hidden(&r.body, "tx");
        r = b
            .post("/authorize/consent", &[("tx", &tx), ("decision", "allow")])
            .await;
    }
    b.follow(r).await
}

#[tokio::test]
async fn portal_pages_need_login_and_refuse_forms_without_csrf() {
    let s = TestServer::start_with_idp().await;
    let mut b = Browser::new(&s);
    let r = b.get("/portal").await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("/portal/login?as=citizen"), "{}", r.body);
    assert!(r.body.contains("lang=\"vi\""));
    for path in [
        "/portal/me",
        "/portal/me/account",
        "/portal/me/tracker",
        "/portal/desk",
    ] {
        let r = b.get(path).await;
        assert_eq!(r.status, 401, "{path}");
        assert!(r.body.contains("login_required"), "{path}");
    }
    let r = b
        .post(
            "/portal/desk/search",
            &[("name", "nguyen"), ("purpose", "xac-minh-ho-so")],
        )
        .await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("csrf_invalid"), "{}", r.body);
    // The English switch, remembered in a cookie.
    let r = b.get("/portal?lang=en").await;
    assert!(r.body.contains("lang=\"en\"") && r.body.contains("Log in with your e-ID account"));
    let r = b.get("/portal").await;
    assert!(r.body.contains("Citizens"), "{}", r.body);
    // The switch on a page a form post produced: back to the section's start, in Vietnamese.
    let r = b.get("/portal/desk/person?lang=vi").await;
    assert_eq!(
        (r.status, r.location.as_deref()),
        (303, Some("/portal/desk"))
    );
    assert_eq!(b.cookies.get("dancu_lang").map(String::as_str), Some("vi"));
    let r = b.get("/portal/assets/htmx.min.js").await;
    assert_eq!(r.status, 200);
    assert!(r.body.starts_with("/* htmx 2."));
}

#[tokio::test]
async fn officer_registers_a_birth_and_the_parent_sees_the_child_and_the_access() {
    let s = TestServer::start_with_idp().await;
    // The parent: an e-ID account at level 1, head of a household.
    let parent = citizen(&s, 120, "0912345678").await;
    let (st, h) = post_json(
        &s,
        Some(&s.national),
        "/api/v1/households",
        json!({"head": {"person": parent, "expected_version": 2}, "address": address_json(BA_DINH, "Số 7 phố Đội Cấn", "2026-03-01")}),
    )
    .await;
    assert_eq!(st, 201, "{h}");
    // The officer: their own e-ID account raised to level 2, linked to a registrar record.
    let me = citizen(&s, 121, "0987000111").await;
    let raise = json!({"id": me, "place": "Công an phường Ba Đình", "face_checked": true, "fingerprints_checked": true});
    let (st, v) = post_json(&s, Some(&s.registrar), "/api/v1/eid/level2", raise).await;
    assert_eq!(st, 200, "{v}");

    // Not yet in the register of officers: the desk refuses.
    let mut b = Browser::new(&s);
    let r = login(&mut b, &s, "officer", &me, "+84987000111").await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("portal_not_an_officer"), "{}", r.body);

    let store = s.store.clone();
    let me_id = dancu_domain::PersonalId::parse(&me).unwrap();
    off_runtime(|| {
        store
            .add_officer(&dancu_store::OfficerRecord {
                officer: Officer {
                    id: "desk-1".into(),
                    name: "Cán bộ Bàn".into(),
                    role: Role::Registrar,
                    jurisdiction: Jurisdiction::Commune(BA_DINH.into()),
                    person: Some(me_id),
                },
                token_hash: "unused".into(),
                created_at: chrono::Utc::now(),
            })
            .unwrap()
    });
    let mut b = Browser::new(&s);
    let r = login(&mut b, &s, "officer", &me, "+84987000111").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("desk-1"), "{}", r.body);
    let csrf = hidden(&r.body, "csrf");

    // Search without accents; a missing purpose is refused in place.
    let r = b
        .post(
            "/portal/desk/search",
            &[
                ("csrf", &csrf),
                ("name", "nguyen thi minh anh"),
                ("purpose", ""),
            ],
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(r.body.contains("purpose_required"), "{}", r.body);
    let r = b
        .post(
            "/portal/desk/search",
            &[
                ("csrf", &csrf),
                ("name", "nguyen thi minh anh"),
                ("year", "1990"),
                ("purpose", "dang-ky-khai-sinh"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains(&parent), "{}", r.body);

    let r = b
        .post(
            "/portal/desk/person",
            &[
                ("csrf", &csrf),
                ("id", &parent),
                ("purpose", "dang-ky-khai-sinh"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("Nguyễn Thị Minh Anh") && r.body.contains("id=\"history\""));

    // The form, pre-filled from the parent's record.
    let r = b
        .post(
            "/portal/desk/birth",
            &[
                ("csrf", &csrf),
                ("parent", &parent),
                ("purpose", "dang-ky-khai-sinh"),
                ("step", "form"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let household = hidden(
        &r.body.replace("id=\"household\" name", "name"),
        "household",
    );
    assert!(!household.is_empty());
    let birth = |dob: &'static str, csrf: String, parent: String, household: String| {
        vec![
            ("csrf", csrf),
            ("parent", parent),
            ("purpose", "dang-ky-khai-sinh".to_owned()),
            ("family", "Nguyễn".to_owned()),
            ("middle", "Minh".to_owned()),
            ("given", "Khang".to_owned()),
            ("sex", "male".to_owned()),
            ("date_of_birth", dob.to_owned()),
            ("commune", BA_DINH.to_owned()),
            ("household", household),
            ("relationship", "child".to_owned()),
            ("document_ref", "GCS-2026-001".to_owned()),
        ]
    };
    // A birth in the future is refused in place and nothing is registered.
    let form = birth(
        "2030-01-01",
        csrf.clone(),
        parent.clone(),
        household.clone(),
    );
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = b.post("/portal/desk/birth", &pairs).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("date_in_future"), "{}", r.body);
    assert!(
        r.body.contains("value=\"Khang\""),
        "the form keeps what was typed"
    );

    let form = birth(
        "2026-02-20",
        csrf.clone(),
        parent.clone(),
        household.clone(),
    );
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = b.post("/portal/desk/birth", &pairs).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let at = r.body.find("id=\"new-id\">").unwrap() + 12;
    let child = r.body[at..at + 12].to_owned();
    assert!(child.bytes().all(|c| c.is_ascii_digit()), "{child}");

    let r = b
        .post(
            "/portal/desk/person",
            &[
                ("csrf", &csrf),
                ("id", &child),
                ("purpose", "dang-ky-khai-sinh"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("birth_registered") && r.body.contains("GCS-2026-001"),
        "{}",
        r.body
    );

    // The parent logs in to the citizen portal.
    let mut c = Browser::new(&s);
    let r = login(&mut c, &s, "citizen", &parent, "+84912345678").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("Nguyễn Minh Khang") && r.body.contains(&child),
        "{}",
        r.body
    );
    let r = c.get("/portal/me/tracker").await;
    assert!(
        r.body.contains("desk-1") && r.body.contains("dang-ky-khai-sinh"),
        "{}",
        r.body
    );
    let r = c.get("/portal/me/account").await;
    assert!(r.body.contains("Mức 1"), "{}", r.body);
    let r = c.get("/portal/me?lang=en").await;
    assert!(r.body.contains("My record") && r.body.contains("Household"));
    // A citizen session is not an officer session.
    let r = c.get("/portal/desk").await;
    assert_eq!(r.status, 401);
}
