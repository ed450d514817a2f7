//! The waiter's polling before it sleeps (`src/sys/linux/polling.rs`, `Polling`): a process
//! stops polling on a mutex whose waits keep ending asleep, and probes now and then. Needs
//! the `fault-injection` feature, which counts the calling thread's polling yields.

use crate::support::*;
use libtest_mimic::Trial;
#[cfg(feature = "fault-injection")]
use namedmutex::{MutexOptions, WaitStatus};
#[cfg(feature = "fault-injection")]
use std::sync::{Arc, mpsc};

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test(
            "polling::stops_on_a_mutex_whose_waits_end_asleep",
            stops_when_waits_end_asleep,
        )
        .with_ignored_flag(!cfg!(feature = "fault-injection")),
    ]
}

#[cfg(not(feature = "fault-injection"))]
fn stops_when_waits_end_asleep() -> TestResult {
    Ok(())
}

/// A holder thread keeps the mutex each round until this thread's wait sleeps in the
/// kernel (the object's count of sleepers says so), so every wait ends asleep. The first 8 waits poll; waits 9 to 16
/// do not; wait 17 (a streak of 16) probes; 18 to 20 do not again.
#[cfg(feature = "fault-injection")]
fn stops_when_waits_end_asleep() -> TestResult {
    let root = fresh_root("polling");
    let opts = MutexOptions::new().root(&root);
    let (m, _) = opts.create("long-held")?;
    let m = Arc::new(m);
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (held_tx, held_rx) = mpsc::channel::<()>();
    let hm = m.clone();
    let opts = opts.clone();
    let holder = std::thread::spawn(move || -> Result<(), String> {
        while go_rx.recv().is_ok() {
            let status = hm.wait(Some(WATCHDOG)).map_err(|e| e.to_string())?;
            if status != WaitStatus::Acquired {
                return Err(format!("holder: {status:?}"));
            }
            held_tx.send(()).map_err(|e| e.to_string())?;
            // Hold until the waiter sleeps in the kernel, so that its wait ends asleep.
            wait_until(WATCHDOG, "the waiter to sleep", || {
                opts.info("long-held")
                    .ok()
                    .flatten()
                    .is_some_and(|info| info.waiters > 0)
            })?;
            hm.release().map_err(|e| e.to_string())?;
        }
        Ok(())
    });
    let mut polled = Vec::new();
    for round in 1..=20u32 {
        go_tx.send(())?;
        held_rx
            .recv_timeout(WATCHDOG)
            .map_err(|e| format!("round {round}: the holder did not take the mutex: {e}"))?;
        let before = namedmutex::__polling_yields();
        let status = m.wait(Some(WATCHDOG))?;
        check(status == WaitStatus::Acquired, || {
            format!("round {round}: {status:?}")
        })?;
        polled.push(namedmutex::__polling_yields() - before);
        m.release()?;
    }
    drop(go_tx);
    holder.join().map_err(|_| "the holder panicked")??;
    let expect_polling = |round: usize| round <= 8 || round == 17;
    for (i, &yields) in polled.iter().enumerate() {
        let round = i + 1;
        check((yields > 0) == expect_polling(round), || {
            format!("yields per wait, rounds 1-20: {polled:?} (round {round} is wrong)")
        })?;
    }
    println!("  polling yields per wait: {polled:?}");
    Ok(())
}
