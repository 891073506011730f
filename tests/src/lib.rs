//! Shared helpers for the end-to-end tests of Stele, which drive the real `stele` binary:
//! finding (and if need be building) it, starting `stele serve` on a random port, killing
//! it, talking HTTP to it, generating events, and reading segment files independently of
//! the store's own code.
//!
//! Run them with the binary built first, so the tests do not have to build it themselves
//! (see [`bin`] for why and how they would):
//!
//! ```text
//! cargo build -p stele && cargo test -p stele-tests
//! ```
//!
//! `STELE_BIN=/path/to/stele` tests another build; `STELE_TEST_SEED=N` repeats a random run
//! (the crash test prints its seed).
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

pub mod bin;
pub mod events;
pub mod frames;
pub mod server;

pub use bin::{stele_bin, workspace_root};
pub use events::{
    acks, b64, client_fields, event, event_with_id, leaf_hash, new_id, unb64, Ack, Rng,
};
pub use server::{
    checkpoint_size, create_token, http_client, public_key, run_stele, start_and_kill_after,
    verify, Server, StartFailure, TestTokens,
};

/// Copies the directory tree `from` to `to` (files and directories only).
///
/// # Panics
///
/// On I/O errors.
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            copy_dir(&e.path(), &target);
        } else if ft.is_file() {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}
