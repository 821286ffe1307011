//! The wasmtime host: one engine per process, a linker per plugin holding only what its grants
//! allow, an `InstancePre` kept per plugin and a fresh store per call, so no state leaks from
//! one call (or one container) to the next. Every call runs under the plugin's deadline and
//! memory cap, and a failure comes back as a `CallError` naming the cause. A fresh instance may
//! be made ahead of its call on another thread (`Loaded::make_ahead`); each store keeps its own
//! deadline, so concurrent calls never cut each other short.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use wasmtime::component::{Component, HasSelf, Instance, InstancePre, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, Trap, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};

use crate::bindings::{v1, v2, wit};
use crate::component::{Hook, Inspected, WorldVersion};
use crate::error::{CallError, PluginError};
use crate::limits::{Limiter, Limits, Watchdog, MAX_INPUT, MAX_OUTPUT};
use crate::settings::PluginConfig;

/// Where a plugin's log lines go: (plugin, level, message). The CLI tags and filters them. It
/// runs inside a guest call, so it must not panic.
pub type LogSink = Arc<dyn Fn(&str, wit::Level, &str) + Send + Sync>;

/// Log lines one call may write before the rest are dropped (with one line saying so).
const MAX_LOG_LINES: usize = 100;
/// Characters kept of one log line.
const MAX_LOG_LINE: usize = 2000;
/// What one call's WASI stdout and stderr keep, each.
const MAX_STDIO: usize = 64 << 10;

/// The engine every plugin of this process runs on.
pub struct Host {
    engine: Engine,
    log: LogSink,
}

/// How the engine is configured. Changing it changes the cache key, so artifacts compiled by
/// another configuration are recompiled rather than loaded.
fn engine_config() -> Config {
    let mut c = Config::new();
    c.wasm_component_model(true);
    c.epoch_interruption(true);
    // No native unwind tables or address maps in the compiled code: loading a plugin would
    // otherwise register unwind info for every function (thousands in a Python plugin), and
    // traps are reported without them. Host functions here never unwind through guest frames.
    c.native_unwind_info(false);
    c.generate_address_map(false);
    c
}

impl Host {
    /// A host whose plugins log through `log`.
    pub fn new(log: LogSink) -> Result<Host, PluginError> {
        let engine = Engine::new(&engine_config()).map_err(|e| PluginError::Link {
            plugin: "(engine)".into(),
            cause: e.to_string(),
        })?;
        Ok(Host { engine, log })
    }

    /// The engine, for the cache.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compiles a component's bytes (install time): checks the header, compiles, and reads its
    /// world version and hooks. Returns the compiled artifact to cache.
    pub fn compile(&self, bytes: &[u8], what: &str) -> Result<(Vec<u8>, Inspected), PluginError> {
        crate::component::check_header(bytes, what)?;
        let compiled =
            self.engine
                .precompile_component(bytes)
                .map_err(|e| PluginError::Invalid {
                    what: what.to_string(),
                    cause: root_cause(&e),
                })?;
        let component = self.from_compiled(&compiled, what)?;
        let inspected = crate::component::inspect(&self.engine, &component, what)?;
        Ok((compiled, inspected))
    }

    /// The component of an artifact `compile` made in this process.
    pub fn from_compiled(&self, compiled: &[u8], what: &str) -> Result<Component, PluginError> {
        // SAFETY: the caller passes bytes this engine's `compile` returned, still in memory.
        unsafe { Component::deserialize(&self.engine, compiled) }.map_err(|e| {
            PluginError::Invalid {
                what: what.to_string(),
                cause: root_cause(&e),
            }
        })
    }

