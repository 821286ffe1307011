//! Helpers that run as root of the user's mapping: the layer unpacker that keeps image owners
//! for a rootless user (a `skiff __unpack` / `__rmtree` child inside the mapped namespace), and
//! the one way every other helper (`__cp`, `__pack-upper`, `unshare`) is started there.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use skiff_store::unpack::UnpackReport;
use skiff_store::{Digest, InProcessUnpacker, LayerUnpacker};

use super::identity::Identity;

/// The unpacker for `who`: root keeps owners in this process; a user with a subuid range unpacks
/// in `skiff` (the `helper` executable) inside its mapping, so uid 1000 stays 1000 in the
/// container; a user alone gets every file as its own.
pub fn unpacker_for(who: &Identity, helper: PathBuf) -> Arc<dyn LayerUnpacker> {
    match who {
        Identity::Root => Arc::new(InProcessUnpacker { chown: true }),
        Identity::Mapped(_) => Arc::new(MappedUnpacker {
            who: who.clone(),
            helper,
        }),
        Identity::Alone { .. } => Arc::new(InProcessUnpacker { chown: false }),
    }
}

/// Starts `helper ARGS` as root of `who`'s mapping (directly when root), stdin and stdout piped.
pub fn spawn_helper(who: &Identity, helper: &Path, args: &[&str]) -> super::Result<Child> {
    let mut cmd = Command::new(helper);
    cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::piped());
    who.spawn(cmd)
}

/// Unpacks and removes in a `skiff` helper inside a user namespace mapped to the user's range.
struct MappedUnpacker {
    who: Identity,
    helper: PathBuf,
}

impl MappedUnpacker {
    fn run(&self, args: &[&std::ffi::OsStr]) -> skiff_store::Result<String> {
        let mut cmd = Command::new(&self.helper);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = self.who.spawn(cmd).map_err(|e| skiff_store::Error::Io {
            context: "user namespace".into(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let out = child
            .wait_with_output()
            .map_err(|e| skiff_store::Error::Io {
                context: "waiting for unpack helper".into(),
                source: e,
            })?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            let msg = String::from_utf8_lossy(&out.stderr)
                .trim()
                .trim_start_matches("Error: ")
                .to_string();
            Err(skiff_store::Error::Io {
                context: "unpack helper".into(),
                source: std::io::Error::other(msg),
            })
        }
    }
}

impl LayerUnpacker for MappedUnpacker {
    fn unpack(
        &self,
        blob: &Path,
        diff_id: &Digest,
        dest: &Path,
        max_size: u64,
    ) -> skiff_store::Result<UnpackReport> {
        let max = max_size.to_string();
        let out = self.run(&[
            "__unpack".as_ref(),
            blob.as_os_str(),
            diff_id.as_str().as_ref(),
            dest.as_os_str(),
            max.as_ref(),
        ])?;
        serde_json::from_str(out.trim()).map_err(|source| skiff_store::Error::Json {
            context: "unpack helper report".into(),
            source,
        })
    }
    fn remove(&self, dir: &Path) -> skiff_store::Result<()> {
        self.run(&["__rmtree".as_ref(), dir.as_os_str()])
            .map(|_| ())
    }
}
