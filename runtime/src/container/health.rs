//! Healthchecks as Docker has them: the configured check (`Config.Healthcheck`, the image's
//! `HEALTHCHECK` merged field by field under the `--health-*` flags), Go-style durations, and the
//! per-container record of results (`health.json`: status, failing streak, the last five
//! results) with Docker's rules for a new result. Running the checks is not here: a `skiff
//! __health` helper started by the monitor does that, joining the container as `exec` does.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::spec::error::SpecError;

/// Docker's defaults for a field left at 0.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_RETRIES: u32 = 3;
/// How many results the record keeps (Docker's `maxLogEntries`).
pub const MAX_LOG: usize = 5;
/// How much of a check's output a result keeps (Docker's `maxOutputLen`).
pub const MAX_OUTPUT: usize = 4096;
/// The smallest interval, timeout or start period Docker accepts (0 means the default).
const MIN_DURATION: Duration = Duration::from_millis(1);

/// A container's healthcheck, as Docker's `Config.Healthcheck` (durations in nanoseconds, 0 for
/// the default), so the image config's field reads and writes as it is.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Healthcheck {
    /// `["CMD", prog, args…]`, `["CMD-SHELL", "line"]`, `["NONE"]`, or empty to inherit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<String>,
    /// Time between checks.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub interval: i64,
    /// How long a check may run before it is killed and counted as a failure.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub timeout: i64,
    /// Failures during it do not count towards `retries`; a success ends it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_period: i64,
    /// Consecutive failures that make the container unhealthy.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

fn or_default(ns: i64, default: Duration) -> Duration {
    if ns > 0 {
        Duration::from_nanos(ns.unsigned_abs())
    } else {
        default
    }
}

impl Healthcheck {
    /// The image config's `config.Healthcheck`, if it has a usable one.
    pub fn from_image(config: &serde_json::Value) -> Option<Healthcheck> {
        serde_json::from_value(config.get("Healthcheck")?.clone()).ok()
    }

    /// Whether this check runs at all (a test that is not `NONE`).
    pub fn active(&self) -> bool {
        !self.test.is_empty() && self.test[0] != "NONE"
    }

    /// The command to run in the container: `CMD`'s arguments, or `CMD-SHELL`'s line through
    /// `/bin/sh -c`; `None` for `NONE` or an unknown form.
    pub fn command(&self) -> Option<Vec<String>> {
        match self.test.split_first()? {
            (kind, rest) if kind == "CMD" && !rest.is_empty() => Some(rest.to_vec()),
            (kind, [line]) if kind == "CMD-SHELL" => {
                Some(vec!["/bin/sh".into(), "-c".into(), line.clone()])
            }
            _ => None,
        }
    }

    /// The interval, with Docker's default for 0.
    pub fn interval(&self) -> Duration {
        or_default(self.interval, DEFAULT_INTERVAL)
    }

    /// The timeout, with Docker's default for 0.
    pub fn timeout(&self) -> Duration {
        or_default(self.timeout, DEFAULT_TIMEOUT)
    }

    /// The start period (none by default).
    pub fn start_period(&self) -> Duration {
        or_default(self.start_period, Duration::ZERO)
    }

    /// The retries, with Docker's default for 0.
    pub fn retries(&self) -> u32 {
        if self.retries > 0 {
            u32::try_from(self.retries).unwrap_or(u32::MAX)
        } else {
            DEFAULT_RETRIES
        }
    }
}

/// The `--health-*` flags as given.
#[derive(Debug, Clone, Default)]
pub struct HealthFlags {
    /// `--health-cmd` (run through the shell).
    pub cmd: Option<String>,
    /// `--health-interval`.
    pub interval: Option<String>,
    /// `--health-timeout`.
    pub timeout: Option<String>,
    /// `--health-start-period`.
    pub start_period: Option<String>,
    /// `--health-retries`.
    pub retries: Option<i64>,
    /// `--no-healthcheck`.
    pub none: bool,
}

