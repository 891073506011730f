//! The syslog listener: RFC 5424 messages over TCP (RFC 6587: octet-counted or LF-framed)
//! and over TLS (RFC 5425 transport, rustls), for appliances that only speak syslog.
//!
//! Syslog has no answers, so nothing a sender sends is dropped without a trace: a message that
//! is not RFC 5424 is stored as an event with outcome `error` and the parse error as its
//! reason, and a stream that cannot be framed any further (an announced length over the
//! limit, a line longer than the limit, a connection closed mid-message) is stored as one
//! such event with the bytes received, after which the connection is closed. Every event has
//! `source: "syslog"` and the message verbatim in `original`. The mapping is documented in
//! `docs/integrations/syslog.md`.
//!
//! Each connection reads and maps on its own task and hands batches to a committer task,
//! which appends them in arrival order; while an append waits for its fsync, the next batch
//! grows, so throughput does not depend on the message rate of one connection.

pub mod parse;

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine;
use serde_json::{json, Map, Value};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::handlers::ingest::{self, fit, Mapped, MappedEvent};
use crate::state::AppState;
use parse::{next_frame, Frame, Message};

/// The `source` of events from this listener.
pub const SOURCE: &str = "syslog";

/// Largest message, in bytes (RFC 5424 §6.1 asks receivers for at least 2048). Larger ones
/// break the stream's framing and are recorded as an error event. 8 KiB keeps the stored
/// event, with the message escaped in `original`, under the 64 KiB entry limit.
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024;

/// The SD-ID whose parameters carry Stele's fields (32473 is the enterprise number RFC 5612
/// reserves for documentation; Stele has none of its own).
pub const SD_ID: &str = "stele@32473";

/// Records a connection hands to its committer at most at once.
const MAX_BATCH: usize = 16_384;
/// Bytes read from a socket per call.
const READ_CHUNK: usize = 256 * 1024;
/// Bytes of a broken stream kept in the error event's `original`.
const KEEP_BROKEN: usize = 4096;

