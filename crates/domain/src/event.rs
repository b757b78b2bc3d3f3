//! Events: the truth of the register. Every change to a person or a household is an event with
//! who, when, why, the legal basis and the document; the current record is the fold of the
//! stream through [`apply`] / [`apply_household`], and history "as of" any instant is the fold of
//! the events recorded until then.
//!
//! The fold is also where the invariants live: an event that would break one (a residence for a
//! dead person, a second death) is refused here, so no layer can write it.

use crate::Problem;
use crate::admin::Address;
use crate::date::PartialDate;
use crate::person::*;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Who made a change, when, and on what authority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EventMeta {
    /// The officer or system that made the change.
    pub actor: String,
    /// When it was recorded.
    pub at: DateTime<Utc>,
    /// Why, in the officer's words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Legal basis (căn cứ pháp lý), e.g. "Luật Cư trú 2020, Điều 22".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legal_basis: Option<String>,
    /// Reference of the document the change rests on (số giấy tờ, hồ sơ).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_ref: Option<String>,
}

/// A field an officer may correct (điều chỉnh thông tin) with a reason and legal basis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CorrectableField {
    /// Full name.
    Name,
    /// Other names.
    OtherNames,
    /// Date of birth: must still agree with the ID number.
    DateOfBirth,
    /// Ethnicity.
    Ethnicity,
    /// Religion.
    Religion,
    /// Nationality.
    Nationality,
    /// Blood type.
    BloodType,
    /// Home town.
    HomeTown,
    /// Father.
    Father,
    /// Mother.
    Mother,
}

/// A change to one person's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PersonChange {
    /// Đăng ký khai sinh: the record is created with its new ID number.
    BirthRegistered { record: Box<Person> },
    /// A record loaded from an existing register (bulk import).
    RecordImported { record: Box<Person> },
    /// Đăng ký thường trú: opens a permanent residence and closes the previous one.
    PermanentResidenceRegistered { residence: Residence },
    /// Xóa đăng ký thường trú: the permanent residence is closed.
    PermanentResidenceRemoved { on: NaiveDate },
    /// Đăng ký tạm trú, with its end date.
    TemporaryResidenceRegistered { residence: Residence },
    /// Khai báo tạm vắng.
    TemporaryAbsenceDeclared { absence: Absence },
    /// Thông báo lưu trú.
    StayNotified { stay: Stay },
    /// Đăng ký kết hôn.
    MarriageRegistered { spouse: Relative, on: NaiveDate },
    /// Ly hôn.
    DivorceRegistered { on: NaiveDate },
    /// The spouse died: the person is widowed.
    SpouseDied { on: NaiveDate },
    /// Đăng ký khai tử: residences close, cards become invalid.
    DeathRegistered { date_of_death: PartialDate },
    /// Điều chỉnh thông tin: the old value is kept in this event.
    FieldCorrected {
        field: CorrectableField,
        old: serde_json::Value,
        new: serde_json::Value,
    },
    /// A legacy CMND number is linked to the person.
    LegacyCmndLinked { cmnd: LegacyCmnd },
    /// A card was issued; earlier valid cards become replaced.
    CardIssued { card: CardRecord },
    /// Joined a household.
    HouseholdJoined { membership: Membership },
    /// Left a household.
    HouseholdLeft { household_id: String },
}

impl PersonChange {
    /// The stable name of the event type (also used by subscribers).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::BirthRegistered { .. } => "birth_registered",
            Self::RecordImported { .. } => "record_imported",
            Self::PermanentResidenceRegistered { .. } => "permanent_residence_registered",
            Self::PermanentResidenceRemoved { .. } => "permanent_residence_removed",
            Self::TemporaryResidenceRegistered { .. } => "temporary_residence_registered",
            Self::TemporaryAbsenceDeclared { .. } => "temporary_absence_declared",
            Self::StayNotified { .. } => "stay_notified",
            Self::MarriageRegistered { .. } => "marriage_registered",
            Self::DivorceRegistered { .. } => "divorce_registered",
            Self::SpouseDied { .. } => "spouse_died",
            Self::DeathRegistered { .. } => "death_registered",
            Self::FieldCorrected { .. } => "field_corrected",
            Self::LegacyCmndLinked { .. } => "legacy_cmnd_linked",
            Self::CardIssued { .. } => "card_issued",
            Self::HouseholdJoined { .. } => "household_joined",
            Self::HouseholdLeft { .. } => "household_left",
        }
    }
}

