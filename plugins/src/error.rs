//! What can go wrong with a plugin: at install and load (`PluginError`, each a one-line message
//! naming the thing and the fix) and in one hook call (`CallError`, naming the cause).

use std::path::PathBuf;

/// A plugin that cannot be installed, loaded or configured.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// Not a wasm file at all.
    #[error("{0} is not a WebAssembly file: install a component built against skiff:plugin@0.2.0 (see PLUGINS.md)")]
    NotWasm(String),
    /// A core module, not a component.
    #[error("{0} is a core WebAssembly module, not a component: wrap it with `wasm-tools component new` (see PLUGINS.md)")]
    CoreModule(String),
    /// wasmtime could not read or compile it (truncated, malformed).
    #[error("{what} is not a valid WebAssembly component ({cause}): rebuild it")]
    Invalid {
        /// The file or reference.
        what: String,
        /// wasmtime's reason.
        cause: String,
    },
    /// Built against a world version this skiff does not know.
    #[error("{plugin} was built against skiff:plugin@{version}, which this skiff does not support: it loads {supported}; rebuild the plugin against one of them or upgrade skiff")]
    UnknownWorld {
        /// The file or plugin.
        plugin: String,
        /// The version it names.
        version: String,
        /// What this skiff loads.
        supported: String,
    },
    /// Exports a `skiff:plugin/…` interface that is not a hook.
    #[error("{plugin} exports {export}, which is not a hook of the skiff:plugin world: export before-pull, before-create, validate, after-start or after-exit")]
    NotAHook {
        /// The file or plugin.
        plugin: String,
        /// The export.
        export: String,
    },
    /// Mixes names of several world versions.
    #[error("{0} mixes several skiff:plugin world versions: build it against one")]
    MixedWorlds(String),
    /// Exports no hook at all.
    #[error("{0} exports no skiff hook: build it against skiff:plugin@0.2.0 (world plugin, puller, adjuster, policy or observer)")]
    NoHooks(String),
    /// Imports something this plugin was not granted.
    #[error("plugin {plugin} imports {import}, {why}")]
    Ungranted {
        /// The plugin.
        plugin: String,
        /// The import name.
        import: String,
        /// What would allow it, or why nothing can.
        why: String,
    },
    /// Linking or instantiating failed for another reason.
    #[error("plugin {plugin} cannot be linked: {cause}")]
    Link {
        /// The plugin.
        plugin: String,
        /// wasmtime's reason.
        cause: String,
    },
    /// The compiled artifact in the cache is missing, foreign or altered.
    #[error("the compiled copy of plugin {plugin} at {} {why}", path.display())]
    Cache {
        /// The plugin.
        plugin: String,
        /// The cache file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// The kept component no longer matches its digest.
    #[error("plugin {plugin}'s component {} does not match the digest it was installed with: reinstall it (`skiff plugin rm {plugin}`, then `skiff plugin install`)", path.display())]
    Tampered {
        /// The plugin.
        plugin: String,
        /// The component file.
        path: PathBuf,
    },
    /// A `[plugins.NAME]` setting is wrong.
    #[error("{path}: [plugins.{plugin}] {what}")]
    Config {
        /// config.toml.
        path: String,
        /// The plugin's table.
        plugin: String,
        /// What is wrong, and the fix.
        what: String,
    },
    /// No plugin of that name is installed.
    #[error("no plugin named {0:?} is installed: see `skiff plugin ls`")]
    NotInstalled(String),
    /// A plugin of that name is installed already.
    #[error("a plugin named {0:?} is installed already: remove it with `skiff plugin rm {0}`, or install under another --name")]
    Exists(String),
    /// A name skiff cannot use.
    #[error("invalid plugin name {0:?}: use 1-64 of a-z, 0-9, '-' and '_', starting with a letter or digit")]
    BadName(String),
    /// The installed-plugins list is unreadable.
    #[error("{}: {why}: fix or remove the file (reinstall the plugins afterwards)", path.display())]
    List {
        /// The list file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// Filesystem trouble.
    #[error("{context}: {source}")]
    Io {
        /// What skiff was doing.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// One hook call that did not produce a usable result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// It ran past its deadline and was interrupted.
    #[error("ran past its {0} ms deadline and was stopped")]
    Timeout(u64),
    /// It asked for more memory than its cap.
    #[error("went over its memory limit of {0} MiB")]
    Memory(u64),
    /// It trapped.
    #[error("trapped: {0}")]
    Trap(String),
    /// Its input was over the cap (a spec with huge fields).
    #[error("its input is {size} bytes, over the {cap}-byte cap")]
    InputTooBig {
        /// Bytes.
        size: usize,
        /// The cap.
        cap: usize,
    },
    /// Its result was over the cap.
    #[error("returned {size} bytes, over the {cap}-byte cap on a result")]
    OutputTooBig {
        /// Bytes.
        size: usize,
        /// The cap.
        cap: usize,
    },
    /// Its result could not be read (a bad discriminant, invalid UTF-8…).
    #[error("returned a malformed result: {0}")]
    Malformed(String),
    /// It could not be started at all.
    #[error("could not be started: {0}")]
    Instantiate(String),
}

impl PluginError {
    /// An I/O error with what skiff was doing.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> PluginError {
        PluginError::Io {
            context: context.into(),
            source,
        }
    }
}
