//! The officer desk's forms for the register's commands besides birth (permanent and temporary
//! residence, temporary absence, stay notification, marriage, divorce, death, correction,
//! household changes) and for the e-ID account (level 2 after an in-person check, lock, unlock).
//!
//! Every form opens from the person page, pre-filled from the register (the person, their
//! version, their household, their current address as a starting point), and runs the same
//! `Command` as the JSON API (the form becomes the API's JSON body and is deserialised into the
//! command type) or the same `Idp` use-case. Fields are checked with the domain's rules as the
//! officer types (`/portal/desk/check`, an htmx fragment) and again on submission; a refusal of
//! the register is shown next to the field it concerns. The form carries the version of the
//! record the officer saw: if someone else changed the record meanwhile the register refuses
//! the stale version and the form comes back with the record as it now stands, never
//! overwriting it. Each submission carries an idempotency key, so a double click acts once.

use super::citizen::{person_fields, relation};
use super::desk::{get, officer_post, parse_id, person_page, purpose_text};
use super::pages::{Chrome, Field, Lang};
use super::{Ctx, Msg, Side, blocking, error_page, posted, render};
use crate::AppState;
use askama::Template;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::NaiveDate;
use dancu_domain::admin::{Address, AddressError, MAX_DETAIL_CHARS, Scheme};
use dancu_domain::event::{CorrectableField, Household, RuleError};
use dancu_domain::officer::{Jurisdiction, Officer};
use dancu_domain::person::{Person, Relationship};
use dancu_domain::{PartialDate, PersonName, PersonalId, Problem};
use dancu_registry::{Command, Idempotency};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Permanent,
    Temporary,
    Absence,
    Stay,
    Marriage,
    Divorce,
    Death,
    Correction,
    HouseholdCreate,
    HouseholdAdd,
    HouseholdHead,
    HouseholdSplit,
    Level2,
    Lock,
    Unlock,
}

impl Kind {
    const ALL: [Kind; 15] = [
        Kind::Permanent,
        Kind::Temporary,
        Kind::Absence,
        Kind::Stay,
        Kind::Marriage,
        Kind::Divorce,
        Kind::Death,
        Kind::Correction,
        Kind::HouseholdCreate,
        Kind::HouseholdAdd,
        Kind::HouseholdHead,
        Kind::HouseholdSplit,
        Kind::Level2,
        Kind::Lock,
        Kind::Unlock,
    ];

    pub(super) fn code(self) -> &'static str {
        match self {
            Kind::Permanent => "permanent",
            Kind::Temporary => "temporary",
            Kind::Absence => "absence",
            Kind::Stay => "stay",
            Kind::Marriage => "marriage",
            Kind::Divorce => "divorce",
            Kind::Death => "death",
            Kind::Correction => "correction",
            Kind::HouseholdCreate => "household-create",
            Kind::HouseholdAdd => "household-add",
            Kind::HouseholdHead => "household-head",
            Kind::HouseholdSplit => "household-split",
            Kind::Level2 => "eid-level2",
            Kind::Lock => "eid-lock",
            Kind::Unlock => "eid-unlock",
        }
    }

    pub(super) fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.code() == s)
    }

    fn title(self) -> (&'static str, &'static str) {
        match self {
            Kind::Permanent => ("Đăng ký thường trú", "Permanent residence"),
            Kind::Temporary => ("Đăng ký tạm trú", "Temporary residence"),
            Kind::Absence => ("Khai báo tạm vắng", "Temporary absence"),
            Kind::Stay => ("Thông báo lưu trú", "Stay notification"),
            Kind::Marriage => ("Đăng ký kết hôn", "Marriage"),
            Kind::Divorce => ("Ghi chú ly hôn", "Divorce"),
            Kind::Death => ("Đăng ký khai tử", "Death"),
            Kind::Correction => ("Điều chỉnh thông tin", "Correct a field"),
            Kind::HouseholdCreate => ("Lập hộ mới", "New household"),
            Kind::HouseholdAdd => ("Nhập hộ, thêm thành viên", "Join or add to a household"),
            Kind::HouseholdHead => ("Làm chủ hộ", "Make head of household"),
            Kind::HouseholdSplit => ("Tách hộ", "Split household"),
            Kind::Level2 => (
                "Nâng tài khoản định danh lên mức 2",
                "Raise the e-ID account to level 2",
            ),
            Kind::Lock => ("Khóa tài khoản định danh", "Lock the e-ID account"),
            Kind::Unlock => ("Mở khóa tài khoản định danh", "Unlock the e-ID account"),
        }
    }

    fn done(self) -> (&'static str, &'static str) {
        match self {
            Kind::Level2 => (
                "Đã nâng tài khoản định danh điện tử lên mức 2.",
                "The e-ID account is now at level 2.",
            ),
            Kind::Lock => (
                "Đã khóa tài khoản định danh điện tử.",
                "The e-ID account is locked.",
            ),
            Kind::Unlock => (
                "Đã mở khóa tài khoản định danh điện tử.",
                "The e-ID account is unlocked.",
            ),
            _ => (
                "Đã ghi nhận vào Cơ sở dữ liệu quốc gia về dân cư.",
                "Recorded in the national population database.",
            ),
        }
    }

    /// Whether the person page offers the form for this person.
    fn offered(self, p: &Person) -> bool {
        let alive = !p.is_dead();
        let married = p.marital_status == dancu_domain::person::MaritalStatus::Married;
        let member = p.household.as_ref();
        let head = member.is_some_and(|m| m.relationship == Relationship::Head);
        match self {
            Kind::Permanent | Kind::Temporary | Kind::Absence | Kind::Stay | Kind::Death => alive,
            Kind::Marriage => alive && !married,
            Kind::Divorce => alive && married,
            Kind::Correction | Kind::Level2 | Kind::Lock | Kind::Unlock => true,
            Kind::HouseholdCreate => alive && member.is_none(),
            Kind::HouseholdAdd => alive,
            Kind::HouseholdHead | Kind::HouseholdSplit => alive && member.is_some() && !head,
        }
    }

    /// Whether the form needs the household read (and logged).
    fn needs_household(self) -> bool {
        matches!(
            self,
            Kind::HouseholdAdd | Kind::HouseholdHead | Kind::HouseholdSplit
        )
    }
}

