//! The installed plugins as skiff's lifecycle hooks. A command reads the plugin list once (a
//! missing list is the whole cost of having no plugins); the wasmtime engine is made, and each
//! plugin loaded from its verified compiled copy, only when a hook it exports is reached. A
//! failing hook stops the operation or warns, per the plugin's `on_error`, and is remembered as
//! its last error for `plugin ls`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{Arc, OnceLock};

use anyhow::Result;
use skiff_plugins::bindings::wit;
use skiff_plugins::cache::Cache;
use skiff_plugins::edits::Adjustments;
use skiff_plugins::installed::{Installed, PluginDir};
use skiff_plugins::settings::PluginConfig;
use skiff_plugins::{CallError, Hook, Host, Loaded};
use skiff_runtime::hooks::{ExitEvent, HookError, Hooks, PullDecision, StartEvent};
use skiff_runtime::spec::ContainerSpec;
use skiff_store::Dirs;

use super::plugin_spec;

/// The plugin directory of this user.
pub fn plugin_dir(dirs: &Dirs) -> PluginDir {
    PluginDir::new(dirs.data.join("plugins"))
}

/// The compiled-plugin cache of this user.
pub fn cache(dirs: &Dirs) -> Cache {
    Cache::new(dirs.cache.join("plugins"))
}

/// Whether plugin debug lines are shown (`--log-level debug`).
pub fn debug() -> bool {
    std::env::var("SKIFF_LOG_LEVEL").is_ok_and(|l| l == "debug")
}

/// The engine, with plugin log lines going to stderr tagged with the plugin's name.
pub fn host() -> Result<&'static Host> {
    static HOST: OnceLock<Host> = OnceLock::new();
    if let Some(h) = HOST.get() {
        return Ok(h);
    }
    let show_debug = debug();
    let h = Host::new(Arc::new(
        move |plugin: &str, level: wit::Level, msg: &str| {
            // Never a panic here (eprintln! panics on a closed stderr): this runs inside a
            // guest call, whose frames carry no unwind tables.
            let line = match level {
                wit::Level::Error => format!("plugin {plugin}: error: {msg}\n"),
                wit::Level::Warn => format!("plugin {plugin}: warning: {msg}\n"),
                wit::Level::Info => format!("plugin {plugin}: {msg}\n"),
                wit::Level::Debug if show_debug => format!("plugin {plugin}: debug: {msg}\n"),
                wit::Level::Debug => return,
            };
            let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
        },
    ))?;
    Ok(HOST.get_or_init(|| h))
}

/// Each plugin's `[plugins.NAME]` settings from config.toml, typed.
pub fn configs(dirs: &Dirs) -> Result<BTreeMap<String, PluginConfig>> {
    let cfg = skiff_store::config::Config::load(&dirs.config)?;
    let path = dirs.config.join("config.toml").display().to_string();
    cfg.plugins
        .iter()
        .map(|(name, table)| Ok((name.clone(), PluginConfig::from_table(name, table, &path)?)))
        .collect()
}

/// Loads an installed plugin (recompiling it, with a note, when its compiled copy is stale).
pub fn load(dirs: &Dirs, entry: &Installed, config: PluginConfig) -> Result<Loaded> {
    Ok(skiff_plugins::loader::load(
        host()?,
        &plugin_dir(dirs),
        &cache(dirs),
        entry,
        config,
        &|n| eprintln!("note: {n}"),
    )?)
}

/// The enabled plugins of this user as hooks.
pub struct PluginHooks {
    dirs: Dirs,
    list: Vec<Installed>,
    configs: BTreeMap<String, PluginConfig>,
    loaded: RefCell<BTreeMap<String, Rc<Loaded>>>,
}

impl PluginHooks {
    /// The enabled plugins, or none when there are none (the no-plugin fast path).
    pub fn open(dirs: &Dirs) -> Result<Option<PluginHooks>> {
        let list: Vec<Installed> = plugin_dir(dirs)
            .list()?
            .into_iter()
            .filter(|p| p.enabled)
            .collect();
        if list.is_empty() {
            return Ok(None);
        }
        Ok(Some(PluginHooks {
            dirs: dirs.clone(),
            list,
            configs: configs(dirs)?,
            loaded: RefCell::new(BTreeMap::new()),
        }))
    }

    fn config(&self, name: &str) -> PluginConfig {
        self.configs.get(name).cloned().unwrap_or_default()
    }

    fn with(&self, hook: Hook) -> impl Iterator<Item = &Installed> {
        self.list.iter().filter(move |p| p.has(hook))
    }

