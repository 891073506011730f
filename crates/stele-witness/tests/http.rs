//! The witness over real HTTP on 127.0.0.1: the tlog-witness answers, durable state across a
//! restart, the monitoring endpoint, gossip, and evidence files.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::path::Path;

use stele_core::checkpoint::{sign_checkpoint, Checkpoint};
use stele_core::cosignature::CosignatureVerifier;
use stele_core::merkle::{consistency_proof, MemoryTree};
use stele_core::misbehaviour::MisbehaviourProof;
use stele_core::note::{Note, NoteSigner};
use stele_core::witness::{origin_hash, AddCheckpointRequest, GossipRequest};
use stele_core::Hash;
use stele_witness::{Witness, WitnessOptions};

const ORIGIN: &str = "example.com/log";

struct Running {
    url: String,
    vkey: CosignatureVerifier,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap();
    }
}

async fn start(dir: &Path, log: &NoteSigner) -> Running {
    let mut opts = WitnessOptions::new(dir, vec![(ORIGIN.into(), log.verifier())]);
    opts.name = Some("witness.example/w1".into());
    let (w, _) = Witness::open(opts).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel();
    let vkey = w.verifier();
    let task = tokio::spawn(async move {
        stele_witness::serve(listener, w, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    Running {
        url,
        vkey,
        stop: Some(tx),
        task,
    }
}

fn tree(tag: &str, common: u64, n: u64) -> MemoryTree {
    MemoryTree::from_entries((0..n).map(|i| {
        if i < common {
            format!("common {i}")
        } else {
            format!("{tag} {i}")
        }
    }))
}

fn note(log: &NoteSigner, t: &MemoryTree) -> String {
    let cp = Checkpoint {
        origin: ORIGIN.into(),
        size: t.size(),
        root: t.root(),
        extensions: vec![],
    };
    sign_checkpoint(&cp, log).unwrap()
}

async fn add(url: &str, old: u64, proof: Vec<Hash>, note: &str) -> (u16, Option<String>, String) {
    let body = AddCheckpointRequest {
        old_size: old,
        proof,
        checkpoint: note.as_bytes().to_vec(),
    }
    .to_bytes();
    let r = reqwest::Client::new()
        .post(format!("{url}/add-checkpoint"))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, ct, r.text().await.unwrap())
}

fn evidence(dir: &Path, ext: &str) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir.join("misbehaviour"))
        .map(|d| {
            d.map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == ext))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn witness_cosigns_remembers_across_restarts_and_records_forks() {
    let dir = tempfile::tempdir().unwrap();
    let log = NoteSigner::from_seed(ORIGIN, [7; 32]).unwrap();
    let w = start(dir.path(), &log).await;
    let (t5, t9) = (tree("a", 100, 5), tree("a", 100, 9));

    // First contact: old 0, no proof. The answer is a cosignature line over the checkpoint.
    let n5 = note(&log, &t5);
    let (status, _, body) = add(&w.url, 0, vec![], &n5).await;
    assert_eq!(status, 200, "{body}");
    let mut cosigned = Note::parse(n5.as_bytes()).unwrap();
    cosigned
        .signatures
        .extend(stele_core::witness::parse_cosignature_lines(body.as_bytes()).unwrap());
    let policy = stele_core::cosignature::WitnessPolicy::new(vec![w.vkey.clone()], 1).unwrap();
    policy.check(&cosigned).unwrap();

    // Wrong old size: 409 with the latest size, as text/x.tlog.size.
    let n9 = note(&log, &t9);
    let (status, ct, body) = add(&w.url, 0, vec![], &n9).await;
    assert_eq!(
        (status, ct.as_deref(), body.as_str()),
        (409, Some("text/x.tlog.size"), "5\n")
    );
    // Unknown origin 404, bad signature 403, bad proof 422, old > size 400.
    let other = NoteSigner::from_seed("other.example/log", [8; 32]).unwrap();
    let foreign = sign_checkpoint(
        &Checkpoint {
            origin: "other.example/log".into(),
            size: 9,
            root: t9.root(),
            extensions: vec![],
        },
        &other,
    )
    .unwrap();
    assert_eq!(add(&w.url, 5, vec![], &foreign).await.0, 404);
    let impostor = NoteSigner::from_seed(ORIGIN, [9; 32]).unwrap();
    assert_eq!(add(&w.url, 5, vec![], &note(&impostor, &t9)).await.0, 403);
    let mut bad = consistency_proof(&t9, 5, 9).unwrap();
    bad[1].0[3] ^= 1;
    assert_eq!(add(&w.url, 5, bad, &n9).await.0, 422);
    assert_eq!(add(&w.url, 10, vec![], &n9).await.0, 400);
    assert_eq!(
        add(&w.url, 5, consistency_proof(&t9, 5, 9).unwrap(), &n9)
            .await
            .0,
        200
    );

    // Restart: the state survives, and the monitoring endpoint serves it with the cosignature.
    w.stop().await;
    let w = start(dir.path(), &log).await;
    let (status, _, body) = add(&w.url, 0, vec![], &n5).await;
    assert_eq!(
        (status, body.as_str()),
        (409, "9\n"),
        "a restarted witness forgot"
    );
    let served = reqwest::get(format!("{}/{}/checkpoint", w.url, origin_hash(ORIGIN)))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let served = Note::parse(served.as_bytes()).unwrap();
    served.verified_by(&log.verifier()).unwrap();
    assert!(served.text.contains("\n9\n"));
    policy.check(&served).unwrap();
    assert!(evidence(dir.path(), "proof").is_empty());
    // The bad proof and the smaller checkpoint replayed above are suspicions, saved as
    // alarms (neither proves anything: anyone could have sent them).
    let alarms: Vec<String> = evidence(dir.path(), "alarm")
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert_eq!(alarms.len(), 2, "{alarms:?}");
    assert!(alarms.iter().any(|a| a.contains("smaller than the size 9")));
    assert!(alarms.iter().any(|a| a.contains("does not verify")));

    // A fork at the same size: refused, proven, saved.
    let fork9 = tree("b", 3, 9);
    let (status, _, _) = add(&w.url, 9, vec![], &note(&log, &fork9)).await;
    assert_eq!(status, 422);
    let proofs = evidence(dir.path(), "proof");
    assert_eq!(proofs.len(), 1);
    let p = MisbehaviourProof::parse(&std::fs::read(&proofs[0]).unwrap()).unwrap();
    p.verify(&log.verifier()).unwrap();

    // Gossip: an honest larger checkpoint with a full-form proof is consistent; a fork of it is
    // answered 409 with a proof.
    let t12 = tree("a", 100, 12);
    let gossip = |proof: Vec<Hash>, note: String| {
        let url = w.url.clone();
        async move {
            let r = reqwest::Client::new()
                .post(format!("{url}/gossip"))
                .body(
                    GossipRequest {
                        proof,
                        checkpoint: note.into_bytes(),
                    }
                    .to_bytes(),
                )
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (status, body) = gossip(consistency_proof(&t12, 9, 12).unwrap(), note(&log, &t12)).await;
    assert_eq!((status, body.as_str()), (200, "consistent\n"));
    let f12 = tree("b", 3, 12);
    let (status, body) = gossip(consistency_proof(&f12, 9, 12).unwrap(), note(&log, &f12)).await;
    assert_eq!(status, 409, "{body}");
    MisbehaviourProof::parse(body.as_bytes())
        .unwrap()
        .verify(&log.verifier())
        .unwrap();
    w.stop().await;
}
