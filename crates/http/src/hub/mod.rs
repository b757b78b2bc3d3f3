//! The data-sharing hub's HTTP surface (`/api/hub/v1/...`): translates requests to
//! [`dancu_hub::service::Hub`] calls and answers as JSON or problem+json. No rule lives here.
//!
//! A member's subsystem obtains a short-lived access token at `/api/hub/v1/token` (client
//! credentials, authenticated by a `private_key_jwt` client assertion) and calls services with
//! `Authorization: Bearer`; a client assertion in the `X-Client-Assertion` header on each call
//! is still accepted. Personal data travels only in POST bodies.
//! Consents are granted, listed and revoked, and the person's data tracker read, by an officer
//! acting for the person at a counter (Bearer token) until the e-ID login pages can
//! authenticate the person directly; the monthly
//! fee statement is for national supervisors.
//!
//! Card verification ([`cards`]) is served to members and, at `/api/v1/cards/verify`, to
//! officers; QR checkpoints ([`checkpoint`]) issue passes through a counter officer and record
//! check-ins from members' checkpoints.

mod cards;
mod checkpoint;

use crate::posted::Posted;
use crate::{ApiError, AppState, ProblemBody, parse};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use dancu_domain::Problem;
use dancu_domain::officer::{Jurisdiction, Officer, Role};
use dancu_exchange::matching::Claims;
use dancu_hub::enrich::Submission;
use dancu_hub::service::{CallMeta, Client, ConsentGrant, Hub, HubError};
use serde::Deserialize;
use serde::Serialize;
use std::sync::Arc;

impl From<HubError> for ApiError {
    fn from(e: HubError) -> Self {
        if let HubError::Internal(what) | HubError::AuditUnavailable(what) = &e {
            tracing::error!(what, "hub failure");
        }
        ApiError::new(
            StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            e.code(),
            e.message_vi(),
            e.message_en(),
        )
    }
}

fn hub(state: &AppState) -> Result<Arc<Hub>, ApiError> {
    hub_ref(state).cloned()
}

/// The hub, borrowed: for calls answered on the async worker, where no task needs its own
/// reference (a clone is a count both cores change on every call).
fn hub_ref(state: &AppState) -> Result<&Arc<Hub>, ApiError> {
    state.hub.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "hub_not_configured",
            "Nền tảng chia sẻ dữ liệu chưa được cấu hình trên máy chủ này",
            "The data-sharing hub is not configured on this server",
        )
    })
}

/// Runs hub work off the async threads (the store may be the blocking PostgreSQL client).
async fn run<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, HubError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(ApiError::from),
        Err(_) => Err(ApiError::internal("a blocking hub task failed")),
    }
}

fn assertion(headers: &HeaderMap) -> Result<String, ApiError> {
    headers
        .get("x-client-assertion")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() < 8192)
        .map(str::to_owned)
        .ok_or_else(|| HubError::Unauthenticated("missing X-Client-Assertion").into())
}

/// The bearer access token of `Authorization: Bearer`, if the call carries one.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    v.to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() < 512)
        .map(Some)
        .ok_or_else(|| HubError::Unauthenticated("malformed Authorization header").into())
}

/// The calling subsystem: by its access token (`Authorization: Bearer`, checked from memory
/// when this node has seen the token) or by a client assertion (`X-Client-Assertion`).
/// A call carrying both is judged by its client assertion.
async fn client(hub: &Arc<Hub>, headers: &HeaderMap) -> Result<Client, ApiError> {
    if headers.contains_key("x-client-assertion") {
        let a = assertion(headers)?;
        let h = hub.clone();
        return run(move || h.authenticate(&a)).await;
    }
    if let Some(token) = bearer(headers)? {
        if let Some(r) = hub.authenticate_token_cached(token) {
            return r.map_err(ApiError::from);
        }
        let (h, token) = (hub.clone(), token.to_owned());
        return run(move || h.authenticate_token(&token)).await;
    }
    Err(HubError::Unauthenticated("missing Authorization: Bearer or X-Client-Assertion").into())
}

fn ok_json<T: Serialize>(v: &T) -> Result<Response, ApiError> {
    let body = serde_json::to_string(v).map_err(|_| ApiError::internal("encoding"))?;
    Ok(crate::json_response(200, body))
}

/// The token endpoint's form: OAuth 2.0 client credentials with a `private_key_jwt` client
/// assertion (RFC 7523 §2.2).
fn token_form(body: &[u8]) -> Result<(String, Option<String>), ApiError> {
    let bad = |what: &str| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("Yêu cầu cấp mã truy cập không hợp lệ: {what}"),
            format!("Invalid token request: {what}"),
        )
    };
    let text = std::str::from_utf8(body).map_err(|_| bad("the body is not UTF-8"))?;
    let mut form =
        crate::oidc::parse_form(text).map_err(|_| bad("not a form without repeated parameters"))?;
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Chỉ hỗ trợ grant_type=client_credentials",
            "Only grant_type=client_credentials is supported",
        ));
    }
    if form.get("client_assertion_type").map(String::as_str)
        != Some(dancu_eid::oidc::client_auth::JWT_BEARER)
    {
        return Err(bad(
            "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ));
    }
    let assertion = form
        .remove("client_assertion")
        .filter(|a| !a.is_empty() && a.len() < 8192)
        .ok_or_else(|| bad("client_assertion is missing"))?;
    Ok((assertion, form.remove("scope")))
}

#[utoipa::path(post, path = "/api/hub/v1/token", tag = "hub", summary = "Access token for a member subsystem: OAuth client credentials authenticated by a private_key_jwt client assertion",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "grant_type=client_credentials, client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer, client_assertion (iss = sub = member/subsystem, aud = urn:dancu:hub, fresh jti), scope (optional: services separated by spaces; default every service the subsystem's rights open)"),
    responses(
        (status = 200, description = "access_token (opaque, for Authorization: Bearer), token_type Bearer, expires_in (seconds, at most 600 and never past the key's not_after), scope", body = Object),
        (status = 400, description = "invalid_request, unsupported_grant_type or invalid_scope", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "Client assertion invalid or replayed", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "client_key_expired", body = ProblemBody, content_type = "application/problem+json"),
    ))]
