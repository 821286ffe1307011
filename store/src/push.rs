//! `push`: a local image to a registry — every blob the registry lacks (checked first, so a
//! second push uploads nothing), then the manifest under the tag. The store keeps compressed
//! blobs and the manifest as pulled, so what is pushed is byte-for-byte what was pulled.

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::images::ImageStore;
use crate::reference::Reference;
use crate::registry::Remote;

/// What happened to one blob of a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobPush {
    /// The registry had it.
    Exists,
    /// Uploaded.
    Pushed,
}

/// The result of a push.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// Where it went.
    pub reference: Reference,
    /// The manifest's digest (the same as the local one).
    pub digest: Digest,
    /// The manifest's size in bytes.
    pub size: usize,
}

impl ImageStore {
    /// Pushes the local image `name` to `dest` (its own name when `None`); `report` hears about
    /// each blob as it is settled.
    pub async fn push(
        &self,
        name: &str,
        dest: Option<&str>,
        report: &(dyn Fn(&Digest, BlobPush) + Send + Sync),
    ) -> Result<Pushed> {
        let img = self
            .find(name)?
            .into_iter()
            .next()
            .ok_or_else(|| Error::ImageNotLocal(name.to_string()))?;
        let reference = Reference::parse(dest.unwrap_or(&img.reference))?;
        if reference.digest.is_some() {
            return Err(Error::BadReference {
                input: reference.to_string(),
                reason: "push to a tag, not a digest".into(),
            });
        }
        let manifest_bytes = self.layout.read_blob(&img.manifest)?;
        let manifest: serde_json::Value =
            serde_json::from_slice(&manifest_bytes).map_err(|source| Error::Json {
                context: format!("parsing manifest {}", img.manifest),
                source,
            })?;
        let media_type = manifest["mediaType"]
            .as_str()
            .unwrap_or("application/vnd.oci.image.manifest.v1+json")
            .to_string();
        let mut blobs = Vec::new();
        for d in manifest["layers"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(std::iter::once(&manifest["config"]))
        {
            let digest = Digest::parse(d["digest"].as_str().unwrap_or(""))?;
            blobs.push((digest, d["size"].as_u64().unwrap_or(0)));
        }
        let remote = Remote::connect_for_push(&reference, &self.config, &self.dirs).await?;
        for (digest, size) in &blobs {
            if remote.has_blob(&reference, digest).await? {
                report(digest, BlobPush::Exists);
                continue;
            }
            let path = self.layout.blob_path(digest);
            if !path.exists() {
                return Err(Error::Registry {
                    registry: reference.registry.clone(),
                    detail: format!(
                        "blob {digest} of {name} is not in the local store: pull the image again"
                    ),
                });
            }
            remote.push_blob(&reference, digest, &path, *size).await?;
            report(digest, BlobPush::Pushed);
        }
        let size = manifest_bytes.len();
        remote
            .push_manifest(&reference, manifest_bytes, &media_type)
            .await?;
        Ok(Pushed {
            reference,
            digest: img.manifest,
            size,
        })
    }
}