    /// Prepares an installed plugin to be called: links what its grants allow (refusing an
    /// ungranted import by name) and pre-instantiates it.
    pub fn load(
        &self,
        name: &str,
        component: &Component,
        config: PluginConfig,
    ) -> Result<Loaded, PluginError> {
        let inspected = crate::component::inspect(&self.engine, component, name)?;
        let linker = self.linker(name, &inspected, &config)?;
        let pre = linker
            .instantiate_pre(component)
            .map_err(|e| PluginError::Link {
                plugin: name.to_string(),
                cause: root_cause(&e),
            })?;
        let link = |e: wasmtime::Error| PluginError::Link {
            plugin: name.to_string(),
            cause: root_cause(&e),
        };
        let has = |h: Hook| inspected.hooks.contains(&h);
        let entry = if inspected.version == WorldVersion::V0_1 {
            Entry::V1(v1::PluginIndices::new(&pre).map_err(link)?)
        } else {
            use v2::exports::skiff::plugin as x;
            Entry::V2 {
                before_pull: has(Hook::BeforePull)
                    .then(|| x::before_pull::GuestIndices::new(&pre))
                    .transpose()
                    .map_err(link)?,
                before_create: has(Hook::BeforeCreate)
                    .then(|| x::before_create::GuestIndices::new(&pre))
                    .transpose()
                    .map_err(link)?,
                validate: has(Hook::Validate)
                    .then(|| x::validate::GuestIndices::new(&pre))
                    .transpose()
                    .map_err(link)?,
                after_start: has(Hook::AfterStart)
                    .then(|| x::after_start::GuestIndices::new(&pre))
                    .transpose()
                    .map_err(link)?,
                after_exit: has(Hook::AfterExit)
                    .then(|| x::after_exit::GuestIndices::new(&pre))
                    .transpose()
                    .map_err(link)?,
            }
        };
        Ok(Loaded {
            name: name.to_string(),
            engine: self.engine.clone(),
            log: self.log.clone(),
            pre,
            entry,
            inspected,
            config,
            stats: Mutex::new(CallStats::default()),
            ahead: Mutex::new(Ahead::default()),
            ahead_made: Condvar::new(),
        })
    }

    /// The linker for one plugin: skiff's host interface and the WASI interfaces that give no
    /// host access (clocks, random, an empty stdin, captured stdout/stderr, the granted
    /// environment), plus the filesystem only when a directory is granted. Each import is
    /// checked first, so a refusal names the interface and the grant that would allow it.
    fn linker(
        &self,
        name: &str,
        inspected: &Inspected,
        config: &PluginConfig,
    ) -> Result<Linker<State>, PluginError> {
        let has_dirs = config.grants.dirs().next().is_some();
        for import in &inspected.imports {
            if let Some(why) = refusal(import, has_dirs, name) {
                return Err(PluginError::Ungranted {
                    plugin: name.to_string(),
                    import: import.clone(),
                    why,
                });
            }
        }
        let mut l = Linker::<State>::new(&self.engine);
        let link = |e: wasmtime::Error| PluginError::Link {
            plugin: name.to_string(),
            cause: root_cause(&e),
        };
        v2::skiff::plugin::host::add_to_linker::<State, HasSelf<State>>(&mut l, |s| s)
            .map_err(link)?;
        for types in ["skiff:plugin/types@0.2.0", "skiff:plugin/types@0.1.0"] {
            l.instance(types).map_err(link)?;
        }
        add_wasi(&mut l, has_dirs).map_err(link)?;
        Ok(l)
    }
}

/// Why an import cannot be linked for this plugin, or none when it can.
fn refusal(import: &str, has_dirs: bool, plugin: &str) -> Option<String> {
    let iface = import.split('@').next().unwrap_or(import);
    let package = iface.split('/').next().unwrap_or(iface);
    match package {
        "skiff:plugin" => None,
        "wasi:io" | "wasi:clocks" | "wasi:random" | "wasi:cli" => None,
        "wasi:filesystem" if has_dirs => None,
        "wasi:filesystem" => Some(format!(
            "which needs a directory grant: add \"dir-ro=PATH\" or \"dir-rw=PATH\" to grants in [plugins.{plugin}] of config.toml (or pass --grant at install), or build it without filesystem access (componentize-py and componentize-qjs: --stub-wasi)"
        )),
        "wasi:sockets" | "wasi:http" => Some(
            "but skiff gives plugins no network access: build it without sockets (componentize-py and componentize-qjs: --stub-wasi)".to_string(),
        ),
        _ => Some(
            "which skiff does not provide: a plugin may import skiff:plugin/host and WASI 0.2's clocks, random, cli and (when granted) filesystem".to_string(),
        ),
    }
}

