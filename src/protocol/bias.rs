//! Biased locking: a mutex that one thread keeps taking costs it plain loads and stores.
//!
//! The first thread to acquire a fresh mutex (lock word `BIASABLE`) writes its biased word
//! (`token | BIASED`): the mutex is then *biased* to it until somebody else wants it. The
//! biased thread's recursion count lives in `BIAS_DEPTH`, which only it writes; it holds the
//! mutex iff that depth is not 0. It acquires with depth + 1, then a check that the word is
//! still exactly its biased word; it releases with depth − 1 and the same check. There is no
//! atomic read-modify-write on that path, only the light side of an asymmetric barrier (a
//! compiler fence on Linux).
//!
//! Another thread that finds the word biased *revokes* the bias: it sets `WAITERS` in the
//! word (the request), runs the heavy side of the barrier (`membarrier` on Linux), then reads
//! the depth. Either the biased thread's check sees the request, or the requester sees the
//! depth the biased thread wrote. If the depth is 0, the requester frees the word (an
//! ordinary free mutex); otherwise the biased thread holds the mutex and the requester waits
//! as for any owner, on the futex word and the owner's lifeline, so a biased owner's death is
//! reported like any other. The biased thread, when its check fails, turns its bias into
//! ordinary ownership ([`unbias`]): COUNT = depth and the word = its token, or, at depth 0,
//! a free word and a wake-up.
//!
//! A mutex is biased at most once in its life (`BIASABLE` is written only when the object is
//! made or reset with no handle left anywhere, and by the FRESH release of a mutex that was
//! never biased): a biased thread preempted inside its fast path may store to the depth long
//! after its bias was revoked, and no later bias may share the field with that store.

use super::atomic::Atomic32;
use super::host::Host;
use super::lock_word::{LockWord, MAX_COUNT, Token};
use std::sync::atomic::Ordering;

/// Acquires for `me` if `cur` (the lock word just read) is biased to `me`, or is a fresh mutex
/// this process may bias. `false`: take the ordinary path.
#[inline(always)]
pub(crate) fn try_acquire<H: Host>(obj: &H, me: Token, cur: LockWord) -> bool {
    let mine = LockWord::biased_to(me);
    if cur == mine {
        let depth = obj.bias_depth();
        let d = depth.load(Ordering::Relaxed);
        H::stall_point("bias.before_depth");
        if d < MAX_COUNT {
            depth.store(d + 1, Ordering::Relaxed);
            // Keep the check after the store; the revoker's heavy barrier orders them.
            H::light_barrier();
            if obj.load_word(Ordering::Acquire) == mine {
                return true;
            }
            // Revoked meanwhile: undo; the slow path turns the bias into ownership.
            depth.store(d, Ordering::Relaxed);
        }
        return false;
    }
    cur == LockWord::BIASABLE && H::bias_allowed() && take(obj, mine)
}

/// Takes the bias of a fresh mutex, holding it once.
#[cold]
fn take<H: Host>(obj: &H, mine: LockWord) -> bool {
    if obj
        .cas_word(
            LockWord::BIASABLE,
            mine,
            Ordering::Acquire,
            Ordering::Relaxed,
        )
        .is_err()
    {
        return false;
    }
    H::crash_point("bias.after_take");
    obj.fresh().store(0, Ordering::Relaxed); // biased once: never biasable again
    let depth = obj.bias_depth();
    depth.store(1, Ordering::Relaxed);
    H::light_barrier();
    if obj.load_word(Ordering::Acquire) == mine {
        return true;
    }
    depth.store(0, Ordering::Relaxed); // revoked before we held it: not ours
    false
}

/// Releases once for `me`, whose biased word the lock word holds exactly. `false`: `me`
/// does not hold the mutex.
#[inline(always)]
pub(crate) fn release<H: Host>(obj: &H, me: Token) -> bool {
    let depth = obj.bias_depth();
    let d = depth.load(Ordering::Relaxed);
    if d == 0 {
        return false;
    }
    // Release: a revoker that reads the new depth sees our critical section.
    depth.store(d - 1, Ordering::Release);
    H::light_barrier();
    if obj.load_word(Ordering::Relaxed) != LockWord::biased_to(me) {
        unbias(obj, me);
    }
    true
}

/// Turns `me`'s bias into ordinary ownership (depth > 0) or a free mutex (depth 0), because
/// somebody asked for it (or `me` needs the ordinary path). Does nothing if the word is not
/// biased to `me` (any more).
#[cold]
pub(crate) fn unbias<H: Host>(obj: &H, me: Token) {
    let mine = LockWord::biased_to(me);
    loop {
        let cur = obj.load_word(Ordering::Acquire);
        if cur.token() != mine.bits() {
            return;
        }
        let d = obj.bias_depth().load(Ordering::Relaxed);
        obj.fresh().store(0, Ordering::Relaxed); // never biasable again
        let new = if d > 0 {
            obj.count().store(d, Ordering::Relaxed);
            cur.keep_waiters(LockWord::owned_by(me))
        } else {
            LockWord::FREE
        };
        if obj
            .cas_word(cur, new, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            if new == LockWord::FREE && cur.has_waiters() {
                obj.wake(1);
            }
            return;
        }
    }
}

/// What a revocation found.
pub(crate) enum Revoked {
    /// The word changed (the mutex may be free now): look again.
    Changed,
    /// The biased thread holds the mutex; the word is now this (with `WAITERS`).
    Held(LockWord),
}

/// Asks the live thread that `cur` is biased to for the mutex; frees the mutex if that
/// thread does not hold it.
#[cold]
pub(crate) fn revoke<H: Host>(obj: &H, cur: LockWord) -> Revoked {
    let request = cur.with_waiters();
    if cur != request
        && obj
            .cas_word(cur, request, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return Revoked::Changed;
    }
    H::heavy_barrier();
    if obj.bias_depth().load(Ordering::Acquire) > 0 {
        return Revoked::Held(request);
    }
    // It holds nothing and will not take the mutex without seeing the request: free it.
    H::crash_point("bias.before_free");
    obj.fresh().store(0, Ordering::Relaxed);
    // Release: the next owner may be a third thread, which must see the biased thread's
    // critical section; we saw it through BIAS_DEPTH and pass it on here (the model test
    // `a_revoked_bias_hands_the_data_to_a_third_thread` fails with Acquire alone).
    if obj
        .cas_word(request, LockWord::FREE, Ordering::AcqRel, Ordering::Relaxed)
        .is_ok()
    {
        obj.wake(1); // others may sleep on the request
    }
    Revoked::Changed
}

/// Whether the dead thread a biased lock word names held the mutex when it died.
pub(crate) fn dead_holder_held<H: Host>(obj: &H) -> bool {
    obj.bias_depth().load(Ordering::Acquire) > 0
}
