//! An address (địa chỉ) pinned to a commune of one scheme from a given date.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{AdminUnits, Commune, CurrentView, Scheme};
use crate::Problem;

/// Longest allowed [`Address::detail`], in Unicode scalar values after normalisation.
pub const MAX_DETAIL_CHARS: usize = 200;

/// A place of residence: a commune (xã / phường / thị trấn / đặc khu) of one scheme, the detail
/// below it (số nhà, đường phố, thôn / ấp / tổ dân phố) and the date it applies from.
///
/// The scheme is kept with the code, never inferred: an address that took effect before
/// 1 July 2025 stays in the legacy scheme forever, and [`Address::in_current_scheme`] shows it in
/// today's terms when needed. Build it with [`Address::new`]; deserialising runs the same checks
/// and the same normalisation. The fields are public for reading; code that changes them should
/// call [`Address::validate`]. [`AddressError`] is a [`Problem`], for bilingual error responses.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "AddressFields")]
pub struct Address {
    /// Scheme of `commune_code`; must be the scheme in force on `effective_from`.
    pub scheme: Scheme,
    /// GSO code of the commune in `scheme`, five digits.
    #[schema(pattern = "^[0-9]{5}$", example = "00004")]
    pub commune_code: String,
    /// Street, house number, hamlet or residential group below the commune (NFC, single
    /// spaces, at most 200 characters; may be empty).
    #[schema(max_length = 200, example = "Số 12 phố Phan Đình Phùng")]
    pub detail: String,
    /// First day the address applies (ngày có hiệu lực).
    pub effective_from: NaiveDate,
}

/// The unchecked wire form of an [`Address`].
#[derive(Deserialize)]
struct AddressFields {
    scheme: Scheme,
    commune_code: String,
    detail: String,
    effective_from: NaiveDate,
}

impl TryFrom<AddressFields> for Address {
    type Error = AddressError;

    fn try_from(fields: AddressFields) -> Result<Self, Self::Error> {
        Address::new(
            fields.scheme,
            &fields.commune_code,
            &fields.detail,
            fields.effective_from,
        )
    }
}

/// Why an [`Address`] was refused. Each variant names the rule that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// The commune code is not exactly five ASCII digits.
    #[error("commune code {code:?} is not five digits")]
    MalformedCommuneCode {
        /// The code as given.
        code: String,
    },
    /// The scheme is not the one in force on the effective date.
    #[error(
        "an address effective from {effective_from} must use the {expected} scheme, not {scheme}"
    )]
    SchemeDateMismatch {
        /// The scheme given.
        scheme: Scheme,
        /// The scheme in force on `effective_from`.
        expected: Scheme,
        /// The effective date given.
        effective_from: NaiveDate,
    },
    /// No commune has this code in this scheme (including codes retired before 30 June 2025).
    #[error("there is no commune {code} in the {scheme} scheme")]
    UnknownCommune {
        /// The scheme searched.
        scheme: Scheme,
        /// The code as given.
        code: String,
    },
    /// The detail is longer than [`MAX_DETAIL_CHARS`].
    #[error("address detail has {length} characters; at most {max} are allowed")]
    DetailTooLong {
        /// Length after normalisation, in Unicode scalar values.
        length: usize,
        /// The limit.
        max: usize,
    },
    /// The detail contains a control character other than whitespace.
    #[error("address detail contains a control character")]
    DetailControlCharacter,
}

impl AddressError {
    /// A stable machine-readable code for this rule, e.g. for problem+json responses.
    pub const fn code(&self) -> &'static str {
        match self {
            Self::MalformedCommuneCode { .. } => "address_commune_code_malformed",
            Self::SchemeDateMismatch { .. } => "address_scheme_date_mismatch",
            Self::UnknownCommune { .. } => "address_commune_unknown",
            Self::DetailTooLong { .. } => "address_detail_too_long",
            Self::DetailControlCharacter => "address_detail_control_character",
        }
    }
}

impl Problem for AddressError {
    fn code(&self) -> &'static str {
        AddressError::code(self)
    }

    fn message_vi(&self) -> String {
        match self {
            Self::MalformedCommuneCode { code } => {
                format!("Mã đơn vị hành chính cấp xã {code:?} không phải là 5 chữ số")
            }
            Self::SchemeDateMismatch {
                expected,
                effective_from,
                ..
            } => format!(
                "Địa chỉ có hiệu lực từ {} phải dùng {}",
                effective_from.format("%d/%m/%Y"),
                match expected {
                    Scheme::Legacy => "danh mục đơn vị hành chính trước ngày 01/07/2025",
                    Scheme::Y2025 => "danh mục đơn vị hành chính từ ngày 01/07/2025",
                }
            ),
            Self::UnknownCommune { code, .. } => {
                format!("Không có đơn vị hành chính cấp xã mã {code} trong danh mục")
            }
            Self::DetailTooLong { length, max } => {
                format!("Địa chỉ chi tiết dài {length} ký tự, tối đa {max} ký tự")
            }
            Self::DetailControlCharacter => "Địa chỉ chi tiết chứa ký tự điều khiển".to_owned(),
        }
    }
}

