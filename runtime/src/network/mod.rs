//! A container's network: the mode it asked for (`NetworkMode`, parsed once from `--network`),
//! the ports it publishes (`ports`), and one file per backend (`slirp4netns`).

pub mod ports;
pub mod slirp4netns;

use serde::{Deserialize, Serialize};

/// `--network`, as recorded in the container's config (the same words on disk).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// The host's network namespace (today's default without `-p`).
    #[default]
    Host,
    /// A network namespace of its own with only loopback.
    None,
    /// A namespace of its own connected to the host's network through slirp4netns.
    Slirp4netns,
}

/// A `--network` that cannot be used.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not a mode skiff knows.
    #[error(
        "unknown --network {0:?}: use slirp4netns (a private network, also rootless), host or none"
    )]
    Unknown(String),
    /// `-p` with a mode that has no private network to publish from.
    #[error("-p publishes ports of a private network, and --network {0} has none: drop --network {0} (or use --network slirp4netns)")]
    NoPortsIn(&'static str),
}

/// The address slirp4netns gives a container, and its gateway.
const SLIRP_ADDRESS: (&str, &str) = ("10.0.2.100", "10.0.2.2");

impl NetworkMode {
    /// Parses `--network`; without one, `-p` picks a private network and otherwise the host's.
    pub fn choose(flag: Option<&str>, publishes: bool) -> Result<NetworkMode, Error> {
        let mode = match flag {
            None if publishes => NetworkMode::Slirp4netns,
            None => NetworkMode::Host,
            Some("host") => NetworkMode::Host,
            Some("none") => NetworkMode::None,
            Some("slirp4netns") => NetworkMode::Slirp4netns,
            Some(other) => return Err(Error::Unknown(other.to_string())),
        };
        if publishes && mode != NetworkMode::Slirp4netns {
            return Err(Error::NoPortsIn(mode.as_str()));
        }
        Ok(mode)
    }

    /// The word Docker and the records use.
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkMode::Host => "host",
            NetworkMode::None => "none",
            NetworkMode::Slirp4netns => "slirp4netns",
        }
    }

    /// Whether the container gets a network namespace of its own.
    pub fn private(self) -> bool {
        self != NetworkMode::Host
    }

    /// The container's address and gateway on its network, where it has one.
    pub fn address(self) -> Option<(&'static str, &'static str)> {
        match self {
            NetworkMode::Slirp4netns => Some(SLIRP_ADDRESS),
            NetworkMode::Host | NetworkMode::None => None,
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
        assert_eq!(NetworkMode::choose(None, false), Ok(NetworkMode::Host));
        assert_eq!(
            NetworkMode::choose(None, true),
            Ok(NetworkMode::Slirp4netns)
        );
        assert_eq!(
            NetworkMode::choose(Some("none"), false),
            Ok(NetworkMode::None)
        );
        assert_eq!(
            NetworkMode::choose(Some("host"), true),
            Err(Error::NoPortsIn("host"))
        );
        assert!(matches!(
            NetworkMode::choose(Some("bridge"), false),
            Err(Error::Unknown(_))
        ));
        // The records keep Docker's words.
        assert_eq!(
            serde_json::to_string(&NetworkMode::Slirp4netns).unwrap(),
            "\"slirp4netns\""
        );
    }
}
