//! Wasm plugins as OCI artifacts, in the CNCF TAG-Runtime layout: an ordinary OCI image manifest
//! whose config is `application/vnd.wasm.config.v0+json` and whose one layer, `application/wasm`,
//! is the component. Any OCI registry stores them; skiff reaches them through the same [`Remote`]
//! as images, so credentials, TLS and plain-HTTP rules, retries and error messages are the same.
//!
//! [`Remote`]: crate::registry::Remote

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::images::ImageStore;
use crate::json::parse_json;
use crate::layers::layer_type_ok;
use crate::layout::Descriptor;
use crate::reference::Reference;
use crate::registry::{
    Remote, DOCKER_LIST, DOCKER_MANIFEST, MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE, OCI_INDEX,
    OCI_MANIFEST,
};

/// The config media type skiff writes (and the manifest's `artifactType`).
pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
/// The config media type of older wasm artifacts, still accepted on pull.
pub const WASM_CONFIG_V1: &str = "application/vnd.wasm.config.v1+json";
/// The media type of the layer holding the component.
pub const WASM_LAYER: &str = "application/wasm";
/// The layer media type of older wasm artifacts (wasm-to-oci), still accepted on pull.
pub const WASM_LAYER_V1: &str = "application/vnd.wasm.content.layer.v1+wasm";
/// The largest component skiff pulls or pushes: real plugins are well under a few MiB, and the
/// whole component is held in memory.
pub const MAX_COMPONENT_SIZE: u64 = 64 << 20;

/// A plugin fetched from a registry, verified against its digests.
#[derive(Debug, Clone)]
pub struct PulledWasm {
    /// The reference it was pulled by.
    pub reference: Reference,
    /// The component.
    pub bytes: Vec<u8>,
    /// The component's (the layer's) digest.
    pub digest: Digest,
    /// The digest of the manifest the registry served, to pin the plugin by.
    pub manifest_digest: Digest,
}

/// The two descriptors a wasm artifact's manifest comes down to.
#[derive(Debug, Clone, PartialEq)]
pub struct WasmManifest {
    /// The wasm config blob.
    pub config: Descriptor,
    /// The one layer: the component.
    pub layer: Descriptor,
}

/// The config document of a wasm artifact (only the fields skiff writes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WasmConfigDoc {
    created: String,
    architecture: String,
    os: String,
    layer_digests: Vec<Digest>,
    component: ComponentDoc,
}

/// The `component` part of the config: the interfaces the component exports and imports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ComponentDoc {
    exports: Vec<String>,
    imports: Vec<String>,
}

/// The manifest skiff pushes, fields in the order the spec lists them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ManifestDoc<'a> {
    schema_version: u32,
    media_type: &'a str,
    artifact_type: &'a str,
    config: &'a Descriptor,
    layers: [&'a Descriptor; 1],
}

