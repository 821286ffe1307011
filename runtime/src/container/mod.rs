//! Containers as records on disk and the rules of their lifecycle: the config and state files,
//! names and ids, truth of state (start, stop, kill, wait, rm, rename, top), volumes in use, the
//! log format and its readers, and `stats`.

pub mod config;
pub mod lifecycle;
pub mod logs;
pub mod names;
pub mod records;
pub mod stats;
pub mod volumes;
