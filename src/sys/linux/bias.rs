//! Biased locking: a mutex that one thread keeps taking costs it plain loads and stores.
//!
//! The first thread to acquire a fresh mutex (lock word `BIASABLE`) writes `token | BIASED`
//! into the word: the mutex is then *biased* to it until somebody else wants it. The biased
//! thread's recursion count lives in `BIAS_DEPTH`, which only it writes; it holds the mutex
//! iff that depth is not 0. It acquires with depth + 1, then a check that the word is still
//! exactly `token | BIASED`; it releases with depth − 1 and the same check. There is no
//! atomic read-modify-write and no fence on that path (a compiler fence only).
//!
//! Another thread that finds the word biased *revokes* the bias: it sets `WAITERS` in the
//! word (the request), runs the heavy side of an asymmetric barrier (`barrier.rs`), then
//! reads the depth. Either the biased thread's check sees the request, or the requester sees
//! the depth the biased thread wrote. If the depth is 0, the requester frees the word (0, an
//! ordinary free mutex); otherwise the biased thread holds the mutex and the requester waits
//! as for any owner, on the futex word and the owner's lifeline, so a biased owner's death is
//! reported like any other. The biased thread, when its check fails, turns its bias into
//! ordinary ownership ([`unbias`]): COUNT = depth and the word = its token, or, at depth 0,
//! a free word and a wake-up.
//!
//! A mutex is biased at most once in its life (`BIASABLE` is written only when the object is
//! made or reset with no handle left anywhere): a biased thread preempted inside its fast path
//! may store to the depth long after its bias was revoked, and no later bias may share the
//! field with that store.

use super::futex;
use super::lock_word::{BIASABLE, BIASED, MAX_COUNT, WAITERS};
use super::object::Object;
use std::sync::atomic::{Ordering, compiler_fence};

/// Acquires for `me` if `cur` (the lock word just read) is biased to `me`, or is a fresh mutex
/// this process may bias. `false`: take the ordinary path.
#[inline(always)]
pub(super) fn try_acquire(obj: &Object, me: u64, cur: u64) -> bool {
    let mine = me | BIASED;
    if cur == mine {
        let depth = obj.page.bias_depth();
        let d = depth.load(Ordering::Relaxed);
        super::fault::stall("bias.before_depth");
        if d < MAX_COUNT {
            depth.store(d + 1, Ordering::Relaxed);
            // Keep the check after the store; the revoker's barrier orders them in hardware.
            compiler_fence(Ordering::SeqCst);
            if obj.page.lock_word().load(Ordering::Acquire) == mine {
                return true;
            }
            // Revoked meanwhile: undo; the slow path turns the bias into ownership.
            depth.store(d, Ordering::Relaxed);
        }
        return false;
    }
    cur == BIASABLE && super::barrier::bias_allowed() && take(obj, mine)
}

/// Takes the bias of a fresh mutex, holding it once.
#[cold]
fn take(obj: &Object, mine: u64) -> bool {
    let word = obj.page.lock_word();
    if word
        .compare_exchange(BIASABLE, mine, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        return false;
    }
    super::fault::point("bias.after_take");
    obj.page.fresh().store(0, Ordering::Relaxed); // biased once: never biasable again
    let depth = obj.page.bias_depth();
    depth.store(1, Ordering::Relaxed);
    compiler_fence(Ordering::SeqCst);
    if word.load(Ordering::Acquire) == mine {
        return true;
    }
    depth.store(0, Ordering::Relaxed); // revoked before we held it: not ours
    false
}

/// Releases once for `me`, whose bias the lock word names exactly. `false`: `me` does not
/// hold the mutex.
#[inline(always)]
pub(super) fn release(obj: &Object, me: u64) -> bool {
    let depth = obj.page.bias_depth();
    let d = depth.load(Ordering::Relaxed);
    if d == 0 {
        return false;
    }
    // Release: a revoker that reads the new depth sees our critical section.
    depth.store(d - 1, Ordering::Release);
    compiler_fence(Ordering::SeqCst);
    if obj.page.lock_word().load(Ordering::Relaxed) != me | BIASED {
        unbias(obj, me);
    }
    true
}

/// Turns `me`'s bias into ordinary ownership (depth > 0) or a free mutex (depth 0), because
/// somebody asked for it (or `me` needs the ordinary path). Does nothing if the word is not
/// biased to `me` (any more).
#[cold]
pub(super) fn unbias(obj: &Object, me: u64) {
    let page = &obj.page;
    let word = page.lock_word();
    let mine = me | BIASED;
    loop {
        let cur = word.load(Ordering::Acquire);
        if cur & !WAITERS != mine {
            return;
        }
        let d = page.bias_depth().load(Ordering::Relaxed);
        page.fresh().store(0, Ordering::Relaxed); // never biasable again
        let new = if d > 0 {
            page.count().store(d, Ordering::Relaxed);
            me | (cur & WAITERS)
        } else {
            0
        };
        if word
            .compare_exchange(cur, new, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            if new == 0 && cur & WAITERS != 0 {
                futex::wake(page.futex_word(), 1);
            }
            return;
        }
    }
}

/// What a revocation found.
pub(super) enum Revoked {
    /// The word changed (the mutex may be free now): look again.
    Changed,
    /// The biased thread holds the mutex; the word is now this (with `WAITERS`).
    Held(u64),
}

/// Asks the live thread that `cur` is biased to for the mutex; frees the mutex if that
/// thread does not hold it.
#[cold]
pub(super) fn revoke(obj: &Object, cur: u64) -> Revoked {
    let page = &obj.page;
    let word = page.lock_word();
    let request = cur | WAITERS;
    if cur != request
        && word
            .compare_exchange(cur, request, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return Revoked::Changed;
    }
    super::barrier::heavy();
    if page.bias_depth().load(Ordering::Acquire) > 0 {
        return Revoked::Held(request);
    }
    // It holds nothing and will not take the mutex without seeing the request: free it.
    super::fault::point("bias.before_free");
    page.fresh().store(0, Ordering::Relaxed);
    if word
        .compare_exchange(request, 0, Ordering::Acquire, Ordering::Relaxed)
        .is_ok()
    {
        futex::wake(page.futex_word(), 1); // others may sleep on the request
    }
    Revoked::Changed
}

/// Whether the dead thread a biased lock word names held the mutex when it died.
pub(super) fn dead_holder_held(obj: &Object) -> bool {
    obj.page.bias_depth().load(Ordering::Acquire) > 0
}
