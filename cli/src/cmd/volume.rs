//! `skiff volume ls|create|inspect|rm|prune`, as Docker's: volumes a container record names are
//! never removed; `prune` takes anonymous ones unless `-a`.

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use skiff_runtime::container::volumes::Volume;

use crate::ctx::{self, for_each};
use crate::output::{format, prompt, table};

/// `skiff volume …`.
#[derive(Subcommand)]
pub enum VolumeCmd {
    /// List volumes
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Create a volume (a random name if none is given)
    Create {
        /// Name
        name: Option<String>,
    },
    /// Show volumes as JSON
    Inspect(InspectArgs),
    /// Remove volumes no container uses
    Rm(RmArgs),
    /// Remove unused anonymous volumes (all unused ones with -a)
    Prune(PruneArgs),
}

/// `volume ls` flags.
#[derive(Args)]
pub struct LsArgs {
    /// Names only
    #[arg(short, long)]
    quiet: bool,
    /// dangling=true (no container uses it), name=TEXT
    #[arg(short, long)]
    filter: Vec<String>,
}

/// `volume inspect` flags.
#[derive(Args)]
pub struct InspectArgs {
    /// Volumes
    #[arg(required = true)]
    names: Vec<String>,
    /// Go template applied to each volume
    #[arg(short, long)]
    format: Option<String>,
}

/// `volume rm` flags.
#[derive(Args)]
pub struct RmArgs {
    /// No error for a volume that does not exist
    #[arg(short, long)]
    force: bool,
    /// Volumes
    #[arg(required = true)]
    names: Vec<String>,
}

/// `volume prune` flags.
#[derive(Args)]
pub struct PruneArgs {
    /// Do not ask
    #[arg(short, long)]
    force: bool,
    /// Named volumes too, not only anonymous ones
    #[arg(short, long)]
    all: bool,
}

/// Docker's `volume inspect` document.
fn doc(v: &Volume) -> serde_json::Value {
    serde_json::json!({
        "CreatedAt": v.created, "Driver": "local", "Labels": {}, "Mountpoint": v.mountpoint,
        "Name": v.name, "Options": {}, "Scope": "local", "UsedBy": v.users,
    })
}

/// Runs a `volume` subcommand.
pub fn run(cmd: VolumeCmd) -> Result<ExitCode> {
    let (dirs, c) = ctx::containers()?;
    match cmd {
        VolumeCmd::Ls(a) => {
            let mut vols = c.list_volumes()?;
            for f in &a.filter {
                match f.split_once('=') {
                    Some(("dangling", v)) => {
                        let want = v == "true" || v == "1";
                        vols.retain(|x| x.users.is_empty() == want);
                    }
                    Some(("name", n)) => vols.retain(|x| x.name.contains(n)),
                    _ => bail!(
                        "invalid --filter {f:?}: volume ls knows dangling=true|false and name=TEXT"
                    ),
                }
            }
            if a.quiet {
                vols.iter().for_each(|v| println!("{}", v.name));
            } else {
                let mut lines = vec!["DRIVER\tVOLUME NAME".to_string()];
                lines.extend(vols.iter().map(|v| format!("local\t{}", v.name)));
                table::print_aligned(&lines);
            }
            Ok(ExitCode::SUCCESS)
        }
        VolumeCmd::Create { name } => {
            let name = match name {
                Some(n) => n,
                None => skiff_runtime::container::records::random_bytes::<16>()?
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect(),
            };
            c.volume(&name)?;
            println!("{name}");
            Ok(ExitCode::SUCCESS)
        }
        VolumeCmd::Inspect(a) => {
            let mut docs = Vec::new();
            for n in &a.names {
                docs.push(doc(&c.find_volume(n)?));
            }
            format::print_docs(a.format.as_deref(), &docs)?;
            Ok(ExitCode::SUCCESS)
        }
        VolumeCmd::Rm(a) => {
            let remove = ctx::remover(&dirs);
            Ok(for_each(&a.names, |n| {
                if a.force && c.find_volume(n).is_err() {
                    return Ok(());
                }
                c.remove_volume(n, &remove)?;
                println!("{n}");
                Ok(())
            }))
        }
        VolumeCmd::Prune(a) => {
            let warning = format!(
                "WARNING! This will remove {} volumes not used by at least one container.",
                if a.all { "all" } else { "anonymous" }
            );
            if !a.force && !prompt::confirm("volume prune", &warning)? {
                return Ok(ExitCode::SUCCESS);
            }
            let remove = ctx::remover(&dirs);
            println!("Deleted Volumes:");
            for v in c.list_volumes()? {
                if v.users.is_empty() && (a.all || v.anonymous()) {
                    c.remove_volume(&v.name, &remove)?;
                    println!("{}", v.name);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
