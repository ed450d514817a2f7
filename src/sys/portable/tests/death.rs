//! How a death reaches a sleeper in the portable backend: the watcher for a killed process,
//! a thread's destructor, the backstop for an `exec` (which a pidfd does not report), slices
//! for an owner nobody watches, and what a reader's record locks and a stray close do.

use crate::support::*;
use libtest_mimic::Trial;
use namedmutex::{MutexOptions, NamedMutex, WaitStatus};
use std::time::Duration;

/// `WAIT_ABANDONED`.
const ABANDONED: u32 = 0x80;
/// A waiter that only a wake-up can end: no backstop, and no slices for an owner its watcher
/// failed to watch.
const WOKEN_BY_KERNEL: &[(&str, &str)] = &[
    ("NAMEDMUTEX_TEST_NO_BACKSTOP", "1"),
    ("NAMEDMUTEX_TEST_NO_SLICES", "1"),
];

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test("death::killed_owner_wakes_every_sleeper_once", killed_owner),
        Trial::test("death::thread_end_abandons_to_another_process", thread_end),
        Trial::test("death::unwatched_owner_is_seen_between_slices", unwatched),
        Trial::test(
            "death::readers_record_locks_keep_no_dead_owner_alive",
            read_locks,
        ),
        Trial::test("death::exec_drops_the_lifeline", exec),
        Trial::test(
            "death::stray_close_of_the_registry_looks_like_a_death",
            stray_close,
        ),
        Trial::test("death::an_owner_keeps_its_object_but_not_its_name", kept),
    ]
}

/// A sleeping waiter in a new process: `wait NAME` with `env`, asleep in the kernel.
fn sleeper(name: &str, env: &[(&str, &str)]) -> Result<Peer, String> {
    let mut w = Peer::spawn("wait", &[name], env);
    w.expect("waiting")?;
    until_asleep(w.pid())?;
    Ok(w)
}

/// A waiter's `status CODE MICROS`, from a waiter only a wake-up may end: its 20 s wait must
/// not have run out (at its deadline it would still take a dead owner's mutex, and look
/// woken).
fn woken_status(w: &mut Peer) -> Result<(u32, u64), String> {
    let (code, micros) = status(w)?;
    check(micros < 10_000_000, || {
        format!("the wait ended by its deadline after {micros} µs, not by a wake-up")
    })?;
    Ok((code, micros))
}

/// A waiter's `status CODE MICROS`.
fn status(w: &mut Peer) -> Result<(u32, u64), String> {
    let line = w.expect("status")?;
    let mut parts = line.split_whitespace().skip(1);
    let code = parts.next().and_then(|c| c.parse().ok());
    let micros = parts.next().and_then(|m| m.parse().ok());
    code.zip(micros)
        .ok_or_else(|| format!("bad status line {line:?}"))
}

fn killed_owner() -> TestResult {
    let name = unique("killed");
    let mut holder = Peer::spawn("hold", &[&name], &[]);
    holder.expect("holding")?;
    let mut waiters = Vec::new();
    for _ in 0..3 {
        waiters.push(sleeper(&name, WOKEN_BY_KERNEL)?);
    }
    holder.kill();
    let mut codes = Vec::new();
    let mut first = u64::MAX;
    for w in &mut waiters {
        let (code, micros) = woken_status(w)?;
        codes.push(code);
        if code == ABANDONED {
            first = micros;
        }
    }
    codes.sort();
    check(codes == [0, 0, ABANDONED], || {
        format!("three sleepers, their owner killed: codes {codes:?} (want one WAIT_ABANDONED)")
    })?;
    for w in waiters {
        check(w.finish()? == 0, || "a waiter failed".into())?;
    }
    println!(
        "  three sleepers woken by the watcher; the one told Abandoned waited {first} µs in all"
    );
    Ok(())
}

