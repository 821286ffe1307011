//! Plugins end to end through the real binary: the C, Python and JavaScript examples doing
//! their jobs (from files and from the local registry), a 0.1.0 plugin, every hostile fixture
//! stopped with the right message, clashing adjusters named, bad input refused with nothing
//! half-installed, and `plugin test` agreeing with a real run. The components are built from
//! source before the suite by `cargo xtask plugin-examples` into `$SKIFF_PLUGIN_EXAMPLES`.

#[path = "../common/mod.rs"]
mod common;

mod commands;
mod examples;
mod hostile;

use std::path::PathBuf;

use common::*;

/// A built example or fixture (`mirror.wasm`, `fixtures/loop.wasm`).
pub fn example(name: &str) -> String {
    let dir = std::env::var_os("SKIFF_PLUGIN_EXAMPLES").map(PathBuf::from).expect(
        "SKIFF_PLUGIN_EXAMPLES names the built plugin examples: run `cargo xtask plugin-tools && cargo xtask plugin-examples` (CI does)",
    );
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo xtask plugin-examples`",
        p.display()
    );
    p.to_string_lossy().into_owned()
}

/// Appends `text` to the environment's config.toml.
pub fn configure(env: &Env, text: &str) {
    std::fs::create_dir_all(env.config()).unwrap();
    let path = env.config().join("config.toml");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    std::fs::write(&path, format!("{old}\n{text}\n")).unwrap();
}

/// Installs a plugin file, requiring success.
pub fn install(env: &Env, file: &str, extra: &[&str]) -> Run {
    let mut args = vec!["plugin", "install", file];
    args.extend_from_slice(extra);
    env.ok(&args)
}

/// A JSON input file for `plugin test`.
pub fn input(env: &Env, name: &str, json: &str) -> String {
    let p = env.home.path().join(name);
    std::fs::write(&p, json).unwrap();
    p.to_string_lossy().into_owned()
}

/// `skiff plugin test PLUGIN --hook HOOK` on `json`, requiring success.
pub fn plugin_test(env: &Env, plugin: &str, hook: &str, json: &str) -> Run {
    let i = input(env, &format!("{plugin}-{hook}.json"), json);
    env.ok(&["plugin", "test", plugin, "--hook", hook, "--input", &i])
}
