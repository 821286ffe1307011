//! Registry credentials in the files Docker and podman share: `$XDG_RUNTIME_DIR/containers/auth.json`,
//! `$DOCKER_CONFIG/config.json`, `~/.docker/config.json` (`{"auths": {"host": {"auth": base64(user:pass)}}}`).

use std::path::{Path, PathBuf};

use base64::Engine as _;

use crate::error::{Error, IoContext, Result};
use crate::fsutil::write_atomic_mode;

/// The key Docker uses for Docker Hub in config.json.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// A user name and password (or token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password or access token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, ***)", self.username)
    }
}

/// The credential files in the order they are consulted; the first is where `login` writes.
pub fn auth_files() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(rt) = std::env::var_os("XDG_RUNTIME_DIR").filter(|s| !s.is_empty()) {
        v.push(PathBuf::from(rt).join("containers/auth.json"));
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"));
    if v.is_empty() {
        let cfg = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join(".config"));
        v.push(cfg.join("containers/auth.json"));
    }
    if let Some(dc) = std::env::var_os("DOCKER_CONFIG").filter(|s| !s.is_empty()) {
        v.push(PathBuf::from(dc).join("config.json"));
    }
    v.push(home.join(".docker/config.json"));
    v
}

fn keys_for(registry: &str) -> Vec<String> {
    let mut keys = vec![
        registry.to_string(),
        format!("https://{registry}"),
        format!("http://{registry}"),
    ];
    if registry == crate::reference::DEFAULT_REGISTRY {
        keys.extend([
            DOCKER_HUB_KEY.to_string(),
            "index.docker.io".to_string(),
            "registry-1.docker.io".to_string(),
        ]);
    }
    keys
}

/// Finds stored credentials for `registry`, if any file has them.
pub fn lookup(registry: &str) -> Result<Option<Credentials>> {
    for file in auth_files() {
        if let Some(c) = lookup_in(&file, registry)? {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

fn read_json(file: &Path) -> Result<Option<serde_json::Value>> {
    match std::fs::read(file) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|source| Error::Json {
                context: format!("parsing {}", file.display()),
                source,
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Io {
            context: format!("reading {}", file.display()),
            source: e,
        }),
    }
}

fn lookup_in(file: &Path, registry: &str) -> Result<Option<Credentials>> {
    let Some(json) = read_json(file)? else {
        return Ok(None);
    };
    for key in keys_for(registry) {
        let Some(auth) = json["auths"][&key]["auth"].as_str() else {
            continue;
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| Error::Config {
                path: file.to_path_buf(),
                reason: format!("auths.{key}.auth is not base64 of user:password"),
            })?;
        if let Some((u, p)) = decoded.split_once(':') {
            return Ok(Some(Credentials {
                username: u.to_string(),
                password: p.to_string(),
            }));
        }
    }
    Ok(None)
}

/// Stores credentials for `registry` in the first auth file (0600), keeping everything else in it.
pub fn store(registry: &str, creds: &Credentials) -> Result<PathBuf> {
    let file = auth_files().remove(0);
    let mut json = read_json(&file)?.unwrap_or_else(|| serde_json::json!({}));
    if !json["auths"].is_object() {
        json["auths"] = serde_json::json!({});
    }
    let key = if registry == crate::reference::DEFAULT_REGISTRY {
        DOCKER_HUB_KEY
    } else {
        registry
    };
    let encoded = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", creds.username, creds.password));
    json["auths"][key] = serde_json::json!({ "auth": encoded });
    write_private(&file, &json)?;
    Ok(file)
}

/// Removes credentials for `registry` from every auth file; returns whether any were there.
pub fn remove(registry: &str) -> Result<bool> {
    let mut found = false;
    for file in auth_files() {
        let Some(mut json) = read_json(&file)? else {
            continue;
        };
        let Some(auths) = json["auths"].as_object_mut() else {
            continue;
        };
        let before = auths.len();
        for key in keys_for(registry) {
            auths.remove(&key);
        }
        if auths.len() != before {
            found = true;
            write_private(&file, &json)?;
        }
    }
    Ok(found)
}

fn write_private(file: &Path, json: &serde_json::Value) -> Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
    }
    let bytes = serde_json::to_vec_pretty(json).map_err(|source| Error::Json {
        context: "encoding credentials".into(),
        source,
    })?;
    write_atomic_mode(file, &bytes, 0o600)
}
