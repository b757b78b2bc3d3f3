//! The OpenID Connect provider and e-ID account endpoints over HTTP: discovery, JWKS,
//! authorization (with the login, one-time code and consent pages), PAR, token, userinfo,
//! revocation, introspection and logout; client registration and key rotation for supervisors;
//! level-1 registration and the level-2 raise; the holder's second factors (authenticator-app
//! enrolment, passkey registration) and login with a passkey.
//!
//! Handlers only translate between HTTP and [`dancu_idp::Idp`]: they parse forms and headers,
//! run the use-case on a blocking thread and render its answer. Protocol errors leave as
//! problem+json that also carries the OAuth `error` and `error_description` members, so that
//! relying-party libraries read them as OAuth errors. Personal data (ID number, passcode, phone,
//! face image) only ever arrives in POST bodies.

mod pages;

use crate::{ApiError, AppState};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use dancu_domain::PersonalId;
use dancu_domain::officer::{Officer, Role};
use dancu_eid::account::{Actor, GuardianBasis, LockReason};
use dancu_idp::{
    AuthorizeStep, ClientRegistration, Idp, IdpError, Level1Registration, Level2Raise,
    PasskeyAssertion, TokenRequest, UserinfoAnswer,
};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// Name of the provider's session cookie.
pub const SESSION_COOKIE: &str = "dancu_sid";

/// The provider's routes (answered with 404 problem+json when the server runs without e-ID).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/authorize", get(authorize))
        .route("/authorize/login", post(authorize_login))
        .route("/authorize/otp", post(authorize_otp))
        .route("/authorize/consent", post(authorize_consent))
        .route(
            "/authorize/passkey/options",
            post(authorize_passkey_options),
        )
        .route("/authorize/passkey", post(authorize_passkey))
        .route(
            "/assets/passkey-login.js",
            get(|| async { pages::passkey_login_js() }),
        )
        .route("/par", post(par))
        .route("/token", post(token))
        .route("/userinfo", get(userinfo).post(userinfo))
        .route("/revoke", post(revoke))
        .route("/introspect", post(introspect))
        .route("/logout", get(logout).post(logout))
        .route("/api/v1/oidc/clients", post(add_client))
        .route("/api/v1/oidc/keys/rotate", post(rotate_keys))
        .route("/api/v1/eid/phone-codes", post(phone_code))
        .route("/api/v1/eid/accounts", post(register_account))
        .route("/api/v1/eid/level2", post(raise_level2))
        .route("/api/v1/eid/face-references", post(face_reference))
        .route("/api/v1/eid/me/history", post(my_history))
        .route("/api/v1/eid/me/consents/revoke", post(my_consent_revoke))
        .route("/api/v1/eid/me/lock", post(my_lock))
        .route("/api/v1/eid/locks", post(officer_lock))
        .route("/api/v1/eid/unlocks", post(officer_unlock))
        .route("/api/v1/eid/me/totp", post(my_totp_begin))
        .route("/api/v1/eid/me/totp/confirm", post(my_totp_confirm))
        .route("/api/v1/eid/me/passkeys/options", post(my_passkey_options))
        .route("/api/v1/eid/me/passkeys", post(my_passkey_register))
}

/// The e-ID JSON APIs for the OpenAPI document (the protocol endpoints are described by the
/// discovery document instead).
#[derive(Debug, utoipa::OpenApi)]
#[openapi(paths(
    add_client,
    rotate_keys,
    phone_code,
    register_account,
    raise_level2,
    face_reference,
    my_history,
    my_consent_revoke,
    my_lock,
    officer_lock,
    officer_unlock,
    my_totp_begin,
    my_totp_confirm,
    my_passkey_options,
    my_passkey_register,
    authorize_passkey_options,
    authorize_passkey
))]
pub struct EidApi;

// ----- plumbing ---------------------------------------------------------------------------

impl From<IdpError> for ApiError {
    fn from(e: IdpError) -> Self {
        ApiError::new(
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            e.code,
            e.vi,
            e.en,
        )
    }
}

