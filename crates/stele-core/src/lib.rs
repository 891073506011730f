//! # stele-core
//!
//! The pure heart of Stele, and the only crate a verifier needs.
//!
//! - [`hash`]: RFC 6962 §2.1 leaf and node hashing (SHA-256).
//! - [`merkle`]: tree roots, inclusion and consistency proofs (generation over any
//!   [`merkle::NodeSource`], verification per RFC 9162 §2.1.3.2 and §2.1.4.2), and the
//!   [`merkle::Frontier`] that appends leaves and reports every completed node.
//! - [`tile`]: C2SP tlog-tiles coordinates, paths and entry-bundle encoding (height 8).
//! - [`note`]: C2SP signed-note with Ed25519 keys (signer/verifier key strings, sign, open).
//! - [`checkpoint`]: C2SP tlog-checkpoint bodies.
//! - [`rotation`]: signing-key rotation statements (`stele-key-rotation/v1` signed notes) and
//!   following them from an old key to the newest.
//! - [`cosignature`]: C2SP tlog-cosignature (Ed25519 `cosignature/v1`) witness keys and
//!   cosignatures, and witness policies (k of n).
//! - [`witness`]: C2SP tlog-witness request and response bodies.
//! - [`misbehaviour`]: portable proofs that a log signed two contradicting checkpoints.
//! - [`event`]: the authorization/access event, schema v1: validation with JSON paths and the
//!   canonical (RFC 8785) encoding that becomes the log entry.
//! - [`bundle`]: offline evidence bundles (`stele-bundle/1`): events with inclusion proofs
//!   against one signed checkpoint, and their verification.
//! - [`timestamp`]: the fixed-width RFC 3339 UTC nanosecond timestamps the log assigns.
//!
//! What it leaves out: files, sockets, threads, async, clocks (callers pass the time in).
#![warn(missing_docs)]
#![deny(clippy::unwrap_used, clippy::indexing_slicing)]

pub mod bundle;
pub mod checkpoint;
pub mod cosignature;
pub mod event;
pub mod hash;
pub mod merkle;
pub mod misbehaviour;
pub mod note;
mod objects_only;
pub mod rotation;
pub mod tile;
pub mod timestamp;
pub mod witness;

pub use hash::Hash;
