//! [`DocStore`] on PostgreSQL: many nodes write at once, so every check is part of the write.
//!
//! * A creation is `INSERT … ON CONFLICT DO NOTHING`: of racing creators exactly one inserts (the
//!   others wait for its commit and then insert nothing), and nothing aborts the transaction.
//! * A replacement or deletion names the version it read in its `WHERE`; a concurrent writer of
//!   the same row waits for the row lock and then re-checks the version, so the loser matches no
//!   row and gets [`StoreError::Conflict`].
//! * [`DocStore::commit_docs`] touches documents in `(kind, key)` order (writes to one document
//!   keep their given order), so two groups of writes cannot deadlock on each other's rows.
//! * `remember_once` is one upsert whose update only takes over an expired row: one statement,
//!   atomic across connections.

use crate::docs::{Doc, DocStore, DocWrite, UsageRecord, doc_name, prefix_end};
use crate::postgres::{PgConn, PgStore, pg, prepared};
use crate::{Result, StoreError};
use ::postgres::{Row, Statement, Transaction};
use chrono::{DateTime, Utc};
use std::collections::HashMap;

const GET_DOC: &str = "SELECT version, json, expires_at FROM docs WHERE kind = $1 AND key = $2";
const LIST_DOCS: &str = "SELECT key, version, json, expires_at FROM docs
     WHERE kind = $1 AND key >= $2 AND key <= $3 ORDER BY key LIMIT $4";
const CREATE_DOC: &str = "INSERT INTO docs (kind, key, version, json, expires_at)
     VALUES ($1, $2, 1, $3, $4) ON CONFLICT DO NOTHING";
const UPDATE_DOC: &str = "UPDATE docs SET version = version + 1, json = $3, expires_at = $4
     WHERE kind = $1 AND key = $2 AND version = $5";
const DELETE_DOC: &str = "DELETE FROM docs WHERE kind = $1 AND key = $2 AND version = $3";
const DOC_VERSION: &str = "SELECT version FROM docs WHERE kind = $1 AND key = $2";
const INSERT_USAGE: &str = "INSERT INTO usage_log (subject, at, json) VALUES ($1, $2, $3)";
/// Many usage entries in one statement; seq follows the arrays' order.
const INSERT_USAGE_MANY: &str = "INSERT INTO usage_log (subject, at, json)
     SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[])";
const PURGE_DOCS: &str = "DELETE FROM docs WHERE expires_at <= $1";
const PURGE_SEEN: &str = "DELETE FROM seen_once WHERE expires_at <= $1";
const REMEMBER_ONCE: &str = "INSERT INTO seen_once (kind, key, expires_at) VALUES ($1, $2, $3)
     ON CONFLICT (kind, key) DO UPDATE SET expires_at = excluded.expires_at
     WHERE seen_once.expires_at <= $4";
const SELECT_USAGE: &str = "SELECT at, json FROM usage_log
     WHERE subject = $1 AND ($2::timestamptz IS NULL OR at >= $2)
       AND ($3::timestamptz IS NULL OR at < $3)
     ORDER BY at DESC, seq DESC LIMIT $4";
const PURGE_USAGE: &str = "DELETE FROM usage_log WHERE at < $1";

fn version(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| StoreError::Backend(format!("version {v} out of range")))
}

fn decode_doc(r: &Row, first: usize) -> Doc {
    let v: i64 = r.get(first);
    Doc {
        version: v as u64,
        json: r.get(first + 1),
        expires_at: r.get(first + 2),
    }
}

fn conflict(
    statements: &mut HashMap<&'static str, Statement>,
    tx: &mut Transaction<'_>,
    kind: &str,
    key: &str,
    expected: u64,
) -> Result<StoreError> {
    let stmt = prepared(statements, tx, DOC_VERSION)?;
    let actual: Option<i64> = tx
        .query_opt(&stmt, &[&kind, &key])
        .map_err(pg)?
        .map(|r| r.get(0));
    Ok(StoreError::Conflict {
        stream: doc_name(kind, key),
        expected,
        actual: actual.unwrap_or(0) as u64,
    })
}

fn apply(
    statements: &mut HashMap<&'static str, Statement>,
    tx: &mut Transaction<'_>,
    w: &DocWrite,
) -> Result<u64> {
    match w {
        DocWrite::Put {
            kind,
            key,
            expected_version: 0,
            json,
            expires_at,
        } => {
            let stmt = prepared(statements, tx, CREATE_DOC)?;
            let n = tx
                .execute(&stmt, &[kind, key, json, expires_at])
                .map_err(pg)?;
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
            let stmt = prepared(statements, tx, UPDATE_DOC)?;
            let n = tx
                .execute(
                    &stmt,
                    &[kind, key, json, expires_at, &version(*expected_version)?],
                )
                .map_err(pg)?;
            if n == 0 {
                return Err(conflict(statements, tx, kind, key, *expected_version)?);
            }
            Ok(expected_version + 1)
        }
        DocWrite::Delete {
            kind,
            key,
            expected_version,
        } => {
            let stmt = prepared(statements, tx, DELETE_DOC)?;
            let n = tx
                .execute(&stmt, &[kind, key, &version(*expected_version)?])
                .map_err(pg)?;
            if n == 0 {
                return Err(conflict(statements, tx, kind, key, *expected_version)?);
            }
            Ok(0)
        }
        DocWrite::Usage { subject, at, json } => {
            let stmt = prepared(statements, tx, INSERT_USAGE)?;
            tx.execute(&stmt, &[subject, at, json]).map_err(pg)?;
            Ok(0)
        }
    }
}

