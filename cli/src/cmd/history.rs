//! `skiff history` / `skiff image history`: an image's build steps from its config, with the size
//! of the layer each step added, in Docker's columns and flags.

use std::collections::HashMap;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use crate::ctx::open_store;
use crate::output::{format, human, table};

/// `history` flags.
#[derive(Args)]
pub struct HistoryArgs {
    /// Don't truncate the output
    #[arg(long)]
    no_trunc: bool,
    /// Only show image ids
    #[arg(short, long)]
    quiet: bool,
    /// Print sizes and dates in human-readable form (default true)
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set)]
    human: bool,
    /// Output format: table (default), json (one object per line), or a Go template ({{.CreatedBy}})
    #[arg(long)]
    format: Option<String>,
    /// Image (name, id or id prefix)
    image: String,
}

/// Docker truncates CREATED BY to this many characters unless `--no-trunc`.
const CREATED_BY_WIDTH: usize = 45;

/// `skiff history`.
pub fn history(a: HistoryArgs) -> Result<ExitCode> {
    let store = open_store()?;
    let img = store
        .find(&a.image)?
        .into_iter()
        .next()
        .with_context(|| format!("no such image {}: see skiff images", a.image))?;
    let steps = store.history(&img)?;
    let now = chrono::Utc::now();
    // Only the newest step is the image itself; the steps below have no image of their own.
    let id = |i: usize| match (i, a.no_trunc) {
        (0, true) => img.id.to_string(),
        (0, false) => img.id.short().to_string(),
        _ => "<missing>".to_string(),
    };
    if a.quiet {
        for (i, _) in steps.iter().enumerate() {
            println!("{}", id(i));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<serde_json::Value> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let created = s
                .created
                .as_deref()
                .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok());
            let since = match created {
                Some(t) if a.human => human::ago((now - t.with_timezone(&chrono::Utc)).num_seconds()),
                Some(t) => t.to_rfc3339(),
                None => "N/A".into(),
            };
            let by = s.created_by.replace('\t', " ");
            let by = if a.no_trunc || by.chars().count() <= CREATED_BY_WIDTH {
                by
            } else {
                let mut cut: String = by.chars().take(CREATED_BY_WIDTH - 1).collect();
                cut.push('…');
                cut
            };
            let size = if a.human {
                human::size(s.size)
            } else {
                s.size.to_string()
            };
            serde_json::json!({
                "ID": id(i), "CreatedSince": since, "CreatedAt": s.created.clone().unwrap_or_default(),
                "CreatedBy": by, "Size": size, "Comment": s.comment,
            })
        })
        .collect();
    match a.format.as_deref() {
        Some("json") => {
            for r in &rows {
                println!("{}", serde_json::to_string(r)?);
            }
        }
        Some("table") | None => {
            let mut lines = vec!["IMAGE\tCREATED\tCREATED BY\tSIZE\tCOMMENT".to_string()];
            for r in &rows {
                let cell = |k: &str| r[k].as_str().unwrap_or("").to_string();
                lines.push(
                    ["ID", "CreatedSince", "CreatedBy", "Size", "Comment"]
                        .map(cell)
                        .join("\t"),
                );
            }
            table::print_aligned(&lines);
        }
        Some(template) => {
            let headers = HashMap::from([
                ("ID", "IMAGE"),
                ("CreatedSince", "CREATED"),
                ("CreatedAt", "CREATED AT"),
                ("CreatedBy", "CREATED BY"),
                ("Size", "SIZE"),
                ("Comment", "COMMENT"),
            ]);
            format::Format::parse(template, &headers)?.print_all(&rows)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
