//! The rootfs as a copy, for when the kernel refuses overlayfs (or `SKIFF_ROOTFS=copy` asks for
//! it): the image's layer dirs are merged, lowest first, into the container's own `rootfs-copy/`,
//! applying overlay whiteouts (0/0 character devices) and opaque directories
//! (`user.overlay.opaque`) as overlayfs would. Done once per container; its writes then live there.
//!
//! Every write goes through directory fds resolved with `openat2(RESOLVE_IN_ROOT)` in the copy and
//! final components are created with `O_NOFOLLOW`/`O_EXCL`, so an image's symlinks cannot lead
//! the copy outside it. The layer dirs are only read, never followed through a symlink.

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, Timespec, Timestamps};
use skiff_store::inroot::ensure_dir_in_root;
use skiff_store::unpack::{remove_tree_at, OPAQUE_XATTR};

type R<T> = Result<T, String>;

const COMPLETE: &str = ".skiff-copy-complete";

/// Makes `<ctr>/rootfs-copy` from `layers` (lowest first) unless it is already complete.
pub fn ensure(layers: &[std::path::PathBuf], ctr: &Path) -> R<std::path::PathBuf> {
    let dest = ctr.join("rootfs-copy");
    if dest.join(COMPLETE).exists() {
        return Ok(dest);
    }
    if dest.exists() {
        // An interrupted copy: start again.
        skiff_store::unpack::remove_tree(&dest).map_err(|e| e.to_string())?;
    }
    std::fs::create_dir(&dest).map_err(|e| format!("creating {}: {e}", dest.display()))?;
    let root: OwnedFd = rfs::open(
        &dest,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("opening {}: {e}", dest.display()))?;
    for layer in layers {
        merge(&root, layer, "").map_err(|e| format!("copying layer {}: {e}", layer.display()))?;
    }
    File::create(dest.join(COMPLETE)).map_err(|e| format!("finishing the copy: {e}"))?;
    Ok(dest)
}

fn opaque(p: &Path) -> bool {
    let Ok(fd) = rfs::open(
        p,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return false;
    };
    let mut buf = [0u8; 4];
    matches!(rfs::fgetxattr(&fd, OPAQUE_XATTR, &mut buf), Ok(1) if buf[0] == b'y')
}

fn io_err(what: &str, e: impl std::fmt::Display) -> String {
    format!("{what}: {e}")
}

fn clear_children(dir: &OwnedFd) -> R<()> {
    let d = rfs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_err("opening a directory", e))?;
    let names: Vec<String> = rfs::Dir::read_from(&d)
        .map_err(|e| io_err("listing", e))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "." && n != "..")
        .collect();
    for n in names {
        remove_tree_at(&d, &n).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Merges `layer/rel` into the copy's `rel`.
fn merge(root: &OwnedFd, layer: &Path, rel: &str) -> R<()> {
    let src_dir = layer.join(rel);
    let parent = ensure_dir_in_root(root, rel).map_err(|e| e.to_string())?;
    if !rel.is_empty() && opaque(&src_dir) {
        clear_children(&parent)?;
    }
    let entries = std::fs::read_dir(&src_dir)
        .map_err(|e| io_err(&format!("listing {}", src_dir.display()), e))?;
    for e in entries {
        let e = e.map_err(|e| io_err("listing", e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let src = e.path();
        let md = std::fs::symlink_metadata(&src)
            .map_err(|e| io_err(&format!("reading {}", src.display()), e))?;
        let ft = md.file_type();
        let child_rel = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let existing = rfs::statat(&parent, name.as_str(), AtFlags::SYMLINK_NOFOLLOW).ok();
        let existing_is_dir = existing
            .as_ref()
            .is_some_and(|st| rfs::FileType::from_raw_mode(st.st_mode) == rfs::FileType::Directory);
        if ft.is_char_device() && md.rdev() == 0 {
            // A whiteout: the lower entry is deleted.
            remove_tree_at(&parent, &name).map_err(|e| e.to_string())?;
            continue;
        }
        if ft.is_dir() {
            if existing.is_some() && !existing_is_dir {
                rfs::unlinkat(&parent, name.as_str(), AtFlags::empty())
                    .map_err(|e| io_err(&format!("replacing {child_rel}"), e))?;
            }
            if existing.is_none() || !existing_is_dir {
                rfs::mkdirat(&parent, name.as_str(), Mode::from_raw_mode(0o700))
                    .map_err(|e| io_err(&format!("creating {child_rel}"), e))?;
            }
            merge(root, layer, &child_rel)?;
            let d = rfs::openat(
                &parent,
                name.as_str(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| io_err(&format!("opening {child_rel}"), e))?;
            let _ = rfs::fchown(
                &d,
                Some(rfs::Uid::from_raw(md.uid())),
                Some(rfs::Gid::from_raw(md.gid())),
            );
            rfs::fchmod(&d, Mode::from_raw_mode(md.permissions().mode() & 0o7777))
                .map_err(|e| io_err(&format!("chmod {child_rel}"), e))?;
            continue;
        }
        if existing.is_some() {
            remove_tree_at(&parent, &name).map_err(|e| e.to_string())?;
        }
        let t = Timespec {
            tv_sec: md.mtime(),
            tv_nsec: md.mtime_nsec(),
        };
        let times = Timestamps {
            last_access: t,
            last_modification: t,
        };
        if ft.is_symlink() {
            let target = std::fs::read_link(&src)
                .map_err(|e| io_err(&format!("reading link {child_rel}"), e))?;
            rfs::symlinkat(target.as_path(), &parent, name.as_str())
                .map_err(|e| io_err(&format!("creating link {child_rel}"), e))?;
            let _ = rfs::chownat(
                &parent,
                name.as_str(),
                Some(rfs::Uid::from_raw(md.uid())),
                Some(rfs::Gid::from_raw(md.gid())),
                AtFlags::SYMLINK_NOFOLLOW,
            );
            let _ = rfs::utimensat(&parent, name.as_str(), &times, AtFlags::SYMLINK_NOFOLLOW);
        } else if ft.is_file() {
            let fd = rfs::openat(
                &parent,
                name.as_str(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )
            .map_err(|e| io_err(&format!("creating {child_rel}"), e))?;
            let mut out = File::from(fd);
            let mut input =
                File::open(&src).map_err(|e| io_err(&format!("reading {}", src.display()), e))?;
            io::copy(&mut input, &mut out)
                .map_err(|e| io_err(&format!("copying {child_rel}"), e))?;
            let _ = rfs::fchown(
                &out,
                Some(rfs::Uid::from_raw(md.uid())),
                Some(rfs::Gid::from_raw(md.gid())),
            );
            rfs::fchmod(&out, Mode::from_raw_mode(md.permissions().mode() & 0o7777))
                .map_err(|e| io_err(&format!("chmod {child_rel}"), e))?;
            let _ = rfs::futimens(&out, &times);
        }
        // Sockets, fifos and devices in an image layer are not copied.
    }
    Ok(())
}
