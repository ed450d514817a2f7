//! semantics.md §3: ownership belongs to a thread; recursion; NotOwner.

use crate::trial;
use crate::util::*;
use libtest_mimic::Trial;
use namedmutex::{ErrorKind, NamedMutex, WaitStatus};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

pub fn trials() -> Vec<Trial> {
    vec![
        trial(
            "ownership::release_through_another_handle",
            release_other_handle,
        ),
        trial("ownership::recursion_needs_as_many_releases", recursion),
        trial(
            "ownership::initial_ownership_counts_as_one",
            initial_counts_one,
        ),
        trial(
            "ownership::release_by_another_thread_is_not_owner_288",
            release_other_thread,
        ),
        trial(
            "ownership::release_unowned_is_not_owner_288",
            release_unowned,
        ),
        trial(
            "ownership::release_by_another_process_is_not_owner_288",
            release_other_process,
        ),
        trial(
            "ownership::last_release_hands_over_to_a_blocked_waiter",
            last_release_hands_over,
        ),
        trial("ownership::one_waiter_per_release", one_waiter_per_release),
        trial(
            "ownership::mutual_exclusion_between_threads",
            exclusion_threads,
        ),
        trial(
            "ownership::mutual_exclusion_between_processes",
            exclusion_processes,
        ),
    ]
}

/// Any handle to the object serves: acquire through one, release through another (opened
/// by name, cloned, or after the first was closed).
fn release_other_handle() -> TestResult {
    let name = unique("other-handle");
    let (h1, _) = NamedMutex::create(&name, false).ctx("create")?;
    let h2 = Arc::new(NamedMutex::open(&name).ctx("open")?);
    let h3 = h1.try_clone().ctx("try_clone")?;
    expect_wait(
        h1.wait(Some(Duration::ZERO)),
        WaitStatus::Acquired,
        "wait via h1",
    )?;
    h2.release().ctx("release via the opened h2")?;
    expect_wait(
        h3.wait(Some(Duration::ZERO)),
        WaitStatus::Acquired,
        "wait via the clone h3",
    )?;
    h1.release().ctx("release via h1")?;
    expect_wait(
        h1.wait(Some(Duration::ZERO)),
        WaitStatus::Acquired,
        "wait via h1 again",
    )?;
    drop(h1);
    expect_wait(
        poll_from_another_thread(&h2)?,
        WaitStatus::TimedOut,
        "other thread while the owner's acquiring handle is closed",
    )?;
    h2.release()
        .ctx("release via h2 after the acquiring handle was closed")?;
    expect_err(
        h3.release(),
        ErrorKind::NotOwner,
        288,
        "one release too many",
    )?;
    expect_wait(
        poll_from_another_thread(&h2)?,
        WaitStatus::Acquired,
        "other thread after release",
    )?;
    Ok(())
}

/// The owner's further waits do not block and add one each; the mutex is free only after as
/// many releases; one more release is ERROR_NOT_OWNER (288).
fn recursion() -> TestResult {
    let (m, _) = NamedMutex::create(&unique("recursion"), false).ctx("create")?;
    let m = Arc::new(m);
    let owner = Actor::new("owner");
    let o = m.clone();
    let waits = owner.run(move || {
        vec![
            o.wait(Some(Duration::ZERO)),
            o.wait(Some(Duration::from_millis(10))),
            o.wait(None),
        ]
    })?;
    for (i, w) in waits.into_iter().enumerate() {
        expect_wait(w, WaitStatus::Acquired, &format!("owner's wait #{}", i + 1))?;
    }
    for i in 1..=3 {
        expect_wait(
            poll_from_another_thread(&m)?,
            WaitStatus::TimedOut,
            &format!("another thread before release #{i}"),
        )?;
        let o = m.clone();
        owner
            .run(move || o.release())?
            .ctx(&format!("owner's release #{i}"))?;
    }
    let o = m.clone();
    expect_err(
        owner.run(move || o.release())?,
        ErrorKind::NotOwner,
        288,
        "owner's 4th release",
    )?;
    expect_wait(
        poll_from_another_thread(&m)?,
        WaitStatus::Acquired,
        "another thread after 3 releases",
    )?;
    // Deeper: 100 acquisitions, 100 releases.
    let o = m.clone();
    let r = owner.run(move || -> Result<(), String> {
        for i in 0..100 {
            expect_wait(
                o.wait(Some(Duration::ZERO)),
                WaitStatus::Acquired,
                &format!("wait {i}"),
            )?;
        }
        for i in 0..100 {
            o.release().ctx(&format!("release {i}"))?;
        }
        expect_err(o.release(), ErrorKind::NotOwner, 288, "release 101")
    })?;
    r?;
    owner.finish()
}

