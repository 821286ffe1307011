//! Per-user container records under `$XDG_DATA_HOME/skiff/containers/<id>/`: `config.json`
//! (written once), `state.json` (rewritten atomically under the container's lock), `ctr.log`, and
//! the overlay `upper/` and `work/` dirs. No daemon: every command reads these files.

use std::fs;
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
    /// The user's networks, whose leases follow the containers' lives.
    pub networks: crate::network::records::Networks,
    /// The user's event log, which the lifecycle's steps append to.
    pub events: crate::events::EventLog,
    /// Where the monitors' attach sockets are (the user's private runtime dir).
    attach: PathBuf,
}

impl Containers {
    /// Opens (creating) the containers dir under the user's data dir.
    pub fn open(dirs: &Dirs) -> Result<Containers> {
        let root = dirs.data.join("containers");
        fs::create_dir_all(&root).ctx(|| format!("creating {}", root.display()))?;
        Ok(Containers {
            root,
            volumes: dirs.data.join("volumes"),
            networks: crate::network::records::Networks::open(dirs),
            events: crate::events::EventLog::open(dirs),
            attach: dirs.runtime.join("attach"),
        })
    }

    /// A container's directory.
    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// The socket a running container's monitor takes attachers on: short enough for a unix
    /// socket's path (the id's first 16 hex digits), in the user's 0700 runtime dir.
    pub fn attach_socket(&self, id: &str) -> PathBuf {
        self.attach
            .join(format!("{}.sock", id.get(..16).unwrap_or(id)))
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
                return Err(super::NameError::Container(n.to_string()).into());
            }
        }
        let _lock = LockFile::acquire(&self.root.join(".names.lock"))?;
        let (good, bad) = self.scan()?;
        let mut taken: Vec<String> = good.into_iter().map(|(c, _)| c.name).collect();
        taken.extend(
            self.describe_damaged(bad, true)?
                .into_iter()
                .filter_map(|d| d.name),
        );
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
        let id = crate::sys::random::id().ctx(|| "reading /dev/urandom".to_string())?;
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
        self.events
            .emit(&crate::events::Event::container("create", &cfg, &[]));
        Ok(cfg)
    }

    /// Reads a container's config and state; a record that cannot be read is
    /// [`Error::Damaged`], saying which file is missing, empty, truncated or garbage.
    pub fn load(&self, id: &str) -> Result<(ContainerConfig, State)> {
        let dir = self.dir(id);
        let cfg = read_record::<ContainerConfig>(&dir, "config.json");
        let state = read_record::<State>(&dir, "state.json");
        match (cfg, state) {
            (Ok(c), Ok(s)) => Ok((c, s)),
            _ if !dir.is_dir() => Err(Error::NoSuchContainer(id.to_string())),
            (c, s) => {
                let name = match &c {
                    Ok(c) => c.name.clone(),
                    Err(_) => id.to_string(),
                };
                let what = [c.err(), s.err()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(", ");
                Err(Error::Damaged { name, what })
            }
        }
    }

    /// The container dirs whose record cannot be read, so that `ps -a` shows them and `rm -f`
    /// and `container prune` can remove them instead of losing them. A record being created
    /// (its files not written yet) is not damaged: each candidate is read again under
    /// `.names.lock`, which `create` holds until both files are written.
    pub fn damaged(&self) -> Result<Vec<Damaged>> {
        let (_, bad) = self.scan()?;
        self.describe_damaged(bad, false)
    }

    /// Reads every record once: the readable ones, and the ids of the damaged ones.
    pub(crate) fn scan(&self) -> Result<(Records, Vec<String>)> {
        let (mut good, mut bad) = (Vec::new(), Vec::new());
        for e in fs::read_dir(&self.root)
            .ctx(|| format!("listing {}", self.root.display()))?
            .flatten()
        {
            let id = e.file_name().to_string_lossy().into_owned();
            if id.starts_with('.') {
                continue;
            }
            match self.load(&id) {
                Ok(pair) => good.push(pair),
                Err(Error::Damaged { .. }) if e.file_type().is_ok_and(|t| t.is_dir()) => {
                    bad.push(id)
                }
                Err(_) => {}
            }
        }
        good.sort_by(|a, b| b.0.created.cmp(&a.0.created));
        Ok((good, bad))
    }

    /// Describes the damaged records among `ids`, reading each again under `.names.lock`.
    pub(crate) fn describe_damaged(
        &self,
        ids: Vec<String>,
        names_locked: bool,
    ) -> Result<Vec<Damaged>> {
        let mut out = Vec::new();
        let mut lock = None;
        for id in ids {
            if !names_locked && lock.is_none() {
                lock = Some(LockFile::acquire(&self.root.join(".names.lock"))?);
            }
            let Err(Error::Damaged { what, .. }) = self.load(&id) else {
                continue;
            };
            let dir = self.dir(&id);
            let cfg_text = fs::read(dir.join("config.json"))
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            let config = serde_json::from_str::<ContainerConfig>(&cfg_text).ok();
            let (name, image, created) = match &config {
                Some(c) => (
                    Some(c.name.clone()),
                    Some(c.image.clone()),
                    Some(c.created.clone()),
                ),
                None => (
                    salvage(&cfg_text, "name").filter(|n| names::valid(n)),
                    salvage(&cfg_text, "image"),
                    salvage(&cfg_text, "created"),
                ),
            };
            out.push(Damaged {
                id,
                name,
                image,
                created,
                what,
                config,
                config_text: cfg_text,
            });
        }
        out.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Directories that an interrupted removal left behind (`containers/.rm-ID`,
    /// `volumes/.rm-NAME`), for the next command to finish with [`Containers::finish_removal`].
    pub fn leftovers(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for dir in [&self.root, &self.volumes] {
            for e in fs::read_dir(dir).into_iter().flatten().flatten() {
                if e.file_name().to_string_lossy().starts_with(".rm-") {
                    out.push(e.path());
                }
            }
        }
        out
    }

    /// Finishes an interrupted removal unless another process is removing it right now (it
    /// holds the tomb's lock; see [`remove_tomb`]). A tomb already gone is fine.
    pub fn finish_removal(
        &self,
        tomb: &Path,
        remove_dir: &dyn Fn(&Path) -> Result<()>,
    ) -> Result<()> {
        let Ok(f) = fs::File::open(tomb) else {
            return Ok(());
        };
        match f.try_lock() {
            Ok(()) => remove_dir(tomb),
            Err(_) => Ok(()),
        }
    }

    /// Every container with a readable record (records being created or removed are skipped;
    /// damaged ones are listed by [`Containers::damaged`]).
    pub fn list(&self) -> Result<Vec<(ContainerConfig, State)>> {
        Ok(self.scan()?.0)
    }

    /// Changes the state under the container's lock (read, edit, write atomically).
    pub fn update_state(&self, id: &str, f: impl FnOnce(&mut State)) -> Result<State> {
        self.update_state_then(id, f, || {})
    }

    /// [`Containers::update_state`], with `then` run once the new state is written, before the
    /// lock is let go. What `then` does has happened for anyone who takes the lock after seeing that state:
    /// the monitor emits `die` here, and `stop` takes the lock before its own event, so the
    /// `stop` comes after the `die`, as in Docker.
    pub fn update_state_then(
        &self,
        id: &str,
        f: impl FnOnce(&mut State),
        then: impl FnOnce(),
    ) -> Result<State> {
        let _lock = self.lock(id)?;
        let (_, mut st) = self.load(id)?;
        f(&mut st);
        self.write_state(id, &st)?;
        then();
        Ok(st)
    }

    /// The container's lock, held for state transitions.
    pub fn lock(&self, id: &str) -> Result<LockFile> {
        match LockFile::acquire_in_existing(&self.dir(id).join(".lock")) {
            Err(skiff_store::Error::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Err(Error::NoSuchContainer(id.to_string()))
            }
            other => Ok(other?),
        }
    }

    fn write_state(&self, id: &str, st: &State) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(st).map_err(|source| Error::Json {
            context: "encoding state.json".into(),
            source,
        })?;
        Ok(write_atomic(&self.dir(id).join("state.json"), &bytes)?)
    }

    /// Finds a container by name, full id or unique id prefix. Damaged records count too (by
    /// their directory's name, and by the name their config still gives), so that they can be
    /// inspected and removed.
    pub fn resolve(&self, key: &str) -> Result<String> {
        let mut all: Vec<(String, String)> = self
            .list()?
            .into_iter()
            .map(|(c, _)| (c.id, c.name))
            .collect();
        if !all.iter().any(|(id, name)| name == key || id == key) {
            all.extend(self.damaged()?.into_iter().map(|d| {
                let name = d.name.unwrap_or_else(|| "damaged".into());
                (d.id, name)
            }));
        }
        if let Some((id, _)) = all.iter().find(|(id, name)| name == key || id == key) {
            return Ok(id.clone());
        }
        let hits: Vec<&(String, String)> = all
            .iter()
            .filter(|(id, _)| !key.is_empty() && id.starts_with(key))
            .collect();
        match hits.as_slice() {
            [one] => Ok(one.0.clone()),
            [] => Err(Error::NoSuchContainer(key.to_string())),
            many => Err(Error::Ambiguous {
                prefix: key.to_string(),
                candidates: many
                    .iter()
                    .map(|(id, name)| format!("{} ({name})", &id[..id.len().min(12)]))
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// The directory of a named volume, created on first use.
    pub fn volume(&self, name: &str) -> Result<PathBuf> {
        if !names::valid(name) {
            return Err(super::NameError::Volume(name.to_string()).into());
        }
        let dir = self.volumes.join(name);
        fs::create_dir_all(&dir).ctx(|| format!("creating volume {}", dir.display()))?;
        Ok(dir)
    }
}

/// Readable container records: config and state.
type Records = Vec<(ContainerConfig, State)>;

/// A container dir whose record cannot be read.
#[derive(Debug, Clone)]
pub struct Damaged {
    /// The directory's name, which is the id.
    pub id: String,
    /// The name, when config.json still gives one (whole, or the start of a truncated one).
    pub name: Option<String>,
    /// The image reference, likewise.
    pub image: Option<String>,
    /// The creation time, likewise.
    pub created: Option<String>,
    /// What is wrong: `state.json is empty`, `config.json is missing`, …
    pub what: String,
    /// The config, when only the state is damaged.
    pub config: Option<ContainerConfig>,
    /// What is left of config.json (maybe nothing).
    config_text: String,
}

impl Damaged {
    /// What to call it in messages: its name, or its id.
    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }

    /// Whether it may mount the directory `source` (a volume): its config says so, or what is
    /// left of its config names it. A damaged record keeps its volumes from removal.
    pub fn may_use(&self, source: &Path) -> bool {
        match &self.config {
            Some(c) => c.mounts.iter().any(|m| m.source == source),
            None => serde_json::to_string(&source.to_string_lossy())
                .is_ok_and(|quoted| self.config_text.contains(&quoted)),
        }
    }
}

/// Reads one record file, or says in a few words what is wrong with it.
fn read_record<T: serde::de::DeserializeOwned>(dir: &Path, file: &str) -> Result<T, String> {
    let bytes = match fs::read(dir.join(file)) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("{file} is missing"))
        }
        Err(e) => return Err(format!("{file} cannot be read ({e})")),
    };
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(format!("{file} is empty"));
    }
    serde_json::from_slice(&bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Eof => format!("{file} is truncated"),
        serde_json::error::Category::Data => {
            format!("{file} does not hold a container record ({e})")
        }
        _ => format!("{file} is not valid JSON ({e})"),
    })
}

