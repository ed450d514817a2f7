//! semantics.md §4: waiting, timeouts, signals.

use crate::trial;
use crate::util::*;
use libtest_mimic::Trial;
use namedmutex::{ErrorKind, NamedMutex, WaitStatus, synchapi};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn trials() -> Vec<Trial> {
    let mut v = vec![
        trial("waiting::zero_timeout_polls", zero_timeout),
        trial(
            "waiting::finite_timeout_returns_timed_out_after_the_timeout",
            finite_timeout,
        ),
        trial(
            "waiting::finite_timeout_on_a_free_mutex_does_not_wait",
            finite_on_free,
        ),
        trial(
            "waiting::forever_wait_ends_at_the_release",
            forever_ends_at_release,
        ),
        trial("waiting::huge_timeouts_do_not_overflow", huge_timeouts),
        trial(
            "waiting::timeout_across_processes",
            timeout_across_processes,
        ),
        trial(
            "waiting::closing_other_handles_does_not_wake_a_waiter",
            close_during_wait,
        ),
    ];
    if cfg!(unix) {
        v.push(trial(
            "waiting::signals_neither_cut_short_nor_extend_a_wait",
            signals,
        ));
    }
    v
}

/// `timeout = 0` polls: a free mutex is acquired, an owned one gives TimedOut and nothing
/// is acquired.
fn zero_timeout() -> TestResult {
    let (m, _) = NamedMutex::create(&unique("poll"), false).ctx("create")?;
    let m = Arc::new(m);
    take_and_release(&m, "poll on a free mutex")?;
    let owner = owned_by_actor("owner", &m)?;
    let start = Instant::now();
    for i in 0..200 {
        expect_wait(
            m.wait(Some(Duration::ZERO)),
            WaitStatus::TimedOut,
            &format!("poll #{i} while another thread owns"),
        )?;
        ensure!(
            m.try_lock().ctx("try_lock")?.is_none(),
            "try_lock acquired a mutex another thread owns"
        );
    }
    note(format!(
        "200 polls of an owned mutex took {:?}",
        start.elapsed()
    ));
    expect_err(
        m.release(),
        ErrorKind::NotOwner,
        288,
        "release after polls that timed out",
    )?;
    let o = m.clone();
    owner.run(move || o.release())?.ctx("owner release")?;
    take_and_release(&m, "poll after the owner released")?;
    owner.finish()
}

/// A finite timeout on an owned mutex: TimedOut, no sooner than the timeout (monotonic
/// clock), and nothing acquired.
fn finite_timeout() -> TestResult {
    let (m, _) = NamedMutex::create(&unique("timeout"), false).ctx("create")?;
    let m = Arc::new(m);
    let owner = owned_by_actor("owner", &m)?;
    for ms in [1u64, 20, 100, 250] {
        let timeout = Duration::from_millis(ms);
        let start = Instant::now();
        let r = m.wait(Some(timeout));
        let elapsed = start.elapsed();
        expect_wait(
            r,
            WaitStatus::TimedOut,
            &format!("wait({ms} ms) while another thread owns"),
        )?;
        ensure!(
            elapsed + timer_slack() >= timeout,
            "wait({ms} ms) returned TimedOut after only {elapsed:?}"
        );
        note(format!("wait({ms} ms) timed out after {elapsed:?}"));
        let start = Instant::now();
        let g = m.try_lock_for(timeout).ctx("try_lock_for")?;
        let elapsed = start.elapsed();
        ensure!(g.is_none(), "try_lock_for acquired an owned mutex");
        ensure!(
            elapsed + timer_slack() >= timeout,
            "try_lock_for({ms} ms) gave up after {elapsed:?}"
        );
    }
    expect_err(
        m.release(),
        ErrorKind::NotOwner,
        288,
        "release after timed-out waits",
    )?;
    let o = m.clone();
    owner.run(move || o.release())?.ctx("owner release")?;
    owner.finish()
}

