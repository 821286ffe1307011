//! What a network record operation can refuse (`records`): each names the network, address
//! or container involved and the way out. Kept apart so the crate's error type can hold it.

use std::net::Ipv4Addr;

use crate::network::subnet::Subnet;

/// A network operation that cannot be done as asked.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum NetworkError {
    /// No network by that name or id.
    #[error("no such network: {0}: create it with skiff network create {0} (skiff network ls lists them)")]
    NoSuch(String),
    /// `network create` of a name in use.
    #[error("network {0} already exists: choose another name, or remove it first (skiff network rm {0})")]
    NameInUse(String),
    /// Not a name skiff can use.
    #[error("invalid network name {0:?}: use letters, digits, '_', '.' and '-', starting with a letter or digit")]
    BadName(String),
    /// A name that means a mode (`host`, `none`, …).
    #[error("network name {0} is reserved for --network {0}: choose another name")]
    Reserved(String),
    /// Two networks sharing addresses.
    #[error("subnet {subnet} overlaps network {other} ({other_subnet}): choose another --subnet")]
    Overlap {
        subnet: Subnet,
        other: String,
        other_subnet: Subnet,
    },
    /// No automatic subnet left.
    #[error("no free subnet left in 10.90.0.0/16: give one with --subnet, or remove unused networks (skiff network prune)")]
    NoSubnetLeft,
    /// `--gateway` outside `--subnet` (or its network or broadcast address).
    #[error(
        "--gateway {gateway} is not a usable address of subnet {subnet}: choose one inside it"
    )]
    GatewayOutside { gateway: Ipv4Addr, subnet: Subnet },
    /// `--ip` outside the network's subnet.
    #[error(
        "--ip {ip} is not a usable address of network {network} ({subnet}): choose one inside it"
    )]
    IpOutside {
        ip: Ipv4Addr,
        network: String,
        subnet: Subnet,
    },
    /// `--ip` already leased (or the gateway's).
    #[error("--ip {ip} is already in use on network {network} (by {by}): choose another address, or leave --ip out")]
    IpTaken {
        ip: Ipv4Addr,
        network: String,
        by: String,
    },
    /// Every address leased.
    #[error("network {0} has no free address left: remove containers from it, or use a network with a larger --subnet")]
    Full(String),
    /// `network rm` of a network containers use.
    #[error("network {network} is in use by container(s) {containers}: remove them first (skiff rm -f {containers})")]
    InUse { network: String, containers: String },
    /// `network disconnect` of a container that is not on the network.
    #[error("container {container} is not connected to network {network} (skiff inspect {container} shows its networks)")]
    NotConnected { container: String, network: String },
    /// `network connect` of a container already on the network.
    #[error("container {container} is already connected to network {network}")]
    AlreadyConnected { container: String, network: String },
    /// `network connect` of a container whose network is not a skiff network.
    #[error("container {container} uses --network {mode}, which cannot be joined to other networks: create it on a skiff network (--network NAME)")]
    NotBridged { container: String, mode: String },
    /// `network connect` of a running container whose network holder is gone.
    #[error("container {0} lost its network when the network holder ended: restart it (skiff restart {0}), then connect it")]
    HolderGone(String),
    /// `network rm` of the default network.
    #[error("network {0} is skiff's default network and cannot be removed")]
    Default(String),
}
