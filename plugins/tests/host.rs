//! The host against hand-written components: a hook is called, its limits stop it, and each
//! failure comes back with its cause. (The examples in C, Python and JavaScript are tested
//! end to end through the skiff binary in tests/.)

use std::sync::{Arc, Mutex};

use skiff_plugins::bindings::wit;
use skiff_plugins::settings::PluginConfig;
use skiff_plugins::{CallError, Host, PluginError};

/// A component exporting before-pull@VERSION whose core function body is `body` (it gets the
/// reference's pointer and length and returns a pointer to the result).
fn pull_component(version: &str, body: &str) -> Vec<u8> {
    pull_component_with(version, body, "")
}

/// `pull_component` whose core module also has `fields` (a start function, say).
fn pull_component_with(version: &str, body: &str, fields: &str) -> Vec<u8> {
    let text = format!(
        r#"(component
  (type $types (instance
    (type $d (variant (case "keep") (case "rewrite" string) (case "deny" string)))
    (export "pull-decision" (type (eq $d)))))
  (import "skiff:plugin/types@{version}" (instance $t (type $types)))
  (alias export $t "pull-decision" (type $pd))
  (core module $m
    (memory (export "mem") 1)
    (global $next (mut i32) (i32.const 4096))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $p i32)
      global.get $next
      local.set $p
      global.get $next
      local.get 3
      i32.add
      global.set $next
      local.get $p)
    (func (export "pull") (param i32 i32) (result i32) {body})
    {fields})
  (core instance $i (instantiate $m))
  (func $f (param "reference" string) (result $pd)
    (canon lift (core func $i "pull") (memory (core memory $i "mem")) (realloc (core func $i "realloc"))))
  (instance $bp (export "before-pull" (func $f)))
  (export "skiff:plugin/before-pull@{version}" (instance $bp)))"#
    );
    wat::parse_str(text).unwrap()
}

/// Returns `deny(reference)`: the result area at 2048 holds tag 2, then the string's ptr/len.
const DENY_ECHO: &str = "i32.const 2048 i32.const 2 i32.store8
  i32.const 2052 local.get 0 i32.store
  i32.const 2056 local.get 1 i32.store
  i32.const 2048";

fn host() -> (Host, Arc<Mutex<Vec<String>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let l = lines.clone();
    let h = Host::new(Arc::new(move |p: &str, _lvl: wit::Level, m: &str| {
        l.lock().unwrap().push(format!("{p}: {m}"));
    }))
    .unwrap();
    (h, lines)
}

fn load(h: &Host, bytes: &[u8], config: PluginConfig) -> skiff_plugins::Loaded {
    let (compiled, _) = h.compile(bytes, "t.wasm").unwrap();
    let c = unsafe { wasmtime::component::Component::deserialize(h.engine(), &compiled) }.unwrap();
    h.load("t", &c, config).unwrap()
}

#[test]
fn a_hook_is_called_with_the_reference_and_its_answer_read() {
    let (h, _) = host();
    let bytes = pull_component("0.2.0", DENY_ECHO);
    let (_, inspected) = h.compile(&bytes, "t.wasm").unwrap();
    assert_eq!(inspected.hooks, [skiff_plugins::Hook::BeforePull]);
    let p = load(&h, &bytes, PluginConfig::default());
    assert_eq!(
        p.before_pull("docker.io/library/busybox:latest").unwrap(),
        wit::PullDecision::Deny("docker.io/library/busybox:latest".into())
    );
    assert!(p.last_stats().peak_memory >= 65536);
}

