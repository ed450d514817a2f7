//! A waiter's polling phase, before it sleeps: it gives its CPU away with `sched_yield` a
//! bounded number of times, watching the lock word in between, unless its recent waits on
//! that mutex all ended asleep anyway.

use super::clock;
use super::lifeline::Lifeline;
use crate::protocol::{LockWord, Owner};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How many times a waiter gives up its CPU (`sched_yield`), watching the lock word in
/// between, before it goes to sleep in the kernel. About 11 µs on an idle core here (a
/// yield costs 170 ns), longer when other threads want the CPU: they run meanwhile.
const YIELDS: u32 = 64;
/// The longest a waiter polls before it sleeps, however many yields are left: on a busy
/// machine one yield can last a whole time slice of another thread.
const POLL_LIMIT: Duration = Duration::from_micros(200);
/// After this many waits in a row on one mutex ended asleep, a process stops polling on it
/// (the mutex is held long: polling only burns CPU, and a busier waiter is woken later after
/// an owner's death, see bench/README.md "Abandonment")...
pub(super) const ASLEEP_STREAK: u32 = 8;
/// ...except on every this many-th wait, which polls to find out whether that has changed.
const PROBE_EVERY: u32 = 16;

/// A waiter's polling phase: at most [`YIELDS`] yields and [`POLL_LIMIT`] in all, over
/// however many looks at the mutex.
pub(super) struct Polling {
    yields: u32,
    until: Option<rustix::time::Timespec>,
}

impl Polling {
    /// The polling of a wait on a mutex whose last `asleep_streak` waits here ended asleep:
    /// none, once that streak is long, apart from a probe now and then. (Under contention
    /// almost every wait ends while polling: of the 16.4 million waits that reached this
    /// path in one counted run of bench/ scenario 4, 933 ended asleep.)
    pub(super) fn for_mutex(asleep_streak: u32) -> Polling {
        let skip = asleep_streak >= ASLEEP_STREAK && asleep_streak % PROBE_EVERY != 0;
        Polling {
            yields: if skip { YIELDS } else { 0 },
            until: None,
        }
    }

    /// Gives the CPU away (`sched_yield`) while `word` still holds `cur` and the owner's
    /// lifeline says it lives, for what is left of the budget; true when something changed
    /// or `expired` says the caller's deadline passed, false when the budget ran out.
    ///
    /// Why yield rather than spin with `pause`: measured with bench/ (scenario 4,
    /// bench/README.md), a waiter that spins on the CPU takes the lock the moment its owner
    /// releases it, so the lock and the data it guards move between cores on every
    /// acquisition, and with more contenders than cores a spinner also holds a CPU that the
    /// owner, preempted, may need. A yield returns at once on an idle core (so a lone waiter
    /// still sees a release within about 200 ns, two orders of magnitude sooner than a futex
    /// wake-up), and otherwise lets the others run. Replacing four 100-pause spins and four
    /// yields with 64 yields raised throughput at 4 processes on 2 cores from 2.3 to 2.7 M/s,
    /// and at 8 from 2.4 to 3.1–3.3 M/s.
    pub(super) fn until_change(
        &mut self,
        word: &AtomicU64,
        cur: LockWord,
        owner: Owner<Lifeline>,
        expired: impl Fn() -> bool,
    ) -> bool {
        let until = *self
            .until
            .get_or_insert_with(|| clock::deadline_after(Some(POLL_LIMIT)).unwrap_or(clock::now()));
        while self.yields < YIELDS {
            self.yields += 1;
            std::thread::yield_now();
            super::fault::polled_once();
            if word.load(Ordering::Relaxed) != cur.bits() || expired() {
                return true;
            }
            if let Owner::Alive { lifeline, value } = owner {
                if lifeline.changed_from(value) {
                    return true; // the owner died: take the mutex now, not after a sleep
                }
            }
            if !clock::is_before(clock::now(), until) {
                self.yields = YIELDS;
            }
        }
        false
    }
}
