//! One exchange as the log keeps it: metadata only, never the data that was exchanged, and its
//! canonical byte form (the exact bytes that are hashed and stored).
//!
//! The encoding is strict so that one record has exactly one byte form: big-endian integers,
//! strings as a `u16` length plus UTF-8, flags as `0`/`1`, no trailing bytes. Decoding refuses
//! anything else.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// Largest encoded record accepted, in bytes (the frame's length prefix is checked against it
/// before anything is allocated).
pub const MAX_RECORD_BYTES: usize = 16 * 1024;
/// Longest text field, in bytes.
pub const MAX_TEXT_BYTES: usize = 1024;
/// Most information fields one record may name.
pub const MAX_FIELDS: usize = 256;

const RECORD_VERSION: u8 = 1;

/// How an exchange ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", content = "code", rename_all = "snake_case")]
pub enum ExchangeResult {
    /// Data or an answer was given.
    Served,
    /// The hub refused the call; the refusal's stable code.
    Refused(String),
    /// The call failed for another reason (stable error code).
    Failed(String),
}

/// The metadata of one exchange (one call of a service for one person).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When the hub decided (UTC, millisecond precision is kept).
    pub time: DateTime<Utc>,
    /// Member organisation that called.
    pub caller_org: String,
    /// The member's client system (subsystem).
    pub subsystem: String,
    /// Officer or operator on whose behalf the call was made, when given.
    pub end_user: Option<String>,
    /// Service code, e.g. `attribute_match`.
    pub service: String,
    /// Personal ID concerned, when the call named one.
    pub person: Option<String>,
    /// Information fields exploited (names only, never values).
    pub fields: Vec<String>,
    /// Purpose code.
    pub purpose: String,
    /// Case or dossier reference the call serves.
    pub case_ref: Option<String>,
    /// Outcome.
    pub result: ExchangeResult,
    /// For a covert (law-enforcement) access: the day until which the citizen may not see it.
    pub covert_until: Option<NaiveDate>,
}

/// A record as it sits in the log: its position plus its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Position in the whole log, from 0, gap-free.
    pub seq: u64,
    /// The exchange.
    pub record: AuditRecord,
}

/// Why bytes are not a canonical record, or a record cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The bytes end before the record does.
    #[error("record ends early")]
    Truncated,
    /// Bytes left after the last field.
    #[error("{0} unexpected bytes after the record")]
    Trailing(usize),
    /// An encoding version this build does not know.
    #[error("unknown record version {0}")]
    Version(u8),
    /// A text that is not UTF-8.
    #[error("text is not UTF-8")]
    Utf8,
    /// A flag or tag byte outside its range.
    #[error("bad tag byte {0}")]
    Tag(u8),
    /// A time or date outside the representable range.
    #[error("time out of range")]
    Time,
    /// A text, field list or whole record over its bound.
    #[error("{0} is longer than allowed")]
    TooLong(&'static str),
}

struct Out<'a>(&'a mut Vec<u8>);

impl Out<'_> {
    fn text(&mut self, what: &'static str, s: &str) -> Result<(), RecordError> {
        if s.len() > MAX_TEXT_BYTES {
            return Err(RecordError::TooLong(what));
        }
        // Bounded by MAX_TEXT_BYTES above, so it fits in u16.
        self.0.extend_from_slice(&(s.len() as u16).to_be_bytes());
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
    fn opt_text(&mut self, what: &'static str, s: Option<&str>) -> Result<(), RecordError> {
        match s {
            None => self.0.push(0),
            Some(s) => {
                self.0.push(1);
                self.text(what, s)?;
            }
        }
        Ok(())
    }
}

impl LogEntry {
    /// Appends the canonical bytes of this entry to `buf`.
    pub fn encode_into(&self, buf: &mut Vec<u8>) -> Result<(), RecordError> {
        encode_entry(self.seq, &self.record, buf)
    }

    /// The canonical bytes of this entry.
    pub fn encode(&self) -> Result<Vec<u8>, RecordError> {
        let mut v = Vec::with_capacity(256);
        self.encode_into(&mut v)?;
        Ok(v)
    }
}

/// Appends the canonical bytes of the entry (`seq`, `r`) to `buf`; on error `buf` is left as it
/// was.
pub fn encode_entry(seq: u64, r: &AuditRecord, buf: &mut Vec<u8>) -> Result<(), RecordError> {
    let start = buf.len();
    let res = encode_fields(seq, r, buf);
    if res.is_err() {
        buf.truncate(start);
    }
    res?;
    if buf.len() - start > MAX_RECORD_BYTES {
        buf.truncate(start);
        return Err(RecordError::TooLong("record"));
    }
    Ok(())
}

