//! `stele export --url URL --from T1 --to T2 [filters] [--since-checkpoint FILE] --out FILE`:
//! write an offline evidence bundle (`docs/bundles.md`).
//!
//! Everything is read through the C2SP tlog-tiles API against one checkpoint fetched at the
//! start: `/checkpoint`, entry bundles `/tile/entries/N` and hash tiles `/tile/L/N`. The log's
//! times never decrease along its indices, so the window's index range is found by binary
//! search over entries (a few bundle fetches); then the window's bundles are read in order,
//! filtered here, and every selected event's inclusion proof is computed locally from hash
//! tiles ([`tree::TileTree`]) and checked against the signed root before it is written.
//! Events are written as they are proved, so memory holds one entry bundle and a few tiles per
//! tree level, whatever the size of the log or of the selection.

mod tree;

use std::cell::{Cell, RefCell};
use std::io::{IsTerminal, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize, Serializer};
use stele_core::bundle::{
    Bundle, Filters, LogInfo, Previous, Produced, ProvedEntry, Selection, FORMAT,
};
use stele_core::checkpoint::{open_checkpoint, Checkpoint};
use stele_core::event::{decode_entry, parse_entry, StoredEvent};
use stele_core::hash::leaf_hash;
use stele_core::merkle::{
    consistency_proof, inclusion_proof, verify_consistency, verify_inclusion, MerkleError,
};
use stele_core::note::NoteVerifier;
use stele_core::tile::{bundle_decode, TileKind, TILE_WIDTH};
use stele_core::timestamp::Timestamp;

use self::tree::{FetchTile, TileTree};
use crate::client::{Client, DEFAULT_URL};
use crate::exit::Failure;
use crate::keys;

/// Arguments of `stele export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Server URL.
    #[arg(long, default_value = DEFAULT_URL)]
    url: String,
    /// Start of the window, inclusive (RFC 3339, like 2026-11-01T00:00:00Z).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    from: Timestamp,
    /// End of the window, exclusive (RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    to: Timestamp,
    /// Only events whose actor.id is this.
    #[arg(long, value_name = "ID")]
    actor: Option<String>,
    /// Only events with this action, or with a prefix: `role.*`.
    #[arg(long, value_name = "ACTION")]
    action: Option<String>,
    /// Only events whose resource.type is this.
    #[arg(long, value_name = "TYPE")]
    resource_type: Option<String>,
    /// Only events whose resource.id is this.
    #[arg(long, value_name = "ID")]
    resource_id: Option<String>,
    /// Only events with this outcome.
    #[arg(long, value_parser = ["allow", "deny", "error"])]
    outcome: Option<String>,
    /// Only events of this tenant.
    #[arg(long)]
    tenant: Option<String>,
    /// Only events from this source.
    #[arg(long)]
    source: Option<String>,
    /// A checkpoint note the auditor already holds: the bundle then proves the exported
    /// checkpoint consistent with it.
    #[arg(long, value_name = "FILE")]
    since_checkpoint: Option<PathBuf>,
    /// Where to write the bundle.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// The log's verifier key, or @FILE. Without it the checkpoint is checked only against
    /// the key the server names, which proves nothing about the server.
    #[arg(long, value_name = "VKEY")]
    key: Option<String>,
}

fn parse_time(s: &str) -> Result<Timestamp, String> {
    Timestamp::parse(s).map_err(|e| e.to_string())
}

