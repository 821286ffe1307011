//! Where skiff keeps its per-user files, honouring the XDG variables as Docker and podman users
//! expect, and keeping them private: layer dirs hold images' setuid programs with their modes, so
//! no other local user may reach into them.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The per-user directories skiff uses; computed once and passed down so no crate guesses paths.
#[derive(Debug, Clone)]
pub struct Dirs {
    /// `$XDG_DATA_HOME/skiff`: the store, unpacked layers, containers and volumes.
    pub data: PathBuf,
    /// `$XDG_CONFIG_HOME/skiff`: config.toml and certs.d.
    pub config: PathBuf,
    /// `$XDG_CACHE_HOME/skiff`: compiled plugins and other things safe to delete.
    pub cache: PathBuf,
    /// `$XDG_RUNTIME_DIR/skiff` (or a private dir under /tmp): locks.
    pub runtime: PathBuf,
}

impl Dirs {
    /// Reads the XDG variables (falling back to the usual defaults under `$HOME`).
    pub fn from_env() -> Self {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .or_else(|| directories::BaseDirs::new().map(|b| b.home_dir().to_path_buf()));
        let home = home.unwrap_or_else(|| PathBuf::from("/"));
        let xdg = |var: &str, default: &str| -> PathBuf {
            match std::env::var_os(var) {
                Some(v) if Path::new(&v).is_absolute() => PathBuf::from(v),
                _ => home.join(default),
            }
        };
        let runtime = match std::env::var_os("XDG_RUNTIME_DIR") {
            Some(v) if Path::new(&v).is_absolute() => PathBuf::from(v).join("skiff"),
            _ => std::env::temp_dir().join(format!("skiff-{}", rustix::process::getuid().as_raw())),
        };
        Dirs {
            data: xdg("XDG_DATA_HOME", ".local/share").join("skiff"),
            config: xdg("XDG_CONFIG_HOME", ".config").join("skiff"),
            cache: xdg("XDG_CACHE_HOME", ".cache").join("skiff"),
            runtime,
        }
    }

    /// Makes the data, cache and runtime dirs private to this user (0700, as podman's): creates
    /// them so, and tightens one found open to others, returning a one-line note for each (the
    /// next run finds it tight, so the note comes once). Layer dirs keep images' setuid and
    /// setgid programs, owned by root or the user; behind a 0700 dir no other local user can
    /// run them. A dir owned by another user is refused. Creation failures are left to the
    /// command that needs the dir, so `skiff version` works on a read-only home.
    pub fn make_private(&self) -> Result<Vec<String>> {
        let mut notes = Vec::new();
        for (dir, var, parents) in [
            (&self.data, "XDG_DATA_HOME", true),
            (&self.cache, "XDG_CACHE_HOME", true),
            (&self.runtime, "XDG_RUNTIME_DIR", false),
        ] {
            if parents {
                if let Some(p) = dir.parent() {
                    let _ = std::fs::create_dir_all(p);
                }
            }
            let _ = std::fs::DirBuilder::new().mode(0o700).create(dir);
            let Ok(md) = std::fs::metadata(dir) else {
                continue;
            };
            let me = rustix::process::geteuid().as_raw();
            if md.uid() != me {
                return Err(Error::ForeignDir {
                    path: dir.clone(),
                    owner: md.uid(),
                    me,
                    var,
                });
            }
            let mode = md.mode() & 0o7777;
            if md.is_dir() && mode & 0o077 != 0 {
                match std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)) {
                    Ok(()) => notes.push(format!(
                        "note: {} was open to other users (mode {mode:04o}): made it 0700, so they cannot reach skiff's files (images' setuid programs among them)",
                        dir.display()
                    )),
                    Err(e) => notes.push(format!(
                        "warning: {} is open to other users (mode {mode:04o}) and could not be made 0700: {e}",
                        dir.display()
                    )),
                }
            }
        }
        Ok(notes)
    }

    /// The OCI image layout that holds every blob and the image index.
    pub fn store(&self) -> PathBuf {
        self.data.join("store")
    }

    /// Unpacked layers, one directory per chain id.
    pub fn layers(&self) -> PathBuf {
        self.data.join("layers")
    }

    /// Scratch space on the same file system as the store, so a finished file is a rename away.
    pub fn tmp(&self) -> PathBuf {
        self.data.join("tmp")
    }
}
