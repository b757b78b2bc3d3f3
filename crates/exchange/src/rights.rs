//! Access rights (quyền khai thác) and the decision whether one call may go ahead.
//!
//! A right belongs to one subsystem of a member organisation and opens one service, for one
//! purpose, on a set of fields, under a legal basis. It may require the person's consent, the
//! end user and the case reference on every call, mark accesses covert for an embargo period,
//! and cap calls by a rate and a per-period quota. [`decide`] applies all of that to one request
//! and answers with the fields granted or a [`Refusal`] with a stable code.
//!
//! Limits are pure state machines ([`TokenBucket`], [`QuotaCounter`]) that the caller keeps per
//! subsystem and passes in; they are only charged when everything else allowed the call.

use crate::consent::{self, Consent, ConsentQuestion, ConsentRefusal};
use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc};
use dancu_domain::Problem;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Calendar used for quota periods and fee dates: Vietnam time (UTC+7, no daylight saving).
pub fn vietnam_date(t: DateTime<Utc>) -> NaiveDate {
    t.checked_add_signed(TimeDelta::hours(7))
        .unwrap_or(t)
        .date_naive()
}

/// Period of a quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuotaPeriod {
    /// A calendar day, Vietnam time.
    Day,
    /// A calendar month, Vietnam time.
    Month,
}

/// Calls allowed per period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    /// Most calls per period.
    pub limit: u64,
    /// The period.
    pub period: QuotaPeriod,
}

/// A sustained rate with a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    /// Calls per second, sustained.
    pub per_second: u32,
    /// Calls allowed at once after a quiet spell.
    pub burst: u32,
}

/// One access right.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRight {
    /// Identifier.
    pub id: String,
    /// Member organisation holding it.
    pub org: String,
    /// The subsystem (client system) it is granted to.
    pub subsystem: String,
    /// Service it opens.
    pub service: String,
    /// Fields it allows.
    pub fields: BTreeSet<String>,
    /// Purpose code it allows.
    pub purpose: String,
    /// Legal basis (căn cứ pháp lý), e.g. the article of the law or decree.
    pub legal_basis: String,
    /// The person's consent is required.
    pub requires_consent: bool,
    /// Every call must name the officer or operator.
    pub requires_end_user: bool,
    /// Every call must name the case or dossier it serves.
    pub requires_case_reference: bool,
    /// Accesses are covert (law enforcement) and hidden from the person for this many days.
    pub covert_embargo_days: Option<u32>,
    /// Calls per period.
    pub quota: Option<Quota>,
    /// Rate limit.
    pub rate: Option<Rate>,
}

/// One call as the hub sees it after authenticating the subsystem.
#[derive(Debug, Clone, Copy)]
pub struct AccessRequest<'a> {
    /// Calling organisation.
    pub org: &'a str,
    /// Calling subsystem.
    pub subsystem: &'a str,
    /// Service asked for.
    pub service: &'a str,
    /// Fields asked for.
    pub fields: &'a [String],
    /// Purpose declared.
    pub purpose: &'a str,
    /// Person concerned.
    pub person: &'a str,
    /// Officer or operator.
    pub end_user: Option<&'a str>,
    /// Case or dossier reference.
    pub case_ref: Option<&'a str>,
    /// The consent the caller relies on, looked up by the caller.
    pub consent: Option<&'a Consent>,
    /// Expiry of the client key that authenticated the call, when it has one.
    pub client_key_not_after: Option<DateTime<Utc>>,
    /// Now.
    pub now: DateTime<Utc>,
}

/// An allowed call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The right that allowed it.
    pub right_id: String,
    /// Fields granted (all those asked for, in the order asked).
    pub fields: Vec<String>,
    /// The right's legal basis, for the log and the person's tracker.
    pub legal_basis: String,
    /// For a covert right: hidden from the person until this day.
    pub covert_until: Option<NaiveDate>,
    /// A one-time consent this call uses up: the caller must consume it.
    pub consumes_consent: Option<String>,
}

