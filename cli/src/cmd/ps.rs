//! `skiff ps` (`container ls`): the user's containers from their records, filtered by the
//! runtime's `ps` filter, printed as a table, ids, json or a `--format` template.

use std::collections::HashMap;
use std::process::ExitCode;

use anyhow::Result;
use clap::{ArgAction, Args};
use skiff_runtime::container::filters::{state_word, PsFilter};
use skiff_runtime::container::lifecycle::View;
use skiff_runtime::container::times::seconds_since;
use skiff_runtime::{Containers, Status};

use crate::ctx;
use crate::output::format::Format;
use crate::output::human;

/// `Up 3 seconds`, `Up 3 seconds (healthy)`, `Exited (0) 2 minutes ago`, `Restarting (1) 1
/// second ago`, `Created`.
fn status_text(c: &Containers, v: &View) -> String {
    if v.restarting() {
        return format!(
            "Restarting ({}) {}",
            v.state.exit_code.unwrap_or(-1),
            human::ago(seconds_since(v.state.finished_at.as_deref()))
        );
    }
    match v.state.status {
        Status::Created => "Created".into(),
        Status::Running => format!(
            "Up {}{}",
            human::ago(seconds_since(v.state.started_at.as_deref())).trim_end_matches(" ago"),
            if v.paused() {
                " (Paused)".to_string()
            } else {
                match skiff_runtime::container::health::of(
                    v.cfg.healthcheck.as_ref(),
                    &c.dir(&v.cfg.id),
                )
                .map(|h| h.status)
                {
                    Some(skiff_runtime::container::health::HealthStatus::Starting) => {
                        " (health: starting)".to_string()
                    }
                    Some(s) => format!(" ({})", s.word()),
                    None => String::new(),
                }
            }
        ),
        Status::Exited => format!(
            "Exited ({}) {}",
            v.state.exit_code.unwrap_or(-1),
            human::ago(seconds_since(v.state.finished_at.as_deref()))
        ),
    }
}

fn command_text(v: &View, full: bool) -> String {
    let c = v.cfg.process.args.join(" ");
    if full || c.chars().count() <= 20 {
        format!("\"{c}\"")
    } else {
        format!("\"{}…\"", c.chars().take(19).collect::<String>())
    }
}

/// PORTS as Docker shows it: what a running container publishes and the exposed ports nothing
/// publishes; nothing once it stopped.
fn ports_text(v: &View) -> String {
    let exposed: &[String] = if v.running() && v.cfg.network.private() {
        &v.cfg.exposed
    } else {
        &[]
    };
    skiff_runtime::network::ports::ps_text(&v.bound_ports(), exposed)
}

/// The fields `ps --format` knows, as Docker names them.
fn ps_item(c: &Containers, v: &View, no_trunc: bool) -> serde_json::Value {
    let labels: Vec<String> = v
        .cfg
        .labels
        .iter()
        .map(|(k, val)| format!("{k}={val}"))
        .collect();
    serde_json::json!({
        "ID": if no_trunc { v.cfg.id.clone() } else { v.cfg.id[..12].to_string() },
        "Image": v.cfg.image,
        "Command": command_text(v, no_trunc),
        "CreatedAt": v.cfg.created,
        "RunningFor": human::ago(seconds_since(Some(&v.cfg.created))),
        "Status": status_text(c, v),
        "State": state_word(v),
        "Ports": ports_text(v),
        "Names": v.cfg.name,
        "Labels": labels.join(","),
        "ExitCode": v.state.exit_code,
    })
}

/// `ps` flags.
#[derive(Args)]
pub struct PsArgs {
    /// Show all containers (default: running)
    #[arg(short, long)]
    all: bool,
    /// Only ids
    #[arg(short, long)]
    quiet: bool,
    /// Don't truncate
    #[arg(long)]
    no_trunc: bool,
    /// The last N created (any state)
    #[arg(short = 'n', long)]
    last: Option<usize>,
    /// The latest created (any state)
    #[arg(short, long)]
    latest: bool,
    /// Show the size of each container's writable layer
    #[arg(short, long)]
    size: bool,
    /// Filter: status=, name=, id=, label=, ancestor=, exited=, before=, since=
    #[arg(short, long, action = ArgAction::Append)]
    filter: Vec<String>,
    /// Go template, `table …`, or json
    #[arg(long)]
    format: Option<String>,
}

