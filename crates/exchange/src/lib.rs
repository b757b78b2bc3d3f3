//! The pure core of the data-sharing hub (nền tảng tích hợp, chia sẻ dữ liệu).
//!
//! This crate owns the rules of exchanging population data with member agencies:
//! - [`log`]: the tamper-evident exchange log: metadata-only records, hash chain, segment file
//!   format, Merkle tree with inclusion and consistency proofs, ES256-signed checkpoints,
//!   verification that names the first bad record, retention planning, checkpoint cadence and
//!   the citizen's view of accesses with covert embargoes;
//! - [`rights`]: access rights and the decision whether a call is allowed, with quota and rate
//!   limits as pure state machines;
//! - [`consent`]: consent artefacts granted, revoked and consumed by the person;
//! - [`fees`]: the tariff (Circular 48/2022/TT-BTC) as data, metering and monthly statements;
//! - [`matching`]: attribute match and CMND → personal ID resolution.
//!
//! It must not do I/O of its own, open files or sockets, be async, read the clock or draw
//! randomness: time, keys and output sinks are parameters, so every rule is testable. It never
//! stores or logs the values of personal data, only field names. HTTP, persistence and
//! scheduling belong to other crates.

pub mod consent;
pub mod fees;
pub mod log;
pub mod matching;
pub mod rights;
