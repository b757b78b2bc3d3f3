//! The OpenID Connect provider through a real HTTP server: an independent relying party (the
//! `openidconnect` crate) for code + PKCE, and tests named after the OpenID Foundation's basic
//! (`oidcc-*`) and FAPI 2.0 (`fapi2-*`) test plans for what they check.

use crate::common::*;
use dancu_domain::person::Sex;
use dancu_eid::oidc::dpop::access_token_hash;
use dancu_eid::oidc::jws::{Jwk, sign_es256};
use dancu_eid::oidc::pkce::challenge_s256;
use openidconnect::core::{
    CoreClient, CoreGenderClaim, CoreJwsSigningAlgorithm, CoreProviderMetadata, CoreResponseType,
};
use openidconnect::{
    AuthenticationContextClass, AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret,
    CsrfToken, EmptyAdditionalClaims, HttpRequest, HttpResponse, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse, UserInfoClaims,
};
use p256::ecdsa::SigningKey;
use p256::elliptic_curve::Generate;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Value, json};

const CB: &str = "https://bank.example/cb";
const VERIFIER: &str = "a-long-enough-pkce-code-verifier-0123456789-abcdefghijk";

/// The relying party's HTTP client for `openidconnect`: reqwest, never following redirects.
async fn send(req: HttpRequest) -> Result<HttpResponse, reqwest::Error> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let (parts, body) = req.into_parts();
    let resp = client
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await?;
    let mut b = openidconnect::http::Response::builder().status(resp.status());
    for (k, v) in resp.headers() {
        b = b.header(k, v);
    }
    Ok(b.body(resp.bytes().await?.to_vec()).unwrap())
}

/// A browser: no automatic redirects, one session cookie.
struct Browser {
    http: reqwest::Client,
    cookie: Option<String>,
}

/// What a step of the browser got.
#[derive(Debug)]
enum Page {
    /// A redirect to this URL.
    Redirect(String),
    /// An HTML page: status and body.
    Html(u16, String),
}

impl Page {
    fn location(&self) -> &str {
        match self {
            Page::Redirect(l) => l,
            Page::Html(s, b) => panic!("expected a redirect, got {s}: {b}"),
        }
    }
    fn html(&self) -> &str {
        match self {
            Page::Html(_, b) => b,
            Page::Redirect(l) => panic!("expected a page, got a redirect to {l}"),
        }
    }
    fn tx(&self) -> String {
        let b = self.html();
        let at = b.find("name=\"tx\" value=\"").expect("a form with tx") + 17;
        b[at..at + b[at..].find('"').unwrap()].to_owned()
    }
}

