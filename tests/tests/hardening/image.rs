//! Image content on the host: symlinks, non-regular files, forged overlay xattrs, sparse bombs and lying sizes.
//! Hostile images are built byte by byte here and served by the lying registry in
//! `common::fault_server` (a real registry will not serve a blob longer than its descriptor).

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use super::common::fault_server::{serve, serve_with, Faults};
use super::common::*;

/// A tar archive written header by header, so any entry a hostile layer could hold can be made.
struct Tar(Vec<u8>);

fn octal(field: &mut [u8], v: u64) {
    let s = format!("{v:0w$o}", w = field.len() - 1);
    field[..s.len()].copy_from_slice(s.as_bytes());
}

impl Tar {
    fn new() -> Tar {
        Tar(Vec::new())
    }

    /// A ustar header (GNU magic when `gnu`), with the checksum filled in; returns it for edits.
    fn header(name: &str, flag: u8, size: u64, link: &str, mode: u32, gnu: bool) -> [u8; 512] {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        octal(&mut h[100..108], u64::from(mode));
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        octal(&mut h[124..136], size);
        octal(&mut h[136..148], 1_600_000_000);
        h[156] = flag;
        h[157..157 + link.len()].copy_from_slice(link.as_bytes());
        if gnu {
            h[257..265].copy_from_slice(b"ustar  \0");
        } else {
            h[257..263].copy_from_slice(b"ustar\0");
            h[263..265].copy_from_slice(b"00");
        }
        h
    }

    fn push(&mut self, mut h: [u8; 512], data: &[u8]) -> &mut Tar {
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        self.0.extend_from_slice(&h);
        self.0.extend_from_slice(data);
        self.0.resize(self.0.len().div_ceil(512) * 512, 0);
        self
    }

    fn file(&mut self, name: &str, data: &[u8]) -> &mut Tar {
        let h = Tar::header(name, b'0', data.len() as u64, "", 0o644, false);
        self.push(h, data)
    }

    fn dir(&mut self, name: &str) -> &mut Tar {
        let h = Tar::header(name, b'5', 0, "", 0o755, false);
        self.push(h, b"")
    }

    fn symlink(&mut self, name: &str, target: &str) -> &mut Tar {
        let h = Tar::header(name, b'2', 0, target, 0o777, false);
        self.push(h, b"")
    }

    fn fifo(&mut self, name: &str) -> &mut Tar {
        let h = Tar::header(name, b'6', 0, "", 0o644, false);
        self.push(h, b"")
    }

    /// PAX extended attributes for the next entry (`SCHILY.xattr.NAME` records carry xattrs).
    fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Tar {
        let mut body = Vec::new();
        for (k, v) in records {
            let rest = k.len() + v.len() + 3; // ' ', '=', '\n'
            let mut len = rest + 1;
            while len != rest + len.to_string().len() {
                len = rest + len.to_string().len();
            }
            body.extend_from_slice(format!("{len} {k}=").as_bytes());
            body.extend_from_slice(v);
            body.push(b'\n');
        }
        let h = Tar::header("pax", b'x', body.len() as u64, "", 0o644, false);
        self.push(h, &body)
    }

    /// A GNU sparse file of `real` bytes whose only data is `tail`, at its end.
    fn sparse(&mut self, name: &str, real: u64, tail: &[u8]) -> &mut Tar {
        let mut h = Tar::header(name, b'S', tail.len() as u64, "", 0o644, true);
        octal(&mut h[386..398], real - tail.len() as u64);
        octal(&mut h[398..410], tail.len() as u64);
        octal(&mut h[483..495], real);
        self.push(h, tail)
    }

    fn finish(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.0);
        out.extend_from_slice(&[0u8; 1024]);
        out
    }
}

fn digest(b: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(b))
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const BLOB: &str = "application/octet-stream";

type Routes = HashMap<String, (String, Vec<u8>)>;

