//! `skiff run`: real containers from the real registry, as the unprivileged user and as root.

mod common;

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use common::pty::{openpty, read_until};
use common::*;

#[test]
fn hello_prints_its_greeting_and_exits_0() {
    let env = Env::new();
    let r = env.run(&["run", "--rm", &img("hello")]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "Hello from skiff!\n");
    assert!(
        env.containers().is_empty(),
        "--rm leaves no record: {:?}",
        env.containers()
    );
}

#[test]
fn environment_has_path_hostname_home_and_the_e_values() {
    let env = Env::new();
    env.pull("busybox");
    let file = env.home.path().join("env.list");
    std::fs::write(&file, "# comment\nFROMFILE=yes\n").unwrap();
    let r = env
        .cmd(&[
            "run",
            "--rm",
            "--hostname",
            "box1",
            "-e",
            "FOO=bar",
            "-e",
            "FROMHOST",
            "--env-file",
            &file.to_string_lossy(),
            &img("busybox"),
            "printenv",
        ])
        .env("FROMHOST", "passed")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&r.stdout);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    for want in [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOSTNAME=box1",
        "HOME=/root",
        "FOO=bar",
        "FROMHOST=passed",
        "FROMFILE=yes",
    ] {
        assert!(
            out.lines().any(|l| l == want),
            "{want} missing from:\n{out}"
        );
    }
    let r = env.ok(&["run", "--rm", &img("busybox"), "hostname"]);
    assert_eq!(
        r.stdout.trim().len(),
        12,
        "default hostname is the short id: {}",
        r.stdout
    );
}

#[test]
fn exit_codes_follow_docker() {
    let env = Env::new();
    env.pull("busybox");
    let code = |args: &[&str]| {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(args);
        env.run(&a)
    };
    assert_eq!(code(&[&img("busybox"), "sh", "-c", "exit 3"]).code, 3);
    let r = code(&[&img("busybox"), "no-such-command"]);
    assert_eq!(r.code, 127);
    assert!(
        r.stderr.contains("executable file not found"),
        "{}",
        r.stderr
    );
    let r = code(&[&img("busybox"), "/etc/passwd"]);
    assert_eq!(r.code, 126, "{}", r.stderr);
    assert_eq!(
        code(&["--init", &img("busybox"), "sh", "-c", "kill -9 $$"]).code,
        137
    );
    assert!(env.containers().is_empty(), "{:?}", env.containers());
}

#[test]
fn users_and_owners_inside_the_container() {
    let env = Env::new();
    env.pull("layers");
    env.pull("busybox");
    assert!(env
        .ok(&["run", "--rm", "-u", "1000", &img("busybox"), "id"])
        .stdout
        .starts_with("uid=1000(user) gid=1000(user) groups=2000(extra)"));
    assert!(
        env.ok(&["run", "--rm", "-u", "4242:77", &img("busybox"), "id"])
            .stdout
            .starts_with("uid=4242 gid=77"),
        "numeric ids work when absent"
    );
    assert!(env
        .ok(&["run", "--rm", "-u", "user:root", &img("busybox"), "id"])
        .stdout
        .starts_with("uid=1000(user) gid=0(root)"));
    let st = env
        .ok(&[
            "run",
            "--rm",
            &img("layers"),
            "stat",
            "-c",
            "%u:%g %a",
            "/home/user/owned",
            "/home/user",
        ])
        .stdout;
    assert_eq!(
        st, "1000:1000 600\n1000:1000 750\n",
        "files owned by 1000 in the image stay 1000's"
    );
    let r = env
        .ok(&[
            "run",
            "--rm",
            &img("layers"),
            "sh",
            "-c",
            "ls /deleted /opaque; cat /etc/motd",
        ])
        .stdout;
    assert_eq!(
        r, "/deleted:\nkept\n\n/opaque:\nnew\nupper motd\n",
        "whiteouts and opaque dirs applied"
    );
}

#[test]
fn writes_stay_in_their_container() {
    let env = Env::new();
    env.pull("layers");
    env.ok(&[
        "run",
        "--name",
        "writer",
        &img("layers"),
        "sh",
        "-c",
        "echo changed > /etc/motd; rm /deleted/kept; touch /new-file",
    ]);
    let layers = env.layer_dirs(&img("layers"));
    assert_eq!(
        std::fs::read_to_string(layers[2].join("etc/motd")).unwrap(),
        "upper motd\n",
        "layer dirs unchanged"
    );
    assert!(layers[1].join("deleted/kept").exists());
    let r = env
        .ok(&[
            "run",
            "--rm",
            &img("layers"),
            "sh",
            "-c",
            "cat /etc/motd; ls /deleted; ls /new-file 2>&1; true",
        ])
        .stdout;
    assert!(
        r.starts_with("upper motd\nkept\n"),
        "another container sees the image as it is: {r}"
    );
    assert!(r.contains("No such file"), "{r}");
}

