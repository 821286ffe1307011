//! Writing grants into config.toml: `plugin install` records what the user granted under
//! `[plugins.NAME] grants`, keeping the rest of the file (comments and order included) as it
//! was, atomically and under a lock so two installs never lose each other's lines.

use std::path::Path;

use crate::error::PluginError;
use crate::files;

/// Adds `grants` to `[plugins.NAME] grants` in `config_file` (created if missing).
pub fn add_grants(config_file: &Path, plugin: &str, grants: &[String]) -> Result<(), PluginError> {
    edit(config_file, |doc| {
        let table = doc
            .entry("plugins")
            .or_insert_with(|| {
                let mut t = toml_edit::Table::new();
                t.set_implicit(true);
                toml_edit::Item::Table(t)
            })
            .as_table_mut()
            .ok_or("plugins is not a table")?
            .entry(plugin)
            .or_insert_with(toml_edit::table)
            .as_table_mut()
            .ok_or("the plugin's entry is not a table")?;
        let list = table
            .entry("grants")
            .or_insert_with(|| toml_edit::value(toml_edit::Array::new()))
            .as_array_mut()
            .ok_or("grants is not a list")?;
        for g in grants {
            if !list.iter().any(|v| v.as_str() == Some(g.as_str())) {
                list.push(g.as_str());
            }
        }
        Ok(())
    })
}

/// Drops `[plugins.NAME] grants` (the user's other settings for it stay).
pub fn remove_grants(config_file: &Path, plugin: &str) -> Result<(), PluginError> {
    if !config_file.exists() {
        return Ok(());
    }
    edit(config_file, |doc| {
        if let Some(t) = doc
            .get_mut("plugins")
            .and_then(|p| p.get_mut(plugin))
            .and_then(|t| t.as_table_like_mut())
        {
            t.remove("grants");
        }
        Ok(())
    })
}

fn edit(
    config_file: &Path,
    f: impl FnOnce(&mut toml_edit::DocumentMut) -> Result<(), &'static str>,
) -> Result<(), PluginError> {
    let dir = config_file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .map_err(|e| PluginError::io(format!("creating {}", dir.display()), e))?;
    let _lock = files::Lock::acquire(&dir.join(".config.toml.lock"))?;
    let text = match std::fs::read_to_string(config_file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(PluginError::io(
                format!("reading {}", config_file.display()),
                e,
            ))
        }
    };
    let bad = |what: String| PluginError::Config {
        path: config_file.display().to_string(),
        plugin: "…".into(),
        what,
    };
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| bad(e.to_string().replace('\n', " ")))?;
    f(&mut doc).map_err(|w| bad(w.to_string()))?;
    files::write_atomic(config_file, doc.to_string().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_are_added_once_and_the_rest_of_the_file_kept() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("config.toml");
        std::fs::write(&f, "# mine\n[logs]\nmax_size = \"1MB\"\n").unwrap();
        add_grants(&f, "audit", &["dir-rw=/tmp/a".into()]).unwrap();
        add_grants(&f, "audit", &["dir-rw=/tmp/a".into(), "env=TZ".into()]).unwrap();
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(text.starts_with("# mine\n[logs]"), "{text}");
        let v: toml::Table = toml::from_str(&text).unwrap();
        let g = v["plugins"]["audit"]["grants"].as_array().unwrap();
        assert_eq!(g.len(), 2, "{text}");
        remove_grants(&f, "audit").unwrap();
        let v: toml::Table = toml::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        assert!(v["plugins"]["audit"].get("grants").is_none());
    }
}
