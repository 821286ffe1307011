//! The clap command tree and what each command does with the library crates.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use skiff_store::auth::{self, Credentials};
use skiff_store::registry::Remote;
use skiff_store::{Dirs, ImageStore, NoProgress, Platform, Progress, PullOptions, Reference};

use crate::{human, progress, unpacker};

/// Daemonless, rootless container runner.
#[derive(Parser)]
#[command(name = "skiff", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Pull an image from a registry into your store
    #[command(after_help = PULL_EXAMPLES)]
    Pull(PullArgs),
    /// List local images
    #[command(after_help = IMAGES_EXAMPLES)]
    Images(ImagesArgs),
    /// Give an image another name
    Tag {
        /// Image (name, id or id prefix)
        source: String,
        /// New name, NAME[:TAG]
        target: String,
    },
    /// Push an image to a registry
    Push(PushArgs),
    /// Write images to a tar archive (OCI layout with Docker's manifest.json)
    Save(SaveArgs),
    /// Read images from a tar archive (skiff/docker/podman save, OCI or docker archive)
    Load(LoadArgs),
    /// Remove one or more images
    Rmi(RmiArgs),
    /// Show low-level information on containers and images as JSON
    Inspect(InspectArgs),
    /// Manage images
    #[command(subcommand)]
    Image(ImageCmd),
    /// Log in to a registry
    Login(LoginArgs),
    /// Log out from a registry
    Logout(LogoutArgs),
    /// Run a command in a new container
    #[command(after_help = RUN_EXAMPLES)]
    Run(Box<crate::run::RunArgs>),
    /// Create a container without starting it
    Create(Box<crate::run::RunArgs>),
    /// List containers
    #[command(after_help = PS_EXAMPLES)]
    Ps(crate::containers_cmd::PsArgs),
    /// Show a container's output
    #[command(after_help = LOGS_EXAMPLES)]
    Logs(crate::containers_cmd::LogsArgs),
    /// Stop containers (stop signal, then SIGKILL)
    Stop(crate::containers_cmd::StopArgs),
    /// Send a signal to containers
    Kill(crate::containers_cmd::KillArgs),
    /// Start stopped or created containers
    Start(crate::containers_cmd::StartArgs),
    /// Restart containers
    Restart(crate::containers_cmd::StopArgs),
    /// Wait for containers to stop and print their exit codes
    Wait(Names),
    /// Remove containers
    Rm(crate::containers_cmd::RmArgs),
    /// Rename a container
    Rename {
        /// Current name or id
        container: String,
        /// New name
        new_name: String,
    },
    /// Show a container's processes
    Top {
        /// Container
        container: String,
    },
    /// Run a command in a running container
    #[command(after_help = EXEC_EXAMPLES)]
    Exec(crate::containers_cmd::ExecArgs),
    /// List a container's published ports
    Port(crate::containers_cmd::PortArgs),
    /// Copy files between a container and the host
    Cp(crate::containers_cmd::CpArgs),
    /// Live CPU, memory, network and I/O of running containers
    Stats(crate::containers_cmd::StatsArgs),
    /// Make an image from a container's changes
    Commit(crate::containers_cmd::CommitArgs),
    /// Stop every process of containers until unpause
    Pause(Names),
    /// Let paused containers go on
    Unpause(Names),
    /// Show what skiff finds on this machine for you: id ranges, helpers, storage
    Info(crate::info::InfoArgs),
    /// Show skiff's version
    Version(crate::info::InfoArgs),
    /// Manage containers
    #[command(subcommand)]
    Container(ContainerCmd),
    /// Manage volumes
    #[command(subcommand)]
    Volume(crate::volumes_cmd::VolumeCmd),
    /// Disk usage and pruning of everything
    #[command(subcommand)]
    System(crate::system_cmd::SystemCmd),
    /// Print a shell completion script: `source <(skiff completion bash)`
    Completion {
        /// bash, zsh, fish, elvish or powershell
        shell: clap_complete::Shell,
    },
    /// Run a command inside your user namespace (as podman unshare): see image files with the
    /// owners they have in containers, or remove them
    Unshare {
        /// Command and arguments (default: $SHELL)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    #[command(name = "__unpack", hide = true)]
    HelperUnpack {
        blob: PathBuf,
        diff_id: String,
        dest: PathBuf,
        #[arg(default_value_t = 0)]
        max_size: u64,
    },
    #[command(name = "__hook", hide = true)]
    HelperHook,
    /// Man pages for skiff and each command into DIR (`cargo xtask man DIR` runs this).
    #[command(name = "__man", hide = true)]
    HelperMan { dir: PathBuf },
    #[command(name = "__rmtree", hide = true)]
    HelperRmtree { dir: PathBuf },
    #[command(name = "__pack-upper", hide = true)]
    HelperPackUpper { dir: PathBuf },
    #[command(name = "__cp", hide = true)]
    HelperCp {
        direction: String,
        id: String,
        path: String,
        name: String,
    },
}

