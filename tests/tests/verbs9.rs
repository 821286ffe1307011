//! The verbs a Docker user reaches for in the first hour: `diff`, `import`, `update`, `export`
//! of a running container, the `image`/`container` groups, and inspect's Docker fields.

mod common;

use common::*;

/// `diff` shows added, changed and deleted paths as Docker's lines, parents before children,
/// names in order; deletions (whiteouts) and a replaced directory (opaque) both count, skiff's
/// own mount points do not, and a planted symlink is shown, not followed.
#[test]
fn diff_lists_the_containers_changes_like_docker() {
    let env = Env::new();
    env.pull("busybox");
    env.ok(&["create", "--name", "fresh", &bb(), "true"]);
    assert_eq!(env.ok(&["diff", "fresh"]).stdout, "", "nothing changed yet");
    env.ok(&[
        "run",
        "--name",
        "d",
        &bb(),
        "sh",
        "-c",
        "echo x > /new && mkdir -p /tmp/a/b && touch /tmp/a/b/f && rm /bin/ls && \
         echo y >> /etc/passwd && rm -rf /usr && mkdir /usr && touch /usr/only && \
         ln -s /etc/shadow /tmp/link && chown 1000 /new",
    ]);
    let out = env.ok(&["diff", "d"]).stdout;
    let lines: Vec<&str> = out.lines().collect();
    let at = |l: &str| {
        lines
            .iter()
            .position(|x| *x == l)
            .unwrap_or_else(|| panic!("no {l:?} in:\n{out}"))
    };
    for l in [
        "C /bin",
        "D /bin/ls",
        "C /etc",
        "C /etc/passwd",
        "A /new",
        "C /tmp",
        "A /tmp/a",
        "A /tmp/a/b",
        "A /tmp/a/b/f",
        "A /tmp/link",
        "C /usr",
        "D /usr/bin",
        "A /usr/only",
    ] {
        at(l);
    }
    assert!(
        at("C /bin") < at("D /bin/ls") && at("D /bin/ls") < at("C /etc"),
        "{out}"
    );
    assert!(at("A /tmp/a") < at("A /tmp/a/b") && at("A /tmp/a/b") < at("A /tmp/link"));
    assert!(
        !out.contains("/etc/hosts") && !out.contains("/etc/hostname") && !out.contains("resolv"),
        "skiff's own mount points are not changes: {out}"
    );
    assert!(!out.contains("shadow"), "{out}");
    // The new /usr is opaque: what the old one held is deleted.
    assert!(at("C /usr") < at("D /usr/bin") && at("D /usr/bin") < at("A /usr/only"));
    assert!(!out.contains("/dev") && !out.contains("/proc"), "{out}");
    // The same through the group, and by id prefix.
    let id = env.state("d")["Id"].as_str().unwrap().to_string();
    assert_eq!(env.ok(&["container", "diff", &id[..12]]).stdout, out);
    env.fails(&["diff", "nosuch"], "nosuch");
}

/// With the copy fallback (`SKIFF_ROOTFS=copy`), the private copy is compared with the image:
/// the same lines for what the test changed.
#[test]
fn diff_of_a_copied_rootfs_compares_it_with_the_image() {
    let env = Env::new();
    env.pull("busybox");
    let mut c = env.cmd(&[
        "run",
        "--name",
        "c",
        &bb(),
        "sh",
        "-c",
        "echo x > /new && rm /bin/ls && echo y >> /etc/passwd",
    ]);
    let st = c.env("SKIFF_ROOTFS", "copy").status().unwrap();
    assert!(st.success());
    assert!(env.data().join("containers").exists());
    let out = env.ok(&["diff", "c"]).stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        ["C /bin", "D /bin/ls", "C /etc", "C /etc/passwd", "A /new"],
        "{out}"
    );
}

