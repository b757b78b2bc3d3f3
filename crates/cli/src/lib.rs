//! The `dancu` binary's pieces: configuration, server wiring, the change-event sender (webhooks
//! and NATS JetStream), bulk transfer, demo data, the benchmark suite and the exchange-log audit. `main.rs` only parses the command line and calls
//! these.

pub mod audit;
pub mod bench;
pub mod config;
pub mod demo;
pub mod push;
pub mod server;
pub mod transfer;
