//! `skiff pull` against the real registry: every fixture, entry-by-entry checks of the unpacked
//! trees, formats, platforms, and the errors a user meets.

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use common::*;

#[test]
fn pull_prints_the_registry_digest_and_lists_the_image() {
    let env = Env::new();
    let r = env.ok(&["pull", &format!("{REGISTRY}/busybox")]);
    let digest = registry_digest("busybox", "latest");
    assert!(
        r.stdout.contains(&format!("Digest: {digest}")),
        "{}",
        r.stdout
    );
    assert_eq!(
        r.stdout.lines().last(),
        Some(format!("{REGISTRY}/busybox:latest").as_str())
    );
    assert!(
        !r.stderr.contains("Downloading"),
        "no progress bars when piped: {}",
        r.stderr
    );
    assert!(
        r.stdout.contains(&format!(
            "Status: Downloaded newer image for {REGISTRY}/busybox:latest"
        )),
        "{}",
        r.stdout
    );
    let again = env.ok(&["pull", &format!("{REGISTRY}/busybox")]);
    assert!(
        again.stdout.contains("Status: Image is up to date"),
        "{}",
        again.stdout
    );

    let table = env.ok(&["images"]).stdout;
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("REPOSITORY")
            && lines[0].contains("TAG")
            && lines[0].contains("IMAGE ID")
            && lines[0].contains("CREATED")
            && lines[0].ends_with("SIZE"),
        "{table}"
    );
    let row = lines
        .iter()
        .find(|l| l.starts_with(&format!("{REGISTRY}/busybox ")))
        .expect("busybox row");
    assert!(row.contains("latest"), "{row}");
    assert!(
        row.contains("2.") && row.contains("MB"),
        "busybox-static is about 2 MB unpacked: {row}"
    );

    // One object per line, as Docker prints it.
    let json: serde_json::Value = serde_json::from_str(
        env.ok(&["images", "--format", "json"])
            .stdout
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let id = json["Id"].as_str().unwrap().to_string();
    assert!(id.starts_with("sha256:"));
    assert_eq!(env.ok(&["images", "-q"]).stdout.trim(), &id[7..19]);
    assert!(env.ok(&["images", "--digests"]).stdout.contains(&digest));

    let inspect: serde_json::Value =
        serde_json::from_str(&env.ok(&["image", "inspect", &id[7..15]]).stdout).unwrap();
    assert_eq!(inspect[0]["Id"], id.as_str());
    assert_eq!(
        inspect[0]["RepoTags"][0],
        format!("{REGISTRY}/busybox:latest")
    );
    assert_eq!(
        inspect[0]["RepoDigests"][0],
        format!("{REGISTRY}/busybox@{digest}")
    );
    assert_eq!(inspect[0]["Config"]["Cmd"][0], "sh");
    assert_eq!(
        env.verify_blobs(),
        3,
        "manifest, config and one layer, all verified"
    );
}

