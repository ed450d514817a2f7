//! The roles a child process can play (`--child ROLE args...`). Each prints lines the
//! parent waits for; every role ends when told or when killed.

use crate::support::{say, wait_for_stdin_close};
use namedmutex::{ErrorKind, MutexOptions, NamedMutex, WaitStatus};
use std::io::BufRead;
use std::time::{Duration, Instant};

pub fn run(args: &[String]) -> i32 {
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    match arg(0) {
        "hold" => hold(arg(1), arg(2).parse().unwrap_or(1)),
        "wait" => wait(arg(1), arg(2).parse().unwrap_or(20_000)),
        "counter" => counter(arg(1), arg(2), arg(3).parse().unwrap_or(1000)),
        "exhaust" => exhaust(arg(1).parse().unwrap_or(4)),
        "umask" => umask(arg(1), arg(2)),
        "create" => create(arg(1)),
        "bias" => bias(arg(1), arg(2).parse().unwrap_or(0)),
        "bias-race" => bias_race(arg(1), arg(2), arg(3).parse().unwrap_or(50)),
        other => {
            eprintln!("unknown child role {other:?}");
            2
        }
    }
}

fn tid() -> i64 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) }
}

/// Creates `name`, acquires it `depth` times, says `holding PID TID`, and keeps it until
/// stdin closes; then releases and says `released`.
fn hold(name: &str, depth: u32) -> i32 {
    let (m, _) = NamedMutex::create(name, false).expect("create");
    for _ in 0..depth {
        assert!(m.wait(None).expect("wait").is_acquired());
    }
    say(format!("holding {} {}", std::process::id(), tid()));
    wait_for_stdin_close();
    for _ in 0..depth {
        m.release().expect("release");
    }
    say("released");
    0
}

/// Opens `name`, says `waiting`, waits up to `millis`, then says `status CODE MICROS` and
/// `releases N`: how many releases succeeded before NotOwner (at most 5).
fn wait(name: &str, millis: u64) -> i32 {
    let m = NamedMutex::open(name).expect("open");
    say("waiting");
    let started = Instant::now();
    let status = m.wait(Some(Duration::from_millis(millis))).expect("wait");
    say(format!(
        "status {} {}",
        status.code(),
        started.elapsed().as_micros()
    ));
    let mut releases = 0;
    if status != WaitStatus::TimedOut {
        while releases < 5 && m.release().is_ok() {
            releases += 1;
        }
    }
    say(format!("releases {releases}"));
    0
}

