//! IPv4 subnets as `network create --subnet` takes them (`10.90.1.0/24`): parsed once, checked
//! for overlap with other networks, and walked for free addresses.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A subnet: its network address (host bits zero) and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Subnet {
    addr: Ipv4Addr,
    prefix: u8,
}

/// A `--subnet`, `--gateway` or `--ip` that cannot be used.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubnetError {
    /// Not `A.B.C.D/N`.
    #[error("invalid subnet {0:?}: write it as A.B.C.D/N (for example 10.90.5.0/24)")]
    Malformed(String),
    /// A prefix with no room for a gateway and a container, or IPv6.
    #[error(
        "invalid subnet {0:?}: the prefix must be between /8 and /30 (skiff networks are IPv4)"
    )]
    Prefix(String),
    /// Host bits set.
    #[error("invalid subnet {given:?}: host bits are set; did you mean {fixed}?")]
    HostBits { given: String, fixed: String },
}

impl Subnet {
    /// A subnet from its parts; the host bits must be zero.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Subnet, SubnetError> {
        let text = format!("{addr}/{prefix}");
        if !(8..=30).contains(&prefix) {
            return Err(SubnetError::Prefix(text));
        }
        let s = Subnet {
            addr: Ipv4Addr::from(u32::from(addr) & mask(prefix)),
            prefix,
        };
        if s.addr != addr {
            return Err(SubnetError::HostBits {
                given: text,
                fixed: s.to_string(),
            });
        }
        Ok(s)
    }

    /// The network address.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` lies inside.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == u32::from(self.addr)
    }

    /// Whether the two share any address (one contains the other).
    pub fn overlaps(&self, other: &Subnet) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }

    /// The broadcast address (never handed out).
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !mask(self.prefix))
    }

    /// The first usable address, the default gateway.
    pub fn first_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) + 1)
    }

    /// The usable addresses in order (neither the network nor the broadcast address).
    pub fn hosts(&self) -> impl Iterator<Item = Ipv4Addr> {
        (u32::from(self.addr) + 1..u32::from(self.broadcast())).map(Ipv4Addr::from)
    }
}

fn mask(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

impl FromStr for Subnet {
    type Err = SubnetError;
    fn from_str(s: &str) -> Result<Subnet, SubnetError> {
        let malformed = || SubnetError::Malformed(s.to_string());
        let (a, p) = s.split_once('/').ok_or_else(malformed)?;
        let addr: Ipv4Addr = a.parse().map_err(|_| malformed())?;
        let prefix: u8 = p.parse().map_err(|_| malformed())?;
        Subnet::new(addr, prefix)
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for Subnet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Subnet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Subnet, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_parse_and_answer_what_allocation_needs() {
        let s: Subnet = "10.90.1.0/24".parse().unwrap();
        assert_eq!(s.first_host(), Ipv4Addr::new(10, 90, 1, 1));
        assert_eq!(s.broadcast(), Ipv4Addr::new(10, 90, 1, 255));
        assert_eq!(s.hosts().count(), 254);
        assert!(s.contains(Ipv4Addr::new(10, 90, 1, 77)));
        assert!(!s.contains(Ipv4Addr::new(10, 90, 2, 1)));
        let wide: Subnet = "10.90.0.0/16".parse().unwrap();
        assert!(wide.overlaps(&s) && s.overlaps(&wide));
        assert!(!s.overlaps(&"10.90.2.0/24".parse().unwrap()));
        assert_eq!(
            "10.90.1.5/24".parse::<Subnet>(),
            Err(SubnetError::HostBits {
                given: "10.90.1.5/24".into(),
                fixed: "10.90.1.0/24".into()
            })
        );
        assert!(matches!(
            "10.90.1.0/31".parse::<Subnet>(),
            Err(SubnetError::Prefix(_))
        ));
        for bad in ["10.90.1.0", "10.90.1/24", "fd00::/64", "10.90.1.0/x"] {
            assert!(bad.parse::<Subnet>().is_err(), "{bad}");
        }
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"10.90.1.0/24\"");
    }
}
