//! semantics.md §9: waiting on several mutexes (`wait_any`, `wait_all`).

use crate::trial;
use crate::util::*;
use libtest_mimic::Trial;
use namedmutex::{Access, ErrorKind, MutexOptions, NamedMutex, WaitAny, WaitStatus};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub fn trials() -> Vec<Trial> {
    vec![
        trial("multi::any_returns_the_lowest_free_index", any_lowest_index),
        trial(
            "multi::any_prefers_a_free_lower_index_to_an_abandoned_one",
            any_free_before_abandoned,
        ),
        trial(
            "multi::all_over_two_abandoned_returns_abandoned",
            all_both_abandoned,
        ),
        trial("multi::zero_or_65_handles_are_invalid", counts),
        trial(
            "multi::all_with_the_same_object_twice_is_invalid",
            same_object_twice,
        ),
        trial(
            "multi::all_times_out_without_taking_any",
            all_or_nothing_timeout,
        ),
        trial(
            "multi::all_never_holds_a_subset_while_blocked",
            all_never_holds_subset,
        ),
        trial(
            "multi::all_with_opposite_orders_never_deadlocks",
            opposite_orders,
        ),
        trial(
            "multi::any_woken_by_owner_killed_in_another_process",
            any_owner_killed,
        ),
        trial(
            "multi::single_and_multi_waiters_lose_no_wake_ups",
            mixed_waiters,
        ),
        trial("multi::every_handle_needs_synchronize", needs_synchronize),
        trial(
            "multi::stress_mixed_waits_with_owner_kills",
            stress_with_kills,
        ),
    ]
}

fn pair(tag: &str) -> Result<(Arc<NamedMutex>, Arc<NamedMutex>), String> {
    let a = NamedMutex::create(&unique(&format!("{tag}-a")), false)
        .ctx("create a")?
        .0;
    let b = NamedMutex::create(&unique(&format!("{tag}-b")), false)
        .ctx("create b")?
        .0;
    Ok((Arc::new(a), Arc::new(b)))
}

/// Makes `m` abandoned: a thread acquires it and ends.
fn abandon(m: &Arc<NamedMutex>) -> TestResult {
    let o = m.clone();
    on_new_thread(move || {
        expect_wait(
            o.wait(Some(Duration::ZERO)),
            WaitStatus::Acquired,
            "dying thread",
        )
    })?
}

fn any_lowest_index() -> TestResult {
    let (a, b) = pair("any-low")?;
    let got = namedmutex::wait_any(&[&a, &b], Some(Duration::ZERO)).ctx("wait_any")?;
    ensure_eq!(got, WaitAny::Acquired(0), "both free");
    ensure_eq!(got.code(), 0, "code");
    // a is ours (recursion is also "acquirable"), so index 0 again.
    ensure_eq!(
        namedmutex::wait_any(&[&a, &b], Some(Duration::ZERO)).ctx("again")?,
        WaitAny::Acquired(0),
        "owned by us"
    );
    a.release().ctx("release")?;
    a.release().ctx("release")?;
    let holder = owned_by_actor("holder", &a)?;
    let got = namedmutex::wait_any(&[&a, &b], Some(Duration::ZERO)).ctx("wait_any")?;
    ensure_eq!(got, WaitAny::Acquired(1), "a held elsewhere");
    ensure_eq!(got.code(), 1, "code WAIT_OBJECT_0 + 1");
    b.release().ctx("release b")?;
    let got = namedmutex::wait_any(&[&a], Some(Duration::from_millis(30))).ctx("wait_any")?;
    ensure_eq!(got, WaitAny::TimedOut, "only a, held elsewhere");
    ensure_eq!(got.code(), 0x102, "timeout code");
    let ha = a.clone();
    holder.run(move || ha.release())?.ctx("holder release")?;
    holder.finish()
}