/// The forms the person page offers, as (kind, label).
pub(super) fn actions(l: Lang, p: &Person) -> Vec<(&'static str, &'static str)> {
    Kind::ALL
        .into_iter()
        .filter(|k| k.offered(p))
        .map(|k| (k.code(), l.s(k.title().0, k.title().1)))
        .collect()
}

/// The fields a correction may change, with their labels.
const CORRECTABLE: [CorrectableField; 10] = [
    CorrectableField::Name,
    CorrectableField::OtherNames,
    CorrectableField::DateOfBirth,
    CorrectableField::Ethnicity,
    CorrectableField::Religion,
    CorrectableField::Nationality,
    CorrectableField::BloodType,
    CorrectableField::HomeTown,
    CorrectableField::Father,
    CorrectableField::Mother,
];

pub(super) fn field_label(l: Lang, f: CorrectableField) -> &'static str {
    use CorrectableField as F;
    match f {
        F::Name => l.s("Họ và tên", "Full name"),
        F::OtherNames => l.s("Tên gọi khác", "Other names"),
        F::DateOfBirth => l.s("Ngày sinh", "Date of birth"),
        F::Ethnicity => l.s("Dân tộc", "Ethnicity"),
        F::Religion => l.s("Tôn giáo", "Religion"),
        F::Nationality => l.s("Quốc tịch", "Nationality"),
        F::BloodType => l.s("Nhóm máu", "Blood type"),
        F::HomeTown => l.s("Quê quán", "Home town"),
        F::Father => l.s("Cha", "Father"),
        F::Mother => l.s("Mẹ", "Mother"),
    }
}

/// A field's stable name (as in the JSON API).
pub(super) fn field_code(f: CorrectableField) -> String {
    serde_json::to_value(f)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

pub(super) fn parse_field(s: &str) -> Option<CorrectableField> {
    serde_json::from_value(Value::String(s.to_owned())).ok()
}

/// The options of the correctable-field select.
pub(super) fn field_options(l: Lang) -> Vec<(String, String)> {
    CORRECTABLE
        .iter()
        .map(|f| (field_code(*f), field_label(l, *f).to_owned()))
        .collect()
}

/// The current value of a field, written as the correction form takes it.
pub(super) fn field_text(p: &Person, f: CorrectableField) -> String {
    use CorrectableField as F;
    let relative = |r: &Option<dancu_domain::person::Relative>| match r {
        Some(r) => match r.id {
            Some(id) => format!("{id} {}", r.name),
            None => r.name.clone(),
        },
        None => String::new(),
    };
    match f {
        F::Name => p.name.full(),
        F::OtherNames => p.other_names.join(", "),
        F::DateOfBirth => p.date_of_birth.to_string(),
        F::Ethnicity => p.ethnicity.clone(),
        F::Religion => p.religion.clone(),
        F::Nationality => p.nationality.clone(),
        F::BloodType => p
            .blood_type
            .and_then(|b| serde_json::to_value(b).ok())
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        F::HomeTown => p
            .home_town
            .as_ref()
            .map(|a| {
                if a.detail.is_empty() {
                    a.commune_code.clone()
                } else {
                    format!("{}, {}", a.commune_code, a.detail)
                }
            })
            .unwrap_or_default(),
        F::Father => relative(&p.father),
        F::Mother => relative(&p.mother),
    }
}

/// A relative written as `[12-digit ID] Name`.
fn parse_relative(text: &str) -> Result<Value, Msg> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(Value::Null);
    }
    let (id, name) = match t.split_once(' ') {
        Some((first, rest)) if first.bytes().all(|b| b.is_ascii_digit()) => (
            Some(PersonalId::parse(first).map_err(|e| msg(&e))?),
            rest.trim(),
        ),
        _ if t.bytes().all(|b| b.is_ascii_digit()) => {
            (Some(PersonalId::parse(t).map_err(|e| msg(&e))?), "")
        }
        _ => (None, t),
    };
    let name = PersonName::parse(name).map_err(|e| msg(&e))?.full();
    Ok(match id {
        Some(id) => json!({"id": id, "name": name}),
        None => json!({"name": name}),
    })
}

/// A home town written as `commune code[, detail]`.
fn parse_home_town(text: &str, today: NaiveDate) -> Result<Value, Msg> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(Value::Null);
    }
    let (code, detail) = t.split_once(',').unwrap_or((t, ""));
    let a = Address::new(Scheme::Y2025, code.trim(), detail.trim(), today).map_err(|e| msg(&e))?;
    serde_json::to_value(&a).map_err(|_| super::internal())
}

/// The correction's new value in the field's JSON form, checked with the domain's rules.
pub(super) fn field_value(
    f: CorrectableField,
    text: &str,
    id: Option<PersonalId>,
    today: NaiveDate,
) -> Result<Value, Msg> {
    use CorrectableField as F;
    let t = text.trim();
    let text_1_100 = |t: &str| {
        if t.is_empty() || t.chars().count() > 100 {
            Err(Msg::new(
                "correction_bad_value",
                "Giá trị phải có 1–100 ký tự",
                "The value must have 1 to 100 characters",
            ))
        } else {
            Ok(Value::String(t.to_owned()))
        }
    };
    match f {
        F::Name => Ok(Value::String(
            PersonName::parse(t).map_err(|e| msg(&e))?.full(),
        )),
        F::OtherNames => {
            let mut names = Vec::new();
            for n in t.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                names.push(Value::String(
                    PersonName::parse(n).map_err(|e| msg(&e))?.full(),
                ));
            }
            Ok(Value::Array(names))
        }
        F::DateOfBirth => {
            let d = PartialDate::parse(t).map_err(|e| msg(&e))?;
            d.check_range(today).map_err(|e| msg(&e))?;
            if let Some(id) = id {
                id.check_against(&d, id.sex()).map_err(|e| msg(&e))?;
            }
            Ok(Value::String(d.to_string()))
        }
        F::Ethnicity | F::Religion => text_1_100(t),
        F::Nationality => {
            if t.len() == 2 && t.bytes().all(|b| b.is_ascii_uppercase()) {
                Ok(Value::String(t.to_owned()))
            } else {
                Err(Msg::new(
                    "correction_bad_value",
                    "Quốc tịch ghi bằng mã ISO 3166 hai chữ cái in hoa, ví dụ VN",
                    "Nationality is a two-letter ISO 3166 code in capitals, e.g. VN",
                ))
            }
        }
        F::BloodType => {
            if t.is_empty() {
                return Ok(Value::Null);
            }
            serde_json::from_value::<dancu_domain::person::BloodType>(Value::String(t.to_owned()))
                .map(|_| Value::String(t.to_owned()))
                .map_err(|_| {
                    Msg::new(
                        "correction_bad_value",
                        "Nhóm máu là một trong O+, O-, A+, A-, B+, B-, AB+, AB-",
                        "A blood type is one of O+, O-, A+, A-, B+, B-, AB+, AB-",
                    )
                })
        }
        F::HomeTown => parse_home_town(t, today),
        F::Father | F::Mother => parse_relative(t),
    }
}

