//! Resource limits (`--memory`, `--pids-limit`, `--cpus`) through cgroups: one cgroup per
//! container under `skiff/<id>`, on the unified (v2) hierarchy or on each v1 controller's, made
//! by the monitor before the container's first process may run and removed when it has ended.
//!
//! Limits are optional: where this user may not make cgroups (rootless without delegation, a
//! read-only cgroupfs) the container runs without them and says so — a plain run never fails
//! for want of cgroups.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A limit flag that cannot be used.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// `--memory` is not a size.
    #[error("invalid --memory {0:?}: use a number with b, k, m or g (512m)")]
    Memory(String),
    /// `--memory` below what any container needs.
    #[error("--memory {0} is below the 6 MiB a container needs: give more")]
    MemoryTooSmall(String),
    /// `--cpus` is not a positive number.
    #[error("invalid --cpus {0:?}: use a positive number of CPUs (1.5)")]
    Cpus(String),
}

/// The limits asked for; all optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// `--memory`, bytes.
    #[serde(default)]
    pub memory: Option<u64>,
    /// `--pids-limit`.
    #[serde(default)]
    pub pids: Option<u64>,
    /// `--cpus`, in millionths of a CPU (Docker's NanoCpus / 1000).
    #[serde(default)]
    pub cpu_micros: Option<u64>,
}

impl Limits {
    /// Whether any limit is set.
    pub fn any(&self) -> bool {
        self.memory.is_some() || self.pids.is_some() || self.cpu_micros.is_some()
    }

    /// Reads Docker's flag values: `--memory 512m` (b, k, m, g; at least 6 MiB, as Docker),
    /// `--pids-limit 100` (0 or -1: none), `--cpus 1.5`.
    pub fn parse(
        memory: Option<&str>,
        pids: Option<i64>,
        cpus: Option<&str>,
    ) -> Result<Limits, LimitError> {
        let memory = memory
            .map(|m| {
                let bytes = skiff_store::size::parse_size(m)
                    .ok_or_else(|| LimitError::Memory(m.to_string()))?;
                if bytes < 6 << 20 {
                    return Err(LimitError::MemoryTooSmall(m.to_string()));
                }
                Ok(bytes)
            })
            .transpose()?;
        let pids = pids.filter(|&p| p > 0).map(|p| p as u64);
        let cpu_micros = cpus
            .map(|c| match c.parse::<f64>() {
                Ok(v) if v > 0.0 && v <= 1024.0 => Ok((v * 1e6).round() as u64),
                _ => Err(LimitError::Cpus(c.to_string())),
            })
            .transpose()?;
        Ok(Limits {
            memory,
            pids,
            cpu_micros,
        })
    }
}

/// The cgroupfs root.
const ROOT: &str = "/sys/fs/cgroup";

/// CFS period used for `--cpus` (Docker's).
const CPU_PERIOD: u64 = 100_000;

/// A container's cgroup directories, removed (once empty) when dropped.
#[derive(Debug)]
pub struct Cgroup {
    dirs: Vec<PathBuf>,
}

