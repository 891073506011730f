//! `stele-client` against the real binary: a log that goes away (SIGKILL) and comes back on
//! the same address, with an application that also restarts in between. Every event recorded
//! ends up in the log exactly once.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::expect_used)]

use std::time::Duration;

use serde_json::json;
use stele_client::{Client, Delivery};
use stele_tests::server::Server;

fn event(n: usize) -> serde_json::Value {
    json!({
        "actor": {"type": "user", "id": format!("u{}", n % 7)},
        "action": "document.read",
        "resource": {"type": "document", "id": format!("doc-{n}")},
        "outcome": if n.is_multiple_of(3) { "deny" } else { "allow" },
        "source": "client-test",
    })
}

fn client(url: &str, spool: &std::path::Path) -> Client {
    Client::builder(url)
        .token("test-token")
        .spool_dir(spool)
        .backoff(Duration::from_millis(20), Duration::from_millis(200))
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap()
}

#[test]
fn no_event_is_lost_while_the_log_is_down_and_none_is_duplicated() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let spool = dir.path().join("spool");
    // An address the log can come back on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let url = format!("http://{listen}");
    let server = Server::try_start_on(&data, &listen, &[]).unwrap();

    let app = client(&url, &spool);
    let mut ids = Vec::new();
    for n in 0..50 {
        ids.push(app.record(event(n)).unwrap());
    }
    app.drain(Duration::from_secs(20)).unwrap();
    assert_eq!(server.size(), 50);
    assert_eq!(app.stats().stored, 50);

    // The log dies. The application keeps recording; nothing blocks or fails.
    server.kill();
    for n in 50..120 {
        ids.push(app.record(event(n)).unwrap());
    }
    let (id, delivery) = app.record_durable(event(120)).unwrap();
    ids.push(id);
    assert_eq!(delivery, Delivery::Spooled);
    app.flush(Duration::from_secs(20)).unwrap();
    assert_eq!(app.stats().spooled, 71);
    assert!(
        app.drain(Duration::from_millis(300)).is_err(),
        "the log is down"
    );
    // The application restarts too; its spool is what it left.
    app.close();
    let files: Vec<_> = std::fs::read_dir(&spool)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ndjson"))
        .collect();
    assert!(!files.is_empty());
    let kept = std::fs::read(&files[0]).unwrap();

    let app = client(&url, &spool);
    for n in 121..130 {
        ids.push(app.record(event(n)).unwrap());
    }
    // The log comes back on the same address; the spool is replayed, then the new events.
    let server = Server::try_start_on(&data, &listen, &[]).unwrap();
    app.drain(Duration::from_secs(30)).unwrap();
    assert_eq!(server.size(), 130, "{}", server.stderr());
    for id in &ids {
        let (status, _) = server.get(&format!("/v1/events/{id}"));
        assert_eq!(status, 200, "event {id} is missing");
    }
    // Order is kept: the spooled events come before the ones recorded after the restart.
    let first_new = server.get_json(&format!("/v1/events/{}", ids[121]));
    let last_spooled = server.get_json(&format!("/v1/events/{}", ids[120]));
    assert!(first_new["time"].as_str() >= last_spooled["time"].as_str());
    assert_eq!(app.stats().spool_bytes, 0);
    app.close();

    // A crash between the log's acknowledgement and the spool file's removal replays a batch
    // that is already stored: the log answers it as duplicates, and nothing is added.
    std::fs::write(spool.join("00000000000000009999.ndjson"), &kept).unwrap();
    let app = client(&url, &spool);
    app.drain(Duration::from_secs(20)).unwrap();
    assert_eq!(server.size(), 130);
    assert_eq!(app.stats().spool_bytes, 0);
}

#[test]
fn invalid_events_fail_in_the_callers_hands_and_refused_batches_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let app = client(&server.url, &dir.path().join("spool"));
    let err = app
        .record(json!({"actor": {"type": "robot"}, "action": "x", "outcome": "allow"}))
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("$.actor.type") && text.contains("$.resource"),
        "{text}"
    );
    // Clients may not forge `original`.
    let mut forged = event(1);
    forged["original"] = json!("x");
    assert!(app
        .record(forged)
        .unwrap_err()
        .to_string()
        .contains("$.original"));
    // An id the log already holds with other content: refused for good (409), kept aside.
    let (id, _) = app.record_durable(event(1)).unwrap();
    let mut other = event(2);
    other["id"] = json!(id.to_string());
    let err = app.record_durable(other).unwrap_err();
    match err {
        stele_client::ClientError::Rejected { status, path, .. } => {
            assert_eq!(status, 409);
            assert!(path.unwrap().exists());
        }
        e => panic!("unexpected {e}"),
    }
    assert_eq!(app.stats().rejected, 1);
    assert_eq!(server.size(), 1);
}