fn thread_end() -> TestResult {
    let name = unique("thread-end");
    // Our handle keeps the object, and its record of the abandoner, after the others close.
    let (_keep, _) = MutexOptions::new().create(&name)?;
    let mut holder = Peer::spawn("thread-hold", &[&name], &[]);
    let line = holder.expect("holding")?;
    let tid: u32 = line
        .split_whitespace()
        .nth(2)
        .and_then(|t| t.parse().ok())
        .ok_or("tid")?;
    let mut w = sleeper(&name, WOKEN_BY_KERNEL)?;
    holder.send("end");
    holder.expect("ended")?;
    let (code, _) = woken_status(&mut w)?;
    check(code == ABANDONED, || {
        format!("the owner thread ended; the sleeper got {code:#x}")
    })?;
    check(w.finish()? == 0, || "the waiter failed".into())?;
    // The abandoner recorded is the thread that ended, in a process that still lives.
    let info = MutexOptions::new().info(&name)?.ok_or("gone")?;
    check(info.last_abandoner.map(|(_, t)| t) == Some(tid), || {
        format!(
            "last abandoner {:?}, the ended thread was {tid}",
            info.last_abandoner
        )
    })?;
    drop(holder);
    Ok(())
}

fn unwatched() -> TestResult {
    let name = unique("unwatched");
    let mut holder = Peer::spawn("hold", &[&name], &[]);
    holder.expect("holding")?;
    let env = [
        ("NAMEDMUTEX_TEST_NO_BACKSTOP", "1"),
        ("NAMEDMUTEX_WATCHER", "0"),
    ];
    let mut w = sleeper(&name, &env)?;
    holder.kill();
    let (code, micros) = status(&mut w)?;
    check(code == ABANDONED, || {
        format!("without a watcher the sleeper got {code:#x}")
    })?;
    println!("  without a watcher: abandonment seen after {micros} µs (2 ms slices)");
    check(w.finish()? == 0, || "the waiter failed".into())?;
    Ok(())
}

fn read_locks() -> TestResult {
    let name = unique("read-locks");
    let (_keep, _) = MutexOptions::new().create(&name)?;
    let mut holder = Peer::spawn("hold", &[&name], &[]);
    let line = holder.expect("holding")?;
    let pid = line.split_whitespace().nth(1).ok_or("pid")?.to_owned();
    // Another process that may read the registry waits to read-lock the holder's lifeline
    // byte the moment it dies: liveness asks only for write locks, so that changes nothing.
    let mut reader = Peer::spawn("read-lock-lifeline-of", &[&pid], &[]);
    reader.expect("found")?;
    holder.kill();
    reader.expect("locked")?;
    // A waiter that comes now must find the owner dead at once, not watch the reader.
    let mut w = Peer::spawn("wait", &[&name], WOKEN_BY_KERNEL);
    w.expect("waiting")?;
    let (code, _) = status(&mut w)?;
    check(code == ABANDONED, || {
        format!("with a reader's lock on the dead owner's lifeline the sleeper got {code:#x}")
    })?;
    check(w.finish()? == 0, || "the waiter failed".into())?;
    drop(reader);
    Ok(())
}

fn exec() -> TestResult {
    let name = unique("exec");
    let mut holder = Peer::spawn("hold-then-exec", &[&name], &[]);
    holder.expect("holding")?;
    // A pidfd reports exits, not execs: the sleeper finds out at its backstop.
    let mut w = sleeper(&name, &[])?;
    holder.send("exec");
    holder.expect("done")?;
    let (code, micros) = status(&mut w)?;
    check(code == ABANDONED, || {
        format!("the owner exec'd; the sleeper got {code:#x}")
    })?;
    println!("  after the owner's exec: abandonment seen after {micros} µs (the backstop)");
    holder.kill();
    check(w.finish()? == 0, || "the waiter failed".into())?;
    Ok(())
}

fn stray_close() -> TestResult {
    let name = unique("stray");
    let mut holder = Peer::spawn("hold-then-stray-close", &[&name], &[]);
    holder.expect("holding")?;
    let mut w = sleeper(&name, &[])?;
    holder.send("close");
    holder.expect("done")?;
    // Documented hazard: the holder lives, but closing a descriptor of its registry dropped
    // its lifeline, so its mutex counts as abandoned.
    let (code, _) = status(&mut w)?;
    check(code == ABANDONED, || {
        format!("after the stray close the sleeper got {code:#x}")
    })?;
    check(w.finish()? == 0, || "the waiter failed".into())?;
    drop(holder);
    Ok(())
}

