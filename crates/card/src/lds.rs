//! The chip's logical data structure (ICAO 9303 part 10): EF.COM and the data groups a
//! Vietnamese card carries — DG1 (MRZ), DG2 (face), DG13 (Vietnam's personal data), DG14
//! (chip authentication info) and DG15 (active authentication key). Parsing is bounded and
//! borrows nothing after it returns; encoders are here too, for fixtures and round-trip tests.
//!
//! # DG13 encoding accepted
//!
//! DG13 has no public ICAO definition; this crate accepts, and its encoder writes:
//!
//! ```text
//! DG13   ::= [APPLICATION 13] (tag 0x6D) containing either Body or Field* directly
//! Body   ::= SEQUENCE (0x30) { (any non-SEQUENCE element, e.g. an INTEGER version: skipped)*,
//!                              Field* }
//! Field  ::= SEQUENCE { number INTEGER (1..=255), Value* }
//! Value  ::= UTF8String (0x0C) | PrintableString (0x13) | IA5String (0x16)
//!          | T61String (0x14) | OCTET STRING (0x04, UTF-8 text)
//!          | SEQUENCE { Value* }          -- flattened, one level
//! ```
//!
//! Field numbers: 1 ID, 2 full name, 3 date of birth, 4 sex (`Nam`/`Nữ`), 5 nationality,
//! 6 ethnicity, 7 religion, 8 place of origin, 9 place of residence, 10 identifying marks,
//! 11 issue date, 12 expiry date (a date or `Không thời hạn`), 13 father's name then
//! mother's name (two values), 14 spouse, 15 old ID number, 16 unknown (kept raw).
//! Dates are `DD/MM/YYYY` (also accepted: `DDMMYYYY`). Fields are matched by number, may come
//! in any order and may be absent; a repeated number is an error; unknown numbers are kept in
//! [`Dg13::other_fields`]. The encoder writes an INTEGER version 1 first, then the fields in
//! number order, each value as a UTF8String.

use chrono::{Datelike, NaiveDate};
use der::asn1::ObjectIdentifier;
use unicode_normalization::UnicodeNormalization;

use crate::date::parse_ddmmyyyy;
use crate::id::{IdError, PersonalId, Sex, id_error_code};
use crate::mrz::{Mrz, MrzError, parse_td1};
use crate::tlv::{TlvError, TlvReader, read_single, tlv};

/// Largest elementary file accepted by the parsers, in bytes.
pub const MAX_FILE_LEN: usize = 1 << 20;
/// Largest DG13 value string, in bytes.
pub const MAX_DG13_VALUE: usize = 1024;
/// Largest number of DG13 fields.
pub const MAX_DG13_FIELDS: usize = 64;

