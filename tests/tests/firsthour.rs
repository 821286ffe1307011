//! A Docker user's first hour: usage errors, habits that tripped, and the verbs users reach for first.

mod common;

use common::Env;

/// A usage error is one `Error:` line and exit 125, as Docker and podman, not clap's several
/// lines and exit 2; it names what was wrong and the help to read.
#[test]
fn usage_errors_are_one_line_and_125() {
    let env = Env::new();
    for (args, needle) in [
        (&["run", "--bogus", "busybox"][..], "'--bogus'"),
        (&["run"][..], "<IMAGE>"),
        (&["ps", "--forma", "json"][..], "did you mean \"--format\""),
        (&["stop", "-t", "soon", "x"][..], "'soon'"),
        (&["imagse"][..], "\"images\""),
        (
            &["container", "ls", "--bogus"][..],
            "skiff container ls --help",
        ),
    ] {
        let r = env.fails(args, needle);
        assert_eq!(
            r.stderr.lines().count(),
            1,
            "{args:?}: one line only: {}",
            r.stderr
        );
        assert!(r.stdout.is_empty(), "{args:?}: nothing on stdout");
    }
}

/// A Docker command skiff lacks is named as such, with the nearest skiff command.
#[test]
fn missing_docker_commands_name_the_nearest_one() {
    let env = Env::new();
    // `attach` exists now: a missing container is the error, not the command.
    env.fails(&["container", "attach", "web"], "web");
    env.fails(&["build", "."], "skiff load");
}

/// `--help` and `--version` still print normally and exit 0; only the top level has --version.
#[test]
fn help_and_version_exit_zero() {
    let env = Env::new();
    let v = env.ok(&["--version"]);
    assert!(v.stdout.starts_with("skiff "), "{}", v.stdout);
    let h = env.ok(&["run", "--help"]);
    assert!(h.stdout.contains("Usage: skiff run"), "{}", h.stdout);
    let h = env.ok(&["help", "ps"]);
    assert!(h.stdout.contains("Usage: skiff ps"), "{}", h.stdout);
    // No stray -V on every subcommand.
    env.fails(&["run", "-V"], "'-V'");
    assert!(!h.stdout.contains("--version"), "ps --help lists --version");
}

