//! `skiff run` and `skiff create`: resolve (pulling when needed) the image, build the container,
//! then have the runtime's monitor run it (attached: in place; `-d`: in its own session, the id
//! printed).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::{ArgAction, Args};
use skiff_runtime::hooks::Hooks;
use skiff_runtime::spec::{self, ImageInfo, RunOptions};
use skiff_runtime::userns::identity::Identity;
use skiff_runtime::Containers;
use skiff_store::platform::{self, Platform};
use skiff_store::{Dirs, ImageStore, Reference};

use crate::ctx::{self, hooks};
use crate::output::usage;

/// `run` flags, as Docker and podman spell them.
#[derive(Args)]
pub struct RunArgs {
    /// Run in the background and print the container id
    #[arg(short, long)]
    detach: bool,
    /// Keep stdin open
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a pseudo-terminal
    #[arg(short, long)]
    tty: bool,
    /// Remove the container when it exits
    #[arg(long)]
    rm: bool,
    /// Container name (unique per user)
    #[arg(long)]
    name: Option<String>,
    /// Set environment variables (KEY=VALUE, or KEY to pass skiff's own)
    #[arg(short, long, action = ArgAction::Append)]
    env: Vec<String>,
    /// Read environment variables from a file
    #[arg(long, action = ArgAction::Append)]
    env_file: Vec<PathBuf>,
    /// Working directory inside the container
    #[arg(short, long)]
    workdir: Option<String>,
    /// user[:group] (names from the container's /etc/passwd and /etc/group, or numeric ids)
    #[arg(short, long)]
    user: Option<String>,
    /// Container host name
    #[arg(long)]
    hostname: Option<String>,
    /// Set metadata (KEY=VALUE)
    #[arg(short, long, action = ArgAction::Append)]
    label: Vec<String>,
    /// Bind mount or named volume: SRC:DST[:ro], NAME:DST[:ro], or DST
    #[arg(short, long, action = ArgAction::Append)]
    volume: Vec<String>,
    /// Mount a tmpfs at this path
    #[arg(long, action = ArgAction::Append)]
    tmpfs: Vec<String>,
    /// Network: a network's name (skiff network ls; by default skiff, which bridge also
    /// names), slirp4netns, host or none
    #[arg(long, alias = "net")]
    network: Option<String>,
    /// Address on the network (--network NAME)
    #[arg(long)]
    ip: Option<String>,
    /// Another name the container answers to on its network
    #[arg(long, alias = "net-alias", action = ArgAction::Append)]
    network_alias: Vec<String>,
    /// Publish a container port on the host: [IP:][HOST_PORT:]CONTAINER_PORT[/tcp|udp] (no
    /// host port: a free one; ranges: 8000-8001:80-81)
    #[arg(short, long, action = ArgAction::Append)]
    publish: Vec<String>,
    /// Publish every exposed port (the image's EXPOSE and --expose) on a free host port
    #[arg(short = 'P', long)]
    publish_all: bool,
    /// Declare a container port (or a range) for -P: PORT[/tcp|udp]
    #[arg(long, action = ArgAction::Append)]
    expose: Vec<String>,
    /// Mount: type=bind|volume|tmpfs,source=…,target=…[,readonly]
    #[arg(long, action = ArgAction::Append)]
    mount: Vec<String>,
    /// Resource limit for the process: NAME=SOFT[:HARD] (nofile=1024:2048)
    #[arg(long, action = ArgAction::Append)]
    ulimit: Vec<String>,
    /// Extra group for the process (name or gid)
    #[arg(long, action = ArgAction::Append)]
    group_add: Vec<String>,
    /// Size of /dev/shm (64m by default)
    #[arg(long)]
    shm_size: Option<String>,
    /// Signal that stops the container (instead of the image's or SIGTERM)
    #[arg(long)]
    stop_signal: Option<String>,
    /// Add a line to /etc/hosts: NAME:IP
    #[arg(long, action = ArgAction::Append)]
    add_host: Vec<String>,
    /// Name server for /etc/resolv.conf (instead of the host's)
    #[arg(long, action = ArgAction::Append)]
    dns: Vec<String>,
    /// Memory limit (512m, 1g), where cgroups allow it
    #[arg(short, long)]
    memory: Option<String>,
    /// Most processes the container may have (-1: no limit)
    #[arg(long, allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    /// CPUs the container may use (1.5)
    #[arg(long)]
    cpus: Option<String>,
    /// Pull the image: missing (default), always or never
    #[arg(long, default_value = "missing")]
    pull: String,
    /// Platform to pull (os/arch[/variant])
    #[arg(long)]
    platform: Option<String>,
    /// Override the image's entrypoint ("" clears it)
    #[arg(long)]
    entrypoint: Option<String>,
    /// Mount the root filesystem read-only
    #[arg(long)]
    read_only: bool,
    /// Run a tiny init as PID 1 that forwards signals and reaps zombies
    #[arg(long)]
    init: bool,
    /// Add Linux capabilities
    #[arg(long, action = ArgAction::Append)]
    cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long, action = ArgAction::Append)]
    cap_drop: Vec<String>,
    /// Security options (seccomp=unconfined, no-new-privileges[=true|false]; off by default, as Docker)
    #[arg(long, action = ArgAction::Append)]
    security_opt: Vec<String>,
    /// Lift the default confinement (within the user namespace)
    #[arg(long)]
    privileged: bool,
    /// Forward signals received by skiff to the container
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    sig_proxy: bool,
    /// Restart policy: no, on-failure[:N], always, unless-stopped
    #[arg(long)]
    restart: Option<String>,
    /// Seconds `stop` waits before SIGKILL (default 10)
    #[arg(long)]
    stop_timeout: Option<u64>,
    /// Command to run to check health (through /bin/sh -c in the container)
    #[arg(long)]
    health_cmd: Option<String>,
    /// Time between health checks (ms|s|m|h) (default 30s)
    #[arg(long)]
    health_interval: Option<String>,
    /// Maximum time a health check may run (ms|s|m|h) (default 30s)
    #[arg(long)]
    health_timeout: Option<String>,
    /// Consecutive failures needed to report unhealthy (default 3)
    #[arg(long, allow_negative_numbers = true)]
    health_retries: Option<i64>,
    /// Start period: failures in it do not count (ms|s|m|h) (default 0s)
    #[arg(long)]
    health_start_period: Option<String>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long)]
    no_healthcheck: bool,
    /// Image to run
    image: String,
    /// Command and arguments (replace the image's Cmd)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// Finds the image locally or pulls it, per `--pull`. A local image of another platform than
