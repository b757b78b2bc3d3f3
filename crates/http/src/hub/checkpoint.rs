//! QR checkpoints over HTTP: a pass issued for a person (officer at a counter acting for them,
//! until the e-ID app calls directly), check-ins recorded by a member's checkpoint (client
//! assertion, within a `checkpoint` right), and the two views: the organisation's check-ins and
//! the person's. Rules are in `dancu_hub::checkpoint` and `dancu_hub::service`.

use super::{client, counter_officer, hub, ok_json, run};
use crate::posted::Posted;
use crate::{ApiError, AppState, parse};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;

#[derive(Deserialize)]
struct PassBody {
    person: String,
    level: u8,
    #[serde(default)]
    photo_hash: Option<String>,
}

/// Issue a pass.
#[utoipa::path(post, path = "/api/hub/v1/checkpoint/pass", tag = "hub", summary = "Issue a short-lived signed checkpoint pass (QR) for a person",
    request_body(content = Object, content_type = "application/json", description = "person, level (1 or 2), optional photo_hash (hex SHA-256)"),
    responses(
        (status = 200, description = "qr (compact JWS, ES256 with the hub key of /api/hub/v1/jwks) and expires_at", body = Object),
        (status = 401, description = "Officer token missing or unknown", body = crate::ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "person_not_found", body = crate::ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "invalid_personal_id, invalid_level, invalid_photo_hash, person_dead", body = crate::ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn issue_pass(
    State(state): State<AppState>,
    Posted { headers, body }: Posted,
) -> Result<Response, ApiError> {
    counter_officer(&state, &headers).await?;
    let hub = hub(&state)?;
    let b: PassBody = parse(&body)?;
    let p = run(move || hub.issue_pass(&b.person, b.level, b.photo_hash)).await?;
    ok_json(&p)
}

#[derive(Deserialize)]
struct CheckInBody {
    place: String,
    pass: String,
}

/// Record a check-in.
#[utoipa::path(post, path = "/api/hub/v1/checkpoint/check-in", tag = "hub", summary = "Record a check-in at one of the member's places with a scanned pass",
    request_body(content = Object, content_type = "application/json", description = "place, pass"),
    params(("X-Client-Assertion" = String, Header, description = "private_key_jwt client assertion of the member subsystem")),
    responses(
        (status = 200, description = "The check-in", body = Object),
        (status = 401, description = "Client assertion missing, invalid or replayed", body = crate::ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "no_right", body = crate::ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "invalid_place, pass_malformed, pass_signature_invalid, pass_expired, pass_replayed", body = crate::ProblemBody, content_type = "application/problem+json"),
    ))]
pub(super) async fn check_in(
    State(state): State<AppState>,
    Posted { headers, body }: Posted,
) -> Result<Response, ApiError> {
    let hub = hub(&state)?;
    let c = client(&hub, &headers).await?;
    let b: CheckInBody = parse(&body)?;
    let r = run(move || hub.check_in(&c, &b.place, &b.pass)).await?;
    ok_json(&r)
}

/// The member's check-ins.
#[utoipa::path(post, path = "/api/hub/v1/checkpoint/check-ins", tag = "hub", summary = "The check-ins at the calling member's places",
    params(("X-Client-Assertion" = String, Header, description = "private_key_jwt client assertion of the member subsystem")),
    responses(
        (status = 200, description = "Check-ins, oldest first", body = Object),
        (status = 401, description = "Client assertion missing, invalid or replayed", body = crate::ProblemBody, content_type = "application/problem+json"),
    ))]
pub(super) async fn org_check_ins(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let hub = hub(&state)?;
    let c = client(&hub, &headers).await?;
    let r = run(move || hub.org_check_ins(&c)).await?;
    ok_json(&r)
}

#[derive(Deserialize)]
struct PersonBody {
    person: String,
}

/// The person's check-ins.
#[utoipa::path(post, path = "/api/hub/v1/checkpoint/person", tag = "hub", summary = "Where the person checked in (officer at a counter acting for them)",
    request_body(content = Object, content_type = "application/json", description = "person"),
    responses(
        (status = 200, description = "Check-ins, oldest first", body = Object),
        (status = 401, description = "Officer token missing or unknown", body = crate::ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "invalid_personal_id", body = crate::ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn person_check_ins(
    State(state): State<AppState>,
    Posted { headers, body }: Posted,
) -> Result<Response, ApiError> {
    counter_officer(&state, &headers).await?;
    let hub = hub(&state)?;
    let b: PersonBody = parse(&body)?;
    let r = run(move || hub.person_check_ins(&b.person)).await?;
    ok_json(&r)
}
