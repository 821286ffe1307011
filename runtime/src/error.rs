//! The runtime's errors, each naming the container or path involved and, where there is one, the fix.

/// Runtime failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `--name` already taken.
    #[error("the container name \"{0}\" is already in use: remove that container (skiff rm {0}) or choose another --name")]
    NameInUse(String),
    /// `rm` of a running container without `-f`.
    #[error("container {0} is running: stop it first (skiff stop {0}) or remove it with -f")]
    Running(String),
    /// `exec` could not run the command: the exit code (125, 126, 127) and why.
    #[error("{1}")]
    Exec(i32, String),
    /// No container by that name or id.
    #[error("no such container: {0}")]
    NoSuchContainer(String),
    /// A container whose config.json or state.json cannot be read: what is wrong, and the way out.
    #[error("container {name} is damaged: {what}; remove it with skiff rm -f {name}")]
    Damaged { name: String, what: String },
    /// An id prefix matched several containers.
    #[error("{prefix}: ambiguous container id prefix, matches {candidates}")]
    Ambiguous { prefix: String, candidates: String },
    /// `start` of a container whose monitor reported a failure (or could not be started).
    #[error("container {name} failed to start{}", cause.as_ref().map(|c| format!(": {c}")).unwrap_or_default())]
    StartFailed {
        /// The container.
        name: String,
        /// Why, when known.
        cause: Option<String>,
    },
    /// A container or volume directory that could not be removed, even inside the user's mapping.
    #[error("could not remove {}{}", path.display(), cause.as_ref().map(|c| format!(": {c}")).unwrap_or_default())]
    Remove {
        /// The directory.
        path: std::path::PathBuf,
        /// Why, when known.
        cause: Option<String>,
    },
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    /// A state file could not be read or written.
    #[error("{context}: {source}")]
    Json {
        context: String,
        source: serde_json::Error,
    },
    /// A copy into or out of a container that failed.
    #[error(transparent)]
    Copy(#[from] crate::files::CopyError),
    /// A container spec that cannot be made or broke a rule.
    #[error(transparent)]
    Spec(#[from] crate::spec::error::SpecError),
    /// A container or volume name that cannot be used.
    #[error(transparent)]
    Name(#[from] crate::container::NameError),
    /// A volume that cannot be used as asked.
    #[error(transparent)]
    Volume(#[from] crate::container::VolumeError),
    /// A container in the wrong state for what was asked.
    #[error(transparent)]
    State(#[from] crate::container::StateError),
    /// A `top` option skiff does not implement.
    #[error(transparent)]
    Top(#[from] crate::container::top::TopError),
    /// `--memory`, `--pids-limit`, `--cpus` that cannot be used.
    #[error(transparent)]
    Limits(#[from] crate::cgroups::LimitError),
    /// `exec` could not join the container.
    #[error(transparent)]
    Join(#[from] crate::process::JoinError),
    /// The container's ids could not be mapped.
    #[error("mapping ids for the container: {0}")]
    IdMap(#[from] crate::userns::Error),
    /// A `--network` that cannot be used.
    #[error(transparent)]
    Network(#[from] crate::network::Error),
    /// A network record operation that cannot be done as asked.
    #[error(transparent)]
    NetworkRecord(#[from] crate::network::error::NetworkError),
    /// A plumbing step of `network connect`/`disconnect` that failed, as the plumbing said.
    #[error("{0}")]
    Plumbing(String),
    /// From the store's helpers.
    #[error(transparent)]
    Store(#[from] skiff_store::Error),
}

/// The runtime's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds context to I/O errors.
pub trait Ctx<T> {
    /// Wraps the error with `context`.
    fn ctx<F: FnOnce() -> String>(self, context: F) -> Result<T>;
}

impl<T> Ctx<T> for std::io::Result<T> {
    fn ctx<F: FnOnce() -> String>(self, context: F) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: context(),
            source,
        })
    }
}

impl<T> Ctx<T> for nix::Result<T> {
    fn ctx<F: FnOnce() -> String>(self, context: F) -> Result<T> {
        self.map_err(|e| Error::Io {
            context: context(),
            source: e.into(),
        })
    }
}
