//! The container's first process, from `clone()` in the monitor to `execve` of the user's command:
//! wait for the id maps, build the rootfs, take the user's identity, harden, exec. Any failure is
//! written to the error pipe and becomes the exit code: 125 setup, 126 cannot execute, 127 not found.

use std::ffi::CString;
use std::os::fd::RawFd;
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};

use nix::sys::signal::{self, SigHandler, SigSet, SigmaskHow, Signal};
use nix::unistd::{Gid, Uid};

use crate::container::config::ContainerConfig;
use crate::rootfs::mounts;
use crate::security;
use crate::spec::passwd;

/// What the child needs, prepared by the monitor before `clone()`.
pub struct ChildSetup<'a> {
    /// The container's config.
    pub cfg: &'a ContainerConfig,
    /// Its directory (rootfs, upper, work, etc files).
    pub ctr: &'a Path,
    /// On skiff networks: each interface and the address it gets (`eth0` first, with the
    /// default route; the monitor moves them in before the second sync byte).
    pub ifaces: Vec<(String, crate::network::iface::Address)>,
    /// Whether the child is in a new user namespace that the parent maps.
    pub userns: bool,
    /// Whether gid 5 (tty) exists in the mapping, for devpts.
    pub gid5_mapped: bool,
    /// Read end: one byte once the monitor has mapped the ids (and set the limits), a second once
    /// it has connected the network (read only by a container with a network of its own).
    pub sync_fd: RawFd,
    /// Write end (close-on-exec): error text if setup fails.
    pub err_fd: RawFd,
    /// The process's stdin, stdout, stderr.
    pub stdio: [RawFd; 3],
    /// `-t`: the socket on which to send the master of a pty made inside the container, whose
    /// slave becomes stdio and the controlling terminal.
    pub console: Option<RawFd>,
    /// The terminal size for that pty.
    pub winsize: Option<nix::pty::Winsize>,
}

/// An exit code and the message explaining it.
pub type Fail = (i32, String);

fn setup_err(e: impl std::fmt::Display) -> Fail {
    (125, e.to_string())
}

/// Marks every fd above stderr close-on-exec, so only stdin, stdout and stderr reach the command:
/// an fd that whoever started skiff left open (a terminal, a host directory) must not.
fn close_inherited_fds_on_exec() {
    // SAFETY: close_range (Linux 5.11+) with CLOSE_RANGE_CLOEXEC closes nothing now.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r == 0 {
        return;
    }
    for fd in crate::sys::fd::open_fds().into_iter().filter(|fd| *fd > 2) {
        // SAFETY: setting FD_CLOEXEC on an fd of ours (a stale one just fails).
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
}

/// Runs in the cloned child; returns only on failure, with the exit code.
pub fn child_main(s: &ChildSetup<'_>) -> isize {
    let (code, msg) = match setup_and_exec(s) {
        Ok(never) => match never {},
        Err(f) => f,
    };
    let line = format!("{msg}\n");
    // SAFETY: writing a buffer we own to an fd we own.
    unsafe { libc::write(s.err_fd, line.as_ptr().cast(), line.len()) };
    code as isize
}

