//! `cargo xtask tidy`: the conventions that keep the workspace's shape, checked on every CI run
//! (as rust-analyzer's tidy test does): every Rust file opens with a `//!` comment, no CLI file
//! touches the system directly (nix, libc, rustix belong to the runtime), no command file of the
//! CLI imports another, and no file imports a file that imports it back, directly or in a circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The crates whose `src/` trees are checked, with their roots.
const CRATES: &[&str] = &["cli", "store", "runtime", "plugins", "xtask", "tests"];

/// Crates only the runtime may call: the CLI stays clap, output and calls into the libraries.
const SYSTEM_CRATES: &[&str] = &["nix", "libc", "rustix"];

/// Runs every check over the workspace at `root`; the error lists every violation.
pub fn run(root: &Path) -> Result<()> {
    let mut problems = Vec::new();
    for krate in CRATES {
        let dir = root.join(krate);
        let mut files = Vec::new();
        for sub in ["src", "tests"] {
            collect(&dir.join(sub), &mut files)?;
        }
        for f in &files {
            let text =
                std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
            let rel = f.strip_prefix(root).unwrap_or(f).display().to_string();
            if !text.trim_start().starts_with("//!") {
                problems.push(format!(
                    "{rel}: no `//!` comment saying what the file holds"
                ));
            }
            if *krate == "cli" {
                for name in SYSTEM_CRATES {
                    if mentions_crate(&text, name) {
                        problems.push(format!(
                            "{rel}: uses `{name}`: system calls belong in the runtime, behind a typed function"
                        ));
                    }
                }
            }
        }
        let src = dir.join("src");
        if src.is_dir() {
            let graph = import_graph(&src, &files)?;
            if *krate == "cli" {
                for (from, tos) in &graph {
                    for to in tos {
                        if from.starts_with("cmd/") && to.starts_with("cmd/") && from != to {
                            problems.push(format!(
                                "cli/src/{from} imports cli/src/{to}: command files share code through ctx or output, never each other"
                            ));
                        }
                    }
                }
            }
            for cycle in cycles(&graph) {
                problems.push(format!("{krate}/src: import circle {}", cycle.join(" -> ")));
            }
        }
    }
    if problems.is_empty() {
        eprintln!("xtask: tidy: ok");
        Ok(())
    } else {
        bail!(
            "tidy found {} problem(s):\n  {}",
            problems.len(),
            problems.join("\n  ")
        )
    }
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
    Ok(())
}

/// Whether code (not comments) names the crate `name` as a path root.
fn mentions_crate(text: &str, name: &str) -> bool {
    code_lines(text).any(|l| {
        let pat = format!("{name}::");
        l.match_indices(&pat).any(|(i, _)| {
            i == 0
                || !l[..i]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
        })
    })
}

/// Lines with their `//` comments removed.
fn code_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(|l| match l.find("//") {
        Some(i) => &l[..i],
        None => l,
    })
}

/// File-level imports inside one crate: for each module file (relative to `src`), the module
/// files it names through `crate::…` paths.
fn import_graph(src: &Path, files: &[PathBuf]) -> Result<BTreeMap<String, BTreeSet<String>>> {
    let modules: BTreeSet<String> = files
        .iter()
        .filter_map(|f| f.strip_prefix(src).ok())
        .map(|p| p.display().to_string())
        .collect();
    let mut graph = BTreeMap::new();
    for f in files {
        let Ok(rel) = f.strip_prefix(src) else {
            continue;
        };
        let rel = rel.display().to_string();
        let text = std::fs::read_to_string(f)?;
        let mut deps = BTreeSet::new();
        for path in crate_paths(&text) {
            if let Some(target) = resolve(&modules, &path) {
                if target != rel {
                    deps.insert(target);
                }
            }
        }
        graph.insert(rel, deps);
    }
    Ok(graph)
}

/// Every `crate::a::b…` path in the code, with `use crate::{a, b::c}` groups expanded.
fn crate_paths(text: &str) -> Vec<Vec<String>> {
    let code: String = code_lines(text).collect::<Vec<_>>().join("\n");
    let mut out = Vec::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().next_back();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        expand(rest, Vec::new(), &mut out);
    }
    out
}