/// Reads a manifest as a wasm artifact, refusing images, indexes, other artifacts and anything
/// but exactly one wasm layer, so `plugin install` says what the reference really is.
pub fn parse_manifest(reference: &Reference, bytes: &[u8]) -> Result<WasmManifest> {
    let bad = |reason: String| Error::BadPlugin {
        reference: reference.to_string(),
        reason,
    };
    if bytes.len() as u64 > MAX_MANIFEST_SIZE {
        return Err(Error::TooLarge {
            what: format!("the manifest of {reference}"),
            limit: MAX_MANIFEST_SIZE,
        });
    }
    let doc = parse_json(bytes, &format!("the manifest of {reference}"))?;
    if !doc.is_object() {
        return Err(bad("its manifest is not a JSON object".into()));
    }
    let media_type = doc["mediaType"].as_str();
    match media_type {
        Some(OCI_INDEX | DOCKER_LIST) => {
            return Err(Error::IndexNotPlugin {
                reference: reference.to_string(),
            })
        }
        None if doc["manifests"].is_array() => {
            return Err(Error::IndexNotPlugin {
                reference: reference.to_string(),
            })
        }
        Some(OCI_MANIFEST | DOCKER_MANIFEST) | None => {}
        Some(other) => {
            return Err(bad(format!(
                "its manifest type is {other}, not {OCI_MANIFEST}"
            )))
        }
    }
    if doc["schemaVersion"] != 2 {
        return Err(bad(format!(
            "its manifest has schemaVersion {}, not 2",
            doc["schemaVersion"]
        )));
    }
    let parse_desc = |v: &serde_json::Value, what: &str| -> Result<Descriptor> {
        serde_json::from_value(v.clone())
            .map_err(|e| bad(format!("its {what} descriptor is malformed ({e})")))
    };
    let config = parse_desc(&doc["config"], "config")?;
    let Some(layer_values) = doc["layers"].as_array() else {
        return Err(bad("its manifest has no layers list".into()));
    };
    let layers = layer_values
        .iter()
        .map(|l| parse_desc(l, "layer"))
        .collect::<Result<Vec<_>>>()?;

    // An image is the likeliest mistake; name it as such before any artifact check.
    if let Some(l) = layers.iter().find(|l| layer_type_ok(&l.media_type)) {
        return Err(Error::ImageNotPlugin {
            reference: reference.to_string(),
            what: format!("its layer is {}", l.media_type),
        });
    }
    let image_what = if matches!(
        config.media_type.as_str(),
        "application/vnd.oci.image.config.v1+json"
            | "application/vnd.docker.container.image.v1+json"
    ) {
        Some(format!("its config is {}", config.media_type))
    } else if media_type == Some(DOCKER_MANIFEST) {
        Some(format!("its manifest is {DOCKER_MANIFEST}"))
    } else {
        None
    };
    if let Some(what) = image_what {
        return Err(Error::ImageNotPlugin {
            reference: reference.to_string(),
            what,
        });
    }
    if !matches!(config.media_type.as_str(), WASM_CONFIG | WASM_CONFIG_V1) {
        return Err(bad(format!(
            "its config is {}, not {WASM_CONFIG}",
            config.media_type
        )));
    }
    if let Some(at) = doc["artifactType"].as_str() {
        if !matches!(at, WASM_CONFIG | WASM_CONFIG_V1) {
            return Err(bad(format!("its artifactType is {at}, not {WASM_CONFIG}")));
        }
    }
    if let Some(l) = layers
        .iter()
        .find(|l| !matches!(l.media_type.as_str(), WASM_LAYER | WASM_LAYER_V1))
    {
        return Err(bad(format!(
            "it has a layer of type {}, and a plugin has only its {WASM_LAYER} layer",
            l.media_type
        )));
    }
    let layer = match <[Descriptor; 1]>::try_from(layers) {
        Ok([one]) => one,
        Err(v) if v.is_empty() => return Err(bad(format!("it has no {WASM_LAYER} layer"))),
        Err(v) => {
            return Err(bad(format!(
                "it has {} wasm layers, and a plugin is exactly one component",
                v.len()
            )))
        }
    };
    if layer.size > MAX_COMPONENT_SIZE {
        return Err(Error::PluginTooLarge {
            what: format!("the component of {reference}"),
            size: layer.size,
            limit: MAX_COMPONENT_SIZE,
        });
    }
    Ok(WasmManifest { config, layer })
}

/// Checks the binary header: `\0asm`, then layer 1 (a component) rather than 0 (a core module),
/// so neither a wrong file nor an unwrapped module gets pushed or installed. The error says why.
pub fn check_component(bytes: &[u8]) -> std::result::Result<(), String> {
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', _, _, 1, 0]) => Ok(()),
        Some([0, b'a', b's', b'm', _, _, 0, 0]) => Err(
            "it is a core wasm module, not a component: make one of it with `wasm-tools component new`"
                .into(),
        ),
        _ => Err(
            "it does not start with the \\0asm header of a WebAssembly binary: pass the component's .wasm file"
                .into(),
        ),
    }
}

/// The config blob for a component with layer digest `layer`, created at `created` (RFC 3339).
pub fn config_json(
    layer: &Digest,
    exports: &[String],
    imports: &[String],
    created: &str,
) -> Result<Vec<u8>> {
    let doc = WasmConfigDoc {
        created: created.to_string(),
        architecture: "wasm".into(),
        os: "wasip2".into(),
        layer_digests: vec![layer.clone()],
        component: ComponentDoc {
            exports: exports.to_vec(),
            imports: imports.to_vec(),
        },
    };
    serde_json::to_vec(&doc).map_err(|source| Error::Json {
        context: "encoding the wasm config".into(),
        source,
    })
}

/// The manifest naming `config` and the one wasm `layer`.
pub fn manifest_json(config: &Descriptor, layer: &Descriptor) -> Result<Vec<u8>> {
    let doc = ManifestDoc {
        schema_version: 2,
        media_type: OCI_MANIFEST,
        artifact_type: WASM_CONFIG,
        config,
        layers: [layer],
    };
    serde_json::to_vec(&doc).map_err(|source| Error::Json {
        context: "encoding the wasm manifest".into(),
        source,
    })
}

