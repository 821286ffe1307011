//! The one protocol between skiff and a container's monitor, used by both ends: the request
//! skiff hands the monitor (its arguments) and the report lines the monitor answers with on the
//! start-up pipe of a detached run (warnings, then "started" or the start error and its code).

/// What skiff asks a monitor to do. Settings come in here, so the monitor parses no config.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    /// The container's full id.
    pub id: String,
    /// The user's terminal is the monitor's: copy output to it, read stdin from it.
    pub attached: bool,
    /// Forward SIGINT, SIGTERM, … to the container (`--sig-proxy`).
    pub sig_proxy: bool,
    /// Cap on the log file (config.toml `[logs] max_size`).
    pub log_max: Option<u64>,
    /// The start-up pipe of a detached run, where the reports go.
    pub ready_fd: Option<i32>,
    /// Something subscribes to after-start/after-exit: run `skiff __hook` for each.
    pub hooks: bool,
}

/// A monitor's arguments that do not form a request.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// No container id first.
    #[error("usage: skiff-monitor ID [--attached] [--ready-fd N] [--no-sig-proxy] [--log-max BYTES] [--hooks] (started by skiff run)")]
    Usage,
    /// A flag that takes a number got something else.
    #[error("skiff-monitor: {flag} takes a number, not {value:?}")]
    NotANumber {
        /// The flag.
        flag: &'static str,
        /// What followed it.
        value: String,
    },
    /// A flag this monitor does not know (skiff and skiff-monitor of different builds).
    #[error("skiff-monitor: unknown argument {0:?}: install skiff and skiff-monitor from the same build")]
    Unknown(String),
}

impl Request {
    /// The monitor's argument list for this request.
    pub fn to_args(&self) -> Vec<String> {
        let mut a = vec![self.id.clone()];
        if self.attached {
            a.push("--attached".into());
        }
        if !self.sig_proxy {
            a.push("--no-sig-proxy".into());
        }
        if let Some(max) = self.log_max {
            a.extend(["--log-max".into(), max.to_string()]);
        }
        if let Some(fd) = self.ready_fd {
            a.extend(["--ready-fd".into(), fd.to_string()]);
        }
        if self.hooks {
            a.push("--hooks".into());
        }
        a
    }

    /// Reads a request back from the monitor's arguments (without the program name).
    pub fn parse(args: &[String]) -> Result<Request, RequestError> {
        let mut it = args.iter();
        let id = match it.next() {
            Some(id) if !id.starts_with('-') && !id.is_empty() => id.clone(),
            _ => return Err(RequestError::Usage),
        };
        let mut req = Request {
            id,
            sig_proxy: true,
            ..Request::default()
        };
        while let Some(a) = it.next() {
            match a.as_str() {
                "--attached" => req.attached = true,
                "--no-sig-proxy" => req.sig_proxy = false,
                "--hooks" => req.hooks = true,
                "--log-max" => req.log_max = Some(number(it.next(), "--log-max")?),
                "--ready-fd" => req.ready_fd = Some(number(it.next(), "--ready-fd")?),
                other => return Err(RequestError::Unknown(other.to_string())),
            }
        }
        Ok(req)
    }
}

fn number<T: std::str::FromStr>(v: Option<&String>, flag: &'static str) -> Result<T, RequestError> {
    let v = v.map(String::as_str).unwrap_or("");
    v.parse().map_err(|_| RequestError::NotANumber {
        flag,
        value: v.to_string(),
    })
}

/// One line a monitor reports while a detached container starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// Something the user should know (limits dropped, a copied rootfs); more lines follow.
    Warning(String),
    /// The container's first process runs.
    Started,
    /// The container could not start: the exit code to give (125, 126, 127) and why.
    Failed {
        /// Docker's exit code for the failure.
        code: i32,
        /// The one-line reason.
        message: String,
    },
}

impl Report {
    /// The report as one line (without the newline); messages are folded onto it.
    pub fn line(&self) -> String {
        let fold = |s: &str| s.replace(['\n', '\r'], " ");
        match self {
            Report::Warning(w) => format!("warn {}", fold(w)),
            Report::Started => "ok".into(),
            Report::Failed { code, message } => format!("err {code} {}", fold(message)),
        }
    }

    /// Reads a report line back; `None` for anything else.
    pub fn parse(line: &str) -> Option<Report> {
        let line = line.trim_end_matches(['\n', '\r']);
        if line == "ok" {
            return Some(Report::Started);
        }
        if let Some(w) = line.strip_prefix("warn ") {
            return Some(Report::Warning(w.to_string()));
        }
        let (code, message) = line.strip_prefix("err ")?.split_once(' ')?;
        Some(Report::Failed {
            code: code.parse().ok()?,
            message: message.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_through_arguments() {
        for req in [
            Request {
                id: "abc".into(),
                sig_proxy: true,
                ..Request::default()
            },
            Request {
                id: "abc".into(),
                attached: true,
                sig_proxy: false,
                log_max: Some(10_000_000),
                ready_fd: Some(5),
                hooks: true,
            },
        ] {
            assert_eq!(Request::parse(&req.to_args()), Ok(req));
        }
        assert_eq!(Request::parse(&[]), Err(RequestError::Usage));
        assert_eq!(
            Request::parse(&["--attached".into()]),
            Err(RequestError::Usage)
        );
        assert!(matches!(
            Request::parse(&["id".into(), "--log-max".into(), "x".into()]),
            Err(RequestError::NotANumber {
                flag: "--log-max",
                ..
            })
        ));
        assert!(matches!(
            Request::parse(&["id".into(), "--bogus".into()]),
            Err(RequestError::Unknown(_))
        ));
    }

    #[test]
    fn reports_round_trip_through_lines() {
        for r in [
            Report::Warning("limits dropped".into()),
            Report::Started,
            Report::Failed {
                code: 127,
                message: "exec: \"nope\": executable file not found".into(),
            },
        ] {
            assert_eq!(Report::parse(&r.line()), Some(r));
        }
        let folded = Report::Failed {
            code: 125,
            message: "two\nlines".into(),
        };
        assert_eq!(folded.line(), "err 125 two lines");
        assert_eq!(Report::parse("garbage"), None);
        assert_eq!(Report::parse("err x y"), None);
    }
}
