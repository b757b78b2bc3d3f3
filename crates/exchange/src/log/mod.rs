//! The tamper-evident exchange log (nhật ký trao đổi): records, segments, Merkle tree,
//! signed checkpoints, verification, retention and the citizen view.

pub mod checkpoint;
pub mod merkle;
pub mod record;
pub mod retention;
pub mod segment;
pub mod tracker;
pub mod verify;

#[cfg(test)]
mod tests;
