//! # stele-index
//!
//! A derived, rebuildable query index over a Stele log — never the source of truth. It reads
//! entries through `stele-store`'s read API (entry bundles), so the append path is untouched:
//! a follower thread tails the committed log and indexes new entries as they appear, and the
//! lag ([`Index::lag`]) is visible to callers.
//!
//! - The log is cut into chunks of 65,536 entries. The newest chunk lives in memory; full
//!   chunks are sealed into immutable, checksummed, memory-mapped files under `index/chunks/`
//!   (layout in [`chunk`]'s source). Each holds the entries' commit times and, per keyword
//!   field (actor, actor type, action, resource type and id, outcome, tenant, source,
//!   session, client IP) and for the full-text tokens of `reason` and `context`, a sorted term
//!   dictionary with a posting list per term.
//! - Commit times never decrease along the log, so a time range is an index range; filters
//!   are ANDed as bit sets per chunk ([`query`]); counts and group-by read posting sizes.
//! - Permission-change events (`role.grant`, `role.revoke`, `user.deactivate`,
//!   `user.activate`, `group.add`, `group.remove`) are kept for point-in-time [`replay`].
//! - On open, sealed chunks are checked (checksum, and the leaf hash of their last entry
//!   against the log); anything that fails is discarded and re-indexed from the log. Deleting
//!   the directory ([`Index::remove`]) rebuilds the whole index.
//!
//! What it leaves out: HTTP, parameter parsing, and any write to the log.
//!
//! Design and measurements: `docs/design/query-index.md`; API and replay conventions:
//! `docs/query.md`.
#![warn(missing_docs)]
#![deny(clippy::unwrap_used)]

mod chunk;
mod error;
pub mod fields;
mod index;
mod posting;
pub mod query;
pub mod replay;
mod scan;
pub mod synth;
mod terms;

pub use error::{IndexError, Result};
pub use fields::Field;
pub use index::{Index, IndexOptions, DEFAULT_CHUNK_SIZE};
pub use query::{parse_instant, Counts, Filter, GroupBy, Match, Order, Page};
pub use replay::{
    Grant, PermissionReplay, PrincipalReplay, RolePermissions, RoleReplay, Scope, ScopeFilter, Via,
};
