//! Who skiff runs as, decided once: root, a user with a subordinate id range (mapped through
//! newuidmap/newgidmap), or a user alone (only itself mapped, as root of its namespaces). Every
//! place that needs to know — unpacking, containers' maps, helpers, `-u` checks, `info` — asks
//! this value instead of looking again.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

use super::idmap::IdMap;
use super::Error;

/// How this process's user maps into the user namespaces it makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// Real root: no user namespace is needed, files keep their owners as they are.
    Root,
    /// A user with a subuid/subgid range: itself as 0, the range as 1..N.
    Mapped(IdMap),
    /// A user without a range: only itself, as 0; setgroups is denied there.
    Alone {
        /// The user's uid.
        uid: u32,
        /// The user's gid.
        gid: u32,
    },
}

impl Identity {
    /// The identity of the calling process.
    pub fn current() -> Identity {
        if nix::unistd::geteuid().is_root() {
            return Identity::Root;
        }
        match IdMap::for_current_user() {
            Some(map) => Identity::Mapped(map),
            None => Identity::Alone {
                uid: nix::unistd::getuid().as_raw(),
                gid: nix::unistd::getgid().as_raw(),
            },
        }
    }

    /// The user's own uid on the host.
    pub fn uid(&self) -> u32 {
        match self {
            Identity::Root => 0,
            Identity::Mapped(m) => m.uids.first().map(|r| r.outside).unwrap_or(0),
            Identity::Alone { uid, .. } => *uid,
        }
    }

    /// Real root.
    pub fn is_root(&self) -> bool {
        matches!(self, Identity::Root)
    }

    /// The user's id map, when it has a subordinate range.
    pub fn map(&self) -> Option<&IdMap> {
        match self {
            Identity::Mapped(m) => Some(m),
            _ => None,
        }
    }

    /// Whether ids other than root exist inside this user's namespaces (`-u 1000` can work).
    pub fn maps_other_ids(&self) -> bool {
        !matches!(self, Identity::Alone { .. })
    }

    /// Whether gid 5 (tty, devpts' default group) exists inside this user's namespaces.
    pub fn maps_gid5(&self) -> bool {
        match self {
            Identity::Root => true,
            Identity::Mapped(m) => m
                .gids
                .iter()
                .any(|r| r.inside <= 5 && 5 < r.inside.saturating_add(r.count)),
            Identity::Alone { .. } => false,
        }
    }

    /// Writes the id maps of process `pid`, which has just made a new, unmapped user namespace
    /// owned by this user: the range through newuidmap/newgidmap, or the user alone directly
    /// (setgroups denied first, as the kernel requires). Nothing to do for root.
    pub fn write_maps(&self, pid: i32) -> Result<(), Error> {
        match self {
            Identity::Root => Ok(()),
            Identity::Mapped(map) => super::write_maps(pid, map),
            Identity::Alone { uid, gid } => {
                for (file, text) in [
                    ("setgroups", "deny".to_string()),
                    ("uid_map", format!("0 {uid} 1")),
                    ("gid_map", format!("0 {gid} 1")),
                ] {
                    std::fs::write(format!("/proc/{pid}/{file}"), text).map_err(|e| {
                        Error::Map {
                            tool: "the user-alone id map",
                            detail: format!("{file}: {e}"),
                        }
                    })?;
                }
                Ok(())
            }
        }
    }

    /// Spawns `cmd` as root of this user's mapping (directly when root), for helpers that must
    /// own the files they touch: unpacking, removal, `cp`, `commit`, `unshare`. It runs only once
    /// its maps are written.
    pub fn spawn(&self, mut cmd: Command) -> Result<Child, Error> {
        let program = cmd.get_program().to_string_lossy().into_owned();
        let spawn_err = |source| Error::Spawn {
            program: program.clone(),
            source,
        };
        if self.is_root() {
            return cmd.spawn().map_err(spawn_err);
        }
        let (ready_r, ready_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| spawn_err(e.into()))?;
        let (go_r, go_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| spawn_err(e.into()))?;
        let (ready_fd, go_fd) = (ready_w.as_raw_fd(), go_r.as_raw_fd());
        // The parent's ends: the child must not hold them, or a parent killed mid-handshake would
        // leave the child waiting forever for a byte (and holding whatever locks it inherited).
        let (parent_ready, parent_go) = (ready_r.as_raw_fd(), go_w.as_raw_fd());
        // SAFETY: the closure runs in the forked child before exec and only makes
        // async-signal-safe system calls (close, unshare, getpid, write, read), allocating nothing.
        unsafe {
            cmd.pre_exec(move || {
                libc::close(parent_ready);
                libc::close(parent_go);
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER)
                    .map_err(std::io::Error::from)?;
                let pid = libc::getpid().to_ne_bytes();
                if libc::write(ready_fd, pid.as_ptr().cast(), pid.len()) != pid.len() as isize {
                    return Err(std::io::Error::last_os_error());
                }
                let mut ok = [0u8; 1];
                if libc::read(go_fd, ok.as_mut_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::other("id mapping was not set up"));
                }
                Ok(())
            });
        }
        // spawn() returns only once the child has exec'd, i.e. after the handshake: run it aside.
        let spawner = std::thread::spawn(move || {
            let r = cmd.spawn();
            drop(ready_w);
            drop(go_r);
            r
        });
        let mut ready = std::fs::File::from(ready_r);
        let mut pid = [0u8; 4];
        let mapped = match ready.read_exact(&mut pid) {
            Ok(()) => self.write_maps(i32::from_ne_bytes(pid)),
            Err(e) => Err(spawn_err(e)),
        };
        let mut go = std::fs::File::from(go_w);
        if mapped.is_ok() {
            let _ = go.write_all(&[1]);
        }
        drop(go);
        let child = spawner
            .join()
            .map_err(|_| spawn_err(std::io::Error::other("spawner thread panicked")))?;
        mapped?;
        child.map_err(spawn_err)
    }
}

#[cfg(test)]
mod tests {
    use super::super::idmap::Range;
    use super::*;

    #[test]
    fn gid5_and_other_ids_follow_the_identity() {
        let map = IdMap {
            uids: vec![Range {
                inside: 0,
                outside: 1000,
                count: 1,
            }],
            gids: vec![
                Range {
                    inside: 0,
                    outside: 1000,
                    count: 1,
                },
                Range {
                    inside: 1,
                    outside: 100_000,
                    count: 65536,
                },
            ],
        };
        assert!(Identity::Mapped(map).maps_gid5());
        assert!(Identity::Root.maps_gid5() && Identity::Root.maps_other_ids());
        let alone = Identity::Alone {
            uid: 1000,
            gid: 1000,
        };
        assert!(!alone.maps_gid5() && !alone.maps_other_ids() && alone.map().is_none());
    }
}
