//! Image fidelity: what an image holds reaches the container and what a container holds reaches
//! a committed image as Docker and podman carry it — volumes filled from the image, xattrs,
//! hardlinks and sub-second mtimes through commit and unpack, setuid programs, the open-files
//! limit, /etc/mtab.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

use common::{bb, is_root, Env};

/// A container's directory (upper dir and the rest), found by its name.
fn ctr_dir(env: &Env, name: &str) -> std::path::PathBuf {
    let id = env.state(name)["Id"].as_str().expect("id").to_string();
    env.data().join("containers").join(id)
}

/// A new named volume mounted over an image directory with content, owner 1000:1000 and mode
/// 750 starts as a copy of it, so the image's non-root user can write there; once filled, it is
/// not filled again.
#[test]
fn a_new_volume_takes_the_image_dirs_content_owner_and_mode() {
    let env = Env::new();
    env.pull("busybox");
    env.ok(&[
        "run",
        "--name",
        "mk",
        &bb(),
        "sh",
        "-c",
        "mkdir /data && echo hi > /data/f && chown -R 1000:1000 /data && chmod 750 /data",
    ]);
    env.ok(&["commit", "mk", "voldata:v1"]);
    let r = env.ok(&[
        "run",
        "--rm",
        "-u",
        "1000",
        "-v",
        "vol1:/data",
        "voldata:v1",
        "sh",
        "-c",
        "cat /data/f; stat -c '%u:%g %a' /data; touch /data/new && echo WROTE",
    ]);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines, ["hi", "1000:1000 750", "WROTE"], "{r:?}");
    // The volume keeps what the container wrote and is not refilled over it.
    env.ok(&[
        "run",
        "--rm",
        "-v",
        "vol1:/data",
        &bb(),
        "sh",
        "-c",
        "rm /data/f",
    ]);
    let r = env.ok(&[
        "run",
        "--rm",
        "-v",
        "vol1:/data",
        "voldata:v1",
        "ls",
        "/data",
    ]);
    assert_eq!(r.stdout.trim(), "new", "{r:?}");
}

/// commit keeps a hardlinked pair as one file, keeps xattrs (a file capability as root, a
/// `user.*` xattr either way) and sub-second mtimes, and leaves out the old container's
/// HOSTNAME, an empty Entrypoint list and the files skiff itself provided.
#[test]
fn commit_keeps_links_xattrs_and_times_and_leaves_out_what_skiff_added() {
    let env = Env::new();
    env.pull("busybox");
    let r = env.ok(&[
        "run",
        "--name",
        "c",
        "--entrypoint",
        "",
        &bb(),
        "sh",
        "-c",
        "echo x > /a && ln /a /b && echo y > /capped && stat -c %y /a",
    ]);
    let stamp = r.stdout.trim().to_string();
    assert!(
        !stamp.contains(".000000000"),
        "the file should have a sub-second mtime: {stamp}"
    );
    let upper = ctr_dir(&env, "c").join("upper");
    let capped = upper.join("capped");
    let set = |name: &str, value: &[u8]| {
        let p = std::ffi::CString::new(capped.to_str().expect("utf-8")).expect("path");
        let n = std::ffi::CString::new(name).expect("name");
        // SAFETY: setxattr with valid strings and a buffer of the length given.
        let rc = unsafe {
            libc::setxattr(
                p.as_ptr(),
                n.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        rc == 0
    };
    let user_xattr = set("user.fidelity", b"kept");
    if is_root() {
        let st = Command::new("setcap")
            .args(["cap_net_raw=ep"])
            .arg(&capped)
            .status()
            .expect("setcap");
        assert!(st.success(), "setcap");
    }
    env.ok(&["commit", "c", "fid:v1"]);
    let top = env.layer_dirs("fid:v1").pop().expect("a layer");
    let (a, b) = (
        std::fs::metadata(top.join("a")).expect("a"),
        std::fs::metadata(top.join("b")).expect("b"),
    );
    assert_eq!(a.ino(), b.ino(), "a and b must stay one file");
    assert_ne!(a.mtime_nsec(), 0, "the sub-second mtime was lost");
    let get = |name: &str| {
        let p = std::ffi::CString::new(top.join("capped").to_str().expect("utf-8").to_string())
            .expect("path");
        let n = std::ffi::CString::new(name).expect("name");
        let mut buf = [0u8; 256];
        // SAFETY: getxattr into a buffer we own, of the length given.
        let len =
            unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        (len >= 0).then(|| buf[..len as usize].to_vec())
    };
    if user_xattr {
        assert_eq!(get("user.fidelity").as_deref(), Some(&b"kept"[..]));
    }
    if is_root() {
        let out = Command::new("getcap")
            .arg(top.join("capped"))
            .output()
            .expect("getcap");
        let caps = String::from_utf8_lossy(&out.stdout);
        assert!(caps.contains("cap_net_raw"), "file capability lost: {caps}");
    }
    for f in ["etc/hostname", "etc/hosts", "etc/resolv.conf", "etc/mtab"] {
        assert!(
            std::fs::symlink_metadata(top.join(f)).is_err(),
            "{f} is skiff's, not the container's change"
        );
    }
    let v: serde_json::Value =
        serde_json::from_str(&env.ok(&["inspect", "fid:v1"]).stdout).expect("json");
    let cfg = &v[0]["Config"];
    assert!(cfg["Entrypoint"].is_null(), "{cfg}");
    assert!(
        !cfg["Env"]
            .as_array()
            .expect("env")
            .iter()
            .any(|e| e.as_str().is_some_and(|e| e.starts_with("HOSTNAME="))),
        "{cfg}"
    );
    // And the new image's container sees the same time, to the nanosecond.
    let r = env.ok(&["run", "--rm", "fid:v1", "stat", "-c", "%y", "/a"]);
    assert_eq!(r.stdout.trim(), stamp);
}

/// A setuid-root program of the image raises a non-root container user's effective uid, as in
/// Docker (no_new_privs is off by default); `--security-opt no-new-privileges` stops it, and
/// `no-new-privileges=false` is accepted. The seccomp filter is on in every case.
#[test]
fn setuid_programs_work_unless_no_new_privileges_is_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("euid.c"),
        "#include <stdio.h>\n#include <unistd.h>\nint main(void){printf(\"%d\\n\",(int)geteuid());return 0;}\n",
    )
    .expect("write");
    let built = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(dir.path().join("euid"))
        .arg(dir.path().join("euid.c"))
        .status();
    assert!(
        built.is_ok_and(|s| s.success()),
        "building the probe needs gcc and a static libc (apt-get install gcc libc6-dev)"
    );
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let env = Env::new();
    env.pull("busybox");
    let bind = format!("{}:/h:ro", dir.path().display());
    env.ok(&[
        "run",
        "--name",
        "mk",
        "-v",
        &bind,
        &bb(),
        "sh",
        "-c",
        "cp /h/euid /bin/euid && chown 0:0 /bin/euid && chmod 4755 /bin/euid",
    ]);
    env.ok(&["commit", "mk", "suid:v1"]);
    let r = env.ok(&["run", "--rm", "-u", "1000", "suid:v1", "/bin/euid"]);
    assert_eq!(
        r.stdout.trim(),
        "0",
        "setuid root should work by default: {r:?}"
    );
    let r = env.ok(&[
        "run",
        "--rm",
        "-u",
        "1000",
        "--security-opt",
        "no-new-privileges",
        "suid:v1",
        "/bin/euid",
    ]);
    assert_eq!(r.stdout.trim(), "1000", "{r:?}");
    let image = bb();
    for (opt, nnp) in [
        (None, "0"),
        (Some("no-new-privileges"), "1"),
        (Some("no-new-privileges=false"), "0"),
    ] {
        let mut args = vec!["run", "--rm", "-u", "1000"];
        if let Some(o) = opt {
            args.extend(["--security-opt", o]);
        }
        args.extend([
            image.as_str(),
            "grep",
            "-E",
            "^(NoNewPrivs|Seccomp):",
            "/proc/self/status",
        ]);
        let r = env.ok(&args);
        let got: Vec<String> = r
            .stdout
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        assert_eq!(
            got,
            [format!("NoNewPrivs: {nnp}"), "Seccomp: 2".to_string()],
            "{opt:?}"
        );
    }
}

