//! Published ports as a Docker user uses them: free host ports (`-p 80`, `-P` with the image's
//! EXPOSE and `--expose`), ranges, UDP on the default network, what the container sees as the
//! client's address on each backend, and bad `-p` input refused before anything exists. Every
//! port is reached from the host over real sockets.

mod common;

use std::net::UdpSocket;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::*;

/// A shell line serving `body` over HTTP on each container port in `ports`.
fn serve(ports: &[u16]) -> String {
    let mut sh = String::new();
    for p in ports {
        sh.push_str(&format!(
            "mkdir -p /w{p} && echo body-of-{p} > /w{p}/index.html && httpd -p {p} -h /w{p}; "
        ));
    }
    sh.push_str("exec sleep 600");
    sh
}

/// The host port `skiff port NAME KEY` prints (`0.0.0.0:N`).
fn host_port(env: &Env, name: &str, key: &str) -> u16 {
    let out = env.ok(&["port", name, key]).stdout;
    out.trim()
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("skiff port {name} {key}: {out:?}"))
}

fn inspect(env: &Env, name: &str, field: &str) -> String {
    env.ok(&["inspect", "-f", &format!("{{{{json .{field}}}}}"), name])
        .stdout
        .trim()
        .to_string()
}

fn ps_ports(env: &Env) -> String {
    env.ok(&["ps", "-a", "--format", "{{.Names}} {{.Ports}}"])
        .stdout
        .trim()
        .to_string()
}

#[test]
fn a_free_host_port_is_picked_at_start_and_shown_everywhere() {
    for mode in ["skiff", "slirp4netns"] {
        free_port_is_picked(mode);
    }
}

fn free_port_is_picked(mode: &str) {
    let env = Env::new();
    env.pull("busybox");
    env.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        mode,
        "-p",
        "80",
        &bb(),
        "sh",
        "-c",
        &serve(&[80]),
    ]);
    let port = host_port(&env, "web", "80");
    assert!(http_get(port).contains("body-of-80"), "{mode}");
    assert_eq!(
        env.ok(&["port", "web"]).stdout,
        format!("80/tcp -> 0.0.0.0:{port}\n")
    );
    assert_eq!(ps_ports(&env), format!("web 0.0.0.0:{port}->80/tcp"));
    assert_eq!(
        inspect(&env, "web", "NetworkSettings.Ports"),
        format!(r#"{{"80/tcp":[{{"HostIp":"0.0.0.0","HostPort":"{port}"}}]}}"#)
    );
    // HostConfig keeps what was asked, as Docker's does: no address, no host port.
    assert_eq!(
        inspect(&env, "web", "HostConfig.PortBindings"),
        r#"{"80/tcp":[{"HostIp":"","HostPort":""}]}"#
    );
    assert_eq!(
        inspect(&env, "web", "Config.ExposedPorts"),
        r#"{"80/tcp":{}}"#
    );

    // Stopped: nothing bound, nothing shown, the port is free.
    env.ok(&["stop", "-t", "1", "web"]);
    assert!(port_released(port), "{mode}: port {port} still held");
    assert_eq!(env.ok(&["port", "web"]).stdout, "");
    env.fails(&["port", "web", "80/tcp"], "no public port 80/tcp");
    assert_eq!(ps_ports(&env), "web");
    assert_eq!(inspect(&env, "web", "NetworkSettings.Ports"), "{}");

    // Started again: a free port again, and it serves.
    env.ok(&["start", "web"]);
    let again = host_port(&env, "web", "80/tcp");
    assert!(http_get(again).contains("body-of-80"), "{mode}");
    env.ok(&["rm", "-f", "web"]);
    assert!(port_released(again), "{mode}: port {again} still held");
    assert!(env.containers().is_empty(), "{:?}", env.containers());
}

