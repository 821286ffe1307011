//! Faults: content that does not match its digest, truncated blobs, artifacts that are not images
//! (served by a tiny fault-injecting server, since a real registry will not lie), a pull killed
//! with SIGKILL, and concurrent pulls of the same image from the real registry.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::fault_server::{serve, serve_throttled, serve_with, Faults};
use common::*;

fn tar_with(name: &str, data: &[u8]) -> Vec<u8> {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..107].copy_from_slice(b"0000644");
    h[108..115].copy_from_slice(b"0000000");
    h[116..123].copy_from_slice(b"0000000");
    h[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
    h[136..147].copy_from_slice(b"00000000000");
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512 + 1024, 0);
    out
}

/// An image with one uncompressed layer; `mangle` may change what the server sends for it.
fn image_routes(
    config_type: &str,
    diff_ok: bool,
    serve_layer: impl Fn(&[u8]) -> Vec<u8>,
) -> HashMap<String, (String, Vec<u8>)> {
    let layer = tar_with("hello.txt", b"hello\n");
    let layer_digest = format!("sha256:{}", sha256_hex(&layer));
    let diff = if diff_ok {
        layer_digest.clone()
    } else {
        format!("sha256:{}", "1".repeat(64))
    };
    let config = format!(r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{diff}"]}},"config":{{}}}}"#).into_bytes();
    let config_digest = format!("sha256:{}", sha256_hex(&config));
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"{config_type}","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer_digest}","size":{}}}]}}"#,
        config.len(),
        layer.len()
    )
    .into_bytes();
    let mut r = HashMap::new();
    r.insert(
        "/v2/".to_string(),
        ("application/json".to_string(), b"{}".to_vec()),
    );
    r.insert(
        "/v2/fault/manifests/latest".to_string(),
        (
            "application/vnd.oci.image.manifest.v1+json".to_string(),
            manifest,
        ),
    );
    r.insert(
        format!("/v2/fault/blobs/{config_digest}"),
        ("application/octet-stream".to_string(), config),
    );
    r.insert(
        format!("/v2/fault/blobs/{layer_digest}"),
        ("application/octet-stream".to_string(), serve_layer(&layer)),
    );
    r
}

const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

fn assert_nothing_half_written(env: &Env) {
    env.verify_blobs();
    assert!(
        env.entries("tmp").is_empty(),
        "no temp files left: {:?}",
        env.entries("tmp")
    );
    assert!(
        env.entries("layers").is_empty(),
        "no layer dirs left: {:?}",
        env.entries("layers")
    );
    let index = std::fs::read_to_string(env.data().join("store/index.json")).unwrap();
    assert!(
        !index.contains("fault"),
        "the image is not recorded: {index}"
    );
}

#[test]
fn the_fault_server_serves_a_good_image() {
    // The control: without a fault the same server's image pulls, so the failures below are the faults'.
    let addr = serve(image_routes(OCI_CONFIG, true, |l| l.to_vec()));
    let env = Env::new();
    env.ok(&["pull", "-q", &format!("{addr}/fault")]);
    assert_eq!(
        std::fs::read_to_string(env.layer_dirs(&format!("{addr}/fault"))[0].join("hello.txt"))
            .unwrap(),
        "hello\n"
    );
}

/// A download dropped halfway is resumed with a range request from the bytes already written,
/// and the blob is still verified whole; a server that ignores ranges gets a fresh download.
#[test]
fn a_dropped_download_resumes_where_it_stopped() {
    for ranges in [true, false] {
        let routes = image_routes(OCI_CONFIG, true, |l| l.to_vec());
        let layer_len = routes
            .iter()
            .filter(|(p, _)| p.contains("/blobs/"))
            .map(|(_, (_, b))| b.len())
            .max()
            .unwrap();
        let faults = Faults {
            cut_first: true,
            ranges,
            ..Faults::default()
        };
        let seen = faults.seen_ranges.clone();
        let addr = serve_with(routes, faults);
        let env = Env::new();
        env.ok(&["pull", "-q", &format!("{addr}/fault")]);
        assert_eq!(
            std::fs::read_to_string(env.layer_dirs(&format!("{addr}/fault"))[0].join("hello.txt"))
                .unwrap(),
            "hello\n"
        );
        env.verify_blobs();
        assert_eq!(
            *seen.lock().unwrap(),
            [format!("bytes={}-", layer_len / 2)],
            "one resume from the half already received (server honours ranges: {ranges})"
        );
    }
}

#[test]
fn a_corrupt_blob_is_refused_and_never_stored() {
    let addr = serve(image_routes(OCI_CONFIG, true, |l| {
        let mut v = l.to_vec();
        v[600] ^= 0xff;
        v
    }));
    let env = Env::new();
    env.fails(&["pull", &format!("{addr}/fault")], "digest mismatch");
    assert_nothing_half_written(&env);
}

#[test]
fn a_truncated_blob_is_refused() {
    let addr = serve(image_routes(OCI_CONFIG, true, |l| {
        l[..l.len() / 2].to_vec()
    }));
    let env = Env::new();
    env.fails(&["pull", &format!("{addr}/fault")], "truncated");
    assert_nothing_half_written(&env);
}

