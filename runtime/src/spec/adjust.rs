//! Typed adjustments of a `ContainerSpec`, the runtime's side of what before-create hooks
//! return: each is applied by the same rules as the flag it stands for (a bind mount's source
//! must exist, a volume is made, `-p` needs a private network, the memory floor holds), and
//! `ContainerSpec::validate` runs again over the result.

use std::path::PathBuf;

use crate::cgroups::Limits;
use crate::container::config::{MountKind, MountSpec};
use crate::container::records::Containers;
use crate::error::Result;
use crate::network::NetworkMode;
use crate::spec::ContainerSpec;

/// One change to a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Adjustment {
    /// `-e KEY=VALUE`.
    SetEnv(String, String),
    /// Drops `KEY` from the environment.
    RemoveEnv(String),
    /// `-l KEY=VALUE`.
    SetLabel(String, String),
    /// Drops a label.
    RemoveLabel(String),
    /// `-v` / `--tmpfs`: a mount of `kind` (source: host path or volume name; empty for tmpfs).
    AddMount {
        /// Bind, volume or tmpfs.
        kind: MountKind,
        /// Host path or volume name.
        source: String,
        /// Path inside.
        destination: String,
        /// `:ro`.
        read_only: bool,
    },
    /// Drops the mount at this destination.
    RemoveMount(String),
    /// Replaces the whole command (entrypoint cleared).
    SetArgs(Vec<String>),
    /// `--hostname`.
    SetHostname(String),
    /// `-u`.
    SetUser(String),
    /// `-w`.
    SetWorkdir(String),
    /// `--memory`, in bytes.
    SetMemory(u64),
    /// `--pids-limit`.
    SetPids(u64),
    /// `--cpus`, in millionths.
    SetCpuMicros(u64),
    /// `--cap-add`.
    AddCapability(String),
    /// `--cap-drop`.
    DropCapability(String),
    /// `--privileged`.
    SetPrivileged(bool),
    /// `--network`.
    SetNetwork(String),
    /// `--read-only`.
    SetReadOnly(bool),
}

impl ContainerSpec {
    /// Applies one adjustment by its flag's rules.
    pub fn adjust(&mut self, a: Adjustment, containers: &Containers) -> Result<()> {
        match a {
            Adjustment::SetEnv(k, v) => super::set_env(&mut self.process.env, format!("{k}={v}")),
            Adjustment::RemoveEnv(k) => self
                .process
                .env
                .retain(|e| e.split('=').next() != Some(k.as_str())),
            Adjustment::SetLabel(k, v) => {
                self.labels.insert(k, v);
            }
            Adjustment::RemoveLabel(k) => {
                self.labels.remove(&k);
            }
            Adjustment::AddMount {
                kind,
                source,
                destination,
                read_only,
            } => {
                let m = match kind {
                    MountKind::Tmpfs => MountSpec {
                        kind: kind.clone(),
                        source: PathBuf::new(),
                        name: None,
                        destination,
                        readonly: read_only,
                    },
                    MountKind::Bind | MountKind::Volume => {
                        let ro = if read_only { ":ro" } else { "" };
                        super::parse_volume(&format!("{source}:{destination}{ro}"), containers)?
                    }
                };
                if m.kind != kind {
                    // A "bind" whose source is a name, or a "volume" whose source is a path.
                    return Err(super::SpecError::Flag {
                        flag: "-v",
                        value: source,
                        fix: "a bind mount's source is an absolute host path, a volume's is a name"
                            .into(),
                    }
                    .into());
                }
                self.mounts.retain(|x| x.destination != m.destination);
                self.mounts.push(m);
            }
            Adjustment::RemoveMount(d) => self.mounts.retain(|m| m.destination != d),
            Adjustment::SetArgs(args) => {
                self.entrypoint.clear();
                self.cmd = args.clone();
                self.process.args = args;
            }
            Adjustment::SetHostname(h) => self.hostname = Some(h),
            Adjustment::SetUser(u) => self.process.user = u,
            Adjustment::SetWorkdir(w) => self.process.cwd = w,
            Adjustment::SetMemory(b) => {
                self.limits.memory = Limits::parse(Some(&b.to_string()), None, None)?.memory
            }
            Adjustment::SetPids(n) => self.limits.pids = (n > 0).then_some(n),
            Adjustment::SetCpuMicros(n) => self.limits.cpu_micros = (n > 0).then_some(n),
            Adjustment::AddCapability(c) => {
                self.cap_drop.retain(|x| !x.eq_ignore_ascii_case(&c));
                self.cap_add.push(c);
            }
            Adjustment::DropCapability(c) => {
                self.cap_add.retain(|x| !x.eq_ignore_ascii_case(&c));
                self.cap_drop.push(c);
            }
            Adjustment::SetPrivileged(p) => self.privileged = p,
            Adjustment::SetNetwork(n) => {
                self.network = NetworkMode::choose(Some(&n), !self.ports.is_empty())?
            }
            Adjustment::SetReadOnly(r) => self.read_only = r,
        }
        Ok(())
    }
}
