//! `skiff inspect` (containers and images as JSON), `skiff port` and `skiff top`.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use skiff_runtime::container::filters::state_word;
use skiff_runtime::container::lifecycle::View;
use skiff_runtime::network::ports::PortSpec;
use skiff_runtime::network::records::{Lease, Network};
use skiff_runtime::{Containers, Status};
use skiff_store::{Dirs, ImageStore};

use crate::ctx;
use crate::output::{format, table};

/// `inspect` flags.
#[derive(Args)]
pub struct InspectArgs {
    /// Containers or images by name, id or id prefix
    #[arg(required = true)]
    names: Vec<String>,
    /// container or image (default: whichever the name finds, containers first)
    #[arg(long = "type")]
    kind: Option<String>,
    /// Go template applied to each object
    #[arg(short, long)]
    format: Option<String>,
    /// Display total file sizes if the type is container
    #[arg(short, long)]
    size: bool,
}

impl InspectArgs {
    /// These flags with `--type` set, as `container inspect` gives them.
    pub fn of_kind(self, kind: &str) -> InspectArgs {
        InspectArgs {
            kind: Some(kind.into()),
            ..self
        }
    }
}

/// `skiff inspect`: containers first, then images, unless `--type` says which.
pub fn inspect(a: InspectArgs) -> Result<ExitCode> {
    let kind = a.kind.as_deref().unwrap_or("");
    if !matches!(kind, "" | "container" | "image") {
        bail!("invalid --type {kind:?}: use container or image");
    }
    let dirs = Dirs::from_env();
    let containers = skiff_runtime::Containers::open(&dirs)?;
    let mut out = Vec::new();
    let mut store: Option<ImageStore> = None;
    for n in &a.names {
        if kind != "image" {
            match containers.resolve(n) {
                Ok(id) => {
                    let v = containers.view(&id)?;
                    let mut doc = inspect_container(&containers, &v);
                    if a.size {
                        let (rw, rootfs) = container_sizes(&containers, &v, &mut store);
                        doc["SizeRw"] = rw.into();
                        doc["SizeRootFs"] = rootfs.into();
                    }
                    out.push(doc);
                    continue;
                }
                Err(e) if kind == "container" => return Err(e.into()),
                Err(_) => {}
            }
        }
        if store.is_none() {
            store = Some(ctx::open_store()?);
        }
        let s = store.as_ref().context("store")?;
        let img = s.find(n).map_err(|e| {
            if kind.is_empty() {
                anyhow::anyhow!(
                    "no such container or image: {n} (see skiff ps -a and skiff images)"
                )
            } else {
                e.into()
            }
        })?;
        if let Some(img) = img.into_iter().next() {
            out.push(s.inspect(&img)?);
        }
    }
    format::print_docs(a.format.as_deref(), &out)?;
    Ok(ExitCode::SUCCESS)
}

/// `inspect --size`: Docker's `SizeRw` (what the container wrote: its overlay upper dir, or
/// with the copy fallback the added and changed entries of its private copy) and `SizeRootFs`
/// (that and the image's unpacked size). Walked through fds with no symlink followed, so what a
/// running container plants cannot make the walk leave its tree.
fn container_sizes(c: &Containers, v: &View, store: &mut Option<ImageStore>) -> (u64, u64) {
    let dir = c.dir(&v.cfg.id);
    let copy = dir.join("rootfs-copy");
    let rw = if copy.join(".skiff-copy-complete").exists() {
        skiff_store::changes::changes(&copy, &v.cfg.layers, skiff_store::changes::Top::Copy)
            .map(|found| {
                let written = found
                    .iter()
                    .filter(|ch| ch.kind != skiff_store::changes::Kind::Deleted)
                    .map(|ch| ch.path.as_str());
                skiff_store::inroot::entries_size_in_root(&copy, written)
            })
            .unwrap_or(0)
    } else {
        ctx::dir_size(&dir.join("upper"))
    };
    if store.is_none() {
        *store = ctx::open_store().ok();
    }
    // The image's unpacked size as `ps --size` counts it; an image gone from the store is
    // measured from the container's own layer dirs.
    let image = store
        .as_ref()
        .and_then(|s| s.list().ok())
        .and_then(|l| l.into_iter().find(|i| i.id.to_string() == v.cfg.image_id))
        .map(|i| i.size)
        .unwrap_or_else(|| v.cfg.layers.iter().map(|l| ctx::dir_size(l)).sum());
    (rw, image + rw)
}

