//! The owning session of a process's first acquisition, connected ahead of need.
//!
//! A process's first acquisition on a server needs two connections: the handle session
//! (open or create, `handles.rs`) and the session that owns the lock (`session.rs`). Made one
//! after the other, their round trips add up: far from the server, most of what a command
//! such as `namedmutex run NAME -- true` waits for. So when a process first opens (or
//! creates) a mutex on a server, the owning session is connected at the same time as the
//! handle session, on a thread of its own, and the first thread that needs a session (its
//! own, or one for a process-owned acquisition) takes it, waiting for it if it is not made
//! yet, instead of connecting. Looking without opening (list, info, prune) connects nothing
//! ahead.
//!
//! A process that opens and does not acquire pays one connection more, for [`UNUSED_FOR`]
//! at the most: the thread that connected the session waits that long for a taker, then
//! ends it (an acquisition after that connects, as it would have without this). At exit,
//! one still waiting is ended with the others (`at_exit.rs`).
//!
//! Only the first open of a process on a server does this: later owning sessions (other
//! threads', or after a server restart) connect when they are needed. A forked child never
//! takes its parent's (the thread that connects it does not exist there).

use super::server::Server;
use super::session::Session;
use std::collections::HashSet;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a session connected ahead waits for a taker before it is ended. A program's
/// first acquisition follows its first open within milliseconds, or waits for something
/// else (work, a timer, a user): then the connection would sit idle on the server.
pub(super) const UNUSED_FOR: Duration = Duration::from_secs(5);

/// One session connected ahead: put there by the thread that connects it, taken from there
/// by the first acquisition (or by the exit, or by that thread once it waited long enough).
/// Generic so that its hand-over is tested without a server (below).
struct Slot<T> {
    stage: Mutex<Stage<T>>,
    changed: Condvar,
}

enum Stage<T> {
    /// Being made.
    Connecting,
    /// Made, waiting for a taker.
    Ready(Box<T>),
    /// Taken, failed, ended unused, or ended at exit.
    Gone,
}

impl<T> Slot<T> {
    fn new() -> Slot<T> {
        Slot {
            stage: Mutex::new(Stage::Connecting),
            changed: Condvar::new(),
        }
    }

