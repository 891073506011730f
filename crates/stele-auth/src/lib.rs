//! # stele-auth
//!
//! Who may do what to a Stele log:
//!
//! - [`token`]: opaque bearer tokens `stele_<id>_<secret>` (a 16-hex-digit public id and 32
//!   random bytes), stored only as SHA-256 digests and compared in constant time.
//! - [`model`]: roles (`writer`, `reader`, `auditor`, `admin`), token records with their
//!   tenants, source binding, expiry and revocation, and the [`Principal`] a checked
//!   credential stands for. A principal is named by its credential: `token:<id>`, or
//!   `cert:<id>` for a client certificate ([`cert`], mTLS) bound by its SHA-256 fingerprint.
//! - [`mod@file`]: the token file `DATA/auth/tokens.json` — written durably (temp file, fsync,
//!   rename, fsync of the directory, mode 0600) under an advisory lock, so the CLI can manage
//!   tokens offline while a server reads the same file — and the first-start admin token.
//! - [`policy`]: the pure access rules: stamping a writer's source and tenant on an event and
//!   refusing events that name others, and which entries a reader may see.
//!
//! What it leaves out: HTTP (the axum middleware, rate limits and the meta-log are in
//! `stele-server::auth`), TLS itself (the handshake and the chain check are `stele-server`'s),
//! and the log itself. Besides the token file it does no I/O.

pub mod cert;
pub mod file;
pub mod model;
pub mod policy;
pub mod token;

mod error;

pub use cert::CertFingerprint;
pub use error::AuthError;
pub use file::{FileStamp, TokenStore};
pub use model::{Credential, NewToken, Principal, Role, TokenRecord};
pub use token::{Token, TokenDigest, TokenId};

/// The `source` of the log's own meta-log events (`audit.*`, `admin.*`, `auth.failure`). No
/// client may write an event with this source, so the meta-log cannot be forged through the
/// API.
pub const META_SOURCE: &str = "stele.meta";
