//! Command inputs: what an officer submits to change the register. They arrive as JSON; every
//! field is validated by the domain when the command runs.

use chrono::NaiveDate;
use dancu_domain::PartialDate;
use dancu_domain::PersonName;
use dancu_domain::PersonalId;
use dancu_domain::admin::Address;
use dancu_domain::event::CorrectableField;
use dancu_domain::person::{CardRecord, Relationship, Relative};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Why, on what basis and with what document a change is made; common to every command.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct Basis {
    /// The officer's reason.
    #[serde(default)]
    pub reason: Option<String>,
    /// Legal basis (căn cứ pháp lý).
    #[serde(default)]
    pub legal_basis: Option<String>,
    /// Reference of the supporting document.
    #[serde(default)]
    pub document_ref: Option<String>,
}

/// Đăng ký khai sinh.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegisterBirth {
    /// The child's name.
    pub name: PersonName,
    /// Sex.
    pub sex: dancu_domain::person::Sex,
    /// Date of birth (the full date is required at birth registration).
    pub date_of_birth: NaiveDate,
    /// Commune where the birth is registered (2025 scheme): decides the ID number's place code.
    pub registration_commune: String,
    /// Home town (quê quán), usually the father's or mother's.
    #[serde(default)]
    pub home_town: Option<Address>,
    /// Ethnicity, default "Kinh".
    #[serde(default)]
    pub ethnicity: Option<String>,
    /// Religion, default "Không".
    #[serde(default)]
    pub religion: Option<String>,
    /// Nationality, default "VN".
    #[serde(default)]
    pub nationality: Option<String>,
    /// Father, by ID when known.
    #[serde(default)]
    pub father: Option<Relative>,
    /// Mother, by ID when known.
    #[serde(default)]
    pub mother: Option<Relative>,
    /// Permanent residence to register at the same time (linked procedure), usually a parent's.
    #[serde(default)]
    pub permanent_residence: Option<Address>,
    /// Household to join, with the relationship to its head.
    #[serde(default)]
    pub household: Option<JoinHousehold>,
    /// Basis.
    #[serde(default, flatten)]
    pub basis: Basis,
}

/// Joining an existing household.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JoinHousehold {
    /// Household number.
    pub household_id: String,
    /// Relationship to the head.
    pub relationship: Relationship,
}

/// Đăng ký thường trú.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegisterPermanentResidence {
    /// Who.
    pub person: PersonalId,
    /// The version of the record the officer saw.
    pub expected_version: u64,
    /// New address.
    pub address: Address,
    /// From when.
    pub from: NaiveDate,
    /// Household to join at the new address.
    #[serde(default)]
    pub household: Option<JoinHousehold>,
    /// Basis.
    #[serde(default, flatten)]
    pub basis: Basis,
}

/// Đăng ký tạm trú.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegisterTemporaryResidence {
    /// Who.
    pub person: PersonalId,
    /// Version seen.
    pub expected_version: u64,
    /// Where.
    pub address: Address,
    /// From.
    pub from: NaiveDate,
    /// Until (required).
    pub until: NaiveDate,
    /// Basis.
    #[serde(default, flatten)]
    pub basis: Basis,
}

/// Khai báo tạm vắng.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeclareTemporaryAbsence {
    /// Who.
    pub person: PersonalId,
    /// Version seen.
    pub expected_version: u64,
    /// First day away.
    pub from: NaiveDate,
    /// Last day away.
    pub until: NaiveDate,
    /// Destination.
    pub destination: String,
    /// Reason of the absence.
    pub absence_reason: String,
    /// Basis.
    #[serde(default, flatten)]
    pub basis: Basis,
}

/// Thông báo lưu trú.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NotifyStay {
    /// Who.
    pub person: PersonalId,
    /// Version seen.
    pub expected_version: u64,
    /// Where.
    pub address: Address,
    /// First day.
    pub from: NaiveDate,
    /// Last day.
    pub until: NaiveDate,
    /// Host.
    pub host: String,
    /// Basis.
    #[serde(default, flatten)]
    pub basis: Basis,
}