#[test]
fn the_container_sees_only_its_own_processes() {
    let env = Env::new();
    env.pull("busybox");
    let r = env
        .ok(&["run", "--rm", &img("busybox"), "ps", "-o", "pid,comm"])
        .stdout;
    let rows: Vec<&str> = r.lines().skip(1).collect();
    assert_eq!(
        rows,
        vec!["    1 ps"],
        "the command is PID 1 and alone: {r}"
    );
}

#[test]
fn read_only_root_with_writable_tmpfs_and_volume() {
    let env = Env::new();
    env.pull("busybox");
    let r = env.run(&[
        "run",
        "--rm",
        "--read-only",
        "--tmpfs",
        "/scratch",
        "-v",
        "data:/data",
        &img("busybox"),
        "sh",
        "-c",
        "touch /x 2>&1; echo a > /scratch/a && echo b > /data/b && echo writable",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("Read-only file system") && r.stdout.contains("writable"),
        "{}",
        r.stdout
    );
}

#[test]
fn bind_mounts_and_named_volumes_keep_data_across_containers() {
    let env = Env::new();
    env.pull("busybox");
    let host = env.home.path().join("shared");
    std::fs::create_dir(&host).unwrap();
    let bind = format!("{}:/bind", host.display());
    env.ok(&[
        "run",
        "--rm",
        "-v",
        &bind,
        "-v",
        "keep:/vol",
        &img("busybox"),
        "sh",
        "-c",
        "echo from-container > /bind/f; echo kept > /vol/f",
    ]);
    assert_eq!(
        std::fs::read_to_string(host.join("f")).unwrap(),
        "from-container\n"
    );
    let r = env.ok(&[
        "run",
        "--rm",
        "-v",
        &format!("{bind}:ro"),
        "-v",
        "keep:/vol",
        &img("busybox"),
        "sh",
        "-c",
        "cat /vol/f /bind/f; echo x > /bind/g 2>&1 || echo ro-refused",
    ]);
    assert_eq!(
        r.stdout, "kept\nfrom-container\nro-refused\n",
        "{}",
        r.stderr
    );
}

#[test]
fn hardening_is_on_by_default_and_privileged_lifts_it() {
    let env = Env::new();
    env.pull("busybox");
    let status = env
        .ok(&[
            "run",
            "--rm",
            &img("busybox"),
            "grep",
            "-E",
            "^(CapEff|CapBnd|NoNewPrivs|Seccomp):",
            "/proc/self/status",
        ])
        .stdout;
    assert!(
        status.contains("CapEff:\t00000000800405fb"),
        "podman's default capability set: {status}"
    );
    assert!(status.contains("CapBnd:\t00000000800405fb"), "{status}");
    // Docker's default: no_new_privs off, so setuid programs of the image work (see
    // fidelity.rs); the filter is on all the same.
    assert!(status.contains("NoNewPrivs:\t0"), "{status}");
    assert!(status.contains("Seccomp:\t2"), "{status}");
    let r = env.ok(&["run", "--rm", &img("busybox"), "sh", "-c", "mkdir -p /mnt/t; mount -t tmpfs none /mnt/t 2>&1 && echo MOUNTED; [ -e /proc/kcore ] && wc -c < /proc/kcore || echo 0; echo 1 > /proc/sys/kernel/domainname 2>&1 || echo sys-ro; cat /proc/keys | wc -l"]).stdout;
    assert!(!r.contains("MOUNTED"), "no new mounts: {r}");
    assert!(r.contains("sys-ro"), "/proc/sys is read-only: {r}");
    let lines: Vec<&str> = r.lines().collect();
    assert!(
        lines.iter().filter(|l| l.trim() == "0").count() >= 2,
        "/proc/kcore (where the kernel has it) and /proc/keys are masked: {r}"
    );
    let caps = env
        .ok(&[
            "run",
            "--rm",
            "--cap-drop",
            "ALL",
            "--cap-add",
            "NET_ADMIN",
            &img("busybox"),
            "grep",
            "^CapEff:",
            "/proc/self/status",
        ])
        .stdout;
    assert_eq!(caps.trim(), "CapEff:\t0000000000001000");
    let free = env
        .ok(&[
            "run",
            "--rm",
            "--privileged",
            &img("busybox"),
            "grep",
            "-E",
            "^(Seccomp|NoNewPrivs):",
            "/proc/self/status",
        ])
        .stdout;
    assert!(
        free.contains("Seccomp:\t0") && free.contains("NoNewPrivs:\t0"),
        "{free}"
    );
    let unconfined = env
        .ok(&[
            "run",
            "--rm",
            "--security-opt",
            "seccomp=unconfined",
            &img("busybox"),
            "grep",
            "^Seccomp:",
            "/proc/self/status",
        ])
        .stdout;
    assert_eq!(unconfined.trim(), "Seccomp:\t0");
    // No new namespaces by default (unshare, and clone with namespace flags), while plain forks
    // work; CAP_SYS_ADMIN opens them, as in Docker's profile.
    let ns = "unshare -U true 2>/dev/null && echo USERNS; unshare -n true 2>/dev/null && echo NETNS; true & wait && echo forked";
    let r = env
        .ok(&["run", "--rm", &img("busybox"), "sh", "-c", ns])
        .stdout;
    assert_eq!(r.trim(), "forked", "{r}");
    let r = env
        .ok(&[
            "run",
            "--rm",
            "--cap-add",
            "SYS_ADMIN",
            &img("busybox"),
            "sh",
            "-c",
            ns,
        ])
        .stdout;
    assert!(r.contains("USERNS") && r.contains("forked"), "{r}");
}

/// 60 layers do not fit in mount(2)'s one page of overlay options: they are stacked one by one
/// (new mount API) and the container still gets an overlay, not a copy.
#[test]
fn an_image_with_sixty_layers_runs_on_overlayfs() {
    let env = Env::new();
    env.pull("deep");
    let r = env.ok(&[
        "run",
        "--rm",
        &img("deep"),
        "sh",
        "-c",
        "ls /deep | wc -l; cat /deep/01 /deep/59; awk '$2 == \"/\" {print $3}' /proc/mounts",
    ]);
    assert_eq!(r.stdout, "59\n1\n59\noverlay\n", "{r:?}");
    assert!(
        !r.stderr.contains("WARNING"),
        "no copy fallback: {}",
        r.stderr
    );
}

/// The value of a cgroup file of container `id`: v1 (`/sys/fs/cgroup/CONTROLLER/skiff/ID/FILE`)
/// or v2 (`/sys/fs/cgroup/skiff/ID/FILE2`).
fn cgroup_value(id: &str, controller: &str, v1: &str, v2: &str) -> Option<String> {
    [
        format!("/sys/fs/cgroup/{controller}/skiff/{id}/{v1}"),
        format!("/sys/fs/cgroup/skiff/{id}/{v2}"),
    ]
    .iter()
    .find_map(|p| std::fs::read_to_string(p).ok())
    .map(|s| s.trim().to_string())
}

/// --memory, --pids-limit and --cpus: applied through cgroups as root (the memory hog is
/// OOM-killed, forks past the limit fail, the cgroup goes with the container); rootless on
/// this machine (no delegation) the container runs without them and says so.
#[test]
fn resource_limits_apply_where_cgroups_allow_and_warn_where_not() {
    let env = Env::new();
    env.pull("busybox");
    let image = img("busybox");
    let r = env.ok(&[
        "run",
        "-d",
        "-m",
        "32m",
        "--pids-limit",
        "10",
        "--cpus",
        "0.5",
        &image,
        "sleep",
        "60",
    ]);
    let id = r.stdout.trim().to_string();
    let hc = env
        .ok(&[
            "inspect",
            "-f",
            "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}} {{.HostConfig.NanoCpus}}",
            &id,
        ])
        .stdout;
    assert_eq!(hc.trim(), "33554432 10 500000000");
    if is_root() {
        assert_eq!(
            cgroup_value(&id, "memory", "memory.limit_in_bytes", "memory.max").as_deref(),
            Some("33554432")
        );
        assert_eq!(
            cgroup_value(&id, "pids", "pids.max", "pids.max").as_deref(),
            Some("10")
        );
        env.ok(&["rm", "-f", &id]);
        assert_eq!(
            cgroup_value(&id, "pids", "pids.max", "pids.max"),
            None,
            "cgroup removed"
        );
        let hog = env.run(&[
            "run",
            "--rm",
            "-m",
            "16m",
            &img("busybox"),
            "dd",
            "if=/dev/zero",
            "of=/dev/null",
            "bs=64M",
            "count=1",
        ]);
        assert_eq!(hog.code, 137, "OOM-killed: {hog:?}");
        let forks = env.run(&[
            "run",
            "--rm",
            "--pids-limit",
            "5",
            &img("busybox"),
            "sh",
            "-c",
            "for i in 1 2 3 4 5 6 7 8; do sleep 1 & done; wait",
        ]);
        assert!(forks.stderr.contains("can't fork"), "{forks:?}");
    } else {
        assert!(
            r.stderr.contains("WARNING: resource limits ignored"),
            "{}",
            r.stderr
        );
        env.ok(&["rm", "-f", &id]);
    }
    env.fails(
        &["run", "--rm", "-m", "lots", &img("busybox"), "true"],
        "invalid --memory",
    );
    env.fails(
        &["run", "--rm", "--cpus", "0", &img("busybox"), "true"],
        "invalid --cpus",
    );
}

/// Docker's other everyday run flags: --mount (bind, volume, tmpfs), --ulimit, --group-add,
/// --shm-size and --stop-signal, each checked where it lands.
#[test]
fn mount_ulimit_group_add_shm_size_and_stop_signal_take_effect() {
    let env = Env::new();
    env.pull("busybox");
    let src = env.home.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), "bound\n").unwrap();
    let bind = format!("type=bind,source={},target=/b,readonly", src.display());
    let r = env.ok(&[
        "run", "--rm", "--mount", &bind, "--mount", "type=volume,source=mv,target=/v",
        "--mount", "type=tmpfs,target=/t", "--ulimit", "nofile=512:1024", "--group-add", "3000",
        "--group-add", "extra", "--shm-size", "8m", &img("busybox"), "sh", "-c",
        "cat /b/f; touch /b/x 2>/dev/null || echo ro; awk '$2==\"/t\"||$2==\"/dev/shm\" {print $2, $3}' /proc/mounts; \
         ulimit -n; ulimit -Hn; id -G",
    ]);
    assert_eq!(
        r.stdout, "bound\nro\n/dev/shm tmpfs\n/t tmpfs\n512\n1024\n0 2000 3000\n",
        "{r:?}"
    );
    let shm = env.ok(&[
        "run",
        "--rm",
        "--shm-size",
        "8m",
        &img("busybox"),
        "df",
        "-k",
        "/dev/shm",
    ]);
    assert!(shm.stdout.contains(" 8192 "), "{}", shm.stdout);
    assert!(env.ok(&["volume", "ls", "-q"]).stdout.contains("mv"));
    let id = env
        .ok(&[
            "run",
            "-d",
            "--stop-signal",
            "QUIT",
            &img("busybox"),
            "sleep",
            "60",
        ])
        .stdout;
    assert_eq!(
        env.ok(&["inspect", "-f", "{{.Config.StopSignal}}", id.trim()])
            .stdout
            .trim(),
        "QUIT"
    );
    env.ok(&["rm", "-f", id.trim()]);
    env.fails(
        &[
            "run",
            "--rm",
            "--mount",
            "type=bind,target=/x",
            &img("busybox"),
            "true",
        ],
        "needs a source",
    );
    env.fails(
        &[
            "run",
            "--rm",
            "--ulimit",
            "nofile=5:2",
            &img("busybox"),
            "true",
        ],
        "soft limit is above",
    );
    env.fails(
        &[
            "run",
            "--rm",
            "--ulimit",
            "bogus=1",
            &img("busybox"),
            "true",
        ],
        "invalid --ulimit",
    );
    env.fails(
        &[
            "run",
            "--rm",
            "--stop-signal",
            "BOGUS",
            &img("busybox"),
            "true",
        ],
        "invalid --stop-signal",
    );
    env.fails(
        &[
            "run",
            "--rm",
            "--group-add",
            "nosuchgroup",
            &img("busybox"),
            "true",
        ],
        "unable to find group nosuchgroup",
    );
}

