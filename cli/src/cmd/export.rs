//! `skiff export` / `skiff container export`: a container's merged filesystem as one tar, packed
//! the way `cp CTR:/ -` packs it: a stopped one's by the `__cp` helper in a private mount
//! namespace, a running one's from a clone of its root mount alone, inside its namespaces.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::ctx;

/// `export` flags.
#[derive(Args)]
pub struct ExportArgs {
    /// Write to this file instead of stdout
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Container
    container: String,
}

/// `skiff export`: to a file written whole before it is renamed into place, or to stdout
/// (refused on a terminal).
pub fn export(a: ExportArgs) -> Result<ExitCode> {
    let (_, c) = ctx::containers()?;
    let id = c.resolve(&a.container)?;
    match &a.output {
        Some(path) => {
            let tmp = path.with_file_name(format!(
                ".{}.skiff-export",
                path.file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default()
            ));
            let file = std::fs::File::create(&tmp)
                .with_context(|| format!("creating {}", tmp.display()))?;
            let mut w = std::io::BufWriter::new(file);
            let res = pack(&c, &id, &mut w);
            let res = match res {
                Ok(code) if code == ExitCode::SUCCESS => w
                    .flush()
                    .map_err(anyhow::Error::from)
                    .and_then(|_| std::fs::rename(&tmp, path).map_err(anyhow::Error::from))
                    .with_context(|| format!("writing {}", path.display()))
                    .map(|_| code),
                other => other,
            };
            if !matches!(res, Ok(code) if code == ExitCode::SUCCESS) {
                let _ = std::fs::remove_file(&tmp);
            }
            res
        }
        None => {
            if std::io::stdout().is_terminal() {
                bail!(
                    "refusing to write a tar archive to a terminal: use -o FILE or redirect stdout"
                );
            }
            let mut out = std::io::stdout().lock();
            let code = pack(&c, &id, &mut out)?;
            out.flush().context("writing the archive to stdout")?;
            Ok(code)
        }
    }
}

/// Packs the container's `/` into `out`; a helper's failure has printed its own error line. A
/// running container's root filesystem is packed from a clone of its root mount alone (not its
/// /proc, /sys, volumes or skiff's mounts, as Docker); a stopped one's by the `__cp` helper.
fn pack(c: &skiff_runtime::Containers, id: &str, out: &mut dyn Write) -> Result<ExitCode> {
    let v = c.view(id)?;
    if v.running() {
        skiff_runtime::files::copy::export_running(c, id, out)
            .with_context(|| format!("exporting container {}", v.cfg.name))?;
        return Ok(ExitCode::SUCCESS);
    }
    if v.active() {
        bail!(
            "container {} is restarting: try again once it runs (skiff ps), or stop it first (skiff stop {})",
            v.cfg.name,
            v.cfg.name
        );
    }
    let mut child = ctx::unpacker::spawn_helper(&["__cp", "out", id, "/.", "."])?;
    let mut from = child.stdout.take().context("helper output")?;
    let copied = std::io::copy(&mut from, out);
    if !child.wait()?.success() {
        return Ok(ExitCode::from(125));
    }
    copied.context("writing the archive")?;
    Ok(ExitCode::SUCCESS)
}
