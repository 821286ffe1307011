//! The three examples and the 0.1.0 plugin, doing their jobs in real runs.

use super::*;

#[test]
fn the_c_mirror_rewrites_docker_hub_references_from_a_file_and_from_the_registry() {
    let env = Env::new();
    let r = install(&env, &example("mirror.wasm"), &[]);
    assert!(
        r.stdout
            .contains("Installed plugin mirror (world 0.2.0; hooks before-pull"),
        "{}",
        r.stdout
    );
    configure(
        &env,
        &format!("[plugins.mirror.settings]\nmirror = \"{REGISTRY}\""),
    );
    let r = env.ok(&["pull", "-q", "busybox"]);
    assert!(
        r.stderr
            .contains("plugin mirror: rewrote docker.io/library/busybox:latest"),
        "{}",
        r.stderr
    );
    let images = env
        .ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .stdout;
    assert_eq!(
        images.trim(),
        format!("{REGISTRY}/library/busybox:latest"),
        "{images}"
    );
    // run resolves the name the user typed through the same hook, then finds it locally.
    let r = env.ok(&["run", "--rm", "busybox", "echo", "mirrored"]);
    assert_eq!(r.stdout, "mirrored\n");

    // Published as a Wasm OCI artifact and installed from the registry in another home.
    let tag = format!("{REGISTRY}/plugins/mirror:{}", std::process::id());
    let pushed = env
        .ok(&["plugin", "push", &example("mirror.wasm"), &tag])
        .stdout;
    assert!(
        pushed.trim().starts_with(&format!("{tag}@sha256:")),
        "{pushed}"
    );
    let other = Env::new();
    let r = other.ok(&["plugin", "install", &tag]);
    assert!(r.stdout.contains("Installed plugin mirror"), "{}", r.stdout);
    let ls = other.ok(&["plugin", "inspect", "mirror"]).stdout;
    let doc: serde_json::Value = serde_json::from_str(&ls).unwrap();
    assert_eq!(doc[0]["Source"], tag.as_str());
    assert_eq!(doc[0]["Digest"], env_digest(&env, "mirror"));
    configure(
        &other,
        &format!("[plugins.mirror.settings]\nmirror = \"{REGISTRY}\""),
    );
    other.ok(&["pull", "-q", "docker.io/library/busybox"]);
}

/// The component digest an environment recorded for a plugin.
fn env_digest(env: &Env, name: &str) -> String {
    let doc: serde_json::Value =
        serde_json::from_str(&env.ok(&["plugin", "inspect", name]).stdout).unwrap();
    doc[0]["Digest"].as_str().unwrap().to_string()
}

#[test]
fn the_python_policy_refuses_privileged_and_foreign_images_and_labels_the_rest() {
    let env = Env::new();
    env.pull("busybox");
    install(&env, &example("policy.wasm"), &[]);
    configure(
        &env,
        &format!("[plugins.policy.settings]\nregistries = \"{REGISTRY}\""),
    );

    let r = env.fails(
        &["run", "--privileged", "--name", "p", &bb(), "true"],
        "privileged containers are not allowed",
    );
    assert!(r.stderr.contains("policy"), "{}", r.stderr);
    assert!(
        env.containers().is_empty(),
        "a refused run leaves no record"
    );

    env.fails(&["pull", "quay.io/some/image:1"], "policy");
    env.ok(&["run", "--name", "ok", &bb(), "true"]);
    let st = env.state("ok");
    assert_eq!(st["Config"]["Labels"]["skiff.policy"], "checked");
    assert_eq!(st["Plugins"][0]["Name"], "policy");
    assert_eq!(st["Plugins"][0]["Changed"][0], "label:skiff.policy");

    // plugin test gives what the real run applied.
    let t = plugin_test(
        &env,
        "policy",
        "before-create",
        &format!("{{\"image\": \"{}\"}}", bb()),
    );
    assert_eq!(
        t.stdout.trim(),
        r#"{"allow":[{"set-label":["skiff.policy","checked"]}]}"#
    );
    assert!(
        t.stderr.contains("took") && t.stderr.contains("peak memory"),
        "{}",
        t.stderr
    );
    let t = plugin_test(
        &env,
        "policy",
        "before-create",
        "{\"image\": \"x\", \"privileged\": true}",
    );
    assert_eq!(
        t.stdout.trim(),
        r#"{"deny":"privileged containers are not allowed"}"#
    );

    // A digest pin, when required.
    std::fs::write(
        env.config().join("config.toml"),
        format!("[plugins.policy.settings]\nregistries = \"{REGISTRY}\"\nrequire_digest = true\n"),
    )
    .unwrap();
    env.fails(&["run", "--rm", &bb(), "true"], "digest");
}

