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

use super::host::{Host, Owner, Wake, Watch};
use super::lock_word::{LockWord, Token, thread_part, user_part};
use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
use loom::sync::{Arc, Condvar, Mutex};
use std::cell::Cell;
use std::time::Duration;

/// The most threads a model has (loom's own limit is 5 including the main thread).
const THREADS: usize = 4;

/// A sleeper's `woken` when the backstop ended its sleep.
const BACKSTOP: usize = usize::MAX;

/// What a sleeper watches, by identity.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Key {
    Mutex(usize),
    Lifeline(usize),
}

struct Sleeper {
    id: usize,
    keys: Vec<Key>,
    /// Set by a waker: the index of the watch it woke through.
    woken: Option<usize>,
}

struct FutexState {
    next_id: usize,
    sleepers: Vec<Sleeper>,
}

/// What the mutexes of one model share: the futex, the threads' lifelines, the barrier mode.
pub(super) struct World {
    futex: Mutex<FutexState>,
    woke: Condvar,
    /// Per model thread: 0 while it lives, 1 once it died (what the kernel writes).
    lifelines: Vec<AtomicU32>,
    may_bias: bool,
}

impl World {
    pub(super) fn new(may_bias: bool) -> Arc<World> {
        Arc::new(World {
            futex: Mutex::new(FutexState {
                next_id: 0,
                sleepers: Vec::new(),
            }),
            woke: Condvar::new(),
            lifelines: (0..THREADS).map(|_| AtomicU32::new(0)).collect(),
            may_bias,
        })
    }

    /// Wakes up to `n` sleepers registered on `key` (oldest first), as `FUTEX_WAKE` does.
    fn wake(&self, key: Key, n: u32) {
        let mut state = self.futex.lock().unwrap();
        let mut left = n;
        for s in state.sleepers.iter_mut() {
            if left == 0 {
                break;
            }
            if s.woken.is_none() {
                if let Some(k) = s.keys.iter().position(|&k2| k2 == key) {
                    s.woken = Some(k);
                    left -= 1;
                }
            }
        }
        if left < n {
            self.woke.notify_all();
        }
    }

    /// The kernel's part of a thread's death: its lifeline changes, one watcher is woken.
    /// Then the backstop (see the module's notes): every sleeper looks again.
    fn die(&self, thread: usize) {
        self.lifelines[thread].store(1, Ordering::SeqCst);
        self.wake(Key::Lifeline(thread), 1);
        let mut state = self.futex.lock().unwrap();
        for s in state.sleepers.iter_mut().filter(|s| s.woken.is_none()) {
            s.woken = Some(BACKSTOP);
        }
        self.woke.notify_all();
    }
}

/// The token of model thread `thread` (user 0, slot `thread`, generation 0).
pub(super) fn token(thread: usize) -> Token {
    thread_part(0, thread as u32 + 1) | user_part(0)
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

    fn lock_word(&self) -> &AtomicU64 {
        &self.word
    }
    fn count(&self) -> &AtomicU32 {
        &self.count
    }
    fn sleepers(&self) -> &AtomicU32 {
        &self.sleepers
    }
    fn fresh(&self) -> &AtomicU32 {
        &self.fresh
    }
    fn bias_depth(&self) -> &AtomicU32 {
        &self.bias_depth
    }
    fn order_key(&self) -> (u64, u64) {
        (0, self.id as u64)
    }

    fn owner(&self, word: LockWord) -> Owner<usize> {
        if word.is_given_up() || word.slot_plus_one() == 0 {
            return Owner::Dead;
        }
        let thread = word.slot_plus_one() as usize - 1;
        let value = self.world.lifelines[thread].load(Ordering::SeqCst);
        if value != 0 {
            Owner::Dead
        } else {
            Owner::Alive {
                lifeline: thread,
                value,
            }
        }
    }

    fn wake(&self, n: u32) {
        self.world.wake(Key::Mutex(self.id), n);
    }
    fn wake_watchers(&self, lifeline: usize) {
        self.world.wake(Key::Lifeline(lifeline), u32::MAX >> 1);
    }
    fn sleep(watches: &[Watch<'_, ModelMutex>], until: Option<()>) -> Wake {
        assert!(
            until.is_none(),
            "the model has no clock: waits are unbounded or polls"
        );
        let Watch::Mutex(first, _) = watches[0] else {
            unreachable!("a sleep's first watch is a mutex");
        };
        let world = &first.world;
        let mut state = world.futex.lock().unwrap();
        let mut keys = Vec::with_capacity(watches.len());
        for w in watches {
            let (key, now, expected) = match *w {
                Watch::Mutex(obj, expected) => (
                    Key::Mutex(obj.id),
                    LockWord::from_bits(obj.word.load(Ordering::SeqCst)).futex_value(),
                    expected,
                ),
                Watch::Lifeline(thread, value) => (
                    Key::Lifeline(thread),
                    world.lifelines[thread].load(Ordering::SeqCst),
                    value,
                ),
                Watch::Cancel(_) => unreachable!("the model cancels nothing"),
            };
            if now != expected {
                return Wake::Retry; // EAGAIN: the word changed before we slept
            }
            keys.push(key);
        }
        let id = state.next_id;
        state.next_id += 1;
        state.sleepers.push(Sleeper {
            id,
            keys,
            woken: None,
        });
        loop {
            let at = state.sleepers.iter().position(|s| s.id == id).unwrap();
            if let Some(k) = state.sleepers[at].woken {
                state.sleepers.remove(at);
                return if k == BACKSTOP {
                    Wake::TimedOut
                } else {
                    Wake::Word(k)
                };
            }
            state = world.woke.wait(state).unwrap();
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
    fn start_polling(&self) {}
    fn poll(&self, _: &mut (), _: LockWord, _: Owner<usize>, _: impl Fn() -> bool) -> bool {
        false // polling only delays a sleep; loom explores the delays anyway
    }
    fn finish_wait(&self, _: bool) {}

    fn bias_allowed() -> bool {
        MAY_BIAS.with(|b| b.get())
    }
    fn light_barrier() {
        fence(Ordering::SeqCst);
    }
    fn heavy_barrier() {
        fence(Ordering::SeqCst);
    }

    fn record_abandonment(&self, _: LockWord) {
        self.recorded.fetch_add(1, Ordering::SeqCst);
    }
    fn unrecord_abandonment(&self) {
        self.recorded.fetch_sub(1, Ordering::SeqCst);
    }
    fn note_acquired(&self) {}
    fn clear_acquired(&self) {}

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
