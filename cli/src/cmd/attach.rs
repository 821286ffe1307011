//! `skiff attach`: this terminal joined to a running container through its monitor's attach
//! socket (see the runtime's `monitor::attach`): its output from now on, this stdin to its
//! stdin when it was started with `-i`, until it exits (its code is ours) or the detach keys.

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::{ArgAction, Args};
use skiff_runtime::container::StateError;
use skiff_runtime::events::Event;
use skiff_runtime::monitor::attach::{self, AttachOptions, Attached};

use crate::ctx;

/// `attach` flags.
#[derive(Args)]
pub struct AttachArgs {
    /// Do not attach stdin
    #[arg(long = "no-stdin")]
    no_stdin: bool,
    /// Forward signals received by skiff to the container (one without a terminal)
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    sig_proxy: bool,
    /// The keys that detach, leaving the container running (ctrl-p,ctrl-q by default)
    #[arg(long = "detach-keys")]
    detach_keys: Option<String>,
    /// Container
    container: String,
}

/// `skiff attach`.
pub fn attach(a: AttachArgs) -> Result<ExitCode> {
    let keys = attach::parse_detach_keys(a.detach_keys.as_deref().unwrap_or("ctrl-p,ctrl-q"))?;
    let (_, c) = ctx::containers()?;
    let id = c.resolve(&a.container)?;
    let v = c.view(&id)?;
    if !v.running() {
        return Err(StateError::AttachStopped(v.cfg.name.clone()).into());
    }
    if v.paused() {
        return Err(StateError::Paused(v.cfg.name.clone()).into());
    }
    let opts = AttachOptions {
        stdin: !a.no_stdin && v.cfg.process.stdin,
        tty: v.cfg.process.terminal,
        sig_proxy: a.sig_proxy,
        detach_keys: keys,
    };
    // As Docker: a terminal container's stdin wants a terminal here (Docker exits 1; skiff's
    // own errors exit 125); --no-stdin only watches, from anything.
    if opts.stdin && opts.tty && !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        bail!("the input device is not a TTY: attach from a terminal, or add --no-stdin to only watch its output");
    }
    c.events.emit(&Event::container("attach", &v.cfg, &[]));
    let joined = match attach::attach(&c.attach_socket(&id), &opts) {
        Ok(j) => j,
        // Gone between the look and the connect: it has stopped.
        Err(_) if !c.view(&id).is_ok_and(|v| v.running()) => {
            return Err(StateError::AttachStopped(v.cfg.name.clone()).into())
        }
        Err(e) => return Err(e.into()),
    };
    let code = match joined {
        Attached::Exited(code) => code,
        Attached::Detached => {
            c.events.emit(&Event::container("detach", &v.cfg, &[]));
            eprintln!("read escape sequence");
            0
        }
        // The monitor went without a word (killed, or it ended as we connected): the record
        // has the code.
        Attached::Lost => c
            .wait_exit(&id, Some(std::time::Duration::from_secs(2)))
            .ok()
            .and_then(|v| v.state.exit_code)
            .unwrap_or(125),
    };
    Ok(ExitCode::from(u8::try_from(code & 0xff).unwrap_or(125)))
}
