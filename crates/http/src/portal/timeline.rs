//! What the person page shows beyond the current record: every recorded event said in words
//! (who changed what, when and why), the residence history (permanent, temporary, absences,
//! stays) read from those events, the e-ID account's state, and the sectoral records the hub
//! links to the person.

use super::Msg;
use super::pages::{Lang, Line};
use crate::AppState;
use dancu_domain::admin::{Address, AdminUnits};
use dancu_domain::event::PersonChange;
use dancu_domain::officer::Officer;
use dancu_domain::person::Person;
use dancu_store::RecordedEvent;

/// One event of a person's history.
#[derive(Debug, Clone)]
pub struct Event {
    pub at: String,
    /// The event's stable name, e.g. `temporary_residence_registered`.
    pub kind: String,
    /// What changed, in words.
    pub what: String,
    pub who: String,
    pub why: String,
}

fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    (t + chrono::Duration::hours(7))
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

pub(super) fn place(a: &Address) -> String {
    let commune = AdminUnits::get()
        .commune(a.scheme, &a.commune_code)
        .map(|c| c.name)
        .unwrap_or("?");
    if a.detail.is_empty() {
        format!("{commune} ({})", a.commune_code)
    } else {
        format!("{}, {commune} ({})", a.detail, a.commune_code)
    }
}

fn change(e: &RecordedEvent) -> Option<PersonChange> {
    serde_json::from_value(e.change.clone()).ok()
}

/// An event said in words.
fn describe(l: Lang, c: &PersonChange) -> String {
    use PersonChange as C;
    match c {
        C::BirthRegistered { record } => format!(
            "{} {} ({})",
            l.s("Khai sinh", "Birth registered:"),
            record.name.full(),
            record.date_of_birth
        ),
        C::RecordImported { record } => format!(
            "{} {}",
            l.s(
                "Nhập từ cơ sở dữ liệu cũ:",
                "Imported from the earlier register:"
            ),
            record.name.full()
        ),
        C::PermanentResidenceRegistered { residence: r } => format!(
            "{} {} {} {}",
            l.s("Thường trú tại", "Permanent residence at"),
            place(&r.address),
            l.s("từ", "from"),
            r.from
        ),
        C::PermanentResidenceRemoved { on } => format!(
            "{} {on}",
            l.s(
                "Xóa đăng ký thường trú ngày",
                "Permanent residence removed on"
            )
        ),
        C::TemporaryResidenceRegistered { residence: r } => format!(
            "{} {} {} – {}",
            l.s("Tạm trú tại", "Temporary residence at"),
            place(&r.address),
            r.from,
            r.until.map(|u| u.to_string()).unwrap_or_default()
        ),
        C::TemporaryAbsenceDeclared { absence: a } => format!(
            "{} {} – {}, {} {} ({})",
            l.s("Tạm vắng", "Temporary absence"),
            a.from,
            a.until,
            l.s("đến", "to"),
            a.destination,
            a.reason
        ),
        C::StayNotified { stay: s } => format!(
            "{} {} {} – {} ({})",
            l.s("Lưu trú tại", "Stay at"),
            place(&s.address),
            s.from,
            s.until,
            s.host
        ),
        C::MarriageRegistered { spouse, on } => format!(
            "{} {} {} {on}",
            l.s("Kết hôn với", "Married"),
            spouse.name,
            l.s("ngày", "on")
        ),
        C::DivorceRegistered { on } => format!("{} {on}", l.s("Ly hôn ngày", "Divorced on")),
        C::SpouseDied { on } => format!("{} {on}", l.s("Vợ/chồng qua đời ngày", "Spouse died on")),
        C::DeathRegistered { date_of_death } => format!(
            "{} {date_of_death}",
            l.s("Khai tử, ngày mất", "Death registered, died on")
        ),
        C::FieldCorrected { field, old, new } => format!(
            "{} {}: {} → {}",
            l.s("Điều chỉnh", "Corrected"),
            super::forms::field_label(l, *field),
            shown(old),
            shown(new)
        ),
        C::LegacyCmndLinked { cmnd } => format!(
            "{} {}",
            l.s("Liên kết CMND", "CMND linked:"),
            cmnd.number.as_str()
        ),
        C::CardIssued { card } => format!(
            "{} {} ({})",
            l.s("Cấp thẻ", "Card issued:"),
            card.number,
            card.issued_on
        ),
        C::HouseholdJoined { membership: m } => format!(
            "{} {} ({})",
            l.s("Vào hộ", "Joined household"),
            m.household_id,
            super::citizen::relation(l, m.relationship)
        ),
        C::HouseholdLeft { household_id } => {
            format!("{} {household_id}", l.s("Rời hộ", "Left household"))
        }
    }
}

