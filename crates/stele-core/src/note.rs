//! C2SP signed-note with Ed25519 (algorithm byte 0x01): key strings, signing, verification.
//!
// API (to implement):
// pub struct NoteSigner { name, key_id: u32, key: ed25519_dalek::SigningKey }
//   generate(name: &str) -> Result<Self, NoteError>  (OS randomness), from_seed(name, [u8;32]),
//   from_signer_key(s: &str) ("PRIVATE+KEY+<name>+<hex id>+<base64(0x01‖seed)>"), to_signer_key() -> String,
//   verifier() -> NoteVerifier, name(), key_id(), sign(text: &str) -> Result<String /* the whole signed note */, NoteError>
//   sign_line(text) -> String (one "— name base64" line) for adding a signature to an existing note
// pub struct NoteVerifier { name, key_id, key: VerifyingKey }
//   from_verifier_key(s: &str) ("<name>+<hex id>+<base64(0x01‖pubkey)>"), to_verifier_key() -> String, name(), key_id()
//   verify_text(text, sig) ...
// pub struct Note { pub text: String, pub signatures: Vec<NoteSignature> }  NoteSignature { name, key_id, bytes: Vec<u8> }
//   Note::parse(bytes: &[u8]) -> Result<Note, NoteError>  (spec limits: text ends in \n, blank line, sig lines "— name base64", ...)
//   Note::verified_by(&self, v: &NoteVerifier) -> Result<(), NoteError>   // a valid signature by this key exists
//   Note::to_bytes()
// pub fn key_id(name: &str, alg: u8, pubkey: &[u8]) -> u32   // SHA-256(name ‖ 0x0A ‖ alg ‖ pubkey)[:4] BE
// pub fn valid_key_name(name) -> bool