/// `import` makes a one-layer image from an exported file system (plain, or gzipped on stdin),
/// applies `--change`, prints the id, and refuses a file that is no tar without storing a thing.
#[test]
fn import_makes_a_one_layer_image_from_a_tarball() {
    let env = Env::new();
    env.pull("busybox");
    env.ok(&[
        "run",
        "--name",
        "src",
        &bb(),
        "sh",
        "-c",
        "echo hi > /greeting",
    ]);
    let tar = env.home.path().join("fs.tar");
    env.ok(&["export", "-o", tar.to_str().unwrap(), "src"]);
    let id = env
        .ok(&[
            "import",
            "-c",
            "CMD [\"cat\", \"/greeting\"]",
            "--change",
            "ENV WHO=world",
            "-c",
            "WORKDIR /tmp",
            "-m",
            "from a tar",
            tar.to_str().unwrap(),
            "imported:1",
        ])
        .stdout
        .trim()
        .to_string();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    assert_eq!(env.ok(&["run", "--rm", "imported:1"]).stdout, "hi\n");
    let run = env.ok(&["run", "--rm", "imported:1", "sh", "-c", "echo $WHO; pwd"]);
    assert_eq!(run.stdout, "world\n/tmp\n");
    let img: serde_json::Value =
        serde_json::from_str(&env.ok(&["image", "inspect", "imported:1"]).stdout).unwrap();
    assert_eq!(img[0]["Id"], id.as_str());
    assert_eq!(img[0]["RootFS"]["Layers"].as_array().unwrap().len(), 1);
    assert!(env
        .ok(&["history", "imported:1"])
        .stdout
        .contains("from a tar"));

    // gzip through stdin, with `image import`.
    let gz = std::process::Command::new("gzip")
        .args(["-c", tar.to_str().unwrap()])
        .output()
        .unwrap()
        .stdout;
    let mut c = env.cmd(&["image", "import", "-", "imported:gz"]);
    let mut child = c
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &gz).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        env.ok(&["run", "--rm", "imported:gz", "cat", "/greeting"])
            .stdout,
        "hi\n"
    );

    // Not a tar: 125, one line, nothing new in the store.
    let before = env.ok(&["images", "-q"]).stdout;
    let junk = env.home.path().join("junk.tar");
    std::fs::write(&junk, vec![b'x'; 4096]).unwrap();
    env.fails(
        &["import", junk.to_str().unwrap(), "junk:1"],
        "not a tar archive",
    );
    env.fails(
        &["import", tar.to_str().unwrap()],
        "give the new image a name",
    );
    env.fails(
        &["import", "-c", "RUN true", tar.to_str().unwrap(), "x:1"],
        "import applies CMD",
    );
    assert_eq!(env.ok(&["images", "-q"]).stdout, before);
}

/// `update --restart` on a running container: its monitor honours the new policy at the next
/// exit; the names are printed as given; bad flags change nothing.
#[test]
fn update_changes_the_restart_policy_of_a_running_container() {
    let env = Env::new();
    env.pull("busybox");
    env.ok(&[
        "run",
        "-d",
        "--name",
        "u",
        &bb(),
        "sh",
        "-c",
        "sleep 2; exit 3",
    ]);
    env.fails(&["update", "u"], "nothing to update");
    env.fails(&["update", "--restart", "sometimes", "u"], "--restart");
    env.fails(&["update", "--memory", "lots", "u"], "--memory");
    let out = env.ok(&["update", "--restart", "on-failure:2", "u"]);
    assert_eq!(out.stdout, "u\n");
    let s = env.state("u");
    assert_eq!(s["HostConfig"]["RestartPolicy"]["Name"], "on-failure");
    assert_eq!(s["HostConfig"]["RestartPolicy"]["MaximumRetryCount"], 2);
    // Started again twice by its monitor, then left exited with its code.
    eventually("two restarts, then exited", || {
        let s = env.state("u");
        s["RestartCount"] == 2 && s["State"]["Status"] == "exited"
    });
    assert_eq!(env.state("u")["State"]["ExitCode"], 3);

    // A --rm container takes no restart policy.
    env.ok(&["run", "-d", "--rm", "--name", "gone", &bb(), "sleep", "30"]);
    env.fails(
        &["container", "update", "--restart", "always", "gone"],
        "--rm",
    );
    env.ok(&["rm", "-f", "gone"]);
}

/// `update --memory/--pids-limit/--cpus` writes the limits into the record (inspect shows them);
/// as root they change in the running container's cgroup, rootless a warning says they wait
/// for its next start.
#[test]
fn update_changes_limits_where_cgroups_allow() {
    let env = Env::new();
    env.pull("busybox");
    env.ok(&[
        "run",
        "-d",
        "--name",
        "l",
        "-m",
        "64m",
        &bb(),
        "sleep",
        "60",
    ]);
    let id = env.state("l")["Id"].as_str().unwrap().to_string();
    let r = env.ok(&[
        "update",
        "--memory",
        "128m",
        "--pids-limit",
        "50",
        "--cpus",
        "0.5",
        "l",
    ]);
    assert_eq!(r.stdout, "l\n");
    let hc = env.state("l")["HostConfig"].clone();
    assert_eq!(hc["Memory"], 128 << 20);
    assert_eq!(hc["PidsLimit"], 50);
    assert_eq!(hc["NanoCpus"], 500_000_000u64);
    let cg = std::path::Path::new("/sys/fs/cgroup/skiff").join(&id);
    if is_root() && cg.is_dir() {
        let read = |f: &str| {
            std::fs::read_to_string(cg.join(f))
                .unwrap()
                .trim()
                .to_string()
        };
        assert_eq!(read("memory.max"), (128u64 << 20).to_string());
        assert_eq!(read("pids.max"), "50");
        assert_eq!(read("cpu.max"), "50000 100000");
        env.ok(&["update", "--pids-limit", "-1", "l"]);
        assert_eq!(read("pids.max"), "max");
        assert_eq!(env.state("l")["HostConfig"]["PidsLimit"], 0);
    } else if is_root() {
        // cgroup v1: the container started with a memory cgroup only; the others wait.
        let mem = std::path::Path::new("/sys/fs/cgroup/memory/skiff").join(&id);
        if mem.is_dir() {
            let got = std::fs::read_to_string(mem.join("memory.limit_in_bytes")).unwrap();
            assert_eq!(got.trim(), (128u64 << 20).to_string());
            assert!(r.stderr.contains("next start"), "{}", r.stderr);
        }
    } else {
        assert!(
            r.stderr.contains("WARNING") && r.stderr.contains("next start"),
            "{}",
            r.stderr
        );
    }
    env.ok(&["rm", "-f", "l"]);
}

