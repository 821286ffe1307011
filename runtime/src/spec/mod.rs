//! Turning an image config and `run` flags into a [`ContainerConfig`], as Docker combines them:
//! entrypoint and cmd, environment layering, user, workdir, mounts. Everything that can be wrong
//! is checked here, before any record, mount or process exists.

pub mod adjust;
pub mod error;
pub mod model;
pub mod passwd;

pub use error::SpecError;
pub use model::ContainerSpec;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::container::config::RestartPolicy;
use crate::container::config::{MountKind, MountSpec, ProcessSpec};
use crate::container::records::Containers;
use crate::error::{Error, Result};
use crate::network::{ports, NetworkMode};
use crate::userns::identity::Identity;

/// The `run`/`create` flags, already parsed.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// `--name`.
    pub name: Option<String>,
    /// Command after the image (replaces the image's Cmd).
    pub command: Vec<String>,
    /// `--entrypoint` (Some("") clears it).
    pub entrypoint: Option<String>,
    /// `-e K=V` / `-e K`.
    pub env: Vec<String>,
    /// `--env-file` paths.
    pub env_files: Vec<PathBuf>,
    /// `-w`.
    pub workdir: Option<String>,
    /// `-u`.
    pub user: Option<String>,
    /// `--hostname`.
    pub hostname: Option<String>,
    /// `-l K=V`.
    pub labels: Vec<String>,
    /// `-v`.
    pub volumes: Vec<String>,
    /// `--tmpfs`.
    pub tmpfs: Vec<String>,
    /// `--network`.
    pub network: Option<String>,
    /// `-p` / `--publish`.
    pub publish: Vec<String>,
    /// `-P` / `--publish-all`: every exposed port on a free host port.
    pub publish_all: bool,
    /// `--expose PORT[/PROTO]`: ports to declare besides the image's.
    pub expose: Vec<String>,
    /// `--ip`.
    pub ip: Option<String>,
    /// `--network-alias`.
    pub network_alias: Vec<String>,
    /// `--mount type=bind|volume|tmpfs,source=…,target=…[,readonly]`.
    pub mount: Vec<String>,
    /// `--ulimit NAME=SOFT[:HARD]`.
    pub ulimit: Vec<String>,
    /// `--group-add GROUP`.
    pub group_add: Vec<String>,
    /// `--shm-size` (`64m`).
    pub shm_size: Option<String>,
    /// `--stop-signal` (instead of the image's).
    pub stop_signal: Option<String>,
    /// `--add-host NAME:IP`.
    pub add_host: Vec<String>,
    /// `--dns IP`.
    pub dns: Vec<String>,
    /// `--memory` / `-m` (`512m`).
    pub memory: Option<String>,
    /// `--pids-limit`.
    pub pids_limit: Option<i64>,
    /// `--cpus` (`1.5`).
    pub cpus: Option<String>,
    /// `--cap-add`.
    pub cap_add: Vec<String>,
    /// `--cap-drop`.
    pub cap_drop: Vec<String>,
    /// `--security-opt`.
    pub security_opt: Vec<String>,
    /// `--privileged`.
    pub privileged: bool,
    /// `--read-only`.
    pub read_only: bool,
    /// `--init`.
    pub init: bool,
    /// `--rm`.
    pub auto_remove: bool,
    /// `-t`.
    pub tty: bool,
    /// `-i`.
    pub interactive: bool,
    /// `--restart`.
    pub restart: Option<String>,
    /// `--stop-timeout` seconds.
    pub stop_timeout: Option<u64>,
    /// `--health-*` and `--no-healthcheck`.
    pub health: crate::container::health::HealthFlags,
}

/// What the image contributes, given by the CLI from the store.
pub struct ImageInfo<'a> {
    /// The full reference.
    pub reference: String,
    /// Image id.
    pub id: String,
    /// OCI image config JSON (with `config.Entrypoint`, `Cmd`, `Env`, …).
    pub config: &'a Value,
    /// Layer dirs, lowest first.
    pub layers: Vec<PathBuf>,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Sets `KEY=VALUE` in `env`, replacing an earlier value of KEY (later settings win, as in Docker).
