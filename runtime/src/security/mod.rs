//! Hardening applied to every container unless lifted: a bounded capability set (podman's default),
//! `no_new_privs` (when asked), and a seccomp filter denying what Docker's default profile denies.

use crate::error::{Error, Result};
use crate::spec::error::SpecError;

const CAPS: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// podman's default capability set.
pub const DEFAULT_CAPS: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

fn cap_number(name: &str) -> Result<u32> {
    let n = name.trim().to_ascii_uppercase();
    let n = n.strip_prefix("CAP_").unwrap_or(&n);
    CAPS.iter()
        .position(|c| *c == n)
        .map(|i| i as u32)
        .ok_or_else(|| {
            Error::from(SpecError::Flag {
                flag: "--cap-add/--cap-drop",
                value: name.to_string(),
                fix: "an unknown capability: use names like NET_ADMIN or CAP_NET_ADMIN".into(),
            })
        })
}

/// The highest capability this kernel knows.
pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
        .min(63)
}

/// The capability mask for a container: everything for `--privileged`, else the default set with
/// `--cap-add`/`--cap-drop` applied (`ALL` works in both).
pub fn capability_mask(add: &[String], drop: &[String], privileged: bool) -> Result<u64> {
    let all = (0..=last_cap()).fold(0u64, |m, c| m | (1 << c));
    if privileged {
        return Ok(all);
    }
    let is_all = |c: &String| c.eq_ignore_ascii_case("ALL");
    // As Docker: ALL applies first (add ALL, or drop ALL), then the named capabilities.
    let mut mask = if add.iter().any(is_all) {
        all
    } else if drop.iter().any(is_all) {
        0
    } else {
        DEFAULT_CAPS
            .iter()
            .map(|c| cap_number(c))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .fold(0u64, |m, c| m | (1 << c))
    };
    for a in add.iter().filter(|c| !is_all(c)) {
        mask |= 1 << cap_number(a)?;
    }
    for d in drop.iter().filter(|c| !is_all(c)) {
        mask &= !(1u64 << cap_number(d)?);
    }
    Ok(mask & all)
}

