//! The versioned JSON API under `/v1`.

pub mod events;
pub mod proofs;
pub mod query;
pub mod replay;
