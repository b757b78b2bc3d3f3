//! The web portals (cổng thông tin): the officer desk (`/portal/desk`) and the citizen portal
//! (`/portal/me`), server-rendered with askama, Vietnamese first with an English switch
//! (`?lang=en`, remembered in a cookie). Pages work without JavaScript; the vendored htmx only
//! boosts links and forms.
//!
//! The portals are a relying party of the server's own OpenID Connect provider: a first-party
//! confidential client (`dancu-portal`, public subjects) registered at first use, code flow
//! with PKCE and a nonce, the code redeemed and the ID token verified in-process with the
//! provider's own keys. After login the portal keeps a server-side session (an opaque cookie,
//! `HttpOnly`, `SameSite=Lax`, `Secure` on https) with a CSRF token that every form repeats;
//! sessions are documents of the e-ID service's document store, shared by every node.
//!
//! Like the JSON APIs, handlers only translate: reads and writes go through the same
//! use-cases (`Registry`, `Idp`, `Hub`), so jurisdiction, roles, the access log and every
//! register rule apply unchanged. Personal ID numbers travel in POST bodies, never in URLs.

mod pages;

use crate::AppState;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Duration, Utc};
use dancu_domain::PersonalId;
use dancu_domain::officer::Officer;
use dancu_store::docs::DocStore;
use pages::Lang;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

/// The portal's session cookie.
pub const PORTAL_COOKIE: &str = "dancu_portal";
/// The language cookie.
const LANG_COOKIE: &str = "dancu_lang";
/// The portal's client ID at the provider.
pub const CLIENT_ID: &str = "dancu-portal";
/// How long a portal session lasts without use.
const IDLE: Duration = Duration::minutes(30);
/// How old a session's last use may get before a read writes it again.
const TOUCH: Duration = Duration::seconds(60);
/// The document kind of portal sessions.
const SESSION_KIND: &str = "portal_session";

const HTMX: &str = include_str!("assets/htmx.min.js");
const CSS: &str = include_str!("assets/portal.css");

/// Which portal a session belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Side {
    /// The citizen portal.
    Citizen,
    /// The officer desk.
    Desk,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PendingLogin {
    side: Side,
    state: String,
    nonce: String,
    verifier: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SessionData {
    csrf: String,
    person: Option<PersonalId>,
    officer: Option<Officer>,
    name: String,
    pending: Option<PendingLogin>,
    /// Last use, by the provider's clock.
    used: DateTime<Utc>,
}

/// The portals' server-side sessions and the client secret at the provider.
///
/// Sessions are documents of the provider's document store (SQLite or PostgreSQL), so every
/// node of a deployment sees the same ones and they outlive a restart. They are keyed by the
/// SHA-256 of the cookie's value (a copy of the table does not yield usable cookies), expire
/// after [`IDLE`] without use (the store's expiry purges them; a read checks it too), and a
/// read writes the new last-use time back only when it is a minute old or more, so that page
/// views are not each a write.
#[derive(Debug, Default)]
pub struct Portal {
    store: Option<SessionStore>,
    secret: OnceLock<String>,
}

#[derive(Debug)]
struct SessionStore {
    idp: Arc<dancu_idp::Idp>,
    /// Store calls may run on the async thread (the embedded SQLite store); otherwise they go
    /// to a thread of their own, as the PostgreSQL client must not block the runtime.
    inline: bool,
}

impl SessionStore {
    fn run<T: Send>(&self, f: impl FnOnce(&dyn DocStore) -> T + Send) -> T {
        let docs = self.idp.docs().clone();
        if self.inline {
            f(docs.as_ref())
        } else {
            std::thread::scope(|s| {
                s.spawn(|| f(docs.as_ref()))
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p))
            })
        }
    }
}

fn session_key(sid: &str) -> String {
    dancu_eid::b64::encode(&dancu_eid::oidc::grants::token_hash(sid))
}

