//! More of what a Docker user expects in the first hour: `State.OOMKilled`, `inspect --size`,
//! the `restart` event, the `system events`/`system info` aliases, `export` of a running
//! container and `attach` to a `-t` one.

mod common;

use common::*;

/// A container whose memory hog the kernel's OOM killer ended shows `State.OOMKilled` true and
/// has an `oom` event (where a memory cgroup can be made); a normal exit, and the next run,
/// show false.
#[test]
fn inspect_shows_oom_killed() {
    let env = Env::new();
    env.pull("busybox");
    env.ok(&["run", "--name", "calm", &bb(), "true"]);
    assert_eq!(env.state("calm")["State"]["OOMKilled"], false);
    let since = chrono::Utc::now().to_rfc3339();
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
    // Docker's `oom` event, just before its `die`.
    let acts = actions(&env, &since, "hog");
    assert_eq!(acts, ["create", "start", "oom", "die"], "{acts:?}");
    // Started again, it is a new run: false while it runs (and after a normal end).
    env.ok(&["update", "-m", "256m", "hog"]);
    env.ok(&["start", "-a", "hog"]);
    assert_eq!(env.state("hog")["State"]["OOMKilled"], false);
}

/// `SizeRw` and `SizeRootFs` of `inspect -s` (and of `container inspect --size`), as Docker: the
/// fields absent without the flag; what the container wrote, and that plus the image. A planted
/// symlink to the host's root is counted as a symlink, not followed.
fn check_sizes(env: &Env, name: &str, flag: &str) {
    let plain = env.state(name);
    assert!(plain.get("SizeRw").is_none(), "no SizeRw without -s");
    assert!(
        plain.get("SizeRootFs").is_none(),
        "no SizeRootFs without -s"
    );
    let out = env.ok(&["container", "inspect", flag, name]).stdout;
    let v: serde_json::Value = serde_json::from_str(&out).expect("inspect prints JSON");
    let rw = v[0]["SizeRw"].as_u64().expect("SizeRw is a number");
    let rootfs = v[0]["SizeRootFs"].as_u64().expect("SizeRootFs is a number");
    assert!(rw >= 1 << 20, "SizeRw {rw} counts the 1 MiB file");
    assert!(
        rw < (1 << 20) + (256 << 10),
        "SizeRw {rw}: only what it wrote, the symlink not followed"
    );
    assert!(rootfs > rw, "SizeRootFs {rootfs} adds the image to {rw}");
    let image = env
        .ok(&["image", "inspect", "-f", "{{.Size}}", &bb()])
        .stdout;
    let image: u64 = image.trim().parse().expect("image size");
    assert!(
        rootfs.abs_diff(image + rw) < 64 << 10,
        "SizeRootFs {rootfs} = image {image} + SizeRw {rw}"
    );
}

#[test]
fn inspect_size_counts_the_writable_layer_and_the_image() {
    let env = Env::new();
    env.pull("busybox");
    let write =
        "head -c 1048576 /dev/zero > /blob && ln -s / /tmp/hostroot && ln -s /blob /tmp/again";
    env.ok(&["run", "--name", "w", &bb(), "sh", "-c", write]);
    check_sizes(&env, "w", "-s");
    // The same while it runs.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "live",
        &bb(),
        "sh",
        "-c",
        &format!("{write} && touch /tmp/ready && sleep 60"),
    ]);
    eventually("the file written", || {
        env.run(&["exec", "live", "test", "-f", "/tmp/ready"]).code == 0
    });
    check_sizes(&env, "live", "--size");
    env.ok(&["rm", "-f", "live"]);
    // With the copy fallback: the added entries of the private copy.
    let st = env
        .cmd(&["run", "--name", "copied", &bb(), "sh", "-c", write])
        .env("SKIFF_ROOTFS", "copy")
        .status()
        .expect("run");
    assert!(st.success());
    check_sizes(&env, "copied", "-s");
}

/// The `container` actions `events` shows for `name` between `since` and now.
fn actions(env: &Env, since: &str, name: &str) -> Vec<String> {
    let until = chrono::Utc::now().to_rfc3339();
    let filter = format!("container={name}");
    env.ok(&[
        "events",
        "--since",
        since,
        "--until",
        &until,
        "--filter",
        &filter,
        "--format",
        "{{.Action}}",
    ])
    .stdout
    .lines()
    .map(String::from)
    .collect()
}

