//! Small file-system helpers shared by the store: atomic writes and an exclusive lock file.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use crate::error::{IoContext, Result};

/// Writes `bytes` to `path` so that readers see the old file or the new one, never a half: temp file
/// in the same directory, fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_mode(path, bytes, 0o644)
}

/// [`write_atomic`] with the file created at `mode` from the start (for secrets: no window at 0644).
pub fn write_atomic_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let res = (|| -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res.ctx(|| format!("writing {}", path.display()))
}

/// An exclusive advisory lock held for as long as the value lives (flock, released on drop or death).
pub struct LockFile {
    _file: File,
}

impl LockFile {
    /// Blocks until the lock at `path` is ours, creating the file if needed.
    pub fn acquire(path: &Path) -> Result<LockFile> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
        }
        Self::acquire_in_existing(path)
    }

    /// Like [`LockFile::acquire`] but never creates the directory: a lock inside a record that
    /// was removed meanwhile must fail, not bring back an empty directory holding only the lock.
    pub fn acquire_in_existing(path: &Path) -> Result<LockFile> {
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .ctx(|| format!("opening lock {}", path.display()))?;
        file.lock().ctx(|| format!("locking {}", path.display()))?;
        Ok(LockFile { _file: file })
    }
}

/// Whether a process with this pid exists (used to tell abandoned temp files from live ones).
pub fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}
