//! Where skiff keeps its per-user files, honouring the XDG variables as Docker and podman users expect.

use std::path::{Path, PathBuf};

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
