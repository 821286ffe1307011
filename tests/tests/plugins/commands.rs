//! The plugin commands and their refusals: bad files, names, settings and artifacts are one
//! clear line with exit 125 and nothing half-installed; ls, inspect, disable and rm do what
//! they say; a tampered compiled copy is never loaded.

use super::*;

/// A before-pull input: Docker Hub's busybox, as JSON.
const HUB_BUSYBOX: &str = "\"docker.io/library/busybox:latest\"";

#[test]
fn bad_files_names_settings_and_artifacts_are_refused() {
    let env = Env::new();
    let text = input(&env, "notwasm.wasm", "#!/bin/sh\necho hi\n");
    env.fails(&["plugin", "install", &text], "is not a WebAssembly file");
    let bytes = std::fs::read(example("mirror.wasm")).unwrap();
    let cut = env.home.path().join("cut.wasm");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    env.fails(
        &["plugin", "install", cut.to_str().unwrap()],
        "is not a valid WebAssembly component",
    );
    env.fails(
        &[
            "plugin",
            "install",
            &example("mirror.wasm"),
            "--name",
            "Bad/Name",
        ],
        "invalid plugin name",
    );
    env.fails(
        &[
            "plugin",
            "install",
            &example("mirror.wasm"),
            "--grant",
            "root",
        ],
        "unknown grant \"root\"",
    );
    assert!(!env.data().join("plugins/plugins.json").exists());

    install(&env, &example("mirror.wasm"), &[]);
    env.fails(
        &["plugin", "install", &example("mirror.wasm")],
        "a plugin named \"mirror\" is installed already",
    );

    configure(&env, "[plugins.mirror]\ntimeout_ms = \"soon\"");
    env.fails(&["pull", &bb()], "[plugins.mirror] timeout_ms");
    std::fs::write(
        env.config().join("config.toml"),
        "[plugins.mirror]\ngrants = [\"everything\"]\n",
    )
    .unwrap();
    env.fails(&["plugin", "ls"], "unknown grant \"everything\"");
    std::fs::remove_file(env.config().join("config.toml")).unwrap();

    // A container image is not a plugin.
    env.fails(
        &["plugin", "install", &bb()],
        "is a container image, not a wasm plugin",
    );
    assert_eq!(env.ok(&["plugin", "ls", "-q"]).stdout, "mirror\n");
}

#[test]
fn ls_inspect_disable_and_rm_manage_what_runs() {
    let env = Env::new();
    env.pull("busybox");
    install(
        &env,
        &example("fixtures/deny.wasm"),
        &["--name", "no", "--priority", "10"],
    );
    install(
        &env,
        &example("fixtures/keep.wasm"),
        &["--name", "yes", "--priority", "5"],
    );
    let ls = env.ok(&["plugin", "ls"]).stdout;
    let rows: Vec<&str> = ls.lines().collect();
    assert!(
        rows[0].starts_with("NAME") && rows[0].contains("LAST ERROR"),
        "{ls}"
    );
    assert!(
        rows[1].starts_with("yes ") && rows[2].starts_with("no "),
        "priority order: {ls}"
    );
    env.fails(
        &["run", "--rm", &bb(), "true"],
        "before-pull denied by no: denied by fixture",
    );
    env.ok(&["plugin", "disable", "no"]);
    env.ok(&["run", "--rm", &bb(), "true"]);
    let doc: serde_json::Value =
        serde_json::from_str(&env.ok(&["plugin", "inspect", "no"]).stdout).unwrap();
    assert_eq!(doc[0]["Enabled"], false);
    assert_eq!(doc[0]["World"], "skiff:plugin@0.2.0");
    assert_eq!(doc[0]["Hooks"], serde_json::json!(["before-pull"]));
    let component = doc[0]["Component"].as_str().unwrap().to_string();
    let compiled = doc[0]["Compiled"].as_str().unwrap().to_string();
    assert!(std::path::Path::new(&compiled).exists());
    env.ok(&["plugin", "rm", "no", "yes"]);
    assert!(env.ok(&["plugin", "ls", "-q"]).stdout.is_empty());
    assert!(
        !std::path::Path::new(&component).exists(),
        "rm leaves no component behind"
    );
    assert!(
        !std::path::Path::new(&compiled).exists(),
        "rm leaves no compiled copy behind"
    );
    env.fails(
        &["plugin", "rm", "no"],
        "no plugin named \"no\" is installed",
    );
}

/// Where plugin `name`'s compiled copy is, as `plugin inspect` says.
fn compiled_copy(env: &Env, name: &str) -> String {
    let doc: serde_json::Value =
        serde_json::from_str(&env.ok(&["plugin", "inspect", name]).stdout).unwrap();
    doc[0]["Compiled"].as_str().unwrap().to_string()
}

