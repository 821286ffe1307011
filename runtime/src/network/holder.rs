//! The network holder: one process per user that holds the network namespace where the user's
//! network bridges live (`skiffN`, one per network), with slirp4netns attached to it for the way
//! out and iptables rules for NAT and for keeping networks apart. Each container on a network
//! joins it through a veth pair, one end on the bridge, the other (`eth0`) in the container.
//!
//! Rootless, the holder is also the root of the user namespace that every container on a
//! network is created under (a child of it, see `monitor`), which is what lets the holder's
//! plumbing move an interface into a container's namespace: podman's rootless-netns, made per
//! user and without a daemon. As root the holder holds only the network namespace.
//!
//! It is started on demand by a container's monitor (`skiff-monitor --network-holder DIR`),
//! recorded in `DIR/holder.json` (pid and start time), found again by the next monitor, and
//! exits by itself once no container is attached for a second. Every look-up, start and
//! plumbing step happens under `DIR/.lock`, and the holder only decides to exit while holding it,
//! so a container is never attached to a holder that is going away. A killed holder loses only
//! its namespace (its interfaces go with it, slirp4netns follows through its exit pipe); the next
//! monitor finds its record stale and starts another.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use skiff_store::fsutil::{write_atomic, LockFile};

use crate::network::dns::Resolver;
use crate::network::netlink;
use crate::network::records::{Lease, Network, Networks};
use crate::sys::procfs;
use crate::userns::identity::Identity;

/// The holder's record.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Record {
    pid: i32,
    start: u64,
    /// The bridges set up in its namespace so far.
    #[serde(default)]
    bridges: Vec<String>,
}

/// The argument that makes `skiff-monitor` a network holder.
pub const HOLDER_ARG: &str = "--network-holder";

/// The prefix of the holder's end of each container's veth pair.
const VETH_PREFIX: &str = "vsk";

/// How often the holder checks whether it is still needed.
const CHECK_EVERY: Duration = Duration::from_millis(500);

/// How long the holder waits for slirp4netns to be ready.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// The holder's directory under the user's runtime directory.
pub fn dir(runtime: &Path) -> PathBuf {
    runtime.join("netns")
}

/// A live holder, found or started, with its lock held: it cannot exit while this lives.
pub struct Session {
    _lock: LockFile,
    dir: PathBuf,
    rec: Record,
    rootless: bool,
}

