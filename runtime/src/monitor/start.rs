//! Starting a container's monitor from skiff. Attached, the monitor replaces skiff (keeping its
//! pid, terminal and signals, so its exit code is the container's); detached, it runs in its own
//! session with no terminal and reports on a pipe (see `protocol`) until the container started.

use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::protocol::{Report, Request};

/// How a detached start ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The container's first process runs.
    Started,
    /// The container could not start: Docker's exit code for it and the reason.
    Failed {
        /// 125, 126 or 127.
        code: i32,
        /// The one-line reason.
        message: String,
    },
}

/// Why a monitor could not be started or did not answer.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// skiff-monitor is not where skiff expects it.
    #[error(
        "{0} is missing: skiff-monitor must be installed beside skiff (cargo install builds both)"
    )]
    Missing(PathBuf),
    /// The exec (attached) or spawn (detached) failed.
    #[error("starting the monitor: {0}")]
    Spawn(std::io::Error),
    /// The start-up pipe could not be made or read.
    #[error("waiting for the container to start: {0}")]
    Pipe(std::io::Error),
    /// The monitor went away without a report.
    #[error("the monitor of {0} exited before the container started")]
    Vanished(String),
}

/// The monitor executable installed beside `skiff` (the running executable).
pub fn monitor_beside(skiff: &Path) -> Result<PathBuf, StartError> {
    let monitor = skiff.with_file_name("skiff-monitor");
    if monitor.is_file() {
        Ok(monitor)
    } else {
        Err(StartError::Missing(monitor))
    }
}

/// Replaces this process with the monitor of `req` (attached). Returns only on failure.
pub fn exec_attached(monitor: &Path, req: &Request) -> StartError {
    let req = Request {
        attached: true,
        ready_fd: None,
        ..req.clone()
    };
    StartError::Spawn(Command::new(monitor).args(req.to_args()).exec())
}

/// Spawns the monitor of `req` in its own session and waits until the container started or
/// failed to; each warning it reports on the way is handed to `warn`.
pub fn spawn_detached(
    monitor: &Path,
    req: &Request,
    mut warn: impl FnMut(&str),
) -> Result<Outcome, StartError> {
    let (r, w) = nix::unistd::pipe().map_err(|e| StartError::Pipe(e.into()))?;
    let req = Request {
        attached: false,
        ready_fd: Some(w.as_raw_fd()),
        ..req.clone()
    };
    let mut cmd = Command::new(monitor);
    cmd.args(req.to_args())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: setsid in the child before exec; the write end stays open across exec by design.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(StartError::Spawn)?;
    drop(w);
    let mut lines = BufReader::new(std::fs::File::from(r));
    let mut line = String::new();
    loop {
        line.clear();
        let n = lines.read_line(&mut line).map_err(StartError::Pipe)?;
        let report = Report::parse(&line);
        match report {
            Some(Report::Warning(w)) => warn(&w),
            Some(Report::Started) => return Ok(Outcome::Started),
            Some(Report::Failed { code, message }) => {
                let _ = child.try_wait();
                return Ok(Outcome::Failed { code, message });
            }
            None if n == 0 => {
                let _ = child.try_wait();
                return Err(StartError::Vanished(
                    req.id[..12.min(req.id.len())].to_string(),
                ));
            }
            None => {}
        }
    }
}
