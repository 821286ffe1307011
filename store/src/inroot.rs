//! Paths resolved inside a root directory by the kernel (`openat2(RESOLVE_IN_ROOT)`): `..` and
//! symlinks, absolute or not, cannot lead out. Used to unpack layers and, by the runtime, to make
//! mount points inside a container's rootfs before `pivot_root`; and to read image files on the
//! host (an image's /etc/passwd through the merged view of its layers, an archive's index.json),
//! regular files only and size-capped, so an image's symlink can never make skiff read a host file.

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, ResolveFlags};

/// How every in-root lookup resolves.
pub const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// Why a directory could not be had inside the root.
#[derive(Debug)]
pub enum InRootError {
    /// Some component exists and is not a directory.
    NotADirectory(String),
    /// A component is a symlink to a directory that does not exist (we do not create through it).
    DanglingSymlink(String),
    /// The path names something other than a regular file (a device, a fifo, a directory).
    NotRegular(String),
    /// The file is larger than the reader's cap.
    TooLarge(String, u64),
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
            InRootError::NotRegular(p) => write!(f, "{p} is not a regular file"),
            InRootError::TooLarge(p, n) => write!(f, "{p} is larger than {n} bytes"),
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

pub(crate) fn open_dir(path: &Path) -> Result<OwnedFd, InRootError> {
    rfs::open(
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| InRootError::Io(format!("opening {}", path.display()), e))
}

/// Opens the regular file behind `fd` (an `O_PATH` fd) for reading; anything else is refused.
fn reopen_regular(fd: &OwnedFd, shown: &str) -> Result<std::fs::File, InRootError> {
    let st = rfs::fstat(fd).map_err(|e| InRootError::Io(format!("reading {shown}"), e))?;
    if rfs::FileType::from_raw_mode(st.st_mode) != rfs::FileType::RegularFile {
        return Err(InRootError::NotRegular(shown.to_string()));
    }
    // Reopened through the fd's own magic link: exactly this inode, never a path again.
    let file = rfs::open(
        format!("/proc/self/fd/{}", fd.as_raw_fd()).as_str(),
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| InRootError::Io(format!("opening {shown}"), e))?;
    Ok(std::fs::File::from(file))
}

/// Reads the regular file at `fd` (an `O_PATH` fd), at most `cap` bytes.
fn read_capped(fd: &OwnedFd, shown: &str, cap: u64) -> Result<Vec<u8>, InRootError> {
    let mut bytes = Vec::new();
    reopen_regular(fd, shown)?
        .take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| {
            InRootError::Io(
                format!("reading {shown}"),
                rustix::io::Errno::from_io_error(&e).unwrap_or(rustix::io::Errno::IO),
            )
        })?;
    if bytes.len() as u64 > cap {
        return Err(InRootError::TooLarge(shown.to_string(), cap));
    }
    Ok(bytes)
}

fn open_path_in_root(root: &Path, rel: &str) -> Result<Option<OwnedFd>, InRootError> {
    let rootfd = open_dir(root)?;
    match rfs::openat2(
        &rootfd,
        dot_or(rel),
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        RESOLVE,
    ) {
        Ok(fd) => Ok(Some(fd)),
        Err(rustix::io::Errno::NOENT) | Err(rustix::io::Errno::NOTDIR) => Ok(None),
        Err(e) => Err(InRootError::Io(format!("opening {rel}"), e)),
    }
}

/// Opens the regular file `path` inside the directory `root` for reading, resolved in the root
/// (its symlinks stay inside); anything but a regular file is refused. `None` when absent.
pub fn open_file_in_root(root: &Path, path: &str) -> Result<Option<std::fs::File>, InRootError> {
    let rel = path.trim_start_matches('/');
    match open_path_in_root(root, rel)? {
        Some(fd) => reopen_regular(&fd, rel).map(Some),
        None => Ok(None),
    }
}

/// Reads the regular file `path` inside the directory `root`, resolved in the root (its symlinks
/// stay inside), refusing anything but a regular file and more than `cap` bytes. `None` when it
/// does not exist.
pub fn read_file_in_root(
    root: &Path,
    path: &str,
    cap: u64,
) -> Result<Option<Vec<u8>>, InRootError> {
    let rel = path.trim_start_matches('/');
    match open_path_in_root(root, rel)? {
        Some(fd) => read_capped(&fd, rel, cap).map(Some),
        None => Ok(None),
    }
}

fn dot_or(p: &str) -> &str {
    if p.is_empty() {
        "."
    } else {
        p
    }
}

/// The most symlinks one merged lookup follows (the kernel's own limit).
const MAX_SYMLINKS: u32 = 40;

