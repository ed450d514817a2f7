//! A hook run when the process exits by returning from `main`, through the C runtime's
//! `atexit` (the PostgreSQL backend ends its sessions there: `sys/pg/at_exit.rs`).
//!
//! On Windows a return from `main` goes back to the C runtime, whose `exit` runs the hooks
//! registered with `atexit` while every thread still runs, and then calls `ExitProcess`.
//! `std::process::exit` calls `ExitProcess` at once: no hook runs then.

/// Has `hook` run when the process returns from `main`, before `ExitProcess` (every thread,
/// this one's thread-locals included, still alive); not at `std::process::exit`. False if
/// the C runtime refused it. `hook` must not unwind (it is `extern "C"`: a panic escaping
/// it aborts the process).
pub(in crate::sys) fn at_exit(hook: extern "C" fn()) -> bool {
    // SAFETY: the declaration is ISO C's, which every Windows C runtime exports; it is
    // `safe` because any `extern "C" fn()` is a valid argument (atexit only stores it, and
    // the runtime calls it once with no arguments).
    unsafe extern "C" {
        // The C runtime's (msvcrt's or the UCRT's, whichever this program links): ISO C's
        // `int atexit(void (*)(void))`.
        safe fn atexit(hook: extern "C" fn()) -> core::ffi::c_int;
    }
    atexit(hook) == 0
}
