//! Lifelines: one robust, process-shared `pthread_mutex_t` per registered thread, locked by
//! that thread for its whole life and never unlocked.
//!
//! When a thread ends in any way (it returns, its process exits, is killed, or execs), the
//! kernel walks the thread's robust list and marks every robust mutex it still holds with
//! `FUTEX_OWNER_DIED`, waking a sleeper. That is the only reliable death notice Linux gives
//! across processes, and it costs nothing while the thread lives. We pre-set
//! `FUTEX_WAITERS` in the lifeline word so that the kernel always issues the wake: waiters
//! on a mutex sleep on its futex word *and* on the owner's lifeline (see `crate::protocol::sleep`).
//!
//! This is the one module that calls into the C library's pthread functions; the memory
//! they work on lies in the thread registry (`registry.rs`), which is never unmapped.
#![allow(unsafe_code)]

use super::super::registry::{Liveness, Registry};
use super::super::registry_layout::{LIFELINE_SPACE, slot, slot_state};
use crate::sys::contract::{Error, ErrorKind, Result};
use std::sync::atomic::{AtomicU32, Ordering};

/// The kernel's robust-futex bits (`linux/futex.h`).
pub(crate) const OWNER_DIED: u32 = 0x4000_0000;
/// Set when somebody may sleep on the word; makes the kernel wake at the owner's death.
pub(crate) const WAITERS: u32 = 0x8000_0000;
/// The owner's thread id.
pub(crate) const TID_MASK: u32 = 0x3FFF_FFFF;

/// Byte offset of the futex word inside this C library's `pthread_mutex_t`
/// (glibc: `__lock` is the first field; musl: `_m_lock` is the second int).
#[cfg(not(target_env = "musl"))]
pub(crate) const WORD_OFFSET: u32 = 0;
#[cfg(target_env = "musl")]
pub(crate) const WORD_OFFSET: u32 = 4;

/// Which C library's `pthread_mutex_t` layout the lifelines this process makes have.
#[cfg(not(target_env = "musl"))]
pub(crate) const LIBC: u32 = super::super::registry_layout::LIBC_GLIBC;
#[cfg(target_env = "musl")]
pub(crate) const LIBC: u32 = super::super::registry_layout::LIBC_MUSL;

const _: () =
    assert!(size_of::<libc::pthread_mutex_t>() <= super::super::registry_layout::LIFELINE_SPACE);

/// An owner's lifeline word in a registry: equal when it is the same word.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Lifeline(pub &'static AtomicU32);

impl PartialEq for Lifeline {
    fn eq(&self, other: &Lifeline) -> bool {
        std::ptr::eq(self.0, other.0)
    }
}

impl Lifeline {
    /// Whether the word no longer holds `value`, which a waiter read while its owner lived:
    /// then the owner died (or its slot moved on).
    #[inline]
    pub(crate) fn changed_from(self, value: u32) -> bool {
        self.0.load(Ordering::Relaxed) != value
    }

    /// Wakes every thread watching this lifeline (its owner died and the kernel woke one).
    pub(crate) fn wake_watchers(self) {
        super::futex::wake(self.0, u32::MAX >> 1);
    }
}

/// Whether a lifeline word says its thread has ended.
pub(crate) fn is_dead(word: u32) -> bool {
    word & OWNER_DIED != 0 || word & TID_MASK == 0
}

/// Initialises a robust, process-shared mutex at `mutex` and locks it for the calling
/// thread, then sets `FUTEX_WAITERS` in `word` (the mutex's futex word).
///
/// # Safety
///
/// `mutex` must point to `LIFELINE_SPACE` writable bytes of a shared mapping that stays
/// mapped for the life of the process, aligned for `pthread_mutex_t`, which no other thread
/// uses while this runs (the caller holds the slot in the `CLAIMING` state), and `word` must
/// be the futex word inside it.
pub(crate) unsafe fn init_and_hold(mutex: *mut u8, word: &AtomicU32) -> Result<(), i32> {
    let m = mutex.cast::<libc::pthread_mutex_t>();
    let mut attr = std::mem::MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
    // SAFETY: `attr` is a local we initialise with pthread_mutexattr_init before any other
    // use and destroy at the end; `m` satisfies the caller's contract: writable, aligned,
    // mapped for the life of the process, used by nobody else now. Re-initialising a
    // lifeline whose thread died is allowed: a dead owner has no robust list any more.
    unsafe {
        let a = attr.as_mut_ptr();
        let mut rc = libc::pthread_mutexattr_init(a);
        if rc == 0 {
            rc = libc::pthread_mutexattr_setpshared(a, libc::PTHREAD_PROCESS_SHARED);
        }
        if rc == 0 {
            rc = libc::pthread_mutexattr_setrobust(a, libc::PTHREAD_MUTEX_ROBUST);
        }
        if rc == 0 {
            rc = libc::pthread_mutex_init(m, a);
        }
        libc::pthread_mutexattr_destroy(a);
        if rc != 0 {
            return Err(rc);
        }
        // The mutex is fresh, so trylock succeeds; it also links the mutex into this
        // thread's robust list, which is what makes the kernel report our death.
        match libc::pthread_mutex_trylock(m) {
            0 => {}
            libc::EOWNERDEAD => {
                libc::pthread_mutex_consistent(m);
            }
            rc => return Err(rc),
        }
    }
    word.fetch_or(WAITERS, Ordering::AcqRel);
    Ok(())
}

