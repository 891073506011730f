//! `stele verify-bundle FILE --key VKEY [--witness-key VKEY… --witness-quorum K]`: check an
//! evidence bundle offline, with nothing but the bundle and the keys the auditor trusts. Exit 0
//! only when every check of `docs/bundles.md` §"Verifying" passes (and, with witness keys, the
//! checkpoint carries enough valid cosignatures); otherwise exit 1 naming the first problem.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use stele_core::bundle::{verify, Bundle, BundleError, Verified};
use stele_core::cosignature::{CosignatureVerifier, ValidCosignature, WitnessPolicy};
use stele_core::note::NoteVerifier;
use stele_core::timestamp::Timestamp;

use crate::{exit, keys};

/// Arguments of `stele verify-bundle`.
#[derive(Debug, Args)]
pub struct VerifyBundleArgs {
    /// The bundle file (from `stele export`).
    file: PathBuf,
    /// The log's verifier key you trust, or @FILE.
    #[arg(long, value_name = "VKEY")]
    key: String,
    #[command(flatten)]
    witnesses: WitnessArgs,
}

/// A witness policy on the command line.
#[derive(Debug, Args)]
pub struct WitnessArgs {
    /// A witness's cosignature verifier key (C2SP tlog-cosignature, type 0x04), or @FILE.
    /// Repeat for each trusted witness.
    #[arg(long = "witness-key", value_name = "VKEY")]
    witness_keys: Vec<String>,
    /// How many of the --witness-key witnesses must have cosigned the checkpoint
    /// [default: all of them].
    #[arg(long, value_name = "K", requires = "witness_keys")]
    witness_quorum: Option<usize>,
}

impl WitnessArgs {
    /// The policy, or `None` when no witness key is given.
    ///
    /// # Errors
    /// A malformed key, or a quorum larger than the number of keys.
    pub fn policy(&self) -> Result<Option<WitnessPolicy>> {
        if self.witness_keys.is_empty() {
            return Ok(None);
        }
        let mut witnesses = Vec::new();
        for arg in &self.witness_keys {
            let text = match arg.strip_prefix('@') {
                Some(path) => std::fs::read_to_string(path)
                    .with_context(|| format!("reading witness key file {path}"))?,
                None => arg.clone(),
            };
            witnesses.push(
                CosignatureVerifier::from_verifier_key(text.trim())
                    .with_context(|| format!("malformed --witness-key {arg}"))?,
            );
        }
        let quorum = self.witness_quorum.unwrap_or(witnesses.len());
        if quorum == 0 {
            bail!("--witness-quorum 0 would accept any checkpoint; give at least 1");
        }
        Ok(Some(WitnessPolicy::new(witnesses, quorum)?))
    }
}

/// The valid cosignatures by trusted witnesses, as `name at time` strings.
pub fn describe_cosignatures(found: &[ValidCosignature]) -> Vec<String> {
    found
        .iter()
        .map(|c| {
            let at = i64::try_from(c.timestamp)
                .ok()
                .and_then(|s| s.checked_mul(1_000_000_000))
                .map_or_else(
                    || format!("{} s", c.timestamp),
                    |n| Timestamp::from_unix_nanos(n).format(),
                );
            format!("{} ({:08x}) at {at}", c.name, c.key_id)
        })
        .collect()
}

/// Runs `stele verify-bundle`.
///
/// # Errors
/// An unreadable file or a malformed key (exit 2). A bundle that fails a check is reported on
/// stderr and exits 1.
pub fn run(args: VerifyBundleArgs) -> Result<ExitCode> {
    let verifier = keys::verifier_from_arg(&args.key)?;
    let policy = args.witnesses.policy()?;
    let bytes = read(&args.file)?;
    let fail = |e: &dyn std::fmt::Display| {
        eprintln!("error: {}: {e}", args.file.display());
        Ok(ExitCode::from(exit::FAILURE))
    };
    let (bundle, verified) = match open(&bytes, &verifier) {
        Ok(ok) => ok,
        Err(e) => return fail(&e),
    };
    let cosigned = match &policy {
        Some(policy) => match policy.check(&verified.note) {
            Ok(found) => Some((policy.quorum(), found)),
            Err(e) => return fail(&format_args!("checkpoint: {e}")),
        },
        None => None,
    };
    print!(
        "{}",
        summary(&bundle, &verified, &verifier, cosigned.as_ref())
    );
    Ok(ExitCode::SUCCESS)
}

/// Reads a bundle file.
///
/// # Errors
/// If it cannot be read.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading bundle {}", path.display()))
}

/// Parses and verifies a bundle against `verifier`.
///
/// # Errors
/// The first problem found.
pub fn open(bytes: &[u8], verifier: &NoteVerifier) -> Result<(Bundle, Verified), BundleError> {
    let bundle = Bundle::from_json(bytes)?;
    let verified = verify(&bundle, verifier)?;
    Ok((bundle, verified))
}

