//! Container commands after `run`: ps, logs, inspect, stop, kill, start, restart, wait, rm,
//! container prune, rename, top, exec. Every answer comes from the per-user state files and the
//! processes themselves; there is no daemon to ask.

use std::collections::HashMap;
use std::io::{IsTerminal, Read, Seek, SeekFrom, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use clap::{ArgAction, Args};
use skiff_runtime::container::lifecycle::View;
use skiff_runtime::process::exec::ExecOptions;
use skiff_runtime::{Containers, Status};
use skiff_store::Dirs;

use crate::format::Format;
use crate::{human, unpacker};

/// Opens the user's containers, first finishing any removal that was interrupted (a
/// `containers/.rm-ID` or `volumes/.rm-NAME` left by a killed `rm`), so none stays for good.
pub(crate) fn containers() -> Result<(Dirs, Containers)> {
    let dirs = Dirs::from_env();
    let c = Containers::open(&dirs)?;
    let leftovers = c.leftovers();
    if !leftovers.is_empty() {
        let remove = remover(&dirs);
        for tomb in leftovers {
            if let Err(e) = c.finish_removal(&tomb, &remove) {
                eprintln!("warning: could not finish removing {}: {e}", tomb.display());
            }
        }
    }
    Ok((dirs, c))
}

/// Exit code for a runtime error: 2 for rm of a running container (as podman), else 125.
fn code_of(e: &skiff_runtime::Error) -> u8 {
    match e {
        skiff_runtime::Error::Running(_) => 2,
        skiff_runtime::Error::Exec(c, _) => u8::try_from(*c).unwrap_or(125),
        _ => 125,
    }
}

/// Runs `f` for each name; errors are printed and the last one's code returned, as Docker does.
pub(crate) fn for_each(
    names: &[String],
    mut f: impl FnMut(&str) -> std::result::Result<(), skiff_runtime::Error>,
) -> ExitCode {
    let mut code = 0u8;
    for n in names {
        if let Err(e) = f(n) {
            eprintln!("Error: {e}");
            code = code_of(&e);
        }
    }
    ExitCode::from(code)
}

fn signal_number(s: &str) -> Result<i32> {
    skiff_runtime::container::lifecycle::signal_number(s).ok_or_else(|| {
        anyhow::anyhow!("invalid signal {s:?}: use a name like TERM or SIGKILL, or a number")
    })
}

fn parse_time(s: &str) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(secs) = s.parse::<i64>() {
        return DateTime::from_timestamp(secs, 0).context("timestamp out of range");
    }
    // Relative: 10m, 1h30m, 45s, 2d.
    let mut total = 0i64;
    let mut num = String::new();
    for ch in s.chars() {
        if ch.is_ascii_digit() {
            num.push(ch);
            continue;
        }
        let n: i64 = num.parse().map_err(|_| anyhow::anyhow!("invalid time {s:?}: use RFC 3339 (2024-01-02T15:04:05Z), a Unix timestamp, or a duration like 10m or 1h30m"))?;
        num.clear();
        total += n * match ch {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => bail!("invalid time {s:?}: use RFC 3339 (2024-01-02T15:04:05Z), a Unix timestamp, or a duration like 10m or 1h30m"),
        };
    }
    if !num.is_empty() || s.is_empty() {
        bail!("invalid time {s:?}: use RFC 3339 (2024-01-02T15:04:05Z), a Unix timestamp, or a duration like 10m or 1h30m");
    }
    Ok(Utc::now() - chrono::Duration::seconds(total))
}

fn since(t: &Option<String>) -> i64 {
    t.as_deref()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| (Utc::now() - t.with_timezone(&Utc)).num_seconds())
        .unwrap_or(0)
}

/// `Up 3 seconds`, `Exited (0) 2 minutes ago`, `Restarting (1) 1 second ago`, `Created`.
fn status_text(v: &View) -> String {
    if v.restarting() {
        return format!(
            "Restarting ({}) {}",
            v.state.exit_code.unwrap_or(-1),
            human::ago(since(&v.state.finished_at))
        );
    }
    match v.state.status {
        Status::Created => "Created".into(),
        Status::Running => format!(
            "Up {}{}",
            human::ago(since(&v.state.started_at)).trim_end_matches(" ago"),
            if v.paused() { " (Paused)" } else { "" }
        ),
        Status::Exited => format!(
            "Exited ({}) {}",
            v.state.exit_code.unwrap_or(-1),
            human::ago(since(&v.state.finished_at))
        ),
    }
}

fn command_text(v: &View, full: bool) -> String {
    let c = v.cfg.process.args.join(" ");
    if full || c.chars().count() <= 20 {
        format!("\"{c}\"")
    } else {
        format!("\"{}…\"", c.chars().take(19).collect::<String>())
    }
}

/// The fields `ps --format` knows, as Docker names them.
fn ps_item(v: &View, no_trunc: bool) -> serde_json::Value {
    let labels: Vec<String> = v
        .cfg
        .labels
        .iter()
        .map(|(k, val)| format!("{k}={val}"))
        .collect();
    serde_json::json!({
        "ID": if no_trunc { v.cfg.id.clone() } else { v.cfg.id[..12].to_string() },
        "Image": v.cfg.image,
        "Command": command_text(v, no_trunc),
        "CreatedAt": v.cfg.created,
        "RunningFor": human::ago(since(&Some(v.cfg.created.clone()))),
        "Status": status_text(v),
        "State": state_word(v),
        "Ports": v.cfg.ports.iter().map(|p| p.display()).collect::<Vec<_>>().join(", "),
        "Names": v.cfg.name,
        "Labels": labels.join(","),
        "ExitCode": v.state.exit_code,
    })
}

