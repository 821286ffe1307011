//! `commit`'s store side: a new image made of a container's base image plus one layer (the
//! container's changes, as a layer tar), with the container's settings as its config — stored,
//! unpacked and listed exactly as a pulled image, so it runs, saves and pushes like one.

use std::collections::BTreeMap;
use std::io::Read;

use crate::digest::{Digest, HashingWriter};
use crate::error::{Error, IoContext, Result};
use crate::images::{ImageStore, LocalImage};
use crate::layers::{chain_ids, unpack_into_place, LayerUnpacker};
use crate::layout::Descriptor;
use crate::reference::Reference;

use crate::json::parse_json;
use crate::registry::OCI_MANIFEST;

const GZIP_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// What the new image's config takes from the container (Docker's commit does the same).
#[derive(Debug, Clone, Default)]
pub struct CommitSettings {
    /// The container's entrypoint.
    pub entrypoint: Vec<String>,
    /// The container's command.
    pub cmd: Vec<String>,
    /// Its environment.
    pub env: Vec<String>,
    /// Its working directory.
    pub workdir: String,
    /// Its user.
    pub user: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// The ports it declares (`80/tcp`: its image's, `--expose`'s, the published ones); none
    /// keeps the base's.
    pub exposed_ports: Vec<String>,
    /// Its healthcheck in Docker's `Healthcheck` form; none keeps the base's.
    pub healthcheck: Option<serde_json::Value>,
    /// `-a`.
    pub author: Option<String>,
    /// `-m`.
    pub message: Option<String>,
}

/// What a commit was checked to have before any change is read: see
/// [`ImageStore::commit_target`].
#[derive(Debug, Clone)]
pub struct CommitTarget {
    /// The new image's full name.
    reference: String,
    /// The image the container was made from, still in the store.
    base: LocalImage,
}

/// An empty argv list as the image config spells "none": null, as Docker writes it (an empty
/// list would read as "explicitly nothing" to some tools).
fn none_if_empty(v: &[String]) -> serde_json::Value {
    if v.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::json!(v)
    }
}

/// The container's environment as the new image keeps it: without the `HOSTNAME=` the runtime
/// set for the old container (its name, meaningless in a new one), unless the base image itself
/// had that very entry.
fn committed_env(env: &[String], base_env: &serde_json::Value) -> Vec<String> {
    let in_base = |e: &String| {
        base_env
            .as_array()
            .is_some_and(|b| b.iter().any(|x| x.as_str() == Some(e.as_str())))
    };
    env.iter()
        .filter(|e| !e.starts_with("HOSTNAME=") || in_base(e))
        .cloned()
        .collect()
}

impl ImageStore {
    /// Checks what a commit needs before any change is read: a valid new name, and the base
    /// image (config digest `base`) still in the store.
    pub fn commit_target(&self, base: &Digest, name: &str) -> Result<CommitTarget> {
        let reference = Reference::parse(name)?.to_string();
        let base = self
            .list()?
            .into_iter()
            .find(|i| &i.id == base)
            .ok_or_else(|| Error::ImageNotLocal(format!(
                "{base} (the container's image is no longer in the store: pull it again, then commit)"
            )))?;
        Ok(CommitTarget { reference, base })
    }

