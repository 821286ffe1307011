//! The hooks this skiff has registered, and the two places the CLI calls them from for
//! references: `pull` and `run`/`create` (before the local lookup). Registered are the
//! installed, enabled plugins, and the trace hooks when `SKIFF_HOOK_TRACE=FILE` is set.

use std::ffi::OsString;
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use skiff_plugins::Hook;
use skiff_runtime::hooks::{ExitEvent, HookError, Hooks, NoHooks, PullDecision, StartEvent, Trace};
use skiff_runtime::spec::ContainerSpec;
use skiff_store::{Dirs, ImageStore, Reference};

use super::plugins::PluginHooks;

/// The hooks `run` and `create` call, in their order.
pub const CREATE_HOOKS: &[Hook] = &[Hook::BeforePull, Hook::BeforeCreate, Hook::Validate];

/// The plugins a `run` or `create` began loading before its arguments were parsed.
static EARLY: Mutex<Option<PluginHooks>> = Mutex::new(None);

/// For `skiff run`/`create` (or `container run`/`create`) spelled without `--log-level`: opens
/// the plugins and starts loading the decision plugins before clap parses the arguments.
/// Building clap's tree of every command takes over a millisecond, and the first thing the
/// command then waits for is its plugins' load (3.5 ms for the Python example). Called while
/// the process has one thread. Nothing is reported here: when opening fails, or the arguments
/// turn out to be wrong, the command opens the plugins again and reports what it finds, as
/// before.
pub fn start_early(args: &[OsString]) {
    let word = |i: usize| args.get(i).and_then(|a| a.to_str());
    // The log level decides what the engine shows: leave that spelling to the parsed path.
    if args
        .iter()
        .any(|a| a.as_encoded_bytes().starts_with(b"--log-level"))
    {
        return;
    }
    let creates = matches!(word(0), Some("run" | "create"))
        || (word(0) == Some("container") && matches!(word(1), Some("run" | "create")));
    if !creates {
        return;
    }
    let Ok(Some(p)) = PluginHooks::open(&Dirs::from_env()) else {
        return;
    };
    p.prepare(CREATE_HOOKS);
    if let Ok(mut early) = EARLY.lock() {
        *early = Some(p);
    }
}

/// The registered hooks: one read of the plugin list when no plugin is installed.
pub fn registered() -> Result<Box<dyn Hooks>> {
    registered_for(&[])
}

/// The registered hooks, with the plugins that export one of `ahead` loaded, and one instance
/// made for each of those calls, on worker threads from now on (see `PluginHooks::prepare`).
pub fn registered_for(ahead: &[Hook]) -> Result<Box<dyn Hooks>> {
    let trace = match std::env::var_os("SKIFF_HOOK_TRACE") {
        Some(path) if !path.is_empty() => Some(Trace { path: path.into() }),
        _ => None,
    };
    let early = (ahead == CREATE_HOOKS)
        .then(|| EARLY.lock().ok().and_then(|mut e| e.take()))
        .flatten();
    let plugins = match early {
        Some(p) => Some(p),
        None => {
            let plugins = PluginHooks::open(&Dirs::from_env())?;
            if let Some(p) = &plugins {
                p.prepare(ahead);
            }
            plugins
        }
    };
    Ok(match (trace, plugins) {
        (None, None) => Box::new(NoHooks),
        (Some(t), None) => Box::new(t),
        (None, Some(p)) => Box::new(p),
        (Some(t), Some(p)) => Box::new(Both(t, p)),
    })
}

/// The trace first, then the plugins.
struct Both(Trace, PluginHooks);

impl Hooks for Both {
    fn before_pull(&self, reference: &str) -> Result<PullDecision, HookError> {
        self.0.before_pull(reference)?;
        self.1.before_pull(reference)
    }
    fn before_create(&self, name: Option<&str>, spec: &mut ContainerSpec) -> Result<(), HookError> {
        self.0.before_create(name, spec)?;
        self.1.before_create(name, spec)
    }
    fn observes(&self) -> bool {
        true
    }
    fn after_start(&self, event: &StartEvent) {
        self.0.after_start(event);
        self.1.after_start(event);
    }
    fn after_exit(&self, event: &ExitEvent) {
        self.0.after_exit(event);
        self.1.after_exit(event);
    }
    fn finished(&self) {
        self.0.finished();
        self.1.finished();
    }
}

/// The reference to use for `name` once before-pull has seen it: kept, rewritten (parsed and
/// checked like the user's own) or refused. A local image id is not a reference and is kept.
pub fn reference_for(hooks: &dyn Hooks, store: &ImageStore, name: &str) -> Result<String> {
    let Ok(r) = Reference::parse(name) else {
        return Ok(name.to_string());
    };
    let full = r.to_string();
    let hex = name.strip_prefix("sha256:").unwrap_or(name);
    let names_an_id = store.find(name).is_ok_and(|hits| {
        hits.iter()
            .any(|i| i.reference != full && i.id.hex().starts_with(hex))
    });
    if names_an_id {
        return Ok(name.to_string());
    }
    match hooks.before_pull(&full)? {
        PullDecision::Keep => Ok(full),
        PullDecision::Rewrite(to) => {
            let r = Reference::parse(&to)
                .with_context(|| format!("a before-pull hook rewrote {full} to {to:?}"))?;
            Ok(r.to_string())
        }
        PullDecision::Deny(reason) => bail!("{full} was refused by a before-pull hook: {reason}"),
    }
}
