//! Card verification against the register (đối chiếu thẻ căn cước): takes what a reader got from
//! a card — the QR text, the MRZ, the chip's data groups and EF.SOD — and answers, each part
//! separately:
//! - whether the card is authentic, check by check (QR parse, MRZ check digits, data-group
//!   hashes, SOD signature, document-signer chain, validity, revocation), using `dancu-card`;
//! - whether the card's data agrees with the register, field by field and source by source
//!   (`match` / `mismatch` / `unknown`), without returning any register value;
//! - the card's status in the register (valid, replaced, revoked, holder deceased, expired by
//!   the age rules of the Law on Identification, or not in the register);
//! - the holder's vital status.
//!
//! [`check_card`] is pure: the register record and the trust store are parameters. The hub
//! wraps it as the `card_verify` exchange service (logged like every exchange).

use base64ct::{Base64, Encoding};
use chrono::{Months, NaiveDate};
use dancu_card::lds::{parse_dg1, parse_dg13};
use dancu_card::{
    Crl, Expiry, Mrz, Outcome, PaOptions, PersonalId, QrData, TrustStore, parse_qr, parse_td1,
    passive_authentication,
};
use dancu_domain::PartialDate;
use dancu_domain::name::match_key;
use dancu_domain::person::{CardKind, CardRecord, CardStatus, Person, VitalStatus};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Service code of card verification in the hub's rights.
pub const SERVICE_CARD_VERIFY: &str = "card_verify";
/// Longest MRZ text accepted (three lines of 30 plus line breaks and spaces).
const MAX_MRZ_LEN: usize = 128;
/// Largest base64 text accepted for one chip file (a DG2 face image is 15–30 KB).
const MAX_CHIP_FILE_B64: usize = 128 * 1024;
/// Most data groups accepted in one dump.
const MAX_DATA_GROUPS: usize = 16;
/// Ages at which a card must be exchanged (Law on Identification 26/2023/QH15, art. 21).
const EXCHANGE_AGES: [u32; 4] = [14, 25, 40, 60];
/// A card issued within this many years before an exchange age stays valid to the next one.
const GRACE_YEARS: u32 = 2;

/// What the reader got from the card. At least one part must be present.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CardInput {
    /// The QR text printed on the card.
    #[serde(default)]
    pub qr: Option<String>,
    /// The three MRZ lines, separated by line breaks.
    #[serde(default)]
    pub mrz: Option<String>,
    /// The chip's files.
    #[serde(default)]
    pub chip: Option<ChipDump>,
}

/// The chip's files, base64 (standard alphabet, padded).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ChipDump {
    /// EF.SOD.
    pub sod: String,
    /// Data groups by number (`"1"`, `"13"`, or `"dg1"`, `"DG13"`).
    #[serde(default)]
    pub data_groups: BTreeMap<String, String>,
}

/// Why the input could not be read at all (as opposed to a card that fails a check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    /// Stable code.
    pub code: &'static str,
    /// Vietnamese message.
    pub vi: String,
    /// English message.
    pub en: String,
}

impl InputError {
    fn new(code: &'static str, vi: impl Into<String>, en: impl Into<String>) -> Self {
        Self {
            code,
            vi: vi.into(),
            en: en.into(),
        }
    }
}

/// The chip dump decoded: EF.SOD and data groups as bytes.
#[derive(Debug, Clone, Default)]
pub struct DecodedChip {
    sod: Vec<u8>,
    data_groups: Vec<(u8, Vec<u8>)>,
}

