//! Throttling and lockout after failed authentications, as a pure state machine kept per account
//! and per source address (hạn chế đăng nhập sai).
//!
//! After `free_failures` failures each further one makes the next attempt wait, doubling from
//! `base_delay` up to `max_delay`; at `lockout_after` failures the key is locked for
//! `lockout_for`, doubled for each lockout in a row (up to a day). One failure is forgotten per
//! `decay_every` without failures, and a success clears the state. A caller keeps one
//! [`ThrottleState`] per account and one per [`source_key`], checks both before verifying a
//! factor ([`combine`]), and records the outcome in both.
//!
//! The account's throttle lockout is temporary and technical: it is not one of the legal locks of
//! [`crate::account::LockReason`].

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Limits of one throttle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThrottlePolicy {
    /// Failures allowed without delay.
    pub free_failures: u32,
    /// Delay after the first failure past the free ones; doubles with each further failure.
    pub base_delay: Duration,
    /// Longest delay.
    pub max_delay: Duration,
    /// Failures that trigger a lockout.
    pub lockout_after: u32,
    /// Length of the first lockout; doubles for each lockout in a row, up to a day.
    pub lockout_for: Duration,
    /// One failure is forgotten for each such period without a failure.
    pub decay_every: Duration,
}

impl ThrottlePolicy {
    /// For an account: 3 free failures, delays from 1 s to 5 min, lockout for 15 min at 10.
    pub fn per_account() -> Self {
        Self {
            free_failures: 3,
            base_delay: Duration::seconds(1),
            max_delay: Duration::minutes(5),
            lockout_after: 10,
            lockout_for: Duration::minutes(15),
            decay_every: Duration::minutes(15),
        }
    }

    /// For a source address, which many people may share behind carrier NAT: 20 free
    /// failures, delays from 1 s to 1 min, lockout for 10 min at 100.
    pub fn per_source() -> Self {
        Self {
            free_failures: 20,
            base_delay: Duration::seconds(1),
            max_delay: Duration::minutes(1),
            lockout_after: 100,
            lockout_for: Duration::minutes(10),
            decay_every: Duration::minutes(1),
        }
    }
}

/// May an attempt go ahead now?
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", content = "until", rename_all = "snake_case")]
pub enum ThrottleDecision {
    /// Yes.
    Allow,
    /// Not before this instant (back-off).
    RetryAfter(DateTime<Utc>),
    /// Locked out until this instant.
    LockedUntil(DateTime<Utc>),
}

impl ThrottleDecision {
    /// Whether the attempt may go ahead.
    pub fn allowed(self) -> bool {
        self == Self::Allow
    }
}

/// The stricter of two decisions (a lockout beats a back-off; the later instant wins).
pub fn combine(a: ThrottleDecision, b: ThrottleDecision) -> ThrottleDecision {
    use ThrottleDecision::*;
    match (a, b) {
        (LockedUntil(x), LockedUntil(y)) => LockedUntil(x.max(y)),
        (LockedUntil(x), _) | (_, LockedUntil(x)) => LockedUntil(x),
        (RetryAfter(x), RetryAfter(y)) => RetryAfter(x.max(y)),
        (RetryAfter(x), Allow) | (Allow, RetryAfter(x)) => RetryAfter(x),
        (Allow, Allow) => Allow,
    }
}

/// The throttle key of a source address: the whole IPv4 address, or the /64 prefix of an IPv6
/// one (a single subscriber usually holds a whole /64).
pub fn source_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// The failures remembered for one key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThrottleState {
    /// Failures counted (before decay).
    pub failures: u32,
    /// The last failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<DateTime<Utc>>,
    /// Lockouts in a row.
    #[serde(default)]
    pub lockouts: u32,
    /// End of the current lockout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<DateTime<Utc>>,
}

impl ThrottleState {
    /// Failures still counted at `now`, after decay.
    pub fn effective_failures(&self, policy: &ThrottlePolicy, now: DateTime<Utc>) -> u32 {
        let Some(last) = self.last_failure else {
            return 0;
        };
        let decay = policy.decay_every.num_milliseconds().max(1);
        let quiet = (now - last).num_milliseconds().max(0);
        let forgotten = u32::try_from(quiet / decay).unwrap_or(u32::MAX);
        self.failures.saturating_sub(forgotten)
    }

