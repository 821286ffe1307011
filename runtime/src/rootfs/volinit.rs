//! A new (empty) volume takes the content of the image directory it is mounted over — files,
//! owners, modes, times — as Docker and podman fill it, so `/data` of an image owned by its
//! non-root user stays that user's to write once it is a volume.
//!
//! Runs in the container's mount namespace before `pivot_root`, as root of its user namespace,
//! on image content that may be hostile: nothing is opened by path. The image side is walked
//! from the rootfs fd with `openat2(RESOLVE_IN_ROOT)` for the mount point and then
//! `RESOLVE_BENEATH | NO_SYMLINKS` below it; each entry is opened with `O_NOFOLLOW`, and a
//! symlink is copied as a symlink, never followed. Device nodes, fifos and sockets are skipped.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, ResolveFlags, Timespec, Timestamps};

type R<T> = Result<T, String>;

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);
const BELOW: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

fn open_below(root: &OwnedFd, rel: &str) -> rustix::io::Result<OwnedFd> {
    let p = if rel.is_empty() { "." } else { rel };
    rfs::openat2(root, p, DIR_FLAGS, Mode::empty(), BELOW)
}

fn join(rel: &str, name: &str) -> String {
    if rel.is_empty() {
        name.to_string()
    } else {
        format!("{rel}/{name}")
    }
}

fn names(dir: &OwnedFd) -> R<Vec<String>> {
    let mut out = Vec::new();
    for e in rfs::Dir::read_from(dir).map_err(|e| e.to_string())? {
        let e = e.map_err(|e| e.to_string())?;
        let n = e.file_name().to_string_lossy().into_owned();
        if n != "." && n != ".." {
            out.push(n);
        }
    }
    Ok(out)
}

fn times(md: &rfs::Stat) -> Timestamps {
    let t = |s: i64, ns: i64| Timespec {
        tv_sec: s,
        tv_nsec: ns as _,
    };
    Timestamps {
        last_access: t(md.st_atime, md.st_atime_nsec as _),
        last_modification: t(md.st_mtime, md.st_mtime_nsec as _),
    }
}

/// Owner, mode and times of `src` on `dst`. A chown the mapping cannot express (an image id
/// outside a user's range) leaves skiff's owner: the copy still happens.
fn set_meta(dst: &OwnedFd, st: &rfs::Stat) -> R<()> {
    let _ = rfs::fchown(
        dst,
        Some(rfs::Uid::from_raw(st.st_uid)),
        Some(rfs::Gid::from_raw(st.st_gid)),
    );
    rfs::fchmod(dst, Mode::from_raw_mode(st.st_mode & 0o7777)).map_err(|e| e.to_string())?;
    rfs::futimens(dst, &times(st)).map_err(|e| e.to_string())
}

/// Fills the volume at `volume` from the directory `dest` of the rootfs `root`, if the volume
/// is empty and the image has a directory there; otherwise does nothing.
pub fn fill_from_image(root: &OwnedFd, dest: &str, volume: &Path) -> R<()> {
    let what = |e: String| format!("filling volume {} from {dest}: {e}", volume.display());
    let rel = dest.trim_start_matches('/');
    let src_root = match rfs::openat2(
        root,
        if rel.is_empty() { "." } else { rel },
        DIR_FLAGS,
        Mode::empty(),
        skiff_store::inroot::RESOLVE,
    ) {
        Ok(fd) => fd,
        // Not in the image, or not a directory there: nothing to copy.
        Err(_) => return Ok(()),
    };
    let dst_root = rfs::open(volume, DIR_FLAGS, Mode::empty()).map_err(|e| what(e.to_string()))?;
    if !names(&dst_root).map_err(what)?.is_empty() {
        return Ok(());
    }
    copy_tree(&src_root, &dst_root).map_err(what)
}