#[test]
fn network_none_has_only_loopback() {
    let env = Env::new();
    env.pull("busybox");
    let r = env
        .ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            &img("busybox"),
            "ip",
            "-o",
            "link",
        ])
        .stdout;
    let links: Vec<&str> = r.lines().collect();
    assert_eq!(links.len(), 1, "{r}");
    assert!(links[0].contains("lo:") && links[0].contains("UP"), "{r}");
    // The default: a private network of its own, loopback and eth0 on the default network.
    let default = env
        .ok(&["run", "--rm", &img("busybox"), "ip", "-o", "link"])
        .stdout;
    assert_eq!(default.lines().count(), 2, "{default}");
    assert!(default.contains("eth0"), "{default}");
    // --network host: the host's interfaces, the host's name and /etc/hosts, as in Docker.
    let host = env
        .ok(&[
            "run",
            "--rm",
            "--network",
            "host",
            &img("busybox"),
            "sh",
            "-c",
            "ip -o link; hostname; cat /etc/hosts",
        ])
        .stdout;
    let n = std::fs::read_dir("/sys/class/net")
        .expect("/sys/class/net")
        .count();
    assert_eq!(
        host.lines().filter(|l| l.contains(": <")).count(),
        n,
        "{host}"
    );
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    assert!(
        host.lines().any(|l| l == name.trim()),
        "the host's name: {host}"
    );
    let etc_hosts = std::fs::read_to_string("/etc/hosts").expect("/etc/hosts");
    assert!(
        host.contains(etc_hosts.trim()),
        "the host's /etc/hosts: {host}"
    );
}

