//! Fault injection: a process killed at each step of create, open, close, lock, unlock and
//! thread registration (the crash points of `src/sys/unix/fault.rs`, compiled in with
//! `--features fault-injection`). For each point, a victim process loops over the
//! operations with `NAMEDMUTEX_FAULT` naming the point until it dies there (three times,
//! respawned), while two contender processes keep using the same name. Then:
//!
//! - the victim must have died by SIGKILL (else the point was never reached);
//! - the contenders go on making progress (no hang), never find two owners inside, and see
//!   exactly one `Abandoned` per death while owning (none for other points);
//! - the name still works: create, open, wait, release; and no file is left behind;
//! - for registration points, exactly one registry slot leaked per crash (documented in
//!   FORMAT.md), and the registry still hands out the others.

use crate::shm::Shm;
use crate::support::*;
use libtest_mimic::Trial;
use namedmutex::{ErrorKind, MutexOptions, NamedMutex, WaitStatus};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

/// Shared-memory layout of one fault case.
const INSIDE: usize = 0;
const VIOLATIONS: usize = 8;
const ABANDONS: usize = 16;
const STOP: usize = 24;
const ENTRIES: usize = 32;
const PROGRESS: usize = 64;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// The victim creates, opens, waits, releases and closes in a loop.
    Generic,
    /// Same, but the parent keeps a handle so that a death while owning is an abandonment.
    Owning,
    /// The victim opens a stale object (left by a killed holder).
    Stale,
    /// The victim takes over an abandoned mutex.
    Abandon,
    /// The victim dies registering its thread.
    Register,
    /// The victim is the first process to use the root: it dies making its user directory.
    FirstUse,
    /// The victim's threads end owning the mutex: it dies abandoning it (portable backend).
    #[cfg_attr(not(feature = "portable-backend"), allow(dead_code))]
    ThreadEnd,
    /// The victim sleeps on a mutex whose holder, another process, is killed: it dies in its
    /// watcher (portable backend).
    #[cfg_attr(not(feature = "portable-backend"), allow(dead_code))]
    Watcher,
}

const POINTS: &[(&str, Kind)] = &[
    ("create.before_publish", Kind::Generic),
    ("create.after_create", Kind::Generic),
    ("create.after_lock", Kind::Generic),
    ("create.after_publish", Kind::Generic),
    ("open.after_open", Kind::Generic),
    ("open.after_flock", Kind::Generic),
    ("open.after_stale_lock", Kind::Stale),
    ("close.after_lock", Kind::Generic),
    ("close.before_unlink", Kind::Generic),
    ("lock.after_cas", Kind::Owning),
    ("lock.after_abandon_cas", Kind::Abandon),
    ("unlock.before_swap", Kind::Owning),
    ("register.after_claim_cas", Kind::Register),
    ("abandon.before_swap", Kind::Owning),
    ("sweep.before_lock", Kind::Stale),
    ("stale.before_unlink", Kind::Stale),
    ("userdir.before_rename", Kind::FirstUse),
    ("register.before_live", Kind::Register),
];

/// The crash points of the backend's own way of telling who lives: Linux's robust-futex
/// lifelines, or the portable backend's record locks, watcher and thread destructors.
#[cfg(not(feature = "portable-backend"))]
const FLAVOUR_POINTS: &[(&str, Kind)] = &[("register.after_lifeline", Kind::Register)];
#[cfg(feature = "portable-backend")]
const FLAVOUR_POINTS: &[(&str, Kind)] = &[
    ("register.before_lifeline_lock", Kind::Register),
    ("thread_end.before_abandon", Kind::ThreadEnd),
    ("watcher.woken", Kind::Watcher),
    ("watcher.before_abandon_cas", Kind::Watcher),
];

const ROUNDS: u64 = 3;
const CONTENDERS: usize = 2;

