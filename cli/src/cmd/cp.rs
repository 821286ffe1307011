//! `skiff cp`: between the host and a container, either way, through the running container's
//! namespaces or (stopped) through the `__cp` helper in a private mount namespace.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use skiff_runtime::Containers;

use crate::ctx;

/// `cp` flags.
#[derive(Args)]
pub struct CpArgs {
    /// Keep the owners of copied files (by default they become root's in the container)
    #[arg(short, long)]
    archive: bool,
    /// CONTAINER:PATH, a host path, or - (a tar stream on stdin, unpacked into a directory)
    src: String,
    /// CONTAINER:PATH, a host path, or - (a tar stream on stdout)
    dest: String,
}

/// `CONTAINER:PATH` as Docker reads it: a colon before any slash.
fn container_path(arg: &str) -> Option<(&str, &str)> {
    let (c, p) = arg.split_once(':')?;
    (!c.is_empty() && !c.contains('/')).then_some((c, p))
}

/// `skiff cp`: between the host and a container, either way. A running container is reached
/// through its namespaces; a created or exited one through its root file system, mounted by a
/// helper (`skiff __cp`) in a private mount namespace.
pub fn cp(a: CpArgs) -> Result<ExitCode> {
    use skiff_runtime::files::copy;
    let (_, c) = ctx::containers()?;
    match (container_path(&a.src), container_path(&a.dest)) {
        (Some((ctr, path)), None) if a.dest == "-" => {
            let id = c.resolve(ctr)?;
            return cp_out_to_stdout(&c, &id, path);
        }
        (None, Some((ctr, path))) if a.src == "-" => {
            let id = c.resolve(ctr)?;
            if !path.starts_with('/') {
                bail!("the path in the container must be absolute: {ctr}:/{path}");
            }
            if std::io::stdin().is_terminal() {
                bail!("cp - reads a tar archive from stdin: redirect stdin from one");
            }
            let bytes = copy::read_stream(std::io::stdin().lock(), a.archive)?;
            if c.view(&id)?.running() {
                copy::copy_in_tar(&c, &id, &bytes, path)?;
            } else {
                let mut child =
                    ctx::unpacker::spawn_helper(&["__cp", "in", &id, path, copy::STREAM])?;
                let sent = child
                    .stdin
                    .take()
                    .context("helper input")?
                    .write_all(&bytes);
                if !child.wait()?.success() {
                    return Ok(ExitCode::from(125));
                }
                sent.context("sending the copy")?;
            }
        }
        (Some((ctr, path)), None) => {
            let id = c.resolve(ctr)?;
            let dest = std::path::Path::new(&a.dest);
            if c.view(&id)?.running() {
                copy::copy_out(&c, &id, path, dest)?;
            } else {
                let (into, top) = copy::plan_out(path, dest)?;
                let mut child = ctx::unpacker::spawn_helper(&["__cp", "out", &id, path, &top])?;
                let out = child.stdout.take().context("helper output")?;
                let unpacked = skiff_store::unpack::unpack_archive(
                    out,
                    &into,
                    skiff_store::unpack::UnpackOptions::default(),
                );
                let status = child.wait()?;
                if !status.success() {
                    // The helper said why, on its one error line.
                    return Ok(ExitCode::from(125));
                }
                unpacked.with_context(|| format!("writing to {}", dest.display()))?;
            }
        }
        (None, Some((ctr, path))) => {
            let id = c.resolve(ctr)?;
            if !path.starts_with('/') {
                bail!("the path in the container must be absolute: {ctr}:/{path}");
            }
            let src = std::path::Path::new(&a.src);
            if c.view(&id)?.running() {
                copy::copy_in(&c, &id, src, path, a.archive)?;
            } else {
                let (bytes, name) = copy::archive_of(src, a.archive)?;
                let mut child = ctx::unpacker::spawn_helper(&["__cp", "in", &id, path, &name])?;
                let sent = child
                    .stdin
                    .take()
                    .context("helper input")?
                    .write_all(&bytes);
                let status = child.wait()?;
                if !status.success() {
                    return Ok(ExitCode::from(125));
                }
                sent.context("sending the copy")?;
            }
        }
        (Some(_), Some(_)) => {
            bail!("copying between containers is not supported: copy to the host first")
        }
        (None, None) => bail!("one of the paths must be CONTAINER:PATH"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `skiff cp CTR:PATH -`: the copy as a tar stream on stdout (never a file named `-`).
fn cp_out_to_stdout(c: &Containers, id: &str, path: &str) -> Result<ExitCode> {
    use skiff_runtime::files::copy;
    if std::io::stdout().is_terminal() {
        bail!("refusing to write a tar archive to a terminal: redirect stdout (skiff cp CTR:PATH - > file.tar)");
    }
    let mut out = std::io::stdout().lock();
    if c.view(id)?.running() {
        copy::copy_out_tar(c, id, path, &mut out)?;
    } else {
        let top = copy::top_name(path);
        let mut child = ctx::unpacker::spawn_helper(&["__cp", "out", id, path, &top])?;
        let mut from = child.stdout.take().context("helper output")?;
        let copied = std::io::copy(&mut from, &mut out);
        if !child.wait()?.success() {
            // The helper said why, on its one error line.
            return Ok(ExitCode::from(125));
        }
        copied.context("writing the archive to stdout")?;
    }
    out.flush().context("writing the archive to stdout")?;
    Ok(ExitCode::SUCCESS)
}
