//! Local images: listing, lookup by name or id prefix, inspect, removal and garbage collection.
//! The truth is index.json plus the blobs it reaches; nothing else is recorded.

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::path::PathBuf;

use crate::config::Config;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::LockFile;
use crate::layers::{chain_ids, LayerUnpacker};
use crate::layout::{Descriptor, Layout, PULLED_AT, REF_NAME, REPO_DIGEST, UNPACKED_SIZE};
use crate::paths::Dirs;
use crate::reference::Reference;

/// The per-user image store.
pub struct ImageStore {
    /// Where everything lives.
    pub dirs: Dirs,
    /// The OCI layout with the blobs and index.json.
    pub layout: Layout,
    /// Registry settings.
    pub config: Config,
}

/// One tagged (or digest-pinned) local image, as `images` lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LocalImage {
    /// The reference it is known by.
    pub reference: String,
    /// `registry/repository`.
    pub repository: String,
    /// Tag, if any.
    pub tag: Option<String>,
    /// Image id (config digest).
    pub id: Digest,
    /// Manifest digest.
    pub manifest: Digest,
    /// Digest the registry served (index for multi-arch).
    pub repo_digest: Option<String>,
    /// Creation time from the image config (RFC 3339), if any.
    pub created: Option<String>,
    /// Unpacked size in bytes.
    pub size: u64,
    /// When it was pulled.
    pub pulled_at: Option<String>,
}

/// One step of an image's build history, as `history` lists it (newest first).
#[derive(Debug, Clone, serde::Serialize)]
pub struct HistoryEntry {
    /// When the step ran (RFC 3339), if recorded.
    pub created: Option<String>,
    /// The instruction that made the step.
    pub created_by: String,
    /// Unpacked size of the layer the step added; 0 for a step without a layer.
    pub size: u64,
    /// The step's comment.
    pub comment: String,
    /// Whether the step added no layer.
    pub empty_layer: bool,
}

/// See [`ImageStore::lease`]; released when dropped.
pub struct Lease {
    _held: fs::File,
}

/// See [`ImageStore::lock_for_gc`]; released when dropped.
pub struct GcLock {
    _held: LockFile,
}

impl ImageStore {
    /// Opens the store under `dirs` (creating the layout on first use) with the user's config.
    pub fn open(dirs: Dirs) -> Result<ImageStore> {
        let config = Config::load(&dirs.config)?;
        let layout = Layout::open(&dirs.store(), &dirs.tmp())?;
        Ok(ImageStore {
            dirs,
            layout,
            config,
        })
    }

    /// Held (shared) by pulls, so a prune (exclusive) never deletes blobs a pull has fetched but
    /// not yet recorded.
    pub(crate) fn gc_guard_shared(&self) -> Result<fs::File> {
        let p = self.dirs.data.join("gc.lock");
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .ctx(|| format!("opening {}", p.display()))?;
        f.lock_shared().ctx(|| format!("locking {}", p.display()))?;
        Ok(f)
    }

    /// A shared hold on the collector: while it lives no prune or rmi deletes anything. `run`
    /// holds one from finding an image's layers until its container record names them (from
    /// then on the record keeps them).
    pub fn lease(&self) -> Result<Lease> {
        self.gc_guard_shared().map(|f| Lease { _held: f })
    }

    /// The collector's exclusive lock, taken before deciding what is in use (so no container
    /// can be half-created meanwhile) and handed to [`ImageStore::prune`] / [`ImageStore::remove`].
    pub fn lock_for_gc(&self) -> Result<GcLock> {
        LockFile::acquire(&self.dirs.data.join("gc.lock")).map(|l| GcLock { _held: l })
    }

    /// Every local image, newest pull first.
    pub fn list(&self) -> Result<Vec<LocalImage>> {
        let mut out = Vec::new();
        for m in self.layout.index()?.manifests {
            if let Some(img) = self.describe(&m)? {
                out.push(img);
            }
        }
        out.sort_by(|a, b| {
            b.pulled_at
                .cmp(&a.pulled_at)
                .then(a.reference.cmp(&b.reference))
        });
        Ok(out)
    }

    fn describe(&self, m: &Descriptor) -> Result<Option<LocalImage>> {
        let Some(name) = m.annotations.get(REF_NAME) else {
            return Ok(None);
        };
        let Ok(r) = Reference::parse(name) else {
            return Ok(None);
        };
        let manifest = self.json_blob(&m.digest)?;
        let id = Digest::parse(manifest["config"]["digest"].as_str().unwrap_or(""))?;
        let config = self.json_blob(&id)?;
        Ok(Some(LocalImage {
            reference: name.clone(),
            repository: r.name(),
            tag: r.tag.clone(),
            id,
            manifest: m.digest.clone(),
            repo_digest: m.annotations.get(REPO_DIGEST).cloned(),
            created: config["created"].as_str().map(String::from),
            size: m
                .annotations
                .get(UNPACKED_SIZE)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
            pulled_at: m.annotations.get(PULLED_AT).cloned(),
        }))
    }

