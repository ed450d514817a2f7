//! The model tests: each names the protocol rule it guards.

use super::{ModelMutex, World, dead_owner, run_thread, token};
use crate::protocol::acquire::{Reentry, Undo, lock};
use crate::protocol::multi::{wait_all, wait_any};
use crate::protocol::release::{abandon, release};
use crate::protocol::sleep::wait_for;
use crate::sys::contract::WaitAny;
use crate::sys::contract::WaitStatus;
use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::thread;
use std::time::Duration;

/// Runs `f` under loom with `bound` preemptions per execution (the state space grows
/// exponentially with it; 2 finds every bug below in seconds).
fn check(bound: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(bound);
    builder.max_branches = 100_000; // the spins of `until`
    builder.check(f);
}

/// Data the mutex guards: loom reports any access not ordered after the previous one
/// (two threads inside at once, or a release that publishes nothing).
struct Guarded {
    mutex: ModelMutex,
    data: UnsafeCell<u32>,
}

// SAFETY: `data` is touched only inside the mutex (or after every thread was joined); that
// this holds is what the tests check: loom reports any access not ordered after the last.
#[allow(unsafe_code)]
unsafe impl Sync for Guarded {}

impl Guarded {
    fn new(mutex: ModelMutex) -> Arc<Guarded> {
        Arc::new(Guarded {
            mutex,
            data: UnsafeCell::new(0),
        })
    }

    /// One critical section of thread `thread`: lock, increment, unlock.
    #[allow(unsafe_code)]
    fn increment(&self, thread: usize) -> WaitStatus {
        let status = lock(&self.mutex, token(thread), None).expect("lock");
        // SAFETY: only while holding the mutex (what loom checks).
        self.data.with_mut(|d| unsafe { *d += 1 });
        release(&self.mutex, token(thread)).expect("release");
        status
    }

    #[allow(unsafe_code)]
    fn total(&self) -> u32 {
        // SAFETY: every thread that wrote it was joined.
        self.data.with(|d| unsafe { *d })
    }
}

/// Waits (yielding, which loom understands as a spin) until `ready` says so.
fn until(ready: impl Fn() -> bool) {
    while !ready() {
        thread::yield_now();
    }
}

/// Spawns model thread `t` running `body` (a thread that lives).
fn spawn<T: Send + 'static>(
    world: &Arc<World>,
    t: usize,
    body: impl FnOnce() -> T + Send + 'static,
) -> thread::JoinHandle<T> {
    let world = world.clone();
    thread::spawn(move || run_thread(&world, t, None, false, body).expect("lives"))
}

/// Mutual exclusion and no lost wake-up on an ordinary mutex (no bias): three threads each
/// take it once; one that sleeps must be woken by a release (`WAITERS` set before sleeping,
/// the release's swap sees it and wakes one).
#[test]
fn three_contenders_exclude_each_other_and_all_finish() {
    three_once_each(false, crate::protocol::LockWord::FREE, 2);
}

/// Three threads take a mutex whose word starts as `word` once each, with `bound`
/// preemptions: all finish, none told `Abandoned`, and the guarded count is exact.
fn three_once_each(may_bias: bool, word: crate::protocol::LockWord, bound: usize) {
    check(bound, move || {
        let world = World::new(may_bias);
        let g = Guarded::new(ModelMutex::with_word(&world, 0, word));
        let handles: Vec<_> = (0..3)
            .map(|t| {
                let g = g.clone();
                spawn(&world, t, move || g.increment(t))
            })
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap(), WaitStatus::Acquired);
        }
        assert_eq!(g.total(), 3);
    });
}

/// Async tasks share their process's one owner token (`sys/unix/detached.rs`), so the lock
/// word alone must keep them apart: two model threads acquire with the same token and
/// `Reentry::Exclusive` (one of them on a free word, the other finding it owned by that
/// token); neither may count it as a recursion, the second sleeps until the first
/// releases, and the guarded count is exact.
#[test]
fn tasks_sharing_a_process_token_exclude_each_other() {
    check(2, || {
        let world = World::new(false);
        let g = Guarded::new(ModelMutex::with_word(
            &world,
            0,
            crate::protocol::LockWord::FREE,
        ));
        let process = token(0); // thread 0 stands for the owner thread: it lives throughout
        let handles: Vec<_> = (1..3)
            .map(|t| {
                let g = g.clone();
                spawn(&world, t, move || {
                    let (status, undo) =
                        wait_for(&g.mutex, process, Reentry::Exclusive, None, None).expect("wait");
                    assert!(
                        matches!(undo, Some(Undo::Release)),
                        "task {t} acquired as {undo:?}, not a fresh acquisition"
                    );
                    // SAFETY: only while holding the mutex (what loom checks).
                    #[allow(unsafe_code)]
                    g.data.with_mut(|d| unsafe { *d += 1 });
                    release(&g.mutex, process).expect("release");
                    status
                })
            })
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap(), WaitStatus::Acquired);
        }
        assert_eq!(g.total(), 2);
    });
}

