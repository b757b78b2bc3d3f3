//! Personal names (họ, tên đệm, tên) and the keys they are matched by.
//!
//! Names are stored NFC exactly as written. Matching uses keys: [`tone_key`] keeps diacritics but
//! puts tone marks in one canonical place (hòa/hoà, thủy/thuỷ), and [`match_key`] also drops every
//! diacritic, with the explicit Đ/đ → D/d that Unicode decomposition does not give. MRZ and some
//! QR sources carry upper-case names without diacritics; they meet register names at
//! [`match_key`].

use crate::Problem;
use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

/// Longest full name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// Why a text is not an acceptable personal name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty after trimming.
    #[error("the name is empty")]
    Empty,
    /// Longer than [`MAX_NAME_CHARS`].
    #[error("the name has {0} characters, more than the {MAX_NAME_CHARS} allowed")]
    TooLong(usize),
    /// A character that cannot be part of a name (digit, symbol, control).
    #[error("the name contains {0:?}, which cannot be part of a name")]
    BadCharacter(char),
}

impl Problem for NameError {
    fn code(&self) -> &'static str {
        match self {
            Self::Empty => "name_empty",
            Self::TooLong(_) => "name_too_long",
            Self::BadCharacter(_) => "name_bad_character",
        }
    }
    fn message_vi(&self) -> String {
        match self {
            Self::Empty => "Họ tên không được để trống".to_owned(),
            Self::TooLong(n) => format!("Họ tên có {n} ký tự, quá {MAX_NAME_CHARS} ký tự cho phép"),
            Self::BadCharacter(c) => format!("Họ tên chứa ký tự {c:?} không hợp lệ"),
        }
    }
}

/// A person's name in Vietnamese order: family name, middle name(s), given name.
///
/// People are addressed by the given name; the family name comes first when written.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "NameParts")]
pub struct PersonName {
    /// Family name (họ), e.g. "Nguyễn". Empty for the rare one-word names.
    pub family: String,
    /// Middle name(s) (tên đệm), possibly empty, e.g. "Thị Minh".
    pub middle: String,
    /// Given name (tên), e.g. "Anh".
    pub given: String,
}

/// A name as it may arrive: its parts, or one full name to split.
enum NameParts {
    Parts {
        family: String,
        middle: String,
        given: String,
    },
    Full(String),
}

/// The fields of [`NameParts::Parts`]; any other is ignored.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum NameField {
    Family,
    Middle,
    Given,
    #[serde(other)]
    Other,
}

// By hand rather than `#[serde(untagged)]`: an untagged enum first copies the whole value into
// an intermediate tree and then tries each variant on it, and every stored record read back
// goes through here.
impl<'de> Deserialize<'de> for NameParts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{Error, MapAccess, Visitor};
        struct Parts;
        impl<'de> Visitor<'de> for Parts {
            type Value = NameParts;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a full name, or an object with family, middle and given")
            }
            fn visit_str<E: Error>(self, s: &str) -> Result<NameParts, E> {
                Ok(NameParts::Full(s.to_owned()))
            }
            fn visit_string<E: Error>(self, s: String) -> Result<NameParts, E> {
                Ok(NameParts::Full(s))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NameParts, A::Error> {
                let (mut family, mut middle, mut given) = (None, None, None);
                while let Some(field) = map.next_key::<NameField>()? {
                    let (slot, name) = match field {
                        NameField::Family => (&mut family, "family"),
                        NameField::Middle => (&mut middle, "middle"),
                        NameField::Given => (&mut given, "given"),
                        NameField::Other => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                            continue;
                        }
                    };
                    if slot.is_some() {
                        return Err(A::Error::duplicate_field(name));
                    }
                    *slot = Some(map.next_value::<String>()?);
                }
                Ok(NameParts::Parts {
                    family: family.ok_or_else(|| A::Error::missing_field("family"))?,
                    middle: middle.unwrap_or_default(),
                    given: given.ok_or_else(|| A::Error::missing_field("given"))?,
                })
            }
        }
        d.deserialize_any(Parts)
    }
}

