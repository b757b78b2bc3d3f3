//! Pure domain rules of the population register (Cơ sở dữ liệu quốc gia về dân cư).
//!
//! This crate owns the facts that hold whatever the storage or transport: personal ID numbers
//! (số định danh cá nhân), legacy CMND numbers, personal names and their match keys, partial
//! dates, administrative units of both schemes, the citizen model and the events that change it.
//! It does no I/O and nothing async; time and randomness come in as parameters.

pub mod admin;