/// A protocol error: problem+json with the OAuth members as well.
fn oauth_error(e: IdpError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    let body = json!({
        "type": format!("urn:dancu:problem:{}", e.code),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": e.en,
        "code": e.code,
        "message_vi": e.vi,
        "message_en": e.en,
        "error": e.oauth,
        "error_description": e.en,
    });
    let mut r = (status, body.to_string()).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if e.oauth == "invalid_dpop_proof" {
        h.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("DPoP error=\"invalid_dpop_proof\""),
        );
    } else if e.oauth == "invalid_token" {
        h.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"invalid_token\", DPoP algs=\"ES256\""),
        );
    }
    r
}

fn json_ok(status: StatusCode, v: &serde_json::Value) -> Response {
    let mut r = (status, v.to_string()).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn no_idp() -> IdpError {
    IdpError::new(
        404,
        "eid_disabled",
        "Máy chủ này không bật dịch vụ định danh điện tử",
        "This server does not run the e-ID service",
    )
}

/// Runs an e-ID use-case on a blocking thread.
async fn run<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&Idp) -> Result<T, IdpError> + Send + 'static,
) -> Result<T, IdpError> {
    let idp = state.idp.clone().ok_or_else(no_idp)?;
    match tokio::task::spawn_blocking(move || f(&idp)).await {
        Ok(r) => r,
        Err(_) => Err(IdpError::internal("a blocking task failed")),
    }
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn pct_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = hex_val(*b.get(i + 1)?)?;
                let lo = hex_val(*b.get(i + 2)?)?;
                out.push(hi * 16 + lo);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn bad_form(why: &str) -> IdpError {
    IdpError::new(
        400,
        "oidc_invalid_request",
        &format!("Yêu cầu không hợp lệ ({why})"),
        &format!("Invalid request ({why})"),
    )
}

/// Parses `application/x-www-form-urlencoded` (a body or a query); a repeated parameter is an
/// error, as OAuth 2.0 §3.1 requires.
pub(crate) fn parse_form(s: &str) -> Result<BTreeMap<String, String>, IdpError> {
    let mut out = BTreeMap::new();
    for pair in s.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = pct_decode(k).ok_or_else(|| bad_form("encoding"))?;
        let v = pct_decode(v).ok_or_else(|| bad_form("encoding"))?;
        if out.insert(k, v).is_some() {
            return Err(bad_form("repeated parameter"));
        }
    }
    Ok(out)
}

fn body_form(body: &Bytes) -> Result<BTreeMap<String, String>, IdpError> {
    parse_form(std::str::from_utf8(body).map_err(|_| bad_form("encoding"))?)
}

fn header_str(h: &HeaderMap, name: impl axum::http::header::AsHeaderName) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

fn session_cookie(h: &HeaderMap) -> Option<String> {
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_owned())
}

fn source(addr: Option<Extension<ConnectInfo<SocketAddr>>>) -> String {
    addr.map(|Extension(ConnectInfo(a))| dancu_eid::authn::throttle::source_key(a.ip()))
        .unwrap_or_else(|| "unknown".to_owned())
}

fn set_cookie(r: &mut Response, value: &str, secure: bool) {
    let cookie = format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax{}",
        if secure { "; Secure" } else { "" }
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}

