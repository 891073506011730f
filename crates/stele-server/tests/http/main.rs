//! The HTTP API tested for real: a server on 127.0.0.1:0 over a store in a temporary
//! directory, driven with reqwest.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::expect_used)]

mod common;
mod events;
mod ingest;
mod ops;
mod otlp;
mod proofs;
mod query;
mod rejects;
mod tiles;