    /// Makes the image `target` names from its base plus the layer tar on `layer`; returns the
    /// new image's id (its config digest).
    pub fn commit(
        &self,
        target: &CommitTarget,
        layer: impl Read,
        s: &CommitSettings,
        unpacker: &dyn LayerUnpacker,
    ) -> Result<Digest> {
        let _gc = self.gc_guard_shared()?;
        let (reference, base_img) = (&target.reference, &target.base);
        let base = &base_img.id;
        let base_manifest = parse_json(
            &self.layout.read_blob(&base_img.manifest)?,
            "the base manifest",
        )?;

        let (diff_id, digest, size) = self.store_layer(layer)?;

        // The config: the base's, with the container's settings, the new layer and history.
        let mut config = parse_json(&self.layout.read_blob(base)?, "the base config")?;
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        config["created"] = now.clone().into();
        if let Some(a) = &s.author {
            config["author"] = a.clone().into();
        }
        let env = committed_env(&s.env, &config["config"]["Env"]);
        let c = &mut config["config"];
        c["Entrypoint"] = none_if_empty(&s.entrypoint);
        c["Cmd"] = none_if_empty(&s.cmd);
        c["Env"] = serde_json::json!(env);
        c["WorkingDir"] = serde_json::json!(s.workdir);
        c["User"] = serde_json::json!(s.user);
        c["Labels"] = serde_json::json!(s.labels);
        if let Some(h) = &s.healthcheck {
            c["Healthcheck"] = h.clone();
        }
        if !s.exposed_ports.is_empty() {
            let ports: serde_json::Map<String, serde_json::Value> = s
                .exposed_ports
                .iter()
                .map(|k| (k.clone(), serde_json::json!({})))
                .collect();
            c["ExposedPorts"] = ports.into();
        }
        match config["rootfs"]["diff_ids"].as_array_mut() {
            Some(d) => d.push(diff_id.to_string().into()),
            None => {
                config["rootfs"] =
                    serde_json::json!({"type": "layers", "diff_ids": [diff_id.to_string()]})
            }
        }
        let history = serde_json::json!({
            "created": now, "created_by": "skiff commit",
            "comment": s.message.clone().unwrap_or_default(),
            "author": s.author.clone().unwrap_or_default(),
        });
        match config["history"].as_array_mut() {
            Some(h) => h.push(history),
            None => config["history"] = serde_json::json!([history]),
        }
        let layers = base_manifest["layers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        self.finish_image(
            reference,
            &config,
            layers,
            (&diff_id, &digest, size),
            unpacker,
        )
    }

    /// `import`: a one-layer image named `reference` from the tar on `input` (plain or gzipped;
    /// `shown` names it in errors), with `settings` as its config's `config` section and
    /// `comment` as its one history step's; returns the new image's id. Nothing is stored when
    /// the input is not a tar.
    pub fn import_tar(
        &self,
        reference: &str,
        input: impl Read + 'static,
        shown: &str,
        settings: serde_json::Value,
        comment: &str,
        unpacker: &dyn LayerUnpacker,
    ) -> Result<Digest> {
        let reference = Reference::parse(reference)?.to_string();
        let layer = plain_tar(input, shown)?;
        let _gc = self.gc_guard_shared()?;
        let (diff_id, digest, size) = self.store_layer(layer)?;
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let host = crate::platform::Platform::host();
        let mut config = serde_json::json!({
            "created": now, "architecture": host.architecture, "os": host.os,
            "config": settings,
            "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
            "history": [{"created": now, "created_by": "skiff import", "comment": comment}],
        });
        if let Some(v) = host.variant {
            config["variant"] = v.into();
        }
        self.finish_image(
            &reference,
            &config,
            Vec::new(),
            (&diff_id, &digest, size),
            unpacker,
        )
    }

