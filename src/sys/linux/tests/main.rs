//! Tests of the Linux backend only: where files live and with which modes, refusal of bad
//! and planted files, PID namespaces, the fallback without `futex_waitv`, registry
//! exhaustion, the recursion limit, thousands of mutexes held by one thread, stale objects
//! left by crashes, biased locking, and when a waiter polls before it sleeps. The behaviour every backend shares is in `tests/behaviour`.
//!
//! Multi-process cases re-execute this binary with `--child ROLE ...`; every wait on a
//! child is bounded by a watchdog.
// Tests call a few libc functions (umask, mkfifo, geteuid) directly, each with a SAFETY note.
#![allow(unsafe_code)]

#[cfg(target_os = "linux")]
mod bias;
#[cfg(target_os = "linux")]
mod child;
#[cfg(target_os = "linux")]
mod files;
#[cfg(target_os = "linux")]
mod kernel;
#[cfg(target_os = "linux")]
mod polling;
#[cfg(target_os = "linux")]
#[path = "../../../../tests/support/linux.rs"]
mod support;

#[cfg(target_os = "linux")]
fn main() {
    support::harness(child::run, || {
        [
            files::trials(),
            kernel::trials(),
            bias::trials(),
            polling::trials(),
        ]
        .into_iter()
        .flatten()
        .collect()
    });
}

#[cfg(not(target_os = "linux"))]
fn main() {
    println!("the Linux backend tests run only on Linux");
}
