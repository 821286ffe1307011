//! User networks (`skiff network …`, `run --network NAME`): real bridges in the network holder's
//! namespace, real veths, real iptables rules, real slirp4netns for the way out. Containers on one
//! network reach each other; other networks and `--internal` ones stay apart; addresses are
//! never handed out twice and come back; a killed holder is replaced; nothing stays behind.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;

use common::*;

/// The holder's record (`$XDG_RUNTIME_DIR/skiff/netns/holder.json`) of this environment.
fn holder_file(env: &Env) -> PathBuf {
    env.home.path().join("run/skiff/netns/holder.json")
}

/// The holder's pid, while one runs.
fn holder_pid(env: &Env) -> Option<i32> {
    let text = std::fs::read_to_string(holder_file(env)).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["pid"].as_i64().map(|p| p as i32)
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

/// A one-line HTTP server on the host's address answering `body` to every request.
fn host_server(addr: &str, body: &'static str) -> u16 {
    let l = TcpListener::bind((addr, 0)).expect("bind on the host's address");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[test]
fn network_commands_keep_records_and_refuse_bad_input() {
    let env = Env::new();
    env.pull("busybox");
    let ls = env.ok(&["network", "ls"]).stdout;
    assert!(ls.starts_with("NETWORK ID"), "{ls}");
    assert!(
        ls.contains(" skiff "),
        "the default network is listed: {ls}"
    );
    let id = env
        .ok(&["network", "create", "-l", "team=a", "front"])
        .stdout;
    assert_eq!(id.trim().len(), 64, "{id}");
    env.ok(&[
        "network",
        "create",
        "--subnet",
        "172.29.5.0/24",
        "--gateway",
        "172.29.5.254",
        "back",
    ]);
    let r = env.ok(&[
        "network",
        "inspect",
        "back",
        "--format",
        "{{(index .IPAM.Config 0).Subnet}} {{(index .IPAM.Config 0).Gateway}}",
    ]);
    assert_eq!(r.stdout, "172.29.5.0/24 172.29.5.254\n");
    let q = env
        .ok(&["network", "ls", "-q", "--filter", "label=team=a"])
        .stdout;
    assert_eq!(q.trim(), &id.trim()[..12]);
    for (args, needle) in [
        (
            vec!["network", "create", "front"],
            "network front already exists",
        ),
        (
            vec!["network", "create", "--subnet", "172.29.5.128/25", "x"],
            "overlaps network back",
        ),
        (
            vec!["network", "create", "--subnet", "172.29.6.1/24", "x"],
            "host bits are set",
        ),
        (
            vec!["network", "create", "--subnet", "nonsense", "x"],
            "invalid subnet",
        ),
        (vec!["network", "create", "host"], "reserved"),
        (vec!["network", "rm", "skiff"], "default network"),
        (vec!["network", "rm", "nope"], "no such network: nope"),
        (
            vec!["run", "--rm", "--network", "nope", &bb(), "true"],
            "no such network: nope",
        ),
        (
            vec![
                "run",
                "--rm",
                "--network",
                "host",
                "--ip",
                "10.90.0.9",
                &bb(),
                "true",
            ],
            "--ip needs a skiff network",
        ),
        (
            vec![
                "run",
                "--rm",
                "--network",
                "back",
                "--ip",
                "10.90.0.9",
                &bb(),
                "true",
            ],
            "not a usable address of network back",
        ),
    ] {
        let r = env.fails(&args, needle);
        assert_eq!(r.code, 125, "{args:?}");
        assert_eq!(
            r.stderr.trim().lines().count(),
            1,
            "{args:?}: one line: {}",
            r.stderr
        );
    }
    assert!(
        env.ok(&["ps", "-aq"]).stdout.is_empty(),
        "a refused run leaves no container"
    );
    env.pull("busybox");
    env.ok(&[
        "create",
        "--name",
        "holder-of-ip",
        "--network",
        "back",
        "--ip",
        "172.29.5.9",
        &bb(),
        "true",
    ]);
    env.fails(
        &[
            "create",
            "--network",
            "back",
            "--ip",
            "172.29.5.9",
            &bb(),
            "true",
        ],
        "already in use on network back (by holder-of-ip)",
    );
    env.fails(
        &["network", "rm", "back"],
        "in use by container(s) holder-of-ip",
    );
    env.ok(&["rm", "holder-of-ip"]);
    let r = env.ok(&["network", "prune", "-f"]).stdout;
    assert!(r.contains("front") && r.contains("back"), "{r}");
    let ls = env.ok(&["network", "ls", "--format", "{{.Name}}"]).stdout;
    assert_eq!(ls, "skiff\n");
}

#[test]
fn containers_on_one_network_reach_each_other_and_no_one_else() {
    let env = Env::new();
    env.pull("busybox");
    env.ok(&["network", "create", "front"]);
    env.ok(&["network", "create", "back"]);
    env.ok(&["network", "create", "--internal", "priv"]);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "front",
        "--network-alias",
        "www",
        &bb(),
        "sh",
        "-c",
        "mkdir /w && echo hello-from-web > /w/index.html && exec httpd -f -p 80 -h /w",
    ]);
    let v = network_doc(&env, "front");
    let ctr = v[0]["Containers"]
        .as_object()
        .expect("containers")
        .values()
        .next()
        .cloned()
        .expect("web");
    assert_eq!(ctr["Name"], "web");
    assert_eq!(ctr["Aliases"][0], "www");
    let ip = ctr["IPv4Address"]
        .as_str()
        .expect("ip")
        .split('/')
        .next()
        .expect("ip")
        .to_string();
    assert!(ip.starts_with("10.90."), "{ip}");
    let url = format!("http://{ip}/");
    // The server may take a moment to listen.
    let fetch = format!(
        "for i in 1 2 3 4 5 6 7 8 9 10; do wget -q -O- {url} && exit 0; sleep 0.3; done; exit 1"
    );
    let r = run_on(&env, "front", &["sh", "-c", &fetch]);
    assert_eq!(r.stdout, "hello-from-web\n");
    // By name and by alias, through the holder's name server at the gateway.
    for name in ["web", "www", "WEB"] {
        let url = format!("http://{name}/");
        let r = run_on(&env, "front", &["wget", "-q", "-O-", &url]);
        assert_eq!(r.stdout, "hello-from-web\n", "{name}");
    }
    let r = run_on(&env, "front", &["cat", "/etc/resolv.conf"]);
    assert_eq!(r.stdout, "nameserver 10.90.1.1\n");
    // Another network's name server does not know web.
    let r = try_on(&env, "back", &["nslookup", "web"]);
    assert!(!r.stdout.contains(&ip), "{r:?}");
    // Its own name resolves to its address on the network, not 127.0.1.1.
    let hosts = env.ok(&["exec", "web", "cat", "/etc/hosts"]).stdout;
    assert!(
        hosts.contains(&format!("{ip}\t")) && hosts.contains(" web"),
        "{hosts}"
    );
    let probe = format!("timeout -s KILL 4 wget -q -O- {url} && echo REACHED; true");
    let r = run_on(&env, "back", &["sh", "-c", &probe]);
    assert!(
        !r.stdout.contains("REACHED"),
        "another network reached web: {}",
        r.stdout
    );
    let r = run_on(&env, "priv", &["sh", "-c", "ip route; true"]);
    assert!(
        !r.stdout.contains("default"),
        "an internal network has no way out: {}",
        r.stdout
    );
    if let Some(host) = host_address() {
        let port = host_server(&host, "hello-from-the-host");
        let get = format!("wget -q -O- http://{host}:{port}/");
        let r = run_on(&env, "skiff", &["sh", "-c", &get]);
        assert_eq!(
            r.stdout, "hello-from-the-host",
            "outbound from the default network"
        );
        let r = run_on(
            &env,
            "priv",
            &[
                "sh",
                "-c",
                &format!("timeout -s KILL 4 {get} && echo REACHED; true"),
            ],
        );
        assert!(!r.stdout.contains("REACHED"), "{}", r.stdout);
    } else {
        eprintln!("no non-loopback host address here: the outbound check is skipped");
    }
    let holder = holder_pid(&env).expect("a holder runs while web does");
    assert!(alive(holder));
    env.ok(&["rm", "-f", "web"]);
    let v: serde_json::Value = network_doc(&env, "front");
    assert_eq!(
        v[0]["Containers"],
        serde_json::json!({}),
        "the address came back"
    );
    eventually("the idle holder to exit", || !alive(holder));
    assert!(
        !holder_file(&env).exists(),
        "the holder's record goes with it"
    );
    env.ok(&["network", "rm", "front", "back", "priv"]);
}