/// The first string value of `"key":` in what is left of a JSON record (config.json writes
/// `id`, `name`, `created` and `image` first, so a truncated one usually still has them).
fn salvage(text: &str, key: &str) -> Option<String> {
    let at = text.find(&format!("\"{key}\""))? + key.len() + 2;
    let rest = text[at..].trim_start().strip_prefix(':')?.trim_start();
    serde_json::Deserializer::from_str(rest)
        .into_iter::<String>()
        .next()?
        .ok()
}

/// Removes a container or volume dir already renamed out of the way (`.rm-…`), holding a lock
/// on it meanwhile so that [`Containers::finish_removal`] in another process leaves it alone.
/// A tomb already gone (another command finished it first) is fine.
pub fn remove_tomb(tomb: &Path, remove_dir: &dyn Fn(&Path) -> Result<()>) -> Result<()> {
    let f = match fs::File::open(tomb) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        other => other.ctx(|| format!("opening {}", tomb.display()))?,
    };
    f.lock().ctx(|| format!("locking {}", tomb.display()))?;
    remove_dir(tomb)
}

/// Pids of live monitors of the container `id` (`skiff-monitor ID …`), found in /proc: with
/// its state.json damaged they are the only trace of a container that may still run.
pub fn monitors_of(id: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let mut args = cmd.split(|b| *b == 0);
        let is_monitor = args
            .next()
            .and_then(|a| Path::new(std::str::from_utf8(a).ok()?).file_name())
            .is_some_and(|n| n == "skiff-monitor");
        let zombie = fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit_once(") ").map(|(_, r)| r.starts_with('Z')))
            .unwrap_or(true);
        if is_monitor && !zombie && args.next() == Some(id.as_bytes()) {
            out.push(pid);
        }
    }
    out
}

