//! The 12-digit personal identification number (số định danh cá nhân) as printed on a card,
//! and the checks a card reader can make on it without the register: layout, province of
//! birth registration (legacy 63-province GSO table), and agreement of the century/sex digit
//! and the two year digits with a date of birth and a sex.

use chrono::{Datelike, NaiveDate};

/// Sex as recorded on a card (giới tính).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sex {
    /// Nam.
    Male,
    /// Nữ.
    Female,
}

impl Sex {
    /// The Vietnamese word printed on the card and in the QR code: `Nam` or `Nữ`.
    pub fn vietnamese(self) -> &'static str {
        match self {
            Sex::Male => "Nam",
            Sex::Female => "Nữ",
        }
    }

    /// The ICAO 9303 MRZ letter: `M` or `F`.
    pub fn mrz_letter(self) -> char {
        match self {
            Sex::Male => 'M',
            Sex::Female => 'F',
        }
    }
}

/// Why a personal identification number was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Not exactly 12 characters.
    #[error("personal ID must have 12 digits, found {0} characters")]
    Length(usize),
    /// A character that is not an ASCII digit.
    #[error("personal ID may only contain digits")]
    NonDigit,
    /// The first three digits are not a code of the legacy 63-province table.
    #[error("unknown province code {0:03}")]
    UnknownProvince(u16),
    /// The century digit and two year digits do not give the year of birth.
    #[error("ID encodes birth year {encoded}, date of birth says {actual}")]
    BirthYearMismatch {
        /// Year that the ID's digits 4–6 encode.
        encoded: i32,
        /// Year of the date of birth.
        actual: i32,
    },
    /// The century/sex digit gives the other sex.
    #[error("ID encodes sex {encoded:?}, card says {actual:?}")]
    SexMismatch {
        /// Sex encoded in digit 4.
        encoded: Sex,
        /// Sex stated on the card.
        actual: Sex,
    },
}

impl IdError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            IdError::Length(_) => "id.length",
            IdError::NonDigit => "id.non_digit",
            IdError::UnknownProvince(_) => "id.unknown_province",
            IdError::BirthYearMismatch { .. } => "id.birth_year_mismatch",
            IdError::SexMismatch { .. } => "id.sex_mismatch",
        }
    }
}

/// Legacy GSO province codes (63 provinces, before the 1 July 2025 reform). The 2025 mergers do
/// not change existing numbers, so this table stays the one that numbers are checked against.
const PROVINCES: [(u16, &str); 63] = [
    (1, "Hà Nội"),
    (2, "Hà Giang"),
    (4, "Cao Bằng"),
    (6, "Bắc Kạn"),
    (8, "Tuyên Quang"),
    (10, "Lào Cai"),
    (11, "Điện Biên"),
    (12, "Lai Châu"),
    (14, "Sơn La"),
    (15, "Yên Bái"),
    (17, "Hòa Bình"),
    (19, "Thái Nguyên"),
    (20, "Lạng Sơn"),
    (22, "Quảng Ninh"),
    (24, "Bắc Giang"),
    (25, "Phú Thọ"),
    (26, "Vĩnh Phúc"),
    (27, "Bắc Ninh"),
    (30, "Hải Dương"),
    (31, "Hải Phòng"),
    (33, "Hưng Yên"),
    (34, "Thái Bình"),
    (35, "Hà Nam"),
    (36, "Nam Định"),
    (37, "Ninh Bình"),
    (38, "Thanh Hóa"),
    (40, "Nghệ An"),
    (42, "Hà Tĩnh"),
    (44, "Quảng Bình"),
    (45, "Quảng Trị"),
    (46, "Thừa Thiên Huế"),
    (48, "Đà Nẵng"),
    (49, "Quảng Nam"),
    (51, "Quảng Ngãi"),
    (52, "Bình Định"),
    (54, "Phú Yên"),
    (56, "Khánh Hòa"),
    (58, "Ninh Thuận"),
    (60, "Bình Thuận"),
    (62, "Kon Tum"),
    (64, "Gia Lai"),
    (66, "Đắk Lắk"),
    (67, "Đắk Nông"),
    (68, "Lâm Đồng"),
    (70, "Bình Phước"),
    (72, "Tây Ninh"),
    (74, "Bình Dương"),
    (75, "Đồng Nai"),
    (77, "Bà Rịa–Vũng Tàu"),
    (79, "Hồ Chí Minh"),
    (80, "Long An"),
    (82, "Tiền Giang"),
    (83, "Bến Tre"),
    (84, "Trà Vinh"),
    (86, "Vĩnh Long"),
    (87, "Đồng Tháp"),
    (89, "An Giang"),
    (91, "Kiên Giang"),
    (92, "Cần Thơ"),
    (93, "Hậu Giang"),
    (94, "Sóc Trăng"),
    (95, "Bạc Liêu"),
    (96, "Cà Mau"),
];

