//! # stele-store
//!
//! Durable, append-only storage of a Stele log on the local file system.
//!
//! PUBLIC API (being implemented; the server codes against these signatures):
//!
//! ```ignore
//! pub struct EntryKey { pub id: [u8; 16], pub digest: [u8; 16] }
//! pub struct NewEntry { pub data: Vec<u8>, pub time_offset: Option<usize>, pub key: Option<EntryKey> }
//! pub struct Appended { pub index: u64, pub leaf_hash: Hash, pub time: Timestamp, pub duplicate: bool }
//! pub struct StoreOptions { pub dir: PathBuf, pub origin: String, pub signer: NoteSigner,
//!     pub checkpoint_interval: Duration, pub key_of: fn(&[u8]) -> Option<EntryKey> }
//! pub struct SignedCheckpoint { pub size: u64, pub root: Hash, pub note: String }
//! #[derive(Clone)] pub struct Store;
//! impl Store {
//!   pub fn open(opts: StoreOptions) -> Result<Store, StoreError>;          // recovery + writer/checkpointer threads
//!   pub async fn append(&self, entries: Vec<NewEntry>) -> Result<Vec<Appended>, StoreError>;   // durable when Ok
//!   pub fn append_blocking(&self, entries: Vec<NewEntry>) -> Result<Vec<Appended>, StoreError>;
//!   pub fn size(&self) -> u64;                                    // durable (acknowledged) entries
//!   pub fn latest_checkpoint(&self) -> Option<SignedCheckpoint>;
//!   pub fn publish_checkpoint(&self) -> Result<SignedCheckpoint, StoreError>;
//!   pub fn entry(&self, index: u64) -> Result<Vec<u8>, StoreError>;        // NotFound past size
//!   pub fn index_of(&self, id: &[u8; 16]) -> Result<Option<u64>, StoreError>;
//!   pub fn leaf_hash(&self, index: u64) -> Result<Hash, StoreError>;
//!   pub fn root(&self, size: u64) -> Result<Hash, StoreError>;
//!   pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, StoreError>;
//!   pub fn consistency_proof(&self, from: u64, to: u64) -> Result<Vec<Hash>, StoreError>;
//!   pub fn hash_tile(&self, level: u8, index: u64, width: Option<u16>) -> Result<Vec<u8>, StoreError>;   // NotFound if beyond size
//!   pub fn entry_bundle(&self, index: u64, width: Option<u16>) -> Result<Vec<u8>, StoreError>;
//!   pub fn metrics(&self) -> &StoreMetrics;   // prometheus_client counters/histograms; register(&self, &mut Registry)
//!   pub fn close(self) -> Result<(), StoreError>;   // final checkpoint, threads joined
//! }
//! pub enum StoreError { NotFound(String), Conflict { id: String }, Overloaded, Poisoned, InvalidArgument(String),
//!     Corrupt { file: PathBuf, index: Option<u64>, detail: String }, Io { op: String, path: PathBuf, source: io::Error }, Locked(PathBuf), ... }
//! pub fn verify_dir(dir: &Path, verifier: &NoteVerifier) -> Result<VerifyReport, VerifyError>;  // offline
//! ```
