//! Small file-system helpers: directory fsync, atomic replace, the data-directory lock.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::path::Path;

use crate::error::{Result, StoreError};

/// fsyncs a directory so that entries created or renamed in it survive a crash.
///
/// # Errors
/// I/O errors.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let d = File::open(dir).map_err(StoreError::io("open dir", dir))?;
    d.sync_all().map_err(StoreError::io("fsync dir", dir))
}

/// Creates `dir` and any missing parents, fsyncing each parent so the new entries survive a
/// crash (an fsynced file in a directory whose own entry was lost is lost with it).
///
/// # Errors
/// I/O errors.
pub fn create_dir_durable(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(p) = parent {
        create_dir_durable(p)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(StoreError::Io {
                op: "create dir",
                path: dir.to_path_buf(),
                source: e,
            })
        }
    }
    if let Some(p) = parent {
        sync_dir(p)?;
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically: temp file, fsync, rename, fsync of the directory.
///
/// # Errors
/// I/O errors.
pub fn replace_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&tmp)
            .map_err(StoreError::io("create", &tmp))?;
        f.write_all(bytes).map_err(StoreError::io("write", &tmp))?;
        f.sync_all().map_err(StoreError::io("fsync", &tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(StoreError::io("rename", path))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Like [`replace_file`], for a secret: the file is created with mode 0600 (a stale temp
/// file is removed first, so its mode cannot leak into the new one).
///
/// # Errors
/// I/O errors.
pub fn replace_private_file(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(StoreError::io("remove", &tmp)(e)),
    }
    {
        let mut f = OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(StoreError::io("create", &tmp))?;
        f.write_all(bytes).map_err(StoreError::io("write", &tmp))?;
        f.sync_all().map_err(StoreError::io("fsync", &tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(StoreError::io("rename", path))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// An exclusive advisory lock on the data directory, released when dropped (or when the
/// process dies, so a kill -9 never leaves a stale lock).
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock at `path`.
    ///
    /// # Errors
    /// `Locked` when another process holds it; I/O errors.
    pub fn acquire(path: &Path) -> Result<DirLock> {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(StoreError::io("open", path))?;
        // SAFETY: flock on a valid, owned descriptor.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::WouldBlock {
                return Err(StoreError::Locked(
                    path.parent().unwrap_or(path).to_path_buf(),
                ));
            }
            return Err(StoreError::Io {
                op: "lock",
                path: path.to_path_buf(),
                source: err,
            });
        }
        Ok(DirLock { _file: f })
    }
}

/// Asks the kernel to drop the cached pages of `file` in `offset..offset + len`
/// (`POSIX_FADV_DONTNEED`). Only clean pages go: call it on a range already made durable, so
/// nothing unsynced is touched. A hint: a failure is ignored, the pages just stay cached.
pub fn drop_cached(file: &File, offset: u64, len: u64) {
    let (Ok(offset), Ok(len)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
        return;
    };
    // SAFETY: posix_fadvise on a valid, borrowed descriptor; it reads and writes no memory of
    // ours.
    let _ =
        unsafe { libc::posix_fadvise(file.as_raw_fd(), offset, len, libc::POSIX_FADV_DONTNEED) };
}