pub(crate) fn set_env(env: &mut Vec<String>, kv: String) {
    let key = kv.split('=').next().unwrap_or("").to_string();
    env.retain(|e| e.split('=').next() != Some(key.as_str()));
    env.push(kv);
}

/// An `--env-file` line as Docker reads it: leading blanks dropped; a value keeps its trailing
/// blanks (they may be meant), a bare `KEY` (taken from skiff's environment) loses them.
pub fn env_file_line(line: &str) -> &str {
    let l = line.trim_start();
    if l.contains('=') {
        l
    } else {
        l.trim_end()
    }
}

/// `-e` and `--env-file` entries: `K=V`, or `K` taken from skiff's own environment (skipped when unset).
fn env_entry(raw: &str, origin: &str) -> Result<Option<String>> {
    let key = raw.split('=').next().unwrap_or("");
    if key.is_empty() || key.contains(char::is_whitespace) {
        return Err(SpecError::EnvEntry {
            raw: raw.to_string(),
            origin: origin.to_string(),
        }
        .into());
    }
    Ok(if raw.contains('=') {
        Some(raw.to_string())
    } else {
        std::env::var(key).ok().map(|v| format!("{key}={v}"))
    })
}

/// Reads a file from the image's merged view (top layer first; whiteouts and opaque dirs count),
/// resolved inside that view: an image's symlink never reaches a host file, and only a regular
/// file of at most [`passwd::MAX_ID_FILE`] bytes is read.
pub fn read_image_file(layers: &[PathBuf], path: &str) -> Result<Option<String>> {
    skiff_store::inroot::read_merged_file(layers, path, passwd::MAX_ID_FILE)
        .map(|b| b.map(|b| String::from_utf8_lossy(&b).into_owned()))
        .map_err(|e| {
            SpecError::ImageIdFile {
                what: e.to_string(),
                cap_mib: passwd::MAX_ID_FILE >> 20,
            }
            .into()
        })
}

pub(crate) fn parse_volume(v: &str, containers: &Containers) -> Result<MountSpec> {
    let parts: Vec<&str> = v.split(':').collect();
    let bad = || {
        Error::from(SpecError::Flag {
            flag: "-v",
            value: v.to_string(),
            fix: "use SRC:DST[:ro], NAME:DST[:ro] or DST".into(),
        })
    };
    let (src, dst, opts) = match parts.as_slice() {
        [dst] => ("", *dst, ""),
        [src, dst] => (*src, *dst, ""),
        [src, dst, opts] => (*src, *dst, *opts),
        _ => return Err(bad()),
    };
    if !dst.starts_with('/') {
        return Err(SpecError::Flag {
            flag: "-v",
            value: v.to_string(),
            fix: format!("the destination {dst:?} must be an absolute path"),
        }
        .into());
    }
    let readonly = match opts {
        "" | "rw" => false,
        "ro" => true,
        o => {
            return Err(SpecError::Flag {
                flag: "-v",
                value: v.to_string(),
                fix: format!("unknown option {o:?} (use ro or rw)"),
            }
            .into())
        }
    };
    if src.starts_with('/') || src.starts_with('.') {
        let p = Path::new(src);
        if !p.exists() {
            return Err(SpecError::BindMissing(src.to_string()).into());
        }
        let abs = std::fs::canonicalize(p).map_err(|source| SpecError::BindSource {
            path: src.to_string(),
            source,
        })?;
        Ok(MountSpec {
            kind: MountKind::Bind,
            source: abs,
            name: None,
            destination: dst.to_string(),
            readonly,
        })
    } else {
        let name = if src.is_empty() {
            crate::container::records::random_bytes::<16>()?
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        } else {
            src.to_string()
        };
        let dir = containers.volume(&name)?;
        Ok(MountSpec {
            kind: MountKind::Volume,
            source: dir,
            name: Some(name),
            destination: dst.to_string(),
            readonly,
        })
    }
}

