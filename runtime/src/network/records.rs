//! The user's networks: one record per network (`$XDG_DATA_HOME/skiff/networks/NAME.json`)
//! holding its subnet, gateway, bridge and the address leased to each container. Every change
//! happens under `networks/.lock` and is written atomically, so parallel `run`s never get one
//! address twice; a lease is taken when a container is created and given back when it is removed,
//! so a killed monitor or holder loses none.

use std::collections::BTreeMap;
use std::fs;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use skiff_store::fsutil::{write_atomic, LockFile};
use skiff_store::Dirs;

use crate::error::{Ctx, Error, Result};
pub use crate::network::error::NetworkError;
use crate::network::subnet::Subnet;
pub use crate::network::{canonical, DEFAULT_NETWORK};

/// Where the default network's and automatic subnets come from: `10.90.N.0/24`.
const AUTO_BASE: [u8; 2] = [10, 90];

/// Names that mean a network mode, not a network record.
const RESERVED: &[&str] = &[
    "host",
    "none",
    "slirp4netns",
    "bridge",
    "default",
    "container",
];

/// One user-defined (or the default) network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    /// Its name, unique per user.
    pub name: String,
    /// 64 hex digits, as Docker's network ids.
    pub id: String,
    /// The subnet containers get addresses from.
    pub subnet: Subnet,
    /// The bridge's address, the containers' default route.
    pub gateway: Ipv4Addr,
    /// No route out (`--internal`).
    #[serde(default)]
    pub internal: bool,
    /// `-l k=v`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// RFC 3339.
    pub created: String,
    /// The bridge interface (`skiffN`), in the network holder's namespace (root: the host's).
    pub bridge: String,
    /// The address of each container on it, by container id.
    #[serde(default)]
    pub leases: BTreeMap<String, Lease>,
}

/// A container's place on a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The container's name when it joined (for `network inspect` and name lookups).
    pub name: String,
    /// Its address.
    pub ip: Ipv4Addr,
    /// Its interface's MAC address (derived from the address, as Docker does).
    pub mac: String,
    /// `--network-alias`.
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// What `network create` asks for.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// `--subnet`; a free `10.90.N.0/24` without.
    pub subnet: Option<Subnet>,
    /// `--gateway`; the subnet's first address without.
    pub gateway: Option<Ipv4Addr>,
    /// `--internal`.
    pub internal: bool,
    /// `-l`.
    pub labels: BTreeMap<String, String>,
}

/// What a container asks of a network when it is created.
#[derive(Debug, Clone, Default)]
pub struct LeaseRequest {
    /// The container's id.
    pub id: String,
    /// The container's name.
    pub name: String,
    /// `--ip`.
    pub ip: Option<Ipv4Addr>,
    /// `--network-alias`.
    pub aliases: Vec<String>,
}

/// The user's network records.
#[derive(Debug, Clone)]
pub struct Networks {
    dir: PathBuf,
    runtime: PathBuf,
}

impl Networks {
    /// The records under the user's data directory (made on first write).
    pub fn open(dirs: &Dirs) -> Networks {
        Networks {
            dir: dirs.data.join("networks"),
            runtime: dirs.runtime.clone(),
        }
    }

    /// The records in `dir` alone (the network holder's name server reads them).
    pub fn in_dir(dir: PathBuf) -> Networks {
        Networks {
            dir,
            runtime: PathBuf::new(),
        }
    }

    /// Where the records are.
    pub fn records_dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// The user's runtime directory, where the network holder keeps its record.
    pub fn runtime(&self) -> &std::path::Path {
        &self.runtime
    }

    /// Every network, the default one first (it exists before its first use).
    pub fn list(&self) -> Result<Vec<Network>> {
        let mut nets = self.read_all()?;
        if !nets.iter().any(|n| n.name == DEFAULT_NETWORK) {
            nets.push(default_network(&nets)?);
        }
        nets.sort_by(|a, b| {
            (a.name != DEFAULT_NETWORK, &a.name).cmp(&(b.name != DEFAULT_NETWORK, &b.name))
        });
        Ok(nets)
    }

    /// A network by name, full id or unique id prefix (`bridge` is the default network).
    pub fn find(&self, key: &str) -> Result<Network> {
        let key = canonical(key);
        let nets = self.list()?;
        if let Some(n) = nets.iter().find(|n| n.name == key) {
            return Ok(n.clone());
        }
        let by_id: Vec<&Network> = nets.iter().filter(|n| n.id.starts_with(key)).collect();
        match by_id.as_slice() {
            [one] if key.len() >= 3 => Ok((*one).clone()),
            _ => Err(NetworkError::NoSuch(key.to_string()).into()),
        }
    }

