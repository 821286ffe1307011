//! Paths resolved inside a root directory by the kernel (`openat2(RESOLVE_IN_ROOT)`): `..` and
//! symlinks, absolute or not, cannot lead out. Used to unpack layers and, by the runtime, to make
//! mount points inside a container's rootfs before `pivot_root`.

use std::os::fd::OwnedFd;

use rustix::fs::{self as rfs, Mode, OFlags, ResolveFlags};

/// How every in-root lookup resolves.
pub const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// Why a directory could not be had inside the root.
#[derive(Debug)]
pub enum InRootError {
    /// Some component exists and is not a directory.
    NotADirectory(String),
    /// A component is a symlink to a directory that does not exist (we do not create through it).
    DanglingSymlink(String),
    /// Any other failure: what was being done, and the error.
    Io(String, rustix::io::Errno),
}

impl std::fmt::Display for InRootError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InRootError::NotADirectory(p) => write!(f, "{p}: a parent is not a directory"),
            InRootError::DanglingSymlink(p) => write!(
                f,
                "{p} is a symlink to a directory this layer does not have"
            ),
            InRootError::Io(c, e) => write!(f, "{c}: {e}"),
        }
    }
}

/// Opens (creating as needed, mode 0755) the directory `path` inside `root`, as an `O_PATH` fd.
pub fn ensure_dir_in_root(root: &OwnedFd, path: &str) -> Result<OwnedFd, InRootError> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let path = path.trim_matches('/');
    let dot = if path.is_empty() { "." } else { path };
    match rfs::openat2(root, dot, flags, Mode::empty(), RESOLVE) {
        Ok(fd) => return Ok(fd),
        Err(rustix::io::Errno::NOENT) => {}
        Err(rustix::io::Errno::NOTDIR) => return Err(InRootError::NotADirectory(path.to_string())),
        Err(e) => return Err(InRootError::Io(format!("opening {path}"), e)),
    }
    let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let mut cur = rfs::openat(root, ".", flags, Mode::empty())
        .map_err(|e| InRootError::Io("opening root".into(), e))?;
    for i in 0..comps.len() {
        let prefix = comps[..=i].join("/");
        match rfs::openat2(root, prefix.as_str(), flags, Mode::empty(), RESOLVE) {
            Ok(fd) => cur = fd,
            Err(rustix::io::Errno::NOENT) => {
                match rfs::mkdirat(&cur, comps[i], Mode::from_raw_mode(0o755)) {
                    Ok(()) => {}
                    Err(rustix::io::Errno::EXIST) => {
                        return Err(InRootError::DanglingSymlink(prefix))
                    }
                    Err(e) => return Err(InRootError::Io(format!("creating {prefix}"), e)),
                }
                cur = rfs::openat2(root, prefix.as_str(), flags, Mode::empty(), RESOLVE)
                    .map_err(|e| InRootError::Io(format!("opening {prefix}"), e))?;
            }
            Err(rustix::io::Errno::NOTDIR) => return Err(InRootError::NotADirectory(prefix)),
            Err(e) => return Err(InRootError::Io(format!("opening {prefix}"), e)),
        }
    }
    Ok(cur)
}

/// Opens (creating an empty file, and its parents, if needed) the file `path` inside `root`, as an
/// `O_PATH` fd: a mount point for a file bind mount.
pub fn ensure_file_in_root(root: &OwnedFd, path: &str) -> Result<OwnedFd, InRootError> {
    let path = path.trim_matches('/');
    let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
    let pfd = ensure_dir_in_root(root, parent)?;
    match rfs::openat(
        &pfd,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    ) {
        Ok(_)
        | Err(rustix::io::Errno::ISDIR)
        | Err(rustix::io::Errno::LOOP)
        | Err(rustix::io::Errno::ROFS)
        | Err(rustix::io::Errno::ACCESS) => {}
        Err(e) => return Err(InRootError::Io(format!("creating {path}"), e)),
    }
    rfs::openat2(
        root,
        path,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        RESOLVE,
    )
    .map_err(|e| InRootError::Io(format!("opening {path}"), e))
}
