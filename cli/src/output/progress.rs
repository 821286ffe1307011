//! The per-layer pull display, like Docker's: one line per layer on a terminal; nothing per layer
//! when piped or quiet.

use std::collections::HashMap;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use skiff_store::{Digest, Progress, Reference};

/// Progress bars for a pull on a terminal.
pub struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<Digest, ProgressBar>>,
}

impl Bars {
    /// A display drawing to stderr.
    pub fn new() -> Bars {
        Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::new(HashMap::new()),
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
        let bar = self.multi.add(ProgressBar::new(size));
        bar.set_prefix(id.short().to_string());
        if present {
            bar.set_style(style("{prefix}: Already exists"));
            bar.finish();
        } else {
            bar.set_style(style("{prefix}: Waiting"));
        }
        if let Ok(mut bars) = self.bars.lock() {
            bars.insert(id.clone(), bar);
        }
    }
    fn downloading(&self, id: &Digest, done: u64) {
        self.with(id, |b| {
            if b.position() == 0 {
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
