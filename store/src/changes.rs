//! `diff`'s reading: what a container changed against its image, as Docker's `A`/`C`/`D` lines.
//! Two kinds of top: an overlay upper dir (what it holds is what changed: a 0/0 character device
//! is a deletion, an opaque directory hides everything below it) or a private copy of the image
//! (the copy fallback), which is compared entry by entry with the merged layers.
//!
//! Both trees are walked through directory fds with `O_NOFOLLOW` and the layers through the same
//! merged lookup `inroot` reads image files with: a symlink the container planted (or swaps in
//! while it runs) is reported as the link it is, never followed.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags};

use crate::inroot::{lookup, opaque, open_dir, Merged};

/// What happened to one path, as Docker's letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `A`: not in the image.
    Added,
    /// `C`: in the image, and changed (a directory: its content or its own metadata).
    Changed,
    /// `D`: in the image, deleted.
    Deleted,
}

/// One changed path (absolute, as the container sees it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// What happened.
    pub kind: Kind,
    /// The path inside the container.
    pub path: String,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let k = match self.kind {
            Kind::Added => 'A',
            Kind::Changed => 'C',
            Kind::Deleted => 'D',
        };
        write!(f, "{k} {}", self.path)
    }
}

/// What the top tree is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Top {
    /// An overlay upper dir: only what changed is there.
    Upper,
    /// A whole copy of the image: compared with the layers entry by entry.
    Copy,
}

/// Why the changes could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ChangesError {
    /// A directory or entry could not be read.
    #[error("reading {0}: {1}")]
    Io(String, rustix::io::Errno),
    /// A layer directory could not be opened or looked into.
    #[error("{0}")]
    Layer(String),
}

type R<T> = Result<T, ChangesError>;

/// The names skiff itself puts in every container (bind-mount points, and the copy's marker):
/// never the container's change.
const PROVIDED: [&str; 4] = [
    "/etc/hostname",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/.skiff-copy-complete",
];

/// The mount points skiff makes when the image has none: always covered by mounts, so never
/// anything the container wrote (Docker's init layer hides its own the same way).
const MOUNT_POINTS: [&str; 3] = ["/dev", "/proc", "/sys"];

/// The changes of `top` against the merged `layers` (lowest first), in Docker's order: a walk of
/// the tree, names in byte order, each directory before what it holds.
pub fn changes(top: &Path, layers: &[PathBuf], kind: Top) -> R<Vec<Change>> {
    let dir = match rfs::open(
        top,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(d) => d,
        // A container that never started has no upper dir yet: nothing changed.
        Err(rustix::io::Errno::NOENT) => return Ok(Vec::new()),
        Err(e) => return Err(ChangesError::Io(top.display().to_string(), e)),
    };
    let lower = layers
        .iter()
        .rev()
        .map(|l| open_dir(l))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ChangesError::Layer(e.to_string()))?;
    let mut out = Vec::new();
    let w = Walk { kind };
    w.dir(&dir, &lower, "", kind == Top::Copy, &mut out)?;
    Ok(out)
}

struct Walk {
    kind: Top,
}

/// The names in a directory fd (any kind of fd to a directory), `.` and `..` left out.
fn names(dir: &OwnedFd, shown: &str) -> R<Vec<String>> {
    let d = rfs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ChangesError::Io(shown.to_string(), e))?;
    let mut v = Vec::new();
    for e in rfs::Dir::read_from(&d).map_err(|e| ChangesError::Io(shown.to_string(), e))? {
        let e = e.map_err(|e| ChangesError::Io(shown.to_string(), e))?;
        let n = e.file_name().to_string_lossy().into_owned();
        if n != "." && n != ".." {
            v.push(n);
        }
    }
    Ok(v)
}

fn stat_at(dir: &OwnedFd, name: &str, shown: &str) -> R<Option<rfs::Stat>> {
    match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(ChangesError::Io(shown.to_string(), e)),
    }
}

fn ftype(st: &rfs::Stat) -> rfs::FileType {
    rfs::FileType::from_raw_mode(st.st_mode)
}

/// Whether two entries differ in what `diff` looks at: for directories only their own mode and
/// owner (adding a name changes a directory's mtime, and its names are compared one by one);
/// for the rest also size, mtime, device number and link target.
fn differs(a: &rfs::Stat, b: &rfs::Stat, links: Option<(&OwnedFd, &OwnedFd, &str)>) -> bool {
    if a.st_mode != b.st_mode || a.st_uid != b.st_uid || a.st_gid != b.st_gid {
        return true;
    }
    if ftype(a) == rfs::FileType::Directory {
        return false;
    }
    if a.st_size != b.st_size
        || a.st_mtime != b.st_mtime
        || a.st_mtime_nsec != b.st_mtime_nsec
        || a.st_rdev != b.st_rdev
    {
        return true;
    }
    match links {
        Some((da, db, name)) if ftype(a) == rfs::FileType::Symlink => {
            let ta = rfs::readlinkat(da, name, Vec::new()).ok();
            let tb = rfs::readlinkat(db, name, Vec::new()).ok();
            ta != tb
        }
        _ => false,
    }
}

