//! The citizen portal: my record and household, my cards and residences, my e-ID account
//! (level, usage history, lock), my consents (list, withdraw). Linked documents, residence
//! history and the data tracker are in `mine.rs`; the account's security in `security.rs`.
//! The holder reads their own data: these reads are not officer reads and do not enter the
//! officers' access log.

use super::pages::{self, ConsentRow, Field, Lang, Line, PersonRow};
use super::{Ctx, Msg, Side, blocking, context, error_page, login_required, posted, query, render};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use dancu_domain::PersonalId;
use dancu_domain::person::{CardStatus, Person, Sex};

fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    // Shown in Vietnam time (UTC+7).
    (t + chrono::Duration::hours(7))
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

fn address(a: &dancu_domain::admin::Address) -> String {
    let commune = dancu_domain::admin::AdminUnits::get()
        .commune(a.scheme, &a.commune_code)
        .map(|c| c.name)
        .unwrap_or("?");
    if a.detail.is_empty() {
        format!("{commune} ({})", a.commune_code)
    } else {
        format!("{}, {commune} ({})", a.detail, a.commune_code)
    }
}

pub(super) fn sex(l: Lang, s: Sex) -> String {
    match s {
        Sex::Male => l.s("Nam", "Male"),
        Sex::Female => l.s("Nữ", "Female"),
    }
    .to_owned()
}

pub(super) fn relation(l: Lang, r: dancu_domain::person::Relationship) -> String {
    use dancu_domain::person::Relationship as R;
    match r {
        R::Head => l.s("Chủ hộ", "Head"),
        R::Spouse => l.s("Vợ/chồng", "Spouse"),
        R::Child => l.s("Con", "Child"),
        R::Parent => l.s("Cha/mẹ", "Parent"),
        R::Sibling => l.s("Anh chị em", "Sibling"),
        R::Grandchild => l.s("Cháu", "Grandchild"),
        R::Grandparent => l.s("Ông bà", "Grandparent"),
        R::OtherRelative => l.s("Họ hàng khác", "Other relative"),
        R::Unrelated => l.s("Không có quan hệ", "Unrelated"),
    }
    .to_owned()
}

/// The record as labelled fields, its residences and its cards.
pub(super) fn person_fields(l: Lang, p: &Person) -> (Vec<Field>, Vec<Field>, Vec<Field>) {
    let mut f = vec![
        Field {
            label: l.s("Số định danh cá nhân", "Personal ID number"),
            value: p.id.to_string(),
        },
        Field {
            label: l.s("Họ và tên", "Full name"),
            value: p.name.full(),
        },
        Field {
            label: l.s("Ngày sinh", "Date of birth"),
            value: p.date_of_birth.to_string(),
        },
        Field {
            label: l.s("Giới tính", "Sex"),
            value: sex(l, p.sex),
        },
        Field {
            label: l.s("Dân tộc", "Ethnicity"),
            value: p.ethnicity.clone(),
        },
        Field {
            label: l.s("Tôn giáo", "Religion"),
            value: p.religion.clone(),
        },
        Field {
            label: l.s("Quốc tịch", "Nationality"),
            value: p.nationality.clone(),
        },
        Field {
            label: l.s("Nơi đăng ký khai sinh", "Birth registered in"),
            value: address(&p.birth_registration),
        },
    ];
    for (label, r) in [
        (l.s("Cha", "Father"), &p.father),
        (l.s("Mẹ", "Mother"), &p.mother),
        (l.s("Vợ/chồng", "Spouse"), &p.spouse),
    ] {
        if let Some(r) = r {
            f.push(Field {
                label,
                value: match &r.id {
                    Some(id) => format!("{} ({id})", r.name),
                    None => r.name.clone(),
                },
            });
        }
    }
    if p.is_dead() {
        f.push(Field {
            label: l.s("Tình trạng", "Status"),
            value: l.s("Đã chết", "Deceased").to_owned(),
        });
    }
    let mut res = Vec::new();
    if let Some(r) = &p.permanent_residence {
        res.push(Field {
            label: l.s("Thường trú", "Permanent residence"),
            value: format!(
                "{} ({} {})",
                address(&r.address),
                l.s("từ", "since"),
                r.from
            ),
        });
    }
    if let Some(r) = &p.temporary_residence {
        res.push(Field {
            label: l.s("Tạm trú", "Temporary residence"),
            value: format!(
                "{} ({} {}{})",
                address(&r.address),
                l.s("từ", "since"),
                r.from,
                r.until.map(|u| format!(" – {u}")).unwrap_or_default()
            ),
        });
    }
    let cards = p
        .cards
        .iter()
        .map(|c| Field {
            label: match c.kind {
                dancu_domain::person::CardKind::Cmnd => "CMND",
                dancu_domain::person::CardKind::Cccd => "CCCD",
                dancu_domain::person::CardKind::CanCuoc => l.s("Thẻ căn cước", "Identity card"),
            },
            value: format!(
                "{} · {} {} · {}",
                c.number,
                l.s("cấp ngày", "issued"),
                c.issued_on,
                match c.status {
                    CardStatus::Valid => l.s("còn giá trị", "valid"),
                    _ => l.s("không còn giá trị", "no longer valid"),
                }
            ),
        })
        .collect();
    (f, res, cards)
}

