//! [`DocStore`] on the embedded backend: writes through the one writer connection (so every
//! write, and every `remember_once`, is serialised in-process), reads from the reader pool.
//! Instants are RFC 3339 text with microseconds ([`crate::sqlite::ts`]), which sorts as time.

use crate::docs::{Doc, DocStore, DocWrite, UsageRecord, doc_name, prefix_end};
use crate::sqlite::{SqliteStore, db, ts};
use crate::{Result, StoreError};
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

fn parse_ts(s: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Backend(format!("bad timestamp {s}: {e}")))
}

fn version(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| StoreError::Backend(format!("version {v} out of range")))
}

type DocRow = (i64, String, Option<String>);

fn doc_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DocRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
}

fn decode_doc((version, json, expires_at): DocRow) -> Result<Doc> {
    Ok(Doc {
        version: version as u64,
        json,
        expires_at: expires_at.as_deref().map(parse_ts).transpose()?,
    })
}

/// The version a document is at (0 if absent), for a conflict's `actual`.
fn current_version(tx: &rusqlite::Transaction<'_>, kind: &str, key: &str) -> Result<u64> {
    let v: Option<i64> = tx
        .prepare_cached("SELECT version FROM docs WHERE kind = ?1 AND key = ?2")
        .map_err(db)?
        .query_row([kind, key], |r| r.get(0))
        .optional()
        .map_err(db)?;
    Ok(v.unwrap_or(0) as u64)
}

fn conflict(tx: &rusqlite::Transaction<'_>, kind: &str, key: &str, expected: u64) -> StoreError {
    match current_version(tx, kind, key) {
        Ok(actual) => StoreError::Conflict {
            stream: doc_name(kind, key),
            expected,
            actual,
        },
        Err(e) => e,
    }
}

fn apply(tx: &rusqlite::Transaction<'_>, w: &DocWrite) -> Result<u64> {
    match w {
        DocWrite::Put {
            kind,
            key,
            expected_version: 0,
            json,
            expires_at,
        } => {
            let n = tx
                .prepare_cached(
                    "INSERT INTO docs (kind, key, version, json, expires_at) VALUES (?1, ?2, 1, ?3, ?4)
                     ON CONFLICT DO NOTHING",
                )
                .map_err(db)?
                .execute(params![kind, key, json, expires_at.as_ref().map(ts)])
                .map_err(db)?;
            if n == 0 {
                return Err(StoreError::Exists(doc_name(kind, key)));
            }
            Ok(1)
        }
        DocWrite::Put {
            kind,
            key,
            expected_version,
            json,
            expires_at,
        } => {
            let n = tx
                .prepare_cached(
                    "UPDATE docs SET version = version + 1, json = ?3, expires_at = ?4
                     WHERE kind = ?1 AND key = ?2 AND version = ?5",
                )
                .map_err(db)?
                .execute(params![
                    kind,
                    key,
                    json,
                    expires_at.as_ref().map(ts),
                    version(*expected_version)?
                ])
                .map_err(db)?;
            if n == 0 {
                return Err(conflict(tx, kind, key, *expected_version));
            }
            Ok(expected_version + 1)
        }
        DocWrite::Delete {
            kind,
            key,
            expected_version,
        } => {
            let n = tx
                .prepare_cached("DELETE FROM docs WHERE kind = ?1 AND key = ?2 AND version = ?3")
                .map_err(db)?
                .execute(params![kind, key, version(*expected_version)?])
                .map_err(db)?;
            if n == 0 {
                return Err(conflict(tx, kind, key, *expected_version));
            }
            Ok(0)
        }
        DocWrite::Usage { subject, at, json } => {
            tx.prepare_cached("INSERT INTO usage_log (subject, at, json) VALUES (?1, ?2, ?3)")
                .map_err(db)?
                .execute(params![subject, ts(at), json])
                .map_err(db)?;
            Ok(0)
        }
    }
}

impl DocStore for SqliteStore {
    fn get(&self, kind: &str, key: &str) -> Result<Option<Doc>> {
        let c = self.reader()?;
        let row = c
            .prepare_cached(
                "SELECT version, json, expires_at FROM docs WHERE kind = ?1 AND key = ?2",
            )
            .map_err(db)?
            .query_row([kind, key], doc_row)
            .optional()
            .map_err(db)?;
        row.map(decode_doc).transpose()
    }