async fn token(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let hub = hub(&state)?;
    let (assertion, scope) = token_form(&body)?;
    let t = run(move || hub.issue_token(&assertion, scope.as_deref())).await?;
    let mut resp = ok_json(&t)?;
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// The call's declarations spelled out rather than `#[serde(flatten)]`ed from [`CallMeta`]:
/// flattening decodes the body twice, through an intermediate tree, on the hub's busiest call.
#[derive(Deserialize)]
struct AttributesBody {
    purpose: String,
    #[serde(default)]
    end_user: Option<String>,
    #[serde(default)]
    case_ref: Option<String>,
    id: String,
    claims: Claims,
}

#[utoipa::path(post, path = "/api/hub/v1/verify/attributes", tag = "hub", summary = "Attribute match: match / no_match / unknown per claimed field, no values returned",
    request_body(content = Object, content_type = "application/json"),
    params(("X-Client-Assertion" = Option<String>, Header, description = "private_key_jwt client assertion of the member subsystem (iss = sub = member/subsystem, aud = urn:dancu:hub); or instead Authorization: Bearer with an access token of /api/hub/v1/token whose scope names the service")),
    responses(
        (status = 200, description = "Per-field answers and the log seq", body = Object),
        (status = 401, description = "Access token or client assertion missing, invalid, expired, revoked or replayed", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "insufficient_scope (the token does not name the service), or refused by the rights: no_right, wrong_purpose, field_not_allowed, consent_missing, consent_revoked, consent_expired, missing_end_user, missing_case_reference, client_key_expired", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Invalid input", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "quota_exceeded or rate_limited", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "audit_log_unavailable: the exchange could not be logged, so it was not served", body = ProblemBody, content_type = "application/problem+json"),
    ))]
async fn verify_attributes(
    State(state): State<AppState>,
    Posted { headers, body }: Posted,
) -> Result<Response, ApiError> {
    let hub = hub_ref(&state)?;
    let c = client(hub, &headers).await?;
    let AttributesBody {
        purpose,
        end_user,
        case_ref,
        id,
        claims,
    } = parse(&body)?;
    let meta = CallMeta {
        purpose,
        end_user,
        case_ref,
    };
    // The register read is a local point read on SQLite, done here; a network store's read
    // goes to a blocking thread. Either way no thread waits for the log record.
    let pending = if state.inline_reads {
        hub.verify_attributes_start(&c, &meta, &id, &claims)
    } else {
        let hub = hub.clone();
        run(move || Ok(hub.verify_attributes_start(&c, &meta, &id, &claims))).await?
    };
    let (fields, audit_seq) = pending.release().await?;
    ok_json(&dancu_hub::service::AttributeAnswer { fields, audit_seq })
}

#[derive(Deserialize)]
struct CmndBody {
    #[serde(flatten)]
    meta: CallMeta,
    cmnd: String,
    name: String,
    #[serde(default)]
    date_of_birth: Option<String>,
}

#[utoipa::path(post, path = "/api/hub/v1/verify/cmnd", tag = "hub", summary = "Legacy CMND number to personal ID: unique, ambiguous (candidates) or not found",
    request_body(content = Object, content_type = "application/json"),
    params(("X-Client-Assertion" = Option<String>, Header, description = "private_key_jwt client assertion of the member subsystem (iss = sub = member/subsystem, aud = urn:dancu:hub); or instead Authorization: Bearer with an access token of /api/hub/v1/token whose scope names the service")),
    responses(
        (status = 200, description = "The resolution and the log seq", body = Object),
        (status = 401, description = "Access token or client assertion missing, invalid, expired, revoked or replayed", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "insufficient_scope (the token does not name the service), or refused by the rights: no_right, wrong_purpose, field_not_allowed, consent_missing, consent_revoked, consent_expired, missing_end_user, missing_case_reference, client_key_expired", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Invalid input", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "quota_exceeded or rate_limited", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "audit_log_unavailable: the exchange could not be logged, so it was not served", body = ProblemBody, content_type = "application/problem+json"),
    ))]
async fn verify_cmnd(
    State(state): State<AppState>,
    Posted { headers, body }: Posted,
) -> Result<Response, ApiError> {
    let hub = hub(&state)?;
    let c = client(&hub, &headers).await?;
    let b: CmndBody = parse(&body)?;
    let a = run(move || hub.verify_cmnd(&c, &b.meta, &b.cmnd, &b.name, b.date_of_birth.as_deref()))
        .await?;
    ok_json(&a)
}

#[derive(Deserialize)]
struct EkycBody {
    #[serde(flatten)]
    meta: CallMeta,
    id: String,
    fields: Vec<String>,
    #[serde(default)]
    consent_id: Option<String>,
}

