//! Webhook delivery of change events: what to send next, and what a delivery's outcome does.
//! The transport (an HTTP client) is the caller's; this module keeps the state.
//!
//! Per subscription with a webhook, the state (a document in the document store) holds the
//! cursor, the failed attempts of the pending delivery and the dead letters. Deliveries go one
//! at a time in sequence order, so a person's events arrive in order; a failed delivery is
//! retried with exponential backoff (2 s doubling to 5 min) and after
//! [`Webhook::max_attempts`] failures its events go to the dead letters and delivery moves on.
//! Delivery is at least once: each carries an idempotency id (`<subscription>:<first
//! seq>-<last seq>`) and each event its own id. The body is a compact JWS (ES256) by the hub's
//! response key (see the JWKS), so the receiver can check it came from the hub. A subscriber
//! can replay from any sequence number.
//!
//! A subscription may instead name a NATS JetStream subject ([`NatsPush`]): the same
//! deliveries, signed the same way, are published there by the server's sender (with the
//! delivery id as `Nats-Msg-Id`, so JetStream drops a delivery published twice within its
//! duplicate window), and count as delivered once the stream has acknowledged them.

use crate::events::{EventNotice, Subscription};
use crate::service::{Client, Hub, HubError};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

const STATE_KIND: &str = "hub_webhook";
/// Most events one delivery carries.
const BATCH: u32 = 100;
/// How long a delivery the rights refuse waits before it is decided again.
const REFUSED_RETRY: TimeDelta = TimeDelta::minutes(1);
/// Most dead letters kept per subscription (the oldest go first).
const MAX_DEAD_LETTERS: usize = 10_000;

/// Where and how a subscription is pushed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// The receiver's URL (`http://`; HTTPS needs a TLS-terminating proxy for now).
    pub url: String,
    /// Failed attempts before a delivery's events become dead letters.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
}

fn default_attempts() -> u32 {
    8
}

/// Where a subscription is published on NATS JetStream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsPush {
    /// The subject, e.g. `dancu.events.bank-a` (no wildcards); the server's stream covers it.
    pub subject: String,
    /// Failed attempts before a delivery's events become dead letters.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
}

/// Whether `s` is a NATS subject one can publish to: dot-separated tokens of printable ASCII,
/// none empty, no wildcards.
pub fn valid_nats_subject(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.split('.').all(|t| {
            !t.is_empty() && t != "*" && t != ">" && t.bytes().all(|b| b.is_ascii_graphic())
        })
}

/// Where one delivery goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushTarget {
    /// An HTTP POST to this URL.
    Webhook(String),
    /// A JetStream publish to this subject.
    Nats(String),
}

/// The delivery state of one subscription.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookState {
    /// Every event up to this seq was delivered or dead-lettered.
    pub cursor: i64,
    /// Failed attempts of the pending delivery.
    pub attempts: u32,
    /// Not before this instant (backoff).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Events given up on, oldest first.
    pub dead_letters: Vec<EventNotice>,
    /// Deliveries that succeeded.
    pub delivered: u64,
    /// The node sending this subscription's deliveries (the others leave it alone while its
    /// lease runs, so several nodes over one database deliver each batch once, in order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    /// Until when its lease runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_until: Option<DateTime<Utc>>,
}

/// How long a node holds the sending of a subscription without renewing it; it renews when half
/// is left. A node that stops is taken over once its lease has run out.
pub const SENDER_LEASE: TimeDelta = TimeDelta::seconds(30);

/// One delivery to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Subscription.
    pub subscription: String,
    /// Where it goes.
    pub target: PushTarget,
    /// Idempotency id.
    pub id: String,
    /// The signed body (compact JWS).
    pub body: String,
    /// Last seq it carries (the cursor after success).
    pub last_seq: i64,
    /// The events it carries.
    pub events: Vec<EventNotice>,
}

