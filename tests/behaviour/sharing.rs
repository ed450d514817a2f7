//! semantics.md §7: sharing handles (duplication, inheritance, fork).

use crate::trial;
use crate::util::*;
use libtest_mimic::Trial;
use namedmutex::{ErrorKind, MutexOptions, NamedMutex, WaitStatus};
use std::sync::Arc;
use std::time::Duration;

pub fn trials() -> Vec<Trial> {
    let mut v = vec![
        trial("sharing::try_clone_shares_object_and_ownership", try_clone),
        trial(
            "sharing::named_mutex_shared_between_processes",
            shared_between_processes,
        ),
        trial(
            "sharing::inheritable_unnamed_mutex_used_by_a_child",
            inherit_unnamed,
        ),
        trial(
            "sharing::inheritable_named_handle_reaches_the_same_object",
            inherit_named,
        ),
    ];
    if cfg!(unix) {
        v.push(trial(
            "sharing::fork_child_does_not_own_and_cannot_release",
            fork,
        ));
    }
    v
}

/// try_clone gives another handle to the same object; ownership follows the thread, so it
/// may be taken through one and released through the other.
fn try_clone() -> TestResult {
    for name in [unique("clone"), String::new()] {
        let (m, _) = NamedMutex::create(&name, false).ctx("create")?;
        let c = m.try_clone().ctx("try_clone")?;
        let cc = Arc::new(c.try_clone().ctx("clone of a clone")?);
        ensure_eq!(c.name(), m.name(), "the clone's name");
        expect_wait(
            c.wait(Some(Duration::ZERO)),
            WaitStatus::Acquired,
            "wait via the clone",
        )?;
        expect_wait(
            poll_from_another_thread(&cc)?,
            WaitStatus::TimedOut,
            "other thread via the clone of the clone",
        )?;
        m.release().ctx("release via the original")?;
        expect_err(
            c.release(),
            ErrorKind::NotOwner,
            288,
            "one release too many via the clone",
        )?;
        drop(m);
        drop(c);
        free_for_another_thread(&cc, "the last clone still works after the others closed")?;
        ensure!(
            cc.inheritable_handle().is_none(),
            "a clone of a non-inheritable handle is inheritable"
        );
    }
    Ok(())
}

/// A named mutex is one object for every process (checklist 93).
fn shared_between_processes() -> TestResult {
    let name = unique("shared");
    let (m, _) = NamedMutex::create(&name, true).ctx("create(owner)")?;
    let mut b = ChildProc::spawn("B")?;
    let h = b.open(&name)?;
    ensure_eq!(b.wait(h, Some(0))?, 0x102, "B poll while A owns");
    b.start_wait(h, None)?;
    m.release().ctx("A release")?;
    let (code, _) = b.wait_result()?;
    ensure_eq!(code, 0, "B's forever wait after A released");
    expect_wait(
        m.wait(Some(Duration::ZERO)),
        WaitStatus::TimedOut,
        "A poll while B owns",
    )?;
    b.ok(&format!("release {h}"))?;
    take_and_release(&m, "A after B released")?;
    Ok(())
}

/// An unnamed mutex created inheritable, owned by the parent, is adopted by a child through
/// `from_inherited_handle`: the child times out while the parent owns, acquires after the
/// release, and exiting while owning abandons it (checklist 96).
fn inherit_unnamed() -> TestResult {
    let plain = NamedMutex::create_unnamed(false).ctx("create_unnamed")?;
    ensure!(
        plain.inheritable_handle().is_none(),
        "a non-inheritable handle offered an inheritable value"
    );
    let (m, existed) = MutexOptions::new()
        .inheritable(true)
        .initial_owner(true)
        .create("")
        .ctx("create inheritable unnamed")?;
    ensure!(!existed, "unnamed create reported existing");
    let value = m
        .inheritable_handle()
        .ok_or("an inheritable handle offered no value")?;
    let mut c = ChildProc::spawn("inheritor")?;
    let h = c.ok_num(&format!("inherit {value}"))?;
    ensure_eq!(
        c.wait(h, Some(0))?,
        0x102,
        "child poll while the parent owns"
    );
    c.expect_err(&format!("release {h}"), ErrorKind::NotOwner, 288)?;
    c.start_wait(h, None)?;
    m.release().ctx("parent release")?;
    let (code, _) = c.wait_result()?;
    ensure_eq!(code, 0, "child's wait after the parent released");
    expect_wait(
        m.wait(Some(Duration::ZERO)),
        WaitStatus::TimedOut,
        "parent poll while the child owns",
    )?;
    c.send("exit 0")?;
    c.wait_exit()?;
    expect_wait(
        m.wait(long_wait()),
        WaitStatus::Abandoned,
        "parent after the child exited owning the inherited mutex",
    )?;
    m.release().ctx("release")?;
    // A clone of an inheritable handle is itself usable; the original still is too.
    take_and_release(&m, "parent again")?;
    Ok(())
}

/// An inheritable handle to a named mutex reaches the same object as the name.
fn inherit_named() -> TestResult {
    let name = unique("inherit-named");
    let (_m, _) = NamedMutex::create(&name, false).ctx("create")?;
    let inh = MutexOptions::new()
        .inheritable(true)
        .open(&name)
        .ctx("open inheritable")?;
    let value = inh.inheritable_handle().ok_or("no inheritable value")?;
    // While `inh` lives, every child that any test starts inherits it too (that is what an
    // inheritable handle is); those children exit without closing it.
    allow_leftover(&name);
    let mut c = ChildProc::spawn("inheritor")?;
    let h = c.ok_num(&format!("inherit {value}"))?;
    ensure_eq!(
        c.wait(h, Some(0))?,
        0,
        "child acquires through the inherited handle"
    );
    let byname = NamedMutex::open(&name).ctx("open by name")?;
    expect_wait(
        byname.wait(Some(Duration::ZERO)),
        WaitStatus::TimedOut,
        "parent poll by name while the child owns",
    )?;
    let h2 = c.open(&name)?;
    c.ok(&format!("release {h2}"))?;
    take_and_release(&byname, "parent after the child released by name")?;
    Ok(())
}

/// After fork, the child does not own what the parent owned: its release is NotOwner, its
/// wait times out while the parent holds, and it can acquire after the parent releases.
/// Done inside a single-threaded child process (fork in a multi-threaded test runner is
/// unsafe); see child.rs `fork-check`.
fn fork() -> TestResult {
    for name in [unique("fork"), String::new()] {
        let mut c = ChildProc::spawn("forker")?;
        let (h, _) = c.create(&name, true)?;
        c.ok(&format!("fork-check {h}"))?;
        // fork-check ended with the mutex released by the forking process.
        c.expect_err(&format!("release {h}"), ErrorKind::NotOwner, 288)?;
    }
    Ok(())
}
