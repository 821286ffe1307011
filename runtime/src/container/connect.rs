//! `network connect` and `network disconnect`: a container joins or leaves another skiff
//! network, created, stopped or running, as Docker allows. Its config lists the networks it was
//! connected to (`ContainerConfig::connected`), each with a fixed interface name; its address on
//! each is its lease in that network's record. A stopped container is plumbed at its next start
//! by its monitor; a running one at once, through the network holder (which, rootless, owns the
//! user namespace above the container's, and so may reach into its network namespace).

use std::net::Ipv4Addr;

use skiff_store::fsutil::write_atomic;

use crate::container::config::{Connected, ContainerConfig};
use crate::container::records::Containers;
use crate::error::{Error, Result};
use crate::network::error::NetworkError;
use crate::network::holder::Session;
use crate::network::records::{LeaseRequest, Network};
use crate::network::NetworkMode;
use crate::userns::identity::Identity;

/// What `network connect` asks for besides the network and the container.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// `--ip`: this address rather than the lowest free one.
    pub ip: Option<Ipv4Addr>,
    /// `--alias`: more names for the container on this network.
    pub aliases: Vec<String>,
}

impl Containers {
    /// Connects container `key` to network `net_key`: a lease, then its config, then (running)
    /// the veth and the address, each undone if a later step fails.
    pub fn connect(&self, key: &str, net_key: &str, o: &ConnectOptions) -> Result<Network> {
        if let Some(bad) = o
            .aliases
            .iter()
            .find(|a| !crate::container::names::valid_hostname(a))
        {
            return Err(crate::network::Error::BadAlias(bad.clone()).into());
        }
        let id = self.resolve(key)?;
        let _lock = self.lock(&id)?;
        let (mut cfg, _) = self.load(&id)?;
        let net = self.networks.find(net_key)?;
        let already = || NetworkError::AlreadyConnected {
            container: cfg.name.clone(),
            network: net.name.clone(),
        };
        match &cfg.network {
            NetworkMode::Bridge(first) if self.networks.find(first)?.name == net.name => {
                return Err(already().into())
            }
            NetworkMode::Bridge(_) => {}
            other => {
                return Err(NetworkError::NotBridged {
                    container: cfg.name.clone(),
                    mode: other.as_str().to_string(),
                }
                .into())
            }
        }
        if cfg.connected.iter().any(|c| c.network == net.name) {
            return Err(already().into());
        }
        let req = LeaseRequest {
            id: id.clone(),
            name: cfg.name.clone(),
            ip: o.ip,
            aliases: o.aliases.clone(),
        };
        let (net, lease) = self.networks.lease(&net.name, &req)?;
        let iface = free_iface(&cfg.connected);
        cfg.connected.push(Connected {
            network: net.name.clone(),
            iface: iface.clone(),
        });
        let undo_lease = |e: Error| {
            let _ = self.networks.release_from(&net.name, &id, &cfg.name);
            e
        };
        self.save_config(&id, &cfg).map_err(undo_lease)?;
        let v = self.view(&id)?;
        let (Some(pid), Some(start)) = (v.state.pid.filter(|_| v.running()), v.state.pid_start)
        else {
            return Ok(net);
        };
        let plumbed = (|| -> Result<()> {
            let mut session = Session::running(self.networks.runtime(), &Identity::current())
                .ok_or_else(|| NetworkError::HolderGone(cfg.name.clone()))?;
            session
                .ensure_bridge(&net)
                .and_then(|()| session.attach_running(&net, &id, &lease, (pid, start), &iface))
                .map_err(|why| {
                    let _ = session.detach(&net, &id);
                    Error::Plumbing(why)
                })
        })();
        if let Err(e) = plumbed {
            cfg.connected.retain(|c| c.network != net.name);
            let _ = self.save_config(&id, &cfg);
            return Err(undo_lease(e));
        }
        Ok(net)
    }

    /// Disconnects container `key` from network `net_key`: its veth goes (running), then its
    /// lease and its config entry. Leaving its first network makes the next connected one its
    /// first (at its next start), or leaves it with loopback only.
    pub fn disconnect(&self, key: &str, net_key: &str) -> Result<Network> {
        let id = self.resolve(key)?;
        let _lock = self.lock(&id)?;
        let (mut cfg, _) = self.load(&id)?;
        let net = self.networks.find(net_key)?;
        let is_first = match &cfg.network {
            NetworkMode::Bridge(first) => self.networks.find(first)?.name == net.name,
            _ => false,
        };
        if !is_first && !cfg.connected.iter().any(|c| c.network == net.name) {
            return Err(NetworkError::NotConnected {
                container: cfg.name.clone(),
                network: net.name.clone(),
            }
            .into());
        }
        let v = self.view(&id)?;
        if v.running() {
            // A holder that is gone took the veth with it.
            if let Some(session) = Session::running(self.networks.runtime(), &Identity::current()) {
                session.detach(&net, &id).map_err(Error::Plumbing)?;
            }
        }
        let (net, _) = self.networks.release_from(&net.name, &id, &cfg.name)?;
        if is_first {
            cfg.network = match cfg.connected.first() {
                Some(c) => NetworkMode::Bridge(c.network.clone()),
                None => NetworkMode::None,
            };
            if !cfg.connected.is_empty() {
                cfg.connected.remove(0);
            }
            // Ports are published to its first network's address: with no network left, none.
            if cfg.network == NetworkMode::None {
                cfg.ports.clear();
                cfg.publish_all = false;
            }
        } else {
            cfg.connected.retain(|c| c.network != net.name);
        }
        self.save_config(&id, &cfg)?;
        Ok(net)
    }

    /// Writes a changed config.json atomically (the caller holds the container's lock).
    pub(crate) fn save_config(&self, id: &str, cfg: &ContainerConfig) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(cfg).map_err(|source| Error::Json {
            context: "encoding config.json".into(),
            source,
        })?;
        Ok(write_atomic(&self.dir(id).join("config.json"), &bytes)?)
    }
}

/// The lowest `ethN` (N ≥ 1) none of the container's connected networks uses.
fn free_iface(connected: &[Connected]) -> String {
    (1..)
        .map(|n| format!("eth{n}"))
        .find(|i| !connected.iter().any(|c| &c.iface == i))
        .unwrap_or_else(|| "eth1".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interfaces_fill_the_lowest_free_number() {
        let mut connected = Vec::new();
        assert_eq!(free_iface(&connected), "eth1");
        for (n, i) in [("a", "eth1"), ("b", "eth3")] {
            connected.push(Connected {
                network: n.into(),
                iface: i.into(),
            });
        }
        assert_eq!(free_iface(&connected), "eth2");
    }
}
