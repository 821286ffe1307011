//! The container's filesystem, built inside its own mount namespace before `pivot_root`: overlayfs
//! of the image's shared layer dirs plus the container's upper dir, /proc, /sys, a minimal /dev,
//! the /etc files skiff provides, the user's mounts, then masked and read-only paths.
//!
//! Mount points inside the rootfs are opened with `openat2(RESOLVE_IN_ROOT)` and mounted on through
//! `/proc/self/fd/N`, so a symlink in the image cannot turn a mount point into a host path.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use rustix::fs::{self as rfs, Mode, OFlags};
use skiff_store::inroot::{ensure_dir_in_root, ensure_file_in_root};

use crate::container::config::{ContainerConfig, MountKind};

const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];
/// Paths hidden from the container (as Docker and podman mask them).
pub const MASKED: &[&str] = &[
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/fs/selinux",
    "/sys/dev/block",
    "/sys/devices/virtual/powercap",
];
/// Paths the container sees read-only.
pub const READ_ONLY: &[&str] = &[
    "/proc/asound",
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

type R<T> = Result<T, String>;

fn fd_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

fn mnt(
    src: Option<&str>,
    target: &str,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
    what: &str,
) -> R<()> {
    mount(src, target, fstype, flags, data).map_err(|e| format!("mounting {what}: {e}"))
}

fn dir_in(root: &OwnedFd, p: &str) -> R<OwnedFd> {
    ensure_dir_in_root(root, p)
        .map_err(|e| format!("preparing mount point /{}: {e}", p.trim_start_matches('/')))
}

fn file_in(root: &OwnedFd, p: &str) -> R<OwnedFd> {
    ensure_file_in_root(root, p)
        .map_err(|e| format!("preparing mount point /{}: {e}", p.trim_start_matches('/')))
}

/// Remounts an existing mount read-only, keeping the flags the kernel locks in a user namespace.
fn remount_ro(target: &str, what: &str) -> R<()> {
    remount_with(target, MsFlags::MS_RDONLY, &format!("{what} read-only"))
}

/// Remounts an existing bind mount with `extra` flags added to those it has (which keeps the
/// flags the kernel locks in a user namespace).
fn remount_with(target: &str, extra: MsFlags, what: &str) -> R<()> {
    let st = nix::sys::statvfs::statvfs(target).map_err(|e| format!("statvfs {what}: {e}"))?;
    let f = st.flags();
    use nix::sys::statvfs::FsFlags;
    let mut flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | extra;
    for (fs, ms) in [
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(fs) {
            flags |= ms;
        }
    }
    mnt(None, target, None, flags, None, what)
}

/// `mount_setattr(2)` flags (linux/mount.h).
const ATTR_RDONLY: u64 = 0x1;
const ATTR_NOSUID: u64 = 0x2;
const ATTR_NODEV: u64 = 0x4;
const ATTR_NOEXEC: u64 = 0x8;

/// `struct mount_attr` for `mount_setattr(2)`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Adds the `ATTR_*` flags in `set` to the mount at `target` and, with `recursive`, to every
/// mount below it (a bind's submounts too, which a remount would miss). Only adds restrictions,
/// which the kernel allows on mounts locked by a user namespace. Without `mount_setattr` (before
/// Linux 5.12) it falls back to a remount of the top mount.
fn set_attrs(target: &str, set: u64, recursive: bool, what: &str) -> R<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let path = std::ffi::CString::new(target).map_err(|_| format!("{what}: NUL in path"))?;
    let flags = if recursive { libc::AT_RECURSIVE } else { 0 };
    // SAFETY: a valid C path and a mount_attr of the size passed, both outliving the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::ENOSYS) {
        return Err(format!("restricting {what}: {e}"));
    }
    let mut extra = MsFlags::empty();
    for (a, ms) in [
        (ATTR_NOSUID, MsFlags::MS_NOSUID),
        (ATTR_NODEV, MsFlags::MS_NODEV),
        (ATTR_NOEXEC, MsFlags::MS_NOEXEC),
        (ATTR_RDONLY, MsFlags::MS_RDONLY),
    ] {
        if set & a != 0 {
            extra |= ms;
        }
    }
    remount_with(target, extra, &format!("{what} again, restricted"))
}