fn step_response(step: AuthorizeStep) -> Response {
    match step {
        AuthorizeStep::Redirect(url) => {
            let mut r = StatusCode::SEE_OTHER.into_response();
            if let Ok(v) = HeaderValue::from_str(&url) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        AuthorizeStep::Error(e) => pages::error(&e),
        AuthorizeStep::Login {
            tx,
            client_name,
            error,
        } => pages::login(&tx, &client_name, error.as_ref()),
        AuthorizeStep::Otp {
            tx,
            masked_phone,
            totp,
            error,
        } => pages::otp(&tx, &masked_phone, totp, error.as_ref()),
        AuthorizeStep::Consent {
            tx,
            client_name,
            claims,
        } => pages::consent(&tx, &client_name, &claims),
    }
}

fn secure(state: &AppState) -> bool {
    state
        .idp
        .as_ref()
        .is_some_and(|i| i.config().issuer.starts_with("https://"))
}

// ----- discovery and keys -----------------------------------------------------------------

async fn discovery(State(state): State<AppState>) -> Response {
    match run(&state, |idp| Ok(idp.discovery())).await {
        Ok(v) => json_ok(StatusCode::OK, &v),
        Err(e) => oauth_error(e),
    }
}

async fn jwks(State(state): State<AppState>) -> Response {
    match run(&state, Idp::jwks).await {
        Ok(v) => json_ok(StatusCode::OK, &v),
        Err(e) => oauth_error(e),
    }
}

// ----- authorization endpoint and its pages -----------------------------------------------

async fn authorize(
    State(state): State<AppState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let params = match parse_form(q.as_deref().unwrap_or("")) {
        Ok(p) => p,
        Err(e) => return pages::error(&e),
    };
    let cookie = session_cookie(&headers);
    match run(&state, move |idp| {
        Ok(idp.authorize(&params, cookie.as_deref()))
    })
    .await
    {
        Ok(step) => step_response(step),
        Err(e) => pages::error(&e),
    }
}

async fn authorize_login(
    State(state): State<AppState>,
    addr: Option<Extension<ConnectInfo<SocketAddr>>>,
    body: Bytes,
) -> Response {
    let form = match body_form(&body) {
        Ok(f) => f,
        Err(e) => return pages::error(&e),
    };
    let src = source(addr);
    let secure = secure(&state);
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    let (tx, id, pc, minor) = (
        get("tx"),
        get("id_number"),
        get("passcode"),
        get("acting_for"),
    );
    match run(&state, move |idp| {
        let minor = Some(minor.as_str()).filter(|m| !m.is_empty());
        idp.authorize_login(&tx, &id, &pc, minor, &src)
    })
    .await
    {
        Ok((step, cookie)) => {
            let mut r = step_response(step);
            if let Some(c) = cookie {
                set_cookie(&mut r, &c, secure);
            }
            r
        }
        Err(e) => pages::error(&e),
    }
}

async fn authorize_otp(
    State(state): State<AppState>,
    addr: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = match body_form(&body) {
        Ok(f) => f,
        Err(e) => return pages::error(&e),
    };
    let src = source(addr);
    let cookie = session_cookie(&headers);
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    let (tx, code) = (get("tx"), get("code"));
    match run(&state, move |idp| {
        idp.authorize_otp(&tx, &code, cookie.as_deref(), &src)
    })
    .await
    {
        Ok(step) => step_response(step),
        Err(e) => pages::error(&e),
    }
}

async fn authorize_consent(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = match body_form(&body) {
        Ok(f) => f,
        Err(e) => return pages::error(&e),
    };
    let cookie = session_cookie(&headers);
    let tx = form.get("tx").cloned().unwrap_or_default();
    let allow = form.get("decision").map(String::as_str) == Some("allow");
    match run(&state, move |idp| {
        idp.authorize_consent(&tx, allow, cookie.as_deref())
    })
    .await
    {
        Ok(step) => step_response(step),
        Err(e) => pages::error(&e),
    }
}

// ----- back channel -----------------------------------------------------------------------

/// Runs a back-channel use-case on the parsed form and the auth and DPoP headers.
async fn back_channel<T: Send + 'static>(
    state: &AppState,
    headers: &HeaderMap,
    body: &Bytes,
    f: impl FnOnce(&Idp, &TokenRequest<'_>) -> Result<T, IdpError> + Send + 'static,
) -> Result<T, IdpError> {
    let form = body_form(body)?;
    let authorization = header_str(headers, header::AUTHORIZATION);
    let dpop = header_str(headers, "dpop");
    run(state, move |idp| {
        f(
            idp,
            &TokenRequest {
                form: &form,
                authorization: authorization.as_deref(),
                dpop: dpop.as_deref(),
            },
        )
    })
    .await
}

async fn par(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    match back_channel(&state, &headers, &body, |idp, r| idp.push_authorization(r)).await {
        Ok(v) => json_ok(StatusCode::CREATED, &v),
        Err(e) => oauth_error(e),
    }
}

async fn token(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    match back_channel(&state, &headers, &body, |idp, r| idp.token(r)).await {
        Ok(v) => json_ok(StatusCode::OK, &v),
        Err(e) => oauth_error(e),
    }
}

async fn introspect(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    match back_channel(&state, &headers, &body, |idp, r| idp.introspect(r)).await {
        Ok(v) => json_ok(StatusCode::OK, &v),
        Err(e) => oauth_error(e),
    }
}

async fn revoke(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    match back_channel(&state, &headers, &body, |idp, r| idp.revoke(r)).await {
        Ok(()) => json_ok(StatusCode::OK, &json!({})),
        Err(e) => oauth_error(e),
    }
}

async fn userinfo(
    State(state): State<AppState>,
    method: axum::http::Method,
    headers: HeaderMap,
) -> Response {
    let authorization = header_str(&headers, header::AUTHORIZATION);
    let dpop = header_str(&headers, "dpop");
    let want_jwt =
        header_str(&headers, header::ACCEPT).is_some_and(|a| a.contains("application/jwt"));
    let m = method.as_str().to_owned();
    match run(&state, move |idp| {
        idp.userinfo(authorization.as_deref(), dpop.as_deref(), &m, want_jwt)
    })
    .await
    {
        Ok(UserinfoAnswer::Json(v)) => json_ok(StatusCode::OK, &v),
        Ok(UserinfoAnswer::Jwt(t)) => {
            let mut r = (StatusCode::OK, t).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/jwt"),
            );
            r
        }
        Err(e) => oauth_error(e),
    }
}