/// A long finite timeout on a free (or own) mutex returns at once with Acquired.
fn finite_on_free() -> TestResult {
    let (m, _) = NamedMutex::create(&unique("free"), false).ctx("create")?;
    let start = Instant::now();
    expect_wait(
        m.wait(Some(Duration::from_secs(3600))),
        WaitStatus::Acquired,
        "wait(1 h) on a free mutex",
    )?;
    expect_wait(
        m.wait(Some(Duration::from_secs(3600))),
        WaitStatus::Acquired,
        "wait(1 h) on its own mutex",
    )?;
    let elapsed = start.elapsed();
    ensure!(
        elapsed < watchdog(),
        "two waits that should not block took {elapsed:?}"
    );
    m.release().ctx("release")?;
    m.release().ctx("release")?;
    Ok(())
}

/// `None` waits until the owner's release, then acquires; so does a long finite wait.
fn forever_ends_at_release() -> TestResult {
    let (m, _) = NamedMutex::create(&unique("forever"), true).ctx("create(owner)")?;
    let m = Arc::new(m);
    for timeout in [None, Some(Duration::from_secs(3600))] {
        let waiter = Actor::new("waiter");
        let o = m.clone();
        let pending = waiter.start(move || {
            let start = Instant::now();
            let r = o.wait(timeout);
            (r, start.elapsed())
        });
        pending.wait_blocked()?;
        ensure!(
            pending.try_now().is_none(),
            "the waiter returned while the mutex was owned"
        );
        let released = Instant::now();
        m.release().ctx("owner release")?;
        let (r, _) = pending.get()?;
        note(format!(
            "wait({timeout:?}) returned {:?} after the release",
            released.elapsed()
        ));
        expect_wait(
            r,
            WaitStatus::Acquired,
            &format!("wait({timeout:?}) after the release"),
        )?;
        // The waiter owns it now: the main thread cannot take it.
        expect_wait(
            m.wait(Some(Duration::ZERO)),
            WaitStatus::TimedOut,
            "main poll while the waiter owns",
        )?;
        let o = m.clone();
        waiter.run(move || o.release())?.ctx("waiter release")?;
        expect_wait(
            m.wait(Some(Duration::ZERO)),
            WaitStatus::Acquired,
            "main takes it back",
        )?;
        waiter.finish()?;
    }
    m.release().ctx("release")?;
    Ok(())
}

/// Timeouts that do not fit a `timespec` or `u32` milliseconds are still handled: on a
/// free mutex they acquire, and a waiter with one is woken by a release.
fn huge_timeouts() -> TestResult {
    let (m, _) = NamedMutex::create(&unique("huge"), false).ctx("create")?;
    let m = Arc::new(m);
    for t in [
        Duration::MAX,
        Duration::from_secs(u64::MAX / 2),
        Duration::from_millis(u64::from(u32::MAX) + 1),
    ] {
        expect_wait(
            m.wait(Some(t)),
            WaitStatus::Acquired,
            &format!("wait({t:?}) on a free mutex"),
        )?;
        m.release().ctx("release")?;
    }
    ensure_eq!(
        synchapi::wait_for_single_object(&m, synchapi::INFINITE - 1).ctx("wait 0xFFFFFFFE ms")?,
        0,
        "wait_for_single_object(INFINITE - 1)"
    );
    m.release().ctx("release")?;
    expect_wait(
        m.wait(Some(Duration::ZERO)),
        WaitStatus::Acquired,
        "main acquires",
    )?;
    let waiter = Actor::new("waiter");
    let o = m.clone();
    let pending = waiter.start(move || o.wait(Some(Duration::MAX)));
    pending.wait_blocked()?;
    ensure!(
        pending.try_now().is_none(),
        "a wait(Duration::MAX) returned while the mutex was owned"
    );
    m.release().ctx("release")?;
    expect_wait(
        pending.get()?,
        WaitStatus::Acquired,
        "wait(Duration::MAX) after the release",
    )?;
    let o = m.clone();
    waiter.run(move || o.release())?.ctx("waiter release")?;
    waiter.finish()
}

