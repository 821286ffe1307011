//! The per-layer pull display, like Docker's: a live line per layer on a terminal ([`Bars`]),
//! and when stderr is piped a status line per layer and step ([`Lines`]); nothing when quiet.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use skiff_store::{Digest, Progress, Reference};

/// Progress bars for a pull on a terminal.
pub struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<Digest, ProgressBar>>,
    /// Layers whose download has begun (their bar has its downloading style).
    downloading: Mutex<HashSet<Digest>>,
}

impl Bars {
    /// A display drawing to stderr.
    pub fn new() -> Bars {
        Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::new(HashMap::new()),
            downloading: Mutex::new(HashSet::new()),
        }
    }

    fn with(&self, id: &Digest, f: impl FnOnce(&ProgressBar)) {
        if let Ok(bars) = self.bars.lock() {
            if let Some(b) = bars.get(id) {
                f(b);
            }
        }
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

impl Progress for Bars {
    fn resolved(&self, reference: &Reference, _digest: &Digest) {
        let _ = self.multi.println(format!(
            "{}: Pulling from {}",
            reference.tag.as_deref().unwrap_or("latest"),
            reference.repository
        ));
    }
    fn layer(&self, id: &Digest, size: u64, present: bool) {
        // Styled before it is added: the first frame is drawn on adding, and an unstyled bar
        // draws as a full-width bar with no name.
        let template = if present {
            "{prefix}: Already exists"
        } else {
            "{prefix}: Waiting"
        };
        let bar = ProgressBar::new(size)
            .with_style(style(template))
            .with_prefix(id.short().to_string());
        let bar = self.multi.add(bar);
        if present {
            bar.finish();
        }
        if let Ok(mut bars) = self.bars.lock() {
            bars.insert(id.clone(), bar);
        }
    }
    fn downloading(&self, id: &Digest, done: u64) {
        let first = self
            .downloading
            .lock()
            .map(|mut d| d.insert(id.clone()))
            .unwrap_or(false);
        self.with(id, |b| {
            if first {
                b.set_style(
                    style("{prefix}: Downloading [{bar:30}] {bytes}/{total_bytes}")
                        .progress_chars("=> "),
                );
            }
            b.set_position(done);
        });
    }
    fn extracting(&self, id: &Digest) {
        self.with(id, |b| {
            b.set_style(style("{prefix}: Extracting {spinner}"));
            b.enable_steady_tick(std::time::Duration::from_millis(120));
        });
    }
    fn layer_done(&self, id: &Digest) {
        self.with(id, |b| {
            if !b.is_finished() {
                b.set_style(style("{prefix}: Pull complete"));
                b.finish();
            }
        });
    }
}

/// Status lines for a pull whose stderr is no terminal (a log, CI), as Docker prints them there:
/// no bars, one line per layer and step.
#[derive(Default)]
pub struct Lines {
    /// Layers already here: they get "Already exists" and nothing more.
    present: Mutex<HashSet<Digest>>,
}

impl Lines {
    /// A sink printing to stderr.
    pub fn new() -> Lines {
        Lines::default()
    }
}

impl Progress for Lines {
    fn resolved(&self, reference: &Reference, _digest: &Digest) {
        eprintln!(
            "{}: Pulling from {}",
            reference.tag.as_deref().unwrap_or("latest"),
            reference.repository
        );
    }
    fn layer(&self, id: &Digest, _size: u64, present: bool) {
        if present {
            if let Ok(mut p) = self.present.lock() {
                p.insert(id.clone());
            }
            eprintln!("{}: Already exists", id.short());
        } else {
            eprintln!("{}: Pulling fs layer", id.short());
        }
    }
    fn extracting(&self, id: &Digest) {
        eprintln!("{}: Download complete", id.short());
    }
    fn layer_done(&self, id: &Digest) {
        let present = self.present.lock().is_ok_and(|p| p.contains(id));
        if !present {
            eprintln!("{}: Pull complete", id.short());
        }
    }
}
