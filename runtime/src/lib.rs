//! skiff's runtime: container records and state, user namespaces, the container's rootfs and
//! process start, and the per-container monitor. It never reaches into the store's files: the
//! CLI hands it the image's layer directories.
//!
//! Folders by concern: `container/` (records and lifecycle rules), `spec/` (what a container is,
//! built and checked before it exists), `monitor/`, `process/` (init, exec, terminals),
//! `userns/`, `rootfs/`, `security/`, `network/`, `files/` (cp, commit), `cgroups`, `hooks` (the lifecycle seam
//! plugins fill), and `sys/` (the ground floor).

pub mod cgroups;
pub mod container;
pub mod error;
pub mod events;
pub mod files;
pub mod hooks;
pub mod monitor;
pub mod network;
pub mod process;
pub mod rootfs;
pub mod security;
pub mod spec;
pub mod sys;
pub mod userns;

pub use container::config::{ContainerConfig, MountKind, MountSpec, ProcessSpec, State, Status};
pub use container::records::Containers;
pub use error::{Error, Result};
pub use userns::idmap::IdMap;