/// `create(name, true)` plus one wait is count 2: two releases free it, a third is 288.
fn initial_counts_one() -> TestResult {
    let (m, _) = NamedMutex::create(&unique("initial-count"), true).ctx("create(owner)")?;
    let m = Arc::new(m);
    expect_wait(
        m.wait(Some(Duration::ZERO)),
        WaitStatus::Acquired,
        "recursive wait",
    )?;
    m.release().ctx("release 1")?;
    expect_wait(
        poll_from_another_thread(&m)?,
        WaitStatus::TimedOut,
        "other thread after 1 of 2 releases",
    )?;
    m.release().ctx("release 2")?;
    expect_wait(
        poll_from_another_thread(&m)?,
        WaitStatus::Acquired,
        "other thread after 2 releases",
    )?;
    expect_err(m.release(), ErrorKind::NotOwner, 288, "release 3")?;
    Ok(())
}

/// Release by another thread of the same process: 288, and the state does not change.
fn release_other_thread() -> TestResult {
    let (m, _) = NamedMutex::create(&unique("other-thread"), false).ctx("create")?;
    let m = Arc::new(m);
    expect_wait(
        m.wait(Some(Duration::ZERO)),
        WaitStatus::Acquired,
        "main acquires",
    )?;
    expect_wait(
        m.wait(Some(Duration::ZERO)),
        WaitStatus::Acquired,
        "main acquires again (count 2)",
    )?;
    let t2 = Actor::new("T2");
    for i in 0..3 {
        let o = m.clone();
        expect_err(
            t2.run(move || o.release())?,
            ErrorKind::NotOwner,
            288,
            &format!("T2 release #{i}"),
        )?;
    }
    let o = m.clone();
    expect_wait(
        t2.run(move || o.wait(Some(Duration::ZERO)))?,
        WaitStatus::TimedOut,
        "T2 wait(0)",
    )?;
    // The owner's count is still 2.
    m.release().ctx("main release 1")?;
    let o = m.clone();
    expect_wait(
        t2.run(move || o.wait(Some(Duration::ZERO)))?,
        WaitStatus::TimedOut,
        "T2 wait(0) after 1 of 2 releases",
    )?;
    m.release().ctx("main release 2")?;
    expect_err(m.release(), ErrorKind::NotOwner, 288, "main release 3")?;
    let o = m.clone();
    expect_wait(
        t2.run(move || o.wait(Some(Duration::ZERO)))?,
        WaitStatus::Acquired,
        "T2 after the owner released",
    )?;
    // Now the main thread is the non-owner.
    expect_err(
        m.release(),
        ErrorKind::NotOwner,
        288,
        "main release while T2 owns",
    )?;
    let o = m.clone();
    t2.run(move || o.release())?.ctx("T2 release")?;
    t2.finish()
}

/// Release of a mutex nobody owns, or after the count reached zero: 288.
fn release_unowned() -> TestResult {
    let (m, _) = NamedMutex::create(&unique("unowned"), false).ctx("create")?;
    expect_err(
        m.release(),
        ErrorKind::NotOwner,
        288,
        "release of a new, unowned mutex",
    )?;
    expect_err(m.release(), ErrorKind::NotOwner, 288, "again")?;
    let u = NamedMutex::create_unnamed(false).ctx("create_unnamed")?;
    expect_err(
        u.release(),
        ErrorKind::NotOwner,
        288,
        "release of an unowned unnamed mutex",
    )?;
    take_and_release(&m, "acquire")?;
    expect_err(
        m.release(),
        ErrorKind::NotOwner,
        288,
        "release after the count reached zero",
    )?;
    take_and_release(&m, "the failed releases changed nothing")?;
    Ok(())
}

