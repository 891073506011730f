//! `stele serve --syslog-listen`: util-linux `logger --rfc5424 --tcp` (newline framing and
//! `--octet-count`) sends to the real binary, and the events are read back through the API;
//! then TLS with a rustls client, and a stream that breaks off.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::expect_used)]

use std::io::Write;
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use stele_tests::server::Server;

/// `host:port` of the server's syslog listener.
fn syslog_addr(server: &Server, scheme: &str) -> String {
    server
        .banner_value("syslog on")
        .and_then(|v| v.strip_prefix(&format!("{scheme}://")))
        .unwrap_or_else(|| panic!("no syslog banner in {:?}", server.banner))
        .to_owned()
}

/// Waits until the log holds `n` entries (syslog has no acknowledgement to wait for).
fn wait_for_size(server: &Server, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.size() < n {
        assert!(
            Instant::now() < deadline,
            "the log has {} entries, expected {n}; stderr:\n{}",
            server.size(),
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn event(server: &Server, index: u64) -> Value {
    server.get_json(&format!("/v1/events/{index}"))
}

/// Runs util-linux logger against `addr`.
fn logger(addr: &str, extra: &[&str], message: &str) {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let out = Command::new("logger")
        .args(["--rfc5424", "--tcp", "--server", host, "--port", port])
        .args(extra)
        .arg(message)
        .output()
        .expect("running logger (util-linux; Debian package bsdutils)");
    assert!(
        out.status.success(),
        "logger failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn logger_rfc5424_over_tcp_with_and_without_octet_counting() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--syslog-listen", "127.0.0.1:0"]);
    let addr = syslog_addr(&server, "tcp");

    logger(
        &addr,
        &["--tag", "authd", "--priority", "auth.notice"],
        "newline framed: alice opened the vault",
    );
    wait_for_size(&server, 1);
    logger(
        &addr,
        &[
            "--octet-count",
            "--tag",
            "fw",
            "--msgid",
            "DENY",
            "--priority",
            "authpriv.warning",
            "--sd-id",
            "stele@32473",
            "--sd-param",
            "actor=\"bob\"",
            "--sd-param",
            "action=\"net.connect\"",
            "--sd-param",
            "resource=\"10.0.0.8:22\"",
            "--sd-param",
            "outcome=\"deny\"",
            "--sd-param",
            "reason=\"rule 12\"",
        ],
        "octet counted: connection refused",
    );
    wait_for_size(&server, 2);

    let first = event(&server, 0);
    assert_eq!(first["source"], "syslog");
    let original = first["original"].as_str().unwrap();
    assert!(original.starts_with("<37>1 "), "{original}"); // auth(4)*8 + notice(5)
    assert!(
        original.ends_with("newline framed: alice opened the vault"),
        "{original}"
    );
    assert_eq!(first["actor"]["id"], "authd");
    assert_eq!(first["action"], "syslog.message");
    assert_eq!(first["outcome"], "allow");
    assert_eq!(first["context"]["app_name"], "authd");
    assert_eq!(first["context"]["transport"], "tcp");
    assert!(first["client_time"].is_string(), "{first}");

    let second = event(&server, 1);
    let original = second["original"].as_str().unwrap();
    assert!(original.starts_with("<84>1 "), "{original}"); // authpriv(10)*8 + warning(4)
    assert!(original.contains("[stele@32473 "), "{original}");
    assert!(
        original.ends_with("octet counted: connection refused"),
        "{original}"
    );
    assert_eq!(second["actor"]["id"], "bob");
    assert_eq!(second["action"], "net.connect");
    assert_eq!(second["resource"]["id"], "10.0.0.8:22");
    assert_eq!(second["outcome"], "deny");
    assert_eq!(second["reason"], "rule 12");
    assert_eq!(second["context"]["msgid"], "DENY");
    // logger's own SD-ELEMENTs (timeQuality) are in the original.
    assert!(original.contains("[timeQuality "), "{original}");
}

#[test]
fn malformed_and_broken_streams_are_recorded_not_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--syslog-listen", "127.0.0.1:0"]);
    let addr = syslog_addr(&server, "tcp");
    let mut s = TcpStream::connect(&addr).unwrap();
    // RFC 3164 (BSD) is not RFC 5424; then a frame announcing 10 MB, which breaks framing.
    s.write_all(b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed\n")
        .unwrap();
    s.write_all(b"<13>1 - h app - - - fine\n").unwrap();
    s.write_all(b"10000000 <13>1 - - - - - x").unwrap();
    drop(s);
    wait_for_size(&server, 3);
    let unparsed = event(&server, 0);
    assert_eq!(unparsed["action"], "syslog.unparsed");
    assert_eq!(unparsed["outcome"], "error");
    assert_eq!(
        unparsed["original"],
        "<34>Oct 11 22:14:15 mymachine su: 'su root' failed"
    );
    assert!(unparsed["reason"]
        .as_str()
        .unwrap()
        .contains("VERSION must be 1"));
    assert_eq!(event(&server, 1)["original"], "<13>1 - h app - - - fine");
    let broken = event(&server, 2);
    assert_eq!(broken["action"], "syslog.framing-error");
    assert!(
        broken["reason"]
            .as_str()
            .unwrap()
            .contains("10000000 bytes"),
        "{broken}"
    );
    assert_eq!(broken["original"], "10000000 <13>1 - - - - - x");

    // A connection closed in the middle of an octet-counted frame.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(b"40 <13>1 - - - - - cut").unwrap();
    drop(s);
    wait_for_size(&server, 4);
    let cut = event(&server, 3);
    assert_eq!(cut["action"], "syslog.framing-error");
    assert!(cut["reason"]
        .as_str()
        .unwrap()
        .contains("middle of a frame"));
}

#[test]
fn syslog_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let data = dir.path().join("data");
    let server = Server::start(
        &data,
        &[
            "--syslog-listen",
            "127.0.0.1:0",
            "--syslog-tls-cert",
            cert_path.to_str().unwrap(),
            "--syslog-tls-key",
            key_path.to_str().unwrap(),
        ],
    );
    let addr = syslog_addr(&server, "tls");

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let sock = TcpStream::connect(&addr).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let msg = b"<86>1 2026-12-02T10:00:00Z vpn sshd 77 LOGIN - Accepted publickey for carol";
    write!(tls, "{} ", msg.len()).unwrap();
    tls.write_all(msg).unwrap();
    tls.flush().unwrap();
    tls.conn.send_close_notify();
    let _ = tls.flush();
    // Close like a well-behaved sender: half-close and read what the server still sends (TLS
    // 1.3 session tickets, its close_notify) until it closes. Dropping the socket with those
    // bytes unread makes the kernel answer with a RST, which can discard the message from the
    // server's receive queue before it is read: a test artefact, not what appliances do.
    let _ = tls.sock.shutdown(std::net::Shutdown::Write);
    let mut sink = Vec::new();
    let _ = std::io::Read::read_to_end(&mut tls.sock, &mut sink);
    drop(tls);
    wait_for_size(&server, 1);
    let e = event(&server, 0);
    assert_eq!(e["original"].as_str().unwrap().as_bytes(), msg);
    assert_eq!(e["context"]["transport"], "tls");
    assert_eq!(e["action"], "syslog.login");
    assert_eq!(e["client_time"], "2026-12-02T10:00:00Z");

    // A plain-TCP client on the TLS port gets nothing stored.
    let mut plain = TcpStream::connect(&addr).unwrap();
    plain.write_all(b"<13>1 - - - - - - plain\n").unwrap();
    drop(plain);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(server.size(), 1);
}