/// Adds the image `repo:latest` with uncompressed `layers` (lowest first) to `routes`; `edit`
/// may change the manifest (sizes, say) before it is served. Returns the manifest bytes.
fn add_image(
    routes: &mut Routes,
    repo: &str,
    layers: &[Vec<u8>],
    edit: impl FnOnce(&mut serde_json::Value),
) -> Vec<u8> {
    let diff_ids: Vec<String> = layers.iter().map(|l| digest(l)).collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": host_arch(), "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids}, "config": {},
    }))
    .unwrap();
    let mut manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest(&config), "size": config.len()},
        "layers": layers.iter().map(|l| serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": digest(l), "size": l.len(),
        })).collect::<Vec<_>>(),
    });
    edit(&mut manifest);
    let manifest = serde_json::to_vec(&manifest).unwrap();
    routes.insert("/v2/".into(), ("application/json".into(), b"{}".to_vec()));
    routes.insert(
        format!("/v2/{repo}/manifests/latest"),
        (MANIFEST.into(), manifest.clone()),
    );
    routes.insert(
        format!("/v2/{repo}/blobs/{}", digest(&config)),
        (BLOB.into(), config),
    );
    for l in layers {
        routes.insert(
            format!("/v2/{repo}/blobs/{}", digest(l)),
            (BLOB.into(), l.clone()),
        );
    }
    manifest
}

/// A host file only the host has: unique name under /tmp, readable by anyone.
struct HostFile(std::path::PathBuf);