/// The FRESH release racing a first contender (no bias allowed): the owner puts the word
/// back to `BIASABLE` only if it is exactly its token; a contender that set `WAITERS`
/// meanwhile makes it an ordinary release with a wake-up.
#[test]
fn fresh_release_races_the_first_contender() {
    twice_against_once(false, 3);
}

/// Biased locking: the biased thread acquires and releases without read-modify-write; a
/// second thread revokes (request, heavy barrier, read depth). Either the biased thread sees
/// the request or the revoker sees its depth: never both inside.
#[test]
fn biased_release_races_a_revocation() {
    twice_against_once(true, 2);
}

/// A bias revoked for a third thread: thread 0 takes the bias and releases it; thread 1
/// revokes it (depth 0: it frees the word) and thread 2 may take the freed word before
/// thread 1 does. Thread 2 must still see thread 0's critical section: the revoker read it
/// through BIAS_DEPTH (release/acquire) and must pass it on with its freeing write.
#[test]
fn a_revoked_bias_hands_the_data_to_a_third_thread() {
    three_once_each(true, crate::protocol::LockWord::BIASABLE, 1);
}

/// A fresh mutex: thread 0 takes it twice (with `may_bias`, the first takes the bias and the
/// second runs the biased fast path unless revoked meanwhile), thread 1 once; both finish
/// and the guarded count is exact.
fn twice_against_once(may_bias: bool, bound: usize) {
    check(bound, move || {
        let world = World::new(may_bias);
        let g = Guarded::new(ModelMutex::new(&world, 0));
        let g0 = g.clone();
        let t0 = spawn(&world, 0, move || {
            g0.increment(0);
            g0.increment(0);
        });
        let g1 = g.clone();
        let t1 = spawn(&world, 1, move || g1.increment(1));
        t0.join().unwrap();
        t1.join().unwrap();
        assert_eq!(g.total(), 3);
    });
}

/// Where an owner dies, for [`abandonment_is_reported_exactly_once`].
#[derive(Clone, Copy, Debug)]
enum Death {
    /// Right after the compare-and-swap that made it owner, before COUNT was written.
    AfterCas,
    /// Holding the mutex, between calls.
    Holding,
    /// In its release, before the swap that would free the word.
    InRelease,
    /// Right after giving the mutex up on purpose (`abandon`), before its wake-up.
    GaveUp,
    /// After releasing normally: nothing is abandoned.
    AfterRelease,
}

/// Exactly one acquirer is told `Abandoned` when an owner dies holding the mutex, whatever
/// step it dies at and however the two waiters interleave with its death (they may sleep on
/// its lifeline, be woken by the modelled kernel, or find it dead), counting one more
/// acquirer after all ended; none when it released.
fn abandonment_is_reported_exactly_once(death: Death) {
    {
        check(2, move || {
            let world = World::new(false);
            let m = Arc::new(ModelMutex::with_word(
                &world,
                0,
                crate::protocol::LockWord::FREE,
            ));
            let die_at = match death {
                Death::AfterCas => Some("lock.after_cas"),
                Death::InRelease => Some("unlock.before_swap"),
                _ => None,
            };
            let (w0, m0) = (world.clone(), m.clone());
            let owner = thread::spawn(move || {
                run_thread(&w0, 0, die_at, true, || {
                    lock(&*m0, token(0), None).unwrap();
                    match death {
                        Death::InRelease | Death::AfterRelease => release(&*m0, token(0)).unwrap(),
                        Death::GaveUp => abandon(&*m0, token(0), || {}).unwrap(),
                        _ => {}
                    }
                })
            });
            let waiters: Vec<_> = (1..3)
                .map(|t| {
                    let m = m.clone();
                    spawn(&world, t, move || {
                        let status = lock(&*m, token(t), None).unwrap();
                        release(&*m, token(t)).unwrap();
                        status
                    })
                })
                .collect();
            owner.join().unwrap();
            let mut statuses: Vec<WaitStatus> =
                waiters.into_iter().map(|h| h.join().unwrap()).collect();
            // The waiters may all have come and gone before the owner took the mutex: one
            // more acquirer after everything ended must then be the one told.
            statuses.push(lock(&*m, token(3), Some(Duration::ZERO)).unwrap());
            let told = statuses
                .iter()
                .filter(|s| **s == WaitStatus::Abandoned)
                .count();
            let expected = usize::from(!matches!(death, Death::AfterRelease));
            assert_eq!(
                told, expected,
                "{death:?}: acquirers told of the abandonment"
            );
            assert_eq!(m.recorded.load(Ordering::SeqCst) as usize, expected);
        });
    }
}

