//! The harness: each test gets its own HOME and XDG dirs, runs the real `skiff` binary against
//! the real registries that `cargo xtask testenv up` started, and cleans up through skiff itself.
#![allow(dead_code)]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub mod fault_server;
pub mod pty;

/// The plain registry.
pub const REGISTRY: &str = "127.0.0.1:5000";
/// The TLS + htpasswd registry (registry.skiff.test resolves to 127.0.0.1 via /etc/hosts).
pub const SECURE: &str = "registry.skiff.test:5443";
/// The test CA certificate.
pub const CA: &str = "/tmp/skiff-testenv/ca/ca.crt";

/// A fixture image on the plain registry.
pub fn img(name: &str) -> String {
    format!("{REGISTRY}/{name}")
}

/// The busybox fixture on the plain registry.
pub fn bb() -> String {
    img("busybox")
}

/// Waits until `f` holds, failing the test after 20 seconds with `what`.
pub fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let t = std::time::Instant::now();
    while !f() {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The binary under test: `$SKIFF_BIN`, or the workspace's debug build.
pub fn bin() -> PathBuf {
    std::env::var_os("SKIFF_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/skiff"))
}

/// One isolated user environment.
pub struct Env {
    pub home: tempfile::TempDir,
}

/// A finished command.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Env {
    pub fn new() -> Env {
        let home = tempfile::Builder::new()
            .prefix("skiff-it-")
            .tempdir()
            .expect("temp home");
        std::fs::create_dir_all(home.path().join("run")).expect("runtime dir");
        Env { home }
    }

    pub fn data(&self) -> PathBuf {
        self.home.path().join("data/skiff")
    }

    pub fn config(&self) -> PathBuf {
        self.home.path().join("config/skiff")
    }

    /// A `skiff` command with this environment.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.args(args)
            .env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
            )
            .env("HOME", self.home.path())
            .env("XDG_DATA_HOME", self.home.path().join("data"))
            .env("XDG_CONFIG_HOME", self.home.path().join("config"))
            .env("XDG_CACHE_HOME", self.home.path().join("cache"))
            .env("XDG_RUNTIME_DIR", self.home.path().join("run"))
            .stdin(Stdio::null());
        c
    }

    /// `skiff inspect` of one container, as JSON.
    pub fn state(&self, name: &str) -> serde_json::Value {
        let out = self.ok(&["inspect", "--type", "container", name]).stdout;
        let v: serde_json::Value = serde_json::from_str(&out).expect("inspect prints JSON");
        v[0].clone()
    }

    /// Runs skiff to completion; a run that hangs past two minutes is killed and fails the test,
    /// so the suite always ends.
    pub fn run(&self, args: &[&str]) -> Run {
        let mut child = self
            .cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running skiff");
        let (mut out, mut err) = (
            child.stdout.take().expect("stdout"),
            child.stderr.take().expect("stderr"),
        );
        let out_t = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = std::io::Read::read_to_end(&mut out, &mut v);
            v
        });
        let err_t = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = std::io::Read::read_to_end(&mut err, &mut v);
            v
        });
        let t = std::time::Instant::now();
        let status = loop {
            if let Some(st) = child.try_wait().expect("waiting for skiff") {
                break st;
            }
            if t.elapsed() > std::time::Duration::from_secs(120) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("skiff {args:?} hung for two minutes");
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        let output = Output {
            status,
            stdout: out_t.join().unwrap_or_default(),
            stderr: err_t.join().unwrap_or_default(),
        };
        output.into()
    }

    /// Runs skiff and requires success.
    pub fn ok(&self, args: &[&str]) -> Run {
        let r = self.run(args);
        assert_eq!(r.code, 0, "skiff {args:?} failed: {}{}", r.stdout, r.stderr);
        r
    }

    /// Runs skiff and requires exit 125 with a one-line error containing `needle`.
    pub fn fails(&self, args: &[&str], needle: &str) -> Run {
        let r = self.run(args);
        assert_eq!(
            r.code, 125,
            "skiff {args:?} should fail with 125: {}{}",
            r.stdout, r.stderr
        );
        let err: Vec<&str> = r
            .stderr
            .lines()
            .filter(|l| l.starts_with("Error:"))
            .collect();
        assert_eq!(err.len(), 1, "exactly one error line: {}", r.stderr);
        assert!(
            err[0].contains(needle),
            "error should mention {needle:?}: {}",
            err[0]
        );
        r
    }

    /// Pulls a fixture from the plain registry quietly.
    pub fn pull(&self, name: &str) -> Run {
        self.ok(&["pull", "-q", &format!("{REGISTRY}/{name}")])
    }

    /// The image's unpacked layer directories, lowest first (chain ids from `inspect`).
    pub fn layer_dirs(&self, image: &str) -> Vec<PathBuf> {
        let out = self.ok(&["inspect", image]);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("inspect json");
        let diff_ids: Vec<String> = v[0]["RootFS"]["Layers"]
            .as_array()
            .expect("layers")
            .iter()
            .map(|d| d.as_str().expect("str").to_string())
            .collect();
        let mut chain: Vec<String> = Vec::new();
        for d in diff_ids {
            let next = match chain.last() {
                None => d,
                Some(prev) => format!("sha256:{}", sha256_hex(format!("{prev} {d}").as_bytes())),
            };
            chain.push(next);
        }
        chain
            .iter()
            .map(|c| self.data().join("layers").join(&c[7..]))
            .collect()
    }

    /// Every blob in the store, checked against its name; returns how many there are.
    pub fn verify_blobs(&self) -> usize {
        let dir = self.data().join("store/blobs/sha256");
        let Ok(rd) = std::fs::read_dir(&dir) else {
            return 0;
        };
        let mut n = 0;
        for e in rd {
            let e = e.expect("entry");
            let bytes = std::fs::read(e.path()).expect("blob");
            assert_eq!(
                sha256_hex(&bytes),
                e.file_name().to_string_lossy(),
                "blob {:?} does not match its digest",
                e.path()
            );
            n += 1;
        }
        n
    }

    /// Ids of the container records (lock files aside).
    pub fn containers(&self) -> Vec<String> {
        self.entries("containers")
            .into_iter()
            .filter(|n| !n.starts_with('.'))
            .collect()
    }

    /// Entries of a store subdirectory (empty when missing).
    pub fn entries(&self, sub: &str) -> Vec<String> {
        std::fs::read_dir(self.data().join(sub))
            .map(|rd| {
                rd.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Env {
    /// Removes everything through skiff (layer files may belong to subordinate ids the test user
    /// cannot delete directly), then the temp home.
    fn drop(&mut self) {
        // A test that failed half-way may leave containers running: stop them (and so their
        // monitors and network helpers) before their files go.
        let ids = self.run(&["ps", "-aq"]).stdout;
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids);
            let _ = self.run(&args);
        }
        // Containers' upper dirs and volumes may hold files of mapped ids: remove them from inside
        // the user namespace.
        let dirs: Vec<String> = ["containers", "volumes"]
            .iter()
            .map(|d| self.data().join(d))
            .filter(|p| p.exists())
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        if !dirs.is_empty() {
            let mut args = vec!["unshare", "rm", "-rf"];
            args.extend(dirs.iter().map(String::as_str));
            let _ = self.run(&args);
        }
        if self.data().join("store/index.json").exists() {
            let ids = self.run(&["images", "-q"]);
            for id in ids.stdout.lines() {
                let _ = self.run(&["rmi", "-f", id]);
            }
            let _ = self.run(&["image", "prune", "-f"]);
        }
    }
}

/// Lowercase hex sha256 via the system's sha256sum (keeps this crate free of hashing deps).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha256sum");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(bytes)
        .expect("write");
    let out = child.wait_with_output().expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("hash")
        .to_string()
}