impl HostFile {
    fn new(tag: &str, text: &str) -> HostFile {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let p = std::path::PathBuf::from(format!(
            "/tmp/skiff-host-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::write(&p, text).unwrap();
        HostFile(p)
    }
    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for HostFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `-u` resolution reads the image's /etc/passwd and /etc/group on the host: a symlink there,
/// absolute or climbing with `..`, must resolve inside the image, never to the host's file; a
/// symlink that stays in the image (to a lower layer's file) works.
#[test]
fn image_passwd_symlinks_resolve_inside_the_image_never_on_the_host() {
    let pw = HostFile::new("passwd", "hostonly:x:4242:4242::/:/bin/sh\n");
    let gr = HostFile::new("group", "hostgroup:x:4343:\n");
    let mut routes = Routes::new();
    let escape = Tar::new()
        .dir("etc/")
        .symlink("etc/passwd", pw.path())
        .symlink("etc/group", &format!("../../../../../../..{}", gr.path()))
        .finish();
    add_image(&mut routes, "escape", &[escape], |_| {});
    let lower = Tar::new()
        .dir("usr/")
        .dir("usr/lib/")
        .file(
            "usr/lib/passwd",
            b"libuser:x:1234:1234::/home/lib:/bin/sh\n",
        )
        .file("usr/lib/group", b"libgroup:x:777:libuser\n")
        .finish();
    let upper = Tar::new()
        .dir("etc/")
        .symlink("etc/passwd", "../usr/lib/passwd")
        .symlink("etc/group", "/usr/lib/group")
        .finish();
    add_image(&mut routes, "legit", &[lower, upper], |_| {});
    let addr = serve(routes);
    let env = Env::new();
    let escape = format!("{addr}/escape");
    env.ok(&["pull", "-q", &escape]);
    env.fails(
        &["create", "-u", "hostonly", &escape, "true"],
        "unable to find user hostonly",
    );
    env.fails(
        &["create", "-u", "0:hostgroup", &escape, "true"],
        "unable to find group hostgroup",
    );
    let legit = format!("{addr}/legit");
    env.ok(&["pull", "-q", &legit]);
    env.ok(&["create", "-u", "libuser:libgroup", &legit, "true"]);
}

/// /etc/passwd pointing at /dev/zero (which the image does not have) resolves to nothing, so
/// nothing is read without end; a fifo is refused rather than blocking; a huge file is refused
/// rather than read whole.
#[test]
fn image_id_files_that_are_devices_fifos_or_huge_are_refused() {
    let mut routes = Routes::new();
    let zero = Tar::new()
        .dir("etc/")
        .symlink("etc/passwd", "/dev/zero")
        .finish();
    add_image(&mut routes, "zero", &[zero], |_| {});
    let fifo = Tar::new().dir("etc/").fifo("etc/group").finish();
    add_image(&mut routes, "fifo", &[fifo], |_| {});
    let mut big = b"root:x:0:0::/root:/bin/sh\n".to_vec();
    big.resize(5 << 20, b'#');
    let huge = Tar::new().dir("etc/").file("etc/passwd", &big).finish();
    add_image(&mut routes, "huge", &[huge], |_| {});
    let addr = serve(routes);
    let env = Env::new();
    for name in ["zero", "fifo", "huge"] {
        env.ok(&["pull", "-q", &format!("{addr}/{name}")]);
    }
    let t = Instant::now();
    env.ok(&["create", "-u", "0", &format!("{addr}/zero"), "true"]);
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    env.fails(
        &["create", &format!("{addr}/fifo"), "true"],
        "/etc/group is not a regular file",
    );
    env.fails(
        &["create", &format!("{addr}/huge"), "true"],
        "/etc/passwd is larger than 4194304 bytes",
    );
}

/// A layer's own `user.overlay.opaque` xattr would make overlayfs hide the lower layers' files
/// in that directory (and `redirect`/`whiteout` ones worse): such xattrs are dropped on unpack,
/// so the lower file stays visible in the container; the real opaque marker still works.
#[test]
fn forged_overlay_xattrs_in_a_layer_are_dropped() {
    let lower = Tar::new()
        .dir("d/")
        .file("d/keep.txt", b"lower\n")
        .dir("o/")
        .file("o/hidden.txt", b"hidden\n")
        .finish();
    let upper = Tar::new()
        .pax(&[
            ("SCHILY.xattr.user.overlay.opaque", b"y"),
            ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
            ("SCHILY.xattr.user.overlay.redirect", b"/o"),
        ])
        .dir("d/")
        .pax(&[("SCHILY.xattr.user.overlay.whiteout", b"y")])
        .file("d/new.txt", b"upper\n")
        .dir("o/")
        .file("o/.wh..wh..opq", b"")
        .finish();
    let mut routes = Routes::new();
    add_image(&mut routes, "xattrs", &[lower, upper], |_| {});
    let addr = serve(routes);
    let env = Env::new();
    let image = format!("{addr}/xattrs");
    env.ok(&["pull", "-q", &image]);
    let top = env.layer_dirs(&image).pop().unwrap();
    for (path, x) in [
        ("d", "user.overlay.opaque"),
        ("d", "trusted.overlay.opaque"),
        ("d", "user.overlay.redirect"),
        ("d/new.txt", "user.overlay.whiteout"),
    ] {
        assert!(
            lgetxattr(&top.join(path), x).is_none(),
            "{x} on {path} must not be written"
        );
    }
    let id = env
        .ok(&["create", &image, "true"])
        .stdout
        .trim()
        .to_string();
    let out = env.home.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let dest = out.to_str().unwrap();
    env.ok(&["cp", &format!("{id}:/d/keep.txt"), dest]);
    assert_eq!(
        std::fs::read_to_string(out.join("keep.txt")).unwrap(),
        "lower\n"
    );
    env.ok(&["cp", &format!("{id}:/d/new.txt"), dest]);
    // The control: the layer's real opaque marker does hide the lower o/hidden.txt.
    let r = env.run(&["cp", &format!("{id}:/o/hidden.txt"), dest]);
    assert_ne!(r.code, 0, "o/ is opaque: {}{}", r.stdout, r.stderr);
}

fn lgetxattr(p: &std::path::Path, name: &str) -> Option<Vec<u8>> {
    let path = std::ffi::CString::new(p.to_str()?).ok()?;
    let name = std::ffi::CString::new(name).ok()?;
    let mut buf = [0u8; 256];
    // SAFETY: valid C strings and a buffer of the given length.
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    (n >= 0).then(|| buf[..n as usize].to_vec())
}

/// A 3 KiB layer holding a GNU sparse file of 256 MiB: written with holes it costs no disk, and
/// `[storage] max_layer_size` below its size refuses it, naming the setting.
#[test]
fn a_sparse_layer_costs_no_disk_and_the_layer_size_limit_holds() {
    let real = 256u64 << 20;
    let layer = Tar::new().sparse("big", real, b"end").finish();
    assert!(layer.len() < 4096);
    let mut routes = Routes::new();
    add_image(&mut routes, "sparse", &[layer], |_| {});
    let addr = serve(routes);
    let image = format!("{addr}/sparse");
    let env = Env::new();
    env.ok(&["pull", "-q", &image]);
    let big = env.layer_dirs(&image)[0].join("big");
    let md = std::fs::metadata(&big).unwrap();
    assert_eq!(md.len(), real);
    assert!(
        md.blocks() * 512 < 4 << 20,
        "holes must not cost disk: {} bytes allocated",
        md.blocks() * 512
    );

    let limited = Env::new();
    std::fs::create_dir_all(limited.config()).unwrap();
    std::fs::write(
        limited.config().join("config.toml"),
        "[storage]\nmax_layer_size = \"64MiB\"\n",
    )
    .unwrap();
    limited.fails(&["pull", "-q", &image], "max_layer_size");
    assert!(
        limited
            .entries("layers")
            .iter()
            .all(|n| n.ends_with(".size")),
        "no layer left: {:?}",
        limited.entries("layers")
    );
}

/// A layer whose descriptor says 1 byte, served as 32 MiB dripping slowly: the download stops at
/// the first byte past the declared size (at once when the length is announced, after at most a
/// chunk when it is not), instead of reading to the end before refusing it; the error says the
/// blob is larger than declared, not "truncated".
#[test]
fn a_blob_longer_than_declared_is_cut_off_at_its_declared_size() {
    for no_length in [false, true] {
        let layer = Tar::new().file("f", b"x").finish();
        let mut routes = Routes::new();
        add_image(&mut routes, "long", std::slice::from_ref(&layer), |m| {
            m["layers"][0]["size"] = 1.into();
        });
        let blob = routes
            .get_mut(&format!("/v2/long/blobs/{}", digest(&layer)))
            .unwrap();
        blob.1 = (0..32u32 << 20).map(|i| (i % 251) as u8).collect();
        let faults = Faults {
            drip: Some(Duration::from_millis(1)),
            no_length,
            ..Faults::default()
        };
        let sent = faults.sent.clone();
        let addr = serve_with(routes, faults);
        let env = Env::new();
        let t = Instant::now();
        let r = env.fails(
            &["pull", "-q", &format!("{addr}/long")],
            "larger than the 1 bytes its descriptor declares",
        );
        assert!(!r.stderr.contains("truncated"), "{}", r.stderr);
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "stopped early (no_length={no_length}): {:?}",
            t.elapsed()
        );
        let sent = sent.load(std::sync::atomic::Ordering::SeqCst);
        assert!(sent < 1 << 20, "read {sent} bytes of a 1-byte blob");
        assert!(env.entries("tmp").is_empty(), "{:?}", env.entries("tmp"));
    }
}

/// Manifests over 4 MiB and configs over 8 MiB are refused: a config whose descriptor declares
/// 9 MiB is never downloaded, an index entry declaring a 5 MiB manifest is never fetched, and a
/// served 5 MiB manifest is refused.
#[test]
fn oversized_manifests_and_configs_are_refused() {
    let layer = Tar::new().file("f", b"x").finish();
    let mut routes = Routes::new();
    add_image(
        &mut routes,
        "bigconfig",
        std::slice::from_ref(&layer),
        |m| {
            m["config"]["size"] = (9u64 << 20).into();
        },
    );
    let manifest = add_image(
        &mut routes,
        "bigentry",
        std::slice::from_ref(&layer),
        |_| {},
    );
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": INDEX,
        "manifests": [{"mediaType": MANIFEST, "digest": digest(&manifest), "size": 5u64 << 20,
                       "platform": {"architecture": host_arch(), "os": "linux"}}],
    }))
    .unwrap();
    routes.insert(
        "/v2/bigentry/manifests/latest".into(),
        (INDEX.into(), index),
    );
    routes.insert(
        format!("/v2/bigentry/manifests/{}", digest(&manifest)),
        (MANIFEST.into(), manifest),
    );
    let mut padded = add_image(&mut routes, "bigmanifest", &[layer], |_| {});
    padded.truncate(padded.len() - 1);
    padded.resize(5 << 20, b' ');
    padded.push(b'}');
    routes.insert(
        "/v2/bigmanifest/manifests/latest".into(),
        (MANIFEST.into(), padded),
    );
    let addr = serve(routes);
    let env = Env::new();
    env.fails(
        &["pull", "-q", &format!("{addr}/bigconfig")],
        "larger than 8388608 bytes",
    );
    env.fails(
        &["pull", "-q", &format!("{addr}/bigentry")],
        "larger than 4194304 bytes",
    );
    env.fails(
        &["pull", "-q", &format!("{addr}/bigmanifest")],
        "larger than 4194304 bytes",
    );
    assert!(env.entries("tmp").is_empty(), "{:?}", env.entries("tmp"));
}

