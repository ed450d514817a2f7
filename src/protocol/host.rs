//! What the protocol needs from a platform, for one mutex object: its shared words, the
//! liveness of an owner, sleeping and waking, barriers, a clock, and where to keep records.
//!
//! The Linux backend implements [`Host`] for its mapped object (futex and `futex_waitv`,
//! robust-futex lifelines, `membarrier`, `CLOCK_MONOTONIC`); the model tests implement it with
//! loom atomics and a modelled futex (`model/`). Every method is cheap and must not block,
//! apart from [`Host::sleep`].

use super::atomic::{Atomic32, Atomic64};
use super::lock_word::LockWord;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The owner a lock word names, as far as this process can tell.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Owner<L> {
    /// It died (or the word names nobody): its mutex may be taken, as abandoned.
    Dead,
    /// It lives; `lifeline` stops holding `value` when it dies, and a sleeper watching it is
    /// woken then.
    Alive { lifeline: L, value: u32 },
    /// Its liveness cannot be read: treated as alive, and sleeps are bounded.
    Unknown,
}

/// One word a sleep watches.
pub(crate) enum Watch<'a, H: Host> {
    /// A mutex's lock word, expected to hold this futex value (its low half).
    Mutex(&'a H, u32),
    /// An owner's lifeline, expected to hold this value (where the platform sleeps on it).
    Lifeline(
        H::Lifeline,
        #[cfg_attr(
            any(not(target_os = "linux"), feature = "portable-backend"),
            allow(dead_code)
        )]
        u32,
    ),
    /// A word that stops the wait when it becomes non-zero (a cancelled async acquisition).
    Cancel(&'a H::U32),
}

impl<H: Host> Clone for Watch<'_, H> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<H: Host> Copy for Watch<'_, H> {}

/// How a sleep ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Woken through the watched word at this index.
    Word(usize),
    /// The deadline passed.
    TimedOut,
    /// A word no longer held its expected value, a signal arrived, or a bounded slice
    /// ended: look at the state and decide again.
    Retry,
}

/// One mutex object on one platform.
pub(crate) trait Host: Sized {
    /// The platform's 32-bit atomic (in shared memory).
    type U32: Atomic32;
    /// The platform's 64-bit atomic (in shared memory).
    type U64: Atomic64;
    /// What a sleeper watches to learn of an owner's death (equal: the same word).
    type Lifeline: Copy + PartialEq;
    /// An absolute point on a monotonic clock.
    type Deadline: Copy;
    /// What a waiter's polling phase remembers between looks.
    type Polling;

    // ----- the shared words (FORMAT.md) -----

    /// The lock word (`LockWord`).
    fn lock_word(&self) -> &Self::U64;
    /// The recursion count, written only by the owner.
    fn count(&self) -> &Self::U32;
    /// How many threads sleep in a wait on this mutex (approximate after crashes: high).
    fn sleepers(&self) -> &Self::U32;
    /// 1 while the mutex has been neither biased nor contended; written only by the owner.
    fn fresh(&self) -> &Self::U32;
    /// The biased thread's recursion count; written only by that thread.
    fn bias_depth(&self) -> &Self::U32;
    /// Orders the objects of a wait-all; equal keys are the same object.
    fn order_key(&self) -> (u64, u64);

    /// Loads the lock word.
    #[inline(always)]
    fn load_word(&self, order: Ordering) -> LockWord {
        LockWord::from_bits(self.lock_word().load(order))
    }
    /// Compare-and-swap on the lock word; `Err` carries the word found.
    #[inline(always)]
    fn cas_word(
        &self,
        current: LockWord,
        new: LockWord,
        success: Ordering,
        failure: Ordering,
    ) -> Result<(), LockWord> {
        self.lock_word()
            .compare_exchange(current.bits(), new.bits(), success, failure)
            .map(|_| ())
            .map_err(LockWord::from_bits)
    }
    /// Swaps the lock word.
    #[inline(always)]
    fn swap_word(&self, new: LockWord, order: Ordering) -> LockWord {
        LockWord::from_bits(self.lock_word().swap(new.bits(), order))
    }

    // ----- liveness -----

    /// Who owns `word` (which is neither free nor our own).
    fn owner(&self, word: LockWord) -> Owner<Self::Lifeline>;

    // ----- sleeping and waking -----

    /// Wakes up to `n` threads sleeping on this mutex's lock word, in any process.
    fn wake(&self, n: u32);
    /// Wakes every thread watching `lifeline` (its owner died and the kernel woke one).
    fn wake_watchers(&self, lifeline: Self::Lifeline);
    /// Sleeps until a watched word stops holding its value and is woken, or `until`.
    /// `watches` is never empty, and its first entry is a [`Watch::Mutex`].
    fn sleep(watches: &[Watch<'_, Self>], until: Option<Self::Deadline>) -> Wake;
    /// The deadline `timeout` from now (`None`: none).
    fn deadline_after(timeout: Option<Duration>) -> Option<Self::Deadline>;
    /// Whether `deadline` has passed.
    fn passed(deadline: Self::Deadline) -> bool;
    /// The deadline of one sleep: `deadline`, or sooner where the platform bounds sleeps
    /// (a backstop against wake-ups no one can send, such as a waker killed mid-hand-off).
    fn sleep_until(deadline: Option<Self::Deadline>) -> Option<Self::Deadline>;
    /// Starts a waiter's polling phase.
    fn start_polling(&self) -> Self::Polling;
    /// Polls (yields, spins) while the lock word holds `cur` and `owner` lives; true when
    /// something changed or `expired` says so, false when polling is over: sleep.
    fn poll(
        &self,
        polling: &mut Self::Polling,
        cur: LockWord,
        owner: Owner<Self::Lifeline>,
        expired: impl Fn() -> bool,
    ) -> bool;
    /// Notes how a wait ended (asleep or not), for later waits' polling.
    fn finish_wait(&self, slept: bool);

    // ----- biased locking -----

    /// Whether this process may take a bias (its heavy barrier is ready).
    fn bias_allowed() -> bool;
    /// The biased thread's side of the asymmetric barrier: orders its depth store before its
    /// re-read of the lock word, given a [`Host::heavy_barrier`] on the other side.
    fn light_barrier();
    /// The revoker's side: when it returns, every thread that may hold a bias has executed
    /// a full barrier.
    fn heavy_barrier();

    // ----- records (diagnostics; never used to decide anything) -----

    /// The calling thread took the mutex from `dead` (a dead owner's word, or `ABANDONED`).
    fn record_abandonment(&self, dead: LockWord);
    /// Takes back [`Host::record_abandonment`] (a wait-all gave the mutex back).
    fn unrecord_abandonment(&self);
    /// The mutex was just acquired at its first level: note the time, where kept.
    fn note_acquired(&self);
    /// The owner is about to release its last level: forget the acquisition time.
    fn clear_acquired(&self);

    /// A crash point for fault injection: a process told to die here dies here.
    fn crash_point(name: &'static str);
    /// A stall point for fault injection: a thread told to pause here pauses (to widen a
    /// race window in tests of whole processes).
    fn stall_point(name: &'static str);
}
