//! The hooks this skiff has registered, and the two places the CLI calls them from for
//! references: `pull` and `run`/`create` (before the local lookup). Today only the trace hooks
//! (`SKIFF_HOOK_TRACE=FILE`) can be registered; plugins fill the same seam.

use anyhow::{bail, Context, Result};
use skiff_runtime::hooks::{Hooks, NoHooks, PullDecision, Trace};
use skiff_store::{ImageStore, Reference};

/// The registered hooks.
pub fn registered() -> Box<dyn Hooks> {
    match std::env::var_os("SKIFF_HOOK_TRACE") {
        Some(path) if !path.is_empty() => Box::new(Trace { path: path.into() }),
        _ => Box::new(NoHooks),
    }
}

/// The reference to use for `name` once before-pull has seen it: kept, rewritten (parsed and
/// checked like the user's own) or refused. A local image id is not a reference and is kept.
pub fn reference_for(hooks: &dyn Hooks, store: &ImageStore, name: &str) -> Result<String> {
    let Ok(r) = Reference::parse(name) else {
        return Ok(name.to_string());
    };
    let full = r.to_string();
    let hex = name.strip_prefix("sha256:").unwrap_or(name);
    let names_an_id = store.find(name).is_ok_and(|hits| {
        hits.iter()
            .any(|i| i.reference != full && i.id.hex().starts_with(hex))
    });
    if names_an_id {
        return Ok(name.to_string());
    }
    match hooks.before_pull(&full)? {
        PullDecision::Keep => Ok(full),
        PullDecision::Rewrite(to) => {
            let r = Reference::parse(&to)
                .with_context(|| format!("a before-pull hook rewrote {full} to {to:?}"))?;
            Ok(r.to_string())
        }
        PullDecision::Deny(reason) => bail!("{full} was refused by a before-pull hook: {reason}"),
    }
}