/// `load` unpacks an archive and reads its manifest.json, config and layers: a symlink there to
/// a host file (here a valid image config the host has, naming the archive's own layer) must
/// resolve inside the archive, so the load is refused instead of importing the host's file.
#[test]
fn load_reads_archive_files_inside_the_archive_never_through_its_symlinks() {
    let layer = Tar::new().file("hello.txt", b"hi\n").finish();
    let config = serde_json::json!({
        "architecture": host_arch(), "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [digest(&layer)]}, "config": {},
    });
    let host_config = HostFile::new("config", &config.to_string());
    let host_layer = HostFile::new("layer", "");
    std::fs::write(&host_layer.0, &layer).unwrap();
    let make = |cfg_link: &str, layer_link: &str| {
        let manifest = serde_json::json!([{
            "Config": "cfg.json", "RepoTags": ["hostile:loaded"], "Layers": ["l/layer.tar"],
        }]);
        let mut t = Tar::new();
        t.file("manifest.json", manifest.to_string().as_bytes());
        if cfg_link.is_empty() {
            t.file("cfg.json", config.to_string().as_bytes());
        } else {
            t.symlink("cfg.json", cfg_link);
        }
        t.dir("l/");
        if layer_link.is_empty() {
            t.file("l/layer.tar", &layer);
        } else {
            t.symlink("l/layer.tar", layer_link);
        }
        t.finish()
    };
    let env = Env::new();
    let dir = env.home.path().join("archives");
    std::fs::create_dir(&dir).unwrap();
    for (name, cfg, lay) in [
        ("cfg-abs", host_config.path().to_string(), String::new()),
        (
            "cfg-rel",
            format!("../../../../../..{}", host_config.path()),
            String::new(),
        ),
        ("layer-abs", String::new(), host_layer.path().to_string()),
    ] {
        let p = dir.join(format!("{name}.tar"));
        std::fs::write(&p, make(&cfg, &lay)).unwrap();
        env.fails(&["load", "-i", p.to_str().unwrap()], "is missing");
        assert!(env.ok(&["images", "-q"]).stdout.is_empty(), "{name}");
    }
    // The control: the same archive with its own files loads.
    let p = dir.join("good.tar");
    std::fs::write(&p, make("", "")).unwrap();
    env.ok(&["load", "-q", "-i", p.to_str().unwrap()]);
    assert!(!env.ok(&["images", "-q"]).stdout.trim().is_empty());
}