/// `ps` flags.
#[derive(Args)]
pub struct PsArgs {
    /// Show all containers (default: running)
    #[arg(short, long)]
    all: bool,
    /// Only ids
    #[arg(short, long)]
    quiet: bool,
    /// Don't truncate
    #[arg(long)]
    no_trunc: bool,
    /// The last N created (any state)
    #[arg(short = 'n', long)]
    last: Option<usize>,
    /// The latest created (any state)
    #[arg(short, long)]
    latest: bool,
    /// Show the size of each container's writable layer
    #[arg(short, long)]
    size: bool,
    /// Filter: status=, name=, id=, label=, ancestor=, exited=, before=, since=
    #[arg(short, long, action = ArgAction::Append)]
    filter: Vec<String>,
    /// Go template, `table …`, or json
    #[arg(long)]
    format: Option<String>,
}

pub(crate) fn dir_size(p: &std::path::Path) -> u64 {
    // Through fds, never following a symlink a running container swaps in.
    skiff_store::inroot::tree_size(p)
}

/// The `ps` fields of a container whose record cannot be read (podman shows such a one too):
/// what its config still gives, and a status saying what is damaged.
fn damaged_item(
    d: &skiff_runtime::container::records::Damaged,
    no_trunc: bool,
) -> serde_json::Value {
    serde_json::json!({
        "ID": if no_trunc { d.id.clone() } else { d.id.chars().take(12).collect() },
        "Image": d.image.clone().unwrap_or_default(),
        "Command": "",
        "CreatedAt": d.created.clone().unwrap_or_default(),
        "RunningFor": d.created.as_ref().map(|c| human::ago(since(&Some(c.clone())))).unwrap_or_default(),
        "Status": format!("Damaged ({})", d.what),
        "State": "damaged",
        "Ports": "",
        "Names": d.name.clone().unwrap_or_default(),
        "Labels": "",
        "ExitCode": serde_json::Value::Null,
    })
}

