//! The generated population as a spec: every record passes the domain rules, the same seed gives
//! the same people, IDs are unique across chunks, and the shares look like Vietnam's.

use super::*;
use crate::household::{add_years, card_expiry, parent_gap_ok};
use chrono::Datelike;
use dancu_domain::PersonName;
use dancu_domain::admin::Address;
use dancu_domain::event::{PersonChange, apply};
use dancu_domain::person::{CardKind, CardStatus, MaritalStatus, Relationship, Sex, VitalStatus};
use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 15).unwrap()
}

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

/// 20,000+ records shared by the tests below (generated once).
static SAMPLE: LazyLock<Vec<SynthHousehold>> = LazyLock::new(|| generate(2024, 20_000, today()));

fn people() -> impl Iterator<Item = &'static Person> {
    SAMPLE.iter().flat_map(|h| h.people())
}

fn age(p: &Person) -> i32 {
    p.date_of_birth.age_on(today())
}

fn share(count: usize, of: usize) -> f64 {
    count as f64 * 100.0 / of as f64
}

#[test]
fn every_record_passes_the_domain_rules() {
    let mut n = 0;
    for p in people() {
        n += 1;
        p.id.check_against(&p.date_of_birth, p.sex).unwrap();
        assert_eq!(
            PersonName::parse(&p.name.full()).unwrap(),
            p.name,
            "{}",
            p.name
        );
        assert_eq!(
            PersonName::from_parts(&p.name.family, &p.name.middle, &p.name.given).unwrap(),
            p.name
        );
        p.birth_registration.validate().unwrap();
        let place = &p.id.place_code()[1..];
        let birth_province = p.birth_registration.commune().unwrap().province_code;
        assert_eq!(
            place, birth_province,
            "{} registered in {:?}",
            p.id, p.birth_registration
        );
        assert!(p.birth_registration.effective_from >= p.date_of_birth.earliest());
        assert!(p.birth_registration.effective_from <= today());
        if let Some(r) = &p.permanent_residence {
            r.address.validate().unwrap();
            // Built without Address::new: the detail must already be in normal form.
            let again = Address::new(
                r.address.scheme,
                &r.address.commune_code,
                &r.address.detail,
                r.address.effective_from,
            );
            assert_eq!(again.as_ref(), Ok(&r.address));
            assert!(r.from >= r.address.effective_from && r.from >= p.date_of_birth.earliest());
        }
        for relative in [&p.father, &p.mother, &p.spouse].into_iter().flatten() {
            PersonName::parse(&relative.name).unwrap();
        }
        assert!(p.date_of_birth.earliest() <= today());
        assert_eq!(p.nationality, "VN");
        assert!(!p.ethnicity.is_empty() && !p.religion.is_empty());
        let imported = apply(
            None,
            &PersonChange::RecordImported {
                record: Box::new(p.clone()),
            },
        )
        .unwrap();
        assert_eq!(imported.version, 1);
    }
    assert!(n >= 20_000);
}

#[test]
fn birth_registration_scheme_follows_the_birth_date() {
    // Generate enough young children to see births on both sides of the reform.
    let mut after = 0;
    for p in people() {
        let born = p.date_of_birth.earliest();
        let expected = dancu_domain::admin::Scheme::for_date(born);
        assert_eq!(p.birth_registration.scheme, expected, "{}", p.id);
        if born >= dancu_domain::admin::Scheme::REFORM_DATE {
            after += 1;
        }
    }
    assert!(after > 0);
}

#[test]
fn same_seed_same_people_other_seed_other_people() {
    let a = generate(7, 3_000, today());
    let b = generate(7, 3_000, today());
    assert_eq!(a, b);
    let c = generate(8, 3_000, today());
    assert_ne!(a[0].members[0].id, c[0].members[0].id);
    // The stream is the concatenation of the chunks, and the parallel build is the same.
    let stream: Vec<SynthHousehold> = Generator::new(7, today()).take(a.len()).collect();
    assert_eq!(stream, a);
    let first = chunk(7, 0, today());
    assert_eq!(
        &first[..a.len().min(first.len())],
        &a[..a.len().min(first.len())]
    );
    let parallel = generate_parallel(7, 25_000, today(), 2);
    assert_eq!(parallel, generate(7, 25_000, today()));
}