async fn logout(
    State(state): State<AppState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let text = if body.is_empty() {
        q.unwrap_or_default()
    } else {
        String::from_utf8_lossy(&body).into_owned()
    };
    let params = match parse_form(&text) {
        Ok(p) => p,
        Err(e) => return pages::error(&e),
    };
    let cookie = session_cookie(&headers);
    let secure = secure(&state);
    let mut r = match run(&state, move |idp| idp.logout(cookie.as_deref(), &params)).await {
        Ok(Some(url)) => step_response(AuthorizeStep::Redirect(url)),
        Ok(None) => pages::logged_out(),
        Err(e) => return pages::error(&e),
    };
    // Clear the cookie in the browser as well.
    let expired = format!(
        "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    );
    if let Ok(v) = HeaderValue::from_str(&expired) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

// ----- officer and account APIs -----------------------------------------------------------

async fn officer_with(
    state: &AppState,
    headers: &HeaderMap,
    ok: impl Fn(Role) -> bool,
) -> Result<std::sync::Arc<Officer>, ApiError> {
    let o = state.officer(headers).await?;
    if ok(o.role) {
        Ok(o)
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden_role",
            "Vai trò của cán bộ không được phép thực hiện thao tác này",
            "The officer's role may not do this",
        ))
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_body(&e))
}

fn parse_id(s: &str) -> Result<PersonalId, ApiError> {
    PersonalId::parse(s).map_err(|e| IdpError::from_problem(422, &e).into())
}

/// Registers an OpenID Connect client (supervisors). The body names `id`, `name`,
/// `redirect_uris`, `token_endpoint_auth_method` (`client_secret_basic` or `private_key_jwt`
/// with `jwks`), and optionally `require_par`, `require_dpop`, `subject_type` (`public` or
/// `pairwise`), `scopes` and `machine`. A generated secret is returned once.
#[utoipa::path(post, path = "/api/v1/oidc/clients", tag = "e-ID",
    request_body(content = Object, description = "The client registration"),
    responses((status = 201, description = "The client and, for client_secret_basic, its secret")),
    security(("bearer" = [])))]
async fn add_client(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    officer_with(&state, &headers, |r| r == Role::Supervisor).await?;
    let reg: ClientRegistration = parse_json(&body)?;
    let out = run(&state, move |idp| idp.register_client(&reg)).await?;
    let v = serde_json::to_value(&out).map_err(|_| ApiError::internal("client JSON"))?;
    Ok(json_ok(StatusCode::CREATED, &v))
}

/// Rotates the signing key (supervisors); the old key keeps verifying until its tokens expire.
#[utoipa::path(post, path = "/api/v1/oidc/keys/rotate", tag = "e-ID",
    responses((status = 200, description = "The new active key ID")), security(("bearer" = [])))]
async fn rotate_keys(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    officer_with(&state, &headers, |r| r == Role::Supervisor).await?;
    let kid = run(&state, Idp::rotate_keys).await?;
    Ok(json_ok(StatusCode::OK, &json!({"active_kid": kid})))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PhoneCodeBody {
    phone: String,
}

/// Sends a one-time code proving ownership of a phone number; returns the code's ID.
#[utoipa::path(post, path = "/api/v1/eid/phone-codes", tag = "e-ID", request_body = PhoneCodeBody,
    responses((status = 201, description = "The code's ID (otp_id)")))]