/// Ground truth: wait-any over [a free, b abandoned] is 0; b's abandonment waits for b's
/// next acquirer.
fn any_free_before_abandoned() -> TestResult {
    let (a, b) = pair("any-ab")?;
    abandon(&b)?;
    ensure_eq!(
        namedmutex::wait_any(&[&a, &b], None).ctx("wait_any")?,
        WaitAny::Acquired(0),
        "lowest index"
    );
    a.release().ctx("release a")?;
    let got = namedmutex::wait_any(&[&b, &a], None).ctx("wait_any")?;
    ensure_eq!(got, WaitAny::Abandoned(0), "b first now");
    ensure_eq!(got.code(), 0x80, "WAIT_ABANDONED + 0");
    b.release().ctx("release b")?;
    expect_err(b.release(), ErrorKind::NotOwner, 288, "count was 1")?;
    abandon(&b)?;
    let got = namedmutex::wait_any(&[&a, &b], None);
    // a is free, so index 0 wins again; b stays abandoned.
    ensure_eq!(
        got.ctx("wait_any")?,
        WaitAny::Acquired(0),
        "free a before abandoned b"
    );
    a.release().ctx("release a")?;
    let holder = owned_by_actor("holder", &a)?;
    ensure_eq!(
        namedmutex::wait_any(&[&a, &b], None).ctx("wait_any")?,
        WaitAny::Abandoned(1),
        "WAIT_ABANDONED + 1"
    );
    ensure_eq!(WaitAny::Abandoned(1).code(), 0x81, "code");
    b.release().ctx("release b")?;
    let ha = a.clone();
    holder.run(move || ha.release())?.ctx("holder release")?;
    holder.finish()
}

fn all_both_abandoned() -> TestResult {
    let (a, b) = pair("all-ab")?;
    abandon(&a)?;
    abandon(&b)?;
    expect_wait(
        namedmutex::wait_all(&[&a, &b], None),
        WaitStatus::Abandoned,
        "wait_all",
    )?;
    ensure_eq!(WaitStatus::Abandoned.code(), 0x80, "code");
    a.release().ctx("release a")?;
    b.release().ctx("release b")?;
    expect_err(a.release(), ErrorKind::NotOwner, 288, "a count 1")?;
    expect_err(b.release(), ErrorKind::NotOwner, 288, "b count 1")?;
    // Reported once: now both plain.
    expect_wait(
        namedmutex::wait_all(&[&a, &b], None),
        WaitStatus::Acquired,
        "again",
    )?;
    a.release().ctx("a")?;
    b.release().ctx("b")
}

fn counts() -> TestResult {
    let (a, _b) = pair("counts")?;
    let many: Vec<&NamedMutex> = vec![&a; 65];
    expect_err(
        namedmutex::wait_any(&many, Some(Duration::ZERO)),
        ErrorKind::InvalidParameter,
        87,
        "65 any",
    )?;
    expect_err(
        namedmutex::wait_all(&many, Some(Duration::ZERO)),
        ErrorKind::InvalidParameter,
        87,
        "65 all",
    )?;
    expect_err(
        namedmutex::wait_any(&[], Some(Duration::ZERO)),
        ErrorKind::InvalidParameter,
        87,
        "0 any",
    )?;
    expect_err(
        namedmutex::wait_all(&[], Some(Duration::ZERO)),
        ErrorKind::InvalidParameter,
        87,
        "0 all",
    )?;
    // 64 is fine (the same mutex repeatedly is allowed in wait-any).
    let sixty_four: Vec<&NamedMutex> = vec![&a; 64];
    ensure_eq!(
        namedmutex::wait_any(&sixty_four, None).ctx("64 any")?,
        WaitAny::Acquired(0),
        "64"
    );
    a.release().ctx("release")
}

fn same_object_twice() -> TestResult {
    let (a, _b) = pair("twice")?;
    let a2 = a.try_clone().ctx("clone")?;
    let by_name = NamedMutex::open(a.name().unwrap()).ctx("open")?;
    for (what, list) in [
        ("one handle twice", [&*a, &*a]),
        ("a clone", [&*a, &a2]),
        ("opened twice", [&*a, &by_name]),
    ] {
        let r = namedmutex::wait_all(&list, Some(Duration::ZERO));
        if wine_objects() {
            // semantics.md: Wine accepts it (and acquires twice); Windows gives 87.
            note(format!(
                "Wine difference: wait_all with {what} -> {r:?} (Windows: ERROR_INVALID_PARAMETER)"
            ));
            if let Ok(WaitStatus::Acquired) = r {
                a.release().ctx("release")?;
                a.release().ctx("release")?;
            }
        } else {
            expect_err(r, ErrorKind::InvalidParameter, 87, what)?;
        }
    }
    // Nothing was taken by the refused calls.
    expect_err(a.release(), ErrorKind::NotOwner, 288, "nothing acquired")
}

