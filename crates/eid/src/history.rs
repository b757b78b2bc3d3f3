//! The usage history of an e-ID account (lịch sử sử dụng): every authentication, consent and
//! lock, kept five years and shown to the holder. This module defines the entries and their
//! retention; the store appends and purges them.

use crate::account::LockReason;
use crate::oidc::claims::Amr;
use chrono::{DateTime, Datelike, Utc};
use dancu_domain::PersonalId;
use serde::{Deserialize, Serialize};

/// How long entries are kept: five years (Decree 69/2024).
pub const RETENTION_YEARS: i32 = 5;

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum UsageKind {
    /// A login attempt.
    Authentication {
        /// The client the login was for, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
        /// Methods used.
        methods: Vec<Amr>,
        /// Whether it succeeded.
        success: bool,
        /// Throttle key of the source address.
        source: String,
    },
    /// Claims released to a client, or a consent given or withdrawn.
    Consent {
        /// The client.
        client_id: String,
        /// The claims.
        claims: Vec<String>,
        /// `true` for given, `false` for withdrawn.
        given: bool,
    },
    /// A lock set or lifted.
    Lock {
        /// Why.
        reason: LockReason,
        /// `true` for set, `false` for lifted.
        set: bool,
    },
    /// An authenticator was added, replaced or removed (passcode change, TOTP app, passkey).
    Authenticator {
        /// Which kind of authenticator.
        method: Amr,
        /// What was done to it.
        change: AuthenticatorChange,
    },
    /// A guardian acted for the holder.
    GuardianAction {
        /// The guardian.
        guardian: PersonalId,
        /// The client.
        client_id: String,
    },
}

/// What was done to an authenticator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthenticatorChange {
    /// A new one was enrolled.
    Added,
    /// It was replaced by a new secret (a passcode change).
    Replaced,
    /// It was removed.
    Removed,
}

/// One entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageEntry {
    /// Whose account.
    pub person: PersonalId,
    /// When.
    pub at: DateTime<Utc>,
    /// What.
    pub kind: UsageKind,
}

impl UsageEntry {
    /// The first instant the entry may be purged: five years after it, to the day
    /// (29 February counts to 28 February).
    pub fn keep_until(&self) -> DateTime<Utc> {
        let target = self.at.year() + RETENTION_YEARS;
        self.at
            .with_year(target)
            .or_else(|| self.at.with_day(28).and_then(|d| d.with_year(target)))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// Whether the store may purge it at `now`.
    pub fn purgeable(&self, now: DateTime<Utc>) -> bool {
        now >= self.keep_until()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn entry(at: DateTime<Utc>) -> UsageEntry {
        UsageEntry {
            person: PersonalId::parse("001090000001").unwrap(),
            at,
            kind: UsageKind::Lock {
                reason: LockReason::HolderRequest,
                set: true,
            },
        }
    }

    #[test]
    fn kept_five_years() {
        let at = Utc.with_ymd_and_hms(2025, 9, 1, 3, 0, 0).unwrap();
        let e = entry(at);
        assert_eq!(
            e.keep_until(),
            Utc.with_ymd_and_hms(2030, 9, 1, 3, 0, 0).unwrap()
        );
        assert!(!e.purgeable(Utc.with_ymd_and_hms(2030, 8, 31, 23, 0, 0).unwrap()));
        assert!(e.purgeable(Utc.with_ymd_and_hms(2030, 9, 1, 3, 0, 0).unwrap()));
        let leap = entry(Utc.with_ymd_and_hms(2024, 2, 29, 0, 0, 0).unwrap());
        assert_eq!(
            leap.keep_until(),
            Utc.with_ymd_and_hms(2029, 2, 28, 0, 0, 0).unwrap()
        );
    }
}
