//! The flags more than one command takes, in one home, so a command file and its aliases in
//! another (`system events`, `system info`) share the type rather than copies of it.

use clap::Args;

/// `events` and `system events` flags.
#[derive(Args)]
pub struct EventsArgs {
    /// Show events since this time (RFC 3339, Unix time, or relative like 10m)
    #[arg(long)]
    pub(crate) since: Option<String>,
    /// Stop at this time: print the past events up to it and exit
    #[arg(long)]
    pub(crate) until: Option<String>,
    /// Only some: type=container|image, event=ACTION, container=NAME|ID, image=NAME|ID,
    /// label=KEY[=VALUE] (the same key again: either; different keys: all)
    #[arg(short, long = "filter")]
    pub(crate) filter: Vec<String>,
    /// '{{json .}}' (or json) for Docker's JSON, or a Go template over its fields
    #[arg(long)]
    pub(crate) format: Option<String>,
}

/// `info`, `system info` and `version` flags.
#[derive(Args)]
pub struct InfoArgs {
    /// `json`, or a Go template (`{{.Host.Rootless}}`)
    #[arg(short, long)]
    pub(crate) format: Option<String>,
}