#[test]
fn a_layer_whose_content_does_not_match_the_config_is_refused() {
    let addr = serve(image_routes(OCI_CONFIG, false, |l| l.to_vec()));
    let env = Env::new();
    env.fails(
        &["pull", &format!("{addr}/fault")],
        "the image is inconsistent",
    );
    assert_nothing_half_written(&env);
}

#[test]
fn an_artifact_that_is_not_an_image_is_refused() {
    let addr = serve(image_routes(
        "application/vnd.cncf.helm.config.v1+json",
        true,
        |l| l.to_vec(),
    ));
    let env = Env::new();
    env.fails(
        &["pull", &format!("{addr}/fault")],
        "unsupported media type",
    );
    assert_nothing_half_written(&env);
}

/// Waits until `probe` holds (polling fast), or the child exits; returns whether it held.
fn wait_for(child: &mut std::process::Child, probe: impl Fn() -> bool) -> bool {
    loop {
        if probe() {
            return true;
        }
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

#[test]
fn a_pull_killed_mid_download_leaves_no_unverified_blob() {
    // A layer that trickles in guarantees the kill lands mid-download.
    let slow = serve_throttled(
        image_routes(OCI_CONFIG, true, |l| l.to_vec()),
        Some(Duration::from_millis(20)),
    );
    let env = Env::new();
    let mut child = env
        .cmd(&["pull", "-q", &format!("{slow}/fault")])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let partial = || env.entries("tmp").iter().any(|n| n.ends_with(".partial"));
    assert!(wait_for(&mut child, partial), "the download was under way");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let blobs = env.verify_blobs();
    assert!(
        blobs <= 1,
        "only the verified config may be there, not the half layer ({blobs} blobs)"
    );
    assert!(
        !std::fs::read_to_string(env.data().join("store/index.json"))
            .unwrap()
            .contains("fault")
    );
    // The next pull (from a server that answers at full speed) completes and cleans the leftover.
    let fast = serve(image_routes(OCI_CONFIG, true, |l| l.to_vec()));
    env.ok(&["pull", "-q", &format!("{fast}/fault")]);
    assert!(
        !env.entries("tmp").iter().any(|n| n.ends_with(".partial")),
        "abandoned partial removed: {:?}",
        env.entries("tmp")
    );
    env.verify_blobs();
}

#[test]
fn a_pull_killed_at_any_point_leaves_a_consistent_store_and_the_next_pull_completes() {
    let env = Env::new();
    let big = format!("{REGISTRY}/big");
    // Kill as soon as each stage is seen on disk: a blob being written, a layer being unpacked.
    type Probe = fn(&Env) -> bool;
    let stages: [(&str, Probe); 2] = [
        ("download", |e| {
            e.entries("tmp").iter().any(|n| n.ends_with(".partial"))
        }),
        ("unpack", |e| {
            e.entries("layers").iter().any(|n| n.starts_with(".tmp-"))
        }),
    ];
    for (stage, probe) in &stages {
        let mut child = env
            .cmd(&["pull", "-q", &big])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let caught = wait_for(&mut child, || probe(&env));
        let _ = child.kill();
        let _ = child.wait();
        eprintln!("killed during {stage}: {caught}");
        env.verify_blobs();
        if caught {
            assert!(
                !std::fs::read_to_string(env.data().join("store/index.json"))
                    .unwrap()
                    .contains("/big"),
                "a killed pull records no image"
            );
        }
        let _ = env.run(&["rmi", "-f", &big]); // usually nothing to remove; either way a clean slate
    }
    env.ok(&["pull", "-q", &big]);
    assert!(env.ok(&["images"]).stdout.contains(&format!("{big} ")));
    assert_eq!(env.verify_blobs(), 5, "manifest, config, three layers");
    env.ok(&["image", "prune"]);
    assert!(
        env.entries("tmp").is_empty(),
        "nothing left of killed pulls: {:?}",
        env.entries("tmp")
    );
    assert!(
        env.entries("layers")
            .iter()
            .all(|n| !n.starts_with(".tmp-")),
        "{:?}",
        env.entries("layers")
    );
    let dirs = env.layer_dirs(&big);
    assert_eq!(
        std::fs::metadata(dirs[1].join("noise.bin")).unwrap().len(),
        50 << 20
    );
    assert_eq!(
        std::fs::metadata(dirs[2].join("text.txt")).unwrap().len(),
        50 << 20
    );
}

#[test]
fn two_pulls_of_the_same_image_at_once_both_succeed() {
    let env = Env::new();
    let c1 = env
        .cmd(&["pull", "-q", &format!("{REGISTRY}/big")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let c2 = env
        .cmd(&["pull", "-q", &format!("{REGISTRY}/big")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (o1, o2) = (
        c1.wait_with_output().unwrap(),
        c2.wait_with_output().unwrap(),
    );
    assert!(
        o1.status.success(),
        "{}",
        String::from_utf8_lossy(&o1.stderr)
    );
    assert!(
        o2.status.success(),
        "{}",
        String::from_utf8_lossy(&o2.stderr)
    );
    let rows = env
        .ok(&["images"])
        .stdout
        .lines()
        .filter(|l| l.contains("/big "))
        .count();
    assert_eq!(rows, 1, "recorded once");
    env.verify_blobs();
    assert!(
        env.entries("layers")
            .iter()
            .all(|n| !n.starts_with(".tmp-")),
        "no stray temp layer dirs"
    );
}
