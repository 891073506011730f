//! `POST /v1/logs`: OTLP/JSON as the OTLP specification writes it (hex ids, 64-bit integers
//! as strings or numbers, integer enums), protobuf built with the `opentelemetry-proto`
//! messages, partial success, and OTLP error answers.

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use reqwest::header::CONTENT_TYPE;
use serde_json::{json, Value};

use crate::common::{start, TestLog};

async fn post(log: &TestLog, content_type: &str, body: Vec<u8>) -> (u16, String, Vec<u8>) {
    let resp = log
        .client
        .post(format!("{}/v1/logs", log.url))
        .header(CONTENT_TYPE, content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get(CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, ct, resp.bytes().await.unwrap().to_vec())
}

/// `google.rpc.Status` (code, message) for decoding error answers.
#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

const GOOD: &str = r#"{"timeUnixNano":"1796189270275347968","severityNumber":13,"severityText":"WARN","body":{"stringValue":"denied"},"attributes":[{"key":"enduser.id","value":{"stringValue":"alice"}},{"key":"stele.outcome","value":{"stringValue":"deny"}},{"key":"stele.action","value":{"stringValue":"document.read"}},{"key":"retries","value":{"intValue":"3"}},{"key":"big","value":{"intValue":9007199254740993}}],"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174"}"#;

#[tokio::test]
async fn otlp_json_records_are_stored_verbatim_and_bad_ones_reported_as_partial_success() {
    let log = start().await;
    let bad_trace = r#"{"traceId":"zz","body":{"stringValue":"x"}}"#;
    let bad_outcome = r#"{"attributes":[{"key":"stele.outcome","value":{"stringValue":"maybe"}}]}"#;
    let body = format!(
        r#"{{"resourceLogs":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"gateway"}}}}]}},"scopeLogs":[{{"scope":{{"name":"authz"}},"logRecords":[{GOOD},{bad_trace},{bad_outcome}]}}]}}]}}"#
    );
    let (status, ct, answer) = post(&log, "application/json", body.into_bytes()).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    assert_eq!(ct, "application/json");
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    let partial = &answer["partialSuccess"];
    assert_eq!(partial["rejectedLogRecords"], "2");
    let message = partial["errorMessage"].as_str().unwrap();
    assert!(
        message.contains("2 of 3 records were rejected"),
        "{message}"
    );
    assert!(
        message.contains("record 1: $: not an OTLP/JSON LogRecord"),
        "{message}"
    );
    assert!(
        message.contains("record 2: attributes.stele.outcome"),
        "{message}"
    );

    assert_eq!(log.store.size(), 1);
    let event: Value = serde_json::from_slice(&log.entry(0).await).unwrap();
    assert_eq!(event["original"], GOOD);
    assert_eq!(event["source"], "otlp");
    assert_eq!(event["actor"], json!({"type": "user", "id": "alice"}));
    assert_eq!(event["outcome"], "deny");
    assert_eq!(event["context"]["service"], "gateway");
    assert_eq!(event["context"]["scope"], "authz");
    assert_eq!(
        event["context"]["trace_id"],
        "5b8efff798038103d269b633813fc60c"
    );
    assert_eq!(event["context"]["span_id"], "eee19b7ec3c1b174");
    // The record verbatim: an integer beyond 2^53 keeps every digit.
    assert!(event["original"]
        .as_str()
        .unwrap()
        .contains("9007199254740993"));
    assert_eq!(event["client_time"], "2026-12-02T05:27:50.275347968Z");
}

#[tokio::test]
async fn otlp_protobuf_round_trip_and_error_answers() {
    let log = start().await;
    let text = |s: &str| AnyValue {
        value: Some(any_value::Value::StringValue(s.to_owned())),
    };
    let request = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".to_owned(),
                    value: Some(text("payments")),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    time_unix_nano: 1_796_189_270_000_000_000,
                    severity_number: 17,
                    body: Some(text("policy engine unreachable")),
                    event_name: "authz.check".to_owned(),
                    trace_id: vec![1; 16],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let (status, ct, answer) = post(&log, "application/x-protobuf", request.encode_to_vec()).await;
    assert_eq!(status, 200);
    assert_eq!(ct, "application/x-protobuf");
    let response = ExportLogsServiceResponse::decode(&answer[..]).unwrap();
    assert_eq!(response.partial_success, None);
    let event: Value = serde_json::from_slice(&log.entry(0).await).unwrap();
    assert_eq!(event["action"], "authz.check");
    assert_eq!(event["outcome"], "error"); // severity ERROR, no stated outcome
    assert_eq!(event["actor"], json!({"type": "service", "id": "payments"}));
    // A protobuf record is kept as its OTLP/JSON encoding, default fields left out.
    let original: Value = serde_json::from_str(event["original"].as_str().unwrap()).unwrap();
    assert_eq!(
        original,
        json!({
            "timeUnixNano": "1796189270000000000",
            "severityNumber": 17,
            "body": {"stringValue": "policy engine unreachable"},
            "traceId": "01010101010101010101010101010101",
            "eventName": "authz.check",
        })
    );

    // Undecodable bodies: 400 with a google.rpc.Status in the request's encoding.
    let (status, ct, answer) = post(&log, "application/x-protobuf", vec![0xff, 0xff, 0xff]).await;
    assert_eq!((status, ct.as_str()), (400, "application/x-protobuf"));
    let rpc = RpcStatus::decode(&answer[..]).unwrap();
    assert_eq!(rpc.code, 3);
    assert!(
        rpc.message
            .contains("not a protobuf ExportLogsServiceRequest"),
        "{}",
        rpc.message
    );
    let (status, _, answer) =
        post(&log, "application/json", b"{\"resourceLogs\":7}".to_vec()).await;
    assert_eq!(status, 400);
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(answer["code"], 3);
    let (status, _, answer) = post(&log, "text/plain", b"hi".to_vec()).await;
    assert_eq!(status, 415);
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert!(answer["message"]
        .as_str()
        .unwrap()
        .contains("application/x-protobuf"));
    // An empty request is a success with nothing to store.
    let (status, _, _) = post(&log, "application/json", b"{}".to_vec()).await;
    assert_eq!(status, 200);
    assert_eq!(log.store.size(), 1);
}
