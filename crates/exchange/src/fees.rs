//! Fees for exploiting population data (Circular 48/2022/TT-BTC): a tariff per information
//! field held as data, metering of the fields each served call exploited, and monthly
//! statements per member with CSV export.
//!
//! The circular's figures are the default: VND 1,000 per field, VND 500 from 17 Sep 2022 to
//! 31 Dec 2023. A later circular may change them, which is why they are data. Dates are
//! Vietnam dates (UTC+7). Only served calls are metered; refusals cost nothing.

use crate::rights::vietnam_date;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A price in force over a range of days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TariffPeriod {
    /// First day.
    pub from: NaiveDate,
    /// Last day (inclusive).
    pub until: NaiveDate,
    /// Price per information field, VND.
    pub vnd_per_field: u64,
}

/// The tariff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tariff {
    /// Price per field outside every period, VND.
    pub default_vnd_per_field: u64,
    /// Dated prices; the first period containing a day wins.
    pub periods: Vec<TariffPeriod>,
    /// Member classes that pay nothing (e.g. state bodies exploiting for their duties).
    pub exempt_classes: BTreeSet<String>,
}

impl Tariff {
    /// Circular 48/2022/TT-BTC, with no exempt class configured.
    pub fn circular_48_2022() -> Self {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap_or(NaiveDate::MIN);
        Self {
            default_vnd_per_field: 1_000,
            periods: vec![TariffPeriod {
                from: d(2022, 9, 17),
                until: d(2023, 12, 31),
                vnd_per_field: 500,
            }],
            exempt_classes: BTreeSet::new(),
        }
    }

    /// Price per field on a day for a member class.
    pub fn price(&self, day: NaiveDate, member_class: &str) -> u64 {
        if self.exempt_classes.contains(member_class) {
            return 0;
        }
        self.periods
            .iter()
            .find(|p| p.from <= day && day <= p.until)
            .map_or(self.default_vnd_per_field, |p| p.vnd_per_field)
    }
}

/// One served call, as metered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeteredCall {
    /// Member organisation.
    pub member: String,
    /// Its class (ministry, province, bank, telecom, ...).
    pub member_class: String,
    /// When.
    pub time: DateTime<Utc>,
    /// Service.
    pub service: String,
    /// Information fields exploited.
    pub fields: u32,
}

impl MeteredCall {
    /// Meters a served call: one unit per distinct field granted.
    pub fn new(
        member: &str,
        member_class: &str,
        time: DateTime<Utc>,
        service: &str,
        granted_fields: &[String],
    ) -> Self {
        let distinct: BTreeSet<&String> = granted_fields.iter().collect();
        Self {
            member: member.to_owned(),
            member_class: member_class.to_owned(),
            time,
            service: service.to_owned(),
            fields: u32::try_from(distinct.len()).unwrap_or(u32::MAX),
        }
    }
}

/// One line of a statement: a service at one unit price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementRow {
    /// Service.
    pub service: String,
    /// Price per field, VND.
    pub unit_price_vnd: u64,
    /// Calls.
    pub calls: u64,
    /// Fields exploited.
    pub fields: u64,
    /// Amount, VND.
    pub amount_vnd: u64,
}

/// A member's statement for one month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    /// Member.
    pub member: String,
    /// Year.
    pub year: i32,
    /// Month, 1–12.
    pub month: u32,
    /// Rows by service, then price.
    pub rows: Vec<StatementRow>,
    /// Calls in total.
    pub total_calls: u64,
    /// Fields in total.
    pub total_fields: u64,
    /// Amount in total, VND.
    pub total_vnd: u64,
}

/// Per member: (service, unit price) → (calls, fields).
type Usage<'a> = BTreeMap<(&'a str, u64), (u64, u64)>;

/// Statements for every member with calls in the month (Vietnam dates), sorted by member.
pub fn monthly_statements(
    tariff: &Tariff,
    year: i32,
    month: u32,
    calls: &[MeteredCall],
) -> Vec<Statement> {
    let mut acc: BTreeMap<&str, Usage<'_>> = BTreeMap::new();
    for c in calls {
        let day = vietnam_date(c.time);
        if day.year() != year || day.month() != month {
            continue;
        }
        let price = tariff.price(day, &c.member_class);
        let e = acc
            .entry(&c.member)
            .or_default()
            .entry((&c.service, price))
            .or_default();
        e.0 += 1;
        e.1 += u64::from(c.fields);
    }
    acc.into_iter()
        .map(|(member, rows)| {
            let rows: Vec<StatementRow> = rows
                .into_iter()
                .map(|((service, price), (calls, fields))| StatementRow {
                    service: service.to_owned(),
                    unit_price_vnd: price,
                    calls,
                    fields,
                    amount_vnd: fields.saturating_mul(price),
                })
                .collect();
            Statement {
                member: member.to_owned(),
                year,
                month,
                total_calls: rows.iter().map(|r| r.calls).sum(),
                total_fields: rows.iter().map(|r| r.fields).sum(),
                total_vnd: rows
                    .iter()
                    .fold(0u64, |a, r| a.saturating_add(r.amount_vnd)),
                rows,
            }
        })
        .collect()
}

