//! Evidence bundles end to end: `stele export` against a real server, then `stele
//! verify-bundle` and the independent Python verifier (`tools/verify_bundle.py`) on the file it
//! wrote; exact window boundaries; tampering, which both verifiers must refuse (the Rust one
//! naming the problem); and `stele report`'s counts, derived here from the events appended.
//!
//! The Python verifier runs in a virtual environment that `scripts/python-env.sh` makes once
//! under the target directory (it pip-installs a pinned `cryptography`).
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{json, Value};
use stele_tests::{b64, client_fields, leaf_hash, public_key, run_stele, workspace_root, Server};

const ACTIONS: [&str; 6] = [
    "auth.login",
    "doc.read",
    "role.grant",
    "role.revoke",
    "policy.update",
    "user.deactivate",
];
/// The actions among [`ACTIONS`] that `stele report` counts as permission changes.
const PERMISSION_CHANGES: [&str; 4] = [
    "role.grant",
    "role.revoke",
    "policy.update",
    "user.deactivate",
];

/// Event `n` of batch `batch`: actions, outcomes and actors vary so filters and counts have
/// something to do.
fn test_event(batch: usize, n: usize) -> Value {
    let action = ACTIONS[(batch * 7 + n) % ACTIONS.len()];
    let outcome = if (batch + n).is_multiple_of(3) {
        "deny"
    } else {
        "allow"
    };
    json!({
        "actor": {"type": "user", "id": format!("user-{}", n % 4)},
        "action": action,
        "resource": {"type": "role", "id": format!("r{}", n % 5)},
        "outcome": outcome,
        "reason": format!("batch {batch} event {n}"),
    })
}

/// One `POST /v1/events` request: one group commit, so one time for all its events.
struct Batch {
    time: String,
    /// (log index, event as sent).
    events: Vec<(u64, Value)>,
}

struct Fixture {
    server: Server,
    key: String,
    dir: tempfile::TempDir,
    batches: Vec<Batch>,
    /// The checkpoint note once the first two batches were in.
    early_checkpoint: PathBuf,
}

