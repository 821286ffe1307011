//! Fixture images built offline from layer tars written here, assembled with umoci and pushed to
//! the local registry with skopeo. Digests are never hard-coded: tests read them from the registry.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest as _, Sha256};

use crate::services::REGISTRY;
use crate::sh::{self, cmd};

const MTIME: u64 = 1_700_000_000;
const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The greeting the `hello` image prints.
pub const GREETING: &str = "Hello from skiff!";

/// Host architecture in OCI spelling.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        "x86_64" => "amd64",
        other => other,
    }
}

struct Layer {
    b: tar::Builder<Vec<u8>>,
}

impl Layer {
    fn new() -> Layer {
        Layer {
            b: tar::Builder::new(Vec::new()),
        }
    }
    fn header(kind: tar::EntryType, mode: u32, uid: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(uid);
        h.set_mtime(MTIME);
        h.set_size(0);
        h
    }
    fn dir(&mut self, path: &str, mode: u32, uid: u64) -> Result<()> {
        let mut h = Self::header(tar::EntryType::Directory, mode, uid);
        Ok(self.b.append_data(&mut h, path, &b""[..])?)
    }
    fn file(&mut self, path: &str, mode: u32, uid: u64, data: &[u8]) -> Result<()> {
        let mut h = Self::header(tar::EntryType::Regular, mode, uid);
        h.set_size(data.len() as u64);
        Ok(self.b.append_data(&mut h, path, data)?)
    }
    fn symlink(&mut self, path: &str, target: &str) -> Result<()> {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0);
        Ok(self.b.append_link(&mut h, path, target)?)
    }
    fn hardlink(&mut self, path: &str, target: &str) -> Result<()> {
        let mut h = Self::header(tar::EntryType::Link, 0o644, 0);
        Ok(self.b.append_link(&mut h, path, target)?)
    }
    fn write(self, path: &Path) -> Result<PathBuf> {
        let bytes = self.b.into_inner()?;
        std::fs::write(path, bytes)?;
        Ok(path.to_path_buf())
    }
}

/// busybox-static and its applet links, with /etc/passwd and /etc/group.
fn busybox_layer(path: &Path) -> Result<PathBuf> {
    let mut l = Layer::new();
    for d in [
        "bin/", "etc/", "tmp/", "root/", "home/", "usr/", "usr/bin/", "var/",
    ] {
        l.dir(d, if d == "tmp/" { 0o1777 } else { 0o755 }, 0)?;
    }
    let busybox = std::fs::read("/bin/busybox")
        .context("reading /bin/busybox (apt-get install busybox-static)")?;
    l.file("bin/busybox", 0o755, 0, &busybox)?;
    let list = sh::output(&mut cmd("/bin/busybox", &["--list"]))?;
    for applet in list
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && *a != "busybox" && *a != "printenv" && !a.contains('/'))
    {
        l.symlink(&format!("bin/{applet}"), "busybox")?;
    }
    // Debian's busybox has no printenv applet; Docker users expect `run busybox printenv`.
    l.file("bin/printenv", 0o755, 0, b"#!/bin/sh\nexec env\n")?;
    l.file("etc/passwd", 0o644, 0, b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\nuser:x:1000:1000:user:/home/user:/bin/sh\n")?;
    l.file(
        "etc/group",
        0o644,
        0,
        b"root:x:0:\nnogroup:x:65534:\nuser:x:1000:\nextra:x:2000:user\n",
    )?;
    l.write(path)
}

/// The two layers of the `layers` image: ownership, links, a deleted file and an opaque dir.
fn multilayer(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let mut a = Layer::new();
    a.dir("etc/", 0o755, 0)?;
    a.file("etc/motd", 0o644, 0, b"lower motd\n")?;
    a.hardlink("etc/motd.hard", "etc/motd")?;
    a.dir("lib/", 0o755, 0)?;
    a.symlink("lib/rel", "../etc/motd")?;
    a.symlink("lib/abs", "/etc/motd")?;
    a.dir("home/", 0o755, 0)?;
    a.dir("home/user/", 0o750, 1000)?;
    a.file("home/user/owned", 0o600, 1000, b"mine\n")?;
    a.file("bin-suid", 0o4755, 0, b"#!/bin/sh\n")?;
    a.dir("deleted/", 0o755, 0)?;
    a.file("deleted/file", 0o644, 0, b"to be deleted\n")?;
    a.file("deleted/kept", 0o644, 0, b"kept\n")?;
    a.dir("opaque/", 0o755, 0)?;
    a.file("opaque/old", 0o644, 0, b"hidden by opaque\n")?;
    let la = a.write(&dir.join("ml-a.tar"))?;
    let mut b = Layer::new();
    b.dir("deleted/", 0o755, 0)?;
    b.file("deleted/.wh.file", 0o644, 0, b"")?;
    b.dir("opaque/", 0o755, 0)?;
    b.file("opaque/.wh..wh..opq", 0o644, 0, b"")?;
    b.file("opaque/new", 0o644, 0, b"upper\n")?;
    b.file("etc/motd", 0o644, 0, b"upper motd\n")?;
    let lb = b.write(&dir.join("ml-b.tar"))?;
    Ok((la, lb))
}