impl Statement {
    /// CSV with a header line, one line per row and a total line (service `TOTAL`).
    pub fn to_csv(&self) -> Result<String, csv::Error> {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record([
            "member",
            "period",
            "service",
            "unit_price_vnd",
            "calls",
            "fields",
            "amount_vnd",
        ])?;
        let period = format!("{:04}-{:02}", self.year, self.month);
        for r in &self.rows {
            w.write_record([
                self.member.as_str(),
                &period,
                &r.service,
                &r.unit_price_vnd.to_string(),
                &r.calls.to_string(),
                &r.fields.to_string(),
                &r.amount_vnd.to_string(),
            ])?;
        }
        w.write_record([
            self.member.as_str(),
            &period,
            "TOTAL",
            "",
            &self.total_calls.to_string(),
            &self.total_fields.to_string(),
            &self.total_vnd.to_string(),
        ])?;
        let bytes = w.into_inner().map_err(|e| e.into_error())?;
        // Every cell written is UTF-8.
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
    }

    fn fields(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("f{i}")).collect()
    }

    #[test]
    fn the_circulars_prices_by_date() {
        let t = Tariff::circular_48_2022();
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap();
        assert_eq!(t.price(d(2022, 9, 16), "bank"), 1_000);
        assert_eq!(t.price(d(2022, 9, 17), "bank"), 500);
        assert_eq!(t.price(d(2023, 12, 31), "bank"), 500);
        assert_eq!(t.price(d(2024, 1, 1), "bank"), 1_000);
    }

    #[test]
    fn metering_counts_distinct_fields() {
        let c = MeteredCall::new(
            "vcb",
            "bank",
            at(2026, 1, 1, 0),
            "data_retrieval",
            &["name".into(), "name".into(), "date_of_birth".into()],
        );
        assert_eq!(c.fields, 2);
    }

    #[test]
    fn a_month_that_spans_a_price_change_has_two_rows_and_exempt_members_pay_nothing() {
        let mut t = Tariff::circular_48_2022();
        t.exempt_classes.insert("ministry".into());
        let calls = vec![
            MeteredCall::new(
                "vcb",
                "bank",
                at(2022, 9, 10, 3),
                "data_retrieval",
                &fields(3),
            ),
            MeteredCall::new(
                "vcb",
                "bank",
                at(2022, 9, 20, 3),
                "data_retrieval",
                &fields(3),
            ),
            MeteredCall::new(
                "vcb",
                "bank",
                at(2022, 9, 21, 3),
                "data_retrieval",
                &fields(2),
            ),
            MeteredCall::new(
                "vcb",
                "bank",
                at(2022, 9, 21, 3),
                "attribute_match",
                &fields(4),
            ),
            // 30 Sep 18:00 UTC is 1 Oct in Vietnam: next month.
            MeteredCall::new(
                "vcb",
                "bank",
                at(2022, 9, 30, 18),
                "data_retrieval",
                &fields(5),
            ),
            MeteredCall::new(
                "bca",
                "ministry",
                at(2022, 9, 21, 3),
                "data_retrieval",
                &fields(9),
            ),
        ];
        let s = monthly_statements(&t, 2022, 9, &calls);
        assert_eq!(s.len(), 2);
        let bca = &s[0];
        assert_eq!(
            (bca.member.as_str(), bca.total_fields, bca.total_vnd),
            ("bca", 9, 0)
        );
        let vcb = &s[1];
        assert_eq!(vcb.rows.len(), 3);
        assert_eq!(vcb.total_calls, 4);
        assert_eq!(vcb.total_fields, 12);
        assert_eq!(vcb.total_vnd, 4 * 500 + 3 * 1_000 + 5 * 500);
        let csv = vcb.to_csv().unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "member,period,service,unit_price_vnd,calls,fields,amount_vnd"
        );
        assert!(lines.contains(&"vcb,2022-09,data_retrieval,1000,1,3,3000"));
        assert_eq!(*lines.last().unwrap(), "vcb,2022-09,TOTAL,,4,12,7500");
    }
}
