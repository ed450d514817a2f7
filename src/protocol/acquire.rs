//! Acquiring: the uncontended compare-and-swap, recursion, and one attempt of the slow path,
//! which also takes a dead owner's mutex and reports the abandonment exactly once.
//!
//! Exactly once: the owner's token stays in the lock word after it dies (nothing else
//! writes it), and the only way out of that state is a compare-and-swap from the dead word
//! to an acquirer's token. At most one such swap succeeds; its maker alone gets `Abandoned`.

use super::atomic::Atomic32;
use super::bias::{self, Revoked};
use super::host::{Host, Owner};
use super::lock_word::{LockWord, MAX_COUNT, Token};
use crate::sys::contract::WaitStatus;
use crate::sys::contract::{Error, ErrorKind, Result};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Acquires `obj` for `me` (a thread's token), waiting up to `timeout` (`None`: forever):
/// the biased thread's path first, small enough to inline into the caller, then [`acquire`].
#[inline(always)]
pub(crate) fn lock<H: Host>(obj: &H, me: Token, timeout: Option<Duration>) -> Result<WaitStatus> {
    let mine = LockWord::biased_to(me);
    let cur = obj.load_word(Ordering::Relaxed);
    if cur == mine && bias::try_acquire(obj, me, mine) {
        return Ok(WaitStatus::Acquired);
    }
    take_unbiased(obj, me, cur, timeout)
}

/// [`lock`] past the biased thread's path: an ordinary free word (the bias revoked), or a
/// fresh one in a process that may not bias, taken with one compare-and-swap; else
/// [`acquire`]. A small function of its own: inlined into `lock`, these checks made the
/// caller's prologue save more registers, which cost the biased path 0.3 ns; left to
/// `acquire`, they paid its call and prologue (0.5-1 ns of a 14 ns acquire+release; both
/// measured with the compare harness, scenario 1).
#[inline(never)]
fn take_unbiased<H: Host>(
    obj: &H,
    me: Token,
    cur: LockWord,
    timeout: Option<Duration>,
) -> Result<WaitStatus> {
    if take_ordinary(obj, me, cur, true) {
        return Ok(WaitStatus::Acquired);
    }
    acquire(obj, me, timeout, true)
}

/// Acquires `obj` for `me`, waiting up to `timeout` (`None`: forever). The fast paths first:
/// a free word, a fresh one (taking the bias if `may_bias` and the platform allows), our own
/// (recursion); otherwise the slow path of `sleep.rs`. A word biased to `me` exactly is the
/// caller's to try first ([`bias::try_acquire`]), inlined where it is called.
#[inline(never)]
pub(crate) fn acquire<H: Host>(
    obj: &H,
    me: Token,
    timeout: Option<Duration>,
    may_bias: bool,
) -> Result<WaitStatus> {
    // Look before the compare-and-swap: a recursive acquisition then costs no atomic
    // read-modify-write (only the owner can have written its own token).
    let cur = obj.load_word(Ordering::Relaxed);
    if cur == LockWord::BIASABLE && may_bias && bias::try_acquire(obj, me, cur) {
        return Ok(WaitStatus::Acquired);
    }
    if take_ordinary(obj, me, cur, may_bias) {
        return Ok(WaitStatus::Acquired);
    }
    if cur.token() == me {
        let count = obj.count().load(Ordering::Relaxed);
        if (1..MAX_COUNT).contains(&count) {
            obj.count().store(count + 1, Ordering::Relaxed);
            return Ok(WaitStatus::Acquired);
        }
    }
    wait_slow(obj, me, timeout)
}

/// Takes the word `cur` with one compare-and-swap as an ordinary owner, without the clock
/// that `attempt` reads: a free word (the bias revoked), or a fresh one where no bias may
/// be taken (`may_bias` false, or the process may not bias, yet or at all), which then
/// stays biasable (FRESH). [`lock`]'s path and [`acquire`]'s share it.
#[inline(always)]
fn take_ordinary<H: Host>(obj: &H, me: Token, cur: LockWord, may_bias: bool) -> bool {
    if cur == LockWord::FREE {
        return take_free(obj, me, cur, None);
    }
    cur == LockWord::BIASABLE
        && !(may_bias && H::bias_allowed())
        && take_free(obj, me, cur, Some(1))
}

/// Takes a free or fresh word with one compare-and-swap, for an owner that never biases (a
/// process owner, `detached.rs`): a fresh mutex becomes an ordinary one, as after contention,
/// since keeping it biasable would send every later acquisition through [`attempt`] and
/// every release through the FRESH path.
pub(crate) fn take_free_for_good<H: Host>(obj: &H, me: Token) -> bool {
    let cur = obj.load_word(Ordering::Relaxed);
    (cur == LockWord::FREE || cur == LockWord::BIASABLE) && take_free(obj, me, cur, Some(0))
}

/// Takes the free word `cur` (`FREE` or `BIASABLE`) for `me` with one compare-and-swap,
/// without reading the clock; `fresh`: what to write to FRESH (`None`: leave it).
#[inline(always)]
fn take_free<H: Host>(obj: &H, me: Token, cur: LockWord, fresh: Option<u32>) -> bool {
    let taken = obj
        .cas_word(
            cur,
            LockWord::owned_by(me),
            Ordering::Acquire,
            Ordering::Relaxed,
        )
        .is_ok();
    if taken {
        H::crash_point("lock.after_cas");
        obj.count().store(1, Ordering::Relaxed);
        if let Some(fresh) = fresh {
            obj.fresh().store(fresh, Ordering::Relaxed);
        }
    }
    taken
}

#[cold]
fn wait_slow<H: Host>(obj: &H, me: Token, timeout: Option<Duration>) -> Result<WaitStatus> {
    super::sleep::wait_for(obj, me, Reentry::Recursive, timeout, None).map(|(status, _)| status)
}

/// How to take back an acquisition (a wait-all that could not get everything).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Undo {
    /// It was free: release it.
    Release,
    /// We already owned it: one recursion less.
    Recursion,
    /// Its owner had died: give it back to the dead owner, so that the next acquirer
    /// still learns of the abandonment.
    Abandoned(LockWord),
}

