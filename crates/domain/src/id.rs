//! Personal identification numbers (số định danh cá nhân) and legacy identity-card numbers
//! (số chứng minh nhân dân, CMND).
//!
//! A personal ID is `PPP G YY RRRRRR`: the place code where the birth was registered (the legacy
//! 63-province GSO code, zero-padded to three digits), a digit for century and sex, the last two
//! digits of the birth year, and six random digits. There is no check digit, so every rule that
//! can be checked is checked here, and each rejection says which rule failed.

use crate::Problem;
use crate::date::PartialDate;
use crate::person::Sex;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Codes and names of the places that may appear as the first three digits of an ID number:
/// the 63 provinces of the legacy scheme, whose codes the 34 merged provinces kept.
pub const PLACE_CODES: [(&str, &str); 63] = [
    ("001", "Hà Nội"),
    ("002", "Hà Giang"),
    ("004", "Cao Bằng"),
    ("006", "Bắc Kạn"),
    ("008", "Tuyên Quang"),
    ("010", "Lào Cai"),
    ("011", "Điện Biên"),
    ("012", "Lai Châu"),
    ("014", "Sơn La"),
    ("015", "Yên Bái"),
    ("017", "Hòa Bình"),
    ("019", "Thái Nguyên"),
    ("020", "Lạng Sơn"),
    ("022", "Quảng Ninh"),
    ("024", "Bắc Giang"),
    ("025", "Phú Thọ"),
    ("026", "Vĩnh Phúc"),
    ("027", "Bắc Ninh"),
    ("030", "Hải Dương"),
    ("031", "Hải Phòng"),
    ("033", "Hưng Yên"),
    ("034", "Thái Bình"),
    ("035", "Hà Nam"),
    ("036", "Nam Định"),
    ("037", "Ninh Bình"),
    ("038", "Thanh Hóa"),
    ("040", "Nghệ An"),
    ("042", "Hà Tĩnh"),
    ("044", "Quảng Bình"),
    ("045", "Quảng Trị"),
    ("046", "Thừa Thiên Huế"),
    ("048", "Đà Nẵng"),
    ("049", "Quảng Nam"),
    ("051", "Quảng Ngãi"),
    ("052", "Bình Định"),
    ("054", "Phú Yên"),
    ("056", "Khánh Hòa"),
    ("058", "Ninh Thuận"),
    ("060", "Bình Thuận"),
    ("062", "Kon Tum"),
    ("064", "Gia Lai"),
    ("066", "Đắk Lắk"),
    ("067", "Đắk Nông"),
    ("068", "Lâm Đồng"),
    ("070", "Bình Phước"),
    ("072", "Tây Ninh"),
    ("074", "Bình Dương"),
    ("075", "Đồng Nai"),
    ("077", "Bà Rịa–Vũng Tàu"),
    ("079", "Hồ Chí Minh"),
    ("080", "Long An"),
    ("082", "Tiền Giang"),
    ("083", "Bến Tre"),
    ("084", "Trà Vinh"),
    ("086", "Vĩnh Long"),
    ("087", "Đồng Tháp"),
    ("089", "An Giang"),
    ("091", "Kiên Giang"),
    ("092", "Cần Thơ"),
    ("093", "Hậu Giang"),
    ("094", "Sóc Trăng"),
    ("095", "Bạc Liêu"),
    ("096", "Cà Mau"),
];

/// The name of the place behind a three-digit place code, if the code is known.
pub fn place_name(code: &str) -> Option<&'static str> {
    PLACE_CODES
        .binary_search_by(|(c, _)| (*c).cmp(code))
        .ok()
        .map(|i| PLACE_CODES[i].1)
}

