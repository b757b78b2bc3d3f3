//! The citizen record (thông tin công dân) as the register holds it now: a projection of the
//! person's event stream, see [`crate::event`].

use crate::admin::Address;
use crate::date::PartialDate;
use crate::id::{CmndNumber, PersonalId};
use crate::name::PersonName;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Sex as recorded in the register (giới tính).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Sex {
    /// Nam.
    Male,
    /// Nữ.
    Female,
}

impl Sex {
    /// The Vietnamese word as printed on cards: "Nam" or "Nữ".
    pub fn vi(&self) -> &'static str {
        match self {
            Self::Male => "Nam",
            Self::Female => "Nữ",
        }
    }
}

/// Marital status (tình trạng hôn nhân).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum MaritalStatus {
    /// Chưa kết hôn.
    #[default]
    Single,
    /// Đã kết hôn.
    Married,
    /// Đã ly hôn.
    Divorced,
    /// Góa.
    Widowed,
}

/// ABO/Rh blood type (nhóm máu), recorded only when known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum BloodType {
    #[serde(rename = "O+")]
    OPos,
    #[serde(rename = "O-")]
    ONeg,
    #[serde(rename = "A+")]
    APos,
    #[serde(rename = "A-")]
    ANeg,
    #[serde(rename = "B+")]
    BPos,
    #[serde(rename = "B-")]
    BNeg,
    #[serde(rename = "AB+")]
    AbPos,
    #[serde(rename = "AB-")]
    AbNeg,
}

/// Another person named on a record (parent, spouse): by ID number when the register knows them,
/// else by name as the source document wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Relative {
    /// Personal ID, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<PersonalId>,
    /// Full name as written on the source document.
    pub name: String,
}

/// A residence: permanent (thường trú) or temporary (tạm trú).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Residence {
    /// Where.
    pub address: Address,
    /// From when it holds.
    pub from: NaiveDate,
    /// When it ends: required for temporary residence, set for a permanent one when closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<NaiveDate>,
}

/// A declared temporary absence (khai báo tạm vắng).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Absence {
    /// First day away.
    pub from: NaiveDate,
    /// Last day away.
    pub until: NaiveDate,
    /// Where to, free text.
    pub destination: String,
    /// Why, free text.
    pub reason: String,
}

/// A stay notification (thông báo lưu trú): the person stays somewhere for a short time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Stay {
    /// Where.
    pub address: Address,
    /// First day.
    pub from: NaiveDate,
    /// Last day.
    pub until: NaiveDate,
    /// Who hosts (person or establishment), free text.
    pub host: String,
}

/// Relationship to the head of household (quan hệ với chủ hộ).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Relationship {
    /// Chủ hộ.
    Head,
    /// Vợ / chồng.
    Spouse,
    /// Con.
    Child,
    /// Cha / mẹ.
    Parent,
    /// Anh chị em.
    Sibling,
    /// Cháu.
    Grandchild,
    /// Ông bà.
    Grandparent,
    /// Other relative.
    OtherRelative,
    /// Not related (người ở nhờ, ở thuê).
    Unrelated,
}

/// Membership of a household (hộ gia đình).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Membership {
    /// Household number.
    pub household_id: String,
    /// Relationship to the head.
    pub relationship: Relationship,
}

/// Status of an identity card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CardStatus {
    /// In use.
    Valid,
    /// Exchanged or re-issued: a newer card replaced it.
    Replaced,
    /// Revoked or held by an authority (thu hồi, tạm giữ).
    Revoked,
    /// The holder died.
    HolderDeceased,
}

/// Kind of identity card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CardKind {
    /// Chứng minh nhân dân (legacy, 9 or 12 digits).
    Cmnd,
    /// Căn cước công dân, with or without chip (2016–2024).
    Cccd,
    /// Thẻ căn cước (from 1 Jul 2024).
    CanCuoc,
}

/// A card issued to the person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CardRecord {
    /// Card number (for CCCD and căn cước: the personal ID).
    pub number: String,
    /// Kind.
    pub kind: CardKind,
    /// Issue date.
    pub issued_on: NaiveDate,
    /// Printed expiry; `None` for cards issued from age 60 (valid for life).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_on: Option<NaiveDate>,
    /// Status.
    pub status: CardStatus,
}

/// Alive or dead (tình trạng: còn sống / đã chết).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum VitalStatus {
    /// Alive, as far as the register knows.
    #[default]
    Alive,
    /// A death was registered.
    Dead {
        /// Date of death (may be partial).
        date_of_death: PartialDate,
    },
}

/// A legacy CMND number, kept as history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LegacyCmnd {
    /// The number.
    pub number: CmndNumber,
    /// When it was issued, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_on: Option<NaiveDate>,
}

/// The current record of one person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Person {
    /// Personal identification number.
    pub id: PersonalId,
    /// Version of the record: the number of events applied. Writes state which version they
    /// expect, so a stale update is refused instead of merged.
    pub version: u64,
    /// Name.
    pub name: PersonName,
    /// Other names (tên gọi khác).
    #[serde(default)]
    pub other_names: Vec<String>,
    /// Date of birth, possibly partial.
    pub date_of_birth: PartialDate,
    /// Sex.
    pub sex: Sex,
    /// Where the birth was registered (nơi đăng ký khai sinh): a commune.
    pub birth_registration: Address,
    /// Home town (quê quán).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home_town: Option<Address>,
    /// Ethnicity (dân tộc), by name, e.g. "Kinh".
    pub ethnicity: String,
    /// Religion (tôn giáo), "Không" for none.
    pub religion: String,
    /// Nationality, ISO 3166 alpha-2, "VN" for Vietnamese citizens.
    pub nationality: String,
    /// Marital status.
    #[serde(default)]
    pub marital_status: MaritalStatus,
    /// Blood type, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blood_type: Option<BloodType>,
    /// Father.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub father: Option<Relative>,
    /// Mother.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mother: Option<Relative>,
    /// Spouse, while married.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spouse: Option<Relative>,
    /// Permanent residence (thường trú).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permanent_residence: Option<Residence>,
    /// Temporary residence (tạm trú), with its end date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporary_residence: Option<Residence>,
    /// Declared temporary absence (tạm vắng).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporary_absence: Option<Absence>,
    /// The latest stay notification (lưu trú).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_stay: Option<Stay>,
    /// Household membership.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub household: Option<Membership>,
    /// Legacy CMND numbers.
    #[serde(default)]
    pub legacy_cmnd: Vec<LegacyCmnd>,
    /// Cards.
    #[serde(default)]
    pub cards: Vec<CardRecord>,
    /// Alive or dead.
    #[serde(default)]
    pub vital_status: VitalStatus,
}

impl Person {
    /// Whether a death has been registered.
    pub fn is_dead(&self) -> bool {
        matches!(self.vital_status, VitalStatus::Dead { .. })
    }

    /// The commune (code, current 2025 scheme) that has jurisdiction over the person: where the
    /// permanent residence is, else the temporary one, else where the birth was registered.
    /// `None` when a legacy address maps to several new communes and none can be chosen.
    pub fn home_commune(&self) -> Option<String> {
        self.home_address().current_commune_code()
    }

    /// The address [`Person::home_commune`] is taken from: the permanent residence, else the
    /// temporary one, else where the birth was registered.
    pub fn home_address(&self) -> &crate::admin::Address {
        self.permanent_residence
            .as_ref()
            .or(self.temporary_residence.as_ref())
            .map(|r| &r.address)
            .unwrap_or(&self.birth_registration)
    }
}