#[test]
fn ids_are_unique_across_chunks() {
    let mut seen = HashSet::new();
    let chunks: Vec<Vec<SynthHousehold>> = std::thread::scope(|s| {
        let handles: Vec<_> = [0u32, 1, 2, 777, MAX_CHUNKS - 1]
            .into_iter()
            .map(|i| s.spawn(move || chunk(99, i, today())))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut households = HashSet::new();
    for c in &chunks {
        assert!(c.iter().map(SynthHousehold::person_count).sum::<usize>() >= CHUNK_PEOPLE);
        for h in c {
            assert!(
                households.insert(h.household.id.clone()),
                "household {}",
                h.household.id
            );
            for p in h.people() {
                assert!(seen.insert(p.id), "duplicate ID {}", p.id);
            }
        }
    }
    assert!(chunk(99, MAX_CHUNKS, today()).is_empty());
}

#[test]
fn family_name_shares() {
    let all: Vec<&Person> = people().collect();
    let count = |name: &str| all.iter().filter(|p| p.name.family == name).count();
    let nguyen = share(count("Nguyễn"), all.len());
    assert!((35.0..=41.0).contains(&nguyen), "Nguyễn {nguyen:.1}%");
    let tran = share(count("Trần"), all.len());
    assert!((8.0..=14.0).contains(&tran), "Trần {tran:.1}%");
    let hoang = share(count("Hoàng") + count("Huỳnh"), all.len());
    assert!((3.5..=7.5).contains(&hoang), "Hoàng/Huỳnh {hoang:.1}%");
    let given: HashSet<&str> = all.iter().map(|p| p.name.given.as_str()).collect();
    assert!(given.len() > 200, "{} given names", given.len());
    for tone in ["Hòa", "Thủy", "Khoa"] {
        assert!(given.contains(tone), "{tone}");
    }
    let no_middle = all.iter().filter(|p| p.name.middle.is_empty()).count();
    let two_middle = all.iter().filter(|p| p.name.middle.contains(' ')).count();
    assert!(no_middle > 0 && two_middle > 0);
    let thi = all
        .iter()
        .filter(|p| p.sex == Sex::Male && p.name.middle.split(' ').any(|w| w == "Thị"))
        .count();
    assert_eq!(thi, 0, "men are not called Thị");
}

#[test]
fn ethnicity_religion_and_blood_type_shares() {
    let all: Vec<&Person> = people().collect();
    let kinh = share(
        all.iter().filter(|p| p.ethnicity == "Kinh").count(),
        all.len(),
    );
    assert!((80.0..=90.0).contains(&kinh), "Kinh {kinh:.1}%");
    let groups: HashSet<&str> = all.iter().map(|p| p.ethnicity.as_str()).collect();
    assert!(groups.len() >= 12, "{groups:?}");
    let none = share(
        all.iter().filter(|p| p.religion == "Không").count(),
        all.len(),
    );
    assert!((75.0..=92.0).contains(&none), "no religion {none:.1}%");
    for r in ["Phật giáo", "Công giáo", "Cao Đài", "Hòa Hảo", "Tin Lành"] {
        assert!(all.iter().any(|p| p.religion == r), "{r}");
    }
    let blood = share(
        all.iter().filter(|p| p.blood_type.is_some()).count(),
        all.len(),
    );
    assert!(
        (25.0..=35.0).contains(&blood),
        "blood type known {blood:.1}%"
    );
}

#[test]
fn age_pyramid_has_vietnams_shape() {
    let alive: Vec<&Person> = SAMPLE.iter().flat_map(|h| &h.members).collect();
    let n = alive.len();
    let band = |lo: i32, hi: i32| {
        share(
            alive.iter().filter(|p| (lo..hi).contains(&age(p))).count(),
            n,
        )
    };
    let under15 = band(0, 15);
    let working = band(15, 65);
    let old = band(65, 200);
    assert!((19.0..=28.0).contains(&under15), "0-14: {under15:.1}%");
    assert!((60.0..=73.0).contains(&working), "15-64: {working:.1}%");
    assert!((6.0..=14.0).contains(&old), "65+: {old:.1}%");
    // Wide bands from 10 to 49, narrowing above 60, a few over 90.
    for lo in (10..50).step_by(5) {
        let b = band(lo, lo + 5);
        assert!((5.0..=11.0).contains(&b), "{lo}-{}: {b:.1}%", lo + 4);
    }
    assert!(band(60, 65) > band(70, 75) && band(70, 75) > band(80, 85));
    let over90 = band(90, 200);
    assert!(over90 > 0.05 && over90 < 1.5, "90+: {over90:.2}%");
    let men = share(alive.iter().filter(|p| p.sex == Sex::Male).count(), n);
    assert!((46.0..=53.0).contains(&men), "men {men:.1}%");
}

#[test]
fn households_are_consistent() {
    let mut sizes = 0;
    let mut singles = 0;
    let mut three_gen = 0;
    for h in SAMPLE.iter() {
        let hh = &h.household;
        assert_eq!(hh.members.len(), h.members.len());
        assert_eq!(
            hh.members
                .iter()
                .filter(|m| m.relationship == Relationship::Head)
                .count(),
            1
        );
        assert_eq!(hh.members[0].relationship, Relationship::Head);
        let change = dancu_domain::event::HouseholdChange::Created {
            address: hh.address.clone(),
            members: hh.members.clone(),
        };
        dancu_domain::event::apply_household(&hh.id, None, &change).unwrap();
        sizes += h.members.len();
        singles += usize::from(h.members.len() == 1);
        let by_id: HashMap<_, _> = h.people().map(|p| (p.id, p)).collect();
        let head = &h.members[0];
        for (m, p) in hh.members.iter().zip(&h.members) {
            assert_eq!(m.person, p.id);
            let membership = p.household.as_ref().unwrap();
            assert_eq!(
                (membership.household_id.as_str(), membership.relationship),
                (hh.id.as_str(), m.relationship)
            );
            assert_eq!(p.permanent_residence.as_ref().unwrap().address, hh.address);
            assert!(!p.is_dead());
        }
        for p in h.people() {
            // Spouses: opposite sex, both married, each naming the other; old enough to marry.
            let living_spouse = p
                .spouse
                .as_ref()
                .and_then(|s| s.id)
                .and_then(|id| by_id.get(&id))
                .filter(|_| !p.is_dead());
            if let Some(s) = living_spouse {
                assert_ne!(p.sex, s.sex);
                assert_eq!(s.spouse.as_ref().and_then(|x| x.id), Some(p.id));
                assert_eq!(p.marital_status, MaritalStatus::Married);
                assert!(age(p) >= if p.sex == Sex::Male { 20 } else { 18 } || p.is_dead());
                assert!((age(p) - age(s)).abs() <= 15);
            } else if !p.is_dead() {
                assert!(p.spouse.is_none(), "spouse not in the household");
                assert_ne!(p.marital_status, MaritalStatus::Married, "{}", p.id);
            }
            // Parents named by ID are 18 to 45 years older, of the right sex.
            for (parent, sex) in [(&p.father, Sex::Male), (&p.mother, Sex::Female)] {
                if let Some(q) = parent
                    .as_ref()
                    .and_then(|r| r.id)
                    .and_then(|id| by_id.get(&id))
                {
                    assert_eq!(q.sex, sex);
                    let gap = p.date_of_birth.year() - q.date_of_birth.year();
                    assert!(
                        (18..=46).contains(&gap),
                        "{} born {} parent {}",
                        p.id,
                        p.date_of_birth,
                        q.date_of_birth
                    );
                    if let (
                        dancu_domain::PartialDate::Full(c),
                        dancu_domain::PartialDate::Full(pd),
                    ) = (p.date_of_birth, q.date_of_birth)
                    {
                        assert!(parent_gap_ok(pd, c));
                    }
                }
            }
            if let Some(f) = p.father.as_ref().filter(|f| f.id.is_some()) {
                assert!(
                    f.name.starts_with(&p.name.family),
                    "children take the father's family name"
                );
            }
        }
        for (m, p) in hh.members.iter().zip(&h.members).skip(1) {
            match m.relationship {
                Relationship::Spouse => {
                    assert_eq!(p.spouse.as_ref().and_then(|s| s.id), Some(head.id))
                }
                Relationship::Child => {
                    let parents = [&p.father, &p.mother].map(|r| r.as_ref().and_then(|r| r.id));
                    assert!(
                        parents.contains(&Some(head.id)),
                        "a child of the head names the head"
                    );
                    assert!(age(p) < age(head));
                }
                Relationship::Parent => {
                    let parents =
                        [&head.father, &head.mother].map(|r| r.as_ref().and_then(|r| r.id));
                    assert!(parents.contains(&Some(p.id)));
                }
                Relationship::Grandchild => {
                    three_gen += 1;
                    assert!(age(head) - age(p) >= 36);
                }
                _ => {}
            }
        }
        for p in &h.deceased {
            let VitalStatus::Dead { date_of_death } = p.vital_status else {
                panic!("not dead")
            };
            assert!(
                date_of_death.latest() <= today()
                    && date_of_death.earliest() >= p.date_of_birth.earliest()
            );
            assert!(p.household.is_none());
            if let Some(r) = &p.permanent_residence {
                assert_eq!(r.until, Some(date_of_death.latest()));
            }
            assert!(p.cards.iter().all(|c| c.status != CardStatus::Valid && c.issued_on <= date_of_death.latest()));
            let survivor = p
                .spouse
                .as_ref()
                .and_then(|s| s.id)
                .and_then(|id| by_id.get(&id))
                .unwrap();
            assert_eq!(survivor.marital_status, MaritalStatus::Widowed);
            assert!(survivor.spouse.is_none());
        }
    }
    let mean = sizes as f64 / SAMPLE.len() as f64;
    assert!((3.1..=3.9).contains(&mean), "mean household size {mean:.2}");
    let singles = share(singles, SAMPLE.len());
    assert!(
        (7.0..=18.0).contains(&singles),
        "single-person households {singles:.1}%"
    );
    assert!(three_gen > 0);
    let all: Vec<&Person> = people().collect();
    let dead = share(all.iter().filter(|p| p.is_dead()).count(), all.len());
    assert!((0.4..=1.1).contains(&dead), "dead {dead:.2}%");
}

#[test]
fn cards_follow_the_age_rules() {
    let mut with_card = 0;
    let mut adults = 0;
    let mut cmnd = 0;
    let mut born_before_2000 = 0;
    for p in people() {
        let dob = p.date_of_birth.latest();
        if !p.is_dead() && age(p) >= 14 {
            adults += 1;
            with_card += usize::from(p.cards.iter().any(|c| c.status == CardStatus::Valid));
        }
        if p.date_of_birth.year() < 2000 {
            born_before_2000 += 1;
            cmnd += usize::from(!p.legacy_cmnd.is_empty());
        }
        for c in &p.legacy_cmnd {
            assert!(c.number.as_str().len() == 9 || c.number.as_str().len() == 12);
            assert!(c.issued_on.unwrap() >= add_years(dob, 14));
        }
        let mut valid = 0;
        for (i, c) in p.cards.iter().enumerate() {
            assert_eq!(c.number, p.id.as_str());
            let expected = if c.issued_on < d(2024, 7, 1) {
                CardKind::Cccd
            } else {
                CardKind::CanCuoc
            };
            assert_eq!(c.kind, expected);
            assert!(c.issued_on >= d(2016, 1, 1) && c.issued_on <= today());
            assert!(c.issued_on >= add_years(dob, 14) || c.kind == CardKind::CanCuoc);
            assert_eq!(c.expires_on, card_expiry(dob, c.issued_on));
            if i + 1 < p.cards.len() {
                assert_eq!(c.status, CardStatus::Replaced);
                assert!(p.cards[i + 1].issued_on > c.issued_on);
            }
            valid += usize::from(c.status == CardStatus::Valid);
        }
        assert!(valid <= 1);
    }
    let carded = share(with_card, adults);
    assert!(carded > 85.0, "{carded:.1}% of people 14+ hold a card");
    let cmnd = share(cmnd, born_before_2000);
    assert!(
        cmnd > 70.0,
        "{cmnd:.1}% of people born before 2000 had a CMND"
    );
}

#[test]
fn expiry_rules() {
    let dob = d(2000, 5, 10);
    assert_eq!(card_expiry(dob, d(2010, 1, 1)), Some(d(2014, 5, 10)));
    assert_eq!(card_expiry(dob, d(2014, 5, 10)), Some(d(2025, 5, 10)));
    assert_eq!(card_expiry(dob, d(2023, 5, 9)), Some(d(2025, 5, 10)));
    // Within two years before 25: valid to 40.
    assert_eq!(card_expiry(dob, d(2023, 5, 10)), Some(d(2040, 5, 10)));
    assert_eq!(card_expiry(dob, d(2038, 6, 1)), Some(d(2060, 5, 10)));
    assert_eq!(card_expiry(dob, d(2058, 6, 1)), None);
    assert_eq!(card_expiry(dob, d(2070, 1, 1)), None);
}

#[test]
fn older_people_sometimes_have_partial_dates_of_birth() {
    let old: Vec<&Person> = people().filter(|p| p.date_of_birth.year() < 1950).collect();
    let partial = old
        .iter()
        .filter(|p| !matches!(p.date_of_birth, dancu_domain::PartialDate::Full(_)))
        .count();
    assert!(partial > 0 && share(partial, old.len()) < 15.0);
    assert!(
        people()
            .filter(|p| p.date_of_birth.year() >= 1950)
            .all(|p| matches!(p.date_of_birth, dancu_domain::PartialDate::Full(_)))
    );
}

#[test]
fn big_cities_are_big_and_residence_schemes_mix() {
    let mut by_province: HashMap<&str, usize> = HashMap::new();
    let mut legacy = 0;
    for h in SAMPLE.iter() {
        let view = h.household.address.in_current_scheme().unwrap();
        *by_province.entry(view.province().code).or_default() += h.members.len();
        legacy += usize::from(h.household.address.scheme == dancu_domain::admin::Scheme::Legacy);
    }
    let total: usize = by_province.values().sum();
    let hcm = share(by_province["79"], total);
    let hanoi = share(by_province["01"], total);
    assert!((10.0..=18.0).contains(&hcm), "HCM {hcm:.1}%");
    assert!((6.0..=12.0).contains(&hanoi), "Hà Nội {hanoi:.1}%");
    assert_eq!(by_province.len(), 34);
    let legacy = share(legacy, SAMPLE.len());
    assert!(
        (60.0..=95.0).contains(&legacy),
        "legacy-scheme residences {legacy:.1}%"
    );
}

#[test]
fn before_the_reform_everything_is_legacy() {
    let early = d(2024, 1, 1);
    for h in generate(5, 2_000, early) {
        assert_eq!(
            h.household.address.scheme,
            dancu_domain::admin::Scheme::Legacy
        );
        h.household.address.validate().unwrap();
        for p in h.people() {
            assert_eq!(
                p.birth_registration.scheme,
                dancu_domain::admin::Scheme::Legacy
            );
            assert!(p.date_of_birth.earliest() <= early);
            assert!(
                p.cards
                    .iter()
                    .all(|c| c.issued_on <= early && c.kind == CardKind::Cccd)
            );
        }
    }
}

#[test]
fn feb_29_and_ages() {
    assert_eq!(add_years(d(2024, 2, 29), 1), d(2025, 2, 28));
    assert_eq!(add_years(d(2024, 2, 29), -4), d(2020, 2, 29));
    assert!(parent_gap_ok(d(1980, 1, 1), d(1998, 1, 1)));
    assert!(!parent_gap_ok(d(1980, 1, 2), d(1998, 1, 1)));
    assert!(parent_gap_ok(d(1950, 1, 1), d(1995, 12, 31)));
    assert!(!parent_gap_ok(d(1950, 1, 1), d(1996, 1, 1)));
    assert_eq!(today().year(), 2026);
}

/// `cargo test -p dancu-synth print_stats -- --ignored --nocapture` shows the shapes.
#[test]
#[ignore]
fn print_stats() {
    let alive: Vec<&Person> = SAMPLE.iter().flat_map(|h| &h.members).collect();
    let n = alive.len();
    for lo in (0..105).step_by(5) {
        let c = alive
            .iter()
            .filter(|p| (lo..lo + 5).contains(&age(p)))
            .count();
        println!(
            "{lo:>3}-{:<3} {:5.2}% {}",
            lo + 4,
            share(c, n),
            "#".repeat(c * 400 / n)
        );
    }
    let all: Vec<&Person> = people().collect();
    println!(
        "households {} people {} mean {:.2} dead {:.2}%",
        SAMPLE.len(),
        all.len(),
        n as f64 / SAMPLE.len() as f64,
        share(all.iter().filter(|p| p.is_dead()).count(), all.len())
    );
    let mut sizes: HashMap<usize, usize> = HashMap::new();
    for h in SAMPLE.iter() {
        *sizes.entry(h.members.len()).or_default() += 1;
    }
    let mut sizes: Vec<_> = sizes.into_iter().collect();
    sizes.sort();
    println!("sizes {sizes:?}");
    for p in all.iter().take(12) {
        println!(
            "{} {} {} {} {} {}",
            p.id,
            p.name,
            p.date_of_birth,
            p.ethnicity,
            p.religion,
            p.permanent_residence
                .as_ref()
                .map(|r| r.address.display())
                .unwrap_or_default()
        );
    }
}
