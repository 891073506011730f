//! The storage error type.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in the store. Callers map variants to responses:
/// `NotFound` → 404, `Conflict` → 409, `Overloaded` → 503 + Retry-After, the rest → 5xx.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The requested entry, tile or proof lies beyond the log.
    #[error("not found: {0}")]
    NotFound(String),
    /// A retried event id arrived with content different from the stored event's.
    #[error("event id {id} already names a different event (index {index})")]
    Conflict {
        /// The event id, hyphenated.
        id: String,
        /// The index of the event stored under that id.
        index: u64,
    },
    /// The append queue is full; retry shortly (back-pressure, not failure).
    #[error("the append queue is full; retry shortly")]
    Overloaded,
    /// A write or fsync failed earlier; the store refuses writes until it is reopened and
    /// recovered, because after a failed fsync the kernel may have dropped dirty pages.
    #[error("the store is poisoned by an earlier I/O failure and refuses writes until restart")]
    Poisoned,
    /// The store is shutting down.
    #[error("the store is closed")]
    Closed,
    /// The caller asked for something the log cannot answer (e.g. a proof between bad sizes).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Stored data failed a check.
    #[error("corrupt store: {file}{}: {detail}", index.map(|i| format!(" (entry {i})")).unwrap_or_default())]
    Corrupt {
        /// The file holding the bad data.
        file: PathBuf,
        /// The first entry index affected, when known.
        index: Option<u64>,
        /// What was wrong.
        detail: String,
    },
    /// Another process holds the data directory.
    #[error("data directory {0} is in use by another process")]
    Locked(PathBuf),
    /// The signing key file is unsafe or unreadable.
    #[error("key file {path}: {detail}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// An operating-system I/O error, with the operation and file.
    #[error("{op} {path}: {source}")]
    Io {
        /// What the store was doing.
        op: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The id index database failed.
    #[error("id index: {0}")]
    Index(String),
}

impl StoreError {
    /// Wraps an I/O error with the operation and path it came from.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| StoreError::Io { op, path, source }
    }

    pub(crate) fn corrupt(
        file: impl Into<PathBuf>,
        index: Option<u64>,
        detail: impl Into<String>,
    ) -> Self {
        StoreError::Corrupt {
            file: file.into(),
            index,
            detail: detail.into(),
        }
    }
}

/// Short alias used throughout the crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
