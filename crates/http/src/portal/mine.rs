//! More of the citizen's own data: my linked documents (the identifiers that sectoral
//! registers linked to me through the hub: health insurance, tax code, driving licence, …),
//! my residence history (from my record's events), and the data tracker filtered by agency and
//! date range (a plain GET form, so it works without JavaScript and the filter is in the URL).
//! As on the other citizen pages, the holder reads their own data: not an officer read.

use super::pages::{Chrome, Lang, Line};
use super::{Ctx, Msg, Side, blocking, context, error_page, login_required, query, render};
use crate::AppState;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, NaiveDate, Utc};
use dancu_domain::PersonalId;
use dancu_domain::event::PersonChange;
use std::collections::BTreeMap;

/// Vietnam time (UTC+7) of an instant.
fn local(t: DateTime<Utc>) -> chrono::NaiveDateTime {
    (t + chrono::Duration::hours(7)).naive_utc()
}

fn when(t: DateTime<Utc>) -> String {
    local(t).format("%Y-%m-%d %H:%M").to_string()
}

fn me(
    state: &AppState,
    headers: &HeaderMap,
    q: &BTreeMap<String, String>,
) -> Result<(Ctx, PersonalId), Box<Response>> {
    let ctx = context(state, headers, q);
    match ctx.person {
        Some(p) if ctx.officer.is_none() => Ok((ctx, p)),
        _ => Err(Box::new(login_required(&ctx, Side::Citizen))),
    }
}

fn store_err(e: dancu_store::StoreError) -> Msg {
    Msg::from(dancu_registry::RegistryError::from(e))
}

// ----- linked documents -------------------------------------------------------------------

/// A linked document as shown.
#[derive(Debug, Clone)]
pub(crate) struct DocRow {
    pub(crate) what: String,
    pub(crate) value: String,
    pub(crate) from: String,
    pub(crate) since: String,
    pub(crate) details: String,
    pub(crate) earlier: usize,
}

#[derive(askama::Template)]
#[template(path = "portal/documents.html")]
pub(crate) struct DocumentsPage {
    pub(crate) c: Chrome,
    pub(crate) hub: bool,
    pub(crate) docs: Vec<DocRow>,
}

/// The name of a kind of linked identifier; unknown kinds show their code.
pub(crate) fn kind_name(l: Lang, kind: &str) -> String {
    let (vi, en) = match kind {
        "health_insurance_number" => ("Thẻ bảo hiểm y tế", "Health insurance card"),
        "social_insurance_number" => ("Sổ bảo hiểm xã hội", "Social insurance book"),
        "tax_code" => ("Mã số thuế cá nhân", "Personal tax code"),
        "driving_licence_number" | "driving_license_number" => {
            ("Giấy phép lái xe", "Driving licence")
        }
        "passport_number" => ("Hộ chiếu", "Passport"),
        "immunisation" | "vaccination" => ("Tiêm chủng", "Immunisation"),
        "student_id" => ("Mã số học sinh, sinh viên", "Student number"),
        _ => return kind.to_owned(),
    };
    l.s(vi, en).to_owned()
}

/// My linked documents.
pub(super) async fn documents(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: RawQuery,
) -> Response {
    let q = query(q.0);
    let (ctx, id) = match me(&state, &headers, &q) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let l = ctx.lang;
    let hub = state.hub.clone();
    let has_hub = hub.is_some();
    let r = blocking(move || match hub {
        Some(h) => Ok(h.linked_records(&id.to_string())?),
        None => Ok(Vec::new()),
    })
    .await;
    match r {
        Ok(records) => {
            let docs = records
                .into_iter()
                .map(|r| DocRow {
                    what: kind_name(l, &r.kind),
                    value: r.current.value,
                    from: format!("{} / {}", r.source_org, r.source_subsystem),
                    since: when(r.current.submitted_at),
                    details: r
                        .current
                        .attributes
                        .as_ref()
                        .and_then(|a| a.as_object())
                        .map(|o| {
                            o.iter()
                                .map(|(k, v)| match v.as_str() {
                                    Some(s) => format!("{k}: {s}"),
                                    None => format!("{k}: {v}"),
                                })
                                .collect::<Vec<_>>()
                                .join(" · ")
                        })
                        .unwrap_or_default(),
                    earlier: r.history.len(),
                })
                .collect();
            let page = DocumentsPage {
                c: ctx.chrome(Side::Citizen, ("Giấy tờ liên kết", "My linked documents")),
                hub: has_hub,
                docs,
            };
            ctx.finish(render(StatusCode::OK, &page))
        }
        Err(m) => error_page(&ctx, Side::Citizen, StatusCode::INTERNAL_SERVER_ERROR, &m),
    }
}