impl Cgroup {
    /// Whether the kernel's OOM killer killed a process in these cgroups (v2 `memory.events`,
    /// v1 `memory.oom_control`: an `oom_kill` count above 0).
    pub fn oom_killed(&self) -> bool {
        self.dirs.iter().any(|d| {
            ["memory.events", "memory.oom_control"].iter().any(|f| {
                std::fs::read_to_string(d.join(f)).is_ok_and(|t| {
                    t.lines().any(|l| {
                        l.strip_prefix("oom_kill ")
                            .and_then(|n| n.trim().parse::<u64>().ok())
                            .is_some_and(|n| n > 0)
                    })
                })
            })
        })
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        for d in &self.dirs {
            // Empty once the container's processes are gone (the last may take a moment to be
            // reaped after its PID 1); rmdir is how a cgroup goes.
            for _ in 0..100 {
                if std::fs::remove_dir(d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
    }
}

fn write(dir: &Path, file: &str, value: &str) -> std::result::Result<(), String> {
    std::fs::write(dir.join(file), value).map_err(|e| format!("{}: {e}", dir.join(file).display()))
}

/// Puts `pid` into a new cgroup for container `id` with `limits`. `Err` says why not (the
/// caller warns and runs the container without limits).
pub fn apply(id: &str, pid: i32, limits: &Limits) -> std::result::Result<Cgroup, String> {
    if Path::new(ROOT).join("cgroup.controllers").exists() {
        apply_v2(id, pid, limits)
    } else {
        apply_v1(id, pid, limits)
    }
}

fn apply_v2(id: &str, pid: i32, l: &Limits) -> std::result::Result<Cgroup, String> {
    let parent = Path::new(ROOT).join("skiff");
    std::fs::create_dir_all(&parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    let mut wanted = Vec::new();
    if l.memory.is_some() {
        wanted.push("+memory");
    }
    if l.pids.is_some() {
        wanted.push("+pids");
    }
    if l.cpu_micros.is_some() {
        wanted.push("+cpu");
    }
    for dir in [Path::new(ROOT), parent.as_path()] {
        write(dir, "cgroup.subtree_control", &wanted.join(" "))?;
    }
    let cg = Cgroup {
        dirs: vec![parent.join(id)],
    };
    let dir = &cg.dirs[0];
    std::fs::create_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if let Some(m) = l.memory {
        write(dir, "memory.max", &m.to_string())?;
        // Docker's default --memory-swap: as much swap again.
        if dir.join("memory.swap.max").exists() {
            write(dir, "memory.swap.max", &m.to_string())?;
        }
    }
    if let Some(p) = l.pids {
        write(dir, "pids.max", &p.to_string())?;
    }
    if let Some(c) = l.cpu_micros {
        write(
            dir,
            "cpu.max",
            &format!("{} {CPU_PERIOD}", c * CPU_PERIOD / 1_000_000),
        )?;
    }
    write(dir, "cgroup.procs", &pid.to_string())?;
    Ok(cg)
}

fn apply_v1(id: &str, pid: i32, l: &Limits) -> std::result::Result<Cgroup, String> {
    let mut settings: Vec<(&str, Vec<(&str, String)>)> = Vec::new();
    if let Some(m) = l.memory {
        // Docker's default --memory-swap: as much swap again (memory + swap = twice the limit).
        let mut files = vec![("memory.limit_in_bytes", m.to_string())];
        if Path::new(ROOT)
            .join("memory/memory.memsw.limit_in_bytes")
            .exists()
        {
            files.push(("memory.memsw.limit_in_bytes", (2 * m).to_string()));
        }
        settings.push(("memory", files));
    }
    if let Some(p) = l.pids {
        settings.push(("pids", vec![("pids.max", p.to_string())]));
    }
    if let Some(c) = l.cpu_micros {
        settings.push((
            "cpu",
            vec![
                ("cpu.cfs_period_us", CPU_PERIOD.to_string()),
                ("cpu.cfs_quota_us", (c * CPU_PERIOD / 1_000_000).to_string()),
            ],
        ));
    }
    let mut cg = Cgroup { dirs: Vec::new() };
    for (controller, files) in settings {
        let hierarchy = Path::new(ROOT).join(controller);
        if !hierarchy.is_dir() {
            return Err(format!(
                "no {controller} cgroup hierarchy at {}",
                hierarchy.display()
            ));
        }
        let dir = hierarchy.join("skiff").join(id);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        cg.dirs.push(dir.clone());
        for (file, value) in files {
            write(&dir, file, &value)?;
        }
        write(&dir, "cgroup.procs", &pid.to_string())?;
    }
    Ok(cg)
}

/// Changes the limits of a running container's cgroup (`update`), in place: the controllers a
/// new limit needs are enabled on the parents first. `Err` says why not: the container runs
/// without a cgroup (it started without limits, or they were refused), or the write failed.
pub fn update(id: &str, l: &Limits) -> std::result::Result<(), String> {
    let root = Path::new(ROOT);
    let none = || {
        "it runs without a cgroup (started without limits, or they were refused); they apply from its next start".to_string()
    };
    let max = |v: Option<u64>| v.map_or("max".to_string(), |v| v.to_string());
    if root.join("cgroup.controllers").exists() {
        let parent = root.join("skiff");
        let dir = parent.join(id);
        if !dir.is_dir() {
            return Err(none());
        }
        let wanted = ["+memory", "+pids", "+cpu"].join(" ");
        for d in [root, parent.as_path()] {
            write(d, "cgroup.subtree_control", &wanted)?;
        }
        write(&dir, "memory.max", &max(l.memory))?;
        if dir.join("memory.swap.max").exists() {
            write(&dir, "memory.swap.max", &max(l.memory))?;
        }
        write(&dir, "pids.max", &max(l.pids))?;
        let quota = l.cpu_micros.map(|c| c * CPU_PERIOD / 1_000_000);
        return write(&dir, "cpu.max", &format!("{} {CPU_PERIOD}", max(quota)));
    }
    let v1 = |c: &str| root.join(c).join("skiff").join(id);
    let mut missing = Vec::new();
    let unlimited = |v: Option<u64>| v.map_or("-1".to_string(), |v| v.to_string());
    for (controller, asked) in [
        ("memory", l.memory.is_some()),
        ("pids", l.pids.is_some()),
        ("cpu", l.cpu_micros.is_some()),
    ] {
        let d = v1(controller);
        if !d.is_dir() {
            if asked {
                missing.push(controller);
            }
            continue;
        }
        match controller {
            "memory" => {
                // memsw may never be below the memory limit: raised first, set again after.
                let memsw = d.join("memory.memsw.limit_in_bytes").exists();
                let both = unlimited(l.memory.map(|m| 2 * m));
                if memsw {
                    let _ = write(&d, "memory.memsw.limit_in_bytes", &both);
                }
                write(&d, "memory.limit_in_bytes", &unlimited(l.memory))?;
                if memsw {
                    write(&d, "memory.memsw.limit_in_bytes", &both)?;
                }
            }
            "pids" => write(&d, "pids.max", &max(l.pids))?,
            _ => write(
                &d,
                "cpu.cfs_quota_us",
                &unlimited(l.cpu_micros.map(|c| c * CPU_PERIOD / 1_000_000)),
            )?,
        }
    }
    if missing.is_empty() {
        Ok(())
    } else if missing.len() == 3 {
        Err(none())
    } else {
        Err(format!(
            "it has no {} cgroup (it started without that limit); it applies from its next start",
            missing.join(" or ")
        ))
    }
}

/// Removes a container's cgroups if its monitor could not (it was killed); they must be empty.
pub fn remove_leftovers(id: &str) {
    let root = Path::new(ROOT);
    for sub in ["skiff", "memory/skiff", "pids/skiff", "cpu/skiff"] {
        let _ = std::fs::remove_dir(root.join(sub).join(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_limit_values_parse_and_bad_ones_say_why() {
        let l = Limits::parse(Some("64m"), Some(20), Some("1.5")).unwrap();
        assert_eq!(l.memory, Some(64 << 20));
        assert_eq!(l.pids, Some(20));
        assert_eq!(l.cpu_micros, Some(1_500_000));
        assert_eq!(
            Limits::parse(Some("1g"), None, None).unwrap().memory,
            Some(1 << 30)
        );
        assert_eq!(
            Limits::parse(Some("8MB"), None, None).unwrap().memory,
            Some(8 << 20)
        );
        assert!(
            !Limits::parse(None, Some(-1), None).unwrap().any(),
            "-1: no limit"
        );
        for (m, c, why) in [
            (Some("lots"), None, "invalid --memory"),
            (Some("1m"), None, "below the 6 MiB"),
            (None, Some("0"), "invalid --cpus"),
            (None, Some("x"), "invalid --cpus"),
        ] {
            let e = Limits::parse(m, None, c).unwrap_err().to_string();
            assert!(e.contains(why), "{m:?} {c:?}: {e}");
        }
    }
}
