//! semantics.md §2: create and open, access rights, and the synchapi layer.

use crate::trial;
use crate::util::*;
use libtest_mimic::Trial;
use namedmutex::synchapi::{self, SecurityAttributes};
use namedmutex::{Access, ErrorKind, MutexOptions, NamedMutex, WaitStatus};
use std::sync::Arc;
use std::time::Duration;

pub fn trials() -> Vec<Trial> {
    vec![
        trial(
            "create_open::create_reports_created_then_opened_existing",
            created_then_existing,
        ),
        trial(
            "create_open::initial_owner_only_when_created",
            initial_owner_only_when_created,
        ),
        trial(
            "create_open::initial_owner_ignored_from_another_process",
            initial_owner_other_process,
        ),
        trial(
            "create_open::six_processes_race_create_with_initial_owner",
            race_create,
        ),
        trial("create_open::open_missing_is_not_found_2", open_missing),
        trial(
            "create_open::open_missing_with_access_0_is_not_found_2",
            open_missing_access_0,
        ),
        trial(
            "create_open::every_open_gives_a_new_handle",
            every_open_new_handle,
        ),
        trial(
            "create_open::synchronize_only_handle_waits_and_releases",
            synchronize_only,
        ),
        trial(
            "create_open::handle_without_synchronize_cannot_wait_5",
            no_synchronize,
        ),
        trial(
            "create_open::open_with_access_zero_is_access_denied_5",
            access_zero,
        ),
        trial(
            "create_open::synchapi_create_mutex_and_open_mutex",
            synchapi_create_open,
        ),
        trial(
            "create_open::synchapi_create_mutex_ex_flags",
            synchapi_create_ex,
        ),
        trial(
            "create_open::synchapi_wait_for_single_object_codes",
            synchapi_wait_codes,
        ),
    ]
}

/// A new name reports created; a second create of it reports opened_existing and gives a
/// distinct handle to the same object.
fn created_then_existing() -> TestResult {
    let name = unique("created");
    let (h1, existed) = NamedMutex::create(&name, false).ctx("first create")?;
    ensure!(
        !existed,
        "first create of a new name reported opened_existing"
    );
    let (h2, existed) = NamedMutex::create(&name, false).ctx("second create")?;
    ensure!(existed, "second create did not report opened_existing");
    let (h3, existed) = NamedMutex::create(&name, true).ctx("third create (owner)")?;
    ensure!(existed, "third create did not report opened_existing");
    // Same object: owning through h2 makes h1 busy for another thread.
    let h1 = Arc::new(h1);
    expect_wait(
        h2.wait(Some(Duration::ZERO)),
        WaitStatus::Acquired,
        "wait(0) via h2",
    )?;
    expect_wait(
        poll_from_another_thread(&h1)?,
        WaitStatus::TimedOut,
        "other thread: wait(0) via h1 while the owner holds it via h2",
    )?;
    h1.release().ctx("release via h1")?;
    expect_err(
        h3.release(),
        ErrorKind::NotOwner,
        288,
        "extra release via h3",
    )?;
    expect_wait(
        poll_from_another_thread(&h1)?,
        WaitStatus::Acquired,
        "other thread: wait(0) after release",
    )?;
    Ok(())
}

/// `initial_owner` makes the caller the owner (count 1) only when the call creates the
/// object; for an existing object it is ignored and the caller does not own it.
fn initial_owner_only_when_created() -> TestResult {
    // New name: owner with count 1.
    let name = unique("owner-new");
    let (m, existed) = NamedMutex::create(&name, true).ctx("create(owner)")?;
    ensure!(!existed, "new name reported opened_existing");
    let m = Arc::new(m);
    expect_wait(
        poll_from_another_thread(&m)?,
        WaitStatus::TimedOut,
        "other thread: wait(0) on a mutex created with initial_owner",
    )?;
    m.release().ctx("first release by the creator")?;
    expect_err(
        m.release(),
        ErrorKind::NotOwner,
        288,
        "second release by the creator (count was 1)",
    )?;
    expect_wait(
        poll_from_another_thread(&m)?,
        WaitStatus::Acquired,
        "other thread after release",
    )?;

    // Existing name: T1's create(owner) reports existing and T1 does not own.
    let name = unique("owner-existing");
    let (t0, _) = NamedMutex::create(&name, false).ctx("create by T0")?;
    let t1 = Actor::new("T1");
    let n = name.clone();
    let (existed, release) = t1.run(move || {
        let r = NamedMutex::create(&n, true);
        match r {
            Ok((h, existed)) => {
                let rel = h.release();
                (Ok(existed), rel)
            }
            Err(e) => (Err(e), Ok(())),
        }
    })?;
    ensure!(
        existed.ctx("T1 create(owner) of an existing name")?,
        "T1's create did not report opened_existing"
    );
    expect_err(
        release,
        ErrorKind::NotOwner,
        288,
        "T1 release after create(owner) of an existing name",
    )?;
    expect_wait(
        t0.wait(Some(Duration::ZERO)),
        WaitStatus::Acquired,
        "T0 wait(0): T1 must not own it",
    )?;
    t0.release().ctx("T0 release")?;
    t1.finish()
}

