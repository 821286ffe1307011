//! Why a container spec cannot be built or does not validate: one variant per kind of mistake,
//! each message naming the flag or file and how to write it. Kept apart from `spec/mod.rs` so the
//! crate's `Error` can hold it without an import circle.

use std::path::PathBuf;

/// A spec that cannot be made, or a made spec (perhaps adjusted by a hook) that breaks a rule.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// A flag's value cannot be used: the flag, the value, and how to write it.
    #[error("invalid {flag} {value:?}: {fix}")]
    Flag {
        /// The flag as the user wrote it (`--ulimit`, `-v`, …).
        flag: &'static str,
        /// The value given.
        value: String,
        /// What is wrong and how to write it.
        fix: String,
    },
    /// An environment entry with no usable key.
    #[error("invalid environment variable {raw:?} in {origin}: use KEY=VALUE or KEY")]
    EnvEntry {
        /// The entry.
        raw: String,
        /// `-e`, or the env file it came from.
        origin: String,
    },
    /// An environment entry of a spec (after any adjustment) that is not KEY=VALUE.
    #[error("invalid environment variable {0:?}: use KEY=VALUE")]
    Env(String),
    /// A label without a key.
    #[error("invalid label {0:?}: use KEY=VALUE")]
    Label(String),
    /// A mount point that is not absolute.
    #[error("invalid {flag} {destination:?}: the destination must be an absolute path")]
    MountPoint {
        /// `-v` or `--tmpfs`.
        flag: &'static str,
        /// The destination given.
        destination: String,
    },
    /// A bind source that is not absolute (an adjusted spec).
    #[error("invalid bind mount source {}: use an absolute host path", .0.display())]
    BindNotAbsolute(PathBuf),
    /// A bind source that does not exist.
    #[error("bind source path does not exist: {0}; create it first or fix the -v value")]
    BindMissing(String),
    /// A bind source that cannot be resolved.
    #[error("bind source {path}: {source}")]
    BindSource {
        /// The source given.
        path: String,
        /// Why it could not be resolved.
        source: std::io::Error,
    },
    /// A working directory that is not absolute.
    #[error("invalid -w {0:?}: the working directory must be an absolute path")]
    Workdir(String),
    /// A host name that is not one.
    #[error("invalid --hostname {0:?}")]
    Hostname(String),
    /// A `--security-opt` skiff does not know.
    #[error(
        "unsupported --security-opt {0:?}: skiff knows seccomp=unconfined and no-new-privileges"
    )]
    SecurityOpt(String),
    /// An `--env-file` that cannot be read.
    #[error("--env-file {}: {source}", path.display())]
    EnvFile {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// Neither the image nor the user gave a command.
    #[error("no command specified: {0} has no Cmd or Entrypoint; give one after the image name")]
    NoCommand(String),
    /// `--rm` with a restart policy.
    #[error("--restart and --rm conflict: a container removed on exit cannot be restarted")]
    RestartWithRm,
    /// The image's /etc/passwd or /etc/group is not a file skiff will read.
    #[error("the image's {what}: skiff reads it to resolve the container's user and refuses anything but a regular file of at most {cap_mib} MiB; fix the image")]
    ImageIdFile {
        /// What is wrong with which file.
        what: String,
        /// The size cap in MiB.
        cap_mib: u64,
    },
    /// `-u` names no user or group of the image (the resolver's words).
    #[error("{0}")]
    User(String),
    /// `-u` resolves to ids this user cannot map.
    #[error("user {user:?} is uid {uid}:{gid} but only root is mapped for you: give your user a subuid/subgid range ({hint})")]
    UnmappedUser {
        /// As given.
        user: String,
        /// Its uid in the image.
        uid: u32,
        /// Its gid in the image.
        gid: u32,
        /// The `usermod` line that would give a free range.
        hint: String,
    },
}