/// Adds the WASI 0.2 interfaces a plugin may import.
fn add_wasi(l: &mut Linker<State>, filesystem: bool) -> wasmtime::Result<()> {
    use wasmtime_wasi::cli::{WasiCli, WasiCliView};
    use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
    use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView};
    use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem as fs, random, sync};
    use wasmtime_wasi::random::{WasiRandom, WasiRandomView};

    struct Io;
    impl wasmtime::component::HasData for Io {
        type Data<'a> = &'a mut ResourceTable;
    }
    wasmtime_wasi::p2::bindings::sync::io::error::add_to_linker::<State, Io>(l, |s| &mut s.table)?;
    sync::io::poll::add_to_linker::<State, Io>(l, |s| &mut s.table)?;
    sync::io::streams::add_to_linker::<State, Io>(l, |s| &mut s.table)?;
    clocks::wall_clock::add_to_linker::<State, WasiClocks>(l, State::clocks)?;
    clocks::monotonic_clock::add_to_linker::<State, WasiClocks>(l, State::clocks)?;
    random::random::add_to_linker::<State, WasiRandom>(l, State::random)?;
    random::insecure::add_to_linker::<State, WasiRandom>(l, State::random)?;
    random::insecure_seed::add_to_linker::<State, WasiRandom>(l, State::random)?;
    cli::exit::add_to_linker::<State, WasiCli>(l, State::cli)?;
    cli::environment::add_to_linker::<State, WasiCli>(l, State::cli)?;
    cli::stdin::add_to_linker::<State, WasiCli>(l, State::cli)?;
    cli::stdout::add_to_linker::<State, WasiCli>(l, State::cli)?;
    cli::stderr::add_to_linker::<State, WasiCli>(l, State::cli)?;
    cli::terminal_input::add_to_linker::<State, WasiCli>(l, State::cli)?;
    cli::terminal_output::add_to_linker::<State, WasiCli>(l, State::cli)?;
    cli::terminal_stdin::add_to_linker::<State, WasiCli>(l, State::cli)?;
    cli::terminal_stdout::add_to_linker::<State, WasiCli>(l, State::cli)?;
    cli::terminal_stderr::add_to_linker::<State, WasiCli>(l, State::cli)?;
    if filesystem {
        fs::preopens::add_to_linker::<State, WasiFilesystem>(l, State::filesystem)?;
        sync::filesystem::types::add_to_linker::<State, WasiFilesystem>(l, State::filesystem)?;
    }
    Ok(())
}

/// What one call lives in: the WASI context its grants built, its resources, its limiter.
pub struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: Limiter,
    plugin: String,
    settings: BTreeMap<String, String>,
    log: LogSink,
    log_lines: usize,
    /// When the current phase (instantiation, or the call) must have ended.
    deadline: Instant,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl v2::skiff::plugin::host::Host for State {
    fn log(&mut self, level: wit::Level, message: String) {
        self.log_lines += 1;
        if self.log_lines > MAX_LOG_LINES + 1 {
            return;
        }
        if self.log_lines == MAX_LOG_LINES + 1 {
            (self.log)(
                &self.plugin,
                wit::Level::Warn,
                "wrote too many log lines in one call; the rest are dropped",
            );
            return;
        }
        let mut m: String = message.chars().take(MAX_LOG_LINE).collect();
        m.retain(|c| c != '\r' && (c == '\t' || !c.is_control()));
        (self.log)(&self.plugin, level, &m);
    }

    fn settings(&mut self) -> Vec<(String, String)> {
        self.settings
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn setting(&mut self, key: String) -> Option<String> {
        self.settings.get(&key).cloned()
    }
}

impl v2::skiff::plugin::types::Host for State {}

/// The typed entry points of one plugin, per world version.
enum Entry {
    V1(v1::PluginIndices),
    V2 {
        before_pull: Option<v2::exports::skiff::plugin::before_pull::GuestIndices>,
        before_create: Option<v2::exports::skiff::plugin::before_create::GuestIndices>,
        validate: Option<v2::exports::skiff::plugin::validate::GuestIndices>,
        after_start: Option<v2::exports::skiff::plugin::after_start::GuestIndices>,
        after_exit: Option<v2::exports::skiff::plugin::after_exit::GuestIndices>,
    },
}

/// What the last call took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallStats {
    /// Wall-clock time of the call, instantiation included.
    pub elapsed: Duration,
    /// The part of it spent making the instance (done ahead of the call when it was made
    /// ahead).
    pub instantiate: Duration,
    /// The most linear memory it had at once, in bytes.
    pub peak_memory: usize,
}

