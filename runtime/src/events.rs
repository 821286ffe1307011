//! The per-user event log behind `skiff events`: `$XDG_DATA_HOME/skiff/events.jsonl`, one JSON
//! object per line in Docker's event shape. There is no daemon to ask, so whoever changes
//! something (the CLI, a container's monitor) appends its event; readers read the file and, to
//! follow, poll it for growth. Each line goes in with one `write` on an `O_APPEND` descriptor,
//! so concurrent writers never interleave; past [`MAX_SIZE`] the file is renamed to
//! `events.jsonl.1` (the one before it goes), so the log stays small without a cleaner.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use skiff_store::Dirs;

use crate::container::config::ContainerConfig;

/// Above this size the log rotates: two generations of 2 MiB hold some ten thousand events.
pub const MAX_SIZE: u64 = 2 << 20;

/// Who an event is about, as Docker's `Actor`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Actor {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Attributes", default)]
    pub attributes: BTreeMap<String, String>,
}

/// One event, field for field Docker's JSON (`docker events --format '{{json .}}'`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Event {
    /// The older API's copy of `Action` (Docker still sends it).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    /// The older API's copy of the actor's id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// The older API's image of a container event.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub from: String,
    /// `container` or `image`.
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: Actor,
    /// Always `local`: there is no swarm.
    pub scope: String,
    /// Unix seconds.
    pub time: i64,
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

impl Event {
    /// An event stamped now.
    pub fn new(kind: &str, action: &str, id: &str, attributes: BTreeMap<String, String>) -> Event {
        let now = chrono::Utc::now();
        let nanos = now.timestamp_nanos_opt().unwrap_or(0);
        let from = if kind == "container" {
            attributes.get("image").cloned().unwrap_or_default()
        } else {
            String::new()
        };
        Event {
            status: action.to_string(),
            id: id.to_string(),
            from,
            kind: kind.to_string(),
            action: action.to_string(),
            actor: Actor {
                id: id.to_string(),
                attributes,
            },
            scope: "local".into(),
            time: now.timestamp(),
            time_nano: nanos,
        }
    }

    /// A container's event: its image, name and labels as attributes (Docker's), and `extra`.
    pub fn container(action: &str, cfg: &ContainerConfig, extra: &[(&str, String)]) -> Event {
        let mut attrs: BTreeMap<String, String> = cfg.labels.clone().into_iter().collect();
        attrs.insert("image".into(), cfg.image.clone());
        attrs.insert("name".into(), cfg.name.clone());
        for (k, v) in extra {
            attrs.insert((*k).to_string(), v.clone());
        }
        Event::new("container", action, &cfg.id, attrs)
    }

    /// An image's event: `id` is what Docker shows (a reference or an image id), `name` the
    /// reference it concerns.
    pub fn image(action: &str, id: &str, name: &str) -> Event {
        let mut attrs = BTreeMap::new();
        attrs.insert("name".into(), name.to_string());
        Event::new("image", action, id, attrs)
    }

    /// Docker's line: `TIME TYPE ACTION ID (k=v, ...)`, the time in UTC with nanoseconds.
    pub fn line(&self) -> String {
        let t =
            chrono::DateTime::from_timestamp_nanos(self.time_nano).format("%Y-%m-%dT%H:%M:%S%.9fZ");
        let attrs: Vec<String> = self
            .actor
            .attributes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut s = format!("{t} {} {} {}", self.kind, self.action, self.actor.id);
        if !attrs.is_empty() {
            s.push_str(&format!(" ({})", attrs.join(", ")));
        }
        // What a container named itself (labels) must not reach the terminal as control bytes.
        s.chars().filter(|c| !c.is_control()).collect()
    }
}

/// The event log of one user.
#[derive(Debug, Clone)]
pub struct EventLog {
    path: PathBuf,
}

impl EventLog {
    /// The log under the user's data dir (made when the first event is written).
    pub fn open(dirs: &Dirs) -> EventLog {
        EventLog {
            path: dirs.data.join("events.jsonl"),
        }
    }

