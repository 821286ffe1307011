//! `ps --filter` as Docker reads it: KEY=VALUE pairs, values of one key OR together, different
//! keys AND; a status or exited filter looks at every container. Parsed once into [`PsFilter`],
//! then matched against the views (and the damaged records) the CLI lists.

use crate::container::config::Status;
use crate::container::lifecycle::View;
use crate::container::records::{Containers, Damaged};
use crate::container::StateError;
use crate::error::{Error, Result};
use crate::spec::error::SpecError;

/// The keys `ps --filter` knows.
const KEYS: &[&str] = &[
    "status", "name", "id", "label", "ancestor", "exited", "before", "since", "network", "health",
];

/// The values `health=` takes.
const HEALTHS: &[&str] = &["starting", "healthy", "unhealthy", "none"];

/// The values `status=` takes.
const STATUSES: &[&str] = &[
    "created",
    "running",
    "exited",
    "paused",
    "restarting",
    "removing",
    "dead",
    "damaged",
];

/// Docker's one-word state of a container: created, running, paused, restarting or exited.
pub fn state_word(v: &View) -> &'static str {
    match v.state.status {
        _ if v.restarting() => "restarting",
        _ if v.paused() => "paused",
        Status::Created => "created",
        Status::Running => "running",
        Status::Exited => "exited",
    }
}

/// Parsed `--filter` flags of `ps`: each key with the values given for it, in the order given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PsFilter {
    keys: Vec<(String, Vec<String>)>,
}

/// A `--filter` that cannot be used, and how to write it.
fn bad(value: &str, fix: &str) -> Error {
    SpecError::Flag {
        flag: "--filter",
        value: value.to_string(),
        fix: fix.to_string(),
    }
    .into()
}

impl PsFilter {
    /// Reads `KEY=VALUE` flags; an unknown key or status is refused with the ones that exist.
    pub fn parse(flags: &[String]) -> Result<PsFilter> {
        let mut keys: Vec<(String, Vec<String>)> = Vec::new();
        for f in flags {
            let (k, val) = f.split_once('=').ok_or_else(|| bad(f, "use KEY=VALUE"))?;
            if !KEYS.contains(&k) {
                return Err(bad(
                    k,
                    "use status, name, id, label, ancestor, exited, before, since, network or health",
                ));
            }
            if k == "status" && !STATUSES.contains(&val) {
                return Err(bad(
                    &format!("status={val}"),
                    "use created, running or exited",
                ));
            }
            if k == "health" && !HEALTHS.contains(&val) {
                return Err(bad(
                    &format!("health={val}"),
                    "use starting, healthy, unhealthy or none",
                ));
            }
            match keys.iter_mut().find(|(key, _)| key == k) {
                Some((_, vals)) => vals.push(val.to_string()),
                None => keys.push((k.to_string(), vec![val.to_string()])),
            }
        }
        Ok(PsFilter { keys })
    }

    /// Whether the filter looks at stopped containers too, as if `-a` were given.
    pub fn shows_all(&self) -> bool {
        self.keys
            .iter()
            .any(|(k, _)| k == "status" || k == "exited")
    }

    /// The views (newest first, as [`Containers::views`] gives them) this filter keeps; without
    /// `all` only active ones. `before`/`since` name containers resolved through `c`.
    pub fn select(&self, c: &Containers, views: Vec<View>, all: bool) -> Result<Vec<View>> {
        // Views are newest first, so "before X" means a larger index than X's.
        let index_of = |key: &str| -> Result<usize> {
            let id = c.resolve(key)?;
            views
                .iter()
                .position(|v| v.cfg.id == id)
                .ok_or_else(|| StateError::Vanished(id.to_string()).into())
        };
        let mut keep = Vec::with_capacity(views.len());
        for (i, v) in views.iter().enumerate() {
            let mut ok = all || v.active();
            for (k, vals) in &self.keys {
                let mut any = false;
                for val in vals {
                    any |= match k.as_str() {
                        "before" => i > index_of(val)?,
                        "since" => i < index_of(val)?,
                        "health" => {
                            crate::container::health::filter_word(
                                v.cfg.healthcheck.as_ref(),
                                &c.dir(&v.cfg.id),
                            ) == val
                        }
                        _ => matches_view(k, val, v),
                    };
                }
                ok &= any;
            }
            keep.push(ok);
        }
        Ok(views
            .into_iter()
            .zip(keep)
            .filter(|(_, k)| *k)
            .map(|(v, _)| v)
            .collect())
    }

    /// Whether a damaged record passes: of the filters only status, name and id can judge one.
    pub fn keeps_damaged(&self, d: &Damaged) -> bool {
        self.keeps_record(&d.id, d.name.as_deref())
    }

    /// [`PsFilter::keeps_damaged`] on what a damaged record still gives: its id and maybe a name.
    fn keeps_record(&self, id: &str, name: Option<&str>) -> bool {
        self.keys.iter().all(|(k, vals)| {
            vals.iter().any(|val| match k.as_str() {
                "status" => val == "damaged",
                "name" => name.is_some_and(|n| n.contains(val.as_str())),
                "id" => id.starts_with(val.as_str()),
                _ => false,
            })
        })
    }
}

