//! The network holder's name server, as Docker's embedded resolver and podman's aardvark-dns:
//! it answers on port 53 of every bridge's gateway (one socket on the holder's namespace) for the
//! names of the containers on the asker's networks — their names, `--network-alias`es and short
//! ids, read from the network records at each question, so a container is known as soon as it
//! is created — and passes every other question to slirp4netns's forwarder (10.0.2.3), which asks
//! the host's resolvers. Internal networks get no forwarding. Containers on another network are
//! never answered for.
//!
//! Only what a stub resolver sends is handled: one question, opcode QUERY; anything else is
//! answered FORMERR/NOTIMP. No state outlives a question but the pending forwards (5 s at most).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use crate::network::records::{Network, Networks};
use crate::network::slirp4netns::DNS_FORWARD;

/// How long an answer about a container may be cached (they come and go).
const TTL: u32 = 10;

/// How long a forwarded question waits for the upstream answer.
const FORWARD_FOR: Duration = Duration::from_secs(5);

const TYPE_A: u16 = 1;
const TYPE_ANY: u16 = 255;

/// Response codes used.
const NOERROR: u8 = 0;
const FORMERR: u8 = 1;
const NXDOMAIN: u8 = 3;
const NOTIMP: u8 = 4;

/// The holder's resolver: its socket, the upstream one, and the questions passed on.
pub struct Resolver {
    sock: UdpSocket,
    upstream: UdpSocket,
    pending: HashMap<u16, (u16, SocketAddr, Instant)>,
    next_id: u16,
    networks: Networks,
}

/// A parsed question: the name asked (lower case, no trailing dot), its type, and where the
/// question section ends.
#[derive(Debug, PartialEq, Eq)]
struct Question {
    name: String,
    qtype: u16,
    end: usize,
}

impl Resolver {
    /// Binds port 53 on all of the holder's addresses (so every bridge's gateway answers) and a
    /// socket towards slirp4netns's forwarder.
    pub fn bind(networks: Networks) -> std::io::Result<Resolver> {
        let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 53))?;
        sock.set_nonblocking(true)?;
        let upstream = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
        let forward: Ipv4Addr = DNS_FORWARD.parse().map_err(std::io::Error::other)?;
        upstream.connect((forward, 53))?;
        upstream.set_nonblocking(true)?;
        Ok(Resolver {
            sock,
            upstream,
            pending: HashMap::new(),
            next_id: 1,
            networks,
        })
    }

    /// The descriptors to poll.
    pub fn fds(&self) -> [RawFd; 2] {
        [self.sock.as_raw_fd(), self.upstream.as_raw_fd()]
    }

    /// Handles every question and upstream answer waiting now.
    pub fn serve_ready(&mut self) {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = self.sock.recv_from(&mut buf) {
            self.question(&buf[..n], from);
        }
        while let Ok(n) = self.upstream.recv(&mut buf) {
            self.upstream_answer(&mut buf[..n]);
        }
        self.pending
            .retain(|_, (_, _, at)| at.elapsed() < FORWARD_FOR);
    }

    fn question(&mut self, msg: &[u8], from: SocketAddr) {
        let SocketAddr::V4(from4) = from else {
            return;
        };
        let q = match parse(msg) {
            Ok(q) => q,
            Err(Some(rcode)) => {
                if msg.len() >= 12 {
                    let _ = self.sock.send_to(&reply(msg, 12, rcode, None), from);
                }
                return;
            }
            Err(None) => return,
        };
        let nets = self.networks.list().unwrap_or_default();
        let Some(net) = nets.iter().find(|n| n.subnet.contains(*from4.ip())) else {
            return;
        };
        // A container on several networks (`network connect`) finds the containers of each.
        let asker = net.leases.iter().find(|(_, l)| l.ip == *from4.ip());
        let found = lookup(net, &q.name).or_else(|| {
            let (id, _) = asker?;
            nets.iter()
                .filter(|n| n.name != net.name && n.leases.contains_key(id))
                .find_map(|n| lookup(n, &q.name))
        });
        match found {
            Some(ip) => {
                let ip = (q.qtype == TYPE_A || q.qtype == TYPE_ANY).then_some(ip);
                let _ = self.sock.send_to(&reply(msg, q.end, NOERROR, ip), from);
            }
            None if net.internal => {
                let _ = self.sock.send_to(&reply(msg, q.end, NXDOMAIN, None), from);
            }
            None => self.forward(msg, from4),
        }
    }

    fn forward(&mut self, msg: &[u8], from: SocketAddrV4) {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let orig = u16::from_be_bytes([msg[0], msg[1]]);
        let mut out = msg.to_vec();
        out[..2].copy_from_slice(&id.to_be_bytes());
        if self.upstream.send(&out).is_ok() {
            self.pending
                .insert(id, (orig, SocketAddr::V4(from), Instant::now()));
        }
    }

    fn upstream_answer(&mut self, msg: &mut [u8]) {
        if msg.len() < 12 {
            return;
        }
        let id = u16::from_be_bytes([msg[0], msg[1]]);
        if let Some((orig, client, _)) = self.pending.remove(&id) {
            msg[..2].copy_from_slice(&orig.to_be_bytes());
            let _ = self.sock.send_to(msg, client);
        }
    }
}

