//! A waiter's sleep in the portable flavour: on the mutex's lock word alone (neither macOS
//! nor FreeBSD can sleep on two words at once), after registering with the watcher when the
//! owner lives in another process, so that its death changes that word (`watcher.rs`).
//!
//! Slices bound a sleep where nothing would change the word: a wait on several mutexes
//! (it sleeps on the first busy one and looks at all of them again), an owner whose death
//! cannot be watched, and a cancellable (async) wait, whose cancel word the sleep does not
//! watch.

use super::super::clock;
use super::super::object::Object;
use super::shim::{self, Waited};
use super::watcher::{self, Registered};
use crate::protocol::{Wake, Watch};
use rustix::time::Timespec;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// The longest sleep of a wait on several mutexes, or on an owner nobody can watch: how
/// late such a waiter may notice a release of another mutex or a death.
pub(crate) const FALLBACK_SLICE: Duration = Duration::from_millis(2);
/// The longest sleep of a cancellable (async) wait: how late a cancellation is noticed.
const CANCEL_SLICE: Duration = Duration::from_millis(10);

/// The slice of a sleep on an owner nobody watches: `FALLBACK_SLICE`, or none with
/// `NAMEDMUTEX_TEST_NO_SLICES=1`, so that a test of the watcher hangs, and fails by its
/// watchdog, if the watcher does not watch (instead of passing through the fallback).
fn unwatched_slice() -> Option<Duration> {
    static OFF: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let off = *OFF
        .get_or_init(|| std::env::var_os("NAMEDMUTEX_TEST_NO_SLICES").is_some_and(|v| v == "1"));
    (!off).then_some(FALLBACK_SLICE)
}

/// Wakes up to `n` threads sleeping on `word`, in any process.
#[inline]
pub(crate) fn wake(word: &AtomicU32, n: u32) {
    shim::wake(word, n);
}

/// The lock protocol's sleep ([`crate::protocol::Host::sleep`]).
pub(crate) fn sleep(watches: &[Watch<'_, Object>], until: Option<Timespec>) -> Wake {
    let Watch::Mutex(obj, expected) = watches[0] else {
        unreachable!("the protocol puts a mutex first");
    };
    let mutexes = watches
        .iter()
        .filter(|w| matches!(w, Watch::Mutex(..)))
        .count();
    let mut slice = (mutexes > 1).then_some(FALLBACK_SLICE);
    let mut _registration = None;
    for watch in watches {
        match *watch {
            Watch::Cancel(word) => {
                if word.load(Ordering::Acquire) != 0 {
                    return Wake::Retry;
                }
                slice = Some(slice.map_or(CANCEL_SLICE, |s| s.min(CANCEL_SLICE)));
            }
            Watch::Lifeline(lifeline, _) if mutexes == 1 && !lifeline.is_own() => {
                match watcher::register(lifeline, obj) {
                    Registered::Yes(r) => _registration = Some(r),
                    Registered::Dead => return Wake::Retry,
                    Registered::Unwatched => slice = unwatched_slice(),
                }
            }
            _ => {}
        }
    }
    let now = clock::now();
    let left = match until {
        Some(d) if !clock::is_before(now, d) => return Wake::TimedOut,
        Some(d) => Some(clock::duration_between(now, d)),
        None => None,
    };
    let timeout = match (left, slice) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    match shim::wait(obj.page.futex_word(), expected, timeout) {
        Waited::Woken => Wake::Word(0),
        Waited::TimedOut if until.is_some_and(|d| !clock::is_before(clock::now(), d)) => {
            Wake::TimedOut
        }
        Waited::TimedOut | Waited::Again => Wake::Retry,
    }
}