async fn phone_code(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let b: PhoneCodeBody = parse_json(&body)?;
    let otp_id = run(&state, move |idp| idp.send_phone_code(&b.phone)).await?;
    Ok(json_ok(StatusCode::CREATED, &json!({"otp_id": otp_id})))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct GuardianBody {
    id: String,
    #[serde(default)]
    appointment_reference: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    id: String,
    phone: String,
    otp_id: String,
    code: String,
    /// The face capture, base64 (standard or URL-safe alphabet).
    face_image: String,
    passcode: String,
    #[serde(default)]
    guardian: Option<GuardianBody>,
}

/// Level-1 self-registration: ID number, proved phone, face capture (base64), new passcode, and
/// for a minor the guardian applying.
#[utoipa::path(post, path = "/api/v1/eid/accounts", tag = "e-ID", request_body = RegisterBody,
    responses((status = 201, description = "The account: ID, level and management")))]
async fn register_account(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let b: RegisterBody = parse_json(&body)?;
    let guardian = match &b.guardian {
        None => None,
        Some(g) => Some((
            parse_id(&g.id)?,
            match &g.appointment_reference {
                Some(r) => GuardianBasis::Appointed {
                    reference: r.clone(),
                },
                None => GuardianBasis::RecordedParent,
            },
        )),
    };
    let req = Level1Registration {
        id: parse_id(&b.id)?,
        phone: b.phone,
        otp_id: b.otp_id,
        code: b.code,
        face_image: decode_base64(&b.face_image).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "eid_face_image_invalid",
                "Ảnh khuôn mặt phải được mã hóa base64",
                "The face image must be base64",
            )
        })?,
        passcode: b.passcode,
        guardian,
    };
    let account = run(&state, move |idp| idp.register_level1(&req)).await?;
    Ok(json_ok(
        StatusCode::CREATED,
        &json!({"id": account.person.to_string(), "level": account.level.number(), "management": account.management}),
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Level2Body {
    id: String,
    place: String,
    face_checked: bool,
    fingerprints_checked: bool,
}

/// Raises an account to level 2 after the officer's in-person check (registrars, supervisors).
#[utoipa::path(post, path = "/api/v1/eid/level2", tag = "e-ID", request_body = Level2Body,
    responses((status = 200, description = "The account at level 2")), security(("bearer" = [])))]
async fn raise_level2(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let officer = officer_with(&state, &headers, |r| r.can_write()).await?;
    let b: Level2Body = parse_json(&body)?;
    let req = Level2Raise {
        id: parse_id(&b.id)?,
        place: b.place,
        face_checked: b.face_checked,
        fingerprints_checked: b.fingerprints_checked,
    };
    let account = run(&state, move |idp| idp.raise_level2(&officer.id, &req)).await?;
    Ok(json_ok(
        StatusCode::OK,
        &json!({"id": account.person.to_string(), "level": account.level.number()}),
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct FaceBody {
    id: String,
    image: String,
}

/// **Demo.** Records the register's reference face image for the demo face verifier.
#[utoipa::path(post, path = "/api/v1/eid/face-references", tag = "e-ID", request_body = FaceBody,
    responses((status = 200, description = "Recorded")), security(("bearer" = [])))]
async fn face_reference(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    officer_with(&state, &headers, |r| r.can_write()).await?;
    let b: FaceBody = parse_json(&body)?;
    let id = parse_id(&b.id)?;
    let image = decode_base64(&b.image).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "eid_face_image_invalid",
            "Ảnh khuôn mặt phải được mã hóa base64",
            "The face image must be base64",
        )
    })?;
    run(&state, move |idp| idp.set_face_reference(&id, &image)).await?;
    Ok(json_ok(StatusCode::OK, &json!({"id": id.to_string()})))
}

// ----- the holder's own records (with an access token from this provider) -------------------

/// The holder's usage history (authentications, consents, locks, guardian actions), newest
/// first, with an access token from this provider.
#[utoipa::path(post, path = "/api/v1/eid/me/history", tag = "e-ID",
    responses((status = 200, description = "Usage entries")), security(("bearer" = [])))]