/// `skiff run --help` examples, as podman shows them.
const RUN_EXAMPLES: &str = "Examples:
  skiff run --rm busybox echo hello
  skiff run -it --rm busybox sh
  skiff run -d --name web -p 8080:80 busybox httpd -f -h /etc
  skiff run -e KEY=value --env-file app.env -v ./data:/data:ro busybox ls /data
  skiff run -u 1000 -w /tmp --read-only --cap-drop ALL busybox id";

/// `skiff ps --help` examples.
const PS_EXAMPLES: &str = "Examples:
  skiff ps -a
  skiff ps -q --filter status=exited
  skiff ps --filter label=app=web --format 'table {{.Names}}\\t{{.Status}}'
  skiff ps --format json";

/// `skiff exec --help` examples.
const EXEC_EXAMPLES: &str = "Examples:
  skiff exec -it web sh
  skiff exec web cat /etc/hostname
  skiff exec -u 1000 -w /tmp -e DEBUG=1 web env
  skiff exec -d web touch /tmp/ready";

/// `skiff pull --help` examples.
const PULL_EXAMPLES: &str = "Examples:
  skiff pull busybox
  skiff pull -q ghcr.io/org/app:1.2
  skiff pull --platform linux/arm64 alpine
  skiff pull busybox@sha256:<digest>";

/// `skiff images --help` examples.
const IMAGES_EXAMPLES: &str = "Examples:
  skiff images
  skiff images -q
  skiff images --digests --no-trunc
  skiff images --format '{{.Repository}}:{{.Tag}}'
  skiff images --format json";

/// `skiff logs --help` examples.
const LOGS_EXAMPLES: &str = "Examples:
  skiff logs web
  skiff logs -f --tail 20 web
  skiff logs -t --since 10m web";

/// One or more containers, for the commands that take nothing else.
#[derive(Args)]
struct Names {
    /// Containers
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Subcommand)]
enum ContainerCmd {
    /// List containers
    #[command(alias = "list", alias = "ps")]
    Ls(crate::containers_cmd::PsArgs),
    /// Remove stopped containers
    Prune(crate::containers_cmd::PruneArgs),
    /// Remove containers
    Rm(crate::containers_cmd::RmArgs),
    /// Inspect containers
    Inspect(InspectArgs),
    /// Stop containers
    Stop(crate::containers_cmd::StopArgs),
    /// Start containers
    Start(crate::containers_cmd::StartArgs),
    /// Show a container's output
    Logs(crate::containers_cmd::LogsArgs),
    /// List a container's published ports
    Port(crate::containers_cmd::PortArgs),
    /// Copy files between a container and the host
    Cp(crate::containers_cmd::CpArgs),
    /// Live CPU, memory, network and I/O of running containers
    Stats(crate::containers_cmd::StatsArgs),
    /// Make an image from a container's changes
    Commit(crate::containers_cmd::CommitArgs),
}

#[derive(Subcommand)]
enum ImageCmd {
    /// Pull an image
    Pull(PullArgs),
    /// List images
    #[command(alias = "list")]
    Ls(ImagesArgs),
    /// Remove images
    #[command(alias = "remove")]
    Rm(RmiArgs),
    /// Inspect images
    Inspect(InspectArgs),
    /// Remove blobs and unpacked layers no image uses
    Prune(PruneArgs),
    /// Give an image another name
    Tag {
        /// Image (name, id or id prefix)
        source: String,
        /// New name, NAME[:TAG]
        target: String,
    },
    /// Push an image to a registry
    Push(PushArgs),
    /// Write images to a tar archive
    Save(SaveArgs),
    /// Read images from a tar archive
    Load(LoadArgs),
}

#[derive(Args)]
struct SaveArgs {
    /// Write to this file instead of stdout
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Images
    #[arg(required = true)]
    images: Vec<String>,
}

#[derive(Args)]
struct LoadArgs {
    /// Read from this file instead of stdin
    #[arg(short, long)]
    input: Option<PathBuf>,
    /// Print only the names
    #[arg(short, long)]
    quiet: bool,
}

/// `skiff save`: to a file written whole before it is renamed into place, or to stdout.
fn save(a: SaveArgs) -> Result<ExitCode> {
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
    Ok(ExitCode::SUCCESS)
}