/// Why a call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No right for this subsystem and service.
    #[error("subsystem {subsystem} has no right to service {service}")]
    NoRight {
        /// Subsystem.
        subsystem: String,
        /// Service.
        service: String,
    },
    /// Rights exist for the service, but not for this purpose.
    #[error("purpose {0} is not allowed for this service")]
    WrongPurpose(String),
    /// A field outside the right.
    #[error("field {0} is not allowed by the right")]
    FieldNotAllowed(String),
    /// The right needs consent and none covers the call.
    #[error("the person's consent is required and none covers this call ({0})")]
    ConsentMissing(&'static str),
    /// The consent was revoked.
    #[error("the person revoked the consent")]
    ConsentRevoked,
    /// The consent expired.
    #[error("the consent has expired")]
    ConsentExpired,
    /// The period's quota is used up.
    #[error("quota of {limit} calls used up until {resets_on}")]
    QuotaExceeded {
        /// The quota.
        limit: u64,
        /// First day of the next period.
        resets_on: NaiveDate,
    },
    /// Too many calls at once.
    #[error("rate limit reached; retry after {retry_after_ms} ms")]
    RateLimited {
        /// When a call would be allowed again.
        retry_after_ms: u64,
    },
    /// The right requires the end user.
    #[error("the call must name the officer or operator (end user)")]
    MissingEndUser,
    /// The right requires the case reference.
    #[error("the call must name the case or dossier reference")]
    MissingCaseReference,
    /// The client key used has expired.
    #[error("the client key expired at {0}")]
    ClientKeyExpired(DateTime<Utc>),
}

impl Problem for Refusal {
    fn code(&self) -> &'static str {
        match self {
            Self::NoRight { .. } => "no_right",
            Self::WrongPurpose(_) => "wrong_purpose",
            Self::FieldNotAllowed(_) => "field_not_allowed",
            Self::ConsentMissing(_) => "consent_missing",
            Self::ConsentRevoked => "consent_revoked",
            Self::ConsentExpired => "consent_expired",
            Self::QuotaExceeded { .. } => "quota_exceeded",
            Self::RateLimited { .. } => "rate_limited",
            Self::MissingEndUser => "missing_end_user",
            Self::MissingCaseReference => "missing_case_reference",
            Self::ClientKeyExpired(_) => "client_key_expired",
        }
    }
    fn message_vi(&self) -> String {
        match self {
            Self::NoRight { subsystem, service } => {
                format!("Hệ thống {subsystem} không có quyền khai thác dịch vụ {service}")
            }
            Self::WrongPurpose(p) => {
                format!("Mục đích {p} không được phép đối với dịch vụ này")
            }
            Self::FieldNotAllowed(f) => {
                format!("Trường thông tin {f} nằm ngoài phạm vi quyền khai thác")
            }
            Self::ConsentMissing(_) => {
                "Cần có sự đồng ý của công dân nhưng không có sự đồng ý hợp lệ cho yêu cầu này"
                    .to_owned()
            }
            Self::ConsentRevoked => "Công dân đã rút lại sự đồng ý".to_owned(),
            Self::ConsentExpired => "Sự đồng ý của công dân đã hết hạn".to_owned(),
            Self::QuotaExceeded { limit, resets_on } => format!(
                "Đã dùng hết hạn mức {limit} lượt; hạn mức được đặt lại từ ngày {}",
                resets_on.format("%d/%m/%Y")
            ),
            Self::RateLimited { retry_after_ms } => {
                format!("Vượt quá tốc độ cho phép; thử lại sau {retry_after_ms} ms")
            }
            Self::MissingEndUser => {
                "Yêu cầu phải ghi rõ cán bộ hoặc người vận hành thực hiện".to_owned()
            }
            Self::MissingCaseReference => "Yêu cầu phải ghi rõ số hồ sơ hoặc vụ việc".to_owned(),
            Self::ClientKeyExpired(t) => format!("Khóa của hệ thống đã hết hạn lúc {t}"),
        }
    }
}

impl From<ConsentRefusal> for Refusal {
    fn from(r: ConsentRefusal) -> Self {
        match r {
            ConsentRefusal::Missing(why) => Self::ConsentMissing(why),
            ConsentRefusal::Revoked => Self::ConsentRevoked,
            ConsentRefusal::Expired => Self::ConsentExpired,
        }
    }
}

