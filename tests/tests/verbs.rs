//! Docker verbs around images and containers' files: `history`, `export`, and the removal of their
//! "nearest command" hints now that skiff has them.

mod common;

use common::*;

/// `history` lists the config's steps newest first: the image id on the newest row only, each
/// layer's unpacked size, the commit message as COMMENT, and Docker's `-q`/`--format` forms.
#[test]
fn history_shows_steps_sizes_and_comments_newest_first() {
    let env = Env::new();
    env.pull("busybox");
    env.ok(&[
        "run",
        "--name",
        "h",
        &bb(),
        "sh",
        "-c",
        "head -c 300000 /dev/zero > /big",
    ]);
    let id = env
        .ok(&["commit", "-m", "added big", "h", "hist:1"])
        .stdout
        .trim()
        .to_string();
    let base_rows = env.ok(&["history", "-q", &bb()]).stdout.lines().count();
    assert!(base_rows >= 1, "busybox has history");

    let out = env.ok(&["history", "hist:1"]).stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("IMAGE")
            && lines[0].contains("CREATED BY")
            && lines[0].ends_with("COMMENT"),
        "{out}"
    );
    assert_eq!(
        lines.len(),
        base_rows + 2,
        "one row more than the base: {out}"
    );
    let short = id.trim_start_matches("sha256:");
    assert!(lines[1].starts_with(&short[..12]), "{out}");
    assert!(
        lines[1].contains("skiff commit") && lines[1].ends_with("added big"),
        "{out}"
    );
    assert!(
        lines[1].contains("3") && lines[1].contains("kB"),
        "the new layer's size: {out}"
    );
    assert!(
        lines[2..].iter().all(|l| l.starts_with("<missing>")),
        "{out}"
    );

    // -q --no-trunc: the full id, then one <missing> per older step.
    let q = env
        .ok(&["image", "history", "-q", "--no-trunc", "hist:1"])
        .stdout;
    let q: Vec<&str> = q.lines().collect();
    assert_eq!(q[0], id);
    assert_eq!(q.len(), base_rows + 1);

    // JSON lines with raw sizes when -H=false.
    let js = env
        .ok(&["history", "--format", "json", "-H", "false", "hist:1"])
        .stdout;
    let rows: Vec<serde_json::Value> = js
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let bytes: u64 = rows[0]["Size"].as_str().unwrap().parse().unwrap();
    assert!((300_000..330_000).contains(&bytes), "{js}");
    assert_eq!(rows[0]["Comment"], "added big");

    // A template with Docker's field names and `table` headers.
    let t = env
        .ok(&[
            "history",
            "--format",
            "table {{.ID}}\t{{.Comment}}",
            "hist:1",
        ])
        .stdout;
    assert!(
        t.starts_with("IMAGE") && t.lines().nth(1).unwrap().ends_with("added big"),
        "{t}"
    );

    env.fails(&["history", "no-such-image"], "no-such-image");
}

/// `export` writes a stopped container's whole merged filesystem — image files and its own
/// changes — as a tar, and a running one's too (habits.rs tests that further).
#[test]
fn export_writes_a_stopped_containers_merged_filesystem() {
    let env = Env::new();
    env.pull("busybox");
    env.ok(&[
        "run",
        "--name",
        "x",
        &bb(),
        "sh",
        "-c",
        "echo mine > /added",
    ]);
    let file = env.data().join("../x.tar");
    env.ok(&["export", "-o", file.to_str().unwrap(), "x"]);
    let names = |p: &std::path::Path| -> Vec<String> {
        let out = std::process::Command::new("tar")
            .arg("-tf")
            .arg(p)
            .output()
            .expect("tar -tf");
        assert!(out.status.success(), "a valid tar");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|n| n.trim_start_matches("./").to_string())
            .collect()
    };
    let stopped = names(&file);
    assert!(stopped.iter().any(|n| n == "added"), "{stopped:?}");
    assert!(stopped.iter().any(|n| n == "bin/busybox"), "{stopped:?}");

    env.ok(&[
        "run",
        "-d",
        "--name",
        "r",
        &bb(),
        "sh",
        "-c",
        "echo live > /live; sleep 60",
    ]);
    eventually("the running container wrote /live", || {
        env.run(&["exec", "r", "cat", "/live"])
            .stdout
            .contains("live")
    });
    let running = env.data().join("../r.tar");
    env.ok(&["container", "export", "-o", running.to_str().unwrap(), "r"]);
    let live = names(&running);
    assert!(live.iter().any(|n| n == "live"), "{live:?}");
    env.ok(&["rm", "-f", "r"]);

    env.fails(&["export", "no-such-ctr"], "no-such-ctr");
}