/// Drives `skiff run -it … sh` through a real pty: type, read, exit.
#[test]
fn interactive_terminal_works_under_a_pty() {
    let env = Env::new();
    env.pull("busybox");
    let (mut master, slave) = openpty();
    let slave_fd: OwnedFd = slave;
    let mut cmd = env.cmd(&["run", "-it", "--rm", &img("busybox"), "sh"]);
    cmd.stdin(slave_fd.try_clone().unwrap())
        .stdout(slave_fd.try_clone().unwrap())
        .stderr(slave_fd);
    let mut child = cmd.spawn().unwrap();
    let seen = read_until(&mut master, "# ", Duration::from_secs(20));
    assert!(seen.contains("# "), "a shell prompt: {seen:?}");
    master.write_all(b"echo hi-$((2+3))\n").unwrap();
    let seen = read_until(&mut master, "hi-5", Duration::from_secs(10));
    assert!(seen.contains("hi-5"), "{seen:?}");
    master.write_all(b"exit 5\n").unwrap();
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "skiff did not exit");
        let _ = read_until(&mut master, "\u{0}", Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(5));
}

/// `-t` gives the container a pty of its own devpts, so `tty` and ttyname() work inside, for
/// the -u user too; output comes through it (with the terminal's CRLF) without a host terminal.
#[test]
fn run_t_gets_a_terminal_from_the_containers_devpts() {
    let env = Env::new();
    env.pull("busybox");
    let r = env.ok(&[
        "run",
        "--rm",
        "-t",
        &img("busybox"),
        "sh",
        "-c",
        "tty; ls -1 /dev/pts",
    ]);
    assert_eq!(r.stdout, "/dev/pts/0\r\n0\r\nptmx\r\n", "{r:?}");
    let r = env.run(&[
        "run",
        "--rm",
        "-t",
        "-u",
        "1000",
        &img("busybox"),
        "sh",
        "-c",
        "stat -c %u $(tty); exit 4",
    ]);
    assert_eq!((r.code, r.stdout.trim()), (4, "1000"), "{r:?}");
}

