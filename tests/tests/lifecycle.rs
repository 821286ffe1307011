//! The container lifecycle from per-user state files and monitors, no daemon: ps, logs, inspect,
//! stop, kill, start, restart, create, wait, rm, container prune, rename, top, exec, --restart,
//! and the truth of state when processes die or pids are recycled.

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn ps_shows_docker_columns_statuses_and_filters() {
    let env = Env::new();
    env.pull("busybox");
    env.ok(&[
        "run",
        "-d",
        "--name",
        "up1",
        "-l",
        "tier=web",
        &bb(),
        "sleep",
        "60",
    ]);
    env.run(&["run", "--name", "ex3", &bb(), "sh", "-c", "exit 3"]);
    env.ok(&["create", "--name", "cr", &bb(), "true"]);
    let out = env.ok(&["ps"]).stdout;
    let header = out.lines().next().unwrap();
    let cols: Vec<&str> = header
        .split("   ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        cols,
        [
            "CONTAINER ID",
            "IMAGE",
            "COMMAND",
            "CREATED",
            "STATUS",
            "PORTS",
            "NAMES"
        ]
    );
    assert_eq!(out.lines().count(), 2, "only running by default: {out}");
    assert!(out.contains("up1") && out.contains(" Up "), "{out}");
    let all = env.ok(&["ps", "-a"]).stdout;
    assert!(
        all.contains("Exited (3) ") && all.contains(" ago") && all.contains("Created"),
        "{all}"
    );
    assert_eq!(env.ok(&["ps", "-aq"]).stdout.lines().count(), 3);
    assert!(env
        .ok(&["ps", "-aq", "--no-trunc"])
        .stdout
        .lines()
        .all(|l| l.len() == 64));
    assert_eq!(
        env.ok(&["ps", "-l", "--format", "{{.Names}}"]).stdout,
        "cr\n",
        "-l is the latest created"
    );
    assert_eq!(
        env.ok(&["ps", "-n", "2", "--format", "{{.Names}}"]).stdout,
        "cr\nex3\n"
    );
    let f = |filter: &str| {
        env.ok(&["ps", "-a", "--filter", filter, "--format", "{{.Names}}"])
            .stdout
    };
    assert_eq!(f("status=exited"), "ex3\n");
    assert_eq!(f("status=created"), "cr\n");
    assert_eq!(f("name=up"), "up1\n");
    assert_eq!(f("label=tier=web"), "up1\n");
    assert_eq!(f("label=tier"), "up1\n");
    assert_eq!(f("exited=3"), "ex3\n");
    assert_eq!(f("before=cr"), "ex3\nup1\n");
    assert_eq!(f("since=up1"), "cr\nex3\n");
    assert_eq!(f(&format!("ancestor={}", bb())).lines().count(), 3);
    assert_eq!(
        env.ok(&["ps", "--filter", "status=exited", "-q"])
            .stdout
            .lines()
            .count(),
        1,
        "a status filter looks beyond running ones"
    );
    let table = env
        .ok(&["ps", "-a", "--format", "table {{.Names}}\t{{.Status}}"])
        .stdout;
    assert!(table.starts_with("NAMES   STATUS"), "{table}");
    let json: Vec<serde_json::Value> = env
        .ok(&["ps", "-a", "--format", "json"])
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(json.len(), 3);
    assert!(json
        .iter()
        .any(|j| j["Names"] == "up1" && j["State"] == "running" && j["Labels"] == "tier=web"));
    let r = env.fails(&["ps", "--format", "{{.Names"], "template parsing error");
    assert!(r.stderr.contains("{{.Names"), "{}", r.stderr);
    env.fails(&["ps", "--filter", "colour=red"], "invalid --filter");
    env.ok(&["rm", "-f", "up1", "ex3", "cr"]);
    assert!(env.ok(&["ps", "-aq"]).stdout.is_empty());
}

#[test]
fn logs_keep_streams_apart_and_filter() {
    let env = Env::new();
    env.pull("busybox");
    env.run(&[
        "run",
        "--name",
        "talk",
        &bb(),
        "sh",
        "-c",
        "for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done",
    ]);
    let r = env.ok(&["logs", "talk"]);
    assert_eq!(r.stdout, "out1\nout2\nout3\nout4\nout5\n");
    assert_eq!(r.stderr, "err1\nerr2\nerr3\nerr4\nerr5\n");
    let tail = env.ok(&["logs", "--tail", "2", "talk"]);
    assert_eq!(
        tail.stdout.lines().count() + tail.stderr.lines().count(),
        2,
        "{tail:?}",
        tail = (tail.stdout.clone(), tail.stderr.clone())
    );
    let ts = env.ok(&["logs", "-t", "talk"]).stdout;
    let first = ts.lines().next().unwrap();
    let (t, text) = first.split_once(' ').unwrap();
    assert!(chrono_like(t), "{first}");
    assert_eq!(text, "out1");
    assert!(env
        .ok(&["logs", "--since", "2099-01-01T00:00:00Z", "talk"])
        .stdout
        .is_empty());
    assert_eq!(
        env.ok(&["logs", "--since", "10m", "talk"])
            .stdout
            .lines()
            .count(),
        5
    );
    assert!(env
        .ok(&["logs", "--until", "2000-01-01T00:00:00Z", "talk"])
        .stdout
        .is_empty());
    env.fails(
        &["logs", "--since", "yesterday-ish", "talk"],
        "invalid time",
    );
    env.fails(&["logs", "nobody"], "no such container");
}