impl Portal {
    /// Sessions in the e-ID service's document store.
    pub(crate) fn over(idp: Arc<dancu_idp::Idp>, inline: bool) -> Self {
        Self {
            store: Some(SessionStore { idp, inline }),
            secret: OnceLock::new(),
        }
    }

    fn get(&self, sid: &str) -> Option<SessionData> {
        let store = self.store.as_ref()?;
        let now = store.idp.now();
        let key = session_key(sid);
        store.run(|docs| {
            let doc = docs.get(SESSION_KIND, &key).ok()??;
            let mut s: SessionData = serde_json::from_str(&doc.json).ok()?;
            if now - s.used > IDLE {
                let _ = docs.delete(SESSION_KIND, &key, doc.version);
                return None;
            }
            if now - s.used >= TOUCH {
                s.used = now;
                if let Ok(json) = serde_json::to_string(&s) {
                    // Another request may have touched it at the same time: either write is good.
                    let _ = docs.put(SESSION_KIND, &key, doc.version, &json, Some(now + IDLE));
                }
            }
            Some(s)
        })
    }

    fn put(&self, sid: &str, mut data: SessionData) {
        let Some(store) = self.store.as_ref() else {
            return;
        };
        let now = store.idp.now();
        data.used = now;
        let key = session_key(sid);
        let Ok(json) = serde_json::to_string(&data) else {
            return;
        };
        store.run(|docs| {
            let version = docs
                .get(SESSION_KIND, &key)
                .ok()
                .flatten()
                .map_or(0, |d| d.version);
            if let Err(e) = docs.put(SESSION_KIND, &key, version, &json, Some(now + IDLE)) {
                tracing::warn!(error = %e, "portal session not stored");
            }
        });
    }

    fn remove(&self, sid: &str) {
        let Some(store) = self.store.as_ref() else {
            return;
        };
        let key = session_key(sid);
        store.run(|docs| {
            if let Ok(Some(d)) = docs.get(SESSION_KIND, &key) {
                let _ = docs.delete(SESSION_KIND, &key, d.version);
            }
        });
    }
}

/// The portal routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/portal", get(home))
        .route("/portal/", get(home))
        .route("/portal/assets/htmx.min.js", get(htmx))
        .route("/portal/assets/portal.css", get(css))
        .route("/portal/login", get(login))
        .route("/portal/callback", get(callback))
        .route("/portal/logout", post(logout).get(back_to("/portal")))
        .route("/portal/me", get(citizen::record))
        .route("/portal/me/account", get(citizen::account))
        .route(
            "/portal/me/lock",
            post(citizen::lock).get(back_to("/portal/me/account")),
        )
        .route("/portal/me/consents", get(citizen::consents))
        .route(
            "/portal/me/consents/revoke",
            post(citizen::revoke).get(back_to("/portal/me/consents")),
        )
        .route("/portal/me/tracker", get(mine::tracker))
        // My account's security: passcode, authenticator app, passkeys.
        .route(
            "/portal/assets/passkey-register.js",
            get(security::register_js),
        )
        .route("/portal/assets/fonts/{version}/{file}", get(fonts::font))
        .route("/portal/me/security", get(security::show))
        .route("/portal/me/documents", get(mine::documents))
        .route("/portal/me/residences", get(mine::residences))
        .route(
            "/portal/me/security/passcode",
            post(security::passcode).get(back_to("/portal/me/security")),
        )
        .route(
            "/portal/me/security/totp",
            post(security::totp_begin).get(back_to("/portal/me/security")),
        )
        .route(
            "/portal/me/security/totp/confirm",
            post(security::totp_confirm).get(back_to("/portal/me/security")),
        )
        .route(
            "/portal/me/security/totp/remove",
            post(security::totp_remove).get(back_to("/portal/me/security")),
        )
        .route(
            "/portal/me/security/passkey/options",
            post(security::passkey_options),
        )
        .route(
            "/portal/me/security/passkey",
            post(security::passkey_add).get(back_to("/portal/me/security")),
        )
        .route(
            "/portal/me/security/passkey/remove",
            post(security::passkey_remove).get(back_to("/portal/me/security")),
        )
        .route("/portal/desk", get(desk::search_page))
        .route(
            "/portal/desk/search",
            post(desk::search).get(back_to("/portal/desk")),
        )
        .route(
            "/portal/desk/person",
            post(desk::person).get(back_to("/portal/desk")),
        )
        .route(
            "/portal/desk/birth",
            post(desk::birth).get(back_to("/portal/desk")),
        )
        // The command forms, validation as you type, and correction requests.
        .route(
            "/portal/desk/form",
            post(forms::form).get(back_to("/portal/desk")),
        )
        .route("/portal/desk/check", post(forms::check))
        .route("/portal/desk/tasks", get(tasks::tasks))
        .route(
            "/portal/desk/task",
            post(tasks::task).get(back_to("/portal/desk/tasks")),
        )
        .route(
            "/portal/desk/task/reject",
            post(tasks::reject).get(back_to("/portal/desk/tasks")),
        )
        .route(
            "/portal/me/requests",
            get(tasks::my_requests).post(tasks::submit),
        )
}

