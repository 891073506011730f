//! Where everything lives inside a data directory.
//!
//! ```text
//! DATA/
//!   stele.json                 log identity: {"format": 1, "origin": "..."}
//!   key/signer.key             signed-note private key (mode 0600, refused if others can read)
//!   key/verifier.vkey          signed-note verifier key (public)
//!   key/rotations.json         every key rotation: old and new verifier keys, statement (public)
//!   key/retired/<id>.key       a retired signing key, kept (0600) only during its transition window
//!   key/rotate.pending         a requested rotation not yet carried out: the new key (0600)
//!   log/LOCK                   advisory lock held by the process that has the store open
//!   log/checkpoint             latest signed checkpoint (replaced atomically)
//!   log/entries/NNNNNNNN.seg   framed entries; segment s holds bundles [s·4096, (s+1)·4096)
//!   log/bundles.idx            derived: u64 BE byte offset of each bundle's first frame in its segment
//!   log/hashes/LL              derived: every complete node hash of tree level LL, 32 bytes each
//!   log/idindex/               derived: event id → (index, time, content digest); leaf-hash prefix → index
//! ```
//! "Derived" files can be rebuilt from the segments; they are made durable before each
//! checkpoint is written, so recovery trusts them up to the checkpoint's size and rebuilds the rest.

use std::path::{Path, PathBuf};

/// Entry bundles per segment file.
pub const BUNDLES_PER_SEGMENT: u64 = 4096;
/// Entries per bundle (tlog-tiles width).
pub const BUNDLE_WIDTH: u64 = 256;
/// Entries per segment file.
pub const ENTRIES_PER_SEGMENT: u64 = BUNDLES_PER_SEGMENT * BUNDLE_WIDTH;

/// Paths of one data directory.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// The layout rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Layout { root: root.into() }
    }
    /// The data directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// `stele.json`.
    pub fn identity(&self) -> PathBuf {
        self.root.join("stele.json")
    }
    /// `key/`.
    pub fn key_dir(&self) -> PathBuf {
        self.root.join("key")
    }
    /// `key/signer.key`.
    pub fn signer_key(&self) -> PathBuf {
        self.key_dir().join("signer.key")
    }
    /// `key/verifier.vkey`.
    pub fn verifier_key(&self) -> PathBuf {
        self.key_dir().join("verifier.vkey")
    }
    /// `key/rotations.json`.
    pub fn rotations(&self) -> PathBuf {
        self.key_dir().join("rotations.json")
    }
    /// `key/retired/`.
    pub fn retired_dir(&self) -> PathBuf {
        self.key_dir().join("retired")
    }
    /// `key/retired/<key id>.key`: a retired signing key during its transition window.
    pub fn retired_signer(&self, key_id: u32) -> PathBuf {
        self.retired_dir().join(format!("{key_id:08x}.key"))
    }
    /// `key/rotate.pending`.
    pub fn pending_rotation(&self) -> PathBuf {
        self.key_dir().join("rotate.pending")
    }
    /// `log/`.
    pub fn log_dir(&self) -> PathBuf {
        self.root.join("log")
    }
    /// `log/LOCK`.
    pub fn lock(&self) -> PathBuf {
        self.log_dir().join("LOCK")
    }
    /// `log/checkpoint`.
    pub fn checkpoint(&self) -> PathBuf {
        self.log_dir().join("checkpoint")
    }
    /// `log/entries/`.
    pub fn entries_dir(&self) -> PathBuf {
        self.log_dir().join("entries")
    }
    /// `log/entries/NNNNNNNN.seg`.
    pub fn segment(&self, s: u64) -> PathBuf {
        self.entries_dir().join(format!("{s:08}.seg"))
    }
    /// `log/bundles.idx`.
    pub fn bundle_index(&self) -> PathBuf {
        self.log_dir().join("bundles.idx")
    }
    /// `log/hashes/`.
    pub fn hashes_dir(&self) -> PathBuf {
        self.log_dir().join("hashes")
    }
    /// `log/hashes/LL`.
    pub fn level(&self, level: u8) -> PathBuf {
        self.hashes_dir().join(format!("{level:02}"))
    }
    /// `log/idindex/` (a fjall database directory).
    pub fn ids(&self) -> PathBuf {
        self.log_dir().join("idindex")
    }

    /// `log/ids.redb`, the id index of earlier builds: derived, so it is deleted and rebuilt
    /// as `log/idindex/` from the entries.
    pub fn legacy_ids(&self) -> PathBuf {
        self.log_dir().join("ids.redb")
    }
}

/// The segment that holds entry `index`.
pub fn segment_of(index: u64) -> u64 {
    index / ENTRIES_PER_SEGMENT
}
