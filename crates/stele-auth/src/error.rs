//! The crate's error type.

use std::path::PathBuf;

use thiserror::Error;

/// Everything that can go wrong managing or checking tokens. No variant ever carries a token
/// secret.
#[derive(Debug, Error)]
pub enum AuthError {
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The token file is not in the expected format.
    #[error("token file {path} is malformed: {message}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The token file was written by a newer version.
    #[error("token file {path} has format {found}; this version reads format {supported}")]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
        /// The format found.
        found: u64,
        /// The format this version reads and writes.
        supported: u64,
    },
    /// A token specification breaks a rule (which one is in the message).
    #[error("{0}")]
    InvalidSpec(String),
    /// A string is not a token id.
    #[error("{0:?} is not a token id (16 hexadecimal digits)")]
    BadId(String),
    /// No token has this id.
    #[error("no token with id {0}")]
    UnknownId(String),
    /// The data directory does not exist.
    #[error("data directory {0} does not exist")]
    NoDataDir(PathBuf),
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed: {0}")]
    Random(String),
}

impl AuthError {
    /// A closure turning an I/O error into [`AuthError::Io`] for `op` on `path`.
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> AuthError {
        let path = path.into();
        move |source| AuthError::Io { op, path, source }
    }
}
