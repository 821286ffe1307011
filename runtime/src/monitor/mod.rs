//! The per-container monitor: the container's parent and a subreaper. It starts the container in
//! its namespaces, then copies output to the log (and to the terminal when attached), forwards
//! stdin and signals, records pid, start time, exit code and finish time in `state.json`, and
//! removes the container afterwards for `--rm`. One small single-threaded process per container;
//! with `-d` it runs in its own session and outlives the CLI.

pub mod attach;
pub mod protocol;
pub mod residency;
pub mod start;

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::container::config::{ContainerConfig, Status};
use crate::container::logs::LogWriter;
use crate::container::records::Containers;
use crate::error::{Ctx, Error, Result};
use crate::hooks::{Event, ExitEvent, StartEvent};
use crate::network::holder::{HolderNs, Session};
use crate::network::iface::Address;
use crate::network::netlink::Netns;
use crate::network::records::{Lease, Network, Networks};
use crate::network::NetworkMode;
use crate::process::init::{child_main, ChildSetup};
use crate::sys::procfs;
use crate::sys::tty::RawTerminal;
use crate::userns::identity::Identity;
use protocol::Report;

/// How the monitor was started.
pub struct MonitorOptions<'a> {
    /// The user's terminal is ours: copy output to it, read stdin from it.
    pub attached: bool,
    /// Where to report "started" or the start error to a waiting `run -d`.
    pub ready_fd: Option<RawFd>,
    /// Forward SIGINT, SIGTERM, … to the container (`--sig-proxy`).
    pub sig_proxy: bool,
    /// Removes a container directory (files may belong to mapped ids), for `--rm`.
    pub remove: &'a dyn Fn(&Path) -> Result<()>,
    /// Cap on the log file (config.toml `[logs] max_size`).
    pub log_max: Option<u64>,
    /// Hands after-start/after-exit to whatever subscribes (a `skiff __hook` helper) without
    /// waiting for them to be dealt with: the caller waits, once `run` returns. `None` when
    /// nothing subscribes, so nothing runs.
    pub notify: Option<&'a dyn Fn(&Event)>,
}

const PROXIED: [Signal; 6] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Writes `reports` to the start-up pipe of a detached run and closes it.
fn report(fd: Option<RawFd>, reports: &[Report]) {
    if let Some(fd) = fd {
        // SAFETY: the fd was handed to us for this purpose; we take ownership and close it.
        let mut f = unsafe { File::from_raw_fd(fd) };
        for r in reports {
            let _ = writeln!(f, "{}", r.line());
        }
    }
}

/// Writes /etc/hosts, /etc/hostname and /etc/resolv.conf for the container into its directory.
/// On a skiff network (`on`: its address and the network's gateway) its own name resolves to
/// its address there, and the holder's name server at the gateway answers for the others.
fn write_etc_files(
    cfg: &ContainerConfig,
    ctr: &Path,
    on: Option<(std::net::Ipv4Addr, std::net::Ipv4Addr)>,
) -> Result<()> {
    let own = on.map(|(ip, _)| ip);
    let io = |p: &Path, e: std::io::Error| Error::Io {
        context: format!("writing {}", p.display()),
        source: e,
    };
    let generated = || {
        format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{}\t{}\n",
            own.map_or("127.0.1.1".to_string(), |ip| ip.to_string()),
            if own.is_some() && cfg.hostname != cfg.name {
                format!("{} {}", cfg.hostname, cfg.name)
            } else {
                cfg.hostname.clone()
            }
        )
    };
    // With the host's network, the host's own /etc/hosts, as in Docker.
    let mut hosts = match cfg.network {
        NetworkMode::Host => std::fs::read_to_string("/etc/hosts")
            .ok()
            .filter(|h| !h.is_empty())
            .map(|h| if h.ends_with('\n') { h } else { h + "\n" })
            .unwrap_or_else(generated),
        _ => generated(),
    };
    for (name, ip) in &cfg.extra_hosts {
        hosts.push_str(&format!("{ip}\t{name}\n"));
    }
    let resolv = match cfg.network {
        NetworkMode::None => String::new(),
        _ if !cfg.dns.is_empty() => cfg
            .dns
            .iter()
            .map(|d| format!("nameserver {d}\n"))
            .collect(),
        // slirp4netns forwards DNS sent here to the host's resolvers (even ones on its loopback).
        NetworkMode::Slirp4netns => {
            format!("nameserver {}\n", crate::network::slirp4netns::DNS_FORWARD)
        }
        // The holder answers for the network's containers and passes the rest to slirp4netns.
        NetworkMode::Bridge(_) => on.map_or(String::new(), |(_, gw)| format!("nameserver {gw}\n")),
        _ => std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
    };
    for (name, text) in [
        ("hosts", hosts),
        ("hostname", format!("{}\n", cfg.hostname)),
        ("resolv.conf", resolv),
    ] {
        let p = ctr.join(name);
        std::fs::write(&p, text).map_err(|e| io(&p, e))?;
    }
    Ok(())
}

