//! Layers as the store keeps them: chain ids and diff ids, the unpacker seam (in this process, or
//! in a helper inside the user's mapping, picked by the caller), and unpack-into-place. Pull, load
//! and commit all unpack through here, so none of them imports another.

use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::unpack::{remove_tree, unpack_layer, UnpackOptions, UnpackReport};

/// How layers get unpacked: in this process, or (for a rootless user with a subuid range) in a
/// helper inside a mapped user namespace so files keep their owners. The store stays free of
/// namespace code; the CLI picks the implementation.
pub trait LayerUnpacker: Send + Sync {
    /// Creates `dest` and unpacks `blob` into it, checking the uncompressed digest; the layer may
    /// expand to at most `max_size` bytes (0: no limit).
    fn unpack(
        &self,
        blob: &Path,
        diff_id: &Digest,
        dest: &Path,
        max_size: u64,
    ) -> Result<UnpackReport>;
    /// Removes an unpacked layer directory (whose files may belong to other ids).
    fn remove(&self, dir: &Path) -> Result<()>;
}

/// Unpacks in this process; `chown` when running as real root.
pub struct InProcessUnpacker {
    /// Keep the owners named in the tar.
    pub chown: bool,
}

impl LayerUnpacker for InProcessUnpacker {
    fn unpack(
        &self,
        blob: &Path,
        diff_id: &Digest,
        dest: &Path,
        max_size: u64,
    ) -> Result<UnpackReport> {
        std::fs::create_dir(dest).ctx(|| format!("creating {}", dest.display()))?;
        unpack_layer(
            blob,
            diff_id,
            dest,
            UnpackOptions {
                chown: self.chown,
                plain: false,
                max_size,
            },
        )
    }
    fn remove(&self, dir: &Path) -> Result<()> {
        remove_tree(dir)
    }
}

/// The layer media types skiff unpacks.
pub(crate) fn layer_type_ok(mt: &str) -> bool {
    matches!(
        mt,
        "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
    )
}

/// Chain ids (OCI image spec): the identity of a layer together with everything below it.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => Digest::parse(&format!(
                "sha256:{}",
                hex::encode(Sha256::digest(format!("{prev} {d}").as_bytes()))
            ))
            .unwrap_or_else(|_| d.clone()),
        };
        out.push(next);
    }
    out
}

/// The layers' uncompressed digests an image config lists (`rootfs.diff_ids`).
pub(crate) fn diff_ids(config: &serde_json::Value) -> Result<Vec<Digest>> {
    config["rootfs"]["diff_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| Digest::parse(d.as_str().unwrap_or("")))
        .collect()
}

/// Unpacks into a private temp dir and renames it into place, so a layer dir that exists is whole.
/// Losing the race to a concurrent pull of the same layer is fine: theirs is identical.
pub(crate) fn unpack_into_place(
    unpacker: &dyn LayerUnpacker,
    blob: &Path,
    diff_id: &Digest,
    layers: &Path,
    dest: &Path,
    max_size: u64,
) -> Result<UnpackReport> {
    std::fs::create_dir_all(layers).ctx(|| format!("creating {}", layers.display()))?;
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = layers.join(format!(
        ".tmp-{}.{}.{}",
        &name[..12.min(name.len())],
        std::process::id(),
        rand_suffix()
    ));
    let rep = match unpacker.unpack(blob, diff_id, &tmp, max_size) {
        Ok(r) => r,
        Err(e) => {
            let _ = unpacker.remove(&tmp);
            return Err(e);
        }
    };
    crate::fsutil::write_atomic(
        &layers.join(format!("{name}.size")),
        rep.size.to_string().as_bytes(),
    )?;
    match std::fs::rename(&tmp, dest) {
        Ok(()) => Ok(rep),
        Err(_) if dest.exists() => {
            unpacker.remove(&tmp)?;
            Ok(rep)
        }
        Err(e) => {
            let _ = unpacker.remove(&tmp);
            Err(Error::Io {
                context: format!("moving layer into {}", dest.display()),
                source: e,
            })
        }
    }
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_spec() {
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        let c = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(c[0], a);
        assert_eq!(c[1], Digest::of(format!("{a} {b}").as_bytes()));
    }
}