impl ImageStore {
    /// Fetches the wasm plugin `reference` names (from a configured mirror first, as `pull`
    /// does): the manifest must be a wasm artifact, and the component is streamed into the
    /// content store and checked against its size and digest there before it is read back. The
    /// blob stays in the store unreferenced, so a repeated install needs no download and the
    /// next prune frees it.
    pub async fn pull_wasm(&self, reference: &Reference) -> Result<PulledWasm> {
        self.try_mirrors_then_registry(reference, move |host| async move {
            self.pull_wasm_from(reference, &host).await
        })
        .await
    }

    async fn pull_wasm_from(&self, reference: &Reference, host: &str) -> Result<PulledWasm> {
        let remote = Remote::connect(reference, host, &self.config, &self.dirs).await?;
        let (manifest, manifest_digest) = remote.manifest(reference, None).await?;
        let m = parse_manifest(reference, &manifest)?;
        let digest = m.layer.digest.clone();
        if !self.layout.has_blob(&digest) {
            let noop = |_: u64| {};
            remote
                .blob(reference, &m.layer, || self.layout.ingest(&digest), &noop)
                .await?;
        }
        let what = format!("the component of {reference}");
        let bytes = read_capped(&self.layout.blob_path(&digest), MAX_COMPONENT_SIZE, &what)?;
        if bytes.len() as u64 != m.layer.size {
            return Err(Error::BadPlugin {
                reference: reference.to_string(),
                reason: format!(
                    "its layer descriptor says {} bytes, but blob {digest} has {}",
                    m.layer.size,
                    bytes.len()
                ),
            });
        }
        check_component(&bytes).map_err(|reason| Error::BadPlugin {
            reference: reference.to_string(),
            reason: format!("its layer {reason}"),
        })?;
        Ok(PulledWasm {
            reference: reference.clone(),
            bytes,
            digest,
            manifest_digest,
        })
    }

    /// Pushes the component `bytes` to `reference` (a tag) as a wasm artifact whose config lists
    /// `exports` and `imports`, so registries and tools that read the CNCF layout see what the
    /// plugin is; blobs the registry has are not uploaded again. Returns the manifest's digest.
    pub async fn push_wasm(
        &self,
        reference: &Reference,
        bytes: &[u8],
        exports: &[String],
        imports: &[String],
    ) -> Result<Digest> {
        if reference.digest.is_some() {
            return Err(Error::BadReference {
                input: reference.to_string(),
                reason: "push to a tag, not a digest".into(),
            });
        }
        let what = format!("the component for {reference}");
        if bytes.len() as u64 > MAX_COMPONENT_SIZE {
            return Err(Error::PluginTooLarge {
                what,
                size: bytes.len() as u64,
                limit: MAX_COMPONENT_SIZE,
            });
        }
        check_component(bytes).map_err(|reason| Error::NotWasm { what, reason })?;
        let layer = Descriptor {
            media_type: WASM_LAYER.into(),
            digest: Digest::of(bytes),
            size: bytes.len() as u64,
            annotations: Default::default(),
            platform: None,
        };
        let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let config_bytes = config_json(&layer.digest, exports, imports, &created)?;
        if config_bytes.len() as u64 > MAX_CONFIG_SIZE {
            return Err(Error::TooLarge {
                what: format!("the wasm config for {reference} (its exports and imports)"),
                limit: MAX_CONFIG_SIZE,
            });
        }
        let config = Descriptor {
            media_type: WASM_CONFIG.into(),
            digest: Digest::of(&config_bytes),
            size: config_bytes.len() as u64,
            annotations: Default::default(),
            platform: None,
        };
        let manifest = manifest_json(&config, &layer)?;
        if manifest.len() as u64 > MAX_MANIFEST_SIZE {
            return Err(Error::TooLarge {
                what: format!("the wasm manifest for {reference}"),
                limit: MAX_MANIFEST_SIZE,
            });
        }
        let manifest_digest = Digest::of(&manifest);
        let remote = Remote::connect_for_push(reference, &self.config, &self.dirs).await?;
        for (digest, data) in [
            (&layer.digest, bytes::Bytes::copy_from_slice(bytes)),
            (&config.digest, bytes::Bytes::from(config_bytes)),
        ] {
            if !remote.has_blob(reference, digest).await? {
                remote.push_blob_bytes(reference, digest, data).await?;
            }
        }
        remote
            .push_manifest(reference, manifest, OCI_MANIFEST)
            .await?;
        Ok(manifest_digest)
    }
}

