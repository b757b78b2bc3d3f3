//! Correction requests (yêu cầu điều chỉnh thông tin): a citizen asks for a field of their
//! record to be corrected; the request waits as a task for the officers whose jurisdiction
//! covers the person, who either apply it (through the ordinary correction command, with its
//! reason and legal basis) or reject it with a reason; the citizen sees the status.
//!
//! Requests are documents of the [`DocStore`] (SQLite or PostgreSQL), three kinds written
//! together in one transaction:
//!
//! * `correction_request` / `<id>`: the request itself, its status and resolution;
//! * `correction_request_open` / `<province>/<commune>/<id>`: the open-task queue, keyed so
//!   that a commune's or a province's tasks are one prefix; deleted when the request is closed;
//! * `correction_request_person` / `<person>/<id>`: the citizen's own list.
//!
//! Request IDs start with the submission time, so every list is in time order.

use crate::{Registry, RegistryError, Result};
use chrono::{DateTime, Utc};
use dancu_domain::PersonalId;
use dancu_domain::admin::{AdminUnits, Scheme};
use dancu_domain::event::CorrectableField;
use dancu_domain::officer::{Jurisdiction, Officer};
use dancu_store::docs::{DocStore, DocWrite};
use rand::RngExt;
use serde::{Deserialize, Serialize};

const KIND: &str = "correction_request";
const QUEUE: &str = "correction_request_open";
const MINE: &str = "correction_request_person";
/// Most open requests one person may have at a time.
const MAX_OPEN: usize = 5;

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    /// Waiting for an officer.
    Open,
    /// An officer corrected the record.
    Applied,
    /// An officer rejected it, with a reason.
    Rejected,
}

/// A citizen's request to correct a field of their record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorrectionRequest {
    /// Time-ordered ID.
    pub id: String,
    /// Whose record.
    pub person: PersonalId,
    /// The person's home commune when the request was made (decides whose queue it joins).
    pub commune: Option<String>,
    /// Which field.
    pub field: CorrectableField,
    /// The value the citizen proposes, as they wrote it.
    pub proposed: String,
    /// Why.
    pub explanation: String,
    /// When it was made.
    pub submitted_at: DateTime<Utc>,
    /// Its status.
    pub status: RequestStatus,
    /// The officer who closed it.
    #[serde(default)]
    pub resolved_by: Option<String>,
    /// When it was closed.
    #[serde(default)]
    pub resolved_at: Option<DateTime<Utc>>,
    /// The rejection's reason, or what was applied.
    #[serde(default)]
    pub resolution: Option<String>,
}

fn store_err(e: dancu_store::StoreError) -> RegistryError {
    RegistryError::from(e)
}

fn decode(json: &str) -> Result<CorrectionRequest> {
    serde_json::from_str(json)
        .map_err(|e| RegistryError::Store(dancu_store::StoreError::Backend(e.to_string())))
}

fn encode(r: &CorrectionRequest) -> Result<String> {
    serde_json::to_string(r)
        .map_err(|e| RegistryError::Store(dancu_store::StoreError::Backend(e.to_string())))
}

fn province_of(commune: &str) -> Option<&'static str> {
    AdminUnits::get()
        .commune(Scheme::Y2025, commune)
        .map(|c| c.province_code)
}

fn queue_key(commune: Option<&str>, id: &str) -> String {
    match commune.and_then(|c| province_of(c).map(|p| (p, c))) {
        Some((p, c)) => format!("{p}/{c}/{id}"),
        None => format!("--/-----/{id}"),
    }
}

fn not_found(id: &str) -> RegistryError {
    RegistryError::NotFound {
        what: format!("correction request {id}"),
    }
}

fn bounded(s: &str, max: usize, code: &'static str, vi: &str, en: &str) -> Result<String> {
    let t = s.trim();
    if t.is_empty() || t.chars().count() > max || t.chars().any(char::is_control) {
        return Err(RegistryError::invalid_msg(
            code,
            format!("{vi} (1–{max} ký tự)"),
            format!("{en} (1 to {max} characters)"),
        ));
    }
    Ok(t.to_owned())
}

