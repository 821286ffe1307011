//! Published ports (`-p [IP:]HOST:CONTAINER[/PROTO]`), the same for every network backend.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::spec::error::SpecError;

/// One published port (`-p [IP:]HOST:CONTAINER[/PROTO]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSpec {
    /// Host address to listen on; empty for every address.
    #[serde(default)]
    pub host_ip: String,
    /// Host port.
    pub host_port: u16,
    /// Port inside the container.
    pub container_port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
}

impl PortSpec {
    /// Parses Docker's `-p` forms: `8080:80`, `127.0.0.1:8080:80`, each with an optional `/tcp` or
    /// `/udp`. A bare container port (Docker picks a random host port) is refused with the fix.
    pub fn parse(s: &str) -> Result<PortSpec> {
        let bad = |why: &str| -> Error {
            SpecError::Flag {
                flag: "-p",
                value: s.to_string(),
                fix: format!("{why} (use HOST_PORT:CONTAINER_PORT, IP:HOST_PORT:CONTAINER_PORT, optionally /tcp or /udp)"),
            }
            .into()
        };
        let (spec, protocol) = match s.rsplit_once('/') {
            Some((p, proto @ ("tcp" | "udp"))) => (p, proto),
            Some((_, other)) => return Err(bad(&format!("unknown protocol {other:?}"))),
            None => (s, "tcp"),
        };
        let parts: Vec<&str> = spec.rsplitn(3, ':').collect();
        let port = |p: &str| -> Result<u16> {
            match p.parse::<u16>() {
                Ok(n) if n > 0 => Ok(n),
                _ if p.contains('-') => Err(bad("port ranges are not supported yet")),
                _ => Err(bad(&format!("{p:?} is not a port"))),
            }
        };
        let (host_ip, host_port, container_port) = match parts.as_slice() {
            [c] => {
                port(c)?;
                return Err(bad(
                    "give the host port too: skiff does not pick random host ports",
                ));
            }
            [c, h] => (String::new(), port(h)?, port(c)?),
            [c, h, ip] => {
                if ip.parse::<std::net::Ipv4Addr>().is_err() {
                    return Err(bad(&format!("{ip:?} is not an IPv4 address")));
                }
                (ip.to_string(), port(h)?, port(c)?)
            }
            _ => return Err(bad("empty")),
        };
        Ok(PortSpec {
            host_ip,
            host_port,
            container_port,
            protocol: protocol.to_string(),
        })
    }

    /// As `docker ps` shows it: `0.0.0.0:8080->80/tcp`.
    pub fn display(&self) -> String {
        format!(
            "{}:{}->{}/{}",
            self.host_ip_or_any(),
            self.host_port,
            self.container_port,
            self.protocol
        )
    }

    /// The host address, `0.0.0.0` for every address.
    pub fn host_ip_or_any(&self) -> &str {
        if self.host_ip.is_empty() {
            "0.0.0.0"
        } else {
            &self.host_ip
        }
    }
}