/// A thread of another process cannot release; the owner's state is unchanged.
fn release_other_process() -> TestResult {
    let name = unique("other-process");
    let mut c = ChildProc::spawn("owner")?;
    let (h, existed) = c.create(&name, true)?;
    ensure!(!existed, "new name reported existing");
    let m = NamedMutex::open(&name).ctx("parent open")?;
    expect_err(
        m.release(),
        ErrorKind::NotOwner,
        288,
        "parent release while the child owns",
    )?;
    expect_wait(
        m.wait(Some(Duration::ZERO)),
        WaitStatus::TimedOut,
        "parent wait(0) while the child owns",
    )?;
    c.ok(&format!("release {h}"))?;
    c.expect_err(&format!("release {h}"), ErrorKind::NotOwner, 288)?;
    expect_wait(
        m.wait(Some(Duration::ZERO)),
        WaitStatus::Acquired,
        "parent after the child released",
    )?;
    c.expect_err(&format!("release {h}"), ErrorKind::NotOwner, 288)?;
    m.release().ctx("parent release")?;
    Ok(())
}

/// T1 owns with count 2 and T2 is blocked: T1's first release does not hand over (T1's
/// second release still succeeds); after the second, T2 owns with count 1.
fn last_release_hands_over() -> TestResult {
    let (m, _) = NamedMutex::create(&unique("handover"), false).ctx("create")?;
    let m = Arc::new(m);
    let t1 = Actor::new("T1");
    let t2 = Actor::new("T2");
    let o = m.clone();
    let r = t1.run(move || (o.wait(Some(Duration::ZERO)), o.wait(Some(Duration::ZERO))))?;
    expect_wait(r.0, WaitStatus::Acquired, "T1 acquires")?;
    expect_wait(r.1, WaitStatus::Acquired, "T1 acquires again")?;
    let o = m.clone();
    let pending = t2.start(move || o.wait(long_wait()));
    pending.wait_blocked()?;
    let o = m.clone();
    t1.run(move || o.release())?.ctx("T1 release 1")?;
    let o = m.clone();
    t1.run(move || o.release())?
        .ctx("T1 release 2 (T1 must still own it after its first release)")?;
    expect_wait(
        pending.get()?,
        WaitStatus::Acquired,
        "T2's blocked wait after T1's last release",
    )?;
    let o = m.clone();
    let r = t1.run(move || o.release())?;
    expect_err(r, ErrorKind::NotOwner, 288, "T1 release 3")?;
    let o = m.clone();
    t2.run(move || o.release())?.ctx("T2 release (count 1)")?;
    expect_wait(
        poll_from_another_thread(&m)?,
        WaitStatus::Acquired,
        "free after T2's single release",
    )?;
    t1.finish()?;
    t2.finish()
}

/// Two threads blocked; each release lets exactly one in (no order promised).
fn one_waiter_per_release() -> TestResult {
    let (m, _) = NamedMutex::create(&unique("one-per-release"), true).ctx("create(owner)")?;
    let m = Arc::new(m);
    let inside = Arc::new(AtomicUsize::new(0));
    let (entered_tx, entered_rx) = std::sync::mpsc::channel::<usize>();
    let mut leave = Vec::new();
    let mut pendings = Vec::new();
    let actors = [Actor::new("W0"), Actor::new("W1")];
    for (i, a) in actors.iter().enumerate() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        leave.push(tx);
        let (o, inside, entered) = (m.clone(), inside.clone(), entered_tx.clone());
        let p = a.start(move || {
            let r = o.wait(long_wait());
            let prev = inside.fetch_add(1, Ordering::SeqCst);
            let _ = entered.send(i);
            let _ = rx.recv_timeout(watchdog());
            inside.fetch_sub(1, Ordering::SeqCst);
            let rel = o.release();
            (r, prev, rel)
        });
        p.wait_blocked()?;
        pendings.push(Some(p));
    }
    m.release().ctx("main release")?;
    for round in 0..2 {
        let who = entered_rx
            .recv_timeout(watchdog())
            .map_err(|_| format!("round {round}: no waiter entered after a release"))?;
        let _ = leave[who].send(());
        let p = pendings[who].take().ok_or("a waiter entered twice")?;
        let (r, prev, rel) = p.get()?;
        expect_wait(r, WaitStatus::Acquired, &format!("waiter {who}"))?;
        ensure_eq!(
            prev,
            0,
            "waiter {who} entered while another waiter was inside"
        );
        rel.ctx(&format!("waiter {who} release"))?;
    }
    Ok(())
}

