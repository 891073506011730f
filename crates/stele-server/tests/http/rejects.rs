//! Every bad request gets the right status and a JSON error body, and appends nothing.

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{event, start_with, TestLog};

const BODY_LIMIT: usize = 8192;
const MAX_EVENTS: usize = 3;

async fn small_log() -> TestLog {
    start_with(|c| {
        c.max_body_bytes = BODY_LIMIT;
        c.max_events = MAX_EVENTS;
    })
    .await
}

/// Posts, checks the status, that the body is a JSON error, and that nothing was appended.
async fn rejected(log: &TestLog, content_type: Option<&str>, body: String, status: u16) -> Value {
    let before = log.store.size();
    let (got, answer) = log.post(content_type, body.clone()).await;
    assert_eq!(got, status, "body {body:.200}: answer {answer}");
    assert!(answer["error"].is_string(), "{answer}");
    assert_eq!(log.store.size(), before, "a rejected request appended");
    let (_, health) = log.get_json("/healthz").await;
    assert_eq!(health["size"], before);
    answer
}

fn paths(answer: &Value) -> Vec<(Option<u64>, Option<u64>, String)> {
    answer["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["index"].as_u64(),
                p["line"].as_u64(),
                p["path"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_located() {
    let log = small_log().await;
    log.append(&event(0)).await;
    let body = "[\n  {\"actor\": {\"type\": \"user\",, \"id\": \"u\"}}\n]".to_owned();
    let expected = serde_json::from_str::<Value>(&body).unwrap_err();
    let answer = rejected(&log, Some("application/json"), body, 400).await;
    assert_eq!(answer["line"], expected.line());
    assert_eq!(answer["column"], expected.column());
    assert!(answer["message"].is_string());

    // In NDJSON the line is the body's line, the column the position in that line.
    let bad_line = "{\"actor\": }";
    let body = format!("{}\n\n{bad_line}\n{}\n", event(1), event(2));
    let expected = serde_json::from_str::<Value>(bad_line).unwrap_err();
    let answer = rejected(&log, Some("application/x-ndjson"), body, 400).await;
    assert_eq!(answer["line"], 3);
    assert_eq!(answer["column"], expected.column());
    log.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_events_are_reported_with_paths_and_positions() {
    let log = small_log().await;
    let mut wrong_type = event(1);
    wrong_type["actor"]["type"] = json!(5);
    let answer = rejected(&log, Some("application/json"), wrong_type.to_string(), 400).await;
    assert_eq!(answer["error"], "invalid event");
    assert_eq!(paths(&answer), [(None, None, "$.actor.type".to_owned())]);

    let mut unknown = event(2);
    unknown["colour"] = json!("blue");
    let batch = json!([event(1), unknown, event(3)]);
    let answer = rejected(&log, Some("application/json"), batch.to_string(), 400).await;
    assert_eq!(paths(&answer), [(Some(1), None, "$.colour".to_owned())]);

    // Every problem of every event, not just the first.
    let mut missing = event(4);
    missing.as_object_mut().unwrap().remove("outcome");
    let body = format!("{}\n{}\n\n{}\n", wrong_type, event(5), missing);
    let answer = rejected(&log, Some("application/x-ndjson"), body, 400).await;
    assert_eq!(
        paths(&answer),
        [
            (Some(0), Some(1), "$.actor.type".to_owned()),
            (Some(2), Some(4), "$.outcome".to_owned())
        ]
    );

    let answer = rejected(&log, Some("application/json"), "[1]".to_owned(), 400).await;
    assert_eq!(paths(&answer), [(Some(0), None, "$".to_owned())]);
    log.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_requests_and_wrong_content_types() {
    let log = small_log().await;
    for (ct, body) in [
        ("application/json", ""),
        ("application/json", "[]"),
        ("application/json", "\"text\""),
        ("application/x-ndjson", ""),
        ("application/x-ndjson", "\n \n"),
    ] {
        rejected(&log, Some(ct), body.to_owned(), 400).await;
    }
    for ct in [Some("text/plain"), Some("application/xml"), None] {
        let answer = rejected(&log, ct, event(1).to_string(), 415).await;
        assert_eq!(
            answer["accepted"],
            json!(["application/json", "application/x-ndjson"])
        );
    }
    log.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_answer_413() {
    let log = small_log().await;
    let too_many = Value::Array((0..=MAX_EVENTS).map(event).collect());
    let answer = rejected(&log, Some("application/json"), too_many.to_string(), 413).await;
    assert_eq!(answer["limit"], MAX_EVENTS);
    let ndjson: String = (0..=MAX_EVENTS)
        .map(|n| format!("{}\n", event(n)))
        .collect();
    rejected(&log, Some("application/x-ndjson"), ndjson, 413).await;

    let mut big = event(1);
    big["context"] = json!({ "padding": "p".repeat(BODY_LIMIT) });
    let answer = rejected(&log, Some("application/json"), big.to_string(), 413).await;
    assert_eq!(answer["limit"], BODY_LIMIT);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains(&BODY_LIMIT.to_string()),
        "{answer}"
    );
    log.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_over_65535_bytes_answers_413_with_its_index_and_size() {
    let log = crate::common::start().await;
    let mut big = event(1);
    // `change` has no size limit of its own; only the entry limit stops it.
    big["change"] = json!({ "diff": "d".repeat(70_000) });
    let body = json!([event(0), big]).to_string();
    let before = log.store.size();
    let (status, answer) = log.post(Some("application/json"), body).await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(answer["index"], 1);
    assert_eq!(answer["limit"], 65_535);
    let size = answer["size"].as_u64().unwrap();
    assert!(size > 70_000, "{answer}");
    assert_eq!(log.store.size(), before);
    log.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_over_the_limit_is_cut_off() {
    let log = small_log().await;
    let addr = log.url.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = "POST /v1/events HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
                Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = "x".repeat(1000);
    // Twice the limit; the server may answer and close before it has all of it.
    for _ in 0..(2 * BODY_LIMIT / 1000) {
        let frame = format!("{:x}\r\n{chunk}\r\n", chunk.len());
        if stream.write_all(frame.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains(&BODY_LIMIT.to_string()), "{answer}");
    assert_eq!(log.store.size(), 0);
    log.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_content_length_over_the_limit_is_refused_before_the_body_is_sent() {
    let log = small_log().await;
    let addr = log.url.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        BODY_LIMIT + 1
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // No body is sent: a server that read before checking would wait here forever.
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    )
    .await
    .expect("the server waited for the body")
    .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains(&BODY_LIMIT.to_string()), "{answer}");
    log.stop().await;
}
