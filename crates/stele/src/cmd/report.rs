//! `stele report FILE [--key VKEY] [--format html|markdown] [--out FILE]`: a compliance report
//! from an evidence bundle, for SOC 2 / ISO 27001 evidence requests: how the evidence was
//! verified, counts by action and outcome, every permission change and every denial.
//!
//! The bundle is verified first (`docs/bundles.md`); a bundle that fails gets no report. The
//! report is built once as a small document ([`doc::Block`]s) and rendered as Markdown or as
//! one self-contained HTML page that prints well (no scripts, fonts or images to fetch).

mod doc;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use sha2::{Digest, Sha256};
use stele_core::bundle::{Bundle, Verified, VerifiedEvent};
use stele_core::event::{Event, Outcome};
use stele_core::note::NoteVerifier;

use self::doc::{Block, Cell};
use super::verify_bundle;
use crate::{exit, keys};

/// Arguments of `stele report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The bundle file (from `stele export`).
    file: PathBuf,
    /// The log's verifier key you trust, or @FILE. Without it the bundle is checked against
    /// the key it names itself, and the report says so.
    #[arg(long, value_name = "VKEY")]
    key: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Html)]
    format: Format,
    /// Write the report here instead of to standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    #[command(flatten)]
    witnesses: verify_bundle::WitnessArgs,
}

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One self-contained HTML page, print-ready.
    Html,
    /// GitHub-flavoured Markdown.
    Markdown,
}

/// Cosignatures checked against a witness policy.
struct Witnessed {
    /// Required cosignatures.
    quorum: usize,
    /// Trusted witnesses.
    of: usize,
    /// The valid ones, described.
    found: Vec<String>,
}

/// How far the key that verified the bundle is trusted.
enum Trust {
    /// Given with `--key`.
    Given(NoteVerifier),
    /// The bundle's own `log.verifier_keys[0]`: proves integrity, not origin.
    BundleOwn(NoteVerifier),
}

