//! `skiff network create|ls|inspect|rm|prune|connect|disconnect`, as Docker's: the user's networks, from their
//! records (`skiff_runtime::network::records`). The default network `skiff` (also called
//! `bridge`) is always listed and cannot be removed.

use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use skiff_runtime::container::connect::ConnectOptions;
use skiff_runtime::network::holder::Session;
use skiff_runtime::network::records::{CreateOptions, Network, Networks, DEFAULT_NETWORK};
use skiff_store::Dirs;

use crate::ctx::for_each;
use crate::output::{format, prompt, table};

/// `skiff network …`.
#[derive(Subcommand)]
pub enum NetworkCmd {
    /// Create a network
    Create(CreateArgs),
    /// List networks
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Show networks as JSON
    Inspect(InspectArgs),
    /// Remove networks no container uses
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Remove every network no container uses (not the default one)
    Prune(PruneArgs),
    /// Connect a container to a network (a running one at once)
    Connect(ConnectArgs),
    /// Disconnect a container from a network
    Disconnect(DisconnectArgs),
}

/// `network connect` flags.
#[derive(Args)]
pub struct ConnectArgs {
    /// IPv4 address on the network (the lowest free one without)
    #[arg(long)]
    ip: Option<String>,
    /// Another name for the container on this network
    #[arg(long = "alias")]
    alias: Vec<String>,
    /// Network
    network: String,
    /// Container
    container: String,
}

/// `network disconnect` flags.
#[derive(Args)]
pub struct DisconnectArgs {
    /// Accepted for Docker's sake: disconnecting never needs force
    #[arg(short, long)]
    force: bool,
    /// Network
    network: String,
    /// Container
    container: String,
}

/// `network create` flags.
#[derive(Args)]
pub struct CreateArgs {
    /// Subnet in CIDR form (a free 10.90.N.0/24 without)
    #[arg(long)]
    subnet: Option<String>,
    /// Gateway address (the subnet's first without)
    #[arg(long)]
    gateway: Option<String>,
    /// No route out of the network
    #[arg(long)]
    internal: bool,
    /// Label K=V
    #[arg(short, long = "label")]
    label: Vec<String>,
    /// Driver: only bridge
    #[arg(short, long, default_value = "bridge")]
    driver: String,
    /// Name
    name: String,
}

/// `network ls` flags.
#[derive(Args)]
pub struct LsArgs {
    /// Ids only
    #[arg(short, long)]
    quiet: bool,
    /// name=TEXT, id=PREFIX, label=K[=V], driver=bridge
    #[arg(short, long)]
    filter: Vec<String>,
    /// Go template for each network (table for a table)
    #[arg(long)]
    format: Option<String>,
    /// Full ids
    #[arg(long)]
    no_trunc: bool,
}

/// `network inspect` flags.
#[derive(Args)]
pub struct InspectArgs {
    /// Networks
    #[arg(required = true)]
    names: Vec<String>,
    /// Go template applied to each network
    #[arg(short, long)]
    format: Option<String>,
}

/// `network rm` flags.
#[derive(Args)]
pub struct RmArgs {
    /// No error for a network that does not exist
    #[arg(short, long)]
    force: bool,
    /// Networks
    #[arg(required = true)]
    names: Vec<String>,
}

/// `network prune` flags.
#[derive(Args)]
pub struct PruneArgs {
    /// Do not ask
    #[arg(short, long)]
    force: bool,
}

/// Docker's `network inspect` document.
fn doc(n: &Network) -> serde_json::Value {
    let containers: BTreeMap<&str, serde_json::Value> = n
        .leases
        .iter()
        .map(|(id, l)| {
            (
                id.as_str(),
                serde_json::json!({
                    "Name": l.name, "MacAddress": l.mac, "Aliases": l.aliases,
                    "IPv4Address": format!("{}/{}", l.ip, n.subnet.prefix()), "IPv6Address": "",
                }),
            )
        })
        .collect();
    serde_json::json!({
        "Name": n.name, "Id": n.id, "Created": n.created, "Scope": "local", "Driver": "bridge",
        "EnableIPv6": false,
        "IPAM": {"Driver": "default", "Options": {},
                 "Config": [{"Subnet": n.subnet.to_string(), "Gateway": n.gateway.to_string()}]},
        "Internal": n.internal, "Attachable": false, "Ingress": false,
        "Containers": containers,
        "Options": {"com.docker.network.bridge.name": n.bridge},
        "Labels": n.labels,
    })
}

/// What `network ls --format` sees of a network.
fn row(n: &Network, full: bool) -> serde_json::Value {
    let labels: Vec<String> = n.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    serde_json::json!({
        "ID": if full { &n.id[..] } else { &n.id[..12] }, "Name": n.name, "Driver": "bridge",
        "Scope": "local", "Internal": n.internal, "Labels": labels.join(","),
        "CreatedAt": n.created, "Subnet": n.subnet.to_string(),
    })
}

fn keep(n: &Network, f: &str) -> Result<bool> {
    Ok(match f.split_once('=') {
        Some(("name", v)) => n.name.contains(v),
        Some(("id", v)) => n.id.starts_with(v),
        Some(("driver", v)) => v == "bridge",
        Some(("label", v)) => match v.split_once('=') {
            Some((k, want)) => n.labels.get(k).is_some_and(|x| x == want),
            None => n.labels.contains_key(v),
        },
        _ => bail!(
            "invalid --filter {f:?}: network ls knows name=TEXT, id=PREFIX, label=K[=V] and driver=bridge"
        ),
    })
}

