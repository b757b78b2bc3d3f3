//! Partial dates: many older people's full date of birth is unknown, and the register records
//! only the year, or the year and month (ngày sinh không đầy đủ).

use crate::Problem;
use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A date known to the day, to the month, or only to the year.
///
/// Written as `YYYY`, `YYYY-MM` or `YYYY-MM-DD` in JSON and CSV.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PartialDate {
    /// Only the year is known.
    Year(i32),
    /// The year and month are known.
    YearMonth(i32, u32),
    /// The full date is known.
    Full(NaiveDate),
}

/// Why a text is not a partial date.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    /// Not in one of the accepted shapes.
    #[error("a date is written YYYY, YYYY-MM or YYYY-MM-DD; got {0:?}")]
    Shape(String),
    /// A calendar date that does not exist (e.g. 31 February).
    #[error("{0:?} is not a date in the calendar")]
    Impossible(String),
    /// Before 1850 or after the date limit the caller set (usually today).
    #[error("{0} is outside the accepted range")]
    OutOfRange(String),
}

impl Problem for DateError {
    fn code(&self) -> &'static str {
        match self {
            Self::Shape(_) => "date_shape",
            Self::Impossible(_) => "date_impossible",
            Self::OutOfRange(_) => "date_out_of_range",
        }
    }
    fn message_vi(&self) -> String {
        match self {
            Self::Shape(s) => format!(
                "Ngày tháng phải viết theo dạng YYYY, YYYY-MM hoặc YYYY-MM-DD; nhận được {s:?}"
            ),
            Self::Impossible(s) => format!("{s:?} không phải là ngày có thật"),
            Self::OutOfRange(s) => format!("{s} nằm ngoài khoảng cho phép"),
        }
    }
}

impl PartialDate {
    /// Parses `YYYY`, `YYYY-MM` or `YYYY-MM-DD`.
    pub fn parse(s: &str) -> Result<Self, DateError> {
        let shape = || DateError::Shape(s.chars().take(30).collect());
        let parts: Vec<&str> = s.trim().split('-').collect();
        let num = |p: &str, len: usize| -> Result<u32, DateError> {
            if p.len() == len && p.bytes().all(|b| b.is_ascii_digit()) {
                p.parse().map_err(|_| shape())
            } else {
                Err(shape())
            }
        };
        let d = match parts.as_slice() {
            [y] => Self::Year(num(y, 4)? as i32),
            [y, m] => {
                let (y, m) = (num(y, 4)? as i32, num(m, 2)?);
                if !(1..=12).contains(&m) {
                    return Err(DateError::Impossible(s.to_owned()));
                }
                Self::YearMonth(y, m)
            }
            [y, m, d] => {
                let date = NaiveDate::from_ymd_opt(num(y, 4)? as i32, num(m, 2)?, num(d, 2)?)
                    .ok_or_else(|| DateError::Impossible(s.to_owned()))?;
                Self::Full(date)
            }
            _ => return Err(shape()),
        };
        Ok(d)
    }

    /// Checks the date lies between 1 January 1850 and `latest` (inclusive, at its precision).
    pub fn check_range(&self, latest: NaiveDate) -> Result<(), DateError> {
        if self.year() < 1850 || self.earliest() > latest {
            return Err(DateError::OutOfRange(self.to_string()));
        }
        Ok(())
    }

    /// The year.
    pub fn year(&self) -> i32 {
        match self {
            Self::Year(y) | Self::YearMonth(y, _) => *y,
            Self::Full(d) => d.year(),
        }
    }

    /// The first day the date can stand for.
    pub fn earliest(&self) -> NaiveDate {
        match *self {
            Self::Year(y) => NaiveDate::from_ymd_opt(y, 1, 1).unwrap_or(NaiveDate::MIN),
            Self::YearMonth(y, m) => NaiveDate::from_ymd_opt(y, m, 1).unwrap_or(NaiveDate::MIN),
            Self::Full(d) => d,
        }
    }

