//! Worker roles of the PostgreSQL scenario (compare's scenario 9).
//!
//! | role | arguments | does |
//! |---|---|---|
//! | `pg-hold` | url name | acquires `name` on the server, says `held`, waits to be killed |
//! | `pg-contend` | url name threads | on `go`: `threads` threads loop on lock/release until `stop`; says `counts c1 c2 ...` |

use crate::proc::{hear, say};
use namedmutex::MutexOptions;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Runs `role` if it is one of this file's; false otherwise.
pub fn run(role: &str, args: &[String]) -> bool {
    match role {
        "pg-hold" => hold(&args[0], &args[1]),
        "pg-contend" => contend(&args[0], &args[1], args[2].parse().expect("threads")),
        _ => return false,
    }
    true
}

fn hold(url: &str, name: &str) {
    let (m, _) = MutexOptions::new()
        .server(url)
        .create(name)
        .expect("create");
    m.wait(None).expect("wait");
    say("held");
    while hear().is_some() {}
}

fn contend(url: &str, name: &str, threads: usize) {
    let (m, _) = MutexOptions::new()
        .server(url)
        .create(name)
        .expect("create");
    let m = Arc::new(m);
    let stop = Arc::new(AtomicBool::new(false));
    let counts: Arc<Vec<AtomicU64>> = Arc::new((0..threads).map(|_| AtomicU64::new(0)).collect());
    let go = Arc::new(std::sync::Barrier::new(threads + 1));
    let workers: Vec<_> = (0..threads)
        .map(|i| {
            let (m, stop, counts, go) = (m.clone(), stop.clone(), counts.clone(), go.clone());
            std::thread::spawn(move || {
                // Each thread's session is made before the start, not inside the window.
                m.wait(Some(std::time::Duration::ZERO))
                    .map(|s| {
                        if s.is_acquired() {
                            m.release().expect("release");
                        }
                    })
                    .expect("warm up");
                go.wait();
                while !stop.load(Ordering::Relaxed) {
                    m.wait(None).expect("wait");
                    counts[i].fetch_add(1, Ordering::Relaxed);
                    m.release().expect("release");
                }
            })
        })
        .collect();
    say("ready");
    assert_eq!(hear().as_deref(), Some("go"), "expected go");
    go.wait();
    assert_eq!(hear().as_deref(), Some("stop"), "expected stop");
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().expect("a contending thread");
    }
    let list: Vec<String> = counts
        .iter()
        .map(|c| c.load(Ordering::Relaxed).to_string())
        .collect();
    say(&format!("counts {}", list.join(" ")));
    while hear().is_some() {}
}
