//! skiff's plugin contract: the WIT world in `plugins/wit/` and the host-side types its hooks
//! exchange. The wasmtime host, hook dispatch and compiled-module cache come with the plugin
//! issue; keeping them here means the store and runtime never build wasmtime.

/// The WIT package this crate's world is published as; bumped when the world changes, with old
/// versions kept loadable.
pub const WIT_PACKAGE: &str = "skiff:plugin@0.1.0";

/// What a before-pull hook decides (mirrors `pull-decision` in the WIT world).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PullDecision {
    /// Pull the reference as it is.
    Keep,
    /// Pull this reference instead.
    Rewrite(String),
    /// Refuse, with a reason for the user.
    Deny(String),
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_wit_world_names_the_package_version_this_crate_declares() {
        let wit = include_str!("../wit/0.1.0/skiff-plugin.wit");
        assert!(wit.contains(&format!("package {};", super::WIT_PACKAGE)));
        assert!(wit.contains("export before-pull"));
    }
}
