//! Installing and loading with the cache in between: install compiles a component once and
//! keeps both the component (by digest) and its compiled copy; load deserializes the copy after
//! checking it, and compiles again from the kept component (itself checked against its digest)
//! when the copy is missing, altered or made by another engine, updating the list.

use wasmtime::component::Component;

use crate::cache::{engine_key, sha256_hex, Cache};
use crate::component::Inspected;
use crate::error::PluginError;
use crate::host::{Host, Loaded};
use crate::installed::{Compiled, Installed, PluginDir};
use crate::settings::PluginConfig;

/// A component compiled and kept, ready to be listed.
pub struct Prepared {
    /// `sha256:…` of the component.
    pub digest: String,
    /// What it exports and imports.
    pub inspected: Inspected,
    /// Its compiled copy.
    pub compiled: Compiled,
    /// The compiled copy's size in bytes.
    pub compiled_size: u64,
    /// The component, ready for a test load.
    pub component: Component,
}

/// Compiles `bytes` and keeps the component and its compiled copy (nothing is listed yet, so
/// a later failure leaves only files the next prune removes).
pub fn prepare(
    host: &Host,
    dir: &PluginDir,
    cache: &Cache,
    bytes: &[u8],
    what: &str,
) -> Result<Prepared, PluginError> {
    let (compiled, inspected) = host.compile(bytes, what)?;
    let hex = sha256_hex(bytes);
    let key = engine_key(host.engine());
    dir.keep_component(&hex, bytes)?;
    let (sha256, identity) = cache.store(&cache.path(&hex, &key), &compiled)?;
    let component = host.from_compiled(&compiled, what)?;
    Ok(Prepared {
        digest: format!("sha256:{hex}"),
        inspected,
        compiled: Compiled {
            engine: key,
            sha256,
            identity,
        },
        compiled_size: compiled.len() as u64,
        component,
    })
}

/// Loads an installed plugin, with `note` told when its compiled copy had to be made again.
pub fn load(
    host: &Host,
    dir: &PluginDir,
    cache: &Cache,
    entry: &Installed,
    config: PluginConfig,
    note: &dyn Fn(String),
) -> Result<Loaded, PluginError> {
    let key = engine_key(host.engine());
    let path = cache.path(entry.digest_hex(), &key);
    let cached = match entry.compiled_for(&key) {
        Some(c) => match cache.load(
            host.engine(),
            &entry.name,
            &path,
            &c.sha256,
            c.identity.as_ref(),
        ) {
            Ok((component, changed)) => {
                if let Some(id) = changed {
                    record_identity(dir, &entry.name, &key, &c.sha256, id);
                }
                Some(component)
            }
            Err(e) => {
                note(format!(
                    "{e}; compiling it again from the installed component"
                ));
                None
            }
        },
        None => {
            note(format!(
                "plugin {} was compiled by another version of skiff's engine; compiling it for this one (once)",
                entry.name
            ));
            None
        }
    };
    let component = match cached {
        Some(c) => c,
        None => {
            let src = dir.component_path(entry.digest_hex());
            let bytes = std::fs::read(&src).map_err(|e| {
                PluginError::io(
                    format!(
                        "reading plugin {}'s component {}",
                        entry.name,
                        src.display()
                    ),
                    e,
                )
            })?;
            if sha256_hex(&bytes) != entry.digest_hex() {
                return Err(PluginError::Tampered {
                    plugin: entry.name.clone(),
                    path: src,
                });
            }
            // Written over the altered copy, if that is what failed; another engine's copy is
            // kept for the skiff that made it.
            let p = prepare(host, dir, cache, &bytes, &entry.name)?;
            let (name, compiled) = (entry.name.clone(), p.compiled.clone());
            dir.update(|list| {
                if let Some(e) = list.iter_mut().find(|e| e.name == name) {
                    if e.compiled.engine == compiled.engine {
                        e.compiled = compiled;
                    } else {
                        e.also_compiled.retain(|c| c.engine != compiled.engine);
                        e.also_compiled.push(compiled);
                    }
                }
                Ok(())
            })?;
            p.component
        }
    };
    host.load(&entry.name, &component, config)
}

/// Loads an installed plugin only when its compiled copy loads as it is: none when it would
/// have to be compiled again or fails to load or link, which `load` then does and reports in
/// the command's own order. For loading ahead on another thread, which must not print notes
/// or rewrite the list.
pub fn load_cached(
    host: &Host,
    cache: &Cache,
    entry: &Installed,
    config: PluginConfig,
) -> Option<Loaded> {
    let key = engine_key(host.engine());
    let c = entry.compiled_for(&key)?;
    let path = cache.path(entry.digest_hex(), &key);
    // A copy whose identity changed is checked by its hook's load, which records the new one.
    if !Cache::is_as_recorded(&path, c.identity.as_ref()) {
        return None;
    }
    let (component, _) = cache
        .load(
            host.engine(),
            &entry.name,
            &path,
            &c.sha256,
            c.identity.as_ref(),
        )
        .ok()?;
    host.load(&entry.name, &component, config).ok()
}

/// Records the identity a compiled copy has now that its content was checked (best effort: a
/// copy left unrecorded is only checked again next time).
/// Only the record of that very copy (same engine key and content) is changed: the plugin may
/// have been installed again meanwhile.
fn record_identity(
    dir: &PluginDir,
    name: &str,
    key: &str,
    sha256: &str,
    id: crate::cache::FileIdentity,
) {
    let _ = dir.update(|list| {
        let copy = list
            .iter_mut()
            .filter(|e| e.name == name)
            .flat_map(|e| std::iter::once(&mut e.compiled).chain(e.also_compiled.iter_mut()))
            .find(|c| c.engine == key && c.sha256 == sha256);
        if let Some(c) = copy {
            c.identity = Some(id);
        }
        Ok(())
    });
}