#[test]
fn publish_all_publishes_what_the_image_and_expose_declare() {
    let env = Env::new();
    env.pull("web");
    let image = img("web");
    // Without -P, exposed ports are shown but not published, as Docker's ps shows them.
    env.ok(&["run", "-d", "--name", "quiet", &image, "sleep", "600"]);
    assert_eq!(ps_ports(&env), "quiet 53/udp, 80/tcp");
    assert_eq!(
        inspect(&env, "quiet", "NetworkSettings.Ports"),
        r#"{"53/udp":null,"80/tcp":null}"#
    );
    assert_eq!(env.ok(&["port", "quiet"]).stdout, "");
    env.ok(&["rm", "-f", "quiet"]);

    // -P: the image's 80/tcp and 53/udp and --expose's 8080, each on a free host port; a -p
    // for one of them wins over -P.
    let fixed = free_port();
    let publish = format!("{fixed}:8080");
    env.ok(&[
        "run",
        "-d",
        "--name",
        "all",
        "-P",
        "--expose",
        "8080",
        "--expose",
        "9000",
        "-p",
        &publish,
        &image,
        "sh",
        "-c",
        &serve(&[80, 8080, 9000]),
    ]);
    let web = host_port(&env, "all", "80");
    let extra = host_port(&env, "all", "9000");
    let udp = host_port(&env, "all", "53/udp");
    assert_eq!(host_port(&env, "all", "8080"), fixed);
    assert!(http_get(web).contains("body-of-80"));
    assert!(http_get(extra).contains("body-of-9000"));
    assert!(http_get(fixed).contains("body-of-8080"));
    assert_eq!(
        env.ok(&["port", "all"]).stdout,
        format!(
            "53/udp -> 0.0.0.0:{udp}\n80/tcp -> 0.0.0.0:{web}\n8080/tcp -> 0.0.0.0:{fixed}\n9000/tcp -> 0.0.0.0:{extra}\n"
        )
    );
    assert_eq!(inspect(&env, "all", "HostConfig.PublishAllPorts"), "true");
    assert_eq!(
        inspect(&env, "all", "HostConfig.PortBindings"),
        format!(r#"{{"8080/tcp":[{{"HostIp":"","HostPort":"{fixed}"}}]}}"#)
    );
    assert_eq!(
        inspect(&env, "all", "Config.ExposedPorts"),
        r#"{"53/udp":{},"80/tcp":{},"8080/tcp":{},"9000/tcp":{}}"#
    );
    // commit keeps them, as Docker's does.
    env.ok(&["commit", "all", "exposing:v1"]);
    let doc = env.ok(&["image", "inspect", "exposing:v1"]).stdout;
    let doc: serde_json::Value = serde_json::from_str(&doc).expect("json");
    let doc = if doc.is_array() { doc[0].clone() } else { doc };
    let mut keys: Vec<&String> = doc["Config"]["ExposedPorts"]
        .as_object()
        .expect("ExposedPorts")
        .keys()
        .collect();
    keys.sort();
    assert_eq!(keys, ["53/udp", "80/tcp", "8080/tcp", "9000/tcp"]);
    env.ok(&["rm", "-f", "all"]);
    for p in [web, extra, fixed] {
        assert!(port_released(p), "port {p} still held");
    }
}

/// Two ports in a row free on the host (the first of them).
fn free_pair() -> u16 {
    for _ in 0..100 {
        let p = free_port();
        if p < u16::MAX && std::net::TcpListener::bind(("0.0.0.0", p + 1)).is_ok() {
            return p;
        }
    }
    panic!("no two free ports in a row");
}

#[test]
fn a_range_publishes_each_of_its_ports() {
    let env = Env::new();
    env.pull("busybox");
    let first = free_pair();
    let range = format!("127.0.0.1:{first}-{}:8080-8081", first + 1);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "span",
        "-p",
        &range,
        "-p",
        "9000-9001",
        &bb(),
        "sh",
        "-c",
        &serve(&[8080, 8081, 9000, 9001]),
    ]);
    assert!(http_get(first).contains("body-of-8080"));
    assert!(http_get(first + 1).contains("body-of-8081"));
    let (a, b) = (
        host_port(&env, "span", "9000"),
        host_port(&env, "span", "9001"),
    );
    assert!(http_get(a).contains("body-of-9000"));
    assert!(http_get(b).contains("body-of-9001"));
    let ps = ps_ports(&env);
    assert!(
        ps.contains(&format!("127.0.0.1:{first}-{}->8080-8081/tcp", first + 1)),
        "ps shows the range as one: {ps}"
    );
    assert_eq!(
        inspect(&env, "span", "HostConfig.PortBindings"),
        format!(
            r#"{{"8080/tcp":[{{"HostIp":"127.0.0.1","HostPort":"{first}"}}],"8081/tcp":[{{"HostIp":"127.0.0.1","HostPort":"{}"}}],"9000/tcp":[{{"HostIp":"","HostPort":""}}],"9001/tcp":[{{"HostIp":"","HostPort":""}}]}}"#,
            first + 1
        )
    );
    env.ok(&["rm", "-f", "span"]);
    for p in [first, first + 1, a, b] {
        assert!(port_released(p), "port {p} still held");
    }
}

