//! What a container was asked to be (`config.json`) and what it is now (`state.json`). Both are
//! plain serde types so `ps`, `inspect` and the monitor read the same truth.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::spec::error::SpecError;

/// One mount the user asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    /// A host path (`-v /src:/dst`).
    Bind,
    /// A named volume under the user's data dir (`-v name:/dst`).
    Volume,
    /// A tmpfs (`--tmpfs /dst`).
    Tmpfs,
}

/// A mount in the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountSpec {
    /// Bind, volume or tmpfs.
    pub kind: MountKind,
    /// Host path (bind), volume directory (volume), empty for tmpfs.
    pub source: PathBuf,
    /// Volume name, for volumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Path inside the container.
    pub destination: String,
    /// Mounted read-only.
    pub readonly: bool,
}

/// The process to run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessSpec {
    /// argv (entrypoint + cmd combined as Docker does).
    pub args: Vec<String>,
    /// `KEY=VALUE` environment.
    pub env: Vec<String>,
    /// Working directory inside the container.
    pub cwd: String,
    /// `user[:group]` as given (names resolved inside the container at start).
    pub user: String,
    /// Allocate a pty.
    pub terminal: bool,
    /// Keep stdin open.
    pub stdin: bool,
}

/// A network a container was connected to after it was created (`network connect`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connected {
    /// The network's name.
    pub network: String,
    /// Its interface in the container (`eth1`, `eth2`…), fixed when connected so a running
    /// container's names never change under it.
    pub iface: String,
}

/// Everything `run`/`create` decided, written once as `config.json` (and again by `rename` and
/// `network connect`/`disconnect`, under the container's lock).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerConfig {
    /// 64 hex digits.
    pub id: String,
    /// Unique per user.
    pub name: String,
    /// RFC 3339.
    pub created: String,
    /// The image reference as resolved.
    pub image: String,
    /// Image id (config digest).
    pub image_id: String,
    /// Unpacked layer dirs of the image, lowest first (given by the store).
    pub layers: Vec<PathBuf>,
    /// The image's entrypoint and cmd as finally used, for inspect.
    pub entrypoint: Vec<String>,
    /// See `entrypoint`.
    pub cmd: Vec<String>,
    /// The process.
    pub process: ProcessSpec,
    /// Hostname (defaults to the short id).
    pub hostname: String,
    /// Labels (`-l`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Mounts in order.
    #[serde(default)]
    pub mounts: Vec<MountSpec>,
    /// `--read-only`.
    pub read_only: bool,
    /// `--network`: host, none, slirp4netns (a private network namespace connected through it)
    /// or one of the user's networks.
    #[serde(default)]
    pub network: crate::network::NetworkMode,
    /// Published ports as asked (`-p`, one per port of a range; host port 0 for a free one
    /// picked at each start). The ports bound are in the state.
    #[serde(default)]
    pub ports: Vec<crate::network::ports::PortSpec>,
    /// The ports it declares (`80/tcp`): the image's `ExposedPorts`, `--expose`, and the
    /// published ones, as Docker's `Config.ExposedPorts`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exposed: Vec<String>,
    /// `-P`: each exposed port `ports` leaves out is published on a free host port at start.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub publish_all: bool,
    /// `--ip` asked for on a skiff network (the address it got is in the network's record).
    #[serde(default)]
    pub ip: Option<std::net::Ipv4Addr>,
    /// `--network-alias`.
    #[serde(default)]
    pub network_aliases: Vec<String>,
    /// The networks `network connect` added after `network`, each with the interface it has
    /// in the container (its address is its lease in that network's record).
    #[serde(default)]
    pub connected: Vec<Connected>,
    /// `--add-host NAME:IP` entries for /etc/hosts.
    #[serde(default)]
    pub extra_hosts: Vec<(String, String)>,
    /// `--dns` servers for /etc/resolv.conf (instead of the host's or slirp4netns's).
    #[serde(default)]
    pub dns: Vec<String>,
    /// `--group-add`: extra groups (names or gids), resolved in the container's /etc/group.
    #[serde(default)]
    pub group_add: Vec<String>,
    /// `--ulimit`: (resource, soft, hard).
    #[serde(default)]
    pub ulimits: Vec<(String, u64, u64)>,
    /// `--shm-size` in bytes (64 MiB when unset, as Docker).
    #[serde(default)]
    pub shm_size: Option<u64>,
    /// `--memory`, `--pids-limit`, `--cpus`.
    #[serde(default)]
    pub limits: crate::cgroups::Limits,
    /// Capabilities added (`--cap-add`, names without CAP_).
    #[serde(default)]
    pub cap_add: Vec<String>,
    /// Capabilities dropped (`--cap-drop`).
    #[serde(default)]
    pub cap_drop: Vec<String>,
    /// `--privileged`.
    pub privileged: bool,
    /// Default seccomp filter on (off with `--security-opt seccomp=unconfined`).
    pub seccomp: bool,
    /// `no_new_privs` for the container's processes: off by default as in Docker (setuid
    /// programs of the image work), on with `--security-opt no-new-privileges`.
    #[serde(default)]
    pub no_new_privs: bool,
    /// `--init`.
    pub init: bool,
    /// `--rm`.
    pub auto_remove: bool,
    /// The image's StopSignal, if any.
    #[serde(default)]
    pub stop_signal: Option<String>,
    /// `--stop-timeout` in seconds (default 10).
    #[serde(default)]
    pub stop_timeout: Option<u64>,
    /// The healthcheck: the image's under the `--health-*` flags (`["NONE"]` with
    /// `--no-healthcheck`), as Docker's `Config.Healthcheck`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<crate::container::health::Healthcheck>,
    /// `--restart`, kept on disk in Docker's spelling (`no`, `on-failure[:N]`, …).
    #[serde(default)]
    pub restart: RestartPolicy,
    /// The plugins that saw the container before it was created, each with the keys it set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub plugins: BTreeMap<String, Vec<String>>,
}