    /// Stores the layer tar on `layer` gzipped as a blob (through scratch, while both digests
    /// are taken); returns its diff id, blob digest and compressed size.
    fn store_layer(&self, layer: impl Read) -> Result<(Digest, Digest, u64)> {
        let tmp = self.dirs.tmp().join(format!(
            "commit-{}.{}.partial",
            std::process::id(),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
        ));
        std::fs::create_dir_all(self.dirs.tmp()).ctx(|| "creating tmp".to_string())?;
        let written = (|| -> Result<(Digest, Digest, u64)> {
            let file = std::fs::File::create(&tmp).ctx(|| format!("creating {}", tmp.display()))?;
            let compressed = HashingWriter::new(file);
            let mut gz = flate2::write::GzEncoder::new(compressed, flate2::Compression::fast());
            let mut uncompressed = HashingWriter::new(&mut gz);
            let mut input = layer;
            std::io::copy(&mut input, &mut uncompressed).ctx(|| "reading the layer".to_string())?;
            let (_, diff_id) = uncompressed.finish();
            let compressed = gz.finish().ctx(|| "compressing the layer".to_string())?;
            let size = compressed.written();
            let (file, digest) = compressed.finish();
            file.sync_all().ctx(|| "writing the layer".to_string())?;
            Ok((diff_id, digest, size))
        })();
        let (diff_id, digest, size) = match written {
            Ok(w) => w,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        if !self.layout.has_blob(&digest) {
            let mut ingest = self.layout.ingest(&digest)?;
            let copied = std::fs::File::open(&tmp)
                .and_then(|mut f| std::io::copy(&mut f, &mut ingest))
                .ctx(|| "storing the layer".to_string());
            let _ = std::fs::remove_file(&tmp);
            copied?;
            ingest.commit(size)?;
        } else {
            let _ = std::fs::remove_file(&tmp);
        }

        Ok((diff_id, digest, size))
    }

    /// Stores `config` and a manifest of `layers` plus the new one, unpacks the new layer on
    /// top of the others, and names the image `reference`; returns the new image's id.
    fn finish_image(
        &self,
        reference: &str,
        config: &serde_json::Value,
        mut layers: Vec<serde_json::Value>,
        (diff_id, digest, size): (&Digest, &Digest, u64),
        unpacker: &dyn LayerUnpacker,
    ) -> Result<Digest> {
        let config_bytes = serde_json::to_vec(config).map_err(|source| Error::Json {
            context: "encoding the new config".into(),
            source,
        })?;
        let config_digest = Digest::of(&config_bytes);
        self.layout.put_blob(&config_digest, &config_bytes)?;

        layers.push(serde_json::json!({
            "mediaType": GZIP_LAYER, "digest": digest.to_string(), "size": size,
        }));
        let manifest = serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest.to_string(), "size": config_bytes.len(),
            },
            "layers": layers,
        });
        let manifest_bytes = serde_json::to_vec(&manifest).map_err(|source| Error::Json {
            context: "encoding the new manifest".into(),
            source,
        })?;
        let manifest_digest = Digest::of(&manifest_bytes);
        self.layout.put_blob(&manifest_digest, &manifest_bytes)?;

        let diff_ids = crate::layers::diff_ids(config)?;
        let chains = chain_ids(&diff_ids);
        if let Some(top) = chains.last() {
            let dest = self.layer_dir(top);
            if !dest.exists() {
                let blob = self.layout.blob_path(digest);
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
        self.record_image(
            reference,
            Descriptor {
                media_type: OCI_MANIFEST.into(),
                digest: manifest_digest,
                size: manifest_bytes.len() as u64,
                annotations: BTreeMap::new(),
                platform: None,
            },
            None,
            &chains,
        )?;
        Ok(config_digest)
    }
}

/// The tar in `input`, gunzipped when it is gzip; refused unless its first header is a tar's
/// (the `ustar` magic, POSIX or GNU), so nothing is stored for a wrong file.
fn plain_tar(input: impl Read + 'static, shown: &str) -> Result<Box<dyn Read>> {
    let mut input = std::io::BufReader::new(input);
    let head = std::io::BufRead::fill_buf(&mut input).ctx(|| format!("reading {shown}"))?;
    let mut tar: Box<dyn Read> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(input))
    } else {
        Box::new(input)
    };
    let mut first = Vec::with_capacity(512);
    (&mut tar)
        .take(512)
        .read_to_end(&mut first)
        .ctx(|| format!("reading {shown}"))?;
    if first.len() < 512 || &first[257..262] != b"ustar" {
        return Err(Error::NotTar(shown.to_string()));
    }
    Ok(Box::new(std::io::Cursor::new(first).chain(tar)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_old_hostname_stays_out_and_empty_lists_are_null() {
        let env = vec![
            "PATH=/bin".to_string(),
            "HOSTNAME=0123abcd".to_string(),
            "HOSTNAME=kept".to_string(),
        ];
        let base = serde_json::json!(["PATH=/bin", "HOSTNAME=kept"]);
        assert_eq!(
            committed_env(&env, &base),
            vec!["PATH=/bin".to_string(), "HOSTNAME=kept".to_string()]
        );
        assert!(none_if_empty(&[]).is_null());
        assert_eq!(none_if_empty(&["sh".into()]), serde_json::json!(["sh"]));
    }
}
