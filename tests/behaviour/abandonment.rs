//! semantics.md §5: abandonment.

use crate::trial;
use crate::util::*;
use libtest_mimic::Trial;
use namedmutex::{ErrorKind, NamedMutex, WaitStatus};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn trials() -> Vec<Trial> {
    let mut v = vec![
        trial(
            "abandonment::thread_return_reported_once_with_count_one",
            thread_return,
        ),
        trial(
            "abandonment::dead_owners_count_3_is_discarded",
            dead_count_discarded,
        ),
        trial(
            "abandonment::blocked_waiter_woken_when_owner_thread_ends",
            blocked_waiter_thread,
        ),
        trial(
            "abandonment::owner_thread_ends_with_its_handle_closed",
            owner_handle_closed,
        ),
        trial("abandonment::guard_reports_abandoned", guard_abandoned),
        trial(
            "abandonment::thread_that_never_owned_does_not_abandon",
            never_owned,
        ),
        trial(
            "abandonment::reused_thread_ids_never_inherit_ownership",
            reused_thread_ids,
        ),
        trial(
            "abandonment::process_killed_at_depth_3_wakes_waiter_in_other_process",
            killed_depth_3,
        ),
        trial("abandonment::process_exit_while_owning", process_exit),
        trial("abandonment::process_abort_while_owning", process_abort),
        trial(
            "abandonment::process_exit_while_a_worker_thread_owns",
            process_exit_worker,
        ),
        trial(
            "abandonment::thread_of_another_process_returns_while_owning",
            child_thread_return,
        ),
    ];
    if cfg!(unix) {
        v.push(trial("abandonment::exec_while_owning", exec_while_owning));
    }
    v
}

/// A thread acquires `m` `depth` times and returns without releasing.
fn die_owning(m: &Arc<NamedMutex>, depth: usize) -> TestResult {
    let o = m.clone();
    on_new_thread(move || -> TestResult {
        for i in 0..depth {
            expect_wait(
                o.wait(Some(Duration::ZERO)),
                WaitStatus::Acquired,
                &format!("dying thread's wait #{i}"),
            )?;
        }
        Ok(())
    })?
}

/// The next acquirer after the owner thread returned gets Abandoned, once; it owns with
/// count 1; until then the mutex has no owner (every release is 288).
fn thread_return() -> TestResult {
    let (m, _) = NamedMutex::create(&unique("thread-return"), false).ctx("create")?;
    let m = Arc::new(m);
    die_owning(&m, 1)?;
    // Between the death and the next acquisition: no owner, the mark stays.
    for i in 0..3 {
        expect_err(
            m.release(),
            ErrorKind::NotOwner,
            288,
            &format!("release #{i} of an abandoned, unacquired mutex"),
        )?;
    }
    let o = m.clone();
    expect_err(
        on_new_thread(move || o.release())?,
        ErrorKind::NotOwner,
        288,
        "another thread's release of it",
    )?;
    expect_wait(
        m.wait(long_wait()),
        WaitStatus::Abandoned,
        "first wait after the owner thread returned",
    )?;
    // Owned now, by us: another thread cannot take it.
    expect_wait(
        poll_from_another_thread(&m)?,
        WaitStatus::TimedOut,
        "another thread while we own it",
    )?;
    // Reported once: a recursive wait is Acquired.
    expect_wait(
        m.wait(Some(Duration::ZERO)),
        WaitStatus::Acquired,
        "recursive wait after Abandoned",
    )?;
    m.release().ctx("release 1")?;
    m.release().ctx("release 2")?;
    expect_err(m.release(), ErrorKind::NotOwner, 288, "release 3")?;
    // And the next acquirer, another thread, sees Acquired.
    free_for_another_thread(&m, "another thread after the abandonment was reported")?;
    take_and_release(&m, "main again")?;
    Ok(())
}

/// The dead owner held count 3: the new owner has count 1.
fn dead_count_discarded() -> TestResult {
    let (m, _) = NamedMutex::create(&unique("count3"), false).ctx("create")?;
    let m = Arc::new(m);
    die_owning(&m, 3)?;
    expect_wait(
        m.wait(long_wait()),
        WaitStatus::Abandoned,
        "wait after an owner with count 3 returned",
    )?;
    m.release().ctx("the one release")?;
    expect_err(
        m.release(),
        ErrorKind::NotOwner,
        288,
        "second release (the count was reset to 1)",
    )?;
    free_for_another_thread(&m, "another thread: free after one release")?;
    Ok(())
}