/// A party to a marriage or divorce, with the version the officer saw.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Party {
    /// Who.
    pub person: PersonalId,
    /// Version seen.
    pub expected_version: u64,
}

/// Đăng ký kết hôn.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegisterMarriage {
    /// One spouse.
    pub first: Party,
    /// The other spouse.
    pub second: Party,
    /// Date of registration.
    pub on: NaiveDate,
    /// Basis.
    #[serde(default, flatten)]
    pub basis: Basis,
}

/// Ly hôn (recording a court's decision).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegisterDivorce {
    /// One spouse (the other, if in the register, is updated too).
    pub person: Party,
    /// Date the divorce took effect.
    pub on: NaiveDate,
    /// Basis.
    #[serde(default, flatten)]
    pub basis: Basis,
}

/// Đăng ký khai tử.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegisterDeath {
    /// Who.
    pub person: PersonalId,
    /// Version seen.
    pub expected_version: u64,
    /// Date of death.
    pub date_of_death: PartialDate,
    /// Basis.
    #[serde(default, flatten)]
    pub basis: Basis,
}

/// Điều chỉnh thông tin: reason and legal basis are required.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CorrectField {
    /// Who.
    pub person: PersonalId,
    /// Version seen.
    pub expected_version: u64,
    /// Which field.
    pub field: CorrectableField,
    /// The new value, in the field's JSON form.
    pub value: serde_json::Value,
    /// Basis (reason and legal_basis required).
    #[serde(default, flatten)]
    pub basis: Basis,
}

/// Link a legacy CMND number.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LinkCmnd {
    /// Who.
    pub person: PersonalId,
    /// Version seen.
    pub expected_version: u64,
    /// The CMND number.
    pub cmnd: dancu_domain::CmndNumber,
    /// Issue date, if known.
    #[serde(default)]
    pub issued_on: Option<NaiveDate>,
    /// Basis.
    #[serde(default, flatten)]
    pub basis: Basis,
}

/// Record an issued card.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RecordCard {
    /// Who.
    pub person: PersonalId,
    /// Version seen.
    pub expected_version: u64,
    /// The card.
    pub card: CardRecord,
    /// Basis.
    #[serde(default, flatten)]
    pub basis: Basis,
}

/// Create a household with its head.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreateHousehold {
    /// The head.
    pub head: Party,
    /// Address of the household.
    pub address: Address,
    /// Basis.
    #[serde(default, flatten)]
    pub basis: Basis,
}

/// Add a member to a household.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AddHouseholdMember {
    /// Household.
    pub household_id: String,
    /// Household version seen.
    pub expected_version: u64,
    /// New member.
    pub member: Party,
    /// Relationship to the head.
    pub relationship: Relationship,
    /// Basis.
    #[serde(default, flatten)]
    pub basis: Basis,
}

/// A member's relationship to a new head.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MemberRelationship {
    /// Member.
    pub person: PersonalId,
    /// Relationship to the new head.
    pub relationship: Relationship,
}

/// Change the head of a household.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChangeHouseholdHead {
    /// Household.
    pub household_id: String,
    /// Household version seen.
    pub expected_version: u64,
    /// The new head.
    pub new_head: PersonalId,
    /// Relationship of every other member to the new head.
    pub relationships: Vec<MemberRelationship>,
    /// Basis.
    #[serde(default, flatten)]
    pub basis: Basis,
}

/// Split a household (tách hộ): some members form a new household.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SplitHousehold {
    /// Household to split.
    pub household_id: String,
    /// Household version seen.
    pub expected_version: u64,
    /// Head of the new household (must be a member who is not the current head).
    pub new_head: PersonalId,
    /// Other members who move to the new household, with their relationship to its head.
    #[serde(default)]
    pub members: Vec<MemberRelationship>,
    /// Address of the new household.
    pub address: Address,
    /// Basis.
    #[serde(default, flatten)]
    pub basis: Basis,
}
