//! E-ID accounts (tài khoản định danh điện tử): one per person, bound to the personal ID number,
//! at level 1 or level 2, with the age rules, the registration and raise decisions, and the locks
//! the law names (Decree 69/2024).
//!
//! The functions here decide; they do not store. A caller loads the person from the register and
//! the account (if any), calls a function, and writes back the account it got, together with a
//! usage-history entry.

use crate::face::{FaceCapture, FaceOutcome, FaceReference, FaceVerifier};
use crate::phone::PhoneNumber;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use dancu_domain::person::{CardStatus, Person};
use dancu_domain::{PartialDate, PersonalId, Problem};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Assurance level of an account (mức độ tài khoản định danh điện tử).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Level {
    /// Level 1: self-registered with a face check against the register's reference.
    #[serde(rename = "level_1")]
    One,
    /// Level 2: face and fingerprints checked in person by the police; gives the electronic ID
    /// card (căn cước điện tử).
    #[serde(rename = "level_2")]
    Two,
}

impl Level {
    /// The number, 1 or 2.
    pub fn number(self) -> u8 {
        match self {
            Self::One => 1,
            Self::Two => 2,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "level {}", self.number())
    }
}

/// Age band of the age rules, counted on the youngest age the date of birth allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgeBand {
    /// Under 6: level 1 only, managed by the parent or guardian.
    UnderSix,
    /// 6 to under 14: levels 1 and 2 on a parent's or guardian's request.
    SixToThirteen,
    /// 14 and over: levels 1 and 2 with a valid card.
    FourteenPlus,
}

/// The age band of a person born on `dob`, on `today`. A partial date counts from its latest
/// possible day, so a person is never taken as older than they can be. `None` when the date of
/// birth lies after `today`.
pub fn age_band(dob: &PartialDate, today: NaiveDate) -> Option<AgeBand> {
    match dob.age_on(today) {
        a if a < 0 => None,
        0..=5 => Some(AgeBand::UnderSix),
        6..=13 => Some(AgeBand::SixToThirteen),
        _ => Some(AgeBand::FourteenPlus),
    }
}

/// Whether the person holds a card the e-ID rules accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CardState {
    /// A valid, unexpired card.
    Valid,
    /// The newest card expired.
    Expired,
    /// The newest card is revoked or held by an authority.
    Revoked,
    /// No card recorded.
    None,
}

/// The card state of `person` on `today`, read from the newest card (by issue date).
pub fn card_state(person: &Person, today: NaiveDate) -> CardState {
    let Some(card) = person.cards.iter().max_by_key(|c| c.issued_on) else {
        return CardState::None;
    };
    match card.status {
        CardStatus::Revoked => CardState::Revoked,
        CardStatus::Valid if card.expires_on.is_none_or(|e| e >= today) => CardState::Valid,
        CardStatus::Valid | CardStatus::Replaced | CardStatus::HolderDeceased => CardState::Expired,
    }
}

/// On what ground a guardian acts for a minor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "basis", rename_all = "snake_case")]
pub enum GuardianBasis {
    /// Recorded as father or mother on the child's register record.
    RecordedParent,
    /// Appointed guardian (người giám hộ), with the reference of the appointing document.
    Appointed {
        /// Document reference, e.g. the guardianship registration number.
        reference: String,
    },
}

/// Who asks for an account or a raise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "applicant", rename_all = "snake_case")]
pub enum Applicant {
    /// The person themself.
    Holder,
    /// A parent or guardian, for a minor.
    Guardian {
        /// The guardian's personal ID.
        id: PersonalId,
        /// On what ground.
        basis: GuardianBasis,
    },
}

/// How the account is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Management {
    /// The holder logs in themself.
    Holder,
    /// The holder (6 to under 14) logs in; the guardian who asked may also act for them.
    HolderWithGuardian,
    /// Under 6: only the guardian acts, on the child's behalf.
    Guardian,
}

/// Decides whether `level` may be granted to a person born on `dob`, asked for by `applicant`.
/// Returns how the account is to be run.
pub fn check_eligibility(
    dob: &PartialDate,
    today: NaiveDate,
    card: CardState,
    level: Level,
    applicant: &Applicant,
) -> Result<Management, AccountError> {
    let band = age_band(dob, today).ok_or(AccountError::NotBorn)?;
    let by_guardian = matches!(applicant, Applicant::Guardian { .. });
    match band {
        AgeBand::FourteenPlus => {
            if by_guardian {
                return Err(AccountError::GuardianNotApplicable);
            }
            match card {
                CardState::Valid => Ok(Management::Holder),
                CardState::Expired => Err(AccountError::CardExpired),
                CardState::Revoked => Err(AccountError::CardRevoked),
                CardState::None => Err(AccountError::CardRequired),
            }
        }
        AgeBand::SixToThirteen if by_guardian => {
            if card == CardState::Revoked {
                return Err(AccountError::CardRevoked);
            }
            Ok(Management::HolderWithGuardian)
        }
        AgeBand::SixToThirteen => Err(AccountError::GuardianRequestRequired),
        AgeBand::UnderSix if level == Level::Two => Err(AccountError::Level2UnderSix),
        AgeBand::UnderSix if by_guardian => Ok(Management::Guardian),
        AgeBand::UnderSix => Err(AccountError::GuardianRequestRequired),
    }
}

/// The date in Vietnam (UTC+7) at `now`: the date ages and card expiries count in.
pub fn vietnam_date(now: DateTime<Utc>) -> NaiveDate {
    (now + Duration::hours(7)).date_naive()
}

/// An in-person check at a police office, recorded on a level-2 raise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InPersonCheck {
    /// The officer who checked (officer ID).
    pub officer: String,
    /// Where: the office or unit.
    pub place: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Face compared with the register.
    pub face_checked: bool,
    /// Fingerprints taken and compared.
    pub fingerprints_checked: bool,
}