impl HealthFlags {
    fn any_set(&self) -> bool {
        self.cmd.is_some()
            || self.interval.is_some()
            || self.timeout.is_some()
            || self.start_period.is_some()
            || self.retries.is_some()
    }
}

/// The container's healthcheck: the image's, each field the flags set replacing it, as Docker
/// merges them; `--no-healthcheck` is `["NONE"]`. Bad durations and counts are refused here,
/// before anything is made.
pub fn merge(
    image: Option<Healthcheck>,
    flags: &HealthFlags,
) -> std::result::Result<Option<Healthcheck>, SpecError> {
    if flags.none {
        if flags.any_set() {
            return Err(SpecError::Flag {
                flag: "--no-healthcheck",
                value: "true".into(),
                fix: "it conflicts with the --health-* options: give one or the other".into(),
            });
        }
        return Ok(Some(Healthcheck {
            test: vec!["NONE".into()],
            ..Healthcheck::default()
        }));
    }
    let duration =
        |flag: &'static str, v: &Option<String>| -> std::result::Result<i64, SpecError> {
            let Some(v) = v else { return Ok(0) };
            let bad = |fix: &str| SpecError::Flag {
                flag,
                value: v.clone(),
                fix: fix.into(),
            };
            let d = parse_duration(v)
                .ok_or_else(|| bad("use a duration such as 30s, 1m30s or 500ms"))?;
            if !d.is_zero() && d < MIN_DURATION {
                return Err(bad("it must be at least 1ms (or 0 for the default)"));
            }
            Ok(nanos(d))
        };
    let mut h = image.unwrap_or_default();
    if let Some(cmd) = &flags.cmd {
        h.test = vec!["CMD-SHELL".into(), cmd.clone()];
    }
    for (flag, value, field) in [
        ("--health-interval", &flags.interval, &mut h.interval),
        ("--health-timeout", &flags.timeout, &mut h.timeout),
        (
            "--health-start-period",
            &flags.start_period,
            &mut h.start_period,
        ),
    ] {
        let ns = duration(flag, value)?;
        if ns != 0 {
            *field = ns;
        }
    }
    if let Some(r) = flags.retries {
        if r < 0 {
            return Err(SpecError::Flag {
                flag: "--health-retries",
                value: r.to_string(),
                fix: "it cannot be negative".into(),
            });
        }
        if r != 0 {
            h.retries = r;
        }
    }
    Ok((h != Healthcheck::default()).then_some(h))
}

/// Parses a Go duration (`300ms`, `1.5s`, `1m30s`, `0`), as Docker's flags take them.
pub fn parse_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += n * scale;
    }
    Duration::try_from_secs_f64(total).ok()
}

/// A duration as Go prints it (`30s`, `1m30s`, `500ms`), for Docker's timeout message.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, m, s) = (
        d.as_secs() / 3600,
        d.as_secs() / 60 % 60,
        d.as_secs_f64() % 60.0,
    );
    let secs = format!("{s}s");
    match (h, m) {
        (0, 0) => secs,
        (0, m) => format!("{m}m{secs}"),
        (h, m) => format!("{h}h{m}m{secs}"),
    }
}

/// Where the healthcheck stands (Docker's `State.Health.Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// No result that counts yet.
    #[default]
    Starting,
    /// The last check passed.
    Healthy,
    /// `retries` checks in a row failed.
    Unhealthy,
}

impl HealthStatus {
    /// Docker's word for it.
    pub fn word(self) -> &'static str {
        match self {
            HealthStatus::Starting => "starting",
            HealthStatus::Healthy => "healthy",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }
}

/// One check's result (Docker's `State.Health.Log[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthResult {
    /// RFC 3339.
    pub start: String,
    /// RFC 3339.
    pub end: String,
    /// 0 healthy, 1 unhealthy, anything else a failure too; -1 for a check killed at its
    /// timeout or that could not run.
    pub exit_code: i64,
    /// Its stdout and stderr, at most [`MAX_OUTPUT`] bytes.
    pub output: String,
}