#[utoipa::path(post, path = "/api/hub/v1/ekyc", tag = "hub", summary = "Data retrieval within the right and the person's consent, signed by the hub (JWS)",
    request_body(content = Object, content_type = "application/json"),
    params(("X-Client-Assertion" = Option<String>, Header, description = "private_key_jwt client assertion of the member subsystem (iss = sub = member/subsystem, aud = urn:dancu:hub); or instead Authorization: Bearer with an access token of /api/hub/v1/token whose scope names the service")),
    responses(
        (status = 200, description = "The signed data", body = Object),
        (status = 401, description = "Access token or client assertion missing, invalid, expired, revoked or replayed", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "insufficient_scope (the token does not name the service), or refused by the rights: no_right, wrong_purpose, field_not_allowed, consent_missing, consent_revoked, consent_expired, missing_end_user, missing_case_reference, client_key_expired", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Invalid input", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "quota_exceeded or rate_limited", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "audit_log_unavailable: the exchange could not be logged, so it was not served", body = ProblemBody, content_type = "application/problem+json"),
    ))]
async fn ekyc(
    State(state): State<AppState>,
    Posted { headers, body }: Posted,
) -> Result<Response, ApiError> {
    let hub = hub(&state)?;
    let c = client(&hub, &headers).await?;
    let b: EkycBody = parse(&body)?;
    let a = run(move || hub.ekyc(&c, &b.meta, &b.id, &b.fields, b.consent_id.as_deref())).await?;
    ok_json(&a)
}

#[derive(Deserialize)]
struct FeedBody {
    #[serde(flatten)]
    meta: CallMeta,
    subscription: String,
    #[serde(default)]
    after: i64,
    #[serde(default = "default_feed_limit")]
    limit: u32,
}

fn default_feed_limit() -> u32 {
    100
}

#[utoipa::path(post, path = "/api/hub/v1/events/feed", tag = "hub", summary = "Change events after a cursor (metadata only)",
    request_body(content = Object, content_type = "application/json"),
    params(("X-Client-Assertion" = Option<String>, Header, description = "private_key_jwt client assertion of the member subsystem (iss = sub = member/subsystem, aud = urn:dancu:hub); or instead Authorization: Bearer with an access token of /api/hub/v1/token whose scope names the service")),
    responses(
        (status = 200, description = "A page of events and the next cursor", body = Object),
        (status = 401, description = "Access token or client assertion missing, invalid, expired, revoked or replayed", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "insufficient_scope (the token does not name the service), or refused by the rights: no_right, wrong_purpose, field_not_allowed, consent_missing, consent_revoked, consent_expired, missing_end_user, missing_case_reference, client_key_expired", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Invalid input", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "quota_exceeded or rate_limited", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "audit_log_unavailable: the exchange could not be logged, so it was not served", body = ProblemBody, content_type = "application/problem+json"),
    ))]
async fn event_feed(
    State(state): State<AppState>,
    Posted { headers, body }: Posted,
) -> Result<Response, ApiError> {
    let hub = hub(&state)?;
    let c = client(&hub, &headers).await?;
    let b: FeedBody = parse(&body)?;
    let page = run(move || hub.event_feed(&c, &b.meta, &b.subscription, b.after, b.limit)).await?;
    ok_json(&page)
}

#[derive(Deserialize)]
struct WebhookBody {
    subscription: String,
    #[serde(default)]
    after: Option<i64>,
}

#[utoipa::path(post, path = "/api/hub/v1/events/webhook/status", tag = "hub", summary = "Webhook delivery state: cursor, attempts, dead letters",
    request_body(content = Object, content_type = "application/json"),
    params(("X-Client-Assertion" = Option<String>, Header, description = "private_key_jwt client assertion of the member subsystem (iss = sub = member/subsystem, aud = urn:dancu:hub); or instead Authorization: Bearer with an access token of /api/hub/v1/token whose scope names the service")),
    responses(
        (status = 200, description = "The state", body = Object),
        (status = 401, description = "Access token or client assertion missing, invalid, expired, revoked or replayed", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "insufficient_scope (the token does not name the service), or refused by the rights: no_right, wrong_purpose, field_not_allowed, consent_missing, consent_revoked, consent_expired, missing_end_user, missing_case_reference, client_key_expired", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Invalid input", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "quota_exceeded or rate_limited", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "audit_log_unavailable: the exchange could not be logged, so it was not served", body = ProblemBody, content_type = "application/problem+json"),
    ))]
async fn webhook_status(
    State(state): State<AppState>,
    Posted { headers, body }: Posted,
) -> Result<Response, ApiError> {
    let hub = hub(&state)?;
    let c = client(&hub, &headers).await?;
    let b: WebhookBody = parse(&body)?;
    let st = run(move || hub.webhook_status(&c, &b.subscription)).await?;
    ok_json(&st)
}

#[utoipa::path(post, path = "/api/hub/v1/events/webhook/replay", tag = "hub", summary = "Replay webhook deliveries from a sequence number",
    request_body(content = Object, content_type = "application/json"),
    params(("X-Client-Assertion" = Option<String>, Header, description = "private_key_jwt client assertion of the member subsystem (iss = sub = member/subsystem, aud = urn:dancu:hub); or instead Authorization: Bearer with an access token of /api/hub/v1/token whose scope names the service")),
    responses(
        (status = 200, description = "The new state", body = Object),
        (status = 401, description = "Access token or client assertion missing, invalid, expired, revoked or replayed", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "insufficient_scope (the token does not name the service), or refused by the rights: no_right, wrong_purpose, field_not_allowed, consent_missing, consent_revoked, consent_expired, missing_end_user, missing_case_reference, client_key_expired", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Invalid input", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "quota_exceeded or rate_limited", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "audit_log_unavailable: the exchange could not be logged, so it was not served", body = ProblemBody, content_type = "application/problem+json"),
    ))]
