//! The registry of administrative units of both schemes, loaded once from the embedded CSVs.

use std::sync::{LazyLock, OnceLock};

use super::Scheme;
use super::csv::records;
use super::units::{
    Commune, CommuneKind, CommuneMapping, District, DistrictKind, DistrictMapping, Province,
    ProvinceKind,
};

const PROVINCES_LEGACY: &str = include_str!("../../data/provinces_legacy.csv");
const DISTRICTS_LEGACY: &str = include_str!("../../data/districts_legacy.csv");
const COMMUNES_LEGACY: &str = include_str!("../../data/communes_legacy.csv");
const PROVINCES_2025: &str = include_str!("../../data/provinces_2025.csv");
const COMMUNES_2025: &str = include_str!("../../data/communes_2025.csv");
const COMMUNE_MAPPING: &str = include_str!("../../data/commune_mapping_2025.csv");
const DISTRICT_ONLY_MAPPING: &str = include_str!("../../data/district_only_mapping_2025.csv");
const PROVINCE_MAPPING: &str = include_str!("../../data/province_mapping_2025.csv");

static UNITS: LazyLock<AdminUnits> = LazyLock::new(AdminUnits::load);

/// How a commune of either scheme appears in today's (2025) scheme.
///
/// A legacy commune that was split across several new communes (440 of them) cannot be placed
/// from its code alone: the street or hamlet decides, so the view lists the candidates instead of
/// guessing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CurrentView<'a> {
    /// The unit lies wholly within one 2025 commune.
    Exact {
        /// The 2025 commune.
        commune: &'a Commune,
        /// Its 2025 province.
        province: &'a Province,
    },
    /// The legacy commune was split; the person lives in one of these 2025 communes.
    Ambiguous {
        /// The 2025 communes that received part of the legacy commune, by code.
        candidates: Vec<&'a Commune>,
        /// The 2025 province, which is the same for every candidate.
        province: &'a Province,
    },
}

impl<'a> CurrentView<'a> {
    /// The 2025 province, known even when the commune is ambiguous.
    pub fn province(&self) -> &'a Province {
        match self {
            Self::Exact { province, .. } | Self::Ambiguous { province, .. } => province,
        }
    }

    /// The 2025 commune, if it is determined.
    pub fn exact(&self) -> Option<&'a Commune> {
        match self {
            Self::Exact { commune, .. } => Some(commune),
            Self::Ambiguous { .. } => None,
        }
    }

    /// Every 2025 commune the unit may lie in (one when exact).
    pub fn candidates(&self) -> Vec<&'a Commune> {
        match self {
            Self::Exact { commune, .. } => vec![*commune],
            Self::Ambiguous { candidates, .. } => candidates.clone(),
        }
    }
}

/// The units of one scheme.
#[derive(Debug)]
struct SchemeUnits {
    /// Sorted by code.
    provinces: Vec<Province>,
    /// Sorted by code (the order of the files).
    communes: Vec<Commune>,
    /// A copy of `communes` sorted by (province, district, code), so that the communes of a
    /// province or a district are one slice. Built on first use: start-up does not need it.
    grouped: OnceLock<Vec<Commune>>,
    /// `communes`' codes as [`packed`] numbers, in the same order; empty if a code does not
    /// fit. Every stored address is checked against this table when it is read, so the
    /// search compares integers rather than strings.
    commune_keys: Vec<u64>,
}

/// A code of up to eight bytes as a number that sorts as the text does (shorter codes are
/// padded with zero bytes, which sort before any character).
fn packed(code: &str) -> Option<u64> {
    let b = code.as_bytes();
    let mut a = [0u8; 8];
    a.get_mut(..b.len())?.copy_from_slice(b);
    Some(u64::from_be_bytes(a))
}

impl SchemeUnits {
    fn new(mut provinces: Vec<Province>, mut communes: Vec<Commune>) -> SchemeUnits {
        // Both files are already sorted by code, which the sort detects in one pass.
        provinces.sort_by_key(|p| p.code);
        communes.sort_by_key(|c| c.code);
        let commune_keys = communes
            .iter()
            .map(|c| packed(c.code))
            .collect::<Option<Vec<u64>>>()
            .unwrap_or_default();
        SchemeUnits {
            provinces,
            communes,
            grouped: OnceLock::new(),
            commune_keys,
        }
    }

    fn province(&self, code: &str) -> Option<&Province> {
        find(&self.provinces, code, |p| p.code)
    }

    fn commune(&self, code: &str) -> Option<&Commune> {
        if self.commune_keys.is_empty() {
            return find(&self.communes, code, |c| c.code);
        }
        let at = self.commune_keys.binary_search(&packed(code)?).ok()?;
        self.communes.get(at)
    }

    /// The communes sorted by (province, district, code); built on first use.
    fn grouped(&self) -> &[Commune] {
        self.grouped.get_or_init(|| {
            let mut rows = self.communes.clone();
            rows.sort_by(|a, b| {
                (a.province_code, a.district_code, a.code).cmp(&(
                    b.province_code,
                    b.district_code,
                    b.code,
                ))
            });
            rows
        })
    }
}