fn setup_and_exec(s: &ChildSetup<'_>) -> Result<std::convert::Infallible, Fail> {
    let _ = signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    // Rust ignores SIGPIPE at start-up and an ignored signal stays ignored across exec.
    // SAFETY: restoring the default disposition.
    let _ = unsafe { signal::signal(Signal::SIGPIPE, SigHandler::SigDfl) };
    nix::unistd::setsid().map_err(setup_err)?;
    for (i, fd) in s.stdio.iter().enumerate() {
        // SAFETY: duplicating fds this process owns onto 0, 1, 2.
        if unsafe { libc::dup2(*fd, i as RawFd) } < 0 {
            return Err(setup_err(format!(
                "setting up stdio: {}",
                std::io::Error::last_os_error()
            )));
        }
    }
    // Wait for the monitor: it maps our ids (rootless) before anything here may use them. It
    // connects our network namespace meanwhile, and says so with a second byte (below).
    let mut b = [0u8; 1];
    // SAFETY: reading one byte into our buffer.
    if unsafe { libc::read(s.sync_fd, b.as_mut_ptr().cast(), 1) } != 1 {
        return Err(setup_err(if s.userns {
            "the user namespace was not set up"
        } else {
            "the monitor did not finish setting up the container"
        }));
    }
    let cfg = s.cfg;
    nix::unistd::sethostname(&cfg.hostname)
        .map_err(|e| setup_err(format!("setting hostname: {e}")))?;
    // The root is made while the monitor plumbs the network, on the other core.
    mounts::prepare(cfg, s.ctr, s.gid5_mapped).map_err(setup_err)?;
    if cfg.network.private() {
        // SAFETY: reading one byte into our buffer.
        if unsafe { libc::read(s.sync_fd, b.as_mut_ptr().cast(), 1) } != 1 {
            return Err(setup_err(
                "the monitor did not connect the container's network",
            ));
        }
        mounts::loopback_up().map_err(setup_err)?;
    }
    // SAFETY: closing an fd this process owns and no longer needs.
    unsafe { libc::close(s.sync_fd) };
    for (iface, a) in &s.ifaces {
        crate::network::iface::configure(iface, a).map_err(setup_err)?;
    }
    if let Some(sock) = s.console {
        give_terminal(sock, s.winsize.as_ref())?;
    }
    raise_nofile();
    for (name, soft, hard) in &cfg.ulimits {
        set_rlimit(name, *soft, *hard)?;
    }

    let (env, _) = take_identity(
        cfg,
        &cfg.process.user,
        &cfg.process.cwd,
        &cfg.process.env,
        s.console.is_some(),
    )?;
    // If the monitor dies, so does the container: nothing outlives the process that records it.
    // (Set after the uid change, which clears it; the monitor is blocked on our error pipe until
    // the exec, so it cannot be gone unnoticed before this.)
    // SAFETY: plain prctl.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    if cfg.init {
        run_init(s, &cfg.process.args, &env)
    } else {
        exec(&cfg.process.args, &env)
    }
}

/// The open-files limit podman gives a container when it may.
const NOFILE_TARGET: u64 = 1 << 20;

/// Raises `RLIMIT_NOFILE` as podman does: soft and hard to 1048576 where allowed (root), else the
/// soft limit up to the hard one the caller has (rootless), so the command does not start at
/// 1024. `--ulimit nofile=` still decides when given (applied after this).
fn raise_nofile() {
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills one rlimit struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut cur) } != 0 {
        return;
    }
    let wanted = libc::rlimit {
        rlim_cur: NOFILE_TARGET.max(cur.rlim_cur),
        rlim_max: NOFILE_TARGET.max(cur.rlim_max),
    };
    let own_hard = libc::rlimit {
        rlim_cur: cur.rlim_max,
        rlim_max: cur.rlim_max,
    };
    // SAFETY: setrlimit reads one rlimit struct; a refusal leaves the limits as they were.
    unsafe {
        if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) != 0 {
            libc::setrlimit(libc::RLIMIT_NOFILE, &own_hard);
        }
    }
}

/// Applies one `--ulimit` to this process (inherited by the command).
fn set_rlimit(name: &str, soft: u64, hard: u64) -> Result<(), Fail> {
    let resource = match name {
        "as" => libc::RLIMIT_AS,
        "core" => libc::RLIMIT_CORE,
        "cpu" => libc::RLIMIT_CPU,
        "data" => libc::RLIMIT_DATA,
        "fsize" => libc::RLIMIT_FSIZE,
        "locks" => libc::RLIMIT_LOCKS,
        "memlock" => libc::RLIMIT_MEMLOCK,
        "msgqueue" => libc::RLIMIT_MSGQUEUE,
        "nice" => libc::RLIMIT_NICE,
        "nofile" => libc::RLIMIT_NOFILE,
        "nproc" => libc::RLIMIT_NPROC,
        "rss" => libc::RLIMIT_RSS,
        "rtprio" => libc::RLIMIT_RTPRIO,
        "rttime" => libc::RLIMIT_RTTIME,
        "sigpending" => libc::RLIMIT_SIGPENDING,
        "stack" => libc::RLIMIT_STACK,
        other => return Err(setup_err(format!("unknown ulimit {other}"))),
    };
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads one rlimit struct.
    if unsafe { libc::setrlimit(resource, &lim) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(setup_err(format!(
            "--ulimit {name}={soft}:{hard}: {e} (raising a hard limit above yours needs root)"
        )));
    }
    Ok(())
}