/// The same across processes (checklist 94).
fn initial_owner_other_process() -> TestResult {
    let name = unique("owner-proc");
    let (m, _) = NamedMutex::create(&name, false).ctx("parent create")?;
    let mut c = ChildProc::spawn("creator")?;
    let (h, existed) = c.create(&name, true)?;
    ensure!(
        existed,
        "child create(owner) of an existing name did not report opened_existing"
    );
    c.expect_err(&format!("release {h}"), ErrorKind::NotOwner, 288)?;
    expect_wait(
        m.wait(Some(Duration::ZERO)),
        WaitStatus::Acquired,
        "parent wait(0): the child must not own it",
    )?;
    ensure_eq!(
        c.wait(h, Some(0))?,
        0x102,
        "child wait(0) while the parent owns"
    );
    m.release().ctx("parent release")?;
    ensure_eq!(
        c.wait(h, Some(0))?,
        0,
        "child wait(0) after the parent released"
    );
    c.ok(&format!("release {h}"))?;
    Ok(())
}

/// N = 6 processes race to create one name with initial_owner, started together through
/// a pipe barrier: exactly one reports created and owns it; all others report
/// opened_existing, cannot acquire it while the creator holds it, and cannot release it.
fn race_create() -> TestResult {
    const N: usize = 6;
    let mut kids = Vec::new();
    for i in 0..N {
        kids.push(ChildProc::spawn(&format!("racer{i}"))?);
    }
    for round in 0..4 {
        let name = if round % 2 == 0 {
            unique("race")
        } else {
            format!("Global\\{}", unique("race"))
        };
        for k in kids.iter_mut() {
            k.send(&format!("barrier-create {} 1", enc(&name)))?;
        }
        for k in kids.iter_mut() {
            let armed = k.recv("barrier-create")?;
            ensure_eq!(armed, "armed", "barrier answer");
        }
        for k in kids.iter_mut() {
            k.send("go")?;
        }
        let mut handles = Vec::new();
        let mut creators = Vec::new();
        for (i, k) in kids.iter_mut().enumerate() {
            match k.reply("barrier-create")? {
                Reply::Ok(f) if f.len() == 2 => {
                    handles.push(f[0].parse::<u64>().map_err(|e| e.to_string())?);
                    if f[1] == "0" {
                        creators.push(i);
                    }
                }
                other => return Err(format!("round {round}: racer {i} answered {other:?}")),
            }
        }
        ensure!(
            creators.len() == 1,
            "round {round}: exactly one racer must report created, got {creators:?}"
        );
        let creator = creators[0];
        for (i, k) in kids.iter_mut().enumerate() {
            if i == creator {
                continue;
            }
            let code = k.wait(handles[i], Some(0))?;
            ensure_eq!(
                code,
                0x102,
                "round {round}: racer {i} (not the creator) wait(0) while the creator owns"
            );
            k.expect_err(&format!("release {}", handles[i]), ErrorKind::NotOwner, 288)?;
        }
        kids[creator].ok(&format!("release {}", handles[creator]))?;
        kids[creator].expect_err(
            &format!("release {}", handles[creator]),
            ErrorKind::NotOwner,
            288,
        )?;
        let other = (creator + 1) % N;
        ensure_eq!(
            kids[other].wait(handles[other], Some(0))?,
            0,
            "round {round}: another racer after the creator released"
        );
        kids[other].ok(&format!("release {}", handles[other]))?;
        for (i, k) in kids.iter_mut().enumerate() {
            k.ok(&format!("drop {}", handles[i]))?;
        }
    }
    Ok(())
}

