//! The QR code printed on the back of a chip card (CCCD / thẻ căn cước): UTF-8 text,
//! `ID12|oldCMND|Full Name|DDMMYYYY|Nam or Nữ|address|issue date DDMMYYYY`.
//!
//! Empty fields are kept (old CMND and address may be empty); extra trailing *empty* fields are
//! tolerated because some card batches print them; anything else is rejected with a
//! [`QrError`] whose [`QrError::code`] is stable.

use std::borrow::Cow;

use chrono::NaiveDate;
use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};

use crate::date::{format_ddmmyyyy, parse_ddmmyyyy};
use crate::id::{IdError, PersonalId, Sex, check_holder, id_error_code};

/// Largest QR text accepted, in bytes. Real payloads are around 150 bytes.
pub const MAX_QR_LEN: usize = 1024;

/// Number of meaningful fields.
const FIELDS: usize = 7;

/// The data of a card's QR code, validated. Names and addresses are NFC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrData {
    /// Personal identification number.
    pub id: PersonalId,
    /// Old identity card (CMND) number, 9 or 12 digits, if printed.
    pub old_id: Option<String>,
    /// Full name, family name first, NFC.
    pub full_name: String,
    /// Date of birth.
    pub date_of_birth: NaiveDate,
    /// Sex.
    pub sex: Sex,
    /// Place of residence as printed, NFC; may be empty.
    pub address: String,
    /// Date the card was issued.
    pub issue_date: NaiveDate,
}

/// Why a QR text was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QrError {
    /// Input longer than [`MAX_QR_LEN`].
    #[error("QR text is {0} bytes, more than the limit of {MAX_QR_LEN}")]
    TooLong(usize),
    /// Fewer than 7 fields, or a non-empty field after the 7th.
    #[error("QR text must have 7 `|`-separated fields, found {0}")]
    FieldCount(usize),
    /// A control character (other than a trailing line break) inside a field.
    #[error("control character in field {0}")]
    ControlCharacter(usize),
    /// The ID number field is invalid.
    #[error("ID number: {0}")]
    Id(#[from] IdError),
    /// The old CMND field is neither empty nor 9 or 12 digits.
    #[error("old ID number must be empty or 9 or 12 digits")]
    OldId,
    /// The name field is empty or only spaces.
    #[error("full name is empty")]
    EmptyName,
    /// The date of birth is not a real DDMMYYYY date.
    #[error("date of birth is not a valid DDMMYYYY date")]
    DateOfBirth,
    /// The sex field is neither `Nam` nor `Nữ`.
    #[error("sex must be `Nam` or `Nữ`")]
    Sex,
    /// The issue date is not a real DDMMYYYY date.
    #[error("issue date is not a valid DDMMYYYY date")]
    IssueDate,
    /// The card would have been issued before its holder was born.
    #[error("issue date is before the date of birth")]
    IssuedBeforeBirth,
}

impl QrError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            QrError::TooLong(_) => "qr.too_long",
            QrError::FieldCount(_) => "qr.field_count",
            QrError::ControlCharacter(_) => "qr.control_character",
            QrError::Id(e) => id_error_code(e),
            QrError::OldId => "qr.old_id",
            QrError::EmptyName => "qr.empty_name",
            QrError::DateOfBirth => "qr.date_of_birth",
            QrError::Sex => "qr.sex",
            QrError::IssueDate => "qr.issue_date",
            QrError::IssuedBeforeBirth => "qr.issued_before_birth",
        }
    }
}

fn nfc(s: &str) -> Cow<'_, str> {
    if is_nfc_quick(s.chars()) == IsNormalized::Yes {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.nfc().collect())
    }
}

fn parse_sex(s: &str) -> Option<Sex> {
    match s {
        "Nam" | "NAM" | "nam" => Some(Sex::Male),
        "Nữ" | "NỮ" | "nữ" => Some(Sex::Female),
        // Decomposed forms of "Nữ".
        _ => match nfc(s).as_ref() {
            "Nữ" | "NỮ" | "nữ" => Some(Sex::Female),
            _ => None,
        },
    }
}

/// Parse and validate the QR text. A single trailing line break (`\n` or `\r\n`), as scanners
/// often append, is ignored.
pub fn parse_qr(text: &str) -> Result<QrData, QrError> {
    if text.len() > MAX_QR_LEN {
        return Err(QrError::TooLong(text.len()));
    }
    let text = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(text);
    let mut f: [&str; FIELDS] = [""; FIELDS];
    let mut count = 0usize;
    for (i, part) in text.split('|').enumerate() {
        if part.chars().any(char::is_control) {
            return Err(QrError::ControlCharacter(i + 1));
        }
        if i < FIELDS {
            f[i] = part;
        } else if !part.is_empty() {
            return Err(QrError::FieldCount(text.split('|').count()));
        }
        count = i + 1;
    }
    if count < FIELDS {
        return Err(QrError::FieldCount(count));
    }
    let id = PersonalId::parse(f[0])?;
    let old_id = match f[1] {
        "" => None,
        s if (s.len() == 9 || s.len() == 12) && s.bytes().all(|b| b.is_ascii_digit()) => {
            Some(s.to_owned())
        }
        _ => return Err(QrError::OldId),
    };
    let full_name = nfc(f[2].trim()).into_owned();
    if full_name.is_empty() {
        return Err(QrError::EmptyName);
    }
    let date_of_birth = parse_ddmmyyyy(f[3]).ok_or(QrError::DateOfBirth)?;
    let sex = parse_sex(f[4]).ok_or(QrError::Sex)?;
    check_holder(&id, date_of_birth, sex)?;
    let address = nfc(f[5].trim()).into_owned();
    let issue_date = parse_ddmmyyyy(f[6]).ok_or(QrError::IssueDate)?;
    if issue_date < date_of_birth {
        return Err(QrError::IssuedBeforeBirth);
    }
    Ok(QrData {
        id,
        old_id,
        full_name,
        date_of_birth,
        sex,
        address,
        issue_date,
    })
}