// ----- the Linux flavour's side of the registry (`registry.rs`) -----

/// The registry file's name in a user directory.
pub(crate) const REGISTRY_FILE: &str = "registry";
/// The registry format version of this flavour.
pub(crate) const REGISTRY_VERSION: u32 = 1;
/// Added to the object format version by a flavour whose tokens mean something else: none.
pub(crate) const OBJECT_FLAVOUR: u32 = 0;

/// What this flavour keeps per registry in a process: nothing.
#[derive(Default)]
pub(crate) struct Local {}

/// The lifeline word of slot `index`, if the slot's recorded layout is one we know.
fn lifeline_word(registry: &'static Registry, index: u32) -> Option<&'static AtomicU32> {
    let base = registry.slot_offset(index);
    let offset = registry
        .map
        .u32(base + slot::LIFELINE_WORD)
        .load(Ordering::Relaxed);
    matches!(offset, 0 | 4).then(|| registry.map.u32(base + slot::LIFELINE + offset as usize))
}

/// Whether slot `index` (whose word holds `state`) may be claimed: never used, or its thread
/// is dead and its lifeline has our C library's layout.
pub(crate) fn reusable(
    registry: &'static Registry,
    index: u32,
    _generation: u32,
    state: u32,
) -> bool {
    match state {
        slot_state::VIRGIN | slot_state::RETIRED => true,
        slot_state::LIVE => {
            let base = registry.slot_offset(index);
            registry.map.u32(base + slot::LIBC).load(Ordering::Relaxed) == LIBC
                && lifeline_word(registry, index)
                    .is_some_and(|w| is_dead(w.load(Ordering::Acquire)))
        }
        _ => false,
    }
}

/// Claims a slot for the calling thread and returns its token part.
pub(crate) fn claim_thread(registry: &'static Registry) -> Result<u64> {
    registry.claim_slot(|index| fill(registry, index))
}

/// Sets up the lifeline of slot `index`, which the calling thread is claiming.
fn fill(registry: &'static Registry, index: u32) -> Result<bool> {
    let base = registry.slot_offset(index);
    let map = &registry.map;
    map.u32(base + slot::LIFELINE_WORD)
        .store(WORD_OFFSET, Ordering::Relaxed);
    map.u32(base + slot::LIBC).store(LIBC, Ordering::Relaxed);
    let word = map.u32(base + slot::LIFELINE + WORD_OFFSET as usize);
    let mutex = map.raw(base + slot::LIFELINE, LIFELINE_SPACE);
    // SAFETY: `mutex` is LIFELINE_SPACE bytes inside our own registry, which is mapped
    // read-write and leaked (never unmapped); slot offsets are multiples of 128 from a
    // page-aligned base, so it is aligned for pthread_mutex_t; the slot is in the CLAIMING
    // state, which only this thread could set, so nobody else uses it; `word` is its futex
    // word at the offset for this C library.
    let held = unsafe { init_and_hold(mutex, word) };
    if let Err(rc) = held {
        // Leave the slot CLAIMING (unusable) rather than hand out a slot without a working
        // lifeline.
        return Err(Error::io(
            ErrorKind::Io,
            "cannot set up this thread's lifeline in the registry",
            std::io::Error::from_raw_os_error(rc),
        ));
    }
    super::super::fault::point("register.after_lifeline");
    // Waiters still watching the slot's previous (dead) thread re-check now: they find the
    // slot CLAIMING, so its old token dead.
    super::futex::wake(word, u32::MAX >> 1);
    Ok(true)
}

/// Whether the thread of slot `index` at `generation` still lives.
pub(crate) fn liveness(registry: &'static Registry, index: u32, generation: u32) -> Liveness {
    let word = registry.slot_word(index);
    let live = u64::from(generation) << 32 | u64::from(slot_state::LIVE);
    if word.load(Ordering::Acquire) != live {
        return Liveness::Dead;
    }
    let Some(lifeline) = lifeline_word(registry, index) else {
        return Liveness::Dead;
    };
    let value = lifeline.load(Ordering::Acquire);
    // Re-read the slot word: if it changed meanwhile, `value` may be a new thread's.
    if is_dead(value) || word.load(Ordering::Acquire) != live {
        return Liveness::Dead;
    }
    Liveness::Alive {
        lifeline: Lifeline(lifeline),
        value,
    }
}

/// A handle of `obj` is closing. Nothing to do on Linux: an owner thread's death reaches
/// the object through its lifeline, whatever handles are open.
#[inline(always)]
pub(crate) fn on_close(_obj: &std::sync::Arc<super::super::object::Object>) {}
