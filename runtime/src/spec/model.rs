//! `ContainerSpec`: what a container will be, as a value — built from the image config and the
//! flags, open to inspection and adjustment (the before-create hook), checked by one set of rules
//! (`validate`) both before and after any adjustment, and only then turned into the record
//! (`into_config`) once the container has an id and a name.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::cgroups::Limits;
use crate::container::config::{ContainerConfig, MountKind, MountSpec, ProcessSpec, RestartPolicy};
use crate::error::Result;
use crate::network::ports::PortSpec;
use crate::network::NetworkMode;
use crate::spec::error::SpecError;
use crate::userns::identity::Identity;

/// A container before it exists: every field of its record but id, name and creation time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    /// The image reference as resolved.
    pub image: String,
    /// Image id (config digest).
    pub image_id: String,
    /// Unpacked layer dirs of the image, lowest first.
    pub layers: Vec<PathBuf>,
    /// Entrypoint as finally used.
    pub entrypoint: Vec<String>,
    /// Cmd as finally used.
    pub cmd: Vec<String>,
    /// The process; its env gets `HOSTNAME` when the record is made, unless it has one.
    pub process: ProcessSpec,
    /// `--hostname`; the short id when unset (the host's name with `--network host`).
    pub hostname: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Mounts in order.
    pub mounts: Vec<MountSpec>,
    /// `--read-only`.
    pub read_only: bool,
    /// `--network`.
    pub network: NetworkMode,
    /// `-p`, one spec per port of a range; host port 0 for a free one.
    pub ports: Vec<PortSpec>,
    /// The ports it declares (`80/tcp`): the image's, `--expose`'s and the published ones.
    pub exposed: Vec<String>,
    /// `-P`: publish every exposed port `ports` leaves out, each on a free host port.
    pub publish_all: bool,
    /// `--ip`: the address asked for on a skiff network.
    pub ip: Option<std::net::Ipv4Addr>,
    /// `--network-alias`: other names the container answers to on its network.
    pub network_aliases: Vec<String>,
    /// `--add-host`.
    pub extra_hosts: Vec<(String, String)>,
    /// `--dns`.
    pub dns: Vec<String>,
    /// `--group-add`.
    pub group_add: Vec<String>,
    /// `--ulimit`: (resource, soft, hard).
    pub ulimits: Vec<(String, u64, u64)>,
    /// `--shm-size` in bytes.
    pub shm_size: Option<u64>,
    /// `--memory`, `--pids-limit`, `--cpus`.
    pub limits: Limits,
    /// `--cap-add`.
    pub cap_add: Vec<String>,
    /// `--cap-drop`.
    pub cap_drop: Vec<String>,
    /// `--privileged`.
    pub privileged: bool,
    /// The default seccomp filter.
    pub seccomp: bool,
    /// `--security-opt no-new-privileges`.
    pub no_new_privs: bool,
    /// `--init`.
    pub init: bool,
    /// `--rm`.
    pub auto_remove: bool,
    /// StopSignal (flag or image).
    pub stop_signal: Option<String>,
    /// `--stop-timeout`.
    pub stop_timeout: Option<u64>,
    /// The healthcheck (image's merged under the flags).
    pub healthcheck: Option<crate::container::health::Healthcheck>,
    /// `--restart`.
    pub restart: RestartPolicy,
    /// The plugins that saw this spec (before-create, validate), each with the keys it set.
    pub plugins: BTreeMap<String, Vec<String>>,
}

