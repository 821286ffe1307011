//! The store's error type: every variant names what failed and, where there is one, the fix.

use std::path::PathBuf;

/// Everything that can go wrong in the store, phrased for the user who has to act on it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The image reference could not be parsed.
    #[error("invalid reference format \"{input}\": {reason}")]
    BadReference { input: String, reason: String },
    /// An `images --filter` the store cannot apply.
    #[error("invalid filter \"{input}\": {reason}")]
    BadFilter { input: String, reason: String },
    /// A digest string is not `sha256:` followed by 64 lowercase hex digits.
    #[error("invalid digest \"{0}\": expected sha256: followed by 64 hex digits")]
    BadDigest(String),
    /// The registry has no such repository or tag.
    #[error("{reference}: manifest unknown: the registry has no such image or tag; check the name and tag (skiff images lists local ones)")]
    NotFound { reference: String },
    /// The registry refused our credentials or requires some.
    #[error("{registry}: authentication required or refused: run `skiff login {registry}` with valid credentials")]
    Unauthorized { registry: String },
    /// The registry could not be reached at all.
    #[error("{registry}: registry unreachable: {detail}; check the address, that the registry runs, and your network")]
    Unreachable { registry: String, detail: String },
    /// TLS failed, typically an unknown CA.
    #[error("{registry}: TLS certificate not trusted: {detail}; put its CA in ~/.config/skiff/certs.d/{registry}/ca.crt or mark it insecure in config.toml")]
    Tls { registry: String, detail: String },
    /// The registry said something we do not understand or violated the protocol.
    #[error("{registry}: {detail}")]
    Registry { registry: String, detail: String },
    /// Content did not hash to the digest that named it.
    #[error("digest mismatch for {expected}: got {actual}; the registry served corrupt or truncated content, try again")]
    DigestMismatch { expected: String, actual: String },
    /// Content ended before its announced size.
    #[error("blob {digest} truncated: got {got} of {want} bytes; try the pull again")]
    Truncated { digest: String, got: u64, want: u64 },
    /// Content went on past its announced size; reading stopped at the first byte too many.
    #[error("blob {digest} is larger than the {want} bytes its descriptor declares: the registry or the image is broken; a retry will not help, ask its publisher")]
    Oversized { digest: String, want: u64 },
    /// A layer's uncompressed content does not hash to the diff_id its image config names: the
    /// blob matched its own digest, so the image itself is inconsistent.
    #[error("layer {layer}: uncompressed content hashes to {actual}, but the image config says {expected}: the image is inconsistent (built or pushed wrongly); a retry will not help, ask its publisher")]
    DiffIdMismatch {
        layer: String,
        expected: String,
        actual: String,
    },
    /// A layer expands past the configured limit (a decompression or sparse-file bomb, or a
    /// legitimately huge layer).
    #[error("layer {layer} expands to more than {limit} bytes, the limit set by max_layer_size in the [storage] table of config.toml; raise it there if the image is trusted")]
    LayerTooLarge { layer: String, limit: u64 },
    /// A manifest, config or image file is larger than skiff reads into memory.
    #[error("{what} is larger than {limit} bytes, more than any real one; refusing to read it")]
    TooLarge { what: String, limit: u64 },
    /// A media type skiff cannot handle.
    #[error("unsupported media type \"{0}\"")]
    UnsupportedMediaType(String),
    /// An index has nothing for the requested platform.
    #[error("{reference}: no image for platform {platform} (available: {available}); pick one with --platform")]
    NoPlatform {
        reference: String,
        platform: String,
        available: String,
    },
    /// A reference meant as a wasm plugin names a container image.
    #[error("{reference} is a container image, not a wasm plugin ({what}): push a plugin with `skiff plugin push`")]
    ImageNotPlugin { reference: String, what: String },
    /// A reference meant as a wasm plugin names an index: there is no platform to pick a plugin by.
    #[error("{reference} is an image index, not a single wasm plugin, and skiff picks nothing from an index: name the plugin's own manifest, or push it with `skiff plugin push`")]
    IndexNotPlugin { reference: String },
    /// A manifest that is neither an image nor a well-formed wasm artifact (another artifact type,
    /// no or several components, a layer that is not wasm).
    #[error("{reference} is not a wasm plugin: {reason}; a plugin is one application/wasm layer under an OCI manifest, as `skiff plugin push` makes it")]
    BadPlugin { reference: String, reason: String },
    /// A component past the size skiff pulls or pushes as a plugin.
    #[error("{what} is {size} bytes, past the {limit}-byte limit for wasm plugins: shrink the component (`wasm-tools strip` drops debug sections)")]
    PluginTooLarge { what: String, size: u64, limit: u64 },
    /// Bytes given to `plugin push` that are not a WebAssembly component.
    #[error("{what} is not a wasm component: {reason}")]
    NotWasm { what: String, reason: String },
    /// The image is not in the local store.
    #[error("{0}: image not known locally; pull it first (skiff pull {0})")]
    ImageNotLocal(String),
    /// A name or id prefix matched several images.
    #[error("{prefix}: ambiguous image id prefix, matches {candidates}")]
    AmbiguousImage { prefix: String, candidates: String },
    /// A layer tar is malformed or tries something the unpacker refuses.
    /// `import` was given something that is not a tar (nor a gzipped one).
    #[error("{0} is not a tar archive (plain or gzip-compressed): import takes a file system as one tar, e.g. from skiff export")]
    NotTar(String),
    #[error("layer {layer}: {reason}")]
    BadLayer { layer: String, reason: String },
    /// A config file could not be parsed.
    #[error("{path}: {reason}")]
    Config { path: PathBuf, reason: String },
    /// Some file system operation failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    /// A directory skiff keeps private files in belongs to someone else, who could read or
    /// plant files in the store.
    #[error("{path} belongs to uid {owner}, not to you (uid {me}): skiff keeps its files only in a directory of yours; remove it, or point {var} elsewhere")]
    ForeignDir {
        path: PathBuf,
        owner: u32,
        me: u32,
        var: &'static str,
    },
    /// JSON that we wrote or read could not be (de)serialised.
    #[error("{context}: {source}")]
    Json {
        context: String,
        source: serde_json::Error,
    },
}

/// The store's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches a human context to I/O errors, so a failure always names the file it concerns.
pub trait IoContext<T> {
    /// Wraps the error with `context`, computed only on failure.
    fn ctx<F: FnOnce() -> String>(self, context: F) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx<F: FnOnce() -> String>(self, context: F) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: context(),
            source,
        })
    }
}

impl<T> IoContext<T> for rustix::io::Result<T> {
    fn ctx<F: FnOnce() -> String>(self, context: F) -> Result<T> {
        self.map_err(|e| Error::Io {
            context: context(),
            source: e.into(),
        })
    }
}
