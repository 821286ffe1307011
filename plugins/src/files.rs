//! The few file operations the plugin list and cache need: private directories, atomic writes
//! (temp file, fsync, rename, fsync of the directory) and an exclusive lock.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::error::PluginError;

/// Makes `dir` (and its parents) with mode 0700 for what skiff creates; refuses a directory
/// another user owns, and tightens one that others may write.
pub fn private_dir(dir: &Path) -> Result<(), PluginError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| PluginError::io(format!("creating {}", dir.display()), e))?;
    let meta = std::fs::metadata(dir)
        .map_err(|e| PluginError::io(format!("reading {}", dir.display()), e))?;
    if meta.uid() != euid() {
        return Err(PluginError::io(
            format!(
                "{} belongs to uid {}, not to you",
                dir.display(),
                meta.uid()
            ),
            std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        ));
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| PluginError::io(format!("tightening {}", dir.display()), e))?;
    }
    Ok(())
}

/// The caller's effective uid.
pub fn euid() -> u32 {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}

/// Writes `bytes` to `path` so that a reader sees the old file or the whole new one, never a
/// part: a temp file beside it (mode 0600), fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PluginError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let ctx = |what: &str, e| PluginError::io(format!("{what} {}", tmp.display()), e);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| ctx("creating", e))?;
    let written = f.write_all(bytes).and_then(|_| f.sync_all());
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(ctx("writing", e));
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(PluginError::io(format!("replacing {}", path.display()), e));
    }
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// An exclusive lock on a file beside what it guards, held until dropped.
pub struct Lock(#[allow(dead_code)] File);

impl Lock {
    /// Waits for the lock at `path`.
    pub fn acquire(path: &Path) -> Result<Lock, PluginError> {
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| PluginError::io(format!("opening {}", path.display()), e))?;
        f.lock()
            .map_err(|e| PluginError::io(format!("locking {}", path.display()), e))?;
        Ok(Lock(f))
    }
}
