//! Quotas shared by every node of the hub (hạn mức dùng chung): each node lets calls through
//! against a lease of units taken from one count per right key and period in the document
//! store, so several nodes on one PostgreSQL database together never pass a quota, and a
//! restart hands out nothing twice (the count is in the database, not in a node).
//!
//! A node takes a lease when the units it holds are spent: a thousandth of the limit, at least
//! one and at most [`MAX_LEASE`], by a versioned write that retries when another node wrote
//! first. Units a node holds when it stops are not given back, so a quota can end a period
//! slightly under-used (at most one lease per node and restart), never over.
//!
//! Rate limits are divided between the live nodes: a token bucket lives in each node's
//! memory, and each of N nodes holds 1/N of a right's rate and burst (never less than one
//! call), so together they let through about the rate however a load balancer spreads the
//! calls, and a subsystem whose calls all reach one node gets 1/N of it. Each node over a
//! shared database says it is alive every second ([`heartbeat`]); a node silent for
//! [`ALIVE_FOR`] no longer counts.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use dancu_exchange::rights::AccessRight;
use dancu_exchange::rights::{Limits, Quota, QuotaPeriod, right_for};
use dancu_store::StoreError;
use dancu_store::docs::DocStore;

/// Document kind of the shared counts; the key is `<limits key>/<first day of the period>`.
pub const QUOTA_KIND: &str = "hub_quota";

/// Document kind of the nodes' heartbeats; the key is the node's name.
pub const NODE_ALIVE_KIND: &str = "hub_node_alive";

/// How long a node counts as alive after its last heartbeat.
pub const ALIVE_FOR: TimeDelta = TimeDelta::seconds(10);

/// Records that `node` is alive at `now` and counts the nodes alive (this one included).
pub fn heartbeat(docs: &dyn DocStore, node: &str, now: DateTime<Utc>) -> Result<u32, StoreError> {
    /// A heartbeat document.
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Beat {
        at: DateTime<Utc>,
    }
    let json = serde_json::to_string(&Beat { at: now })
        .map_err(|e| StoreError::Backend(format!("encoding a heartbeat: {e}")))?;
    let version = docs.version(NODE_ALIVE_KIND, node)?;
    match docs.put(
        NODE_ALIVE_KIND,
        node,
        version,
        &json,
        Some(now + TimeDelta::days(1)),
    ) {
        // Only this node writes its heartbeat; a lost race is another process under the same
        // name, which has said the same thing.
        Ok(_) | Err(StoreError::Conflict { .. } | StoreError::Exists(_)) => {}
        Err(e) => return Err(e),
    }
    let alive = docs
        .list(NODE_ALIVE_KIND, "", 10_000)?
        .iter()
        .filter(|(name, doc)| {
            name == node
                || serde_json::from_str::<Beat>(&doc.json).is_ok_and(|b| b.at > now - ALIVE_FOR)
        })
        .count();
    Ok(u32::try_from(alive).unwrap_or(u32::MAX).max(1))
}

/// Most units one lease takes.
pub const MAX_LEASE: u64 = 1000;

/// Write attempts before a lease is given up for this call (every attempt lost to another
/// node's write, which has then taken its own lease).
const ATTEMPTS: usize = 32;

/// Units a lease takes under a limit of `limit`.
pub fn lease_size(limit: u64) -> u64 {
    (limit / 1000).clamp(1, MAX_LEASE)
}

fn doc_key(key: &str, period: NaiveDate) -> String {
    format!("{key}/{period}")
}

fn claimed_of(json: &str) -> u64 {
    serde_json::from_str::<serde_json::Value>(json)
        .ok()
        .and_then(|v| v["claimed"].as_u64())
        .unwrap_or(0)
}

/// The units of the period starting on `period` that every node together has taken.
pub fn claimed(docs: &dyn DocStore, key: &str, period: NaiveDate) -> Result<u64, StoreError> {
    Ok(docs
        .get(QUOTA_KIND, &doc_key(key, period))?
        .map_or(0, |d| claimed_of(&d.json)))
}

/// Takes a lease of the quota `quota` for the period starting on `period` from the shared
/// count under `key`: the units taken (0 once the period's limit is all taken).
pub fn take_lease(
    docs: &dyn DocStore,
    key: &str,
    period: NaiveDate,
    quota: Quota,
) -> Result<u64, StoreError> {
    let name = doc_key(key, period);
    // Kept a month past the period's end, for whoever looks at the usage.
    let ends = match quota.period {
        QuotaPeriod::Day => period + TimeDelta::days(1),
        QuotaPeriod::Month => period
            .checked_add_months(chrono::Months::new(1))
            .unwrap_or(period),
    };
    let expires = ends
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc() + TimeDelta::days(31));
    for _ in 0..ATTEMPTS {
        let (claimed, version) = docs
            .get(QUOTA_KIND, &name)?
            .map_or((0, 0), |d| (claimed_of(&d.json), d.version));
        let take = lease_size(quota.limit).min(quota.limit.saturating_sub(claimed));
        if take == 0 {
            return Ok(0);
        }
        let json = serde_json::json!({"claimed": claimed + take, "limit": quota.limit}).to_string();
        match docs.put(QUOTA_KIND, &name, version, &json, expires) {
            Ok(_) => return Ok(take),
            Err(StoreError::Conflict { .. } | StoreError::Exists(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(0)
}

/// Makes sure `limits` holds units of the quota of the right a call of `org/subsystem` to
/// `service` for `purpose` asking `fields` falls under, taking a lease when what it holds is
/// spent. Nothing to do for a call without such a right or quota.
#[allow(clippy::too_many_arguments)]
pub fn ensure_lease(
    docs: &dyn DocStore,
    rights: &[AccessRight],
    key: &str,
    org: &str,
    subsystem: &str,
    service: &str,
    purpose: &str,
    fields: &[String],
    limits: &mut Limits,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let Some(right) = right_for(rights, org, subsystem, service, purpose, fields) else {
        return Ok(());
    };
    let Some(quota) = right.quota else {
        return Ok(());
    };
    match limits.quota_room(right, now) {
        Some((period, 0)) => {
            let n = take_lease(docs, key, period, quota)?;
            limits.extend_quota(right, now, period, n);
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn leases_taken_at_once_from_several_threads_add_up_to_the_limit_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let (_, docs) =
            dancu_store::docs::open_with_docs(dir.path().join("db.sqlite3").to_str().unwrap())
                .unwrap();
        let quota = Quota {
            limit: 5_003,
            period: QuotaPeriod::Month,
        };
        assert_eq!(lease_size(quota.limit), 5);
        let period = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let docs: Arc<dyn DocStore> = docs.clone();
                std::thread::spawn(move || {
                    let mut got = 0;
                    loop {
                        match take_lease(&*docs, "bank-a/ekyc/verify_attributes/kyc", period, quota)
                            .unwrap()
                        {
                            0 => return got,
                            n => got += n,
                        }
                    }
                })
            })
            .collect();
        let total: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(total, 5_003);
        assert_eq!(
            claimed(&*docs, "bank-a/ekyc/verify_attributes/kyc", period).unwrap(),
            5_003
        );
        // Another period, another count.
        let april = NaiveDate::from_ymd_opt(2026, 4, 1).unwrap();
        assert_eq!(
            take_lease(&*docs, "bank-a/ekyc/verify_attributes/kyc", april, quota).unwrap(),
            5
        );
        assert_eq!(lease_size(1), 1);
        assert_eq!(lease_size(10_000_000), MAX_LEASE);
    }
}
