//! `save` and `load`: images as one tar file, for machines without a registry. `save` writes an
//! OCI image layout that also carries Docker's `manifest.json`, as `docker save` does since
//! Docker 25, so docker, podman and skopeo read it either way. `load` reads that, an OCI archive
//! (skopeo's `oci-archive:`), or a classic docker archive (`docker save`, skopeo's
//! `docker-archive:`). Everything read is verified: blobs by their digests, layers by their
//! diff_ids; the archive is unpacked through the confined unpacker, so a hostile one cannot
//! write outside its scratch directory.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::images::ImageStore;
use crate::layers::{chain_ids, layer_type_ok, unpack_into_place, LayerUnpacker};
use crate::layout::Descriptor;
use crate::reference::Reference;

use crate::json::parse_json as json;
use crate::registry::{DOCKER_LIST, MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE, OCI_INDEX, OCI_MANIFEST};

fn bad(reason: impl Into<String>) -> Error {
    Error::BadLayer {
        layer: "archive".into(),
        reason: reason.into(),
    }
}

/// One image found in an archive: its names, its manifest, and where its blobs are (paths in
/// the unpacked archive at `root`, always opened inside it).
struct Found {
    names: Vec<String>,
    manifest: Vec<u8>,
    media_type: String,
    root: PathBuf,
    blobs: BTreeMap<Digest, PathBuf>,
}

/// Opens the regular file `rel` of the unpacked archive at `root`, resolved inside it: the
/// archive's own symlinks can never make `load` read a host file (or a device, or a fifo).
fn open_in(root: &Path, rel: &Path) -> Result<std::fs::File> {
    match crate::inroot::open_file_in_root(root, &rel.to_string_lossy()) {
        Ok(Some(f)) => Ok(f),
        Ok(None) => Err(bad(format!("{} is missing", rel.display()))),
        Err(e) => Err(bad(e.to_string())),
    }
}

/// Reads the regular file `rel` of the unpacked archive (see [`open_in`]), at most `cap` bytes.
fn read_in(root: &Path, rel: &str, cap: u64) -> Result<Vec<u8>> {
    match crate::inroot::read_file_in_root(root, rel, cap) {
        Ok(Some(b)) => Ok(b),
        Ok(None) => Err(bad(format!("{rel} is missing"))),
        Err(e) => Err(bad(e.to_string())),
    }
}

