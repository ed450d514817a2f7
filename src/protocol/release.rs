//! Releasing: one level of recursion, the last release (a swap back to free, waking one
//! sleeper if `WAITERS` was set), the FRESH release, and giving a mutex up as a crash would.

use super::atomic::Atomic32;
use super::bias;
use super::host::Host;
use super::lock_word::{LockWord, Token};
use crate::sys::contract::{Error, ErrorKind, Result};
use std::sync::atomic::Ordering;

/// Releases `obj` once on behalf of the thread whose token is `me`: the biased thread's path
/// first, small enough to inline into the caller, then [`release_as`].
#[inline(always)]
pub(crate) fn release<H: Host>(obj: &H, me: Token) -> Result<()> {
    if obj.load_word(Ordering::Relaxed) == LockWord::biased_to(me) {
        return if bias::release(obj, me) {
            Ok(())
        } else {
            Err(not_owner())
        };
    }
    release_unbiased(obj, me)
}

#[inline(never)]
fn release_unbiased<H: Host>(obj: &H, me: Token) -> Result<()> {
    release_as(obj, me)
}

/// Releases `obj` once on behalf of the owner token `me` (a thread's, or a process
/// owner's). A word biased to `me` exactly is the caller's to release first
/// ([`bias::release`]), inlined where it is called. Always inlined: `release_unbiased` is
/// its one call on the thread path (without the attribute the generic function stayed a
/// second call there, measured in a `perf` profile of the no-bias loop).
#[inline(always)]
pub(crate) fn release_as<H: Host>(obj: &H, me: Token) -> Result<()> {
    if obj.load_word(Ordering::Relaxed).token() != me {
        unbias_to_release(obj, me)?;
    }
    let count = obj.count().load(Ordering::Relaxed);
    if count > 1 {
        obj.count().store(count - 1, Ordering::Relaxed);
        return Ok(());
    }
    // COUNT means something only while the word names an owner: no need to clear it.
    obj.clear_acquired();
    H::crash_point("unlock.before_swap");
    if obj.fresh().load(Ordering::Relaxed) != 0 {
        release_fresh(obj, me);
        return Ok(());
    }
    let old = obj.swap_word(LockWord::FREE, Ordering::Release);
    if old.has_waiters() {
        obj.wake(1);
    }
    Ok(())
}

/// [`release_as`] found the word not naming `me` as its owner: `me` may still hold it
/// biased, with a revocation request (`WAITERS`) in the word; it then becomes an ordinary
/// owner first. Out of line: the uncontended release never comes here, and inlining the
/// revocation (a system call and its error paths) into every release made the release
/// too big for its callers to inline (the async guard's drop, measured with `perf`).
#[cold]
#[inline(never)]
fn unbias_to_release<H: Host>(obj: &H, me: Token) -> Result<()> {
    let cur = obj.load_word(Ordering::Relaxed);
    if cur.is_biased() && cur.bias_holder() == me {
        // Asked to give up the bias: become an ordinary owner first (or find we own nothing).
        bias::unbias(obj, me);
        if obj.load_word(Ordering::Relaxed).token() == me {
            return Ok(());
        }
    }
    Err(not_owner())
}

/// The last release of a mutex nobody else has wanted yet: back to `BIASABLE`, unless a
/// waiter showed up (then it is an ordinary mutex from now on). Every release of a process
/// that may not bias comes here: inlined, it costs what the ordinary swap does.
#[inline]
fn release_fresh<H: Host>(obj: &H, me: Token) {
    // Exactly our token: no waiter has set WAITERS, so nobody sleeps or will sleep on the
    // value we replace (a waiter sets WAITERS before it sleeps, with a CAS that fails now).
    if obj
        .cas_word(
            LockWord::owned_by(me),
            LockWord::BIASABLE,
            Ordering::Release,
            Ordering::Relaxed,
        )
        .is_ok()
    {
        return;
    }
    obj.fresh().store(0, Ordering::Relaxed);
    let old = obj.swap_word(LockWord::FREE, Ordering::Release);
    if old.has_waiters() {
        obj.wake(1);
    }
}

/// Gives the mutex up the way a crash would: the next acquirer gets `WAIT_ABANDONED`. The
/// owner `me` must hold it (at any recursion depth; all of it is given up). `record` runs
/// once ownership is checked and before the word changes: the caller writes there who gave
/// it up and why.
pub(crate) fn abandon<H: Host>(obj: &H, me: Token, record: impl FnOnce()) -> Result<()> {
    bias::unbias(obj, me); // a biased hold becomes ordinary ownership first (no-op otherwise)
    let mut cur = obj.load_word(Ordering::Acquire);
    if cur.token() != me {
        return Err(not_owner());
    }
    record();
    obj.fresh().store(0, Ordering::Relaxed);
    obj.clear_acquired();
    H::crash_point("abandon.before_swap");
    // Only the owner changes the word, apart from others setting WAITERS.
    while let Err(actual) = obj.cas_word(
        cur,
        cur.keep_waiters(LockWord::ABANDONED),
        Ordering::Release,
        Ordering::Relaxed,
    ) {
        cur = actual;
    }
    if cur.has_waiters() || obj.sleepers().load(Ordering::Acquire) > 0 {
        obj.wake(u32::MAX >> 1); // all look again and find it abandoned
    }
    Ok(())
}

/// Gives up, on behalf of its dead owner, the mutex whose lock word still names that owner
/// (`dead`, read from the word): the next acquirer gets `WAIT_ABANDONED`, and every sleeper,
/// in every process, wakes to find it so. For platforms where no kernel changes a word at an
/// owner's death (the portable backend's watcher). `record` runs first, unless the word no
/// longer names `dead`: the caller writes there who died. False when the word had moved on
/// (an acquirer took the mutex from the dead owner first).
#[cfg_attr(
    all(target_os = "linux", not(feature = "portable-backend")),
    allow(dead_code)
)] // the portable backend's
pub(crate) fn abandon_dead<H: Host>(obj: &H, dead: LockWord, record: impl FnOnce()) -> bool {
    let mut cur = obj.load_word(Ordering::Acquire);
    if cur.token() != dead.token() || cur.is_free() || cur.is_given_up() {
        return false;
    }
    record();
    // Only waiters setting WAITERS change a dead owner's word, apart from acquirers taking it.
    while let Err(actual) = obj.cas_word(
        cur,
        cur.keep_waiters(LockWord::ABANDONED),
        Ordering::Release,
        Ordering::Relaxed,
    ) {
        if actual.token() != dead.token() {
            return false;
        }
        cur = actual;
    }
    obj.wake(u32::MAX >> 1);
    true
}

/// The refusal of a release by a thread that does not own the mutex.
#[cold]
pub(crate) fn not_owner() -> Error {
    Error::new(
        ErrorKind::NotOwner,
        "the calling thread does not own the mutex (ReleaseMutex by a non-owner)",
    )
}