/// How the level-1 face check went, kept on the account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaceCheckRecord {
    /// The verifier's name (e.g. `demo-hash-compare`).
    pub verifier: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A legal reason to lock an account (Decree 69/2024).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LockReason {
    /// The holder asked (or the guardian, for a minor).
    HolderRequest,
    /// Breach of the terms of use.
    TermsBreach,
    /// The card was revoked or is held; follows the register.
    CardRevokedOrHeld,
    /// The holder died; follows the register.
    Death,
    /// A competent authority asked, by a decision with a reference.
    AuthorityRequest,
}

impl LockReason {
    /// Whether the lock is set and lifted by the register alone.
    pub fn follows_register(self) -> bool {
        matches!(self, Self::CardRevokedOrHeld | Self::Death)
    }
}

/// Who acts on an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "actor", content = "id", rename_all = "snake_case")]
pub enum Actor {
    /// The holder.
    Holder,
    /// The holder's guardian.
    Guardian(PersonalId),
    /// An officer (officer ID).
    Officer(String),
    /// The register, through a change to the person's record.
    Register,
}

/// A lock in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    /// Why.
    pub reason: LockReason,
    /// Since when.
    pub since: DateTime<Utc>,
    /// Who set it.
    pub by: Actor,
    /// The authority's decision reference, for [`LockReason::AuthorityRequest`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_ref: Option<String>,
}

/// Whether an account may be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum AccountStatus {
    /// No lock in force.
    Active,
    /// At least one lock in force.
    Locked {
        /// The reasons, in the order the locks were set.
        reasons: Vec<LockReason>,
    },
}

/// An e-ID account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The person, by personal ID: the account's key.
    pub person: PersonalId,
    /// Current level.
    pub level: Level,
    /// Mobile number proved by a one-time code.
    pub phone: PhoneNumber,
    /// How the account is run.
    pub management: Management,
    /// The parent or guardian who asked, for a minor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guardian: Option<PersonalId>,
    /// The level-1 face check.
    pub face_check: FaceCheckRecord,
    /// The in-person check that raised the account to level 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level2: Option<InPersonCheck>,
    /// Locks in force; lifted locks leave this list (the usage history keeps them).
    #[serde(default)]
    pub locks: Vec<Lock>,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
}

/// Proof that the applicant controls a phone number, issued when a one-time code sent to it was
/// entered correctly (see [`crate::authn::otp`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhoneProof {
    /// The number the code went to.
    pub phone: PhoneNumber,
    /// When the code was verified.
    pub verified_at: DateTime<Utc>,
}

/// How long a phone proof stays good for a registration.
pub const PHONE_PROOF_LIFETIME: Duration = Duration::minutes(15);

/// A level-1 self-registration request (đăng ký tài khoản mức độ 1).
#[derive(Debug, Clone)]
pub struct Level1Request {
    /// Who asks.
    pub applicant: Applicant,
    /// The mobile number to bind.
    pub phone: PhoneNumber,
    /// Proof the applicant controls it.
    pub phone_proof: PhoneProof,
    /// The live capture of the person's face.
    pub face: FaceCapture,
}

/// What the register and the e-ID store hold that a registration depends on.
#[derive(Debug, Clone, Copy)]
pub struct RegistrationContext<'a> {
    /// The person's record.
    pub person: &'a Person,
    /// The register's face reference, if any.
    pub face_reference: Option<&'a FaceReference>,
    /// The person's existing account, if any.
    pub existing: Option<&'a Account>,
    /// The guardian's own account, when a guardian applies.
    pub guardian_account: Option<&'a Account>,
}

impl Account {
    /// Decides a level-1 registration and builds the new account.
    ///
    /// Refuses when the person is dead, already has an account, fails the age rules, when the
    /// phone proof is for another number or stale, when a guardian's ground or own account does
    /// not hold up, and whenever the face verifier does not answer [`FaceOutcome::Match`].
    pub fn register_level1(
        ctx: RegistrationContext<'_>,
        request: &Level1Request,
        verifier: &dyn FaceVerifier,
        now: DateTime<Utc>,
    ) -> Result<Self, AccountError> {
        let person = ctx.person;
        if person.is_dead() {
            return Err(AccountError::PersonDeceased);
        }
        if ctx.existing.is_some() {
            return Err(AccountError::AlreadyRegistered);
        }
        let today = vietnam_date(now);
        let card = card_state(person, today);
        let management = check_eligibility(
            &person.date_of_birth,
            today,
            card,
            Level::One,
            &request.applicant,
        )?;
        let guardian = check_guardian(person, &request.applicant, ctx.guardian_account)?;
        let proof = &request.phone_proof;
        if proof.phone != request.phone {
            return Err(AccountError::PhoneNotProven);
        }
        if proof.verified_at > now || now - proof.verified_at > PHONE_PROOF_LIFETIME {
            return Err(AccountError::PhoneProofStale);
        }
        match verifier.verify(&person.id, ctx.face_reference, &request.face) {
            FaceOutcome::Match { .. } => {}
            FaceOutcome::NoMatch => return Err(AccountError::FaceMismatch),
            FaceOutcome::NoReference => return Err(AccountError::FaceReferenceMissing),
            FaceOutcome::Unavailable { .. } => return Err(AccountError::FaceCheckUnavailable),
        }
        Ok(Self {
            person: person.id,
            level: Level::One,
            phone: request.phone.clone(),
            management,
            guardian,
            face_check: FaceCheckRecord {
                verifier: verifier.name().to_owned(),
                at: now,
            },
            level2: None,
            locks: Vec::new(),
            created_at: now,
        })
    }

