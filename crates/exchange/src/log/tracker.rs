//! The citizen's view of the log (tra cứu lịch sử khai thác dữ liệu): who accessed or received
//! the person's data, when, which fields and why.
//!
//! Covert accesses (made under a law-enforcement right) are left out until their embargo date
//! and shown from that day on. Nothing in the view hints that a hidden access exists: no
//! count, no gap. The officer's identity stays out of the view; the organisation, its
//! subsystem and the purpose are what the person is owed.

use super::record::{ExchangeResult, LogEntry};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// One access as the person sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessLine {
    /// When.
    pub time: DateTime<Utc>,
    /// Organisation.
    pub org: String,
    /// Its client system.
    pub subsystem: String,
    /// Service.
    pub service: String,
    /// Fields concerned.
    pub fields: Vec<String>,
    /// Purpose code.
    pub purpose: String,
    /// Whether data or an answer was given.
    pub served: bool,
}

/// The accesses to `person`'s data visible on `today` (Vietnam date), oldest first as given.
pub fn person_view<'a>(
    entries: impl IntoIterator<Item = &'a LogEntry>,
    person: &str,
    today: NaiveDate,
) -> Vec<AccessLine> {
    entries
        .into_iter()
        .map(|e| &e.record)
        .filter(|r| r.person.as_deref() == Some(person))
        .filter(|r| r.covert_until.is_none_or(|d| today >= d))
        .map(|r| AccessLine {
            time: r.time,
            org: r.caller_org.clone(),
            subsystem: r.subsystem.clone(),
            service: r.service.clone(),
            fields: r.fields.clone(),
            purpose: r.purpose.clone(),
            served: r.result == ExchangeResult::Served,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::record::tests::sample;

    #[test]
    fn covert_accesses_appear_on_their_embargo_date() {
        let mut a = sample(1);
        a.person = Some("001090000001".into());
        let mut b = sample(2);
        b.person = Some("001090000001".into());
        b.covert_until = NaiveDate::from_ymd_opt(2030, 1, 1);
        let mut c = sample(3);
        c.person = Some("001090000002".into());
        let entries: Vec<LogEntry> = [a, b, c]
            .into_iter()
            .enumerate()
            .map(|(i, record)| LogEntry {
                seq: i as u64,
                record,
            })
            .collect();
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap();
        let before = person_view(&entries, "001090000001", d(2029, 12, 31));
        assert_eq!(before.len(), 1);
        assert_eq!(before[0].time, entries[0].record.time);
        let on = person_view(&entries, "001090000001", d(2030, 1, 1));
        assert_eq!(on.len(), 2);
        assert!(person_view(&entries, "001090000009", d(2030, 1, 1)).is_empty());
    }
}
