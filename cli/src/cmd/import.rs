//! `skiff import` / `skiff image import`: a tarball (plain or gzipped; a file or stdin) as a
//! one-layer image, with Docker's `--change` instructions as its config.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::{json, Map, Value};

use crate::ctx;

/// `import` flags.
#[derive(Args)]
pub struct ImportArgs {
    /// Apply a Dockerfile instruction to the image: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL,
    /// STOPSIGNAL, USER, VOLUME or WORKDIR
    #[arg(short, long = "change")]
    change: Vec<String>,
    /// Commit message for the imported image
    #[arg(short, long)]
    message: Option<String>,
    /// The tar archive, or `-` for stdin
    file: String,
    /// Name of the new image: REPOSITORY[:TAG]
    name: Option<String>,
}

/// `skiff import FILE|- NAME`: prints the new image's id, as Docker does.
pub fn import(a: ImportArgs) -> Result<ExitCode> {
    if a.file.contains("://") {
        bail!(
            "importing from a URL is not supported: download {} first, then skiff import FILE NAME",
            a.file
        );
    }
    let Some(name) = &a.name else {
        bail!(
            "give the new image a name: skiff import {} NAME[:TAG] (skiff keeps no unnamed images)",
            a.file
        );
    };
    let settings = settings(&a.change)?;
    let store = ctx::open_store()?;
    skiff_store::Reference::parse(name)?;
    let input: Box<dyn std::io::Read> = if a.file == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(&a.file).with_context(|| format!("opening {}", a.file))?)
    };
    let shown = if a.file == "-" { "stdin" } else { &a.file };
    let comment = a
        .message
        .clone()
        .unwrap_or_else(|| format!("Imported from {}", a.file));
    let unpacker = ctx::unpacker::for_this_user(&store.dirs);
    let id = store.import_tar(name, input, shown, settings, &comment, &*unpacker)?;
    println!("{id}");
    Ok(ExitCode::SUCCESS)
}

/// The image config's `config` section from `--change` instructions (Docker's names).
fn settings(changes: &[String]) -> Result<Value> {
    let mut c = Map::new();
    let mut env: Vec<String> = Vec::new();
    let mut labels = BTreeMap::new();
    let mut ports = Map::new();
    let mut volumes = Map::new();
    for ch in changes {
        let (word, rest) = ch
            .trim()
            .split_once(char::is_whitespace)
            .unwrap_or((ch, ""));
        let rest = rest.trim();
        let bad = |why: &str| anyhow::anyhow!("--change {ch:?}: {why}");
        match word.to_ascii_uppercase().as_str() {
            "CMD" | "ENTRYPOINT" => {
                let argv = argv(rest).map_err(|_| bad("a JSON list must hold strings only"))?;
                let key = if word.eq_ignore_ascii_case("cmd") {
                    "Cmd"
                } else {
                    "Entrypoint"
                };
                c.insert(key.into(), json!(argv));
            }
            "ENV" => {
                let pairs: Vec<String> = match rest.split_once(char::is_whitespace) {
                    Some((k, v)) if !k.contains('=') => vec![format!("{k}={}", v.trim())],
                    _ if rest.contains('=') => rest
                        .split_whitespace()
                        .map(unquote_value)
                        .collect(),
                    _ => return Err(bad("give ENV KEY=VALUE or ENV KEY VALUE")),
                };
                for p in pairs {
                    let key = p.split('=').next().unwrap_or_default().to_string();
                    env.retain(|e| e.split('=').next() != Some(&key));
                    env.push(p);
                }
            }
            "LABEL" => {
                for p in rest.split_whitespace() {
                    let p = unquote_value(p);
                    let (k, v) = p
                        .split_once('=')
                        .ok_or_else(|| bad("give LABEL KEY=VALUE"))?;
                    labels.insert(k.to_string(), v.to_string());
                }
            }
            "EXPOSE" => {
                for p in rest.split_whitespace() {
                    let p = if p.contains('/') {
                        p.to_string()
                    } else {
                        format!("{p}/tcp")
                    };
                    ports.insert(p, json!({}));
                }
            }
            "VOLUME" => {
                let paths = if rest.starts_with('[') {
                    argv(rest).map_err(|_| bad("a JSON list must hold strings only"))?
                } else {
                    rest.split_whitespace().map(String::from).collect()
                };
                for p in paths {
                    volumes.insert(p, json!({}));
                }
            }
            "USER" | "WORKDIR" | "STOPSIGNAL" => {
                let key = match word.to_ascii_uppercase().as_str() {
                    "USER" => "User",
                    "WORKDIR" => "WorkingDir",
                    _ => "StopSignal",
                };
                c.insert(key.into(), json!(rest));
            }
            _ => return Err(bad(
                "import applies CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME and WORKDIR",
            )),
        }
    }
    if !env.is_empty() {
        c.insert("Env".into(), json!(env));
    }
    if !labels.is_empty() {
        c.insert("Labels".into(), json!(labels));
    }
    if !ports.is_empty() {
        c.insert("ExposedPorts".into(), ports.into());
    }
    if !volumes.is_empty() {
        c.insert("Volumes".into(), volumes.into());
    }
    Ok(c.into())
}

/// A Dockerfile argv: the JSON form (`["a", "b"]`), or the shell form run by `/bin/sh -c`.
fn argv(rest: &str) -> Result<Vec<String>> {
    if rest.starts_with('[') {
        if let Ok(v) = serde_json::from_str::<Vec<String>>(rest) {
            return Ok(v);
        }
        if serde_json::from_str::<Value>(rest).is_ok() {
            bail!("not a list of strings");
        }
    }
    Ok(vec!["/bin/sh".into(), "-c".into(), rest.into()])
}

/// `KEY="some value"` as `KEY=some value`.
fn unquote_value(p: &str) -> String {
    match p.split_once('=') {
        Some((k, v)) => format!("{k}={}", v.trim_matches('"')),
        None => p.to_string(),
    }
}