/// `skiff ps`.
pub fn ps(a: PsArgs) -> Result<ExitCode> {
    let (_, c) = containers()?;
    let views = c.views()?;
    // Docker's rule: values of one key OR together, different keys AND; a status or exited filter
    // looks at every container.
    let mut filters: Vec<(String, Vec<String>)> = Vec::new();
    for f in &a.filter {
        let (k, val) = f
            .split_once('=')
            .with_context(|| format!("invalid --filter {f:?}: use KEY=VALUE"))?;
        if !matches!(
            k,
            "status" | "name" | "id" | "label" | "ancestor" | "exited" | "before" | "since"
        ) {
            bail!("invalid --filter {k:?}: use status, name, id, label, ancestor, exited, before or since");
        }
        if k == "status"
            && !matches!(
                val,
                "created"
                    | "running"
                    | "exited"
                    | "paused"
                    | "restarting"
                    | "removing"
                    | "dead"
                    | "damaged"
            )
        {
            bail!("invalid --filter status={val:?}: use created, running or exited");
        }
        match filters.iter_mut().find(|(key, _)| key == k) {
            Some((_, vals)) => vals.push(val.to_string()),
            None => filters.push((k.to_string(), vec![val.to_string()])),
        }
    }
    let all = a.all
        || a.last.is_some()
        || a.latest
        || filters.iter().any(|(k, _)| k == "status" || k == "exited");
    // Views are newest first, so "before X" means a larger index than X's.
    let index_of = |key: &str| -> Result<usize> {
        let id = c.resolve(key)?;
        views
            .iter()
            .position(|v| v.cfg.id == id)
            .context("container vanished")
    };
    let mut keep = Vec::with_capacity(views.len());
    for (i, v) in views.iter().enumerate() {
        let mut ok = all || v.active();
        for (k, vals) in &filters {
            let mut any = false;
            for val in vals {
                any |= match k.as_str() {
                    "status" => ps_item(v, false)["State"] == val.as_str(),
                    "name" => v.cfg.name.contains(val.as_str()),
                    "id" => v.cfg.id.starts_with(val.as_str()),
                    "label" => match val.split_once('=') {
                        Some((lk, lv)) => v.cfg.labels.get(lk).is_some_and(|x| x == lv),
                        None => v.cfg.labels.contains_key(val.as_str()),
                    },
                    "ancestor" => {
                        v.cfg.image == *val
                            || v.cfg
                                .image_id
                                .trim_start_matches("sha256:")
                                .starts_with(val.trim_start_matches("sha256:"))
                            || skiff_store::Reference::parse(val)
                                .is_ok_and(|r| r.to_string() == v.cfg.image)
                    }
                    "exited" => {
                        v.state.status == Status::Exited
                            && v.state.exit_code.map(|x| x.to_string()).as_deref()
                                == Some(val.as_str())
                    }
                    "before" => i > index_of(val)?,
                    _ => i < index_of(val)?,
                };
            }
            ok &= any;
        }
        keep.push(ok);
    }
    let mut views = views;
    let mut selected: Vec<View> = views
        .drain(..)
        .zip(keep)
        .filter(|(_, k)| *k)
        .map(|(v, _)| v)
        .collect();
    if a.latest {
        selected.truncate(1);
    } else if let Some(n) = a.last {
        selected.truncate(n);
    }
    // Damaged records are listed with -a (never dropped without a word); of the filters only
    // status, name and id can judge them.
    let damaged: Vec<_> = if all && !a.latest && a.last.is_none() {
        c.damaged()?
            .into_iter()
            .filter(|d| {
                filters.iter().all(|(k, vals)| {
                    vals.iter().any(|val| match k.as_str() {
                        "status" => val == "damaged",
                        "name" => d.name.as_deref().is_some_and(|n| n.contains(val.as_str())),
                        "id" => d.id.starts_with(val.as_str()),
                        _ => false,
                    })
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    if a.quiet {
        for v in &selected {
            println!(
                "{}",
                if a.no_trunc {
                    v.cfg.id.clone()
                } else {
                    v.cfg.id[..12].to_string()
                }
            );
        }
        for d in &damaged {
            println!(
                "{}",
                damaged_item(d, a.no_trunc)["ID"].as_str().unwrap_or("")
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut items: Vec<serde_json::Value> =
        selected.iter().map(|v| ps_item(v, a.no_trunc)).collect();
    if a.size {
        for (item, v) in items.iter_mut().zip(&selected) {
            item["Size"] =
                serde_json::json!(human::size(dir_size(&c.dir(&v.cfg.id).join("upper"))));
        }
    }
    for d in &damaged {
        let mut item = damaged_item(d, a.no_trunc);
        if a.size {
            item["Size"] = serde_json::json!(human::size(dir_size(&c.dir(&d.id).join("upper"))));
        }
        items.push(item);
    }
    match a.format.as_deref() {
        Some("json") => {
            for i in &items {
                println!("{}", serde_json::to_string(i)?);
            }
        }
        Some(t) => Format::parse(t, &ps_headers())?.print_all(&items)?,
        None => {
            let mut t = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}".to_string();
            if a.size {
                t.push_str("\t{{.Size}}");
            }
            Format::parse(&t, &ps_headers())?.print_all(&items)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn ps_headers() -> HashMap<&'static str, &'static str> {
    HashMap::from([
        ("ID", "CONTAINER ID"),
        ("Image", "IMAGE"),
        ("Command", "COMMAND"),
        ("CreatedAt", "CREATED AT"),
        ("RunningFor", "CREATED"),
        ("Status", "STATUS"),
        ("State", "STATE"),
        ("Ports", "PORTS"),
        ("Names", "NAMES"),
        ("Labels", "LABELS"),
        ("Size", "SIZE"),
        ("ExitCode", "EXIT CODE"),
    ])
}

/// `logs` flags.
#[derive(Args)]
pub struct LogsArgs {
    /// Keep following (until the container exits for good)
    #[arg(short, long)]
    follow: bool,
    /// Show only the last N lines ("all" by default)
    #[arg(long, short = 'n')]
    tail: Option<String>,
    /// Prefix each line with its time
    #[arg(short, long)]
    timestamps: bool,
    /// Only output since this time (RFC 3339, Unix time, or relative like 10m)
    #[arg(long)]
    since: Option<String>,
    /// Only output until this time
    #[arg(long)]
    until: Option<String>,
    /// Container
    container: String,
}

struct LogFilter {
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    timestamps: bool,
}

impl LogFilter {
    /// Prints a record's lines to stdout or stderr, as the container wrote them.
    fn emit(&self, rec: &skiff_runtime::container::logs::Record) {
        let t = DateTime::parse_from_rfc3339(&rec.time)
            .map(|t| t.with_timezone(&Utc))
            .ok();
        if let (Some(s), Some(t)) = (self.since, t) {
            if t < s {
                return;
            }
        }
        if let (Some(u), Some(t)) = (self.until, t) {
            if t > u {
                return;
            }
        }
        let text = if self.timestamps {
            rec.log
                .split_inclusive('\n')
                .map(|l| format!("{} {l}", rec.time))
                .collect()
        } else {
            rec.log.clone()
        };
        if rec.stream == "stderr" {
            let _ = std::io::stderr().write_all(text.as_bytes());
        } else {
            let mut out = std::io::stdout();
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        }
    }
}

/// `skiff logs`.
pub fn logs(a: LogsArgs) -> Result<ExitCode> {
    let (_, c) = containers()?;
    let id = c.resolve(&a.container)?;
    let filter = LogFilter {
        since: a.since.as_deref().map(parse_time).transpose()?,
        until: a.until.as_deref().map(parse_time).transpose()?,
        timestamps: a.timestamps,
    };
    let tail: Option<usize> = match a.tail.as_deref() {
        None | Some("all") | Some("-1") => None,
        Some(n) => Some(
            n.parse()
                .with_context(|| format!("invalid --tail {n:?}: use a number or all"))?,
        ),
    };
    let path = c.log_path(&id);
    let mut file =
        std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    // --tail counts lines, and one record may hold several lines (or part of one): split them.
    let records: Vec<skiff_runtime::container::logs::Record> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<skiff_runtime::container::logs::Record>(l).ok())
        .flat_map(|r| {
            r.log
                .split_inclusive('\n')
                .map(|part| skiff_runtime::container::logs::Record {
                    log: part.to_string(),
                    stream: r.stream.clone(),
                    time: r.time.clone(),
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let start = tail.map(|n| records.len().saturating_sub(n)).unwrap_or(0);
    for r in &records[start..] {
        filter.emit(r);
    }
    if !a.follow {
        return Ok(ExitCode::SUCCESS);
    }
    // Follow: read what is appended; stop once the container is down and its monitor gone (so a
    // restart policy's next run is followed too).
    let mut offset = text.len() as u64;
    let mut pending = String::new();
    loop {
        let before = offset;
        if let Ok(mut f) = std::fs::File::open(&path) {
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            if len < offset {
                offset = 0; // the log was trimmed and rewritten
            }
            f.seek(SeekFrom::Start(offset))?;
            let mut more = String::new();
            f.read_to_string(&mut more)?;
            offset += more.len() as u64;
            pending.push_str(&more);
            while let Some(nl) = pending.find('\n') {
                let line: String = pending.drain(..=nl).collect();
                if let Ok(r) = serde_json::from_str::<skiff_runtime::container::logs::Record>(&line)
                {
                    filter.emit(&r);
                }
            }
        }
        if offset == before {
            let v = c.view(&id)?;
            if !v.running() && !v.monitor_alive() {
                return Ok(ExitCode::SUCCESS);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Docker's `{"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}` for the published ports.
fn port_bindings(v: &View) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for p in &v.cfg.ports {
        let key = format!("{}/{}", p.container_port, p.protocol);
        let entry = serde_json::json!({ "HostIp": p.host_ip_or_any(), "HostPort": p.host_port.to_string() });
        match m.get_mut(&key).and_then(|e| e.as_array_mut()) {
            Some(list) => list.push(entry),
            None => {
                m.insert(key, serde_json::json!([entry]));
            }
        }
    }
    serde_json::Value::Object(m)
}

/// `port` flags.
#[derive(Args)]
pub struct PortArgs {
    /// Container
    container: String,
    /// Only this container port (PORT or PORT/PROTO)
    port: Option<String>,
}

/// `skiff port`: the container's published ports, as `80/tcp -> 0.0.0.0:8080`.
pub fn port(a: PortArgs) -> Result<ExitCode> {
    let (_, c) = containers()?;
    let id = c.resolve(&a.container)?;
    let v = c.view(&id)?;
    let want = a.port.as_deref().map(|p| {
        if p.contains('/') {
            p.to_string()
        } else {
            format!("{p}/tcp")
        }
    });
    let mut shown = 0;
    for p in &v.cfg.ports {
        let key = format!("{}/{}", p.container_port, p.protocol);
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

/// Docker's one-word state: created, running, restarting or exited.
fn state_word(v: &View) -> &'static str {
    match v.state.status {
        _ if v.restarting() => "restarting",
        _ if v.paused() => "paused",
        Status::Created => "created",
        Status::Running => "running",
        Status::Exited => "exited",
    }
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
    serde_json::json!({
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
            "Error": st.error.clone().unwrap_or_default(),
        },
        "Image": v.cfg.image_id,
        "ImageName": v.cfg.image,
        "Name": format!("/{}", v.cfg.name),
        "RestartCount": st.restart_count,
        "Config": {
            "Hostname": v.cfg.hostname, "User": v.cfg.process.user, "Env": v.cfg.process.env,
            "Cmd": v.cfg.cmd, "Entrypoint": v.cfg.entrypoint, "WorkingDir": v.cfg.process.cwd,
            "Labels": v.cfg.labels, "Image": v.cfg.image, "Tty": v.cfg.process.terminal,
            "OpenStdin": v.cfg.process.stdin, "StopSignal": v.cfg.stop_signal,
        },
        "HostConfig": {
            "NetworkMode": v.cfg.network, "PortBindings": port_bindings(v),
            "Memory": v.cfg.limits.memory.unwrap_or(0), "PidsLimit": v.cfg.limits.pids.unwrap_or(0),
            "NanoCpus": v.cfg.limits.cpu_micros.unwrap_or(0) * 1000, "ReadonlyRootfs": v.cfg.read_only, "Privileged": v.cfg.privileged,
            "CapAdd": v.cfg.cap_add, "CapDrop": v.cfg.cap_drop, "AutoRemove": v.cfg.auto_remove, "Init": v.cfg.init,
            "RestartPolicy": { "Name": v.cfg.restart.name(), "MaximumRetryCount": v.cfg.restart.max_retries() },
            "SecurityOpt": if v.cfg.seccomp { Vec::<String>::new() } else { vec!["seccomp=unconfined".to_string()] },
        },
        "Mounts": mounts,
        "NetworkSettings": {
            "Networks": { v.cfg.network.as_str(): {} },
            "Ports": port_bindings(v),
            // slirp4netns always gives the container this address (and the gateway 10.0.2.2).
            "IPAddress": v.cfg.network.address().map_or("", |a| a.0),
            "Gateway": v.cfg.network.address().map_or("", |a| a.1),
        },
        "LogPath": c.log_path(&v.cfg.id),
    })
}

/// `stop`/`restart` flags.
#[derive(Args)]
pub struct StopArgs {
    /// Seconds to wait before SIGKILL
    #[arg(short = 't', long = "time", alias = "timeout")]
    time: Option<u64>,
    /// Signal to send first (default: the image's StopSignal or SIGTERM)
    #[arg(short, long)]
    signal: Option<String>,
    /// Containers
    #[arg(required = true)]
    containers: Vec<String>,
}

fn stop_one(
    c: &Containers,
    key: &str,
    time: Option<u64>,
    signal: &Option<String>,
) -> std::result::Result<String, skiff_runtime::Error> {
    let id = c.resolve(key)?;
    let (cfg, _) = c.load(&id)?;
    let sig = signal
        .clone()
        .or(cfg.stop_signal.clone())
        .unwrap_or_else(|| "SIGTERM".into());
    let sig = signal_number(&sig).map_err(|e| skiff_runtime::Error::Invalid(e.to_string()))?;
    let timeout = Duration::from_secs(time.or(cfg.stop_timeout).unwrap_or(10));
    c.stop(&id, timeout, sig)?;
    Ok(id)
}

/// `skiff stop`.
pub fn stop(a: StopArgs) -> Result<ExitCode> {
    let (_, c) = containers()?;
    Ok(for_each(&a.containers, |k| {
        stop_one(&c, k, a.time, &a.signal)?;
        println!("{k}");
        Ok(())
    }))
}

/// `skiff restart`.
pub fn restart(a: StopArgs) -> Result<ExitCode> {
    let (_, c) = containers()?;
    Ok(for_each(&a.containers, |k| {
        let id = stop_one(&c, k, a.time, &a.signal)?;
        start_one(&c, &id)?;
        println!("{k}");
        Ok(())
    }))
}

fn start_one(c: &Containers, id: &str) -> std::result::Result<(), skiff_runtime::Error> {
    let v = c.view(id)?;
    if v.active() {
        return Ok(());
    }
    c.clear_stopped_by_user(id)?;
    match crate::run::start_monitor(id, false, true) {
        Ok(code) if code == ExitCode::SUCCESS => Ok(()),
        Ok(_) => Err(skiff_runtime::Error::Setup(format!(
            "container {} failed to start",
            v.cfg.name
        ))),
        Err(e) => Err(skiff_runtime::Error::Setup(e.to_string())),
    }
}

/// `start` flags.
#[derive(Args)]
pub struct StartArgs {
    /// Attach to the container's output (and exit with its code)
    #[arg(short, long)]
    attach: bool,
    /// Attach stdin (as it was set up at create time with -i)
    #[arg(short, long)]
    interactive: bool,
    /// Containers
    #[arg(required = true)]
    containers: Vec<String>,
}

/// `skiff start`.
pub fn start(a: StartArgs) -> Result<ExitCode> {
    let (_, c) = containers()?;
    if a.attach || a.interactive {
        if a.containers.len() != 1 {
            bail!("start -a attaches to one container at a time");
        }
        let id = c.resolve(&a.containers[0])?;
        if c.view(&id)?.active() {
            bail!("container {} is already running", a.containers[0]);
        }
        c.clear_stopped_by_user(&id)?;
        return crate::run::start_monitor(&id, true, true);
    }
    Ok(for_each(&a.containers, |k| {
        let id = c.resolve(k)?;
        start_one(&c, &id)?;
        println!("{k}");
        Ok(())
    }))
}

/// `kill` flags.
#[derive(Args)]
pub struct KillArgs {
    /// Signal (default KILL)
    #[arg(short, long, default_value = "KILL")]
    signal: String,
    /// Containers
    #[arg(required = true)]
    containers: Vec<String>,
}

/// `skiff kill`.
pub fn kill(a: KillArgs) -> Result<ExitCode> {
    let sig = signal_number(&a.signal)?;
    let (_, c) = containers()?;
    Ok(for_each(&a.containers, |k| {
        let id = c.resolve(k)?;
        if sig == libc::SIGKILL || sig == libc::SIGTERM {
            // A kill from the user is a stop: restart policies leave it down (except `always`
            // after a daemon restart, which skiff has no notion of).
            c.mark_stopped_by_user(&id)?;
        }
        c.kill(&id, sig)?;
        println!("{k}");
        Ok(())
    }))
}

/// `skiff wait`.
pub fn wait(names: Vec<String>) -> Result<ExitCode> {
    let (_, c) = containers()?;
    Ok(for_each(&names, |k| {
        let id = c.resolve(k)?;
        // Down for good: not running and no monitor left to restart it.
        let v = loop {
            let v = c.wait_exit(&id, None)?;
            if !v.monitor_alive() || v.state.status == Status::Created {
                break v;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        println!("{}", v.state.exit_code.unwrap_or(-1));
        Ok(())
    }))
}

/// `rm` flags.
#[derive(Args)]
pub struct RmArgs {
    /// Kill a running container first
    #[arg(short, long)]
    force: bool,
    /// Also remove its anonymous volumes
    #[arg(short, long)]
    volumes: bool,
    /// Containers
    #[arg(required = true)]
    containers: Vec<String>,
}

pub(crate) fn remover(dirs: &Dirs) -> impl Fn(&std::path::Path) -> skiff_runtime::Result<()> {
    let slow = unpacker::for_this_user(dirs);
    move |p: &std::path::Path| match skiff_store::unpack::remove_tree(p) {
        Ok(()) => Ok(()),
        Err(_) => Ok(slow.remove(p)?),
    }
}

fn anonymous(m: &skiff_runtime::MountSpec) -> bool {
    m.kind == skiff_runtime::MountKind::Volume
        && m.name
            .as_deref()
            .is_some_and(skiff_runtime::container::volumes::is_anonymous)
}

/// `skiff rm`.
pub fn rm(a: RmArgs) -> Result<ExitCode> {
    let (dirs, c) = containers()?;
    let remove = remover(&dirs);
    Ok(for_each(&a.containers, |k| {
        let id = c.resolve(k)?;
        // A damaged record is removed too (its config may be what is damaged).
        let cfg = c.load(&id).ok().map(|(cfg, _)| cfg);
        c.remove(&id, a.force, &remove)?;
        if a.volumes {
            for m in cfg.iter().flat_map(|c| &c.mounts).filter(|m| anonymous(m)) {
                remove(&m.source)?;
            }
        }
        println!("{k}");
        Ok(())
    }))
}

/// `container prune` flags.
#[derive(Args)]
pub struct PruneArgs {
    /// Do not ask
    #[arg(short, long)]
    force: bool,
    /// until=TIME: only containers created before
    #[arg(long, action = ArgAction::Append)]
    filter: Vec<String>,
}

/// `skiff container prune`.
pub fn prune(a: PruneArgs) -> Result<ExitCode> {
    let mut until = None;
    for f in &a.filter {
        match f.split_once('=') {
            Some(("until", t)) => until = Some(parse_time(t)?),
            _ => bail!("invalid --filter {f:?}: container prune knows until=TIME"),
        }
    }
    if !a.force
        && !crate::prompt::confirm(
            "container prune",
            "WARNING! This will remove all stopped containers.",
        )?
    {
        return Ok(ExitCode::SUCCESS);
    }
    println!("Deleted Containers:");
    let freed = prune_stopped(until)?;
    println!("\nTotal reclaimed space: {}", human::size(freed));
    Ok(ExitCode::SUCCESS)
}

/// Removes every stopped container (created before `until`, if given), printing each id;
/// returns the bytes their upper dirs held. Shared by `container prune` and `system prune`.
pub(crate) fn prune_stopped(until: Option<DateTime<Utc>>) -> Result<u64> {
    let (dirs, c) = containers()?;
    let remove = remover(&dirs);
    let mut freed = 0u64;
    for v in c.views()? {
        if v.active() {
            continue;
        }
        if let (Some(u), Ok(created)) = (until, DateTime::parse_from_rfc3339(&v.cfg.created)) {
            if created.with_timezone(&Utc) >= u {
                continue;
            }
        }
        let size = dir_size(&c.dir(&v.cfg.id).join("upper"));
        match c.remove(&v.cfg.id, false, &remove) {
            Ok(()) => {
                freed += size;
                println!("{}", v.cfg.id);
            }
            Err(e) => eprintln!("Error: {e}"),
        }
    }
    // Damaged records go too, unless a monitor of theirs lives (they may be running) or they
    // are not older than `until` (unknown creation times are kept when `until` is given).
    for d in c.damaged()? {
        if !skiff_runtime::container::records::monitors_of(&d.id).is_empty() {
            continue;
        }
        if let Some(u) = until {
            let old = d
                .created
                .as_deref()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .is_some_and(|t| t.with_timezone(&Utc) < u);
            if !old {
                continue;
            }
        }
        let size = dir_size(&c.dir(&d.id).join("upper"));
        match c.remove(&d.id, false, &remove) {
            Ok(()) => {
                freed += size;
                println!("{}", d.id);
            }
            Err(e) => eprintln!("Error: {e}"),
        }
    }
    Ok(freed)
}

/// `skiff rename`.
pub fn rename(old: &str, new: &str) -> Result<ExitCode> {
    let (_, c) = containers()?;
    let id = c.resolve(old)?;
    c.rename(&id, new)?;
    Ok(ExitCode::SUCCESS)
}

/// `skiff top`.
pub fn top(name: &str) -> Result<ExitCode> {
    let (_, c) = containers()?;
    let id = c.resolve(name)?;
    let mut lines = vec!["PID\tUID\tCOMMAND".to_string()];
    for (pid, uid, cmd) in c.top(&id)? {
        lines.push(format!("{pid}\t{uid}\t{cmd}"));
    }
    crate::format::print_aligned(&lines);
    Ok(ExitCode::SUCCESS)
}

/// `exec` flags.
#[derive(Args)]
pub struct ExecArgs {
    /// Run in the background
    #[arg(short, long)]
    detach: bool,
    /// Keep stdin open (without it the command reads /dev/null)
    #[arg(short, long)]
    interactive: bool,
    /// Give the command a new terminal in the container, relayed to skiff's
    #[arg(short, long)]
    tty: bool,
    /// Environment (KEY=VALUE or KEY)
    #[arg(short, long, action = ArgAction::Append)]
    env: Vec<String>,
    /// Environment file
    #[arg(long, action = ArgAction::Append)]
    env_file: Vec<std::path::PathBuf>,
    /// user[:group]
    #[arg(short, long)]
    user: Option<String>,
    /// Working directory
    #[arg(short, long)]
    workdir: Option<String>,
    /// Container
    container: String,
    /// Command
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    command: Vec<String>,
}

/// `skiff exec`.
pub fn exec(a: ExecArgs) -> Result<ExitCode> {
    // The process that joins the container runs from a sealed copy of skiff (CVE-2019-5736).
    skiff_runtime::process::exec::run_from_sealed_copy()?;
    let (_, c) = containers()?;
    let id = c.resolve(&a.container)?;
    let mut env = Vec::new();
    for f in &a.env_file {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("--env-file {}", f.display()))?;
        env.extend(
            text.lines()
                .map(skiff_runtime::spec::env_file_line)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from),
        );
    }
    env.extend(a.env.iter().cloned());
    let env = env
        .into_iter()
        .filter_map(|e| {
            if e.contains('=') {
                Some(e)
            } else {
                std::env::var(&e).ok().map(|v| format!("{e}={v}"))
            }
        })
        .collect();
    let o = ExecOptions {
        args: a.command,
        env,
        user: a.user,
        workdir: a.workdir,
        detach: a.detach,
        interactive: a.interactive,
        tty: a.tty,
    };
    match skiff_runtime::process::exec::exec_in(&c, &id, &o) {
        Ok(code) => Ok(ExitCode::from(u8::try_from(code).unwrap_or(125))),
        Err(skiff_runtime::Error::Exec(code, msg)) => {
            eprintln!("Error: {msg}");
            Ok(ExitCode::from(u8::try_from(code).unwrap_or(125)))
        }
        Err(e) => Err(e.into()),
    }
}

/// `cp` flags.
#[derive(Args)]
pub struct CpArgs {
    /// Keep the owners of copied files (by default they become root's in the container)
    #[arg(short, long)]
    archive: bool,
    /// CONTAINER:PATH, a host path, or - (a tar stream on stdin, unpacked into a directory)
    src: String,
    /// CONTAINER:PATH, a host path, or - (a tar stream on stdout)
    dest: String,
}

/// `CONTAINER:PATH` as Docker reads it: a colon before any slash.
fn container_path(arg: &str) -> Option<(&str, &str)> {
    let (c, p) = arg.split_once(':')?;
    (!c.is_empty() && !c.contains('/')).then_some((c, p))
}

/// `skiff cp`: between the host and a container, either way. A running container is reached
/// through its namespaces; a created or exited one through its root file system, mounted by a
/// helper (`skiff __cp`) in a private mount namespace.
pub fn cp(a: CpArgs) -> Result<ExitCode> {
    use skiff_runtime::files::copy;
    let (_, c) = containers()?;
    match (container_path(&a.src), container_path(&a.dest)) {
        (Some((ctr, path)), None) if a.dest == "-" => {
            let id = c.resolve(ctr)?;
            return cp_out_to_stdout(&c, &id, path);
        }
        (None, Some((ctr, path))) if a.src == "-" => {
            let id = c.resolve(ctr)?;
            if !path.starts_with('/') {
                bail!("the path in the container must be absolute: {ctr}:/{path}");
            }
            if std::io::stdin().is_terminal() {
                bail!("cp - reads a tar archive from stdin: redirect stdin from one");
            }
            let bytes = copy::read_stream(std::io::stdin().lock(), a.archive)?;
            if c.view(&id)?.running() {
                copy::copy_in_tar(&c, &id, &bytes, path)?;
            } else {
                let mut child =
                    crate::unpacker::spawn_helper(&["__cp", "in", &id, path, copy::STREAM])?;
                let sent = child
                    .stdin
                    .take()
                    .context("helper input")?
                    .write_all(&bytes);
                if !child.wait()?.success() {
                    return Ok(ExitCode::from(125));
                }
                sent.context("sending the copy")?;
            }
        }
        (Some((ctr, path)), None) => {
            let id = c.resolve(ctr)?;
            let dest = std::path::Path::new(&a.dest);
            if c.view(&id)?.running() {
                copy::copy_out(&c, &id, path, dest)?;
            } else {
                let (into, top) = copy::plan_out(path, dest)?;
                let mut child = crate::unpacker::spawn_helper(&["__cp", "out", &id, path, &top])?;
                let out = child.stdout.take().context("helper output")?;
                let unpacked = skiff_store::unpack::unpack_archive(
                    out,
                    &into,
                    skiff_store::unpack::UnpackOptions::default(),
                );
                let status = child.wait()?;
                if !status.success() {
                    // The helper said why, on its one error line.
                    return Ok(ExitCode::from(125));
                }
                unpacked.with_context(|| format!("writing to {}", dest.display()))?;
            }
        }
        (None, Some((ctr, path))) => {
            let id = c.resolve(ctr)?;
            if !path.starts_with('/') {
                bail!("the path in the container must be absolute: {ctr}:/{path}");
            }
            let src = std::path::Path::new(&a.src);
            if c.view(&id)?.running() {
                copy::copy_in(&c, &id, src, path, a.archive)?;
            } else {
                let (bytes, name) = copy::archive_of(src, a.archive)?;
                let mut child = crate::unpacker::spawn_helper(&["__cp", "in", &id, path, &name])?;
                let sent = child
                    .stdin
                    .take()
                    .context("helper input")?
                    .write_all(&bytes);
                let status = child.wait()?;
                if !status.success() {
                    return Ok(ExitCode::from(125));
                }
                sent.context("sending the copy")?;
            }
        }
        (Some(_), Some(_)) => {
            bail!("copying between containers is not supported: copy to the host first")
        }
        (None, None) => bail!("one of the paths must be CONTAINER:PATH"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `skiff cp CTR:PATH -`: the copy as a tar stream on stdout (never a file named `-`).
fn cp_out_to_stdout(c: &Containers, id: &str, path: &str) -> Result<ExitCode> {
    use skiff_runtime::files::copy;
    if std::io::stdout().is_terminal() {
        bail!("refusing to write a tar archive to a terminal: redirect stdout (skiff cp CTR:PATH - > file.tar)");
    }
    let mut out = std::io::stdout().lock();
    if c.view(id)?.running() {
        copy::copy_out_tar(c, id, path, &mut out)?;
    } else {
        let top = copy::top_name(path);
        let mut child = crate::unpacker::spawn_helper(&["__cp", "out", id, path, &top])?;
        let mut from = child.stdout.take().context("helper output")?;
        let copied = std::io::copy(&mut from, &mut out);
        if !child.wait()?.success() {
            // The helper said why, on its one error line.
            return Ok(ExitCode::from(125));
        }
        copied.context("writing the archive to stdout")?;
    }
    out.flush().context("writing the archive to stdout")?;
    Ok(ExitCode::SUCCESS)
}

/// `skiff __cp in|out ID PATH NAME`: the helper side of `cp` on a stopped container.
pub fn cp_helper(direction: &str, id: &str, path: &str, name: &str) -> Result<ExitCode> {
    let (_, c) = containers()?;
    skiff_runtime::files::copy::helper_main(&c, id, direction, path, name)?;
    Ok(ExitCode::SUCCESS)
}

/// `stats` flags.
#[derive(Args)]
pub struct StatsArgs {
    /// Print one reading and exit
    #[arg(long)]
    no_stream: bool,
    /// Go template (.ID .Name .CPUPerc .MemUsage .MemPerc .NetIO .BlockIO .PIDs), table, or json
    #[arg(long)]
    format: Option<String>,
    /// Containers (default: every running one)
    containers: Vec<String>,
}

/// `skiff stats`: CPU, memory, network, block I/O and pids of running containers, from /proc.
pub fn stats(a: StatsArgs) -> Result<ExitCode> {
    let (_, c) = containers()?;
    let ids: Vec<String> = if a.containers.is_empty() {
        c.views()?
            .into_iter()
            .filter(|v| v.running())
            .map(|v| v.cfg.id)
            .collect()
    } else {
        a.containers
            .iter()
            .map(|k| c.resolve(k))
            .collect::<std::result::Result<_, _>>()?
    };
    let headers = HashMap::from([
        ("ID", "CONTAINER ID"),
        ("Name", "NAME"),
        ("CPUPerc", "CPU %"),
        ("MemUsage", "MEM USAGE / LIMIT"),
        ("MemPerc", "MEM %"),
        ("NetIO", "NET I/O"),
        ("BlockIO", "BLOCK I/O"),
        ("PIDs", "PIDS"),
    ]);
    let template = a.format.clone().unwrap_or_else(|| {
        "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}".into()
    });
    let tty = std::io::stdout().is_terminal();
    let host_mem = skiff_runtime::container::stats::host_memory();
    let hz = skiff_runtime::container::stats::ticks_per_second() as f64;
    let mut before: HashMap<String, (Instant, u64)> = HashMap::new();
    loop {
        // CPU % needs two readings: the first pass only takes the baseline.
        if before.is_empty() {
            for id in &ids {
                if let Ok(s) = c.sample(id) {
                    before.insert(id.clone(), (Instant::now(), s.cpu_ticks));
                }
            }
            std::thread::sleep(Duration::from_millis(if a.no_stream { 500 } else { 1000 }));
        }
        let mut rows = Vec::new();
        for id in &ids {
            let v = c.view(id)?;
            let Ok(s) = c.sample(id) else {
                continue;
            };
            let now = Instant::now();
            let cpu = before
                .get(id)
                .map(|(t, ticks)| {
                    let secs = now.duration_since(*t).as_secs_f64().max(1e-3);
                    s.cpu_ticks.saturating_sub(*ticks) as f64 / hz / secs * 100.0
                })
                .unwrap_or(0.0);
            before.insert(id.clone(), (now, s.cpu_ticks));
            let limit = v.cfg.limits.memory.unwrap_or(host_mem);
            let pair = |(x, y): (u64, u64)| format!("{} / {}", human::size(x), human::size(y));
            rows.push(serde_json::json!({
                "ID": &v.cfg.id[..12], "Name": v.cfg.name,
                "CPUPerc": format!("{cpu:.2}%"),
                "MemUsage": format!("{} / {}", human::size(s.rss), human::size(limit)),
                "MemPerc": format!("{:.2}%", if limit > 0 { s.rss as f64 * 100.0 / limit as f64 } else { 0.0 }),
                "NetIO": s.net.map(pair).unwrap_or_else(|| "-- (host network)".into()),
                "BlockIO": pair(s.block),
                "PIDs": s.pids.to_string(),
            }));
        }
        if a.format.as_deref() == Some("json") {
            println!("{}", serde_json::to_string(&rows)?);
        } else {
            let f = crate::format::Format::parse(&template, &headers)?;
            if tty && !a.no_stream {
                print!("\x1b[2J\x1b[H");
            }
            f.print_all(&rows)?;
        }
        if a.no_stream {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// `skiff pause` and `skiff unpause`.
pub fn pause(names: &[String], on: bool) -> Result<ExitCode> {
    let (_, c) = containers()?;
    Ok(for_each(names, |k| {
        let id = c.resolve(k)?;
        if on {
            c.pause(&id)?;
        } else {
            c.unpause(&id)?;
        }
        println!("{k}");
        Ok(())
    }))
}

/// `commit` flags.
#[derive(Args)]
pub struct CommitArgs {
    /// Author of the new image
    #[arg(short, long)]
    author: Option<String>,
    /// Commit message
    #[arg(short, long)]
    message: Option<String>,
    /// Pause a running container while its changes are read (default true)
    #[arg(short, long, default_value_t = true, action = ArgAction::Set)]
    pause: bool,
    /// Container
    container: String,
    /// Name of the new image: REPOSITORY[:TAG]
    name: String,
}

/// `skiff commit`: a new image from a container's changes (its `upper/` as one more layer) and
/// its settings, as Docker's.
pub fn commit(a: CommitArgs) -> Result<ExitCode> {
    let (dirs, c) = containers()?;
    let id = c.resolve(&a.container)?;
    let v = c.view(&id)?;
    let base = skiff_store::Digest::parse(&v.cfg.image_id)?;
    let store = skiff_store::ImageStore::open(dirs.clone())?;
    // Refused names and a vanished base fail here, before the container is paused or its
    // changes are read.
    let target = store.commit_target(&base, &a.name)?;
    let paused = a.pause && v.running() && !v.paused() && c.pause(&id).is_ok();
    let upper = c.dir(&id).join("upper");
    let settings = skiff_store::commit::CommitSettings {
        entrypoint: v.cfg.entrypoint.clone(),
        cmd: v.cfg.cmd.clone(),
        env: v.cfg.process.env.clone(),
        workdir: v.cfg.process.cwd.clone(),
        user: v.cfg.process.user.clone(),
        labels: v.cfg.labels.clone(),
        author: a.author.clone(),
        message: a.message.clone(),
    };
    let unpacker = crate::unpacker::for_this_user(&dirs);
    let result = if skiff_runtime::userns::identity::Identity::current().is_root() {
        let (r, w) = std::io::pipe().context("a pipe for the layer")?;
        let packer =
            std::thread::spawn(move || skiff_runtime::files::commit::pack_upper(&upper, w));
        let made = store.commit(&target, r, &settings, &*unpacker);
        let packed = packer
            .join()
            .map_err(|_| anyhow::anyhow!("reading the container's changes failed"))?;
        // The store's error first: when it stops reading early, the packer's broken pipe follows.
        made.map_err(anyhow::Error::from).and_then(|id| {
            packed
                .map(|_| id)
                .context("reading the container's changes")
        })
    } else {
        let upper_s = upper.to_string_lossy().into_owned();
        let mut child = crate::unpacker::spawn_helper(&["__pack-upper", &upper_s])?;
        let out = child.stdout.take().context("helper output")?;
        let made = store.commit(&target, out, &settings, &*unpacker);
        let status = child.wait()?;
        match made {
            // The helper's failure printed its own error line.
            Ok(_) if !status.success() => return Ok(ExitCode::from(125)),
            other => other.map_err(anyhow::Error::from),
        }
    };
    if paused {
        let _ = c.unpause(&id);
    }
    println!("{}", result?);
    Ok(ExitCode::SUCCESS)
}

/// `skiff __pack-upper DIR`: the layer tar of a container's changes on stdout (runs as root of
/// the user's mapped namespace, where every file can be read).
pub fn pack_upper_helper(dir: &std::path::Path) -> Result<ExitCode> {
    skiff_runtime::files::commit::pack_upper(dir, std::io::stdout().lock())
        .with_context(|| format!("reading {}", dir.display()))?;
    Ok(ExitCode::SUCCESS)
}
