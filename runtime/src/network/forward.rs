//! Published ports of a container on a skiff network (`-p HOST:CTR[/udp]`, `-p CTR`, `-P`): the
//! monitor binds each host port itself (so a port in use, or one below the unprivileged start,
//! is refused before the container starts, with the fix; host port 0 gets a free one from the
//! kernel, and the port bound is what the state records), then forks a forwarder that joins
//! the network holder's namespaces and relays to the container's address on its network: each
//! TCP connection accepted on the host is copied both ways by two threads, and UDP datagrams go
//! through `udprelay`, one socket per client. One poll loop accepts and relays datagrams. Like
//! slirp4netns it holds the read end of an exit pipe whose write end is the monitor's: when the
//! container ends, or the monitor is killed, the forwarder exits and the host ports are free
//! again. The client's address is not kept (the container sees the holder's address on the
//! bridge, the network's gateway), as with podman's rootlessport.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::network::holder::HolderNs;
use crate::network::ports::PortSpec;
use crate::network::udprelay::UdpRelay;

/// The forwarder of one container's ports; dropping it ends the forwarder.
#[derive(Debug)]
pub struct Forwarder {
    pid: nix::unistd::Pid,
    exit_w: Option<OwnedFd>,
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        super::end_helper(self.pid, self.exit_w.take());
    }
}

/// A host socket bound for one published port.
enum Bound {
    Tcp(TcpListener),
    Udp(UdpSocket),
}

impl Bound {
    fn raw_fd(&self) -> i32 {
        match self {
            Bound::Tcp(l) => l.as_raw_fd(),
            Bound::Udp(s) => s.as_raw_fd(),
        }
    }
}

/// Binds one host port (a free one for host port 0), with an answer that says what to do when
/// it cannot be had; gives the socket and the spec with the port bound.
fn bind(p: &PortSpec) -> Result<(Bound, PortSpec), String> {
    let ip: Ipv4Addr = if p.host_ip.is_empty() {
        Ipv4Addr::UNSPECIFIED
    } else {
        p.host_ip
            .parse()
            .map_err(|_| format!("-p {}: {:?} is not an IPv4 address", p.host_port, p.host_ip))?
    };
    let at = (ip, p.host_port);
    let bound = if p.protocol == "udp" {
        UdpSocket::bind(at).and_then(|s| Ok((s.local_addr()?.port(), Bound::Udp(s))))
    } else {
        TcpListener::bind(at).and_then(|l| Ok((l.local_addr()?.port(), Bound::Tcp(l))))
    };
    let what = format!("host port {}/{}", p.host_port, p.protocol);
    match bound {
        Ok((port, b)) => Ok((b, p.on_host_port(port))),
        Err(e) => Err(match e.kind() {
            ErrorKind::AddrInUse => format!(
                "{what} is already in use (by another container or program): choose another -p host port"
            ),
            ErrorKind::PermissionDenied => format!(
                "{what} is below the first port an unprivileged user may bind: use a port >= 1024, or lower it with sysctl net.ipv4.ip_unprivileged_port_start={}",
                p.host_port
            ),
            _ => format!("binding {what}: {e}"),
        }),
    }
}

/// Binds `ports` on the host and forks the forwarder to `target` inside the holder's
/// namespaces `ns`; gives it and the ports as bound.
pub fn start(
    ports: &[PortSpec],
    target: Ipv4Addr,
    ns: HolderNs,
) -> Result<(Forwarder, Vec<PortSpec>), String> {
    let mut sockets = Vec::with_capacity(ports.len());
    let mut bound = Vec::with_capacity(ports.len());
    for p in ports {
        let (s, b) = bind(p)?;
        sockets.push((s, p.container_port));
        bound.push(b);
    }
    let (exit_r, exit_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| format!("making the forwarder's pipe: {e}"))?;
    // SAFETY: the monitor is single-threaded; the child only joins namespaces, then serves.
    match unsafe { nix::unistd::fork() }.map_err(|e| format!("fork: {e}"))? {
        nix::unistd::ForkResult::Child => {
            drop(exit_w);
            // Each connection holds four descriptors and each UDP client one: the hard limit,
            // not the soft 1024, bounds them.
            use nix::sys::resource::{getrlimit, setrlimit, Resource};
            if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
                let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
            }
            if ns.fds().enter().is_err() {
                // SAFETY: leaving the forked child.
                unsafe { libc::_exit(1) }
            }
            drop(ns);
            let keep: Vec<i32> = sockets
                .iter()
                .map(|(s, _)| s.raw_fd())
                .chain([exit_r.as_raw_fd(), 2])
                .collect();
            close_all_but(&keep);
            serve(sockets, target, exit_r);
            // SAFETY: leaving the forked child without the monitor's destructors.
            unsafe { libc::_exit(0) }
        }
        nix::unistd::ForkResult::Parent { child } => Ok((
            Forwarder {
                pid: child,
                exit_w: Some(exit_w),
            },
            bound,
        )),
    }
}