async fn webhook_replay(
    State(state): State<AppState>,
    Posted { headers, body }: Posted,
) -> Result<Response, ApiError> {
    let hub = hub(&state)?;
    let c = client(&hub, &headers).await?;
    let b: WebhookBody = parse(&body)?;
    let after = b.after.unwrap_or(0);
    let st = run(move || hub.webhook_replay(&c, &b.subscription, after)).await?;
    ok_json(&st)
}

#[utoipa::path(get, path = "/api/hub/v1/jwks", tag = "hub", summary = "The hub's response-signing keys (JWKS)",
    responses((status = 200, description = "JWKS", body = Object)))]
async fn jwks(State(state): State<AppState>) -> Result<Response, ApiError> {
    Ok(Json(hub(&state)?.jwks()).into_response())
}

/// An officer who may act for a person on consents (not a read-only viewer).
async fn counter_officer(state: &AppState, headers: &HeaderMap) -> Result<Arc<Officer>, ApiError> {
    let o = state.officer(headers).await?;
    if o.role == Role::Viewer {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "role_not_allowed",
            "Cán bộ chỉ có quyền xem không được thao tác sự đồng ý",
            "A read-only officer cannot act on consents",
        ));
    }
    Ok(o)
}

#[derive(Deserialize)]
struct GrantBody {
    person: String,
    #[serde(flatten)]
    grant: ConsentGrant,
}

