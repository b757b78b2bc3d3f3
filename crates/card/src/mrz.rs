//! The ICAO 9303 TD1 machine-readable zone (3 lines × 30 characters) of a Vietnamese chip card,
//! as printed on the back and stored in DG1.
//!
//! Vietnamese layout: `IDVNM` + document number (the last 9 digits of the personal ID) + check
//! digit; the optional data of line 1 holds the full 12-digit ID, `<<`, and a check digit over
//! the ID. Every check digit is verified (document number, optional data, date of birth,
//! expiry, composite). The century of the date of birth is taken from the ID's century digit,
//! so it is never guessed.

use chrono::{Datelike, NaiveDate};
use sha1::{Digest, Sha1};
use unicode_normalization::UnicodeNormalization;

use crate::id::{CardNumbers, IdError, PersonalId, Sex, check_holder, id_error_code};

/// Why an MRZ was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MrzError {
    /// Not three lines of 30 characters.
    #[error("TD1 MRZ must be 3 lines of 30 characters")]
    Shape,
    /// A character outside `A-Z`, `0-9` and `<`.
    #[error("invalid MRZ character at line {line}, column {column}")]
    Character {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// Document code is not `ID`/`I<` or the issuing state is not `VNM`.
    #[error("not a Vietnamese identity card MRZ (document code and issuing state)")]
    NotVietnameseId,
    /// A check digit does not match.
    #[error("check digit of the {0} does not match")]
    CheckDigit(&'static str),
    /// The optional data does not hold a 12-digit ID followed by `<<`.
    #[error("optional data does not hold the 12-digit personal ID")]
    OptionalData,
    /// The ID in the optional data is invalid.
    #[error("personal ID: {0}")]
    Id(#[from] IdError),
    /// The document number is not the last 9 digits of the ID.
    #[error("document number is not the last 9 digits of the personal ID")]
    DocumentNumberMismatch,
    /// The date of birth is not a real date.
    #[error("date of birth is not a valid date")]
    DateOfBirth,
    /// The expiry date is not a real date.
    #[error("expiry date is not a valid date")]
    Expiry,
    /// Sex is neither `M` nor `F`.
    #[error("sex must be M or F")]
    Sex,
    /// The name line has no family name.
    #[error("name line has no family name")]
    Name,
    /// A field cannot be encoded in a TD1 MRZ (builder only).
    #[error("cannot build MRZ: {0}")]
    Build(&'static str),
}

impl MrzError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            MrzError::Shape => "mrz.shape",
            MrzError::Character { .. } => "mrz.character",
            MrzError::NotVietnameseId => "mrz.not_vietnamese_id",
            MrzError::CheckDigit("document number") => "mrz.check_digit.document_number",
            MrzError::CheckDigit("optional data") => "mrz.check_digit.optional_data",
            MrzError::CheckDigit("date of birth") => "mrz.check_digit.date_of_birth",
            MrzError::CheckDigit("expiry date") => "mrz.check_digit.expiry",
            MrzError::CheckDigit(_) => "mrz.check_digit.composite",
            MrzError::OptionalData => "mrz.optional_data",
            MrzError::Id(e) => id_error_code(e),
            MrzError::DocumentNumberMismatch => "mrz.document_number_mismatch",
            MrzError::DateOfBirth => "mrz.date_of_birth",
            MrzError::Expiry => "mrz.expiry",
            MrzError::Sex => "mrz.sex",
            MrzError::Name => "mrz.name",
            MrzError::Build(_) => "mrz.build",
        }
    }
}

/// A parsed and verified TD1 MRZ of a Vietnamese card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mrz {
    /// Personal identification number (from the optional data).
    pub id: PersonalId,
    /// Document number (last 9 digits of the ID).
    pub document_number: String,
    /// Family name, upper case, no diacritics (e.g. `NGUYEN`).
    pub family_name: String,
    /// Middle and given names, upper case, no diacritics, space-separated (e.g. `VAN A`).
    pub given_names: String,
    /// Date of birth (century from the ID).
    pub date_of_birth: NaiveDate,
    /// Sex.
    pub sex: Sex,
    /// Expiry date (2000–2099).
    pub expiry: NaiveDate,
    /// Nationality (`VNM`).
    pub nationality: String,
    /// The three lines as read.
    pub lines: [String; 3],
}

