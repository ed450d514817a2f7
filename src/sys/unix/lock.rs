//! Acquiring and releasing on Linux: the entry points of `RawMutex`, which find the calling
//! thread's token and run the lock protocol (`crate::protocol`) on the object, with the
//! biased thread's own fast paths inlined into the caller.
//!
//! The lock word (`crate::protocol::LockWord`) holds the owner's token, or 0 when free.
//! Uncontended, acquiring is one compare-and-swap of 0 to our token, and releasing one swap
//! back to 0. Before any contention a mutex may instead be *biased* to the thread that keeps
//! taking it, which then needs no atomic read-modify-write at all (`protocol/bias.rs`). What
//! the protocol needs of Linux is `host.rs`.

use super::host::owner_in;
use super::layout::ObjectPage;
use super::lifeline::Lifeline;
use super::object::Object;
use super::root::Root;
use crate::protocol::release::not_owner;
use crate::protocol::{LockWord, Owner, acquire, bias, release as protocol_release};
use crate::sys::contract::Result;
use crate::sys::contract::WaitStatus;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Waits for `obj` (the caller checked the handle's access).
#[inline(always)]
pub(super) fn wait(obj: &Object, timeout: Option<Duration>) -> Result<WaitStatus> {
    match obj.existing_token() {
        Some(me) => acquire::lock(obj, me, timeout),
        None => wait_unregistered(obj, timeout),
    }
}

/// The first wait of a thread that has no token yet.
#[inline(never)]
fn wait_unregistered(obj: &Object, timeout: Option<Duration>) -> Result<WaitStatus> {
    acquire::acquire(obj, obj.token()?, timeout, true)
}

/// Waits for `obj` without taking a bias: for a handle whose acquisitions are timed, which
/// would unbias at once (`note_acquired`), so that its process does not pay for registering
/// the barrier biasing needs (`barrier.rs`: a `membarrier` call and a look at
/// `/proc/self/stat`, which the `namedmutex` command would pay at every start).
pub(super) fn wait_without_bias(obj: &Object, timeout: Option<Duration>) -> Result<WaitStatus> {
    acquire::acquire(obj, obj.token()?, timeout, false)
}

/// Releases `obj` once on behalf of the calling thread.
#[inline(always)]
pub(super) fn release(obj: &Object) -> Result<()> {
    let Some(me) = obj.existing_token() else {
        return Err(not_owner()); // a thread never registered owns nothing
    };
    protocol_release::release(obj, me)
}

/// Records now as the time the calling thread acquired `obj`, if it has just taken its
/// first level of ownership (for `MutexOptions::time_acquisitions`: acquisitions that did
/// not wait record no time, to keep them fast). A biased hold is made ordinary first, so
/// that its release clears the time again (a biased release writes nothing shared).
pub(super) fn note_acquired(obj: &Object) {
    let Some(me) = obj.existing_token() else {
        return;
    };
    bias::unbias(obj, me); // no-op unless the word is biased to us
    let page = &obj.page;
    if LockWord::from_bits(page.lock_word().load(Ordering::Acquire)).token() == me
        && page.count().load(Ordering::Relaxed) == 1
    {
        page.acquired_ns()
            .store(super::clock::realtime_ns(), Ordering::Relaxed);
    }
}

/// Gives the mutex up the way a crash would, with `note` saying why: the next acquirer
/// gets `WAIT_ABANDONED`, and finds this process and thread recorded as the abandoner. The
/// calling thread must own it (at any recursion depth; all of it is given up).
pub(super) fn abandon(obj: &Object, note: &str) -> Result<()> {
    let Some(me) = obj.existing_token() else {
        return Err(not_owner());
    };
    abandon_as(obj, me, note)
}

/// [`abandon`] for the owner token `me` (the calling thread's, found by the caller).
pub(super) fn abandon_as(obj: &Object, me: u64, note: &str) -> Result<()> {
    protocol_release::abandon(obj, me, || {
        let (pid, tid) = obj.page.last_abandoner();
        pid.store(super::os::process_id(), Ordering::Relaxed);
        tid.store(super::os::thread_id(), Ordering::Relaxed);
        obj.page.set_abandon_note(note);
    })
}

/// Whether the page's owner died holding it and no acquirer has been told yet (so an
/// object kept for its report must stay). An owner whose liveness cannot be read counts as
/// dead: keeping a file too long is the lesser harm than losing a report.
pub(super) fn unreported_abandonment(page: &ObjectPage, root: &Root) -> bool {
    let word = LockWord::from_bits(page.lock_word().load(Ordering::Acquire));
    if word.is_free() {
        return false;
    }
    if word.is_biased() && page.bias_depth().load(Ordering::Acquire) == 0 {
        return false; // biased to a thread that did not hold it
    }
    !matches!(owner_in(page, root, word), Owner::Alive::<Lifeline> { .. })
}
