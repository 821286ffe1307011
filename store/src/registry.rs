//! The registry client: oci-client for the protocol (token auth, redirects), with skiff's own TLS
//! roots, plain-HTTP policy, retries and error messages on top.

use std::path::PathBuf;
use std::time::Duration;

use futures_util::StreamExt;
use oci_client::client::{
    BlobResponse, Certificate, CertificateEncoding, ClientConfig, ClientProtocol,
};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};

use crate::auth;
use crate::config::Config;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::layout::Ingest;
use crate::paths::Dirs;
use crate::reference::{is_loopback_host, Reference};

/// Every manifest type skiff can use, sent on each manifest request: without the OCI types the
/// CNCF registry answers 404 for OCI images, and without any it down-converts to schema 1.
pub const MANIFEST_TYPES: &[&str] = &[OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST];
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker manifest list (multi-arch).
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

const ATTEMPTS: u32 = 4;

pub use crate::layout::{MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE};

/// A connection to one registry (or one of its mirrors), authenticated for pulling.
pub struct Remote {
    client: Client,
    host: String,
}

impl Remote {
    /// Connects to `host` (the reference's registry or a mirror of it) and authenticates for a pull
    /// of `reference` with stored credentials, or anonymously (which gets a token where needed).
    pub async fn connect(
        reference: &Reference,
        host: &str,
        cfg: &Config,
        dirs: &Dirs,
    ) -> Result<Remote> {
        Remote::connect_for(reference, host, RegistryOperation::Pull, cfg, dirs).await
    }

    /// Connects to the reference's registry itself (never a mirror) and authenticates for a push
    /// with stored credentials (a token registry hands out a push-scoped token for them).
    pub async fn connect_for_push(
        reference: &Reference,
        cfg: &Config,
        dirs: &Dirs,
    ) -> Result<Remote> {
        let host = reference.registry.clone();
        Remote::connect_for(reference, &host, RegistryOperation::Push, cfg, dirs).await
    }

    async fn connect_for(
        reference: &Reference,
        host: &str,
        op: RegistryOperation,
        cfg: &Config,
        dirs: &Dirs,
    ) -> Result<Remote> {
        let remote = Remote::new(reference, host, cfg, dirs)?;
        let auth = match auth::lookup(&reference.registry)? {
            Some(c) => RegistryAuth::Basic(c.username, c.password),
            None => RegistryAuth::Anonymous,
        };
        remote.authenticate(reference, &auth, op).await?;
        Ok(remote)
    }

    /// Whether the registry has a blob in the reference's repository already.
    pub async fn has_blob(&self, reference: &Reference, digest: &Digest) -> Result<bool> {
        let oref = self.oci_ref(reference, None);
        retry(|| async {
            self.client
                .blob_exists(&oref, &digest.to_string())
                .await
                .map_err(|e| map_err(&self.host, reference, e))
        })
        .await
    }