/// Runs `stele export`.
///
/// # Errors
/// Usage and environment problems (exit 2); a log whose data does not check out (exit 1).
pub fn run(args: ExportArgs) -> Result<ExitCode> {
    if args.from >= args.to {
        bail!("--from {} is not before --to {}", args.from, args.to);
    }
    let filters = Filters {
        actor: args.actor.clone(),
        action: args.action.clone(),
        resource_type: args.resource_type.clone(),
        resource_id: args.resource_id.clone(),
        outcome: args.outcome.clone(),
        tenant: args.tenant.clone(),
        source: args.source.clone(),
    };
    filters.validate()?;
    let client = Client::new(&args.url)?;
    let verifier = log_key(&client, args.key.as_deref())?;
    let (cp, note) = client.checkpoint(&verifier)?;
    let previous = match &args.since_checkpoint {
        Some(path) => Some(read_previous(path, &verifier, &cp)?),
        None => None,
    };

    let mut log = Log::new(&client, &cp);
    let previous = match previous {
        Some((old, old_note)) => Some(log.consistency(&old, old_note)?),
        None => None,
    };
    let first = log.first_at_or_after(args.from, 0)?;
    let end = log.first_at_or_after(args.to, first)?;
    let before = match first.checked_sub(1) {
        Some(i) => Some(log.proved(i)?),
        None => None,
    };
    let after = if end < cp.size {
        Some(log.proved(end)?)
    } else {
        None
    };
    let events = Selected {
        log: RefCell::new(&mut log),
        range: first..end,
        window: args.from..args.to,
        filters: filters.clone(),
        error: RefCell::new(None),
        count: Cell::new(0),
    };

    let bundle = Bundle {
        format: FORMAT.to_owned(),
        produced: Produced {
            at: now().format(),
            by: concat!("stele ", env!("CARGO_PKG_VERSION")).to_owned(),
            source: args.url.clone(),
        },
        log: LogInfo {
            origin: cp.origin.clone(),
            verifier_keys: vec![verifier.to_verifier_key()],
        },
        selection: Selection {
            from: args.from.format(),
            to: args.to.format(),
            filters,
            first_index: first,
            end_index: end,
        },
        checkpoint: note,
        previous,
        before,
        after,
        events,
    };
    write_atomically(&args.out, |w| {
        let written = bundle.write_json(w);
        // An error fetching or proving an event ends the sequence early; it is the real cause.
        if let Some(e) = bundle.events.error.take() {
            return Err(e);
        }
        Ok(written?)
    })?;
    let count = bundle.events.count.get();
    drop(bundle);
    println!(
        "wrote {count} events (log indices {first}..{end} of the checkpoint of size {}) to {}; \
         fetched {} entry bundles and {} hash tiles",
        cp.size,
        args.out.display(),
        log.bundles_fetched,
        log.tree.fetched()
    );
    Ok(ExitCode::SUCCESS)
}

/// The trusted key, or — without `--key` — the key the server names at `/v1/log`, with a
/// warning that nothing was checked against a key the user trusts.
fn log_key(client: &Client, key: Option<&str>) -> Result<NoteVerifier> {
    if let Some(key) = key {
        return keys::verifier_from_arg(key);
    }
    #[derive(Deserialize)]
    struct LogInfo {
        verifier_key: String,
    }
    let info: LogInfo = client
        .get_json("/v1/log")
        .context("no --key given, and the server does not name its key at /v1/log")?;
    let verifier = NoteVerifier::from_verifier_key(&info.verifier_key).map_err(|e| {
        Failure::verification(format!(
            "the server names a malformed key {:?}: {e}",
            info.verifier_key
        ))
    })?;
    eprintln!(
        "warning: no --key: the checkpoint is checked only against the key the server names ({}); \
         whoever verifies the bundle must use a key they trust",
        verifier.to_verifier_key()
    );
    Ok(verifier)
}

/// Reads `--since-checkpoint`: a note signed by the log key, not larger than `cp`.
fn read_previous(
    path: &Path,
    verifier: &NoteVerifier,
    cp: &Checkpoint,
) -> Result<(Checkpoint, String)> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("reading --since-checkpoint {}", path.display()))?;
    let (old, _) = open_checkpoint(&bytes, verifier).map_err(|e| {
        Failure::verification(format!(
            "{} is not a checkpoint signed by {}: {e}",
            path.display(),
            verifier.to_verifier_key()
        ))
    })?;
    if old.size > cp.size {
        return Err(Failure::verification(format!(
            "rollback: {} has size {}, but the log's checkpoint has size {}",
            path.display(),
            old.size,
            cp.size
        ))
        .into());
    }
    if old.size == 0 {
        bail!(
            "{} is the checkpoint of the empty tree; every tree extends it, so there is nothing to prove",
            path.display()
        );
    }
    let note = String::from_utf8(bytes).context("the checkpoint note is not UTF-8")?;
    Ok((old, note))
}

/// Hash tiles from the server.
struct HashTiles<'a>(&'a Client);

impl FetchTile for HashTiles<'_> {
    fn fetch(&self, level: u8, index: u64, width: u64) -> Result<Vec<u8>> {
        self.0.tile(TileKind::Hash { level }, index, width)
    }
}