/// A domain rule's refusal as a message.
fn msg(p: &dyn Problem) -> Msg {
    Msg::new(p.code(), &p.message_vi(), &p.message_en())
}

fn required() -> Msg {
    Msg::new(
        "field_required",
        "Trường này là bắt buộc",
        "This field is required",
    )
}

fn text_length(max: usize) -> Msg {
    Msg::new(
        "text_length",
        &format!("Tối đa {max} ký tự"),
        &format!("At most {max} characters"),
    )
}

/// A full date (`YYYY-MM-DD`).
fn full_date(v: &str) -> Result<NaiveDate, Msg> {
    match PartialDate::parse(v).map_err(|e| msg(&e))? {
        PartialDate::Full(d) => Ok(d),
        _ => Err(Msg::new(
            "date_full_required",
            "Cần ngày đầy đủ theo dạng YYYY-MM-DD",
            "A full date is needed, as YYYY-MM-DD",
        )),
    }
}

fn relationship(v: &str) -> Option<Relationship> {
    serde_json::from_value(Value::String(v.to_owned())).ok()
}

/// One form field.
#[derive(Debug, Clone)]
pub struct Input {
    pub name: String,
    pub label: String,
    /// `text`, `date`, `select` or `checkbox`.
    pub kind: &'static str,
    pub value: String,
    pub options: Vec<(String, String)>,
    pub required: bool,
    pub hint: String,
    pub error: Option<Msg>,
}

impl Input {
    fn new(name: &str, label: &str, kind: &'static str, value: String) -> Self {
        Self {
            name: name.to_owned(),
            label: label.to_owned(),
            kind,
            value,
            options: Vec::new(),
            required: false,
            hint: String::new(),
            error: None,
        }
    }
    fn req(mut self) -> Self {
        self.required = true;
        self
    }
    fn opts(mut self, o: Vec<(String, String)>) -> Self {
        self.kind = "select";
        self.options = o;
        self
    }
    fn hint(mut self, h: &str) -> Self {
        self.hint = h.to_owned();
        self
    }
}

#[derive(Template)]
#[template(path = "portal/form.html")]
pub struct FormPage {
    pub c: Chrome,
    pub kind: &'static str,
    pub id: String,
    pub name: String,
    pub purpose: String,
    pub version: u64,
    pub hversion: String,
    pub idem: String,
    pub request: String,
    pub intro: String,
    pub inputs: Vec<Input>,
    pub error: Option<Msg>,
    /// The record as it now stands, after a stale-version refusal.
    pub current: Vec<Field>,
}

#[derive(Template)]
#[template(
    source = r#"{% if let Some(e) = error %}<p class="err" data-code="{{ e.code }}">{{ lang.m(e) }}</p>{% endif %}"#,
    ext = "html"
)]
struct CheckFragment {
    lang: Lang,
    error: Option<Msg>,
}

fn relationship_options(l: Lang, with_stay: bool) -> Vec<(String, String)> {
    use Relationship as R;
    let mut o = Vec::new();
    if with_stay {
        o.push((String::new(), l.s("Ở lại hộ cũ", "Stays").to_owned()));
    }
    for r in [
        R::Spouse,
        R::Child,
        R::Parent,
        R::Sibling,
        R::Grandchild,
        R::Grandparent,
        R::OtherRelative,
        R::Unrelated,
    ] {
        let code = serde_json::to_value(r)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        o.push((code, relation(l, r)));
    }
    o
}

