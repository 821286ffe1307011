//! `cargo xtask bench net`: skiff's networks side by side with podman's, as the test user, release
//! build, interleaved runs, medians: `run --rm busybox true` on each one's default network (and
//! skiff's `--network none`), the same with `-p`, and 100 MB over TCP host → container through a
//! published port and container → container on one user network.

use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::bench::{median, row, timed};
use crate::services::REGISTRY;
use crate::sh;
use crate::testenv::{self, TEST_USER};

/// Runs per timed case.
const N: usize = 15;

/// Bytes served for the throughput cases.
const MB: usize = 100;

/// Prepares as root (podman, a release skiff), then measures as the test user.
pub fn net() -> Result<()> {
    let (uid, skiff) = crate::bench::prepare()?;
    let me = std::env::current_exe()?;
    crate::bench::make_reachable(&me)?;
    let mut inner = testenv::as_test_user(uid, &[], &me);
    inner.args(["bench", "net-inner", &skiff]);
    sh::run(&mut inner)
}

fn direct(program: &str, args: &[&str]) -> Command {
    let mut c = Command::new(program);
    c.args(args).current_dir("/tmp");
    c
}

fn out(program: &str, args: &[&str]) -> Result<String> {
    Ok(sh::output(&mut direct(program, args))?.trim().to_string())
}

/// A free TCP port on the host.
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port())
}

