//! The installed plugins: `$XDG_DATA_HOME/skiff/plugins/plugins.json` (name, digest, world,
//! hooks, priority, enabled, where it came from, its compiled artifact, its last error) and
//! each component's bytes beside it by digest. Read without a lock (it is replaced atomically),
//! changed only under `plugins.lock`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::PluginError;
use crate::files;

/// The default priority: lower runs first, then by name.
pub const DEFAULT_PRIORITY: i32 = 50;

/// The compiled artifact of a plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compiled {
    /// The engine key it was compiled under.
    pub engine: String,
    /// The SHA-256 of the artifact, checked when its identity changed.
    pub sha256: String,
    /// The artifact file as install wrote it.
    #[serde(default)]
    pub identity: Option<crate::cache::FileIdentity>,
}

/// One installed plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installed {
    /// Its name (unique).
    pub name: String,
    /// `sha256:…` of the component.
    pub digest: String,
    /// The world version it was built against.
    pub world: String,
    /// The hooks it exports.
    pub hooks: Vec<String>,
    /// Its imports, for inspect.
    #[serde(default)]
    pub imports: Vec<String>,
    /// Lower runs first.
    pub priority: i32,
    /// Disabled plugins are kept but not called.
    pub enabled: bool,
    /// The file or reference it was installed from.
    pub source: String,
    /// Seconds since the epoch when it was installed.
    pub installed: u64,
    /// The component's size in bytes.
    pub size: u64,
    /// Its compiled artifact, made at install.
    pub compiled: Compiled,
    /// Artifacts made later for other engines (another skiff version sharing this home), so
    /// that two versions never recompile each other's copies away.
    #[serde(default)]
    pub also_compiled: Vec<Compiled>,
    /// The grants its manifest asks for.
    #[serde(default)]
    pub wants: Vec<String>,
    /// The last failure of one of its hooks, for `plugin ls`.
    #[serde(default)]
    pub last_error: Option<String>,
}

impl Installed {
    /// Whether it exports `hook`.
    pub fn has(&self, hook: crate::Hook) -> bool {
        self.hooks.iter().any(|h| h == hook.as_str())
    }

    /// The artifact made for the engine with `key`, if any.
    pub fn compiled_for(&self, key: &str) -> Option<&Compiled> {
        std::iter::once(&self.compiled)
            .chain(&self.also_compiled)
            .find(|c| c.engine == key)
    }

    /// Every artifact recorded for it.
    pub fn all_compiled(&self) -> impl Iterator<Item = &Compiled> {
        std::iter::once(&self.compiled).chain(&self.also_compiled)
    }

    /// The digest's hex.
    pub fn digest_hex(&self) -> &str {
        self.digest.strip_prefix("sha256:").unwrap_or(&self.digest)
    }
}

/// Checks a plugin name: it becomes a file name and a config.toml key.
pub fn check_name(name: &str) -> Result<(), PluginError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(PluginError::BadName(name.to_string()))
    }
}

/// The plugin directory: the list, its lock and the components.
pub struct PluginDir {
    dir: PathBuf,
}

impl PluginDir {
    /// The plugins under `dir` (`$XDG_DATA_HOME/skiff/plugins`).
    pub fn new(dir: PathBuf) -> PluginDir {
        PluginDir { dir }
    }

    fn list_path(&self) -> PathBuf {
        self.dir.join("plugins.json")
    }

    /// Where a component's bytes are kept.
    pub fn component_path(&self, digest_hex: &str) -> PathBuf {
        self.dir
            .join("components")
            .join(format!("{digest_hex}.wasm"))
    }

    /// The installed plugins in calling order (priority, then name); none when nothing was
    /// ever installed. This is the one read a `skiff run` without plugins pays for.
    pub fn list(&self) -> Result<Vec<Installed>, PluginError> {
        let path = self.list_path();
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(PluginError::io(format!("reading {}", path.display()), e)),
        };
        let mut list: Vec<Installed> =
            serde_json::from_slice(&text).map_err(|e| PluginError::List {
                path: path.clone(),
                why: e.to_string(),
            })?;
        sort(&mut list);
        Ok(list)
    }

    /// Changes the list under the lock: `f` sees the current list and may edit it; the result
    /// is written atomically only if `f` succeeds.
    pub fn update<T>(
        &self,
        f: impl FnOnce(&mut Vec<Installed>) -> Result<T, PluginError>,
    ) -> Result<T, PluginError> {
        files::private_dir(&self.dir)?;
        let _lock = files::Lock::acquire(&self.dir.join("plugins.lock"))?;
        let mut list = self.list()?;
        let out = f(&mut list)?;
        sort(&mut list);
        let text = serde_json::to_vec_pretty(&list).map_err(|e| PluginError::List {
            path: self.list_path(),
            why: e.to_string(),
        })?;
        files::write_atomic(&self.list_path(), &text)?;
        Ok(out)
    }

    /// Keeps a component's bytes by digest (idempotent).
    pub fn keep_component(&self, digest_hex: &str, bytes: &[u8]) -> Result<PathBuf, PluginError> {
        let path = self.component_path(digest_hex);
        if let Some(parent) = path.parent() {
            files::private_dir(parent)?;
        }
        if !path.exists() {
            files::write_atomic(&path, bytes)?;
        }
        Ok(path)
    }

    /// Removes the components no entry of `list` uses.
    pub fn prune_components(&self, list: &[Installed]) {
        let Ok(entries) = std::fs::read_dir(self.dir.join("components")) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let used = list
                .iter()
                .any(|i| p == self.component_path(i.digest_hex()));
            if !used {
                let _ = std::fs::remove_file(&p);
            }
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn sort(list: &mut [Installed]) {
    list.sort_by(|a, b| (a.priority, &a.name).cmp(&(b.priority, &b.name)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, priority: i32) -> Installed {
        Installed {
            name: name.into(),
            digest: "sha256:00".into(),
            world: "0.2.0".into(),
            hooks: vec!["before-pull".into()],
            imports: vec![],
            priority,
            enabled: true,
            source: "x.wasm".into(),
            installed: 0,
            size: 1,
            compiled: Compiled {
                engine: "k".into(),
                sha256: "s".into(),
                identity: None,
            },
            wants: vec![],
            last_error: None,
            also_compiled: vec![],
        }
    }

    #[test]
    fn the_list_keeps_priority_then_name_order_and_a_failed_change_writes_nothing() {
        let t = tempfile::tempdir().unwrap();
        let d = PluginDir::new(t.path().join("plugins"));
        assert!(d.list().unwrap().is_empty());
        d.update(|l| {
            l.push(entry("b", 50));
            l.push(entry("a", 50));
            l.push(entry("z", 10));
            Ok(())
        })
        .unwrap();
        let names: Vec<_> = d.list().unwrap().into_iter().map(|i| i.name).collect();
        assert_eq!(names, ["z", "a", "b"]);
        let r: Result<(), _> = d.update(|l| {
            l.clear();
            Err(PluginError::NotInstalled("x".into()))
        });
        assert!(r.is_err());
        assert_eq!(d.list().unwrap().len(), 3);
    }

    #[test]
    fn names_are_file_and_key_safe() {
        for ok in ["mirror", "a-b_c", "9x"] {
            check_name(ok).unwrap();
        }
        for bad in ["", "-x", "A", "a/b", "a.b", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