impl Session {
    /// Finds the user's holder or starts one (`monitor_exe --network-holder DIR`, as root of
    /// the user's mapping when rootless), and holds its lock.
    pub fn open(
        networks: &Networks,
        who: &Identity,
        monitor_exe: &Path,
    ) -> Result<Session, String> {
        let dir = dir(networks.runtime());
        std::fs::create_dir_all(&dir)
            .and_then(|()| {
                std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            })
            .map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let lock = LockFile::acquire(&dir.join(".lock")).map_err(|e| e.to_string())?;
        let rootless = !who.is_root();
        if let Some(rec) = read_record(&dir).filter(|r| procfs::alive(r.pid, r.start)) {
            return Ok(Session {
                _lock: lock,
                dir,
                rec,
                rootless,
            });
        }
        let mut cmd = Command::new(monitor_exe);
        cmd.arg(HOLDER_ARG)
            .arg(&dir)
            .arg(networks.records_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = who
            .spawn(cmd)
            .map_err(|e| format!("starting the network holder: {e}"))?;
        let out = child
            .wait_with_output()
            .map_err(|e| format!("starting the network holder: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let pid: i32 = match text.trim().parse() {
            Ok(p) if out.status.success() => p,
            _ => {
                return Err(format!(
                    "the network holder did not start: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        };
        let start = procfs::start_time(pid).ok_or("the network holder died as it started")?;
        let rec = Record {
            pid,
            start,
            bridges: Vec::new(),
        };
        let s = Session {
            _lock: lock,
            dir,
            rec,
            rootless,
        };
        s.save()?;
        Ok(s)
    }

    /// The user's holder when one runs (for `network rm`), never starting one.
    pub fn running(runtime: &Path, who: &Identity) -> Option<Session> {
        let dir = dir(runtime);
        if !dir.is_dir() {
            return None;
        }
        let lock = LockFile::acquire(&dir.join(".lock")).ok()?;
        let rec = read_record(&dir).filter(|r| procfs::alive(r.pid, r.start))?;
        Some(Session {
            _lock: lock,
            dir,
            rec,
            rootless: !who.is_root(),
        })
    }

    /// The holder's pid (its namespaces are at /proc/PID/ns).
    pub fn pid(&self) -> i32 {
        self.rec.pid
    }

    fn save(&self) -> Result<(), String> {
        let bytes = serde_json::to_vec(&self.rec).map_err(|e| e.to_string())?;
        write_atomic(&self.dir.join("holder.json"), &bytes).map_err(|e| e.to_string())
    }

    /// Sets up `net`'s bridge in the holder's namespace (once per holder): the gateway address,
    /// NAT out through slirp4netns (unless internal) and the rule that keeps other networks out.
    pub fn ensure_bridge(&mut self, net: &Network) -> Result<(), String> {
        if self.rec.bridges.contains(&net.bridge) {
            return Ok(());
        }
        let br = &net.bridge;
        let batch = format!(
            "link add {br} type bridge\naddr add {}/{} dev {br}\nlink set {br} up\n",
            net.gateway,
            net.subnet.prefix()
        );
        self.run(IP, &["-batch", "-"], &batch)?;
        self.run(IPTABLES_RESTORE, &["--noflush"], &rules(net, 'A'))?;
        self.rec.bridges.push(br.clone());
        self.save()
    }

    /// Removes `net`'s bridge and rules (`network rm`), if this holder set them up.
    pub fn drop_bridge(&mut self, net: &Network) -> Result<(), String> {
        let Some(i) = self.rec.bridges.iter().position(|b| b == &net.bridge) else {
            return Ok(());
        };
        self.run(IP, &["link", "del", &net.bridge], "")?;
        self.run(IPTABLES_RESTORE, &["--noflush"], &rules(net, 'D'))?;
        self.rec.bridges.remove(i);
        self.save()
    }

    /// Joins the container whose network namespace is `ns` to `net`: a veth pair, its end
    /// `iface` (with the lease's MAC) in the container's namespace, the other on the bridge and
    /// up. One rtnetlink request from a forked process in the holder's namespaces; no `ip` runs.
    pub fn attach(
        &self,
        net: &Network,
        id: &str,
        lease: &Lease,
        ns: netlink::Netns,
        iface: &str,
    ) -> Result<(), String> {
        let veth = veth_name(id, net);
        let mut add = netlink::new_veth(&veth, iface, &lease.mac, ns)?;
        let del = netlink::del_link(&veth);
        let bridge = std::ffi::CString::new(net.bridge.as_str())
            .map_err(|_| format!("bad bridge name {:?}", net.bridge))?;
        self.in_holder(&mut || {
            // SAFETY: a NUL-terminated name that lives for the call.
            let index = unsafe { libc::if_nametoindex(bridge.as_ptr()) };
            if index == 0 {
                return libc::ENODEV;
            }
            add.set_index(index);
            match add.send() {
                // The same container's last run: its namespace, and so this veth, is torn down
                // asynchronously after it exits; a quick restart can still find it. It is dead.
                libc::EEXIST => {
                    del.send();
                    add.send()
                }
                code => code,
            }
        })
        .map_err(|e| format!("joining network {}: {e}", net.name))
    }

    /// Joins a running container (not a child of the caller: its init `pid`, started at
    /// `start`) to `net` as interface `iface` with the lease's address, up, without a default
    /// route (it keeps its first network's): `network connect`. One forked process in the
    /// holder's namespaces opens the container's network namespace, checks that `pid` is still
    /// that container (a pid may be reused), adds the veth into it by that descriptor, then
    /// enters it and sets the address. Nothing in it allocates.
    pub fn attach_running(
        &self,
        net: &Network,
        id: &str,
        lease: &Lease,
        (pid, start): (i32, u64),
        iface: &str,
    ) -> Result<(), String> {
        let cstr = |s: String| std::ffi::CString::new(s).map_err(|e| e.to_string());
        let ns_path = cstr(format!("/proc/{pid}/ns/net"))?;
        let stat_path = cstr(format!("/proc/{pid}/stat"))?;
        let bridge = cstr(net.bridge.clone())?;
        let name = cstr(iface.to_string())?;
        let veth = veth_name(id, net);
        let mut add = netlink::new_veth(&veth, iface, &lease.mac, netlink::Netns::Fd(-1))?;
        let mut addr = netlink::new_addr(lease.ip, net.subnet.prefix());
        let mut up = netlink::link_up();
        let mut stat = [0u8; 1024];
        let r = self.in_holder(&mut || {
            // SAFETY: plain system calls on NUL-terminated paths and buffers that live for them.
            unsafe {
                let fd = libc::open(ns_path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return *libc::__errno_location();
                }
                let same = crate::sys::procfs::read_stat(&stat_path, &mut stat)
                    .and_then(crate::sys::procfs::start_time_in)
                    == Some(start);
                if !same {
                    return libc::ESRCH;
                }
                let index = libc::if_nametoindex(bridge.as_ptr());
                if index == 0 {
                    return libc::ENODEV;
                }
                add.set_index(index);
                add.set_netns_fd(fd);
                let code = add.send();
                if code != 0 {
                    return code;
                }
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return *libc::__errno_location();
                }
                let inside = libc::if_nametoindex(name.as_ptr());
                if inside == 0 {
                    return libc::ENODEV;
                }
                addr.set_index(inside);
                up.set_index(inside);
                match addr.send() {
                    0 => up.send(),
                    code => code,
                }
            }
        });
        match r {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
                Err("the container stopped while it was being connected".into())
            }
            Err(e) => Err(format!(
                "connecting the container to network {}: {e}",
                net.name
            )),
        }
    }

    /// Takes the container off `net` (`network disconnect` of a running container): its veth
    /// goes, both ends.
    pub fn detach(&self, net: &Network, id: &str) -> Result<(), String> {
        let del = netlink::del_link(&veth_name(id, net));
        self.in_holder(&mut || match del.send() {
            libc::ENODEV => 0,
            code => code,
        })
        .map_err(|e| format!("leaving network {}: {e}", net.name))
    }

    /// Runs `f` in a forked process that has joined the holder's namespaces; `f` answers 0 or
    /// an errno. `f` must not allocate (the caller may have other threads).
    fn in_holder(&self, f: &mut dyn FnMut() -> i32) -> std::io::Result<()> {
        let ns = self.namespaces().map_err(std::io::Error::other)?;
        in_namespaces(ns.fds(), None, f)
    }

    /// The holder's namespaces, for a process that must join them.
    pub fn namespaces(&self) -> Result<HolderNs, String> {
        HolderNs::open(self.rec.pid, self.rootless)
    }

    /// Runs `tool args` inside the holder's namespaces with `input` on its stdin.
    fn run(&self, tool: Tool, args: &[&str], input: &str) -> Result<(), String> {
        let (name, package) = tool;
        let program = find_tool(name).ok_or_else(|| {
            format!("{name} is needed for skiff networks and was not found: install {package} (apt install {package})")
        })?;
        let ns = self.namespaces()?;
        let fds = ns.fds();
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: only setns, async-signal-safe, between fork and exec.
        unsafe {
            cmd.pre_exec(move || fds.enter());
        }
        let failed = |e: std::io::Error| format!("running {name} in the network holder: {e}");
        let mut child = cmd.spawn().map_err(failed)?;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(input.as_bytes());
        }
        let out = child.wait_with_output().map_err(failed)?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{name} in the network holder failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }
}

/// The holder's user (when rootless) and network namespaces, opened beforehand so that a
/// forked process can join them with system calls alone.
pub struct HolderNs {
    user: Option<File>,
    net: File,
}

impl HolderNs {
    fn open(pid: i32, rootless: bool) -> Result<HolderNs, String> {
        let open = |ns: &str| {
            File::open(format!("/proc/{pid}/ns/{ns}"))
                .map_err(|e| format!("opening the network holder's {ns} namespace: {e}"))
        };
        Ok(HolderNs {
            user: if rootless { Some(open("user")?) } else { None },
            net: open("net")?,
        })
    }

    /// Their descriptors, to join them after a fork (valid while this lives).
    pub fn fds(&self) -> NsFds {
        NsFds {
            user: self.user.as_ref().map(|f| f.as_raw_fd()),
            net: self.net.as_raw_fd(),
        }
    }
}

/// The descriptors of [`HolderNs`], copied into a forked process.
#[derive(Debug, Clone, Copy)]
pub struct NsFds {
    user: Option<i32>,
    net: i32,
}

impl NsFds {
    /// Joins the holder's user namespace (rootless) and then its network namespace. Only
    /// system calls: fit for a forked child or a `pre_exec`.
    pub fn enter(self) -> std::io::Result<()> {
        self.enter_user()?;
        // SAFETY: setns on a descriptor the caller keeps open.
        if unsafe { libc::setns(self.net, libc::CLONE_NEWNET) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Joins only the holder's user namespace (rootless; nothing as root), for a process that
    /// makes namespaces of its own under it.
    pub fn enter_user(self) -> std::io::Result<()> {
        if let Some(u) = self.user {
            // SAFETY: setns on a descriptor the caller keeps open; the process is single-threaded.
            if unsafe { libc::setns(u, libc::CLONE_NEWUSER) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

/// A program the plumbing runs, and the Debian package that has it.
type Tool = (&'static str, &'static str);
const IP: Tool = ("ip", "iproute2");
const IPTABLES_RESTORE: Tool = ("iptables-restore", "iptables");

/// Finds `name` on PATH or in the sbin directories, which a user's PATH often lacks.
fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The holder's end of a container's veth on `net`: `vsk`, the start of the container's id and
/// the number of the network's bridge (`skiffN`), at most 15 bytes.
fn veth_name(id: &str, net: &Network) -> String {
    let n = net.bridge.trim_start_matches("skiff");
    format!(
        "{VETH_PREFIX}{}{}",
        &id[..id.len().min(8)],
        &n[..n.len().min(4)]
    )
}

/// Runs `f` in a forked process that has joined the holder's namespaces `fds`, then (given)
/// the network namespace `then_net`; `f` answers 0 or an errno, which becomes the result.
/// Nothing in the child allocates.
pub fn in_namespaces(
    fds: NsFds,
    then_net: Option<i32>,
    f: &mut dyn FnMut() -> i32,
) -> std::io::Result<()> {
    // SAFETY: the child makes only system calls (setns, the netlink socket) and exits.
    match unsafe { nix::unistd::fork() }.map_err(std::io::Error::from)? {
        nix::unistd::ForkResult::Child => {
            let code = match fds.enter() {
                Err(e) => e.raw_os_error().unwrap_or(libc::EPERM),
                // SAFETY: setns on a descriptor the parent keeps open.
                Ok(()) => match then_net {
                    Some(fd) if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 => {
                        // SAFETY: reading this thread's errno.
                        unsafe { *libc::__errno_location() }
                    }
                    _ => f(),
                },
            };
            // SAFETY: leaving the forked child without the parent's destructors.
            unsafe { libc::_exit(code.clamp(0, 255)) }
        }
        nix::unistd::ForkResult::Parent { child } => match nix::sys::wait::waitpid(child, None) {
            Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => Ok(()),
            Ok(nix::sys::wait::WaitStatus::Exited(_, code)) => {
                Err(std::io::Error::from_raw_os_error(code))
            }
            Ok(other) => Err(std::io::Error::other(format!(
                "the plumbing process ended: {other:?}"
            ))),
            Err(e) => Err(e.into()),
        },
    }
}

/// The iptables rules of one network (`op` 'A' to add, 'D' to delete), for iptables-restore.
fn rules(net: &Network, op: char) -> String {
    let br = &net.bridge;
    // Traffic between two containers of one network is bridged, but with br_netfilter loaded
    // it passes FORWARD too (in and out on the bridge): it is let through first.
    let same = format!("-{op} FORWARD -i {br} -o {br} -j ACCEPT\n");
    if net.internal {
        format!(
            "*filter\n{same}-{op} FORWARD -i {br} -j DROP\n-{op} FORWARD -o {br} -j DROP\nCOMMIT\n"
        )
    } else {
        format!(
            "*nat\n-{op} POSTROUTING -s {} ! -o {br} -j MASQUERADE\nCOMMIT\n*filter\n{same}-{op} FORWARD -i {br} -o skiff+ -j DROP\nCOMMIT\n",
            net.subnet
        )
    }
}

fn read_record(dir: &Path) -> Option<Record> {
    let text = std::fs::read_to_string(dir.join("holder.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// `skiff-monitor --network-holder DIR RECORDS`: forks the holder (so it is nobody's child once this
/// returns), waits until it is ready and prints its pid; the exit code says whether it started.
pub fn serve(dir: &Path, records: &Path) -> i32 {
    // A monitor blocks the signals it proxies, and a mask outlives exec: unblock them, so the
    // holder (and its slirp4netns) can be stopped as any process.
    let _ = nix::sys::signal::SigSet::empty().thread_set_mask();
    let Ok((ready_r, ready_w)) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) else {
        eprintln!("making a pipe failed");
        return 1;
    };
    // SAFETY: this process is single-threaded; the child goes on as the holder.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            drop(ready_r);
            let code = match hold(dir, records, ready_w) {
                Ok(()) => 0,
                Err(_) => 1,
            };
            std::process::exit(code);
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            drop(ready_w);
            let mut msg = String::new();
            let _ = File::from(ready_r).read_to_string(&mut msg);
            if msg == "ok" {
                println!("{child}");
                0
            } else {
                let _ = nix::sys::wait::waitpid(child, None);
                eprintln!("{}", msg.trim());
                1
            }
        }
        Err(e) => {
            eprintln!("fork: {e}");
            1
        }
    }
}

/// The holder: its own network namespace with lo up and forwarding on, slirp4netns attached,
/// then a watch that ends it once no container is attached.
fn hold(dir: &Path, records: &Path, ready: OwnedFd) -> Result<(), ()> {
    let mut ready = File::from(ready);
    let mut fail = |msg: String| {
        let _ = ready.write_all(msg.as_bytes());
        Err(())
    };
    let _ = nix::unistd::setsid();
    if let Ok(null) = File::options().read(true).write(true).open("/dev/null") {
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard descriptors of this process.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
    let me = std::process::id().to_string();
    let Ok((go_r, go_w)) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) else {
        return fail("making a pipe failed".into());
    };
    let Ok((sready_r, sready_w)) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) else {
        return fail("making a pipe failed".into());
    };
    let Ok((exit_r, exit_w)) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) else {
        return fail("making a pipe failed".into());
    };
    // slirp4netns must start in the host's network namespace, on ours once it exists: it is
    // forked now and execs when told to.
    let Some(slirp_exe) = find_tool("slirp4netns") else {
        return fail(
            "slirp4netns is needed for skiff networks and was not found: install slirp4netns (apt install slirp4netns), or use --network host".into(),
        );
    };
    let mut slirp = Command::new(slirp_exe);
    slirp.args([
        "--configure",
        "--mtu=65520",
        "--disable-host-loopback",
        &format!("--exit-fd={}", exit_r.as_raw_fd()),
        &format!("--ready-fd={}", sready_w.as_raw_fd()),
        &me,
        "tap0",
    ]);
    let (go_fd, exit_fd, sready_fd) = (go_r.as_raw_fd(), exit_r.as_raw_fd(), sready_w.as_raw_fd());
    // SAFETY: between fork and exec: read, fcntl (async-signal-safe).
    unsafe {
        slirp.pre_exec(move || {
            let mut b = [0u8; 1];
            if libc::read(go_fd, b.as_mut_ptr().cast(), 1) != 1 {
                return Err(std::io::Error::other("the holder went away"));
            }
            for fd in [exit_fd, sready_fd] {
                libc::fcntl(fd, libc::F_SETFD, 0);
            }
            Ok(())
        });
    }
    // Not spawn(): it would wait for the exec, which waits for `go`.
    let slirp_pid = match fork_exec(slirp) {
        Ok(p) => p,
        Err(e) => return fail(format!("starting slirp4netns: {e}")),
    };
    drop(go_r);
    drop(exit_r);
    drop(sready_w);
    if let Err(e) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET) {
        return fail(format!("making the network namespace: {e}"));
    }
    if let Err(e) = crate::rootfs::mounts::loopback_up() {
        return fail(e);
    }
    if let Err(e) = std::fs::write("/proc/sys/net/ipv4/ip_forward", "1") {
        return fail(format!("turning on forwarding: {e}"));
    }
    let _ = nix::unistd::write(&go_w, &[1]);
    drop(go_w);
    let mut byte = [0u8; 1];
    let ok = wait_readable(sready_r.as_raw_fd(), READY_WITHIN)
        && nix::unistd::read(&sready_r, &mut byte).is_ok_and(|n| n == 1);
    if !ok {
        let _ = nix::sys::signal::kill(slirp_pid, nix::sys::signal::Signal::SIGKILL);
        return fail(
            "slirp4netns did not get ready: /dev/net/tun must be usable by you (or use --network host)".into(),
        );
    }
    let resolver = match Resolver::bind(Networks::in_dir(records.to_path_buf())) {
        Ok(r) => r,
        Err(e) => {
            let _ = nix::sys::signal::kill(slirp_pid, nix::sys::signal::Signal::SIGKILL);
            return fail(format!("starting the name server on port 53: {e}"));
        }
    };
    let _ = ready.write_all(b"ok");
    drop(ready);
    watch(dir, slirp_pid, exit_w, resolver);
    Ok(())
}

/// Forks and execs `cmd` (its pre_exec runs in the child) without waiting for the exec.
fn fork_exec(mut cmd: Command) -> Result<nix::unistd::Pid, String> {
    // SAFETY: single-threaded; the child only execs (through Command::exec) or exits.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            let _ = cmd.exec();
            // SAFETY: leaving the forked child without running the parent's destructors.
            unsafe { libc::_exit(127) }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => Ok(child),
        Err(e) => Err(e.to_string()),
    }
}

fn wait_readable(fd: i32, within: Duration) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = i32::try_from(within.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut p, 1, ms) == 1 }
}

/// Answers name questions, and ends the holder once no container has been attached for a
/// second (checked under the lock) or when slirp4netns is gone; its record goes with it.
fn watch(dir: &Path, slirp: nix::unistd::Pid, exit_w: OwnedFd, mut resolver: Resolver) {
    let started = Instant::now();
    let mut idle = 0;
    let mut checked = Instant::now();
    loop {
        let mut fds = resolver.fds().map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        });
        let wait = CHECK_EVERY.saturating_sub(checked.elapsed());
        let ms = i32::try_from(wait.as_millis()).unwrap_or(500);
        // SAFETY: two valid pollfds.
        unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
        resolver.serve_ready();
        if checked.elapsed() < CHECK_EVERY {
            continue;
        }
        checked = Instant::now();
        let slirp_gone = !matches!(
            nix::sys::wait::waitpid(slirp, Some(nix::sys::wait::WaitPidFlag::WNOHANG)),
            Ok(nix::sys::wait::WaitStatus::StillAlive)
        );
        if !dir.is_dir() {
            // The user's runtime directory went away (a logout, a test's home): no monitor can
            // find this holder any more; its containers lose their network with it.
            drop(exit_w);
            let _ = nix::sys::wait::waitpid(slirp, None);
            return;
        }
        let Some(lock) = try_lock(&dir.join(".lock")) else {
            continue;
        };
        idle = if attached() == 0 { idle + 1 } else { 0 };
        if slirp_gone || (idle >= 2 && started.elapsed() > Duration::from_secs(2)) {
            let me = std::process::id() as i32;
            if read_record(dir).is_some_and(|r| r.pid == me) {
                let _ = std::fs::remove_file(dir.join("holder.json"));
            }
            drop(exit_w);
            drop(lock);
            let _ = nix::sys::wait::waitpid(slirp, None);
            return;
        }
    }
}

fn try_lock(path: &Path) -> Option<File> {
    let f = File::options()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .ok()?;
    f.try_lock().ok()?;
    Some(f)
}

/// How many container veths are in this namespace.
fn attached() -> usize {
    nix::ifaddrs::getifaddrs()
        .map(|it| {
            let mut names: Vec<String> = it
                .map(|i| i.interface_name)
                .filter(|n| n.starts_with(VETH_PREFIX))
                .collect();
            names.sort();
            names.dedup();
            names.len()
        })
        .unwrap_or(1)
}
