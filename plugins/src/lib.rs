//! skiff's plugin host. Plugins are WebAssembly components of the `skiff:plugin` world
//! (`plugins/wit/`), run by wasmtime in a sandbox with no host access they were not granted,
//! under a deadline and a memory cap, compiled once at install and loaded from a verified cache.
//!
//! The crate knows neither the store nor the runtime: it speaks the world's own types
//! (`wit::ContainerSpec`, `wit::Edit`, …), and the CLI maps them to and from skiff's. wasmtime
//! lives only here, so the store, the runtime and the monitor never link it.

pub mod bindings;
pub mod cache;
pub mod component;
pub mod config_file;
pub mod edits;
pub mod error;
pub mod files;
pub mod grants;
pub mod host;
pub mod installed;
pub mod limits;
pub mod loader;
pub mod reaper;
pub mod settings;

pub use component::{Hook, Inspected, WorldVersion};
pub use error::{CallError, PluginError};
pub use host::{Host, Loaded};

/// The world versions this skiff loads, oldest first; the last is what new plugins target.
pub const WORLD_VERSIONS: &[&str] = &["0.1.0", "0.2.0"];

/// The WIT package new plugins are built against.
pub const WIT_PACKAGE: &str = "skiff:plugin@0.2.0";

/// The WIT text of each world version, for `skiff plugin wit` and for authors without a checkout.
pub const WIT_SOURCES: &[(&str, &str)] = &[
    ("0.1.0", include_str!("../wit/0.1.0/skiff-plugin.wit")),
    ("0.2.0", include_str!("../wit/0.2.0/skiff-plugin.wit")),
];

#[cfg(test)]
mod tests {
    #[test]
    fn each_wit_source_declares_its_version() {
        for (v, text) in super::WIT_SOURCES {
            assert!(text.contains(&format!("package skiff:plugin@{v};")), "{v}");
        }
        assert_eq!(
            super::WIT_PACKAGE,
            format!("skiff:plugin@{}", super::WORLD_VERSIONS.last().unwrap())
        );
    }
}
