//! Access control end to end, against the real binary: every route × every role × own and
//! other tenant; revocation and expiry taking effect on the next request; the meta-log
//! recording every read kind, admin action and (rate-limited) authentication failure; tenant
//! isolation against attempts to get around it; per-principal rate limits; `--no-auth`.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::time::{Duration, Instant};

use reqwest::blocking::Response;
use reqwest::Method;
use serde_json::{json, Value};
use stele_tests::{create_token, event, run_stele, Server};

/// One row of the matrix: what, method, path, body, and the status expected without
/// credentials and as writer, reader, auditor and admin.
type Row<'a> = (&'a str, Method, String, Option<&'a Value>, [u16; 5]);

/// The principals of the matrix.
struct Principals {
    writer: String,
    reader: String,
    auditor: String,
    admin: String,
}

/// A log with one event of tenant `acme` and one of `globex`, and tokens bound to `acme`.
struct World {
    server: Server,
    who: Principals,
    /// Index and id of the acme event.
    acme: (u64, String),
    /// Index and id of the globex event.
    globex: (u64, String),
    _dir: tempfile::TempDir,
}

fn world(extra: &[&str]) -> World {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut args = vec!["--checkpoint-interval", "100ms"];
    args.extend_from_slice(extra);
    let server = Server::start_secured(&data, &args);
    let who = Principals {
        writer: create_token(
            &data,
            "writer",
            &["--tenant", "acme", "--source", "gw-acme"],
        ),
        reader: create_token(&data, "reader", &["--tenant", "acme"]),
        auditor: server.tokens().unwrap().auditor.clone(),
        admin: server
            .tokens()
            .unwrap()
            .admin
            .clone()
            .expect("first start wrote admin.token"),
    };
    let globex_writer = create_token(&data, "writer", &["--tenant", "globex"]);
    let post = |token: &str, n: u64| {
        let r = send(
            &server,
            Method::POST,
            "/v1/events",
            Some(token),
            Some(&event(n)),
        );
        let status = r.status().as_u16();
        let body: Value = r.json().unwrap();
        assert_eq!(status, 200, "{body}");
        let e = &body["entries"][0];
        (
            e["index"].as_u64().unwrap(),
            e["id"].as_str().unwrap().to_owned(),
        )
    };
    let acme = post(&who.writer, 1);
    let globex = post(&globex_writer, 2);
    server.checkpoint_at_least(globex.0 + 1);
    World {
        server,
        who,
        acme,
        globex,
        _dir: dir,
    }
}

