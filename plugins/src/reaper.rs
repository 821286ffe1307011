//! Drops what a finished call leaves behind (its store: the instance's linear memories, tables
//! and WASI context) on a thread of its own. Unmapping a Python plugin's memory took 0.3 to
//! 0.5 ms per call, on the command's path three times a `run`; on the reaper thread it overlaps
//! with what the command does next.

use std::sync::mpsc::{self, Sender};
use std::sync::{Mutex, OnceLock};

/// Something to drop later.
type Remains = Box<dyn Send>;

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

    #[test]
    fn what_is_reaped_is_dropped_on_another_thread() {
        struct Probe(Arc<Mutex<Option<std::thread::ThreadId>>>, Sender<()>);
        impl Drop for Probe {
            fn drop(&mut self) {
                *self.0.lock().unwrap() = Some(std::thread::current().id());
                let _ = self.1.send(());
            }
        }
        let seen = Arc::new(Mutex::new(None));
        let (tx, rx) = mpsc::channel();
        reap(Probe(seen.clone(), tx));
        rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
        let by = seen.lock().unwrap().unwrap();
        assert_ne!(by, std::thread::current().id());
    }
}
