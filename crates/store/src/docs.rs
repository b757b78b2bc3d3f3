//! A versioned document store, a one-shot replay guard and an append-only usage log: the
//! persistence of the e-ID service (and of any later use-case crate with small records).
//!
//! The store cannot know the e-ID crate's types (the dependency points the other way), so it keeps
//! each record as an opaque JSON document under a `(kind, key)` pair, e.g. `("account", "<id>")`,
//! `("refresh_family", "<family id>")`, `("par", "<request_uri>")`. What this module owns:
//!
//! * **Optimistic versions.** A document is created at version 1 and every write names the version
//!   it read; a writer that lost a race gets [`StoreError::Conflict`] (or [`StoreError::Exists`]
//!   for a creation) and nothing is written. A deleted document's key can be created again, from
//!   version 1: use keys that are never reused (random IDs) where that matters.
//! * **Atomic groups.** [`DocStore::commit_docs`] writes several documents and usage entries in one
//!   transaction, all or nothing (e.g. rotate a refresh token, revoke a code and record the use).
//! * **Expiry.** A document may carry an instant after which it is worthless.
//!   [`DocStore::get`] and [`DocStore::list`] still return it until [`DocStore::purge_expired`]
//!   deletes it: checking `expires_at` against the injected clock is the caller's decision.
//! * **Replay guard.** [`DocStore::remember_once`] answers `true` only the first time a key is
//!   presented while unexpired, atomically across threads and nodes (client-assertion and DPoP
//!   `jti` values).
//! * **Usage log.** A per-subject, time-ordered, append-only log ([`DocStore::append_usage`]) read
//!   newest first, purged by age ([`DocStore::purge_usage_before`]) for the five-year retention.
//!
//! It holds no e-ID rule: what a document means, when it expires and who may read it belong to
//! `dancu-eid` and its callers. Time is always an argument: the store never reads the clock.

use crate::{Result, Store};
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// A stored document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doc {
    /// Its version: 1 when created, one more at every write.
    pub version: u64,
    /// The document, as the caller wrote it.
    pub json: String,
    /// When it stops being worth anything, if ever.
    pub expires_at: Option<DateTime<Utc>>,
}

/// One write of [`DocStore::commit_docs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocWrite {
    /// Creates (`expected_version` 0) or replaces (the version read) a document.
    Put {
        /// Kind of record, e.g. `account`.
        kind: String,
        /// Key within the kind.
        key: String,
        /// 0 to create; otherwise the version the writer read.
        expected_version: u64,
        /// The new document.
        json: String,
        /// Its expiry.
        expires_at: Option<DateTime<Utc>>,
    },
    /// Deletes a document at the version the writer read.
    Delete {
        /// Kind of record.
        kind: String,
        /// Key within the kind.
        key: String,
        /// The version the writer read.
        expected_version: u64,
    },
    /// Appends a usage-log entry (see [`DocStore::append_usage`]).
    Usage {
        /// Whose log.
        subject: String,
        /// When it happened.
        at: DateTime<Utc>,
        /// The entry.
        json: String,
    },
}

impl DocWrite {
    /// The document it touches, for ordering row locks; `None` for a usage entry.
    pub(crate) fn doc_key(&self) -> Option<(&str, &str)> {
        match self {
            Self::Put { kind, key, .. } | Self::Delete { kind, key, .. } => Some((kind, key)),
            Self::Usage { .. } => None,
        }
    }
}

/// One entry of a usage log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRecord {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// The entry, as the caller wrote it.
    pub json: String,
}

/// Name of a document in errors: `kind/key`.
pub(crate) fn doc_name(kind: &str, key: &str) -> String {
    format!("{kind}/{key}")
}

/// The upper end of a prefix range: every key that starts with `prefix` sorts (bytewise) between
/// `prefix` and this, and no other key does. Keys holding U+10FFFF right after the prefix are
/// the only ones missed.
pub(crate) fn prefix_end(prefix: &str) -> String {
    format!("{prefix}\u{10ffff}")
}

