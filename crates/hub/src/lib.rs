//! The data-sharing hub's use-cases (nền tảng tích hợp, chia sẻ dữ liệu) over the pure rules of
//! `dancu-exchange`:
//! - [`admin`]: the rights administration (members, subsystems, keys, access rights) while
//!   the hub runs, effective at the next call;
//! - [`audit`]: the tamper-evident exchange log on disk: segment files, signed checkpoints,
//!   recovery from a torn write, refusal when the disk or the budget is full, and verification
//!   of a log directory (`dancu audit verify`);
//! - [`cards`]: card verification against the register (QR, MRZ, chip passive authentication,
//!   field match, card status by the exchange ages, vital status), served as `card_verify`;
//! - [`checkpoint`]: QR checkpoint passes (signed with the hub's key, verified offline) and
//!   check-ins recorded once per pass;
//! - [`match_index`]: the in-memory view attribute match answers from over an embedded
//!   register (what the match compares, per person), kept current with every commit;
//! - [`members`]: members, subsystems with their registered keys, and access rights as data;
//! - [`service`]: the exchange services (attribute match, CMND → personal ID, eKYC signed by the
//!   hub), `private_key_jwt` authentication with replay refusal, consents, and fee statements
//!   metered from the log;
//! - [`tracker_index`]: where each person's exchanges sit in the log, so the citizen's tracker
//!   reads that person's records only (closed segments indexed in files beside them, the open
//!   one in memory, a segment without a sound index read whole while its file is rebuilt);
//! - [`quota`]: quotas shared by the nodes over one database, leased from a count in the
//!   document store, and rates divided between the nodes alive;
//! - [`shared_tracker`]: each node's citizen's-tracker lines copied to the document store, so
//!   the tracker at any node shows what every node answered;
//! - [`tokens`]: short-lived bearer access tokens obtained with a client assertion (OAuth
//!   client credentials), checked per call from memory, backed by the document store;
//! - [`batch`]: batch verification jobs (up to a million attribute-match rows) answered in the
//!   background with the single call's rules, kept in the document store so that any node
//!   reports them, and taken over from a node that stopped;
//! - [`enrich`]: sectoral registers' identifiers linked to personal IDs with provenance and
//!   history, beside (never over) the register record;
//! - [`events`]: change-event subscriptions and the pull feed with a cursor over the register's
//!   event table (metadata only);
//! - [`webhooks`]: the delivery state of pushed change events, to a webhook or a NATS
//!   JetStream subject: signed batches in order, retries with backoff, dead letters, replay
//!   (the transports, HTTP and NATS, are the `dancu` binary's: `dancu::push`).
//!
//! This crate does I/O (files of the data directory, the store through its traits) but must not import axum or a database
//! driver: HTTP belongs to `dancu-http`, wiring to the `dancu` binary. It never logs personal
//! data values, only field names.

pub mod admin;
pub mod audit;
pub mod batch;
pub mod cards;
pub mod checkpoint;
pub mod commit;
pub mod enrich;
pub mod events;
pub mod match_index;
pub mod members;
pub mod quota;
pub mod service;
pub mod shared_tracker;
pub mod tokens;
pub mod tracker_index;
pub mod webhooks;

#[cfg(test)]
mod audit_tests;
#[cfg(test)]
mod quota_tests;
#[cfg(test)]
mod replay_tests;
#[cfg(test)]
mod token_tests;
#[cfg(test)]
mod tracker_tests;
