//! `skiff cp`: files between the host and a container, as a tar stream over a pipe. The
//! container's side runs in a forked child that has joined a running container's namespaces —
//! or, for a stopped one, in a helper that mounted its rootfs and chrooted there — so its paths
//! resolve in the container's root (its symlinks cannot lead to the host's files), and its
//! writes go through the same confined unpacker as image layers. The host's side unpacks what
//! comes out of a container with that unpacker too: a hostile container cannot write outside
//! the destination.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::sys::wait::waitpid;
use nix::unistd::ForkResult;

use crate::container::records::Containers;
use crate::error::{Ctx, Error, Result};
use crate::files::CopyError;
use crate::process::exec::{enter, leave_terminal, namespaces_of};
use crate::process::init::report_failure;

/// The pid of a running container's first process, or why there is none.
fn running_pid(containers: &Containers, id: &str) -> Result<i32> {
    let v = containers.view(id)?;
    match v.state.pid.filter(|_| v.running()) {
        Some(pid) => Ok(pid),
        None => Err(CopyError::NotRunning(v.cfg.name.clone()).into()),
    }
}

/// Runs `work` in a forked child inside the container's namespaces, with `keep` (our end of the
/// data pipe) open in it; waits for it. Its error text comes back on a pipe.
fn in_container(
    pid: i32,
    keep: OwnedFd,
    work: impl FnOnce(File) -> std::result::Result<(), String>,
    while_running: impl FnOnce(),
) -> Result<()> {
    let fds = namespaces_of(pid)?;
    let (err_r, err_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "pipe".into())?;
    // SAFETY: the caller is single-threaded (the CLI before any runtime starts); the child only
    // joins namespaces, does its file work and exits.
    match unsafe { nix::unistd::fork() }.ctx(|| "fork".into())? {
        ForkResult::Child => {
            drop(err_r);
            // The parent's end of the data pipe is in there: closed here, EOF stays EOF.
            drop(while_running);
            let efd = err_w.as_raw_fd();
            // Nothing of the caller's terminal goes along into the container's namespaces.
            leave_terminal();
            let code = match enter(&fds).and_then(|_| work(File::from(keep))) {
                Ok(()) => 0,
                Err(msg) => report_failure(efd, (125, msg)),
            };
            std::process::exit(code)
        }
        ForkResult::Parent { child } => {
            drop((err_w, keep, fds));
            while_running();
            let mut msg = String::new();
            let _ = File::from(err_r).read_to_string(&mut msg);
            let status = waitpid(child, None)
                .ok()
                .and_then(crate::sys::procfs::exit_code);
            match (status, msg.trim()) {
                (Some(0), _) => Ok(()),
                (_, m) if !m.is_empty() => Err(CopyError::Inside(m.to_string()).into()),
                (s, _) => Err(CopyError::ChildFailed(s).into()),
            }
        }
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "pipe".into())
}

/// Where a copy out of a container lands, as `docker cp CTR:SRC DEST` decides: (the host
/// directory to unpack into, the name the copy gets there). Into `dest` if it is a directory
/// (`SRC/.` copies the directory's contents), else as `dest` in its existing parent.
pub fn plan_out(src: &str, dest: &Path) -> Result<(PathBuf, String)> {
    if dest.is_dir() {
        return Ok((dest.to_path_buf(), top_name(src)));
    }
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !parent.is_dir() {
        return Err(CopyError::NoDestDir(parent.to_path_buf()).into());
    }
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| CopyError::BadDest(dest.to_path_buf()))?;
    Ok((parent.to_path_buf(), name))
}

/// The name a copy of container path `src` has at the top of its tar: its last component, or
/// `.` for `SRC/.` (the directory's contents).
pub fn top_name(src: &str) -> String {
    if src.ends_with("/.") {
        return ".".into();
    }
    Path::new(src.trim_end_matches('/'))
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| ".".into())
}

/// The `NAME` that tells [`unpack_to`] its input is a tar stream the user gave (`skiff cp -
/// CTR:DIR`), to unpack as it is into a directory.
pub const STREAM: &str = "-";

/// Writes a tar of `src` — a path resolved in this process's root, the container's — under the
/// name `top` to `out`, symlinks kept as links.
pub fn pack(src: &str, top: &str, out: impl std::io::Write) -> std::result::Result<(), String> {
    let trimmed = src.trim_end_matches("/.").trim_end_matches('/');
    let p = if trimmed.is_empty() { "/" } else { trimmed };
    let md = std::fs::symlink_metadata(p).map_err(|e| format!("{src}: {e} in the container"))?;
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    let r = if md.is_dir() {
        b.append_dir_all(top, p)
    } else {
        b.append_path_with_name(p, top)
    };
    r.and_then(|_| b.finish())
        .map_err(|e| format!("reading {src} in the container: {e}"))
}