/// Docker's `--mount` as the equivalent `-v` or `--tmpfs` value: (`-v` form, is tmpfs).
fn mount_as_volume(m: &str) -> Result<(String, bool)> {
    let bad = |why: &str| {
        Error::from(SpecError::Flag {
            flag: "--mount",
            value: m.to_string(),
            fix: format!("{why} (use type=bind|volume|tmpfs,source=…,target=…[,readonly])"),
        })
    };
    let (mut kind, mut src, mut dst, mut ro) = ("volume", "", "", false);
    for part in m.split(',') {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        match k {
            "type" => kind = v,
            "source" | "src" => src = v,
            "target" | "destination" | "dst" => dst = v,
            "readonly" | "ro" => ro = matches!(v, "" | "true" | "1"),
            other => return Err(bad(&format!("unknown option {other:?}"))),
        }
    }
    if dst.is_empty() {
        return Err(bad("no target"));
    }
    let ro = if ro { ":ro" } else { "" };
    match kind {
        "bind" if src.is_empty() => Err(bad("a bind mount needs a source")),
        "bind" if !src.starts_with('/') => Err(bad("a bind source must be an absolute path")),
        "bind" | "volume" if src.is_empty() => Ok((format!("{dst}{ro}"), false)),
        "volume" if src.starts_with('/') => Err(bad("a volume source is a name")),
        "bind" | "volume" => Ok((format!("{src}:{dst}{ro}"), false)),
        "tmpfs" => Ok((dst.to_string(), true)),
        other => Err(bad(&format!("unknown type {other:?}"))),
    }
}