    fn delay_after(policy: &ThrottlePolicy, failures: u32) -> Option<Duration> {
        let over = failures.checked_sub(policy.free_failures)?.checked_sub(1)?;
        let factor = 1i32.checked_shl(over.min(30)).unwrap_or(i32::MAX);
        let delay = policy
            .base_delay
            .checked_mul(factor)
            .unwrap_or(policy.max_delay);
        Some(delay.min(policy.max_delay))
    }

    /// Whether an attempt may go ahead at `now`.
    pub fn check(&self, policy: &ThrottlePolicy, now: DateTime<Utc>) -> ThrottleDecision {
        if let Some(until) = self.locked_until
            && now < until
        {
            return ThrottleDecision::LockedUntil(until);
        }
        let (Some(last), Some(delay)) = (
            self.last_failure,
            Self::delay_after(policy, self.effective_failures(policy, now)),
        ) else {
            return ThrottleDecision::Allow;
        };
        if now < last + delay {
            ThrottleDecision::RetryAfter(last + delay)
        } else {
            ThrottleDecision::Allow
        }
    }

    /// Records a failed attempt and returns the decision for the next one.
    pub fn record_failure(
        &mut self,
        policy: &ThrottlePolicy,
        now: DateTime<Utc>,
    ) -> ThrottleDecision {
        if let Some(until) = self.locked_until
            && now < until
        {
            // Attempts are refused while locked; one that slipped through does not escalate.
            return ThrottleDecision::LockedUntil(until);
        }
        if self.locked_until.is_some() {
            // The lockout ran out: start counting afresh, but remember it for escalation.
            self.locked_until = None;
            self.failures = 0;
        }
        self.failures = self.effective_failures(policy, now).saturating_add(1);
        self.last_failure = Some(now);
        if self.failures >= policy.lockout_after {
            let factor = 1i32.checked_shl(self.lockouts.min(10)).unwrap_or(i32::MAX);
            let length = policy
                .lockout_for
                .checked_mul(factor)
                .unwrap_or(Duration::days(1))
                .min(Duration::days(1));
            self.lockouts = self.lockouts.saturating_add(1);
            self.locked_until = Some(now + length);
        }
        self.check(policy, now)
    }

    /// Records a success: the key starts afresh.
    pub fn record_success(&mut self) {
        *self = Self::default();
    }
}

/// The two throttles of a login: per account and per source address.
///
/// A success clears the account's state but not the source's: otherwise an attacker could wipe
/// their address's failures by logging in to an account of their own between guesses. The
/// source's failures fade only with time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginThrottle {
    /// Per-account limits.
    pub account: ThrottlePolicy,
    /// Per-source limits.
    pub source: ThrottlePolicy,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self {
            account: ThrottlePolicy::per_account(),
            source: ThrottlePolicy::per_source(),
        }
    }
}

impl LoginThrottle {
    /// Whether an attempt may go ahead (the stricter of both).
    pub fn check(
        &self,
        account: &ThrottleState,
        source: &ThrottleState,
        now: DateTime<Utc>,
    ) -> ThrottleDecision {
        combine(
            account.check(&self.account, now),
            source.check(&self.source, now),
        )
    }