/// A GET of a page that only answers form posts (the language switch on a page that a post
/// produced links there): remembers the language and goes back to the section's start, since
/// the personal data the post carried is not in the URL to show again.
fn back_to(
    to: &'static str,
) -> impl Fn(State<AppState>, HeaderMap, RawQuery) -> std::future::Ready<Response> + Clone {
    move |State(state): State<AppState>, headers: HeaderMap, q: RawQuery| {
        let q = query(q.0);
        let ctx = context(&state, &headers, &q);
        std::future::ready(ctx.finish(see_other(to)))
    }
}

// ----- plumbing ---------------------------------------------------------------------------

fn cookie(h: &HeaderMap, name: &str) -> Option<String> {
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty() && v.len() < 100)
}

fn query(raw: Option<String>) -> BTreeMap<String, String> {
    raw.and_then(|q| crate::oidc::parse_form(&q).ok())
        .unwrap_or_default()
}

/// The page language: `?lang=` first (and then remembered), else the cookie, else Vietnamese.
fn lang(h: &HeaderMap, q: &BTreeMap<String, String>) -> (Lang, bool) {
    match q.get("lang").map(String::as_str) {
        Some("en") => (Lang::En, true),
        Some("vi") => (Lang::Vi, true),
        _ => (
            if cookie(h, LANG_COOKIE).as_deref() == Some("en") {
                Lang::En
            } else {
                Lang::Vi
            },
            false,
        ),
    }
}

fn secure(state: &AppState) -> bool {
    state
        .idp
        .as_ref()
        .is_some_and(|i| i.config().issuer.starts_with("https://"))
}

fn add_cookie(r: &mut Response, name: &str, value: &str, secure: bool, max_age: Option<u64>) {
    let c = format!(
        "{name}={value}; Path=/portal; HttpOnly; SameSite=Lax{}{}",
        if secure { "; Secure" } else { "" },
        max_age
            .map(|s| format!("; Max-Age={s}"))
            .unwrap_or_default()
    );
    if let Ok(v) = HeaderValue::from_str(&c) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}

fn html(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    r
}

fn see_other(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    r
}

async fn htmx() -> Response {
    asset(HTMX, "text/javascript; charset=utf-8")
}

async fn css() -> Response {
    asset(CSS, "text/css; charset=utf-8")
}

/// A message in both languages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Msg {
    pub(crate) code: String,
    pub(crate) vi: String,
    pub(crate) en: String,
}

impl Msg {
    pub(crate) fn new(code: &str, vi: &str, en: &str) -> Self {
        Self {
            code: code.to_owned(),
            vi: vi.to_owned(),
            en: en.to_owned(),
        }
    }
}

impl From<dancu_registry::RegistryError> for Msg {
    fn from(e: dancu_registry::RegistryError) -> Self {
        let api = crate::ApiError::from(e);
        let (_, code, vi, en) = api.parts();
        Msg::new(code, vi, en)
    }
}