/// Why an elementary file was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LdsError {
    /// File larger than [`MAX_FILE_LEN`].
    #[error("file is {0} bytes, more than the limit")]
    TooLarge(usize),
    /// TLV structure is broken.
    #[error("TLV: {0}")]
    Tlv(#[from] TlvError),
    /// DG1's MRZ is invalid.
    #[error("MRZ: {0}")]
    Mrz(#[from] MrzError),
    /// A required element is missing.
    #[error("missing element: {0}")]
    Missing(&'static str),
    /// A text element is not valid UTF-8 or is too long.
    #[error("invalid text in {0}")]
    Text(&'static str),
    /// A DG13 field number appears twice.
    #[error("DG13 field {0} appears twice")]
    DuplicateField(u8),
    /// A DG13 field number is not a small positive INTEGER.
    #[error("DG13 field number is invalid")]
    FieldNumber,
    /// Too many DG13 fields.
    #[error("DG13 has too many fields")]
    TooManyFields,
    /// A DG13 field holds the wrong number of values.
    #[error("DG13 field {0} has the wrong number of values")]
    FieldValues(u8),
    /// The DG13 ID number is invalid.
    #[error("DG13 ID number: {0}")]
    Id(#[from] IdError),
    /// A DG13 date is not a real date.
    #[error("DG13 field {0} is not a valid date")]
    Date(u8),
    /// The DG13 sex is neither `Nam` nor `Nữ`.
    #[error("DG13 sex must be `Nam` or `Nữ`")]
    Sex,
    /// The DG2 biometric data block is malformed.
    #[error("DG2 biometric data block: {0}")]
    Biometric(&'static str),
    /// An object identifier is malformed.
    #[error("malformed object identifier")]
    Oid,
}

impl LdsError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            LdsError::TooLarge(_) => "lds.too_large",
            LdsError::Tlv(e) => e.code(),
            LdsError::Mrz(e) => e.code(),
            LdsError::Missing(_) => "lds.missing_element",
            LdsError::Text(_) => "lds.text",
            LdsError::DuplicateField(_) => "dg13.duplicate_field",
            LdsError::FieldNumber => "dg13.field_number",
            LdsError::TooManyFields => "dg13.too_many_fields",
            LdsError::FieldValues(_) => "dg13.field_values",
            LdsError::Id(e) => id_error_code(e),
            LdsError::Date(_) => "dg13.date",
            LdsError::Sex => "dg13.sex",
            LdsError::Biometric(_) => "dg2.biometric",
            LdsError::Oid => "lds.oid",
        }
    }
}

/// The file tag of data group `n` (1–16), e.g. `0x61` for DG1.
pub fn data_group_tag(n: u8) -> Option<u8> {
    const TAGS: [u8; 16] = [
        0x61, 0x75, 0x63, 0x76, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6A, 0x6B, 0x6C, 0x6D, 0x6E, 0x6F,
        0x70,
    ];
    TAGS.get(usize::from(n).checked_sub(1)?).copied()
}

/// The data group number for a file tag, e.g. 13 for `0x6D`.
pub fn data_group_number(tag: u8) -> Option<u8> {
    (1..=16).find(|&n| data_group_tag(n) == Some(tag))
}

fn check_size(data: &[u8]) -> Result<(), LdsError> {
    if data.len() > MAX_FILE_LEN {
        Err(LdsError::TooLarge(data.len()))
    } else {
        Ok(())
    }
}

fn text(bytes: &[u8], what: &'static str) -> Result<String, LdsError> {
    if bytes.len() > MAX_DG13_VALUE {
        return Err(LdsError::Text(what));
    }
    let s = std::str::from_utf8(bytes).map_err(|_| LdsError::Text(what))?;
    Ok(s.nfc().collect())
}

// ---------------------------------------------------------------------------------------------
// EF.COM

/// EF.COM: LDS version and the list of data groups present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EfCom {
    /// LDS version, e.g. `0107` (tag 5F01).
    pub lds_version: String,
    /// Unicode version, e.g. `040000` (tag 5F36).
    pub unicode_version: String,
    /// Data group numbers listed in the tag list (tag 5C), in file order.
    pub data_groups: Vec<u8>,
}

/// Parse EF.COM (tag 0x60).
pub fn parse_ef_com(data: &[u8]) -> Result<EfCom, LdsError> {
    check_size(data)?;
    let com = read_single(data, 0x60)?;
    let mut lds_version = None;
    let mut unicode_version = None;
    let mut list = None;
    let mut r = com.children();
    while let Some(t) = r.next_tlv()? {
        match t.tag {
            0x5F01 => lds_version = Some(text(t.value, "LDS version")?),
            0x5F36 => unicode_version = Some(text(t.value, "Unicode version")?),
            0x5C => list = Some(t.value),
            _ => {}
        }
    }
    let list = list.ok_or(LdsError::Missing("EF.COM tag list (5C)"))?;
    Ok(EfCom {
        lds_version: lds_version.ok_or(LdsError::Missing("EF.COM LDS version (5F01)"))?,
        unicode_version: unicode_version.unwrap_or_default(),
        data_groups: list.iter().filter_map(|&t| data_group_number(t)).collect(),
    })
}

/// Encode EF.COM.
pub fn encode_ef_com(com: &EfCom) -> Vec<u8> {
    let mut body = tlv(0x5F01, com.lds_version.as_bytes());
    body.extend(tlv(0x5F36, com.unicode_version.as_bytes()));
    let tags: Vec<u8> = com
        .data_groups
        .iter()
        .filter_map(|&n| data_group_tag(n))
        .collect();
    body.extend(tlv(0x5C, &tags));
    tlv(0x60, &body)
}

// ---------------------------------------------------------------------------------------------
// DG1

/// Parse DG1 (tag 0x61 containing the MRZ in tag 5F1F) and verify the MRZ.
pub fn parse_dg1(data: &[u8]) -> Result<Mrz, LdsError> {
    check_size(data)?;
    let dg = read_single(data, 0x61)?;
    let mrz = dg
        .children()
        .find(0x5F1F)?
        .ok_or(LdsError::Missing("DG1 MRZ (5F1F)"))?;
    let s = std::str::from_utf8(mrz.value).map_err(|_| LdsError::Text("MRZ"))?;
    Ok(parse_td1(s)?)
}

/// Encode DG1 from the three MRZ lines (stored run together, as on the chip).
pub fn encode_dg1(lines: &[String; 3]) -> Vec<u8> {
    tlv(0x61, &tlv(0x5F1F, lines.concat().as_bytes()))
}

// ---------------------------------------------------------------------------------------------
// DG2

/// Format of a face image in DG2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    /// JPEG (ISO/IEC 10918).
    Jpeg,
    /// JPEG 2000 (file format or code stream).
    Jpeg2000,
    /// Anything else; the image data type byte.
    Other(u8),
}