/// Closes every descriptor but `keep` (the monitor's pipes, the container's stdio…).
fn close_all_but(keep: &[i32]) {
    for fd in crate::sys::fd::open_fds() {
        if !keep.contains(&fd) {
            // SAFETY: closing descriptors this forked child does not use.
            unsafe { libc::close(fd) };
        }
    }
}

/// Accepts on every TCP listener (each connection relayed to `target` by its own threads) and
/// relays the datagrams of every UDP port, until the exit pipe closes.
fn serve(sockets: Vec<(Bound, u16)>, target: Ipv4Addr, exit_r: OwnedFd) {
    let mut tcp = Vec::new();
    let mut udp = Vec::new();
    for (s, port) in sockets {
        let to = SocketAddr::from((target, port));
        match s {
            Bound::Tcp(l) => {
                if l.set_nonblocking(true).is_ok() {
                    tcp.push((l, to));
                }
            }
            Bound::Udp(s) => {
                if let Ok(r) = UdpRelay::new(s, to) {
                    udp.push(r);
                }
            }
        }
    }
    let mut buf = vec![0u8; 65536];
    loop {
        let mut fds = vec![PollFd::new(exit_r.as_fd(), PollFlags::POLLIN)];
        fds.extend(
            tcp.iter()
                .map(|(l, _)| PollFd::new(l.as_fd(), PollFlags::POLLIN)),
        );
        let counts: Vec<usize> = udp.iter().map(UdpRelay::fd_count).collect();
        for r in &udp {
            fds.extend(r.poll_fds());
        }
        // Wake when the next idle UDP client is due to go, else only for traffic.
        let timeout =
            udp.iter()
                .filter_map(UdpRelay::next_expiry)
                .min()
                .map_or(PollTimeout::NONE, |t| {
                    let ms = t.saturating_duration_since(Instant::now()).as_millis() + 1;
                    PollTimeout::try_from(ms.min(60_000) as i32).unwrap_or(PollTimeout::MAX)
                });
        match poll(&mut fds, timeout) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return,
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        // The monitor's end closed: the container ended, or the monitor died.
        if ready[0] {
            return;
        }
        for ((l, to), _) in tcp.iter().zip(&ready[1..]).filter(|(_, r)| **r) {
            while let Ok((conn, _)) = l.accept() {
                let to = *to;
                if conn.set_nonblocking(false).is_ok() {
                    std::thread::spawn(move || relay(conn, to));
                }
            }
        }
        let mut at = 1 + tcp.len();
        for (r, n) in udp.iter_mut().zip(counts) {
            r.on_ready(&ready[at..at + n], &mut buf);
            at += n;
        }
    }
}

/// Copies both ways between the host's client and the container, closing each direction as its
/// sender finishes.
fn relay(client: TcpStream, to: SocketAddr) {
    let Ok(server) = TcpStream::connect_timeout(&to, Duration::from_secs(5)) else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (Ok(mut c2), Ok(mut s2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let up = std::thread::spawn(move || {
        pump(&client, &mut s2);
        let _ = s2.shutdown(std::net::Shutdown::Write);
    });
    pump(&server, &mut c2);
    let _ = c2.shutdown(std::net::Shutdown::Write);
    let _ = up.join();
}

/// Copies `from` to `to` until EOF or an error, in large chunks (`io::copy`'s 8 KiB buffer
/// made host → container transfers through the forwarder 2.5 times slower than podman's).
fn pump(mut from: &TcpStream, to: &mut TcpStream) {
    let mut buf = vec![0u8; RELAY_BUF];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

/// The relay's chunk size.
const RELAY_BUF: usize = 256 * 1024;
