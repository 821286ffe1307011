//! The `skiff` command line: the clap tree and the dispatch to one file per command family
//! (`cmd/`), which parse flags into runtime and store types and print through `output/`. Failures
//! map to Docker's exit codes (125 for skiff's own errors, usage errors included).

mod args;
mod cmd;
mod ctx;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, CommandFactory, Parser, Subcommand};

fn main() -> ExitCode {
    // Not `env::args`: it panics on an argument that is not UTF-8.
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if let Some(linger_ms) = hook_helper_args(&args) {
        return report(cmd::helpers::hook(linger_ms));
    }
    ctx::hooks::start_early(&args);
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return output::usage::report(e, Cli::command()),
    };
    // The hidden helpers run inside a user namespace for a command that did this already.
    if !std::env::args().nth(1).is_some_and(|a| a.starts_with("__")) {
        match skiff_store::Dirs::from_env().make_private() {
            Ok(notes) => notes.iter().for_each(|n| eprintln!("{n}")),
            Err(e) => {
                eprintln!("Error: {e}");
                return ExitCode::from(125);
            }
        }
    }
    if let Some(level) = &cli.log_level {
        // Read by the plugin host, and inherited by the monitor's `skiff __hook` helper. Set
        // while the process has one thread: `start_early` starts no plugin workers for a
        // command line that names a log level.
        std::env::set_var("SKIFF_LOG_LEVEL", level);
    }
    report(dispatch(cli))
}

/// A command's exit code, or 125 after its error in one line.
fn report(r: Result<ExitCode>) -> ExitCode {
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {}", output::one_line(&e));
            ExitCode::from(125)
        }
    }
}

/// The `--linger-ms` of `skiff __hook`, when that is exactly how this process was started (as
/// the monitor starts it). The helper starts with every container a plugin observes, so it
/// skips building clap's tree of every command: 1.2 of the 3.2 ms of a `skiff --version`.
/// Anything else goes through clap, `__hook` spelled otherwise included.
fn hook_helper_args(args: &[std::ffi::OsString]) -> Option<Option<u64>> {
    match args {
        [cmd] if cmd == "__hook" => Some(None),
        [cmd, flag, ms] if cmd == "__hook" && flag == "--linger-ms" => {
            ms.to_str()?.parse().ok().map(Some)
        }
        _ => None,
    }
}

