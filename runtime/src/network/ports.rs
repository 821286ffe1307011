//! Published ports, the same for every network backend: what `-p` asked for (`PortSpec`, kept in
//! the record; host port 0 means a free one, picked at each start), the ports an image or
//! `--expose` declares (`-P` publishes those on free host ports), and how `ps` shows the ports
//! a running container holds.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::spec::error::SpecError;

/// One published port: `-p [IP:][HOST:]CONTAINER[/PROTO]` (a range is several of these).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSpec {
    /// Host address to listen on; empty for every address.
    #[serde(default)]
    pub host_ip: String,
    /// Host port; 0 for a free one, picked when the container starts (`-p 80`, `-P`).
    pub host_port: u16,
    /// Port inside the container.
    pub container_port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
}

/// `a` or `a-b` (both ends included), refusing 0, reversed ends and what is not a number.
fn port_range(p: &str, bad: &dyn Fn(&str) -> Error) -> Result<(u16, u16)> {
    let one = |n: &str| -> Result<u16> {
        match n.parse::<u16>() {
            Ok(0) => Err(bad(
                "0 is not a port (leave the host port out to get a free one)",
            )),
            Ok(n) => Ok(n),
            Err(_) if n.is_empty() => Err(bad("a port is missing")),
            Err(_) => Err(bad(&format!("{n:?} is not a port (1-65535)"))),
        }
    };
    match p.split_once('-') {
        None => one(p).map(|n| (n, n)),
        Some((a, b)) => {
            let (a, b) = (one(a)?, one(b)?);
            if a > b {
                return Err(bad(&format!("the range {p} runs backwards")));
            }
            Ok((a, b))
        }
    }
}

/// `tcp` or `udp` from a `/PROTO` suffix (tcp without one).
fn protocol<'a>(s: &'a str, bad: &dyn Fn(&str) -> Error) -> Result<(&'a str, &'static str)> {
    match s.rsplit_once('/') {
        Some((p, "tcp")) => Ok((p, "tcp")),
        Some((p, "udp")) => Ok((p, "udp")),
        Some((_, other)) => Err(bad(&format!("unknown protocol {other:?} (use tcp or udp)"))),
        None => Ok((s, "tcp")),
    }
}

impl PortSpec {
    /// Parses Docker's `-p` forms: `80` and `:80` (a free host port), `8080:80`,
    /// `127.0.0.1:8080:80`, `127.0.0.1::80`, and ranges in each place (`8000-8001:80-81`,
    /// `80-81`), each with an optional `/tcp` or `/udp`; a range stands for one spec per port.
    pub fn parse(s: &str) -> Result<Vec<PortSpec>> {
        let bad = |why: &str| -> Error {
            SpecError::Flag {
                flag: "-p",
                value: s.to_string(),
                fix: format!("{why} (use [IP:][HOST_PORT:]CONTAINER_PORT[/tcp|udp], ports or equal ranges such as 8000-8001:80-81)"),
            }
            .into()
        };
        let (spec, proto) = protocol(s, &bad)?;
        let parts: Vec<&str> = spec.rsplitn(3, ':').collect();
        let (host_ip, host, ctr) = match parts.as_slice() {
            [c] => ("", "", *c),
            [c, h] => ("", *h, *c),
            [c, h, ip] => {
                if ip.parse::<std::net::Ipv4Addr>().is_err() {
                    return Err(bad(&format!("{ip:?} is not an IPv4 address")));
                }
                (*ip, *h, *c)
            }
            _ => return Err(bad("empty")),
        };
        let (c0, c1) = port_range(ctr, &bad)?;
        let host = if host.is_empty() {
            None
        } else {
            Some(port_range(host, &bad)?)
        };
        if let Some((h0, h1)) = host {
            if h1 - h0 != c1 - c0 {
                return Err(bad(&format!(
                    "the host range {host} and the container range {ctr} differ in length",
                    host = parts[1]
                )));
            }
        }
        Ok((c0..=c1)
            .map(|c| PortSpec {
                host_ip: host_ip.to_string(),
                host_port: host.map_or(0, |(h0, _)| h0 + (c - c0)),
                container_port: c,
                protocol: proto.to_string(),
            })
            .collect())
    }