/// Takes a removed network's bridge and rules out of the running network holder, if any (with
/// no holder running there is nothing to take out).
fn forget_bridge(nets: &Networks, net: &Network) {
    let who = skiff_runtime::userns::identity::Identity::current();
    if let Some(mut s) = Session::running(nets.runtime(), &who) {
        if let Err(e) = s.drop_bridge(net) {
            eprintln!("Warning: network {}: {e}", net.name);
        }
    }
}

/// Runs a `network` subcommand.
pub fn run(cmd: NetworkCmd) -> Result<ExitCode> {
    let nets = Networks::open(&Dirs::from_env());
    match cmd {
        NetworkCmd::Create(a) => {
            if a.driver != "bridge" {
                bail!(
                    "network driver {:?} is not supported: skiff networks use bridge (drop -d)",
                    a.driver
                );
            }
            let mut labels = BTreeMap::new();
            for l in &a.label {
                let (k, v) = l.split_once('=').unwrap_or((l, ""));
                labels.insert(k.to_string(), v.to_string());
            }
            let gateway = match &a.gateway {
                Some(g) => Some(g.parse().map_err(|_| {
                    anyhow::anyhow!(
                        "invalid --gateway {g:?}: give an IPv4 address such as 10.90.5.1"
                    )
                })?),
                None => None,
            };
            let o = CreateOptions {
                subnet: a.subnet.as_deref().map(str::parse).transpose()?,
                gateway,
                internal: a.internal,
                labels,
            };
            let n = nets.create(&a.name, &o)?;
            println!("{}", n.id);
            Ok(ExitCode::SUCCESS)
        }
        NetworkCmd::Ls(a) => {
            let mut list = nets.list()?;
            for f in &a.filter {
                let mut kept = Vec::new();
                for n in list {
                    if keep(&n, f)? {
                        kept.push(n);
                    }
                }
                list = kept;
            }
            if a.quiet {
                list.iter()
                    .for_each(|n| println!("{}", if a.no_trunc { &n.id } else { &n.id[..12] }));
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<serde_json::Value> = list.iter().map(|n| row(n, a.no_trunc)).collect();
            match &a.format {
                Some(t) => {
                    let headers = HashMap::from([
                        ("ID", "NETWORK ID"),
                        ("Name", "NAME"),
                        ("Driver", "DRIVER"),
                        ("Scope", "SCOPE"),
                        ("Internal", "INTERNAL"),
                        ("Labels", "LABELS"),
                        ("CreatedAt", "CREATED AT"),
                        ("Subnet", "SUBNET"),
                    ]);
                    format::Format::parse(t, &headers)?.print_all(&rows)?;
                }
                None => {
                    let mut lines = vec!["NETWORK ID\tNAME\tDRIVER\tSCOPE".to_string()];
                    lines.extend(rows.iter().map(|r| {
                        format!(
                            "{}\t{}\tbridge\tlocal",
                            r["ID"].as_str().unwrap_or_default(),
                            r["Name"].as_str().unwrap_or_default()
                        )
                    }));
                    table::print_aligned(&lines);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        NetworkCmd::Inspect(a) => {
            let mut docs = Vec::new();
            for n in &a.names {
                docs.push(doc(&nets.find(n)?));
            }
            format::print_docs(a.format.as_deref(), &docs)?;
            Ok(ExitCode::SUCCESS)
        }
        NetworkCmd::Rm(a) => Ok(for_each(&a.names, |n| {
            if a.force && nets.find(n).is_err() {
                return Ok(());
            }
            let net = nets.remove(n)?;
            forget_bridge(&nets, &net);
            println!("{n}");
            Ok(())
        })),
        NetworkCmd::Connect(a) => {
            let ip = match &a.ip {
                Some(ip) => Some(ip.parse().map_err(|_| {
                    anyhow::anyhow!("invalid --ip {ip:?}: give an IPv4 address such as 10.90.1.20")
                })?),
                None => None,
            };
            let (_, c) = crate::ctx::containers()?;
            let o = ConnectOptions {
                ip,
                aliases: a.alias.clone(),
            };
            c.connect(&a.container, &a.network, &o)?;
            Ok(ExitCode::SUCCESS)
        }
        NetworkCmd::Disconnect(a) => {
            let _ = a.force;
            let (_, c) = crate::ctx::containers()?;
            c.disconnect(&a.container, &a.network)?;
            Ok(ExitCode::SUCCESS)
        }
        NetworkCmd::Prune(a) => {
            let warning =
                "WARNING! This will remove all custom networks not used by at least one container.";
            if !a.force && !prompt::confirm("network prune", warning)? {
                return Ok(ExitCode::SUCCESS);
            }
            println!("Deleted Networks:");
            for n in nets.list()? {
                if n.name != DEFAULT_NETWORK && n.leases.is_empty() && nets.remove(&n.name).is_ok()
                {
                    forget_bridge(&nets, &n);
                    println!("{}", n.name);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