impl ContainerSpec {
    /// Checks what must hold of any spec, from flags or adjusted by a hook, with the same
    /// messages as the flags get: a command to run, well-formed env and labels, absolute mount
    /// points and working dir, a valid hostname, ports only on a private network and each host port
    /// once, capabilities
    /// skiff knows, `--rm` without a restart policy, and a user this identity can map.
    pub fn validate(&self, identity: &Identity) -> Result<()> {
        if self.process.args.is_empty() {
            return Err(SpecError::NoCommand(self.image.clone()).into());
        }
        for e in &self.process.env {
            if e.split_once('=').is_none_or(|(k, _)| k.is_empty()) {
                return Err(SpecError::Env(e.clone()).into());
            }
        }
        if let Some(k) = self.labels.keys().find(|k| k.is_empty()) {
            return Err(SpecError::Label(k.clone()).into());
        }
        for m in &self.mounts {
            if !m.destination.starts_with('/') {
                let flag = match m.kind {
                    MountKind::Tmpfs => "--tmpfs",
                    _ => "-v",
                };
                return Err(SpecError::MountPoint {
                    flag,
                    destination: m.destination.clone(),
                }
                .into());
            }
            if m.kind == MountKind::Bind && !m.source.is_absolute() {
                return Err(SpecError::BindNotAbsolute(m.source.clone()).into());
            }
        }
        if !self.process.cwd.starts_with('/') {
            return Err(SpecError::Workdir(self.process.cwd.clone()).into());
        }
        if let Some(h) = &self.hostname {
            if !crate::container::names::valid_hostname(h) {
                return Err(SpecError::Hostname(h.clone()).into());
            }
        }
        let publishes = !self.ports.is_empty() || (self.publish_all && !self.exposed.is_empty());
        if publishes
            && !matches!(
                self.network,
                NetworkMode::Slirp4netns | NetworkMode::Bridge(_)
            )
        {
            return Err(crate::network::Error::NoPortsIn(self.network.to_string()).into());
        }
        crate::network::ports::check_unique(&self.ports)?;
        if self.network.network().is_none() {
            let needs = |what| crate::network::Error::NeedsBridge(what, self.network.to_string());
            if self.ip.is_some() {
                return Err(needs("--ip").into());
            }
            if !self.network_aliases.is_empty() {
                return Err(needs("--network-alias").into());
            }
        }
        for a in &self.network_aliases {
            if !crate::container::names::valid_hostname(a) {
                return Err(crate::network::Error::BadAlias(a.clone()).into());
            }
        }
        crate::security::capability_mask(&self.cap_add, &self.cap_drop, self.privileged)?;
        if self.auto_remove && self.restart != RestartPolicy::No {
            return Err(SpecError::RestartWithRm.into());
        }
        let pw = super::read_image_file(&self.layers, "etc/passwd")?.unwrap_or_default();
        let gr = super::read_image_file(&self.layers, "etc/group")?.unwrap_or_default();
        let user = &self.process.user;
        let who = super::passwd::resolve(user, &pw, &gr).map_err(SpecError::User)?;
        // A rootless user without a subordinate range has only root mapped in its containers.
        if !identity.maps_other_ids() && (who.uid != 0 || who.gid != 0) {
            return Err(SpecError::UnmappedUser {
                user: user.clone(),
                uid: who.uid,
                gid: who.gid,
                hint: crate::userns::idmap::usermod_hint(),
            }
            .into());
        }
        Ok(())
    }

    /// The record of this spec for a container with `id` and `name`.
    pub fn into_config(self, id: &str, name: &str) -> ContainerConfig {
        // With the host's network the container has the host's name, as in Docker.
        let host_name = || {
            nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .filter(|h| crate::container::names::valid_hostname(h))
        };
        let hostname = self
            .hostname
            .or_else(|| {
                (self.network == NetworkMode::Host)
                    .then(host_name)
                    .flatten()
            })
            .unwrap_or_else(|| id[..12.min(id.len())].to_string());
        let mut process = self.process;
        // The user's `-e HOSTNAME=…` (or the image's) wins over the generated one, as in Docker.
        if !process.env.iter().any(|e| e.starts_with("HOSTNAME=")) {
            super::set_env(&mut process.env, format!("HOSTNAME={hostname}"));
        }
        ContainerConfig {
            id: id.to_string(),
            name: name.to_string(),
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            image: self.image,
            image_id: self.image_id,
            layers: self.layers,
            entrypoint: self.entrypoint,
            cmd: self.cmd,
            process,
            hostname,
            labels: self.labels,
            mounts: self.mounts,
            read_only: self.read_only,
            network: self.network,
            ports: self.ports,
            exposed: self.exposed,
            publish_all: self.publish_all,
            ip: self.ip,
            network_aliases: self.network_aliases,
            connected: Vec::new(),
            limits: self.limits,
            extra_hosts: self.extra_hosts,
            dns: self.dns,
            group_add: self.group_add,
            ulimits: self.ulimits,
            shm_size: self.shm_size,
            cap_add: self.cap_add,
            cap_drop: self.cap_drop,
            privileged: self.privileged,
            seccomp: self.seccomp,
            no_new_privs: self.no_new_privs,
            init: self.init,
            auto_remove: self.auto_remove,
            stop_signal: self.stop_signal,
            stop_timeout: self.stop_timeout,
            healthcheck: self.healthcheck,
            restart: self.restart,
            plugins: self.plugins,
        }
    }
}
