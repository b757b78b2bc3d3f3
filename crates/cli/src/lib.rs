//! The `dancu` binary's pieces: configuration, server wiring, bulk transfer, demo data and the
//! benchmark suite. `main.rs` only parses the command line and calls these.

pub mod bench;
pub mod config;
pub mod demo;
pub mod server;
pub mod transfer;