fn rel_code(r: Relationship) -> String {
    serde_json::to_value(r)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// A first guess of a member's relationship to a new head, from both relationships to the old
/// head; the officer reviews it.
fn guess(new_head: Relationship, member: Relationship) -> Relationship {
    use Relationship as R;
    match (new_head, member) {
        (R::Child, R::Head | R::Spouse) => R::Parent,
        (R::Child, R::Child) => R::Sibling,
        (R::Child, R::Parent) => R::Grandparent,
        (R::Spouse, R::Head) => R::Spouse,
        (R::Spouse, R::Child) => R::Child,
        (R::Spouse, R::Grandchild) => R::Grandchild,
        (R::Sibling, R::Head | R::Sibling) => R::Sibling,
        (R::Parent, R::Head) => R::Child,
        _ => R::OtherRelative,
    }
}

/// What the register knows, read for the form (every read logged with the purpose).
pub(super) struct Loaded {
    pub person: Person,
    pub household: Option<Household>,
    pub members: Vec<Person>,
}

fn load(
    st: &AppState,
    o: &Officer,
    purpose: &str,
    id: &PersonalId,
    kind: Kind,
) -> Result<Loaded, Msg> {
    let person = st.registry.person(o, purpose, id)?;
    let (household, members) = match (&person.household, kind.needs_household()) {
        (Some(m), true) => {
            let (h, people) = st.registry.household(o, purpose, &m.household_id)?;
            (Some(h), people)
        }
        _ => (None, Vec::new()),
    };
    Ok(Loaded {
        person,
        household,
        members,
    })
}

fn basis_inputs(l: Lang, kind: Kind) -> Vec<Input> {
    let mut v = vec![Input::new(
        "reason",
        l.s("Lý do", "Reason"),
        "text",
        String::new(),
    )];
    if kind == Kind::Correction {
        v[0].required = true;
        v.push(
            Input::new(
                "legal_basis",
                l.s("Căn cứ pháp lý", "Legal basis"),
                "text",
                String::new(),
            )
            .req(),
        );
    }
    v.push(Input::new(
        "document_ref",
        match kind {
            Kind::Divorce => l.s(
                "Số bản án/quyết định của tòa án",
                "Court judgment or decision number",
            ),
            Kind::Death => l.s("Số giấy báo tử", "Death notice number"),
            _ => l.s("Số hồ sơ, giấy tờ", "File or document number"),
        },
        "text",
        String::new(),
    ));
    v
}

fn address_inputs(l: Lang, commune: String, detail: String, from: String) -> Vec<Input> {
    vec![
        Input::new(
            "commune",
            l.s("Mã xã/phường", "Commune code"),
            "text",
            commune,
        )
        .req()
        .hint(l.s("5 chữ số, danh mục từ 01/07/2025", "5 digits, 2025 scheme")),
        Input::new(
            "detail",
            l.s(
                "Số nhà, đường, thôn/tổ dân phố",
                "House, street, hamlet or group",
            ),
            "text",
            detail,
        ),
        Input::new("from", l.s("Từ ngày", "From"), "date", from).req(),
    ]
}

/// The form's fields, pre-filled from the register.
fn inputs(l: Lang, kind: Kind, o: &Officer, x: &Loaded, today: NaiveDate) -> Vec<Input> {
    let p = &x.person;
    let t = today.to_string();
    let here = match &o.jurisdiction {
        Jurisdiction::Commune(c) => c.clone(),
        _ => p.home_commune().unwrap_or_default(),
    };
    let permanent = p.permanent_residence.as_ref();
    let detail_at = |commune: &str| {
        permanent
            .filter(|r| r.address.commune_code == commune)
            .map(|r| r.address.detail.clone())
            .unwrap_or_default()
    };
    let mut v = match kind {
        Kind::Permanent => address_inputs(l, here.clone(), detail_at(&here), t),
        Kind::Temporary => {
            let mut v = address_inputs(
                l,
                here.clone(),
                p.temporary_residence
                    .as_ref()
                    .map(|r| r.address.detail.clone())
                    .unwrap_or_default(),
                t,
            );
            v.push(Input::new("until", l.s("Đến ngày", "Until"), "date", String::new()).req());
            v
        }
        Kind::Absence => vec![
            Input::new("from", l.s("Từ ngày", "From"), "date", t.clone()).req(),
            Input::new("until", l.s("Đến ngày", "Until"), "date", String::new()).req(),
            Input::new(
                "destination",
                l.s("Nơi đến", "Destination"),
                "text",
                String::new(),
            )
            .req(),
            Input::new(
                "absence_reason",
                l.s("Lý do tạm vắng", "Reason of the absence"),
                "text",
                String::new(),
            )
            .req(),
        ],
        Kind::Stay => {
            let mut v = address_inputs(l, here.clone(), String::new(), t.clone());
            v.push(Input::new("until", l.s("Đến ngày", "Until"), "date", t).req());
            v.push(
                Input::new(
                    "host",
                    l.s("Chủ hộ, cơ sở lưu trú", "Host or establishment"),
                    "text",
                    String::new(),
                )
                .req(),
            );
            v
        }
        Kind::Marriage => vec![
            Input::new(
                "spouse",
                l.s(
                    "Số định danh của người kết hôn cùng",
                    "ID number of the other spouse",
                ),
                "text",
                String::new(),
            )
            .req(),
            Input::new("on", l.s("Ngày đăng ký", "Registered on"), "date", t).req(),
        ],
        Kind::Divorce => vec![
            Input::new(
                "on",
                l.s("Ngày bản án có hiệu lực", "Effective on"),
                "date",
                t,
            )
            .req(),
        ],
        Kind::Death => vec![
            Input::new("date_of_death", l.s("Ngày mất", "Date of death"), "text", t)
                .req()
                .hint(l.s(
                    "YYYY-MM-DD, hoặc YYYY-MM, YYYY nếu không rõ",
                    "YYYY-MM-DD, or YYYY-MM, YYYY when not known",
                )),
        ],
        Kind::Correction => {
            let f = CorrectableField::Name;
            vec![
                Input::new(
                    "field",
                    l.s("Trường cần điều chỉnh", "Field to correct"),
                    "select",
                    field_code(f),
                )
                .opts(field_options(l))
                .req(),
                Input::new(
                    "value",
                    l.s("Giá trị mới", "New value"),
                    "text",
                    field_text(p, f),
                )
                .hint(l.s(
                    "Quê quán: mã xã, địa chỉ; cha/mẹ: số định danh rồi họ tên; tên gọi khác: cách nhau bởi dấu phẩy",
                    "Home town: commune code, detail; parent: ID number then name; other names: separated by commas",
                )),
            ]
        }
        Kind::HouseholdCreate => {
            let (c, d) = permanent
                .map(|r| (r.address.commune_code.clone(), r.address.detail.clone()))
                .unwrap_or((here.clone(), String::new()));
            address_inputs(l, c, d, t)
        }
        Kind::HouseholdAdd => {
            let mut v = if x.household.is_some() {
                vec![
                    Input::new(
                        "member",
                        l.s("Số định danh người nhập hộ", "ID number of the new member"),
                        "text",
                        String::new(),
                    )
                    .req(),
                ]
            } else {
                vec![
                    Input::new(
                        "household",
                        l.s("Số hộ cần nhập vào", "Household number to join"),
                        "text",
                        String::new(),
                    )
                    .req(),
                ]
            };
            v.push(
                Input::new(
                    "relationship",
                    l.s("Quan hệ với chủ hộ", "Relation to the head"),
                    "select",
                    rel_code(Relationship::Child),
                )
                .opts(relationship_options(l, false))
                .req(),
            );
            v
        }
        Kind::HouseholdHead | Kind::HouseholdSplit => {
            let split = kind == Kind::HouseholdSplit;
            let mine = p
                .household
                .as_ref()
                .map(|m| m.relationship)
                .unwrap_or(Relationship::OtherRelative);
            let mut v = if split {
                let (c, _) = permanent
                    .map(|r| (r.address.commune_code.clone(), String::new()))
                    .unwrap_or((here.clone(), String::new()));
                address_inputs(l, c, String::new(), t)
            } else {
                Vec::new()
            };
            for m in x.household.iter().flat_map(|h| h.members.iter()) {
                if m.person == p.id || (split && m.relationship == Relationship::Head) {
                    continue;
                }
                let name = x
                    .members
                    .iter()
                    .find(|q| q.id == m.person)
                    .map(|q| q.name.full())
                    .unwrap_or_else(|| m.person.to_string());
                let value = if split {
                    String::new()
                } else {
                    rel_code(guess(mine, m.relationship))
                };
                v.push(
                    Input::new(
                        &format!("rel_{}", m.person),
                        &format!(
                            "{name} ({}): {}",
                            relation(l, m.relationship),
                            if split {
                                l.s("sang hộ mới với quan hệ", "moves with relation")
                            } else {
                                l.s("quan hệ với chủ hộ mới", "relation to the new head")
                            }
                        ),
                        "select",
                        value,
                    )
                    .opts(relationship_options(l, split)),
                );
            }
            v
        }
        Kind::Level2 => {
            let place = dancu_domain::admin::AdminUnits::get()
                .commune(Scheme::Y2025, &here)
                .map(|c| format!("Công an {}", c.name))
                .unwrap_or_default();
            return vec![
                Input::new(
                    "place",
                    l.s(
                        "Nơi kiểm tra trực tiếp",
                        "Where the in-person check took place",
                    ),
                    "text",
                    place,
                )
                .req(),
                Input::new(
                    "face_checked",
                    l.s("Đã đối chiếu khuôn mặt", "Face compared in person"),
                    "checkbox",
                    String::new(),
                ),
                Input::new(
                    "fingerprints_checked",
                    l.s(
                        "Đã thu nhận và đối chiếu vân tay",
                        "Fingerprints taken and compared",
                    ),
                    "checkbox",
                    String::new(),
                ),
            ];
        }
        Kind::Lock | Kind::Unlock => {
            return vec![
                Input::new(
                    "lock_reason",
                    l.s("Lý do theo quy định", "Legal reason"),
                    "select",
                    "holder_request".to_owned(),
                )
                .opts(vec![
                    (
                        "holder_request".to_owned(),
                        l.s("Theo yêu cầu của chủ tài khoản", "At the holder's request")
                            .to_owned(),
                    ),
                    (
                        "terms_breach".to_owned(),
                        l.s("Vi phạm điều khoản sử dụng", "Breach of the terms of use")
                            .to_owned(),
                    ),
                    (
                        "authority_request".to_owned(),
                        l.s(
                            "Theo yêu cầu của cơ quan có thẩm quyền",
                            "On a competent authority's decision",
                        )
                        .to_owned(),
                    ),
                ])
                .req(),
                Input::new(
                    "decision_ref",
                    l.s("Số quyết định (nếu có)", "Decision reference (if any)"),
                    "text",
                    String::new(),
                ),
            ];
        }
    };
    v.extend(basis_inputs(l, kind));
    v
}

/// Checks one field with the domain's rules; `None` when it is acceptable.
fn check_field(
    kind: Kind,
    name: &str,
    value: &str,
    form: &BTreeMap<String, String>,
    today: NaiveDate,
) -> Option<Msg> {
    let v = value.trim();
    let r = match name {
        "commune" => {
            if v.is_empty() {
                return None;
            }
            Address::new(Scheme::Y2025, v, "", today)
                .map(|_| ())
                .map_err(|e| msg(&e))
        }
        "detail" => {
            let n = v.chars().count();
            if n > MAX_DETAIL_CHARS {
                Err(msg(&AddressError::DetailTooLong {
                    length: n,
                    max: MAX_DETAIL_CHARS,
                }))
            } else if v.chars().any(char::is_control) {
                Err(msg(&AddressError::DetailControlCharacter))
            } else {
                Ok(())
            }
        }
        "from" | "until" | "on" => {
            if v.is_empty() {
                return None;
            }
            full_date(v).and_then(|d| {
                let not_future = matches!(
                    (kind, name),
                    (
                        Kind::Permanent | Kind::Temporary | Kind::Marriage,
                        "from" | "on"
                    )
                );
                if not_future && d > today {
                    return Err(Msg::new(
                        "date_in_future",
                        &format!("Ngày {d} không được sau ngày hôm nay"),
                        &format!("{d} cannot be after today"),
                    ));
                }
                if name == "until"
                    && let Ok(from) = full_date(&get(form, "from"))
                    && d < from
                {
                    return Err(msg(&RuleError::Dates(format!(
                        "the end {d} is before the start {from}"
                    ))));
                }
                Ok(())
            })
        }
        "date_of_birth" => {
            if v.is_empty() {
                return None;
            }
            full_date(v).and_then(|d| {
                if d > today {
                    Err(Msg::new(
                        "date_in_future",
                        &format!("Ngày sinh {d} không được sau ngày hôm nay"),
                        &format!("The date of birth {d} cannot be after today"),
                    ))
                } else {
                    Ok(())
                }
            })
        }
        "family" | "middle" | "given" => {
            if v.is_empty() {
                return None;
            }
            PersonName::parse(v).map(|_| ()).map_err(|e| msg(&e))
        }
        "date_of_death" => {
            if v.is_empty() {
                return None;
            }
            PartialDate::parse(v)
                .and_then(|d| d.check_range(today))
                .map_err(|e| msg(&e))
        }
        "spouse" | "member" => {
            if v.is_empty() {
                return None;
            }
            PersonalId::parse(v).map(|_| ()).map_err(|e| msg(&e))
        }
        "household" => {
            if v.chars().count() > 40 {
                Err(text_length(40))
            } else {
                Ok(())
            }
        }
        "destination" | "absence_reason" | "host" | "place" | "decision_ref" => {
            if v.chars().count() > 200 {
                Err(text_length(200))
            } else {
                Ok(())
            }
        }
        "reason" | "legal_basis" | "document_ref" => {
            if v.chars().count() > 500 {
                Err(text_length(500))
            } else {
                Ok(())
            }
        }
        "field" => parse_field(v).map(|_| ()).ok_or_else(|| {
            Msg::new(
                "correction_field_unknown",
                "Hãy chọn trường cần điều chỉnh",
                "Choose the field to correct",
            )
        }),
        "value" => match parse_field(&get(form, "field")) {
            Some(f) => {
                field_value(f, v, PersonalId::parse(&get(form, "id")).ok(), today).map(|_| ())
            }
            None => Ok(()),
        },
        n if n == "relationship" || n.starts_with("rel_") => {
            if v.is_empty() || relationship(v).is_some() {
                Ok(())
            } else {
                Err(Msg::new(
                    "relationship_invalid",
                    "Hãy chọn quan hệ trong danh sách",
                    "Choose a relationship from the list",
                ))
            }
        }
        _ => Ok(()),
    };
    r.err()
}

/// What a submitted form does.
enum Action {
    Run(Box<Command>),
    Level2(dancu_idp::Level2Raise),
    Lock {
        reason: dancu_eid::account::LockReason,
        decision_ref: Option<String>,
        set: bool,
    },
}

fn opt(form: &BTreeMap<String, String>, k: &str) -> Option<String> {
    let v = get(form, k);
    (!v.is_empty()).then_some(v)
}

fn address_json(form: &BTreeMap<String, String>) -> Value {
    let from = get(form, "from");
    let scheme = full_date(&from)
        .map(Scheme::for_date)
        .unwrap_or(Scheme::Y2025);
    json!({
        "scheme": scheme.as_str(),
        "commune_code": get(form, "commune"),
        "detail": get(form, "detail"),
        "effective_from": from,
    })
}

fn command<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, Msg> {
    serde_json::from_value(v).map_err(|e| {
        let api = crate::ApiError::bad_body(&e);
        let (_, code, vi, en) = api.parts();
        Msg::new(code, vi, en)
    })
}

fn version_of(st: &AppState, id: &str) -> Result<(PersonalId, u64), Msg> {
    let id = parse_id(id)?;
    let p = st
        .registry
        .store()
        .person(&id)
        .map_err(|e| Msg::from(dancu_registry::RegistryError::from(e)))?
        .ok_or_else(|| {
            Msg::from(dancu_registry::RegistryError::NotFound {
                what: format!("person {id}"),
            })
        })?;
    Ok((id, p.version))
}

/// The form as the API's JSON body, deserialised into the command (or the e-ID request).
fn build(
    st: &AppState,
    kind: Kind,
    form: &BTreeMap<String, String>,
    p: &Person,
    today: NaiveDate,
) -> Result<Action, Msg> {
    let id = p.id.to_string();
    let version: u64 = get(form, "version").parse().unwrap_or(0);
    let hversion: u64 = get(form, "hversion").parse().unwrap_or(0);
    let mut basis = json!({
        "reason": opt(form, "reason"),
        "legal_basis": opt(form, "legal_basis"),
        "document_ref": opt(form, "document_ref"),
    });
    let mut with_basis = |mut v: Value| {
        if let (Some(o), Some(b)) = (v.as_object_mut(), basis.as_object_mut()) {
            o.append(b);
        }
        v
    };
    let household = p.household.as_ref().map(|m| m.household_id.clone());
    let rels = |stay_allowed: bool| -> Vec<Value> {
        form.iter()
            .filter_map(|(k, v)| {
                let pid = k.strip_prefix("rel_")?;
                if stay_allowed && v.is_empty() {
                    return None;
                }
                Some(json!({"person": pid, "relationship": v}))
            })
            .collect()
    };
    let cmd = match kind {
        Kind::Permanent => Command::RegisterPermanentResidence(command(with_basis(json!({
            "person": id, "expected_version": version, "address": address_json(form),
            "from": get(form, "from"),
        })))?),
        Kind::Temporary => Command::RegisterTemporaryResidence(command(with_basis(json!({
            "person": id, "expected_version": version, "address": address_json(form),
            "from": get(form, "from"), "until": get(form, "until"),
        })))?),
        Kind::Absence => Command::DeclareTemporaryAbsence(command(with_basis(json!({
            "person": id, "expected_version": version, "from": get(form, "from"),
            "until": get(form, "until"), "destination": get(form, "destination"),
            "absence_reason": get(form, "absence_reason"),
        })))?),
        Kind::Stay => Command::NotifyStay(command(with_basis(json!({
            "person": id, "expected_version": version, "address": address_json(form),
            "from": get(form, "from"), "until": get(form, "until"), "host": get(form, "host"),
        })))?),
        Kind::Marriage => {
            let (spouse, sv) = version_of(st, &get(form, "spouse"))?;
            Command::RegisterMarriage(command(with_basis(json!({
                "first": {"person": id, "expected_version": version},
                "second": {"person": spouse, "expected_version": sv},
                "on": get(form, "on"),
            })))?)
        }
        Kind::Divorce => Command::RegisterDivorce(command(with_basis(json!({
            "person": {"person": id, "expected_version": version}, "on": get(form, "on"),
        })))?),
        Kind::Death => Command::RegisterDeath(command(with_basis(json!({
            "person": id, "expected_version": version,
            "date_of_death": get(form, "date_of_death"),
        })))?),
        Kind::Correction => {
            let f = parse_field(&get(form, "field")).ok_or_else(|| {
                Msg::new(
                    "correction_field_unknown",
                    "Hãy chọn trường cần điều chỉnh",
                    "Choose the field to correct",
                )
            })?;
            let value = field_value(f, &get(form, "value"), Some(p.id), today)?;
            Command::CorrectField(command(with_basis(json!({
                "person": id, "expected_version": version, "field": field_code(f),
                "value": value,
            })))?)
        }
        Kind::HouseholdCreate => Command::CreateHousehold(command(with_basis(json!({
            "head": {"person": id, "expected_version": version},
            "address": address_json(form),
        })))?),
        Kind::HouseholdAdd => match &household {
            Some(h) => {
                let (member, mv) = version_of(st, &get(form, "member"))?;
                Command::AddHouseholdMember(command(with_basis(json!({
                    "household_id": h, "expected_version": hversion,
                    "member": {"person": member, "expected_version": mv},
                    "relationship": get(form, "relationship"),
                })))?)
            }
            None => {
                let h = get(form, "household");
                let hv = st
                    .registry
                    .store()
                    .household(&h)
                    .map_err(|e| Msg::from(dancu_registry::RegistryError::from(e)))?
                    .map(|h| h.version)
                    .ok_or_else(|| {
                        Msg::from(dancu_registry::RegistryError::NotFound {
                            what: format!("household {h}"),
                        })
                    })?;
                Command::AddHouseholdMember(command(with_basis(json!({
                    "household_id": h, "expected_version": hv,
                    "member": {"person": id, "expected_version": version},
                    "relationship": get(form, "relationship"),
                })))?)
            }
        },
        Kind::HouseholdHead => Command::ChangeHouseholdHead(command(with_basis(json!({
            "household_id": household, "expected_version": hversion, "new_head": id,
            "relationships": rels(false),
        })))?),
        Kind::HouseholdSplit => Command::SplitHousehold(command(with_basis(json!({
            "household_id": household, "expected_version": hversion, "new_head": id,
            "members": rels(true), "address": address_json(form),
        })))?),
        Kind::Level2 => {
            return Ok(Action::Level2(dancu_idp::Level2Raise {
                id: p.id,
                place: get(form, "place"),
                face_checked: get(form, "face_checked") == "yes",
                fingerprints_checked: get(form, "fingerprints_checked") == "yes",
            }));
        }
        Kind::Lock | Kind::Unlock => {
            let reason =
                serde_json::from_value(Value::String(get(form, "lock_reason"))).map_err(|_| {
                    Msg::new(
                        "eid_lock_reason_invalid",
                        "Hãy chọn lý do khóa theo quy định",
                        "Choose a legal reason",
                    )
                })?;
            return Ok(Action::Lock {
                reason,
                decision_ref: opt(form, "decision_ref"),
                set: kind == Kind::Lock,
            });
        }
    };
    Ok(Action::Run(Box::new(cmd)))
}

/// The field a refusal of the register concerns, when the form has it.
fn field_for(code: &str, inputs: &[Input]) -> Option<String> {
    let has = |n: &str| inputs.iter().any(|i| i.name == n);
    let first = |names: &[&str]| names.iter().find(|n| has(n)).map(|n| (*n).to_owned());
    match code {
        c if c.starts_with("address_") => first(&["commune", "detail"]),
        "unknown_commune" | "outside_jurisdiction" => first(&["commune"]),
        "date_in_future" => first(&["from", "on"]),
        "dates_inconsistent" => first(&["until", "on", "date_of_death", "from"]),
        c if c.starts_with("date_") => first(&["from", "on", "date_of_death"]),
        "under_marriage_age" | "marriage_same_person" | "already_married" => first(&["spouse"]),
        "not_found" | "already_in_household" => first(&["spouse", "member", "household"]),
        "correction_bad_value" | "correction_field_unknown" => first(&["value"]),
        c if c.starts_with("id_") || c.starts_with("name_") => {
            first(&["value", "spouse", "member"])
        }
        "correction_needs_basis" | "basis_too_long" => first(&["reason", "legal_basis"]),
        "text_length" => first(&["destination", "absence_reason", "host"]),
        c if c.contains("decision") => first(&["decision_ref"]),
        c if c.contains("place") => first(&["place"]),
        _ => None,
    }
}

struct View<'a> {
    ctx: &'a Ctx,
    kind: Kind,
    purpose: String,
    idem: String,
    request: String,
    intro: String,
}