/// Whether one `key=val` (other than before/since) holds for `v`.
fn matches_view(key: &str, val: &str, v: &View) -> bool {
    match key {
        "status" => state_word(v) == val,
        "name" => v.cfg.name.contains(val),
        "id" => v.cfg.id.starts_with(val),
        "label" => match val.split_once('=') {
            Some((lk, lv)) => v.cfg.labels.get(lk).is_some_and(|x| x == lv),
            None => v.cfg.labels.contains_key(val),
        },
        "ancestor" => {
            v.cfg.image == val
                || v.cfg
                    .image_id
                    .trim_start_matches("sha256:")
                    .starts_with(val.trim_start_matches("sha256:"))
                || skiff_store::Reference::parse(val).is_ok_and(|r| r.to_string() == v.cfg.image)
        }
        "exited" => {
            v.state.status == Status::Exited
                && v.state.exit_code.map(|x| x.to_string()).as_deref() == Some(val)
        }
        // Its first network (by name, `bridge` for the default one, or a mode such as host)
        // or one it was connected to.
        "network" => {
            let want = crate::network::canonical(val);
            v.cfg.network.network().map(crate::network::canonical) == Some(want)
                || v.cfg.network.as_str() == val
                || v.cfg.connected.iter().any(|c| c.network == want)
        }
        _ => false,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::container::config::{ContainerConfig, ProcessSpec, State};

    /// A view of a container record with these fields (nothing runs).
    pub(crate) fn view(id: &str, name: &str, status: Status, exit: Option<i32>) -> View {
        let cfg: ContainerConfig = serde_json::from_value(serde_json::json!({
            "id": id, "name": name, "created": "2024-01-02T15:04:05Z",
            "image": "127.0.0.1:5000/busybox:latest", "image_id": "sha256:abcdef0123",
            "layers": [], "entrypoint": [], "cmd": ["sh"],
            "process": serde_json::to_value(ProcessSpec::default()).unwrap(),
            "hostname": name, "labels": {"app": "web", "tier": "front"},
            "read_only": false, "privileged": false, "seccomp": true, "init": false,
            "auto_remove": false,
        }))
        .unwrap();
        let mut state = State::created();
        state.status = status;
        state.exit_code = exit;
        View { cfg, state }
    }

    fn flags(f: &[&str]) -> Result<PsFilter> {
        PsFilter::parse(&f.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn filters_parse_like_docker_and_refuse_what_they_do_not_know() {
        assert!(flags(&["status=exited"]).unwrap().shows_all());
        assert!(flags(&["exited=0"]).unwrap().shows_all());
        assert!(!flags(&["name=web"]).unwrap().shows_all());
        let e = flags(&["status"]).unwrap_err().to_string();
        assert_eq!(e, "invalid --filter \"status\": use KEY=VALUE");
        let e = flags(&["colour=red"]).unwrap_err().to_string();
        assert!(e.starts_with("invalid --filter \"colour\""), "{e}");
        let e = flags(&["status=sleeping"]).unwrap_err().to_string();
        assert!(e.contains("use created, running or exited"), "{e}");
        let f = flags(&["name=a", "name=b", "status=exited"]).unwrap();
        assert_eq!(f.keys[0], ("name".into(), vec!["a".into(), "b".into()]));
    }

    #[test]
    fn one_key_ors_and_different_keys_and() {
        let exited0 = view(&"a".repeat(64), "web-1", Status::Exited, Some(0));
        let exited1 = view(&"b".repeat(64), "db-1", Status::Exited, Some(1));
        let created = view(&"c".repeat(64), "web-2", Status::Created, None);
        let m = |f: &[&str], v: &View| {
            let f = flags(f).unwrap();
            f.keys
                .iter()
                .all(|(k, vals)| vals.iter().any(|val| matches_view(k, val, v)))
        };
        assert!(m(&["name=web", "name=db"], &exited1), "values of a key OR");
        assert!(!m(&["name=web", "status=exited"], &created), "keys AND");
        assert!(m(&["name=web", "status=exited"], &exited0));
        assert!(m(&["exited=1"], &exited1) && !m(&["exited=1"], &exited0));
        assert!(!m(&["exited=0"], &created), "created has no exit code");
        assert!(m(&["label=app=web"], &created) && m(&["label=tier"], &created));
        assert!(!m(&["label=app=db"], &created));
        assert!(m(&["id=bbb"], &exited1) && !m(&["id=bbb"], &exited0));
        assert!(m(&["ancestor=abcdef"], &exited0), "an image id prefix");
        assert!(m(&["ancestor=sha256:abcdef"], &exited0));
        assert!(m(&["ancestor=127.0.0.1:5000/busybox"], &exited0));
        assert!(!m(&["ancestor=alpine"], &exited0));
        assert_eq!(state_word(&created), "created");
        assert_eq!(state_word(&exited0), "exited");
    }

    #[test]
    fn damaged_records_are_judged_by_status_name_and_id_only() {
        let id = "d".repeat(64);
        let keeps = |f: &[&str], name: Option<&str>| flags(f).unwrap().keeps_record(&id, name);
        assert!(keeps(&[], None));
        assert!(keeps(&["status=damaged"], None));
        assert!(!keeps(&["status=exited"], Some("broken")));
        assert!(keeps(&["name=brok", "id=ddd"], Some("broken")));
        assert!(!keeps(&["name=brok"], None), "no name left to match");
        assert!(!keeps(&["label=app"], Some("broken")));
    }
}