/// Docker's `{"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}` for `ports`. As Docker
/// keeps them, `HostConfig.PortBindings` shows what was asked (an address or port left out is
/// `""`) and `NetworkSettings.Ports` what is bound now, with each exposed port nothing
/// publishes as `null`.
fn ports_doc(ports: &[PortSpec], asked: bool, unpublished: &[String]) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for p in ports {
        let entry = if asked {
            let port = match p.host_port {
                0 => String::new(),
                n => n.to_string(),
            };
            serde_json::json!({ "HostIp": p.host_ip, "HostPort": port })
        } else {
            serde_json::json!({ "HostIp": p.host_ip_or_any(), "HostPort": p.host_port.to_string() })
        };
        match m.get_mut(&p.key()).and_then(|e| e.as_array_mut()) {
            Some(list) => list.push(entry),
            None => {
                m.insert(p.key(), serde_json::json!([entry]));
            }
        }
    }
    for k in unpublished {
        m.entry(k.clone()).or_insert(serde_json::Value::Null);
    }
    serde_json::Value::Object(m)
}

/// `NetworkSettings.Ports`: the ports bound while it runs, and the exposed ones nothing
/// publishes; empty once it stopped, as in Docker.
fn bound_ports_doc(v: &View) -> serde_json::Value {
    let exposed: &[String] = if v.running() && v.cfg.network.private() {
        &v.cfg.exposed
    } else {
        &[]
    };
    ports_doc(&v.bound_ports(), false, exposed)
}