impl From<dancu_idp::IdpError> for Msg {
    fn from(e: dancu_idp::IdpError) -> Self {
        Msg::new(e.code, &e.vi, &e.en)
    }
}

impl From<dancu_hub::service::HubError> for Msg {
    fn from(e: dancu_hub::service::HubError) -> Self {
        let api = crate::ApiError::from(e);
        let (_, code, vi, en) = api.parts();
        Msg::new(code, vi, en)
    }
}

fn internal() -> Msg {
    Msg::new(
        "internal",
        "Lỗi nội bộ; vui lòng thử lại",
        "Internal error; please try again",
    )
}

/// Runs blocking work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Msg> + Send + 'static,
) -> Result<T, Msg> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|_| Err(internal()))
}

/// A request's session context: who, the language, the CSRF token.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    sid: String,
    pub(crate) lang: Lang,
    set_lang: bool,
    pub(crate) csrf: String,
    pub(crate) person: Option<PersonalId>,
    pub(crate) officer: Option<Officer>,
    pub(crate) name: String,
    secure: bool,
}

impl Ctx {
    /// Finishes a response: the language cookie when it changed.
    fn finish(&self, mut r: Response) -> Response {
        if self.set_lang {
            add_cookie(
                &mut r,
                LANG_COOKIE,
                self.lang.code(),
                self.secure,
                Some(31_536_000),
            );
        }
        r
    }

    pub(crate) fn chrome(&self, side: Side, title: (&'static str, &'static str)) -> pages::Chrome {
        pages::Chrome {
            lang: self.lang,
            side,
            csrf: self.csrf.clone(),
            user: self.name.clone(),
            signed_in: match side {
                Side::Citizen => self.person.is_some(),
                Side::Desk => self.officer.is_some(),
            },
            title: self.lang.s(title.0, title.1),
        }
    }
}

fn context(state: &AppState, h: &HeaderMap, q: &BTreeMap<String, String>) -> Ctx {
    let (lang, set_lang) = lang(h, q);
    let sid = cookie(h, PORTAL_COOKIE).unwrap_or_default();
    let data = (!sid.is_empty()).then(|| state.portal.get(&sid)).flatten();
    Ctx {
        sid,
        lang,
        set_lang,
        csrf: data.as_ref().map(|d| d.csrf.clone()).unwrap_or_default(),
        person: data.as_ref().and_then(|d| d.person),
        officer: data.as_ref().and_then(|d| d.officer.clone()),
        name: data.map(|d| d.name).unwrap_or_default(),
        secure: secure(state),
    }
}

/// A form post: the context, the form, and the CSRF check (a missing or wrong token is refused
/// before anything is read or changed).
fn posted(
    state: &AppState,
    h: &HeaderMap,
    body: &Bytes,
) -> Result<(Ctx, BTreeMap<String, String>), Box<Response>> {
    let form = std::str::from_utf8(body)
        .ok()
        .and_then(|s| crate::oidc::parse_form(s).ok())
        .unwrap_or_default();
    let ctx = context(state, h, &BTreeMap::new());
    let sent = form.get("csrf").map(String::as_str).unwrap_or("");
    if ctx.csrf.is_empty() || !constant_time_eq(sent.as_bytes(), ctx.csrf.as_bytes()) {
        return Err(Box::new(error_page(
            &ctx,
            Side::Citizen,
            StatusCode::FORBIDDEN,
            &Msg::new(
                "csrf_invalid",
                "Biểu mẫu đã hết hạn hoặc không đến từ trang này; vui lòng tải lại trang và thử lại",
                "The form has expired or did not come from this site; reload the page and try again",
            ),
        )));
    }
    Ok((ctx, form))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) fn error_page(ctx: &Ctx, side: Side, status: StatusCode, m: &Msg) -> Response {
    let page = pages::ErrorPage {
        c: ctx.chrome(side, ("Có lỗi", "Something went wrong")),
        msg: m.clone(),
    };
    ctx.finish(render(status, &page))
}

