//! Cancelling a process-owned wait from another thread (a dropped async wait): a flag the
//! waiting thread reads between wait slices, and a cancel request sent at its session while,
//! and only while, a wait statement runs.
//!
//! Why a request can fail nothing but the wait: the server answers a cancel request by
//! signalling the backend (twice: its pid, then its process group), and whatever statement
//! the backend runs when a signal lands fails with `canceling statement due to user
//! request`, which the server logs as an ERROR. `wait_granted` answers a cancel that
//! reaches its lock wait (functions.sql). So the request must land inside that wait:
//! - **not before it:** the request is sent [`CancelSignal`]'s settle time after the wait
//!   statement was, so the backend has entered the function's handler by then; a wait that
//!   ends sooner calls the request off;
//! - **not after it:** the wait's end waits until a request under way has been sent, and
//!   once one was, the session sends nothing more: the server acts on a request when it
//!   reads it, which may be after `cancel_query` returned, so it could still fail the
//!   statement after the wait (a claim). A wait granted then is given up with its session
//!   (`Session::acquire`); nobody wants it, since the request goes only for a dropped wait.
//!   A backend that is signalled while it reads its next command, or idle, drops the cancel
//!   (postgres.c, `ProcessInterrupts`).
//! - **not as it ends:** a wait is often dropped just as it is granted: the owner's release
//!   wakes both the wait and whatever drops it (a `select!` whose other branch the same
//!   release completed, say). A request sent then can land after `wait_granted` returned
//!   and before its statement ended, and fail that statement (an ERROR in the server's log;
//!   `session::a_wait_dropped_as_it_is_granted_leaves_no_error_in_the_log` got 6 in 450
//!   rounds without this). So even a wait that began long ago gets its request [`GRACE`]
//!   after the drop at the earliest: a wait being granted answers within it, and its end
//!   calls the request off.
//! - **not after its second signal:** the handler that caught the first signal waits for
//!   the second before the function returns (functions.sql revision 8).
//!
//! What is left: a wait granted more than [`GRACE`] after its drop, with the request then
//! landing in its statement's last microseconds, still logs that ERROR.

use super::session::WaitControl;
use crate::sys::CancelSignal;
use crate::sys::contract::Result;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long after a wait statement was sent a cancel request may be: the time the server
/// takes to reach the function's handler, with a wide margin for a loaded machine.
const SETTLE: Duration = Duration::from_millis(50);

/// How long after the drop a cancel request may be, however long the wait has run: the
/// time a wait granted at the moment of its drop takes to answer (a round trip and the
/// statement's end), with a wide margin. A dropped wait holds its place in the server's
/// queue that much longer; nobody waits for it on the client.
const GRACE: Duration = Duration::from_millis(20);

/// Sends a cancel request at the waiting session's backend.
type Send = Box<dyn FnOnce() + std::marker::Send>;

/// Cancels a blocked process-owned acquisition.
pub(crate) struct PgCancel {
    fired: AtomicBool,
    settle: Duration,
    grace: Duration,
    state: Mutex<CancelState>,
}

/// What a cancel can reach, under one lock.
#[derive(Default)]
struct CancelState {
    /// How to send a cancel request at the session that waits (set by [`PgCancel::arm`]).
    send: Option<Send>,
    /// When the wait statement that runs now was sent; `None` when none runs.
    waiting_since: Option<Instant>,
    /// The thread that sends a request, and the channel whose closing calls it off.
    sender: Option<(JoinHandle<bool>, mpsc::Sender<()>)>,
    /// A cancel request was sent.
    sent: bool,
}

