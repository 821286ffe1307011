//! User namespaces: who skiff runs as (`identity`), the user's subordinate ranges (`idmap`), and
//! writing a new namespace's maps with `newuidmap`/`newgidmap` (the setuid helpers from Debian's
//! uidmap), so a rootless user can own files as its subordinate ids.
//!
//! `unshare(CLONE_NEWUSER)` fails in a multi-threaded process, so it happens in a forked child
//! just before exec (`Identity::spawn`); the child waits on a pipe until its maps are written.

pub mod helpers;
pub mod identity;
pub mod idmap;

use std::process::Command;

use crate::userns::idmap::IdMap;

/// The result of a user-namespace operation.
pub type Result<T> = std::result::Result<T, Error>;

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

/// Writes `map` for process `pid` with newuidmap and newgidmap (the process must be in a new,
/// unmapped user namespace owned by us).
pub fn write_maps(pid: i32, map: &IdMap) -> Result<()> {
    // The two helpers are independent: run them side by side (each is a setuid exec).
    let uid = start_map_tool("newuidmap", pid, &IdMap::args(&map.uids))?;
    let gid = start_map_tool("newgidmap", pid, &IdMap::args(&map.gids));
    let uid_done = finish_map_tool("newuidmap", uid);
    let gid_done = gid.and_then(|c| finish_map_tool("newgidmap", c));
    uid_done.and(gid_done)
}

fn start_map_tool(tool: &'static str, pid: i32, args: &[String]) -> Result<std::process::Child> {
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

fn finish_map_tool(tool: &'static str, child: std::process::Child) -> Result<()> {
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