/// Reads `GET /big` from 127.0.0.1:`port` to the end (retrying while the server starts); the
/// time of the transfer and the bytes read.
fn fetch(port: u16) -> Result<(Duration, usize)> {
    let t0 = Instant::now();
    let once = || -> std::io::Result<(Duration, usize)> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
        let t = Instant::now();
        s.write_all(b"GET /big HTTP/1.0\r\n\r\n")?;
        let mut buf = vec![0u8; 1 << 20];
        let mut n = 0;
        loop {
            match s.read(&mut buf)? {
                0 => return Ok((t.elapsed(), n)),
                k => n += k,
            }
        }
    };
    loop {
        // Until the server is up (a forwarder accepts before the container listens).
        if let Ok((d, n)) = once() {
            if n > MB << 20 {
                return Ok((d, n));
            }
        }
        if t0.elapsed() > Duration::from_secs(30) {
            bail!("nothing served /big on port {port}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn mb_per_s(d: Duration) -> f64 {
    MB as f64 / d.as_secs_f64()
}

/// The shell that serves a 100 MB file on port 80.
fn server_script() -> String {
    format!("mkdir -p /w && echo ok > /w/ok && dd if=/dev/zero of=/w/big bs=1M count={MB} 2>/dev/null && exec httpd -f -p 80 -h /w")
}

/// The measuring half, as the test user.
pub fn net_inner(skiff: &str) -> Result<()> {
    let image = format!("{REGISTRY}/busybox:latest");
    sh::output(&mut direct(skiff, &["pull", "-q", &image]))?;
    sh::output(&mut direct("podman", &["pull", "-q", &image]))?;
    let podman_version = out("podman", &["--version"]).unwrap_or_default();
    let (sp, pp) = (free_port()?, free_port()?);
    let (s_pub, p_pub) = (format!("{sp}:80"), format!("{pp}:80"));
    let cases: Vec<(String, Vec<&str>, &str)> = vec![
        (
            "skiff run --rm busybox true (default network)".into(),
            vec!["run", "--rm", &image, "true"],
            skiff,
        ),
        (
            "skiff run --rm --network none busybox true".into(),
            vec!["run", "--rm", "--network", "none", &image, "true"],
            skiff,
        ),
        (
            format!("{podman_version} run --rm busybox true (its default network)"),
            vec!["run", "--rm", &image, "true"],
            "podman",
        ),
        (
            format!("skiff run --rm -p {s_pub} busybox true"),
            vec!["run", "--rm", "-p", &s_pub, &image, "true"],
            skiff,
        ),
        (
            format!("{podman_version} run --rm -p {p_pub} busybox true"),
            vec!["run", "--rm", "-p", &p_pub, &image, "true"],
            "podman",
        ),
    ];
    for (_, args, program) in &cases {
        timed(&mut direct(program, args))?;
    }
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); cases.len()];
    for _ in 0..N {
        for (i, (_, args, program)) in cases.iter().enumerate() {
            times[i].push(timed(&mut direct(program, args))?);
        }
    }
    println!("bench net as {TEST_USER}, {N} runs each, interleaved (whole process)");
    println!();
    println!("| what | median | min | max |");
    println!("|---|---|---|---|");
    for ((name, _, _), t) in cases.iter().zip(&times) {
        row(name, t);
    }
    let med = |v: &[Duration]| median(&mut v.to_vec()).as_secs_f64();
    println!();
    println!(
        "skiff default/podman default: {:.3} (target ≤ 0.1); skiff default/skiff none: {:.2} (target ≤ 1.5)",
        med(&times[0]) / med(&times[2]),
        med(&times[0]) / med(&times[1])
    );

    // Host → container through a published port.
    println!();
    println!("| {MB} MB over TCP | skiff | podman |");
    println!("|---|---|---|");
    let mut host_to = Vec::new();
    for (program, name) in [(skiff, "skiff-bench-srv"), ("podman", "skiff-bench-psrv")] {
        let port = free_port()?;
        let publish = format!("{port}:80");
        let _ = sh::output(&mut direct(program, &["rm", "-f", name]));
        sh::output(&mut direct(
            program,
            &[
                "run",
                "-d",
                "--name",
                name,
                "-p",
                &publish,
                &image,
                "sh",
                "-c",
                &server_script(),
            ],
        ))?;
        fetch(port)?; // warm
        let mut v = Vec::new();
        for _ in 0..5 {
            v.push(fetch(port)?.0);
        }
        host_to.push(median(&mut v));
        sh::output(&mut direct(program, &["rm", "-f", name]))?;
    }
    println!(
        "| host → container, published port | {:.0} MB/s | {:.0} MB/s |",
        mb_per_s(host_to[0]),
        mb_per_s(host_to[1])
    );

    // Container → container on one user network.
    let mut between = Vec::new();
    for program in [skiff, "podman"] {
        let net = "skiff-bench-net";
        let _ = sh::output(&mut direct(program, &["rm", "-f", "skiff-bench-a"]));
        let _ = sh::output(&mut direct(program, &["network", "rm", net]));
        sh::output(&mut direct(program, &["network", "create", net]))?;
        sh::output(&mut direct(
            program,
            &[
                "run",
                "-d",
                "--name",
                "skiff-bench-a",
                "--network",
                net,
                &image,
                "sh",
                "-c",
                &server_script(),
            ],
        ))?;
        let ip = out(
            program,
            &[
                "inspect",
                "--format",
                &format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}"),
                "skiff-bench-a",
            ],
        )?;
        let ready = format!("until wget -q -O /dev/null http://{ip}/ok; do sleep 0.2; done");
        sh::output(&mut direct(
            program,
            &["run", "--rm", "--network", net, &image, "sh", "-c", &ready],
        ))?;
        let url = format!("http://{ip}/big");
        let mut v = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            sh::output(&mut direct(
                program,
                &[
                    "run",
                    "--rm",
                    "--network",
                    net,
                    &image,
                    "wget",
                    "-q",
                    "-O",
                    "/dev/null",
                    &url,
                ],
            ))?;
            v.push(t.elapsed());
        }
        between.push(median(&mut v));
        sh::output(&mut direct(program, &["rm", "-f", "skiff-bench-a"]))?;
        sh::output(&mut direct(program, &["network", "rm", net]))?;
    }
    println!(
        "| container → container, one network (incl. the client's start) | {:.0} MB/s | {:.0} MB/s |",
        mb_per_s(between[0]),
        mb_per_s(between[1])
    );
    Ok(())
}
