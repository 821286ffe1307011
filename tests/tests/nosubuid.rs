//! A rootless user without any /etc/subuid range: skiff says once that other ids are lost, every
//! image file belongs to the user, containers run with only root mapped, and asking for another
//! id is refused before anything exists. `cargo xtask ci` runs this suite as `skiff-nosub`
//! (`--ignored`); the other passes skip it.

mod common;

use std::os::unix::fs::MetadataExt;

use common::*;

fn only_root_mapped() -> bool {
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let name = std::env::var("USER").unwrap_or_default();
    uid != 0
        && !std::fs::read_to_string("/etc/subuid")
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with(&format!("{name}:")) || l.starts_with(&format!("{uid}:")))
}

#[test]
#[ignore = "run as a user without a subuid range: cargo xtask ci does"]
fn without_a_subuid_range_only_root_is_mapped() {
    assert!(
        only_root_mapped(),
        "this suite needs a rootless user without /etc/subuid entries"
    );
    let env = Env::new();
    let first = env.ok(&["pull", "-q", &format!("{REGISTRY}/layers")]);
    assert!(
        first.stderr.contains("no /etc/subuid range"),
        "the user is told: {}",
        first.stderr
    );
    let second = env.ok(&["pull", "-q", &format!("{REGISTRY}/busybox")]);
    assert!(
        !second.stderr.contains("no /etc/subuid range"),
        "…once: {}",
        second.stderr
    );
    // SAFETY: getuid has no preconditions.
    let me = unsafe { libc::getuid() };
    let layers = env.layer_dirs(&format!("{REGISTRY}/layers"));
    assert_eq!(
        std::fs::metadata(layers[1].join("home/user/owned"))
            .unwrap()
            .uid(),
        me,
        "files of uid 1000 belong to the user"
    );
    let r = env.ok(&[
        "run",
        "--rm",
        &format!("{REGISTRY}/layers"),
        "sh",
        "-c",
        "id -u; stat -c %u /home/user/owned; cat /etc/motd; ls /deleted",
    ]);
    assert_eq!(r.stdout, "0\n0\nupper motd\nkept\n");
    env.fails(
        &[
            "run",
            "--rm",
            "-u",
            "1000",
            &format!("{REGISTRY}/busybox"),
            "id",
        ],
        "only root is mapped",
    );
    assert!(env.containers().is_empty(), "refused before any record");
    env.ok(&[
        "run",
        "-d",
        "--name",
        "bg",
        &format!("{REGISTRY}/busybox"),
        "sleep",
        "60",
    ]);
    assert_eq!(env.ok(&["exec", "bg", "id", "-u"]).stdout, "0\n");
    env.ok(&["rm", "-f", "bg"]);
    env.ok(&[
        "rmi",
        "-f",
        &format!("{REGISTRY}/layers"),
        &format!("{REGISTRY}/busybox"),
    ]);
    assert!(
        env.entries("layers").is_empty(),
        "everything removable without a namespace: {:?}",
        env.entries("layers")
    );
}

#[test]
#[ignore = "run as a user without a subuid range: cargo xtask ci does"]
fn without_a_subuid_range_commit_cp_and_published_ports_still_work() {
    assert!(
        only_root_mapped(),
        "this suite needs a rootless user without /etc/subuid entries"
    );
    let env = Env::new();
    env.pull("busybox");
    let bb = format!("{REGISTRY}/busybox");
    // Helpers that need a namespace (commit's reader, cp on a stopped container) map the user
    // alone when there is no range.
    env.ok(&[
        "run",
        "--name",
        "c",
        &bb,
        "sh",
        "-c",
        "echo change > /changed",
    ]);
    env.ok(&["commit", "c", "snap:v1"]);
    assert_eq!(
        env.ok(&["run", "--rm", "snap:v1", "cat", "/changed"])
            .stdout,
        "change\n"
    );
    let host = env.home.path().join("f");
    std::fs::write(&host, "in\n").unwrap();
    env.ok(&["cp", &host.to_string_lossy(), "c:/copied"]);
    let back = env.home.path().join("back");
    env.ok(&["cp", "c:/copied", &back.to_string_lossy()]);
    assert_eq!(std::fs::read_to_string(back).unwrap(), "in\n");
    // slirp4netns joins the user-only namespace too.
    let r = env.ok(&[
        "run",
        "--rm",
        "--network",
        "slirp4netns",
        &bb,
        "sh",
        "-c",
        "ip route | grep default",
    ]);
    assert!(r.stdout.contains("default via 10.0.2.2"), "{}", r.stdout);
}
