//! Change events for agencies (thông báo thay đổi): a pull feed with a cursor over the
//! register's event table (the transactional outbox: an event is committed with the change it
//! describes, so none is lost).
//!
//! A subscription (in the hub's configuration) names the member's subsystem, the purpose, the
//! event types and a filter: a list of personal IDs, or communes / provinces (2025 codes) of
//! the person's current permanent residence; with no filter, every person. It is served within
//! a right for the service [`SERVICE_CHANGE_EVENTS`] whose fields are the event types allowed.
//! A notice carries metadata only: event id, type, person, sequence and time; the subscriber
//! fetches data through its other rights.

use chrono::{DateTime, Utc};
use dancu_domain::PersonalId;
use dancu_domain::admin::AdminUnits;
use dancu_domain::person::Person;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};

/// Service code of the change-event feed.
pub const SERVICE_CHANGE_EVENTS: &str = "change_events";

/// An agency's subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    /// Identifier.
    pub id: String,
    /// Member.
    pub org: String,
    /// Subsystem that pulls.
    pub subsystem: String,
    /// Event types, e.g. `birth_registered`, `death_registered`.
    pub event_types: BTreeSet<String>,
    /// Only these people (personal IDs).
    #[serde(default)]
    pub persons: BTreeSet<String>,
    /// Only people whose permanent residence is in one of these communes (2025 codes).
    #[serde(default)]
    pub communes: BTreeSet<String>,
    /// Only people whose permanent residence is in one of these provinces (2025 codes).
    #[serde(default)]
    pub provinces: BTreeSet<String>,
    /// Purpose code webhook deliveries are made under (a pull names its own).
    #[serde(default)]
    pub purpose: String,
    /// Push the events to this receiver.
    #[serde(default)]
    pub webhook: Option<crate::webhooks::Webhook>,
    /// Or publish them to this NATS JetStream subject (when the server has a NATS URL).
    #[serde(default)]
    pub nats: Option<crate::webhooks::NatsPush>,
}

/// One change, as the subscriber is told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventNotice {
    /// Stable event id: `<person>/<version>`.
    pub event_id: String,
    /// Event type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Personal ID.
    pub person: String,
    /// Sequence in the register (the cursor).
    pub seq: i64,
    /// When it was recorded.
    pub time: DateTime<Utc>,
}

/// One page of the feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeedPage {
    /// Matching events, in sequence order.
    pub events: Vec<EventNotice>,
    /// Pass as `after` for the next page (every event up to it was considered).
    pub next_after: i64,
}

impl Subscription {
    fn has_place_filter(&self) -> bool {
        !self.communes.is_empty() || !self.provinces.is_empty()
    }

    /// Whether an event of `kind` about `person` (its current record, when known) is for this
    /// subscription.
    pub fn wants(&self, kind: &str, person: &str, record: Option<&Person>) -> bool {
        if !self.event_types.contains(kind) {
            return false;
        }
        if self.persons.is_empty() && !self.has_place_filter() {
            return true;
        }
        if self.persons.contains(person) {
            return true;
        }
        if !self.has_place_filter() {
            return false;
        }
        let Some(addr) = record
            .and_then(|p| p.permanent_residence.as_ref())
            .map(|r| &r.address)
        else {
            return false;
        };
        let Some(view) = AdminUnits::get().current_view(addr.scheme, &addr.commune_code) else {
            return false;
        };
        view.exact().is_some_and(|c| self.communes.contains(c.code))
            || self.provinces.contains(view.province().code)
    }
}

/// The person of a `p:<id>` stream.
pub fn stream_person(stream: &str) -> Option<PersonalId> {
    stream.strip_prefix("p:")?.parse().ok()
}

/// Current records of the people named, for the place filter.
pub fn by_id(people: Vec<Person>) -> HashMap<String, Person> {
    people.into_iter().map(|p| (p.id.to_string(), p)).collect()
}
