//! One chunk's generator: draws households (who lives together, their ages and relationships),
//! then turns each member into a complete [`Person`] record.

use crate::SynthHousehold;
use crate::places::{Commune, PLACES, Province};
use crate::serial::SerialAllocator;
use crate::tables::{self, Region, one_of};
use chrono::{Datelike, Days, Months, NaiveDate};
use dancu_domain::admin::{Address, Scheme};
use dancu_domain::date::PartialDate;
use dancu_domain::event::{Household, HouseholdMember};
use dancu_domain::id::{CmndNumber, PLACE_CODES, PersonalId};
use dancu_domain::name::PersonName;
use dancu_domain::person::{
    CardKind, CardRecord, CardStatus, LegacyCmnd, MaritalStatus, Membership, Person, Relationship,
    Relative, Residence, Sex, VitalStatus,
};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Probability that a widowed person of 45 or more has the record of the deceased spouse in the
/// register, tuned so that about 0.7% of all records are of dead people.
const DECEASED_SPOUSE_RECORD: f64 = 0.20;

fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or(NaiveDate::MIN)
}

/// `d` moved by `years` (29 February becomes 28 February in common years).
pub(crate) fn add_years(d: NaiveDate, years: i32) -> NaiveDate {
    let months = Months::new(years.unsigned_abs() * 12);
    let moved = if years >= 0 {
        d.checked_add_months(months)
    } else {
        d.checked_sub_months(months)
    };
    moved.unwrap_or(d)
}

fn plus_days(d: NaiveDate, days: u64) -> NaiveDate {
    d.checked_add_days(Days::new(days)).unwrap_or(d)
}

fn minus_days(d: NaiveDate, days: u64) -> NaiveDate {
    d.checked_sub_days(Days::new(days)).unwrap_or(d)
}

/// Whether `parent` is 18 to 45 years (in whole years) older than `child`.
pub(crate) fn parent_gap_ok(parent: NaiveDate, child: NaiveDate) -> bool {
    child >= add_years(parent, 18) && child < add_years(parent, 46)
}

/// A member in the making.
#[derive(Debug, Clone)]
struct Proto {
    sex: Sex,
    dob: NaiveDate,
    rel: Relationship,
    family: &'static str,
    spouse: Option<usize>,
    father: Option<usize>,
    mother: Option<usize>,
    marital: MaritalStatus,
    died: Option<NaiveDate>,
    /// Born elsewhere than the household's province more often (lodgers, in-laws).
    outsider: bool,
    /// Shared with siblings when their parents are not in the household: (father, mother) names.
    absent_parents: Option<usize>,
}

/// Draws the households of one chunk.
#[derive(Debug)]
pub(crate) struct ChunkGen {
    rng: ChaCha8Rng,
    serials: SerialAllocator,
    today: NaiveDate,
    chunk: u32,
    households: u32,
}

