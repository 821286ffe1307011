//! The image commands: pull, images, tag, rmi, image prune, save, load, push, login, logout.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use skiff_store::auth::{self, Credentials};
use skiff_store::registry::Remote;
use skiff_store::Reference;

use crate::ctx::{self, hooks, open_store};
use crate::output::{format, human, prompt, table};

/// `save` flags.
#[derive(Args)]
pub struct SaveArgs {
    /// Write to this file instead of stdout
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Images
    #[arg(required = true)]
    images: Vec<String>,
}

/// `load` flags.
#[derive(Args)]
pub struct LoadArgs {
    /// Read from this file instead of stdin
    #[arg(short, long)]
    input: Option<PathBuf>,
    /// Print only the names
    #[arg(short, long)]
    quiet: bool,
}

/// `skiff save`: to a file written whole before it is renamed into place, or to stdout.
pub fn save(a: SaveArgs) -> Result<ExitCode> {
    let store = open_store()?;
    match &a.output {
        Some(path) => {
            let tmp = path.with_file_name(format!(
                ".{}.skiff-save",
                path.file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default()
            ));
            let file = std::fs::File::create(&tmp)
                .with_context(|| format!("creating {}", tmp.display()))?;
            let res = store
                .save(&a.images, std::io::BufWriter::new(file))
                .map_err(anyhow::Error::from)
                .and_then(|_| {
                    std::fs::rename(&tmp, path)
                        .with_context(|| format!("writing {}", path.display()))
                });
            if res.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            res?;
        }
        None => {
            if std::io::stdout().is_terminal() {
                bail!("refusing to write an image archive to a terminal: use -o FILE or redirect stdout");
            }
            store.save(&a.images, std::io::stdout().lock())?;
        }
    }
    for n in &a.images {
        ctx::image_event("save", n, n);
    }
    Ok(ExitCode::SUCCESS)
}

