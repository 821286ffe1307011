//! `exec`: run another command in a running container — its namespaces, its rootfs, its identity
//! rules and its confinement (capabilities, no_new_privs, seccomp) — and exit with its code.
//!
//! The caller must be single-threaded (joining a user namespace requires it). A forked child joins
//! the container's namespaces; joining a pid namespace only applies to children, so it forks once
//! more, and that grandchild becomes the command.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sched::CloneFlags;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::ForkResult;

use crate::containers::Containers;
use crate::error::{Error, Result};
use crate::init::{exec, report_failure, take_identity};

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// Command and arguments.
    pub args: Vec<String>,
    /// Extra `KEY=VALUE`s over the container's environment.
    pub env: Vec<String>,
    /// `-u` (default: the container's user).
    pub user: Option<String>,
    /// `-w` (default: the container's working directory).
    pub workdir: Option<String>,
    /// `-d`: start it and return.
    pub detach: bool,
    /// `-i`: the command reads skiff's stdin (otherwise /dev/null).
    pub interactive: bool,
    /// `-t`: the command gets a new pty made inside the container, relayed to skiff's terminal.
    pub tty: bool,
}

fn ns_fd(pid: i32, ns: &str) -> Result<OwnedFd> {
    File::open(format!("/proc/{pid}/ns/{ns}"))
        .map(OwnedFd::from)
        .map_err(|e| Error::Io {
            context: format!("opening the {ns} namespace of the container"),
            source: e,
        })
}

fn same_ns(pid: i32, ns: &str) -> bool {
    std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).ok()
        == std::fs::read_link(format!("/proc/self/ns/{ns}")).ok()
}

fn exit_code(ws: WaitStatus) -> i32 {
    crate::procfs::exit_code(ws).unwrap_or(125)
}

fn die(err_fd: std::os::fd::RawFd, f: crate::init::Fail) -> ! {
    std::process::exit(report_failure(err_fd, f))
}

/// The namespaces of a container's process `pid` to join, in the order they must be joined
/// (user first), each with its fd; those it shares with us (the network under `--network host`)
/// are left out: we are in them already, and its user namespace may not own them.
pub(crate) fn namespaces_of(pid: i32) -> Result<Vec<(OwnedFd, CloneFlags, &'static str)>> {
    let mut order = vec![];
    if !same_ns(pid, "user") {
        order.push(("user", CloneFlags::CLONE_NEWUSER));
    }
    for (ns, flag) in [
        ("ipc", CloneFlags::CLONE_NEWIPC),
        ("uts", CloneFlags::CLONE_NEWUTS),
        ("net", CloneFlags::CLONE_NEWNET),
        ("pid", CloneFlags::CLONE_NEWPID),
        ("mnt", CloneFlags::CLONE_NEWNS),
    ] {
        if !same_ns(pid, ns) {
            order.push((ns, flag));
        }
    }
    order
        .iter()
        .map(|(ns, f)| ns_fd(pid, ns).map(|fd| (fd, *f, *ns)))
        .collect()
}

/// Joins the namespaces from [`namespaces_of`] (in a single-threaded forked child). After the
/// mount namespace, `/` is the container's root.
pub(crate) fn enter(fds: &[(OwnedFd, CloneFlags, &str)]) -> std::result::Result<(), String> {
    for (fd, flag, ns) in fds {
        nix::sched::setns(fd, *flag)
            .map_err(|e| format!("joining the container's {ns} namespace: {e}"))?;
    }
    Ok(())
}