pub fn trials() -> Vec<Trial> {
    POINTS
        .iter()
        .chain(FLAVOUR_POINTS)
        .enumerate()
        .map(|(i, &(point, kind))| {
            Trial::test(format!("fault::{point}"), move || case(i, point, kind))
                .with_ignored_flag(!cfg!(feature = "fault-injection"))
        })
        .collect()
}

fn case(i: usize, point: &'static str, kind: Kind) -> TestResult {
    let root = fresh_root("fault");
    let shm_path = root.join("fault.shm");
    let shm = Shm::create(&shm_path, 4096);
    let name = if i % 2 == 0 {
        "Local\\fault-victim"
    } else {
        "Global\\fault-victim"
    };
    let root_s = root.to_str().unwrap().to_owned();
    let slots = if kind == Kind::Register { "8" } else { "64" };
    let env = [
        ("NAMEDMUTEX_ROOT", root_s.as_str()),
        ("NAMEDMUTEX_REGISTRY_SLOTS", slots),
    ];
    let opts = MutexOptions::new().root(&root);
    let shm_s = shm_path.to_str().unwrap();
    let capacity_before = if kind == Kind::Register {
        Some(capacity(&env)?)
    } else {
        None
    };
    let keep = if matches!(
        kind,
        Kind::Owning | Kind::Abandon | Kind::ThreadEnd | Kind::Watcher
    ) {
        Some(opts.create(name)?.0)
    } else {
        None
    };
    let start_contenders = |shm: &Shm| -> Vec<Peer> {
        shm.u64(STOP).store(0, SeqCst);
        (0..CONTENDERS)
            .map(|k| Peer::spawn("contend", &[shm_s, name, &(k + 1).to_string()], &env))
            .collect()
    };
    // For stale and abandoned objects the contenders come after the victims: they would
    // clean up or take over before the victim could (and make the user directory first).
    let mut contenders = if matches!(
        kind,
        Kind::Stale | Kind::Abandon | Kind::FirstUse | Kind::Watcher
    ) {
        Vec::new()
    } else {
        start_contenders(&shm)
    };
    let rounds = if kind == Kind::Abandon { 1 } else { ROUNDS };
    let mut deaths_owning = 0;
    for round in 0..rounds {
        if matches!(kind, Kind::Stale | Kind::Abandon) {
            // A holder dies holding the only handle (stale) or a handle beside ours (abandon).
            let mut holder = Peer::spawn("hold", &[name, "1"], &env);
            holder.expect("holding")?;
            holder.kill();
        }
        // Points of `abandon` and of a sweep are reached by victims that abandon instead of
        // releasing, or prune before each create.
        let mode = point.split('.').next().unwrap_or("");
        let mut victim = Peer::spawn_with(
            None,
            "victim",
            &[shm_s, name, &(100 + round).to_string(), mode],
            &env,
            |cmd| {
                cmd.env("NAMEDMUTEX_FAULT", point);
            },
        );
        if kind == Kind::Watcher {
            // The victim sleeps on the mutex a holder process owns; the holder is killed,
            // and the victim's watcher, told by the kernel, dies at the point.
            let mut holder = Peer::spawn("hold", &[name, "1"], &env);
            holder.expect("holding")?;
            victim.send("wait");
            victim.expect("waiting")?;
            until_asleep(victim.pid())?;
            holder.kill();
            // Each round's holder takes its predecessor's abandoned mutex over: the
            // contenders are told only of the last death.
            deaths_owning = 1;
        }
        let status = victim.wait_exit(WATCHDOG)?;
        check(status.signal() == Some(libc::SIGKILL), || {
            format!(
                "round {round}: the victim was not killed at {point:?}: it ended with {}",
                describe(status)
            )
        })?;
        if matches!(kind, Kind::Owning | Kind::Abandon | Kind::ThreadEnd) {
            deaths_owning += 1;
        }
    }
    if matches!(kind, Kind::Stale | Kind::FirstUse | Kind::Watcher) {
        contenders = start_contenders(&shm);
    }
    if kind == Kind::Abandon {
        let info = opts.info(name)?.ok_or("the object vanished")?;
        check(info.owner.as_ref().is_some_and(|o| !o.alive), || {
            format!("after the victim died taking over the mutex, info says {info:?}")
        })?;
        contenders = start_contenders(&shm);
    }
    // No hang: both contenders go on entering after the last death.
    for k in 0..CONTENDERS {
        let cell = shm.u64(PROGRESS + 8 * k);
        let from = cell.load(SeqCst);
        wait_until(WATCHDOG, &format!("contender {k} to make progress"), || {
            cell.load(SeqCst) >= from + 5
        })?;
    }
    shm.u64(STOP).store(1, SeqCst);
    for (k, c) in contenders.into_iter().enumerate() {
        let code = c.finish()?;
        check(code == 0, || format!("contender {k} exited with {code}"))?;
    }
    let violations = shm.u64(VIOLATIONS).load(SeqCst);
    check(violations == 0, || {
        format!("{violations} violations (see VIOLATION lines on stderr)")
    })?;
    let abandons = shm.u64(ABANDONS).load(SeqCst);
    check(abandons == deaths_owning, || {
        format!("{abandons} Abandoned seen, for {deaths_owning} deaths while owning")
    })?;
    if let Some(before) = capacity_before {
        let after = capacity(&env)?;
        check(after + ROUNDS as usize == before, || {
            format!(
                "registry capacity {before} before, {after} after {ROUNDS} crashes mid-registration (one slot should leak per crash)"
            )
        })?;
        println!("  registry: {before} slots usable before, {after} after {ROUNDS} crashes");
    }
    // The name still works, in this process and in a new one.
    usable(&opts, name)?;
    drop(keep);
    let code = Peer::spawn("usable", &[name], &env).finish()?;
    check(code == 0, || {
        format!("a new process could not use {name:?} ({code})")
    })?;
    match opts.open(name) {
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        other => return Err(format!("after every handle closed, open gave {other:?}").into()),
    }
    let left = leftover_files(&root);
    check(left.is_empty(), || format!("files left behind: {left:?}"))?;
    // A victim killed while making its user directory leaves a temporary one; the next
    // process to make the directory removes it.
    let temporaries: Vec<String> = std::fs::read_dir(&root)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".namedmutex-"))
        .collect();
    check(temporaries.is_empty(), || {
        format!("temporary user directories left: {temporaries:?}")
    })?;
    println!(
        "  {point}: {rounds} deaths, {abandons} abandoned, {} entries by the contenders",
        shm.u64(ENTRIES).load(SeqCst)
    );
    Ok(())
}