impl ImageStore {
    /// Writes the images `names` to `out` as one tar (see the module doc).
    pub fn save(&self, names: &[String], out: impl Write) -> Result<()> {
        let mut b = tar::Builder::new(out);
        let mut blobs = BTreeSet::new();
        let mut index = Vec::new();
        let mut docker = Vec::new();
        for name in names {
            let img = self
                .find(name)?
                .into_iter()
                .next()
                .ok_or_else(|| Error::ImageNotLocal(name.clone()))?;
            let manifest_bytes = self.layout.read_blob(&img.manifest)?;
            let manifest = json(&manifest_bytes, "manifest")?;
            let config = Digest::parse(manifest["config"]["digest"].as_str().unwrap_or(""))?;
            let layers: Vec<Digest> = manifest["layers"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|l| Digest::parse(l["digest"].as_str().unwrap_or("")))
                .collect::<Result<_>>()?;
            blobs.insert(img.manifest.clone());
            blobs.insert(config.clone());
            blobs.extend(layers.iter().cloned());
            let r = Reference::parse(&img.reference)?;
            let tag = r.tag.clone().unwrap_or_else(|| "latest".into());
            index.push(serde_json::json!({
                "mediaType": manifest["mediaType"].as_str().unwrap_or(OCI_MANIFEST),
                "digest": img.manifest.to_string(), "size": manifest_bytes.len(),
                "annotations": {
                    "io.containerd.image.name": img.reference,
                    "org.opencontainers.image.ref.name": tag,
                },
            }));
            let path = |d: &Digest| format!("blobs/sha256/{}", d.hex());
            docker.push(serde_json::json!({
                "Config": path(&config),
                "RepoTags": [img.reference],
                "Layers": layers.iter().map(path).collect::<Vec<_>>(),
            }));
        }
        // Entries belong to whoever saves (as tar does): a rootless reader that keeps owners
        // (skopeo's oci-archive) can then unpack them.
        let (uid, gid) = (
            u64::from(rustix::process::getuid().as_raw()),
            u64::from(rustix::process::getgid().as_raw()),
        );
        let header = |size: u64, mode: u32, kind: tar::EntryType| {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(kind);
            h.set_size(size);
            h.set_mode(mode);
            h.set_uid(uid);
            h.set_gid(gid);
            h.set_mtime(0);
            h
        };
        for d in ["blobs/", "blobs/sha256/"] {
            b.append_data(
                &mut header(0, 0o755, tar::EntryType::Directory),
                d,
                std::io::empty(),
            )
            .ctx(|| format!("writing {d} to the archive"))?;
        }
        let mut add = |name: &str, bytes: &[u8]| -> Result<()> {
            let mut h = header(bytes.len() as u64, 0o644, tar::EntryType::Regular);
            b.append_data(&mut h, name, bytes)
                .ctx(|| format!("writing {name} to the archive"))
        };
        add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        let index =
            serde_json::json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index });
        add("index.json", index.to_string().as_bytes())?;
        add(
            "manifest.json",
            serde_json::Value::Array(docker).to_string().as_bytes(),
        )?;
        for d in &blobs {
            let p = self.layout.blob_path(d);
            let mut f = std::fs::File::open(&p).ctx(|| format!("opening {}", p.display()))?;
            let size = f.metadata().ctx(|| p.display().to_string())?.len();
            let mut h = header(size, 0o644, tar::EntryType::Regular);
            b.append_data(&mut h, format!("blobs/sha256/{}", d.hex()), &mut f)
                .ctx(|| format!("writing blob {d} to the archive"))?;
        }
        b.into_inner()
            .and_then(|mut w| w.flush())
            .ctx(|| "finishing the archive".to_string())
    }

    /// Reads images from a tar `input` into the store (see the module doc); returns the names
    /// they are listed under.
    pub fn load(&self, input: impl Read, unpacker: &dyn LayerUnpacker) -> Result<Vec<String>> {
        let _gc = self.gc_guard_shared()?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let scratch = self
            .dirs
            .tmp()
            .join(format!("load-{}.{nanos}", std::process::id()));
        std::fs::create_dir_all(&scratch).ctx(|| format!("creating {}", scratch.display()))?;
        let res = self.load_from(input, unpacker, &scratch);
        let _ = crate::unpack::remove_tree(&scratch);
        res
    }

    fn load_from(
        &self,
        input: impl Read,
        unpacker: &dyn LayerUnpacker,
        dir: &Path,
    ) -> Result<Vec<String>> {
        crate::unpack::unpack_archive(input, dir, crate::unpack::UnpackOptions::default())?;
        let found = if dir.join("index.json").is_file() {
            oci_images(dir)?
        } else if dir.join("manifest.json").is_file() {
            docker_images(dir)?
        } else {
            return Err(bad(
                "neither an OCI layout (index.json) nor a docker archive (manifest.json)",
            ));
        };
        let mut loaded = Vec::new();
        for img in found {
            loaded.extend(self.import(img, unpacker)?);
        }
        Ok(loaded)
    }

    /// Stores one image's blobs (each verified), unpacks its layers and lists its names.
    fn import(&self, img: Found, unpacker: &dyn LayerUnpacker) -> Result<Vec<String>> {
        let manifest = json(&img.manifest, "manifest")?;
        let config_digest = Digest::parse(manifest["config"]["digest"].as_str().unwrap_or(""))?;
        let mut layers = Vec::new();
        for l in manifest["layers"].as_array().into_iter().flatten() {
            let mt = l["mediaType"].as_str().unwrap_or("");
            if !layer_type_ok(mt) {
                return Err(Error::UnsupportedMediaType(mt.to_string()));
            }
            layers.push(Digest::parse(l["digest"].as_str().unwrap_or(""))?);
        }
        for d in layers.iter().chain(std::iter::once(&config_digest)) {
            if self.layout.has_blob(d) {
                continue;
            }
            let src = img
                .blobs
                .get(d)
                .ok_or_else(|| bad(format!("blob {d} is missing")))?;
            let mut from = open_in(&img.root, src)?;
            let size = from.metadata().ctx(|| src.display().to_string())?.len();
            let mut ingest = self.layout.ingest(d)?;
            std::io::copy(&mut from, &mut ingest).ctx(|| format!("storing blob {d}"))?;
            ingest.commit(size)?;
        }
        let config = json(&self.layout.read_blob(&config_digest)?, "image config")?;
        let diff_ids = crate::layers::diff_ids(&config)?;
        if diff_ids.len() != layers.len() {
            return Err(bad(format!(
                "the image config lists {} layers but the manifest has {}",
                diff_ids.len(),
                layers.len()
            )));
        }
        let chains = chain_ids(&diff_ids);
        for ((layer, diff_id), chain) in layers.iter().zip(&diff_ids).zip(&chains) {
            let dest = self.layer_dir(chain);
            if !dest.exists() {
                let blob = self.layout.blob_path(layer);
                unpack_into_place(
                    unpacker,
                    &blob,
                    diff_id,
                    &self.dirs.layers(),
                    &dest,
                    self.config.max_layer_size(),
                )?;
            }
        }
        let manifest_digest = Digest::of(&img.manifest);
        self.layout.put_blob(&manifest_digest, &img.manifest)?;
        for name in &img.names {
            self.record_image(
                name,
                Descriptor {
                    media_type: img.media_type.clone(),
                    digest: manifest_digest.clone(),
                    size: img.manifest.len() as u64,
                    annotations: BTreeMap::new(),
                    platform: None,
                },
                None,
                &chains,
            )?;
        }
        Ok(img.names)
    }
}