impl Fixture {
    fn new(sizes: &[usize]) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let server = Server::start(&data, &["--checkpoint-interval", "50ms"]);
        let mut fixture = Fixture {
            key: public_key(&data),
            server,
            early_checkpoint: dir.path().join("early.checkpoint"),
            dir,
            batches: Vec::new(),
        };
        for (b, &size) in sizes.iter().enumerate() {
            fixture.append(b, size);
            if b == 1 {
                let note = fixture.server.checkpoint_at_least(fixture.total());
                std::fs::write(&fixture.early_checkpoint, note).unwrap();
            }
        }
        fixture.server.checkpoint_at_least(fixture.total());
        fixture
    }

    fn total(&self) -> u64 {
        self.batches.iter().map(|b| b.events.len() as u64).sum()
    }

    fn append(&mut self, b: usize, size: usize) {
        // Commit times are `max(now, previous)`: a short pause keeps batches apart.
        std::thread::sleep(Duration::from_millis(3));
        let events: Vec<Value> = (0..size).map(|n| test_event(b, n)).collect();
        let (status, answer) = self.server.post_json(&Value::Array(events.clone()));
        assert_eq!(status, 200, "{answer}");
        let entries = answer["entries"].as_array().unwrap();
        let time = entries[0]["time"].as_str().unwrap().to_owned();
        assert!(
            entries.iter().all(|e| e["time"] == time.as_str()),
            "one commit, one time"
        );
        if let Some(last) = self.batches.last() {
            assert!(
                last.time < time,
                "batch times must increase: {} then {time}",
                last.time
            );
        }
        let indexed = entries
            .iter()
            .map(|e| e["index"].as_u64().unwrap())
            .zip(events)
            .collect();
        self.batches.push(Batch {
            time,
            events: indexed,
        });
    }

    /// The events appended with `from <= time < to`.
    fn window(&self, from: &str, to: &str) -> Vec<&(u64, Value)> {
        self.batches
            .iter()
            .filter(|b| from <= b.time.as_str() && b.time.as_str() < to)
            .flat_map(|b| &b.events)
            .collect()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `stele export --url … --key … --from … --to … EXTRA… --out NAME`, which must succeed.
    fn export(&self, name: &str, from: &str, to: &str, extra: &[&str]) -> PathBuf {
        let out = self.path(name);
        let mut args = vec![
            "export",
            "--url",
            &self.server.url,
            "--key",
            &self.key,
            "--from",
            from,
            "--to",
            to,
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--out", out.to_str().unwrap()]);
        let result = run_stele(&args);
        assert!(result.status.success(), "stele {args:?}: {}", text(&result));
        out
    }

    fn verify_rust(&self, bundle: &Path) -> Output {
        run_stele([
            "verify-bundle",
            bundle.to_str().unwrap(),
            "--key",
            &self.key,
        ])
    }

    /// The Python verifier, with `cryptography` and with its own RFC 8032 fallback (what
    /// runs where `cryptography` is not installed); both must give the same verdict.
    fn verify_python(&self, bundle: &Path) -> Output {
        let run = |pure: &str| {
            Command::new(python())
                .arg(workspace_root().join("tools/verify_bundle.py"))
                .arg(bundle)
                .arg(&self.key)
                .env("STELE_PURE_ED25519", pure)
                .output()
                .unwrap()
        };
        let library = run("0");
        let fallback = run("1");
        assert_eq!(
            library.status.code(),
            fallback.status.code(),
            "the Python verifier's two Ed25519 paths disagree:\n{}\n{}",
            text(&library),
            text(&fallback)
        );
        library
    }

    /// Both verifiers accept `bundle`; returns the Rust one's stdout.
    fn assert_verifies(&self, bundle: &Path) -> String {
        let rust = self.verify_rust(bundle);
        assert!(rust.status.success(), "verify-bundle: {}", text(&rust));
        let py = self.verify_python(bundle);
        assert!(py.status.success(), "verify_bundle.py: {}", text(&py));
        String::from_utf8(rust.stdout).unwrap()
    }

    /// Both verifiers refuse `bundle` with exit 1; returns the Rust one's stderr.
    fn assert_refused(&self, bundle: &Path) -> String {
        let rust = self.verify_rust(bundle);
        assert_eq!(
            rust.status.code(),
            Some(1),
            "verify-bundle: {}",
            text(&rust)
        );
        let py = self.verify_python(bundle);
        assert_eq!(py.status.code(), Some(1), "verify_bundle.py: {}", text(&py));
        String::from_utf8(rust.stderr).unwrap()
    }
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The venv python with `cryptography`, made by `scripts/python-env.sh` once per test run.
fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let out = Command::new(workspace_root().join("scripts/python-env.sh"))
            .output()
            .expect("running scripts/python-env.sh");
        assert!(
            out.status.success(),
            "scripts/python-env.sh: {}",
            text(&out)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        PathBuf::from(stdout.lines().last().expect("the python path").trim())
    })
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn indices(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| e["index"].as_u64().unwrap())
        .collect()
}

