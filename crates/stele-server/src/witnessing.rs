//! The log's side of C2SP tlog-witness: submit each new checkpoint to the configured witnesses,
//! collect their cosignatures, and decide which note `GET /checkpoint` serves.
//!
//! A background task ([`Witnessing::run`]) polls the store's latest checkpoint. For each new
//! one it sends `POST <witness>/add-checkpoint` to every witness that has not cosigned it,
//! concurrently, with the consistency proof from the size that witness last acknowledged (0,
//! and so no proof, until it has answered once). A `409` names the witness's size: the request
//! is repeated from there. A `200` must carry a valid `cosignature/v1` by the configured key,
//! or it counts as a failure. Failures are logged and retried with exponential backoff (1 s to
//! 60 s) while that checkpoint is still the latest; each request is bounded by a timeout.
//! None of this touches the append path: appends never wait for a witness.
//!
//! What `/checkpoint` serves ([`Witnessing::checkpoint_note`]):
//!
//! - without a quorum: the latest checkpoint, with the cosignature lines collected for it so
//!   far (none at first);
//! - with a quorum of K: the latest checkpoint that K distinct witnesses cosigned, with their
//!   cosignatures — the previous such checkpoint until a newer one reaches K, and nothing
//!   (404) before the first does.
//!
//! Metrics: `stele_witness_cosigned_size{witness,url}`, `stele_witness_failures_total{…}` and
//! `stele_checkpoint_cosigned_size` (the size of the last checkpoint meeting the quorum).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use stele_core::cosignature::CosignatureVerifier;
use stele_core::note::{Note, NoteSignature};
use stele_core::witness::{parse_cosignature_lines, parse_size_body, AddCheckpointRequest};
use stele_core::Hash;
use stele_store::{SignedCheckpoint, Store};

/// How long one request to a witness may take, connection included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the store's latest checkpoint is looked at.
const POLL: Duration = Duration::from_millis(100);
/// Checkpoints whose cosignatures are kept while waiting for a quorum.
const RECENT: usize = 16;
/// 409 answers followed for one submission before giving up.
const MAX_CONFLICTS: usize = 3;
const MIN_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// One configured witness.
#[derive(Clone, Debug)]
pub struct WitnessConfig {
    /// Its submission prefix, e.g. `https://witness.example/` (`add-checkpoint` is appended).
    pub url: String,
    /// Its cosignature verifier key (type `0x04`).
    pub key: CosignatureVerifier,
}