/// ICAO 9303 character value: digits 0–9, letters 10–35, filler 0.
fn char_value(c: u8) -> u32 {
    match c {
        b'0'..=b'9' => u32::from(c - b'0'),
        b'A'..=b'Z' => u32::from(c - b'A') + 10,
        _ => 0,
    }
}

/// ICAO 9303 check digit (weights 7, 3, 1) of an MRZ field.
pub fn check_digit(field: &[u8]) -> u8 {
    const W: [u32; 3] = [7, 3, 1];
    let sum: u32 = field
        .iter()
        .enumerate()
        .map(|(i, &c)| char_value(c) * W[i % 3])
        .sum();
    // `sum % 10` is below 10, so the narrowing is exact.
    b'0' + (sum % 10) as u8
}

fn expect_check(field: &[u8], digit: u8, what: &'static str) -> Result<(), MrzError> {
    if check_digit(field) == digit {
        Ok(())
    } else {
        Err(MrzError::CheckDigit(what))
    }
}

fn two_digits(b: &[u8]) -> Option<u32> {
    if b.len() == 2 && b.iter().all(u8::is_ascii_digit) {
        Some(u32::from(b[0] - b'0') * 10 + u32::from(b[1] - b'0'))
    } else {
        None
    }
}

fn yymmdd(b: &[u8], century_start: i32) -> Option<NaiveDate> {
    let yy = i32::try_from(two_digits(&b[0..2])?).ok()?;
    NaiveDate::from_ymd_opt(
        century_start + yy,
        two_digits(&b[2..4])?,
        two_digits(&b[4..6])?,
    )
}

fn split_lines(text: &str) -> Result<[&[u8]; 3], MrzError> {
    let t = text.trim_matches(|c: char| c.is_ascii_whitespace());
    let b = t.as_bytes();
    if b.len() == 90 {
        return Ok([&b[0..30], &b[30..60], &b[60..90]]);
    }
    let mut lines = t.lines().map(|l| l.trim_end_matches('\r').as_bytes());
    match (lines.next(), lines.next(), lines.next(), lines.next()) {
        (Some(a), Some(b), Some(c), None) if a.len() == 30 && b.len() == 30 && c.len() == 30 => {
            Ok([a, b, c])
        }
        _ => Err(MrzError::Shape),
    }
}

/// Parse and verify a TD1 MRZ: either three lines (separated by `\n` or `\r\n`) or the 90
/// characters run together. Input longer than 200 bytes is rejected as [`MrzError::Shape`].
pub fn parse_td1(text: &str) -> Result<Mrz, MrzError> {
    if text.len() > 200 {
        return Err(MrzError::Shape);
    }
    let [l1, l2, l3] = split_lines(text)?;
    for (li, line) in [l1, l2, l3].iter().enumerate() {
        if let Some(col) = line
            .iter()
            .position(|&c| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'<'))
        {
            return Err(MrzError::Character {
                line: li + 1,
                column: col + 1,
            });
        }
    }
    if !(l1[0] == b'I' && (l1[1] == b'D' || l1[1] == b'<') && &l1[2..5] == b"VNM") {
        return Err(MrzError::NotVietnameseId);
    }
    let docno = &l1[5..14];
    expect_check(docno, l1[14], "document number")?;
    let optional = &l1[15..30];
    if &optional[12..14] != b"<<" {
        return Err(MrzError::OptionalData);
    }
    expect_check(&optional[..12], optional[14], "optional data")?;
    expect_check(&l2[0..6], l2[6], "date of birth")?;
    expect_check(&l2[8..14], l2[14], "expiry date")?;
    let mut composite = Vec::with_capacity(60);
    composite.extend_from_slice(&l1[5..30]);
    composite.extend_from_slice(&l2[0..7]);
    composite.extend_from_slice(&l2[8..15]);
    composite.extend_from_slice(&l2[18..29]);
    expect_check(&composite, l2[29], "composite")?;

    // All bytes are ASCII (checked above), so these conversions cannot fail.
    let ascii = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let id_text = ascii(&optional[..12]);
    let id = PersonalId::parse(&id_text).map_err(|e| match e {
        IdError::Length(_) | IdError::NotDigit(..) => MrzError::OptionalData,
        e => MrzError::Id(e),
    })?;
    if docno != id.document_number().as_bytes() {
        return Err(MrzError::DocumentNumberMismatch);
    }
    let sex = match l2[7] {
        b'M' => Sex::Male,
        b'F' => Sex::Female,
        _ => return Err(MrzError::Sex),
    };
    let century = id.birth_year() - id.birth_year() % 100;
    let date_of_birth = yymmdd(&l2[0..6], century).ok_or(MrzError::DateOfBirth)?;
    check_holder(&id, date_of_birth, sex)?;
    let expiry = yymmdd(&l2[8..14], 2000).ok_or(MrzError::Expiry)?;
    let (family_name, given_names) = split_name(l3)?;
    Ok(Mrz {
        id,
        document_number: ascii(docno),
        family_name,
        given_names,
        date_of_birth,
        sex,
        expiry,
        nationality: ascii(&l2[15..18]).trim_end_matches('<').to_owned(),
        lines: [ascii(l1), ascii(l2), ascii(l3)],
    })
}

