//! Waiting: the slow path's loop of attempt, poll, announce, sleep, and the rules that keep
//! wake-ups from being lost.
//!
//! A waiter that must block sets `WAITERS` in the lock word and sleeps on two words at once:
//! the lock word's futex half (a release changes it and wakes one sleeper) and the owner's
//! lifeline (the platform changes it and wakes a sleeper when the owner dies). So a death is
//! noticed at once, without polling; a sleeper woken that way wakes the others watching the
//! same lifeline. The rules:
//!
//! - **No lost wake-up.** A releaser that swaps out a word with `WAITERS` wakes one sleeper.
//!   A sleeper sets `WAITERS` (or finds it set) in the exact word it then sleeps on, so a
//!   release in between changes the futex value and the sleep returns at once.
//! - **Re-target.** Sleepers after a hand-off may still watch the previous owner's lifeline,
//!   so whoever acquires after sleeping wakes one sleeper (all, after an abandonment) to look
//!   again and watch the new owner.
//! - **Pass it on.** A waiter that leaves without the mutex (timeout, cancel) may have consumed
//!   the wake-up meant for the next sleeper: it sets `WAITERS` again and wakes one.
//! - **Backstop.** Sleeps are bounded where the platform says so ([`Host::sleep_until`]): a
//!   woken sleeper killed before it could pass the wake on strands nobody for long.

use super::acquire::{Attempt, Reentry, Undo, attempt};
use super::atomic::Atomic32;
use super::host::{Host, Owner, Wake, Watch};
use super::lock_word::{LockWord, Token};
use crate::sys::contract::Result;
use crate::sys::contract::WaitStatus;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Waits until `me` owns `obj`, the timeout passes, or `cancel` (a word the sleep also
/// watches) becomes non-zero, which ends the wait as a timeout does; `reentry`: what a word
/// `me` already owns gives ([`Reentry::Exclusive`]: `me` waits for its own release).
/// Returns how the wait ended and, when it acquired, how to take the acquisition back.
///
/// Inlined into the cold slow path, where `cancel` is `None` and drops out: as an outlined
/// call the contended path measured about 4% slower (bench scenario 4 at 4 processes, A/B
/// runs alternating with the build before async support).
#[inline]
pub(crate) fn wait_for<H: Host>(
    obj: &H,
    me: Token,
    reentry: Reentry,
    timeout: Option<Duration>,
    cancel: Option<&H::U32>,
) -> Result<(WaitStatus, Option<Undo>)> {
    let deadline = H::deadline_after(timeout);
    let poll = timeout == Some(Duration::ZERO);
    let mut slept = false;
    let mut polling = obj.start_polling();
    loop {
        let (cur, owner) = match attempt(obj, me, reentry, slept)? {
            Attempt::Got(status, undo) => {
                obj.finish_wait(slept);
                return Ok((status, Some(undo)));
            }
            Attempt::Busy { cur, owner } => (cur, owner),
        };
        let cancelled = || cancel.is_some_and(|c| c.load(Ordering::Acquire) != 0);
        let expired = || cancelled() || deadline.is_some_and(H::passed);
        if poll || expired() {
            give_up(obj);
            if slept {
                obj.finish_wait(true);
            }
            return Ok((WaitStatus::TimedOut, None));
        }
        if obj.poll(&mut polling, cur, owner, expired) {
            continue; // the word changed, the owner died, or the deadline passed: look again
        }
        let Some(expected) = announce_sleeper(obj, cur) else {
            continue;
        };
        // The lock word first: where only one word can be slept on, it is that one.
        let mut watches = [Watch::Mutex(obj, expected); 3];
        let mut n = 1;
        if let Owner::Alive { lifeline, value } = owner {
            watches[n] = Watch::Lifeline(lifeline, value);
            n += 1;
        }
        if let Some(cancel) = cancel {
            watches[n] = Watch::Cancel(cancel);
            n += 1;
        }
        obj.sleepers().fetch_add(1, Ordering::AcqRel);
        let woke = H::sleep(&watches[..n], H::sleep_until(deadline));
        obj.sleepers().fetch_sub(1, Ordering::AcqRel);
        slept = true;
        if let (Wake::Word(1), Owner::Alive { lifeline, .. }) = (woke, owner) {
            // The owner died and the platform woke only us: wake everyone else watching it.
            obj.wake_watchers(lifeline);
        }
    }
}

/// Sets `WAITERS` in the lock word if `cur` lacks it; returns the futex value to sleep on,
/// or `None` when the word changed meanwhile (look again).
pub(crate) fn announce_sleeper<H: Host>(obj: &H, cur: LockWord) -> Option<u32> {
    let expected = cur.with_waiters();
    if !cur.has_waiters()
        && obj
            .cas_word(cur, expected, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return None;
    }
    Some(expected.futex_value())
}

/// Leaving on timeout: if we may have consumed a wake-up meant for the next sleeper, or
/// others sleep watching a stale owner, pass one on, and make sure the owner's release
/// wakes them.
pub(crate) fn give_up<H: Host>(obj: &H) {
    if obj.sleepers().load(Ordering::Acquire) == 0 {
        return;
    }
    let mut cur = obj.load_word(Ordering::Relaxed);
    while !cur.is_free() && !cur.has_waiters() {
        match obj.cas_word(
            cur,
            cur.with_waiters(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        ) {
            Ok(()) => break,
            Err(actual) => cur = actual,
        }
    }
    obj.wake(1);
}