/// Daemonless, rootless container runner.
#[derive(Parser)]
#[command(name = "skiff", version, about)]
struct Cli {
    /// Show debug lines (plugins' debug logs among them): debug, info, warn or error
    #[arg(long = "log-level", global = true, value_parser = ["debug", "info", "warn", "error"])]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Pull an image from a registry into your store
    #[command(after_help = PULL_EXAMPLES)]
    Pull(cmd::image::PullArgs),
    /// List local images
    #[command(after_help = IMAGES_EXAMPLES)]
    Images(cmd::image::ImagesArgs),
    /// Give an image another name
    Tag(cmd::image::TagArgs),
    /// Push an image to a registry
    Push(cmd::image::PushArgs),
    /// Write images to a tar archive (OCI layout with Docker's manifest.json)
    Save(cmd::image::SaveArgs),
    /// Read images from a tar archive (skiff/docker/podman save, OCI or docker archive)
    Load(cmd::image::LoadArgs),
    /// Show the history of an image
    History(cmd::history::HistoryArgs),
    /// Make a one-layer image from a tarball (plain or gzip; a file or `-` for stdin)
    Import(cmd::import::ImportArgs),
    /// Remove one or more images
    Rmi(cmd::image::RmiArgs),
    /// Show low-level information on containers and images as JSON
    Inspect(cmd::inspect::InspectArgs),
    /// Manage images
    #[command(subcommand)]
    Image(ImageCmd),
    /// Log in to a registry
    Login(cmd::image::LoginArgs),
    /// Log out from a registry
    Logout(cmd::image::LogoutArgs),
    /// Run a command in a new container
    #[command(after_help = RUN_EXAMPLES)]
    Run(Box<cmd::run::RunArgs>),
    /// Create a container without starting it
    Create(Box<cmd::run::RunArgs>),
    /// List containers
    #[command(after_help = PS_EXAMPLES)]
    Ps(cmd::ps::PsArgs),
    /// Show a container's output
    #[command(after_help = LOGS_EXAMPLES)]
    Logs(cmd::logs::LogsArgs),
    /// Stop containers (stop signal, then SIGKILL)
    Stop(cmd::lifecycle::StopArgs),
    /// Send a signal to containers
    Kill(cmd::lifecycle::KillArgs),
    /// Start stopped or created containers
    Start(cmd::lifecycle::StartArgs),
    /// Restart containers
    Restart(cmd::lifecycle::StopArgs),
    /// Wait for containers to stop and print their exit codes
    Wait(Names),
    /// Remove containers
    Rm(cmd::lifecycle::RmArgs),
    /// Rename a container
    Rename(RenameArgs),
    /// Show a container's processes as it sees them (its pids and user names)
    Top(TopArgs),
    /// Attach this terminal to a running container's output (and stdin, if it has one)
    Attach(cmd::attach::AttachArgs),
    /// Run a command in a running container
    #[command(after_help = EXEC_EXAMPLES)]
    Exec(cmd::exec::ExecArgs),
    /// List a container's published ports
    Port(cmd::inspect::PortArgs),
    /// Copy files between a container and the host
    Cp(cmd::cp::CpArgs),
    /// Live CPU, memory, network and I/O of running containers
    Stats(cmd::stats::StatsArgs),
    /// Make an image from a container's changes
    Commit(cmd::commit::CommitArgs),
    /// Write a container's filesystem to a tar archive
    Export(cmd::export::ExportArgs),
    /// Show a container's changes against its image (A added, C changed, D deleted)
    Diff(cmd::diff::DiffArgs),
    /// Change containers' restart policy and limits
    Update(cmd::update::UpdateArgs),
    /// Stop every process of containers until unpause
    Pause(Names),
    /// Let paused containers go on
    Unpause(Names),
    /// Show what skiff finds on this machine for you: id ranges, helpers, storage
    Info(args::InfoArgs),
    /// Show skiff's version
    Version(args::InfoArgs),
    /// Show what happens to your containers and images, live (or between --since and --until)
    #[command(after_help = EVENTS_EXAMPLES)]
    Events(args::EventsArgs),
    /// Manage containers
    #[command(subcommand)]
    Container(ContainerCmd),
    /// Manage volumes
    #[command(subcommand)]
    Volume(cmd::volume::VolumeCmd),
    /// Manage networks
    #[command(subcommand)]
    Network(cmd::network::NetworkCmd),
    /// Manage WebAssembly plugins
    #[command(subcommand)]
    Plugin(cmd::plugin::PluginCmd),
    /// Run a container's healthcheck (as podman's `healthcheck run`)
    #[command(subcommand)]
    Healthcheck(HealthcheckCmd),
    /// Disk usage and pruning of everything
    #[command(subcommand)]
    System(cmd::system::SystemCmd),
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
    HelperHook {
        /// After the first event, wait this long for a second one (the monitor's after-exit).
        #[arg(long = "linger-ms")]
        linger_ms: Option<u64>,
    },
    #[command(name = "__health", hide = true)]
    HelperHealth { id: String },
    #[command(name = "__health-check", hide = true)]
    HelperHealthCheck { id: String },
    /// Man pages for skiff and each command into DIR (`cargo xtask man DIR` runs this).
    #[command(name = "__man", hide = true)]
    HelperMan { dir: PathBuf },
    #[command(name = "__rmtree", hide = true)]
    HelperRmtree { dir: PathBuf },
    #[command(name = "__pack-upper", hide = true)]
    HelperPackUpper { dir: PathBuf },
    #[command(name = "__diff", hide = true)]
    HelperDiff { id: String },
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

/// `rename` arguments.
#[derive(Args)]
struct RenameArgs {
    /// Current name or id
    container: String,
    /// New name
    new_name: String,
}

/// `top` arguments.
#[derive(Args)]
struct TopArgs {
    /// Container
    container: String,
    /// ps options: aux, -ef (the default), or -eo FIELD,... (pid, ppid, user, uid, comm,
    /// args, etime, time, stat, tty, c, stime, vsz, rss, pcpu, pmem)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    ps_options: Vec<String>,
}

/// `skiff events --help` examples.
const EVENTS_EXAMPLES: &str = "Examples:
  skiff events
  skiff events --since 10m --until 0s
  skiff events --filter type=container --filter event=die
  skiff events --filter container=web --format '{{json .}}'";

/// One or more containers, for the commands that take nothing else.
#[derive(Args)]
struct Names {
    /// Containers
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Subcommand)]
enum ContainerCmd {
    /// Run a command in a new container
    Run(Box<cmd::run::RunArgs>),
    /// Create a container without starting it
    Create(Box<cmd::run::RunArgs>),
    /// Run a command in a running container
    Exec(cmd::exec::ExecArgs),
    /// Send a signal to containers
    Kill(cmd::lifecycle::KillArgs),
    /// Restart containers
    Restart(cmd::lifecycle::StopArgs),
    /// Wait for containers to stop and print their exit codes
    Wait(Names),
    /// Show a container's processes
    Top(TopArgs),
    /// Rename a container
    Rename(RenameArgs),
    /// Stop every process of containers until unpause
    Pause(Names),
    /// Let paused containers go on
    Unpause(Names),
    /// Attach this terminal to a running container
    Attach(cmd::attach::AttachArgs),
    /// List containers
    #[command(alias = "list", alias = "ps")]
    Ls(cmd::ps::PsArgs),
    /// Remove stopped containers
    Prune(cmd::lifecycle::PruneArgs),
    /// Remove containers
    Rm(cmd::lifecycle::RmArgs),
    /// Inspect containers
    Inspect(cmd::inspect::InspectArgs),
    /// Stop containers
    Stop(cmd::lifecycle::StopArgs),
    /// Start containers
    Start(cmd::lifecycle::StartArgs),
    /// Show a container's output
    Logs(cmd::logs::LogsArgs),
    /// List a container's published ports
    Port(cmd::inspect::PortArgs),
    /// Copy files between a container and the host
    Cp(cmd::cp::CpArgs),
    /// Live CPU, memory, network and I/O of running containers
    Stats(cmd::stats::StatsArgs),
    /// Make an image from a container's changes
    Commit(cmd::commit::CommitArgs),
    /// Write a container's filesystem to a tar archive
    Export(cmd::export::ExportArgs),
    /// Show a container's changes against its image
    Diff(cmd::diff::DiffArgs),
    /// Change containers' restart policy and limits
    Update(cmd::update::UpdateArgs),
}

