//! Per-user container records under `$XDG_DATA_HOME/skiff/containers/<id>/`: `config.json`
//! (written once), `state.json` (rewritten atomically under the container's lock), `ctr.log`, and
//! the overlay `upper/` and `work/` dirs. No daemon: every command reads these files.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use skiff_store::fsutil::{write_atomic, LockFile};
use skiff_store::Dirs;

use crate::container::config::{ContainerConfig, State};
use crate::container::names;
use crate::error::{Ctx, Error, Result};

/// The container records of one user.
#[derive(Debug, Clone)]
pub struct Containers {
    root: PathBuf,
    /// Where named volumes live.
    pub volumes: PathBuf,
}

impl Containers {
    /// Opens (creating) the containers dir under the user's data dir.
    pub fn open(dirs: &Dirs) -> Result<Containers> {
        let root = dirs.data.join("containers");
        fs::create_dir_all(&root).ctx(|| format!("creating {}", root.display()))?;
        Ok(Containers {
            root,
            volumes: dirs.data.join("volumes"),
        })
    }

    /// A container's directory.
    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// The log file of a container.
    pub fn log_path(&self, id: &str) -> PathBuf {
        self.dir(id).join("ctr.log")
    }

    /// Allocates an id and a unique name (the given one, or a generated one) and writes the
    /// record; `build` fills in the config from the chosen id and name. Two concurrent creates
    /// never get the same name: the check and the write happen under one lock.
    pub fn create(
        &self,
        name: Option<&str>,
        build: impl FnOnce(&str, &str) -> ContainerConfig,
    ) -> Result<ContainerConfig> {
        if let Some(n) = name {
            if !names::valid(n) {
                return Err(Error::Invalid(format!("invalid container name \"{n}\": use letters, digits, '_', '.' and '-', starting with a letter or digit")));
            }
        }
        let _lock = LockFile::acquire(&self.root.join(".names.lock"))?;
        let taken: Vec<String> = self.list()?.into_iter().map(|(c, _)| c.name).collect();
        let name = match name {
            Some(n) if taken.iter().any(|t| t == n) => return Err(Error::NameInUse(n.to_string())),
            Some(n) => n.to_string(),
            None => {
                let mut attempt = 0;
                loop {
                    let r = random_bytes::<4>()?;
                    let candidate = names::generate(&r, attempt);
                    if !taken.contains(&candidate) {
                        break candidate;
                    }
                    attempt += 1;
                }
            }
        };
        let id = hex(&random_bytes::<32>()?);
        let cfg = build(&id, &name);
        let dir = self.dir(&id);
        for sub in ["", "upper", "work", "rootfs"] {
            fs::create_dir_all(dir.join(sub))
                .ctx(|| format!("creating {}", dir.join(sub).display()))?;
        }
        let tmp_cfg = serde_json::to_vec_pretty(&cfg).map_err(|source| Error::Json {
            context: "encoding config.json".into(),
            source,
        })?;
        write_atomic(&dir.join("config.json"), &tmp_cfg)?;
        self.write_state(&id, &State::created())?;
        Ok(cfg)
    }

    /// Reads a container's config and state.
    pub fn load(&self, id: &str) -> Result<(ContainerConfig, State)> {
        let dir = self.dir(id);
        let cfg = read_json(&dir.join("config.json"))?;
        let state = read_json(&dir.join("state.json"))?;
        Ok((cfg, state))
    }

