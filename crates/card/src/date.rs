//! The card's `DDMMYYYY` date text (QR code, DG13), parsed and formatted.

use chrono::{Datelike, NaiveDate};

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
}