/// Copies the tree below `src` into `dst` with an explicit list of directories to visit (no
/// recursion, a bounded number of fds), directory metadata last, deepest first.
fn copy_tree(src: &OwnedFd, dst: &OwnedFd) -> R<()> {
    let mut pending = vec![String::new()];
    let mut dirs: Vec<(String, rfs::Stat)> = Vec::new();
    while let Some(rel) = pending.pop() {
        let (Ok(sd), Ok(dd)) = (open_below(src, &rel), open_below(dst, &rel)) else {
            continue; // changed under us: leave that part out
        };
        dirs.push((rel.clone(), rfs::fstat(&sd).map_err(|e| e.to_string())?));
        for name in names(&sd)? {
            let Ok(st) = rfs::statat(&sd, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) else {
                continue;
            };
            let shown = join(&rel, &name);
            let err = |e: rustix::io::Errno| format!("{shown}: {e}");
            match rfs::FileType::from_raw_mode(st.st_mode) {
                rfs::FileType::Directory => {
                    rfs::mkdirat(&dd, name.as_str(), Mode::from_raw_mode(0o700)).map_err(err)?;
                    pending.push(shown);
                }
                rfs::FileType::RegularFile => {
                    let Ok(from) = rfs::openat(
                        &sd,
                        name.as_str(),
                        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
                        Mode::empty(),
                    ) else {
                        continue;
                    };
                    let to = rfs::openat(
                        &dd,
                        name.as_str(),
                        OFlags::WRONLY
                            | OFlags::CREATE
                            | OFlags::EXCL
                            | OFlags::NOFOLLOW
                            | OFlags::CLOEXEC,
                        Mode::from_raw_mode(0o600),
                    )
                    .map_err(err)?;
                    let (mut from, mut to_file) = (
                        File::from(from),
                        File::from(to.try_clone().map_err(|e| format!("{shown}: {e}"))?),
                    );
                    std::io::copy(&mut from, &mut to_file).map_err(|e| format!("{shown}: {e}"))?;
                    set_meta(&to, &st).map_err(|e| format!("{shown}: {e}"))?;
                }
                rfs::FileType::Symlink => {
                    let Ok(target) = rfs::readlinkat(&sd, name.as_str(), Vec::new()) else {
                        continue;
                    };
                    rfs::symlinkat(target.as_c_str(), &dd, name.as_str()).map_err(err)?;
                    let _ = rfs::chownat(
                        &dd,
                        name.as_str(),
                        Some(rfs::Uid::from_raw(st.st_uid)),
                        Some(rfs::Gid::from_raw(st.st_gid)),
                        AtFlags::SYMLINK_NOFOLLOW,
                    );
                    let _ =
                        rfs::utimensat(&dd, name.as_str(), &times(&st), AtFlags::SYMLINK_NOFOLLOW);
                }
                // Devices, fifos, sockets: a volume is no place for them (and mounted nodev).
                _ => {}
            }
        }
    }
    for (rel, st) in dirs.iter().rev() {
        if let Ok(dd) = open_below(dst, rel) {
            set_meta(&dd, st)
                .map_err(|e| format!("{}: {e}", if rel.is_empty() { "." } else { rel }))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn an_empty_volume_takes_the_image_dir_and_never_follows_its_links() {
        let t = tempfile::tempdir().unwrap();
        let (root, vol, host) = (
            t.path().join("root"),
            t.path().join("vol"),
            t.path().join("host"),
        );
        std::fs::create_dir_all(root.join("data/sub")).unwrap();
        std::fs::create_dir_all(&vol).unwrap();
        std::fs::create_dir_all(&host).unwrap();
        std::fs::write(host.join("secret"), b"HOST").unwrap();
        std::fs::write(root.join("data/sub/f"), b"image file").unwrap();
        std::os::unix::fs::symlink(&host, root.join("data/out")).unwrap();
        std::fs::set_permissions(root.join("data"), std::fs::Permissions::from_mode(0o750))
            .unwrap();
        let rootfd = rfs::open(&root, DIR_FLAGS, Mode::empty()).unwrap();
        fill_from_image(&rootfd, "/data", &vol).unwrap();
        assert_eq!(std::fs::read(vol.join("sub/f")).unwrap(), b"image file");
        assert_eq!(std::fs::read_link(vol.join("out")).unwrap(), host);
        assert_eq!(std::fs::metadata(&vol).unwrap().mode() & 0o7777, 0o750);
        // A volume with content is left alone; a missing image dir copies nothing.
        std::fs::write(root.join("data/new"), b"x").unwrap();
        fill_from_image(&rootfd, "/data", &vol).unwrap();
        assert!(!vol.join("new").exists());
        let vol2 = t.path().join("vol2");
        std::fs::create_dir_all(&vol2).unwrap();
        fill_from_image(&rootfd, "/nothing", &vol2).unwrap();
        assert_eq!(std::fs::read_dir(&vol2).unwrap().count(), 0);
        // A symlinked mount point resolves inside the root, not on the host.
        std::os::unix::fs::symlink(&host, root.join("evil")).unwrap();
        let vol3 = t.path().join("vol3");
        std::fs::create_dir_all(&vol3).unwrap();
        fill_from_image(&rootfd, "/evil", &vol3).unwrap();
        assert!(!vol3.join("secret").exists());
    }
}