async fn my_history(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let authorization = header_str(&headers, header::AUTHORIZATION);
    let dpop = header_str(&headers, "dpop");
    let r = run(&state, move |idp| {
        let who = idp.holder(
            authorization.as_deref(),
            dpop.as_deref(),
            "POST",
            "/api/v1/eid/me/history",
        )?;
        idp.usage_history(&who, 500)
    })
    .await;
    match r.and_then(|entries| {
        serde_json::to_value(&entries).map_err(|_| IdpError::internal("history JSON"))
    }) {
        Ok(v) => json_ok(StatusCode::OK, &json!({"entries": v})),
        Err(e) => oauth_error(e),
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RevokeConsentBody {
    client_id: String,
}

/// Withdraws the holder's consent for a client, with an access token from this provider.
#[utoipa::path(post, path = "/api/v1/eid/me/consents/revoke", tag = "e-ID",
    request_body = RevokeConsentBody,
    responses((status = 200, description = "Whether a consent was withdrawn")),
    security(("bearer" = [])))]
async fn my_consent_revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let b: RevokeConsentBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return ApiError::bad_body(&e).into_response(),
    };
    let authorization = header_str(&headers, header::AUTHORIZATION);
    let dpop = header_str(&headers, "dpop");
    match run(&state, move |idp| {
        let who = idp.holder(
            authorization.as_deref(),
            dpop.as_deref(),
            "POST",
            "/api/v1/eid/me/consents/revoke",
        )?;
        idp.revoke_consent(&who, &b.client_id)
    })
    .await
    {
        Ok(revoked) => json_ok(StatusCode::OK, &json!({"revoked": revoked})),
        Err(e) => oauth_error(e),
    }
}

// ----- locks set and lifted by hand -------------------------------------------------------

/// The holder locks their own account (for instance after losing the phone); it is lifted at
/// a counter on their request (`/api/v1/eid/unlocks`, reason `holder_request`).
#[utoipa::path(post, path = "/api/v1/eid/me/lock", tag = "e-ID",
    responses((status = 200, description = "Locked")), security(("bearer" = [])))]
async fn my_lock(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match as_holder(&state, &headers, "/api/v1/eid/me/lock", |idp, who| {
        idp.change_lock(who, Actor::Holder, LockReason::HolderRequest, None, true)
    })
    .await
    {
        Ok(a) => json_ok(StatusCode::OK, &lock_view(&a)),
        Err(e) => oauth_error(e),
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct LockBody {
    /// The holder's personal ID number.
    id: String,
    /// `holder_request`, `terms_breach` or `authority_request`.
    #[schema(value_type = String)]
    reason: LockReason,
    /// The authority's decision reference (required for `authority_request`).
    #[serde(default)]
    decision_ref: Option<String>,
}

fn lock_view(a: &dancu_eid::Account) -> serde_json::Value {
    json!({
        "id": a.person.to_string(),
        "locked": !a.locks.is_empty(),
        "locks": a.locks,
    })
}

async fn change_lock(
    state: AppState,
    headers: HeaderMap,
    body: Bytes,
    set: bool,
) -> Result<Response, ApiError> {
    let officer = officer_with(&state, &headers, |r| r.can_write()).await?;
    let b: LockBody = parse_json(&body)?;
    let id = parse_id(&b.id)?;
    let account = run(&state, move |idp| {
        idp.change_lock(
            &id,
            Actor::Officer(officer.id.clone()),
            b.reason,
            b.decision_ref.as_deref(),
            set,
        )
    })
    .await?;
    Ok(json_ok(StatusCode::OK, &lock_view(&account)))
}

/// An officer locks an account: at the holder's request, for a breach of the terms, or on an
/// authority's decision (its reference recorded).
#[utoipa::path(post, path = "/api/v1/eid/locks", tag = "e-ID", request_body = LockBody,
    responses((status = 200, description = "The account's locks")), security(("bearer" = [])))]
async fn officer_lock(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    change_lock(state, headers, body, true).await
}

/// An officer lifts a lock: the holder's own at once on their request; an authority's lock with
/// the reference of the decision that lifts it. Death and card locks follow the register only.
#[utoipa::path(post, path = "/api/v1/eid/unlocks", tag = "e-ID", request_body = LockBody,
    responses((status = 200, description = "The account's locks")), security(("bearer" = [])))]