/// A rule of the register that a change would break.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// The first event of a stream must create the record, and only the first.
    #[error("the record does not exist yet")]
    NotCreated,
    /// A creating event on a stream that already has a record.
    #[error("the record already exists")]
    AlreadyExists,
    /// The person is dead: only corrections and card/CMND history may still be recorded.
    #[error("the person is recorded as dead; this change is not possible")]
    PersonDead,
    /// A second death.
    #[error("a death is already registered for this person")]
    AlreadyDead,
    /// Marriage while married.
    #[error("the person is already married")]
    AlreadyMarried,
    /// Divorce while not married.
    #[error("the person is not married")]
    NotMarried,
    /// A date before the birth or an end before a start.
    #[error("the dates are inconsistent: {0}")]
    Dates(String),
    /// A temporary residence without an end date.
    #[error("a temporary residence needs an end date")]
    TemporaryNeedsEnd,
    /// The corrected value is not valid for the field.
    #[error("the new value for {field:?} is not valid: {why}")]
    BadValue {
        field: CorrectableField,
        why: String,
    },
    /// The record's ID number does not agree with its sex or date of birth.
    #[error("the ID number disagrees with the record: {0}")]
    IdDisagrees(crate::id::IdError),
    /// Household rule (e.g. the head leaves without a successor).
    #[error("household rule: {0}")]
    Household(String),
}

impl Problem for RuleError {
    fn code(&self) -> &'static str {
        match self {
            Self::NotCreated => "person_not_found",
            Self::AlreadyExists => "person_exists",
            Self::PersonDead => "person_dead",
            Self::AlreadyDead => "death_already_registered",
            Self::AlreadyMarried => "already_married",
            Self::NotMarried => "not_married",
            Self::Dates(_) => "dates_inconsistent",
            Self::TemporaryNeedsEnd => "temporary_residence_needs_end",
            Self::BadValue { .. } => "correction_bad_value",
            Self::IdDisagrees(e) => e.code(),
            Self::Household(_) => "household_rule",
        }
    }
    fn message_vi(&self) -> String {
        match self {
            Self::NotCreated => "Chưa có hồ sơ của công dân này".to_owned(),
            Self::AlreadyExists => "Hồ sơ công dân đã tồn tại".to_owned(),
            Self::PersonDead => {
                "Công dân đã được đăng ký khai tử; không thể thực hiện thay đổi này".to_owned()
            }
            Self::AlreadyDead => "Công dân này đã được đăng ký khai tử".to_owned(),
            Self::AlreadyMarried => "Công dân đang có vợ/chồng".to_owned(),
            Self::NotMarried => "Công dân không trong tình trạng kết hôn".to_owned(),
            Self::Dates(why) => format!("Ngày tháng không hợp lý: {why}"),
            Self::TemporaryNeedsEnd => "Đăng ký tạm trú phải có thời hạn".to_owned(),
            Self::BadValue { field, why } => {
                format!("Giá trị mới của trường {field:?} không hợp lệ: {why}")
            }
            Self::IdDisagrees(e) => {
                format!("Số định danh không khớp với hồ sơ: {}", e.message_vi())
            }
            Self::Household(why) => format!("Quy định về hộ gia đình: {why}"),
        }
    }
}

fn alive(p: &Person) -> Result<(), RuleError> {
    if p.is_dead() {
        Err(RuleError::PersonDead)
    } else {
        Ok(())
    }
}

fn not_before_birth(p: &Person, d: NaiveDate, what: &str) -> Result<(), RuleError> {
    if d < p.date_of_birth.earliest() {
        return Err(RuleError::Dates(format!(
            "{what} {d} is before the date of birth {}",
            p.date_of_birth
        )));
    }
    Ok(())
}