#[test]
fn parallel_containers_get_distinct_addresses_that_come_back() {
    let env = std::sync::Arc::new(Env::new());
    env.pull("busybox");
    env.ok(&["network", "create", "many"]);
    let creates: Vec<_> = (0..50)
        .map(|i| {
            let env = env.clone();
            std::thread::spawn(move || {
                env.ok(&[
                    "create",
                    "--name",
                    &format!("c{i}"),
                    "--network",
                    "many",
                    &bb(),
                    "true",
                ]);
            })
        })
        .collect();
    creates.into_iter().for_each(|h| h.join().expect("create"));
    // A few really run at once too: each one's eth0 has the address its lease says.
    let runs: Vec<_> = (0..6)
        .map(|i| {
            let env = env.clone();
            std::thread::spawn(move || {
                let name = format!("r{i}");
                env.ok(&[
                    "run",
                    "-d",
                    "--name",
                    &name,
                    "--network",
                    "many",
                    &bb(),
                    "sleep",
                    "60",
                ]);
                let got = env.ok(&[
                    "exec",
                    &name,
                    "sh",
                    "-c",
                    "ip -4 addr show eth0 | grep -o 'inet [0-9.]*'",
                ]);
                (
                    name,
                    got.stdout.trim().trim_start_matches("inet ").to_string(),
                )
            })
        })
        .collect();
    let ran: Vec<(String, String)> = runs.into_iter().map(|h| h.join().expect("run")).collect();
    let v: serde_json::Value = network_doc(&env, "many");
    let leases = v[0]["Containers"].as_object().expect("containers");
    let mut ips: Vec<String> = leases
        .values()
        .map(|c| c["IPv4Address"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(ips.len(), 56);
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 56, "no address twice");
    for (name, ip) in &ran {
        let lease = leases
            .values()
            .find(|c| c["Name"] == name.as_str())
            .expect("lease");
        assert_eq!(
            lease["IPv4Address"].as_str(),
            Some(&*format!("{ip}/24")),
            "{name}"
        );
    }
    let mut gone = vec!["rm", "-f"];
    gone.extend(ran.iter().map(|(n, _)| n.as_str()));
    env.ok(&gone);
    let names: Vec<String> = (0..50).map(|i| format!("c{i}")).collect();
    let mut args = vec!["rm"];
    args.extend(names.iter().map(String::as_str));
    env.ok(&args);
    let v: serde_json::Value = network_doc(&env, "many");
    assert_eq!(v[0]["Containers"], serde_json::json!({}));
}

#[test]
fn a_killed_holder_is_replaced_and_nothing_stays_behind() {
    let env = Env::new();
    env.pull("busybox");
    env.ok(&["network", "create", "front"]);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "a",
        "--network",
        "front",
        &bb(),
        "sleep",
        "60",
    ]);
    let first = holder_pid(&env).expect("holder");
    kill9(first);
    eventually("the killed holder to die", || !alive(first));
    let r = run_on(
        &env,
        "front",
        &["sh", "-c", "ip -4 addr show eth0 | grep -c inet"],
    );
    assert_eq!(r.stdout, "1\n", "the next run on the network works");
    let second = holder_pid(&env).expect("a new holder");
    assert_ne!(first, second);
    env.ok(&["rm", "-f", "a"]);
    eventually("the new holder to exit once idle", || !alive(second));
    env.ok(&["network", "rm", "front"]);
    let left = std::process::Command::new("pgrep")
        .args(["-f", &env.home.path().to_string_lossy()])
        .output()
        .expect("pgrep");
    assert!(
        String::from_utf8_lossy(&left.stdout).trim().is_empty(),
        "no process of this test's home is left: {}",
        String::from_utf8_lossy(&left.stdout)
    );
}

