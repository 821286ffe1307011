//! `exec`: run another command in a running container — its namespaces, its rootfs, its identity
//! rules and its confinement (capabilities, no_new_privs, seccomp) — and exit with its code.
//!
//! The caller must be single-threaded (joining a user namespace requires it). A forked child joins
//! the container's namespaces; joining a pid namespace only applies to children, so it forks once
//! more, and that grandchild becomes the command.
//!
//! Nothing in the container may reach the host's skiff executable through the process that joins
//! it (CVE-2019-5736): `skiff exec` first re-executes itself from a sealed in-memory copy
//! ([`run_from_sealed_copy`]), so `/proc/PID/exe` of the joining process — and `/proc/self/exe`
//! in a `#!/proc/self/exe` script it is asked to run — is that copy, which nobody can write; and
//! the joining process is non-dumpable from before its first `setns` until its `execve`, so the
//! container cannot open its `/proc/PID/{exe,fd,mem}` or ptrace it while it still holds skiff's
//! memory and privileges. Without `-t` the command gets a session of its own and no terminal of
//! the caller's: where skiff's stdio is a terminal, the command gets pipes that skiff relays.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::sched::CloneFlags;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::ForkResult;

use crate::container::records::Containers;
use crate::container::StateError;
use crate::error::{Ctx, Error, Result};
use crate::process::init::{exec, report_failure, take_identity};
use crate::process::JoinError;

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
    /// Kill the command (its process group, with SIGKILL) when it runs longer than this: a
    /// healthcheck's timeout. The process that waits for it in the container does so, so the
    /// check's own process and its group end, not only skiff.
    pub timeout: Option<std::time::Duration>,
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
    crate::sys::procfs::exit_code(ws).unwrap_or(125)
}