impl QrData {
    /// The QR text for this data, in the card's format.
    pub fn to_qr_text(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}|{}|{}",
            self.id,
            self.old_id.as_deref().unwrap_or(""),
            self.full_name,
            format_ddmmyyyy(self.date_of_birth),
            self.sex.vi(),
            self.address,
            format_ddmmyyyy(self.issue_date)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SAMPLE: &str = "001099012345|012345678|Nguyễn Văn A|01011999|Nam|Số 1 Tràng Tiền, Hoàn Kiếm, Hà Nội|15062021";

    #[test]
    fn parses_sample() {
        let q = parse_qr(SAMPLE).unwrap();
        assert_eq!(q.id.as_str(), "001099012345");
        assert_eq!(q.old_id.as_deref(), Some("012345678"));
        assert_eq!(q.full_name, "Nguyễn Văn A");
        assert_eq!(
            q.date_of_birth,
            NaiveDate::from_ymd_opt(1999, 1, 1).unwrap()
        );
        assert_eq!(q.sex, Sex::Male);
        assert_eq!(q.issue_date, NaiveDate::from_ymd_opt(2021, 6, 15).unwrap());
        assert_eq!(q.to_qr_text(), SAMPLE);
    }

    #[test]
    fn empty_fields_and_trailing_empties() {
        let q = parse_qr("079305000001||Trần Thị Bích|31122005|Nữ||01022022||\r\n").unwrap();
        assert_eq!(q.old_id, None);
        assert_eq!(q.address, "");
        assert_eq!(q.sex, Sex::Female);
    }

    #[test]
    fn normalises_names_to_nfc() {
        let nfd: String = "Nguyễn Văn A".nfd().collect();
        let text = format!("001099012345||{nfd}|01011999|Nam||15062021");
        assert_eq!(parse_qr(&text).unwrap().full_name, "Nguyễn Văn A");
    }

    #[test]
    fn precise_errors() {
        let cases = [
            ("001099012345||A|01011999|Nam|", "qr.field_count"),
            ("001099012345||A|01011999|Nam||15062021|x", "qr.field_count"),
            ("00109901234||A|01011999|Nam||15062021", "id.length"),
            (
                "003099012345||A|01011999|Nam||15062021",
                "id.unknown_province",
            ),
            ("001099012345|12345|A|01011999|Nam||15062021", "qr.old_id"),
            ("001099012345|| |01011999|Nam||15062021", "qr.empty_name"),
            ("001099012345||A|31021999|Nam||15062021", "qr.date_of_birth"),
            ("001099012345||A|01011999|Male||15062021", "qr.sex"),
            ("001099012345||A|01011999|Nữ||15062021", "id.sex_mismatch"),
            (
                "001099012345||A|01011998|Nam||15062021",
                "id.birth_year_mismatch",
            ),
            ("001099012345||A|01011999|Nam||00002021", "qr.issue_date"),
            (
                "001099012345||A|01011999|Nam||15061998",
                "qr.issued_before_birth",
            ),
            (
                "001099012345||A\tB|01011999|Nam||15062021",
                "qr.control_character",
            ),
        ];
        for (text, code) in cases {
            assert_eq!(parse_qr(text).unwrap_err().code(), code, "{text}");
        }
        let long = "x".repeat(MAX_QR_LEN + 1);
        assert_eq!(parse_qr(&long).unwrap_err().code(), "qr.too_long");
    }

    fn arb_qr() -> impl Strategy<Value = QrData> {
        let places: Vec<&str> = crate::id::PLACE_CODES.iter().map(|(c, _)| *c).collect();
        (
            proptest::sample::select(places),
            1900i32..2100,
            1u32..=365,
            any::<bool>(),
            0u32..1_000_000,
            proptest::option::of("[0-9]{9}"),
            "[A-Za-zÀ-ỹĐđ]{1,10}( [A-Za-zÀ-ỹĐđ]{1,10}){0,3}",
            "[A-Za-z0-9À-ỹĐđ ,./-]{0,60}",
            0i64..20_000,
        )
            .prop_map(|(p, y, doy, female, serial, old, name, addr, later)| {
                let sex = if female { Sex::Female } else { Sex::Male };
                let dob = NaiveDate::from_yo_opt(y, doy).unwrap();
                QrData {
                    id: PersonalId::compose(p, sex, y, serial).unwrap(),
                    old_id: old,
                    full_name: name.nfc().collect::<String>().trim().to_owned(),
                    date_of_birth: dob,
                    sex,
                    address: addr.nfc().collect::<String>().trim().to_owned(),
                    issue_date: dob + chrono::Duration::days(later),
                }
            })
            .prop_filter("name must not be blank", |q| !q.full_name.is_empty())
    }

    proptest! {
        #[test]
        fn round_trip(q in arb_qr()) {
            prop_assert_eq!(parse_qr(&q.to_qr_text()).unwrap(), q);
        }

        #[test]
        fn never_panics(s in "\\PC{0,300}") {
            let _ = parse_qr(&s);
        }

        #[test]
        fn never_panics_on_pipes(s in "[0-9|NamữA ]{0,80}") {
            let _ = parse_qr(&s);
        }
    }
}
