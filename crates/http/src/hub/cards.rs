//! Card verification over HTTP: `/api/hub/v1/cards/verify` for member subsystems (client
//! assertion, within a `card_verify` right) and `/api/v1/cards/verify` for officers (Bearer
//! token). Both answer [`dancu_hub::service::CardAnswer`]; the rules are in `dancu_hub::cards`.

use super::{client, hub, ok_json, run};
use crate::posted::Posted;
use crate::{ApiError, AppState, parse, purpose};
use axum::extract::State;
use axum::response::Response;
use dancu_hub::cards::CardInput;
use dancu_hub::service::CallMeta;
use serde::Deserialize;

#[derive(Deserialize)]
struct MemberBody {
    #[serde(flatten)]
    meta: CallMeta,
    #[serde(flatten)]
    card: CardInput,
}

/// Card verification for a member subsystem.
#[utoipa::path(post, path = "/api/hub/v1/cards/verify", tag = "hub", summary = "Card verification: authenticity per check (QR, MRZ, chip passive authentication), card data vs register per field, card status and vital status",
    request_body(content = Object, content_type = "application/json", description = "purpose, end_user, case_ref, and at least one of qr (text), mrz (three lines), chip {sod, data_groups {\"1\": base64, \"13\": base64, ...}}"),
    params(("X-Client-Assertion" = String, Header, description = "private_key_jwt client assertion of the member subsystem (iss = sub = member/subsystem, aud = urn:dancu:hub)")),
    responses(
        (status = 200, description = "authenticity, checks, person_found, fields, card, vital_status, audit_seq", body = Object),
        (status = 401, description = "Client assertion missing, invalid or replayed", body = crate::ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Refused by the rights (no_right, wrong_purpose, missing_end_user, ...)", body = crate::ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "card_input_missing, card_input_too_long, chip_base64_invalid, chip_data_group_invalid", body = crate::ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "audit_log_unavailable", body = crate::ProblemBody, content_type = "application/problem+json"),
    ))]
pub(super) async fn member_verify(
    State(state): State<AppState>,
    Posted { headers, body }: Posted,
) -> Result<Response, ApiError> {
    let hub = hub(&state)?;
    let c = client(&hub, &headers).await?;
    let b: MemberBody = parse(&body)?;
    let a = run(move || hub.verify_card(&c, &b.meta, &b.card)).await?;
    ok_json(&a)
}

#[derive(Deserialize)]
struct OfficerBody {
    #[serde(default)]
    purpose: Option<String>,
    #[serde(flatten)]
    card: CardInput,
}

/// Card verification for an officer.
#[utoipa::path(post, path = "/api/v1/cards/verify", tag = "queries", summary = "Card verification for officers: authenticity per check, card data vs register per field, card status and vital status",
    request_body(content = Object, content_type = "application/json", description = "purpose (or the X-Purpose header), and at least one of qr, mrz, chip {sod, data_groups}"),
    responses(
        (status = 200, description = "authenticity, checks, person_found, fields, card, vital_status, audit_seq", body = Object),
        (status = 401, description = "Officer token missing or unknown", body = crate::ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "purpose_required, card_input_missing, card_input_too_long, chip_base64_invalid, chip_data_group_invalid", body = crate::ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "hub_not_configured or audit_log_unavailable", body = crate::ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn officer_verify(
    State(state): State<AppState>,
    Posted { headers, body }: Posted,
) -> Result<Response, ApiError> {
    let officer = state.officer(&headers).await?;
    let hub = hub(&state)?;
    let b: OfficerBody = parse(&body)?;
    let why = b.purpose.unwrap_or_else(|| purpose(&headers));
    let a = run(move || hub.verify_card_for_officer(&officer.id, &why, &b.card)).await?;
    ok_json(&a)
}