/// Increments the number in `file` `iterations` times under the mutex, non-atomically, so
/// any failure of mutual exclusion loses increments. Says `tid T` first and `done` last.
fn counter(name: &str, file: &str, iterations: u32) -> i32 {
    let (m, _) = NamedMutex::create(name, false).expect("create");
    say(format!("tid {}", tid()));
    wait_for_line("go");
    for _ in 0..iterations {
        let guard = m.lock().expect("lock");
        let n: u64 = std::fs::read_to_string(file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        std::thread::yield_now();
        std::fs::write(file, (n + 1).to_string()).expect("write counter");
        drop(guard);
    }
    say("done");
    0
}

fn wait_for_line(expected: &str) {
    for line in std::io::stdin().lock().lines() {
        match line {
            Ok(l) if l.trim() == expected => return,
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

/// With a registry of `slots` slots (NAMEDMUTEX_REGISTRY_SLOTS): `slots` live threads
/// register; one more gets ResourceExhausted; after they end, 3 × `slots` threads in turn
/// register fine. Says `ok` or `fail REASON`.
fn exhaust(slots: usize) -> i32 {
    let name = format!("exhaust-{}", std::process::id());
    let (m, _) = NamedMutex::create(&name, false).expect("create");
    let m = std::sync::Arc::new(m);
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(slots + 1));
    let release = std::sync::Arc::new(std::sync::Barrier::new(slots + 1));
    // The main thread registers too when it waits: leave it out by never waiting here.
    let holders: Vec<_> = (0..slots)
        .map(|_| {
            let (m, barrier, release) = (m.clone(), barrier.clone(), release.clone());
            std::thread::spawn(move || {
                let r = m.wait(Some(Duration::from_secs(10))).inspect(|_| {
                    let _ = m.release();
                });
                barrier.wait();
                release.wait();
                r.map(|_| ()).map_err(|e| e.kind())
            })
        })
        .collect();
    barrier.wait();
    let extra = {
        let m = m.clone();
        std::thread::spawn(move || m.wait(Some(Duration::ZERO)).map_err(|e| e.kind()))
            .join()
            .unwrap()
    };
    release.wait();
    for h in holders {
        if let Err(kind) = h.join().unwrap() {
            say(format!("fail a holder thread got {kind:?}"));
            return 1;
        }
    }
    match extra {
        Err(ErrorKind::ResourceExhausted) => {}
        other => {
            say(format!(
                "fail the extra thread got {other:?}, expected ResourceExhausted"
            ));
            return 1;
        }
    }
    for i in 0..3 * slots {
        let m = m.clone();
        let r = std::thread::spawn(move || {
            let s = m.wait(Some(Duration::from_secs(10)))?;
            m.release()?;
            Ok::<_, namedmutex::Error>(s)
        })
        .join()
        .unwrap();
        if let Err(e) = r {
            say(format!("fail sequential thread {i}: {e}"));
            return 1;
        }
    }
    say("ok");
    0
}

/// Sets the umask, creates a Local and a Global object under `root`, says `created`, and
/// keeps them until stdin closes.
/// Says `started`, creates `name` (in `NAMEDMUTEX_ROOT`), says `created existed=BOOL` or
/// `error KIND`, and keeps the handle until stdin closes.
fn create(name: &str) -> i32 {
    say("started");
    match NamedMutex::create(name, false) {
        Ok((m, existed)) => {
            say(format!("created existed={existed}"));
            wait_for_stdin_close();
            drop(m);
            0
        }
        Err(e) => {
            say(format!("error {:?}: {e}", e.kind()));
            1
        }
    }
}

fn umask(mask: &str, root: &str) -> i32 {
    let mask = u32::from_str_radix(mask, 8).expect("octal umask");
    // SAFETY: umask has no preconditions.
    unsafe { libc::umask(mask as libc::mode_t) };
    let opts = MutexOptions::new().root(root);
    let a = opts.create("umask-local").expect("local");
    let b = opts.create("Global\\umask-global").expect("global");
    say("created");
    wait_for_stdin_close();
    drop((a, b));
    0
}

/// Creates `name`, acquires and releases it 100 times (with `NAMEDMUTEX_BIAS=1` that biases
/// it to this thread), acquires it `depth` times, says `biased`, then obeys stdin:
/// `release` (all `depth`, says `released`), `lock` (waits up to 10 s, says `status CODE`),
/// `unlock` (says `ok` or `err KIND`); ends when stdin closes.
fn bias(name: &str, depth: u32) -> i32 {
    let (m, _) = NamedMutex::create(name, false).expect("create");
    for _ in 0..100 {
        assert!(m.wait(None).expect("wait").is_acquired());
        m.release().expect("release");
    }
    for _ in 0..depth {
        assert!(m.wait(None).expect("wait").is_acquired());
    }
    say("biased");
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        match line.trim() {
            "release" => {
                for _ in 0..depth {
                    m.release().expect("release");
                }
                say("released");
            }
            "lock" => {
                let status = m.wait(Some(Duration::from_secs(10))).expect("wait");
                say(format!("status {}", status.code()));
            }
            "unlock" => match m.release() {
                Ok(()) => say("ok"),
                Err(e) => say(format!("err {:?}", e.kind())),
            },
            _ => {}
        }
    }
    0
}

/// For each of `rounds` fresh names `BASE-r`: creates (or opens) it, keeps the handle, and
/// increments the number in the file `FILE-r` 20 times under it, non-atomically. Two such processes
/// race for each mutex's first acquisition (the bias) and its revocation. Says `go?` and
/// waits for `go`; says `done` at the end.
fn bias_race(base: &str, file: &str, rounds: u32) -> i32 {
    say("go?");
    wait_for_line("go");
    let mut keep = Vec::new();
    for r in 0..rounds {
        let (m, _) = NamedMutex::create(&format!("{base}-{r}"), false).expect("create");
        let file = format!("{file}-{r}");
        for _ in 0..20 {
            let guard = m.lock().expect("lock");
            let n: u64 = std::fs::read_to_string(&file)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            std::thread::yield_now();
            std::fs::write(&file, (n + 1).to_string()).expect("write counter");
            drop(guard);
        }
        keep.push(m);
    }
    say("done");
    wait_for_stdin_close();
    0
}