/// Errors configuring witnessing.
#[derive(Debug, thiserror::Error)]
pub enum WitnessingError {
    /// The quorum is larger than the number of witnesses.
    #[error("witness quorum {quorum} is more than the {count} witnesses configured")]
    QuorumTooLarge {
        /// The quorum asked for.
        quorum: usize,
        /// Witnesses configured.
        count: usize,
    },
    /// Two witnesses with the same key.
    #[error("witness key {0} is configured twice")]
    DuplicateKey(String),
    /// The HTTP client could not be built.
    #[error("building the HTTP client: {0}")]
    Client(String),
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WitnessLabels {
    witness: String,
    url: String,
}

/// A checkpoint and the cosignatures collected for it, by witness position.
#[derive(Clone, Debug)]
struct Collected {
    checkpoint: SignedCheckpoint,
    cosignatures: BTreeMap<usize, NoteSignature>,
}

impl Collected {
    fn note(&self) -> String {
        let mut note = self.checkpoint.note.clone();
        for sig in self.cosignatures.values() {
            note.push_str(&sig.to_line());
        }
        note
    }
}

/// Per-witness progress.
#[derive(Clone, Debug, Default)]
struct Progress {
    /// The size the witness last told us it cosigned (`None` until it answers).
    size: Option<u64>,
    failures: u32,
    retry_at: Option<Instant>,
}

#[derive(Default)]
struct Published {
    /// Recent checkpoints, oldest first.
    recent: Vec<Collected>,
    /// The latest note that met the quorum (quorum > 0 only).
    quorum_note: Option<(u64, String)>,
}

struct Inner {
    witnesses: Vec<WitnessConfig>,
    quorum: usize,
    http: reqwest::Client,
    progress: Mutex<Vec<Progress>>,
    published: Mutex<Published>,
    cosigned_size: Family<WitnessLabels, Gauge>,
    failures: Family<WitnessLabels, Counter>,
    quorum_size: Gauge,
}

/// Witness submission and cosignature collection for one log. Cheap to clone.
#[derive(Clone)]
pub struct Witnessing(Arc<Inner>);

impl Witnessing {
    /// Witnessing with `witnesses`, publishing only checkpoints cosigned by `quorum` of them
    /// (0: publish every checkpoint at once, with whatever cosignatures it has). `timeout`
    /// bounds each request.
    ///
    /// # Errors
    ///
    /// [`WitnessingError`] for a quorum above the number of witnesses or a key given twice.
    pub fn new(
        witnesses: Vec<WitnessConfig>,
        quorum: usize,
        timeout: Duration,
    ) -> Result<Self, WitnessingError> {
        if quorum > witnesses.len() {
            return Err(WitnessingError::QuorumTooLarge {
                quorum,
                count: witnesses.len(),
            });
        }
        for (i, w) in witnesses.iter().enumerate() {
            if witnesses.iter().take(i).any(|o| o.key == w.key) {
                return Err(WitnessingError::DuplicateKey(w.key.to_verifier_key()));
            }
        }
        let http = reqwest::Client::builder()
            .connect_timeout(timeout)
            .timeout(timeout)
            .user_agent(concat!("stele/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| WitnessingError::Client(e.to_string()))?;
        Ok(Witnessing(Arc::new(Inner {
            progress: Mutex::new(vec![Progress::default(); witnesses.len()]),
            witnesses,
            quorum,
            http,
            published: Mutex::new(Published::default()),
            cosigned_size: Family::default(),
            failures: Family::default(),
            quorum_size: Gauge::default(),
        })))
    }

    /// The configured witnesses.
    pub fn witnesses(&self) -> &[WitnessConfig] {
        &self.0.witnesses
    }

    /// The quorum (0 when none is required).
    pub fn quorum(&self) -> usize {
        self.0.quorum
    }

    /// Registers the witness metrics.
    pub fn register_metrics(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("stele");
        r.register(
            "witness_cosigned_size",
            "Tree size each witness last cosigned (or reported as its latest)",
            self.0.cosigned_size.clone(),
        );
        r.register(
            "witness_failures",
            "Failed submissions to each witness (unreachable, refused, or a bad answer)",
            self.0.failures.clone(),
        );
        r.register(
            "checkpoint_cosigned_size",
            "Size of the latest checkpoint cosigned by the quorum (by any witness without one)",
            self.0.quorum_size.clone(),
        );
        for w in &self.0.witnesses {
            // Create the series so they show before the first submission.
            let _ = self.0.cosigned_size.get_or_create(&labels(w));
            let _ = self.0.failures.get_or_create(&labels(w));
        }
    }

    /// The note `GET /checkpoint` serves, given the store's latest checkpoint (see the module
    /// documentation). `None` when there is nothing to serve yet.
    pub fn checkpoint_note(&self, latest: Option<SignedCheckpoint>) -> Option<String> {
        let published = self
            .0
            .published
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.0.quorum > 0 {
            return published.quorum_note.as_ref().map(|(_, n)| n.clone());
        }
        let latest = latest?;
        let collected = published
            .recent
            .iter()
            .rev()
            .find(|c| c.checkpoint.size == latest.size && c.checkpoint.root == latest.root);
        Some(collected.map_or(latest.note.clone(), Collected::note))
    }

    /// Submits checkpoints of `store` to the witnesses until the task is dropped or aborted.
    pub async fn run(self, store: Store) {
        loop {
            tokio::time::sleep(POLL).await;
            let Some(cp) = store.latest_checkpoint() else {
                continue;
            };
            let targets = self.targets(&cp);
            if targets.is_empty() {
                continue;
            }
            let mut round = tokio::task::JoinSet::new();
            for i in targets {
                let (this, store, cp) = (self.clone(), store.clone(), cp.clone());
                round.spawn(async move { this.submit_one(i, &store, &cp).await });
            }
            while round.join_next().await.is_some() {}
        }
    }

    /// Records `cp` among the recent checkpoints and returns the witnesses to send it to: those
    /// without a cosignature for it and not waiting out a backoff.
    fn targets(&self, cp: &SignedCheckpoint) -> Vec<usize> {
        let mut published = self
            .0
            .published
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let known = published
            .recent
            .iter()
            .position(|c| c.checkpoint.size == cp.size && c.checkpoint.root == cp.root);
        let index = match known {
            Some(i) => i,
            None => {
                published.recent.push(Collected {
                    checkpoint: cp.clone(),
                    cosignatures: BTreeMap::new(),
                });
                let excess = published.recent.len().saturating_sub(RECENT);
                published.recent.drain(..excess);
                published.recent.len().saturating_sub(1)
            }
        };
        let done: Vec<usize> = published
            .recent
            .get(index)
            .map(|c| c.cosignatures.keys().copied().collect())
            .unwrap_or_default();
        drop(published);
        let now = Instant::now();
        let progress = self
            .0
            .progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        (0..self.0.witnesses.len())
            .filter(|i| !done.contains(i))
            .filter(|&i| {
                progress
                    .get(i)
                    .and_then(|p| p.retry_at)
                    .is_none_or(|t| t <= now)
            })
            .collect()
    }

    /// Submits `cp` to witness `i` and records the outcome.
    async fn submit_one(&self, i: usize, store: &Store, cp: &SignedCheckpoint) {
        let Some(w) = self.0.witnesses.get(i) else {
            return;
        };
        let known = self.progress(i).size;
        match self.submit(w, known, store, cp).await {
            Ok((sig, size)) => {
                self.set_progress(i, |p| {
                    *p = Progress {
                        size: Some(size),
                        ..Progress::default()
                    }
                });
                self.0
                    .cosigned_size
                    .get_or_create(&labels(w))
                    .set(gauge(size));
                tracing::debug!(witness = w.key.name(), size, "cosigned");
                self.add_cosignature(i, cp, sig);
            }
            Err(Failure { message, size }) => {
                let failures = self.progress(i).failures.saturating_add(1);
                let backoff = MIN_BACKOFF
                    .saturating_mul(1u32 << failures.saturating_sub(1).min(6))
                    .min(MAX_BACKOFF);
                self.set_progress(i, |p| {
                    p.failures = failures;
                    p.retry_at = Some(Instant::now() + backoff);
                    if size.is_some() {
                        p.size = size;
                    }
                });
                if let Some(s) = size {
                    self.0.cosigned_size.get_or_create(&labels(w)).set(gauge(s));
                }
                self.0.failures.get_or_create(&labels(w)).inc();
                tracing::warn!(
                    witness = w.key.name(),
                    url = %w.url,
                    size = cp.size,
                    retry_in_s = backoff.as_secs(),
                    "witness did not cosign: {message}"
                );
            }
        }
    }

    fn progress(&self, i: usize) -> Progress {
        let p = self
            .0
            .progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        p.get(i).cloned().unwrap_or_default()
    }

    fn set_progress(&self, i: usize, f: impl FnOnce(&mut Progress)) {
        let mut p = self
            .0
            .progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(p) = p.get_mut(i) {
            f(p);
        }
    }

    /// Adds witness `i`'s cosignature of `cp`, and publishes `cp` if it now meets the quorum.
    fn add_cosignature(&self, i: usize, cp: &SignedCheckpoint, sig: NoteSignature) {
        let mut published = self
            .0
            .published
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(c) = published
            .recent
            .iter_mut()
            .find(|c| c.checkpoint.size == cp.size && c.checkpoint.root == cp.root)
        else {
            return;
        };
        c.cosignatures.insert(i, sig);
        let (size, count, note) = (c.checkpoint.size, c.cosignatures.len(), c.note());
        if self.0.quorum == 0 {
            self.0.quorum_size.set(gauge(size));
            return;
        }
        let newer = published
            .quorum_note
            .as_ref()
            .is_none_or(|(s, _)| size >= *s);
        if count >= self.0.quorum && newer {
            published.quorum_note = Some((size, note));
            self.0.quorum_size.set(gauge(size));
        }
    }

    /// One `add-checkpoint` exchange, following up to [`MAX_CONFLICTS`] 409 answers. Returns
    /// the witness's verified cosignature and the size it now holds.
    async fn submit(
        &self,
        w: &WitnessConfig,
        known: Option<u64>,
        store: &Store,
        cp: &SignedCheckpoint,
    ) -> Result<(NoteSignature, u64), Failure> {
        let text = Note::parse(cp.note.as_bytes())
            .map_err(|e| Failure::new(format!("our own checkpoint does not parse: {e}")))?
            .text;
        let mut old = known.unwrap_or(0);
        let url = format!("{}/add-checkpoint", w.url.trim_end_matches('/'));
        for _ in 0..=MAX_CONFLICTS {
            if old > cp.size {
                return Err(Failure {
                    message: format!(
                        "the witness has cosigned size {old}, larger than this log's {}: this log was rolled back or forked",
                        cp.size
                    ),
                    size: Some(old),
                });
            }
            let proof = if old == 0 || old == cp.size {
                Vec::new()
            } else {
                consistency_proof(store, old, cp.size).await?
            };
            let body = AddCheckpointRequest {
                old_size: old,
                proof,
                checkpoint: cp.note.clone().into_bytes(),
            }
            .to_bytes();
            let resp = self
                .0
                .http
                .post(&url)
                .body(body)
                .send()
                .await
                .map_err(|e| Failure::new(format!("POST {url}: {e}")))?;
            let status = resp.status();
            let answer = resp
                .bytes()
                .await
                .map_err(|e| Failure::new(format!("POST {url}: reading the answer: {e}")))?;
            match status.as_u16() {
                200 => return accept(w, &text, &answer).map(|sig| (sig, cp.size)),
                409 => {
                    old = parse_size_body(&answer).map_err(|e| {
                        Failure::new(format!("POST {url}: 409 with a bad size body: {e}"))
                    })?;
                }
                code => {
                    let first = String::from_utf8_lossy(&answer);
                    let first = first.lines().next().unwrap_or_default();
                    return Err(Failure::new(format!("POST {url}: HTTP {code}: {first}")));
                }
            }
        }
        Err(Failure {
            message: format!("the witness answered 409 {MAX_CONFLICTS} times in a row"),
            size: Some(old),
        })
    }
}

/// A failed submission: why, and the witness's size if it told us.
struct Failure {
    message: String,
    size: Option<u64>,
}

impl Failure {
    fn new(message: String) -> Self {
        Failure {
            message,
            size: None,
        }
    }
}

fn labels(w: &WitnessConfig) -> WitnessLabels {
    WitnessLabels {
        witness: w.key.name().to_owned(),
        url: w.url.clone(),
    }
}

fn gauge(size: u64) -> i64 {
    i64::try_from(size).unwrap_or(i64::MAX)
}

/// Picks the witness's own cosignature out of a 200 answer and checks it.
fn accept(w: &WitnessConfig, text: &str, answer: &[u8]) -> Result<NoteSignature, Failure> {
    let lines = parse_cosignature_lines(answer)
        .map_err(|e| Failure::new(format!("the witness's answer is malformed: {e}")))?;
    let mine = lines
        .into_iter()
        .find(|s| w.key.is_signer_of(s))
        .ok_or_else(|| {
            Failure::new("the answer holds no cosignature by the configured key".into())
        })?;
    w.key
        .verify(text, &mine)
        .map_err(|e| Failure::new(format!("the witness's cosignature does not verify: {e}")))?;
    Ok(mine)
}

/// Reads a consistency proof on the blocking pool (it reads files).
async fn consistency_proof(store: &Store, from: u64, to: u64) -> Result<Vec<Hash>, Failure> {
    let s = store.clone();
    tokio::task::spawn_blocking(move || s.consistency_proof(from, to))
        .await
        .map_err(|e| Failure::new(format!("proof task failed: {e}")))?
        .map_err(|e| Failure::new(format!("consistency proof {from}..{to}: {e}")))
}

/// Parses `<url>=<verifier key>` (what `stele serve --witness` takes): the key is what follows
/// the first `=` after which a valid witness key follows (a URL may itself contain `=`).
///
/// # Errors
///
/// A message when no split yields an http(s) URL and a valid type-`0x04` key.
pub fn parse_witness_arg(arg: &str) -> Result<WitnessConfig, String> {
    let mut last_err = String::from("expected URL=VKEY");
    for (i, _) in arg.match_indices('=') {
        let (url, key) = (
            arg.get(..i).unwrap_or_default(),
            arg.get(i + 1..).unwrap_or_default(),
        );
        match CosignatureVerifier::from_verifier_key(key) {
            Ok(key) => {
                let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url:?}: {e}"))?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(format!("{url:?} is not an http:// or https:// URL"));
                }
                return Ok(WitnessConfig {
                    url: url.to_owned(),
                    key,
                });
            }
            Err(e) => last_err = format!("{key:?} is not a witness verifier key: {e}"),
        }
    }
    Err(last_err)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use stele_core::checkpoint::Checkpoint;
    use stele_core::cosignature::Cosigner;