impl TryFrom<NameParts> for PersonName {
    type Error = NameError;
    fn try_from(p: NameParts) -> Result<Self, NameError> {
        match p {
            NameParts::Full(s) => PersonName::parse(&s),
            NameParts::Parts {
                family,
                middle,
                given,
            } => PersonName::from_parts(&family, &middle, &given),
        }
    }
}

/// NFC, trimmed, every run of whitespace (including newlines and tabs) collapsed to one space.
/// Text already in that form (every stored name and address, read back) is copied as it is.
pub(crate) fn clean_text(s: &str) -> String {
    let tidy = !s.starts_with(' ')
        && !s.ends_with(' ')
        && !s.contains("  ")
        && !s.chars().any(|c| c.is_whitespace() && c != ' ');
    if tidy && unicode_normalization::is_nfc(s) {
        return s.to_owned();
    }
    let nfc: String = s.nfc().collect();
    nfc.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn check_chars(s: &str) -> Result<(), NameError> {
    for c in s.chars() {
        if !(c.is_alphabetic() || c == ' ' || c == '\'' || c == '-' || is_combining(c)) {
            return Err(NameError::BadCharacter(c));
        }
    }
    Ok(())
}

impl PersonName {
    /// Splits a full name: first word family name, last word given name, the rest middle.
    pub fn parse(full: &str) -> Result<Self, NameError> {
        let full = clean_text(full);
        check_chars(&full)?;
        let words: Vec<&str> = full.split(' ').filter(|w| !w.is_empty()).collect();
        let name = match words.as_slice() {
            [] => return Err(NameError::Empty),
            [only] => Self {
                family: String::new(),
                middle: String::new(),
                given: (*only).to_owned(),
            },
            [family, middle @ .., given] => Self {
                family: (*family).to_owned(),
                middle: middle.join(" "),
                given: (*given).to_owned(),
            },
        };
        name.check_length()?;
        Ok(name)
    }

    /// Builds a name from its parts, normalising each to NFC and single spaces.
    pub fn from_parts(family: &str, middle: &str, given: &str) -> Result<Self, NameError> {
        let name = Self {
            family: clean_text(family),
            middle: clean_text(middle),
            given: clean_text(given),
        };
        if name.given.is_empty() {
            return Err(NameError::Empty);
        }
        let full = name.full();
        check_chars(&full)?;
        let n = full.chars().count();
        if n > MAX_NAME_CHARS {
            return Err(NameError::TooLong(n));
        }
        Ok(name)
    }

    fn check_length(&self) -> Result<(), NameError> {
        let n = self.full().chars().count();
        if n > MAX_NAME_CHARS {
            Err(NameError::TooLong(n))
        } else {
            Ok(())
        }
    }

    /// The full name as written: "Nguyễn Thị Minh Anh".
    pub fn full(&self) -> String {
        [
            self.family.as_str(),
            self.middle.as_str(),
            self.given.as_str(),
        ]
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ")
    }

    /// The accent-insensitive key of the full name: see [`match_key`].
    pub fn match_key(&self) -> String {
        match_key(&self.full())
    }
}

impl std::fmt::Display for PersonName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.full())
    }
}

const TONE_MARKS: [char; 5] = ['\u{0300}', '\u{0301}', '\u{0303}', '\u{0309}', '\u{0323}'];

fn is_combining(c: char) -> bool {
    ('\u{0300}'..='\u{036F}').contains(&c)
}

