//! skiff's container spec and events as the plugin world's types, and a plugin's edits as the
//! runtime's adjustments: the one place both vocabularies meet. Also the JSON forms
//! `plugin test` reads and prints.

use anyhow::{bail, Result};
use serde_json::{json, Value};
use skiff_plugins::bindings::wit;
use skiff_runtime::container::config::MountKind;
use skiff_runtime::hooks::{ExitEvent, StartEvent};
use skiff_runtime::spec::adjust::Adjustment;
use skiff_runtime::spec::ContainerSpec;

/// The spec a before-create or validate hook sees.
pub fn to_wit(name: Option<&str>, s: &ContainerSpec) -> wit::ContainerSpec {
    let pair = |e: &String| match e.split_once('=') {
        Some((k, v)) => (k.to_string(), v.to_string()),
        None => (e.clone(), String::new()),
    };
    wit::ContainerSpec {
        image: s.image.clone(),
        image_id: s.image_id.clone(),
        image_digest: s.image.split_once('@').map(|(_, d)| d.to_string()),
        name: name.map(String::from),
        entrypoint: s.entrypoint.clone(),
        cmd: s.cmd.clone(),
        args: s.process.args.clone(),
        env: s.process.env.iter().map(pair).collect(),
        user: s.process.user.clone(),
        workdir: s.process.cwd.clone(),
        labels: s
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        mounts: s
            .mounts
            .iter()
            .map(|m| wit::Mount {
                kind: match m.kind {
                    MountKind::Bind => wit::MountKind::Bind,
                    MountKind::Volume => wit::MountKind::Volume,
                    MountKind::Tmpfs => wit::MountKind::Tmpfs,
                },
                source: match m.kind {
                    MountKind::Volume => m.name.clone().unwrap_or_default(),
                    _ => m.source.to_string_lossy().into_owned(),
                },
                destination: m.destination.clone(),
                read_only: m.readonly,
            })
            .collect(),
        network: s.network.as_str().to_string(),
        ports: s
            .ports
            .iter()
            .map(|p| wit::Port {
                host_ip: p.host_ip.clone(),
                host_port: p.host_port,
                container_port: p.container_port,
                protocol: p.protocol.clone(),
            })
            .collect(),
        cap_add: s.cap_add.clone(),
        cap_drop: s.cap_drop.clone(),
        privileged: s.privileged,
        read_only: s.read_only,
        limits: wit::Limits {
            memory: s.limits.memory,
            pids: s.limits.pids,
            cpu_micros: s.limits.cpu_micros,
        },
        hostname: s.hostname.clone(),
        restart: s.restart.name().to_string(),
        auto_remove: s.auto_remove,
    }
}

/// A plugin's edit as the runtime's adjustment.
pub fn adjustment(e: wit::Edit) -> Adjustment {
    use wit::Edit as E;
    match e {
        E::SetEnv((k, v)) => Adjustment::SetEnv(k, v),
        E::RemoveEnv(k) => Adjustment::RemoveEnv(k),
        E::SetLabel((k, v)) => Adjustment::SetLabel(k, v),
        E::RemoveLabel(k) => Adjustment::RemoveLabel(k),
        E::AddMount(m) => Adjustment::AddMount {
            kind: match m.kind {
                wit::MountKind::Bind => MountKind::Bind,
                wit::MountKind::Volume => MountKind::Volume,
                wit::MountKind::Tmpfs => MountKind::Tmpfs,
            },
            source: m.source,
            destination: m.destination,
            read_only: m.read_only,
        },
        E::RemoveMount(d) => Adjustment::RemoveMount(d),
        E::SetArgs(a) => Adjustment::SetArgs(a),
        E::SetHostname(h) => Adjustment::SetHostname(h),
        E::SetUser(u) => Adjustment::SetUser(u),
        E::SetWorkdir(w) => Adjustment::SetWorkdir(w),
        E::SetMemory(n) => Adjustment::SetMemory(n),
        E::SetPids(n) => Adjustment::SetPids(n),
        E::SetCpuMicros(n) => Adjustment::SetCpuMicros(n),
        E::AddCapability(c) => Adjustment::AddCapability(c),
        E::DropCapability(c) => Adjustment::DropCapability(c),
        E::SetPrivileged(p) => Adjustment::SetPrivileged(p),
        E::SetNetwork(n) => Adjustment::SetNetwork(n),
        E::SetReadOnly(r) => Adjustment::SetReadOnly(r),
    }
}

