//! The administrative units themselves and the rows of the 2025 conversion tables.
//!
//! All text is borrowed from the reference data embedded in the binary, hence `&'static str`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Scheme;

/// Kind of a province-level unit (đơn vị hành chính cấp tỉnh).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProvinceKind {
    /// Tỉnh: a province.
    Province,
    /// Thành phố trực thuộc trung ương: a centrally-run city (6 in each scheme).
    CentralCity,
}

impl ProvinceKind {
    /// The Vietnamese type word as the register writes it in the `type` column.
    pub const fn vietnamese(self) -> &'static str {
        match self {
            Self::Province => "tỉnh",
            Self::CentralCity => "thành phố trung ương",
        }
    }

    pub(super) fn parse(word: &str) -> Option<Self> {
        match word {
            "tỉnh" => Some(Self::Province),
            "thành phố trung ương" => Some(Self::CentralCity),
            _ => None,
        }
    }
}

/// Kind of a district-level unit (đơn vị hành chính cấp huyện), legacy scheme only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DistrictKind {
    /// Quận: an urban district of a centrally-run city.
    UrbanDistrict,
    /// Huyện: a rural district.
    RuralDistrict,
    /// Thị xã: a district-level town.
    Town,
    /// Thành phố: a city under a province (or Thủ Đức / Thủy Nguyên under a centrally-run city).
    City,
}

impl DistrictKind {
    /// The Vietnamese type word as the register writes it in the `type` column.
    pub const fn vietnamese(self) -> &'static str {
        match self {
            Self::UrbanDistrict => "quận",
            Self::RuralDistrict => "huyện",
            Self::Town => "thị xã",
            Self::City => "thành phố",
        }
    }

    pub(super) fn parse(word: &str) -> Option<Self> {
        match word {
            "quận" => Some(Self::UrbanDistrict),
            "huyện" => Some(Self::RuralDistrict),
            "thị xã" => Some(Self::Town),
            "thành phố" => Some(Self::City),
            _ => None,
        }
    }
}

/// Kind of a commune-level unit (đơn vị hành chính cấp xã).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CommuneKind {
    /// Xã: a rural commune (both schemes).
    Commune,
    /// Phường: an urban ward (both schemes).
    Ward,
    /// Thị trấn: a township, the seat of a rural district (legacy scheme only).
    Township,
    /// Đặc khu: a special zone, mostly former island districts (2025 scheme only).
    SpecialZone,
}

impl CommuneKind {
    /// The Vietnamese type word as the register writes it in the `type` column.
    pub const fn vietnamese(self) -> &'static str {
        match self {
            Self::Commune => "xã",
            Self::Ward => "phường",
            Self::Township => "thị trấn",
            Self::SpecialZone => "đặc khu",
        }
    }

    /// Whether units of this kind exist in `scheme`.
    pub const fn exists_in(self, scheme: Scheme) -> bool {
        match self {
            Self::Commune | Self::Ward => true,
            Self::Township => matches!(scheme, Scheme::Legacy),
            Self::SpecialZone => matches!(scheme, Scheme::Y2025),
        }
    }

    pub(super) fn parse(word: &str) -> Option<Self> {
        match word {
            "xã" => Some(Self::Commune),
            "phường" => Some(Self::Ward),
            "thị trấn" => Some(Self::Township),
            "đặc khu" => Some(Self::SpecialZone),
            _ => None,
        }
    }
}

/// A province-level unit (tỉnh or thành phố trực thuộc trung ương) of one scheme.
///
/// Codes are two digits and are only unique within a scheme: `01` is Hà Nội in both, but `44` was
/// Quảng Bình in the legacy scheme and is the merged Quảng Trị in 2025.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Province {
    /// The scheme this unit belongs to.
    pub scheme: Scheme,
    /// GSO code, two digits, zero-padded (e.g. `"01"`).
    pub code: &'static str,
    /// Full official name including the type word (e.g. `"Thành phố Hà Nội"`).
    pub name: &'static str,
    /// Name without `Tỉnh ` / `Thành phố ` (e.g. `"Hà Nội"`).
    pub short_name: &'static str,
    /// `short_name` without diacritics, đ→d (e.g. `"Ha Noi"`); not an official English name.
    pub name_ascii: &'static str,
    /// Tỉnh or thành phố trực thuộc trung ương.
    pub kind: ProvinceKind,
}