    /// Raises the account to level 2 after an officer's in-person check
    /// (nâng mức độ 2 tại cơ quan công an).
    pub fn raise_to_level2(
        &mut self,
        person: &Person,
        applicant: &Applicant,
        check: InPersonCheck,
        now: DateTime<Utc>,
    ) -> Result<(), AccountError> {
        if person.id != self.person {
            return Err(AccountError::WrongPerson);
        }
        if person.is_dead() {
            return Err(AccountError::PersonDeceased);
        }
        self.ensure_unlocked()?;
        if self.level == Level::Two {
            return Err(AccountError::AlreadyLevel2);
        }
        let today = vietnam_date(now);
        check_eligibility(
            &person.date_of_birth,
            today,
            card_state(person, today),
            Level::Two,
            applicant,
        )?;
        if let Applicant::Guardian { id, .. } = applicant
            && self.guardian.as_ref() != Some(id)
        {
            return Err(AccountError::NotTheGuardian);
        }
        let blank = |s: &str| s.trim().is_empty() || s.len() > 200;
        if blank(&check.officer) || blank(&check.place) {
            return Err(AccountError::InPersonCheckIncomplete);
        }
        if !(check.face_checked && check.fingerprints_checked) {
            return Err(AccountError::InPersonCheckIncomplete);
        }
        if check.at > now + Duration::minutes(5) || now - check.at > Duration::days(30) {
            return Err(AccountError::InPersonCheckStale);
        }
        self.level = Level::Two;
        self.level2 = Some(check);
        Ok(())
    }

    /// Whether any lock is in force.
    pub fn status(&self) -> AccountStatus {
        if self.locks.is_empty() {
            AccountStatus::Active
        } else {
            AccountStatus::Locked {
                reasons: self.locks.iter().map(|l| l.reason).collect(),
            }
        }
    }

    /// Refuses when the account is locked.
    pub fn ensure_unlocked(&self) -> Result<(), AccountError> {
        if self.locks.is_empty() {
            Ok(())
        } else {
            Err(AccountError::Locked)
        }
    }

    /// Whether the holder may log in themself now (not locked, not managed by a guardian).
    pub fn holder_may_authenticate(&self) -> Result<(), AccountError> {
        self.ensure_unlocked()?;
        if self.management == Management::Guardian {
            return Err(AccountError::ManagedByGuardian);
        }
        Ok(())
    }

    /// Whether `actor` may act for the holder as their guardian now: they must be the recorded
    /// guardian and the holder under 14. Tokens issued so carry an `act` claim.
    pub fn guardian_may_act(
        &self,
        actor: &PersonalId,
        holder_dob: &PartialDate,
        today: NaiveDate,
    ) -> Result<(), AccountError> {
        self.ensure_unlocked()?;
        let minor = matches!(
            age_band(holder_dob, today),
            Some(AgeBand::UnderSix | AgeBand::SixToThirteen)
        );
        if self.guardian.as_ref() == Some(actor) && minor {
            Ok(())
        } else {
            Err(AccountError::NotTheGuardian)
        }
    }

    /// Sets a lock. Register-following reasons are set only by [`Account::follow_register`];
    /// an authority's lock needs its decision reference. Setting a lock already in force (same
    /// reason and reference) changes nothing and returns `false`.
    pub fn lock(
        &mut self,
        reason: LockReason,
        by: Actor,
        decision_ref: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool, AccountError> {
        let allowed = match reason {
            LockReason::HolderRequest => match &by {
                Actor::Holder | Actor::Officer(_) => true,
                Actor::Guardian(g) => self.guardian.as_ref() == Some(g),
                Actor::Register => false,
            },
            LockReason::TermsBreach | LockReason::AuthorityRequest => {
                matches!(by, Actor::Officer(_))
            }
            LockReason::CardRevokedOrHeld | LockReason::Death => matches!(by, Actor::Register),
        };
        if !allowed {
            return Err(if reason.follows_register() {
                AccountError::FollowsRegister
            } else {
                AccountError::NotAllowed
            });
        }
        let decision_ref = if reason == LockReason::AuthorityRequest {
            Some(valid_decision_ref(decision_ref)?)
        } else {
            None
        };
        if self
            .locks
            .iter()
            .any(|l| l.reason == reason && l.decision_ref == decision_ref)
        {
            return Ok(false);
        }
        self.locks.push(Lock {
            reason,
            since: now,
            by,
            decision_ref,
        });
        Ok(true)
    }

    /// Lifts the lock(s) set for `reason`, returning them.
    ///
    /// - the holder's own lock: lifted at once on the holder's (or guardian's, or an officer's
    ///   at the holder's request) request;
    /// - terms breach: by an officer;
    /// - authority request: by an officer recording the authority's unlock decision, whose
    ///   reference is required; lifts the locks of every authority decision;
    /// - death, card revoked: never by hand, only when the register says the reason ended.
    pub fn unlock(
        &mut self,
        reason: LockReason,
        by: &Actor,
        decision_ref: Option<&str>,
    ) -> Result<Vec<Lock>, AccountError> {
        if !self.locks.iter().any(|l| l.reason == reason) {
            return Err(AccountError::NotLocked);
        }
        let allowed = match reason {
            LockReason::HolderRequest => match by {
                Actor::Holder | Actor::Officer(_) => true,
                Actor::Guardian(g) => self.guardian.as_ref() == Some(g),
                Actor::Register => false,
            },
            LockReason::TermsBreach => matches!(by, Actor::Officer(_)),
            LockReason::AuthorityRequest => {
                if !matches!(by, Actor::Officer(_)) {
                    return Err(AccountError::NotAllowed);
                }
                valid_decision_ref(decision_ref)?;
                true
            }
            LockReason::CardRevokedOrHeld | LockReason::Death => {
                return Err(AccountError::FollowsRegister);
            }
        };
        if !allowed {
            return Err(AccountError::NotAllowed);
        }
        let (lifted, kept) = self.locks.drain(..).partition(|l| l.reason == reason);
        self.locks = kept;
        Ok(lifted)
    }

    /// Brings the register-following locks in line with the person's record: locks for death
    /// and a revoked card are set when the record shows them and lifted when it no longer does
    /// (e.g. a corrected record, a card given back). Returns what changed.
    pub fn follow_register(&mut self, person: &Person, now: DateTime<Utc>) -> RegisterSync {
        let wanted = register_lock_reasons(person, vietnam_date(now));
        let mut sync = RegisterSync::default();
        for reason in [LockReason::Death, LockReason::CardRevokedOrHeld] {
            let has = self.locks.iter().any(|l| l.reason == reason);
            let want = wanted.contains(&reason);
            if want && !has {
                self.locks.push(Lock {
                    reason,
                    since: now,
                    by: Actor::Register,
                    decision_ref: None,
                });
                sync.locked.push(reason);
            } else if has && !want {
                self.locks.retain(|l| l.reason != reason);
                sync.unlocked.push(reason);
            }
        }
        sync
    }
}

/// What [`Account::follow_register`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterSync {
    /// Locks set.
    pub locked: Vec<LockReason>,
    /// Locks lifted.
    pub unlocked: Vec<LockReason>,
}

