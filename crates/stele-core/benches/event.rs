//! Event intake as the server runs it per event: schema validation of a parsed JSON value,
//! then `prepare` (canonical RFC 8785 entry plus content digest). The event is the one
//! `stele bench http-batch` sends: about 280 bytes of JSON, about 370 stored.
//!
//! `validate`, `prepare` and `both` time the library calls alone. `server/*` time all the
//! handler does per event, from the NDJSON line on: `current` parses, validates by reference
//! and prepares a clone (as `prepare_all` does today), `owned` parses, hands the value to
//! `validate_owned` and encodes by reference. `parse` is the JSON parsing they share. `typed`
//! is the handler's fast path for events valid as sent: a typed parse (`WireEvent`), its
//! check and the encoding.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use serde_json::{json, Value};
use stele_core::event::{validate, validate_owned, EventLimits, WireEvent};
use stele_core::timestamp::Timestamp;
use uuid::Uuid;

const NOW: Timestamp = Timestamp::from_unix_nanos(1_795_460_599_123_456_789);
const ID: Uuid = Uuid::from_u128(0x0190_b7f2_6b1c_7cc3_9a4f_3c9e_2b1d_4e5f);

/// The http-batch event, its `reason` padded to about 280 bytes of JSON.
fn bench_event() -> Value {
    json!({
        "actor": {"type": "user", "id": "user-1", "ip": "10.1.2.3"},
        "action": "authz.check",
        "resource": {"type": "document", "id": "doc-1"},
        "outcome": "allow",
        "policy": {"id": "rbac", "version": "7"},
        "tenant": "acme",
        "source": "bench",
        "reason": "r".repeat(60),
    })
}

/// The same with a small free-form `context` and a `client_time`, the other common shape.
fn with_context() -> Value {
    let mut event = bench_event();
    event["context"] = json!({"request_id": "r-1", "latency_ms": 3, "path": "/v1/documents/1"});
    event["client_time"] = json!("2026-11-23T19:03:19.1Z");
    event
}

fn intake(c: &mut Criterion) {
    let limits = EventLimits::default();
    let mut group = c.benchmark_group("event");
    group.throughput(Throughput::Elements(1));
    for (name, value) in [("plain", bench_event()), ("context", with_context())] {
        let event = validate(&value, &limits).unwrap();
        let size = event.clone().prepare(ID, NOW, &limits).unwrap().bytes.len();
        eprintln!("event/{name}: stored entry {size} bytes");
        group.bench_function(format!("validate/{name}"), |b| {
            b.iter(|| validate(black_box(&value), &limits).unwrap())
        });
        group.bench_function(format!("prepare/{name}"), |b| {
            b.iter_batched(
                || event.clone(),
                |ev| ev.prepare(ID, NOW, &limits).unwrap(),
                BatchSize::SmallInput,
            )
        });
        group.bench_function(format!("both/{name}"), |b| {
            b.iter(|| {
                validate(black_box(&value), &limits)
                    .unwrap()
                    .prepare(ID, NOW, &limits)
                    .unwrap()
            })
        });
        let text = serde_json::to_vec(&value).unwrap();
        group.bench_function(format!("server/current/{name}"), |b| {
            b.iter(|| {
                let value: Value = serde_json::from_slice(black_box(&text)).unwrap();
                let event = validate(&value, &limits).unwrap();
                drop(value);
                event.clone().prepare(ID, NOW, &limits).unwrap()
            })
        });
        group.bench_function(format!("server/owned/{name}"), |b| {
            b.iter(|| {
                let value: Value = serde_json::from_slice(black_box(&text)).unwrap();
                validate_owned(value, &limits)
                    .unwrap()
                    .encode(ID, NOW, &limits)
                    .unwrap()
            })
        });
        group.bench_function(format!("server/typed/{name}"), |b| {
            b.iter(|| {
                serde_json::from_slice::<WireEvent>(black_box(&text))
                    .unwrap()
                    .check(&limits)
                    .unwrap()
                    .encode(ID, NOW, &limits)
                    .unwrap()
            })
        });
        group.bench_function(format!("parse/{name}"), |b| {
            b.iter(|| serde_json::from_slice::<Value>(black_box(&text)).unwrap())
        });
    }
    // An integration's event: the source record (JSON text, a quote every few bytes) kept
    // verbatim in `original`, which the entry stores as an escaped string.
    let mut ingested = bench_event();
    let record: Value = json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
        "auditID": "7c4a8d09-ca37-4a5c-9e1f-7d3c2b1a0f9e", "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/payments/secrets/db-credentials", "verb": "get",
        "user": {"username": "system:serviceaccount:payments:api", "uid": "a1b2c3d4",
                 "groups": ["system:serviceaccounts", "system:serviceaccounts:payments", "system:authenticated"]},
        "sourceIPs": ["10.12.4.17"], "userAgent": "payments-api/1.4.2 (linux/amd64) kubernetes/abc1234",
        "objectRef": {"resource": "secrets", "namespace": "payments", "name": "db-credentials", "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 200},
        "requestReceivedTimestamp": "2026-11-23T19:03:19.123456Z", "stageTimestamp": "2026-11-23T19:03:19.127891Z",
        "annotations": {"authorization.k8s.io/decision": "allow",
                        "authorization.k8s.io/reason": "RBAC: allowed by RoleBinding \"api-secrets\" of Role \"secret-reader\" to ServiceAccount \"api/payments\""}
    });
    ingested["original"] = json!(serde_json::to_string(&record).unwrap());
    let event = stele_core::event::validate_ingested(ingested, &limits).unwrap();
    group.bench_function("encode/ingested", |b| {
        b.iter(|| black_box(&event).encode(ID, NOW, &limits).unwrap())
    });
    group.finish();
}

criterion_group!(benches, intake);
criterion_main!(benches);