/// `skiff restart` ends with Docker's `restart` event: after the stop's kill, die and stop and
/// the new start for a running container, after the start alone for a stopped one; a restart
/// policy's runs have no `restart` event (Docker emits only their die and start).
#[test]
fn restart_emits_a_restart_event() {
    let env = Env::new();
    env.pull("busybox");
    // It ends on SIGTERM, so its stop has one kill (a second, SIGKILL, would follow otherwise).
    let body = "trap 'exit 0' TERM; touch /tmp/ready; while true; do sleep 0.1; done";
    env.ok(&["run", "-d", "--name", "up", &bb(), "sh", "-c", body]);
    eventually("its trap set", || {
        env.run(&["exec", "up", "test", "-f", "/tmp/ready"]).code == 0
    });
    let since = chrono::Utc::now().to_rfc3339();
    assert_eq!(env.ok(&["restart", "-t", "5", "up"]).stdout, "up\n");
    assert_eq!(
        actions(&env, &since, "up"),
        ["kill", "die", "stop", "start", "restart"]
    );
    let id = env.state("up")["Id"].as_str().expect("id").to_string();
    let until = chrono::Utc::now().to_rfc3339();
    let json = env
        .ok(&[
            "events",
            "--since",
            &since,
            "--until",
            &until,
            "--filter",
            "event=restart",
            "--format",
            "{{json .}}",
        ])
        .stdout;
    let e: serde_json::Value = serde_json::from_str(json.trim()).expect("one JSON event");
    assert_eq!(e["Type"], "container");
    assert_eq!(e["status"], "restart");
    assert_eq!(e["id"], id);
    assert_eq!(e["Actor"]["Attributes"]["name"], "up");
    env.ok(&["rm", "-f", "up"]);

    env.ok(&["create", "--name", "idle", &bb(), "sleep", "60"]);
    let since = chrono::Utc::now().to_rfc3339();
    env.ok(&["container", "restart", "idle"]);
    assert_eq!(actions(&env, &since, "idle"), ["start", "restart"]);
    env.ok(&["rm", "-f", "idle"]);

    let since = chrono::Utc::now().to_rfc3339();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:1",
        &bb(),
        "sh",
        "-c",
        "exit 1",
    ]);
    eventually("the policy's second run to end", || {
        actions(&env, &since, "flaky")
            .iter()
            .filter(|a| *a == "die")
            .count()
            == 2
    });
    let acts = actions(&env, &since, "flaky");
    assert_eq!(acts, ["create", "start", "die", "start", "die"], "{acts:?}");
}

/// `system events` and `system info` are Docker's aliases of `events` and `info`: the same
/// flags, the same output, the same refusals.
#[test]
fn system_events_and_info_are_the_top_level_commands() {
    let env = Env::new();
    env.pull("busybox");
    let since = chrono::Utc::now().to_rfc3339();
    env.ok(&["run", "--rm", "--name", "brief", &bb(), "true"]);
    let until = chrono::Utc::now().to_rfc3339();
    let args = [
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "container=brief",
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}}",
    ];
    let top = env.ok(&[&["events"][..], &args].concat()).stdout;
    let sys = env.ok(&[&["system", "events"][..], &args].concat()).stdout;
    assert_eq!(top, "create brief\nstart brief\ndie brief\ndestroy brief\n");
    assert_eq!(sys, top);
    env.fails(&["system", "events", "--filter", "colour=red"], "colour");

    let top = env.ok(&["info", "--format", "json"]).stdout;
    let sys = env.ok(&["system", "info", "--format", "json"]).stdout;
    let (t, s): (serde_json::Value, serde_json::Value) = (
        serde_json::from_str(&top).expect("info json"),
        serde_json::from_str(&sys).expect("system info json"),
    );
    assert!(t.is_object() && !t.as_object().unwrap().is_empty(), "{top}");
    assert_eq!(t, s);
    let rootless = env
        .ok(&["system", "info", "-f", "{{.Host.Rootless}}"])
        .stdout;
    assert_eq!(rootless.trim(), (!is_root()).to_string());
    let help = env.ok(&["system", "--help"]).stdout;
    assert!(help.contains("events") && help.contains("info"), "{help}");
}