fn chrono_like(t: &str) -> bool {
    t.len() > 20 && t.as_bytes()[4] == b'-' && t.contains('T') && t.ends_with('Z')
}

#[test]
fn logs_follow_until_the_container_exits() {
    let env = Env::new();
    env.pull("busybox");
    env.ok(&[
        "run",
        "-d",
        "--name",
        "slow",
        &bb(),
        "sh",
        "-c",
        "for i in 1 2 3 4; do echo line$i; sleep 0.3; done",
    ]);
    let t = Instant::now();
    let r = env.ok(&["logs", "-f", "slow"]);
    assert_eq!(r.stdout, "line1\nline2\nline3\nline4\n");
    assert!(t.elapsed() < Duration::from_secs(20));
}

#[test]
fn inspect_has_docker_fields_and_templates() {
    let env = Env::new();
    env.pull("busybox");
    env.run(&[
        "run",
        "--name",
        "insp",
        "-e",
        "A=1",
        "-l",
        "k=v",
        "-w",
        "/tmp",
        "--hostname",
        "h1",
        &bb(),
        "sh",
        "-c",
        "exit 5",
    ]);
    let s = env.state("insp");
    assert_eq!(s["Name"], "/insp");
    assert_eq!(s["Path"], "sh");
    assert_eq!(s["Args"], serde_json::json!(["-c", "exit 5"]));
    assert_eq!(s["State"]["Status"], "exited");
    assert_eq!(s["State"]["Running"], false);
    assert_eq!(s["State"]["ExitCode"], 5);
    assert!(s["State"]["StartedAt"].as_str().unwrap().starts_with("20"));
    assert_eq!(s["Config"]["Hostname"], "h1");
    assert_eq!(s["Config"]["WorkingDir"], "/tmp");
    assert_eq!(s["Config"]["Labels"]["k"], "v");
    assert!(s["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e == "A=1"));
    assert_eq!(s["RestartCount"], 0);
    assert!(s["LogPath"].as_str().unwrap().ends_with("ctr.log"));
    let f = |t: &str| env.ok(&["inspect", "-f", t, "insp"]).stdout;
    assert_eq!(f("{{.State.ExitCode}}"), "5\n");
    assert!(f("{{json .Config.Env}}").starts_with("[\"PATH="));
    assert_eq!(f(r#"{{index .Config.Labels "k"}}"#), "v\n");
    assert_eq!(f("{{range .Args}}<{{.}}>{{end}}"), "<-c><exit 5>\n");
    let both: serde_json::Value =
        serde_json::from_str(&env.ok(&["inspect", "insp", &bb()]).stdout).unwrap();
    assert_eq!(
        both.as_array().unwrap().len(),
        2,
        "containers and images in one call"
    );
    assert!(both[1]["RepoTags"].is_array());
    env.fails(
        &["inspect", "-f", "{{.State.", "insp"],
        "template parsing error",
    );
}

#[test]
fn stop_kill_start_restart_wait_and_rm() {
    let env = Env::new();
    env.pull("busybox");
    // sh as PID 1 ignores SIGTERM: stop must escalate to SIGKILL after the timeout.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "stubborn",
        &bb(),
        "sh",
        "-c",
        "echo persisted > /kept; sleep 600",
    ]);
    let t = Instant::now();
    assert_eq!(
        env.ok(&["stop", "-t", "1", "stubborn"]).stdout,
        "stubborn\n"
    );
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "waited for the timeout"
    );
    assert_eq!(env.state("stubborn")["State"]["ExitCode"], 137);
    env.ok(&["stop", "stubborn"]); // a stopped container: no-op
                                   // start keeps the container's writable layer.
    env.ok(&["start", "stubborn"]);
    assert_eq!(env.state("stubborn")["State"]["Running"], true);
    assert_eq!(
        env.ok(&["exec", "stubborn", "cat", "/kept"]).stdout,
        "persisted\n"
    );
    // A trapped signal reaches the process.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "trapper",
        "--init",
        &bb(),
        "sh",
        "-c",
        "trap 'echo got-usr1' USR1; while true; do sleep 0.1; done",
    ]);
    std::thread::sleep(Duration::from_millis(300));
    env.ok(&["kill", "-s", "USR1", "trapper"]);
    eventually("the trap to log", || {
        env.ok(&["logs", "trapper"]).stdout.contains("got-usr1")
    });
    env.ok(&["kill", "trapper"]);
    assert_eq!(env.ok(&["wait", "trapper"]).stdout, "137\n");
    // restart, wait and rm of several at once.
    env.ok(&["restart", "-t", "0", "stubborn"]);
    assert_eq!(env.state("stubborn")["State"]["Running"], true);
    let r = env.run(&["rm", "stubborn"]);
    assert_eq!(
        r.code, 2,
        "rm of a running container is refused with exit 2: {}",
        r.stderr
    );
    assert!(r.stderr.contains("is running"), "{}", r.stderr);
    let ids = env.ok(&["ps", "-aq"]).stdout;
    let mut args = vec!["rm", "-f"];
    args.extend(ids.lines());
    env.ok(&args);
    assert!(env.containers().is_empty(), "{:?}", env.containers());
    env.fails(&["stop", "ghost"], "no such container");
}

