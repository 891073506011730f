//! Following a log's signing-key rotations in `stele verify --url`: from the key the user
//! trusts (`--key`), through the statements followed before (kept beside the state file) and
//! those the log serves at `/v1/key/rotations`, to the newest key. The checkpoint must then
//! be signed by that newest key; the trusted checkpoint from before may be signed by any key
//! of the chain. Once followed, a rotation is remembered, so a later run given the old key
//! again still demands the new key's signature (a leaked old key cannot take the verifier
//! back).

use std::path::Path;

use anyhow::Result;
use serde::Deserialize;
use stele_core::note::NoteVerifier;
use stele_core::rotation::{self as core_rotation, KeyRotation};

use super::state;
use crate::client::Client;
use crate::exit::Failure;

/// Where following led.
pub struct Followed {
    /// The newest key: it must sign the checkpoint.
    pub current: NoteVerifier,
    /// Every key of the chain, from the given one to `current`.
    pub chain: Vec<NoteVerifier>,
    /// The statements of the chain (to remember).
    statements: Vec<String>,
    /// Rotations not followed before this run.
    pub newly_followed: Vec<KeyRotation>,
}

#[derive(Deserialize)]
struct Served {
    rotations: Vec<ServedRotation>,
}

#[derive(Deserialize)]
struct ServedRotation {
    statement: String,
}

/// Follows the rotations from `given`.
///
/// # Errors
/// [`Failure::Verification`] for a statement that claims a trusted key's signature and does
/// not verify, or a broken chain; HTTP errors other than 404 (a log without the route).
pub fn follow(client: &Client, given: &NoteVerifier, state_path: &Path) -> Result<Followed> {
    let remembered = state::load_rotations(state_path)?;
    let served: Vec<String> = match client.get_bytes_if_found("/v1/key/rotations")? {
        None => Vec::new(),
        Some(body) => serde_json::from_slice::<Served>(&body)
            .map_err(|e| {
                Failure::verification(format!(
                    "{}: malformed answer: {e}",
                    client.url("/v1/key/rotations")
                ))
            })?
            .rotations
            .into_iter()
            .map(|r| r.statement)
            .collect(),
    };
    let (before, _) = core_rotation::follow(given, remembered.iter().map(|s| s.as_bytes()))
        .map_err(|e| Failure::verification(format!("the remembered key rotations: {e}")))?;
    let all: Vec<&String> = remembered.iter().chain(served.iter()).collect();
    let (current, followed) = core_rotation::follow(given, all.iter().map(|s| s.as_bytes()))
        .map_err(|e| {
            Failure::verification(format!(
                "the key-rotation statements at {}: {e}",
                client.url("/v1/key/rotations")
            ))
        })?;
    let mut chain = vec![given.clone()];
    let mut statements = Vec::new();
    let mut newly_followed = Vec::new();
    let mut seen_before = before == *given;
    for r in followed {
        let text = r.to_text();
        // The note whose text is this rotation's (parse is strict, so the text round-trips).
        if let Some(note) = all
            .iter()
            .find(|s| stele_core::note::Note::parse(s.as_bytes()).is_ok_and(|n| n.text == text))
        {
            statements.push((*note).clone());
        }
        // Rotations up to the key remembered before were followed by an earlier run.
        if seen_before {
            newly_followed.push(r.clone());
        }
        if r.new_key == before {
            seen_before = true;
        }
        chain.push(r.new_key);
    }
    Ok(Followed {
        current,
        chain,
        statements,
        newly_followed,
    })
}

impl Followed {
    /// Remembers the statements followed (only when there are any).
    ///
    /// # Errors
    /// I/O errors.
    pub fn save(&self, state_path: &Path) -> Result<()> {
        if self.statements.is_empty() {
            return Ok(());
        }
        state::save_rotations(state_path, &self.statements)
    }
}
