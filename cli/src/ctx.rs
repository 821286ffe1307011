//! What every command opens: the image store, the container records (finishing interrupted
//! removals first), the async runtime, pull-with-progress, the remover and unpacker for this
//! user, the registered hooks, and the monitor start; plus `for_each`, the many-names loop.

pub mod hooks;
pub mod plugin_spec;
pub mod plugins;
pub mod unpacker;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use skiff_runtime::monitor::protocol::Request;
use skiff_runtime::monitor::start;
use skiff_runtime::Containers;
use skiff_store::{Dirs, ImageStore, NoProgress, Platform, Progress, PullOptions, Reference};

use crate::output::progress;

/// Appends an event to this user's event log (best effort: `skiff events` shows it).
pub fn event(ev: &skiff_runtime::events::Event) {
    skiff_runtime::events::EventLog::open(&Dirs::from_env()).emit(ev);
}

/// An image event: `action` on `id`, the reference `name` it concerns.
pub fn image_event(action: &str, id: &str, name: &str) {
    event(&skiff_runtime::events::Event::image(action, id, name));
}

pub fn open_store() -> Result<ImageStore> {
    Ok(ImageStore::open(Dirs::from_env())?)
}

/// Pulls `reference` for this user: per-layer bars on a terminal, status lines otherwise, nothing
/// when `quiet`; the platform asked for or the host's, the unpacker that fits the user. The async
/// runtime is gone again when this returns (the caller may fork a monitor next).
pub fn pull_with_progress(
    store: &ImageStore,
    reference: &Reference,
    platform: Option<&str>,
    quiet: bool,
) -> Result<skiff_store::pull::Pulled> {
    let platform = match platform {
        Some(p) => Platform::parse(p)?,
        None => Platform::host(),
    };
    let progress: Arc<dyn Progress> = if quiet {
        Arc::new(NoProgress)
    } else if std::io::stderr().is_terminal() {
        Arc::new(progress::Bars::new())
    } else {
        Arc::new(progress::Lines::new())
    };
    let opts = PullOptions {
        platform,
        unpacker: unpacker::for_this_user(&store.dirs),
        progress,
    };
    Ok(runtime()?.block_on(store.pull(reference, &opts))?)
}

/// The async runtime for registry work (two workers: this is a CLI, not a server).
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Opens the user's containers, first finishing any removal that was interrupted (a
/// `containers/.rm-ID` or `volumes/.rm-NAME` left by a killed `rm`), so none stays for good.
pub fn containers() -> Result<(Dirs, Containers)> {
    let dirs = Dirs::from_env();
    let c = Containers::open(&dirs)?;
    let leftovers = c.leftovers();
    if !leftovers.is_empty() {
        let remove = remover(&dirs);
        for tomb in leftovers {
            if let Err(e) = c.finish_removal(&tomb, &remove) {
                eprintln!("warning: could not finish removing {}: {e}", tomb.display());
            }
        }
    }
    Ok((dirs, c))
}

/// Exit code for a runtime error: 2 for rm of a running container (as podman), else 125.
fn code_of(e: &skiff_runtime::Error) -> u8 {
    match e {
        skiff_runtime::Error::Running(_) => 2,
        skiff_runtime::Error::Exec(c, _) => u8::try_from(*c).unwrap_or(125),
        _ => 125,
    }
}

/// Runs `f` for each name; errors are printed and the last one's code returned, as Docker does.
pub fn for_each(
    names: &[String],
    mut f: impl FnMut(&str) -> std::result::Result<(), skiff_runtime::Error>,
) -> ExitCode {
    let mut code = 0u8;
    for n in names {
        if let Err(e) = f(n) {
            eprintln!("Error: {e}");
            code = code_of(&e);
        }
    }
    ExitCode::from(code)
}

pub fn remover(dirs: &Dirs) -> impl Fn(&std::path::Path) -> skiff_runtime::Result<()> {
    let slow = unpacker::for_this_user(dirs);
    move |p: &std::path::Path| match skiff_store::unpack::remove_tree(p) {
        Ok(()) => Ok(()),
        Err(_) => Ok(slow.remove(p)?),
    }
}

/// Starts a container's monitor. Attached: exec it in place (never returns on success). Detached:
/// spawn it in its own session and wait for "started" or the start error (then its exit code).
pub fn start_monitor(id: &str, attached: bool, sig_proxy: bool) -> Result<ExitCode> {
    let exe = std::env::current_exe().context("locating the skiff binary")?;
    let monitor = start::monitor_beside(&exe)?;
    let req = Request {
        id: id.to_string(),
        attached,
        sig_proxy,
        log_max: skiff_runtime::container::logs::max_size_from_config(&Dirs::from_env().config)?,
        ready_fd: None,
        hooks: hooks::registered()?.observes(),
    };
    if attached {
        return Err(start::exec_attached(&monitor, &req).into());
    }
    match start::spawn_detached(&monitor, &req, |w| eprintln!("WARNING: {w}"))? {
        start::Outcome::Started => Ok(ExitCode::SUCCESS),
        start::Outcome::Failed { code, message } => {
            eprintln!("Error: {message}");
            Ok(ExitCode::from(u8::try_from(code).unwrap_or(125)))
        }
    }
}

/// Removes every stopped container the runtime's prune rule takes (created before `until`, if
/// given), printing each id (and each failure); returns the bytes their upper dirs held. Shared
/// by `container prune` and `system prune`.
pub fn prune_stopped(until: Option<DateTime<Utc>>) -> Result<u64> {
    let (dirs, c) = containers()?;
    let remove = remover(&dirs);
    let mut each = |id: &str, res: skiff_runtime::Result<()>| match res {
        Ok(()) => println!("{id}"),
        Err(e) => eprintln!("Error: {e}"),
    };
    Ok(skiff_runtime::container::prune::prune_stopped(
        &c, until, &remove, &mut each,
    )?)
}

/// What containers in any state use of the image store (see `containers_in_use`), read from
/// the records as they are. Call it under the store's collector lock.
pub fn in_use(dirs: &Dirs) -> Result<skiff_runtime::container::prune::InUse> {
    let c = Containers::open(dirs)?;
    Ok(skiff_runtime::container::prune::containers_in_use(&c)?)
}

/// The size of a tree, read through fds (never following a symlink a running container swaps in).
pub fn dir_size(p: &std::path::Path) -> u64 {
    skiff_store::inroot::tree_size(p)
}
