//! What happens to a container after `run`, answered from its files and its processes: the true
//! status (a pid counts as alive only with its recorded start time; a monitor that died is noticed
//! and its container put down), stop, kill, wait, remove, rename and top. No daemon is asked.

use std::path::Path;
use std::time::{Duration, Instant};

use skiff_store::fsutil::{write_atomic, LockFile};

use super::StateError;
use crate::container::config::{ContainerConfig, State, Status};
use crate::container::records::{Containers, Damaged};
use crate::error::{Error, Result};
use crate::events::Event;
use crate::network::ports::PortSpec;
use crate::sys::procfs;

/// A signal by number (1–64) or name, with or without `SIG`, any case (`TERM`, `sigkill`, `9`).
pub fn signal_number(s: &str) -> Option<i32> {
    let up = s.trim().to_ascii_uppercase();
    if let Ok(n) = up.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .ok()
        .map(|s| s as i32)
}

/// Sends `signal` to every process of the container whose PID 1 is `pid1`.
fn signal_all(pid1: i32, signal: i32) {
    for p in procfs::container_processes(pid1) {
        // SAFETY: signalling processes found in the container just now.
        unsafe { libc::kill(p, signal) };
    }
}

/// A container as it truly is now.
#[derive(Debug, Clone)]
pub struct View {
    /// Its config.
    pub cfg: ContainerConfig,
    /// Its state, corrected against the processes.
    pub state: State,
}

impl View {
    /// The pid of its first process while it runs, or why there is none: for the verbs that
    /// need one (pause, top, stats).
    pub fn running_pid(&self) -> std::result::Result<i32, StateError> {
        self.state
            .pid
            .filter(|_| self.running())
            .ok_or_else(|| StateError::NotRunning(self.cfg.name.clone()))
    }

    /// Whether its PID 1 runs now.
    pub fn running(&self) -> bool {
        self.state.status == Status::Running
    }

    /// Whether its monitor still lives (so a restart may still come).
    pub fn monitor_alive(&self) -> bool {
        alive(self.state.monitor_pid, self.state.monitor_start)
    }

    /// Whether it is between two runs of its restart policy (Docker's "Restarting"): exited,
    /// with a live monitor about to start it again.
    pub fn restarting(&self) -> bool {
        self.state.restarting && self.state.status == Status::Exited && self.monitor_alive()
    }

    /// The ports it publishes now, with the host ports bound (none unless it runs, as in
    /// Docker). A record of an earlier build, which kept no bound ports, had only fixed ones.
    pub fn bound_ports(&self) -> Vec<PortSpec> {
        if !self.running() {
            return Vec::new();
        }
        if self.state.ports.is_empty() {
            return self
                .cfg
                .ports
                .iter()
                .filter(|p| p.host_port != 0)
                .cloned()
                .collect();
        }
        self.state.ports.clone()
    }

    /// Whether its processes are stopped by `pause`.
    pub fn paused(&self) -> bool {
        self.running() && self.state.paused
    }

