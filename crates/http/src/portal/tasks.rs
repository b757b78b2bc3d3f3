//! Correction requests in the portals: the citizen writes one in `/portal/me/requests` and
//! follows its status; it reaches the desk as a task (`/portal/desk/tasks`) for officers whose
//! jurisdiction covers the person; the officer opens it beside the record, then applies it
//! through the correction form (pre-filled with the request) or rejects it with a reason.
//! The use-cases are the register's (`Registry::submit_correction_request` and the rest),
//! storing the requests in the deployment's document store.

use super::citizen::person_fields;
use super::desk::{get, officer, officer_post};
use super::forms::{field_label, field_options, field_value, parse_field};
use super::pages::{Chrome, Field, Lang};
use super::{Msg, Side, blocking, context, error_page, login_required, posted, query, render};
use crate::AppState;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use dancu_domain::PersonalId;
use dancu_domain::officer::Officer;
use dancu_domain::person::Person;
use dancu_registry::{CorrectionRequest, RequestStatus};
use dancu_store::docs::DocStore;
use std::sync::Arc;

/// The purpose recorded for reads made to handle a correction request.
pub(super) const TASK_PURPOSE: &str = "dieu-chinh-theo-yeu-cau";

fn docs(st: &AppState) -> Result<Arc<dyn DocStore>, Msg> {
    st.idp.as_ref().map(|i| i.docs().clone()).ok_or_else(|| {
        Msg::new(
            "eid_disabled",
            "Máy chủ này không bật dịch vụ định danh điện tử",
            "This server does not run the e-ID service",
        )
    })
}

fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    (t + chrono::Duration::hours(7))
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

fn status_text(l: Lang, s: RequestStatus) -> &'static str {
    match s {
        RequestStatus::Open => l.s("Đang chờ xử lý", "Waiting"),
        RequestStatus::Applied => l.s("Đã điều chỉnh", "Corrected"),
        RequestStatus::Rejected => l.s("Bị từ chối", "Rejected"),
    }
}

/// A request as shown.
#[derive(Debug, Clone)]
pub struct RequestRow {
    pub id: String,
    pub person: String,
    pub field: String,
    pub field_label: &'static str,
    pub proposed: String,
    pub explanation: String,
    pub at: String,
    pub status: &'static str,
    pub status_code: String,
    pub resolution: String,
}

