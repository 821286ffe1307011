//! Confinement: devices, capabilities, seccomp and mount flags compared with podman's defaults.

use std::path::Path;
use std::process::Command;

use super::common::{bb, is_root, Env, Run};

/// Writes to a device node and says whether the open worked (`OPENED`) or not (`DENIED`), or
/// that there is no character device there (`ABSENT`).
fn try_device(path: &str) -> String {
    format!(
        "if [ ! -c {path} ]; then echo ABSENT; elif echo x > {path}; then echo OPENED; else echo DENIED; fi"
    )
}

/// Makes the character device 1,3 (what /dev/null is) at `path` on the host (root only).
fn mknod_null(path: &Path) {
    let st = Command::new("mknod")
        .arg(path)
        .args(["c", "1", "3"])
        .status()
        .expect("mknod");
    assert!(st.success(), "mknod {}", path.display());
}

/// A device node shipped in an image layer (made by a container with CAP_MKNOD and committed)
/// cannot be opened by a container of that image, on overlayfs and on the copied rootfs; only
/// `--privileged` lifts this, as Docker's privileged mode gives every device.
#[test]
fn a_device_node_from_an_image_layer_cannot_be_opened() {
    if !is_root() {
        eprintln!("skipped: root only (rootless, the unpacker skips device nodes in layers and mknod is refused in a user namespace)");
        return;
    }
    let env = Env::new();
    env.pull("busybox");
    env.ok(&[
        "run",
        "--name",
        "mk",
        "--cap-add",
        "MKNOD",
        &bb(),
        "sh",
        "-c",
        "mkdir -p /opt && mknod /opt/null c 1 3",
    ]);
    env.ok(&["commit", "mk", "devimage:v1"]);
    let layer_has_it = env
        .layer_dirs("devimage:v1")
        .iter()
        .any(|d| d.join("opt/null").exists());
    assert!(layer_has_it, "the committed layer should carry the device");
    let probe = try_device("/opt/null");
    let r = env.ok(&["run", "--rm", "devimage:v1", "sh", "-c", &probe]);
    assert_eq!(r.stdout.trim(), "DENIED", "overlay rootfs: {r:?}");
    // The copied rootfs leaves devices out of the copy; one made in it by a container with
    // CAP_MKNOD cannot be opened either (nor one made in overlay's upper dir).
    let copy: Run = env
        .cmd(&["run", "--rm", "devimage:v1", "sh", "-c", &probe])
        .env("SKIFF_ROOTFS", "copy")
        .output()
        .expect("skiff")
        .into();
    assert_eq!(copy.code, 0, "{copy:?}");
    assert_eq!(copy.stdout.trim(), "ABSENT", "copied rootfs: {copy:?}");
    let made = format!("mknod /made c 1 3 && {}", try_device("/made"));
    for rootfs in ["overlay", "copy"] {
        let r: Run = env
            .cmd(&[
                "run",
                "--rm",
                "--cap-add",
                "MKNOD",
                &bb(),
                "sh",
                "-c",
                &made,
            ])
            .env("SKIFF_ROOTFS", rootfs)
            .output()
            .expect("skiff")
            .into();
        assert_eq!(r.code, 0, "{rootfs}: {r:?}");
        assert_eq!(
            r.stdout.trim(),
            "DENIED",
            "{rootfs}: made in the container: {r:?}"
        );
    }
    let r = env.ok(&[
        "run",
        "--rm",
        "--privileged",
        "devimage:v1",
        "sh",
        "-c",
        &probe,
    ]);
    assert_eq!(
        r.stdout.trim(),
        "OPENED",
        "--privileged gives devices: {r:?}"
    );
}

/// A device node made on the host inside a `-v` bind source or a named volume cannot be opened
/// from the container (the binds are nodev, their submounts too).
#[test]
fn device_nodes_in_binds_and_volumes_cannot_be_opened() {
    if !is_root() {
        eprintln!(
            "skipped: root only (making a device node on the host in a bind source needs root)"
        );
        return;
    }
    let env = Env::new();
    env.pull("busybox");
    let src = env.home.path().join("bindsrc");
    std::fs::create_dir(&src).expect("bind source");
    mknod_null(&src.join("null"));
    env.ok(&["run", "--rm", "-v", "vol:/v", &bb(), "true"]);
    let vol = env.data().join("volumes/vol");
    assert!(vol.is_dir(), "volume dir {}", vol.display());
    mknod_null(&vol.join("null"));
    let bind = format!("{}:/b", src.display());
    let bind_ro = format!("{}:/r:ro", src.display());
    let probe = format!(
        "{}; {}; {}",
        try_device("/b/null"),
        try_device("/r/null"),
        try_device("/v/null")
    );
    let args = [
        "run",
        "--rm",
        "-v",
        &bind,
        "-v",
        &bind_ro,
        "-v",
        "vol:/v",
        &bb(),
        "sh",
        "-c",
        &probe,
    ];
    let r = env.ok(&args);
    assert_eq!(r.stdout, "DENIED\nDENIED\nDENIED\n", "{r:?}");
    // The host's own /dev/null through the same kind of bind: what the attack would reach.
    let mut priv_args = args.to_vec();
    priv_args.insert(2, "--privileged");
    let r = env.ok(&priv_args);
    assert_eq!(r.stdout, "OPENED\nOPENED\nOPENED\n", "--privileged: {r:?}");
}

