//! Biased locking is off in the portable flavour. Its revoker needs a barrier that runs on
//! every thread that may hold a bias (`membarrier` on Linux); macOS has none, and FreeBSD's
//! is not in the `libc` crate. So no thread takes a bias: a fresh (biasable) mutex is taken
//! and released with one compare-and-swap each, as by a process that may not bias on Linux,
//! and the barriers below are never needed (they are kept correct anyway).

use std::sync::atomic::{Ordering, fence};

/// Whether threads of this process may take a bias: never.
#[inline(always)]
pub(crate) fn bias_allowed() -> bool {
    false
}

/// The revoker's side of the barrier: a full fence (no thread holds a bias to revoke).
pub(crate) fn heavy() {
    fence(Ordering::SeqCst);
}

/// Nothing to forget after `fork`.
pub(crate) fn forget_after_fork() {}
