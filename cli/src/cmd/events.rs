//! `skiff events`: the user's event log (see the runtime's `events`), filtered and printed as
//! Docker prints it. Past events between `--since` and `--until`; without `--until` it then
//! follows the log, printing new events until interrupted.

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Result};
use chrono::{DateTime, Utc};
use skiff_runtime::container::times::parse_time;
use skiff_runtime::events::{Event, EventLog};
use skiff_store::Dirs;

use crate::args::EventsArgs;
use crate::output::format::Format;

const KEYS: [&str; 5] = ["type", "event", "container", "image", "label"];

/// The filters asked, by key.
struct Filters(HashMap<String, Vec<String>>);

impl Filters {
    fn parse(args: &[String]) -> Result<Filters> {
        let mut m: HashMap<String, Vec<String>> = HashMap::new();
        for f in args {
            let Some((k, v)) = f.split_once('=') else {
                bail!(
                    "invalid filter {f:?}: use KEY=VALUE, KEY one of {}",
                    KEYS.join(", ")
                );
            };
            if !KEYS.contains(&k) {
                bail!("invalid filter {k:?}: the keys are {}", KEYS.join(", "));
            }
            m.entry(k.to_string()).or_default().push(v.to_string());
        }
        Ok(Filters(m))
    }

    fn pass(&self, ev: &Event) -> bool {
        self.0
            .iter()
            .all(|(k, vals)| vals.iter().any(|v| matches(k, v, ev)))
    }
}

/// An image reference as Docker compares them: `busybox` is `busybox:latest`.
fn tagged(r: &str) -> String {
    let last = r.rsplit('/').next().unwrap_or(r);
    if last.contains(':') || last.contains('@') {
        r.to_string()
    } else {
        format!("{r}:latest")
    }
}

fn matches(key: &str, v: &str, ev: &Event) -> bool {
    let attr = |k: &str| ev.actor.attributes.get(k).map(String::as_str);
    match key {
        "type" => ev.kind == v,
        "event" => ev.action == v,
        "container" => {
            ev.kind == "container"
                && (ev.actor.id == v
                    || (v.len() >= 3 && ev.actor.id.starts_with(v))
                    || attr("name") == Some(v))
        }
        "image" => {
            let want = tagged(v);
            let is = |x: Option<&str>| x.is_some_and(|x| x == v || tagged(x) == want);
            match ev.kind.as_str() {
                "container" => is(attr("image")),
                _ => is(Some(&ev.actor.id)) || is(attr("name")),
            }
        }
        "label" => match v.split_once('=') {
            Some((k, val)) => attr(k) == Some(val),
            None => attr(v).is_some(),
        },
        _ => false,
    }
}

/// How each event is printed.
enum Printer {
    Line,
    Json,
    Template(Format),
}

impl Printer {
    fn new(format: Option<&str>) -> Result<Printer> {
        Ok(match format.map(str::trim) {
            None => Printer::Line,
            Some("json") | Some("{{json .}}") => Printer::Json,
            Some(t) => Printer::Template(Format::parse(t, &HashMap::new())?),
        })
    }

    fn render(&self, ev: &Event) -> Result<String> {
        Ok(match self {
            Printer::Line => ev.line(),
            Printer::Json => serde_json::to_string(ev)?,
            Printer::Template(f) => f.render(&serde_json::to_value(ev)?)?,
        })
    }
}

fn nanos(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// `skiff events`.
pub fn events(a: EventsArgs) -> Result<ExitCode> {
    let since = a.since.as_deref().map(parse_time).transpose()?;
    let until = a.until.as_deref().map(parse_time).transpose()?;
    let filters = Filters::parse(&a.filter)?;
    let printer = Printer::new(a.format.as_deref())?;
    let log = EventLog::open(&Dirs::from_env());
    let mut out = std::io::stdout();
    // Returns false once stdout is gone (the reader went away).
    let mut show = |ev: &Event| -> Result<bool> {
        if !filters.pass(ev) {
            return Ok(true);
        }
        let line = printer.render(ev)?;
        Ok(writeln!(out, "{line}").and_then(|_| out.flush()).is_ok())
    };
    let in_range = |ev: &Event| {
        since.is_none_or(|s| ev.time_nano >= nanos(s))
            && until.is_none_or(|u| ev.time_nano <= nanos(u))
    };
    let mut cursor = if since.is_some() || until.is_some() {
        let (past, cursor) = log.read_all();
        for ev in past.iter().filter(|e| in_range(e)) {
            if !show(ev)? {
                return Ok(ExitCode::SUCCESS);
            }
        }
        cursor
    } else {
        log.end()
    };
    // Follow: with --until only while it is still ahead, as Docker.
    loop {
        if until.is_some_and(|u| Utc::now() > u) {
            return Ok(ExitCode::SUCCESS);
        }
        for ev in log.more(&mut cursor).iter().filter(|e| in_range(e)) {
            if !show(ev)? {
                return Ok(ExitCode::SUCCESS);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