    fn stage(&self) -> MutexGuard<'_, Stage<T>> {
        self.stage.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The value, once it is made (waiting for that, bounded by the connection's own
    /// timeouts), if nobody took it and it did not fail.
    fn take(&self) -> Option<T> {
        let mut stage = self.stage();
        while matches!(*stage, Stage::Connecting) {
            stage = self.changed.wait(stage).unwrap_or_else(|p| p.into_inner());
        }
        let taken = std::mem::replace(&mut *stage, Stage::Gone);
        // The offering thread stops waiting for a taker.
        self.changed.notify_all();
        match taken {
            Stage::Ready(value) => Some(*value),
            _ => None,
        }
    }

    /// The connecting thread's work: makes the value, offers it for `unused_for`, and drops
    /// it if nobody took it by then.
    fn make_and_offer(&self, make: impl FnOnce() -> Option<T>, unused_for: Duration) {
        // A panic must not leave the slot `Connecting`: a taker would wait for it forever.
        let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(make))
            .ok()
            .flatten();
        let mut stage = self.stage();
        *stage = match made {
            Some(value) => Stage::Ready(Box::new(value)),
            // The acquisition connects itself, and meets the failure itself.
            None => Stage::Gone,
        };
        self.changed.notify_all();
        let until = Instant::now() + unused_for;
        while matches!(*stage, Stage::Ready(_)) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            stage = self
                .changed
                .wait_timeout(stage, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        let unused = std::mem::replace(&mut *stage, Stage::Gone);
        drop(stage);
        // Dropped (a session: ended with Terminate) outside the lock: a taker arriving now
        // finds it gone and connects.
        drop(unused);
    }
}

/// A session connected ahead for `key` by process `pid`, not taken yet.
struct Ahead {
    key: Arc<str>,
    pid: u32,
    slot: Arc<Slot<Session>>,
}

/// What was started and not taken yet, and the servers this process has started one for.
struct State {
    pending: Vec<Ahead>,
    started: HashSet<Arc<str>>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

fn state() -> MutexGuard<'static, Option<State>> {
    STATE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts connecting an owning session to `server`, once per process and server: the
/// process opens a mutex there.
pub(super) fn start(server: &Server) {
    let mut guard = state();
    let state = guard.get_or_insert_with(|| State {
        pending: Vec::new(),
        started: HashSet::new(),
    });
    if !state.started.insert(server.key.clone()) {
        return;
    }
    let slot = Arc::new(Slot::new());
    let (for_it, offered) = (server.clone(), slot.clone());
    // Without a thread, the first acquisition connects as it would have.
    if std::thread::Builder::new()
        .name("namedmutex-pg-ahead".into())
        .spawn(move || offered.make_and_offer(|| Session::connect(&for_it).ok(), UNUSED_FOR))
        .is_ok()
    {
        super::at_exit::end_sessions_at_exit();
        state.pending.push(Ahead {
            key: server.key.clone(),
            pid: std::process::id(),
            slot,
        });
    }
}

/// The session connected ahead to `server`, for the calling thread, if one was started and
/// not taken (waiting for its connection to finish); `None` if there is none, it failed, or
/// it was ended unused (the caller connects).
pub(super) fn take(server: &Server) -> Option<Session> {
    let ahead = {
        let mut guard = state();
        let pending = &mut guard.as_mut()?.pending;
        let at = pending
            .iter()
            .position(|a| a.key == server.key && a.pid == std::process::id())?;
        pending.swap_remove(at)
    };
    ahead
        .slot
        .take()
        .filter(Session::usable)
        .map(Session::adopted)
}

/// Takes what was connected ahead and not taken, to end it (at this process's exit:
/// `at_exit.rs`); each waits for its connection, if it is still being made, where it is
/// dropped. A forked child's are the parent's: forgotten.
pub(super) fn take_all() -> Vec<Box<dyn Send>> {
    let Ok(mut guard) = STATE.try_lock() else {
        return Vec::new();
    };
    let Some(state) = guard.as_mut() else {
        return Vec::new();
    };
    let mine = std::process::id();
    let mut ending: Vec<Box<dyn Send>> = Vec::new();
    for ahead in state.pending.drain(..) {
        if ahead.pid == mine {
            ending.push(Box::new(Ending(ahead.slot)));
        } else {
            // Its lock may have been held by a thread of the parent when it forked.
            std::mem::forget(ahead);
        }
    }
    ending
}

/// A session connected ahead, at exit: dropped, it takes the session (waiting for its
/// connection) and ends it.
struct Ending(Arc<Slot<Session>>);

impl Drop for Ending {
    fn drop(&mut self) {
        drop(self.0.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// Bounds a step that must finish: a bug fails the test instead of hanging it.
    const BOUND: Duration = Duration::from_secs(10);

    /// Says when it is dropped.
    struct Probe(mpsc::Sender<()>);

    impl Drop for Probe {
        fn drop(&mut self) {
            let _ = self.0.send(());
        }
    }

    /// Runs `f` on a thread and waits for its answer within [`BOUND`].
    fn bounded<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(BOUND)
            .expect("did not finish within the bound")
    }

    #[test]
    fn a_taker_waits_for_the_value_being_made() {
        let slot = Arc::new(Slot::new());
        let (go, made) = mpsc::channel::<()>();
        let offering = slot.clone();
        let maker = std::thread::spawn(move || {
            offering.make_and_offer(
                || {
                    made.recv_timeout(BOUND).ok()?;
                    Some(7)
                },
                BOUND * 6,
            )
        });
        let taking = slot.clone();
        let taker = std::thread::spawn(move || taking.take());
        go.send(()).unwrap();
        assert_eq!(bounded(move || taker.join().unwrap()), Some(7));
        // Taken: the offering thread stops waiting at once, not after its minute.
        bounded(move || maker.join().unwrap());
        assert_eq!(slot.take(), None, "taken once only");
    }

    #[test]
    fn a_value_nobody_takes_is_dropped_after_its_time() {
        let slot = Arc::new(Slot::new());
        let (dropped_tx, dropped) = mpsc::channel();
        let offering = slot.clone();
        let started = Instant::now();
        std::thread::spawn(move || {
            offering.make_and_offer(|| Some(Probe(dropped_tx)), Duration::from_millis(100))
        });
        dropped
            .recv_timeout(BOUND)
            .expect("the unused value was never dropped");
        assert!(started.elapsed() >= Duration::from_millis(100));
        assert!(slot.take().is_none(), "a dropped value cannot be taken");
    }

    #[test]
    fn a_failed_or_panicking_maker_leaves_nothing_to_wait_for() {
        for panics in [false, true] {
            let slot = Arc::new(Slot::<u32>::new());
            let offering = slot.clone();
            std::thread::spawn(move || {
                offering.make_and_offer(
                    || {
                        assert!(!panics, "a maker that panics");
                        None
                    },
                    BOUND,
                )
            });
            assert_eq!(bounded(move || slot.take()), None);
        }
    }
}
