//! Compiled plugins: `Engine::precompile_component` at install, written under
//! `$XDG_CACHE_HOME/skiff/plugins/` keyed by the component's digest and the engine's
//! compatibility key. It is loaded (mapped, with `Component::deserialize_file`) only when this
//! user owns it, nobody else can write it, and it is the very file install wrote: same device,
//! inode, size and change time (which no write or rename can keep). A file that differs is
//! read and its SHA-256 compared with what install recorded; a foreign, altered or stale
//! artifact is never deserialized: the caller compiles again from the component, with a note.
//! (Hashing a 35 MB Python plugin at every run would cost ~20 ms; the identity check is free.)

use std::hash::{Hash, Hasher};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

use crate::error::PluginError;
use crate::files;

/// A key that changes whenever the engine would make different code: wasmtime's version and
/// its own compatibility hash of the configuration and the host CPU's features.
pub fn engine_key(engine: &Engine) -> String {
    let mut h = std::hash::DefaultHasher::new();
    env!("CARGO_PKG_VERSION").hash(&mut h);
    "wasmtime-48.0.8".hash(&mut h);
    engine.precompile_compatibility_hash().hash(&mut h);
    format!("{:016x}", h.finish())
}

/// The SHA-256 of `bytes`, in hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Which file an artifact is: a write or a rename changes the change time, so a file with the
/// identity install recorded holds what install wrote.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileIdentity {
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Change time, nanoseconds since the epoch.
    pub ctime_ns: i128,
}

impl FileIdentity {
    /// The identity of the file `meta` describes.
    pub fn of(meta: &std::fs::Metadata) -> FileIdentity {
        FileIdentity {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        }
    }
}

/// The compiled-plugin directory.
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// The cache at `dir` (made 0700 when first written).
    pub fn new(dir: PathBuf) -> Cache {
        Cache { dir }
    }

    /// Where the artifact for a component digest (hex) and engine key lives.
    pub fn path(&self, digest_hex: &str, engine_key: &str) -> PathBuf {
        self.dir.join(format!("{digest_hex}-{engine_key}.cwasm"))
    }

    /// Writes an artifact atomically; returns its SHA-256 and identity for the plugin list.
    pub fn store(
        &self,
        path: &Path,
        compiled: &[u8],
    ) -> Result<(String, Option<FileIdentity>), PluginError> {
        files::private_dir(&self.dir)?;
        files::write_atomic(path, compiled)?;
        let id = std::fs::metadata(path).ok().map(|m| FileIdentity::of(&m));
        Ok((sha256_hex(compiled), id))
    }

    /// Whether the artifact at `path` is still the very file with `identity` (then `load` maps
    /// it without reading it).
    pub fn is_as_recorded(path: &Path, identity: Option<&FileIdentity>) -> bool {
        std::fs::symlink_metadata(path).is_ok_and(|m| identity == Some(&FileIdentity::of(&m)))
    }

    /// Loads an artifact after checking that this user owns it, nobody else can write it, and
    /// it is the file install wrote (or, when its identity changed, has the content it wrote).
    /// With the component comes the file's new identity when it had changed and its content
    /// was checked instead: the caller records it, so that the next load maps the file again
    /// rather than reading and hashing it (90 ms for a 31 MB Python plugin) at every run.
    pub fn load(
        &self,
        engine: &Engine,
        plugin: &str,
        path: &Path,
        sha256: &str,
        identity: Option<&FileIdentity>,
    ) -> Result<(Component, Option<FileIdentity>), PluginError> {
        let bad = |why: String| PluginError::Cache {
            plugin: plugin.to_string(),
            path: path.to_path_buf(),
            why,
        };
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(bad("is missing".into()))
            }
            Err(e) => return Err(bad(format!("cannot be read ({e})"))),
        };
        if !meta.is_file() || meta.uid() != files::euid() || meta.mode() & 0o022 != 0 {
            return Err(bad(format!(
                "is not a regular file owned by you alone (uid {}, mode {:o})",
                meta.uid(),
                meta.mode() & 0o7777
            )));
        }
        let now = FileIdentity::of(&meta);
        let (loaded, changed) = if identity == Some(&now) {
            // SAFETY: the very file this user's skiff compiled with this engine key and has
            // not been written since (same inode and change time); wasmtime checks its header
            // and engine settings too.
            (unsafe { Component::deserialize_file(engine, path) }, None)
        } else {
            let bytes = std::fs::read(path).map_err(|e| bad(format!("cannot be read ({e})")))?;
            if sha256_hex(&bytes) != sha256 {
                return Err(bad("was changed after it was compiled".into()));
            }
            // The identity is taken before the read: a write since would change it again, so
            // what is recorded never vouches for content that was not checked.
            // SAFETY: the content this user's skiff compiled with this engine key (checked by
            // hash above, in memory).
            (unsafe { Component::deserialize(engine, &bytes) }, Some(now))
        };
        let component = loaded.map_err(|e| {
            bad(format!(
                "cannot be loaded ({})",
                crate::host::root_cause(&e)
            ))
        })?;
        Ok((component, changed))
    }

    /// Removes artifacts whose digest is no longer installed (or whose engine key is old).
    pub fn prune(&self, keep: &[PathBuf]) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "cwasm") && !keep.contains(&p) {
                let _ = std::fs::remove_file(&p);
            }
        }
    }
}