/// The open-files soft limit is raised to the hard one (podman's default), not left at the
/// caller's 1024; `--ulimit nofile=` still decides when given.
#[test]
fn the_open_files_soft_limit_is_raised_to_the_hard_one() {
    use std::os::unix::process::CommandExt;
    let mut own = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills one struct we own.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut own) }, 0);
    let hard = own.rlim_max;
    assert!(
        hard > 1024,
        "the test needs a hard open-files limit above 1024"
    );
    let env = Env::new();
    env.pull("busybox");
    let image = bb();
    // skiff started with soft 1024 (a login's usual soft limit), hard as the test has it.
    let mut cmd = env.cmd(&["run", "--rm", &image, "sh", "-c", "ulimit -Sn; ulimit -Hn"]);
    // SAFETY: the closure only calls setrlimit, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: 1024,
                rlim_max: hard,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().expect("running skiff");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let v: Vec<u64> = stdout
        .lines()
        .map(|l| l.trim().parse().expect("a number"))
        .collect();
    assert_eq!(v.len(), 2, "{stdout}");
    assert_eq!(v[0], v[1], "soft should equal hard: {stdout}");
    assert!(
        v[0] >= hard.min(1 << 20),
        "soft {} below the caller's hard limit {hard}",
        v[0]
    );
    let r = env.ok(&[
        "run",
        "--rm",
        "--ulimit",
        "nofile=512:512",
        &image,
        "sh",
        "-c",
        "ulimit -Sn",
    ]);
    assert_eq!(r.stdout.trim(), "512");
}

/// /etc/mtab is a link to /proc/mounts when the image has none; an image's own stays.
#[test]
fn etc_mtab_links_to_proc_mounts_unless_the_image_has_one() {
    let env = Env::new();
    env.pull("busybox");
    let r = env.ok(&[
        "run",
        "--rm",
        &bb(),
        "sh",
        "-c",
        "readlink /etc/mtab; grep -c ' / ' /etc/mtab",
    ]);
    assert_eq!(
        r.stdout.lines().collect::<Vec<_>>(),
        ["/proc/mounts", "1"],
        "{r:?}"
    );
    env.ok(&[
        "run",
        "--name",
        "own",
        &bb(),
        "sh",
        "-c",
        "rm /etc/mtab && echo mine > /etc/mtab",
    ]);
    env.ok(&["commit", "own", "ownmtab:v1"]);
    let r = env.ok(&["run", "--rm", "ownmtab:v1", "cat", "/etc/mtab"]);
    assert_eq!(r.stdout.trim(), "mine");
}
