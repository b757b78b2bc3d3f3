//! Use-cases of the population register: the commands officers run (birth, residence, marriage,
//! death, corrections, cards, households) and the queries they make, each checked against the
//! officer's role and jurisdiction.
//!
//! A command reads the current records, lets the domain fold ([`dancu_domain::event::apply`])
//! decide the new state, and commits the events with their projections and the idempotent answer
//! in one store transaction, refusing a stale version instead of merging. Every read of a
//! person's data is written to the access log before the data is returned.
//!
//! This crate holds no SQL and no HTTP: it talks to [`dancu_store::Store`] and returns
//! [`RegistryError`]s that carry their problem code and status.

mod access;
pub mod commands;
mod error;
mod gather;
mod requests;

pub use access::{AccessLog, AccessReceipt, Logged};
pub use error::RegistryError;
pub use requests::{CorrectionRequest, RequestStatus};

use chrono::{DateTime, NaiveDate, Utc};
use commands::*;
use dancu_domain::admin::{AdminUnits, Scheme};
use dancu_domain::clock::Clock;
use dancu_domain::event::{
    EventMeta, Household, HouseholdChange, HouseholdMember, PersonChange, apply, apply_household,
    field_value,
};
use dancu_domain::officer::{Jurisdiction, Officer};
use dancu_domain::person::*;
use dancu_domain::{PartialDate, PersonalId};
use dancu_store::{
    AccessEntry, Append, Commit, IdempotentResponse, RecordedEvent, SearchQuery, Store, StoreError,
    StreamId,
};
use rand::{RngExt, SeedableRng};
use serde::Serialize;
use std::sync::{Arc, Mutex};

/// Result of a register use-case.
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// The answer to a command: the status and JSON body to send, the same on a replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// HTTP status (201 for creations, 200 otherwise).
    pub status: u16,
    /// JSON body: the record as it now stands.
    pub body: String,
    /// True when this is the stored answer to an earlier request with the same key.
    pub replayed: bool,
}

/// A client's idempotency key with the hash of the request it came with.
#[derive(Debug, Clone)]
pub struct Idempotency {
    /// Key from the `Idempotency-Key` header.
    pub key: String,
    /// SHA-256 of the request body (hex).
    pub request_hash: String,
}

impl Idempotency {
    /// A key for a request body.
    pub fn new(key: &str, body: &[u8]) -> Result<Self> {
        if key.is_empty() || key.len() > 200 || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(RegistryError::invalid_msg(
                "idempotency_key_invalid",
                "Idempotency-Key phải gồm 1–200 ký tự ASCII in được",
                "Idempotency-Key must be 1 to 200 printable ASCII characters",
            ));
        }
        Ok(Self {
            key: key.to_owned(),
            request_hash: sha256_hex(body),
        })
    }
}

/// SHA-256 of bytes, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Every command the register accepts.
// One command lives for the duration of one request; boxing the birth variant buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Command {
    /// Đăng ký khai sinh.
    RegisterBirth(RegisterBirth),
    /// Đăng ký thường trú.
    RegisterPermanentResidence(RegisterPermanentResidence),
    /// Đăng ký tạm trú.
    RegisterTemporaryResidence(RegisterTemporaryResidence),
    /// Khai báo tạm vắng.
    DeclareTemporaryAbsence(DeclareTemporaryAbsence),
    /// Thông báo lưu trú.
    NotifyStay(NotifyStay),
    /// Đăng ký kết hôn.
    RegisterMarriage(RegisterMarriage),
    /// Ly hôn.
    RegisterDivorce(RegisterDivorce),
    /// Đăng ký khai tử.
    RegisterDeath(RegisterDeath),
    /// Điều chỉnh thông tin.
    CorrectField(CorrectField),
    /// Link a CMND number.
    LinkCmnd(LinkCmnd),
    /// Record an issued card.
    RecordCard(RecordCard),
    /// Create a household.
    CreateHousehold(CreateHousehold),
    /// Add a household member.
    AddHouseholdMember(AddHouseholdMember),
    /// Change the household head.
    ChangeHouseholdHead(ChangeHouseholdHead),
    /// Split a household.
    SplitHousehold(SplitHousehold),
}

/// Search parameters for people.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
pub struct PersonSearch {
    /// Name, with or without diacritics, whole or its beginning.
    pub name: String,
    /// Birth year.
    #[serde(default)]
    pub birth_year: Option<i32>,
    /// Full or partial date of birth (its year is used by the index, the rest filters).
    #[serde(default)]
    pub date_of_birth: Option<PartialDate>,
    /// Home commune (2025 code).
    #[serde(default)]
    pub commune: Option<String>,
    /// Most results (default 20, at most 200).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// How a search matched and what it found.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SearchResult {
    /// The accent-free key that was searched.
    pub key: String,
    /// Whether names starting with the key were included (no whole-name match was found).
    pub prefix: bool,
    /// The people found, in name order.
    pub people: Vec<Person>,
}

/// The register's use-cases over a store.
#[derive(Debug)]
pub struct Registry {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    rng: Mutex<rand::rngs::StdRng>,
    access: AccessLog,
    /// Reader threads that answer concurrent single-record reads together, when the store
    /// gathers reads ([`dancu_store::Store::reads_gather`]).
    gather: Option<gather::Gatherer>,
}

fn outside(what: &str) -> RegistryError {
    RegistryError::forbidden(
        "outside_jurisdiction",
        format!("{what} nằm ngoài địa bàn quản lý của cán bộ"),
        format!("{what} is outside the officer's jurisdiction"),
    )
}

fn not_found_person(id: &PersonalId) -> RegistryError {
    RegistryError::NotFound {
        what: format!("person {id}"),
    }
}

/// The commune of an address in today's scheme, if it can be decided.
fn current_commune(addr: &dancu_domain::admin::Address) -> Option<String> {
    addr.current_commune_code()
}