/// Why a string is not a valid personal ID, or why an ID disagrees with a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Not exactly 12 characters.
    #[error("a personal ID number has exactly 12 digits, this one has {0} characters")]
    Length(usize),
    /// A character that is not an ASCII digit.
    #[error("a personal ID number has only digits; found {0:?} at position {1}")]
    NotDigit(char, usize),
    /// The first three digits are not a known place code.
    #[error("the place code {0} (first three digits) is not a known province code")]
    UnknownPlace(String),
    /// The sex recorded for the person disagrees with the 4th digit.
    #[error("the 4th digit says {id:?} but the record says {record:?}")]
    SexMismatch { id: Sex, record: Sex },
    /// The birth year recorded for the person disagrees with digits 4 to 6.
    #[error("digits 4 to 6 give birth year {id} but the record says {record}")]
    YearMismatch { id: i32, record: i32 },
    /// A birth year outside the years an ID number can encode (1900–2399).
    #[error("birth year {0} cannot be encoded in a personal ID number (1900–2399)")]
    YearOutOfRange(i32),
    /// A serial part that is not six digits.
    #[error("the serial part must be between 0 and 999999, got {0}")]
    SerialOutOfRange(u32),
}

impl Problem for IdError {
    fn code(&self) -> &'static str {
        match self {
            Self::Length(_) => "id_length",
            Self::NotDigit(..) => "id_not_digit",
            Self::UnknownPlace(_) => "id_unknown_place",
            Self::SexMismatch { .. } => "id_sex_mismatch",
            Self::YearMismatch { .. } => "id_year_mismatch",
            Self::YearOutOfRange(_) => "id_year_out_of_range",
            Self::SerialOutOfRange(_) => "id_serial_out_of_range",
        }
    }
    fn message_vi(&self) -> String {
        match self {
            Self::Length(n) => {
                format!("Số định danh cá nhân phải có đúng 12 chữ số, số này có {n} ký tự")
            }
            Self::NotDigit(c, i) => {
                format!("Số định danh cá nhân chỉ gồm chữ số; ký tự {c:?} ở vị trí {i}")
            }
            Self::UnknownPlace(p) => {
                format!("Mã nơi đăng ký khai sinh {p} (3 chữ số đầu) không phải mã tỉnh hợp lệ")
            }
            Self::SexMismatch { id, record } => format!(
                "Chữ số thứ 4 cho giới tính {} nhưng hồ sơ ghi {}",
                id.vi(),
                record.vi()
            ),
            Self::YearMismatch { id, record } => {
                format!("Chữ số thứ 4 đến 6 cho năm sinh {id} nhưng hồ sơ ghi {record}")
            }
            Self::YearOutOfRange(y) => {
                format!("Năm sinh {y} không mã hóa được trong số định danh (1900–2399)")
            }
            Self::SerialOutOfRange(s) => {
                format!("Phần số ngẫu nhiên phải từ 0 đến 999999, nhận được {s}")
            }
        }
    }
}

/// A personal identification number: twelve ASCII digits whose place code is known.
///
/// Holding a `PersonalId` proves only the syntax; [`PersonalId::check_against`] proves that it
/// agrees with a person's date of birth and sex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PersonalId([u8; 12]);

