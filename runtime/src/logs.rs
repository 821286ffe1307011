//! The container log, `ctr.log`: one JSON object per line, as Docker's json-file driver writes it:
//! `{"log":"text","stream":"stdout"|"stderr","time":"RFC 3339 with nanoseconds"}`. Output is
//! recorded in the chunks it arrives in; a line may span records.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::error::{Error, Result};

/// Appends records to a container's log.
pub struct LogWriter {
    out: BufWriter<File>,
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
    pub fn open(path: &Path) -> Result<LogWriter> {
        use std::os::unix::fs::OpenOptionsExt;
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| Error::Io {
                context: format!("opening {}", path.display()),
                source: e,
            })?;
        Ok(LogWriter {
            out: BufWriter::new(f),
        })
    }

    /// Appends one record and flushes it, so `logs` sees output as it happens.
    pub fn record(&mut self, stream: &str, bytes: &[u8]) {
        let rec = Record {
            log: String::from_utf8_lossy(bytes).into_owned(),
            stream: stream.to_string(),
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        };
        if let Ok(line) = serde_json::to_string(&rec) {
            let _ = self.out.write_all(line.as_bytes());
            let _ = self.out.write_all(b"\n");
            let _ = self.out.flush();
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