/// The `inspect` document of a container, with the field names Docker users know.
pub fn inspect_container(c: &Containers, v: &View) -> serde_json::Value {
    let st = &v.state;
    let status = state_word(v);
    let mounts: Vec<serde_json::Value> = v
        .cfg
        .mounts
        .iter()
        .map(|m| {
            serde_json::json!({
                "Type": match m.kind { skiff_runtime::MountKind::Bind => "bind", skiff_runtime::MountKind::Volume => "volume", skiff_runtime::MountKind::Tmpfs => "tmpfs" },
                "Name": m.name, "Source": m.source, "Destination": m.destination, "RW": !m.readonly,
            })
        })
        .collect();
    let dir = c.dir(&v.cfg.id);
    let copy = dir.join("rootfs-copy");
    let (driver, graph) = if copy.join(".skiff-copy-complete").exists() {
        ("vfs", serde_json::json!({ "MergedDir": copy }))
    } else {
        let lower: Vec<String> = v
            .cfg
            .layers
            .iter()
            .rev()
            .map(|p| p.display().to_string())
            .collect();
        (
            "overlay",
            serde_json::json!({ "LowerDir": lower.join(":"), "UpperDir": dir.join("upper"), "WorkDir": dir.join("work"), "MergedDir": dir.join("rootfs") }),
        )
    };
    let of = |k: skiff_runtime::MountKind| v.cfg.mounts.iter().filter(move |m| m.kind == k);
    let binds: Vec<String> = of(skiff_runtime::MountKind::Bind)
        .map(|m| {
            format!(
                "{}:{}{}",
                m.source.display(),
                m.destination,
                if m.readonly { ":ro" } else { "" }
            )
        })
        .collect();
    let tmpfs: serde_json::Map<String, serde_json::Value> = of(skiff_runtime::MountKind::Tmpfs)
        .map(|m| (m.destination.clone(), "".into()))
        .collect();
    let volumes: serde_json::Map<String, serde_json::Value> = of(skiff_runtime::MountKind::Volume)
        .map(|m| (m.destination.clone(), serde_json::json!({})))
        .collect();
    let mut doc = serde_json::json!({
        "Id": v.cfg.id,
        "Created": v.cfg.created,
        "Path": v.cfg.process.args.first(),
        "Args": v.cfg.process.args.iter().skip(1).collect::<Vec<_>>(),
        "State": {
            "Status": status, "Running": st.status == Status::Running, "Paused": v.paused(), "Restarting": v.restarting(),
            "Pid": if st.status == Status::Running { st.pid.unwrap_or(0) } else { 0 },
            "ExitCode": st.exit_code.unwrap_or(if st.status == Status::Exited { -1 } else { 0 }),
            "StartedAt": st.started_at.clone().unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
            "FinishedAt": st.finished_at.clone().unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
            "Error": st.error.clone().unwrap_or_default(), "Dead": false, "OOMKilled": st.oom_killed,
            "Health": skiff_runtime::container::health::of(v.cfg.healthcheck.as_ref(), &c.dir(&v.cfg.id)),
        },
        "Image": v.cfg.image_id,
        "ImageName": v.cfg.image,
        "Name": format!("/{}", v.cfg.name),
        "RestartCount": st.restart_count,
        "Config": {
            "Hostname": v.cfg.hostname, "User": v.cfg.process.user, "Env": v.cfg.process.env,
            "Cmd": v.cfg.cmd, "Entrypoint": v.cfg.entrypoint, "WorkingDir": v.cfg.process.cwd,
            "Labels": v.cfg.labels, "Image": v.cfg.image, "Tty": v.cfg.process.terminal,
            "OpenStdin": v.cfg.process.stdin, "StopSignal": v.cfg.stop_signal, "StopTimeout": v.cfg.stop_timeout,
            "Volumes": volumes, "Healthcheck": v.cfg.healthcheck,
            "ExposedPorts": v.cfg.exposed.iter().map(|k| (k.clone(), serde_json::json!({}))).collect::<serde_json::Map<_, _>>(),
        },
        "HostConfig": {
            "NetworkMode": v.cfg.network, "PortBindings": ports_doc(&v.cfg.ports, true, &[]), "PublishAllPorts": v.cfg.publish_all,
            "Memory": v.cfg.limits.memory.unwrap_or(0), "PidsLimit": v.cfg.limits.pids.unwrap_or(0),
            "NanoCpus": v.cfg.limits.cpu_micros.unwrap_or(0) * 1000, "ReadonlyRootfs": v.cfg.read_only, "Privileged": v.cfg.privileged,
            "CapAdd": v.cfg.cap_add, "CapDrop": v.cfg.cap_drop, "AutoRemove": v.cfg.auto_remove, "Init": v.cfg.init,
            "RestartPolicy": { "Name": v.cfg.restart.name(), "MaximumRetryCount": v.cfg.restart.max_retries() },
            "SecurityOpt": security_opts(&v.cfg),
            "Binds": binds, "Tmpfs": tmpfs, "ShmSize": v.cfg.shm_size.unwrap_or(64 << 20), "Dns": v.cfg.dns,
            "ExtraHosts": v.cfg.extra_hosts.iter().map(|(h, ip)| format!("{h}:{ip}")).collect::<Vec<_>>(),
            "GroupAdd": v.cfg.group_add, "PidMode": "", "LogConfig": { "Type": "json-file", "Config": {} },
            "Ulimits": v.cfg.ulimits.iter().map(|(n, soft, hard)| serde_json::json!({"Name": n, "Soft": soft, "Hard": hard})).collect::<Vec<_>>(),
        },
        "Mounts": mounts,
        "NetworkSettings": network_settings(c, v),
        "LogPath": c.log_path(&v.cfg.id),
        "ResolvConfPath": dir.join("resolv.conf"), "HostsPath": dir.join("hosts"), "HostnamePath": dir.join("hostname"),
        "Driver": driver, "Platform": "linux", "ExecIDs": null,
        "GraphDriver": { "Name": driver, "Data": graph },
        // skiff's own: the plugins that saw this container before it was created, and what each set.
        "Plugins": v.cfg.plugins.iter().map(|(name, keys)| serde_json::json!({"Name": name, "Changed": keys})).collect::<Vec<_>>(),
    });
    // As Docker: no State.Health or Config.Healthcheck without a healthcheck.
    for (part, key) in [("State", "Health"), ("Config", "Healthcheck")] {
        if doc[part][key].is_null() {
            if let Some(o) = doc[part].as_object_mut() {
                o.remove(key);
            }
        }
    }
    doc
}