/// Runs the container to completion; returns the exit code for the monitor to exit with.
pub fn run(containers: &Containers, id: &str, opts: MonitorOptions<'_>) -> i32 {
    match run_inner(containers, id, &opts) {
        Ok(code) => code,
        Err(e) => {
            let msg = e.to_string();
            let _ = containers.update_state(id, |s| {
                s.status = Status::Exited;
                s.ports.clear();
                s.error = Some(msg.clone());
                s.exit_code.get_or_insert(125);
                s.finished_at = Some(now());
            });
            if opts.attached {
                eprintln!("Error: {msg}");
            }
            // `--rm` holds for a start that failed early too (ids not mapped, say); removed
            // before the report, so `run -d` returns with the record gone.
            if containers.load(id).is_ok_and(|(cfg, _)| cfg.auto_remove) {
                let _ = containers.bury(id, opts.remove);
            }
            report(
                opts.ready_fd,
                &[Report::Failed {
                    code: 125,
                    message: msg,
                }],
            );
            125
        }
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "pipe".into())
}

fn run_inner(containers: &Containers, id: &str, opts: &MonitorOptions<'_>) -> Result<i32> {
    let (mut cfg, _) = containers.load(id)?;
    let ctr = containers.dir(id);
    // Read once: a network in use and a container's lease there do not change while it lives.
    let mut placed = Placements::find(&cfg, &containers.networks);
    let on = match &placed {
        Some(Ok(p)) => Some((p.first.lease.ip, p.first.net.gateway)),
        _ => None,
    };
    write_etc_files(&cfg, &ctr, on)?;
    let mut log = LogWriter::open(&containers.log_path(id), opts.log_max)?;
    let who = Identity::current();

    // SAFETY: plain prctl: orphans in our subtree are reparented to us, so we can reap them.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.add(Signal::SIGWINCH);
    for s in PROXIED {
        mask.add(s);
    }
    mask.thread_block().ctx(|| "blocking signals".into())?;
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .ctx(|| "signalfd".into())?;

    let mut ready_fd = opts.ready_fd;
    let mut hub = attach::Hub::bind(&containers.attach_socket(id));
    let mut backoff = Duration::from_millis(100);
    loop {
        let ended = match launch(&cfg, &ctr, &who, &containers.networks, placed.as_ref())? {
            Launch::Failed { code, msg } => {
                // As at an exit: `die` before the lock is let go, so a `stop` follows it.
                containers.update_state_then(
                    id,
                    |s| {
                        s.status = Status::Exited;
                        s.ports.clear();
                        s.exit_code = Some(code);
                        s.error = Some(msg.clone());
                        s.started_at = Some(now());
                        s.finished_at = Some(now());
                    },
                    || {
                        containers.events.emit(&crate::events::Event::container(
                            "die",
                            &cfg,
                            &[("exitCode", code.to_string())],
                        ))
                    },
                )?;
                hub.finish(code);
                if opts.attached {
                    eprintln!("Error: {msg}");
                }
                let failed = [Report::Failed {
                    code,
                    message: msg.clone(),
                }];
                if cfg.auto_remove {
                    // Before the report, so `run -d` returns with the record gone.
                    let removed = containers.bury(id, opts.remove);
                    report(ready_fd.take(), &failed);
                    removed?;
                } else {
                    report(ready_fd.take(), &failed);
                }
                return Ok(code);
            }
            Launch::Started(mut l) => {
                // First: an observer (one line to the hook helper, not waited for) then runs
                // while the state is written.
                if let Some(notify) = opts.notify {
                    notify(&Event::AfterStart(StartEvent {
                        id: id.to_string(),
                        name: cfg.name.clone(),
                        image: cfg.image.clone(),
                        pid: l.child.as_raw(),
                    }));
                }
                let me = std::process::id() as i32;
                let bound = std::mem::take(&mut l.ports);
                containers.update_state(id, |s| {
                    s.status = Status::Running;
                    s.ports = bound;
                    s.pid = Some(l.child.as_raw());
                    s.pid_start = procfs::start_time(l.child.as_raw());
                    s.monitor_pid = Some(me);
                    s.monitor_start = procfs::start_time(me);
                    s.started_at = Some(now());
                    s.finished_at = None;
                    s.exit_code = None;
                    s.error = None;
                    s.restarting = false;
                    s.oom_killed = false;
                })?;
                containers
                    .events
                    .emit(&crate::events::Event::container("start", &cfg, &[]));
                for w in &l.warnings {
                    if opts.attached {
                        eprintln!("WARNING: {w}");
                    }
                }
                let mut reports: Vec<Report> =
                    l.warnings.iter().cloned().map(Report::Warning).collect();
                reports.push(Report::Started);
                report(ready_fd.take(), &reports);
                let started = Instant::now();
                let stdin_is_tty = nix::unistd::isatty(std::io::stdin()).unwrap_or(false);
                let raw = if opts.attached && cfg.process.terminal && stdin_is_tty {
                    RawTerminal::enter(0)
                } else {
                    None
                };
                let forward_stdin = opts.attached && (cfg.process.stdin || cfg.process.terminal);
                let stdin_to = if forward_stdin {
                    l.in_w
                        .take()
                        .or_else(|| l.pty.as_ref().and_then(|m| m.try_clone().ok()))
                } else {
                    None
                };
                // Attachers' input goes to the container's stdin when it has one (-i) and this
                // terminal does not own it; written without blocking.
                let attach_in = if cfg.process.stdin && stdin_to.is_none() {
                    l.in_w
                        .take()
                        .or_else(|| l.pty.as_ref().and_then(|m| m.try_clone().ok()))
                        .filter(|f| {
                            nix::fcntl::fcntl(
                                f,
                                nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
                            )
                            .is_ok()
                        })
                } else {
                    None
                };
                let ended = pump(
                    l.child,
                    &sfd,
                    &mut log,
                    opts,
                    Streams {
                        pty: l.pty.as_ref(),
                        out: l.out.as_ref(),
                        err: l.err.as_ref(),
                        stdin_to,
                        attach_in,
                    },
                    &mut hub,
                );
                drop(raw);
                let _ = log.flush();
                let signal = match ended {
                    Some(WaitStatus::Signaled(_, sig, _)) => Some(sig as i32),
                    _ => None,
                };
                let oom_killed = l.cgroup.as_ref().is_some_and(|c| c.oom_killed());
                Ended {
                    code: ended.and_then(procfs::exit_code),
                    signal,
                    oom_killed,
                    ran: started.elapsed(),
                }
            }
        };
        let code = ended.code;
        // Read again: `update --restart` may have changed the policy while this ran, and a
        // rename shows in its `die` event.
        let (cfg_now, st) = containers.load(id)?;
        let again =
            cfg_now
                .restart
                .should_restart(code, st.restart_count, containers.stopped_by_user(id));
        // Handed over first: the observers run while the state is written and, for --rm, the
        // container removed (the caller waits for them once this returns).
        if let Some(notify) = opts.notify {
            notify(&Event::AfterExit(ExitEvent {
                id: id.to_string(),
                name: cfg.name.clone(),
                image: cfg.image.clone(),
                exit_code: code,
                signal: ended.signal,
                oom_killed: ended.oom_killed,
                duration_ms: u64::try_from(ended.ran.as_millis()).unwrap_or(u64::MAX),
                will_restart: again,
                removing: !again && cfg.auto_remove,
            }));
        }
        // The events are emitted before the lock is let go: a `stop` that saw the exit waits
        // for the lock, so its own event comes after the `die`.
        containers.update_state_then(
            id,
            |s| {
                s.status = Status::Exited;
                s.ports.clear();
                s.exit_code = code;
                s.finished_at = Some(now());
                s.restarting = again;
                s.paused = false;
                s.oom_killed = ended.oom_killed;
                if again {
                    s.restart_count += 1;
                }
            },
            || {
                // Docker's `oom` event comes before the `die` of a container the OOM killer hit.
                if ended.oom_killed {
                    containers
                        .events
                        .emit(&crate::events::Event::container("oom", &cfg_now, &[]));
                }
                containers.events.emit(&crate::events::Event::container(
                    "die",
                    &cfg_now,
                    &[("exitCode", code.unwrap_or(125).to_string())],
                ));
            },
        )?;
        hub.finish(code.unwrap_or(125));
        if !again {
            if cfg.auto_remove {
                containers.bury(id, opts.remove)?;
            }
            return Ok(code.unwrap_or(125));
        }
        // Docker's back-off: wait a little longer after each quick failure, at most a minute;
        // a user's stop (or rm -f) during it ends the monitor at once, without another run.
        let until = Instant::now() + backoff;
        backoff = (backoff * 2).min(Duration::from_secs(60));
        while Instant::now() < until && !containers.stopped_by_user(id) {
            std::thread::sleep(Duration::from_millis(50));
        }
        if containers.stopped_by_user(id) {
            containers.update_state(id, |s| s.restarting = false)?;
            return Ok(code.unwrap_or(125));
        }
        // Read once more before the next run: `update` may have changed its limits, and
        // `network connect`/`disconnect` its networks, while it ran or waited.
        if let Ok((now_cfg, _)) = containers.load(id) {
            cfg.limits = now_cfg.limits.clone();
            placed = Placements::find(&now_cfg, &containers.networks);
        }
    }
}