/// One face from DG2: the header fields of the ISO/IEC 19794-5 facial record and the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaceImage {
    /// Biometric header template: format owner (tag 87), if present.
    pub format_owner: Option<u16>,
    /// Biometric header template: format type (tag 88), if present.
    pub format_type: Option<u16>,
    /// ISO 19794-5 version, e.g. `010`.
    pub version: String,
    /// Gender code (0 unspecified, 1 male, 2 female, 0xFF unknown).
    pub gender: u8,
    /// Eye colour code.
    pub eye_colour: u8,
    /// Hair colour code.
    pub hair_colour: u8,
    /// Expression code.
    pub expression: u16,
    /// Number of feature points.
    pub feature_points: u16,
    /// Face image type (0 basic, 1 full frontal, 2 token frontal).
    pub face_image_type: u8,
    /// Image format, from the image data type byte, confirmed by the image's magic bytes.
    pub format: ImageFormat,
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// Colour space code.
    pub colour_space: u8,
    /// Source type code.
    pub source_type: u8,
    /// Image quality.
    pub quality: u16,
    /// The encoded image.
    pub image: Vec<u8>,
}

/// Parsed DG2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dg2 {
    /// The faces (normally one).
    pub faces: Vec<FaceImage>,
}

struct Cursor<'a> {
    b: &'a [u8],
    p: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], LdsError> {
        let end = self
            .p
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or(LdsError::Biometric("truncated"))?;
        let s = &self.b[self.p..end];
        self.p = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, LdsError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, LdsError> {
        let s = self.take(2)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }
    fn u32(&mut self) -> Result<u32, LdsError> {
        let s = self.take(4)?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
}

fn be_u16(v: &[u8]) -> Option<u16> {
    match v {
        [a] => Some(u16::from(*a)),
        [a, b] => Some(u16::from_be_bytes([*a, *b])),
        _ => None,
    }
}

fn sniff(image: &[u8], declared: u8) -> ImageFormat {
    const JP2: [u8; 12] = [
        0, 0, 0, 0x0C, 0x6A, 0x50, 0x20, 0x20, 0x0D, 0x0A, 0x87, 0x0A,
    ];
    if image.starts_with(&[0xFF, 0xD8, 0xFF]) {
        ImageFormat::Jpeg
    } else if image.starts_with(&JP2) || image.starts_with(&[0xFF, 0x4F, 0xFF, 0x51]) {
        ImageFormat::Jpeg2000
    } else {
        match declared {
            0 => ImageFormat::Jpeg,
            1 => ImageFormat::Jpeg2000,
            d => ImageFormat::Other(d),
        }
    }
}

fn parse_face_block(
    bdb: &[u8],
    format_owner: Option<u16>,
    format_type: Option<u16>,
) -> Result<FaceImage, LdsError> {
    let mut c = Cursor { b: bdb, p: 0 };
    if c.take(4)? != b"FAC\0" {
        return Err(LdsError::Biometric("not an ISO 19794-5 facial record"));
    }
    let version = String::from_utf8_lossy(c.take(4)?)
        .trim_end_matches('\0')
        .to_owned();
    let _record_length = c.u32()?;
    let faces = c.u16()?;
    if faces == 0 {
        return Err(LdsError::Biometric("no face in record"));
    }
    let block_len = usize::try_from(c.u32()?).map_err(|_| LdsError::Biometric("length"))?;
    let block_start = c.p - 4;
    let feature_points = c.u16()?;
    let gender = c.u8()?;
    let eye_colour = c.u8()?;
    let hair_colour = c.u8()?;
    let _feature_mask = c.take(3)?;
    let expression = c.u16()?;
    let _pose = c.take(3)?;
    let _pose_uncertainty = c.take(3)?;
    c.take(usize::from(feature_points) * 8)?;
    let face_image_type = c.u8()?;
    let image_data_type = c.u8()?;
    let width = c.u16()?;
    let height = c.u16()?;
    let colour_space = c.u8()?;
    let source_type = c.u8()?;
    let _device_type = c.u16()?;
    let quality = c.u16()?;
    let block_end = block_start
        .checked_add(block_len)
        .filter(|&e| e <= bdb.len() && e >= c.p)
        .unwrap_or(bdb.len());
    let image = &bdb[c.p..block_end];
    if image.is_empty() {
        return Err(LdsError::Biometric("empty image"));
    }
    Ok(FaceImage {
        format_owner,
        format_type,
        version,
        gender,
        eye_colour,
        hair_colour,
        expression,
        feature_points,
        face_image_type,
        format: sniff(image, image_data_type),
        width,
        height,
        colour_space,
        source_type,
        quality,
        image: image.to_vec(),
    })
}

/// Parse DG2 (tag 0x75: biometric information group template 7F61 with one or more
/// biometric information templates 7F60, each with a header A1 and a data block 5F2E/7F2E).
/// At most 8 faces are read.
pub fn parse_dg2(data: &[u8]) -> Result<Dg2, LdsError> {
    check_size(data)?;
    let dg = read_single(data, 0x75)?;
    let group = dg
        .children()
        .find(0x7F61)?
        .ok_or(LdsError::Missing("DG2 biometric group template (7F61)"))?;
    let mut faces = Vec::new();
    let mut r = group.children();
    while let Some(t) = r.next_tlv()? {
        if t.tag != 0x7F60 {
            continue;
        }
        if faces.len() == 8 {
            break;
        }
        let mut owner = None;
        let mut ftype = None;
        let mut block = None;
        let mut br = t.children();
        while let Some(e) = br.next_tlv()? {
            match e.tag {
                0xA1 => {
                    let mut h = e.children();
                    while let Some(f) = h.next_tlv()? {
                        match f.tag {
                            0x87 => owner = be_u16(f.value),
                            0x88 => ftype = be_u16(f.value),
                            _ => {}
                        }
                    }
                }
                0x5F2E | 0x7F2E => block = Some(e.value),
                _ => {}
            }
        }
        let block = block.ok_or(LdsError::Missing("DG2 biometric data block (5F2E)"))?;
        faces.push(parse_face_block(block, owner, ftype)?);
    }
    if faces.is_empty() {
        return Err(LdsError::Missing(
            "DG2 biometric information template (7F60)",
        ));
    }
    Ok(Dg2 { faces })
}

/// Encode a DG2 holding one face with a minimal ISO 19794-5 header (for fixtures).
pub fn encode_dg2(image: &[u8], format: ImageFormat, width: u16, height: u16) -> Vec<u8> {
    let data_type = match format {
        ImageFormat::Jpeg => 0,
        ImageFormat::Jpeg2000 => 1,
        ImageFormat::Other(d) => d,
    };
    let mut face = Vec::new();
    let block_len = 20 + 12 + image.len();
    face.extend_from_slice(&(block_len as u32).to_be_bytes());
    face.extend_from_slice(&0u16.to_be_bytes()); // feature points
    face.extend_from_slice(&[0, 0, 0]); // gender, eye, hair
    face.extend_from_slice(&[0, 0, 0]); // feature mask
    face.extend_from_slice(&0u16.to_be_bytes()); // expression
    face.extend_from_slice(&[0; 6]); // pose angles and uncertainty
    face.push(1); // full frontal
    face.push(data_type);
    face.extend_from_slice(&width.to_be_bytes());
    face.extend_from_slice(&height.to_be_bytes());
    face.push(1); // colour space: 24-bit RGB
    face.push(2); // source type: digital still
    face.extend_from_slice(&0u16.to_be_bytes()); // device type
    face.extend_from_slice(&0u16.to_be_bytes()); // quality
    face.extend_from_slice(image);
    let mut bdb = b"FAC\x00010\x00".to_vec();
    bdb.extend_from_slice(&((14 + face.len()) as u32).to_be_bytes());
    bdb.extend_from_slice(&1u16.to_be_bytes());
    bdb.extend(face);

    let mut bht = tlv(0x80, &[0x01, 0x01]);
    bht.extend(tlv(0x87, &[0x01, 0x01]));
    bht.extend(tlv(0x88, &[0x00, 0x08]));
    let mut bit = tlv(0xA1, &bht);
    bit.extend(tlv(0x5F2E, &bdb));
    let mut group = tlv(0x02, &[1]);
    group.extend(tlv(0x7F60, &bit));
    tlv(0x75, &tlv(0x7F61, &group))
}

// ---------------------------------------------------------------------------------------------
// DG13

/// Card expiry as written in DG13.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Valid until this date.
    Date(NaiveDate),
    /// `Không thời hạn`: no expiry (cards issued from age 60).
    Indefinite,
}

