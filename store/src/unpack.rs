//! Safe layer unpacking. Every file-system operation goes through a directory fd opened with
//! `openat2(RESOLVE_IN_ROOT)` on the layer directory, so neither `../` names, absolute names,
//! symlinked parents nor hardlink targets can reach outside it, whatever the tar says and however
//! a concurrent process moves things. Each layer is unpacked alone, in the form overlayfs stacks:
//! a whiteout becomes a 0/0 character device and an opaque directory the `user.overlay.opaque`
//! xattr (mount with `userxattr`). Overlay metadata comes only from those markers: a tar's own
//! `user.overlay.*`/`trusted.overlay.*` xattrs are dropped. Runs of zeros (GNU sparse entries'
//! holes, or plain zeros) are written as holes, and what a layer expands to is capped.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, Timespec, Timestamps};

use crate::digest::{Digest, HashingWriter};
use crate::error::{Error, IoContext, Result};
use crate::inroot::{ensure_dir_in_root, InRootError, RESOLVE};

/// The xattr that marks a directory opaque for overlayfs mounted with `userxattr`.
pub const OPAQUE_XATTR: &str = "user.overlay.opaque";
const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// How to unpack.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnpackOptions {
    /// Give files the owners the tar names (root, or a process in a mapped user namespace); when
    /// false everything belongs to the unpacking user.
    pub chown: bool,
    /// A plain archive (`skiff cp`), not a layer: `.wh.` names are ordinary files.
    pub plain: bool,
    /// What the layer may expand to, in bytes (its uncompressed tar, and the full sizes of its
    /// files, holes included); 0 means no limit. Pulls pass `[storage] max_layer_size`.
    pub max_size: u64,
}

/// Whether an xattr is overlayfs's own metadata, which only skiff's whiteout and opaque
/// handling may write: from a tar it could hide files or redirect directories.
pub fn is_overlay_xattr(name: &str) -> bool {
    name.starts_with("user.overlay.") || name.starts_with("trusted.overlay.")
}

/// What an unpack did that the user may want to know.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UnpackReport {
    /// Uncompressed size of the layer tar.
    pub size: u64,
    /// Device nodes that could not be created (rootless) and were skipped.
    pub skipped_devices: u32,
    /// Extended attributes the kernel refused (e.g. `trusted.*` without privilege).
    pub ignored_xattrs: u32,
}

/// Unpacks the (gzip-, zstd- or un-compressed) layer tar in `blob` into the existing, empty `dest`,
/// verifying that the uncompressed stream hashes to `diff_id`.
pub fn unpack_layer(
    blob: &Path,
    diff_id: &Digest,
    dest: &Path,
    opts: UnpackOptions,
) -> Result<UnpackReport> {
    let file = File::open(blob).ctx(|| format!("opening {}", blob.display()))?;
    unpack_stream(
        BufReader::with_capacity(256 * 1024, file),
        diff_id,
        dest,
        opts,
    )
}

/// Like [`unpack_layer`], from any buffered reader (compression is sniffed from the first bytes).
pub fn unpack_stream<R: BufRead>(
    mut input: R,
    diff_id: &Digest,
    dest: &Path,
    opts: UnpackOptions,
) -> Result<UnpackReport> {
    let layer = diff_id.short().to_string();
    let head = input
        .fill_buf()
        .ctx(|| format!("reading layer {layer}"))?
        .to_vec();
    let decompressed: Box<dyn Read> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(input))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(
            zstd::stream::read::Decoder::with_buffer(input)
                .ctx(|| format!("starting zstd for layer {layer}"))?,
        )
    } else {
        Box::new(input)
    };
    let mut hashed = HashingReader {
        inner: decompressed,
        hasher: HashingWriter::new(io::sink()),
        limit: opts.max_size,
    };
    let mut u = Unpacker::open(dest, opts, layer.clone())?;
    let res = u.entries(&mut hashed).and_then(|()| {
        io::copy(&mut hashed, &mut io::sink())
            .map(|_| ())
            .map_err(|e| u.bad(format!("corrupt compressed stream: {e}")))
    });
    if hashed.over() || u.over() {
        return Err(u.too_large());
    }
    res?;
    u.report.size = hashed.hasher.written();
    let (_, actual) = hashed.hasher.finish();
    if &actual != diff_id {
        return Err(Error::DiffIdMismatch {
            layer,
            expected: diff_id.to_string(),
            actual: actual.to_string(),
        });
    }
    u.finish_dirs()?;
    Ok(u.report)
}

