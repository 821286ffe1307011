//! `skiff logs`: a container's output as the runtime's log reader gives it (tail, since/until,
//! follow), written to stdout or stderr as the container wrote it.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use skiff_runtime::container::logs::{parse_tail, LogFilter, LogReader, Record};
use skiff_runtime::container::times::parse_time;

use crate::ctx;

/// `logs` flags.
#[derive(Args)]
pub struct LogsArgs {
    /// Keep following (until the container exits for good)
    #[arg(short, long)]
    follow: bool,
    /// Show only the last N lines ("all" by default)
    #[arg(long, short = 'n')]
    tail: Option<String>,
    /// Prefix each line with its time
    #[arg(short, long)]
    timestamps: bool,
    /// Only output since this time (RFC 3339, Unix time, or relative like 10m)
    #[arg(long)]
    since: Option<String>,
    /// Only output until this time
    #[arg(long)]
    until: Option<String>,
    /// Container
    container: String,
}

/// `skiff logs`.
pub fn logs(a: LogsArgs) -> Result<ExitCode> {
    let (_, c) = ctx::containers()?;
    let id = c.resolve(&a.container)?;
    let filter = LogFilter {
        since: a.since.as_deref().map(parse_time).transpose()?,
        until: a.until.as_deref().map(parse_time).transpose()?,
        timestamps: a.timestamps,
    };
    let tail = parse_tail(a.tail.as_deref())?;
    let (mut reader, now) = LogReader::open(&c.log_path(&id), tail)?;
    for r in &now {
        emit(&filter, r);
    }
    if !a.follow {
        return Ok(ExitCode::SUCCESS);
    }
    // Follow: read what is appended; stop once the container is down and its monitor gone (so a
    // restart policy's next run is followed too).
    loop {
        let before = reader.offset();
        for r in reader.more()? {
            emit(&filter, &r);
        }
        if reader.offset() == before {
            let v = c.view(&id)?;
            if !v.running() && !v.monitor_alive() {
                return Ok(ExitCode::SUCCESS);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Prints a record's lines that pass `filter` to stdout or stderr, as the container wrote them.
fn emit(filter: &LogFilter, rec: &Record) {
    let Some(text) = filter.render(rec) else {
        return;
    };
    if rec.stream == "stderr" {
        let _ = std::io::stderr().write_all(text.as_bytes());
    } else {
        let mut out = std::io::stdout();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }
}