#[test]
fn stdin_is_forwarded_with_i_and_closed_at_eof() {
    let env = Env::new();
    env.pull("busybox");
    let mut child = env
        .cmd(&["run", "-i", "--rm", &img("busybox"), "sh", "-c", "wc -l"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"a\nb\nc\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "3");
}

#[test]
fn detached_containers_outlive_the_cli_and_log() {
    let env = Env::new();
    env.pull("busybox");
    let t = Instant::now();
    let r = env.ok(&[
        "run",
        "-d",
        "--name",
        "ticker",
        &img("busybox"),
        "sh",
        "-c",
        "while true; do echo tick; sleep 0.2; done",
    ]);
    let id = r.stdout.trim().to_string();
    assert_eq!(id.len(), 64, "run -d prints the full id: {}", r.stdout);
    assert!(t.elapsed() < Duration::from_secs(10));
    let dir = env.data().join("containers").join(&id);
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("state.json")).unwrap()).unwrap();
    assert_eq!(state["status"], "running");
    let pid = state["pid"].as_i64().unwrap() as i32;
    let lines = || {
        std::fs::read_to_string(dir.join("ctr.log"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    let wait_for_lines = |n: usize| {
        let t = Instant::now();
        while lines() < n && t.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(50));
        }
        lines()
    };
    let first = wait_for_lines(2);
    let later = wait_for_lines(first + 3);
    assert!(
        later > first,
        "the log grows while the CLI is gone ({first} then {later})"
    );
    let rec: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(dir.join("ctr.log"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(rec["log"], "tick\n");
    assert_eq!(rec["stream"], "stdout");
    // Stop it the hard way (stop comes with the lifecycle commands) and see the monitor record it.
    // SAFETY: signalling the container's PID 1, which this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let t = Instant::now();
    let exited = loop {
        let st: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("state.json")).unwrap()).unwrap();
        if st["status"] == "exited" || t.elapsed() > Duration::from_secs(10) {
            break st;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(exited["status"], "exited");
    assert_eq!(exited["exit_code"], 137);
}

#[test]
fn signals_sent_to_skiff_reach_the_container() {
    let env = Env::new();
    env.pull("busybox");
    let mut child = env
        .cmd(&[
            "run",
            "--rm",
            "--init",
            &img("busybox"),
            "sh",
            "-c",
            "trap 'echo got-term; exit 42' TERM; echo ready; while true; do sleep 0.1; done",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let mut out = child.stdout.take().unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 256];
    while !seen.contains("ready") {
        let n = out.read(&mut buf).unwrap();
        assert!(n > 0, "container ended early");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    // SAFETY: signalling the skiff process this test started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("got-term"), "{rest}");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(42), "the container's own exit code");
}

#[test]
fn bad_input_is_refused_and_leaves_nothing_behind() {
    let env = Env::new();
    env.pull("busybox");
    let bb = img("busybox");
    env.ok(&["run", "--name", "taken", &bb, "true"]);
    let before = env.containers().len();
    env.fails(&["run", "--name", "taken", &bb, "true"], "already in use");
    env.fails(
        &["run", &format!("{REGISTRY}/no-such-image")],
        "manifest unknown",
    );
    env.fails(
        &["run", "-v", "/no/such/dir:/x", &bb, "true"],
        "bind source path does not exist",
    );
    env.fails(
        &["run", "-u", "nobody-here", &bb, "true"],
        "unable to find user nobody-here",
    );
    env.fails(
        &["run", "-u", "user:no-such-group", &bb, "true"],
        "unable to find group no-such-group",
    );
    env.fails(
        &["run", "--network", "no/such", &bb, "true"],
        "unknown --network",
    );
    env.fails(
        &["run", "--pull", "sometimes", &bb, "true"],
        "invalid --pull",
    );
    env.fails(
        &["run", "-e", "=oops", &bb, "true"],
        "invalid environment variable",
    );
    env.fails(&["run", "-v", "a:b:c:d", &bb, "true"], "invalid -v");
    env.fails(
        &["run", "--cap-add", "SUPERPOWER", &bb, "true"],
        "unknown capability",
    );
    assert_eq!(
        env.containers().len(),
        before,
        "no record left by refused runs"
    );
}

#[test]
fn the_copy_rootfs_fallback_matches_the_overlay() {
    let env = Env::new();
    env.pull("layers");
    let run = |args: &[&str]| -> Run {
        env.cmd(args)
            .env("SKIFF_ROOTFS", "copy")
            .output()
            .unwrap()
            .into()
    };
    let script = "ls /deleted /opaque; cat /etc/motd; stat -c '%u:%g %a' /home/user/owned /bin-suid; readlink /lib/rel; echo changed > /etc/motd";
    let r = run(&[
        "run",
        "--name",
        "copied",
        &img("layers"),
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "/deleted:\nkept\n\n/opaque:\nnew\nupper motd\n1000:1000 600\n0:0 4755\n../etc/motd\n"
    );
    let again = run(&["start", "-a", "copied"]);
    assert!(
        again.stdout.contains("changed\n"),
        "writes persist in the container's copy: {again:?}"
    );
    let layers = env.layer_dirs(&img("layers"));
    assert_eq!(
        std::fs::read_to_string(layers[2].join("etc/motd")).unwrap(),
        "upper motd\n",
        "layer dirs untouched"
    );
    let other = run(&["run", "--rm", &img("layers"), "cat", "/etc/motd"]);
    assert_eq!(
        other.stdout, "upper motd\n",
        "another container has its own copy"
    );
    env.ok(&["rm", "copied"]);
}
