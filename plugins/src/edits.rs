//! Typed adjustments from before-create, merged across plugins as NRI does: each edit touches a
//! key (`env:NAME`, `label:NAME`, `mount:/dst`, `args`, …); the first plugin to touch a key owns
//! it, and a second plugin touching the same key is an error naming both. An edit that widens
//! what the container may do needs the plugin to hold that power, or it is refused by name.

use std::collections::BTreeMap;

use crate::bindings::wit::{Edit, MountKind};
use crate::grants::{Grants, Power};

/// The key an edit touches.
pub fn key(edit: &Edit) -> String {
    match edit {
        Edit::SetEnv((k, _)) | Edit::RemoveEnv(k) => format!("env:{k}"),
        Edit::SetLabel((k, _)) | Edit::RemoveLabel(k) => format!("label:{k}"),
        Edit::AddMount(m) => format!("mount:{}", m.destination),
        Edit::RemoveMount(d) => format!("mount:{d}"),
        Edit::SetArgs(_) => "args".into(),
        Edit::SetHostname(_) => "hostname".into(),
        Edit::SetUser(_) => "user".into(),
        Edit::SetWorkdir(_) => "workdir".into(),
        Edit::SetMemory(_) => "memory".into(),
        Edit::SetPids(_) => "pids".into(),
        Edit::SetCpuMicros(_) => "cpus".into(),
        Edit::AddCapability(c) | Edit::DropCapability(c) => {
            format!("cap:{}", c.to_ascii_uppercase().trim_start_matches("CAP_"))
        }
        Edit::SetPrivileged(_) => "privileged".into(),
        Edit::SetNetwork(_) => "network".into(),
        Edit::SetReadOnly(_) => "read-only".into(),
    }
}

/// The power an edit needs, if it widens the container.
pub fn power(edit: &Edit) -> Option<Power> {
    match edit {
        Edit::AddMount(m) if m.kind == MountKind::Bind => Some(Power::BindMounts),
        Edit::AddCapability(_) => Some(Power::Capabilities),
        Edit::SetPrivileged(true) => Some(Power::Privileged),
        Edit::SetNetwork(n) if n == "host" => Some(Power::HostNetwork),
        Edit::SetUser(_) => Some(Power::User),
        _ => None,
    }
}

/// Why a set of edits cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    /// Two plugins touched one key.
    #[error("plugins {first} and {second} both change {key}: give one of them a lower priority or disable it (`skiff plugin disable NAME`)")]
    Clash {
        /// The key.
        key: String,
        /// Its owner.
        first: String,
        /// The second plugin.
        second: String,
    },
    /// An edit needs a power the plugin was not granted.
    #[error("plugin {plugin} tried to change {key}, which needs the {power} grant: add \"{power}\" to grants in [plugins.{plugin}] of config.toml if you trust it")]
    Ungranted {
        /// The plugin.
        plugin: String,
        /// The key.
        key: String,
        /// The missing power.
        power: &'static str,
    },
}

/// The edits of every plugin so far, with who owns each key.
#[derive(Debug, Clone, Default)]
pub struct Adjustments {
    /// Each plugin's edits, in the order plugins ran.
    pub edits: Vec<(String, Edit)>,
    /// Key → owning plugin.
    pub owners: BTreeMap<String, String>,
}

impl Adjustments {
    /// Adds one plugin's edits, checking its grants and every key's owner first, so that a
    /// refused set leaves the adjustments as they were.
    pub fn add(
        &mut self,
        plugin: &str,
        grants: &Grants,
        edits: Vec<Edit>,
    ) -> Result<(), EditError> {
        for e in &edits {
            let k = key(e);
            if let Some(p) = power(e) {
                if !grants.has(p) {
                    return Err(EditError::Ungranted {
                        plugin: plugin.to_string(),
                        key: k,
                        power: p.as_str(),
                    });
                }
            }
            if let Some(owner) = self.owners.get(&k) {
                if owner != plugin {
                    return Err(EditError::Clash {
                        key: k,
                        first: owner.clone(),
                        second: plugin.to_string(),
                    });
                }
            }
        }
        for e in edits {
            self.owners.insert(key(&e), plugin.to_string());
            self.edits.push((plugin.to_string(), e));
        }
        Ok(())
    }

    /// Which plugin set which key, as validate and inspect see it.
    pub fn changes(&self) -> Vec<crate::bindings::wit::Change> {
        self.owners
            .iter()
            .map(|(key, plugin)| crate::bindings::wit::Change {
                key: key.clone(),
                plugin: plugin.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_plugin_on_a_key_is_named_with_the_first() {
        let mut a = Adjustments::default();
        let g = Grants::default();
        a.add("one", &g, vec![Edit::SetLabel(("team".into(), "a".into()))])
            .unwrap();
        a.add("one", &g, vec![Edit::RemoveLabel("team".into())])
            .unwrap();
        let e = a
            .add("two", &g, vec![Edit::SetLabel(("team".into(), "b".into()))])
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("plugins one and two both change label:team"),
            "{e}"
        );
        assert_eq!(a.edits.len(), 2);
    }

    #[test]
    fn widening_edits_need_their_grant() {
        let mut a = Adjustments::default();
        let e = a
            .add("p", &Grants::default(), vec![Edit::SetPrivileged(true)])
            .unwrap_err();
        assert!(e.to_string().contains("needs the privileged grant"), "{e}");
        a.add("p", &Grants::default(), vec![Edit::SetPrivileged(false)])
            .unwrap();
        let g = Grants::parse(["capabilities"]).unwrap();
        a.add("q", &g, vec![Edit::AddCapability("net_admin".into())])
            .unwrap();
        assert_eq!(a.owners["cap:NET_ADMIN"], "q");
    }
}