#[utoipa::path(post, path = "/api/hub/v1/consents/grant", tag = "hub", summary = "Grant a consent for the person (counter officer acting for them)",
    request_body(content = Object, content_type = "application/json"),
    responses(
        (status = 200, description = "The consent (201)", body = Object),
        (status = 401, description = "Officer token missing or unknown", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Role not allowed", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Invalid input", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
async fn consent_grant(
    State(state): State<AppState>,
    Posted { headers, body }: Posted,
) -> Result<Response, ApiError> {
    let hub = hub(&state)?;
    counter_officer(&state, &headers).await?;
    let b: GrantBody = parse(&body)?;
    let c = run(move || hub.grant_consent(&b.person, b.grant)).await?;
    let mut resp = ok_json(&c)?;
    *resp.status_mut() = StatusCode::CREATED;
    Ok(resp)
}

#[derive(Deserialize)]
struct PersonBody {
    person: String,
}

#[utoipa::path(post, path = "/api/hub/v1/consents/list", tag = "hub", summary = "The person's consents",
    request_body(content = Object, content_type = "application/json"),
    responses(
        (status = 200, description = "The consents", body = Object),
        (status = 401, description = "Officer token missing or unknown", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Role not allowed", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Invalid input", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
async fn consent_list(
    State(state): State<AppState>,
    Posted { headers, body }: Posted,
) -> Result<Response, ApiError> {
    let hub = hub(&state)?;
    counter_officer(&state, &headers).await?;
    let b: PersonBody = parse(&body)?;
    let list = run(move || hub.consents(&b.person)).await?;
    ok_json(&list)
}

#[utoipa::path(post, path = "/api/hub/v1/tracker", tag = "hub", summary = "Who accessed the person's data, when, which fields and why (covert accesses after their embargo): {person, limit?}, the newest `limit` lines (default 1,000, at most 10,000), oldest first",
    request_body(content = Object, content_type = "application/json"),
    responses(
        (status = 200, description = "The accesses", body = Object),
        (status = 401, description = "Officer token missing or unknown", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Role not allowed", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Invalid input", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
async fn person_accesses(
    State(state): State<AppState>,
    Posted { headers, body }: Posted,
) -> Result<Response, ApiError> {
    let hub = hub(&state)?;
    counter_officer(&state, &headers).await?;
    let b: TrackerBody = parse(&body)?;
    let limit = b.limit.unwrap_or(dancu_hub::service::TRACKER_LINES);
    let lines = run(move || hub.person_accesses_newest(&b.person, limit)).await?;
    ok_json(&lines)
}

#[derive(Deserialize)]
struct TrackerBody {
    person: String,
    /// The newest this many lines (default 1,000, at most 10,000).
    #[serde(default)]
    limit: Option<usize>,
}

#[derive(Deserialize)]
struct RevokeBody {
    person: String,
    consent_id: String,
}

#[utoipa::path(post, path = "/api/hub/v1/consents/revoke", tag = "hub", summary = "Revoke a consent: access stops at once",
    request_body(content = Object, content_type = "application/json"),
    responses(
        (status = 200, description = "The revoked consent", body = Object),
        (status = 401, description = "Officer token missing or unknown", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Role not allowed", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Invalid input", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
async fn consent_revoke(
    State(state): State<AppState>,
    Posted { headers, body }: Posted,
) -> Result<Response, ApiError> {
    let hub = hub(&state)?;
    counter_officer(&state, &headers).await?;
    let b: RevokeBody = parse(&body)?;
    let c = run(move || hub.revoke_consent(&b.person, &b.consent_id)).await?;
    ok_json(&c)
}

#[derive(Deserialize)]
struct StatementQuery {
    year: i32,
    month: u32,
    #[serde(default)]
    member: Option<String>,
}

#[utoipa::path(get, path = "/api/hub/v1/fees/statement", tag = "hub", summary = "Monthly fee statement as CSV (national supervisors)",
    params(("year" = i32, Query, description = "Year"), ("month" = u32, Query, description = "Month 1-12"), ("member" = Option<String>, Query, description = "One member only")),
    responses(
        (status = 200, description = "CSV", body = Object),
        (status = 401, description = "Officer token missing or unknown", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Role not allowed", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Invalid input", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
async fn fee_statement(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<StatementQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let hub = hub(&state)?;
    let o = state.officer(&headers).await?;
    if o.role != Role::Supervisor || o.jurisdiction != Jurisdiction::National {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "role_not_allowed",
            "Chỉ cán bộ giám sát cấp quốc gia được xem bảng kê phí",
            "Only a national supervisor may read fee statements",
        ));
    }
    let Query(q) = query.map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_query",
            format!("Tham số không hợp lệ: {e}"),
            format!("Invalid query parameters: {e}"),
        )
    })?;
    let csv = run(move || hub.fee_statement_csv(q.year, q.month, q.member.as_deref())).await?;
    let mut resp = (StatusCode::OK, csv).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    Ok(resp)
}

#[derive(Deserialize)]
struct EnrichBody {
    #[serde(flatten)]
    meta: CallMeta,
    #[serde(flatten)]
    submission: Submission,
}

#[utoipa::path(post, path = "/api/hub/v1/enrich", tag = "hub", summary = "A sectoral register links one of its identifiers to a person (with provenance; resubmission keeps history)",
    request_body(content = Object, content_type = "application/json", description = "purpose, end_user, case_ref, id, kind, value, source_ref, attributes (object, optional)"),
    params(("X-Client-Assertion" = Option<String>, Header, description = "private_key_jwt client assertion of the member subsystem (iss = sub = member/subsystem, aud = urn:dancu:hub); or instead Authorization: Bearer with an access token of /api/hub/v1/token whose scope names the service")),
    responses(
        (status = 200, description = "The linked record with its history", body = Object),
        (status = 401, description = "Access token or client assertion missing, invalid, expired, revoked or replayed", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Refused by the rights (no_right, wrong_purpose, field_not_allowed for the kind, ...)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "person_not_found", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "invalid_linked_record or concurrent_update", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "audit_log_unavailable", body = ProblemBody, content_type = "application/problem+json"),
    ))]
async fn enrich(
    State(state): State<AppState>,
    Posted { headers, body }: Posted,
) -> Result<Response, ApiError> {
    let hub = hub(&state)?;
    let c = client(&hub, &headers).await?;
    let b: EnrichBody = parse(&body)?;
    let r = run(move || hub.enrich(&c, &b.meta, &b.submission)).await?;
    ok_json(&r)
}

#[derive(Deserialize)]
struct LinkedBody {
    #[serde(flatten)]
    meta: CallMeta,
    id: String,
    kinds: Vec<String>,
}

#[utoipa::path(post, path = "/api/hub/v1/linked-records", tag = "hub", summary = "A member reads a person's linked records of the kinds its right allows",
    request_body(content = Object, content_type = "application/json"),
    params(("X-Client-Assertion" = Option<String>, Header, description = "private_key_jwt client assertion of the member subsystem (iss = sub = member/subsystem, aud = urn:dancu:hub); or instead Authorization: Bearer with an access token of /api/hub/v1/token whose scope names the service")),
    responses(
        (status = 200, description = "The linked records", body = Object),
        (status = 401, description = "Access token or client assertion missing, invalid, expired, revoked or replayed", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Refused by the rights", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Invalid input", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "audit_log_unavailable", body = ProblemBody, content_type = "application/problem+json"),
    ))]
async fn linked_records(
    State(state): State<AppState>,
    Posted { headers, body }: Posted,
) -> Result<Response, ApiError> {
    let hub = hub(&state)?;
    let c = client(&hub, &headers).await?;
    let b: LinkedBody = parse(&body)?;
    let r = run(move || hub.read_linked_records(&c, &b.meta, &b.id, &b.kinds)).await?;
    ok_json(&r)
}

#[utoipa::path(post, path = "/api/v1/persons/linked-records", tag = "queries", summary = "Sectoral registers' identifiers linked to a person (officers; the read is access-logged)",
    request_body = crate::PersonRef,
    params(("X-Purpose" = String, Header, description = "Why the data is read; recorded in the access log")),
    responses(
        (status = 200, description = "The person's linked records with provenance and history", body = Object),
        (status = 403, description = "Outside the officer's jurisdiction", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "person_not_found", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
async fn officer_linked_records(
    State(state): State<AppState>,
    Posted { headers, body }: Posted,
) -> Result<Response, ApiError> {
    let hub = hub(&state)?;
    let q: crate::PersonRef = parse(&body)?;
    // The register's read of the person: purpose, jurisdiction and the access log.
    crate::logged_read(state, headers, body, |r, o, p, q: crate::PersonRef| {
        r.read_person_json(o, p, &q.id)
    })
    .await?;
    let person = q.id.to_string();
    let records = run(move || hub.linked_records(&person)).await?;
    ok_json(&serde_json::json!({"person": q.id.to_string(), "linked_records": records}))
}

/// Largest batch upload accepted (a million rows of a few claims each).
const BATCH_BODY_LIMIT: usize = 256 * 1024 * 1024;

#[utoipa::path(post, path = "/api/hub/v1/batch/jobs", tag = "hub", summary = "Batch verification: upload up to 1,000,000 attribute-match rows as a job answered in the background",
    request_body(content = String, content_type = "application/x-ndjson", description = "Line 1: {\"purpose\", \"end_user\", \"case_ref\"}; then one {\"id\", \"claims\"} per line"),
    params(("X-Client-Assertion" = Option<String>, Header, description = "private_key_jwt client assertion of the member subsystem (iss = sub = member/subsystem, aud = urn:dancu:hub); or instead Authorization: Bearer with an access token of /api/hub/v1/token whose scope names the service")),
    responses(
        (status = 202, description = "The job, running", body = Object),
        (status = 401, description = "Access token or client assertion missing, invalid, expired, revoked or replayed", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Refused by the rights for the batch's purpose and fields (no_right, wrong_purpose, field_not_allowed, consent_missing, missing_end_user, missing_case_reference, client_key_expired); rows are also decided one by one", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "invalid_batch, invalid_batch_row or too_many_rows: nothing was stored", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "quota_exceeded or rate_limited", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "audit_log_unavailable", body = ProblemBody, content_type = "application/problem+json"),
    ))]
async fn batch_submit(
    State(state): State<AppState>,
    Posted { headers, body }: Posted,
) -> Result<Response, ApiError> {
    let hub = hub(&state)?;
    let c = client(&hub, &headers).await?;
    let st = run(move || dancu_hub::batch::submit(&hub, &c, &body)).await?;
    let mut resp = ok_json(&st)?;
    *resp.status_mut() = StatusCode::ACCEPTED;
    Ok(resp)
}

/// A batch job's id from the path; one that does not decode is refused as problem+json.
struct JobId(String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for JobId {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(id)) => Ok(Self(id)),
            Err(e) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_path",
                format!("Đường dẫn không hợp lệ: {e}"),
                format!("Invalid path: {e}"),
            )),
        }
    }
}

