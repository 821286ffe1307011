//! What a finished call leaves behind (its store: the instance's linear memories, tables and WASI
//! context). Unmapping a Python plugin's memory takes 0.3 to 0.5 ms per call, three times a
//! `run`. Done on another thread while the command's next call runs, the unmap and that call's
//! page faults contend for the one address space, and the next call slows down by about as much.
//! So the stores of a process's first [`KEPT`] successful calls are kept (measured, 0.6 ms less
//! per `run` with the three examples) until the command says it makes no more calls
//! ([`release_kept`], which hands them to the reaper while the command writes its records), or
//! else to the process's end, whose exit releases them all at once. A failed call's store and
//! any later ones are dropped on the reaper thread, so that a process making many calls does
//! not grow, and what is kept stays under [`KEPT`] times a call's memory cap.

use std::sync::mpsc::{self, Sender};
use std::sync::{Mutex, OnceLock};

/// Something to drop later.
type Remains = Box<dyn Send>;

/// How many finished stores a process keeps: a `run` makes four calls, a hook helper two.
pub const KEPT: usize = 8;

/// Holds remains up to a number.
struct Keeper {
    kept: Mutex<Vec<Remains>>,
    room: usize,
}

impl Keeper {
    const fn new(room: usize) -> Keeper {
        Keeper {
            kept: Mutex::new(Vec::new()),
            room,
        }
    }

    /// Keeps `what`, or hands it back when there is no room left.
    fn keep(&self, what: Remains) -> Option<Remains> {
        match self.kept.lock() {
            Ok(mut kept) if kept.len() < self.room => {
                kept.push(what);
                None
            }
            _ => Some(what),
        }
    }

    /// Everything kept so far, leaving room for as many again.
    fn take(&self) -> Vec<Remains> {
        self.kept
            .lock()
            .map(|mut k| std::mem::take(&mut *k))
            .unwrap_or_default()
    }
}

/// The kept stores, until [`release_kept`]. A static is never dropped: what it still holds at
/// the end, the exit releases.
static KEEP: Keeper = Keeper::new(KEPT);

/// The reaper's queue; none when its thread could not be started (then drops happen in place).
fn queue() -> Option<&'static Mutex<Sender<Remains>>> {
    static QUEUE: OnceLock<Option<Mutex<Sender<Remains>>>> = OnceLock::new();
    QUEUE
        .get_or_init(|| {
            let (tx, rx) = mpsc::channel::<Remains>();
            std::thread::Builder::new()
                .name("plugin-reaper".into())
                .spawn(move || {
                    for remains in rx {
                        // A panicking drop must not end the reaper: later remains still come.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            drop(remains)
                        }));
                    }
                })
                .ok()
                .map(|_| Mutex::new(tx))
        })
        .as_ref()
}

/// Retires what a finished call leaves: kept while fewer than [`KEPT`] are, else dropped on the
/// reaper thread (or here when there is none).
pub fn retire<T: Send + 'static>(what: T) {
    if let Some(back) = KEEP.keep(Box::new(what)) {
        reap(back);
    }
}

/// Hands the kept stores to the reaper: for a command that makes no more calls and has work
/// of its own left, during which they can be unmapped.
pub fn release_kept() {
    let kept = KEEP.take();
    if !kept.is_empty() {
        reap(kept);
    }
}

/// Drops `what` on the reaper thread, or here when there is none. What is still queued when
/// the process exits is released by the exit, as everything else is.
pub fn reap<T: Send + 'static>(what: T) {
    let boxed: Remains = Box::new(what);
    let boxed = match queue().map(|q| q.lock()) {
        Some(Ok(tx)) => match tx.send(boxed) {
            Ok(()) => return,
            Err(mpsc::SendError(b)) => b,
        },
        _ => boxed,
    };
    drop(boxed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Records the thread that dropped it.
    struct Probe(Arc<Mutex<Option<std::thread::ThreadId>>>, Sender<()>);

    impl Drop for Probe {
        fn drop(&mut self) {
            *self.0.lock().unwrap() = Some(std::thread::current().id());
            let _ = self.1.send(());
        }
    }

    #[test]
    fn what_is_reaped_is_dropped_on_another_thread() {
        let seen = Arc::new(Mutex::new(None));
        let (tx, rx) = mpsc::channel();
        reap(Probe(seen.clone(), tx));
        rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
        let by = seen.lock().unwrap().unwrap();
        assert_ne!(by, std::thread::current().id());
    }

    #[test]
    fn a_keeper_keeps_up_to_its_room_and_hands_back_the_rest() {
        let seen = Arc::new(Mutex::new(None));
        let (tx, rx) = mpsc::channel();
        let keeper = Keeper::new(2);
        for _ in 0..2 {
            assert!(keeper
                .keep(Box::new(Probe(seen.clone(), tx.clone())))
                .is_none());
        }
        let back = keeper.keep(Box::new(Probe(seen.clone(), tx)));
        assert!(back.is_some(), "a third was kept in a room of two");
        assert!(rx.try_recv().is_err(), "a kept one was dropped");
        drop(back);
        rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
        assert_eq!(keeper.kept.lock().unwrap().len(), 2);
        // Taken (to be released), they make room again.
        let taken = keeper.take();
        assert_eq!(taken.len(), 2);
        let (tx, _rx) = mpsc::channel();
        assert!(keeper.keep(Box::new(Probe(seen, tx))).is_none());
        drop(taken);
        assert_eq!(
            rx.iter().take(2).count(),
            2,
            "the taken ones were not dropped"
        );
    }
}
