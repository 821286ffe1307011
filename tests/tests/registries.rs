//! Registry access as users configure it: TLS with certs.d, refused and accepted credentials,
//! login/logout in the shared auth.json format, insecure registries and mirrors in config.toml.

mod common;

use common::*;

fn trust_test_ca(env: &Env) {
    let dir = env.config().join(format!("certs.d/{SECURE}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(CA, dir.join("ca.crt")).unwrap();
}

fn login(env: &Env, password: &str) -> Run {
    let mut c = env.cmd(&["login", "-u", "skiff", "--password-stdin", SECURE]);
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap().into()
}

#[test]
fn an_untrusted_certificate_is_a_clear_error_and_certs_d_fixes_it() {
    let env = Env::new();
    let image = format!("{SECURE}/private/busybox");
    env.fails(&["pull", &image], "TLS certificate not trusted");
    trust_test_ca(&env);
    // Trusted now, but the registry wants credentials.
    env.fails(&["pull", &image], "authentication required or refused");
}

#[test]
fn login_checks_credentials_stores_them_and_logout_removes_them() {
    let env = Env::new();
    trust_test_ca(&env);
    let bad = login(&env, "wrong");
    assert_eq!(bad.code, 125, "{}", bad.stderr);
    assert!(
        bad.stderr.contains("authentication required or refused"),
        "{}",
        bad.stderr
    );
    let auth_file = env.home.path().join("run/containers/auth.json");
    assert!(!auth_file.exists(), "refused credentials are not saved");

    let good = login(&env, "skiff-secret");
    assert_eq!(good.code, 0, "{}", good.stderr);
    assert!(good.stdout.contains("Login Succeeded"));
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&auth_file).unwrap()).unwrap();
    let auth = saved["auths"][SECURE]["auth"].as_str().unwrap();
    assert_eq!(
        auth, "c2tpZmY6c2tpZmYtc2VjcmV0",
        "base64 of user:password, as docker and podman write it"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&auth_file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let image = format!("{SECURE}/private/busybox");
    env.ok(&["pull", "-q", &image]);
    assert!(env
        .ok(&["images"])
        .stdout
        .contains(&format!("{SECURE}/private/busybox ")));

    env.ok(&["logout", SECURE]);
    env.ok(&["rmi", &image]);
    env.fails(&["pull", &image], "authentication required or refused");
    env.fails(&["logout", SECURE], "not logged in");
}

#[test]
fn credentials_are_read_from_docker_config_too() {
    let env = Env::new();
    trust_test_ca(&env);
    let docker = env.home.path().join(".docker");
    std::fs::create_dir_all(&docker).unwrap();
    std::fs::write(
        docker.join("config.json"),
        format!(r#"{{"auths":{{"{SECURE}":{{"auth":"c2tpZmY6c2tpZmYtc2VjcmV0"}}}}}}"#),
    )
    .unwrap();
    env.ok(&["pull", "-q", &format!("{SECURE}/private/busybox")]);
}

/// A command run with the test's home (where gpg and pass keep their files).
fn in_home(env: &Env, program: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(program)
        .args(args)
        .env("HOME", env.home.path())
        .env_remove("GNUPGHOME")
        .env_remove("PASSWORD_STORE_DIR")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e} (cargo xtask testenv up installs it)"))
}

/// Stops the test home's gpg-agent when dropped, pass or fail: nothing is left running.
struct Agent<'a>(&'a Env);

impl Drop for Agent<'_> {
    fn drop(&mut self) {
        let _ = in_home(self.0, "gpgconf", &["--kill", "gpg-agent"]);
    }
}

/// A real password store in the test's home: a fresh gpg key without passphrase and `pass init`.
fn password_store(env: &Env) -> Agent<'_> {
    let agent = Agent(env);
    let gnupg = env.home.path().join(".gnupg");
    std::fs::create_dir_all(&gnupg).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&gnupg, std::fs::Permissions::from_mode(0o700)).unwrap();
    let key = in_home(
        env,
        "gpg",
        &[
            "--batch",
            "--passphrase",
            "",
            "--quick-gen-key",
            "skiff test <skiff@test.invalid>",
            "future-default",
            "default",
            "never",
        ],
    );
    assert!(key.status.success(), "{key:?}");
    let list = in_home(env, "gpg", &["--list-keys", "--with-colons"]);
    let listing = String::from_utf8_lossy(&list.stdout);
    let fpr = listing
        .lines()
        .find_map(|l| l.strip_prefix("fpr:"))
        .and_then(|l| l.trim_matches(':').rsplit(':').next())
        .expect("a key fingerprint")
        .to_string();
    let init = in_home(env, "pass", &["init", &fpr]);
    assert!(init.status.success(), "{init:?}");
    agent
}

fn helper_list(env: &Env) -> String {
    String::from_utf8_lossy(&in_home(env, "docker-credential-pass", &["list"]).stdout).into_owned()
}