pub(super) fn person_row(l: Lang, p: &Person, relation_text: String) -> PersonRow {
    PersonRow {
        id: p.id.to_string(),
        name: p.name.full(),
        born: p.date_of_birth.to_string(),
        sex: sex(l, p.sex),
        relation: relation_text,
        commune: p.home_commune().unwrap_or_default(),
    }
}

fn me(
    state: &AppState,
    headers: &HeaderMap,
    q: RawQuery,
) -> Result<(Ctx, PersonalId), Box<Response>> {
    let q = query(q.0);
    let ctx = context(state, headers, &q);
    match ctx.person {
        Some(p) if ctx.officer.is_none() => Ok((ctx, p)),
        _ => Err(Box::new(login_required(&ctx, Side::Citizen))),
    }
}

/// My record, household, residences and cards.
pub(super) async fn record(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: RawQuery,
) -> Response {
    let (ctx, id) = match me(&state, &headers, q) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let l = ctx.lang;
    let st = state.clone();
    let r = blocking(move || {
        let store = st.registry.store();
        let err = |e: dancu_store::StoreError| Msg::from(dancu_registry::RegistryError::from(e));
        let p = store.person(&id).map_err(err)?.ok_or_else(|| {
            Msg::new(
                "person_not_found",
                "Không tìm thấy hồ sơ",
                "No record found",
            )
        })?;
        let mut household = Vec::new();
        let mut hid = String::new();
        if let Some(m) = &p.household
            && let Some(h) = store.household(&m.household_id).map_err(err)?
        {
            hid = h.id.clone();
            let ids: Vec<PersonalId> = h.members.iter().map(|m| m.person).collect();
            let people = store.persons(&ids).map_err(err)?;
            for m in &h.members {
                if let Some(mp) = people.iter().find(|x| x.id == m.person) {
                    household.push(person_row(l, mp, relation(l, m.relationship)));
                }
            }
        }
        Ok((p, household, hid))
    })
    .await;
    match r {
        Ok((p, household, household_id)) => {
            let (fields, residences, cards) = person_fields(l, &p);
            let page = pages::RecordPage {
                c: ctx.chrome(Side::Citizen, ("Hồ sơ của tôi", "My record")),
                id: p.id.to_string(),
                fields,
                residences,
                cards,
                household,
                household_id,
            };
            ctx.finish(render(StatusCode::OK, &page))
        }
        Err(m) => error_page(&ctx, Side::Citizen, StatusCode::NOT_FOUND, &m),
    }
}

fn usage_line(l: Lang, e: &dancu_eid::history::UsageEntry) -> Line {
    use dancu_eid::history::UsageKind as K;
    let (what, who, why) = match &e.kind {
        K::Authentication {
            client_id, success, ..
        } => (
            if *success {
                l.s("Đăng nhập", "Login")
            } else {
                l.s("Đăng nhập không thành công", "Failed login")
            }
            .to_owned(),
            client_id.clone().unwrap_or_default(),
            String::new(),
        ),
        K::Consent {
            client_id,
            claims,
            given,
        } => (
            if *given {
                l.s("Đồng ý chia sẻ", "Consent given")
            } else {
                l.s("Rút lại đồng ý", "Consent withdrawn")
            }
            .to_owned(),
            client_id.clone(),
            claims.join(", "),
        ),
        K::Lock { set, .. } => (
            if *set {
                l.s("Khóa tài khoản", "Account locked")
            } else {
                l.s("Mở khóa tài khoản", "Account unlocked")
            }
            .to_owned(),
            String::new(),
            String::new(),
        ),
        K::Authenticator { method, change } => (
            super::security::usage_what(l, *method, *change),
            String::new(),
            String::new(),
        ),
        other => (
            serde_json::to_value(other)
                .ok()
                .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_owned))
                .unwrap_or_else(|| l.s("Khác", "Other").to_owned()),
            String::new(),
            String::new(),
        ),
    };
    Line {
        at: when(e.at),
        what,
        who,
        why,
    }
}

async fn account_page(state: AppState, ctx: Ctx, id: PersonalId, notice: Option<Msg>) -> Response {
    let l = ctx.lang;
    let Some(idp) = state.idp.clone() else {
        return error_page(
            &ctx,
            Side::Citizen,
            StatusCode::NOT_FOUND,
            &super::internal(),
        );
    };
    let r = blocking(move || {
        let account = idp.account(&id)?;
        let usage = idp.usage_history(&id, 100)?;
        Ok((account, usage))
    })
    .await;
    match r {
        Ok((account, usage)) => {
            let page = pages::AccountPage {
                c: ctx.chrome(Side::Citizen, ("Tài khoản của tôi", "My account")),
                has_account: account.is_some(),
                level: match account.as_ref().map(|a| a.level) {
                    Some(dancu_eid::account::Level::Two) => l.s("Mức 2", "Level 2").to_owned(),
                    Some(_) => l.s("Mức 1", "Level 1").to_owned(),
                    None => String::new(),
                },
                locked: account.as_ref().is_some_and(|a| !a.locks.is_empty()),
                usage: usage.iter().map(|e| usage_line(l, e)).collect(),
                notice,
            };
            ctx.finish(render(StatusCode::OK, &page))
        }
        Err(m) => error_page(&ctx, Side::Citizen, StatusCode::INTERNAL_SERVER_ERROR, &m),
    }
}