    /// `network create`: a new network with a subnet no other network of this user overlaps.
    pub fn create(&self, name: &str, o: &CreateOptions) -> Result<Network> {
        check_name(name)?;
        let _lock = self.lock()?;
        let nets = self.list()?;
        if nets.iter().any(|n| n.name == name) {
            return Err(NetworkError::NameInUse(name.to_string()).into());
        }
        let subnet = match o.subnet {
            Some(s) => {
                if let Some(n) = nets.iter().find(|n| n.subnet.overlaps(&s)) {
                    return Err(NetworkError::Overlap {
                        subnet: s,
                        other: n.name.clone(),
                        other_subnet: n.subnet,
                    }
                    .into());
                }
                s
            }
            None => free_subnet(&nets)?,
        };
        let gateway = match o.gateway {
            Some(g) if subnet.hosts().any(|h| h == g) => g,
            Some(g) => {
                return Err(NetworkError::GatewayOutside { gateway: g, subnet }.into());
            }
            None => subnet.first_host(),
        };
        let net = Network {
            name: name.to_string(),
            id: crate::sys::random::id().ctx(|| "reading /dev/urandom".to_string())?,
            subnet,
            gateway,
            internal: o.internal,
            labels: o.labels.clone(),
            created: now(),
            bridge: free_bridge(&nets),
            leases: BTreeMap::new(),
        };
        self.write(&net)?;
        Ok(net)
    }

    /// `network rm`: refused while a container has a lease on it.
    pub fn remove(&self, key: &str) -> Result<Network> {
        let _lock = self.lock()?;
        let net = self.find(key)?;
        if net.name == DEFAULT_NETWORK {
            return Err(NetworkError::Default(net.name).into());
        }
        if !net.leases.is_empty() {
            let names: Vec<&str> = net.leases.values().map(|l| l.name.as_str()).collect();
            return Err(NetworkError::InUse {
                network: net.name,
                containers: names.join(" "),
            }
            .into());
        }
        let path = self.path(&net.name);
        fs::remove_file(&path).ctx(|| format!("removing {}", path.display()))?;
        Ok(net)
    }

    /// Gives container `r.id` an address on network `key`: `--ip` if free, else the lowest free
    /// one. Taking a lease it already holds returns that lease.
    pub fn lease(&self, key: &str, r: &LeaseRequest) -> Result<(Network, Lease)> {
        let _lock = self.lock()?;
        let mut net = self.find(key)?;
        if let Some(l) = net.leases.get(&r.id) {
            let l = l.clone();
            return Ok((net, l));
        }
        let taken = |ip: Ipv4Addr, net: &Network| -> Option<String> {
            if ip == net.gateway {
                return Some("the network's gateway".into());
            }
            net.leases
                .values()
                .find(|l| l.ip == ip)
                .map(|l| l.name.clone())
        };
        let ip = match r.ip {
            Some(ip) if !net.subnet.hosts().any(|h| h == ip) => {
                return Err(NetworkError::IpOutside {
                    ip,
                    network: net.name.clone(),
                    subnet: net.subnet,
                }
                .into())
            }
            Some(ip) => {
                if let Some(by) = taken(ip, &net) {
                    return Err(NetworkError::IpTaken {
                        ip,
                        network: net.name.clone(),
                        by,
                    }
                    .into());
                }
                ip
            }
            None => net
                .subnet
                .hosts()
                .find(|ip| taken(*ip, &net).is_none())
                .ok_or_else(|| NetworkError::Full(net.name.clone()))?,
        };
        let o = ip.octets();
        let lease = Lease {
            name: r.name.clone(),
            ip,
            mac: format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3]),
            aliases: r.aliases.clone(),
        };
        net.leases.insert(r.id.clone(), lease.clone());
        self.write(&net)?;
        Ok((net, lease))
    }

    /// Gives back container `id`'s address on network `key` (`network disconnect`), with the
    /// network and the lease it had.
    pub fn release_from(&self, key: &str, id: &str, container: &str) -> Result<(Network, Lease)> {
        let _lock = self.lock()?;
        let mut net = self.find(key)?;
        let lease = net
            .leases
            .remove(id)
            .ok_or_else(|| NetworkError::NotConnected {
                container: container.to_string(),
                network: net.name.clone(),
            })?;
        self.write(&net)?;
        Ok((net, lease))
    }

    /// Gives back every address container `id` holds (it is being removed). Nothing to do for a
    /// container that holds none.
    pub fn release(&self, id: &str) -> Result<()> {
        self.edit_leases_of(id, |leases| {
            leases.remove(id);
        })
    }

    /// Renames container `id` in its leases (`skiff rename`), so lookups by name follow.
    pub fn rename_container(&self, id: &str, new: &str) -> Result<()> {
        self.edit_leases_of(id, |leases| {
            if let Some(l) = leases.get_mut(id) {
                l.name = new.to_string();
            }
        })
    }

    /// Applies `f` under the lock to the leases of every network where container `id` has one,
    /// and writes those networks back.
    fn edit_leases_of(
        &self,
        id: &str,
        mut f: impl FnMut(&mut BTreeMap<String, Lease>),
    ) -> Result<()> {
        if !self.dir.is_dir() {
            return Ok(());
        }
        let _lock = self.lock()?;
        for mut net in self.read_all()? {
            if net.leases.contains_key(id) {
                f(&mut net.leases);
                self.write(&net)?;
            }
        }
        Ok(())
    }

    /// The lock every change is made under (also taken by the network holder's plumbing).
    pub fn lock(&self) -> Result<LockFile> {
        Ok(LockFile::acquire(&self.dir.join(".lock"))?)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    fn write(&self, net: &Network) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(net).map_err(|source| Error::Json {
            context: format!("encoding network {}", net.name),
            source,
        })?;
        Ok(write_atomic(&self.path(&net.name), &bytes)?)
    }

    fn read_all(&self) -> Result<Vec<Network>> {
        let mut out = Vec::new();
        let entries = match fs::read_dir(&self.dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            other => other.ctx(|| format!("reading {}", self.dir.display()))?,
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !name.ends_with(".json") {
                continue;
            }
            let text =
                fs::read_to_string(e.path()).ctx(|| format!("reading {}", e.path().display()))?;
            let net = serde_json::from_str(&text).map_err(|source| Error::Json {
                context: format!(
                    "network record {} is damaged (remove it to start the network afresh)",
                    e.path().display()
                ),
                source,
            })?;
            out.push(net);
        }
        Ok(out)
    }
}