/// Pseudo-random bytes (xorshift): incompressible, deterministic, fast.
fn noise(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut v = Vec::with_capacity(n + 8);
    while v.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(n);
    v
}

fn umoci_image(
    layout: &Path,
    tag: &str,
    layers: &[PathBuf],
    arch: &str,
    cmd_args: &[&str],
) -> Result<()> {
    let image = format!("{}:{tag}", layout.display());
    sh::output(&mut cmd("umoci", &["new", "--image", &image]))?;
    for l in layers {
        sh::output(&mut cmd(
            "umoci",
            &["raw", "add-layer", "--image", &image, &l.to_string_lossy()],
        ))?;
    }
    let mut c = cmd(
        "umoci",
        &[
            "config",
            "--image",
            &image,
            "--architecture",
            arch,
            "--os",
            "linux",
            "--config.env",
            PATH_ENV,
            "--created",
            "2024-01-02T03:04:05Z",
        ],
    );
    for a in cmd_args {
        c.args(["--config.cmd", a]);
    }
    sh::output(&mut c)?;
    Ok(())
}

fn push(layout: &Path, tag: &str, dest: &str, extra: &[&str]) -> Result<()> {
    let mut c = cmd("skopeo", &["copy", "--quiet", "--dest-tls-verify=false"]);
    c.args(extra)
        .arg(format!("oci:{}:{tag}", layout.display()))
        .arg(format!("docker://{REGISTRY}/{dest}"));
    sh::output(&mut c).map(|_| ())
}

/// Writes an image index over two manifests of the layout and tags it `name` in index.json.
fn make_index(layout: &Path, name: &str, tags: &[(&str, &str)]) -> Result<()> {
    let index_path = layout.join("index.json");
    let mut top: serde_json::Value = serde_json::from_slice(&std::fs::read(&index_path)?)?;
    let mut entries = Vec::new();
    for (tag, arch) in tags {
        let d = top["manifests"]
            .as_array()
            .and_then(|m| {
                m.iter()
                    .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == *tag)
            })
            .with_context(|| format!("tag {tag} in the fixture layout"))?;
        entries.push(serde_json::json!({
            "mediaType": d["mediaType"], "digest": d["digest"], "size": d["size"],
            "platform": { "os": "linux", "architecture": arch },
        }));
    }
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries,
    }))?;
    let hex = hex_of(&index);
    std::fs::write(layout.join("blobs/sha256").join(&hex), &index)?;
    if let Some(m) = top["manifests"].as_array_mut() {
        m.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json", "digest": format!("sha256:{hex}"), "size": index.len(),
            "annotations": { "org.opencontainers.image.ref.name": name },
        }));
    }
    std::fs::write(&index_path, serde_json::to_vec(&top)?)?;
    Ok(())
}

