//! The container log, `ctr.log`: one JSON object per line, as Docker's json-file driver writes it:
//! `{"log":"text","stream":"stdout"|"stderr","time":"RFC 3339 with nanoseconds"}`, one record per
//! line of output (a partial line without its newline is a record too).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::error::{Error, Result};

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

#[cfg(test)]
mod tests {
    use super::*;

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