/// The locks the register calls for: death when a death is registered, card revoked or held
/// when the newest card is.
pub fn register_lock_reasons(person: &Person, today: NaiveDate) -> Vec<LockReason> {
    let mut out = Vec::new();
    if person.is_dead() {
        out.push(LockReason::Death);
    }
    if card_state(person, today) == CardState::Revoked {
        out.push(LockReason::CardRevokedOrHeld);
    }
    out
}

fn valid_decision_ref(r: Option<&str>) -> Result<String, AccountError> {
    match r.map(str::trim) {
        Some(r) if !r.is_empty() && r.len() <= 200 => Ok(r.to_owned()),
        _ => Err(AccountError::DecisionRefRequired),
    }
}

fn check_guardian(
    child: &Person,
    applicant: &Applicant,
    guardian_account: Option<&Account>,
) -> Result<Option<PersonalId>, AccountError> {
    let Applicant::Guardian { id, basis } = applicant else {
        return Ok(None);
    };
    if *id == child.id {
        return Err(AccountError::NotTheGuardian);
    }
    let grounded = match basis {
        GuardianBasis::RecordedParent => [&child.father, &child.mother]
            .into_iter()
            .flatten()
            .any(|r| r.id.as_ref() == Some(id)),
        GuardianBasis::Appointed { reference } => {
            !reference.trim().is_empty() && reference.len() <= 200
        }
    };
    if !grounded {
        return Err(AccountError::NotTheGuardian);
    }
    match guardian_account {
        Some(acc) if acc.person == *id && acc.level == Level::Two && acc.locks.is_empty() => {
            Ok(Some(*id))
        }
        _ => Err(AccountError::GuardianAccountRequired),
    }
}

/// Why an account operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    /// The date of birth lies in the future.
    #[error("the date of birth lies in the future")]
    NotBorn,
    /// A guardian applied for a person of 14 or over.
    #[error("a person of 14 or over applies for their own account")]
    GuardianNotApplicable,
    /// A child under 14 applied without a guardian.
    #[error("a child under 14 gets an account only on a parent's or guardian's request")]
    GuardianRequestRequired,
    /// Level 2 asked for a child under 6.
    #[error("a child under 6 can hold only a level-1 account")]
    Level2UnderSix,
    /// No card recorded for a person of 14 or over.
    #[error("a person of 14 or over needs a valid ID card")]
    CardRequired,
    /// The card expired.
    #[error("the ID card has expired; renew it first")]
    CardExpired,
    /// The card is revoked or held.
    #[error("the ID card is revoked or held")]
    CardRevoked,
    /// A death is registered.
    #[error("a death is registered for this person")]
    PersonDeceased,
    /// An account exists already.
    #[error("this person already has an e-ID account")]
    AlreadyRegistered,
    /// The phone proof is for another number.
    #[error("the phone number was not proved with a one-time code")]
    PhoneNotProven,
    /// The phone proof is too old.
    #[error("the phone proof has expired; request a new code")]
    PhoneProofStale,
    /// The face does not match.
    #[error("the face does not match the register's reference")]
    FaceMismatch,
    /// No face reference in the register.
    #[error("the register holds no face reference; register in person")]
    FaceReferenceMissing,
    /// The face check could not be done.
    #[error("the face check is unavailable; try again later")]
    FaceCheckUnavailable,
    /// The applicant is not the child's parent or guardian.
    #[error("the applicant is not this person's parent or guardian")]
    NotTheGuardian,
    /// The guardian lacks an active level-2 account.
    #[error("the guardian needs an active level-2 account of their own")]
    GuardianAccountRequired,
    /// The record is for another person.
    #[error("the record is for another person")]
    WrongPerson,
    /// The account is level 2 already.
    #[error("the account is already at level 2")]
    AlreadyLevel2,
    /// The in-person check lacks officer, place, face or fingerprints.
    #[error("the in-person check must record officer, place, face and fingerprints")]
    InPersonCheckIncomplete,
    /// The in-person check is dated in the future or too long ago.
    #[error("the in-person check is dated in the future or more than 30 days ago")]
    InPersonCheckStale,
    /// The account is locked.
    #[error("the account is locked")]
    Locked,
    /// The holder of a guardian-managed account tried to log in.
    #[error("this account is managed by the parent or guardian")]
    ManagedByGuardian,
    /// This actor may not set or lift this lock.
    #[error("not allowed to set or lift this lock")]
    NotAllowed,
    /// Death and card locks follow the register only.
    #[error("this lock follows the register and is lifted only when the register changes")]
    FollowsRegister,
    /// An authority's lock or unlock without its decision reference.
    #[error("an authority's lock or unlock needs the decision reference")]
    DecisionRefRequired,
    /// No lock for that reason.
    #[error("no lock for that reason is in force")]
    NotLocked,
}

