//! `skiff-monitor ID [--attached] [--ready-fd N] [--no-sig-proxy] [--log-max BYTES]`: one container's monitor (see
//! `skiff_runtime::monitor`). Started by `skiff run`/`start`; not for direct use. Kept apart from
//! the `skiff` binary so that each long-lived monitor stays small in memory.

use std::path::Path;
use std::process::{Command, ExitCode, Stdio};

use skiff_runtime::monitor::protocol::Request;
use skiff_runtime::monitor::{self, MonitorOptions};
use skiff_runtime::userns::identity::Identity;
use skiff_runtime::Containers;
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
    let status = match Identity::current() {
        who @ Identity::Mapped(_) => who
            .spawn(cmd)
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
    let req = match Request::parse(&args) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(125);
        }
    };
    if let Some(fd) = req.ready_fd {
        // The report pipe is not for the container: close it at exec.
        // SAFETY: setting FD_CLOEXEC on an fd this process was handed.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    let dirs = Dirs::from_env();
    let containers = match Containers::open(&dirs) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::from(125);
        }
    };
    let code = monitor::run(
        &containers,
        &req.id,
        MonitorOptions {
            attached: req.attached,
            ready_fd: req.ready_fd,
            sig_proxy: req.sig_proxy,
            remove: &remove,
            log_max: req.log_max,
        },
    );
    ExitCode::from(u8::try_from(code).unwrap_or(125))
}