/// The `ps` fields of a container whose record cannot be read (podman shows such a one too):
/// what its config still gives, and a status saying what is damaged.
fn damaged_item(
    d: &skiff_runtime::container::records::Damaged,
    no_trunc: bool,
) -> serde_json::Value {
    serde_json::json!({
        "ID": if no_trunc { d.id.clone() } else { d.id.chars().take(12).collect() },
        "Image": d.image.clone().unwrap_or_default(),
        "Command": "",
        "CreatedAt": d.created.clone().unwrap_or_default(),
        "RunningFor": d.created.as_ref().map(|c| human::ago(seconds_since(Some(c)))).unwrap_or_default(),
        "Status": format!("Damaged ({})", d.what),
        "State": "damaged",
        "Ports": "",
        "Names": d.name.clone().unwrap_or_default(),
        "Labels": "",
        "ExitCode": serde_json::Value::Null,
    })
}

/// `skiff ps`.
pub fn ps(a: PsArgs) -> Result<ExitCode> {
    let (_, c) = ctx::containers()?;
    let filter = PsFilter::parse(&a.filter)?;
    let all = a.all || a.last.is_some() || a.latest || filter.shows_all();
    // Damaged records are listed with -a (never dropped without a word): one reading of the
    // records gives both.
    let with_damaged = all && !a.latest && a.last.is_none();
    let (views, damaged) = if with_damaged {
        c.views_and_damaged()?
    } else {
        (c.views()?, Vec::new())
    };
    let mut selected = filter.select(&c, views, all)?;
    if a.latest {
        selected.truncate(1);
    } else if let Some(n) = a.last {
        selected.truncate(n);
    }
    // Of the filters only status, name and id can judge a damaged record.
    let damaged: Vec<_> = damaged
        .into_iter()
        .filter(|d| filter.keeps_damaged(d))
        .collect();
    if a.quiet {
        for v in &selected {
            println!(
                "{}",
                if a.no_trunc {
                    v.cfg.id.clone()
                } else {
                    v.cfg.id[..12].to_string()
                }
            );
        }
        for d in &damaged {
            println!(
                "{}",
                damaged_item(d, a.no_trunc)["ID"].as_str().unwrap_or("")
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut items: Vec<serde_json::Value> = selected
        .iter()
        .map(|v| ps_item(&c, v, a.no_trunc))
        .collect();
    if a.size {
        // As Docker: "RW (virtual V)", V being the image's unpacked size plus RW. An image gone
        // from the store is measured from the container's own layer dirs.
        let image_sizes: HashMap<String, u64> = ctx::open_store()
            .and_then(|s| Ok(s.list()?))
            .map(|l| l.into_iter().map(|i| (i.id.to_string(), i.size)).collect())
            .unwrap_or_default();
        for (item, v) in items.iter_mut().zip(&selected) {
            let rw = ctx::dir_size(&c.dir(&v.cfg.id).join("upper"));
            let image = image_sizes
                .get(&v.cfg.image_id)
                .copied()
                .unwrap_or_else(|| v.cfg.layers.iter().map(|l| ctx::dir_size(l)).sum());
            item["Size"] = serde_json::json!(format!(
                "{} (virtual {})",
                human::size(rw),
                human::size(image + rw)
            ));
        }
    }
    for d in &damaged {
        let mut item = damaged_item(d, a.no_trunc);
        if a.size {
            item["Size"] =
                serde_json::json!(human::size(ctx::dir_size(&c.dir(&d.id).join("upper"))));
        }
        items.push(item);
    }
    match a.format.as_deref() {
        Some("json") => {
            for i in &items {
                println!("{}", serde_json::to_string(i)?);
            }
        }
        Some(t) => Format::parse(t, &ps_headers())?.print_all(&items)?,
        None => {
            let mut t = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}".to_string();
            if a.size {
                t.push_str("\t{{.Size}}");
            }
            Format::parse(&t, &ps_headers())?.print_all(&items)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn ps_headers() -> HashMap<&'static str, &'static str> {
    HashMap::from([
        ("ID", "CONTAINER ID"),
        ("Image", "IMAGE"),
        ("Command", "COMMAND"),
        ("CreatedAt", "CREATED AT"),
        ("RunningFor", "CREATED"),
        ("Status", "STATUS"),
        ("State", "STATE"),
        ("Ports", "PORTS"),
        ("Names", "NAMES"),
        ("Labels", "LABELS"),
        ("Size", "SIZE"),
        ("ExitCode", "EXIT CODE"),
    ])
}
