//! `update`: a container's restart policy and limits changed after `run`. Both are written to
//! its `config.json` (the monitor reads the policy again at each exit, and the limits at each
//! start); the limits of a running container are also changed in its cgroup where it has one.

use crate::cgroups::Limits;
use crate::container::config::RestartPolicy;
use crate::container::records::Containers;
use crate::error::Result;

/// What `update` asks for; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct Update {
    /// `--restart`.
    pub restart: Option<RestartPolicy>,
    /// `--memory`, bytes.
    pub memory: Option<u64>,
    /// `--pids-limit`: `Some(None)` removes the limit (`0` or `-1`, as Docker).
    pub pids: Option<Option<u64>>,
    /// `--cpus`, millionths of a CPU.
    pub cpu_micros: Option<u64>,
}

impl Update {
    /// Whether any limit is asked for (not only the policy).
    pub fn limits(&self) -> bool {
        self.memory.is_some() || self.pids.is_some() || self.cpu_micros.is_some()
    }
}

impl Containers {
    /// Applies `u` to container `id` under its lock; returns a warning when a running
    /// container's limits could not be changed now (they are kept for its next start).
    pub fn update(&self, id: &str, u: &Update) -> Result<Option<String>> {
        let _lock = self.lock(id)?;
        let (mut cfg, _) = self.load(id)?;
        if let Some(p) = u.restart {
            if cfg.auto_remove && p != RestartPolicy::No {
                return Err(crate::spec::error::SpecError::Flag {
                    flag: "--restart",
                    value: String::from(p),
                    fix: format!(
                        "container {} was started with --rm, which no restart policy goes with",
                        cfg.name
                    ),
                }
                .into());
            }
            cfg.restart = p;
        }
        let old = cfg.limits.clone();
        cfg.limits = Limits {
            memory: u.memory.or(old.memory),
            pids: u.pids.unwrap_or(old.pids),
            cpu_micros: u.cpu_micros.or(old.cpu_micros),
        };
        self.save_config(id, &cfg)?;
        drop(_lock);
        if !u.limits() || !self.view(id)?.running() {
            return Ok(None);
        }
        Ok(crate::cgroups::update(id, &cfg.limits)
            .err()
            .map(|why| format!("the limits of {} are not changed now: {why}", cfg.name)))
    }
}