/// What a verified bundle proves, in a few lines.
fn summary(
    bundle: &Bundle,
    v: &Verified,
    verifier: &NoteVerifier,
    cosigned: Option<&(usize, Vec<ValidCosignature>)>,
) -> String {
    let sel = &bundle.selection;
    let cp = &v.checkpoint;
    let mut out = format!(
        "ok: {} events of {} in [{}, {}), log indices {}..{}\n",
        v.events.len(),
        cp.origin,
        v.from,
        v.to,
        sel.first_index,
        sel.end_index
    );
    let others = v
        .note
        .signatures
        .iter()
        .filter(|s| s.name != verifier.name() || s.key_id != verifier.key_id())
        .count();
    out.push_str(&format!(
        "checkpoint: size {}, root {}, signed by {}",
        cp.size,
        cp.root.to_base64(),
        verifier.to_verifier_key()
    ));
    match cosigned {
        Some((quorum, found)) => out.push_str(&format!(
            "\nwitnesses: {} cosigned (at least {quorum} required): {}",
            found.len(),
            describe_cosignatures(found).join(", ")
        )),
        None if others > 0 => out.push_str(&format!(
            "; {others} other signature line(s) (e.g. witness cosignatures) not checked: give --witness-key"
        )),
        None => {}
    }
    out.push('\n');
    if let Some(p) = &v.previous {
        out.push_str(&format!(
            "consistent with the earlier checkpoint of size {}, root {}\n",
            p.size,
            p.root.to_base64()
        ));
    }
    if v.complete {
        out.push_str("complete: every entry of the window is in the bundle\n");
    } else {
        let filters: Vec<String> = sel
            .filters
            .fields()
            .iter()
            .filter_map(|(k, v)| v.map(|v| format!("{k}={v}")))
            .collect();
        out.push_str(&format!(
            "filtered by {}: every event in the bundle matches, but omitted matching events cannot be detected\n",
            filters.join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use stele_core::bundle::{Filters, LogInfo, Produced, ProvedEntry, Selection, FORMAT};
    use stele_core::checkpoint::{sign_checkpoint, Checkpoint};
    use stele_core::cosignature::Cosigner;
    use stele_core::event::{validate, EventLimits};
    use stele_core::merkle::{inclusion_proof, MemoryTree};
    use stele_core::note::NoteSigner;

    use super::*;

    const T: Timestamp = Timestamp::from_unix_nanos(1_795_460_599_000_000_000);

    /// A two-event bundle whose checkpoint `w1` cosigned (and `w2` did not).
    fn cosigned_bundle() -> (Bundle, NoteVerifier, [Cosigner; 2]) {
        let log = NoteSigner::from_seed("example.com/log", [1; 32]).unwrap();
        let limits = EventLimits::default();
        let entries: Vec<String> = (0..2u128)
            .map(|i| {
                let e = json!({"actor": {"type": "user", "id": "a"}, "action": "role.grant",
                    "resource": {"type": "role", "id": "admin"}, "outcome": "allow"});
                let prepared = validate(&e, &limits)
                    .unwrap()
                    .prepare(uuid::Uuid::from_u128(i + 1), T, &limits)
                    .unwrap();
                String::from_utf8(prepared.bytes).unwrap()
            })
            .collect();
        let tree = MemoryTree::from_entries(&entries);
        let cp = Checkpoint {
            origin: "example.com/log".into(),
            size: 2,
            root: tree.root(),
            extensions: vec![],
        };
        let witnesses = [
            Cosigner::from_seed("witness.example/w1", [2; 32]).unwrap(),
            Cosigner::from_seed("witness.example/w2", [3; 32]).unwrap(),
        ];
        let mut note = sign_checkpoint(&cp, &log).unwrap();
        note.push_str(
            &witnesses[0]
                .cosign(&cp.to_text(), 1_795_460_600)
                .unwrap()
                .to_line(),
        );
        let bundle = Bundle {
            format: FORMAT.into(),
            produced: Produced {
                at: T.format(),
                by: "test".into(),
                source: "memory".into(),
            },
            log: LogInfo {
                origin: "example.com/log".into(),
                verifier_keys: vec![log.verifier().to_verifier_key()],
            },
            selection: Selection {
                from: T.format(),
                to: Timestamp::from_unix_nanos(T.unix_nanos() + 1).format(),
                filters: Filters::default(),
                first_index: 0,
                end_index: 2,
            },
            checkpoint: note,
            previous: None,
            before: None,
            after: None,
            events: (0..2u64)
                .map(|i| {
                    let proof = inclusion_proof(&tree, i, 2).unwrap();
                    ProvedEntry::new(i, entries[usize::try_from(i).unwrap()].clone(), proof)
                })
                .collect(),
        };
        (bundle, log.verifier(), witnesses)
    }

    fn policy(keys: &[&Cosigner], quorum: Option<usize>) -> Result<Option<WitnessPolicy>> {
        WitnessArgs {
            witness_keys: keys
                .iter()
                .map(|w| w.verifier().to_verifier_key())
                .collect(),
            witness_quorum: quorum,
        }
        .policy()
    }

    #[test]
    fn witness_policies_count_valid_cosignatures() {
        let (bundle, key, [w1, w2]) = cosigned_bundle();
        let (bundle, verified) = open(&bundle.to_json().unwrap(), &key).unwrap();
        let plain = summary(&bundle, &verified, &key, None);
        assert!(plain.contains("1 other signature line(s)"), "{plain}");

        let one = policy(&[&w1], None).unwrap().unwrap();
        let found = one.check(&verified.note).unwrap();
        let text = summary(&bundle, &verified, &key, Some(&(1, found)));
        assert!(
            text.contains("witnesses: 1 cosigned (at least 1 required): witness.example/w1"),
            "{text}"
        );
        assert!(text.contains("at 2026-11-23T19:03:20.000000000Z"), "{text}");

        // Both witnesses by default; one of two when asked.
        let both = policy(&[&w1, &w2], None).unwrap().unwrap();
        assert!(both.check(&verified.note).is_err());
        let either = policy(&[&w1, &w2], Some(1)).unwrap().unwrap();
        assert_eq!(either.check(&verified.note).unwrap().len(), 1);

        assert!(policy(&[], None).unwrap().is_none());
        assert!(policy(&[&w1], Some(0)).is_err());
        assert!(policy(&[&w1], Some(2)).is_err());
    }
}
