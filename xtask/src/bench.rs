//! `cargo xtask bench pull|run|ps|compare`: skiff side by side with its peers (podman, crun) or with
//! an earlier build of itself, in the same run, as the unprivileged test user, release builds,
//! runs interleaved, medians. `pull`: the ~100 MB fixture against `podman pull` (native overlay
//! storage), the image removed before every run. `compare REV`: `run --rm busybox true` with the
//! release build of git revision REV against this tree's.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::services::REGISTRY;
use crate::sh::{self, cmd};
use crate::testenv::{self, TEST_USER};

const RUNS: usize = 7;

fn as_user(uid: u32, program: &str, args: &[&str]) -> Command {
    let mut c = testenv::as_test_user(uid, &[], Path::new(program));
    c.args(args);
    c
}

pub(crate) fn timed(c: &mut Command) -> Result<Duration> {
    let t = Instant::now();
    sh::output(c)?;
    Ok(t.elapsed())
}

pub(crate) fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// podman as the test user: overlay storage, cgroupfs, file events, the local registry insecure.
pub(crate) fn configure_podman(home: &Path) -> Result<()> {
    let dir = home.join(".config/containers");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("storage.conf"),
        "[storage]\ndriver = \"overlay\"\n",
    )?;
    // crun refuses a hybrid cgroup layout (v1 controllers beside /sys/fs/cgroup/unified), which
    // some of these machines have; runc runs there.
    let runtime = if Path::new("/sys/fs/cgroup/unified").is_dir() {
        "runc"
    } else {
        "crun"
    };
    std::fs::write(
        dir.join("containers.conf"),
        format!("[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\nruntime = \"{runtime}\"\n"),
    )?;
    std::fs::write(
        dir.join("registries.conf"),
        format!("[[registry]]\nlocation = \"{REGISTRY}\"\ninsecure = true\n"),
    )?;
    sh::run(cmd("chown", &["-R", &format!("{TEST_USER}:{TEST_USER}")]).arg(home.join(".config")))
}

/// Builds the release skiff of this tree, or of git revision `rev` (in a scratch worktree with a
/// target dir of its own), and copies it with its monitor into `dest`, which the test user can
/// read. Returns the skiff path.
pub(crate) fn release_build(rev: Option<&str>, dest: &Path) -> Result<String> {
    let ws = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace")?
        .to_path_buf();
    // Another checkout of this workspace gets a target dir of its own: cargo names path
    // packages' artifacts by their path relative to the workspace, so two checkouts sharing one
    // would take each other's libraries for fresh.
    let target = match rev {
        None => ws.join("target"),
        Some(_) => ws.join("target/bench-base"),
    };
    let src = match rev {
        None => ws.clone(),
        Some(rev) => {
            let wt = Path::new("/tmp/skiff-bench-src");
            // A checkout of the same revision from an earlier run is kept: fresh mtimes would make
            // cargo rebuild it.
            let want = sh::output(cmd("git", &["rev-parse", rev]).current_dir(&ws))?;
            let have = sh::output(cmd("git", &["rev-parse", "HEAD"]).current_dir(wt)).ok();
            if have.as_deref().map(str::trim) == Some(want.trim()) {
                return build_and_copy(wt, &target, dest);
            }
            let _ = sh::run(
                cmd("git", &["worktree", "remove", "--force"])
                    .arg(wt)
                    .current_dir(&ws),
            );
            let _ = std::fs::remove_dir_all(wt);
            sh::run(
                cmd("git", &["worktree", "add", "--detach"])
                    .arg(wt)
                    .arg(rev)
                    .current_dir(&ws),
            )?;
            wt.to_path_buf()
        }
    };
    build_and_copy(&src, &target, dest)
}