/// Reads a whole stored component/// Reads a whole stored component, refusing more than `limit` bytes without reading them.
pub(crate) fn read_capped(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).ctx(|| format!("reading {what}"))?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .ctx(|| format!("reading {what}"))?;
    if bytes.len() as u64 > limit {
        let size = std::fs::metadata(path).map_or(bytes.len() as u64, |m| m.len());
        return Err(Error::PluginTooLarge {
            what: what.to_string(),
            size,
            limit,
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const COMPONENT: &[u8] = b"\0asm\x0d\x00\x01\x00rest";

    fn r() -> Reference {
        Reference::parse("127.0.0.1:5000/plugins/hello:1.0").unwrap()
    }

    fn desc(media_type: &str, bytes: &[u8]) -> serde_json::Value {
        json!({"mediaType": media_type, "digest": Digest::of(bytes).to_string(), "size": bytes.len()})
    }

    fn manifest(config: serde_json::Value, layers: Vec<serde_json::Value>) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config,
            "layers": layers,
        }))
        .unwrap()
    }

    #[test]
    fn what_we_write_reads_back() {
        let layer = Descriptor {
            media_type: WASM_LAYER.into(),
            digest: Digest::of(COMPONENT),
            size: COMPONENT.len() as u64,
            annotations: Default::default(),
            platform: None,
        };
        let exports = vec!["skiff:plugin/validate@0.2.0".to_string()];
        let imports = vec!["skiff:plugin/host@0.2.0".to_string()];
        let cfg = config_json(&layer.digest, &exports, &imports, "2025-01-02T03:04:05Z").unwrap();
        let cfg_doc: serde_json::Value = serde_json::from_slice(&cfg).unwrap();
        assert_eq!(
            cfg_doc,
            json!({
                "created": "2025-01-02T03:04:05Z",
                "architecture": "wasm",
                "os": "wasip2",
                "layerDigests": [layer.digest.to_string()],
                "component": {"exports": exports, "imports": imports},
            })
        );
        let config = Descriptor {
            media_type: WASM_CONFIG.into(),
            digest: Digest::of(&cfg),
            size: cfg.len() as u64,
            annotations: Default::default(),
            platform: None,
        };
        let m = manifest_json(&config, &layer).unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&m).unwrap();
        assert_eq!(doc["artifactType"], WASM_CONFIG);
        assert_eq!(doc["mediaType"], OCI_MANIFEST);
        assert_eq!(doc["schemaVersion"], 2);
        assert_eq!(
            parse_manifest(&r(), &m).unwrap(),
            WasmManifest { config, layer }
        );
    }

    #[test]
    fn older_types_and_a_missing_media_type_are_read() {
        let mut doc: serde_json::Value = serde_json::from_slice(&manifest(
            desc(WASM_CONFIG_V1, b"{}"),
            vec![desc(WASM_LAYER_V1, COMPONENT)],
        ))
        .unwrap();
        doc.as_object_mut().unwrap().remove("mediaType");
        let m = parse_manifest(&r(), &serde_json::to_vec(&doc).unwrap()).unwrap();
        assert_eq!(m.layer.digest, Digest::of(COMPONENT));
        assert_eq!(m.config.media_type, WASM_CONFIG_V1);
    }

    #[test]
    fn a_container_image_is_named_as_such() {
        let m = manifest(
            desc("application/vnd.oci.image.config.v1+json", b"{}"),
            vec![desc("application/vnd.oci.image.layer.v1.tar+gzip", b"tgz")],
        );
        let e = parse_manifest(&r(), &m).unwrap_err();
        assert!(matches!(e, Error::ImageNotPlugin { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "127.0.0.1:5000/plugins/hello:1.0 is a container image, not a wasm plugin (its layer is \
             application/vnd.oci.image.layer.v1.tar+gzip): push a plugin with `skiff plugin push`"
        );
        // Docker's own manifest type, and an image without layers, are images too.
        let mut doc: serde_json::Value = serde_json::from_slice(&manifest(
            desc("application/vnd.docker.container.image.v1+json", b"{}"),
            vec![],
        ))
        .unwrap();
        doc["mediaType"] = json!(DOCKER_MANIFEST);
        let e = parse_manifest(&r(), &serde_json::to_vec(&doc).unwrap()).unwrap_err();
        assert!(
            e.to_string()
                .contains("(its config is application/vnd.docker.container.image.v1+json)"),
            "{e}"
        );
    }

    #[test]
    fn an_index_is_refused_not_picked_from() {
        for doc in [
            json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}),
            json!({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": []}),
            json!({"schemaVersion": 2, "manifests": [desc(OCI_MANIFEST, b"m")]}),
        ] {
            let e = parse_manifest(&r(), &serde_json::to_vec(&doc).unwrap()).unwrap_err();
            assert!(matches!(e, Error::IndexNotPlugin { .. }), "{e:?}");
        }
    }

    #[test]
    fn anything_but_one_wasm_layer_is_refused() {
        let cfg = || desc(WASM_CONFIG, b"{}");
        let cases = [
            (manifest(cfg(), vec![]), "no application/wasm layer"),
            (
                manifest(
                    cfg(),
                    vec![desc(WASM_LAYER, COMPONENT), desc(WASM_LAYER, b"\0asm2")],
                ),
                "2 wasm layers",
            ),
            (
                manifest(
                    cfg(),
                    vec![desc(WASM_LAYER, COMPONENT), desc("text/plain", b"readme")],
                ),
                "a layer of type text/plain",
            ),
            (
                manifest(
                    desc("application/vnd.cncf.helm.config.v1+json", b"{}"),
                    vec![desc(WASM_LAYER, COMPONENT)],
                ),
                "its config is application/vnd.cncf.helm.config.v1+json",
            ),
            (
                serde_json::to_vec(&json!({
                    "schemaVersion": 2, "mediaType": "application/x-thing", "layers": []
                }))
                .unwrap(),
                "manifest type is application/x-thing",
            ),
            (
                serde_json::to_vec(&json!({"schemaVersion": 1, "fsLayers": []})).unwrap(),
                "schemaVersion 1",
            ),
            (
                serde_json::to_vec(&json!({
                    "schemaVersion": 2, "config": cfg(),
                    "layers": [{"mediaType": WASM_LAYER, "digest": "md5:x", "size": 1}]
                }))
                .unwrap(),
                "layer descriptor is malformed",
            ),
            (b"[1]".to_vec(), "not a JSON object"),
        ];
        for (bytes, want) in cases {
            let e = parse_manifest(&r(), &bytes).unwrap_err();
            assert!(matches!(e, Error::BadPlugin { .. }), "{want}: {e:?}");
            assert!(e.to_string().contains(want), "{want}: {e}");
        }
        let mut artifact: serde_json::Value =
            serde_json::from_slice(&manifest(cfg(), vec![desc(WASM_LAYER, COMPONENT)])).unwrap();
        artifact["artifactType"] = json!("application/vnd.example+type");
        let e = parse_manifest(&r(), &serde_json::to_vec(&artifact).unwrap()).unwrap_err();
        assert!(e.to_string().contains("artifactType"), "{e}");
    }

    #[test]
    fn sizes_are_capped_before_anything_is_fetched() {
        let mut big = desc(WASM_LAYER, COMPONENT);
        big["size"] = json!(MAX_COMPONENT_SIZE + 1);
        let e = parse_manifest(&r(), &manifest(desc(WASM_CONFIG, b"{}"), vec![big])).unwrap_err();
        assert!(matches!(e, Error::PluginTooLarge { .. }), "{e:?}");
        let huge = vec![b' '; MAX_MANIFEST_SIZE as usize + 1];
        assert!(matches!(
            parse_manifest(&r(), &huge),
            Err(Error::TooLarge { .. })
        ));
    }

    #[test]
    fn components_are_told_from_modules_and_other_files() {
        assert!(check_component(COMPONENT).is_ok());
        let module = check_component(b"\0asm\x01\x00\x00\x00").unwrap_err();
        assert!(module.contains("core wasm module"), "{module}");
        assert!(check_component(b"\x7fELF\x02\x01\x01\x00").is_err());
        assert!(check_component(b"\0asm").is_err());
    }

    #[test]
    fn read_capped_stops_past_the_limit() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("c.wasm");
        std::fs::write(&p, [0u8; 10]).unwrap();
        assert_eq!(read_capped(&p, 10, "c").unwrap().len(), 10);
        assert!(matches!(
            read_capped(&p, 9, "c"),
            Err(Error::PluginTooLarge { .. })
        ));
    }
}