/// `--platform` asks for is pulled again for that platform (never used silently); without
/// `--platform`, an image that does not fit this machine is used with a warning, as Docker does.
fn resolve_image(
    store: &ImageStore,
    a: &RunArgs,
    hooks: &dyn Hooks,
) -> Result<skiff_store::LocalImage> {
    if !matches!(a.pull.as_str(), "missing" | "always" | "never") {
        bail!("invalid --pull {:?}: use missing, always or never", a.pull);
    }
    let wanted = match a.platform.as_deref() {
        Some(p) => Platform::parse(p)?,
        None => Platform::host(),
    };
    let image = hooks::reference_for(hooks, store, &a.image)?;
    let local = store.find(&image).ok().and_then(|v| v.into_iter().next());
    let fits = |img: &skiff_store::LocalImage| -> Result<(bool, String)> {
        let config = store.image_config(img)?;
        Ok((wanted.matches(&config), platform::describe(&config)))
    };
    let local = match local {
        Some(img) => {
            let (ok, theirs) = fits(&img)?;
            match (ok, a.platform.is_some(), a.pull.as_str()) {
                (true, _, "missing" | "never") | (false, false, "missing" | "never") => Some(img),
                (false, true, "never") => bail!(
                    "{image}: the local image is {theirs}, not the {wanted} asked for, and --pull=never: pull it with --platform {wanted}"
                ),
                _ => None,
            }
        }
        None if a.pull == "never" => {
            bail!("{image}: image not known locally and --pull=never")
        }
        None => None,
    };
    let img = match local {
        Some(img) => img,
        None => {
            let reference = Reference::parse(&image)?;
            let pulled = ctx::pull_with_progress(store, &reference, a.platform.as_deref(), false)?;
            store.find(&pulled.reference.to_string())?.remove(0)
        }
    };
    let (ok, theirs) = fits(&img)?;
    if !ok {
        let whose = if a.platform.is_some() {
            "the platform asked for"
        } else {
            "this machine"
        };
        eprintln!(
            "WARNING: image {} is {theirs}, which does not match {whose} ({wanted}): it may fail with \"exec format error\"; pull the right one with --platform {wanted}",
            img.reference
        );
    }
    Ok(img)
}

