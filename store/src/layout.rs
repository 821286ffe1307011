//! The content store as an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/`), so skopeo
//! and umoci can read it. Blobs become visible only after their digest was verified.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::{Digest, HashingWriter};
use crate::error::{Error, IoContext, Result};
use crate::fsutil::{pid_alive, write_atomic, LockFile};

/// The largest manifest or index skiff reads (containerd's limit too): real ones are a few KiB,
/// an index of every platform well under 100 KiB.
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;
/// The largest image config skiff reads: real ones are a few KiB, ones with a long history some
/// hundred KiB; the whole config is parsed in memory by `pull`, `images` and `run`.
pub const MAX_CONFIG_SIZE: u64 = 8 << 20;

/// Annotation holding the full reference an index entry is known by (OCI standard name).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Annotation with the digest the registry served for the reference (an index for multi-arch images).
pub const REPO_DIGEST: &str = "io.skiff.image.repo-digest";
/// Annotation with the total unpacked size of the image's layers, in bytes.
pub const UNPACKED_SIZE: &str = "io.skiff.image.unpacked-size";
/// Annotation with the time the image was pulled (RFC 3339).
pub const PULLED_AT: &str = "io.skiff.image.pulled-at";

/// A content descriptor as in the OCI image spec.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// What the blob is.
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// Free-form annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Platform, for entries of an index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<serde_json::Value>,
}

/// The layout's top-level `index.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// Always 2.
    pub schema_version: u32,
    /// The OCI index media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// One entry per local image reference.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

/// An OCI image layout on disk.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
    tmp: PathBuf,
}