impl Walk {
    /// Walks one directory of the top tree against its merged lower directories (`lower`, topmost
    /// first; empty when the image has no such directory). With `missing`, names the lower dirs
    /// have and the top does not are deletions (the copy, or below an opaque directory). Returns
    /// whether anything under it was reported.
    fn dir(
        &self,
        top: &OwnedFd,
        lower: &[OwnedFd],
        prefix: &str,
        missing: bool,
        out: &mut Vec<Change>,
    ) -> R<bool> {
        let shown = if prefix.is_empty() { "/" } else { prefix };
        let mut all = names(top, shown)?;
        if missing {
            for l in lower {
                all.extend(names(l, shown)?);
            }
        }
        all.sort();
        all.dedup();
        let before = out.len();
        for name in all {
            let path = format!("{prefix}/{name}");
            if PROVIDED.contains(&path.as_str()) {
                continue;
            }
            let st = stat_at(top, &name, &path)?;
            let below = if lower.is_empty() {
                Merged::Absent
            } else {
                lookup(lower, &name, &path).map_err(|e| ChangesError::Layer(e.to_string()))?
            };
            let Some(st) = st else {
                if missing && !matches!(below, Merged::Absent) {
                    out.push(Change {
                        kind: Kind::Deleted,
                        path,
                    });
                }
                continue;
            };
            let ft = ftype(&st);
            if MOUNT_POINTS.contains(&path.as_str())
                && ft == rfs::FileType::Directory
                && matches!(below, Merged::Absent)
            {
                continue;
            }
            if ft == rfs::FileType::CharacterDevice && st.st_rdev == 0 && self.kind == Top::Upper {
                // A whiteout: a deletion when the image had the name.
                if !matches!(below, Merged::Absent) {
                    out.push(Change {
                        kind: Kind::Deleted,
                        path,
                    });
                }
                continue;
            }
            if path == "/etc/mtab"
                && ft == rfs::FileType::Symlink
                && rfs::readlinkat(top, "mtab", Vec::new())
                    .is_ok_and(|t| t.as_bytes() == b"/proc/mounts")
                && matches!(below, Merged::Absent)
            {
                continue; // the link skiff makes when the image has none
            }
            let below_st = match &below {
                Merged::Absent => None,
                Merged::Dir(d) => {
                    Some(rfs::fstat(&d[0]).map_err(|e| ChangesError::Io(path.clone(), e))?)
                }
                Merged::Other(i, _) => stat_at(&lower[*i], &name, &path)?,
            };
            if ft != rfs::FileType::Directory {
                let kind = match (&below, &below_st) {
                    (Merged::Absent, _) | (_, None) => Some(Kind::Added),
                    // In an upper dir, being there is the change (a copy-up).
                    _ if self.kind == Top::Upper => Some(Kind::Changed),
                    (Merged::Other(i, _), Some(b)) => {
                        differs(&st, b, Some((top, &lower[*i], &name))).then_some(Kind::Changed)
                    }
                    (Merged::Dir(_), Some(_)) => Some(Kind::Changed),
                };
                if let Some(kind) = kind {
                    out.push(Change { kind, path });
                }
                continue;
            }
            let sub = rfs::openat(
                top,
                name.as_str(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| ChangesError::Io(path.clone(), e))?;
            let at = out.len();
            match (&below, &below_st) {
                (Merged::Dir(d), Some(b)) => {
                    // An opaque directory hides all the image had under it: what it does not
                    // hold again is deleted, at every depth.
                    let hides = self.kind == Top::Upper && opaque(&sub);
                    let inner = self.dir(&sub, d, &path, missing || hides, out)?;
                    if inner || differs(&st, b, None) {
                        out.insert(
                            at,
                            Change {
                                kind: Kind::Changed,
                                path,
                            },
                        );
                    }
                }
                _ => {
                    // New, or a directory where the image has something else.
                    let kind = if matches!(below, Merged::Absent) {
                        Kind::Added
                    } else {
                        Kind::Changed
                    };
                    out.push(Change {
                        kind,
                        path: path.clone(),
                    });
                    self.dir(&sub, &[], &path, false, out)?;
                }
            }
        }
        Ok(out.len() > before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn lines(v: &[Change]) -> Vec<String> {
        v.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn a_copy_is_compared_entry_by_entry() {
        let t = tempfile::tempdir().unwrap();
        let (low, copy) = (t.path().join("low"), t.path().join("copy"));
        for d in [&low, &copy] {
            fs::create_dir_all(d.join("etc/sub")).unwrap();
            fs::write(d.join("etc/keep"), b"same").unwrap();
            fs::write(d.join("etc/sub/x"), b"x").unwrap();
        }
        fs::write(low.join("gone"), b"").unwrap();
        fs::write(copy.join("etc/keep"), b"other").unwrap();
        fs::write(copy.join("new"), b"").unwrap();
        // Same content: only the mtime tells, so give both the same one.
        let same = fs::File::open(low.join("etc/sub/x"))
            .unwrap()
            .metadata()
            .unwrap();
        fs::File::options()
            .write(true)
            .open(copy.join("etc/sub/x"))
            .unwrap()
            .set_modified(same.modified().unwrap())
            .unwrap();
        let got = changes(&copy, &[low], Top::Copy).unwrap();
        assert_eq!(
            lines(&got),
            ["C /etc", "C /etc/keep", "D /gone", "A /new"],
            "{got:?}"
        );
    }
}