#[test]
fn a_tampered_compiled_copy_is_never_loaded_but_compiled_again() {
    let env = Env::new();
    install(&env, &example("fixtures/deny.wasm"), &["--name", "d"]);
    let compiled = compiled_copy(&env, "d");
    let mut bytes = std::fs::read(&compiled).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    std::fs::write(&compiled, &bytes).unwrap();
    let r = plugin_test(&env, "d", "before-pull", HUB_BUSYBOX);
    assert!(
        r.stderr
            .contains("was changed after it was compiled; compiling it again"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stdout.trim(), r#"{"deny":"denied by fixture"}"#);
    // The new copy is trusted again without a note.
    let r = plugin_test(&env, "d", "before-pull", HUB_BUSYBOX);
    assert!(!r.stderr.contains("note:"), "{}", r.stderr);
}

#[test]
fn a_compiled_copy_whose_identity_changed_is_checked_once_then_mapped_again() {
    // A chmod, a backup restored or a copy keeps the content but changes the change time:
    // the content is checked against its hash, and the new identity recorded, so later runs
    // map the file instead of hashing it each time.
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let env = Env::new();
    install(&env, &example("fixtures/deny.wasm"), &["--name", "d"]);
    let compiled = compiled_copy(&env, "d");
    let list = env.data().join("plugins/plugins.json");
    let recorded = |list: &std::path::Path| -> i128 {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(list).unwrap()).unwrap();
        v[0]["compiled"]["identity"]["ctime_ns"]
            .as_i64()
            .map(i128::from)
            .or_else(|| {
                v[0]["compiled"]["identity"]["ctime_ns"]
                    .as_f64()
                    .map(|f| f as i128)
            })
            .unwrap()
    };
    let before = recorded(&list);
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::set_permissions(&compiled, std::fs::Permissions::from_mode(0o600)).unwrap();
    let m = std::fs::metadata(&compiled).unwrap();
    let now = i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec());
    assert_ne!(now, before, "the chmod changed the change time");
    let r = plugin_test(&env, "d", "before-pull", HUB_BUSYBOX);
    assert_eq!(r.stdout.trim(), r#"{"deny":"denied by fixture"}"#);
    assert!(!r.stderr.contains("note:"), "same content: {}", r.stderr);
    assert_eq!(recorded(&list), now, "the new identity is recorded");
}

#[test]
fn grants_a_manifest_asks_for_are_listed_and_need_a_yes() {
    let env = Env::new();
    let dir = env.home.path().join("audit-dir");
    std::fs::create_dir_all(&dir).unwrap();
    let wasm = env.home.path().join("audit.wasm");
    std::fs::copy(example("audit.wasm"), &wasm).unwrap();
    let grant = format!("dir-rw={}", dir.display());
    std::fs::write(
        wasm.with_extension("toml"),
        format!("grants = [\"{grant}\"]\n"),
    )
    .unwrap();
    let w = wasm.to_str().unwrap();
    env.fails(
        &["plugin", "install", w],
        &format!("plugin audit asks for grants {grant}: pass --yes"),
    );
    assert!(env.ok(&["plugin", "ls", "-q"]).stdout.is_empty());
    let r = env.ok(&["plugin", "install", w, "--yes"]);
    assert!(
        r.stdout.contains(&format!("grants {grant}")),
        "{}",
        r.stdout
    );
    let cfg = std::fs::read_to_string(env.config().join("config.toml")).unwrap();
    assert!(
        cfg.contains("[plugins.audit]") && cfg.contains(&grant),
        "{cfg}"
    );
    // rm takes back what install granted.
    env.ok(&["plugin", "rm", "audit"]);
    let cfg = std::fs::read_to_string(env.config().join("config.toml")).unwrap();
    assert!(!cfg.contains(&grant), "{cfg}");
}

#[test]
fn a_copy_compiled_by_another_engine_is_kept_beside_this_ones() {
    // Two skiff versions sharing a home: each compiles its own copy once, and neither
    // recompiles the other's away.
    let env = Env::new();
    install(&env, &example("fixtures/deny.wasm"), &["--name", "d"]);
    let list = env.data().join("plugins/plugins.json");
    let text = std::fs::read_to_string(&list).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let ours = v[0]["compiled"]["engine"].as_str().unwrap().to_string();
    v[0]["compiled"]["engine"] = "another-engine".into();
    std::fs::write(&list, serde_json::to_vec(&v).unwrap()).unwrap();
    let r = plugin_test(&env, "d", "before-pull", HUB_BUSYBOX);
    assert!(
        r.stderr
            .contains("compiled by another version of skiff's engine"),
        "{}",
        r.stderr
    );
    let r = plugin_test(&env, "d", "before-pull", HUB_BUSYBOX);
    assert!(!r.stderr.contains("note:"), "compiled once: {}", r.stderr);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&list).unwrap()).unwrap();
    assert_eq!(v[0]["compiled"]["engine"], "another-engine");
    assert_eq!(v[0]["also_compiled"][0]["engine"], ours.as_str());
}