/// `run --rm --network NET busybox ARGS…`, which must succeed.
fn run_on(env: &Env, net: &str, args: &[&str]) -> Run {
    let image = bb();
    let mut all = vec!["run", "--rm", "--network", net, &image];
    all.extend_from_slice(args);
    env.ok(&all)
}

/// The same, whatever it exits with.
fn try_on(env: &Env, net: &str, args: &[&str]) -> Run {
    let image = bb();
    let mut all = vec!["run", "--rm", "--network", net, &image];
    all.extend_from_slice(args);
    env.run(&all)
}

/// `network inspect NAME`, parsed.
fn network_doc(env: &Env, name: &str) -> serde_json::Value {
    serde_json::from_str(&env.ok(&["network", "inspect", name]).stdout).expect("json")
}

/// SIGKILL to `pid` (the holder this test's skiff started).
fn kill9(pid: i32) {
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status();
}

#[test]
fn published_ports_on_the_default_network_do_not_collide() {
    let env = Env::new();
    env.pull("busybox");
    let serve = |word: &str| {
        format!("mkdir /w && echo {word} > /w/index.html && exec httpd -f -p 80 -h /w")
    };
    let (p1, p2) = (free_port(), free_port());
    let (a, b) = (format!("{p1}:80"), format!("{p2}:80"));
    env.ok(&[
        "run",
        "-d",
        "--name",
        "one",
        "-p",
        &a,
        &bb(),
        "sh",
        "-c",
        &serve("from-one"),
    ]);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "two",
        "-p",
        &b,
        &bb(),
        "sh",
        "-c",
        &serve("from-two"),
    ]);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "hidden",
        &bb(),
        "sh",
        "-c",
        &serve("from-hidden"),
    ]);
    assert!(http_get(p1).contains("from-one"), "one on {p1}");
    assert!(http_get(p2).contains("from-two"), "two on {p2}");
    assert_eq!(
        env.ok(&["port", "one"]).stdout,
        format!("80/tcp -> 0.0.0.0:{p1}\n")
    );
    let ip = env.state("hidden")["NetworkSettings"]["Networks"]["skiff"]["IPAddress"]
        .as_str()
        .expect("an address on the default network")
        .to_string();
    // (This machine's own network may accept any connection, so what counts is who answers.)
    let reached = std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::new(ip.parse().expect("ip"), 80),
        std::time::Duration::from_secs(2),
    )
    .ok()
    .and_then(|mut s| {
        let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(2)));
        s.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        Some(out)
    })
    .unwrap_or_default();
    assert!(
        !reached.contains("from-hidden"),
        "a container without -p is not reachable from the host ({ip})"
    );
    // The same host port again: refused before anything starts, with the fix.
    let r = env.fails(&["run", "--rm", "-p", &a, &bb(), "true"], "already in use");
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    let unprivileged = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse::<u16>().ok())
        .unwrap_or(1024);
    if !is_root() && unprivileged > 80 {
        env.fails(
            &["run", "--rm", "-p", "80:80", &bb(), "true"],
            "net.ipv4.ip_unprivileged_port_start",
        );
    }
    env.ok(&["rm", "-f", "one", "two", "hidden"]);
    assert!(
        port_released(p1) && port_released(p2),
        "the host ports are free again"
    );
}