/// A thread blocked in a wait is woken when the owner thread ends, with Abandoned.
fn blocked_waiter_thread() -> TestResult {
    let (m, _) = NamedMutex::create(&unique("woken"), false).ctx("create")?;
    let m = Arc::new(m);
    let owner = owned_by_actor("owner", &m)?;
    let waiter = Actor::new("waiter");
    let o = m.clone();
    let pending = waiter.start(move || o.wait(None));
    pending.wait_blocked()?;
    ensure!(
        pending.try_now().is_none(),
        "the waiter returned while the owner lived"
    );
    let ended = Instant::now();
    owner.finish()?;
    let r = pending.get()?;
    note(format!(
        "waiter woken {:?} after the owner thread was joined",
        ended.elapsed()
    ));
    expect_wait(
        r,
        WaitStatus::Abandoned,
        "blocked waiter after the owner thread ended",
    )?;
    let o = m.clone();
    waiter.run(move || o.release())?.ctx("waiter release")?;
    waiter.finish()
}

/// Closing (dropping) the handle while owning does not release; when the thread then ends,
/// the mutex is abandoned (checklist 62).
fn owner_handle_closed() -> TestResult {
    let name = unique("handle-closed");
    let (m, _) = NamedMutex::create(&name, false).ctx("create")?;
    let owner = Actor::new("owner");
    let n = name.clone();
    owner.run(move || -> TestResult {
        let h = NamedMutex::open(&n).ctx("owner open")?;
        expect_wait(
            h.wait(Some(Duration::ZERO)),
            WaitStatus::Acquired,
            "owner acquires",
        )?;
        drop(h);
        Ok(())
    })??;
    expect_wait(
        m.wait(Some(Duration::ZERO)),
        WaitStatus::TimedOut,
        "poll while the owner lives with its handle closed",
    )?;
    let waiter = Actor::new("waiter");
    let waiter_handle = NamedMutex::open(&name).ctx("open for the waiter")?;
    let pending = waiter.start(move || {
        let r = waiter_handle.wait(long_wait());
        let rel = waiter_handle.release();
        (r, rel)
    });
    pending.wait_blocked()?;
    owner.finish()?;
    let (r, rel) = pending.get()?;
    expect_wait(
        r,
        WaitStatus::Abandoned,
        "waiter after the owner (handle closed) ended",
    )?;
    rel.ctx("waiter release")?;
    waiter.finish()
}

/// `lock()` still gives the guard after an abandonment and says so; the next lock does not.
fn guard_abandoned() -> TestResult {
    let (m, _) = NamedMutex::create(&unique("guard"), false).ctx("create")?;
    let m = Arc::new(m);
    die_owning(&m, 1)?;
    let o = m.clone();
    let flags = on_new_thread(move || -> Result<(bool, bool), String> {
        let first = o.lock().ctx("lock after abandonment")?;
        let a = first.abandoned();
        drop(first);
        let second = o.lock().ctx("second lock")?;
        let b = second.abandoned();
        Ok((a, b))
    })??;
    ensure_eq!(
        flags,
        (true, false),
        "guard.abandoned() of the first and second lock"
    );
    die_owning(&m, 2)?;
    let g = m
        .try_lock_for(watchdog())
        .ctx("try_lock_for")?
        .ok_or("try_lock_for timed out")?;
    ensure!(
        g.abandoned(),
        "try_lock_for after an abandonment: abandoned() is false"
    );
    ensure!(
        std::ptr::eq(g.mutex(), &*m),
        "guard.mutex() is not the mutex locked"
    );
    drop(g);
    die_owning(&m, 1)?;
    let g = m
        .try_lock()
        .ctx("try_lock")?
        .ok_or("try_lock found it owned")?;
    ensure!(
        g.abandoned(),
        "try_lock after an abandonment: abandoned() is false"
    );
    drop(g);
    let g = m
        .try_lock()
        .ctx("try_lock")?
        .ok_or("try_lock found it owned")?;
    ensure!(!g.abandoned(), "a later try_lock reports abandoned again");
    drop(g);
    expect_err(
        m.release(),
        ErrorKind::NotOwner,
        288,
        "the guards released it",
    )?;
    Ok(())
}

