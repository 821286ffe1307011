//! Published TCP ports of a container on a skiff network (`-p HOST:CTR`): the monitor binds each
//! host port itself (so a port in use, or one below the unprivileged start, is refused before the
//! container starts, with the fix), then forks a forwarder that joins the network holder's
//! namespaces and, for each connection accepted on the host, connects to the container's address
//! on its network and copies both ways. Like slirp4netns it holds the read end of an exit pipe
//! whose write end is the monitor's: when the container ends, or the monitor is killed, the
//! forwarder exits and the host ports are free again. The client's address is not kept (the
//! container sees the holder's bridge address), as with podman's rootlessport.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use crate::network::holder::HolderNs;
use crate::network::ports::PortSpec;

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

/// Binds one host port, with an answer that says what to do when it cannot be had.
fn bind(p: &PortSpec) -> Result<TcpListener, String> {
    let ip: Ipv4Addr = if p.host_ip.is_empty() {
        Ipv4Addr::UNSPECIFIED
    } else {
        p.host_ip
            .parse()
            .map_err(|_| format!("-p {}: {:?} is not an IPv4 address", p.host_port, p.host_ip))?
    };
    TcpListener::bind((ip, p.host_port)).map_err(|e| match e.kind() {
        ErrorKind::AddrInUse => format!(
            "host port {} is already in use (by another container or program): choose another -p host port",
            p.host_port
        ),
        ErrorKind::PermissionDenied => format!(
            "host port {} is below the first port an unprivileged user may bind: use a port >= 1024, or lower it with sysctl net.ipv4.ip_unprivileged_port_start={}",
            p.host_port, p.host_port
        ),
        _ => format!("binding host port {}: {e}", p.host_port),
    })
}

/// Binds `ports` (TCP: the spec refuses UDP on skiff networks) on the host and forks the
/// forwarder to `target` inside the holder's namespaces `ns`.
pub fn start(ports: &[PortSpec], target: Ipv4Addr, ns: HolderNs) -> Result<Forwarder, String> {
    let listeners = ports
        .iter()
        .map(|p| bind(p).map(|l| (l, p.container_port)))
        .collect::<Result<Vec<_>, String>>()?;
    let (exit_r, exit_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| format!("making the forwarder's pipe: {e}"))?;
    // SAFETY: the monitor is single-threaded; the child only joins namespaces, then serves.
    match unsafe { nix::unistd::fork() }.map_err(|e| format!("fork: {e}"))? {
        nix::unistd::ForkResult::Child => {
            drop(exit_w);
            if ns.fds().enter().is_err() {
                // SAFETY: leaving the forked child.
                unsafe { libc::_exit(1) }
            }
            drop(ns);
            let keep: Vec<i32> = listeners
                .iter()
                .map(|(l, _)| l.as_raw_fd())
                .chain([exit_r.as_raw_fd(), 2])
                .collect();
            close_all_but(&keep);
            serve(listeners, target, exit_r);
            // SAFETY: leaving the forked child without the monitor's destructors.
            unsafe { libc::_exit(0) }
        }
        nix::unistd::ForkResult::Parent { child } => Ok(Forwarder {
            pid: child,
            exit_w: Some(exit_w),
        }),
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

/// Accepts on every listener and relays each connection to `target`, until the exit pipe closes.
fn serve(listeners: Vec<(TcpListener, u16)>, target: Ipv4Addr, exit_r: OwnedFd) {
    for (l, port) in listeners {
        std::thread::spawn(move || {
            for conn in l.incoming().flatten() {
                let to = SocketAddr::from((target, port));
                std::thread::spawn(move || relay(conn, to));
            }
        });
    }
    // Blocks until the monitor's end closes (the container ended, or the monitor died).
    let mut b = [0u8; 1];
    let _ = nix::unistd::read(&exit_r, &mut b);
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
