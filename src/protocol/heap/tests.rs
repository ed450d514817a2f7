//! The protocol with real threads on heap memory (see `mod.rs`); every wait is bounded, so a
//! bug fails a test instead of hanging it.

use super::{HeapMutex, World, allow_bias, no_backstop, token};
use crate::protocol::Host;
use crate::protocol::acquire::lock;
use crate::protocol::lock_word::LockWord;
use crate::protocol::multi::wait_all;
use crate::protocol::release::{abandon_dead, release};
use crate::sys::contract::ErrorKind;
use crate::sys::contract::{WaitAny, WaitStatus};
use std::cell::UnsafeCell;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// Long enough for any correct hand-off, short enough to fail a broken one quickly.
const PATIENCE: Option<Duration> = Some(Duration::from_secs(20));
/// Iterations per thread (Miri runs every instruction through its interpreter).
const ROUNDS: usize = if cfg!(miri) { 8 } else { 2000 };

/// A counter incremented without atomics, inside the mutex only: Miri reports any
/// increment not ordered after the previous one as a data race, and a lost update shows in
/// the total.
struct Guarded {
    mutex: HeapMutex,
    data: UnsafeCell<u64>,
}

// SAFETY: `data` is touched only by the owner of `mutex` (what the tests check).
#[allow(unsafe_code)]
unsafe impl Sync for Guarded {}

impl Guarded {
    #[allow(unsafe_code)]
    fn increment(&self, thread: usize) -> WaitStatus {
        let status = lock(&self.mutex, token(thread), PATIENCE).expect("lock");
        assert!(status.is_acquired(), "thread {thread}: {status:?}");
        // SAFETY: the calling thread owns the mutex.
        unsafe { *self.data.get() += 1 };
        release(&self.mutex, token(thread)).expect("release");
        status
    }

    #[allow(unsafe_code)]
    fn total(&self) -> u64 {
        // SAFETY: called after every thread was joined.
        unsafe { *self.data.get() }
    }
}

