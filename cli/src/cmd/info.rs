//! `skiff version` and `skiff info`: what this skiff is and what it finds on this machine for
//! this user — the first thing to look at when a container will not start (id ranges, helpers,
//! where things are kept), in podman's shape and with `--format`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use skiff_runtime::userns::identity::Identity;
use skiff_runtime::Containers;
use skiff_store::{Dirs, ImageStore};

use crate::args::InfoArgs;
use crate::output::format;

/// Docker's name for the machine architecture.
fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn version_doc() -> serde_json::Value {
    serde_json::json!({
        "Version": env!("CARGO_PKG_VERSION"),
        "OsArch": format!("{}/{}", std::env::consts::OS, arch()),
        "Monitor": std::env::current_exe()
            .ok()
            .map(|e| e.with_file_name("skiff-monitor"))
            .filter(|m| m.exists())
            .map(|m| m.display().to_string())
            .unwrap_or_else(|| "missing: install skiff-monitor beside skiff".into()),
    })
}

/// The first `PATH` entry holding `program`.
fn which(program: &str) -> Option<String> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
            .map(|p| p.display().to_string())
    })
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// `v2` (unified), `v1`, or `hybrid` (v1 controllers beside an empty v2 mount).
fn cgroups() -> &'static str {
    let root = Path::new("/sys/fs/cgroup");
    if root.join("cgroup.controllers").exists() {
        "v2"
    } else if root.join("unified").exists() {
        "hybrid"
    } else {
        "v1"
    }
}

fn count_entries(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .count()
        })
        .unwrap_or(0)
}

fn info_doc() -> Result<serde_json::Value> {
    let dirs = Dirs::from_env();
    let who = Identity::current();
    let rootless = !who.is_root();
    let ranges = |r: &[skiff_runtime::userns::idmap::Range]| -> Vec<serde_json::Value> {
        r.iter()
            .map(|x| serde_json::json!({ "ContainerId": x.inside, "HostId": x.outside, "Size": x.count }))
            .collect()
    };
    let id_mappings = match &who {
        Identity::Root => serde_json::json!("none needed (root)"),
        Identity::Mapped(m) => {
            serde_json::json!({ "UidMap": ranges(&m.uids), "GidMap": ranges(&m.gids) })
        }
        Identity::Alone { .. } => serde_json::json!(format!(
            "only your own user (no /etc/subuid range: add one with {})",
            skiff_runtime::userns::idmap::usermod_hint()
        )),
    };
    let store = ImageStore::open(dirs.clone())?;
    let images = store.list()?.len();
    let containers = Containers::open(&dirs)?.views()?;
    let running = containers.iter().filter(|v| v.running()).count();
    let helper = |p: &str| {
        which(p).unwrap_or_else(|| {
            format!(
                "not found (apt install {})",
                match p {
                    "newuidmap" => "uidmap",
                    other => other,
                }
            )
        })
    };
    Ok(serde_json::json!({
        "Host": {
            "Os": std::env::consts::OS,
            "Arch": arch(),
            "Kernel": kernel(),
            "Rootless": rootless,
            "Uid": who.uid(),
            "IdMappings": id_mappings,
            "Newuidmap": helper("newuidmap"),
            "Slirp4netns": helper("slirp4netns"),
            "Cgroups": cgroups(),
        },
        "Store": {
            "DataRoot": dirs.data.display().to_string(),
            "ConfigFile": dirs.config.join("config.toml").display().to_string(),
            "Images": images,
            "Layers": count_entries(&dirs.layers()),
            "Containers": containers.len(),
            "Running": running,
            "Stopped": containers.len() - running,
        },
        "Version": version_doc(),
    }))
}

/// Prints a document as indented `Key: value` lines (podman's `info` shape), or through
/// `--format`.
fn show(doc: &serde_json::Value, format: Option<String>) -> Result<ExitCode> {
    match format.as_deref() {
        Some("json") => println!("{}", serde_json::to_string_pretty(doc)?),
        Some(t) => {
            let f = format::Format::parse(t, &std::collections::HashMap::new())?;
            println!("{}", f.render(doc)?);
        }
        None => print_tree(doc, 0),
    }
    Ok(ExitCode::SUCCESS)
}

fn print_tree(v: &serde_json::Value, depth: usize) {
    let pad = "  ".repeat(depth);
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match v {
                    serde_json::Value::Object(_) | serde_json::Value::Array(_) => {
                        println!("{pad}{k}:");
                        print_tree(v, depth + 1);
                    }
                    serde_json::Value::String(s) => println!("{pad}{k}: {s}"),
                    other => println!("{pad}{k}: {other}"),
                }
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                let line = item
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_else(|| item.to_string());
                println!("{pad}- {line}");
            }
        }
        other => println!("{pad}{other}"),
    }
}

/// `skiff version`.
pub fn version(a: InfoArgs) -> Result<ExitCode> {
    show(&version_doc(), a.format)
}

/// `skiff info`.
pub fn info(a: InfoArgs) -> Result<ExitCode> {
    show(&info_doc()?, a.format)
}
