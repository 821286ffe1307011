//! `skiff stats`: live CPU, memory, network, block I/O and pids of running containers, from
//! the runtime's samples.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;

use crate::ctx;
use crate::output::format::Format;
use crate::output::human;

/// `stats` flags.
#[derive(Args)]
pub struct StatsArgs {
    /// Print one reading and exit
    #[arg(long)]
    no_stream: bool,
    /// Go template (.ID .Name .CPUPerc .MemUsage .MemPerc .NetIO .BlockIO .PIDs), table, or json
    #[arg(long)]
    format: Option<String>,
    /// Containers (default: every running one)
    containers: Vec<String>,
}

/// `skiff stats`: CPU, memory, network, block I/O and pids of running containers, from /proc.
pub fn stats(a: StatsArgs) -> Result<ExitCode> {
    let (_, c) = ctx::containers()?;
    let ids: Vec<String> = if a.containers.is_empty() {
        c.views()?
            .into_iter()
            .filter(|v| v.running())
            .map(|v| v.cfg.id)
            .collect()
    } else {
        a.containers
            .iter()
            .map(|k| c.resolve(k))
            .collect::<std::result::Result<_, _>>()?
    };
    let headers = HashMap::from([
        ("ID", "CONTAINER ID"),
        ("Name", "NAME"),
        ("CPUPerc", "CPU %"),
        ("MemUsage", "MEM USAGE / LIMIT"),
        ("MemPerc", "MEM %"),
        ("NetIO", "NET I/O"),
        ("BlockIO", "BLOCK I/O"),
        ("PIDs", "PIDS"),
    ]);
    let template = a.format.clone().unwrap_or_else(|| {
        "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}".into()
    });
    let tty = std::io::stdout().is_terminal();
    let host_mem = skiff_runtime::container::stats::host_memory();
    let hz = skiff_runtime::container::stats::ticks_per_second() as f64;
    let mut before: HashMap<String, (Instant, u64)> = HashMap::new();
    loop {
        // CPU % needs two readings: the first pass only takes the baseline.
        if before.is_empty() {
            for id in &ids {
                if let Ok(s) = c.sample(id) {
                    before.insert(id.clone(), (Instant::now(), s.cpu_ticks));
                }
            }
            std::thread::sleep(Duration::from_millis(if a.no_stream { 500 } else { 1000 }));
        }
        let mut rows = Vec::new();
        for id in &ids {
            let v = c.view(id)?;
            let Ok(s) = c.sample(id) else {
                continue;
            };
            let now = Instant::now();
            let cpu = before
                .get(id)
                .map(|(t, ticks)| {
                    let secs = now.duration_since(*t).as_secs_f64().max(1e-3);
                    s.cpu_ticks.saturating_sub(*ticks) as f64 / hz / secs * 100.0
                })
                .unwrap_or(0.0);
            before.insert(id.clone(), (now, s.cpu_ticks));
            let limit = v.cfg.limits.memory.unwrap_or(host_mem);
            let pair = |(x, y): (u64, u64)| format!("{} / {}", human::size(x), human::size(y));
            rows.push(serde_json::json!({
                "ID": &v.cfg.id[..12], "Name": v.cfg.name,
                "CPUPerc": format!("{cpu:.2}%"),
                "MemUsage": format!("{} / {}", human::size(s.rss), human::size(limit)),
                "MemPerc": format!("{:.2}%", if limit > 0 { s.rss as f64 * 100.0 / limit as f64 } else { 0.0 }),
                "NetIO": s.net.map(pair).unwrap_or_else(|| "-- (host network)".into()),
                "BlockIO": pair(s.block),
                "PIDs": s.pids.to_string(),
            }));
        }
        if a.format.as_deref() == Some("json") {
            println!("{}", serde_json::to_string(&rows)?);
        } else {
            let f = Format::parse(&template, &headers)?;
            if tty && !a.no_stream {
                print!("\x1b[2J\x1b[H");
            }
            f.print_all(&rows)?;
        }
        if a.no_stream {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}