/// A child's finite wait on a mutex the parent owns: WAIT_TIMEOUT (258) after at least the
/// timeout; after the parent releases, the child acquires.
fn timeout_across_processes() -> TestResult {
    let name = unique("timeout-proc");
    let (m, _) = NamedMutex::create(&name, true).ctx("create(owner)")?;
    let mut c = ChildProc::spawn("waiter")?;
    let h = c.open(&name)?;
    let fields = c.ok(&format!("wait {h} 300"))?;
    ensure_eq!(
        fields.first().map(String::as_str),
        Some("258"),
        "child wait(300 ms) while the parent owns"
    );
    let us: u64 = fields
        .get(1)
        .and_then(|s| s.parse().ok())
        .ok_or("no elapsed time")?;
    let elapsed = Duration::from_micros(us);
    ensure!(
        elapsed + timer_slack() >= Duration::from_millis(300),
        "the child's wait(300 ms) timed out after {elapsed:?}"
    );
    note(format!("child wait(300 ms) timed out after {elapsed:?}"));
    c.start_wait(h, None)?;
    m.release().ctx("parent release")?;
    let (code, _) = c.wait_result()?;
    ensure_eq!(code, 0, "child's forever wait after the parent released");
    expect_wait(
        m.wait(Some(Duration::ZERO)),
        WaitStatus::TimedOut,
        "parent poll while the child owns",
    )?;
    c.ok(&format!("release {h}"))?;
    Ok(())
}

/// Closing other handles to the object while a thread waits wakes nobody; the release
/// later satisfies the waiter (checklist 55).
fn close_during_wait() -> TestResult {
    let name = unique("close-during-wait");
    let (m, _) = NamedMutex::create(&name, true).ctx("create(owner)")?;
    let extra = NamedMutex::open(&name).ctx("open")?;
    let waiter_handle = NamedMutex::open(&name).ctx("open for the waiter")?;
    let waiter = Actor::new("waiter");
    let pending = waiter.start(move || {
        let r = waiter_handle.wait(long_wait());
        let rel = waiter_handle.release();
        (r, rel)
    });
    pending.wait_blocked()?;
    drop(extra);
    let c = m.try_clone().ctx("clone")?;
    drop(c);
    ensure!(
        pending.try_now().is_none(),
        "closing a handle woke the waiter"
    );
    m.release().ctx("release")?;
    let (r, rel) = pending.get()?;
    expect_wait(r, WaitStatus::Acquired, "the waiter after the release")?;
    rel.ctx("waiter release")?;
    waiter.finish()
}

/// Signals neither cut a wait short nor extend it past its deadline: a child with a
/// SIGUSR2 handler installed without SA_RESTART is signalled every few milliseconds during a
/// 400 ms wait; it must answer TimedOut, no sooner than 400 ms, and answer at all (a wait
/// that restarted its full timeout after each signal would never end).
fn signals() -> TestResult {
    #[cfg(unix)]
    {
        let name = unique("signals");
        let (m, _) = NamedMutex::create(&name, true).ctx("create(owner)")?;
        let mut c = ChildProc::spawn("signalled")?;
        c.ok("install-sigusr2")?;
        let h = c.open(&name)?;
        c.start_wait(h, Some(400))?;
        let pid = c.pid() as libc::pid_t;
        // Signal until the answer arrives (bounded by the watchdog inside wait_result's
        // reader; the signaller stops when told).
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        let signaller = std::thread::spawn(move || {
            let mut sent = 0u32;
            let deadline = Instant::now() + watchdog();
            while !stop2.load(std::sync::atomic::Ordering::SeqCst) && Instant::now() < deadline {
                // SAFETY: sends SIGUSR2 to our own child, which handles it.
                #[allow(unsafe_code)]
                unsafe {
                    libc::kill(pid, libc::SIGUSR2)
                };
                sent += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            sent
        });
        let result = c.wait_result();
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let sent = signaller.join().map_err(|_| "signaller panicked")?;
        let (code, elapsed) = result?;
        note(format!(
            "{sent} signals during the child's wait(400 ms); it timed out after {elapsed:?}"
        ));
        ensure_eq!(code, 0x102, "child's wait(400 ms) under signals");
        ensure!(
            elapsed >= Duration::from_millis(400),
            "a signal cut the wait short: {elapsed:?}"
        );
        ensure!(sent >= 10, "only {sent} signals were sent during the wait");
        // And an infinite wait under signals still ends with the release, not before.
        c.start_wait(h, None)?;
        for _ in 0..20 {
            // SAFETY: as above.
            #[allow(unsafe_code)]
            unsafe {
                libc::kill(pid, libc::SIGUSR2)
            };
        }
        m.release().ctx("release")?;
        let (code, _) = c.wait_result()?;
        ensure_eq!(
            code,
            0,
            "child's forever wait after signals and the release"
        );
        c.ok(&format!("release {h}"))?;
    }
    Ok(())
}