/// `open` of a name that does not exist: ERROR_FILE_NOT_FOUND (2), whatever the access
/// asked for (the name is looked up before access is checked).
fn open_missing() -> TestResult {
    for name in [
        unique("missing"),
        format!("Local\\{}", unique("missing")),
        format!("Global\\{}", unique("missing")),
    ] {
        expect_err(
            NamedMutex::open(&name),
            ErrorKind::NotFound,
            2,
            &format!("open({name:?})"),
        )?;
        for bits in [
            Access::SYNCHRONIZE.bits(),
            1,
            Access::MUTEX_ALL_ACCESS.bits(),
        ] {
            expect_err(
                MutexOptions::new()
                    .access(Access::from_bits(bits))
                    .open(&name),
                ErrorKind::NotFound,
                2,
                &format!("open({name:?}) with access {bits:#x}"),
            )?;
        }
        expect_err(
            synchapi::open_mutex(&name, synchapi::SYNCHRONIZE, false),
            ErrorKind::NotFound,
            2,
            "synchapi::open_mutex of a missing name",
        )?;
    }
    let mut c = ChildProc::spawn("open-missing")?;
    c.expect_err(
        &format!("open {}", enc(&unique("missing"))),
        ErrorKind::NotFound,
        2,
    )?;
    Ok(())
}

/// The name is looked up before the access is checked: `open` of a missing name with a
/// desired access of 0 is ERROR_FILE_NOT_FOUND (2), not 5 (checklist 21, a Wine test that
/// passes on Windows).
fn open_missing_access_0() -> TestResult {
    for name in [
        unique("missing0"),
        format!("Global\\{}", unique("missing0")),
    ] {
        expect_err(
            MutexOptions::new().access(Access::empty()).open(&name),
            ErrorKind::NotFound,
            2,
            &format!("open({name:?}) with access 0"),
        )?;
        expect_err(
            synchapi::open_mutex(&name, 0, false),
            ErrorKind::NotFound,
            2,
            &format!("synchapi::open_mutex({name:?}, 0)"),
        )?;
    }
    Ok(())
}

/// Each open gives a distinct handle; closing one leaves the others working.
fn every_open_new_handle() -> TestResult {
    let name = unique("handles");
    let (m, _) = NamedMutex::create(&name, false).ctx("create")?;
    let a = NamedMutex::open(&name).ctx("open a")?;
    let b = NamedMutex::open(&name).ctx("open b")?;
    drop(m);
    expect_wait(
        a.wait(Some(Duration::ZERO)),
        WaitStatus::Acquired,
        "wait via a",
    )?;
    drop(a);
    b.release().ctx("release via b after a was closed")?;
    let c = NamedMutex::open(&name).ctx("open c while b lives")?;
    expect_wait(
        c.wait(Some(Duration::ZERO)),
        WaitStatus::Acquired,
        "wait via c",
    )?;
    b.release().ctx("release via b")?;
    Ok(())
}

/// A handle opened with SYNCHRONIZE only can wait, and can release (releasing needs no
/// right); so can one opened with GENERIC_EXECUTE.
fn synchronize_only() -> TestResult {
    let name = unique("sync-only");
    let (full, _) = NamedMutex::create(&name, false).ctx("create")?;
    for access in [Access::SYNCHRONIZE, Access::GENERIC_EXECUTE] {
        let h = MutexOptions::new()
            .access(access)
            .open(&name)
            .ctx(&format!("open with {access:?}"))?;
        ensure_eq!(
            h.wait(Some(Duration::ZERO)).ctx("wait(0)")?,
            WaitStatus::Acquired,
            "wait(0) via {access:?}"
        );
        ensure_eq!(
            h.wait(long_wait()).ctx("wait")?,
            WaitStatus::Acquired,
            "recursive wait via {access:?}"
        );
        h.release().ctx(&format!("release via {access:?}"))?;
        h.release().ctx(&format!("second release via {access:?}"))?;
        expect_err(h.release(), ErrorKind::NotOwner, 288, "third release")?;
        // Acquired through the full handle, released through the SYNCHRONIZE one.
        expect_wait(
            full.wait(Some(Duration::ZERO)),
            WaitStatus::Acquired,
            "wait via the full handle",
        )?;
        h.release().ctx("release through the restricted handle")?;
        // A clone keeps the access.
        let c = h.try_clone().ctx("try_clone")?;
        expect_wait(
            c.wait(Some(Duration::ZERO)),
            WaitStatus::Acquired,
            "wait via a clone",
        )?;
        c.release().ctx("release via the clone")?;
    }
    // The same from another process.
    let mut child = ChildProc::spawn("sync-only")?;
    let h = child.ok_num(&format!(
        "open-access {} {}",
        enc(&name),
        Access::SYNCHRONIZE.bits()
    ))?;
    ensure_eq!(
        child.wait(h, Some(0))?,
        0,
        "child wait(0) via a SYNCHRONIZE handle"
    );
    child.ok(&format!("release {h}"))?;
    Ok(())
}

