//! A plugin's `[plugins.NAME]` table in config.toml: its failure policy, limits, grants and its
//! own settings, typed here once so a wrong key or value is one clear error naming the file.
//!
//! ```toml
//! [plugins.audit]
//! on_error = "ignore"              # or "deny"; default: decision hooks deny, observers warn
//! timeout_ms = 500                 # per call; default 300
//! memory_mib = 64                  # per call; default 64
//! grants = ["dir-rw=/var/log/skiff-audit", "env=TZ"]
//!
//! [plugins.audit.settings]         # what the plugin reads through host.settings()
//! dir = "/var/log/skiff-audit"
//! ```

use std::collections::BTreeMap;

use crate::error::PluginError;
use crate::grants::Grants;
use crate::limits::Limits;

/// What happens when a hook fails (traps, times out, runs out of memory, returns nonsense).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// The operation stops, as if the plugin had denied it.
    Deny,
    /// A warning is printed and the operation goes on.
    Ignore,
}

/// One plugin's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginConfig {
    /// `on_error`; none means decision hooks deny and observation hooks warn.
    pub on_error: Option<OnError>,
    /// Per-call limits.
    pub limits: Limits,
    /// What it may reach.
    pub grants: Grants,
    /// `[plugins.NAME.settings]`, values as strings.
    pub settings: BTreeMap<String, String>,
}

impl PluginConfig {
    /// Types `[plugins.NAME]`; `path` is config.toml's, for the message.
    pub fn from_table(
        name: &str,
        table: &toml::Table,
        path: &str,
    ) -> Result<PluginConfig, PluginError> {
        let bad = |what: String| PluginError::Config {
            path: path.to_string(),
            plugin: name.to_string(),
            what,
        };
        let mut c = PluginConfig::default();
        for (key, value) in table {
            match (key.as_str(), value) {
                ("on_error", toml::Value::String(s)) if s == "deny" => {
                    c.on_error = Some(OnError::Deny)
                }
                ("on_error", toml::Value::String(s)) if s == "ignore" => {
                    c.on_error = Some(OnError::Ignore)
                }
                ("on_error", v) => {
                    return Err(bad(format!(
                        "on_error = {v} is not a policy: use \"deny\" or \"ignore\""
                    )))
                }
                ("timeout_ms", toml::Value::Integer(n)) if (1..=60_000).contains(n) => {
                    c.limits.timeout_ms = *n as u64
                }
                ("timeout_ms", v) => {
                    return Err(bad(format!(
                        "timeout_ms = {v}: use a number of milliseconds from 1 to 60000"
                    )))
                }
                ("memory_mib", toml::Value::Integer(n)) if (1..=4096).contains(n) => {
                    c.limits.memory_mib = *n as u64
                }
                ("memory_mib", v) => {
                    return Err(bad(format!(
                        "memory_mib = {v}: use a number of MiB from 1 to 4096"
                    )))
                }
                ("grants", toml::Value::Array(items)) => {
                    let strs: Option<Vec<&str>> = items.iter().map(|v| v.as_str()).collect();
                    let strs = strs.ok_or_else(|| bad("grants must be a list of strings".into()))?;
                    c.grants = Grants::parse(strs).map_err(bad)?;
                }
                ("grants", _) => return Err(bad("grants must be a list of strings".into())),
                ("settings", toml::Value::Table(t)) => {
                    for (k, v) in t {
                        let s = match v {
                            toml::Value::String(s) => s.clone(),
                            toml::Value::Integer(_)
                            | toml::Value::Float(_)
                            | toml::Value::Boolean(_) => v.to_string(),
                            _ => {
                                return Err(bad(format!(
                                    "settings.{k} must be a string, number or boolean"
                                )))
                            }
                        };
                        c.settings.insert(k.clone(), s);
                    }
                }
                ("settings", _) => return Err(bad("settings must be a table".into())),
                (other, _) => {
                    return Err(bad(format!(
                        "unknown key {other:?}: use on_error, timeout_ms, memory_mib, grants or settings"
                    )))
                }
            }
        }
        Ok(c)
    }

    /// Whether a failure of `hook` stops the operation.
    pub fn fails_closed(&self, hook: crate::Hook) -> bool {
        hook.decides() && self.on_error != Some(OnError::Ignore)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<PluginConfig, PluginError> {
        let t: toml::Table = toml::from_str(text).unwrap();
        PluginConfig::from_table("p", &t, "config.toml")
    }

    #[test]
    fn reads_every_key_and_names_the_wrong_one() {
        let c = parse(
            "on_error = \"ignore\"\ntimeout_ms = 50\nmemory_mib = 8\ngrants = [\"env=TZ\"]\n[settings]\nmirror = \"m:5000\"\nn = 3\n",
        )
        .unwrap();
        assert_eq!(c.on_error, Some(OnError::Ignore));
        assert_eq!((c.limits.timeout_ms, c.limits.memory_mib), (50, 8));
        assert_eq!(c.settings["mirror"], "m:5000");
        assert_eq!(c.settings["n"], "3");
        assert!(!c.fails_closed(crate::Hook::BeforePull));
        for (bad, says) in [
            ("on_error = \"maybe\"", "not a policy"),
            ("timeout_ms = 0", "timeout_ms"),
            ("grants = [\"root\"]", "unknown grant"),
            ("colour = 1", "unknown key \"colour\""),
            ("[settings]\nx = [1]", "settings.x"),
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(
                e.starts_with("config.toml: [plugins.p] ") && e.contains(says),
                "{e}"
            );
        }
    }

    #[test]
    fn decision_hooks_fail_closed_by_default() {
        let c = PluginConfig::default();
        assert!(c.fails_closed(crate::Hook::BeforeCreate));
        assert!(!c.fails_closed(crate::Hook::AfterStart));
    }
}