/// mount(2) takes its options as one page: a longer overlay option string (about 30 layers with
/// full chain-id paths) has to go through the new mount API.
const PAGE_LIMIT: usize = 4096;

/// Mounts the overlay at `target` through the new mount API, one `lowerdir+` per layer (Linux
/// 6.8+), for images whose layer list does not fit in mount(2)'s one page of options. On an
/// older kernel the error sends the caller to its copy fallback.
fn overlay_layer_by_layer(lower: &[String], ctr: &Path, target: &str, nodev: bool) -> R<()> {
    use rustix::mount::{
        fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount,
        FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags,
    };
    let fail = |what: &str, e: rustix::io::Errno| {
        format!(
            "{} layers are more than one mount option string holds, and mounting them one by one \
             (Linux 6.8+) failed at {what}: {e}",
            lower.len()
        )
    };
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).map_err(|e| fail("fsopen", e))?;
    for l in lower {
        fsconfig_set_string(&fs, "lowerdir+", l.as_str()).map_err(|e| fail("lowerdir+", e))?;
    }
    fsconfig_set_string(&fs, "upperdir", ctr.join("upper")).map_err(|e| fail("upperdir", e))?;
    fsconfig_set_string(&fs, "workdir", ctr.join("work")).map_err(|e| fail("workdir", e))?;
    fsconfig_set_flag(&fs, "userxattr").map_err(|e| fail("userxattr", e))?;
    fsconfig_create(&fs).map_err(|e| fail("create", e))?;
    let attrs = if nodev {
        MountAttrFlags::MOUNT_ATTR_NODEV
    } else {
        MountAttrFlags::empty()
    };
    let m = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs).map_err(|e| fail("fsmount", e))?;
    move_mount(
        &m,
        "",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| fail("move_mount", e))
}

/// Mounts the container's root file system at `<ctr>/rootfs` — the overlay of its image's layer
/// dirs and its `upper/` (or the private copy where overlayfs is refused) — in the current
/// mount namespace, and returns that path. Used by the container's first process and by `cp`
/// on a container that is not running.
///
/// The rootfs is `nodev` unless `--privileged`: a device node shipped in an image layer (or made
/// in `upper/`) cannot be opened, so the only devices a container can use are those skiff binds
/// into its /dev. (As root no user namespace and no device cgroup stand in the way otherwise.)
pub fn mount_rootfs(cfg: &ContainerConfig, ctr: &Path) -> R<PathBuf> {
    let nodev = !cfg.privileged;
    let rootfs = ctr.join("rootfs");
    let rootfs_s = rootfs.to_string_lossy().into_owned();
    let lower: Vec<String> = cfg
        .layers
        .iter()
        .rev()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let data = format!(
        "lowerdir={},upperdir={},workdir={},userxattr",
        lower.join(":"),
        ctr.join("upper").display(),
        ctr.join("work").display()
    );
    let forced_copy = std::env::var("SKIFF_ROOTFS").is_ok_and(|v| v == "copy");
    let overlay = if forced_copy {
        Err("SKIFF_ROOTFS=copy".to_string())
    } else if data.len() >= PAGE_LIMIT {
        overlay_layer_by_layer(&lower, ctr, &rootfs_s, nodev)
    } else {
        mnt(
            Some("overlay"),
            &rootfs_s,
            Some("overlay"),
            if nodev {
                MsFlags::MS_NODEV
            } else {
                MsFlags::empty()
            },
            Some(&data),
            "the image layers (overlayfs)",
        )
    };
    if let Err(why) = overlay {
        // No overlay here: a private copy of the image for this container, said on its stderr.
        if !forced_copy {
            eprintln!("WARNING: overlayfs refused ({why}); this container uses a copy of its image, which takes disk space and time");
        }
        let copy = crate::rootfs::copyroot::ensure(&cfg.layers, ctr)?;
        mnt(
            Some(&copy.to_string_lossy()),
            &rootfs_s,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
            "the copied rootfs",
        )?;
        if nodev {
            set_attrs(&rootfs_s, ATTR_NODEV, true, "the copied rootfs")?;
        }
    }
    Ok(rootfs)
}