    use super::*;

    #[test]
    fn witness_arguments_split_at_the_key() {
        let w = Cosigner::from_seed("w.example/1", [1; 32]).unwrap();
        let vkey = w.verifier().to_verifier_key();
        let c = parse_witness_arg(&format!("http://127.0.0.1:9/a?x=1={vkey}")).unwrap();
        assert_eq!(c.url, "http://127.0.0.1:9/a?x=1");
        assert_eq!(c.key, w.verifier());
        assert!(parse_witness_arg(&format!("ftp://h={vkey}")).is_err());
        assert!(parse_witness_arg("http://h=notakey").is_err());
        assert!(parse_witness_arg(&vkey).is_err());
    }

    #[test]
    fn quorum_is_checked_against_the_witnesses() {
        let w = |s| WitnessConfig {
            url: "http://127.0.0.1:1".into(),
            key: Cosigner::from_seed("w", [s; 32]).unwrap().verifier(),
        };
        assert!(Witnessing::new(vec![w(1)], 2, DEFAULT_TIMEOUT).is_err());
        assert!(Witnessing::new(vec![w(1), w(1)], 1, DEFAULT_TIMEOUT).is_err());
        assert!(Witnessing::new(vec![w(1), w(2)], 2, DEFAULT_TIMEOUT).is_ok());
    }