/// The `container` and `image` groups reach the same verbs as the top-level commands, and
/// podman's `image untag` takes a name away from an image that keeps another.
#[test]
fn container_and_image_groups_are_complete() {
    let env = Env::new();
    env.pull("busybox");
    assert_eq!(
        env.ok(&["container", "run", "--rm", &bb(), "echo", "hi"])
            .stdout,
        "hi\n"
    );
    env.ok(&["container", "create", "--name", "g", &bb(), "sleep", "60"]);
    env.ok(&["container", "start", "g"]);
    assert_eq!(
        env.ok(&["container", "exec", "g", "echo", "in"]).stdout,
        "in\n"
    );
    assert!(env.ok(&["container", "top", "g"]).stdout.contains("sleep"));
    env.ok(&["container", "rename", "g", "g2"]);
    env.ok(&["container", "pause", "g2"]);
    assert_eq!(env.state("g2")["State"]["Status"], "paused");
    env.ok(&["container", "unpause", "g2"]);
    env.ok(&["container", "restart", "-t", "0", "g2"]);
    env.ok(&["container", "kill", "g2"]);
    assert_eq!(env.ok(&["container", "wait", "g2"]).stdout, "137\n");

    env.ok(&["image", "tag", &bb(), "other:1"]);
    env.ok(&["image", "untag", "other:1", "other:1"]);
    assert!(!env.ok(&["image", "ls"]).stdout.contains("other"));
    env.fails(&["image", "untag", &bb(), &bb()], "last name");
    env.fails(
        &["image", "untag", &bb(), "nosuch:1"],
        "not a name of image",
    );
}

/// inspect's Docker fields that skiff knows: the /etc files' paths, the storage driver and its
/// dirs, and the HostConfig the flags recorded.
#[test]
fn inspect_has_dockers_paths_driver_and_host_config() {
    let env = Env::new();
    env.pull("busybox");
    env.ok(&[
        "create",
        "--name",
        "i",
        "--dns",
        "1.1.1.1",
        "--add-host",
        "db:10.0.0.5",
        "--group-add",
        "2000",
        "--ulimit",
        "nofile=1024:2048",
        "--tmpfs",
        "/run",
        "-v",
        "/tmp:/host:ro",
        "--stop-timeout",
        "7",
        &bb(),
        "true",
    ]);
    let s = env.state("i");
    let dir = s["HostsPath"].as_str().unwrap();
    assert!(
        dir.ends_with("/hosts") && dir.contains(s["Id"].as_str().unwrap()),
        "{s}"
    );
    assert!(s["ResolvConfPath"]
        .as_str()
        .unwrap()
        .ends_with("/resolv.conf"));
    assert!(s["HostnamePath"].as_str().unwrap().ends_with("/hostname"));
    assert_eq!(s["Driver"], "overlay");
    assert_eq!(s["GraphDriver"]["Name"], "overlay");
    assert!(s["GraphDriver"]["Data"]["UpperDir"]
        .as_str()
        .unwrap()
        .ends_with("/upper"));
    assert!(s["ExecIDs"].is_null());
    assert_eq!(s["State"]["Dead"], false);
    assert_eq!(s["Config"]["StopTimeout"], 7);
    let hc = &s["HostConfig"];
    assert_eq!(hc["Dns"], serde_json::json!(["1.1.1.1"]));
    assert_eq!(hc["ExtraHosts"], serde_json::json!(["db:10.0.0.5"]));
    assert_eq!(hc["GroupAdd"], serde_json::json!(["2000"]));
    assert_eq!(hc["Binds"], serde_json::json!(["/tmp:/host:ro"]));
    assert!(hc["Tmpfs"].get("/run").is_some(), "{hc}");
    assert_eq!(hc["Ulimits"][0]["Name"], "nofile");
    assert_eq!(hc["Ulimits"][0]["Hard"], 2048);
}
