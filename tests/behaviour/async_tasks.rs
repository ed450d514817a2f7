//! Async acquisition (`lock_async`, `lock_async_for`) and owned guards: ownership by a task,
//! exclusive across tasks, threads and processes, on current-thread and multi-thread
//! runtimes; cancellation at every await point; abandonment when the holding process dies.

use crate::trial;
use crate::util::{
    ChildProc, Ctx, TestResult, ensure, ensure_eq, free_for_another_thread, owned_by_actor,
    poll_from_another_thread, unique, watchdog,
};
use libtest_mimic::Trial;
use namedmutex::{ErrorKind, NamedMutex, WaitStatus};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

pub fn trials() -> Vec<Trial> {
    vec![
        trial("async::tasks_exclude_each_other_current_thread", || {
            tasks_exclude_each_other(false)
        }),
        trial("async::tasks_exclude_each_other_multi_thread", || {
            tasks_exclude_each_other(true)
        }),
        trial(
            "async::guard_released_on_another_thread",
            guard_moves_between_threads,
        ),
        trial(
            "async::excludes_threads_both_ways",
            excludes_threads_both_ways,
        ),
        trial("async::timeout_and_poll", timeout_and_poll),
        trial(
            "async::executor_keeps_running_while_waiting",
            executor_not_blocked,
        ),
        trial("async::cancel_while_queued_behind_a_task", cancel_in_gate),
        trial(
            "async::cancel_while_waiting_on_another_owner",
            cancel_while_blocked,
        ),
        trial("async::cancel_after_the_helper_acquired", || {
            cancel_after_acquired(false)
        }),
        trial(
            "async::cancel_after_the_helper_acquired_handle_closed",
            || cancel_after_acquired(true),
        ),
        trial(
            "async::cancelled_waits_spare_other_acquisitions",
            cancels_spare_others,
        ),
        trial("async::excludes_other_processes", excludes_other_processes),
        trial(
            "async::holder_process_killed_abandons",
            holder_process_killed,
        ),
        trial(
            "async::thread_owned_release_refused",
            thread_release_refused,
        ),
        trial("owned_guard::static_and_abandonment", owned_guard),
    ]
}

fn runtime(multi: bool) -> Result<tokio::runtime::Runtime, String> {
    let mut builder = if multi {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(2);
        b
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder
        .enable_time()
        .build()
        .map_err(|e| format!("runtime: {e}"))
}

/// Polls `f` once with a waker that does nothing.
fn poll_once<F: Future + ?Sized>(f: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    f.poll(&mut Context::from_waker(Waker::noop()))
}

fn shared(tag: &str) -> Result<Arc<NamedMutex>, String> {
    Ok(Arc::new(
        NamedMutex::create(&unique(tag), false).ctx("create")?.0,
    ))
}

/// 16 tasks x 50 critical sections, each yielding to the executor inside: no two tasks
/// are ever inside at once, and every section ran.
fn tasks_exclude_each_other(multi: bool) -> TestResult {
    let m = shared("async-excl")?;
    let inside = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let rt = runtime(multi)?;
    let result: Result<(), String> = rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (m, inside, done) = (m.clone(), inside.clone(), done.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..50 {
                    let guard = m.lock_async().await.map_err(|e| e.to_string())?;
                    if inside.fetch_add(1, Ordering::SeqCst) != 0 {
                        return Err("two tasks inside the critical section".to_owned());
                    }
                    tokio::task::yield_now().await;
                    inside.fetch_sub(1, Ordering::SeqCst);
                    done.fetch_add(1, Ordering::SeqCst);
                    drop(guard);
                }
                Ok::<(), String>(())
            }));
        }
        for t in tasks {
            t.await.map_err(|e| format!("task: {e}"))??;
        }
        Ok(())
    });
    result?;
    ensure_eq!(
        done.load(Ordering::SeqCst),
        16 * 50,
        "critical sections run"
    );
    free_for_another_thread(&m, "free after the last task")
}

fn guard_moves_between_threads() -> TestResult {
    let m = shared("async-move")?;
    let rt = runtime(false)?;
    let guard = rt.block_on(m.lock_async_owned()).ctx("lock_async")?;
    ensure!(!guard.abandoned(), "fresh mutex reported abandoned");
    // Held by the process, not this thread: another thread cannot take it...
    ensure_eq!(
        poll_from_another_thread(&m)?.ctx("poll")?,
        WaitStatus::TimedOut,
        "another thread while a task holds it"
    );
    // ...and the guard may be released from any thread.
    std::thread::spawn(move || guard.release())
        .join()
        .map_err(|_| "release thread panicked".to_owned())?
        .ctx("release on another thread")?;
    free_for_another_thread(&m, "after the release on another thread")
}