/// `skiff load`.
pub fn load(a: LoadArgs) -> Result<ExitCode> {
    let store = open_store()?;
    let unpacker = ctx::unpacker::for_this_user(&store.dirs);
    let names = match &a.input {
        Some(p) => {
            let f = std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
            store.load(std::io::BufReader::new(f), &*unpacker)?
        }
        None => {
            if std::io::stdin().is_terminal() {
                bail!("load reads an image archive from stdin: use -i FILE or redirect stdin");
            }
            store.load(std::io::stdin().lock(), &*unpacker)?
        }
    };
    for n in names {
        ctx::image_event("load", &n, &n);
        if a.quiet {
            println!("{n}");
        } else {
            println!("Loaded image: {n}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `push` flags.
#[derive(Args)]
pub struct PushArgs {
    /// Local image (name, id or id prefix)
    image: String,
    /// Where to push it (default: the image's own name), as podman takes it
    destination: Option<String>,
    /// Print only the digest when done
    #[arg(short, long)]
    quiet: bool,
}

/// `skiff push`.
pub fn push(a: PushArgs) -> Result<ExitCode> {
    let store = open_store()?;
    let dest = a.destination.clone().unwrap_or_else(|| a.image.clone());
    if !a.quiet {
        let r = Reference::parse(&dest)?;
        println!("The push refers to repository [{}]", r.name());
    }
    let quiet = a.quiet;
    let report = move |d: &skiff_store::Digest, what: skiff_store::push::BlobPush| {
        if !quiet {
            let state = match what {
                skiff_store::push::BlobPush::Exists => "Layer already exists",
                skiff_store::push::BlobPush::Pushed => "Pushed",
            };
            println!("{}: {state}", d.short());
        }
    };
    let pushed =
        ctx::runtime()?.block_on(store.push(&a.image, a.destination.as_deref(), &report))?;
    let pushed_ref = pushed.reference.to_string();
    ctx::image_event("push", &pushed_ref, &pushed_ref);
    if a.quiet {
        println!("{}", pushed.digest);
    } else {
        println!(
            "{}: digest: {} size: {}",
            pushed.reference.tag.as_deref().unwrap_or("latest"),
            pushed.digest,
            pushed.size
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `pull` flags.
#[derive(Args)]
pub struct PullArgs {
    /// Image reference (busybox, 127.0.0.1:5000/app:1, name@sha256:…)
    image: String,
    /// Print only the reference when done
    #[arg(short, long)]
    quiet: bool,
    /// Platform to pick from a multi-arch image (os/arch[/variant])
    #[arg(long)]
    platform: Option<String>,
}

/// `images` flags.
#[derive(Args)]
pub struct ImagesArgs {
    /// Only show image ids
    #[arg(short, long)]
    quiet: bool,
    /// Show digests
    #[arg(long)]
    digests: bool,
    /// Don't truncate ids
    #[arg(long)]
    no_trunc: bool,
    /// Output format: table (default), json (one object per line), or a Go template ({{.Repository}}:{{.Tag}})
    #[arg(long)]
    format: Option<String>,
    /// Show all images (accepted for compatibility: skiff keeps no intermediate images)
    #[arg(short, long)]
    all: bool,
    /// Filter: dangling=true|false, reference=PATTERN, before=IMAGE, since=IMAGE, label=KEY[=VALUE]
    #[arg(short, long, action = clap::ArgAction::Append)]
    filter: Vec<String>,
    /// Only this repository (all its tags) or this REPO:TAG
    repository: Option<String>,
}

/// `rmi` flags.
#[derive(Args)]
pub struct RmiArgs {
    /// Images by name, id or id prefix
    #[arg(required = true)]
    images: Vec<String>,
    /// Remove an image even when several names refer to it
    #[arg(short, long)]
    force: bool,
}

/// `image prune` flags.
#[derive(Args)]
pub struct PruneArgs {
    /// Do not ask for confirmation (accepted; prune only removes unused data)
    #[arg(short, long)]
    force: bool,
    /// Accepted for compatibility: every unreferenced blob is removed
    #[arg(short, long)]
    all: bool,
}

/// `login` flags.
#[derive(Args)]
pub struct LoginArgs {
    /// Registry host[:port]; Docker Hub when omitted
    registry: Option<String>,
    /// User name
    #[arg(short, long)]
    username: Option<String>,
    /// Password (prefer --password-stdin)
    #[arg(short, long)]
    password: Option<String>,
    /// Read the password from standard input
    #[arg(long)]
    password_stdin: bool,
}

/// `logout` flags.
#[derive(Args)]
pub struct LogoutArgs {
    /// Registry host[:port]; Docker Hub when omitted
    registry: Option<String>,
}

/// `skiff pull`.
pub fn pull(a: PullArgs) -> Result<ExitCode> {
    let store = open_store()?;
    let hooks = hooks::registered()?;
    let reference = Reference::parse(&hooks::reference_for(hooks.as_ref(), &store, &a.image)?)?;
    let pulled = ctx::pull_with_progress(&store, &reference, a.platform.as_deref(), a.quiet)?;
    for n in &pulled.notes {
        eprintln!("note: {n}");
    }
    if !a.quiet {
        println!("Digest: {}", pulled.repo_digest);
        if pulled.up_to_date {
            println!("Status: Image is up to date for {}", pulled.reference);
        } else {
            println!("Status: Downloaded newer image for {}", pulled.reference);
        }
    }
    println!("{}", pulled.reference);
    let r = pulled.reference.to_string();
    ctx::image_event("pull", &r, &r);
    Ok(ExitCode::SUCCESS)
}

/// `skiff images`: a table, ids, json or a `--format` template.
pub fn images(a: ImagesArgs) -> Result<ExitCode> {
    let store = open_store()?;
    let filters = a
        .filter
        .iter()
        .map(|f| skiff_store::filters::ImageFilter::parse(f))
        .collect::<skiff_store::Result<Vec<_>>>()?;
    let list = store.list_matching(a.repository.as_deref(), &filters)?;
    let now = chrono::Utc::now();
    match a.format.as_deref() {
        Some("json") => {
            // One object per line, as Docker prints `images --format json` (and `ps`).
            for i in &list {
                let row = serde_json::json!({
                    "Id": i.id.to_string(), "Repository": i.repository, "Tag": i.tag, "Digest": i.repo_digest,
                    "Created": i.created, "Size": i.size, "Names": [i.reference.clone()],
                });
                println!("{}", serde_json::to_string(&row)?);
            }
            return Ok(ExitCode::SUCCESS);
        }
        Some("table") | None => {}
        Some(template) => {
            // Docker's fields for `images --format`, and its column titles for `table …`.
            let headers = std::collections::HashMap::from([
                ("ID", "IMAGE ID"),
                ("Repository", "REPOSITORY"),
                ("Tag", "TAG"),
                ("Digest", "DIGEST"),
                ("CreatedSince", "CREATED"),
                ("CreatedAt", "CREATED AT"),
                ("Size", "SIZE"),
            ]);
            let f = format::Format::parse(template, &headers)?;
            let rows: Vec<_> = list
                .iter()
                .map(|i| {
                    let since = i
                        .created
                        .as_deref()
                        .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
                        .map(|t| human::ago((now - t.with_timezone(&chrono::Utc)).num_seconds()))
                        .unwrap_or_else(|| "N/A".into());
                    serde_json::json!({
                        "ID": if a.no_trunc { i.id.to_string() } else { i.id.short().to_string() },
                        "Repository": i.repository,
                        "Tag": i.tag.clone().unwrap_or_else(|| "<none>".into()),
                        "Digest": i.repo_digest.clone().unwrap_or_else(|| "<none>".into()),
                        "CreatedSince": since, "CreatedAt": i.created, "Size": human::size(i.size),
                    })
                })
                .collect();
            f.print_all(&rows)?;
            return Ok(ExitCode::SUCCESS);
        }
    }
    let id = |i: &skiff_store::LocalImage| {
        if a.no_trunc {
            i.id.to_string()
        } else {
            i.id.short().to_string()
        }
    };
    if a.quiet {
        let mut seen = std::collections::HashSet::new();
        for i in &list {
            if seen.insert(i.id.clone()) {
                println!("{}", id(i));
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = vec![];
    let mut header = vec!["REPOSITORY", "TAG"];
    if a.digests {
        header.push("DIGEST");
    }
    header.extend(["IMAGE ID", "CREATED", "SIZE"]);
    rows.push(header.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    for i in &list {
        let created = i
            .created
            .as_deref()
            .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
            .map(|t| human::ago((now - t.with_timezone(&chrono::Utc)).num_seconds()))
            .unwrap_or_else(|| "N/A".into());
        let mut row = vec![
            i.repository.clone(),
            i.tag.clone().unwrap_or_else(|| "<none>".into()),
        ];
        if a.digests {
            row.push(i.repo_digest.clone().unwrap_or_else(|| "<none>".into()));
        }
        row.extend([id(i), created, human::size(i.size)]);
        rows.push(row);
    }
    table::print_aligned(&rows.iter().map(|r| r.join("\t")).collect::<Vec<_>>());
    Ok(ExitCode::SUCCESS)
}

/// `skiff rmi`: images no container uses (unless forced), what containers use read under the collector's lock.
pub fn rmi(a: RmiArgs) -> Result<ExitCode> {
    let store = open_store()?;
    let unpacker = ctx::unpacker::for_this_user(&store.dirs);
    // What containers use is read under the collector's lock: a `run` between its image lookup
    // and its record holds a lease, so it is either seen here or sees the image gone.
    let gc = store.lock_for_gc()?;
    let used = ctx::in_use(&store.dirs)?;
    let mut failed = None;
    for name in &a.images {
        // The last name of an image a container uses stays unless forced, as in Docker; even
        // then its layers stay for the container.
        let id = store
            .find(name)
            .ok()
            .and_then(|v| v.first().map(|i| i.id.to_string()));
        let using = id.map(|id| used.users_of(&id)).unwrap_or_default();
        // One of several names only untags, as in Docker and podman: the image stays.
        let untag_only = store.untags_only(name).unwrap_or(false);
        if !using.is_empty() && !a.force && !untag_only {
            eprintln!("Error: image {name} is in use by container {}: remove the container first (skiff rm {}) or untag with -f", using.join(", "), using[0]);
            failed = Some(ExitCode::from(125));
            continue;
        }
        match store.remove(&gc, name, a.force, &*unpacker, &used.layers) {
            Ok(lines) => {
                for l in &lines {
                    println!("{l}");
                    // Docker's events for what rmi printed: one per untagged name and deleted id.
                    if let Some(n) = l.strip_prefix("Untagged: ") {
                        // Docker's familiar form, as the name was tagged.
                        let n = n
                            .strip_prefix("docker.io/library/")
                            .or_else(|| n.strip_prefix("docker.io/"))
                            .unwrap_or(n);
                        ctx::image_event("untag", n, n);
                    } else if let Some(i) = l.strip_prefix("Deleted: ") {
                        ctx::image_event("delete", i, name);
                    }
                }
            }
            Err(e) => {
                eprintln!("Error: {e}");
                failed = Some(ExitCode::from(
                    if matches!(e, skiff_store::Error::ImageNotLocal(_)) {
                        1
                    } else {
                        125
                    },
                ));
            }
        }
    }
    Ok(failed.unwrap_or(ExitCode::SUCCESS))
}

/// `skiff image prune`.
pub fn prune(_a: PruneArgs) -> Result<ExitCode> {
    let store = open_store()?;
    let unpacker = ctx::unpacker::for_this_user(&store.dirs);
    let gc = store.lock_for_gc()?;
    let in_use = ctx::in_use(&store.dirs)?.layers;
    let r = store.prune(&gc, &*unpacker, &in_use)?;
    println!("Deleted {} blobs and {} layers", r.blobs, r.layers);
    println!("Total reclaimed space: {}", human::size(r.reclaimed));
    Ok(ExitCode::SUCCESS)
}

fn registry_arg(r: Option<String>) -> Result<String> {
    let r = r.unwrap_or_else(|| skiff_store::reference::DEFAULT_REGISTRY.to_string());
    let r = r
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    if r.is_empty() || r.contains('/') && r != "index.docker.io/v1" {
        bail!("\"{r}\" is not a registry: give host[:port], e.g. skiff login ghcr.io");
    }
    Ok(if r == "index.docker.io" || r == "index.docker.io/v1" {
        "docker.io".into()
    } else {
        r
    })
}

/// `skiff login`: asks what flags do not give, checks the login, saves it.
pub fn login(a: LoginArgs) -> Result<ExitCode> {
    let registry = registry_arg(a.registry)?;
    let username = match a.username {
        Some(u) => u,
        None if a.password_stdin => bail!("--password-stdin needs -u USER"),
        None => prompt::ask("Username: ", false)?,
    };
    let password = match (a.password, a.password_stdin) {
        (Some(_), true) => bail!("--password and --password-stdin are mutually exclusive"),
        (Some(p), false) => p,
        (None, true) => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading the password from stdin")?;
            s.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => prompt::ask("Password: ", true)?,
    };
    let creds = Credentials { username, password };
    let store = open_store()?;
    ctx::runtime()?.block_on(Remote::check_login(
        &registry,
        &creds,
        &store.config,
        &store.dirs,
    ))?;
    let saved = auth::store(&registry, &creds)?;
    eprintln!("Credentials saved in {saved}");
    println!("Login Succeeded!");
    Ok(ExitCode::SUCCESS)
}

/// `skiff logout`.
pub fn logout(a: LogoutArgs) -> Result<ExitCode> {
    let registry = registry_arg(a.registry)?;
    if auth::remove(&registry)? {
        println!("Removed login credentials for {registry}");
        Ok(ExitCode::SUCCESS)
    } else {
        bail!("not logged in to {registry}")
    }
}

/// `skiff tag`.
/// `tag` and `image tag`.
#[derive(Args)]
pub struct TagArgs {
    /// Image (name, id or id prefix)
    pub source: String,
    /// New name, NAME[:TAG]
    pub target: String,
}

pub fn tag(source: &str, target: &str) -> Result<ExitCode> {
    let store = open_store()?;
    store.tag(source, target)?;
    let id = store
        .find(target)
        .ok()
        .and_then(|v| v.first().map(|i| i.id.to_string()))
        .unwrap_or_else(|| source.to_string());
    ctx::image_event("tag", &id, target);
    Ok(ExitCode::SUCCESS)
}

/// `image untag` (podman's) arguments.
#[derive(Args)]
pub struct UntagArgs {
    /// Image by name, id or id prefix
    image: String,
    /// Names to take away
    #[arg(required = true)]
    names: Vec<String>,
}

/// `skiff image untag IMAGE NAME…`: takes names away from an image that keeps another one;
/// skiff keeps no unnamed images, so its last name goes only with `rmi`.
pub fn untag(a: UntagArgs) -> Result<ExitCode> {
    let store = open_store()?;
    let unpacker = ctx::unpacker::for_this_user(&store.dirs);
    let id = store.find(&a.image)?.first().map(|i| i.id.clone());
    let gc = store.lock_for_gc()?;
    let used = ctx::in_use(&store.dirs)?;
    for name in &a.names {
        let hit = store
            .find(name)
            .ok()
            .and_then(|v| v.first().map(|i| i.id.clone()));
        if hit != id || skiff_store::Reference::parse(name).is_err() {
            anyhow::bail!("{name} is not a name of image {}", a.image);
        }
        if !store.untags_only(name)? {
            anyhow::bail!("{name} is the last name of its image, and skiff keeps no unnamed images: remove the image with skiff rmi {name}");
        }
        store.remove(&gc, name, false, &*unpacker, &used.layers)?;
    }
    Ok(ExitCode::SUCCESS)
}
