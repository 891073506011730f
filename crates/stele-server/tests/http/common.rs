//! Test harness: start a log, talk to it.

use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use serde_json::{json, Value};
use stele_core::checkpoint::{open_checkpoint, Checkpoint};
use stele_core::note::{NoteSigner, NoteVerifier};
use stele_server::{AppState, ServerConfig};
use stele_store::{EntryKey, Store, StoreOptions};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const ORIGIN: &str = "example.test/stele";

/// A running server and the store behind it.
pub struct TestLog {
    pub url: String,
    pub client: reqwest::Client,
    pub store: Store,
    pub index: stele_index::Index,
    pub verifier: NoteVerifier,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
    _dir: TempDir,
}

/// Starts a log with the default configuration.
pub async fn start() -> TestLog {
    start_with(|_| {}).await
}

/// Starts a log after letting `configure` adjust the server configuration.
pub async fn start_with(configure: impl FnOnce(&mut ServerConfig)) -> TestLog {
    let dir = tempfile::tempdir().unwrap();
    let signer = NoteSigner::from_seed(ORIGIN, [7; 32]).unwrap();
    let verifier = signer.verifier();
    let mut options = StoreOptions::new(dir.path(), signer);
    // Tests publish checkpoints themselves, so what they check does not race a timer.
    options.checkpoint_interval = Duration::from_secs(3600);
    options.key_of = |entry| {
        stele_core::event::entry_key(entry).map(|(id, digest)| EntryKey {
            id: id.into_bytes(),
            digest,
        })
    };
    let store = Store::open(options).unwrap();
    let mut config = ServerConfig::default();
    configure(&mut config);
    let index = stele_index::Index::open(
        store.clone(),
        stele_index::IndexOptions::new(dir.path().join("index")),
    )
    .unwrap();
    let state = AppState::with_index(store.clone(), config, index.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(stele_server::serve(listener, state, async {
        let _ = rx.await;
    }));
    TestLog {
        url,
        client: reqwest::Client::new(),
        store,
        index,
        verifier,
        shutdown: Some(tx),
        server: Some(server),
        _dir: dir,
    }
}

impl TestLog {
    /// Posts `body` to /v1/events with the given Content-Type (none if `None`).
    pub async fn post(
        &self,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .post(format!("{}/v1/events", self.url))
            .body(body);
        if let Some(ct) = content_type {
            req = req.header(CONTENT_TYPE, ct);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    /// Posts JSON and expects 200; returns the `entries`.
    pub async fn append(&self, body: &Value) -> Vec<Value> {
        let (status, answer) = self.post(Some("application/json"), body.to_string()).await;
        assert_eq!(status, 200, "{answer}");
        answer["entries"].as_array().unwrap().clone()
    }

    /// GET `path` (starting with '/').
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
    }

    /// GET `path` and parse JSON.
    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let resp = self.get(path).await;
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    /// The stored bytes of entry `index`, through the API.
    pub async fn entry(&self, index: u64) -> Vec<u8> {
        let resp = self.get(&format!("/v1/events/{index}")).await;
        assert_eq!(resp.status().as_u16(), 200);
        resp.bytes().await.unwrap().to_vec()
    }

    /// Publishes a checkpoint of everything appended so far and returns it as served at
    /// /checkpoint, verified with the log's key.
    pub async fn checkpoint(&self) -> (Checkpoint, String) {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.publish_checkpoint())
            .await
            .unwrap()
            .unwrap();
        let text = self.get("/checkpoint").await.text().await.unwrap();
        let (cp, _) = open_checkpoint(text.as_bytes(), &self.verifier).unwrap();
        (cp, text)
    }

    /// Waits until the query index covers the whole log.
    pub async fn indexed(&self) {
        let (index, size) = (self.index.clone(), self.store.size());
        let done =
            tokio::task::spawn_blocking(move || index.wait_for(size, Duration::from_secs(30)))
                .await
                .unwrap();
        assert!(done, "the index did not catch up");
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
    }
}

/// A valid event, distinct for each `n`.
pub fn event(n: usize) -> Value {
    json!({
        "actor": { "type": "user", "id": format!("user-{n}") },
        "action": "document.read",
        "resource": { "type": "document", "id": format!("doc-{n}") },
        "outcome": "allow",
    })
}