/// A district-level unit (huyện, quận, thị xã, thành phố thuộc tỉnh) of the legacy scheme.
///
/// The district tier was abolished on 1 July 2025, so districts exist only in the legacy scheme.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct District {
    /// GSO code, three digits, zero-padded (e.g. `"001"`).
    pub code: &'static str,
    /// Full official name including the type word (e.g. `"Quận Ba Đình"`).
    pub name: &'static str,
    /// Quận, huyện, thị xã or thành phố.
    pub kind: DistrictKind,
    /// Code of the legacy province the district belongs to.
    pub province_code: &'static str,
}

/// A commune-level unit (xã, phường, thị trấn, đặc khu) of one scheme.
///
/// Codes are five digits. Each 2025 commune kept one of the codes of the legacy communes it was
/// formed from, so the same code can name different territory in the two schemes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Commune {
    /// The scheme this unit belongs to.
    pub scheme: Scheme,
    /// GSO code, five digits, zero-padded (e.g. `"00004"`).
    pub code: &'static str,
    /// Full official name including the type word (e.g. `"Phường Ba Đình"`).
    pub name: &'static str,
    /// Xã, phường, thị trấn (legacy) or đặc khu (2025).
    pub kind: CommuneKind,
    /// Code of the province of the same scheme.
    pub province_code: &'static str,
    /// Code of the legacy district; `None` in the 2025 scheme, which has no districts.
    pub district_code: Option<&'static str>,
}

/// One row of the official legacy → 2025 commune conversion (bảng chuyển đổi ĐVHC).
///
/// The relation is many-to-many: a legacy commune split across several new communes has one row
/// per target, all with `partial == true`; a new commune formed from several legacy communes is
/// the target of several rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommuneMapping {
    /// Code of the legacy commune (source).
    pub legacy_code: &'static str,
    /// Code of the 2025 commune (target).
    pub new_code: &'static str,
    /// `true` when the legacy commune was split across more than one new commune; then the
    /// legacy code alone does not tell which new commune a person belongs to.
    pub partial: bool,
    /// The GSO "Ghi chú" text, e.g. `"Nhập toàn bộ"` (merged whole) or `"Nhập một phần"` (part).
    pub note: &'static str,
}

/// A legacy district without commune codes that became (part of) a 2025 commune.
///
/// Covers the island districts Bạch Long Vĩ, Cồn Cỏ, Hoàng Sa, Lý Sơn and Côn Đảo, each now a
/// đặc khu, and the coastal alluvial strip run directly by huyện Kim Sơn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DistrictMapping {
    /// Code of the legacy district (source).
    pub legacy_district_code: &'static str,
    /// Code of the 2025 commune (target).
    pub new_commune_code: &'static str,
    /// The GSO "Ghi chú" text.
    pub note: &'static str,
}

#[cfg(test)]
// In tests a failed `expect` is the failure report.
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn type_words_round_trip() {
        for kind in [ProvinceKind::Province, ProvinceKind::CentralCity] {
            assert_eq!(ProvinceKind::parse(kind.vietnamese()), Some(kind));
        }
        for kind in [
            DistrictKind::UrbanDistrict,
            DistrictKind::RuralDistrict,
            DistrictKind::Town,
            DistrictKind::City,
        ] {
            assert_eq!(DistrictKind::parse(kind.vietnamese()), Some(kind));
        }
        for kind in [
            CommuneKind::Commune,
            CommuneKind::Ward,
            CommuneKind::Township,
            CommuneKind::SpecialZone,
        ] {
            assert_eq!(CommuneKind::parse(kind.vietnamese()), Some(kind));
        }
        assert_eq!(CommuneKind::parse("Xã"), None);
        assert!(!CommuneKind::Township.exists_in(Scheme::Y2025));
        assert!(!CommuneKind::SpecialZone.exists_in(Scheme::Legacy));
    }

    #[test]
    fn kinds_serialise_in_snake_case() {
        let json = serde_json::to_string(&CommuneKind::SpecialZone).ok();
        assert_eq!(json.as_deref(), Some("\"special_zone\""));
        let json = serde_json::to_string(&ProvinceKind::CentralCity).ok();
        assert_eq!(json.as_deref(), Some("\"central_city\""));
    }
}