/// Makes a pty in the devpts now at /dev/pts, takes its slave as stdio and controlling terminal,
/// and sends the master on `sock` to whoever relays it (the monitor, or `skiff exec`).
pub fn give_terminal(sock: RawFd, size: Option<&nix::pty::Winsize>) -> Result<(), Fail> {
    let term_err = |e: std::io::Error| setup_err(format!("setting up the terminal: {e}"));
    let (master, slave) = crate::process::console::open_pty(size).map_err(term_err)?;
    crate::process::console::attach_stdio(&slave).map_err(term_err)?;
    // The channel is close-on-exec: the master travels in the message, our end goes at exec.
    crate::process::console::send_fd(sock, &master).map_err(term_err)
}

/// The identity and confinement a container process gets, shared by the container's first process
/// and `exec`: `-u` resolved in the container's own files (visible at /), the working directory,
/// HOME, the capability bounding and sets, groups and ids, seccomp, and `no_new_privs` when asked
/// (`--security-opt no-new-privileges`; off by default, as in Docker, so setuid programs work). With
/// `terminal`, stdin is a pty this process made and becomes the user's, as a login's would.
/// Returns the final environment and the uid.
pub fn take_identity(
    cfg: &ContainerConfig,
    user_spec: &str,
    cwd: &str,
    env: &[String],
    terminal: bool,
) -> Result<(Vec<String>, u32), Fail> {
    let pw = passwd::read_id_file("/etc/passwd").map_err(setup_err)?;
    let gr = passwd::read_id_file("/etc/group").map_err(setup_err)?;
    let mut user = passwd::resolve(user_spec, &pw, &gr).map_err(setup_err)?;
    for g in &cfg.group_add {
        let gid = passwd::group_id(g, &gr).map_err(setup_err)?;
        if gid != user.gid && !user.groups.contains(&gid) {
            user.groups.push(gid);
        }
    }
    let mut env = env.to_vec();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user.home));
    }
    let cwd = if cwd.is_empty() { "/" } else { cwd };
    std::fs::create_dir_all(cwd).ok();
    std::env::set_current_dir(cwd)
        .map_err(|e| setup_err(format!("working directory {cwd}: {e}")))?;
    let mask = security::capability_mask(&cfg.cap_add, &cfg.cap_drop, cfg.privileged)
        .map_err(setup_err)?;
    security::drop_bounding(mask).map_err(|e| setup_err(format!("dropping capabilities: {e}")))?;
    let filter = cfg.seccomp && !cfg.privileged;
    let no_new_privs = cfg.no_new_privs && !cfg.privileged;
    if filter && !no_new_privs {
        // Without no_new_privs the kernel takes a filter only from a process holding
        // CAP_SYS_ADMIN (in its namespace): install it now, before the ids and capabilities
        // change. The calls below (setgroups, setresuid, capset, execve) are not filtered.
        security::install_seccomp(mask).map_err(|e| setup_err(format!("seccomp: {e}")))?;
    }
    let groups: Vec<Gid> = user.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    // In a namespace mapping only the user (no subuid range) the kernel requires setgroups to be
    // denied: supplementary groups cannot be set there, and the process keeps none.
    let setgroups_denied =
        std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny");
    if !setgroups_denied {
        nix::unistd::setgroups(&groups)
            .map_err(|e| setup_err(format!("setting groups {:?}: {e}", user.groups)))?;
    }
    let unmapped = |what: &str, id: u32, e: nix::Error| {
        let hint = if setgroups_denied {
            "only root is mapped: give your user a subuid/subgid range (skiff info proposes a free one) to use other ids"
        } else {
            "is it inside the id mapping?"
        };
        setup_err(format!("setting {what} {id}: {e} ({hint})"))
    };
    if terminal && user.uid != 0 {
        // Best effort: an unmapped uid fails just below with the clear error.
        // SAFETY: fchown of our stdin, the pty slave we made; the group (tty) is kept.
        unsafe { libc::fchown(0, user.uid, u32::MAX) };
    }
    let (gid, uid) = (Gid::from_raw(user.gid), Uid::from_raw(user.uid));
    nix::unistd::setresgid(gid, gid, gid).map_err(|e| unmapped("gid", user.gid, e))?;
    nix::unistd::setresuid(uid, uid, uid).map_err(|e| unmapped("uid", user.uid, e))?;
    security::set_caps(if user.uid == 0 { mask } else { 0 })
        .map_err(|e| setup_err(format!("setting capabilities: {e}")))?;
    if no_new_privs {
        security::no_new_privs().map_err(|e| setup_err(format!("no_new_privs: {e}")))?;
        if filter {
            security::install_seccomp(mask).map_err(|e| setup_err(format!("seccomp: {e}")))?;
        }
    }
    Ok((env, user.uid))
}