/// Vietnam's DG13: the holder's personal data. See the module doc for the encoding.
/// Every field is optional because the chip may omit any of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dg13 {
    /// 1: personal identification number.
    pub id: Option<PersonalId>,
    /// 2: full name, NFC.
    pub full_name: Option<String>,
    /// 3: date of birth.
    pub date_of_birth: Option<NaiveDate>,
    /// 4: sex.
    pub sex: Option<Sex>,
    /// 5: nationality (quốc tịch).
    pub nationality: Option<String>,
    /// 6: ethnicity (dân tộc).
    pub ethnicity: Option<String>,
    /// 7: religion (tôn giáo).
    pub religion: Option<String>,
    /// 8: place of origin (quê quán).
    pub place_of_origin: Option<String>,
    /// 9: place of residence (nơi thường trú).
    pub place_of_residence: Option<String>,
    /// 10: identifying marks (đặc điểm nhận dạng).
    pub identifying_marks: Option<String>,
    /// 11: issue date.
    pub issue_date: Option<NaiveDate>,
    /// 12: expiry.
    pub expiry: Option<Expiry>,
    /// 13, first value: father's name.
    pub father_name: Option<String>,
    /// 13, second value: mother's name.
    pub mother_name: Option<String>,
    /// 14: spouse's name.
    pub spouse_name: Option<String>,
    /// 15: old ID number (CMND).
    pub old_id: Option<String>,
    /// 16 and any unknown field numbers, with their text values, in file order.
    pub other_fields: Vec<(u8, Vec<String>)>,
}

