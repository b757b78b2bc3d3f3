//! Pure domain rules of the population register (Cơ sở dữ liệu quốc gia về dân cư).
//!
//! This crate owns the facts that hold whatever the storage or transport: personal ID numbers
//! (số định danh cá nhân, [`id`]), legacy CMND numbers, personal names and their match keys
//! ([`name`]), partial dates ([`date`]), administrative units of both schemes ([`admin`]), the
//! citizen model ([`person`]) and the events that change it ([`event`]).
//!
//! It does no I/O and nothing async; time comes in through [`clock::Clock`] and randomness as a
//! parameter. Every rejection is a [`Problem`]: a stable code with a Vietnamese and an English
//! message.

pub mod admin;
pub mod clock;
pub mod date;
pub mod event;
pub mod id;
pub mod name;
pub mod officer;
pub mod person;
mod problem;

pub use date::PartialDate;
pub use id::{CmndNumber, PersonalId};
pub use name::PersonName;
pub use problem::Problem;
