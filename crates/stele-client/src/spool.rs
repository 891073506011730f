//! The on-disk spool: batches the log could not take yet, one file per batch, replayed in
//! order once it is reachable again.
//!
//! A batch is written to `.tmp-<seq>`, fsynced, renamed to `<seq>.ndjson` and the directory
//! fsynced: after a crash a batch file is either whole or absent (a leftover `.tmp-` file was
//! never reported as spooled and is removed). A batch file is deleted only once the log has
//! acknowledged every event in it. Replaying a batch the log already took (a crash between its
//! acknowledgement and the delete) is harmless: every event carries its id, so the log answers
//! the retry with the original entry.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::ClientError;

/// The spool directory and its size bound.
pub(crate) struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    /// Batch files, oldest first: (sequence number, size).
    files: Vec<(u64, u64)>,
    next_seq: u64,
}

const SUFFIX: &str = ".ndjson";
const TMP_PREFIX: &str = ".tmp-";

fn io<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(std::io::Error) -> ClientError + 'a {
    move |source| ClientError::Spool {
        op,
        path: path.to_path_buf(),
        source,
    }
}

impl Spool {
    /// Opens (creating) `dir`, removes unfinished batch files, and lists the batches left by
    /// a previous run.
    pub(crate) fn open(dir: &Path, max_bytes: u64) -> Result<Spool, ClientError> {
        fs::create_dir_all(dir).map_err(io(dir, "create"))?;
        let mut files = Vec::new();
        for entry in fs::read_dir(dir).map_err(io(dir, "list"))? {
            let entry = entry.map_err(io(dir, "list"))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(TMP_PREFIX) {
                let path = entry.path();
                fs::remove_file(&path).map_err(io(&path, "remove"))?;
                continue;
            }
            let Some(seq) = name
                .strip_suffix(SUFFIX)
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            let len = entry.metadata().map_err(io(&entry.path(), "stat"))?.len();
            files.push((seq, len));
        }
        files.sort_unstable();
        let next_seq = files.last().map_or(0, |(seq, _)| seq + 1);
        Ok(Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            files,
            next_seq,
        })
    }

    fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}{SUFFIX}"))
    }

    /// Bytes in the spool.
    pub(crate) fn bytes(&self) -> u64 {
        self.files.iter().map(|(_, len)| len).sum()
    }

    /// Whether nothing is spooled.
    pub(crate) fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Durably adds a batch (NDJSON, one event per line).
    ///
    /// # Errors
    ///
    /// [`ClientError::SpoolFull`] if it would pass the bound; I/O errors.
    pub(crate) fn push(&mut self, ndjson: &[u8]) -> Result<(), ClientError> {
        let len = u64::try_from(ndjson.len()).unwrap_or(u64::MAX);
        if self.bytes().saturating_add(len) > self.max_bytes {
            return Err(ClientError::SpoolFull {
                limit: self.max_bytes,
            });
        }
        let seq = self.next_seq;
        let tmp = self.dir.join(format!("{TMP_PREFIX}{seq:020}"));
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(io(&tmp, "create"))?;
        f.write_all(ndjson).map_err(io(&tmp, "write"))?;
        f.sync_all().map_err(io(&tmp, "fsync"))?;
        drop(f);
        let path = self.path(seq);
        fs::rename(&tmp, &path).map_err(io(&path, "rename"))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir, "fsync"))?;
        self.files.push((seq, len));
        self.next_seq = seq + 1;
        Ok(())
    }

    /// The oldest batch: its sequence number and contents.
    pub(crate) fn oldest(&self) -> Result<Option<(u64, Vec<u8>)>, ClientError> {
        let Some(&(seq, _)) = self.files.first() else {
            return Ok(None);
        };
        let path = self.path(seq);
        let data = fs::read(&path).map_err(io(&path, "read"))?;
        Ok(Some((seq, data)))
    }

    /// Deletes a batch the log has acknowledged.
    pub(crate) fn remove(&mut self, seq: u64) -> Result<(), ClientError> {
        let path = self.path(seq);
        fs::remove_file(&path).map_err(io(&path, "remove"))?;
        self.files.retain(|(s, _)| *s != seq);
        Ok(())
    }

    /// Moves a batch the log refused for good to `rejected/`, for someone to look at.
    pub(crate) fn reject(&mut self, seq: u64) -> Result<PathBuf, ClientError> {
        let rejected = self.dir.join("rejected");
        fs::create_dir_all(&rejected).map_err(io(&rejected, "create"))?;
        let to = rejected.join(format!("{seq:020}{SUFFIX}"));
        let from = self.path(seq);
        fs::rename(&from, &to).map_err(io(&from, "rename"))?;
        self.files.retain(|(s, _)| *s != seq);
        Ok(to)
    }

    /// Writes a batch that was never spooled straight to `rejected/`.
    pub(crate) fn reject_batch(&mut self, ndjson: &[u8]) -> Result<PathBuf, ClientError> {
        self.push(ndjson)?;
        let seq = self.next_seq - 1;
        self.reject(seq)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn batches_survive_reopening_in_order_and_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 100).unwrap();
        spool.push(b"{\"a\":1}\n").unwrap();
        spool.push(b"{\"a\":2}\n").unwrap();
        std::fs::write(dir.path().join(".tmp-00000000000000000009"), b"torn").unwrap();
        let mut spool = Spool::open(dir.path(), 100).unwrap();
        assert_eq!(spool.bytes(), 16);
        let (seq, data) = spool.oldest().unwrap().unwrap();
        assert_eq!(data, b"{\"a\":1}\n");
        spool.remove(seq).unwrap();
        assert_eq!(spool.oldest().unwrap().unwrap().1, b"{\"a\":2}\n");
        assert!(!dir.path().join(".tmp-00000000000000000009").exists());
        assert!(matches!(
            spool.push(&[b'x'; 100]),
            Err(ClientError::SpoolFull { limit: 100 })
        ));
        spool.push(b"{\"a\":3}\n").unwrap();
        let (seq, _) = spool.oldest().unwrap().unwrap();
        let moved = spool.reject(seq).unwrap();
        assert!(moved.exists());
        assert_eq!(spool.oldest().unwrap().unwrap().1, b"{\"a\":3}\n");
    }
}
