//! What a card adds to the personal identification number (số định danh cá nhân).
//!
//! The number itself, its place-code table, the century/sex digit and the agreement check with a
//! date of birth and a sex are owned by the domain crate ([`dancu_domain::PersonalId`],
//! [`dancu_domain::id`]); they are re-exported here so that card users need only this crate.
//! This module adds only what belongs to the card as a document:
//!
//! - the numbers a card derives from the ID ([`CardNumbers`]: the MRZ document number and the
//!   PACE card access number);
//! - [`check_holder`], the ID's agreement with the full date of birth and sex printed on a card;
//! - [`id_error_code`], the stable `id.*` codes that the card's error enums report for a
//!   rejected ID.

use chrono::NaiveDate;
use dancu_domain::PartialDate;

pub use dancu_domain::PersonalId;
pub use dancu_domain::id::{IdError, PLACE_CODES, place_name};
pub use dancu_domain::person::Sex;

/// The numbers a Vietnamese chip card derives from its holder's personal ID.
pub trait CardNumbers {
    /// Last 9 digits: the document number in the card's MRZ.
    fn document_number(&self) -> &str;
    /// Last 6 digits: the PACE card access number (CAN).
    fn card_access_number(&self) -> &str;
}

impl CardNumbers for PersonalId {
    fn document_number(&self) -> &str {
        &self.as_str()[3..]
    }

    fn card_access_number(&self) -> &str {
        &self.as_str()[6..]
    }
}

/// Check that the ID agrees with the date of birth and sex a card states: the century/sex digit
/// must give the sex, and the century digit with the two year digits the year of birth.
/// A sex mismatch is reported before a year mismatch.
pub fn check_holder(id: &PersonalId, date_of_birth: NaiveDate, sex: Sex) -> Result<(), IdError> {
    id.check_against(&PartialDate::Full(date_of_birth), sex)
}

/// Stable machine-readable code of a rejected ID, as the card's error enums report it.
pub fn id_error_code(e: &IdError) -> &'static str {
    match e {
        IdError::Length(_) => "id.length",
        IdError::NotDigit(..) => "id.non_digit",
        IdError::UnknownPlace(_) => "id.unknown_province",
        IdError::SexMismatch { .. } => "id.sex_mismatch",
        IdError::YearMismatch { .. } => "id.birth_year_mismatch",
        // Only composing a number can fail these two; a card never composes one.
        IdError::YearOutOfRange(_) => "id.year_out_of_range",
        IdError::SerialOutOfRange(_) => "id.serial_out_of_range",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_numbers_are_tails_of_the_id() {
        let id = PersonalId::parse("001099012345").unwrap();
        assert_eq!(id.document_number(), "099012345");
        assert_eq!(id.card_access_number(), "012345");
    }

    #[test]
    fn every_rejection_has_a_stable_code() {
        let code = |s: &str| id_error_code(&PersonalId::parse(s).unwrap_err());
        assert_eq!(code("00109901234"), "id.length");
        assert_eq!(code("00109901234x"), "id.non_digit");
        assert_eq!(code("003099012345"), "id.unknown_province");
        assert_eq!(code("097099012345"), "id.unknown_province");
        let compose = |year, serial| {
            id_error_code(&PersonalId::compose("001", Sex::Male, year, serial).unwrap_err())
        };
        assert_eq!(compose(1899, 0), "id.year_out_of_range");
        assert_eq!(compose(1999, 1_000_000), "id.serial_out_of_range");
    }

    #[test]
    fn holder_agreement() {
        let id = PersonalId::parse("001099012345").unwrap();
        let d = NaiveDate::from_ymd_opt(1999, 1, 1).unwrap();
        assert!(check_holder(&id, d, Sex::Male).is_ok());
        let code = |d, s| id_error_code(&check_holder(&id, d, s).unwrap_err());
        assert_eq!(code(d, Sex::Female), "id.sex_mismatch");
        // 2099 has the same two year digits but another century digit.
        let d2 = NaiveDate::from_ymd_opt(2099, 1, 1).unwrap();
        assert_eq!(code(d2, Sex::Male), "id.birth_year_mismatch");
        // Both wrong: the sex is reported first.
        assert_eq!(code(d2, Sex::Female), "id.sex_mismatch");
    }
}
