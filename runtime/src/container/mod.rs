//! Containers as records on disk and the rules of their lifecycle: the config and state files,
//! names and ids, truth of state (start, stop, kill, wait, rm, rename, top), volumes in use, the
//! log format and its readers (tail, follow, since/until), `stats`, the `ps` filters, the prune
//! rules and the verbs as users ask for them.

pub mod config;
pub mod filters;
pub mod lifecycle;
pub mod logs;
pub mod names;
pub mod prune;
pub mod records;
pub mod stats;
pub mod times;
pub mod verbs;
pub mod volumes;

/// A container in the wrong state for what was asked, with the command that would fix it.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// It has no running process.
    #[error("container {0} is not running: start it first (skiff start {0})")]
    NotRunning(String),
    /// Its processes are stopped by `pause`.
    #[error("container {0} is paused: unpause it first (skiff unpause {0})")]
    Paused(String),
}
