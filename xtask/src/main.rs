//! Developer tasks: `cargo xtask testenv up|down|status`, `fixtures`, `ci`, `tidy`, `demo`, `man DIR`, `bench pull|run|ps|net|compare REV|plugins [REV]`, `plugin-tools`, `plugin-examples [--out DIR]`.

mod bench;
mod bench_net;
mod bench_plugins;
mod ci;
mod fixtures;
mod plugin_tools;
mod services;
mod sh;
mod testenv;
mod tidy;

use anyhow::{bail, Result};

fn main() {
    if let Err(e) = run() {
        eprintln!("xtask: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    match a.as_slice() {
        ["testenv", "up"] => testenv::up().and_then(|()| fixtures::build_and_push()),
        ["testenv", "down"] => testenv::down(),
        ["testenv", "status"] => testenv::status(),
        ["fixtures"] => fixtures::build_and_push(),
        ["ci"] => ci::run(),
        ["tidy"] => tidy::run(&workspace_root()),
        ["demo"] => ci::demo(),
        ["man", dir] => ci::man(dir),
        ["bench", "pull"] => bench::pull(),
        ["bench", "run"] => bench::run(),
        ["bench", "ps"] => bench::ps(),
        ["bench", "net"] => bench_net::net(),
        ["bench", "net-inner", skiff] => bench_net::net_inner(skiff),
        ["bench", "ps-inner", skiff] => bench::ps_inner(skiff),
        ["bench", "run-inner", skiff] => bench::run_inner(skiff),
        ["bench", "compare", rev] => bench::compare(rev),
        ["bench", "plugins"] => bench_plugins::plugins("HEAD~1"),
        ["bench", "plugins", rev] => bench_plugins::plugins(rev),
        ["bench", "plugins-inner", rev, old, new, examples] => {
            bench_plugins::plugins_inner(rev, old, new, std::path::Path::new(examples))
        }
        ["bench", "compare-inner", rev, old, new] => bench::compare_inner(rev, old, new),
        ["plugin-tools"] => plugin_tools::install(),
        ["plugin-examples", rest @ ..] => plugin_tools::examples(&workspace_root(), rest),
        _ => bail!(
            "usage: cargo xtask testenv up|down|status | fixtures | ci | tidy | demo | man DIR | bench pull|run|ps|net|compare REV|plugins [REV] | plugin-tools | plugin-examples [--out DIR]"
        ),
    }
}

/// The workspace's top folder (xtask's parent).
fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| ".".into())
}
