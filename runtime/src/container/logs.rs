//! The container log, `ctr.log`: one JSON object per line, as Docker's json-file driver writes it:
//! `{"log":"text","stream":"stdout"|"stderr","time":"RFC 3339 with nanoseconds"}`, one record per
//! line of output (a partial line without its newline is a record too).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::error::{Error, Result};
use crate::spec::error::SpecError;

/// Appends records to a container's log, keeping it under a size cap.
pub struct LogWriter {
    out: BufWriter<File>,
    path: std::path::PathBuf,
    size: u64,
    max: Option<u64>,
}

/// The `[logs]` table of config.toml: `max_size = "10MB"` caps each container's log, keeping the
/// newest records (default: no cap).
pub fn max_size_from_config(config_dir: &Path) -> Result<Option<u64>> {
    Ok(skiff_store::config::Config::load(config_dir)?.logs.max_size)
}

/// One record as read back.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Record {
    /// The text (lossy UTF-8).
    pub log: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// RFC 3339 with nanoseconds.
    pub time: String,
}

impl LogWriter {
    /// Opens the log for appending (0600: output can hold secrets).
    pub fn open(path: &Path, max: Option<u64>) -> Result<LogWriter> {
        let f = Self::append(path)?;
        let size = f.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(LogWriter {
            out: BufWriter::new(f),
            path: path.to_path_buf(),
            size,
            max,
        })
    }

    fn append(path: &Path) -> Result<File> {
        use std::os::unix::fs::OpenOptionsExt;
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| Error::Io {
                context: format!("opening {}", path.display()),
                source: e,
            })
    }

    /// Over the cap: keep the newest records that fit in half of it (whole lines), written to a
    /// temp file and renamed over the log, so readers see either log whole.
    fn trim(&mut self, max: u64) -> Result<()> {
        let _ = self.out.flush();
        let text = std::fs::read(&self.path).map_err(|e| Error::Io {
            context: format!("reading {}", self.path.display()),
            source: e,
        })?;
        let keep_from = text.len().saturating_sub((max / 2) as usize);
        let start = text[keep_from..]
            .iter()
            .position(|b| *b == b'\n')
            .map(|p| keep_from + p + 1)
            .unwrap_or(text.len());
        let tmp = self.path.with_extension("log.tmp");
        {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| Error::Io {
                    context: format!("writing {}", tmp.display()),
                    source: e,
                })?;
            f.write_all(&text[start..]).map_err(|e| Error::Io {
                context: format!("writing {}", tmp.display()),
                source: e,
            })?;
        }
        std::fs::rename(&tmp, &self.path).map_err(|e| Error::Io {
            context: format!("replacing {}", self.path.display()),
            source: e,
        })?;
        self.out = BufWriter::new(Self::append(&self.path)?);
        self.size = (text.len() - start) as u64;
        Ok(())
    }
    /// Appends the output as one record per line (as Docker's json-file does; a trailing partial
    /// line is a record of its own) and flushes, so `logs` sees output as it happens. Under a cap,
    /// a line longer than a quarter of it is split, so trimming always has whole records to keep.
    pub fn record(&mut self, stream: &str, bytes: &[u8]) {
        let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let piece = self
            .max
            .map(|m| (m / 4).max(64) as usize)
            .unwrap_or(usize::MAX);
        for line in bytes.split_inclusive(|b| *b == b'\n') {
            for part in line.chunks(piece) {
                let rec = Record {
                    log: String::from_utf8_lossy(part).into_owned(),
                    stream: stream.to_string(),
                    time: time.clone(),
                };
                let Ok(json) = serde_json::to_string(&rec) else {
                    continue;
                };
                let _ = self.out.write_all(json.as_bytes());
                let _ = self.out.write_all(b"\n");
                self.size += json.len() as u64 + 1;
            }
        }
        let _ = self.out.flush();
        if let Some(max) = self.max {
            if self.size > max {
                let _ = self.trim(max);
            }
        }
    }

    /// Flushes buffered records.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Reads every record of a log (unparseable lines are skipped).
pub fn read(path: &Path) -> Result<Vec<Record>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
        context: format!("reading {}", path.display()),
        source: e,
    })?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

