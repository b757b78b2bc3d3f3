//! Where people live and were born: the 34 provinces of the 2025 scheme weighted by population,
//! their communes, and for each 2025 commune the legacy communes it was formed from (so that a
//! birth registered before 1 July 2025 lands in a legacy commune of the same area).

use crate::tables::{Region, Table};
use dancu_domain::admin::{AdminUnits, CommuneKind, Scheme};
use dancu_domain::id::PLACE_CODES;
use std::sync::LazyLock;

/// Approximate population of each 2025 province in thousands (2024 estimates of the provinces
/// that were merged, rounded). Only the proportions matter; they are **approximate**.
const PROVINCE_POPULATION: [(&str, u32); 34] = [
    ("01", 8_720),  // Hà Nội
    ("04", 570),    // Cao Bằng
    ("08", 1_870),  // Tuyên Quang + Hà Giang
    ("11", 640),    // Điện Biên
    ("12", 480),    // Lai Châu
    ("14", 1_300),  // Sơn La
    ("15", 1_780),  // Lào Cai + Yên Bái
    ("19", 1_800),  // Thái Nguyên + Bắc Kạn
    ("20", 810),    // Lạng Sơn
    ("22", 1_390),  // Quảng Ninh
    ("24", 3_620),  // Bắc Ninh + Bắc Giang
    ("25", 4_020),  // Phú Thọ + Vĩnh Phúc + Hòa Bình
    ("31", 4_660),  // Hải Phòng + Hải Dương
    ("33", 3_570),  // Hưng Yên + Thái Bình
    ("37", 4_410),  // Ninh Bình + Hà Nam + Nam Định
    ("38", 4_300),  // Thanh Hóa
    ("40", 3_830),  // Nghệ An
    ("42", 1_620),  // Hà Tĩnh
    ("44", 1_870),  // Quảng Trị + Quảng Bình
    ("46", 1_430),  // Huế
    ("48", 3_070),  // Đà Nẵng + Quảng Nam
    ("51", 2_160),  // Quảng Ngãi + Kon Tum
    ("52", 3_580),  // Gia Lai + Bình Định
    ("56", 2_240),  // Khánh Hòa + Ninh Thuận
    ("66", 3_350),  // Đắk Lắk + Phú Yên
    ("68", 3_870),  // Lâm Đồng + Đắk Nông + Bình Thuận
    ("75", 4_490),  // Đồng Nai + Bình Phước
    ("79", 14_000), // Hồ Chí Minh + Bình Dương + Bà Rịa–Vũng Tàu
    ("80", 3_250),  // Tây Ninh + Long An
    ("82", 4_370),  // Đồng Tháp + Tiền Giang
    ("86", 4_260),  // Vĩnh Long + Bến Tre + Trà Vinh
    ("91", 4_950),  // An Giang + Kiên Giang
    ("92", 4_200),  // Cần Thơ + Hậu Giang + Sóc Trăng
    ("96", 2_610),  // Cà Mau + Bạc Liêu
];

fn region_of(code: &str) -> Region {
    match code {
        "04" | "08" | "11" | "12" | "14" | "15" | "19" | "20" => Region::NorthMountain,
        "51" | "52" | "66" | "68" => Region::Highlands,
        "80" | "82" | "86" | "91" | "92" | "96" => Region::Mekong,
        "79" => Region::Saigon,
        _ => Region::Lowland,
    }
}

/// Index in [`PLACE_CODES`] of the ID place code of a two-digit province code.
pub(crate) fn place_index(province_code: &str) -> Option<usize> {
    PLACE_CODES
        .binary_search_by(|(c, _)| c[1..].cmp(province_code))
        .ok()
}

/// A legacy commune that went (wholly or partly) into a 2025 commune.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LegacyCommune {
    pub code: &'static str,
    /// Index in [`PLACE_CODES`] of its legacy province.
    pub place: usize,
}

