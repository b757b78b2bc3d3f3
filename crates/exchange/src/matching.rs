//! Verification answers over a register record: attribute match (đối chiếu thông tin) and
//! legacy CMND → personal ID resolution (essential procedure no. 1).
//!
//! Attribute match answers `match`, `no_match` or `unknown` per claimed field and never returns a
//! value from the register. How a name matched is disclosed: `exact` (same text up to spacing),
//! `tone_normalized` (same letters and marks up to case and tone-mark placement, e.g. Hòa/Hoà)
//! or `accent_insensitive` (same letters once diacritics are dropped, e.g. NGUYEN VAN AN).
//! `unknown` is said whenever the register cannot confirm or deny (a partial date of birth, a
//! commune that cannot be placed in the current scheme).
//!
//! CMND resolution never guesses: it answers with one personal ID only when exactly one holder
//! of the number also fits the claimed name and date of birth.

use dancu_domain::name::PersonName;
use dancu_domain::name::{match_key, tone_key};
use dancu_domain::person::{Person, Sex, VitalStatus};
use dancu_domain::{CmndNumber, PartialDate, PersonalId};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// Fields a caller claims about a person; absent ones are not asked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Full name.
    pub name: Option<String>,
    /// Date of birth as `YYYY`, `YYYY-MM` or `YYYY-MM-DD`.
    pub date_of_birth: Option<String>,
    /// Sex.
    pub sex: Option<Sex>,
    /// Code of the commune (2025 scheme) of residence.
    pub commune_code: Option<String>,
    /// Whether the person is alive.
    pub alive: Option<bool>,
}

/// The answer for one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The claim agrees with the register.
    Match,
    /// The claim contradicts the register.
    NoMatch,
    /// The register cannot confirm or deny it.
    Unknown,
}

/// One field's answer, with how it was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldAnswer {
    /// Field name.
    pub field: &'static str,
    /// The answer.
    pub verdict: Verdict,
    /// How it was compared (disclosed to the caller), e.g. `exact`, `accent_insensitive`,
    /// `year_month`; or why it is unknown, e.g. `register_partial`.
    pub method: &'static str,
}