/// How a container's first process ended.
struct Ended {
    code: Option<i32>,
    signal: Option<i32>,
    oom_killed: bool,
    ran: Duration,
}

/// A started (or failed) container process and our ends of its stdio.
enum Launch {
    Started(Launched),
    Failed { code: i32, msg: String },
}

struct Launched {
    child: Pid,
    /// slirp4netns, for a private network: it exits when this is dropped.
    net: Option<crate::network::slirp4netns::Helper>,
    /// The forwarder of its published ports on a skiff network: it exits when this is dropped.
    forward: Option<crate::network::forward::Forwarder>,
    /// Its published ports as bound (free ones picked), for the state.
    ports: Vec<crate::network::ports::PortSpec>,
    /// The container's cgroups, for limits: removed when this is dropped (after `net`, so
    /// slirp4netns has gone first; it is not in them anyway).
    cgroup: Option<crate::cgroups::Cgroup>,
    /// What the user should know but that did not stop the start (limits that could not apply).
    warnings: Vec<String>,
    pty: Option<OwnedFd>,
    out: Option<OwnedFd>,
    err: Option<OwnedFd>,
    in_w: Option<OwnedFd>,
}

/// Makes the stdio, clones the child into its namespaces, maps its ids and waits until it has
/// exec'd the command (EOF on the error pipe) or failed (text on it).
fn launch(
    cfg: &ContainerConfig,
    ctr: &Path,
    who: &Identity,
    networks: &Networks,
    placed: Option<&std::result::Result<Placements, String>>,
) -> Result<Launch> {
    // On a skiff network: the holder, found or started, its lock held until the container is
    // plumbed in.
    let mut on_net = match placed {
        Some(Ok(place)) => match join(place, who, networks) {
            Ok(j) => Some(j),
            Err(msg) => return Ok(Launch::Failed { code: 125, msg }),
        },
        Some(Err(msg)) => {
            return Ok(Launch::Failed {
                code: 125,
                msg: msg.clone(),
            })
        }
        None => None,
    };
    let tty = cfg.process.terminal;
    let stdin_is_tty = nix::unistd::isatty(std::io::stdin()).unwrap_or(false);
    let devnull = File::open("/dev/null").map_err(|e| Error::Io {
        context: "opening /dev/null".into(),
        source: e,
    })?;
    let mut l = Launched {
        child: Pid::from_raw(0),
        net: None,
        forward: None,
        ports: Vec::new(),
        cgroup: None,
        warnings: Vec::new(),
        pty: None,
        out: None,
        err: None,
        in_w: None,
    };
    let dup = |f: &OwnedFd| f.try_clone().ctx(|| "duplicating a descriptor".into());
    // With -t the child makes its pty inside the container, once its devpts is mounted, and sends
    // the master back on this channel; until then its stdio is /dev/null.
    let mut console: Option<(OwnedFd, OwnedFd)> = None;
    let winsize = if tty && stdin_is_tty {
        crate::sys::tty::window_size(0)
    } else {
        None
    };
    let child_fds: [OwnedFd; 3] = if tty {
        console =
            Some(crate::process::console::channel().ctx(|| "making the terminal channel".into())?);
        let null: OwnedFd = devnull.into();
        [dup(&null)?, dup(&null)?, null]
    } else {
        let (or, ow) = pipe()?;
        let (er, ew) = pipe()?;
        // With -i a pipe even when detached: later attachers write to it (Docker keeps a
        // `run -d -i` container's stdin open).
        let stdin_child: OwnedFd = if cfg.process.stdin {
            let (ir, iw) = pipe()?;
            l.in_w = Some(iw);
            ir
        } else {
            devnull
                .try_clone()
                .ctx(|| "duplicating a descriptor".into())?
                .into()
        };
        l.out = Some(or);
        l.err = Some(er);
        [stdin_child, ow, ew]
    };
    let (sync_r, sync_w) = pipe()?;
    let (errp_r, errp_w) = pipe()?;
    let userns = !who.is_root();
    let mut flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC;
    if userns {
        flags |= CloneFlags::CLONE_NEWUSER;
    }
    if cfg.network.private() {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    let setup = ChildSetup {
        cfg,
        ctr,
        ifaces: on_net
            .as_ref()
            .map(|j| j.place.addresses())
            .unwrap_or_default(),
        userns,
        gid5_mapped: who.maps_gid5(),
        sync_fd: sync_r.as_raw_fd(),
        err_fd: errp_w.as_raw_fd(),
        stdio: [
            child_fds[0].as_raw_fd(),
            child_fds[1].as_raw_fd(),
            child_fds[2].as_raw_fd(),
        ],
        console: console.as_ref().map(|(_, child_end)| child_end.as_raw_fd()),
        winsize,
    };
    let mut stack = vec![0u8; 1 << 20];
    // Rootless on a network, the container's user namespace is made under the holder's (see
    // `clone_under`), which maps it; otherwise the container's own is mapped below.
    let under = match (&on_net, userns) {
        (Some(j), true) => match j.session.namespaces() {
            Ok(ns) => Some(ns),
            Err(msg) => return Ok(Launch::Failed { code: 125, msg }),
        },
        _ => None,
    };
    let cloned = match &under {
        Some(ns) => match clone_under(ns, who, flags, &mut stack, &|| child_main(&setup)) {
            Ok(c) => Ok(c),
            Err(msg) => return Ok(Launch::Failed { code: 125, msg }),
        },
        // SAFETY: no CLONE_VM: the child gets a copy of this single-threaded process, like
        // fork, and runs child_main on the given stack until it execs or exits.
        None => unsafe {
            nix::sched::clone(
                Box::new(|| child_main(&setup)),
                &mut stack,
                flags,
                Some(libc::SIGCHLD),
            )
        },
    };
    let child = cloned.ctx(|| {
        format!(
            "creating the container's namespaces{}",
            if userns {
                " (are unprivileged user namespaces enabled?)"
            } else {
                ""
            }
        )
    })?;
    drop(child_fds);
    let console = console.map(|(ours, _child_end)| ours);
    drop(sync_r);
    drop(errp_w);
    let mut sync_w = File::from(sync_w);
    if userns && under.is_none() {
        if let Err(e) = who.write_maps(child.as_raw()) {
            let _ = nix::sys::signal::kill(child, Signal::SIGKILL);
            let _ = waitpid(child, None);
            return Err(e.into());
        }
    }
    if cfg.limits.any() {
        // Before the child goes on, so its command starts inside its limits.
        match crate::cgroups::apply(&cfg.id, child.as_raw(), &cfg.limits) {
            Ok(cg) => l.cgroup = Some(cg),
            Err(why) => l.warnings.push(format!(
                "resource limits ignored: {why} ({})",
                if userns {
                    "limits for rootless containers are not supported yet: they need cgroup v2 delegated through systemd"
                } else {
                    "this cgroup setup does not allow them"
                }
            )),
        }
    }
    // The ids are mapped and the limits set: the child prepares its root meanwhile, and waits
    // for the second byte before it configures its network.
    let _ = sync_w.write_all(&[1]);
    let mut errp_r = File::from(errp_r);
    // A plumbing step that failed: the child is killed; if it had failed first (its root,
    // say), its own message is the one that counts.
    let mut failed = |msg: String| {
        let _ = nix::sys::signal::kill(child, Signal::SIGKILL);
        let status = waitpid(child, None).ok();
        let mut own = String::new();
        let _ = std::io::Read::read_to_string(&mut errp_r, &mut own);
        if own.trim().is_empty() {
            Launch::Failed { code: 125, msg }
        } else {
            Launch::Failed {
                code: status
                    .and_then(crate::sys::procfs::exit_code)
                    .unwrap_or(125),
                msg: own.trim().to_string(),
            }
        }
    };
    // What -p asked and, with -P, the exposed ports; free ports are picked now, at each start.
    let ports = crate::network::ports::to_publish(&cfg.ports, &cfg.exposed, cfg.publish_all);
    if cfg.network == NetworkMode::Slirp4netns {
        // Before the child goes on: its command starts with the network up and ports published.
        match crate::network::slirp4netns::connect(child.as_raw(), &ports, ctr, userns) {
            Ok((helper, bound)) => {
                l.net = Some(helper);
                l.ports = bound;
            }
            Err(msg) => return Ok(failed(msg)),
        }
    }
    if let Some(j) = on_net.as_mut() {
        // Before the child goes on: it configures eth0 first thing.
        let plumbed = j.place.all().try_for_each(|(iface, p)| {
            j.session.ensure_bridge(&p.net)?;
            j.session
                .attach(&p.net, &cfg.id, &p.lease, Netns::Pid(child.as_raw()), iface)
        });
        let plumbed = plumbed.and_then(|()| {
            if ports.is_empty() {
                return Ok(());
            }
            let ns = j.session.namespaces()?;
            let ip = j.place.first.lease.ip;
            let (forward, bound) = crate::network::forward::start(&ports, ip, ns)?;
            l.forward = Some(forward);
            l.ports = bound;
            Ok(())
        });
        if let Err(msg) = plumbed {
            return Ok(failed(msg));
        }
    }
    drop(on_net);
    let _ = sync_w.write_all(&[1]);
    drop(sync_w);
    let mut errmsg = String::new();
    let _ = std::io::Read::read_to_string(&mut errp_r, &mut errmsg);
    if !errmsg.trim().is_empty() {
        let code = waitpid(child, None)
            .ok()
            .and_then(crate::sys::procfs::exit_code)
            .unwrap_or(125);
        return Ok(Launch::Failed {
            code,
            msg: errmsg.trim().to_string(),
        });
    }
    if let Some(sock) = console {
        l.pty = crate::process::console::try_recv_fd(sock.as_raw_fd());
        if l.pty.is_none() {
            let _ = nix::sys::signal::kill(child, Signal::SIGKILL);
            let _ = waitpid(child, None);
            return Ok(Launch::Failed {
                code: 125,
                msg: "the container's terminal did not reach the monitor".into(),
            });
        }
    }
    l.child = child;
    Ok(Launch::Started(l))
}

/// Where a container goes on its skiff network: the network's record and its lease there.
struct Placement {
    net: Network,
    lease: Lease,
}

impl Placement {
    fn find(
        cfg: &ContainerConfig,
        name: &str,
        networks: &Networks,
    ) -> std::result::Result<Placement, String> {
        let net = networks.find(name).map_err(|e| e.to_string())?;
        let lease = net.leases.get(&cfg.id).cloned().ok_or_else(|| {
            format!(
                "container {} has no address on network {name}: remove it and create it again",
                cfg.name
            )
        })?;
        Ok(Placement { net, lease })
    }

    /// What its interface gets: on its first network a default route (unless the network is
    /// internal), on the others none.
    fn address(&self, first: bool) -> Address {
        Address {
            ip: self.lease.ip,
            prefix: self.net.subnet.prefix(),
            gateway: (first && !self.net.internal).then_some(self.net.gateway),
        }
    }
}

/// Every skiff network a container is on: its first (`eth0`), then those `network connect`
/// added, each with its interface.
struct Placements {
    first: Placement,
    more: Vec<(String, Placement)>,
}

impl Placements {
    /// Read at each start: the records of its networks and its leases there (`None` when it is
    /// not on a skiff network).
    fn find(
        cfg: &ContainerConfig,
        networks: &Networks,
    ) -> Option<std::result::Result<Placements, String>> {
        let first = cfg.network.network()?;
        Some((|| {
            let first = Placement::find(cfg, first, networks)?;
            let more = cfg
                .connected
                .iter()
                .map(|c| Ok((c.iface.clone(), Placement::find(cfg, &c.network, networks)?)))
                .collect::<std::result::Result<Vec<_>, String>>()?;
            Ok(Placements { first, more })
        })())
    }

    /// Each network with the interface it gets, the first first.
    fn all(&self) -> impl Iterator<Item = (&str, &Placement)> {
        std::iter::once((crate::network::iface::CONTAINER_IFACE, &self.first))
            .chain(self.more.iter().map(|(i, p)| (i.as_str(), p)))
    }

    /// What the container's init configures.
    fn addresses(&self) -> Vec<(String, Address)> {
        self.all()
            .enumerate()
            .map(|(n, (iface, p))| (iface.to_string(), p.address(n == 0)))
            .collect()
    }
}

/// A container about to join its network: where it goes, and the holder's lock held meanwhile.
struct Joining<'a> {
    place: &'a Placements,
    session: Session,
}

