#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The integration suite: one test binary that boots the real server in-process on an ephemeral
//! port and talks HTTP to it, plus tests that run the `dancu` binary as a child process and kill
//! it with SIGKILL.

mod account;
mod audit;
mod cards;
mod common;
mod crash;
mod desk;
mod hub;
mod oidc;
mod portal;
mod register;