/// The log as of one checkpoint: its entry bundles (one cached) and its tree.
struct Log<'a> {
    client: &'a Client,
    cp: &'a Checkpoint,
    tree: TileTree<HashTiles<'a>>,
    /// The last entry bundle read: its index and entries.
    bundle: Option<(u64, Vec<String>)>,
    /// How many entry bundles were fetched.
    bundles_fetched: u64,
}

impl<'a> Log<'a> {
    fn new(client: &'a Client, cp: &'a Checkpoint) -> Self {
        Log {
            client,
            cp,
            tree: TileTree::new(cp.size, HashTiles(client)),
            bundle: None,
            bundles_fetched: 0,
        }
    }

    /// Entry bundle `index`, decoded; its leaf hashes also serve as level-0 hash tile.
    fn entries(&mut self, index: u64) -> Result<&[String]> {
        if self.bundle.as_ref().is_none_or(|(i, _)| *i != index) {
            let width = (self.cp.size - index * TILE_WIDTH).min(TILE_WIDTH);
            let data = self.client.tile(TileKind::Entries, index, width)?;
            self.bundles_fetched += 1;
            let entries = decode_bundle(index, width, &data)?;
            self.tree.insert_leaves(
                index,
                entries.iter().map(|e| leaf_hash(e.as_bytes())).collect(),
            );
            self.bundle = Some((index, entries));
        }
        Ok(self
            .bundle
            .as_ref()
            .map(|(_, e)| e.as_slice())
            .unwrap_or_default())
    }

    /// The entry at `index` (< the checkpoint's size).
    fn entry(&mut self, index: u64) -> Result<&str> {
        let at = usize::try_from(index % TILE_WIDTH)?;
        let entries = self.entries(index / TILE_WIDTH)?;
        entries
            .get(at)
            .map(String::as_str)
            .context("entry missing from its bundle")
    }

    /// The log time of the entry at `index`.
    fn time(&mut self, index: u64) -> Result<Timestamp> {
        let entry = self.entry(index)?;
        parse_entry(entry.as_bytes())
            .ok()
            .and_then(|v| Timestamp::parse(v.get("time")?.as_str()?).ok())
            .ok_or_else(|| {
                Failure::verification(format!("entry {index} has no readable time")).into()
            })
    }

    /// The first index at or after `lo` whose time is `>= t`, or the tree size: a binary
    /// search, valid because times never decrease along the log.
    fn first_at_or_after(&mut self, t: Timestamp, lo: u64) -> Result<u64> {
        let (mut lo, mut hi) = (lo, self.cp.size);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.time(mid)? < t {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    /// The entry at `index` with its inclusion proof, checked against the signed root.
    fn proved(&mut self, index: u64) -> Result<ProvedEntry> {
        let entry = self.entry(index)?.to_owned();
        let proof = inclusion_proof(&self.tree, index, self.cp.size).map_err(merkle_error)?;
        verify_inclusion(
            &leaf_hash(entry.as_bytes()),
            index,
            self.cp.size,
            &proof,
            &self.cp.root,
        )
        .map_err(|e| {
            Failure::verification(format!(
                "the log's tiles do not prove entry {index} in its signed checkpoint: {e}"
            ))
        })?;
        Ok(ProvedEntry::new(index, entry, proof))
    }

    /// The consistency proof from `old` to the checkpoint, checked.
    fn consistency(&mut self, old: &Checkpoint, note: String) -> Result<Previous> {
        let proof = consistency_proof(&self.tree, old.size, self.cp.size).map_err(merkle_error)?;
        verify_consistency(old.size, self.cp.size, &proof, &old.root, &self.cp.root).map_err(
            |e| {
                Failure::verification(format!(
                    "split view or rewritten history: the log's checkpoint of size {} does not extend the given one of size {} ({e})",
                    self.cp.size, old.size
                ))
            },
        )?;
        Ok(Previous {
            checkpoint: note,
            consistency: proof,
        })
    }

    /// The entry at `index` with its proof if it matches `filters`. Entries of the window's
    /// index range must lie in the window, or the log broke its time order.
    fn select(
        &mut self,
        index: u64,
        window: &Range<Timestamp>,
        filters: &Filters,
    ) -> Result<Option<ProvedEntry>> {
        let stored = self.stored(index)?;
        if !window.contains(&stored.time) {
            return Err(Failure::verification(format!(
                "entry {index} has time {}, outside [{}, {}) though the entries around it are inside: the log's times decrease",
                stored.time, window.start, window.end
            ))
            .into());
        }
        if filters.mismatch(&stored).is_some() {
            return Ok(None);
        }
        self.proved(index).map(Some)
    }

    fn stored(&mut self, index: u64) -> Result<StoredEvent> {
        let entry = self.entry(index)?;
        decode_entry(entry.as_bytes()).map_err(|e| {
            Failure::verification(format!("entry {index} is not a stored event: {e}")).into()
        })
    }
}

/// The events of the selection, produced while they are written: each entry of the index
/// range is read, filtered and proved in turn, so memory does not grow with the selection.
/// The first error ends the sequence and is kept in `error` for the caller.
struct Selected<'a, 'l> {
    log: RefCell<&'a mut Log<'l>>,
    range: Range<u64>,
    window: Range<Timestamp>,
    filters: Filters,
    error: RefCell<Option<anyhow::Error>>,
    count: Cell<u64>,
}

impl Serialize for Selected<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut log = self.log.borrow_mut();
        let bar = progress(self.range.end - self.range.start);
        let mut indices = self.range.clone();
        let events = std::iter::from_fn(|| {
            for index in indices.by_ref() {
                bar.inc(1);
                match log.select(index, &self.window, &self.filters) {
                    Ok(Some(proved)) => {
                        self.count.set(self.count.get() + 1);
                        return Some(proved);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        *self.error.borrow_mut() = Some(e);
                        return None;
                    }
                }
            }
            None
        });
        let result = serializer.collect_seq(events);
        bar.finish_and_clear();
        result
    }
}