/// Checks the input's shape and decodes the chip files; nothing about the card is judged here.
pub fn decode_input(input: &CardInput) -> Result<Option<DecodedChip>, InputError> {
    if input.qr.is_none() && input.mrz.is_none() && input.chip.is_none() {
        return Err(InputError::new(
            "card_input_missing",
            "Cần gửi ít nhất một trong: mã QR, MRZ hoặc dữ liệu chip",
            "Send at least one of: the QR text, the MRZ or the chip data",
        ));
    }
    if input.mrz.as_ref().is_some_and(|m| m.len() > MAX_MRZ_LEN) {
        return Err(InputError::new(
            "card_input_too_long",
            "MRZ quá dài",
            "The MRZ is too long",
        ));
    }
    let Some(chip) = &input.chip else {
        return Ok(None);
    };
    if chip.data_groups.len() > MAX_DATA_GROUPS {
        return Err(InputError::new(
            "card_input_too_long",
            "Quá nhiều nhóm dữ liệu chip",
            "Too many chip data groups",
        ));
    }
    let b64 = |what: &str, s: &str| -> Result<Vec<u8>, InputError> {
        if s.len() > MAX_CHIP_FILE_B64 {
            return Err(InputError::new(
                "card_input_too_long",
                format!("Tệp chip {what} quá lớn"),
                format!("Chip file {what} is too large"),
            ));
        }
        Base64::decode_vec(s.trim()).map_err(|_| {
            InputError::new(
                "chip_base64_invalid",
                format!("Tệp chip {what} không phải base64 hợp lệ"),
                format!("Chip file {what} is not valid base64"),
            )
        })
    };
    let sod = b64("SOD", &chip.sod)?;
    let mut data_groups = Vec::with_capacity(chip.data_groups.len());
    for (name, value) in &chip.data_groups {
        let digits = name
            .strip_prefix("dg")
            .or_else(|| name.strip_prefix("DG"))
            .unwrap_or(name);
        let n = digits
            .parse::<u8>()
            .ok()
            .filter(|n| (1..=16).contains(n))
            .ok_or_else(|| {
                InputError::new(
                    "chip_data_group_invalid",
                    "Số nhóm dữ liệu chip phải từ 1 đến 16",
                    "Chip data group numbers must be 1 to 16",
                )
            })?;
        if data_groups.iter().any(|(m, _)| *m == n) {
            return Err(InputError::new(
                "chip_data_group_invalid",
                format!("Nhóm dữ liệu DG{n} được gửi hai lần"),
                format!("Data group DG{n} was sent twice"),
            ));
        }
        data_groups.push((n, b64(&format!("DG{n}"), value)?));
    }
    Ok(Some(DecodedChip { sod, data_groups }))
}

/// The trusted country signing CAs and their CRLs.
#[derive(Debug, Default)]
pub struct CardTrust {
    /// Trusted CSCA certificates.
    pub store: TrustStore,
    /// Certificate revocation lists.
    pub crls: Vec<Crl>,
}

impl CardTrust {
    /// Loads every file of `dir`: `*.pem` (CSCA certificates), `*.crl` (CRLs, DER or PEM) and
    /// `*.ml` (an ICAO master list, CMS). A missing directory gives an empty trust store.
    pub fn load_dir(dir: &std::path::Path) -> Result<Self, String> {
        let mut trust = Self::default();
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(trust),
            Err(e) => return Err(format!("{}: {e}", dir.display())),
        };
        let mut paths: Vec<std::path::PathBuf> =
            entries.filter_map(Result::ok).map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            let what = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            if !matches!(ext, "pem" | "crl" | "ml") {
                continue;
            }
            let bytes = std::fs::read(&path).map_err(|e| what(&e))?;
            match ext {
                "pem" => {
                    trust.store.add_pem(&bytes).map_err(|e| what(&e))?;
                }
                "crl" if bytes.starts_with(b"-----") => {
                    trust
                        .crls
                        .extend(Crl::from_pem(&bytes).map_err(|e| what(&e))?);
                }
                "crl" => trust
                    .crls
                    .push(Crl::from_der(&bytes).map_err(|e| what(&e))?),
                _ => {
                    let (ml, _) = TrustStore::from_master_list(&bytes).map_err(|e| what(&e))?;
                    for c in ml.certificates() {
                        trust.store.add_der(c.der()).map_err(|e| what(&e))?;
                    }
                }
            }
        }
        Ok(trust)
    }
}

/// Outcome of one check, for JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Check name, e.g. `qr_parse`, `mrz_check_digits`, `dg13_hash`, `sod_signature`.
    pub name: String,
    /// `passed`, `failed` or `not_checked`.
    pub result: &'static str,
    /// Reason code when not passed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
    /// Detail when not passed (English).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Check {
    fn from_outcome(name: impl Into<String>, o: &Outcome) -> Self {
        let (result, code, detail) = match o {
            Outcome::Passed => ("passed", None, None),
            Outcome::Failed(r) => ("failed", Some(r.code), Some(r.detail.clone())),
            Outcome::NotChecked(r) => ("not_checked", Some(r.code), Some(r.detail.clone())),
        };
        Self {
            name: name.into(),
            result,
            code,
            detail,
        }
    }

    fn passed(name: &str) -> Self {
        Self::from_outcome(name, &Outcome::Passed)
    }

    fn failed(name: &str, code: &'static str, detail: String) -> Self {
        Self {
            name: name.to_owned(),
            result: "failed",
            code: Some(code),
            detail: Some(detail),
        }
    }
}

