//! `skiff commit`: a new image from a container's changes and settings.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{ArgAction, Args};

use crate::ctx;

/// `commit` flags.
#[derive(Args)]
pub struct CommitArgs {
    /// Author of the new image
    #[arg(short, long)]
    author: Option<String>,
    /// Commit message
    #[arg(short, long)]
    message: Option<String>,
    /// Pause a running container while its changes are read (default true)
    #[arg(short, long, default_value_t = true, action = ArgAction::Set)]
    pause: bool,
    /// Container
    container: String,
    /// Name of the new image: REPOSITORY[:TAG]
    name: String,
}

/// `skiff commit`: a new image from a container's changes (its `upper/` as one more layer) and
/// its settings, as Docker's.
pub fn commit(a: CommitArgs) -> Result<ExitCode> {
    let (dirs, c) = ctx::containers()?;
    let id = c.resolve(&a.container)?;
    let v = c.view(&id)?;
    let base = skiff_store::Digest::parse(&v.cfg.image_id)?;
    let store = skiff_store::ImageStore::open(dirs.clone())?;
    // Refused names and a vanished base fail here, before the container is paused or its
    // changes are read.
    let target = store.commit_target(&base, &a.name)?;
    let paused = a.pause && v.running() && !v.paused() && c.pause(&id).is_ok();
    let upper = c.dir(&id).join("upper");
    let settings = skiff_store::commit::CommitSettings {
        entrypoint: v.cfg.entrypoint.clone(),
        cmd: v.cfg.cmd.clone(),
        env: v.cfg.process.env.clone(),
        workdir: v.cfg.process.cwd.clone(),
        user: v.cfg.process.user.clone(),
        labels: v.cfg.labels.clone(),
        exposed_ports: v.cfg.exposed.clone(),
        healthcheck: v
            .cfg
            .healthcheck
            .as_ref()
            .and_then(|h| serde_json::to_value(h).ok()),
        author: a.author.clone(),
        message: a.message.clone(),
    };
    let unpacker = ctx::unpacker::for_this_user(&dirs);
    let result = if skiff_runtime::userns::identity::Identity::current().is_root() {
        let (r, w) = std::io::pipe().context("a pipe for the layer")?;
        let packer =
            std::thread::spawn(move || skiff_runtime::files::commit::pack_upper(&upper, w));
        let made = store.commit(&target, r, &settings, &*unpacker);
        let packed = packer
            .join()
            .map_err(|_| anyhow::anyhow!("reading the container's changes failed"))?;
        // The store's error first: when it stops reading early, the packer's broken pipe follows.
        made.map_err(anyhow::Error::from).and_then(|id| {
            packed
                .map(|_| id)
                .context("reading the container's changes")
        })
    } else {
        let upper_s = upper.to_string_lossy().into_owned();
        let mut child = ctx::unpacker::spawn_helper(&["__pack-upper", &upper_s])?;
        let out = child.stdout.take().context("helper output")?;
        let made = store.commit(&target, out, &settings, &*unpacker);
        let status = child.wait()?;
        match made {
            // The helper's failure printed its own error line.
            Ok(_) if !status.success() => return Ok(ExitCode::from(125)),
            other => other.map_err(anyhow::Error::from),
        }
    };
    if paused {
        let _ = c.unpause(&id);
    }
    let made = result?;
    // A container event in Docker, naming the new image.
    ctx::event(&skiff_runtime::events::Event::container(
        "commit",
        &v.cfg,
        &[("imageID", made.to_string())],
    ));
    println!("{made}");
    Ok(ExitCode::SUCCESS)
}
