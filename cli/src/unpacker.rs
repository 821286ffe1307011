//! Chooses how layers are unpacked for this user, and the hidden helper commands that do it
//! inside a mapped user namespace (`skiff __unpack`, `skiff __rmtree`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use skiff_runtime::userns::identity::Identity;
use skiff_runtime::userns::{helpers, idmap};
use skiff_store::unpack::{remove_tree, unpack_layer, UnpackOptions};
use skiff_store::{Digest, Dirs, LayerUnpacker};

/// The unpacker for this user (see `userns::helpers::unpacker_for`); a user without a subuid
/// range is told once that image files all become its own.
pub fn for_this_user(dirs: &Dirs) -> Arc<dyn LayerUnpacker> {
    let who = Identity::current();
    if matches!(who, Identity::Alone { .. }) {
        let marker = dirs.data.join(".said-no-subuid");
        if !marker.exists() {
            eprintln!("note: no /etc/subuid range for this user: image files all belong to you, so ids other than root are lost inside containers; add a range ({}) to keep them", idmap::usermod_hint());
            let _ = std::fs::create_dir_all(&dirs.data);
            let _ = std::fs::write(&marker, b"");
        }
    }
    helpers::unpacker_for(&who, self_exe())
}

/// This executable, which is also every helper's.
fn self_exe() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe"))
}

/// `skiff unshare CMD…`: runs CMD in the mapped user namespace (directly when root) and exits with
/// its code.
pub fn unshare(command: Vec<String>) -> anyhow::Result<std::process::ExitCode> {
    let mut argv = command;
    if argv.is_empty() {
        argv.push(std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".into()));
    }
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    let who = Identity::current();
    if matches!(who, Identity::Alone { .. }) {
        anyhow::bail!(
            "no /etc/subuid range for this user: there is no namespace to enter (add one with {})",
            idmap::usermod_hint()
        );
    }
    let status = who.spawn(cmd)?.wait();
    let status = status.map_err(|e| anyhow::anyhow!("{}: {e}", argv[0]))?;
    Ok(std::process::ExitCode::from(
        status.code().map(|c| c as u8).unwrap_or(125),
    ))
}

/// Starts `skiff ARGS` as root of this user's mapping (directly when root), with stdin and
/// stdout piped, for helpers that must own the files they touch.
pub fn spawn_helper(args: &[&str]) -> anyhow::Result<std::process::Child> {
    Ok(helpers::spawn_helper(
        &Identity::current(),
        &self_exe(),
        args,
    )?)
}

/// `skiff __unpack BLOB DIFF_ID DEST MAX_SIZE`: runs inside the mapped namespace as its root.
pub fn helper_unpack(blob: &Path, diff_id: &str, dest: &Path, max_size: u64) -> anyhow::Result<()> {
    let diff_id = Digest::parse(diff_id)?;
    std::fs::create_dir(dest)?;
    let rep = unpack_layer(
        blob,
        &diff_id,
        dest,
        UnpackOptions {
            chown: true,
            plain: false,
            max_size,
        },
    )?;
    println!("{}", serde_json::to_string(&rep)?);
    Ok(())
}

/// `skiff __rmtree DIR`: removes a layer directory whose files belong to mapped ids.
pub fn helper_rmtree(dir: &Path) -> anyhow::Result<()> {
    Ok(remove_tree(dir)?)
}