/// What one name is in a merged directory.
pub(crate) enum Merged {
    /// Absent, or deleted by a whiteout above.
    Absent,
    /// A directory: its layers' directories, topmost first, down to an opaque one.
    Dir(Vec<OwnedFd>),
    /// Something else, found in the layer directory at this index of the stack.
    Other(usize, rfs::FileType),
}

pub(crate) fn opaque(dir: &OwnedFd) -> bool {
    let mut buf = [0u8; 2];
    let path = format!("/proc/self/fd/{}", dir.as_fd().as_raw_fd());
    ["user.overlay.opaque", "trusted.overlay.opaque"]
        .iter()
        .any(|x| matches!(rfs::getxattr(path.as_str(), *x, &mut buf), Ok(1) if buf[0] == b'y'))
}

/// Looks `name` up in a merged directory (its layer dirs topmost first), as overlayfs does: the
/// topmost entry wins, a 0/0 character device is a whiteout, directories merge down to an
/// opaque one or to a non-directory, which ends the merge.
pub(crate) fn lookup(stack: &[OwnedFd], name: &str, shown: &str) -> Result<Merged, InRootError> {
    let mut dirs = Vec::new();
    for (i, dir) in stack.iter().enumerate() {
        let st = match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(rustix::io::Errno::NOENT) => continue,
            Err(e) => return Err(InRootError::Io(format!("looking up {shown}"), e)),
        };
        let ft = rfs::FileType::from_raw_mode(st.st_mode);
        if ft == rfs::FileType::Directory {
            let fd = rfs::openat(
                dir,
                name,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| InRootError::Io(format!("opening {shown}"), e))?;
            let stop = opaque(&fd);
            dirs.push(fd);
            if stop {
                break;
            }
            continue;
        }
        if !dirs.is_empty() {
            break; // a non-directory below a directory is hidden by it
        }
        if ft == rfs::FileType::CharacterDevice && st.st_rdev == 0 {
            return Ok(Merged::Absent);
        }
        return Ok(Merged::Other(i, ft));
    }
    Ok(if dirs.is_empty() {
        Merged::Absent
    } else {
        Merged::Dir(dirs)
    })
}

/// Reads the regular file at `path` in the merged view of `layers` (lowest first, as overlayfs
/// would show them), never leaving that view: symlinks are followed from layer to layer with
/// `..` stopping at the view's root and absolute targets starting again there; whiteouts and
/// opaque directories count. Anything but a regular file, or more than `cap` bytes, is refused.
/// `None` when the view has no such file.
pub fn read_merged_file(
    layers: &[PathBuf],
    path: &str,
    cap: u64,
) -> Result<Option<Vec<u8>>, InRootError> {
    let shown = format!("/{}", path.trim_start_matches('/'));
    let roots = layers
        .iter()
        .rev()
        .map(|l| open_dir(l))
        .collect::<Result<Vec<_>, _>>()?;
    let mut stack: Vec<Vec<OwnedFd>> = vec![roots];
    let mut todo: std::collections::VecDeque<String> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(String::from)
        .collect();
    let mut links = 0;
    while let Some(comp) = todo.pop_front() {
        if comp == ".." {
            if stack.len() > 1 {
                stack.pop();
            }
            continue;
        }
        let Some(cur) = stack.last() else {
            return Ok(None);
        };
        match lookup(cur, &comp, &shown)? {
            Merged::Absent => return Ok(None),
            Merged::Dir(d) => stack.push(d),
            Merged::Other(i, rfs::FileType::Symlink) => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(InRootError::Io(
                        format!("resolving {shown}"),
                        rustix::io::Errno::LOOP,
                    ));
                }
                let target = rfs::readlinkat(&cur[i], comp.as_str(), Vec::new())
                    .map_err(|e| InRootError::Io(format!("reading link {shown}"), e))?;
                let target = target.to_string_lossy().into_owned();
                if target.starts_with('/') {
                    stack.truncate(1);
                }
                for c in target
                    .split('/')
                    .filter(|c| !c.is_empty() && *c != ".")
                    .rev()
                {
                    todo.push_front(c.to_string());
                }
            }
            Merged::Other(i, ft) => {
                if !todo.is_empty() {
                    return Ok(None); // a file where a directory should be
                }
                if ft != rfs::FileType::RegularFile {
                    return Err(InRootError::NotRegular(shown));
                }
                let fd = rfs::openat(
                    &cur[i],
                    comp.as_str(),
                    OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| InRootError::Io(format!("opening {shown}"), e))?;
                return read_capped(&fd, &shown, cap).map(Some);
            }
        }
    }
    Err(InRootError::NotRegular(shown))
}