fn all_or_nothing_timeout() -> TestResult {
    let (a, b) = pair("all-none")?;
    let holder = owned_by_actor("holder", &b)?;
    let started = Instant::now();
    expect_wait(
        namedmutex::wait_all(&[&a, &b], Some(Duration::from_millis(50))),
        WaitStatus::TimedOut,
        "wait_all",
    )?;
    ensure!(
        started.elapsed() + timer_slack() >= Duration::from_millis(50),
        "returned early: {:?}",
        started.elapsed()
    );
    expect_err(a.release(), ErrorKind::NotOwner, 288, "a was not taken")?;
    free_for_another_thread(&a, "a is free for others")?;
    let hb = b.clone();
    holder.run(move || hb.release())?.ctx("holder release")?;
    holder.finish()
}

fn all_never_holds_subset() -> TestResult {
    let (a, b) = pair("all-subset")?;
    let holder = owned_by_actor("holder", &b)?;
    let waiter = Actor::new("waiter");
    let (wa, wb) = (a.clone(), b.clone());
    let pending = waiter.start(move || namedmutex::wait_all(&[&wa, &wb], long_wait()));
    pending.wait_blocked()?;
    // While it is blocked, a is free: another thread takes and returns it, again and again
    // for longer than a PostgreSQL wait's pause between tries (there each release of a also
    // wakes the waiter, so its tries meet these takes).
    let again = a.clone();
    on_new_thread(move || {
        let until = Instant::now() + Duration::from_millis(300);
        for n in 0.. {
            take_and_release(
                &again,
                &format!("a free while the wait_all blocks (take {n})"),
            )?;
            if Instant::now() >= until {
                break;
            }
        }
        Ok::<(), String>(())
    })??;
    let hb = b.clone();
    holder.run(move || hb.release())?.ctx("holder release")?;
    expect_wait(
        pending.get()?,
        WaitStatus::Acquired,
        "wait_all after b's release",
    )?;
    expect_wait(
        poll_from_another_thread(&a)?,
        WaitStatus::TimedOut,
        "a is the waiter's now",
    )?;
    let (wa, wb) = (a.clone(), b.clone());
    waiter
        .run(move || wa.release().and(wb.release()))?
        .ctx("waiter release")?;
    holder.finish()?;
    waiter.finish()
}

/// Runs `body(i)` on `count` helper threads at once and waits (bounded) for all of them.
fn run_workers(
    count: usize,
    body: impl Fn(usize) -> TestResult + Send + Sync + 'static,
) -> TestResult {
    let body = Arc::new(body);
    let workers: Vec<Actor> = (0..count).map(|i| Actor::new(&format!("w{i}"))).collect();
    let pendings: Vec<_> = workers
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let body = body.clone();
            w.start(move || body(i))
        })
        .collect();
    for p in pendings {
        p.get()??;
    }
    for w in workers {
        w.finish()?;
    }
    Ok(())
}

/// Passes through a critical section marked by `inside`: fails if someone else is in it.
fn enter(inside: &AtomicU32, what: &str) -> TestResult {
    ensure!(
        inside.fetch_add(1, Ordering::SeqCst) == 0,
        "two owners at once ({what})"
    );
    inside.fetch_sub(1, Ordering::SeqCst);
    Ok(())
}

fn opposite_orders() -> TestResult {
    let (a, b) = pair("orders")?;
    let inside = AtomicU32::new(0);
    let iterations = if under_wine() || on_server() {
        200
    } else {
        3000
    };
    run_workers(3, move |i| {
        for n in 0..iterations {
            let list = if i % 2 == 0 { [&*a, &*b] } else { [&*b, &*a] };
            let what = format!("worker {i} iteration {n}");
            expect_wait(
                namedmutex::wait_all(&list, Some(watchdog())),
                WaitStatus::Acquired,
                &what,
            )?;
            enter(&inside, &what)?;
            a.release().ctx("a")?;
            b.release().ctx("b")?;
        }
        Ok(())
    })
}