    /// Uploads the blob at `path` (read in 1 MiB chunks as the upload goes).
    pub async fn push_blob(
        &self,
        reference: &Reference,
        digest: &Digest,
        path: &std::path::Path,
        size: u64,
    ) -> Result<()> {
        let oref = self.oci_ref(reference, None);
        let file = std::fs::File::open(path).ctx(|| format!("opening {}", path.display()))?;
        let chunks = futures_util::stream::unfold(file, |mut f| async move {
            let mut buf = vec![0u8; 1 << 20];
            match std::io::Read::read(&mut f, &mut buf) {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(bytes::Bytes::from(buf)), f))
                }
                Err(e) => Some((Err(OciDistributionError::IoError(e)), f)),
            }
        });
        self.client
            .push_blob_stream(&oref, chunks, &digest.to_string(), Some(size))
            .await
            .map(|_| ())
            .map_err(|e| map_err(&self.host, reference, e))
    }

    /// Uploads a blob held in memory (a plugin's component and config), retried as a whole: the
    /// registry keys blobs by digest, so a repeated upload is harmless.
    pub async fn push_blob_bytes(
        &self,
        reference: &Reference,
        digest: &Digest,
        bytes: bytes::Bytes,
    ) -> Result<()> {
        let oref = self.oci_ref(reference, None);
        retry(|| async {
            self.client
                .push_blob(&oref, bytes.clone(), digest.as_str())
                .await
                .map(|_| ())
                .map_err(|e| map_err(&self.host, reference, e))
        })
        .await
    }

    /// Uploads a manifest under the reference's tag.
    pub async fn push_manifest(
        &self,
        reference: &Reference,
        bytes: Vec<u8>,
        media_type: &str,
    ) -> Result<()> {
        let oref = self.oci_ref(reference, None);
        let content_type =
            http::HeaderValue::from_str(media_type).map_err(|_| Error::Registry {
                registry: self.host.clone(),
                detail: format!("bad manifest media type {media_type:?}"),
            })?;
        self.client
            .push_manifest_raw(&oref, bytes, content_type)
            .await
            .map(|_| ())
            .map_err(|e| map_err(&self.host, reference, e))
    }

    /// Checks credentials against a registry without pulling anything (for `skiff login`): a token
    /// registry must hand out a token for them, a basic-auth one must accept them on `/v2/`.
    pub async fn check_login(
        registry: &str,
        creds: &auth::Credentials,
        cfg: &Config,
        dirs: &Dirs,
    ) -> Result<()> {
        let reference = Reference::parse(&format!("{registry}/library/skiff-login-probe"))?;
        let remote = Remote::new(&reference, registry, cfg, dirs)?;
        let got_token = remote
            .authenticate(
                &reference,
                &RegistryAuth::Basic(creds.username.clone(), creds.password.clone()),
                RegistryOperation::Pull,
            )
            .await?;
        if got_token {
            return Ok(()); // the token service checked the credentials
        }
        // Basic auth (or none): only a request that carries the credentials tells. A missing probe
        // repository is fine; a 401/403 is a refusal.
        match remote.manifest(&reference, None).await {
            Ok(_) | Err(Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn new(reference: &Reference, host: &str, cfg: &Config, dirs: &Dirs) -> Result<Remote> {
        install_crypto();
        let insecure = cfg.registry(host).insecure;
        let protocol = if insecure || is_loopback_host(host) {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        };
        let config = ClientConfig {
            protocol,
            accept_invalid_certificates: insecure,
            extra_root_certificates: ca_certs(host, dirs)?,
            connect_timeout: Some(Duration::from_secs(15)),
            read_timeout: Some(Duration::from_secs(60)),
            user_agent: concat!("skiff/", env!("CARGO_PKG_VERSION")),
            ..Default::default()
        };
        let client = Client::try_from(config).map_err(|e| map_err(host, reference, e))?;
        Ok(Remote {
            client,
            host: host.to_string(),
        })
    }

    /// Authenticates; returns whether a bearer token was issued (false for basic auth or none).
    async fn authenticate(
        &self,
        reference: &Reference,
        auth: &RegistryAuth,
        op: RegistryOperation,
    ) -> Result<bool> {
        let oref = self.oci_ref(reference, None);
        let token = retry(|| async {
            self.client
                .auth(&oref, auth, op)
                .await
                .map_err(|e| map_err(&self.host, reference, e))
        })
        .await?;
        // oci-client keeps the credentials for later token refreshes.
        self.client
            .store_auth_if_needed(oref.resolve_registry(), auth)
            .await;
        Ok(token.is_some())
    }

    fn oci_ref(&self, reference: &Reference, digest: Option<&Digest>) -> oci_client::Reference {
        let host = if self.host == crate::reference::DEFAULT_REGISTRY {
            "docker.io".to_string()
        } else {
            self.host.clone()
        };
        match (digest.or(reference.digest.as_ref()), &reference.tag) {
            (Some(d), _) => oci_client::Reference::with_digest(
                host,
                reference.repository.clone(),
                d.to_string(),
            ),
            (None, Some(t)) => {
                oci_client::Reference::with_tag(host, reference.repository.clone(), t.clone())
            }
            (None, None) => {
                oci_client::Reference::with_tag(host, reference.repository.clone(), "latest".into())
            }
        }
    }

    /// Fetches a manifest (by the reference's tag or digest, or by `digest`), checked against the
    /// digest that named it.
    pub async fn manifest(
        &self,
        reference: &Reference,
        digest: Option<&Digest>,
    ) -> Result<(Vec<u8>, Digest)> {
        let oref = self.oci_ref(reference, digest);
        let (bytes, _) = retry(|| async {
            self.client
                .pull_manifest_raw(&oref, &RegistryAuth::Anonymous, MANIFEST_TYPES)
                .await
                .map_err(|e| map_err(&self.host, reference, e))
        })
        .await?;
        if bytes.len() as u64 > MAX_MANIFEST_SIZE {
            return Err(Error::TooLarge {
                what: format!("the manifest of {reference}"),
                limit: MAX_MANIFEST_SIZE,
            });
        }
        let actual = Digest::of(&bytes);
        if let Some(want) = digest.or(reference.digest.as_ref()) {
            if &actual != want {
                return Err(Error::DigestMismatch {
                    expected: want.to_string(),
                    actual: actual.to_string(),
                });
            }
        }
        Ok((bytes.to_vec(), actual))
    }

    /// Streams a blob into `ingest`, calling `progress` with the bytes so far; the blob enters the
    /// store only if its size and digest match. A dropped connection is resumed from the bytes
    /// already written (an HTTP range request, as `docker pull` does) and the hash carries on over
    /// them; a registry that answers the range with the whole blob gets a fresh start. Attempts
    /// that make no progress are limited; ones that do are not counted.
    pub async fn blob(
        &self,
        reference: &Reference,
        desc: &crate::layout::Descriptor,
        mut new_ingest: impl FnMut() -> Result<Ingest>,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<()> {
        let oref = self.oci_ref(reference, None);
        let od = OciDescriptor {
            media_type: desc.media_type.clone(),
            digest: desc.digest.to_string(),
            size: desc.size as i64,
            ..Default::default()
        };
        let mut failures = 0;
        let mut ingest: Option<Ingest> = None;
        loop {
            let offset = ingest.as_ref().map_or(0, Ingest::written);
            let res: Result<()> = async {
                let mut stream = if offset > 0 && offset < desc.size {
                    match self
                        .client
                        .pull_blob_stream_partial(&oref, &od, offset, None)
                        .await
                        .map_err(|e| map_err(&self.host, reference, e))?
                    {
                        BlobResponse::Partial(s) => s,
                        BlobResponse::Full(s) => {
                            ingest = Some(new_ingest()?);
                            s
                        }
                    }
                } else {
                    let s = self
                        .client
                        .pull_blob_stream(&oref, &od)
                        .await
                        .map_err(|e| map_err(&self.host, reference, e))?;
                    ingest = Some(new_ingest()?);
                    s
                };
                let Some(ing) = ingest.as_mut() else {
                    return Err(Error::Registry {
                        registry: self.host.clone(),
                        detail: "download lost its temporary file".into(),
                    });
                };
                // A Content-Length past the declared size is refused before any body is read.
                if stream
                    .content_length
                    .is_some_and(|n| ing.written().saturating_add(n) > desc.size)
                {
                    return Err(Error::Oversized {
                        digest: desc.digest.to_string(),
                        want: desc.size,
                    });
                }
                while let Some(chunk) = stream.next().await {
                    let chunk = match chunk {
                        Ok(c) => c,
                        Err(e) => return Err(stream_error(&self.host, desc, ing.written(), e)),
                    };
                    // Stop at the first byte past the declared size: never read on to the end.
                    if ing.written() + chunk.len() as u64 > desc.size {
                        return Err(Error::Oversized {
                            digest: desc.digest.to_string(),
                            want: desc.size,
                        });
                    }
                    std::io::Write::write_all(ing, &chunk)
                        .ctx(|| format!("writing blob {}", desc.digest))?;
                    progress(ing.written());
                }
                Ok(())
            }
            .await;
            match res {
                Ok(()) => {
                    return match ingest.take() {
                        Some(ing) => ing.commit(desc.size),
                        None => Err(Error::Registry {
                            registry: self.host.clone(),
                            detail: "download lost its temporary file".into(),
                        }),
                    };
                }
                Err(e) if transient(&e) => {
                    let now = ingest.as_ref().map_or(0, Ingest::written);
                    if now <= offset {
                        failures += 1;
                        if failures >= ATTEMPTS {
                            return Err(e);
                        }
                        tokio::time::sleep(Duration::from_millis(500 << failures)).await;
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Classifies an error from a blob stream: oci-client's own digest check fails at the end of the
/// stream (short content shows up there too); anything else is the network.
fn stream_error(
    host: &str,
    desc: &crate::layout::Descriptor,
    written: u64,
    e: std::io::Error,
) -> Error {
    let digest_failure = e
        .get_ref()
        .and_then(|r| r.downcast_ref::<oci_client::errors::DigestError>())
        .map(|d| d.to_string());
    match digest_failure {
        Some(_) if written != desc.size => Error::Truncated {
            digest: desc.digest.to_string(),
            got: written,
            want: desc.size,
        },
        Some(detail) => Error::DigestMismatch {
            expected: desc.digest.to_string(),
            actual: detail.rsplit(' ').next().unwrap_or("?").to_string(),
        },
        None => Error::Unreachable {
            registry: host.to_string(),
            detail: format!("download of {} interrupted: {e}", desc.digest.short()),
        },
    }
}

/// Whether an error is worth another try: network trouble, 5xx, rate limits.
fn transient(e: &Error) -> bool {
    match e {
        Error::Unreachable { .. } => true,
        Error::Registry { detail, .. } => {
            detail.contains("rate limit") || detail.contains("server error")
        }
        _ => false,
    }
}

async fn retry<T, F, Fut>(mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut attempt = 0;
    loop {
        match f().await {
            Err(e) if transient(&e) && attempt + 1 < ATTEMPTS => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
            }
            other => return other,
        }
    }
}

/// rustls needs one process-wide crypto provider; ring builds far faster than aws-lc here.
fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Extra CA certificates for `host` from certs.d directories, as Docker and podman read them.
fn ca_certs(host: &str, dirs: &Dirs) -> Result<Vec<Certificate>> {
    let mut out = Vec::new();
    let roots = [
        dirs.config.join("certs.d"),
        PathBuf::from("/etc/containers/certs.d"),
        PathBuf::from("/etc/docker/certs.d"),
    ];
    for root in roots {
        let dir = root.join(host);
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "crt") {
                let data = std::fs::read(&p).ctx(|| format!("reading {}", p.display()))?;
                out.push(Certificate {
                    encoding: CertificateEncoding::Pem,
                    data,
                });
            }
        }
    }
    Ok(out)
}

/// Turns oci-client's errors into the user-facing ones, with the fix in the message.
fn map_err(host: &str, reference: &Reference, e: OciDistributionError) -> Error {
    let registry = host.to_string();
    match e {
        OciDistributionError::RequestError(re) => {
            let mut detail = re.to_string();
            let mut src: Option<&dyn std::error::Error> = std::error::Error::source(&re);
            while let Some(s) = src {
                detail = format!("{detail}: {s}");
                src = s.source();
            }
            let lower = detail.to_lowercase();
            if matches!(re.status().map(|s| s.as_u16()), Some(401 | 403)) {
                Error::Unauthorized { registry }
            } else if re.status().is_some_and(|s| s.as_u16() == 429) {
                Error::Registry {
                    registry,
                    detail: "rate limit reached (429); wait, or log in for a higher limit".into(),
                }
            } else if lower.contains("certificate")
                || lower.contains("unknownissuer")
                || lower.contains("invalid peer")
            {
                Error::Tls {
                    registry,
                    detail: short(&detail),
                }
            } else if re.is_connect() || re.is_timeout() || re.is_request() || re.is_body() {
                Error::Unreachable {
                    registry,
                    detail: short(&detail),
                }
            } else {
                Error::Registry {
                    registry,
                    detail: short(&detail),
                }
            }
        }
        OciDistributionError::AuthenticationFailure(_)
        | OciDistributionError::UnauthorizedError { .. } => Error::Unauthorized { registry },
        OciDistributionError::ImageManifestNotFoundError(_) => Error::NotFound {
            reference: reference.to_string(),
        },
        OciDistributionError::RegistryError { envelope, .. } => {
            let codes: Vec<_> = envelope.errors.iter().map(|x| &x.code).collect();
            if codes.iter().any(|c| {
                matches!(
                    c,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::BlobUnknown
                )
            }) {
                Error::NotFound {
                    reference: reference.to_string(),
                }
            } else if codes
                .iter()
                .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
            {
                Error::Unauthorized { registry }
            } else if codes
                .iter()
                .any(|c| matches!(c, OciErrorCode::Toomanyrequests))
            {
                Error::Registry {
                    registry,
                    detail: "rate limit reached (429); wait, or log in for a higher limit".into(),
                }
            } else {
                let msg: Vec<_> = envelope
                    .errors
                    .iter()
                    .map(|x| format!("{:?}: {}", x.code, x.message))
                    .collect();
                Error::Registry {
                    registry,
                    detail: msg.join("; "),
                }
            }
        }
        OciDistributionError::ServerError { code, message, .. } => match code {
            404 => Error::NotFound {
                reference: reference.to_string(),
            },
            401 | 403 => Error::Unauthorized { registry },
            429 => Error::Registry {
                registry,
                detail: "rate limit reached (429); wait, or log in for a higher limit".into(),
            },
            c if c >= 500 => Error::Registry {
                registry,
                detail: format!("server error {c}: {}", short(&message)),
            },
            c => Error::Registry {
                registry,
                detail: format!("HTTP {c}: {}", short(&message)),
            },
        },
        OciDistributionError::DigestError(d) => Error::Registry {
            registry,
            detail: format!("digest check failed: {d}"),
        },
        OciDistributionError::UnsupportedMediaTypeError(m)
        | OciDistributionError::IncompatibleLayerMediaTypeError(m) => {
            Error::UnsupportedMediaType(m)
        }
        OciDistributionError::IoError(io) => Error::Unreachable {
            registry,
            detail: io.to_string(),
        },
        other => Error::Registry {
            registry,
            detail: short(&other.to_string()),
        },
    }
}

fn short(s: &str) -> String {
    let one = s.replace('\n', " ");
    if one.len() > 300 {
        format!("{}…", &one[..one.floor_char_boundary(300)])
    } else {
        one
    }
}