impl Problem for AccountError {
    fn code(&self) -> &'static str {
        match self {
            Self::NotBorn => "eid_not_born",
            Self::GuardianNotApplicable => "eid_guardian_not_applicable",
            Self::GuardianRequestRequired => "eid_guardian_request_required",
            Self::Level2UnderSix => "eid_level2_under_6",
            Self::CardRequired => "eid_card_required",
            Self::CardExpired => "eid_card_expired",
            Self::CardRevoked => "eid_card_revoked",
            Self::PersonDeceased => "eid_person_deceased",
            Self::AlreadyRegistered => "eid_already_registered",
            Self::PhoneNotProven => "eid_phone_not_proven",
            Self::PhoneProofStale => "eid_phone_proof_stale",
            Self::FaceMismatch => "eid_face_mismatch",
            Self::FaceReferenceMissing => "eid_face_reference_missing",
            Self::FaceCheckUnavailable => "eid_face_check_unavailable",
            Self::NotTheGuardian => "eid_not_the_guardian",
            Self::GuardianAccountRequired => "eid_guardian_account_required",
            Self::WrongPerson => "eid_wrong_person",
            Self::AlreadyLevel2 => "eid_already_level2",
            Self::InPersonCheckIncomplete => "eid_in_person_check_incomplete",
            Self::InPersonCheckStale => "eid_in_person_check_stale",
            Self::Locked => "eid_account_locked",
            Self::ManagedByGuardian => "eid_managed_by_guardian",
            Self::NotAllowed => "eid_lock_not_allowed",
            Self::FollowsRegister => "eid_lock_follows_register",
            Self::DecisionRefRequired => "eid_decision_ref_required",
            Self::NotLocked => "eid_not_locked",
        }
    }

    fn message_vi(&self) -> String {
        match self {
            Self::NotBorn => "Ngày sinh ở trong tương lai",
            Self::GuardianNotApplicable => "Công dân từ đủ 14 tuổi tự đăng ký tài khoản của mình",
            Self::GuardianRequestRequired => {
                "Trẻ em dưới 14 tuổi chỉ được cấp tài khoản theo đề nghị của cha, mẹ hoặc người giám hộ"
            }
            Self::Level2UnderSix => "Trẻ em dưới 6 tuổi chỉ được cấp tài khoản mức độ 1",
            Self::CardRequired => "Công dân từ đủ 14 tuổi cần có thẻ căn cước còn hiệu lực",
            Self::CardExpired => "Thẻ căn cước đã hết hạn; vui lòng làm thủ tục cấp đổi",
            Self::CardRevoked => "Thẻ căn cước đã bị thu hồi hoặc tạm giữ",
            Self::PersonDeceased => "Công dân đã được đăng ký khai tử",
            Self::AlreadyRegistered => "Công dân đã có tài khoản định danh điện tử",
            Self::PhoneNotProven => "Số điện thoại chưa được xác thực bằng mã OTP",
            Self::PhoneProofStale => "Xác thực số điện thoại đã hết hạn; vui lòng lấy mã mới",
            Self::FaceMismatch => "Khuôn mặt không khớp với ảnh trong cơ sở dữ liệu",
            Self::FaceReferenceMissing => {
                "Cơ sở dữ liệu chưa có ảnh chân dung; vui lòng đăng ký trực tiếp tại cơ quan công an"
            }
            Self::FaceCheckUnavailable => "Chưa thể đối chiếu khuôn mặt; vui lòng thử lại sau",
            Self::NotTheGuardian => "Người đề nghị không phải cha, mẹ hoặc người giám hộ",
            Self::GuardianAccountRequired => {
                "Cha, mẹ hoặc người giám hộ cần có tài khoản mức độ 2 đang hoạt động"
            }
            Self::WrongPerson => "Hồ sơ không phải của công dân này",
            Self::AlreadyLevel2 => "Tài khoản đã ở mức độ 2",
            Self::InPersonCheckIncomplete => {
                "Cần ghi nhận cán bộ, địa điểm, đối chiếu khuôn mặt và vân tay"
            }
            Self::InPersonCheckStale => "Thời điểm kiểm tra trực tiếp không hợp lệ",
            Self::Locked => "Tài khoản đang bị khóa",
            Self::ManagedByGuardian => "Tài khoản do cha, mẹ hoặc người giám hộ quản lý",
            Self::NotAllowed => "Không được phép khóa hoặc mở khóa vì lý do này",
            Self::FollowsRegister => {
                "Khóa này theo dữ liệu dân cư và chỉ được mở khi dữ liệu thay đổi"
            }
            Self::DecisionRefRequired => "Cần số quyết định của cơ quan có thẩm quyền",
            Self::NotLocked => "Tài khoản không bị khóa vì lý do này",
        }
        .to_owned()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::face::DemoFaceVerifier;
    use chrono::TimeZone;
    use dancu_domain::person::{CardKind, CardRecord, Relative, Sex, VitalStatus};

    pub(crate) fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 9, 1, 3, 0, 0).unwrap()
    }

    pub(crate) fn person(id: &str, dob: &str) -> Person {
        let json = serde_json::json!({
            "id": id,
            "version": 1,
            "name": {"family": "Nguyễn", "middle": "Văn", "given": "An"},
            "date_of_birth": dob,
            "sex": "male",
            "birth_registration": {
                "scheme": "legacy", "commune_code": "00004", "detail": "", "effective_from": "2000-01-01"
            },
            "ethnicity": "Kinh",
            "religion": "Không",
            "nationality": "VN",
        });
        let mut p: Person = match serde_json::from_value(json.clone()) {
            Ok(p) => p,
            Err(e) => panic!("fixture person: {e}: {json}"),
        };
        p.sex = Sex::Male;
        p
    }

    fn with_card(mut p: Person, status: CardStatus, expires: Option<&str>) -> Person {
        p.cards.push(CardRecord {
            number: p.id.as_str().to_owned(),
            kind: CardKind::CanCuoc,
            issued_on: NaiveDate::from_ymd_opt(2024, 7, 1).unwrap(),
            expires_on: expires.map(|e| NaiveDate::parse_from_str(e, "%Y-%m-%d").unwrap()),
            status,
        });
        p
    }

    pub(crate) fn adult() -> Person {
        with_card(
            person("001090000001", "1990-05-01"),
            CardStatus::Valid,
            Some("2030-05-01"),
        )
    }

    fn phone() -> PhoneNumber {
        PhoneNumber::parse("0912345678").unwrap()
    }

    pub(crate) fn request(applicant: Applicant) -> Level1Request {
        Level1Request {
            applicant,
            phone: phone(),
            phone_proof: PhoneProof {
                phone: phone(),
                verified_at: now() - Duration::minutes(2),
            },
            face: FaceCapture {
                image: b"face".to_vec(),
            },
        }
    }

    pub(crate) fn ctx<'a>(p: &'a Person, r: &'a FaceReference) -> RegistrationContext<'a> {
        RegistrationContext {
            person: p,
            face_reference: Some(r),
            existing: None,
            guardian_account: None,
        }
    }

    pub(crate) fn level1_account(p: &Person) -> Account {
        let r = DemoFaceVerifier::reference_for(b"face");
        Account::register_level1(
            ctx(p, &r),
            &request(Applicant::Holder),
            &DemoFaceVerifier,
            now(),
        )
        .unwrap()
    }

    pub(crate) fn check() -> InPersonCheck {
        InPersonCheck {
            officer: "CA-0001".into(),
            place: "Công an phường Ba Đình".into(),
            at: now() - Duration::hours(1),
            face_checked: true,
            fingerprints_checked: true,
        }
    }

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn age_bands_at_the_birthdays() {
        let dob = PartialDate::parse("2011-09-01").unwrap();
        assert_eq!(
            age_band(&dob, d("2025-08-31")),
            Some(AgeBand::SixToThirteen)
        );
        assert_eq!(age_band(&dob, d("2025-09-01")), Some(AgeBand::FourteenPlus));
        let dob = PartialDate::parse("2019-09-01").unwrap();
        assert_eq!(age_band(&dob, d("2025-08-31")), Some(AgeBand::UnderSix));
        assert_eq!(
            age_band(&dob, d("2025-09-01")),
            Some(AgeBand::SixToThirteen)
        );
        // Year only: counted from 31 December, never older than possible.
        let dob = PartialDate::parse("2011").unwrap();
        assert_eq!(
            age_band(&dob, d("2025-12-30")),
            Some(AgeBand::SixToThirteen)
        );
        assert_eq!(age_band(&dob, d("2025-12-31")), Some(AgeBand::FourteenPlus));
        assert_eq!(age_band(&dob, d("2010-01-01")), None);
    }

    #[test]
    fn age_rules() {
        let today = d("2025-09-01");
        let g = Applicant::Guardian {
            id: PersonalId::parse("001090000001").unwrap(),
            basis: GuardianBasis::RecordedParent,
        };
        let adult = PartialDate::parse("1990").unwrap();
        let child = PartialDate::parse("2015-01-01").unwrap();
        let infant = PartialDate::parse("2022-01-01").unwrap();
        for level in [Level::One, Level::Two] {
            assert_eq!(
                check_eligibility(&adult, today, CardState::Valid, level, &Applicant::Holder),
                Ok(Management::Holder)
            );
            assert_eq!(
                check_eligibility(&child, today, CardState::None, level, &g),
                Ok(Management::HolderWithGuardian)
            );
            assert_eq!(
                check_eligibility(&child, today, CardState::None, level, &Applicant::Holder),
                Err(AccountError::GuardianRequestRequired)
            );
        }
        let cases = [
            (CardState::None, AccountError::CardRequired),
            (CardState::Expired, AccountError::CardExpired),
            (CardState::Revoked, AccountError::CardRevoked),
        ];
        for (card, err) in cases {
            assert_eq!(
                check_eligibility(&adult, today, card, Level::One, &Applicant::Holder),
                Err(err)
            );
        }
        assert_eq!(
            check_eligibility(&adult, today, CardState::Valid, Level::One, &g),
            Err(AccountError::GuardianNotApplicable)
        );
        assert_eq!(
            check_eligibility(&infant, today, CardState::None, Level::One, &g),
            Ok(Management::Guardian)
        );
        assert_eq!(
            check_eligibility(&infant, today, CardState::None, Level::Two, &g),
            Err(AccountError::Level2UnderSix)
        );
        assert_eq!(
            check_eligibility(
                &infant,
                today,
                CardState::None,
                Level::One,
                &Applicant::Holder
            ),
            Err(AccountError::GuardianRequestRequired)
        );
    }

    #[test]
    fn every_error_has_both_messages_and_a_prefixed_code() {
        let all = [
            AccountError::NotBorn,
            AccountError::Level2UnderSix,
            AccountError::FollowsRegister,
            AccountError::DecisionRefRequired,
            AccountError::FaceMismatch,
        ];
        for e in all {
            assert!(e.code().starts_with("eid_"));
            assert!(!e.message_vi().is_empty() && !e.message_en().is_empty());
        }
    }

    #[test]
    fn level1_registration_happy_path() {
        let p = adult();
        let a = level1_account(&p);
        assert_eq!(a.level, Level::One);
        assert_eq!(a.face_check.verifier, "demo-hash-compare");
        assert_eq!(a.status(), AccountStatus::Active);
        assert!(a.holder_may_authenticate().is_ok());
    }

    #[test]
    fn level1_refusals() {
        let p = adult();
        let r = DemoFaceVerifier::reference_for(b"face");
        let v = DemoFaceVerifier;
        // Wrong face.
        let mut req = request(Applicant::Holder);
        req.face.image = b"other".to_vec();
        assert_eq!(
            Account::register_level1(ctx(&p, &r), &req, &v, now()),
            Err(AccountError::FaceMismatch)
        );
        // No reference.
        let mut c = ctx(&p, &r);
        c.face_reference = None;
        assert_eq!(
            Account::register_level1(c, &request(Applicant::Holder), &v, now()),
            Err(AccountError::FaceReferenceMissing)
        );
        // Phone proof for another number, and a stale one.
        let mut req = request(Applicant::Holder);
        req.phone_proof.phone = PhoneNumber::parse("0987654321").unwrap();
        assert_eq!(
            Account::register_level1(ctx(&p, &r), &req, &v, now()),
            Err(AccountError::PhoneNotProven)
        );
        let mut req = request(Applicant::Holder);
        req.phone_proof.verified_at = now() - Duration::minutes(16);
        assert_eq!(
            Account::register_level1(ctx(&p, &r), &req, &v, now()),
            Err(AccountError::PhoneProofStale)
        );
        // One account per person.
        let existing = level1_account(&p);
        let mut c = ctx(&p, &r);
        c.existing = Some(&existing);
        assert_eq!(
            Account::register_level1(c, &request(Applicant::Holder), &v, now()),
            Err(AccountError::AlreadyRegistered)
        );
        // Dead.
        let mut dead = adult();
        dead.vital_status = VitalStatus::Dead {
            date_of_death: PartialDate::parse("2025-01-01").unwrap(),
        };
        assert_eq!(
            Account::register_level1(ctx(&dead, &r), &request(Applicant::Holder), &v, now()),
            Err(AccountError::PersonDeceased)
        );
    }

    fn child_of(parent: &Person, id: &str, dob: &str) -> Person {
        let mut c = person(id, dob);
        c.father = Some(Relative {
            id: Some(parent.id),
            name: "Nguyễn Văn An".into(),
        });
        c
    }

    #[test]
    fn guardian_registers_an_infant_and_acts_for_them() {
        let parent = adult();
        let mut parent_acc = level1_account(&parent);
        parent_acc
            .raise_to_level2(&parent, &Applicant::Holder, check(), now())
            .unwrap();
        let infant = child_of(&parent, "001222000002", "2022-03-04");
        let r = DemoFaceVerifier::reference_for(b"face");
        let g = Applicant::Guardian {
            id: parent.id,
            basis: GuardianBasis::RecordedParent,
        };
        let mut c = ctx(&infant, &r);
        // Without the guardian's own level-2 account: refused.
        assert_eq!(
            Account::register_level1(c, &request(g.clone()), &DemoFaceVerifier, now()),
            Err(AccountError::GuardianAccountRequired)
        );
        c.guardian_account = Some(&parent_acc);
        let acc =
            Account::register_level1(c, &request(g.clone()), &DemoFaceVerifier, now()).unwrap();
        assert_eq!(acc.management, Management::Guardian);
        assert_eq!(acc.guardian.as_ref(), Some(&parent.id));
        assert_eq!(
            acc.holder_may_authenticate(),
            Err(AccountError::ManagedByGuardian)
        );
        let today = vietnam_date(now());
        assert!(
            acc.guardian_may_act(&parent.id, &infant.date_of_birth, today)
                .is_ok()
        );
        let stranger = PersonalId::parse("001090000009").unwrap();
        assert_eq!(
            acc.guardian_may_act(&stranger, &infant.date_of_birth, today),
            Err(AccountError::NotTheGuardian)
        );
        // At 14 the guardian's authority ends.
        assert_eq!(
            acc.guardian_may_act(&parent.id, &infant.date_of_birth, d("2036-03-04")),
            Err(AccountError::NotTheGuardian)
        );
        // Level 2 refused under 6.
        let mut acc2 = acc.clone();
        assert_eq!(
            acc2.raise_to_level2(&infant, &g, check(), now()),
            Err(AccountError::Level2UnderSix)
        );
        // Someone who is not a recorded parent.
        let not_parent = Applicant::Guardian {
            id: stranger,
            basis: GuardianBasis::RecordedParent,
        };
        assert_eq!(
            Account::register_level1(c, &request(not_parent), &DemoFaceVerifier, now()),
            Err(AccountError::NotTheGuardian)
        );
    }

    #[test]
    fn child_of_ten_gets_level2_on_guardian_request() {
        let parent = adult();
        let mut parent_acc = level1_account(&parent);
        parent_acc
            .raise_to_level2(&parent, &Applicant::Holder, check(), now())
            .unwrap();
        let child = child_of(&parent, "001215000003", "2015-06-01");
        let r = DemoFaceVerifier::reference_for(b"face");
        let g = Applicant::Guardian {
            id: parent.id,
            basis: GuardianBasis::RecordedParent,
        };
        let mut c = ctx(&child, &r);
        c.guardian_account = Some(&parent_acc);
        let mut acc =
            Account::register_level1(c, &request(g.clone()), &DemoFaceVerifier, now()).unwrap();
        assert_eq!(acc.management, Management::HolderWithGuardian);
        assert_eq!(
            acc.raise_to_level2(&child, &Applicant::Holder, check(), now()),
            Err(AccountError::GuardianRequestRequired)
        );
        acc.raise_to_level2(&child, &g, check(), now()).unwrap();
        assert_eq!(acc.level, Level::Two);
    }

    #[test]
    fn level2_raise_records_the_in_person_check() {
        let p = adult();
        let mut a = level1_account(&p);
        let mut incomplete = check();
        incomplete.fingerprints_checked = false;
        assert_eq!(
            a.raise_to_level2(&p, &Applicant::Holder, incomplete, now()),
            Err(AccountError::InPersonCheckIncomplete)
        );
        let mut blank = check();
        blank.officer = "  ".into();
        assert_eq!(
            a.raise_to_level2(&p, &Applicant::Holder, blank, now()),
            Err(AccountError::InPersonCheckIncomplete)
        );
        let mut future = check();
        future.at = now() + Duration::hours(1);
        assert_eq!(
            a.raise_to_level2(&p, &Applicant::Holder, future, now()),
            Err(AccountError::InPersonCheckStale)
        );
        a.raise_to_level2(&p, &Applicant::Holder, check(), now())
            .unwrap();
        assert_eq!(a.level, Level::Two);
        assert_eq!(a.level2.as_ref().unwrap().officer, "CA-0001");
        assert_eq!(
            a.raise_to_level2(&p, &Applicant::Holder, check(), now()),
            Err(AccountError::AlreadyLevel2)
        );
    }

    #[test]
    fn holder_lock_and_immediate_unlock() {
        let p = adult();
        let mut a = level1_account(&p);
        assert!(
            a.lock(LockReason::HolderRequest, Actor::Holder, None, now())
                .unwrap()
        );
        assert!(
            !a.lock(LockReason::HolderRequest, Actor::Holder, None, now())
                .unwrap()
        );
        assert_eq!(a.holder_may_authenticate(), Err(AccountError::Locked));
        let lifted = a
            .unlock(LockReason::HolderRequest, &Actor::Holder, None)
            .unwrap();
        assert_eq!(lifted.len(), 1);
        assert_eq!(a.status(), AccountStatus::Active);
        assert_eq!(
            a.unlock(LockReason::HolderRequest, &Actor::Holder, None),
            Err(AccountError::NotLocked)
        );
    }

    #[test]
    fn authority_lock_needs_decision_reference() {
        let p = adult();
        let mut a = level1_account(&p);
        let officer = Actor::Officer("CA-0002".into());
        assert_eq!(
            a.lock(LockReason::AuthorityRequest, officer.clone(), None, now()),
            Err(AccountError::DecisionRefRequired)
        );
        assert_eq!(
            a.lock(
                LockReason::AuthorityRequest,
                Actor::Holder,
                Some("12/QĐ"),
                now()
            ),
            Err(AccountError::NotAllowed)
        );
        a.lock(
            LockReason::AuthorityRequest,
            officer.clone(),
            Some("12/QĐ-CA"),
            now(),
        )
        .unwrap();
        assert_eq!(a.locks[0].decision_ref.as_deref(), Some("12/QĐ-CA"));
        // The holder cannot lift it; an unlock needs the authority's decision too.
        assert_eq!(
            a.unlock(LockReason::AuthorityRequest, &Actor::Holder, None),
            Err(AccountError::NotAllowed)
        );
        assert_eq!(
            a.unlock(LockReason::AuthorityRequest, &officer, Some(" ")),
            Err(AccountError::DecisionRefRequired)
        );
        a.unlock(LockReason::AuthorityRequest, &officer, Some("15/QĐ-CA"))
            .unwrap();
        assert!(a.locks.is_empty());
    }

    #[test]
    fn locks_follow_the_register() {
        let mut p = adult();
        let mut a = level1_account(&p);
        // Nobody locks for death by hand.
        assert_eq!(
            a.lock(
                LockReason::Death,
                Actor::Officer("CA-1".into()),
                None,
                now()
            ),
            Err(AccountError::FollowsRegister)
        );
        assert_eq!(a.follow_register(&p, now()), RegisterSync::default());
        p.cards[0].status = CardStatus::Revoked;
        let sync = a.follow_register(&p, now());
        assert_eq!(sync.locked, vec![LockReason::CardRevokedOrHeld]);
        assert_eq!(
            a.unlock(LockReason::CardRevokedOrHeld, &Actor::Holder, None),
            Err(AccountError::FollowsRegister)
        );
        p.vital_status = VitalStatus::Dead {
            date_of_death: PartialDate::parse("2025-08-30").unwrap(),
        };
        let sync = a.follow_register(&p, now());
        assert_eq!(sync.locked, vec![LockReason::Death]);
        assert_eq!(a.holder_may_authenticate(), Err(AccountError::Locked));
        // A corrected record (death registered in error, card given back) lifts both.
        p.vital_status = VitalStatus::Alive;
        p.cards[0].status = CardStatus::Valid;
        let sync = a.follow_register(&p, now());
        assert_eq!(
            sync.unlocked,
            vec![LockReason::Death, LockReason::CardRevokedOrHeld]
        );
        assert_eq!(a.status(), AccountStatus::Active);
    }

    #[test]
    fn newest_card_decides_card_state() {
        let mut p = with_card(person("001090000001", "1990"), CardStatus::Revoked, None);
        p.cards[0].issued_on = d("2020-01-01");
        let p = with_card(p, CardStatus::Valid, Some("2040-01-01"));
        assert_eq!(card_state(&p, d("2025-01-01")), CardState::Valid);
        let expired = with_card(
            person("001090000001", "1990"),
            CardStatus::Valid,
            Some("2025-01-01"),
        );
        assert_eq!(card_state(&expired, d("2025-01-02")), CardState::Expired);
    }
}