/// What `logs` shows of each record: only those between `since` and `until` (a record whose time
/// cannot be read is shown), prefixed with their time per line when `timestamps`.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    /// Hide records before this.
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Hide records after this.
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// Prefix each line with the record's time.
    pub timestamps: bool,
}

impl LogFilter {
    /// The text to print for `rec`, or `None` when it falls outside the window.
    pub fn render(&self, rec: &Record) -> Option<String> {
        let t = chrono::DateTime::parse_from_rfc3339(&rec.time)
            .map(|t| t.with_timezone(&chrono::Utc))
            .ok();
        if let (Some(s), Some(t)) = (self.since, t) {
            if t < s {
                return None;
            }
        }
        if let (Some(u), Some(t)) = (self.until, t) {
            if t > u {
                return None;
            }
        }
        Some(if self.timestamps {
            rec.log
                .split_inclusive('\n')
                .map(|l| format!("{} {l}", rec.time))
                .collect()
        } else {
            rec.log.clone()
        })
    }
}

/// `--tail`: a number of lines, or everything (`all`, `-1`, or not given).
pub fn parse_tail(tail: Option<&str>) -> Result<Option<usize>> {
    match tail {
        None | Some("all") | Some("-1") => Ok(None),
        Some(n) => n.parse().map(Some).map_err(|_| {
            SpecError::Flag {
                flag: "--tail",
                value: n.to_string(),
                fix: "use a number or all".into(),
            }
            .into()
        }),
    }
}