/// Copies `src` (a path in the running container) to `dest` on the host (see [`plan_out`]).
pub fn copy_out(containers: &Containers, id: &str, src: &str, dest: &Path) -> Result<()> {
    let pid = running_pid(containers, id)?;
    let (into, top) = plan_out(src, dest)?;
    let (r, w) = pipe()?;
    let mut unpacked = Ok(());
    in_container(
        pid,
        w,
        |out| pack(src, &top, out),
        || {
            unpacked = skiff_store::unpack::unpack_archive(
                File::from(r),
                &into,
                skiff_store::unpack::UnpackOptions::default(),
            );
        },
    )?;
    unpacked.map_err(|e| Error::Io {
        context: format!("writing to {}", dest.display()),
        source: std::io::Error::other(e.to_string()),
    })
}

/// The tar `copy_in` sends for host path `src`: (its bytes, the name at its top). Entries become
/// root's unless `archive` keeps the host's owners.
pub fn archive_of(src: &Path, archive: bool) -> Result<(Vec<u8>, String)> {
    let md = std::fs::symlink_metadata(src).map_err(|source| CopyError::Source {
        path: src.to_path_buf(),
        source,
    })?;
    let src_name = src
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| ".".into());
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    let built = if md.is_dir() {
        b.append_dir_all(&src_name, src)
    } else {
        b.append_path_with_name(src, &src_name)
    };
    let bytes = built
        .and_then(|_| b.into_inner())
        .map_err(|source| CopyError::ReadSource {
            path: src.to_path_buf(),
            source,
        })?;
    let bytes = if archive {
        bytes
    } else {
        root_owned(&bytes).ctx(|| "preparing the copy".into())?
    };
    Ok((bytes, src_name))
}

/// Puts the tar on `input` (top name `src_name`) at `dest`, a path resolved in this process's
/// root, the container's: into `dest` if it is a directory there, else as `dest`.
pub fn unpack_to(dest: &str, src_name: &str, input: impl Read) -> std::result::Result<(), String> {
    let d = Path::new(dest);
    let opts = skiff_store::unpack::UnpackOptions {
        chown: true,
        plain: true,
        max_size: 0,
    };
    let fail = |e: skiff_store::Error| format!("writing {dest} in the container: {e}");
    if d.is_dir() {
        return skiff_store::unpack::unpack_archive(input, d, opts).map_err(fail);
    }
    if src_name == STREAM {
        return Err(format!(
            "{dest} is not a directory in the container: a tar stream from stdin unpacks into a directory"
        ));
    }
    // Not a directory there: the copy becomes `dest` itself, by way of a scratch dir beside it
    // (renamed into place once whole).
    let parent = d.parent().unwrap_or(Path::new("/"));
    if !parent.is_dir() {
        return Err(format!(
            "{} does not exist in the container: create it first",
            parent.display()
        ));
    }
    let scratch = parent.join(format!(".skiff-cp-{}", std::process::id()));
    std::fs::create_dir(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let res = skiff_store::unpack::unpack_archive(input, &scratch, opts)
        .map_err(fail)
        .and_then(|_| {
            std::fs::rename(scratch.join(src_name), d)
                .map_err(|e| format!("moving the copy to {dest}: {e}"))
        });
    let _ = std::fs::remove_dir_all(&scratch);
    res
}

/// `skiff cp CTR:SRC -`: a tar of `src` (a path in the running container) to `out`, as Docker
/// writes it, instead of a file named `-`.
pub fn copy_out_tar(
    containers: &Containers,
    id: &str,
    src: &str,
    out: &mut dyn std::io::Write,
) -> Result<()> {
    let pid = running_pid(containers, id)?;
    let top = top_name(src);
    let (r, w) = pipe()?;
    let mut copied = Ok(0);
    in_container(
        pid,
        w,
        |o| pack(src, &top, o),
        || copied = std::io::copy(&mut File::from(r), out),
    )?;
    copied
        .map(|_| ())
        .ctx(|| "writing the archive to stdout".into())
}

/// `skiff export` of a running container: a tar of its root filesystem alone — the overlay
/// (or private copy) it runs on, without what is mounted over it (/proc, /sys, /dev, volumes,
/// skiff's /etc/hosts), as Docker exports it — to `out`. Packed by a child in the container's
/// namespaces, chrooted into a detached clone of the root mount only, so the container's
/// symlinks resolve in its root and none of its other mounts is read.
pub fn export_running(
    containers: &Containers,
    id: &str,
    out: &mut dyn std::io::Write,
) -> Result<()> {
    let pid = running_pid(containers, id)?;
    let (r, w) = pipe()?;
    let mut copied = Ok(0);
    in_container(
        pid,
        w,
        |o| {
            enter_root_mount_only()?;
            pack("/.", ".", o)
        },
        || copied = std::io::copy(&mut File::from(r), out),
    )?;
    copied.map(|_| ()).ctx(|| "writing the archive".into())
}

/// Makes a non-recursive clone of this process's root mount (nothing mounted below it comes
/// along) its root and working directory.
fn enter_root_mount_only() -> std::result::Result<(), String> {
    use rustix::mount::{open_tree, OpenTreeFlags};
    let tree = open_tree(
        rustix::fs::CWD,
        "/",
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )
    .map_err(|e| format!("cloning the container's root mount: {e}"))?;
    rustix::process::fchdir(&tree)
        .and_then(|_| rustix::process::chroot("."))
        .map_err(|e| format!("entering the container's root mount: {e}"))
}

/// A tar stream read from `input` for `skiff cp - CTR:DIR`: its entries become root's unless
/// `archive` keeps the owners it names, as for any copy in.
pub fn read_stream(input: impl Read, archive: bool) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut input = input;
    input.read_to_end(&mut bytes).map_err(|e| Error::Io {
        context: "reading the archive from stdin".into(),
        source: e,
    })?;
    if archive {
        return Ok(bytes);
    }
    root_owned(&bytes).map_err(|e| CopyError::NotTar(e).into())
}

