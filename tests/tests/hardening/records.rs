//! The store and container records against other local users, deep trees and damage.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use super::common::*;

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .mode()
        & 0o7777
}

/// Runs `argv` as another local user than the store's owner: `skiff-nosub` when the test runs
/// as root; when rootless, container uid 1000 of the user's own mapped namespace (a host uid of
/// the subuid range, so a different user to the kernel). Returns whether it succeeded.
fn as_other_user(env: &Env, argv: &[&str]) -> bool {
    if is_root() {
        Command::new("runuser")
            .args(["-u", "skiff-nosub", "--"])
            .args(argv)
            .current_dir("/")
            .status()
            .expect("runuser")
            .success()
    } else {
        let mut args = vec![
            "unshare",
            "setpriv",
            "--reuid=1000",
            "--regid=1000",
            "--clear-groups",
        ];
        args.extend(argv);
        env.run(&args).code == 0
    }
}

/// Runs skiff with at most 256 open files (RLIMIT_NOFILE), inherited by its helpers and monitor.
fn run_limited(env: &Env, args: &[&str]) -> Run {
    let mut cmd = env.cmd(args);
    // SAFETY: between fork and exec only setrlimit, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 256,
                rlim_max: 256,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let r: Run = cmd.output().expect("running skiff").into();
    assert_eq!(
        r.code, 0,
        "skiff {args:?} with 256 fds failed: {}{}",
        r.stdout, r.stderr
    );
    r
}

/// A shell line that makes a tree `depth` directories deep under /tmp/deep, one level at a time
/// (no path is ever longer than a name), with a file at the bottom.
fn deep_tree(depth: u32) -> String {
    format!(
        "mkdir /tmp/deep && cd /tmp/deep && i=0; while [ $i -lt {depth} ]; do mkdir d && cd d || exit 1; i=$((i+1)); done; echo bottom > leaf"
    )
}

fn id_of(env: &Env, name: &str) -> String {
    env.ok(&["inspect", "--type", "container", "-f", "{{.Id}}", name])
        .stdout
        .trim()
        .to_string()
}

fn no_tombs(env: &Env, sub: &str) {
    let left: Vec<String> = env
        .entries(sub)
        .into_iter()
        .filter(|n| n.starts_with(".rm-"))
        .collect();
    assert!(left.is_empty(), "{sub}: removals left behind: {left:?}");
}

#[test]
fn another_user_cannot_reach_setuid_files_of_the_store() {
    let env = Env::new();
    // A home as Debian makes them (0755), and skiff dirs a former version left open: only
    // skiff's own modes stand between another user and the layers.
    chmod(env.home.path(), 0o755);
    for d in ["data/skiff", "cache/skiff"] {
        std::fs::create_dir_all(env.home.path().join(d)).unwrap();
    }
    for d in ["data", "data/skiff", "cache", "cache/skiff"] {
        chmod(&env.home.path().join(d), 0o755);
    }
    let first = env.pull("layers");
    assert!(
        first.stderr.contains("was open to other users") && first.stderr.contains("0755"),
        "tightening an open dir should say so: {}",
        first.stderr
    );
    assert_eq!(
        first.stderr.matches("was open to other users").count(),
        2,
        "one note per dir tightened (data, cache): {}",
        first.stderr
    );
    let again = env.ok(&["images"]);
    assert!(
        !again.stderr.contains("open to other users"),
        "the note comes once: {}",
        again.stderr
    );
    for d in ["data/skiff", "cache/skiff", "run/skiff"] {
        assert_eq!(mode(&env.home.path().join(d)), 0o700, "{d}");
    }

    let image = format!("{REGISTRY}/layers");
    let suid = env
        .layer_dirs(&image)
        .into_iter()
        .map(|l| l.join("bin-suid"))
        .find(|p| p.exists())
        .expect("the layers fixture has /bin-suid");
    assert_eq!(
        mode(&suid) & 0o4000,
        0o4000,
        "the layer keeps the setuid bit"
    );
    let suid = suid.to_string_lossy().into_owned();
    let home = env.home.path().join("data").to_string_lossy().into_owned();
    // The attack is real: the other user reaches everything up to skiff's dir...
    assert!(
        as_other_user(&env, &["test", "-d", &home]),
        "the other user should reach {home} (else this test proves nothing)"
    );
    // ...and neither finds nor runs the setuid file below it.
    assert!(
        !as_other_user(&env, &["test", "-e", &suid]),
        "another user can see {suid}"
    );
    assert!(
        !as_other_user(&env, &[&suid]),
        "another user can run {suid}"
    );

    // Containers still work behind the 0700 dir: a mapped user writing to a named volume, the
    // image's files, and --rm clean-up.
    env.ok(&[
        "run",
        "--rm",
        "-v",
        "vol:/data",
        &bb(),
        "sh",
        "-c",
        "mkdir /data/u && chown 1000:1000 /data/u",
    ]);
    let out = env.ok(&[
        "run",
        "--rm",
        "-u",
        "1000",
        "-v",
        "vol:/data",
        &bb(),
        "sh",
        "-c",
        "echo hi > /data/u/f && cat /data/u/f",
    ]);
    assert_eq!(out.stdout, "hi\n");
    let out = env.ok(&["run", "--rm", "-u", "1000", &image, "cat", "/etc/motd"]);
    assert_eq!(out.stdout, "upper motd\n");
    assert!(
        env.containers().is_empty(),
        "--rm left {:?}",
        env.containers()
    );
}

