//! # stele-store
//!
//! Durable, append-only storage of a Stele log on the local file system.
//!
//! - Entries are written once, as checksummed [`frame`]s in segment files, by a single writer
//!   thread that groups concurrent appends into one `write` and one `fdatasync`
//!   (group commit), pipelined: the next group is hashed and written while the previous one
//!   syncs ([`syncer`](crate)). An append is acknowledged only after its `fdatasync`.
//! - Everything else — the stored hashes of every tree level (from which C2SP hash tiles and
//!   proofs are read), the bundle index, the id index — is derived and rebuilt on recovery.
//! - Checkpoints (C2SP tlog-checkpoint, signed note) are published by the writer at least
//!   every `checkpoint_interval` while entries arrive, after the derived files are durable.
//! - [`verify_dir`] re-derives everything from the entries and checks it against the signed
//!   checkpoint, naming the first bad file and entry.
//!
//! - [`rotation`]: signing-key rotation (`key/rotations.json`, retired keys co-signing
//!   during a transition window, the `stele-key-rotation/v1` statements).
//!
//! What it leaves out: HTTP, event schemas (entries are opaque bytes with an optional time slot
//! and idempotency key), object storage.
//!
//! See `docs/formats.md` for the on-disk layout and `docs/architecture.md` for the promises.
#![warn(missing_docs)]

mod bundles;
pub mod datadir;
mod error;
pub mod frame;
mod fsutil;
mod hashing;
mod idindex;
pub mod layout;
mod levels;
mod metrics;
mod recovery;
pub mod rotation;
mod segments;
mod shared;
mod store;
mod syncer;
mod types;
mod verify;
mod verify_keys;
mod writer;

pub use error::StoreError;
pub use metrics::StoreMetrics;
pub use recovery::RecoveryReport;
pub use rotation::RotationRecord;
pub use store::{system_clock, Store, StoreOptions};
pub use syncer::{DropBehind, CACHE_BEHIND};
pub use types::{Appended, EntryKey, NewEntry, SignedCheckpoint};
pub use verify::{verify_dir, VerifyError, VerifyReport};
pub use verify_keys::CheckedRotation;