fn page(
    v: &View,
    x: &Loaded,
    inputs: Vec<Input>,
    error: Option<Msg>,
    current: Vec<Field>,
) -> Response {
    let status = match &error {
        None => StatusCode::OK,
        Some(m) if m.code == "stale_version" => StatusCode::CONFLICT,
        Some(_) => StatusCode::UNPROCESSABLE_ENTITY,
    };
    let page = FormPage {
        c: v.ctx.chrome(Side::Desk, v.kind.title()),
        kind: v.kind.code(),
        id: x.person.id.to_string(),
        name: x.person.name.full(),
        purpose: v.purpose.clone(),
        version: x.person.version,
        hversion: x
            .household
            .as_ref()
            .map(|h| h.version.to_string())
            .unwrap_or_default(),
        idem: v.idem.clone(),
        request: v.request.clone(),
        intro: v.intro.clone(),
        inputs,
        error,
        current,
    };
    v.ctx.finish(render(status, &page))
}

fn stale() -> Msg {
    Msg::new(
        "stale_version",
        "Hồ sơ đã được người khác thay đổi kể từ khi bạn mở biểu mẫu. Dưới đây là hồ sơ hiện tại: hãy xem lại rồi gửi lại (chưa có gì được ghi).",
        "The record was changed by someone else since you opened it. Here is the current record: review and submit again (nothing was recorded).",
    )
}