#[test]
fn deep_trees_are_removed_with_few_fds() {
    let env = Env::new();
    env.pull("busybox");
    let deep = deep_tree(1200);
    // -u 1000: the files belong to a mapped id when rootless, so removal runs in the user
    // namespace (`__rmtree`), which inherits the limit too.
    let deep_run = |name: &str, depth: u32| {
        env.ok(&[
            "run",
            "--name",
            name,
            "-u",
            "1000",
            &bb(),
            "sh",
            "-c",
            &deep_tree(depth),
        ]);
    };
    deep_run("d-prune", 1200);
    deep_run("d-rm", 1200);

    let id = id_of(&env, "d-rm");
    run_limited(&env, &["rm", "d-rm"]);
    assert!(!env.containers().contains(&id), "rm left {id}");

    let id = id_of(&env, "d-prune");
    let r = run_limited(&env, &["container", "prune", "-f"]);
    assert!(r.stdout.contains(&id), "{}", r.stdout);
    assert!(
        env.containers().is_empty(),
        "prune left {:?}",
        env.containers()
    );

    // --rm: the monitor removes it.
    run_limited(
        &env,
        &["run", "--rm", "-u", "1000", &bb(), "sh", "-c", &deep],
    );
    assert!(
        env.containers().is_empty(),
        "--rm left {:?}",
        env.containers()
    );

    // A committed image of a deep tree: its layer goes with rmi; system prune takes the deep
    // container it came from.
    env.ok(&[
        "run",
        "--name",
        "d-commit",
        "-u",
        "1000",
        &bb(),
        "sh",
        "-c",
        &deep,
    ]);
    env.ok(&["commit", "d-commit", "deepimg"]);
    let layer = env.layer_dirs("deepimg").pop().expect("a layer");
    assert!(layer.join("tmp/deep/d").exists());
    let out = env.ok(&[
        "run",
        "--rm",
        "deepimg",
        "sh",
        "-c",
        "cd /tmp/deep && i=0; while [ -d d ]; do cd d; i=$((i+1)); done; echo $i; cat leaf",
    ]);
    assert_eq!(out.stdout, "1200\nbottom\n");
    run_limited(&env, &["system", "prune", "-f"]);
    assert!(
        env.containers().is_empty(),
        "system prune left {:?}",
        env.containers()
    );
    run_limited(&env, &["rmi", "deepimg"]);
    assert!(!layer.exists(), "rmi left {}", layer.display());
    no_tombs(&env, "layers");
    no_tombs(&env, "containers");
}

#[test]
fn an_interrupted_removal_is_finished_by_the_next_command() {
    let env = Env::new();
    env.pull("busybox");
    // A container whose files belong to a mapped id when rootless, removed half-way: renamed to
    // its tomb and left there, as a killed `rm` leaves it.
    env.ok(&[
        "run",
        "--name",
        "half",
        "-u",
        "1000",
        &bb(),
        "sh",
        "-c",
        &deep_tree(300),
    ]);
    let id = id_of(&env, "half");
    let data = env.data();
    std::fs::rename(
        data.join("containers").join(&id),
        data.join("containers").join(format!(".rm-{id}")),
    )
    .unwrap();
    // A volume and a layer left half-removed, by hand.
    for tomb in ["volumes/.rm-gone/a/b/c", "layers/.rm-0123abcd/x/y"] {
        std::fs::create_dir_all(data.join(tomb)).unwrap();
        std::fs::write(data.join(tomb).join("f"), b"x").unwrap();
    }
    let ps = env.ok(&["ps", "-a"]);
    assert!(!ps.stdout.contains("half"), "{}", ps.stdout);
    no_tombs(&env, "containers");
    no_tombs(&env, "volumes");
    env.ok(&["image", "prune", "-f"]);
    no_tombs(&env, "layers");
}

/// Writes the damage `kind` into `file` of container `id`.
fn damage(env: &Env, id: &str, file: &str, kind: &str) {
    let p = env.data().join("containers").join(id).join(file);
    let whole = std::fs::read(&p).unwrap();
    match kind {
        "empty" => std::fs::write(&p, b"").unwrap(),
        "truncated" => std::fs::write(&p, &whole[..whole.len() / 2]).unwrap(),
        "garbage" => std::fs::write(&p, b"\x00\x01garbage}{").unwrap(),
        _ => std::fs::remove_file(&p).unwrap(),
    }
}

