//! Consent artefacts (sự đồng ý của chủ thể dữ liệu, Decree 13/2023): the person lets one
//! recipient organisation get named fields for one purpose, once or repeatedly, between a start
//! and an expiry. The person can revoke it at any time, and a revoked consent stops access at
//! once. A one-time consent is consumed by the access it allowed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Once, or repeatedly until expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentKind {
    /// Allows one access; consumed by it.
    OneTime,
    /// Allows accesses until expiry.
    Periodic,
}

/// A consent granted by a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    /// Identifier.
    pub id: String,
    /// Personal ID of the person who granted it.
    pub person: String,
    /// Organisation allowed to receive the data.
    pub recipient_org: String,
    /// Fields it covers.
    pub fields: BTreeSet<String>,
    /// Purpose code it covers.
    pub purpose: String,
    /// Once or repeatedly.
    pub kind: ConsentKind,
    /// When granted.
    pub granted_at: DateTime<Utc>,
    /// First instant it can be used.
    pub valid_from: DateTime<Utc>,
    /// First instant it can no longer be used.
    pub expires_at: DateTime<Utc>,
    /// When the person revoked it.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When a one-time consent was used.
    pub used_at: Option<DateTime<Utc>>,
}

/// What an access asks a consent to cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsentQuestion<'a> {
    /// The person whose data is asked for.
    pub person: &'a str,
    /// The organisation asking.
    pub recipient_org: &'a str,
    /// The fields asked for.
    pub fields: &'a [String],
    /// The purpose.
    pub purpose: &'a str,
}

/// Why a consent does not cover an access.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsentRefusal {
    /// No consent, or one for another person, recipient, purpose or fields, or not yet
    /// started, or a one-time consent already used.
    #[error("no consent covers this access: {0}")]
    Missing(&'static str),
    /// The person revoked it.
    #[error("the consent was revoked")]
    Revoked,
    /// Past its expiry.
    #[error("the consent has expired")]
    Expired,
}

/// Checks whether `consent` covers `q` at `now`. Revocation and expiry are reported as such,
/// whatever else is wrong, so the person's choice is what the caller sees.
pub fn check(
    consent: Option<&Consent>,
    q: &ConsentQuestion<'_>,
    now: DateTime<Utc>,
) -> Result<(), ConsentRefusal> {
    let Some(c) = consent else {
        return Err(ConsentRefusal::Missing("none given"));
    };
    if c.person != q.person || c.recipient_org != q.recipient_org {
        return Err(ConsentRefusal::Missing("granted to someone else"));
    }
    if c.revoked_at.is_some_and(|t| t <= now) {
        return Err(ConsentRefusal::Revoked);
    }
    if now >= c.expires_at {
        return Err(ConsentRefusal::Expired);
    }
    if now < c.valid_from {
        return Err(ConsentRefusal::Missing("not yet valid"));
    }
    if c.purpose != q.purpose {
        return Err(ConsentRefusal::Missing("another purpose"));
    }
    if !q.fields.iter().all(|f| c.fields.contains(f)) {
        return Err(ConsentRefusal::Missing("fields not covered"));
    }
    if c.kind == ConsentKind::OneTime && c.used_at.is_some() {
        return Err(ConsentRefusal::Missing("already used"));
    }
    Ok(())
}

impl Consent {
    /// The person revokes it; revoking twice keeps the first time.
    pub fn revoke(&mut self, now: DateTime<Utc>) {
        self.revoked_at.get_or_insert(now);
    }

    /// Records a use allowed by [`check`]; a one-time consent cannot be used again.
    pub fn consume(&mut self, now: DateTime<Utc>) {
        if self.kind == ConsentKind::OneTime {
            self.used_at.get_or_insert(now);
        }
    }

    /// Whether it can still allow anything at `now` (for the person's list).
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none()
            && now < self.expires_at
            && !(self.kind == ConsentKind::OneTime && self.used_at.is_some())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::{TimeDelta, TimeZone};

    pub(crate) fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 2, 0, 0).unwrap()
    }

    pub(crate) fn consent(kind: ConsentKind) -> Consent {
        Consent {
            id: "c-1".into(),
            person: "001090000001".into(),
            recipient_org: "bank-vcb".into(),
            fields: ["name", "date_of_birth", "permanent_residence"]
                .map(String::from)
                .into(),
            purpose: "account_opening".into(),
            kind,
            granted_at: t0(),
            valid_from: t0(),
            expires_at: t0() + TimeDelta::days(30),
            revoked_at: None,
            used_at: None,
        }
    }

    fn q(fields: &[String]) -> ConsentQuestion<'_> {
        ConsentQuestion {
            person: "001090000001",
            recipient_org: "bank-vcb",
            fields,
            purpose: "account_opening",
        }
    }

    #[test]
    fn covers_its_fields_and_purpose_only() {
        let c = consent(ConsentKind::Periodic);
        let f = vec!["name".to_string()];
        let now = t0() + TimeDelta::hours(1);
        assert_eq!(check(Some(&c), &q(&f), now), Ok(()));
        let more = vec!["name".to_string(), "religion".to_string()];
        assert!(matches!(
            check(Some(&c), &q(&more), now),
            Err(ConsentRefusal::Missing(_))
        ));
        let mut other = q(&f);
        other.purpose = "marketing";
        assert!(matches!(
            check(Some(&c), &other, now),
            Err(ConsentRefusal::Missing(_))
        ));
        other = q(&f);
        other.recipient_org = "bank-other";
        assert!(matches!(
            check(Some(&c), &other, now),
            Err(ConsentRefusal::Missing(_))
        ));
        assert!(matches!(
            check(None, &q(&f), now),
            Err(ConsentRefusal::Missing(_))
        ));
    }

    #[test]
    fn start_expiry_and_revocation() {
        let mut c = consent(ConsentKind::Periodic);
        let f = vec!["name".to_string()];
        assert!(matches!(
            check(Some(&c), &q(&f), t0() - TimeDelta::seconds(1)),
            Err(ConsentRefusal::Missing(_))
        ));
        assert_eq!(
            check(Some(&c), &q(&f), t0() + TimeDelta::days(30)),
            Err(ConsentRefusal::Expired)
        );
        let later = t0() + TimeDelta::days(2);
        c.revoke(later);
        assert_eq!(check(Some(&c), &q(&f), later), Err(ConsentRefusal::Revoked));
        assert_eq!(
            check(Some(&c), &q(&f), later - TimeDelta::seconds(1)),
            Ok(())
        );
        assert!(!c.is_active(later));
    }

    #[test]
    fn a_one_time_consent_is_consumed_and_a_periodic_one_is_not() {
        let f = vec!["name".to_string()];
        let now = t0() + TimeDelta::hours(1);
        let mut once = consent(ConsentKind::OneTime);
        assert_eq!(check(Some(&once), &q(&f), now), Ok(()));
        once.consume(now);
        assert!(matches!(
            check(Some(&once), &q(&f), now),
            Err(ConsentRefusal::Missing(_))
        ));
        let mut many = consent(ConsentKind::Periodic);
        many.consume(now);
        assert_eq!(check(Some(&many), &q(&f), now), Ok(()));
    }
}