impl PgCancel {
    fn with_times(settle: Duration, grace: Duration) -> PgCancel {
        PgCancel {
            fired: AtomicBool::new(false),
            settle,
            grace,
            state: Mutex::new(CancelState::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, CancelState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An acquisition waits through a session: `send` cancels its running statement.
    pub(super) fn arm(&self, send: impl FnOnce() + std::marker::Send + 'static) {
        self.state().send = Some(Box::new(send));
    }

    /// The acquisition is over: nothing may be sent at its session any more.
    pub(super) fn disarm(&self) {
        self.end_wait();
        self.state().send = None;
    }
}

impl CancelSignal for PgCancel {
    fn new() -> Result<PgCancel> {
        Ok(PgCancel::with_times(SETTLE, GRACE))
    }

    fn fire(&self) {
        self.fired.store(true, Ordering::SeqCst);
        let mut state = self.state();
        // Between wait statements: the waiting thread sees `fired` before the next.
        let Some(since) = state.waiting_since else {
            return;
        };
        let Some(send) = state.send.take() else {
            return;
        };
        let settle = (since + self.settle)
            .saturating_duration_since(Instant::now())
            .max(self.grace);
        let (stop, stopped) = mpsc::channel::<()>();
        // Cancelling connects to the server: never on the caller's (an executor's) thread.
        // Without a thread, the wait ends at its next slice.
        let started = std::thread::Builder::new()
            .name("namedmutex-cancel".into())
            .spawn(move || match stopped.recv_timeout(settle) {
                Err(RecvTimeoutError::Timeout) => {
                    send();
                    true
                }
                _ => false,
            });
        if let Ok(handle) = started {
            state.sender = Some((handle, stop));
        }
    }
}

impl WaitControl for PgCancel {
    fn cancelled(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }

    fn request_sent(&self) -> bool {
        self.state().sent
    }

    fn begin_wait(&self) -> bool {
        let mut state = self.state();
        // Under the lock `fire` takes after setting `fired`: either it is seen here, or
        // `fire` sees the wait and sends the cancel.
        if self.fired.load(Ordering::SeqCst) {
            return false;
        }
        state.waiting_since = Some(Instant::now());
        true
    }

    fn end_wait(&self) {
        let sender = {
            let mut state = self.state();
            state.waiting_since = None;
            state.sender.take()
        };
        if let Some((handle, stop)) = sender {
            // Calls off a request still settling; waits for one under way (bounded by the
            // connect timeout) before the session sends its next statement.
            drop(stop);
            if handle.join().unwrap_or(true) {
                self.state().sent = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    /// A signal whose requests are counted instead of sent.
    fn counted(settle: Duration, grace: Duration) -> (PgCancel, Arc<AtomicUsize>) {
        let cancel = PgCancel::with_times(settle, grace);
        let sent = Arc::new(AtomicUsize::new(0));
        let count = sent.clone();
        cancel.arm(move || {
            count.fetch_add(1, Ordering::SeqCst);
        });
        (cancel, sent)
    }

    #[test]
    fn a_fire_outside_a_wait_sends_nothing() {
        let (cancel, sent) = counted(Duration::ZERO, Duration::ZERO);
        cancel.fire();
        assert!(cancel.cancelled());
        assert!(!cancel.begin_wait(), "a fired signal starts no wait");
        cancel.disarm();
        assert!(!cancel.request_sent());
        assert_eq!(sent.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_request_under_way_is_sent_before_the_wait_ends() {
        let cancel = PgCancel::with_times(Duration::ZERO, Duration::ZERO);
        let (started, sent) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicUsize::new(0)),
        );
        let (s, n) = (started.clone(), sent.clone());
        cancel.arm(move || {
            s.store(true, Ordering::SeqCst);
            // A slow server: the wait's end must wait for this.
            std::thread::sleep(Duration::from_millis(200));
            n.fetch_add(1, Ordering::SeqCst);
        });
        assert!(cancel.begin_wait());
        cancel.fire();
        cancel.fire();
        let limit = Instant::now() + Duration::from_secs(60);
        while !started.load(Ordering::SeqCst) && Instant::now() < limit {
            std::thread::yield_now();
        }
        assert!(started.load(Ordering::SeqCst), "no request within a minute");
        cancel.end_wait();
        assert_eq!(
            sent.load(Ordering::SeqCst),
            1,
            "end_wait returned before the request was sent"
        );
        cancel.disarm();
        assert!(cancel.request_sent());
    }

    /// A wait that ends while its request waits (`settle` or `grace` long): the end calls
    /// the request off at once.
    fn called_off(settle: Duration, grace: Duration) {
        let (cancel, sent) = counted(settle, grace);
        assert!(cancel.begin_wait());
        cancel.fire();
        // The wait's answer arrives.
        let ended = Instant::now();
        cancel.end_wait();
        assert!(
            ended.elapsed() < Duration::from_secs(60),
            "end_wait waited out the request's delay"
        );
        cancel.disarm();
        assert!(!cancel.request_sent());
        assert_eq!(sent.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_wait_that_ends_while_the_request_settles_calls_it_off() {
        called_off(Duration::from_secs(3600), Duration::ZERO);
    }

    #[test]
    fn a_wait_granted_within_the_grace_time_calls_the_request_off() {
        called_off(Duration::ZERO, Duration::from_secs(3600));
    }

    #[test]
    fn the_settle_time_counts_from_the_wait_statement() {
        let settle = Duration::from_millis(50);
        let (cancel, sent) = counted(settle, Duration::ZERO);
        let began = Instant::now();
        assert!(cancel.begin_wait());
        cancel.fire();
        let went = first_request(&sent);
        assert!(went - began >= settle, "the request did not wait to settle");
        cancel.end_wait();
        cancel.disarm();
        assert!(cancel.request_sent());
    }

    /// Waits (a minute at most) for the first request; when it went.
    fn first_request(sent: &AtomicUsize) -> Instant {
        let limit = Instant::now() + Duration::from_secs(60);
        while sent.load(Ordering::SeqCst) == 0 && Instant::now() < limit {
            std::thread::yield_now();
        }
        assert_eq!(sent.load(Ordering::SeqCst), 1, "no request within a minute");
        Instant::now()
    }

    #[test]
    fn a_long_wait_gets_its_request_a_grace_time_after_the_drop() {
        let grace = Duration::from_millis(50);
        // No settle time left: the wait began long ago.
        let (cancel, sent) = counted(Duration::ZERO, grace);
        assert!(cancel.begin_wait());
        let fired = Instant::now();
        cancel.fire();
        let went = first_request(&sent);
        assert!(
            went - fired >= grace,
            "the request went {:?} after the drop, before the grace time",
            went - fired
        );
        cancel.end_wait();
        cancel.disarm();
        assert!(cancel.request_sent());
    }
}