/// My e-ID account: level, locks, usage history.
pub(super) async fn account(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: RawQuery,
) -> Response {
    match me(&state, &headers, q) {
        Ok((ctx, id)) => account_page(state, ctx, id, None).await,
        Err(r) => *r,
    }
}

/// Locks my account (for instance after losing my phone).
pub(super) async fn lock(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (ctx, _) = match posted(&state, &headers, &body) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let Some(id) = ctx.person.filter(|_| ctx.officer.is_none()) else {
        return login_required(&ctx, Side::Citizen);
    };
    let Some(idp) = state.idp.clone() else {
        return error_page(
            &ctx,
            Side::Citizen,
            StatusCode::NOT_FOUND,
            &super::internal(),
        );
    };
    let r = blocking(move || {
        idp.change_lock(
            &id,
            dancu_eid::account::Actor::Holder,
            dancu_eid::account::LockReason::HolderRequest,
            None,
            true,
        )
        .map_err(Msg::from)
    })
    .await;
    let notice = match r {
        Ok(_) => Msg::new(
            "locked",
            "Tài khoản đã được khóa. Để mở khóa, hãy đến cơ quan công an gần nhất.",
            "Your account is locked. To unlock it, visit the nearest police office.",
        ),
        Err(m) => m,
    };
    account_page(state, ctx, id, Some(notice)).await
}

async fn consents_page(state: AppState, ctx: Ctx, id: PersonalId, notice: Option<Msg>) -> Response {
    let l = ctx.lang;
    let st = state.clone();
    let r = blocking(move || {
        let mut rows = Vec::new();
        if let Some(idp) = &st.idp {
            for c in idp.consents(&id)? {
                let name = idp
                    .client(&c.client_id)?
                    .map(|x| x.name)
                    .unwrap_or_else(|| c.client_id.clone());
                rows.push(ConsentRow {
                    kind: "oidc",
                    id: c.client_id.clone(),
                    to: name,
                    what: c.claims.iter().cloned().collect::<Vec<_>>().join(", "),
                    since: when(c.granted_at),
                    revoked: c.revoked_at.map(when).unwrap_or_default(),
                });
            }
        }
        if let Some(hub) = &st.hub {
            for c in hub.consents(&id.to_string())? {
                rows.push(ConsentRow {
                    kind: "hub",
                    id: c.id.clone(),
                    to: c.recipient_org.clone(),
                    what: format!(
                        "{} — {}",
                        c.fields.iter().cloned().collect::<Vec<_>>().join(", "),
                        c.purpose
                    ),
                    since: when(c.granted_at),
                    revoked: c.revoked_at.map(when).unwrap_or_default(),
                });
            }
        }
        Ok(rows)
    })
    .await;
    match r {
        Ok(consents) => {
            let _ = l;
            let page = pages::ConsentsPage {
                c: ctx.chrome(Side::Citizen, ("Sự đồng ý của tôi", "My consents")),
                consents,
                notice,
            };
            ctx.finish(render(StatusCode::OK, &page))
        }
        Err(m) => error_page(&ctx, Side::Citizen, StatusCode::INTERNAL_SERVER_ERROR, &m),
    }
}

/// My consents: to applications that log in with my e-ID, and to agencies through the hub.
pub(super) async fn consents(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: RawQuery,
) -> Response {
    match me(&state, &headers, q) {
        Ok((ctx, id)) => consents_page(state, ctx, id, None).await,
        Err(r) => *r,
    }
}

/// Withdraws one of my consents.
pub(super) async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (ctx, form) = match posted(&state, &headers, &body) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let Some(id) = ctx.person.filter(|_| ctx.officer.is_none()) else {
        return login_required(&ctx, Side::Citizen);
    };
    let kind = form.get("kind").cloned().unwrap_or_default();
    let target = form.get("id").cloned().unwrap_or_default();
    let st = state.clone();
    let r = blocking(move || match (kind.as_str(), &st.idp, &st.hub) {
        ("oidc", Some(idp), _) => Ok(idp.revoke_consent(&id, &target)?),
        ("hub", _, Some(hub)) => {
            hub.revoke_consent(&id.to_string(), &target)?;
            Ok(true)
        }
        _ => Ok(false),
    })
    .await;
    let notice = match r {
        Ok(true) => Msg::new(
            "consent_revoked",
            "Đã rút lại sự đồng ý.",
            "Consent withdrawn.",
        ),
        Ok(false) => Msg::new(
            "consent_not_found",
            "Không tìm thấy sự đồng ý này.",
            "No such consent.",
        ),
        Err(m) => m,
    };
    consents_page(state, ctx, id, Some(notice)).await
}
