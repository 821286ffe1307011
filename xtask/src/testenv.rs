//! The offline test environment: Debian packages, an unprivileged test user with a subuid range,
//! the real `docker-registry` on 127.0.0.1:5000 with fixture images pushed to it.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::services::{ca_dir, state_dir, REGISTRY, SECURE_HOST, SECURE_REGISTRY, SECURE_USER};
use crate::sh::{self, cmd};

/// The unprivileged user the rootless suite runs as.
pub const TEST_USER: &str = "skiff-test";
/// Its subordinate id range.
pub const SUBID_START: u32 = 200_000;
/// Packages the tests need.
const PACKAGES: &[&str] = &[
    "docker-registry",
    "skopeo",
    "umoci",
    "uidmap",
    "busybox-static",
    "passt",
    "slirp4netns",
    // The network holder's plumbing: ip (bridges, veths) and iptables-restore (NAT, isolation).
    "iproute2",
    "iptables",
    "apache2-utils",
    "openssl",
    // A real credential helper (docker-credential-pass) and the password store behind it.
    "golang-docker-credential-helpers",
    "pass",
    // The ports tests' peer probe, built static from C (tests/tests/ports_peer.c).
    "gcc",
    "libc6-dev",
];

/// Installs the packages, prepares the host and starts the registries (idempotent); the fixture
/// images are pushed by `fixtures::build_and_push` after it.
pub fn up() -> Result<()> {
    if sh::is_root() {
        install_packages(PACKAGES)?;
        prepare_host()?;
    } else {
        eprintln!("xtask: not root: skipping package installs and host preparation");
    }
    start_registry("registry", REGISTRY, &plain_config())?;
    if sh::is_root()
        || std::fs::read_to_string("/etc/hosts")
            .unwrap_or_default()
            .contains(SECURE_HOST)
    {
        make_tls_and_htpasswd()?;
        start_registry("secure", "127.0.0.1:5443", &secure_config())?;
    }
    status()
}

