//! Entry segments `log/entries/NNNNNNNN.seg`: append-only sequences of [`frame`]s.
//!
//! Segment `s` holds bundles `[s·4096, (s+1)·4096)`. The writer appends and `fdatasync`s; a
//! new segment's directory entry is fsynced before anything in it is acknowledged.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use crate::error::{Result, StoreError};
use crate::frame::{self, FrameHeader, HEADER_LEN};
use crate::layout::Layout;

/// The segment the writer is appending to.
pub struct SegmentWriter {
    layout: Layout,
    seg: u64,
    /// Shared with the fsync thread (see [`crate::syncer`]).
    file: Arc<File>,
    len: u64,
}

impl SegmentWriter {
    /// Opens segment `seg` for appending after its first `len` bytes, truncating anything
    /// beyond (recovery has established that `len` bytes are good).
    ///
    /// # Errors
    /// I/O errors.
    pub fn open(layout: &Layout, seg: u64, len: u64) -> Result<Self> {
        let dir = layout.entries_dir();
        crate::fsutil::create_dir_durable(&dir)?;
        let path = layout.segment(seg);
        let existed = path.exists();
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
        if have != len {
            file.set_len(len)
                .map_err(StoreError::io("truncate", &path))?;
            file.sync_all().map_err(StoreError::io("fsync", &path))?;
        } else if existed {
            // Recovery keeps whole frames past the last `fdatasync` that a crash of the
            // process (not of the machine) left in the page cache. From now on they are
            // readable and answer retries of their ids as already stored, so they must be
            // durable first, or a power loss could still take them.
            file.sync_data()
                .map_err(StoreError::io("fdatasync", &path))?;
        }
        if !existed {
            crate::fsutil::sync_dir(&dir)?;
        }
        Ok(SegmentWriter {
            layout: layout.clone(),
            seg,
            file: Arc::new(file),
            len,
        })
    }

    /// The segment number.
    pub fn segment(&self) -> u64 {
        self.seg
    }

    /// The open segment file, for syncing on another thread.
    pub fn handle(&self) -> Arc<File> {
        self.file.clone()
    }

    /// The segment file's path.
    pub fn path(&self) -> PathBuf {
        self.layout.segment(self.seg)
    }

    /// Bytes in the segment so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Starts the next segment (after syncing this one).
    ///
    /// # Errors
    /// I/O errors.
    pub fn roll(&mut self) -> Result<()> {
        *self = SegmentWriter::open(&self.layout, self.seg + 1, 0)?;
        Ok(())
    }

    /// Appends `bytes` (whole frames). Not durable until [`SegmentWriter::sync`].
    ///
    /// # Errors
    /// I/O errors; the caller must then poison the store.
    pub fn append(&mut self, bytes: &[u8]) -> Result<()> {
        self.file
            .write_all_at(bytes, self.len)
            .map_err(StoreError::io("write", self.layout.segment(self.seg)))?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// `fdatasync`: after this returns, everything appended survives a crash.
    ///
    /// # Errors
    /// I/O errors; the caller must then poison the store.
    pub fn sync(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(StoreError::io("fdatasync", self.layout.segment(self.seg)))
    }
}

/// One frame read back from a segment.
#[derive(Debug)]
pub struct ReadFrame {
    /// Its header.
    pub header: FrameHeader,
    /// The payload (length-prefixed entries).
    pub payload: Vec<u8>,
}

/// Shared read access to segments.
pub struct SegmentReader {
    layout: Layout,
    files: RwLock<HashMap<u64, Arc<File>>>,
}

impl SegmentReader {
    /// Read access to the segments of `layout`.
    pub fn new(layout: &Layout) -> Self {
        SegmentReader {
            layout: layout.clone(),
            files: RwLock::new(HashMap::new()),
        }
    }

    fn file(&self, seg: u64) -> Result<Arc<File>> {
        if let Some(f) = self
            .files
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&seg)
        {
            return Ok(f.clone());
        }
        let path = self.layout.segment(seg);
        let f = Arc::new(File::open(&path).map_err(StoreError::io("open", &path))?);
        self.files
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(seg, f.clone());
        Ok(f)
    }

    /// Reads consecutive checked frames of segment `seg` starting at `offset` until they hold
    /// at least `entries` entries. Frames must start at `first_index` and be contiguous.
    ///
    /// # Errors
    /// `Corrupt` on a bad or short frame, I/O errors.
    pub fn read_frames(
        &self,
        seg: u64,
        offset: u64,
        first_index: u64,
        entries: u64,
    ) -> Result<Vec<ReadFrame>> {
        let file = self.file(seg)?;
        let path = || -> PathBuf { self.layout.segment(seg) };
        let mut out = Vec::new();
        let mut at = offset;
        let mut next = first_index;
        let mut got = 0u64;
        // Read generously: a bundle of ~300-byte entries is ~77 KiB.
        let mut buf = Vec::new();
        let mut buf_at = offset;
        while got < entries {
            let rel = (at - buf_at) as usize;
            if buf.len() < rel + HEADER_LEN {
                buf_at = at;
                buf = read_up_to(&file, at, 128 * 1024).map_err(StoreError::io("read", path()))?;
                continue_if_short(&buf, HEADER_LEN, &path, next)?;
            }
            let rel = (at - buf_at) as usize;
            let header = frame::parse_header(&buf[rel..]).map_err(|e| {
                StoreError::corrupt(path(), Some(next), format!("frame at byte {at}: {e}"))
            })?;
            let flen = header.frame_len() as usize;
            if buf.len() < rel + flen {
                buf_at = at;
                buf = read_up_to(&file, at, flen.max(128 * 1024))
                    .map_err(StoreError::io("read", path()))?;
                continue_if_short(&buf, flen, &path, next)?;
            }
            let rel = (at - buf_at) as usize;
            let (header, payload) = frame::check_frame(&buf[rel..]).map_err(|e| {
                StoreError::corrupt(path(), Some(next), format!("frame at byte {at}: {e}"))
            })?;
            if header.first_index != next {
                return Err(StoreError::corrupt(
                    path(),
                    Some(next),
                    format!(
                        "frame at byte {at} starts at entry {}, expected {next}",
                        header.first_index
                    ),
                ));
            }
            out.push(ReadFrame {
                header,
                payload: payload.to_vec(),
            });
            next += u64::from(header.count);
            got += u64::from(header.count);
            at += flen as u64;
        }
        Ok(out)
    }
}

fn continue_if_short(buf: &[u8], need: usize, path: &dyn Fn() -> PathBuf, next: u64) -> Result<()> {
    if buf.len() < need {
        return Err(StoreError::corrupt(
            path(),
            Some(next),
            "segment ends inside the log",
        ));
    }
    Ok(())
}

/// Reads up to `max` bytes at `offset` (fewer at end of file).
pub fn read_up_to(file: &File, offset: u64, max: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; max];
    let mut filled = 0;
    while filled < max {
        let n = file.read_at(&mut buf[filled..], offset + filled as u64)?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    buf.truncate(filled);
    Ok(buf)
}