fn encode_fields(seq: u64, r: &AuditRecord, buf: &mut Vec<u8>) -> Result<(), RecordError> {
    buf.push(RECORD_VERSION);
    buf.extend_from_slice(&seq.to_be_bytes());
    buf.extend_from_slice(&r.time.timestamp_millis().to_be_bytes());
    let mut o = Out(buf);
    o.text("caller_org", &r.caller_org)?;
    o.text("subsystem", &r.subsystem)?;
    o.opt_text("end_user", r.end_user.as_deref())?;
    o.text("service", &r.service)?;
    o.opt_text("person", r.person.as_deref())?;
    if r.fields.len() > MAX_FIELDS {
        return Err(RecordError::TooLong("fields"));
    }
    o.0.extend_from_slice(&(r.fields.len() as u16).to_be_bytes());
    for f in &r.fields {
        o.text("field", f)?;
    }
    o.text("purpose", &r.purpose)?;
    o.opt_text("case_ref", r.case_ref.as_deref())?;
    match &r.result {
        ExchangeResult::Served => o.0.push(0),
        ExchangeResult::Refused(c) => {
            o.0.push(1);
            o.text("result", c)?;
        }
        ExchangeResult::Failed(c) => {
            o.0.push(2);
            o.text("result", c)?;
        }
    }
    match r.covert_until {
        None => o.0.push(0),
        Some(d) => {
            o.0.push(1);
            o.0.extend_from_slice(&d.to_epoch_days().to_be_bytes());
        }
    }
    Ok(())
}

impl LogEntry {
    /// Parses canonical bytes; refuses any other form of the same content.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        if bytes.len() > MAX_RECORD_BYTES {
            return Err(RecordError::TooLong("record"));
        }
        let mut i = In(bytes);
        let v = i.u8()?;
        if v != RECORD_VERSION {
            return Err(RecordError::Version(v));
        }
        let seq = i.u64()?;
        let millis = i.u64()? as i64;
        let time = DateTime::<Utc>::from_timestamp_millis(millis).ok_or(RecordError::Time)?;
        let caller_org = i.text()?;
        let subsystem = i.text()?;
        let end_user = i.opt_text()?;
        let service = i.text()?;
        let person = i.opt_text()?;
        let n = i.u16()? as usize;
        if n > MAX_FIELDS {
            return Err(RecordError::TooLong("fields"));
        }
        let mut fields = Vec::with_capacity(n);
        for _ in 0..n {
            fields.push(i.text()?);
        }
        let purpose = i.text()?;
        let case_ref = i.opt_text()?;
        let result = match i.u8()? {
            0 => ExchangeResult::Served,
            1 => ExchangeResult::Refused(i.text()?),
            2 => ExchangeResult::Failed(i.text()?),
            t => return Err(RecordError::Tag(t)),
        };
        let covert_until = match i.u8()? {
            0 => None,
            1 => {
                let days = i.u32()? as i32;
                Some(NaiveDate::from_epoch_days(days).ok_or(RecordError::Time)?)
            }
            t => return Err(RecordError::Tag(t)),
        };
        if !i.0.is_empty() {
            return Err(RecordError::Trailing(i.0.len()));
        }
        Ok(LogEntry {
            seq,
            record: AuditRecord {
                time,
                caller_org,
                subsystem,
                end_user,
                service,
                person,
                fields,
                purpose,
                case_ref,
                result,
                covert_until,
            },
        })
    }
}

struct In<'a>(&'a [u8]);

impl In<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], RecordError> {
        if self.0.len() < n {
            return Err(RecordError::Truncated);
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, RecordError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, RecordError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, RecordError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, RecordError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
    fn text(&mut self) -> Result<String, RecordError> {
        let n = self.u16()? as usize;
        if n > MAX_TEXT_BYTES {
            return Err(RecordError::TooLong("text"));
        }
        let b = self.take(n)?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| RecordError::Utf8)
    }
    fn opt_text(&mut self) -> Result<Option<String>, RecordError> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.text().map(Some),
            t => Err(RecordError::Tag(t)),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::TimeZone;

    pub(crate) fn sample(i: u64) -> AuditRecord {
        AuditRecord {
            time: Utc
                .timestamp_millis_opt(1_760_000_000_000 + i as i64 * 1000)
                .unwrap(),
            caller_org: "bank-vcb".into(),
            subsystem: "ekyc".into(),
            end_user: Some(format!("op-{i}")),
            service: "attribute_match".into(),
            person: Some(format!("{:012}", 1_090_000_000 + i)),
            fields: vec!["name".into(), "date_of_birth".into()],
            purpose: "account_opening".into(),
            case_ref: (!i.is_multiple_of(3)).then(|| format!("HS-{i}")),
            result: if i.is_multiple_of(5) {
                ExchangeResult::Refused("consent_missing".into())
            } else {
                ExchangeResult::Served
            },
            covert_until: (i.is_multiple_of(7))
                .then(|| NaiveDate::from_ymd_opt(2030, 1, 1).unwrap()),
        }
    }

    #[test]
    fn round_trips_and_refuses_trailing_bytes() {
        for i in 0..20 {
            let e = LogEntry {
                seq: i,
                record: sample(i),
            };
            let b = e.encode().unwrap();
            assert_eq!(LogEntry::decode(&b).unwrap(), e);
            let mut longer = b.clone();
            longer.push(0);
            assert_eq!(LogEntry::decode(&longer), Err(RecordError::Trailing(1)));
            assert_eq!(
                LogEntry::decode(&b[..b.len() - 1]),
                Err(RecordError::Truncated)
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics_and_what_decodes_re_encodes_identically(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        ) {
            if let Ok(e) = LogEntry::decode(&bytes) {
                proptest::prop_assert_eq!(e.encode().unwrap(), bytes);
            }
        }
    }

    #[test]
    fn oversized_text_is_refused() {
        let mut r = sample(1);
        r.purpose = "x".repeat(MAX_TEXT_BYTES + 1);
        let e = LogEntry { seq: 0, record: r };
        assert_eq!(e.encode(), Err(RecordError::TooLong("purpose")));
    }
}