/// Puts the tone mark of one lower-case word (NFD) in the canonical place.
///
/// The two spelling conventions differ only for the open syllables ending in `oa`, `oe` and
/// `uy` (hòa/hoà, khỏe/khoẻ, thủy/thuỷ); the canonical place chosen here is the first vowel of the
/// pair, as most civil-status documents write names. `qu` + `y` is left alone: there the `u`
/// belongs to the consonant and the mark always sits on `y` (quý).
fn canonical_tone(word: &str, out: &mut String) {
    // Base letters with their non-tone marks, and the tone (if any) with the index it sat on.
    let mut letters: Vec<(char, String)> = Vec::new();
    let mut tone: Option<(char, usize)> = None;
    for c in word.nfd() {
        if TONE_MARKS.contains(&c) && !letters.is_empty() {
            tone = Some((c, letters.len() - 1));
        } else if is_combining(c) {
            if let Some(last) = letters.last_mut() {
                last.1.push(c);
            }
        } else {
            letters.push((c, String::new()));
        }
    }
    if let Some((mark, at)) = tone {
        let n = letters.len();
        let plain = |i: usize| letters[i].0;
        let tail_pair = n >= 2 && letters[n - 1].1.is_empty() && letters[n - 2].1.is_empty();
        let pair = if tail_pair {
            Some((plain(n - 2), plain(n - 1)))
        } else {
            None
        };
        let qu = n >= 3 && plain(n - 3) == 'q';
        let moves = matches!(pair, Some(('o', 'a')) | Some(('o', 'e')))
            || (matches!(pair, Some(('u', 'y'))) && !qu);
        let at = if moves && at == n - 1 { n - 2 } else { at };
        for (i, (base, marks)) in letters.iter().enumerate() {
            out.push(*base);
            // Canonical order: the dot below (class 220) before the others (class 230).
            if i == at && mark == '\u{0323}' {
                out.push(mark);
                out.push_str(marks);
            } else {
                out.push_str(marks);
                if i == at {
                    out.push(mark);
                }
            }
        }
    } else {
        for (base, marks) in letters {
            out.push(base);
            out.push_str(&marks);
        }
    }
}

/// NFC, lower case, single spaces, tone marks in canonical places; diacritics kept.
///
/// `tone_key("Hoà") == tone_key("hòa")`, but `tone_key("Hòa") != tone_key("Hoa")`.
pub fn tone_key(s: &str) -> String {
    let mut nfd = String::with_capacity(s.len() + 8);
    for (i, word) in s.split_whitespace().enumerate() {
        if i > 0 {
            nfd.push(' ');
        }
        canonical_tone(&word.to_lowercase(), &mut nfd);
    }
    nfd.nfc().collect()
}

