//! Private networks: `--network slirp4netns` gives the container its own network namespace,
//! connected to the host's network through slirp4netns (user-mode networking, as podman's
//! rootless containers use), and `-p` publishes container ports on the host through it. It runs
//! as the user, as root too, and exits when the monitor's end of its exit pipe closes.
//! (pasta was tried first: Debian 12's pasta does not quit when a namespace joined by pid goes
//! away, and as root it cannot join the container's namespaces at all.)

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::network::ports::PortSpec;

/// The address inside the container where slirp4netns answers DNS (forwarded to the host's
/// resolvers, even ones on the host's loopback), written into the container's resolv.conf.
pub const DNS_FORWARD: &str = "10.0.2.3";

/// The slirp4netns process serving one container's network. It holds the read end of a pipe
/// whose write end is here: when this is dropped (the container exited or failed to start) or
/// the monitor dies, the pipe closes and slirp4netns exits by itself. Nothing outlives it.
#[derive(Debug)]
pub struct Helper {
    /// slirp4netns's pid.
    pub pid: i32,
    exit_w: Option<OwnedFd>,
}

impl Drop for Helper {
    fn drop(&mut self) {
        // Closing the pipe tells slirp4netns to exit.
        super::end_helper(nix::unistd::Pid::from_raw(self.pid), self.exit_w.take());
    }
}

/// How long slirp4netns may take to configure the namespace.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// Connects the network namespace of `pid` (new, its user namespace already mapped when
/// `userns`) to the host through slirp4netns — interface `tap0`, 10.0.2.100/24, DNS at
/// [`DNS_FORWARD`] — and publishes `ports` through its API socket, made in `dir`; gives the
/// helper and the ports as published (host port 0 given a free one).
pub fn connect(
    pid: i32,
    ports: &[PortSpec],
    dir: &Path,
    userns: bool,
) -> std::result::Result<(Helper, Vec<PortSpec>), String> {
    let pipe = || {
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| format!("making a pipe for slirp4netns: {e}"))
    };
    let (exit_r, exit_w) = pipe()?;
    let (ready_r, ready_w) = pipe()?;
    let log = dir.join("slirp4netns.log");
    let log_file = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let _ = std::fs::remove_file(dir.join(API_SOCKET));
    let mut cmd = Command::new("slirp4netns");
    cmd.args(["--configure", "--mtu=65520", "--disable-host-loopback"])
        .args(["--exit-fd=3", "--ready-fd=4"]);
    if !ports.is_empty() {
        // Relative to its working directory (the container's): a full path could pass the
        // 108 bytes a socket address holds.
        cmd.arg(format!("--api-socket={API_SOCKET}"));
    }
    if userns {
        cmd.arg(format!("--userns-path=/proc/{pid}/ns/user"));
    }
    cmd.arg(pid.to_string())
        .arg("tap0")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().map_err(|e| e.to_string())?)
        .stderr(log_file);
    // Above 2..4 first, so that the dup2s onto 3 and 4 below cannot clobber each other.
    let high = |fd: &OwnedFd| {
        nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(10))
            .map(|n| {
                // SAFETY: F_DUPFD_CLOEXEC just made this fd; it is owned here.
                unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(n) }
            })
            .map_err(|e| format!("slirp4netns pipes: {e}"))
    };
    let (exit_r, ready_w) = {
        let (low_exit_r, low_ready_w) = (exit_r, ready_w);
        (high(&low_exit_r)?, high(&low_ready_w)?)
    };
    let (er, rw) = (exit_r.as_raw_fd(), ready_w.as_raw_fd());
    // SAFETY: between fork and exec only async-signal-safe calls: dup2 and sigprocmask. The
    // monitor blocks the signals it proxies; the helper must be stoppable by them.
    unsafe {
        cmd.pre_exec(move || {
            let empty: libc::sigset_t = std::mem::zeroed();
            libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            if libc::dup2(er, 3) < 0 || libc::dup2(rw, 4) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    };
    let child = cmd.spawn().map_err(|e| {
        format!("a private network needs slirp4netns ({e}): install it (apt install slirp4netns)")
    })?;
    drop((exit_r, ready_w));
    let helper = Helper {
        pid: child.id() as i32,
        exit_w: Some(exit_w),
    };
    let failed = |what: String| {
        let said = std::fs::read_to_string(&log).unwrap_or_default();
        let said: Vec<&str> = said
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.contains("tapfd") && !l.starts_with("WARNING"))
            .collect();
        if said.is_empty() {
            what
        } else {
            format!("{what}: {}", said.join("; "))
        }
    };
    let mut ready = [0u8; 1];
    let mut fds = [PollFd::new(ready_r.as_fd(), PollFlags::POLLIN)];
    let timeout = PollTimeout::try_from(READY_WITHIN).unwrap_or(PollTimeout::MAX);
    let configured = matches!(poll(&mut fds, timeout), Ok(n) if n > 0)
        && matches!(nix::unistd::read(&ready_r, &mut ready), Ok(1));
    if !configured {
        return Err(failed(
            "slirp4netns could not set up the container's network".into(),
        ));
    }
    let mut published = Vec::with_capacity(ports.len());
    for p in ports {
        published.push(publish(dir, p)?);
    }
    // The child is slirp4netns itself (it does not fork); the monitor's SIGCHLD loop reaps it.
    drop(child);
    Ok((helper, published))
}

