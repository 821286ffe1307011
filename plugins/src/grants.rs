//! What a plugin may reach beyond its sandbox, granted per plugin: host directories (read-only or
//! read-write, preopened at the same path inside it), named environment variables, and the
//! powers that let its edits widen what a container may do. Spelled the same in config.toml's
//! `grants = [...]` and on `plugin install --grant`.

use std::collections::BTreeSet;
use std::path::PathBuf;

/// An edit's power that widens a container beyond what its user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Power {
    /// Adding host bind mounts.
    BindMounts,
    /// Adding capabilities.
    Capabilities,
    /// Turning on `--privileged`.
    Privileged,
    /// Putting the container on the host's network.
    HostNetwork,
    /// Running it as another user.
    User,
}

impl Power {
    /// Every power.
    pub const ALL: [Power; 5] = [
        Power::BindMounts,
        Power::Capabilities,
        Power::Privileged,
        Power::HostNetwork,
        Power::User,
    ];

    /// The grant's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Power::BindMounts => "bind-mounts",
            Power::Capabilities => "capabilities",
            Power::Privileged => "privileged",
            Power::HostNetwork => "host-network",
            Power::User => "user",
        }
    }
}

/// One grant.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Grant {
    /// A host directory the plugin may read (`dir-ro=PATH`).
    DirRo(PathBuf),
    /// A host directory the plugin may read and write (`dir-rw=PATH`).
    DirRw(PathBuf),
    /// A host environment variable it may see (`env=NAME`).
    Env(String),
    /// An adjustment power.
    Power(Power),
}

impl Grant {
    /// Reads one grant as written in config.toml or on `--grant`.
    pub fn parse(s: &str) -> Result<Grant, String> {
        let all = "dir-ro=PATH, dir-rw=PATH, env=NAME, bind-mounts, capabilities, privileged, host-network or user";
        if let Some((kind, value)) = s.split_once('=') {
            let dir = |v: &str| -> Result<PathBuf, String> {
                let p = PathBuf::from(v);
                if !p.is_absolute() || p.components().any(|c| c.as_os_str() == "..") {
                    return Err(format!(
                        "grant {s:?} needs an absolute host directory without '..'"
                    ));
                }
                Ok(p)
            };
            return match kind {
                "dir-ro" => dir(value).map(Grant::DirRo),
                "dir-rw" => dir(value).map(Grant::DirRw),
                "env" if !value.is_empty() && !value.contains('=') => {
                    Ok(Grant::Env(value.to_string()))
                }
                "env" => Err(format!("grant {s:?} needs a variable name: env=NAME")),
                _ => Err(format!("unknown grant {s:?}: use {all}")),
            };
        }
        Power::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .map(Grant::Power)
            .ok_or_else(|| format!("unknown grant {s:?}: use {all}"))
    }
}

impl std::fmt::Display for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Grant::DirRo(p) => write!(f, "dir-ro={}", p.display()),
            Grant::DirRw(p) => write!(f, "dir-rw={}", p.display()),
            Grant::Env(n) => write!(f, "env={n}"),
            Grant::Power(p) => f.write_str(p.as_str()),
        }
    }
}

/// Everything granted to one plugin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants(pub BTreeSet<Grant>);

impl Grants {
    /// Reads a list of grant strings.
    pub fn parse<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<Grants, String> {
        items
            .into_iter()
            .map(Grant::parse)
            .collect::<Result<_, _>>()
            .map(Grants)
    }

    /// Whether the plugin may use `power`.
    pub fn has(&self, power: Power) -> bool {
        self.0.contains(&Grant::Power(power))
    }

    /// The directories to preopen, with whether each is writable.
    pub fn dirs(&self) -> impl Iterator<Item = (&PathBuf, bool)> {
        self.0.iter().filter_map(|g| match g {
            Grant::DirRo(p) => Some((p, false)),
            Grant::DirRw(p) => Some((p, true)),
            _ => None,
        })
    }

    /// The environment variable names granted.
    pub fn env(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|g| match g {
            Grant::Env(n) => Some(n.as_str()),
            _ => None,
        })
    }

    /// Whether nothing is granted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The grants as strings, for listings.
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

/// The grants a plugin's manifest asks for: `NAME.toml` beside `NAME.wasm`, holding
/// `grants = ["dir-rw=/var/log/audit", …]`. No manifest asks for nothing.
pub fn manifest_grants(component: &std::path::Path) -> Result<Vec<String>, crate::PluginError> {
    let manifest = component.with_extension("toml");
    let bad = |what: String| crate::PluginError::Config {
        path: manifest.display().to_string(),
        plugin: "manifest".into(),
        what,
    };
    let text = match std::fs::read_to_string(&manifest) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(crate::PluginError::io(
                format!("reading {}", manifest.display()),
                e,
            ))
        }
    };
    let t: toml::Table = toml::from_str(&text).map_err(|e| bad(e.message().to_string()))?;
    let list: Vec<String> = match t.get("grants") {
        None => Vec::new(),
        Some(toml::Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(String::from))
            .collect::<Option<_>>()
            .ok_or_else(|| bad("grants must be a list of strings".into()))?,
        Some(_) => return Err(bad("grants must be a list of strings".into())),
    };
    Grants::parse(list.iter().map(String::as_str)).map_err(bad)?;
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_parse_and_print_the_same() {
        for s in [
            "dir-ro=/etc/skiff",
            "dir-rw=/var/log/a",
            "env=TZ",
            "privileged",
            "user",
        ] {
            assert_eq!(Grant::parse(s).unwrap().to_string(), s);
        }
        for bad in ["dir-rw=rel", "dir-ro=/a/../b", "env=", "root", "net=1"] {
            assert!(Grant::parse(bad).is_err(), "{bad}");
        }
        let g = Grants::parse(["env=A", "bind-mounts"]).unwrap();
        assert!(g.has(Power::BindMounts) && !g.has(Power::Privileged));
        assert_eq!(g.env().collect::<Vec<_>>(), ["A"]);
    }
}