pub(crate) fn render(status: StatusCode, t: &impl askama::Template) -> Response {
    match t.render() {
        Ok(s) => html(status, s),
        Err(_) => html(
            StatusCode::INTERNAL_SERVER_ERROR,
            "<!doctype html><title>Lỗi</title><p>Lỗi nội bộ · Internal error</p>".to_owned(),
        ),
    }
}

fn login_required(ctx: &Ctx, side: Side) -> Response {
    let page = pages::LoginPage {
        c: ctx.chrome(
            side,
            match side {
                Side::Citizen => ("Cổng công dân", "Citizen portal"),
                Side::Desk => ("Bàn làm việc của cán bộ", "Officer desk"),
            },
        ),
        desk: side == Side::Desk,
    };
    ctx.finish(render(StatusCode::UNAUTHORIZED, &page))
}

// ----- login through the server's own OpenID Connect provider -----------------------------

fn redirect_uri(idp: &dancu_idp::Idp) -> String {
    idp.config().endpoint("/portal/callback")
}

fn client_secret(state: &AppState, idp: &dancu_idp::Idp) -> Result<String, Msg> {
    if let Some(s) = state.portal.secret.get() {
        return Ok(s.clone());
    }
    let s = idp.first_party_client(
        CLIENT_ID,
        "Cổng dịch vụ dân cư (dancu)",
        &[redirect_uri(idp)],
        &["openid"],
    )?;
    Ok(state.portal.secret.get_or_init(|| s).clone())
}