fn excludes_threads_both_ways() -> TestResult {
    let m = shared("async-threads")?;
    let rt = runtime(true)?;
    let owner = owned_by_actor("owner", &m)?;
    let r = rt
        .block_on(m.lock_async_for(Duration::from_millis(30)))
        .ctx("lock_async_for")?;
    ensure!(r.is_none(), "a task acquired a mutex a thread owns");
    let o = m.clone();
    owner.run(move || o.release())?.ctx("owner release")?;
    let guard = rt
        .block_on(m.lock_async())
        .ctx("lock_async after release")?;
    ensure_eq!(
        m.wait(Some(Duration::ZERO)).ctx("thread poll")?,
        WaitStatus::TimedOut,
        "a thread while a task holds it (the same thread that polled the task)"
    );
    drop(guard);
    owner.finish()
}

fn timeout_and_poll() -> TestResult {
    let m = shared("async-timeout")?;
    let rt = runtime(false)?;
    let held = rt.block_on(m.lock_async()).ctx("first")?;
    let start = Instant::now();
    let r = rt
        .block_on(m.lock_async_for(Duration::from_millis(50)))
        .ctx("timed")?;
    let took = start.elapsed();
    ensure!(r.is_none(), "acquired a held mutex");
    ensure!(
        took >= Duration::from_millis(50) - crate::util::timer_slack(),
        "timed out early: {took:?}"
    );
    ensure!(took < watchdog(), "timeout took {took:?}");
    let r = rt.block_on(m.lock_async_for(Duration::ZERO)).ctx("poll")?;
    ensure!(r.is_none(), "a zero-timeout poll acquired a held mutex");
    drop(held);
    let r = rt
        .block_on(m.lock_async_for(Duration::ZERO))
        .ctx("poll free")?;
    ensure!(r.is_some(), "a zero-timeout poll missed a free mutex");
    Ok(())
}