#[test]
fn abandonment_after_the_owners_cas_is_reported_once() {
    abandonment_is_reported_exactly_once(Death::AfterCas);
}
#[test]
fn abandonment_while_holding_is_reported_once() {
    abandonment_is_reported_exactly_once(Death::Holding);
}
#[test]
fn abandonment_in_a_release_is_reported_once() {
    abandonment_is_reported_exactly_once(Death::InRelease);
}
#[test]
fn a_mutex_given_up_is_reported_once() {
    abandonment_is_reported_exactly_once(Death::GaveUp);
}
#[test]
fn a_death_after_release_abandons_nothing() {
    abandonment_is_reported_exactly_once(Death::AfterRelease);
}

/// A biased owner's death: abandoned only if it held the mutex (its depth), then reported
/// once, like any other owner's.
#[test]
fn a_biased_owner_is_abandoned_only_if_it_held_the_mutex() {
    for holding in [true, false] {
        check(2, move || {
            let world = World::new(true);
            let m = Arc::new(ModelMutex::new(&world, 0));
            let (w0, m0) = (world.clone(), m.clone());
            let held = Arc::new(AtomicBool::new(false));
            let held0 = held.clone();
            let owner = thread::spawn(move || {
                run_thread(&w0, 0, None, true, || {
                    lock(&*m0, token(0), None).unwrap(); // takes the bias
                    held0.store(true, Ordering::SeqCst);
                    if !holding {
                        release(&*m0, token(0)).unwrap();
                    }
                })
            });
            let m1 = m.clone();
            let waiter = spawn(&world, 1, move || {
                if holding {
                    until(|| held.load(Ordering::SeqCst)); // a waiter, not an earlier owner
                }
                let status = lock(&*m1, token(1), None).unwrap();
                release(&*m1, token(1)).unwrap();
                status
            });
            owner.join().unwrap();
            let status = waiter.join().unwrap();
            let expected = if holding {
                WaitStatus::Abandoned
            } else {
                WaitStatus::Acquired
            };
            assert_eq!(status, expected, "holding: {holding}");
        });
    }
}

/// Wait-all's rollback keeps an abandonment: a wait-all that took an abandoned mutex and
/// then found another busy gives the first back to its dead owner, so exactly one acquirer
/// (the wait-all later, or a single waiter) is still told.
#[test]
fn wait_all_rollback_preserves_abandonment() {
    check(2, || {
        let world = World::new(false);
        let dead = dead_owner(&world, 3);
        let a = Arc::new(ModelMutex::with_word(&world, 0, dead));
        let b = Arc::new(ModelMutex::with_word(
            &world,
            1,
            crate::protocol::LockWord::FREE,
        ));
        let b1 = b.clone();
        let holder = spawn(&world, 1, move || {
            lock(&*b1, token(1), None).unwrap();
            release(&*b1, token(1)).unwrap();
        });
        let (a2, b2) = (a.clone(), b.clone());
        let all = spawn(&world, 2, move || {
            let got = wait_all(&[&*a2, &*b2], &[token(2), token(2)], None).unwrap();
            release(&*a2, token(2)).unwrap();
            release(&*b2, token(2)).unwrap();
            got
        });
        let a0 = a.clone();
        let single = spawn(&world, 0, move || {
            let status = lock(&*a0, token(0), None).unwrap();
            release(&*a0, token(0)).unwrap();
            status
        });
        holder.join().unwrap();
        let all = all.join().unwrap();
        let single = single.join().unwrap();
        let told = usize::from(all == WaitAny::Abandoned(0))
            + usize::from(single == WaitStatus::Abandoned);
        assert_eq!(told, 1, "wait-all {all:?}, single {single:?}");
        assert_eq!(a.recorded.load(Ordering::SeqCst), 1);
    });
}

/// Wait-any passes on a wake-up it did not use: a multi-waiter woken through B's release
/// that takes A instead must wake B's other sleeper, or that one sleeps on a free mutex.
#[test]
fn wait_any_passes_on_a_wake_up_it_did_not_use() {
    check(2, || {
        let world = World::new(false);
        let free = crate::protocol::LockWord::FREE;
        let a = Arc::new(ModelMutex::with_word(&world, 0, free));
        let b = Arc::new(ModelMutex::with_word(&world, 1, free));
        lock(&*a, token(0), None).unwrap();
        lock(&*b, token(0), None).unwrap();
        let (a1, b1) = (a.clone(), b.clone());
        let any = spawn(&world, 1, move || {
            let got = wait_any(&[&*a1, &*b1], &[token(1), token(1)], None).unwrap();
            let m = if matches!(got, WaitAny::Acquired(0) | WaitAny::Abandoned(0)) {
                &a1
            } else {
                &b1
            };
            release(&**m, token(1)).unwrap();
            got
        });
        let b2 = b.clone();
        let single = spawn(&world, 2, move || {
            let status = lock(&*b2, token(2), None).unwrap();
            release(&*b2, token(2)).unwrap();
            status
        });
        release(&*b, token(0)).unwrap();
        release(&*a, token(0)).unwrap();
        assert!(matches!(any.join().unwrap(), WaitAny::Acquired(_)));
        assert_eq!(single.join().unwrap(), WaitStatus::Acquired);
    });
}