/// `cargo build --release -p skiff` of the tree at `src` into `target`, and its two binaries
/// copied into `dest`, readable by the test user.
fn build_and_copy(src: &Path, target: &Path, dest: &Path) -> Result<String> {
    sh::run(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--release", "-q", "-p", "skiff"])
            .env("CARGO_TARGET_DIR", target)
            .current_dir(src),
    )?;
    std::fs::create_dir_all(dest)?;
    for bin in ["skiff", "skiff-monitor"] {
        std::fs::copy(target.join("release").join(bin), dest.join(bin))?;
    }
    sh::run(cmd("chmod", &["-R", "a+rX"]).arg(dest))?;
    Ok(dest.join("skiff").to_string_lossy().into_owned())
}

/// `run --rm busybox true` with the release build of `rev` and with this tree's, interleaved as
/// the test user: the check every change on the run path gets against the previous commit.
pub fn compare(rev: &str) -> Result<()> {
    if !sh::is_root() {
        bail!("benchmarks run as root: they run every tool as {TEST_USER}");
    }
    testenv::up()?;
    crate::fixtures::build_and_push()?;
    let uid = testenv::test_uid()?;
    let old = release_build(Some(rev), Path::new("/tmp/skiff-bench-old"))?;
    let new = release_build(None, Path::new("/tmp/skiff-bench-new"))?;
    let me = std::env::current_exe()?;
    sh::run(cmd("chmod", &["a+rx"]).arg(&me))?;
    let mut inner = testenv::as_test_user(uid, &[], &me);
    inner.args(["bench", "compare-inner", rev, &old, &new]);
    sh::run(&mut inner)
}

/// The measuring half of `bench compare`, as the test user.
pub fn compare_inner(rev: &str, old: &str, new: &str) -> Result<()> {
    let image = format!("{REGISTRY}/busybox:latest");
    let run = |skiff: &str| {
        let mut c = Command::new(skiff);
        c.args(["run", "--rm", &image, "true"]).current_dir("/tmp");
        c
    };
    sh::output(Command::new(new).args(["pull", "-q", &image]))?;
    timed(&mut run(old))?;
    timed(&mut run(new))?;
    const N: usize = 41;
    let (mut o, mut n) = (Vec::new(), Vec::new());
    for _ in 0..N {
        o.push(timed(&mut run(old))?);
        n.push(timed(&mut run(new))?);
    }
    println!("run --rm busybox true as {TEST_USER}, {N} runs each, interleaved, release builds");
    println!();
    println!("| build | median | min | max |");
    println!("|---|---|---|---|");
    row(&format!("{rev} (before)"), &o);
    row("this tree (after)", &n);
    let med = |v: &[Duration]| median(&mut v.to_vec()).as_secs_f64() * 1e3;
    println!();
    println!(
        "after - before: {:+.2} ms ({:.3}x)",
        med(&n) - med(&o),
        med(&n) / med(&o)
    );
    Ok(())
}