/// The host's cgroup mounts that `/proc/self/mountinfo` lists: (mount point, fs type, super
/// options).
fn host_cgroup_mounts() -> Vec<(String, String, String)> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let point = pre.split(' ').nth(4)?;
            let mut post = post.split(' ');
            let fstype = post.next()?;
            let opts = post.nth(1).unwrap_or("");
            matches!(fstype, "cgroup" | "cgroup2")
                .then(|| (point.to_string(), fstype.to_string(), opts.to_string()))
        })
        .collect()
}

/// Gives the container its own cgroups at /sys/fs/cgroup as podman does: each hierarchy this
/// process belongs to (it is already in its `skiff/<id>` cgroup when limits are set) is bound
/// from its own directory, read-only, nosuid, nodev, noexec — writable only with `--privileged`.
/// cgroup v1 hierarchies sit on a tmpfs of their own (read-only too); a hybrid host's extra
/// cgroup2 at /sys/fs/cgroup/unified is not shown, as in podman. Whatever the host had mounted
/// there (which a /sys bind brings along) is covered.
fn mount_cgroups(root: &OwnedFd, privileged: bool) -> R<()> {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let own: Vec<(&str, &str)> = own
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let _id = f.next()?;
            Some((f.next()?, f.next()?))
        })
        .collect();
    let hosts = host_cgroup_mounts();
    let restrict = if privileged {
        ATTR_NOSUID | ATTR_NODEV | ATTR_NOEXEC
    } else {
        ATTR_RDONLY | ATTR_NOSUID | ATTR_NODEV | ATTR_NOEXEC
    };
    let bind = |src: &str, dest: &str| -> R<()> {
        if !Path::new(src).is_dir() {
            return Ok(());
        }
        let what = format!("cgroup {src} on /{dest}");
        let t = dir_in(root, dest)?;
        mnt(Some(src), &fd_path(&t), None, MsFlags::MS_BIND, None, &what)?;
        set_attrs(&fd_path(&dir_in(root, dest)?), restrict, false, &what)
    };
    // cgroup v2 alone: the unified hierarchy is /sys/fs/cgroup itself.
    if let Some((point, _, _)) = hosts
        .iter()
        .find(|(p, t, _)| t == "cgroup2" && p == "/sys/fs/cgroup")
    {
        if let Some((_, path)) = own.iter().find(|(c, _)| c.is_empty()) {
            return bind(&format!("{point}{path}"), "sys/fs/cgroup");
        }
        return Ok(());
    }
    let v1: Vec<(&String, &str)> = hosts
        .iter()
        .filter(|(p, t, _)| t == "cgroup" && p.starts_with("/sys/fs/cgroup/"))
        .filter_map(|(point, _, opts)| {
            let opts: Vec<&str> = opts.split(',').collect();
            own.iter()
                .find(|(c, _)| !c.is_empty() && c.split(',').all(|c| opts.contains(&c)))
                .map(|(_, path)| (point, *path))
        })
        .collect();
    if v1.is_empty() {
        return Ok(());
    }
    let cg = dir_in(root, "sys/fs/cgroup")?;
    mnt(
        Some("cgroup"),
        &fd_path(&cg),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=755,size=1024k"),
        "a tmpfs on /sys/fs/cgroup",
    )?;
    for (point, path) in v1 {
        let name = point.trim_start_matches("/sys/fs/cgroup/");
        bind(&format!("{point}{path}"), &format!("sys/fs/cgroup/{name}"))?;
    }
    if !privileged {
        set_attrs(
            &fd_path(&dir_in(root, "sys/fs/cgroup")?),
            ATTR_RDONLY,
            false,
            "/sys/fs/cgroup",
        )?;
    }
    Ok(())
}

