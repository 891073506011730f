//! TLS and mTLS end to end, against the real binary, with real clients (curl and reqwest
//! with rustls): HTTPS works and plain HTTP to the TLS port does not; under mTLS a client
//! without a certificate is refused where the route needs a principal, a certificate of
//! another CA is refused at the handshake, and a certificate bound to a principal gets its
//! role's access (and is named in the meta-log); `--require-client-cert`; the CLI's `--ca`
//! and `--client-cert/--client-key`; clear startup errors for bad certificate files. The
//! certificates are made in the test (rcgen); no private key is committed.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use serde_json::Value;
use stele_tests::{create_token, run_stele, Server};

/// A test certificate authority.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate for `sans` (server) or a client certificate named `name`, written as
    /// `<name>.pem` and `<name>.key` (mode 0600) in `dir`.
    fn issue(&self, dir: &Path, name: &str, server: bool) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let sans = if server {
            vec!["localhost".to_owned(), "127.0.0.1".to_owned()]
        } else {
            Vec::new()
        };
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![if server {
            ExtendedKeyUsagePurpose::ServerAuth
        } else {
            ExtendedKeyUsagePurpose::ClientAuth
        }];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (c, k) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        write_private(&k, &key.serialize_pem());
        (c, k)
    }
}

fn write_private(path: &Path, text: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// Everything a test needs: the CA files, the server's certificate and client identities.
struct Pki {
    dir: tempfile::TempDir,
    ca: PathBuf,
    server: (PathBuf, PathBuf),
    /// Client certificates issued by the server's client CA.
    alice: (PathBuf, PathBuf),
    bob: (PathBuf, PathBuf),
    carol: (PathBuf, PathBuf),
    /// A client certificate of another CA.
    mallory: (PathBuf, PathBuf),
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("stele test CA");
    let other = Ca::new("another CA");
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, &ca.pem).unwrap();
    let server = ca.issue(dir.path(), "server", true);
    let alice = ca.issue(dir.path(), "alice", false);
    let bob = ca.issue(dir.path(), "bob", false);
    let carol = ca.issue(dir.path(), "carol", false);
    let mallory = other.issue(dir.path(), "mallory", false);
    Pki {
        dir,
        ca: ca_path,
        server,
        alice,
        bob,
        carol,
        mallory,
    }
}

/// A reqwest client trusting the test CA, optionally with a client certificate.
fn client(pki: &Pki, identity: Option<&(PathBuf, PathBuf)>) -> reqwest::blocking::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&pki.ca).unwrap()).unwrap();
    let mut b = reqwest::blocking::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .no_proxy()
        .timeout(std::time::Duration::from_secs(60));
    if let Some((cert, key)) = identity {
        let mut pem = std::fs::read(key).unwrap();
        pem.extend(std::fs::read(cert).unwrap());
        b = b.identity(reqwest::Identity::from_pem(&pem).unwrap());
    }
    b.build().unwrap()
}

