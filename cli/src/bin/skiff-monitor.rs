//! `skiff-monitor ID [--attached] [--ready-fd N] [--no-sig-proxy] [--log-max BYTES]`: one container's monitor (see
//! `skiff_runtime::monitor`); `skiff-monitor --network-holder DIR RECORDS`: the user's network holder
//! (`skiff_runtime::network::holder`). Started by `skiff run`/`start`; not for direct use. Kept apart from
//! the `skiff` binary so that each long-lived monitor stays small in memory.

use std::cell::RefCell;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};

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

/// How long a `skiff __hook` helper started for after-start waits for the container's
/// after-exit before it ends: a short-lived container's two events then cost one helper.
const LINGER_MS: &str = "2000";

/// What `skiff __hook --linger-ms` exits with when it stopped waiting without reading an event.
const STOPPED_WAITING: i32 = 3;

/// Hands lifecycle events to `skiff __hook` (beside this executable) on its stdin: the hooks run
/// in skiff, so this monitor never links them. after-start goes to a new helper that is not
/// waited for (the container runs meanwhile) and that waits a moment for the same container's
/// after-exit; after-exit goes to that helper if it is still waiting, or else to a new one, and
/// is waited for. One helper handles its events in order, so the exit is never seen first.
fn run_hooks(pending: &RefCell<Option<Child>>, event: &Event) {
    let Ok(mut line) = serde_json::to_vec(event) else {
        return;
    };
    line.push(b'\n');
    let helper = |linger: bool| {
        let mut c = Command::new(skiff_beside());
        c.arg("__hook").stdin(Stdio::piped()).stdout(Stdio::null());
        if linger {
            c.args(["--linger-ms", LINGER_MS]);
        }
        c.spawn().ok()
    };
    match event {
        Event::AfterStart(_) => {
            // A helper of an earlier start (a restart policy) finishes first.
            if let Some(mut old) = pending.borrow_mut().take() {
                drop(old.stdin.take());
                let _ = old.wait();
            }
            if let Some(mut child) = helper(true) {
                let sent = child
                    .stdin
                    .as_mut()
                    .is_some_and(|i| i.write_all(&line).is_ok());
                if sent {
                    *pending.borrow_mut() = Some(child);
                } else {
                    drop(child.stdin.take());
                    let _ = child.wait();
                }
            }
        }
        Event::AfterExit(_) => {
            if let Some(mut waiting) = pending.borrow_mut().take() {
                let alive = matches!(waiting.try_wait(), Ok(None));
                let sent = alive
                    && waiting
                        .stdin
                        .take()
                        .is_some_and(|mut i| i.write_all(&line).is_ok());
                drop(waiting.stdin.take());
                let status = waiting.wait();
                let handled = sent
                    && status
                        .as_ref()
                        .is_ok_and(|s| s.code() != Some(STOPPED_WAITING));
                if handled {
                    return;
                }
            }
            if let Some(mut child) = helper(false) {
                if let Some(mut stdin) = child.stdin.take() {
                    let _ = stdin.write_all(&line);
                }
                let _ = child.wait();
            }
        }
    }
}

/// Starts the container's `skiff __health ID` loop at after-start and ends it at after-exit:
/// the checks join the container from skiff, so this monitor only holds the pipe whose EOF
/// tells the helper the container ended (it sees EOF too should this monitor die).
fn run_health(helper: &RefCell<Option<Child>>, id: &str, event: &Event) {
    if let Some(mut old) = helper.borrow_mut().take() {
        drop(old.stdin.take());
        // Mid-check, it ends as soon as the check does; a short wait, then SIGKILL. (When
        // the pump already reaped it, try_wait fails and there is nothing to kill.)
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
        loop {
            match old.try_wait() {
                Ok(None) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10))
                }
                Ok(None) => {
                    let _ = old.kill();
                    let _ = old.wait();
                    break;
                }
                _ => break,
            }
        }
    }
    if let Event::AfterStart(_) = event {
        let mut c = Command::new(skiff_beside());
        c.args(["__health", id])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        *helper.borrow_mut() = c.spawn().ok();
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
    if let [flag, dir, records] = args.as_slice() {
        if flag == skiff_runtime::network::holder::HOLDER_ARG {
            let code = skiff_runtime::network::holder::serve(Path::new(dir), Path::new(records));
            return ExitCode::from(u8::try_from(code).unwrap_or(1));
        }
    }
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
    let pending = RefCell::new(None);
    let health = containers
        .load(&req.id)
        .is_ok_and(|(cfg, _)| cfg.healthcheck.is_some_and(|h| h.active()));
    let checker = RefCell::new(None);
    let notify = |event: &Event| {
        if health {
            run_health(&checker, &req.id, event);
        }
        if req.hooks {
            run_hooks(&pending, event);
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
            notify: if req.hooks || health {
                Some(&notify)
            } else {
                None
            },
        },
    );
    ExitCode::from(u8::try_from(code).unwrap_or(125))
}