/// Whether the tests run as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The host id that container id `id` is stored as: itself for root; for a rootless user with a
/// subuid range, range start + id - 1 (0 is the user itself).
pub fn host_uid(id: u32) -> u32 {
    if is_root() {
        return id;
    }
    // SAFETY: getuid has no preconditions.
    let me = unsafe { libc::getuid() };
    if id == 0 {
        return me;
    }
    let name = std::env::var("USER").ok().or_else(|| {
        let out = Command::new("id").arg("-un").output().ok()?;
        Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
    });
    let text = std::fs::read_to_string("/etc/subuid").expect("/etc/subuid");
    let start: u32 = text
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() == 3 && (Some(f[0]) == name.as_deref() || f[0] == me.to_string()))
                .then(|| f[1].parse().expect("subuid start"))
        })
        .expect("the test user needs a subuid range");
    start + id - 1
}

/// Owner uid of a path (not following symlinks).
pub fn owner(p: &Path) -> u32 {
    std::fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .uid()
}

/// The digest the registry serves for `name:tag`, read with curl-less raw HTTP.
pub fn registry_digest(name: &str, tag: &str) -> String {
    use std::io::{Read, Write};
    let mut s =
        std::net::TcpStream::connect(REGISTRY).expect("registry up (cargo xtask testenv up)");
    let accept = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";
    write!(
        s,
        "HEAD /v2/{name}/manifests/{tag} HTTP/1.0\r\nHost: {REGISTRY}\r\nAccept: {accept}\r\n\r\n"
    )
    .expect("request");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("response");
    resp.lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with("docker-content-digest:")
                .then(|| l.split_once(':').expect("header").1.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no digest header in {resp}"))
}

/// A port that is free on the host right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET / on 127.0.0.1:port, retried while the server inside starts (at most 20 s).
pub fn http_get(port: u16) -> String {
    let t = std::time::Instant::now();
    loop {
        let attempt = std::net::TcpStream::connect(("127.0.0.1", port)).and_then(|mut s| {
            s.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
            std::io::Write::write_all(&mut s, b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")?;
            let mut body = String::new();
            std::io::Read::read_to_string(&mut s, &mut body)?;
            Ok(body)
        });
        match attempt {
            Ok(body) if body.contains("200") => return body,
            other => {
                assert!(
                    t.elapsed() < std::time::Duration::from_secs(20),
                    "no answer on port {port}: {other:?}"
                );
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
    }
}

/// Whether the host port can be bound again (its forwarder is gone), waiting up to 10 s.
pub fn port_released(port: u16) -> bool {
    let t = std::time::Instant::now();
    while t.elapsed() < std::time::Duration::from_secs(10) {
        if std::net::TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    false
}

/// The host's first non-loopback IPv4 address, where a server of the test listens.
pub fn host_address() -> Option<String> {
    let out = std::process::Command::new("hostname")
        .arg("-I")
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|a| {
            a.parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| !ip.is_loopback())
        })
        .map(str::to_string)
}