/// Random bytes from the kernel.
pub fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    crate::sys::random::bytes().ctx(|| "reading /dev/urandom".to_string())
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
            exposed: vec![],
            publish_all: false,
            limits: Default::default(),
            extra_hosts: vec![],
            ip: None,
            network_aliases: vec![],
            connected: Vec::new(),
            group_add: vec![],
            ulimits: vec![],
            shm_size: None,
            dns: vec![],
            cap_add: vec![],
            cap_drop: vec![],
            privileged: false,
            seccomp: true,
            no_new_privs: false,
            init: false,
            auto_remove: false,
            stop_signal: None,
            stop_timeout: None,
            healthcheck: None,
            restart: Default::default(),
            plugins: Default::default(),
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
        assert!(matches!(c.create(Some("-bad"), cfg), Err(Error::Name(_))));
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
    fn what_follows_a_state_change_happens_before_the_lock_is_let_go() {
        let t = tempfile::tempdir().unwrap();
        let c = Containers::open(&dirs(t.path())).unwrap();
        let a = c.create(Some("locked"), cfg).unwrap();
        let lock_file = || fs::File::open(c.dir(&a.id).join(".lock")).unwrap();
        let mut held = false;
        c.update_state_then(
            &a.id,
            |s| s.exit_code = Some(1),
            || {
                assert_eq!(
                    c.load(&a.id).unwrap().1.exit_code,
                    Some(1),
                    "not written yet"
                );
                held = lock_file().try_lock().is_err();
            },
        )
        .unwrap();
        assert!(held, "the lock was free while `then` ran");
        lock_file()
            .try_lock()
            .expect("the lock was not let go afterwards");
    }

    #[test]
    fn locking_a_removed_record_does_not_bring_its_directory_back() {
        let t = tempfile::tempdir().unwrap();
        let c = Containers::open(&dirs(t.path())).unwrap();
        let a = c.create(Some("gone"), cfg).unwrap();
        fs::remove_dir_all(c.dir(&a.id)).unwrap();
        assert!(matches!(c.lock(&a.id), Err(Error::NoSuchContainer(_))));
        assert!(matches!(
            c.update_state(&a.id, |_| {}),
            Err(Error::NoSuchContainer(_))
        ));
        assert!(!c.dir(&a.id).exists(), "a ghost record came back");
    }

    /// The `--rm` monitor's removal (`bury`) is never seen half done: while the files go one by
    /// one, a reader (a `stop` waiting for the end) finds the record gone, not damaged. The
    /// monitor used to delete the directory in place, and a `stop` that read between the
    /// removal of state.json and of config.json failed with "damaged".
    #[test]
    fn a_record_being_removed_is_gone_not_damaged() {
        let t = tempfile::tempdir().unwrap();
        let c = Containers::open(&dirs(t.path())).unwrap();
        let a = c.create(Some("going"), cfg).unwrap();
        let seen = std::cell::RefCell::new(Vec::new());
        let slow_remove = |dir: &Path| -> Result<()> {
            fs::remove_file(dir.join("state.json")).unwrap();
            seen.borrow_mut().push(format!("{:?}", c.load(&a.id).err()));
            fs::remove_dir_all(dir).unwrap();
            Ok(())
        };
        c.bury(&a.id, &slow_remove).unwrap();
        {
            let seen = seen.borrow();
            assert_eq!(seen.len(), 1);
            assert!(seen[0].contains("NoSuchContainer"), "{seen:?}");
        }
        assert!(!c.dir(&a.id).exists());
        assert!(c.leftovers().is_empty(), "{:?}", c.leftovers());
        // Burying what another command removed first is fine.
        c.bury(&a.id, &slow_remove).unwrap();
    }

    #[test]
    fn damage_is_described_and_such_records_are_listed_apart() {
        let t = tempfile::tempdir().unwrap();
        let c = Containers::open(&dirs(t.path())).unwrap();
        let a = c.create(Some("dmg"), cfg).unwrap();
        let ok = c.create(Some("fine"), cfg).unwrap();
        let cfg_path = c.dir(&a.id).join("config.json");
        let text = fs::read_to_string(&cfg_path).unwrap();
        fs::write(&cfg_path, &text[..text.len() / 3]).unwrap();
        fs::write(c.dir(&a.id).join("state.json"), b"").unwrap();
        match c.load(&a.id) {
            Err(Error::Damaged { what, .. }) => {
                assert_eq!(what, "config.json is truncated, state.json is empty")
            }
            other => panic!("{other:?}"),
        }
        let d = c.damaged().unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(
            d[0].name.as_deref(),
            Some("dmg"),
            "salvaged from the cut config"
        );
        assert_eq!(c.list().unwrap().len(), 1);
        assert_eq!(c.resolve("dmg").unwrap(), a.id);
        assert_eq!(c.resolve("fine").unwrap(), ok.id);
        assert!(matches!(
            c.create(Some("dmg"), cfg),
            Err(Error::NameInUse(_))
        ));
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