    fn json_blob(&self, d: &Digest) -> Result<serde_json::Value> {
        let b = self.layout.read_blob(d)?;
        serde_json::from_slice(&b).map_err(|source| Error::Json {
            context: format!("parsing blob {d}"),
            source,
        })
    }

    /// Gives the image `source` names (reference or id) another name, `target` (Docker's
    /// reference rules; a name already there moves to this image, as `docker tag` does).
    /// Returns the full target reference.
    pub fn tag(&self, source: &str, target: &str) -> Result<String> {
        let target = Reference::parse(target)?;
        if target.digest.is_some() {
            return Err(Error::BadReference {
                input: target.to_string(),
                reason: "a tag cannot be a digest: give NAME[:TAG]".into(),
            });
        }
        let hits = self.find(source)?;
        let Some(src) = hits.first() else {
            return Err(Error::ImageNotLocal(source.to_string()));
        };
        let full = target.to_string();
        let src_name = src.reference.clone();
        self.layout.update_index(|idx| {
            let Some(entry) = idx
                .manifests
                .iter()
                .find(|m| m.annotations.get(REF_NAME) == Some(&src_name))
                .cloned()
            else {
                return Err(Error::ImageNotLocal(source.to_string()));
            };
            idx.manifests
                .retain(|m| m.annotations.get(REF_NAME) != Some(&full));
            let mut entry = entry;
            entry.annotations.insert(REF_NAME.into(), full.clone());
            // The registry digest belongs to the name it was pulled as.
            entry.annotations.remove(REPO_DIGEST);
            idx.manifests.push(entry);
            Ok(())
        })?;
        Ok(full)
    }