/// How often a free port is picked again when another program took it before slirp4netns
/// could bind it.
const FREE_PORT_TRIES: usize = 3;

/// Publishes one port; host port 0 gets a port the kernel finds free just before, tried again
/// if it was taken in between.
fn publish(dir: &Path, p: &PortSpec) -> std::result::Result<PortSpec, String> {
    if p.host_port != 0 {
        add_forward(dir, p).map_err(|e| format!("publishing {}: {e}", p.display()))?;
        return Ok(p.clone());
    }
    let mut last = String::new();
    for _ in 0..FREE_PORT_TRIES {
        let picked = p.on_host_port(free_port(p)?);
        match add_forward(dir, &picked) {
            Ok(()) => return Ok(picked),
            Err(e) => last = e,
        }
    }
    Err(format!(
        "publishing {} on a free host port: {last}",
        p.key()
    ))
}

/// A host port free for `p`'s address and protocol right now (bound to port 0, then let go).
fn free_port(p: &PortSpec) -> std::result::Result<u16, String> {
    let at = (p.host_ip_or_any(), 0);
    let port = if p.protocol == "udp" {
        std::net::UdpSocket::bind(at).and_then(|s| s.local_addr())
    } else {
        std::net::TcpListener::bind(at).and_then(|l| l.local_addr())
    };
    port.map(|a| a.port())
        .map_err(|e| format!("finding a free host port for {}: {e}", p.key()))
}

/// The API socket's name in the container's directory.
const API_SOCKET: &str = "slirp4netns.sock";

/// Asks slirp4netns to forward a host port to the container (`add_hostfwd`).
fn add_forward(dir: &Path, p: &PortSpec) -> std::result::Result<(), String> {
    let d = std::fs::File::open(dir).map_err(|e| e.to_string())?;
    // Through the directory's fd: the full path may be longer than a socket address holds.
    let path = format!("/proc/self/fd/{}/{API_SOCKET}", d.as_raw_fd());
    let mut s = UnixStream::connect(&path).map_err(|e| format!("slirp4netns API: {e}"))?;
    let req = serde_json::json!({
        "execute": "add_hostfwd",
        "arguments": {
            "proto": p.protocol, "host_addr": p.host_ip_or_any(),
            "host_port": p.host_port, "guest_port": p.container_port,
        },
    });
    s.write_all(req.to_string().as_bytes())
        .and_then(|_| s.shutdown(std::net::Shutdown::Write))
        .map_err(|e| format!("slirp4netns API: {e}"))?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)
        .map_err(|e| format!("slirp4netns API: {e}"))?;
    let v: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
    if v.get("return").is_some() {
        return Ok(());
    }
    Err(v["error"]["desc"]
        .as_str()
        .map(|d| {
            if d.contains("failed") {
                format!("{d} (is host port {} already in use?)", p.host_port)
            } else {
                d.to_string()
            }
        })
        .unwrap_or(answer))
}
