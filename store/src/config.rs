//! `$XDG_CONFIG_HOME/skiff/config.toml`: per-registry settings (insecure, mirrors).
//!
//! ```toml
//! [registries."myregistry.local:5000"]
//! insecure = true                          # plain HTTP, as Docker's insecure-registries
//! mirrors = ["mirror.local:5000"]          # tried in order before the registry itself
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// Settings for one registry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// Talk plain HTTP (and accept any certificate) to this registry.
    #[serde(default)]
    pub insecure: bool,
    /// Registries to try first, in order, for pulls from this one.
    #[serde(default)]
    pub mirrors: Vec<String>,
}

/// The parts of config.toml the store reads; unknown top-level tables belong to other crates.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Config {
    /// Per-registry settings keyed by `host[:port]`.
    #[serde(default)]
    pub registries: BTreeMap<String, RegistryConfig>,
}

impl Config {
    /// Reads config.toml from `config_dir`; a missing file means defaults.
    pub fn load(config_dir: &Path) -> Result<Config> {
        let path = config_dir.join("config.toml");
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&text, &path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(e) => Err(Error::Io {
                context: format!("reading {}", path.display()),
                source: e,
            }),
        }
    }

    /// Parses config text; errors name the file and the line.
    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        toml::from_str(text).map_err(|e| Error::Config {
            path: PathBuf::from(path),
            reason: e.to_string().replace('\n', " "),
        })
    }

    /// The settings for `registry` (defaults when not configured).
    pub fn registry(&self, registry: &str) -> RegistryConfig {
        self.registries.get(registry).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_registries_and_reports_errors_with_the_file() {
        let c = Config::parse(
            "[registries.\"r:5000\"]\ninsecure = true\nmirrors = [\"m:1\"]\n[plugins]\nx = 1\n",
            Path::new("c.toml"),
        )
        .unwrap();
        assert!(c.registry("r:5000").insecure);
        assert_eq!(c.registry("r:5000").mirrors, vec!["m:1"]);
        assert!(!c.registry("other").insecure);
        let err = Config::parse("[registries.\"r\"]\ninsecur = true\n", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("c.toml:") && err.contains("insecur"),
            "{err}"
        );
    }
}