/// A stored JSON value as a short text.
fn shown(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "—".to_owned(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Object(o) if o.contains_key("given") => ["family", "middle", "given"]
            .iter()
            .filter_map(|k| o.get(*k).and_then(|x| x.as_str()))
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" "),
        serde_json::Value::Object(o) if o.contains_key("name") => {
            let name = o.get("name").and_then(|x| x.as_str()).unwrap_or_default();
            match o.get("id").and_then(|x| x.as_str()) {
                Some(id) => format!("{name} ({id})"),
                None => name.to_owned(),
            }
        }
        other => other.to_string(),
    }
}

/// A recorded event as a line of the history table.
pub(super) fn event_line(l: Lang, e: &RecordedEvent) -> Event {
    let why = [
        e.meta.reason.clone(),
        e.meta.legal_basis.clone(),
        e.meta.document_ref.clone(),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" · ");
    Event {
        at: when(e.meta.at),
        kind: e.kind.clone(),
        what: change(e).map(|c| describe(l, &c)).unwrap_or_default(),
        who: e.meta.actor.clone(),
        why,
    }
}

/// The residence history, newest first: permanent and temporary residences, absences and
/// stays, from the events that recorded them, and those a record was imported with.
pub(super) fn residence_history(l: Lang, history: &[RecordedEvent]) -> Vec<Event> {
    use PersonChange as C;
    let mut out = Vec::new();
    for e in history.iter().rev() {
        let Some(c) = change(e) else { continue };
        match &c {
            C::PermanentResidenceRegistered { .. }
            | C::PermanentResidenceRemoved { .. }
            | C::TemporaryResidenceRegistered { .. }
            | C::TemporaryAbsenceDeclared { .. }
            | C::StayNotified { .. } => out.push(event_line(l, e)),
            C::RecordImported { record } | C::BirthRegistered { record } => {
                // What the record came with, said as the events that would have recorded it.
                let carried = [
                    record
                        .temporary_absence
                        .clone()
                        .map(|absence| C::TemporaryAbsenceDeclared { absence }),
                    record
                        .temporary_residence
                        .clone()
                        .map(|residence| C::TemporaryResidenceRegistered { residence }),
                    record
                        .permanent_residence
                        .clone()
                        .map(|residence| C::PermanentResidenceRegistered { residence }),
                ];
                for c in carried.into_iter().flatten() {
                    let mut line = event_line(l, e);
                    line.kind = e.kind.clone();
                    line.what = describe(l, &c);
                    out.push(line);
                }
            }
            _ => {}
        }
    }
    out
}

/// The e-ID account and the linked sectoral records of a person.
#[derive(Debug, Default)]
pub(super) struct Extras {
    pub eid: String,
    pub linked: Vec<Line>,
}

/// Reads the e-ID account's level and locks, and the hub's linked records (the person's read
/// was logged by the caller for the officer's purpose).
pub(super) fn extras(
    st: &AppState,
    _o: &Officer,
    _purpose: &str,
    p: &Person,
    l: Lang,
) -> Result<Extras, Msg> {
    let mut x = Extras::default();
    if let Some(idp) = &st.idp {
        x.eid = match idp.account(&p.id)? {
            None => l
                .s("Chưa có tài khoản định danh điện tử", "No e-ID account")
                .to_owned(),
            Some(a) => {
                let level = match a.level {
                    dancu_eid::account::Level::Two => l.s("Mức 2", "Level 2"),
                    dancu_eid::account::Level::One => l.s("Mức 1", "Level 1"),
                };
                if a.locks.is_empty() {
                    format!("{level} · {}", l.s("đang hoạt động", "active"))
                } else {
                    let why = a
                        .locks
                        .iter()
                        .map(|k| {
                            serde_json::to_value(k.reason)
                                .ok()
                                .and_then(|v| v.as_str().map(str::to_owned))
                                .unwrap_or_default()
                        })
                        .collect::<Vec<_>>()
                        .join(", ");
                    format!("{level} · {} ({why})", l.s("đang bị khóa", "locked"))
                }
            }
        };
    }
    if let Some(hub) = &st.hub {
        x.linked = hub
            .linked_records(&p.id.to_string())?
            .into_iter()
            .map(|r| Line {
                at: when(r.current.submitted_at),
                what: format!("{}: {}", r.kind, r.current.value),
                who: format!("{} / {}", r.source_org, r.source_subsystem),
                why: r.current.source_ref,
            })
            .collect();
    }
    Ok(x)
}
