//! The UDP half of the port forwarder: datagrams that reach a published host UDP port go to the
//! container from a socket of their own per client address (made inside the holder's network
//! namespace and connected to the container's address), and what the container sends back on
//! that socket goes to that client from the host port. UDP has no end, so a client's socket is
//! dropped after [`IDLE`] without traffic either way, and at most [`MAX_CLIENTS`] are kept (the
//! one idle longest makes room for a new one). Polled by the forwarder's single loop.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags};

/// How long a client's socket lives without a datagram either way (conntrack's UDP stream
/// timeout is 120 s, docker-proxy's 90 s; DNS and game clients come back well within it).
pub const IDLE: Duration = Duration::from_secs(60);

/// The most clients kept at once per published port, so a flood of source addresses costs a
/// bounded number of sockets.
pub const MAX_CLIENTS: usize = 256;

/// At most this many datagrams are taken from one socket per wake-up, so one busy client
/// cannot starve the others.
const BURST: usize = 64;

/// One client of a published UDP port.
struct Client {
    peer: SocketAddr,
    sock: UdpSocket,
    last: Instant,
}

/// One published UDP port: the host socket and its clients.
pub struct UdpRelay {
    host: UdpSocket,
    to: SocketAddr,
    clients: Vec<Client>,
}

impl UdpRelay {
    /// Relays `host` (bound on the host) to `to`; to be made inside the holder's namespaces,
    /// where the clients' sockets will be.
    pub fn new(host: UdpSocket, to: SocketAddr) -> std::io::Result<UdpRelay> {
        host.set_nonblocking(true)?;
        Ok(UdpRelay {
            host,
            to,
            clients: Vec::new(),
        })
    }

    /// What to poll: the host socket, then each client's.
    pub fn poll_fds(&self) -> impl Iterator<Item = PollFd<'_>> {
        std::iter::once(self.host.as_fd())
            .chain(self.clients.iter().map(|c| c.sock.as_fd()))
            .map(|fd| PollFd::new(fd, PollFlags::POLLIN))
    }

    /// How many descriptors [`UdpRelay::poll_fds`] gives.
    pub fn fd_count(&self) -> usize {
        1 + self.clients.len()
    }

    /// Handles what poll found readable (`ready`, in [`UdpRelay::poll_fds`]'s order), then
    /// drops the clients idle too long.
    pub fn on_ready(&mut self, ready: &[bool], buf: &mut [u8]) {
        let now = Instant::now();
        // The replies first: taking new datagrams may add clients and shift the order.
        for (c, _) in self
            .clients
            .iter_mut()
            .zip(ready.iter().skip(1))
            .filter(|(_, r)| **r)
        {
            for _ in 0..BURST {
                match c.sock.recv(buf) {
                    Ok(n) => {
                        let _ = self.host.send_to(&buf[..n], c.peer);
                        c.last = now;
                    }
                    // WouldBlock, or the container's port refused (ICMP): nothing more now.
                    Err(_) => break,
                }
            }
        }
        if ready.first() == Some(&true) {
            for _ in 0..BURST {
                match self.host.recv_from(buf) {
                    Ok((n, peer)) => {
                        if let Some(c) = self.client(peer, now) {
                            c.last = now;
                            let _ = c.sock.send(&buf[..n]);
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
        }
        self.clients.retain(|c| now.duration_since(c.last) < IDLE);
    }

    /// When the next client falls idle, if there is one.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.clients.iter().map(|c| c.last + IDLE).min()
    }

    /// The socket of `peer`, made (connected to the container) if it has none yet.
    fn client(&mut self, peer: SocketAddr, now: Instant) -> Option<&mut Client> {
        if let Some(i) = self.clients.iter().position(|c| c.peer == peer) {
            return self.clients.get_mut(i);
        }
        if self.clients.len() >= MAX_CLIENTS {
            let oldest = (0..self.clients.len()).min_by_key(|&i| self.clients[i].last)?;
            self.clients.swap_remove(oldest);
        }
        let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
        sock.connect(self.to).ok()?;
        sock.set_nonblocking(true).ok()?;
        self.clients.push(Client {
            peer,
            sock,
            last: now,
        });
        self.clients.last_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the relay's loop for a while on this thread's own namespace: a UDP echo server as
    /// the container, two clients, and a flood of source ports past the cap.
    #[test]
    fn datagrams_go_both_ways_per_client_and_the_table_stays_bounded() {
        let echo = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = echo.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut b = [0u8; 2048];
            while let Ok((n, from)) = echo.recv_from(&mut b) {
                let mut reply = b"echo:".to_vec();
                reply.extend_from_slice(&b[..n]);
                let _ = echo.send_to(&reply, from);
            }
        });
        let host = UdpSocket::bind("127.0.0.1:0").unwrap();
        let published = host.local_addr().unwrap();
        let mut relay = UdpRelay::new(host, to).unwrap();
        let mut buf = vec![0u8; 65536];
        let mut turn = |relay: &mut UdpRelay| {
            let mut fds: Vec<PollFd> = relay.poll_fds().collect();
            let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(50u8));
            let ready: Vec<bool> = fds
                .iter()
                .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                .collect();
            drop(fds);
            relay.on_ready(&ready, &mut buf);
        };
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        for s in [&a, &b] {
            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        }
        a.send_to(b"from-a", published).unwrap();
        b.send_to(b"from-b", published).unwrap();
        let mut got = |s: &UdpSocket, relay: &mut UdpRelay| -> String {
            for _ in 0..100 {
                turn(relay);
                let mut r = [0u8; 64];
                if let Ok((n, from)) = s.recv_from(&mut r) {
                    assert_eq!(from, published, "replies come from the published port");
                    return String::from_utf8_lossy(&r[..n]).into_owned();
                }
            }
            panic!("no reply");
        };
        assert_eq!(got(&a, &mut relay), "echo:from-a");
        assert_eq!(got(&b, &mut relay), "echo:from-b");
        assert_eq!(relay.clients.len(), 2);
        // More source addresses than the cap: the table never grows past it.
        let flood: Vec<UdpSocket> = (0..MAX_CLIENTS + 20)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        for s in &flood {
            s.send_to(b"x", published).unwrap();
            if relay.clients.len() < MAX_CLIENTS {
                turn(&mut relay);
            }
        }
        for _ in 0..20 {
            turn(&mut relay);
        }
        assert_eq!(relay.clients.len(), MAX_CLIENTS);
        // Idle clients go.
        for c in &mut relay.clients {
            c.last = c.last.checked_sub(IDLE).unwrap();
        }
        turn(&mut relay);
        assert!(relay.clients.is_empty());
        assert_eq!(relay.next_expiry(), None);
    }
}