/// A fresh instance in a store of its own, made before its call.
struct Ready {
    store: Store<State>,
    instance: Instance,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
    /// What making it took.
    took: Duration,
}

/// Instances made ahead, and how many are still being made.
#[derive(Default)]
struct Ahead {
    made: Vec<Result<Ready, CallError>>,
    making: usize,
}

/// A plugin ready to be called (from any thread).
pub struct Loaded {
    name: String,
    engine: Engine,
    log: LogSink,
    pre: InstancePre<State>,
    entry: Entry,
    inspected: Inspected,
    config: PluginConfig,
    stats: Mutex<CallStats>,
    ahead: Mutex<Ahead>,
    ahead_made: Condvar,
}

impl Loaded {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What it exports and imports.
    pub fn inspected(&self) -> &Inspected {
        &self.inspected
    }

    /// Its settings, limits and grants.
    pub fn config(&self) -> &PluginConfig {
        &self.config
    }

    /// Whether it exports `hook`.
    pub fn has(&self, hook: Hook) -> bool {
        self.inspected.hooks.contains(&hook)
    }

    /// What the last call took.
    pub fn last_stats(&self) -> CallStats {
        self.stats.lock().map(|s| *s).unwrap_or_default()
    }

    /// Says that one instance is being made ahead (call before handing `make_ahead` to another
    /// thread): a call that finds none made yet waits for it rather than making its own.
    pub fn will_make_ahead(&self) {
        if let Ok(mut a) = self.ahead.lock() {
            a.making += 1;
        }
    }

