//! Offline verification finds damage: a store is built through the real server, then each
//! kind of damage is applied to a fresh copy and `stele verify --data` must exit 1 with
//! `error: <file>: entry <index>: <detail>` naming the damaged file and an entry the damage
//! touches (the index is worked out here from the file formats, not taken from the store).
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde_json::Value;
use stele_tests::frames::{self, Frame};
use stele_tests::{checkpoint_size, copy_dir, event, verify, Server};

const EVENTS: u64 = 1000;
const BATCH: u64 = 50;

/// What `stele verify` must say about one damage.
struct Expect {
    /// The file it must name.
    file: PathBuf,
    /// The entry indexes the damage touches; `None` when no index applies (checkpoint).
    index: Option<Range<u64>>,
}

/// Parses `error: <file>: entry <index>: <detail>` (or `error: <file>: <detail>`).
fn reported(stderr: &str, file: &Path) -> Option<Option<u64>> {
    let want = format!("error: {}: ", file.display());
    let line = stderr.lines().find(|l| l.starts_with(&want))?;
    let rest = &line[want.len()..];
    let index = rest
        .strip_prefix("entry ")
        .and_then(|r| r.split(':').next())
        .and_then(|n| n.trim().parse::<u64>().ok());
    Some(index)
}

struct Fixture {
    _dir: tempfile::TempDir,
    data: PathBuf,
    copies: tempfile::TempDir,
    frames: Vec<Frame>,
    segment_len: usize,
}

impl Fixture {
    /// Builds the store: `EVENTS` events in arrays of `BATCH`, then a graceful stop.
    fn build() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let server = Server::start(&data, &[]);
        for b in 0..EVENTS / BATCH {
            let batch: Vec<Value> = (b * BATCH..(b + 1) * BATCH).map(event).collect();
            let (status, answer) = server.post_json(&Value::Array(batch));
            assert_eq!(status, 200, "{answer}");
        }
        assert_eq!(server.size(), EVENTS);
        let status = server.terminate();
        assert!(
            status.success(),
            "stele serve exited with {status} after SIGTERM"
        );
        let note = std::fs::read(data.join("log/checkpoint")).unwrap();
        assert_eq!(
            checkpoint_size(&note),
            Some(EVENTS),
            "the checkpoint written at shutdown does not cover every acknowledged entry"
        );

        let seg = std::fs::read(data.join("log/entries/00000000.seg")).unwrap();
        let frames = frames::parse_segment(&seg);
        // The frames hold entries 0..EVENTS in order, none crossing a 256-entry bundle.
        let mut next = 0;
        for f in &frames {
            assert_eq!(f.first_index, next, "frame at byte {}", f.offset);
            assert!(
                f.first_index / 256 == (f.first_index + u64::from(f.count) - 1) / 256,
                "frame at byte {} crosses a bundle",
                f.offset
            );
            next += u64::from(f.count);
        }
        assert_eq!(next, EVENTS);
        assert!(
            frames.len() >= 4,
            "expected several frames, got {}",
            frames.len()
        );
        Fixture {
            _dir: dir,
            data,
            copies: tempfile::tempdir().unwrap(),
            frames,
            segment_len: seg.len(),
        }
    }

    /// Copies the store, damages the copy with `damage(copy)`, runs `stele verify` and checks
    /// that it reports `expect(copy)`.
    fn check(&self, name: &str, damage: impl FnOnce(&Path), expect: impl FnOnce(&Path) -> Expect) {
        let copy = self.copies.path().join(name);
        copy_dir(&self.data, &copy);
        damage(&copy);
        let expect = expect(&copy);
        let out = verify(&copy);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{name}: stele verify exited with {} (want 1); stderr:\n{stderr}",
            out.status
        );
        eprintln!(
            "{name}: {}",
            stderr
                .lines()
                .find(|l| l.starts_with("error: "))
                .unwrap_or("(no error line)")
        );
        let Some(index) = reported(&stderr, &expect.file) else {
            panic!(
                "{name}: stderr does not name {} as `error: <file>: …`:\n{stderr}",
                expect.file.display()
            );
        };
        if let Some(range) = expect.index {
            let Some(index) = index else {
                panic!("{name}: no entry index reported (want one in {range:?}):\n{stderr}");
            };
            assert!(range.contains(&index), "{name}: reported entry {index}, but the damage touches entries {range:?}:\n{stderr}");
        }
        std::fs::remove_dir_all(&copy).unwrap();
    }
}

fn seg(dir: &Path) -> PathBuf {
    dir.join("log/entries/00000000.seg")
}

fn level(dir: &Path, l: u8) -> PathBuf {
    dir.join(format!("log/hashes/{l:02}"))
}

fn flip(path: &Path, at: usize) {
    let mut b = std::fs::read(path).unwrap();
    assert!(
        at < b.len(),
        "{} has {} bytes, cannot flip byte {at}",
        path.display(),
        b.len()
    );
    b[at] ^= 0x01;
    std::fs::write(path, b).unwrap();
}

fn truncate(path: &Path, len: usize) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_len(len as u64).unwrap();
}

