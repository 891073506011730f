//! The derived bundle index `log/bundles.idx`: for bundle `b`, the u64 big-endian byte offset
//! of its first frame inside segment `b / 4096`. It lets a reader find any entry with one
//! index read and a short scan of frame headers.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;

use crate::error::{Result, StoreError};
use crate::layout::Layout;

/// The writer's handle: appends one offset per started bundle.
pub struct BundleIndexWriter {
    file: File,
    path: std::path::PathBuf,
    len: u64,
    pending: Vec<u8>,
}

impl BundleIndexWriter {
    /// Opens the index, truncated to the `bundles` entries that are trusted.
    ///
    /// # Errors
    /// I/O errors; `Corrupt` when the file holds fewer than `bundles` entries.
    pub fn open(layout: &Layout, bundles: u64) -> Result<Self> {
        let path = layout.bundle_index();
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(&path)
            .map_err(StoreError::io("open", &path))?;
        let have = file
            .metadata()
            .map_err(StoreError::io("stat", &path))?
            .len();
        let want = bundles * 8;
        if have < want {
            return Err(StoreError::corrupt(
                &path,
                Some((have / 8) * 256),
                format!("bundle index holds {have} bytes, the checkpointed tree needs {want}"),
            ));
        }
        if have > want {
            file.set_len(want)
                .map_err(StoreError::io("truncate", &path))?;
        }
        Ok(BundleIndexWriter {
            file,
            path,
            len: want,
            pending: Vec::new(),
        })
    }

    /// Records that the next bundle starts at `offset` in its segment.
    pub fn push(&mut self, offset: u64) {
        self.pending.extend_from_slice(&offset.to_be_bytes());
    }

    /// Writes buffered offsets (no fsync: derived data).
    ///
    /// # Errors
    /// I/O errors.
    pub fn flush(&mut self) -> Result<()> {
        if !self.pending.is_empty() {
            self.file
                .write_all_at(&self.pending, self.len)
                .map_err(StoreError::io("write", &self.path))?;
            self.len += self.pending.len() as u64;
            self.pending.clear();
        }
        Ok(())
    }

    /// Makes the index durable.
    ///
    /// # Errors
    /// I/O errors.
    pub fn sync(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(StoreError::io("fsync", &self.path))
    }
}

/// Reads one bundle's offset.
///
/// # Errors
/// I/O errors; `Corrupt` if the index is short.
pub fn read_offset(file: &File, path: &std::path::Path, bundle: u64) -> Result<u64> {
    let mut b = [0u8; 8];
    file.read_exact_at(&mut b, bundle * 8).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            StoreError::corrupt(
                path,
                Some(bundle * 256),
                "bundle index shorter than the tree",
            )
        } else {
            StoreError::Io {
                op: "read",
                path: path.to_path_buf(),
                source: e,
            }
        }
    })?;
    Ok(u64::from_be_bytes(b))
}
