//! The index error type.

use std::io;
use std::path::{Path, PathBuf};

use stele_store::StoreError;

/// Everything that can go wrong in the index.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// Reading the log failed.
    #[error("reading the log: {0}")]
    Store(#[from] StoreError),
    /// An index file failed a check; the index rebuilds it from the log.
    #[error("corrupt index file {file}: {detail}")]
    Corrupt {
        /// The file.
        file: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// A query the index cannot answer as asked (the message names the parameter).
    #[error("{0}")]
    InvalidQuery(String),
    /// An operating-system I/O error, with the operation and file.
    #[error("{op} {path}: {source}")]
    Io {
        /// What the index was doing.
        op: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

impl IndexError {
    /// A mapper from an `io::Error` during `op` on `path`.
    pub(crate) fn io(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> IndexError {
        let path = path.to_path_buf();
        move |source| IndexError::Io { op, path, source }
    }
}

/// Result with [`IndexError`].
pub type Result<T, E = IndexError> = std::result::Result<T, E>;