/// Three threads take the mutex `ROUNDS` times each; with `bias`, thread 0 may take the bias
/// and the others revoke it.
fn take_turns(bias: bool) {
    let world = World::new();
    let g = Arc::new(Guarded {
        mutex: HeapMutex::new(&world, 0),
        data: UnsafeCell::new(0),
    });
    let threads: Vec<_> = (0..3)
        .map(|t| {
            let g = g.clone();
            thread::spawn(move || {
                if bias && t == 0 {
                    allow_bias();
                }
                for _ in 0..ROUNDS {
                    g.increment(t);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a thread panicked");
    }
    assert_eq!(g.total(), 3 * ROUNDS as u64);
}

#[test]
fn threads_take_turns() {
    take_turns(false);
}

#[test]
fn threads_take_turns_with_a_biased_one() {
    take_turns(true);
}

#[test]
fn recursion_counts_and_a_non_owner_cannot_release() {
    let world = World::new();
    let m = HeapMutex::new(&world, 0);
    assert_eq!(lock(&m, token(0), None).unwrap(), WaitStatus::Acquired);
    assert_eq!(lock(&m, token(0), None).unwrap(), WaitStatus::Acquired);
    assert_eq!(
        release(&m, token(1)).unwrap_err().kind(),
        ErrorKind::NotOwner
    );
    release(&m, token(0)).unwrap();
    // Still held once: another thread cannot have it.
    assert_eq!(
        lock(&m, token(1), Some(Duration::ZERO)).unwrap(),
        WaitStatus::TimedOut
    );
    release(&m, token(0)).unwrap();
    assert_eq!(
        release(&m, token(0)).unwrap_err().kind(),
        ErrorKind::NotOwner
    );
    assert_eq!(
        lock(&m, token(1), Some(Duration::ZERO)).unwrap(),
        WaitStatus::Acquired
    );
}

/// The FRESH rule (FORMAT.md): a thread that may not bias takes a fresh mutex as an ordinary
/// owner (recursion included) and, uncontended, gives it back fresh, so that a thread which
/// may bias still takes the bias afterwards.
#[test]
fn an_owner_that_may_not_bias_leaves_a_fresh_mutex_fresh() {
    let world = World::new();
    let m = Arc::new(HeapMutex::new(&world, 0));
    for _ in 0..2 {
        assert_eq!(lock(&*m, token(0), None).unwrap(), WaitStatus::Acquired);
    }
    assert_eq!(m.load_word(Ordering::Relaxed), LockWord::owned_by(token(0)));
    for _ in 0..2 {
        release(&*m, token(0)).unwrap();
    }
    assert_eq!(
        m.load_word(Ordering::Relaxed),
        LockWord::BIASABLE,
        "no longer fresh after an uncontended owner that may not bias"
    );
    let biased = m.clone();
    thread::spawn(move || {
        allow_bias();
        assert_eq!(
            lock(&*biased, token(1), None).unwrap(),
            WaitStatus::Acquired
        );
        assert_eq!(
            biased.load_word(Ordering::Relaxed),
            LockWord::biased_to(token(1))
        );
        release(&*biased, token(1)).unwrap();
    })
    .join()
    .expect("the biasing thread");
}

#[test]
fn a_wait_times_out_while_another_thread_holds() {
    let world = World::new();
    let m = Arc::new(HeapMutex::new(&world, 0));
    let (held_tx, held_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let m0 = m.clone();
    let holder = thread::spawn(move || {
        lock(&*m0, token(0), None).unwrap();
        held_tx.send(()).unwrap();
        done_rx.recv_timeout(Duration::from_secs(20)).unwrap();
        release(&*m0, token(0)).unwrap();
    });
    held_rx.recv_timeout(Duration::from_secs(20)).unwrap();
    let status = lock(&*m, token(1), Some(Duration::from_millis(30))).unwrap();
    assert_eq!(status, WaitStatus::TimedOut);
    done_tx.send(()).unwrap();
    holder.join().unwrap();
    assert_eq!(lock(&*m, token(1), PATIENCE).unwrap(), WaitStatus::Acquired);
}

/// Threads 1 and 2, each waiting (up to `patience`) for `m`, then releasing it; with
/// `without_backstop`, their sleeps end only by wake-ups or the deadline.
fn two_waiters(
    m: &Arc<HeapMutex>,
    patience: Option<Duration>,
    without_backstop: bool,
) -> Vec<thread::JoinHandle<WaitStatus>> {
    (1..3)
        .map(|t| {
            let m = m.clone();
            thread::spawn(move || {
                if without_backstop {
                    no_backstop();
                }
                let status = lock(&*m, token(t), patience).unwrap();
                assert!(status.is_acquired(), "thread {t}: {status:?}");
                release(&*m, token(t)).unwrap();
                status
            })
        })
        .collect()
}

/// Exactly one of the waiters, or one more acquirer after them, was told `Abandoned`.
fn assert_told_once(m: &HeapMutex, waiters: Vec<thread::JoinHandle<WaitStatus>>) {
    let mut statuses: Vec<WaitStatus> = waiters.into_iter().map(|h| h.join().unwrap()).collect();
    statuses.push(lock(m, token(3), Some(Duration::ZERO)).unwrap());
    let told = statuses
        .iter()
        .filter(|s| **s == WaitStatus::Abandoned)
        .count();
    assert_eq!(told, 1, "{statuses:?}");
}

/// A thread that ends holding the mutex abandons it: exactly one of two waiters (or, if
/// both came first, one more acquirer afterwards) is told.
#[test]
fn a_thread_that_ends_holding_is_reported_once() {
    let world = World::new();
    let m = Arc::new(HeapMutex::new(&world, 0));
    let (w0, m0) = (world.clone(), m.clone());
    let owner = thread::spawn(move || {
        lock(&*m0, token(0), PATIENCE).unwrap();
        w0.end(0); // the thread ends holding it
    });
    let waiters = two_waiters(&m, PATIENCE, false);
    owner.join().unwrap();
    assert_told_once(&m, waiters);
    assert_eq!(m.recorded.load(Ordering::SeqCst), 1);
}

/// The portable backend's way: the owner's death wakes nobody, until a third party (its
/// watcher) gives the mutex up for the dead owner; then the sleepers wake, and exactly one
/// is told (the watcher's change makes their compare-and-sleep fail if they were not yet
/// asleep).
#[test]
fn a_dead_owners_mutex_given_up_by_a_watcher_is_reported_once() {
    let world = World::new();
    let m = Arc::new(HeapMutex::new(&world, 0));
    lock(&*m, token(0), PATIENCE).unwrap();
    let waiters = two_waiters(&m, Some(Duration::from_secs(5)), true);
    // Both asleep first: then only the watcher's wake-up can end their sleeps (they have
    // no backstop, and a sleep that ends at its deadline is counted).
    let started = std::time::Instant::now();
    while world.asleep() < 2 {
        assert!(
            started.elapsed() < PATIENCE.unwrap(),
            "the waiters never slept"
        );
        thread::yield_now();
    }
    world.end_silently(0);
    let dead = m.load_word(Ordering::Acquire);
    let watcher = {
        let m = m.clone();
        thread::spawn(move || abandon_dead(&*m, dead, || {}))
    };
    watcher.join().unwrap();
    assert_told_once(&m, waiters);
    assert_eq!(world.unwoken(), 0, "a sleeper was never woken");
}

/// Wait-all over a mutex whose owner ended and one a live thread releases later: it gets
/// both, told of the abandonment, once.
#[test]
fn wait_all_takes_an_abandoned_and_a_released_mutex() {
    let world = World::new();
    let a = Arc::new(HeapMutex::new(&world, 0));
    let b = Arc::new(HeapMutex::new(&world, 1));
    let (wa, a0) = (world.clone(), a.clone());
    thread::spawn(move || {
        lock(&*a0, token(0), PATIENCE).unwrap();
        wa.end(0);
    })
    .join()
    .unwrap();
    let (held_tx, held_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let b1 = b.clone();
    let holder = thread::spawn(move || {
        lock(&*b1, token(1), PATIENCE).unwrap();
        held_tx.send(()).unwrap();
        go_rx.recv_timeout(Duration::from_secs(20)).unwrap();
        release(&*b1, token(1)).unwrap();
    });
    held_rx.recv_timeout(Duration::from_secs(20)).unwrap();
    let (a2, b2) = (a.clone(), b.clone());
    let all = thread::spawn(move || wait_all(&[&*a2, &*b2], &[token(2), token(2)], PATIENCE));
    go_tx.send(()).unwrap();
    holder.join().unwrap();
    assert_eq!(all.join().unwrap().unwrap(), WaitAny::Abandoned(0));
    assert_eq!(a.recorded.load(Ordering::SeqCst), 1);
}