#[test]
fn a_window_exports_verifies_in_both_verifiers_and_reports_its_counts() {
    // Batch 2 is large enough for the window to span several entry bundles.
    let f = Fixture::new(&[3, 5, 300, 4, 6]);
    let (t1, t2, t3) = (&f.batches[1].time, &f.batches[2].time, &f.batches[3].time);

    // The whole of batches 1 and 2: `from` is an event's exact time (inclusive), `to` is the
    // exact time of batch 3 (exclusive).
    let bundle = f.export("window.json", t1, t3, &[]);
    let stdout = f.assert_verifies(&bundle);
    let want = f.window(t1, t3);
    assert_eq!(want.len(), 305);
    assert!(stdout.starts_with("ok: 305 events"), "{stdout}");
    assert!(stdout.contains("complete"), "{stdout}");
    let b = read_json(&bundle);
    assert_eq!(
        indices(&b["events"]),
        want.iter().map(|(i, _)| *i).collect::<Vec<_>>()
    );
    assert_eq!(b["before"]["index"], f.batches[0].events[2].0);
    assert_eq!(b["after"]["index"], f.batches[3].events[0].0);
    for (e, (_, sent)) in b["events"].as_array().unwrap().iter().zip(&want) {
        let stored: Value = serde_json::from_str(e["entry"].as_str().unwrap()).unwrap();
        assert_eq!(client_fields(&stored), *sent);
    }

    // A window ending exactly at batch 2's time holds batch 1 only.
    let narrow = f.export("narrow.json", t1, t2, &[]);
    f.assert_verifies(&narrow);
    assert_eq!(
        indices(&read_json(&narrow)["events"]),
        f.batches[1]
            .events
            .iter()
            .map(|(i, _)| *i)
            .collect::<Vec<_>>()
    );

    // Filters, and a consistency proof from the checkpoint saved after batch 1.
    let since = f.early_checkpoint.to_str().unwrap();
    let filtered = f.export(
        "filtered.json",
        t1,
        t3,
        &[
            "--action",
            "role.*",
            "--outcome",
            "allow",
            "--since-checkpoint",
            since,
        ],
    );
    let stdout = f.assert_verifies(&filtered);
    assert!(
        stdout.contains("filtered by action=role.*, outcome=allow"),
        "{stdout}"
    );
    assert!(
        stdout.contains("consistent with the earlier checkpoint of size 8"),
        "{stdout}"
    );
    let want_filtered: Vec<u64> = want
        .iter()
        .filter(|(_, e)| {
            e["action"].as_str().unwrap().starts_with("role.") && e["outcome"] == "allow"
        })
        .map(|(i, _)| *i)
        .collect();
    assert!(!want_filtered.is_empty());
    assert_eq!(indices(&read_json(&filtered)["events"]), want_filtered);

    check_report(&f, &bundle, &want);
}

/// `stele report` on the window bundle: every count as derived from the events sent.
fn check_report(f: &Fixture, bundle: &Path, want: &[&(u64, Value)]) {
    let path = bundle.to_str().unwrap();
    let md = run_stele(["report", path, "--key", &f.key, "--format", "markdown"]);
    assert!(md.status.success(), "{}", text(&md));
    let md = String::from_utf8(md.stdout).unwrap();

    let mut by_action: BTreeMap<&str, [usize; 3]> = BTreeMap::new();
    for (_, e) in want {
        let slot = match e["outcome"].as_str().unwrap() {
            "allow" => 0,
            "deny" => 1,
            _ => 2,
        };
        by_action.entry(e["action"].as_str().unwrap()).or_default()[slot] += 1;
    }
    for (action, [a, d, e]) in &by_action {
        let row = format!("| {action} | {a} | {d} | {e} | {} |", a + d + e);
        assert!(md.contains(&row), "missing {row:?} in\n{md}");
    }
    let rows = md
        .lines()
        .filter(|l| l.starts_with("| ") && l.ends_with(" |"))
        .count();
    let denials = want.iter().filter(|(_, e)| e["outcome"] == "deny").count();
    let changes = want
        .iter()
        .filter(|(_, e)| PERMISSION_CHANGES.contains(&e["action"].as_str().unwrap()))
        .count();
    // Three tables with a header row each: actions, permission changes, denials.
    assert_eq!(rows, 3 + by_action.len() + changes + denials, "{md}");
    assert!(md.contains(&format!("- Events: {}\n", want.len())), "{md}");
    assert!(md.contains(&format!("- Denied: {denials}\n")), "{md}");
    assert!(md.contains(&format!("## Denials ({denials})\n")), "{md}");
    assert!(
        md.contains(&format!("## Permission changes ({changes})\n")),
        "{md}"
    );
    assert!(md.contains("**VERIFIED"), "{md}");

    let html = run_stele(["report", path, "--key", &f.key]);
    assert!(html.status.success(), "{}", text(&html));
    let html = String::from_utf8(html.stdout).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<td>role.grant</td>"), "{html}");
    assert!(html.contains(&format!("<h2>Denials ({denials})</h2>")));
    for external in ["<script", "<link", "src=", "url(", "@import"] {
        assert!(
            !html.contains(external),
            "the page must stand alone: {external}"
        );
    }

    // Without a trusted key the report still comes out, saying what was not checked.
    let own = run_stele(["report", path, "--format", "markdown"]);
    assert!(own.status.success(), "{}", text(&own));
    assert!(String::from_utf8(own.stdout)
        .unwrap()
        .contains("SELF-CONSISTENT ONLY"));
}