/// Unpacks a plain, uncompressed tar (what `skiff cp` streams) into the existing `dest`, with
/// the same confinement as a layer: nothing lands outside `dest`, existing entries are replaced.
pub fn unpack_archive<R: Read>(input: R, dest: &Path, opts: UnpackOptions) -> Result<()> {
    let opts = UnpackOptions {
        plain: true,
        ..opts
    };
    let mut u = Unpacker::open(dest, opts, "archive".into())?;
    u.entries(input)?;
    u.finish_dirs()
}

struct HashingReader<R> {
    inner: R,
    hasher: HashingWriter<io::Sink>,
    /// Stop (with an error) once the uncompressed stream passes this many bytes; 0: never.
    limit: u64,
}

impl<R> HashingReader<R> {
    fn over(&self) -> bool {
        self.limit > 0 && self.hasher.written() > self.limit
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.over() {
            return Err(io::Error::other("layer size limit reached"));
        }
        let n = self.inner.read(buf)?;
        io::Write::write_all(&mut self.hasher, &buf[..n])?;
        Ok(n)
    }
}

/// The block size below which zeros are written rather than skipped as a hole.
const HOLE_BLOCK: usize = 64 * 1024;
/// What an all-zero block looks like (compared with memcmp, fast even in debug builds).
static ZERO_BLOCK: [u8; HOLE_BLOCK] = [0; HOLE_BLOCK];

struct PendingDir {
    path: String,
    mode: u32,
    mtime: Timespec,
}

struct Unpacker {
    root: OwnedFd,
    opts: UnpackOptions,
    report: UnpackReport,
    dirs: Vec<PendingDir>,
    layer: String,
    /// Bytes of file content written so far, holes included (checked against `opts.max_size`).
    expanded: u64,
}

/// Turns a tar path into clean components, refusing any that would climb above the root.
/// Absolute names are taken relative to the root, as Docker does.
pub fn clean_path(raw: &str) -> std::result::Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for comp in raw.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                if out.pop().is_none() {
                    return Err(format!("entry \"{raw}\" points outside the layer"));
                }
            }
            c => out.push(c.to_string()),
        }
    }
    Ok(out)
}

impl Unpacker {
    fn bad(&self, reason: String) -> Error {
        Error::BadLayer {
            layer: self.layer.clone(),
            reason,
        }
    }

    fn over(&self) -> bool {
        self.opts.max_size > 0 && self.expanded > self.opts.max_size
    }

    fn too_large(&self) -> Error {
        Error::LayerTooLarge {
            layer: self.layer.clone(),
            limit: self.opts.max_size,
        }
    }