/// How many threads can be registered at once in the root of `env` (run in a child).
fn capacity(env: &[(&str, &str)]) -> Result<usize, String> {
    let mut peer = Peer::spawn("capacity", &[], env);
    let line = peer.expect("capacity")?;
    check(peer.finish()? == 0, || "the capacity child failed".into())?;
    line[9..]
        .trim()
        .parse()
        .map_err(|e| format!("{line:?}: {e}"))
}

/// create, open, wait (Abandoned at most once), release: the name works. Runs on fresh
/// threads: one thread can register under at most 8 roots, and every case has its own.
pub fn usable(opts: &MutexOptions, name: &str) -> Result<(), String> {
    std::thread::scope(|s| s.spawn(|| usable_here(opts, name)).join().unwrap())
}

fn usable_here(opts: &MutexOptions, name: &str) -> Result<(), String> {
    let (m, _) = opts.create(name).map_err(|e| format!("create: {e}"))?;
    let o = opts.open(name).map_err(|e| format!("open: {e}"))?;
    let first = m.wait(Some(WATCHDOG)).map_err(|e| format!("wait: {e}"))?;
    check(first.is_acquired(), || format!("wait gave {first:?}"))?;
    o.release().map_err(|e| format!("release: {e}"))?;
    let second = std::thread::scope(|s| {
        s.spawn(|| {
            let r = o.wait(Some(WATCHDOG));
            let _ = o.release();
            r
        })
        .join()
        .unwrap()
    });
    check(matches!(second, Ok(WaitStatus::Acquired)), || {
        format!("the wait after {first:?} gave {second:?}")
    })?;
    Ok(())
}