/// `(start, end)` pairs of every range in `/etc/subuid` and `/etc/subgid`.
fn existing_ranges() -> Vec<(u64, u64)> {
    ["/etc/subuid", "/etc/subgid"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .flat_map(|t| {
            t.lines()
                .filter_map(|l| {
                    let f: Vec<&str> = l.trim().split(':').collect();
                    let s: u64 = f.get(1)?.parse().ok()?;
                    let n: u64 = f.get(2)?.parse().ok()?;
                    Some((s, s + n))
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The hint for a user without a subordinate range proposes one that overlaps no range already
/// in /etc/subuid or /etc/subgid (the old hint, 100000-165535, was exactly the range the first
/// user gets, so following it gave two users the same host ids).
#[test]
fn subuid_hint_proposes_a_free_range() {
    if !common::is_root() {
        println!("skipped: needs root to run skiff as skiff-nosub, the user without a range");
        return;
    }
    let env = Env::new();
    std::fs::create_dir_all(env.home.path().join("nosub")).expect("home");
    let home = env.home.path().join("nosub");
    std::process::Command::new("chown")
        .args(["-R", "skiff-nosub:", &home.to_string_lossy()])
        .status()
        .expect("chown");
    // The temp home is 0700 root: let the other user reach its own dir inside it.
    std::process::Command::new("chmod")
        .args(["a+x", &env.home.path().to_string_lossy()])
        .status()
        .expect("chmod");
    let out = std::process::Command::new("runuser")
        .args(["-u", "skiff-nosub", "--", "env", "-i"])
        .arg(format!("HOME={}", home.display()))
        .arg("PATH=/usr/bin:/bin")
        .arg(common::bin())
        .args(["info", "--format", "json"])
        .current_dir("/tmp")
        .output()
        .expect("runuser");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "info as skiff-nosub: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&text).expect("info json");
    let hint = v["Host"]["IdMappings"]
        .as_str()
        .expect("a hint, not a mapping")
        .to_string();
    let range = hint
        .split_whitespace()
        .skip_while(|w| *w != "--add-subuids")
        .nth(1)
        .expect("a proposed range");
    let (a, b) = range.split_once('-').expect("start-end");
    let (a, b): (u64, u64) = (a.parse().expect("start"), b.parse().expect("end"));
    assert_eq!(b - a + 1, 65536, "{hint}");
    for (s, e) in existing_ranges() {
        assert!(
            b < s || a >= e,
            "proposed {a}-{b} overlaps the existing range {s}..{e}: {hint}"
        );
    }
    assert!(hint.ends_with("skiff-nosub)"), "names the user: {hint}");
}

/// `skiff completion bash` loads in bash and registers a completion for skiff; zsh and fish get
/// scripts of their own.
#[test]
fn completions_load_in_bash() {
    let env = Env::new();
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source <({:?} completion bash) && complete -p skiff",
            common::bin()
        ))
        .output()
        .expect("bash");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("_skiff skiff"),
        "bash did not register skiff's completion: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let zsh = env.ok(&["completion", "zsh"]);
    assert!(zsh.stdout.starts_with("#compdef skiff"), "{}", zsh.stdout);
    let fish = env.ok(&["completion", "fish"]);
    assert!(fish.stdout.contains("complete -c skiff"), "{}", fish.stdout);
    env.fails(&["completion", "tcsh"], "'tcsh'");
}

/// Man pages for skiff and each command (what `cargo xtask man DIR` has skiff write), and
/// examples in the main commands' `--help`.
#[test]
fn man_pages_and_help_examples() {
    let env = Env::new();
    let dir = env.home.path().join("man");
    env.ok(&["__man", &dir.to_string_lossy()]);
    for page in [
        "skiff.1",
        "skiff-run.1",
        "skiff-ps.1",
        "skiff-container-ls.1",
    ] {
        let text = std::fs::read_to_string(dir.join(page)).unwrap_or_default();
        assert!(text.contains(".TH"), "{page} is not a man page");
    }
    for cmd in ["run", "ps", "exec", "pull", "images", "logs"] {
        let h = env.ok(&[cmd, "--help"]);
        assert!(
            h.stdout.contains("Examples:") && h.stdout.contains(&format!("skiff {cmd} ")),
            "skiff {cmd} --help has no examples: {}",
            h.stdout
        );
    }
}

/// `run -d --rm` then `stop` or `rm -f`: the `--rm` monitor removes the container while they
/// wait for it to end; a container that goes away meanwhile is stopped/removed, so both succeed
/// (they used to fail reading its config.json, exit 125).
#[test]
fn stop_and_rm_f_of_an_rm_container_succeed() {
    let env = Env::new();
    env.pull("busybox");
    let image = format!("{}/busybox", common::REGISTRY);
    // PID 1 ignores SIGTERM (no handler), so stop waits its timeout and kills.
    env.ok(&[
        "run", "-d", "--rm", "--name", "gone1", &image, "sleep", "60",
    ]);
    let r = env.ok(&["stop", "-t", "1", "gone1"]);
    assert_eq!(r.stdout, "gone1\n");
    env.ok(&[
        "run", "-d", "--rm", "--name", "gone2", &image, "sleep", "60",
    ]);
    let r = env.ok(&["rm", "-f", "gone2"]);
    assert_eq!(r.stdout, "gone2\n");
    assert!(
        env.ok(&["ps", "-aq"]).stdout.is_empty(),
        "both are gone, with no record left"
    );
    assert!(
        env.containers().is_empty(),
        "no leftover directory: {:?}",
        env.containers()
    );
}

/// `--rm` holds when the start fails early: with skiff-monitor missing (no monitor ever runs),
/// and, rootless, with newuidmap missing (the monitor cannot map the container's ids). No
/// `Created` or `Exited (125)` record stays.
#[test]
fn rm_is_honoured_when_the_start_fails_early() {
    let env = Env::new();
    env.pull("busybox");
    let image = format!("{}/busybox", common::REGISTRY);
    // A skiff with no skiff-monitor beside it.
    let lone = env.home.path().join("lone");
    std::fs::create_dir_all(&lone).expect("dir");
    std::fs::copy(common::bin(), lone.join("skiff")).expect("copy skiff");
    for detach in [false, true] {
        let mut args = vec!["run", "--rm"];
        if detach {
            args.push("-d");
        }
        args.extend([image.as_str(), "true"]);
        // The harness's environment for this test, with the lone copy as the program.
        let harness = env.cmd(&[]);
        let r: common::Run = std::process::Command::new(lone.join("skiff"))
            .args(&args)
            .env_clear()
            .envs(harness.get_envs().filter_map(|(k, v)| Some((k, v?))))
            .stdin(std::process::Stdio::null())
            .output()
            .expect("lone skiff")
            .into();
        assert_eq!(r.code, 125, "{args:?}: {r:?}");
        assert!(r.stderr.contains("skiff-monitor"), "{r:?}");
        assert!(
            env.ok(&["ps", "-aq"]).stdout.is_empty(),
            "{args:?} left a record: {}",
            env.ok(&["ps", "-a"]).stdout
        );
    }
    if common::is_root() {
        println!("newuidmap part skipped: root maps no ids");
        return;
    }
    // PATH without newuidmap/newgidmap: the monitor fails mapping the ids.
    for detach in [false, true] {
        let mut args = vec!["run", "--rm"];
        if detach {
            args.push("-d");
        }
        args.extend([image.as_str(), "true"]);
        let r: common::Run = env
            .cmd(&args)
            .env("PATH", env.home.path())
            .output()
            .expect("run")
            .into();
        assert_eq!(r.code, 125, "{args:?}: {r:?}");
        assert!(r.stderr.contains("newuidmap"), "{r:?}");
        assert!(
            env.ok(&["ps", "-aq"]).stdout.is_empty(),
            "{args:?} left a record: {}",
            env.ok(&["ps", "-a"]).stdout
        );
    }
}

/// The names and contents of a tar archive's regular files.
fn tar_files(bytes: &[u8]) -> Vec<(String, String)> {
    let dir = tempfile::tempdir().expect("tmp");
    let tarfile = dir.path().join("a.tar");
    std::fs::write(&tarfile, bytes).expect("write");
    let x = dir.path().join("x");
    std::fs::create_dir(&x).expect("x");
    let st = std::process::Command::new("tar")
        .args([
            "-xf",
            &tarfile.to_string_lossy(),
            "-C",
            &x.to_string_lossy(),
        ])
        .status()
        .expect("tar");
    assert!(st.success(), "not a tar archive");
    let mut out = Vec::new();
    let mut todo = vec![x.clone()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let rel = p
                    .strip_prefix(&x)
                    .expect("rel")
                    .to_string_lossy()
                    .into_owned();
                out.push((rel, std::fs::read_to_string(&p).unwrap_or_default()));
            }
        }
    }
    out.sort();
    out
}

/// `skiff cp CTR:PATH -` writes a tar stream to stdout and `skiff cp - CTR:DIR` unpacks one from
/// stdin, for a running and for a stopped container; no file named `-` appears.
#[test]
fn cp_dash_is_a_tar_stream() {
    let env = Env::new();
    env.pull("busybox");
    let image = format!("{}/busybox", common::REGISTRY);
    let cwd = env.home.path().join("cwd");
    std::fs::create_dir_all(&cwd).expect("cwd");
    env.ok(&[
        "run",
        "-d",
        "--name",
        "box",
        &image,
        "sh",
        "-c",
        "echo hi > /tmp/f; sleep 60",
    ]);
    for running in [true, false] {
        if !running {
            env.ok(&["stop", "-t", "0", "box"]);
        }
        let out = env
            .cmd(&["cp", "box:/tmp/f", "-"])
            .current_dir(&cwd)
            .output()
            .expect("cp out");
        assert!(
            out.status.success(),
            "cp out: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!cwd.join("-").exists(), "cp wrote a file named -");
        assert_eq!(
            tar_files(&out.stdout),
            [("f".to_string(), "hi\n".to_string())]
        );
        // And back in, from a tar on stdin, into a directory.
        let src = env.home.path().join(format!("src{running}"));
        std::fs::create_dir_all(src.join("d")).expect("src");
        std::fs::write(src.join("d/g"), format!("in-{running}\n")).expect("g");
        let tar = std::process::Command::new("tar")
            .args(["-cf", "-", "-C", &src.to_string_lossy(), "d"])
            .output()
            .expect("tar")
            .stdout;
        let mut child = env
            .cmd(&["cp", "-", "box:/tmp"])
            .current_dir(&cwd)
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("cp in");
        std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), &tar).expect("send");
        let done = child.wait_with_output().expect("cp in");
        assert!(
            done.status.success(),
            "cp in: {}",
            String::from_utf8_lossy(&done.stderr)
        );
        let back = env
            .cmd(&["cp", "box:/tmp/d/g", "-"])
            .output()
            .expect("cp out");
        assert_eq!(
            tar_files(&back.stdout),
            [("g".to_string(), format!("in-{running}\n"))]
        );
    }
    // A stream goes into a directory, not onto a file.
    let mut child = env
        .cmd(&["cp", "-", "box:/tmp/f"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("cp in");
    drop(child.stdin.take());
    let r: common::Run = child.wait_with_output().expect("cp").into();
    assert_eq!(r.code, 125, "{r:?}");
}

/// Templates print lists and maps as Docker (Go) does, `{{.Label "k"}}` works in `ps`, an
/// unknown field is named instead of dumping internal values, and `--format json` is one object
/// per line for both `ps` and `images`.
#[test]
fn formats_print_as_docker() {
    let env = Env::new();
    env.pull("busybox");
    let image = format!("{}/busybox", common::REGISTRY);
    env.ok(&[
        "create", "--name", "fmt", "-l", "app=web", "-e", "A=1", &image, "echo", "a", "b",
    ]);
    let cmd = env.ok(&["inspect", "-f", "{{.Config.Cmd}}", "fmt"]).stdout;
    assert_eq!(cmd, "[echo a b]\n");
    let labels = env
        .ok(&["inspect", "-f", "{{.Config.Labels}}", "fmt"])
        .stdout;
    assert_eq!(labels, "map[app:web]\n");
    // Binds exists now (an empty list here); a field Docker does not have is still refused.
    let binds = env
        .ok(&["inspect", "-f", "{{.HostConfig.Binds}}", "fmt"])
        .stdout;
    assert_eq!(binds, "[]\n");
    let r = env.fails(
        &["inspect", "-f", "{{.HostConfig.NoSuchField}}", "fmt"],
        "\"NoSuchField\"",
    );
    assert!(
        !r.stderr.contains("Number(") && !r.stderr.contains("PidsLimit"),
        "internal values dumped: {}",
        r.stderr
    );
    let app = env.ok(&["ps", "-a", "--format", r#"{{.Names}} {{.Label "app"}}"#]);
    assert_eq!(app.stdout, "fmt web\n");
    for cmd in [
        &["ps", "-a", "--format", "json"][..],
        &["images", "--format", "json"],
    ] {
        let out = env.ok(cmd).stdout;
        assert_eq!(
            out.lines().count(),
            1,
            "{cmd:?}: one line per object: {out}"
        );
        let v: serde_json::Value = serde_json::from_str(out.trim()).expect("json line");
        assert!(
            v.is_object(),
            "{cmd:?}: an object per line, not an array: {out}"
        );
    }
}

/// `run -it` with stdin that is not a terminal is refused with Docker's words before any
/// container exists (skiff's own errors exit 125); `-i` alone and `-dit` still work.
#[test]
fn run_it_without_a_terminal_is_refused() {
    let env = Env::new();
    env.pull("busybox");
    let image = format!("{}/busybox", common::REGISTRY);
    let r = env.fails(
        &["run", "-it", "--rm", &image, "echo", "hi"],
        "the input device is not a TTY",
    );
    assert!(r.stdout.is_empty(), "{r:?}");
    assert!(env.containers().is_empty(), "nothing was created");
    assert_eq!(
        env.ok(&["run", "-i", "--rm", &image, "echo", "hi"]).stdout,
        "hi\n"
    );
    env.ok(&["run", "-dit", "--name", "bg", &image, "sh"]);
    env.ok(&["rm", "-f", "bg"]);
}

/// `exec -t` sets TERM=xterm, as `run -t` does and Docker does, so `top` and `clear` work; an
/// `-e TERM=…` of the user's wins, and without -t there is none.
#[test]
fn exec_t_sets_term() {
    let env = Env::new();
    env.pull("busybox");
    let image = format!("{}/busybox", common::REGISTRY);
    env.ok(&["run", "-d", "--name", "box", &image, "sleep", "60"]);
    let r = env.ok(&["exec", "-t", "box", "sh", "-c", "echo term=$TERM"]);
    assert_eq!(r.stdout.trim_end(), "term=xterm", "{r:?}");
    let r = env.ok(&[
        "exec",
        "-t",
        "-e",
        "TERM=vt100",
        "box",
        "sh",
        "-c",
        "echo term=$TERM",
    ]);
    assert_eq!(r.stdout.trim_end(), "term=vt100", "{r:?}");
    let r = env.ok(&["exec", "box", "sh", "-c", "echo term=$TERM"]);
    assert_eq!(r.stdout, "term=\n", "{r:?}");
}

/// `--env-file` values keep their trailing blanks, as Docker passes them (for run and exec),
/// and `-e HOSTNAME=x` wins over the generated hostname in the environment.
#[test]
fn env_file_values_and_hostname_are_as_given() {
    let env = Env::new();
    env.pull("busybox");
    let image = format!("{}/busybox", common::REGISTRY);
    let f = env.home.path().join("app.env");
    std::fs::write(&f, "  A=x  \n# c\nB= y\t\n\n").expect("env file");
    let f = f.to_string_lossy().into_owned();
    let r = env.ok(&[
        "run",
        "--rm",
        "--env-file",
        &f,
        &image,
        "sh",
        "-c",
        "printf '[%s][%s]' \"$A\" \"$B\"",
    ]);
    assert_eq!(r.stdout, "[x  ][ y\t]");
    let r = env.ok(&[
        "run",
        "--rm",
        "-e",
        "HOSTNAME=mine",
        &image,
        "sh",
        "-c",
        "echo $HOSTNAME",
    ]);
    assert_eq!(r.stdout, "mine\n");
    env.ok(&["run", "-d", "--name", "box", &image, "sleep", "60"]);
    let r = env.ok(&[
        "exec",
        "--env-file",
        &f,
        "box",
        "sh",
        "-c",
        "printf '[%s][%s]' \"$A\" \"$B\"",
    ]);
    assert_eq!(r.stdout, "[x  ][ y\t]");
}

/// The README's install steps: `cargo install --path cli` installs both binaries side by side,
/// the installed skiff runs a container, and its bash completion loads. Kept fast: `--debug`
/// and `--offline --locked` against the workspace's own target dir, so nothing is rebuilt when
/// the suite's build is current. It runs cargo without taking /tmp/skiff-build.lock itself: the
/// suite's runner holds that lock while the test binary runs (taking it again would wait on
/// ourselves). Root only: rootless users cannot write the workspace's target dir.
#[test]
fn readme_install_steps_work() {
    if !common::is_root() {
        println!("skipped: cargo install writes the workspace's target dir, which is root's");
        return;
    }
    let ws = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| ws.join("target"));
    let env = Env::new();
    let root = env.home.path().join("install");
    let t = std::time::Instant::now();
    let out = match std::process::Command::new(cargo)
        .args([
            "install",
            "--path",
            "cli",
            "--debug",
            "--offline",
            "--locked",
            "--root",
        ])
        .arg(&root)
        .arg("--target-dir")
        .arg(&target)
        .current_dir(&ws)
        .output()
    {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("skipped: no cargo here (set CARGO or put it on PATH)");
            return;
        }
        r => r.expect("cargo install"),
    };
    assert!(
        out.status.success(),
        "cargo install: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("cargo install took {:?}", t.elapsed());
    let skiff = root.join("bin/skiff");
    assert!(
        root.join("bin/skiff-monitor").is_file(),
        "skiff-monitor installed beside skiff"
    );
    env.pull("busybox");
    let harness = env.cmd(&[]);
    let r: common::Run = std::process::Command::new(&skiff)
        .args([
            "run",
            "--rm",
            &format!("{}/busybox", common::REGISTRY),
            "echo",
            "installed",
        ])
        .env_clear()
        .envs(harness.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("installed skiff")
        .into();
    assert_eq!((r.code, r.stdout.as_str()), (0, "installed\n"), "{r:?}");
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source <({skiff:?} completion bash) && complete -p skiff"
        ))
        .output()
        .expect("bash");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("_skiff skiff"),
        "completion did not load: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `rmi` of one of several names of an image a container uses only untags it, as Docker and
/// podman do; the last name (and the id) still needs `-f`, and the container keeps running.
#[test]
fn rmi_of_one_of_several_tags_in_use_untags() {
    let env = Env::new();
    env.pull("busybox");
    let image = common::bb();
    env.ok(&["tag", &image, "mybox:v1"]);
    env.ok(&["run", "-d", "--name", "web", &image, "sleep", "60"]);
    let r = env.ok(&["rmi", "mybox:v1"]);
    assert!(
        r.stdout.contains("Untagged: ") && r.stdout.contains("mybox:v1"),
        "{r:?}"
    );
    assert!(!r.stdout.contains("Deleted"), "the image stays: {r:?}");
    // The id, with two names, and the last name are refused while the container uses it.
    env.ok(&["tag", &image, "mybox:v2"]);
    let id = env.ok(&["images", "-q"]).stdout.trim().to_string();
    env.fails(&["rmi", &id], "in use by container web");
    env.ok(&["rmi", "mybox:v2"]);
    env.fails(&["rmi", &image], "in use by container web");
    let r = env.ok(&["exec", "web", "echo", "alive"]);
    assert_eq!(r.stdout, "alive\n");
}

/// A local image of another platform is never used silently: `run --platform` of the platform
/// not pulled pulls the right one (it used to run the other one: "exec format error"),
/// `--pull=never` refuses, and without `--platform` skiff warns that the image does not fit.
#[test]
fn a_local_image_of_another_platform_is_matched_or_warned_about() {
    let env = Env::new();
    let host = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let other = if host == "arm64" { "amd64" } else { "arm64" };
    let image = common::img("multiarch");
    let arch = |env: &Env| -> String {
        let v: serde_json::Value =
            serde_json::from_str(&env.ok(&["inspect", "--type", "image", &image]).stdout)
                .expect("inspect json");
        v[0]["Architecture"].as_str().unwrap_or("").to_string()
    };
    env.ok(&[
        "pull",
        "-q",
        "--platform",
        &format!("linux/{other}"),
        &image,
    ]);
    assert_eq!(arch(&env), other);
    // Without --platform: used, with a warning naming both platforms.
    let r = env.ok(&["create", "--name", "c1", &image]);
    assert!(
        r.stderr.contains("WARNING")
            && r.stderr.contains(&format!("linux/{other}"))
            && r.stderr.contains(&format!("linux/{host}")),
        "no platform warning: {r:?}"
    );
    // --pull=never with the platform asked for: refused, not the wrong image.
    env.fails(
        &[
            "create",
            "--pull",
            "never",
            "--platform",
            &format!("linux/{host}"),
            &image,
        ],
        &format!("linux/{host}"),
    );
    // With --platform: the right one is pulled, and no warning.
    let r = env.ok(&[
        "create",
        "--name",
        "c2",
        "--platform",
        &format!("linux/{host}"),
        &image,
    ]);
    assert!(!r.stderr.contains("WARNING"), "{r:?}");
    assert_eq!(arch(&env), host, "the host's variant is now the local one");
    let c2 = env.state("c2");
    let c1 = env.state("c1");
    assert_ne!(c1["Image"], c2["Image"], "c2 uses the {host} image");
    // And a fitting local image gives no warning.
    let r = env.ok(&["create", &image]);
    assert!(!r.stderr.contains("WARNING"), "{r:?}");
}

/// Pull progress: piped, a status line per layer and step as Docker prints them (it used to
/// print nothing); on a terminal, every bar is drawn styled and named from its first frame (the
/// first frame used to be an unstyled full-width bar).
#[test]
fn pull_progress_piped_and_on_a_terminal() {
    let env = Env::new();
    let r = env.ok(&["pull", &common::bb()]);
    assert!(
        r.stderr.contains(": Pulling from ")
            && r.stderr.contains(": Pulling fs layer")
            && r.stderr.contains(": Pull complete"),
        "no per-layer lines when piped: {r:?}"
    );
    assert!(r.stdout.contains("Status: Downloaded newer image"), "{r:?}");
    // `layers` stacks on busybox's layer: that one already exists.
    let r = env.ok(&["pull", &common::img("layers")]);
    assert!(r.stderr.contains(": Already exists"), "{r:?}");
    let (mut master, slave) = common::pty::openpty();
    let mut child = env
        .cmd(&["pull", &common::img("deep")])
        .env("TERM", "xterm")
        .stdout(std::process::Stdio::null())
        .stderr(slave)
        .spawn()
        .expect("pull");
    let mut seen = String::new();
    let t = std::time::Instant::now();
    let status = loop {
        seen.push_str(&common::pty::read_until(
            &mut master,
            "\u{0}",
            std::time::Duration::from_millis(100),
        ));
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(t.elapsed().as_secs() < 60, "pull did not end: {seen}");
    };
    seen.push_str(&common::pty::read_until(
        &mut master,
        "\u{0}",
        std::time::Duration::from_millis(200),
    ));
    assert!(status.success(), "{status:?} {seen:?}");
    assert!(seen.contains("Pull complete"), "{seen:?}");
    assert!(
        !seen.contains('░') && !seen.contains('█'),
        "an unstyled bar was drawn: {seen:?}"
    );
}

/// `exec -it` with stdin that is not a terminal is refused as `run -it` is, with Docker's
/// words, and runs nothing; `exec -i` still pipes.
#[test]
fn exec_it_without_a_terminal_is_refused() {
    let env = Env::new();
    env.pull("busybox");
    env.ok(&["run", "-d", "--name", "box", &common::bb(), "sleep", "60"]);
    let r = env.fails(
        &["exec", "-it", "box", "touch", "/tmp/ran"],
        "the input device is not a TTY",
    );
    assert!(r.stdout.is_empty(), "{r:?}");
    let r = env.run(&["exec", "box", "test", "-e", "/tmp/ran"]);
    assert_eq!(r.code, 1, "the command did not run: {r:?}");
    assert_eq!(env.ok(&["exec", "-i", "box", "echo", "hi"]).stdout, "hi\n");
}

/// `images REPO[:TAG]` lists that repository (or that one tag), and `images --filter` takes
/// Docker's keys (reference, before, since, label, dangling); both used to be refused.
#[test]
fn images_takes_a_repository_and_filters() {
    let env = Env::new();
    env.pull("busybox");
    env.pull("hello");
    env.ok(&["tag", &common::bb(), "mybox:v1"]);
    env.ok(&["tag", &common::bb(), "mybox:v2"]);
    let fmt = "{{.Repository}}:{{.Tag}}";
    let names = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["images", "--format", fmt];
        a.extend_from_slice(args);
        let mut v: Vec<String> = env.ok(&a).stdout.lines().map(String::from).collect();
        v.sort();
        v
    };
    let mybox = names(&["mybox"]);
    assert_eq!(mybox.len(), 2, "{mybox:?}");
    assert!(mybox
        .iter()
        .all(|n| n.ends_with("mybox:v1") || n.ends_with("mybox:v2")));
    let one = names(&["mybox:v2"]);
    assert_eq!(one.len(), 1, "{one:?}");
    assert!(one[0].ends_with("mybox:v2"));
    let hello = names(&[&common::img("hello")]);
    assert_eq!(hello, [format!("{}:latest", common::img("hello"))]);
    assert_eq!(names(&["--filter", "reference=mybox:v*"]).len(), 2);
    assert_eq!(
        names(&["--filter", "reference=*/hello"]),
        [format!("{}:latest", common::img("hello"))]
    );
    assert!(names(&["--filter", "dangling=true"]).is_empty());
    assert_eq!(names(&["--filter", "dangling=false"]).len(), 4);
    // A new image from a container: since the base, labelled; the base is before it.
    env.ok(&[
        "run",
        "--name",
        "src",
        "-l",
        "app=web",
        &common::bb(),
        "touch",
        "/x",
    ]);
    env.ok(&["commit", "src", "mine:1"]);
    let since = names(&["--filter", &format!("since={}", common::bb())]);
    assert_eq!(since.len(), 1, "{since:?}");
    assert!(since[0].ends_with("mine:1"), "{since:?}");
    let before = names(&["--filter", "before=mine:1"]);
    assert!(
        before.iter().any(|n| n.ends_with("mybox:v1"))
            && !before.iter().any(|n| n.ends_with("mine:1")),
        "{before:?}"
    );
    let labelled = names(&["--filter", "label=app=web"]);
    assert!(
        labelled.iter().all(|n| n.ends_with("mine:1")),
        "{labelled:?}"
    );
    assert!(names(&["--filter", "label=app=db"]).is_empty());
    // Two filters: both must hold.
    assert!(names(&["--filter", "reference=mybox", "--filter", "since=mine:1"]).is_empty());
    env.fails(&["images", "--filter", "colour=red"], "dangling, reference");
    let q = env.ok(&["images", "-q", "mine"]).stdout;
    assert_eq!(q.lines().count(), 1, "{q}");
}

/// The whitespace-split rows of a `top` table under its header.
fn top_rows(env: &Env, args: &[&str]) -> (Vec<String>, Vec<Vec<String>>) {
    let out = env.ok(args).stdout;
    let mut lines = out.lines();
    let header = lines
        .next()
        .unwrap_or("")
        .split_whitespace()
        .map(String::from)
        .collect();
    let rows = lines
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect();
    (header, rows)
}

/// `top` shows the container's view, as podman does: pids of its pid namespace (its command is
/// pid 1), uids of its user namespace, names from its own /etc/passwd (here a user the
/// container itself added, which the host and the image do not know), with Docker's `ps -ef`
/// columns by default and the common ps options (`aux`, `-eo`) done by skiff, not the host's ps.
#[test]
fn top_shows_the_containers_view_and_takes_ps_options() {
    let env = Env::new();
    env.pull("busybox");
    let image = common::bb();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        &image,
        "sh",
        "-c",
        "echo skiffy:x:4242:4242::/:/bin/sh >>/etc/passwd && exec sleep 300",
    ]);
    common::eventually("the container's own user", || {
        env.run(&["exec", "web", "cat", "/etc/passwd"])
            .stdout
            .contains("skiffy")
    });
    env.ok(&["exec", "-d", "-u", "4242", "web", "sleep", "301"]);
    common::eventually("both processes", || {
        env.run(&["top", "web"]).stdout.contains("sleep 301")
    });

    let (header, rows) = top_rows(&env, &["top", "web"]);
    assert_eq!(
        header,
        ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"],
        "Docker's default columns"
    );
    let init = rows
        .iter()
        .find(|r| r.ends_with(&["sleep".into(), "300".into()]))
        .expect("the container's command");
    assert_eq!(
        (init[0].as_str(), init[1].as_str(), init[2].as_str()),
        ("root", "1", "0"),
        "pid 1 of the container, by name: {rows:?}"
    );
    let other = rows
        .iter()
        .find(|r| r.ends_with(&["sleep".into(), "301".into()]))
        .expect("the exec'd process");
    assert_eq!(other[0], "skiffy", "named from the container's passwd");
    assert!(
        other[1].parse::<u32>().is_ok_and(|p| p > 1 && p < 100),
        "a pid of the container's namespace: {other:?}"
    );

    let (header, rows) = top_rows(&env, &["top", "web", "-eo", "pid,ppid,user,uid,comm,stat"]);
    assert_eq!(header, ["PID", "PPID", "USER", "UID", "COMMAND", "STAT"]);
    assert_eq!(rows[0][..5], ["1", "0", "root", "0", "sleep"]);
    assert!(rows[0][5].starts_with('S'), "sleeping: {:?}", rows[0]);
    assert!(
        rows.iter().any(|r| r[2..5] == ["skiffy", "4242", "sleep"]),
        "{rows:?}"
    );

    let (header, rows) = top_rows(&env, &["top", "web", "aux"]);
    assert_eq!(header[..3], ["USER", "PID", "%CPU"]);
    assert_eq!(header.last().map(String::as_str), Some("COMMAND"));
    assert!(rows.iter().any(|r| r[..2] == ["root", "1"]), "{rows:?}");

    env.fails(&["top", "web", "-x"], "not supported");
    env.fails(&["top", "web", "-eo", "pid,wchan"], "\"wchan\"");
}

/// Bytes from a size as skiff prints it ("3.15MB").
fn bytes_of(s: &str) -> f64 {
    let unit = s.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.');
    let n: f64 = s[..s.len() - unit.len()].parse().expect("a number");
    n * match unit {
        "B" => 1.0,
        "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        u => panic!("unit {u}"),
    }
}

/// `ps -s` shows Docker's "RW (virtual V)": what the container wrote, and that plus its image.
#[test]
fn ps_s_shows_the_virtual_size() {
    let env = Env::new();
    env.pull("busybox");
    let image = common::bb();
    env.ok(&[
        "run",
        "--name",
        "fat",
        &image,
        "dd",
        "if=/dev/zero",
        "of=/fat",
        "bs=1000",
        "count=3000",
    ]);
    let size = env.ok(&["ps", "-a", "-s", "--format", "{{.Size}}"]).stdout;
    let (rw, virt) = size
        .trim()
        .strip_suffix(')')
        .and_then(|s| s.split_once(" (virtual "))
        .unwrap_or_else(|| panic!("RW (virtual V): {size:?}"));
    let img = env.ok(&["images", "--format", "{{.Size}}", &image]).stdout;
    let (rw, virt, img) = (bytes_of(rw), bytes_of(virt), bytes_of(img.trim()));
    assert!(rw >= 3e6, "the 3 MB written: {size}");
    assert!(
        (virt - (img + rw)).abs() <= 0.02 * virt,
        "virtual is the image ({img}) plus RW ({rw}): {size}"
    );
    let table = env.ok(&["ps", "-a", "-s"]).stdout;
    assert!(
        table.contains("SIZE") && table.contains("(virtual "),
        "{table}"
    );
}