/// The apparent sizes, summed, of the entries `paths` inside `root` itself (a symlink's own
/// length, 0 for a directory), each reached with no symlink followed on the way
/// (`RESOLVE_NO_SYMLINKS`): a name a running container swapped for a symlink counts as that
/// symlink. Absent or unreadable: 0. `root` is opened once for all of them.
pub fn entries_size_in_root<'a>(root: &Path, paths: impl IntoIterator<Item = &'a str>) -> u64 {
    let Ok(rootfd) = open_dir(root) else {
        return 0;
    };
    let how = RESOLVE.union(ResolveFlags::NO_SYMLINKS);
    let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    paths
        .into_iter()
        .map(|path| {
            let rel = dot_or(path.trim_start_matches('/'));
            match rfs::openat2(&rootfd, rel, flags, Mode::empty(), how)
                .and_then(|fd| rfs::fstat(&fd))
            {
                Ok(st) if rfs::FileType::from_raw_mode(st.st_mode) != rfs::FileType::Directory => {
                    st.st_size as u64
                }
                _ => 0,
            }
        })
        .sum()
}

/// The apparent size of everything under `path`, walked through directory fds with
/// `O_NOFOLLOW`: a running container swapping a name in its upper dir for a symlink cannot make
/// the walk (`ps --size`, `system df`) leave the tree. Unreadable parts count as 0.
pub fn tree_size(path: &Path) -> u64 {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    match rfs::open(path, flags, Mode::empty()) {
        Ok(dir) => size_at(&dir),
        Err(_) => rfs::lstat(path).map_or(0, |st| st.st_size as u64),
    }
}