#[test]
fn damaged_records_are_shown_inspected_and_removed() {
    let env = Env::new();
    env.pull("busybox");
    let kinds = [
        ("empty", "is empty"),
        ("truncated", "is truncated"),
        ("garbage", "is not valid JSON"),
        ("missing", "is missing"),
    ];
    // name, id, the file, what ps and inspect must say, whether the name can still be known
    let mut all = Vec::new();
    for file in ["state.json", "config.json"] {
        for (kind, says) in kinds {
            let name = format!("{}-{kind}", &file[..file.len() - 5]);
            env.ok(&["create", "--name", &name, &bb(), "true"]);
            let id = id_of(&env, &name);
            damage(&env, &id, file, kind);
            let named = file == "state.json" || kind == "truncated";
            all.push((name, id, format!("{file} {says}"), named));
        }
    }
    let ps = env.ok(&["ps", "-a", "--no-trunc"]).stdout;
    for (name, id, what, named) in &all {
        let line = ps
            .lines()
            .find(|l| l.starts_with(id.as_str()))
            .unwrap_or_else(|| panic!("{name} vanished from ps -a:\n{ps}"));
        assert!(line.contains(&format!("Damaged ({what}")), "{line}");
        assert_eq!(line.contains(name.as_str()), *named, "{line}");
    }
    let q = env.ok(&["ps", "-aq"]).stdout;
    for (name, id, ..) in &all {
        assert!(q.contains(&id[..12]), "{name} missing from ps -aq: {q}");
    }
    assert!(
        !env.ok(&["ps"]).stdout.contains("Damaged"),
        "ps without -a lists only running ones"
    );
    for (name, id, what, named) in &all {
        let key = if *named { name.as_str() } else { &id[..12] };
        let r = env.fails(&["inspect", key], "is damaged");
        assert!(r.stderr.contains(what.as_str()), "{}", r.stderr);
        assert!(r.stderr.contains("skiff rm -f"), "{}", r.stderr);
    }
    // The name of a damaged container is still taken.
    env.fails(
        &["create", "--name", "state-empty", &bb(), "true"],
        "in use",
    );

    // rm -f by name or id for half of them, container prune for the rest.
    for (name, id, _, named) in all.iter().step_by(2) {
        let key = if *named { name.as_str() } else { id.as_str() };
        env.ok(&["rm", "-f", key]);
        assert!(!env.containers().contains(id), "rm -f {key} left it");
    }
    let pruned = env.ok(&["container", "prune", "-f"]).stdout;
    for (name, id, ..) in all.iter().skip(1).step_by(2) {
        assert!(pruned.contains(id.as_str()), "prune kept {name}: {pruned}");
    }
    assert!(env.containers().is_empty(), "left {:?}", env.containers());
    no_tombs(&env, "containers");
}

#[test]
fn a_damaged_running_container_is_kept_by_prune_and_killed_by_rm_f() {
    let env = Env::new();
    env.pull("busybox");
    env.ok(&["run", "-d", "--name", "live", &bb(), "sleep", "300"]);
    let id = id_of(&env, "live");
    let pid = env
        .ok(&["inspect", "-f", "{{.State.Pid}}", "live"])
        .stdout
        .trim()
        .to_string();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    damage(&env, &id, "state.json", "garbage");
    let ps = env.ok(&["ps", "-a"]).stdout;
    assert!(ps.contains("Damaged (state.json is not valid JSON"), "{ps}");
    // Its monitor lives, so it may run: prune keeps it and rm wants -f.
    let pruned = env.ok(&["container", "prune", "-f"]).stdout;
    assert!(!pruned.contains(&id), "{pruned}");
    assert!(env.containers().contains(&id));
    let r = env.run(&["rm", "live"]);
    assert_eq!(r.code, 2, "rm without -f: {}{}", r.stdout, r.stderr);
    env.ok(&["rm", "-f", "live"]);
    assert!(!env.containers().contains(&id));
    let t = std::time::Instant::now();
    while Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')))
    {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(10),
            "the container's process {pid} outlived rm -f"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn a_damaged_record_keeps_its_volumes() {
    let env = Env::new();
    env.pull("busybox");
    env.ok(&["run", "--name", "v1", "-v", "keep1:/data", &bb(), "true"]);
    env.ok(&["run", "--name", "v2", "-v", "keep2:/data", &bb(), "true"]);
    damage(&env, &id_of(&env, "v1"), "state.json", "garbage");
    // v2's config cut just after the volume's path: what is left still names it.
    let cfg = env
        .data()
        .join("containers")
        .join(id_of(&env, "v2"))
        .join("config.json");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let source = format!("{:?}", env.data().join("volumes/keep2").to_string_lossy());
    let cut = text.find(&source).expect("the volume in config.json") + source.len();
    std::fs::write(&cfg, &text[..cut]).unwrap();
    for v in ["keep1", "keep2"] {
        env.fails(&["volume", "rm", v], "in use");
    }
    env.ok(&["volume", "prune", "-a", "-f"]);
    let ls = env.ok(&["volume", "ls", "-q"]).stdout;
    assert!(ls.contains("keep1") && ls.contains("keep2"), "{ls}");
    env.ok(&["rm", "-f", "v1", "v2"]);
    env.ok(&["volume", "rm", "keep1", "keep2"]);
}
