//! `cargo xtask bench plugins [REV]`: what plugins cost on `run --rm busybox true`, side by side
//! in one interleaved run as the test user, release builds, medians:
//!
//! - no plugin installed, against the release build of REV (default `HEAD~1`);
//! - when REV has plugins too, REV with the same three plugins, for changes on the plugin path;
//! - one C before-create plugin;
//! - the three examples on all four hooks (C before-pull, Python before-pull/before-create/
//!   validate, JavaScript after-start/after-exit);
//! - podman without and with one prestart OCI hook running `/bin/true`.
//!
//! It also prints each hook's call time (`plugin test`, instantiation included), and each
//! example's `plugin install` time and peak memory.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::bench::{median, release_build, row, timed};
use crate::services::REGISTRY;
use crate::sh::{self, cmd};
use crate::testenv::{self, TEST_USER};

/// Builds everything as root, then measures as the test user.
pub fn plugins(rev: &str) -> Result<()> {
    if !sh::is_root() {
        bail!("benchmarks run as root: they run every tool as {TEST_USER}");
    }
    testenv::up()?;
    crate::fixtures::build_and_push()?;
    testenv::install_packages(&["podman", "crun", "runc", "fuse-overlayfs"])?;
    let uid = testenv::test_uid()?;
    crate::bench::configure_podman(&Path::new("/home").join(TEST_USER))?;
    let ws = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace")?
        .to_path_buf();
    let examples = ws.join("target/plugin-examples");
    crate::plugin_tools::install()?;
    crate::plugin_tools::examples(&ws, &[])?;
    let old = release_build(Some(rev), Path::new("/tmp/skiff-bench-old"))?;
    let new = release_build(None, Path::new("/tmp/skiff-bench-new"))?;
    let me = std::env::current_exe()?;
    let mut p = me.clone();
    while let Some(parent) = p.parent() {
        let _ = Command::new("chmod").arg("a+x").arg(parent).status();
        p = parent.to_path_buf();
    }
    sh::run(cmd("chmod", &["a+rx"]).arg(&me))?;
    let mut inner = testenv::as_test_user(uid, &[], &me);
    inner
        .args(["bench", "plugins-inner", rev, &old, &new])
        .arg(&examples);
    sh::run(&mut inner)
}