/// The entry names of a tar file (without a leading `./`), and `tar -tvf`'s lines.
fn tar_names(p: &std::path::Path) -> (Vec<String>, String) {
    let list = |flags: &str| {
        let out = std::process::Command::new("tar")
            .arg(flags)
            .arg(p)
            .output()
            .expect("tar");
        assert!(out.status.success(), "a valid tar: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let names = list("-tf")
        .lines()
        .map(|n| n.trim_start_matches("./").trim_end_matches('/').to_string())
        .collect();
    (names, list("-tvf"))
}

/// One file's content out of a tar file (its entry named with or without a leading `./`).
fn tar_file(p: &std::path::Path, name: &str) -> String {
    let list = std::process::Command::new("tar")
        .arg("-tf")
        .arg(p)
        .output()
        .expect("tar");
    let listing = String::from_utf8_lossy(&list.stdout).into_owned();
    let entry = listing
        .lines()
        .find(|l| l.trim_start_matches("./") == name)
        .unwrap_or_else(|| panic!("no {name} in {listing}"));
    let out = std::process::Command::new("tar")
        .arg("-xOf")
        .arg(p)
        .arg(entry)
        .output()
        .expect("tar");
    assert!(out.status.success(), "{name} in the tar: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `export` of a running container packs its root filesystem as Docker does: the image and
/// what the container wrote, no volume's files, nothing of /proc or /sys; a symlink it planted
/// is an entry, not followed. The same with the copy fallback.
#[test]
fn export_packs_a_running_containers_root_filesystem() {
    let env = Env::new();
    env.pull("busybox");
    let body = "echo live-$((40+2)) > /live && echo inside > /data/invol && \
                ln -s / /tmp/hostroot && ln -s /etc/shadow /tmp/shadow && touch /tmp/ready && sleep 60";
    for (name, rootfs) in [("r", None), ("rc", Some("copy"))] {
        let mut c = env.cmd(&[
            "run",
            "-d",
            "--name",
            name,
            "-v",
            "/data",
            &bb(),
            "sh",
            "-c",
            body,
        ]);
        if let Some(mode) = rootfs {
            c.env("SKIFF_ROOTFS", mode);
        }
        let out = c.output().expect("run");
        assert!(out.status.success(), "{out:?}");
        let driver = if rootfs.is_some() { "vfs" } else { "overlay" };
        assert_eq!(env.state(name)["GraphDriver"]["Name"], driver);
        eventually("the container's files", || {
            env.run(&["exec", name, "test", "-f", "/tmp/ready"]).code == 0
        });
        let file = env.home.path().join(format!("{name}.tar"));
        env.ok(&["export", "-o", file.to_str().unwrap(), name]);
        let (names, long) = tar_names(&file);
        let has = |n: &str| names.iter().any(|x| x == n);
        assert!(
            has("live") && has("bin/busybox") && has("etc/passwd"),
            "{names:?}"
        );
        assert_eq!(tar_file(&file, "live"), "live-42\n");
        // Mount points are there as the rootfs has them; what is mounted on them is not.
        assert!(has("proc") && has("sys") && has("data"), "{names:?}");
        for under in ["proc/", "sys/", "data/", "tmp/hostroot/"] {
            assert!(
                !names.iter().any(|n| n.starts_with(under)),
                "nothing under {under}: {names:?}"
            );
        }
        assert!(
            long.lines()
                .any(|l| l.starts_with('l') && l.contains("tmp/hostroot -> /")),
            "{long}"
        );
        assert!(long.contains("tmp/shadow -> /etc/shadow"), "{long}");
        // Still running, and a stdout export is the same archive.
        assert_eq!(env.state(name)["State"]["Running"], true);
        let out = env.cmd(&["export", name]).output().expect("export");
        assert!(out.status.success(), "{out:?}");
        let piped = env.home.path().join(format!("{name}-stdout.tar"));
        std::fs::write(&piped, &out.stdout).expect("write");
        assert!(tar_names(&piped).0.iter().any(|n| n == "live"));
        env.ok(&["rm", "-f", name]);
    }
}

/// Runs `skiff attach NAME` with its stdin, stdout and stderr on a new 24x100 pty; the master
/// and the child.
fn attach_on_pty(env: &Env, name: &str) -> (std::fs::File, std::process::Child) {
    let (master, slave) = pty::openpty();
    let child = env
        .cmd(&["attach", name])
        .env("TERM", "xterm")
        .stdin(slave.try_clone().expect("pty"))
        .stdout(slave.try_clone().expect("pty"))
        .stderr(slave)
        .spawn()
        .expect("attach");
    (master, child)
}

/// Waits (at most 20 s) for a child's exit code.
fn exit_code(child: &mut std::process::Child) -> i32 {
    let t = std::time::Instant::now();
    loop {
        if let Some(st) = child.try_wait().expect("wait") {
            return st.code().unwrap_or(-1);
        }
        if t.elapsed().as_secs() > 20 {
            let _ = child.kill();
            panic!("attach did not end");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Types `line` into the pty until `needle` comes back (the first keys may come before attach
/// is connected); what was seen.
fn type_until(master: &mut std::fs::File, line: &str, needle: &str) -> String {
    let mut seen = String::new();
    let t = std::time::Instant::now();
    while !seen.contains(needle) {
        assert!(t.elapsed().as_secs() < 20, "no {needle:?} in {seen:?}");
        std::io::Write::write_all(master, line.as_bytes()).expect("typing");
        seen.push_str(&pty::read_until(
            master,
            needle,
            std::time::Duration::from_millis(700),
        ));
    }
    seen
}

/// `attach` to a `-it` container from a terminal: keys reach its shell through its pty, its
/// output comes back, the container's terminal takes attach's window size, ctrl-p ctrl-q
/// detaches (it runs on), and a shell's exit code is attach's.
#[test]
fn attach_to_a_tty_container_from_a_terminal() {
    let env = Env::new();
    env.pull("busybox");
    env.ok(&["run", "-d", "-it", "--name", "shell", &bb(), "sh"]);
    assert_eq!(env.state("shell")["Config"]["Tty"], true);
    let (mut master, mut child) = attach_on_pty(&env, "shell");
    let seen = type_until(&mut master, "echo mark-$((6*7)); stty size\n", "mark-42");
    let seen = seen + &pty::read_until(&mut master, "24 100", std::time::Duration::from_secs(5));
    assert!(seen.contains("24 100"), "the pty's size inside: {seen:?}");
    std::io::Write::write_all(&mut master, b"\x10\x11").expect("detach keys");
    assert_eq!(exit_code(&mut child), 0, "detached");
    assert_eq!(env.state("shell")["State"]["Running"], true);
    // Attached again: `exit 5` ends the shell, and attach with its code.
    let (mut master, mut child) = attach_on_pty(&env, "shell");
    type_until(&mut master, "echo again-$((1+1))\n", "again-2");
    std::io::Write::write_all(&mut master, b"exit 5\n").expect("typing");
    assert_eq!(exit_code(&mut child), 5);
    eventually("the container to stop", || {
        env.state("shell")["State"]["Running"] == false
    });
    assert_eq!(env.state("shell")["State"]["ExitCode"], 5);
}

/// `attach` to a `-t` container with stdin that is no terminal: `--no-stdin` watches its
/// output (a terminal's `\r\n` lines, as Docker shows them) and ends with its code; with stdin
/// of a `-it` one wanted, Docker's refusal.
#[test]
fn attach_to_a_tty_container_without_a_terminal() {
    let env = Env::new();
    env.pull("busybox");
    env.ok(&[
        "run",
        "-d",
        "-t",
        "--name",
        "ticker",
        &bb(),
        "sh",
        "-c",
        "while [ ! -f /tmp/go ]; do echo tick; sleep 0.2; done; echo done-$((2*3)); exit 4",
    ]);
    let mut child = env
        .cmd(&["attach", "--no-stdin", "ticker"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("attach");
    let mut out = child.stdout.take().expect("stdout");
    let got = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let g = got.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = std::io::Read::read(&mut out, &mut buf) {
            if n == 0 {
                break;
            }
            g.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    // Its output flows to the attacher before the end is let go.
    eventually("a tick through attach", || {
        got.lock().unwrap().contains("tick")
    });
    env.ok(&["exec", "ticker", "touch", "/tmp/go"]);
    assert_eq!(exit_code(&mut child), 4);
    reader.join().expect("reader");
    let seen = got.lock().unwrap().clone();
    assert!(seen.contains("tick\r\n"), "{seen:?}");
    assert!(seen.ends_with("done-6\r\n"), "{seen:?}");

    env.ok(&["run", "-d", "-it", "--name", "shell", &bb(), "sh"]);
    env.fails(&["attach", "shell"], "the input device is not a TTY");
    assert_eq!(env.state("shell")["State"]["Running"], true);
    env.ok(&["rm", "-f", "shell"]);
}