    /// Every container with a readable record (records being created or removed are skipped).
    pub fn list(&self) -> Result<Vec<(ContainerConfig, State)>> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.root)
            .ctx(|| format!("listing {}", self.root.display()))?
            .flatten()
        {
            let id = e.file_name().to_string_lossy().into_owned();
            if id.starts_with('.') {
                continue;
            }
            if let Ok(pair) = self.load(&id) {
                out.push(pair);
            }
        }
        out.sort_by(|a, b| b.0.created.cmp(&a.0.created));
        Ok(out)
    }

    /// Changes the state under the container's lock (read, edit, write atomically).
    pub fn update_state(&self, id: &str, f: impl FnOnce(&mut State)) -> Result<State> {
        let _lock = self.lock(id)?;
        let (_, mut st) = self.load(id)?;
        f(&mut st);
        self.write_state(id, &st)?;
        Ok(st)
    }

    /// The container's lock, held for state transitions.
    pub fn lock(&self, id: &str) -> Result<LockFile> {
        Ok(LockFile::acquire(&self.dir(id).join(".lock"))?)
    }

    fn write_state(&self, id: &str, st: &State) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(st).map_err(|source| Error::Json {
            context: "encoding state.json".into(),
            source,
        })?;
        Ok(write_atomic(&self.dir(id).join("state.json"), &bytes)?)
    }

    /// Finds a container by name, full id or unique id prefix.
    pub fn resolve(&self, key: &str) -> Result<String> {
        let all = self.list()?;
        if let Some((c, _)) = all.iter().find(|(c, _)| c.name == key || c.id == key) {
            return Ok(c.id.clone());
        }
        let hits: Vec<&ContainerConfig> = all
            .iter()
            .map(|(c, _)| c)
            .filter(|c| !key.is_empty() && c.id.starts_with(key))
            .collect();
        match hits.as_slice() {
            [one] => Ok(one.id.clone()),
            [] => Err(Error::NoSuchContainer(key.to_string())),
            many => Err(Error::Ambiguous {
                prefix: key.to_string(),
                candidates: many
                    .iter()
                    .map(|c| format!("{} ({})", &c.id[..12], c.name))
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// The directory of a named volume, created on first use.
    pub fn volume(&self, name: &str) -> Result<PathBuf> {
        if !names::valid(name) {
            return Err(Error::Invalid(format!(
                "invalid volume name \"{name}\": use letters, digits, '_', '.' and '-'"
            )));
        }
        let dir = self.volumes.join(name);
        fs::create_dir_all(&dir).ctx(|| format!("creating volume {}", dir.display()))?;
        Ok(dir)
    }
}

fn read_json<T: serde::de::DeserializeOwned>(p: &Path) -> Result<T> {
    let bytes = fs::read(p).ctx(|| format!("reading {}", p.display()))?;
    serde_json::from_slice(&bytes).map_err(|source| Error::Json {
        context: format!("parsing {}", p.display()),
        source,
    })
}

/// Random bytes from the kernel.
pub fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .ctx(|| "reading /dev/urandom".to_string())?;
    Ok(b)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::config::ProcessSpec;

    fn cfg(id: &str, name: &str) -> ContainerConfig {
        ContainerConfig {
            id: id.into(),
            name: name.into(),
            created: chrono::Utc::now().to_rfc3339(),
            image: "i".into(),
            image_id: "sha256:x".into(),
            layers: vec![],
            entrypoint: vec![],
            cmd: vec![],
            process: ProcessSpec::default(),
            hostname: id[..12].into(),
            labels: Default::default(),
            mounts: vec![],
            read_only: false,
            network: crate::network::NetworkMode::Host,
            ports: vec![],
            limits: Default::default(),
            extra_hosts: vec![],
            group_add: vec![],
            ulimits: vec![],
            shm_size: None,
            dns: vec![],
            cap_add: vec![],
            cap_drop: vec![],
            privileged: false,
            seccomp: true,
            init: false,
            auto_remove: false,
            stop_signal: None,
            stop_timeout: None,
            restart: Default::default(),
        }
    }

    fn dirs(t: &Path) -> Dirs {
        Dirs {
            data: t.join("d"),
            config: t.join("c"),
            cache: t.join("k"),
            runtime: t.join("r"),
        }
    }

    #[test]
    fn names_are_unique_and_prefixes_resolve() {
        let t = tempfile::tempdir().unwrap();
        let c = Containers::open(&dirs(t.path())).unwrap();
        let a = c.create(Some("web"), cfg).unwrap();
        assert!(matches!(
            c.create(Some("web"), cfg),
            Err(Error::NameInUse(_))
        ));
        assert!(matches!(
            c.create(Some("-bad"), cfg),
            Err(Error::Invalid(_))
        ));
        let b = c.create(None, cfg).unwrap();
        assert!(b.name.contains('_'));
        assert_eq!(c.resolve("web").unwrap(), a.id);
        assert_eq!(c.resolve(&a.id[..10]).unwrap(), a.id);
        assert!(matches!(c.resolve("nope"), Err(Error::NoSuchContainer(_))));
        let st = c.update_state(&a.id, |s| s.exit_code = Some(3)).unwrap();
        assert_eq!(st.exit_code, Some(3));
        assert_eq!(c.load(&a.id).unwrap().1.exit_code, Some(3));
        assert_eq!(c.list().unwrap().len(), 2);
    }

    #[test]
    fn concurrent_creates_never_share_a_name() {
        let t = tempfile::tempdir().unwrap();
        let c = Containers::open(&dirs(t.path())).unwrap();
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || c.create(Some("same"), cfg).is_ok())
            })
            .collect();
        let ok = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|x| *x)
            .count();
        assert_eq!(ok, 1);
    }
}
