//! Futex calls on shared (not process-private) words, and monotonic deadlines.
//!
//! A waiter sleeps on several words at once with `futex_waitv` (Linux 5.16+): the mutex's
//! futex word, which a release changes, and the owner's lifeline, which the kernel changes
//! when the owner dies. Where `futex_waitv` is refused (an older kernel, or a seccomp policy
//! such as a container runtime's), the waiter sleeps on the first word only, in short slices,
//! and the caller re-checks the others between slices.

use super::super::clock::{duration_between, is_before, now};
use super::super::object::Object;
use crate::protocol::Watch;
use rustix::thread::futex;
use rustix::time::{ClockId, Timespec};
use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};
use std::time::Duration;

/// How long one sleep lasts when `futex_waitv` is unavailable: the bound on how late an
/// owner's death is noticed in that mode.
pub(crate) const FALLBACK_SLICE: Duration = Duration::from_millis(2);

/// How a sleep ended: the lock protocol's [`Wake`], which this module's waits answer.
pub(crate) use crate::protocol::Wake;

const UNKNOWN: u8 = 0;
const AVAILABLE: u8 = 1;
const REFUSED: u8 = 2;
static WAITV: AtomicU8 = AtomicU8::new(UNKNOWN);

/// Whether `futex_waitv` works here. `NAMEDMUTEX_FUTEX_WAITV=0` in the environment turns it
/// off (to measure or test the fallback); otherwise it is tried and remembered.
pub(crate) fn waitv_available() -> bool {
    match WAITV.load(Ordering::Relaxed) {
        AVAILABLE => true,
        REFUSED => false,
        _ => {
            let off = std::env::var_os("NAMEDMUTEX_FUTEX_WAITV").is_some_and(|v| v == "0");
            WAITV.store(if off { REFUSED } else { AVAILABLE }, Ordering::Relaxed);
            !off
        }
    }
}

/// Wakes up to `n` threads sleeping on `word`, in any process.
pub(crate) fn wake(word: &AtomicU32, n: u32) {
    // Errors are impossible for a valid shared word; a wake with nobody sleeping is a no-op.
    let _ = futex::wake(word, futex::Flags::empty(), n);
}

/// The lock protocol's sleep ([`crate::protocol::Host::sleep`]): every watch's futex word
/// at once (the mutex's lock word, the owner's lifeline, a cancel word).
pub(crate) fn sleep(watches: &[Watch<'_, Object>], until: Option<Timespec>) -> Wake {
    // A single wait watches at most 3 words: no allocation on that path.
    if watches.len() <= 3 {
        let mut inline = [(&NEVER, 0); 3];
        for (slot, w) in inline.iter_mut().zip(watches) {
            *slot = futex_word(w);
        }
        wait(&inline[..watches.len()], until)
    } else {
        let words: Vec<(&AtomicU32, u32)> = watches.iter().map(futex_word).collect();
        wait(&words, until)
    }
}

/// A word no sleep watches (filler of an unused entry).
static NEVER: AtomicU32 = AtomicU32::new(0);

/// The futex word and expected value of one watch.
fn futex_word<'a>(watch: &Watch<'a, Object>) -> (&'a AtomicU32, u32) {
    match *watch {
        Watch::Mutex(obj, expected) => (obj.page.futex_word(), expected),
        Watch::Lifeline(lifeline, value) => (lifeline.0, value),
        Watch::Cancel(word) => (word, 0),
    }
}

/// Sleeps until one of `words` stops holding its expected value and is woken, or until
/// `deadline` (absolute, `CLOCK_MONOTONIC`; `None`: no deadline).
pub(crate) fn wait(words: &[(&AtomicU32, u32)], deadline: Option<Timespec>) -> Wake {
    debug_assert!(!words.is_empty() && words.len() <= 128);
    if words.len() > 1 && waitv_available() {
        let mut waits = [futex::Wait::new(); 128];
        for (w, (word, expected)) in waits.iter_mut().zip(words) {
            w.val = u64::from(*expected);
            w.uaddr = futex::WaitPtr::new(word.as_ptr().cast());
            w.flags = futex::WaitFlags::SIZE_U32;
        }
        let result = futex::waitv(
            &waits[..words.len()],
            futex::WaitvFlags::empty(),
            deadline.as_ref(),
            ClockId::Monotonic,
        );
        return match result {
            Ok(index) => Wake::Word(index),
            Err(rustix::io::Errno::TIMEDOUT) => Wake::TimedOut,
            Err(rustix::io::Errno::NOSYS) | Err(rustix::io::Errno::PERM) => {
                WAITV.store(REFUSED, Ordering::Relaxed);
                Wake::Retry
            }
            // AGAIN (a value changed) and INTR (a signal): the caller re-checks.
            Err(_) => Wake::Retry,
        };
    }
    // One word, or no futex_waitv: FUTEX_WAIT on the first word. With several words, sleep
    // in slices so the caller re-checks the others (the owner's lifeline) between them.
    let start = now();
    let mut slice = match deadline {
        Some(d) if !is_before(start, d) => return Wake::TimedOut,
        Some(d) => duration_between(start, d),
        None => Duration::MAX,
    };
    if words.len() > 1 {
        slice = slice.min(FALLBACK_SLICE);
    }
    let relative = (slice != Duration::MAX).then(|| Timespec {
        tv_sec: slice.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: i64::from(slice.subsec_nanos()),
    });
    let (word, expected) = words[0];
    match futex::wait(word, futex::Flags::empty(), expected, relative.as_ref()) {
        Ok(()) => Wake::Word(0),
        Err(rustix::io::Errno::TIMEDOUT) => match deadline {
            Some(d) if !is_before(now(), d) => Wake::TimedOut,
            _ => Wake::Retry,
        },
        Err(_) => Wake::Retry,
    }
}