/// Opens a form (`step=form`), or submits it.
pub(super) async fn form(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (ctx, form, o) = match officer_post(&state, &headers, &body) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let l = ctx.lang;
    let Some(kind) = Kind::parse(&get(&form, "kind")) else {
        return error_page(
            &ctx,
            Side::Desk,
            StatusCode::NOT_FOUND,
            &Msg::new(
                "form_unknown",
                "Không có biểu mẫu này; hãy mở lại hồ sơ công dân",
                "No such form; open the person's record again",
            ),
        );
    };
    let today = state.registry.clock().today();
    let purpose_code = get(&form, "purpose");
    let request = get(&form, "request");
    let st = state.clone();
    let (o2, pc, id, rq) = (
        o.clone(),
        purpose_code.clone(),
        get(&form, "id"),
        request.clone(),
    );
    let loaded = blocking(move || {
        let purpose = purpose_text(&pc)?;
        let id = parse_id(&id)?;
        let x = load(&st, &o2, &purpose, &id, kind)?;
        let rq = if rq.is_empty() {
            None
        } else {
            Some(super::tasks::request_for(&st, &o2, &rq, &x.person)?)
        };
        Ok((x, rq))
    })
    .await;
    let (x, rq) = match loaded {
        Ok(v) => v,
        Err(m) => return error_page(&ctx, Side::Desk, StatusCode::UNPROCESSABLE_ENTITY, &m),
    };
    let mut ins = inputs(l, kind, &o, &x, today);
    let mut view = View {
        ctx: &ctx,
        kind,
        purpose: purpose_code.clone(),
        idem: get(&form, "idem"),
        request: request.clone(),
        intro: String::new(),
    };
    if let Some(r) = &rq {
        view.intro = format!(
            "{} {}: «{}» — {}",
            l.s("Yêu cầu của công dân", "The citizen's request"),
            r.id,
            r.proposed,
            r.explanation
        );
    }
    if get(&form, "step") == "form" {
        view.idem = dancu_registry::credentials::new_token();
        if let Some(r) = &rq {
            for i in &mut ins {
                match i.name.as_str() {
                    "field" => i.value = r.field.clone(),
                    "value" => i.value = r.proposed.clone(),
                    "reason" => {
                        i.value = format!(
                            "{} {}",
                            l.s("Theo yêu cầu của công dân", "At the citizen's request"),
                            r.id
                        )
                    }
                    _ => {}
                }
            }
        }
        return page(&view, &x, ins, None, Vec::new());
    }
    // What was typed, checked field by field.
    let mut bad = false;
    for i in &mut ins {
        i.value = get(&form, &i.name);
        i.error = if i.required && i.value.is_empty() {
            Some(required())
        } else {
            check_field(kind, &i.name, &i.value, &form, today)
        };
        bad |= i.error.is_some();
    }
    if bad {
        let m = Msg::new(
            "form_invalid",
            "Một số trường cần sửa (xem bên dưới); chưa có gì được ghi",
            "Some fields need attention (see below); nothing was recorded",
        );
        return page(&view, &x, ins, Some(m), Vec::new());
    }
    let st = state.clone();
    let (o2, f2, p2) = (o.clone(), form.clone(), x.person.clone());
    let idem_key = view.idem.clone();
    let r = blocking(move || {
        match build(&st, kind, &f2, &p2, today)? {
            Action::Run(cmd) => {
                let key = if idem_key.is_empty() {
                    None
                } else {
                    let canonical = format!("{kind:?}|{cmd:?}");
                    Some(Idempotency::new(&idem_key, canonical.as_bytes())?)
                };
                st.registry.run(&o2, key.as_ref(), *cmd)?;
            }
            Action::Level2(req) => {
                let idp = st.idp.as_ref().ok_or_else(super::internal)?;
                idp.raise_level2(&o2.id, &req)?;
            }
            Action::Lock {
                reason,
                decision_ref,
                set,
            } => {
                let idp = st.idp.as_ref().ok_or_else(super::internal)?;
                idp.change_lock(
                    &p2.id,
                    dancu_eid::account::Actor::Officer(o2.id.clone()),
                    reason,
                    decision_ref.as_deref(),
                    set,
                )?;
            }
        }
        Ok(())
    })
    .await;
    match r {
        Ok(()) => {
            let mut notice = Msg::new("recorded", kind.done().0, kind.done().1);
            if let Some(r) = &rq {
                let st = state.clone();
                let (o2, id) = (o.clone(), r.id.clone());
                if let Err(m) = blocking(move || super::tasks::mark_applied(&st, &o2, &id)).await {
                    notice = m;
                }
            }
            person_page(
                &state,
                &ctx,
                &o,
                purpose_code,
                x.person.id.to_string(),
                Some(notice),
            )
            .await
        }
        Err(m) if m.code == "stale_version" => {
            // Someone else changed the record: read it again and show it, keep what was typed.
            let st = state.clone();
            let (o2, pc, id) = (o.clone(), purpose_code.clone(), x.person.id);
            match blocking(move || load(&st, &o2, &purpose_text(&pc)?, &id, kind)).await {
                Ok(now) => {
                    let (mut current, residences, _) = person_fields(l, &now.person);
                    current.extend(residences);
                    page(&view, &now, ins, Some(stale()), current)
                }
                Err(m) => error_page(&ctx, Side::Desk, StatusCode::CONFLICT, &m),
            }
        }
        Err(m) => {
            match field_for(&m.code, &ins).and_then(|n| ins.iter_mut().find(|i| i.name == n)) {
                Some(i) => {
                    i.error = Some(m.clone());
                    page(&view, &x, ins, Some(m), Vec::new())
                }
                None => page(&view, &x, ins, Some(m), Vec::new()),
            }
        }
    }
}

/// Checks one field as the officer types (htmx): the field is named by the `HX-Trigger-Name`
/// header and the whole form comes along, so rules that look at two fields (an end after the
/// start) apply too. Answers the message fragment, empty when the value is acceptable.
pub(super) async fn check(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (ctx, form) = match posted(&state, &headers, &body) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    if ctx.officer.is_none() && ctx.person.is_none() {
        return super::html(StatusCode::UNAUTHORIZED, String::new());
    }
    let name = headers
        .get("hx-trigger-name")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let kind = Kind::parse(&get(&form, "kind")).unwrap_or(Kind::Correction);
    let today = state.registry.clock().today();
    let value = get(&form, &name);
    let error = check_field(kind, &name, &value, &form, today);
    let fragment = CheckFragment {
        lang: ctx.lang,
        error,
    };
    ctx.finish(render(StatusCode::OK, &fragment))
}
