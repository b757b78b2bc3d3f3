//! The citizen portal's account security page over HTTP: passcode change (current passcode
//! required, refusals shown in place and changing nothing), authenticator app enrolment with a
//! server-drawn QR code and removal, passkey registration with a software authenticator, and
//! every change in the usage history; logging out of the portal ends the provider's session.

use crate::common::*;
use crate::oidc::citizen;
use crate::portal::{Browser, hidden, login};

use dancu_domain::PersonalId;

/// The text of the element with this `id` (no nested tags).
fn by_id(body: &str, id: &str) -> String {
    let key = format!("id=\"{id}\"");
    let at = body
        .find(&key)
        .unwrap_or_else(|| panic!("no #{id} in {body}"))
        + key.len();
    let start = at + body[at..].find('>').unwrap() + 1;
    body[start..start + body[start..].find('<').unwrap()].to_owned()
}

fn base32_decode(s: &str) -> Vec<u8> {
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u32, 0u32);
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => panic!("not base32: {s}"),
        };
        acc = (acc << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// The app's code at the server's (test) clock.
fn totp_now(s: &TestServer, secret: &[u8]) -> String {
    let step = (s.now_utc().timestamp() / 30) as u64;
    format!("{:06}", dancu_eid::authn::totp::hotp(secret, step, 6))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_account_security_passcode_totp_and_passkeys() {
    let s = TestServer::start_with_idp().await;
    let id = citizen(&s, 131, "0912777001").await;
    let pid = PersonalId::parse(&id).unwrap();
    let idp = s.idp.clone().unwrap();
    let mut b = Browser::new(&s);

    // Not logged in: the page asks for a login; a post without the form's token is refused.
    let r = b.get("/portal/me/security").await;
    assert_eq!(r.status, 401);
    let r = login(&mut b, &s, "citizen", &id, "+84912777001").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let page = b.get("/portal/me/security").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("/portal/assets/passkey-register.js"));
    let csrf = hidden(&page.body, "csrf");
    let r = b
        .post(
            "/portal/me/security/passcode",
            &[
                ("current", "480916"),
                ("new", "602913"),
                ("again", "602913"),
            ],
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);

    // Passcode change: refusals in place, nothing changed.
    for (current, new, again, code) in [
        ("111111", "602913", "602913", "eid_passcode_wrong"),
        ("480916", "123456", "123456", "eid_passcode_too_simple"),
        ("480916", "60291", "60291", "eid_passcode_shape"),
        ("480916", "602913", "602914", "passcode_mismatch"),
        ("480916", "480916", "480916", "eid_passcode_unchanged"),
    ] {
        let r = b
            .post(
                "/portal/me/security/passcode",
                &[
                    ("csrf", &csrf),
                    ("current", current),
                    ("new", new),
                    ("again", again),
                ],
            )
            .await;
        assert_eq!(r.status, 422, "{code}: {}", r.body);
        assert!(
            r.body
                .contains(&format!("id=\"passcode-msg\" data-code=\"{code}\"")),
            "{code}: {}",
            r.body
        );
    }
    let (i2, p2) = (idp.clone(), pid);
    assert!(off_runtime(move || i2.login_passcode(&p2, "480916", "t", None)).is_ok());
    let r = b
        .post(
            "/portal/me/security/passcode",
            &[
                ("csrf", &csrf),
                ("current", "480916"),
                ("new", "602913"),
                ("again", "602913"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("data-code=\"passcode_changed\""),
        "{}",
        r.body
    );
    let (i2, p2) = (idp.clone(), pid);
    let (old, new) = off_runtime(move || {
        (
            i2.login_passcode(&p2, "480916", "t", None).is_ok(),
            i2.login_passcode(&p2, "602913", "t", None).is_ok(),
        )
    });
    assert!(!old && new, "the new passcode replaces the old one");

    // Authenticator app: the URI as text and as an SVG QR code, confirmed by a current code.
    let r = b.post("/portal/me/security/totp", &[("csrf", &csrf)]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("<svg") && r.body.contains("<path"),
        "{}",
        r.body
    );
    assert!(!r.body.contains("<?xml"));
    let uri = by_id(&r.body, "totp-uri").replace("&amp;", "&");
    let secret = by_id(&r.body, "totp-secret");
    assert!(
        uri.starts_with("otpauth://totp/") && uri.contains(&format!("secret={secret}")),
        "{uri}"
    );
    let key = base32_decode(&secret);
    assert_eq!(key.len(), 20);
    // The page shows the pending enrolment again on a plain visit.
    let again = b.get("/portal/me/security").await;
    assert_eq!(by_id(&again.body, "totp-secret"), secret);
    let wrong = if totp_now(&s, &key) == "000000" {
        "000001"
    } else {
        "000000"
    };
    let r = b
        .post(
            "/portal/me/security/totp/confirm",
            &[("csrf", &csrf), ("code", wrong)],
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("id=\"totp-msg\""), "{}", r.body);
    let (i2, p2) = (idp.clone(), pid);
    assert!(!off_runtime(move || i2.has_totp(&p2).unwrap()));
    let r = b
        .post(
            "/portal/me/security/totp/confirm",
            &[("csrf", &csrf), ("code", &totp_now(&s, &key))],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("data-code=\"totp_enrolled\""), "{}", r.body);
    let (i2, p2) = (idp.clone(), pid);
    assert!(off_runtime(move || i2.has_totp(&p2).unwrap()));
    let r = b
        .post("/portal/me/security/totp/remove", &[("csrf", &csrf)])
        .await;
    assert!(r.body.contains("data-code=\"totp_removed\""), "{}", r.body);
    let (i2, p2) = (idp.clone(), pid);
    assert!(!off_runtime(move || i2.has_totp(&p2).unwrap()));
    let r = b
        .post("/portal/me/security/totp/remove", &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, 422, "{}", r.body);

    // Passkeys: options need the form's token; the answer is posted as a form.
    let r = b.post("/portal/me/security/passkey/options", &[]).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("csrf_invalid"));
    let r = b
        .post("/portal/me/security/passkey/options", &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let opts: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let cid = opts["challenge_id"].as_str().unwrap().to_owned();
    let challenge =
        dancu_eid::b64::decode(opts["publicKey"]["challenge"].as_str().unwrap()).unwrap();
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(31);
    let mut soft = dancu_eid::webauthn::soft::SoftAuthenticator::new(&mut rng, "127.0.0.1");
    let (cdj, att) = soft.create(&challenge, &s.base);
    let r = b
        .post(
            "/portal/me/security/passkey",
            &[
                ("csrf", &csrf),
                ("challenge_id", &cid),
                ("client_data_json", "%%%"),
                ("attestation_object", "x"),
            ],
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(r.body.contains("passkey_malformed"), "{}", r.body);
    let r = b
        .post(
            "/portal/me/security/passkey",
            &[
                ("csrf", &csrf),
                ("challenge_id", &cid),
                ("client_data_json", &dancu_eid::b64::encode(&cdj)),
                ("attestation_object", &dancu_eid::b64::encode(&att)),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("data-code=\"passkey_added\""), "{}", r.body);
    let hex: String = soft
        .credential_id
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(r.body.contains(&hex), "the list shows it: {}", r.body);
    let r = b
        .post(
            "/portal/me/security/passkey/remove",
            &[("csrf", &csrf), ("id", "00ff")],
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(r.body.contains("eid_passkey_not_found"), "{}", r.body);
    let r = b
        .post(
            "/portal/me/security/passkey/remove",
            &[("csrf", &csrf), ("id", &hex)],
        )
        .await;
    assert!(
        r.body.contains("data-code=\"passkey_removed\""),
        "{}",
        r.body
    );
    let (i2, p2) = (idp.clone(), pid);
    assert!(off_runtime(move || i2.passkey_counters(&p2).unwrap()).is_empty());

    // Every change is in the usage history, in the holder's language.
    let r = b.get("/portal/me/account?lang=en").await;
    for line in [
        "Changed passcode",
        "Added authenticator app",
        "Removed authenticator app",
        "Added passkey",
        "Removed passkey",
    ] {
        assert!(r.body.contains(line), "{line}: {}", r.body);
    }

    // Logging out ends the provider's session as well: the next login asks again.
    assert!(b.cookies.contains_key("dancu_sid"));
    let r = b.post("/portal/logout", &[("csrf", &csrf)]).await;
    assert_eq!(r.status, 303);
    assert!(!b.cookies.contains_key("dancu_sid") && !b.cookies.contains_key("dancu_portal"));
    let r = b.get("/portal/login?as=citizen").await;
    let page = b.follow(r).await;
    assert!(page.body.contains("/authorize/login"), "{}", page.body);
}

/// A hub whose social-insurance agency may link insurance numbers and tax codes.
pub(crate) fn enriching_hub() -> dancu_hub::members::HubConfig {
    serde_json::from_value(serde_json::json!({
        "members": [{"id": "bhxh", "name": "Bảo hiểm xã hội", "class": "ministry",
            "subsystems": [{"id": "registry", "keys": []}]}],
        "rights": [{
            "id": "r-enrich", "org": "bhxh", "subsystem": "registry", "service": "enrich",
            "fields": ["health_insurance_number", "tax_code"], "purpose": "insurance_registry",
            "legal_basis": "Luật Bảo hiểm y tế", "requires_consent": false,
            "requires_end_user": false, "requires_case_reference": false,
            "covert_embargo_days": null, "quota": null, "rate": null,
        }],
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_citizen_documents_residence_history_and_tracker_filters() {
    let s = TestServer::start_with_idp_and_hub(enriching_hub()).await;
    let id = citizen(&s, 132, "0912777002").await;
    // A sectoral register links two identifiers, one of them twice.
    let hub = s.hub.clone().unwrap();
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
    let pid = id.clone();
    off_runtime(move || {
        for (kind, value, attrs) in [
            (
                "health_insurance_number",
                "DN4010123456789",
                serde_json::json!({"hospital": "Bệnh viện Bạch Mai"}),
            ),
            (
                "health_insurance_number",
                "DN4010123456790",
                serde_json::json!({"hospital": "Bệnh viện Bạch Mai"}),
            ),
            ("tax_code", "8001234567", serde_json::json!({})),
        ] {
            let sub: dancu_hub::enrich::Submission = serde_json::from_value(serde_json::json!({
                "id": pid, "kind": kind, "value": value, "attributes": attrs, "source_ref": "BH-1",
            }))
            .unwrap();
            hub.enrich(&who, &meta, &sub).unwrap();
        }
    });
    // The register: a temporary residence, and an officer's read of the record.
    let (st, v) = crate::oidc::post_json(
        &s,
        Some(&s.national),
        "/api/v1/residences/temporary",
        serde_json::json!({"person": id, "expected_version": 2,
            "address": address_json(BA_DINH, "Phòng 12, nhà B", "2026-02-20"), "from": "2026-02-20", "until": "2027-02-19"}),
    )
    .await;
    assert!(st < 300, "{st} {v}");
    let r = s
        .http
        .post(format!("{}/api/v1/persons/get", s.base))
        .bearer_auth(&s.national)
        .header("x-purpose", "xac-minh-ho-so")
        .json(&serde_json::json!({"id": id}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let mut b = Browser::new(&s);
    let r = login(&mut b, &s, "citizen", &id, "+84912777002").await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Linked documents: the current values, their source, the earlier version counted.
    let r = b.get("/portal/me/documents?lang=en").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("Health insurance card") && r.body.contains("DN4010123456790"),
        "{}",
        r.body
    );
    assert!(
        !r.body.contains("DN4010123456789"),
        "only the current value"
    );
    assert!(
        r.body.contains("1 earlier versions") && r.body.contains("bhxh / registry"),
        "{}",
        r.body
    );
    assert!(r.body.contains("Personal tax code") && r.body.contains("8001234567"));
    assert!(r.body.contains("hospital: Bệnh viện Bạch Mai"));

    // Residence history: the new temporary residence first, then what the record came with.
    let r = b.get("/portal/me/residences").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let temp = r
        .body
        .find("Temporary residence registered")
        .expect("the registration");
    assert!(
        r.body[temp..].contains("Phòng 12, nhà B") && r.body[temp..].contains("2026-02-20"),
        "{}",
        r.body
    );

    // The tracker: everything, then by agency, then by dates.
    let r = b.get("/portal/me/tracker").await;
    assert_eq!(r.status, 200);
    assert!(
        r.body.contains("id=\"register-reads\"") && r.body.contains("xac-minh-ho-so"),
        "{}",
        r.body
    );
    let r = b.get("/portal/me/tracker?agency=bhxh").await;
    assert!(
        r.body.contains("id=\"no-register-reads\""),
        "officers are not bhxh: {}",
        r.body
    );
    let r = b
        .get("/portal/me/tracker?agency=register&from=2026-03-01&to=2026-03-01")
        .await;
    assert!(
        r.body.contains("xac-minh-ho-so"),
        "the read was on 2026-03-01 (Vietnam time): {}",
        r.body
    );
    assert!(!r.body.contains("id=\"hub-accesses\""));
    let r = b.get("/portal/me/tracker?from=2026-03-02").await;
    assert!(r.body.contains("id=\"no-register-reads\""), "{}", r.body);
    // A bad date: said in place, no date filter applied.
    let r = b.get("/portal/me/tracker?from=2026-13-40").await;
    assert_eq!(r.status, 422);
    assert!(
        r.body.contains("data-code=\"tracker_date_invalid\"") && r.body.contains("xac-minh-ho-so"),
        "{}",
        r.body
    );
    let r = b
        .get("/portal/me/tracker?from=2026-03-05&to=2026-03-01")
        .await;
    assert_eq!(r.status, 422);
    assert!(r.body.contains("tracker_range_invalid"));
}

/// Portal sessions live in the document store: a fresh server over the same store (a restart,
/// or another node) knows them, and they end after 30 minutes without use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_session_survives_a_restart_and_expires_when_idle() {
    let mut s = TestServer::start_with_idp().await;
    let id = citizen(&s, 133, "0912777003").await;
    let mut b = Browser::new(&s);
    let r = login(&mut b, &s, "citizen", &id, "+84912777003").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let page = b.get("/portal/me/security").await;
    let csrf = hidden(&page.body, "csrf");
    let old_base = s.base.clone();

    s.restart().await;
    assert_ne!(s.base, old_base);
    let mut b2 = Browser::new(&s);
    b2.cookies = b.cookies.clone();
    let r = b2.get("/portal/me").await;
    assert_eq!(
        r.status, 200,
        "the session outlives the restart: {}",
        r.body
    );
    assert!(r.body.contains(&id));
    // Its CSRF token too: a form of the old page still posts.
    let r = b2
        .post("/portal/me/security/totp", &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Idle expiry: each use moves the deadline; 30 minutes without one end it.
    s.clock.advance(chrono::Duration::minutes(20));
    assert_eq!(b2.get("/portal/me").await.status, 200);
    s.clock.advance(chrono::Duration::minutes(20));
    assert_eq!(
        b2.get("/portal/me").await.status,
        200,
        "used 20 minutes ago"
    );
    s.clock.advance(chrono::Duration::minutes(31));
    let r = b2.get("/portal/me").await;
    assert_eq!(r.status, 401, "idle for 31 minutes: {}", r.body);
    s.clock.advance(chrono::Duration::minutes(-31));
    assert_eq!(
        b2.get("/portal/me").await.status,
        401,
        "and it is gone for good"
    );
}

/// The vendored font is served for a year under its version; error pages say what to do next.
#[tokio::test]
async fn portal_fonts_are_cached_for_a_year_and_error_pages_say_what_to_do_next() {
    let s = TestServer::start_with_idp().await;
    let css = s
        .http
        .get(format!("{}/portal/assets/portal.css", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let url = "/portal/assets/fonts/5.3.0/be-vietnam-pro-vietnamese-400.woff2";
    assert!(
        css.contains(url),
        "the stylesheet loads the Vietnamese subset"
    );
    let r = s.http.get(format!("{}{url}", s.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "font/woff2");
    assert_eq!(
        r.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert!(r.bytes().await.unwrap().starts_with(b"wOF2"));
    for bad in [
        "/portal/assets/fonts/5.2.0/be-vietnam-pro-vietnamese-400.woff2",
        "/portal/assets/fonts/5.3.0/nope.woff2",
    ] {
        let r = s.http.get(format!("{}{bad}", s.base)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{bad}");
    }
    // Pages allow fonts from this server only.
    let r = s
        .http
        .get(format!("{}/portal", s.base))
        .send()
        .await
        .unwrap();
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("font-src 'self'"), "{csp}");

    let mut b = Browser::new(&s);
    let r = b.get("/portal/callback?state=x&code=y").await;
    assert_eq!(r.status, 400);
    assert!(
        r.body.contains("data-code=\"portal_login_failed\""),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("id=\"next-step\"") && r.body.contains("href=\"/portal/login?as=citizen\""),
        "{}",
        r.body
    );
    let r = b
        .post("/portal/me/security/passcode", &[("current", "1")])
        .await;
    assert_eq!(r.status, 403);
    assert!(
        r.body.contains("id=\"next-step\"") && r.body.contains("Mở lại trang có biểu mẫu"),
        "{}",
        r.body
    );
}