// ----- child roles ---------------------------------------------------------------------------

/// The entry protocol shared by contenders and victims: swap our id into INSIDE.
fn enter(shm: &Shm, me: u64, status: WaitStatus) {
    let prev = shm.u64(INSIDE).swap(me, SeqCst);
    shm.u64(ENTRIES).fetch_add(1, SeqCst);
    if status == WaitStatus::Abandoned {
        shm.u64(ABANDONS).fetch_add(1, SeqCst);
        // Only victims (ids >= 100) die; a contender found inside is a live second owner.
        if prev != 0 && prev < 100 {
            violation(shm, format!("Abandoned while contender {prev} is inside"));
        }
    } else if prev != 0 {
        violation(shm, format!("Acquired while {prev} is recorded inside"));
    }
    std::thread::yield_now();
    if shm.u64(INSIDE).load(SeqCst) != me {
        violation(shm, "somebody else entered while we were inside".into());
    }
}

fn leave(shm: &Shm, me: u64) {
    if shm
        .u64(INSIDE)
        .compare_exchange(me, 0, SeqCst, SeqCst)
        .is_err()
    {
        violation(shm, "our inside mark was overwritten".into());
    }
}

fn violation(shm: &Shm, what: String) {
    shm.u64(VIOLATIONS).fetch_add(1, SeqCst);
    eprintln!("VIOLATION (pid {}): {what}", std::process::id());
}

/// `--child contend SHM NAME ID`: create, wait, enter, leave, release, close, until STOP.
pub fn contend(args: &[String]) -> i32 {
    let shm = Shm::open(Path::new(&args[0]));
    let name = &args[1];
    let id: u64 = args[2].parse().unwrap();
    let mut rng = Rng::new(id ^ u64::from(std::process::id()));
    while shm.u64(STOP).load(SeqCst) == 0 {
        let m = match NamedMutex::create(name, false) {
            Ok((m, _)) => m,
            Err(e) => {
                violation(&shm, format!("contender create failed: {e}"));
                return 1;
            }
        };
        match m.wait(Some(Duration::from_millis(200))) {
            Ok(WaitStatus::TimedOut) => {}
            Ok(status) => {
                enter(&shm, id, status);
                leave(&shm, id);
                if let Err(e) = m.release() {
                    violation(&shm, format!("contender release failed: {e}"));
                }
                shm.u64(PROGRESS + 8 * (id as usize - 1))
                    .fetch_add(1, SeqCst);
            }
            Err(e) => {
                violation(&shm, format!("contender wait failed: {e}"));
                return 1;
            }
        }
        drop(m);
        std::thread::sleep(Duration::from_micros(rng.below(300)));
    }
    0
}

