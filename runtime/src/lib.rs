//! skiff's runtime: user namespaces and id mappings now; rootfs, process start, the monitor and
//! state files arrive with the `run` issue. It never reaches into the store's files: callers hand
//! it paths.

pub mod idmap;
pub mod userns;

pub use idmap::IdMap;
