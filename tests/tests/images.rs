//! Managing local images: rmi by name, id and prefix, prune, the store as an OCI layout that
//! other tools read, and what `info`/`version` report about it.

mod common;

use common::*;

#[test]
fn rmi_untags_by_name_and_deletes_by_id_leaving_nothing_behind() {
    let env = Env::new();
    env.pull("busybox");
    env.pull("busybox:v2s2");
    env.pull("hello");
    let hello_id = env.ok(&["images", "--format", "json"]).stdout;
    // One object per line, as Docker prints it.
    let v: Vec<serde_json::Value> = hello_id
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let hello = v
        .iter()
        .find(|i| i["Repository"] == format!("{REGISTRY}/hello"))
        .unwrap()["Id"]
        .as_str()
        .unwrap()[7..]
        .to_string();
    let bb = v
        .iter()
        .find(|i| i["Repository"] == format!("{REGISTRY}/busybox"))
        .unwrap()["Id"]
        .as_str()
        .unwrap()[7..]
        .to_string();

    // An id with two names needs --force, like Docker.
    let r = env.run(&["rmi", &bb[..12]]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(r.stderr.contains("several names"), "{}", r.stderr);
    // By name: untag only; the image stays while another name has it.
    let out = env.ok(&["rmi", &format!("{REGISTRY}/busybox:v2s2")]).stdout;
    assert_eq!(out.trim(), format!("Untagged: {REGISTRY}/busybox:v2s2"));
    // By a short id prefix: untag and delete.
    let out = env.ok(&["rmi", &hello[..6]]).stdout;
    assert!(
        out.contains(&format!("Untagged: {REGISTRY}/hello:latest"))
            && out.contains(&format!("Deleted: sha256:{hello}")),
        "{out}"
    );
    let left = env.ok(&["images", "-q"]).stdout;
    assert_eq!(left.trim(), &bb[..12]);
    // The shared busybox layer is still there for busybox.
    assert!(env.layer_dirs(&format!("{REGISTRY}/busybox"))[0]
        .join("bin/busybox")
        .exists());

    let missing = env.run(&["rmi", "nothing-here"]);
    assert_eq!(
        missing.code, 1,
        "an unknown image is exit 1, like docker: {}",
        missing.stderr
    );

    env.ok(&["rmi", &format!("{REGISTRY}/busybox")]);
    assert!(env.ok(&["images", "-q"]).stdout.trim().is_empty());
    assert_eq!(env.verify_blobs(), 0, "no blob left");
    assert!(
        env.entries("layers").is_empty(),
        "no layer left: {:?}",
        env.entries("layers")
    );
}

#[test]
fn prune_removes_only_what_no_image_uses() {
    let env = Env::new();
    env.pull("busybox");
    env.pull("layers");
    let before = env.verify_blobs();
    let r = env.ok(&["image", "prune", "-f"]).stdout;
    assert!(r.contains("Deleted 0 blobs and 0 layers"), "{r}");
    assert_eq!(env.verify_blobs(), before);
    // Removing the layers image frees its own blobs and layer dirs, not the shared busybox ones.
    env.ok(&["rmi", &format!("{REGISTRY}/layers")]);
    assert_eq!(
        env.verify_blobs(),
        3,
        "busybox's manifest, config and layer remain"
    );
    assert_eq!(env.layer_dirs(&format!("{REGISTRY}/busybox")).len(), 1);
    assert_eq!(
        env.entries("layers")
            .iter()
            .filter(|n| !n.ends_with(".size"))
            .count(),
        1
    );
}

#[test]
fn the_store_is_an_oci_layout_skopeo_reads() {
    let env = Env::new();
    env.pull("busybox");
    let store = env.data().join("store");
    let out = std::process::Command::new("skopeo")
        .args([
            "inspect",
            &format!("oci:{}:{REGISTRY}/busybox:latest", store.display()),
        ])
        .output()
        .expect("skopeo");
    assert!(
        out.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["Digest"], registry_digest("busybox", "latest"));
    assert_eq!(v["Layers"].as_array().unwrap().len(), 1);
}

#[test]
fn info_and_version_report_this_user_and_store() {
    let env = Env::new();
    env.pull("busybox");
    assert_eq!(
        env.ok(&["info", "-f", "{{.Store.Images}}"]).stdout.trim(),
        "1"
    );
    let doc: serde_json::Value =
        serde_json::from_str(&env.ok(&["info", "--format", "json"]).stdout).unwrap();
    assert_eq!(doc["Host"]["Rootless"], !is_root(), "{doc}");
    assert_eq!(
        doc["Store"]["DataRoot"].as_str().unwrap(),
        env.data().to_string_lossy()
    );
    if !is_root() {
        // The rootless suites run as a user with a subuid range and as one without.
        let m = &doc["Host"]["IdMappings"];
        assert!(
            m["UidMap"].as_array().is_some_and(|r| r.len() >= 2)
                || m.as_str()
                    .is_some_and(|s| s.contains("usermod --add-subuids")),
            "{m}"
        );
    }
    assert!(doc["Host"]["Slirp4netns"]
        .as_str()
        .is_some_and(|p| p.ends_with("/slirp4netns")));
    assert_eq!(
        env.ok(&["version", "-f", "{{.Version}}"]).stdout.trim(),
        env!("CARGO_PKG_VERSION")
    );
    let plain = env.ok(&["info"]).stdout;
    assert!(
        plain.contains("Host:\n") && plain.contains("  Rootless: "),
        "{plain}"
    );
}

#[test]
fn tag_gives_an_image_another_name_that_outlives_the_first() {
    let env = Env::new();
    env.pull("busybox");
    let src = format!("{REGISTRY}/busybox");
    env.ok(&["tag", &src, "myapp:v1"]);
    let ids = env
        .ok(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"])
        .stdout;
    let lines: Vec<&str> = ids.lines().collect();
    assert_eq!(lines.len(), 2, "{ids}");
    let id_of = |name: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split(' ').nth(1))
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(
        id_of("docker.io/library/myapp:v1"),
        id_of(&format!("{src}:latest"))
    );
    // The new name runs without a pull and survives the removal of the first.
    env.ok(&["rmi", &src]);
    assert_eq!(
        env.ok(&["run", "--rm", "--pull", "never", "myapp:v1", "echo", "tagged"])
            .stdout,
        "tagged\n"
    );
    env.fails(&["tag", "nosuch", "x"], "not known locally");
    env.fails(&["tag", "myapp:v1", "Bad:Name"], "invalid reference");
}

fn skopeo(args: &[&str]) -> String {
    let out = std::process::Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo (cargo xtask testenv up installs it)");
    assert!(out.status.success(), "skopeo {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn save_and_load_round_trip_and_read_other_tools_archives() {
    let env = Env::new();
    env.pull("busybox");
    let src = format!("{REGISTRY}/busybox");
    let dir = env.home.path().join("archives");
    std::fs::create_dir_all(&dir).unwrap();
    let ours = dir.join("busybox.tar");
    env.ok(&["save", "-o", &ours.to_string_lossy(), &src]);
    // Other tools read it both ways: as a docker archive and as an OCI archive.
    for transport in ["docker-archive", "oci-archive"] {
        let doc = skopeo(&["inspect", &format!("{transport}:{}", ours.display())]);
        assert!(doc.contains("\"Layers\""), "{transport}: {doc}");
    }
    env.ok(&["rmi", &src]);
    let r = env.ok(&["load", "-i", &ours.to_string_lossy()]);
    assert_eq!(r.stdout.trim(), format!("Loaded image: {src}:latest"));
    assert_eq!(
        env.ok(&["run", "--rm", &src, "echo", "loaded"]).stdout,
        "loaded\n"
    );

    // Archives skopeo writes (as docker save and podman save would).
    let da = dir.join("da.tar");
    let oa = dir.join("oa.tar");
    skopeo(&[
        "copy",
        "-q",
        "--src-tls-verify=false",
        &format!("docker://{REGISTRY}/hello:latest"),
        &format!("docker-archive:{}:hello:v9", da.display()),
    ]);
    skopeo(&[
        "copy",
        "-q",
        "--src-tls-verify=false",
        &format!("docker://{REGISTRY}/layers:latest"),
        &format!("oci-archive:{}:mylayers:v2", oa.display()),
    ]);
    env.ok(&["load", "-q", "-i", &da.to_string_lossy()]);
    env.ok(&["load", "-i", &oa.to_string_lossy()]);
    assert!(env
        .ok(&["run", "--rm", "hello:v9"])
        .stdout
        .contains("Hello"));
    env.ok(&["run", "--rm", "mylayers:v2", "cat", "/etc/motd"]);

    // A blob changed in transit is refused; nothing is listed, no scratch is left.
    let tampered = dir.join("tampered.tar");
    let mut bytes = std::fs::read(&ours).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    std::fs::write(&tampered, bytes).unwrap();
    // (A fresh user: here the layer is shared with the other images and would not be read.)
    let fresh = Env::new();
    let r = fresh.run(&["load", "-i", &tampered.to_string_lossy()]);
    assert_eq!(r.code, 125, "{r:?}");
    assert!(r.stderr.contains("digest mismatch"), "{}", r.stderr);
    assert!(fresh.ok(&["images", "-q"]).stdout.is_empty());
    assert!(
        fresh.entries("tmp").is_empty(),
        "{:?}",
        fresh.entries("tmp")
    );
    fresh.verify_blobs();
}
