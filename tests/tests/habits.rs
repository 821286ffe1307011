//! More of what a Docker user expects in the first hour: `State.OOMKilled`, `inspect --size`,
//! the `restart` event, the `system events`/`system info` aliases, `export` of a running
//! container and `attach` to a `-t` one.

mod common;

use common::*;

/// A container whose memory hog the kernel's OOM killer ended shows `State.OOMKilled` true
/// (where a memory cgroup can be made); a normal exit, and the next run, show false.
#[test]
fn inspect_shows_oom_killed() {
    let env = Env::new();
    env.pull("busybox");
    env.ok(&["run", "--name", "calm", &bb(), "true"]);
    assert_eq!(env.state("calm")["State"]["OOMKilled"], false);
    let hog = env.run(&[
        "run",
        "--name",
        "hog",
        "-m",
        "16m",
        &bb(),
        "dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=64M",
        "count=1",
    ]);
    if hog.stderr.contains("WARNING: resource limits ignored") {
        eprintln!(
            "skipping the OOM half: no memory cgroup can be made here ({})",
            hog.stderr.trim()
        );
        assert_eq!(hog.code, 0, "{hog:?}");
        assert_eq!(env.state("hog")["State"]["OOMKilled"], false);
        return;
    }
    assert_eq!(hog.code, 137, "OOM-killed: {hog:?}");
    let st = env.state("hog")["State"].clone();
    assert_eq!(st["OOMKilled"], true, "{st}");
    assert_eq!(st["ExitCode"], 137, "{st}");
    assert_eq!(
        env.ok(&["inspect", "-f", "{{.State.OOMKilled}}", "hog"])
            .stdout,
        "true\n"
    );
    // Started again, it is a new run: false while it runs (and after a normal end).
    env.ok(&["update", "-m", "256m", "hog"]);
    env.ok(&["start", "-a", "hog"]);
    assert_eq!(env.state("hog")["State"]["OOMKilled"], false);
}