#[test]
fn credential_helpers_named_in_docker_config_store_and_give_credentials() {
    let env = Env::new();
    trust_test_ca(&env);
    let _agent = password_store(&env);
    let docker = env.home.path().join(".docker");
    std::fs::create_dir_all(&docker).unwrap();
    std::fs::write(docker.join("config.json"), r#"{"credsStore":"pass"}"#).unwrap();

    let good = login(&env, "skiff-secret");
    assert_eq!(good.code, 0, "{}", good.stderr);
    assert!(
        good.stderr.contains("docker-credential-pass"),
        "{}",
        good.stderr
    );
    assert!(helper_list(&env).contains(SECURE), "{}", helper_list(&env));
    let auth_json = env.home.path().join("run/containers/auth.json");
    assert!(
        !auth_json.exists(),
        "no password in a file beside the helper"
    );

    let image = format!("{SECURE}/private/busybox");
    env.ok(&["pull", "-q", &image]);
    env.ok(&["logout", SECURE]);
    assert!(!helper_list(&env).contains(SECURE), "{}", helper_list(&env));
    env.ok(&["rmi", &image]);
    env.fails(&["pull", &image], "authentication required or refused");

    // credHelpers names a helper per registry, before credsStore; a missing one is a clear error.
    std::fs::write(
        docker.join("config.json"),
        format!(r#"{{"credsStore":"pass","credHelpers":{{"{SECURE}":"nosuch"}}}}"#),
    )
    .unwrap();
    let r = env.run(&["pull", &image]);
    assert_eq!(r.code, 125);
    assert!(
        r.stderr.contains("docker-credential-nosuch") && r.stderr.contains("install it"),
        "{}",
        r.stderr
    );
}

#[test]
fn insecure_registries_are_plain_http_only_when_configured() {
    let env = Env::new();
    // registry.skiff.test:5000 is the plain registry under a non-loopback name: HTTPS by default.
    let image = "registry.skiff.test:5000/busybox";
    let r = env.run(&["pull", image]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    std::fs::create_dir_all(env.config()).unwrap();
    std::fs::write(
        env.config().join("config.toml"),
        "[registries.\"registry.skiff.test:5000\"]\ninsecure = true\n",
    )
    .unwrap();
    env.ok(&["pull", "-q", image]);
}

#[test]
fn mirrors_are_tried_before_the_registry() {
    let env = Env::new();
    std::fs::create_dir_all(env.config()).unwrap();
    // The named registry does not exist; its mirror (the local registry) has the image.
    std::fs::write(
        env.config().join("config.toml"),
        format!("[registries.\"nowhere.skiff.test:9\"]\nmirrors = [\"{REGISTRY}\"]\n"),
    )
    .unwrap();
    env.ok(&["pull", "-q", "nowhere.skiff.test:9/hello"]);
    assert!(env
        .ok(&["images"])
        .stdout
        .contains("nowhere.skiff.test:9/hello "));
}

#[test]
fn a_broken_config_file_is_named_in_the_error() {
    let env = Env::new();
    std::fs::create_dir_all(env.config()).unwrap();
    std::fs::write(
        env.config().join("config.toml"),
        "[registries.\"x\"]\ninsecur = true\n",
    )
    .unwrap();
    env.fails(&["images"], "config.toml");
}

#[test]
fn push_uploads_what_the_registry_lacks_and_needs_credentials_where_asked() {
    let env = Env::new();
    env.pull("busybox");
    let local = format!("{REGISTRY}/busybox");
    // A plain registry: a new repository gets every blob, a second push none.
    let dest = format!("{REGISTRY}/pushed/{}:v1", std::process::id());
    let first = env.ok(&["push", &local, &dest]).stdout;
    assert!(first.contains(": Pushed"), "{first}");
    let again = env.ok(&["push", &local, &dest]).stdout;
    assert!(
        !again.contains(": Pushed") && again.contains("Layer already exists"),
        "{again}"
    );
    let digest = env.ok(&["push", "-q", &local, &dest]).stdout;
    // What went up is what came down: the same manifest digest, and it runs elsewhere.
    let other = Env::new();
    other.ok(&["pull", "-q", &dest]);
    let has_digest = |e: &Env, d: &str| {
        e.ok(&["images", "--digests", "--format", "json"])
            .stdout
            .contains(d)
    };
    assert!(
        has_digest(&other, digest.trim()),
        "pulled back by digest {digest}"
    );
    assert_eq!(
        other.ok(&["run", "--rm", &dest, "echo", "pushed"]).stdout,
        "pushed\n"
    );

    // The TLS registry with htpasswd: refused without login, accepted with it.
    trust_test_ca(&env);
    let private = format!("{SECURE}/private/pushed-{}:v1", std::process::id());
    env.ok(&["tag", &local, &private]);
    env.fails(&["push", &private], "authentication required");
    assert_eq!(login(&env, "skiff-secret").code, 0);
    env.ok(&["push", &private]);
    env.ok(&["rmi", &private]);
    env.ok(&["pull", "-q", &private]);
    env.fails(&["push", "nosuch:latest"], "not known locally");
}