/// The blob files of an OCI layout, by digest (as named; verified when stored), as paths
/// inside the layout.
fn layout_blobs(dir: &Path) -> BTreeMap<Digest, PathBuf> {
    let mut out = BTreeMap::new();
    if let Ok(rd) = std::fs::read_dir(dir.join("blobs/sha256")) {
        for e in rd.flatten() {
            if let Ok(d) = Digest::parse(&format!("sha256:{}", e.file_name().to_string_lossy())) {
                let rel = PathBuf::from(format!("blobs/sha256/{}", d.hex()));
                out.insert(d, rel);
            }
        }
    }
    out
}

/// The name an OCI index entry gives its image: containerd's full-name annotation, or a
/// reference-looking ref.name; a bare tag gets `localhost/loaded:TAG`.
fn oci_name(annotations: &serde_json::Value) -> Result<String> {
    if let Some(full) = annotations["io.containerd.image.name"].as_str() {
        return Ok(Reference::parse(full)?.to_string());
    }
    match annotations["org.opencontainers.image.ref.name"].as_str() {
        Some(r) if r.contains(':') || r.contains('/') => Ok(Reference::parse(r)?.to_string()),
        Some(tag) => Ok(Reference::parse(&format!("localhost/loaded:{tag}"))?.to_string()),
        None => Ok(Reference::parse("localhost/loaded:latest")?.to_string()),
    }
}

