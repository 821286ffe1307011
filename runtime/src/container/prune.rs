//! What pruning may take and what it must keep: the container-prune rule (stopped containers,
//! and damaged records no monitor owns, created before `until` if given) and the join the image
//! collector needs (which layers and images containers in any state still use).

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::container::lifecycle::View;
use crate::container::records::{monitors_of, Containers, Damaged};
use crate::error::Result;

/// What containers (in any state) hold on to in the image store, for `rmi`, prune and `df`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InUse {
    /// Layer directories they stack on.
    pub layers: Vec<PathBuf>,
    /// (image id, container name) pairs.
    pub users: Vec<(String, String)>,
}

impl InUse {
    /// The names of the containers made from image `id`.
    pub fn users_of(&self, id: &str) -> Vec<&str> {
        self.users
            .iter()
            .filter(|(img, _)| img == id)
            .map(|(_, n)| n.as_str())
            .collect()
    }

    /// Whether any container was made from image `id`.
    pub fn uses_image(&self, id: &str) -> bool {
        self.users.iter().any(|(img, _)| img == id)
    }
}

/// The layers and images every readable container record names. Read it under the store's
/// collector lock: a `run` holds a lease until its record names its layers.
pub fn containers_in_use(c: &Containers) -> Result<InUse> {
    let mut u = InUse::default();
    for (cfg, _) in c.list()? {
        u.layers.extend(cfg.layers.iter().cloned());
        u.users.push((cfg.image_id.clone(), cfg.name.clone()));
    }
    Ok(u)
}

/// Whether a time read from a record is before `until` (`None` when the time cannot be read).
fn before(created: &str, until: DateTime<Utc>) -> Option<bool> {
    DateTime::parse_from_rfc3339(created)
        .ok()
        .map(|t| t.with_timezone(&Utc) < until)
}

/// Whether `container prune` takes `v`: not running or restarting, and created before `until`
/// when given (a creation time that cannot be read does not keep it).
pub fn prunable(v: &View, until: Option<DateTime<Utc>>) -> bool {
    if v.active() {
        return false;
    }
    match until {
        Some(u) => before(&v.cfg.created, u).unwrap_or(true),
        None => true,
    }
}

/// Whether `container prune` takes a damaged record: no monitor of it lives (it may be
/// running), and, with `until`, its creation time is known and before it.
pub fn prunable_damaged(
    created: Option<&str>,
    monitor_alive: bool,
    until: Option<DateTime<Utc>>,
) -> bool {
    if monitor_alive {
        return false;
    }
    match until {
        Some(u) => created.and_then(|c| before(c, u)).unwrap_or(false),
        None => true,
    }
}

/// Removes every container [`prunable`] (then every damaged record [`prunable_damaged`]) with
/// `remove`, telling `each` the id and the outcome; returns the bytes their upper dirs held.
pub fn prune_stopped(
    c: &Containers,
    until: Option<DateTime<Utc>>,
    remove: &dyn Fn(&Path) -> Result<()>,
    each: &mut dyn FnMut(&str, Result<()>),
) -> Result<u64> {
    let mut freed = 0u64;
    for v in c.views()? {
        if prunable(&v, until) {
            freed += remove_one(c, &v.cfg.id, remove, each);
        }
    }
    for d in c.damaged()? {
        let Damaged { id, created, .. } = &d;
        if prunable_damaged(created.as_deref(), !monitors_of(id).is_empty(), until) {
            freed += remove_one(c, id, remove, each);
        }
    }
    Ok(freed)
}

/// Removes one container, returning what its upper dir held if it went.
fn remove_one(
    c: &Containers,
    id: &str,
    remove: &dyn Fn(&Path) -> Result<()>,
    each: &mut dyn FnMut(&str, Result<()>),
) -> u64 {
    let size = skiff_store::inroot::tree_size(&c.dir(id).join("upper"));
    let res = c.remove(id, false, remove);
    let freed = if res.is_ok() { size } else { 0 };
    each(id, res);
    freed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::config::Status;
    use crate::container::filters::tests::view;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn prune_takes_stopped_containers_older_than_until() {
        let exited = view(&"a".repeat(64), "old", Status::Exited, Some(0));
        let created = view(&"b".repeat(64), "new", Status::Created, None);
        assert!(prunable(&exited, None) && prunable(&created, None));
        // Both were created at 2024-01-02T15:04:05Z.
        assert!(prunable(&exited, Some(t("2024-01-03T00:00:00Z"))));
        assert!(
            !prunable(&exited, Some(t("2024-01-02T15:04:05Z"))),
            "not before"
        );
        assert!(!prunable(&exited, Some(t("2023-12-31T00:00:00Z"))));
        let mut unreadable = exited.clone();
        unreadable.cfg.created = "yesterday".into();
        assert!(prunable(&unreadable, Some(t("2023-12-31T00:00:00Z"))));
    }

    #[test]
    fn prune_keeps_damaged_records_a_monitor_owns_or_of_unknown_age() {
        let u = Some(t("2024-01-03T00:00:00Z"));
        assert!(prunable_damaged(None, false, None));
        assert!(!prunable_damaged(None, true, None), "a monitor lives");
        assert!(!prunable_damaged(None, false, u), "unknown age with until");
        assert!(prunable_damaged(Some("2024-01-02T15:04:05Z"), false, u));
        assert!(!prunable_damaged(Some("2024-01-04T00:00:00Z"), false, u));
    }

    #[test]
    fn in_use_joins_images_to_their_containers() {
        let u = InUse {
            layers: vec![PathBuf::from("/l/1")],
            users: vec![
                ("sha256:a".into(), "web".into()),
                ("sha256:b".into(), "db".into()),
                ("sha256:a".into(), "web2".into()),
            ],
        };
        assert_eq!(u.users_of("sha256:a"), vec!["web", "web2"]);
        assert!(u.uses_image("sha256:b") && !u.uses_image("sha256:c"));
        assert!(u.users_of("sha256:c").is_empty());
    }
}