/// Versioned documents, one-shot keys and usage logs. Every method is blocking.
pub trait DocStore: Send + Sync + std::fmt::Debug + 'static {
    /// The document stored under `(kind, key)`, expired or not.
    fn get(&self, kind: &str, key: &str) -> Result<Option<Doc>>;

    /// The version of the document under `(kind, key)` (0 when there is none), without reading
    /// it: for a reader that keeps a copy and asks often whether it changed.
    fn version(&self, kind: &str, key: &str) -> Result<u64> {
        Ok(self.get(kind, key)?.map_or(0, |d| d.version))
    }

    /// Creates (`expected_version` 0) or replaces a document and returns its new version.
    /// Fails with [`StoreError::Exists`](crate::StoreError::Exists) when creating a document that
    /// exists, and with [`StoreError::Conflict`](crate::StoreError::Conflict) when the document is
    /// not at `expected_version` (`actual` 0 when it does not exist).
    fn put(
        &self,
        kind: &str,
        key: &str,
        expected_version: u64,
        json: &str,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<u64> {
        let v = self.commit_docs(&[DocWrite::Put {
            kind: kind.to_owned(),
            key: key.to_owned(),
            expected_version,
            json: json.to_owned(),
            expires_at,
        }])?;
        Ok(v.first().copied().unwrap_or(0))
    }

    /// Deletes a document at the version the writer read; `Conflict` otherwise (`actual` 0 when
    /// it is gone already).
    fn delete(&self, kind: &str, key: &str, expected_version: u64) -> Result<()> {
        self.commit_docs(&[DocWrite::Delete {
            kind: kind.to_owned(),
            key: key.to_owned(),
            expected_version,
        }])
        .map(|_| ())
    }

    /// Documents of a kind whose key starts with `key_prefix`, in key order (bytewise), at most
    /// `limit`, expired or not.
    fn list(&self, kind: &str, key_prefix: &str, limit: u32) -> Result<Vec<(String, Doc)>>;

    /// Applies every write in one transaction, in order (several writes to one document chain
    /// their versions), or none of them if any fails. Returns, per write, the new version of a
    /// put and 0 for a delete or a usage entry.
    fn commit_docs(&self, writes: &[DocWrite]) -> Result<Vec<u64>>;

    /// Deletes the documents and one-shot keys whose expiry is at or before `now`; returns how
    /// many rows went.
    fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64>;

    /// Remembers `(kind, key)` until `expires_at`. Returns `true` if it was not already
    /// remembered with an expiry after `now` (the first use), `false` for a replay. Of any number
    /// of concurrent calls with the same key, exactly one gets `true`.
    fn remember_once(
        &self,
        kind: &str,
        key: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<bool>;

    /// [`Self::remember_once`] for several keys of one kind, `(key, expires_at)`, in one
    /// transaction (one commit for all); answers in order. A key given twice is a replay the
    /// second time. Backends without a batch form do one call per key.
    fn remember_many(
        &self,
        kind: &str,
        keys: &[(String, DateTime<Utc>)],
        now: DateTime<Utc>,
    ) -> Result<Vec<bool>> {
        keys.iter()
            .map(|(key, until)| self.remember_once(kind, key, now, *until))
            .collect()
    }

    /// Appends an entry to a subject's usage log.
    fn append_usage(&self, subject: &str, at: DateTime<Utc>, json: &str) -> Result<()> {
        self.commit_docs(&[DocWrite::Usage {
            subject: subject.to_owned(),
            at,
            json: json.to_owned(),
        }])
        .map(|_| ())
    }

    /// Appends many entries (subject, time, entry) in one transaction, in their order: all or
    /// none.
    fn append_usage_many(&self, entries: &[(String, DateTime<Utc>, String)]) -> Result<()> {
        let writes: Vec<DocWrite> = entries
            .iter()
            .map(|(subject, at, json)| DocWrite::Usage {
                subject: subject.clone(),
                at: *at,
                json: json.clone(),
            })
            .collect();
        self.commit_docs(&writes).map(|_| ())
    }

    /// A subject's entries with `since <= at < until` (either bound may be open), newest first
    /// (entries at the same instant: last appended first), at most `limit`.
    fn usage(
        &self,
        subject: &str,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<UsageRecord>>;

    /// Deletes every subject's entries from before `cutoff` (retention); returns how many went.
    fn purge_usage_before(&self, cutoff: DateTime<Utc>) -> Result<u64>;
}

/// Opens the store a URL names (as [`crate::open`]) and gives it as both the register store and
/// the document store, sharing one set of connections.
pub fn open_with_docs(url_or_path: &str) -> Result<(Arc<dyn Store>, Arc<dyn DocStore>)> {
    if url_or_path.starts_with("postgres://") || url_or_path.starts_with("postgresql://") {
        let s = Arc::new(crate::postgres::PgStore::open(url_or_path)?);
        Ok((s.clone(), s))
    } else {
        let s = Arc::new(crate::sqlite::SqliteStore::open(std::path::Path::new(
            url_or_path,
        ))?);
        Ok((s.clone(), s))
    }
}
