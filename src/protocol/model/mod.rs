//! Model tests of the lock protocol with loom: a [`Host`] made of loom atomics, a modelled
//! futex and modelled thread deaths, and tests that run every interleaving of a few threads
//! (bounded by a preemption bound) through the real protocol code.
//!
//! - **The futex** ([`World::sleep`], [`World::wake`]) is exact: a sleeper checks its words
//!   and registers under one lock, a waker marks up to `n` registered sleepers of a word as
//!   woken; nothing wakes spuriously and sleeps have no backstop, so a lost wake-up leaves a
//!   thread asleep forever, which loom reports as a deadlock.
//! - **Death**: a thread told to die at a crash point (`Host::crash_point`) unwinds from
//!   there; the harness then does what the kernel does with a dead thread's robust list: it
//!   marks the thread's lifeline dead and wakes one watcher. Its token stays in any lock word
//!   it held, as in shared memory.
//! - **The backstop**: in production a sleep lasts at most 250 ms, because one wake-up can
//!   be lost for good: the one a woken sleeper was passing on when it was killed. The model
//!   has no clock; it fires the backstop at each death instead (every sleeper looks again).
//!   A wake-up lost without a death still leaves a sleeper asleep: a deadlock.
//! - **Biased locking**: `membarrier` is modelled as a `SeqCst` fence on both sides (the
//!   light side is a compiler fence in production; what makes that sound on real hardware is
//!   FORMAT.md's argument, not this model).
//! - **Clock**: waits are either unbounded or polls (a zero timeout); the model has no time.
//!
//! Each test states which line of the protocol it guards; the closing note of the session
//! that added them lists the mutations each one caught.

mod tests;

pub(super) use super::emulated::token;
use super::emulated::{self, Key, Queue, WOKEN_OTHERWISE};
use super::host::{Host, Owner, Wake, Watch};
use super::lock_word::LockWord;
use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
use loom::sync::{Arc, Condvar, Mutex};
use std::cell::Cell;
use std::time::Duration;

/// The most threads a model has (loom's own limit is 5 including the main thread).
const THREADS: usize = 4;

/// What the mutexes of one model share: the futex, the threads' lifelines, the barrier mode.
pub(super) struct World {
    futex: Mutex<Queue>,
    woke: Condvar,
    /// Per model thread: 0 while it lives, 1 once it died (what the kernel writes).
    lifelines: Vec<AtomicU32>,
    may_bias: bool,
}

impl World {
    pub(super) fn new(may_bias: bool) -> Arc<World> {
        Arc::new(World {
            futex: Mutex::new(Queue::default()),
            woke: Condvar::new(),
            lifelines: (0..THREADS).map(|_| AtomicU32::new(0)).collect(),
            may_bias,
        })
    }

    /// Wakes up to `n` sleepers registered on `key` (oldest first), as `FUTEX_WAKE` does.
    fn wake(&self, key: Key, n: u32) {
        if self.futex.lock().unwrap().wake(key, n) {
            self.woke.notify_all();
        }
    }

    /// The kernel's part of a thread's death: its lifeline changes, one watcher is woken.
    /// Then the backstop (see the module's notes): every sleeper looks again.
    fn die(&self, thread: usize) {
        self.lifelines[thread].store(1, Ordering::SeqCst);
        self.wake(Key::Lifeline(thread), 1);
        self.futex.lock().unwrap().wake_everyone();
        self.woke.notify_all();
    }
}

/// One mutex object of the model.
pub(super) struct ModelMutex {
    id: usize,
    world: Arc<World>,
    word: AtomicU64,
    count: AtomicU32,
    sleepers: AtomicU32,
    fresh: AtomicU32,
    bias_depth: AtomicU32,
    /// How many times an acquirer recorded an abandonment (minus the ones taken back).
    pub(super) recorded: AtomicU32,
}

impl ModelMutex {
    /// A fresh mutex (`BIASABLE`, as a new object starts).
    pub(super) fn new(world: &Arc<World>, id: usize) -> ModelMutex {
        ModelMutex::with_word(world, id, LockWord::BIASABLE)
    }