impl Address {
    /// Checks and builds an address, normalising `detail`.
    ///
    /// Rules, in the order they are checked: the code is five digits; `scheme` is the scheme in
    /// force on `effective_from` (legacy before 1 July 2025, 2025 from then on); the commune
    /// exists in `scheme`; `detail`, once NFC-normalised, trimmed and with whitespace runs
    /// (including newlines and tabs) collapsed to one space, has at most 200 characters and no
    /// control characters.
    pub fn new(
        scheme: Scheme,
        commune_code: &str,
        detail: &str,
        effective_from: NaiveDate,
    ) -> Result<Address, AddressError> {
        let address = Address {
            scheme,
            commune_code: commune_code.to_owned(),
            detail: normalise_detail(detail),
            effective_from,
        };
        address.validate()?;
        Ok(address)
    }

    /// Checks the rules of [`Address::new`] on the fields as they are (without normalising
    /// `detail`), e.g. after a field was changed.
    pub fn validate(&self) -> Result<(), AddressError> {
        let code = self.commune_code.as_str();
        if code.len() != 5 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AddressError::MalformedCommuneCode {
                code: code.to_owned(),
            });
        }
        let expected = Scheme::for_date(self.effective_from);
        if self.scheme != expected {
            return Err(AddressError::SchemeDateMismatch {
                scheme: self.scheme,
                expected,
                effective_from: self.effective_from,
            });
        }
        if AdminUnits::get().commune(self.scheme, code).is_none() {
            return Err(AddressError::UnknownCommune {
                scheme: self.scheme,
                code: code.to_owned(),
            });
        }
        let length = self.detail.chars().count();
        if length > MAX_DETAIL_CHARS {
            return Err(AddressError::DetailTooLong {
                length,
                max: MAX_DETAIL_CHARS,
            });
        }
        if self.detail.chars().any(char::is_control) {
            return Err(AddressError::DetailControlCharacter);
        }
        Ok(())
    }

    /// The commune, in [`Address::scheme`]. `None` only for an address whose fields were set
    /// without [`Address::new`] to a code the scheme does not have.
    pub fn commune(&self) -> Option<&'static Commune> {
        AdminUnits::get().commune(self.scheme, &self.commune_code)
    }

    /// The address in today's (2025) scheme: the province, and the commune when it is
    /// determined. A legacy commune that was split across several new communes gives
    /// [`CurrentView::Ambiguous`] with every candidate; choosing among them needs the detail
    /// and a human (or a street-level table), never a guess.
    ///
    /// `None` only when the commune is unknown (see [`Address::commune`]); every valid address
    /// has a view, because every legacy commune of the register is in the official conversion.
    pub fn in_current_scheme(&self) -> Option<CurrentView<'static>> {
        AdminUnits::get().current_view(self.scheme, &self.commune_code)
    }

    /// The code of the 2025 commune the address lies in, when that is determined: the code
    /// itself for a 2025 address, the single target for a legacy commune that was not split,
    /// and `None` for a split legacy commune (see [`Address::in_current_scheme`]).
    pub fn current_commune_code(&self) -> Option<String> {
        let view = self.in_current_scheme()?;
        view.exact().map(|commune| commune.code.to_owned())
    }

    /// The address in Vietnamese order, small to large, comma-separated: detail, commune,
    /// district (legacy scheme only), province; e.g. `"Số 12 phố Phan Đình Phùng, Phường Quán
    /// Thánh, Quận Ba Đình, Thành phố Hà Nội"`. Names are the full official names. An unknown
    /// commune (see [`Address::commune`]) is shown by its bare code.
    pub fn display(&self) -> String {
        let units = AdminUnits::get();
        let commune = self.commune();
        let district = commune
            .and_then(|c| c.district_code)
            .and_then(|code| units.district(code));
        let province = commune.and_then(|c| units.province(self.scheme, c.province_code));
        let parts = [
            Some(self.detail.as_str()).filter(|d| !d.is_empty()),
            Some(commune.map_or(self.commune_code.as_str(), |c| c.name)),
            district.map(|d| d.name),
            province.map(|p| p.name),
        ];
        parts.into_iter().flatten().collect::<Vec<_>>().join(", ")
    }
}