#[derive(Subcommand)]
enum ImageCmd {
    /// Pull an image
    Pull(cmd::image::PullArgs),
    /// List images
    #[command(alias = "list")]
    Ls(cmd::image::ImagesArgs),
    /// Remove images
    #[command(alias = "remove")]
    Rm(cmd::image::RmiArgs),
    /// Inspect images
    Inspect(cmd::inspect::InspectArgs),
    /// Remove blobs and unpacked layers no image uses
    Prune(cmd::image::PruneArgs),
    /// Give an image another name
    Tag(cmd::image::TagArgs),
    /// Show the history of an image
    History(cmd::history::HistoryArgs),
    /// Push an image to a registry
    Push(cmd::image::PushArgs),
    /// Write images to a tar archive
    Save(cmd::image::SaveArgs),
    /// Read images from a tar archive
    Load(cmd::image::LoadArgs),
    /// Make a one-layer image from a tarball
    Import(cmd::import::ImportArgs),
    /// Take names away from an image that keeps another (podman's)
    Untag(cmd::image::UntagArgs),
}

/// `skiff healthcheck …`.
#[derive(Subcommand)]
enum HealthcheckCmd {
    /// Run the container's healthcheck now: prints healthy or unhealthy, exits 0 or 1
    Run {
        /// Container
        container: String,
    },
}

