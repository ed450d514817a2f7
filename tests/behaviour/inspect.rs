//! `list`: what the library adds to semantics.md (Windows has no call that lists mutexes;
//! the Windows backend reads the kernel's object directory).

use crate::trial;
use crate::util::*;
use libtest_mimic::Trial;
use namedmutex::{NamedMutex, Namespace};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub fn trials() -> Vec<Trial> {
    vec![trial(
        "inspect::list_misses_no_mutex_while_others_come_and_go",
        list_under_churn,
    )]
}

/// `list` names every mutex that exists throughout the call while other mutexes of the
/// same namespace are created and closed as fast as two threads can (stop 27's CI failure:
/// under Wine 8, whose directory is read one entry per call, a held mutex went missing).
fn list_under_churn() -> TestResult {
    let steady: Vec<String> = (0..4).map(|_| unique("list-steady")).collect();
    let mut handles = Vec::new();
    for name in &steady {
        handles.push(
            NamedMutex::create(name, false)
                .ctx("create a steady mutex")?
                .0,
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    // Each keeps a rolling window: creates one, closes the oldest of 16.
    let churners: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || -> Result<u64, String> {
                let mut window = VecDeque::new();
                let mut steps = 0;
                while !stop.load(Ordering::Relaxed) {
                    let (m, _) =
                        NamedMutex::create(&unique("list-churn"), false).ctx("create a churner")?;
                    window.push_back(m);
                    if window.len() > 16 {
                        window.pop_front();
                    }
                    steps += 1;
                }
                Ok(steps)
            })
        })
        .collect();
    // Bounded by rounds and by time, whichever ends first. Under Wine 8, over 400 rounds
    // (1,600 looks), one pass over the directory per listing missed 314 times, four passes
    // once (src/sys/windows/directory.rs).
    let (max_rounds, run_for) = if on_server() {
        (30, Duration::from_secs(5))
    } else {
        (150, Duration::from_secs(8))
    };
    let deadline = Instant::now() + run_for;
    let mut rounds = 0;
    let mut missed = Vec::new();
    let mut listing = Ok(());
    while rounds < max_rounds && Instant::now() < deadline {
        match namedmutex::list(Namespace::Local) {
            Ok(listed) => {
                for name in &steady {
                    if !listed.iter().any(|i| &i.name == name) {
                        missed.push((rounds, name.clone()));
                    }
                }
            }
            Err(e) => {
                listing = Err(format!("list: {e}"));
                break;
            }
        }
        rounds += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let mut steps = 0;
    for churner in churners {
        steps += churner.join().map_err(|_| "a churning thread panicked")??;
    }
    listing?;
    ensure!(steps > 0, "the churning threads never ran");
    ensure!(
        missed.is_empty(),
        "{} times in {rounds} listings a mutex held throughout was missing ({steps} others came and went): {:?}",
        missed.len(),
        &missed[..missed.len().min(5)]
    );
    note(format!(
        "{rounds} listings, none missed a held mutex, while {steps} others came and went"
    ));
    drop(handles);
    Ok(())
}