/// `skiff cp - CTR:DIR` on a running container: unpacks the tar `bytes` into `dest`, a
/// directory in the container.
pub fn copy_in_tar(containers: &Containers, id: &str, bytes: &[u8], dest: &str) -> Result<()> {
    let pid = running_pid(containers, id)?;
    let (r, w) = pipe()?;
    let mut written = Ok(());
    in_container(
        pid,
        r,
        |input| unpack_to(dest, STREAM, input),
        || written = std::io::Write::write_all(&mut File::from(w), bytes),
    )?;
    written.ctx(|| "sending the copy".into())
}

/// Copies `src` on the host to `dest` in the running container, as `docker cp SRC CTR:DEST`.
pub fn copy_in(
    containers: &Containers,
    id: &str,
    src: &Path,
    dest: &str,
    archive: bool,
) -> Result<()> {
    let pid = running_pid(containers, id)?;
    let (bytes, src_name) = archive_of(src, archive)?;
    let (r, w) = pipe()?;
    let mut written = Ok(());
    in_container(
        pid,
        r,
        |input| unpack_to(dest, &src_name, input),
        || {
            written = std::io::Write::write_all(&mut File::from(w), &bytes);
        },
    )?;
    // A child that failed stops reading: its message says why, so a broken pipe is secondary.
    written.ctx(|| "sending the copy".into())
}

/// The helper side of `cp` on a container that is not running (`skiff __cp`, run in a mapped
/// user namespace when rootless): mounts the container's root file system in a private mount
/// namespace, enters it, and packs `path` to stdout (`out`) or unpacks stdin at `path` (`in`).
pub fn helper_main(
    containers: &Containers,
    id: &str,
    direction: &str,
    path: &str,
    name: &str,
) -> Result<()> {
    let v = containers.view(id)?;
    if v.active() {
        return Err(CopyError::StartedMeanwhile(v.cfg.name.clone()).into());
    }
    let ctr = containers.dir(id);
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .ctx(|| "a private mount namespace".into())?;
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .ctx(|| "making / private".into())?;
    let rootfs = crate::rootfs::mounts::mount_rootfs(&v.cfg, &ctr).map_err(CopyError::Rootfs)?;
    nix::unistd::chroot(&rootfs)
        .and_then(|_| nix::unistd::chdir("/"))
        .ctx(|| format!("entering {}", rootfs.display()))?;
    let res = match direction {
        "out" => pack(path, name, std::io::stdout().lock()),
        "in" => unpack_to(path, name, std::io::stdin().lock()),
        other => Err(format!("unknown direction {other}")),
    };
    res.map_err(|m| CopyError::Inside(m).into())
}

/// The same archive with every entry owned by root (0:0), as `docker cp` creates files.
fn root_owned(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = tar::Builder::new(Vec::new());
    let mut archive = tar::Archive::new(bytes);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let mut h = entry.header().clone();
        h.set_uid(0);
        h.set_gid(0);
        let _ = h.set_username("");
        let _ = h.set_groupname("");
        let path = entry.path()?.into_owned();
        match h.entry_type() {
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = entry
                    .link_name()?
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                out.append_link(&mut h, &path, &target)?;
            }
            _ => {
                let mut data = Vec::new();
                entry.read_to_end(&mut data)?;
                out.append_data(&mut h, &path, data.as_slice())?;
            }
        }
    }
    out.into_inner()
}