/// Name of a legacy province code, if the code is in the table.
pub fn province_name(code: u16) -> Option<&'static str> {
    PROVINCES
        .binary_search_by_key(&code, |(c, _)| *c)
        .ok()
        .map(|i| PROVINCES[i].1)
}

/// All legacy province codes, ascending.
pub fn province_codes() -> impl Iterator<Item = u16> {
    PROVINCES.iter().map(|(c, _)| *c)
}

/// A syntactically valid personal identification number: 12 ASCII digits whose first three
/// digits are a known province code. Agreement with a date of birth and sex is a separate
/// check ([`PersonalId::check_birth`]) because the number alone cannot tell.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PersonalId([u8; 12]);

impl std::fmt::Debug for PersonalId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PersonalId({})", self.as_str())
    }
}

impl std::fmt::Display for PersonalId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PersonalId {
    /// Parse the 12-digit text form.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let b = s.as_bytes();
        if b.len() != 12 {
            return Err(IdError::Length(s.chars().count()));
        }
        let mut digits = [0u8; 12];
        for (d, &c) in digits.iter_mut().zip(b) {
            if !c.is_ascii_digit() {
                return Err(IdError::NonDigit);
            }
            *d = c;
        }
        let id = PersonalId(digits);
        let province = id.province_code();
        if province_name(province).is_none() {
            return Err(IdError::UnknownProvince(province));
        }
        Ok(id)
    }

    /// The 12 digits.
    pub fn as_str(&self) -> &str {
        // The array only ever holds ASCII digits (checked in `parse`), so this cannot fail;
        // the fallback keeps the function total without a panic path.
        std::str::from_utf8(&self.0).unwrap_or("")
    }

    fn digit(&self, i: usize) -> u16 {
        u16::from(self.0[i] - b'0')
    }

    /// Province of birth registration (digits 1–3).
    pub fn province_code(&self) -> u16 {
        self.digit(0) * 100 + self.digit(1) * 10 + self.digit(2)
    }

    /// Name of the province of birth registration.
    pub fn province_name(&self) -> &'static str {
        province_name(self.province_code()).unwrap_or("")
    }

    /// Sex encoded in the century/sex digit (digit 4): even male, odd female.
    pub fn sex(&self) -> Sex {
        if self.digit(3) & 1 == 0 {
            Sex::Male
        } else {
            Sex::Female
        }
    }

    /// Year of birth encoded by digits 4–6 (century digit and two year digits), 1900–2399.
    pub fn birth_year(&self) -> i32 {
        let century = 1900 + 100 * i32::from(self.digit(3) / 2);
        century + i32::from(self.digit(4) * 10 + self.digit(5))
    }

    /// Check that the number agrees with a date of birth and a sex.
    pub fn check_birth(&self, date_of_birth: NaiveDate, sex: Sex) -> Result<(), IdError> {
        let encoded = self.birth_year();
        if encoded != date_of_birth.year() {
            return Err(IdError::BirthYearMismatch {
                encoded,
                actual: date_of_birth.year(),
            });
        }
        if self.sex() != sex {
            return Err(IdError::SexMismatch {
                encoded: self.sex(),
                actual: sex,
            });
        }
        Ok(())
    }

    /// Last 9 digits: the document number in the card's MRZ.
    pub fn document_number(&self) -> &str {
        &self.as_str()[3..]
    }

    /// Last 6 digits: the PACE card access number (CAN).
    pub fn card_access_number(&self) -> &str {
        &self.as_str()[6..]
    }

    /// Build a number from its parts (for fixtures and tests). `serial` is the 6 random digits.
    pub fn from_parts(province: u16, year: i32, sex: Sex, serial: u32) -> Result<Self, IdError> {
        if province_name(province).is_none() {
            return Err(IdError::UnknownProvince(province));
        }
        if !(1900..2400).contains(&year) || serial > 999_999 {
            return Err(IdError::Length(0));
        }
        let g = (year - 1900) / 100 * 2 + i32::from(sex == Sex::Female);
        Self::parse(&format!("{province:03}{g}{:02}{serial:06}", year % 100))
    }
}

