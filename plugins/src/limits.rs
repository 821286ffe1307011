//! The limits on each hook call: a wall-clock deadline enforced by epoch interruption (a
//! watchdog thread, one per process, bumps the engine's epoch when a deadline passes, and each store then checks
//! its own deadline, so a call is never cut short by another's), a memory cap enforced by
//! a resource limiter that also records the peak for `plugin test`, and caps on the size of what
//! goes in and comes out.

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use wasmtime::Engine;

/// Per-call limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock deadline per call, in milliseconds.
    pub timeout_ms: u64,
    /// Linear memory a call may use in all, in MiB.
    pub memory_mib: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            timeout_ms: 300,
            memory_mib: 64,
        }
    }
}

/// The cap on a hook's input (a spec, a reference), in bytes.
pub const MAX_INPUT: usize = 1 << 20;
/// The cap on a hook's result (a rewritten reference, a reason, the edits), in bytes.
pub const MAX_OUTPUT: usize = 256 << 10;
/// Table elements a call may allocate.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// Enforces the memory cap and remembers how much was used.
#[derive(Debug)]
pub struct Limiter {
    cap: usize,
    /// Bytes of linear memory in use across the call's instances.
    pub used: usize,
    /// The most that was in use at once.
    pub peak: usize,
    /// Whether a growth was refused for the cap.
    pub hit: bool,
}

impl Limiter {
    /// A limiter allowing `mib` MiB.
    pub fn new(mib: u64) -> Limiter {
        Limiter {
            cap: (mib as usize) << 20,
            used: 0,
            peak: 0,
            hit: false,
        }
    }
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let after = self.used - current.min(self.used) + desired;
        if after > self.cap {
            self.hit = true;
            // Trap rather than let memory.grow return -1: a plugin that ignores the failure
            // would otherwise go on in an undefined state.
            return Err(wasmtime::format_err!("memory limit reached"));
        }
        self.used = after;
        self.peak = self.peak.max(after);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// Bumps the engine's epoch once `timeout` passes, unless dropped first; every store running
/// then checks its own deadline, and the one whose deadline passed is interrupted. All the
/// watches of a process share one thread: a thread per call cost a spawn and a join on every
/// call and instantiation, and the join waited for the scheduler on a busy machine.
pub struct Watchdog {
    key: (Instant, u64),
    watches: &'static Watches,
}

/// The deadlines being watched, soonest first, and the thread that waits for them.
struct Watches {
    due: Mutex<Due>,
    changed: Condvar,
}

#[derive(Default)]
struct Due {
    next: u64,
    /// (deadline, watch number) → the engine whose epoch its passing bumps.
    at: BTreeMap<(Instant, u64), Engine>,
}

impl Watches {
    /// The process's watches, with their thread started on first use; an error when the thread
    /// cannot be started (then no call may run: its deadline would not be enforced).
    fn get() -> std::io::Result<&'static Watches> {
        static WATCHES: OnceLock<Result<&'static Watches, String>> = OnceLock::new();
        WATCHES
            .get_or_init(|| {
                let w: &'static Watches = Box::leak(Box::new(Watches {
                    due: Mutex::new(Due::default()),
                    changed: Condvar::new(),
                }));
                std::thread::Builder::new()
                    .name("plugin-watchdog".into())
                    .spawn(move || w.watch())
                    .map(|_| w)
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map(|w| *w)
            .map_err(|e| std::io::Error::other(e.clone()))
    }

    /// The thread: sleeps until the soonest deadline, then bumps the epoch of each engine whose
    /// deadline has passed.
    fn watch(&self) {
        let Ok(mut due) = self.due.lock() else {
            return;
        };
        loop {
            let now = Instant::now();
            let next = due.at.first_key_value().map(|(k, _)| k.0);
            due = match next {
                None => match self.changed.wait(due) {
                    Ok(d) => d,
                    Err(_) => return,
                },
                Some(at) if at <= now => {
                    while let Some(e) = due.at.first_entry() {
                        if e.key().0 > now {
                            break;
                        }
                        e.remove().increment_epoch();
                    }
                    due
                }
                Some(at) => match self.changed.wait_timeout(due, at - now) {
                    Ok((d, _)) => d,
                    Err(_) => return,
                },
            };
        }
    }
}

impl Watchdog {
    /// Starts the watch; an error when the watchdog thread cannot be started.
    pub fn start(engine: &Engine, timeout: Duration) -> std::io::Result<Watchdog> {
        let watches = Watches::get()?;
        let mut due = watches
            .due
            .lock()
            .map_err(|_| std::io::Error::other("the plugin watchdog failed"))?;
        let key = (Instant::now() + timeout, due.next);
        due.next += 1;
        let soonest = due.at.first_key_value().is_none_or(|(k, _)| key < *k);
        due.at.insert(key, engine.clone());
        drop(due);
        if soonest {
            watches.changed.notify_one();
        }
        Ok(Watchdog { key, watches })
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // The thread may still wake for this deadline: it then finds it gone.
        if let Ok(mut due) = self.watches.due.lock() {
            due.at.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn the_limiter_caps_the_total_and_keeps_the_peak() {
        let mut l = Limiter::new(1);
        assert!(l.memory_growing(0, 512 << 10, None).unwrap());
        assert!(l.memory_growing(512 << 10, 1 << 20, None).unwrap());
        assert!(l.memory_growing(1 << 20, (1 << 20) + 1, None).is_err());
        assert!(l.hit);
        assert_eq!(l.peak, 1 << 20);
    }
}
