//! Chooses how layers are unpacked for this user, and the hidden helper commands that do it
//! inside a mapped user namespace (`skiff __unpack`, `skiff __rmtree`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use skiff_runtime::{userns, IdMap};
use skiff_store::unpack::{remove_tree, unpack_layer, UnpackOptions, UnpackReport};
use skiff_store::{Digest, Dirs, InProcessUnpacker, LayerUnpacker};

/// Root keeps owners in-process; a user with a subuid range unpacks in a mapped namespace so uid
/// 1000 stays 1000 in the container; a user without one gets every file as its own (said once).
pub fn for_this_user(dirs: &Dirs) -> Arc<dyn LayerUnpacker> {
    if nix_is_root() {
        return Arc::new(InProcessUnpacker { chown: true });
    }
    match IdMap::for_current_user() {
        Some(map) => Arc::new(MappedUnpacker { map }),
        None => {
            let marker = dirs.data.join(".said-no-subuid");
            if !marker.exists() {
                eprintln!("note: no /etc/subuid range for this user: image files all belong to you, so ids other than root are lost inside containers; add a range ({}) to keep them", skiff_runtime::idmap::usermod_hint());
                let _ = std::fs::create_dir_all(&dirs.data);
                let _ = std::fs::write(&marker, b"");
            }
            Arc::new(InProcessUnpacker { chown: false })
        }
    }
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Runs unpack and removal in a `skiff` helper inside a user namespace mapped to the user's range.
struct MappedUnpacker {
    map: IdMap,
}

impl MappedUnpacker {
    fn helper(&self, args: &[&std::ffi::OsStr]) -> skiff_store::Result<String> {
        let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
        let mut cmd = Command::new(exe);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = userns::spawn_mapped(cmd, &self.map).map_err(|e| skiff_store::Error::Io {
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
        let out = self.helper(&[
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
        self.helper(&["__rmtree".as_ref(), dir.as_os_str()])
            .map(|_| ())
    }
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
    let status = if nix_is_root() {
        cmd.status()
    } else {
        let Some(map) = IdMap::for_current_user() else {
            anyhow::bail!("no /etc/subuid range for this user: there is no namespace to enter (add one with {})", skiff_runtime::idmap::usermod_hint());
        };
        userns::spawn_mapped(cmd, &map)?.wait()
    };
    let status = status.map_err(|e| anyhow::anyhow!("{}: {e}", argv[0]))?;
    Ok(std::process::ExitCode::from(
        status.code().map(|c| c as u8).unwrap_or(125),
    ))
}

/// Starts `skiff ARGS` as root of this user's mapped user namespace (directly when root),
/// with stdin and stdout piped, for helpers that must own the files they touch.
pub fn spawn_helper(args: &[&str]) -> anyhow::Result<std::process::Child> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    if nix_is_root() {
        return Ok(cmd.spawn()?);
    }
    if let Some(map) = IdMap::for_current_user() {
        return Ok(userns::spawn_mapped(cmd, &map)?);
    }
    // No subuid range: a namespace mapping only this user (as its root), which a process may
    // set up for itself; the container's files all belong to the user then anyway.
    let (uid, gid) = (
        nix::unistd::getuid().as_raw(),
        nix::unistd::getgid().as_raw(),
    );
    let uid_map = format!("0 {uid} 1");
    let gid_map = format!("0 {gid} 1");
    // SAFETY: between fork and exec: unshare and writes of prepared buffers to /proc/self
    // files, through raw system calls (no allocation).
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER)
                .map_err(std::io::Error::from)?;
            for (file, text) in [
                (c"/proc/self/setgroups", "deny"),
                (c"/proc/self/uid_map", uid_map.as_str()),
                (c"/proc/self/gid_map", gid_map.as_str()),
            ] {
                let fd = libc::open(file.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let n = libc::write(fd, text.as_ptr().cast(), text.len());
                libc::close(fd);
                if n != text.len() as isize {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    Ok(cmd.spawn()?)
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
