//! `skiff exec`: a command in a running container, joined by the runtime from a sealed copy of
//! skiff.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{ArgAction, Args};
use skiff_runtime::process::exec::ExecOptions;

use crate::ctx;
use crate::output::usage;

/// `exec` flags.
#[derive(Args)]
pub struct ExecArgs {
    /// Run in the background
    #[arg(short, long)]
    detach: bool,
    /// Keep stdin open (without it the command reads /dev/null)
    #[arg(short, long)]
    interactive: bool,
    /// Give the command a new terminal in the container, relayed to skiff's
    #[arg(short, long)]
    tty: bool,
    /// Environment (KEY=VALUE or KEY)
    #[arg(short, long, action = ArgAction::Append)]
    env: Vec<String>,
    /// Environment file
    #[arg(long, action = ArgAction::Append)]
    env_file: Vec<std::path::PathBuf>,
    /// user[:group]
    #[arg(short, long)]
    user: Option<String>,
    /// Working directory
    #[arg(short, long)]
    workdir: Option<String>,
    /// Container
    container: String,
    /// Command
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    command: Vec<String>,
}

/// `skiff exec`.
pub fn exec(a: ExecArgs) -> Result<ExitCode> {
    usage::refuse_tty_without_terminal(a.interactive, a.tty, a.detach)?;
    // The process that joins the container runs from a sealed copy of skiff (CVE-2019-5736).
    skiff_runtime::process::exec::run_from_sealed_copy()?;
    let (_, c) = ctx::containers()?;
    let id = c.resolve(&a.container)?;
    let mut env = Vec::new();
    for f in &a.env_file {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("--env-file {}", f.display()))?;
        env.extend(
            text.lines()
                .map(skiff_runtime::spec::env_file_line)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from),
        );
    }
    env.extend(a.env.iter().cloned());
    let env = env
        .into_iter()
        .filter_map(|e| {
            if e.contains('=') {
                Some(e)
            } else {
                std::env::var(&e).ok().map(|v| format!("{e}={v}"))
            }
        })
        .collect();
    let o = ExecOptions {
        args: a.command,
        env,
        user: a.user,
        workdir: a.workdir,
        detach: a.detach,
        interactive: a.interactive,
        tty: a.tty,
        timeout: None,
    };
    match skiff_runtime::process::exec::exec_in(&c, &id, &o) {
        Ok(code) => Ok(ExitCode::from(u8::try_from(code).unwrap_or(125))),
        Err(skiff_runtime::Error::Exec(code, msg)) => {
            eprintln!("Error: {msg}");
            Ok(ExitCode::from(u8::try_from(code).unwrap_or(125)))
        }
        Err(e) => Err(e.into()),
    }
}
