//! Derived hash files: `log/hashes/LL` holds every complete node of tree level `LL`, 32 bytes
//! each, in index order. Hash tiles are byte ranges of these files (tile level T = tree level
//! 8T), and a proof reads O(log n) nodes with one `pread` each.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::sync::RwLock;

use stele_core::merkle::NodeSource;
use stele_core::Hash;

use crate::error::{Result, StoreError};
use crate::layout::Layout;

/// Highest tree level the store keeps (a tree of 2^63 leaves is beyond any disk).
pub const MAX_LEVEL: u8 = 63;

/// Append handles for the level files, owned by the writer.
pub struct LevelWriter {
    layout: Layout,
    files: Vec<File>,
    /// Bytes in each level file (what has been written, synced or not).
    lens: Vec<u64>,
    pending: Vec<Vec<u8>>,
}

impl LevelWriter {
    /// Opens (creating as needed) level files, truncated to hold exactly the complete nodes of
    /// a tree of `size` leaves: anything after that is unsynced and is rebuilt by the caller.
    ///
    /// # Errors
    /// I/O errors, or `Corrupt` when a level file is shorter than `size` requires.
    pub fn open(layout: &Layout, size: u64) -> Result<Self> {
        let dir = layout.hashes_dir();
        crate::fsutil::create_dir_durable(&dir)?;
        let mut files = Vec::new();
        let mut lens = Vec::new();
        for level in 0..=MAX_LEVEL {
            let path = layout.level(level);
            let want = (size >> level) * 32;
            if want == 0 && !path.exists() {
                break;
            }
            let f = OpenOptions::new()
                .create(true)
                .read(true)
                .write(true)
                .truncate(false)
                .open(&path)
                .map_err(StoreError::io("open", &path))?;
            let have = f.metadata().map_err(StoreError::io("stat", &path))?.len();
            if have < want {
                return Err(StoreError::corrupt(
                    &path,
                    Some((have / 32) << level),
                    format!("level file holds {have} bytes, the checkpointed tree needs {want}"),
                ));
            }
            if have > want {
                f.set_len(want).map_err(StoreError::io("truncate", &path))?;
            }
            files.push(f);
            lens.push(want);
        }
        Ok(LevelWriter {
            layout: layout.clone(),
            files,
            lens,
            pending: Vec::new(),
        })
    }

    /// Buffers one completed node; nodes of a level must arrive in index order.
    pub fn push(&mut self, level: u8, hash: &Hash) {
        let l = usize::from(level);
        if self.pending.len() <= l {
            self.pending.resize_with(l + 1, Vec::new);
        }
        self.pending[l].extend_from_slice(&hash.0);
    }

    /// Writes buffered nodes to the level files (no fsync: they are derived data).
    ///
    /// # Errors
    /// I/O errors.
    pub fn flush(&mut self) -> Result<()> {
        for (l, buf) in self.pending.iter_mut().enumerate() {
            if buf.is_empty() {
                continue;
            }
            while self.files.len() <= l {
                let path = self.layout.level(self.files.len() as u8);
                let f = OpenOptions::new()
                    .create(true)
                    .read(true)
                    .write(true)
                    .truncate(true)
                    .open(&path)
                    .map_err(StoreError::io("create", &path))?;
                self.files.push(f);
                self.lens.push(0);
            }
            let end = self.lens[l];
            self.files[l]
                .write_all_at(buf, end)
                .map_err(StoreError::io("write", self.layout.level(l as u8)))?;
            self.lens[l] = end + buf.len() as u64;
            buf.clear();
        }
        Ok(())
    }

    /// Makes every level file durable (before a checkpoint that vouches for them).
    ///
    /// # Errors
    /// I/O errors.
    pub fn sync(&mut self) -> Result<()> {
        for (l, f) in self.files.iter().enumerate() {
            f.sync_data()
                .map_err(StoreError::io("fsync", self.layout.level(l as u8)))?;
        }
        let dir = self.layout.hashes_dir();
        crate::fsutil::sync_dir(&dir)?;
        Ok(())
    }
}

/// Read handles for the level files, shared by readers. Only nodes inside the durable tree
/// are ever asked for, and the writer has written them before publishing that size.
pub struct LevelReader {
    layout: Layout,
    files: RwLock<Vec<Option<File>>>,
}

impl LevelReader {
    /// Read access to the level files of `layout`.
    pub fn new(layout: &Layout) -> Self {
        LevelReader {
            layout: layout.clone(),
            files: RwLock::new(Vec::new()),
        }
    }

    /// Reads `count` consecutive nodes of `level` starting at `index`, as raw bytes.
    ///
    /// # Errors
    /// I/O errors; `Corrupt` if the file is shorter than expected.
    pub fn read_raw(&self, level: u8, index: u64, count: u64) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; (count * 32) as usize];
        self.with_file(level, |f, path| {
            f.read_exact_at(&mut buf, index * 32).map_err(|e| {
                if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    StoreError::corrupt(
                        path,
                        Some(index << level),
                        "level file shorter than the tree",
                    )
                } else {
                    StoreError::Io {
                        op: "read",
                        path: path.to_path_buf(),
                        source: e,
                    }
                }
            })
        })?;
        Ok(buf)
    }

    fn with_file<T>(
        &self,
        level: u8,
        f: impl FnOnce(&File, &std::path::Path) -> Result<T>,
    ) -> Result<T> {
        let l = usize::from(level);
        let path = self.layout.level(level);
        {
            let files = self.files.read().unwrap_or_else(|p| p.into_inner());
            if let Some(Some(file)) = files.get(l) {
                return f(file, &path);
            }
        }
        let file = File::open(&path).map_err(StoreError::io("open", &path))?;
        let mut files = self.files.write().unwrap_or_else(|p| p.into_inner());
        if files.len() <= l {
            files.resize_with(l + 1, || None);
        }
        let slot = &mut files[l];
        let file = slot.get_or_insert(file);
        f(file, &path)
    }
}

impl NodeSource for LevelReader {
    type Error = StoreError;
    fn node(&self, level: u8, index: u64) -> Result<Hash> {
        let raw = self.read_raw(level, index, 1)?;
        let mut h = [0u8; 32];
        h.copy_from_slice(&raw);
        Ok(Hash(h))
    }
}