    fn version(&self, kind: &str, key: &str) -> Result<u64> {
        let c = self.reader()?;
        let v: Option<i64> = c
            .prepare_cached("SELECT version FROM docs WHERE kind = ?1 AND key = ?2")
            .map_err(db)?
            .query_row([kind, key], |r| r.get(0))
            .optional()
            .map_err(db)?;
        Ok(v.map_or(0, |v| v as u64))
    }

    fn list(&self, kind: &str, key_prefix: &str, limit: u32) -> Result<Vec<(String, Doc)>> {
        let c = self.reader()?;
        let mut stmt = c
            .prepare_cached(
                "SELECT key, version, json, expires_at FROM docs
                 WHERE kind = ?1 AND key >= ?2 AND key <= ?3 ORDER BY key LIMIT ?4",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map(
                params![kind, key_prefix, prefix_end(key_prefix), limit],
                |r| Ok((r.get::<_, String>(0)?, (r.get(1)?, r.get(2)?, r.get(3)?))),
            )
            .map_err(db)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(db)?;
        rows.into_iter()
            .map(|(key, row)| Ok((key, decode_doc(row)?)))
            .collect()
    }

    fn commit_docs(&self, writes: &[DocWrite]) -> Result<Vec<u64>> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        self.write(|tx| writes.iter().map(|w| apply(tx, w)).collect())
    }

    fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64> {
        let now = ts(&now);
        self.write(|tx| {
            let docs = tx
                .prepare_cached("DELETE FROM docs WHERE expires_at <= ?1")
                .map_err(db)?
                .execute([&now])
                .map_err(db)?;
            let seen = tx
                .prepare_cached("DELETE FROM seen_once WHERE expires_at <= ?1")
                .map_err(db)?
                .execute([&now])
                .map_err(db)?;
            Ok((docs + seen) as u64)
        })
    }

    fn remember_once(
        &self,
        kind: &str,
        key: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<bool> {
        self.write(|tx| {
            // A row whose expiry has passed counts as never seen: it is taken over.
            let n = tx
                .prepare_cached(
                    "INSERT INTO seen_once (kind, key, expires_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (kind, key) DO UPDATE SET expires_at = excluded.expires_at
                     WHERE seen_once.expires_at <= ?4",
                )
                .map_err(db)?
                .execute(params![kind, key, ts(&expires_at), ts(&now)])
                .map_err(db)?;
            Ok(n == 1)
        })
    }

    fn remember_many(
        &self,
        kind: &str,
        keys: &[(String, DateTime<Utc>)],
        now: DateTime<Utc>,
    ) -> Result<Vec<bool>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let now = ts(&now);
        self.write(|tx| {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO seen_once (kind, key, expires_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (kind, key) DO UPDATE SET expires_at = excluded.expires_at
                     WHERE seen_once.expires_at <= ?4",
                )
                .map_err(db)?;
            keys.iter()
                .map(|(key, until)| {
                    let n = stmt
                        .execute(params![kind, key, ts(until), now])
                        .map_err(db)?;
                    Ok(n == 1)
                })
                .collect()
        })
    }

    fn usage(
        &self,
        subject: &str,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<UsageRecord>> {
        let c = self.reader()?;
        let since = since.map(|t| ts(&t)).unwrap_or_default();
        // Every stored instant starts with a digit, so it sorts below "A".
        let until = until.map(|t| ts(&t)).unwrap_or_else(|| "A".to_owned());
        let mut stmt = c
            .prepare_cached(
                "SELECT at, json FROM usage_log WHERE subject = ?1 AND at >= ?2 AND at < ?3
                 ORDER BY at DESC, seq DESC LIMIT ?4",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map(params![subject, since, until, limit], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(db)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(db)?;
        rows.into_iter()
            .map(|(at, json)| {
                Ok(UsageRecord {
                    at: parse_ts(&at)?,
                    json,
                })
            })
            .collect()
    }

    fn purge_usage_before(&self, cutoff: DateTime<Utc>) -> Result<u64> {
        let cutoff = ts(&cutoff);
        self.write(|tx| {
            let n = tx
                .prepare_cached("DELETE FROM usage_log WHERE at < ?1")
                .map_err(db)?
                .execute([&cutoff])
                .map_err(db)?;
            Ok(n as u64)
        })
    }
}