/// Runs `stele report`.
///
/// # Errors
/// Unreadable input, unwritable output, malformed key (exit 2); a bundle that fails
/// verification is reported on stderr and exits 1.
pub fn run(args: ReportArgs) -> Result<ExitCode> {
    let policy = args.witnesses.policy()?;
    let bytes = verify_bundle::read(&args.file)?;
    let trust = match &args.key {
        Some(k) => Trust::Given(keys::verifier_from_arg(k)?),
        None => match bundle_key(&bytes) {
            Some(v) => Trust::BundleOwn(v),
            None => {
                eprintln!(
                    "error: {}: the bundle names no usable log key; give --key",
                    args.file.display()
                );
                return Ok(ExitCode::from(exit::FAILURE));
            }
        },
    };
    let verifier = match &trust {
        Trust::Given(v) | Trust::BundleOwn(v) => v,
    };
    let (bundle, verified) = match verify_bundle::open(&bytes, verifier) {
        Ok(ok) => ok,
        Err(e) => {
            eprintln!(
                "error: {}: {e}; no report is made from a bundle that fails verification",
                args.file.display()
            );
            return Ok(ExitCode::from(exit::FAILURE));
        }
    };
    let cosigned = match &policy {
        Some(policy) => match policy.check(&verified.note) {
            Ok(found) => Some(Witnessed {
                quorum: policy.quorum(),
                of: policy.witnesses().len(),
                found: verify_bundle::describe_cosignatures(&found),
            }),
            Err(e) => {
                eprintln!(
                    "error: {}: checkpoint: {e}; no report is made from a bundle that fails verification",
                    args.file.display()
                );
                return Ok(ExitCode::from(exit::FAILURE));
            }
        },
        None => None,
    };
    let name = args
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let digest = hex::encode(Sha256::digest(&bytes));
    let blocks = build(
        &name,
        &digest,
        &bundle,
        &verified,
        &trust,
        cosigned.as_ref(),
    );
    let title = format!("Audit evidence report: {}", verified.checkpoint.origin);
    let text = match args.format {
        Format::Html => doc::html(&title, &blocks),
        Format::Markdown => doc::markdown(&title, &blocks),
    };
    match &args.out {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// The first key the bundle names, if the bundle is JSON with one.
fn bundle_key(bytes: &[u8]) -> Option<NoteVerifier> {
    let bundle = Bundle::from_json(bytes).ok()?;
    let key = bundle.log.verifier_keys.first()?;
    NoteVerifier::from_verifier_key(key).ok()
}

/// Whether an event changes who may do what: it carries `change`, or its action is one of
/// the role, policy, permission, group or user-lifecycle actions.
pub fn is_permission_change(e: &Event) -> bool {
    const PREFIXES: [&str; 5] = ["role.", "policy.", "permission.", "group.", "acl."];
    const USER: [&str; 6] = [
        "user.create",
        "user.delete",
        "user.activate",
        "user.deactivate",
        "user.suspend",
        "user.reactivate",
    ];
    e.change().is_some()
        || PREFIXES.iter().any(|p| e.action().starts_with(p))
        || USER.contains(&e.action())
}

fn outcome_slot(o: Outcome) -> usize {
    match o {
        Outcome::Allow => 0,
        Outcome::Deny => 1,
        Outcome::Error => 2,
    }
}

fn build(
    file: &str,
    digest: &str,
    bundle: &Bundle,
    v: &Verified,
    trust: &Trust,
    cosigned: Option<&Witnessed>,
) -> Vec<Block> {
    let mut by_action: BTreeMap<&str, [u64; 3]> = BTreeMap::new();
    let mut outcomes = [0u64; 3];
    let mut actors = BTreeSet::new();
    for e in &v.events {
        let ev = &e.event.event;
        let slot = outcome_slot(ev.outcome());
        if let Some(n) = by_action.entry(ev.action()).or_default().get_mut(slot) {
            *n += 1;
        }
        if let Some(n) = outcomes.get_mut(slot) {
            *n += 1;
        }
        actors.insert((ev.actor().kind.to_string(), ev.actor().id.as_str()));
    }
    let total = u64::try_from(v.events.len()).unwrap_or(u64::MAX);
    let mut blocks = vec![
        Block::Para(vec![Cell::text(format!(
            "Events of the log {} between {} (inclusive) and {} (exclusive).",
            v.checkpoint.origin, v.from, v.to
        ))]),
        Block::Heading("Verification".into()),
    ];
    blocks.push(Block::Fields(verification_fields(
        file, digest, bundle, v, trust, cosigned,
    )));

    blocks.push(Block::Heading("Summary".into()));
    blocks.push(Block::Fields(vec![
        ("Events".into(), Cell::num(total)),
        ("Allowed".into(), Cell::num(outcomes[0])),
        ("Denied".into(), Cell::num(outcomes[1])),
        ("Errors".into(), Cell::num(outcomes[2])),
        ("Distinct actors".into(), Cell::num(actors.len() as u64)),
    ]));

    blocks.push(Block::Heading("Events by action".into()));
    blocks.push(Block::Table {
        head: vec!["Action", "Allow", "Deny", "Error", "Total"],
        rows: by_action
            .iter()
            .map(|(action, [a, d, e])| {
                vec![
                    Cell::text(*action),
                    Cell::num(*a),
                    Cell::num(*d),
                    Cell::num(*e),
                    Cell::num(a + d + e),
                ]
            })
            .collect(),
        empty: "No events.".into(),
    });

    let changes: Vec<&VerifiedEvent> = v
        .events
        .iter()
        .filter(|e| is_permission_change(&e.event.event))
        .collect();
    blocks.push(Block::Heading(format!(
        "Permission changes ({})",
        changes.len()
    )));
    blocks.push(Block::Para(vec![Cell::text(
        "Events that carry a change, or whose action is role.*, policy.*, permission.*, group.*, acl.* \
         or a user lifecycle action (user.create, .delete, .activate, .deactivate, .suspend, .reactivate). \
         Denied and failed ones are attempts that did not take effect.",
    )]));
    blocks.push(Block::Table {
        head: vec![
            "Time",
            "Index",
            "Actor",
            "Action",
            "Resource",
            "Outcome",
            "Change / reason",
        ],
        rows: changes
            .iter()
            .map(|e| {
                let ev = &e.event.event;
                let change = ev
                    .change()
                    .map(|c| serde_json::Value::Object(c.clone()).to_string());
                let detail = [change.as_deref(), ev.reason()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" — ");
                vec![
                    Cell::mono(e.event.time.format()),
                    Cell::num(e.index),
                    Cell::text(actor(ev)),
                    Cell::text(ev.action()),
                    Cell::text(resource(ev)),
                    Cell::text(ev.outcome().to_string()),
                    Cell::text(detail),
                ]
            })
            .collect(),
        empty: "No permission changes.".into(),
    });

    let denials: Vec<&VerifiedEvent> = v
        .events
        .iter()
        .filter(|e| e.event.event.outcome() == Outcome::Deny)
        .collect();
    blocks.push(Block::Heading(format!("Denials ({})", denials.len())));
    blocks.push(Block::Table {
        head: vec![
            "Time", "Index", "Actor", "Action", "Resource", "Policy", "Reason",
        ],
        rows: denials
            .iter()
            .map(|e| {
                let ev = &e.event.event;
                let policy = ev
                    .policy()
                    .map(|p| match &p.version {
                        Some(v) => format!("{} v{v}", p.id),
                        None => p.id.clone(),
                    })
                    .unwrap_or_default();
                vec![
                    Cell::mono(e.event.time.format()),
                    Cell::num(e.index),
                    Cell::text(actor(ev)),
                    Cell::text(ev.action()),
                    Cell::text(resource(ev)),
                    Cell::text(policy),
                    Cell::text(ev.reason().unwrap_or_default()),
                ]
            })
            .collect(),
        empty: "No denials.".into(),
    });

    blocks.push(Block::Heading("Checking this evidence yourself".into()));
    blocks.push(Block::Para(vec![
        Cell::text("Both commands exit 0 only if every check passes; neither needs the log: "),
        Cell::mono(format!("stele verify-bundle {file} --key <log key>")),
        Cell::text(" or the independent "),
        Cell::mono(format!("python3 tools/verify_bundle.py {file} <log key>")),
        Cell::text(". The format is described in docs/bundles.md of Stele."),
    ]));
    blocks
}

fn verification_fields(
    file: &str,
    digest: &str,
    bundle: &Bundle,
    v: &Verified,
    trust: &Trust,
    cosigned: Option<&Witnessed>,
) -> Vec<(String, Cell)> {
    let cp = &v.checkpoint;
    let (status, key) = match trust {
        Trust::Given(k) => (
            Cell::good("VERIFIED: signature, every leaf hash and inclusion proof, and the window boundaries check out against the key given"),
            k,
        ),
        Trust::BundleOwn(k) => (
            Cell::bad("SELF-CONSISTENT ONLY: checked against the key the bundle names itself, not one given by the reader; re-run with --key to verify the origin"),
            k,
        ),
    };
    let sel = &bundle.selection;
    let filters: Vec<String> = sel
        .filters
        .fields()
        .iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k} = {v}")))
        .collect();
    let cosigners: Vec<String> = v
        .note
        .signatures
        .iter()
        .filter(|s| s.name != key.name() || s.key_id != key.key_id())
        .map(|s| format!("{} ({:08x})", s.name, s.key_id))
        .collect();
    let mut fields = vec![
        ("Status".into(), status),
        ("Bundle file".into(), Cell::text(file)),
        ("Bundle SHA-256".into(), Cell::mono(digest)),
        ("Log key".into(), Cell::mono(key.to_verifier_key())),
        (
            "Checkpoint".into(),
            Cell::text(format!("tree size {}", cp.size)),
        ),
        ("Checkpoint root".into(), Cell::mono(cp.root.to_base64())),
        (
            "Witness cosignatures".into(),
            match cosigned {
                Some(w) => Cell::good(format!(
                    "{} of {} trusted witnesses cosigned (at least {} required): {}",
                    w.found.len(),
                    w.of,
                    w.quorum,
                    w.found.join(", ")
                )),
                None if cosigners.is_empty() => Cell::text("none"),
                None => Cell::text(format!(
                    "{} (not checked: no --witness-key given)",
                    cosigners.join(", ")
                )),
            },
        ),
        (
            "Earlier checkpoint".into(),
            Cell::text(match &v.previous {
                Some(p) => format!(
                    "consistent: the checkpoint extends the one of size {} (root {})",
                    p.size,
                    p.root.to_base64()
                ),
                None => "none given".into(),
            }),
        ),
        (
            "Window".into(),
            Cell::text(format!(
                "[{}, {}): {}",
                v.from,
                v.to,
                match sel.end_index.checked_sub(1) {
                    Some(last) if sel.first_index <= last => {
                        format!("log indices {} to {last}", sel.first_index)
                    }
                    _ => format!("no log entries (before index {})", sel.end_index),
                }
            )),
        ),
        (
            "Completeness".into(),
            if v.complete {
                Cell::good("complete: every log entry of the window is included")
            } else {
                Cell::text(format!(
                    "filtered ({}): every included event matches; omitted matching events cannot be detected from the bundle",
                    filters.join(", ")
                ))
            },
        ),
    ];
    fields.push((
        "Produced".into(),
        Cell::text(format!(
            "{} by {} from {}",
            bundle.produced.at, bundle.produced.by, bundle.produced.source
        )),
    ));
    fields.push((
        "Report made".into(),
        Cell::text(super::export::now().format()),
    ));
    fields
}

fn actor(e: &Event) -> String {
    let a = e.actor();
    match &a.name {
        Some(name) => format!("{}:{} ({name})", a.kind, a.id),
        None => format!("{}:{}", a.kind, a.id),
    }
}

fn resource(e: &Event) -> String {
    let r = e.resource();
    format!("{}:{}", r.kind, r.id)
}