    /// Running or restarting: a monitor owns it, so it is not to be started, pruned or removed
    /// without force.
    pub fn active(&self) -> bool {
        self.running() || self.restarting()
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

fn alive(pid: Option<i32>, start: Option<u64>) -> bool {
    matches!((pid, start), (Some(p), Some(s)) if procfs::alive(p, s))
}

impl Containers {
    /// Loads a container and checks its recorded status against its processes: if the state says
    /// running but the monitor is gone, the container is put down (its PID 1 killed, so nothing
    /// lingers) and recorded as exited with an unknown code, as podman shows it.
    pub fn view(&self, id: &str) -> Result<View> {
        let (cfg, state) = self.load(id)?;
        self.correct(id, cfg, state)
    }

    /// [`Containers::view`] of a record already read.
    fn correct(&self, id: &str, cfg: ContainerConfig, mut state: State) -> Result<View> {
        if state.status != Status::Running {
            // A restart that its monitor will no longer carry out (it died) is not pending.
            if state.restarting && !alive(state.monitor_pid, state.monitor_start) {
                state.restarting = false;
            }
            return Ok(View { cfg, state });
        }
        let ctr_alive = alive(state.pid, state.pid_start);
        let mon_alive = alive(state.monitor_pid, state.monitor_start);
        if ctr_alive && mon_alive {
            return Ok(View { cfg, state });
        }
        if !mon_alive {
            if ctr_alive {
                if let Some(pid) = state.pid {
                    // SAFETY: the pid was just verified by its start time.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
            crate::cgroups::remove_leftovers(id);
            let state = self.update_state(id, |s| {
                if s.status == Status::Running {
                    s.status = Status::Exited;
                    s.exit_code = None;
                    s.finished_at = Some(now());
                    s.error = Some("the container's monitor died; exit code unknown".into());
                }
            })?;
            return Ok(View { cfg, state });
        }
        // The container ended and its monitor is recording it: give it a moment.
        let t = Instant::now();
        loop {
            let (_, st) = self.load(id)?;
            if st.status != Status::Running || t.elapsed() > Duration::from_secs(2) {
                return Ok(View { cfg, state: st });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Every container, corrected as [`Containers::view`] does; each record is read once.
    pub fn views(&self) -> Result<Vec<View>> {
        Ok(self.views_of(self.list()?))
    }

    /// Every container corrected as [`Containers::views`] does, and the damaged records
    /// ([`Containers::damaged`]), from one reading of the records (`ps -a`).
    pub fn views_and_damaged(&self) -> Result<(Vec<View>, Vec<Damaged>)> {
        let (good, bad) = self.scan()?;
        let views = self.views_of(good);
        Ok((views, self.describe_damaged(bad, false)?))
    }

    fn views_of(&self, records: Vec<(ContainerConfig, State)>) -> Vec<View> {
        records
            .into_iter()
            .filter_map(|(cfg, state)| {
                let id = cfg.id.clone();
                self.correct(&id, cfg, state).ok()
            })
            .collect()
    }

    /// Stops every process of a running container with SIGSTOP, which needs no freezer cgroup
    /// (so rootless works on any cgroup layout), until [`Containers::unpause`].
    pub fn pause(&self, id: &str) -> Result<()> {
        let v = self.view(id)?;
        let pid = v.running_pid()?;
        if v.paused() {
            return Err(StateError::AlreadyPaused(v.cfg.name.clone()).into());
        }
        self.update_state(id, |s| s.paused = true)?;
        signal_all(pid, libc::SIGSTOP);
        self.events.emit(&Event::container("pause", &v.cfg, &[]));
        Ok(())
    }

    /// Lets a paused container's processes go on (SIGCONT).
    pub fn unpause(&self, id: &str) -> Result<()> {
        let v = self.view(id)?;
        if !v.paused() {
            return Err(StateError::NotPaused(v.cfg.name.clone()).into());
        }
        if let Some(pid) = v.state.pid {
            signal_all(pid, libc::SIGCONT);
        }
        self.update_state(id, |s| s.paused = false)?;
        self.events.emit(&Event::container("unpause", &v.cfg, &[]));
        Ok(())
    }

    /// Sends `signal` to the container's PID 1 (verified by start time). A paused container is
    /// let go first, so the signal can be handled (Docker thaws it too).
    pub fn kill(&self, id: &str, signal: i32) -> Result<()> {
        if self.view(id)?.paused() {
            self.unpause(id)?;
        }
        let v = self.view(id)?;
        if !v.running() {
            return Err(StateError::NotRunning(v.cfg.name.clone()).into());
        }
        let pid = v
            .state
            .pid
            .ok_or_else(|| StateError::NoPid(v.cfg.name.clone()))?;
        // SAFETY: the pid was verified alive with its start time by view().
        if unsafe { libc::kill(pid, signal) } != 0 {
            return Err(Error::Io {
                context: format!("signalling {}", v.cfg.name),
                source: std::io::Error::last_os_error(),
            });
        }
        self.events.emit(&Event::container(
            "kill",
            &v.cfg,
            &[("signal", signal.to_string())],
        ));
        Ok(())
    }

    /// Waits until the container is no longer running (or `limit` passes); returns its view.
    pub fn wait_exit(&self, id: &str, limit: Option<Duration>) -> Result<View> {
        let t = Instant::now();
        loop {
            let v = self.view(id)?;
            if !v.running() || limit.is_some_and(|l| t.elapsed() >= l) {
                return Ok(v);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops a running container: its stop signal, then SIGKILL after `timeout`. Marks the stop as
    /// the user's, so restart policies other than `always` leave it down. No-op if not running.
    /// A container whose record goes away meanwhile (`--rm`: its monitor removed it once it
    /// ended) is stopped: that is success, as in Docker.
    pub fn stop(&self, id: &str, timeout: Duration, signal: i32) -> Result<View> {
        let v = self.view(id)?;
        let was_up = v.running() || v.monitor_alive();
        let stopped = match self.stop_here(id, timeout, signal) {
            Err(_) if self.record_gone(id) => Ok(View {
                state: State {
                    status: Status::Exited,
                    ..v.state
                },
                cfg: v.cfg,
            }),
            r => r,
        };
        // Docker's `stop` event comes for a container that was up, after its `kill` and `die`.
        // The monitor emits `die` holding the lock it wrote the exit under: taking the lock
        // once (a record already gone has none) waits for that.
        if let (Ok(v), true) = (&stopped, was_up) {
            let _ = self.lock(id);
            self.events.emit(&Event::container("stop", &v.cfg, &[]));
        }
        stopped
    }

    /// Whether the container's record has been removed (by its `--rm` monitor, or another rm).
    fn record_gone(&self, id: &str) -> bool {
        !self.dir(id).join("config.json").exists()
    }

    fn stop_here(&self, id: &str, timeout: Duration, signal: i32) -> Result<View> {
        let v = self.view(id)?;
        // Mark first, even between two runs of a restart policy: the monitor checks the mark
        // before it starts the container again.
        if v.running() || v.monitor_alive() {
            self.set_stopped_by_user(id, true)?;
        }
        if v.restarting() {
            // The monitor sees the mark within its back-off and ends without a new run.
            return self.wait_monitor_gone(id, Duration::from_secs(10));
        }
        if !v.running() {
            return Ok(v);
        }
        let _ = self.kill(id, signal);
        let v = self.wait_exit(id, Some(timeout))?;
        if v.running() {
            let _ = self.kill(id, libc::SIGKILL);
            return self.wait_exit(id, Some(Duration::from_secs(10)));
        }
        Ok(v)
    }

    /// Waits (at most `limit`) until the container's monitor has ended; returns its view.
    fn wait_monitor_gone(&self, id: &str, limit: Duration) -> Result<View> {
        let t = Instant::now();
        loop {
            let v = self.view(id)?;
            if !v.monitor_alive() || t.elapsed() >= limit {
                return Ok(v);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Records that the user stopped (or killed) the container, so its monitor does not restart it.
    pub fn mark_stopped_by_user(&self, id: &str) -> Result<()> {
        self.set_stopped_by_user(id, true)
    }

    fn set_stopped_by_user(&self, id: &str, yes: bool) -> Result<()> {
        let p = self.dir(id).join("stopped-by-user");
        if yes {
            write_atomic(&p, b"1")?;
        } else {
            let _ = std::fs::remove_file(p);
        }
        Ok(())
    }

    /// Whether the last stop came from the user (read by the monitor's restart policy).
    pub fn stopped_by_user(&self, id: &str) -> bool {
        self.dir(id).join("stopped-by-user").exists()
    }

    /// Clears the user-stop mark (when the user starts the container again).
    pub fn clear_stopped_by_user(&self, id: &str) -> Result<()> {
        self.set_stopped_by_user(id, false)
    }

    /// Removes a container; a running one only with `force` (killed first). `remove_dir` removes
    /// the directory (its files may belong to mapped ids). A container whose record goes away
    /// while we wait (its `--rm` monitor removed it) is removed: success.
    pub fn remove(
        &self,
        id: &str,
        force: bool,
        remove_dir: &dyn Fn(&Path) -> Result<()>,
    ) -> Result<()> {
        let v = match self.view(id) {
            Err(Error::Damaged { name, .. }) => {
                return self.remove_damaged(id, &name, force, remove_dir)
            }
            other => other?,
        };
        match self.put_down_for_removal(id, force, v) {
            Err(_) if self.record_gone(id) => return Ok(()),
            r => r?,
        }
        match self.bury(id, remove_dir) {
            // Removed meanwhile (its --rm monitor was quicker): what was asked is done.
            Err(_) if self.record_gone(id) => Ok(()),
            r => r,
        }
    }

    /// Removes a container's directory: renamed out of the way (`.rm-ID`) under the container's
    /// lock, so no state write races it and no reader ever sees a half-removed record (a reader
    /// that came first finds the record gone, not damaged), then deleted. Used by `rm` and by
    /// the `--rm` monitor. A record another command removed first is fine.
    pub fn bury(&self, id: &str, remove_dir: &dyn Fn(&Path) -> Result<()>) -> Result<()> {
        let lock = match self.lock(id) {
            Err(Error::NoSuchContainer(_)) => return Ok(()),
            other => other?,
        };
        let dir = self.dir(id);
        let tomb = dir.with_file_name(format!(".rm-{id}"));
        let cfg = self.load(id).ok().map(|(c, _)| c);
        match std::fs::rename(&dir, &tomb) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            other => other.map_err(|e| Error::Io {
                context: format!("removing {}", dir.display()),
                source: e,
            })?,
        }
        drop(lock);
        if let Some(cfg) = &cfg {
            self.events.emit(&Event::container("destroy", cfg, &[]));
        }
        // The record is gone: its addresses go back (a failure here leaves a lease that the
        // next `network prune` or removal of a container takes back; the record is removed).
        let _ = self.networks.release(id);
        crate::container::records::remove_tomb(&tomb, remove_dir)
    }

    /// Gives a container created for a skiff network its address there (`--ip` if asked); a
    /// container that cannot have one is removed again, so nothing half-made stays.
    pub fn join_network(
        &self,
        cfg: &ContainerConfig,
        remove_dir: &dyn Fn(&Path) -> Result<()>,
    ) -> Result<()> {
        let Some(net) = cfg.network.network() else {
            return Ok(());
        };
        let req = crate::network::records::LeaseRequest {
            id: cfg.id.clone(),
            name: cfg.name.clone(),
            ip: cfg.ip,
            aliases: cfg.network_aliases.clone(),
        };
        match self.networks.lease(net, &req) {
            Ok(_) => Ok(()),
            Err(e) => {
                let _ = self.bury(&cfg.id, remove_dir);
                Err(e)
            }
        }
    }

    /// For `remove`: refuses an active container without `force`, kills it with it and waits until
    /// its monitor is done with it.
    fn put_down_for_removal(&self, id: &str, force: bool, v: View) -> Result<()> {
        if v.active() {
            if !force {
                return Err(Error::Running(v.cfg.name.clone()));
            }
            self.set_stopped_by_user(id, true)?;
            let _ = self.kill(id, libc::SIGKILL);
            let v = self.wait_exit(id, Some(Duration::from_secs(10)))?;
            // Its monitor records the end (or gives up a pending restart) before the files go.
            let v = if v.running() {
                v
            } else {
                self.wait_monitor_gone(id, Duration::from_secs(10))?
            };
            if v.running() || v.restarting() {
                return Err(StateError::DidNotDie(v.cfg.name.clone()).into());
            }
        }
        Ok(())
    }

    /// Removes a container whose record cannot be read. Its state is unknown, so a live monitor
    /// (found by its command line) means it may run: `force` kills the monitor (its container's
    /// PID 1 dies with it, PDEATHSIG), otherwise the removal is refused.
    fn remove_damaged(
        &self,
        id: &str,
        name: &str,
        force: bool,
        remove_dir: &dyn Fn(&Path) -> Result<()>,
    ) -> Result<()> {
        let monitors = crate::container::records::monitors_of(id);
        if !monitors.is_empty() {
            if !force {
                return Err(Error::Running(name.to_string()));
            }
            self.set_stopped_by_user(id, true)?;
            for pid in &monitors {
                // SAFETY: signalling a monitor of this container found in /proc just now.
                unsafe { libc::kill(*pid, libc::SIGKILL) };
            }
            let t = Instant::now();
            while !crate::container::records::monitors_of(id).is_empty() {
                if t.elapsed() > Duration::from_secs(10) {
                    return Err(StateError::MonitorDidNotDie(name.to_string()).into());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.bury(id, remove_dir)
    }

    /// Renames a container (names stay unique per user).
    pub fn rename(&self, id: &str, new: &str) -> Result<()> {
        if !crate::container::names::valid(new) {
            return Err(super::NameError::Container(new.to_string()).into());
        }
        let _names = LockFile::acquire(&self.dir(".names.lock"))?;
        if self.list()?.iter().any(|(c, _)| c.name == new) {
            return Err(Error::NameInUse(new.to_string()));
        }
        let _lock = self.lock(id)?;
        let (mut cfg, _) = self.load(id)?;
        let old = std::mem::replace(&mut cfg.name, new.to_string());
        self.networks.rename_container(id, new)?;
        self.save_config(id, &cfg)?;
        self.events.emit(&Event::container(
            "rename",
            &cfg,
            &[("oldName", format!("/{old}"))],
        ));
        Ok(())
    }

    /// The container's processes as it sees them (its pids, uids and user names), by pid.
    pub fn top(&self, id: &str) -> Result<Vec<super::top::Proc>> {
        let v = self.view(id)?;
        let pid = v.running_pid()?;
        let passwd = super::top::container_passwd(&v.cfg.layers, self.dir(id).join("upper"));
        Ok(super::top::gather(
            &procfs::container_processes(pid),
            pid,
            &passwd,
        ))
    }
}