    /// `80/tcp`, as Docker keys ports.
    pub fn key(&self) -> String {
        format!("{}/{}", self.container_port, self.protocol)
    }

    /// As `docker ps` shows one bound port: `0.0.0.0:8080->80/tcp`.
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

    /// The same port bound to host port `port` (how a free port is recorded once picked).
    pub fn on_host_port(&self, port: u16) -> PortSpec {
        PortSpec {
            host_port: port,
            ..self.clone()
        }
    }

    /// Whether two specs would need the same host socket (same protocol and port, and one
    /// address covering the other); free ports never clash.
    fn clashes_with(&self, other: &PortSpec) -> bool {
        self.host_port != 0
            && self.host_port == other.host_port
            && self.protocol == other.protocol
            && (self.host_ip == other.host_ip
                || self.host_ip.is_empty()
                || other.host_ip.is_empty())
    }
}

/// Refuses a host port published twice in one container (`-p 8080:80 -p 8080:81`): the second
/// bind could only fail at start.
pub fn check_unique(ports: &[PortSpec]) -> Result<()> {
    for (i, p) in ports.iter().enumerate() {
        if let Some(q) = ports[..i].iter().find(|q| q.clashes_with(p)) {
            return Err(SpecError::Flag {
                flag: "-p",
                value: format!("{}:{}", p.host_port, p.key()),
                fix: format!(
                    "host port {}/{} is already published for {} in this container: give each -p its own host port",
                    p.host_port, p.protocol, q.key()
                ),
            }
            .into());
        }
    }
    Ok(())
}

/// Parses `--expose PORT[-PORT][/PROTO]` into Docker's keys (`80/tcp`).
pub fn parse_expose(s: &str) -> Result<Vec<String>> {
    let bad = |why: &str| -> Error {
        SpecError::Flag {
            flag: "--expose",
            value: s.to_string(),
            fix: format!("{why} (use PORT[/tcp|udp] or a range such as 8000-8001)"),
        }
        .into()
    };
    let (ports, proto) = protocol(s, &bad)?;
    let (a, b) = port_range(ports, &bad)?;
    Ok((a..=b).map(|p| format!("{p}/{proto}")).collect())
}

/// The image config's `ExposedPorts` keys, as `80/tcp` (a key without a protocol is TCP, as in
/// the OCI spec); protocols other than TCP and UDP, which skiff cannot publish, are left out.
pub fn image_exposed(exposed: &serde_json::Value) -> Vec<String> {
    let Some(m) = exposed.as_object() else {
        return Vec::new();
    };
    m.keys()
        .filter_map(|k| {
            let (port, proto) = k.split_once('/').unwrap_or((k, "tcp"));
            let port = port.parse::<u16>().ok().filter(|p| *p > 0)?;
            matches!(proto, "tcp" | "udp").then(|| format!("{port}/{proto}"))
        })
        .collect()
}

/// Splits `80/tcp` into its port and protocol.
fn split_key(k: &str) -> Option<(u16, &str)> {
    let (p, proto) = k.split_once('/')?;
    Some((p.parse().ok()?, proto))
}

/// Sorts keys by port, then protocol, and drops repeats.
pub fn sort_keys(keys: &mut Vec<String>) {
    keys.sort_by_key(|k| split_key(k).map(|(p, proto)| (p, proto.to_string())));
    keys.dedup();
}

/// What a start publishes: the ports asked for, and with `-P` each exposed port none of them
/// covers, on a free host port.
pub fn to_publish(asked: &[PortSpec], exposed: &[String], all: bool) -> Vec<PortSpec> {
    let mut out = asked.to_vec();
    if all {
        for k in exposed {
            let Some((port, proto)) = split_key(k) else {
                continue;
            };
            if !asked.iter().any(|p| p.key() == *k) {
                out.push(PortSpec {
                    host_ip: String::new(),
                    host_port: 0,
                    container_port: port,
                    protocol: proto.to_string(),
                });
            }
        }
    }
    out
}

