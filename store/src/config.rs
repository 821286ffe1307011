//! `$XDG_CONFIG_HOME/skiff/config.toml`, read in one place for every crate: per-registry settings
//! (insecure, mirrors), the log cap and storage limits. Sizes are read by `size::parse_size`.
//!
//! ```toml
//! [registries."myregistry.local:5000"]
//! insecure = true                          # plain HTTP, as Docker's insecure-registries
//! mirrors = ["mirror.local:5000"]          # tried in order before the registry itself
//!
//! [logs]
//! max_size = "10MB"                        # cap on each container's log (newest kept)
//!
//! [storage]
//! max_layer_size = "32GiB"                 # what one layer may expand to (bytes, or with k/m/g/t)
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

/// `[logs]`: how container logs are kept.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsConfig {
    /// `max_size`: cap on each container's log in bytes (a size like "10MB", or a number).
    #[serde(default, deserialize_with = "size_setting")]
    pub max_size: Option<u64>,
}

/// The default for `[storage] max_layer_size`: 32 GiB. The largest real layers (CUDA and ML
/// framework images) expand to around 10 GiB; a bomb that fills the disk needs far more.
pub const DEFAULT_MAX_LAYER_SIZE: u64 = 32 << 30;

/// `[storage]`: limits on what the store accepts. Other keys are left to other readers.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StorageConfig {
    /// What one layer may expand to (its uncompressed tar, and its files' full sizes): a
    /// number of bytes, or a string such as `"32GiB"`.
    #[serde(default)]
    pub max_layer_size: Option<ByteSize>,
}

/// A size in config.toml: a number of bytes, or a string with a unit (`"512MiB"`, `"2GB"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(ByteSize(n)),
            Raw::S(s) => crate::size::parse_size(&s).map(ByteSize).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "invalid size {s:?}: use a number of bytes or e.g. \"32GiB\", \"500MB\""
                ))
            }),
        }
    }
}

/// config.toml; unknown top-level tables are left for later settings.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Config {
    /// `[plugins.NAME]`: each plugin's table as written, typed by the plugins crate (which the
    /// store does not know).
    #[serde(default)]
    pub plugins: BTreeMap<String, toml::Table>,
    /// Per-registry settings keyed by `host[:port]`.
    #[serde(default)]
    pub registries: BTreeMap<String, RegistryConfig>,
    /// `[logs]`.
    #[serde(default)]
    pub logs: LogsConfig,
    /// Storage limits.
    #[serde(default)]
    pub storage: StorageConfig,
}

/// A size setting: a positive integer of bytes or a string `parse_size` reads.
fn size_setting<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Bytes(i64),
        Text(String),
    }
    let bad = || {
        serde::de::Error::custom(
            "logs.max_size must be a size like \"10MB\", \"512k\" or a number of bytes",
        )
    };
    match Raw::deserialize(d).map_err(|_| bad())? {
        Raw::Bytes(n) if n > 0 => Ok(Some(n as u64)),
        Raw::Text(s) => crate::size::parse_size(&s).map(Some).ok_or_else(bad),
        Raw::Bytes(_) => Err(bad()),
    }
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

    /// What one layer may expand to: `[storage] max_layer_size`, or the default.
    pub fn max_layer_size(&self) -> u64 {
        self.storage
            .max_layer_size
            .map_or(DEFAULT_MAX_LAYER_SIZE, |b| b.0)
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
            "[registries.\"r:5000\"]\ninsecure = true\nmirrors = [\"m:1\"]\n[plugins.x]\non_error = 1\n",
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

    #[test]
    fn the_log_cap_is_a_size_or_a_number() {
        let p = Path::new("c.toml");
        let c = |t: &str| Config::parse(t, p).map(|c| c.logs.max_size);
        assert_eq!(c("[logs]\nmax_size = \"8KB\"\n").unwrap(), Some(8192));
        assert_eq!(c("[logs]\nmax_size = 4096\n").unwrap(), Some(4096));
        assert_eq!(c("").unwrap(), None);
        for bad in ["max_size = \"lots\"", "max_size = 0", "max_size = true"] {
            let err = c(&format!("[logs]\n{bad}\n")).unwrap_err().to_string();
            assert!(err.contains("logs.max_size must be a size"), "{err}");
        }
    }

    #[test]
    fn layer_size_limit_reads_units_and_defaults() {
        let p = Path::new("c.toml");
        assert_eq!(
            Config::parse("", p).unwrap().max_layer_size(),
            DEFAULT_MAX_LAYER_SIZE
        );
        let c = Config::parse(
            "[storage]\nmax_layer_size = \"2MiB\"\ndriver = \"overlay\"\n",
            p,
        );
        assert_eq!(c.unwrap().max_layer_size(), 2 << 20);
        let c = Config::parse("[storage]\nmax_layer_size = 4096\n", p);
        assert_eq!(c.unwrap().max_layer_size(), 4096);
        let err = Config::parse("[storage]\nmax_layer_size = \"lots\"\n", p)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("invalid size") && err.contains("lots"),
            "{err}"
        );
    }
}