/// A thread that only held a handle, or whose wait timed out, or that released before
/// ending, abandons nothing.
fn never_owned() -> TestResult {
    let name = unique("never-owned");
    let (m, _) = NamedMutex::create(&name, false).ctx("create")?;
    let m = Arc::new(m);
    let n = name.clone();
    on_new_thread(move || NamedMutex::open(&n).map(drop))?.ctx("thread that only opens")?;
    let o = m.clone();
    let r = on_new_thread(move || {
        let r = o.wait(Some(Duration::ZERO));
        let rel = o.release();
        (r, rel)
    })?;
    expect_wait(r.0, WaitStatus::Acquired, "thread acquires")?;
    r.1.ctx("thread releases")?;
    // A thread whose wait times out while we own it.
    expect_wait(
        m.wait(Some(Duration::ZERO)),
        WaitStatus::Acquired,
        "main acquires",
    )?;
    let o = m.clone();
    expect_wait(
        on_new_thread(move || o.wait(Some(Duration::from_millis(20))))?,
        WaitStatus::TimedOut,
        "thread times out",
    )?;
    m.release().ctx("main release")?;
    take_and_release(&m, "after threads that never kept it ended")?;
    expect_err(m.release(), ErrorKind::NotOwner, 288, "count was 1")?;
    Ok(())
}

/// Threads start, acquire and end in quick succession; each fresh thread (whose id the
/// system may reuse) can neither release before acquiring, nor acquire without being told
/// Abandoned (checklist 100).
fn reused_thread_ids() -> TestResult {
    let (m, _) = NamedMutex::create(&unique("tid-reuse"), false).ctx("create")?;
    let m = Arc::new(m);
    for i in 0..60 {
        die_owning(&m, 1 + i % 3)?;
        let o = m.clone();
        let (rel_before, w, rel, rel2) = on_new_thread(move || {
            let a = o.release();
            let w = o.wait(long_wait());
            let b = o.release();
            let c = o.release();
            (a, w, b, c)
        })?;
        expect_err(
            rel_before,
            ErrorKind::NotOwner,
            288,
            &format!("iteration {i}: a fresh thread's release before acquiring"),
        )?;
        expect_wait(
            w,
            WaitStatus::Abandoned,
            &format!("iteration {i}: a fresh thread's wait"),
        )?;
        rel.ctx(&format!("iteration {i}: release"))?;
        expect_err(
            rel2,
            ErrorKind::NotOwner,
            288,
            &format!("iteration {i}: second release"),
        )?;
    }
    take_and_release(&m, "at the end")?;
    Ok(())
}

/// A process holding the mutex at recursion depth 3 is killed hard (SIGKILL /
/// TerminateProcess) while a waiter in another process is already blocked: the waiter gets
/// WAIT_ABANDONED promptly, owns it with count 1, and later acquirers see WAIT_OBJECT_0.
fn killed_depth_3() -> TestResult {
    let name = unique("killed");
    let mut a = ChildProc::spawn("owner")?;
    let (ha, existed) = a.create(&name, true)?;
    ensure!(!existed, "new name reported existing");
    ensure_eq!(
        a.ok_num(&format!("lock-depth {ha} 2"))?,
        0,
        "owner's recursive waits"
    );
    let mut b = ChildProc::spawn("waiter")?;
    let hb = b.open(&name)?;
    ensure_eq!(
        b.wait(hb, Some(0))?,
        0x102,
        "waiter poll while the owner lives"
    );
    b.start_wait(hb, None)?;
    let killed = Instant::now();
    a.kill()?;
    let (code, _) = b.wait_result()?;
    let latency = killed.elapsed();
    note(format!(
        "blocked waiter answered {latency:?} after the owner was killed (kill + reap included)"
    ));
    ensure_eq!(
        code,
        0x80,
        "the blocked waiter's wait after the owner (count 3) was killed"
    );
    b.ok(&format!("release {hb}"))?;
    b.expect_err(&format!("release {hb}"), ErrorKind::NotOwner, 288)?;
    let m = NamedMutex::open(&name).ctx("parent open")?;
    expect_wait(
        m.wait(Some(Duration::ZERO)),
        WaitStatus::Acquired,
        "parent after the waiter released (reported once)",
    )?;
    m.release().ctx("parent release")?;
    ensure_eq!(b.wait(hb, Some(0))?, 0, "waiter again");
    b.ok(&format!("release {hb}"))?;
    Ok(())
}