/// Whether a client on `net` fetches `hello-from-NAME` from `http://NAME/`, trying for a few
/// seconds (a server that was just started may not listen yet).
fn fetches(env: &Env, net: &str, name: &str) -> bool {
    let probe = format!(
        "for i in $(seq 15); do timeout -s KILL 2 wget -q -O- http://{name}/ && exit 0; nslookup {name} >&2; sleep 0.3; done; exit 1"
    );
    let r = try_on(env, net, &["sh", "-c", &probe]);
    let ok = r.code == 0 && r.stdout == format!("hello-from-{name}\n");
    if !ok {
        // Shown with a failing test: what the probe's container saw.
        eprintln!(
            "probe of {name} from {net}: exit {}, stdout {:?}, stderr {:?}",
            r.code, r.stdout, r.stderr
        );
    }
    ok
}

/// A one-shot probe that must not reach `http://NAME/` from `net`.
fn cannot_reach(env: &Env, net: &str, name: &str) -> bool {
    let probe = format!("timeout -s KILL 3 wget -q -O- http://{name}/ && echo REACHED; true");
    !run_on(env, net, &["sh", "-c", &probe])
        .stdout
        .contains("REACHED")
}

#[test]
fn containers_join_and_leave_networks_while_running_and_before_they_start() {
    let env = Env::new();
    env.pull("busybox");
    env.ok(&["network", "create", "back"]);
    let serve = |name: &str| {
        format!(
            "mkdir -p /w && echo hello-from-{name} > /w/index.html && exec httpd -f -p 80 -h /w"
        )
    };
    let image = bb();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        &image,
        "sh",
        "-c",
        &serve("web"),
    ]);
    assert!(fetches(&env, "skiff", "web"));
    assert!(cannot_reach(&env, "back", "web"), "not on back yet");

    // A running container joins: a second interface with an address on back, found by name and
    // by the alias given, at once.
    env.ok(&["network", "connect", "--alias", "site", "back", "web"]);
    assert!(fetches(&env, "back", "web"), "web by name from back");
    let r = run_on(&env, "back", &["wget", "-q", "-O-", "http://site/"]);
    assert_eq!(r.stdout, "hello-from-web\n", "by the connect alias");
    let doc: serde_json::Value =
        serde_json::from_str(&env.ok(&["inspect", "web"]).stdout).expect("json");
    let nets = &doc[0]["NetworkSettings"]["Networks"];
    let back_ip = nets["back"]["IPAddress"]
        .as_str()
        .expect("an address on back");
    assert!(nets["skiff"]["IPAddress"].as_str().is_some(), "{nets}");
    assert_eq!(nets["back"]["Aliases"][0], "site");
    let addrs = env.ok(&["exec", "web", "ip", "-4", "addr"]).stdout;
    assert!(
        addrs.contains("eth1") && addrs.contains(&format!("{back_ip}/")),
        "{addrs}"
    );
    // The default network still works for it: its way out is still eth0's.
    assert!(fetches(&env, "skiff", "web"));
    let back = network_doc(&env, "back");
    assert_eq!(back[0]["Containers"].as_object().map(|o| o.len()), Some(1));
    for net in ["back", "bridge", "skiff"] {
        let ps = env.ok(&[
            "ps",
            "--filter",
            &format!("network={net}"),
            "--format",
            "{{.Names}}",
        ]);
        assert_eq!(ps.stdout, "web\n", "ps --filter network={net}");
    }

    // What cannot be done, said in one line, with nothing changed.
    env.fails(&["network", "connect", "back", "web"], "already connected");
    env.fails(&["network", "connect", "skiff", "web"], "already connected");
    env.fails(&["network", "connect", "nowhere", "web"], "no such network");
    env.fails(
        &["network", "connect", "back", "ghost"],
        "no such container",
    );
    env.fails(
        &["network", "connect", "--alias", "bad name", "back", "web"],
        "alias",
    );
    env.ok(&[
        "create",
        "--name",
        "hosty",
        "--network",
        "host",
        &image,
        "true",
    ]);
    env.fails(&["network", "connect", "back", "hosty"], "--network host");
    env.fails(&["network", "disconnect", "back", "hosty"], "not connected");
    env.fails(&["network", "rm", "back"], "in use");

    // It leaves: unreachable from back at once, gone from both documents.
    env.ok(&["network", "disconnect", "back", "web"]);
    assert!(cannot_reach(&env, "back", "web"), "left back");
    assert!(
        fetches(&env, "skiff", "web"),
        "still on the default network"
    );
    let doc: serde_json::Value =
        serde_json::from_str(&env.ok(&["inspect", "web"]).stdout).expect("json");
    assert!(doc[0]["NetworkSettings"]["Networks"]["back"].is_null());
    let back = network_doc(&env, "back");
    assert_eq!(back[0]["Containers"], serde_json::json!({}));
    env.fails(&["network", "disconnect", "back", "web"], "not connected");

    // A created container connected before its start is on both networks from its start, and
    // after a restart too.
    env.ok(&[
        "create",
        "--name",
        "late",
        &image,
        "sh",
        "-c",
        &serve("late"),
    ]);
    env.ok(&["network", "connect", "back", "late"]);
    env.ok(&["start", "late"]);
    assert!(fetches(&env, "back", "late"), "late from back");
    assert!(
        fetches(&env, "skiff", "late"),
        "late from the default network"
    );
    env.ok(&["restart", "late"]);
    assert!(
        fetches(&env, "back", "late"),
        "late from back after a restart"
    );

    // Leaving its first network leaves it on the other one (at its next start).
    env.ok(&["stop", "late"]);
    env.ok(&["network", "disconnect", "skiff", "late"]);
    env.ok(&["start", "late"]);
    assert!(fetches(&env, "back", "late"), "late on back alone");
    assert!(
        cannot_reach(&env, "skiff", "late"),
        "late left the default network"
    );

    env.ok(&["rm", "-f", "web", "late", "hosty"]);
    env.ok(&["network", "rm", "back"]);
}