fn die(err_fd: std::os::fd::RawFd, f: crate::process::init::Fail) -> ! {
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

/// The seals that make a memory file immutable: no write, no resize, no change of seals.
const SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// Whether this process runs from a sealed memory file (see [`run_from_sealed_copy`]).
pub fn running_from_sealed_copy() -> bool {
    let Ok(exe) = File::open("/proc/self/exe") else {
        return false;
    };
    // SAFETY: F_GET_SEALS on an fd we own; a file that is not a memfd answers EINVAL.
    let seals = unsafe { libc::fcntl(exe.as_raw_fd(), libc::F_GET_SEALS) };
    seals >= 0 && seals & SEALS == SEALS
}

/// A memory file (`memfd_create`) that may be sealed and executed.
fn exec_memfd() -> std::io::Result<OwnedFd> {
    let name = c"skiff-exec";
    let base = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // MFD_EXEC (Linux 6.3+) keeps it executable where vm.memfd_noexec=1 would default to not;
    // older kernels refuse the flag, and their memfds are executable anyway.
    for flags in [base | libc::MFD_EXEC, base] {
        // SAFETY: a name we own; the fd is owned below.
        let fd = unsafe { libc::memfd_create(name.as_ptr(), flags) };
        if fd >= 0 {
            // SAFETY: just created, owned from here on.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINVAL) {
            return Err(e);
        }
    }
    Err(std::io::Error::from_raw_os_error(libc::EINVAL))
}

/// A sealed memory copy of this process's executable.
fn sealed_copy_of_self() -> std::io::Result<OwnedFd> {
    let exe = File::open("/proc/self/exe")?;
    let len = exe.metadata()?.len();
    let mem = exec_memfd()?;
    let mut done: u64 = 0;
    while done < len {
        let want = usize::try_from(len - done)
            .unwrap_or(usize::MAX)
            .min(1 << 30);
        // SAFETY: an in-kernel copy between two fds we own, from the current file offsets.
        let n =
            unsafe { libc::sendfile(mem.as_raw_fd(), exe.as_raw_fd(), std::ptr::null_mut(), want) };
        match n {
            n if n > 0 => done += n as u64,
            0 => return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof)),
            _ => {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    // SAFETY: adding seals to our memfd; nothing maps it, so F_SEAL_WRITE cannot be busy.
    if unsafe { libc::fcntl(mem.as_raw_fd(), libc::F_ADD_SEALS, SEALS) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(mem)
}

/// Whether the file this process runs from is beyond a container's reach even with a handle
/// on it: a sealed memfd, on a read-only mount, or (rootless) belonging to no id that our
/// containers map and not world-writable — container root has no override over such a file.
fn exe_unwritable_by_containers() -> bool {
    use std::os::unix::fs::MetadataExt;
    if running_from_sealed_copy() {
        return true;
    }
    let Ok(exe) = File::open("/proc/self/exe") else {
        return false;
    };
    if nix::sys::statvfs::fstatvfs(&exe)
        .is_ok_and(|v| v.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
    {
        return true;
    }
    if nix::unistd::geteuid().is_root() {
        // Root's containers run as root (with CAP_DAC_OVERRIDE): any file is writable to them.
        return false;
    }
    let Ok(md) = exe.metadata() else {
        return false;
    };
    let (uid, gid) = (
        nix::unistd::getuid().as_raw(),
        nix::unistd::getgid().as_raw(),
    );
    let map = crate::userns::idmap::IdMap::for_current_user();
    let mapped = |id: u32, me: u32, ranges: Option<&Vec<crate::userns::idmap::Range>>| {
        id == me
            || ranges.is_some_and(|rs| {
                rs.iter()
                    .any(|r| id >= r.outside && id - r.outside < r.count)
            })
    };
    let owner_mapped = mapped(md.uid(), uid, map.as_ref().map(|m| &m.uids));
    let group_mapped = mapped(md.gid(), gid, map.as_ref().map(|m| &m.gids));
    !owner_mapped && !group_mapped && md.mode() & 0o002 == 0
}

/// argv and environ of this process, for re-executing it.
fn argv_envp() -> (Vec<CString>, Vec<CString>) {
    let argv = std::env::args_os()
        .filter_map(|a| CString::new(a.as_bytes()).ok())
        .collect();
    let envp = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).ok()
        })
        .collect();
    (argv, envp)
}

/// Set in the environment of a re-execution through the read-only bind.
const BIND_TRIED: &str = "SKIFF_EXEC_RO_BIND";

/// Root: re-executes this executable through a read-only bind mount of itself in a private
/// mount namespace — no copy. Returns only on failure.
fn reexec_through_read_only_bind() -> std::result::Result<std::convert::Infallible, String> {
    use nix::mount::{mount, MsFlags};
    let exe = std::fs::read_link("/proc/self/exe").map_err(|e| e.to_string())?;
    if !exe.is_file() {
        return Err(format!("{} is gone", exe.display()));
    }
    nix::sched::unshare(CloneFlags::CLONE_NEWNS).map_err(|e| format!("unshare: {e}"))?;
    let none = None::<&str>;
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_SLAVE, none)
        .and_then(|_| mount(Some(&exe), &exe, none, MsFlags::MS_BIND, none))
        .and_then(|_| {
            let ro = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
            mount(none, &exe, none, ro, none)
        })
        .map_err(|e| format!("read-only bind of {}: {e}", exe.display()))?;
    let path = CString::new(exe.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
    let (argv, envp) = argv_envp();
    Err(nix::unistd::execve(&path, &argv, &envp)
        .unwrap_err()
        .to_string())
}

/// Makes sure this process runs from an executable no container can write, re-executing itself
/// (same arguments and environment) when it does not — so this returns only then, or with an
/// error. A process that joins a container is visible there; the kernel's `/proc/PID/exe` of it,
/// and `/proc/self/exe` as the interpreter of a script the container planted, lead to the file
/// it runs from, which the container could otherwise rewrite (CVE-2019-5736). As root that is a
/// read-only bind mount of skiff in a private mount namespace (no copy); otherwise, when skiff
/// belongs to the user (as `cargo install` leaves it), a sealed memfd copy; a skiff the user's
/// containers cannot write anyway (root's, as packages install it) is run as it is.
pub fn run_from_sealed_copy() -> Result<()> {
    if exe_unwritable_by_containers() {
        return Ok(());
    }
    // Once through the bind, never again (a mount that did not take would loop): the memfd then.
    if nix::unistd::geteuid().is_root() && std::env::var_os(BIND_TRIED).is_none() {
        std::env::set_var(BIND_TRIED, "1");
        // On failure (say, no mount namespaces here), the memfd copy below.
        let _ = reexec_through_read_only_bind();
    }
    let fail = JoinError::SealedCopy;
    let mem = sealed_copy_of_self().map_err(fail)?;
    let (argv, envp) = argv_envp();
    let e = nix::unistd::fexecve(&mem, &argv, &envp).unwrap_err();
    Err(fail(std::io::Error::from(e)).into())
}

/// Makes this process non-dumpable: no other process of its user (or of the container it is
/// about to join) may open its `/proc/PID/{exe,fd,mem,environ}` or ptrace it, short of
/// CAP_SYS_PTRACE over the host's user namespace. The next `execve` makes it dumpable again.
pub(crate) fn make_undumpable() -> std::result::Result<(), String> {
    // SAFETY: plain prctl.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        return Err(format!(
            "making the joining process non-dumpable: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Takes this process out of the caller's session (so it has no controlling terminal) and points
/// whichever of its stdin, stdout and stderr is a terminal at /dev/null, for code that joins a
/// container without being meant to talk to the user's terminal (`cp`).
pub(crate) fn leave_terminal() {
    let _ = nix::unistd::setsid();
    if let Ok(null) = File::options().read(true).write(true).open("/dev/null") {
        for i in 0..3 {
            // SAFETY: isatty and dup2 on our own stdio.
            unsafe {
                if libc::isatty(i) == 1 {
                    libc::dup2(null.as_raw_fd(), i);
                }
            }
        }
    }
}

/// Joins the namespaces from [`namespaces_of`] (in a single-threaded forked child), having made
/// the process non-dumpable first (see [`make_undumpable`]). After the mount namespace, `/` is
/// the container's root.
pub(crate) fn enter(fds: &[(OwnedFd, CloneFlags, &str)]) -> std::result::Result<(), String> {
    make_undumpable()?;
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
        return Err(StateError::NotRunning(v.cfg.name.clone()).into());
    }
    if v.paused() {
        return Err(StateError::Paused(v.cfg.name.clone()).into());
    }
    if o.args.is_empty() {
        return Err(JoinError::NoCommand.into());
    }
    let pid = v
        .state
        .pid
        .ok_or_else(|| JoinError::NoPid(v.cfg.name.clone()))?;
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
    let (err_r, err_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "pipe".into())?;
    let cfg = v.cfg.clone();
    // -t: (our end, the command's end) of the channel its pty master comes back on.
    let console = if o.tty && !o.detach {
        Some(crate::process::console::channel().ctx(|| "making the terminal channel".into())?)
    } else {
        None
    };
    let winsize = crate::sys::tty::window_size(0).or_else(|| crate::sys::tty::window_size(1));
    // Without -t, none of the caller's terminals goes in: where our stdin (with -i), stdout or
    // stderr is a terminal, the command gets a pipe instead and we relay it. (Otherwise the
    // command could push keystrokes into the caller's shell with TIOCSTI, or change its modes.)
    let mut relayed: [Option<(OwnedFd, OwnedFd)>; 3] = [None, None, None];
    if console.is_none() && !o.detach {
        for (i, slot) in relayed.iter_mut().enumerate() {
            // SAFETY: isatty on our own stdio.
            if (i > 0 || o.interactive) && unsafe { libc::isatty(i as i32) } == 1 {
                let (r, w) =
                    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "pipe".into())?;
                // (our end, the command's end)
                *slot = Some(if i == 0 { (w, r) } else { (r, w) });
            }
        }
    }

    // SAFETY: the caller is single-threaded; the child only joins namespaces, forks and execs.
    match unsafe { nix::unistd::fork() }.ctx(|| "fork".into())? {
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
            for (i, pair) in relayed.into_iter().enumerate() {
                if let Some((_ours, theirs)) = pair {
                    // SAFETY: the command's end of a relayed pipe becomes its stdio (dup2 clears
                    // close-on-exec on the copy); both originals close here.
                    unsafe { libc::dup2(theirs.as_raw_fd(), i as i32) };
                }
            }
            // SAFETY: still single-threaded.
            match unsafe { nix::unistd::fork() } {
                Ok(ForkResult::Child) => {
                    // A session of its own: no controlling terminal of the caller's (TIOCSTI
                    // and /dev/tty need one), and with -t the new pty can become its own.
                    if let Err(e) = nix::unistd::setsid() {
                        die(efd, (125, format!("setsid: {e}")));
                    }
                    if let Some(sock) = term_fd {
                        if let Err(f) = crate::process::init::give_terminal(sock, winsize.as_ref())
                        {
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
                    forward_signals_to(child);
                    if let Some(t) = o.timeout {
                        kill_after(t);
                    }
                    let code = loop {
                        match waitpid(child, None) {
                            Err(nix::errno::Errno::EINTR) => continue,
                            r => break r.map(exit_code).unwrap_or(125),
                        }
                    };
                    std::process::exit(code)
                }
                Err(e) => die(efd, (125, format!("fork: {e}"))),
            }
        }
        ForkResult::Parent { child } => {
            drop(err_w);
            drop(fds);
            let console = console.map(|(ours, _theirs)| ours);
            let [stdin_w, out_r, err_r2] = relayed.map(|p| p.map(|(ours, _theirs)| ours));
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
                let Some(master) = crate::process::console::try_recv_fd(sock.as_raw_fd()) else {
                    let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
                    let _ = waitpid(child, None);
                    return Err(JoinError::TerminalLost.into());
                };
                return Ok(crate::process::console::relay(
                    &master,
                    child,
                    o.interactive,
                ));
            }
            // The command is in a session of its own: the terminal's ^C and ^\\ reach us, and
            // are passed on to it (through the child that waits for it).
            let code = crate::process::console::relay_pipes(child, err_r, stdin_w, [out_r, err_r2]);
            match code {
                Err((code, msg)) => Err(Error::Exec(code, msg)),
                Ok(code) => Ok(code),
            }
        }
    }
}