/// Docker's `NetworkSettings`: on a skiff network, the container's lease there; with
/// slirp4netns, the address it always gives (and its gateway 10.0.2.2).
fn network_settings(c: &Containers, v: &View) -> serde_json::Value {
    let on_net = v.cfg.network.network().and_then(|name| {
        let net = c.networks.find(name).ok()?;
        let lease = net.leases.get(&v.cfg.id)?.clone();
        Some((net, lease))
    });
    let mut doc = match on_net {
        Some((net, l)) => serde_json::json!({
            "Networks": { net.name.clone(): endpoint(&net, &l) },
            "Ports": bound_ports_doc(v),
            "IPAddress": l.ip.to_string(), "IPPrefixLen": net.subnet.prefix(),
            "Gateway": net.gateway.to_string(), "MacAddress": l.mac,
        }),
        None => serde_json::json!({
            "Networks": { v.cfg.network.as_str(): {} },
            "Ports": bound_ports_doc(v),
            "IPAddress": v.cfg.network.address().map_or("", |a| a.0),
            "Gateway": v.cfg.network.address().map_or("", |a| a.1),
        }),
    };
    // The networks `network connect` added.
    for more in &v.cfg.connected {
        let Ok(net) = c.networks.find(&more.network) else {
            continue;
        };
        if let Some(l) = net.leases.get(&v.cfg.id) {
            doc["Networks"][net.name.as_str()] = endpoint(&net, l);
        }
    }
    doc
}

/// One entry of `NetworkSettings.Networks`: the container's lease on `net`.
fn endpoint(net: &Network, l: &Lease) -> serde_json::Value {
    serde_json::json!({
        "IPAddress": l.ip.to_string(), "IPPrefixLen": net.subnet.prefix(),
        "Gateway": net.gateway.to_string(), "MacAddress": l.mac, "Aliases": l.aliases,
        "NetworkID": net.id, "EndpointID": "",
    })
}

/// `port` flags.
#[derive(Args)]
pub struct PortArgs {
    /// Container
    container: String,
    /// Only this container port (PORT or PORT/PROTO)
    port: Option<String>,
}

/// `skiff port`: the ports a running container publishes, as `80/tcp -> 0.0.0.0:8080`, sorted by
/// container port; with PORT[/PROTO], only its host addresses.
pub fn port(a: PortArgs) -> Result<ExitCode> {
    let (_, c) = ctx::containers()?;
    let id = c.resolve(&a.container)?;
    let v = c.view(&id)?;
    let want = a.port.as_deref().map(|p| {
        if p.contains('/') {
            p.to_string()
        } else {
            format!("{p}/tcp")
        }
    });
    let mut ports = v.bound_ports();
    ports.sort_by(|a, b| {
        (a.container_port, &a.protocol, &a.host_ip, a.host_port).cmp(&(
            b.container_port,
            &b.protocol,
            &b.host_ip,
            b.host_port,
        ))
    });
    let mut shown = 0;
    for p in &ports {
        let key = p.key();
        match &want {
            Some(w) if *w != key => continue,
            Some(_) => println!("{}:{}", p.host_ip_or_any(), p.host_port),
            None => println!("{key} -> {}:{}", p.host_ip_or_any(), p.host_port),
        }
        shown += 1;
    }
    if let (Some(w), 0) = (&want, shown) {
        bail!("no public port {w} published for {}", v.cfg.name);
    }
    Ok(ExitCode::SUCCESS)
}

/// `skiff top`.
pub fn top(name: &str, ps_options: &[String]) -> Result<ExitCode> {
    let cols =
        skiff_runtime::container::top::columns(ps_options).map_err(skiff_runtime::Error::from)?;
    let (_, c) = ctx::containers()?;
    let id = c.resolve(name)?;
    let mut lines = vec![cols.headers.join("\t")];
    for p in c.top(&id)? {
        let row: Vec<String> = cols.fields.iter().map(|f| p.show(*f)).collect();
        lines.push(row.join("\t"));
    }
    table::print_aligned(&lines);
    Ok(ExitCode::SUCCESS)
}

/// `HostConfig.SecurityOpt` as Docker shows it: what was asked beyond the defaults.
fn security_opts(cfg: &skiff_runtime::ContainerConfig) -> Vec<String> {
    let mut opts = Vec::new();
    if !cfg.seccomp {
        opts.push("seccomp=unconfined".to_string());
    }
    if cfg.no_new_privs {
        opts.push("no-new-privileges".to_string());
    }
    opts
}