    /// Makes the instance `will_make_ahead` announced, for the next call to use. A failure to
    /// instantiate is kept too: that call reports it, as it would have when instantiating.
    pub fn make_ahead(&self) {
        // A panic must not leave a call waiting for this instance for ever.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if self.uses_wasi_streams() {
                start_wasi_runtime();
            }
            self.instantiate()
        }))
        .unwrap_or_else(|_| Err(CallError::Instantiate("instantiating it panicked".into())));
        if let Ok(mut a) = self.ahead.lock() {
            a.made.push(r);
            a.making = a.making.saturating_sub(1);
        }
        self.ahead_made.notify_all();
    }

    /// Whether it imports WASI streams or files, whose synchronous bindings run in WASI's own
    /// tokio runtime.
    fn uses_wasi_streams(&self) -> bool {
        self.inspected
            .imports
            .iter()
            .any(|i| i.starts_with("wasi:io/") || i.starts_with("wasi:filesystem/"))
    }

    /// How many instances made ahead wait for a call (made, or still being made).
    pub fn ahead(&self) -> usize {
        self.ahead
            .lock()
            .map(|a| a.made.len() + a.making)
            .unwrap_or(0)
    }

    /// An instance made ahead, waiting for one being made; none when none was announced.
    fn take_ahead(&self) -> Option<Result<Ready, CallError>> {
        let mut a = self.ahead.lock().ok()?;
        loop {
            if !a.made.is_empty() {
                return Some(a.made.remove(0));
            }
            if a.making == 0 {
                return None;
            }
            a = self.ahead_made.wait(a).ok()?;
        }
    }

    /// before-pull.
    pub fn before_pull(&self, reference: &str) -> Result<wit::PullDecision, CallError> {
        check_input(reference.len())?;
        let d = self.call(|store, instance, entry| match entry {
            Entry::V1(ix) => {
                let p = ix.load(&mut *store, instance)?;
                Ok(match p.call_before_pull(&mut *store, reference)? {
                    v1::skiff::plugin::types::PullDecision::Keep => wit::PullDecision::Keep,
                    v1::skiff::plugin::types::PullDecision::Rewrite(r) => {
                        wit::PullDecision::Rewrite(r)
                    }
                    v1::skiff::plugin::types::PullDecision::Deny(r) => wit::PullDecision::Deny(r),
                })
            }
            Entry::V2 {
                before_pull: Some(ix),
                ..
            } => ix
                .load(&mut *store, instance)?
                .call_before_pull(&mut *store, reference),
            Entry::V2 { .. } => Ok(wit::PullDecision::Keep),
        })?;
        match &d {
            wit::PullDecision::Rewrite(s) | wit::PullDecision::Deny(s) => check_output(s.len())?,
            wit::PullDecision::Keep => {}
        }
        Ok(d)
    }

    /// before-create.
    pub fn before_create(
        &self,
        spec: &wit::ContainerSpec,
    ) -> Result<wit::CreateDecision, CallError> {
        check_input(spec_size(spec))?;
        let d = self.call(|store, instance, entry| match entry {
            Entry::V2 {
                before_create: Some(ix),
                ..
            } => ix
                .load(&mut *store, instance)?
                .call_before_create(&mut *store, spec),
            _ => Ok(wit::CreateDecision::Allow(Vec::new())),
        })?;
        check_output(match &d {
            wit::CreateDecision::Allow(edits) => edits.iter().map(edit_size).sum(),
            wit::CreateDecision::Deny(r) => r.len(),
        })?;
        Ok(d)
    }

    /// validate.
    pub fn validate(
        &self,
        spec: &wit::ContainerSpec,
        changes: &[wit::Change],
    ) -> Result<wit::Verdict, CallError> {
        let changes_size: usize = changes.iter().map(|c| c.key.len() + c.plugin.len()).sum();
        check_input(spec_size(spec) + changes_size)?;
        let v = self.call(|store, instance, entry| match entry {
            Entry::V2 {
                validate: Some(ix), ..
            } => ix
                .load(&mut *store, instance)?
                .call_validate(&mut *store, spec, changes),
            _ => Ok(wit::Verdict::Allow),
        })?;
        if let wit::Verdict::Deny(r) = &v {
            check_output(r.len())?;
        }
        Ok(v)
    }

    /// after-start.
    pub fn after_start(&self, event: &wit::StartEvent) -> Result<(), CallError> {
        self.call(|store, instance, entry| match entry {
            Entry::V2 {
                after_start: Some(ix),
                ..
            } => ix
                .load(&mut *store, instance)?
                .call_after_start(&mut *store, event),
            _ => Ok(()),
        })
    }

    /// after-exit.
    pub fn after_exit(&self, event: &wit::ExitEvent) -> Result<(), CallError> {
        self.call(|store, instance, entry| match entry {
            Entry::V2 {
                after_exit: Some(ix),
                ..
            } => ix
                .load(&mut *store, instance)?
                .call_after_exit(&mut *store, event),
            _ => Ok(()),
        })
    }

    /// A fresh store and instance, made under the limits (a start function that loops or
    /// allocates without end is stopped like a call).
    fn instantiate(&self) -> Result<Ready, CallError> {
        let started = Instant::now();
        let Limits {
            timeout_ms,
            memory_mib,
        } = self.config.limits;
        let stdout = MemoryOutputPipe::new(MAX_STDIO);
        let stderr = MemoryOutputPipe::new(MAX_STDIO);
        let wasi = self
            .wasi_ctx(stdout.clone(), stderr.clone())
            .map_err(CallError::Instantiate)?;
        let timeout = Duration::from_millis(timeout_ms);
        let state = State {
            wasi,
            table: ResourceTable::new(),
            limiter: Limiter::new(memory_mib),
            plugin: self.name.clone(),
            settings: self.config.settings.clone(),
            log: self.log.clone(),
            log_lines: 0,
            deadline: started + timeout,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        // The epoch moves when any call's watchdog fires: each store then checks its own
        // deadline and goes on when another's has passed.
        store.epoch_deadline_callback(|ctx| {
            if Instant::now() >= ctx.data().deadline {
                Err(Trap::Interrupt.into())
            } else {
                Ok(UpdateDeadline::Continue(1))
            }
        });
        store.set_epoch_deadline(1);
        let made = {
            let _watch = Watchdog::start(&self.engine, timeout).map_err(unwatched)?;
            self.pre.instantiate(&mut store)
        };
        match made {
            Ok(instance) => Ok(Ready {
                store,
                instance,
                stdout,
                stderr,
                took: started.elapsed(),
            }),
            Err(e) => {
                self.set_stats(started.elapsed(), started.elapsed(), &store);
                self.drain(&stdout, &stderr);
                Err(self.cause(&store, e))
            }
        }
    }

    /// Runs `f` in an instance made ahead or a fresh one, under the limits, and turns a
    /// failure into its cause.
    fn call<T>(
        &self,
        f: impl FnOnce(&mut Store<State>, &Instance, &Entry) -> wasmtime::Result<T>,
    ) -> Result<T, CallError> {
        let ready = match self.take_ahead() {
            Some(r) => r?,
            None => self.instantiate()?,
        };
        let Ready {
            mut store,
            instance,
            stdout,
            stderr,
            took,
        } = ready;
        let started = Instant::now();
        let timeout = Duration::from_millis(self.config.limits.timeout_ms);
        store.data_mut().deadline = started + timeout;
        store.set_epoch_deadline(1);
        let result = {
            let _watch = Watchdog::start(&self.engine, timeout).map_err(unwatched)?;
            f(&mut store, &instance, &self.entry)
        };
        self.set_stats(took + started.elapsed(), took, &store);
        self.drain(&stdout, &stderr);
        let result = result.map_err(|e| self.cause(&store, e));
        // A failed call (a trap, a timeout, a memory bomb) may leave a big store: not kept.
        if result.is_ok() {
            crate::reaper::retire(store);
        } else {
            crate::reaper::reap(store);
        }
        result
    }

    fn set_stats(&self, elapsed: Duration, instantiate: Duration, store: &Store<State>) {
        if let Ok(mut s) = self.stats.lock() {
            *s = CallStats {
                elapsed,
                instantiate,
                peak_memory: store.data().limiter.peak,
            };
        }
    }

    /// Hands what the plugin wrote to stdout and stderr to the log, as debug lines.
    fn drain(&self, stdout: &MemoryOutputPipe, stderr: &MemoryOutputPipe) {
        for (pipe, what) in [(stdout, "stdout"), (stderr, "stderr")] {
            let text = pipe.contents();
            for line in String::from_utf8_lossy(&text).lines().take(MAX_LOG_LINES) {
                (self.log)(&self.name, wit::Level::Debug, &format!("{what}: {line}"));
            }
        }
    }

    /// What a failed instantiation or call comes to.
    fn cause(&self, store: &Store<State>, e: wasmtime::Error) -> CallError {
        let Limits {
            timeout_ms,
            memory_mib,
        } = self.config.limits;
        if store.data().limiter.hit {
            CallError::Memory(memory_mib)
        } else if let Some(trap) = e.downcast_ref::<Trap>() {
            match trap {
                Trap::Interrupt => CallError::Timeout(timeout_ms),
                t => {
                    let text = t.to_string();
                    CallError::Trap(text.trim_start_matches("wasm trap: ").to_string())
                }
            }
        } else if let Some(exit) = e.downcast_ref::<wasmtime_wasi::I32Exit>() {
            CallError::Trap(format!("called exit({})", exit.0))
        } else {
            CallError::Malformed(root_cause(&e))
        }
    }

    /// The WASI context of one call: the granted directories (at the same path inside), the
    /// granted environment variables that are set, output captured, and nothing else.
    fn wasi_ctx(
        &self,
        stdout: MemoryOutputPipe,
        stderr: MemoryOutputPipe,
    ) -> Result<WasiCtx, String> {
        let mut b = WasiCtx::builder();
        b.stdout(stdout).stderr(stderr);
        // Calls are synchronous: a granted file's reads and writes run on the calling thread
        // rather than being handed to a tokio blocking pool and waited for (two thread hops
        // per operation, and a pool started in the helper's first call).
        b.allow_blocking_current_thread(true);
        for name in self.config.grants.env() {
            if let Ok(v) = std::env::var(name) {
                b.env(name, v);
            }
        }
        for (dir, writable) in self.config.grants.dirs() {
            let perms = if writable {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            let guest = dir.to_string_lossy();
            b.preopened_dir(dir, guest.as_ref(), perms).map_err(|e| {
                format!(
                    "its granted directory {} cannot be opened: {e}",
                    dir.display()
                )
            })?;
        }
        Ok(b.build())
    }
}

/// Starts the tokio runtime WASI's synchronous bindings enter (made on first use, with its
/// worker threads), so that a plugin's first stream or file operation does not pay for it in
/// its call: the `__hook` helper's first after-start took 1.4 to 2.8 ms against its
/// after-exit's 0.5.
fn start_wasi_runtime() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| wasmtime_wasi::runtime::with_ambient_tokio_runtime(|| ()));
}