/// Installs the packages not yet present (apt-get update first, once).
pub fn install_packages(pkgs: &[&str]) -> Result<()> {
    let missing: Vec<&str> = pkgs
        .iter()
        .copied()
        .filter(|p| {
            !Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    sh::run(&mut cmd("apt-get", &["update", "-qq"]))?;
    sh::run(
        cmd(
            "apt-get",
            &["install", "-y", "-qq", "--no-install-recommends"],
        )
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

/// Creates the test user with a subuid/subgid range and its runtime dir; opens tun and fuse.
fn prepare_host() -> Result<()> {
    ensure_user(TEST_USER)?;
    let range = format!("{}-{}", SUBID_START, SUBID_START + 65535);
    for file in ["/etc/subuid", "/etc/subgid"] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if !text
            .lines()
            .any(|l| l.starts_with(&format!("{TEST_USER}:")))
        {
            let flag = if file.ends_with("subuid") {
                "--add-subuids"
            } else {
                "--add-subgids"
            };
            sh::run(&mut cmd("usermod", &[flag, &range, TEST_USER]))?;
        }
    }
    runtime_dir(TEST_USER)?;
    prepare_nosub_user()?;
    for dev in ["/dev/net/tun", "/dev/fuse"] {
        if std::path::Path::new(dev).exists() {
            let _ = Command::new("chmod").args(["0666", dev]).status();
        }
    }
    Ok(())
}

/// A command that runs `program` as the test user with a clean login-like environment (its HOME,
/// its /run/user dir) plus `extra_env` (`KEY=VALUE`), from /tmp.
pub fn as_test_user(uid: u32, extra_env: &[String], program: &Path) -> Command {
    as_user(TEST_USER, uid, extra_env, program)
}

/// [`as_test_user`] for any user.
pub fn as_user(user: &str, uid: u32, extra_env: &[String], program: &Path) -> Command {
    let mut c = Command::new("runuser");
    c.args(["-u", user, "--", "env", "-i"])
        .arg(format!("HOME=/home/{user}"))
        .arg(format!("USER={user}"))
        .arg("PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .arg(format!("XDG_RUNTIME_DIR=/run/user/{uid}"))
        .args(extra_env)
        .arg(program)
        .current_dir("/tmp");
    c
}

/// A second unprivileged user without any subuid/subgid range (rootless with only itself mapped).
pub const NOSUB_USER: &str = "skiff-nosub";

/// Creates NOSUB_USER (removing the ranges useradd adds by default) and its runtime dir.
fn prepare_nosub_user() -> Result<()> {
    ensure_user(NOSUB_USER)?;
    for file in ["/etc/subuid", "/etc/subgid"] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let kept: String = text
            .lines()
            .filter(|l| !l.starts_with(&format!("{NOSUB_USER}:")))
            .map(|l| format!("{l}\n"))
            .collect();
        if kept != text {
            std::fs::write(file, kept).with_context(|| format!("editing {file}"))?;
        }
    }
    runtime_dir(NOSUB_USER)
}

/// Creates `user` (with a home) unless it exists.
fn ensure_user(user: &str) -> Result<()> {
    let exists = Command::new("id")
        .arg(user)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !exists {
        sh::run(&mut cmd(
            "useradd",
            &["--create-home", "--shell", "/bin/sh", user],
        ))?;
    }
    Ok(())
}

/// The user's /run/user/UID (0700), which logind would make: there is no logind here.
fn runtime_dir(user: &str) -> Result<()> {
    let run = PathBuf::from(format!("/run/user/{}", user_uid(user)?));
    std::fs::create_dir_all(&run).with_context(|| format!("creating {}", run.display()))?;
    sh::run(&mut cmd(
        "chown",
        &[&format!("{user}:{user}"), &run.to_string_lossy()],
    ))?;
    sh::run(&mut cmd("chmod", &["0700", &run.to_string_lossy()]))
}

/// A user's uid.
pub fn user_uid(user: &str) -> Result<u32> {
    sh::output(&mut cmd("id", &["-u", user]))?
        .trim()
        .parse()
        .with_context(|| format!("parsing the uid of {user}"))
}

/// The test user's uid.
pub fn test_uid() -> Result<u32> {
    sh::output(&mut cmd("id", &["-u", TEST_USER]))?
        .trim()
        .parse()
        .context("parsing the test user's uid")
}

fn registry_up() -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = TcpStream::connect_timeout(
        &REGISTRY.parse().expect("constant address"),
        Duration::from_millis(300),
    ) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 16];
    s.read(&mut buf)
        .is_ok_and(|n| buf[..n].starts_with(b"HTTP/1.") && buf[..n].windows(3).any(|w| w == b"200"))
}

fn plain_config() -> String {
    let dir = state_dir();
    format!(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {REGISTRY}\n",
        dir.join("storage").display()
    )
}

fn secure_config() -> String {
    let dir = state_dir();
    format!(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:5443\n  tls:\n    certificate: {tls}/registry.crt\n    key: {tls}/registry.key\nauth:\n  htpasswd:\n    realm: skiff-test\n    path: {dir}/htpasswd\n",
        storage = dir.join("secure-storage").display(),
        tls = dir.join("tls").display(),
        dir = dir.display()
    )
}

/// A test CA, a server certificate for SECURE_HOST signed by it, the htpasswd file, and the
/// /etc/hosts line that makes SECURE_HOST resolve to 127.0.0.1.
fn make_tls_and_htpasswd() -> Result<()> {
    let dir = state_dir();
    let tls = dir.join("tls");
    std::fs::create_dir_all(&tls)?;
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    if !hosts
        .lines()
        .any(|l| l.split_whitespace().skip(1).any(|h| h == SECURE_HOST))
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open("/etc/hosts")
            .context("adding the test host to /etc/hosts")?;
        writeln!(f, "127.0.0.1 {SECURE_HOST}")?;
    }
    if !tls.join("registry.crt").exists() {
        let t = |n: &str| tls.join(n).to_string_lossy().into_owned();
        sh::output(&mut cmd(
            "openssl",
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &t("ca.key"),
                "-out",
                &t("ca.crt"),
                "-days",
                "3650",
                "-subj",
                "/CN=skiff test CA",
            ],
        ))?;
        sh::output(&mut cmd(
            "openssl",
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &t("registry.key"),
                "-out",
                &t("registry.csr"),
                "-subj",
                &format!("/CN={SECURE_HOST}"),
            ],
        ))?;
        std::fs::write(tls.join("ext.cnf"), format!("subjectAltName=DNS:{SECURE_HOST}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"))?;
        sh::output(&mut cmd(
            "openssl",
            &[
                "x509",
                "-req",
                "-in",
                &t("registry.csr"),
                "-CA",
                &t("ca.crt"),
                "-CAkey",
                &t("ca.key"),
                "-CAcreateserial",
                "-out",
                &t("registry.crt"),
                "-days",
                "3650",
                "-extfile",
                &t("ext.cnf"),
            ],
        ))?;
    }
    let hp = sh::output(&mut cmd(
        "htpasswd",
        &["-Bbn", SECURE_USER.0, SECURE_USER.1],
    ))?;
    std::fs::write(dir.join("htpasswd"), hp)?;
    // The CA certificate alone in a directory anyone reads (skopeo's cert dirs pair every .key
    // with a .cert); the keys stay private.
    let ca_dir = ca_dir();
    std::fs::create_dir_all(&ca_dir)?;
    std::fs::copy(tls.join("ca.crt"), ca_dir.join("ca.crt"))?;
    sh::run(&mut cmd(
        "chmod",
        &["0755", &dir.to_string_lossy(), &ca_dir.to_string_lossy()],
    ))?;
    sh::run(&mut cmd(
        "chmod",
        &["0644", &ca_dir.join("ca.crt").to_string_lossy()],
    ))?;
    Ok(())
}

