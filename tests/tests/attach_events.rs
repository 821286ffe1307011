//! `attach` (a running container's output from now on, stdin to a `-d -i` one, detach keys, its
//! exit code, Docker's refusal for a stopped one) and `events` (the log of a `run --rm`
//! between --since and --until, live following, filters, Docker's JSON).

mod common;

use std::io::{Read, Write};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

/// A running skiff child whose stdout is collected as it comes.
struct Live {
    child: Child,
    out: Arc<Mutex<String>>,
}

impl Live {
    fn spawn(env: &Env, args: &[&str]) -> Live {
        let mut child = env
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning skiff");
        let mut stdout = child.stdout.take().expect("stdout");
        let out = Arc::new(Mutex::new(String::new()));
        let o = out.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                o.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Live { child, out }
    }

    fn seen(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    fn wait_for(&self, needle: &str) {
        eventually(&format!("{needle:?} in the output"), || {
            self.seen().contains(needle)
        });
    }

    fn type_in(&mut self, bytes: &[u8]) {
        let stdin = self.child.stdin.as_mut().expect("stdin");
        stdin.write_all(bytes).expect("typing");
        stdin.flush().expect("flushing");
    }

    /// Waits (at most 20 s) for the exit code; the stderr too.
    fn finish(mut self) -> (i32, String) {
        let t = std::time::Instant::now();
        let st = loop {
            if let Some(st) = self.child.try_wait().expect("waiting") {
                break st;
            }
            if t.elapsed() > Duration::from_secs(20) {
                let _ = self.child.kill();
                panic!("skiff did not end; it printed {}", self.seen());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        (st.code().unwrap_or(-1), err)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn attach_shows_output_from_now_on_and_returns_the_exit_code() {
    let env = Env::new();
    env.pull("busybox");
    env.ok(&[
        "run",
        "-d",
        "--name",
        "talker",
        &bb(),
        "sh",
        "-c",
        "echo before-attach; while [ ! -f /tmp/go ]; do echo tick; sleep 0.2; done; echo after-$((40+2)); echo on-stderr >&2; exit 3",
    ]);
    // Its first line is in the log before anyone attaches.
    eventually("the first line in the log", || {
        env.run(&["logs", "talker"])
            .stdout
            .contains("before-attach")
    });
    let a = Live::spawn(&env, &["attach", "talker"]);
    a.wait_for("tick");
    env.ok(&["exec", "talker", "touch", "/tmp/go"]);
    a.wait_for("after-42");
    let seen = a.seen();
    let (code, err) = a.finish();
    assert_eq!(
        code, 3,
        "attach ends with the container's code: {seen}{err}"
    );
    assert!(
        !seen.contains("before-attach"),
        "no replay of old output: {seen}"
    );
    assert!(err.contains("on-stderr"), "stderr goes to stderr: {err}");
    assert!(!seen.contains("on-stderr"), "{seen}");
}

#[test]
fn attach_to_a_detached_interactive_container_sends_stdin_and_detaches() {
    let env = Env::new();
    env.pull("busybox");
    env.ok(&["run", "-d", "-i", "--name", "echoer", &bb(), "cat"]);
    let mut a = Live::spawn(&env, &["attach", "echoer"]);
    // Its connection is made before its first byte is read, so a retyped line finds it.
    eventually("the echo of typed input", || {
        a.type_in(b"ping-one\n");
        std::thread::sleep(Duration::from_millis(200));
        a.seen().contains("ping-one")
    });
    // ctrl-p ctrl-q: attach ends, the container runs on.
    a.type_in(b"\x10\x11");
    let (code, err) = a.finish();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("read escape sequence"), "{err}");
    assert_eq!(env.state("echoer")["State"]["Running"], true);
    // Its stdin stayed open: a second attacher (with its own keys) is heard too.
    let mut b = Live::spawn(&env, &["attach", "--detach-keys", "ctrl-x", "echoer"]);
    eventually("the echo for the second attacher", || {
        b.type_in(b"ping-two\n");
        std::thread::sleep(Duration::from_millis(200));
        b.seen().contains("ping-two")
    });
    b.type_in(b"\x18");
    assert_eq!(b.finish().0, 0);
    assert_eq!(env.state("echoer")["State"]["Running"], true);
    env.ok(&["rm", "-f", "echoer"]);
}

#[test]
fn attach_refuses_a_stopped_container_and_bad_keys() {
    let env = Env::new();
    env.pull("busybox");
    env.ok(&["create", "--name", "idle", &bb(), "true"]);
    env.fails(
        &["attach", "idle"],
        "You cannot attach to a stopped container, start it first",
    );
    env.ok(&["run", "--name", "done", &bb(), "true"]);
    env.fails(
        &["attach", "done"],
        "You cannot attach to a stopped container",
    );
    env.fails(
        &["container", "attach", "--detach-keys", "ctrl-1", "done"],
        "detach-keys",
    );
    env.fails(&["attach", "nosuch"], "nosuch");
}

fn json_lines(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn events_list_a_run_rm_in_order_with_dockers_fields() {
    let env = Env::new();
    env.pull("busybox");
    let since = chrono::Utc::now().to_rfc3339();
    let r = env.run(&[
        "run",
        "--rm",
        "--name",
        "brief",
        "-l",
        "app=demo",
        &bb(),
        "sh",
        "-c",
        "exit 4",
    ]);
    assert_eq!(r.code, 4, "{r:?}");
    // Exit 4 is the container's; the command is done with its events written.
    let until = chrono::Utc::now().to_rfc3339();
    let range = ["events", "--since", &since, "--until", &until];
    let lines = env.ok(&range).stdout;
    let actions: Vec<&str> = lines.lines().filter_map(|l| l.split(' ').nth(2)).collect();
    assert_eq!(actions, ["create", "start", "die", "destroy"], "{lines}");
    for l in lines.lines() {
        // Docker's line: time, type, action, full id, (attributes sorted).
        let parts: Vec<&str> = l.splitn(5, ' ').collect();
        assert!(parts[0].ends_with('Z') && parts[0].len() == 30, "{l}");
        assert_eq!(parts[1], "container", "{l}");
        assert_eq!(parts[3].len(), 64, "{l}");
        assert!(
            parts[4].starts_with("(app=demo, ")
                && parts[4].contains(&format!("image={}:latest", bb())),
            "{l}"
        );
        assert!(parts[4].contains("name=brief"), "{l}");
    }
    assert!(lines.contains("exitCode=4"), "{lines}");
    let mut args = range.to_vec();
    args.extend(["--format", "{{json .}}", "--filter", "event=die"]);
    let evs = json_lines(&env.ok(&args).stdout);
    assert_eq!(evs.len(), 1, "{evs:?}");
    let e = &evs[0];
    assert_eq!(e["Type"], "container");
    assert_eq!(e["Action"], "die");
    assert_eq!(e["status"], "die");
    assert_eq!(e["scope"], "local");
    assert_eq!(e["id"], e["Actor"]["ID"]);
    assert_eq!(e["from"], format!("{}:latest", bb()));
    assert_eq!(e["Actor"]["Attributes"]["exitCode"], "4");
    assert_eq!(e["Actor"]["Attributes"]["name"], "brief");
    let nano = e["timeNano"].as_i64().unwrap();
    assert_eq!(e["time"].as_i64().unwrap(), nano / 1_000_000_000);
    // Templates see the same fields.
    let mut args = range.to_vec();
    args.extend(["--format", "{{.Action}}:{{.Actor.Attributes.app}}"]);
    assert_eq!(
        env.ok(&args).stdout,
        "create:demo\nstart:demo\ndie:demo\ndestroy:demo\n"
    );
    // Nothing before --since.
    let later = chrono::Utc::now().to_rfc3339();
    assert_eq!(
        env.ok(&["events", "--since", &later, "--until", &later])
            .stdout,
        ""
    );
}

#[test]
fn events_filter_by_type_container_image_and_label() {
    let env = Env::new();
    let since = chrono::Utc::now().to_rfc3339();
    env.pull("busybox");
    env.ok(&["tag", &bb(), "mine:v1"]);
    env.ok(&["run", "--name", "one", "-l", "team=a", &bb(), "true"]);
    env.ok(&["run", "--name", "two", &bb(), "true"]);
    env.ok(&["rename", "two", "deux"]);
    env.ok(&["rmi", "mine:v1"]);
    let until = chrono::Utc::now().to_rfc3339();
    let q = |filters: &[&str]| -> Vec<String> {
        let mut args = vec!["events", "--since", &since, "--until", &until];
        for f in filters {
            args.extend(["--filter", f]);
        }
        args.extend([
            "--format",
            "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}",
        ]);
        env.ok(&args).stdout.lines().map(String::from).collect()
    };
    let images = q(&["type=image"]);
    assert_eq!(
        images,
        [
            format!("image pull {}:latest", bb()),
            "image tag mine:v1".to_string(),
            "image untag mine:v1".to_string(),
        ]
    );
    assert_eq!(
        q(&["container=one"]),
        [
            "container create one",
            "container start one",
            "container die one"
        ]
    );
    assert_eq!(q(&["label=team=a", "event=start"]), ["container start one"]);
    assert_eq!(q(&["label=team"]).len(), 3);
    // The same key twice: either; a rename names the new name and the old.
    assert_eq!(
        q(&["event=rename", "event=pull"]),
        [
            format!("image pull {}:latest", bb()),
            "container rename deux".to_string()
        ]
    );
    assert_eq!(q(&["image=busybox"]).len(), 0, "another registry's busybox");
}

#[test]
fn events_follow_live_until_interrupted() {
    let env = Env::new();
    env.pull("busybox");
    env.fails(&["events", "--filter", "colour=red"], "colour");
    let live = Live::spawn(
        &env,
        &[
            "events",
            "--filter",
            "type=container",
            "--format",
            "{{.Actor.Attributes.name}} {{.Action}}",
        ],
    );
    // It follows from its start: give it the moment to find the log's end.
    std::thread::sleep(Duration::from_millis(700));
    env.ok(&["run", "--rm", "--name", "watched", &bb(), "true"]);
    env.ok(&["tag", &bb(), "unseen:v1"]);
    live.wait_for("watched destroy");
    let seen = live.seen();
    assert_eq!(
        seen, "watched create\nwatched start\nwatched die\nwatched destroy\n",
        "no image events, no past ones"
    );
    drop(live);
}