    /// Copies a file's content, seeking over every all-zero block so that holes (a GNU sparse
    /// entry's, or a run of zeros) cost no disk, and counting its full size against the limit.
    fn write_content<R: Read>(&mut self, entry: &mut R, file: &mut File, full: &str) -> Result<()> {
        let mut buf = vec![0u8; HOLE_BLOCK];
        let mut len: u64 = 0;
        let mut hole = false;
        loop {
            let mut n = 0;
            while n < buf.len() {
                match entry.read(&mut buf[n..]) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(self.bad(format!("reading {full}: {e}"))),
                }
            }
            if n == 0 {
                break;
            }
            len += n as u64;
            self.expanded += n as u64;
            if self.over() {
                return Err(self.too_large());
            }
            if n == buf.len() && buf[..] == ZERO_BLOCK[..] {
                file.seek(SeekFrom::Current(n as i64))
                    .ctx(|| format!("writing {full}"))?;
                hole = true;
            } else {
                file.write_all(&buf[..n])
                    .ctx(|| format!("writing {full}"))?;
                hole = false;
            }
        }
        if hole {
            file.set_len(len).ctx(|| format!("writing {full}"))?;
        }
        Ok(())
    }

    /// An unpacker writing under `dest` (opened once; everything resolves from that fd).
    fn open(dest: &Path, opts: UnpackOptions, layer: String) -> Result<Unpacker> {
        let root: OwnedFd = rfs::open(
            dest,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| format!("opening {}", dest.display()))?;
        Ok(Unpacker {
            root,
            opts,
            report: UnpackReport::default(),
            dirs: Vec::new(),
            layer,
            expanded: 0,
        })
    }

    /// Writes every entry of the tar on `input`.
    fn entries<R: Read>(&mut self, input: R) -> Result<()> {
        let mut archive = tar::Archive::new(input);
        let entries = archive
            .entries()
            .map_err(|e| self.bad(format!("not a tar archive: {e}")))?;
        for entry in entries {
            let entry = entry.map_err(|e| self.bad(format!("corrupt tar: {e}")))?;
            self.entry(entry)?;
        }
        Ok(())
    }

    fn entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<()> {
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let comps = clean_path(&raw).map_err(|r| self.bad(r))?;
        let Some((name, parents)) = comps.split_last() else {
            // The root itself ("./"): only its metadata matters.
            return Ok(());
        };
        let parent_path = parents.join("/");
        let parent = self.ensure_dir(&parent_path)?;
        let header = entry.header().clone();
        let kind = header.entry_type();

        if !self.opts.plain && name == OPAQUE_MARKER {
            let dir = rfs::openat2(
                &self.root,
                dot(&parent_path),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
                RESOLVE,
            )
            .ctx(|| format!("opening {parent_path} for opaque marker"))?;
            rfs::fsetxattr(&dir, OPAQUE_XATTR, b"y", rfs::XattrFlags::empty())
                .ctx(|| format!("marking {parent_path} opaque"))?;
            return Ok(());
        }
        if let Some(hidden) = name
            .strip_prefix(WHITEOUT_PREFIX)
            .filter(|_| !self.opts.plain)
        {
            if hidden.starts_with(WHITEOUT_PREFIX)
                || hidden.is_empty()
                || hidden == ".."
                || hidden == "."
            {
                return Ok(()); // other AUFS metadata (.wh..wh.plnk …): meaningless here
            }
            self.remove_existing(&parent, hidden)?;
            rfs::mknodat(
                &parent,
                hidden,
                rfs::FileType::CharacterDevice,
                Mode::empty(),
                rfs::makedev(0, 0),
            )
            .ctx(|| format!("creating whiteout for {parent_path}/{hidden}"))?;
            return Ok(());
        }

        let mode = Mode::from_raw_mode(
            header
                .mode()
                .map_err(|e| self.bad(format!("{raw}: bad mode: {e}")))?
                & 0o7777,
        );
        let mtime = entry_mtime(&mut entry, &header);
        let full = if parent_path.is_empty() {
            name.clone()
        } else {
            format!("{parent_path}/{name}")
        };

        match kind {
            tar::EntryType::Directory => {
                match rfs::statat(&parent, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st)
                        if rfs::FileType::from_raw_mode(st.st_mode) == rfs::FileType::Directory => {
                    }
                    Ok(_) => {
                        self.remove_existing(&parent, name)?;
                        rfs::mkdirat(&parent, name.as_str(), Mode::from_raw_mode(0o700))
                            .ctx(|| format!("creating {full}"))?;
                    }
                    Err(_) => {
                        rfs::mkdirat(&parent, name.as_str(), Mode::from_raw_mode(0o700))
                            .ctx(|| format!("creating {full}"))?;
                    }
                }
                let fd = rfs::openat(
                    &parent,
                    name.as_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .ctx(|| format!("opening {full}"))?;
                self.own(&fd, &header)?;
                self.xattrs(&fd, &mut entry)?;
                self.dirs.push(PendingDir {
                    path: full,
                    mode: mode.as_raw_mode(),
                    mtime,
                });
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                self.remove_existing(&parent, name)?;
                let fd = rfs::openat(
                    &parent,
                    name.as_str(),
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .ctx(|| format!("creating {full}"))?;
                let mut file = File::from(fd);
                self.write_content(&mut entry, &mut file, &full)?;
                self.own(&file, &header)?;
                rfs::fchmod(&file, mode).ctx(|| format!("setting mode of {full}"))?;
                self.xattrs(&file, &mut entry)?;
                rfs::futimens(&file, &times(&mtime)).ctx(|| format!("setting times of {full}"))?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                self.remove_existing(&parent, name)?;
                rfs::symlinkat(target.as_str(), &parent, name.as_str())
                    .ctx(|| format!("creating symlink {full}"))?;
                self.own_at(&parent, name, &header)?;
                let _ = rfs::utimensat(
                    &parent,
                    name.as_str(),
                    &times(&mtime),
                    AtFlags::SYMLINK_NOFOLLOW,
                );
            }
            tar::EntryType::Link => {
                let target_raw = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                let tcomps = clean_path(&target_raw)
                    .map_err(|r| self.bad(format!("hardlink {raw}: {r}")))?;
                let Some((tname, tparents)) = tcomps.split_last() else {
                    return Err(self.bad(format!("hardlink {raw} has no target")));
                };
                let tparent = rfs::openat2(
                    &self.root,
                    dot(&tparents.join("/")),
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                    RESOLVE,
                )
                .map_err(|e| {
                    self.bad(format!(
                        "hardlink {raw}: target {target_raw} not in this layer ({e})"
                    ))
                })?;
                if tparents == parents && tname == name {
                    return Ok(());
                }
                self.remove_existing(&parent, name)?;
                rfs::linkat(
                    &tparent,
                    tname.as_str(),
                    &parent,
                    name.as_str(),
                    AtFlags::empty(),
                )
                .map_err(|e| {
                    self.bad(format!(
                        "hardlink {raw}: target {target_raw} not in this layer ({e})"
                    ))
                })?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let (ft, dev) = match kind {
                    tar::EntryType::Char => (rfs::FileType::CharacterDevice, dev_of(&header)),
                    tar::EntryType::Block => (rfs::FileType::BlockDevice, dev_of(&header)),
                    _ => (rfs::FileType::Fifo, 0),
                };
                self.remove_existing(&parent, name)?;
                match rfs::mknodat(&parent, name.as_str(), ft, mode, dev) {
                    Ok(()) => {
                        self.own_at(&parent, name, &header)?;
                    }
                    Err(rustix::io::Errno::PERM) if ft != rfs::FileType::Fifo => {
                        self.report.skipped_devices += 1
                    }
                    Err(e) => {
                        return Err(Error::Io {
                            context: format!("creating {full}"),
                            source: e.into(),
                        })
                    }
                }
            }
            tar::EntryType::XGlobalHeader
            | tar::EntryType::XHeader
            | tar::EntryType::GNULongName
            | tar::EntryType::GNULongLink => {}
            other => return Err(self.bad(format!("{raw}: unsupported tar entry type {other:?}"))),
        }
        Ok(())
    }

    /// Opens (creating as needed, 0755 like Docker) the directory at `path` inside the root.
    fn ensure_dir(&mut self, path: &str) -> Result<OwnedFd> {
        ensure_dir_in_root(&self.root, path).map_err(|e| match e {
            InRootError::Io(context, errno) => Error::Io {
                context,
                source: errno.into(),
            },
            other => self.bad(other.to_string()),
        })
    }

    /// Removes whatever stands at `name` in `parent` (a later entry replaces an earlier one).
    fn remove_existing(&self, parent: &OwnedFd, name: &str) -> Result<()> {
        match rfs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Err(_) => Ok(()),
            Ok(st) if rfs::FileType::from_raw_mode(st.st_mode) == rfs::FileType::Directory => {
                remove_tree_at(parent, name)
            }
            Ok(_) => {
                rfs::unlinkat(parent, name, AtFlags::empty()).ctx(|| format!("replacing {name}"))
            }
        }
    }

    fn own<F: AsFd>(&self, fd: F, h: &tar::Header) -> Result<()> {
        if !self.opts.chown {
            return Ok(());
        }
        let (uid, gid) = ids(h);
        rfs::fchown(
            fd,
            Some(rfs::Uid::from_raw(uid)),
            Some(rfs::Gid::from_raw(gid)),
        )
        .ctx(|| format!("chown to {uid}:{gid}"))
    }

    fn own_at(&self, parent: &OwnedFd, name: &str, h: &tar::Header) -> Result<()> {
        if !self.opts.chown {
            return Ok(());
        }
        let (uid, gid) = ids(h);
        rfs::chownat(
            parent,
            name,
            Some(rfs::Uid::from_raw(uid)),
            Some(rfs::Gid::from_raw(gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .ctx(|| format!("chown {name} to {uid}:{gid}"))
    }

    fn xattrs<F: AsFd, R: Read>(&mut self, fd: F, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        let Ok(Some(exts)) = entry.pax_extensions() else {
            return Ok(());
        };
        for ext in exts.flatten() {
            let Ok(key) = ext.key() else { continue };
            let Some(name) = key.strip_prefix("SCHILY.xattr.") else {
                continue;
            };
            if is_overlay_xattr(name) {
                continue; // forged overlay metadata: only markers make it
            }
            if rfs::fsetxattr(&fd, name, ext.value_bytes(), rfs::XattrFlags::empty()).is_err() {
                self.report.ignored_xattrs += 1;
            }
        }
        Ok(())
    }

    /// Applies directory modes and mtimes last, since writing inside a directory changes both.
    fn finish_dirs(&mut self) -> Result<()> {
        for d in self.dirs.iter().rev() {
            let fd = rfs::openat2(
                &self.root,
                d.path.as_str(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
                RESOLVE,
            );
            let Ok(fd) = fd else { continue }; // replaced by a later entry
            rfs::fchmod(&fd, Mode::from_raw_mode(d.mode))
                .ctx(|| format!("setting mode of {}", d.path))?;
            rfs::futimens(&fd, &times(&d.mtime)).ctx(|| format!("setting times of {}", d.path))?;
        }
        Ok(())
    }
}

fn dot(p: &str) -> &str {
    if p.is_empty() {
        "."
    } else {
        p
    }
}

fn ids(h: &tar::Header) -> (u32, u32) {
    let uid = h
        .uid()
        .ok()
        .and_then(|u| u32::try_from(u).ok())
        .unwrap_or(0);
    let gid = h
        .gid()
        .ok()
        .and_then(|g| u32::try_from(g).ok())
        .unwrap_or(0);
    (uid, gid)
}

fn dev_of(h: &tar::Header) -> rfs::Dev {
    rfs::makedev(
        h.device_major().ok().flatten().unwrap_or(0),
        h.device_minor().ok().flatten().unwrap_or(0),
    )
}

fn times(mtime: &Timespec) -> Timestamps {
    Timestamps {
        last_access: *mtime,
        last_modification: *mtime,
    }
}

/// An entry's modification time: the PAX `mtime` record where there is one (it carries the
/// sub-second part, and times before 1970 or after 2242), else the header's whole seconds.
fn entry_mtime<R: Read>(entry: &mut tar::Entry<'_, R>, header: &tar::Header) -> Timespec {
    let pax = entry.pax_extensions().ok().flatten().and_then(|exts| {
        exts.flatten()
            .find(|e| e.key() == Ok("mtime"))
            .and_then(|e| e.value().ok().and_then(parse_pax_time))
    });
    pax.unwrap_or(Timespec {
        tv_sec: header
            .mtime()
            .ok()
            .and_then(|t| i64::try_from(t).ok())
            .unwrap_or(0),
        tv_nsec: 0,
    })
}

/// A PAX time value, `[-]SECONDS[.FRACTION]`, to the nanosecond (further digits are cut).
pub(crate) fn parse_pax_time(v: &str) -> Option<Timespec> {
    let (neg, v) = match v.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, v),
    };
    let (whole, frac) = v.split_once('.').unwrap_or((v, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = whole.parse().ok()?;
    let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
    let nsec: i64 = digits.parse().ok()?;
    Some(if !neg {
        Timespec {
            tv_sec: secs,
            tv_nsec: nsec as _,
        }
    } else if nsec == 0 {
        Timespec {
            tv_sec: -secs,
            tv_nsec: 0,
        }
    } else {
        Timespec {
            tv_sec: -secs - 1,
            tv_nsec: (1_000_000_000 - nsec) as _,
        }
    })
}

/// Removes `name` in `parent` and everything below it, never following symlinks, with at most a
/// few fds open whatever the depth: it walks down one directory at a time and comes back up
/// through `..`, checking that `..` is the very directory it came from (device and inode), so a
/// tree 10,000 levels deep goes under any `RLIMIT_NOFILE` and a moved directory stops the walk
/// instead of leading it elsewhere. Directories without permissions (overlayfs leaves
/// `work/work` at 000) are made ours first. A missing `name` is not an error.
pub fn remove_tree_at(parent: &OwnedFd, name: &str) -> Result<()> {
    let mut cur = match open_for_removal(parent, name)? {
        Opened::Dir(d) => d,
        Opened::Gone => return Ok(()),
        Opened::NotDir => return unlink_file(parent, name, name),
    };
    // The directories above `cur` (up to `name`), each with the subdirectories still to go.
    struct Level {
        name: String,
        dev: u64,
        ino: u64,
        subdirs: Vec<String>,
    }
    let mut above: Vec<Level> = Vec::new();
    let mut cur_name = name.to_string();
    let mut subdirs = clear_files(&cur, &cur_name)?;
    loop {
        if let Some(sub) = subdirs.pop() {
            match open_for_removal(&cur, &sub)? {
                Opened::Gone => {}
                Opened::NotDir => unlink_file(&cur, &sub, &cur_name)?,
                Opened::Dir(child) => {
                    let st = rfs::fstat(&cur).ctx(|| format!("reading {cur_name}"))?;
                    above.push(Level {
                        name: std::mem::replace(&mut cur_name, sub),
                        dev: st.st_dev,
                        ino: st.st_ino,
                        subdirs: std::mem::take(&mut subdirs),
                    });
                    subdirs = clear_files(&child, &cur_name)?;
                    cur = child;
                }
            }
            continue;
        }
        let Some(up) = above.pop() else { break };
        let pfd = rfs::openat(
            &cur,
            "..",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| format!("going back up from {cur_name}"))?;
        let st = rfs::fstat(&pfd).ctx(|| format!("reading {}", up.name))?;
        if (st.st_dev, st.st_ino) != (up.dev, up.ino) {
            return Err(Error::Io {
                context: format!("removing {name}"),
                source: io::Error::other(format!(
                    "{} was moved during the removal; run the command again",
                    up.name
                )),
            });
        }
        drop(std::mem::replace(&mut cur, pfd));
        remove_empty_dir(&cur, &cur_name)?;
        cur_name = up.name;
        subdirs = up.subdirs;
    }
    drop(cur);
    remove_empty_dir(parent, name)
}

/// What [`open_for_removal`] found.
enum Opened {
    Dir(OwnedFd),
    NotDir,
    Gone,
}

/// Opens the directory `name` in `parent` for listing (made 0700 and ours to list first if need
/// be), or says that it is something else or gone.
fn open_for_removal(parent: &OwnedFd, name: &str) -> Result<Opened> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let opened = match rfs::openat(parent, name, flags, Mode::empty()) {
        // A directory without read permission: make it ours to list through an O_PATH fd (no
        // permission needed, symlinks not followed), retry.
        Err(rustix::io::Errno::ACCESS) => {
            let p = rfs::openat(
                parent,
                name,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            );
            if let Ok(p) = p {
                // Through the fd's magic link: exactly this inode, even if the name is swapped.
                use std::os::fd::AsRawFd;
                let _ = rfs::chmod(
                    format!("/proc/self/fd/{}", p.as_raw_fd()).as_str(),
                    Mode::from_raw_mode(0o700),
                );
            }
            rfs::openat(parent, name, flags, Mode::empty())
        }
        other => other,
    };
    match opened {
        Ok(d) => {
            let _ = rfs::fchmod(&d, Mode::from_raw_mode(0o700));
            Ok(Opened::Dir(d))
        }
        Err(rustix::io::Errno::NOTDIR) | Err(rustix::io::Errno::LOOP) => Ok(Opened::NotDir),
        Err(rustix::io::Errno::NOENT) => Ok(Opened::Gone),
        Err(e) => Err(Error::Io {
            context: format!("opening {name}"),
            source: e.into(),
        }),
    }
}

/// Unlinks every entry of `dir` that is not a directory; returns the names of the directories.
fn clear_files(dir: &OwnedFd, dir_name: &str) -> Result<Vec<String>> {
    let mut names = Vec::new();
    {
        let it = rfs::Dir::read_from(dir).ctx(|| format!("listing {dir_name}"))?;
        for e in it {
            let e = e.ctx(|| format!("listing {dir_name}"))?;
            let n = e.file_name().to_string_lossy().into_owned();
            if n != "." && n != ".." {
                names.push((n, e.file_type()));
            }
        }
    }
    let mut dirs = Vec::new();
    for (n, ft) in names {
        if ft == rfs::FileType::Directory || ft == rfs::FileType::Unknown {
            dirs.push(n);
        } else {
            unlink_file(dir, &n, dir_name)?;
        }
    }
    Ok(dirs)
}

/// Unlinks a non-directory; one already gone is fine.
fn unlink_file(dir: &OwnedFd, name: &str, dir_name: &str) -> Result<()> {
    match rfs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(e).ctx(|| format!("removing {dir_name}/{name}")),
    }
}

/// Removes an emptied directory; one already gone is fine.
fn remove_empty_dir(parent: &OwnedFd, name: &str) -> Result<()> {
    match rfs::unlinkat(parent, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(e).ctx(|| format!("removing {name}")),
    }
}

/// Removes the directory tree at `path` (see [`remove_tree_at`]); a missing path is not an error.
pub fn remove_tree(path: &Path) -> Result<()> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok(());
    };
    let pfd = match rfs::open(
        parent,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        Err(e) => {
            return Err(Error::Io {
                context: format!("opening {}", parent.display()),
                source: e.into(),
            })
        }
    };
    remove_tree_at(&pfd, &name.to_string_lossy())
}

#[cfg(test)]
#[path = "unpack_tests.rs"]
mod tests;