    /// Where the current generation is.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    fn rotated(&self) -> PathBuf {
        self.path.with_extension("jsonl.1")
    }

    /// Appends `ev` as one line with one write. Best effort: an event that cannot be recorded
    /// (a full disk, say) never fails the command that made it.
    pub fn emit(&self, ev: &Event) {
        let Ok(mut line) = serde_json::to_vec(ev) else {
            return;
        };
        line.push(b'\n');
        let Ok(mut f) = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.path)
        else {
            return;
        };
        // One write: O_APPEND places it whole at the end, whoever else writes meanwhile.
        let _ = f.write(&line);
        if f.metadata().is_ok_and(|m| m.len() > MAX_SIZE) {
            // Two writers past the size may both rename: the second moves a near-empty file,
            // losing at most the few events between, and never a line in half.
            let _ = std::fs::rename(&self.path, self.rotated());
        }
    }

    /// Every event still kept, oldest first, and where following the log goes on from.
    pub fn read_all(&self) -> (Vec<Event>, Cursor) {
        let mut out = Vec::new();
        if let Ok(text) = std::fs::read_to_string(self.rotated()) {
            out.extend(parse_lines(&text));
        }
        let mut cursor = Cursor::default();
        out.extend(self.more(&mut cursor));
        (out, cursor)
    }

    /// The position at the log's end now: following from it shows only new events.
    pub fn end(&self) -> Cursor {
        match std::fs::metadata(&self.path) {
            Ok(m) => Cursor {
                ino: m.ino(),
                offset: m.len(),
            },
            Err(_) => Cursor::default(),
        }
    }

    /// The events appended since `cursor` (whole lines only), moving it on. A log rotated
    /// meanwhile is read from its start.
    pub fn more(&self, cursor: &mut Cursor) -> Vec<Event> {
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return Vec::new();
        };
        let Ok(m) = f.metadata() else {
            return Vec::new();
        };
        if m.ino() != cursor.ino || m.len() < cursor.offset {
            *cursor = Cursor {
                ino: m.ino(),
                offset: 0,
            };
        }
        if m.len() == cursor.offset || f.seek(SeekFrom::Start(cursor.offset)).is_err() {
            return Vec::new();
        }
        let mut buf = Vec::new();
        if f.read_to_end(&mut buf).is_err() {
            return Vec::new();
        }
        // A line being written has no newline yet: it comes next time.
        let whole = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        cursor.offset += whole as u64;
        parse_lines(&String::from_utf8_lossy(&buf[..whole]))
    }
}

/// Where a reader of the log is: the file (by inode, as rotation renames it) and the offset.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cursor {
    ino: u64,
    offset: u64,
}

fn parse_lines(text: &str) -> Vec<Event> {
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_is_dockers_and_json_round_trips() {
        let mut attrs = BTreeMap::new();
        attrs.insert("name".to_string(), "web".to_string());
        attrs.insert("image".to_string(), "busybox".to_string());
        let mut ev = Event::new("container", "start", "4f5e", attrs);
        ev.time_nano = 1_796_148_000_000_000_001;
        assert_eq!(
            ev.line(),
            "2026-12-01T18:00:00.000000001Z container start 4f5e (image=busybox, name=web)"
        );
        let j = serde_json::to_string(&ev).unwrap();
        assert!(j.contains("\"Type\":\"container\"") && j.contains("\"from\":\"busybox\""));
        assert_eq!(serde_json::from_str::<Event>(&j).unwrap(), ev);
    }

    #[test]
    fn follows_appends_and_rotation() {
        let d = tempfile::tempdir().unwrap();
        let log = EventLog {
            path: d.path().join("events.jsonl"),
        };
        let mut c = log.end();
        log.emit(&Event::image("pull", "busybox:latest", "busybox:latest"));
        assert_eq!(log.more(&mut c).len(), 1);
        assert!(log.more(&mut c).is_empty());
        std::fs::rename(log.path(), log.rotated()).unwrap();
        log.emit(&Event::image("tag", "busybox:latest", "x:1"));
        let again = log.more(&mut c);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].action, "tag");
        assert_eq!(log.read_all().0.len(), 2);
    }
}
