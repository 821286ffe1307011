//! The few rtnetlink requests the network plumbing makes (a veth pair whose one end goes into a
//! container's namespace, deleting a link, an address on an interface), written by hand so that
//! no `ip` process is started per container. Each request is built into a buffer first; sending
//! it needs only system calls, so it fits a forked child that has just joined the holder's
//! namespaces (a process of the CLI may have other threads, and a forked child of it must not
//! allocate).

use std::net::Ipv4Addr;

const NLMSG_HDRLEN: usize = 16;
const IFADDR_LEN: usize = 8;
const NLMSG_ERROR: u16 = 2;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_NEWADDR: u16 = 20;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_PID: u16 = 19;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_ADDRESS: u16 = 1;
const IFF_UP: u32 = 1;

/// One request, ready to send: its bytes, built before any fork.
#[derive(Debug, Clone)]
pub struct Request {
    buf: Vec<u8>,
    /// Where an interface index goes that is only known in the namespace the request is sent
    /// in (the bridge of `new_veth`, the interface of `new_addr` and `link_up`).
    index_at: Option<usize>,
    /// Where a namespace descriptor goes that is only opened in the child (`Netns::Fd`).
    ns_at: Option<usize>,
}

/// Appends attributes, each padded to four bytes, and nests them.
struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn attr(&mut self, kind: u16, data: &[u8]) {
        let len = 4 + data.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn str_attr(&mut self, kind: u16, s: &str) {
        let mut data = s.as_bytes().to_vec();
        data.push(0);
        self.attr(kind, &data);
    }

    /// Starts a nested attribute; `end` fills in its length.
    fn begin(&mut self, kind: u16) -> usize {
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        at
    }

    fn end(&mut self, at: usize) {
        let len = (self.buf.len() - at) as u16;
        self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
        self.pad();
    }

    fn ifinfo(&mut self, index: i32, flags: u32, change: u32) {
        self.buf
            .extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
        self.buf.extend_from_slice(&index.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&change.to_ne_bytes());
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    fn finish(mut self) -> Request {
        let len = self.buf.len() as u32;
        self.buf[..4].copy_from_slice(&len.to_ne_bytes());
        Request {
            buf: self.buf,
            index_at: None,
            ns_at: None,
        }
    }
}

fn header(kind: u16, flags: u16) -> Writer {
    let mut buf = Vec::with_capacity(256);
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    buf.extend_from_slice(&1u32.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    Writer { buf }
}

/// Parses `02:42:0a:5a:00:02`.
fn mac_bytes(mac: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = mac.split(':');
    for b in &mut out {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// The network namespace a veth's other end goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Netns {
    /// The namespace of this process: the monitor's own child, whose pid cannot be reused
    /// while the monitor has not reaped it.
    Pid(i32),
    /// A descriptor of the namespace, opened (and checked) beforehand: for a process that is
    /// not the caller's child, whose pid could be reused.
    Fd(i32),
}

/// `ip link add NAME master BRIDGE up type veth peer name PEER address MAC netns NS`: one
/// end on the bridge (its index is set with `set_index` where it is known, in the holder's
/// namespace), up; the other, down, in namespace `ns`.
pub fn new_veth(name: &str, peer: &str, mac: &str, ns: Netns) -> Result<Request, String> {
    let mac = mac_bytes(mac).ok_or_else(|| format!("{mac:?} is not a MAC address"))?;
    let mut w = header(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
    w.ifinfo(0, IFF_UP, IFF_UP);
    w.str_attr(IFLA_IFNAME, name);
    let master_at = w.buf.len() + 4;
    w.attr(IFLA_MASTER, &0u32.to_ne_bytes());
    let info = w.begin(IFLA_LINKINFO);
    w.str_attr(IFLA_INFO_KIND, "veth");
    let data = w.begin(IFLA_INFO_DATA);
    let p = w.begin(VETH_INFO_PEER);
    w.ifinfo(0, 0, 0);
    w.str_attr(IFLA_IFNAME, peer);
    w.attr(IFLA_ADDRESS, &mac);
    let ns_at = w.buf.len() + 4;
    match ns {
        Netns::Pid(pid) => w.attr(IFLA_NET_NS_PID, &(pid as u32).to_ne_bytes()),
        Netns::Fd(fd) => w.attr(IFLA_NET_NS_FD, &(fd as u32).to_ne_bytes()),
    }
    w.end(p);
    w.end(data);
    w.end(info);
    let mut r = w.finish();
    r.index_at = Some(master_at);
    r.ns_at = matches!(ns, Netns::Fd(_)).then_some(ns_at);
    Ok(r)
}

/// `ip link del NAME`.
pub fn del_link(name: &str) -> Request {
    let mut w = header(RTM_DELLINK, 0);
    w.ifinfo(0, 0, 0);
    w.str_attr(IFLA_IFNAME, name);
    w.finish()
}

/// `ip link set dev IFACE up` (the interface's index is set with `set_index`).
pub fn link_up() -> Request {
    let mut w = header(RTM_NEWLINK, 0);
    w.ifinfo(0, IFF_UP, IFF_UP);
    let mut r = w.finish();
    r.index_at = Some(NLMSG_HDRLEN + 4);
    r
}

/// `ip addr add IP/PREFIX dev IFACE` (the interface's index is set with `set_index`).
pub fn new_addr(ip: Ipv4Addr, prefix: u8) -> Request {
    let mut w = header(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
    w.buf
        .extend_from_slice(&[libc::AF_INET as u8, prefix, 0, 0]);
    w.buf.extend_from_slice(&0u32.to_ne_bytes());
    debug_assert_eq!(w.buf.len(), NLMSG_HDRLEN + IFADDR_LEN);
    w.attr(IFA_LOCAL, &ip.octets());
    w.attr(IFA_ADDRESS, &ip.octets());
    let mut r = w.finish();
    r.index_at = Some(NLMSG_HDRLEN + 4);
    r
}

impl Request {
    /// Fills in the interface index the request needs (no allocation).
    pub fn set_index(&mut self, index: u32) {
        if let Some(at) = self.index_at {
            self.buf[at..at + 4].copy_from_slice(&index.to_ne_bytes());
        }
    }

    /// Fills in the namespace descriptor of a `new_veth(…, Netns::Fd(_))` request (no
    /// allocation).
    pub fn set_netns_fd(&mut self, fd: i32) {
        if let Some(at) = self.ns_at {
            self.buf[at..at + 4].copy_from_slice(&(fd as u32).to_ne_bytes());
        }
    }

    /// Sends this request on a new route socket of the calling process's network namespace and
    /// returns the kernel's answer: 0, or the errno it refused with. Only system calls, no
    /// allocation: fit for a forked child.
    pub fn send(&self) -> i32 {
        // SAFETY: plain socket calls on a descriptor closed before returning; the buffers live
        // for the calls.
        unsafe {
            let fd = libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            );
            if fd < 0 {
                return *libc::__errno_location();
            }
            let mut addr: libc::sockaddr_nl = std::mem::zeroed();
            addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
            let sent = libc::sendto(
                fd,
                self.buf.as_ptr().cast(),
                self.buf.len(),
                0,
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            );
            if sent < 0 {
                let e = *libc::__errno_location();
                libc::close(fd);
                return e;
            }
            let mut answer = [0u8; 1024];
            let code = loop {
                let n = libc::recv(fd, answer.as_mut_ptr().cast(), answer.len(), 0);
                if n < 0 {
                    let e = *libc::__errno_location();
                    if e == libc::EINTR {
                        continue;
                    }
                    break e;
                }
                break ack_code(&answer[..n as usize]);
            };
            libc::close(fd);
            code
        }
    }
}

/// The errno in the kernel's acknowledgement (0 for success), or EPROTO when it is not one.
fn ack_code(msg: &[u8]) -> i32 {
    if msg.len() < NLMSG_HDRLEN + 4 {
        return libc::EPROTO;
    }
    let kind = u16::from_ne_bytes([msg[4], msg[5]]);
    if kind != NLMSG_ERROR {
        return libc::EPROTO;
    }
    let err = i32::from_ne_bytes([msg[16], msg[17], msg[18], msg[19]]);
    -err
}

#[cfg(test)]
mod tests {
    use super::*;

    const IFINFO_LEN: usize = 16;

    fn u16_at(b: &[u8], at: usize) -> u16 {
        u16::from_ne_bytes([b[at], b[at + 1]])
    }

    #[test]
    fn a_veth_request_has_its_lengths_and_nesting_right() {
        let mut r = new_veth("vsk0123", "eth0", "02:42:0a:5a:00:02", Netns::Pid(4242)).unwrap();
        r.set_index(7);
        let b = &r.buf;
        assert_eq!(
            u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize,
            b.len()
        );
        assert!(b.len().is_multiple_of(4));
        assert_eq!(u16_at(b, 4), RTM_NEWLINK);
        // The first attribute after the headers is the name, NUL-terminated and padded.
        let at = NLMSG_HDRLEN + IFINFO_LEN;
        assert_eq!(u16_at(b, at), 4 + 8);
        assert_eq!(u16_at(b, at + 2), IFLA_IFNAME);
        assert_eq!(&b[at + 4..at + 12], b"vsk0123\0");
        // Walking the top-level attributes lands exactly on the end.
        let mut p = at;
        let mut kinds = Vec::new();
        while p < b.len() {
            let len = usize::from(u16_at(b, p));
            kinds.push(u16_at(b, p + 2));
            p += len.div_ceil(4) * 4;
        }
        assert_eq!(p, b.len());
        assert_eq!(kinds, [IFLA_IFNAME, IFLA_MASTER, IFLA_LINKINFO]);
        let m = at + 12;
        assert_eq!(u16_at(b, m + 2), IFLA_MASTER);
        assert_eq!(
            u32::from_ne_bytes([b[m + 4], b[m + 5], b[m + 6], b[m + 7]]),
            7
        );
    }

    #[test]
    fn address_and_up_requests_take_their_index() {
        let mut a = new_addr(Ipv4Addr::new(10, 90, 1, 2), 24);
        a.set_index(5);
        let b = &a.buf;
        assert_eq!(
            u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize,
            b.len()
        );
        assert_eq!((b[16], b[17]), (libc::AF_INET as u8, 24));
        assert_eq!(u32::from_ne_bytes([b[20], b[21], b[22], b[23]]), 5);
        assert_eq!(&b[28..32], &[10, 90, 1, 2]);
        let mut u = link_up();
        u.set_index(9);
        assert_eq!(
            i32::from_ne_bytes([u.buf[20], u.buf[21], u.buf[22], u.buf[23]]),
            9
        );
    }

    #[test]
    fn a_bad_mac_is_refused() {
        assert!(new_veth("v", "eth0", "02:42:zz:00:00:01", Netns::Pid(1)).is_err());
        assert!(new_veth("v", "eth0", "02:42:00:00:01", Netns::Fd(3)).is_err());
        assert_eq!(
            mac_bytes("02:42:0a:5a:00:02"),
            Some([2, 0x42, 10, 0x5a, 0, 2])
        );
    }

    #[test]
    fn an_acknowledgement_carries_the_errno() {
        let mut ack = vec![0u8; 36];
        ack[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        ack[16..20].copy_from_slice(&(-libc::EEXIST).to_ne_bytes());
        assert_eq!(ack_code(&ack), libc::EEXIST);
        ack[16..20].copy_from_slice(&0i32.to_ne_bytes());
        assert_eq!(ack_code(&ack), 0);
        assert_eq!(ack_code(&ack[..10]), libc::EPROTO);
    }
}