/// The records of log text, one per line of output (a record may hold several lines), and the
/// last `tail` of them when given: `--tail` counts lines.
pub fn lines_of(text: &str, tail: Option<usize>) -> Vec<Record> {
    let mut records: Vec<Record> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Record>(l).ok())
        .flat_map(|r| {
            r.log
                .split_inclusive('\n')
                .map(|part| Record {
                    log: part.to_string(),
                    stream: r.stream.clone(),
                    time: r.time.clone(),
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let start = tail.map(|n| records.len().saturating_sub(n)).unwrap_or(0);
    records.drain(..start);
    records
}

/// Reads a log as it grows: what is there now, then what is appended (from the start again if
/// the log was trimmed and rewritten), in whole records.
pub struct LogReader {
    path: std::path::PathBuf,
    offset: u64,
    pending: String,
}

impl LogReader {
    /// Opens the log at `path` and returns the reader with the lines there now (see [`lines_of`]).
    pub fn open(path: &Path, tail: Option<usize>) -> Result<(LogReader, Vec<Record>)> {
        use std::io::Read;
        let mut file = File::open(path).map_err(|e| Error::Io {
            context: format!("opening {}", path.display()),
            source: e,
        })?;
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(|e| Error::Io {
            context: format!("reading {}", path.display()),
            source: e,
        })?;
        let reader = LogReader {
            path: path.to_path_buf(),
            offset: text.len() as u64,
            pending: String::new(),
        };
        Ok((reader, lines_of(&text, tail)))
    }

    /// The whole records appended since the last call (an empty list when nothing was).
    pub fn more(&mut self) -> Result<Vec<Record>> {
        use std::io::{Read, Seek, SeekFrom};
        let mut out = Vec::new();
        let Ok(mut f) = File::open(&self.path) else {
            return Ok(out);
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if len < self.offset {
            self.offset = 0; // the log was trimmed and rewritten
        }
        let ctx = |e| Error::Io {
            context: format!("reading {}", self.path.display()),
            source: e,
        };
        f.seek(SeekFrom::Start(self.offset)).map_err(ctx)?;
        let mut more = String::new();
        f.read_to_string(&mut more).map_err(ctx)?;
        self.offset += more.len() as u64;
        self.pending.push_str(&more);
        while let Some(nl) = self.pending.find('\n') {
            let line: String = self.pending.drain(..=nl).collect();
            if let Ok(r) = serde_json::from_str::<Record>(&line) {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// How far into the log the reader has read: unchanged by a [`LogReader::more`] that found
    /// nothing new, which is how a follower knows to wait.
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(log: &str, time: &str) -> Record {
        Record {
            log: log.into(),
            stream: "stdout".into(),
            time: time.into(),
        }
    }

    #[test]
    fn tail_counts_lines_not_records() {
        let text: String = [
            rec("one\ntwo\n", "2024-01-02T15:00:00Z"),
            rec("three\n", "2024-01-02T15:01:00Z"),
        ]
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .chain(["not json\n".to_string()])
        .collect();
        let all: Vec<String> = lines_of(&text, None).into_iter().map(|r| r.log).collect();
        assert_eq!(all, ["one\n", "two\n", "three\n"]);
        let last2: Vec<String> = lines_of(&text, Some(2))
            .into_iter()
            .map(|r| r.log)
            .collect();
        assert_eq!(last2, ["two\n", "three\n"]);
        assert!(lines_of(&text, Some(0)).is_empty());
        assert_eq!(lines_of(&text, Some(9)).len(), 3);
        assert_eq!(parse_tail(Some("all")).unwrap(), None);
        assert_eq!(parse_tail(Some("-1")).unwrap(), None);
        assert_eq!(parse_tail(Some("5")).unwrap(), Some(5));
        assert_eq!(
            parse_tail(Some("five")).unwrap_err().to_string(),
            "invalid --tail \"five\": use a number or all"
        );
    }

    #[test]
    fn since_and_until_bound_the_window_and_timestamps_prefix_each_line() {
        let at = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .unwrap()
                .with_timezone(&chrono::Utc)
        };
        let f = LogFilter {
            since: Some(at("2024-01-02T15:00:30Z")),
            until: Some(at("2024-01-02T15:02:00Z")),
            timestamps: false,
        };
        assert_eq!(f.render(&rec("a\n", "2024-01-02T15:00:00Z")), None);
        assert_eq!(
            f.render(&rec("b\n", "2024-01-02T15:01:00Z")).as_deref(),
            Some("b\n")
        );
        assert_eq!(f.render(&rec("c\n", "2024-01-02T15:03:00Z")), None);
        assert_eq!(
            f.render(&rec("d\n", "garbled")).as_deref(),
            Some("d\n"),
            "an unreadable time is shown"
        );
        let t = LogFilter {
            timestamps: true,
            ..LogFilter::default()
        };
        assert_eq!(t.render(&rec("x\ny", "T")).as_deref(), Some("T x\nT y"));
    }

    #[test]
    fn the_reader_follows_appends_and_a_rewrite() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("ctr.log");
        let mut w = LogWriter::open(&p, None).unwrap();
        w.record("stdout", b"first\n");
        let (mut r, now) = LogReader::open(&p, None).unwrap();
        assert_eq!(now.len(), 1);
        assert!(r.more().unwrap().is_empty());
        w.record("stderr", b"second\n");
        let more = r.more().unwrap();
        assert_eq!(more.len(), 1);
        assert_eq!(
            (more[0].log.as_str(), more[0].stream.as_str()),
            ("second\n", "stderr")
        );
        std::fs::write(
            &p,
            serde_json::to_string(&rec("new\n", "T")).unwrap() + "\n",
        )
        .unwrap();
        let again = r.more().unwrap();
        assert_eq!(again.len(), 1, "a shorter log is read from its start");
        assert_eq!(again[0].log, "new\n");
        assert!(LogReader::open(&t.path().join("none"), None).is_err());
    }

    #[test]
    fn the_cap_keeps_the_newest_whole_records() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("ctr.log");
        let mut w = LogWriter::open(&p, Some(4096)).unwrap();
        for i in 0..250 {
            w.record(
                "stdout",
                format!("line {}\nline {}\n", 2 * i, 2 * i + 1).as_bytes(),
            );
        }
        let big: String = (500..700).map(|i| format!("line {i}\n")).collect();
        w.record("stdout", big.as_bytes());
        w.flush().unwrap();
        let size = std::fs::metadata(&p).unwrap().len();
        assert!(size <= 4096, "{size}");
        let recs = read(&p).unwrap();
        assert_eq!(
            recs.last().unwrap().log,
            "line 699\n",
            "one chunk of many lines is kept line by line"
        );
        assert!(recs.iter().all(|r| r.log != "line 0\n"));
        assert!(
            std::fs::read_to_string(&p)
                .unwrap()
                .lines()
                .all(|l| serde_json::from_str::<Record>(l).is_ok()),
            "whole records only"
        );
    }
}
