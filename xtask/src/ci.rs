//! `cargo xtask ci`: everything CI checks, in order (the plugin toolchain and example plugins
//! included); and `cargo xtask demo`, the end-to-end tour.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::sh::{self, cmd};
use crate::testenv::{self, TEST_USER};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn cargo(args: &[&str]) -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.args(args).current_dir(workspace());
    c
}

/// Test executables cargo builds for `args` (e.g. `-p skiff-tests`), from its JSON messages.
fn test_binaries(args: &[&str]) -> Result<Vec<PathBuf>> {
    let mut c = cargo(&["test", "--no-run", "--message-format=json"]);
    c.args(args);
    let out = sh::output(&mut c)?;
    let mut bins = Vec::new();
    for line in out.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["reason"] == "compiler-artifact" && v["profile"]["test"] == true {
            if let Some(exe) = v["executable"].as_str() {
                bins.push(PathBuf::from(exe));
            }
        }
    }
    Ok(bins)
}

/// Lets the unprivileged test user reach the built binaries: traverse every parent, read target.
fn open_to_test_user(target: &Path) -> Result<()> {
    let mut p = target.to_path_buf();
    while let Some(parent) = p.parent() {
        let _ = Command::new("chmod").arg("a+x").arg(parent).status();
        p = parent.to_path_buf();
    }
    sh::run(
        cmd("chmod", &["-R", "a+rX"])
            .arg(target.join("debug/deps"))
            .arg(target.join("debug/skiff"))
            .arg(target.join("debug/skiff-monitor")),
    )
}

fn run_tests(bins: &[PathBuf], as_user: Option<u32>, env: &[(&str, &Path)]) -> Result<()> {
    run_tests_as(bins, as_user.map(|u| (TEST_USER, u)), env, &[])
}

/// Runs each test binary (as `as_user` when given) with `env` (`SKIFF_BIN`, and for the
/// integration suites `SKIFF_PLUGIN_EXAMPLES`) and `extra` arguments.
fn run_tests_as(
    bins: &[PathBuf],
    as_user: Option<(&str, u32)>,
    env: &[(&str, &Path)],
    extra: &[&str],
) -> Result<()> {
    for b in bins {
        let mut c = match as_user {
            None => {
                let mut c = Command::new(b);
                c.envs(env.iter().copied());
                c
            }
            Some((user, uid)) => {
                let vars: Vec<String> = env
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.display()))
                    .collect();
                testenv::as_user(user, uid, &vars, b)
            }
        };
        c.args(extra).current_dir("/tmp");
        sh::run(&mut c).with_context(|| format!("tests in {}", b.display()))?;
    }
    Ok(())
}

/// The whole suite: environment up, fmt, tidy, clippy, unit tests and integration tests as root
/// and as the unprivileged test user, environment down.
pub fn run() -> Result<()> {
    let t = std::time::Instant::now();
    testenv::up()?;
    crate::fixtures::build_and_push()?;
    // The plugin toolchain and the example plugins built from source, for the plugin tests.
    crate::plugin_tools::install()?;
    crate::plugin_tools::examples(&workspace(), &[])?;
    sh::run(&mut cargo(&["fmt", "--all", "--", "--check"]))
        .context("cargo fmt --check: run `cargo fmt --all`")?;
    crate::tidy::run(&workspace())?;
    sh::run(&mut cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    sh::run(&mut cargo(&["build", "-p", "skiff"]))?;
    let target = workspace().join("target");
    let skiff = target.join("debug/skiff");
    let examples = target.join("plugin-examples");
    let unit_env: &[(&str, &Path)] = &[("SKIFF_BIN", &skiff)];
    let integration_env: &[(&str, &Path)] =
        &[("SKIFF_BIN", &skiff), ("SKIFF_PLUGIN_EXAMPLES", &examples)];
    let unit = test_binaries(&[
        "--workspace",
        "--exclude",
        "skiff-tests",
        "--exclude",
        "xtask",
    ])?;
    let integration = test_binaries(&["-p", "skiff-tests"])?;
    if unit.is_empty() || integration.is_empty() {
        bail!("no test binaries were built");
    }
    eprintln!("== unit tests (root)");
    run_tests(&unit, None, unit_env)?;
    eprintln!("== integration tests (root)");
    run_tests(&integration, None, integration_env)?;
    if sh::is_root() {
        let uid = testenv::test_uid()?;
        open_to_test_user(&target)?;
        eprintln!("== unit tests ({TEST_USER}, rootless)");
        run_tests(&unit, Some(uid), unit_env)?;
        eprintln!("== integration tests ({TEST_USER}, rootless)");
        run_tests(&integration, Some(uid), integration_env)?;
        let nosub: Vec<PathBuf> = integration
            .iter()
            .filter(|b| {
                b.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("nosubuid-"))
            })
            .cloned()
            .collect();
        let nosub_uid = testenv::user_uid(testenv::NOSUB_USER)?;
        eprintln!(
            "== integration tests ({}, rootless without a subuid range)",
            testenv::NOSUB_USER
        );
        run_tests_as(
            &nosub,
            Some((testenv::NOSUB_USER, nosub_uid)),
            integration_env,
            &["--ignored"],
        )?;
    } else {
        eprintln!("xtask: not root: the rootless pass runs as you");
    }
    testenv::down()?;
    eprintln!("xtask: ci passed in {:.0}s", t.elapsed().as_secs_f64());
    Ok(())
}