/// The record of a container's checks (`State.Health`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    /// starting, healthy or unhealthy.
    pub status: HealthStatus,
    /// Failures in a row that counted.
    pub failing_streak: u32,
    /// The last [`MAX_LOG`] results, oldest first.
    pub log: Vec<HealthResult>,
}

impl Health {
    /// Takes a result in by Docker's rules: a success makes it healthy and ends the start period;
    /// a failure while still starting within the start period does not count; otherwise the
    /// streak grows and reaching `retries` makes it unhealthy.
    pub fn record(&mut self, r: HealthResult, in_start_period: bool, retries: u32) {
        if r.exit_code == 0 {
            self.failing_streak = 0;
            self.status = HealthStatus::Healthy;
        } else if !(self.status == HealthStatus::Starting && in_start_period) {
            self.failing_streak += 1;
            if self.failing_streak >= retries {
                self.status = HealthStatus::Unhealthy;
            }
        }
        self.log.push(r);
        let over = self.log.len().saturating_sub(MAX_LOG);
        self.log.drain(..over);
    }
}

/// Cuts a check's output to [`MAX_OUTPUT`] bytes (at a character boundary).
pub fn truncate_output(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_OUTPUT)]).into_owned();
    let mut end = s.len().min(MAX_OUTPUT);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

fn path(dir: &Path) -> PathBuf {
    dir.join("health.json")
}

/// The health record in the container directory `dir`, if checks ever ran or were set up.
pub fn load(dir: &Path) -> Option<Health> {
    let bytes = std::fs::read(path(dir)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Changes the record in the container directory `dir` under its lock and writes it
/// atomically; fails (creating nothing) when the directory is gone.
pub fn update(dir: &Path, f: impl FnOnce(&mut Health)) -> Result<Health> {
    let _lock = skiff_store::fsutil::LockFile::acquire_in_existing(&dir.join(".health.lock"))?;
    let mut h = load(dir).unwrap_or_default();
    f(&mut h);
    let bytes = serde_json::to_vec_pretty(&h).map_err(|e| crate::error::Error::Io {
        context: "encoding the health record".into(),
        source: e.into(),
    })?;
    skiff_store::fsutil::write_atomic(&path(dir), &bytes)?;
    Ok(h)
}

/// The health of a container with a healthcheck (`check`; `dir` its directory): its record, or
/// `starting` before the first result; `None` without an active check (Docker then shows no
/// `State.Health`).
pub fn of(check: Option<&Healthcheck>, dir: &Path) -> Option<Health> {
    check.filter(|h| h.active())?;
    Some(load(dir).unwrap_or_default())
}

/// `ps --filter health=` words: starting, healthy, unhealthy, or none without a check.
pub fn filter_word(check: Option<&Healthcheck>, dir: &Path) -> &'static str {
    of(check, dir).map_or("none", |h| h.status.word())
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Runs the container's check once through `skiff __health-check ID` (`skiff` is the binary to
/// run: it joins the container as `exec` does, from a sealed copy, and kills the check at its
/// timeout), with its stdout and stderr together kept up to [`MAX_OUTPUT`]. A check that ran
/// into its timeout is Docker's -1 with "Health check exceeded timeout".
pub fn run_check(skiff: &std::path::Path, id: &str, hc: &Healthcheck) -> HealthResult {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let start = now();
    let began = std::time::Instant::now();
    let timeout = hc.timeout();
    let failed = |output: String| HealthResult {
        start: start.clone(),
        end: now(),
        exit_code: -1,
        output,
    };
    let Ok((mut r, w)) = std::io::pipe() else {
        return failed("making a pipe for the check's output failed".into());
    };
    let mut cmd = Command::new(skiff);
    cmd.args(["__health-check", id]).stdin(Stdio::null());
    match w.try_clone() {
        Ok(w2) => cmd.stdout(w).stderr(w2),
        Err(_) => return failed("making a pipe for the check's output failed".into()),
    };
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return failed(format!("running the check: {e}")),
    };
    drop(cmd);
    // The output is read while the check runs (so a chatty one never blocks on a full pipe),
    // keeping the first MAX_OUTPUT bytes.
    let kept = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let sink = kept.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = r.read(&mut buf) {
            if n == 0 {
                break;
            }
            if let Ok(mut k) = sink.lock() {
                let room = MAX_OUTPUT.saturating_sub(k.len());
                k.extend_from_slice(&buf[..n.min(room)]);
            }
        }
        let _ = done_tx.send(());
    });
    // The check is killed in the container at its timeout; this is only the backstop should
    // the joining process itself hang.
    let backstop = timeout + Duration::from_secs(5);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if began.elapsed() > backstop => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => break None,
        }
    };
    // A process the check left in the background may hold the pipe: wait a moment only.
    let _ = done_rx.recv_timeout(Duration::from_millis(200));
    let output = kept.lock().map(|k| truncate_output(&k)).unwrap_or_default();
    if began.elapsed() >= timeout {
        return failed(format!(
            "Health check exceeded timeout ({})",
            format_duration(timeout)
        ));
    }
    HealthResult {
        start,
        end: now(),
        exit_code: status.and_then(|s| s.code()).map_or(-1, i64::from),
        output,
    }
}