#[test]
fn an_endless_loop_is_stopped_at_the_deadline() {
    let (h, _) = host();
    let mut c = PluginConfig::default();
    c.limits.timeout_ms = 50;
    let p = load(&h, &pull_component("0.2.0", "(loop br 0) i32.const 0"), c);
    let t = std::time::Instant::now();
    assert_eq!(p.before_pull("x").unwrap_err(), CallError::Timeout(50));
    assert!(t.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn memory_growth_past_the_cap_is_stopped() {
    let (h, _) = host();
    let mut c = PluginConfig::default();
    c.limits.memory_mib = 2;
    let p = load(
        &h,
        &pull_component(
            "0.2.0",
            "(loop i32.const 1 memory.grow drop br 0) i32.const 0",
        ),
        c,
    );
    assert_eq!(p.before_pull("x").unwrap_err(), CallError::Memory(2));
}

#[test]
fn traps_and_malformed_results_are_named() {
    let (h, _) = host();
    let p = load(
        &h,
        &pull_component("0.2.0", "unreachable"),
        PluginConfig::default(),
    );
    assert!(
        matches!(p.before_pull("x").unwrap_err(), CallError::Trap(m) if m.contains("unreachable"))
    );
    let bad = "i32.const 2048 i32.const 7 i32.store8 i32.const 2048";
    let p = load(&h, &pull_component("0.2.0", bad), PluginConfig::default());
    assert!(matches!(
        p.before_pull("x").unwrap_err(),
        CallError::Malformed(_)
    ));
}

#[test]
fn unknown_worlds_and_core_modules_are_refused_at_compile() {
    let (h, _) = host();
    let e = h
        .compile(&pull_component("9.9.0", DENY_ECHO), "future.wasm")
        .unwrap_err();
    assert!(matches!(e, PluginError::UnknownWorld { .. }), "{e}");
    assert!(e.to_string().contains("0.1.0, 0.2.0"), "{e}");
    let core = wat::parse_str("(module (func (export \"f\")))").unwrap();
    assert!(matches!(
        h.compile(&core, "c.wasm").unwrap_err(),
        PluginError::CoreModule(_)
    ));
    let mut cut = pull_component("0.2.0", DENY_ECHO);
    cut.truncate(cut.len() / 2);
    assert!(matches!(
        h.compile(&cut, "cut.wasm").unwrap_err(),
        PluginError::Invalid { .. }
    ));
}

/// Counts to `n`, then returns `keep` (the result area at 2048 holds tag 0).
fn count_to(n: u32) -> String {
    format!(
        "(local $i i32)
  (loop $l
    local.get $i i32.const 1 i32.add local.set $i
    local.get $i i32.const {n} i32.ne br_if $l)
  i32.const 2048 i32.const 0 i32.store8 i32.const 2048"
    )
}

#[test]
fn a_timeout_cuts_short_only_its_own_call() {
    let (h, _) = host();
    let mut quick = PluginConfig::default();
    quick.limits.timeout_ms = 20;
    let endless = load(
        &h,
        &pull_component("0.2.0", "(loop br 0) i32.const 0"),
        quick,
    );
    let mut patient = PluginConfig::default();
    patient.limits.timeout_ms = 60_000;
    let long = load(
        &h,
        &pull_component("0.2.0", &count_to(400_000_000)),
        patient,
    );
    std::thread::scope(|s| {
        let a = s.spawn(|| endless.before_pull("x"));
        let b = s.spawn(|| long.before_pull("x"));
        assert_eq!(a.join().unwrap().unwrap_err(), CallError::Timeout(20));
        // Still running when the other call's deadline passed, and not stopped by it.
        assert_eq!(b.join().unwrap().unwrap(), wit::PullDecision::Keep);
    });
}

#[test]
fn an_instance_made_ahead_serves_the_next_call() {
    let (h, _) = host();
    let p = load(
        &h,
        &pull_component("0.2.0", DENY_ECHO),
        PluginConfig::default(),
    );
    p.will_make_ahead();
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(std::time::Duration::from_millis(50));
            p.make_ahead();
        });
        // Waits for the instance being made instead of making a second one.
        assert_eq!(
            p.before_pull("a").unwrap(),
            wit::PullDecision::Deny("a".into())
        );
    });
    assert_eq!(p.ahead(), 0);
    // Without one announced, a call makes its own.
    assert_eq!(
        p.before_pull("b").unwrap(),
        wit::PullDecision::Deny("b".into())
    );
}

#[test]
fn an_instance_made_ahead_that_fails_fails_its_call_with_the_cause() {
    let (h, _) = host();
    let mut c = PluginConfig::default();
    c.limits.timeout_ms = 30;
    let looping_start = "(func $s (loop br 0)) (start $s)";
    let p = load(
        &h,
        &pull_component_with("0.2.0", DENY_ECHO, looping_start),
        c,
    );
    p.will_make_ahead();
    p.make_ahead();
    assert_eq!(p.ahead(), 1);
    assert_eq!(p.before_pull("x").unwrap_err(), CallError::Timeout(30));
    assert_eq!(p.ahead(), 0);
}