fn answers(addr: &str) -> bool {
    TcpStream::connect_timeout(
        &addr.parse().expect("constant address"),
        Duration::from_millis(300),
    )
    .is_ok()
}

/// Starts `docker-registry serve` with our own config (Debian's turns on htpasswd auth).
fn start_registry(name: &str, addr: &str, config_text: &str) -> Result<()> {
    if answers(addr) {
        eprintln!("xtask: {name} already answers on {addr}");
        return Ok(());
    }
    let dir = state_dir();
    std::fs::create_dir_all(&dir)?;
    let config = dir.join(format!("{name}.yml"));
    std::fs::write(&config, config_text)?;
    let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
    let child = Command::new("docker-registry")
        .args(["serve", &config.to_string_lossy()])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .context("starting docker-registry (apt-get install docker-registry)")?;
    std::fs::write(dir.join(format!("{name}.pid")), child.id().to_string())?;
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(20) {
        if answers(addr) && (addr != REGISTRY || registry_up()) {
            eprintln!("xtask: {name} up on {addr} (pid {})", child.id());
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!(
        "docker-registry did not answer within 20 s; see {}",
        dir.join(format!("{name}.log")).display()
    )
}

/// Stops the registry by its pid and removes its storage.
pub fn down() -> Result<()> {
    let dir = state_dir();
    for (name, addr) in [("registry", REGISTRY), ("secure", "127.0.0.1:5443")] {
        if let Ok(pid) = std::fs::read_to_string(dir.join(format!("{name}.pid"))) {
            let _ = Command::new("kill").arg(pid.trim()).status();
            let t = Instant::now();
            while answers(addr) && t.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("xtask: test environment down");
    Ok(())
}

/// Prints what is up.
pub fn status() -> Result<()> {
    println!(
        "registry {REGISTRY}: {}",
        if registry_up() { "up" } else { "down" }
    );
    println!(
        "registry {SECURE_REGISTRY} (TLS, htpasswd): {}",
        if answers("127.0.0.1:5443") {
            "up"
        } else {
            "down"
        }
    );
    match test_uid() {
        Ok(uid) => println!("test user {TEST_USER}: uid {uid}"),
        Err(_) => println!("test user {TEST_USER}: missing"),
    }
    for p in ["docker-registry", "skopeo", "umoci", "newuidmap", "busybox"] {
        println!("{p}: {}", if sh::have(p) { "present" } else { "missing" });
    }
    Ok(())
}

use std::os::unix::process::CommandExt as _;