/// The national register of administrative units (danh mục đơn vị hành chính), both schemes
/// and the official conversion between them.
///
/// Obtain it with [`AdminUnits::get`]; it is parsed from the embedded GSO files on first use.
/// Every lookup takes a code as text: codes are zero-padded and never integers. Lookups by code
/// are binary searches; lists by province or district are built on first use.
#[derive(Debug)]
pub struct AdminUnits {
    legacy: SchemeUnits,
    y2025: SchemeUnits,
    /// Legacy districts, sorted by code.
    districts: Vec<District>,
    /// A copy of `districts` sorted by (province, code); built on first use.
    districts_grouped: OnceLock<Vec<District>>,
    /// Commune conversion rows sorted by (legacy code, new code).
    to_2025: Vec<CommuneMapping>,
    /// The same rows sorted by (new code, legacy code); built on first use.
    to_legacy: OnceLock<Vec<CommuneMapping>>,
    /// Sorted by legacy district code.
    district_only: Vec<DistrictMapping>,
    /// (legacy province code, 2025 province code), sorted by legacy code.
    province_map: Vec<(&'static str, &'static str)>,
}

impl AdminUnits {
    /// The registry, parsed from the embedded reference data on first call.
    pub fn get() -> &'static AdminUnits {
        &UNITS
    }

    fn scheme(&self, scheme: Scheme) -> &SchemeUnits {
        match scheme {
            Scheme::Legacy => &self.legacy,
            Scheme::Y2025 => &self.y2025,
        }
    }

    /// All provinces (tỉnh / thành phố) of `scheme`, sorted by code: 63 legacy, 34 in 2025.
    pub fn provinces(&self, scheme: Scheme) -> &[Province] {
        &self.scheme(scheme).provinces
    }

    /// The province with this two-digit code in `scheme`.
    pub fn province(&self, scheme: Scheme, code: &str) -> Option<&Province> {
        self.scheme(scheme).province(code)
    }

    /// Number of provinces in `scheme` (63 legacy, 34 in 2025).
    pub fn province_count(&self, scheme: Scheme) -> usize {
        self.provinces(scheme).len()
    }

    /// All legacy districts (huyện / quận / thị xã / thành phố), sorted by code.
    pub fn districts(&self) -> &[District] {
        &self.districts
    }

    /// The legacy district with this three-digit code.
    pub fn district(&self, code: &str) -> Option<&District> {
        find(&self.districts, code, |d| d.code)
    }

    /// The districts of a legacy province, sorted by code (empty for an unknown code).
    pub fn districts_of_province(&self, legacy_province_code: &str) -> &[District] {
        let grouped = self.districts_grouped.get_or_init(|| {
            let mut rows = self.districts.clone();
            rows.sort_by(|a, b| (a.province_code, a.code).cmp(&(b.province_code, b.code)));
            rows
        });
        range(grouped, legacy_province_code, |d| d.province_code)
    }

    /// Number of legacy districts (696); the 2025 scheme has none.
    pub fn district_count(&self) -> usize {
        self.districts.len()
    }

    /// All communes (xã / phường / thị trấn / đặc khu) of `scheme`, sorted by code.
    pub fn communes(&self, scheme: Scheme) -> &[Commune] {
        &self.scheme(scheme).communes
    }

    /// The commune with this five-digit code in `scheme`.
    pub fn commune(&self, scheme: Scheme, code: &str) -> Option<&Commune> {
        self.scheme(scheme).commune(code)
    }

    /// The communes of a province of `scheme`, grouped by district in the legacy scheme and
    /// sorted by code within a group (empty for an unknown code).
    pub fn communes_of_province(&self, scheme: Scheme, province_code: &str) -> &[Commune] {
        range(self.scheme(scheme).grouped(), province_code, |c| {
            c.province_code
        })
    }

    /// The communes of a legacy district, sorted by code (empty for an unknown code, or for a
    /// district without communes such as the island districts).
    pub fn communes_of_district(&self, district_code: &str) -> &[Commune] {
        let Some(district) = self.district(district_code) else {
            return &[];
        };
        let of_province = self.communes_of_province(Scheme::Legacy, district.province_code);
        range(of_province, district_code, |c| {
            c.district_code.unwrap_or("")
        })
    }

    /// Number of communes in `scheme` (10,035 legacy, 3,321 in 2025).
    pub fn commune_count(&self, scheme: Scheme) -> usize {
        self.communes(scheme).len()
    }

    /// Every row of the legacy → 2025 commune conversion, sorted by legacy code then new code.
    pub fn commune_mappings(&self) -> &[CommuneMapping] {
        &self.to_2025
    }

    /// Where a legacy commune went on 1 July 2025: one row per 2025 commune that received part
    /// or all of it (several rows, all `partial`, when it was split). Empty for an unknown code,
    /// including the 26 codes retired before 30 June 2025.
    pub fn legacy_to_2025_communes(&self, legacy_code: &str) -> &[CommuneMapping] {
        range(&self.to_2025, legacy_code, |m| m.legacy_code)
    }

    /// Which legacy communes a 2025 commune was formed from, by legacy code. Territory without
    /// a commune code (island districts, Kim Sơn's alluvial strip) is in
    /// [`Self::district_only_sources`].
    pub fn new_to_legacy_communes(&self, new_code: &str) -> &[CommuneMapping] {
        let to_legacy = self.to_legacy.get_or_init(|| {
            let mut rows = self.to_2025.clone();
            rows.sort_by(|a, b| (a.new_code, a.legacy_code).cmp(&(b.new_code, b.legacy_code)));
            rows
        });
        range(to_legacy, new_code, |m| m.new_code)
    }

    /// The 2025 province a legacy province went into; each legacy province went whole into
    /// exactly one new one.
    pub fn legacy_to_2025_province(&self, legacy_code: &str) -> Option<&Province> {
        let (_, new_code) = find(&self.province_map, legacy_code, |(legacy, _)| legacy)?;
        self.y2025.province(new_code)
    }

    /// The legacy provinces merged into a 2025 province, by legacy code.
    pub fn new_to_legacy_provinces(&self, new_code: &str) -> Vec<&Province> {
        self.province_map
            .iter()
            .filter(|(_, new)| *new == new_code)
            .filter_map(|(legacy, _)| self.legacy.province(legacy))
            .collect()
    }

    /// The legacy districts that had no commune codes and the 2025 commune each went to.
    pub fn district_only_mappings(&self) -> &[DistrictMapping] {
        &self.district_only
    }

    /// Where a legacy district without commune codes (e.g. huyện Côn Đảo) went.
    pub fn district_only_mapping(&self, legacy_district_code: &str) -> Option<&DistrictMapping> {
        find(&self.district_only, legacy_district_code, |m| {
            m.legacy_district_code
        })
    }

    /// The district-only territory that went into a 2025 commune (e.g. đặc khu Côn Đảo).
    pub fn district_only_sources<'a>(
        &'a self,
        new_commune_code: &str,
    ) -> impl Iterator<Item = &'a DistrictMapping> + Clone + use<'a> {
        let code = self.y2025.commune(new_commune_code).map(|c| c.code);
        self.district_only
            .iter()
            .filter(move |m| Some(m.new_commune_code) == code)
    }

    /// How the commune `code` of `scheme` appears in the 2025 scheme; `None` if the code is
    /// unknown in that scheme.
    ///
    /// A 2025 commune is shown as itself. A legacy commune is [`CurrentView::Exact`] when it
    /// went into a single new commune and [`CurrentView::Ambiguous`] when it was split.
    pub fn current_view(&self, scheme: Scheme, code: &str) -> Option<CurrentView<'_>> {
        match scheme {
            Scheme::Y2025 => {
                let commune = self.y2025.commune(code)?;
                let province = self.y2025.province(commune.province_code)?;
                Some(CurrentView::Exact { commune, province })
            }
            Scheme::Legacy => {
                let legacy = self.legacy.commune(code)?;
                let province = self.legacy_to_2025_province(legacy.province_code)?;
                let candidates: Vec<&Commune> = self
                    .legacy_to_2025_communes(code)
                    .iter()
                    .filter_map(|m| self.y2025.commune(m.new_code))
                    .collect();
                match candidates.as_slice() {
                    [] => None,
                    [commune] => Some(CurrentView::Exact { commune, province }),
                    _ => Some(CurrentView::Ambiguous {
                        candidates,
                        province,
                    }),
                }
            }
        }
    }

    /// Parses the embedded files.
    ///
    /// Rows are only checked for their own shape here (a malformed row is skipped, and stops a
    /// debug build). References between files are not looked up at start-up, to keep it fast;
    /// the unit tests prove them for the embedded data, and every lookup returns an `Option`
    /// anyway.
    fn load() -> AdminUnits {
        let mut districts: Vec<District> =
            records::<4>(DISTRICTS_LEGACY, "code,name,type,province_code")
                .filter_map(|[code, name, kind, province_code]| {
                    let kind = DistrictKind::parse(kind);
                    debug_assert!(kind.is_some(), "legacy district {code}: unknown type");
                    Some(District {
                        code,
                        name,
                        kind: kind?,
                        province_code,
                    })
                })
                .collect();
        districts.sort_by_key(|d| d.code);

        let legacy_communes = records::<5>(
            COMMUNES_LEGACY,
            "code,name,type,district_code,province_code",
        )
        .filter_map(|[code, name, kind, district_code, province_code]| {
            commune(
                Scheme::Legacy,
                [code, name, kind, province_code],
                Some(district_code),
            )
        })
        .collect();
        let y2025_communes = records::<4>(COMMUNES_2025, "code,name,type,province_code")
            .filter_map(|[code, name, kind, province_code]| {
                commune(Scheme::Y2025, [code, name, kind, province_code], None)
            })
            .collect();

        let mut to_2025: Vec<CommuneMapping> = records::<4>(
            COMMUNE_MAPPING,
            "legacy_commune_code,new_commune_code,partial,gso_note",
        )
        .filter_map(|[legacy_code, new_code, partial, note]| {
            let partial = match partial {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            };
            debug_assert!(partial.is_some(), "mapping {legacy_code}: bad partial flag");
            Some(CommuneMapping {
                legacy_code,
                new_code,
                partial: partial?,
                note,
            })
        })
        .collect();
        // The file is already in this order, which the sort detects in one pass.
        to_2025.sort_by(|a, b| (a.legacy_code, a.new_code).cmp(&(b.legacy_code, b.new_code)));

        let mut district_only: Vec<DistrictMapping> = records::<3>(
            DISTRICT_ONLY_MAPPING,
            "legacy_district_code,new_commune_code,gso_note",
        )
        .map(
            |[legacy_district_code, new_commune_code, note]| DistrictMapping {
                legacy_district_code,
                new_commune_code,
                note,
            },
        )
        .collect();
        district_only.sort_by_key(|m| m.legacy_district_code);

        let mut province_map: Vec<(&'static str, &'static str)> =
            records::<2>(PROVINCE_MAPPING, "legacy_province_code,new_province_code")
                .map(|[legacy_code, new_code]| (legacy_code, new_code))
                .collect();
        province_map.sort_unstable();

        AdminUnits {
            legacy: SchemeUnits::new(
                load_provinces(Scheme::Legacy, PROVINCES_LEGACY),
                legacy_communes,
            ),
            y2025: SchemeUnits::new(
                load_provinces(Scheme::Y2025, PROVINCES_2025),
                y2025_communes,
            ),
            districts,
            districts_grouped: OnceLock::new(),
            to_2025,
            to_legacy: OnceLock::new(),
            district_only,
            province_map,
        }
    }
}