/// Parse a `DDMMYYYY` date (the QR code's format). `None` for anything else, including
/// impossible dates such as 31 February.
pub(crate) fn parse_ddmmyyyy(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    if b.len() != 8 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n =
        |r: std::ops::Range<usize>| b[r].iter().fold(0u32, |a, &c| a * 10 + u32::from(c - b'0'));
    let year = i32::try_from(n(4..8)).ok()?;
    NaiveDate::from_ymd_opt(year, n(2..4), n(0..2))
}

/// Format a date as `DDMMYYYY`.
pub(crate) fn format_ddmmyyyy(d: NaiveDate) -> String {
    format!("{:02}{:02}{:04}", d.day(), d.month(), d.year())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_decodes_parts() {
        let id = PersonalId::parse("001099012345").unwrap();
        assert_eq!(id.province_code(), 1);
        assert_eq!(id.province_name(), "Hà Nội");
        assert_eq!(id.sex(), Sex::Male);
        assert_eq!(id.birth_year(), 1999);
        assert_eq!(id.document_number(), "099012345");
        assert_eq!(id.card_access_number(), "012345");
        let f = PersonalId::parse("079305000001").unwrap();
        assert_eq!((f.sex(), f.birth_year()), (Sex::Female, 2005));
    }

    #[test]
    fn rejects_bad_numbers() {
        assert_eq!(
            PersonalId::parse("00109901234").unwrap_err().code(),
            "id.length"
        );
        assert_eq!(
            PersonalId::parse("00109901234x").unwrap_err().code(),
            "id.non_digit"
        );
        assert_eq!(
            PersonalId::parse("003099012345").unwrap_err(),
            IdError::UnknownProvince(3)
        );
        assert_eq!(
            PersonalId::parse("097099012345").unwrap_err().code(),
            "id.unknown_province"
        );
    }

    #[test]
    fn birth_agreement() {
        let id = PersonalId::parse("001099012345").unwrap();
        let d = NaiveDate::from_ymd_opt(1999, 1, 1).unwrap();
        assert!(id.check_birth(d, Sex::Male).is_ok());
        assert_eq!(
            id.check_birth(d, Sex::Female).unwrap_err().code(),
            "id.sex_mismatch"
        );
        let d2 = NaiveDate::from_ymd_opt(2099, 1, 1).unwrap();
        assert_eq!(
            id.check_birth(d2, Sex::Male).unwrap_err().code(),
            "id.birth_year_mismatch"
        );
    }

    #[test]
    fn table_is_sorted_and_complete() {
        assert!(PROVINCES.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(province_codes().count(), 63);
    }

    #[test]
    fn dates() {
        assert_eq!(
            parse_ddmmyyyy("29022000"),
            NaiveDate::from_ymd_opt(2000, 2, 29)
        );
        assert_eq!(parse_ddmmyyyy("29021900"), None);
        assert_eq!(parse_ddmmyyyy("3102200a"), None);
        assert_eq!(
            format_ddmmyyyy(NaiveDate::from_ymd_opt(2021, 6, 15).unwrap()),
            "15062021"
        );
    }

    #[test]
    fn from_parts_round_trips() {
        let id = PersonalId::from_parts(79, 2005, Sex::Female, 42).unwrap();
        assert_eq!(id.as_str(), "079305000042");
    }
}