/// Records a check's result (`in_start_period`: the container started less than the start
/// period ago); returns the record as it is now.
pub fn record(
    dir: &Path,
    hc: &Healthcheck,
    r: HealthResult,
    in_start_period: bool,
) -> Result<Health> {
    let retries = hc.retries();
    update(dir, |h| h.record(r, in_start_period, retries))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(code: i64) -> HealthResult {
        HealthResult {
            start: String::new(),
            end: String::new(),
            exit_code: code,
            output: String::new(),
        }
    }

    #[test]
    fn go_durations_parse_and_print() {
        assert_eq!(parse_duration("1s"), Some(Duration::from_secs(1)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        for bad in ["", "5", "1x", "s", "-1s", "1s5"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        assert_eq!(format_duration(Duration::from_secs(30)), "30s");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
    }

    #[test]
    fn flags_override_the_image_field_by_field() {
        let image = Healthcheck {
            test: vec!["CMD".into(), "true".into()],
            interval: 5_000_000_000,
            retries: 7,
            ..Healthcheck::default()
        };
        let flags = HealthFlags {
            interval: Some("1s".into()),
            ..HealthFlags::default()
        };
        let h = merge(Some(image.clone()), &flags).unwrap().unwrap();
        assert_eq!(h.test, image.test);
        assert_eq!(h.interval, 1_000_000_000);
        assert_eq!(h.retries, 7);
        assert_eq!(h.timeout(), DEFAULT_TIMEOUT);
        let none = HealthFlags {
            none: true,
            ..HealthFlags::default()
        };
        assert!(!merge(Some(image), &none).unwrap().unwrap().active());
        assert_eq!(merge(None, &HealthFlags::default()).unwrap(), None);
        let bad = HealthFlags {
            timeout: Some("10us".into()),
            ..HealthFlags::default()
        };
        assert!(merge(None, &bad).is_err());
    }

    #[test]
    fn start_period_failures_do_not_count_until_a_success() {
        let mut h = Health::default();
        h.record(result(1), true, 2);
        h.record(result(1), true, 2);
        assert_eq!((h.status, h.failing_streak), (HealthStatus::Starting, 0));
        h.record(result(0), true, 2);
        assert_eq!(h.status, HealthStatus::Healthy);
        // The start period ended with the success: failures count now.
        h.record(result(1), true, 2);
        h.record(result(2), true, 2);
        assert_eq!((h.status, h.failing_streak), (HealthStatus::Unhealthy, 2));
        for _ in 0..10 {
            h.record(result(1), false, 2);
        }
        assert_eq!(h.log.len(), MAX_LOG);
    }

    #[test]
    fn output_is_cut_at_4k_on_a_char_boundary() {
        let long = format!("a{}", "é".repeat(3000));
        let t = truncate_output(long.as_bytes());
        assert!(t.len() <= MAX_OUTPUT && t.starts_with("aé"));
    }
}