/// A parsed `--restart` policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum RestartPolicy {
    /// Never.
    #[default]
    No,
    /// When the exit code is not 0, at most N times (0 = no limit).
    OnFailure(u32),
    /// Always, unless the user stopped it.
    Always,
    /// Like always; kept distinct for inspect.
    UnlessStopped,
}

impl RestartPolicy {
    /// Parses Docker's spelling.
    pub fn parse(s: &str) -> Result<RestartPolicy, SpecError> {
        let bad = |fix: &str| SpecError::Flag {
            flag: "--restart",
            value: s.to_string(),
            fix: fix.to_string(),
        };
        match s.split_once(':') {
            None => match s {
                "" | "no" => Ok(RestartPolicy::No),
                "on-failure" => Ok(RestartPolicy::OnFailure(0)),
                "always" => Ok(RestartPolicy::Always),
                "unless-stopped" => Ok(RestartPolicy::UnlessStopped),
                _ => Err(bad("use no, on-failure[:N], always or unless-stopped")),
            },
            Some(("on-failure", n)) => n
                .parse()
                .map(RestartPolicy::OnFailure)
                .map_err(|_| bad("the retry count must be a number")),
            Some(_) => Err(bad("only on-failure takes a count")),
        }
    }

    /// Docker's name for the policy (inspect's `RestartPolicy.Name`).
    pub fn name(self) -> &'static str {
        match self {
            RestartPolicy::No => "no",
            RestartPolicy::OnFailure(_) => "on-failure",
            RestartPolicy::Always => "always",
            RestartPolicy::UnlessStopped => "unless-stopped",
        }
    }

    /// The retry limit of `on-failure:N` (0: none), as inspect's `MaximumRetryCount`.
    pub fn max_retries(self) -> u32 {
        match self {
            RestartPolicy::OnFailure(n) => n,
            _ => 0,
        }
    }

    /// Whether to start again after an exit with `code`, having restarted `count` times already.
    pub fn should_restart(self, code: Option<i32>, count: u32, stopped_by_user: bool) -> bool {
        if stopped_by_user {
            return false;
        }
        match self {
            RestartPolicy::No => false,
            RestartPolicy::OnFailure(max) => code != Some(0) && (max == 0 || count < max),
            RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
        }
    }
}