/// A skiff command in the user environment under `home`.
fn skiff(bin: &str, home: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(bin);
    c.args(args)
        .current_dir("/tmp")
        .env("HOME", home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_CACHE_HOME", home.join("cache"));
    c
}

/// Runs `c` to the end and returns its wall time and peak resident memory (KiB), from wait4.
fn timed_rss(c: &mut Command) -> Result<(Duration, i64)> {
    let t = Instant::now();
    let child = c
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data written by the kernel; the pid is our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let elapsed = t.elapsed();
    if r != pid || std::process::ExitStatus::from_raw(status).code() != Some(0) {
        bail!("{c:?} failed");
    }
    Ok((elapsed, usage.ru_maxrss))
}

/// The call time `plugin test` reports on stderr ("… took 1.23 ms, …").
fn reported_ms(stderr: &str) -> Option<f64> {
    let after = stderr.split(" took ").nth(1)?;
    after.split(" ms").next()?.trim().parse().ok()
}

/// The measuring half, as the test user.
pub fn plugins_inner(rev: &str, old: &str, new: &str, examples: &Path) -> Result<()> {
    let root = PathBuf::from(format!("/tmp/skiff-bench-plugins-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let (none, one, all) = (root.join("none"), root.join("one"), root.join("all"));
    let image = format!("{REGISTRY}/busybox:latest");
    let ex = |f: &str| examples.join(f).to_string_lossy().into_owned();
    for h in [&none, &one, &all] {
        std::fs::create_dir_all(h)?;
        sh::output(&mut skiff(new, h, &["pull", "-q", &image]))?;
    }
    sh::output(&mut skiff(
        new,
        &one,
        &["plugin", "install", &ex("adjust-a.wasm")],
    ))?;
    let audit = all.join("audit");
    std::fs::create_dir_all(&audit)?;
    std::fs::create_dir_all(all.join("config/skiff"))?;
    std::fs::write(
        all.join("config/skiff/config.toml"),
        format!(
            "[plugins.mirror.settings]\nmirror = \"{REGISTRY}\"\n[plugins.policy.settings]\nregistries = \"{REGISTRY}\"\n[plugins.audit.settings]\ndir = \"{}\"\n",
            audit.display()
        ),
    )?;
    let grant = format!("dir-rw={}", audit.display());
    sh::output(&mut skiff(
        new,
        &all,
        &["plugin", "install", &ex("mirror.wasm")],
    ))?;
    sh::output(&mut skiff(
        new,
        &all,
        &["plugin", "install", &ex("policy.wasm")],
    ))?;
    sh::output(&mut skiff(
        new,
        &all,
        &["plugin", "install", &ex("audit.wasm"), "--grant", &grant],
    ))?;

    // podman with one prestart hook that runs /bin/true.
    let hooks = root.join("oci-hooks");
    std::fs::create_dir_all(&hooks)?;
    std::fs::write(
        hooks.join("true.json"),
        r#"{"version": "1.0.0", "hook": {"path": "/bin/true"}, "when": {"always": true}, "stages": ["prestart"]}"#,
    )?;
    let hooks_dir = hooks.to_string_lossy().into_owned();
    let podman = |with_hook: bool| {
        let mut c = Command::new("podman");
        if with_hook {
            c.args(["--hooks-dir", &hooks_dir]);
        }
        c.args(["run", "--rm", &image, "true"]).current_dir("/tmp");
        c
    };
    sh::output(&mut podman(false))?;
    let run = |bin: &str, home: &Path| skiff(bin, home, &["run", "--rm", &image, "true"]);
    for (b, h) in [(old, &none), (new, &none), (new, &one), (new, &all)] {
        timed(&mut run(b, h))?;
    }
    timed(&mut podman(true))?;

    // REV has plugins when it knows `plugin ls`: it then runs with the same three plugins too,
    // installed by itself in a home of its own (each build keeps its own compiled copies).
    let old_has_plugins = skiff(old, &none, &["plugin", "ls", "-q"])
        .output()
        .is_ok_and(|o| o.status.success());
    let all_old = root.join("all-old");
    if old_has_plugins {
        std::fs::create_dir_all(all_old.join("config/skiff"))?;
        std::fs::copy(
            all.join("config/skiff/config.toml"),
            all_old.join("config/skiff/config.toml"),
        )?;
        sh::output(&mut skiff(old, &all_old, &["pull", "-q", &image]))?;
        for f in ["mirror.wasm", "policy.wasm"] {
            sh::output(&mut skiff(old, &all_old, &["plugin", "install", &ex(f)]))?;
        }
        sh::output(&mut skiff(
            old,
            &all_old,
            &["plugin", "install", &ex("audit.wasm"), "--grant", &grant],
        ))?;
        timed(&mut run(old, &all_old))?;
    }
    // 41 rounds: a round takes about half a second, and medians of 21 moved by half a
    // millisecond between runs on this machine.
    const N: usize = 41;
    let mut v: Vec<Vec<Duration>> = vec![Vec::new(); 7];
    for round in 0..N {
        // The two builds share the no-plugin home, and the second of two runs in a row there
        // differs from the first by up to half a millisecond: they take turns going first.
        if round % 2 == 0 {
            v[0].push(timed(&mut run(old, &none))?);
            v[1].push(timed(&mut run(new, &none))?);
        } else {
            v[1].push(timed(&mut run(new, &none))?);
            v[0].push(timed(&mut run(old, &none))?);
        }
        v[2].push(timed(&mut run(new, &one))?);
        v[3].push(timed(&mut run(new, &all))?);
        v[4].push(timed(&mut podman(false))?);
        v[5].push(timed(&mut podman(true))?);
        if old_has_plugins {
            v[6].push(timed(&mut run(old, &all_old))?);
        }
    }
    let podman_version = sh::output(&mut cmd("podman", &["--version"])).unwrap_or_default();
    let pv = podman_version.trim();
    println!("run --rm busybox true as {TEST_USER}, {N} runs each, interleaved, release builds");
    println!();
    println!("| what | median | min | max |");
    println!("|---|---|---|---|");
    row(&format!("skiff {rev}, no plugins (before)"), &v[0]);
    row("skiff, no plugins", &v[1]);
    row("skiff, one C before-create plugin", &v[2]);
    if old_has_plugins {
        row(&format!("skiff {rev}, the same plugins (before)"), &v[6]);
    }
    row("skiff, C + Python + JS plugins on all four hooks", &v[3]);
    row(pv, &v[4]);
    row(&format!("{pv}, one prestart hook (/bin/true)"), &v[5]);
    let med = |i: usize| median(&mut v[i].clone()).as_secs_f64() * 1e3;
    println!();
    println!(
        "no plugins vs {rev}: {:+.2} ms (target <= +0.3); one C plugin: {:+.2} ms over none (target <= +1.5); all four hooks: {:+.2} ms over none (target <= +10); podman's prestart hook: {:+.2} ms",
        med(1) - med(0),
        med(2) - med(1),
        med(3) - med(1),
        med(5) - med(4)
    );
    if old_has_plugins {
        println!(
            "all four hooks vs {rev} with the same plugins: {:+.2} ms",
            med(3) - med(6)
        );
    }
    // The median of each round's difference: a slow stretch of the machine then shifts both
    // sides of a difference alike.
    let paired = |a: usize, b: usize| {
        let mut d: Vec<f64> = v[a]
            .iter()
            .zip(&v[b])
            .map(|(x, y)| (x.as_secs_f64() - y.as_secs_f64()) * 1e3)
            .collect();
        d.sort_by(f64::total_cmp);
        d.get(d.len() / 2).copied().unwrap_or(f64::NAN)
    };
    println!(
        "paired (median of the rounds' differences): no plugins vs {rev}: {:+.2} ms; one C plugin: {:+.2} ms; all four hooks: {:+.2} ms; podman's prestart hook: {:+.2} ms",
        paired(1, 0),
        paired(2, 1),
        paired(3, 1),
        paired(5, 4)
    );
    if old_has_plugins {
        println!(
            "paired: all four hooks vs {rev} with the same plugins: {:+.2} ms",
            paired(3, 6)
        );
    }

    // Each hook's share: the call as `plugin test` times it (a fresh instance each time).
    let inputs = [
        ("mirror", "before-pull", "\"docker.io/library/busybox:latest\"".to_string()),
        ("policy", "before-pull", format!("\"{image}\"")),
        ("policy", "before-create", format!("{{\"image\": \"{image}\"}}")),
        ("policy", "validate", format!("{{\"spec\": {{\"image\": \"{image}\"}}}}")),
        ("audit", "after-start", "{\"id\": \"a\", \"name\": \"n\", \"image\": \"i\", \"pid\": 2}".to_string()),
        ("audit", "after-exit", "{\"id\": \"a\", \"name\": \"n\", \"image\": \"i\", \"exit_code\": 0, \"signal\": null, \"oom_killed\": false, \"duration_ms\": 1, \"will_restart\": false, \"removing\": true}".to_string()),
    ];
    println!();
    println!("| hook | call (instantiate + call), median of 7 | whole `plugin test` process |");
    println!("|---|---|---|");
    for (plugin, hook, json) in inputs {
        let file = root.join(format!("{plugin}-{hook}.json"));
        std::fs::write(&file, json)?;
        let (mut calls, mut whole) = (Vec::new(), Vec::new());
        for _ in 0..7 {
            let mut c = skiff(
                new,
                &all,
                &["plugin", "test", plugin, "--hook", hook, "--input"],
            );
            c.arg(&file);
            let t = Instant::now();
            let out = c.output()?;
            whole.push(t.elapsed());
            let err = String::from_utf8_lossy(&out.stderr);
            calls.push(
                reported_ms(&err).with_context(|| format!("plugin test {plugin} {hook}: {err}"))?,
            );
        }
        calls.sort_by(f64::total_cmp);
        println!(
            "| {plugin} {hook} | {:.2} ms | {:.1} ms |",
            calls[3],
            median(&mut whole).as_secs_f64() * 1e3
        );
    }

    // Install time and peak memory per example (a fresh home each time, three runs).
    println!();
    println!("| plugin install | median time | peak RSS |");
    println!("|---|---|---|");
    for (name, file) in [
        ("mirror (C, 64 KB)", "mirror.wasm"),
        ("policy (Python, 18 MB)", "policy.wasm"),
        ("audit (JavaScript, 1.7 MB)", "audit.wasm"),
    ] {
        let (mut times, mut rss) = (Vec::new(), 0);
        for i in 0..3 {
            let h = root.join(format!("install-{file}-{i}"));
            std::fs::create_dir_all(&h)?;
            let mut c = skiff(
                new,
                &h,
                &["plugin", "install", &ex(file), "--grant", &grant],
            );
            let (t, r) = timed_rss(&mut c)?;
            times.push(t);
            rss = rss.max(r);
        }
        println!(
            "| {name} | {:.0} ms | {:.1} MiB |",
            median(&mut times).as_secs_f64() * 1e3,
            rss as f64 / 1024.0
        );
    }
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}
