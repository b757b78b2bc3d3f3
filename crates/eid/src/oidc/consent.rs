//! Consent to release register claims to a client (sự đồng ý chia sẻ thông tin): remembered per
//! person and client, covering a set of claims, revocable at any time by the holder.

use chrono::{DateTime, Utc};
use dancu_domain::PersonalId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// A consent on record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    /// Whose data.
    pub person: PersonalId,
    /// To which client.
    pub client_id: String,
    /// Which claims (e.g. `name`, `birthdate`, `address`).
    pub claims: BTreeSet<String>,
    /// When given (or last widened).
    pub granted_at: DateTime<Utc>,
    /// When withdrawn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Consent {
    /// A new consent.
    pub fn grant(
        person: PersonalId,
        client_id: &str,
        claims: impl IntoIterator<Item = String>,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            person,
            client_id: client_id.to_owned(),
            claims: claims.into_iter().collect(),
            granted_at: now,
            revoked_at: None,
        }
    }

    /// Whether it is in force and covers every requested claim.
    pub fn covers<'a>(&self, requested: impl IntoIterator<Item = &'a str>) -> bool {
        self.revoked_at.is_none() && requested.into_iter().all(|c| self.claims.contains(c))
    }

    /// Adds claims the person agreed to now (a new consent screen for the missing ones).
    pub fn widen(&mut self, claims: impl IntoIterator<Item = String>, now: DateTime<Utc>) {
        self.claims.extend(claims);
        self.granted_at = now;
        self.revoked_at = None;
    }

    /// Withdraws it. The caller also revokes the client's refresh-token families for the
    /// person ([`super::grants::RevokedBy::Session`]).
    pub fn revoke(&mut self, now: DateTime<Utc>) {
        self.revoked_at.get_or_insert(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn covers_widen_revoke() {
        let t = Utc.with_ymd_and_hms(2025, 9, 1, 3, 0, 0).unwrap();
        let mut c = Consent::grant(
            PersonalId::parse("001090000001").unwrap(),
            "bank",
            ["name".to_owned(), "birthdate".to_owned()],
            t,
        );
        assert!(c.covers(["name"]));
        assert!(!c.covers(["name", "address"]));
        c.widen(["address".to_owned()], t);
        assert!(c.covers(["name", "address"]));
        c.revoke(t);
        assert!(!c.covers(["name"]));
        assert!(!c.covers([]), "a withdrawn consent covers nothing");
    }
}
