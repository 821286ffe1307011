//! Compiled plugins: `Engine::precompile_component` at install, written under
//! `$XDG_CACHE_HOME/skiff/plugins/` keyed by the component's digest and the engine's
//! compatibility key, and loaded with `Component::deserialize` only after the file's owner,
//! mode and SHA-256 match what install recorded. A foreign, altered or stale artifact is never
//! deserialized: it is an error, or (another wasmtime) a recompile with a note.

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

    /// Writes an artifact atomically; returns its SHA-256 for the plugin list.
    pub fn store(&self, path: &Path, compiled: &[u8]) -> Result<String, PluginError> {
        files::private_dir(&self.dir)?;
        files::write_atomic(path, compiled)?;
        Ok(sha256_hex(compiled))
    }

    /// Loads an artifact after checking that this user owns it, nobody else can write it, and
    /// its content is what install wrote.
    pub fn load(
        &self,
        engine: &Engine,
        plugin: &str,
        path: &Path,
        sha256: &str,
    ) -> Result<Component, PluginError> {
        let bad = |why: String| PluginError::Cache {
            plugin: plugin.to_string(),
            path: path.to_path_buf(),
            why,
        };
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(bad("is missing".into()))
            }
            Err(e) => return Err(bad(format!("cannot be read ({e})"))),
        };
        let meta = std::fs::metadata(path).map_err(|e| bad(format!("cannot be read ({e})")))?;
        if meta.uid() != files::euid() || meta.mode() & 0o022 != 0 {
            return Err(bad(format!(
                "is owned by uid {} with mode {:o}, not yours alone",
                meta.uid(),
                meta.mode() & 0o7777
            )));
        }
        if sha256_hex(&bytes) != sha256 {
            return Err(bad("was changed after it was compiled".into()));
        }
        // SAFETY: the bytes are the artifact this user's skiff compiled with this engine key
        // (checked above by content hash); wasmtime checks the header and engine settings too.
        unsafe { Component::deserialize(engine, &bytes) }.map_err(|e| {
            bad(format!(
                "cannot be loaded ({})",
                crate::host::root_cause(&e)
            ))
        })
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