impl ChunkGen {
    pub(crate) fn new(seed: u64, chunk: u32, today: NaiveDate) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(u64::from(chunk));
        Self {
            rng,
            serials: SerialAllocator::new(seed, chunk),
            today,
            chunk,
            households: 0,
        }
    }

    pub(crate) fn next_household(&mut self) -> SynthHousehold {
        loop {
            if let Some(h) = self.try_household() {
                return h;
            }
        }
    }

    /// Whether `parent` can be the parent of a child born on `dob`: 18 to 45 years older, and
    /// alive (or, for a father, dead less than ten months) at the birth.
    fn can_be_parent(&self, parent: &Proto, dob: NaiveDate) -> bool {
        parent_gap_ok(parent.dob, dob) && parent.died.is_none_or(|d| dob <= plus_days(d, 280))
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    fn between(&mut self, a: NaiveDate, b: NaiveDate) -> NaiveDate {
        let span = (b - a).num_days();
        if span <= 0 {
            a
        } else {
            plus_days(a, self.rng.random_range(0..=span as u64))
        }
    }

    /// A date of birth that makes the person `age` today.
    fn dob_for_age(&mut self, age: i32) -> NaiveDate {
        let anniversary = add_years(self.today, -age);
        minus_days(anniversary, self.rng.random_range(0..365))
    }

    fn sex(&mut self) -> Sex {
        // Sex ratio at birth ~ 1.1 boys per girl.
        if self.chance(0.52) {
            Sex::Male
        } else {
            Sex::Female
        }
    }

    fn family_name(&mut self, ethnic: usize, south: bool) -> &'static str {
        let own = tables::minority_families(ethnic);
        if !own.is_empty() && self.rng.random_range(0..1000) < tables::MINORITY_OWN_NAME_PERMILLE {
            return one_of(&mut self.rng, own);
        }
        let name = tables::FAMILY.pick(&mut self.rng);
        tables::regional_family(&mut self.rng, name, south)
    }

    fn try_household(&mut self) -> Option<SynthHousehold> {
        let places = &*PLACES;
        let province = &places.provinces[places.province_table.pick(&mut self.rng)];
        let commune = &province.communes[province.commune_table.pick(&mut self.rng)];
        let ethnic = tables::ethnic_table(province.region).pick(&mut self.rng);
        let religion = tables::household_religion(&mut self.rng, ethnic, province.region);
        let mut fam = Family {
            protos: Vec::with_capacity(8),
            parent_groups: 0,
        };
        self.draw_members(&mut fam, ethnic, province.south);
        let head_dob = fam.protos.first()?.dob;
        let address = self.household_address(province, commune, add_years(head_dob, 18));
        self.households += 1;
        let household_id = format!("{}{:05}{:06}", commune.code, self.chunk, self.households);
        self.materialise(
            fam,
            province,
            commune,
            ethnic,
            religion,
            address,
            household_id,
        )
    }

    // ---------------------------------------------------------------- who lives together

    fn draw_members(&mut self, fam: &mut Family, ethnic: usize, south: bool) {
        let kind = self.rng.random_range(0..1000);
        match kind {
            0..105 => self.single(fam, ethnic, south),
            105..215 => {
                // A couple without children at home: newly-weds or empty nesters.
                let age = if self.chance(0.45) {
                    self.rng.random_range(22..=32)
                } else {
                    self.rng.random_range(50..=62) + self.rng.random_range(0..=16)
                };
                self.couple(fam, age, ethnic, south);
            }
            215..650 => {
                let age = self.rng.random_range(23..=34) + self.rng.random_range(0..=30);
                let (h, w) = self.couple(fam, age, ethnic, south);
                let n = self.child_count();
                self.children(fam, Some(h), Some(w), n, Relationship::Child);
            }
            650..705 => self.single_parent(fam, ethnic, south),
            705..815 => self.with_parents(fam, ethnic, south),
            815..950 => self.three_generations(fam, ethnic, south),
            _ => self.others(fam, ethnic, south),
        }
    }

    fn child_count(&mut self) -> usize {
        match self.rng.random_range(0..100) {
            0..20 => 1,
            20..70 => 2,
            70..92 => 3,
            _ => 4,
        }
    }

    fn single(&mut self, fam: &mut Family, ethnic: usize, south: bool) {
        let age = match self.rng.random_range(0..100) {
            0..38 => self.rng.random_range(18..=34),
            38..60 => self.rng.random_range(35..=59),
            _ => self.rng.random_range(60..=75) + self.rng.random_range(0..=25),
        };
        let sex = if age >= 60 && self.chance(0.7) {
            Sex::Female
        } else {
            self.sex()
        };
        let dob = self.dob_for_age(age);
        let family = self.family_name(ethnic, south);
        let head = fam.add(sex, dob, Relationship::Head, family);
        let marital = match age {
            ..30 => MaritalStatus::Single,
            30..60 => match self.rng.random_range(0..10) {
                0..5 => MaritalStatus::Single,
                5..8 => MaritalStatus::Divorced,
                _ => MaritalStatus::Widowed,
            },
            _ => match self.rng.random_range(0..10) {
                0..7 => MaritalStatus::Widowed,
                7..9 => MaritalStatus::Divorced,
                _ => MaritalStatus::Single,
            },
        };
        fam.protos[head].marital = marital;
        fam.protos[head].absent_parents = Some(fam.new_parent_group());
        if marital == MaritalStatus::Widowed {
            self.deceased_spouse(fam, head, ethnic, south);
        }
    }

    /// A married couple heading a new household (call on an empty family); the head is the
    /// husband four times in five. Returns (husband, wife).
    fn couple(
        &mut self,
        fam: &mut Family,
        husband_age: i32,
        ethnic: usize,
        south: bool,
    ) -> (usize, usize) {
        let diff = self.rng.random_range(-2..=4) + self.rng.random_range(0..=3);
        let husband_age = husband_age.max(21);
        let wife_age = (husband_age - diff).max(19);
        let (hd, wd) = (self.dob_for_age(husband_age), self.dob_for_age(wife_age));
        let (hf, wf) = (
            self.family_name(ethnic, south),
            self.family_name(ethnic, south),
        );
        let (h, w) = if self.chance(0.8) {
            let h = fam.add(Sex::Male, hd, Relationship::Head, hf);
            (h, fam.add(Sex::Female, wd, Relationship::Spouse, wf))
        } else {
            let w = fam.add(Sex::Female, wd, Relationship::Head, wf);
            (fam.add(Sex::Male, hd, Relationship::Spouse, hf), w)
        };
        fam.marry(h, w);
        for p in [h, w] {
            if fam.protos[p].absent_parents.is_none() && fam.protos[p].father.is_none() {
                fam.protos[p].absent_parents = Some(fam.new_parent_group());
            }
        }
        (h, w)
    }

    /// Children of a father and/or mother, born one after another; grown children have mostly
    /// moved out.
    fn children(
        &mut self,
        fam: &mut Family,
        father: Option<usize>,
        mother: Option<usize>,
        n: usize,
        rel: Relationship,
    ) -> Vec<usize> {
        let mut out = Vec::new();
        let Some(anchor) = mother.or(father) else {
            return out;
        };
        let family = match father {
            Some(f) => fam.protos[f].family,
            None => fam.protos[anchor].family,
        };
        let shared = if father.is_none() || mother.is_none() {
            Some(fam.new_parent_group())
        } else {
            None
        };
        let mut gap_days: u64 =
            self.rng.random_range(19..=31) * 365 + self.rng.random_range(0..365);
        for _ in 0..n {
            let dob = plus_days(fam.protos[anchor].dob, gap_days);
            gap_days += self.rng.random_range(1..=6) * 365 + self.rng.random_range(0..200);
            if dob > self.today {
                break;
            }
            if ![father, mother]
                .iter()
                .flatten()
                .all(|p| self.can_be_parent(&fam.protos[*p], dob))
            {
                continue;
            }
            let age = PartialDate::Full(dob).age_on(self.today);
            if age >= 25 && !self.chance(0.3) {
                continue;
            }
            let sex = self.sex();
            let c = fam.add(sex, dob, rel, family);
            fam.protos[c].father = father;
            fam.protos[c].mother = mother;
            fam.protos[c].absent_parents = shared;
            out.push(c);
        }
        out
    }

    fn single_parent(&mut self, fam: &mut Family, ethnic: usize, south: bool) {
        let age = self.rng.random_range(26..=40) + self.rng.random_range(0..=14);
        let sex = if self.chance(0.75) {
            Sex::Female
        } else {
            Sex::Male
        };
        let dob = self.dob_for_age(age);
        let family = self.family_name(ethnic, south);
        let head = fam.add(sex, dob, Relationship::Head, family);
        fam.protos[head].absent_parents = Some(fam.new_parent_group());
        let widowed = self.chance(0.45);
        fam.protos[head].marital = if widowed {
            MaritalStatus::Widowed
        } else {
            MaritalStatus::Divorced
        };
        let other = if widowed {
            self.deceased_spouse(fam, head, ethnic, south)
        } else {
            None
        };
        let n = self.child_count().min(3);
        let (father, mother) = if sex == Sex::Male {
            (Some(head), other)
        } else {
            (other, Some(head))
        };
        let kids = self.children(fam, father, mother, n, Relationship::Child);
        if father.is_none() {
            // The father is not on record here: the children carry his family name, drawn anew.
            let fname = self.family_name(ethnic, south);
            for k in kids {
                fam.protos[k].family = fname;
            }
        }
    }

    /// A couple with children and one or both of the head's parents.
    fn with_parents(&mut self, fam: &mut Family, ethnic: usize, south: bool) {
        let age = self.rng.random_range(30..=42) + self.rng.random_range(0..=18);
        let (h, w) = self.couple(fam, age, ethnic, south);
        let head = 0;
        let n = self.child_count();
        self.children(fam, Some(h), Some(w), n, Relationship::Child);
        let head_dob = fam.protos[head].dob;
        let head_family = fam.protos[head].family;
        let gap = self.rng.random_range(22..=34);
        let fd = minus_days(add_years(head_dob, -gap), self.rng.random_range(0..365));
        let md = plus_days(
            fd,
            self.rng.random_range(0..=6) * 365 + self.rng.random_range(0..365),
        );
        let today = self.today;
        let too_old = |d: NaiveDate| PartialDate::Full(d).age_on(today) > 102;
        let (want_f, want_m) = match self.rng.random_range(0..100) {
            0..55 => (true, true),
            55..90 => (false, true),
            _ => (true, false),
        };
        let f = (want_f && !too_old(fd) && parent_gap_ok(fd, head_dob))
            .then(|| fam.add(Sex::Male, fd, Relationship::Parent, head_family));
        let mother_family = self.family_name(ethnic, south);
        let m = (want_m && !too_old(md) && parent_gap_ok(md, head_dob))
            .then(|| fam.add(Sex::Female, md, Relationship::Parent, mother_family));
        match (f, m) {
            (Some(f), Some(m)) => fam.marry(f, m),
            (Some(one), None) | (None, Some(one)) => {
                fam.protos[one].marital = MaritalStatus::Widowed;
                // The late parent, when on record, is the head's other parent.
                if let Some(d) = self.deceased_spouse(fam, one, ethnic, south)
                    && self.can_be_parent(&fam.protos[d], head_dob)
                {
                    match fam.protos[d].sex {
                        Sex::Male => {
                            fam.protos[d].family = head_family;
                            fam.protos[head].father = Some(d);
                        }
                        Sex::Female => fam.protos[head].mother = Some(d),
                    }
                }
            }
            (None, None) => {}
        }
        for p in [f, m].into_iter().flatten() {
            fam.protos[p].absent_parents = Some(fam.new_parent_group());
        }
        fam.protos[head].father = fam.protos[head].father.or(f);
        fam.protos[head].mother = fam.protos[head].mother.or(m);
        if f.is_some() || m.is_some() {
            fam.protos[head].absent_parents = None;
        }
    }

    /// An older head, a married child with spouse and grandchildren, maybe a younger child.
    fn three_generations(&mut self, fam: &mut Family, ethnic: usize, south: bool) {
        let age = self.rng.random_range(48..=60) + self.rng.random_range(0..=18);
        let (father, mother) = if self.chance(0.75) {
            let (h, w) = self.couple(fam, age, ethnic, south);
            (Some(h), Some(w))
        } else {
            let sex = if self.chance(0.7) {
                Sex::Female
            } else {
                Sex::Male
            };
            let dob = self.dob_for_age(age);
            let family = self.family_name(ethnic, south);
            let head = fam.add(sex, dob, Relationship::Head, family);
            fam.protos[head].absent_parents = Some(fam.new_parent_group());
            fam.protos[head].marital = MaritalStatus::Widowed;
            let other = self.deceased_spouse(fam, head, ethnic, south);
            if sex == Sex::Male {
                (Some(head), other)
            } else {
                (other, Some(head))
            }
        };
        // The married child is a son who stays with his parents (the usual pattern).
        let Some(anchor) = mother.or(father) else {
            return;
        };
        let anchor_dob = fam.protos[anchor].dob;
        let son_dob = plus_days(
            anchor_dob,
            self.rng.random_range(21..=32) * 365 + self.rng.random_range(0..365),
        );
        let ok = |d: NaiveDate| {
            [father, mother]
                .iter()
                .flatten()
                .all(|p| self.can_be_parent(&fam.protos[*p], d))
        };
        let son_age = PartialDate::Full(son_dob).age_on(self.today);
        if son_age < 21 || !ok(son_dob) || father.is_none() {
            return;
        }
        let son_family = father.map_or(fam.protos[anchor].family, |f| fam.protos[f].family);
        let son = fam.add(Sex::Male, son_dob, Relationship::Child, son_family);
        fam.protos[son].father = father;
        fam.protos[son].mother = mother;
        let wife_age = (son_age - self.rng.random_range(-1..=5)).max(19);
        let wd = self.dob_for_age(wife_age);
        let wf = self.family_name(ethnic, south);
        let dil = fam.add(Sex::Female, wd, Relationship::OtherRelative, wf);
        fam.protos[dil].outsider = true;
        fam.protos[dil].absent_parents = Some(fam.new_parent_group());
        fam.marry(son, dil);
        let n = self.child_count().min(3);
        self.children(fam, Some(son), Some(dil), n, Relationship::Grandchild);
        if self.chance(0.3) {
            // A younger, unmarried child still at home.
            let dob = plus_days(
                son_dob,
                self.rng.random_range(2..=8) * 365 + self.rng.random_range(0..365),
            );
            let ok = [father, mother]
                .iter()
                .flatten()
                .all(|p| self.can_be_parent(&fam.protos[*p], dob));
            if dob <= self.today && ok && PartialDate::Full(dob).age_on(self.today) < 32 {
                let sex = self.sex();
                let c = fam.add(sex, dob, Relationship::Child, son_family);
                fam.protos[c].father = father;
                fam.protos[c].mother = mother;
            }
        }
    }

    /// Siblings living together, or a head with lodgers.
    fn others(&mut self, fam: &mut Family, ethnic: usize, south: bool) {
        let age = self.rng.random_range(18..=38);
        let dob = self.dob_for_age(age);
        let family = self.family_name(ethnic, south);
        let sex = self.sex();
        let head = fam.add(sex, dob, Relationship::Head, family);
        let group = fam.new_parent_group();
        fam.protos[head].absent_parents = Some(group);
        let n = self.rng.random_range(1..=2);
        if self.chance(0.6) {
            for _ in 0..n {
                let sib_age = (age + self.rng.random_range(-6..=6)).max(15);
                let dob = self.dob_for_age(sib_age);
                let sex = self.sex();
                let s = fam.add(sex, dob, Relationship::Sibling, family);
                fam.protos[s].absent_parents = Some(group);
            }
        } else {
            for _ in 0..n {
                let lodger_age = self.rng.random_range(18..=30);
                let dob = self.dob_for_age(lodger_age);
                let sex = self.sex();
                let family = self.family_name(0, south);
                let l = fam.add(sex, dob, Relationship::Unrelated, family);
                fam.protos[l].outsider = true;
                fam.protos[l].absent_parents = Some(fam.new_parent_group());
            }
        }
    }

    /// Sometimes adds the record of the late spouse of `survivor` (a dead person who is not a
    /// member of the household). Returns it, so children can name it as their parent.
    fn deceased_spouse(
        &mut self,
        fam: &mut Family,
        survivor: usize,
        ethnic: usize,
        south: bool,
    ) -> Option<usize> {
        let s = &fam.protos[survivor];
        let age = PartialDate::Full(s.dob).age_on(self.today);
        if age < 45 || !self.chance(DECEASED_SPOUSE_RECORD) {
            return None;
        }
        let (sex, shift) = match s.sex {
            Sex::Female => (Sex::Male, self.rng.random_range(0..=6)),
            Sex::Male => (Sex::Female, -self.rng.random_range(0..=5)),
        };
        let dob = minus_days(add_years(s.dob, -shift), self.rng.random_range(0..365));
        let earliest = add_years(dob, 40).max(add_years(self.today, -12));
        let latest = minus_days(self.today, 1);
        if earliest > latest {
            return None;
        }
        let died = self.between(earliest, latest);
        let family = self.family_name(ethnic, south);
        let d = fam.add(sex, dob, Relationship::Spouse, family);
        fam.protos[d].died = Some(died);
        fam.protos[d].spouse = Some(survivor);
        fam.protos[d].marital = MaritalStatus::Married;
        fam.protos[d].absent_parents = Some(fam.new_parent_group());
        Some(d)
    }

    // ---------------------------------------------------------------- places

    fn household_address(
        &mut self,
        province: &Province,
        commune: &Commune,
        adult: NaiveDate,
    ) -> Address {
        let detail = self.detail(province, commune);
        let reform = Scheme::REFORM_DATE;
        let last_legacy = minus_days(reform, 1).min(self.today);
        let start = adult.max(ymd(1995, 1, 1));
        let recent = self.today >= reform && (start > last_legacy || self.chance(0.15));
        let (scheme, code, from) = if recent {
            let from = self.between(start.max(reform), self.today);
            (Scheme::Y2025, commune.code, from)
        } else {
            let from = self.between(start.min(last_legacy), last_legacy);
            (
                Scheme::Legacy,
                one_of(&mut self.rng, &commune.legacy).code,
                from,
            )
        };
        Address {
            scheme,
            commune_code: code.to_owned(),
            detail,
            effective_from: from,
        }
    }

    fn detail(&mut self, province: &Province, commune: &Commune) -> String {
        let r = &mut self.rng;
        let n = r.random_range(1..=250);
        let m = r.random_range(1..=400);
        if commune.urban {
            let street = one_of(r, &tables::STREETS);
            match (province.south, r.random_range(0..4)) {
                (false, 0) => format!("Số {n}, ngõ {m}, phố {street}"),
                (false, 1) => format!("Số {n} phố {street}"),
                (false, 2) => format!(
                    "Số {n}, ngách {}/{m}, đường {street}",
                    r.random_range(1..=60)
                ),
                (false, _) => format!("Tổ dân phố số {}", r.random_range(1..=40)),
                (true, 0) => format!("Số {n}, hẻm {m}, đường {street}"),
                (true, 1) => format!("Số {n} đường {street}"),
                (true, 2) => format!("{n}/{m} đường {street}"),
                (true, _) => format!("Khu phố {}", r.random_range(1..=20)),
            }
        } else {
            let village = one_of(r, &tables::VILLAGES);
            match (province.region, province.south, r.random_range(0..3)) {
                (Region::NorthMountain, _, 0 | 1) => {
                    format!("Bản {}", one_of(r, &tables::MOUNTAIN_VILLAGES[..9]))
                }
                (Region::Highlands, _, 0) => {
                    format!("Buôn {}", one_of(r, &tables::MOUNTAIN_VILLAGES[9..]))
                }
                (_, true, 0) => format!("Tổ {}, ấp {village}", r.random_range(1..=15)),
                (_, true, _) => format!("Ấp {village}"),
                (_, false, 0) => format!("Xóm {}", r.random_range(1..=20)),
                (_, false, 1) => format!("Số {n}, thôn {village}"),
                (_, false, _) => format!("Thôn {village}"),
            }
        }
    }

    /// The birth registration of someone born on `dob` and the place index of the ID.
    fn birth_registration(
        &mut self,
        home: (&Province, &Commune),
        dob: NaiveDate,
        migrant: bool,
    ) -> (Address, usize) {
        let places = &*PLACES;
        let (province, commune) = if migrant {
            let p = &places.provinces[places.province_table.pick(&mut self.rng)];
            (p, &p.communes[p.commune_table.pick(&mut self.rng)])
        } else {
            home
        };
        let registered = plus_days(dob, self.rng.random_range(0..=45)).min(self.today);
        if dob >= Scheme::REFORM_DATE {
            let address = Address {
                scheme: Scheme::Y2025,
                commune_code: commune.code.to_owned(),
                detail: String::new(),
                effective_from: registered,
            };
            (address, province.place)
        } else {
            let legacy = one_of(&mut self.rng, &commune.legacy);
            let address = Address {
                scheme: Scheme::Legacy,
                commune_code: legacy.code.to_owned(),
                detail: String::new(),
                effective_from: registered.min(minus_days(Scheme::REFORM_DATE, 1)),
            };
            (address, legacy.place)
        }
    }

    /// Birth registration and a fresh, unique ID; `None` only if every try found the chunk's
    /// share of serials used up.
    fn identify(
        &mut self,
        home: (&Province, &Commune),
        p: &Proto,
    ) -> Option<(Address, PersonalId)> {
        let migrant_rate = if p.outsider {
            0.6
        } else if p.rel == Relationship::Child || p.rel == Relationship::Grandchild {
            0.05
        } else {
            0.15
        };
        let mut migrant = self.chance(migrant_rate);
        for _ in 0..32 {
            let (address, place) = self.birth_registration(home, p.dob, migrant);
            if let Some(serial) = self.serials.take(place, p.sex, p.dob.year()) {
                let id =
                    PersonalId::compose(PLACE_CODES[place].0, p.sex, p.dob.year(), serial).ok()?;
                return Some((address, id));
            }
            migrant = true;
        }
        None
    }

    // ---------------------------------------------------------------- records

    fn name(&mut self, p: &Proto, ethnic: usize) -> PersonName {
        let young = p.dob.year() >= 1990;
        let middle = match (p.sex, young) {
            (Sex::Male, _) if tables::ETHNIC[ethnic] == "H'Mông" && self.chance(0.6) => "A",
            (Sex::Male, false) => tables::MIDDLE_MALE_OLD.pick(&mut self.rng),
            (Sex::Male, true) => tables::MIDDLE_MALE_YOUNG.pick(&mut self.rng),
            (Sex::Female, false) => tables::MIDDLE_FEMALE_OLD.pick(&mut self.rng),
            (Sex::Female, true) => tables::MIDDLE_FEMALE_YOUNG.pick(&mut self.rng),
        };
        let given = match p.sex {
            Sex::Male => tables::MALE_GIVEN_TABLE.pick(&mut self.rng),
            Sex::Female => tables::FEMALE_GIVEN_TABLE.pick(&mut self.rng),
        };
        PersonName {
            family: p.family.to_owned(),
            middle: middle.to_owned(),
            given: given.to_owned(),
        }
    }

    fn loose_name(&mut self, family: &'static str, sex: Sex, born: i32) -> String {
        let p = Proto {
            sex,
            dob: ymd(born, 1, 1),
            rel: Relationship::OtherRelative,
            family,
            spouse: None,
            father: None,
            mother: None,
            marital: MaritalStatus::Single,
            died: None,
            outsider: false,
            absent_parents: None,
        };
        self.name(&p, 0).full()
    }

    #[allow(clippy::too_many_arguments)]
    fn materialise(
        &mut self,
        fam: Family,
        province: &Province,
        commune: &Commune,
        ethnic: usize,
        religion: &'static str,
        address: Address,
        household_id: String,
    ) -> Option<SynthHousehold> {
        let protos = fam.protos;
        let n = protos.len();
        let mut ids = Vec::with_capacity(n);
        let mut births = Vec::with_capacity(n);
        for p in &protos {
            let (birth, id) = self.identify((province, commune), p)?;
            ids.push(id);
            births.push(birth);
        }
        let names: Vec<PersonName> = protos.iter().map(|p| self.name(p, ethnic)).collect();
        // Names of parents who are not in the household, shared by siblings.
        let mut groups: Vec<Option<(Option<String>, Option<String>)>> =
            vec![None; fam.parent_groups];
        let relative = |i: usize| Relative {
            id: Some(ids[i]),
            name: names[i].full(),
        };
        let mut members = Vec::with_capacity(n);
        let mut deceased = Vec::new();
        for (i, (p, birth)) in protos.iter().zip(births).enumerate() {
            let date_of_birth = self.partial_dob(p.dob);
            let (mut father, mut mother) = (p.father.map(relative), p.mother.map(relative));
            if let Some(g) = p.absent_parents
                && let Some(slot) = groups.get_mut(g)
            {
                if slot.is_none() {
                    let born = p.dob.year() - 28;
                    let f = self
                        .chance(0.6)
                        .then(|| self.loose_name(p.family, Sex::Male, born));
                    let mfam = self.family_name(ethnic, province.south);
                    let m = self
                        .chance(0.6)
                        .then(|| self.loose_name(mfam, Sex::Female, born + 2));
                    *slot = Some((f, m));
                }
                if let Some((f, m)) = slot {
                    father = father.or_else(|| f.clone().map(|name| Relative { id: None, name }));
                    mother = mother.or_else(|| m.clone().map(|name| Relative { id: None, name }));
                }
            }
            let end = p.died.unwrap_or(self.today);
            let recorded = date_of_birth.latest();
            let (legacy_cmnd, mut cards) =
                self.documents(ids[i], recorded, end, birth.scheme == Scheme::Legacy);
            let person_religion = if self.chance(0.03) {
                "Không"
            } else {
                religion
            };
            let from = address.effective_from.max(p.dob);
            let mut person = Person {
                id: ids[i],
                version: 1,
                name: names[i].clone(),
                other_names: Vec::new(),
                date_of_birth,
                sex: p.sex,
                birth_registration: birth,
                home_town: None,
                ethnicity: tables::ETHNIC[ethnic].to_owned(),
                religion: person_religion.to_owned(),
                nationality: "VN".to_owned(),
                marital_status: p.marital,
                blood_type: self.chance(0.3).then(|| tables::BLOOD.pick(&mut self.rng)),
                father,
                mother,
                spouse: p.spouse.map(relative),
                permanent_residence: None,
                temporary_residence: None,
                temporary_absence: None,
                last_stay: None,
                household: None,
                legacy_cmnd,
                cards: Vec::new(),
                vital_status: VitalStatus::Alive,
            };
            if let Some(died) = p.died {
                for c in &mut cards {
                    if c.status == CardStatus::Valid {
                        c.status = CardStatus::HolderDeceased;
                    }
                }
                person.cards = cards;
                person.vital_status = VitalStatus::Dead {
                    date_of_death: PartialDate::Full(died),
                };
                if from <= died {
                    person.permanent_residence = Some(Residence {
                        address: address.clone(),
                        from,
                        until: Some(died),
                    });
                }
                deceased.push(person);
            } else {
                person.cards = cards;
                person.permanent_residence = Some(Residence {
                    address: address.clone(),
                    from,
                    until: None,
                });
                person.household = Some(Membership {
                    household_id: household_id.clone(),
                    relationship: p.rel,
                });
                members.push(person);
            }
        }
        let household = Household {
            id: household_id,
            version: 1,
            address,
            members: members
                .iter()
                .map(|m| HouseholdMember {
                    person: m.id,
                    relationship: m
                        .household
                        .as_ref()
                        .map_or(Relationship::OtherRelative, |h| h.relationship),
                })
                .collect(),
        };
        Some(SynthHousehold {
            household,
            members,
            deceased,
        })
    }

    /// A few people born before 1950 have only a year, or a year and month, on record.
    fn partial_dob(&mut self, dob: NaiveDate) -> PartialDate {
        if dob.year() >= 1950 {
            return PartialDate::Full(dob);
        }
        match self.rng.random_range(0..100) {
            0..5 => PartialDate::Year(dob.year()),
            5..7 => PartialDate::YearMonth(dob.year(), dob.month()),
            _ => PartialDate::Full(dob),
        }
    }

    /// Legacy CMND numbers and chip cards, from 14 years of age (recorded date of birth, at its
    /// latest) up to `end` (today, or the date of death).
    fn documents(
        &mut self,
        id: PersonalId,
        dob: NaiveDate,
        end: NaiveDate,
        legacy_birth: bool,
    ) -> (Vec<LegacyCmnd>, Vec<CardRecord>) {
        let at14 = add_years(dob, 14);
        let mut cmnd = Vec::new();
        let cmnd_last = ymd(2015, 12, 31).min(end);
        let cmnd_first = at14.max(ymd(1980, 1, 1));
        if legacy_birth && dob.year() < 2000 && cmnd_first <= cmnd_last && self.chance(0.88) {
            let issued = self.between(cmnd_first, cmnd_last);
            let prefix = &id.place_code()[1..];
            let text = if issued.year() >= 2012 && self.chance(0.2) {
                format!("0{prefix}{:09}", self.rng.random_range(0..1_000_000_000u32))
            } else {
                format!("{prefix}{:07}", self.rng.random_range(0..10_000_000u32))
            };
            if let Ok(number) = CmndNumber::parse(&text) {
                cmnd.push(LegacyCmnd {
                    number,
                    issued_on: Some(issued),
                });
            }
        }
        let mut cards = Vec::new();
        let cccd_start = ymd(2016, 1, 1);
        let can_cuoc_start = ymd(2024, 7, 1);
        let mut issued = if at14 <= end {
            let first = at14.max(cccd_start);
            if first > end || !self.chance(0.94) {
                return (cmnd, cards);
            }
            let (campaign_a, campaign_b) = (ymd(2021, 3, 1), ymd(2022, 6, 30));
            let (a, b) = (first.max(campaign_a), end.min(campaign_b));
            if a <= b && self.chance(0.55) {
                self.between(a, b)
            } else {
                self.between(first, end)
            }
        } else {
            // A căn cước for a child under 14 (possible since 1 July 2024): rare.
            let first = dob.max(can_cuoc_start);
            if first > end || !self.chance(0.04) {
                return (cmnd, cards);
            }
            self.between(first, end)
        };
        for _ in 0..6 {
            let expires_on = card_expiry(dob, issued);
            let kind = if issued < can_cuoc_start {
                CardKind::Cccd
            } else {
                CardKind::CanCuoc
            };
            cards.push(CardRecord {
                number: id.as_str().to_owned(),
                kind,
                issued_on: issued,
                expires_on,
                status: CardStatus::Valid,
            });
            let Some(expiry) = expires_on.filter(|e| *e <= end) else {
                break;
            };
            // Exchanged at 14, or shortly before the card of an adult runs out.
            let next = if expiry == at14 {
                plus_days(expiry, self.rng.random_range(0..30))
            } else {
                minus_days(expiry, self.rng.random_range(0..60))
            }
            .max(plus_days(issued, 1));
            if next > end {
                break;
            }
            if let Some(last) = cards.last_mut() {
                last.status = CardStatus::Replaced;
            }
            issued = next;
        }
        (cmnd, cards)
    }
}

