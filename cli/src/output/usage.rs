//! Usage errors the way Docker and podman report them: one `Error:` line and exit 125, naming
//! what was wrong, the nearest fix, and the help to read. `--help` and `--version` still print
//! normally and exit 0.

use std::process::ExitCode;

use clap::error::{ContextKind, ContextValue, ErrorKind};

/// Docker commands skiff does not have, with what a Docker user should reach for instead.
const NEAREST: &[(&str, &str)] = &[
    (
        "build",
        "build with docker, podman or buildah, then skiff load -i image.tar",
    ),
    (
        "buildx",
        "build with docker, podman or buildah, then skiff load -i image.tar",
    ),
    ("import", "use skiff load -i archive.tar"),
    (
        "network",
        "use skiff run --network slirp4netns|host|none and -p HOST:CONTAINER",
    ),
    (
        "update",
        "remove the container and run it again with the new limits",
    ),
    (
        "search",
        "look the image up on its registry's site, then skiff pull NAME",
    ),
];

/// Prints a clap error as skiff reports usage errors and returns the exit code: 0 for help and
/// version output (and for a bare group such as `skiff volume`, which shows its help, as Docker
/// does), 125 for everything else.
pub fn report(e: clap::Error, tree: clap::Command) -> ExitCode {
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            // clap sends this help to stderr; Docker prints it like --help.
            print!("{}", e.render());
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    eprintln!("Error: {}", one_line(&e, tree));
    ExitCode::from(125)
}

/// The error as one line: clap's message without its `error: ` prefix (with the missing
/// arguments it lists), a suggestion where clap has one, and which help to read.
fn one_line(e: &clap::Error, tree: clap::Command) -> String {
    let path = command_path(tree);
    let help = format!("see '{path} --help'");
    if e.kind() == ErrorKind::InvalidSubcommand {
        if let Some(ContextValue::String(name)) = e.get(ContextKind::InvalidSubcommand) {
            if let Some((_, hint)) = NEAREST.iter().find(|(n, _)| n == name) {
                return format!("{path} has no {name:?} command: {hint}");
            }
            let mut line = format!("unknown command {name:?} for {path}");
            if let Some(s) = suggestions(e, ContextKind::SuggestedSubcommand) {
                line.push_str(&format!(": did you mean {s}?"));
            }
            return format!("{line} ({help})");
        }
    }
    let rendered = e.render().to_string();
    let mut parts: Vec<&str> = Vec::new();
    for l in rendered.lines() {
        let t = l.trim();
        if t.is_empty() {
            if !parts.is_empty() {
                break;
            }
            continue;
        }
        if t.starts_with("tip:") || t.starts_with("Usage:") || t.starts_with("For more") {
            break;
        }
        parts.push(t.trim_start_matches("error: "));
    }
    let mut line = parts.join(" ");
    if line.is_empty() {
        line = "invalid arguments".into();
    }
    if let Some(s) = suggestions(e, ContextKind::SuggestedArg) {
        line.push_str(&format!(": did you mean {s}?"));
    }
    format!("{line} ({help})")
}

/// The suggestions of `kind` clap attached, best first, as `"a" or "b"`.
fn suggestions(e: &clap::Error, kind: ContextKind) -> Option<String> {
    let v: Vec<String> = match e.get(kind)? {
        ContextValue::String(s) => vec![s.clone()],
        // clap orders them by confidence, best last.
        ContextValue::Strings(v) => v.iter().rev().cloned().collect(),
        _ => return None,
    };
    let quoted: Vec<String> = v.iter().map(|s| format!("{s:?}")).collect();
    (!quoted.is_empty()).then(|| quoted.join(" or "))
}

/// `skiff run` / `skiff container ls`: the subcommands named on the command line, followed from
/// the top of the command tree while they match.
fn command_path(tree: clap::Command) -> String {
    let mut cmd = tree;
    let mut path = vec!["skiff".to_string()];
    for arg in std::env::args().skip(1) {
        let Some(sub) = cmd.find_subcommand(&arg).cloned() else {
            break;
        };
        path.push(sub.get_name().to_string());
        cmd = sub;
    }
    path.join(" ")
}

/// `-it` attached with stdin that is no terminal is refused before anything is created, with
/// Docker's words (Docker exits 1 here; skiff's own errors exit 125). `-t` alone, or `-dit`,
/// stays allowed, as in Docker. Shared by `run` and `exec`.
pub fn refuse_tty_without_terminal(
    interactive: bool,
    tty: bool,
    detach: bool,
) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    if interactive && tty && !detach && !std::io::stdin().is_terminal() {
        anyhow::bail!("the input device is not a TTY: drop -t (keep -i) to pipe input, or run from a terminal");
    }
    Ok(())
}
