//! `skiff system df` and `skiff system prune`: what images, containers and volumes take on disk,
//! and one command that takes back everything nothing uses — so nothing is left behind. Also
//! Docker's `system events` and `system info`, the top-level commands with their own flags.

use std::collections::HashSet;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};

use crate::ctx::{self, open_store};
use crate::output::{human, prompt, table};

/// `skiff system …`.
#[derive(Subcommand)]
pub enum SystemCmd {
    /// Show disk usage of images, containers and volumes
    Df,
    /// Remove stopped containers, unused data and (with -a) unused images
    Prune(PruneArgs),
    /// Show what happens to your containers and images (as `skiff events`)
    #[command(after_help = crate::EVENTS_EXAMPLES)]
    Events(crate::args::EventsArgs),
    /// Show what skiff finds on this machine for you (as `skiff info`)
    Info(crate::args::InfoArgs),
}

/// `system prune` flags.
#[derive(Args)]
pub struct PruneArgs {
    /// Do not ask
    #[arg(short, long)]
    force: bool,
    /// Also remove every image no container uses
    #[arg(short, long)]
    all: bool,
    /// Also remove anonymous volumes no container uses
    #[arg(long)]
    volumes: bool,
}

/// Runs a `system` subcommand.
pub fn run(cmd: SystemCmd) -> Result<ExitCode> {
    match cmd {
        SystemCmd::Df => df(),
        SystemCmd::Prune(a) => prune(a),
        // Dispatched by main with the top-level commands (one command file never calls another).
        SystemCmd::Events(_) | SystemCmd::Info(_) => {
            anyhow::bail!("system events and system info are dispatched with events and info")
        }
    }
}

fn df() -> Result<ExitCode> {
    let store = open_store()?;
    let (_, c) = ctx::containers()?;
    let in_use = ctx::in_use(&store.dirs)?;
    let mut seen = HashSet::new();
    let (mut images, mut active_images, mut image_size, mut image_free) = (0, 0, 0u64, 0u64);
    for i in store.list()? {
        if !seen.insert(i.id.to_string()) {
            continue;
        }
        images += 1;
        image_size += i.size;
        if in_use.uses_image(&i.id.to_string()) {
            active_images += 1;
        } else {
            image_free += i.size;
        }
    }
    let views = c.views()?;
    let (mut ctr_size, mut ctr_free) = (0u64, 0u64);
    for v in &views {
        let size = ctx::dir_size(&c.dir(&v.cfg.id).join("upper"));
        ctr_size += size;
        if !v.active() {
            ctr_free += size;
        }
    }
    let running = views.iter().filter(|v| v.active()).count();
    let vols = c.list_volumes()?;
    let (mut vol_size, mut vol_free) = (0u64, 0u64);
    for v in &vols {
        let size = ctx::dir_size(&v.mountpoint);
        vol_size += size;
        if v.users.is_empty() {
            vol_free += size;
        }
    }
    let active_vols = vols.iter().filter(|v| !v.users.is_empty()).count();
    let pct = |part: u64, whole: u64| {
        (part * 100)
            .checked_div(whole)
            .map(|p| format!(" ({p}%)"))
            .unwrap_or_default()
    };
    let lines = vec![
        "TYPE\tTOTAL\tACTIVE\tSIZE\tRECLAIMABLE".to_string(),
        format!(
            "Images\t{images}\t{active_images}\t{}\t{}{}",
            human::size(image_size),
            human::size(image_free),
            pct(image_free, image_size)
        ),
        format!(
            "Containers\t{}\t{running}\t{}\t{}{}",
            views.len(),
            human::size(ctr_size),
            human::size(ctr_free),
            pct(ctr_free, ctr_size)
        ),
        format!(
            "Local Volumes\t{}\t{active_vols}\t{}\t{}{}",
            vols.len(),
            human::size(vol_size),
            human::size(vol_free),
            pct(vol_free, vol_size)
        ),
    ];
    table::print_aligned(&lines);
    Ok(ExitCode::SUCCESS)
}

fn prune(a: PruneArgs) -> Result<ExitCode> {
    let mut warning = "WARNING! This will remove:\n  - all stopped containers".to_string();
    if a.volumes {
        warning.push_str("\n  - all anonymous volumes not used by at least one container");
    }
    warning.push_str(if a.all {
        "\n  - all images without at least one container associated to them"
    } else {
        "\n  - all blobs and unpacked layers no image uses"
    });
    if !a.force && !prompt::confirm("system prune", &warning)? {
        return Ok(ExitCode::SUCCESS);
    }
    println!("Deleted Containers:");
    let mut freed = ctx::prune_stopped(None)?;
    if a.volumes {
        let (dirs, c) = ctx::containers()?;
        let remove = ctx::remover(&dirs);
        println!("\nDeleted Volumes:");
        for v in c.list_volumes()? {
            if v.users.is_empty() && v.anonymous() {
                let size = ctx::dir_size(&v.mountpoint);
                c.remove_volume(&v.name, &remove)?;
                freed += size;
                println!("{}", v.name);
            }
        }
    }
    let store = open_store()?;
    // What the store held before, to report what removing images and pruning freed.
    let store_bytes = || ctx::dir_size(&store.dirs.store()) + ctx::dir_size(&store.dirs.layers());
    let before = store_bytes();
    let unpacker = ctx::unpacker::for_this_user(&store.dirs);
    // The collector's lock first: what containers use is read under it (see rmi).
    let gc = store.lock_for_gc()?;
    let in_use = ctx::in_use(&store.dirs)?;
    if a.all {
        println!("\nDeleted Images:");
        for i in store.list()? {
            if in_use.uses_image(&i.id.to_string()) {
                continue;
            }
            for line in store.remove(&gc, &i.reference, false, &*unpacker, &in_use.layers)? {
                println!("{line}");
            }
        }
    }
    store.prune(&gc, &*unpacker, &in_use.layers)?;
    freed += before.saturating_sub(store_bytes());
    println!("\nTotal reclaimed space: {}", human::size(freed));
    Ok(ExitCode::SUCCESS)
}