/// `cargo xtask man DIR`: builds skiff and has it write its man pages (from the clap tree, so
/// they never drift from `--help`) into DIR.
pub fn man(dir: &str) -> Result<()> {
    sh::run(&mut cargo(&["build", "-q", "-p", "skiff"]))?;
    let dir = std::env::current_dir()?.join(dir);
    let mut skiff = Command::new(workspace().join("target/debug/skiff"));
    sh::run(skiff.arg("__man").arg(&dir))?;
    println!(
        "man pages in {}: man -l {}/skiff.1",
        dir.display(),
        dir.display()
    );
    Ok(())
}

/// Brings up the local registry with the fixture images and shows skiff's main job end to end.
pub fn demo() -> Result<()> {
    testenv::up()?;
    crate::fixtures::build_and_push()?;
    sh::run(&mut cargo(&["build", "-q", "-p", "skiff"]))?;
    let skiff = workspace().join("target/debug/skiff");
    let home = std::env::temp_dir().join(format!("skiff-demo-{}", std::process::id()));
    std::fs::create_dir_all(&home)?;
    let step = |args: &[&str]| -> Result<()> {
        println!("\n$ skiff {}", args.join(" "));
        let mut c = Command::new(&skiff);
        c.args(args)
            .env("HOME", &home)
            .env("XDG_DATA_HOME", home.join("data"))
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env_remove("XDG_RUNTIME_DIR");
        sh::run(&mut c)
    };
    let image = format!("{}/busybox", crate::services::REGISTRY);
    step(&["pull", &image])?;
    step(&["pull", &format!("{}/layers", crate::services::REGISTRY)])?;
    step(&["images"])?;
    step(&[
        "image",
        "inspect",
        "-f",
        "{{.Id}} {{.Architecture}} {{json .Config.Cmd}}",
        &image,
    ])?;
    step(&[
        "run",
        "--rm",
        &image,
        "sh",
        "-c",
        "echo hello from $(hostname); id; ps",
    ])?;
    let layers_img = format!("{}/layers", crate::services::REGISTRY);
    step(&[
        "run",
        "--rm",
        "-u",
        "1000",
        &layers_img,
        "sh",
        "-c",
        "id; ls -ln /home/user; cat /etc/motd",
    ])?;
    step(&[
        "run",
        "-d",
        "--name",
        "demo-ticker",
        &image,
        "sh",
        "-c",
        "while true; do date; sleep 1; done",
    ])?;
    step(&["ps"])?;
    std::thread::sleep(std::time::Duration::from_millis(2500));
    step(&["logs", "--tail", "2", "demo-ticker"])?;
    step(&["exec", "demo-ticker", "ps"])?;
    step(&["stop", "-t", "1", "demo-ticker"])?;
    // A private network with a published port, fetched from the host.
    step(&[
        "run",
        "-d",
        "--name",
        "demo-web",
        "-p",
        "18088:80",
        &image,
        "sh",
        "-c",
        "mkdir /www && echo hello over the default network > /www/index.html && exec httpd -f -p 80 -h /www",
    ])?;
    step(&["port", "demo-web"])?;
    let t = std::time::Instant::now();
    let body = loop {
        let got = std::net::TcpStream::connect("127.0.0.1:18088").and_then(|mut s| {
            use std::io::{Read, Write};
            s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
            let mut b = String::new();
            s.read_to_string(&mut b)?;
            Ok(b)
        });
        match got {
            Ok(b) if b.contains("200") => break b,
            _ if t.elapsed() > std::time::Duration::from_secs(10) => {
                bail!("demo-web did not answer")
            }
            _ => std::thread::sleep(std::time::Duration::from_millis(100)),
        }
    };
    println!(
        "\n$ curl http://127.0.0.1:18088/\n{}",
        body.lines().last().unwrap_or("")
    );
    step(&["ps", "-a"])?;
    // A network of one's own: a client finds the server by its name.
    step(&["network", "create", "demo-net"])?;
    step(&[
        "run",
        "-d",
        "--name",
        "demo-api",
        "--network",
        "demo-net",
        &image,
        "sh",
        "-c",
        "mkdir /w && echo hello by name > /w/index.html && exec httpd -f -p 80 -h /w",
    ])?;
    step(&[
        "run",
        "--rm",
        "--network",
        "demo-net",
        &image,
        "sh",
        "-c",
        "until wget -q -O- http://demo-api/; do sleep 0.2; done",
    ])?;
    step(&["network", "ls"])?;
    step(&["rm", "-f", "demo-api"])?;
    step(&["network", "rm", "demo-net"])?;
    step(&["rm", "-f", "demo-web"])?;
    step(&["system", "df"])?;
    step(&["rm", "demo-ticker"])?;
    step(&["rmi", &format!("{}/layers", crate::services::REGISTRY)])?;
    step(&["images"])?;
    step(&["rmi", &image])?;
    step(&[
        "unshare",
        "rm",
        "-rf",
        &home.join("data/skiff/containers").to_string_lossy(),
        &home.join("data/skiff/volumes").to_string_lossy(),
    ])?;
    step(&["image", "prune"])?;
    std::fs::remove_dir_all(&home)?;
    println!("\ndemo done; `cargo xtask testenv down` stops the local registries");
    Ok(())
}
