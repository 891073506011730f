//! Durable file writes: a new file or a replaced one survives a crash whole or not at all.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::WitnessError;

/// fsyncs directory `dir` so that entries created or renamed in it survive a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), WitnessError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(WitnessError::io("fsync directory", dir))
}

/// Creates `dir` (and missing parents) with `mode`, fsyncing the parent of each new
/// directory.
pub(crate) fn create_dir_durable(dir: &Path, mode: u32) -> Result<(), WitnessError> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(p) = parent {
        create_dir_durable(p, 0o755)?;
    }
    match std::fs::DirBuilder::new().mode(mode).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(WitnessError::io("create directory", dir)(e)),
    }
    if let Some(p) = parent {
        sync_dir(p)?;
    }
    Ok(())
}

/// Replaces `path` with `bytes`: a temporary file beside it, written and fsynced, renamed
/// over `path`, then the directory fsynced. A crash leaves the old or the new content.
pub(crate) fn replace_file(path: &Path, bytes: &[u8]) -> Result<(), WitnessError> {
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write()
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
        .map_err(WitnessError::io("write", path))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Creates `path` with `bytes` and `mode`, never replacing an existing file; fsyncs file and
/// directory. Returns `false` (and writes nothing) if the file exists.
pub(crate) fn create_new(path: &Path, bytes: &[u8], mode: u32) -> Result<bool, WitnessError> {
    let mut f = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(WitnessError::io("create", path)(e)),
    };
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(WitnessError::io("write", path))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))?;
    Ok(true)
}
