//! Enrichment (làm giàu dữ liệu): a sectoral register (health insurance, tax, driving licences,
//! social insurance, immunisation, …) links its own identifiers to personal IDs, with
//! provenance. They are kept beside the register as linked records, one per person, member
//! and kind, and never touch the person's register record. A resubmission replaces the current
//! values and keeps the previous ones in the record's history.
//!
//! Submitting is the `enrich` service and reading is the `linked_records` service; both are
//! decided by the caller's rights (the right's fields are the kinds of identifier) and logged
//! like every exchange (the kinds, never the values). Officers read them through the register
//! API, where the read is access-logged like any read of the person.

use crate::service::{CallMeta, Client, Hub, HubError, parse_id};
use chrono::{DateTime, Utc};
use dancu_store::StoreError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Service code of submitting linked records.
pub const SERVICE_ENRICH: &str = "enrich";
/// Service code of reading linked records.
pub const SERVICE_LINKED_RECORDS: &str = "linked_records";
const LINKED_KIND: &str = "hub_linked";
/// Longest identifier value accepted.
const MAX_VALUE: usize = 256;
/// Most bytes of the extra attributes of one record.
const MAX_ATTRIBUTES: usize = 4096;
/// Most versions kept in a record's history.
const MAX_HISTORY: usize = 100;

/// What a sectoral register submits for one person and one kind of identifier.
#[derive(Debug, Clone, Deserialize)]
pub struct Submission {
    /// Personal ID.
    pub id: String,
    /// Kind of identifier, e.g. `health_insurance_number`, `tax_code`.
    pub kind: String,
    /// The identifier.
    pub value: String,
    /// Details of the submitting register (e.g. a vaccination's date and lot), a JSON object.
    #[serde(default)]
    pub attributes: Option<Value>,
    /// The submitting register's own reference for the record (provenance).
    pub source_ref: String,
}

/// One version of a linked record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkedVersion {
    /// The identifier.
    pub value: String,
    /// Details.
    pub attributes: Option<Value>,
    /// The source register's reference.
    pub source_ref: String,
    /// Officer or operator who submitted it.
    pub submitted_by: Option<String>,
    /// When the hub took it.
    pub submitted_at: DateTime<Utc>,
}

/// A sectoral register's identifier linked to a person, with its history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkedRecord {
    /// Personal ID.
    pub person: String,
    /// Kind of identifier.
    pub kind: String,
    /// Member organisation that holds the identifier (provenance).
    pub source_org: String,
    /// Its subsystem.
    pub source_subsystem: String,
    /// The current version.
    pub current: LinkedVersion,
    /// Earlier versions, oldest first.
    pub history: Vec<LinkedVersion>,
}

fn valid_kind(kind: &str) -> bool {
    (2..=64).contains(&kind.len())
        && kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn key(person: &str, org: &str, kind: &str) -> String {
    format!("{person}/{org}/{kind}")
}

impl Hub {
    /// A sectoral register links (or updates) one of its identifiers to a person.
    pub fn enrich(
        &self,
        client: &Client,
        meta: &CallMeta,
        s: &Submission,
    ) -> Result<LinkedRecord, HubError> {
        let pid = parse_id(&s.id)?;
        let value = s.value.trim();
        if !valid_kind(&s.kind)
            || value.is_empty()
            || value.len() > MAX_VALUE
            || s.source_ref.trim().is_empty()
            || s.source_ref.len() > MAX_VALUE
            || s.attributes
                .as_ref()
                .is_some_and(|a| !a.is_object() || a.to_string().len() > MAX_ATTRIBUTES)
        {
            return Err(HubError::Invalid {
                code: "invalid_linked_record",
                vi: "Bản ghi liên kết cần loại (chữ thường, số, _), giá trị, mã nguồn; thuộc tính là một đối tượng JSON nhỏ".into(),
                en: "A linked record needs a kind (lower case, digits, _), a value and a source reference; attributes must be a small JSON object".into(),
            });
        }
        let fields = vec![s.kind.clone()];
        let (record, _) =
            self.exchange_public(client, meta, SERVICE_ENRICH, Some(&s.id), &fields, || {
                if self
                    .store()
                    .person(&pid)
                    .map_err(HubError::internal)?
                    .is_none()
                {
                    return Err(HubError::PersonNotFound);
                }
                let k = key(&s.id, &client.org, &s.kind);
                let old = self
                    .docs()
                    .get(LINKED_KIND, &k)
                    .map_err(HubError::internal)?;
                let version = LinkedVersion {
                    value: value.to_owned(),
                    attributes: s.attributes.clone(),
                    source_ref: s.source_ref.trim().to_owned(),
                    submitted_by: meta.end_user.clone(),
                    submitted_at: self.now(),
                };
                let (record, expected) = match old {
                    Some(doc) => {
                        let mut r: LinkedRecord =
                            serde_json::from_str(&doc.json).map_err(HubError::internal)?;
                        let previous = std::mem::replace(&mut r.current, version);
                        r.history.push(previous);
                        if r.history.len() > MAX_HISTORY {
                            r.history.remove(0);
                        }
                        r.source_subsystem = client.subsystem.clone();
                        (r, doc.version)
                    }
                    None => (
                        LinkedRecord {
                            person: s.id.clone(),
                            kind: s.kind.clone(),
                            source_org: client.org.clone(),
                            source_subsystem: client.subsystem.clone(),
                            current: version,
                            history: Vec::new(),
                        },
                        0,
                    ),
                };
                let json = serde_json::to_string(&record).map_err(HubError::internal)?;
                match self.docs().put(LINKED_KIND, &k, expected, &json, None) {
                    Ok(_) => Ok(record),
                    Err(StoreError::Conflict { .. } | StoreError::Exists(..)) => {
                        Err(HubError::Invalid {
                            code: "concurrent_update",
                            vi: "Bản ghi vừa được cập nhật bởi yêu cầu khác; vui lòng gửi lại"
                                .into(),
                            en: "The record was just updated by another request; submit again"
                                .into(),
                        })
                    }
                    Err(e) => Err(HubError::internal(e)),
                }
            })?;
        Ok(record)
    }

    /// Every linked record of a person (no rights check: for officers, whose read the
    /// register access-logs, and for callers that decided already).
    pub fn linked_records(&self, person: &str) -> Result<Vec<LinkedRecord>, HubError> {
        parse_id(person)?;
        self.docs()
            .list(LINKED_KIND, &format!("{person}/"), 1000)
            .map_err(HubError::internal)?
            .into_iter()
            .map(|(_, d)| serde_json::from_str(&d.json).map_err(HubError::internal))
            .collect()
    }

    /// A member reads a person's linked records of the kinds its right allows.
    pub fn read_linked_records(
        &self,
        client: &Client,
        meta: &CallMeta,
        id: &str,
        kinds: &[String],
    ) -> Result<Vec<LinkedRecord>, HubError> {
        parse_id(id)?;
        if kinds.is_empty() || !kinds.iter().all(|k| valid_kind(k)) {
            return Err(HubError::Invalid {
                code: "no_fields",
                vi: "Cần nêu các loại mã định danh cần lấy".into(),
                en: "Name the kinds of identifier to read".into(),
            });
        }
        let (records, _) = self.exchange_public(
            client,
            meta,
            SERVICE_LINKED_RECORDS,
            Some(id),
            kinds,
            || {
                Ok(self
                    .linked_records(id)?
                    .into_iter()
                    .filter(|r| kinds.contains(&r.kind))
                    .collect::<Vec<_>>())
            },
        )?;
        Ok(records)
    }
}