impl Registry {
    /// A registry over a store, with a clock and a random seed (`None`: from the OS).
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, seed: Option<u64>) -> Self {
        let rng = match seed {
            Some(s) => rand::rngs::StdRng::seed_from_u64(s),
            None => rand::make_rng(),
        };
        let access = AccessLog::start(store.clone());
        let gather = if store.reads_gather() {
            gather::Gatherer::start(&store)
                .inspect_err(|e| tracing::warn!(error = %e, "reading one record at a time"))
                .ok()
        } else {
            None
        };
        Self {
            store,
            clock,
            rng: Mutex::new(rng),
            access,
            gather,
        }
    }

    /// The store underneath (for health checks and administration).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    fn today(&self) -> NaiveDate {
        self.clock.today()
    }

    fn meta(&self, officer: &Officer, basis: &Basis) -> Result<EventMeta> {
        let clean = |s: &Option<String>, what: &str| -> Result<Option<String>> {
            match s.as_deref().map(str::trim) {
                None | Some("") => Ok(None),
                Some(v) if v.chars().count() > 500 => Err(RegistryError::invalid_msg(
                    "basis_too_long",
                    format!("Trường {what} dài quá 500 ký tự"),
                    format!("{what} is longer than 500 characters"),
                )),
                Some(v) => Ok(Some(v.to_owned())),
            }
        };
        Ok(EventMeta {
            actor: officer.id.clone(),
            at: self.clock.now(),
            reason: clean(&basis.reason, "reason")?,
            legal_basis: clean(&basis.legal_basis, "legal_basis")?,
            document_ref: clean(&basis.document_ref, "document_ref")?,
        })
    }

    fn require_write(&self, officer: &Officer) -> Result<()> {
        if officer.role.can_write() {
            Ok(())
        } else {
            Err(RegistryError::forbidden(
                "role_cannot_write",
                "Vai trò của cán bộ không được phép thay đổi dữ liệu dân cư",
                "The officer's role may not change register data",
            ))
        }
    }

    fn require_covers(&self, officer: &Officer, commune: Option<&str>, what: &str) -> Result<()> {
        if officer.jurisdiction.covers(commune) {
            Ok(())
        } else {
            Err(outside(what))
        }
    }

    fn load(&self, id: &PersonalId) -> Result<Person> {
        self.store.person(id)?.ok_or_else(|| not_found_person(id))
    }

    fn load_version(&self, id: &PersonalId, expected: u64) -> Result<Person> {
        let p = self.load(id)?;
        if p.version != expected {
            return Err(RegistryError::StaleVersion {
                expected,
                actual: p.version,
            });
        }
        Ok(p)
    }

    fn load_household(&self, id: &str) -> Result<Household> {
        self.store
            .household(id)?
            .ok_or_else(|| RegistryError::NotFound {
                what: format!("household {id}"),
            })
    }

    fn check_address(&self, addr: &dancu_domain::admin::Address) -> Result<String> {
        addr.validate().map_err(|e| RegistryError::invalid(&e))?;
        current_commune(addr).ok_or_else(|| {
            RegistryError::invalid_msg(
                "address_ambiguous",
                "Địa chỉ thuộc xã cũ đã bị chia tách; hãy ghi địa chỉ theo đơn vị hành chính mới",
                "The address is in a former commune that was split; give it in the current scheme",
            )
        })
    }

    fn check_not_future(&self, d: NaiveDate, what: &str) -> Result<()> {
        if d > self.today() {
            return Err(RegistryError::invalid_msg(
                "date_in_future",
                format!("{what} ({d}) không được sau ngày hôm nay"),
                format!("{what} ({d}) cannot be after today"),
            ));
        }
        Ok(())
    }

    /// Runs a command for an officer, once per idempotency key.
    pub fn run(
        &self,
        officer: &Officer,
        idem: Option<&Idempotency>,
        cmd: Command,
    ) -> Result<Written> {
        if let Some(i) = idem
            && let Some(w) = self.replay(officer, i)?
        {
            return Ok(w);
        }
        self.require_write(officer)?;
        let (meta, appends, status) = match cmd {
            Command::RegisterBirth(c) => return self.register_birth(officer, idem, c),
            Command::RegisterPermanentResidence(c) => self.permanent_residence(officer, c)?,
            Command::RegisterTemporaryResidence(c) => self.temporary_residence(officer, c)?,
            Command::DeclareTemporaryAbsence(c) => self.temporary_absence(officer, c)?,
            Command::NotifyStay(c) => self.stay(officer, c)?,
            Command::RegisterMarriage(c) => self.marriage(officer, c)?,
            Command::RegisterDivorce(c) => self.divorce(officer, c)?,
            Command::RegisterDeath(c) => self.death(officer, c)?,
            Command::CorrectField(c) => self.correct(officer, c)?,
            Command::LinkCmnd(c) => self.link_cmnd(officer, c)?,
            Command::RecordCard(c) => self.record_card(officer, c)?,
            Command::CreateHousehold(c) => self.create_household(officer, c)?,
            Command::AddHouseholdMember(c) => self.add_member(officer, c)?,
            Command::ChangeHouseholdHead(c) => self.change_head(officer, c)?,
            Command::SplitHousehold(c) => self.split_household(officer, c)?,
        };
        self.finish(officer, idem, meta, appends, status)
    }

    fn replay(&self, officer: &Officer, i: &Idempotency) -> Result<Option<Written>> {
        match self.store.idempotent(&officer.id, &i.key)? {
            Some(r) if r.request_hash == i.request_hash => Ok(Some(Written {
                status: r.status,
                body: r.body,
                replayed: true,
            })),
            Some(_) => Err(RegistryError::IdempotencyMismatch),
            None => Ok(None),
        }
    }

    /// Commits and answers with the state of the first appended stream.
    fn finish(
        &self,
        officer: &Officer,
        idem: Option<&Idempotency>,
        meta: EventMeta,
        appends: Vec<Append>,
        status: u16,
    ) -> Result<Written> {
        // The answer is the final state of the first stream the command changed.
        let first = appends.first().map(Append::stream);
        let last_of_first = appends.iter().rev().find(|a| Some(a.stream()) == first);
        let body = match last_of_first {
            Some(Append::Person { state, .. }) => serde_json::to_string(state),
            Some(Append::Household { state, .. }) => serde_json::to_string(state),
            None => Ok("{}".to_owned()),
        }
        .map_err(|e| RegistryError::Store(StoreError::Backend(e.to_string())))?;
        let idempotency = idem.map(|i| IdempotentResponse {
            key: i.key.clone(),
            actor: officer.id.clone(),
            request_hash: i.request_hash.clone(),
            status,
            body: body.clone(),
        });
        match self.store.commit(&Commit {
            meta,
            appends,
            idempotency,
        }) {
            Ok(_) => Ok(Written {
                status,
                body,
                replayed: false,
            }),
            // A concurrent request with the same key won the race: answer as it did.
            Err(StoreError::IdempotencyMismatch) => {
                match idem.map(|i| self.replay(officer, i)).transpose()? {
                    Some(Some(w)) => Ok(w),
                    _ => Err(RegistryError::IdempotencyMismatch),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    fn register_birth(
        &self,
        officer: &Officer,
        idem: Option<&Idempotency>,
        c: RegisterBirth,
    ) -> Result<Written> {
        let commune = commune_2025(&c.registration_commune)?;
        self.require_covers(officer, Some(commune.code), "The registration commune")?;
        self.check_not_future(c.date_of_birth, "Ngày sinh / date of birth")?;
        let dob = PartialDate::Full(c.date_of_birth);
        dob.check_range(self.today())
            .map_err(|e| RegistryError::invalid(&e))?;
        for parent in [&c.father, &c.mother].into_iter().flatten() {
            if let Some(pid) = &parent.id {
                let p = self.store.person(pid)?.ok_or_else(|| {
                    RegistryError::invalid_msg(
                        "parent_not_found",
                        format!("Không có công dân số định danh {pid} (cha/mẹ) trong CSDL"),
                        format!("Parent {pid} is not in the register"),
                    )
                })?;
                if p.date_of_birth.earliest() >= c.date_of_birth {
                    return Err(RegistryError::invalid_msg(
                        "parent_younger_than_child",
                        format!("Cha/mẹ {pid} sinh sau người con"),
                        format!("Parent {pid} was born after the child"),
                    ));
                }
            }
        }
        let today = self.today();
        let registered_at =
            dancu_domain::admin::Address::new(Scheme::Y2025, commune.code, "", today)
                .map_err(|e| RegistryError::invalid(&e))?;
        if let Some(h) = &c.home_town {
            h.validate().map_err(|e| RegistryError::invalid(&e))?;
        }
        let residence_commune = c
            .permanent_residence
            .as_ref()
            .map(|a| self.check_address(a))
            .transpose()?;
        let household = match &c.household {
            Some(j) => Some(self.load_household(&j.household_id)?),
            None => None,
        };
        let text = |v: &Option<String>, default: &str| -> String {
            v.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .unwrap_or(default)
                .to_owned()
        };
        let place_code = format!("0{}", commune.province_code);
        let meta = self.meta(officer, &c.basis)?;
        // Draw random serials until one is free; the store refuses a taken number atomically, so
        // two concurrent births can never get the same ID.
        for _attempt in 0..32 {
            let serial = self
                .rng
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .random_range(0..1_000_000u32);
            let id = PersonalId::compose(&place_code, c.sex, dob.year(), serial)
                .map_err(|e| RegistryError::invalid(&e))?;
            let record = Person {
                id,
                version: 0,
                name: c.name.clone(),
                other_names: vec![],
                date_of_birth: dob,
                sex: c.sex,
                birth_registration: registered_at.clone(),
                home_town: c.home_town.clone(),
                ethnicity: text(&c.ethnicity, "Kinh"),
                religion: text(&c.religion, "Không"),
                nationality: text(&c.nationality, "VN"),
                marital_status: MaritalStatus::Single,
                blood_type: None,
                father: c.father.clone(),
                mother: c.mother.clone(),
                spouse: None,
                permanent_residence: None,
                temporary_residence: None,
                temporary_absence: None,
                last_stay: None,
                household: None,
                legacy_cmnd: vec![],
                cards: vec![],
                vital_status: VitalStatus::Alive,
            };
            let mut appends = Vec::new();
            let mut state = push_person(
                &mut appends,
                None,
                PersonChange::BirthRegistered {
                    record: Box::new(record),
                },
            )?;
            if let (Some(addr), Some(_)) = (&c.permanent_residence, &residence_commune) {
                let residence = Residence {
                    address: addr.clone(),
                    from: c.date_of_birth,
                    until: None,
                };
                state = push_person(
                    &mut appends,
                    Some(&state),
                    PersonChange::PermanentResidenceRegistered { residence },
                )?;
            }
            if let (Some(j), Some(h)) = (&c.household, &household) {
                join_household(&mut appends, &state, h, j.relationship)?;
            }
            match self.finish(officer, idem, meta.clone(), appends, 201) {
                Err(RegistryError::Store(StoreError::Exists(_))) => continue,
                other => return other,
            }
        }
        Err(RegistryError::Store(StoreError::Backend(
            "could not find a free ID number after 32 draws".into(),
        )))
    }

    fn person_for_write(
        &self,
        officer: &Officer,
        id: &PersonalId,
        expected: u64,
    ) -> Result<Person> {
        let p = self.load_version(id, expected)?;
        self.require_covers(officer, p.home_commune().as_deref(), "The person")?;
        Ok(p)
    }

    fn permanent_residence(
        &self,
        officer: &Officer,
        c: RegisterPermanentResidence,
    ) -> Result<(EventMeta, Vec<Append>, u16)> {
        let commune = self.check_address(&c.address)?;
        // The commune that receives the person registers the residence.
        self.require_covers(officer, Some(&commune), "The new residence")?;
        self.check_not_future(c.from, "Ngày đăng ký / start date")?;
        let p = self.load_version(&c.person, c.expected_version)?;
        let mut appends = Vec::new();
        let mut state = push_person(
            &mut appends,
            Some(&p),
            PersonChange::PermanentResidenceRegistered {
                residence: Residence {
                    address: c.address,
                    from: c.from,
                    until: None,
                },
            },
        )?;
        if let Some(j) = c.household {
            let h = self.load_household(&j.household_id)?;
            if let Some(old) = p.household.as_ref().filter(|m| m.household_id != h.id) {
                let old_h = self.load_household(&old.household_id)?;
                state = push_person(
                    &mut appends,
                    Some(&state),
                    PersonChange::HouseholdLeft {
                        household_id: old_h.id.clone(),
                    },
                )?;
                push_household(
                    &mut appends,
                    &old_h,
                    HouseholdChange::MemberRemoved { person: p.id },
                )?;
            }
            join_household(&mut appends, &state, &h, j.relationship)?;
        }
        Ok((self.meta(officer, &c.basis)?, appends, 200))
    }

    fn temporary_residence(
        &self,
        officer: &Officer,
        c: RegisterTemporaryResidence,
    ) -> Result<(EventMeta, Vec<Append>, u16)> {
        let commune = self.check_address(&c.address)?;
        self.require_covers(officer, Some(&commune), "The temporary residence")?;
        self.check_not_future(c.from, "Ngày bắt đầu / start date")?;
        let p = self.load_version(&c.person, c.expected_version)?;
        let residence = Residence {
            address: c.address,
            from: c.from,
            until: Some(c.until),
        };
        let mut appends = Vec::new();
        push_person(
            &mut appends,
            Some(&p),
            PersonChange::TemporaryResidenceRegistered { residence },
        )?;
        Ok((self.meta(officer, &c.basis)?, appends, 200))
    }

    fn temporary_absence(
        &self,
        officer: &Officer,
        c: DeclareTemporaryAbsence,
    ) -> Result<(EventMeta, Vec<Append>, u16)> {
        let p = self.person_for_write(officer, &c.person, c.expected_version)?;
        let absence = Absence {
            from: c.from,
            until: c.until,
            destination: bounded_text(&c.destination, "destination")?,
            reason: bounded_text(&c.absence_reason, "absence_reason")?,
        };
        let mut appends = Vec::new();
        push_person(
            &mut appends,
            Some(&p),
            PersonChange::TemporaryAbsenceDeclared { absence },
        )?;
        Ok((self.meta(officer, &c.basis)?, appends, 200))
    }

    fn stay(&self, officer: &Officer, c: NotifyStay) -> Result<(EventMeta, Vec<Append>, u16)> {
        let commune = self.check_address(&c.address)?;
        self.require_covers(officer, Some(&commune), "The place of stay")?;
        let p = self.load_version(&c.person, c.expected_version)?;
        let stay = Stay {
            address: c.address,
            from: c.from,
            until: c.until,
            host: bounded_text(&c.host, "host")?,
        };
        let mut appends = Vec::new();
        push_person(&mut appends, Some(&p), PersonChange::StayNotified { stay })?;
        Ok((self.meta(officer, &c.basis)?, appends, 200))
    }

    fn marriage(
        &self,
        officer: &Officer,
        c: RegisterMarriage,
    ) -> Result<(EventMeta, Vec<Append>, u16)> {
        if c.first.person == c.second.person {
            return Err(RegistryError::invalid_msg(
                "marriage_same_person",
                "Hai bên kết hôn là cùng một người",
                "Both parties are the same person",
            ));
        }
        self.check_not_future(c.on, "Ngày đăng ký kết hôn / marriage date")?;
        let a = self.load_version(&c.first.person, c.first.expected_version)?;
        let b = self.load_version(&c.second.person, c.second.expected_version)?;
        if !officer.jurisdiction.covers(a.home_commune().as_deref())
            && !officer.jurisdiction.covers(b.home_commune().as_deref())
        {
            return Err(outside("Both parties"));
        }
        for p in [&a, &b] {
            // Marriage age (Luật Hôn nhân và gia đình 2014, Điều 8): men from 20, women from 18.
            let min = if p.sex == Sex::Male { 20 } else { 18 };
            if p.date_of_birth.age_on(c.on) < min {
                return Err(RegistryError::invalid_msg(
                    "under_marriage_age",
                    format!("{} chưa đủ tuổi kết hôn ({min} tuổi)", p.id),
                    format!("{} is under the marriage age ({min})", p.id),
                ));
            }
        }
        let mut appends = Vec::new();
        let rel = |p: &Person| Relative {
            id: Some(p.id),
            name: p.name.full(),
        };
        push_person(
            &mut appends,
            Some(&a),
            PersonChange::MarriageRegistered {
                spouse: rel(&b),
                on: c.on,
            },
        )?;
        push_person(
            &mut appends,
            Some(&b),
            PersonChange::MarriageRegistered {
                spouse: rel(&a),
                on: c.on,
            },
        )?;
        Ok((self.meta(officer, &c.basis)?, appends, 200))
    }

    fn divorce(
        &self,
        officer: &Officer,
        c: RegisterDivorce,
    ) -> Result<(EventMeta, Vec<Append>, u16)> {
        let a = self.person_for_write(officer, &c.person.person, c.person.expected_version)?;
        let mut appends = Vec::new();
        push_person(
            &mut appends,
            Some(&a),
            PersonChange::DivorceRegistered { on: c.on },
        )?;
        if let Some(spouse_id) = a.spouse.as_ref().and_then(|s| s.id)
            && let Some(b) = self.store.person(&spouse_id)?
            && b.spouse.as_ref().and_then(|s| s.id) == Some(a.id)
        {
            push_person(
                &mut appends,
                Some(&b),
                PersonChange::DivorceRegistered { on: c.on },
            )?;
        }
        Ok((self.meta(officer, &c.basis)?, appends, 200))
    }

    fn death(&self, officer: &Officer, c: RegisterDeath) -> Result<(EventMeta, Vec<Append>, u16)> {
        let p = self.person_for_write(officer, &c.person, c.expected_version)?;
        c.date_of_death
            .check_range(self.today())
            .map_err(|e| RegistryError::invalid(&e))?;
        let mut appends = Vec::new();
        push_person(
            &mut appends,
            Some(&p),
            PersonChange::DeathRegistered {
                date_of_death: c.date_of_death,
            },
        )?;
        if let Some(spouse_id) = p.spouse.as_ref().and_then(|s| s.id)
            && let Some(b) = self.store.person(&spouse_id)?
            && !b.is_dead()
            && b.spouse.as_ref().and_then(|s| s.id) == Some(p.id)
        {
            push_person(
                &mut appends,
                Some(&b),
                PersonChange::SpouseDied {
                    on: c.date_of_death.latest(),
                },
            )?;
        }
        Ok((self.meta(officer, &c.basis)?, appends, 200))
    }

    fn correct(&self, officer: &Officer, c: CorrectField) -> Result<(EventMeta, Vec<Append>, u16)> {
        if !officer.role.can_correct() {
            return Err(RegistryError::forbidden(
                "role_cannot_correct",
                "Chỉ lãnh đạo (supervisor) được điều chỉnh thông tin đã ghi nhận",
                "Only a supervisor may correct recorded information",
            ));
        }
        if c.basis
            .reason
            .as_deref()
            .is_none_or(|s| s.trim().is_empty())
            || c.basis
                .legal_basis
                .as_deref()
                .is_none_or(|s| s.trim().is_empty())
        {
            return Err(RegistryError::invalid_msg(
                "correction_needs_basis",
                "Điều chỉnh thông tin phải ghi rõ lý do và căn cứ pháp lý",
                "A correction needs a reason and a legal basis",
            ));
        }
        let p = self.person_for_write(officer, &c.person, c.expected_version)?;
        let old = field_value(&p, c.field);
        let mut appends = Vec::new();
        push_person(
            &mut appends,
            Some(&p),
            PersonChange::FieldCorrected {
                field: c.field,
                old,
                new: c.value,
            },
        )?;
        Ok((self.meta(officer, &c.basis)?, appends, 200))
    }

    fn link_cmnd(&self, officer: &Officer, c: LinkCmnd) -> Result<(EventMeta, Vec<Append>, u16)> {
        let p = self.person_for_write(officer, &c.person, c.expected_version)?;
        let mut appends = Vec::new();
        push_person(
            &mut appends,
            Some(&p),
            PersonChange::LegacyCmndLinked {
                cmnd: LegacyCmnd {
                    number: c.cmnd,
                    issued_on: c.issued_on,
                },
            },
        )?;
        Ok((self.meta(officer, &c.basis)?, appends, 200))
    }

    fn record_card(
        &self,
        officer: &Officer,
        c: RecordCard,
    ) -> Result<(EventMeta, Vec<Append>, u16)> {
        let p = self.person_for_write(officer, &c.person, c.expected_version)?;
        if c.card.expires_on.is_some_and(|e| e <= c.card.issued_on) {
            return Err(RegistryError::invalid_msg(
                "card_dates",
                "Ngày hết hạn phải sau ngày cấp",
                "The expiry must be after the issue date",
            ));
        }
        let mut appends = Vec::new();
        push_person(
            &mut appends,
            Some(&p),
            PersonChange::CardIssued { card: c.card },
        )?;
        Ok((self.meta(officer, &c.basis)?, appends, 201))
    }

    fn new_household_id(&self) -> Result<String> {
        for _ in 0..32 {
            let n = self
                .rng
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .random_range(0..10_000_000_000u64);
            let id = format!("HGD{n:010}");
            if !self.store.household_exists(&id)? {
                return Ok(id);
            }
        }
        Err(RegistryError::Store(StoreError::Backend(
            "could not draw a free household number".into(),
        )))
    }

    fn create_household(
        &self,
        officer: &Officer,
        c: CreateHousehold,
    ) -> Result<(EventMeta, Vec<Append>, u16)> {
        let commune = self.check_address(&c.address)?;
        self.require_covers(officer, Some(&commune), "The household address")?;
        let head = self.load_version(&c.head.person, c.head.expected_version)?;
        if let Some(m) = &head.household {
            return Err(RegistryError::invalid_msg(
                "already_in_household",
                format!(
                    "Công dân đang thuộc hộ {}; hãy dùng thủ tục tách hộ",
                    m.household_id
                ),
                format!(
                    "The person already belongs to household {}; split it instead",
                    m.household_id
                ),
            ));
        }
        let id = self.new_household_id()?;
        let members = vec![HouseholdMember {
            person: head.id,
            relationship: Relationship::Head,
        }];
        let h = apply_household(
            &id,
            None,
            &HouseholdChange::Created {
                address: c.address.clone(),
                members: members.clone(),
            },
        )?;
        let mut appends = vec![Append::Household {
            expected: 0,
            change: HouseholdChange::Created {
                address: c.address,
                members,
            },
            state: h,
        }];
        push_person(
            &mut appends,
            Some(&head),
            PersonChange::HouseholdJoined {
                membership: Membership {
                    household_id: id,
                    relationship: Relationship::Head,
                },
            },
        )?;
        Ok((self.meta(officer, &c.basis)?, appends, 201))
    }

    fn household_for_write(&self, officer: &Officer, id: &str, expected: u64) -> Result<Household> {
        let h = self.load_household(id)?;
        if h.version != expected {
            return Err(RegistryError::StaleVersion {
                expected,
                actual: h.version,
            });
        }
        self.require_covers(
            officer,
            current_commune(&h.address).as_deref(),
            "The household",
        )?;
        Ok(h)
    }

    fn add_member(
        &self,
        officer: &Officer,
        c: AddHouseholdMember,
    ) -> Result<(EventMeta, Vec<Append>, u16)> {
        let h = self.household_for_write(officer, &c.household_id, c.expected_version)?;
        let p = self.load_version(&c.member.person, c.member.expected_version)?;
        if let Some(m) = &p.household {
            return Err(RegistryError::invalid_msg(
                "already_in_household",
                format!("Công dân đang thuộc hộ {}", m.household_id),
                format!("The person already belongs to household {}", m.household_id),
            ));
        }
        let mut appends = Vec::new();
        push_household(
            &mut appends,
            &h,
            HouseholdChange::MemberAdded {
                member: HouseholdMember {
                    person: p.id,
                    relationship: c.relationship,
                },
            },
        )?;
        push_person(
            &mut appends,
            Some(&p),
            PersonChange::HouseholdJoined {
                membership: Membership {
                    household_id: h.id.clone(),
                    relationship: c.relationship,
                },
            },
        )?;
        Ok((self.meta(officer, &c.basis)?, appends, 200))
    }

    fn change_head(
        &self,
        officer: &Officer,
        c: ChangeHouseholdHead,
    ) -> Result<(EventMeta, Vec<Append>, u16)> {
        let h = self.household_for_write(officer, &c.household_id, c.expected_version)?;
        let mut members = vec![HouseholdMember {
            person: c.new_head,
            relationship: Relationship::Head,
        }];
        members.extend(c.relationships.iter().map(|r| HouseholdMember {
            person: r.person,
            relationship: r.relationship,
        }));
        let mut appends = Vec::new();
        push_household(
            &mut appends,
            &h,
            HouseholdChange::HeadChanged {
                members: members.clone(),
            },
        )?;
        // Each member's record carries the new relationship.
        for m in &members {
            let p = self.load(&m.person)?;
            let changed = p.household.as_ref().map(|x| x.relationship) != Some(m.relationship);
            if changed {
                move_membership(&mut appends, &p, &h.id, &h.id, m.relationship)?;
            }
        }
        Ok((self.meta(officer, &c.basis)?, appends, 200))
    }

    fn split_household(
        &self,
        officer: &Officer,
        c: SplitHousehold,
    ) -> Result<(EventMeta, Vec<Append>, u16)> {
        let h = self.household_for_write(officer, &c.household_id, c.expected_version)?;
        let commune = self.check_address(&c.address)?;
        self.require_covers(officer, Some(&commune), "The new household address")?;
        if h.head() == Some(c.new_head) {
            return Err(RegistryError::invalid_msg(
                "split_head",
                "Chủ hộ hiện tại không thể là chủ hộ mới khi tách hộ",
                "The current head cannot head the split-off household",
            ));
        }
        let mut moving = vec![HouseholdMember {
            person: c.new_head,
            relationship: Relationship::Head,
        }];
        moving.extend(c.members.iter().map(|r| HouseholdMember {
            person: r.person,
            relationship: r.relationship,
        }));
        let new_id = self.new_household_id()?;
        let mut appends = Vec::new();
        let mut old = h.clone();
        for m in &moving {
            if !h.members.iter().any(|x| x.person == m.person) {
                return Err(RegistryError::invalid_msg(
                    "not_a_member",
                    format!("{} không thuộc hộ {}", m.person, h.id),
                    format!("{} is not a member of household {}", m.person, h.id),
                ));
            }
            old = push_household(
                &mut appends,
                &old,
                HouseholdChange::MemberRemoved { person: m.person },
            )?;
        }
        let created = HouseholdChange::Created {
            address: c.address.clone(),
            members: moving.clone(),
        };
        let state = apply_household(&new_id, None, &created)?;
        appends.push(Append::Household {
            expected: 0,
            change: created,
            state,
        });
        for m in &moving {
            let p = self.load(&m.person)?;
            move_membership(&mut appends, &p, &h.id, &new_id, m.relationship)?;
        }
        // Answer with the new household: put its creation first.
        let pos = appends
            .iter()
            .position(|a| matches!(a, Append::Household { expected: 0, .. }))
            .unwrap_or(0);
        let first = appends.remove(pos);
        appends.insert(0, first);
        Ok((self.meta(officer, &c.basis)?, appends, 201))
    }

    // ---- queries -------------------------------------------------------------------------

    fn check_purpose(purpose: &str) -> Result<String> {
        let p = purpose.trim();
        if p.is_empty() || p.chars().count() > 200 {
            return Err(RegistryError::invalid_msg(
                "purpose_required",
                "Phải nêu mục đích khai thác dữ liệu (1–200 ký tự, tiêu đề X-Purpose)",
                "A purpose for reading personal data is required (1 to 200 characters, X-Purpose header)",
            ));
        }
        Ok(p.to_owned())
    }

    fn log_reads(
        &self,
        officer: &Officer,
        purpose: &str,
        action: &str,
        people: impl IntoIterator<Item = PersonalId>,
    ) -> Result<()> {
        self.submit_reads(officer, purpose, action, people)?
            .wait()
            .map_err(RegistryError::Store)
    }

    /// Hands the reads to the access log without waiting for the commit.
    fn submit_reads(
        &self,
        officer: &Officer,
        purpose: &str,
        action: &str,
        people: impl IntoIterator<Item = PersonalId>,
    ) -> Result<AccessReceipt> {
        let at = self.clock.now();
        let entries: Vec<AccessEntry> = people
            .into_iter()
            .map(|person| AccessEntry {
                actor: officer.id.clone(),
                at,
                person,
                purpose: purpose.to_owned(),
                action: action.to_owned(),
            })
            .collect();
        if entries.is_empty() {
            return Ok(AccessReceipt::none());
        }
        self.access.submit(entries).map_err(RegistryError::Store)
    }

    /// A person's current record.
    pub fn person(&self, officer: &Officer, purpose: &str, id: &PersonalId) -> Result<Person> {
        let purpose = Self::check_purpose(purpose)?;
        let p = self.load(id)?;
        self.require_covers(officer, p.home_commune().as_deref(), "The person")?;
        self.log_reads(officer, &purpose, "record", [p.id])?;
        Ok(p)
    }

    /// A person's current record as stored JSON, for callers that pass it on unchanged (the
    /// hot read path: no decoding and re-encoding). Same checks and logging as [`Self::person`].
    pub fn person_json(&self, officer: &Officer, purpose: &str, id: &PersonalId) -> Result<String> {
        self.read_person_json(officer, purpose, id)?.wait()
    }

    /// [`Self::person_json`] without waiting on this thread for the access log: the record is
    /// handed over once the read is logged ([`Logged::release`]).
    pub fn read_person_json(
        &self,
        officer: &Officer,
        purpose: &str,
        id: &PersonalId,
    ) -> Result<Logged<String>> {
        let purpose = Self::check_purpose(purpose)?;
        let (json, commune) = self
            .store
            .person_json(id)?
            .ok_or_else(|| not_found_person(id))?;
        self.require_covers(officer, commune.as_deref(), "The person")?;
        let receipt = self.submit_reads(officer, &purpose, "record", [*id])?;
        Ok(Logged::new(json, receipt))
    }

    /// [`Self::read_person_json`] for async callers. When the store gathers reads the record is
    /// read together with other waiting reads by the reader threads, and no thread is held while
    /// waiting; otherwise (the embedded store: a local read costs less than a hand-over) it is
    /// read on the caller's thread.
    pub async fn read_person_json_async(
        &self,
        officer: &Officer,
        purpose: &str,
        id: &PersonalId,
    ) -> Result<Logged<String>> {
        let Some(gather) = &self.gather else {
            return self.read_person_json(officer, purpose, id);
        };
        let purpose = Self::check_purpose(purpose)?;
        let (json, commune) = gather
            .read(*id)
            .await?
            .ok_or_else(|| not_found_person(id))?;
        self.require_covers(officer, commune.as_deref(), "The person")?;
        let receipt = self.submit_reads(officer, &purpose, "record", [*id])?;
        Ok(Logged::new(json, receipt))
    }

    /// A person's full history, oldest first.
    pub fn history(
        &self,
        officer: &Officer,
        purpose: &str,
        id: &PersonalId,
    ) -> Result<Vec<RecordedEvent>> {
        let purpose = Self::check_purpose(purpose)?;
        let p = self.load(id)?;
        self.require_covers(officer, p.home_commune().as_deref(), "The person")?;
        let events = self.store.events(&StreamId::Person(*id), None)?;
        self.log_reads(officer, &purpose, "history", [p.id])?;
        Ok(events)
    }

    /// The record as it stood at an instant: the fold of the events recorded until then.
    pub fn as_of(
        &self,
        officer: &Officer,
        purpose: &str,
        id: &PersonalId,
        at: DateTime<Utc>,
    ) -> Result<Person> {
        let purpose = Self::check_purpose(purpose)?;
        let current = self.load(id)?;
        self.require_covers(officer, current.home_commune().as_deref(), "The person")?;
        let mut state: Option<Person> = None;
        for e in self.store.events(&StreamId::Person(*id), Some(at))? {
            let change: PersonChange = serde_json::from_value(e.change).map_err(|err| {
                RegistryError::Store(StoreError::Backend(format!(
                    "stored event {}: {err}",
                    e.seq
                )))
            })?;
            state = Some(apply(state.as_ref(), &change)?);
        }
        let state = state.ok_or_else(|| RegistryError::NotFound {
            what: format!("a record of {id} at {at}"),
        })?;
        self.log_reads(officer, &purpose, "as_of", [state.id])?;
        Ok(state)
    }

    /// A household with its members' records.
    pub fn household(
        &self,
        officer: &Officer,
        purpose: &str,
        id: &str,
    ) -> Result<(Household, Vec<Person>)> {
        let purpose = Self::check_purpose(purpose)?;
        let h = self.load_household(id)?;
        self.require_covers(
            officer,
            current_commune(&h.address).as_deref(),
            "The household",
        )?;
        let ids: Vec<PersonalId> = h.members.iter().map(|m| m.person).collect();
        let people = self.store.persons(&ids)?;
        self.log_reads(officer, &purpose, "household", ids)?;
        Ok((h, people))
    }

    /// Searches by name (accent- and tone-insensitive), narrowed by birth year or date and
    /// commune, and always by the officer's jurisdiction.
    /// Checks a search and builds the store query: the name key, the filters, and the officer's
    /// jurisdiction (a commune officer only ever searches their commune).
    fn search_query(&self, officer: &Officer, s: &PersonSearch) -> Result<SearchQuery> {
        let key = dancu_domain::name::match_key(&s.name);
        if key.chars().count() < 2 {
            return Err(RegistryError::invalid_msg(
                "search_name_too_short",
                "Hãy nhập ít nhất 2 chữ cái của họ tên",
                "Give at least 2 letters of the name",
            ));
        }
        let limit = s.limit.unwrap_or(20).clamp(1, 200);
        let birth_year = s.birth_year.or(s.date_of_birth.map(|d| d.year()));
        if let Some(c) = &s.commune {
            commune_2025(c)?;
            self.require_covers(officer, Some(c), "The commune")?;
        }
        let (commune, province) = match &officer.jurisdiction {
            Jurisdiction::National => (s.commune.clone(), None),
            Jurisdiction::Province(p) => (s.commune.clone(), Some(p.clone())),
            Jurisdiction::Commune(c) => (Some(c.clone()), None),
        };
        Ok(SearchQuery {
            name_key: key,
            prefix: false,
            birth_year,
            commune,
            province,
            limit,
        })
    }

    /// Searches by name (accent- and tone-insensitive), narrowed by birth year or date and
    /// commune, and always by the officer's jurisdiction. Whole-name matches first; if there are
    /// none, names that start with the key.
    pub fn search(
        &self,
        officer: &Officer,
        purpose: &str,
        s: &PersonSearch,
    ) -> Result<SearchResult> {
        self.read_search(officer, purpose, s)?.wait()
    }

    /// [`Self::search`] without waiting on this thread for the access log.
    pub fn read_search(
        &self,
        officer: &Officer,
        purpose: &str,
        s: &PersonSearch,
    ) -> Result<Logged<SearchResult>> {
        let purpose = Self::check_purpose(purpose)?;
        let mut q = self.search_query(officer, s)?;
        let mut people = self.store.search(&q)?;
        if people.is_empty() {
            q.prefix = true;
            people = self.store.search(&q)?;
        }
        if let Some(d) = s.date_of_birth {
            people.retain(|p| {
                p.date_of_birth.earliest() <= d.latest() && d.earliest() <= p.date_of_birth.latest()
            });
        }
        let receipt =
            self.submit_reads(officer, &purpose, "search", people.iter().map(|p| p.id))?;
        Ok(Logged::new(
            SearchResult {
                key: q.name_key,
                prefix: q.prefix,
                people,
            },
            receipt,
        ))
    }

    /// The same search answered as the JSON of a [`SearchResult`], built from the stored records
    /// without decoding them (the hot path). A date-of-birth filter needs the decoded dates and
    /// goes through [`Self::search`].
    pub fn search_json(
        &self,
        officer: &Officer,
        purpose: &str,
        s: &PersonSearch,
    ) -> Result<String> {
        self.read_search_json(officer, purpose, s)?.wait()
    }

    /// [`Self::search_json`] without waiting on this thread for the access log.
    pub fn read_search_json(
        &self,
        officer: &Officer,
        purpose: &str,
        s: &PersonSearch,
    ) -> Result<Logged<String>> {
        let encode =
            |e: serde_json::Error| RegistryError::Store(StoreError::Backend(e.to_string()));
        if s.date_of_birth.is_some() {
            return self
                .read_search(officer, purpose, s)?
                .try_map(|r| serde_json::to_string(&r).map_err(encode));
        }
        let purpose = Self::check_purpose(purpose)?;
        let mut q = self.search_query(officer, s)?;
        let mut found = self.store.search_json(&q)?;
        if found.is_empty() {
            q.prefix = true;
            found = self.store.search_json(&q)?;
        }
        let receipt =
            self.submit_reads(officer, &purpose, "search", found.iter().map(|(id, _)| *id))?;
        let mut body =
            String::with_capacity(64 + found.iter().map(|(_, j)| j.len() + 1).sum::<usize>());
        body.push_str(r#"{"key":"#);
        body.push_str(&serde_json::to_string(&q.name_key).map_err(encode)?);
        body.push_str(if q.prefix {
            r#","prefix":true,"people":["#
        } else {
            r#","prefix":false,"people":["#
        });
        for (i, (_, json)) in found.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(json);
        }
        body.push_str("]}");
        Ok(Logged::new(body, receipt))
    }

    /// People whose home is in a commune, a page at a time, in ID order.
    pub fn people_of_commune(
        &self,
        officer: &Officer,
        purpose: &str,
        commune: &str,
        after: Option<&PersonalId>,
        limit: u32,
    ) -> Result<Vec<Person>> {
        let purpose = Self::check_purpose(purpose)?;
        commune_2025(commune)?;
        self.require_covers(officer, Some(commune), "The commune")?;
        let people = self
            .store
            .people_of_commune(commune, after, limit.clamp(1, 1000))?;
        self.log_reads(
            officer,
            &purpose,
            "commune_list",
            people.iter().map(|p| p.id),
        )?;
        Ok(people)
    }

    /// The access log of a person (who read their data), newest first.
    pub fn access_log(
        &self,
        officer: &Officer,
        purpose: &str,
        id: &PersonalId,
        limit: u32,
    ) -> Result<Vec<AccessEntry>> {
        let _ = self.person(officer, purpose, id)?;
        Ok(self.store.access_log(id, limit.clamp(1, 1000))?)
    }
}

/// A commune of the current (2025) scheme, or the `unknown_commune` refusal.
fn commune_2025(code: &str) -> Result<&'static dancu_domain::admin::Commune> {
    AdminUnits::get()
        .commune(Scheme::Y2025, code)
        .ok_or_else(|| {
            RegistryError::invalid_msg(
                "unknown_commune",
                format!("Không có xã/phường mã {code} trong danh mục hành chính hiện hành"),
                format!("There is no commune {code} in the current administrative scheme"),
            )
        })
}

/// Moves a person's membership from one household to another (or to a new relationship in the
/// same one): leaves, then joins, as two events on the person's stream.
fn move_membership(
    appends: &mut Vec<Append>,
    person: &Person,
    from: &str,
    to: &str,
    relationship: Relationship,
) -> Result<Person> {
    let left = push_person(
        appends,
        Some(person),
        PersonChange::HouseholdLeft {
            household_id: from.to_owned(),
        },
    )?;
    push_person(
        appends,
        Some(&left),
        PersonChange::HouseholdJoined {
            membership: Membership {
                household_id: to.to_owned(),
                relationship,
            },
        },
    )
}

/// A person joins a household: the membership on the person's record and the member on the
/// household's, in one commit.
fn join_household(
    appends: &mut Vec<Append>,
    person: &Person,
    household: &Household,
    relationship: Relationship,
) -> Result<()> {
    let membership = Membership {
        household_id: household.id.clone(),
        relationship,
    };
    push_person(
        appends,
        Some(person),
        PersonChange::HouseholdJoined { membership },
    )?;
    let member = HouseholdMember {
        person: person.id,
        relationship,
    };
    push_household(appends, household, HouseholdChange::MemberAdded { member })?;
    Ok(())
}

fn bounded_text(s: &str, what: &str) -> Result<String> {
    let t = s.trim();
    if t.is_empty() || t.chars().count() > 200 {
        return Err(RegistryError::invalid_msg(
            "text_length",
            format!("Trường {what} phải có 1–200 ký tự"),
            format!("{what} must have 1 to 200 characters"),
        ));
    }
    Ok(t.to_owned())
}

fn push_person(
    appends: &mut Vec<Append>,
    state: Option<&Person>,
    change: PersonChange,
) -> Result<Person> {
    let next = apply(state, &change)?;
    appends.push(Append::Person {
        expected: state.map_or(0, |p| p.version),
        change,
        state: next.clone(),
    });
    Ok(next)
}

fn push_household(
    appends: &mut Vec<Append>,
    state: &Household,
    change: HouseholdChange,
) -> Result<Household> {
    let next = apply_household(&state.id, Some(state), &change)?;
    appends.push(Append::Household {
        expected: state.version,
        change,
        state: next.clone(),
    });
    Ok(next)
}

/// Officer credentials until the identity provider takes over: a random token whose SHA-256 is
/// stored.
pub mod credentials {
    use rand::Rng;

    /// A new random API token (`dct_` + 48 hex digits).
    pub fn new_token() -> String {
        let mut bytes = [0u8; 24];
        rand::rng().fill_bytes(&mut bytes);
        format!("dct_{}", hex::encode(bytes))
    }

    /// The stored form of a token: [`token_digest`] in hexadecimal.
    pub fn token_hash(token: &str) -> String {
        digest_hash(&token_digest(token))
    }

    /// The stored form of a token from its [`token_digest`].
    pub fn digest_hash(digest: &[u8; 32]) -> String {
        hex::encode(digest)
    }

    /// A token's SHA-256, the key under which a server may keep it in memory.
    pub fn token_digest(token: &str) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(token.as_bytes()).into()
    }
}
