//! `skiff diff` / `skiff container diff`: a container's changes against its image, one Docker
//! `A`/`C`/`D` line per path. Read in-process as root; rootless through the `__diff` helper in
//! the user's mapped namespace, where files of the container's other ids can be read too.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use skiff_store::changes::{changes, Top};

use crate::ctx;

/// `diff` flags.
#[derive(Args)]
pub struct DiffArgs {
    /// Container
    container: String,
}

/// `skiff diff CTR`.
pub fn diff(a: DiffArgs) -> Result<ExitCode> {
    let (_, c) = ctx::containers()?;
    let id = c.resolve(&a.container)?;
    if skiff_runtime::userns::identity::Identity::current().is_root() {
        return print_changes(&c, &id);
    }
    let mut child = ctx::unpacker::spawn_helper(&["__diff", &id])?;
    let mut from = child.stdout.take().context("helper output")?;
    let copied = std::io::copy(&mut from, &mut std::io::stdout().lock());
    if !child.wait()?.success() {
        // The helper printed its own error line.
        return Ok(ExitCode::from(125));
    }
    copied.context("writing the changes")?;
    Ok(ExitCode::SUCCESS)
}

/// Prints the changes of container `id`: its overlay upper dir, or its private copy of the image
/// where overlayfs was refused (`rootfs-copy/`, compared with the layers entry by entry). Also
/// the `__diff` helper's body.
pub fn print_changes(c: &skiff_runtime::Containers, id: &str) -> Result<ExitCode> {
    let v = c.view(id)?;
    let dir = c.dir(id);
    let copy = dir.join("rootfs-copy");
    let (top, kind) = if copy.join(".skiff-copy-complete").exists() {
        (copy, Top::Copy)
    } else {
        (dir.join("upper"), Top::Upper)
    };
    let found = changes(&top, &v.cfg.layers, kind)
        .with_context(|| format!("reading the changes of container {}", v.cfg.name))?;
    let mut out = String::new();
    for ch in found {
        out.push_str(&ch.to_string());
        out.push('\n');
    }
    std::io::Write::write_all(&mut std::io::stdout().lock(), out.as_bytes())
        .context("writing the changes")?;
    Ok(ExitCode::SUCCESS)
}