/// The address of `name` among the containers on `net`: a container's name, an alias or the
/// first 12 digits of its id.
fn lookup(net: &Network, name: &str) -> Option<Ipv4Addr> {
    net.leases.iter().find_map(|(id, l)| {
        let hit = l.name.eq_ignore_ascii_case(name)
            || l.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
            || (name.len() == 12 && id.starts_with(name));
        hit.then_some(l.ip)
    })
}

/// Parses a query's header and single question. `Err(Some(rcode))` asks for an error answer,
/// `Err(None)` for silence (not a query at all).
fn parse(msg: &[u8]) -> Result<Question, Option<u8>> {
    if msg.len() < 12 {
        return Err(None);
    }
    let flags = u16::from_be_bytes([msg[2], msg[3]]);
    if flags & 0x8000 != 0 {
        return Err(None); // a response, not a question
    }
    if (flags >> 11) & 0xf != 0 {
        return Err(Some(NOTIMP));
    }
    if u16::from_be_bytes([msg[4], msg[5]]) != 1 {
        return Err(Some(FORMERR));
    }
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*msg.get(at).ok_or(Some(FORMERR))?);
        at += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return Err(Some(FORMERR)); // compression has no place in a question
        }
        let label = msg.get(at..at + len).ok_or(Some(FORMERR))?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        at += len;
    }
    let tail = msg.get(at..at + 4).ok_or(Some(FORMERR))?;
    Ok(Question {
        name: labels.join("."),
        qtype: u16::from_be_bytes([tail[0], tail[1]]),
        end: at + 4,
    })
}

/// The answer to `query` (its header and question, `qend` bytes): `rcode`, and an A record
/// when `ip` is given.
fn reply(query: &[u8], qend: usize, rcode: u8, ip: Option<Ipv4Addr>) -> Vec<u8> {
    let mut out = query[..qend.min(query.len())].to_vec();
    let rd = u16::from_be_bytes([query[2], query[3]]) & 0x0100;
    let flags: u16 = 0x8000 | 0x0400 | rd | 0x0080 | u16::from(rcode);
    out[2..4].copy_from_slice(&flags.to_be_bytes());
    let qd: u16 = if qend > 12 { 1 } else { 0 };
    out[4..6].copy_from_slice(&qd.to_be_bytes());
    out[6..8].copy_from_slice(&u16::from(ip.is_some()).to_be_bytes());
    out[8..12].copy_from_slice(&[0, 0, 0, 0]);
    if let Some(ip) = ip {
        out.extend_from_slice(&[0xc0, 0x0c]);
        out.extend_from_slice(&TYPE_A.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&TTL.to_be_bytes());
        out.extend_from_slice(&4u16.to_be_bytes());
        out.extend_from_slice(&ip.octets());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query as a stub resolver sends it (with an EDNS record after the question).
    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
        for l in name.split('.') {
            q.push(l.len() as u8);
            q.extend_from_slice(l.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&1u16.to_be_bytes());
        q.extend_from_slice(&[0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0]);
        q
    }

    #[test]
    fn questions_parse_and_answers_carry_the_address() {
        let q = query("Web.Front", TYPE_A);
        let p = parse(&q).unwrap();
        assert_eq!(p.name, "web.front");
        assert_eq!(p.qtype, TYPE_A);
        let a = reply(&q, p.end, NOERROR, Some(Ipv4Addr::new(10, 90, 1, 2)));
        assert_eq!(&a[..2], &[0x12, 0x34], "same id");
        assert_eq!(a[3] & 0x0f, NOERROR);
        assert_eq!(u16::from_be_bytes([a[6], a[7]]), 1, "one answer");
        assert_eq!(
            u16::from_be_bytes([a[10], a[11]]),
            0,
            "the EDNS record is not echoed"
        );
        assert_eq!(&a[a.len() - 4..], &[10, 90, 1, 2]);
        let none = reply(&q, p.end, NXDOMAIN, None);
        assert_eq!(none[3] & 0x0f, NXDOMAIN);
        assert_eq!(none.len(), p.end);
    }

    #[test]
    fn malformed_questions_are_refused_not_trusted() {
        assert_eq!(parse(&[0; 5]), Err(None));
        let mut q = query("web", TYPE_A);
        q[2] |= 0x80;
        assert_eq!(parse(&q), Err(None), "a response is not answered");
        let mut q = query("web", TYPE_A);
        q[5] = 2;
        assert_eq!(parse(&q), Err(Some(FORMERR)));
        let mut q = query("web", TYPE_A);
        q[12] = 0xc0;
        assert_eq!(parse(&q), Err(Some(FORMERR)), "no pointers in a question");
        let q = query("web", TYPE_A);
        assert_eq!(parse(&q[..15]), Err(Some(FORMERR)), "cut short");
        let mut q = query("web", TYPE_A);
        q[2] = 0x28; // opcode 5 (UPDATE)
        assert_eq!(parse(&q), Err(Some(NOTIMP)));
    }
}
