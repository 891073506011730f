//! C2SP tlog-checkpoint bodies: `<origin>\n<size>\n<base64 root>\n[extension lines]`.
//!
// API (to implement):
// pub struct Checkpoint { pub origin: String, pub size: u64, pub root: Hash, pub extensions: Vec<String> }
//   to_text(&self) -> String ; parse(text: &str) -> Result<Checkpoint, CheckpointError>
// pub fn sign_checkpoint(cp: &Checkpoint, signer: &NoteSigner) -> Result<String, ...>  // full signed note
// pub fn open_checkpoint(note: &[u8], verifier: &NoteVerifier) -> Result<(Checkpoint, Note), ...>
//   (origin must equal verifier name; signature must verify)