/// The owner process ends (its command is `how`) while its main thread owns; a thread of
/// ours already blocked gets Abandoned.
fn process_end(how: &str) -> TestResult {
    let name = unique("proc-end");
    let mut a = ChildProc::spawn("owner")?;
    let (_ha, _) = a.create(&name, true)?;
    let m = Arc::new(NamedMutex::open(&name).ctx("parent open")?);
    expect_wait(
        m.wait(Some(Duration::ZERO)),
        WaitStatus::TimedOut,
        "poll while the owner lives",
    )?;
    let waiter = Actor::new("waiter");
    let o = m.clone();
    let pending = waiter.start(move || o.wait(long_wait()));
    pending.wait_blocked()?;
    let start = Instant::now();
    a.send(how)?;
    let status = a.wait_exit()?;
    let r = pending.get()?;
    note(format!(
        "`{how}`: waiter answered {:?} after the command (child status {status})",
        start.elapsed()
    ));
    expect_wait(
        r,
        WaitStatus::Abandoned,
        &format!("blocked waiter after the owner process did `{how}`"),
    )?;
    let o = m.clone();
    waiter.run(move || o.release())?.ctx("waiter release")?;
    take_and_release(&m, "reported once")?;
    waiter.finish()
}

fn process_exit() -> TestResult {
    process_end("exit 0")?;
    process_end("exit 3")
}

fn process_abort() -> TestResult {
    process_end("abort")
}

/// A worker thread (not the main thread) of the child owns; while the process lives we
/// time out, when it exits we get Abandoned (checklist 67).
fn process_exit_worker() -> TestResult {
    let name = unique("worker");
    let (m, _) = NamedMutex::create(&name, false).ctx("create")?;
    let mut a = ChildProc::spawn("owner")?;
    let h = a.open(&name)?;
    ensure_eq!(
        a.ok_num(&format!("thread-lock-hold {h}"))?,
        0,
        "child worker acquires"
    );
    expect_wait(
        m.wait(Some(Duration::ZERO)),
        WaitStatus::TimedOut,
        "poll while the worker lives",
    )?;
    a.expect_err(&format!("release {h}"), ErrorKind::NotOwner, 288)?;
    a.send("exit 0")?;
    a.wait_exit()?;
    expect_wait(
        m.wait(long_wait()),
        WaitStatus::Abandoned,
        "wait after the process of the owning worker exited",
    )?;
    m.release().ctx("release")?;
    Ok(())
}

/// A thread of another process returns while owning: abandoned, though its process lives.
fn child_thread_return() -> TestResult {
    let name = unique("child-thread");
    let (m, _) = NamedMutex::create(&name, false).ctx("create")?;
    let mut a = ChildProc::spawn("owner")?;
    let h = a.open(&name)?;
    ensure_eq!(
        a.ok_num(&format!("thread-lock-exit {h}"))?,
        0,
        "child thread acquires and returns"
    );
    a.expect_err(&format!("release {h}"), ErrorKind::NotOwner, 288)?;
    expect_wait(
        m.wait(long_wait()),
        WaitStatus::Abandoned,
        "wait after a thread of the child returned owning",
    )?;
    ensure_eq!(
        a.wait(h, Some(0))?,
        0x102,
        "the child's main thread while we own it"
    );
    m.release().ctx("release")?;
    ensure_eq!(
        a.wait(h, Some(0))?,
        0,
        "the child's main thread after our release (reported once)"
    );
    a.ok(&format!("release {h}"))?;
    Ok(())
}

/// A process that execs while owning abandons the mutex (its thread is gone).
fn exec_while_owning() -> TestResult {
    let name = unique("exec");
    let mut a = ChildProc::spawn("owner")?;
    let (_h, _) = a.create(&name, true)?;
    let m = NamedMutex::open(&name).ctx("parent open")?;
    expect_wait(
        m.wait(Some(Duration::ZERO)),
        WaitStatus::TimedOut,
        "poll while the owner lives",
    )?;
    a.send("exec")?;
    let hello = a.recv("exec")?;
    ensure_eq!(
        hello,
        format!("hello {}", a.pid()),
        "greeting of the exec'd image"
    );
    expect_wait(
        m.wait(long_wait()),
        WaitStatus::Abandoned,
        "wait after the owner exec'd",
    )?;
    m.release().ctx("release")?;
    // The new image is a fresh process image: it does not own the mutex.
    let h2 = a.open(&name)?;
    a.expect_err(&format!("release {h2}"), ErrorKind::NotOwner, 288)?;
    ensure_eq!(
        a.wait(h2, Some(0))?,
        0,
        "the exec'd image acquires normally"
    );
    a.ok(&format!("release {h2}"))?;
    Ok(())
}