fn load_provinces(scheme: Scheme, text: &'static str) -> Vec<Province> {
    records::<5>(text, "code,name,type,short_name,name_ascii")
        .filter_map(|[code, name, kind, short_name, name_ascii]| {
            let kind = ProvinceKind::parse(kind);
            debug_assert!(kind.is_some(), "province {code}: unknown type");
            Some(Province {
                scheme,
                code,
                name,
                short_name,
                name_ascii,
                kind: kind?,
            })
        })
        .collect()
}

/// Builds a commune from its `[code, name, type, province_code]` columns.
fn commune(
    scheme: Scheme,
    [code, name, kind, province_code]: [&'static str; 4],
    district_code: Option<&'static str>,
) -> Option<Commune> {
    let kind = CommuneKind::parse(kind).filter(|k| k.exists_in(scheme));
    debug_assert!(kind.is_some(), "commune {code}: type not valid in {scheme}");
    Some(Commune {
        scheme,
        code,
        name,
        kind: kind?,
        province_code,
        district_code,
    })
}

/// The row whose key is `code` in `rows` sorted by that key.
fn find<'a, T>(rows: &'a [T], code: &str, key: impl Fn(&T) -> &str) -> Option<&'a T> {
    let at = rows.binary_search_by(|row| key(row).cmp(code)).ok()?;
    rows.get(at)
}