#[test]
fn create_then_start_attached_and_rename() {
    let env = Env::new();
    env.pull("busybox");
    let id = env
        .ok(&[
            "create",
            "--name",
            "later",
            &bb(),
            "sh",
            "-c",
            "echo started; exit 9",
        ])
        .stdout
        .trim()
        .to_string();
    assert_eq!(id.len(), 64);
    assert_eq!(env.state("later")["State"]["Status"], "created");
    let r = env.run(&["start", "-a", "later"]);
    assert_eq!((r.code, r.stdout.as_str()), (9, "started\n"));
    env.ok(&["rename", "later", "renamed"]);
    assert_eq!(env.state(&id[..8])["Name"], "/renamed");
    env.ok(&["create", "--name", "other", &bb(), "true"]);
    env.fails(&["rename", "other", "renamed"], "already in use");
    env.fails(
        &["run", "--name", "renamed", &bb(), "true"],
        "already in use",
    );
}

#[test]
fn an_ambiguous_id_prefix_lists_the_candidates() {
    let env = Env::new();
    env.pull("busybox");
    // 17 containers: two must share a first hex digit.
    let ids: Vec<String> = (0..17)
        .map(|_| env.ok(&["create", &bb(), "true"]).stdout.trim().to_string())
        .collect();
    let c = ids
        .iter()
        .map(|i| &i[..1])
        .find(|p| ids.iter().filter(|i| i.starts_with(*p)).count() > 1)
        .unwrap();
    let r = env.fails(&["inspect", "--type", "container", c], "ambiguous");
    assert!(r.stderr.contains("matches"), "{}", r.stderr);
    env.ok(&["container", "prune", "-f"]);
    assert!(env.containers().is_empty());
}

#[test]
fn top_and_exec_work_inside_the_running_container() {
    let env = Env::new();
    env.pull("busybox");
    env.ok(&[
        "run",
        "-d",
        "--name",
        "box",
        "--security-opt",
        "no-new-privileges",
        &bb(),
        "sleep",
        "600",
    ]);
    let top = env.ok(&["top", "box"]).stdout;
    assert!(
        top.lines().next().unwrap().contains("PID") && top.contains("sleep 600"),
        "{top}"
    );
    let r = env
        .ok(&[
            "exec",
            "box",
            "sh",
            "-c",
            "ps -o pid,comm | tail -n +2; grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status",
        ])
        .stdout;
    assert!(
        r.lines().next().unwrap().trim() == "1 sleep",
        "the exec'd process sees the container's processes: {r}"
    );
    assert!(
        r.contains("NoNewPrivs:\t1") && r.contains("Seccomp:\t2"),
        "exec keeps the confinement: {r}"
    );
    assert_eq!(env.run(&["exec", "box", "sh", "-c", "exit 6"]).code, 6);
    assert_eq!(env.run(&["exec", "box", "no-such-thing"]).code, 127);
    assert!(
        env.ok(&[
            "exec",
            "-u",
            "1000",
            "-w",
            "/tmp",
            "-e",
            "X=y",
            "box",
            "sh",
            "-c",
            "id -u; pwd; echo $X"
        ])
        .stdout
            == "1000\n/tmp\ny\n"
    );
    env.ok(&["stop", "-t", "0", "box"]);
    env.fails(&["exec", "box", "true"], "is not running");
}

/// Feeds `input` to `skiff ARGS` on a pipe; returns (exit code, stdout).
fn with_stdin(env: &Env, args: &[&str], input: &[u8]) -> (Option<i32>, String) {
    use std::io::Write;
    let mut child = env
        .cmd(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn exec_reads_stdin_only_with_i_and_gets_its_own_terminal_with_t() {
    let env = Env::new();
    env.pull("busybox");
    env.ok(&["run", "-d", "--name", "box", &bb(), "sleep", "600"]);
    // Without -i the command reads /dev/null, as with docker exec.
    let (code, out) = with_stdin(&env, &["exec", "box", "wc", "-l"], b"a\nb\n");
    assert_eq!((code, out.trim()), (Some(0), "0"));
    let (code, out) = with_stdin(&env, &["exec", "-i", "box", "wc", "-l"], b"a\nb\n");
    assert_eq!((code, out.trim()), (Some(0), "2"));
    // -t: a new pty from the container's own devpts, even when skiff has no terminal itself.
    let r = env.ok(&[
        "exec",
        "-t",
        "box",
        "sh",
        "-c",
        "tty; test -t 0 && echo term",
    ]);
    assert_eq!(r.stdout, "/dev/pts/0\r\nterm\r\n", "{r:?}");
    // It belongs to the -u user, and the exit code comes through the relay.
    let r = env.run(&[
        "exec",
        "-t",
        "-u",
        "1000",
        "box",
        "sh",
        "-c",
        "stat -c %u $(tty); exit 3",
    ]);
    assert_eq!((r.code, r.stdout.trim()), (3, "1000"), "{r:?}");
    // -it, from a real terminal: what is typed reaches the command through the pty (echoed by
    // it), and ^D (EOF) ends it.
    let (mut master, slave) = pty::openpty();
    let mut child = env
        .cmd(&[
            "exec",
            "-it",
            "box",
            "sh",
            "-c",
            "read x; echo got-$x; cat; echo eof-seen",
        ])
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave)
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut master, b"ping\n").unwrap();
    let out = pty::read_until(&mut master, "got-ping", Duration::from_secs(20));
    assert!(out.contains("got-ping"), "{out:?}");
    std::io::Write::write_all(&mut master, b"\x04").unwrap();
    let out = pty::read_until(&mut master, "eof-seen", Duration::from_secs(10));
    assert!(out.contains("eof-seen"), "EOF ends it: {out:?}");
    let t = Instant::now();
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        assert!(t.elapsed() < Duration::from_secs(10), "exec did not exit");
        let _ = pty::read_until(&mut master, "\u{0}", Duration::from_millis(100));
    };
    assert_eq!(code, Some(0));
    env.ok(&["rm", "-f", "box"]);
}