/// Splits entry bundle `index` into its first `width` entries, which must be UTF-8.
fn decode_bundle(index: u64, width: u64, data: &[u8]) -> Result<Vec<String>> {
    let bad = |what: String| Failure::verification(format!("entry bundle {index}: {what}"));
    let entries = bundle_decode(data).map_err(|e| bad(format!("malformed: {e}")))?;
    let width = usize::try_from(width)?;
    if entries.len() < width {
        return Err(bad(format!("holds {} entries, expected {width}", entries.len())).into());
    }
    entries
        .into_iter()
        .take(width)
        .enumerate()
        .map(|(i, e)| {
            String::from_utf8(e.to_vec())
                .map_err(|_| bad(format!("entry {i} of the bundle is not UTF-8")).into())
        })
        .collect()
}

fn merkle_error(e: MerkleError<anyhow::Error>) -> anyhow::Error {
    match e {
        MerkleError::Source(e) => e,
        MerkleError::Proof(e) => e.into(),
    }
}

fn progress(len: u64) -> ProgressBar {
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::new(len)
    } else {
        ProgressBar::hidden()
    };
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {pos}/{len} entries {per_sec} eta {eta}")
    {
        bar.set_style(style);
    }
    bar
}

pub(crate) fn now() -> Timestamp {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Timestamp::from_unix_nanos(nanos)
}

/// Writes `path` through a temporary file in the same directory, so a reader never sees half
/// a bundle.
fn write_atomically(path: &Path, write: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // Evidence is meant to be handed on: readable by others, like a file made with `>`
    // (tempfile's default would be 0600).
    let tmp = tempfile::Builder::new()
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .tempfile_in(dir)
        .with_context(|| format!("creating a file in {}", dir.display()))?;
    let mut out = std::io::BufWriter::new(tmp);
    write(&mut out)
        .and_then(|()| Ok(out.flush()?))
        .with_context(|| format!("writing {}", path.display()))?;
    let tmp = out.into_inner().map_err(|e| e.into_error())?;
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("writing {}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_failed_write_leaves_no_file_and_a_finished_one_is_readable_by_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.json");
        let err = write_atomically(&path, |w| {
            w.write_all(b"{\"format\":")?;
            Err(Failure::verification("entry 7 is not a stored event").into())
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("entry 7"), "{err:#}");
        assert_eq!(
            crate::exit::code_for(&err),
            ExitCode::from(crate::exit::FAILURE)
        );
        assert!(!path.exists());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "no temporary file left"
        );

        write_atomically(&path, |w| Ok(w.write_all(b"{}\n")?)).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{}\n");
        // As for a file made with `>`: 0644 less the umask (Linux reports it in /proc).
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let umask = status
            .lines()
            .find_map(|l| l.strip_prefix("Umask:"))
            .map(|m| u32::from_str_radix(m.trim(), 8).unwrap())
            .unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644 & !umask);
    }
}