fn join<'a>(
    place: &'a Placements,
    who: &Identity,
    networks: &Networks,
) -> std::result::Result<Joining<'a>, String> {
    let exe = std::env::current_exe().map_err(|e| format!("finding skiff-monitor: {e}"))?;
    let session = Session::open(networks, who, &exe)?;
    Ok(Joining { place, session })
}

/// Clones the container's init with `flags` (a new user namespace among them) from a process
/// that has joined the network holder's user namespace, so the container's user namespace is a
/// child of the holder's: the holder, root there, may then move an interface into the
/// container's network namespace. That process maps the child (the holder's ids, one to one, as
/// the holder holds the user's mapping) and exits; the child, an orphan, is reparented to this
/// monitor (a subreaper), which reaps it as its own.
fn clone_under(
    holder: &HolderNs,
    who: &Identity,
    flags: CloneFlags,
    stack: &mut [u8],
    child: &dyn Fn() -> isize,
) -> std::result::Result<Pid, String> {
    let fds = holder.fds();
    // One line per range of the holder's map: a line of a child's map must fall inside one.
    let same = |ranges: Option<&[crate::userns::idmap::Range]>| match ranges {
        Some(rs) => rs
            .iter()
            .map(|r| format!("{} {} {}\n", r.inside, r.inside, r.count))
            .collect::<String>(),
        None => "0 0 1\n".to_string(),
    };
    let ids = same(who.map().map(|m| m.uids.as_slice()));
    let gids = same(who.map().map(|m| m.gids.as_slice()));
    let (msg_r, msg_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    // SAFETY: single-threaded; the forked process only makes system calls and exits.
    match unsafe { nix::unistd::fork() }.map_err(|e| format!("fork: {e}"))? {
        nix::unistd::ForkResult::Child => {
            drop(msg_r);
            let report = (|| -> std::result::Result<Pid, String> {
                fds.enter_user()
                    .map_err(|e| format!("joining the network holder's user namespace: {e}"))?;
                // SAFETY: as in `launch`: no CLONE_VM, the child runs `child` on `stack`.
                let c = unsafe {
                    nix::sched::clone(Box::new(child), stack, flags, Some(libc::SIGCHLD))
                }
                .map_err(|e| format!("creating the container's namespaces: {e}"))?;
                for (f, lines) in [("uid_map", &ids), ("gid_map", &gids)] {
                    if let Err(e) = std::fs::write(format!("/proc/{c}/{f}"), lines) {
                        let _ = nix::sys::signal::kill(c, Signal::SIGKILL);
                        return Err(format!("writing the container's {f}: {e}"));
                    }
                }
                Ok(c)
            })();
            let line = match report {
                Ok(c) => format!("ok {c}"),
                Err(e) => e,
            };
            let _ = nix::unistd::write(&msg_w, line.as_bytes());
            // SAFETY: leaving the forked process without the parent's destructors.
            unsafe { libc::_exit(0) }
        }
        nix::unistd::ForkResult::Parent { child: mid } => {
            drop(msg_w);
            // Not to the end: the container's init holds the write end until it execs. Its
            // maker wrote the whole line before it exited.
            let _ = waitpid(mid, None);
            let mut buf = [0u8; 512];
            let _ = nix::fcntl::fcntl(
                &msg_r,
                nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
            );
            let n = nix::unistd::read(&msg_r, &mut buf).unwrap_or(0);
            let line = String::from_utf8_lossy(&buf[..n]).into_owned();
            match line.strip_prefix("ok ").and_then(|p| p.parse().ok()) {
                Some(pid) => Ok(Pid::from_raw(pid)),
                None if line.is_empty() => Err("the process making the container died".into()),
                None => Err(line),
            }
        }
    }
}

struct Streams<'a> {
    pty: Option<&'a OwnedFd>,
    out: Option<&'a OwnedFd>,
    err: Option<&'a OwnedFd>,
    stdin_to: Option<OwnedFd>,
    /// The container's stdin for attachers (non-blocking).
    attach_in: Option<OwnedFd>,
}