fn split_name(line: &[u8]) -> Result<(String, String), MrzError> {
    let s = String::from_utf8_lossy(line);
    let s = s.trim_end_matches('<');
    let (family, given) = s.split_once("<<").unwrap_or((s, ""));
    let words = |p: &str| {
        p.split('<')
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let family = words(family);
    if family.is_empty() {
        return Err(MrzError::Name);
    }
    Ok((family, words(given)))
}

impl Mrz {
    /// The three lines joined with `\n`.
    pub fn to_text(&self) -> String {
        self.lines.join("\n")
    }

    /// Full name as in the MRZ: family name, then given names.
    pub fn full_name(&self) -> String {
        if self.given_names.is_empty() {
            self.family_name.clone()
        } else {
            format!("{} {}", self.family_name, self.given_names)
        }
    }

    /// The BAC key seed: the first 16 bytes of SHA-1 over document number, date of birth and
    /// expiry, each with its check digit, as the MRZ prints them.
    pub fn bac_key_seed(&self) -> [u8; 16] {
        let l1 = self.lines[0].as_bytes();
        let l2 = self.lines[1].as_bytes();
        let mut h = Sha1::new();
        h.update(&l1[5..15]);
        h.update(&l2[0..7]);
        h.update(&l2[8..15]);
        let digest = h.finalize();
        let mut seed = [0u8; 16];
        seed.copy_from_slice(&digest[..16]);
        seed
    }

    /// The PACE card access number: the last 6 digits of the personal ID.
    pub fn card_access_number(&self) -> &str {
        self.id.card_access_number()
    }
}

/// Transliterate a Vietnamese name to MRZ letters: NFD, drop combining marks, `Đ`/`đ` → `D`,
/// upper case; spaces, hyphens and apostrophes become `<`; any other character is dropped.
pub fn transliterate(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.nfd() {
        match c {
            'Đ' | 'đ' => out.push('D'),
            c if c.is_ascii_alphabetic() => out.push(c.to_ascii_uppercase()),
            ' ' | '-' | '\'' if !out.is_empty() && !out.ends_with('<') => out.push('<'),
            _ => {}
        }
    }
    out.trim_end_matches('<').to_owned()
}

/// What an MRZ is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MrzInput {
    /// Personal identification number.
    pub id: PersonalId,
    /// Family name (họ), any script form: it is transliterated.
    pub family_name: String,
    /// Middle and given names (tên đệm + tên), transliterated.
    pub given_names: String,
    /// Date of birth; must agree with the ID.
    pub date_of_birth: NaiveDate,
    /// Sex; must agree with the ID.
    pub sex: Sex,
    /// Expiry date, 2000–2099.
    pub expiry: NaiveDate,
}

/// The ICAO 9303 MRZ letter for a sex: `M` or `F`.
fn mrz_sex_letter(sex: Sex) -> u8 {
    match sex {
        Sex::Male => b'M',
        Sex::Female => b'F',
    }
}

fn push_yymmdd(out: &mut Vec<u8>, d: NaiveDate) {
    out.extend_from_slice(
        format!("{:02}{:02}{:02}", d.year() % 100, d.month(), d.day()).as_bytes(),
    );
}

