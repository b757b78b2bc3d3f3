//! Administrative units of Vietnam (đơn vị hành chính) in both schemes, and addresses in them.
//!
//! This module owns the GSO/NSO code lists (danh mục đơn vị hành chính) embedded from
//! `data/*.csv` (see `data/README.md` for sources and corrections), the official conversion from
//! the legacy scheme to the 2025 scheme, and the [`Address`] value that pins a residence to a
//! commune of one scheme from a given date. It does no I/O: the files are compiled into the
//! binary and parsed once, on first use of [`AdminUnits::get`].
//!
//! * **Legacy scheme** ([`Scheme::Legacy`]): three tiers, tỉnh / huyện / xã, as it stood on
//!   30 June 2025: 63 provinces, 696 districts, 10,035 communes.
//! * **2025 scheme** ([`Scheme::Y2025`]): two tiers, tỉnh / xã, in force from 1 July 2025
//!   ([`Scheme::REFORM_DATE`]): 34 provinces and 3,321 communes (2,621 xã, 687 phường,
//!   13 đặc khu).
//!
//! The commune conversion is many-to-many: 440 legacy communes were split, and for people in
//! them the new commune depends on the street or hamlet. This module never guesses it (see
//! [`CurrentView`]).

mod address;
mod csv;
mod registry;
mod units;

use std::fmt;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use address::{Address, AddressError, MAX_DETAIL_CHARS};
pub use registry::{AdminUnits, CurrentView};
pub use units::{
    Commune, CommuneKind, CommuneMapping, District, DistrictKind, DistrictMapping, Province,
    ProvinceKind,
};

/// Version of the administrative-unit scheme (phương án đơn vị hành chính) a code belongs to.
///
/// Codes must always travel with their scheme: a five-digit code can name different territory
/// before and after the 2025 reform.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
pub enum Scheme {
    /// Three tiers (tỉnh / huyện / xã), in force until 30 June 2025.
    #[serde(rename = "legacy")]
    Legacy,
    /// Two tiers (tỉnh / xã), in force from 1 July 2025 (Quyết định 19/2025/QĐ-TTg).
    #[serde(rename = "2025")]
    Y2025,
}

impl Scheme {
    /// Both schemes, oldest first.
    pub const ALL: [Scheme; 2] = [Scheme::Legacy, Scheme::Y2025];

    /// The first day of the 2025 scheme: 1 July 2025.
    pub const REFORM_DATE: NaiveDate = match NaiveDate::from_ymd_opt(2025, 7, 1) {
        Some(date) => date,
        // Evaluated at compile time: a wrong date would fail the build, not a run.
        None => panic!("invalid reform date"),
    };

    /// The scheme in force on `date`: legacy before 1 July 2025, 2025 from then on.
    pub fn for_date(date: NaiveDate) -> Scheme {
        if date < Self::REFORM_DATE {
            Scheme::Legacy
        } else {
            Scheme::Y2025
        }
    }

    /// The stable text form, as in JSON: `"legacy"` or `"2025"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scheme::Legacy => "legacy",
            Scheme::Y2025 => "2025",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
// In tests a failed `expect` is the failure report.
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid test date")
    }

    #[test]
    fn scheme_follows_the_reform_date() {
        assert_eq!(Scheme::REFORM_DATE, date(2025, 7, 1));
        assert_eq!(Scheme::for_date(date(2025, 6, 30)), Scheme::Legacy);
        assert_eq!(Scheme::for_date(date(1990, 1, 1)), Scheme::Legacy);
        assert_eq!(Scheme::for_date(date(2025, 7, 1)), Scheme::Y2025);
        assert_eq!(Scheme::for_date(date(2030, 1, 1)), Scheme::Y2025);
    }

    #[test]
    fn scheme_serde_names() {
        assert_eq!(
            serde_json::to_string(&Scheme::Legacy).ok().as_deref(),
            Some("\"legacy\"")
        );
        assert_eq!(
            serde_json::to_string(&Scheme::Y2025).ok().as_deref(),
            Some("\"2025\"")
        );
        let parsed: Scheme = serde_json::from_str("\"2025\"").expect("valid scheme");
        assert_eq!(parsed, Scheme::Y2025);
        assert!(serde_json::from_str::<Scheme>("\"Y2025\"").is_err());
        assert_eq!(Scheme::Legacy.to_string(), "legacy");
    }
}