/// How long a container runs before its monitor drops its start-up pages (see `residency`).
const TRIM_AFTER: Duration = Duration::from_millis(250);

/// The event loop: output to log and terminal, stdin to the container, signals, reaping.
fn pump(
    child: Pid,
    sfd: &SignalFd,
    log: &mut LogWriter,
    opts: &MonitorOptions<'_>,
    mut st: Streams<'_>,
    hub: &mut attach::Hub,
) -> Option<WaitStatus> {
    let mut ended: Option<WaitStatus> = None;
    let mut outputs: Vec<(BorrowedFd<'_>, &'static str)> = Vec::new();
    if let Some(p) = st.pty {
        outputs.push((p.as_fd(), "stdout"));
    }
    if let Some(o) = st.out {
        outputs.push((o.as_fd(), "stdout"));
    }
    if let Some(e) = st.err {
        outputs.push((e.as_fd(), "stderr"));
    }
    let stdin = std::io::stdin();
    let mut buf = vec![0u8; 64 * 1024];
    let started = Instant::now();
    let mut trimmed = false;
    // Attachers' bytes not yet taken by the container's stdin.
    let mut pending: Vec<u8> = Vec::new();
    loop {
        if outputs.is_empty() && ended.is_some() {
            break;
        }
        let mut fds: Vec<PollFd<'_>> = outputs
            .iter()
            .map(|(fd, _)| PollFd::new(*fd, PollFlags::POLLIN))
            .collect();
        fds.push(PollFd::new(sfd.as_fd(), PollFlags::POLLIN));
        let sig_idx = fds.len() - 1;
        let stdin_idx = st.stdin_to.as_ref().map(|_| {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            fds.len() - 1
        });
        let pending_idx = match (&st.attach_in, pending.is_empty()) {
            (Some(to), false) => {
                fds.push(PollFd::new(to.as_fd(), PollFlags::POLLOUT));
                Some(fds.len() - 1)
            }
            _ => None,
        };
        hub.hold_input = !pending.is_empty();
        let hub_idx = fds.len();
        fds.extend(hub.poll_fds());
        // Once the container has exited, only drain what is already buffered.
        let timeout = if ended.is_some() {
            PollTimeout::from(200u16)
        } else if !trimmed {
            let left = TRIM_AFTER.saturating_sub(started.elapsed());
            PollTimeout::try_from(left).unwrap_or(PollTimeout::ZERO)
        } else {
            PollTimeout::NONE
        };
        let polled = poll(&mut fds, timeout);
        // A container that lives past its first moments gets a small monitor: its start-up pages
        // go (short `run --rm` commands end first and never pay for the trim).
        if !trimmed && started.elapsed() >= TRIM_AFTER {
            crate::monitor::residency::release_clean_file_pages();
            trimmed = true;
        }
        match polled {
            Ok(0) if ended.is_some() => break,
            Ok(0) => continue,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
        }
        let revents: Vec<PollFlags> = fds
            .iter()
            .map(|f| f.revents().unwrap_or(PollFlags::empty()))
            .collect();
        drop(fds);
        let mut closed = Vec::new();
        for (i, (fd, stream)) in outputs.iter().enumerate() {
            if revents[i].intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
                match nix::unistd::read(fd, &mut buf) {
                    Ok(0) | Err(nix::errno::Errno::EIO) => closed.push(i),
                    Ok(n) => {
                        log.record(stream, &buf[..n]);
                        let kind = if *stream == "stderr" {
                            attach::OUT_STDERR
                        } else {
                            attach::OUT_STDOUT
                        };
                        hub.broadcast(kind, &buf[..n]);
                        if opts.attached {
                            let _ = if *stream == "stderr" {
                                std::io::stderr().write_all(&buf[..n])
                            } else {
                                std::io::stdout()
                                    .write_all(&buf[..n])
                                    .and_then(|_| std::io::stdout().flush())
                            };
                        }
                    }
                    Err(nix::errno::Errno::EINTR) | Err(nix::errno::Errno::EAGAIN) => {}
                    Err(_) => closed.push(i),
                }
            }
        }
        for i in closed.into_iter().rev() {
            outputs.remove(i);
        }
        // Layout of the poll set: the outputs as they were, the signalfd, stdin if forwarded, the
        // container's stdin while attachers' bytes wait for it, then the attach hub's.
        if pending_idx.is_some_and(|i| !revents[i].is_empty()) {
            if let Some(to) = &st.attach_in {
                if !attach::write_stdin(to, &mut pending) {
                    st.attach_in = None;
                    pending.clear();
                }
            }
        }
        hub.handle(&revents[hub_idx..], &mut |input| match input {
            attach::Input::Stdin(data) => {
                if let Some(to) = &st.attach_in {
                    pending.extend_from_slice(&data);
                    if !attach::write_stdin(to, &mut pending) {
                        st.attach_in = None;
                        pending.clear();
                    }
                }
            }
            attach::Input::Resize(rows, cols) => {
                if let Some(p) = st.pty {
                    let ws = nix::pty::Winsize {
                        ws_row: rows,
                        ws_col: cols,
                        ws_xpixel: 0,
                        ws_ypixel: 0,
                    };
                    crate::sys::tty::set_window_size(p.as_raw_fd(), &ws);
                }
            }
            attach::Input::Signal(sig) => {
                if ended.is_none() && PROXIED.iter().any(|s| *s as i32 == sig) {
                    // SAFETY: signalling our own child, with one of the signals a terminal sends.
                    unsafe { libc::kill(child.as_raw(), sig) };
                }
            }
        });
        if revents[sig_idx].contains(PollFlags::POLLIN) {
            while let Ok(Some(info)) = sfd.read_signal() {
                let sig = info.ssi_signo as i32;
                if sig == libc::SIGCHLD {
                    loop {
                        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                            Ok(WaitStatus::StillAlive) | Err(_) => break,
                            Ok(ws) => {
                                if ws.pid() == Some(child) {
                                    ended = Some(ws);
                                }
                            }
                        }
                    }
                } else if sig == libc::SIGWINCH {
                    if let (Some(p), Some(ws)) = (st.pty, crate::sys::tty::window_size(0)) {
                        crate::sys::tty::set_window_size(p.as_raw_fd(), &ws);
                    }
                } else if opts.sig_proxy && ended.is_none() {
                    // SAFETY: signalling our own child.
                    unsafe { libc::kill(child.as_raw(), sig) };
                }
            }
        }
        if let Some(si) = stdin_idx {
            if revents[si].intersects(PollFlags::POLLIN | PollFlags::POLLHUP) {
                match nix::unistd::read(&stdin, &mut buf) {
                    Ok(0) | Err(_) => {
                        // EOF: close the container's stdin (for a pty, send EOF as the terminal would).
                        if let (Some(p), Some(_)) = (st.pty, st.stdin_to.as_ref()) {
                            let _ = nix::unistd::write(p, &[4u8]);
                        }
                        st.stdin_to = None;
                    }
                    Ok(n) => {
                        if let Some(to) = st.stdin_to.as_ref() {
                            if nix::unistd::write(to, &buf[..n]).is_err() {
                                st.stdin_to = None;
                            }
                        }
                    }
                }
            }
        }
    }
    ended
}