/// Drops every capability outside `mask` from the bounding set (before changing uid).
pub fn drop_bounding(mask: u64) -> std::io::Result<()> {
    for c in 0..=last_cap() {
        if mask & (1 << c) == 0 {
            // SAFETY: plain prctl with integer arguments.
            if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, c as libc::c_ulong, 0, 0, 0) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The calling thread's permitted capabilities.
fn permitted() -> std::io::Result<u64> {
    let hdr = CapHeader {
        version: 0x2008_0522,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget with a v3 header fills two data structs.
    if unsafe {
        libc::syscall(
            libc::SYS_capget,
            &hdr as *const CapHeader,
            data.as_mut_ptr(),
        )
    } != 0
    {
        return Err(std::io::Error::last_os_error());
    }
    Ok(u64::from(data[0].permitted) | (u64::from(data[1].permitted) << 32))
}

/// Sets effective and permitted capabilities to `mask` (after the uid change), limited to what
/// this process holds: `--privileged` cannot grant more than skiff's own. The inheritable set is
/// always empty (as podman and Docker since CVE-2022-27649 / CVE-2022-24769): inheritable
/// capabilities survive a change to another uid, and a file with `+ei` capabilities would hand
/// them back to that user at exec.
pub fn set_caps(mask: u64) -> std::io::Result<()> {
    let mask = mask & permitted()?;
    let hdr = CapHeader {
        version: 0x2008_0522,
        pid: 0,
    };
    let lo = mask as u32;
    let hi = (mask >> 32) as u32;
    let data = [
        CapData {
            effective: lo,
            permitted: lo,
            inheritable: 0,
        },
        CapData {
            effective: hi,
            permitted: hi,
            inheritable: 0,
        },
    ];
    // SAFETY: capset with a v3 header and two data structs, as the ABI requires.
    if unsafe { libc::syscall(libc::SYS_capset, &hdr as *const CapHeader, data.as_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Sets `no_new_privs`: setuid binaries and file capabilities cannot raise privileges.
pub fn no_new_privs() -> std::io::Result<()> {
    // SAFETY: plain prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// CAP_SYS_ADMIN's bit in a capability mask.
pub const CAP_SYS_ADMIN: u32 = 21;
const CAP_DAC_READ_SEARCH: u32 = 2;
const CAP_SYS_MODULE: u32 = 16;
#[cfg(target_arch = "x86_64")]
const CAP_SYS_RAWIO: u32 = 17;
const CAP_SYS_PTRACE: u32 = 19;
const CAP_SYS_PACCT: u32 = 20;
const CAP_SYS_BOOT: u32 = 22;
const CAP_SYS_TIME: u32 = 25;
const CAP_SYS_TTY_CONFIG: u32 = 26;
const CAP_SYSLOG: u32 = 34;

/// System calls that change namespaces or mounts: allowed, as in Docker's profile, only to a
/// container that holds CAP_SYS_ADMIN.
const ADMIN_ONLY: [libc::c_long; 12] = [
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_fsopen,
    libc::SYS_fsmount,
    libc::SYS_fsconfig,
    libc::SYS_fspick,
    libc::SYS_move_mount,
    libc::SYS_open_tree,
    libc::SYS_mount_setattr,
    libc::SYS_unshare,
    libc::SYS_setns,
];

/// The `clone` flags that make new namespaces (CLONE_NEWTIME shares its bit with the exit signal
/// in `clone`'s flags, and can only be asked for through `unshare` or `clone3`).
const CLONE_NAMESPACES: u32 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u32;

/// System calls the default filter always answers with EPERM: kexec, swap, the kernel keyring,
/// userfaultfd, file handles, io_uring, NUMA page moves, vmsplice, obsolete calls.
fn always_denied() -> Vec<libc::c_long> {
    let mut v = vec![
        libc::SYS_kexec_load,
        libc::SYS_kexec_file_load,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_userfaultfd,
        libc::SYS_name_to_handle_at,
        libc::SYS_quotactl_fd,
        libc::SYS_migrate_pages,
        libc::SYS_move_pages,
        libc::SYS_vmsplice,
        // io_uring runs system calls from kernel workers, out of this filter's sight (Docker
        // and podman deny it too).
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
    ];
    #[cfg(target_arch = "x86_64")]
    v.extend([
        libc::SYS_uselib,
        libc::SYS_nfsservctl,
        libc::SYS_ustat,
        libc::SYS_sysfs,
    ]);
    v
}

/// System calls allowed only to a container whose capability mask holds the capability the
/// kernel checks for them (podman's and Docker's rule): `--cap-add` opens them with it.
fn cap_gated() -> Vec<(u32, Vec<libc::c_long>)> {
    let mut v = vec![
        (
            CAP_SYS_ADMIN,
            [
                &ADMIN_ONLY[..],
                &[
                    libc::SYS_bpf,
                    libc::SYS_perf_event_open,
                    libc::SYS_quotactl,
                    libc::SYS_lookup_dcookie,
                    libc::SYS_fanotify_init,
                ],
            ]
            .concat(),
        ),
        (
            CAP_SYS_MODULE,
            vec![
                libc::SYS_init_module,
                libc::SYS_finit_module,
                libc::SYS_delete_module,
            ],
        ),
        (CAP_SYS_BOOT, vec![libc::SYS_reboot]),
        (CAP_SYS_PACCT, vec![libc::SYS_acct]),
        (
            CAP_SYS_TIME,
            vec![
                libc::SYS_settimeofday,
                libc::SYS_clock_settime,
                libc::SYS_clock_adjtime,
            ],
        ),
        (CAP_SYSLOG, vec![libc::SYS_syslog]),
        (CAP_SYS_TTY_CONFIG, vec![libc::SYS_vhangup]),
        (CAP_DAC_READ_SEARCH, vec![libc::SYS_open_by_handle_at]),
        (
            CAP_SYS_PTRACE,
            vec![libc::SYS_kcmp, libc::SYS_process_madvise],
        ),
    ];
    #[cfg(target_arch = "x86_64")]
    v.push((CAP_SYS_RAWIO, vec![libc::SYS_iopl, libc::SYS_ioperm]));
    v
}

/// Everything the filter answers with EPERM for a container with capability mask `caps`.
fn denied(caps: u64) -> Vec<libc::c_long> {
    let mut v = always_denied();
    for (cap, calls) in cap_gated() {
        if caps & (1 << cap) == 0 {
            v.extend(calls);
        }
    }
    v
}

/// `personality` arguments allowed (podman's and Docker's list): PER_LINUX, PER_LINUX32,
/// UNAME26, PER_LINUX32|UNAME26, and 0xffffffff (the query).
const PERSONALITIES: [u32; 5] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7;

/// Installs the default seccomp filter (needs `no_new_privs` or CAP_SYS_ADMIN first) for a container with
/// capability mask `caps`. Without CAP_SYS_ADMIN it also refuses mounts, `unshare`, `setns` and
/// `clone` with namespace flags (EPERM), and answers `clone3`, whose flags sit in memory a
/// filter cannot read, with ENOSYS so that libc falls back to `clone` (Docker's rule). Other
/// capabilities open the calls they guard (`cap_gated`); `personality` takes only the personas
/// podman's profile allows.
pub fn install_seccomp(caps: u64) -> std::io::Result<()> {
    let sys_admin = caps & (1 << CAP_SYS_ADMIN) != 0;
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let stmt = |code, k| libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let jump = |code, k, jt, jf| libc::sock_filter { code, jt, jf, k };
    let eperm = libc::SECCOMP_RET_ERRNO | (libc::EPERM as u32);
    let mut prog = vec![
        stmt(LD_W_ABS, 4), // arch
        jump(JEQ_K, AUDIT_ARCH, 1, 0),
        stmt(RET_K, libc::SECCOMP_RET_KILL_PROCESS),
        stmt(LD_W_ABS, 0), // syscall number
    ];
    #[cfg(target_arch = "x86_64")]
    {
        // The x32 ABI shares the arch value: refuse it wholesale rather than filter it twice.
        prog.push(jump(JSET_K, 0x4000_0000, 0, 1));
        prog.push(stmt(RET_K, eperm));
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = JSET_K;
    for nr in denied(caps) {
        prog.push(jump(JEQ_K, nr as u32, 0, 1));
        prog.push(stmt(RET_K, eperm));
    }
    // personality: its argument (the low half of args[0], at offset 16) must be one of the
    // allowed personas. Before the clone check, which also loads an argument.
    let n = PERSONALITIES.len() as u8;
    prog.push(jump(JEQ_K, libc::SYS_personality as u32, 0, n + 3));
    prog.push(stmt(LD_W_ABS, 16));
    for (i, p) in PERSONALITIES.iter().enumerate() {
        prog.push(jump(JEQ_K, *p, n - i as u8, 0));
    }
    prog.push(stmt(RET_K, eperm));
    prog.push(stmt(RET_K, libc::SECCOMP_RET_ALLOW));
    if !sys_admin {
        let enosys = libc::SECCOMP_RET_ERRNO | (libc::ENOSYS as u32);
        prog.push(jump(JEQ_K, libc::SYS_clone3 as u32, 0, 1));
        prog.push(stmt(RET_K, enosys));
        // clone: look at its flags (the low half of args[0], at offset 16 of seccomp_data).
        prog.push(jump(JEQ_K, libc::SYS_clone as u32, 0, 3));
        prog.push(stmt(LD_W_ABS, 16));
        prog.push(jump(JSET_K, CLONE_NAMESPACES, 0, 1));
        prog.push(stmt(RET_K, eperm));
    }
    prog.push(stmt(RET_K, libc::SECCOMP_RET_ALLOW));
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_mut_ptr(),
    };
    // SAFETY: fprog points at a valid program that outlives the call.
    if unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &fprog as *const libc::sock_fprog,
        )
    } != 0
    {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_follow_add_drop_and_privileged() {
        let d = capability_mask(&[], &[], false).unwrap();
        assert_eq!(d.count_ones(), 11);
        assert!(d & (1 << 21) == 0, "no SYS_ADMIN by default");
        let m = capability_mask(&["net_admin".into()], &["CAP_CHOWN".into()], false).unwrap();
        assert!(m & (1 << 12) != 0 && m & 1 == 0);
        assert_eq!(capability_mask(&[], &["ALL".into()], false).unwrap(), 0);
        assert_eq!(
            capability_mask(&["NET_ADMIN".into()], &["ALL".into()], false).unwrap(),
            1 << 12,
            "drop ALL, then add"
        );
        assert_eq!(
            capability_mask(&["ALL".into()], &["SYS_ADMIN".into()], false)
                .unwrap()
                .count_ones(),
            last_cap()
        );
        assert_eq!(
            capability_mask(&[], &[], true).unwrap().count_ones(),
            last_cap() + 1
        );
        assert!(capability_mask(&["BOGUS".into()], &[], false)
            .unwrap_err()
            .to_string()
            .contains("unknown capability"));
    }

    /// Runs `probe` in a forked child under the filter (it cannot be removed once installed) and
    /// returns the child's exit code: the number of the first failed check, or 0.
    fn under_filter(caps: u64, probe: fn() -> i32) -> i32 {
        // SAFETY: the child only makes system calls and exits.
        match unsafe { libc::fork() } {
            0 => {
                let code = if no_new_privs().is_ok() && install_seccomp(caps).is_ok() {
                    probe()
                } else {
                    99
                };
                // SAFETY: exits the child at once.
                unsafe { libc::_exit(code) }
            }
            pid => {
                let mut st = 0;
                // SAFETY: waits for our own child.
                unsafe { libc::waitpid(pid, &mut st, 0) };
                assert!(libc::WIFEXITED(st), "status {st}");
                libc::WEXITSTATUS(st)
            }
        }
    }

    /// The errno of a raw system call that is expected to fail (0 if it did not).
    fn errno_of(r: libc::c_long) -> i32 {
        if r == -1 {
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
        } else {
            0
        }
    }

    /// A fork through the raw clone system call, as libc's fork does; 0 when the child ran.
    fn plain_clone_works() -> bool {
        // SAFETY: a fork-like clone (no CLONE_VM): the child exits at once, the parent reaps it.
        let pid = unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD, 0, 0, 0, 0) };
        if pid == 0 {
            // SAFETY: leaving the child at once.
            unsafe { libc::_exit(0) }
        }
        let mut st = 0;
        // SAFETY: waits for our own child.
        pid > 0 && unsafe { libc::waitpid(pid as i32, &mut st, 0) } == pid as i32
    }

    #[test]
    fn the_filter_denies_in_a_child_and_allows_the_rest() {
        let code = under_filter(capability_mask(&[], &[], false).unwrap(), || {
            // SAFETY (all below): raw system calls with harmless arguments.
            if errno_of(unsafe { libc::syscall(libc::SYS_keyctl, 0, 0, 0, 0, 0) }) != libc::EPERM {
                return 1;
            }
            if unsafe { libc::getpid() } <= 0 {
                return 2;
            }
            let newuser = (libc::CLONE_NEWUSER | libc::SIGCHLD) as libc::c_long;
            if errno_of(unsafe { libc::syscall(libc::SYS_clone, newuser, 0, 0, 0, 0) })
                != libc::EPERM
            {
                return 3;
            }
            if errno_of(unsafe { libc::syscall(libc::SYS_clone3, 0, 0) }) != libc::ENOSYS {
                return 4;
            }
            if errno_of(unsafe { libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER) })
                != libc::EPERM
            {
                return 5;
            }
            if !plain_clone_works() {
                return 6;
            }
            for nr in [
                libc::SYS_io_uring_setup,
                libc::SYS_io_uring_enter,
                libc::SYS_io_uring_register,
            ] {
                if errno_of(unsafe { libc::syscall(nr, 0, 0, 0, 0, 0, 0) }) != libc::EPERM {
                    return 8;
                }
            }
            // The rest of the new mount API is refused too.
            for nr in [libc::SYS_fspick, libc::SYS_mount_setattr] {
                if errno_of(unsafe { libc::syscall(nr, -1, 0, 0, 0, 0) }) != libc::EPERM {
                    return 12;
                }
            }
            // The query and PER_LINUX pass; another persona (PER_BSD) does not.
            if unsafe { libc::syscall(libc::SYS_personality, 0xffff_ffffu32 as libc::c_long) } < 0
                || unsafe { libc::syscall(libc::SYS_personality, 0) } < 0
            {
                return 9;
            }
            if errno_of(unsafe { libc::syscall(libc::SYS_personality, 6) }) != libc::EPERM {
                return 10;
            }
            // Calls podman's profile denies without the capability they need.
            let me = unsafe { libc::getpid() } as libc::c_long;
            if errno_of(unsafe { libc::syscall(libc::SYS_kcmp, me, me, 0, 0, 0) }) != libc::EPERM
                || errno_of(unsafe { libc::syscall(libc::SYS_migrate_pages, 0, 0, 0, 0) })
                    != libc::EPERM
                || errno_of(unsafe { libc::syscall(libc::SYS_vmsplice, -1, 0, 0, 0) })
                    != libc::EPERM
            {
                return 11;
            }
            // posix_spawn (glibc tries clone3 first, then clone) still works. Raw calls only:
            // this child of a threaded test process must not allocate.
            let argv = [c"true".as_ptr() as *mut libc::c_char, std::ptr::null_mut()];
            let mut pid = 0;
            // SAFETY: a valid path and a null-terminated argv of static strings; no env.
            let rc = unsafe {
                libc::posix_spawn(
                    &mut pid,
                    c"/bin/true".as_ptr(),
                    std::ptr::null(),
                    std::ptr::null(),
                    argv.as_ptr(),
                    [std::ptr::null_mut()].as_ptr(),
                )
            };
            let mut st = 0;
            // SAFETY: waits for our own child.
            if rc != 0 || unsafe { libc::waitpid(pid, &mut st, 0) } != pid || st != 0 {
                return 7;
            }
            0
        });
        assert_eq!(code, 0, "check {code} failed");
    }

    #[test]
    fn a_capability_opens_the_calls_it_guards() {
        let code = under_filter(1 << CAP_SYS_PTRACE, || {
            // SAFETY: kcmp of this process's fd table with itself: harmless, answers 0.
            let me = unsafe { libc::getpid() } as libc::c_long;
            if unsafe { libc::syscall(libc::SYS_kcmp, me, me, 0, 0, 0) } != 0 {
                return 1;
            }
            // SAFETY: still a harmless raw call, refused by the filter.
            if errno_of(unsafe { libc::syscall(libc::SYS_keyctl, 0, 0, 0, 0, 0) }) != libc::EPERM {
                return 2;
            }
            0
        });
        assert_eq!(code, 0, "check {code} failed");
    }

    #[test]
    fn cap_sys_admin_keeps_namespaces_and_mounts_open() {
        let code = under_filter(1 << CAP_SYS_ADMIN, || {
            // SAFETY: clone3 with a null argument: the kernel itself refuses it (EFAULT/EINVAL),
            // not the filter.
            let e = errno_of(unsafe { libc::syscall(libc::SYS_clone3, 0, 0) });
            if e == libc::ENOSYS || e == libc::EPERM {
                return 1;
            }
            // SAFETY: still a harmless raw call.
            if errno_of(unsafe { libc::syscall(libc::SYS_keyctl, 0, 0, 0, 0, 0) }) != libc::EPERM {
                return 2;
            }
            0
        });
        assert_eq!(code, 0, "check {code} failed");
    }
}