/// `docker ps`'s PORTS text: each bound port as `0.0.0.0:8080->80/tcp`, runs of consecutive
/// ports collapsed (`0.0.0.0:8000-8001->80-81/tcp`), then the exposed ports nothing publishes
/// (`443/tcp`); sorted as Docker sorts them.
pub fn ps_text(bound: &[PortSpec], exposed: &[String]) -> String {
    // (address or "" for exposed only, protocol, container port, host port)
    let mut all: Vec<(String, String, u16, u16)> = bound
        .iter()
        .map(|p| {
            (
                p.host_ip_or_any().to_string(),
                p.protocol.clone(),
                p.container_port,
                p.host_port,
            )
        })
        .collect();
    for k in exposed {
        if let Some((port, proto)) = split_key(k) {
            if !bound.iter().any(|p| p.key() == *k) {
                all.push((String::new(), proto.to_string(), port, 0));
            }
        }
    }
    let mut left: std::collections::BTreeSet<(String, String, u16, u16)> =
        all.into_iter().collect();
    let span = |a: u16, b: u16| {
        if a == b {
            a.to_string()
        } else {
            format!("{a}-{b}")
        }
    };
    let mut out: Vec<String> = Vec::new();
    while let Some((ip, proto, c0, h0)) = left.pop_first() {
        // Extend the run while the next container port is there, on the next host port.
        let (mut c1, mut h1) = (c0, h0);
        loop {
            let next_host = if ip.is_empty() { 0 } else { h1.wrapping_add(1) };
            let next = (ip.clone(), proto.clone(), c1.wrapping_add(1), next_host);
            if c1 == u16::MAX || !left.remove(&next) {
                break;
            }
            (c1, h1) = (next.2, next.3);
        }
        out.push(if ip.is_empty() {
            format!("{}/{proto}", span(c0, c1))
        } else {
            format!("{ip}:{}->{}/{proto}", span(h0, h1), span(c0, c1))
        });
    }
    out.sort();
    out.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> PortSpec {
        let mut v = PortSpec::parse(s).unwrap();
        assert_eq!(v.len(), 1, "{s}");
        v.remove(0)
    }

    #[test]
    fn docker_publish_forms_parse() {
        let p = one("8080:80");
        assert_eq!(
            (p.host_ip.as_str(), p.host_port, p.container_port),
            ("", 8080, 80)
        );
        assert_eq!(p.display(), "0.0.0.0:8080->80/tcp");
        assert_eq!(
            one("127.0.0.1:5353:53/udp").display(),
            "127.0.0.1:5353->53/udp"
        );
        // A free host port: the container port alone, with an empty host part, or an address.
        for s in ["80", ":80", "80/tcp"] {
            let p = one(s);
            assert_eq!(
                (p.host_ip.as_str(), p.host_port, p.container_port),
                ("", 0, 80),
                "{s}"
            );
        }
        let p = one("127.0.0.1::80/udp");
        assert_eq!(
            (p.host_ip.as_str(), p.host_port, p.protocol.as_str()),
            ("127.0.0.1", 0, "udp")
        );
    }

    #[test]
    fn ranges_are_one_spec_per_port() {
        let v = PortSpec::parse("127.0.0.1:8000-8002:80-82").unwrap();
        let got: Vec<(u16, u16)> = v.iter().map(|p| (p.host_port, p.container_port)).collect();
        assert_eq!(got, [(8000, 80), (8001, 81), (8002, 82)]);
        assert!(v.iter().all(|p| p.host_ip == "127.0.0.1"));
        let v = PortSpec::parse("80-81/udp").unwrap();
        let got: Vec<(u16, u16)> = v.iter().map(|p| (p.host_port, p.container_port)).collect();
        assert_eq!(got, [(0, 80), (0, 81)]);
        assert_eq!(PortSpec::parse("9000-9000:90").unwrap().len(), 1);
    }

    #[test]
    fn bad_publish_forms_say_why() {
        for (bad, why) in [
            ("x:80", "is not a port"),
            ("0:80", "0 is not a port"),
            ("8080:0", "0 is not a port"),
            ("70000:80", "is not a port"),
            ("8080:80/sctp", "unknown protocol"),
            ("8000-8010:80", "differ in length"),
            ("8000-8010:80-85", "differ in length"),
            ("8001-8000:80-81", "runs backwards"),
            ("8000-:80", "a port is missing"),
            ("-8000:80", "a port is missing"),
            ("8000:", "a port is missing"),
            ("nohost:1:2", "not an IPv4 address"),
            ("[::1]:8443:443", "not an IPv4 address"),
            ("", "a port is missing"),
        ] {
            let e = PortSpec::parse(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(e.starts_with("invalid -p"), "{bad}: {e}");
            assert!(!e.contains('\n'), "{bad}: {e}");
        }
    }

    #[test]
    fn a_host_port_published_twice_is_refused() {
        let ps = |v: &[&str]| -> Vec<PortSpec> {
            v.iter().flat_map(|s| PortSpec::parse(s).unwrap()).collect()
        };
        for ok in [
            &["8080:80", "8081:80"][..],
            &["8080:80", "8080:80/udp"],
            &["127.0.0.1:8080:80", "127.0.0.2:8080:81"],
            &["80", "80"],
            &["80", "81"],
        ] {
            assert!(check_unique(&ps(ok)).is_ok(), "{ok:?}");
        }
        for bad in [
            &["8080:80", "8080:81"][..],
            &["8080:80", "127.0.0.1:8080:81"],
            &["8000-8001:80-81", "8001:90"],
        ] {
            let e = check_unique(&ps(bad)).unwrap_err().to_string();
            assert!(e.contains("already published"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn exposed_ports_come_from_the_image_and_expose() {
        let cfg = serde_json::json!({"80/tcp": {}, "53/udp": {}, "8080": {}, "132/sctp": {}, "x/tcp": {}});
        let mut keys = image_exposed(&cfg);
        keys.extend(parse_expose("9000-9001").unwrap());
        keys.extend(parse_expose("80").unwrap());
        sort_keys(&mut keys);
        assert_eq!(
            keys,
            ["53/udp", "80/tcp", "8080/tcp", "9000/tcp", "9001/tcp"]
        );
        assert!(parse_expose("80/sctp").is_err());
        assert!(parse_expose("0").is_err());
        assert_eq!(
            image_exposed(&serde_json::Value::Null),
            Vec::<String>::new()
        );
    }

    #[test]
    fn publish_all_adds_the_exposed_ports_not_published() {
        let asked = PortSpec::parse("8080:80").unwrap();
        let exposed = vec!["80/tcp".to_string(), "53/udp".to_string()];
        assert_eq!(to_publish(&asked, &exposed, false), asked);
        let all = to_publish(&asked, &exposed, true);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0], asked[0]);
        assert_eq!((all[1].host_port, all[1].key().as_str()), (0, "53/udp"));
    }

    #[test]
    fn ps_collapses_runs_as_docker_does() {
        let mut bound = PortSpec::parse("8000-8001:80-81").unwrap();
        bound.extend(PortSpec::parse("127.0.0.1:5353:53/udp").unwrap());
        bound.extend(PortSpec::parse("9000:90").unwrap());
        bound.push(PortSpec::parse("80").unwrap()[0].on_host_port(42553));
        let exposed = vec!["80/tcp".into(), "443/tcp".into(), "444/tcp".into()];
        assert_eq!(
            ps_text(&bound, &exposed),
            "0.0.0.0:42553->80/tcp, 0.0.0.0:8000-8001->80-81/tcp, 0.0.0.0:9000->90/tcp, 127.0.0.1:5353->53/udp, 443-444/tcp"
        );
        assert_eq!(ps_text(&[], &[]), "");
        // Free ports picked apart do not form a run.
        let picked = [
            PortSpec::parse("80").unwrap()[0].on_host_port(40001),
            PortSpec::parse("81").unwrap()[0].on_host_port(40005),
        ];
        assert_eq!(
            ps_text(&picked, &[]),
            "0.0.0.0:40001->80/tcp, 0.0.0.0:40005->81/tcp"
        );
    }
}