/// [`match_key`] of a claim, without Unicode decomposition when the claim is ASCII (MRZ and
/// many client systems send upper-case ASCII); a property test holds it equal to the domain's.
fn claim_match_key(s: &str) -> String {
    if !s.is_ascii() {
        return match_key(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut pending_space = false;
    for c in s.chars() {
        if c.is_whitespace() || c == '<' {
            pending_space = !out.is_empty();
        } else if c.is_ascii_alphanumeric() {
            if pending_space {
                out.push(' ');
                pending_space = false;
            }
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// The comparison keys of a registered name, computed once (e.g. when an in-memory
/// verification index is built) so that each check only keys the claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameKeys {
    full: String,
    match_key: String,
    tone_key: String,
}

impl NameKeys {
    /// Keys of a registered full name.
    pub fn new(registered: &str) -> Self {
        Self {
            full: registered.split_whitespace().collect::<Vec<_>>().join(" "),
            match_key: match_key(registered),
            tone_key: tone_key(registered),
        }
    }

    /// Keys of a person's registered name.
    pub fn of(person: &Person) -> Self {
        Self::new(&person.name.full())
    }

    /// Compares a claimed name with this one; returns the verdict and the method.
    pub fn compare(&self, claimed: &str) -> (Verdict, &'static str) {
        compare_keyed(
            claimed,
            &self.full,
            || self.match_key.as_str().into(),
            || self.tone_key.clone(),
        )
    }
}

fn compare_keyed<'k>(
    claimed: &str,
    full: &str,
    registered_match_key: impl FnOnce() -> std::borrow::Cow<'k, str>,
    registered_tone_key: impl FnOnce() -> String,
) -> (Verdict, &'static str) {
    if claimed.split_whitespace().next().is_none() {
        return (Verdict::Unknown, "claim_empty");
    }
    if claimed.split_whitespace().eq(full.split_whitespace()) {
        return (Verdict::Match, "exact");
    }
    // The accent-insensitive key decides match or not; the tone key only says how precisely.
    if claim_match_key(claimed) != registered_match_key() {
        return (Verdict::NoMatch, "accent_insensitive");
    }
    // tone_key keeps every diacritic, so an ASCII claim cannot equal a non-ASCII name there.
    let tone_possible = !claimed.is_ascii() || full.is_ascii();
    if tone_possible && tone_key(claimed) == registered_tone_key() {
        (Verdict::Match, "tone_normalized")
    } else {
        (Verdict::Match, "accent_insensitive")
    }
}

/// Compares a claimed name with a registered one; returns the verdict and the method. The
/// registered name's keys are made only when the claim is not written exactly as registered.
pub fn compare_name(claimed: &str, registered: &str) -> (Verdict, &'static str) {
    compare_keyed(
        claimed,
        registered,
        || match_key(registered).into(),
        || tone_key(registered),
    )
}

/// Compares a claimed date of birth with the registered one, at the coarser precision.
pub fn compare_date(claimed: &PartialDate, registered: &PartialDate) -> (Verdict, &'static str) {
    fn parts(d: &PartialDate) -> (i32, Option<u32>, Option<u32>) {
        use chrono::Datelike;
        match *d {
            PartialDate::Year(y) => (y, None, None),
            PartialDate::YearMonth(y, m) => (y, Some(m), None),
            PartialDate::Full(d) => (d.year(), Some(d.month()), Some(d.day())),
        }
    }
    let (cy, cm, cd) = parts(claimed);
    let (ry, rm, rd) = parts(registered);
    if cy != ry {
        return (Verdict::NoMatch, "year");
    }
    match (cm, rm) {
        (Some(a), Some(b)) if a != b => return (Verdict::NoMatch, "year_month"),
        (None, None) => return (Verdict::Match, "exact"),
        (None, Some(_)) => return (Verdict::Match, "year"),
        (Some(_), None) => return (Verdict::Unknown, "register_partial"),
        _ => {}
    }
    match (cd, rd) {
        (Some(a), Some(b)) if a != b => (Verdict::NoMatch, "exact"),
        (Some(_), Some(_)) | (None, None) => (Verdict::Match, "exact"),
        (None, Some(_)) => (Verdict::Match, "year_month"),
        (Some(_), None) => (Verdict::Unknown, "register_partial"),
    }
}

/// Answers every claimed field against the register record, in a fixed order.
pub fn attribute_match(person: &Person, claims: &Claims) -> Vec<FieldAnswer> {
    answer(&Facts::of(person, claims), claims, |n| {
        compare_name(n, &person.name.full())
    })
}

/// [`attribute_match`] with the person's name keys computed beforehand.
pub fn attribute_match_prepared(
    person: &Person,
    keys: &NameKeys,
    claims: &Claims,
) -> Vec<FieldAnswer> {
    answer(&Facts::of(person, claims), claims, |n| keys.compare(n))
}

/// The part of a stored person record that attribute match compares. Decoding only this from
/// the stored JSON skips the rest of the record (addresses, cards, relatives), whose checks
/// cost more than the comparison itself; the answers are those of [`attribute_match`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MatchRecord {
    /// Full name.
    pub name: PersonName,
    /// Date of birth.
    pub date_of_birth: PartialDate,
    /// Sex.
    pub sex: Sex,
    /// Alive or dead.
    #[serde(default)]
    pub vital_status: VitalStatus,
}

/// [`attribute_match`] over a [`MatchRecord`] and the person's home commune (2025 code, as
/// [`Person::home_commune`] gives it; the register stores it beside each record).
pub fn attribute_match_record(
    record: &MatchRecord,
    home_commune: Option<&str>,
    claims: &Claims,
) -> Vec<FieldAnswer> {
    let facts = Facts {
        date_of_birth: &record.date_of_birth,
        sex: record.sex,
        home_commune: home_commune.map(Cow::Borrowed),
        dead: matches!(record.vital_status, VitalStatus::Dead { .. }),
    };
    answer(&facts, claims, |n| compare_name(n, &record.name.full()))
}

/// What attribute match compares of one person, owned and compact, for an in-memory view of
/// the register that answers without reading the store: the full name as one string, the date
/// of birth, sex, whether dead, and the home commune (2025 code). Its answers are those of
/// [`attribute_match_record`] over the record it was made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchFacts {
    name: Box<str>,
    /// The name's accent-insensitive key, made once: most claims are not written exactly as
    /// registered, and each of those compares this key.
    match_key: Box<str>,
    date_of_birth: PartialDate,
    sex: Sex,
    dead: bool,
    home_commune: Option<Box<str>>,
}

impl MatchFacts {
    /// The facts of a decoded record and its home commune.
    pub fn new(record: &MatchRecord, home_commune: Option<&str>) -> Self {
        let name = record.name.full();
        Self {
            match_key: match_key(&name).into(),
            name: name.into(),
            date_of_birth: record.date_of_birth,
            sex: record.sex,
            dead: matches!(record.vital_status, VitalStatus::Dead { .. }),
            home_commune: home_commune.map(Into::into),
        }
    }

    /// Answers every claimed field, as [`attribute_match_record`] does.
    pub fn answer(&self, claims: &Claims) -> Vec<FieldAnswer> {
        let facts = Facts {
            date_of_birth: &self.date_of_birth,
            sex: self.sex,
            home_commune: self.home_commune.as_deref().map(Cow::Borrowed),
            dead: self.dead,
        };
        answer(&facts, claims, |n| {
            compare_keyed(
                n,
                &self.name,
                || self.match_key.as_ref().into(),
                || tone_key(&self.name),
            )
        })
    }
}

/// What the answers other than the name's are drawn from.
struct Facts<'a> {
    date_of_birth: &'a PartialDate,
    sex: Sex,
    home_commune: Option<Cow<'a, str>>,
    dead: bool,
}