/// On a current-thread runtime a ticker task keeps running while another task waits for a
/// mutex a thread holds: the wait does not block the executor's only thread.
fn executor_not_blocked() -> TestResult {
    let m = shared("async-ticker")?;
    let owner = owned_by_actor("owner", &m)?;
    let rt = runtime(false)?;
    let ticks = Arc::new(AtomicUsize::new(0));
    let result: Result<usize, String> = rt.block_on(async {
        let t = ticks.clone();
        let ticker = tokio::spawn(async move {
            loop {
                t.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        let waiter = tokio::spawn({
            let m = m.clone();
            async move { m.lock_async().await.map(|g| g.abandoned()) }
        });
        // Let the ticker tick while the waiter waits, then release from the owner thread.
        let before = ticks.load(Ordering::SeqCst);
        let deadline = Instant::now() + watchdog();
        while ticks.load(Ordering::SeqCst) < before + 20 {
            if Instant::now() > deadline {
                return Err("the ticker stopped while a task waited".to_owned());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if waiter.is_finished() {
            return Err("the waiter acquired a mutex a thread owns".to_owned());
        }
        let o = m.clone();
        owner.run(move || o.release())?.map_err(|e| e.to_string())?;
        let abandoned = tokio::time::timeout(watchdog(), waiter)
            .await
            .map_err(|_| "the waiter was not woken by the release".to_owned())?
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        ticker.abort();
        Ok(usize::from(abandoned))
    });
    ensure_eq!(result?, 0, "abandoned flag of an ordinary hand-over");
    Ok(())
}

/// Dropped while queued behind another task: the queue moves on.
fn cancel_in_gate() -> TestResult {
    let m = shared("async-cancel-gate")?;
    let rt = runtime(false)?;
    let held = rt.block_on(m.lock_async()).ctx("first")?;
    let mut second = Box::pin(m.lock_async());
    ensure!(
        poll_once(second.as_mut()).is_pending(),
        "second task got a held mutex"
    );
    let mut third = Box::pin(m.lock_async());
    ensure!(
        poll_once(third.as_mut()).is_pending(),
        "third task got a held mutex"
    );
    drop(second); // cancelled in the queue
    drop(held);
    let guard = rt.block_on(third).ctx("third after the cancelled one")?;
    drop(guard);
    let fourth = rt.block_on(m.lock_async_for(watchdog())).ctx("fourth")?;
    ensure!(fourth.is_some(), "the gate stayed closed after a cancel");
    Ok(())
}

/// Dropped while a helper thread sleeps on a thread's ownership: the helper is woken and
/// gives up, and the mutex is neither held nor blocked afterwards.
fn cancel_while_blocked() -> TestResult {
    let m = shared("async-cancel-blocked")?;
    let owner = owned_by_actor("owner", &m)?;
    let mut fut = Box::pin(m.lock_async());
    ensure!(
        poll_once(fut.as_mut()).is_pending(),
        "acquired a mutex a thread owns"
    );
    drop(fut);
    let o = m.clone();
    owner.run(move || o.release())?.ctx("owner release")?;
    // The cancelled helper must not take it afterwards: a task and a thread both get it.
    let rt = runtime(false)?;
    let guard = rt
        .block_on(m.lock_async_for(watchdog()))
        .ctx("after cancel")?
        .ok_or("the mutex stayed held after a cancelled wait")?;
    drop(guard);
    free_for_another_thread(&m, "after a cancelled wait")?;
    owner.finish()
}

/// The helper acquired (here: an abandoned mutex) but the future is dropped before it
/// looks: the acquisition is given back, and the abandonment still reported to the next.
/// `closed`: the future is an owned one whose handle nothing else holds, so dropping it
/// also closes that handle while the helper still has the acquisition.
fn cancel_after_acquired(closed: bool) -> TestResult {
    let name = unique("async-cancel-after");
    let m = Arc::new(NamedMutex::create(&name, false).ctx("create")?.0);
    let owner = owned_by_actor("owner", &m)?;
    let mut fut: std::pin::Pin<Box<dyn Future<Output = ()> + '_>> = if closed {
        let own = Arc::new(m.try_clone().ctx("try_clone")?);
        let acquire = own.lock_async_owned();
        drop(own); // the future holds the only reference to its handle
        Box::pin(async move { drop(acquire.await) })
    } else {
        Box::pin(async { drop(m.lock_async().await) })
    };
    ensure!(
        poll_once(fut.as_mut()).is_pending(),
        "acquired a mutex a thread owns"
    );
    let owner_tid = if cfg!(unix) {
        namedmutex::info(&name)
            .ctx("info")?
            .and_then(|i| i.owner)
            .map(|o| o.tid)
    } else {
        None // Windows names the owner from Windows 10 on only, Wine never (inspect.rs)
    };
    owner.finish()?; // the owner thread ends owning it: the helper acquires, abandoned
    if cfg!(unix) {
        // Bounded look until the helper owns it (the owner recorded changes), without
        // touching the mutex.
        let deadline = Instant::now() + watchdog();
        loop {
            let now = namedmutex::info(&name).ctx("info")?.and_then(|i| i.owner);
            if now.as_ref().is_some_and(|o| Some(o.tid) != owner_tid) {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "the helper never acquired: {now:?}"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    drop(fut);
    let rt = runtime(false)?;
    let guard = rt
        .block_on(m.lock_async_for(watchdog()))
        .ctx("after cancel")?
        .ok_or("the mutex stayed held after a cancelled wait")?;
    if cfg!(unix) {
        // (The Windows OS cannot hand an abandonment back: see its backend.)
        ensure!(
            guard.abandoned(),
            "the abandonment the cancelled task saw was lost"
        );
    }
    drop(guard);
    free_for_another_thread(&m, "after the report")
}

/// Waits cancelled one after another while another thread takes and releases a second
/// mutex without pause: no cancellation reaches the other acquisitions (on a server, a
/// cancel request sent at a session must never fail a statement run for someone else).
fn cancels_spare_others() -> TestResult {
    // Several owned mutexes taken in turn, so that each cancelled helper has ended (and
    // left its mutex's gate) by the time that mutex is waited for again.
    let owned: Vec<_> = (0..8)
        .map(|_| shared("async-cancels-a"))
        .collect::<Result<_, _>>()?;
    let owner = owned_by_actor("owner", &owned[0])?;
    for m in &owned[1..] {
        owner.acquire_at_once(m, "owner acquires")?;
    }
    let b = shared("async-cancels-b")?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let busy = {
        let (b, stop) = (b.clone(), stop.clone());
        std::thread::spawn(move || -> Result<usize, String> {
            let rt = runtime(false)?;
            let mut rounds = 0;
            while !stop.load(Ordering::SeqCst) {
                let guard = rt
                    .block_on(b.lock_async_for(watchdog()))
                    .map_err(|e| format!("busy acquisition {rounds}: {e}"))?
                    .ok_or("busy acquisition timed out")?;
                guard
                    .release()
                    .map_err(|e| format!("busy release {rounds}: {e}"))?;
                rounds += 1;
            }
            Ok(rounds)
        })
    };
    let mut cancelled = Ok(());
    for round in 0..500u64 {
        let mut fut = Box::pin(owned[round as usize % owned.len()].lock_async());
        if poll_once(fut.as_mut()).is_ready() {
            cancelled = Err(format!("round {round}: acquired a mutex a thread owns"));
            break;
        }
        // Cancel the helper at every stage: before it starts, while it tries, while it waits.
        std::thread::sleep(Duration::from_micros(round % 7 * 400));
        drop(fut);
    }
    stop.store(true, Ordering::SeqCst);
    let rounds = busy
        .join()
        .map_err(|_| "the busy thread panicked".to_owned())??;
    cancelled?;
    ensure!(rounds > 0, "the busy thread never acquired");
    owner.finish()
}

fn excludes_other_processes() -> TestResult {
    let name = unique("async-procs");
    let mut a = ChildProc::spawn("async-holder")?;
    let (h, _) = a.create(&name, false)?;
    ensure_eq!(
        a.ok(&format!("async-lock {h}"))?,
        vec!["0".to_owned()],
        "child's async lock"
    );
    let m = Arc::new(NamedMutex::open(&name).ctx("open")?);
    let rt = runtime(true)?;
    let r = rt
        .block_on(m.lock_async_for(Duration::from_millis(30)))
        .ctx("timed")?;
    ensure!(
        r.is_none(),
        "a task acquired what another process's task holds"
    );
    ensure_eq!(
        m.wait(Some(Duration::ZERO)).ctx("thread poll")?,
        WaitStatus::TimedOut,
        "a thread while another process's task holds it"
    );
    // The child releases from another thread; our waiting task then gets it.
    let waiting = rt.spawn({
        let m = m.clone();
        async move { m.lock_async().await.map(|g| g.abandoned()) }
    });
    a.ok("async-drop")?;
    let abandoned = rt
        .block_on(async { tokio::time::timeout(watchdog(), waiting).await })
        .map_err(|_| "not woken by the other process's release".to_owned())?
        .map_err(|e| e.to_string())?
        .ctx("lock_async")?;
    ensure!(!abandoned, "an ordinary release reported as abandonment");
    Ok(())
}

fn holder_process_killed() -> TestResult {
    let name = unique("async-killed");
    let mut a = ChildProc::spawn("async-holder")?;
    let (h, _) = a.create(&name, false)?;
    a.ok(&format!("async-lock {h}"))?;
    let m = Arc::new(NamedMutex::open(&name).ctx("open")?);
    let rt = runtime(true)?;
    let waiting = rt.spawn({
        let m = m.clone();
        async move { m.lock_async().await.map(|g| g.abandoned()) }
    });
    a.kill()?;
    let abandoned = rt
        .block_on(async { tokio::time::timeout(watchdog(), waiting).await })
        .map_err(|_| "not woken by the holder's death".to_owned())?
        .map_err(|e| e.to_string())?
        .ctx("lock_async")?;
    ensure!(
        abandoned,
        "the death of the holding process was not reported"
    );
    let again = rt.block_on(m.lock_async()).ctx("again")?;
    ensure!(!again.abandoned(), "the abandonment was reported twice");
    Ok(())
}

fn thread_release_refused() -> TestResult {
    let m = shared("async-notowner")?;
    let rt = runtime(false)?;
    let guard = rt.block_on(m.lock_async()).ctx("lock_async")?;
    let e = m
        .release()
        .err()
        .ok_or("a thread released a task's acquisition")?;
    ensure_eq!(
        e.kind(),
        ErrorKind::NotOwner,
        "thread release of a task's acquisition"
    );
    guard.release().ctx("guard release")
}

fn owned_guard() -> TestResult {
    let m = shared("owned-guard")?;
    let make = |m: &Arc<NamedMutex>| m.lock_owned();
    let guard = make(&m).ctx("lock_owned")?; // outlives the closure's borrow
    ensure!(!guard.abandoned(), "fresh lock reported abandoned");
    ensure_eq!(
        poll_from_another_thread(&m)?.ctx("poll")?,
        WaitStatus::TimedOut,
        "another thread while an owned guard holds it"
    );
    drop(guard);
    let o = m.clone();
    // A thread that ends owning it (a forgotten guard would leak its handle too).
    std::thread::spawn(move || o.wait(None))
        .join()
        .map_err(|_| "thread panicked".to_owned())?
        .ctx("thread wait")?;
    let guard = m
        .try_lock_for_owned(watchdog())
        .ctx("try_lock_for_owned")?
        .ok_or("timed out")?;
    ensure!(guard.abandoned(), "owned guard missed the abandonment");
    Ok(())
}