    /// The last day the date can stand for.
    pub fn latest(&self) -> NaiveDate {
        match *self {
            Self::Year(y) => NaiveDate::from_ymd_opt(y, 12, 31).unwrap_or(NaiveDate::MAX),
            Self::YearMonth(y, m) => {
                let next = if m == 12 {
                    NaiveDate::from_ymd_opt(y + 1, 1, 1)
                } else {
                    NaiveDate::from_ymd_opt(y, m + 1, 1)
                };
                next.and_then(|d| d.pred_opt()).unwrap_or(NaiveDate::MAX)
            }
            Self::Full(d) => d,
        }
    }

    /// Age in whole years on `on`, counted from the latest day the date can stand for, so a
    /// person is never taken as older than they can be.
    pub fn age_on(&self, on: NaiveDate) -> i32 {
        let born = self.latest();
        let mut age = on.year() - born.year();
        if (on.month(), on.day()) < (born.month(), born.day()) {
            age -= 1;
        }
        age
    }
}

impl fmt::Display for PartialDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Year(y) => write!(f, "{y:04}"),
            Self::YearMonth(y, m) => write!(f, "{y:04}-{m:02}"),
            Self::Full(d) => write!(f, "{}", d.format("%Y-%m-%d")),
        }
    }
}

impl fmt::Debug for PartialDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PartialDate({self})")
    }
}

impl Serialize for PartialDate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PartialDate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for PartialDate {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some(r"^\d{4}(-\d{2}(-\d{2})?)?$"))
            .description(Some(
                "A date known to the year, month or day: YYYY, YYYY-MM or YYYY-MM-DD",
            ))
            .examples(["1985-03-15"])
            .into()
    }
}
impl utoipa::ToSchema for PartialDate {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn shapes() {
        assert_eq!(PartialDate::parse("1985").unwrap(), PartialDate::Year(1985));
        assert_eq!(
            PartialDate::parse("1985-03").unwrap(),
            PartialDate::YearMonth(1985, 3)
        );
        assert_eq!(
            PartialDate::parse("2024-02-29").unwrap().to_string(),
            "2024-02-29"
        );
        assert_eq!(
            PartialDate::parse("2023-02-29").unwrap_err().code(),
            "date_impossible"
        );
        assert_eq!(
            PartialDate::parse("1985-13").unwrap_err().code(),
            "date_impossible"
        );
        assert_eq!(PartialDate::parse("85").unwrap_err().code(), "date_shape");
        assert_eq!(
            PartialDate::parse("1985/03/01").unwrap_err().code(),
            "date_shape"
        );
        let today = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        assert!(
            PartialDate::parse("2027")
                .unwrap()
                .check_range(today)
                .is_err()
        );
        assert!(
            PartialDate::parse("1849")
                .unwrap()
                .check_range(today)
                .is_err()
        );
    }

    #[test]
    fn ages_never_overstate() {
        let on = NaiveDate::from_ymd_opt(2026, 6, 1).unwrap();
        assert_eq!(PartialDate::Year(2012).age_on(on), 13); // could be born 31 Dec 2012
        assert_eq!(PartialDate::YearMonth(2012, 5).age_on(on), 14);
        assert_eq!(PartialDate::parse("2012-06-01").unwrap().age_on(on), 14);
        assert_eq!(PartialDate::parse("2012-06-02").unwrap().age_on(on), 13);
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(y in 1850i32..2400, m in 1u32..=12, d in 1u32..=31, kind in 0u8..3) {
            let date = match kind {
                0 => PartialDate::Year(y),
                1 => PartialDate::YearMonth(y, m),
                _ => match NaiveDate::from_ymd_opt(y, m, d) { Some(d) => PartialDate::Full(d), None => PartialDate::Year(y) },
            };
            prop_assert_eq!(PartialDate::parse(&date.to_string()).unwrap(), date);
            prop_assert!(date.earliest() <= date.latest());
        }
    }
}