/// A name `create` may give (the default network's is refused there as in use).
fn check_name(name: &str) -> Result<()> {
    if RESERVED.contains(&name) {
        return Err(NetworkError::Reserved(name.to_string()).into());
    }
    if !crate::container::names::valid(name) || name.len() > 64 {
        return Err(NetworkError::BadName(name.to_string()).into());
    }
    Ok(())
}

/// The default network as it is before its first use: `10.90.0.0/24`, bridge `skiff0`.
fn default_network(others: &[Network]) -> Result<Network> {
    let subnet = Subnet::new(Ipv4Addr::new(AUTO_BASE[0], AUTO_BASE[1], 0, 0), 24).map_err(|e| {
        Error::Io {
            context: "the default subnet".into(),
            source: std::io::Error::other(e),
        }
    })?;
    let subnet = if others.iter().any(|n| n.subnet.overlaps(&subnet)) {
        free_subnet(others)?
    } else {
        subnet
    };
    Ok(Network {
        name: DEFAULT_NETWORK.to_string(),
        // A fixed id: the default network is the same before and after its record is written.
        id: format!("{:0<64}", "5c1ff"),
        subnet,
        gateway: subnet.first_host(),
        internal: false,
        labels: BTreeMap::new(),
        created: now(),
        bridge: "skiff0".to_string(),
        leases: BTreeMap::new(),
    })
}

fn free_subnet(nets: &[Network]) -> Result<Subnet> {
    (1..=255u8)
        .filter_map(|n| Subnet::new(Ipv4Addr::new(AUTO_BASE[0], AUTO_BASE[1], n, 0), 24).ok())
        .find(|s| !nets.iter().any(|n| n.subnet.overlaps(s)))
        .ok_or_else(|| NetworkError::NoSubnetLeft.into())
}