fn check_new_record(r: &Person) -> Result<(), RuleError> {
    r.id.check_against(&r.date_of_birth, r.sex)
        .map_err(RuleError::IdDisagrees)
}

/// Applies one change to a person's current state (`None` before the first event), returning the
/// new state with its version raised by one, or the rule the change breaks.
pub fn apply(state: Option<&Person>, change: &PersonChange) -> Result<Person, RuleError> {
    use PersonChange as C;
    let mut p = match (state, change) {
        (None, C::BirthRegistered { record } | C::RecordImported { record }) => {
            check_new_record(record)?;
            let mut p = (**record).clone();
            p.version = 1;
            return Ok(p);
        }
        (Some(_), C::BirthRegistered { .. } | C::RecordImported { .. }) => {
            return Err(RuleError::AlreadyExists);
        }
        (None, _) => return Err(RuleError::NotCreated),
        (Some(p), _) => p.clone(),
    };
    match change {
        // Creation was handled above; on an existing record it was refused there.
        C::BirthRegistered { .. } | C::RecordImported { .. } => {
            return Err(RuleError::AlreadyExists);
        }
        C::PermanentResidenceRegistered { residence } => {
            alive(&p)?;
            not_before_birth(&p, residence.from, "the residence start")?;
            p.permanent_residence = Some(Residence {
                until: None,
                ..residence.clone()
            });
            // A new permanent residence ends a temporary one in the same commune.
            if p.temporary_residence
                .as_ref()
                .is_some_and(|t| t.address.commune_code == residence.address.commune_code)
            {
                p.temporary_residence = None;
            }
        }
        C::PermanentResidenceRemoved { .. } => {
            p.permanent_residence = None;
        }
        C::TemporaryResidenceRegistered { residence } => {
            alive(&p)?;
            not_before_birth(&p, residence.from, "the residence start")?;
            match residence.until {
                None => return Err(RuleError::TemporaryNeedsEnd),
                Some(u) if u < residence.from => {
                    return Err(RuleError::Dates(format!(
                        "the end {u} is before the start {}",
                        residence.from
                    )));
                }
                Some(_) => {}
            }
            p.temporary_residence = Some(residence.clone());
        }
        C::TemporaryAbsenceDeclared { absence } => {
            alive(&p)?;
            if absence.until < absence.from {
                return Err(RuleError::Dates(format!(
                    "the end {} is before the start {}",
                    absence.until, absence.from
                )));
            }
            p.temporary_absence = Some(absence.clone());
        }
        C::StayNotified { stay } => {
            alive(&p)?;
            if stay.until < stay.from {
                return Err(RuleError::Dates(format!(
                    "the end {} is before the start {}",
                    stay.until, stay.from
                )));
            }
            p.last_stay = Some(stay.clone());
        }
        C::MarriageRegistered { spouse, on } => {
            alive(&p)?;
            not_before_birth(&p, *on, "the marriage date")?;
            if p.marital_status == MaritalStatus::Married {
                return Err(RuleError::AlreadyMarried);
            }
            p.marital_status = MaritalStatus::Married;
            p.spouse = Some(spouse.clone());
        }
        C::DivorceRegistered { .. } => {
            alive(&p)?;
            if p.marital_status != MaritalStatus::Married {
                return Err(RuleError::NotMarried);
            }
            p.marital_status = MaritalStatus::Divorced;
            p.spouse = None;
        }
        C::SpouseDied { .. } => {
            if p.marital_status == MaritalStatus::Married {
                p.marital_status = MaritalStatus::Widowed;
                p.spouse = None;
            }
        }
        C::DeathRegistered { date_of_death } => {
            if p.is_dead() {
                return Err(RuleError::AlreadyDead);
            }
            if date_of_death.latest() < p.date_of_birth.earliest() {
                return Err(RuleError::Dates(format!(
                    "the date of death {date_of_death} is before the date of birth {}",
                    p.date_of_birth
                )));
            }
            p.vital_status = VitalStatus::Dead {
                date_of_death: *date_of_death,
            };
            let end = date_of_death.latest();
            if let Some(r) = p.permanent_residence.as_mut() {
                r.until = Some(end);
            }
            p.temporary_residence = None;
            p.temporary_absence = None;
            for c in &mut p.cards {
                if c.status == CardStatus::Valid {
                    c.status = CardStatus::HolderDeceased;
                }
            }
        }
        C::FieldCorrected { field, new, .. } => correct(&mut p, *field, new)?,
        C::LegacyCmndLinked { cmnd } => {
            if !p.legacy_cmnd.iter().any(|c| c.number == cmnd.number) {
                p.legacy_cmnd.push(cmnd.clone());
            }
        }
        C::CardIssued { card } => {
            alive(&p)?;
            not_before_birth(&p, card.issued_on, "the issue date")?;
            for c in &mut p.cards {
                if c.status == CardStatus::Valid {
                    c.status = CardStatus::Replaced;
                }
            }
            p.cards.push(card.clone());
        }
        C::HouseholdJoined { membership } => {
            alive(&p)?;
            p.household = Some(membership.clone());
        }
        C::HouseholdLeft { household_id } => {
            if p.household
                .as_ref()
                .is_some_and(|m| &m.household_id == household_id)
            {
                p.household = None;
            }
        }
    }
    p.version += 1;
    Ok(p)
}