#[utoipa::path(get, path = "/api/hub/v1/batch/jobs/{id}", tag = "hub", summary = "A batch job's progress (rows done / total) and state, at any node over the job's database",
    params(("id" = String, Path, description = "Job id"), ("X-Client-Assertion" = String, Header, description = "private_key_jwt client assertion of the member subsystem that submitted the job")),
    responses(
        (status = 200, description = "The job", body = Object),
        (status = 401, description = "Access token or client assertion missing, invalid, expired, revoked or replayed", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "job_not_found", body = ProblemBody, content_type = "application/problem+json"),
    ))]
async fn batch_status(
    State(state): State<AppState>,
    headers: HeaderMap,
    JobId(id): JobId,
) -> Result<Response, ApiError> {
    let hub = hub(&state)?;
    let c = client(&hub, &headers).await?;
    let st = run(move || dancu_hub::batch::status(&hub, &c, &id)).await?;
    ok_json(&st)
}

#[utoipa::path(get, path = "/api/hub/v1/batch/jobs/{id}/results", tag = "hub", summary = "A finished batch job's answers as NDJSON, one per row in row order",
    params(("id" = String, Path, description = "Job id"), ("X-Client-Assertion" = String, Header, description = "private_key_jwt client assertion of the member subsystem that submitted the job")),
    responses(
        (status = 200, description = "NDJSON answers", body = String, content_type = "application/x-ndjson"),
        (status = 401, description = "Access token or client assertion missing, invalid, expired, revoked or replayed", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "job_not_found", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "job_not_finished", body = ProblemBody, content_type = "application/problem+json"),
    ))]
async fn batch_results(
    State(state): State<AppState>,
    headers: HeaderMap,
    JobId(id): JobId,
) -> Result<Response, ApiError> {
    let hub = hub(&state)?;
    let c = client(&hub, &headers).await?;
    let bytes = run(move || dancu_hub::batch::results(&hub, &c, &id)).await?;
    let mut resp = (StatusCode::OK, bytes).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(resp)
}

#[utoipa::path(delete, path = "/api/hub/v1/batch/jobs/{id}", tag = "hub", summary = "Deletes a finished or failed batch job with its answers (otherwise kept 90 days)",
    params(("id" = String, Path, description = "Job id"), ("X-Client-Assertion" = String, Header, description = "private_key_jwt client assertion of the member subsystem that submitted the job")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Access token or client assertion missing, invalid, expired, revoked or replayed", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "job_not_found", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "job_running", body = ProblemBody, content_type = "application/problem+json"),
    ))]
async fn batch_delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    JobId(id): JobId,
) -> Result<Response, ApiError> {
    let hub = hub(&state)?;
    let c = client(&hub, &headers).await?;
    run(move || dancu_hub::batch::delete(&hub, &c, &id)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The officer must be a national supervisor (fee statements, rights administration).
async fn national_supervisor(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let o = state.officer(headers).await?;
    if o.role != Role::Supervisor || o.jurisdiction != Jurisdiction::National {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "role_not_allowed",
            "Chỉ cán bộ giám sát cấp quốc gia được quản trị quyền khai thác",
            "Only a national supervisor may administer the hub's members and rights",
        ));
    }
    Ok(())
}

