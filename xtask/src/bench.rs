//! `cargo xtask bench pull`: `skiff pull` of the ~100 MB fixture against `podman pull` of the same
//! image, both as the unprivileged test user (podman with native overlay storage), the image
//! removed before every run, runs interleaved; prints medians and the ratio.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::sh::{self, cmd};
use crate::testenv::{self, REGISTRY, TEST_USER};

const RUNS: usize = 7;

fn as_user(uid: u32, program: &str, args: &[&str]) -> Command {
    let mut c = testenv::as_test_user(uid, &[], Path::new(program));
    c.args(args);
    c
}

fn timed(c: &mut Command) -> Result<Duration> {
    let t = Instant::now();
    sh::output(c)?;
    Ok(t.elapsed())
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// podman as the test user: overlay storage, cgroupfs, file events, the local registry insecure.
fn configure_podman(home: &Path) -> Result<()> {
    let dir = home.join(".config/containers");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("storage.conf"),
        "[storage]\ndriver = \"overlay\"\n",
    )?;
    std::fs::write(
        dir.join("containers.conf"),
        "[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\nruntime = \"crun\"\n",
    )?;
    std::fs::write(
        dir.join("registries.conf"),
        format!("[[registry]]\nlocation = \"{REGISTRY}\"\ninsecure = true\n"),
    )?;
    sh::run(cmd("chown", &["-R", &format!("{TEST_USER}:{TEST_USER}")]).arg(home.join(".config")))
}

/// Runs the pull benchmark and prints a Markdown table.
pub fn pull() -> Result<()> {
    if !sh::is_root() {
        bail!("bench pull runs as root: it installs podman and runs both tools as {TEST_USER}");
    }
    testenv::up()?;
    testenv::install_packages(&["podman", "crun", "fuse-overlayfs"])?;
    let uid = testenv::test_uid()?;
    let home = Path::new("/home").join(TEST_USER);
    configure_podman(&home)?;
    let ws = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace")?
        .to_path_buf();
    sh::run(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--release", "-q", "-p", "skiff"])
            .current_dir(&ws),
    )?;
    let skiff_src = ws.join("target/release/skiff");
    let skiff = Path::new("/tmp/skiff-bench-bin");
    std::fs::copy(&skiff_src, skiff)?;
    sh::run(cmd("chmod", &["0755"]).arg(skiff))?;
    let skiff = skiff.to_string_lossy().into_owned();
    let image = format!("{REGISTRY}/big:latest");

    // Warm-up: one pull each (page cache for the registry's blobs), then measured runs.
    let reset_skiff = |uid| -> Result<()> {
        let _ = sh::output(&mut as_user(uid, &skiff, &["rmi", "-f", &image]));
        sh::output(&mut as_user(uid, &skiff, &["image", "prune", "-f"])).map(|_| ())
    };
    let reset_podman = |uid| {
        let _ = sh::output(&mut as_user(uid, "podman", &["rmi", "-f", &image]));
    };
    reset_skiff(uid)?;
    reset_podman(uid);
    timed(&mut as_user(uid, &skiff, &["pull", "-q", &image]))?;
    timed(&mut as_user(uid, "podman", &["pull", "-q", &image]))
        .context("podman pull (is the test user's podman set up?)")?;
    let (mut s, mut p) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        reset_skiff(uid)?;
        s.push(timed(&mut as_user(uid, &skiff, &["pull", "-q", &image]))?);
        reset_podman(uid);
        p.push(timed(&mut as_user(uid, "podman", &["pull", "-q", &image]))?);
    }
    reset_skiff(uid)?;
    reset_podman(uid);
    let (ms, mp) = (median(&mut s), median(&mut p));
    let podman_version = sh::output(&mut cmd("podman", &["--version"])).unwrap_or_default();
    println!("pull of {image} (≈107 MB unpacked: 50 MB incompressible + 50 MB compressible + busybox), {RUNS} runs each, as {TEST_USER}");
    println!();
    println!("| tool | median | min | max |");
    println!("|---|---|---|---|");
    for (name, v) in [("skiff (release)", &s), (podman_version.trim(), &p)] {
        println!(
            "| {name} | {:.0} ms | {:.0} ms | {:.0} ms |",
            median(&mut v.clone()).as_secs_f64() * 1e3,
            v.iter().min().copied().unwrap_or_default().as_secs_f64() * 1e3,
            v.iter().max().copied().unwrap_or_default().as_secs_f64() * 1e3
        );
    }
    println!();
    println!(
        "ratio skiff/podman: {:.2} (target ≤ 0.5)",
        ms.as_secs_f64() / mp.as_secs_f64()
    );
    Ok(())
}
