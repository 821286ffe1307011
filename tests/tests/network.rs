//! Private networks and published ports: `--network slirp4netns` and `-p`, served by the real
//! slirp4netns, reached from the host over real TCP; nothing left listening afterwards.

mod common;

use std::net::TcpListener;

use common::*;

#[test]
fn a_published_port_serves_the_containers_server_on_the_host() {
    // On the default network (the holder's forwarder) and on slirp4netns (its own).
    for (mode, address) in [("skiff", "10.90.0.2"), ("slirp4netns", "10.0.2.100")] {
        published_port_serves(mode, address);
    }
}

fn published_port_serves(mode: &str, address: &str) {
    let env = Env::new();
    env.pull("busybox");
    let port = free_port();
    let publish = format!("{port}:80");
    env.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        mode,
        "-p",
        &publish,
        &bb(),
        "sh",
        "-c",
        "mkdir /www && echo hello-from-the-container > /www/index.html && exec httpd -f -p 80 -h /www",
    ]);
    let body = http_get(port);
    assert!(body.contains("hello-from-the-container"), "{body}");

    let ps = env.ok(&["ps", "--format", "{{.Names}} {{.Ports}}"]).stdout;
    assert_eq!(ps.trim(), format!("web 0.0.0.0:{port}->80/tcp"));
    assert_eq!(
        env.ok(&["port", "web"]).stdout.trim(),
        format!("80/tcp -> 0.0.0.0:{port}")
    );
    assert_eq!(
        env.ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web"])
            .stdout
            .trim(),
        address,
        "{mode}"
    );
    let ports = env
        .ok(&["inspect", "-f", "{{json .NetworkSettings.Ports}}", "web"])
        .stdout;
    assert_eq!(
        ports.trim(),
        format!(r#"{{"80/tcp":[{{"HostIp":"0.0.0.0","HostPort":"{port}"}}]}}"#)
    );

    // The same host port twice: a clear error, and the failed container leaves nothing.
    let r = env.fails(
        &[
            "run",
            "--rm",
            "--network",
            mode,
            "-p",
            &publish,
            &bb(),
            "true",
        ],
        "already in use",
    );
    assert!(r.stderr.contains(&publish) || r.stderr.contains(&port.to_string()));

    // Gone with the container: the port is free again.
    env.ok(&["rm", "-f", "web"]);
    assert!(port_released(port), "port {port} still held");
    assert!(env.containers().is_empty(), "{:?}", env.containers());
}

/// The network helper holds an exit pipe from the monitor: even a monitor killed with SIGKILL
/// takes it (and the host port) down.
#[test]
fn a_killed_monitor_leaves_no_forwarder_behind() {
    let env = Env::new();
    env.pull("busybox");
    let port = free_port();
    let id = env
        .ok(&[
            "run",
            "-d",
            "-p",
            &format!("{port}:80"),
            &bb(),
            "sleep",
            "600",
        ])
        .stdout
        .trim()
        .to_string();
    let st: serde_json::Value = serde_json::from_slice(
        &std::fs::read(env.data().join("containers").join(&id).join("state.json")).unwrap(),
    )
    .unwrap();
    let monitor = st["monitor_pid"].as_i64().unwrap() as i32;
    assert!(
        TcpListener::bind(("0.0.0.0", port)).is_err(),
        "the port is published while the container runs"
    );
    // SAFETY: signalling the monitor this test started.
    unsafe { libc::kill(monitor, libc::SIGKILL) };
    assert!(port_released(port), "port {port} still held");
    let status = env.ok(&["ps", "-a", "--format", "{{.Status}}"]).stdout;
    assert!(status.starts_with("Exited (-1)"), "{status}");
}

#[test]
fn a_private_network_has_its_own_interface_and_no_way_to_host_loopback() {
    let env = Env::new();
    env.pull("busybox");
    let r = env.ok(&[
        "run",
        "--rm",
        "--network",
        "slirp4netns",
        &bb(),
        "sh",
        "-c",
        "ip addr show tap0 | grep -o 'inet [0-9./]*'; ip route | grep default; cat /etc/resolv.conf; \
         wget -q -T 3 -O /dev/null http://10.0.2.2:5000/v2/ && echo HOST-LOOPBACK-REACHED; true",
    ]);
    assert!(r.stdout.contains("inet 10.0.2.100/24"), "{}", r.stdout);
    assert!(r.stdout.contains("default via 10.0.2.2"), "{}", r.stdout);
    assert!(r.stdout.contains("nameserver 10.0.2.3"), "{}", r.stdout);
    assert!(
        !r.stdout.contains("HOST-LOOPBACK-REACHED"),
        "the host's 127.0.0.1 services (the registry) stay out of reach: {}",
        r.stdout
    );
}

#[test]
fn bad_publish_requests_are_one_line_errors() {
    let env = Env::new();
    env.pull("busybox");
    env.fails(
        &[
            "run",
            "--rm",
            "--network",
            "host",
            "-p",
            "8080:80",
            &bb(),
            "true",
        ],
        "drop --network host",
    );
    env.fails(
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "-p",
            "80",
            &bb(),
            "true",
        ],
        "drop --network none",
    );
    env.fails(
        &["run", "--rm", "-p", "x:80", &bb(), "true"],
        "is not a port",
    );
    env.fails(
        &["run", "--rm", "--network", "no/such", &bb(), "true"],
        "unknown --network",
    );
    assert!(env.containers().is_empty(), "{:?}", env.containers());
}

#[test]
fn add_host_and_dns_write_the_containers_files() {
    let env = Env::new();
    env.pull("busybox");
    let r = env.ok(&[
        "run",
        "--rm",
        "--add-host",
        "db.example:192.0.2.7",
        "--add-host",
        "v6.example=2001:db8::1",
        "--dns",
        "192.0.2.53",
        &bb(),
        "sh",
        "-c",
        "grep example /etc/hosts; cat /etc/resolv.conf",
    ]);
    assert_eq!(
        r.stdout,
        "192.0.2.7\tdb.example\n2001:db8::1\tv6.example\nnameserver 192.0.2.53\n"
    );
    env.fails(
        &["run", "--rm", "--add-host", "nocolon", &bb(), "true"],
        "invalid --add-host",
    );
    env.fails(
        &["run", "--rm", "--add-host", "x:notanip", &bb(), "true"],
        "invalid --add-host",
    );
    env.fails(
        &["run", "--rm", "--dns", "dns.example", &bb(), "true"],
        "invalid --dns",
    );
}