const NO_EXPIRY: &str = "Không thời hạn";

fn dg13_date(s: &str, field: u8) -> Result<NaiveDate, LdsError> {
    let compact: String;
    let s = if s.len() == 10 && s.as_bytes()[2] == b'/' && s.as_bytes()[5] == b'/' {
        compact = s.replace('/', "");
        compact.as_str()
    } else {
        s
    };
    parse_ddmmyyyy(s).ok_or(LdsError::Date(field))
}

fn format_dg13_date(d: NaiveDate) -> String {
    format!("{:02}/{:02}/{:04}", d.day(), d.month(), d.year())
}

fn collect_values(
    r: &mut TlvReader<'_>,
    out: &mut Vec<String>,
    nested: bool,
) -> Result<(), LdsError> {
    while let Some(v) = r.next_tlv()? {
        match v.tag {
            0x0C | 0x13 | 0x16 | 0x14 | 0x04 => {
                if out.len() >= 8 {
                    return Err(LdsError::Text("DG13 value count"));
                }
                out.push(text(v.value, "DG13 value")?);
            }
            0x30 if !nested => collect_values(&mut v.children(), out, true)?,
            _ => {}
        }
    }
    Ok(())
}

fn field_number(v: &[u8]) -> Result<u8, LdsError> {
    match v {
        [n] if *n > 0 && *n < 0x80 => Ok(*n),
        [0, n] if *n >= 0x80 => Ok(*n),
        _ => Err(LdsError::FieldNumber),
    }
}

/// Parse DG13 (tag 0x6D).
pub fn parse_dg13(data: &[u8]) -> Result<Dg13, LdsError> {
    check_size(data)?;
    let dg = read_single(data, 0x6D)?;
    // Either a wrapping SEQUENCE whose children are fields, or fields directly.
    let top = dg.children();
    let first = top.clone().next_tlv()?;
    let body = match first {
        Some(t) if t.tag == 0x30 && top.clone().skip_one_is_end() && !looks_like_field(&t) => {
            t.value
        }
        _ => dg.value,
    };
    let mut out = Dg13::default();
    let mut seen = [false; 256];
    let mut count = 0usize;
    let mut r = TlvReader::new(body);
    while let Some(f) = r.next_tlv()? {
        if f.tag != 0x30 {
            continue;
        }
        count += 1;
        if count > MAX_DG13_FIELDS {
            return Err(LdsError::TooManyFields);
        }
        let mut fr = f.children();
        let num = field_number(fr.read_tag(0x02)?.value)?;
        if seen[usize::from(num)] {
            return Err(LdsError::DuplicateField(num));
        }
        seen[usize::from(num)] = true;
        let mut values = Vec::new();
        collect_values(&mut fr, &mut values, false)?;
        let one = |values: &mut Vec<String>| -> Result<String, LdsError> {
            if values.len() == 1 {
                Ok(values.remove(0))
            } else {
                Err(LdsError::FieldValues(num))
            }
        };
        match num {
            1 => out.id = Some(PersonalId::parse(one(&mut values)?.trim())?),
            2 => out.full_name = Some(one(&mut values)?),
            3 => out.date_of_birth = Some(dg13_date(one(&mut values)?.trim(), 3)?),
            4 => {
                out.sex = Some(match one(&mut values)?.trim() {
                    "Nam" | "NAM" | "nam" => Sex::Male,
                    "Nữ" | "NỮ" | "nữ" => Sex::Female,
                    _ => return Err(LdsError::Sex),
                })
            }
            5 => out.nationality = Some(one(&mut values)?),
            6 => out.ethnicity = Some(one(&mut values)?),
            7 => out.religion = Some(one(&mut values)?),
            8 => out.place_of_origin = Some(one(&mut values)?),
            9 => out.place_of_residence = Some(one(&mut values)?),
            10 => out.identifying_marks = Some(one(&mut values)?),
            11 => out.issue_date = Some(dg13_date(one(&mut values)?.trim(), 11)?),
            12 => {
                let v = one(&mut values)?;
                let v = v.trim();
                out.expiry = Some(if v.to_lowercase() == NO_EXPIRY.to_lowercase() {
                    Expiry::Indefinite
                } else {
                    Expiry::Date(dg13_date(v, 12)?)
                });
            }
            13 => {
                if values.len() > 2 {
                    return Err(LdsError::FieldValues(13));
                }
                let mut it = values
                    .into_iter()
                    .map(|v| Some(v).filter(|v| !v.is_empty()));
                out.father_name = it.next().flatten();
                out.mother_name = it.next().flatten();
            }
            14 => out.spouse_name = Some(one(&mut values)?),
            15 => out.old_id = Some(one(&mut values)?),
            n => out.other_fields.push((n, values)),
        }
    }
    Ok(out)
}

