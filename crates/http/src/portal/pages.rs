//! The portal's page templates (askama, in `crates/http/templates/portal/`) and the view data
//! they show: plain strings prepared by the handlers, so templates hold no logic beyond loops.

use super::{Msg, Side};
use askama::Template;

/// The page language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// Vietnamese (default).
    Vi,
    /// English.
    En,
}

impl Lang {
    /// The BCP 47 code.
    pub fn code(&self) -> &'static str {
        match self {
            Lang::Vi => "vi",
            Lang::En => "en",
        }
    }

    /// The text in this language.
    pub fn s<'a>(&self, vi: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Vi => vi,
            Lang::En => en,
        }
    }

    /// A message in this language.
    pub fn m<'a>(&self, m: &'a Msg) -> &'a str {
        self.s(&m.vi, &m.en)
    }
}

/// What every page shows around its content.
#[derive(Debug, Clone)]
pub struct Chrome {
    pub lang: Lang,
    pub side: Side,
    pub csrf: String,
    pub user: String,
    pub signed_in: bool,
    pub title: &'static str,
}

impl Chrome {
    pub fn desk(&self) -> bool {
        self.side == Side::Desk
    }
}

/// A label and a value.
#[derive(Debug, Clone)]
pub struct Field {
    pub label: &'static str,
    pub value: String,
}

/// A person in a list.
#[derive(Debug, Clone)]
pub struct PersonRow {
    pub id: String,
    pub name: String,
    pub born: String,
    pub sex: String,
    pub relation: String,
    pub commune: String,
}

/// A line of a table of dated entries (history, usage, accesses).
#[derive(Debug, Clone)]
pub struct Line {
    pub at: String,
    pub what: String,
    pub who: String,
    pub why: String,
}

/// A consent the holder can withdraw.
#[derive(Debug, Clone)]
pub struct ConsentRow {
    pub kind: &'static str,
    pub id: String,
    pub to: String,
    pub what: String,
    pub since: String,
    pub revoked: String,
}

#[derive(Template)]
#[template(path = "portal/error.html")]
pub struct ErrorPage {
    pub c: Chrome,
    pub msg: Msg,
}

#[derive(Template)]
#[template(path = "portal/login.html")]
pub struct LoginPage {
    pub c: Chrome,
    pub desk: bool,
}

#[derive(Template)]
#[template(path = "portal/home.html")]
pub struct HomePage {
    pub c: Chrome,
}

#[derive(Template)]
#[template(path = "portal/record.html")]
pub struct RecordPage {
    pub c: Chrome,
    pub id: String,
    pub fields: Vec<Field>,
    pub residences: Vec<Field>,
    pub cards: Vec<Field>,
    pub household: Vec<PersonRow>,
    pub household_id: String,
}

#[derive(Template)]
#[template(path = "portal/account.html")]
pub struct AccountPage {
    pub c: Chrome,
    pub has_account: bool,
    pub level: String,
    pub locked: bool,
    pub usage: Vec<Line>,
    pub notice: Option<Msg>,
}

#[derive(Template)]
#[template(path = "portal/consents.html")]
pub struct ConsentsPage {
    pub c: Chrome,
    pub consents: Vec<ConsentRow>,
    pub notice: Option<Msg>,
}

/// The purposes an officer can choose for a read (recorded in the access log).
pub const PURPOSES: &[(&str, &str, &str)] = &[
    (
        "dang-ky-khai-sinh",
        "Đăng ký khai sinh",
        "Birth registration",
    ),
    ("dang-ky-cu-tru", "Đăng ký cư trú", "Residence registration"),
    ("xac-minh-ho-so", "Xác minh hồ sơ", "Checking a file"),
    (
        "giai-quyet-khieu-nai",
        "Giải quyết khiếu nại",
        "Handling a complaint",
    ),
    (
        "dieu-chinh-theo-yeu-cau",
        "Giải quyết yêu cầu điều chỉnh thông tin",
        "Handling a correction request",
    ),
];

#[derive(Template)]
#[template(path = "portal/search.html")]
pub struct SearchPage {
    pub c: Chrome,
    pub officer: String,
    pub name: String,
    pub year: String,
    pub commune: String,
    pub purpose: String,
    pub error: Option<Msg>,
    pub results: Option<Vec<PersonRow>>,
}

#[derive(Template)]
#[template(path = "portal/person.html")]
pub struct PersonPage {
    pub c: Chrome,
    pub id: String,
    pub name: String,
    pub purpose: String,
    pub version: u64,
    pub fields: Vec<Field>,
    pub residences: Vec<Field>,
    pub cards: Vec<Field>,
    pub household: Vec<PersonRow>,
    /// Permanent and temporary residences, absences and stays, newest first.
    pub residence_history: Vec<super::timeline::Event>,
    /// Every event, newest first.
    pub history: Vec<super::timeline::Event>,
    pub can_write: bool,
    /// The forms the officer can open from this page: (kind, label).
    pub actions: Vec<(&'static str, &'static str)>,
    /// What the last form did, shown on top.
    pub notice: Option<Msg>,
    /// The e-ID account's level and state.
    pub eid: String,
    /// Sectoral records linked through the hub.
    pub linked: Vec<Line>,
}

/// The birth registration form's values.
#[derive(Debug, Clone, Default)]
pub struct BirthForm {
    pub parent: String,
    pub parent_name: String,
    pub purpose: String,
    pub family: String,
    pub middle: String,
    pub given: String,
    pub sex: String,
    pub date_of_birth: String,
    pub commune: String,
    pub household: String,
    pub relationship: String,
    pub reason: String,
    pub document_ref: String,
}

#[derive(Template)]
#[template(path = "portal/birth.html")]
pub struct BirthPage {
    pub c: Chrome,
    pub f: BirthForm,
    pub error: Option<Msg>,
}

#[derive(Template)]
#[template(path = "portal/born.html")]
pub struct BornPage {
    pub c: Chrome,
    pub id: String,
    pub name: String,
    pub parent: String,
    pub purpose: String,
}