#[test]
fn restart_policies_are_carried_out_by_the_monitor() {
    let env = Env::new();
    env.pull("busybox");
    env.ok(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        &bb(),
        "sh",
        "-c",
        "echo try; exit 1",
    ]);
    eventually("two restarts", || {
        let s = env.state("flaky");
        s["RestartCount"] == 2
            && s["State"]["Running"] == false
            && env.ok(&["logs", "flaky"]).stdout.lines().count() == 3
    });
    assert_eq!(env.ok(&["wait", "flaky"]).stdout, "1\n");
    env.ok(&[
        "run",
        "-d",
        "--name",
        "always",
        "--restart",
        "always",
        &bb(),
        "sh",
        "-c",
        "sleep 0.2",
    ]);
    eventually("a restart", || {
        env.state("always")["RestartCount"].as_u64().unwrap_or(0) >= 1
    });
    env.ok(&["stop", "-t", "1", "always"]);
    std::thread::sleep(Duration::from_millis(1500));
    let s = env.state("always");
    assert_eq!(s["State"]["Running"], false, "a user's stop is final");
    // Between two runs the container shows as Restarting (ps without -a lists it, as docker
    // does); it cannot be started twice, pruned, or removed without -f, and stop ends it at once.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "crashy",
        "--restart",
        "always",
        &bb(),
        "sh",
        "-c",
        "exit 3",
    ]);
    eventually("the restarting state", || {
        let s = env.state("crashy");
        s["State"]["Status"] == "restarting" && s["State"]["Restarting"] == true
    });
    let ps = env.ok(&["ps", "--format", "{{.Names}} {{.Status}}"]).stdout;
    eventually("ps showing it restarting", || {
        env.ok(&[
            "ps",
            "--filter",
            "status=restarting",
            "--format",
            "{{.Names}} {{.Status}}",
        ])
        .stdout
        .starts_with("crashy Restarting (3) ")
    });
    assert!(
        ps.contains("crashy "),
        "ps lists a restarting container: {ps}"
    );
    // Running or restarting, its monitor owns it: prune leaves it, rm wants -f.
    env.ok(&["container", "prune", "-f"]);
    env.ok(&["inspect", "crashy"]);
    let r = env.run(&["rm", "crashy"]);
    assert_eq!(r.code, 2, "rm of a restarting container needs -f: {r:?}");
    let t = Instant::now();
    env.ok(&["stop", "crashy"]);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "stop waits out no back-off"
    );
    let count = env.state("crashy")["RestartCount"].clone();
    let s = env.state("crashy");
    assert_eq!(s["State"]["Status"], "exited", "{s}");
    assert_eq!(s["State"]["Restarting"], false);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        env.state("crashy")["RestartCount"],
        count,
        "no run after stop"
    );
    env.ok(&["rm", "crashy"]);
    // rm -f in the middle of the back-off: the monitor gives up the restart and the record goes.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "crashy2",
        "--restart",
        "always",
        &bb(),
        "sh",
        "-c",
        "exit 3",
    ]);
    eventually("the restarting state", || {
        env.state("crashy2")["State"]["Restarting"] == true
    });
    let (_, monitor) = pids(&env, "crashy2");
    env.ok(&["rm", "-f", "crashy2"]);
    assert!(env.run(&["inspect", "crashy2"]).code != 0);
    eventually("the monitor's end", || dead(monitor));
    env.fails(
        &["run", "--rm", "--restart", "always", &bb(), "true"],
        "conflict",
    );
    env.fails(
        &["run", "--restart", "sometimes", &bb(), "true"],
        "invalid --restart",
    );
}

/// The first process's pid and start time from state.json, as the monitor recorded them.
fn pids(env: &Env, name: &str) -> (i32, i32) {
    let id = env
        .ok(&["inspect", "-f", "{{.Id}}", name])
        .stdout
        .trim()
        .to_string();
    let st: serde_json::Value = serde_json::from_slice(
        &std::fs::read(env.data().join("containers").join(id).join("state.json")).unwrap(),
    )
    .unwrap();
    (
        st["pid"].as_i64().unwrap() as i32,
        st["monitor_pid"].as_i64().unwrap() as i32,
    )
}

