//! The lifecycle commands: stop, restart, start, kill, wait, rm, container prune, rename, pause
//! and unpause. The rules (which signal, what a user's kill means, what prune takes) are the
//! runtime's; this file parses flags and prints each name done.

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::{ArgAction, Args};
use skiff_runtime::container::times::parse_time;
use skiff_runtime::container::verbs::parse_signal;
use skiff_runtime::Containers;

use crate::ctx::{self, for_each};
use crate::output::{human, prompt};

/// `stop`/`restart` flags.
#[derive(Args)]
pub struct StopArgs {
    /// Seconds to wait before SIGKILL
    #[arg(short = 't', long = "time", alias = "timeout")]
    time: Option<u64>,
    /// Signal to send first (default: the image's StopSignal or SIGTERM)
    #[arg(short, long)]
    signal: Option<String>,
    /// Containers
    #[arg(required = true)]
    containers: Vec<String>,
}

/// `skiff stop`.
pub fn stop(a: StopArgs) -> Result<ExitCode> {
    let (_, c) = ctx::containers()?;
    Ok(for_each(&a.containers, |k| {
        c.stop_as_asked(k, a.time, a.signal.as_deref())?;
        println!("{k}");
        Ok(())
    }))
}

/// `skiff restart`: stop (if running), start, and a `restart` event.
pub fn restart(a: StopArgs) -> Result<ExitCode> {
    let (_, c) = ctx::containers()?;
    Ok(for_each(&a.containers, |k| {
        let id = c.stop_as_asked(k, a.time, a.signal.as_deref())?;
        start_one(&c, &id)?;
        // Docker's `restart` event, after the stop's and the start's (a restart policy's runs
        // have only their `die` and `start`, as in Docker).
        let v = c.view(&id)?;
        c.events.emit(&skiff_runtime::events::Event::container(
            "restart",
            &v.cfg,
            &[],
        ));
        println!("{k}");
        Ok(())
    }))
}

fn start_one(c: &Containers, id: &str) -> std::result::Result<(), skiff_runtime::Error> {
    let v = c.view(id)?;
    if v.active() {
        return Ok(());
    }
    c.clear_stopped_by_user(id)?;
    match ctx::start_monitor(id, false, true) {
        Ok(code) if code == ExitCode::SUCCESS => Ok(()),
        Ok(_) => Err(skiff_runtime::Error::StartFailed {
            name: v.cfg.name.clone(),
            cause: None,
        }),
        Err(e) => Err(skiff_runtime::Error::StartFailed {
            name: v.cfg.name.clone(),
            cause: Some(e.to_string()),
        }),
    }
}

/// `start` flags.
#[derive(Args)]
pub struct StartArgs {
    /// Attach to the container's output (and exit with its code)
    #[arg(short, long)]
    attach: bool,
    /// Attach stdin (as it was set up at create time with -i)
    #[arg(short, long)]
    interactive: bool,
    /// Containers
    #[arg(required = true)]
    containers: Vec<String>,
}

/// `skiff start`.
pub fn start(a: StartArgs) -> Result<ExitCode> {
    let (_, c) = ctx::containers()?;
    if a.attach || a.interactive {
        if a.containers.len() != 1 {
            bail!("start -a attaches to one container at a time");
        }
        let id = c.resolve(&a.containers[0])?;
        if c.view(&id)?.active() {
            bail!("container {} is already running", a.containers[0]);
        }
        c.clear_stopped_by_user(&id)?;
        return ctx::start_monitor(&id, true, true);
    }
    Ok(for_each(&a.containers, |k| {
        let id = c.resolve(k)?;
        start_one(&c, &id)?;
        println!("{k}");
        Ok(())
    }))
}

/// `kill` flags.
#[derive(Args)]
pub struct KillArgs {
    /// Signal (default KILL)
    #[arg(short, long, default_value = "KILL")]
    signal: String,
    /// Containers
    #[arg(required = true)]
    containers: Vec<String>,
}

/// `skiff kill`.
pub fn kill(a: KillArgs) -> Result<ExitCode> {
    let sig = parse_signal(&a.signal)?;
    let (_, c) = ctx::containers()?;
    Ok(for_each(&a.containers, |k| {
        let id = c.resolve(k)?;
        c.kill_as_asked(&id, sig)?;
        println!("{k}");
        Ok(())
    }))
}

/// `skiff wait`.
pub fn wait(names: Vec<String>) -> Result<ExitCode> {
    let (_, c) = ctx::containers()?;
    Ok(for_each(&names, |k| {
        let id = c.resolve(k)?;
        let v = c.wait_down(&id)?;
        println!("{}", v.state.exit_code.unwrap_or(-1));
        Ok(())
    }))
}

/// `rm` flags.
#[derive(Args)]
pub struct RmArgs {
    /// Kill a running container first
    #[arg(short, long)]
    force: bool,
    /// Also remove its anonymous volumes
    #[arg(short, long)]
    volumes: bool,
    /// Containers
    #[arg(required = true)]
    containers: Vec<String>,
}

fn anonymous(m: &skiff_runtime::MountSpec) -> bool {
    m.kind == skiff_runtime::MountKind::Volume
        && m.name
            .as_deref()
            .is_some_and(skiff_runtime::container::volumes::is_anonymous)
}

/// `skiff rm`.
pub fn rm(a: RmArgs) -> Result<ExitCode> {
    let (dirs, c) = ctx::containers()?;
    let remove = ctx::remover(&dirs);
    Ok(for_each(&a.containers, |k| {
        let id = c.resolve(k)?;
        // A damaged record is removed too (its config may be what is damaged).
        let cfg = c.load(&id).ok().map(|(cfg, _)| cfg);
        c.remove(&id, a.force, &remove)?;
        if a.volumes {
            for m in cfg.iter().flat_map(|c| &c.mounts).filter(|m| anonymous(m)) {
                remove(&m.source)?;
            }
        }
        println!("{k}");
        Ok(())
    }))
}

/// `container prune` flags.
#[derive(Args)]
pub struct PruneArgs {
    /// Do not ask
    #[arg(short, long)]
    force: bool,
    /// until=TIME: only containers created before
    #[arg(long, action = ArgAction::Append)]
    filter: Vec<String>,
}

/// `skiff container prune`.
pub fn prune(a: PruneArgs) -> Result<ExitCode> {
    let mut until = None;
    for f in &a.filter {
        match f.split_once('=') {
            Some(("until", t)) => until = Some(parse_time(t)?),
            _ => bail!("invalid --filter {f:?}: container prune knows until=TIME"),
        }
    }
    if !a.force
        && !prompt::confirm(
            "container prune",
            "WARNING! This will remove all stopped containers.",
        )?
    {
        return Ok(ExitCode::SUCCESS);
    }
    println!("Deleted Containers:");
    let freed = ctx::prune_stopped(until)?;
    println!("\nTotal reclaimed space: {}", human::size(freed));
    Ok(ExitCode::SUCCESS)
}

/// `skiff rename`.
pub fn rename(old: &str, new: &str) -> Result<ExitCode> {
    let (_, c) = ctx::containers()?;
    let id = c.resolve(old)?;
    c.rename(&id, new)?;
    Ok(ExitCode::SUCCESS)
}

/// `skiff pause` and `skiff unpause`.
pub fn pause(names: &[String], on: bool) -> Result<ExitCode> {
    let (_, c) = ctx::containers()?;
    Ok(for_each(names, |k| {
        let id = c.resolve(k)?;
        if on {
            c.pause(&id)?;
        } else {
            c.unpause(&id)?;
        }
        println!("{k}");
        Ok(())
    }))
}
