//! Named and anonymous volumes (`volumes/<name>/` beside the containers): listing them with the
//! containers that use them, creating, removing and pruning — a volume a container record
//! names is never removed from under it.

use std::path::{Path, PathBuf};

use crate::container::config::MountKind;
use crate::container::records::Containers;
use crate::container::VolumeError;
use crate::error::{Ctx, Error, Result};

/// One volume, as `volume ls` / `volume inspect` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// Its name (32 hex digits for an anonymous one).
    pub name: String,
    /// Where its files are.
    pub mountpoint: PathBuf,
    /// When it was made (RFC 3339), where the file system records it.
    pub created: Option<String>,
    /// Names of the containers whose records mount it.
    pub users: Vec<String>,
}

impl Volume {
    /// Made by `-v /path` without a name: 32 hex digits.
    pub fn anonymous(&self) -> bool {
        is_anonymous(&self.name)
    }
}

/// Whether a volume name is one skiff made for `-v /path`.
pub fn is_anonymous(name: &str) -> bool {
    name.len() == 32 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

fn created(p: &Path) -> Option<String> {
    let t = std::fs::metadata(p).and_then(|m| m.created()).ok()?;
    let t: chrono::DateTime<chrono::Utc> = t.into();
    Some(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

impl Containers {
    /// Every volume, by name, with the containers that use it.
    pub fn list_volumes(&self) -> Result<Vec<Volume>> {
        let records = self.list()?;
        let damaged = self.damaged()?;
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&self.volumes) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => {
                return Err(Error::Io {
                    context: format!("listing {}", self.volumes.display()),
                    source: e,
                })
            }
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !e.path().is_dir() {
                continue;
            }
            let users = records
                .iter()
                .filter(|(c, _)| {
                    c.mounts.iter().any(|m| {
                        m.kind == MountKind::Volume && m.name.as_deref() == Some(name.as_str())
                    })
                })
                .map(|(c, _)| c.name.clone())
                .chain(
                    damaged
                        .iter()
                        .filter(|d| d.may_use(&e.path()))
                        .map(|d| d.label().to_string()),
                )
                .collect();
            out.push(Volume {
                mountpoint: e.path(),
                created: created(&e.path()),
                name,
                users,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Finds one volume by name.
    pub fn find_volume(&self, name: &str) -> Result<Volume> {
        self.list_volumes()?
            .into_iter()
            .find(|v| v.name == name)
            .ok_or_else(|| VolumeError::NoSuch(name.to_string()).into())
    }

    /// Removes a volume that no container uses; `remove_dir` deletes its files (they may
    /// belong to mapped ids).
    pub fn remove_volume(
        &self,
        name: &str,
        remove_dir: &dyn Fn(&Path) -> Result<()>,
    ) -> Result<()> {
        let v = self.find_volume(name)?;
        if !v.users.is_empty() {
            return Err(VolumeError::InUse {
                name: name.to_string(),
                users: v.users.join(", "),
                first: v.users[0].clone(),
            }
            .into());
        }
        // Out of the way first, so a concurrent run cannot start using a half-deleted volume.
        let tomb = self.volumes.join(format!(".rm-{name}"));
        std::fs::rename(&v.mountpoint, &tomb).ctx(|| format!("removing volume {name}"))?;
        crate::container::records::remove_tomb(&tomb, remove_dir)
    }
}