// ----- residence history ------------------------------------------------------------------

/// One step of my residence history.
#[derive(Debug, Clone)]
pub(crate) struct ResidenceRow {
    pub(crate) from: String,
    pub(crate) until: String,
    pub(crate) what: String,
    pub(crate) place: String,
    pub(crate) recorded: String,
}

#[derive(askama::Template)]
#[template(path = "portal/residences.html")]
pub(crate) struct ResidencesPage {
    pub(crate) c: Chrome,
    pub(crate) rows: Vec<ResidenceRow>,
}

fn place(a: &dancu_domain::admin::Address) -> String {
    let commune = dancu_domain::admin::AdminUnits::get()
        .commune(a.scheme, &a.commune_code)
        .map(|c| c.name)
        .unwrap_or("?");
    if a.detail.is_empty() {
        commune.to_owned()
    } else {
        format!("{}, {commune}", a.detail)
    }
}

fn date(d: NaiveDate) -> String {
    d.to_string()
}

/// The residence steps of my record's events, newest first.
pub(crate) fn residence_rows(l: Lang, events: &[dancu_store::RecordedEvent]) -> Vec<ResidenceRow> {
    let mut rows = Vec::new();
    for e in events {
        let Ok(change) = serde_json::from_value::<PersonChange>(e.change.clone()) else {
            continue;
        };
        let recorded = when(e.meta.at);
        let row = |from: String, until: String, what: &str, place: String| ResidenceRow {
            from,
            until,
            what: what.to_owned(),
            place,
            recorded: recorded.clone(),
        };
        match change {
            PersonChange::BirthRegistered { record } | PersonChange::RecordImported { record } => {
                for (r, what) in [
                    (
                        &record.permanent_residence,
                        l.s("Thường trú", "Permanent residence"),
                    ),
                    (
                        &record.temporary_residence,
                        l.s("Tạm trú", "Temporary residence"),
                    ),
                ] {
                    if let Some(r) = r {
                        rows.push(row(
                            date(r.from),
                            r.until.map(date).unwrap_or_default(),
                            what,
                            place(&r.address),
                        ));
                    }
                }
            }
            PersonChange::PermanentResidenceRegistered { residence: r } => rows.push(row(
                date(r.from),
                r.until.map(date).unwrap_or_default(),
                l.s("Đăng ký thường trú", "Permanent residence registered"),
                place(&r.address),
            )),
            PersonChange::PermanentResidenceRemoved { on } => rows.push(row(
                date(on),
                String::new(),
                l.s("Xóa đăng ký thường trú", "Permanent residence removed"),
                String::new(),
            )),
            PersonChange::TemporaryResidenceRegistered { residence: r } => rows.push(row(
                date(r.from),
                r.until.map(date).unwrap_or_default(),
                l.s("Đăng ký tạm trú", "Temporary residence registered"),
                place(&r.address),
            )),
            PersonChange::TemporaryAbsenceDeclared { absence: a } => rows.push(row(
                date(a.from),
                date(a.until),
                l.s("Khai báo tạm vắng", "Temporary absence declared"),
                a.destination,
            )),
            PersonChange::StayNotified { stay: s } => rows.push(row(
                date(s.from),
                date(s.until),
                l.s("Thông báo lưu trú", "Stay notified"),
                place(&s.address),
            )),
            _ => {}
        }
    }
    rows.reverse();
    rows
}

/// My residence history.
pub(super) async fn residences(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: RawQuery,
) -> Response {
    let q = query(q.0);
    let (ctx, id) = match me(&state, &headers, &q) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let l = ctx.lang;
    let st = state.clone();
    let r = blocking(move || {
        st.registry
            .store()
            .events(&dancu_store::StreamId::Person(id), None)
            .map_err(store_err)
    })
    .await;
    match r {
        Ok(events) => {
            let page = ResidencesPage {
                c: ctx.chrome(Side::Citizen, ("Lịch sử cư trú", "My residence history")),
                rows: residence_rows(l, &events),
            };
            ctx.finish(render(StatusCode::OK, &page))
        }
        Err(m) => error_page(&ctx, Side::Citizen, StatusCode::INTERNAL_SERVER_ERROR, &m),
    }
}

// ----- the data tracker with filters ------------------------------------------------------

/// The register's officers, as an "agency" of the tracker's filter.
const REGISTER: &str = "register";