/// A SEQUENCE that starts with a small INTEGER and then text is a field, not a wrapper.
fn looks_like_field(t: &crate::tlv::Tlv<'_>) -> bool {
    let mut c = t.children();
    matches!(c.next_tlv(), Ok(Some(n)) if n.tag == 0x02)
        && matches!(c.next_tlv(), Ok(Some(v)) if matches!(v.tag, 0x0C | 0x13 | 0x16 | 0x14 | 0x04))
}

impl TlvReader<'_> {
    fn skip_one_is_end(mut self) -> bool {
        matches!(self.next_tlv(), Ok(Some(_))) && self.is_empty()
    }
}

/// Encode DG13 in the form described in the module doc.
pub fn encode_dg13(d: &Dg13) -> Vec<u8> {
    let mut body = tlv(0x02, &[1]);
    let mut field = |n: u8, values: &[&str]| {
        let mut f = if n < 0x80 {
            tlv(0x02, &[n])
        } else {
            tlv(0x02, &[0, n])
        };
        for v in values {
            f.extend(tlv(0x0C, v.as_bytes()));
        }
        body.extend(tlv(0x30, &f));
    };
    let date = |d: &Option<NaiveDate>| d.map(format_dg13_date);
    if let Some(id) = &d.id {
        field(1, &[id.as_str()]);
    }
    let texts: [(u8, Option<String>); 8] = [
        (2, d.full_name.clone()),
        (3, date(&d.date_of_birth)),
        (4, d.sex.map(|s| s.vi().to_owned())),
        (5, d.nationality.clone()),
        (6, d.ethnicity.clone()),
        (7, d.religion.clone()),
        (8, d.place_of_origin.clone()),
        (9, d.place_of_residence.clone()),
    ];
    for (n, v) in &texts {
        if let Some(v) = v {
            field(*n, &[v]);
        }
    }
    if let Some(v) = &d.identifying_marks {
        field(10, &[v]);
    }
    if let Some(v) = date(&d.issue_date) {
        field(11, &[&v]);
    }
    match d.expiry {
        Some(Expiry::Date(e)) => field(12, &[&format_dg13_date(e)]),
        Some(Expiry::Indefinite) => field(12, &[NO_EXPIRY]),
        None => {}
    }
    if d.father_name.is_some() || d.mother_name.is_some() {
        field(
            13,
            &[
                d.father_name.as_deref().unwrap_or(""),
                d.mother_name.as_deref().unwrap_or(""),
            ],
        );
    }
    if let Some(v) = &d.spouse_name {
        field(14, &[v]);
    }
    if let Some(v) = &d.old_id {
        field(15, &[v]);
    }
    for (n, vs) in &d.other_fields {
        let vs: Vec<&str> = vs.iter().map(String::as_str).collect();
        field(*n, &vs);
    }
    tlv(0x6D, &tlv(0x30, &body))
}

// ---------------------------------------------------------------------------------------------
// DG14 / DG15

/// A public key as found in DG14 or DG15: its algorithm and the raw key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKeyInfo {
    /// Algorithm OID, dotted (e.g. `1.2.840.10045.2.1` for EC, `1.2.840.113549.1.1.1` RSA).
    pub algorithm: String,
    /// Named-curve OID when the parameters are one, dotted.
    pub named_curve: Option<String>,
    /// The subjectPublicKey bit string's bytes.
    pub key: Vec<u8>,
    /// The whole SubjectPublicKeyInfo.
    pub raw: Vec<u8>,
}

fn oid_string(v: &[u8]) -> Result<String, LdsError> {
    ObjectIdentifier::from_bytes(v)
        .map(|o| o.to_string())
        .map_err(|_| LdsError::Oid)
}

fn parse_spki(raw: &[u8]) -> Result<PublicKeyInfo, LdsError> {
    let spki = read_single(raw, 0x30)?;
    let mut r = spki.children();
    let alg = r.read_tag(0x30)?;
    let mut ar = alg.children();
    let algorithm = oid_string(ar.read_tag(0x06)?.value)?;
    let named_curve = match ar.next_tlv()? {
        Some(p) if p.tag == 0x06 => Some(oid_string(p.value)?),
        _ => None,
    };
    let bits = r.read_tag(0x03)?;
    let key = bits
        .value
        .get(1..)
        .ok_or(LdsError::Missing("public key bits"))?;
    Ok(PublicKeyInfo {
        algorithm,
        named_curve,
        key: key.to_vec(),
        raw: raw.to_vec(),
    })
}

