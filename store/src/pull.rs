//! `pull`: resolve a reference, pick the platform, fetch config and layers (in parallel, each
//! verified), unpack each layer once into its chain-id directory, and only then record the image in
//! index.json, so an image that is listed is complete.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::images::ImageStore;
use crate::json::parse_json;
use crate::layers::{chain_ids, diff_ids, layer_type_ok, unpack_into_place, LayerUnpacker};
use crate::layout::{Descriptor, PULLED_AT, REF_NAME, REPO_DIGEST, UNPACKED_SIZE};
use crate::platform::{describe, Platform};
use crate::reference::Reference;
use crate::registry::{
    Remote, DOCKER_LIST, DOCKER_MANIFEST, MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE, OCI_INDEX,
    OCI_MANIFEST,
};
use crate::unpack::UnpackReport;

/// Receives pull progress, for the CLI's per-layer display.
pub trait Progress: Send + Sync {
    /// The reference resolved to a manifest.
    fn resolved(&self, _reference: &Reference, _digest: &Digest) {}
    /// A layer is known: `present` when nothing needs doing for it.
    fn layer(&self, _id: &Digest, _size: u64, _present: bool) {}
    /// Bytes downloaded of a layer so far.
    fn downloading(&self, _id: &Digest, _done: u64) {}
    /// A layer's download finished and it is being unpacked.
    fn extracting(&self, _id: &Digest) {}
    /// A layer is complete.
    fn layer_done(&self, _id: &Digest) {}
}

/// A progress sink that ignores everything (`-q`, tests).
pub struct NoProgress;
impl Progress for NoProgress {}

/// What to pull and how.
pub struct PullOptions {
    /// Platform to pick from multi-arch indexes.
    pub platform: Platform,
    /// The layer unpacker.
    pub unpacker: Arc<dyn LayerUnpacker>,
    /// Progress sink.
    pub progress: Arc<dyn Progress>,
}

/// The result of a pull.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The reference as recorded.
    pub reference: Reference,
    /// Image id: the config digest.
    pub id: Digest,
    /// The digest the registry served for the reference (an index for multi-arch images).
    pub repo_digest: Digest,
    /// Notes for the user (skipped device nodes, ignored xattrs).
    pub notes: Vec<String>,
    /// Whether the reference already named this manifest locally (Docker's "Image is up to date").
    pub up_to_date: bool,
}

/// The kind of a manifest document, from its mediaType or (OCI allows omitting it) its shape.
fn manifest_kind(doc: &serde_json::Value) -> Result<&'static str> {
    match doc["mediaType"].as_str() {
        Some(OCI_INDEX) => Ok(OCI_INDEX),
        Some(DOCKER_LIST) => Ok(DOCKER_LIST),
        Some(OCI_MANIFEST) => Ok(OCI_MANIFEST),
        Some(DOCKER_MANIFEST) => Ok(DOCKER_MANIFEST),
        Some(other) => Err(Error::UnsupportedMediaType(format!(
            "{other} (not a container image manifest)"
        ))),
        None if doc["schemaVersion"] == 1 => Err(Error::UnsupportedMediaType(
            "Docker schema 1 manifest (deprecated; re-push the image with a current tool)".into(),
        )),
        None if doc["manifests"].is_array() => Ok(OCI_INDEX),
        None if doc["layers"].is_array() => Ok(OCI_MANIFEST),
        None => Err(Error::UnsupportedMediaType("unrecognised manifest".into())),
    }
}

fn descriptor(v: &serde_json::Value, what: &str) -> Result<Descriptor> {
    serde_json::from_value(v.clone()).map_err(|source| Error::Json {
        context: format!("parsing {what} descriptor"),
        source,
    })
}

impl ImageStore {
    /// Pulls `reference` into the store (see the module docs for the order of things).
    pub async fn pull(&self, reference: &Reference, opts: &PullOptions) -> Result<Pulled> {
        self.try_mirrors_then_registry(reference, move |host| async move {
            self.pull_from(reference, &host, opts).await
        })
        .await
    }

