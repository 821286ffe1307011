//! `commit`'s container side: the container's overlay `upper/` dir as an image layer tar. What
//! overlayfs marks one way becomes what image layers say: a 0/0 character device (a deleted
//! file) becomes a `.wh.NAME` entry, an opaque directory (`user.overlay.opaque` or
//! `trusted.overlay.opaque`) gets a `.wh..wh..opq` entry. Symlinks stay links.

use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// Writes the layer tar of `upper` to `out`. Run where the files can be read: in-process as
/// root, inside the user's mapped namespace when rootless (files of mapped ids).
pub fn pack_upper(upper: &Path, out: impl Write) -> std::io::Result<()> {
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    walk(&mut b, upper, "")?;
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

fn opaque(dir: &Path) -> bool {
    ["user.overlay.opaque", "trusted.overlay.opaque"]
        .iter()
        .any(|x| rustix::fs::getxattr(dir, *x, &mut [0u8; 4]).is_ok_and(|n| n > 0))
}

/// Appends the tree below `top` depth-first, parents before their entries, with an explicit
/// list of directories still to visit instead of recursion, so an upper dir thousands of
/// levels deep neither overflows the stack nor holds a listing open per level.
fn walk<W: Write>(b: &mut tar::Builder<W>, top: &Path, rel: &str) -> std::io::Result<()> {
    let mut pending = vec![(top.to_path_buf(), rel.to_string())];
    while let Some((dir, rel)) = pending.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&dir)?.collect::<std::io::Result<_>>()?;
        entries.sort_by_key(|e| e.file_name());
        let mut subdirs = Vec::new();
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            let inner = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let md = std::fs::symlink_metadata(&path)?;
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
            b.append_path_with_name(&path, &inner)?;
            if ft.is_dir() {
                if opaque(&path) {
                    b.append_data(
                        &mut empty_entry(0o644),
                        format!("{inner}/.wh..wh..opq"),
                        std::io::empty(),
                    )?;
                }
                subdirs.push((path, inner));
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
}
