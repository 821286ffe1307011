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

/// How long a `skiff __hook` helper that handled an after-start waits for the container's
/// after-exit before it ends: a short-lived container's two events then cost one helper.
const LINGER_MS: &str = "2000";

/// A `skiff __hook` helper: it reads events as JSON lines on its stdin and writes one byte to
/// its stdout for each it has delivered.
struct Helper {
    child: Child,
    /// Events written to it.
    sent: usize,
}

impl Helper {
    /// A helper beside this executable; with `linger`, it waits a moment after its first event
    /// for one more.
    fn spawn(linger: bool) -> Option<Helper> {
        let mut c = Command::new(skiff_beside());
        c.arg("__hook").stdin(Stdio::piped()).stdout(Stdio::piped());
        if linger {
            c.args(["--linger-ms", LINGER_MS]);
        }
        c.spawn().ok().map(|child| Helper { child, sent: 0 })
    }

    /// Writes one event line; false when the helper is gone.
    fn send(&mut self, line: &[u8]) -> bool {
        let ok = self
            .child
            .stdin
            .as_mut()
            .is_some_and(|i| i.write_all(line).is_ok());
        self.sent += usize::from(ok);
        ok
    }

    /// Closes its stdin and waits until it has delivered every event sent (true) or ended
    /// without (false). It is not waited for after that: its own exit is not on the
    /// container's path.
    fn delivered(mut self) -> bool {
        drop(self.child.stdin.take());
        let mut acks = 0;
        if let Some(mut out) = self.child.stdout.take() {
            let mut buf = [0u8; 16];
            while acks < self.sent {
                match std::io::Read::read(&mut out, &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => acks += n,
                }
            }
        }
        let all = acks >= self.sent;
        if !all {
            let _ = self.child.wait();
        }
        all
    }
}

/// Hands lifecycle events to `skiff __hook` helpers: the hooks run in skiff, so this monitor
/// never links them. The first helper is started with the monitor (`early`), so that it loads
/// the plugins and makes their instances while the container is set up. after-start goes to
/// the helper waiting for it (or a new one) and is not waited for (the container runs
/// meanwhile); that helper waits a moment for the same container's after-exit. after-exit goes
/// to that helper if it still waits, or else to a new one, and is not waited for either: the
/// monitor writes the state and removes an `--rm` container meanwhile, and [`settle`] waits
/// for it before the monitor ends. One helper handles its events in order, so the exit is
/// never seen first.
fn run_hooks(pending: &RefCell<Option<Helper>>, event: &Event) {
    let Ok(mut line) = serde_json::to_vec(event) else {
        return;
    };
    line.push(b'\n');
    let mut slot = pending.borrow_mut();
    match event {
        Event::AfterStart(_) => {
            if let Some(h) = slot.as_mut().filter(|h| h.sent == 0) {
                if h.send(&line) {
                    return;
                }
            }
            // A helper of an earlier start (a restart policy) finishes first.
            if let Some(old) = slot.take() {
                old.delivered();
            }
            if let Some(mut h) = Helper::spawn(true) {
                if h.send(&line) {
                    *slot = Some(h);
                } else {
                    h.delivered();
                }
            }
        }
        Event::AfterExit(_) => {
            if let Some(mut waiting) = slot.take() {
                let alive = matches!(waiting.child.try_wait(), Ok(None));
                if alive && waiting.send(&line) {
                    *slot = Some(waiting);
                    return;
                }
                // It ended without taking the exit: whatever it delivered is done.
                waiting.delivered();
            }
            if let Some(mut h) = Helper::spawn(false) {
                if h.send(&line) {
                    *slot = Some(h);
                } else {
                    h.delivered();
                }
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
    // Started now, it is ready by the time the container starts.
    let pending = RefCell::new(if req.hooks { Helper::spawn(true) } else { None });
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
    settle(&pending);
    ExitCode::from(u8::try_from(code).unwrap_or(125))
}

/// Waits until the last helper has delivered every event handed to it: an attached `run`
/// returns, and any monitor ends, only once the container's after-exit hooks have run.
fn settle(pending: &RefCell<Option<Helper>>) {
    if let Some(h) = pending.borrow_mut().take() {
        h.delivered();
    }
}