/// Builds the peer probe (`ports_peer.c`) into a directory to bind into containers at /h.
fn peer_probe(env: &Env) -> PathBuf {
    let dir = env.home.path().join("probe");
    std::fs::create_dir(&dir).expect("probe dir");
    std::fs::write(dir.join("peer.c"), include_str!("ports_peer.c")).expect("probe source");
    let built = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(dir.join("peer"))
        .arg(dir.join("peer.c"))
        .status();
    assert!(
        built.is_ok_and(|s| s.success()),
        "building the peer probe needs gcc and a static libc (apt-get install gcc libc6-dev)"
    );
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

/// Runs the probe's UDP server on 53 and TCP server on 7000 in container `name`.
fn run_peer(env: &Env, name: &str, probe: &std::path::Path, net: &str, publish: &[&str]) {
    let bind = format!("{}:/h:ro", probe.display());
    let image = bb();
    let mut args = vec!["run", "-d", "--name", name, "--network", net, "-v", &bind];
    for p in publish {
        args.extend(["-p", p]);
    }
    args.extend([
        image.as_str(),
        "sh",
        "-c",
        "/h/peer udp 53 & exec /h/peer tcp 7000",
    ]);
    env.ok(&args);
    eventually("both probe servers listen", || {
        env.ok(&["logs", name]).stdout.matches("listening").count() == 2
    });
}

/// Sends `msg` from `sock` to `to` until an answer comes (the first datagram may race the
/// relay's start), and returns it with the address it came from.
fn ask(sock: &UdpSocket, to: (&str, u16), msg: &str) -> (String, std::net::SocketAddr) {
    sock.set_read_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    for _ in 0..10 {
        sock.send_to(msg.as_bytes(), to).expect("send");
        let mut b = [0u8; 2048];
        if let Ok((n, from)) = sock.recv_from(&mut b) {
            return (String::from_utf8_lossy(&b[..n]).into_owned(), from);
        }
    }
    panic!("no answer from {to:?} to {msg}");
}

/// What the probe's TCP server saw as its peer, for a client connecting to `to`.
fn tcp_peer(to: (&str, u16)) -> String {
    let mut s = std::net::TcpStream::connect(to).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut out = String::new();
    std::io::Read::read_to_string(&mut s, &mut out).expect("read");
    out.trim().to_string()
}

/// The peer address in a probe's answer (`peer 10.90.0.1:40000 …`).
fn peer_of(answer: &str) -> (&str, &str) {
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|a| a.split_once(':'))
        .unwrap_or_else(|| panic!("not a probe answer: {answer:?}"))
}

#[test]
fn udp_round_trips_on_the_default_network() {
    let env = Env::new();
    env.pull("busybox");
    let probe = peer_probe(&env);
    run_peer(&env, "udp", &probe, "skiff", &["127.0.0.1::53/udp"]);
    let port = host_port(&env, "udp", "53/udp");
    assert_eq!(
        env.ok(&["port", "udp"]).stdout,
        format!("53/udp -> 127.0.0.1:{port}\n")
    );
    let gateway = inspect(&env, "udp", "NetworkSettings.Gateway");
    let gateway = gateway.trim_matches('"');
    let (a, b) = (
        UdpSocket::bind("127.0.0.1:0").expect("bind"),
        UdpSocket::bind("127.0.0.1:0").expect("bind"),
    );
    let (a1, from) = ask(&a, ("127.0.0.1", port), "first-from-a");
    assert_eq!(
        from.port(),
        port,
        "the answer comes from the published port"
    );
    let (b1, _) = ask(&b, ("127.0.0.1", port), "first-from-b");
    let (a2, _) = ask(&a, ("127.0.0.1", port), "second-from-a");
    assert!(a1.ends_with(" first-from-a"), "{a1}");
    assert!(a2.ends_with(" second-from-a"), "{a2}");
    assert!(b1.ends_with(" first-from-b"), "{b1}");
    // The forwarder does not keep the client's address: the container sees the network's
    // gateway, one source port per client, kept while the client talks.
    assert_eq!(peer_of(&a1).0, gateway, "{a1}");
    assert_eq!(peer_of(&a1), peer_of(&a2), "{a1} / {a2}");
    assert_ne!(peer_of(&a1).1, peer_of(&b1).1, "{a1} / {b1}");
    env.ok(&["rm", "-f", "udp"]);
    eventually("the UDP port is free again", || {
        UdpSocket::bind(("127.0.0.1", port)).is_ok()
    });
}