fn correct(
    p: &mut Person,
    field: CorrectableField,
    new: &serde_json::Value,
) -> Result<(), RuleError> {
    use CorrectableField as F;
    fn parse<T: serde::de::DeserializeOwned>(
        field: CorrectableField,
        v: &serde_json::Value,
    ) -> Result<T, RuleError> {
        serde_json::from_value(v.clone()).map_err(|e| RuleError::BadValue {
            field,
            why: e.to_string(),
        })
    }
    match field {
        F::Name => p.name = parse(field, new)?,
        F::OtherNames => p.other_names = parse(field, new)?,
        F::DateOfBirth => {
            let d: PartialDate = parse(field, new)?;
            p.id.check_against(&d, p.sex)
                .map_err(RuleError::IdDisagrees)?;
            p.date_of_birth = d;
        }
        F::Ethnicity => p.ethnicity = non_empty(field, parse(field, new)?)?,
        F::Religion => p.religion = non_empty(field, parse(field, new)?)?,
        F::Nationality => {
            let n: String = parse(field, new)?;
            if n.len() != 2 || !n.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(RuleError::BadValue {
                    field,
                    why: "ISO 3166 alpha-2 code expected, e.g. VN".into(),
                });
            }
            p.nationality = n;
        }
        F::BloodType => p.blood_type = parse(field, new)?,
        F::HomeTown => p.home_town = parse(field, new)?,
        F::Father => p.father = parse(field, new)?,
        F::Mother => p.mother = parse(field, new)?,
    }
    Ok(())
}

fn non_empty(field: CorrectableField, s: String) -> Result<String, RuleError> {
    let s = s.trim().to_owned();
    if s.is_empty() || s.chars().count() > 100 {
        return Err(RuleError::BadValue {
            field,
            why: "1 to 100 characters expected".into(),
        });
    }
    Ok(s)
}

/// The current value of a correctable field, as JSON (kept as `old` in the correction event).
pub fn field_value(p: &Person, field: CorrectableField) -> serde_json::Value {
    use CorrectableField as F;
    let v = match field {
        F::Name => serde_json::to_value(&p.name),
        F::OtherNames => serde_json::to_value(&p.other_names),
        F::DateOfBirth => serde_json::to_value(p.date_of_birth),
        F::Ethnicity => serde_json::to_value(&p.ethnicity),
        F::Religion => serde_json::to_value(&p.religion),
        F::Nationality => serde_json::to_value(&p.nationality),
        F::BloodType => serde_json::to_value(p.blood_type),
        F::HomeTown => serde_json::to_value(&p.home_town),
        F::Father => serde_json::to_value(&p.father),
        F::Mother => serde_json::to_value(&p.mother),
    };
    v.unwrap_or(serde_json::Value::Null)
}