impl Registry {
    fn load_request(&self, docs: &dyn DocStore, id: &str) -> Result<(CorrectionRequest, u64)> {
        if id.is_empty()
            || id.len() > 64
            || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(not_found(id));
        }
        let d = docs
            .get(KIND, id)
            .map_err(store_err)?
            .ok_or_else(|| not_found(id))?;
        Ok((decode(&d.json)?, d.version))
    }

    /// A citizen asks for a field of their own record to be corrected.
    pub fn submit_correction_request(
        &self,
        docs: &dyn DocStore,
        holder: &PersonalId,
        field: CorrectableField,
        proposed: &str,
        explanation: &str,
    ) -> Result<CorrectionRequest> {
        let proposed = bounded(
            proposed,
            200,
            "request_value_length",
            "Hãy ghi giá trị đề nghị",
            "Write the proposed value",
        )?;
        let explanation = bounded(
            explanation,
            1000,
            "request_explanation_length",
            "Hãy giải thích lý do đề nghị điều chỉnh",
            "Explain why the record should be corrected",
        )?;
        let p = self.load(holder)?;
        let open = self
            .my_correction_requests(docs, holder)?
            .iter()
            .filter(|r| r.status == RequestStatus::Open)
            .count();
        if open >= MAX_OPEN {
            return Err(RegistryError::invalid_msg(
                "too_many_open_requests",
                format!("Bạn đang có {open} yêu cầu chưa được giải quyết; hãy chờ kết quả"),
                format!("You have {open} requests still open; wait for them to be handled"),
            ));
        }
        let now = self.clock.now();
        let serial: u32 = self
            .rng
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .random_range(0..u32::MAX);
        let id = format!("{}-{serial:08x}", now.format("%Y%m%d%H%M%S"));
        let commune = p.home_commune();
        let r = CorrectionRequest {
            id: id.clone(),
            person: *holder,
            commune: commune.clone(),
            field,
            proposed,
            explanation,
            submitted_at: now,
            status: RequestStatus::Open,
            resolved_by: None,
            resolved_at: None,
            resolution: None,
        };
        let pointer = serde_json::json!({"id": id}).to_string();
        docs.commit_docs(&[
            DocWrite::Put {
                kind: KIND.into(),
                key: id.clone(),
                expected_version: 0,
                json: encode(&r)?,
                expires_at: None,
            },
            DocWrite::Put {
                kind: QUEUE.into(),
                key: queue_key(commune.as_deref(), &id),
                expected_version: 0,
                json: pointer.clone(),
                expires_at: None,
            },
            DocWrite::Put {
                kind: MINE.into(),
                key: format!("{holder}/{id}"),
                expected_version: 0,
                json: pointer,
                expires_at: None,
            },
        ])
        .map_err(store_err)?;
        Ok(r)
    }

    /// A citizen's own requests, newest first.
    pub fn my_correction_requests(
        &self,
        docs: &dyn DocStore,
        holder: &PersonalId,
    ) -> Result<Vec<CorrectionRequest>> {
        let mut out = Vec::new();
        for (key, _) in docs
            .list(MINE, &format!("{holder}/"), 200)
            .map_err(store_err)?
        {
            let id = key.rsplit('/').next().unwrap_or_default();
            if let Some(d) = docs.get(KIND, id).map_err(store_err)? {
                out.push(decode(&d.json)?);
            }
        }
        out.reverse();
        Ok(out)
    }

    /// The open requests of people in the officer's jurisdiction, oldest first. Listing them
    /// shows who asked for what, so each listed person's read is logged with the purpose.
    pub fn correction_tasks(
        &self,
        docs: &dyn DocStore,
        officer: &Officer,
        purpose: &str,
    ) -> Result<Vec<CorrectionRequest>> {
        let purpose = Self::check_purpose(purpose)?;
        let prefix = match &officer.jurisdiction {
            Jurisdiction::National => String::new(),
            Jurisdiction::Province(p) => format!("{p}/"),
            Jurisdiction::Commune(c) => match province_of(c) {
                Some(p) => format!("{p}/{c}/"),
                None => return Ok(Vec::new()),
            },
        };
        let mut out = Vec::new();
        for (key, _) in docs.list(QUEUE, &prefix, 500).map_err(store_err)? {
            let id = key.rsplit('/').next().unwrap_or_default();
            if let Some(d) = docs.get(KIND, id).map_err(store_err)? {
                let r = decode(&d.json)?;
                if r.status == RequestStatus::Open {
                    out.push(r);
                }
            }
        }
        self.log_reads(
            officer,
            &purpose,
            "correction_tasks",
            out.iter().map(|r| r.person),
        )?;
        Ok(out)
    }

    /// One request, for an officer whose jurisdiction covers the person now; the read is
    /// logged with the purpose.
    pub fn correction_request(
        &self,
        docs: &dyn DocStore,
        officer: &Officer,
        purpose: &str,
        id: &str,
    ) -> Result<CorrectionRequest> {
        let (r, _) = self.load_request(docs, id)?;
        // Checks the jurisdiction over the person as they are now, and logs the read.
        self.person(officer, purpose, &r.person)?;
        Ok(r)
    }

    /// Closes an open request: applied (after the correction was recorded) or rejected with a
    /// reason. A request closed already is refused.
    pub fn resolve_correction_request(
        &self,
        docs: &dyn DocStore,
        officer: &Officer,
        id: &str,
        applied: bool,
        note: &str,
    ) -> Result<CorrectionRequest> {
        self.require_write(officer)?;
        let (mut r, version) = self.load_request(docs, id)?;
        let p = self.load(&r.person)?;
        self.require_covers(officer, p.home_commune().as_deref(), "The person")?;
        if r.status != RequestStatus::Open {
            return Err(RegistryError::invalid_msg(
                "request_closed",
                "Yêu cầu này đã được giải quyết",
                "This request was handled already",
            ));
        }
        let note = if applied {
            note.trim().to_owned()
        } else {
            bounded(
                note,
                500,
                "rejection_reason_required",
                "Hãy ghi lý do từ chối",
                "Give the reason for the rejection",
            )?
        };
        r.status = if applied {
            RequestStatus::Applied
        } else {
            RequestStatus::Rejected
        };
        r.resolved_by = Some(officer.id.clone());
        r.resolved_at = Some(self.clock.now());
        r.resolution = (!note.is_empty()).then_some(note);
        let qkey = queue_key(r.commune.as_deref(), &r.id);
        let mut writes = vec![DocWrite::Put {
            kind: KIND.into(),
            key: r.id.clone(),
            expected_version: version,
            json: encode(&r)?,
            expires_at: None,
        }];
        if let Some(q) = docs.get(QUEUE, &qkey).map_err(store_err)? {
            writes.push(DocWrite::Delete {
                kind: QUEUE.into(),
                key: qkey,
                expected_version: q.version,
            });
        }
        docs.commit_docs(&writes).map_err(store_err)?;
        Ok(r)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use dancu_domain::clock::FixedClock;
    use std::sync::Arc;

    #[test]
    fn queue_keys_nest_commune_in_province() {
        let k = queue_key(Some("00004"), "x");
        let p = province_of("00004").unwrap();
        assert_eq!(k, format!("{p}/00004/x"));
        assert_eq!(queue_key(None, "x"), "--/-----/x");
    }

    #[test]
    fn a_request_needs_a_value_and_a_person_in_the_register() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.sqlite3");
        let (store, docs) = dancu_store::docs::open_with_docs(path.to_str().unwrap()).unwrap();
        let clock = Arc::new(FixedClock::new(
            chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 3, 1, 3, 0, 0).unwrap(),
        ));
        let reg = Registry::new(store, clock, Some(1));
        let who = PersonalId::parse("001090000001").unwrap();
        // Not in the register: refused, nothing stored.
        assert!(matches!(
            reg.submit_correction_request(
                docs.as_ref(),
                &who,
                CorrectableField::Religion,
                "Phật giáo",
                "sai"
            ),
            Err(RegistryError::NotFound { .. })
        ));
        assert!(
            reg.my_correction_requests(docs.as_ref(), &who)
                .unwrap()
                .is_empty()
        );
        let empty = reg.submit_correction_request(
            docs.as_ref(),
            &who,
            CorrectableField::Religion,
            " ",
            "sai",
        );
        assert!(matches!(
            empty,
            Err(RegistryError::Invalid {
                code: "request_value_length",
                ..
            })
        ));
    }
}