    /// Calls `hook` of plugin `p`: its result, or (the failure being allowed by its policy) none
    /// after a warning, or the failure.
    fn call<T>(
        &self,
        hook: Hook,
        p: &Installed,
        f: impl FnOnce(&Loaded) -> Result<T, CallError>,
    ) -> Result<Option<T>, HookError> {
        let config = self.config(&p.name);
        let loaded = self.loaded.borrow().get(&p.name).cloned();
        let result = match loaded {
            Some(l) => f(&l).map_err(|e| e.to_string()),
            None => match load(&self.dirs, p, config.clone()) {
                Ok(l) => {
                    let l = Rc::new(l);
                    self.loaded.borrow_mut().insert(p.name.clone(), l.clone());
                    f(&l).map_err(|e| e.to_string())
                }
                Err(e) => Err(crate::output::one_line(&e)),
            },
        };
        match result {
            Ok(v) => Ok(Some(v)),
            Err(cause) => {
                remember_failure(&self.dirs, &p.name, hook, &cause);
                if config.fails_closed(hook) {
                    Err(HookError::Failed {
                        hook: hook.as_str(),
                        by: p.name.clone(),
                        cause: format!(
                            "{cause} (set on_error = \"ignore\" in [plugins.{}] of config.toml to go on regardless, or `skiff plugin disable {}`)",
                            p.name, p.name
                        ),
                    })
                } else {
                    eprintln!(
                        "WARNING: plugin {}: {hook} hook failed: {cause}; going on",
                        p.name
                    );
                    Ok(None)
                }
            }
        }
    }
}

/// Records a hook failure as the plugin's last error (best effort: a failure to record it must
/// not hide the failure itself).
fn remember_failure(dirs: &Dirs, name: &str, hook: Hook, cause: &str) {
    let line = format!("{hook}: {cause}");
    let _ = plugin_dir(dirs).update(|list| {
        if let Some(e) = list.iter_mut().find(|e| e.name == name) {
            e.last_error = Some(line);
        }
        Ok(())
    });
}

impl Hooks for PluginHooks {
    fn before_pull(&self, reference: &str) -> Result<PullDecision, HookError> {
        let mut current = reference.to_string();
        for p in self.with(Hook::BeforePull) {
            match self.call(Hook::BeforePull, p, |l| l.before_pull(&current))? {
                Some(wit::PullDecision::Rewrite(to)) => current = to,
                Some(wit::PullDecision::Deny(reason)) => {
                    return Err(HookError::Denied {
                        hook: "before-pull",
                        by: p.name.clone(),
                        reason,
                    })
                }
                Some(wit::PullDecision::Keep) | None => {}
            }
        }
        Ok(if current == reference {
            PullDecision::Keep
        } else {
            PullDecision::Rewrite(current)
        })
    }

    fn before_create(&self, name: Option<&str>, spec: &mut ContainerSpec) -> Result<(), HookError> {
        let mut adj = Adjustments::default();
        if self.with(Hook::BeforeCreate).next().is_some() {
            let asked = plugin_spec::to_wit(name, spec);
            for p in self.with(Hook::BeforeCreate) {
                spec.plugins.entry(p.name.clone()).or_default();
                match self.call(Hook::BeforeCreate, p, |l| l.before_create(&asked))? {
                    Some(wit::CreateDecision::Allow(edits)) => {
                        let grants = self.config(&p.name).grants;
                        adj.add(&p.name, &grants, edits)
                            .map_err(|e| HookError::Edits(e.to_string()))?;
                    }
                    Some(wit::CreateDecision::Deny(reason)) => {
                        return Err(HookError::Denied {
                            hook: "before-create",
                            by: p.name.clone(),
                            reason,
                        })
                    }
                    None => {}
                }
            }
        }
        if !adj.edits.is_empty() {
            let containers = skiff_runtime::Containers::open(&self.dirs)
                .map_err(|e| HookError::Edits(e.to_string()))?;
            for (plugin, edit) in std::mem::take(&mut adj.edits) {
                let key = skiff_plugins::edits::key(&edit);
                spec.adjust(plugin_spec::adjustment(edit), &containers)
                    .map_err(|e| {
                        HookError::Edits(format!(
                            "plugin {plugin}'s change of {key} is invalid: {e}"
                        ))
                    })?;
                spec.plugins.entry(plugin).or_default().push(key);
            }
        }
        if self.with(Hook::Validate).next().is_some() {
            let fin = plugin_spec::to_wit(name, spec);
            let changes = adj.changes();
            for p in self.with(Hook::Validate) {
                spec.plugins.entry(p.name.clone()).or_default();
                if let Some(wit::Verdict::Deny(reason)) =
                    self.call(Hook::Validate, p, |l| l.validate(&fin, &changes))?
                {
                    return Err(HookError::Denied {
                        hook: "validate",
                        by: p.name.clone(),
                        reason,
                    });
                }
            }
        }
        Ok(())
    }

    fn observes(&self) -> bool {
        self.list
            .iter()
            .any(|p| p.has(Hook::AfterStart) || p.has(Hook::AfterExit))
    }

    fn after_start(&self, event: &StartEvent) {
        let e = plugin_spec::start_event(event);
        for p in self.with(Hook::AfterStart) {
            let _ = self.call(Hook::AfterStart, p, |l| l.after_start(&e));
        }
    }

    fn after_exit(&self, event: &ExitEvent) {
        let e = plugin_spec::exit_event(event);
        for p in self.with(Hook::AfterExit) {
            let _ = self.call(Hook::AfterExit, p, |l| l.after_exit(&e));
        }
    }
}

/// Where a plugin's component and compiled copy are, for inspect.
pub fn paths(dirs: &Dirs, entry: &Installed) -> (PathBuf, PathBuf) {
    (
        plugin_dir(dirs).component_path(entry.digest_hex()),
        cache(dirs).path(entry.digest_hex(), &entry.compiled.engine),
    )
}
