//! Configures the container's ends of its veths (`eth0`, and `eth1`… for the networks it was
//! connected to later) from inside its network namespace with the classic interface ioctls: the
//! address and netmask, up, and (for its first network) a default route through the gateway. The container's init does this itself (it holds CAP_NET_ADMIN over its own
//! namespace), so no `ip` process runs per container for it.

use std::net::Ipv4Addr;

/// The interface name of a container's first network.
pub const CONTAINER_IFACE: &str = "eth0";

/// What an interface gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Address {
    /// The container's address.
    pub ip: Ipv4Addr,
    /// Its subnet's prefix length.
    pub prefix: u8,
    /// The default route, unless the network is internal.
    pub gateway: Option<Ipv4Addr>,
}

fn sockaddr(ip: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr have the same size; the bytes are plain data.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (i, b) in name.bytes().take(libc::IFNAMSIZ - 1).enumerate() {
        req.ifr_name[i] = b as libc::c_char;
    }
    req
}

/// Sets `iface`'s address and netmask, brings it up and adds the default route (if any).
pub fn configure(iface: &str, a: &Address) -> Result<(), String> {
    // SAFETY: a plain socket for the ioctls, closed by OwnedFd.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(format!("socket: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: raw is a new descriptor this function owns.
    let sock = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
    let fd = std::os::fd::AsRawFd::as_raw_fd(&sock);
    let fail = |what: &str| format!("{what} on {iface}: {}", std::io::Error::last_os_error());
    let mask = Ipv4Addr::from(u32::MAX.checked_shl(32 - u32::from(a.prefix)).unwrap_or(0));
    for (req_no, ip, what) in [
        (libc::SIOCSIFADDR, a.ip, "setting the address"),
        (libc::SIOCSIFNETMASK, mask, "setting the netmask"),
    ] {
        let mut req = ifreq(iface);
        req.ifr_ifru.ifru_addr = sockaddr(ip);
        // SAFETY: a valid ifreq for this request.
        if unsafe { libc::ioctl(fd, req_no, &req) } != 0 {
            return Err(fail(what));
        }
    }
    let mut req = ifreq(iface);
    // SAFETY: a valid ifreq; the flags are read, then written back with IFF_UP.
    let up = unsafe {
        libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) == 0 && {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) == 0
        }
    };
    if !up {
        return Err(fail("bringing up"));
    }
    if let Some(gw) = a.gateway {
        // SAFETY: rtentry is plain data; all zeroes is a valid value.
        let mut rt: libc::rtentry = unsafe { std::mem::zeroed() };
        rt.rt_dst = sockaddr(Ipv4Addr::UNSPECIFIED);
        rt.rt_genmask = sockaddr(Ipv4Addr::UNSPECIFIED);
        rt.rt_gateway = sockaddr(gw);
        rt.rt_flags = libc::RTF_UP | libc::RTF_GATEWAY;
        // SAFETY: a valid rtentry for SIOCADDRT.
        if unsafe { libc::ioctl(fd, libc::SIOCADDRT, &rt) } != 0 {
            return Err(fail("adding the default route"));
        }
    }
    Ok(())
}