fn row(l: Lang, r: &CorrectionRequest) -> RequestRow {
    RequestRow {
        id: r.id.clone(),
        person: r.person.to_string(),
        field: super::forms::field_code(r.field),
        field_label: field_label(l, r.field),
        proposed: r.proposed.clone(),
        explanation: r.explanation.clone(),
        at: when(r.submitted_at),
        status: status_text(l, r.status),
        status_code: serde_json::to_value(r.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        resolution: r.resolution.clone().unwrap_or_default(),
    }
}

/// The request the correction form applies, checked to be open and about this person.
pub(super) fn request_for(
    st: &AppState,
    o: &Officer,
    id: &str,
    person: &Person,
) -> Result<RequestRow, Msg> {
    let d = docs(st)?;
    let r = st
        .registry
        .correction_request(d.as_ref(), o, &purpose(), id)?;
    if r.person != person.id || r.status != RequestStatus::Open {
        return Err(Msg::new(
            "request_closed",
            "Yêu cầu này đã được giải quyết hoặc không thuộc hồ sơ này",
            "This request was handled already or is about another record",
        ));
    }
    Ok(row(Lang::Vi, &r))
}

/// Closes the request once its correction was recorded.
pub(super) fn mark_applied(st: &AppState, o: &Officer, id: &str) -> Result<(), Msg> {
    let d = docs(st)?;
    st.registry
        .resolve_correction_request(d.as_ref(), o, id, true, "")?;
    Ok(())
}

fn purpose() -> String {
    super::pages::PURPOSES
        .iter()
        .find(|(c, _, _)| *c == TASK_PURPOSE)
        .map(|(c, vi, _)| format!("{vi} ({c})"))
        .unwrap_or_else(|| TASK_PURPOSE.to_owned())
}

#[derive(Template)]
#[template(path = "portal/tasks.html")]
pub struct TasksPage {
    pub c: Chrome,
    pub tasks: Vec<RequestRow>,
    pub notice: Option<Msg>,
    pub purpose: &'static str,
}

#[derive(Template)]
#[template(path = "portal/task.html")]
pub struct TaskPage {
    pub c: Chrome,
    pub r: RequestRow,
    pub name: String,
    pub current: String,
    pub fields: Vec<Field>,
    pub purpose: &'static str,
    pub reason: String,
    pub error: Option<Msg>,
}

#[derive(Template)]
#[template(path = "portal/requests.html")]
pub struct RequestsPage {
    pub c: Chrome,
    pub requests: Vec<RequestRow>,
    pub options: Vec<(String, String)>,
    pub field: String,
    pub proposed: String,
    pub explanation: String,
    pub notice: Option<Msg>,
    pub error: Option<Msg>,
    pub error_at: String,
}

async fn tasks_page(
    state: &AppState,
    ctx: &super::Ctx,
    o: Officer,
    notice: Option<Msg>,
) -> Response {
    let l = ctx.lang;
    let st = state.clone();
    let r = blocking(move || {
        let d = docs(&st)?;
        Ok(st.registry.correction_tasks(d.as_ref(), &o, &purpose())?)
    })
    .await;
    match r {
        Ok(list) => {
            let page = TasksPage {
                c: ctx.chrome(
                    Side::Desk,
                    (
                        "Yêu cầu điều chỉnh của công dân",
                        "Citizens' correction requests",
                    ),
                ),
                tasks: list.iter().map(|r| row(l, r)).collect(),
                notice,
                purpose: TASK_PURPOSE,
            };
            ctx.finish(render(StatusCode::OK, &page))
        }
        Err(m) => error_page(ctx, Side::Desk, StatusCode::SERVICE_UNAVAILABLE, &m),
    }
}

/// The desk's task list: open correction requests of people in the officer's jurisdiction.
pub(super) async fn tasks(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: RawQuery,
) -> Response {
    let q = query(q.0);
    let ctx = context(&state, &headers, &q);
    let o = match officer(&ctx) {
        Ok(o) => o,
        Err(r) => return *r,
    };
    tasks_page(&state, &ctx, o, None).await
}

async fn task_page(
    state: &AppState,
    ctx: &super::Ctx,
    o: Officer,
    id: String,
    reason: String,
    error: Option<Msg>,
) -> Response {
    let l = ctx.lang;
    let st = state.clone();
    let r = blocking(move || {
        let d = docs(&st)?;
        let r = st
            .registry
            .correction_request(d.as_ref(), &o, &purpose(), &id)?;
        let p = st
            .registry
            .store()
            .person(&r.person)
            .map_err(|e| Msg::from(dancu_registry::RegistryError::from(e)))?
            .ok_or_else(super::internal)?;
        Ok((r, p))
    })
    .await;
    match r {
        Ok((r, p)) => {
            let (fields, _, _) = person_fields(l, &p);
            let status = if error.is_some() {
                StatusCode::UNPROCESSABLE_ENTITY
            } else {
                StatusCode::OK
            };
            let page = TaskPage {
                c: ctx.chrome(Side::Desk, ("Yêu cầu điều chỉnh", "Correction request")),
                current: super::forms::field_text(&p, r.field),
                r: row(l, &r),
                name: p.name.full(),
                fields,
                purpose: TASK_PURPOSE,
                reason,
                error,
            };
            ctx.finish(render(status, &page))
        }
        Err(m) => error_page(ctx, Side::Desk, StatusCode::UNPROCESSABLE_ENTITY, &m),
    }
}

/// Opens a task: the request beside the record (the read logged for handling the request).
pub(super) async fn task(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (ctx, form, o) = match officer_post(&state, &headers, &body) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    task_page(&state, &ctx, o, get(&form, "request"), String::new(), None).await
}

/// Rejects a task with a reason; the citizen sees it.
pub(super) async fn reject(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (ctx, form, o) = match officer_post(&state, &headers, &body) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let (id, reason) = (get(&form, "request"), get(&form, "reason"));
    let st = state.clone();
    let (o2, id2, reason2) = (o.clone(), id.clone(), reason.clone());
    let r = blocking(move || {
        let d = docs(&st)?;
        Ok(st
            .registry
            .resolve_correction_request(d.as_ref(), &o2, &id2, false, &reason2)?)
    })
    .await;
    match r {
        Ok(_) => {
            let n = Msg::new(
                "request_rejected",
                "Đã từ chối yêu cầu; công dân sẽ thấy lý do.",
                "The request is rejected; the citizen will see the reason.",
            );
            tasks_page(&state, &ctx, o, Some(n)).await
        }
        Err(m) => task_page(&state, &ctx, o, id, reason, Some(m)).await,
    }
}

fn me(ctx: &super::Ctx) -> Option<PersonalId> {
    ctx.person.filter(|_| ctx.officer.is_none())
}

#[allow(clippy::too_many_arguments)]
async fn requests_page(
    state: &AppState,
    ctx: &super::Ctx,
    who: PersonalId,
    form: (String, String, String),
    notice: Option<Msg>,
    error: Option<Msg>,
    error_at: &str,
) -> Response {
    let l = ctx.lang;
    let st = state.clone();
    let r = blocking(move || {
        let d = docs(&st)?;
        Ok(st.registry.my_correction_requests(d.as_ref(), &who)?)
    })
    .await;
    match r {
        Ok(list) => {
            let status = if error.is_some() {
                StatusCode::UNPROCESSABLE_ENTITY
            } else {
                StatusCode::OK
            };
            let page = RequestsPage {
                c: ctx.chrome(
                    Side::Citizen,
                    ("Đề nghị điều chỉnh thông tin", "Ask for a correction"),
                ),
                requests: list.iter().map(|r| row(l, r)).collect(),
                options: field_options(l),
                field: form.0,
                proposed: form.1,
                explanation: form.2,
                notice,
                error,
                error_at: error_at.to_owned(),
            };
            ctx.finish(render(status, &page))
        }
        Err(m) => error_page(ctx, Side::Citizen, StatusCode::SERVICE_UNAVAILABLE, &m),
    }
}

/// The citizen's requests and the form to make one.
pub(super) async fn my_requests(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: RawQuery,
) -> Response {
    let q = query(q.0);
    let ctx = context(&state, &headers, &q);
    let Some(who) = me(&ctx) else {
        return login_required(&ctx, Side::Citizen);
    };
    let blank = ("name".to_owned(), String::new(), String::new());
    requests_page(&state, &ctx, who, blank, None, None, "").await
}

/// The citizen sends a request; the proposed value is checked with the register's rules first.
pub(super) async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (ctx, form) = match posted(&state, &headers, &body) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let Some(who) = me(&ctx) else {
        return login_required(&ctx, Side::Citizen);
    };
    let typed = (
        get(&form, "field"),
        get(&form, "proposed"),
        get(&form, "explanation"),
    );
    let today = state.registry.clock().today();
    let Some(field) = parse_field(&typed.0) else {
        let m = Msg::new(
            "correction_field_unknown",
            "Hãy chọn trường cần điều chỉnh",
            "Choose the field to correct",
        );
        return requests_page(&state, &ctx, who, typed, None, Some(m), "field").await;
    };
    if let Err(m) = field_value(field, &typed.1, Some(who), today) {
        return requests_page(&state, &ctx, who, typed, None, Some(m), "proposed").await;
    }
    let st = state.clone();
    let t2 = typed.clone();
    let r = blocking(move || {
        let d = docs(&st)?;
        Ok(st
            .registry
            .submit_correction_request(d.as_ref(), &who, field, &t2.1, &t2.2)?)
    })
    .await;
    match r {
        Ok(req) => {
            let n = Msg::new(
                "request_sent",
                &format!(
                    "Đã gửi yêu cầu {}; cán bộ sẽ xem xét và trả lời tại đây.",
                    req.id
                ),
                &format!(
                    "Request {} sent; an officer will review it and answer here.",
                    req.id
                ),
            );
            let blank = ("name".to_owned(), String::new(), String::new());
            requests_page(&state, &ctx, who, blank, Some(n), None, "").await
        }
        Err(m) => {
            let at = if m.code.starts_with("request_explanation") {
                "explanation"
            } else {
                "proposed"
            };
            requests_page(&state, &ctx, who, typed, None, Some(m), at).await
        }
    }
}
