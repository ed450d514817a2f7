//! What depends on the kernel: death notices with and without `futex_waitv`, PID
//! namespaces, registry exhaustion, and more held mutexes than a robust list can carry.

use crate::support::*;
use libtest_mimic::Trial;
use namedmutex::{MutexOptions, WaitStatus};
use std::time::Duration;

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test(
            "kernel::sigkill_wakes_a_blocked_waiter_with_futex_waitv",
            || sigkill_wakes_waiter(&[]),
        ),
        Trial::test(
            "kernel::sigkill_wakes_a_blocked_waiter_without_futex_waitv",
            || sigkill_wakes_waiter(&[("NAMEDMUTEX_FUTEX_WAITV", "0")]),
        ),
        Trial::test(
            "kernel::mutual_exclusion_across_pid_namespaces",
            pid_namespaces,
        ),
        Trial::test(
            "kernel::abandonment_across_pid_namespaces",
            pid_namespace_abandonment,
        ),
        Trial::test(
            "kernel::registry_exhaustion_and_slot_reuse",
            registry_exhaustion,
        ),
        Trial::test(
            "kernel::more_than_2048_mutexes_held_by_one_thread",
            many_held,
        ),
    ]
}

/// A holder at depth 3 in one process, a waiter already blocked in another; SIGKILL the
/// holder: the waiter gets Abandoned with count 1.
fn sigkill_wakes_waiter(waiter_env: &[(&str, &str)]) -> Result<(), libtest_mimic::Failed> {
    let name = unique("kill");
    let mut holder = Peer::spawn("hold", &[&name, "3"], &[]);
    holder.expect("holding")?;
    let mut waiter = Peer::spawn("wait", &[&name, "15000"], waiter_env);
    waiter.expect("waiting")?;
    // The waiter may not be asleep yet; that is fine: it either sleeps on the owner's
    // lifeline or sees the owner dead when it looks.
    holder.kill();
    let status = waiter.expect("status")?;
    let code: u32 = status.split(' ').nth(1).unwrap().parse()?;
    check(code == 0x80, || format!("waiter got {status}"))?;
    let releases = waiter.expect("releases")?;
    check(releases == "releases 1", || {
        format!("abandoned count was not 1: {releases}")
    })?;
    println!("  waiter {status} (µs since it started waiting)");
    check(waiter.finish()? == 0, || "waiter failed".into())?;
    Ok(())
}

fn can_unshare() -> bool {
    is_root()
        && std::process::Command::new("unshare")
            .args(["--pid", "--fork", "true"])
            .status()
            .is_ok_and(|s| s.success())
}

const UNSHARE: &[&str] = &["unshare", "--pid", "--fork", "--kill-child=SIGKILL"];

fn pid_namespaces() -> Result<(), libtest_mimic::Failed> {
    if !can_unshare() {
        println!("skipped: needs root and unshare(1) (CI runs it as root)");
        return Ok(());
    }
    let name = unique("pidns");
    let counter = root().join(format!("{name}.count"));
    let counter_s = counter.to_str().unwrap();
    let iterations = 2000;
    let it = iterations.to_string();
    let mut a = Peer::spawn_wrapped(UNSHARE, "counter", &[&name, counter_s, &it], &[]);
    let mut b = Peer::spawn_wrapped(UNSHARE, "counter", &[&name, counter_s, &it], &[]);
    let (ta, tb) = (a.expect("tid")?, b.expect("tid")?);
    // Each is the first process of its own namespace: equal thread ids, different owners.
    check(ta == tb, || {
        format!("expected equal thread ids in two namespaces, got {ta} / {tb}")
    })?;
    a.send("go");
    b.send("go");
    a.expect("done")?;
    b.expect("done")?;
    let total: u64 = std::fs::read_to_string(&counter)?.trim().parse()?;
    check(total == 2 * iterations as u64, || {
        format!(
            "lost updates: {total} of {} (two owners at once)",
            2 * iterations
        )
    })?;
    println!("  {ta} in both namespaces; {total} increments, none lost");
    Ok(())
}

fn pid_namespace_abandonment() -> Result<(), libtest_mimic::Failed> {
    if !can_unshare() {
        println!("skipped: needs root and unshare(1) (CI runs it as root)");
        return Ok(());
    }
    let name = unique("pidns-kill");
    let mut holder = Peer::spawn_wrapped(UNSHARE, "hold", &[&name, "2"], &[]);
    holder.expect("holding")?;
    let mut waiter = Peer::spawn_wrapped(UNSHARE, "wait", &[&name, "15000"], &[]);
    waiter.expect("waiting")?;
    holder.kill(); // kills unshare; --kill-child takes the holder with it
    let status = waiter.expect("status")?;
    check(status.starts_with("status 128 "), || {
        format!("waiter got {status}")
    })?;
    check(waiter.expect("releases")? == "releases 1", || {
        "count".into()
    })?;
    Ok(())
}

fn registry_exhaustion() -> Result<(), libtest_mimic::Failed> {
    let root = fresh_root("exhaust");
    let mut peer = Peer::spawn(
        "exhaust",
        &["4"],
        &[
            ("NAMEDMUTEX_REGISTRY_SLOTS", "4"),
            ("NAMEDMUTEX_ROOT", root.to_str().unwrap()),
        ],
    );
    let line = peer.expect_line()?;
    check(line == "ok", || line.clone())?;
    check(peer.finish()? == 0, || "exhaust child failed".into())?;
    Ok(())
}

fn many_held() -> Result<(), libtest_mimic::Failed> {
    let root = fresh_root("many");
    let opts = MutexOptions::new().root(&root);
    let count = 2100;
    let mutexes: Vec<_> = (0..count)
        .map(|i| opts.create(&format!("m{i}")).map(|(m, _)| m))
        .collect::<Result<_, _>>()?;
    std::thread::scope(|s| {
        s.spawn(|| {
            for m in &mutexes {
                assert_eq!(m.wait(Some(Duration::ZERO)).unwrap(), WaitStatus::Acquired);
            }
        });
    });
    // The thread ended owning all of them: every one is abandoned, exactly once.
    for (i, m) in mutexes.iter().enumerate() {
        let status = m.wait(Some(Duration::from_secs(5)))?;
        check(status == WaitStatus::Abandoned, || {
            format!("mutex {i}: {status:?}")
        })?;
        check(
            m.wait(Some(Duration::ZERO))? == WaitStatus::Acquired,
            || "second wait".into(),
        )?;
        m.release()?;
        m.release()?;
    }
    Ok(())
}
