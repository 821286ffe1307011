//! `commit`'s container side: the container's overlay `upper/` dir as an image layer tar. What
//! overlayfs marks one way becomes what image layers say: a 0/0 character device (a deleted
//! file) becomes a `.wh.NAME` entry, an opaque directory (`user.overlay.opaque` or
//! `trusted.overlay.opaque`) gets a `.wh..wh..opq` entry. Symlinks stay links, hardlinked
//! files stay one file with links, xattrs (file capabilities, `user.*`) and sub-second mtimes
//! travel as PAX records — but never overlayfs's own `*.overlay.*` xattrs, and never the files
//! skiff itself provides (/etc/hostname, /etc/hosts, /etc/resolv.conf, its /etc/mtab link).

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use rustix::fs::{self as rfs, Mode, OFlags};

/// Writes the layer tar of `upper` to `out`. Run where the files can be read: in-process as
/// root, inside the user's mapped namespace when rootless (files of mapped ids).
///
/// The container may still be running (`commit --pause=false`) and can swap any name in its
/// upper dir for a symlink at any moment, so nothing is opened by path: each directory is
/// listed through its own fd, each entry opened relative to it with `O_NOFOLLOW`, and headers
/// and content come from that fd. A swapped name yields the symlink itself, never what it
/// points at on the host.
pub fn pack_upper(upper: &Path, out: impl Write) -> std::io::Result<()> {
    let mut b = tar::Builder::new(out);
    let root = rfs::open(
        upper,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    walk(&mut b, &root)?;
    b.into_inner()?.flush()
}

fn empty_entry(mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(0);
    h.set_mode(mode);
    h.set_mtime(0);
    h
}

fn fd_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

fn opaque(dir: &OwnedFd) -> bool {
    let p = fd_path(dir);
    ["user.overlay.opaque", "trusted.overlay.opaque"]
        .iter()
        .any(|x| rfs::getxattr(p.as_str(), *x, &mut [0u8; 4]).is_ok_and(|n| n > 0))
}

/// The mount points skiff bind-mounts its own files on: what is in the upper dir under these
/// names is skiff's empty placeholder, not the container's change.
const PROVIDED: [&str; 3] = ["etc/hostname", "etc/hosts", "etc/resolv.conf"];

/// Whether an upper-dir entry is skiff's own, not the container's: a provided file's mount point,
/// or the /etc/mtab link made when the image had none.
fn provided_by_skiff(inner: &str, fd: &OwnedFd, md: &std::fs::Metadata) -> bool {
    if PROVIDED.contains(&inner) {
        return true;
    }
    inner == "etc/mtab"
        && md.file_type().is_symlink()
        && rfs::readlinkat(fd, "", Vec::new()).is_ok_and(|t| t.as_bytes() == b"/proc/mounts")
}

/// The PAX records of one entry: its mtime when it has a sub-second part (the header holds
/// whole seconds), and its xattrs but overlayfs's metadata and the host's SELinux label.
fn pax_records(md: &std::fs::Metadata, xattr_fd: Option<&OwnedFd>) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    if md.mtime_nsec() != 0 {
        out.push((
            "mtime".to_string(),
            format!("{}.{:09}", md.mtime(), md.mtime_nsec()).into_bytes(),
        ));
    }
    let Some(fd) = xattr_fd else { return out };
    let mut names = vec![0u8; 4096];
    let Ok(n) = rfs::flistxattr(fd, &mut names) else {
        return out;
    };
    for name in names[..n.min(names.len())].split(|b| *b == 0) {
        let Ok(name) = std::str::from_utf8(name) else {
            continue;
        };
        if name.is_empty()
            || skiff_store::unpack::is_overlay_xattr(name)
            || name == "security.selinux"
        {
            continue;
        }
        let mut value = vec![0u8; 64 * 1024];
        if let Ok(len) = rfs::fgetxattr(fd, name, &mut value) {
            value.truncate(len);
            out.push((format!("SCHILY.xattr.{name}"), value));
        }
    }
    out
}

fn append_pax<W: Write>(
    b: &mut tar::Builder<W>,
    records: &[(String, Vec<u8>)],
) -> std::io::Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    b.append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
}