/// Resolves the image and writes the container record (nothing runs yet).
fn create_container(a: &RunArgs) -> Result<skiff_runtime::ContainerConfig> {
    // First, so that the plugins load and make their instances while the rest opens.
    let hooks = hooks::registered_for(hooks::CREATE_HOOKS)?;
    let hooks = hooks.as_ref();
    let dirs = Dirs::from_env();
    let store = ImageStore::open(dirs.clone())?;
    let containers = Containers::open(&dirs)?;
    // Held until the record names the layers: no prune or rmi can delete them in between.
    let _lease = store.lease()?;
    let img = resolve_image(&store, a, hooks)?;
    let config = store.image_config(&img)?;
    let layers = store.layer_dirs(&img)?;
    let info = ImageInfo {
        reference: img.reference.clone(),
        id: img.id.to_string(),
        config: &config,
        layers,
    };
    let opts = RunOptions {
        name: a.name.clone(),
        command: a.command.clone(),
        entrypoint: a.entrypoint.clone(),
        env: a.env.clone(),
        env_files: a.env_file.clone(),
        workdir: a.workdir.clone(),
        user: a.user.clone(),
        hostname: a.hostname.clone(),
        labels: a.label.clone(),
        volumes: a.volume.clone(),
        tmpfs: a.tmpfs.clone(),
        network: a.network.clone(),
        publish: a.publish.clone(),
        publish_all: a.publish_all,
        expose: a.expose.clone(),
        ip: a.ip.clone(),
        network_alias: a.network_alias.clone(),
        mount: a.mount.clone(),
        ulimit: a.ulimit.clone(),
        group_add: a.group_add.clone(),
        shm_size: a.shm_size.clone(),
        stop_signal: a.stop_signal.clone(),
        add_host: a.add_host.clone(),
        dns: a.dns.clone(),
        memory: a.memory.clone(),
        pids_limit: a.pids_limit,
        cpus: a.cpus.clone(),
        cap_add: a.cap_add.clone(),
        cap_drop: a.cap_drop.clone(),
        security_opt: a.security_opt.clone(),
        privileged: a.privileged,
        read_only: a.read_only,
        init: a.init,
        auto_remove: a.rm,
        tty: a.tty,
        interactive: a.interactive,
        restart: a.restart.clone(),
        stop_timeout: a.stop_timeout,
        health: skiff_runtime::container::health::HealthFlags {
            cmd: a.health_cmd.clone(),
            interval: a.health_interval.clone(),
            timeout: a.health_timeout.clone(),
            start_period: a.health_start_period.clone(),
            retries: a.health_retries,
            none: a.no_healthcheck,
        },
    };
    let identity = Identity::current();
    let mut spec = spec::build(&info, &opts, &containers, &identity)?;
    hooks.before_create(a.name.as_deref(), &mut spec)?;
    spec.validate(&identity)?;
    hooks.finished();
    let cfg = containers.create(a.name.as_deref(), |id, name| spec.into_config(id, name))?;
    containers.join_network(&cfg, &ctx::remover(&dirs))?;
    Ok(cfg)
}

/// `skiff run`.
pub fn run(a: RunArgs) -> Result<ExitCode> {
    usage::refuse_tty_without_terminal(a.interactive, a.tty, a.detach)?;
    // A broken config.toml is reported before a container record exists.
    skiff_runtime::container::logs::max_size_from_config(&Dirs::from_env().config)?;
    let cfg = create_container(&a)?;
    let started = ctx::start_monitor(&cfg.id, !a.detach, a.sig_proxy);
    if started.is_err() && a.rm {
        // No monitor ran to honour --rm (it is missing, or died before reporting).
        remove_unstarted(&cfg.id);
    }
    let code = started?;
    if a.detach && code == ExitCode::SUCCESS {
        println!("{}", cfg.id);
    }
    Ok(code)
}

/// Removes a `--rm` container whose monitor never ran; it stays, with a warning, if that fails.
fn remove_unstarted(id: &str) {
    let dirs = Dirs::from_env();
    let res = skiff_runtime::Containers::open(&dirs).and_then(|c| {
        let remove = ctx::remover(&dirs);
        c.remove(id, false, &remove)
    });
    if let Err(e) = res {
        eprintln!(
            "WARNING: --rm: could not remove container {}: {e}",
            &id[..12.min(id.len())]
        );
    }
}

/// `skiff create`: like run, without starting.
pub fn create(a: RunArgs) -> Result<ExitCode> {
    let cfg = create_container(&a)?;
    println!("{}", cfg.id);
    Ok(ExitCode::SUCCESS)
}