/// One SecurityInfo of DG14.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityInfo {
    /// Protocol OID, dotted (e.g. `0.4.0.127.0.7.2.2.1.2` chip authentication ECDH key).
    pub protocol: String,
    /// The public key, for ChipAuthenticationPublicKeyInfo (`0.4.0.127.0.7.2.2.1.*`).
    pub public_key: Option<PublicKeyInfo>,
    /// The whole SecurityInfo.
    pub raw: Vec<u8>,
}

/// Parsed DG14.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dg14 {
    /// The security infos, in file order (at most 32).
    pub infos: Vec<SecurityInfo>,
    /// The whole file.
    pub raw: Vec<u8>,
}

/// Parse DG14 (tag 0x6E containing a SET OF SecurityInfo).
pub fn parse_dg14(data: &[u8]) -> Result<Dg14, LdsError> {
    check_size(data)?;
    let dg = read_single(data, 0x6E)?;
    let set = dg.children().read_tag(0x31)?;
    let mut infos = Vec::new();
    let mut r = set.children();
    while let Some(si) = r.next_tlv()? {
        if infos.len() >= 32 {
            break;
        }
        let si = si.expect(0x30)?;
        let mut c = si.children();
        let oid = c.read_tag(0x06)?;
        let protocol = oid_string(oid.value)?;
        let public_key = if protocol.starts_with("0.4.0.127.0.7.2.2.1.") {
            let pk = c.read()?;
            Some(parse_spki(pk.raw)?)
        } else {
            None
        };
        infos.push(SecurityInfo {
            protocol,
            public_key,
            raw: si.raw.to_vec(),
        });
    }
    Ok(Dg14 {
        infos,
        raw: data.to_vec(),
    })
}

