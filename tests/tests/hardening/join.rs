//! Processes that join a container (exec, cp, top, stats) cannot be turned against the host binary or terminal.
//!
//! The victim of the CVE-2019-5736 attacks is a copy of skiff in the test's own home (owned by
//! the user running the test, as `cargo install` leaves it), so a defence that fails breaks only
//! that copy, never the binary under test.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::common;
use super::common::bb;
use common::Env;

/// A command with the environment of `env.cmd` but another program.
fn cmd_as(env: &Env, program: &Path, args: &[&str]) -> Command {
    let base = env.cmd(&[]);
    let mut c = Command::new(program);
    c.args(args).env_clear().stdin(Stdio::null());
    for (k, v) in base.get_envs() {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    c
}

/// A copy of the binary under test in the test's home: the file the attacks try to rewrite.
fn victim(env: &Env) -> (PathBuf, Vec<u8>) {
    let path = env.home.path().join("victim-skiff");
    std::fs::copy(common::bin(), &path).expect("copying skiff");
    let bytes = std::fs::read(&path).expect("reading the copy");
    (path, bytes)
}

/// Waits (up to a minute) until the container's output contains `needle`, and returns it
/// (read through `logs`, which does not join the container).
fn wait_for_log(env: &Env, ctr: &str, needle: &str) -> String {
    let t = Instant::now();
    loop {
        let r = env.run(&["logs", ctr]);
        if r.stdout.contains(needle) {
            return r.stdout;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "{needle:?} never appeared in the container's output: {}{}",
            r.stdout,
            r.stderr
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The container's half of the attack, after it holds `/proc/PID/exe` of skiff as fd 8: once
/// skiff has exited (the test touches /gone; the file is no longer busy), try to open it for
/// writing through /proc/self/fd/8 and write to it, and say how that went.
const REWRITE: &str = r#"
while [ ! -e /gone ]; do sleep 0.05; done
i=0; res="write: denied"
while [ $i -lt 10 ]; do
  if (exec 4>>/proc/self/fd/8 && echo '#PWNED' >&4) 2>/tmp/err; then res="write: done"; break; fi
  i=$((i+1)); sleep 0.1
done
echo "$res $(cat /tmp/err)"
"#;

/// Copies the shared libraries skiff links (per `ldd`) into the container at the same paths, as a
/// hostile glibc-based image would have them, so that skiff can start inside it.
fn plant_skiffs_libraries(env: &Env, ctr: &str) {
    let out = Command::new("ldd")
        .arg(common::bin())
        .output()
        .expect("ldd");
    let libs: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let path = l.split("=>").last()?.split_whitespace().next()?;
            path.starts_with('/').then(|| path.to_string())
        })
        .collect();
    assert!(!libs.is_empty(), "ldd found no libraries: {out:?}");
    let staging = env.home.path().join("libs");
    std::fs::create_dir_all(&staging).expect("staging dir");
    for lib in libs {
        let lib = Path::new(&lib);
        let (dir, name) = (lib.parent().expect("dir"), lib.file_name().expect("name"));
        let copy = staging.join(name);
        std::fs::write(&copy, std::fs::read(lib).expect("library")).expect("staging");
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let dir = dir.to_str().expect("path");
        env.ok(&["exec", ctr, "mkdir", "-p", dir]);
        env.ok(&["cp", copy.to_str().expect("path"), &format!("{ctr}:{dir}/")]);
    }
}

/// Tells the container that skiff has exited; returns its output once the write was tried.
fn rewrite_outcome(env: &Env, ctr: &str) -> String {
    env.ok(&["exec", ctr, "touch", "/gone"]);
    wait_for_log(env, ctr, "write: ")
}

/// Asserts that the victim file is unchanged and the container's write failed.
fn assert_intact(victim: &Path, before: &[u8], result: &str) {
    assert!(
        !result.contains("write: done"),
        "the container rewrote the skiff binary: {result}"
    );
    assert!(result.contains("write: denied"), "no outcome: {result}");
    assert!(
        std::fs::read(victim).expect("victim") == before,
        "the skiff binary changed: {result}"
    );
}

/// The container's watcher for the joining process (see the file's own comment).
const WATCHER: &str = include_str!("join_watcher.c");

/// How many `skiff exec`s the watcher gets to catch one before its execve.
const CATCH_TRIES: usize = 200;

/// CVE-2019-5736, first half: the process `skiff exec` puts into the container is still skiff
/// between its `setns` into the container's pid namespace and its execve. A static watcher in the
/// container (built on the host, bound in read-only) polls /proc for it, stops it there with
/// SIGSTOP (signals do not depend on dumpability), tries to open its `/proc/PID/exe`, lets it go
/// on, and once skiff has exited writes to the file through that handle. The test runs `skiff
/// exec` until the watcher has caught one, and requires that it did (else it proves nothing).
/// Non-dumpable from before the first setns, the joining process's exe cannot be opened
/// (rootless); and the file it runs from is a sealed copy (or, as root, a read-only bind) anyway.
#[test]
fn exec_cannot_be_used_to_rewrite_skiff_through_proc_pid_exe() {
    let env = Env::new();
    env.pull("busybox");
    let (victim, before) = victim(&env);
    let dir = env.home.path().join("watcher");
    std::fs::create_dir(&dir).expect("watcher dir");
    std::fs::write(dir.join("watcher.c"), WATCHER).expect("watcher source");
    let built = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(dir.join("watcher"))
        .arg(dir.join("watcher.c"))
        .status();
    // No skip: without the watcher the attack would not run and the test would prove nothing.
    assert!(
        built.is_ok_and(|s| s.success()),
        "building the container's watcher needs gcc and a static libc (apt-get install gcc libc6-dev)"
    );
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let bind = format!("{}:/h:ro", dir.display());
    let script = format!("{REWRITE}\nexec sleep 1000");
    // With CAP_SYS_PTRACE (as a debugging container has it) the container passes the ptrace
    // check's capability test, so only dumpability stands between it and the joining process.
    env.ok(&[
        "run",
        "-d",
        "--cap-add",
        "SYS_PTRACE",
        "-v",
        &bind,
        "--name",
        "v",
        &bb(),
        "/h/watcher",
        &script,
    ]);
    wait_for_log(&env, "v", "READY");
    let mut caught = None;
    for attempt in 1..=CATCH_TRIES {
        let out = cmd_as(&env, &victim, &["exec", "v", "true"])
            .output()
            .expect("running the victim");
        assert!(
            out.status.success(),
            "exec failed (attempt {attempt}): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let logs = env.run(&["logs", "v"]).stdout;
        if logs.contains("caught ") {
            caught = Some(attempt);
            break;
        }
    }
    let logs = env.run(&["logs", "v"]).stdout;
    let attempt = caught.unwrap_or_else(|| {
        panic!(
            "the watcher never caught the joining skiff before its execve in {CATCH_TRIES} tries: {logs}"
        )
    });
    eprintln!("caught the joining skiff on exec number {attempt}");
    let result = rewrite_outcome(&env, "v");
    eprintln!("the container's attempt: {result}");
    // Rootless, non-dumpable stops the open. Root's container with CAP_SYS_PTRACE holds it over
    // the host's user namespace too (there is no other), which overrides dumpability: there the
    // read-only bind alone stops the write.
    if !common::is_root() {
        assert!(
            result.contains("open: denied"),
            "the container opened /proc/PID/exe of the joining skiff: {result}"
        );
    }
    assert_intact(&victim, &before, &result);
}

/// CVE-2019-5736, the classic trick: the container plants a script whose interpreter is
/// `#!/proc/self/exe`, so `skiff exec` of it makes the kernel run the joining process's own
/// executable inside the container — dumpable again after that execve — and the container opens
/// its `/proc/PID/exe`. (The container brings the libraries skiff needs; the script's argument
/// makes that skiff wait on stdin, `login --password-stdin`, so the test holds it as long as it
/// needs.) The file it reaches must be skiff's sealed copy or
/// read-only bind, which cannot be written.
#[test]
fn exec_of_a_proc_self_exe_script_cannot_rewrite_skiff() {
    let env = Env::new();
    env.pull("busybox");
    let (victim, before) = victim(&env);
    let script = format!(
        r#"mkdir /index.docker.io; printf '#!/proc/self/exe login\n' > /index.docker.io/v1; chmod +x /index.docker.io/v1; echo READY
while :; do
  for d in /proc/[0-9]*; do
    if tr '\0' ' ' < $d/cmdline 2>/dev/null | grep -q '^/proc/self/exe login'; then pid=${{d#/proc/}}; break 2; fi
  done
  sleep 0.02
done
if (exec 8</proc/$pid/exe) 2>/tmp/err; then exec 8</proc/$pid/exe; echo "open: done $(readlink /proc/self/fd/8)"; else echo "open: denied $(cat /tmp/err)"; fi
{REWRITE}
exec sleep 1000"#
    );
    env.ok(&["run", "-d", "--name", "v", &bb(), "sh", "-c", &script]);
    wait_for_log(&env, "v", "READY");
    plant_skiffs_libraries(&env, "v");
    let mut child = cmd_as(
        &env,
        &victim,
        &[
            "exec",
            "-i",
            "-w",
            "/",
            "v",
            "index.docker.io/v1",
            "-u",
            "x",
            "--password-stdin",
        ],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("running the victim");
    let mut stdin = child.stdin.take().expect("stdin");
    let t = Instant::now();
    let opened = loop {
        let logs = env.run(&["logs", "v"]).stdout;
        if logs.contains("open: ") {
            break logs;
        }
        if child.try_wait().expect("victim").is_some() || t.elapsed() > Duration::from_secs(60) {
            drop(stdin);
            let out = child.wait_with_output().expect("victim");
            panic!(
                "the container never found the skiff it ran ({logs}): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = stdin.write_all(b"pw\n");
    drop(stdin);
    let out = child.wait_with_output().expect("victim");
    // That skiff ran in the container (and failed to reach a registry there): the trick worked.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        opened.contains("open: done"),
        "the planted script did not run skiff in the container ({opened}): {err}"
    );
    let result = rewrite_outcome(&env, "v");
    assert_intact(&victim, &before, &result);
}

/// Runs skiff with `args` on a new pty (its stdin, stdout, stderr and controlling terminal, as
/// in a user's shell) and returns what appeared on it.
fn on_a_terminal(env: &Env, args: &[&str]) -> String {
    const PTY: &str = r#"
import os, pty, select, sys
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
out = b""
while True:
    r, _, _ = select.select([fd], [], [], 90)
    if not r:
        break
    try:
        d = os.read(fd, 4096)
    except OSError:
        break
    if not d:
        break
    out += d
_, st = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
sys.stdout.write("\nEXIT=%d\n" % os.waitstatus_to_exitcode(st))
"#;
    let python = if Path::new("/usr/bin/python3").exists() {
        PathBuf::from("/usr/bin/python3")
    } else {
        PathBuf::from("python3")
    };
    let bin = common::bin();
    let mut all = vec!["-c", PTY, bin.to_str().expect("path")];
    all.extend_from_slice(args);
    let out = cmd_as(env, &python, &all)
        .output()
        .expect("python3 with pty");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What the container's command reports about its terminal: session, controlling tty, which of
/// its stdio fds are terminals, and whether /dev/tty opens.
const PROBE: &str = r#"set -- $(cat /proc/self/stat); echo "SID=$6 TTYNR=$7"; for f in 0 1 2; do [ -t $f ] && echo "TTYFD=$f"; done; if (exec 3</dev/tty) 2>/dev/null; then echo DEVTTY=yes; else echo DEVTTY=no; fi; echo PROBE-DONE"#;

/// Asserts that the probe ran and found no terminal of the caller's.
fn assert_no_terminal(what: &str, out: &str) {
    assert!(
        out.contains("PROBE-DONE"),
        "{what}: the probe did not run: {out}"
    );
    let sid = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("SID="))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("{what}: no SID line: {out}"));
    assert!(
        out.contains("TTYNR=0"),
        "{what}: the command has the caller's terminal as its controlling tty: {out}"
    );
    assert_ne!(
        sid, "0",
        "{what}: the command is still in the caller's session (its leader is outside): {out}"
    );
    assert!(
        !out.contains("TTYFD="),
        "{what}: the command holds a terminal fd of the caller's: {out}"
    );
    assert!(
        out.contains("DEVTTY=no"),
        "{what}: /dev/tty opened the caller's terminal: {out}"
    );
}

/// `exec` without `-t` from a terminal (item 2): TIOCSTI, and any ioctl on the caller's
/// terminal, needs the command to hold it or have it as its controlling terminal. It must get
/// neither — its own session and pipes relayed by skiff — with or without `-i`; so must
/// `run -i`, `start -a` (the monitor's pipes) and an `exec -d`. The properties are checked
/// directly, so the test fails without the fix even where dev.tty.legacy_tiocsti=0.
#[test]
fn without_t_no_caller_terminal_reaches_the_container() {
    let env = Env::new();
    env.pull("busybox");
    let image = bb();
    env.ok(&["run", "-d", "--name", "t", &image, "sleep", "1000"]);
    for (what, args) in [
        ("exec", vec!["exec", "t", "sh", "-c", PROBE]),
        ("exec -i", vec!["exec", "-i", "t", "sh", "-c", PROBE]),
        (
            "run -i",
            vec!["run", "--rm", "-i", image.as_str(), "sh", "-c", PROBE],
        ),
    ] {
        let out = on_a_terminal(&env, &args);
        assert!(out.contains("EXIT=0"), "{what} failed: {out}");
        assert_no_terminal(what, &out);
    }
    env.ok(&["create", "--name", "s", &image, "sh", "-c", PROBE]);
    let out = on_a_terminal(&env, &["start", "-a", "s"]);
    assert_no_terminal("start -a", &out);

    // Output and exit code still come through the relay; -t still gets a terminal.
    let out = on_a_terminal(&env, &["exec", "t", "sh", "-c", "echo relayed; exit 3"]);
    assert!(out.contains("relayed") && out.contains("EXIT=3"), "{out}");
    let out = on_a_terminal(&env, &["exec", "-t", "t", "sh", "-c", PROBE]);
    assert!(
        out.contains("TTYFD=1") && out.contains("DEVTTY=yes"),
        "-t should give the command its own terminal: {out}"
    );
}

/// Only stdin, stdout and stderr reach an exec'd command: an fd left open by whoever started
/// skiff (a terminal, a host file) is not inherited.
#[test]
fn exec_passes_no_inherited_fd_into_the_container() {
    let env = Env::new();
    env.pull("busybox");
    env.ok(&["run", "-d", "--name", "f", &bb(), "sleep", "1000"]);
    let host_file = env.home.path().join("host-secret");
    std::fs::write(&host_file, "secret").expect("host file");
    // A shell opens fd 7 on a host file without close-on-exec, then runs skiff exec.
    let sh = format!(
        "exec 7<'{}'; exec \"$0\" \"$@\"",
        host_file.to_str().expect("path")
    );
    let bin = common::bin();
    let out = cmd_as(
        &env,
        Path::new("/bin/sh"),
        &[
            "-c",
            &sh,
            bin.to_str().expect("path"),
            "exec",
            "f",
            "sh",
            "-c",
            "ls /proc/self/fd; cat <&7 && echo LEAKED",
        ],
    )
    .output()
    .expect("sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("LEAKED") && !stdout.contains("secret"),
        "the command read the host file through an inherited fd: {stdout}"
    );
    assert!(
        !stdout.split_whitespace().any(|f| f == "7"),
        "fd 7 reached the container: {stdout}"
    );
}