/// Build the three TD1 lines for a Vietnamese card. Names longer than line 3 allows are
/// truncated from the end, as ICAO 9303 permits.
pub fn build_td1(input: &MrzInput) -> Result<[String; 3], MrzError> {
    check_holder(&input.id, input.date_of_birth, input.sex)?;
    if !(2000..2100).contains(&input.expiry.year()) {
        return Err(MrzError::Build("expiry year must be 2000-2099"));
    }
    let family = transliterate(&input.family_name);
    if family.is_empty() {
        return Err(MrzError::Build("family name has no letters"));
    }
    let mut l1 = Vec::with_capacity(30);
    l1.extend_from_slice(b"IDVNM");
    l1.extend_from_slice(input.id.document_number().as_bytes());
    l1.push(check_digit(input.id.document_number().as_bytes()));
    l1.extend_from_slice(input.id.as_str().as_bytes());
    l1.extend_from_slice(b"<<");
    l1.push(check_digit(input.id.as_str().as_bytes()));

    let mut l2 = Vec::with_capacity(30);
    push_yymmdd(&mut l2, input.date_of_birth);
    l2.push(check_digit(&l2[0..6]));
    l2.push(mrz_sex_letter(input.sex));
    push_yymmdd(&mut l2, input.expiry);
    l2.push(check_digit(&l2[8..14]));
    l2.extend_from_slice(b"VNM");
    l2.extend_from_slice(&[b'<'; 11]);
    let mut composite = Vec::with_capacity(60);
    composite.extend_from_slice(&l1[5..30]);
    composite.extend_from_slice(&l2[0..7]);
    composite.extend_from_slice(&l2[8..15]);
    composite.extend_from_slice(&l2[18..29]);
    l2.push(check_digit(&composite));

    let given = transliterate(&input.given_names);
    let mut l3 = family.into_bytes();
    if !given.is_empty() {
        l3.extend_from_slice(b"<<");
        l3.extend_from_slice(given.as_bytes());
    }
    l3.truncate(30);
    while l3.last() == Some(&b'<') {
        l3.pop();
    }
    l3.resize(30, b'<');
    let s = |v: Vec<u8>| String::from_utf8_lossy(&v).into_owned();
    Ok([s(l1), s(l2), s(l3)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> MrzInput {
        MrzInput {
            id: PersonalId::parse("001099012345").unwrap(),
            family_name: "Nguyễn".into(),
            given_names: "Văn Ánh Đức".into(),
            date_of_birth: NaiveDate::from_ymd_opt(1999, 1, 1).unwrap(),
            sex: Sex::Male,
            expiry: NaiveDate::from_ymd_opt(2039, 1, 1).unwrap(),
        }
    }

    #[test]
    fn check_digits_match_icao_examples() {
        // ICAO 9303 part 3 worked example: document number and dates.
        assert_eq!(check_digit(b"D23145890"), b'7');
        assert_eq!(check_digit(b"740812"), b'2');
        assert_eq!(check_digit(b"120415"), b'9');
        assert_eq!(check_digit(b"L898902C<"), b'3');
    }

    #[test]
    fn builds_and_parses() {
        let lines = build_td1(&sample()).unwrap();
        assert_eq!(lines[0], "IDVNM0990123459001099012345<<0");
        assert_eq!(&lines[2], "NGUYEN<<VAN<ANH<DUC<<<<<<<<<<<");
        let m = parse_td1(&lines.join("\n")).unwrap();
        assert_eq!(m.id.as_str(), "001099012345");
        assert_eq!(m.document_number, "099012345");
        assert_eq!(m.family_name, "NGUYEN");
        assert_eq!(m.given_names, "VAN ANH DUC");
        assert_eq!(m.full_name(), "NGUYEN VAN ANH DUC");
        assert_eq!(
            m.date_of_birth,
            NaiveDate::from_ymd_opt(1999, 1, 1).unwrap()
        );
        assert_eq!(m.expiry, NaiveDate::from_ymd_opt(2039, 1, 1).unwrap());
        assert_eq!(m.sex, Sex::Male);
        assert_eq!(m.nationality, "VNM");
        assert_eq!(m.card_access_number(), "012345");
        // Run-together and CRLF forms.
        assert_eq!(parse_td1(&lines.concat()).unwrap(), m);
        assert_eq!(parse_td1(&lines.join("\r\n")).unwrap(), m);
    }

    #[test]
    fn bac_seed_is_sha1_of_key_fields() {
        let m = parse_td1(&build_td1(&sample()).unwrap().join("\n")).unwrap();
        let mut h = Sha1::new();
        let l1 = m.lines[0].as_bytes();
        let l2 = m.lines[1].as_bytes();
        h.update([&l1[5..15], &l2[0..7], &l2[8..15]].concat());
        assert_eq!(m.bac_key_seed()[..], h.finalize()[..16]);
    }

    #[test]
    fn icao_bac_example_seed() {
        // ICAO 9303 part 11 appendix D: "L898902C<369080619406236" → seed 239AB9CB282DAF66231DC5A4DF6BFBAE.
        let mut h = Sha1::new();
        h.update(b"L898902C<369080619406236");
        let d = h.finalize();
        assert_eq!(
            d[..16],
            [
                0x23, 0x9a, 0xb9, 0xcb, 0x28, 0x2d, 0xaf, 0x66, 0x23, 0x1d, 0xc5, 0xa4, 0xdf, 0x6b,
                0xfb, 0xae
            ]
        );
    }

    #[test]
    fn transliteration() {
        assert_eq!(transliterate("Ưng Thị Đào"), "UNG<THI<DAO");
        assert_eq!(transliterate("đặng  hữu-phước "), "DANG<HUU<PHUOC");
        assert_eq!(transliterate("Lê Ngọc Hoà"), "LE<NGOC<HOA");
    }

    #[test]
    fn errors_are_precise() {
        let lines = build_td1(&sample()).unwrap();
        let with = |li: usize, col: usize, c: u8| {
            let mut ls = lines.clone();
            let mut b = ls[li].clone().into_bytes();
            b[col] = c;
            ls[li] = String::from_utf8(b).unwrap();
            parse_td1(&ls.join("\n")).unwrap_err().code()
        };
        assert_eq!(with(0, 14, b'0'), "mrz.check_digit.document_number");
        assert_eq!(with(0, 29, b'1'), "mrz.check_digit.optional_data");
        assert_eq!(with(1, 6, b'0'), "mrz.check_digit.date_of_birth");
        assert_eq!(with(1, 14, b'0'), "mrz.check_digit.expiry");
        assert_eq!(with(1, 29, b'1'), "mrz.check_digit.composite");
        assert_eq!(with(0, 2, b'U'), "mrz.not_vietnamese_id");
        assert_eq!(with(2, 0, b'a'), "mrz.character");
        assert_eq!(with(1, 7, b'X'), "mrz.sex");
        assert_eq!(parse_td1("IDVNM").unwrap_err().code(), "mrz.shape");
        // Document number that is not the ID's tail (with consistent check digits).
        let mut ls = lines.clone();
        let mut l1 = b"IDVNM099012346".to_vec();
        l1.push(check_digit(b"099012346"));
        l1.extend_from_slice(&lines[0].as_bytes()[15..]);
        ls[0] = String::from_utf8(l1).unwrap();
        let mut l2 = ls[1].as_bytes()[..29].to_vec();
        let composite = [&ls[0].as_bytes()[5..30], &l2[0..7], &l2[8..15], &l2[18..29]].concat();
        l2.push(check_digit(&composite));
        ls[1] = String::from_utf8(l2).unwrap();
        assert_eq!(
            parse_td1(&ls.join("\n")).unwrap_err().code(),
            "mrz.document_number_mismatch"
        );
    }

    proptest! {
        #[test]
        fn round_trip(
            p in proptest::sample::select(crate::id::PLACE_CODES.iter().map(|(c, _)| *c).collect::<Vec<_>>()),
            y in 1900i32..2100, doy in 1u32..=365, female in any::<bool>(), serial in 0u32..1_000_000,
            family in "[A-Z]{1,8}", given in "[A-Z]{1,6}( [A-Z]{1,6}){0,1}", exp in 2000i32..2100,
        ) {
            let sex = if female { Sex::Female } else { Sex::Male };
            let input = MrzInput {
                id: PersonalId::compose(p, sex, y, serial).unwrap(),
                family_name: family.clone(),
                given_names: given.clone(),
                date_of_birth: NaiveDate::from_yo_opt(y, doy).unwrap(),
                sex,
                expiry: NaiveDate::from_ymd_opt(exp, 6, 30).unwrap(),
            };
            let m = parse_td1(&build_td1(&input).unwrap().join("\n")).unwrap();
            prop_assert_eq!(m.id, input.id);
            prop_assert_eq!(m.family_name, family);
            prop_assert_eq!(m.given_names, given);
            prop_assert_eq!(m.date_of_birth, input.date_of_birth);
            prop_assert_eq!(m.expiry, input.expiry);
            prop_assert_eq!(m.sex, sex);
        }

        #[test]
        fn never_panics(s in "[A-Z0-9<\n]{0,100}") {
            let _ = parse_td1(&s);
        }

        #[test]
        fn never_panics_unicode(s in "\\PC{0,120}") {
            let _ = parse_td1(&s);
        }
    }
}
