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
    let r = env.fails(&["attach", "web"], "no \"attach\" command");
    assert!(
        r.stderr.contains("logs -f") && r.stderr.contains("start -a"),
        "attach should point at logs -f and start -a: {}",
        r.stderr
    );
    env.fails(&["container", "attach", "web"], "start -a");
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