async fn officer_unlock(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    change_lock(state, headers, body, false).await
}

// ----- the holder's second factors ----------------------------------------------------------

/// Runs a holder use-case with the person named by the access token of the request.
async fn as_holder<T: Send + 'static>(
    state: &AppState,
    headers: &HeaderMap,
    path: &'static str,
    f: impl FnOnce(&Idp, &PersonalId) -> Result<T, IdpError> + Send + 'static,
) -> Result<T, IdpError> {
    let authorization = header_str(headers, header::AUTHORIZATION);
    let dpop = header_str(headers, "dpop");
    run(state, move |idp| {
        let who = idp.holder(authorization.as_deref(), dpop.as_deref(), "POST", path)?;
        f(idp, &who)
    })
    .await
}

fn bad_base64(field: &str) -> IdpError {
    IdpError::new(
        400,
        "eid_webauthn_bad_encoding",
        &format!("Trường {field} không phải base64url hợp lệ"),
        &format!("The field {field} is not valid base64url"),
    )
}

fn b64_field(value: &str, field: &str) -> Result<Vec<u8>, IdpError> {
    decode_base64(value)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| bad_base64(field))
}

/// Starts enrolling an authenticator app (TOTP): answers the secret and the `otpauth://` URI
/// to scan. The app counts once a first code confirms it.
#[utoipa::path(post, path = "/api/v1/eid/me/totp", tag = "e-ID",
    responses((status = 201, description = "Secret and otpauth URI"),
        (status = 409, description = "An authenticator app is already enrolled (eid_totp_exists)")),
    security(("bearer" = [])))]
async fn my_totp_begin(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match as_holder(&state, &headers, "/api/v1/eid/me/totp", |idp, who| {
        idp.begin_totp(who)
    })
    .await
    {
        Ok(e) => json_ok(
            StatusCode::CREATED,
            &json!({"secret": e.secret, "otpauth_uri": e.uri, "confirmed": false}),
        ),
        Err(e) => oauth_error(e),
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct TotpCodeBody {
    code: String,
}

/// Confirms the authenticator app with its first code (throttled like logins).
#[utoipa::path(post, path = "/api/v1/eid/me/totp/confirm", tag = "e-ID",
    request_body = TotpCodeBody,
    responses((status = 200, description = "Confirmed"),
        (status = 401, description = "Wrong or replayed code (eid_totp_wrong, eid_totp_replayed)"),
        (status = 429, description = "Too many failures (eid_throttled)")),
    security(("bearer" = [])))]
async fn my_totp_confirm(
    State(state): State<AppState>,
    addr: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let b: TotpCodeBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return ApiError::bad_body(&e).into_response(),
    };
    let src = source(addr);
    match as_holder(
        &state,
        &headers,
        "/api/v1/eid/me/totp/confirm",
        move |idp, who| idp.confirm_totp(who, &b.code, &src),
    )
    .await
    {
        Ok(()) => json_ok(StatusCode::OK, &json!({"confirmed": true})),
        Err(e) => oauth_error(e),
    }
}

/// Options for adding a passkey to the holder's account (`publicKey` is what
/// `navigator.credentials.create` takes), with the ID of the one-time challenge.
#[utoipa::path(post, path = "/api/v1/eid/me/passkeys/options", tag = "e-ID",
    responses((status = 200, description = "Creation options")), security(("bearer" = [])))]
async fn my_passkey_options(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match as_holder(
        &state,
        &headers,
        "/api/v1/eid/me/passkeys/options",
        |idp, who| idp.passkey_registration_options(who),
    )
    .await
    {
        Ok(v) => json_ok(StatusCode::OK, &v),
        Err(e) => oauth_error(e),
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PasskeyRegistrationBody {
    challenge_id: String,
    /// base64url
    client_data_json: String,
    /// base64url
    attestation_object: String,
}

/// Finishes adding a passkey: the browser's `clientDataJSON` and `attestationObject`.
#[utoipa::path(post, path = "/api/v1/eid/me/passkeys", tag = "e-ID",
    request_body = PasskeyRegistrationBody,
    responses((status = 201, description = "The passkey's credential ID"),
        (status = 400, description = "Unknown, used or expired challenge (eid_webauthn_challenge_unknown)"),
        (status = 422, description = "The registration does not verify (eid_webauthn_*)")),
    security(("bearer" = [])))]