/// The push target of a subscription and its attempt limit (a webhook wins over NATS; the
/// configuration check refuses a subscription with both).
fn push_of(s: &Subscription) -> Option<(PushTarget, u32)> {
    if let Some(h) = &s.webhook {
        return Some((PushTarget::Webhook(h.url.clone()), h.max_attempts));
    }
    let n = s.nats.as_ref()?;
    Some((PushTarget::Nats(n.subject.clone()), n.max_attempts))
}

fn backoff(attempts: u32) -> TimeDelta {
    TimeDelta::seconds(1i64 << attempts.min(8)).min(TimeDelta::minutes(5))
}

impl Hub {
    fn webhook_subscription(&self, id: &str) -> Option<(Subscription, PushTarget, u32)> {
        let config = self.config();
        let s = config.subscriptions.iter().find(|s| s.id == id)?;
        let (target, max) = push_of(s)?;
        Some((s.clone(), target, max))
    }

    /// The delivery state of a subscription (and its document version).
    fn webhook_state(&self, id: &str) -> Result<(WebhookState, u64), HubError> {
        match self
            .docs()
            .get(STATE_KIND, id)
            .map_err(HubError::internal)?
        {
            None => Ok((WebhookState::default(), 0)),
            Some(d) => Ok((
                serde_json::from_str(&d.json).map_err(HubError::internal)?,
                d.version,
            )),
        }
    }

    /// The state when this node may send the subscription's deliveries now: it holds the lease
    /// (renewed when half of it is left), or takes it because nobody holds it; `None` while
    /// another node holds it or took it just now.
    fn hold_sending(
        &self,
        id: &str,
        mut st: WebhookState,
        version: u64,
        now: DateTime<Utc>,
    ) -> Result<Option<WebhookState>, HubError> {
        let mine = st.sender.as_deref() == Some(self.node());
        let until = st.sender_until.unwrap_or(DateTime::<Utc>::MIN_UTC);
        if !mine && now < until {
            return Ok(None);
        }
        if mine && until - now > SENDER_LEASE / 2 {
            return Ok(Some(st));
        }
        st.sender = Some(self.node().to_owned());
        st.sender_until = Some(now + SENDER_LEASE);
        let json = serde_json::to_string(&st).map_err(HubError::internal)?;
        match self.docs().put(STATE_KIND, id, version, &json, None) {
            Ok(_) => Ok(Some(st)),
            Err(dancu_store::StoreError::Conflict { .. } | dancu_store::StoreError::Exists(_)) => {
                Ok(None)
            }
            Err(e) => Err(HubError::internal(e)),
        }
    }

    fn put_state(&self, id: &str, st: &WebhookState, version: u64) -> Result<(), HubError> {
        let json = serde_json::to_string(st).map_err(HubError::internal)?;
        self.docs()
            .put(STATE_KIND, id, version, &json, None)
            .map(|_| ())
            .map_err(HubError::internal)
    }

