//! Processes inside a container: its first process (`init`), processes that join it (`exec`),
//! and the terminals made inside it and relayed to the user (`console`). Their own errors
//! (`JoinError`) are here, below everything that imports them.

pub mod console;
pub mod exec;
pub mod init;

/// Why `exec` could not join a container.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// Nothing to run.
    #[error("no command given to exec: name one after the container")]
    NoCommand,
    /// The record says running but holds no pid.
    #[error("container {0} has no recorded pid: it may be exiting; look with skiff ps -a")]
    NoPid(String),
    /// skiff could not make the sealed copy of itself it joins from.
    #[error("making a sealed copy of skiff to join the container: {0} (exec runs from a memfd; it needs vm.memfd_noexec below 2)")]
    SealedCopy(std::io::Error),
    /// With -t, the command's pty did not come back from inside the container.
    #[error("the command's terminal did not arrive")]
    TerminalLost,
}