fn dead(pid: i32) -> bool {
    // This machine's init reaps orphans late: a zombie counts as dead.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit_once(')')
            .map(|(_, r)| r.trim_start().starts_with('Z'))
            .unwrap_or(true),
    }
}

#[test]
fn a_killed_monitor_is_noticed_and_its_container_does_not_linger() {
    let env = Env::new();
    env.pull("busybox");
    env.ok(&["run", "-d", "--name", "orphan", &bb(), "sleep", "600"]);
    let (ctr, monitor) = pids(&env, "orphan");
    // SAFETY: killing the monitor this test started.
    unsafe { libc::kill(monitor, libc::SIGKILL) };
    eventually("the container to die with its monitor", || dead(ctr));
    let t = Instant::now();
    let ps = env
        .ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"])
        .stdout;
    assert!(t.elapsed() < Duration::from_secs(5), "no command hangs");
    assert!(
        ps.starts_with("orphan Exited (-1)"),
        "shown exited with an unknown code: {ps}"
    );
    assert_eq!(env.ok(&["wait", "orphan"]).stdout, "-1\n");
    env.ok(&["rm", "orphan"]);
}

#[test]
fn a_recycled_pid_never_looks_alive() {
    let env = Env::new();
    env.pull("busybox");
    env.ok(&["run", "-d", "--name", "reboot", &bb(), "sleep", "600"]);
    let id = env
        .ok(&["inspect", "-f", "{{.Id}}", "reboot"])
        .stdout
        .trim()
        .to_string();
    env.ok(&["kill", "reboot"]);
    env.ok(&["wait", "reboot"]);
    // As after a reboot: state.json says running, and its pid now belongs to another process
    // (this test) with another start time.
    let path = env.data().join("containers").join(&id).join("state.json");
    let mut st: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    st["status"] = "running".into();
    st["pid"] = (std::process::id() as i64).into();
    st["pid_start"] = 1.into();
    st["monitor_pid"] = (std::process::id() as i64).into();
    st["monitor_start"] = 1.into();
    std::fs::write(&path, serde_json::to_vec(&st).unwrap()).unwrap();
    let ps = env
        .ok(&["ps", "-a", "--format", "{{.Names}} {{.State}}"])
        .stdout;
    assert_eq!(ps, "reboot exited\n");
    // (and this process, whose pid was in the file, is still here to assert it)
}