fn cap_line(status: &str, name: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:\t")))
        .unwrap_or_else(|| panic!("no {name} in {status}"))
        .trim()
        .to_string()
}

/// The inheritable set is empty for root, for `--privileged`, for another user and for `exec`:
/// a process that changes uid keeps no capabilities that a `+ei` file could hand back.
#[test]
fn the_inheritable_capability_set_is_empty() {
    let env = Env::new();
    env.pull("busybox");
    let status = "cat /proc/self/status";
    for extra in [
        &[][..],
        &["--privileged"][..],
        &["--privileged", "-u", "1000"][..],
        &["--cap-add", "ALL"][..],
    ] {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(extra);
        let img = bb();
        args.extend_from_slice(&[&img, "sh", "-c", status]);
        let r = env.ok(&args);
        assert_eq!(
            cap_line(&r.stdout, "CapInh"),
            "0000000000000000",
            "{extra:?}"
        );
        assert_eq!(
            cap_line(&r.stdout, "CapAmb"),
            "0000000000000000",
            "{extra:?}"
        );
    }
    // Root keeps its bounded set as effective and permitted (podman's 11 by default).
    let r = env.ok(&["run", "--rm", &bb(), "cat", "/proc/self/status"]);
    assert_eq!(cap_line(&r.stdout, "CapEff"), "00000000800405fb");
    assert_eq!(cap_line(&r.stdout, "CapBnd"), "00000000800405fb");
    env.ok(&[
        "run",
        "-d",
        "--name",
        "pr",
        "--privileged",
        &bb(),
        "sleep",
        "60",
    ]);
    let r = env.ok(&["exec", "pr", "cat", "/proc/self/status"]);
    env.ok(&["rm", "-f", "pr"]);
    assert_eq!(cap_line(&r.stdout, "CapInh"), "0000000000000000", "exec");
}

const URING_PROBE: &str = r#"
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(void) {
    char params[120];
    memset(params, 0, sizeof params);
    long fd = syscall(__NR_io_uring_setup, 4, params);
    if (fd >= 0) { printf("io_uring_setup: allowed\n"); return 0; }
    printf("io_uring_setup: errno %d\n", errno);
    long r = syscall(__NR_io_uring_enter, 0, 0, 0, 0, 0, 0);
    printf("io_uring_enter: errno %d\n", r < 0 ? errno : 0);
    r = syscall(__NR_io_uring_register, 0, 0, 0, 0);
    printf("io_uring_register: errno %d\n", r < 0 ? errno : 0);
    return 0;
}
"#;

/// io_uring is refused (EPERM) by the default filter, as in Docker's and podman's profiles: a
/// static helper built on the host calls the three system calls from inside the container.
#[test]
fn io_uring_is_denied_by_the_default_filter() {
    let env = Env::new();
    env.pull("busybox");
    let dir = env.home.path().join("uring");
    std::fs::create_dir(&dir).expect("helper dir");
    std::fs::write(dir.join("probe.c"), URING_PROBE).expect("probe source");
    let built = Command::new("gcc")
        .args(["-static", "-O0", "-o"])
        .arg(dir.join("probe"))
        .arg(dir.join("probe.c"))
        .status();
    if !built.is_ok_and(|s| s.success()) {
        eprintln!("skipped: gcc -static is not available to build the io_uring probe");
        return;
    }
    // The host itself allows io_uring (else the check proves nothing).
    let host = Command::new(dir.join("probe")).output().expect("probe");
    let host = String::from_utf8_lossy(&host.stdout).into_owned();
    if !host.contains("allowed") {
        eprintln!("skipped: io_uring is disabled on this host already: {host}");
        return;
    }
    let bind = format!("{}:/h:ro", dir.display());
    let r = env.ok(&["run", "--rm", "-v", &bind, &bb(), "/h/probe"]);
    assert_eq!(
        r.stdout, "io_uring_setup: errno 1\nio_uring_enter: errno 1\nio_uring_register: errno 1\n",
        "{r:?}"
    );
    // --security-opt seccomp=unconfined opens it again (podman's behaviour too).
    let r = env.ok(&[
        "run",
        "--rm",
        "--security-opt",
        "seccomp=unconfined",
        "-v",
        &bind,
        &bb(),
        "/h/probe",
    ]);
    assert!(r.stdout.contains("allowed"), "{r:?}");
}