/// A 2025 commune.
#[derive(Debug)]
pub(crate) struct Commune {
    pub code: &'static str,
    /// A phường (ward), written with streets and house numbers.
    pub urban: bool,
    /// Legacy communes it was formed from (never empty).
    pub legacy: Vec<LegacyCommune>,
}

/// A 2025 province.
#[derive(Debug)]
pub(crate) struct Province {
    /// Index in [`PLACE_CODES`] of its (2025) code.
    pub place: usize,
    pub region: Region,
    /// From Quảng Nam / Đà Nẵng southwards: Huỳnh and Võ, hẻm and ấp.
    pub south: bool,
    pub communes: Vec<Commune>,
    /// Draws a commune: wards weigh more than rural communes.
    pub commune_table: Table<usize>,
}

#[derive(Debug)]
pub(crate) struct Places {
    pub provinces: Vec<Province>,
    pub province_table: Table<usize>,
}

pub(crate) static PLACES: LazyLock<Places> = LazyLock::new(load);

fn load() -> Places {
    let units = AdminUnits::get();
    let mut provinces = Vec::with_capacity(PROVINCE_POPULATION.len());
    let mut weights = Vec::with_capacity(PROVINCE_POPULATION.len());
    for (code, population) in PROVINCE_POPULATION {
        let Some(place) = place_index(code) else {
            continue;
        };
        let legacy_provinces: Vec<&'static str> = units
            .new_to_legacy_provinces(code)
            .iter()
            .map(|p| p.code)
            .collect();
        let mut communes = Vec::new();
        let mut commune_weights = Vec::new();
        for c in units.communes_of_province(Scheme::Y2025, code) {
            // Prefer former communes that went whole into this one: an address in a commune
            // that was split cannot be placed in today's scheme without the street, and the
            // register never guesses it.
            let sources = units.new_to_legacy_communes(c.code);
            let whole: Vec<_> = sources.iter().filter(|m| !m.partial).collect();
            let chosen: Vec<_> = if whole.is_empty() {
                sources.iter().collect()
            } else {
                whole
            };
            let mut legacy: Vec<LegacyCommune> = chosen
                .into_iter()
                .filter_map(|m| {
                    let old = units.commune(Scheme::Legacy, m.legacy_code)?;
                    Some(LegacyCommune {
                        code: old.code,
                        place: place_index(old.province_code)?,
                    })
                })
                .collect();
            if legacy.is_empty() {
                // Territory without legacy commune codes (island districts): births there were
                // registered in a commune of one of the merged provinces.
                legacy = legacy_provinces
                    .iter()
                    .filter_map(|p| {
                        let old = units.communes_of_province(Scheme::Legacy, p).first()?;
                        Some(LegacyCommune {
                            code: old.code,
                            place: place_index(p)?,
                        })
                    })
                    .collect();
            }
            if legacy.is_empty() {
                continue;
            }
            let weight = match c.kind {
                CommuneKind::Ward => 5,
                CommuneKind::SpecialZone => 1,
                _ => 2,
            };
            commune_weights.push((communes.len(), weight));
            communes.push(Commune {
                code: c.code,
                urban: c.kind == CommuneKind::Ward,
                legacy,
            });
        }
        if communes.is_empty() {
            continue;
        }
        weights.push((provinces.len(), population));
        provinces.push(Province {
            place,
            region: region_of(code),
            south: code >= "48",
            communes,
            commune_table: Table::new(&commune_weights),
        });
    }
    Places {
        province_table: Table::new(&weights),
        provinces,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_province_and_commune_is_usable() {
        let places = &*PLACES;
        assert_eq!(places.provinces.len(), 34);
        let communes: usize = places.provinces.iter().map(|p| p.communes.len()).sum();
        assert_eq!(communes, AdminUnits::get().commune_count(Scheme::Y2025));
        for p in &places.provinces {
            for c in &p.communes {
                assert!(!c.legacy.is_empty());
            }
        }
    }
}
