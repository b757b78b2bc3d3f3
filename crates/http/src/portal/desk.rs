//! The officer desk: search (accent-free names, birth year, commune), the person page (record,
//! household, residences and their history, cards, e-ID account, linked sectoral records, full
//! history in words) and the birth registration form. Every read goes through the register's
//! use-cases with the purpose the officer chose, so it is checked against the officer's
//! jurisdiction and recorded in the access log; the birth form runs the same command as
//! `POST /api/v1/births` and shows its refusals in place. The other commands' forms are in
//! `forms`, the correction-request tasks in `tasks`.

use super::citizen::{person_fields, person_row, relation};
use super::pages::{self, BirthForm, PURPOSES};
use super::{Ctx, Msg, Side, blocking, context, error_page, login_required, posted, query, render};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use dancu_domain::PersonalId;
use dancu_domain::officer::Officer;
use dancu_registry::{Command, PersonSearch};
use std::collections::BTreeMap;

pub(super) fn officer(ctx: &Ctx) -> Result<Officer, Box<Response>> {
    ctx.officer
        .clone()
        .ok_or_else(|| Box::new(login_required(ctx, Side::Desk)))
}

/// A desk form post (CSRF checked) from a logged-in officer: the context, the form, the officer.
pub(super) fn officer_post(
    state: &AppState,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(Ctx, BTreeMap<String, String>, Officer), Box<Response>> {
    let (ctx, form) = posted(state, headers, body)?;
    let o = officer(&ctx)?;
    Ok((ctx, form, o))
}

fn officer_label(o: &Officer) -> String {
    format!("{} · {:?} · {}", o.name, o.role, o.jurisdiction).to_lowercase()
}

pub(super) fn get(form: &BTreeMap<String, String>, k: &str) -> String {
    form.get(k).map(|s| s.trim().to_owned()).unwrap_or_default()
}

pub(super) fn purpose_text(code: &str) -> Result<String, Msg> {
    PURPOSES
        .iter()
        .find(|(c, _, _)| *c == code)
        .map(|(c, vi, _)| format!("{vi} ({c})"))
        .ok_or_else(|| {
            Msg::new(
                "purpose_required",
                "Hãy chọn mục đích tra cứu",
                "Choose the purpose of the lookup",
            )
        })
}

pub(super) fn parse_id(s: &str) -> Result<PersonalId, Msg> {
    PersonalId::parse(s).map_err(|_| {
        Msg::new(
            "personal_id_invalid",
            "Số định danh cá nhân không hợp lệ",
            "Not a valid personal ID number",
        )
    })
}

/// The search page.
pub(super) async fn search_page(
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
    let page = pages::SearchPage {
        c: ctx.chrome(Side::Desk, ("Tra cứu công dân", "Find a person")),
        officer: officer_label(&o),
        name: String::new(),
        year: String::new(),
        commune: String::new(),
        purpose: String::new(),
        error: None,
        results: None,
    };
    ctx.finish(render(StatusCode::OK, &page))
}

/// Runs a search and shows the results (or the refusal) under the filled-in form.
pub(super) async fn search(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (ctx, form, o) = match officer_post(&state, &headers, &body) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let l = ctx.lang;
    let (name, year, commune, purpose) = (
        get(&form, "name"),
        get(&form, "year"),
        get(&form, "commune"),
        get(&form, "purpose"),
    );
    let st = state.clone();
    let (o2, n2, y2, c2, p2) = (
        o.clone(),
        name.clone(),
        year.clone(),
        commune.clone(),
        purpose.clone(),
    );
    let r = blocking(move || {
        let purpose = purpose_text(&p2)?;
        let birth_year = if y2.is_empty() {
            None
        } else {
            Some(y2.parse::<i32>().map_err(|_| {
                Msg::new(
                    "birth_year_invalid",
                    "Năm sinh phải là một số, ví dụ 1990",
                    "The birth year must be a number, e.g. 1990",
                )
            })?)
        };
        let s = PersonSearch {
            name: n2,
            birth_year,
            date_of_birth: None,
            commune: (!c2.is_empty()).then_some(c2),
            limit: Some(50),
        };
        Ok(st.registry.search(&o2, &purpose, &s)?)
    })
    .await;
    let (results, error) = match r {
        Ok(found) => (
            Some(
                found
                    .people
                    .iter()
                    .map(|p| person_row(l, p, String::new()))
                    .collect(),
            ),
            None,
        ),
        Err(m) => (None, Some(m)),
    };
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let page = pages::SearchPage {
        c: ctx.chrome(Side::Desk, ("Tra cứu công dân", "Find a person")),
        officer: officer_label(&o),
        name,
        year,
        commune,
        purpose,
        error,
        results,
    };
    ctx.finish(render(status, &page))
}

/// The person page: record, household, residences, cards and full history.
pub(super) async fn person(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (ctx, form, o) = match officer_post(&state, &headers, &body) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let (id, purpose_code) = (get(&form, "id"), get(&form, "purpose"));
    person_page(&state, &ctx, &o, purpose_code, id, None).await
}

/// Reads the person (record, household, history, e-ID account, linked records) for the chosen
/// purpose, every read logged, and shows the person page with an optional notice on top.
pub(super) async fn person_page(
    state: &AppState,
    ctx: &Ctx,
    o: &Officer,
    purpose_code: String,
    id: String,
    notice: Option<Msg>,
) -> Response {
    let l = ctx.lang;
    let st = state.clone();
    let o2 = o.clone();
    let pc = purpose_code.clone();
    let r = blocking(move || {
        let purpose = purpose_text(&pc)?;
        let id = parse_id(&id)?;
        let p = st.registry.person(&o2, &purpose, &id)?;
        let history = st.registry.history(&o2, &purpose, &id)?;
        let mut household = Vec::new();
        if let Some(m) = &p.household {
            let (h, people) = st.registry.household(&o2, &purpose, &m.household_id)?;
            for m in &h.members {
                if let Some(mp) = people.iter().find(|x| x.id == m.person) {
                    household.push(person_row(l, mp, relation(l, m.relationship)));
                }
            }
        }
        let extra = super::timeline::extras(&st, &o2, &purpose, &p, l)?;
        Ok((p, history, household, extra))
    })
    .await;
    match r {
        Ok((p, history, household, extra)) => {
            let (fields, residences, cards) = person_fields(l, &p);
            let page = pages::PersonPage {
                c: ctx.chrome(Side::Desk, ("Hồ sơ công dân", "Person")),
                id: p.id.to_string(),
                name: p.name.full(),
                purpose: purpose_code,
                version: p.version,
                fields,
                residences,
                cards,
                household,
                residence_history: super::timeline::residence_history(l, &history),
                history: history
                    .iter()
                    .rev()
                    .map(|e| super::timeline::event_line(l, e))
                    .collect(),
                can_write: o.role.can_write(),
                actions: super::forms::actions(l, &p),
                notice,
                eid: extra.eid,
                linked: extra.linked,
            };
            ctx.finish(render(StatusCode::OK, &page))
        }
        Err(m) => error_page(ctx, Side::Desk, StatusCode::UNPROCESSABLE_ENTITY, &m),
    }
}

fn birth_form_page(ctx: &Ctx, f: BirthForm, error: Option<Msg>) -> Response {
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let page = pages::BirthPage {
        c: ctx.chrome(Side::Desk, ("Đăng ký khai sinh", "Register a birth")),
        f,
        error,
    };
    ctx.finish(render(status, &page))
}

/// The birth registration form: `step=form` shows it pre-filled from the parent's record;
/// otherwise it registers the birth and shows the new ID number, or the form again with the
/// register's refusal in place (nothing changed).
pub(super) async fn birth(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (ctx, form, o) = match officer_post(&state, &headers, &body) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let purpose_code = get(&form, "purpose");
    let parent_id = get(&form, "parent");
    // The parent's record, read (and logged) for this purpose: pre-fills the form and names the
    // parent on the new record.
    let st = state.clone();
    let o2 = o.clone();
    let (pc, pid) = (purpose_code.clone(), parent_id.clone());
    let parent = match blocking(move || {
        let purpose = purpose_text(&pc)?;
        let id = parse_id(&pid)?;
        Ok(st.registry.person(&o2, &purpose, &id)?)
    })
    .await
    {
        Ok(p) => p,
        Err(m) => return error_page(&ctx, Side::Desk, StatusCode::UNPROCESSABLE_ENTITY, &m),
    };
    if get(&form, "step") == "form" {
        let f = BirthForm {
            parent: parent.id.to_string(),
            parent_name: parent.name.full(),
            purpose: purpose_code,
            family: parent.name.family.clone(),
            commune: match &o.jurisdiction {
                dancu_domain::officer::Jurisdiction::Commune(c) => c.clone(),
                _ => parent.home_commune().unwrap_or_default(),
            },
            household: parent
                .household
                .as_ref()
                .map(|m| m.household_id.clone())
                .unwrap_or_default(),
            relationship: match parent.household.as_ref().map(|m| m.relationship) {
                Some(dancu_domain::person::Relationship::Child) => "grandchild",
                _ => "child",
            }
            .to_owned(),
            ..BirthForm::default()
        };
        return birth_form_page(&ctx, f, None);
    }
    let f = BirthForm {
        parent: parent.id.to_string(),
        parent_name: parent.name.full(),
        purpose: purpose_code.clone(),
        family: get(&form, "family"),
        middle: get(&form, "middle"),
        given: get(&form, "given"),
        sex: get(&form, "sex"),
        date_of_birth: get(&form, "date_of_birth"),
        commune: get(&form, "commune"),
        household: get(&form, "household"),
        relationship: get(&form, "relationship"),
        reason: get(&form, "reason"),
        document_ref: get(&form, "document_ref"),
    };
    let relative = serde_json::json!({"id": parent.id, "name": parent.name.full()});
    let mut cmd = serde_json::json!({
        "name": {"family": f.family, "middle": f.middle, "given": f.given},
        "sex": f.sex,
        "date_of_birth": f.date_of_birth,
        "registration_commune": f.commune,
        "reason": (!f.reason.is_empty()).then(|| f.reason.clone()),
        "document_ref": (!f.document_ref.is_empty()).then(|| f.document_ref.clone()),
    });
    let parent_key = match parent.sex {
        dancu_domain::person::Sex::Male => "father",
        dancu_domain::person::Sex::Female => "mother",
    };
    cmd[parent_key] = relative;
    if !f.household.is_empty() {
        cmd["household"] =
            serde_json::json!({"household_id": f.household, "relationship": f.relationship});
        if let Some(r) = &parent.permanent_residence {
            cmd["permanent_residence"] = serde_json::to_value(&r.address).unwrap_or_default();
        }
    }
    let parsed: Result<dancu_registry::commands::RegisterBirth, _> = serde_json::from_value(cmd);
    let c = match parsed {
        Ok(c) => c,
        Err(e) => {
            let m = Msg::new(
                "birth_form_invalid",
                &format!(
                    "Thông tin chưa đúng hoặc còn thiếu (họ tên, giới tính, ngày sinh YYYY-MM-DD): {e}"
                ),
                &format!(
                    "Some details are missing or wrong (name, sex, date of birth YYYY-MM-DD): {e}"
                ),
            );
            return birth_form_page(&ctx, f, Some(m));
        }
    };
    let st = state.clone();
    let o2 = o.clone();
    let r = blocking(move || Ok(st.registry.run(&o2, None, Command::RegisterBirth(c))?)).await;
    match r {
        Ok(w) => {
            let v: serde_json::Value = serde_json::from_str(&w.body).unwrap_or_default();
            let page = pages::BornPage {
                c: ctx.chrome(Side::Desk, ("Đã đăng ký khai sinh", "Birth registered")),
                id: v["id"].as_str().unwrap_or_default().to_owned(),
                name: format!("{} {} {}", f.family, f.middle, f.given)
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" "),
                parent: parent.id.to_string(),
                purpose: purpose_code,
            };
            ctx.finish(render(StatusCode::CREATED, &page))
        }
        Err(m) => birth_form_page(&ctx, f, Some(m)),
    }
}