/// `--child victim SHM NAME ID MODE`: like a contender, with an open and a recursion, until
/// the crash point named by NAMEDMUTEX_FAULT kills it. Exits 3 if it never does. MODE
/// `abandon` gives the mutex up with `abandon` instead of its last release; `sweep` prunes
/// the name's namespace before each create.
pub fn victim(args: &[String]) -> i32 {
    let shm = Shm::open(Path::new(&args[0]));
    let name = &args[1];
    let id: u64 = args[2].parse().unwrap();
    let mode = args.get(3).map_or("", String::as_str);
    let namespace = if name.starts_with("Global\\") {
        namedmutex::Namespace::Global
    } else {
        namedmutex::Namespace::Local
    };
    if mode == "watcher" {
        return victim_sleeping(name);
    }
    let mut rng = Rng::new(id ^ u64::from(std::process::id()));
    let started = Instant::now();
    while started.elapsed() < WATCHDOG - Duration::from_secs(5) {
        if mode == "thread_end" {
            // A thread that ends owning the mutex: its destructor gives it up.
            std::thread::scope(|s| {
                s.spawn(|| {
                    if let Ok((m, _)) = NamedMutex::create(name, false) {
                        if let Ok(status) = m.wait(Some(Duration::from_millis(200))) {
                            if status.is_acquired() {
                                enter(&shm, id, status);
                                leave(&shm, id);
                            }
                        }
                    }
                });
            });
            continue;
        }
        if mode == "sweep" {
            if let Err(e) = MutexOptions::new().prune(namespace) {
                violation(&shm, format!("victim prune failed: {e}"));
                return 1;
            }
        }
        let (m, _) = match NamedMutex::create(name, false) {
            Ok(x) => x,
            Err(e) => {
                violation(&shm, format!("victim create failed: {e}"));
                return 1;
            }
        };
        let o = match NamedMutex::open(name) {
            Ok(o) => o,
            Err(e) => {
                violation(&shm, format!("victim open failed: {e}"));
                return 1;
            }
        };
        match m.wait(Some(Duration::from_millis(200))) {
            Ok(WaitStatus::TimedOut) => {}
            Ok(status) => {
                enter(&shm, id, status);
                let _ = o.wait(Some(Duration::ZERO));
                let _ = o.release();
                leave(&shm, id);
                let last = if mode == "abandon" {
                    m.abandon("fault-injection victim")
                } else {
                    m.release()
                };
                if let Err(e) = last {
                    violation(&shm, format!("victim release failed: {e}"));
                }
            }
            Err(e) => {
                violation(&shm, format!("victim wait failed: {e}"));
                return 1;
            }
        }
        drop(o);
        drop(m);
        std::thread::sleep(Duration::from_micros(rng.below(300)));
    }
    eprintln!(
        "victim: never reached {:?}",
        std::env::var("NAMEDMUTEX_FAULT")
    );
    3
}

/// The victim of a watcher point: told `wait` on stdin, it opens NAME, says `waiting` and
/// waits for it (a holder owns it) until the point kills it.
fn victim_sleeping(name: &str) -> i32 {
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    let m = match NamedMutex::open(name) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("victim open failed: {e}");
            return 1;
        }
    };
    println!("waiting");
    let got = m.wait(Some(WATCHDOG));
    eprintln!("victim: woken with {got:?} instead of dying in its watcher");
    3
}

/// `--child usable NAME`.
pub fn usable_child(args: &[String]) -> i32 {
    let opts = MutexOptions::new();
    match usable(&opts, &args[0]) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("usable: {e}");
            1
        }
    }
}

/// `--child capacity`: registers threads one by one, each staying alive, until one gets
/// ResourceExhausted; says `capacity N`.
pub fn capacity_child(_: &[String]) -> i32 {
    let name = format!("capacity-{}", std::process::id());
    let (m, _) = NamedMutex::create(&name, false).expect("create");
    let m = std::sync::Arc::new(m);
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let done_rx = std::sync::Arc::new(std::sync::Mutex::new(done_rx));
    let mut threads = Vec::new();
    let mut count = 0;
    loop {
        let (m, rx) = (m.clone(), done_rx.clone());
        let (tx, result) = std::sync::mpsc::channel();
        threads.push(std::thread::spawn(move || {
            let r = m.wait(Some(WATCHDOG)).map(|_| m.release());
            let ok = r.is_ok();
            let _ = tx.send(r.map(|_| ()).map_err(|e| e.kind()));
            if ok {
                let _ = rx.lock().unwrap().recv(); // stay alive until told
            }
        }));
        match result.recv_timeout(WATCHDOG) {
            Ok(Ok(())) => count += 1,
            Ok(Err(ErrorKind::ResourceExhausted)) => break,
            other => {
                eprintln!("capacity: thread {count} got {other:?}");
                return 1;
            }
        }
        if count > 10_000 {
            break;
        }
    }
    println!("capacity {count}");
    drop(done_tx);
    for t in threads {
        let _ = t.join();
    }
    0
}
