//! Asymmetric memory barriers (`membarrier(2)`), which make biased locking safe.
//!
//! A thread a mutex is biased to acquires it with plain stores and loads (`crate::protocol::bias`): it
//! writes its depth, then reads the lock word, with no fence between them. A thread that
//! wants the mutex instead writes the lock word, then runs [`heavy`], then reads the depth.
//! `heavy` is `MEMBARRIER_CMD_GLOBAL_EXPEDITED`: when it returns, every running thread of every
//! *registered* process has executed a full barrier. So either the biased thread saw the
//! request, or the requester sees the depth. A process registers ([`bias_allowed`]) before
//! any of its threads takes a bias.
//!
//! Registering is cheap in a single-threaded process (no grace period) but costs an RCU grace
//! period (8.5 ms measured here) once other threads exist, so a multi-threaded process
//! registers from a short-lived helper thread and takes no bias until it is done.
//! `NAMEDMUTEX_BIAS=0` turns biasing off; `NAMEDMUTEX_BIAS=1` registers at once, on the
//! calling thread (tests and benchmarks, for a deterministic mode).

use rustix::thread::{MembarrierCommand, membarrier};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

const UNKNOWN: u8 = 0;
const PENDING: u8 = 1;
const REGISTERED: u8 = 2;
const OFF: u8 = 3;
static STATE: AtomicU8 = AtomicU8::new(UNKNOWN);

/// Whether threads of this process may take a bias. The first call starts the registration.
#[inline]
pub(crate) fn bias_allowed() -> bool {
    match STATE.load(Ordering::Acquire) {
        REGISTERED => true,
        UNKNOWN => start(),
        _ => false,
    }
}

#[cold]
fn start() -> bool {
    if STATE
        .compare_exchange(UNKNOWN, PENDING, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return STATE.load(Ordering::Acquire) == REGISTERED;
    }
    let mode = std::env::var("NAMEDMUTEX_BIAS").unwrap_or_default();
    if mode == "0" {
        STATE.store(OFF, Ordering::Release);
        return false;
    }
    if mode == "1" || single_threaded() {
        register();
        return STATE.load(Ordering::Acquire) == REGISTERED;
    }
    let spawned = std::thread::Builder::new()
        .name("namedmutex-membarrier".into())
        .spawn(register);
    if spawned.is_err() {
        STATE.store(OFF, Ordering::Release);
    }
    false
}

fn register() {
    let state = match membarrier(MembarrierCommand::RegisterGlobalExpedited) {
        Ok(()) => REGISTERED,
        Err(_) => OFF, // an old kernel or a seccomp policy: no biasing, nothing else changes
    };
    STATE.store(state, Ordering::Release);
}

/// Whether this process has one thread (then registering is cheap).
fn single_threaded() -> bool {
    // Field 20 of /proc/self/stat, counted after the command name's closing parenthesis.
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 1..];
            rest.split_whitespace().nth(17)?.parse::<u32>().ok()
        })
        == Some(1)
}

/// The requester's half of the asymmetric barrier: after it returns, every thread that took
/// a bias has either made its depth visible or will see what the caller wrote before.
#[cold]
pub(crate) fn heavy() {
    if membarrier(MembarrierCommand::GlobalExpedited).is_ok() {
        return;
    }
    // This process may not use the expedited form (a seccomp policy): the plain one waits
    // for a grace period (milliseconds) and covers every process, registered or not.
    if membarrier(MembarrierCommand::Global).is_ok() {
        return;
    }
    // No membarrier at all for this process, though the biased thread's process had it.
    // A store buffer drains in far less than this; documented as a weakness of that setup.
    std::thread::sleep(Duration::from_millis(10));
}

/// In a child after `fork`: a new process, which must register for itself.
pub(crate) fn forget_after_fork() {
    if STATE.load(Ordering::Relaxed) != OFF {
        STATE.store(UNKNOWN, Ordering::Relaxed);
    }
}
