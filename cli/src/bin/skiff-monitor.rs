//! `skiff-monitor ID [--attached] [--ready-fd N] [--no-sig-proxy] [--log-max BYTES]`: one container's monitor (see
//! `skiff_runtime::monitor`). Started by `skiff run`/`start`; not for direct use. Kept apart from
//! the `skiff` binary so that each long-lived monitor stays small in memory.

use std::path::Path;
use std::process::{Command, ExitCode, Stdio};

use skiff_runtime::monitor::{self, MonitorOptions};
use skiff_runtime::{userns, Containers, IdMap};
use skiff_store::Dirs;

/// Removes a container directory: directly, or through `skiff __rmtree` inside the user
/// namespace when a file belongs to a subordinate id.
fn remove(p: &Path) -> skiff_runtime::Result<()> {
    if skiff_store::unpack::remove_tree(p).is_ok() {
        return Ok(());
    }
    let skiff = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("skiff")))
        .unwrap_or_else(|| "skiff".into());
    let mut cmd = Command::new(skiff);
    cmd.arg("__rmtree")
        .arg(p)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let status = match IdMap::for_current_user() {
        Some(map) if !nix::unistd::geteuid().is_root() => userns::spawn_mapped(cmd, &map)
            .map_err(|e| skiff_runtime::Error::Setup(e.to_string()))?
            .wait(),
        _ => cmd.status(),
    };
    match status {
        Ok(s) if s.success() => Ok(()),
        _ => Err(skiff_runtime::Error::Setup(format!(
            "could not remove {}",
            p.display()
        ))),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(id) = args.first().filter(|a| !a.starts_with('-')) else {
        eprintln!("usage: skiff-monitor ID [--attached] [--ready-fd N] [--no-sig-proxy] [--log-max BYTES] (started by skiff run)");
        return ExitCode::from(125);
    };
    let attached = args.iter().any(|a| a == "--attached");
    let sig_proxy = !args.iter().any(|a| a == "--no-sig-proxy");
    let ready_fd = args
        .iter()
        .position(|a| a == "--ready-fd")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse::<i32>().ok());
    if let Some(fd) = ready_fd {
        // The report pipe is not for the container: close it at exec.
        // SAFETY: setting FD_CLOEXEC on an fd this process was handed.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    let dirs = Dirs::from_env();
    // Settings come from the caller (skiff reads config.toml): the monitor parses no config.
    let log_max = args
        .iter()
        .position(|a| a == "--log-max")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse::<u64>().ok());
    let (containers, log_max) = match Containers::open(&dirs).map(|c| (c, log_max)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::from(125);
        }
    };
    let code = monitor::run(
        &containers,
        id,
        MonitorOptions {
            attached,
            ready_fd,
            sig_proxy,
            remove: &remove,
            log_max,
        },
    );
    ExitCode::from(u8::try_from(code).unwrap_or(125))
}