/// `skiff load`.
fn load(a: LoadArgs) -> Result<ExitCode> {
    let store = open_store()?;
    let unpacker = unpacker::for_this_user(&store.dirs);
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
        if a.quiet {
            println!("{n}");
        } else {
            println!("Loaded image: {n}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
struct PushArgs {
    /// Local image (name, id or id prefix)
    image: String,
    /// Where to push it (default: the image's own name), as podman takes it
    destination: Option<String>,
    /// Print only the digest when done
    #[arg(short, long)]
    quiet: bool,
}

/// `skiff push`.
fn push(a: PushArgs) -> Result<ExitCode> {
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
    let pushed = runtime()?.block_on(store.push(&a.image, a.destination.as_deref(), &report))?;
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

#[derive(Args)]
struct PullArgs {
    /// Image reference (busybox, 127.0.0.1:5000/app:1, name@sha256:…)
    image: String,
    /// Print only the reference when done
    #[arg(short, long)]
    quiet: bool,
    /// Platform to pick from a multi-arch image (os/arch[/variant])
    #[arg(long)]
    platform: Option<String>,
}

#[derive(Args)]
struct ImagesArgs {
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
}

#[derive(Args)]
struct RmiArgs {
    /// Images by name, id or id prefix
    #[arg(required = true)]
    images: Vec<String>,
    /// Remove an image even when several names refer to it
    #[arg(short, long)]
    force: bool,
}

#[derive(Args)]
struct InspectArgs {
    /// Containers or images by name, id or id prefix
    #[arg(required = true)]
    names: Vec<String>,
    /// container or image (default: whichever the name finds, containers first)
    #[arg(long = "type")]
    kind: Option<String>,
    /// Go template applied to each object
    #[arg(short, long)]
    format: Option<String>,
}

#[derive(Args)]
struct PruneArgs {
    /// Do not ask for confirmation (accepted; prune only removes unused data)
    #[arg(short, long)]
    force: bool,
    /// Accepted for compatibility: every unreferenced blob is removed
    #[arg(short, long)]
    all: bool,
}

#[derive(Args)]
struct LoginArgs {
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

#[derive(Args)]
struct LogoutArgs {
    /// Registry host[:port]; Docker Hub when omitted
    registry: Option<String>,
}

/// Runs a parsed command; `Err` means a skiff error (exit 125).
pub fn dispatch(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Cmd::HelperUnpack {
            blob,
            diff_id,
            dest,
            max_size,
        } => unpacker::helper_unpack(&blob, &diff_id, &dest, max_size).map(|_| ExitCode::SUCCESS),
        Cmd::Completion { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "skiff", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::HelperMan { dir } => man_pages(&dir),
        Cmd::HelperHook => {
            let event: skiff_runtime::hooks::Event = serde_json::from_reader(std::io::stdin())
                .context("reading the lifecycle event from the monitor")?;
            skiff_runtime::hooks::deliver(crate::hooks::registered().as_ref(), &event);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::HelperRmtree { dir } => unpacker::helper_rmtree(&dir).map(|_| ExitCode::SUCCESS),
        Cmd::HelperCp {
            direction,
            id,
            path,
            name,
        } => crate::containers_cmd::cp_helper(&direction, &id, &path, &name),
        Cmd::Run(a) => crate::run::run(*a),
        Cmd::Create(a) => crate::run::create(*a),
        Cmd::Ps(a) | Cmd::Container(ContainerCmd::Ls(a)) => crate::containers_cmd::ps(a),
        Cmd::Logs(a) | Cmd::Container(ContainerCmd::Logs(a)) => crate::containers_cmd::logs(a),
        Cmd::Stop(a) | Cmd::Container(ContainerCmd::Stop(a)) => crate::containers_cmd::stop(a),
        Cmd::Kill(a) => crate::containers_cmd::kill(a),
        Cmd::Start(a) | Cmd::Container(ContainerCmd::Start(a)) => crate::containers_cmd::start(a),
        Cmd::Restart(a) => crate::containers_cmd::restart(a),
        Cmd::Wait(n) => crate::containers_cmd::wait(n.containers),
        Cmd::Rm(a) | Cmd::Container(ContainerCmd::Rm(a)) => crate::containers_cmd::rm(a),
        Cmd::Container(ContainerCmd::Prune(a)) => crate::containers_cmd::prune(a),
        Cmd::Container(ContainerCmd::Inspect(a)) => inspect(InspectArgs {
            kind: Some("container".into()),
            ..a
        }),
        Cmd::Rename {
            container,
            new_name,
        } => crate::containers_cmd::rename(&container, &new_name),
        Cmd::Top { container } => crate::containers_cmd::top(&container),
        Cmd::Exec(a) => crate::containers_cmd::exec(a),
        Cmd::Port(a) | Cmd::Container(ContainerCmd::Port(a)) => crate::containers_cmd::port(a),
        Cmd::Info(a) => crate::info::info(a),
        Cmd::Commit(a) | Cmd::Container(ContainerCmd::Commit(a)) => {
            crate::containers_cmd::commit(a)
        }
        Cmd::HelperPackUpper { dir } => crate::containers_cmd::pack_upper_helper(&dir),
        Cmd::Save(a) | Cmd::Image(ImageCmd::Save(a)) => save(a),
        Cmd::Load(a) | Cmd::Image(ImageCmd::Load(a)) => load(a),
        Cmd::Pause(n) => crate::containers_cmd::pause(&n.containers, true),
        Cmd::Unpause(n) => crate::containers_cmd::pause(&n.containers, false),
        Cmd::Stats(a) | Cmd::Container(ContainerCmd::Stats(a)) => crate::containers_cmd::stats(a),
        Cmd::Push(a) | Cmd::Image(ImageCmd::Push(a)) => push(a),
        Cmd::Cp(a) | Cmd::Container(ContainerCmd::Cp(a)) => crate::containers_cmd::cp(a),
        Cmd::Tag { source, target } | Cmd::Image(ImageCmd::Tag { source, target }) => {
            open_store()?.tag(&source, &target)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Volume(v) => crate::volumes_cmd::run(v),
        Cmd::System(s) => crate::system_cmd::run(s),
        Cmd::Version(a) => crate::info::version(a),
        Cmd::Pull(a) | Cmd::Image(ImageCmd::Pull(a)) => pull(a),
        Cmd::Images(a) | Cmd::Image(ImageCmd::Ls(a)) => images(a),
        Cmd::Rmi(a) | Cmd::Image(ImageCmd::Rm(a)) => rmi(a),
        Cmd::Inspect(a) | Cmd::Image(ImageCmd::Inspect(a)) => inspect(a),
        Cmd::Image(ImageCmd::Prune(a)) => prune(a),
        Cmd::Login(a) => login(a),
        Cmd::Unshare { command } => unpacker::unshare(command),
        Cmd::Logout(a) => logout(a),
    }
}

/// Writes `skiff.1` and one `skiff-CMD.1` (`skiff-container-ls.1`, …) per visible command.
fn man_pages(dir: &std::path::Path) -> Result<ExitCode> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    clap_mangen::generate_to(<Cli as clap::CommandFactory>::command(), dir)
        .with_context(|| format!("writing man pages into {}", dir.display()))?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn open_store() -> Result<ImageStore> {
    Ok(ImageStore::open(Dirs::from_env())?)
}

/// Pulls `reference` for this user: per-layer bars on a terminal unless `quiet`, the platform
/// asked for or the host's, the unpacker that fits the user. The async runtime is gone again when
/// this returns (the caller may fork a monitor next).
pub(crate) fn pull_with_progress(
    store: &ImageStore,
    reference: &Reference,
    platform: Option<&str>,
    quiet: bool,
) -> Result<skiff_store::pull::Pulled> {
    let platform = match platform {
        Some(p) => Platform::parse(p)?,
        None => Platform::host(),
    };
    let progress: Arc<dyn Progress> = if !quiet && std::io::stderr().is_terminal() {
        Arc::new(progress::Bars::new())
    } else {
        Arc::new(NoProgress)
    };
    let opts = PullOptions {
        platform,
        unpacker: unpacker::for_this_user(&store.dirs),
        progress,
    };
    Ok(runtime()?.block_on(store.pull(reference, &opts))?)
}

/// The async runtime for registry work (two workers: this is a CLI, not a server).
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn pull(a: PullArgs) -> Result<ExitCode> {
    let store = open_store()?;
    let hooks = crate::hooks::registered();
    let reference = Reference::parse(&crate::hooks::reference_for(
        hooks.as_ref(),
        &store,
        &a.image,
    )?)?;
    let pulled = pull_with_progress(&store, &reference, a.platform.as_deref(), a.quiet)?;
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
    Ok(ExitCode::SUCCESS)
}

fn images(a: ImagesArgs) -> Result<ExitCode> {
    let store = open_store()?;
    let list = store.list()?;
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
            let f = crate::format::Format::parse(template, &headers)?;
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
    crate::format::print_aligned(&rows.iter().map(|r| r.join("\t")).collect::<Vec<_>>());
    Ok(ExitCode::SUCCESS)
}

/// What containers (in any state) hold on to in the image store.
pub(crate) struct InUse {
    /// Layer directories they stack on.
    pub(crate) layers: Vec<PathBuf>,
    /// (image id, container name) pairs.
    pub(crate) users: Vec<(String, String)>,
}

pub(crate) fn containers_in_use(dirs: &Dirs) -> Result<InUse> {
    let c = skiff_runtime::Containers::open(dirs)?;
    let mut u = InUse {
        layers: Vec::new(),
        users: Vec::new(),
    };
    for (cfg, _) in c.list()? {
        u.layers.extend(cfg.layers.iter().cloned());
        u.users.push((cfg.image_id.clone(), cfg.name.clone()));
    }
    Ok(u)
}

fn rmi(a: RmiArgs) -> Result<ExitCode> {
    let store = open_store()?;
    let unpacker = unpacker::for_this_user(&store.dirs);
    // What containers use is read under the collector's lock: a `run` between its image lookup
    // and its record holds a lease, so it is either seen here or sees the image gone.
    let gc = store.lock_for_gc()?;
    let InUse {
        layers: in_use,
        users,
    } = containers_in_use(&store.dirs)?;
    let mut failed = None;
    for name in &a.images {
        // An image a container uses stays unless forced, as in Docker; even then its layers stay
        // for the container.
        let using: Vec<&str> = store
            .find(name)
            .ok()
            .and_then(|v| v.first().map(|i| i.id.to_string()))
            .map(|id| {
                users
                    .iter()
                    .filter(|(img, _)| *img == id)
                    .map(|(_, n)| n.as_str())
                    .collect()
            })
            .unwrap_or_default();
        if !using.is_empty() && !a.force {
            eprintln!("Error: image {name} is in use by container {}: remove the container first (skiff rm {}) or untag with -f", using.join(", "), using[0]);
            failed = Some(ExitCode::from(125));
            continue;
        }
        match store.remove(&gc, name, a.force, &*unpacker, &in_use) {
            Ok(lines) => lines.iter().for_each(|l| println!("{l}")),
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

fn inspect(a: InspectArgs) -> Result<ExitCode> {
    let kind = a.kind.as_deref().unwrap_or("");
    if !matches!(kind, "" | "container" | "image") {
        bail!("invalid --type {kind:?}: use container or image");
    }
    let dirs = Dirs::from_env();
    let containers = skiff_runtime::Containers::open(&dirs)?;
    let mut out = Vec::new();
    let mut store: Option<ImageStore> = None;
    for n in &a.names {
        if kind != "image" {
            match containers.resolve(n) {
                Ok(id) => {
                    let v = containers.view(&id)?;
                    out.push(crate::containers_cmd::inspect_container(&containers, &v));
                    continue;
                }
                Err(e) if kind == "container" => return Err(e.into()),
                Err(_) => {}
            }
        }
        if store.is_none() {
            store = Some(open_store()?);
        }
        let s = store.as_ref().context("store")?;
        let img = s.find(n).map_err(|e| {
            if kind.is_empty() {
                anyhow::anyhow!(
                    "no such container or image: {n} (see skiff ps -a and skiff images)"
                )
            } else {
                e.into()
            }
        })?;
        if let Some(img) = img.into_iter().next() {
            out.push(s.inspect(&img)?);
        }
    }
    match a.format {
        Some(f) => {
            let fmt = crate::format::Format::parse(&f, &std::collections::HashMap::new())?;
            for o in &out {
                println!("{}", fmt.render(o)?);
            }
        }
        None => println!("{}", serde_json::to_string_pretty(&out)?),
    }
    Ok(ExitCode::SUCCESS)
}

fn prune(_a: PruneArgs) -> Result<ExitCode> {
    let store = open_store()?;
    let unpacker = unpacker::for_this_user(&store.dirs);
    let gc = store.lock_for_gc()?;
    let in_use = containers_in_use(&store.dirs)?.layers;
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

fn login(a: LoginArgs) -> Result<ExitCode> {
    let registry = registry_arg(a.registry)?;
    let username = match a.username {
        Some(u) => u,
        None if a.password_stdin => bail!("--password-stdin needs -u USER"),
        None => crate::prompt::ask("Username: ", false)?,
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
        (None, false) => crate::prompt::ask("Password: ", true)?,
    };
    let creds = Credentials { username, password };
    let store = open_store()?;
    runtime()?.block_on(Remote::check_login(
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

fn logout(a: LogoutArgs) -> Result<ExitCode> {
    let registry = registry_arg(a.registry)?;
    if auth::remove(&registry)? {
        println!("Removed login credentials for {registry}");
        Ok(ExitCode::SUCCESS)
    } else {
        bail!("not logged in to {registry}")
    }
}