/// A token bucket, counted in thousandths of a call so refill is exact integer arithmetic.
///
/// A bucket may hold a share of a rate: one of `share` nodes that divide the rate between
/// them ([`Self::share`]) refills at `per_second / share` and holds at most `burst / share`
/// calls, but never less than one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBucket {
    rate: Rate,
    milli_tokens: u64,
    at: Option<DateTime<Utc>>,
    /// How many holders share the rate (1: this one alone).
    share: u64,
    /// Refill not yet credited: thousandths of a call times `share`.
    carry: u64,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: Rate) -> Self {
        Self {
            rate,
            milli_tokens: u64::from(rate.burst) * 1000,
            at: None,
            share: 1,
            carry: 0,
        }
    }

    fn cap(&self) -> u64 {
        (u64::from(self.rate.burst) * 1000 / self.share).max(1000)
    }

    /// Makes this bucket one of `holders` sharing the rate (at least 1). What it holds is
    /// scaled with its capacity, so a change in the number of holders hands out no new burst.
    pub fn share(&mut self, holders: u32) {
        let holders = u64::from(holders.max(1));
        if holders != self.share {
            let old_cap = self.cap();
            self.share = holders;
            self.carry = 0;
            self.milli_tokens = self.milli_tokens * self.cap() / old_cap;
        }
    }

    fn refill(&mut self, now: DateTime<Utc>) {
        if let Some(at) = self.at {
            // A clock that goes back adds nothing.
            let ms = (now - at).num_milliseconds().max(0) as u64;
            let owed = ms
                .saturating_mul(u64::from(self.rate.per_second))
                .saturating_add(self.carry);
            self.carry = owed % self.share;
            self.milli_tokens = self
                .milli_tokens
                .saturating_add(owed / self.share)
                .min(self.cap());
        }
        if self.at.is_none_or(|at| now > at) {
            self.at = Some(now);
        }
    }

    /// Whether a call would be allowed now; `Err(ms)` says how long until one is.
    pub fn check(&mut self, now: DateTime<Utc>) -> Result<(), u64> {
        self.refill(now);
        if self.milli_tokens >= 1000 {
            Ok(())
        } else if self.rate.per_second == 0 {
            Err(u64::MAX)
        } else {
            Err(((1000 - self.milli_tokens) * self.share).div_ceil(u64::from(self.rate.per_second)))
        }
    }

    /// Takes the token of a call served at `at` (replayed from the log), even from an empty
    /// bucket: it was served.
    pub fn take_past(&mut self, at: DateTime<Utc>) {
        self.refill(at);
        self.milli_tokens = self.milli_tokens.saturating_sub(1000);
    }

    /// Takes one call if allowed.
    pub fn take(&mut self, now: DateTime<Utc>) -> Result<(), u64> {
        self.check(now)?;
        self.milli_tokens -= 1000;
        Ok(())
    }
}

/// Calls counted per calendar period (Vietnam time).
///
/// A counter on its own lets `limit` calls through per period. A leased counter (one of
/// several nodes sharing the quota) lets through only the units leased to it for the
/// current period ([`Self::extend`]): the nodes take leases from a shared count, so together
/// they never pass the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaCounter {
    quota: Quota,
    period_start: Option<NaiveDate>,
    used: u64,
    /// Units leased for the current period, when leased.
    leased: Option<u64>,
}

impl QuotaCounter {
    /// A counter with nothing used.
    pub fn new(quota: Quota) -> Self {
        Self {
            quota,
            period_start: None,
            used: 0,
            leased: None,
        }
    }

    /// A counter that starts each period with nothing leased.
    pub fn leased(quota: Quota) -> Self {
        Self {
            leased: Some(0),
            ..Self::new(quota)
        }
    }

    /// The most calls this counter lets through in the current period.
    fn ceiling(&self) -> u64 {
        self.leased
            .map_or(self.quota.limit, |l| l.min(self.quota.limit))
    }

    /// Calls this counter may still let through in the period of `now`, and the period's
    /// first day.
    pub fn room(&mut self, now: DateTime<Utc>) -> (NaiveDate, u64) {
        let start = self.roll(now);
        (start, self.ceiling().saturating_sub(self.used))
    }

    /// Adds `n` units leased for the period starting on `period` (ignored if that period is
    /// no longer the current one, or the counter is not leased).
    pub fn extend(&mut self, now: DateTime<Utc>, period: NaiveDate, n: u64) {
        if self.roll(now) == period
            && let Some(l) = self.leased.as_mut()
        {
            *l = l.saturating_add(n);
        }
    }