/// Whether the card is authentic, as far as the parts supplied can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Authenticity {
    /// The chip passed passive authentication and every other check passed.
    Authentic,
    /// A check failed: the card or its data is forged, damaged or altered.
    NotAuthentic,
    /// Nothing failed, but only the chip can prove authenticity (QR and MRZ can be printed
    /// by anyone), and it was not supplied or not fully checked.
    NotEstablished,
}

/// Agreement of one card field with the register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldResult {
    /// Same as the register.
    Match,
    /// Different from the register.
    Mismatch,
    /// The register cannot tell (not recorded, partial, or no such person or card).
    Unknown,
}

/// One field of one source compared with the register.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldCheck {
    /// Field: `personal_id`, `full_name`, `date_of_birth`, `sex`, `old_id`, `issue_date`,
    /// `expiry_date`, `residence`.
    pub field: &'static str,
    /// Where the card value came from: `qr`, `mrz`, `chip_dg1`, `chip_dg13`.
    pub source: &'static str,
    /// The answer.
    pub result: FieldResult,
}

/// Status of the presented card in the register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CardState {
    /// The card the register knows as current, not expired.
    Valid,
    /// A newer card replaced it.
    Replaced,
    /// Revoked or held by an authority.
    Revoked,
    /// The holder died.
    HolderDeceased,
    /// Past its expiry (printed, or by the exchange ages when none is recorded).
    Expired,
    /// The register has no card issued on that date (or no such person).
    NotInRegister,
    /// The input carried no ID number, so the register could not be asked.
    Unknown,
}

/// The card as the register sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CardStatusAnswer {
    /// The status.
    pub status: CardState,
    /// Expiry that applies: the printed one when recorded, else the one the exchange ages give;
    /// `None` when valid for life or unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_on: Option<NaiveDate>,
    /// The expiry the exchange ages (14, 25, 40, 60) give for this issue date, when the
    /// holder's full date of birth is known; `None` also for cards valid for life.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_rule_expires_on: Option<NaiveDate>,
}

/// Vital status for the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Vital {
    /// Alive as far as the register knows.
    Alive,
    /// A death is registered.
    Dead,
    /// No such person in the register, or no ID number to look up.
    Unknown,
}

/// The whole answer.
#[derive(Debug, Clone, Serialize)]
pub struct CardVerification {
    /// Personal ID the card carries (first readable source), when any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub personal_id: Option<String>,
    /// Summary of the checks.
    pub authenticity: Authenticity,
    /// Every check, in a stable order.
    pub checks: Vec<Check>,
    /// Whether the register has a person with that ID.
    pub person_found: bool,
    /// Per field and source: agreement with the register.
    pub fields: Vec<FieldCheck>,
    /// The card's status in the register.
    pub card: CardStatusAnswer,
    /// The holder's vital status.
    pub vital_status: Vital,
}

/// What one source of the card says (only the fields it has).
#[derive(Debug, Default)]
struct CardSays {
    source: &'static str,
    id: Option<PersonalId>,
    full_name: Option<String>,
    date_of_birth: Option<NaiveDate>,
    sex: Option<dancu_card::Sex>,
    old_id: Option<String>,
    issue_date: Option<NaiveDate>,
    expiry: Option<Option<NaiveDate>>,
    residence: bool,
}

fn from_qr(q: &QrData) -> CardSays {
    CardSays {
        source: "qr",
        id: Some(q.id),
        full_name: Some(q.full_name.clone()),
        date_of_birth: Some(q.date_of_birth),
        sex: Some(q.sex),
        old_id: q.old_id.clone(),
        issue_date: Some(q.issue_date),
        expiry: None,
        residence: !q.address.is_empty(),
    }
}

fn from_mrz(source: &'static str, m: &Mrz) -> CardSays {
    CardSays {
        source,
        id: Some(m.id),
        full_name: Some(m.full_name()),
        date_of_birth: Some(m.date_of_birth),
        sex: Some(m.sex),
        expiry: Some(Some(m.expiry)),
        ..CardSays::default()
    }
}

/// The date an age is reached; Feb 29 birthdays fall on Feb 28 in common years.
fn birthday(dob: NaiveDate, age: u32) -> Option<NaiveDate> {
    dob.checked_add_months(Months::new(age.checked_mul(12)?))
}