fn oci_images(dir: &Path) -> Result<Vec<Found>> {
    let blobs = layout_blobs(dir);
    let read = |d: &Digest| -> Result<Vec<u8>> {
        let p = blobs
            .get(d)
            .ok_or_else(|| bad(format!("blob {d} is missing")))?;
        let b = read_in(dir, &p.to_string_lossy(), MAX_CONFIG_SIZE)?;
        if &Digest::of(&b) != d {
            return Err(Error::DigestMismatch {
                expected: d.to_string(),
                actual: Digest::of(&b).to_string(),
            });
        }
        Ok(b)
    };
    let index = json(
        &read_in(dir, "index.json", MAX_MANIFEST_SIZE)?,
        "index.json",
    )?;
    let mut out = Vec::new();
    for m in index["manifests"].as_array().into_iter().flatten() {
        let d = Digest::parse(m["digest"].as_str().unwrap_or(""))?;
        let mut bytes = read(&d)?;
        let mut media_type = m["mediaType"].as_str().unwrap_or(OCI_MANIFEST).to_string();
        if media_type == OCI_INDEX || media_type == DOCKER_LIST {
            // A multi-platform image: this machine's entry.
            let idx = json(&bytes, "image index")?;
            let host = crate::platform::Platform::host();
            let chosen = idx["manifests"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|e| host.matches(&e["platform"]))
                .ok_or_else(|| bad(format!("no image for {host} in the archive's index")))?;
            bytes = read(&Digest::parse(chosen["digest"].as_str().unwrap_or(""))?)?;
            media_type = chosen["mediaType"]
                .as_str()
                .unwrap_or(OCI_MANIFEST)
                .to_string();
        }
        out.push(Found {
            names: vec![oci_name(&m["annotations"])?],
            manifest: bytes,
            media_type,
            root: dir.to_path_buf(),
            blobs: blobs.clone(),
        });
    }
    Ok(out)
}

/// The OCI media type of a layer file (in the unpacked archive at `root`), by its first bytes.
fn layer_media_type(root: &Path, path: &Path) -> Result<&'static str> {
    let mut head = [0u8; 4];
    let n = open_in(root, path)?
        .read(&mut head)
        .ctx(|| format!("reading {}", path.display()))?;
    Ok(match &head[..n] {
        [0x1f, 0x8b, ..] => "application/vnd.oci.image.layer.v1.tar+gzip",
        [0x28, 0xb5, 0x2f, 0xfd] => "application/vnd.oci.image.layer.v1.tar+zstd",
        _ => "application/vnd.oci.image.layer.v1.tar",
    })
}

/// A docker archive's images: manifest.json names each one's config and layer files; an OCI
/// manifest is made for them (the files are the blobs, digested here).
fn docker_images(dir: &Path) -> Result<Vec<Found>> {
    let list = json(
        &read_in(dir, "manifest.json", MAX_MANIFEST_SIZE)?,
        "manifest.json",
    )?;
    let mut out = Vec::new();
    for e in list.as_array().into_iter().flatten() {
        // Digested as it streams (layers can be large), opened inside the archive.
        let file = |rel: &str| -> Result<(Digest, PathBuf, u64)> {
            let comps = crate::unpack::clean_path(rel).map_err(bad)?;
            let p = PathBuf::from(comps.join("/"));
            let mut f = open_in(dir, &p)?;
            let mut w = crate::digest::HashingWriter::new(std::io::sink());
            std::io::copy(&mut f, &mut w).ctx(|| format!("reading {rel} in the archive"))?;
            let size = w.written();
            Ok((w.finish().1, p, size))
        };
        let (cfg_digest, cfg_path, cfg_size) = file(e["Config"].as_str().unwrap_or(""))?;
        let mut blobs = BTreeMap::from([(cfg_digest.clone(), cfg_path)]);
        let mut layers = Vec::new();
        for l in e["Layers"].as_array().into_iter().flatten() {
            let (d, p, size) = file(l.as_str().unwrap_or(""))?;
            layers.push(serde_json::json!({
                "mediaType": layer_media_type(dir, &p)?, "digest": d.to_string(), "size": size,
            }));
            blobs.insert(d, p);
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": cfg_digest.to_string(), "size": cfg_size,
            },
            "layers": layers,
        });
        let names = e["RepoTags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str())
            .map(|t| Reference::parse(t).map(|r| r.to_string()))
            .collect::<Result<Vec<_>>>()?;
        let names = if names.is_empty() {
            vec![Reference::parse("localhost/loaded:latest")?.to_string()]
        } else {
            names
        };
        out.push(Found {
            names,
            manifest: manifest.to_string().into_bytes(),
            media_type: OCI_MANIFEST.into(),
            root: dir.to_path_buf(),
            blobs,
        });
    }
    Ok(out)
}
