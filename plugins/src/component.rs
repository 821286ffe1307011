//! What a component is before skiff runs it: wasm at all, a component rather than a core module,
//! of which world version, exporting which hooks and importing what. Read from the compiled
//! component's type, so what is checked is what wasmtime will link.

use wasmtime::component::types::ComponentItem;
use wasmtime::component::Component;
use wasmtime::Engine;

use crate::error::PluginError;
use crate::WORLD_VERSIONS;

/// A lifecycle point a plugin can export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Hook {
    /// Rewrite or refuse an image reference.
    BeforePull,
    /// Adjust or refuse a container before it is created.
    BeforeCreate,
    /// Refuse the final spec, after every adjustment.
    Validate,
    /// A container's first process started.
    AfterStart,
    /// A container's first process ended.
    AfterExit,
}

impl Hook {
    /// Every hook, in the order they happen.
    pub const ALL: [Hook; 5] = [
        Hook::BeforePull,
        Hook::BeforeCreate,
        Hook::Validate,
        Hook::AfterStart,
        Hook::AfterExit,
    ];

    /// The WIT name (`before-pull`), as shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            Hook::BeforePull => "before-pull",
            Hook::BeforeCreate => "before-create",
            Hook::Validate => "validate",
            Hook::AfterStart => "after-start",
            Hook::AfterExit => "after-exit",
        }
    }

    /// The hook named `s`, if there is one.
    pub fn parse(s: &str) -> Option<Hook> {
        Hook::ALL.into_iter().find(|h| h.as_str() == s)
    }

    /// Whether the hook decides something (and so fails closed by default) rather than observes.
    pub fn decides(self) -> bool {
        matches!(self, Hook::BeforePull | Hook::BeforeCreate | Hook::Validate)
    }
}

impl std::fmt::Display for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The world version a component was built against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum WorldVersion {
    /// `skiff:plugin@0.1.0`: before-pull only, a freestanding export.
    V0_1,
    /// `skiff:plugin@0.2.0`: a hook per exported interface.
    V0_2,
}

impl WorldVersion {
    /// `0.1.0` or `0.2.0`.
    pub fn as_str(self) -> &'static str {
        match self {
            WorldVersion::V0_1 => "0.1.0",
            WorldVersion::V0_2 => "0.2.0",
        }
    }

    /// The version spelled `s`, if this skiff supports it.
    pub fn parse(s: &str) -> Option<WorldVersion> {
        match s {
            "0.1.0" => Some(WorldVersion::V0_1),
            "0.2.0" => Some(WorldVersion::V0_2),
            _ => None,
        }
    }
}

/// What a component offers and needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspected {
    /// Its world version.
    pub version: WorldVersion,
    /// The hooks it exports, in lifecycle order.
    pub hooks: Vec<Hook>,
    /// Every import name (`wasi:filesystem/preopens@0.2.6`, `skiff:plugin/host@0.2.0`…).
    pub imports: Vec<String>,
    /// Every export name.
    pub exports: Vec<String>,
}

/// The binary format versions at bytes 4..8 of a wasm file.
const CORE_MODULE: [u8; 4] = [1, 0, 0, 0];

/// Refuses what is not a component before wasmtime parses it, with a message for each case: not
/// wasm at all, a core module (which needs `wasm-tools component new`), or too short to be one.
pub fn check_header(bytes: &[u8], what: &str) -> Result<(), PluginError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(PluginError::NotWasm(what.to_string()));
    }
    if bytes[4..8] == CORE_MODULE {
        return Err(PluginError::CoreModule(what.to_string()));
    }
    Ok(())
}

/// Splits `skiff:plugin/NAME@VERSION` into its name and version.
fn skiff_name(name: &str) -> Option<(&str, &str)> {
    name.strip_prefix("skiff:plugin/")?.split_once('@')
}

/// Reads the world version and hooks off a compiled component's type.
pub fn inspect(
    engine: &Engine,
    component: &Component,
    what: &str,
) -> Result<Inspected, PluginError> {
    let ty = component.component_type();
    let imports: Vec<String> = ty.imports(engine).map(|(n, _)| n.to_string()).collect();
    let mut exports = Vec::new();
    let mut versions = std::collections::BTreeSet::new();
    let mut hooks = Vec::new();
    for (name, item) in ty.exports(engine) {
        exports.push(name.to_string());
        if name == "before-pull" && matches!(item.ty, ComponentItem::ComponentFunc(_)) {
            versions.insert(WorldVersion::V0_1);
            hooks.push(Hook::BeforePull);
        } else if let Some((iface, version)) = skiff_name(name) {
            let v = WorldVersion::parse(version).ok_or_else(|| unknown(what, version))?;
            let hook = Hook::parse(iface)
                .filter(|_| v == WorldVersion::V0_2)
                .ok_or_else(|| PluginError::NotAHook {
                    plugin: what.to_string(),
                    export: name.to_string(),
                })?;
            versions.insert(v);
            hooks.push(hook);
        }
    }
    for name in &imports {
        if let Some((_, version)) = skiff_name(name) {
            let v = WorldVersion::parse(version).ok_or_else(|| unknown(what, version))?;
            versions.insert(v);
        }
    }
    let version = match versions.len() {
        0 => return Err(PluginError::NoHooks(what.to_string())),
        1 => versions.into_iter().next().unwrap_or(WorldVersion::V0_2),
        _ => return Err(PluginError::MixedWorlds(what.to_string())),
    };
    if hooks.is_empty() {
        return Err(PluginError::NoHooks(what.to_string()));
    }
    hooks.sort();
    hooks.dedup();
    Ok(Inspected {
        version,
        hooks,
        imports,
        exports,
    })
}

fn unknown(what: &str, version: &str) -> PluginError {
    PluginError::UnknownWorld {
        plugin: what.to_string(),
        version: version.to_string(),
        supported: WORLD_VERSIONS.join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_tell_wasm_from_components() {
        assert!(matches!(
            check_header(b"#!/bin/sh\n", "x"),
            Err(PluginError::NotWasm(_))
        ));
        assert!(matches!(
            check_header(b"\0asm\x01\0\0\0", "x"),
            Err(PluginError::CoreModule(_))
        ));
        assert!(check_header(b"\0asm\x0d\0\x01\0", "x").is_ok());
    }

    #[test]
    fn hooks_round_trip_their_names() {
        for h in Hook::ALL {
            assert_eq!(Hook::parse(h.as_str()), Some(h));
        }
        assert!(Hook::BeforePull.decides() && !Hook::AfterExit.decides());
    }
}