async fn my_passkey_register(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let b: PasskeyRegistrationBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return ApiError::bad_body(&e).into_response(),
    };
    let decoded = b64_field(&b.client_data_json, "client_data_json")
        .and_then(|c| Ok((c, b64_field(&b.attestation_object, "attestation_object")?)));
    let (cdj, att) = match decoded {
        Ok(x) => x,
        Err(e) => return oauth_error(e),
    };
    let challenge_id = b.challenge_id;
    match as_holder(
        &state,
        &headers,
        "/api/v1/eid/me/passkeys",
        move |idp, who| idp.register_passkey(who, &challenge_id, &cdj, &att),
    )
    .await
    {
        Ok(id) => json_ok(
            StatusCode::CREATED,
            &json!({"credential_id": dancu_eid::b64::encode(&id)}),
        ),
        Err(e) => oauth_error(e),
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PasskeyOptionsBody {
    tx: String,
}

/// Options for logging in with a passkey within a pending authorization (`publicKey` is what
/// `navigator.credentials.get` takes), with the ID of the one-time challenge.
#[utoipa::path(post, path = "/authorize/passkey/options", tag = "e-ID",
    request_body = PasskeyOptionsBody,
    responses((status = 200, description = "Request options"),
        (status = 400, description = "Unknown or expired authorization (oidc_authorization_expired)")))]
async fn authorize_passkey_options(State(state): State<AppState>, body: Bytes) -> Response {
    let b: PasskeyOptionsBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return ApiError::bad_body(&e).into_response(),
    };
    match run(&state, move |idp| idp.passkey_login_options(&b.tx)).await {
        Ok(v) => json_ok(StatusCode::OK, &v),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// Logs in with a passkey (a form post of the assertion, values in base64url). Success
/// continues the authorization like the login form (consent page or redirect to the client)
/// and sets the session cookie; a refusal answers problem+json.
#[utoipa::path(post, path = "/authorize/passkey", tag = "e-ID",
    responses((status = 303, description = "Back to the client"),
        (status = 200, description = "The next page (consent)"),
        (status = 401, description = "The assertion does not verify (eid_passkey_unknown, eid_webauthn_*)"),
        (status = 429, description = "Too many failures (eid_throttled)")))]
async fn authorize_passkey(
    State(state): State<AppState>,
    addr: Option<Extension<ConnectInfo<SocketAddr>>>,
    body: Bytes,
) -> Response {
    let form = match body_form(&body) {
        Ok(f) => f,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    let assertion = (|| -> Result<PasskeyAssertion, IdpError> {
        Ok(PasskeyAssertion {
            challenge_id: get("challenge_id"),
            credential_id: b64_field(&get("credential_id"), "credential_id")?,
            client_data_json: b64_field(&get("client_data_json"), "client_data_json")?,
            authenticator_data: b64_field(&get("authenticator_data"), "authenticator_data")?,
            signature: b64_field(&get("signature"), "signature")?,
        })
    })();
    let assertion = match assertion {
        Ok(a) => a,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let (tx, src, secure) = (get("tx"), source(addr), secure(&state));
    match run(&state, move |idp| {
        idp.authorize_passkey(&tx, &assertion, &src)
    })
    .await
    {
        Ok((step, cookie)) => {
            let mut r = step_response(step);
            if let Some(c) = cookie {
                set_cookie(&mut r, &c, secure);
            }
            r
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// Decodes base64 in the standard or the URL-safe alphabet, padding optional.
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn forms_decode_and_refuse_repeats() {
        let f = parse_form("a=1+2&b=%C4%91%3D&c").unwrap();
        assert_eq!(f["a"], "1 2");
        assert_eq!(f["b"], "đ=");
        assert_eq!(f["c"], "");
        assert!(parse_form("a=1&a=2").is_err());
        assert!(parse_form("a=%zz").is_err());
    }

    #[test]
    fn base64_both_alphabets() {
        assert_eq!(decode_base64("aGk/Pz8=").unwrap(), b"hi???");
        assert_eq!(decode_base64("aGk_Pz8").unwrap(), b"hi???");
        assert!(decode_base64("a b").is_none());
    }
}
