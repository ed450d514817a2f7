//! FreeBSD: wait and wake on a word in a shared file mapping with `_umtx_op`
//! (`UMTX_OP_WAIT_UINT` and `UMTX_OP_WAKE`, not their `_PRIVATE` forms: the kernel keys a
//! waiter of a `MAP_SHARED` mapping by its VM object and offset, so waiters in all
//! processes meet; it looks the address up for writing, so the mapping must be writable,
//! as ours is). Timeouts are relative, on `CLOCK_MONOTONIC`. Process deaths come from
//! kqueue (`kqueue.rs`). From the sources and `_umtx_op(2)`; not yet run on FreeBSD.
#![allow(unsafe_code)]

use super::Waited;
use std::sync::atomic::{AtomicU32, Ordering, fence};
use std::time::Duration;

/// Sleeps while `word` holds `expected`, until woken or `timeout` (`None`: no limit).
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Waited {
    // SAFETY: `_umtx_time` is a plain C struct for which all-zero bytes are valid.
    let mut time: libc::_umtx_time = unsafe { std::mem::zeroed() };
    let (size, time_ptr) = match timeout {
        Some(t) => {
            time._timeout.tv_sec = t.as_secs().min(i64::MAX as u64) as libc::time_t;
            time._timeout.tv_nsec = libc::c_long::from(t.subsec_nanos() as i32);
            time._clockid = libc::CLOCK_MONOTONIC as u32;
            (
                std::mem::size_of::<libc::_umtx_time>(),
                (&raw mut time).cast::<libc::c_void>(),
            )
        }
        None => (0, std::ptr::null_mut()),
    };
    // SAFETY: `word` is a live, aligned u32 we borrow for the call; with a timeout, `uaddr`
    // carries the size of the `_umtx_time` that `uaddr2` points to, which lives across it.
    let rc = unsafe {
        libc::_umtx_op(
            word.as_ptr().cast(),
            libc::UMTX_OP_WAIT_UINT,
            libc::c_ulong::from(expected),
            std::ptr::without_provenance_mut::<libc::c_void>(size),
            time_ptr,
        )
    };
    if rc == 0 {
        return Waited::Woken;
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::ETIMEDOUT) => Waited::TimedOut,
        _ => Waited::Again, // EINTR, or the word changed
    }
}

/// Wakes up to `n` threads sleeping on `word`, in any process.
pub(crate) fn wake(word: &AtomicU32, n: u32) {
    // A full fence first. The kernel orders this wake after the store that precedes it
    // against a sleeper's compare; Miri's emulation (of macOS's, at least) does only when a sleeper is already
    // queued (it skips its own fence when none is), so a sleeper arriving just after could
    // read the word from before that store and sleep through its wake (seen under Miri:
    // shim::tests::a_wake_ends_a_sleep timed out). Beside a system call it costs nothing.
    fence(Ordering::SeqCst);
    let n = n.min(i32::MAX as u32);
    // SAFETY: `word` is a live, aligned u32; UMTX_OP_WAKE reads only `val`.
    let _ = unsafe {
        libc::_umtx_op(
            word.as_ptr().cast(),
            libc::UMTX_OP_WAKE,
            libc::c_ulong::from(n),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
}