/// A thread that closes its process's last handle while owning the mutex keeps the object
/// (its end must abandon it) but not the name, as on Windows: the name goes with the last
/// handle anywhere. Alone, at once; beside another process's handle, with that handle; and
/// while that handle lives, the owner's end abandons the object to it. An owner that opens
/// the name again has a handle again (its process's `flock` is taken back).
fn kept() -> TestResult {
    kept_alone()?;
    kept_until_the_owner_ends()?;
    kept_after_the_last_handle()?;
    kept_by_a_reopened_handle()
}

/// Polls `m` (no wait) and checks its answer.
fn poll_is(m: &NamedMutex, want: WaitStatus, what: &str) -> TestResult {
    let now = m.wait(Some(Duration::ZERO))?;
    Ok(check(now == want, || format!("{what}: {now:?}"))?)
}

/// Checks that `name` is gone: an open finds nothing, and a create makes a new object,
/// which is free.
fn name_gone(name: &str, what: &str) -> TestResult {
    let opts = MutexOptions::new();
    match opts.open(name) {
        Err(e) if e.kind() == namedmutex::ErrorKind::NotFound => {}
        other => return Err(format!("open {what}: {other:?}").into()),
    }
    let (fresh, existed) = opts.create(name)?;
    check(!existed, || format!("create {what} found the old object"))?;
    poll_is(
        &fresh,
        WaitStatus::Acquired,
        &format!("the new object {what}"),
    )?;
    Ok(fresh.release()?)
}

/// Alone: the name goes with the owner's only handle.
fn kept_alone() -> TestResult {
    let name = unique("kept");
    std::thread::scope(|s| {
        s.spawn(|| -> TestResult {
            let (m, existed) = MutexOptions::new().create(&name)?;
            check(!existed, || "it existed before".into())?;
            poll_is(&m, WaitStatus::Acquired, "the owner's poll")?;
            drop(m);
            name_gone(&name, "after the owner closed its only handle")
        })
        .join()
        .expect("thread")
    })
}

/// Another process's thread owns it without a handle; our handle keeps the name, and the
/// owner's end abandons the object to it.
fn kept_until_the_owner_ends() -> TestResult {
    let name = unique("kept-ends");
    let (keep, _) = MutexOptions::new().create(&name)?;
    let mut holder = Peer::spawn("thread-hold-closed", &[&name], &[]);
    holder.expect("holding")?;
    poll_is(&keep, WaitStatus::TimedOut, "a poll while the owner lives")?;
    holder.send("end");
    holder.expect("ended")?;
    poll_is(&keep, WaitStatus::Abandoned, "a poll after the owner's end")?;
    Ok(keep.release()?)
}

/// The same, but our handle closes while the owner lives: the name goes with it.
fn kept_after_the_last_handle() -> TestResult {
    let name = unique("kept-closes");
    let (keep, _) = MutexOptions::new().create(&name)?;
    let mut holder = Peer::spawn("thread-hold-closed", &[&name], &[]);
    holder.expect("holding")?;
    drop(keep);
    name_gone(&name, "after the last handle closed, its owner alive")?;
    holder.send("end");
    holder.expect("ended")?;
    Ok(())
}

/// An owner that opens the name again has a handle again: the name outlives ours, and the
/// owner releases through that handle.
fn kept_by_a_reopened_handle() -> TestResult {
    let opts = MutexOptions::new();
    let name = unique("kept-reopens");
    let (keep, _) = opts.create(&name)?;
    let mut owner = Peer::spawn("close-reopen-release", &[&name], &[]);
    owner.expect("closed")?;
    owner.send("reopen");
    owner.expect("reopened")?;
    drop(keep);
    let again = opts
        .open(&name)
        .map_err(|e| format!("open after our handle closed, the owner's reopened: {e}"))?;
    poll_is(
        &again,
        WaitStatus::TimedOut,
        "a poll while the owner holds it",
    )?;
    owner.send("release");
    owner.expect("released")?;
    poll_is(
        &again,
        WaitStatus::Acquired,
        "a poll after the owner released",
    )?;
    Ok(again.release()?)
}
