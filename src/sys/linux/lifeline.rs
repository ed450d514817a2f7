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

use std::sync::atomic::{AtomicU32, Ordering};

/// The kernel's robust-futex bits (`linux/futex.h`).
pub(super) const OWNER_DIED: u32 = 0x4000_0000;
/// Set when somebody may sleep on the word; makes the kernel wake at the owner's death.
pub(super) const WAITERS: u32 = 0x8000_0000;
/// The owner's thread id.
pub(super) const TID_MASK: u32 = 0x3FFF_FFFF;

/// Byte offset of the futex word inside this C library's `pthread_mutex_t`
/// (glibc: `__lock` is the first field; musl: `_m_lock` is the second int).
#[cfg(not(target_env = "musl"))]
pub(super) const WORD_OFFSET: u32 = 0;
#[cfg(target_env = "musl")]
pub(super) const WORD_OFFSET: u32 = 4;

/// Which C library's `pthread_mutex_t` layout the lifelines this process makes have.
#[cfg(not(target_env = "musl"))]
pub(super) const LIBC: u32 = super::registry_layout::LIBC_GLIBC;
#[cfg(target_env = "musl")]
pub(super) const LIBC: u32 = super::registry_layout::LIBC_MUSL;

const _: () = assert!(size_of::<libc::pthread_mutex_t>() <= super::registry_layout::LIFELINE_SPACE);

/// Whether a lifeline word says its thread has ended.
pub(super) fn is_dead(word: u32) -> bool {
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
pub(super) unsafe fn init_and_hold(mutex: *mut u8, word: &AtomicU32) -> Result<(), i32> {
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