/// Loads a rustls server configuration from PEM files: a certificate chain and its private
/// key (PKCS#8, PKCS#1 or SEC1).
///
/// # Errors
///
/// Unreadable or malformed files, or a key that does not match the certificate.
pub fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> Result<TlsAcceptor, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect)
        .map_err(|e| format!("reading certificates from {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate in {}", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("reading the private key from {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("certificate and key do not make a TLS identity: {e}"))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Accepts syslog connections on `listener` until `shutdown` turns true, then stops reading,
/// stores what every connection had received, and returns.
///
/// # Errors
///
/// The I/O error that stopped the accept loop.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    tls: Option<TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|stop| *stop) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Per-connection failures (EMFILE, aborted handshakes) do not stop the
                // listener.
                tracing::warn!(error = %e, "syslog accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let (state, stop, tls) = (state.clone(), shutdown.clone(), tls.clone());
        connections.spawn(async move {
            match tls {
                None => connection(stream, peer, "tcp", state, stop).await,
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(stream) => connection(stream, peer, "tls", state, stop).await,
                    Err(e) => tracing::warn!(%peer, error = %e, "syslog TLS handshake failed"),
                },
            }
        });
    }
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Reads one connection to its end (or shutdown), mapping every message.
async fn connection<S: AsyncRead + Unpin>(
    mut stream: S,
    peer: SocketAddr,
    transport: &'static str,
    state: AppState,
    mut stop: watch::Receiver<bool>,
) {
    let (tx, rx) = mpsc::channel::<Vec<Mapped>>(1);
    let committer = tokio::spawn(commit_loop(state.clone(), rx));
    let peer_text = peer.to_string();
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut pending: Vec<Mapped> = Vec::new();
    loop {
        buf.reserve(READ_CHUNK);
        let read = tokio::select! {
            r = stream.read_buf(&mut buf) => r,
            _ = stop.wait_for(|s| *s) => Ok(0),
        };
        let eof = match read {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "syslog connection failed");
                true
            }
        };
        let mut consumed = 0;
        let mut broken = None;
        loop {
            let rest = buf.get(consumed..).unwrap_or_default();
            match next_frame(rest, MAX_MESSAGE_BYTES) {
                Frame::Message { start, end, next } => {
                    let msg = rest.get(start..end).unwrap_or_default();
                    pending.push(Ok(map_message(msg, &peer_text, transport).into()));
                    consumed += next;
                }
                Frame::Incomplete => break,
                Frame::Broken(why) => {
                    broken = Some(why);
                    break;
                }
            }
        }
        let rest = buf.get(consumed..).unwrap_or_default();
        let leftover = rest.iter().any(|b| !matches!(b, b'\n' | b'\r' | b'\0'));
        if let Some(why) = broken {
            pending.push(Ok(broken_stream(&why, rest, &peer_text, transport).into()));
            let _ = tx.send(std::mem::take(&mut pending)).await;
            break;
        }
        if eof && leftover {
            // A last message without its line feed is complete for a sender that closes
            // after it; a cut octet-counted frame is not.
            let event = match rest
                .iter()
                .position(|b| !matches!(b, b'\n' | b'\r' | b'\0'))
            {
                Some(i) if rest.get(i) == Some(&b'<') => {
                    let msg = rest.get(i..).unwrap_or_default();
                    map_message(
                        msg.strip_suffix(b"\r").unwrap_or(msg),
                        &peer_text,
                        transport,
                    )
                }
                _ => broken_stream(
                    &format!(
                        "the connection closed in the middle of a frame ({} bytes received)",
                        rest.len()
                    ),
                    rest,
                    &peer_text,
                    transport,
                ),
            };
            pending.push(Ok(event.into()));
        }
        buf.drain(..consumed);
        if !pending.is_empty() {
            if eof || pending.len() >= MAX_BATCH {
                if tx.send(std::mem::take(&mut pending)).await.is_err() {
                    break;
                }
            } else if let Ok(permit) = tx.try_reserve() {
                permit.send(std::mem::take(&mut pending));
            }
        }
        if eof {
            break;
        }
    }
    drop(tx);
    if let Err(e) = committer.await {
        tracing::error!(%peer, error = %e, "syslog committer failed");
    }
}

/// Appends batches in order; failures are logged and counted, never silent.
async fn commit_loop(state: AppState, mut rx: mpsc::Receiver<Vec<Mapped>>) {
    while let Some(batch) = rx.recv().await {
        let n = batch.len();
        match ingest::commit(&state, SOURCE, batch).await {
            Ok(report) if report.rejected > 0 => {
                for p in &report.problems {
                    tracing::error!(record = p.record, path = %p.path, "syslog message not stored: {}", p.message);
                }
            }
            Ok(_) => {}
            Err(e) => {
                // The store refused the whole batch (shutting down, poisoned, busy).
                state.ingest_metrics().add(SOURCE, "rejected", n);
                tracing::error!(error = %e, messages = n, "syslog messages not stored");
            }
        }
    }
}

/// The event for a stream that cannot be framed further.
fn broken_stream(why: &str, bytes: &[u8], peer: &str, transport: &str) -> Value {
    let kept = bytes
        .get(..KEEP_BROKEN.min(bytes.len()))
        .unwrap_or_default();
    let (original, encoding) = text_or_base64(kept);
    let context = ingest::map_object([
        ("peer", Some(json!(peer))),
        ("transport", Some(json!(transport))),
        ("bytes_received", Some(json!(bytes.len()))),
        (
            "original_truncated",
            (kept.len() < bytes.len()).then_some(json!(true)),
        ),
        ("original_encoding", encoding.map(Value::from)),
    ]);
    event(
        json!({"type": "service", "id": fit(peer, 256)}),
        "syslog.framing-error",
        json!({"type": "host", "id": fit(peer, 256)}),
        "error",
        fit(
            &format!("the syslog stream broke off: {why}; the connection was closed"),
            1024,
        ),
        None,
        context,
        None,
        original,
    )
}