fn any_owner_killed() -> TestResult {
    let (a, _) = pair("any-kill")?;
    let name_b = unique("any-kill-b");
    let mut owner = ChildProc::spawn("owner")?;
    let (hb, _) = owner.create(&name_b, true)?;
    ensure_eq!(
        owner.ok_num(&format!("lock-depth {hb} 2"))?,
        0,
        "owner at depth 3"
    );
    let b = Arc::new(NamedMutex::open(&name_b).ctx("open b")?);
    let holder = owned_by_actor("holder", &a)?;
    let waiter = Actor::new("waiter");
    let (wa, wb) = (a.clone(), b.clone());
    let pending = waiter.start(move || namedmutex::wait_any(&[&wa, &wb], long_wait()));
    pending.wait_blocked()?;
    let killed = Instant::now();
    owner.kill()?;
    let got = pending.get()?.ctx("wait_any")?;
    note(format!(
        "wait_any answered {:?} after the kill",
        killed.elapsed()
    ));
    ensure_eq!(got, WaitAny::Abandoned(1), "the killed owner's mutex");
    ensure_eq!(got.code(), 0x81, "code");
    let wb = b.clone();
    waiter.run(move || wb.release())?.ctx("release")?;
    let ha = a.clone();
    holder.run(move || ha.release())?.ctx("holder release")?;
    holder.finish()?;
    waiter.finish()
}

fn mixed_waiters() -> TestResult {
    let (a, b) = pair("mixed")?;
    let inside_a = AtomicU32::new(0);
    let iterations = if under_wine() || on_server() {
        100
    } else {
        1500
    };
    run_workers(5, move |i| {
        for n in 0..iterations {
            let what = format!("worker {i} iteration {n}");
            match i {
                0 | 1 => {
                    expect_wait(a.wait(Some(watchdog())), WaitStatus::Acquired, &what)?;
                    enter(&inside_a, &what)?;
                    a.release().ctx("a")?;
                }
                2 | 3 => {
                    expect_wait(
                        namedmutex::wait_all(&[&a, &b], Some(watchdog())),
                        WaitStatus::Acquired,
                        &what,
                    )?;
                    enter(&inside_a, &what)?;
                    b.release().ctx("b")?;
                    a.release().ctx("a")?;
                }
                _ => match namedmutex::wait_any(&[&a, &b], Some(watchdog())).ctx(&what)? {
                    WaitAny::Acquired(0) => {
                        enter(&inside_a, &what)?;
                        a.release().ctx("a")?;
                    }
                    WaitAny::Acquired(1) => b.release().ctx("b")?,
                    other => return Err(format!("{what}: {other:?}")),
                },
            }
        }
        Ok(())
    })
}

fn needs_synchronize() -> TestResult {
    let (a, b) = pair("sync")?;
    let query_only = MutexOptions::new()
        .access(Access::from_bits(1))
        .open(b.name().unwrap())
        .ctx("open")?;
    expect_err(
        namedmutex::wait_any(&[&a, &query_only], Some(Duration::ZERO)),
        ErrorKind::AccessDenied,
        5,
        "wait_any",
    )?;
    expect_err(
        namedmutex::wait_all(&[&a, &query_only], Some(Duration::ZERO)),
        ErrorKind::AccessDenied,
        5,
        "wait_all",
    )?;
    expect_err(a.release(), ErrorKind::NotOwner, 288, "nothing acquired")
}

