//! Request handlers, one module per area of the API.

pub mod ingest;
pub mod ops;
pub mod tiles;
pub mod v1;