impl PersonalId {
    /// Parses and checks the syntax and the place code.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let bytes = s.as_bytes();
        if s.chars().count() != 12 || bytes.len() != 12 {
            return Err(IdError::Length(s.chars().count()));
        }
        let mut out = [0u8; 12];
        for (i, b) in bytes.iter().enumerate() {
            if !b.is_ascii_digit() {
                return Err(IdError::NotDigit(*b as char, i + 1));
            }
            out[i] = *b;
        }
        let id = Self(out);
        if place_name(id.place_code()).is_none() {
            return Err(IdError::UnknownPlace(id.place_code().to_owned()));
        }
        Ok(id)
    }

    /// Builds a new number from its parts (used when a birth is registered).
    pub fn compose(
        place_code: &str,
        sex: Sex,
        birth_year: i32,
        serial: u32,
    ) -> Result<Self, IdError> {
        if place_name(place_code).is_none() {
            return Err(IdError::UnknownPlace(place_code.to_owned()));
        }
        if !(1900..=2399).contains(&birth_year) {
            return Err(IdError::YearOutOfRange(birth_year));
        }
        if serial > 999_999 {
            return Err(IdError::SerialOutOfRange(serial));
        }
        let century = (birth_year - 1900) / 100; // 0..=4
        let g = century * 2 + i32::from(sex == Sex::Female);
        let text = format!("{place_code}{g}{:02}{serial:06}", birth_year % 100);
        Self::parse(&text)
    }

    /// The twelve digits.
    pub fn as_str(&self) -> &str {
        // The bytes are ASCII digits by construction, so they are valid UTF-8.
        std::str::from_utf8(&self.0).unwrap_or("")
    }

    /// The three-digit place code of the birth registration.
    pub fn place_code(&self) -> &str {
        &self.as_str()[..3]
    }

    /// The sex the 4th digit encodes.
    pub fn sex(&self) -> Sex {
        if (self.0[3] - b'0').is_multiple_of(2) {
            Sex::Male
        } else {
            Sex::Female
        }
    }

    /// The birth year that digits 4 to 6 encode.
    pub fn birth_year(&self) -> i32 {
        let g = i32::from(self.0[3] - b'0');
        let yy = i32::from(self.0[4] - b'0') * 10 + i32::from(self.0[5] - b'0');
        1900 + (g / 2) * 100 + yy
    }

    /// The last six digits (random at assignment).
    pub fn serial(&self) -> &str {
        &self.as_str()[6..]
    }

    /// Checks that the number agrees with the recorded sex and date of birth.
    pub fn check_against(&self, date_of_birth: &PartialDate, sex: Sex) -> Result<(), IdError> {
        if self.sex() != sex {
            return Err(IdError::SexMismatch {
                id: self.sex(),
                record: sex,
            });
        }
        if self.birth_year() != date_of_birth.year() {
            return Err(IdError::YearMismatch {
                id: self.birth_year(),
                record: date_of_birth.year(),
            });
        }
        Ok(())
    }
}

impl fmt::Display for PersonalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for PersonalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PersonalId({})", self.as_str())
    }
}

impl FromStr for PersonalId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for PersonalId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for PersonalId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for PersonalId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some("^[0-9]{12}$"))
            .description(Some(
                "Personal identification number (số định danh cá nhân), 12 digits",
            ))
            .examples(["001099012345"])
            .into()
    }
}
impl utoipa::ToSchema for PersonalId {}

/// Why a string is not a legacy CMND number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CmndError {
    /// Neither 9 nor 12 digits.
    #[error("a CMND number has 9 or 12 digits, got {0:?}")]
    Shape(String),
}

impl Problem for CmndError {
    fn code(&self) -> &'static str {
        "cmnd_shape"
    }
    fn message_vi(&self) -> String {
        match self {
            Self::Shape(s) => format!("Số CMND phải có 9 hoặc 12 chữ số, nhận được {s:?}"),
        }
    }
}

/// A legacy identity-card number (chứng minh nhân dân): 9 digits, or 12 for cards of 2012–2016.
///
/// These numbers are **not unique** (some were issued twice) and not stable across provinces, so
/// they are kept only as history on a person and never used as a key.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, example = "012345678")]
pub struct CmndNumber(String);

impl CmndNumber {
    /// Parses a 9- or 12-digit number.
    pub fn parse(s: &str) -> Result<Self, CmndError> {
        let s = s.trim();
        if (s.len() == 9 || s.len() == 12) && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(CmndError::Shape(s.chars().take(20).collect()))
        }
    }
    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CmndNumber {
    type Error = CmndError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}
