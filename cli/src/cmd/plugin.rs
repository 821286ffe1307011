//! `skiff plugin install|ls|inspect|rm|enable|disable|test|push|wit`: WebAssembly plugins from
//! files or registries, compiled once at install, with the grants the user gave recorded in
//! config.toml. `plugin test` runs one hook on a sample payload, outside any container.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use skiff_plugins::bindings::wit;
use skiff_plugins::grants::{Grant, Grants};
use skiff_plugins::installed::{check_name, Installed, DEFAULT_PRIORITY};
use skiff_plugins::settings::PluginConfig;
use skiff_plugins::{Hook, Loaded, PluginError};
use skiff_store::{Dirs, ImageStore, Reference};

use crate::ctx::{self, plugin_spec, plugins};
use crate::output::{human, table};

/// `skiff plugin …`.
#[derive(Subcommand)]
pub enum PluginCmd {
    /// Install a plugin from a .wasm file or a registry (REGISTRY/REPO[:TAG|@DIGEST])
    Install(InstallArgs),
    /// List installed plugins in the order they run
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Show installed plugins as JSON
    Inspect {
        /// Plugins
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove plugins
    #[command(alias = "remove")]
    Rm {
        /// Plugins
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Call an installed plugin's hooks again
    Enable {
        /// Plugin
        name: String,
    },
    /// Keep a plugin installed but stop calling it
    Disable {
        /// Plugin
        name: String,
    },
    /// Run one hook of a plugin on a sample input, outside any container
    Test(TestArgs),
    /// Push a plugin file to a registry as a Wasm OCI artifact
    Push {
        /// The .wasm component
        path: PathBuf,
        /// REGISTRY/REPO:TAG
        reference: String,
    },
    /// Print the WIT world plugins are built against
    Wit {
        /// World version (default: the newest)
        version: Option<String>,
    },
}

/// `plugin install` flags.
#[derive(Args)]
pub struct InstallArgs {
    /// A .wasm file, or REGISTRY/REPO[:TAG|@DIGEST]
    source: String,
    /// Name (default: the file's or repository's name)
    #[arg(long)]
    name: Option<String>,
    /// Lower runs first; ties run by name
    #[arg(long, default_value_t = DEFAULT_PRIORITY, allow_negative_numbers = true)]
    priority: i32,
    /// Grant: dir-ro=PATH, dir-rw=PATH, env=NAME, bind-mounts, capabilities, privileged,
    /// host-network, user (repeatable)
    #[arg(long = "grant")]
    grants: Vec<String>,
    /// Grant what the plugin's manifest asks for without asking
    #[arg(short, long)]
    yes: bool,
}

/// `plugin ls` flags.
#[derive(Args)]
pub struct LsArgs {
    /// Names only
    #[arg(short, long)]
    quiet: bool,
}

/// `plugin test` flags.
#[derive(Args)]
pub struct TestArgs {
    /// An installed plugin's name, or a .wasm file
    plugin: String,
    /// before-pull, before-create, validate, after-start or after-exit
    #[arg(long)]
    hook: String,
    /// JSON input ("-" for stdin): a reference string (or {"reference": …}) for before-pull,
    /// spec fields for before-create and validate, the event for after-start and after-exit
    #[arg(long)]
    input: PathBuf,
}

/// Runs a `plugin` subcommand.
pub fn run(cmd: PluginCmd) -> Result<ExitCode> {
    let dirs = Dirs::from_env();
    match cmd {
        PluginCmd::Install(a) => install(&dirs, a),
        PluginCmd::Ls(a) => ls(&dirs, a.quiet),
        PluginCmd::Inspect { names } => inspect(&dirs, &names),
        PluginCmd::Rm { names } => rm(&dirs, &names),
        PluginCmd::Enable { name } => set_enabled(&dirs, &name, true),
        PluginCmd::Disable { name } => set_enabled(&dirs, &name, false),
        PluginCmd::Test(a) => test(&dirs, a),
        PluginCmd::Push { path, reference } => push(&dirs, &path, &reference),
        PluginCmd::Wit { version } => {
            let v = version
                .as_deref()
                .unwrap_or(skiff_plugins::WORLD_VERSIONS[1]);
            let Some((_, text)) = skiff_plugins::WIT_SOURCES.iter().find(|(x, _)| *x == v) else {
                bail!(
                    "unknown world version {v:?}: this skiff has {}",
                    skiff_plugins::WORLD_VERSIONS.join(", ")
                );
            };
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Whether `source` names a file rather than a registry reference.
fn is_file(source: &str) -> bool {
    Path::new(source).exists() || source.ends_with(".wasm") || source.starts_with(['.', '/'])
}

/// Reads a plugin's bytes and its default name from a file or a registry.
fn fetch(dirs: &Dirs, source: &str) -> Result<(Vec<u8>, String, Option<PathBuf>)> {
    if is_file(source) {
        let path = PathBuf::from(source);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {source}"))?;
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        return Ok((bytes, stem, Some(path)));
    }
    let reference = Reference::parse(source)?;
    let store = ImageStore::open(dirs.clone())?;
    let pulled = ctx::runtime()?.block_on(store.pull_wasm(&reference))?;
    let repo = reference
        .repository
        .rsplit('/')
        .next()
        .unwrap_or("plugin")
        .to_lowercase();
    Ok((pulled.bytes, repo, None))
}

fn install(dirs: &Dirs, a: InstallArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let (bytes, default_name, path) = fetch(dirs, &a.source)?;
    let name = a.name.clone().unwrap_or(default_name);
    check_name(&name)?;
    let pdir = plugins::plugin_dir(dirs);
    if pdir.list()?.iter().any(|p| p.name == name) {
        return Err(PluginError::Exists(name).into());
    }
    for g in &a.grants {
        Grant::parse(g).map_err(|e| anyhow::anyhow!("--grant: {e}"))?;
    }
    let wanted = match &path {
        Some(p) => skiff_plugins::grants::manifest_grants(p)?,
        None => Vec::new(),
    };
    let asked: Vec<&String> = wanted.iter().filter(|w| !a.grants.contains(w)).collect();
    if !asked.is_empty() && !a.yes {
        let list = asked
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        if !std::io::stdin().is_terminal() {
            bail!(
                "plugin {name} asks for grants {list}: pass --yes to grant them, or --grant each"
            );
        }
        eprint!("Plugin {name} asks for: {list}\nGrant them? [y/N] ");
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            bail!("plugin {name} was not installed: its grants were not given");
        }
    }
    let mut to_grant = a.grants.clone();
    to_grant.extend(wanted.into_iter().filter(|w| !a.grants.contains(w)));

    let host = plugins::host()?;
    let prepared =
        skiff_plugins::loader::prepare(host, &pdir, &plugins::cache(dirs), &bytes, &a.source)?;
    // Load it once with the grants it will have, so an import it may not use is refused now.
    let mut config = plugins::configs(dirs)?.remove(&name).unwrap_or_default();
    let extra = Grants::parse(to_grant.iter().map(String::as_str)).map_err(anyhow::Error::msg)?;
    config.grants.0.extend(extra.0);
    host.load(&name, &prepared.component, config.clone())?;

    let config_file = dirs.config.join("config.toml");
    let entry = Installed {
        name: name.clone(),
        digest: prepared.digest.clone(),
        world: prepared.inspected.version.as_str().to_string(),
        hooks: prepared
            .inspected
            .hooks
            .iter()
            .map(|h| h.as_str().to_string())
            .collect(),
        imports: prepared.inspected.imports.clone(),
        priority: a.priority,
        enabled: true,
        source: match &path {
            Some(p) => std::fs::canonicalize(p)
                .unwrap_or(p.clone())
                .display()
                .to_string(),
            None => a.source.clone(),
        },
        installed: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        size: bytes.len() as u64,
        compiled: prepared.compiled.clone(),
        wants: to_grant.clone(),
        last_error: None,
        also_compiled: Vec::new(),
    };
    pdir.update(|list| {
        if list.iter().any(|p| p.name == name) {
            return Err(PluginError::Exists(name.clone()));
        }
        if !to_grant.is_empty() {
            skiff_plugins::config_file::add_grants(&config_file, &name, &to_grant)?;
        }
        list.push(entry);
        Ok(())
    })?;
    let hooks = prepared
        .inspected
        .hooks
        .iter()
        .map(|h| h.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let grants = if config.grants.is_empty() {
        "none".to_string()
    } else {
        config.grants.to_strings().join(", ")
    };
    println!(
        "Installed plugin {name} (world {}; hooks {hooks}; grants {grants}; {} component, {} compiled) in {} ms",
        prepared.inspected.version.as_str(),
        human::size(bytes.len() as u64),
        human::size(prepared.compiled_size),
        started.elapsed().as_millis()
    );
    Ok(ExitCode::SUCCESS)
}

fn ls(dirs: &Dirs, quiet: bool) -> Result<ExitCode> {
    let list = plugins::plugin_dir(dirs).list()?;
    if quiet {
        list.iter().for_each(|p| println!("{}", p.name));
        return Ok(ExitCode::SUCCESS);
    }
    let configs = plugins::configs(dirs)?;
    let mut lines =
        vec!["NAME\tWORLD\tHOOKS\tPRIORITY\tENABLED\tGRANTS\tDIGEST\tLAST ERROR".to_string()];
    for p in &list {
        let grants = configs
            .get(&p.name)
            .map(|c| c.grants.to_strings().join(","))
            .filter(|g| !g.is_empty())
            .unwrap_or_else(|| "-".into());
        lines.push(format!(
            "{}\t{}\t{}\t{}\t{}\t{grants}\t{}\t{}",
            p.name,
            p.world,
            p.hooks.join(","),
            p.priority,
            p.enabled,
            &p.digest_hex()[..12.min(p.digest_hex().len())],
            p.last_error
                .as_deref()
                .map(|e| e.chars().take(60).collect::<String>())
                .unwrap_or_else(|| "-".into()),
        ));
    }
    table::print_aligned(&lines);
    Ok(ExitCode::SUCCESS)
}

fn find(dirs: &Dirs, name: &str) -> Result<Installed> {
    plugins::plugin_dir(dirs)
        .list()?
        .into_iter()
        .find(|p| p.name == name)
        .ok_or_else(|| PluginError::NotInstalled(name.to_string()).into())
}

fn inspect(dirs: &Dirs, names: &[String]) -> Result<ExitCode> {
    let configs = plugins::configs(dirs)?;
    let mut docs = Vec::new();
    let mut code = ExitCode::SUCCESS;
    for n in names {
        let p = match find(dirs, n) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("Error: {e}");
                code = ExitCode::from(125);
                continue;
            }
        };
        let c = configs.get(n).cloned().unwrap_or_default();
        let (component, compiled) = plugins::paths(dirs, &p);
        docs.push(json!({
            "Name": p.name, "Digest": p.digest, "World": format!("skiff:plugin@{}", p.world),
            "Hooks": p.hooks, "Imports": p.imports, "Priority": p.priority, "Enabled": p.enabled,
            "Source": p.source, "Installed": p.installed, "Size": p.size,
            "Component": component, "Compiled": compiled, "EngineKey": p.compiled.engine,
            "Grants": c.grants.to_strings(), "Settings": c.settings,
            "Limits": {"TimeoutMs": c.limits.timeout_ms, "MemoryMiB": c.limits.memory_mib},
            "OnError": match c.on_error {
                Some(skiff_plugins::settings::OnError::Deny) => "deny",
                Some(skiff_plugins::settings::OnError::Ignore) => "ignore",
                None => "default (decision hooks deny, observers warn)",
            },
            "LastError": p.last_error,
        }));
    }
    println!("{}", serde_json::to_string_pretty(&docs)?);
    Ok(code)
}

fn rm(dirs: &Dirs, names: &[String]) -> Result<ExitCode> {
    let pdir = plugins::plugin_dir(dirs);
    let config_file = dirs.config.join("config.toml");
    let mut code = ExitCode::SUCCESS;
    for n in names {
        let removed = pdir.update(|list| {
            let before = list.len();
            list.retain(|p| &p.name != n);
            if list.len() == before {
                return Err(PluginError::NotInstalled(n.clone()));
            }
            skiff_plugins::config_file::remove_grants(&config_file, n)?;
            Ok(list.clone())
        });
        match removed {
            Ok(list) => {
                pdir.prune_components(&list);
                let cache = plugins::cache(dirs);
                let keep: Vec<PathBuf> = list
                    .iter()
                    .flat_map(|p| {
                        p.all_compiled()
                            .map(|c| cache.path(p.digest_hex(), &c.engine))
                    })
                    .collect();
                cache.prune(&keep);
                println!("{n}");
            }
            Err(e) => {
                eprintln!("Error: {e}");
                code = ExitCode::from(125);
            }
        }
    }
    Ok(code)
}

fn set_enabled(dirs: &Dirs, name: &str, enabled: bool) -> Result<ExitCode> {
    plugins::plugin_dir(dirs).update(|list| {
        let p = list
            .iter_mut()
            .find(|p| p.name == name)
            .ok_or_else(|| PluginError::NotInstalled(name.to_string()))?;
        p.enabled = enabled;
        if enabled {
            p.last_error = None;
        }
        Ok(())
    })?;
    println!("{name}");
    Ok(ExitCode::SUCCESS)
}

/// Loads what `plugin test` names: an installed plugin, or a file compiled in memory (with the
/// settings and grants config.toml has for a plugin of its name).
fn load_for_test(dirs: &Dirs, what: &str) -> Result<Loaded> {
    let mut configs = plugins::configs(dirs)?;
    if !is_file(what) {
        let p = find(dirs, what)?;
        return plugins::load(dirs, &p, configs.remove(what).unwrap_or_default());
    }
    let bytes = std::fs::read(what).with_context(|| format!("reading {what}"))?;
    let name = Path::new(what)
        .file_stem()
        .map(|s| s.to_string_lossy().to_lowercase())
        .unwrap_or_else(|| "plugin".into());
    let host = plugins::host()?;
    let (compiled, _) = host.compile(&bytes, what)?;
    let component = host.from_compiled(&compiled, what)?;
    let config: PluginConfig = configs.remove(&name).unwrap_or_default();
    Ok(host.load(&name, &component, config)?)
}

fn test(dirs: &Dirs, a: TestArgs) -> Result<ExitCode> {
    let hook = Hook::parse(&a.hook).with_context(|| {
        format!(
            "unknown --hook {:?}: use before-pull, before-create, validate, after-start or after-exit",
            a.hook
        )
    })?;
    let text = if a.input.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading the input from stdin")?
    } else {
        std::fs::read_to_string(&a.input)
            .with_context(|| format!("reading {}", a.input.display()))?
    };
    let input: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON", a.input.display()))?;
    let p = load_for_test(dirs, &a.plugin)?;
    if !p.has(hook) {
        bail!(
            "plugin {} does not export {hook}; it exports {}",
            p.name(),
            p.inspected()
                .hooks
                .iter()
                .map(|h| h.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let result = match hook {
        Hook::BeforePull => {
            let r = input
                .as_str()
                .or_else(|| input.get("reference").and_then(Value::as_str))
                .context("the before-pull input is a reference: \"docker.io/library/busybox:latest\" or {\"reference\": …}")?;
            p.before_pull(r).map(|d| match d {
                wit::PullDecision::Keep => json!("keep"),
                wit::PullDecision::Rewrite(r) => json!({"rewrite": r}),
                wit::PullDecision::Deny(r) => json!({"deny": r}),
            })
        }
        Hook::BeforeCreate => {
            let spec = plugin_spec::spec_from_json(&input)?;
            p.before_create(&spec).map(|d| match d {
                wit::CreateDecision::Allow(edits) => {
                    json!({"allow": edits.iter().map(plugin_spec::edit_json).collect::<Vec<_>>()})
                }
                wit::CreateDecision::Deny(r) => json!({"deny": r}),
            })
        }
        Hook::Validate => {
            let spec = plugin_spec::spec_from_json(input.get("spec").unwrap_or(&input))?;
            let changes: Vec<wit::Change> = input
                .get("changes")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| wit::Change {
                            key: k.clone(),
                            plugin: v.as_str().unwrap_or_default().to_string(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            p.validate(&spec, &changes).map(|v| match v {
                wit::Verdict::Allow => json!("allow"),
                wit::Verdict::Deny(r) => json!({"deny": r}),
            })
        }
        Hook::AfterStart => {
            let e: skiff_runtime::hooks::StartEvent = serde_json::from_value(input)
                .context("the after-start input is {\"id\", \"name\", \"image\", \"pid\"}")?;
            p.after_start(&plugin_spec::start_event(&e))
                .map(|_| json!("ok"))
        }
        Hook::AfterExit => {
            let e: skiff_runtime::hooks::ExitEvent = serde_json::from_value(input).context(
                "the after-exit input is {\"id\", \"name\", \"image\", \"exit_code\", \"signal\", \"oom_killed\", \"duration_ms\", \"will_restart\", \"removing\"}",
            )?;
            p.after_exit(&plugin_spec::exit_event(&e))
                .map(|_| json!("ok"))
        }
    };
    let stats = p.last_stats();
    let timing = format!(
        "{hook} of {} took {:.2} ms ({:.2} ms making its instance), peak memory {}",
        p.name(),
        stats.elapsed.as_secs_f64() * 1000.0,
        stats.instantiate.as_secs_f64() * 1000.0,
        human::size(stats.peak_memory as u64)
    );
    match result {
        Ok(v) => {
            println!("{v}");
            eprintln!("{timing}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{timing}");
            bail!("{hook} hook of {} failed: {e}", p.name())
        }
    }
}

fn push(dirs: &Dirs, path: &Path, reference: &str) -> Result<ExitCode> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let what = path.display().to_string();
    let host = plugins::host()?;
    let (_, inspected) = host.compile(&bytes, &what)?;
    let r = Reference::parse(reference)?;
    let store = ImageStore::open(dirs.clone())?;
    let digest = ctx::runtime()?.block_on(store.push_wasm(
        &r,
        &bytes,
        &inspected.exports,
        &inspected.imports,
    ))?;
    println!("{r}@{digest}");
    Ok(ExitCode::SUCCESS)
}