/// The events, as the world spells them.
pub fn start_event(e: &StartEvent) -> wit::StartEvent {
    wit::StartEvent {
        id: e.id.clone(),
        name: e.name.clone(),
        image: e.image.clone(),
        pid: e.pid,
    }
}

/// See `start_event`.
pub fn exit_event(e: &ExitEvent) -> wit::ExitEvent {
    wit::ExitEvent {
        id: e.id.clone(),
        name: e.name.clone(),
        image: e.image.clone(),
        exit_code: e.exit_code,
        signal: e.signal,
        oom_killed: e.oom_killed,
        duration_ms: e.duration_ms,
        will_restart: e.will_restart,
        removing: e.removing,
    }
}

/// A spec from `plugin test` JSON: the world's field names (snake_case or kebab-case), every
/// field optional (`{"image": "busybox", "privileged": true}`).
pub fn spec_from_json(v: &Value) -> Result<wit::ContainerSpec> {
    let Some(o) = v.as_object() else {
        bail!("the before-create input must be a JSON object of spec fields, like {{\"image\": \"busybox\", \"privileged\": true}}");
    };
    let get = |k: &str| o.get(k).or_else(|| o.get(&k.replace('_', "-")));
    let s = |k: &str| get(k).and_then(Value::as_str).map(String::from);
    let b = |k: &str| get(k).and_then(Value::as_bool).unwrap_or(false);
    let list = |k: &str| -> Vec<String> {
        get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let pairs = |k: &str| -> Vec<(String, String)> {
        match get(k) {
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect(),
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|x| x.as_str())
                .map(|e| match e.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (e.to_string(), String::new()),
                })
                .collect(),
            _ => Vec::new(),
        }
    };
    let n = |o: Option<&Value>, k: &str| o.and_then(|l| l.get(k)).and_then(Value::as_u64);
    let limits = get("limits");
    let image = s("image").unwrap_or_default();
    let cmd = list("cmd");
    let args = if get("args").is_some() {
        list("args")
    } else {
        cmd.clone()
    };
    Ok(wit::ContainerSpec {
        image_digest: s("image_digest").or_else(|| image.split_once('@').map(|(_, d)| d.into())),
        image,
        image_id: s("image_id").unwrap_or_default(),
        name: s("name"),
        entrypoint: list("entrypoint"),
        cmd,
        args,
        env: pairs("env"),
        user: s("user").unwrap_or_default(),
        workdir: s("workdir").unwrap_or_else(|| "/".into()),
        labels: pairs("labels"),
        mounts: Vec::new(),
        network: s("network").unwrap_or_else(|| "host".into()),
        ports: Vec::new(),
        cap_add: list("cap_add"),
        cap_drop: list("cap_drop"),
        privileged: b("privileged"),
        read_only: b("read_only"),
        limits: wit::Limits {
            memory: n(limits, "memory"),
            pids: n(limits, "pids"),
            cpu_micros: n(limits, "cpu_micros"),
        },
        hostname: s("hostname"),
        restart: s("restart").unwrap_or_else(|| "no".into()),
        auto_remove: b("auto_remove"),
    })
}

/// An edit as `plugin test` prints it: `{"set-label": ["k", "v"]}`.
pub fn edit_json(e: &wit::Edit) -> Value {
    use wit::Edit as E;
    match e {
        E::SetEnv((k, v)) => json!({"set-env": [k, v]}),
        E::RemoveEnv(k) => json!({"remove-env": k}),
        E::SetLabel((k, v)) => json!({"set-label": [k, v]}),
        E::RemoveLabel(k) => json!({"remove-label": k}),
        E::AddMount(m) => json!({"add-mount": {
            "kind": format!("{:?}", m.kind).to_lowercase(), "source": m.source,
            "destination": m.destination, "read-only": m.read_only}}),
        E::RemoveMount(d) => json!({"remove-mount": d}),
        E::SetArgs(a) => json!({"set-args": a}),
        E::SetHostname(h) => json!({"set-hostname": h}),
        E::SetUser(u) => json!({"set-user": u}),
        E::SetWorkdir(w) => json!({"set-workdir": w}),
        E::SetMemory(n) => json!({"set-memory": n}),
        E::SetPids(n) => json!({"set-pids": n}),
        E::SetCpuMicros(n) => json!({"set-cpu-micros": n}),
        E::AddCapability(c) => json!({"add-capability": c}),
        E::DropCapability(c) => json!({"drop-capability": c}),
        E::SetPrivileged(p) => json!({"set-privileged": p}),
        E::SetNetwork(n) => json!({"set-network": n}),
        E::SetReadOnly(r) => json!({"set-read-only": r}),
    }
}