impl From<CmndNumber> for String {
    fn from(c: CmndNumber) -> String {
        c.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn place_codes_are_sorted_for_binary_search() {
        assert!(PLACE_CODES.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn parses_and_decodes() {
        let id = PersonalId::parse("001099012345").unwrap();
        assert_eq!(id.place_code(), "001");
        assert_eq!(id.sex(), Sex::Male);
        assert_eq!(id.birth_year(), 1999);
        let id = PersonalId::parse("079305000001").unwrap();
        assert_eq!(id.sex(), Sex::Female);
        assert_eq!(id.birth_year(), 2005);
    }

    #[test]
    fn each_rejection_names_its_rule() {
        assert_eq!(
            PersonalId::parse("00109901234").unwrap_err().code(),
            "id_length"
        );
        assert_eq!(
            PersonalId::parse("00109901234a").unwrap_err().code(),
            "id_not_digit"
        );
        assert_eq!(
            PersonalId::parse("003099012345").unwrap_err().code(),
            "id_unknown_place"
        );
        assert_eq!(
            PersonalId::parse("00109901234５").unwrap_err().code(),
            "id_length"
        );
        let id = PersonalId::parse("001099012345").unwrap();
        let dob = PartialDate::Year(1999);
        assert_eq!(
            id.check_against(&dob, Sex::Female).unwrap_err().code(),
            "id_sex_mismatch"
        );
        assert_eq!(
            id.check_against(&PartialDate::Year(1998), Sex::Male)
                .unwrap_err()
                .code(),
            "id_year_mismatch"
        );
        assert!(id.check_against(&dob, Sex::Male).is_ok());
        // 2099 encodes as G=2; the same YY in 1999 as G=0: they must not be confused.
        assert_eq!(
            id.check_against(&PartialDate::Year(2099), Sex::Male)
                .unwrap_err()
                .code(),
            "id_year_mismatch"
        );
    }

    #[test]
    fn cmnd_shapes() {
        assert!(CmndNumber::parse("012345678").is_ok());
        assert!(CmndNumber::parse("012345678901").is_ok());
        assert!(CmndNumber::parse("0123456789").is_err());
        assert!(CmndNumber::parse("01234567a").is_err());
    }

    fn place() -> impl Strategy<Value = &'static str> {
        proptest::sample::select(PLACE_CODES.iter().map(|(c, _)| *c).collect::<Vec<_>>())
    }

    proptest! {
        #[test]
        fn compose_then_parse_round_trips(p in place(), female in any::<bool>(), year in 1900i32..=2399, serial in 0u32..=999_999) {
            let sex = if female { Sex::Female } else { Sex::Male };
            let id = PersonalId::compose(p, sex, year, serial).unwrap();
            let again = PersonalId::parse(id.as_str()).unwrap();
            prop_assert_eq!(id, again);
            prop_assert_eq!(id.sex(), sex);
            prop_assert_eq!(id.birth_year(), year);
            prop_assert_eq!(id.place_code(), p);
            prop_assert!(id.check_against(&PartialDate::Year(year), sex).is_ok());
            let json = serde_json::to_string(&id).unwrap();
            prop_assert_eq!(serde_json::from_str::<PersonalId>(&json).unwrap(), id);
        }

        #[test]
        fn parse_never_panics_and_accepts_only_twelve_digits(s in "\\PC{0,20}") {
            if let Ok(id) = PersonalId::parse(&s) {
                prop_assert_eq!(id.as_str(), s.as_str());
                prop_assert!(s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()));
            }
        }

        #[test]
        fn wrong_year_or_sex_is_always_caught(p in place(), year in 1900i32..=2399, other in 1900i32..=2399, serial in 0u32..=999_999) {
            let id = PersonalId::compose(p, Sex::Male, year, serial).unwrap();
            prop_assert!(id.check_against(&PartialDate::Year(year), Sex::Female).is_err());
            prop_assert_eq!(id.check_against(&PartialDate::Year(other), Sex::Male).is_ok(), year == other);
        }
    }
}
