//! The gate: one task of this process at a time per mutex object, first come first served.
//!
//! Tasks that must wait queue here in order and are handed the gate directly, so none
//! starves, and each object has at most one helper thread of this process waiting for it.
//! Where the backend's process-owned acquisitions do not exclude each other by themselves
//! (`Backend::detached_is_exclusive`), the gate is also what keeps two tasks out of each
//! other's critical sections, and every acquisition goes through it: one compare-and-swap
//! to enter and one to leave. Where they do (the shared-memory backends), a task that finds
//! the gate free takes the lock beside it, so only waiting costs the gate anything; once a
//! task waits in the gate, newcomers queue behind it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;

const FREE: u8 = 0;
const HELD: u8 = 1;
/// Held, and the queue may be non-empty: leaving must look at it.
const HELD_QUEUED: u8 = 2;

/// One object's gate in this process.
#[derive(Default)]
pub(crate) struct Gate {
    state: AtomicU8,
    queue: Mutex<VecDeque<Arc<Ticket>>>,
}

/// A queued task's place: granted when the gate is handed to it.
pub(crate) struct Ticket {
    granted: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

/// The outcome of [`Gate::enter_or_queue`].
pub(crate) enum Entry {
    Entered,
    Queued(Arc<Ticket>),
}

impl Gate {
    /// Whether no task is in the gate or queued at it (a plain load: a hint).
    #[inline]
    pub(crate) fn is_free(&self) -> bool {
        self.state.load(Ordering::Relaxed) == FREE
    }

    /// Enters if the gate is free (nobody holds it or waits for it).
    #[inline]
    pub(crate) fn try_enter(&self) -> bool {
        self.state
            .compare_exchange(FREE, HELD, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Enters, or joins the end of the queue with `waker`.
    pub(crate) fn enter_or_queue(&self, waker: &Waker) -> Entry {
        let mut queue = self.lock_queue();
        loop {
            let cur = self.state.load(Ordering::Acquire);
            let next = match cur {
                FREE => HELD,
                _ => HELD_QUEUED,
            };
            if cur != next
                && self
                    .state
                    .compare_exchange(cur, next, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
            {
                continue;
            }
            if cur == FREE {
                return Entry::Entered;
            }
            let ticket = Arc::new(Ticket {
                granted: AtomicBool::new(false),
                waker: Mutex::new(Some(waker.clone())),
            });
            queue.push_back(ticket.clone());
            return Entry::Queued(ticket);
        }
    }

    /// Leaves the gate, handing it to the first queued task if there is one.
    #[inline]
    pub(crate) fn leave(&self) {
        if self
            .state
            .compare_exchange(HELD, FREE, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            self.hand_over();
        }
    }

    #[cold]
    fn hand_over(&self) {
        // Only enqueuers (under the queue's lock) change the state while it is held.
        let mut queue = self.lock_queue();
        match queue.pop_front() {
            Some(next) => {
                if queue.is_empty() {
                    self.state.store(HELD, Ordering::Release);
                }
                next.granted.store(true, Ordering::Release);
                let waker = next.waker.lock().unwrap_or_else(|e| e.into_inner()).take();
                drop(queue);
                if let Some(waker) = waker {
                    waker.wake();
                }
            }
            None => self.state.store(FREE, Ordering::Release),
        }
    }

    /// Gives up a place in the queue; if the gate was handed to it meanwhile, passes it on.
    pub(crate) fn leave_queue(&self, ticket: &Arc<Ticket>) {
        let mut queue = self.lock_queue();
        if ticket.granted.load(Ordering::Acquire) {
            drop(queue);
            self.leave();
        } else {
            queue.retain(|t| !Arc::ptr_eq(t, ticket));
        }
    }

    fn lock_queue(&self) -> MutexGuard<'_, VecDeque<Arc<Ticket>>> {
        // The queue is left consistent at every point where a panic could unwind.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Ticket {
    /// Whether the gate was handed to this ticket; otherwise `waker` is the one to wake.
    pub(crate) fn granted_or_wait(&self, waker: &Waker) -> bool {
        if self.granted.load(Ordering::Acquire) {
            return true;
        }
        let mut slot = self.waker.lock().unwrap_or_else(|e| e.into_inner());
        // Checked again under the waker's lock: a hand-over takes the waker after granting.
        if self.granted.load(Ordering::Acquire) {
            return true;
        }
        match slot.as_mut() {
            Some(w) if w.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    #[test]
    fn queued_tasks_get_the_gate_in_order_and_cancelled_ones_pass_it_on() {
        let gate = Gate::default();
        let waker = Waker::noop();
        assert!(gate.try_enter());
        assert!(!gate.try_enter());
        let Entry::Queued(first) = gate.enter_or_queue(waker) else {
            panic!("entered a held gate")
        };
        let Entry::Queued(second) = gate.enter_or_queue(waker) else {
            panic!("entered a held gate")
        };
        let Entry::Queued(third) = gate.enter_or_queue(waker) else {
            panic!("entered a held gate")
        };
        gate.leave_queue(&second); // cancelled before its turn
        gate.leave();
        assert!(first.granted_or_wait(waker));
        assert!(!third.granted_or_wait(waker));
        gate.leave_queue(&first); // cancelled after being granted: passes it on
        assert!(third.granted_or_wait(waker));
        assert!(!gate.try_enter());
        gate.leave();
        assert!(gate.try_enter(), "the gate is free after the last one left");
        gate.leave();
    }
}