/// A household (hộ gia đình): a head and members with their relationship to the head, at an
/// address. Its own event stream, changed in the same transaction as the members' streams.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Household {
    /// Household number.
    pub id: String,
    /// Version (number of events applied).
    pub version: u64,
    /// Address of the household.
    pub address: Address,
    /// Members, the head first.
    pub members: Vec<HouseholdMember>,
}

/// One member of a household.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HouseholdMember {
    /// Who.
    pub person: crate::id::PersonalId,
    /// Relationship to the head.
    pub relationship: Relationship,
}

impl Household {
    /// The head of household.
    pub fn head(&self) -> Option<crate::id::PersonalId> {
        self.members
            .iter()
            .find(|m| m.relationship == Relationship::Head)
            .map(|m| m.person)
    }
}

/// A change to a household.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HouseholdChange {
    /// A household is formed with its head (and, for a split, the members who come along).
    Created {
        address: Address,
        members: Vec<HouseholdMember>,
    },
    /// A member joins.
    MemberAdded { member: HouseholdMember },
    /// A member leaves (moves out, splits off, dies).
    MemberRemoved { person: crate::id::PersonalId },
    /// A new head, with every member's relationship to the new head.
    HeadChanged { members: Vec<HouseholdMember> },
}

impl HouseholdChange {
    /// Stable name of the event type.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Created { .. } => "household_created",
            Self::MemberAdded { .. } => "household_member_added",
            Self::MemberRemoved { .. } => "household_member_removed",
            Self::HeadChanged { .. } => "household_head_changed",
        }
    }
}

fn one_head(members: &[HouseholdMember]) -> Result<(), RuleError> {
    let heads = members
        .iter()
        .filter(|m| m.relationship == Relationship::Head)
        .count();
    if heads != 1 {
        return Err(RuleError::Household(format!(
            "a household has exactly one head, this change gives {heads}"
        )));
    }
    let mut ids: Vec<_> = members.iter().map(|m| m.person).collect();
    ids.sort();
    ids.dedup();
    if ids.len() != members.len() {
        return Err(RuleError::Household("a person appears twice".into()));
    }
    Ok(())
}

/// Applies one change to a household (`None` before it exists).
pub fn apply_household(
    id: &str,
    state: Option<&Household>,
    change: &HouseholdChange,
) -> Result<Household, RuleError> {
    use HouseholdChange as H;
    let mut h = match (state, change) {
        (None, H::Created { address, members }) => {
            one_head(members)?;
            return Ok(Household {
                id: id.to_owned(),
                version: 1,
                address: address.clone(),
                members: members.clone(),
            });
        }
        (Some(_), H::Created { .. }) => return Err(RuleError::AlreadyExists),
        (None, _) => return Err(RuleError::NotCreated),
        (Some(h), _) => h.clone(),
    };
    match change {
        H::Created { .. } => {}
        H::MemberAdded { member } => {
            if member.relationship == Relationship::Head {
                return Err(RuleError::Household(
                    "use a change of head to make a member the head".into(),
                ));
            }
            if h.members.iter().any(|m| m.person == member.person) {
                return Err(RuleError::Household(format!(
                    "{} is already a member",
                    member.person
                )));
            }
            h.members.push(member.clone());
        }
        H::MemberRemoved { person } => {
            let before = h.members.len();
            let leaving_head = h.head() == Some(*person);
            h.members.retain(|m| m.person != *person);
            if h.members.len() == before {
                return Err(RuleError::Household(format!("{person} is not a member")));
            }
            if leaving_head && !h.members.is_empty() {
                return Err(RuleError::Household(
                    "the head cannot leave before a new head is chosen".into(),
                ));
            }
        }
        H::HeadChanged { members } => {
            one_head(members)?;
            let mut old: Vec<_> = h.members.iter().map(|m| m.person).collect();
            let mut new: Vec<_> = members.iter().map(|m| m.person).collect();
            old.sort();
            new.sort();
            if old != new {
                return Err(RuleError::Household(
                    "a change of head must list exactly the current members".into(),
                ));
            }
            let mut sorted = members.clone();
            sorted.sort_by_key(|m| m.relationship != Relationship::Head);
            h.members = sorted;
        }
    }
    h.version += 1;
    Ok(h)
}
