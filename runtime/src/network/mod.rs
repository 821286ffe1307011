//! A container's network: the mode it asked for (`NetworkMode`, parsed once from `--network`),
//! the ports it publishes (`ports`), the user's networks (`records`, `subnet`), the process holding
//! their bridges (`holder`) and its name server (`dns`), a container's interface (`iface`), and one file per backend
//! (`slirp4netns`).

pub mod dns;
pub mod error;
pub mod forward;
pub mod holder;
pub mod iface;
pub mod netlink;
pub mod ports;
pub mod records;
pub mod slirp4netns;
pub mod subnet;
pub mod udprelay;

use serde::{Deserialize, Serialize};

/// `--network`, as recorded in the container's config (the same words on disk).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// The host's network namespace (`--network host`; records of older builds without a
    /// network read as this, their default).
    #[default]
    Host,
    /// A network namespace of its own with only loopback.
    None,
    /// A namespace of its own connected to the host's network through slirp4netns.
    Slirp4netns,
    /// A namespace of its own on one of the user's networks (`records`), by name: an address
    /// on its bridge, reachable from the containers on the same network.
    Bridge(String),
}

/// A `--network` that cannot be used.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not a mode or a network name skiff can use.
    #[error(
        "unknown --network {0:?}: use a network's name (skiff network ls), slirp4netns, host or none"
    )]
    Unknown(String),
    /// `-p` or `-P` with a mode that has no private network to publish from.
    #[error("-p and -P publish ports of a private network, and --network {0} has none: drop --network {0} (or use --network slirp4netns)")]
    NoPortsIn(String),
    /// `--ip` that is not an IPv4 address.
    #[error("invalid --ip {0:?}: give an IPv4 address such as 10.90.1.20")]
    BadIp(String),
    /// `--network-alias` that is not a host name.
    #[error("invalid --network-alias {0:?}: use letters, digits, '-' and '.'")]
    BadAlias(String),
    /// `--ip` or `--network-alias` without a network that has addresses to give.
    #[error("{0} needs a skiff network (--network NAME), not --network {1}")]
    NeedsBridge(&'static str, String),
}

/// The network containers join when no `--network` names another (podman's `podman`, Docker's
/// `bridge`; `bridge` is accepted as its other name).
pub const DEFAULT_NETWORK: &str = "skiff";

/// `bridge` and `default` name the default network, as in podman.
pub fn canonical(key: &str) -> &str {
    match key {
        "bridge" | "default" => DEFAULT_NETWORK,
        k => k,
    }
}

/// Ends a helper that exits once its exit pipe closes (slirp4netns, the port forwarder): closes
/// our end, reaps it (our child, so no zombie stays), and kills it if it has not gone in a second.
pub(crate) fn end_helper(pid: nix::unistd::Pid, exit_w: Option<std::os::fd::OwnedFd>) {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    drop(exit_w);
    for _ in 0..1000 {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => std::thread::sleep(std::time::Duration::from_millis(1)),
            _ => return,
        }
    }
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    let _ = waitpid(pid, None);
}

/// The address slirp4netns gives a container, and its gateway.
const SLIRP_ADDRESS: (&str, &str) = ("10.0.2.100", "10.0.2.2");

impl NetworkMode {
    /// Parses `--network`; without one, the default network (`skiff`), as Docker's `bridge`.
    /// Any other word names one of the user's networks (`bridge` is the default one); whether
    /// it exists is checked when the container takes its address.
    pub fn choose(flag: Option<&str>, publishes: bool) -> Result<NetworkMode, Error> {
        let mode = match flag {
            None => NetworkMode::Bridge(DEFAULT_NETWORK.to_string()),
            Some("host") => NetworkMode::Host,
            Some("none") => NetworkMode::None,
            Some("slirp4netns") => NetworkMode::Slirp4netns,
            Some(other) if crate::container::names::valid(other) => {
                NetworkMode::Bridge(canonical(other).to_string())
            }
            Some(other) => return Err(Error::Unknown(other.to_string())),
        };
        if publishes {
            match &mode {
                NetworkMode::Slirp4netns | NetworkMode::Bridge(_) => {}
                m => return Err(Error::NoPortsIn(m.as_str().to_string())),
            }
        }
        Ok(mode)
    }

    /// The word Docker and the records use (a network's name for [`NetworkMode::Bridge`]).
    pub fn as_str(&self) -> &str {
        match self {
            NetworkMode::Host => "host",
            NetworkMode::None => "none",
            NetworkMode::Slirp4netns => "slirp4netns",
            NetworkMode::Bridge(n) => n,
        }
    }

    /// Whether the container gets a network namespace of its own.
    pub fn private(&self) -> bool {
        *self != NetworkMode::Host
    }

    /// The network whose address the container holds, for [`NetworkMode::Bridge`].
    pub fn network(&self) -> Option<&str> {
        match self {
            NetworkMode::Bridge(n) => Some(n),
            _ => None,
        }
    }

    /// The container's address and gateway on slirp4netns's network (a bridge network's are in
    /// its record).
    pub fn address(&self) -> Option<(&'static str, &'static str)> {
        match self {
            NetworkMode::Slirp4netns => Some(SLIRP_ADDRESS),
            _ => None,
        }
    }
}

impl std::fmt::Display for NetworkMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_chosen_as_docker_and_skiff_do() {
        let default = NetworkMode::Bridge("skiff".into());
        assert_eq!(NetworkMode::choose(None, false), Ok(default.clone()));
        assert_eq!(NetworkMode::choose(None, true), Ok(default));
        assert_eq!(
            NetworkMode::choose(Some("none"), false),
            Ok(NetworkMode::None)
        );
        assert_eq!(
            NetworkMode::choose(Some("host"), true),
            Err(Error::NoPortsIn("host".into()))
        );
        assert_eq!(
            NetworkMode::choose(Some("bridge"), false),
            Ok(NetworkMode::Bridge("skiff".into()))
        );
        assert_eq!(
            NetworkMode::choose(Some("front"), false),
            Ok(NetworkMode::Bridge("front".into()))
        );
        assert!(matches!(
            NetworkMode::choose(Some("a b"), false),
            Err(Error::Unknown(_))
        ));
        // The records keep Docker's words.
        assert_eq!(
            serde_json::to_string(&NetworkMode::Slirp4netns).unwrap(),
            "\"slirp4netns\""
        );
    }
}