    fn start_of(&self, day: NaiveDate) -> NaiveDate {
        match self.quota.period {
            QuotaPeriod::Day => day,
            QuotaPeriod::Month => day.with_day(1).unwrap_or(day),
        }
    }

    fn next_start(&self, start: NaiveDate) -> NaiveDate {
        match self.quota.period {
            QuotaPeriod::Day => start + TimeDelta::days(1),
            QuotaPeriod::Month => start
                .checked_add_months(chrono::Months::new(1))
                .unwrap_or(start),
        }
    }

    fn roll(&mut self, now: DateTime<Utc>) -> NaiveDate {
        let start = self.start_of(vietnam_date(now));
        if self.period_start != Some(start) {
            // A clock going back into an earlier period starts that period afresh; the
            // counter never lets more than `limit` through in one period it is in.
            self.period_start = Some(start);
            self.used = 0;
            if self.leased.is_some() {
                self.leased = Some(0);
            }
        }
        start
    }

    /// Calls used in the current period.
    pub fn used(&mut self, now: DateTime<Utc>) -> u64 {
        self.roll(now);
        self.used
    }

    /// Whether `n` more calls fit in the period of `now`; `Err(first day of next period)`.
    pub fn check(&mut self, now: DateTime<Utc>, n: u64) -> Result<(), NaiveDate> {
        let start = self.roll(now);
        if self.used.saturating_add(n) > self.ceiling() {
            Err(self.next_start(start))
        } else {
            Ok(())
        }
    }

    /// Counts `n` calls if they fit.
    pub fn take(&mut self, now: DateTime<Utc>, n: u64) -> Result<(), NaiveDate> {
        self.check(now, n)?;
        self.used += n;
        Ok(())
    }

    /// Counts a call made earlier, at `at` (rebuilding the counter from the exchange log after
    /// a restart): it counts when it fell in the period of `now`, even past the limit, since
    /// it was served.
    pub fn count_past(&mut self, at: DateTime<Utc>, now: DateTime<Utc>) {
        let start = self.roll(now);
        if self.start_of(vietnam_date(at)) == start {
            self.used = self.used.saturating_add(1);
        }
    }
}

/// The limit state of one subsystem under one right; the caller keeps it between calls.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    bucket: Option<TokenBucket>,
    quota: Option<QuotaCounter>,
    /// Quotas are leased from a shared count (see [`QuotaCounter`]).
    leased: bool,
    /// How many nodes share the rate (0 or 1: this one alone); see [`TokenBucket::share`].
    rate_share: u32,
}

impl Limits {
    /// Limits whose quota is leased from a count shared with other nodes.
    pub fn leased() -> Self {
        Self {
            leased: true,
            ..Self::default()
        }
    }

    /// Divides rates between `nodes` nodes from now on: each holds `1/nodes` of a right's
    /// rate and burst (never less than one call), so that together they let through about
    /// the rate however the calls are spread, and never much more.
    pub fn share_rate(&mut self, nodes: u32) {
        self.rate_share = nodes.max(1);
        if let Some(b) = &mut self.bucket {
            b.share(self.rate_share);
        }
    }

    /// Calls `right`'s quota still lets this holder make in the period of `now`, with the
    /// period's first day; `None` when the right has no quota.
    pub fn quota_room(
        &mut self,
        right: &AccessRight,
        now: DateTime<Utc>,
    ) -> Option<(NaiveDate, u64)> {
        self.for_right(right).1.map(|q| q.room(now))
    }

    /// Adds `n` units of `right`'s quota leased for the period starting on `period`.
    pub fn extend_quota(
        &mut self,
        right: &AccessRight,
        now: DateTime<Utc>,
        period: NaiveDate,
        n: u64,
    ) {
        if let Some(q) = self.for_right(right).1 {
            q.extend(now, period, n);
        }
    }

    /// Counts against `right`'s quota a call it allowed at `at`, as read back from the exchange
    /// log, so that a restart does not hand out the period's quota again.
    /// Calls are handed over oldest first; each also takes its token from the rate bucket as
    /// at its own time, so that a restart does not hand out a fresh burst either.
    /// A leased quota is not counted here: its count is the shared one the leases come from.
    pub fn count_past(&mut self, right: &AccessRight, at: DateTime<Utc>, now: DateTime<Utc>) {
        let leased = self.leased;
        let (bucket, quota) = self.for_right(right);
        if let Some(b) = bucket {
            b.take_past(at);
        }
        if let Some(q) = quota.filter(|_| !leased) {
            q.count_past(at, now);
        }
    }