/// One line of /proc/self/mountinfo: mount point and per-mount options.
struct MountLine {
    point: String,
    opts: Vec<String>,
    fstype: String,
}

fn mountinfo(text: &str) -> Vec<MountLine> {
    text.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let f: Vec<&str> = pre.split(' ').collect();
            Some(MountLine {
                point: f.get(4)?.to_string(),
                opts: f.get(5)?.split(',').map(str::to_string).collect(),
                fstype: post.split(' ').next()?.to_string(),
            })
        })
        .collect()
}

/// The mount that a path shows (the last one listed at that point).
fn at<'a>(m: &'a [MountLine], point: &str) -> &'a MountLine {
    m.iter()
        .rev()
        .find(|l| l.point == point)
        .unwrap_or_else(|| panic!("no mount at {point}"))
}

fn has(l: &MountLine, opt: &str) -> bool {
    l.opts.iter().any(|o| o == opt)
}

/// Every mount's flags as podman sets them (or stricter): a nodev rootfs, /dev nosuid+noexec,
/// read-only cgroup hierarchies with no extra `unified`, read-only masks, /sys/dev/block
/// masked — with the host's network (a /sys bind rootless) and a private one (a fresh sysfs).
#[test]
fn mounts_carry_podmans_flags() {
    let env = Env::new();
    env.pull("busybox");
    let script = "cat /proc/self/mountinfo; echo ---; ls /sys/fs/cgroup; echo ---; \
                  ls /sys/dev/block | wc -l; \
                  wc -c < /proc/keys; wc -c < /proc/timer_list; \
                  if mkdir /sys/fs/cgroup/memory/skiff-probe 2>/dev/null; then echo cgroup-made; rmdir /sys/fs/cgroup/memory/skiff-probe; fi";
    for net in ["host", "none"] {
        let r = env.ok(&["run", "--rm", "--network", net, &bb(), "sh", "-c", script]);
        let parts: Vec<&str> = r.stdout.split("---\n").collect();
        assert_eq!(parts.len(), 3, "{r:?}");
        let m = mountinfo(parts[0]);
        let root = at(&m, "/");
        assert!(
            has(root, "nodev"),
            "{net}: / must be nodev: {:?}",
            root.opts
        );
        let dev = at(&m, "/dev");
        assert!(
            has(dev, "nosuid") && has(dev, "noexec"),
            "{net}: /dev {:?}",
            dev.opts
        );
        for p in [
            "/proc/keys",
            "/proc/timer_list",
            "/sys/firmware",
            "/sys/dev/block",
        ] {
            assert!(has(at(&m, p), "ro"), "{net}: mask {p} must be read-only");
        }
        for l in m.iter().filter(|l| l.point.starts_with("/sys/fs/cgroup")) {
            assert!(
                has(l, "ro"),
                "{net}: {} must be read-only: {:?}",
                l.point,
                l.opts
            );
        }
        let cg = at(&m, "/sys/fs/cgroup");
        if cg.fstype == "tmpfs" {
            // cgroup v1: one directory per hierarchy, none for a hybrid host's cgroup2.
            assert!(
                !parts[1].lines().any(|n| n == "unified"),
                "{net}: /sys/fs/cgroup/unified shown: {}",
                parts[1]
            );
        }
        let counts: Vec<&str> = parts[2].lines().take(3).map(str::trim).collect();
        assert_eq!(
            counts,
            ["0", "0", "0"],
            "{net}: /sys/dev/block, /proc/keys, /proc/timer_list are empty"
        );
        assert!(!parts[2].contains("cgroup-made"), "{net}: {}", parts[2]);
    }
    // --privileged: the masks go and the cgroups are writable (podman's rule), / keeps devices.
    let r = env.ok(&[
        "run",
        "--rm",
        "--privileged",
        &bb(),
        "cat",
        "/proc/self/mountinfo",
    ]);
    let m = mountinfo(&r.stdout);
    assert!(!has(at(&m, "/"), "nodev"), "--privileged rootfs");
    assert!(
        m.iter().all(|l| l.point != "/sys/dev/block"),
        "--privileged masks"
    );
}