#[utoipa::path(get, path = "/api/hub/v1/admin/rights", tag = "hub-admin", summary = "Members, subsystems, registered keys (with their thumbprint kid) and access rights as they stand",
    responses(
        (status = 200, description = "members [{id, name, class, subsystems [{id, keys [{kid, jwk, not_after}]}]}], rights [{id, org, subsystem, service, fields, purpose, legal_basis, requires_consent, requires_end_user, requires_case_reference, covert_embargo_days, quota {limit, period day|month}, rate {per_second, burst}}]", body = Object),
        (status = 401, description = "Officer token missing or unknown", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "role_not_allowed: national supervisors only", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
async fn admin_list(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let hub = hub(&state)?;
    national_supervisor(&state, &headers).await?;
    ok_json(&hub.admin_list())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OrgRef {
    org: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubsystemRef {
    org: String,
    id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyRef {
    org: String,
    subsystem: String,
    kid: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RightRef {
    id: String,
}

/// Runs an administration change for a national supervisor and answers the resulting list.
async fn admin_change<B: serde::de::DeserializeOwned + Send + 'static>(
    state: AppState,
    headers: HeaderMap,
    body: Bytes,
    change: impl FnOnce(&Hub, B) -> Result<(), HubError> + Send + 'static,
) -> Result<Response, ApiError> {
    let hub = hub(&state)?;
    national_supervisor(&state, &headers).await?;
    let b: B = parse(&body)?;
    let view = run(move || {
        change(&hub, b)?;
        Ok(hub.admin_list())
    })
    .await?;
    ok_json(&view)
}

#[utoipa::path(post, path = "/api/hub/v1/admin/members", tag = "hub-admin", summary = "Add a member organisation (without subsystems)",
    request_body(content = Object, content_type = "application/json", description = "{id, name, class}: id and class 1-64 characters of a-z 0-9 . _ -"),
    responses(
        (status = 200, description = "The members and rights after the change", body = Object),
        (status = 401, description = "Officer token missing or unknown", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "role_not_allowed", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "member_exists", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "invalid_body, invalid_identifier, invalid_field: nothing changed", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
async fn admin_add_member(
    State(state): State<AppState>,
    Posted { headers, body }: Posted,
) -> Result<Response, ApiError> {
    admin_change(state, headers, body, |h, m| h.admin_add_member(m)).await
}

#[utoipa::path(post, path = "/api/hub/v1/admin/members/revoke", tag = "hub-admin", summary = "Revoke a member with its subsystems, keys, rights and subscriptions (effective at the next call)",
    request_body(content = Object, content_type = "application/json", description = "{org}"),
    responses(
        (status = 200, description = "The members and rights after the change", body = Object),
        (status = 401, description = "Officer token missing or unknown", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "role_not_allowed", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "member_not_found", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "invalid_body", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
async fn admin_revoke_member(
    State(state): State<AppState>,
    Posted { headers, body }: Posted,
) -> Result<Response, ApiError> {
    admin_change(state, headers, body, |h, b: OrgRef| {
        h.admin_revoke_member(&b.org)
    })
    .await
}

#[utoipa::path(post, path = "/api/hub/v1/admin/subsystems", tag = "hub-admin", summary = "Add a subsystem (client system) to a member",
    request_body(content = Object, content_type = "application/json", description = "{org, id}"),
    responses(
        (status = 200, description = "The members and rights after the change", body = Object),
        (status = 401, description = "Officer token missing or unknown", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "role_not_allowed", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "member_not_found", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "subsystem_exists", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "invalid_body, invalid_identifier", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
async fn admin_add_subsystem(
    State(state): State<AppState>,
    Posted { headers, body }: Posted,
) -> Result<Response, ApiError> {
    admin_change(state, headers, body, |h, b: SubsystemRef| {
        h.admin_add_subsystem(&b.org, &b.id)
    })
    .await
}

#[utoipa::path(post, path = "/api/hub/v1/admin/subsystems/revoke", tag = "hub-admin", summary = "Revoke a subsystem with its keys, rights and subscriptions; its access tokens stop at once",
    request_body(content = Object, content_type = "application/json", description = "{org, id}"),
    responses(
        (status = 200, description = "The members and rights after the change", body = Object),
        (status = 401, description = "Officer token missing or unknown", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "role_not_allowed", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "member_not_found, subsystem_not_found", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "invalid_body", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
async fn admin_revoke_subsystem(
    State(state): State<AppState>,
    Posted { headers, body }: Posted,
) -> Result<Response, ApiError> {
    admin_change(state, headers, body, |h, b: SubsystemRef| {
        h.admin_revoke_subsystem(&b.org, &b.id)
    })
    .await
}

#[utoipa::path(post, path = "/api/hub/v1/admin/keys", tag = "hub-admin", summary = "Register a public key (JWK, P-256 or RSA) for a subsystem's client assertions",
    request_body(content = Object, content_type = "application/json", description = "{org, subsystem, jwk, not_after (optional RFC 3339)}"),
    responses(
        (status = 200, description = "The members and rights after the change (the key listed with its thumbprint kid)", body = Object),
        (status = 401, description = "Officer token missing or unknown", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "role_not_allowed", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "member_not_found, subsystem_not_found", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "key_exists", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "invalid_body, invalid_key (not a usable public key, or a private part given)", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
async fn admin_add_key(
    State(state): State<AppState>,
    Posted { headers, body }: Posted,
) -> Result<Response, ApiError> {
    admin_change(state, headers, body, |h, k| h.admin_add_key(k).map(|_| ())).await
}

#[utoipa::path(post, path = "/api/hub/v1/admin/keys/revoke", tag = "hub-admin", summary = "Revoke a subsystem's key by its thumbprint: its client assertions and the access tokens it obtained stop at once",
    request_body(content = Object, content_type = "application/json", description = "{org, subsystem, kid}"),
    responses(
        (status = 200, description = "The members and rights after the change", body = Object),
        (status = 401, description = "Officer token missing or unknown", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "role_not_allowed", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "member_not_found, subsystem_not_found, key_not_found", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "invalid_body", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
async fn admin_revoke_key(
    State(state): State<AppState>,
    Posted { headers, body }: Posted,
) -> Result<Response, ApiError> {
    admin_change(state, headers, body, |h, b: KeyRef| {
        h.admin_revoke_key(&b.org, &b.subsystem, &b.kid)
    })
    .await
}

#[utoipa::path(post, path = "/api/hub/v1/admin/rights", tag = "hub-admin", summary = "Grant an access right: service, fields, purpose code, legal basis, consent, end user and case reference requirements, covert embargo, quota and rate",
    request_body(content = Object, content_type = "application/json", description = "{id, org, subsystem, service, fields [..], purpose, legal_basis, requires_consent, requires_end_user, requires_case_reference, covert_embargo_days (or null), quota {limit, period day|month} (or null), rate {per_second, burst} (or null)}"),
    responses(
        (status = 200, description = "The members and rights after the change", body = Object),
        (status = 401, description = "Officer token missing or unknown", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "role_not_allowed", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "member_not_found, subsystem_not_found", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "right_exists", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "invalid_body, invalid_identifier, invalid_field, invalid_fields, invalid_limits: nothing changed", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
async fn admin_add_right(
    State(state): State<AppState>,
    Posted { headers, body }: Posted,
) -> Result<Response, ApiError> {
    admin_change(state, headers, body, |h, r| h.admin_add_right(r)).await
}

#[utoipa::path(post, path = "/api/hub/v1/admin/rights/revoke", tag = "hub-admin", summary = "Revoke an access right: the next call it would have allowed is refused",
    request_body(content = Object, content_type = "application/json", description = "{id}"),
    responses(
        (status = 200, description = "The members and rights after the change", body = Object),
        (status = 401, description = "Officer token missing or unknown", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "role_not_allowed", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "right_not_found", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "invalid_body", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
async fn admin_revoke_right(
    State(state): State<AppState>,
    Posted { headers, body }: Posted,
) -> Result<Response, ApiError> {
    admin_change(state, headers, body, |h, b: RightRef| {
        h.admin_revoke_right(&b.id)
    })
    .await
}

/// The hub's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    token,
    verify_attributes,
    verify_cmnd,
    ekyc,
    event_feed,
    webhook_status,
    webhook_replay,
    jwks,
    consent_grant,
    consent_list,
    consent_revoke,
    person_accesses,
    fee_statement,
    cards::member_verify,
    cards::officer_verify,
    checkpoint::issue_pass,
    checkpoint::check_in,
    checkpoint::org_check_ins,
    checkpoint::person_check_ins,
    batch_submit,
    batch_status,
    batch_results,
    batch_delete,
    enrich,
    linked_records,
    officer_linked_records,
    admin_list,
    admin_add_member,
    admin_revoke_member,
    admin_add_subsystem,
    admin_revoke_subsystem,
    admin_add_key,
    admin_revoke_key,
    admin_add_right,
    admin_revoke_right
))]
pub(crate) struct HubApiDoc;

/// The hub's routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/hub/v1/token", post(token))
        .route(
            "/api/hub/v1/admin/rights",
            get(admin_list).post(admin_add_right),
        )
        .route("/api/hub/v1/admin/rights/revoke", post(admin_revoke_right))
        .route("/api/hub/v1/admin/members", post(admin_add_member))
        .route(
            "/api/hub/v1/admin/members/revoke",
            post(admin_revoke_member),
        )
        .route("/api/hub/v1/admin/subsystems", post(admin_add_subsystem))
        .route(
            "/api/hub/v1/admin/subsystems/revoke",
            post(admin_revoke_subsystem),
        )
        .route("/api/hub/v1/admin/keys", post(admin_add_key))
        .route("/api/hub/v1/admin/keys/revoke", post(admin_revoke_key))
        .route("/api/hub/v1/verify/attributes", post(verify_attributes))
        .route("/api/hub/v1/verify/cmnd", post(verify_cmnd))
        .route("/api/hub/v1/ekyc", post(ekyc))
        .route("/api/hub/v1/events/feed", post(event_feed))
        .route("/api/hub/v1/events/webhook/status", post(webhook_status))
        .route("/api/hub/v1/events/webhook/replay", post(webhook_replay))
        .route("/api/hub/v1/jwks", get(jwks))
        .route("/api/hub/v1/consents/grant", post(consent_grant))
        .route("/api/hub/v1/consents/list", post(consent_list))
        .route("/api/hub/v1/consents/revoke", post(consent_revoke))
        .route("/api/hub/v1/tracker", post(person_accesses))
        .route("/api/hub/v1/fees/statement", get(fee_statement))
        .route("/api/hub/v1/cards/verify", post(cards::member_verify))
        .route("/api/v1/cards/verify", post(cards::officer_verify))
        .route("/api/hub/v1/checkpoint/pass", post(checkpoint::issue_pass))
        .route(
            "/api/hub/v1/checkpoint/check-in",
            post(checkpoint::check_in),
        )
        .route(
            "/api/hub/v1/checkpoint/check-ins",
            post(checkpoint::org_check_ins),
        )
        .route(
            "/api/hub/v1/checkpoint/person",
            post(checkpoint::person_check_ins),
        )
        .route(
            "/api/hub/v1/batch/jobs",
            post(batch_submit).layer(DefaultBodyLimit::max(BATCH_BODY_LIMIT)),
        )
        .route(
            "/api/hub/v1/batch/jobs/{id}",
            get(batch_status).delete(batch_delete),
        )
        .route("/api/hub/v1/enrich", post(enrich))
        .route("/api/hub/v1/linked-records", post(linked_records))
        .route(
            "/api/v1/persons/linked-records",
            post(officer_linked_records),
        )
        .route("/api/hub/v1/batch/jobs/{id}/results", get(batch_results))
}
