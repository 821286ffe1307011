//! Containers as records on disk and the rules of their lifecycle: the config and state files,
//! names and ids, truth of state (start, stop, kill, wait, rm, rename, top), volumes in use, the
//! log format and its readers (tail, follow, since/until), `stats`, the `ps` filters, the prune
//! rules and the verbs as users ask for them.

pub mod config;
pub mod connect;
pub mod filters;
pub mod health;
pub mod lifecycle;
pub mod logs;
pub mod names;
pub mod prune;
pub mod records;
pub mod stats;
pub mod times;
pub mod top;
pub mod update;
pub mod verbs;
pub mod volumes;

/// A container in the wrong state for what was asked, with the command that would fix it.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// It has no running process.
    #[error("container {0} is not running: start it first (skiff start {0})")]
    NotRunning(String),
    /// `attach` to a container that is not running (Docker's words, and the fix).
    #[error("You cannot attach to a stopped container, start it first (skiff start {0})")]
    AttachStopped(String),
    /// Its processes are stopped by `pause`.
    #[error("container {0} is paused: unpause it first (skiff unpause {0})")]
    Paused(String),
    /// `pause` of a paused container.
    #[error("container {0} is already paused")]
    AlreadyPaused(String),
    /// `unpause` of a container that is not paused.
    #[error("container {0} is not paused")]
    NotPaused(String),
    /// Running by its state, but no pid recorded.
    #[error("container {0} has no pid: it may be exiting; look with skiff ps -a")]
    NoPid(String),
    /// A kill that did not end it.
    #[error("container {0} did not die")]
    DidNotDie(String),
    /// A monitor that did not go when killed.
    #[error("the monitor of container {0} did not die")]
    MonitorDidNotDie(String),
    /// Its record went away while it was being read.
    #[error("container {0} vanished while it was being read: run the command again")]
    Vanished(String),
}

/// A container or volume name that cannot be used.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Not a container name Docker would take.
    #[error("invalid container name \"{0}\": use letters, digits, '_', '.' and '-', starting with a letter or digit")]
    Container(String),
    /// Not a volume name.
    #[error("invalid volume name \"{0}\": use letters, digits, '_', '.' and '-'")]
    Volume(String),
}

/// A volume that cannot be used as asked.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum VolumeError {
    /// No volume by that name.
    #[error("no such volume: {0} (see skiff volume ls)")]
    NoSuch(String),
    /// Removing a volume a container record names.
    #[error("volume {name} is in use by container {users}: remove the container first (skiff rm {first})")]
    InUse {
        /// The volume.
        name: String,
        /// The containers naming it.
        users: String,
        /// The first of them.
        first: String,
    },
}