#[test]
fn busybox_layer_is_unpacked_entry_by_entry() {
    let env = Env::new();
    env.pull("busybox");
    let dirs = env.layer_dirs(&format!("{REGISTRY}/busybox"));
    assert_eq!(dirs.len(), 1);
    let root = &dirs[0];
    let bb = std::fs::symlink_metadata(root.join("bin/busybox")).unwrap();
    assert!(bb.file_type().is_file());
    assert_eq!(bb.permissions().mode() & 0o7777, 0o755);
    assert_eq!(bb.len(), std::fs::metadata("/bin/busybox").unwrap().len());
    assert_eq!(
        std::fs::read_link(root.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    assert_eq!(
        std::fs::symlink_metadata(root.join("tmp"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o1777
    );
    assert!(std::fs::read_to_string(root.join("etc/passwd"))
        .unwrap()
        .starts_with("root:x:0:0:"));
    assert_eq!(owner(&root.join("etc/passwd")), host_uid(0));
    assert_eq!(bb.mtime(), 1_700_000_000);
}

#[test]
fn multi_layer_image_keeps_links_owners_and_overlay_whiteouts() {
    let env = Env::new();
    env.pull("layers");
    let dirs = env.layer_dirs(&format!("{REGISTRY}/layers"));
    assert_eq!(dirs.len(), 3);
    let (mid, top) = (&dirs[1], &dirs[2]);

    // Layer 2: links, ownership, setuid.
    let motd = std::fs::metadata(mid.join("etc/motd")).unwrap();
    assert_eq!(
        std::fs::metadata(mid.join("etc/motd.hard")).unwrap().ino(),
        motd.ino(),
        "hardlink shares the inode"
    );
    assert_eq!(motd.nlink(), 2);
    assert_eq!(
        std::fs::read_link(mid.join("lib/rel")).unwrap(),
        Path::new("../etc/motd")
    );
    assert_eq!(
        std::fs::read_link(mid.join("lib/abs")).unwrap(),
        Path::new("/etc/motd")
    );
    // home/user is 0750 and belongs to (mapped) uid 1000: look from inside the user namespace,
    // where ids read as they will in a container.
    assert_eq!(
        owner(&mid.join("home/user")),
        host_uid(1000),
        "uid 1000 in the image stays 1000 (mapped)"
    );
    assert_eq!(
        std::fs::symlink_metadata(mid.join("home/user"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o750
    );
    let owned = mid.join("home/user/owned");
    let seen = env
        .ok(&[
            "unshare",
            "stat",
            "-c",
            "%u:%g %a %s",
            &owned.to_string_lossy(),
        ])
        .stdout;
    assert_eq!(
        seen.trim(),
        "1000:1000 600 5",
        "inside the namespace the file is 1000's"
    );
    assert_eq!(
        std::fs::metadata(mid.join("bin-suid"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o4755
    );
    assert!(mid.join("deleted/file").is_file() && mid.join("opaque/old").is_file());

    // Layer 3: the deletion is an overlay whiteout, the opaque dir carries the xattr, new content.
    let wh = std::fs::symlink_metadata(top.join("deleted/file")).unwrap();
    assert!(
        wh.file_type().is_char_device() && wh.rdev() == 0,
        "whiteout is a 0/0 char device"
    );
    assert!(!top.join("deleted/kept").exists());
    assert!(!top.join("opaque/old").exists());
    assert_eq!(
        std::fs::read_to_string(top.join("opaque/new")).unwrap(),
        "upper\n"
    );
    let out = std::process::Command::new("getfattr")
        .args(["--only-values", "-n", "user.overlay.opaque"])
        .arg(top.join("opaque"))
        .output();
    let xattr = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        _ => read_xattr(&top.join("opaque"), "user.overlay.opaque"),
    };
    assert_eq!(xattr, "y");
    assert_eq!(
        std::fs::read_to_string(top.join("etc/motd")).unwrap(),
        "upper motd\n"
    );
}

fn read_xattr(p: &Path, name: &str) -> String {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let path = CString::new(p.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    let mut buf = [0u8; 16];
    // SAFETY: valid C strings and a buffer of the given length.
    let len = unsafe {
        libc::getxattr(
            path.as_ptr(),
            n.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    assert!(len >= 0, "no {name} on {}", p.display());
    String::from_utf8_lossy(&buf[..len as usize]).into_owned()
}

/// As root, stack the layer dirs with overlayfs exactly as `run` will and look at the merged view.
#[test]
fn overlay_of_the_layer_dirs_shows_whiteouts_applied() {
    if !is_root() {
        eprintln!("overlay merge check needs root here; the rootless overlay mount comes with `skiff run`");
        return;
    }
    let env = Env::new();
    env.pull("layers");
    let mut dirs = env.layer_dirs(&format!("{REGISTRY}/layers"));
    dirs.reverse();
    let lower = dirs
        .iter()
        .map(|d| d.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(":");
    let mnt = tempfile::tempdir().unwrap();
    let st = std::process::Command::new("mount")
        .args([
            "-t",
            "overlay",
            "overlay",
            "-o",
            &format!("ro,userxattr,lowerdir={lower}"),
        ])
        .arg(mnt.path())
        .status()
        .unwrap();
    assert!(st.success(), "overlay mount of the layer dirs");
    let m = mnt.path();
    let check = || {
        assert!(
            !m.join("deleted/file").exists(),
            "whiteout hides the lower file"
        );
        assert!(m.join("deleted/kept").is_file());
        assert!(
            !m.join("opaque/old").exists(),
            "opaque dir hides the lower entries"
        );
        assert!(m.join("opaque/new").is_file());
        assert_eq!(
            std::fs::read_to_string(m.join("etc/motd")).unwrap(),
            "upper motd\n"
        );
        assert_eq!(
            std::fs::read_to_string(m.join("lib/rel")).unwrap(),
            "upper motd\n"
        );
        assert_eq!(owner(&m.join("home/user/owned")), 1000);
        assert!(m.join("bin/busybox").is_file());
    };
    let res = std::panic::catch_unwind(check);
    let _ = std::process::Command::new("umount").arg(m).status();
    res.unwrap();
}

#[test]
fn schema2_zstd_and_uncompressed_copies_share_one_unpacked_layer() {
    let env = Env::new();
    for tag in [
        "busybox:latest",
        "busybox:v2s2",
        "busybox:zstd",
        "busybox:plain",
    ] {
        env.pull(tag);
    }
    let ids: std::collections::BTreeSet<String> = env
        .ok(&["images", "-q"])
        .stdout
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(
        ids.len(),
        1,
        "the same image in four encodings has one id: {ids:?}"
    );
    let layers: Vec<String> = env
        .entries("layers")
        .into_iter()
        .filter(|n| !n.ends_with(".size"))
        .collect();
    assert_eq!(
        layers.len(),
        1,
        "one unpacked layer dir shared by all: {layers:?}"
    );
    assert_eq!(env.ok(&["images"]).stdout.lines().count(), 5);
    env.verify_blobs();
}

#[test]
fn multi_arch_index_resolves_to_this_platform_or_the_one_asked_for() {
    let host = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    for tag in ["latest", "docker"] {
        let env = Env::new();
        let r = format!("{REGISTRY}/multiarch:{tag}");
        env.ok(&["pull", "-q", &r]);
        let v: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", &r]).stdout).unwrap();
        assert_eq!(v[0]["Architecture"], host);
        let arch_file = env.layer_dirs(&r)[0].join("arch");
        assert_eq!(std::fs::read_to_string(arch_file).unwrap().trim(), host);
        let other = if host == "arm64" { "amd64" } else { "arm64" };
        let env2 = Env::new();
        env2.ok(&["pull", "-q", "--platform", &format!("linux/{other}"), &r]);
        let v: serde_json::Value = serde_json::from_str(&env2.ok(&["inspect", &r]).stdout).unwrap();
        assert_eq!(v[0]["Architecture"], other);
        assert_eq!(
            v[0]["RepoDigests"][0],
            format!("{REGISTRY}/multiarch@{}", registry_digest("multiarch", tag)),
            "repo digest is the index's"
        );
        env2.fails(
            &["pull", "--platform", "linux/s390x", &r],
            "available: linux/amd64, linux/arm64",
        );
    }
}

#[test]
fn pull_by_digest_pins_the_manifest() {
    let env = Env::new();
    let d = registry_digest("hello", "latest");
    let r = format!("{REGISTRY}/hello@{d}");
    env.ok(&["pull", "-q", &r]);
    assert!(env.ok(&["images", "--digests"]).stdout.contains(&d));
    let wrong = format!("{REGISTRY}/hello@sha256:{}", "0".repeat(64));
    env.fails(&["pull", &wrong], "manifest unknown");
}

#[test]
fn bad_input_gets_one_line_errors_and_exit_125() {
    let env = Env::new();
    env.fails(&["pull", "Busybox"], "must be lowercase");
    env.fails(&["pull", "busybox:"], "invalid reference format");
    env.fails(&["pull", "busybox@sha256:abc"], "digest");
    env.fails(
        &["pull", &format!("{REGISTRY}/no-such-image")],
        "manifest unknown",
    );
    env.fails(
        &["pull", &format!("{REGISTRY}/busybox:no-such-tag")],
        "manifest unknown",
    );
    env.fails(&["pull", "127.0.0.1:1/busybox"], "registry unreachable");
    env.fails(
        &[
            "pull",
            "--platform",
            "linux",
            &format!("{REGISTRY}/busybox"),
        ],
        "platform must be os/arch",
    );
    env.fails(&["inspect", "nothing-here"], "no such container or image");
    env.fails(
        &["inspect", "--type", "image", "nothing-here"],
        "not known locally",
    );
    assert!(
        env.entries("layers").is_empty(),
        "failed pulls leave no layers"
    );
    assert_eq!(env.verify_blobs(), 0, "failed pulls leave no blobs");
}
