//! The lifecycle seam: a registered hook implementation (the trace hooks, `SKIFF_HOOK_TRACE`) is
//! called at each of the four points with the right values — attached, detached, `start`,
//! `restart`, a restart policy and `--rm` — and without one the monitor runs no hook helper.

mod common;

use std::path::Path;

use common::*;

/// The trace lines written so far.
fn trace(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each trace line is JSON"))
        .collect()
}

/// The trace lines of one hook for the container named `name`.
fn of(lines: &[serde_json::Value], hook: &str, name: &str) -> Vec<serde_json::Value> {
    lines
        .iter()
        .filter(|l| l["hook"] == hook && l["name"] == name)
        .cloned()
        .collect()
}

/// A skiff command with the trace hooks registered.
fn traced(env: &Env, file: &Path, args: &[&str]) -> Run {
    let mut c = env.cmd(args);
    c.env("SKIFF_HOOK_TRACE", file);
    let out = c.output().expect("running skiff");
    Run::from(out)
}

#[test]
fn every_point_is_called_with_the_right_values() {
    let env = Env::new();
    env.pull("busybox");
    let file = env.home.path().join("trace.jsonl");

    // Attached.
    let r = traced(
        &env,
        &file,
        &["run", "--name", "att", &bb(), "sh", "-c", "exit 3"],
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    let lines = trace(&file);
    let pulls: Vec<_> = lines
        .iter()
        .filter(|l| l["hook"] == "before-pull")
        .collect();
    assert_eq!(pulls.len(), 1, "{lines:?}");
    assert_eq!(pulls[0]["reference"], format!("{REGISTRY}/busybox:latest"));
    let creates: Vec<_> = lines
        .iter()
        .filter(|l| l["hook"] == "before-create")
        .collect();
    assert_eq!(creates.len(), 1, "{lines:?}");
    assert_eq!(
        creates[0]["args"],
        serde_json::json!(["sh", "-c", "exit 3"])
    );
    let id = env.state("att")["Id"].as_str().unwrap().to_string();
    let started = of(&lines, "after-start", "att");
    assert_eq!(started.len(), 1, "{lines:?}");
    assert_eq!(started[0]["id"], id);
    assert!(started[0]["pid"].as_i64().unwrap() > 1);
    let exited = of(&lines, "after-exit", "att");
    assert_eq!(exited.len(), 1, "{lines:?}");
    assert_eq!(exited[0]["exit_code"], 3);
    assert_eq!(exited[0]["signal"], serde_json::Value::Null);
    assert_eq!(exited[0]["will_restart"], false);
    assert_eq!(exited[0]["removing"], false);

    // `start -a` of the same container runs both observation points again.
    let r = traced(&env, &file, &["start", "-a", "att"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    let lines = trace(&file);
    assert_eq!(of(&lines, "after-start", "att").len(), 2);
    assert_eq!(of(&lines, "after-exit", "att").len(), 2);

    // Detached, then `restart`: the stop ends it by a signal, and it starts again.
    let r = traced(
        &env,
        &file,
        &["run", "-d", "--name", "det", &bb(), "sleep", "30"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    eventually("the detached container's after-start", || {
        of(&trace(&file), "after-start", "det").len() == 1
    });
    let r = traced(&env, &file, &["restart", "-t", "0", "det"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    eventually("the restarted container's second after-start", || {
        of(&trace(&file), "after-start", "det").len() == 2
    });
    let exited = of(&trace(&file), "after-exit", "det");
    assert_eq!(exited.len(), 1, "{exited:?}");
    assert_eq!(exited[0]["signal"], 9, "{exited:?}");
    assert_eq!(exited[0]["exit_code"], 137);
    env.ok(&["rm", "-f", "det"]);

    // A restart policy: each failure but the last says it will restart.
    let r = traced(
        &env,
        &file,
        &[
            "run",
            "-d",
            "--name",
            "pol",
            "--restart",
            "on-failure:2",
            &bb(),
            "sh",
            "-c",
            "exit 1",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    eventually("three runs of the restart policy", || {
        of(&trace(&file), "after-exit", "pol").len() == 3
    });
    let restarts: Vec<_> = of(&trace(&file), "after-exit", "pol")
        .iter()
        .map(|l| l["will_restart"].as_bool().unwrap())
        .collect();
    assert_eq!(restarts, [true, true, false]);
    assert_eq!(of(&trace(&file), "after-start", "pol").len(), 3);

    // --rm: the exit says the container is being removed.
    let r = traced(
        &env,
        &file,
        &["run", "--rm", "--name", "gone", &bb(), "true"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let exited = of(&trace(&file), "after-exit", "gone");
    assert_eq!(exited.len(), 1);
    assert_eq!(exited[0]["removing"], true);
    assert!(exited[0]["duration_ms"].as_u64().is_some());
}

#[test]
fn without_a_registered_hook_the_monitor_runs_no_helper() {
    let env = Env::new();
    env.pull("busybox");
    env.ok(&["run", "-d", "--name", "plain", &bb(), "sleep", "30"]);
    let pid = env.state("plain")["State"]["Pid"].as_i64().unwrap();
    // The monitor is the container's parent: its arguments carry no --hooks.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let ppid: i64 = stat
        .rsplit(')')
        .next()
        .and_then(|r| r.split_whitespace().nth(1))
        .and_then(|p| p.parse().ok())
        .unwrap();
    let cmdline = std::fs::read(format!("/proc/{ppid}/cmdline")).unwrap();
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    assert!(
        args.iter().any(|a| a.ends_with("skiff-monitor")),
        "the parent is the monitor: {args:?}"
    );
    assert!(!args.iter().any(|a| a == "--hooks"), "{args:?}");
    env.ok(&["rm", "-f", "plain"]);
}

#[test]
fn a_container_outliving_the_start_helper_still_gets_exactly_one_exit_call() {
    // The after-start helper waits 2 s for the exit; this container runs longer, so its exit
    // goes to a new helper. Each point must still be called exactly once, start first.
    let env = Env::new();
    env.pull("busybox");
    let file = env.home.path().join("trace.jsonl");
    let r = traced(
        &env,
        &file,
        &["run", "--name", "long", &bb(), "sleep", "2.6"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines = trace(&file);
    assert_eq!(of(&lines, "after-start", "long").len(), 1, "{lines:?}");
    assert_eq!(of(&lines, "after-exit", "long").len(), 1, "{lines:?}");
    let order: Vec<_> = lines
        .iter()
        .filter(|l| l["name"] == "long")
        .map(|l| l["hook"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        order,
        ["before-create", "after-start", "after-exit"],
        "{lines:?}"
    );
}