/// A handle without SYNCHRONIZE: every wait fails with ERROR_ACCESS_DENIED (5) at once,
/// whatever the timeout and whether the mutex is free or owned; release through it works.
fn no_synchronize() -> TestResult {
    let name = unique("no-sync");
    let (full, _) = NamedMutex::create(&name, false).ctx("create")?;
    let masks = [
        Access::from_bits(1),
        Access::MUTEX_MODIFY_STATE | Access::READ_CONTROL,
        Access::GENERIC_READ | Access::GENERIC_WRITE,
        Access::READ_CONTROL,
        Access::DELETE,
    ];
    for access in masks {
        let h = Arc::new(
            MutexOptions::new()
                .access(access)
                .open(&name)
                .ctx(&format!("open with {access:?}"))?,
        );
        let h2 = h.clone();
        let results = on_new_thread(move || {
            vec![
                h2.wait(Some(Duration::ZERO)),
                h2.wait(Some(Duration::from_millis(50))),
                h2.wait(None),
                h2.try_lock().map(|g| {
                    g.map(|_| WaitStatus::Acquired)
                        .unwrap_or(WaitStatus::TimedOut)
                }),
                h2.lock().map(|_| WaitStatus::Acquired),
            ]
        })?;
        for (i, r) in results.into_iter().enumerate() {
            expect_err(
                r,
                ErrorKind::AccessDenied,
                5,
                &format!("wait #{i} via {access:?} on a free mutex"),
            )?;
        }
        // While another thread owns it: still 5, never a block.
        let owner = Actor::new("owner");
        let f = Arc::new(full.try_clone().ctx("clone")?);
        let f2 = f.clone();
        expect_wait(
            owner.run(move || f2.wait(Some(Duration::ZERO)))?,
            WaitStatus::Acquired,
            "owner acquires",
        )?;
        let h3 = h.clone();
        let r = on_new_thread(move || h3.wait(None))?;
        expect_err(
            r,
            ErrorKind::AccessDenied,
            5,
            &format!("wait(forever) via {access:?} on an owned mutex"),
        )?;
        // The owner may release through the restricted handle.
        let h4 = h.clone();
        owner
            .run(move || h4.release())?
            .ctx(&format!("owner's release through a {access:?} handle"))?;
        owner.finish()?;
    }
    // create_mutex_ex with MUTANT_QUERY_STATE only (checklist 18).
    let (h, _) = synchapi::create_mutex_ex("", synchapi::CREATE_MUTEX_INITIAL_OWNER, 1, None)
        .ctx("create_mutex_ex(\"\", owner, access 1)")?;
    expect_err(
        synchapi::wait_for_single_object(&h, 0),
        ErrorKind::AccessDenied,
        5,
        "wait_for_single_object on a handle created with access 1",
    )?;
    synchapi::release_mutex(&h).ctx("release the initial ownership through it")?;
    // From another process.
    let mut child = ChildProc::spawn("no-sync")?;
    let ch = child.ok_num(&format!("open-access {} 1", enc(&name)))?;
    child.expect_err(&format!("wait {ch} 0"), ErrorKind::AccessDenied, 5)?;
    child.expect_err(&format!("wait {ch} inf"), ErrorKind::AccessDenied, 5)?;
    Ok(())
}