fn b64_std(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
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

async fn home(State(state): State<AppState>, headers: HeaderMap, q: RawQuery) -> Response {
    let q = query(q.0);
    let ctx = context(&state, &headers, &q);
    let page = pages::HomePage {
        c: ctx.chrome(
            Side::Citizen,
            ("Cổng dịch vụ dân cư", "Population services"),
        ),
    };
    ctx.finish(render(StatusCode::OK, &page))
}

/// Starts a login: a fresh session ID, the pending state, nonce and PKCE verifier, and a
/// redirect to the provider (level 2 asked for the officer desk).
async fn login(State(state): State<AppState>, headers: HeaderMap, q: RawQuery) -> Response {
    let q = query(q.0);
    let ctx = context(&state, &headers, &q);
    let side = match q.get("as").map(String::as_str) {
        Some("officer") => Side::Desk,
        _ => Side::Citizen,
    };
    let Some(idp) = state.idp.clone() else {
        return error_page(
            &ctx,
            side,
            StatusCode::NOT_FOUND,
            &Msg::new(
                "eid_disabled",
                "Máy chủ này không bật dịch vụ định danh điện tử",
                "This server does not run the e-ID service",
            ),
        );
    };
    let st = state.clone();
    let idp2 = idp.clone();
    let secret = blocking(move || client_secret(&st, &idp2)).await;
    if let Err(m) = secret {
        return error_page(&ctx, side, StatusCode::INTERNAL_SERVER_ERROR, &m);
    }
    let pending = PendingLogin {
        side,
        state: dancu_registry::credentials::new_token(),
        nonce: dancu_registry::credentials::new_token(),
        verifier: dancu_registry::credentials::new_token(),
    };
    let mut params = vec![
        ("response_type", "code".to_owned()),
        ("client_id", CLIENT_ID.to_owned()),
        ("redirect_uri", redirect_uri(&idp)),
        ("scope", "openid".to_owned()),
        ("state", pending.state.clone()),
        ("nonce", pending.nonce.clone()),
        (
            "code_challenge",
            dancu_eid::oidc::pkce::challenge_s256(&pending.verifier),
        ),
        ("code_challenge_method", "S256".to_owned()),
        ("ui_locales", ctx.lang.code().to_owned()),
    ];
    if side == Side::Desk {
        params.push(("acr_values", "urn:dancu:loa:2".to_owned()));
    }
    let qs: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", pct(v)))
        .collect();
    // A new session ID at every login: nothing set before the login survives it.
    let sid = dancu_registry::credentials::new_token();
    if !ctx.sid.is_empty() {
        state.portal.remove(&ctx.sid);
    }
    state.portal.put(
        &sid,
        SessionData {
            csrf: dancu_registry::credentials::new_token(),
            person: None,
            officer: None,
            name: String::new(),
            pending: Some(pending),
            used: chrono::DateTime::<Utc>::MIN_UTC,
        },
    );
    let mut r = see_other(&format!("/authorize?{}", qs.join("&")));
    add_cookie(&mut r, PORTAL_COOKIE, &sid, ctx.secure, None);
    ctx.finish(r)
}

fn pct(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn login_failed(why_en: &str, why_vi: &str) -> Msg {
    Msg::new(
        "portal_login_failed",
        &format!("Đăng nhập không thành công: {why_vi}"),
        &format!("Login failed: {why_en}"),
    )
}

/// What a successful redemption yields.
struct LoggedIn {
    person: PersonalId,
    level2: bool,
}

/// Redeems the code at the provider (in-process, with the client's secret and the PKCE
/// verifier), verifies the ID token's signature, issuer, audience, nonce and expiry with the
/// provider's keys, and asks the provider whose access token it is.
fn redeem(
    state: &AppState,
    idp: &dancu_idp::Idp,
    code: &str,
    pending: &PendingLogin,
) -> Result<LoggedIn, Msg> {
    use dancu_eid::oidc::claims::{ACR_LEVEL_2, IdTokenClaims, TYP_ID_TOKEN};
    let secret = client_secret(state, idp)?;
    let mut form = BTreeMap::new();
    form.insert("grant_type".to_owned(), "authorization_code".to_owned());
    form.insert("code".to_owned(), code.to_owned());
    form.insert("redirect_uri".to_owned(), redirect_uri(idp));
    form.insert("code_verifier".to_owned(), pending.verifier.clone());
    let basic = format!(
        "Basic {}",
        b64_std(format!("{}:{}", pct(CLIENT_ID), pct(&secret)).as_bytes())
    );
    let answer = idp.token(&dancu_idp::TokenRequest {
        form: &form,
        authorization: Some(&basic),
        dpop: None,
    })?;
    let id_token = answer["id_token"]
        .as_str()
        .ok_or_else(|| login_failed("no ID token", "không có ID token"))?;
    let access = answer["access_token"]
        .as_str()
        .ok_or_else(|| login_failed("no access token", "không có access token"))?;
    let claims: IdTokenClaims = idp
        .keys()?
        .verify(id_token, TYP_ID_TOKEN, idp.now())
        .map_err(|_| login_failed("ID token not valid", "ID token không hợp lệ"))?;
    if claims.iss != idp.config().issuer
        || claims.aud != CLIENT_ID
        || claims.nonce.as_deref() != Some(pending.nonce.as_str())
    {
        return Err(login_failed(
            "ID token issuer, audience or nonce mismatch",
            "ID token sai bên phát hành, người nhận hoặc nonce",
        ));
    }
    let person = idp.holder(Some(&format!("Bearer {access}")), None, "GET", "/userinfo")?;
    Ok(LoggedIn {
        person,
        level2: claims.acr == ACR_LEVEL_2,
    })
}

async fn callback(State(state): State<AppState>, headers: HeaderMap, q: RawQuery) -> Response {
    let q = query(q.0);
    let ctx = context(&state, &headers, &q);
    let session = state.portal.get(&ctx.sid);
    let Some((mut session, pending)) = session.and_then(|s| s.pending.clone().map(|p| (s, p)))
    else {
        return error_page(
            &ctx,
            Side::Citizen,
            StatusCode::BAD_REQUEST,
            &login_failed(
                "no login was started in this browser; start again",
                "trình duyệt này chưa bắt đầu đăng nhập; vui lòng bắt đầu lại",
            ),
        );
    };
    let side = pending.side;
    if q.get("state") != Some(&pending.state) {
        return error_page(
            &ctx,
            side,
            StatusCode::BAD_REQUEST,
            &login_failed("state mismatch", "tham số state không khớp"),
        );
    }
    if let Some(e) = q.get("error") {
        let m = login_failed(e, e);
        return error_page(&ctx, side, StatusCode::BAD_REQUEST, &m);
    }
    let (Some(code), Some(idp)) = (q.get("code").cloned(), state.idp.clone()) else {
        return error_page(
            &ctx,
            side,
            StatusCode::BAD_REQUEST,
            &login_failed("no code", "không có mã"),
        );
    };
    let st = state.clone();
    let p2 = pending.clone();
    let result = blocking(move || {
        let who = redeem(&st, &idp, &code, &p2)?;
        let person = st
            .registry
            .store()
            .person(&who.person)
            .map_err(|e| Msg::from(dancu_registry::RegistryError::from(e)))?;
        let name = person.map(|p| p.name.full()).unwrap_or_default();
        let officer = if p2.side == Side::Desk {
            if !who.level2 {
                return Err(Msg::new(
                    "portal_level2_required",
                    "Bàn làm việc của cán bộ cần tài khoản định danh điện tử mức 2",
                    "The officer desk needs a level-2 e-ID account",
                ));
            }
            let officer = st
                .registry
                .store()
                .officers()
                .map_err(|e| Msg::from(dancu_registry::RegistryError::from(e)))?
                .into_iter()
                .find(|o| o.person == Some(who.person))
                .ok_or_else(|| {
                    Msg::new(
                        "portal_not_an_officer",
                        "Tài khoản này không gắn với cán bộ nào trong sổ cán bộ",
                        "This account is not linked to an officer in the register of officers",
                    )
                })?;
            Some(officer)
        } else {
            None
        };
        Ok((who.person, name, officer))
    })
    .await;
    match result {
        Ok((person, name, officer)) => {
            session.pending = None;
            session.person = Some(person);
            session.name = match &officer {
                Some(o) => format!("{} ({})", o.name, o.id),
                None => name,
            };
            session.officer = officer;
            // A fresh session ID and CSRF token once logged in.
            state.portal.remove(&ctx.sid);
            let sid = dancu_registry::credentials::new_token();
            session.csrf = dancu_registry::credentials::new_token();
            state.portal.put(&sid, session);
            let mut r = see_other(match side {
                Side::Citizen => "/portal/me",
                Side::Desk => "/portal/desk",
            });
            add_cookie(&mut r, PORTAL_COOKIE, &sid, ctx.secure, None);
            ctx.finish(r)
        }
        Err(m) => {
            state.portal.remove(&ctx.sid);
            error_page(&ctx, side, StatusCode::FORBIDDEN, &m)
        }
    }
}

async fn logout(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let (ctx, _) = match posted(&state, &headers, &body) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    state.portal.remove(&ctx.sid);
    // Logging out of the portal ends the browser's session at the provider too: otherwise the
    // next "log in" on a shared computer would let the same person straight back in.
    let provider = cookie(&headers, crate::oidc::SESSION_COOKIE);
    if let (Some(idp), Some(c)) = (state.idp.clone(), provider) {
        let _ = blocking(move || {
            idp.logout(Some(&c), &BTreeMap::new())
                .map(|_| ())
                .map_err(Msg::from)
        })
        .await;
    }
    let mut r = see_other("/portal");
    add_cookie(&mut r, PORTAL_COOKIE, "", ctx.secure, Some(0));
    let expired = format!(
        "{}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{}",
        crate::oidc::SESSION_COOKIE,
        if ctx.secure { "; Secure" } else { "" }
    );
    if let Ok(v) = HeaderValue::from_str(&expired) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

mod citizen;
mod desk;
mod fonts;
mod forms;
mod mine;
mod next;
mod security;
mod tasks;
mod timeline;