    #[test]
    fn served_note_follows_the_quorum() {
        let ws: Vec<Cosigner> = (1..=2)
            .map(|s| Cosigner::from_seed(&format!("w{s}"), [s; 32]).unwrap())
            .collect();
        let cfg: Vec<WitnessConfig> = ws
            .iter()
            .map(|c| WitnessConfig {
                url: "http://127.0.0.1:1".into(),
                key: c.verifier(),
            })
            .collect();
        let log = stele_core::note::NoteSigner::from_seed("example.com/log", [9; 32]).unwrap();
        let signed = |size: u64| {
            let cp = Checkpoint {
                origin: "example.com/log".into(),
                size,
                root: Hash([size as u8; 32]),
                extensions: vec![],
            };
            SignedCheckpoint {
                size,
                root: cp.root,
                note: stele_core::checkpoint::sign_checkpoint(&cp, &log).unwrap(),
            }
        };
        let cosign = |w: &Cosigner, cp: &SignedCheckpoint| {
            w.cosign(&Note::parse(cp.note.as_bytes()).unwrap().text, 1000)
                .unwrap()
        };
        let (c1, c2) = (signed(1), signed(2));

        let q2 = Witnessing::new(cfg.clone(), 2, DEFAULT_TIMEOUT).unwrap();
        assert_eq!(q2.targets(&c1), vec![0, 1]);
        q2.add_cosignature(0, &c1, cosign(&ws[0], &c1));
        assert_eq!(q2.targets(&c1), vec![1]);
        assert_eq!(q2.checkpoint_note(Some(c1.clone())), None);
        q2.add_cosignature(1, &c1, cosign(&ws[1], &c1));
        let served = q2.checkpoint_note(Some(c2.clone())).unwrap();
        assert!(served.starts_with(&c1.note));
        assert_eq!(Note::parse(served.as_bytes()).unwrap().signatures.len(), 3);
        // A newer checkpoint with one cosignature does not replace it.
        q2.targets(&c2);
        q2.add_cosignature(0, &c2, cosign(&ws[0], &c2));
        assert!(q2
            .checkpoint_note(Some(c2.clone()))
            .unwrap()
            .starts_with(&c1.note));

        let q0 = Witnessing::new(cfg, 0, DEFAULT_TIMEOUT).unwrap();
        assert_eq!(q0.checkpoint_note(Some(c1.clone())), Some(c1.note.clone()));
        q0.targets(&c1);
        q0.add_cosignature(1, &c1, cosign(&ws[1], &c1));
        let served = q0.checkpoint_note(Some(c1.clone())).unwrap();
        assert_eq!(
            served,
            format!("{}{}", c1.note, cosign(&ws[1], &c1).to_line())
        );
    }
}