    /// The NATS subjects the subscriptions publish to, sorted, each once (the stream the
    /// server's publisher keeps must cover them).
    pub fn nats_subjects(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .config()
            .subscriptions
            .iter()
            .filter_map(|s| s.nats.as_ref().map(|n| n.subject.clone()))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The deliveries due now: at most one per subscription with a webhook or NATS subject.
    pub fn webhook_due(&self) -> Result<Vec<Delivery>, HubError> {
        let now = self.now();
        let mut out = Vec::new();
        for s in &self.config().subscriptions {
            let Some((target, _)) = push_of(s) else {
                continue;
            };
            let (st, version) = self.webhook_state(&s.id)?;
            let Some(st) = self.hold_sending(&s.id, st, version, now)? else {
                continue;
            };
            if st.next_attempt_at.is_some_and(|t| now < t) {
                continue;
            }
            let page = self.collect_events(s, st.cursor, BATCH)?;
            if page.events.is_empty() {
                if page.next_after != st.cursor {
                    // Nothing matched up to there: move the cursor without a delivery.
                    let (mut st, v) = self.webhook_state(&s.id)?;
                    st.cursor = st.cursor.max(page.next_after);
                    self.put_state(&s.id, &st, v)?;
                }
                continue;
            }
            // Within the rights, as a pull would be; a refusal is logged and decided again later.
            let page = match self.authorize_delivery(s, page) {
                Ok(p) => p,
                Err(HubError::Refused(_)) => {
                    // Ask again in a while rather than log a refusal at every poll.
                    let (mut st, v) = self.webhook_state(&s.id)?;
                    st.next_attempt_at = Some(now + REFUSED_RETRY);
                    self.put_state(&s.id, &st, v)?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let first = page.events.first().map_or(0, |e| e.seq);
            let last = page.events.last().map_or(0, |e| e.seq);
            let id = format!("{}:{first}-{last}", s.id);
            let body = self.sign_delivery(s, &id, &page.events)?;
            out.push(Delivery {
                subscription: s.id.clone(),
                target,
                id,
                body,
                last_seq: last,
                events: page.events,
            });
        }
        Ok(out)
    }

    /// Records a delivery's outcome: success moves the cursor; failure backs off, and after the
    /// subscription's attempt limit dead-letters the events and moves on.
    pub fn webhook_done(&self, d: &Delivery, ok: bool) -> Result<(), HubError> {
        let Some((_, _, max)) = self.webhook_subscription(&d.subscription) else {
            return Ok(());
        };
        let max = max.max(1);
        let (mut st, version) = self.webhook_state(&d.subscription)?;
        if st.cursor >= d.last_seq {
            return Ok(());
        }
        if ok {
            st.cursor = d.last_seq;
            st.attempts = 0;
            st.next_attempt_at = None;
            st.delivered += 1;
        } else {
            st.attempts += 1;
            if st.attempts >= max {
                st.dead_letters.extend(d.events.iter().cloned());
                let over = st.dead_letters.len().saturating_sub(MAX_DEAD_LETTERS);
                st.dead_letters.drain(..over);
                st.cursor = d.last_seq;
                st.attempts = 0;
                st.next_attempt_at = None;
            } else {
                st.next_attempt_at = Some(self.now() + backoff(st.attempts));
            }
        }
        self.put_state(&d.subscription, &st, version)
    }

    /// The delivery state of the caller's subscription.
    pub fn webhook_status(
        &self,
        client: &Client,
        subscription: &str,
    ) -> Result<WebhookState, HubError> {
        self.own_webhook(client, subscription)?;
        Ok(self.webhook_state(subscription)?.0)
    }

    /// Replays from `after` (the next delivery starts with the first event after it); clears
    /// the backoff. Dead letters stay for the record.
    pub fn webhook_replay(
        &self,
        client: &Client,
        subscription: &str,
        after: i64,
    ) -> Result<WebhookState, HubError> {
        self.own_webhook(client, subscription)?;
        let (mut st, version) = self.webhook_state(subscription)?;
        st.cursor = after.max(0);
        st.attempts = 0;
        st.next_attempt_at = None;
        self.put_state(subscription, &st, version)?;
        Ok(st)
    }

    fn own_webhook(&self, client: &Client, subscription: &str) -> Result<(), HubError> {
        match self.webhook_subscription(subscription) {
            Some((s, _, _)) if s.org == client.org && s.subsystem == client.subsystem => Ok(()),
            _ => Err(HubError::Invalid {
                code: "unknown_subscription",
                vi: "Hệ thống không có đăng ký nhận thông báo qua webhook hoặc NATS này".into(),
                en: "The subsystem has no such webhook or NATS subscription".into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::valid_nats_subject;

    #[test]
    fn nats_subjects_to_publish_to() {
        for ok in ["dancu.events", "dancu.events.bank-a", "x", "a.b_c.d-1"] {
            assert!(valid_nats_subject(ok), "{ok}");
        }
        for bad in [
            "",
            "a..b",
            ".a",
            "a.",
            "a.*",
            "a.>",
            "a b",
            "sự.kiện",
            "a.\tb",
        ] {
            assert!(!valid_nats_subject(bad), "{bad:?}");
        }
        assert!(!valid_nats_subject(&"a".repeat(256)));
    }
}
