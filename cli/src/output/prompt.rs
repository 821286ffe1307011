//! Reading a user name and a password from the terminal, as `docker login` does when they are not
//! given as flags. The password is read with echo off; the terminal is restored on every path.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};

use anyhow::{bail, Context, Result};
use skiff_runtime::sys::tty::EchoOff;

/// Asks `label` on /dev/tty and returns the answer without its newline.
pub fn ask(label: &str, secret: bool) -> Result<String> {
    let tty = File::options()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .context("no terminal to ask on: pass -u USER and --password-stdin")?;
    let mut out = tty.try_clone()?;
    write!(out, "{label}")?;
    out.flush()?;
    let guard = if secret {
        Some(EchoOff::new(&tty).context("turning terminal echo off")?)
    } else {
        None
    };
    let mut line = String::new();
    let read = BufReader::new(&tty).read_line(&mut line);
    drop(guard); // ECHONL already echoed the newline
    read.context("reading from the terminal")?;
    let answer = line.trim_end_matches(['\n', '\r']).to_string();
    if answer.is_empty() {
        bail!("{} is empty", label.trim_end_matches([':', ' ']));
    }
    Ok(answer)
}

/// Docker's prune confirmation: prints `warning` and asks "[y/N]" on stdin; without a terminal
/// there is nobody to ask, so `command` must be given `-f`.
pub fn confirm(command: &str, warning: &str) -> Result<bool> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        bail!("{command} asks for confirmation: pass -f to prune without a terminal");
    }
    eprint!("{warning}\nAre you sure you want to continue? [y/N] ");
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}
