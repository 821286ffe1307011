//! `skiff healthcheck run CTR` (podman's): the container's healthcheck once, now.

use std::process::ExitCode;

use anyhow::Result;
use skiff_runtime::container::health;

use crate::ctx;

/// `skiff healthcheck run CTR`: runs the check now, records the result as the periodic checks
/// do, prints `healthy` or `unhealthy` and exits 0 or 1.
pub fn run(container: &str) -> Result<ExitCode> {
    let (_, c) = ctx::containers()?;
    let id = c.resolve(container)?;
    let v = c.view(&id)?;
    if !v.running() {
        return Err(skiff_runtime::container::StateError::NotRunning(v.cfg.name.clone()).into());
    }
    let Some(hc) = v.cfg.healthcheck.clone().filter(|h| h.active()) else {
        anyhow::bail!(
            "container {} has no healthcheck: create it with --health-cmd, or from an image with a HEALTHCHECK",
            v.cfg.name
        );
    };
    let in_start_period = v
        .state
        .started_at
        .as_deref()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .and_then(|t| {
            let sp = chrono::Duration::from_std(hc.start_period()).ok()?;
            Some(chrono::Utc::now() < t + sp)
        })
        .unwrap_or(false);
    let exe = std::env::current_exe()?;
    let r = health::run_check(&exe, &id, &hc);
    let passed = r.exit_code == 0;
    health::record(&c.dir(&id), &hc, r, in_start_period)?;
    println!("{}", if passed { "healthy" } else { "unhealthy" });
    Ok(ExitCode::from(u8::from(!passed)))
}