/// A call whose deadline cannot be watched does not run: it could run for ever.
fn unwatched(e: std::io::Error) -> CallError {
    CallError::Instantiate(format!("its deadline cannot be watched ({e})"))
}

fn check_input(size: usize) -> Result<(), CallError> {
    if size > MAX_INPUT {
        return Err(CallError::InputTooBig {
            size,
            cap: MAX_INPUT,
        });
    }
    Ok(())
}

fn check_output(size: usize) -> Result<(), CallError> {
    if size > MAX_OUTPUT {
        return Err(CallError::OutputTooBig {
            size,
            cap: MAX_OUTPUT,
        });
    }
    Ok(())
}

/// Roughly how many bytes a spec takes across the boundary: its strings.
fn spec_size(s: &wit::ContainerSpec) -> usize {
    let strs = |v: &[String]| v.iter().map(String::len).sum::<usize>();
    let pairs = |v: &[(String, String)]| v.iter().map(|(a, b)| a.len() + b.len()).sum::<usize>();
    s.image.len()
        + s.image_id.len()
        + strs(&s.entrypoint)
        + strs(&s.cmd)
        + strs(&s.args)
        + pairs(&s.env)
        + pairs(&s.labels)
        + s.mounts
            .iter()
            .map(|m| m.source.len() + m.destination.len())
            .sum::<usize>()
        + strs(&s.cap_add)
        + strs(&s.cap_drop)
        + s.user.len()
        + s.workdir.len()
}

/// Roughly how many bytes an edit takes.
fn edit_size(e: &wit::Edit) -> usize {
    use wit::Edit::*;
    match e {
        SetEnv((a, b)) | SetLabel((a, b)) => a.len() + b.len(),
        RemoveEnv(a) | RemoveLabel(a) | RemoveMount(a) | SetHostname(a) | SetUser(a)
        | SetWorkdir(a) | AddCapability(a) | DropCapability(a) | SetNetwork(a) => a.len(),
        AddMount(m) => m.source.len() + m.destination.len(),
        SetArgs(v) => v.iter().map(String::len).sum(),
        SetMemory(_) | SetPids(_) | SetCpuMicros(_) | SetPrivileged(_) | SetReadOnly(_) => 8,
    }
}

/// wasmtime's error chain in one line.
pub(crate) fn root_cause(e: &wasmtime::Error) -> String {
    let mut parts: Vec<String> = e.chain().map(|c| c.to_string()).collect();
    parts.dedup();
    parts.join(": ").replace('\n', " ")
}
