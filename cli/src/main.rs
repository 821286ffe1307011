//! The `skiff` command line: parses arguments, calls the store and runtime crates, prints results
//! and maps failures to Docker's exit codes (125 for skiff's own errors, usage errors included).

mod commands;
mod containers_cmd;
mod format;
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