/// What each backend passes on of the client's address: the forwarder of skiff networks
/// nothing (the container sees the gateway); slirp4netns the address of a client from another
/// host address (10.0.2.2 for the host's loopback), for TCP and UDP.
#[test]
fn the_client_address_the_container_sees_on_each_backend() {
    let Some(host) = host_address() else {
        eprintln!("skipped: this machine has no non-loopback IPv4 address");
        return;
    };
    let env = Env::new();
    env.pull("busybox");
    let probe = peer_probe(&env);
    run_peer(&env, "bridged", &probe, "skiff", &["7000"]);
    let port = host_port(&env, "bridged", "7000");
    let gateway = inspect(&env, "bridged", "NetworkSettings.Gateway");
    for via in [host.as_str(), "127.0.0.1"] {
        let seen = tcp_peer((via, port));
        assert_eq!(peer_of(&seen).0, gateway.trim_matches('"'), "{via}: {seen}");
    }

    run_peer(&env, "slirp", &probe, "slirp4netns", &["7000", "53/udp"]);
    let (tcp, udp) = (
        host_port(&env, "slirp", "7000"),
        host_port(&env, "slirp", "53/udp"),
    );
    let seen = tcp_peer((&host, tcp));
    assert_eq!(peer_of(&seen).0, host, "{seen}");
    let seen = tcp_peer(("127.0.0.1", tcp));
    assert_eq!(peer_of(&seen).0, "10.0.2.2", "{seen}");
    let client = UdpSocket::bind((host.as_str(), 0)).expect("bind");
    let (seen, _) = ask(&client, (&host, udp), "hello");
    assert_eq!(
        peer_of(&seen),
        (
            host.as_str(),
            client
                .local_addr()
                .expect("addr")
                .port()
                .to_string()
                .as_str()
        ),
        "{seen}"
    );
    env.ok(&["rm", "-f", "bridged", "slirp"]);
}

#[test]
fn bad_publish_input_is_one_line_and_leaves_nothing() {
    let env = Env::new();
    env.pull("web");
    let image = img("web");
    for (flags, needle) in [
        (&["-p", "8080:80", "-p", "8080:81"][..], "already published"),
        (
            &["-p", "127.0.0.1:8080:80", "-p", "8080:81/tcp"],
            "already published",
        ),
        (&["-p", "8000-8001:80"], "differ in length"),
        (&["-p", "8000-8010:80-85"], "differ in length"),
        (&["-p", "8001-8000:80-81"], "runs backwards"),
        (&["-p", "80-x"], "is not a port"),
        (&["-p", "0:80"], "0 is not a port"),
        (&["-p", "8080:0"], "0 is not a port"),
        (&["-p", "0"], "0 is not a port"),
        (&["-p", "8080:80/sctp"], "unknown protocol"),
        (&["--expose", "80/sctp"], "unknown protocol"),
        (&["--expose", "0"], "0 is not a port"),
        (&["-P", "--network", "host"], "drop --network host"),
    ] {
        let mut args = vec!["run", "-d", "--name", "bad"];
        args.extend_from_slice(flags);
        args.extend([image.as_str(), "true"]);
        env.fails(&args, needle);
        let mut args = vec!["create", "--name", "bad"];
        args.extend_from_slice(flags);
        args.extend([image.as_str(), "true"]);
        env.fails(&args, needle);
        assert!(
            env.containers().is_empty(),
            "{flags:?}: {:?}",
            env.containers()
        );
    }
}