/// `curl -s -o BODY -w '%{http_code}' ARGS… URL`: the status (0 when no HTTP answer came)
/// and curl's exit code.
fn curl(args: &[&str], url: &str) -> (u16, i32, String) {
    let body = tempfile::NamedTempFile::new().unwrap();
    let out: Output = Command::new("curl")
        .args(["-s", "--max-time", "30", "-o"])
        .arg(body.path())
        .args(["-w", "%{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .expect("curl is installed");
    let code = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    let text = std::fs::read_to_string(body.path()).unwrap_or_default();
    (code, out.status.code().unwrap_or(-1), text)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn start(pki: &Pki, data: &Path, extra: &[&str]) -> Server {
    let mut args = vec![
        "--tls-cert",
        s(&pki.server.0),
        "--tls-key",
        s(&pki.server.1),
        "--checkpoint-interval",
        "100ms",
    ];
    args.extend_from_slice(extra);
    Server::start_secured_with(data, &args, client(pki, None))
}

#[test]
fn https_serves_and_plain_http_to_the_tls_port_fails() {
    let pki = pki();
    let data = pki.dir.path().join("data");
    let server = start(&pki, &data, &[]);
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    let (code, _, body) = curl(&["--cacert", s(&pki.ca)], &server.at("/healthz"));
    assert_eq!(code, 200, "{body}");
    // The same port over plain HTTP: no HTTP answer.
    let plain = server.at("/healthz").replacen("https://", "http://", 1);
    let (code, exit, _) = curl(&[], &plain);
    assert_ne!(code, 200);
    assert_ne!(exit, 0, "curl succeeded over plain HTTP to the TLS port");
    // Without trusting the CA, the server's certificate is refused by the client.
    let (code, exit, _) = curl(&[], &server.at("/healthz"));
    assert_eq!((code, exit == 0), (0, false));
    // Bearer tokens work over TLS as over HTTP.
    let auditor = server.tokens().unwrap().auditor.clone();
    let (code, _, body) = curl(
        &[
            "--cacert",
            s(&pki.ca),
            "-H",
            &format!("authorization: Bearer {auditor}"),
        ],
        &server.at("/v1/events/0"),
    );
    assert_eq!(code, 200, "{body}");
    // The CLI trusts a private CA with --ca, and only then.
    let get = |extra: &[&str]| {
        let mut a = vec!["get", "0", "--url", &server.url, "--token", &auditor];
        a.extend_from_slice(extra);
        run_stele(a)
    };
    let ok = get(&["--ca", s(&pki.ca)]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let refused = get(&[]);
    assert!(!refused.status.success());
    // Nothing secret in what the server logged.
    let stderr = server.stderr();
    assert!(
        !stderr.contains("-----BEGIN") && !stderr.contains(&auditor),
        "{stderr}"
    );
}

#[test]
fn mtls_maps_certificates_to_principals_and_refuses_the_rest() {
    let pki = pki();
    let data = pki.dir.path().join("data");
    let server = start(&pki, &data, &["--client-ca", s(&pki.ca)]);
    // alice writes for acme, bob reads acme, carol's certificate is bound to nobody.
    let alice_id = create_token(
        &data,
        "writer",
        &[
            "--tenant",
            "acme",
            "--source",
            "gw-1",
            "--cert",
            s(&pki.alice.0),
        ],
    );
    let bob_id = create_token(
        &data,
        "reader",
        &["--tenant", "acme", "--cert", s(&pki.bob.0)],
    );
    // curl as `who` (or with no certificate), with `extra` arguments, on `path`.
    let run = |who: Option<&(PathBuf, PathBuf)>, extra: &[&str], path: &str| {
        let mut a = vec!["--cacert", s(&pki.ca)];
        if let Some((cert, key)) = who {
            a.extend(["--cert", s(cert), "--key", s(key)]);
        }
        a.extend_from_slice(extra);
        curl(&a, &server.at(path))
    };

    // Public routes stay public without a certificate; others need a principal.
    assert_eq!(run(None, &[], "/healthz").0, 200);
    let (code, _, body) = run(None, &[], "/v1/events/0");
    assert_eq!(code, 401, "{body}");
    // A certificate of another CA does not get through the handshake.
    let (code, exit, _) = run(Some(&pki.mallory), &[], "/healthz");
    assert_eq!(code, 0);
    assert_ne!(exit, 0);
    // A valid certificate bound to nobody authenticates no one.
    let (code, _, body) = run(Some(&pki.carol), &[], "/v1/events/0");
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("not bound to a principal"), "{body}");

    // alice (writer for acme, source gw-1) appends without any token.
    let event = r#"{"actor":{"type":"user","id":"u1"},"action":"doc.read","resource":{"type":"doc","id":"d1"},"outcome":"allow"}"#;
    let (code, _, body) = run(
        Some(&pki.alice),
        &["-H", "content-type: application/json", "--data", event],
        "/v1/events",
    );
    assert_eq!(code, 200, "{body}");
    let index = serde_json::from_str::<Value>(&body).unwrap()["entries"][0]["index"]
        .as_u64()
        .unwrap();
    // ...but may not read: the writer role's access, nothing more.
    assert_eq!(
        run(Some(&pki.alice), &[], &format!("/v1/events/{index}")).0,
        403
    );
    // bob (reader of acme) reads it; the event carries alice's stamped source and tenant.
    let (code, _, body) = run(Some(&pki.bob), &[], &format!("/v1/events/{index}"));
    assert_eq!(code, 200, "{body}");
    let stored: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (stored["tenant"].as_str(), stored["source"].as_str()),
        (Some("acme"), Some("gw-1"))
    );
    // bob may not have entry bundles (auditors only).
    assert_eq!(run(Some(&pki.bob), &[], "/tile/entries/000.p/1").0, 403);

    // A token sent over an mTLS connection decides: bob's connection, the auditor's token.
    let auditor = server.tokens().unwrap().auditor.clone();
    let bearer = format!("authorization: Bearer {auditor}");
    assert_eq!(
        run(Some(&pki.bob), &["-H", &bearer], "/tile/entries/000.p/1").0,
        200
    );

    // The meta-log names the certificate principal.
    let http = client(&pki, None);
    let read_as = |i: u64| -> Value {
        let r = http
            .get(server.at(&format!("/v1/events/{i}")))
            .bearer_auth(&auditor)
            .send()
            .unwrap();
        r.json().unwrap()
    };
    let size = server.size();
    let bob_reads: Vec<Value> = (0..size)
        .map(read_as)
        .filter(|e| e["action"] == "audit.read" && e["actor"]["id"] == format!("cert:{bob_id}"))
        .collect();
    assert!(!bob_reads.is_empty(), "no audit.read by cert:{bob_id}");
    let created: Vec<Value> = (0..size)
        .map(read_as)
        .filter(|e| e["action"] == "admin.token.create" && e["resource"]["id"] == alice_id.as_str())
        .collect();
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["resource"]["type"], "certificate");
    assert_eq!(
        created[0]["context"]["certificate_sha256"]
            .as_str()
            .unwrap()
            .len(),
        64
    );

    // Revoking the principal takes effect on the next request.
    let out = run_stele(["token", "revoke", "--data", s(&data), &bob_id]);
    assert!(out.status.success());
    let (code, _, body) = run(Some(&pki.bob), &[], &format!("/v1/events/{index}"));
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("revoked"), "{body}");

    // The CLI presents a client certificate with --client-cert/--client-key.
    let cli = |who: &(PathBuf, PathBuf)| {
        run_stele([
            "get",
            &index.to_string(),
            "--url",
            &server.url,
            "--ca",
            s(&pki.ca),
            "--client-cert",
            s(&who.0),
            "--client-key",
            s(&who.1),
        ])
    };
    // carol's certificate is bound over the admin API this time (over TLS, with --ca).
    let admin = server.tokens().unwrap().admin.clone().unwrap();
    let out = run_stele([
        "token",
        "create",
        "--url",
        &server.url,
        "--ca",
        s(&pki.ca),
        "--token",
        &admin,
        "--role",
        "auditor",
        "--cert",
        s(&pki.carol.0),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let carol_id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(carol_id.len(), 16, "{carol_id}");
    let out = cli(&pki.carol);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("doc.read"));
    let out = cli(&pki.mallory);
    assert!(!out.status.success());
    // The token list shows certificate principals with their fingerprints.
    let list = run_stele(["token", "list", "--data", s(&data)]);
    let list = String::from_utf8_lossy(&list.stdout);
    let line = list.lines().find(|l| l.starts_with(&alice_id)).unwrap();
    assert!(
        line.contains(" writer acme gw-1 never active cert="),
        "{line}"
    );
}

#[test]
fn a_required_client_certificate_is_checked_at_the_handshake() {
    let pki = pki();
    let data = pki.dir.path().join("data");
    let args = [
        "--tls-cert",
        s(&pki.server.0),
        "--tls-key",
        s(&pki.server.1),
        "--client-ca",
        s(&pki.ca),
        "--require-client-cert",
    ];
    // The harness polls /healthz, so it needs a certificate too.
    let server = Server::launch(&data, &args, client(&pki, Some(&pki.carol)))
        .unwrap_or_else(|f| panic!("{}", f.stderr));
    let (code, exit, _) = curl(&["--cacert", s(&pki.ca)], &server.at("/healthz"));
    assert_eq!(code, 0);
    assert_ne!(exit, 0);
    let (code, _, _) = curl(
        &[
            "--cacert",
            s(&pki.ca),
            "--cert",
            s(&pki.alice.0),
            "--key",
            s(&pki.alice.1),
        ],
        &server.at("/healthz"),
    );
    assert_eq!(code, 200);
}

#[test]
fn bad_certificate_files_stop_the_start_with_a_clear_message() {
    let pki = pki();
    let data = pki.dir.path().join("data");
    let fail = |extra: &[&str], want: &str| {
        let f = Server::launch(&data, extra, client(&pki, None))
            .err()
            .unwrap_or_else(|| panic!("started with {extra:?}"));
        assert!(f.stderr.contains(want), "{extra:?}: {}", f.stderr);
        assert_eq!(f.status.and_then(|s| s.code()), Some(2), "{}", f.stderr);
        // File names and what is wrong, never file contents.
        assert!(!f.stderr.contains("-----BEGIN"), "{}", f.stderr);
    };
    let missing = pki.dir.path().join("missing.pem");
    fail(
        &["--tls-cert", s(&missing), "--tls-key", s(&pki.server.1)],
        "cannot read certificate",
    );
    // A key that is not the certificate's.
    fail(
        &["--tls-cert", s(&pki.server.0), "--tls-key", s(&pki.alice.1)],
        "does not match the certificate",
    );
    // The key where the certificate should be, and the other way round.
    fail(
        &[
            "--tls-cert",
            s(&pki.server.1),
            "--tls-key",
            s(&pki.server.1),
        ],
        "is not a PEM certificate",
    );
    fail(
        &[
            "--tls-cert",
            s(&pki.server.0),
            "--tls-key",
            s(&pki.server.0),
        ],
        "is not a PEM private key",
    );
    fail(
        &[
            "--tls-cert",
            s(&pki.server.0),
            "--tls-key",
            s(&pki.server.1),
            "--client-ca",
            s(&missing),
        ],
        "cannot read client CA",
    );
    // A key without a certificate is a usage error.
    let out = run_stele(["serve", "--data", s(&data), "--tls-key", s(&pki.server.1)]);
    assert_eq!(out.status.code(), Some(2));
}