impl<'a> Facts<'a> {
    /// The facts of `p`; its home commune (a table lookup and a copy) only when it is claimed,
    /// as batch verification answers a million rows with this.
    fn of(p: &'a Person, claims: &Claims) -> Self {
        Facts {
            date_of_birth: &p.date_of_birth,
            sex: p.sex,
            home_commune: claims
                .commune_code
                .as_ref()
                .and_then(|_| p.home_commune())
                .map(Cow::Owned),
            dead: p.is_dead(),
        }
    }
}

fn answer(
    person: &Facts<'_>,
    claims: &Claims,
    name: impl FnOnce(&str) -> (Verdict, &'static str),
) -> Vec<FieldAnswer> {
    let mut out = Vec::with_capacity(5);
    let mut put = |field, (verdict, method)| {
        out.push(FieldAnswer {
            field,
            verdict,
            method,
        })
    };
    if let Some(n) = &claims.name {
        put("name", name(n));
    }
    if let Some(d) = &claims.date_of_birth {
        put(
            "date_of_birth",
            match PartialDate::parse(d) {
                Ok(c) => compare_date(&c, person.date_of_birth),
                Err(_) => (Verdict::Unknown, "claim_unreadable"),
            },
        );
    }
    if let Some(s) = claims.sex {
        put(
            "sex",
            if s == person.sex {
                (Verdict::Match, "exact")
            } else {
                (Verdict::NoMatch, "exact")
            },
        );
    }
    if let Some(c) = &claims.commune_code {
        put(
            "commune_code",
            match person.home_commune.as_deref() {
                None => (Verdict::Unknown, "register_unplaceable"),
                Some(h) if h == c.trim() => (Verdict::Match, "exact"),
                Some(_) => (Verdict::NoMatch, "exact"),
            },
        );
    }
    if let Some(a) = claims.alive {
        put(
            "alive",
            if a != person.dead {
                (Verdict::Match, "exact")
            } else {
                (Verdict::NoMatch, "exact")
            },
        );
    }
    out
}

/// The outcome of resolving a legacy CMND number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum CmndResolution {
    /// Exactly one person holds the number and fits the claims.
    Unique {
        /// Their personal ID.
        id: PersonalId,
        /// How the name matched, when a name was claimed.
        name_method: Option<&'static str>,
    },
    /// Several people fit; the caller must decide with more evidence.
    Ambiguous {
        /// Their personal IDs, sorted.
        candidates: Vec<PersonalId>,
    },
    /// No holder of the number fits.
    NotFound,
}

