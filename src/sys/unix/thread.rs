//! The calling thread's registrations: for each registry it has used, its token part
//! (`generation << 32 | slot + 1`), kept in thread-local storage without destructors.
//!
//! No destructor is needed: a thread's slot is freed by its death, which the kernel records
//! in the slot's lifeline. The cache for the last registry used is one thread-local load,
//! which keeps the uncontended lock path at a single atomic instruction.

use super::registry::Registry;
use crate::sys::contract::{Error, ErrorKind, Result};
use std::cell::Cell;

/// How many registries (namespace roots) one thread can use.
const MAX_REGISTRIES_PER_THREAD: usize = 8;
const NONE: (usize, u64) = (usize::MAX, 0);

thread_local! {
    static LAST: Cell<(usize, u64)> = const { Cell::new(NONE) };
    static ALL: Cell<[(usize, u64); MAX_REGISTRIES_PER_THREAD]> =
        const { Cell::new([NONE; MAX_REGISTRIES_PER_THREAD]) };
}

/// The calling thread's token part in `registry`, registering the thread on first use.
#[inline]
pub(super) fn token_part(registry: &'static Registry) -> Result<u64> {
    let (id, part) = LAST.get();
    if id == registry.id() {
        return Ok(part);
    }
    token_part_slow(registry)
}

#[cold]
fn token_part_slow(registry: &'static Registry) -> Result<u64> {
    if let Some(part) = lookup(registry) {
        LAST.set((registry.id(), part));
        return Ok(part);
    }
    let mut all = ALL.get();
    let Some(free) = all.iter().position(|&(id, _)| id == usize::MAX) else {
        return Err(Error::new(
            ErrorKind::ResourceExhausted,
            format!(
                "one thread can use mutexes under at most {MAX_REGISTRIES_PER_THREAD} different namespace roots"
            ),
        ));
    };
    let part = super::lifeline::claim_thread(registry)?;
    all[free] = (registry.id(), part);
    ALL.set(all);
    LAST.set((registry.id(), part));
    Ok(part)
}

/// The calling thread's token part in `registry` if it has registered there (it cannot own a
/// mutex of that registry otherwise).
#[inline]
pub(super) fn existing_token_part(registry: &'static Registry) -> Option<u64> {
    let (id, part) = LAST.get();
    if id == registry.id() {
        return Some(part);
    }
    lookup(registry)
}

#[cold]
#[inline(never)]
fn lookup(registry: &'static Registry) -> Option<u64> {
    ALL.get()
        .iter()
        .find(|&&(id, _)| id == registry.id())
        .map(|&(_, part)| part)
}

/// Forgets every registration of the calling thread. Called in the child after `fork`: its
/// only thread is new, and must not present the forking thread's identity (the child does
/// not own what the parent owned).
pub(super) fn forget_after_fork() {
    LAST.set(NONE);
    ALL.set([NONE; MAX_REGISTRIES_PER_THREAD]);
}