/// The futex calls with real threads: which word woke a sleeper, what a changed word and a
/// passed deadline do. A sleeper is known to sleep when `/proc` shows it inside the futex
/// system call; every wait is bounded.
#[cfg(test)]
mod tests {
    use super::super::super::clock::deadline_after;
    use super::*;
    use std::sync::mpsc;
    use std::time::Instant;

    /// Returns once thread `tid` of this process sleeps in `futex` or `futex_waitv`.
    fn until_asleep(tid: i32) {
        let path = format!("/proc/self/task/{tid}/syscall");
        let calls = [
            libc::SYS_futex.to_string(),
            libc::SYS_futex_waitv.to_string(),
        ];
        let start = Instant::now();
        loop {
            let line = std::fs::read_to_string(&path).unwrap_or_default();
            if calls
                .iter()
                .any(|c| line.split_whitespace().next() == Some(c.as_str()))
            {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "thread {tid} never slept in a futex call: {line:?}"
            );
            std::thread::yield_now();
        }
    }

    /// A thread that sleeps on `words` (leaked, so that it may outlive the test's frame) with
    /// `deadline`; returns its tid and how its wait ended.
    fn sleeper(
        words: &'static [AtomicU32],
        expected: u32,
        deadline: Option<Timespec>,
    ) -> (i32, mpsc::Receiver<Wake>) {
        let (tid_tx, tid_rx) = mpsc::channel();
        let (woke_tx, woke_rx) = mpsc::channel();
        std::thread::spawn(move || {
            tid_tx
                .send(rustix::thread::gettid().as_raw_nonzero().get())
                .unwrap();
            let watched: Vec<(&AtomicU32, u32)> = words.iter().map(|w| (w, expected)).collect();
            let _ = woke_tx.send(wait(&watched, deadline));
        });
        (
            tid_rx.recv_timeout(Duration::from_secs(10)).unwrap(),
            woke_rx,
        )
    }

    fn words(n: usize) -> &'static [AtomicU32] {
        Box::leak((0..n).map(|_| AtomicU32::new(0)).collect())
    }

    #[test]
    fn a_wake_ends_a_sleep_and_names_the_word() {
        let w = words(3);
        let (tid, woke) = sleeper(w, 0, None);
        until_asleep(tid);
        w[2].store(1, Ordering::SeqCst);
        wake(&w[2], 1);
        let got = woke.recv_timeout(Duration::from_secs(10)).unwrap();
        if waitv_available() {
            assert_eq!(got, Wake::Word(2));
        } else {
            // Without futex_waitv only the first word is slept on, in slices: the caller
            // re-checks the others.
            assert_eq!(got, Wake::Retry);
        }
    }

    #[test]
    fn a_word_that_already_changed_is_not_slept_on() {
        let w = words(2);
        w[1].store(7, Ordering::SeqCst);
        let started = Instant::now();
        let watched = [(&w[0], 0), (&w[1], 0)];
        assert_eq!(
            wait(&watched, deadline_after(Some(Duration::from_secs(10)))),
            Wake::Retry
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(wait(&watched[1..], None), Wake::Retry);
    }

    #[test]
    fn a_sleep_ends_at_its_deadline() {
        let w = words(1);
        let started = Instant::now();
        let got = wait(
            &[(&w[0], 0)],
            deadline_after(Some(Duration::from_millis(30))),
        );
        assert_eq!(got, Wake::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(30));
        // A deadline already past: no sleep at all.
        assert_eq!(wait(&[(&w[0], 0)], Some(now())), Wake::TimedOut);
    }

    #[test]
    fn a_wake_wakes_at_most_n_sleepers() {
        let w = words(1);
        let (a, woke_a) = sleeper(w, 0, deadline_after(Some(Duration::from_secs(10))));
        let (b, woke_b) = sleeper(w, 0, deadline_after(Some(Duration::from_secs(10))));
        until_asleep(a);
        until_asleep(b);
        wake(&w[0], 1); // the value is unchanged: only a wake can end a sleep now
        let (first, other) = match woke_a.recv_timeout(Duration::from_millis(500)) {
            Ok(got) => (Some(got), &woke_b),
            Err(_) => (woke_b.recv_timeout(Duration::from_secs(10)).ok(), &woke_a),
        };
        assert_eq!(first, Some(Wake::Word(0)), "one sleeper woke");
        // That nothing more happens can only be watched for a while.
        let extra = other.recv_timeout(Duration::from_millis(200));
        assert!(extra.is_err(), "a wake of 1 woke two: {extra:?}");
        wake(&w[0], 1);
        assert_eq!(
            other.recv_timeout(Duration::from_secs(10)),
            Ok(Wake::Word(0))
        );
    }
}