/// Everything both benchmarks need: the environment, podman set up for the test user, and a
/// release skiff the test user can run. Returns the test user's uid and the skiff path.
pub(crate) fn prepare() -> Result<(u32, String)> {
    if !sh::is_root() {
        bail!("benchmarks run as root: they install podman and run every tool as {TEST_USER}");
    }
    testenv::up()?;
    crate::fixtures::build_and_push()?;
    testenv::install_packages(&["podman", "crun", "runc", "fuse-overlayfs"])?;
    let uid = testenv::test_uid()?;
    let home = Path::new("/home").join(TEST_USER);
    configure_podman(&home)?;
    // skiff and, beside it, the small monitor executable it starts.
    let skiff = release_build(None, Path::new("/tmp/skiff-bench-new"))?;
    Ok((uid, skiff))
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

pub(crate) fn row(name: &str, v: &[Duration]) {
    let mut s = v.to_vec();
    s.sort();
    println!(
        "| {name} | {} | {} | {} |",
        ms(s[s.len() / 2]),
        ms(s[0]),
        ms(s[s.len() - 1])
    );
}

/// `skiff run --rm busybox true` against `podman run --rm` and raw `crun run` of a rootless bundle
/// with the same busybox, and `skiff run --rm` of the 100 MB image, all as the test user.
pub fn run() -> Result<()> {
    let (uid, skiff) = prepare()?;
    // crun 1.8 refuses containers on this hybrid cgroup layout until the stray controller is mounted.
    if !std::fs::read_to_string("/proc/mounts")
        .unwrap_or_default()
        .contains("/sys/fs/cgroup/hugetlb")
    {
        let _ = std::fs::create_dir_all("/sys/fs/cgroup/hugetlb");
        let _ = Command::new("mount")
            .args([
                "-t",
                "cgroup",
                "-o",
                "hugetlb",
                "cgroup",
                "/sys/fs/cgroup/hugetlb",
            ])
            .status();
    }
    let bundle = Path::new("/tmp/skiff-bench-bundle");
    let _ = std::fs::remove_dir_all(bundle);
    std::fs::create_dir_all(bundle)?;
    sh::run(cmd("chown", &[TEST_USER]).arg(bundle))?;
    let script = "cd /tmp/skiff-bench-bundle && mkdir -p rootfs/bin rootfs/proc rootfs/dev rootfs/sys rootfs/etc rootfs/tmp && cp /bin/busybox rootfs/bin/ && ln -s busybox rootfs/bin/true && crun spec --rootless && sed -i -e 's/\"terminal\": true/\"terminal\": false/' -e 's/\"sh\"/\"true\"/' config.json";
    sh::output(&mut as_user(uid, "/bin/sh", &["-c", script]))?;
    let image = format!("{REGISTRY}/busybox:latest");
    let big = format!("{REGISTRY}/big:latest");
    sh::output(&mut as_user(uid, &skiff, &["pull", "-q", &image]))?;
    sh::output(&mut as_user(uid, &skiff, &["pull", "-q", &big]))?;
    sh::output(&mut as_user(uid, "podman", &["pull", "-q", &image]))?;
    // Time from inside one process of the test user, so no per-run `runuser` skews the figures.
    let me = std::env::current_exe()?;
    make_reachable(&me)?;
    let mut inner = testenv::as_test_user(uid, &[], &me);
    inner.args(["bench", "run-inner", &skiff]);
    sh::run(&mut inner)
}

/// Lets the test user run this xtask executable (every directory above it searchable).
pub(crate) fn make_reachable(me: &Path) -> Result<()> {
    let mut p = me.parent().context("xtask dir")?.to_path_buf();
    while let Some(parent) = p.parent() {
        let _ = Command::new("chmod").arg("a+x").arg(parent).status();
        p = parent.to_path_buf();
    }
    sh::run(cmd("chmod", &["a+rx"]).arg(me))
}

/// The measuring half of `bench run`, as the test user.
pub fn run_inner(skiff: &str) -> Result<()> {
    let image = format!("{REGISTRY}/busybox:latest");
    let big = format!("{REGISTRY}/big:latest");
    let direct = |program: &str, args: &[&str]| {
        let mut c = Command::new(program);
        c.args(args).current_dir("/tmp");
        c
    };
    let crun = |i: usize| {
        let name = format!("skiff-bench-{}-{i}", std::process::id());
        let mut c = direct("crun", &["--cgroup-manager=disabled", "run", &name]);
        c.current_dir("/tmp/skiff-bench-bundle");
        c
    };
    // Warm-up of each, then interleaved measured runs.
    timed(&mut direct(skiff, &["run", "--rm", &image, "true"]))?;
    timed(&mut direct("podman", &["run", "--rm", &image, "true"]))?;
    timed(&mut crun(0))?;
    timed(&mut direct(skiff, &["run", "--rm", &big, "true"]))?;
    // A private network with one published port: slirp4netns for both.
    let publish = "18765:80";
    let with_port = |program: &str| {
        direct(
            program,
            &[
                "run",
                "--rm",
                "--network",
                "slirp4netns",
                "-p",
                publish,
                &image,
                "true",
            ],
        )
    };
    timed(&mut with_port(skiff))?;
    timed(&mut with_port("podman"))?;
    const N: usize = 21;
    let (mut s, mut p, mut c, mut b) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut sn, mut pn) = (Vec::new(), Vec::new());
    for i in 1..=N {
        sn.push(timed(&mut with_port(skiff))?);
        pn.push(timed(&mut with_port("podman"))?);
        s.push(timed(&mut direct(skiff, &["run", "--rm", &image, "true"]))?);
        p.push(timed(&mut direct(
            "podman",
            &["run", "--rm", &image, "true"],
        ))?);
        c.push(timed(&mut crun(i))?);
        b.push(timed(&mut direct(skiff, &["run", "--rm", &big, "true"]))?);
    }
    let podman_version = sh::output(&mut cmd("podman", &["--version"])).unwrap_or_default();
    println!("run --rm … true as {TEST_USER}, {N} runs each (whole process, interleaved, timed from one process of the user)");
    println!();
    println!("| what | median | min | max |");
    println!("|---|---|---|---|");
    row("skiff run --rm busybox true (release)", &s);
    row(
        &format!("{} run --rm busybox true", podman_version.trim()),
        &p,
    );
    row("crun 1.8.1 run (rootless bundle, same busybox)", &c);
    row("skiff run --rm big true (≈107 MB image)", &b);
    row(
        &format!("skiff run --rm --network slirp4netns -p {publish} busybox true"),
        &sn,
    );
    row(
        &format!(
            "{} run --rm --network slirp4netns -p {publish} busybox true",
            podman_version.trim()
        ),
        &pn,
    );
    let med = |v: &[Duration]| median(&mut v.to_vec()).as_secs_f64();
    println!();
    println!(
        "skiff/crun: {:.2} (target ≤ 1.5); skiff/podman: {:.3} (target ≤ 0.1); big/busybox: {:.2} (target ≤ 1.2)",
        med(&s) / med(&c),
        med(&s) / med(&p),
        med(&b) / med(&s)
    );
    Ok(())
}