#[test]
fn verify_locates_every_kind_of_damage() {
    let fx = Fixture::build();

    // The intact store verifies.
    let out = verify(&fx.data);
    assert!(
        out.status.success(),
        "intact store fails to verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let copy = fx.copies.path().join("intact");
    copy_dir(&fx.data, &copy);
    let out = verify(&copy);
    assert!(
        out.status.success(),
        "an intact copy fails to verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Segment bytes: every header field and the payload of the first frame, a middle frame,
    // and the last frame, whose last byte is the last byte of the file.
    let first = &fx.frames[0];
    let middle = &fx.frames[fx.frames.len() / 2];
    let last = fx.frames.last().unwrap();
    assert_eq!(last.end(), fx.segment_len);
    let mut spots: Vec<(&Frame, usize, &str)> = Vec::new();
    for f in [first, middle, last] {
        for (field, at) in [
            ("magic", 0),
            ("crc", 5),
            ("first-index", 15),
            ("time", 20),
            ("count", 27),
            ("payload-len", 31),
        ] {
            spots.push((f, f.offset + at, field));
        }
        let (e0, _) = f.entries[0];
        let (ek, lk) = f.entries[f.entries.len() / 2];
        spots.push((f, e0 - 1, "first-entry-length"));
        spots.push((f, e0, "first-entry"));
        spots.push((f, ek + lk / 2, "middle-entry"));
        spots.push((f, f.end() - 1, "last-byte"));
    }
    for (f, at, what) in spots {
        let range = f.indexes();
        fx.check(
            &format!("seg-{}-{what}", f.first_index),
            |d| flip(&seg(d), at),
            |d| Expect {
                file: seg(d),
                index: Some(range),
            },
        );
    }

    // Truncated segments: inside the last frame, exactly at a frame boundary (the last frame
    // gone whole), and inside a middle frame.
    let cut = last.end() - 10;
    fx.check(
        "seg-cut-last",
        |d| truncate(&seg(d), cut),
        |d| Expect {
            file: seg(d),
            index: Some(last.indexes()),
        },
    );
    fx.check(
        "seg-cut-boundary",
        |d| truncate(&seg(d), last.offset),
        |d| Expect {
            file: seg(d),
            index: Some(last.indexes()),
        },
    );
    fx.check(
        "seg-cut-middle",
        |d| truncate(&seg(d), middle.offset + 40),
        |d| Expect {
            file: seg(d),
            index: Some(middle.indexes()),
        },
    );
    fx.check(
        "seg-removed",
        |d| std::fs::remove_file(seg(d)).unwrap(),
        |d| Expect {
            file: seg(d),
            index: Some(first.indexes()),
        },
    );

    // Leaf hashes (level 0): one 32-byte hash per entry.
    assert_eq!(
        std::fs::metadata(level(&fx.data, 0)).unwrap().len(),
        EVENTS * 32
    );
    for k in [0u64, 1, 500, EVENTS - 1] {
        fx.check(
            &format!("level0-{k}"),
            |d| flip(&level(d, 0), usize::try_from(k * 32 + 17).unwrap()),
            |d| Expect {
                file: level(d, 0),
                index: Some(k..k + 1),
            },
        );
    }
    // Higher levels: node k of level l covers entries [k·2^l, (k+1)·2^l).
    for (l, k) in [(1u8, 0u64), (1, 321), (4, 10), (8, 2), (9, 0)] {
        let nodes = EVENTS >> l;
        assert_eq!(
            std::fs::metadata(level(&fx.data, l)).unwrap().len(),
            nodes * 32,
            "log/hashes/{l:02} should hold every complete level-{l} node"
        );
        assert!(k < nodes);
        let span = 1u64 << l;
        fx.check(
            &format!("level{l}-{k}"),
            |d| flip(&level(d, l), usize::try_from(k * 32).unwrap()),
            |d| Expect {
                file: level(d, l),
                index: Some(k * span..(k + 1) * span),
            },
        );
    }
    fx.check(
        "level0-removed",
        |d| std::fs::remove_file(level(d, 0)).unwrap(),
        |d| Expect {
            file: level(d, 0),
            index: Some(0..1),
        },
    );
    fx.check(
        "level8-removed",
        |d| std::fs::remove_file(level(d, 8)).unwrap(),
        |d| Expect {
            file: level(d, 8),
            index: Some(0..256),
        },
    );
    fx.check(
        "level1-cut",
        |d| truncate(&level(d, 1), 320 * 32),
        |d| Expect {
            file: level(d, 1),
            index: Some(640..642),
        },
    );

    // Bundle index: one u64 byte offset per started bundle.
    let idx = |d: &Path| d.join("log/bundles.idx");
    let bundles = EVENTS.div_ceil(256);
    assert_eq!(std::fs::metadata(idx(&fx.data)).unwrap().len(), bundles * 8);
    for b in [0u64, bundles - 1] {
        fx.check(
            &format!("bundles-{b}"),
            |d| flip(&idx(d), usize::try_from(b * 8 + 7).unwrap()),
            |d| Expect {
                file: idx(d),
                index: Some(b * 256..(b + 1) * 256),
            },
        );
    }
    fx.check(
        "bundles-removed",
        |d| std::fs::remove_file(idx(d)).unwrap(),
        |d| Expect {
            file: idx(d),
            index: Some(0..256),
        },
    );

    // Checkpoint: origin, size, root and signature lines; and the file gone.
    let cp = |d: &Path| d.join("log/checkpoint");
    let note = std::fs::read_to_string(cp(&fx.data)).unwrap();
    let lines: Vec<&str> = note.split('\n').collect();
    let line_start = |n: usize| lines[..n].iter().map(|l| l.len() + 1).sum::<usize>();
    let sig_line = lines
        .iter()
        .position(|l| l.starts_with('—'))
        .expect("a signature line");
    for (what, at) in [
        ("origin", 0),
        ("size", line_start(1)),
        ("root", line_start(2) + 5),
        (
            "signature",
            line_start(sig_line) + lines[sig_line].len() - 3,
        ),
    ] {
        fx.check(
            &format!("checkpoint-{what}"),
            |d| flip(&cp(d), at),
            |d| Expect {
                file: cp(d),
                index: None,
            },
        );
    }
    fx.check(
        "checkpoint-removed",
        |d| std::fs::remove_file(cp(d)).unwrap(),
        |d| Expect {
            file: cp(d),
            index: None,
        },
    );
}
