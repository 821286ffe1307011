//! The lifecycle seam that plugins fill: four points on the pull → create → start → exit path.
//! `before_pull` may keep, rewrite or deny an image reference the user named; `before_create`
//! sees the whole `ContainerSpec` and may adjust it (the spec is validated again afterwards) or
//! deny it; `after_start` and `after_exit` observe. The CLI holds the registered `Hooks`; the
//! monitor, which must stay small, only runs a helper (`skiff __hook`) for the two observation
//! points, and only when the CLI said that something subscribes to them.

use std::io::Write;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::spec::ContainerSpec;

/// What `before_pull` decided for a reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullDecision {
    /// Use the reference as it is.
    Keep,
    /// Use this reference instead (parsed and checked like the user's own).
    Rewrite(String),
    /// Refuse it, with the reason shown to the user.
    Deny(String),
}

/// A container started: its first process runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartEvent {
    /// The container's full id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The image reference it runs.
    pub image: String,
    /// The host pid of its first process.
    pub pid: i32,
}

/// A container's first process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitEvent {
    /// The container's full id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The image reference it ran.
    pub image: String,
    /// Docker's exit code (128+N after signal N); none when it could not be known.
    pub exit_code: Option<i32>,
    /// The signal that ended it, if one did.
    pub signal: Option<i32>,
    /// Whether the kernel's OOM killer ended it (known only where a memory cgroup was made).
    pub oom_killed: bool,
    /// How long it ran, in milliseconds.
    pub duration_ms: u64,
    /// Whether its restart policy starts it again.
    pub will_restart: bool,
    /// Whether it is being removed (`--rm`).
    pub removing: bool,
}

/// One observation the monitor hands to `skiff __hook` (as JSON on its stdin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "hook", rename_all = "kebab-case")]
pub enum Event {
    /// See `StartEvent`.
    AfterStart(StartEvent),
    /// See `ExitEvent`.
    AfterExit(ExitEvent),
}

/// A hook refused, or could not decide.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// Plugins' edits cannot be applied: two touch one key, one needs a grant it lacks, or a
    /// value breaks its flag's rules. The message names the plugins.
    #[error("{0}")]
    Edits(String),
    /// A decision hook said no.
    #[error("{hook} denied by {by}: {reason}")]
    Denied {
        /// The hook point.
        hook: &'static str,
        /// Who denied (a plugin's name).
        by: String,
        /// Why, in its words.
        reason: String,
    },
    /// A hook failed (trap, time-out, bad result) and its policy says the operation stops.
    #[error("{hook} hook of {by} failed: {cause}")]
    Failed {
        /// The hook point.
        hook: &'static str,
        /// Who failed.
        by: String,
        /// What went wrong.
        cause: String,
    },
}

/// The four lifecycle points. Every method has a default that does nothing, so an
/// implementation names only the points it cares for.
pub trait Hooks {
    /// Before a reference the user named is looked up or pulled.
    fn before_pull(&self, _reference: &str) -> Result<PullDecision, HookError> {
        Ok(PullDecision::Keep)
    }
    /// Before a container record is made (`name` is `--name`, if given): may change `spec`
    /// (validated again afterwards), recording who changed what in `spec.plugins`.
    fn before_create(
        &self,
        _name: Option<&str>,
        _spec: &mut ContainerSpec,
    ) -> Result<(), HookError> {
        Ok(())
    }
    /// Whether `after_start`/`after_exit` want calling: without it the monitor runs no helper.
    fn observes(&self) -> bool {
        false
    }
    /// After a container's first process started.
    fn after_start(&self, _event: &StartEvent) {}
    /// After a container's first process ended.
    fn after_exit(&self, _event: &ExitEvent) {}
    /// The command reaches no more hook points: what the calls needed may be let go of now,
    /// off the command's path, while it writes its records.
    fn finished(&self) {}
}

/// Nothing registered.
pub struct NoHooks;
impl Hooks for NoHooks {}

/// Hooks that decide nothing and record every call as one JSON line in a file: the seam's own
/// test, and a way to watch the lifecycle (`SKIFF_HOOK_TRACE=FILE`).
pub struct Trace {
    /// The file the lines are appended to.
    pub path: PathBuf,
}

impl Trace {
    fn record(&self, line: serde_json::Value) {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path);
        if let Ok(mut f) = f {
            // One write per line, so lines from concurrent processes never interleave.
            let _ = f.write_all(format!("{line}\n").as_bytes());
        }
    }
}

impl Hooks for Trace {
    fn before_pull(&self, reference: &str) -> Result<PullDecision, HookError> {
        self.record(serde_json::json!({"hook": "before-pull", "reference": reference}));
        Ok(PullDecision::Keep)
    }
    fn before_create(&self, name: Option<&str>, spec: &mut ContainerSpec) -> Result<(), HookError> {
        self.record(serde_json::json!({
            "hook": "before-create",
            "name": name,
            "image": spec.image,
            "args": spec.process.args,
            "privileged": spec.privileged,
        }));
        Ok(())
    }
    fn observes(&self) -> bool {
        true
    }
    fn after_start(&self, event: &StartEvent) {
        self.record(serde_json::json!(Event::AfterStart(event.clone())));
    }
    fn after_exit(&self, event: &ExitEvent) {
        self.record(serde_json::json!(Event::AfterExit(event.clone())));
    }
}

/// Hands an observation to `hooks` (the `skiff __hook` side of the monitor's helper).
pub fn deliver(hooks: &dyn Hooks, event: &Event) {
    match event {
        Event::AfterStart(e) => hooks.after_start(e),
        Event::AfterExit(e) => hooks.after_exit(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_travel_as_tagged_json() {
        let e = Event::AfterExit(ExitEvent {
            id: "a".into(),
            name: "n".into(),
            image: "i".into(),
            exit_code: Some(137),
            signal: Some(9),
            oom_killed: false,
            duration_ms: 5,
            will_restart: true,
            removing: false,
        });
        let text = serde_json::to_string(&e).unwrap();
        assert!(text.contains("\"hook\":\"after-exit\""), "{text}");
        assert_eq!(serde_json::from_str::<Event>(&text).unwrap(), e);
    }

    #[test]
    fn the_defaults_decide_nothing_and_observe_nothing() {
        let h = NoHooks;
        assert_eq!(
            h.before_pull("docker.io/library/x:1").unwrap(),
            PullDecision::Keep
        );
        assert!(!h.observes());
    }
}
