//! Wake-ups at a deadline without an async runtime: one thread per process, started on
//! first use, that wakes each registered waker at its instant. A future with a timeout
//! registers once; waking a future early or twice is harmless (it looks again).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Condvar, Mutex, OnceLock};
use std::task::Waker;
use std::time::Instant;

struct Entry {
    at: Instant,
    seq: u64,
    waker: Waker,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

#[derive(Default)]
struct Timer {
    heap: Mutex<(BinaryHeap<Reverse<Entry>>, u64)>,
    changed: Condvar,
}

/// The process's timer, started on first use; an error when its thread cannot be started
/// (tried again on the next call).
fn timer() -> std::io::Result<&'static Timer> {
    static TIMER: OnceLock<&'static Timer> = OnceLock::new();
    static STARTING: Mutex<()> = Mutex::new(());
    if let Some(timer) = TIMER.get() {
        return Ok(timer);
    }
    let _one_at_a_time = STARTING.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(timer) = TIMER.get() {
        return Ok(timer);
    }
    let timer: &'static Timer = Box::leak(Box::default());
    std::thread::Builder::new()
        .name("namedmutex-timer".into())
        .spawn(move || timer.run())?;
    Ok(TIMER.get_or_init(|| timer))
}

/// Wakes `waker` at `at` (or soon after).
pub(crate) fn wake_at(at: Instant, waker: Waker) -> std::io::Result<()> {
    let timer = timer()?;
    let mut guard = timer.heap.lock().unwrap_or_else(|e| e.into_inner());
    let (heap, seq) = &mut *guard;
    *seq += 1;
    let first = heap.peek().is_none_or(|Reverse(e)| at < e.at);
    heap.push(Reverse(Entry {
        at,
        seq: *seq,
        waker,
    }));
    if first {
        timer.changed.notify_one();
    }
    Ok(())
}

impl Timer {
    fn run(&self) {
        let mut guard = self.heap.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let now = Instant::now();
            let mut due = Vec::new();
            while guard.0.peek().is_some_and(|Reverse(e)| e.at <= now) {
                if let Some(Reverse(e)) = guard.0.pop() {
                    due.push(e.waker);
                }
            }
            if !due.is_empty() {
                drop(guard);
                due.into_iter().for_each(Waker::wake);
                guard = self.heap.lock().unwrap_or_else(|e| e.into_inner());
                continue;
            }
            guard = match guard.0.peek().map(|Reverse(e)| e.at) {
                Some(at) => {
                    let wait = at.saturating_duration_since(now);
                    self.changed
                        .wait_timeout(guard, wait)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
                None => self.changed.wait(guard).unwrap_or_else(|e| e.into_inner()),
            };
        }
    }
}