/// The message as text when it is UTF-8, else base64 (and the encoding's name).
fn text_or_base64(bytes: &[u8]) -> (String, Option<&'static str>) {
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.is_empty() => (s.to_owned(), None),
        Ok(_) => ("(empty)".to_owned(), None),
        Err(_) => (
            base64::engine::general_purpose::STANDARD.encode(bytes),
            Some("base64"),
        ),
    }
}

/// Maps one message (framing removed) to an event.
pub fn map_message(msg: &[u8], peer: &str, transport: &str) -> Value {
    let (original, encoding) = text_or_base64(msg);
    match parse::parse(msg) {
        Ok(m) => map_parsed(&m, original, encoding, peer, transport),
        Err(e) => {
            let context = ingest::map_object([
                ("peer", Some(json!(peer))),
                ("transport", Some(json!(transport))),
                ("original_encoding", encoding.map(Value::from)),
            ]);
            event(
                json!({"type": "service", "id": fit(peer, 256)}),
                "syslog.unparsed",
                json!({"type": "host", "id": fit(peer, 256)}),
                "error",
                fit(&e.to_string(), 1024),
                None,
                context,
                None,
                original,
            )
        }
    }
}

fn map_parsed(
    m: &Message<'_>,
    original: String,
    encoding: Option<&'static str>,
    peer: &str,
    transport: &str,
) -> Value {
    let stele: Option<&Vec<(&str, String)>> = m
        .structured_data
        .iter()
        .find(|(id, _)| *id == SD_ID)
        .map(|(_, p)| p);
    let param = |name: &str| {
        stele
            .and_then(|ps| ps.iter().find(|(n, _)| *n == name))
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let host = m.hostname.unwrap_or(peer);
    let actor = match param("actor") {
        Some(id) => json!({
            "type": param("actor_type").filter(|t| ["user", "service", "system"].contains(t)).unwrap_or("user"),
            "id": fit(id, 256),
        }),
        None => json!({"type": "service", "id": fit(m.app_name.unwrap_or(host), 256)}),
    };
    let action = param("action")
        .filter(|a| ingest::is_action(a))
        .map(str::to_owned)
        .or_else(|| m.msgid.and_then(|id| ingest::action_name("syslog", id)))
        .unwrap_or_else(|| "syslog.message".to_owned());
    let resource = match param("resource") {
        Some(id) => {
            json!({"type": fit(param("resource_type").unwrap_or("resource"), 128), "id": fit(id, 256)})
        }
        None => json!({"type": "host", "id": fit(host, 256)}),
    };
    let mut reason = param("reason").and_then(|r| fit(r, 1024));
    let outcome = match param("outcome") {
        Some(o @ ("allow" | "deny" | "error")) => o,
        Some(other) => {
            reason = fit(
                &format!("{SD_ID} outcome {other:?} is not allow, deny or error"),
                1024,
            );
            "error"
        }
        // No stated outcome: emergency … error severities are errors, anything else a
        // permitted action that was reported.
        None if m.severity() <= 3 => "error",
        None => "allow",
    };
    let policy = param("policy").map(|id| {
        Value::Object(ingest::map_object([
            ("id", fit(id, 256).map(Value::from)),
            (
                "version",
                param("policy_version")
                    .and_then(|v| fit(v, 256))
                    .map(Value::from),
            ),
        ]))
    });
    // The header fields for correlation; MSG and the structured data are in `original`.
    let context = ingest::map_object([
        ("facility", Some(json!(m.facility()))),
        ("severity", Some(json!(m.severity()))),
        ("hostname", m.hostname.map(Value::from)),
        ("app_name", m.app_name.map(Value::from)),
        ("procid", m.procid.map(Value::from)),
        ("msgid", m.msgid.map(Value::from)),
        ("peer", Some(json!(peer))),
        ("transport", Some(json!(transport))),
        ("original_encoding", encoding.map(Value::from)),
    ]);
    event(
        actor,
        &action,
        resource,
        outcome,
        reason,
        policy,
        context,
        m.timestamp.and_then(ingest::client_time),
        original,
    )
}

#[allow(clippy::too_many_arguments)]
fn event(
    actor: Value,
    action: &str,
    resource: Value,
    outcome: &str,
    reason: Option<String>,
    policy: Option<Value>,
    context: Map<String, Value>,
    client_time: Option<String>,
    original: String,
) -> Value {
    Value::Object(ingest::map_object([
        ("actor", Some(actor)),
        ("action", Some(json!(action))),
        ("resource", Some(resource)),
        ("outcome", Some(json!(outcome))),
        ("reason", reason.map(Value::from)),
        ("policy", policy),
        ("source", Some(json!(SOURCE))),
        ("context", Some(Value::Object(context))),
        ("client_time", client_time.map(Value::from)),
        ("original", Some(json!(original))),
    ]))
}

/// Mapped records for tests and benches: each message of `bytes` (as framed on the wire)
/// mapped as the listener would.
pub fn map_stream(bytes: &[u8], peer: &str) -> Vec<Mapped> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(rest) = bytes.get(at..) {
        match next_frame(rest, MAX_MESSAGE_BYTES) {
            Frame::Message { start, end, next } => {
                out.push(Ok(MappedEvent::Json(map_message(
                    rest.get(start..end).unwrap_or_default(),
                    peer,
                    "tcp",
                ))));
                at += next;
            }
            _ => break,
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn structured_data_carries_the_stele_fields() {
        let msg = br#"<38>1 2026-12-02T05:20:00.5+01:00 fw1 authd 42 LOGIN [stele@32473 actor="alice" action="auth.login" resource="vpn" resource_type="service" outcome="deny" reason="bad password" policy="vpn-access" policy_version="3"][origin ip="192.0.2.1"] login refused"#;
        let e = map_message(msg, "127.0.0.1:5000", "tcp");
        assert_eq!(e["actor"], json!({"type": "user", "id": "alice"}));
        assert_eq!(e["action"], "auth.login");
        assert_eq!(e["resource"], json!({"type": "service", "id": "vpn"}));
        assert_eq!(e["outcome"], "deny");
        assert_eq!(e["reason"], "bad password");
        assert_eq!(e["policy"], json!({"id": "vpn-access", "version": "3"}));
        assert_eq!(e["client_time"], "2026-12-02T05:20:00.5+01:00");
        assert_eq!(e["context"]["msgid"], "LOGIN");
        assert_eq!(e["context"]["hostname"], "fw1");
        assert_eq!(e["original"].as_str().unwrap().as_bytes(), msg);
    }

    #[test]
    fn plain_messages_and_non_5424_input() {
        let e = map_message(b"<11>1 - host app - - - disk failure", "127.0.0.1:1", "tcp");
        assert_eq!(e["outcome"], "error"); // severity 3
        assert_eq!(e["actor"], json!({"type": "service", "id": "app"}));
        assert_eq!(e["action"], "syslog.message");
        assert_eq!(e["resource"], json!({"type": "host", "id": "host"}));
        let e = map_message(
            b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed",
            "127.0.0.1:1",
            "tcp",
        );
        assert_eq!(e["action"], "syslog.unparsed");
        assert_eq!(e["outcome"], "error");
        assert!(e["reason"].as_str().unwrap().contains("VERSION must be 1"));
        let e = map_message(b"<13>1 - h a - - - \xff\xfe", "127.0.0.1:1", "tcp");
        assert_eq!(e["context"]["original_encoding"], "base64");
        assert_eq!(e["original"], "PDEzPjEgLSBoIGEgLSAtIC0g//4=");
    }
}
