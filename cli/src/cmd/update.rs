//! `skiff update` / `skiff container update`: a container's restart policy and limits changed
//! after `run`, as Docker's; each name is printed as given once done.

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;
use skiff_runtime::cgroups::Limits;
use skiff_runtime::container::config::RestartPolicy;
use skiff_runtime::container::update::Update;

use crate::ctx::{self, for_each};

/// `update` flags.
#[derive(Args)]
pub struct UpdateArgs {
    /// Restart policy: no, on-failure[:N], always or unless-stopped
    #[arg(long)]
    restart: Option<String>,
    /// Memory limit (512m, 1g), where cgroups allow it
    #[arg(short, long)]
    memory: Option<String>,
    /// Most processes the container may have (0 or -1: no limit)
    #[arg(long, allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    /// CPUs the container may use (1.5)
    #[arg(long)]
    cpus: Option<String>,
    /// Containers
    #[arg(required = true)]
    containers: Vec<String>,
}

/// `skiff update`: every flag is checked before any container changes.
pub fn update(a: UpdateArgs) -> Result<ExitCode> {
    if a.restart.is_none() && a.memory.is_none() && a.pids_limit.is_none() && a.cpus.is_none() {
        bail!("nothing to update: give --restart, --memory, --cpus or --pids-limit");
    }
    let limits = Limits::parse(a.memory.as_deref(), a.pids_limit, a.cpus.as_deref())?;
    let u = Update {
        restart: a.restart.as_deref().map(RestartPolicy::parse).transpose()?,
        memory: limits.memory,
        pids: a.pids_limit.map(|_| limits.pids),
        cpu_micros: limits.cpu_micros,
    };
    let rootless = !skiff_runtime::userns::identity::Identity::current().is_root();
    let (_, c) = ctx::containers()?;
    Ok(for_each(&a.containers, |k| {
        let id = c.resolve(k)?;
        if let Some(warning) = c.update(&id, &u)? {
            let why = if rootless {
                " (limits for rootless containers are not supported yet: they need cgroup v2 delegated through systemd)"
            } else {
                ""
            };
            eprintln!("WARNING: {warning}{why}");
        }
        println!("{k}");
        Ok(())
    }))
}
