//! `stele verify --gossip WITNESS_URL`: compare the checkpoint this verifier accepted with the
//! one a witness cosigned (tlog-witness monitoring endpoint `GET /<origin hash>/checkpoint`),
//! proving consistency between the two with the log's own consistency proof, then hand ours to
//! the witness (`POST /gossip`) so it can check it against its view too.
//!
//! A log that shows this verifier one tree and the witnesses another cannot pass: either the
//! log proves the two checkpoints consistent, or the pair becomes a proof of misbehaviour.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use stele_core::checkpoint::{open_checkpoint, Checkpoint};
use stele_core::merkle::verify_consistency;
use stele_core::misbehaviour::MisbehaviourProof;
use stele_core::note::NoteVerifier;
use stele_core::witness::{origin_hash, GossipRequest};
use stele_core::Hash;

use super::evidence;
use crate::client::{http_failure, Client, ConsistencyProof};
use crate::exit::Failure;

/// What this verifier holds: the accepted checkpoint and its note.
pub struct Ours<'a> {
    /// The checkpoint.
    pub cp: &'a Checkpoint,
    /// Its signed note as served.
    pub note: &'a str,
}

/// Compares `ours` with the witness at `url` and returns a one-line summary.
///
/// # Errors
/// [`Failure`] when the views contradict each other (a proof is written to `evidence_out`),
/// when the log cannot prove them consistent, or when the witness serves a checkpoint the log
/// did not sign; environment errors when the witness cannot be reached.
pub fn compare(
    log: &Client,
    url: &str,
    key: &NoteVerifier,
    ours: &Ours<'_>,
    evidence_out: &Path,
) -> Result<String> {
    let witness = Witness::new(url)?;
    let Some(theirs) = witness.checkpoint(&ours.cp.origin)? else {
        return Ok(format!("{url}: has not cosigned this log yet"));
    };
    let (w, _) = open_checkpoint(&theirs, key).map_err(|e| {
        Failure::verification(format!(
            "the witness at {url} serves a checkpoint not signed by the log key: {e}"
        ))
    })?;
    let their_note = String::from_utf8_lossy(&theirs).into_owned();
    let contradiction = |full: Vec<Hash>, what: String| -> anyhow::Error {
        match evidence::bind(&their_note, ours.note, full, key) {
            Some((proof, c)) => written(&proof, &c.to_string(), evidence_out),
            None => Failure::verification(what).into(),
        }
    };
    let us = ours.cp;
    // The full-form proof between the two, in the larger tree, from the log.
    let full = if w.size == us.size {
        if w.root != us.root {
            return Err(contradiction(
                vec![],
                format!(
                    "the witness at {url} cosigned another root for size {}",
                    w.size
                ),
            ));
        }
        Vec::new()
    } else {
        let (small, large) = if w.size < us.size { (&w, us) } else { (us, &w) };
        if small.size == 0 {
            Vec::new()
        } else {
            let proof: ConsistencyProof = log
                .get_json(&format!(
                    "/v1/proofs/consistency?from={}&to={}",
                    small.size, large.size
                ))
                .map_err(|e| {
                    Failure::verification(format!(
                        "the witness at {url} cosigned size {}, and the log cannot prove it consistent with size {}: {e:#}",
                        w.size, us.size
                    ))
                })?;
            let full = evidence::full_form(log, small.size, large.size, &proof.hashes)?;
            if let Err(e) = verify_consistency(
                small.size,
                large.size,
                &proof.hashes,
                &small.root,
                &large.root,
            ) {
                return Err(contradiction(
                    full,
                    format!(
                        "the witness at {url} cosigned size {} and this verifier accepted size {}, and the log's proof between them fails ({e}); it cannot be bound to a contradiction",
                        w.size, us.size
                    ),
                ));
            }
            full
        }
    };
    let told = tell(&witness, url, key, ours, full, evidence_out)?;
    Ok(format!(
        "{url}: cosigned size {}, consistent with ours; {told}",
        w.size
    ))
}

/// `POST /gossip` our checkpoint (and the proof) to the witness, and returns its verdict.
fn tell(
    witness: &Witness,
    url: &str,
    key: &NoteVerifier,
    ours: &Ours<'_>,
    full: Vec<Hash>,
    evidence_out: &Path,
) -> Result<String> {
    let body = GossipRequest {
        proof: full,
        checkpoint: ours.note.as_bytes().to_vec(),
    }
    .to_bytes();
    let (status, text) = witness.gossip(body)?;
    match status {
        200 => Ok(format!("witness says: {}", text.trim())),
        409 => {
            let proof = MisbehaviourProof::parse(text.as_bytes()).map_err(|e| {
                Failure::verification(format!(
                    "the witness at {url} reports a contradiction, with an unreadable proof: {e}"
                ))
            })?;
            let c = proof.verify(key).map_err(|e| {
                Failure::verification(format!(
                    "the witness at {url} reports a contradiction, with a proof that does not verify: {e}"
                ))
            })?;
            Err(written(&proof, &c.to_string(), evidence_out))
        }
        _ => Ok(format!(
            "witness answered HTTP {status}: {}",
            text.lines().next().unwrap_or_default()
        )),
    }
}

/// A witness's HTTP endpoints. Deliberately not [`Client`]: that one sends the log's API
/// token, which is none of a witness's business.
struct Witness {
    http: reqwest::blocking::Client,
    base: String,
}

impl Witness {
    fn new(url: &str) -> Result<Self> {
        let parsed =
            reqwest::Url::parse(url).with_context(|| format!("--gossip {url:?} is not a URL"))?;
        anyhow::ensure!(
            matches!(parsed.scheme(), "http" | "https"),
            "--gossip {url:?} must be an http:// or https:// URL"
        );
        let http = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("stele/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the HTTP client")?;
        Ok(Witness {
            http,
            base: url.trim_end_matches('/').to_owned(),
        })
    }

    /// `GET /<origin hash>/checkpoint`; `None` on 404.
    fn checkpoint(&self, origin: &str) -> Result<Option<Vec<u8>>> {
        let url = format!("{}/{}/checkpoint", self.base, origin_hash(origin));
        let resp = self
            .http
            .get(&url)
            .send()
            .with_context(|| format!("GET {url}: cannot reach the witness"))?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(http_failure("GET", resp).into());
        }
        let body = resp
            .bytes()
            .with_context(|| format!("GET {url}: reading the answer"))?;
        Ok(Some(body.to_vec()))
    }

    /// `POST /gossip`: the status and the answer's text.
    fn gossip(&self, body: Vec<u8>) -> Result<(u16, String)> {
        let url = format!("{}/gossip", self.base);
        let resp = self
            .http
            .post(&url)
            .body(body)
            .send()
            .with_context(|| format!("POST {url}: cannot reach the witness"))?;
        let status = resp.status().as_u16();
        let text = resp
            .text()
            .with_context(|| format!("POST {url}: reading the answer"))?;
        Ok((status, text))
    }
}

/// Saves `proof` and returns the failure to report.
pub fn written(proof: &MisbehaviourProof, what: &str, out: &Path) -> anyhow::Error {
    match evidence::save(out, proof) {
        Ok(path) => Failure::verification(format!(
            "{what}; proof of misbehaviour written to {} (check it with `stele verify-misbehaviour {} --key VKEY`)",
            path.display(),
            path.display()
        ))
        .into(),
        Err(e) => Failure::verification(format!(
            "{what}; the proof of misbehaviour could not be saved: {e:#}"
        ))
        .into(),
    }
}