#[derive(askama::Template)]
#[template(path = "portal/tracker.html")]
pub(crate) struct TrackerPage {
    pub(crate) c: Chrome,
    pub(crate) register: Vec<Line>,
    pub(crate) hub: Vec<Line>,
    /// The agencies to choose from: (value, label).
    pub(crate) agencies: Vec<(String, String)>,
    pub(crate) agency: String,
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) error: Option<Msg>,
}

fn bad_date(which_vi: &str, which_en: &str) -> Msg {
    Msg::new(
        "tracker_date_invalid",
        &format!(
            "{which_vi} không phải ngày hợp lệ (năm-tháng-ngày); bộ lọc ngày chưa được áp dụng"
        ),
        &format!(
            "{which_en} is not a valid date (year-month-day); the date filter was not applied"
        ),
    )
}

/// Reads a date filter: empty is no bound.
fn date_filter(q: &BTreeMap<String, String>, k: &str) -> Result<Option<NaiveDate>, ()> {
    match q.get(k).map(|s| s.trim()).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| ()),
    }
}

/// Who used my data: officers' reads in the register's access log, and agencies' accesses
/// through the hub (covert ones once their embargo has ended), filtered by agency and by a
/// range of dates (Vietnam time, both ends included).
pub(super) async fn tracker(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: RawQuery,
) -> Response {
    let q = query(q.0);
    let (ctx, id) = match me(&state, &headers, &q) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let l = ctx.lang;
    let agency = q.get("agency").cloned().unwrap_or_default();
    let (mut from, mut to) = (
        q.get("from").cloned().unwrap_or_default(),
        q.get("to").cloned().unwrap_or_default(),
    );
    let mut error = None;
    let dates = match (date_filter(&q, "from"), date_filter(&q, "to")) {
        (Ok(a), Ok(b)) if a.zip(b).is_none_or(|(a, b)| a <= b) => (a, b),
        (Ok(_), Ok(_)) => {
            error = Some(Msg::new(
                "tracker_range_invalid",
                "Ngày bắt đầu sau ngày kết thúc; bộ lọc ngày chưa được áp dụng",
                "The start date is after the end date; the date filter was not applied",
            ));
            (None, None)
        }
        (Err(()), _) => {
            error = Some(bad_date("Ngày bắt đầu", "The start date"));
            (None, None)
        }
        (_, Err(())) => {
            error = Some(bad_date("Ngày kết thúc", "The end date"));
            (None, None)
        }
    };
    if error.is_some() {
        from.clear();
        to.clear();
    }
    let in_range = move |t: DateTime<Utc>| {
        let d = local(t).date();
        dates.0.is_none_or(|a| d >= a) && dates.1.is_none_or(|b| d <= b)
    };
    let st = state.clone();
    let r = blocking(move || {
        let register = st
            .registry
            .store()
            .access_log(&id, 200)
            .map_err(store_err)?;
        let hub = match &st.hub {
            Some(h) => h.person_accesses(&id.to_string())?,
            None => Vec::new(),
        };
        Ok((register, hub))
    })
    .await;
    let (register, hub) = match r {
        Ok(x) => x,
        Err(m) => {
            return error_page(&ctx, Side::Citizen, StatusCode::INTERNAL_SERVER_ERROR, &m);
        }
    };
    let mut agencies = vec![(
        REGISTER.to_owned(),
        l.s(
            "Cơ quan đăng ký, quản lý cư trú (cán bộ)",
            "Population register (officers)",
        )
        .to_owned(),
    )];
    for a in &hub {
        if !agencies.iter().any(|(v, _)| *v == a.org) {
            agencies.push((a.org.clone(), a.org.clone()));
        }
    }
    let register = register
        .into_iter()
        .filter(|e| (agency.is_empty() || agency == REGISTER) && in_range(e.at))
        .map(|e| Line {
            at: when(e.at),
            what: e.action,
            who: e.actor,
            why: e.purpose,
        })
        .collect();
    let hub = hub
        .into_iter()
        .filter(|a| (agency.is_empty() || agency == a.org) && in_range(a.time))
        .map(|a| Line {
            at: when(a.time),
            what: a.fields.join(", "),
            who: format!("{} / {}", a.org, a.service),
            why: a.purpose,
        })
        .collect();
    let page = TrackerPage {
        c: ctx.chrome(
            Side::Citizen,
            ("Ai đã dùng dữ liệu của tôi", "Who used my data"),
        ),
        register,
        hub,
        agencies,
        agency,
        from,
        to,
        error,
    };
    let status = if page.error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    ctx.finish(render(status, &page))
}