impl TryFrom<String> for RestartPolicy {
    type Error = String;
    fn try_from(s: String) -> Result<RestartPolicy, String> {
        RestartPolicy::parse(&s).map_err(|e| e.to_string())
    }
}

impl From<RestartPolicy> for String {
    fn from(p: RestartPolicy) -> String {
        match p {
            RestartPolicy::OnFailure(n) if n > 0 => format!("on-failure:{n}"),
            other => other.name().to_string(),
        }
    }
}

/// Lifecycle status as `ps` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Created, never started.
    Created,
    /// Its process runs.
    Running,
    /// It ran and stopped.
    Exited,
}

/// `state.json`: rewritten atomically under the container's lock at each transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Status as last recorded (liveness is re-checked against pid + start time).
    pub status: Status,
    /// The container's PID 1 as seen on the host.
    pub pid: Option<i32>,
    /// That pid's start time (clock ticks since boot), so a recycled pid never looks alive.
    pub pid_start: Option<u64>,
    /// The monitor's pid and start time.
    pub monitor_pid: Option<i32>,
    /// See `monitor_pid`.
    pub monitor_start: Option<u64>,
    /// Exit code once exited (None if unknown, e.g. the monitor was killed).
    pub exit_code: Option<i32>,
    /// RFC 3339.
    pub started_at: Option<String>,
    /// RFC 3339.
    pub finished_at: Option<String>,
    /// Why it could not start, if so.
    pub error: Option<String>,
    /// How many times the restart policy started it again.
    #[serde(default)]
    pub restart_count: u32,
    /// Between two runs of a restart policy: exited, and its monitor will start it again.
    #[serde(default)]
    pub restarting: bool,
    /// `pause`d: every process stopped (SIGSTOP) until `unpause`.
    #[serde(default)]
    pub paused: bool,
    /// The kernel's OOM killer killed a process of its last run (Docker's `State.OOMKilled`).
    #[serde(default)]
    pub oom_killed: bool,
    /// The ports published while it runs, each with the host port actually bound (a free one
    /// for host port 0); empty once it exited.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<crate::network::ports::PortSpec>,
}

impl State {
    /// The state of a container that was just created.
    pub fn created() -> State {
        State {
            status: Status::Created,
            pid: None,
            pid_start: None,
            monitor_pid: None,
            monitor_start: None,
            exit_code: None,
            started_at: None,
            finished_at: None,
            error: None,
            restart_count: 0,
            restarting: false,
            paused: false,
            oom_killed: false,
            ports: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RestartPolicy;

    #[test]
    fn restart_policies_decide_like_docker() {
        let p = |s: &str| RestartPolicy::parse(s).unwrap();
        assert!(!p("no").should_restart(Some(1), 0, false));
        assert!(p("on-failure").should_restart(Some(1), 9, false));
        assert!(!p("on-failure").should_restart(Some(0), 0, false));
        assert!(p("on-failure:2").should_restart(Some(3), 1, false));
        assert!(!p("on-failure:2").should_restart(Some(3), 2, false));
        assert!(p("always").should_restart(Some(0), 5, false));
        assert!(
            !p("always").should_restart(Some(0), 5, true),
            "a user's stop is final"
        );
        assert!(RestartPolicy::parse("sometimes").is_err());
        // On disk in Docker's spelling, so records of earlier builds still read.
        for word in [
            "no",
            "on-failure",
            "on-failure:3",
            "always",
            "unless-stopped",
        ] {
            let policy: RestartPolicy = serde_json::from_str(&format!("{word:?}")).unwrap();
            assert_eq!(serde_json::to_string(&policy).unwrap(), format!("{word:?}"));
        }
        assert!(serde_json::from_str::<RestartPolicy>("\"sometimes\"").is_err());
        assert!(RestartPolicy::parse("always:3").is_err());
    }
}
