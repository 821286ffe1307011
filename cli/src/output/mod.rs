//! Everything the CLI prints or asks: aligned tables, `--format` templates, human times and
//! sizes, pull progress bars, prompts, and usage and error lines.

pub mod format;
pub mod human;
pub mod progress;
pub mod prompt;
pub mod table;
pub mod usage;

/// The error and its causes on one line, without repeating what a cause already says.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if !out.contains(&s) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&s);
        }
    }
    out.replace('\n', " ")
}
