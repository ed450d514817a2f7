//! Crash points for fault-injection tests (cargo feature `fault-injection`, off by default).
//!
//! `point("create.after_publish")` marks a step of a multi-step operation. With the feature
//! on, a process whose `NAMEDMUTEX_FAULT` environment variable equals the point's name kills
//! itself there with SIGKILL, exactly as a crash or an `kill -9` at that instant would; the
//! tests in `tests/reliability` then check that other processes neither hang nor see two
//! owners, and that the name still works. With the feature off, `point` is an empty inline
//! function and costs nothing.

/// Kills the calling process with SIGKILL if `NAMEDMUTEX_FAULT` names this point.
#[cfg(feature = "fault-injection")]
pub(super) fn point(name: &'static str) {
    static FAULT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let fault = FAULT.get_or_init(|| std::env::var("NAMEDMUTEX_FAULT").ok());
    if fault.as_deref() == Some(name) {
        let me = rustix::process::getpid();
        let _ = rustix::process::kill_process(me, rustix::process::Signal::KILL);
        // SIGKILL cannot be caught; should it be blocked somehow, never go on past the point.
        std::process::abort();
    }
}

/// Without the `fault-injection` feature: nothing.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub(super) fn point(_name: &'static str) {}

/// Sleeps 300 µs if `NAMEDMUTEX_STALL` names this point: widens a race window that is
/// otherwise nanoseconds wide, so that tests can show the code that closes it matters.
#[cfg(feature = "fault-injection")]
pub(super) fn stall(name: &'static str) {
    static STALL: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let stall = STALL.get_or_init(|| std::env::var("NAMEDMUTEX_STALL").ok());
    if stall.as_deref() == Some(name) {
        std::thread::sleep(std::time::Duration::from_micros(300));
    }
}

/// Without the `fault-injection` feature: nothing.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub(super) fn stall(_name: &'static str) {}

#[cfg(feature = "fault-injection")]
thread_local! {
    static YIELDS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Counts one yield of a waiter's polling on the calling thread (tests read the count with
/// [`__polling_yields`] to see whether a wait polled).
#[cfg(feature = "fault-injection")]
pub(super) fn polled_once() {
    YIELDS.with(|y| y.set(y.get() + 1));
}

/// Without the `fault-injection` feature: nothing.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub(super) fn polled_once() {}

/// How many times the calling thread has yielded while polling a mutex (feature
/// `fault-injection`; for tests only, not a public API).
#[cfg(feature = "fault-injection")]
#[doc(hidden)]
pub fn __polling_yields() -> u64 {
    YIELDS.with(|y| y.get())
}
