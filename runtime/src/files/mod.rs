//! Moving files into and out of containers: `cp` both ways and a container's changes as a layer
//! for `commit`.

pub mod commit;
pub mod copy;

use std::path::PathBuf;

/// Why a copy into or out of a container failed. Kept here, below `copy`, so the crate's `Error`
/// can hold it without an import circle.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// `cp` on a running container that is not running (any more).
    #[error("container {0} is not running: skiff cp works on running containers; start it first (skiff start {0})")]
    NotRunning(String),
    /// What the copy inside the container reported.
    #[error("{0}")]
    Inside(String),
    /// The copy inside the container ended without a word.
    #[error("the copy inside the container failed (status {0:?})")]
    ChildFailed(Option<i32>),
    /// `cp CTR:SRC DEST` into a directory that does not exist.
    #[error("destination directory {} does not exist: create it first", .0.display())]
    NoDestDir(PathBuf),
    /// A destination with no name to copy to.
    #[error("bad destination {}", .0.display())]
    BadDest(PathBuf),
    /// The host source cannot be looked at.
    #[error("{}: {source}", path.display())]
    Source {
        /// The source.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The host source cannot be read into the archive.
    #[error("reading {}: {source}", path.display())]
    ReadSource {
        /// The source.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `cp - CTR:DIR` was given something else than a tar.
    #[error("stdin is not a tar archive: {0}")]
    NotTar(std::io::Error),
    /// The container started while a copy for a stopped one was being set up.
    #[error("container {0} started meanwhile: run the copy again")]
    StartedMeanwhile(String),
    /// The container's root file system could not be mounted for the copy.
    #[error("{0}")]
    Rootfs(String),
}
