//! What the two test hosts of the protocol share (`model/` with loom, `heap/` with real
//! threads): a futex's wait queue as plain data, and the tokens and liveness of test threads.
//! Each host keeps the queue inside its own mutex (loom's or `std`'s).

use super::atomic::Atomic32;
use super::host::{Host, Owner, Watch};
use super::lock_word::{LockWord, Token, thread_part, user_part};
use std::sync::atomic::Ordering;

/// What a sleeper watches, by identity.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Key {
    Mutex(usize),
    Lifeline(usize),
}

struct Sleeper {
    id: u64,
    keys: Vec<Key>,
    /// Set by a waker: the index of the watch it woke through.
    woken: Option<usize>,
}

/// A futex's wait queue: sleepers register with the words they watch, wakers mark up to `n`
/// of a word's sleepers (oldest first), as `FUTEX_WAKE` does. No spurious wake-ups.
#[derive(Default)]
pub(super) struct Queue {
    next_id: u64,
    sleepers: Vec<Sleeper>,
}

/// A sleeper's `woken` when something other than a watched word ended its sleep.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))] // the model tests' (Linux only)
pub(super) const WOKEN_OTHERWISE: usize = usize::MAX;

impl Queue {
    /// Registers a sleeper watching `keys`; returns its ticket.
    fn register(&mut self, keys: Vec<Key>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.sleepers.push(Sleeper {
            id,
            keys,
            woken: None,
        });
        id
    }

    /// Registers a sleeper on `watches` if every watched word still holds its expected
    /// value (see [`keys_if_unchanged`]); `None`: one changed (`EAGAIN`, look again).
    pub(super) fn register_if_unchanged<H: Host<Lifeline = usize>>(
        &mut self,
        watches: &[Watch<'_, H>],
        id: impl Fn(&H) -> usize,
        lifeline: impl Fn(usize) -> u32,
    ) -> Option<u64> {
        Some(self.register(keys_if_unchanged(watches, id, lifeline)?))
    }

    /// How many sleepers are not woken yet.
    #[cfg_attr(target_os = "linux", allow(dead_code))] // the heap tests' (not the model's)
    pub(super) fn asleep(&self) -> usize {
        self.sleepers.iter().filter(|s| s.woken.is_none()).count()
    }

    /// Marks up to `n` unwoken sleepers of `key`; true if any was.
    pub(super) fn wake(&mut self, key: Key, n: u32) -> bool {
        let mut left = n;
        for s in self.sleepers.iter_mut().filter(|s| s.woken.is_none()) {
            if left == 0 {
                break;
            }
            if let Some(k) = s.keys.iter().position(|&x| x == key) {
                s.woken = Some(k);
                left -= 1;
            }
        }
        left < n
    }

    /// Marks every unwoken sleeper (a backstop firing for all).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))] // the model tests' (Linux only)
    pub(super) fn wake_everyone(&mut self) {
        for s in self.sleepers.iter_mut().filter(|s| s.woken.is_none()) {
            s.woken = Some(WOKEN_OTHERWISE);
        }
    }

    /// If ticket `id` was woken, removes it and says through which watch.
    pub(super) fn take_woken(&mut self, id: u64) -> Option<usize> {
        let at = self.sleepers.iter().position(|s| s.id == id)?;
        let k = self.sleepers[at].woken?;
        self.sleepers.remove(at);
        Some(k)
    }

    /// Removes ticket `id` (its sleep ended by time).
    pub(super) fn leave(&mut self, id: u64) {
        self.sleepers.retain(|s| s.id != id);
    }
}

/// The token of test thread `thread` (user 0, slot `thread`, generation 0).
pub(super) fn token(thread: usize) -> Token {
    thread_part(0, thread as u32 + 1) | user_part(0)
}

/// The owner `word` names, given each test thread's lifeline value (0 while it lives).
pub(super) fn owner(word: LockWord, lifeline: impl Fn(usize) -> u32) -> Owner<usize> {
    if word.is_given_up() || word.slot_plus_one() == 0 {
        return Owner::Dead;
    }
    let thread = word.slot_plus_one() as usize - 1;
    match lifeline(thread) {
        0 => Owner::Alive {
            lifeline: thread,
            value: 0,
        },
        _ => Owner::Dead,
    }
}

/// The keys of `watches` if every watched word still holds its expected value (read under
/// the queue's lock, as the kernel compares under its bucket lock); `None` when one changed
/// (`EAGAIN`: look again). `id` names a mutex; `lifeline` reads a test thread's lifeline.
fn keys_if_unchanged<H: Host<Lifeline = usize>>(
    watches: &[Watch<'_, H>],
    id: impl Fn(&H) -> usize,
    lifeline: impl Fn(usize) -> u32,
) -> Option<Vec<Key>> {
    let mut keys = Vec::with_capacity(watches.len());
    for w in watches {
        match *w {
            Watch::Mutex(obj, expected) => {
                if obj.load_word(Ordering::SeqCst).futex_value() != expected {
                    return None;
                }
                keys.push(Key::Mutex(id(obj)));
            }
            Watch::Lifeline(thread, value) => {
                if lifeline(thread) != value {
                    return None;
                }
                keys.push(Key::Lifeline(thread));
            }
            // Nothing fires a cancel in these tests: a fired one ends the sleep at once.
            Watch::Cancel(word) => {
                if word.load(Ordering::SeqCst) != 0 {
                    return None;
                }
            }
        }
    }
    Some(keys)
}

/// The parts of a test host that only differ in their atomic types: the shared words (fields
/// `word`, `count`, `sleepers`, `fresh`, `bias_depth`), the order key (`id`), liveness and
/// waking through `world` (whose `lifelines` and `wake` both test hosts have), the barriers
/// (`fence`), biasing (a thread-local `MAY_BIAS`) and the count of reports (`recorded`).
macro_rules! test_host_words {
    ($u32:ty, $u64:ty) => {
        fn lock_word(&self) -> &$u64 {
            &self.word
        }
        fn count(&self) -> &$u32 {
            &self.count
        }
        fn sleepers(&self) -> &$u32 {
            &self.sleepers
        }
        fn fresh(&self) -> &$u32 {
            &self.fresh
        }
        fn bias_depth(&self) -> &$u32 {
            &self.bias_depth
        }
        fn order_key(&self) -> (u64, u64) {
            (0, self.id as u64)
        }
        fn owner(&self, word: LockWord) -> Owner<usize> {
            emulated::owner(word, |t| self.world.lifelines[t].load(Ordering::SeqCst))
        }
        fn wake(&self, n: u32) {
            self.world.wake(Key::Mutex(self.id), n);
        }
        fn wake_watchers(&self, lifeline: usize) {
            self.world.wake(Key::Lifeline(lifeline), u32::MAX >> 1);
        }
        fn start_polling(&self) {}
        fn finish_wait(&self, _: bool) {}
        fn bias_allowed() -> bool {
            MAY_BIAS.with(|b| b.get())
        }
        // No asymmetric barrier exists here: both sides are full fences (what the loom model
        // assumes of `membarrier`).
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
    };
}
pub(super) use test_host_words;

/// The mutex a sleep is first about (the protocol puts the lock word first).
pub(super) fn first_mutex<'a, H: Host>(watches: &[Watch<'a, H>]) -> &'a H {
    match watches.first() {
        Some(Watch::Mutex(obj, _)) => obj,
        _ => unreachable!("a sleep's first watch is a mutex"),
    }
}
