//! Starting a program inside a new user namespace mapped by `newuidmap`/`newgidmap` (the setuid
//! helpers from Debian's uidmap), so a rootless user can own files as its subordinate ids.
//!
//! `unshare(CLONE_NEWUSER)` fails in a multi-threaded process, so it happens in the forked child
//! just before exec. The child then waits on a pipe until the parent has written its maps.

pub mod idmap;

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

use crate::userns::idmap::IdMap;

/// Why a namespace could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Spawning the child failed (including `unshare` refused by the kernel).
    #[error("starting {program} in a user namespace: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    /// newuidmap/newgidmap failed or is missing.
    #[error(
        "{tool} failed: {detail}; install the uidmap package and check /etc/subuid and /etc/subgid"
    )]
    Map { tool: &'static str, detail: String },
}

/// Spawns `cmd` in a new user namespace with `map` applied before it runs; inside, it is root.
pub fn spawn_mapped(mut cmd: Command, map: &IdMap) -> Result<Child, Error> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let spawn_err = |source| Error::Spawn {
        program: program.clone(),
        source,
    };
    let (ready_r, ready_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| spawn_err(e.into()))?;
    let (go_r, go_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| spawn_err(e.into()))?;
    let (ready_fd, go_fd) = (ready_w.as_raw_fd(), go_r.as_raw_fd());
    // The parent's ends: the child must not hold them, or a parent killed mid-handshake would
    // leave the child waiting forever for a byte (and holding whatever locks it inherited).
    let (parent_ready, parent_go) = (ready_r.as_raw_fd(), go_w.as_raw_fd());
    // SAFETY: the closure runs in the forked child before exec and only makes async-signal-safe
    // system calls (close, unshare, getpid, write, read), allocating nothing.
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
        Ok(()) => write_maps(i32::from_ne_bytes(pid), map),
        Err(e) => Err(Error::Spawn {
            program: program.clone(),
            source: e,
        }),
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

/// Writes `map` for process `pid` with newuidmap and newgidmap (the process must be in a new,
/// unmapped user namespace owned by us).
pub fn write_maps(pid: i32, map: &IdMap) -> Result<(), Error> {
    // The two helpers are independent: run them side by side (each is a setuid exec).
    let uid = start_map_tool("newuidmap", pid, &IdMap::args(&map.uids))?;
    let gid = start_map_tool("newgidmap", pid, &IdMap::args(&map.gids));
    let uid_done = finish_map_tool("newuidmap", uid);
    let gid_done = gid.and_then(|c| finish_map_tool("newgidmap", c));
    uid_done.and(gid_done)
}

fn start_map_tool(
    tool: &'static str,
    pid: i32,
    args: &[String],
) -> Result<std::process::Child, Error> {
    Command::new(tool)
        .arg(pid.to_string())
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Error::Map {
            tool,
            detail: e.to_string(),
        })
}

fn finish_map_tool(tool: &'static str, child: std::process::Child) -> Result<(), Error> {
    let out = child.wait_with_output().map_err(|e| Error::Map {
        tool,
        detail: e.to_string(),
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Map {
            tool,
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}