/// Printed expiry of a chip card issued on `issued` to someone born on `dob`: the 14th birthday
/// for a child's card; else the 25th, 40th or 60th birthday, skipping an age the card was issued
/// within two years before; none for cards issued from 58 on.
pub(crate) fn card_expiry(dob: NaiveDate, issued: NaiveDate) -> Option<NaiveDate> {
    let at14 = add_years(dob, 14);
    if issued < at14 {
        return Some(at14);
    }
    [25, 40, 60]
        .into_iter()
        .map(|age| add_years(dob, age))
        .find(|birthday| issued < add_years(*birthday, -2))
}

/// The members of a household being drawn.
#[derive(Debug)]
struct Family {
    protos: Vec<Proto>,
    parent_groups: usize,
}

impl Family {
    fn add(&mut self, sex: Sex, dob: NaiveDate, rel: Relationship, family: &'static str) -> usize {
        self.protos.push(Proto {
            sex,
            dob,
            rel,
            family,
            spouse: None,
            father: None,
            mother: None,
            marital: MaritalStatus::Single,
            died: None,
            outsider: false,
            absent_parents: None,
        });
        self.protos.len() - 1
    }

    fn marry(&mut self, a: usize, b: usize) {
        self.protos[a].spouse = Some(b);
        self.protos[b].spouse = Some(a);
        self.protos[a].marital = MaritalStatus::Married;
        self.protos[b].marital = MaritalStatus::Married;
    }

    fn new_parent_group(&mut self) -> usize {
        self.parent_groups += 1;
        self.parent_groups - 1
    }
}
