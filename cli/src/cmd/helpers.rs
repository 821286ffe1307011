//! The hidden helper commands skiff runs itself (`__unpack`, `__rmtree`, `__cp`, `__pack-upper`
//! inside the user's mapped namespace; `__hook` for the monitor; `__man` for `cargo xtask man`),
//! and `skiff unshare`.

use std::path::Path;
use std::process::{Command, ExitCode};

use anyhow::{Context, Result};
use skiff_plugins::Hook;
use skiff_runtime::userns::identity::Identity;
use skiff_runtime::userns::idmap;
use skiff_store::unpack::{remove_tree, unpack_layer, UnpackOptions};
use skiff_store::Digest;

use crate::ctx::{self, hooks};

/// `skiff unshare CMD…`: runs CMD in the mapped user namespace (directly when root) and exits with
/// its code.
pub fn unshare(command: Vec<String>) -> anyhow::Result<std::process::ExitCode> {
    let mut argv = command;
    if argv.is_empty() {
        argv.push(std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".into()));
    }
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    let who = Identity::current();
    if matches!(who, Identity::Alone { .. }) {
        anyhow::bail!(
            "no /etc/subuid range for this user: there is no namespace to enter (add one with {})",
            idmap::usermod_hint()
        );
    }
    let status = who.spawn(cmd)?.wait();
    let status = status.map_err(|e| anyhow::anyhow!("{}: {e}", argv[0]))?;
    Ok(std::process::ExitCode::from(
        status.code().map(|c| c as u8).unwrap_or(125),
    ))
}

/// `skiff __unpack BLOB DIFF_ID DEST MAX_SIZE`: runs inside the mapped namespace as its root.
pub fn helper_unpack(blob: &Path, diff_id: &str, dest: &Path, max_size: u64) -> anyhow::Result<()> {
    let diff_id = Digest::parse(diff_id)?;
    std::fs::create_dir(dest)?;
    let rep = unpack_layer(
        blob,
        &diff_id,
        dest,
        UnpackOptions {
            chown: true,
            plain: false,
            max_size,
        },
    )?;
    println!("{}", serde_json::to_string(&rep)?);
    Ok(())
}

/// `skiff __rmtree DIR`: removes a layer directory whose files belong to mapped ids.
pub fn helper_rmtree(dir: &Path) -> anyhow::Result<()> {
    Ok(remove_tree(dir)?)
}

/// `skiff __cp in|out ID PATH NAME`: the helper side of `cp` on a stopped container.
pub fn cp_helper(direction: &str, id: &str, path: &str, name: &str) -> Result<ExitCode> {
    let (_, c) = ctx::containers()?;
    skiff_runtime::files::copy::helper_main(&c, id, direction, path, name)?;
    Ok(ExitCode::SUCCESS)
}

/// `skiff __pack-upper DIR`: the layer tar of a container's changes on stdout (runs as root of
/// the user's mapped namespace, where every file can be read).
pub fn pack_upper_helper(dir: &std::path::Path) -> Result<ExitCode> {
    skiff_runtime::files::commit::pack_upper(dir, std::io::stdout().lock())
        .with_context(|| format!("reading {}", dir.display()))?;
    Ok(ExitCode::SUCCESS)
}

/// Writes `skiff.1` and one `skiff-CMD.1` (`skiff-container-ls.1`, …) per visible command.
pub fn man_pages(dir: &Path, tree: clap::Command) -> Result<ExitCode> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    clap_mangen::generate_to(tree, dir)
        .with_context(|| format!("writing man pages into {}", dir.display()))?;
    Ok(ExitCode::SUCCESS)
}