/// Parse DG15 (tag 0x6F containing the active authentication SubjectPublicKeyInfo).
pub fn parse_dg15(data: &[u8]) -> Result<PublicKeyInfo, LdsError> {
    check_size(data)?;
    let dg = read_single(data, 0x6F)?;
    let spki = dg.children().read_tag(0x30)?;
    parse_spki(spki.raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample_dg13() -> Dg13 {
        Dg13 {
            id: Some(PersonalId::parse("001099012345").unwrap()),
            full_name: Some("Nguyễn Văn A".into()),
            date_of_birth: NaiveDate::from_ymd_opt(1999, 1, 1),
            sex: Some(Sex::Male),
            nationality: Some("Việt Nam".into()),
            ethnicity: Some("Kinh".into()),
            religion: Some("Không".into()),
            place_of_origin: Some("Hoàn Kiếm, Hà Nội".into()),
            place_of_residence: Some("Số 1 Tràng Tiền, Hoàn Kiếm, Hà Nội".into()),
            identifying_marks: Some("Nốt ruồi C:2cm trên trước mép trái".into()),
            issue_date: NaiveDate::from_ymd_opt(2021, 6, 15),
            expiry: Some(Expiry::Date(NaiveDate::from_ymd_opt(2039, 1, 1).unwrap())),
            father_name: Some("Nguyễn Văn B".into()),
            mother_name: Some("Trần Thị C".into()),
            spouse_name: None,
            old_id: Some("012345678".into()),
            other_fields: vec![(16, vec!["x".into()])],
        }
    }

    #[test]
    fn dg13_round_trip() {
        let d = sample_dg13();
        assert_eq!(parse_dg13(&encode_dg13(&d)).unwrap(), d);
        let empty = Dg13::default();
        assert_eq!(parse_dg13(&encode_dg13(&empty)).unwrap(), empty);
    }

    #[test]
    fn dg13_fields_directly_and_out_of_order() {
        let f = |n: u8, v: &str| tlv(0x30, &[tlv(0x02, &[n]), tlv(0x13, v.as_bytes())].concat());
        let body = [f(12, "Không thời hạn"), f(4, "Nữ"), f(1, "079305000001")].concat();
        let d = parse_dg13(&tlv(0x6D, &body)).unwrap();
        assert_eq!(d.expiry, Some(Expiry::Indefinite));
        assert_eq!(d.sex, Some(Sex::Female));
        assert_eq!(d.id.unwrap().as_str(), "079305000001");
        assert_eq!(d.full_name, None);
    }

    #[test]
    fn dg13_errors() {
        let f = |n: u8, v: &str| tlv(0x30, &[tlv(0x02, &[n]), tlv(0x0C, v.as_bytes())].concat());
        let wrap = |fields: Vec<Vec<u8>>| {
            tlv(
                0x6D,
                &tlv(0x30, &[tlv(0x02, &[1]), fields.concat()].concat()),
            )
        };
        let code = |b: Vec<u8>| parse_dg13(&b).unwrap_err().code();
        assert_eq!(
            code(wrap(vec![f(2, "A"), f(2, "B")])),
            "dg13.duplicate_field"
        );
        assert_eq!(code(wrap(vec![f(3, "31/02/2000")])), "dg13.date");
        assert_eq!(code(wrap(vec![f(4, "X")])), "dg13.sex");
        assert_eq!(
            code(wrap(vec![f(1, "003099012345")])),
            "id.unknown_province"
        );
        assert_eq!(code(wrap(vec![f(0, "A")])), "dg13.field_number");
        assert_eq!(code(tlv(0x6C, &[])), "tlv.unexpected_tag");
    }

    #[test]
    fn com_and_dg1_and_dg2() {
        let com = EfCom {
            lds_version: "0107".into(),
            unicode_version: "040000".into(),
            data_groups: vec![1, 2, 13, 14, 15],
        };
        assert_eq!(parse_ef_com(&encode_ef_com(&com)).unwrap(), com);

        let input = crate::mrz::MrzInput {
            id: PersonalId::parse("001099012345").unwrap(),
            family_name: "Nguyễn".into(),
            given_names: "Văn A".into(),
            date_of_birth: NaiveDate::from_ymd_opt(1999, 1, 1).unwrap(),
            sex: Sex::Male,
            expiry: NaiveDate::from_ymd_opt(2039, 1, 1).unwrap(),
        };
        let lines = crate::mrz::build_td1(&input).unwrap();
        let m = parse_dg1(&encode_dg1(&lines)).unwrap();
        assert_eq!(m.id, input.id);

        let jpeg = [0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3, 0xFF, 0xD9];
        let dg2 = parse_dg2(&encode_dg2(&jpeg, ImageFormat::Jpeg, 480, 640)).unwrap();
        let f = &dg2.faces[0];
        assert_eq!((f.format, f.width, f.height), (ImageFormat::Jpeg, 480, 640));
        assert_eq!(f.image, jpeg);
        assert_eq!(f.version, "010");
        assert_eq!(
            (f.format_owner, f.format_type),
            (Some(0x0101), Some(0x0008))
        );
        let j2k = [
            0, 0, 0, 0x0C, 0x6A, 0x50, 0x20, 0x20, 0x0D, 0x0A, 0x87, 0x0A, 9,
        ];
        let dg2 = parse_dg2(&encode_dg2(&j2k, ImageFormat::Jpeg2000, 10, 20)).unwrap();
        assert_eq!(dg2.faces[0].format, ImageFormat::Jpeg2000);
    }

    #[test]
    fn dg15_and_dg14() {
        // SPKI for an EC P-256 key with a dummy point.
        let alg = tlv(
            0x30,
            &[
                tlv(0x06, &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01]),
                tlv(0x06, &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07]),
            ]
            .concat(),
        );
        let spki = tlv(0x30, &[alg, tlv(0x03, &[0, 4, 1, 2])].concat());
        let k = parse_dg15(&tlv(0x6F, &spki)).unwrap();
        assert_eq!(k.algorithm, "1.2.840.10045.2.1");
        assert_eq!(k.named_curve.as_deref(), Some("1.2.840.10045.3.1.7"));
        assert_eq!(k.key, [4, 1, 2]);
        // ChipAuthenticationPublicKeyInfo 0.4.0.127.0.7.2.2.1.2
        let ca_oid = tlv(
            0x06,
            &[0x04, 0x00, 0x7F, 0x00, 0x07, 0x02, 0x02, 0x01, 0x02],
        );
        let si = tlv(0x30, &[ca_oid, spki.clone()].concat());
        let dg14 = parse_dg14(&tlv(0x6E, &tlv(0x31, &si))).unwrap();
        assert_eq!(dg14.infos[0].protocol, "0.4.0.127.0.7.2.2.1.2");
        assert_eq!(
            dg14.infos[0].public_key.as_ref().unwrap().algorithm,
            "1.2.840.10045.2.1"
        );
    }

    proptest! {
        #[test]
        fn dg13_text_round_trip(name in "\\PC{0,40}", marks in "\\PC{0,40}", n in 16u8..=255) {
            let d = Dg13 {
                full_name: Some(name.nfc().collect()),
                identifying_marks: Some(marks.nfc().collect()),
                other_fields: vec![(n, vec!["v".into()])],
                ..Dg13::default()
            };
            prop_assert_eq!(parse_dg13(&encode_dg13(&d)).unwrap(), d);
        }

        #[test]
        fn parsers_never_panic(data in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse_ef_com(&data);
            let _ = parse_dg1(&data);
            let _ = parse_dg2(&data);
            let _ = parse_dg13(&data);
            let _ = parse_dg14(&data);
            let _ = parse_dg15(&data);
        }

        #[test]
        fn dg13_with_prefix_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_dg13(&tlv(0x6D, &tlv(0x30, &data)));
            let _ = parse_dg13(&tlv(0x6D, &data));
        }
    }
}