/// Writes a failure to the error pipe and returns its exit code (for forked helpers).
pub fn report_failure(err_fd: RawFd, (code, msg): Fail) -> i32 {
    let line = format!("{msg}\n");
    // SAFETY: writing a buffer we own to an fd we own.
    unsafe { libc::write(err_fd, line.as_ptr().cast(), line.len()) };
    code
}

fn cstrings(v: &[String]) -> Result<Vec<CString>, Fail> {
    v.iter()
        .map(|s| {
            CString::new(s.as_bytes())
                .map_err(|_| setup_err(format!("argument contains a NUL byte: {s:?}")))
        })
        .collect()
}

/// execve with Docker's PATH search and exit codes: 127 not found, 126 not executable.
pub fn exec(args: &[String], env: &[String]) -> Result<std::convert::Infallible, Fail> {
    close_inherited_fds_on_exec();
    let Some(cmd) = args.first() else {
        return Err(setup_err(
            "no command: the image has no Cmd or Entrypoint; give one after the image name",
        ));
    };
    let argv = cstrings(args)?;
    let envp = cstrings(env)?;
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    let candidates: Vec<String> = if cmd.contains('/') {
        vec![cmd.clone()]
    } else {
        path.split(':')
            .filter(|d| !d.is_empty())
            .map(|d| format!("{d}/{cmd}"))
            .collect()
    };
    let mut denied = None;
    for c in &candidates {
        let Ok(prog) = CString::new(c.as_bytes()) else {
            continue;
        };
        let e = nix::unistd::execve(&prog, &argv, &envp).unwrap_err();
        match e {
            nix::errno::Errno::ENOENT | nix::errno::Errno::ENOTDIR => continue,
            nix::errno::Errno::EACCES | nix::errno::Errno::ENOEXEC | nix::errno::Errno::EISDIR => {
                denied = Some((c.clone(), e))
            }
            other => return Err((126, format!("exec {c}: {other}"))),
        }
    }
    match denied {
        Some((c, e)) => Err((126, format!("exec {c}: {}", e.desc().to_lowercase()))),
        None if cmd.contains('/') => Err((127, format!("exec {cmd}: no such file or directory"))),
        None => Err((
            127,
            format!("exec: \"{cmd}\": executable file not found in $PATH"),
        )),
    }
}

static CHILD: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    let pid = CHILD.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

/// `--init`: stay as PID 1, run the command as a child, forward signals, reap every orphan, and
/// exit with the command's status (128+N for a signal).
fn run_init(
    s: &ChildSetup<'_>,
    args: &[String],
    env: &[String],
) -> Result<std::convert::Infallible, Fail> {
    // SAFETY: this process is single-threaded; the child only execs or writes its error and exits.
    match unsafe { nix::unistd::fork() }.map_err(setup_err)? {
        nix::unistd::ForkResult::Child => {
            let (code, msg) = match exec(args, env) {
                Ok(never) => match never {},
                Err(f) => f,
            };
            let line = format!("{msg}\n");
            // SAFETY: write our buffer, then leave at once.
            unsafe {
                libc::write(s.err_fd, line.as_ptr().cast(), line.len());
                libc::_exit(code)
            }
        }
        nix::unistd::ForkResult::Parent { child } => {
            // SAFETY: closing our copy of the error pipe, so the monitor sees EOF at the child's exec.
            unsafe { libc::close(s.err_fd) };
            CHILD.store(child.as_raw(), Ordering::Relaxed);
            for sig in [
                Signal::SIGTERM,
                Signal::SIGINT,
                Signal::SIGHUP,
                Signal::SIGQUIT,
                Signal::SIGUSR1,
                Signal::SIGUSR2,
                Signal::SIGWINCH,
            ] {
                // SAFETY: the handler only calls kill.
                let _ = unsafe { signal::signal(sig, SigHandler::Handler(forward)) };
            }
            loop {
                match nix::sys::wait::wait() {
                    Ok(nix::sys::wait::WaitStatus::Exited(pid, code)) if pid == child => {
                        std::process::exit(code)
                    }
                    Ok(nix::sys::wait::WaitStatus::Signaled(pid, sig, _)) if pid == child => {
                        std::process::exit(128 + sig as i32)
                    }
                    Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => std::process::exit(if e == nix::errno::Errno::ECHILD {
                        0
                    } else {
                        125
                    }),
                }
            }
        }
    }
}
