//! The installed plugins as skiff's lifecycle hooks. A command reads the plugin list once (a
//! missing list is the whole cost of having no plugins); the wasmtime engine is made, and each
//! plugin loaded from its verified compiled copy, only when a hook it exports is reached — or,
//! for the hooks a command says it will reach, ahead on two worker threads while the command
//! does its own work: each plugin loaded, and one fresh instance made per expected call. A
//! failing hook stops the operation or warns, per the plugin's `on_error`, and is remembered as
//! its last error for `plugin ls`.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, OnceLock};

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

/// The engine, with plugin log lines going to stderr tagged with the plugin's name. Made once
/// per process (a second thread asking meanwhile waits for it).
pub fn host() -> Result<&'static Host> {
    static HOST: OnceLock<std::result::Result<Host, String>> = OnceLock::new();
    HOST.get_or_init(|| new_host().map_err(|e| crate::output::one_line(&e)))
        .as_ref()
        .map_err(|e| anyhow::anyhow!("{e}"))
}

fn new_host() -> Result<Host> {
    let show_debug = debug();
    Ok(Host::new(Arc::new(
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
    ))?)
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

/// Below this many bytes of components in all, plugins are not loaded ahead.
const AHEAD_MIN_BYTES: u64 = 1 << 20;

/// The enabled plugins of this user as hooks.
pub struct PluginHooks {
    shared: Arc<Shared>,
}

/// What the command and its workers share.
struct Shared {
    dirs: Dirs,
    list: Vec<Installed>,
    configs: BTreeMap<String, PluginConfig>,
    slots: BTreeMap<String, Slot>,
}

/// One plugin's loaded copy: made by the first hook that needs it, or by a worker.
#[derive(Default)]
struct Slot {
    state: Mutex<SlotState>,
    changed: Condvar,
}

#[derive(Default)]
enum SlotState {
    /// Not loaded (yet, or a worker left it to the hook: its compiled copy needs work, or it
    /// fails to load).
    #[default]
    Idle,
    /// A worker is loading it: wait.
    Loading,
    Loaded(Arc<Loaded>),
}

/// A worker's job: load plugin N of the list, or make one instance of it ahead.
enum Job {
    Load(usize),
    Instance(usize),
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
        let slots = list
            .iter()
            .map(|p| (p.name.clone(), Slot::default()))
            .collect();
        Ok(Some(PluginHooks {
            shared: Arc::new(Shared {
                dirs: dirs.clone(),
                list,
                configs: configs(dirs)?,
                slots,
            }),
        }))
    }

    /// Starts loading, on two worker threads, every plugin that exports one of `hooks`, and
    /// making one instance for each call those hooks will make (each hook is called once per
    /// plugin), the first needed first. Only a compiled copy that loads as it is is loaded
    /// ahead; anything else is left to its hook, which reports it as before.
    pub fn prepare(&self, hooks: &[Hook]) {
        let sh = &self.shared;
        let wanted: Vec<usize> = (0..sh.list.len())
            .filter(|&i| hooks.iter().any(|&h| sh.list[i].has(h)))
            .collect();
        // Small components load and instantiate in a fraction of a millisecond: handing them to
        // workers costs more than it saves (one 64 KB C plugin: +2.4 ms with workers, against
        // +0.8 to +1.5 ms without, `bench plugins`).
        let bytes: u64 = wanted.iter().map(|&i| sh.list[i].size).sum();
        if bytes < AHEAD_MIN_BYTES {
            return;
        }
        let mut loads = wanted.clone();
        // The biggest (the slowest to load) first.
        loads.sort_by_key(|&i| std::cmp::Reverse(sh.list[i].size));
        let mut jobs: VecDeque<Job> = loads.into_iter().map(Job::Load).collect();
        let mut per_plugin: BTreeMap<usize, usize> = BTreeMap::new();
        for &h in hooks {
            for &i in wanted.iter().filter(|&&i| sh.list[i].has(h)) {
                jobs.push_back(Job::Instance(i));
                *per_plugin.entry(i).or_default() += 1;
            }
        }
        for &i in &wanted {
            if let Ok(mut st) = sh.slots[&sh.list[i].name].state.lock() {
                *st = SlotState::Loading;
            }
        }
        let work = Arc::new(Work {
            jobs: Mutex::new(jobs),
            per_plugin,
        });
        let mut started = 0;
        for n in 0..2 {
            let (sh, work) = (sh.clone(), work.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("plugins-ahead-{n}"))
                .spawn(move || work.run(&sh));
            started += usize::from(spawned.is_ok());
        }
        if started == 0 {
            // No worker: the hooks load their plugins themselves.
            for &i in &wanted {
                sh.settle(i, SlotState::Idle);
            }
        }
    }

    fn config(&self, name: &str) -> PluginConfig {
        self.shared.config(name)
    }

    fn with(&self, hook: Hook) -> impl Iterator<Item = &Installed> {
        self.shared.list.iter().filter(move |p| p.has(hook))
    }

    /// Plugin `p` loaded: by a worker (waited for), or here and now.
    fn loaded(&self, p: &Installed) -> std::result::Result<Arc<Loaded>, String> {
        let mut st = self
            .shared
            .settled(&p.name)
            .ok_or_else(|| "a plugin worker failed".to_string())?;
        if let SlotState::Loaded(l) = &*st {
            return Ok(l.clone());
        }
        let l = load(&self.shared.dirs, p, self.config(&p.name))
            .map_err(|e| crate::output::one_line(&e))?;
        let l = Arc::new(l);
        *st = SlotState::Loaded(l.clone());
        Ok(l)
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
        let began = std::time::Instant::now();
        let result = self.loaded(p).and_then(|l| {
            let loaded = began.elapsed();
            let r = f(&l).map_err(|e| e.to_string());
            if debug() {
                // Where a command's plugin time goes, for authors and for `bench plugins`.
                let stats = l.last_stats();
                eprintln!(
                    "plugin {}: debug: {hook}: {:.2} ms waiting for its load, {:.2} ms in the call ({:.2} ms making its instance, {:.2} ms running)",
                    p.name,
                    loaded.as_secs_f64() * 1e3,
                    (began.elapsed() - loaded).as_secs_f64() * 1e3,
                    stats.instantiate.as_secs_f64() * 1e3,
                    (stats.elapsed - stats.instantiate).as_secs_f64() * 1e3,
                );
            }
            r
        });
        match result {
            Ok(v) => Ok(Some(v)),
            Err(cause) => {
                remember_failure(&self.shared.dirs, &p.name, hook, &cause);
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

impl Shared {
    fn config(&self, name: &str) -> PluginConfig {
        self.configs.get(name).cloned().unwrap_or_default()
    }

    /// Ends plugin N's loading by a worker, waking whoever waits for it.
    fn settle(&self, i: usize, to: SlotState) {
        let slot = &self.slots[&self.list[i].name];
        if let Ok(mut st) = slot.state.lock() {
            *st = to;
        }
        slot.changed.notify_all();
    }

    /// Plugin `name`'s slot, locked once no worker loads it any more (none if a worker
    /// panicked holding it).
    fn settled(&self, name: &str) -> Option<std::sync::MutexGuard<'_, SlotState>> {
        let slot = &self.slots[name];
        let mut st = slot.state.lock().ok()?;
        while matches!(*st, SlotState::Loading) {
            st = slot.changed.wait(st).ok()?;
        }
        Some(st)
    }

    /// Plugin N once no worker loads it any more: loaded, or none when it was left to its hook.
    fn wait_loaded(&self, i: usize) -> Option<Arc<Loaded>> {
        let st = self.settled(&self.list[i].name)?;
        match &*st {
            SlotState::Loaded(l) => Some(l.clone()),
            _ => None,
        }
    }
}

/// The workers' queue, and how many calls each plugin to load will get.
struct Work {
    jobs: Mutex<VecDeque<Job>>,
    per_plugin: BTreeMap<usize, usize>,
}

impl Work {
    /// One worker: takes jobs until none is left.
    fn run(&self, sh: &Shared) {
        loop {
            let job = match self.jobs.lock() {
                Ok(mut q) => q.pop_front(),
                Err(_) => None,
            };
            match job {
                None => return,
                Some(Job::Load(i)) => {
                    let p = &sh.list[i];
                    // A panic must not leave the hooks waiting for this load for ever.
                    let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        host().ok().and_then(|h| {
                            skiff_plugins::loader::load_cached(
                                h,
                                &cache(&sh.dirs),
                                p,
                                sh.config(&p.name),
                            )
                        })
                    }))
                    .ok()
                    .flatten();
                    match loaded {
                        Some(l) => {
                            // Announced before anyone can call it, so each call waits for
                            // its instance rather than making a second one.
                            for _ in 0..self.per_plugin.get(&i).copied().unwrap_or(0) {
                                l.will_make_ahead();
                            }
                            sh.settle(i, SlotState::Loaded(Arc::new(l)));
                        }
                        None => sh.settle(i, SlotState::Idle),
                    }
                }
                Some(Job::Instance(i)) => {
                    if let Some(l) = sh.wait_loaded(i) {
                        l.make_ahead();
                    }
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
            let containers = skiff_runtime::Containers::open(&self.shared.dirs)
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

    fn finished(&self) {
        // The loaded plugins (their code, instances made ahead and not used) and the kept
        // stores go to the reaper, which unmaps them while the command waits on its own writes;
        // a hook called after all would load its plugin again.
        for slot in self.shared.slots.values() {
            if let Ok(mut st) = slot.state.lock() {
                if let SlotState::Loaded(l) = std::mem::take(&mut *st) {
                    skiff_plugins::reaper::reap(l);
                }
            }
        }
        skiff_plugins::reaper::release_kept();
    }

    fn observes(&self) -> bool {
        self.shared
            .list
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