/// Reads one path (or brace group of paths) at the start of `s`, appending each to `out`.
fn expand(s: &str, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let s = s.trim_start();
    if let Some(inner) = s.strip_prefix('{') {
        let mut depth = 0;
        let mut start = 0;
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    expand(&inner[start..i], prefix.clone(), out);
                    return;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(&inner[start..i], prefix.clone(), out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        return;
    }
    let ident: String = s
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    if ident.is_empty() {
        if !prefix.is_empty() {
            out.push(prefix);
        }
        return;
    }
    let mut p = prefix;
    p.push(ident.clone());
    let after = &s[ident.len()..];
    match after.strip_prefix("::") {
        Some(more) => expand(more, p, out),
        None => out.push(p),
    }
}

/// The module file a path lands in: the longest prefix that names a file (`a/b.rs` or
/// `a/b/mod.rs`).
fn resolve(modules: &BTreeSet<String>, path: &[String]) -> Option<String> {
    for n in (1..=path.len()).rev() {
        let stem = path[..n].join("/");
        for cand in [format!("{stem}.rs"), format!("{stem}/mod.rs")] {
            if modules.contains(&cand) {
                return Some(cand);
            }
        }
    }
    None
}

/// The import circles of a graph, each as the files around it (one per strongly connected
/// component, found with Tarjan's algorithm).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    impl<'a> T<'a> {
        fn visit(&mut self, v: &'a str) {
            self.index.insert(v, self.next);
            self.low.insert(v, self.next);
            self.next += 1;
            self.stack.push(v);
            self.on.insert(v);
            for w in self.g.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low[v];
                    self.low.insert(v, lv.min(lw));
                } else if self.on.contains(w) {
                    let iw = self.index[w];
                    let lv = self.low[v];
                    self.low.insert(v, lv.min(iw));
                }
            }
            if self.low[v] == self.index[v] {
                let mut comp = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on.remove(w);
                    comp.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if comp.len() > 1 {
                    comp.reverse();
                    self.out.push(comp);
                }
            }
        }
    }
    let mut t = T {
        g: graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &str)]) -> BTreeMap<String, BTreeSet<String>> {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in edges {
            g.entry(a.to_string()).or_default().insert(b.to_string());
            g.entry(b.to_string()).or_default();
        }
        g
    }

    #[test]
    fn finds_circles_and_only_circles() {
        let g = graph(&[
            ("a.rs", "b.rs"),
            ("b.rs", "c.rs"),
            ("c.rs", "a.rs"),
            ("c.rs", "d.rs"),
        ]);
        assert_eq!(cycles(&g), vec![vec!["a.rs", "b.rs", "c.rs"]]);
        assert!(cycles(&graph(&[("a.rs", "b.rs"), ("b.rs", "c.rs")])).is_empty());
    }

    #[test]
    fn expands_use_groups_and_resolves_to_files() {
        let text = "use crate::{a::X, b::{c::Y, Z}};\nfn f() { crate::d::g(); }\n// crate::e\n";
        let paths = crate_paths(text);
        let modules: BTreeSet<String> = ["a.rs", "b/mod.rs", "b/c.rs", "d.rs", "e.rs"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let files: BTreeSet<String> = paths.iter().filter_map(|p| resolve(&modules, p)).collect();
        let want: BTreeSet<String> = ["a.rs", "b/c.rs", "b/mod.rs", "d.rs"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(files, want);
    }

    #[test]
    fn system_crates_are_seen_in_code_only() {
        assert!(mentions_crate("use nix::unistd;", "nix"));
        assert!(mentions_crate("let x = libc::getuid();", "libc"));
        assert!(!mentions_crate("// nix::unistd", "nix"));
        assert!(!mentions_crate(
            "use skiff_runtime::sys::libc_like;",
            "libc"
        ));
        assert!(!mentions_crate("my_nix::x", "nix"));
    }
}