impl DocStore for PgStore {
    fn get(&self, kind: &str, key: &str) -> Result<Option<Doc>> {
        Ok(self
            .query_opt(GET_DOC, &[&kind, &key])?
            .map(|r| decode_doc(&r, 0)))
    }

    fn version(&self, kind: &str, key: &str) -> Result<u64> {
        Ok(self
            .query_opt(DOC_VERSION, &[&kind, &key])?
            .map_or(0, |r| r.get::<_, i64>(0) as u64))
    }

    fn list(&self, kind: &str, key_prefix: &str, limit: u32) -> Result<Vec<(String, Doc)>> {
        let rows = self.query(
            LIST_DOCS,
            &[
                &kind,
                &key_prefix,
                &prefix_end(key_prefix),
                &i64::from(limit),
            ],
        )?;
        Ok(rows.iter().map(|r| (r.get(0), decode_doc(r, 1))).collect())
    }

    fn commit_docs(&self, writes: &[DocWrite]) -> Result<Vec<u64>> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        // Documents in key order (stable, so writes to one document stay in their order), usage
        // entries after them in their order.
        let mut order: Vec<usize> = (0..writes.len()).collect();
        order.sort_by(|&a, &b| match (writes[a].doc_key(), writes[b].doc_key()) {
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        });
        let mut conn = self.conn()?;
        let PgConn { client, statements } = &mut *conn;
        let mut tx = client.transaction().map_err(pg)?;
        let mut out = vec![0; writes.len()];
        for i in order {
            // An error drops `tx`, which rolls everything back.
            out[i] = apply(statements, &mut tx, &writes[i])?;
        }
        tx.commit().map_err(pg)?;
        Ok(out)
    }

    fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64> {
        let mut conn = self.conn()?;
        let PgConn { client, statements } = &mut *conn;
        let mut tx = client.transaction().map_err(pg)?;
        let stmt = prepared(statements, &mut tx, PURGE_DOCS)?;
        let docs = tx.execute(&stmt, &[&now]).map_err(pg)?;
        let stmt = prepared(statements, &mut tx, PURGE_SEEN)?;
        let seen = tx.execute(&stmt, &[&now]).map_err(pg)?;
        tx.commit().map_err(pg)?;
        Ok(docs + seen)
    }

    fn remember_once(
        &self,
        kind: &str,
        key: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<bool> {
        let mut c = self.conn()?;
        let stmt = c.stmt(REMEMBER_ONCE)?;
        let n = c
            .client
            .execute(&stmt, &[&kind, &key, &expires_at, &now])
            .map_err(pg)?;
        Ok(n == 1)
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
        // Rows are taken in key order, so two nodes' batches never wait on each other in a
        // cycle; a key given twice is a replay the second time (its own row is not expired).
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_by(|&a, &b| keys[a].0.cmp(&keys[b].0));
        let mut conn = self.conn()?;
        let PgConn { client, statements } = &mut *conn;
        let mut tx = client.transaction().map_err(pg)?;
        let stmt = prepared(statements, &mut tx, REMEMBER_ONCE)?;
        let mut out = vec![false; keys.len()];
        for i in order {
            let (key, until) = &keys[i];
            let n = tx.execute(&stmt, &[&kind, key, until, &now]).map_err(pg)?;
            out[i] = n == 1;
        }
        tx.commit().map_err(pg)?;
        Ok(out)
    }

    fn usage(
        &self,
        subject: &str,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<UsageRecord>> {
        let rows = self.query(SELECT_USAGE, &[&subject, &since, &until, &i64::from(limit)])?;
        Ok(rows
            .iter()
            .map(|r| UsageRecord {
                at: r.get(0),
                json: r.get(1),
            })
            .collect())
    }

    fn append_usage_many(&self, entries: &[(String, DateTime<Utc>, String)]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let subjects: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        let ats: Vec<DateTime<Utc>> = entries.iter().map(|e| e.1).collect();
        let jsons: Vec<&str> = entries.iter().map(|e| e.2.as_str()).collect();
        let mut c = self.conn()?;
        let stmt = c.stmt(INSERT_USAGE_MANY)?;
        c.client
            .execute(&stmt, &[&subjects, &ats, &jsons])
            .map_err(pg)?;
        Ok(())
    }

    fn purge_usage_before(&self, cutoff: DateTime<Utc>) -> Result<u64> {
        let mut c = self.conn()?;
        let stmt = c.stmt(PURGE_USAGE)?;
        c.client.execute(&stmt, &[&cutoff]).map_err(pg)
    }
}