/// Opening an existing mutex with a desired access of 0: ERROR_ACCESS_DENIED (5). Wine 8
/// succeeds instead (semantics.md, K3): with Wine's objects this asserts Wine's answer and
/// says so.
fn access_zero() -> TestResult {
    let name = unique("access0");
    let (_m, _) = NamedMutex::create(&name, false).ctx("create")?;
    let r1 = MutexOptions::new().access(Access::empty()).open(&name);
    let r2 = synchapi::open_mutex(&name, 0, false);
    if wine_objects() {
        ensure!(
            r1.is_ok() && r2.is_ok(),
            "under Wine 8, open with access 0 succeeds; got {:?} / {:?}",
            r1.err(),
            r2.err()
        );
        note(
            "known Wine difference (K3): open with access 0 succeeded under Wine; Windows and the spec give ERROR_ACCESS_DENIED (5)",
        );
        return Ok(());
    }
    expect_err(r1, ErrorKind::AccessDenied, 5, "open with access 0")?;
    expect_err(
        r2,
        ErrorKind::AccessDenied,
        5,
        "synchapi::open_mutex with access 0",
    )?;
    Ok(())
}

/// create_mutex / open_mutex, with inheritance through SecurityAttributes and the flag.
fn synchapi_create_open() -> TestResult {
    let name = unique("synchapi");
    // The inheritable handles below are inherited by every child other tests start
    // meanwhile, which exit without closing them.
    allow_leftover(&name);
    let (h, existed) = synchapi::create_mutex(&name, true, None).ctx("create_mutex(owner)")?;
    ensure!(!existed, "create_mutex of a new name reported existing");
    ensure!(
        h.inheritable_handle().is_none(),
        "create_mutex without attributes gave an inheritable handle"
    );
    let attrs = SecurityAttributes {
        inherit_handle: true,
        ..Default::default()
    };
    let (h2, existed) =
        synchapi::create_mutex(&name, true, Some(&attrs)).ctx("second create_mutex")?;
    ensure!(existed, "second create_mutex did not report existing");
    ensure!(
        h2.inheritable_handle().is_some(),
        "create_mutex with inherit_handle gave a non-inheritable handle"
    );
    let o = synchapi::open_mutex(&name, synchapi::SYNCHRONIZE, false).ctx("open_mutex")?;
    ensure!(
        o.inheritable_handle().is_none(),
        "open_mutex(inherit=false) gave an inheritable handle"
    );
    let oi = synchapi::open_mutex(&name, synchapi::SYNCHRONIZE, true).ctx("open_mutex(inherit)")?;
    ensure!(
        oi.inheritable_handle().is_some(),
        "open_mutex(inherit=true) gave a non-inheritable handle"
    );
    // h2 did not take ownership: one release frees it.
    synchapi::release_mutex(&o).ctx("release_mutex through the opened handle")?;
    expect_err(
        synchapi::release_mutex(&h2),
        ErrorKind::NotOwner,
        288,
        "release_mutex once too often",
    )?;
    let o = Arc::new(o);
    let o2 = o.clone();
    let r = on_new_thread(move || {
        let r = synchapi::wait_for_single_object(&o2, 0);
        let _ = synchapi::release_mutex(&o2);
        r
    })?;
    ensure_eq!(
        r.ctx("wait")?,
        synchapi::WAIT_OBJECT_0,
        "other thread after release"
    );
    Ok(())
}

