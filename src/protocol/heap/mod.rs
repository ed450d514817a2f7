//! The protocol on heap memory with real threads: a [`Host`] made of `std` atomics in a
//! boxed page, a futex emulated with a `std` mutex and condition variable, and thread deaths
//! modelled as threads that end while holding (their lifeline is cut when they end, as the
//! thread-exit destructor of the portable backend will do).
//!
//! Unlike the loom model it runs the protocol at full speed with real preemption, and it
//! compiles on every target, so Miri runs it for macOS and FreeBSD (and for aarch64, with
//! Miri's emulation of weak memory): `tools/miri.sh`.

mod tests;
/// Every transition against a reference model of Win32's rules (proptest).
mod transitions;

pub(super) use super::emulated::token;
use super::emulated::{self, Key, Queue};
use super::host::{Host, Owner, Wake, Watch};
use super::lock_word::LockWord;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long a sleep lasts at most: the production backstop's role (a wake-up passed on by a
/// thread that then died is lost for good), short here to keep tests quick.
const BACKSTOP: Duration = Duration::from_millis(20);
/// The most threads a world has.
const THREADS: usize = 8;

/// The threads and the futex emulation the mutexes of one test share.
pub(super) struct World {
    queue: Mutex<Queue>,
    woke: Condvar,
    /// Per thread: 0 while it lives, 1 once it ended (what the kernel would write).
    lifelines: Vec<AtomicU32>,
    /// Sleeps that ended at their deadline or backstop, not by a wake-up.
    unwoken: AtomicU32,
}

impl World {
    pub(super) fn new() -> Arc<World> {
        Arc::new(World {
            queue: Mutex::new(Queue::default()),
            woke: Condvar::new(),
            lifelines: (0..THREADS).map(|_| AtomicU32::new(0)).collect(),
            unwoken: AtomicU32::new(0),
        })
    }

    fn wake(&self, key: Key, n: u32) {
        if self.queue.lock().unwrap().wake(key, n) {
            self.woke.notify_all();
        }
    }

    /// Marks `thread` dead without waking anyone: a platform whose kernel tells no sleeper
    /// (the portable backend's, whose watcher then calls `abandon_dead`).
    pub(super) fn end_silently(&self, thread: usize) {
        self.lifelines[thread].store(1, Ordering::SeqCst);
    }

    /// How many sleeps ended at their deadline or backstop rather than by a wake-up.
    pub(super) fn unwoken(&self) -> u32 {
        self.unwoken.load(Ordering::SeqCst)
    }

    /// How many threads sleep now (not yet woken).
    pub(super) fn asleep(&self) -> usize {
        self.queue.lock().unwrap().asleep()
    }

    /// Thread `thread` ended: its lifeline is cut and one watcher woken.
    pub(super) fn end(&self, thread: usize) {
        self.lifelines[thread].store(1, Ordering::SeqCst);
        self.wake(Key::Lifeline(thread), 1);
    }
}

/// One mutex on the heap.
pub(super) struct HeapMutex {
    id: usize,
    world: Arc<World>,
    word: AtomicU64,
    count: AtomicU32,
    sleepers: AtomicU32,
    fresh: AtomicU32,
    bias_depth: AtomicU32,
    pub(super) recorded: AtomicU32,
}

impl HeapMutex {
    /// A fresh mutex: `BIASABLE`, as a new object starts.
    pub(super) fn new(world: &Arc<World>, id: usize) -> HeapMutex {
        HeapMutex {
            id,
            world: world.clone(),
            word: AtomicU64::new(LockWord::BIASABLE.bits()),
            count: AtomicU32::new(0),
            sleepers: AtomicU32::new(0),
            fresh: AtomicU32::new(0),
            bias_depth: AtomicU32::new(0),
            recorded: AtomicU32::new(0),
        }
    }
}

thread_local! {
    /// Whether threads may take biases in this test (no asymmetric barrier exists here, so
    /// both sides use a full fence: what the loom model assumes too).
    static MAY_BIAS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Lets the calling thread take biases.
pub(super) fn allow_bias() {
    MAY_BIAS.with(|b| b.set(true));
}

thread_local! {
    static NO_BACKSTOP: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The calling thread's sleeps have no backstop from now on: a wake-up that never comes
/// then fails the test (by its timeout) instead of being made up for after 20 ms.
pub(super) fn no_backstop() {
    NO_BACKSTOP.with(|b| b.set(true));
}

impl Host for HeapMutex {
    type U32 = AtomicU32;
    type U64 = AtomicU64;
    type Lifeline = usize;
    type Deadline = Instant;
    type Polling = ();

    emulated::test_host_words!(AtomicU32, AtomicU64);

    fn sleep(watches: &[Watch<'_, HeapMutex>], until: Option<Instant>) -> Wake {
        let world = &emulated::first_mutex(watches).world;
        let mut queue = world.queue.lock().unwrap();
        let lifeline = |t: usize| world.lifelines[t].load(Ordering::SeqCst);
        let Some(id) = queue.register_if_unchanged(watches, |m| m.id, lifeline) else {
            return Wake::Retry; // EAGAIN: a word changed before we slept
        };
        loop {
            if let Some(k) = queue.take_woken(id) {
                return Wake::Word(k);
            }
            let left = until.map(|d| d.saturating_duration_since(Instant::now()));
            if left == Some(Duration::ZERO) {
                queue.leave(id);
                world.unwoken.fetch_add(1, Ordering::SeqCst);
                return Wake::TimedOut;
            }
            queue = match left {
                Some(left) => world.woke.wait_timeout(queue, left).unwrap().0,
                None => world.woke.wait(queue).unwrap(),
            };
        }
    }
    fn deadline_after(timeout: Option<Duration>) -> Option<Instant> {
        timeout.map(|t| Instant::now() + t)
    }
    fn passed(deadline: Instant) -> bool {
        Instant::now() >= deadline
    }
    fn sleep_until(deadline: Option<Instant>) -> Option<Instant> {
        if NO_BACKSTOP.with(|b| b.get()) {
            return deadline;
        }
        let backstop = Instant::now() + BACKSTOP;
        Some(deadline.map_or(backstop, |d| d.min(backstop)))
    }
    fn poll(&self, _: &mut (), _: LockWord, _: Owner<usize>, _: impl Fn() -> bool) -> bool {
        std::thread::yield_now();
        false
    }
    fn crash_point(_: &'static str) {}
    fn stall_point(_: &'static str) {}
}
