//! Hostile plugins: each is stopped with a message naming the plugin, the hook and the cause,
//! and the operation stops (decision hooks fail closed) or goes on (`on_error = "ignore"`).

use super::*;

/// A home with busybox pulled and one fixture installed as `name`.
fn with(fixture: &str, name: &str) -> Env {
    let env = Env::new();
    env.pull("busybox");
    install(
        &env,
        &example(&format!("fixtures/{fixture}.wasm")),
        &["--name", name],
    );
    env
}

#[test]
fn an_endless_loop_is_stopped_at_its_deadline_and_fails_closed() {
    let env = with("loop", "spin");
    let t = std::time::Instant::now();
    let r = env.fails(
        &["run", "--rm", &bb(), "true"],
        "before-pull hook of spin failed: ran past its 300 ms deadline",
    );
    assert!(
        t.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        t.elapsed()
    );
    assert!(
        r.stderr.contains("on_error = \"ignore\""),
        "the fix is named: {}",
        r.stderr
    );
    assert!(env.containers().is_empty());
    let ls = env.ok(&["plugin", "ls"]).stdout;
    assert!(
        ls.contains("before-pull: ran past its 300 ms deadline"),
        "last error shown: {ls}"
    );

    // The user's policy: go on regardless, with a warning; and a shorter deadline.
    configure(
        &env,
        "[plugins.spin]\non_error = \"ignore\"\ntimeout_ms = 50",
    );
    let r = env.ok(&["run", "--rm", &bb(), "echo", "went on"]);
    assert_eq!(r.stdout, "went on\n");
    assert!(
        r.stderr
            .contains("WARNING: plugin spin: before-pull hook failed: ran past its 50 ms deadline"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_memory_bomb_is_stopped_at_the_cap() {
    let env = with("membomb", "bomb");
    env.fails(
        &["pull", &bb()],
        "before-pull hook of bomb failed: went over its memory limit of 64 MiB",
    );
    configure(&env, "[plugins.bomb]\nmemory_mib = 8");
    env.fails(&["pull", &bb()], "memory limit of 8 MiB");
}

#[test]
fn a_trap_a_malformed_result_and_a_huge_result_are_named() {
    let env = with("trap", "trapper");
    env.fails(
        &["pull", &bb()],
        "before-pull hook of trapper failed: trapped: wasm `unreachable`",
    );
    let env = with("badresult", "bad");
    env.fails(
        &["pull", &bb()],
        "before-pull hook of bad failed: returned a malformed result",
    );
    let env = with("huge", "huge");
    env.fails(
        &["pull", &bb()],
        "before-pull hook of huge failed: returned 67043328 bytes, over the 262144-byte cap",
    );
}

#[test]
fn a_core_module_and_an_unknown_world_are_refused_at_install_leaving_nothing() {
    let env = Env::new();
    env.fails(
        &["plugin", "install", &example("fixtures/core.wasm")],
        "is a core WebAssembly module, not a component: wrap it with `wasm-tools component new`",
    );
    env.fails(
        &["plugin", "install", &example("fixtures/future.wasm")],
        "skiff:plugin@9.9.0, which this skiff does not support: it loads 0.1.0, 0.2.0",
    );
    assert!(env.ok(&["plugin", "ls", "-q"]).stdout.is_empty());
    assert!(!env.data().join("plugins/plugins.json").exists());
}

#[test]
fn a_plugin_reading_a_host_file_needs_a_grant_and_a_grant_reaches_only_its_directory() {
    let env = Env::new();
    env.pull("busybox");
    env.fails(
        &["plugin", "install", &example("readfile.wasm")],
        "plugin readfile imports wasi:filesystem/",
    );
    assert!(
        env.ok(&["plugin", "ls", "-q"]).stdout.is_empty(),
        "nothing half-installed"
    );
    // Granted one directory, it still cannot reach /etc/passwd.
    let dir = env.home.path().join("granted");
    std::fs::create_dir_all(&dir).unwrap();
    install(
        &env,
        &example("readfile.wasm"),
        &["--grant", &format!("dir-ro={}", dir.display())],
    );
    let r = env.ok(&["pull", "-q", &bb()]);
    assert!(!r.stderr.contains("root:"), "{}", r.stderr);
}

#[test]
fn clashing_adjusters_are_named_and_powers_need_grants() {
    let env = Env::new();
    env.pull("busybox");
    install(&env, &example("adjust-a.wasm"), &[]);
    install(&env, &example("adjust-env.wasm"), &[]);
    let r = env.ok(&["run", "--name", "two", &bb(), "sh", "-c", "echo $ADJUSTED"]);
    assert_eq!(r.stdout, "yes\n");
    let st = env.state("two");
    assert_eq!(st["Config"]["Labels"]["team"], "a");
    assert_eq!(
        st["Plugins"].as_array().unwrap().len(),
        2,
        "{}",
        st["Plugins"]
    );

    install(&env, &example("adjust-b.wasm"), &[]);
    env.fails(
        &["run", "--rm", &bb(), "true"],
        "plugins adjust-a and adjust-b both change label:team",
    );
    env.ok(&["plugin", "disable", "adjust-b"]);
    env.ok(&["run", "--rm", &bb(), "true"]);

    install(&env, &example("adjust-priv.wasm"), &[]);
    env.fails(
        &["run", "--rm", &bb(), "true"],
        "plugin adjust-priv tried to change privileged, which needs the privileged grant",
    );
}
