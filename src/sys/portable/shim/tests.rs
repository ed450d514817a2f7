//! The wait/wake shim with real threads on a heap word: what the protocol relies on. These
//! run natively on Linux (with `portable-backend`) and under Miri for macOS and FreeBSD
//! (`tools/miri.sh`), which emulates `os_sync_*` and `_umtx_op` and checks the calls for
//! undefined behaviour. Every wait is bounded.

use super::{Waited, wait, wake};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(10);

#[test]
fn a_wake_ends_a_sleep() {
    let word = Arc::new(AtomicU32::new(0));
    let sleeper = {
        let word = word.clone();
        std::thread::spawn(move || {
            let mut rounds = 0;
            // Spurious returns are allowed: sleep again while the word is unchanged.
            while word.load(Ordering::Acquire) == 0 {
                let got = wait(&word, 0, Some(PATIENCE));
                assert_ne!(got, Waited::TimedOut, "never woken");
                rounds += 1;
                assert!(rounds < 1000, "returns at once without a change");
            }
        })
    };
    std::thread::yield_now();
    word.store(1, Ordering::Release);
    wake(&word, 1);
    sleeper.join().expect("the sleeper");
}

#[test]
fn a_wake_of_all_ends_every_sleep() {
    let word = Arc::new(AtomicU32::new(0));
    let sleepers: Vec<_> = (0..3)
        .map(|_| {
            let word = word.clone();
            std::thread::spawn(move || {
                while word.load(Ordering::Acquire) == 0 {
                    assert_ne!(wait(&word, 0, Some(PATIENCE)), Waited::TimedOut);
                }
            })
        })
        .collect();
    word.store(1, Ordering::Release);
    wake(&word, u32::MAX >> 1);
    for s in sleepers {
        s.join().expect("a sleeper");
    }
}

#[test]
fn a_word_that_changed_is_not_slept_on() {
    let word = AtomicU32::new(7);
    assert_ne!(wait(&word, 0, Some(PATIENCE)), Waited::TimedOut);
}

#[test]
fn a_sleep_ends_at_its_timeout() {
    let word = AtomicU32::new(0);
    let mut rounds = 0;
    // A spurious return is allowed; a timeout must come.
    while wait(&word, 0, Some(Duration::from_millis(20))) != Waited::TimedOut {
        rounds += 1;
        assert!(rounds < 100, "no timeout");
    }
    assert_eq!(wait(&word, 0, Some(Duration::ZERO)), Waited::TimedOut);
}

#[test]
fn a_wake_with_nobody_asleep_is_harmless() {
    let word = AtomicU32::new(0);
    wake(&word, 1);
    wake(&word, u32::MAX >> 1);
}

/// The public calls are found at run time (macOS 14.4 and later; Miri emulates them), not
/// the slice fallback of systems older than macOS 11.
#[cfg(target_os = "macos")]
#[test]
fn macos_finds_its_wait_calls() {
    assert_ne!(super::macos::calls_found(), "none");
}