/// Resolves `cmnd` among `candidates` (typically the people an index returned for the number;
/// they are filtered again here). A claimed name must match (`accent_insensitive` at least) and
/// a claimed date of birth must not contradict the register.
pub fn resolve_cmnd(
    cmnd: &CmndNumber,
    name: Option<&str>,
    date_of_birth: Option<&PartialDate>,
    candidates: &[Person],
) -> CmndResolution {
    let mut fits: Vec<(&PersonalId, Option<&'static str>)> = Vec::new();
    for p in candidates {
        if !p.legacy_cmnd.iter().any(|l| l.number == *cmnd) {
            continue;
        }
        let name_method = match name {
            None => None,
            Some(n) => match compare_name(n, &p.name.full()) {
                (Verdict::Match, m) => Some(m),
                _ => continue,
            },
        };
        if let Some(d) = date_of_birth
            && compare_date(d, &p.date_of_birth).0 == Verdict::NoMatch
        {
            continue;
        }
        if !fits.iter().any(|(id, _)| *id == &p.id) {
            fits.push((&p.id, name_method));
        }
    }
    match fits.as_slice() {
        [] => CmndResolution::NotFound,
        [(id, m)] => CmndResolution::Unique {
            id: **id,
            name_method: *m,
        },
        many => {
            let mut candidates: Vec<PersonalId> = many.iter().map(|(id, _)| **id).collect();
            candidates.sort();
            CmndResolution::Ambiguous { candidates }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dancu_domain::person::LegacyCmnd;

    fn person(id: &str, family: &str, middle: &str, given: &str, dob: &str) -> Person {
        let json = serde_json::json!({
            "id": id,
            "version": 1,
            "name": {"family": family, "middle": middle, "given": given},
            "date_of_birth": dob,
            "sex": "female",
            "birth_registration": {
                "scheme": "2025", "commune_code": "00004", "detail": "", "effective_from": "2025-07-01"
            },
            "ethnicity": "Kinh",
            "religion": "Không",
            "nationality": "VN",
        });
        serde_json::from_value(json).unwrap()
    }

    fn with_cmnd(mut p: Person, n: &str) -> Person {
        p.legacy_cmnd.push(LegacyCmnd {
            number: CmndNumber::parse(n).unwrap(),
            issued_on: None,
        });
        p
    }

    /// The answers of [`attribute_match`], checked to be those of
    /// [`attribute_match_record`] over the stored JSON and the home commune, and of the
    /// [`MatchFacts`] made from them.
    fn answer(p: &Person, c: Claims) -> Vec<(&'static str, Verdict, &'static str)> {
        let full = attribute_match(p, &c);
        let record: MatchRecord = serde_json::from_str(&serde_json::to_string(p).unwrap()).unwrap();
        let home = p.home_commune();
        assert_eq!(attribute_match_record(&record, home.as_deref(), &c), full);
        assert_eq!(
            MatchFacts::new(&record, home.as_deref()).answer(&c),
            full,
            "the in-memory facts answer as the record"
        );
        full.into_iter()
            .map(|a| (a.field, a.verdict, a.method))
            .collect()
    }

    #[test]
    fn the_match_record_answers_as_the_whole_record_also_for_the_dead() {
        let mut p = person("001190000001", "Nguyễn", "Văn", "An", "1950-02-03");
        p.vital_status = dancu_domain::person::VitalStatus::Dead {
            date_of_death: PartialDate::parse("2020").unwrap(),
        };
        for alive in [true, false] {
            let a = answer(
                &p,
                Claims {
                    name: Some("Nguyen Van An".into()),
                    date_of_birth: Some("1950-02".into()),
                    sex: Some(Sex::Female),
                    commune_code: Some("00007".into()),
                    alive: Some(alive),
                },
            );
            let want = if alive {
                Verdict::NoMatch
            } else {
                Verdict::Match
            };
            assert_eq!(a.last(), Some(&("alive", want, "exact")));
        }
    }

    #[test]
    fn names_match_with_the_method_disclosed() {
        let reg = "Đặng Thị Thủy";
        assert_eq!(
            compare_name("Đặng  Thị Thủy", reg),
            (Verdict::Match, "exact")
        );
        assert_eq!(
            compare_name("đặng thị thuỷ", reg),
            (Verdict::Match, "tone_normalized")
        );
        assert_eq!(
            compare_name("DANG THI THUY", reg),
            (Verdict::Match, "accent_insensitive")
        );
        assert_eq!(compare_name("Đặng Thị Thu", reg).0, Verdict::NoMatch);
        assert_eq!(compare_name("  ", reg).0, Verdict::Unknown);
        let keys = NameKeys::new(reg);
        for claim in [
            "Đặng Thị Thủy",
            "đặng thị thuỷ",
            "DANG THI THUY",
            "Dang Thi Thu",
            " ",
        ] {
            assert_eq!(keys.compare(claim), compare_name(claim, reg), "{claim}");
        }
    }

    proptest::proptest! {
        #[test]
        fn the_ascii_claim_key_is_the_domain_key(s in "[ -~\\t\\n\\r\\x0b\\x0c\\x1c-\\x1f]{0,40}") {
            proptest::prop_assert_eq!(claim_match_key(&s), match_key(&s));
        }
    }

    #[test]
    fn dates_compare_at_the_coarser_precision() {
        let d = |s| PartialDate::parse(s).unwrap();
        assert_eq!(
            compare_date(&d("1990-05-01"), &d("1990-05-01")),
            (Verdict::Match, "exact")
        );
        assert_eq!(
            compare_date(&d("1990-05-02"), &d("1990-05-01")).0,
            Verdict::NoMatch
        );
        assert_eq!(
            compare_date(&d("1990"), &d("1990-05-01")),
            (Verdict::Match, "year")
        );
        assert_eq!(
            compare_date(&d("1990-05"), &d("1990-05-01")),
            (Verdict::Match, "year_month")
        );
        assert_eq!(
            compare_date(&d("1990-05-01"), &d("1990")),
            (Verdict::Unknown, "register_partial")
        );
        assert_eq!(
            compare_date(&d("1991-05-01"), &d("1990")).0,
            Verdict::NoMatch
        );
        assert_eq!(
            compare_date(&d("1990-06-01"), &d("1990-05")).0,
            Verdict::NoMatch
        );
    }

    #[test]
    fn attribute_match_answers_per_field_without_values() {
        let p = person("001190000001", "Đặng", "Thị", "Thủy", "1990");
        let a = answer(
            &p,
            Claims {
                name: Some("DANG THI THUY".into()),
                date_of_birth: Some("1990-05-01".into()),
                sex: Some(Sex::Male),
                commune_code: Some("00004".into()),
                alive: Some(true),
            },
        );
        assert_eq!(
            a,
            vec![
                ("name", Verdict::Match, "accent_insensitive"),
                ("date_of_birth", Verdict::Unknown, "register_partial"),
                ("sex", Verdict::NoMatch, "exact"),
                ("commune_code", Verdict::Match, "exact"),
                ("alive", Verdict::Match, "exact"),
            ]
        );
        let only_name = answer(
            &p,
            Claims {
                date_of_birth: Some("1990-13-01".into()),
                ..Claims::default()
            },
        );
        assert_eq!(
            only_name,
            vec![("date_of_birth", Verdict::Unknown, "claim_unreadable")]
        );
    }

    #[test]
    fn cmnd_resolution_is_honest_about_shared_numbers() {
        let a = with_cmnd(
            person("001190000001", "Lê", "Thị", "Hoa", "1990-05-01"),
            "012345678",
        );
        let b = with_cmnd(
            person("031185000002", "Lê", "Thị", "Hoa", "1985"),
            "012345678",
        );
        let c = with_cmnd(
            person("001195000003", "Trần", "Văn", "Nam", "1995-01-01"),
            "012345678",
        );
        let other = with_cmnd(
            person("001195000004", "Lê", "Thị", "Hoa", "1990-05-01"),
            "987654321",
        );
        let all = [a.clone(), b.clone(), c.clone(), other];
        let n = CmndNumber::parse("012345678").unwrap();
        let d = |s| PartialDate::parse(s).unwrap();
        // Number alone: three holders.
        assert!(matches!(
            resolve_cmnd(&n, None, None, &all),
            CmndResolution::Ambiguous { candidates } if candidates.len() == 3
        ));
        // Name narrows to two; a full date narrows to one, since 1985 contradicts 1990.
        assert!(matches!(
            resolve_cmnd(&n, Some("LE THI HOA"), None, &all),
            CmndResolution::Ambiguous { candidates } if candidates.len() == 2
        ));
        assert_eq!(
            resolve_cmnd(&n, Some("LE THI HOA"), Some(&d("1990-05-01")), &all),
            CmndResolution::Unique {
                id: a.id,
                name_method: Some("accent_insensitive")
            }
        );
        // A date the register knows only to the year does not rule the holder out.
        assert!(matches!(
            resolve_cmnd(&n, Some("Lê Thị Hoa"), Some(&d("1985-02-03")), &all),
            CmndResolution::Unique { id, .. } if id == b.id
        ));
        assert_eq!(
            resolve_cmnd(&n, Some("Nguyễn Văn A"), None, &all),
            CmndResolution::NotFound
        );
        assert_eq!(
            resolve_cmnd(&CmndNumber::parse("111111111").unwrap(), None, None, &all),
            CmndResolution::NotFound
        );
    }
}