/// Runs the command in the container; returns its exit code (0 at once with `detach`).
pub fn exec_in(containers: &Containers, id: &str, o: &ExecOptions) -> Result<i32> {
    let v = containers.view(id)?;
    if !v.running() {
        return Err(Error::Invalid(format!(
            "container {} is not running: start it first (skiff start {})",
            v.cfg.name, v.cfg.name
        )));
    }
    if v.paused() {
        return Err(Error::Invalid(format!(
            "container {} is paused: unpause it first (skiff unpause {})",
            v.cfg.name, v.cfg.name
        )));
    }
    if o.args.is_empty() {
        return Err(Error::Invalid("no command given to exec".into()));
    }
    let pid = v
        .state
        .pid
        .ok_or_else(|| Error::Invalid("no pid recorded".into()))?;
    let fds = namespaces_of(pid)?;
    let mut env = v.cfg.process.env.clone();
    for e in &o.env {
        crate::spec::set_env(&mut env, e.clone());
    }
    // A terminal needs a TERM (`top`, `clear`), as `run -t` gives one; Docker's is xterm.
    if o.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    let user = o.user.clone().unwrap_or_else(|| v.cfg.process.user.clone());
    let cwd = o
        .workdir
        .clone()
        .unwrap_or_else(|| v.cfg.process.cwd.clone());
    let (err_r, err_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| Error::Setup(format!("pipe: {e}")))?;
    let cfg = v.cfg.clone();
    // -t: (our end, the command's end) of the channel its pty master comes back on.
    let console = if o.tty && !o.detach {
        Some(
            crate::console::channel()
                .map_err(|e| Error::Setup(format!("making the terminal channel: {e}")))?,
        )
    } else {
        None
    };
    let winsize = crate::tty::window_size(0).or_else(|| crate::tty::window_size(1));

    // SAFETY: the caller is single-threaded; the child only joins namespaces, forks and execs.
    match unsafe { nix::unistd::fork() }.map_err(|e| Error::Setup(format!("fork: {e}")))? {
        ForkResult::Child => {
            drop(err_r);
            let efd = err_w.as_raw_fd();
            let term_fd = console.as_ref().map(|(_, theirs)| theirs.as_raw_fd());
            if let Err(msg) = enter(&fds) {
                die(efd, (125, msg));
            }
            // Without -i the command reads nothing; -d detaches it from everything.
            let to_null = match (o.detach, o.interactive || term_fd.is_some()) {
                (true, _) => 0..3,
                (false, false) => 0..1,
                (false, true) => 0..0,
            };
            if o.detach {
                let _ = nix::unistd::setsid();
            }
            if let Ok(null) = File::options().read(true).write(true).open("/dev/null") {
                for i in to_null {
                    // SAFETY: pointing our stdio at /dev/null.
                    unsafe { libc::dup2(null.as_raw_fd(), i) };
                }
            }
            // SAFETY: still single-threaded.
            match unsafe { nix::unistd::fork() } {
                Ok(ForkResult::Child) => {
                    if let Some(sock) = term_fd {
                        // A session of its own, so the new pty can be its controlling terminal.
                        if let Err(e) = nix::unistd::setsid() {
                            die(efd, (125, format!("setsid: {e}")));
                        }
                        if let Err(f) = crate::init::give_terminal(sock, winsize.as_ref()) {
                            die(efd, f);
                        }
                    }
                    let r = take_identity(&cfg, &user, &cwd, &env, term_fd.is_some())
                        .and_then(|(env, _)| exec(&o.args, &env));
                    match r {
                        Ok(never) => match never {},
                        Err(f) => die(efd, f),
                    }
                }
                Ok(ForkResult::Parent { child }) => {
                    drop(err_w);
                    let code = waitpid(child, None).map(exit_code).unwrap_or(125);
                    std::process::exit(code)
                }
                Err(e) => die(efd, (125, format!("fork: {e}"))),
            }
        }
        ForkResult::Parent { child } => {
            drop(err_w);
            drop(fds);
            let console = console.map(|(ours, _theirs)| ours);
            let mut msg = String::new();
            if o.detach {
                let _ = std::io::Read::read_to_string(&mut File::from(err_r), &mut msg);
                if !msg.trim().is_empty() {
                    let code = waitpid(child, None).map(exit_code).unwrap_or(125);
                    return Err(Error::Exec(code, msg.trim().to_string()));
                }
                return Ok(0);
            }
            if let Some(sock) = console {
                let _ = std::io::Read::read_to_string(&mut File::from(err_r), &mut msg);
                if !msg.trim().is_empty() {
                    let code = waitpid(child, None).map(exit_code).unwrap_or(125);
                    return Err(Error::Exec(code, msg.trim().to_string()));
                }
                let Some(master) = crate::console::try_recv_fd(sock.as_raw_fd()) else {
                    let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
                    let _ = waitpid(child, None);
                    return Err(Error::Setup("the command's terminal did not arrive".into()));
                };
                return Ok(crate::console::relay(&master, child, o.interactive));
            }
            // The terminal's ^C and ^\\ are for the command, which shares our process group.
            // SAFETY: ignoring two signals in this process while it waits.
            unsafe {
                libc::signal(libc::SIGINT, libc::SIG_IGN);
                libc::signal(libc::SIGQUIT, libc::SIG_IGN);
            }
            let _ = std::io::Read::read_to_string(&mut File::from(err_r), &mut msg);
            let code = waitpid(child, None).map(exit_code).unwrap_or(125);
            if !msg.trim().is_empty() {
                return Err(Error::Exec(code, msg.trim().to_string()));
            }
            Ok(code)
        }
    }
}