/// The accent-insensitive key: lower case, every diacritic dropped, đ → d, single spaces, and
/// anything that is not a letter, digit or space removed.
///
/// `match_key("Đặng Thị Thủy") == match_key("DANG THI THUY") == "dang thi thuy"`.
pub fn match_key(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pending_space = false;
    for c in s.nfd() {
        if is_combining(c) {
            continue;
        }
        if c.is_whitespace() || c == '<' {
            pending_space = !out.is_empty();
            continue;
        }
        let c = match c {
            'Đ' | 'đ' | 'Ð' => 'd',
            _ => c,
        };
        if !c.is_alphanumeric() {
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        for l in c.to_lowercase() {
            out.push(l);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_name_is_read_from_its_parts_or_from_one_string() {
        let from = |j: &str| serde_json::from_str::<PersonName>(j);
        let want = PersonName::from_parts("Nguyễn", "Thị Minh", "Anh").unwrap();
        assert_eq!(from(r#""Nguyễn Thị Minh Anh""#).unwrap(), want);
        assert_eq!(
            from(r#"{"given":"Anh","family":"Nguyễn","middle":"Thị  Minh","x":[1]}"#).unwrap(),
            want
        );
        assert_eq!(from(r#"{"family":"Lê","given":"Na"}"#).unwrap().middle, "");
        for bad in [
            r#"{"family":"Lê"}"#,
            r#"{"given":"Na"}"#,
            r#"{"family":"Lê","given":"Na","given":"Nu"}"#,
            r#"{"family":"Lê","given":""}"#,
            r#"{"family":"Lê","given":"N4"}"#,
            "42",
            "[]",
        ] {
            assert!(from(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parts_in_vietnamese_order() {
        let n = PersonName::parse("  Nguyễn   Thị Minh  Anh ").unwrap();
        assert_eq!(
            (n.family.as_str(), n.middle.as_str(), n.given.as_str()),
            ("Nguyễn", "Thị Minh", "Anh")
        );
        assert_eq!(n.full(), "Nguyễn Thị Minh Anh");
        let n = PersonName::parse("Lê Lợi").unwrap();
        assert_eq!(
            (n.family.as_str(), n.middle.as_str(), n.given.as_str()),
            ("Lê", "", "Lợi")
        );
        assert_eq!(PersonName::parse("  ").unwrap_err().code(), "name_empty");
        assert_eq!(
            PersonName::parse("Nguyễn Văn 2").unwrap_err().code(),
            "name_bad_character"
        );
        assert_eq!(
            PersonName::parse(&"a ".repeat(60)).unwrap_err().code(),
            "name_too_long"
        );
        assert!(PersonName::parse("Y Bhin Niê").is_ok());
        assert!(PersonName::parse("H'Hen Niê").is_ok());
    }

    #[test]
    fn stores_nfc_whatever_comes_in() {
        let decomposed: String = "Trần Thị Thủy".nfd().collect();
        let n = PersonName::parse(&decomposed).unwrap();
        assert_eq!(n.full(), "Trần Thị Thủy");
        let json: PersonName = serde_json::from_str(r#""Phạm Văn Đồng""#).unwrap();
        assert_eq!(json.given, "Đồng");
        let parts: PersonName =
            serde_json::from_str(r#"{"family":"Phạm","given":"Đồng"}"#).unwrap();
        assert_eq!(parts.full(), "Phạm Đồng");
    }

    #[test]
    fn tone_placement_is_normalised() {
        assert_eq!(tone_key("Hoà"), tone_key("hòa"));
        assert_eq!(tone_key("Thuỷ"), tone_key("THỦY"));
        assert_eq!(tone_key("khoẻ"), tone_key("khỏe"));
        assert_eq!(tone_key("Hòa"), "hòa");
        assert_eq!(tone_key("quý"), "quý");
        assert_eq!(tone_key("Hoàng"), "hoàng");
        assert_eq!(tone_key("hoạ"), tone_key("họa"));
        assert_ne!(tone_key("Hòa"), tone_key("Hoa"));
        assert_ne!(tone_key("Hòa"), tone_key("Hóa"));
    }

    #[test]
    fn match_key_strips_everything_including_d_bar() {
        assert_eq!(match_key("Đặng Thị Thủy"), "dang thi thuy");
        assert_eq!(match_key("DANG<<THI<THUY"), "dang thi thuy");
        assert_eq!(match_key("Nguyễn Văn Hoà"), match_key("nguyen van hòa"));
        assert_eq!(match_key("Ưng Hoàng Phúc"), "ung hoang phuc");
        assert_eq!(match_key("Ea H'Leo"), "ea hleo");
    }

    proptest! {
        #[test]
        fn keys_are_idempotent_and_case_blind(s in "[a-zA-ZàáảãạăằắẳẵặâầấẩẫậđèéẻẽẹêềếểễệìíỉĩịòóỏõọôồốổỗộơờớởỡợùúủũụưừứửữựỳýỷỹỵĐ ]{0,40}") {
            let k = match_key(&s);
            prop_assert_eq!(match_key(&k), k.clone());
            prop_assert_eq!(match_key(&s.to_uppercase()), k.clone());
            prop_assert!(k.is_ascii());
            let t = tone_key(&s);
            prop_assert_eq!(tone_key(&t), t.clone());
            prop_assert_eq!(match_key(&t), k);
        }
    }
}