/// The expiry the exchange ages give a card issued on `issued` to a person born on `dob`:
/// the next exchange age, or the one after it when the card was issued within two years before
/// an exchange age; `None` when the card is valid for life (issued from 58, i.e. within two
/// years of 60, or later).
pub fn age_rule_expiry(dob: NaiveDate, issued: NaiveDate) -> Option<NaiveDate> {
    let mut ages = EXCHANGE_AGES
        .iter()
        .filter_map(|&a| Some((a, birthday(dob, a)?)))
        .skip_while(|(_, day)| *day <= issued);
    let (age, day) = ages.next()?;
    let grace_start = birthday(dob, age.saturating_sub(GRACE_YEARS))?;
    if issued >= grace_start {
        ages.next().map(|(_, d)| d)
    } else {
        Some(day)
    }
}

fn compare<T: PartialEq>(card: &T, register: Option<&T>) -> FieldResult {
    match register {
        None => FieldResult::Unknown,
        Some(r) if r == card => FieldResult::Match,
        Some(_) => FieldResult::Mismatch,
    }
}

fn compare_dob(card: NaiveDate, register: &PartialDate) -> FieldResult {
    match register {
        PartialDate::Full(d) => compare(&card, Some(d)),
        partial if card < partial.earliest() || card > partial.latest() => FieldResult::Mismatch,
        _ => FieldResult::Unknown,
    }
}

/// The register's record of the presented card: issued on the card's issue date, else expiring
/// on its expiry date.
fn find_card<'a>(person: &'a Person, says: &[CardSays]) -> Option<&'a CardRecord> {
    let id = person.id.to_string();
    let cards: Vec<&CardRecord> = person
        .cards
        .iter()
        .filter(|c| c.kind != CardKind::Cmnd && c.number == id)
        .collect();
    let by_issue = says
        .iter()
        .filter_map(|s| s.issue_date)
        .find_map(|d| cards.iter().find(|c| c.issued_on == d));
    let by_expiry = || {
        says.iter()
            .filter_map(|s| s.expiry)
            .find_map(|e| cards.iter().find(|c| c.expires_on == e))
    };
    by_issue.or_else(by_expiry).copied()
}

fn card_status(person: &Person, says: &[CardSays], today: NaiveDate) -> CardStatusAnswer {
    let Some(card) = find_card(person, says) else {
        return CardStatusAnswer {
            status: CardState::NotInRegister,
            expires_on: None,
            age_rule_expires_on: None,
        };
    };
    let age_rule = match person.date_of_birth {
        PartialDate::Full(dob) => age_rule_expiry(dob, card.issued_on),
        _ => None,
    };
    let expires_on = card.expires_on.or(age_rule);
    let status = match card.status {
        CardStatus::Replaced => CardState::Replaced,
        CardStatus::Revoked => CardState::Revoked,
        CardStatus::HolderDeceased => CardState::HolderDeceased,
        CardStatus::Valid if person.is_dead() => CardState::HolderDeceased,
        CardStatus::Valid => match expires_on {
            Some(e) if today >= e => CardState::Expired,
            _ => CardState::Valid,
        },
    };
    CardStatusAnswer {
        status,
        expires_on,
        age_rule_expires_on: age_rule,
    }
}

fn field_checks(
    says: &[CardSays],
    person: Option<&Person>,
    card: Option<&CardRecord>,
) -> Vec<FieldCheck> {
    let mut out = Vec::new();
    let unknown = FieldResult::Unknown;
    for s in says {
        let mut push = |field, result| {
            out.push(FieldCheck {
                field,
                source: s.source,
                result,
            })
        };
        if let Some(id) = &s.id {
            push(
                "personal_id",
                person.map_or(unknown, |p| compare(id, Some(&p.id))),
            );
        }
        if let Some(name) = &s.full_name {
            push(
                "full_name",
                person.map_or(unknown, |p| {
                    compare(&match_key(name), Some(&match_key(&p.name.full())))
                }),
            );
        }
        if let Some(d) = s.date_of_birth {
            push(
                "date_of_birth",
                person.map_or(unknown, |p| compare_dob(d, &p.date_of_birth)),
            );
        }
        if let Some(sex) = &s.sex {
            push(
                "sex",
                person.map_or(unknown, |p| compare(sex, Some(&p.sex))),
            );
        }
        if let Some(old) = &s.old_id {
            push(
                "old_id",
                person.map_or(unknown, |p| {
                    if p.legacy_cmnd.iter().any(|c| c.number.as_str() == old) {
                        FieldResult::Match
                    } else if p.legacy_cmnd.is_empty() {
                        FieldResult::Unknown
                    } else {
                        FieldResult::Mismatch
                    }
                }),
            );
        }
        if let Some(d) = s.issue_date {
            push(
                "issue_date",
                card.map_or(unknown, |c| compare(&d, Some(&c.issued_on))),
            );
        }
        if let Some(e) = s.expiry {
            push(
                "expiry_date",
                card.map_or(unknown, |c| compare(&e, Some(&c.expires_on))),
            );
        }
        if s.residence {
            // The register holds structured addresses; free text printed years ago cannot be
            // compared honestly.
            push("residence", unknown);
        }
    }
    out
}

