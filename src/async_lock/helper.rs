//! Helper threads for the blocking part of an async acquisition: a contended wait sleeps in
//! the kernel on one of these, never on an executor's thread. Idle helpers are kept for a
//! while and reused, so a steady stream of contended acquisitions does not start a thread
//! for each.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

pub(crate) type Job = Box<dyn FnOnce() + Send>;

/// How long an idle helper waits for more work before it ends.
const IDLE: Duration = Duration::from_secs(10);

/// Idle helpers: an id each, and the channel it waits on. Jobs are sent while this lock is
/// held, and a helper leaves the list under it too, so no job is sent to a helper that
/// has stopped reading.
static IDLE_HELPERS: Mutex<Vec<(u64, Sender<Job>)>> = Mutex::new(Vec::new());

/// Runs `job` on a helper thread; fails only when no thread can be started.
pub(crate) fn run(job: Job) -> std::io::Result<()> {
    let job = {
        let mut idle = IDLE_HELPERS.lock().unwrap_or_else(|e| e.into_inner());
        match idle.pop() {
            Some((_, helper)) => match helper.send(job) {
                Ok(()) => return Ok(()),
                // Only a helper that panicked has dropped its receiver.
                Err(back) => back.0,
            },
            None => job,
        }
    };
    static NEXT_ID: AtomicU64 = AtomicU64::new(0);
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = channel();
    std::thread::Builder::new()
        .name("namedmutex-wait".into())
        .spawn(move || {
            job();
            serve(id, tx, rx);
        })?;
    Ok(())
}

fn serve(id: u64, me: Sender<Job>, jobs: Receiver<Job>) {
    loop {
        IDLE_HELPERS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((id, me.clone()));
        match jobs.recv_timeout(IDLE) {
            Ok(job) => job(),
            Err(_) => {
                let mut idle = IDLE_HELPERS.lock().unwrap_or_else(|e| e.into_inner());
                idle.retain(|(other, _)| *other != id);
                // A job sent before we left the list is already in the channel.
                let late: Vec<Job> = jobs.try_iter().collect();
                drop(idle);
                late.into_iter().for_each(|job| job());
                return;
            }
        }
    }
}