/// Exactly `size` bytes of `r`: cut if the file grew, zero-padded if it shrank while read, so
/// the archive always matches the header written before the content.
fn exactly(r: impl Read, size: u64) -> impl Read {
    r.take(size).chain(std::io::repeat(0)).take(size)
}

/// Opens the directory `rel` below `root` without following any symlink on the way and without
/// holding its parents open, so a deep upper dir costs a bounded number of fds.
fn open_below(root: &OwnedFd, rel: &str) -> std::io::Result<OwnedFd> {
    let path = if rel.is_empty() { "." } else { rel };
    Ok(rfs::openat2(
        root,
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        rfs::ResolveFlags::BENEATH
            | rfs::ResolveFlags::NO_SYMLINKS
            | rfs::ResolveFlags::NO_MAGICLINKS,
    )?)
}

/// Appends the tree below `root` depth-first, parents before their entries, with an explicit
/// list of directories still to visit instead of recursion: an upper dir thousands of levels
/// deep neither overflows the stack nor holds an fd per level.
fn walk<W: Write>(b: &mut tar::Builder<W>, root: &OwnedFd) -> std::io::Result<()> {
    let mut pending = vec![String::new()];
    // (device, inode) of each file with more than one link, and the name it was packed under:
    // later names become hardlink entries to it.
    let mut linked: HashMap<(u64, u64), String> = HashMap::new();
    while let Some(rel) = pending.pop() {
        let dir = match open_below(root, &rel) {
            Ok(d) => d,
            // Removed or swapped for a symlink since it was listed: nothing more to pack there.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOENT | libc::ELOOP | libc::ENOTDIR | libc::EXDEV)
                ) =>
            {
                continue
            }
            Err(e) => return Err(e),
        };
        let mut subdirs = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for e in rfs::Dir::read_from(&dir)? {
            let n = e?.file_name().to_string_lossy().into_owned();
            if n != "." && n != ".." {
                names.push(n);
            }
        }
        names.sort();
        for name in names {
            let inner = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            // The entry itself, whatever it is now (a symlink stays a symlink).
            let fd = match rfs::openat(
                &dir,
                name.as_str(),
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(fd) => fd,
                Err(rustix::io::Errno::NOENT) => continue, // removed since listed
                Err(e) => return Err(e.into()),
            };
            let md = File::from(fd.try_clone()?).metadata()?;
            let ft = md.file_type();
            if ft.is_char_device() && md.rdev() == 0 {
                // A whiteout: the file below is deleted.
                let wh = match inner.rsplit_once('/') {
                    Some((parent, n)) => format!("{parent}/.wh.{n}"),
                    None => format!(".wh.{name}"),
                };
                b.append_data(&mut empty_entry(0o644), wh, std::io::empty())?;
                continue;
            }
            if provided_by_skiff(&inner, &fd, &md) {
                continue;
            }
            let mut h = tar::Header::new_gnu();
            h.set_metadata_in_mode(&md, tar::HeaderMode::Complete);
            if ft.is_symlink() {
                let target = rfs::readlinkat(&fd, "", Vec::new())?;
                h.set_size(0);
                append_pax(b, &pax_records(&md, None))?;
                b.append_link(&mut h, &inner, target.to_string_lossy().as_ref())?;
            } else if ft.is_file() {
                if md.nlink() > 1 {
                    if let Some(first) = linked.get(&(md.dev(), md.ino())) {
                        h.set_entry_type(tar::EntryType::Link);
                        h.set_size(0);
                        b.append_link(&mut h, &inner, first)?;
                        continue;
                    }
                    linked.insert((md.dev(), md.ino()), inner.clone());
                }
                let file = File::from(rfs::open(
                    fd_path(&fd).as_str(),
                    OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
                    Mode::empty(),
                )?);
                let file_fd = OwnedFd::from(file.try_clone()?);
                append_pax(b, &pax_records(&md, Some(&file_fd)))?;
                b.append_data(&mut h, &inner, exactly(file, md.len()))?;
            } else if ft.is_dir() {
                let d = rfs::openat(
                    &dir,
                    name.as_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                h.set_size(0);
                append_pax(b, &pax_records(&md, Some(&d)))?;
                b.append_data(&mut h, format!("{inner}/"), std::io::empty())?;
                if opaque(&d) {
                    b.append_data(
                        &mut empty_entry(0o644),
                        format!("{inner}/.wh..wh..opq"),
                        std::io::empty(),
                    )?;
                }
                subdirs.push(inner);
            } else {
                // fifos, sockets, devices: the header says it all, with the device's numbers
                // (tar leaves them 0, which would make a device a whiteout).
                if ft.is_char_device() || ft.is_block_device() {
                    let rdev = md.rdev();
                    h.set_device_major(rustix::fs::major(rdev))?;
                    h.set_device_minor(rustix::fs::minor(rdev))?;
                }
                h.set_size(0);
                append_pax(b, &pax_records(&md, None))?;
                b.append_data(&mut h, &inner, std::io::empty())?;
            }
        }
        pending.extend(subdirs.into_iter().rev());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_marks_become_layer_whiteouts() {
        let t = tempfile::tempdir().unwrap();
        let up = t.path();
        std::fs::create_dir_all(up.join("etc/app")).unwrap();
        std::fs::write(up.join("etc/new.conf"), b"x").unwrap();
        std::os::unix::fs::symlink("new.conf", up.join("etc/link")).unwrap();
        // An opaque directory, marked as overlayfs with `userxattr` does.
        let opaque_marked = rustix::fs::setxattr(
            up.join("etc/app").as_path(),
            "user.overlay.opaque",
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .is_ok();
        // A whiteout needs mknod of 0/0, which root (or a user namespace's root) may do.
        let whiteout = rustix::fs::mknodat(
            rustix::fs::CWD,
            up.join("etc/gone").as_path(),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::empty(),
            rustix::fs::makedev(0, 0),
        )
        .is_ok();
        let mut out = Vec::new();
        pack_upper(up, &mut out).unwrap();
        let mut names = Vec::new();
        for e in tar::Archive::new(out.as_slice()).entries().unwrap() {
            let e = e.unwrap();
            names.push(e.path().unwrap().to_string_lossy().into_owned());
        }
        assert!(names.contains(&"etc/new.conf".to_string()), "{names:?}");
        assert!(names.contains(&"etc/link".to_string()), "{names:?}");
        assert_eq!(
            names.contains(&"etc/.wh.gone".to_string()),
            whiteout,
            "{names:?}"
        );
        assert_eq!(
            names.contains(&"etc/app/.wh..wh..opq".to_string()),
            opaque_marked,
            "{names:?}"
        );
        assert!(!names.iter().any(|n| n == "etc/gone"), "{names:?}");
    }

    /// A running container (`commit --pause=false`) swaps a directory of its upper dir for a
    /// symlink to a host directory while commit reads it: the host's file must never end up in
    /// the layer.
    #[test]
    fn a_name_swapped_for_a_symlink_while_packing_never_reads_the_host() {
        let t = tempfile::tempdir().unwrap();
        let up = t.path().join("upper");
        let host = t.path().join("host");
        std::fs::create_dir_all(up.join("x")).unwrap();
        std::fs::create_dir_all(&host).unwrap();
        std::fs::write(up.join("x/f"), b"container file").unwrap();
        std::fs::write(host.join("f"), b"HOST SECRET").unwrap();
        std::os::unix::fs::symlink(&host, up.join("xs")).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let swapper = {
            let (up, stop) = (up.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = rustix::fs::renameat_with(
                        rustix::fs::CWD,
                        up.join("x").as_path(),
                        rustix::fs::CWD,
                        up.join("xs").as_path(),
                        rustix::fs::RenameFlags::EXCHANGE,
                    );
                }
            })
        };
        let mut leaked = 0;
        for _ in 0..2000 {
            let mut out = Vec::new();
            let _ = pack_upper(&up, &mut out);
            if out.windows(11).any(|w| w == b"HOST SECRET") {
                leaked += 1;
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        swapper.join().unwrap();
        assert_eq!(leaked, 0, "the host's file was packed {leaked} times");
    }
}
