//! `fork` support.
//!
//! After `fork` the child is a new process with one new thread: it must own nothing the
//! parent owned. So the child forgets the forking thread's registrations (`thread.rs`): its
//! first wait registers it anew, and a release finds that it owns nothing
//! (`ERROR_NOT_OWNER`), whatever the parent owned.
//!
//! The child shares the parent's open file descriptions of the object files, and with them
//! the parent's shared locks, so the child's copies of the handles do not keep an object
//! alive by themselves, and the child never removes an object file (each object remembers
//! the process whose description it has). This is deliberate: almost every `fork` is
//! followed by `exec`, and giving the child locks of its own would make every short-lived
//! child of a busy process block the removal of objects the parent closes meanwhile. A child
//! that keeps using mutexes without `exec` should open them again by name (or receive
//! inheritable handles), which gives it handles of its own.
#![allow(unsafe_code)]

use std::sync::Once;

/// Installs the handler once per process.
pub(super) fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: `child` is an `extern "C"` function without arguments that cannot unwind
        // (it only writes thread-local cells and an atomic); pthread_atfork has no other precondition.
        unsafe {
            libc::pthread_atfork(None, None, Some(child));
        }
    });
}

extern "C" fn child() {
    super::thread::forget_after_fork();
    super::object::forget_pid();
    super::barrier::forget_after_fork();
}