/// What an owner that acquires again while it holds gets.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Reentry {
    /// One recursion more: a thread's ownership (Win32's).
    Recursive,
    /// Nothing: it waits like anyone else. The process owner of async acquisitions, whose
    /// one token tasks share (`sys/unix/detached.rs`): so the lock word alone keeps two
    /// tasks out of each other's critical sections.
    Exclusive,
}

/// The result of one attempt that does not block.
pub(crate) enum Attempt<L> {
    Got(WaitStatus, Undo),
    Busy { cur: LockWord, owner: Owner<L> },
}

/// Tries once to acquire `obj` for the token `me`, without blocking; `reentry` says what a
/// word `me` already owns gives. `slept` says whether the caller has slept in this wait
/// (then it passes a wake-up on to other sleepers, which may still watch the previous
/// owner: they re-target to us).
pub(crate) fn attempt<H: Host>(
    obj: &H,
    me: Token,
    reentry: Reentry,
    slept: bool,
) -> Result<Attempt<H::Lifeline>> {
    loop {
        let cur = obj.load_word(Ordering::Acquire);
        if cur.is_free() {
            let sleepers = obj.sleepers().load(Ordering::Relaxed);
            let new = LockWord::owned_by(me).with_waiters_if(sleepers > 0);
            if obj
                .cas_word(cur, new, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                H::crash_point("lock.after_cas");
                obj.count().store(1, Ordering::Relaxed);
                if cur == LockWord::BIASABLE {
                    // This process may not bias yet: keep the mutex biasable (see FRESH).
                    obj.fresh().store(1, Ordering::Relaxed);
                }
                obj.note_acquired();
                if slept && sleepers > 0 {
                    obj.wake(1); // re-target one sleeper to us
                }
                return Ok(Attempt::Got(WaitStatus::Acquired, Undo::Release));
            }
            continue;
        }
        if cur.token() == me && reentry == Reentry::Recursive {
            let count = obj.count().load(Ordering::Relaxed);
            if count >= MAX_COUNT {
                return Err(Error::new(
                    ErrorKind::RecursionLimit,
                    format!("the calling thread already holds the mutex {MAX_COUNT} times"),
                ));
            }
            obj.count().store(count.max(1) + 1, Ordering::Relaxed);
            return Ok(Attempt::Got(WaitStatus::Acquired, Undo::Recursion));
        }
        let biased = cur.is_biased();
        if biased && cur.bias_holder() == me {
            bias::unbias(obj, me); // ours: make it ordinary ownership (or free), look again
            continue;
        }
        let owner = obj.owner(cur);
        if let Owner::Dead = owner {
            if let Some(got) = take_from_dead(obj, me, cur, biased) {
                return Ok(got);
            }
            continue;
        }
        if biased {
            match bias::revoke(obj, cur) {
                Revoked::Changed => continue,
                Revoked::Held(cur) => return Ok(Attempt::Busy { cur, owner }),
            }
        }
        return Ok(Attempt::Busy { cur, owner });
    }
}

