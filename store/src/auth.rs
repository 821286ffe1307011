//! Registry credentials in the files Docker and podman share: `$XDG_RUNTIME_DIR/containers/auth.json`,
//! `$DOCKER_CONFIG/config.json`, `~/.docker/config.json` (`{"auths": {"host": {"auth": base64(user:pass)}}}`),
//! and the credential helpers those files name (`credHelpers` per registry, `credsStore` for the
//! rest): `docker-credential-NAME get|store|erase`, as Docker runs them.

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

/// Finds stored credentials for `registry`, if any file (or a helper one names) has them.
pub fn lookup(registry: &str) -> Result<Option<Credentials>> {
    for file in auth_files() {
        let Some(json) = read_json(&file)? else {
            continue;
        };
        if let Some(h) = helper_for(&json, registry) {
            if let Some(c) = helper_get(&h, &file, registry)? {
                return Ok(Some(c));
            }
            continue;
        }
        if let Some(c) = lookup_in(&json, &file, registry)? {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

/// The server name a helper files credentials under (Docker Hub's historical URL for it).
fn helper_key(registry: &str) -> &str {
    if registry == crate::reference::DEFAULT_REGISTRY {
        DOCKER_HUB_KEY
    } else {
        registry
    }
}

/// The credential helper a config names for `registry`: its `credHelpers` entry, else `credsStore`.
fn helper_for(json: &serde_json::Value, registry: &str) -> Option<String> {
    keys_for(registry)
        .iter()
        .find_map(|k| json["credHelpers"][k].as_str())
        .or_else(|| json["credsStore"].as_str())
        .filter(|h| !h.is_empty())
        .map(String::from)
}

/// Runs `docker-credential-HELPER ACTION` with `input` on stdin; (success, stdout, stderr).
fn run_helper(
    helper: &str,
    file: &Path,
    action: &str,
    input: &[u8],
) -> Result<(bool, String, String)> {
    use std::io::Write;
    let exe = format!("docker-credential-{helper}");
    let missing = |e: std::io::Error| {
        Error::Config {
        path: file.to_path_buf(),
        reason: format!(
            "it names the credential helper {exe:?}, which could not be run ({e}): install it, or remove the helper from the file"
        ),
    }
    };
    let mut child = std::process::Command::new(&exe)
        .arg(action)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(missing)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input)
            .ctx(|| format!("writing to {exe} {action}"))?;
    }
    let out = child
        .wait_with_output()
        .ctx(|| format!("waiting for {exe} {action}"))?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    ))
}

/// `get` from a helper: `None` when it has nothing for the registry (an error exit saying so, or
/// an empty secret, as older helpers answer).
fn helper_get(helper: &str, file: &Path, registry: &str) -> Result<Option<Credentials>> {
    let (ok, out, err) = run_helper(helper, file, "get", helper_key(registry).as_bytes())?;
    if !ok {
        if out.contains("credentials not found") || err.contains("credentials not found") {
            return Ok(None);
        }
        return Err(Error::Registry {
            registry: registry.to_string(),
            detail: format!(
                "credential helper docker-credential-{helper} failed: {}",
                if err.is_empty() { out } else { err }
            ),
        });
    }
    let v: serde_json::Value = serde_json::from_str(&out).map_err(|source| Error::Json {
        context: format!("reading what docker-credential-{helper} get answered"),
        source,
    })?;
    let (user, secret) = (v["Username"].as_str(), v["Secret"].as_str());
    Ok(match (user, secret) {
        (Some(u), Some(s)) if !s.is_empty() => Some(Credentials {
            username: u.to_string(),
            password: s.to_string(),
        }),
        _ => None,
    })
}

/// Where `store` puts credentials for a registry: a helper named in the first file that names
/// one, else the first auth file.
fn store_target(registry: &str) -> Result<(PathBuf, Option<String>)> {
    let files = auth_files();
    for file in &files {
        if let Some(json) = read_json(file)? {
            if let Some(h) = helper_for(&json, registry) {
                return Ok((file.clone(), Some(h)));
            }
        }
    }
    Ok((files[0].clone(), None))
}

/// Where `login` saved credentials: a file, or a helper (named in a file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Saved {
    /// In this auth file.
    File(PathBuf),
    /// With this credential helper, which this file names.
    Helper(String, PathBuf),
}

impl std::fmt::Display for Saved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Saved::File(p) => write!(f, "{}", p.display()),
            Saved::Helper(h, p) => write!(
                f,
                "the credential helper docker-credential-{h} (named in {})",
                p.display()
            ),
        }
    }
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

fn lookup_in(json: &serde_json::Value, file: &Path, registry: &str) -> Result<Option<Credentials>> {
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

/// Stores credentials for `registry`: with the credential helper a file names for it (as
/// `docker login` does), else in the first auth file (0600), keeping everything else in it.
pub fn store(registry: &str, creds: &Credentials) -> Result<Saved> {
    let (file, helper) = store_target(registry)?;
    if let Some(h) = helper {
        let input = serde_json::json!({
            "ServerURL": helper_key(registry), "Username": creds.username, "Secret": creds.password,
        });
        let (ok, out, err) = run_helper(&h, &file, "store", input.to_string().as_bytes())?;
        if !ok {
            return Err(Error::Registry {
                registry: registry.to_string(),
                detail: format!(
                    "credential helper docker-credential-{h} could not store them: {}",
                    if err.is_empty() { out } else { err }
                ),
            });
        }
        return Ok(Saved::Helper(h, file));
    }
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
    Ok(Saved::File(file))
}

/// Removes credentials for `registry` from every auth file and from the helpers they name for
/// it; returns whether any were there.
pub fn remove(registry: &str) -> Result<bool> {
    let mut found = false;
    for file in auth_files() {
        let Some(mut json) = read_json(&file)? else {
            continue;
        };
        if let Some(h) = helper_for(&json, registry) {
            if helper_get(&h, &file, registry)?.is_some() {
                let (ok, out, err) =
                    run_helper(&h, &file, "erase", helper_key(registry).as_bytes())?;
                if !ok {
                    return Err(Error::Registry {
                        registry: registry.to_string(),
                        detail: format!(
                            "credential helper docker-credential-{h} could not erase them: {}",
                            if err.is_empty() { out } else { err }
                        ),
                    });
                }
                found = true;
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cred_helpers_per_registry_come_before_creds_store() {
        let cfg = serde_json::json!({
            "credsStore": "pass",
            "credHelpers": { "ghcr.io": "gh", "https://index.docker.io/v1/": "hub" },
        });
        assert_eq!(helper_for(&cfg, "ghcr.io").as_deref(), Some("gh"));
        assert_eq!(helper_for(&cfg, "docker.io").as_deref(), Some("hub"));
        assert_eq!(helper_for(&cfg, "quay.io").as_deref(), Some("pass"));
        let none = serde_json::json!({ "credsStore": "", "auths": {} });
        assert_eq!(helper_for(&none, "quay.io"), None);
        assert_eq!(helper_key("docker.io"), DOCKER_HUB_KEY);
        assert_eq!(helper_key("quay.io"), "quay.io");
    }
}