/// Runs a parsed command; `Err` means a skiff error (exit 125).
fn dispatch(cli: Cli) -> Result<ExitCode> {
    use cmd::{
        attach, commit, cp, diff, events, exec, export, helpers, history, image, import, info,
        inspect, lifecycle, logs, network, plugin, ps, run, stats, system, update, volume,
    };
    match cli.command {
        Cmd::HelperUnpack {
            blob,
            diff_id,
            dest,
            max_size,
        } => helpers::helper_unpack(&blob, &diff_id, &dest, max_size).map(|_| ExitCode::SUCCESS),
        Cmd::Completion { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "skiff", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::HelperMan { dir } => helpers::man_pages(&dir, Cli::command()),
        Cmd::HelperHook { linger_ms } => helpers::hook(linger_ms),
        Cmd::HelperHealth { id } => helpers::health_loop(&id),
        Cmd::HelperHealthCheck { id } => helpers::health_check(&id),
        Cmd::Healthcheck(HealthcheckCmd::Run { container }) => cmd::health::run(&container),
        Cmd::HelperRmtree { dir } => helpers::helper_rmtree(&dir).map(|_| ExitCode::SUCCESS),
        Cmd::HelperCp {
            direction,
            id,
            path,
            name,
        } => helpers::cp_helper(&direction, &id, &path, &name),
        Cmd::Run(a) | Cmd::Container(ContainerCmd::Run(a)) => run::run(*a),
        Cmd::Create(a) | Cmd::Container(ContainerCmd::Create(a)) => run::create(*a),
        Cmd::Ps(a) | Cmd::Container(ContainerCmd::Ls(a)) => ps::ps(a),
        Cmd::Logs(a) | Cmd::Container(ContainerCmd::Logs(a)) => logs::logs(a),
        Cmd::Stop(a) | Cmd::Container(ContainerCmd::Stop(a)) => lifecycle::stop(a),
        Cmd::Kill(a) | Cmd::Container(ContainerCmd::Kill(a)) => lifecycle::kill(a),
        Cmd::Start(a) | Cmd::Container(ContainerCmd::Start(a)) => lifecycle::start(a),
        Cmd::Restart(a) | Cmd::Container(ContainerCmd::Restart(a)) => lifecycle::restart(a),
        Cmd::Wait(n) | Cmd::Container(ContainerCmd::Wait(n)) => lifecycle::wait(n.containers),
        Cmd::Rm(a) | Cmd::Container(ContainerCmd::Rm(a)) => lifecycle::rm(a),
        Cmd::Container(ContainerCmd::Prune(a)) => lifecycle::prune(a),
        Cmd::Container(ContainerCmd::Inspect(a)) => inspect::inspect(a.of_kind("container")),
        Cmd::Rename(a) | Cmd::Container(ContainerCmd::Rename(a)) => {
            lifecycle::rename(&a.container, &a.new_name)
        }
        Cmd::Top(a) | Cmd::Container(ContainerCmd::Top(a)) => {
            inspect::top(&a.container, &a.ps_options)
        }
        Cmd::Exec(a) | Cmd::Container(ContainerCmd::Exec(a)) => exec::exec(a),
        Cmd::Attach(a) | Cmd::Container(ContainerCmd::Attach(a)) => attach::attach(a),
        Cmd::Port(a) | Cmd::Container(ContainerCmd::Port(a)) => inspect::port(a),
        Cmd::Info(a) | Cmd::System(system::SystemCmd::Info(a)) => info::info(a),
        Cmd::Commit(a) | Cmd::Container(ContainerCmd::Commit(a)) => commit::commit(a),
        Cmd::Export(a) | Cmd::Container(ContainerCmd::Export(a)) => export::export(a),
        Cmd::Diff(a) | Cmd::Container(ContainerCmd::Diff(a)) => diff::diff(a),
        Cmd::Update(a) | Cmd::Container(ContainerCmd::Update(a)) => update::update(a),
        Cmd::HelperDiff { id } => ctx::containers().and_then(|(_, c)| diff::print_changes(&c, &id)),
        Cmd::HelperPackUpper { dir } => helpers::pack_upper_helper(&dir),
        Cmd::Save(a) | Cmd::Image(ImageCmd::Save(a)) => image::save(a),
        Cmd::Load(a) | Cmd::Image(ImageCmd::Load(a)) => image::load(a),
        Cmd::Pause(n) | Cmd::Container(ContainerCmd::Pause(n)) => {
            lifecycle::pause(&n.containers, true)
        }
        Cmd::Unpause(n) | Cmd::Container(ContainerCmd::Unpause(n)) => {
            lifecycle::pause(&n.containers, false)
        }
        Cmd::Stats(a) | Cmd::Container(ContainerCmd::Stats(a)) => stats::stats(a),
        Cmd::Push(a) | Cmd::Image(ImageCmd::Push(a)) => image::push(a),
        Cmd::Cp(a) | Cmd::Container(ContainerCmd::Cp(a)) => cp::cp(a),
        Cmd::Tag(a) | Cmd::Image(ImageCmd::Tag(a)) => image::tag(&a.source, &a.target),
        Cmd::Volume(v) => volume::run(v),
        Cmd::Network(n) => network::run(n),
        Cmd::Plugin(p) => plugin::run(p),
        Cmd::Events(a) | Cmd::System(system::SystemCmd::Events(a)) => events::events(a),
        Cmd::System(s) => system::run(s),
        Cmd::Version(a) => info::version(a),
        Cmd::Pull(a) | Cmd::Image(ImageCmd::Pull(a)) => image::pull(a),
        Cmd::Images(a) | Cmd::Image(ImageCmd::Ls(a)) => image::images(a),
        Cmd::Rmi(a) | Cmd::Image(ImageCmd::Rm(a)) => image::rmi(a),
        Cmd::Inspect(a) | Cmd::Image(ImageCmd::Inspect(a)) => inspect::inspect(a),
        Cmd::Image(ImageCmd::Prune(a)) => image::prune(a),
        Cmd::Image(ImageCmd::Untag(a)) => image::untag(a),
        Cmd::History(a) | Cmd::Image(ImageCmd::History(a)) => history::history(a),
        Cmd::Import(a) | Cmd::Image(ImageCmd::Import(a)) => import::import(a),
        Cmd::Login(a) => image::login(a),
        Cmd::Unshare { command } => helpers::unshare(command),
        Cmd::Logout(a) => image::logout(a),
    }
}
