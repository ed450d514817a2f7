//! Tests of the portable backend alone (built on Linux with `--features portable-backend`):
//! how a death reaches a sleeper without the Linux kernel's robust futexes. Each case runs
//! real processes (this binary re-executed with `--child ROLE ...`); waiters that must be
//! woken by the watcher or a thread's destructor run with `NAMEDMUTEX_TEST_NO_BACKSTOP=1`,
//! so that a broken wake-up path hangs and fails by the watchdog instead of passing late.
//! The behaviour every backend shares is in `tests/behaviour`.
// Tests call a few libc functions (geteuid, kill, fcntl) directly, each with a SAFETY note.
#![allow(unsafe_code)]

#[cfg(all(target_os = "linux", feature = "portable-backend"))]
mod child;
#[cfg(all(target_os = "linux", feature = "portable-backend"))]
mod death;
#[cfg(all(target_os = "linux", feature = "portable-backend"))]
#[path = "../../../../tests/support/linux.rs"]
mod support;

#[cfg(all(target_os = "linux", feature = "portable-backend"))]
fn main() {
    support::harness(child::run, death::trials);
}

#[cfg(not(all(target_os = "linux", feature = "portable-backend")))]
fn main() {
    println!("the portable backend's tests run on Linux with --features portable-backend");
}