fn size_at(dir: &OwnedFd) -> u64 {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let Ok(entries) = rfs::Dir::read_from(dir) else {
        return 0;
    };
    let mut total = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        let Ok(st) = rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        if rfs::FileType::from_raw_mode(st.st_mode) == rfs::FileType::Directory {
            if let Ok(sub) = rfs::openat(dir, name, flags, Mode::empty()) {
                total += size_at(&sub);
            }
        } else {
            total += st.st_size as u64;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(t: &tempfile::TempDir, n: &str) -> PathBuf {
        let p = t.path().join(n);
        std::fs::create_dir_all(p.join("etc")).unwrap();
        p
    }

    #[test]
    fn merged_reads_follow_links_across_layers_but_never_out() {
        let t = tempfile::tempdir().unwrap();
        let (low, up) = (layer(&t, "low"), layer(&t, "up"));
        std::fs::create_dir_all(low.join("usr/lib")).unwrap();
        std::fs::write(low.join("usr/lib/passwd"), b"root:x:0:0::/root:/bin/sh\n").unwrap();
        // The upper layer's link, resolved in the merged view, reaches the lower layer's file.
        std::os::unix::fs::symlink("../../../../usr/lib/passwd", up.join("etc/passwd")).unwrap();
        let layers = vec![low.clone(), up.clone()];
        let got = read_merged_file(&layers, "etc/passwd", 1 << 20).unwrap();
        assert_eq!(got.as_deref(), Some(&b"root:x:0:0::/root:/bin/sh\n"[..]));

        // A host file outside the layers: the absolute link resolves at the view's root.
        let host = t.path().join("host-secret");
        std::fs::write(&host, b"secret").unwrap();
        std::os::unix::fs::symlink(&host, up.join("etc/group")).unwrap();
        assert_eq!(
            read_merged_file(&layers, "etc/group", 1 << 20).unwrap(),
            None
        );
        std::fs::remove_file(up.join("etc/group")).unwrap();
        std::os::unix::fs::symlink("/../../host-secret", up.join("etc/group")).unwrap();
        assert_eq!(
            read_merged_file(&layers, "etc/group", 1 << 20).unwrap(),
            None
        );
        // /dev/zero and friends: refused, not read.
        std::fs::remove_file(up.join("etc/group")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", up.join("etc/group")).unwrap();
        assert_eq!(
            read_merged_file(&layers, "etc/group", 1 << 20).unwrap(),
            None
        );
        let fifo = up.join("etc/fifo");
        rfs::mknodat(
            rfs::CWD,
            fifo.as_path(),
            rfs::FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        assert!(matches!(
            read_merged_file(&layers, "etc/fifo", 1 << 20),
            Err(InRootError::NotRegular(_))
        ));
        // A size cap.
        std::fs::write(low.join("etc/big"), vec![b'x'; 4097]).unwrap();
        assert!(matches!(
            read_merged_file(&layers, "etc/big", 4096),
            Err(InRootError::TooLarge(_, 4096))
        ));
        // A symlink loop ends.
        std::os::unix::fs::symlink("loop", up.join("etc/loop")).unwrap();
        assert!(read_merged_file(&layers, "etc/loop", 4096).is_err());
    }

    #[test]
    fn merged_reads_respect_whiteouts_and_opaque_dirs() {
        let t = tempfile::tempdir().unwrap();
        let (low, up) = (layer(&t, "low"), layer(&t, "up"));
        std::fs::write(low.join("etc/passwd"), b"low").unwrap();
        std::fs::write(low.join("etc/group"), b"low").unwrap();
        std::fs::write(up.join("etc/group"), b"up").unwrap();
        let layers = vec![low.clone(), up.clone()];
        assert_eq!(
            read_merged_file(&layers, "etc/passwd", 64)
                .unwrap()
                .as_deref(),
            Some(&b"low"[..])
        );
        assert_eq!(
            read_merged_file(&layers, "etc/group", 64)
                .unwrap()
                .as_deref(),
            Some(&b"up"[..])
        );
        // An opaque upper /etc hides the lower one's files.
        let marked = rustix::fs::setxattr(
            up.join("etc").as_path(),
            "user.overlay.opaque",
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .is_ok();
        if marked {
            assert_eq!(read_merged_file(&layers, "etc/passwd", 64).unwrap(), None);
        }
        // A whiteout (root or a user namespace may make one) deletes the lower file.
        let _ = rustix::fs::removexattr(up.join("etc").as_path(), "user.overlay.opaque");
        if rfs::mknodat(
            rfs::CWD,
            up.join("etc/passwd").as_path(),
            rfs::FileType::CharacterDevice,
            Mode::empty(),
            rfs::makedev(0, 0),
        )
        .is_ok()
        {
            assert_eq!(read_merged_file(&layers, "etc/passwd", 64).unwrap(), None);
        }
    }

    #[test]
    fn in_root_reads_stay_in_the_root() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(t.path().join("outside"), b"host").unwrap();
        std::os::unix::fs::symlink("../outside", root.join("index.json")).unwrap();
        assert_eq!(read_file_in_root(&root, "index.json", 64).unwrap(), None);
        std::fs::write(root.join("inside"), b"ok").unwrap();
        std::fs::remove_file(root.join("index.json")).unwrap();
        std::os::unix::fs::symlink("/inside", root.join("index.json")).unwrap();
        assert_eq!(
            read_file_in_root(&root, "index.json", 64)
                .unwrap()
                .as_deref(),
            Some(&b"ok"[..])
        );
        std::fs::remove_file(root.join("index.json")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", root.join("index.json")).unwrap();
        assert_eq!(read_file_in_root(&root, "index.json", 64).unwrap(), None);
    }

    #[test]
    fn tree_sizes_never_follow_a_swapped_in_symlink() {
        let t = tempfile::tempdir().unwrap();
        let up = t.path().join("upper");
        let host = t.path().join("host");
        std::fs::create_dir_all(up.join("x")).unwrap();
        std::fs::create_dir_all(&host).unwrap();
        std::fs::write(up.join("x/f"), b"12345").unwrap();
        std::fs::write(host.join("big"), vec![1u8; 1 << 20]).unwrap();
        std::os::unix::fs::symlink(&host, up.join("xs")).unwrap();
        let link_len = rfs::lstat(up.join("xs").as_path()).unwrap().st_size as u64;
        assert_eq!(tree_size(&up), 5 + link_len);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let swapper = {
            let (up, stop) = (up.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = rfs::renameat_with(
                        rfs::CWD,
                        up.join("x").as_path(),
                        rfs::CWD,
                        up.join("xs").as_path(),
                        rfs::RenameFlags::EXCHANGE,
                    );
                }
            })
        };
        let worst = (0..2000).map(|_| tree_size(&up)).max().unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        swapper.join().unwrap();
        assert!(worst < 1 << 20, "the walk left the tree: {worst} bytes");
    }

    #[test]
    fn entry_sizes_follow_no_symlink_on_the_way() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("copy");
        let host = t.path().join("host");
        std::fs::create_dir_all(root.join("d")).unwrap();
        std::fs::create_dir_all(&host).unwrap();
        std::fs::write(root.join("d/f"), b"123").unwrap();
        std::fs::write(host.join("big"), vec![1u8; 4096]).unwrap();
        std::os::unix::fs::symlink(&host, root.join("h")).unwrap();
        std::os::unix::fs::symlink("d/../d/f", root.join("l")).unwrap();
        assert_eq!(entries_size_in_root(&root, ["/d/f"]), 3);
        assert_eq!(entries_size_in_root(&root, ["/d"]), 0, "a directory");
        assert_eq!(entries_size_in_root(&root, ["/l"]), 8, "the link itself");
        assert_eq!(
            entries_size_in_root(&root, ["/h/big"]),
            0,
            "through a symlink"
        );
        assert_eq!(entries_size_in_root(&root, ["/nosuch"]), 0);
        assert_eq!(
            entries_size_in_root(&root, ["/d/f", "/l", "/h/big"]),
            11,
            "summed"
        );
    }
}