/// The command's pid, for [`forward`] (in the child that waits for it).
static COMMAND: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    let pid = COMMAND.load(std::sync::atomic::Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

extern "C" fn kill_command(_: libc::c_int) {
    let pid = COMMAND.load(std::sync::atomic::Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe. The command leads its own session, so -pid is
        // its process group; the pid itself too, in case it has not made it yet.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

/// Arms a one-shot timer that SIGKILLs the command and its process group after `t` (in the
/// child waiting for it, after [`forward_signals_to`] recorded its pid).
fn kill_after(t: std::time::Duration) {
    let t = t.max(std::time::Duration::from_micros(1));
    let it = libc::itimerval {
        it_interval: libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
        it_value: libc::timeval {
            tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_usec: libc::suseconds_t::from(t.subsec_micros()),
        },
    };
    // SAFETY: installing a handler that only calls kill, and arming this process's real timer.
    unsafe {
        libc::signal(
            libc::SIGALRM,
            kill_command as *const () as libc::sighandler_t,
        );
        libc::setitimer(libc::ITIMER_REAL, &it, std::ptr::null_mut());
    }
}

/// Passes SIGINT, SIGQUIT, SIGTERM and SIGHUP that reach this process (the child waiting for the
/// command, signalled by `skiff exec`) on to the command.
fn forward_signals_to(command: nix::unistd::Pid) {
    COMMAND.store(command.as_raw(), std::sync::atomic::Ordering::Relaxed);
    for sig in [libc::SIGINT, libc::SIGQUIT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: installing a handler that only calls kill.
        unsafe { libc::signal(sig, forward as *const () as libc::sighandler_t) };
    }
}