fn send(
    server: &Server,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Response {
    let mut req = server.client().request(method.clone(), server.at(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    req.send()
        .unwrap_or_else(|e| panic!("{method} {path}: {e}; stderr:\n{}", server.stderr()))
}

fn status(
    server: &Server,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> u16 {
    send(server, method, path, token, body).status().as_u16()
}

/// Every entry of the log, read as an auditor through entry bundles (which the meta-log
/// records too, after the bundles are read).
fn log_entries(server: &Server, auditor: &str) -> Vec<Value> {
    let size = server.size();
    let mut out = Vec::new();
    for n in 0..size.div_ceil(256) {
        assert!(n < 1000, "test logs stay small");
        let width = (size - n * 256).min(256);
        let path = if width == 256 {
            format!("/tile/entries/{n:03}")
        } else {
            format!("/tile/entries/{n:03}.p/{width}")
        };
        let (st, bundle) = server.get_as(Some(auditor), &path);
        assert_eq!(st, 200, "GET {path}");
        let mut rest = &bundle[..];
        while !rest.is_empty() {
            let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
            out.push(serde_json::from_slice(&rest[2..2 + len]).unwrap());
            rest = &rest[2 + len..];
        }
    }
    out
}

/// Waits until the log's size stops changing (background meta-log appends landed).
fn settled_size(server: &Server) -> u64 {
    let mut last = server.size();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = server.size();
        if now == last {
            return now;
        }
        assert!(Instant::now() < deadline, "the log never settled");
        last = now;
    }
}

#[test]
fn every_route_answers_every_role_as_the_policy_says() {
    let w = world(&[]);
    let s = &w.server;
    let (a, a_id) = (&w.acme.0, &w.acme.1);
    let (g, g_id) = (&w.globex.0, &w.globex.1);
    let ev = event(9);
    let mut globex_event = event(10);
    globex_event["tenant"] = json!("globex");
    let mut acme_event = event(11);
    acme_event["tenant"] = json!("acme");
    let new_reader = json!({"role": "reader", "tenants": ["acme"]});

    // Columns: no credentials, writer(acme), reader(acme), auditor, admin.
    // "own" rows concern tenant acme, "other" rows tenant globex (or no tenant: meta-log).
    #[rustfmt::skip]
    let rows: Vec<Row> = vec![
        ("append, no tenant (stamped)", Method::POST, "/v1/events".into(), Some(&ev), [401, 200, 403, 403, 403]),
        ("append, own tenant", Method::POST, "/v1/events".into(), Some(&acme_event), [401, 200, 403, 403, 403]),
        ("append, other tenant", Method::POST, "/v1/events".into(), Some(&globex_event), [401, 403, 403, 403, 403]),
        ("read own by index", Method::GET, format!("/v1/events/{a}"), None, [401, 403, 200, 200, 403]),
        ("read own by id", Method::GET, format!("/v1/events/{a_id}"), None, [401, 403, 200, 200, 403]),
        ("read other by index", Method::GET, format!("/v1/events/{g}"), None, [401, 403, 404, 200, 403]),
        ("read other by id", Method::GET, format!("/v1/events/{g_id}"), None, [401, 403, 404, 200, 403]),
        ("read meta-log entry", Method::GET, "/v1/events/0".into(), None, [401, 403, 404, 200, 403]),
        ("read past the end", Method::GET, "/v1/events/1000000".into(), None, [401, 403, 404, 404, 403]),
        ("inclusion own", Method::GET, format!("/v1/proofs/inclusion?index={a}"), None, [401, 403, 200, 200, 403]),
        ("inclusion own by id", Method::GET, format!("/v1/proofs/inclusion?id={a_id}"), None, [401, 403, 200, 200, 403]),
        ("inclusion other", Method::GET, format!("/v1/proofs/inclusion?index={g}"), None, [401, 403, 404, 200, 403]),
        ("inclusion other by id", Method::GET, format!("/v1/proofs/inclusion?id={g_id}"), None, [401, 403, 404, 200, 403]),
        ("consistency", Method::GET, "/v1/proofs/consistency?from=1".into(), None, [401, 403, 200, 200, 403]),
        ("search", Method::GET, "/v1/events?limit=5".into(), None, [401, 403, 200, 200, 403]),
        ("search own tenant", Method::GET, "/v1/events?tenant=acme".into(), None, [401, 403, 200, 200, 403]),
        ("search other tenant", Method::GET, "/v1/events?tenant=globex".into(), None, [401, 403, 403, 200, 403]),
        ("count", Method::GET, "/v1/events/count?group_by=tenant".into(), None, [401, 403, 200, 200, 403]),
        ("count other tenant", Method::GET, "/v1/events/count?tenant=globex".into(), None, [401, 403, 403, 200, 403]),
        ("replay", Method::GET, "/v1/replay?as_of=2030-01-01T00:00:00Z&principal=alice".into(), None, [401, 403, 403, 200, 403]),
        ("checkpoint", Method::GET, "/checkpoint".into(), None, [401, 403, 200, 200, 403]),
        ("log info", Method::GET, "/v1/log".into(), None, [401, 403, 200, 200, 403]),
        ("hash tile", Method::GET, "/tile/0/000.p/1".into(), None, [401, 403, 200, 200, 403]),
        ("entry bundle", Method::GET, "/tile/entries/000.p/1".into(), None, [401, 403, 403, 200, 403]),
        ("metrics", Method::GET, "/metrics".into(), None, [401, 403, 403, 200, 200]),
        ("health", Method::GET, "/healthz".into(), None, [200, 200, 200, 200, 200]),
        ("openapi", Method::GET, "/openapi.json".into(), None, [200, 200, 200, 200, 200]),
        ("schema", Method::GET, "/schema/event-v1.schema.json".into(), None, [200, 200, 200, 200, 200]),
        ("list tokens", Method::GET, "/v1/admin/tokens".into(), None, [401, 403, 403, 403, 200]),
        ("create token", Method::POST, "/v1/admin/tokens".into(), Some(&new_reader), [401, 403, 403, 403, 201]),
    ];
    let columns: [(&str, Option<&str>); 5] = [
        ("none", None),
        ("writer", Some(&w.who.writer)),
        ("reader", Some(&w.who.reader)),
        ("auditor", Some(&w.who.auditor)),
        ("admin", Some(&w.who.admin)),
    ];
    let mut wrong = Vec::new();
    for (what, method, path, body, expected) in &rows {
        for ((who, token), want) in columns.iter().zip(expected) {
            let r = send(s, method.clone(), path, *token, *body);
            let got = r.status().as_u16();
            let headers = r.headers().clone();
            let answer = r.text().unwrap();
            if got != *want {
                wrong.push(format!(
                    "{what} ({method} {path}) as {who}: {got}, want {want}: {answer}"
                ));
                continue;
            }
            match got {
                401 => {
                    assert!(headers
                        .get("www-authenticate")
                        .unwrap()
                        .to_str()
                        .unwrap()
                        .starts_with("Bearer"));
                    assert!(answer.contains("\"error\""), "{answer}");
                }
                403 => {
                    let v: Value = serde_json::from_str(&answer).unwrap();
                    let msg = v["error"].as_str().unwrap();
                    // A role refusal names the roles needed; a binding refusal the tenant.
                    assert!(
                        v["required_role"].is_array() || msg.contains("globex"),
                        "{what} as {who}: {answer}"
                    );
                }
                _ => {}
            }
        }
    }
    // Revoke (last: it changes the token set) — a fresh token each time.
    for ((who, token), want) in columns.iter().zip([401, 403, 403, 403, 200]) {
        let victim = create_token(&s.data, "auditor", &[]);
        let id = &victim[6..22];
        let got = status(
            s,
            Method::DELETE,
            &format!("/v1/admin/tokens/{id}"),
            *token,
            None,
        );
        if got != want {
            wrong.push(format!("revoke as {who}: {got}, want {want}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} cells differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    // The writer's bindings were stamped on the event that named neither.
    let stamped: Vec<Value> = log_entries(s, &w.who.auditor)
        .into_iter()
        .filter(|e| e["context"]["n"] == 9)
        .collect();
    assert_eq!(stamped.len(), 1);
    assert_eq!(
        (stamped[0]["tenant"].as_str(), stamped[0]["source"].as_str()),
        (Some("acme"), Some("gw-acme"))
    );

    // No secret ever reached the server's log output.
    let stderr = s.stderr();
    for t in [&w.who.writer, &w.who.reader, &w.who.auditor, &w.who.admin] {
        assert!(
            !stderr.contains(&t[23..]),
            "a token secret is in the server's stderr"
        );
    }
}

#[test]
fn public_verification_opens_checkpoint_and_hash_tiles_but_not_entries() {
    let w = world(&["--public-verification", "--public-metrics"]);
    let s = &w.server;
    for path in ["/checkpoint", "/v1/log", "/tile/0/000.p/1", "/metrics"] {
        assert_eq!(status(s, Method::GET, path, None, None), 200, "{path}");
    }
    let r = send(s, Method::GET, "/tile/entries/000.p/1", None, None);
    assert_eq!(r.status().as_u16(), 401);
    let r = send(
        s,
        Method::GET,
        "/tile/entries/000.p/1",
        Some(&w.who.reader),
        None,
    );
    assert_eq!(r.status().as_u16(), 403);
    let r = send(
        s,
        Method::GET,
        "/tile/entries/000.p/1",
        Some(&w.who.auditor),
        None,
    );
    assert_eq!(r.status().as_u16(), 200);
    // Auditor-only data is never marked for shared caches.
    assert!(r.headers()["cache-control"]
        .to_str()
        .unwrap()
        .starts_with("private"));
    let r = send(s, Method::GET, "/tile/0/000.p/1", None, None);
    assert!(r.headers()["cache-control"]
        .to_str()
        .unwrap()
        .starts_with("public"));
    // Reading events still needs a token.
    assert_eq!(status(s, Method::GET, "/v1/events/0", None, None), 401);
}

#[test]
fn verification_material_can_be_kept_to_auditors() {
    let w = world(&["--auditor-only-verification"]);
    let s = &w.server;
    for path in [
        "/checkpoint",
        "/v1/log",
        "/tile/0/000.p/1",
        "/v1/key/rotations",
    ] {
        assert_eq!(status(s, Method::GET, path, None, None), 401, "{path}");
        let r = send(s, Method::GET, path, Some(&w.who.reader), None);
        assert_eq!(r.status().as_u16(), 403, "{path}");
        let body: Value = r.json().unwrap();
        assert_eq!(body["required_role"], json!(["auditor"]), "{path}");
        assert_eq!(
            status(s, Method::GET, path, Some(&w.who.auditor), None),
            200,
            "{path}"
        );
    }
    // A reader still verifies its own entry: the proof at the latest checkpoint's size
    // carries that checkpoint.
    let size = s.size();
    let deadline = Instant::now() + Duration::from_secs(20);
    let proof = loop {
        let r = send(
            s,
            Method::GET,
            &format!("/v1/proofs/inclusion?index={}", w.acme.0),
            Some(&w.who.reader),
            None,
        );
        assert_eq!(r.status().as_u16(), 200);
        let v: Value = r.json().unwrap();
        if v["checkpoint"].is_string() && v["tree_size"].as_u64() >= Some(size) {
            break v;
        }
        assert!(Instant::now() < deadline, "no checkpoint in the proof: {v}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(proof["checkpoint"].as_str().unwrap().contains('\u{2014}'));
    // Public and auditor-only at once is refused.
    let out = run_stele([
        "serve",
        "--data",
        s.data.to_str().unwrap(),
        "--public-verification",
        "--auditor-only-verification",
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn revocation_and_expiry_take_effect_on_the_next_request() {
    let w = world(&[]);
    let s = &w.server;
    let path = format!("/v1/events/{}", w.acme.0);

    // Offline, through the CLI on the running server's data directory.
    let reader = create_token(&s.data, "reader", &["--tenant", "acme"]);
    assert_eq!(status(s, Method::GET, &path, Some(&reader), None), 200);
    let out = run_stele([
        "token",
        "revoke",
        "--data",
        s.data.to_str().unwrap(),
        &reader[6..22],
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = send(s, Method::GET, &path, Some(&reader), None);
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.text().unwrap().contains("revoked"));

    // Over the admin API.
    let auditor = create_token(&s.data, "auditor", &[]);
    assert_eq!(status(s, Method::GET, &path, Some(&auditor), None), 200);
    let del = format!("/v1/admin/tokens/{}", &auditor[6..22]);
    assert_eq!(
        status(s, Method::DELETE, &del, Some(&w.who.admin), None),
        200
    );
    assert_eq!(status(s, Method::GET, &path, Some(&auditor), None), 401);
    let again: Value = send(s, Method::DELETE, &del, Some(&w.who.admin), None)
        .json()
        .unwrap();
    assert_eq!(again["already_revoked"], true, "{again}");

    // Expiry.
    let brief = create_token(&s.data, "auditor", &["--expires", "2s"]);
    let created = Instant::now();
    assert_eq!(status(s, Method::GET, &path, Some(&brief), None), 200);
    std::thread::sleep(Duration::from_millis(2100).saturating_sub(created.elapsed()));
    let r = send(s, Method::GET, &path, Some(&brief), None);
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.text().unwrap().contains("expired"));

    // The token list says so, one line per token, secrets never shown.
    let out = run_stele(["token", "list", "--data", s.data.to_str().unwrap()]);
    let text = String::from_utf8(out.stdout).unwrap();
    let line = |t: &str| {
        text.lines()
            .find(|l| l.starts_with(&t[6..22]))
            .unwrap()
            .to_owned()
    };
    assert!(line(&reader).ends_with(" revoked"), "{text}");
    assert!(line(&auditor).ends_with(" revoked"), "{text}");
    assert!(line(&brief).ends_with(" expired"), "{text}");
    let reader_line = line(&reader);
    let fields: Vec<&str> = reader_line.split(' ').collect();
    assert_eq!(&fields[1..5], ["reader", "acme", "-", "never"], "{text}");
    for t in [&reader, &auditor, &brief, &w.who.admin] {
        assert!(!text.contains(&t[23..]), "a secret is listed");
    }
}

#[test]
fn every_read_kind_and_admin_action_is_in_the_meta_log() {
    let w = world(&[]);
    let s = &w.server;
    let (a, g) = (w.acme.0, w.globex.0);
    let reader_id = format!("token:{}", &w.who.reader[6..22]);
    let auditor_id = format!("token:{}", &w.who.auditor[6..22]);
    let admin_id = format!("token:{}", &w.who.admin[6..22]);

    // A read is recorded before it is answered: the log is one entry longer at once.
    let before = s.size();
    assert_eq!(
        status(
            s,
            Method::GET,
            &format!("/v1/events/{a}"),
            Some(&w.who.reader),
            None
        ),
        200
    );
    assert_eq!(
        s.size(),
        before + 1,
        "the read was answered before its record was in the log"
    );

    assert_eq!(
        status(
            s,
            Method::GET,
            &format!("/v1/events/{g}"),
            Some(&w.who.reader),
            None
        ),
        404
    );
    assert_eq!(
        status(
            s,
            Method::GET,
            &format!("/v1/proofs/inclusion?index={a}"),
            Some(&w.who.reader),
            None
        ),
        200
    );
    assert_eq!(
        status(
            s,
            Method::GET,
            "/v1/proofs/consistency?from=1",
            Some(&w.who.reader),
            None
        ),
        200
    );
    assert_eq!(
        status(
            s,
            Method::GET,
            "/tile/entries/000.p/2",
            Some(&w.who.auditor),
            None
        ),
        200
    );
    // Queries: a reader's search and count, an auditor's replay.
    let search = "/v1/events?action=auth.login&limit=10";
    let found: Value = send(s, Method::GET, search, Some(&w.who.reader), None)
        .json()
        .unwrap();
    let found = found["events"].as_array().unwrap().len();
    assert!(found >= 1);
    for (path, token) in [
        ("/v1/events/count?group_by=outcome", &w.who.reader),
        (
            "/v1/replay?as_of=2030-01-01T00:00:00Z&principal=alice",
            &w.who.auditor,
        ),
    ] {
        assert_eq!(
            status(s, Method::GET, path, Some(token), None),
            200,
            "{path}"
        );
    }
    let created: Value = send(
        s,
        Method::POST,
        "/v1/admin/tokens",
        Some(&w.who.admin),
        Some(&json!({"role": "writer", "source": "svc", "label": "made by API"})),
    )
    .json()
    .unwrap();
    let api_token = created["id"].as_str().unwrap().to_owned();
    assert_eq!(
        status(s, Method::GET, "/v1/admin/tokens", Some(&w.who.admin), None),
        200
    );
    assert_eq!(
        status(
            s,
            Method::DELETE,
            &format!("/v1/admin/tokens/{api_token}"),
            Some(&w.who.admin),
            None
        ),
        200
    );
    let offline = create_token(&s.data, "reader", &["--tenant", "globex"]);
    // The server records an offline change before serving the first request after it.
    assert_eq!(
        status(s, Method::GET, "/v1/log", Some(&w.who.reader), None),
        200
    );

    let log = log_entries(s, &w.who.auditor);
    let meta: Vec<&Value> = log.iter().filter(|e| e["source"] == "stele.meta").collect();
    for m in &meta {
        assert!(
            m.get("tenant").is_none(),
            "a meta-log event has a tenant: {m}"
        );
    }
    let find = |action: &str, actor: &str, pred: &dyn Fn(&Value) -> bool| -> Vec<&Value> {
        meta.iter()
            .copied()
            .filter(|e| e["action"] == action && e["actor"]["id"] == actor && pred(e))
            .collect()
    };
    let one = |what: &str, found: Vec<&Value>| -> Value {
        assert_eq!(found.len(), 1, "{what}: {found:?}");
        found[0].clone()
    };
    let read = one(
        "audit.read own",
        find("audit.read", &reader_id, &|e| e["context"]["index"] == a),
    );
    assert_eq!(read["outcome"], "allow");
    assert_eq!(
        read["resource"],
        json!({"type": "event", "id": format!("/v1/events/{a}")})
    );
    assert_eq!(read["context"]["entries"], 1);
    assert_eq!(read["context"]["status"], 200);
    assert_eq!(read["context"]["role"], "reader");
    assert_eq!(read["context"]["tenants"], json!(["acme"]));
    assert_eq!(read["actor"]["ip"], "127.0.0.1");
    let hidden = one(
        "audit.read withheld",
        find("audit.read", &reader_id, &|e| e["context"]["index"] == g),
    );
    assert_eq!(
        (
            hidden["context"]["entries"].as_u64(),
            hidden["context"]["withheld"].as_bool()
        ),
        (Some(0), Some(true))
    );
    assert_eq!(hidden["context"]["status"], 404);
    let proofs = find("audit.proof", &reader_id, &|_| true);
    assert_eq!(proofs.len(), 2, "{proofs:?}");
    assert!(proofs
        .iter()
        .any(|p| p["resource"]["type"] == "inclusion_proof" && p["context"]["entries"] == 1));
    assert!(proofs
        .iter()
        .any(|p| p["resource"]["type"] == "consistency_proof" && p["context"]["entries"] == 0));
    let export = one(
        "audit.export",
        find("audit.export", &auditor_id, &|e| {
            e["resource"]["id"] == "/tile/entries/000.p/2"
        }),
    );
    assert_eq!(export["context"]["entries"], 2);
    let searched = one(
        "audit.query search",
        find("audit.query", &reader_id, &|e| {
            e["resource"]["type"] == "events_search"
        }),
    );
    assert_eq!(
        searched["context"]["request"]["query"],
        "action=auth.login&limit=10"
    );
    assert_eq!(searched["context"]["entries"], found);
    assert_eq!(searched["context"]["tenants"], json!(["acme"]));
    let counted = one(
        "audit.query count",
        find("audit.query", &reader_id, &|e| {
            e["resource"]["type"] == "events_count"
        }),
    );
    assert_eq!(counted["context"]["request"]["query"], "group_by=outcome");
    let replayed = one(
        "audit.query replay",
        find("audit.query", &auditor_id, &|e| {
            e["resource"]["type"] == "replay"
        }),
    );
    assert_eq!(replayed["context"]["status"], 200);
    let made = one(
        "api create",
        find("admin.token.create", &admin_id, &|e| {
            e["resource"]["id"] == api_token.as_str()
        }),
    );
    assert_eq!(made["resource"]["name"], "made by API");
    assert_eq!(made["context"]["role"], "writer");
    one(
        "api revoke",
        find("admin.token.revoke", &admin_id, &|e| {
            e["resource"]["id"] == api_token.as_str()
        }),
    );
    one("list", find("admin.token.list", &admin_id, &|_| true));
    one(
        "offline create",
        find("admin.token.create", "cli", &|e| {
            e["resource"]["id"] == offline[6..22]
        }),
    );
    one(
        "first admin",
        find("admin.token.create", "bootstrap", &|e| {
            e["resource"]["id"] == w.who.admin[6..22]
        }),
    );
    // Each token's creation is recorded once, however often the server re-reads the file.
    let creations = meta
        .iter()
        .filter(|e| e["action"] == "admin.token.create")
        .count();
    let tokens =
        String::from_utf8(run_stele(["token", "list", "--data", s.data.to_str().unwrap()]).stdout)
            .unwrap()
            .lines()
            .count();
    assert_eq!(creations, tokens);
    // Restarting records nothing new about the tokens.
    let data = s.data.clone();
    let (admin, auditor) = (w.who.admin.clone(), w.who.auditor.clone());
    assert!(w.server.terminate().success());
    let s = Server::start_secured(&data, &[]);
    let again = log_entries(&s, &auditor)
        .iter()
        .filter(|e| e["action"] == "admin.token.create" && e["source"] == "stele.meta")
        .count();
    assert_eq!(
        again,
        tokens + 2,
        "only the helper's two new tokens are new"
    );
    drop(admin);
}

#[test]
fn tenant_isolation_holds_against_attempts_to_escape_it() {
    let w = world(&[]);
    let s = &w.server;
    let r = Some(w.who.reader.as_str());
    let (g, g_id) = (w.globex.0, w.globex.1.clone());
    let size = s.size();

    // Another tenant's event looks exactly like a missing one: same status, body and type.
    let look = |path: &str| {
        let resp = send(s, Method::GET, path, r, None);
        let ct = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        (resp.status().as_u16(), ct, resp.text().unwrap())
    };
    let missing_id = uuid::Uuid::new_v4().to_string();
    let (st, ct, body) = look(&format!("/v1/events/{g}"));
    assert_eq!(
        (st, &body),
        (404, &format!("{{\"error\":\"no entry at index {g}\"}}"))
    );
    let (st2, ct2, body2) = look(&format!("/v1/events/{}", size + 5));
    assert_eq!((st2, ct2.clone()), (st, ct.clone()));
    assert_eq!(
        body2,
        format!("{{\"error\":\"no entry at index {}\"}}", size + 5)
    );
    let (st, ct_id, body) = look(&format!("/v1/events/{g_id}"));
    assert_eq!(
        (st, ct_id.clone(), body),
        (
            404,
            ct.clone(),
            format!("{{\"error\":\"no event with id {g_id}\"}}")
        )
    );
    let (st, _, body) = look(&format!("/v1/events/{missing_id}"));
    assert_eq!(
        (st, body),
        (
            404,
            format!("{{\"error\":\"no event with id {missing_id}\"}}")
        )
    );

    // Every way of naming the globex entry in a proof request.
    let entry = {
        let (st, e) = s.get(&format!("/v1/events/{g}"));
        assert_eq!(st, 200);
        e
    };
    let leaf = stele_tests::b64(&stele_tests::leaf_hash(&entry));
    let leaf_q = leaf
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    for path in [
        format!("/v1/proofs/inclusion?index={g}"),
        format!("/v1/proofs/inclusion?id={g_id}"),
        format!("/v1/proofs/inclusion?leaf_hash={leaf_q}"),
        format!("/v1/proofs/inclusion?index={g}&tree_size={}", g + 1),
        format!("/v1/proofs/inclusion?index={}", size + 100),
        format!("/v1/events/{g:06}"),
        format!("/v1/events/{}", g_id.to_uppercase()),
    ] {
        let (st, _, body) = look(&path);
        assert_eq!(st, 404, "{path}: {body}");
        assert!(
            !body.contains("globex") && !body.contains("tree"),
            "{path}: {body}"
        );
    }
    for path in [
        "/tile/entries/000",
        "/tile/entries/000.p/1",
        "/v1/admin/tokens",
    ] {
        assert_eq!(look(path).0, 403, "{path}");
    }
    // Duplicate and smuggled parameters do not widen what a reader sees.
    for path in [
        format!("/v1/proofs/inclusion?index={}&index={g}", w.acme.0),
        format!("/v1/proofs/inclusion?index={g}&index={}", w.acme.0),
        format!("/v1/proofs/inclusion?index={g}&tenant=acme"),
        format!("/v1/events/{g}?tenant=acme"),
    ] {
        let (st, _, body) = look(&path);
        match st {
            // Whichever of two indexes is taken, only the reader's own entry is served.
            200 => {
                let v: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(v["index"], w.acme.0, "{path}: {body}");
            }
            400 | 404 => assert!(!body.contains("globex"), "{path}: {body}"),
            _ => panic!("{path}: {st} {body}"),
        }
    }

    // A writer bound to acme cannot write into globex, nor as another source, nor as the
    // meta-log, not even hidden in a batch; nothing of a refused batch is appended.
    let before = s.size();
    let mut other = event(20);
    other["tenant"] = json!("globex");
    let mut as_other_source = event(21);
    as_other_source["source"] = json!("gw-globex");
    let mut as_meta = event(22);
    as_meta["source"] = json!("stele.meta");
    for (what, body) in [
        ("other tenant", json!(other)),
        ("other source", json!(as_other_source)),
        ("meta source", json!(as_meta)),
        ("batch", json!([event(23), other])),
    ] {
        let resp = send(
            s,
            Method::POST,
            "/v1/events",
            Some(&w.who.writer),
            Some(&body),
        );
        assert_eq!(resp.status().as_u16(), 403, "{what}");
        assert!(
            resp.text().unwrap().contains("nothing was appended"),
            "{what}"
        );
    }
    let mut wrong_type = event(24);
    wrong_type["tenant"] = json!(["acme"]);
    assert_eq!(
        status(
            s,
            Method::POST,
            "/v1/events",
            Some(&w.who.writer),
            Some(&wrong_type)
        ),
        400
    );
    assert_eq!(s.size(), before, "a refused write changed the log");
}

#[test]
fn auth_failures_are_logged_but_cannot_flood_the_log() {
    let w = world(&[]);
    let s = &w.server;
    let start = settled_size(s);
    let t0 = Instant::now();
    let bogus = format!("stele_{}_{}", "0123456789abcdef", "A".repeat(43));
    let attempts = 300u64;
    for i in 0..attempts {
        let token = if i % 2 == 0 {
            None
        } else {
            Some(bogus.as_str())
        };
        let r = send(s, Method::GET, "/v1/events/0", token, None);
        assert_eq!(r.status().as_u16(), 401);
        assert!(r.headers().contains_key("www-authenticate"));
    }
    let elapsed = t0.elapsed().as_secs_f64();
    // Once the budget refills, the next failure carries the count of those not logged.
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(status(s, Method::GET, "/v1/events/0", None, None), 401);
    let end = settled_size(s);
    let logged = end - start;
    assert!(logged >= 2, "failures were not logged");
    // Burst of 20, then 5 a second.
    let bound = 20.0 + 5.0 * (elapsed + 1.5) + 1.0;
    assert!(
        (logged as f64) <= bound,
        "{logged} failures logged in {elapsed:.1} s"
    );
    let log = log_entries(s, &w.who.auditor);
    let failures: Vec<&Value> = log[usize::try_from(start).unwrap()..usize::try_from(end).unwrap()]
        .iter()
        .filter(|e| e["action"] == "auth.failure")
        .collect();
    assert_eq!(failures.len() as u64, logged);
    let unlogged: u64 = failures
        .iter()
        .map(|e| {
            e["context"]["unlogged_failures_before"]
                .as_u64()
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(
        logged + unlogged,
        attempts + 1,
        "every failure is logged or counted"
    );
    assert!(failures
        .iter()
        .any(|e| e["context"]["claimed_token"] == "0123456789abcdef"));
    assert!(failures
        .iter()
        .all(|e| e["actor"]["id"] == "anonymous" && e["outcome"] == "deny"));
    assert!(
        log.iter().all(|e| !e.to_string().contains(&"A".repeat(43))),
        "a presented secret was logged"
    );
}

#[test]
fn each_principal_has_its_own_rate_limit() {
    let w = world(&["--rate-limit", "1"]);
    let s = &w.server;
    // A burst of two, then one a second.
    let codes: Vec<u16> = (0..2)
        .map(|_| status(s, Method::GET, "/v1/log", Some(&w.who.reader), None))
        .collect();
    assert_eq!(codes, [200, 200]);
    let r = send(s, Method::GET, "/v1/log", Some(&w.who.reader), None);
    assert_eq!(r.status().as_u16(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    assert!(r.text().unwrap().contains("rate limit"));
    // Another principal is not held up.
    assert_eq!(
        status(s, Method::GET, "/v1/admin/tokens", Some(&w.who.admin), None),
        200
    );
}

#[test]
fn the_first_start_prints_and_stores_one_admin_token() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = Server::start_secured(&data, &[]);
    let printed: Vec<&String> = s
        .banner
        .iter()
        .filter(|l| l.starts_with("admin token: "))
        .collect();
    assert_eq!(printed.len(), 1, "{:?}", s.banner);
    let token = printed[0].trim_start_matches("admin token: ").to_owned();
    let file = data.join("admin.token");
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), token);
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        status(&s, Method::GET, "/v1/admin/tokens", Some(&token), None),
        200
    );
    // The CLI talks to the admin API with it (flag or environment).
    let url = s.url.clone();
    let out = run_stele([
        "token", "create", "--url", &url, "--token", &token, "--role", "reader", "--tenant", "t1",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reader = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_owned();
    assert!(reader.starts_with("stele_"));
    let out = std::process::Command::new(stele_tests::stele_bin())
        .args(["token", "list", "--url", &url])
        .env("STELE_TOKEN", &token)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .contains(&format!("{} reader t1 - never active", &reader[6..22])));
    // `stele get` without a token is refused with a hint; with one it is served.
    let out = run_stele(["get", "0", "--url", &url]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("STELE_TOKEN"));
    let auditor = s.tokens().unwrap().auditor.clone();
    let out = run_stele(["get", "0", "--url", &url, "--token", &auditor]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(s.terminate().success());

    // A directory that is not a log's gets no token file.
    let elsewhere = dir.path().join("not-a-log");
    std::fs::create_dir(&elsewhere).unwrap();
    let out = run_stele([
        "token",
        "create",
        "--data",
        elsewhere.to_str().unwrap(),
        "--role",
        "auditor",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a Stele data directory"));
    assert!(!elsewhere.join("auth").exists());

    // Later starts neither print nor replace it.
    let s = Server::start_secured(&data, &[]);
    assert!(
        s.banner.iter().all(|l| !l.starts_with("admin token")),
        "{:?}",
        s.banner
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), token);
}

#[test]
fn no_auth_is_explicit_and_loud() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = Server::start(&data, &[]);
    let (st, _) = s.post_json(&event(1));
    assert_eq!(st, 200);
    assert_eq!(s.get("/v1/events/0").0, 200);
    assert!(
        s.stderr().contains("authentication is OFF"),
        "{}",
        s.stderr()
    );
    assert!(!data.join("admin.token").exists());
    assert_eq!(s.size(), 1, "an open log writes no meta-log");
}

#[test]
fn a_readers_queries_see_count_and_group_only_its_own_tenants() {
    let w = world(&[]);
    let s = &w.server;
    let (r, a) = (Some(w.who.reader.as_str()), Some(w.who.auditor.as_str()));
    let globex_writer = create_token(&s.data, "writer", &["--tenant", "globex"]);
    // The same actor, action and words in both tenants, so only the tenant tells them apart.
    for n in 100..112u64 {
        let mut e = event(n);
        e["actor"]["id"] = json!("shared-user");
        e["reason"] = json!(format!("quarterly payroll export {n}"));
        let token = if n % 3 == 0 {
            &w.who.writer
        } else {
            &globex_writer
        };
        assert_eq!(
            status(s, Method::POST, "/v1/events", Some(token), Some(&e)),
            200
        );
    }
    // acme: the world's event plus n = 102, 105, 108, 111; globex: the world's plus 8 more.
    let json_of = |path: &str, token: Option<&str>| -> Value {
        let resp = send(s, Method::GET, path, token, None);
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        resp.json().unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while json_of("/v1/events/count?tenant=globex", a)["total"] != 9
        || json_of("/v1/events/count?tenant=acme", a)["total"] != 5
    {
        assert!(Instant::now() < deadline, "the index never caught up");
        std::thread::sleep(Duration::from_millis(50));
    }

    let tenants_of = |v: &Value| -> Vec<String> {
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["tenant"].as_str().unwrap_or("(none)").to_owned())
            .collect()
    };
    // No filter, a shared actor, shared words, a prefix: only acme's events come back, and
    // exactly the ones an auditor finds when it names acme.
    for filter in ["", "actor=shared-user", "q=payroll", "action=auth.*"] {
        let mine = json_of(&format!("/v1/events?limit=1000&{filter}"), r);
        assert!(
            tenants_of(&mine).iter().all(|t| t == "acme"),
            "{filter}: {mine}"
        );
        let auditors = json_of(&format!("/v1/events?limit=1000&tenant=acme&{filter}"), a);
        let idx = |v: &Value| -> Vec<u64> {
            v["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["index"].as_u64().unwrap())
                .collect()
        };
        assert_eq!(idx(&mine), idx(&auditors), "{filter}");
        assert!(!idx(&mine).is_empty(), "{filter}");
        let count = json_of(&format!("/v1/events/count?{filter}"), r);
        assert_eq!(count["total"], idx(&auditors).len(), "{filter}: {count}");
    }
    let q = json_of("/v1/events?q=payroll&limit=1000", r);
    assert_eq!(tenants_of(&q).len(), 4, "{q}");

    // Counts and groups never include another tenant, whatever they are grouped by.
    let by_tenant = json_of("/v1/events/count?group_by=tenant", r);
    assert_eq!(by_tenant["groups"], json!({"acme": 5}), "{by_tenant}");
    assert_eq!(by_tenant["total"], 5);
    let by_actor = json_of("/v1/events/count?group_by=actor&actor=shared-user", r);
    assert_eq!(by_actor["groups"], json!({"shared-user": 4}), "{by_actor}");

    // Paging one event at a time walks only acme's events.
    let mut seen = Vec::new();
    let mut path = "/v1/events?limit=1&order=asc".to_owned();
    loop {
        let page = json_of(&path, r);
        seen.extend(tenants_of(&page));
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/events?limit=1&order=asc&cursor={c}"),
            None => break,
        }
        assert!(seen.len() < 50, "paging did not end");
    }
    assert_eq!(seen, vec!["acme"; 5]);

    // Naming another tenant is refused, naming it; so are attempts to smuggle it in.
    for path in [
        "/v1/events?tenant=globex",
        "/v1/events/count?tenant=globex&group_by=actor",
        "/v1/events?tenant=globex&q=payroll",
    ] {
        let resp = send(s, Method::GET, path, r, None);
        assert_eq!(resp.status().as_u16(), 403, "{path}");
        let body: Value = resp.json().unwrap();
        let msg = body["error"].as_str().unwrap();
        assert!(
            msg.contains("globex") && msg.contains("acme"),
            "{path}: {msg}"
        );
    }
    for path in [
        "/v1/events?tenant=acme&tenant=globex",
        "/v1/events?tenant[]=globex",
        "/v1/events/count?group_by=tenant&tenant=acme&tenant=globex",
    ] {
        let resp = send(s, Method::GET, path, r, None);
        assert_eq!(resp.status().as_u16(), 400, "{path}");
        assert!(!resp.text().unwrap().contains("\"events\""), "{path}");
    }
    // Replay spans tenants: auditors only.
    let resp = send(
        s,
        Method::GET,
        "/v1/replay?as_of=2030-01-01T00:00:00Z&principal=shared-user",
        r,
        None,
    );
    assert_eq!(resp.status().as_u16(), 403);
}