/// `skiff __hook [--linger-ms N]`: delivers the lifecycle events the monitor sends, one JSON
/// line each on stdin, to the registered hooks, and writes one byte to stdout for each one
/// delivered. It loads the plugins (and makes their instances) as soon as it starts, which the
/// monitor does before the container is set up. With `--linger-ms`, after its first event it
/// waits that long for one more (the same container's after-exit), then ends, exiting 3 if
/// none came; the monitor then starts a new helper for the exit.
pub fn hook(linger_ms: Option<u64>) -> Result<ExitCode> {
    use std::io::Write as _;
    use std::sync::mpsc::RecvTimeoutError;
    let hooks = hooks::registered_for(&[Hook::AfterStart, Hook::AfterExit])?;
    let (tx, rx) = std::sync::mpsc::channel::<std::io::Result<String>>();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        loop {
            let mut line = String::new();
            let r = std::io::BufRead::read_line(&mut stdin, &mut line);
            let end = matches!(r, Ok(0) | Err(_));
            if tx.send(r.map(|_| line)).is_err() || end {
                return;
            }
        }
    });
    let deliver = |line: &str| -> Result<()> {
        let event = serde_json::from_str(line.trim())
            .context("reading the lifecycle event from the monitor")?;
        skiff_runtime::hooks::deliver(hooks.as_ref(), &event);
        let mut out = std::io::stdout().lock();
        // The monitor may have stopped listening: that is its choice.
        let _ = out.write_all(b".").and_then(|()| out.flush());
        Ok(())
    };
    let first = rx
        .recv()
        .context("reading the lifecycle event from the monitor")??;
    if first.trim().is_empty() {
        // The monitor ended without an event: the container never started.
        return Ok(ExitCode::SUCCESS);
    }
    deliver(&first)?;
    let Some(ms) = linger_ms else {
        return Ok(ExitCode::SUCCESS);
    };
    match rx.recv_timeout(std::time::Duration::from_millis(ms)) {
        Ok(Ok(line)) if !line.trim().is_empty() => {
            deliver(&line)?;
            Ok(ExitCode::SUCCESS)
        }
        Ok(_) | Err(RecvTimeoutError::Disconnected) => Ok(ExitCode::SUCCESS),
        Err(RecvTimeoutError::Timeout) => Ok(ExitCode::from(3)),
    }
}

/// `skiff __health ID`: the container's healthcheck loop, started by its monitor when the
/// container starts. It marks the record `starting`, then every interval runs the check (through
/// `__health-check`, which joins the container as `exec` does) and records the result. It ends
/// when its stdin — the monitor's end of a pipe — reaches EOF: the container ended or the
/// monitor died.
pub fn health_loop(id: &str) -> Result<ExitCode> {
    use skiff_runtime::container::health;
    let (_, c) = ctx::containers()?;
    let (cfg, _) = c.load(id)?;
    let Some(hc) = cfg.healthcheck.filter(|h| h.active()) else {
        return Ok(ExitCode::SUCCESS);
    };
    let exe = std::env::current_exe().context("locating the skiff binary")?;
    let (tx, ended) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        let mut stdin = std::io::stdin().lock();
        while matches!(std::io::Read::read(&mut stdin, &mut buf), Ok(n) if n > 0) {}
        let _ = tx.send(());
    });
    let dir = c.dir(id);
    health::update(&dir, |h| {
        h.status = health::HealthStatus::Starting;
        h.failing_streak = 0;
    })?;
    let began = std::time::Instant::now();
    loop {
        match ended.recv_timeout(hc.interval()) {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            _ => return Ok(ExitCode::SUCCESS),
        }
        let in_start_period = began.elapsed() < hc.start_period();
        let r = health::run_check(&exe, id, &hc);
        // A check cut short by the container's end is no result.
        if !matches!(ended.try_recv(), Err(std::sync::mpsc::TryRecvError::Empty)) {
            return Ok(ExitCode::SUCCESS);
        }
        health::record(&dir, &hc, r, in_start_period)?;
    }
}

/// `skiff __health-check ID`: runs the container's healthcheck command once inside it, joined
/// exactly as `skiff exec` joins (from a sealed copy of skiff), killed at the check's timeout;
/// exits with its code. Its stdout and stderr are the caller's pipe.
pub fn health_check(id: &str) -> Result<ExitCode> {
    skiff_runtime::process::exec::run_from_sealed_copy()?;
    let (_, c) = ctx::containers()?;
    let (cfg, _) = c.load(id)?;
    let hc = cfg.healthcheck.filter(|h| h.active());
    let Some((hc, args)) = hc.and_then(|h| h.command().map(|a| (h, a))) else {
        anyhow::bail!("container {} has no healthcheck command", cfg.name);
    };
    let o = skiff_runtime::process::exec::ExecOptions {
        args,
        timeout: Some(hc.timeout()),
        ..Default::default()
    };
    match skiff_runtime::process::exec::exec_in(&c, id, &o) {
        Ok(code) => Ok(ExitCode::from(u8::try_from(code).unwrap_or(125))),
        Err(skiff_runtime::Error::Exec(code, msg)) => {
            eprintln!("{msg}");
            Ok(ExitCode::from(u8::try_from(code).unwrap_or(125)))
        }
        Err(e) => Err(e.into()),
    }
}