/// rlimit names Docker's `--ulimit` takes.
const ULIMITS: [&str; 16] = [
    "as",
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// `nofile=1024:2048` (or `nofile=1024`, soft and hard alike; -1 for unlimited).
fn parse_ulimit(u: &str) -> Result<(String, u64, u64)> {
    let bad = || {
        Error::from(SpecError::Flag {
            flag: "--ulimit",
            value: u.to_string(),
            fix: format!(
                "use NAME=SOFT[:HARD] with NAME one of {}",
                ULIMITS.join(", ")
            ),
        })
    };
    let (name, vals) = u.split_once('=').ok_or_else(bad)?;
    if !ULIMITS.contains(&name) {
        return Err(bad());
    }
    let num = |v: &str| -> Result<u64> {
        if v == "-1" {
            return Ok(u64::MAX);
        }
        v.parse().map_err(|_| bad())
    };
    let (soft, hard) = match vals.split_once(':') {
        Some((s, h)) => (num(s)?, num(h)?),
        None => (num(vals)?, num(vals)?),
    };
    if soft > hard {
        return Err(SpecError::Flag {
            flag: "--ulimit",
            value: u.to_string(),
            fix: "the soft limit is above the hard one".into(),
        }
        .into());
    }
    Ok((name.to_string(), soft, hard))
}

/// Builds the container spec from the image config and the flags, checking every input: a
/// refused run leaves nothing behind.
pub fn build(
    image: &ImageInfo<'_>,
    o: &RunOptions,
    containers: &Containers,
    identity: &Identity,
) -> Result<ContainerSpec> {
    let c = &image.config["config"];
    let limits =
        crate::cgroups::Limits::parse(o.memory.as_deref(), o.pids_limit, o.cpus.as_deref())?;
    let ulimits = o
        .ulimit
        .iter()
        .map(|u| parse_ulimit(u))
        .collect::<Result<Vec<_>>>()?;
    let shm_size = o
        .shm_size
        .as_deref()
        .map(|s| {
            skiff_store::size::parse_size(s).ok_or_else(|| {
                Error::from(SpecError::Flag {
                    flag: "--shm-size",
                    value: s.to_string(),
                    fix: "use a number with b, k, m or g (64m)".into(),
                })
            })
        })
        .transpose()?;
    let healthcheck = crate::container::health::merge(
        crate::container::health::Healthcheck::from_image(c),
        &o.health,
    )?;
    if let Some(sig) = &o.stop_signal {
        if crate::container::lifecycle::signal_number(sig).is_none() {
            return Err(SpecError::Flag {
                flag: "--stop-signal",
                value: sig.clone(),
                fix: "use a signal name (SIGTERM, QUIT) or number".into(),
            }
            .into());
        }
    }
    let mut extra_hosts = Vec::new();
    for h in &o.add_host {
        // Docker takes NAME:IP (and NAME=IP); an IPv6 address has colons of its own.
        let (name, ip) = h
            .split_once('=')
            .or_else(|| h.split_once(':'))
            .ok_or_else(|| SpecError::Flag {
                flag: "--add-host",
                value: h.clone(),
                fix: "use NAME:IP".into(),
            })?;
        if !crate::container::names::valid_hostname(name) || ip.parse::<std::net::IpAddr>().is_err()
        {
            return Err(SpecError::Flag {
                flag: "--add-host",
                value: h.clone(),
                fix: "use NAME:IP with a host name and an IP address".into(),
            }
            .into());
        }
        extra_hosts.push((name.to_string(), ip.to_string()));
    }
    for d in &o.dns {
        if d.parse::<std::net::IpAddr>().is_err() {
            return Err(SpecError::Flag {
                flag: "--dns",
                value: d.clone(),
                fix: "give a name server's IP address".into(),
            }
            .into());
        }
    }
    let mut ports = Vec::new();
    for p in &o.publish {
        ports.extend(ports::PortSpec::parse(p)?);
    }
    // The image's, --expose's and the published ones, as Docker's Config.ExposedPorts.
    let mut exposed = ports::image_exposed(&c["ExposedPorts"]);
    for e in &o.expose {
        exposed.extend(ports::parse_expose(e)?);
    }
    let publishes = !ports.is_empty() || (o.publish_all && !exposed.is_empty());
    exposed.extend(ports.iter().map(|p| p.key()));
    ports::sort_keys(&mut exposed);
    let network = NetworkMode::choose(o.network.as_deref(), publishes)?;
    let ip = match &o.ip {
        Some(t) => Some(
            t.parse::<std::net::Ipv4Addr>()
                .map_err(|_| crate::network::Error::BadIp(t.clone()))?,
        ),
        None => None,
    };
    let (mut seccomp, mut no_new_privs) = (true, false);
    for so in &o.security_opt {
        match so.as_str() {
            "seccomp=unconfined" | "seccomp:unconfined" => seccomp = false,
            "no-new-privileges" | "no-new-privileges:true" | "no-new-privileges=true" => {
                no_new_privs = true
            }
            "no-new-privileges:false" | "no-new-privileges=false" => no_new_privs = false,
            other => return Err(SpecError::SecurityOpt(other.to_string()).into()),
        }
    }
    let entrypoint = match &o.entrypoint {
        Some(e) if e.is_empty() => vec![],
        Some(e) => vec![e.clone()],
        None => strings(&c["Entrypoint"]),
    };
    let cmd = if !o.command.is_empty() {
        o.command.clone()
    } else if o.entrypoint.is_some() {
        vec![]
    } else {
        strings(&c["Cmd"])
    };
    let args: Vec<String> = entrypoint.iter().chain(cmd.iter()).cloned().collect();

    let mut env: Vec<String> = Vec::new();
    for e in strings(&c["Env"]) {
        set_env(&mut env, e);
    }
    for f in &o.env_files {
        let text = std::fs::read_to_string(f).map_err(|source| SpecError::EnvFile {
            path: f.clone(),
            source,
        })?;
        for line in text
            .lines()
            .map(env_file_line)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            if let Some(kv) = env_entry(line, &f.display().to_string())? {
                set_env(&mut env, kv);
            }
        }
    }
    for e in &o.env {
        if let Some(kv) = env_entry(e, "-e")? {
            set_env(&mut env, kv);
        }
    }
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(
            0,
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        );
    }
    if o.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }

    let user = o
        .user
        .clone()
        .unwrap_or_else(|| c["User"].as_str().unwrap_or("").to_string());

    let mut labels = BTreeMap::new();
    for l in &o.labels {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        labels.insert(k.to_string(), v.to_string());
    }
    let mut mounts = Vec::new();
    let mut tmpfs = o.tmpfs.clone();
    for v in &o.volumes {
        mounts.push(parse_volume(v, containers)?);
    }
    for m in &o.mount {
        match mount_as_volume(m)? {
            (dst, true) => tmpfs.push(dst),
            (v, false) => mounts.push(parse_volume(&v, containers)?),
        }
    }
    for t in &tmpfs {
        let dst = t.split(':').next().unwrap_or("");
        mounts.push(MountSpec {
            kind: MountKind::Tmpfs,
            source: PathBuf::new(),
            name: None,
            destination: dst.to_string(),
            readonly: false,
        });
    }
    let restart = match o.restart.as_deref() {
        Some(r) => RestartPolicy::parse(r)?,
        None => RestartPolicy::No,
    };
    let workdir = o
        .workdir
        .clone()
        .or_else(|| {
            c["WorkingDir"]
                .as_str()
                .filter(|w| !w.is_empty())
                .map(String::from)
        })
        .unwrap_or_else(|| "/".into());
    let (reference, image_id, layers) = (
        image.reference.clone(),
        image.id.clone(),
        image.layers.clone(),
    );
    let stop_signal = o
        .stop_signal
        .clone()
        .or_else(|| c["StopSignal"].as_str().map(String::from));
    let spec = ContainerSpec {
        image: reference,
        image_id,
        layers,
        entrypoint,
        cmd,
        process: ProcessSpec {
            args,
            env,
            cwd: workdir,
            user,
            terminal: o.tty,
            stdin: o.interactive,
        },
        hostname: o.hostname.clone(),
        labels,
        mounts,
        read_only: o.read_only,
        network,
        ports,
        exposed,
        publish_all: o.publish_all,
        ip,
        network_aliases: o.network_alias.clone(),
        limits,
        extra_hosts,
        dns: o.dns.clone(),
        group_add: o.group_add.clone(),
        ulimits,
        shm_size,
        cap_add: o.cap_add.clone(),
        cap_drop: o.cap_drop.clone(),
        privileged: o.privileged,
        seccomp,
        no_new_privs,
        init: o.init,
        auto_remove: o.auto_remove,
        stop_signal,
        stop_timeout: o.stop_timeout,
        healthcheck,
        restart,
        plugins: BTreeMap::new(),
    };
    spec.validate(identity)?;
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn containers(t: &Path) -> Containers {
        Containers::open(&skiff_store::Dirs {
            data: t.join("d"),
            config: t.join("c"),
            cache: t.join("k"),
            runtime: t.join("r"),
        })
        .unwrap()
    }

    fn image(cfg: &Value) -> ImageInfo<'_> {
        ImageInfo {
            reference: "r".into(),
            id: "sha256:x".into(),
            config: cfg,
            layers: vec![],
        }
    }

    #[test]
    fn entrypoint_cmd_and_env_combine_like_docker() {
        let t = tempfile::tempdir().unwrap();
        let c = containers(t.path());
        let cfg = serde_json::json!({"config": {"Entrypoint": ["/ep"], "Cmd": ["a"], "Env": ["PATH=/x", "A=1", "B=2"]}});
        let o = RunOptions {
            env: vec!["A=9".into(), "C=3".into()],
            ..Default::default()
        };
        let built = build(&image(&cfg), &o, &c, &Identity::Root)
            .unwrap()
            .into_config(&"f".repeat(64), "n");
        assert_eq!(built.process.args, ["/ep", "a"]);
        assert_eq!(
            built.process.env,
            ["PATH=/x", "B=2", "A=9", "C=3", "HOSTNAME=ffffffffffff"]
        );
        let o = RunOptions {
            command: vec!["b".into()],
            ..Default::default()
        };
        assert_eq!(
            build(&image(&cfg), &o, &c, &Identity::Root)
                .unwrap()
                .into_config("0".repeat(64).as_str(), "n")
                .process
                .args,
            ["/ep", "b"]
        );
        let o = RunOptions {
            entrypoint: Some("/other".into()),
            ..Default::default()
        };
        assert_eq!(
            build(&image(&cfg), &o, &c, &Identity::Root)
                .unwrap()
                .into_config("0".repeat(64).as_str(), "n")
                .process
                .args,
            ["/other"],
            "--entrypoint resets Cmd"
        );
    }

    #[test]
    fn exposed_ports_gather_the_images_expose_and_published_ones() {
        let t = tempfile::tempdir().unwrap();
        let c = containers(t.path());
        let cfg = serde_json::json!({"config": {"Cmd": ["sh"], "ExposedPorts": {"80/tcp": {}, "53/udp": {}}}});
        let o = RunOptions {
            publish: vec!["8080:8080".into(), "9000-9001".into()],
            expose: vec!["443".into()],
            publish_all: true,
            ..Default::default()
        };
        let spec = build(&image(&cfg), &o, &c, &Identity::Root).unwrap();
        assert_eq!(
            spec.exposed,
            ["53/udp", "80/tcp", "443/tcp", "8080/tcp", "9000/tcp", "9001/tcp"]
        );
        assert_eq!(
            spec.ports.len(),
            3,
            "-P is applied at start, not in the record"
        );
        assert!(spec.publish_all);
        // -P with nothing exposed publishes nothing, so any network will do.
        let bare = serde_json::json!({"config": {"Cmd": ["sh"]}});
        let o = RunOptions {
            network: Some("host".into()),
            publish_all: true,
            ..Default::default()
        };
        assert!(build(&image(&bare), &o, &c, &Identity::Root).is_ok());
    }

    #[test]
    fn bad_input_is_refused_with_the_reason() {
        let t = tempfile::tempdir().unwrap();
        let c = containers(t.path());
        let cfg = serde_json::json!({"config": {"Cmd": ["sh"]}});
        let err = |o: RunOptions| {
            build(&image(&cfg), &o, &c, &Identity::Root)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(err(RunOptions {
            network: Some("a b".into()),
            ..Default::default()
        })
        .contains("unknown --network"));
        assert!(err(RunOptions {
            network: Some("host".into()),
            publish: vec!["8080:80".into()],
            ..Default::default()
        })
        .contains("drop --network host"));
        assert!(err(RunOptions {
            publish: vec!["8000-8001:80".into()],
            ..Default::default()
        })
        .contains("invalid -p"));
        assert!(err(RunOptions {
            publish: vec!["8080:80".into(), "8080:81".into()],
            ..Default::default()
        })
        .contains("already published"));
        assert!(err(RunOptions {
            network: Some("none".into()),
            publish_all: true,
            expose: vec!["80".into()],
            ..Default::default()
        })
        .contains("drop --network none"));
        assert!(err(RunOptions {
            expose: vec!["80/sctp".into()],
            ..Default::default()
        })
        .contains("invalid --expose"));
        assert!(err(RunOptions {
            volumes: vec!["/no/such/dir:/x".into()],
            ..Default::default()
        })
        .contains("bind source path does not exist"));
        assert!(err(RunOptions {
            volumes: vec!["a:b:c:d".into()],
            ..Default::default()
        })
        .contains("invalid -v"));
        assert!(err(RunOptions {
            volumes: vec!["vol:relative".into()],
            ..Default::default()
        })
        .contains("absolute"));
        assert!(err(RunOptions {
            env: vec!["=x".into()],
            ..Default::default()
        })
        .contains("invalid environment variable"));
        assert!(err(RunOptions {
            user: Some("nobody".into()),
            ..Default::default()
        })
        .contains("unable to find user"));
        assert!(err(RunOptions {
            cap_add: vec!["NOPE".into()],
            ..Default::default()
        })
        .contains("unknown capability"));
        let empty = serde_json::json!({"config": {}});
        assert!(
            build(&image(&empty), &RunOptions::default(), &c, &Identity::Root)
                .err()
                .unwrap()
                .to_string()
                .contains("no command")
        );
    }
}