/// NFC, trimmed, every run of whitespace (including newlines and tabs) collapsed to one space.
fn normalise_detail(detail: &str) -> String {
    crate::name::clean_text(detail)
}

#[cfg(test)]
// In tests a failed `expect` is the failure report.
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid test date")
    }

    fn legacy(code: &str, detail: &str) -> Address {
        Address::new(Scheme::Legacy, code, detail, date(2020, 5, 1)).expect("valid legacy address")
    }

    fn error_code(scheme: Scheme, code: &str, detail: &str, from: NaiveDate) -> &'static str {
        Address::new(scheme, code, detail, from)
            .expect_err("address should be refused")
            .code()
    }

    #[test]
    fn valid_addresses_in_both_schemes() {
        let old = legacy("00001", "Số 1 phố Yên Phụ");
        assert_eq!(old.scheme, Scheme::Legacy);
        assert_eq!(old.commune().map(|c| c.name), Some("Phường Phúc Xá"));
        assert_eq!(old.validate(), Ok(()));
        let new = Address::new(Scheme::Y2025, "00004", "", Scheme::REFORM_DATE)
            .expect("valid 2025 address");
        assert_eq!(new.commune().map(|c| c.name), Some("Phường Ba Đình"));
        assert_eq!(new.effective_from, date(2025, 7, 1));
    }

    #[test]
    fn scheme_must_agree_with_the_effective_date() {
        let err = Address::new(Scheme::Y2025, "00004", "", date(2025, 6, 30))
            .expect_err("2025 scheme before the reform");
        assert_eq!(err.code(), "address_scheme_date_mismatch");
        assert_eq!(
            err,
            AddressError::SchemeDateMismatch {
                scheme: Scheme::Y2025,
                expected: Scheme::Legacy,
                effective_from: date(2025, 6, 30),
            }
        );
        assert_eq!(
            error_code(Scheme::Legacy, "00001", "", Scheme::REFORM_DATE),
            "address_scheme_date_mismatch"
        );
        assert!(Address::new(Scheme::Legacy, "00001", "", date(2025, 6, 30)).is_ok());
    }

    #[test]
    fn commune_must_exist_in_the_scheme() {
        // 00001 Phường Phúc Xá did not keep its code in 2025.
        assert_eq!(
            error_code(Scheme::Y2025, "00001", "", date(2026, 1, 1)),
            "address_commune_unknown"
        );
        // 26732 is the 2025 Đặc khu Côn Đảo; huyện Côn Đảo had no commune code before.
        assert!(Address::new(Scheme::Y2025, "26732", "", date(2026, 1, 1)).is_ok());
        assert_eq!(
            error_code(Scheme::Legacy, "26732", "", date(2020, 1, 1)),
            "address_commune_unknown"
        );
        // 03751 was retired in a merger before 30 June 2025.
        assert_eq!(
            error_code(Scheme::Legacy, "03751", "", date(2020, 1, 1)),
            "address_commune_unknown"
        );
    }

    #[test]
    fn malformed_codes_are_refused() {
        for code in ["1", "0001", "000001", "0000a", " 00001", "０００01", ""] {
            assert_eq!(
                error_code(Scheme::Legacy, code, "", date(2020, 1, 1)),
                "address_commune_code_malformed",
                "{code:?}"
            );
        }
    }

    #[test]
    fn detail_is_normalised_and_bounded() {
        // "ệ" written as e + combining circumflex + combining dot below.
        let a = legacy("00001", "  Ngõ 5\n\tphố  Yên Phe\u{0302}\u{0323}  ");
        assert_eq!(a.detail, "Ngõ 5 phố Yên Phệ");
        let longest = "á".repeat(MAX_DETAIL_CHARS);
        assert!(Address::new(Scheme::Legacy, "00001", &longest, date(2020, 1, 1)).is_ok());
        let err = Address::new(
            Scheme::Legacy,
            "00001",
            &format!("{longest}b"),
            date(2020, 1, 1),
        )
        .expect_err("too long");
        assert_eq!(
            err,
            AddressError::DetailTooLong {
                length: 201,
                max: 200
            }
        );
        assert_eq!(err.code(), "address_detail_too_long");
        assert_eq!(
            error_code(Scheme::Legacy, "00001", "Số 1\u{0}", date(2020, 1, 1)),
            "address_detail_control_character"
        );
    }

    #[test]
    fn validate_catches_fields_changed_after_construction() {
        let mut a = legacy("00001", "");
        a.effective_from = date(2025, 8, 1);
        assert_eq!(
            a.validate().map_err(|e| e.code()),
            Err("address_scheme_date_mismatch")
        );
        a.scheme = Scheme::Y2025;
        assert_eq!(
            a.validate().map_err(|e| e.code()),
            Err("address_commune_unknown")
        );
        assert_eq!(a.commune(), None);
        assert_eq!(a.in_current_scheme(), None);
        assert_eq!(a.current_commune_code(), None);
        assert_eq!(a.display(), "00001");
        a.commune_code = "00097".into();
        assert_eq!(a.validate(), Ok(()));
    }

    #[test]
    fn error_codes_are_distinct_and_messages_bilingual() {
        let errors = [
            AddressError::MalformedCommuneCode { code: "1".into() },
            AddressError::SchemeDateMismatch {
                scheme: Scheme::Legacy,
                expected: Scheme::Y2025,
                effective_from: date(2026, 1, 1),
            },
            AddressError::UnknownCommune {
                scheme: Scheme::Y2025,
                code: "99999".into(),
            },
            AddressError::DetailTooLong {
                length: 300,
                max: 200,
            },
            AddressError::DetailControlCharacter,
        ];
        let mut codes: Vec<&str> = errors.iter().map(AddressError::code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), errors.len());
        for error in &errors {
            assert_eq!(Problem::code(error), error.code());
            assert!(!error.message_en().is_empty());
            assert!(!error.message_vi().is_empty());
        }
        assert!(errors[1].message_vi().contains("01/01/2026"));
    }

    #[test]
    fn serde_round_trip_and_validation_on_deserialise() {
        let a = legacy("00001", "Số 1");
        let json = serde_json::to_value(&a).expect("serialisable");
        assert_eq!(
            json,
            serde_json::json!({
                "scheme": "legacy",
                "commune_code": "00001",
                "detail": "Số 1",
                "effective_from": "2020-05-01",
            })
        );
        let back: Address = serde_json::from_value(json).expect("deserialisable");
        assert_eq!(back, a);
        let bad = serde_json::json!({
            "scheme": "2025",
            "commune_code": "00001",
            "detail": "",
            "effective_from": "2020-05-01",
        });
        let err = serde_json::from_value::<Address>(bad).expect_err("rule broken");
        assert!(err.to_string().contains("legacy scheme"), "{err}");
    }

    #[test]
    fn display_in_vietnamese_order() {
        let a = legacy("00001", "Số 1 phố Yên Phụ");
        assert_eq!(
            a.display(),
            "Số 1 phố Yên Phụ, Phường Phúc Xá, Quận Ba Đình, Thành phố Hà Nội"
        );
        let b = Address::new(Scheme::Y2025, "00004", "", date(2025, 8, 1)).expect("valid");
        assert_eq!(b.display(), "Phường Ba Đình, Thành phố Hà Nội");
    }

    #[test]
    fn legacy_address_in_current_scheme() {
        let whole = legacy("00001", "");
        match whole.in_current_scheme() {
            Some(CurrentView::Exact { commune, province }) => {
                assert_eq!(commune.code, "00097");
                assert_eq!(commune.scheme, Scheme::Y2025);
                assert_eq!(province.code, "01");
            }
            other => panic!("expected exact, got {other:?}"),
        }
        assert_eq!(whole.current_commune_code().as_deref(), Some("00097"));
        // Xã Đặng Xá (Gia Lâm) was split between 00541 and 00562.
        let split = legacy("00556", "Thôn 1");
        let view = split.in_current_scheme().expect("known commune");
        assert_eq!(view.exact(), None);
        let codes: Vec<&str> = view.candidates().iter().map(|c| c.code).collect();
        assert_eq!(codes, ["00541", "00562"]);
        assert_eq!(view.province().code, "01");
        assert_eq!(view.province().scheme, Scheme::Y2025);
        assert_eq!(split.current_commune_code(), None);
    }

    #[test]
    fn current_address_is_its_own_current_view() {
        let a = Address::new(Scheme::Y2025, "00097", "", date(2025, 7, 1)).expect("valid");
        let view = a.in_current_scheme().expect("known commune");
        assert_eq!(view.exact().map(|c| c.code), Some("00097"));
        assert_eq!(a.current_commune_code().as_deref(), Some("00097"));
    }

    #[test]
    fn openapi_schema_names_the_wire_fields() {
        let schema = serde_json::to_string(&<Address as utoipa::PartialSchema>::schema())
            .expect("serialisable schema");
        for field in [
            "scheme",
            "commune_code",
            "detail",
            "effective_from",
            "maxLength",
        ] {
            assert!(schema.contains(field), "{field} missing in {schema}");
        }
    }
}