#[test]
fn the_javascript_audit_writes_a_line_per_start_and_exit_in_its_granted_dir() {
    let env = Env::new();
    env.pull("busybox");
    let dir = env.home.path().join("audit");
    std::fs::create_dir_all(&dir).unwrap();
    let grant = format!("dir-rw={}", dir.display());
    install(&env, &example("audit.wasm"), &["--grant", &grant]);
    configure(
        &env,
        &format!("[plugins.audit.settings]\ndir = \"{}\"", dir.display()),
    );
    let cfg = std::fs::read_to_string(env.config().join("config.toml")).unwrap();
    assert!(cfg.contains(&grant), "install records the grant: {cfg}");

    env.ok(&["run", "--name", "att", &bb(), "true"]);
    env.ok(&["run", "-d", "--name", "det", &bb(), "sleep", "0.2"]);
    env.run(&[
        "run",
        "--name",
        "rs",
        "--restart",
        "on-failure:1",
        &bb(),
        "sh",
        "-c",
        "exit 2",
    ]);
    env.ok(&["run", "--rm", "--name", "gone", &bb(), "true"]);
    let lines = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(dir.join("events.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    };
    let count = |name: &str, event: &str| {
        lines()
            .iter()
            .filter(|l| l["name"] == name && l["event"] == event)
            .count()
    };
    eventually("the detached and restarted containers' exits", || {
        count("det", "exit") == 1 && count("rs", "exit") == 2
    });
    for name in ["att", "det", "gone"] {
        assert_eq!(count(name, "start"), 1, "{name}: {:?}", lines());
        assert_eq!(count(name, "exit"), 1, "{name}: {:?}", lines());
    }
    assert_eq!(count("rs", "start"), 2, "{:?}", lines());
    let all = lines();
    let rs: Vec<_> = all
        .iter()
        .filter(|l| l["name"] == "rs" && l["event"] == "exit")
        .collect();
    assert_eq!(rs[0]["will_restart"], true);
    assert_eq!(rs[1]["will_restart"], false);
    assert_eq!(rs[0]["exit_code"], 2);
    let gone = all
        .iter()
        .find(|l| l["name"] == "gone" && l["event"] == "exit")
        .unwrap();
    assert_eq!(gone["removing"], true);
    let att = all
        .iter()
        .find(|l| l["name"] == "att" && l["event"] == "start")
        .unwrap();
    assert!(att["pid"].as_i64().unwrap() > 1);

    // The hook helper starts with the monitor; a container that never starts leaves none.
    let r = env.run(&["run", "--rm", "--name", "never", &bb(), "/nonexistent"]);
    assert_eq!(r.code, 127, "{}", r.stderr);
    eventually("no hook helper left behind", || hook_helpers(&env) == 0);
    assert_eq!(count("never", "start"), 0, "{:?}", lines());
}

/// How many `skiff __hook` helpers of this test's home are alive (not yet reaped zombies count
/// only while they hold their command line).
fn hook_helpers(env: &Env) -> usize {
    let home = env.home.path().to_string_lossy().into_owned();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return 0;
    };
    procs
        .flatten()
        .filter(|p| {
            let dir = p.path();
            let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
            let environ = std::fs::read(dir.join("environ")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).contains("__hook")
                && String::from_utf8_lossy(&environ).contains(&home)
        })
        .count()
}

#[test]
fn a_plugin_built_against_world_0_1_still_installs_and_rewrites() {
    let env = Env::new();
    let r = install(&env, &example("pin-0.1.wasm"), &["--name", "pin"]);
    assert!(r.stdout.contains("world 0.1.0"), "{}", r.stdout);
    let ls = env.ok(&["plugin", "ls"]).stdout;
    assert!(
        ls.lines()
            .any(|l| l.starts_with("pin ") && l.contains("0.1.0")),
        "{ls}"
    );
    env.ok(&["pull", "-q", &img("old-name")]);
    let images = env.ok(&["images", "--format", "{{.Repository}}"]).stdout;
    assert_eq!(images.trim(), bb(), "{images}");
}
