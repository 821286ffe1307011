//! `skiff-monitor ID [--attached] [--ready-fd N] [--no-sig-proxy] [--log-max BYTES]`: one container's monitor (see
//! `skiff_runtime::monitor`). Started by `skiff run`/`start`; not for direct use. Kept apart from
//! the `skiff` binary so that each long-lived monitor stays small in memory.

use std::path::Path;
use std::process::{Command, ExitCode, Stdio};

use skiff_runtime::hooks::Event;
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
    let mut cmd = Command::new(skiff_beside());
    cmd.arg("__rmtree")
        .arg(p)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let status = match Identity::current() {
        who @ Identity::Mapped(_) => who
            .spawn(cmd)
            .map_err(|e| skiff_runtime::Error::Remove {
                path: p.to_path_buf(),
                cause: Some(e.to_string()),
            })?
            .wait(),
        _ => cmd.status(),
    };
    match status {
        Ok(s) if s.success() => Ok(()),
        _ => Err(skiff_runtime::Error::Remove {
            path: p.to_path_buf(),
            cause: None,
        }),
    }
}

/// Hands a lifecycle event to `skiff __hook` (beside this executable) on its stdin, and waits for
/// it: the hooks run in skiff, so this monitor never links them.
fn run_hooks(event: &Event) {
    let Ok(json) = serde_json::to_vec(event) else {
        return;
    };
    let child = Command::new(skiff_beside())
        .arg("__hook")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn();
    if let Ok(mut child) = child {
        if let Some(mut stdin) = child.stdin.take() {
            let _ = std::io::Write::write_all(&mut stdin, &json);
        }
        let _ = child.wait();
    }
}

/// The `skiff` executable installed beside this monitor.
fn skiff_beside() -> std::path::PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("skiff")))
        .unwrap_or_else(|| "skiff".into())
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
        let _ = skiff_runtime::sys::fd::close_on_exec(fd);
    }
    let dirs = Dirs::from_env();
    let containers = match Containers::open(&dirs) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::from(125);
        }
    };
    let notify = |event: &Event| run_hooks(event);
    let code = monitor::run(
        &containers,
        &req.id,
        MonitorOptions {
            attached: req.attached,
            ready_fd: req.ready_fd,
            sig_proxy: req.sig_proxy,
            remove: &remove,
            log_max: req.log_max,
            notify: if req.hooks { Some(&notify) } else { None },
        },
    );
    ExitCode::from(u8::try_from(code).unwrap_or(125))
}