/// Four processes loop over random single waits, wait-any and wait-all on three mutexes,
/// logging each critical section to one append-only file, while owners are SIGKILLed
/// (`TerminateProcess`) and replaced. The log must show: never two owners at once, an
/// abandoned entry only after a kill (and at most once per kill and mutex), no waiter stuck
/// (every wait is bounded and a timeout fails the child), and every mutex free at the end.
fn stress_with_kills() -> TestResult {
    use std::collections::{HashMap, HashSet};
    use std::io::Write;
    let names: Vec<String> = (0..3).map(|i| unique(&format!("stress{i}"))).collect();
    let keep: Vec<NamedMutex> = names
        .iter()
        .map(|n| NamedMutex::create(n, false).map(|(m, _)| m))
        .collect::<Result<_, _>>()
        .ctx("create")?;
    // Under Wine the children serialise their log appends with this (see child.rs).
    let log_lock = NamedMutex::create(&format!("{}-log", names[0]), false)
        .ctx("log lock")?
        .0;
    let log = std::env::temp_dir().join(format!("{}.log", unique("stress-log")));
    std::fs::write(&log, "").map_err(|e| e.to_string())?;
    let iters = if under_wine() || on_server() {
        150
    } else {
        1500
    };
    let command = |seed: u64| {
        let list: Vec<String> = names.iter().map(|n| enc(n)).collect();
        format!(
            "mix-loop {} {seed} {iters} {}",
            enc(log.to_str().unwrap()),
            list.join(" ")
        )
    };
    let mut kids: Vec<ChildProc> = Vec::new();
    for seed in 1..=4 {
        let mut kid = ChildProc::spawn("mixer")?;
        kid.send(&command(seed))?;
        kids.push(kid);
    }
    let mut appender = std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .map_err(|e| e.to_string())?;
    let target_kills = if under_wine() || on_server() { 2 } else { 6 };
    let mut kills = 0;
    let mut last_len = 0;
    let mut progress_deadline = Instant::now() + watchdog();
    while kills < target_kills {
        let len = std::fs::metadata(&log).map_err(|e| e.to_string())?.len();
        if len < last_len + 3000 {
            // Waiting for the children to make progress (bounded), not for a race to happen.
            ensure!(
                Instant::now() < progress_deadline,
                "no progress in the log for {:?}",
                watchdog()
            );
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        let victim = kills % kids.len();
        // One write, so that the line is appended whole between the children's lines.
        let line = format!("killing {}\n", kids[victim].pid());
        let guard = if under_wine() || on_server() {
            Some(log_lock.lock().ctx("log lock")?)
        } else {
            None
        };
        appender
            .write_all(line.as_bytes())
            .map_err(|e| e.to_string())?;
        drop(guard);
        kids[victim].kill()?;
        let mut kid = ChildProc::spawn("mixer")?;
        kid.send(&command(100 + kills as u64))?;
        kids[victim] = kid;
        kills += 1;
        last_len = len;
        progress_deadline = Instant::now() + watchdog();
    }
    for kid in kids.iter_mut() {
        let answer = kid.recv("mix-loop")?;
        ensure!(answer == "ok", "a mixer failed: {answer}");
    }
    // Check the log.
    let text = std::fs::read_to_string(&log).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&log);
    let mut holder: HashMap<&str, &str> = HashMap::new();
    let mut pending: HashMap<&str, HashSet<&str>> = HashMap::new();
    let mut killed: HashSet<&str> = HashSet::new();
    let (mut entries, mut abandons) = (0, 0);
    for (n, line) in text.lines().enumerate() {
        let w: Vec<&str> = line.split(' ').collect();
        match w.as_slice() {
            ["killing", p] => {
                killed.insert(p);
                for j in ["0", "1", "2"] {
                    pending.entry(j).or_default().insert(p);
                }
            }
            ["enter", p, j, a] => {
                entries += 1;
                if let Some(q) = holder.get(j) {
                    ensure!(
                        killed.contains(q) && *a != "0",
                        "line {n}: {p} entered {j} while {q} was inside: {line}"
                    );
                }
                let dead = holder.get(j).copied();
                let waiting = pending.entry(j).or_default();
                match *a {
                    "1" => {
                        abandons += 1;
                        let consumed = match dead {
                            Some(q) => waiting.remove(q),
                            None => waiting
                                .iter()
                                .next()
                                .copied()
                                .is_some_and(|q| waiting.remove(q)),
                        };
                        ensure!(
                            consumed,
                            "line {n}: {j} reported abandoned with no death to explain it: {line}"
                        );
                    }
                    "2" => {
                        abandons += 1;
                        if let Some(q) = dead {
                            waiting.remove(q);
                        }
                    }
                    _ => {}
                }
                holder.insert(j, p);
            }
            ["exit", p, j] => {
                ensure!(
                    holder.get(j) == Some(p),
                    "line {n}: {p} left {j} which it did not hold: {line}"
                );
                holder.remove(j);
            }
            _ => return Err(format!("line {n}: unreadable {line:?}")),
        }
    }
    for (j, p) in &holder {
        ensure!(killed.contains(p), "{p} (not killed) never left {j}");
    }
    note(format!(
        "stress: {entries} entries, {kills} kills, {abandons} abandoned entries (wait-all ones counted per mutex), 0 violations"
    ));
    ensure!(
        entries > 1000 || under_wine() || on_server(),
        "too few entries ({entries}) to mean anything"
    );
    // Every mutex is free (or abandoned by a killed process), once each.
    for m in &keep {
        let first = m.wait(Some(Duration::ZERO)).ctx("final wait")?;
        ensure!(
            first != WaitStatus::TimedOut,
            "a mutex is still owned at the end"
        );
        m.release().ctx("final release")?;
        take_and_release(m, "second final wait")?;
    }
    Ok(())
}