    /// Calls counted against `right`'s quota in the period of `now` (0 without a quota).
    pub fn quota_used(&mut self, right: &AccessRight, now: DateTime<Utc>) -> u64 {
        self.for_right(right).1.map_or(0, |q| q.used(now))
    }

    fn for_right(
        &mut self,
        right: &AccessRight,
    ) -> (Option<&mut TokenBucket>, Option<&mut QuotaCounter>) {
        if let Some(r) = right.rate
            && self.bucket.as_ref().is_none_or(|b| b.rate != r)
        {
            let mut bucket = TokenBucket::new(r);
            bucket.share(self.rate_share);
            self.bucket = Some(bucket);
        }
        if let Some(q) = right.quota
            && self.quota.as_ref().is_none_or(|c| c.quota != q)
        {
            self.quota = Some(if self.leased {
                QuotaCounter::leased(q)
            } else {
                QuotaCounter::new(q)
            });
        }
        (
            right.rate.and(self.bucket.as_mut()),
            right.quota.and(self.quota.as_mut()),
        )
    }
}

/// The right [`decide`] applies to a call of `org/subsystem` to `service` for `purpose` asking
/// `fields` (for replaying logged calls against the quotas).
pub fn right_for<'a>(
    rights: &'a [AccessRight],
    org: &str,
    subsystem: &str,
    service: &str,
    purpose: &str,
    fields: &[String],
) -> Option<&'a AccessRight> {
    let mut candidates = rights.iter().filter(|r| {
        r.org == org && r.subsystem == subsystem && r.service == service && r.purpose == purpose
    });
    candidates
        .clone()
        .find(|r| fields.iter().all(|f| r.fields.contains(f)))
        .or_else(|| candidates.next())
}

fn blank(s: Option<&str>) -> bool {
    s.is_none_or(|s| s.trim().is_empty())
}