fn hex_of(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// Layers of the `deep` image (busybox and one small file each).
pub const DEEP_LAYERS: usize = 60;

/// Builds every fixture and pushes it to the registry.
pub fn build_and_push() -> Result<()> {
    let t = std::time::Instant::now();
    let work = std::env::temp_dir().join(format!("skiff-fixtures-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let layout = work.join("layout");
    sh::output(&mut cmd(
        "umoci",
        &["init", "--layout", &layout.to_string_lossy()],
    ))?;
    let arch = host_arch();

    let bb = busybox_layer(&work.join("busybox.tar"))?;
    umoci_image(&layout, "busybox", std::slice::from_ref(&bb), arch, &["sh"])?;
    push(&layout, "busybox", "busybox:latest", &[])?;
    push(&layout, "busybox", "busybox:v2s2", &["--format", "v2s2"])?;
    push(
        &layout,
        "busybox",
        "busybox:zstd",
        &["--dest-compress-format", "zstd"],
    )?;
    push(&layout, "busybox", "busybox:plain", &["--dest-decompress"])?;
    // Where a registry mirror keeps Docker Hub's busybox: the plugin tests' mirror rewrites
    // docker.io/library/busybox to it.
    push(&layout, "busybox", "library/busybox:latest", &[])?;

    if std::path::Path::new("/etc/hosts").exists()
        && std::fs::read_to_string("/etc/hosts")
            .unwrap_or_default()
            .contains(crate::services::SECURE_HOST)
    {
        let certs = crate::services::ca_dir();
        let (u, p) = crate::services::SECURE_USER;
        let mut c = cmd(
            "skopeo",
            &[
                "copy",
                "--quiet",
                "--dest-creds",
                &format!("{u}:{p}"),
                "--dest-cert-dir",
                &certs.to_string_lossy(),
            ],
        );
        c.arg(format!("oci:{}:busybox", layout.display()))
            .arg(format!(
                "docker://{}/private/busybox:latest",
                crate::services::SECURE_REGISTRY
            ));
        sh::output(&mut c)?;
    }

    umoci_image(
        &layout,
        "hello",
        std::slice::from_ref(&bb),
        arch,
        &["/bin/echo", GREETING],
    )?;
    push(&layout, "hello", "hello:latest", &[])?;

    // EXPOSEs a TCP and a UDP port, for -P.
    umoci_image(&layout, "web", std::slice::from_ref(&bb), arch, &["sh"])?;
    sh::output(&mut cmd(
        "umoci",
        &[
            "config",
            "--image",
            &format!("{}:web", layout.display()),
            "--config.exposedports",
            "80/tcp",
            "--config.exposedports",
            "53/udp",
        ],
    ))?;
    push(&layout, "web", "web:latest", &[])?;

    let (la, lb) = multilayer(&work)?;
    umoci_image(&layout, "layers", &[bb.clone(), la, lb], arch, &["sh"])?;
    push(&layout, "layers", "layers:latest", &[])?;

    for a in ["amd64", "arm64"] {
        let mut l = Layer::new();
        l.file("arch", 0o644, 0, format!("{a}\n").as_bytes())?;
        let p = l.write(&work.join(format!("arch-{a}.tar")))?;
        umoci_image(&layout, &format!("ma-{a}"), &[p], a, &["cat", "/arch"])?;
    }
    make_index(
        &layout,
        "multiarch",
        &[("ma-amd64", "amd64"), ("ma-arm64", "arm64")],
    )?;
    push(&layout, "multiarch", "multiarch:latest", &["--all"])?;
    push(
        &layout,
        "multiarch",
        "multiarch:docker",
        &["--all", "--format", "v2s2"],
    )?;

    // 60 layers: more than mount(2)'s one page of overlay options holds.
    let mut deep = vec![bb.clone()];
    for n in 1..DEEP_LAYERS {
        let mut l = Layer::new();
        l.file(
            &format!("deep/{n:02}"),
            0o644,
            0,
            format!("{n}\n").as_bytes(),
        )?;
        deep.push(l.write(&work.join(format!("deep-{n}.tar")))?);
    }
    umoci_image(&layout, "deep", &deep, arch, &["sh"])?;
    push(&layout, "deep", "deep:latest", &[])?;

    let mut big1 = Layer::new();
    big1.file("noise.bin", 0o644, 0, &noise(50 << 20))?;
    let b1 = big1.write(&work.join("big1.tar"))?;
    let mut big2 = Layer::new();
    let text: Vec<u8> = b"the quick brown fox jumps over the lazy dog\n"
        .iter()
        .copied()
        .cycle()
        .take(50 << 20)
        .collect();
    big2.file("text.txt", 0o644, 0, &text)?;
    let b2 = big2.write(&work.join("big2.tar"))?;
    umoci_image(&layout, "big", &[bb, b1, b2], arch, &["sh"])?;
    push(&layout, "big", "big:latest", &[])?;

    std::fs::remove_dir_all(&work)?;
    let mut out = std::io::stderr();
    writeln!(
        out,
        "xtask: fixtures pushed to {REGISTRY} in {:.1}s",
        t.elapsed().as_secs_f64()
    )?;
    Ok(())
}