    /// Finds images by reference (`busybox`, `127.0.0.1:5000/x:1`), full id or unique id prefix.
    /// A reference names one entry; an id may name several tags of the same image.
    pub fn find(&self, name: &str) -> Result<Vec<LocalImage>> {
        let all = self.list()?;
        if let Ok(r) = Reference::parse(name) {
            let full = r.to_string();
            let hits: Vec<_> = all
                .iter()
                .filter(|i| i.reference == full)
                .cloned()
                .collect();
            if !hits.is_empty() {
                return Ok(hits);
            }
        }
        let prefix = name.strip_prefix("sha256:").unwrap_or(name);
        if !prefix.is_empty()
            && prefix.len() <= 64
            && prefix
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            let hits: Vec<_> = all
                .iter()
                .filter(|i| i.id.hex().starts_with(prefix))
                .cloned()
                .collect();
            let ids: BTreeSet<_> = hits.iter().map(|i| i.id.clone()).collect();
            if ids.len() > 1 {
                return Err(Error::AmbiguousImage {
                    prefix: name.to_string(),
                    candidates: ids
                        .iter()
                        .map(|d| d.short().to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            if !hits.is_empty() {
                return Ok(hits);
            }
        }
        Err(Error::ImageNotLocal(name.to_string()))
    }

    /// Whether `rmi NAME` only takes a name away: NAME is a reference (not an id) and the image
    /// keeps another name afterwards. Docker and podman untag such a name even while a container
    /// uses the image; only the last name of an image in use needs force.
    pub fn untags_only(&self, name: &str) -> Result<bool> {
        let hits = self.find(name)?;
        let Some(hit) = hits.first() else {
            return Ok(false);
        };
        let by_reference = Reference::parse(name).is_ok_and(|r| r.to_string() == hit.reference);
        if !by_reference {
            return Ok(false);
        }
        Ok(self
            .list()?
            .iter()
            .any(|i| i.id == hit.id && i.reference != hit.reference))
    }

    /// `docker image inspect`-shaped JSON for one image.
    pub fn inspect(&self, img: &LocalImage) -> Result<serde_json::Value> {
        let config = self.json_blob(&img.id)?;
        let tags: Vec<String> = self
            .list()?
            .into_iter()
            .filter(|i| i.id == img.id && i.tag.is_some())
            .map(|i| i.reference)
            .collect();
        let digests: Vec<String> = self
            .list()?
            .into_iter()
            .filter(|i| i.id == img.id)
            .filter_map(|i| i.repo_digest.map(|d| format!("{}@{d}", i.repository)))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let c = &config["config"];
        Ok(serde_json::json!({
            "Id": img.id.to_string(),
            "RepoTags": tags,
            "RepoDigests": digests,
            "Created": config["created"],
            "Author": config["author"],
            "Architecture": config["architecture"],
            "Os": config["os"],
            "Variant": config["variant"],
            "Size": img.size,
            "Config": {
                "User": c["User"], "Env": c["Env"], "Cmd": c["Cmd"], "Entrypoint": c["Entrypoint"],
                "WorkingDir": c["WorkingDir"], "Labels": c["Labels"], "ExposedPorts": c["ExposedPorts"],
                "Volumes": c["Volumes"], "StopSignal": c["StopSignal"], "Healthcheck": c["Healthcheck"],
            },
            "RootFS": { "Type": "layers", "Layers": config["rootfs"]["diff_ids"] },
            "ManifestDigest": img.manifest.to_string(),
        }))
    }

    /// The image's unpacked layer directories, lowest first (for the runtime's overlay mount).
    pub fn layer_dirs(&self, img: &LocalImage) -> Result<Vec<PathBuf>> {
        Ok(chain_ids(&self.diff_ids(&img.id)?)
            .iter()
            .map(|c| self.layer_dir(c))
            .collect())
    }

    /// The image's history from its config, newest first, each step that added a layer given
    /// that layer's unpacked size. An image without recorded history gets one unnamed step per
    /// layer, so the sizes still show.
    pub fn history(&self, img: &LocalImage) -> Result<Vec<HistoryEntry>> {
        let config = self.json_blob(&img.id)?;
        let chains = chain_ids(&self.diff_ids(&img.id)?);
        let mut sizes = chains.iter().map(|c| self.layer_size(c));
        let steps = config["history"].as_array().cloned().unwrap_or_default();
        let mut out: Vec<HistoryEntry> = steps
            .iter()
            .map(|h| {
                let empty_layer = h["empty_layer"].as_bool().unwrap_or(false);
                HistoryEntry {
                    created: h["created"].as_str().map(String::from),
                    created_by: h["created_by"].as_str().unwrap_or("").to_string(),
                    size: if empty_layer {
                        0
                    } else {
                        sizes.next().unwrap_or(0)
                    },
                    comment: h["comment"].as_str().unwrap_or("").to_string(),
                    empty_layer,
                }
            })
            .collect();
        // Layers the history does not account for (or no history at all).
        out.extend(sizes.map(|size| HistoryEntry {
            created: None,
            created_by: String::new(),
            size,
            comment: String::new(),
            empty_layer: false,
        }));
        out.reverse();
        Ok(out)
    }

    /// The image config (OCI image-spec JSON) of a local image.
    pub fn image_config(&self, img: &LocalImage) -> Result<serde_json::Value> {
        self.json_blob(&img.id)
    }

    fn diff_ids(&self, config: &Digest) -> Result<Vec<Digest>> {
        let c = self.json_blob(config)?;
        Ok(c["rootfs"]["diff_ids"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|d| d.as_str().and_then(|s| Digest::parse(s).ok()))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Removes images as `rmi` does: a reference untags; an id removes every tag of the image, which
    /// needs `force` when it has more than one. Returns `Untagged: …` / `Deleted: …` lines.
    ///
    /// `in_use` are layer directories that containers stack on: never collected.
    pub fn remove(
        &self,
        gc: &GcLock,
        name: &str,
        force: bool,
        unpacker: &dyn LayerUnpacker,
        in_use: &[PathBuf],
    ) -> Result<Vec<String>> {
        let hits = self.find(name)?;
        let by_id = !hits
            .iter()
            .any(|h| Reference::parse(name).is_ok_and(|r| r.to_string() == h.reference));
        if by_id && hits.len() > 1 && !force {
            return Err(Error::AmbiguousImage {
                prefix: name.to_string(),
                candidates: format!("{} (the image is referenced by several names: remove them by name, or use --force)", hits.iter().map(|h| h.reference.as_str()).collect::<Vec<_>>().join(", ")),
            });
        }
        let names: HashSet<String> = hits.iter().map(|h| h.reference.clone()).collect();
        self.layout.update_index(|idx| {
            idx.manifests.retain(|m| {
                m.annotations
                    .get(REF_NAME)
                    .is_none_or(|n| !names.contains(n))
            });
            Ok(())
        })?;
        let mut lines: Vec<String> = hits
            .iter()
            .map(|h| format!("Untagged: {}", h.reference))
            .collect();
        let id = hits[0].id.clone();
        if !self.list()?.iter().any(|i| i.id == id) {
            lines.push(format!("Deleted: {id}"));
            self.prune(gc, unpacker, in_use)?;
        }
        Ok(lines)
    }

    /// Deletes every blob and layer directory no image references, and leftovers of killed pulls.
    /// Layer directories in `in_use` (those containers stack on) are kept whatever the images say.
    pub fn prune(
        &self,
        _gc: &GcLock,
        unpacker: &dyn LayerUnpacker,
        in_use: &[PathBuf],
    ) -> Result<PruneReport> {
        let _lock = self.layout.lock()?;
        let mut report = PruneReport {
            reclaimed: self.layout.clean_abandoned()?,
            ..Default::default()
        };
        let mut keep_blobs = HashSet::new();
        let mut keep_layers: HashSet<String> = in_use
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        for m in self.layout.index()?.manifests {
            keep_blobs.insert(m.digest.clone());
            if let Some(d) = m
                .annotations
                .get(REPO_DIGEST)
                .and_then(|d| Digest::parse(d).ok())
            {
                keep_blobs.insert(d.clone());
                // An index's other entries are not ours to keep, but the index blob itself is.
            }
            let Ok(manifest) = self.json_blob(&m.digest) else {
                continue;
            };
            if let Some(cfg) = manifest["config"]["digest"]
                .as_str()
                .and_then(|d| Digest::parse(d).ok())
            {
                if let Ok(diff_ids) = self.diff_ids(&cfg) {
                    keep_layers.extend(
                        chain_ids(&diff_ids)
                            .into_iter()
                            .map(|c| c.hex().to_string()),
                    );
                }
                keep_blobs.insert(cfg);
            }
            for l in manifest["layers"].as_array().into_iter().flatten() {
                if let Some(d) = l["digest"].as_str().and_then(|d| Digest::parse(d).ok()) {
                    keep_blobs.insert(d);
                }
            }
        }
        for d in self.layout.blobs()? {
            if !keep_blobs.contains(&d) {
                let p = self.layout.blob_path(&d);
                report.reclaimed += fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
                fs::remove_file(&p).ctx(|| format!("removing {}", p.display()))?;
                report.blobs += 1;
            }
        }
        let layers = self.dirs.layers();
        if let Ok(rd) = fs::read_dir(&layers) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let stale_tmp = name.starts_with(".tmp-")
                    && name
                        .split('.')
                        .nth(2)
                        .and_then(|p| p.parse::<u32>().ok())
                        .is_some_and(|p| !crate::fsutil::pid_alive(p));
                if let Some(hex) = name.strip_suffix(".size") {
                    if !keep_layers.contains(hex) {
                        let _ = fs::remove_file(e.path());
                    }
                } else if name.starts_with(".rm-") {
                    // An earlier removal was interrupted (we hold the gc lock: nobody else is on it).
                    unpacker.remove(&e.path())?;
                } else if stale_tmp || (!name.starts_with('.') && !keep_layers.contains(&name)) {
                    report.reclaimed += fs::read_to_string(layers.join(format!("{name}.size")))
                        .ok()
                        .and_then(|s| s.trim().parse::<u64>().ok())
                        .unwrap_or(0);
                    // Out of its name first, so an interrupted removal never leaves a half layer
                    // that a later pull would take as unpacked.
                    let tomb = layers.join(format!(".rm-{}", name.trim_start_matches('.')));
                    fs::rename(e.path(), &tomb)
                        .ctx(|| format!("removing {}", e.path().display()))?;
                    unpacker.remove(&tomb)?;
                    report.layers += 1;
                }
            }
        }
        Ok(report)
    }
}

/// What a prune removed.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct PruneReport {
    /// Blobs deleted.
    pub blobs: u32,
    /// Unpacked layer directories deleted.
    pub layers: u32,
    /// Bytes freed (blobs on disk plus recorded layer sizes).
    pub reclaimed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    fn store_in(dir: &std::path::Path) -> ImageStore {
        let dirs = Dirs {
            data: dir.join("data"),
            config: dir.join("config"),
            cache: dir.join("cache"),
            runtime: dir.join("run"),
        };
        ImageStore::open(dirs).unwrap()
    }

    #[test]
    fn a_lease_holds_off_the_collector_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(dir.path());
        let lease = store.lease().unwrap();
        // Another lease (a second run, a pull) is not held off.
        let second = store.lease().unwrap();
        drop(second);
        let (tx, rx) = mpsc::channel();
        let other = store_in(dir.path());
        let collector = std::thread::spawn(move || {
            let gc = other.lock_for_gc().unwrap();
            tx.send(()).unwrap();
            drop(gc);
        });
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "the collector must wait for the lease"
        );
        drop(lease);
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the collector runs once the lease is gone");
        collector.join().unwrap();
    }
}
