//! The `skiff` command line: parses arguments, calls the store and runtime crates, prints results
//! and maps failures to Docker's exit codes (125 for skiff's own errors, usage errors included).

mod commands;
mod containers_cmd;
mod format;
mod hooks;
mod human;
mod info;
mod progress;
mod prompt;
mod run;
mod system_cmd;
mod unpacker;
mod usage;
mod volumes_cmd;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match commands::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage::report(e),
    };
    // The hidden helpers run inside a user namespace for a command that did this already.
    if !std::env::args().nth(1).is_some_and(|a| a.starts_with("__")) {
        match skiff_store::Dirs::from_env().make_private() {
            Ok(notes) => notes.iter().for_each(|n| eprintln!("{n}")),
            Err(e) => {
                eprintln!("Error: {e}");
                return ExitCode::from(125);
            }
        }
    }
    match commands::dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {}", one_line(&e));
            ExitCode::from(125)
        }
    }
}

/// The error and its causes on one line, without repeating what a cause already says.
fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if !out.contains(&s) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&s);
        }
    }
    out.replace('\n', " ")
}