impl Browser {
    fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookie: None,
        }
    }

    async fn finish(&mut self, resp: reqwest::Response) -> Page {
        for v in resp.headers().get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let pair = v.split(';').next().unwrap();
            let value = pair.strip_prefix("dancu_sid=").unwrap();
            self.cookie = (!value.is_empty()).then(|| value.to_owned());
        }
        let status = resp.status().as_u16();
        if status == 303 || status == 302 {
            return Page::Redirect(resp.headers()["location"].to_str().unwrap().to_owned());
        }
        let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.starts_with("text/html"), "{ct}");
        Page::Html(status, resp.text().await.unwrap())
    }

    async fn get(&mut self, url: &str) -> Page {
        let mut r = self.http.get(url);
        if let Some(c) = &self.cookie {
            r = r.header("cookie", format!("dancu_sid={c}"));
        }
        let resp = r.send().await.unwrap();
        self.finish(resp).await
    }

    async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> Page {
        let body: String = form
            .iter()
            .map(|(k, v)| format!("{k}={}", enc(v)))
            .collect::<Vec<_>>()
            .join("&");
        let mut r = self
            .http
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(c) = &self.cookie {
            r = r.header("cookie", format!("dancu_sid={c}"));
        }
        let resp = r.send().await.unwrap();
        self.finish(resp).await
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

/// The query parameters of a URL.
fn query(url: &str) -> std::collections::HashMap<String, String> {
    openidconnect::url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The last one-time code the development SMS gateway wrote for `phone`.
pub(crate) fn last_code(s: &TestServer, phone: &str) -> String {
    let text = std::fs::read_to_string(&s.sms_outbox).unwrap();
    let line = text
        .lines()
        .rev()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["to"] == phone)
        .expect("a message to the phone");
    let t = line["text"].as_str().unwrap();
    let at = t.find(": ").unwrap() + 2;
    t[at..at + 6].to_owned()
}

pub(crate) async fn post_json(
    s: &TestServer,
    token: Option<&str>,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let mut r = s.http.post(format!("{}{path}", s.base)).json(&body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let resp = r.send().await.unwrap();
    let st = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let v: Value = resp.json().await.unwrap();
    if st >= 400 {
        assert_eq!(ct, "application/problem+json", "{v}");
        assert!(
            v["message_vi"].as_str().is_some_and(|m| !m.is_empty()),
            "{v}"
        );
    }
    (st, v)
}

const FACE: &[u8] = b"reference portrait bytes";
const PASSCODE: &str = "480916";

/// An adult with a valid card, a face reference and a level-1 account with [`PASSCODE`].
pub(crate) async fn citizen(s: &TestServer, serial: u32, phone: &str) -> String {
    let id = s.adult(serial, "Nguyễn Thị Minh Anh", Sex::Female, 1990, BA_DINH);
    let (st, v) = post_json(
        s,
        Some(&s.national),
        "/api/v1/cards",
        json!({"person": id, "expected_version": 1, "card": {"number": id, "kind": "can_cuoc", "issued_on": "2025-01-10", "status": "valid"}}),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let (st, v) = post_json(
        s,
        Some(&s.national),
        "/api/v1/eid/face-references",
        json!({"id": id, "image": b64(FACE)}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = post_json(s, None, "/api/v1/eid/phone-codes", json!({"phone": phone})).await;
    assert_eq!(st, 201, "{v}");
    let otp_id = v["otp_id"].as_str().unwrap().to_owned();
    let code = last_code(s, &normalise(phone));
    let (st, v) = post_json(
        s,
        None,
        "/api/v1/eid/accounts",
        json!({"id": id, "phone": phone, "otp_id": otp_id, "code": code, "face_image": b64(FACE), "passcode": PASSCODE}),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["level"], 1);
    id
}

fn normalise(phone: &str) -> String {
    format!("+84{}", phone.trim_start_matches('0'))
}

fn b64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |a, b| (a << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Registers a client through the admin API.
async fn client(s: &TestServer, body: Value) -> Value {
    let (st, v) = post_json(s, Some(&s.national), "/api/v1/oidc/clients", body).await;
    assert_eq!(st, 201, "{v}");
    v
}

async fn secret_client(s: &TestServer, id: &str) -> String {
    let v = client(
        s,
        json!({"id": id, "name": "Ngân hàng Thử nghiệm", "redirect_uris": [CB],
               "token_endpoint_auth_method": "client_secret_basic",
               "scopes": ["openid", "profile", "offline_access"]}),
    )
    .await;
    v["client_secret"].as_str().unwrap().to_owned()
}

/// An authorization URL for a secret client with PKCE (S256 of [`VERIFIER`]).
fn authorize_url(s: &TestServer, client_id: &str, extra: &[(&str, &str)]) -> String {
    let mut q = vec![
        ("response_type", "code".to_owned()),
        ("client_id", client_id.to_owned()),
        ("redirect_uri", CB.to_owned()),
        ("scope", "openid profile".to_owned()),
        ("state", "st-1".to_owned()),
        ("nonce", "n-1".to_owned()),
        ("code_challenge", challenge_s256(VERIFIER)),
        ("code_challenge_method", "S256".to_owned()),
    ];
    for (k, v) in extra {
        q.retain(|(qk, _)| qk != k);
        if !v.is_empty() {
            q.push((k, (*v).to_owned()));
        }
    }
    let qs: Vec<String> = q.iter().map(|(k, v)| format!("{k}={}", enc(v))).collect();
    format!("{}/authorize?{}", s.base, qs.join("&"))
}

/// Logs in on the login page and allows on the consent page; returns the final redirect.
async fn login_and_consent(s: &TestServer, b: &mut Browser, url: &str, id: &str) -> String {
    let page = b.get(url).await;
    if let Page::Redirect(l) = page {
        // A session and a remembered consent: straight back to the client.
        return l;
    }
    assert!(page.html().contains("Đăng nhập"), "{page:?}");
    let tx = page.tx();
    let page = b
        .post(
            &format!("{}/authorize/login", s.base),
            &[("tx", &tx), ("id_number", id), ("passcode", PASSCODE)],
        )
        .await;
    let page = match page {
        Page::Html(200, body) if body.contains("/authorize/consent") => {
            let p = Page::Html(200, body);
            let tx = p.tx();
            b.post(
                &format!("{}/authorize/consent", s.base),
                &[("tx", &tx), ("decision", "allow")],
            )
            .await
        }
        other => other,
    };
    page.location().to_owned()
}

async fn token_basic(
    s: &TestServer,
    client_id: &str,
    secret: &str,
    form: &[(&str, &str)],
) -> (u16, Value) {
    let resp = s
        .http
        .post(format!("{}/token", s.base))
        .basic_auth(client_id, Some(secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            form.iter()
                .map(|(k, v)| format!("{k}={}", enc(v)))
                .collect::<Vec<_>>()
                .join("&"),
        )
        .send()
        .await
        .unwrap();
    let st = resp.status().as_u16();
    (st, resp.json().await.unwrap())
}

async fn userinfo_bearer(s: &TestServer, token: &str) -> (u16, Value) {
    let resp = s
        .http
        .get(format!("{}/userinfo", s.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let st = resp.status().as_u16();
    (st, resp.json().await.unwrap())
}

// ----- the independent relying party --------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openidconnect_rp_code_pkce_id_token_userinfo_and_refresh() {
    let s = TestServer::start_with_idp().await;
    let id = citizen(&s, 101, "0912345678").await;
    let secret = secret_client(&s, "bank-rp").await;

    let meta = CoreProviderMetadata::discover_async(IssuerUrl::new(s.base.clone()).unwrap(), &send)
        .await
        .expect("discovery and JWKS");
    let rp = CoreClient::from_provider_metadata(
        meta,
        ClientId::new("bank-rp".into()),
        Some(ClientSecret::new(secret.clone())),
    )
    .set_redirect_uri(RedirectUrl::new(CB.into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf, nonce) = rp
        .authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_auth_context_value(AuthenticationContextClass::new("urn:dancu:loa:1".into()))
        .set_pkce_challenge(challenge)
        .url();

    let mut browser = Browser::new();
    let back = login_and_consent(&s, &mut browser, url.as_str(), &id).await;
    assert!(back.starts_with(CB), "{back}");
    let q = query(&back);
    assert_eq!(q["state"], *csrf.secret());
    assert_eq!(q["iss"], s.base, "RFC 9207 iss in the response");

    let tokens = rp
        .exchange_code(AuthorizationCode::new(q["code"].clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&send)
        .await
        .expect("code exchange");
    let now = s.now_utc();
    let verifier = rp
        .id_token_verifier()
        .set_allowed_algs(vec![CoreJwsSigningAlgorithm::EcdsaP256Sha256])
        .set_time_fn(move || now);
    let claims = tokens
        .id_token()
        .expect("an ID token")
        .claims(&verifier, &nonce)
        .expect("signature against the JWKS, iss, aud, nonce, expiry");
    assert_eq!(claims.issuer().as_str(), s.base);
    assert_eq!(claims.audiences()[0].as_str(), "bank-rp");
    assert_eq!(claims.nonce().unwrap().secret(), nonce.secret());
    assert_eq!(
        claims.auth_context_ref().unwrap().as_str(),
        "urn:dancu:loa:1"
    );
    assert_ne!(
        claims.subject().as_str(),
        id,
        "pairwise subjects never show the ID number"
    );

    let info: UserInfoClaims<EmptyAdditionalClaims, CoreGenderClaim> = rp
        .user_info(
            tokens.access_token().clone(),
            Some(claims.subject().clone()),
        )
        .unwrap()
        .request_async(&send)
        .await
        .expect("userinfo for the same subject");
    let name = info.name().unwrap().get(None).unwrap().as_str().to_owned();
    assert_eq!(name, "Nguyễn Thị Minh Anh");

    // Refresh rotates; the rotated-out token coming back revokes the family.
    let r1 = tokens.refresh_token().unwrap().secret().clone();
    let (st, v) = token_basic(
        &s,
        "bank-rp",
        &secret,
        &[("grant_type", "refresh_token"), ("refresh_token", &r1)],
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let r2 = v["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r1, r2);
    let (st, v) = token_basic(
        &s,
        "bank-rp",
        &secret,
        &[("grant_type", "refresh_token"), ("refresh_token", &r1)],
    )
    .await;
    assert_eq!(
        (st, v["error"].as_str()),
        (400, Some("invalid_grant")),
        "{v}"
    );
    assert_eq!(v["code"], "oidc_refresh_token_reused");
    let (st, v) = token_basic(
        &s,
        "bank-rp",
        &secret,
        &[("grant_type", "refresh_token"), ("refresh_token", &r2)],
    )
    .await;
    assert_eq!(st, 400, "the family is revoked: {v}");
    let (st, _) = userinfo_bearer(&s, tokens.access_token().secret()).await;
    assert_eq!(st, 401, "access tokens of the revoked grant stop working");
}

// ----- basic plan -------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_codereuse_rejected_and_its_tokens_revoked() {
    let s = TestServer::start_with_idp().await;
    let id = citizen(&s, 102, "0912345679").await;
    let secret = secret_client(&s, "rp").await;
    let mut b = Browser::new();
    let back = login_and_consent(&s, &mut b, &authorize_url(&s, "rp", &[]), &id).await;
    let code = query(&back)["code"].clone();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", CB),
        ("code_verifier", VERIFIER),
    ];
    let (st, first) = token_basic(&s, "rp", &secret, &form).await;
    assert_eq!(st, 200, "{first}");
    let at = first["access_token"].as_str().unwrap();
    assert_eq!(userinfo_bearer(&s, at).await.0, 200);
    let (st, v) = token_basic(&s, "rp", &secret, &form).await;
    assert_eq!((st, v["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(v["code"], "oidc_code_reused");
    assert!(v["message_vi"].as_str().unwrap().contains("thu hồi"));
    assert_eq!(
        userinfo_bearer(&s, at).await.0,
        401,
        "first access token revoked"
    );
    let rt = first["refresh_token"].as_str().unwrap();
    let (st, _) = token_basic(
        &s,
        "rp",
        &secret,
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
    )
    .await;
    assert_eq!(st, 400, "first refresh token revoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_ensure_registered_redirect_uri_exact_match() {
    let s = TestServer::start_with_idp().await;
    secret_client(&s, "rp").await;
    let mut b = Browser::new();
    for bad in [
        "https://bank.example/cb/",
        "https://bank.example/cb?x=1",
        "https://BANK.example/cb",
        "https://evil.example/cb",
    ] {
        let page = b
            .get(&authorize_url(&s, "rp", &[("redirect_uri", bad)]))
            .await;
        match page {
            Page::Html(400, body) => assert!(body.contains("oidc_redirect_uri_mismatch"), "{body}"),
            other => panic!("{bad}: never redirect to an unregistered URI: {other:?}"),
        }
    }
    let page = b.get(&authorize_url(&s, "nobody", &[])).await;
    assert!(matches!(page, Page::Html(401, _)), "{page:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkce_required_and_verifier_checked() {
    let s = TestServer::start_with_idp().await;
    let id = citizen(&s, 103, "0912345680").await;
    let secret = secret_client(&s, "rp").await;
    let mut b = Browser::new();
    // No code_challenge: refused back to the client.
    let page = b
        .get(&authorize_url(&s, "rp", &[("code_challenge", "")]))
        .await;
    let q = query(page.location());
    assert_eq!(q["error"], "invalid_request");
    assert_eq!(q["state"], "st-1");
    // plain is not accepted.
    let page = b
        .get(&authorize_url(
            &s,
            "rp",
            &[("code_challenge_method", "plain")],
        ))
        .await;
    assert_eq!(query(page.location())["error"], "invalid_request");

    let back = login_and_consent(&s, &mut b, &authorize_url(&s, "rp", &[]), &id).await;
    let code = query(&back)["code"].clone();
    let (st, v) = token_basic(
        &s,
        "rp",
        &secret,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CB),
        ],
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (400, Some("oidc_pkce_mismatch")),
        "{v}"
    );
    // A failed check burns the code: even the right verifier no longer works.
    let (st, _) = token_basic(
        &s,
        "rp",
        &secret,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CB),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(st, 400);

    let back = login_and_consent(&s, &mut b, &authorize_url(&s, "rp", &[]), &id).await;
    let code = query(&back)["code"].clone();
    let wrong = "another-long-enough-pkce-code-verifier-0123456789-abcdefg";
    let (st, v) = token_basic(
        &s,
        "rp",
        &secret,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CB),
            ("code_verifier", wrong),
        ],
    )
    .await;
    assert_eq!((st, v["code"].as_str()), (400, Some("oidc_pkce_mismatch")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_nonce_required_and_echoed() {
    let s = TestServer::start_with_idp().await;
    let id = citizen(&s, 104, "0912345681").await;
    let secret = secret_client(&s, "rp").await;
    let mut b = Browser::new();
    let page = b.get(&authorize_url(&s, "rp", &[("nonce", "")])).await;
    let q = query(page.location());
    assert_eq!(
        (q["error"].as_str(), q["iss"].as_str()),
        ("invalid_request", s.base.as_str())
    );
    assert!(q["error_description"].contains("nonce"));

    let back = login_and_consent(
        &s,
        &mut b,
        &authorize_url(&s, "rp", &[("nonce", "echo-me-123")]),
        &id,
    )
    .await;
    let code = query(&back)["code"].clone();
    let (st, v) = token_basic(
        &s,
        "rp",
        &secret,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CB),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let idp = s.idp.clone().unwrap();
    let keys = off_runtime(|| idp.keys().unwrap());
    let claims: dancu_eid::oidc::claims::IdTokenClaims = keys
        .verify(v["id_token"].as_str().unwrap(), "JWT", s.now_utc())
        .unwrap();
    assert_eq!(claims.nonce.as_deref(), Some("echo-me-123"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_prompt_none_login_and_max_age() {
    let s = TestServer::start_with_idp().await;
    let id = citizen(&s, 105, "0912345682").await;
    secret_client(&s, "rp").await;
    let mut b = Browser::new();
    // prompt=none without a session: login_required back to the client.
    let page = b.get(&authorize_url(&s, "rp", &[("prompt", "none")])).await;
    assert_eq!(query(page.location())["error"], "login_required");
    // Log in once (with consent); then prompt=none gets a code without any page.
    login_and_consent(&s, &mut b, &authorize_url(&s, "rp", &[]), &id).await;
    let page = b.get(&authorize_url(&s, "rp", &[("prompt", "none")])).await;
    assert!(query(page.location()).contains_key("code"));
    // prompt=login shows the login page despite the session.
    let page = b
        .get(&authorize_url(&s, "rp", &[("prompt", "login")]))
        .await;
    assert!(page.html().contains("/authorize/login"));
    // max_age: after 10 minutes, max_age=300 needs a fresh login; max_age=3600 does not.
    s.clock.advance(chrono::Duration::minutes(10));
    let page = b.get(&authorize_url(&s, "rp", &[("max_age", "300")])).await;
    assert!(page.html().contains("/authorize/login"));
    let page = b
        .get(&authorize_url(&s, "rp", &[("max_age", "3600")]))
        .await;
    assert!(query(page.location()).contains_key("code"));
    // prompt=consent asks again; deny goes back as access_denied.
    let page = b
        .get(&authorize_url(&s, "rp", &[("prompt", "consent")]))
        .await;
    let tx = page.tx();
    let page = b
        .post(
            &format!("{}/authorize/consent", s.base),
            &[("tx", &tx), ("decision", "deny")],
        )
        .await;
    assert_eq!(query(page.location())["error"], "access_denied");
    // A wrong passcode shows the login page again with the error, and no session.
    let mut other = Browser::new();
    let page = other.get(&authorize_url(&s, "rp", &[])).await;
    let tx = page.tx();
    let page = other
        .post(
            &format!("{}/authorize/login", s.base),
            &[("tx", &tx), ("id_number", &id), ("passcode", "111222")],
        )
        .await;
    match page {
        Page::Html(401, body) => assert!(body.contains("eid_bad_credentials"), "{body}"),
        other => panic!("{other:?}"),
    }
    assert!(other.cookie.is_none());
}

// ----- FAPI 2.0: PAR, private_key_jwt, DPoP ------------------------------------------------

struct FapiRp {
    key: SigningKey,
    dpop: SigningKey,
}

impl FapiRp {
    fn new(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        Self {
            key: SigningKey::generate_from_rng(&mut rng),
            dpop: SigningKey::generate_from_rng(&mut rng),
        }
    }

    async fn register(&self, s: &TestServer, id: &str) {
        client(
            s,
            json!({"id": id, "name": "FAPI RP", "redirect_uris": [CB],
                   "token_endpoint_auth_method": "private_key_jwt",
                   "jwks": [Jwk::from_p256(self.key.verifying_key())],
                   "require_par": true, "require_dpop": true}),
        )
        .await;
    }

    fn assertion(&self, s: &TestServer, id: &str, aud: &str, jti: &str) -> String {
        let now = s.now_utc().timestamp();
        let _ = &s.base;
        sign_es256(
            &self.key,
            "JWT",
            None,
            false,
            &json!({"iss": id, "sub": id, "aud": aud, "jti": jti, "iat": now, "exp": now + 60}),
        )
        .unwrap()
    }

    fn proof(
        &self,
        s: &TestServer,
        htm: &str,
        htu: &str,
        token: Option<&str>,
        jti: &str,
    ) -> String {
        let mut c = json!({"jti": jti, "htm": htm, "htu": htu, "iat": s.now_utc().timestamp()});
        if let Some(t) = token {
            c["ath"] = access_token_hash(t).into();
        }
        sign_es256(&self.dpop, "dpop+jwt", None, true, &c).unwrap()
    }
}

async fn post_form(
    s: &TestServer,
    path: &str,
    form: &[(&str, &str)],
    dpop: Option<&str>,
) -> (u16, Value) {
    let mut r = s
        .http
        .post(format!("{}{path}", s.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            form.iter()
                .map(|(k, v)| format!("{k}={}", enc(v)))
                .collect::<Vec<_>>()
                .join("&"),
        );
    if let Some(p) = dpop {
        r = r.header("dpop", p);
    }
    let resp = r.send().await.unwrap();
    let st = resp.status().as_u16();
    (st, resp.json().await.unwrap())
}

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

async fn push(s: &TestServer, rp: &FapiRp, id: &str, jti: &str) -> (u16, Value) {
    let assertion = rp.assertion(s, id, &s.base, jti);
    let proof = rp.proof(
        s,
        "POST",
        &format!("{}/par", s.base),
        None,
        &format!("par-{jti}"),
    );
    let challenge = challenge_s256(VERIFIER);
    post_form(
        s,
        "/par",
        &[
            ("client_id", id),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &assertion),
            ("response_type", "code"),
            ("redirect_uri", CB),
            ("scope", "openid profile"),
            ("state", "fapi-state"),
            ("nonce", "fapi-nonce"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
        Some(&proof),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fapi2_par_private_key_jwt_dpop_happy_path_and_dpop_checks() {
    let s = TestServer::start_with_idp().await;
    let id = citizen(&s, 106, "0912345683").await;
    let rp = FapiRp::new(1);
    rp.register(&s, "fapi").await;
    // Without PAR the client is refused.
    let mut b = Browser::new();
    let page = b.get(&authorize_url(&s, "fapi", &[])).await;
    assert_eq!(query(page.location())["error"], "invalid_request");

    let (st, v) = push(&s, &rp, "fapi", "a1").await;
    assert_eq!(st, 201, "{v}");
    let uri = v["request_uri"].as_str().unwrap().to_owned();
    let url = format!(
        "{}/authorize?client_id=fapi&request_uri={}",
        s.base,
        enc(&uri)
    );
    let back = login_and_consent(&s, &mut b, &url, &id).await;
    let q = query(&back);
    assert_eq!(q["state"], "fapi-state");
    let token_url = format!("{}/token", s.base);
    let assertion = rp.assertion(&s, "fapi", &s.base, "a2");
    let form = [
        ("client_id", "fapi"),
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", assertion.as_str()),
        ("grant_type", "authorization_code"),
        ("code", q["code"].as_str()),
        ("redirect_uri", CB),
        ("code_verifier", VERIFIER),
    ];
    // No DPoP proof: refused (the client requires DPoP).
    let (st, v) = post_form(&s, "/token", &form, None).await;
    assert_eq!(
        (st, v["error"].as_str()),
        (400, Some("invalid_dpop_proof")),
        "{v}"
    );
    let assertion = rp.assertion(&s, "fapi", &s.base, "a3");
    let mut form = form;
    form[2].1 = &assertion;
    let proof = rp.proof(&s, "POST", &token_url, None, "t1");
    let (st, v) = post_form(&s, "/token", &form, Some(&proof)).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["token_type"], "DPoP");
    let at = v["access_token"].as_str().unwrap().to_owned();

    let ui = format!("{}/userinfo", s.base);
    let call = |proof: String, scheme: &'static str| {
        let at = at.clone();
        let http = s.http.clone();
        let ui = ui.clone();
        async move {
            let r = http
                .get(&ui)
                .header("authorization", format!("{scheme} {at}"))
                .header("dpop", proof)
                .send()
                .await
                .unwrap();
            let st = r.status().as_u16();
            (st, r.json::<Value>().await.unwrap())
        }
    };
    // fapi2-…-dpop-wrong-htm, wrong htu, wrong/missing ath, bearer downgrade.
    let (st, v) = call(rp.proof(&s, "POST", &ui, Some(&at), "u1"), "DPoP").await;
    assert_eq!(
        (st, v["error"].as_str()),
        (400, Some("invalid_dpop_proof")),
        "wrong htm: {v}"
    );
    let (st, _) = call(
        rp.proof(&s, "GET", &format!("{}/other", s.base), Some(&at), "u2"),
        "DPoP",
    )
    .await;
    assert_eq!(st, 400, "wrong htu");
    let (st, _) = call(
        rp.proof(&s, "GET", &ui, Some("another-token"), "u3"),
        "DPoP",
    )
    .await;
    assert_eq!(st, 400, "wrong ath");
    let (st, _) = call(rp.proof(&s, "GET", &ui, None, "u4"), "DPoP").await;
    assert_eq!(st, 400, "missing ath");
    let (st, _) = call(rp.proof(&s, "GET", &ui, Some(&at), "u5"), "Bearer").await;
    assert_eq!(st, 401, "a DPoP-bound token is not a bearer token");
    let good = rp.proof(&s, "GET", &ui, Some(&at), "u6");
    let (st, v) = call(good.clone(), "DPoP").await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["given_name"], "Anh");
    let (st, _) = call(good, "DPoP").await;
    assert_eq!(st, 400, "a replayed proof is refused");
    // Another key cannot use the token.
    let thief = FapiRp::new(99);
    let (st, _) = call(thief.proof(&s, "GET", &ui, Some(&at), "u7"), "DPoP").await;
    assert_eq!(st, 401, "proof from another key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fapi2_par_request_uri_expired_or_reused() {
    let s = TestServer::start_with_idp().await;
    citizen(&s, 107, "0912345684").await;
    let rp = FapiRp::new(2);
    rp.register(&s, "fapi").await;
    let (st, v) = push(&s, &rp, "fapi", "b1").await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["expires_in"], 60);
    let uri = v["request_uri"].as_str().unwrap().to_owned();
    s.clock.advance(chrono::Duration::seconds(61));
    let mut b = Browser::new();
    let url = format!(
        "{}/authorize?client_id=fapi&request_uri={}",
        s.base,
        enc(&uri)
    );
    match b.get(&url).await {
        Page::Html(400, body) => assert!(body.contains("oidc_invalid_request"), "{body}"),
        other => panic!("expired request_uri: {other:?}"),
    }
    let (_, v) = push(&s, &rp, "fapi", "b2").await;
    let uri = v["request_uri"].as_str().unwrap().to_owned();
    let url = format!(
        "{}/authorize?client_id=fapi&request_uri={}",
        s.base,
        enc(&uri)
    );
    assert!(b.get(&url).await.html().contains("/authorize/login"));
    assert!(
        matches!(b.get(&url).await, Page::Html(400, _)),
        "single use"
    );
}

/// A pushed request authenticated by `assertion`, with a fresh DPoP proof.
async fn par_with(s: &TestServer, rp: &FapiRp, assertion: String) -> (u16, Value) {
    let challenge = challenge_s256(VERIFIER);
    let proof = rp.proof(
        s,
        "POST",
        &format!("{}/par", s.base),
        None,
        &assertion[assertion.len() - 20..],
    );
    post_form(
        s,
        "/par",
        &[
            ("client_id", "fapi"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &assertion),
            ("response_type", "code"),
            ("redirect_uri", CB),
            ("scope", "openid"),
            ("nonce", "n"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
        Some(&proof),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fapi2_client_assertion_wrong_aud_and_replayed_jti() {
    let s = TestServer::start_with_idp().await;
    let rp = FapiRp::new(3);
    rp.register(&s, "fapi").await;
    let (st, v) = par_with(
        &s,
        &rp,
        rp.assertion(&s, "fapi", "https://someone-else.example", "c1"),
    )
    .await;
    assert_eq!(
        (st, v["error"].as_str()),
        (401, Some("invalid_client")),
        "wrong aud: {v}"
    );
    let good = rp.assertion(&s, "fapi", &s.base, "c2");
    let (st, v) = par_with(&s, &rp, good.clone()).await;
    assert_eq!(st, 201, "{v}");
    let (st, v) = par_with(&s, &rp, good).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (401, Some("oidc_jti_replay")),
        "replayed jti: {v}"
    );
    // Signed by a key the client did not register.
    let other = FapiRp::new(4);
    let (st, _) = par_with(&s, &rp, other.assertion(&s, "fapi", &s.base, "c3")).await;
    assert_eq!(st, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_old_tokens_keep_verifying_until_they_expire() {
    let s = TestServer::start_with_idp().await;
    secret_client(&s, "rp").await;
    let v = client(
        &s,
        json!({"id": "svc", "name": "Máy chủ", "redirect_uris": [], "machine": true,
               "token_endpoint_auth_method": "client_secret_basic", "scopes": ["registry.read"]}),
    )
    .await;
    let secret = v["client_secret"].as_str().unwrap().to_owned();
    let (st, v) = token_basic(
        &s,
        "svc",
        &secret,
        &[
            ("grant_type", "client_credentials"),
            ("scope", "registry.read"),
        ],
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let old_token = v["access_token"].as_str().unwrap().to_owned();
    let jwks_before: Value = s
        .http
        .get(format!("{}/jwks", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let old_kid = jwks_before["keys"][0]["kid"].as_str().unwrap().to_owned();

    let (st, v) = post_json(&s, Some(&s.national), "/api/v1/oidc/keys/rotate", json!({})).await;
    assert_eq!(st, 200, "{v}");
    assert_ne!(v["active_kid"], old_kid);
    let (st, _) = post_json(&s, Some(&s.viewer), "/api/v1/oidc/keys/rotate", json!({})).await;
    assert_eq!(st, 403, "only supervisors rotate keys");
    let jwks: Value = s
        .http
        .get(format!("{}/jwks", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids.len(), 2, "old key still published: {kids:?}");
    assert!(kids.contains(&old_kid.as_str()));

    let introspect = |token: String| {
        let secret = secret.clone();
        let s = &s;
        async move {
            let resp = s
                .http
                .post(format!("{}/introspect", s.base))
                .basic_auth("svc", Some(&secret))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("token={}", enc(&token)))
                .send()
                .await
                .unwrap();
            resp.json::<Value>().await.unwrap()
        }
    };
    assert_eq!(
        introspect(old_token.clone()).await["active"],
        true,
        "signed by the retired key"
    );
    let (_, v) = token_basic(
        &s,
        "svc",
        &secret,
        &[
            ("grant_type", "client_credentials"),
            ("scope", "registry.read"),
        ],
    )
    .await;
    let new_token = v["access_token"].as_str().unwrap().to_owned();
    assert_eq!(introspect(new_token.clone()).await["active"], true);
    // Past the old token's lifetime the retired key leaves the JWKS.
    s.clock.advance(chrono::Duration::minutes(7));
    assert_eq!(introspect(old_token).await["active"], false);
    let jwks: Value = s
        .http
        .get(format!("{}/jwks", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    // Revocation of an access token.
    s.clock.advance(chrono::Duration::seconds(-400));
    let resp = s
        .http
        .post(format!("{}/revoke", s.base))
        .basic_auth("svc", Some(&secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={}", enc(&new_token)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(introspect(new_token).await["active"], false);
}

// ----- accounts: levels, step-up, locks, throttling, history --------------------------------

/// Logs in with `passcode` on a fresh login page; returns the page or redirect that follows.
async fn try_login(s: &TestServer, b: &mut Browser, url: &str, id: &str, passcode: &str) -> Page {
    let page = b.get(url).await;
    let tx = page.tx();
    b.post(
        &format!("{}/authorize/login", s.base),
        &[("tx", &tx), ("id_number", id), ("passcode", passcode)],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn level2_raise_by_officer_and_step_up_with_sms_code() {
    let s = TestServer::start_with_idp().await;
    let id = citizen(&s, 110, "0987654321").await;
    let secret = secret_client(&s, "rp").await;
    let loa2 = [("acr_values", "urn:dancu:loa:2")];
    // A level-1 account cannot meet a level-2 request.
    let mut b = Browser::new();
    let page = try_login(&s, &mut b, &authorize_url(&s, "rp", &loa2), &id, PASSCODE).await;
    assert_eq!(
        query(page.location())["error"],
        "unmet_authentication_requirements"
    );

    let raise = json!({"id": id, "place": "Công an phường Ba Đình", "face_checked": true, "fingerprints_checked": true});
    let (st, _) = post_json(&s, Some(&s.viewer), "/api/v1/eid/level2", raise.clone()).await;
    assert_eq!(st, 403, "a viewer cannot raise accounts");
    let incomplete = json!({"id": id, "place": "Công an phường Ba Đình", "face_checked": true, "fingerprints_checked": false});
    let (st, v) = post_json(&s, Some(&s.registrar), "/api/v1/eid/level2", incomplete).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (422, Some("eid_in_person_check_incomplete"))
    );
    let (st, v) = post_json(&s, Some(&s.registrar), "/api/v1/eid/level2", raise).await;
    assert_eq!((st, v["level"].as_i64()), (200, Some(2)), "{v}");

    // Passcode alone reaches level 1: the one-time code page follows.
    let mut b = Browser::new();
    let page = try_login(&s, &mut b, &authorize_url(&s, "rp", &loa2), &id, PASSCODE).await;
    assert!(page.html().contains("/authorize/otp"), "{page:?}");
    assert!(page.html().contains("0*******321"), "{page:?}");
    let tx = page.tx();
    let page = b
        .post(
            &format!("{}/authorize/otp", s.base),
            &[("tx", &tx), ("code", "000000")],
        )
        .await;
    match &page {
        Page::Html(401, body) => assert!(body.contains("eid_otp_wrong"), "{body}"),
        other => panic!("{other:?}"),
    }
    let code = last_code(&s, "+84987654321");
    let page = b
        .post(
            &format!("{}/authorize/otp", s.base),
            &[("tx", &tx), ("code", &code)],
        )
        .await;
    let tx = page.tx();
    let page = b
        .post(
            &format!("{}/authorize/consent", s.base),
            &[("tx", &tx), ("decision", "allow")],
        )
        .await;
    let code = query(page.location())["code"].clone();
    let (st, v) = token_basic(
        &s,
        "rp",
        &secret,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CB),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let idp = s.idp.clone().unwrap();
    let keys = off_runtime(|| idp.keys().unwrap());
    let claims: dancu_eid::oidc::claims::IdTokenClaims = keys
        .verify(v["id_token"].as_str().unwrap(), "JWT", s.now_utc())
        .unwrap();
    assert_eq!(claims.acr, "urn:dancu:loa:2");
    let amr = serde_json::to_value(&claims.amr).unwrap();
    assert_eq!(amr, json!(["pin", "sms", "mfa"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_locks_when_the_register_records_a_death() {
    let s = TestServer::start_with_idp().await;
    let id = citizen(&s, 111, "0911111111").await;
    let secret = secret_client(&s, "rp").await;
    let mut b = Browser::new();
    let back = login_and_consent(&s, &mut b, &authorize_url(&s, "rp", &[]), &id).await;
    let code = query(&back)["code"].clone();
    let (st, v) = token_basic(
        &s,
        "rp",
        &secret,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CB),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let refresh = v["refresh_token"].as_str().unwrap().to_owned();
    let (st, v) = post_json(
        &s,
        Some(&s.national),
        "/api/v1/deaths",
        json!({"person": id, "expected_version": 2, "date_of_death": "2026-02-28", "document_ref": "TK-09"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    // Refresh tokens stop working and their grant is revoked.
    let (st, v) = token_basic(
        &s,
        "rp",
        &secret,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(
        (st, v["error"].as_str(), v["code"].as_str()),
        (400, Some("invalid_grant"), Some("eid_account_locked")),
        "{v}"
    );
    // The session the person had no longer yields codes, and a new login is refused.
    let page = b.get(&authorize_url(&s, "rp", &[])).await;
    match page {
        Page::Html(_, body) => assert!(body.contains("eid_account_locked"), "{body}"),
        other => panic!("a dead person's session must not get a code: {other:?}"),
    }
    let mut fresh = Browser::new();
    match try_login(&s, &mut fresh, &authorize_url(&s, "rp", &[]), &id, PASSCODE).await {
        Page::Html(401, body) => assert!(body.contains("eid_account_locked"), "{body}"),
        other => panic!("{other:?}"),
    }
    assert!(fresh.cookie.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passcode_guessing_is_throttled_per_account() {
    let s = TestServer::start_with_idp().await;
    let id = citizen(&s, 112, "0922222222").await;
    secret_client(&s, "rp").await;
    let url = authorize_url(&s, "rp", &[]);
    let mut b = Browser::new();
    let mut throttled_after = None;
    for attempt in 1..=8 {
        match try_login(&s, &mut b, &url, &id, "135792").await {
            Page::Html(429, body) => {
                assert!(body.contains("eid_throttled"), "{body}");
                throttled_after = Some(attempt);
                break;
            }
            Page::Html(401, body) => assert!(body.contains("eid_bad_credentials"), "{body}"),
            other => panic!("{other:?}"),
        }
    }
    let n = throttled_after.expect("throttled within 8 attempts");
    assert!(n > 3, "three failures are free, got throttled at {n}");
    // While throttled even the right passcode is refused; later it works again.
    assert!(matches!(
        try_login(&s, &mut b, &url, &id, PASSCODE).await,
        Page::Html(429, _)
    ));
    s.clock.advance(chrono::Duration::minutes(10));
    let page = try_login(&s, &mut b, &url, &id, PASSCODE).await;
    assert!(page.html().contains("/authorize/consent"), "{page:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn level1_registration_refusals_change_nothing() {
    let s = TestServer::start_with_idp().await;
    let doc: Value = s
        .http
        .get(format!("{}/api/openapi.json", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/api/v1/eid/accounts",
        "/api/v1/eid/level2",
        "/api/v1/oidc/clients",
    ] {
        assert!(
            doc["paths"][path]["post"].is_object(),
            "{path} in the OpenAPI document"
        );
    }
    assert!(doc["components"]["schemas"]["RegisterBody"].is_object());
    let id = s.adult(113, "Trần Văn Bình", Sex::Male, 1988, BA_DINH);
    let (st, v) = post_json(
        &s,
        None,
        "/api/v1/eid/phone-codes",
        json!({"phone": "12345"}),
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (422, Some("eid_phone_invalid")),
        "{v}"
    );
    let (_, v) = post_json(
        &s,
        None,
        "/api/v1/eid/phone-codes",
        json!({"phone": "0933333333"}),
    )
    .await;
    let otp_id = v["otp_id"].as_str().unwrap().to_owned();
    let code = last_code(&s, "+84933333333");
    let body = |code: &str, face: &[u8]| json!({"id": id, "phone": "0933333333", "otp_id": otp_id, "code": code, "face_image": b64(face), "passcode": PASSCODE});
    let (st, v) = post_json(&s, None, "/api/v1/eid/accounts", body("000000", FACE)).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (422, Some("eid_otp_wrong")),
        "{v}"
    );
    // No card recorded: a 14+ person needs one.
    let (st, v) = post_json(&s, None, "/api/v1/eid/accounts", body(&code, FACE)).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (422, Some("eid_card_required")),
        "{v}"
    );
    // A refused registration stores nothing, so the same code still proves the phone.
    let (st, v) = post_json(
        &s,
        Some(&s.national),
        "/api/v1/cards",
        json!({"person": id, "expected_version": 1, "card": {"number": id, "kind": "can_cuoc", "issued_on": "2025-01-10", "status": "valid"}}),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let (st, v) = post_json(&s, None, "/api/v1/eid/accounts", body(&code, FACE)).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (422, Some("eid_face_reference_missing")),
        "{v}"
    );
    let (st, _) = post_json(
        &s,
        Some(&s.national),
        "/api/v1/eid/face-references",
        json!({"id": id, "image": b64(FACE)}),
    )
    .await;
    assert_eq!(st, 200);
    let (st, v) = post_json(
        &s,
        None,
        "/api/v1/eid/accounts",
        body(&code, b"somebody else"),
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (422, Some("eid_face_mismatch")),
        "{v}"
    );
    let mut weak = body(&code, FACE);
    weak["passcode"] = "123456".into();
    let (st, v) = post_json(&s, None, "/api/v1/eid/accounts", weak).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (422, Some("eid_passcode_too_simple")),
        "{v}"
    );
    let (st, v) = post_json(&s, None, "/api/v1/eid/accounts", body(&code, FACE)).await;
    assert_eq!(st, 201, "{v}");
    let (st, v) = post_json(&s, None, "/api/v1/eid/accounts", body(&code, FACE)).await;
    assert_eq!(st, 422, "the code is used up: {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holder_sees_usage_history_and_withdraws_consent() {
    let s = TestServer::start_with_idp().await;
    let id = citizen(&s, 114, "0944444444").await;
    let secret = secret_client(&s, "rp").await;
    let mut b = Browser::new();
    try_login(&s, &mut b, &authorize_url(&s, "rp", &[]), &id, "999000").await;
    let back = login_and_consent(&s, &mut b, &authorize_url(&s, "rp", &[]), &id).await;
    let code = query(&back)["code"].clone();
    let (_, v) = token_basic(
        &s,
        "rp",
        &secret,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CB),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    let at = v["access_token"].as_str().unwrap().to_owned();

    let resp = s
        .http
        .post(format!("{}/api/v1/eid/me/history", s.base))
        .bearer_auth(&at)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let h: Value = resp.json().await.unwrap();
    let kinds: Vec<(String, Value)> = h["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"]["kind"].as_str().unwrap().to_owned(),
                e["kind"]["success"].clone(),
            )
        })
        .collect();
    assert_eq!(kinds[0].0, "consent", "newest first: {kinds:?}");
    assert!(kinds.contains(&("authentication".to_owned(), json!(true))));
    assert!(
        kinds.contains(&("authentication".to_owned(), json!(false))),
        "failed attempts too"
    );
    let resp = s
        .http
        .post(format!("{}/api/v1/eid/me/history", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);

    assert_eq!(userinfo_bearer(&s, &at).await.0, 200);
    let resp = s
        .http
        .post(format!("{}/api/v1/eid/me/consents/revoke", s.base))
        .bearer_auth(&at)
        .json(&json!({"client_id": "rp"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap()["revoked"], true);
    let (st, v) = userinfo_bearer(&s, &at).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (403, Some("oidc_consent_withdrawn"))
    );
    // The next authorization asks again.
    let page = b.get(&authorize_url(&s, "rp", &[])).await;
    assert!(page.html().contains("/authorize/consent"));
}

#[test]
fn cli_client_add_prints_the_secret_once_and_refuses_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_dancu"))
            .arg("--data-dir")
            .arg(dir.path())
            .args(["client", "add"])
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&[
        "--id",
        "portal",
        "--name",
        "Cổng dịch vụ công",
        "--redirect-uri",
        "https://portal.example/cb",
        "--auth",
        "client_secret_basic",
        "--public-subject",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["client"]["token_endpoint_auth_method"],
        "client_secret_basic"
    );
    assert_eq!(v["client"]["subject_type"]["subject_type"], "public");
    assert_eq!(v["client_secret"].as_str().unwrap().len(), 43);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("secret_sha256"));
    let again = run(&[
        "--id",
        "portal",
        "--name",
        "x",
        "--redirect-uri",
        "https://portal.example/cb",
        "--auth",
        "client_secret_basic",
    ]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("oidc_client_exists"));
    let bad = run(&[
        "--id",
        "b",
        "--name",
        "x",
        "--redirect-uri",
        "http://evil.example/cb",
        "--auth",
        "client_secret_basic",
    ]);
    assert!(!bad.status.success(), "plain http only on localhost");
}

fn b64url(bytes: &[u8]) -> String {
    b64(bytes)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

/// The Node.js `openid-client` relying party (tests/rp-node) drives code + PKCE + PAR +
/// private_key_jwt + DPoP. It needs `npm ci` in tests/rp-node (`.ci/run` does it and sets
/// DANCU_REQUIRE_NODE_RP, so CI fails rather than skips when it is missing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_openid_client_code_pkce_par_private_key_jwt_dpop() {
    let rp_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/rp-node");
    if !rp_dir.join("node_modules/openid-client").exists() {
        assert!(
            std::env::var("DANCU_REQUIRE_NODE_RP").is_err(),
            "DANCU_REQUIRE_NODE_RP is set but tests/rp-node has no node_modules: run npm ci there"
        );
        eprintln!("*** skipped: run `npm ci` in tests/rp-node for the Node.js relying party ***");
        return;
    }
    let s = TestServer::start_with_idp().await;
    // openid-client checks token times against the real clock.
    s.clock.advance(chrono::Utc::now() - s.now_utc());
    let id = citizen(&s, 120, "0955555555").await;
    let rp = FapiRp::new(5);
    rp.register(&s, "node-rp").await;
    let mut jwk = serde_json::to_value(Jwk::from_p256(rp.key.verifying_key())).unwrap();
    jwk["d"] = b64url(&rp.key.to_bytes()).into();
    let envs = [
        ("DANCU_ISSUER", s.base.clone()),
        ("DANCU_CLIENT_ID", "node-rp".to_owned()),
        ("DANCU_CLIENT_JWK", jwk.to_string()),
        ("DANCU_REDIRECT_URI", CB.to_owned()),
        ("DANCU_ID_NUMBER", id.clone()),
        ("DANCU_PASSCODE", PASSCODE.to_owned()),
    ];
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg("rp.mjs")
            .current_dir(&rp_dir)
            .envs(envs)
            .output()
            .expect("node on the PATH")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "the Node.js relying party failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["iss"], s.base);
    assert_eq!(v["aud"], "node-rp");
    assert_eq!(v["acr"], "urn:dancu:loa:1");
    // openid-client normalises the token type to lower case.
    assert_eq!(
        v["token_type"].as_str().map(str::to_lowercase).as_deref(),
        Some("dpop")
    );
    assert_eq!(v["name"], "Nguyễn Thị Minh Anh");
    assert_ne!(v["sub"], id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guardian_acts_for_a_child_under_six_and_tokens_say_so() {
    let s = TestServer::start_with_idp().await;
    let parent = citizen(&s, 130, "0966666666").await;
    let stranger = citizen(&s, 131, "0966666667").await;
    let secret = secret_client(&s, "rp").await;
    // The child's account is applied for by the guardian, who must hold a level-2 account.
    let child = s.adult(132, "Nguyễn Bảo Ngọc", Sex::Female, 2023, BA_DINH);
    let (st, _) = post_json(
        &s,
        Some(&s.national),
        "/api/v1/eid/face-references",
        json!({"id": child, "image": b64(b"child face")}),
    )
    .await;
    assert_eq!(st, 200);
    let register_child = |otp_id: String, code: String| {
        json!({"id": child, "phone": "0966666666", "otp_id": otp_id, "code": code,
               "face_image": b64(b"child face"), "passcode": "271828",
               "guardian": {"id": parent, "appointment_reference": "QĐ-GH-12/2025"}})
    };
    let (_, v) = post_json(
        &s,
        None,
        "/api/v1/eid/phone-codes",
        json!({"phone": "0966666666"}),
    )
    .await;
    let otp = v["otp_id"].as_str().unwrap().to_owned();
    let code = last_code(&s, "+84966666666");
    let (st, v) = post_json(
        &s,
        None,
        "/api/v1/eid/accounts",
        register_child(otp.clone(), code.clone()),
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (422, Some("eid_guardian_account_required")),
        "{v}"
    );
    let raise = json!({"id": parent, "place": "Công an phường Ba Đình", "face_checked": true, "fingerprints_checked": true});
    assert_eq!(
        post_json(&s, Some(&s.registrar), "/api/v1/eid/level2", raise)
            .await
            .0,
        200
    );
    let (st, v) = post_json(&s, None, "/api/v1/eid/accounts", register_child(otp, code)).await;
    assert_eq!(
        (st, v["management"].as_str()),
        (201, Some("guardian")),
        "{v}"
    );

    // The child cannot log in alone; a stranger cannot act for the child.
    let url = authorize_url(&s, "rp", &[]);
    let mut b = Browser::new();
    match try_login(&s, &mut b, &url, &child, "271828").await {
        Page::Html(401, body) => assert!(body.contains("eid_managed_by_guardian"), "{body}"),
        other => panic!("{other:?}"),
    }
    let page = b.get(&url).await;
    let tx = page.tx();
    let login = |tx: String, who: String| {
        vec![
            ("tx".to_owned(), tx),
            ("id_number".to_owned(), who),
            ("passcode".to_owned(), PASSCODE.to_owned()),
            ("acting_for".to_owned(), child.clone()),
        ]
    };
    let form = login(tx, stranger.clone());
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    match b.post(&format!("{}/authorize/login", s.base), &form).await {
        Page::Html(401, body) => assert!(body.contains("eid_not_the_guardian"), "{body}"),
        other => panic!("{other:?}"),
    }

    // The guardian acts for the child: the tokens are the child's, with act naming the guardian.
    let page = b.get(&url).await;
    let form = login(page.tx(), parent.clone());
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let page = b.post(&format!("{}/authorize/login", s.base), &form).await;
    let tx = page.tx();
    let page = b
        .post(
            &format!("{}/authorize/consent", s.base),
            &[("tx", &tx), ("decision", "allow")],
        )
        .await;
    let code = query(page.location())["code"].clone();
    let (st, v) = token_basic(
        &s,
        "rp",
        &secret,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CB),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let at = v["access_token"].as_str().unwrap().to_owned();
    let idp = s.idp.clone().unwrap();
    let keys = off_runtime(|| idp.keys().unwrap());
    let claims: dancu_eid::oidc::claims::IdTokenClaims = keys
        .verify(v["id_token"].as_str().unwrap(), "JWT", s.now_utc())
        .unwrap();
    let act = claims.act.clone().expect("act names the guardian");
    assert_ne!(act.sub, claims.sub);
    let (st, info) = userinfo_bearer(&s, &at).await;
    assert_eq!(st, 200);
    assert_eq!(info["name"], "Nguyễn Bảo Ngọc");
    assert_eq!(info["act"]["sub"], act.sub.as_str());
    // act.sub is the guardian's own subject at this client.
    let mut own = Browser::new();
    let back = login_and_consent(&s, &mut own, &authorize_url(&s, "rp", &[]), &parent).await;
    let code = query(&back)["code"].clone();
    let (_, v) = token_basic(
        &s,
        "rp",
        &secret,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CB),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    let parent_claims: dancu_eid::oidc::claims::IdTokenClaims = keys
        .verify(v["id_token"].as_str().unwrap(), "JWT", s.now_utc())
        .unwrap();
    assert_eq!(parent_claims.sub, act.sub);
    assert!(parent_claims.act.is_none());
    // The child's history records the guardian's action.
    let resp = s
        .http
        .post(format!("{}/api/v1/eid/me/history", s.base))
        .bearer_auth(&at)
        .send()
        .await
        .unwrap();
    let h: Value = resp.json().await.unwrap();
    assert!(
        h["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"]["kind"] == "guardian_action"
                && e["kind"]["guardian"] == parent.as_str()),
        "{h}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_userinfo_refresh_revocation_and_rp_initiated_logout() {
    let s = TestServer::start_with_idp().await;
    let id = citizen(&s, 140, "0977777777").await;
    let secret = secret_client(&s, "rp").await;
    let mut b = Browser::new();
    let back = login_and_consent(&s, &mut b, &authorize_url(&s, "rp", &[]), &id).await;
    let code = query(&back)["code"].clone();
    let (_, v) = token_basic(
        &s,
        "rp",
        &secret,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CB),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    let at = v["access_token"].as_str().unwrap().to_owned();
    let rt = v["refresh_token"].as_str().unwrap().to_owned();
    let id_token = v["id_token"].as_str().unwrap().to_owned();

    // Userinfo as a signed JWT, verifiable with the provider's keys, addressed to the client.
    let resp = s
        .http
        .get(format!("{}/userinfo", s.base))
        .bearer_auth(&at)
        .header("accept", "application/jwt")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "application/jwt");
    let jwt = resp.text().await.unwrap();
    let idp = s.idp.clone().unwrap();
    let keys = off_runtime(|| idp.keys().unwrap());
    let claims: Value = keys.verify(&jwt, "JWT", s.now_utc()).unwrap();
    assert_eq!(
        (claims["iss"].as_str(), claims["aud"].as_str()),
        (Some(s.base.as_str()), Some("rp"))
    );
    assert_eq!(claims["family_name"], "Nguyễn");

    // Introspection and revocation of the refresh token (RFC 7662, RFC 7009).
    let call = |path: &'static str, token: String| {
        let (http, base, secret) = (s.http.clone(), s.base.clone(), secret.clone());
        async move {
            let r = http
                .post(format!("{base}{path}"))
                .basic_auth("rp", Some(&secret))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("token={}", enc(&token)))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    assert_eq!(call("/introspect", rt.clone()).await.1["active"], true);
    let (st, v) = call("/introspect", at.clone()).await;
    assert_eq!(
        (st, &v["active"], &v["client_id"]),
        (200, &json!(true), &json!("rp"))
    );
    assert_eq!(call("/revoke", rt.clone()).await.0, 200);
    assert_eq!(call("/introspect", rt.clone()).await.1["active"], false);
    assert_eq!(
        call("/introspect", at.clone()).await.1["active"],
        false,
        "the grant is revoked"
    );
    let (st, _) = token_basic(
        &s,
        "rp",
        &secret,
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
    )
    .await;
    assert_eq!(st, 400);
    // Another client cannot introspect or revoke this client's tokens; bad credentials fail.
    let r = s
        .http
        .post(format!("{}/introspect", s.base))
        .basic_auth("rp", Some("wrong"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("token=x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    // RP-initiated logout: back to a registered URI with state; the session is gone.
    let url = format!(
        "{}/logout?id_token_hint={}&post_logout_redirect_uri={}&state=bye",
        s.base,
        enc(&id_token),
        enc(CB)
    );
    let page = b.get(&url).await;
    assert_eq!(page.location(), format!("{CB}?state=bye"));
    assert!(b.cookie.is_none(), "the cookie is cleared");
    let page = b.get(&authorize_url(&s, "rp", &[("prompt", "none")])).await;
    assert_eq!(query(page.location())["error"], "login_required");
    // An unregistered target is not followed.
    let url = format!(
        "{}/logout?client_id=rp&post_logout_redirect_uri={}",
        s.base,
        enc("https://evil.example/")
    );
    assert!(b.get(&url).await.html().contains("Đã đăng xuất"));
}

// ----- second factors: authenticator app (TOTP) and passkeys ---------------------------------

/// An access token of the holder `id` from a plain level-1 login for the client `rp`.
async fn holder_token(s: &TestServer, id: &str, secret: &str) -> String {
    let mut b = Browser::new();
    let back = login_and_consent(s, &mut b, &authorize_url(s, "rp", &[]), id).await;
    let code = query(&back)["code"].clone();
    let (st, v) = token_basic(
        s,
        "rp",
        secret,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CB),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(st, 200, "{v}");
    v["access_token"].as_str().unwrap().to_owned()
}

fn base32_decode(s: &str) -> Vec<u8> {
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u32, 0u32);
    for c in s.bytes() {
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

/// The code an authenticator app shows at the server's time.
fn app_code(s: &TestServer, secret_b32: &str) -> String {
    let c = dancu_eid::authn::totp::TotpCredential {
        secret: base32_decode(secret_b32),
        digits: 6,
        step_secs: 30,
        last_step: None,
    };
    c.code_for_step(c.step_at(s.now_utc()))
}

fn sms_count(s: &TestServer) -> usize {
    std::fs::read_to_string(&s.sms_outbox)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

async fn id_token_claims(
    s: &TestServer,
    secret: &str,
    redirect: &str,
) -> dancu_eid::oidc::claims::IdTokenClaims {
    let code = query(redirect)["code"].clone();
    let (st, v) = token_basic(
        s,
        "rp",
        secret,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CB),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let idp = s.idp.clone().unwrap();
    let keys = off_runtime(|| idp.keys().unwrap());
    keys.verify(v["id_token"].as_str().unwrap(), "JWT", s.now_utc())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totp_enrolment_confirmed_by_a_first_code_then_step_up_to_level2() {
    let s = TestServer::start_with_idp().await;
    let id = citizen(&s, 120, "0911222333").await;
    let secret = secret_client(&s, "rp").await;
    let raise = json!({"id": id, "place": "Công an phường Ba Đình", "face_checked": true, "fingerprints_checked": true});
    let (st, v) = post_json(&s, Some(&s.registrar), "/api/v1/eid/level2", raise).await;
    assert_eq!(st, 200, "{v}");
    let at = holder_token(&s, &id, &secret).await;

    // Without a token: refused, nothing enrolled.
    let (st, _) = post_json(&s, None, "/api/v1/eid/me/totp", json!({})).await;
    assert_eq!(st, 401);
    let (st, v) = post_json(
        &s,
        Some(&at),
        "/api/v1/eid/me/totp/confirm",
        json!({"code": "123456"}),
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (404, Some("eid_totp_not_enrolled")),
        "{v}"
    );

    let (st, v) = post_json(&s, Some(&at), "/api/v1/eid/me/totp", json!({})).await;
    assert_eq!(st, 201, "{v}");
    let key = v["secret"].as_str().unwrap().to_owned();
    let uri = v["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/dancu:"), "{uri}");
    assert!(uri.contains(&format!("secret={key}")), "{uri}");
    assert_eq!(base32_decode(&key).len(), 20);

    // Before confirmation a level-2 request still goes by SMS.
    let loa2 = [("acr_values", "urn:dancu:loa:2")];
    let mut b = Browser::new();
    let page = try_login(&s, &mut b, &authorize_url(&s, "rp", &loa2), &id, PASSCODE).await;
    assert!(page.html().contains("0*******333"), "{page:?}");

    let good = app_code(&s, &key);
    let wrong = if good == "000000" { "111111" } else { "000000" };
    let (st, v) = post_json(
        &s,
        Some(&at),
        "/api/v1/eid/me/totp/confirm",
        json!({"code": wrong}),
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (401, Some("eid_totp_wrong")),
        "{v}"
    );
    let (st, v) = post_json(
        &s,
        Some(&at),
        "/api/v1/eid/me/totp/confirm",
        json!({"code": good}),
    )
    .await;
    assert_eq!((st, v["confirmed"].as_bool()), (200, Some(true)), "{v}");
    let (st, v) = post_json(&s, Some(&at), "/api/v1/eid/me/totp", json!({})).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (409, Some("eid_totp_exists")),
        "{v}"
    );

    // Step-up: passcode, then the app's code; no text message is sent.
    let sent = sms_count(&s);
    let mut b = Browser::new();
    let page = try_login(&s, &mut b, &authorize_url(&s, "rp", &loa2), &id, PASSCODE).await;
    assert!(page.html().contains("/authorize/otp"), "{page:?}");
    assert!(page.html().contains("authenticator app"), "{page:?}");
    assert_eq!(sms_count(&s), sent, "no SMS when the app is enrolled");
    let tx = page.tx();
    // The code that confirmed enrolment is used up for its step.
    let page = b
        .post(
            &format!("{}/authorize/otp", s.base),
            &[("tx", &tx), ("code", &good)],
        )
        .await;
    match &page {
        Page::Html(401, body) => assert!(body.contains("eid_totp_replayed"), "{body}"),
        other => panic!("{other:?}"),
    }
    s.clock.advance(chrono::Duration::seconds(30));
    let next = app_code(&s, &key);
    let page = b
        .post(
            &format!("{}/authorize/otp", s.base),
            &[("tx", &tx), ("code", &next)],
        )
        .await;
    let redirect = match page {
        Page::Redirect(l) => l,
        Page::Html(200, body) if body.contains("/authorize/consent") => {
            let tx = Page::Html(200, body).tx();
            b.post(
                &format!("{}/authorize/consent", s.base),
                &[("tx", &tx), ("decision", "allow")],
            )
            .await
            .location()
            .to_owned()
        }
        other => panic!("{other:?}"),
    };
    let claims = id_token_claims(&s, &secret, &redirect).await;
    assert_eq!(claims.acr, "urn:dancu:loa:2");
    assert_eq!(
        serde_json::to_value(&claims.amr).unwrap(),
        json!(["pin", "otp", "mfa"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totp_guessing_is_throttled() {
    let s = TestServer::start_with_idp().await;
    let id = citizen(&s, 121, "0911222444").await;
    let secret = secret_client(&s, "rp").await;
    let at = holder_token(&s, &id, &secret).await;
    let (_, v) = post_json(&s, Some(&at), "/api/v1/eid/me/totp", json!({})).await;
    let key = v["secret"].as_str().unwrap().to_owned();
    let good = app_code(&s, &key);
    let wrong = if good == "000000" { "111111" } else { "000000" };
    let mut codes = Vec::new();
    for _ in 0..5 {
        let (st, v) = post_json(
            &s,
            Some(&at),
            "/api/v1/eid/me/totp/confirm",
            json!({"code": wrong}),
        )
        .await;
        codes.push((st, v["code"].as_str().unwrap().to_owned()));
    }
    // Three free failures, then delays: the fourth guess within the delay is refused unchecked.
    assert_eq!(codes[2], (401, "eid_totp_wrong".to_owned()), "{codes:?}");
    assert_eq!(codes[4], (429, "eid_throttled".to_owned()), "{codes:?}");
    // Even the right code waits for the delay, and is then accepted.
    let (st, v) = post_json(
        &s,
        Some(&at),
        "/api/v1/eid/me/totp/confirm",
        json!({"code": good}),
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (429, Some("eid_throttled")),
        "{v}"
    );
    s.clock.advance(chrono::Duration::minutes(6));
    // The access token has expired meanwhile: a fresh one.
    let at = holder_token(&s, &id, &secret).await;
    let good = app_code(&s, &key);
    let (st, v) = post_json(
        &s,
        Some(&at),
        "/api/v1/eid/me/totp/confirm",
        json!({"code": good}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
}

/// Posts a JSON body and returns status and JSON (problem+json checked for refusals).
async fn post_passkey_login(
    s: &TestServer,
    b: &mut Browser,
    tx: &str,
    challenge_id: &str,
    credential_id: &[u8],
    (cdj, ad, sig): &(Vec<u8>, Vec<u8>, Vec<u8>),
) -> Result<Page, (u16, Value)> {
    let form: Vec<(&str, String)> = vec![
        ("tx", tx.to_owned()),
        ("challenge_id", challenge_id.to_owned()),
        ("credential_id", b64url(credential_id)),
        ("client_data_json", b64url(cdj)),
        ("authenticator_data", b64url(ad)),
        ("signature", b64url(sig)),
    ];
    let body = form
        .iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect::<Vec<_>>()
        .join("&");
    let resp = b
        .http
        .post(format!("{}/authorize/passkey", s.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let st = resp.status().as_u16();
    if st >= 400 {
        let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
        assert_eq!(ct, "application/problem+json");
        let v: Value = resp.json().await.unwrap();
        assert!(
            v["message_vi"].as_str().is_some_and(|m| !m.is_empty()),
            "{v}"
        );
        return Err((st, v));
    }
    Ok(b.finish(resp).await)
}

fn challenge_of(v: &Value) -> (String, Vec<u8>) {
    let c = v["publicKey"]["challenge"].as_str().unwrap();
    (
        v["challenge_id"].as_str().unwrap().to_owned(),
        dancu_eid::b64::decode(c).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passkey_registration_and_login_with_one_time_challenges_and_counter() {
    use dancu_eid::webauthn::soft::SoftAuthenticator;
    let s = TestServer::start_with_idp().await;
    let id = citizen(&s, 122, "0911222555").await;
    let secret = secret_client(&s, "rp").await;
    let at = holder_token(&s, &id, &secret).await;
    let mut rng = StdRng::seed_from_u64(9);
    let mut key = SoftAuthenticator::new(&mut rng, "127.0.0.1");

    // Registration is bound to the holder's token.
    let (st, _) = post_json(&s, None, "/api/v1/eid/me/passkeys/options", json!({})).await;
    assert_eq!(st, 401);
    let (st, opts) = post_json(&s, Some(&at), "/api/v1/eid/me/passkeys/options", json!({})).await;
    assert_eq!(st, 200, "{opts}");
    assert_eq!(opts["publicKey"]["rp"]["id"], "127.0.0.1");
    assert_eq!(opts["publicKey"]["pubKeyCredParams"][0]["alg"], -7);
    let (cid, challenge) = challenge_of(&opts);
    // A wrong origin is refused, and uses up the challenge.
    let (cdj, att) = key.create(&challenge, "https://evil.example");
    let body = json!({"challenge_id": cid, "client_data_json": b64url(&cdj), "attestation_object": b64url(&att)});
    let (st, v) = post_json(&s, Some(&at), "/api/v1/eid/me/passkeys", body).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (422, Some("eid_webauthn_origin")),
        "{v}"
    );
    let (cdj, att) = key.create(&challenge, &s.base);
    let body = json!({"challenge_id": cid, "client_data_json": b64url(&cdj), "attestation_object": b64url(&att)});
    let (st, v) = post_json(&s, Some(&at), "/api/v1/eid/me/passkeys", body.clone()).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (400, Some("eid_webauthn_challenge_unknown")),
        "{v}"
    );
    assert!(
        off_runtime(|| s
            .idp
            .clone()
            .unwrap()
            .passkey_counters(&dancu_domain::PersonalId::parse(&id).unwrap())
            .unwrap())
        .is_empty()
    );

    let (_, opts) = post_json(&s, Some(&at), "/api/v1/eid/me/passkeys/options", json!({})).await;
    let (cid, challenge) = challenge_of(&opts);
    let (cdj, att) = key.create(&challenge, &s.base);
    let body = json!({"challenge_id": cid, "client_data_json": b64url(&cdj), "attestation_object": b64url(&att)});
    let (st, v) = post_json(&s, Some(&at), "/api/v1/eid/me/passkeys", body.clone()).await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(
        v["credential_id"].as_str().unwrap(),
        b64url(&key.credential_id)
    );
    let (st, v) = post_json(&s, Some(&at), "/api/v1/eid/me/passkeys", body).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (400, Some("eid_webauthn_challenge_unknown")),
        "challenge is one-time: {v}"
    );

    // Login with the passkey inside an authorization.
    let clone = key.clone();
    let mut b = Browser::new();
    let page = b.get(&authorize_url(&s, "rp", &[])).await;
    let tx = page.tx();
    let (st, opts) = post_json(&s, None, "/authorize/passkey/options", json!({"tx": tx})).await;
    assert_eq!(st, 200, "{opts}");
    assert_eq!(opts["publicKey"]["rpId"], "127.0.0.1");
    let (cid, challenge) = challenge_of(&opts);
    let assertion = key.get(&challenge, &s.base);
    let page = post_passkey_login(&s, &mut b, &tx, &cid, &key.credential_id, &assertion)
        .await
        .unwrap();
    assert!(b.cookie.is_some(), "a session cookie");
    // The same assertion again: its challenge is gone.
    let mut other = Browser::new();
    let (st, v) = post_passkey_login(&s, &mut other, &tx, &cid, &key.credential_id, &assertion)
        .await
        .unwrap_err();
    assert_eq!(
        (st, v["code"].as_str()),
        (400, Some("eid_webauthn_challenge_unknown")),
        "{v}"
    );
    let redirect = match page {
        Page::Redirect(l) => l,
        p => {
            let tx = p.tx();
            b.post(
                &format!("{}/authorize/consent", s.base),
                &[("tx", &tx), ("decision", "allow")],
            )
            .await
            .location()
            .to_owned()
        }
    };
    let claims = id_token_claims(&s, &secret, &redirect).await;
    assert_eq!(
        claims.acr, "urn:dancu:loa:1",
        "a level-1 account stays at level 1"
    );
    assert_eq!(
        serde_json::to_value(&claims.amr).unwrap(),
        json!(["hwk", "user", "mfa"])
    );
    let counters = off_runtime(|| {
        s.idp
            .clone()
            .unwrap()
            .passkey_counters(&dancu_domain::PersonalId::parse(&id).unwrap())
            .unwrap()
    });
    assert_eq!(counters, vec![1]);

    // A cloned authenticator replays counter 1: refused as a counter regression.
    let mut clone = clone;
    let mut b2 = Browser::new();
    let tx = b2.get(&authorize_url(&s, "rp", &[])).await.tx();
    let (_, opts) = post_json(&s, None, "/authorize/passkey/options", json!({"tx": tx})).await;
    let (cid, challenge) = challenge_of(&opts);
    let assertion = clone.get(&challenge, &s.base);
    let (st, v) = post_passkey_login(&s, &mut b2, &tx, &cid, &clone.credential_id, &assertion)
        .await
        .unwrap_err();
    assert_eq!(
        (st, v["code"].as_str()),
        (401, Some("eid_webauthn_counter_regression")),
        "{v}"
    );
    assert!(b2.cookie.is_none());
    // An unknown credential is refused.
    let mut stranger = SoftAuthenticator::new(&mut rng, "127.0.0.1");
    let (_, opts) = post_json(&s, None, "/authorize/passkey/options", json!({"tx": tx})).await;
    let (cid, challenge) = challenge_of(&opts);
    let assertion = stranger.get(&challenge, &s.base);
    let (st, v) = post_passkey_login(&s, &mut b2, &tx, &cid, &stranger.credential_id, &assertion)
        .await
        .unwrap_err();
    assert_eq!(
        (st, v["code"].as_str()),
        (401, Some("eid_passkey_unknown")),
        "{v}"
    );
    // The real one still works, with the next counter.
    let (_, opts) = post_json(&s, None, "/authorize/passkey/options", json!({"tx": tx})).await;
    let (cid, challenge) = challenge_of(&opts);
    let assertion = key.get(&challenge, &s.base);
    post_passkey_login(&s, &mut b2, &tx, &cid, &key.credential_id, &assertion)
        .await
        .unwrap();
    let counters = off_runtime(|| {
        s.idp
            .clone()
            .unwrap()
            .passkey_counters(&dancu_domain::PersonalId::parse(&id).unwrap())
            .unwrap()
    });
    assert_eq!(counters, vec![2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_by_the_holder_and_by_officers_with_their_rules() {
    let s = TestServer::start_with_idp().await;
    let id = citizen(&s, 130, "0933333333").await;
    let secret = secret_client(&s, "rp").await;
    let token = holder_token(&s, &id, &secret).await;
    let url = authorize_url(&s, "rp", &[]);

    // The holder locks their own account (a lost phone, say): logins are refused from then on.
    let (st, v) = post_json(&s, Some(&token), "/api/v1/eid/me/lock", json!({})).await;
    assert_eq!((st, v["locked"].as_bool()), (200, Some(true)), "{v}");
    let mut b = Browser::new();
    match try_login(&s, &mut b, &url, &id, PASSCODE).await {
        Page::Html(401, body) => assert!(body.contains("eid_account_locked"), "{body}"),
        other => panic!("a locked account must not log in: {other:?}"),
    }

    // A viewer may not touch locks; an officer lifts the holder's lock at once on their request.
    let lift = json!({"id": id, "reason": "holder_request"});
    let (st, _) = post_json(&s, Some(&s.viewer), "/api/v1/eid/unlocks", lift.clone()).await;
    assert_eq!(st, 403);
    let (st, v) = post_json(&s, Some(&s.registrar), "/api/v1/eid/unlocks", lift.clone()).await;
    assert_eq!((st, v["locked"].as_bool()), (200, Some(false)), "{v}");
    // (the consent given earlier is remembered, so the login goes straight back with a code)
    let page = try_login(&s, &mut Browser::new(), &url, &id, PASSCODE).await;
    assert!(query(page.location()).contains_key("code"), "{page:?}");
    // Lifting a lock that is not there is an error, not a silent success.
    let (st, v) = post_json(&s, Some(&s.registrar), "/api/v1/eid/unlocks", lift).await;
    assert_eq!(v["code"], "eid_not_locked", "{st} {v}");

    // An authority's lock needs the decision's reference, both to set and to lift it.
    let bare = json!({"id": id, "reason": "authority_request"});
    let (st, v) = post_json(&s, Some(&s.registrar), "/api/v1/eid/locks", bare.clone()).await;
    assert_eq!(v["code"], "eid_decision_ref_required", "{st} {v}");
    let decided = json!({"id": id, "reason": "authority_request", "decision_ref": "QĐ-15/2026"});
    let (st, v) = post_json(&s, Some(&s.registrar), "/api/v1/eid/locks", decided).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["locks"][0]["decision_ref"], "QĐ-15/2026", "{v}");
    let (st, v) = post_json(&s, Some(&s.registrar), "/api/v1/eid/unlocks", bare).await;
    assert_eq!(v["code"], "eid_decision_ref_required", "{st} {v}");
    match try_login(&s, &mut Browser::new(), &url, &id, PASSCODE).await {
        Page::Html(401, body) => assert!(body.contains("eid_account_locked"), "{body}"),
        other => panic!("{other:?}"),
    }
    let lifted = json!({"id": id, "reason": "authority_request", "decision_ref": "QĐ-16/2026"});
    let (st, v) = post_json(&s, Some(&s.registrar), "/api/v1/eid/unlocks", lifted).await;
    assert_eq!((st, v["locked"].as_bool()), (200, Some(false)), "{v}");

    // Death and card locks follow the register only; a reason not in the law is refused.
    let death = json!({"id": id, "reason": "death"});
    let (st, v) = post_json(&s, Some(&s.registrar), "/api/v1/eid/locks", death).await;
    assert_eq!(v["code"], "eid_lock_follows_register", "{st} {v}");
    let odd = json!({"id": id, "reason": "bored"});
    let (st, v) = post_json(&s, Some(&s.registrar), "/api/v1/eid/locks", odd).await;
    assert_eq!((st, v["code"].as_str()), (422, Some("invalid_body")), "{v}");

    // Every change shows in the holder's usage history.
    let token = holder_token(&s, &id, &secret).await;
    let (st, v) = post_json(&s, Some(&token), "/api/v1/eid/me/history", json!({})).await;
    assert_eq!(st, 200, "{v}");
    let locks: Vec<(bool, String)> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"]["kind"] == "lock")
        .map(|e| {
            (
                e["kind"]["set"].as_bool().unwrap(),
                e["kind"]["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        (false, "authority_request"),
        (true, "authority_request"),
        (false, "holder_request"),
        (true, "holder_request"),
    ];
    let expected: Vec<(bool, String)> = expected.iter().map(|(s, r)| (*s, r.to_string())).collect();
    assert_eq!(locks, expected, "newest first: {v}");
}

/// The login page's passkey button: a form the script fills with exactly the fields the
/// passkey endpoint takes (the test above posts those fields and logs in), the script served
/// from this server alone, and a policy that lets only that script run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_page_offers_a_passkey_with_a_script_from_this_server_only() {
    let s = TestServer::start_with_idp().await;
    secret_client(&s, "rp").await;
    let resp = s
        .http
        .get(authorize_url(&s, "rp", &[]))
        .send()
        .await
        .unwrap();
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    let html = resp.text().await.unwrap();
    let form_at = html.find("id=\"passkey-form\"").expect("a passkey form");
    let form = &html[form_at..form_at + html[form_at..].find("</form>").unwrap()];
    assert!(form.contains("action=\"/authorize/passkey\""), "{form}");
    let mut names: Vec<&str> = form
        .split("name=\"")
        .skip(1)
        .map(|r| &r[..r.find('"').unwrap()])
        .collect();
    names.sort();
    let mut expected = [
        "authenticator_data",
        "challenge_id",
        "client_data_json",
        "credential_id",
        "signature",
        "tx",
    ];
    expected.sort();
    assert_eq!(names, expected);
    // Hidden until the script finds a browser that can use passkeys.
    assert!(html.contains("<div id=\"passkey\" hidden>"));
    let srcs: Vec<&str> = html
        .split("<script src=\"")
        .skip(1)
        .map(|r| &r[..r.find('"').unwrap()])
        .collect();
    assert_eq!(srcs, ["/assets/passkey-login.js"]);
    let js = s
        .http
        .get(format!("{}{}", s.base, srcs[0]))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status().as_u16(), 200);
    assert_eq!(
        js.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(js.headers()["x-content-type-options"], "nosniff");
    let js = js.text().await.unwrap();
    for field in expected.iter().filter(|f| **f != "tx") {
        assert!(
            js.contains(&format!("form.elements.{field}.value")),
            "{field}"
        );
    }
    assert!(js.contains("\"/authorize/passkey/options\""));
}
