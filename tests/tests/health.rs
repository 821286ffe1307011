//! Healthchecks as Docker has them: `--health-*` flags and the image's HEALTHCHECK, the checks
//! run by the monitor's `__health` helper (starting → healthy, unhealthy after retries, a hung
//! check killed at its timeout), `ps` STATUS and `--filter health=`, `inspect`'s State.Health
//! and Config.Healthcheck, `healthcheck run`, and no helper left once the container stops.

mod common;

use common::*;

/// The container's `State.Health`, or null.
fn health(env: &Env, name: &str) -> serde_json::Value {
    env.state(name)["State"]["Health"].clone()
}

fn status(env: &Env, name: &str) -> String {
    health(env, name)["Status"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The pids of `skiff __health ID` processes for this container.
fn health_helpers(id: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if args.iter().any(|a| a.starts_with(b"__health")) && args.contains(&id.as_bytes()) {
            found.push(pid);
        }
    }
    found
}

#[test]
fn a_passing_check_goes_from_starting_to_healthy_and_its_helper_ends_with_the_container() {
    let env = Env::new();
    env.pull("busybox");
    let id = env
        .ok(&[
            "run",
            "-d",
            "--name",
            "ok1",
            "--health-cmd",
            "echo fine",
            "--health-interval",
            "1s",
            &bb(),
            "sleep",
            "60",
        ])
        .stdout
        .trim()
        .to_string();
    // Before the first check (one interval) it is starting.
    let ps = env.ok(&["ps"]).stdout;
    assert!(ps.contains("(health: starting)"), "{ps}");
    assert_eq!(status(&env, "ok1"), "starting");
    let cfg = env.state("ok1")["Config"]["Healthcheck"].clone();
    assert_eq!(cfg["Test"], serde_json::json!(["CMD-SHELL", "echo fine"]));
    assert_eq!(cfg["Interval"], 1_000_000_000i64);
    eventually("healthy", || status(&env, "ok1") == "healthy");
    let h = health(&env, "ok1");
    assert_eq!(h["FailingStreak"], 0);
    let log = h["Log"].as_array().unwrap();
    assert_eq!(log[0]["ExitCode"], 0);
    assert_eq!(log[0]["Output"], "fine\n");
    assert!(log[0]["Start"].as_str().unwrap() <= log[0]["End"].as_str().unwrap());
    let ps = env.ok(&["ps"]).stdout;
    assert!(ps.contains("(healthy)"), "{ps}");
    let ids = env.ok(&["ps", "-q", "--filter", "health=healthy"]).stdout;
    assert_eq!(ids.trim(), &id[..12]);
    assert!(env
        .ok(&["ps", "-q", "--filter", "health=unhealthy"])
        .stdout
        .trim()
        .is_empty());
    assert_eq!(health_helpers(&id).len(), 1, "one helper while it runs");
    env.ok(&["stop", "-t", "1", "ok1"]);
    eventually("the health helper to end", || {
        health_helpers(&id).is_empty()
    });
    // A stopped container shows no health in ps, as Docker.
    let ps = env.ok(&["ps", "-a"]).stdout;
    assert!(ps.contains("Exited") && !ps.contains("healthy"), "{ps}");
}

#[test]
fn a_failing_check_becomes_unhealthy_after_its_retries() {
    let env = Env::new();
    env.pull("busybox");
    env.ok(&[
        "run",
        "-d",
        "--name",
        "bad1",
        "--health-cmd",
        "echo nope >&2; exit 1",
        "--health-interval",
        "200ms",
        "--health-retries",
        "3",
        &bb(),
        "sleep",
        "60",
    ]);
    eventually("unhealthy", || status(&env, "bad1") == "unhealthy");
    let h = health(&env, "bad1");
    assert!(h["FailingStreak"].as_u64().unwrap() >= 3, "{h}");
    let log = h["Log"].as_array().unwrap();
    assert!(!log.is_empty() && log.len() <= 5, "{h}");
    assert!(log
        .iter()
        .all(|r| r["ExitCode"] == 1 && r["Output"] == "nope\n"));
    let ps = env.ok(&["ps"]).stdout;
    assert!(ps.contains("(unhealthy)"), "{ps}");
    // Not restarted for it (Docker restarts only on exit).
    assert_eq!(env.state("bad1")["RestartCount"], 0);
    let r = env.run(&["healthcheck", "run", "bad1"]);
    assert_eq!((r.code, r.stdout.trim()), (1, "unhealthy"), "{r:?}");
}

#[test]
fn a_check_that_hangs_is_killed_at_its_timeout_and_counts_as_a_failure() {
    let env = Env::new();
    env.pull("busybox");
    env.ok(&[
        "run",
        "-d",
        "--name",
        "hang",
        "--health-cmd",
        "sleep 1000",
        "--health-interval",
        "200ms",
        "--health-timeout",
        "300ms",
        "--health-retries",
        "2",
        &bb(),
        "sleep",
        "60",
    ]);
    eventually("unhealthy", || status(&env, "hang") == "unhealthy");
    let h = health(&env, "hang");
    let r = &h["Log"][0];
    assert_eq!(r["ExitCode"], -1, "{h}");
    assert_eq!(r["Output"], "Health check exceeded timeout (300ms)");
    // The timed-out checks were killed inside the container: at most the one in flight runs.
    let top = env.ok(&["top", "hang"]).stdout;
    let hung = top.lines().filter(|l| l.contains("sleep 1000")).count();
    assert!(hung <= 1, "{top}");
}

#[test]
fn healthcheck_run_checks_now_and_records_it() {
    let env = Env::new();
    env.pull("busybox");
    env.ok(&[
        "run",
        "-d",
        "--name",
        "now",
        "--health-cmd",
        "test -e /tmp/ok",
        "--health-interval",
        "1h",
        &bb(),
        "sleep",
        "60",
    ]);
    let r = env.run(&["healthcheck", "run", "now"]);
    assert_eq!((r.code, r.stdout.trim()), (1, "unhealthy"), "{r:?}");
    assert_eq!(health(&env, "now")["FailingStreak"], 1);
    env.ok(&["exec", "now", "touch", "/tmp/ok"]);
    let r = env.run(&["healthcheck", "run", "now"]);
    assert_eq!((r.code, r.stdout.trim()), (0, "healthy"), "{r:?}");
    assert_eq!(status(&env, "now"), "healthy");
    assert_eq!(health(&env, "now")["Log"].as_array().unwrap().len(), 2);
    // A container without a check.
    env.ok(&["run", "-d", "--name", "plain", &bb(), "sleep", "60"]);
    env.fails(&["healthcheck", "run", "plain"], "has no healthcheck");
    assert!(health(&env, "plain").is_null());
    assert!(env.state("plain")["Config"]["Healthcheck"].is_null());
    let none = env.ok(&["ps", "-q", "--filter", "health=none"]).stdout;
    assert_eq!(none.lines().count(), 1, "{none}");
}

#[test]
fn an_image_healthcheck_is_honoured_and_no_healthcheck_disables_it() {
    let env = Env::new();
    env.pull("busybox");
    // The fixture image: commit keeps a container's healthcheck, as Docker's commit does.
    env.ok(&[
        "create",
        "--name",
        "base",
        "--health-cmd",
        "echo from-image",
        "--health-interval",
        "200ms",
        &bb(),
        "true",
    ]);
    env.ok(&["commit", "base", "localhost/hc:1"]);
    let img = env
        .ok(&["inspect", "--type", "image", "localhost/hc:1"])
        .stdout;
    assert!(img.contains("from-image"), "{img}");
    env.ok(&[
        "run",
        "-d",
        "--name",
        "fromimg",
        "--health-retries",
        "5",
        "localhost/hc:1",
        "sleep",
        "60",
    ]);
    let cfg = env.state("fromimg")["Config"]["Healthcheck"].clone();
    assert_eq!(
        cfg["Test"],
        serde_json::json!(["CMD-SHELL", "echo from-image"])
    );
    assert_eq!(
        (cfg["Interval"].clone(), cfg["Retries"].clone()),
        (200_000_000.into(), 5.into())
    );
    eventually("healthy", || status(&env, "fromimg") == "healthy");
    assert_eq!(health(&env, "fromimg")["Log"][0]["Output"], "from-image\n");

    let id = env
        .ok(&[
            "run",
            "-d",
            "--name",
            "off",
            "--no-healthcheck",
            "localhost/hc:1",
            "sleep",
            "60",
        ])
        .stdout
        .trim()
        .to_string();
    assert_eq!(
        env.state("off")["Config"]["Healthcheck"]["Test"],
        serde_json::json!(["NONE"])
    );
    assert!(health(&env, "off").is_null());
    std::thread::sleep(std::time::Duration::from_millis(600));
    assert!(health_helpers(&id).is_empty());
    let ps = env.ok(&["ps", "--filter", "name=off"]).stdout;
    assert!(!ps.contains("health"), "{ps}");
}

#[test]
fn bad_health_flags_are_refused_and_leave_no_record() {
    let env = Env::new();
    env.pull("busybox");
    for (flag, value, needle) in [
        ("--health-interval", "5", "--health-interval"),
        ("--health-timeout", "abc", "--health-timeout"),
        ("--health-start-period", "10us", "at least 1ms"),
        ("--health-retries", "-1", "cannot be negative"),
    ] {
        env.fails(&["run", "-d", flag, value, &bb(), "true"], needle);
        env.fails(&["create", flag, value, &bb(), "true"], needle);
    }
    env.fails(
        &[
            "run",
            "-d",
            "--no-healthcheck",
            "--health-cmd",
            "true",
            &bb(),
            "true",
        ],
        "--no-healthcheck",
    );
    assert!(env.containers().is_empty(), "{:?}", env.containers());
}
