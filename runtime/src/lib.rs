//! skiff's runtime: container records and state, user namespaces, the container's rootfs and
//! process start, and the per-container monitor. It never reaches into the store's files: the
//! CLI hands it the image's layer directories.

pub mod cgroups;
pub mod commit;
pub mod config;
pub mod console;
pub mod containers;
pub mod copy;
pub mod copyroot;
pub mod error;
pub mod exec;
pub mod idmap;
pub mod init;
pub mod lifecycle;
pub mod logs;
pub mod monitor;
pub mod mounts;
pub mod names;
pub mod network;
pub mod passwd;
pub mod procfs;
pub mod residency;
pub mod security;
pub mod spec;
pub mod stats;
pub mod tty;
pub mod userns;
pub mod volumes;

pub use config::{ContainerConfig, MountKind, MountSpec, ProcessSpec, State, Status};
pub use containers::Containers;
pub use error::{Error, Result};
pub use idmap::IdMap;