    /// A mutex whose lock word starts as `word` (for a dead owner's: see [`dead_owner`]).
    pub(super) fn with_word(world: &Arc<World>, id: usize, word: LockWord) -> ModelMutex {
        ModelMutex {
            id,
            world: world.clone(),
            word: AtomicU64::new(word.bits()),
            count: AtomicU32::new(u32::from(!word.is_free())),
            sleepers: AtomicU32::new(0),
            fresh: AtomicU32::new(0),
            bias_depth: AtomicU32::new(0),
            recorded: AtomicU32::new(0),
        }
    }
}

/// Model thread `thread` has died (before the model's threads start): the word of a mutex
/// it held.
pub(super) fn dead_owner(world: &World, thread: usize) -> LockWord {
    world.lifelines[thread].store(1, Ordering::SeqCst);
    LockWord::owned_by(token(thread))
}

loom::thread_local! {
    /// The crash point at which the current model thread dies, if any.
    static DIE_AT: Cell<Option<&'static str>> = Cell::new(None);
}

/// The payload of the unwinding that models a thread's death.
struct Died;

/// Runs `body` as model thread `thread`, which dies at the crash point `die_at` (if the body
/// reaches it) or, with `die_after`, once the body is done: the kernel then does its part.
/// Returns what the body returned, or `None` if the thread died inside it.
pub(super) fn run_thread<T>(
    world: &Arc<World>,
    thread: usize,
    die_at: Option<&'static str>,
    die_after: bool,
    body: impl FnOnce() -> T,
) -> Option<T> {
    DIE_AT.with(|d| d.set(die_at));
    MAY_BIAS.with(|b| b.set(world.may_bias));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
    DIE_AT.with(|d| d.set(None));
    let out = match result {
        Ok(v) => Some(v),
        Err(payload) if payload.is::<Died>() => None,
        Err(payload) => std::panic::resume_unwind(payload),
    };
    if out.is_none() || die_after {
        world.die(thread);
    }
    out
}

impl Host for ModelMutex {
    type U32 = AtomicU32;
    type U64 = AtomicU64;
    type Lifeline = usize;
    type Deadline = ();
    type Polling = ();

    emulated::test_host_words!(AtomicU32, AtomicU64);

    fn sleep(watches: &[Watch<'_, ModelMutex>], until: Option<()>) -> Wake {
        assert!(
            until.is_none(),
            "the model has no clock: waits are unbounded or polls"
        );
        let world = &emulated::first_mutex(watches).world;
        let mut queue = world.futex.lock().unwrap();
        let lifeline = |t: usize| world.lifelines[t].load(Ordering::SeqCst);
        let Some(id) = queue.register_if_unchanged(watches, |m| m.id, lifeline) else {
            return Wake::Retry; // EAGAIN: a word changed before we slept
        };
        loop {
            match queue.take_woken(id) {
                Some(WOKEN_OTHERWISE) => return Wake::TimedOut, // the backstop
                Some(k) => return Wake::Word(k),
                None => queue = world.woke.wait(queue).unwrap(),
            }
        }
    }
    fn deadline_after(timeout: Option<Duration>) -> Option<()> {
        match timeout {
            None => None,
            Some(Duration::ZERO) => Some(()),
            Some(_) => unreachable!("the model has no clock: waits are unbounded or polls"),
        }
    }
    fn passed(_: ()) -> bool {
        true
    }
    fn sleep_until(deadline: Option<()>) -> Option<()> {
        deadline // no backstop: a lost wake-up must show as a deadlock
    }
    fn poll(&self, _: &mut (), _: LockWord, _: Owner<usize>, _: impl Fn() -> bool) -> bool {
        false // polling only delays a sleep; loom explores the delays anyway
    }

    fn crash_point(name: &'static str) {
        if DIE_AT.with(|d| d.get()) == Some(name) {
            std::panic::resume_unwind(Box::new(Died)); // no panic hook: a quiet death
        }
    }
    fn stall_point(_: &'static str) {}
}

loom::thread_local! {
    /// Whether the current model thread may take a bias (its process "registered").
    static MAY_BIAS: Cell<bool> = Cell::new(false);
}