/// Decides one call against the rights held (any subsystem's: only the caller's are used).
///
/// Order of checks, so that the answer names the most basic problem: client key, right for the
/// service, purpose, end user, case reference, fields, consent, rate, quota. Limits are charged
/// only when the call is allowed.
pub fn decide(
    rights: &[AccessRight],
    req: &AccessRequest<'_>,
    limits: &mut Limits,
) -> Result<Grant, Refusal> {
    if let Some(t) = req.client_key_not_after
        && req.now >= t
    {
        return Err(Refusal::ClientKeyExpired(t));
    }
    let for_service = |r: &&AccessRight| {
        r.org == req.org && r.subsystem == req.subsystem && r.service == req.service
    };
    if !rights.iter().any(|r| for_service(&r)) {
        return Err(Refusal::NoRight {
            subsystem: req.subsystem.to_owned(),
            service: req.service.to_owned(),
        });
    }
    let mut candidates = rights
        .iter()
        .filter(for_service)
        .filter(|r| r.purpose == req.purpose);
    // Among several rights for the same purpose, prefer one that covers every field asked.
    let right = candidates
        .clone()
        .find(|r| req.fields.iter().all(|f| r.fields.contains(f)))
        .or_else(|| candidates.next())
        .ok_or_else(|| Refusal::WrongPurpose(req.purpose.to_owned()))?;
    if right.requires_end_user && blank(req.end_user) {
        return Err(Refusal::MissingEndUser);
    }
    if right.requires_case_reference && blank(req.case_ref) {
        return Err(Refusal::MissingCaseReference);
    }
    if let Some(f) = req.fields.iter().find(|f| !right.fields.contains(*f)) {
        return Err(Refusal::FieldNotAllowed(f.clone()));
    }
    let mut consumes_consent = None;
    if right.requires_consent {
        let q = ConsentQuestion {
            person: req.person,
            recipient_org: req.org,
            fields: req.fields,
            purpose: req.purpose,
        };
        consent::check(req.consent, &q, req.now)?;
        consumes_consent = req
            .consent
            .filter(|c| c.kind == consent::ConsentKind::OneTime)
            .map(|c| c.id.clone());
    }
    let (bucket, quota) = limits.for_right(right);
    let mut bucket = bucket;
    let mut quota = quota;
    if let Some(b) = bucket.as_deref_mut() {
        b.check(req.now)
            .map_err(|retry_after_ms| Refusal::RateLimited { retry_after_ms })?;
    }
    if let Some(q) = quota.as_deref_mut() {
        q.check(req.now, 1)
            .map_err(|resets_on| Refusal::QuotaExceeded {
                limit: right.quota.map_or(0, |q| q.limit),
                resets_on,
            })?;
    }
    // Both checks passed at this same `now`, so both takes succeed.
    if let Some(b) = bucket {
        let _ = b.take(req.now);
    }
    if let Some(q) = quota {
        let _ = q.take(req.now, 1);
    }
    Ok(Grant {
        right_id: right.id.clone(),
        fields: req.fields.to_vec(),
        legal_basis: right.legal_basis.clone(),
        covert_until: right
            .covert_embargo_days
            .map(|d| vietnam_date(req.now) + TimeDelta::days(i64::from(d))),
        consumes_consent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::ConsentKind;
    use crate::consent::tests::{consent, t0};

    fn right() -> AccessRight {
        AccessRight {
            id: "r-1".into(),
            org: "bank-vcb".into(),
            subsystem: "ekyc".into(),
            service: "data_retrieval".into(),
            fields: ["name", "date_of_birth", "permanent_residence"]
                .map(String::from)
                .into(),
            purpose: "account_opening".into(),
            legal_basis: "Nghị định 13/2023/NĐ-CP".into(),
            requires_consent: true,
            requires_end_user: true,
            requires_case_reference: true,
            covert_embargo_days: None,
            quota: Some(Quota {
                limit: 3,
                period: QuotaPeriod::Month,
            }),
            rate: Some(Rate {
                per_second: 1,
                burst: 2,
            }),
        }
    }

    struct Call {
        fields: Vec<String>,
        purpose: &'static str,
        service: &'static str,
        end_user: Option<&'static str>,
        case_ref: Option<&'static str>,
        consent: Option<Consent>,
        key_until: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    }

    impl Call {
        fn ok() -> Self {
            Self {
                fields: vec!["name".into(), "date_of_birth".into()],
                purpose: "account_opening",
                service: "data_retrieval",
                end_user: Some("op-7"),
                case_ref: Some("HS-2026-001"),
                consent: Some(consent(ConsentKind::Periodic)),
                key_until: None,
                now: t0() + TimeDelta::hours(1),
            }
        }
        fn run(&self, limits: &mut Limits) -> Result<Grant, Refusal> {
            let req = AccessRequest {
                org: "bank-vcb",
                subsystem: "ekyc",
                service: self.service,
                fields: &self.fields,
                purpose: self.purpose,
                person: "001090000001",
                end_user: self.end_user,
                case_ref: self.case_ref,
                consent: self.consent.as_ref(),
                client_key_not_after: self.key_until,
                now: self.now,
            };
            decide(&[right()], &req, limits)
        }
        fn code(&self) -> &'static str {
            match self.run(&mut Limits::default()) {
                Ok(_) => "ok",
                Err(e) => e.code(),
            }
        }
    }

    #[test]
    fn every_refusal_has_its_code() {
        assert_eq!(Call::ok().code(), "ok");
        let c = |f: &dyn Fn(&mut Call)| {
            let mut call = Call::ok();
            f(&mut call);
            call.code()
        };
        assert_eq!(c(&|x| x.service = "cmnd_lookup"), "no_right");
        assert_eq!(c(&|x| x.purpose = "marketing"), "wrong_purpose");
        assert_eq!(
            c(&|x| x.fields.push("religion".into())),
            "field_not_allowed"
        );
        assert_eq!(c(&|x| x.consent = None), "consent_missing");
        assert_eq!(
            c(&|x| x.consent.as_mut().unwrap().revoke(t0())),
            "consent_revoked"
        );
        assert_eq!(
            c(&|x| x.now = t0() + TimeDelta::days(31)),
            "consent_expired"
        );
        assert_eq!(c(&|x| x.end_user = Some("  ")), "missing_end_user");
        assert_eq!(c(&|x| x.case_ref = None), "missing_case_reference");
        assert_eq!(c(&|x| x.key_until = Some(t0())), "client_key_expired");
    }

    #[test]
    fn messages_are_bilingual() {
        let r = Refusal::ConsentRevoked;
        assert!(r.message_vi().contains("rút lại"));
        assert!(r.message_en().contains("revoked"));
    }

    #[test]
    fn rate_then_quota_then_the_next_month() {
        let mut limits = Limits::default();
        let mut call = Call::ok();
        assert!(call.run(&mut limits).is_ok());
        assert!(call.run(&mut limits).is_ok());
        // Burst of two spent in the same instant.
        let e = call.run(&mut limits).unwrap_err();
        assert_eq!(
            e,
            Refusal::RateLimited {
                retry_after_ms: 1000
            }
        );
        call.now += TimeDelta::seconds(1);
        assert!(call.run(&mut limits).is_ok());
        call.now += TimeDelta::seconds(5);
        let e = call.run(&mut limits).unwrap_err();
        assert_eq!(e.code(), "quota_exceeded");
        assert!(e.message_vi().contains("01/04/2026"), "{}", e.message_vi());
        // A refused call charged nothing; the next month starts afresh.
        call.now = Utc.with_ymd_and_hms(2026, 3, 31, 17, 0, 0).unwrap();
        // 17:00 UTC on 31 March is 00:00 on 1 April in Vietnam.
        let mut c2 = Call::ok();
        c2.now = call.now;
        c2.consent.as_mut().unwrap().expires_at = call.now + TimeDelta::days(1);
        assert!(c2.run(&mut limits).is_ok());
    }

    #[test]
    fn a_leased_quota_lets_through_what_was_leased_and_starts_each_period_empty() {
        let r = right();
        let mut limits = Limits::leased();
        let mut call = Call::ok();
        let period = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
        // Nothing leased yet: refused as over quota.
        assert_eq!(limits.quota_room(&r, call.now), Some((period, 0)));
        assert_eq!(call.run(&mut limits).unwrap_err().code(), "quota_exceeded");
        limits.extend_quota(&r, call.now, period, 1);
        assert_eq!(limits.quota_room(&r, call.now), Some((period, 1)));
        assert!(call.run(&mut limits).is_ok());
        call.now += TimeDelta::seconds(5);
        assert_eq!(call.run(&mut limits).unwrap_err().code(), "quota_exceeded");
        // A lease past the limit lets through no more than the limit.
        limits.extend_quota(&r, call.now, period, 10);
        assert_eq!(limits.quota_room(&r, call.now), Some((period, 2)));
        // A lease for a period that has ended is dropped; the new period starts empty.
        let april = Utc.with_ymd_and_hms(2026, 3, 31, 17, 0, 0).unwrap();
        limits.extend_quota(&r, april, period, 5);
        assert_eq!(
            limits.quota_room(&r, april),
            Some((NaiveDate::from_ymd_opt(2026, 4, 1).unwrap(), 0))
        );
    }

    #[test]
    fn calls_read_back_from_the_log_count_against_the_current_period_only() {
        let r = right();
        let rights = [r.clone()];
        let now = t0() + TimeDelta::hours(1);
        let picked = right_for(
            &rights,
            "bank-vcb",
            "ekyc",
            "data_retrieval",
            "account_opening",
            &["name".to_owned()],
        );
        assert_eq!(picked.map(|r| r.id.as_str()), Some("r-1"));
        assert!(right_for(&rights, "bank-vcb", "ekyc", "data_retrieval", "other", &[]).is_none());
        let mut limits = Limits::default();
        // Two calls this month, one in the month before (Vietnam time).
        limits.count_past(&r, now - TimeDelta::minutes(5), now);
        limits.count_past(&r, now - TimeDelta::minutes(4), now);
        limits.count_past(
            &r,
            Utc.with_ymd_and_hms(2026, 2, 28, 16, 59, 0).unwrap(),
            now,
        );
        assert_eq!(limits.quota_used(&r, now), 2);
        let mut call = Call::ok();
        call.now = now;
        assert!(call.run(&mut limits).is_ok());
        call.now += TimeDelta::seconds(10);
        assert_eq!(call.run(&mut limits).unwrap_err().code(), "quota_exceeded");
    }

    #[test]
    fn a_one_time_consent_is_reported_for_consumption() {
        let mut call = Call::ok();
        call.consent = Some(consent(ConsentKind::OneTime));
        let g = call.run(&mut Limits::default()).unwrap();
        assert_eq!(g.consumes_consent.as_deref(), Some("c-1"));
        call.consent.as_mut().unwrap().consume(call.now);
        assert_eq!(call.code(), "consent_missing");
    }

    #[test]
    fn a_covert_right_gives_an_embargo_date() {
        let mut r = right();
        r.covert_embargo_days = Some(365);
        r.requires_consent = false;
        let call = Call::ok();
        let req = AccessRequest {
            org: "bank-vcb",
            subsystem: "ekyc",
            service: "data_retrieval",
            fields: &call.fields,
            purpose: "account_opening",
            person: "001090000001",
            end_user: Some("op"),
            case_ref: Some("c"),
            consent: None,
            client_key_not_after: None,
            now: call.now,
        };
        let g = decide(&[r], &req, &mut Limits::default()).unwrap();
        assert_eq!(g.covert_until, NaiveDate::from_ymd_opt(2027, 3, 1));
    }

    use chrono::TimeZone;

    #[test]
    fn token_bucket_refills_exactly_and_ignores_a_clock_going_back() {
        let mut b = TokenBucket::new(Rate {
            per_second: 4,
            burst: 1,
        });
        let t = t0();
        assert!(b.take(t).is_ok());
        assert_eq!(b.take(t), Err(250));
        assert_eq!(b.take(t + TimeDelta::milliseconds(100)), Err(150));
        assert!(b.take(t + TimeDelta::milliseconds(250)).is_ok());
        assert!(b.take(t - TimeDelta::seconds(10)).is_err());
    }

    #[test]
    fn buckets_sharing_a_rate_let_through_the_rate_together() {
        let rate = Rate {
            per_second: 3,
            burst: 6,
        };
        let t = t0();
        let mut nodes: Vec<TokenBucket> = (0..3)
            .map(|_| {
                let mut b = TokenBucket::new(rate);
                b.share(3);
                b
            })
            .collect();
        // Each holds a third of the burst; over ten seconds of calls every millisecond, the
        // three together let through the burst and 3 a second, whichever node takes them.
        let mut served = 0;
        for ms in 0..10_000 {
            let at = t + TimeDelta::milliseconds(ms);
            served += nodes
                .iter_mut()
                .map(|b| usize::from(b.take(at).is_ok()))
                .sum::<usize>();
        }
        assert_eq!(
            served,
            6 + 3 * 10 - 3,
            "burst, then a call a second per node"
        );
        // One node alone under a share of three waits three times as long for its next call.
        let mut b = TokenBucket::new(rate);
        b.share(3);
        assert!(b.take(t).is_ok() && b.take(t).is_ok());
        assert_eq!(b.take(t), Err(1000));
        // Going back to one node scales what it holds: no fresh burst.
        b.share(1);
        assert_eq!(b.take(t), Err(334));
        // A share never holds less than one call.
        let mut small = TokenBucket::new(Rate {
            per_second: 1,
            burst: 1,
        });
        small.share(4);
        assert!(small.take(t).is_ok());
        assert_eq!(small.take(t), Err(4000));
    }

    #[test]
    fn a_bucket_rebuilt_from_past_calls_is_as_the_live_one_left_it() {
        let rate = Rate {
            per_second: 2,
            burst: 3,
        };
        let t = t0();
        let calls = [0, 100, 200, 900];
        let mut live = TokenBucket::new(rate);
        let mut rebuilt = TokenBucket::new(rate);
        for ms in calls {
            let at = t + TimeDelta::milliseconds(ms);
            assert!(live.take(at).is_ok());
            rebuilt.take_past(at);
        }
        // 3 tokens, less 4 taken, plus 0.95 s at 2 a second: 0.9 of a token, 50 ms short.
        let now = t + TimeDelta::milliseconds(950);
        assert_eq!(live.check(now), Err(50));
        assert_eq!(rebuilt.check(now), Err(50));
        // A call served past an empty bucket (counted from the log) leaves it empty, not less.
        rebuilt.take_past(now);
        assert_eq!(rebuilt.check(now), Err(500));
    }
}