fn free_bridge(nets: &[Network]) -> String {
    (1..)
        .map(|i| format!("skiff{i}"))
        .find(|b| !nets.iter().any(|n| &n.bridge == b))
        .unwrap_or_else(|| "skiff-x".into())
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs(t: &std::path::Path) -> Dirs {
        Dirs {
            data: t.join("d"),
            config: t.join("c"),
            cache: t.join("k"),
            runtime: t.join("r"),
        }
    }

    fn req(id: &str) -> LeaseRequest {
        LeaseRequest {
            id: id.into(),
            name: format!("c-{id}"),
            ..Default::default()
        }
    }

    #[test]
    fn networks_are_created_checked_and_removed() {
        let t = tempfile::tempdir().unwrap();
        let n = Networks::open(&dirs(t.path()));
        let names: Vec<String> = n.list().unwrap().into_iter().map(|n| n.name).collect();
        assert_eq!(
            names,
            ["skiff"],
            "the default network is there before its first use"
        );
        let a = n.create("front", &CreateOptions::default()).unwrap();
        assert_eq!(a.subnet.to_string(), "10.90.1.0/24");
        assert_eq!(a.gateway, Ipv4Addr::new(10, 90, 1, 1));
        assert_eq!(a.bridge, "skiff1");
        let err = n.create("front", &CreateOptions::default()).unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        let clash = CreateOptions {
            subnet: Some("10.90.1.128/25".parse().unwrap()),
            ..Default::default()
        };
        let err = n.create("back", &clash).unwrap_err().to_string();
        assert!(err.contains("overlaps network front"), "{err}");
        let outside = CreateOptions {
            subnet: Some("192.168.7.0/24".parse().unwrap()),
            gateway: Some(Ipv4Addr::new(192, 168, 8, 1)),
            ..Default::default()
        };
        let err = n.create("back", &outside).unwrap_err().to_string();
        assert!(err.contains("--gateway 192.168.8.1"), "{err}");
        for bad in ["host", "none", "bridge", "-x", "skiff"] {
            assert!(n.create(bad, &CreateOptions::default()).is_err(), "{bad}");
        }
        assert_eq!(n.find("bridge").unwrap().name, "skiff");
        assert_eq!(n.find(&a.id[..12]).unwrap().name, "front");
        n.lease("front", &req("c1")).unwrap();
        let err = n.remove("front").unwrap_err().to_string();
        assert!(err.contains("in use by container(s) c-c1"), "{err}");
        n.release("c1").unwrap();
        n.remove("front").unwrap();
        assert!(n.find("front").is_err());
        assert!(n
            .remove("skiff")
            .unwrap_err()
            .to_string()
            .contains("default"));
    }

    #[test]
    fn leases_are_distinct_checked_and_given_back() {
        let t = tempfile::tempdir().unwrap();
        let n = Networks::open(&dirs(t.path()));
        let (_, l1) = n.lease("skiff", &req("a")).unwrap();
        assert_eq!(l1.ip, Ipv4Addr::new(10, 90, 0, 2), "the gateway is .1");
        assert_eq!(l1.mac, "02:42:0a:5a:00:02");
        assert_eq!(n.lease("skiff", &req("a")).unwrap().1, l1, "idempotent");
        let mut want = req("b");
        want.ip = Some(Ipv4Addr::new(10, 90, 0, 2));
        let err = n.lease("skiff", &want).unwrap_err().to_string();
        assert!(
            err.contains("already in use on network skiff (by c-a)"),
            "{err}"
        );
        want.ip = Some(Ipv4Addr::new(10, 91, 0, 2));
        assert!(n
            .lease("skiff", &want)
            .unwrap_err()
            .to_string()
            .contains("not a usable address"));
        want.ip = Some(Ipv4Addr::new(10, 90, 0, 1));
        assert!(n
            .lease("skiff", &want)
            .unwrap_err()
            .to_string()
            .contains("gateway"));
        n.release("a").unwrap();
        assert_eq!(
            n.lease("skiff", &req("c")).unwrap().1.ip,
            l1.ip,
            "taken back"
        );
        let tiny = CreateOptions {
            subnet: Some("172.30.0.0/30".parse().unwrap()),
            ..Default::default()
        };
        n.create("tiny", &tiny).unwrap();
        n.lease("tiny", &req("t1")).unwrap();
        let err = n.lease("tiny", &req("t2")).unwrap_err().to_string();
        assert!(err.contains("no free address"), "{err}");
    }

    #[test]
    fn parallel_leases_never_share_an_address() {
        let t = tempfile::tempdir().unwrap();
        let n = Networks::open(&dirs(t.path()));
        let handles: Vec<_> = (0..50)
            .map(|i| {
                let n = n.clone();
                std::thread::spawn(move || n.lease("skiff", &req(&format!("p{i}"))).unwrap().1.ip)
            })
            .collect();
        let mut ips: Vec<Ipv4Addr> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        ips.sort();
        ips.dedup();
        assert_eq!(ips.len(), 50);
        for i in 0..50 {
            n.release(&format!("p{i}")).unwrap();
        }
        assert!(n.find("skiff").unwrap().leases.is_empty());
    }
}