    /// Runs `fetch` against each mirror configured for the reference's registry, then the
    /// registry itself, until one succeeds (a mirror's failure falls through; the registry's
    /// is the answer), with abandoned downloads cleaned and GC held off meanwhile. Shared by
    /// image and plugin pulls.
    pub(crate) async fn try_mirrors_then_registry<T, F, Fut>(
        &self,
        reference: &Reference,
        mut fetch: F,
    ) -> Result<T>
    where
        F: FnMut(String) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        self.layout.clean_abandoned()?;
        let _gc = self.gc_guard_shared()?;
        let mut hosts: Vec<String> = self.config.registry(&reference.registry).mirrors.clone();
        hosts.push(reference.registry.clone());
        let mut last = None;
        for host in hosts {
            let is_registry = host == reference.registry;
            match fetch(host).await {
                Ok(p) => return Ok(p),
                Err(e) if !is_registry => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::NotFound {
            reference: reference.to_string(),
        }))
    }

    async fn pull_from(
        &self,
        reference: &Reference,
        host: &str,
        opts: &PullOptions,
    ) -> Result<Pulled> {
        let remote = Arc::new(Remote::connect(reference, host, &self.config, &self.dirs).await?);
        let (top_bytes, top_digest) = remote.manifest(reference, None).await?;
        opts.progress.resolved(reference, &top_digest);
        let top = parse_json(&top_bytes, "manifest")?;
        let mut blobs_to_keep = vec![(top_digest.clone(), top_bytes.clone())];
        let (manifest_bytes, manifest_digest, manifest_type, platform) = match manifest_kind(&top)?
        {
            OCI_INDEX | DOCKER_LIST => {
                let entries = top["manifests"].as_array().cloned().unwrap_or_default();
                let chosen = entries
                    .iter()
                    .find(|m| opts.platform.matches(&m["platform"]))
                    .ok_or_else(|| Error::NoPlatform {
                        reference: reference.to_string(),
                        platform: opts.platform.to_string(),
                        available: entries
                            .iter()
                            .map(|m| describe(&m["platform"]))
                            .collect::<Vec<_>>()
                            .join(", "),
                    })?;
                let d = descriptor(chosen, "index entry")?;
                if d.size > MAX_MANIFEST_SIZE {
                    return Err(Error::TooLarge {
                        what: format!("the manifest {} the index of {reference} names", d.digest),
                        limit: MAX_MANIFEST_SIZE,
                    });
                }
                let (b, dg) = remote.manifest(reference, Some(&d.digest)).await?;
                let doc = parse_json(&b, "manifest")?;
                let kind = manifest_kind(&doc)?;
                if kind == OCI_INDEX || kind == DOCKER_LIST {
                    return Err(Error::UnsupportedMediaType("nested image index".into()));
                }
                blobs_to_keep.push((dg.clone(), b.clone()));
                (b, dg, kind, Some(chosen["platform"].clone()))
            }
            kind => (top_bytes.clone(), top_digest.clone(), kind, None),
        };
        let manifest = parse_json(&manifest_bytes, "manifest")?;
        let config_desc = descriptor(&manifest["config"], "config")?;
        if !matches!(
            config_desc.media_type.as_str(),
            "application/vnd.oci.image.config.v1+json"
                | "application/vnd.docker.container.image.v1+json"
        ) {
            return Err(Error::UnsupportedMediaType(format!(
                "{} (an artifact, not a container image)",
                config_desc.media_type
            )));
        }
        let layers: Vec<Descriptor> = manifest["layers"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|l| descriptor(l, "layer"))
            .collect::<Result<_>>()?;
        if let Some(l) = layers.iter().find(|l| !layer_type_ok(&l.media_type)) {
            return Err(Error::UnsupportedMediaType(l.media_type.clone()));
        }

        if config_desc.size > MAX_CONFIG_SIZE {
            return Err(Error::TooLarge {
                what: format!("the image config of {reference}"),
                limit: MAX_CONFIG_SIZE,
            });
        }
        if !self.layout.has_blob(&config_desc.digest) {
            let noop = |_: u64| {};
            remote
                .blob(
                    reference,
                    &config_desc,
                    || self.layout.ingest(&config_desc.digest),
                    &noop,
                )
                .await?;
        }
        let config = parse_json(&self.layout.read_blob(&config_desc.digest)?, "image config")?;
        let diff_ids = diff_ids(&config)?;
        if diff_ids.len() != layers.len() {
            return Err(Error::Registry {
                registry: host.to_string(),
                detail: format!(
                    "image config lists {} layers but the manifest has {}",
                    diff_ids.len(),
                    layers.len()
                ),
            });
        }
        let chains = chain_ids(&diff_ids);

        let sem = Arc::new(tokio::sync::Semaphore::new(3));
        let mut tasks = tokio::task::JoinSet::new();
        for ((desc, diff_id), chain) in layers
            .iter()
            .cloned()
            .zip(diff_ids.iter().cloned())
            .zip(chains.iter().cloned())
        {
            let dest = self.layer_dir(&chain);
            let have_blob = self.layout.has_blob(&desc.digest);
            opts.progress
                .layer(&desc.digest, desc.size, dest.exists() && have_blob);
            if dest.exists() && have_blob {
                opts.progress.layer_done(&desc.digest);
                continue;
            }
            let (remote, sem, layout, unpacker, progress, reference) = (
                remote.clone(),
                sem.clone(),
                self.layout.clone(),
                opts.unpacker.clone(),
                opts.progress.clone(),
                reference.clone(),
            );
            let layers_dir = self.dirs.layers();
            let max_size = self.config.max_layer_size();
            tasks.spawn(async move {
                if !have_blob {
                    let _permit = sem.acquire_owned().await.map_err(|_| Error::Registry {
                        registry: String::new(),
                        detail: "cancelled".into(),
                    })?;
                    let id = desc.digest.clone();
                    let p = progress.clone();
                    let report = move |n: u64| p.downloading(&id, n);
                    remote
                        .blob(&reference, &desc, || layout.ingest(&desc.digest), &report)
                        .await?;
                }
                progress.extracting(&desc.digest);
                let rep = if dest.exists() {
                    UnpackReport::default()
                } else {
                    let blob = layout.blob_path(&desc.digest);
                    tokio::task::spawn_blocking(move || {
                        unpack_into_place(&*unpacker, &blob, &diff_id, &layers_dir, &dest, max_size)
                    })
                    .await
                    .map_err(|e| Error::Registry {
                        registry: String::new(),
                        detail: format!("unpack task failed: {e}"),
                    })??
                };
                progress.layer_done(&desc.digest);
                Ok::<UnpackReport, Error>(rep)
            });
        }
        let mut notes = Vec::new();
        let (mut skipped, mut xattrs) = (0, 0);
        while let Some(r) = tasks.join_next().await {
            let rep = r.map_err(|e| Error::Registry {
                registry: String::new(),
                detail: format!("layer task failed: {e}"),
            })??;
            skipped += rep.skipped_devices;
            xattrs += rep.ignored_xattrs;
        }
        if skipped > 0 {
            notes.push(format!(
                "{skipped} device node(s) skipped: creating devices needs root"
            ));
        }
        if xattrs > 0 {
            notes.push(format!(
                "{xattrs} extended attribute(s) not kept: the kernel refused them to this user"
            ));
        }

        for (d, b) in &blobs_to_keep {
            self.layout.put_blob(d, b)?;
        }
        let up_to_date = self.record_image(
            &reference.to_string(),
            Descriptor {
                media_type: manifest_type.to_string(),
                digest: manifest_digest,
                size: manifest_bytes.len() as u64,
                annotations: BTreeMap::new(),
                platform,
            },
            Some(&top_digest),
            &chains,
        )?;
        Ok(Pulled {
            reference: reference.clone(),
            id: config_desc.digest,
            repo_digest: top_digest,
            notes,
            up_to_date,
        })
    }

    /// Lists a complete image (manifest and blobs stored, layers unpacked) under `name` in
    /// index.json, replacing what the name pointed at; returns whether it already pointed here.
    pub(crate) fn record_image(
        &self,
        name: &str,
        mut entry: Descriptor,
        repo_digest: Option<&Digest>,
        chains: &[Digest],
    ) -> Result<bool> {
        let unpacked: u64 = chains.iter().map(|c| self.layer_size(c)).sum();
        entry
            .annotations
            .insert(REF_NAME.to_string(), name.to_string());
        if let Some(d) = repo_digest {
            entry
                .annotations
                .insert(REPO_DIGEST.to_string(), d.to_string());
        }
        entry
            .annotations
            .insert(UNPACKED_SIZE.to_string(), unpacked.to_string());
        entry.annotations.insert(
            PULLED_AT.to_string(),
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        );
        let name = name.to_string();
        self.layout.update_index(|idx| {
            let same = idx
                .manifests
                .iter()
                .any(|m| m.annotations.get(REF_NAME) == Some(&name) && m.digest == entry.digest);
            idx.manifests
                .retain(|m| m.annotations.get(REF_NAME) != Some(&name));
            idx.manifests.push(entry);
            Ok(same)
        })
    }

    /// The directory holding the unpacked layer with this chain id.
    pub fn layer_dir(&self, chain: &Digest) -> PathBuf {
        self.dirs.layers().join(chain.hex())
    }

    /// The recorded uncompressed size of an unpacked layer (0 if unknown).
    pub(crate) fn layer_size(&self, chain: &Digest) -> u64 {
        std::fs::read_to_string(self.dirs.layers().join(format!("{}.size", chain.hex())))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_kinds() {
        assert_eq!(
            manifest_kind(&serde_json::json!({"mediaType": DOCKER_LIST})).unwrap(),
            DOCKER_LIST
        );
        assert_eq!(
            manifest_kind(&serde_json::json!({"schemaVersion": 2, "layers": []})).unwrap(),
            OCI_MANIFEST
        );
        assert!(manifest_kind(&serde_json::json!({"schemaVersion": 1}))
            .unwrap_err()
            .to_string()
            .contains("schema 1"));
        assert!(manifest_kind(&serde_json::json!({"mediaType": "application/x-helm"})).is_err());
    }
}