/// Byte ranges of the values a bundle states but cannot prove (`docs/bundles.md`): the
/// `produced` strings and the window bounds.
fn restatable(json: &str) -> Vec<Range<usize>> {
    let v: Value = serde_json::from_str(json).unwrap();
    [
        ("at", &v["produced"]["at"]),
        ("by", &v["produced"]["by"]),
        ("source", &v["produced"]["source"]),
        ("from", &v["selection"]["from"]),
        ("to", &v["selection"]["to"]),
    ]
    .iter()
    .map(|(key, value)| {
        let value = value.as_str().unwrap();
        let needle = format!("\"{key}\": \"{value}\"");
        let end = json.find(&needle).unwrap() + needle.len() - 1;
        end - value.len()..end
    })
    .collect()
}

#[test]
fn tampered_bundles_fail_in_both_verifiers_and_the_problem_is_named() {
    let mut f = Fixture::new(&[2, 3, 4, 2]);
    let since = f.early_checkpoint.to_str().unwrap().to_owned();
    let (t1, t3) = (f.batches[1].time.clone(), f.batches[3].time.clone());
    let bundle = f.export("b.json", &t1, &t3, &["--since-checkpoint", &since]);
    f.assert_verifies(&bundle);
    let original = read_json(&bundle);
    let first = f.batches[1].events[0].0;
    let batch2_time = json!(f.batches[2].time);

    type Mutation = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Mutation, String)> = vec![
        (
            "an altered entry",
            Box::new(|b| {
                let e = b["events"][2]["entry"]
                    .as_str()
                    .unwrap()
                    .replace("batch", "batcH");
                b["events"][2]["entry"] = json!(e);
            }),
            format!(
                "events[2] (log index {}): the entry does not hash to its leaf_hash",
                first + 2
            ),
        ),
        (
            "an altered entry with its leaf hash recomputed",
            Box::new(|b| {
                let e = b["events"][2]["entry"]
                    .as_str()
                    .unwrap()
                    .replace("batch", "batcH");
                b["events"][2]["leaf_hash"] = json!(b64(&leaf_hash(e.as_bytes())));
                b["events"][2]["entry"] = json!(e);
            }),
            format!(
                "events[2] (log index {}): the inclusion proof does not verify",
                first + 2
            ),
        ),
        (
            "a dropped proof hash",
            Box::new(|b| {
                b["events"][0]["inclusion"].as_array_mut().unwrap().pop();
            }),
            format!("events[0] (log index {first}): the inclusion proof does not verify"),
        ),
        (
            "a dropped event",
            Box::new(|b| {
                b["events"].as_array_mut().unwrap().remove(1);
            }),
            format!("events: log index {} is missing", first + 1),
        ),
        (
            "a flipped consistency hash",
            Box::new(|b| {
                let h = b["previous"]["consistency"][0].as_str().unwrap();
                let flipped = if h.starts_with('A') {
                    h.replacen('A', "B", 1)
                } else {
                    format!("A{}", &h[1..])
                };
                b["previous"]["consistency"][0] = json!(flipped);
            }),
            "previous.consistency: the checkpoint of size".to_owned(),
        ),
        (
            "a window that ends before its last events",
            Box::new(move |b| b["selection"]["to"] = batch2_time.clone()),
            "events[3] (log index".to_owned(),
        ),
    ];
    for (what, mutate, named) in &cases {
        let mut altered = original.clone();
        mutate(&mut altered);
        let path = f.path("altered.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&altered).unwrap()).unwrap();
        let stderr = f.assert_refused(&path);
        assert!(
            stderr.contains(named.as_str()),
            "{what}: expected {named:?} in {stderr}"
        );
    }

    // The wrong key: the spec's example key names another log.
    let other = std::fs::read_to_string(
        workspace_root().join("../shared/testdata/c2sp/examples/signed-note-example.vkey"),
    )
    .unwrap();
    let wrong = run_stele([
        "verify-bundle",
        bundle.to_str().unwrap(),
        "--key",
        other.trim(),
    ]);
    assert_eq!(wrong.status.code(), Some(1), "{}", text(&wrong));
    assert!(
        String::from_utf8_lossy(&wrong.stderr)
            .contains("checkpoint: note has no signature by key example.com/foo"),
        "{}",
        text(&wrong)
    );

    // Single flipped bytes anywhere outside the restatable values, at spread-out places.
    let json = std::fs::read_to_string(&bundle).unwrap();
    let skip = restatable(&json);
    let positions: Vec<usize> = (0..json.len())
        .step_by(json.len() / 23)
        .filter(|p| !skip.iter().any(|r| r.contains(p)))
        .collect();
    assert!(positions.len() >= 20);
    for at in positions {
        let mut bytes = json.clone().into_bytes();
        bytes[at] ^= 0x01;
        let path = f.path("flipped.json");
        std::fs::write(&path, &bytes).unwrap();
        let stderr = f.assert_refused(&path);
        assert!(stderr.starts_with("error: "), "flip at {at}: {stderr}");
    }

    // A genuine checkpoint of the same log, but a later one: the proofs do not lead to it.
    f.append(9, 3);
    let later = f.server.checkpoint_at_least(f.total());
    let mut swapped = original.clone();
    swapped["checkpoint"] = json!(String::from_utf8(later).unwrap());
    // (Kept, the consistency proof would fail first: it leads to the old size.)
    swapped["previous"] = Value::Null;
    let path = f.path("swapped.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&swapped).unwrap()).unwrap();
    let stderr = f.assert_refused(&path);
    assert!(
        stderr.contains(&format!(
            "before (log index {}): the inclusion proof does not verify",
            first - 1
        )),
        "{stderr}"
    );

    python_refuses_every_flipped_byte(&f, &bundle);
}

/// Every byte of the bundle flipped in turn (outside the restatable values) is refused by the
/// Python verifier, always through its own error path (never a crash). Run inside one Python
/// process, since a process per byte would be slow.
fn python_refuses_every_flipped_byte(f: &Fixture, bundle: &Path) {
    const SCRIPT: &str = r#"
import json, sys
sys.path.insert(0, sys.argv[1])
import verify_bundle as vb
data = open(sys.argv[2], "rb").read()
vkey = vb.parse_vkey(sys.argv[3])
skip = json.loads(sys.argv[4])
vb.verify(json.loads(data.decode()), vkey)
accepted, crashed, tried = [], [], 0
for i in range(len(data)):
    if any(a <= i < b for a, b in skip):
        continue
    m = bytearray(data)
    m[i] ^= 1
    tried += 1
    try:
        vb.verify(json.loads(bytes(m).decode("utf-8")), vkey)
        accepted.append(i)
    except (vb.Bad, ValueError):
        pass
    except Exception as e:
        crashed.append((i, repr(e)))
print(json.dumps({"tried": tried, "accepted": accepted[:10], "crashed": crashed[:10]}))
"#;
    let json = std::fs::read_to_string(bundle).unwrap();
    let skip: Vec<[usize; 2]> = restatable(&json).iter().map(|r| [r.start, r.end]).collect();
    let out = Command::new(python())
        .arg("-B") // no __pycache__ in tools/
        .arg("-c")
        .arg(SCRIPT)
        .arg(workspace_root().join("tools"))
        .arg(bundle)
        .arg(&f.key)
        .arg(serde_json::to_string(&skip).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(result["tried"].as_u64().unwrap() > 1000, "{result}");
    assert_eq!(
        result["accepted"],
        json!([]),
        "flips the Python verifier accepted"
    );
    assert_eq!(
        result["crashed"],
        json!([]),
        "flips that crashed the Python verifier"
    );
}
