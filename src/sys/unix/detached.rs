//! Ownership by the process instead of a thread, for async tasks (`crate::async_lock`).
//!
//! A task moves between executor threads, so it cannot use the token of the thread it runs
//! on. Instead each process has one *owner thread* per registry: a thread that registers
//! there (claiming a slot and its lifeline, like any thread) and then sleeps until the
//! process ends. Its token is the process's: acquisitions made with it are owned by no
//! running thread, may be released from any thread, and are abandoned when the process
//! dies or execs (the owner thread dies with it, and the kernel reports its lifeline as for
//! any thread). Tasks of one process share the token, so it never recurses
//! (`Reentry::Exclusive`): a task finding the lock word owned by it waits like anyone
//! else, and the lock word alone keeps tasks apart (the platform-neutral layer's gate only
//! orders the ones that wait).
//!
//! The lock protocol is `crate::protocol`'s, with this token as `me`: a process-owned acquisition
//! is never biased, and blocking waits run on a helper thread with a cancel word.

use super::futex;
use super::object::Object;
use super::registry::Registry;
use crate::protocol::acquire::{self, Attempt, Reentry, Undo};
use crate::protocol::{release as protocol_release, sleep};
use crate::sys::contract::WaitStatus;
use crate::sys::contract::{Error, ErrorKind, Result};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// The owner threads of this process: (registry id, token part, pid that made it).
static OWNERS: Mutex<Vec<(usize, u64, u32)>> = Mutex::new(Vec::new());

/// The process's owner token part in `registry`, starting its owner thread on first use.
pub(super) fn owner_part(registry: &'static Registry) -> Result<u64> {
    let pid = std::process::id();
    let mut owners = OWNERS.lock().unwrap_or_else(|e| e.into_inner());
    // A forked child inherits the table but not the threads: drop the parent's entries.
    owners.retain(|&(_, _, made_by)| made_by == pid);
    if let Some(&(_, part, _)) = owners.iter().find(|(id, _, _)| *id == registry.id()) {
        return Ok(part);
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("namedmutex-owner".into())
        .spawn(move || {
            let claimed = super::thread::token_part(registry);
            let ok = claimed.is_ok();
            let _ = tx.send(claimed);
            if ok {
                // This thread's life is the process's ownership: it never ends on its own.
                loop {
                    std::thread::park();
                }
            }
        })
        .map_err(|e| {
            Error::io(
                ErrorKind::ResourceExhausted,
                "cannot start the thread that owns a process's async acquisitions",
                e,
            )
        })?;
    let part = rx.recv().map_err(|_| {
        Error::new(
            ErrorKind::Io,
            "the thread that owns a process's async acquisitions ended before registering",
        )
    })??;
    owners.push((registry.id(), part, pid));
    Ok(part)
}

/// What a helper thread waits with: the shared object (a reference keeps its mapping),
/// not a handle.
pub(crate) struct Waiter(pub(super) std::sync::Arc<Object>);

/// One acquisition owned by the process: the token it was made with, and how to take it
/// back without losing what it saw.
pub(crate) struct Claim {
    me: u64,
    undo: Undo,
}

/// Acquires `obj` for the process if that needs no waiting.
#[inline]
pub(super) fn try_acquire(obj: &Object) -> Result<Option<(WaitStatus, Claim)>> {
    let me = obj.process_token()?;
    // A free word: one compare-and-swap, as a thread's uncontended acquisition. A fresh
    // (`BIASABLE`) word is taken the same way and so becomes an ordinary mutex, as after
    // contention: the process never biases, and keeping the word biasable would send every
    // acquisition through `attempt` (which reads the clock) and every release through the
    // FRESH path.
    if acquire::take_free_for_good(obj, me) {
        let claim = Claim {
            me,
            undo: Undo::Release,
        };
        return Ok(Some((WaitStatus::Acquired, claim)));
    }
    match acquire::attempt(obj, me, Reentry::Exclusive, false)? {
        Attempt::Got(status, undo) => Ok(Some((status, Claim { me, undo }))),
        Attempt::Busy { .. } => Ok(None),
    }
}

/// Waits (blocking the calling thread, whichever it is) until the process owns `obj`, the
/// timeout passes, or `cancel` becomes non-zero; `None` for the last two.
pub(super) fn acquire(
    obj: &Object,
    timeout: Option<Duration>,
    cancel: &AtomicU32,
) -> Result<Option<(WaitStatus, Claim)>> {
    let me = obj.process_token()?;
    match sleep::wait_for(obj, me, Reentry::Exclusive, timeout, Some(cancel))? {
        (status, Some(undo)) if status.is_acquired() => Ok(Some((status, Claim { me, undo }))),
        _ => Ok(None),
    }
}

/// Releases a process-owned acquisition (from any thread).
#[inline]
pub(super) fn release(obj: &Object, claim: Claim) -> Result<()> {
    protocol_release::release_as(obj, claim.me).map_err(|_| not_owned())
}

/// Takes back an acquisition nobody used (its waiter was cancelled): an abandoned mutex
/// goes back to its dead owner, so that the next acquirer is still told.
pub(super) fn undo(obj: &Object, claim: Claim) -> Result<()> {
    match claim.undo {
        Undo::Release | Undo::Recursion => release(obj, claim),
        abandoned => acquire::undo(obj, claim.me, abandoned),
    }
}

/// Makes a blocked [`acquire`](fn@acquire) with this cancel word return.
pub(super) fn cancel(word: &AtomicU32) {
    word.store(1, Ordering::Release);
    futex::wake(word, u32::MAX >> 1);
}

fn not_owned() -> Error {
    Error::new(
        ErrorKind::NotOwner,
        "the process no longer owns the mutex it acquired for a task (was the object damaged?)",
    )
}