    /// Records an attempt's outcome in both states (store both back).
    pub fn record(
        &self,
        account: &mut ThrottleState,
        source: &mut ThrottleState,
        success: bool,
        now: DateTime<Utc>,
    ) {
        if success {
            account.record_success();
        } else {
            account.record_failure(&self.account, now);
            source.record_failure(&self.source, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 9, 1, 3, 0, 0).unwrap()
    }

    #[test]
    fn free_failures_then_exponential_backoff() {
        let p = ThrottlePolicy::per_account();
        let mut s = ThrottleState::default();
        let now = t0();
        for _ in 0..3 {
            assert_eq!(s.record_failure(&p, now), ThrottleDecision::Allow);
        }
        // 4th failure: wait 1 s; 5th: 2 s; 6th: 4 s.
        assert_eq!(
            s.record_failure(&p, now),
            ThrottleDecision::RetryAfter(now + Duration::seconds(1))
        );
        assert!(!s.check(&p, now).allowed());
        assert!(s.check(&p, now + Duration::seconds(1)).allowed());
        assert_eq!(
            s.record_failure(&p, now),
            ThrottleDecision::RetryAfter(now + Duration::seconds(2))
        );
        assert_eq!(
            s.record_failure(&p, now),
            ThrottleDecision::RetryAfter(now + Duration::seconds(4))
        );
    }

    #[test]
    fn lockout_escalates_and_ends() {
        let p = ThrottlePolicy::per_account();
        let mut s = ThrottleState::default();
        let now = t0();
        let mut last = ThrottleDecision::Allow;
        for _ in 0..10 {
            last = s.record_failure(&p, now);
        }
        assert_eq!(
            last,
            ThrottleDecision::LockedUntil(now + Duration::minutes(15))
        );
        assert!(!s.check(&p, now + Duration::minutes(14)).allowed());
        let after = now + Duration::minutes(15);
        assert!(s.check(&p, after).allowed());
        // Ten more failures right away: the second lockout lasts twice as long.
        for _ in 0..10 {
            last = s.record_failure(&p, after);
        }
        assert_eq!(
            last,
            ThrottleDecision::LockedUntil(after + Duration::minutes(30))
        );
        // Failures recorded during a lockout do not lengthen it.
        let during = after + Duration::minutes(1);
        assert_eq!(
            s.record_failure(&p, during),
            ThrottleDecision::LockedUntil(after + Duration::minutes(30))
        );
        s.record_success();
        assert_eq!(s, ThrottleState::default());
    }

    #[test]
    fn failures_decay_over_time() {
        let p = ThrottlePolicy::per_account();
        let mut s = ThrottleState::default();
        let now = t0();
        for _ in 0..5 {
            s.record_failure(&p, now);
        }
        assert_eq!(s.effective_failures(&p, now), 5);
        assert_eq!(s.effective_failures(&p, now + Duration::minutes(30)), 3);
        assert!(s.check(&p, now + Duration::minutes(30)).allowed());
        assert_eq!(s.effective_failures(&p, now + Duration::hours(3)), 0);
        // A failure after the quiet spell counts from what is left.
        s.record_failure(&p, now + Duration::hours(3));
        assert_eq!(s.failures, 1);
    }

    #[test]
    fn per_source_and_per_account_combine() {
        let now = t0();
        let a = ThrottleDecision::RetryAfter(now + Duration::seconds(4));
        let b = ThrottleDecision::RetryAfter(now + Duration::seconds(8));
        let l = ThrottleDecision::LockedUntil(now + Duration::seconds(1));
        assert_eq!(combine(a, b), b);
        assert_eq!(combine(a, l), l);
        assert_eq!(combine(ThrottleDecision::Allow, a), a);
        assert_eq!(
            combine(ThrottleDecision::Allow, ThrottleDecision::Allow),
            ThrottleDecision::Allow
        );
        // A source spraying many accounts is stopped by its own counter.
        let p = ThrottlePolicy::per_source();
        let mut src = ThrottleState::default();
        let mut d = ThrottleDecision::Allow;
        for _ in 0..100 {
            d = src.record_failure(&p, now);
        }
        assert!(matches!(d, ThrottleDecision::LockedUntil(_)));
    }

    #[test]
    fn own_account_success_does_not_clear_the_source() {
        let t = LoginThrottle::default();
        let now = t0();
        let (mut victim, mut mine, mut src) = (
            ThrottleState::default(),
            ThrottleState::default(),
            ThrottleState::default(),
        );
        for _ in 0..30 {
            t.record(&mut victim, &mut src, false, now);
            t.record(&mut mine, &mut src, true, now);
        }
        assert_eq!(src.effective_failures(&t.source, now), 30);
        assert!(!t.check(&mine, &src, now).allowed());
        assert!(matches!(
            t.check(&victim, &ThrottleState::default(), now),
            ThrottleDecision::LockedUntil(_)
        ));
    }

    #[test]
    fn source_keys() {
        assert_eq!(source_key("203.0.113.7".parse().unwrap()), "203.0.113.7");
        assert_eq!(
            source_key("2001:db8:1:2:aaaa::1".parse().unwrap()),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            source_key("2001:db8:1:2:bbbb::9".parse().unwrap()),
            source_key("2001:db8:1:2:cccc::1".parse().unwrap())
        );
        assert_eq!(
            source_key("::ffff:198.51.100.1".parse().unwrap()),
            "198.51.100.1"
        );
    }
}