/// create_mutex_ex: flag CREATE_MUTEX_INITIAL_OWNER (1) makes the creator the owner;
/// unknown flag bits are ERROR_INVALID_PARAMETER (87); the access asked for is granted.
fn synchapi_create_ex() -> TestResult {
    let name = unique("create-ex");
    let (h, existed) = synchapi::create_mutex_ex(
        &name,
        synchapi::CREATE_MUTEX_INITIAL_OWNER,
        synchapi::MUTEX_ALL_ACCESS,
        None,
    )
    .ctx("create_mutex_ex(flags 1)")?;
    ensure!(!existed, "create_mutex_ex of a new name reported existing");
    let h = Arc::new(h);
    let h2 = h.clone();
    let r = on_new_thread(move || synchapi::wait_for_single_object(&h2, 0))?;
    ensure_eq!(
        r.ctx("wait")?,
        synchapi::WAIT_TIMEOUT,
        "other thread: wait(0) on a mutex created with flag 1"
    );
    synchapi::release_mutex(&h).ctx("first release")?;
    expect_err(
        synchapi::release_mutex(&h),
        ErrorKind::NotOwner,
        288,
        "second release",
    )?;

    let name = unique("create-ex0");
    let (h, _) = synchapi::create_mutex_ex(&name, 0, synchapi::SYNCHRONIZE, None)
        .ctx("create_mutex_ex(flags 0, SYNCHRONIZE)")?;
    expect_err(
        synchapi::release_mutex(&h),
        ErrorKind::NotOwner,
        288,
        "flags 0: the creator does not own",
    )?;
    ensure_eq!(
        synchapi::wait_for_single_object(&h, 0).ctx("wait")?,
        0,
        "wait via a SYNCHRONIZE handle from create_mutex_ex"
    );
    synchapi::release_mutex(&h).ctx("release")?;
    let (e, existed) = synchapi::create_mutex_ex(
        &name,
        synchapi::CREATE_MUTEX_INITIAL_OWNER,
        synchapi::SYNCHRONIZE,
        None,
    )
    .ctx("create_mutex_ex(flags 1) of an existing name")?;
    ensure!(
        existed,
        "create_mutex_ex of an existing name did not report existing"
    );
    expect_err(
        synchapi::release_mutex(&e),
        ErrorKind::NotOwner,
        288,
        "flag 1 on an existing name must not give ownership",
    )?;

    for flags in [2u32, 3, 0x8000_0000, u32::MAX] {
        let name = unique("create-ex-bad");
        expect_err(
            synchapi::create_mutex_ex(&name, flags, synchapi::MUTEX_ALL_ACCESS, None),
            ErrorKind::InvalidParameter,
            87,
            &format!("create_mutex_ex with flags {flags:#x}"),
        )?;
        // Nothing was created.
        expect_err(
            NamedMutex::open(&name),
            ErrorKind::NotFound,
            2,
            "open after a refused create_mutex_ex",
        )?;
    }
    Ok(())
}

/// wait_for_single_object returns the Win32 codes: WAIT_OBJECT_0, WAIT_TIMEOUT,
/// WAIT_ABANDONED, with INFINITE and finite timeouts.
fn synchapi_wait_codes() -> TestResult {
    let (h, _) = synchapi::create_mutex("", false, None).ctx("create_mutex(\"\")")?;
    let h = Arc::new(h);
    ensure_eq!(
        synchapi::wait_for_single_object(&h, synchapi::INFINITE).ctx("wait INFINITE")?,
        0,
        "INFINITE on a free mutex"
    );
    ensure_eq!(
        synchapi::wait_for_single_object(&h, 0).ctx("wait 0")?,
        0,
        "recursive wait(0)"
    );
    let h2 = h.clone();
    let r = on_new_thread(move || synchapi::wait_for_single_object(&h2, 30))?;
    ensure_eq!(
        r.ctx("wait 30")?,
        0x102,
        "other thread: wait(30) while owned"
    );
    synchapi::release_mutex(&h).ctx("release 1")?;
    synchapi::release_mutex(&h).ctx("release 2")?;
    // Abandoned by a thread that returns while owning.
    let h3 = h.clone();
    let r = on_new_thread(move || synchapi::wait_for_single_object(&h3, 1000))?;
    ensure_eq!(r.ctx("thread wait")?, 0, "thread acquires");
    ensure_eq!(
        synchapi::wait_for_single_object(&h, 5000).ctx("wait after the owner thread ended")?,
        0x80,
        "WAIT_ABANDONED"
    );
    ensure_eq!(
        synchapi::wait_for_single_object(&h, 0).ctx("recursive wait")?,
        0,
        "recursive wait after WAIT_ABANDONED"
    );
    synchapi::release_mutex(&h).ctx("release")?;
    synchapi::release_mutex(&h).ctx("release")?;
    expect_err(
        synchapi::release_mutex(&h),
        ErrorKind::NotOwner,
        288,
        "third release",
    )?;
    ensure_eq!(synchapi::WAIT_FAILED, 0xFFFF_FFFF, "WAIT_FAILED constant");
    Ok(())
}