/// Verifies a card: authenticity from the parts supplied, then the register's view of the
/// person returned by `lookup` for the card's ID number. `today` (Vietnam date) decides
/// expiry; `chip` is [`decode_input`]'s result.
pub fn check_card(
    input: &CardInput,
    chip: Option<&DecodedChip>,
    trust: &CardTrust,
    today: NaiveDate,
    lookup: impl FnOnce(&PersonalId) -> Option<Person>,
) -> CardVerification {
    let mut checks = Vec::new();
    let mut says = Vec::new();
    if let Some(text) = &input.qr {
        match parse_qr(text) {
            Ok(q) => {
                checks.push(Check::passed("qr_parse"));
                says.push(from_qr(&q));
            }
            Err(e) => checks.push(Check::failed("qr_parse", e.code(), e.to_string())),
        }
    }
    if let Some(text) = &input.mrz {
        match parse_td1(text) {
            Ok(m) => {
                checks.push(Check::passed("mrz_check_digits"));
                says.push(from_mrz("mrz", &m));
            }
            Err(e) => checks.push(Check::failed("mrz_check_digits", e.code(), e.to_string())),
        }
    }
    let mut chip_proven = false;
    if let Some(chip) = chip {
        let dgs: Vec<(u8, &[u8])> = chip
            .data_groups
            .iter()
            .map(|(n, b)| (*n, b.as_slice()))
            .collect();
        let report = passive_authentication(
            &chip.sod,
            &dgs,
            &trust.store,
            &trust.crls,
            &PaOptions {
                at: Some(today.and_time(chrono::NaiveTime::MIN).and_utc()),
            },
        );
        // Data groups whose hash failed are not trusted as a source.
        let hash_ok = |n: u8| report.data_group(n).is_some_and(Outcome::is_passed);
        for (name, outcome) in report.checks() {
            // Revocation is "not checked" when no CRL is configured: report it, but it does not
            // stop the card counting as authentic.
            checks.push(Check::from_outcome(name, outcome));
        }
        // Authentic when every check passed, except data groups listed in the SOD but not read
        // and revocation without a CRL, which are "not checked" rather than failed.
        chip_proven = report.data_groups.iter().any(|d| d.outcome.is_passed())
            && report.checks().iter().all(|(name, o)| {
                o.is_passed()
                    || (!o.is_failed() && (name == "revocation" || o.code() == Some("dg.not_read")))
            });
        for (n, bytes) in &dgs {
            match n {
                1 => match parse_dg1(bytes) {
                    Ok(m) if hash_ok(1) => says.push(from_mrz("chip_dg1", &m)),
                    Ok(_) => {}
                    Err(e) => checks.push(Check::failed("dg1_parse", e.code(), e.to_string())),
                },
                13 => match parse_dg13(bytes) {
                    Ok(d) if hash_ok(13) => says.push(CardSays {
                        source: "chip_dg13",
                        id: d.id,
                        full_name: d.full_name.clone(),
                        date_of_birth: d.date_of_birth,
                        sex: d.sex,
                        old_id: d.old_id.clone(),
                        issue_date: d.issue_date,
                        expiry: d.expiry.map(|e| match e {
                            Expiry::Date(d) => Some(d),
                            Expiry::Indefinite => None,
                        }),
                        residence: d.place_of_residence.is_some(),
                    }),
                    Ok(_) => {}
                    Err(e) => checks.push(Check::failed("dg13_parse", e.code(), e.to_string())),
                },
                _ => {}
            }
        }
    }
    // Every part must name the same holder.
    let ids: Vec<PersonalId> = says.iter().filter_map(|s| s.id).collect();
    if ids.len() > 1 {
        checks.push(if ids.windows(2).all(|w| w[0] == w[1]) {
            Check::passed("sources_agree")
        } else {
            Check::failed(
                "sources_agree",
                "card.sources_disagree",
                "the parts of the card carry different ID numbers".into(),
            )
        });
    }
    let any_failed = checks.iter().any(|c| c.result == "failed");
    let authenticity = if any_failed {
        Authenticity::NotAuthentic
    } else if chip_proven {
        Authenticity::Authentic
    } else {
        Authenticity::NotEstablished
    };

    let id = ids.first().copied();
    let person = id.and_then(|id| lookup(&id));
    let card = person.as_ref().and_then(|p| find_card(p, &says));
    let fields = field_checks(&says, person.as_ref(), card);
    let (card, vital_status) = match &person {
        None => (
            CardStatusAnswer {
                status: if id.is_some() {
                    CardState::NotInRegister
                } else {
                    CardState::Unknown
                },
                expires_on: None,
                age_rule_expires_on: None,
            },
            Vital::Unknown,
        ),
        Some(p) => (
            card_status(p, &says, today),
            match p.vital_status {
                VitalStatus::Alive => Vital::Alive,
                VitalStatus::Dead { .. } => Vital::Dead,
            },
        ),
    };
    CardVerification {
        personal_id: id.map(|i| i.to_string()),
        authenticity,
        checks,
        person_found: person.is_some(),
        fields,
        card,
        vital_status,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn exchange_ages_give_the_expiry() {
        let dob = d(2010, 5, 1);
        // Issued at 6: valid to 14.
        assert_eq!(age_rule_expiry(dob, d(2016, 6, 1)), Some(d(2024, 5, 1)));
        // Issued at 12, within two years before 14: valid to 25.
        assert_eq!(age_rule_expiry(dob, d(2022, 6, 1)), Some(d(2035, 5, 1)));
        // Exactly two years before 14 counts as within.
        assert_eq!(age_rule_expiry(dob, d(2022, 5, 1)), Some(d(2035, 5, 1)));
        // The day before does not.
        assert_eq!(age_rule_expiry(dob, d(2022, 4, 30)), Some(d(2024, 5, 1)));
        // Issued on the 14th birthday: valid to 25.
        assert_eq!(age_rule_expiry(dob, d(2024, 5, 1)), Some(d(2035, 5, 1)));
        // Issued at 30: valid to 40; at 39: to 60; at 58 or later: for life.
        assert_eq!(age_rule_expiry(dob, d(2040, 1, 1)), Some(d(2050, 5, 1)));
        assert_eq!(age_rule_expiry(dob, d(2049, 6, 1)), Some(d(2070, 5, 1)));
        assert_eq!(age_rule_expiry(dob, d(2068, 5, 1)), None);
        assert_eq!(age_rule_expiry(dob, d(2071, 1, 1)), None);
    }

    #[test]
    fn input_shape_is_checked_before_anything_is_judged() {
        assert_eq!(
            decode_input(&CardInput::default()).unwrap_err().code,
            "card_input_missing"
        );
        let bad = CardInput {
            chip: Some(ChipDump {
                sod: "not base64!".into(),
                data_groups: BTreeMap::new(),
            }),
            ..CardInput::default()
        };
        assert_eq!(decode_input(&bad).unwrap_err().code, "chip_base64_invalid");
        let bad_dg = CardInput {
            chip: Some(ChipDump {
                sod: "AA==".into(),
                data_groups: [("dg17".to_owned(), "AA==".to_owned())].into(),
            }),
            ..CardInput::default()
        };
        assert_eq!(
            decode_input(&bad_dg).unwrap_err().code,
            "chip_data_group_invalid"
        );
    }

    #[test]
    fn a_bad_qr_is_a_failed_check_and_nothing_is_looked_up() {
        let input = CardInput {
            qr: Some("001099012345||Nguyễn Văn An|31021999|Nam||15062021".into()),
            ..CardInput::default()
        };
        let v = check_card(&input, None, &CardTrust::default(), d(2026, 3, 1), |_| {
            panic!("no lookup without an ID")
        });
        assert_eq!(v.authenticity, Authenticity::NotAuthentic);
        assert_eq!(v.checks[0].result, "failed");
        assert_eq!(v.card.status, CardState::Unknown);
        assert_eq!(v.vital_status, Vital::Unknown);
    }
}
