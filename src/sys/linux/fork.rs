//! `fork` support.
//!
//! After `fork` the child is a new process with one new thread: it must own nothing the
//! parent owned, and its handles must count as its own for the objects' lifetime. So:
//!
//! - the child forgets the forking thread's registrations (`thread.rs`): its first wait
//!   registers it anew, and a release finds that it owns nothing (`ERROR_NOT_OWNER`);
//! - every named object gets, in the child, a file description of its own holding its own
//!   shared lock. Otherwise parent and child would share one description and one lock, and
//!   the parent closing its last handle would remove an object the child still uses.
//!
//! The new descriptions are opened in the `prepare` handler (in the parent, before the
//! fork), moved into place in the child and closed in the parent. Spawning a process with
//! `posix_spawn` (as `std::process::Command` usually does) runs no handlers and costs nothing.
#![allow(unsafe_code)]

use super::object::Object;
use rustix::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex, Once};

static PENDING: Mutex<Vec<(Arc<Object>, OwnedFd)>> = Mutex::new(Vec::new());

/// Installs the handlers once per process.
pub(super) fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: the three handlers are `extern "C"` functions with no arguments that
        // never unwind (each catches nothing that can panic: they only lock a mutex with
        // poison tolerance and make system calls).
        unsafe {
            libc::pthread_atfork(Some(prepare), Some(parent), Some(child));
        }
    });
}

extern "C" fn prepare() {
    let objects = super::object::live_named();
    let mut fresh = Vec::with_capacity(objects.len());
    for obj in objects {
        if let Ok(fd) = obj.reopen(false) {
            fresh.push((obj, fd));
        }
    }
    if let Ok(mut pending) = PENDING.lock() {
        *pending = fresh;
    }
}

extern "C" fn parent() {
    if let Ok(mut pending) = PENDING.lock() {
        pending.clear(); // closes the parent's copies; the child keeps its own
    }
}

extern "C" fn child() {
    super::thread::forget_after_fork();
    let pid = rustix::process::getpid().as_raw_nonzero().get() as u32;
    // Only this thread exists in the child, so the lock is free unless the parent's
    // `prepare` was interrupted; then there is nothing to move.
    let Ok(mut pending) = PENDING.try_lock() else {
        return;
    };
    for (obj, fd) in pending.drain(..) {
        // Put the new description where the object's descriptor is, so the object keeps
        // using the same descriptor number.
        let target = obj.fd().as_raw_fd();
        // SAFETY: `target` is the object's descriptor, open and owned by `obj`, which stays
        // alive; dup3 atomically makes it refer to the child's new description (with
        // close-on-exec) and drops the shared one. `fd` is closed when dropped below.
        let rc = unsafe { libc::dup3(fd.as_raw_fd(), target, libc::O_CLOEXEC) };
        if rc >= 0 {
            obj.set_ofd_owner(pid);
        }
        drop(obj);
    }
}