/// `skiff ps -a` with 50 and 1000 exited containers against `podman ps -a` with 50, and one
/// monitor's memory against conmon's for the same detached `sleep`, as the test user.
pub fn ps() -> Result<()> {
    let (uid, skiff) = prepare()?;
    let me = std::env::current_exe()?;
    sh::run(cmd("chmod", &["a+rx"]).arg(&me))?;
    let mut p = me.clone();
    while let Some(parent) = p.parent() {
        let _ = Command::new("chmod").arg("a+x").arg(parent).status();
        p = parent.to_path_buf();
    }
    let mut inner = testenv::as_test_user(uid, &[], &me);
    inner.args(["bench", "ps-inner", &skiff]);
    sh::run(&mut inner)
}

/// Memory of a process: (RSS, PSS) in KiB.
fn memory(pid: &str) -> (u64, u64) {
    let field = |file: &str, key: &str| -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/{file}"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with(key))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    };
    (field("status", "VmRSS:"), field("smaps_rollup", "Pss:"))
}

/// The measuring half of `bench ps`, as the test user.
pub fn ps_inner(skiff: &str) -> Result<()> {
    let image = format!("{REGISTRY}/busybox:latest");
    let data = |n: usize| format!("/tmp/skiff-bench-ps-{n}");
    let with_data = |n: usize, args: &[&str]| {
        let mut c = Command::new(skiff);
        c.args(args)
            .env("XDG_DATA_HOME", data(n))
            .current_dir("/tmp");
        c
    };
    let mut rows = Vec::new();
    for n in [50usize, 1000] {
        let _ = std::fs::remove_dir_all(data(n));
        sh::output(&mut with_data(n, &["pull", "-q", &image]))?;
        for _ in 0..n {
            sh::output(&mut with_data(n, &["run", &image, "true"]))?;
        }
        timed(&mut with_data(n, &["ps", "-a"]))?;
        let v: Vec<Duration> = (0..21)
            .map(|_| timed(&mut with_data(n, &["ps", "-a"])))
            .collect::<Result<_>>()?;
        let lines = sh::output(&mut with_data(n, &["ps", "-aq"]))?
            .lines()
            .count();
        if lines != n {
            bail!("expected {n} containers, ps shows {lines}");
        }
        rows.push((format!("skiff ps -a, {n} exited containers (release)"), v));
    }
    let _ = sh::output(&mut cmd("podman", &["rm", "-a", "-f"]));
    for _ in 0..50 {
        sh::output(&mut cmd("podman", &["run", &image, "true"]))?;
    }
    timed(&mut cmd("podman", &["ps", "-a"]))?;
    let v: Vec<Duration> = (0..21)
        .map(|_| timed(&mut cmd("podman", &["ps", "-a"])))
        .collect::<Result<_>>()?;
    let podman_version = sh::output(&mut cmd("podman", &["--version"])).unwrap_or_default();
    rows.push((
        format!("{} ps -a, 50 exited containers", podman_version.trim()),
        v,
    ));
    let _ = sh::output(&mut cmd("podman", &["rm", "-a", "-f"]));

    // One detached container each: the monitor against conmon, idle (`sleep`) and busy (a line
    // every 100 ms, so the log path has run many times before the reading).
    let workloads: [(&str, &[&str]); 2] = [
        ("a detached `sleep 60`", &["sleep", "60"]),
        (
            "a detached loop printing a line every 100 ms, after 3 s",
            &["sh", "-c", "while :; do echo tick; usleep 100000; done"],
        ),
    ];
    let mut memory_rows = Vec::new();
    for (what, command) in workloads {
        let settle = Duration::from_millis(if command[0] == "sleep" { 500 } else { 3000 });
        let mut run = with_data(50, &["run", "-d", &image]);
        run.args(command);
        let id = sh::output(&mut run)?.trim().to_string();
        std::thread::sleep(settle);
        let st: serde_json::Value = serde_json::from_slice(&std::fs::read(format!(
            "{}/skiff/containers/{id}/state.json",
            data(50)
        ))?)?;
        let monitor = st["monitor_pid"]
            .as_i64()
            .context("monitor pid")?
            .to_string();
        let skiff_mem = memory(&monitor);
        let mut prun = cmd("podman", &["run", "-d", &image]);
        prun.args(command);
        let pid = sh::output(&mut prun)?.trim().to_string();
        std::thread::sleep(settle);
        let conmon = sh::output(&mut cmd(
            "podman",
            &["inspect", "-f", "{{.State.ConmonPid}}", &pid],
        ))?
        .trim()
        .to_string();
        let conmon_mem = memory(&conmon);
        let _ = sh::output(&mut with_data(50, &["rm", "-f", &id]));
        let _ = sh::output(&mut cmd("podman", &["rm", "-f", "-t", "0", &pid]));
        memory_rows.push((what, skiff_mem, conmon_mem));
    }
    for n in [50usize, 1000] {
        let _ = sh::output(Command::new(skiff).args(["unshare", "rm", "-rf", &data(n)]));
    }

    println!("ps -a as {TEST_USER}, 21 runs each after one warm-up (whole process)");
    println!();
    println!("| what | median | min | max |");
    println!("|---|---|---|---|");
    for (name, v) in &rows {
        row(name, v);
    }
    println!();
    println!("| monitor of | skiff-monitor RSS | PSS | conmon RSS | PSS |");
    println!("|---|---|---|---|---|");
    for (what, (m_rss, m_pss), (c_rss, c_pss)) in memory_rows {
        println!("| {what} | {m_rss} KiB | {m_pss} KiB | {c_rss} KiB | {c_pss} KiB |");
    }
    Ok(())
}

/// Runs the pull benchmark and prints a Markdown table.
pub fn pull() -> Result<()> {
    let (uid, skiff) = prepare()?;
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