/// The contiguous run of rows whose key is `code` in `rows` sorted by that key.
fn range<'a, T>(rows: &'a [T], code: &str, key: impl Fn(&T) -> &str) -> &'a [T] {
    let start = rows.partition_point(|row| key(row) < code);
    let len = rows[start..].partition_point(|row| key(row) == code);
    &rows[start..start + len]
}

#[cfg(test)]
// In tests a failed `expect` is the failure report.
#[allow(clippy::expect_used)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use unicode_normalization::is_nfc;

    use super::*;

    fn units() -> &'static AdminUnits {
        AdminUnits::get()
    }

    #[test]
    fn commune_lookup_by_packed_code_agrees_with_the_text_search() {
        for scheme in [Scheme::Legacy, Scheme::Y2025] {
            let s = units().scheme(scheme);
            assert_eq!(s.commune_keys.len(), s.communes.len(), "every code packs");
            for c in &s.communes {
                assert_eq!(s.commune(c.code).map(|f| f.code), Some(c.code));
            }
            // Codes that are not there, including prefixes, extensions and long text.
            for code in [
                "",
                "0",
                "0000",
                "000001",
                "99999",
                "00004 ",
                "123456789",
                "0000４",
            ] {
                assert_eq!(
                    s.commune(code).map(|c| c.code),
                    find(&s.communes, code, |c| c.code).map(|c| c.code),
                    "{code:?}"
                );
            }
        }
        assert!(packed("00097") < packed("00098") && packed("0009") < packed("00090"));
        assert_eq!(packed("123456789"), None);
    }

    fn count_kinds<K: std::hash::Hash + Eq + Copy>(
        kinds: impl Iterator<Item = K>,
    ) -> HashMap<K, usize> {
        let mut counts = HashMap::new();
        for kind in kinds {
            *counts.entry(kind).or_insert(0) += 1;
        }
        counts
    }

    fn targets(legacy_code: &str) -> Vec<&'static str> {
        units()
            .legacy_to_2025_communes(legacy_code)
            .iter()
            .map(|m| m.new_code)
            .collect()
    }

    #[test]
    fn the_embedded_files_parse_without_dropping_a_row() {
        // Every data line of each file became a row: nothing was skipped as malformed or
        // inconsistent (debug builds would also have stopped at the first such row).
        let lines = |text: &str| text.lines().skip(1).filter(|l| !l.is_empty()).count();
        let u = units();
        assert_eq!(u.provinces(Scheme::Legacy).len(), lines(PROVINCES_LEGACY));
        assert_eq!(u.provinces(Scheme::Y2025).len(), lines(PROVINCES_2025));
        assert_eq!(u.districts().len(), lines(DISTRICTS_LEGACY));
        assert_eq!(u.communes(Scheme::Legacy).len(), lines(COMMUNES_LEGACY));
        assert_eq!(u.communes(Scheme::Y2025).len(), lines(COMMUNES_2025));
        assert_eq!(u.commune_mappings().len(), lines(COMMUNE_MAPPING));
        assert_eq!(
            u.district_only_mappings().len(),
            lines(DISTRICT_ONLY_MAPPING)
        );
        assert_eq!(u.province_map.len(), lines(PROVINCE_MAPPING));
    }

    #[test]
    fn row_counts_of_the_2025_scheme() {
        let u = units();
        assert_eq!(u.province_count(Scheme::Y2025), 34);
        assert_eq!(u.commune_count(Scheme::Y2025), 3_321);
        let kinds = count_kinds(u.communes(Scheme::Y2025).iter().map(|c| c.kind));
        assert_eq!(kinds.get(&CommuneKind::Commune), Some(&2_621));
        assert_eq!(kinds.get(&CommuneKind::Ward), Some(&687));
        assert_eq!(kinds.get(&CommuneKind::SpecialZone), Some(&13));
        assert_eq!(kinds.get(&CommuneKind::Township), None);
        let cities = count_kinds(u.provinces(Scheme::Y2025).iter().map(|p| p.kind));
        assert_eq!(cities.get(&ProvinceKind::CentralCity), Some(&6));
    }

    #[test]
    fn row_counts_of_the_legacy_scheme() {
        let u = units();
        assert_eq!(u.province_count(Scheme::Legacy), 63);
        assert_eq!(u.district_count(), 696);
        assert_eq!(u.commune_count(Scheme::Legacy), 10_035);
        let kinds = count_kinds(u.communes(Scheme::Legacy).iter().map(|c| c.kind));
        assert_eq!(kinds.get(&CommuneKind::Commune), Some(&7_692));
        assert_eq!(kinds.get(&CommuneKind::Ward), Some(&1_726));
        assert_eq!(kinds.get(&CommuneKind::Township), Some(&617));
        assert_eq!(kinds.get(&CommuneKind::SpecialZone), None);
        let districts = count_kinds(u.districts().iter().map(|d| d.kind));
        assert_eq!(districts.get(&DistrictKind::UrbanDistrict), Some(&49));
        assert_eq!(districts.get(&DistrictKind::RuralDistrict), Some(&508));
        assert_eq!(districts.get(&DistrictKind::Town), Some(&52));
        assert_eq!(districts.get(&DistrictKind::City), Some(&87));
        let cities = count_kinds(u.provinces(Scheme::Legacy).iter().map(|p| p.kind));
        assert_eq!(cities.get(&ProvinceKind::CentralCity), Some(&6));
    }

    #[test]
    fn codes_have_the_right_width_and_every_lookup_finds_its_row() {
        let u = units();
        let digits = |code: &str, width: usize| {
            code.len() == width && code.bytes().all(|b| b.is_ascii_digit())
        };
        for scheme in Scheme::ALL {
            for p in u.provinces(scheme) {
                assert!(digits(p.code, 2), "{}", p.code);
                assert_eq!(p.scheme, scheme);
                assert_eq!(u.province(scheme, p.code), Some(p));
            }
            for c in u.communes(scheme) {
                assert!(digits(c.code, 5), "{}", c.code);
                assert_eq!(c.scheme, scheme);
                assert_eq!(u.commune(scheme, c.code), Some(c));
            }
        }
        for d in u.districts() {
            assert!(digits(d.code, 3), "{}", d.code);
            assert_eq!(u.district(d.code), Some(d));
        }
        for scheme in Scheme::ALL {
            let codes: HashSet<&str> = u.communes(scheme).iter().map(|c| c.code).collect();
            assert_eq!(
                codes.len(),
                u.commune_count(scheme),
                "duplicate commune codes"
            );
            let codes: HashSet<&str> = u.provinces(scheme).iter().map(|p| p.code).collect();
            assert_eq!(
                codes.len(),
                u.province_count(scheme),
                "duplicate province codes"
            );
        }
        let codes: HashSet<&str> = u.districts().iter().map(|d| d.code).collect();
        assert_eq!(codes.len(), u.district_count(), "duplicate district codes");
        assert_eq!(u.commune(Scheme::Legacy, "1"), None);
        assert_eq!(u.commune(Scheme::Legacy, "99999"), None);
        assert_eq!(u.province(Scheme::Y2025, "02"), None);
        assert_eq!(u.district(""), None);
    }

    #[test]
    fn every_unit_belongs_to_an_existing_parent() {
        let u = units();
        for scheme in Scheme::ALL {
            for c in u.communes(scheme) {
                assert!(u.province(scheme, c.province_code).is_some(), "{}", c.code);
                match scheme {
                    Scheme::Y2025 => assert_eq!(c.district_code, None),
                    Scheme::Legacy => {
                        let district = c.district_code.and_then(|d| u.district(d));
                        assert_eq!(district.map(|d| d.province_code), Some(c.province_code));
                    }
                }
            }
        }
        for d in u.districts() {
            assert!(
                u.province(Scheme::Legacy, d.province_code).is_some(),
                "{}",
                d.code
            );
        }
    }

    #[test]
    fn grouped_slices_partition_the_tables() {
        let u = units();
        for scheme in Scheme::ALL {
            let total: usize = u
                .provinces(scheme)
                .iter()
                .map(|p| {
                    let communes = u.communes_of_province(scheme, p.code);
                    assert!(!communes.is_empty(), "{}", p.code);
                    assert!(communes.iter().all(|c| c.province_code == p.code));
                    communes.len()
                })
                .sum();
            assert_eq!(total, u.commune_count(scheme));
        }
        let by_district: usize = u
            .districts()
            .iter()
            .map(|d| u.communes_of_district(d.code).len())
            .sum();
        assert_eq!(by_district, u.commune_count(Scheme::Legacy));
        let by_province: usize = u
            .provinces(Scheme::Legacy)
            .iter()
            .map(|p| u.districts_of_province(p.code).len())
            .sum();
        assert_eq!(by_province, u.district_count());
        let ba_dinh = u.communes_of_district("001");
        assert_eq!(ba_dinh.len(), 13);
        assert_eq!(ba_dinh.first().map(|c| c.name), Some("Phường Phúc Xá"));
        assert!(ba_dinh.iter().all(|c| c.district_code == Some("001")));
        assert!(u.communes_of_province(Scheme::Y2025, "99").is_empty());
        assert!(u.communes_of_district("999").is_empty());
    }

    #[test]
    fn names_are_nfc_and_start_with_their_type_word() {
        let u = units();
        for scheme in Scheme::ALL {
            for c in u.communes(scheme) {
                assert!(is_nfc(c.name), "{}", c.code);
                assert!(
                    c.name.to_lowercase().starts_with(c.kind.vietnamese()),
                    "{}",
                    c.name
                );
            }
            for p in u.provinces(scheme) {
                assert!(is_nfc(p.name) && is_nfc(p.short_name), "{}", p.code);
                assert!(p.name.ends_with(p.short_name), "{}", p.name);
                assert!(p.name_ascii.is_ascii(), "{}", p.name_ascii);
            }
        }
        for d in u.districts() {
            assert!(is_nfc(d.name), "{}", d.code);
            assert!(
                d.name.to_lowercase().starts_with(d.kind.vietnamese()),
                "{}",
                d.name
            );
        }
    }

    #[test]
    fn concrete_lookups() {
        let u = units();
        let hanoi = u.province(Scheme::Y2025, "01").expect("Hà Nội");
        assert_eq!(
            (hanoi.name, hanoi.short_name, hanoi.name_ascii, hanoi.kind),
            (
                "Thành phố Hà Nội",
                "Hà Nội",
                "Ha Noi",
                ProvinceKind::CentralCity
            )
        );
        assert_eq!(
            u.province(Scheme::Legacy, "44").map(|p| p.short_name),
            Some("Quảng Bình")
        );
        assert_eq!(
            u.province(Scheme::Y2025, "44").map(|p| p.short_name),
            Some("Quảng Trị")
        );
        assert_eq!(
            u.province(Scheme::Y2025, "46").map(|p| p.kind),
            Some(ProvinceKind::CentralCity)
        );
        let phuc_xa = u.commune(Scheme::Legacy, "00001").expect("Phúc Xá");
        assert_eq!(
            (
                phuc_xa.name,
                phuc_xa.kind,
                phuc_xa.district_code,
                phuc_xa.province_code
            ),
            ("Phường Phúc Xá", CommuneKind::Ward, Some("001"), "01")
        );
        assert_eq!(
            u.district("001").map(|d| (d.name, d.kind)),
            Some(("Quận Ba Đình", DistrictKind::UrbanDistrict))
        );
        assert_eq!(targets("00001"), ["00097"]);
        assert_eq!(
            u.legacy_to_2025_communes("00001"),
            [CommuneMapping {
                legacy_code: "00001",
                new_code: "00097",
                partial: false,
                note: "Nhập toàn bộ"
            }]
        );
        assert_eq!(
            u.commune(Scheme::Y2025, "00097").map(|c| c.name),
            Some("Phường Hồng Hà")
        );
        assert!(
            u.new_to_legacy_communes("00097")
                .iter()
                .any(|m| m.legacy_code == "00001")
        );
        assert_eq!(
            u.commune(Scheme::Y2025, "00004").map(|c| c.name),
            Some("Phường Ba Đình")
        );
        // Retired before 30 June 2025: not in the register and not in the conversion.
        assert_eq!(u.commune(Scheme::Legacy, "03751"), None);
        assert!(u.legacy_to_2025_communes("03751").is_empty());
    }

    #[test]
    fn quoted_notes_keep_their_commas() {
        let rows = units().legacy_to_2025_communes("00556");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].note, "Nhập một phần diện tích, toàn bộ dân số");
        assert!(
            units()
                .commune_mappings()
                .iter()
                .all(|m| !m.note.contains('"'))
        );
    }

    #[test]
    fn every_legacy_commune_has_a_mapping_and_every_new_commune_a_source() {
        let u = units();
        for c in u.communes(Scheme::Legacy) {
            assert!(!u.legacy_to_2025_communes(c.code).is_empty(), "{}", c.code);
        }
        for c in u.communes(Scheme::Y2025) {
            let from_communes = !u.new_to_legacy_communes(c.code).is_empty();
            let from_districts = u.district_only_sources(c.code).next().is_some();
            assert!(from_communes || from_districts, "{}", c.code);
        }
        for m in u.commune_mappings() {
            assert!(u.commune(Scheme::Legacy, m.legacy_code).is_some());
            assert!(u.commune(Scheme::Y2025, m.new_code).is_some());
        }
        let pairs: HashSet<(&str, &str)> = u
            .commune_mappings()
            .iter()
            .map(|m| (m.legacy_code, m.new_code))
            .collect();
        assert_eq!(pairs.len(), 10_565);
        assert_eq!(u.new_to_legacy_communes("00097").len(), {
            u.commune_mappings()
                .iter()
                .filter(|m| m.new_code == "00097")
                .count()
        });
    }

    #[test]
    fn partial_flags_mark_exactly_the_split_communes() {
        let u = units();
        let mut split = 0;
        for c in u.communes(Scheme::Legacy) {
            let rows = u.legacy_to_2025_communes(c.code);
            let is_split = rows.len() > 1;
            assert!(rows.iter().all(|m| m.partial == is_split), "{}", c.code);
            split += usize::from(is_split);
        }
        assert_eq!(split, 440);
        assert_eq!(
            u.commune_mappings().iter().filter(|m| m.partial).count(),
            970
        );
        // 132 legacy communes map 1:1 onto a new commune that has no other source.
        let one_to_one = u
            .communes(Scheme::Legacy)
            .iter()
            .filter(|c| match u.legacy_to_2025_communes(c.code) {
                [only] => {
                    u.new_to_legacy_communes(only.new_code).len() == 1
                        && u.district_only_sources(only.new_code).next().is_none()
                }
                _ => false,
            })
            .count();
        assert_eq!(one_to_one, 132);
        // Xã Kỳ Lợi: whole area to one ward, part of the population to two communes.
        assert_eq!(targets("18796"), ["18754", "18823", "18832"]);
        assert!(u.legacy_to_2025_communes("18796").iter().all(|m| m.partial));
    }

    #[test]
    fn the_three_corrected_conversion_rows() {
        let u = units();
        // Line 426: Xã Đặng Xá (00556, not Cổ Bi 00553) went partly to Xã Thuận An (00562).
        assert_eq!(targets("00556"), ["00541", "00562"]);
        assert!(!targets("00553").contains(&"00562"));
        // Line 912: Xã Mỹ Hưng (01651, not Hồng Quang 01615) went to Xã Phục Hòa (01648).
        assert_eq!(targets("01651"), ["01648"]);
        assert_eq!(targets("01615"), ["01636"]);
        assert!(!u.legacy_to_2025_communes("01615")[0].partial);
        // Line 1260: Xã Phú Thịnh (02482, not Công Đa 02485) went to Xã Thái Bình (02494).
        assert_eq!(targets("02482"), ["02494"]);
        assert_eq!(targets("02485"), ["02458"]);
        assert_eq!(
            u.commune(Scheme::Legacy, "01651").map(|c| c.name),
            Some("Xã Mỹ Hưng")
        );
        assert_eq!(
            u.commune(Scheme::Legacy, "02482").map(|c| c.name),
            Some("Xã Phú Thịnh")
        );
    }

    #[test]
    fn island_districts_became_special_zones() {
        let u = units();
        for (district, zone, name) in [
            ("318", "11948", "Đặc khu Bạch Long Vĩ"),
            ("471", "19742", "Đặc khu Cồn Cỏ"),
            ("498", "20333", "Đặc khu Hoàng Sa"),
            ("536", "21548", "Đặc khu Lý Sơn"),
            ("755", "26732", "Đặc khu Côn Đảo"),
        ] {
            let mapping = u.district_only_mapping(district).expect("island district");
            assert_eq!(mapping.new_commune_code, zone);
            let commune = u.commune(Scheme::Y2025, zone).expect("special zone");
            assert_eq!(
                (commune.name, commune.kind),
                (name, CommuneKind::SpecialZone)
            );
            assert!(u.communes_of_district(district).is_empty(), "{district}");
            assert!(u.new_to_legacy_communes(zone).is_empty(), "{zone}");
            assert_eq!(u.district_only_sources(zone).count(), 1);
            let legacy_province = u.district(district).map(|d| d.province_code).unwrap_or("");
            assert_eq!(
                u.legacy_to_2025_province(legacy_province).map(|p| p.code),
                Some(commune.province_code)
            );
        }
        // Kim Sơn's coastal alluvial strip went to Xã Kim Đông, which also has commune sources.
        let strip = u.district_only_mapping("376").expect("Kim Sơn strip");
        assert_eq!(strip.new_commune_code, "14698");
        assert_eq!(
            u.commune(Scheme::Y2025, "14698").map(|c| c.name),
            Some("Xã Kim Đông")
        );
        assert!(!u.new_to_legacy_communes("14698").is_empty());
        assert!(!u.communes_of_district("376").is_empty());
        assert_eq!(u.district_only_mappings().len(), 6);
        assert_eq!(u.district_only_mapping("001"), None);
    }

    #[test]
    fn provinces_went_whole_into_one_new_province() {
        let u = units();
        let mut covered = HashSet::new();
        for p in u.provinces(Scheme::Legacy) {
            let new = u.legacy_to_2025_province(p.code).expect("mapped province");
            covered.insert(new.code);
            assert!(u.new_to_legacy_provinces(new.code).contains(&p));
        }
        assert_eq!(covered.len(), 34);
        for m in u.commune_mappings() {
            let old = u
                .commune(Scheme::Legacy, m.legacy_code)
                .map(|c| c.province_code);
            let new = u
                .commune(Scheme::Y2025, m.new_code)
                .map(|c| c.province_code);
            assert_eq!(
                old.and_then(|p| u.legacy_to_2025_province(p))
                    .map(|p| p.code),
                new
            );
        }
        assert_eq!(u.legacy_to_2025_province("82").map(|p| p.code), Some("82"));
        assert_eq!(
            u.legacy_to_2025_province("45").map(|p| p.short_name),
            Some("Quảng Trị")
        );
        assert_eq!(u.legacy_to_2025_province("00"), None);
        // Phường 4 of TP Tân An belongs to Long An (80), whatever the conversion table said.
        assert_eq!(
            u.commune(Scheme::Legacy, "27691").map(|c| c.province_code),
            Some("80")
        );
        let merged: Vec<&str> = u
            .new_to_legacy_provinces("79")
            .iter()
            .map(|p| p.code)
            .collect();
        assert_eq!(merged, ["74", "77", "79"]);
    }

    #[test]
    fn current_views_of_every_commune() {
        let u = units();
        let mut ambiguous = 0;
        for c in u.communes(Scheme::Legacy) {
            let view = u
                .current_view(Scheme::Legacy, c.code)
                .expect("every legacy commune");
            let expected = u
                .legacy_to_2025_province(c.province_code)
                .expect("mapped province");
            assert_eq!(view.province(), expected);
            for candidate in view.candidates() {
                assert_eq!(candidate.province_code, expected.code, "{}", c.code);
            }
            if let CurrentView::Ambiguous { candidates, .. } = &view {
                assert!(candidates.len() > 1);
                ambiguous += 1;
            }
        }
        assert_eq!(ambiguous, 440);
        for c in u.communes(Scheme::Y2025) {
            let view = u
                .current_view(Scheme::Y2025, c.code)
                .expect("every 2025 commune");
            assert_eq!(view.exact(), Some(c));
        }
        assert_eq!(u.current_view(Scheme::Legacy, "03751"), None);
        assert_eq!(u.current_view(Scheme::Y2025, "00001"), None);
    }

    #[test]
    fn start_up_parsing_stays_cheap() {
        // About 10 ms of CPU in an unoptimised build and about 1 ms optimised; the bound only
        // catches an order-of-magnitude regression (such as per-row lookups at load time).
        let started = std::time::Instant::now();
        let units = AdminUnits::load();
        let elapsed = started.elapsed();
        assert_eq!(units.commune_count(Scheme::Legacy), 10_035);
        assert!(
            elapsed < std::time::Duration::from_millis(500),
            "{elapsed:?}"
        );
    }
}
