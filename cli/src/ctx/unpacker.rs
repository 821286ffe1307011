//! How layers are unpacked and removed for this user: the unpacker that fits (inside a mapped
//! user namespace through skiff's own helpers, or plainly), and spawning those helpers.

use std::path::PathBuf;
use std::sync::Arc;

use skiff_runtime::userns::identity::Identity;
use skiff_runtime::userns::{helpers, idmap};
use skiff_store::{Dirs, LayerUnpacker};

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

/// Starts `skiff ARGS` as root of this user's mapping (directly when root), with stdin and
/// stdout piped, for helpers that must own the files they touch.
pub fn spawn_helper(args: &[&str]) -> anyhow::Result<std::process::Child> {
    Ok(helpers::spawn_helper(
        &Identity::current(),
        &self_exe(),
        args,
    )?)
}