/// Several threads increment a plain counter under the mutex (read, yield, write): the
/// result is exact.
fn exclusion_threads() -> TestResult {
    const THREADS: usize = 4;
    // On a server under Wine a hand-off costs about 1.7 ms (Wine's sockets): 1500 took
    // 10 s there, and over the watchdog on a loaded machine.
    let iters: u64 = if under_wine() && on_server() {
        300
    } else {
        1500
    };
    let name = unique("exclusion-threads");
    let (m, _) = NamedMutex::create(&name, false).ctx("create")?;
    let counter = Arc::new(AtomicU64::new(0));
    let mut pendings = Vec::new();
    let actors: Vec<Actor> = (0..THREADS)
        .map(|i| Actor::new(&format!("inc{i}")))
        .collect();
    for a in &actors {
        // Each thread has its own handle, opened by name.
        let (n, c) = (name.clone(), counter.clone());
        pendings.push(a.start(move || -> TestResult {
            let h = NamedMutex::open(&n).ctx("open")?;
            for i in 0..iters {
                expect_wait(
                    h.wait(long_wait()),
                    WaitStatus::Acquired,
                    &format!("iteration {i}"),
                )?;
                let v = c.load(Ordering::Relaxed);
                if i % 7 == 0 {
                    std::thread::yield_now();
                }
                c.store(v + 1, Ordering::Relaxed);
                h.release().ctx("release")?;
            }
            Ok(())
        }));
    }
    for p in pendings {
        p.get()??;
    }
    drop(m);
    ensure_eq!(
        counter.load(Ordering::SeqCst),
        THREADS as u64 * iters,
        "counter after all increments"
    );
    Ok(())
}

/// Several processes append `enter`/`exit` lines to one file inside the critical section:
/// the file must show strictly nested pairs.
fn exclusion_processes() -> TestResult {
    const PROCS: usize = 3;
    const ITERS: u64 = 300;
    let name = unique("exclusion-procs");
    let (_m, _) = NamedMutex::create(&name, false).ctx("create")?;
    let path = std::env::temp_dir().join(format!("{}.log", unique("cs")));
    std::fs::write(&path, b"").map_err(|e| format!("create {}: {e}", path.display()))?;
    let path_s = path.to_string_lossy().into_owned();
    let mut kids = Vec::new();
    for i in 0..PROCS {
        let mut k = ChildProc::spawn(&format!("cs{i}"))?;
        let h = k.open(&name)?;
        kids.push((k, h));
    }
    for (k, h) in kids.iter_mut() {
        k.send(&format!("cs-loop {h} {} {ITERS}", enc(&path_s)))?;
    }
    for (k, _) in kids.iter_mut() {
        match k.reply("cs-loop")? {
            Reply::Ok(_) => {}
            other => return Err(format!("cs-loop answered {other:?}")),
        }
    }
    let log = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&path);
    let lines: Vec<&str> = log.lines().collect();
    ensure_eq!(
        lines.len(),
        PROCS * ITERS as usize * 2,
        "number of log lines"
    );
    for (i, pair) in lines.chunks(2).enumerate() {
        let enter = pair[0].strip_prefix("enter ");
        let exit = pair[1].strip_prefix("exit ");
        ensure!(
            enter.is_some() && enter == exit,
            "mutual exclusion violated at critical section {i}: {:?} then {:?}",
            pair[0],
            pair[1]
        );
    }
    Ok(())
}