#[test]
fn fifty_parallel_shells_lose_nothing() {
    let env = std::sync::Arc::new(Env::new());
    env.pull("busybox");
    let handles: Vec<_> = (0..50)
        .map(|i| {
            let env = env.clone();
            std::thread::spawn(move || {
                let name = format!("par{i}");
                let r = env.run(&[
                    "run",
                    "-d",
                    "--name",
                    &name,
                    &bb(),
                    "sh",
                    "-c",
                    "echo hello; sleep 600",
                ]);
                assert_eq!(r.code, 0, "run {name}: {}", r.stderr);
                assert_eq!(env.run(&["ps", "-a", "-q"]).code, 0);
                eventually("output", || env.run(&["logs", &name]).stdout == "hello\n");
                let s = env.run(&["stop", "-t", "0", &name]);
                assert_eq!(s.code, 0, "stop {name}: {}", s.stderr);
                let r = env.run(&["rm", &name]);
                assert_eq!(r.code, 0, "rm {name}: {}", r.stderr);
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert!(
        env.containers().is_empty(),
        "every record removed: {:?}",
        env.containers()
    );
    assert!(env.ok(&["ps", "-aq"]).stdout.is_empty());
    let leftovers: Vec<String> = env
        .entries("containers")
        .into_iter()
        .filter(|n| n != ".names.lock")
        .collect();
    assert!(
        leftovers.is_empty(),
        "no half-written or stale files: {leftovers:?}"
    );
    env.ok(&["run", "--rm", &bb(), "true"]); // no stale lock
}

#[test]
fn logs_are_capped_at_the_configured_size_keeping_the_newest() {
    let env = Env::new();
    env.pull("busybox");
    std::fs::create_dir_all(env.config()).unwrap();
    std::fs::write(
        env.config().join("config.toml"),
        "[logs]\nmax_size = \"8KB\"\n",
    )
    .unwrap();
    env.ok(&[
        "run",
        "--name",
        "chatty",
        &bb(),
        "sh",
        "-c",
        "i=0; while [ $i -lt 2000 ]; do echo line$i; i=$((i+1)); done",
    ]);
    let id = env
        .ok(&["inspect", "-f", "{{.Id}}", "chatty"])
        .stdout
        .trim()
        .to_string();
    let size = std::fs::metadata(env.data().join("containers").join(id).join("ctr.log"))
        .unwrap()
        .len();
    assert!(size <= 8 * 1024, "the log stays under the cap: {size}");
    let out = env.ok(&["logs", "chatty"]).stdout;
    assert!(out.ends_with("line1999\n"), "the newest output is kept");
    assert!(!out.starts_with("line0\n"), "the oldest is dropped");
    std::fs::write(
        env.config().join("config.toml"),
        "[logs]\nmax_size = \"lots\"\n",
    )
    .unwrap();
    let before = env.containers().len();
    env.fails(&["run", "--rm", &bb(), "true"], "logs.max_size");
    assert_eq!(
        env.containers().len(),
        before,
        "a broken config leaves no record"
    );
}

#[test]
fn images_used_by_containers_keep_their_layers() {
    let env = Env::new();
    env.pull("layers");
    let image = format!("{REGISTRY}/layers");
    env.run(&["run", "--name", "user1", &image, "cat", "/etc/motd"]);
    env.fails(&["rmi", &image], "in use by container user1");
    // Forced: the name goes, the layers stay for the container, even through a prune.
    env.ok(&["rmi", "-f", &image]);
    env.ok(&["image", "prune", "-f"]);
    let r = env.run(&["start", "-a", "user1"]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "upper motd\n"),
        "the container still starts: {}",
        r.stderr
    );
    env.ok(&["rm", "user1"]);
    env.ok(&["image", "prune", "-f"]);
    assert!(
        env.entries("layers")
            .iter()
            .all(|n| n.ends_with(".size") || n.starts_with('.')),
        "freed once no container uses them: {:?}",
        env.entries("layers")
    );
    assert!(
        env.entries("layers").is_empty(),
        "{:?}",
        env.entries("layers")
    );
}

#[test]
fn volumes_are_listed_kept_while_used_and_pruned() {
    let env = Env::new();
    env.pull("busybox");
    assert_eq!(env.ok(&["volume", "create", "data"]).stdout.trim(), "data");
    // Files of another id (mapped, rootless) in both a named and an anonymous volume.
    env.ok(&[
        "run",
        "--name",
        "user",
        "-v",
        "data:/d",
        "-v",
        "/anon",
        &bb(),
        "sh",
        "-c",
        "echo kept > /d/f && echo x > /anon/f && chown 1000:1000 /d/f /anon/f",
    ]);
    let names = env.ok(&["volume", "ls", "-q"]).stdout;
    let names: Vec<&str> = names.lines().collect();
    assert_eq!(names.len(), 2, "{names:?}");
    let anon = names.iter().find(|n| **n != "data").unwrap().to_string();
    assert_eq!(
        env.ok(&[
            "volume",
            "inspect",
            "-f",
            "{{.Name}} {{.Driver}} {{json .UsedBy}}",
            "data"
        ])
        .stdout
        .trim(),
        r#"data local ["user"]"#
    );
    // In use: rm refuses with the container named, prune keeps them.
    let r = env.fails(&["volume", "rm", "data"], "in use by container user");
    assert!(r.stderr.contains("skiff rm user"));
    env.ok(&["volume", "prune", "-f", "-a"]);
    assert_eq!(env.ok(&["volume", "ls", "-q"]).stdout.lines().count(), 2);
    // The data outlives its container and shows up in the next one.
    env.ok(&["rm", "user"]);
    assert_eq!(
        env.ok(&["run", "--rm", "-v", "data:/d", &bb(), "cat", "/d/f"])
            .stdout,
        "kept\n"
    );
    // Plain prune takes only the anonymous one; -a the named one too; no files are left.
    let pruned = env.ok(&["volume", "prune", "-f"]).stdout;
    assert!(
        pruned.contains(&anon) && !pruned.contains("data\n"),
        "{pruned}"
    );
    assert_eq!(env.ok(&["volume", "ls", "-q"]).stdout.trim(), "data");
    env.ok(&["volume", "prune", "-f", "-a"]);
    assert!(env.ok(&["volume", "ls", "-q"]).stdout.is_empty());
    assert!(
        env.entries("volumes").is_empty(),
        "{:?}",
        env.entries("volumes")
    );
    env.fails(&["volume", "rm", "nosuch"], "no such volume");
    env.ok(&["volume", "rm", "-f", "nosuch"]);
}

#[test]
fn system_df_counts_and_system_prune_takes_back_everything_unused() {
    let env = Env::new();
    env.pull("busybox");
    env.pull("hello");
    let hello = format!("{REGISTRY}/hello");
    env.ok(&["run", "-d", "--name", "keep", &hello, "sleep", "600"]);
    env.ok(&[
        "run",
        "--name",
        "gone",
        "-v",
        "/anon",
        &bb(),
        "sh",
        "-c",
        "head -c 300000 /dev/zero > /big",
    ]);
    let df = env.ok(&["system", "df"]).stdout;
    let row = |kind: &str| -> Vec<String> {
        df.lines()
            .find(|l| l.starts_with(kind))
            .unwrap_or_else(|| panic!("{kind} in {df}"))
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    assert_eq!(&row("Images")[1..3], ["2", "2"], "{df}");
    assert_eq!(&row("Containers")[1..3], ["2", "1"], "{df}");
    assert_eq!(
        row("Containers")[3],
        "300kB",
        "the stopped container's upper dir: {df}"
    );

    let out = env.ok(&["system", "prune", "-f", "-a", "--volumes"]).stdout;
    assert!(
        out.contains("Untagged: 127.0.0.1:5000/busybox:latest"),
        "{out}"
    );
    assert!(
        !out.contains("hello"),
        "an image a container uses stays: {out}"
    );
    // The stopped container's 300 kB, plus the removed image's manifest and config blobs.
    assert!(
        out.contains("Total reclaimed space: 30") && out.contains("kB\n"),
        "{out}"
    );
    assert_eq!(env.ok(&["ps", "-aq"]).stdout.lines().count(), 1);
    assert!(env.ok(&["volume", "ls", "-q"]).stdout.is_empty());

    // With the last container gone, everything goes: no blob, no layer dir is left.
    env.ok(&["rm", "-f", "keep"]);
    env.ok(&["system", "prune", "-f", "-a"]);
    assert!(env.ok(&["images", "-q"]).stdout.is_empty());
    assert!(
        env.entries("layers").is_empty(),
        "{:?}",
        env.entries("layers")
    );
    assert_eq!(env.verify_blobs(), 0, "no blob left");
}

#[test]
fn cp_copies_both_ways_within_the_containers_root() {
    let env = Env::new();
    env.pull("busybox");
    env.ok(&["run", "-d", "--name", "box", &bb(), "sleep", "600"]);
    let host = env.home.path().join("cp");
    std::fs::create_dir_all(host.join("tree/sub")).unwrap();
    std::fs::write(host.join("tree/a.txt"), "hello\n").unwrap();
    std::fs::write(host.join("tree/sub/b.txt"), "deep\n").unwrap();
    std::os::unix::fs::symlink("a.txt", host.join("tree/link")).unwrap();
    let tree = host.join("tree");
    let tree = tree.to_string_lossy();

    // In: a tree into an existing dir, a file to a new name; owned by the container's root.
    env.ok(&["cp", &tree, "box:/tmp"]);
    env.ok(&["cp", &format!("{tree}/a.txt"), "box:/renamed.txt"]);
    let inside = env
        .ok(&[
            "exec", "box", "sh", "-c",
            "cat /tmp/tree/sub/b.txt /renamed.txt; readlink /tmp/tree/link; stat -c %u /renamed.txt",
        ])
        .stdout;
    assert_eq!(inside, "deep\nhello\na.txt\n0\n");

    // Out: into a dir, and to a new name; a container symlink pointing at the host's files
    // comes out as a link, and what it points at is not read.
    env.ok(&[
        "exec",
        "box",
        "sh",
        "-c",
        "mkdir /o && echo out > /o/f && ln -s /etc/shadow /o/shadow && ln -s / /o/root",
    ]);
    let out = host.join("out");
    std::fs::create_dir(&out).unwrap();
    env.ok(&["cp", "box:/o", &out.to_string_lossy()]);
    assert_eq!(std::fs::read_to_string(out.join("o/f")).unwrap(), "out\n");
    assert_eq!(
        std::fs::read_link(out.join("o/shadow")).unwrap(),
        std::path::Path::new("/etc/shadow")
    );
    env.ok(&["cp", "box:/etc/hostname", &host.join("h").to_string_lossy()]);
    let id = env.ok(&["inspect", "-f", "{{.Id}}", "box"]).stdout;
    assert_eq!(
        std::fs::read_to_string(host.join("h")).unwrap().trim(),
        &id.trim()[..12]
    );

    env.fails(
        &["cp", "box:/nosuch", &host.to_string_lossy()],
        "in the container",
    );
    env.fails(
        &["cp", &tree, "box:/no/such/dir"],
        "does not exist in the container",
    );
    env.fails(&["cp", &tree, &host.to_string_lossy()], "CONTAINER:PATH");
    // A container that is not running: created (the classic create, cp, start) or exited.
    env.ok(&["stop", "-t", "0", "box"]);
    env.ok(&["cp", &format!("{tree}/a.txt"), "box:/after-stop.txt"]);
    env.ok(&[
        "cp",
        "box:/after-stop.txt",
        &host.join("back.txt").to_string_lossy(),
    ]);
    assert_eq!(
        std::fs::read_to_string(host.join("back.txt")).unwrap(),
        "hello\n"
    );
    env.ok(&[
        "create",
        "--name",
        "fresh",
        &bb(),
        "cat",
        "/etc/app.conf",
        "/tmp/tree/sub/b.txt",
    ]);
    std::fs::write(host.join("app.conf"), "configured\n").unwrap();
    env.ok(&[
        "cp",
        &host.join("app.conf").to_string_lossy(),
        "fresh:/etc/app.conf",
    ]);
    env.ok(&["cp", &tree, "fresh:/tmp"]);
    assert_eq!(
        env.ok(&["start", "-a", "fresh"]).stdout,
        "configured\ndeep\n"
    );
    env.fails(
        &["cp", "fresh:/nosuch", &host.to_string_lossy()],
        "No such file",
    );
}

#[test]
fn stats_reads_cpu_memory_and_pids_from_proc_even_rootless() {
    let env = Env::new();
    env.pull("busybox");
    env.ok(&[
        "run",
        "-d",
        "--name",
        "busy",
        "-u",
        "1000",
        &bb(),
        "sh",
        "-c",
        "while :; do :; done",
    ]);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "idle",
        "--network",
        "host",
        &bb(),
        "sh",
        "-c",
        "sleep 600 & exec sleep 600",
    ]);
    let out = env
        .ok(&[
            "stats",
            "--no-stream",
            "--format",
            "{{.Name}} {{.CPUPerc}} {{.PIDs}} {{.MemUsage}} {{.NetIO}}",
        ])
        .stdout;
    let row = |name: &str| -> Vec<String> {
        out.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} in {out}"))
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    let cpu = |r: &[String]| r[1].trim_end_matches('%').parse::<f64>().unwrap();
    let (busy, idle) = (row("busy"), row("idle"));
    // A spinning loop uses CPU (how much depends on the machine); a sleeping one uses none.
    assert!(cpu(&busy) > 0.0, "{out}");
    assert_eq!(cpu(&idle), 0.0, "{out}");
    assert_eq!((busy[2].as_str(), idle[2].as_str()), ("1", "2"), "{out}");
    assert!(
        !idle[3].starts_with("0B"),
        "resident memory is counted: {out}"
    );
    assert_eq!(
        idle[6], "--",
        "the host network's counters are not the container's: {out}"
    );
    assert_ne!(busy[6], "--", "its own network's counters: {out}");
    let table = env.ok(&["stats", "--no-stream", "idle"]).stdout;
    assert!(
        table.starts_with("CONTAINER ID") && table.contains("MEM USAGE / LIMIT"),
        "{table}"
    );
    env.ok(&["rm", "-f", "busy", "idle"]);
}

#[test]
fn pause_stops_every_process_until_unpause() {
    let env = Env::new();
    env.pull("busybox");
    env.ok(&[
        "run",
        "-d",
        "--name",
        "tick",
        &bb(),
        "sh",
        "-c",
        "sleep 600 & while :; do echo t; sleep 0.05; done",
    ]);
    eventually("output", || !env.ok(&["logs", "tick"]).stdout.is_empty());
    env.ok(&["pause", "tick"]);
    let s = env.state("tick");
    assert_eq!(
        (
            s["State"]["Status"].as_str(),
            s["State"]["Paused"].as_bool()
        ),
        (Some("paused"), Some(true))
    );
    assert!(env
        .ok(&["ps", "--format", "{{.Status}}"])
        .stdout
        .trim()
        .ends_with("(Paused)"));
    // Every process is stopped (state T), the background one too; no output grows meanwhile.
    let pid = pids(&env, "tick").0;
    let states: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|st| {
            st.rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().nth(1))
                .is_some_and(|pp| pp == pid.to_string())
                || st.starts_with(&format!("{pid} "))
        })
        .map(|st| {
            st.rsplit_once(')')
                .unwrap()
                .1
                .split_whitespace()
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    // (A child that exited just as the shell stopped stays a zombie until it goes on.)
    assert!(
        states.iter().filter(|s| *s == "T").count() >= 2
            && states.iter().all(|s| s == "T" || s == "Z"),
        "{states:?}"
    );
    let before = env.ok(&["logs", "tick"]).stdout.len();
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        env.ok(&["logs", "tick"]).stdout.len(),
        before,
        "no output while paused"
    );
    env.fails(&["exec", "tick", "true"], "is paused");
    env.fails(&["pause", "tick"], "already paused");
    env.ok(&["unpause", "tick"]);
    eventually("output again", || {
        env.ok(&["logs", "tick"]).stdout.len() > before
    });
    env.fails(&["unpause", "tick"], "not paused");
    // A paused container still stops (it is let go first).
    env.ok(&["pause", "tick"]);
    env.ok(&["rm", "-f", "tick"]);
}

#[test]
fn commit_makes_an_image_of_a_containers_changes_that_runs_and_pushes() {
    let env = Env::new();
    env.pull("layers");
    let layers = format!("{REGISTRY}/layers");
    env.ok(&[
        "run", "--name", "c", "-e", "MODE=prod", "-w", "/etc", &layers, "sh", "-c",
        "echo new > /etc/added && chown 1000 /etc/added && rm /etc/motd && rm -rf /opaque && mkdir /opaque && echo fresh > /opaque/only",
    ]);
    let id = env
        .ok(&["commit", "-m", "my change", "-a", "me", "c", "snap:v1"])
        .stdout;
    assert!(id.trim().starts_with("sha256:"), "{id}");
    // Added, deleted (a whiteout), replaced (an opaque dir), owners, and the container's settings.
    let check = "cat /etc/added; ls /etc/motd 2>/dev/null || echo motd-gone; ls /opaque; stat -c %u /etc/added; echo $MODE; pwd";
    let expect = "new\nmotd-gone\nonly\n1000\nprod\n/etc\n";
    assert_eq!(
        env.ok(&["run", "--rm", "snap:v1", "sh", "-c", check])
            .stdout,
        expect
    );
    assert_eq!(
        env.ok(&["image", "inspect", "-f", "{{.Author}} {{.Id}}", "snap:v1"])
            .stdout
            .trim(),
        format!("me {}", id.trim())
    );
    // Complete as a pulled image: it pushes, and another user pulls and runs the same thing.
    let dest = format!("{REGISTRY}/committed-{}:v1", std::process::id());
    env.ok(&["push", "-q", "snap:v1", &dest]);
    let other = Env::new();
    assert_eq!(
        other.ok(&["run", "--rm", &dest, "sh", "-c", check]).stdout,
        expect
    );
    env.fails(&["commit", "c", "Bad:Name"], "invalid reference");
}
