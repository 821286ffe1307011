//! Developer tasks: `cargo xtask testenv up|down|status`, `fixtures`, `ci`, `demo`, `man DIR`, `bench pull`.

mod bench;
mod ci;
mod fixtures;
mod sh;
mod testenv;

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
        ["testenv", "up"] => testenv::up(),
        ["testenv", "down"] => testenv::down(),
        ["testenv", "status"] => testenv::status(),
        ["fixtures"] => fixtures::build_and_push(),
        ["ci"] => ci::run(),
        ["demo"] => ci::demo(),
        ["man", dir] => ci::man(dir),
        ["bench", "pull"] => bench::pull(),
        ["bench", "run"] => bench::run(),
        ["bench", "ps"] => bench::ps(),
        ["bench", "ps-inner", skiff] => bench::ps_inner(skiff),
        ["bench", "run-inner", skiff] => bench::run_inner(skiff),
        _ => bail!(
            "usage: cargo xtask testenv up|down|status | fixtures | ci | demo | man DIR | bench pull|run|ps"
        ),
    }
}
