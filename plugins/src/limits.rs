//! The limits on each hook call: a wall-clock deadline enforced by epoch interruption (a
//! watchdog thread bumps the engine's epoch when the deadline passes, and each store then checks
//! its own deadline, so a call is never cut short by another's), a memory cap enforced by
//! a resource limiter that also records the peak for `plugin test`, and caps on the size of what
//! goes in and comes out.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

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
/// then checks its own deadline, and the one whose deadline passed is interrupted.
pub struct Watchdog {
    done: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    /// Starts the watch.
    pub fn start(engine: &Engine, timeout: Duration) -> Watchdog {
        let (tx, rx) = mpsc::channel::<()>();
        let engine = engine.clone();
        let thread = std::thread::Builder::new()
            .name("plugin-watchdog".into())
            .spawn(move || {
                if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(timeout) {
                    engine.increment_epoch();
                }
            })
            .ok();
        Watchdog {
            done: Some(tx),
            thread,
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.done.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
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