impl Layout {
    /// Opens (creating if needed) the layout at `root`; `tmp` must be on the same file system.
    pub fn open(root: &Path, tmp: &Path) -> Result<Layout> {
        let blobs = root.join("blobs/sha256");
        fs::create_dir_all(&blobs).ctx(|| format!("creating {}", blobs.display()))?;
        fs::create_dir_all(tmp).ctx(|| format!("creating {}", tmp.display()))?;
        let marker = root.join("oci-layout");
        if !marker.exists() {
            write_atomic(&marker, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        if !root.join("index.json").exists() {
            let _lock = LockFile::acquire(&root.join("../store.lock"))?;
            if !root.join("index.json").exists() {
                write_index(
                    root,
                    &Index {
                        schema_version: 2,
                        media_type: Some(OCI_INDEX.into()),
                        manifests: vec![],
                    },
                )?;
            }
        }
        Ok(Layout {
            root: root.to_path_buf(),
            tmp: tmp.to_path_buf(),
        })
    }

    /// The layout's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with `digest` lives (whether or not it is there).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    /// Whether the blob is present.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Reads a whole (small) blob: manifests and configs, refused past the config size cap so
    /// a stored (loaded, say) giant config cannot make `images` or `run` eat memory.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let p = self.blob_path(digest);
        let limit = MAX_CONFIG_SIZE;
        let file = File::open(&p).ctx(|| format!("reading blob {digest}"))?;
        let mut bytes = Vec::new();
        file.take(limit + 1)
            .read_to_end(&mut bytes)
            .ctx(|| format!("reading blob {digest}"))?;
        if bytes.len() as u64 > limit {
            return Err(Error::TooLarge {
                what: format!("blob {digest}"),
                limit,
            });
        }
        Ok(bytes)
    }

    /// Stores `bytes` under `digest` after checking they hash to it.
    pub fn put_blob(&self, digest: &Digest, bytes: &[u8]) -> Result<()> {
        let actual = Digest::of(bytes);
        if &actual != digest {
            return Err(Error::DigestMismatch {
                expected: digest.to_string(),
                actual: actual.to_string(),
            });
        }
        if self.has_blob(digest) {
            return Ok(());
        }
        let mut w = self.ingest(digest)?;
        w.write_all(bytes)
            .ctx(|| format!("writing blob {digest}"))?;
        w.commit(bytes.len() as u64)
    }

    /// Starts writing a blob: bytes go to a private temp file and are hashed as they pass.
    pub fn ingest(&self, digest: &Digest) -> Result<Ingest> {
        let path = self.tmp.join(format!(
            "{}.{}.{}.partial",
            digest.hex(),
            std::process::id(),
            unique()
        ));
        let file = File::create(&path).ctx(|| format!("creating {}", path.display()))?;
        Ok(Ingest {
            writer: Some(HashingWriter::new(file)),
            path,
            digest: digest.clone(),
            dest: self.blob_path(digest),
        })
    }

    /// Reads index.json.
    pub fn index(&self) -> Result<Index> {
        let p = self.root.join("index.json");
        let bytes = fs::read(&p).ctx(|| format!("reading {}", p.display()))?;
        serde_json::from_slice(&bytes).map_err(|source| Error::Json {
            context: format!("parsing {}", p.display()),
            source,
        })
    }

    /// Changes index.json under the store lock: read, let `f` edit, write atomically.
    pub fn update_index<T>(&self, f: impl FnOnce(&mut Index) -> Result<T>) -> Result<T> {
        let _lock = self.lock()?;
        let mut index = self.index()?;
        let out = f(&mut index)?;
        write_index(&self.root, &index)?;
        Ok(out)
    }

    /// The store-wide lock, held while index.json changes and while garbage is collected.
    pub fn lock(&self) -> Result<LockFile> {
        LockFile::acquire(&self.root.join("../store.lock"))
    }

    /// Every blob digest present in the store.
    pub fn blobs(&self) -> Result<Vec<Digest>> {
        let dir = self.root.join("blobs/sha256");
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).ctx(|| format!("listing {}", dir.display()))? {
            let e = e.ctx(|| format!("listing {}", dir.display()))?;
            if let Ok(d) = Digest::parse(&format!("sha256:{}", e.file_name().to_string_lossy())) {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Removes temp files left by pulls whose process is gone (a pull killed midway); returns bytes freed.
    pub fn clean_abandoned(&self) -> Result<u64> {
        let mut freed = 0;
        let Ok(rd) = fs::read_dir(&self.tmp) else {
            return Ok(0);
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid = name.split('.').nth(1).and_then(|p| p.parse::<u32>().ok());
            if let Some(pid) = pid {
                if !pid_alive(pid) {
                    freed += e.metadata().map(|m| m.len()).unwrap_or(0);
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        Ok(freed)
    }
}

/// A blob being written; it lands in the store only through [`Ingest::commit`], after verification.
pub struct Ingest {
    writer: Option<HashingWriter<File>>,
    path: PathBuf,
    digest: Digest,
    dest: PathBuf,
}

impl Ingest {
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.writer.as_ref().map(|w| w.written()).unwrap_or(0)
    }

    /// Checks size and digest, syncs, and renames the blob into place.
    pub fn commit(mut self, expected_size: u64) -> Result<()> {
        let Some(w) = self.writer.take() else {
            return Ok(());
        };
        let res = self.finish(w, expected_size);
        if res.is_err() {
            let _ = fs::remove_file(&self.path);
        }
        res
    }

    fn finish(&self, w: HashingWriter<File>, expected_size: u64) -> Result<()> {
        let got = w.written();
        let (file, actual) = w.finish();
        if got > expected_size {
            return Err(Error::Oversized {
                digest: self.digest.to_string(),
                want: expected_size,
            });
        }
        if got != expected_size {
            return Err(Error::Truncated {
                digest: self.digest.to_string(),
                got,
                want: expected_size,
            });
        }
        if actual != self.digest {
            return Err(Error::DigestMismatch {
                expected: self.digest.to_string(),
                actual: actual.to_string(),
            });
        }
        file.sync_all()
            .ctx(|| format!("syncing {}", self.path.display()))?;
        drop(file);
        fs::rename(&self.path, &self.dest).ctx(|| format!("storing blob {}", self.digest))?;
        if let Some(dir) = self.dest.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .ctx(|| format!("syncing {}", dir.display()))?;
        }
        Ok(())
    }
}

impl Write for Ingest {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.writer.as_mut() {
            Some(w) => w.write(buf),
            None => Err(std::io::Error::other("blob already committed")),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        if self.writer.is_some() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

fn write_index(root: &Path, index: &Index) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(index).map_err(|source| Error::Json {
        context: "encoding index.json".into(),
        source,
    })?;
    write_atomic(&root.join("index.json"), &bytes)
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (u64::from(nanos) << 16) ^ N.fetch_add(1, Ordering::Relaxed)
}

/// Reads a blob through a verifying reader: fails at EOF if the content does not match its digest.
pub fn verify_reader<R: Read>(mut r: R, digest: &Digest) -> Result<()> {
    let mut w = HashingWriter::new(std::io::sink());
    std::io::copy(&mut r, &mut w).ctx(|| format!("reading blob {digest}"))?;
    let (_, actual) = w.finish();
    if &actual != digest {
        return Err(Error::DigestMismatch {
            expected: digest.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_becomes_visible_only_when_verified() {
        let t = tempfile::tempdir().unwrap();
        let l = Layout::open(&t.path().join("store"), &t.path().join("tmp")).unwrap();
        let good = Digest::of(b"abc");
        let mut w = l.ingest(&good).unwrap();
        w.write_all(b"abd").unwrap();
        assert!(matches!(w.commit(3), Err(Error::DigestMismatch { .. })));
        assert!(!l.has_blob(&good));
        let mut w = l.ingest(&good).unwrap();
        w.write_all(b"ab").unwrap();
        assert!(matches!(w.commit(3), Err(Error::Truncated { .. })));
        assert!(!l.has_blob(&good));
        assert_eq!(
            fs::read_dir(t.path().join("tmp")).unwrap().count(),
            0,
            "failed ingests leave no temp file"
        );
        l.put_blob(&good, b"abc").unwrap();
        assert_eq!(l.read_blob(&good).unwrap(), b"abc");
        assert!(l.put_blob(&Digest::of(b"x"), b"y").is_err());
    }

    #[test]
    fn index_updates_are_atomic_and_layout_is_valid() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("store");
        let l = Layout::open(&root, &t.path().join("tmp")).unwrap();
        l.update_index(|i| {
            i.manifests.push(Descriptor {
                media_type: "m".into(),
                digest: Digest::of(b"m"),
                size: 1,
                annotations: [(REF_NAME.to_string(), "r".to_string())].into(),
                platform: None,
            });
            Ok(())
        })
        .unwrap();
        assert_eq!(l.index().unwrap().manifests.len(), 1);
        let marker: serde_json::Value =
            serde_json::from_slice(&fs::read(root.join("oci-layout")).unwrap()).unwrap();
        assert_eq!(marker["imageLayoutVersion"], "1.0.0");
        let names: Vec<_> = fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(
            names.iter().all(|n| !n.to_string_lossy().ends_with(".tmp")),
            "{names:?}"
        );
    }

    #[test]
    fn abandoned_partials_of_dead_pids_are_cleaned() {
        let t = tempfile::tempdir().unwrap();
        let l = Layout::open(&t.path().join("store"), &t.path().join("tmp")).unwrap();
        let dead =
            t.path()
                .join("tmp")
                .join(format!("{}.{}.1.partial", "a".repeat(64), 999_999_999u32));
        fs::write(&dead, b"half").unwrap();
        let live = l.ingest(&Digest::of(b"z")).unwrap();
        assert_eq!(l.clean_abandoned().unwrap(), 4);
        assert!(!dead.exists());
        assert_eq!(
            fs::read_dir(t.path().join("tmp")).unwrap().count(),
            1,
            "a live ingest is kept"
        );
        drop(live);
    }
}