/// Builds the rootfs at `<ctr>/rootfs` and pivots into it. Runs in the container's namespaces.
pub fn prepare(cfg: &ContainerConfig, ctr: &Path, gid5_mapped: bool) -> R<()> {
    mnt(
        None,
        "/",
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
        "/ private",
    )?;
    let rootfs = mount_rootfs(cfg, ctr)?;
    let rootfs_s = rootfs.to_string_lossy().into_owned();
    let root: OwnedFd = rfs::open(
        &rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("opening rootfs: {e}"))?;

    let nosuid_nodev_noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let p = dir_in(&root, "proc")?;
    mnt(
        Some("proc"),
        &fd_path(&p),
        Some("proc"),
        nosuid_nodev_noexec,
        None,
        "/proc",
    )?;
    let s = dir_in(&root, "sys")?;
    if mount(
        Some("sysfs"),
        fd_path(&s).as_str(),
        Some("sysfs"),
        nosuid_nodev_noexec | MsFlags::MS_RDONLY,
        None::<&str>,
    )
    .is_err()
    {
        // A user namespace that does not own the network namespace may not mount sysfs: bind it.
        mnt(
            Some("/sys"),
            &fd_path(&s),
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
            "/sys",
        )?;
        // Read-only and nodev all the way down: the host's submounts (its cgroup hierarchies,
        // say) come along with the bind and must not stay writable.
        set_attrs(
            &fd_path(&dir_in(&root, "sys")?),
            ATTR_RDONLY | ATTR_NOSUID | ATTR_NODEV | ATTR_NOEXEC,
            true,
            "/sys",
        )?;
    }
    mount_cgroups(&root, cfg.privileged)?;

    let d = dir_in(&root, "dev")?;
    mnt(
        Some("tmpfs"),
        &fd_path(&d),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
        "/dev",
    )?;
    for dev in DEVICES {
        let f = file_in(&root, &format!("dev/{dev}"))?;
        mnt(
            Some(&format!("/dev/{dev}")),
            &fd_path(&f),
            None,
            MsFlags::MS_BIND,
            None,
            &format!("/dev/{dev}"),
        )?;
    }
    let pts = dir_in(&root, "dev/pts")?;
    let pts_opts = if gid5_mapped {
        "newinstance,ptmxmode=0666,mode=0620,gid=5"
    } else {
        "newinstance,ptmxmode=0666,mode=0620"
    };
    mnt(
        Some("devpts"),
        &fd_path(&pts),
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some(pts_opts),
        "/dev/pts",
    )?;
    let shm = dir_in(&root, "dev/shm")?;
    mnt(
        Some("shm"),
        &fd_path(&shm),
        Some("tmpfs"),
        nosuid_nodev_noexec,
        Some(&format!(
            "mode=1777,size={}",
            cfg.shm_size.unwrap_or(64 << 20)
        )),
        "/dev/shm",
    )?;
    let mq = dir_in(&root, "dev/mqueue")?;
    let _ = mount(
        Some("mqueue"),
        fd_path(&mq).as_str(),
        Some("mqueue"),
        nosuid_nodev_noexec,
        None::<&str>,
    );
    let devdir = dir_in(&root, "dev")?;
    let devdir = rfs::openat(
        &devdir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("opening /dev: {e}"))?;
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("core", "/proc/kcore"),
    ] {
        rfs::symlinkat(target, &devdir, link).map_err(|e| format!("creating /dev/{link}: {e}"))?;
    }

    for name in ["hosts", "hostname", "resolv.conf"] {
        let f = file_in(&root, &format!("etc/{name}"))?;
        mnt(
            Some(&ctr.join(name).to_string_lossy()),
            &fd_path(&f),
            None,
            MsFlags::MS_BIND,
            None,
            &format!("/etc/{name}"),
        )?;
    }

    // /etc/mtab, which mount, df and friends read, as a link to /proc/mounts when the image has
    // none (podman does the same). An existing entry of any kind is left as it is.
    let etc = dir_in(&root, "etc")?;
    match rfs::symlinkat("/proc/mounts", &etc, "mtab") {
        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
        Err(e) => return Err(format!("creating /etc/mtab: {e}")),
    }
    drop(etc);

    for m in &cfg.mounts {
        match m.kind {
            MountKind::Tmpfs => {
                let t = dir_in(&root, &m.destination)?;
                mnt(
                    Some("tmpfs"),
                    &fd_path(&t),
                    Some("tmpfs"),
                    MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                    Some("mode=1777"),
                    &format!("tmpfs on {}", m.destination),
                )?;
            }
            MountKind::Bind | MountKind::Volume => {
                if m.kind == MountKind::Volume {
                    crate::rootfs::volinit::fill_from_image(&root, &m.destination, &m.source)?;
                }
                let open = |root: &OwnedFd| {
                    if m.source.is_dir() {
                        dir_in(root, &m.destination)
                    } else {
                        file_in(root, &m.destination)
                    }
                };
                let t = open(&root)?;
                let what = format!("{} on {}", m.source.display(), m.destination);
                mnt(
                    Some(&m.source.to_string_lossy()),
                    &fd_path(&t),
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None,
                    &what,
                )?;
                // nodev (unless --privileged): a device node in a bind source or volume, even one
                // made on the host, cannot be opened; read-only as asked, submounts included.
                let mut attrs = 0;
                if !cfg.privileged {
                    attrs |= ATTR_NODEV;
                }
                if m.readonly {
                    attrs |= ATTR_RDONLY;
                }
                if attrs != 0 {
                    // The old fd still names the directory under the new mount: look it up again.
                    set_attrs(&fd_path(&open(&root)?), attrs, true, &what)?;
                }
            }
        }
    }
    drop(root);
    if cfg.read_only {
        remount_ro(&rootfs_s, "the root filesystem")?;
    }

    std::env::set_current_dir(&rootfs).map_err(|e| format!("entering rootfs: {e}"))?;
    nix::unistd::pivot_root(".", ".").map_err(|e| format!("pivot_root: {e}"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| format!("detaching the old root: {e}"))?;
    std::env::set_current_dir("/").map_err(|e| format!("chdir /: {e}"))?;

    if !cfg.privileged {
        for p in MASKED {
            match std::fs::symlink_metadata(p) {
                Ok(md) if md.is_dir() => mnt(
                    Some("tmpfs"),
                    p,
                    Some("tmpfs"),
                    MsFlags::MS_RDONLY | nosuid_nodev_noexec,
                    Some("size=0"),
                    p,
                )?,
                Ok(_) => {
                    mnt(Some("/dev/null"), p, None, MsFlags::MS_BIND, None, p)?;
                    set_attrs(p, ATTR_RDONLY | ATTR_NOSUID | ATTR_NOEXEC, false, p)?;
                }
                Err(_) => {}
            }
        }
        for p in READ_ONLY {
            if Path::new(p).exists() {
                mnt(
                    Some(p),
                    p,
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None,
                    p,
                )?;
                remount_ro(p, p)?;
            }
        }
    }
    Ok(())
}

/// Brings up the loopback interface in a fresh network namespace (`--network none`).
pub fn loopback_up() -> R<()> {
    // SAFETY: a plain socket for the interface ioctls, closed below.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(format!("socket: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: ifreq is plain data; we fill the name and read/write flags through the union.
    let res = unsafe {
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        let ok = libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req) == 0 && {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            libc::ioctl(sock, libc::SIOCSIFFLAGS, &req) == 0
        };
        let err = std::io::Error::last_os_error();
        libc::close(sock);
        if ok {
            Ok(())
        } else {
            Err(format!("bringing up lo: {err}"))
        }
    };
    res
}