/// Takes the mutex whose word `cur` names a dead owner; `None` if the word changed (another
/// acquirer won, or a waiter set `WAITERS`): look again.
fn take_from_dead<H: Host>(
    obj: &H,
    me: Token,
    cur: LockWord,
    biased: bool,
) -> Option<Attempt<H::Lifeline>> {
    // A thread the mutex was biased to owned it only if its depth says so.
    let abandoned = !biased || bias::dead_holder_held(obj);
    let sleepers = obj.sleepers().load(Ordering::Relaxed);
    let new = LockWord::owned_by(me).with_waiters_if(sleepers > 0);
    obj.cas_word(cur, new, Ordering::Acquire, Ordering::Relaxed)
        .ok()?;
    if abandoned {
        obj.record_abandonment(cur);
    }
    obj.fresh().store(0, Ordering::Relaxed);
    H::crash_point("lock.after_abandon_cas");
    obj.count().store(1, Ordering::Relaxed);
    obj.note_acquired();
    if sleepers > 0 {
        obj.wake(u32::MAX >> 1); // all re-target to us
    }
    Some(if abandoned {
        Attempt::Got(WaitStatus::Abandoned, Undo::Abandoned(cur))
    } else {
        Attempt::Got(WaitStatus::Acquired, Undo::Release)
    })
}

/// Takes back an acquisition made by [`attempt`] for `me`.
pub(crate) fn undo<H: Host>(obj: &H, me: Token, undo: Undo) -> Result<()> {
    match undo {
        Undo::Release => super::release::release_as(obj, me),
        Undo::Recursion => {
            let count = obj.count().load(Ordering::Relaxed);
            obj.count()
                .store(count.saturating_sub(1).max(1), Ordering::Relaxed);
            Ok(())
        }
        Undo::Abandoned(dead) => {
            obj.unrecord_abandonment();
            obj.count().store(0, Ordering::Relaxed);
            let mut cur = obj.load_word(Ordering::Relaxed);
            // Only the owner changes the word, apart from others setting WAITERS.
            while let Err(actual) = obj.cas_word(
                cur,
                cur.keep_waiters(LockWord::owned_by(dead.token())),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                cur = actual;
            }
            // `cur` came out of the compare-and-swap chain on the word, so it carries the
            // WAITERS of a waiter that announced itself on our token; the sleeper count alone
            // could be read stale (a store-buffering race the loom model found: the waiter
            // counts itself after announcing, we count after writing).
            if cur.has_waiters() || obj.sleepers().load(Ordering::Acquire) > 0 {
                obj.wake(1);
            }
            Ok(())
        }
    }
}
