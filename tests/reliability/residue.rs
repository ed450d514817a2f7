//! Crash truth (issue 15): an abandonment reported across runs even when nobody else had
//! the mutex open, abandonment on purpose, stale objects swept without a later open of the
//! same name, and an object file locked by a stopped process.

use crate::support::*;
use libtest_mimic::Trial;
use namedmutex::{ErrorKind, MutexOptions, NamedMutex, Namespace, WaitStatus};
use std::io::BufRead;
use std::time::{Duration, Instant};

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test(
            "residue::kept_report_survives_a_crash_nobody_else_saw",
            kept_report_survives,
        ),
        Trial::test(
            "residue::without_keep_a_crash_nobody_saw_is_forgotten",
            forgotten_without_keep,
        ),
        Trial::test(
            "residue::kept_object_outlives_a_closer_that_never_acquired",
            kept_past_other_closer,
        ),
        Trial::test("residue::abandon_on_purpose_wakes_a_sleeper", abandon_wakes),
        Trial::test("residue::abandon_needs_ownership", abandon_not_owner),
        Trial::test(
            "residue::prune_removes_what_killed_holders_left",
            prune_after_kills,
        ),
        Trial::test(
            "residue::first_create_sweeps_a_few_stale_files",
            create_sweeps,
        ),
        Trial::test("residue::list_sweeps_stale_objects", list_sweeps),
        Trial::test(
            "residue::stopped_lock_holder_named_and_bounded",
            stopped_lock_holder,
        ),
        Trial::test("residue::fuse_root_refused_unless_allowed", fuse_root),
        Trial::test(
            "residue::a_dead_creators_temporary_directory_is_removed",
            dead_temporary,
        ),
    ]
}

fn keep() -> MutexOptions {
    MutexOptions::new().keep_abandoned(true)
}

/// A child that creates `name` (with `keep_abandoned` when `keep`) and holds it at depth 2,
/// SIGKILLed once it says so. Returns its pid.
fn killed_holder(name: &str, keep: bool) -> Result<u32, String> {
    let args = if keep {
        vec![name, "2", "keep"]
    } else {
        vec![name, "2"]
    };
    let mut holder = Peer::spawn("hold", &args, &[]);
    holder.expect("holding")?;
    let pid = holder.pid() as u32;
    holder.kill();
    Ok(pid)
}

fn object_file(name: &str) -> std::path::PathBuf {
    local_dir(&root()).join(name)
}

/// `namedmutex run` killed by SIGKILL, then run again: the report must reach the second
/// run although nobody had the mutex open in between (issue 15, case 1).
fn kept_report_survives() -> TestResult {
    let name = unique("kept");
    let pid = killed_holder(&name, true)?;
    check(object_file(&name).exists(), || {
        "the object file of a killed keeper is gone".into()
    })?;
    let info = MutexOptions::new().info(&name)?.ok_or("info: absent")?;
    check(info.kept_for_report && !info.stale, || {
        format!("info of the kept object: {info:?}")
    })?;
    // Somebody else's sweep must leave it.
    let pruned = MutexOptions::new().prune(Namespace::Local)?;
    check(pruned.kept_for_report >= 1, || format!("prune: {pruned:?}"))?;
    check(object_file(&name).exists(), || {
        "prune removed a kept object".into()
    })?;
    // An opener that did not ask for the option still gets the report: it belongs to the
    // object.
    let m = NamedMutex::open(&name)?;
    check(m.wait(Some(WATCHDOG))? == WaitStatus::Abandoned, || {
        "the first acquirer after the crash was not told".into()
    })?;
    let info = MutexOptions::new().info(&name)?.ok_or("info: absent")?;
    check(info.last_abandoner.map(|(p, _)| p) == Some(pid), || {
        format!("last abandoner {:?}, killed pid {pid}", info.last_abandoner)
    })?;
    m.release()?;
    check(m.wait(Some(WATCHDOG))? == WaitStatus::Acquired, || {
        "reported twice".into()
    })?;
    m.release()?;
    drop(m);
    check(!object_file(&name).exists(), || {
        "a reported, released object outlived its last handle".into()
    })?;
    Ok(())
}

/// The library default stays Win32's: the object dies with its last handle.
fn forgotten_without_keep() -> TestResult {
    let name = unique("forgotten");
    killed_holder(&name, false)?;
    let (m, existed) = keep().create(&name)?;
    check(!existed, || "a stale object not kept was reused".into())?;
    check(m.wait(Some(WATCHDOG))? == WaitStatus::Acquired, || {
        "a fresh object reported an abandonment".into()
    })?;
    m.release()?;
    Ok(())
}

/// Another process had the kept mutex open when its owner died, and closes it without
/// acquiring: the object must stay for the next opener.
fn kept_past_other_closer() -> TestResult {
    let name = unique("kept-closer");
    let mut holder = Peer::spawn("hold", &[&name, "1", "keep"], &[]);
    holder.expect("holding")?;
    let bystander = NamedMutex::open(&name)?;
    holder.kill();
    drop(bystander); // the last handle anywhere
    let (m, existed) = MutexOptions::new().create(&name)?;
    check(existed, || "the kept object was removed by a closer".into())?;
    check(m.wait(Some(WATCHDOG))? == WaitStatus::Abandoned, || {
        "the report was lost".into()
    })?;
    m.release()?;
    Ok(())
}

/// `abandon` hands the mutex to the next acquirer as abandoned, waking one that sleeps,
/// with the note and the abandoner recorded; also from a biased hold.
fn abandon_wakes() -> TestResult {
    let name = unique("abandon");
    let (m, _) = keep().create(&name)?;
    // Uncontended acquisitions first: the mutex is biased to this thread.
    for _ in 0..3 {
        check(m.wait(None)?.is_acquired(), || "uncontended wait".into())?;
        m.release()?;
    }
    check(m.wait(None)? == WaitStatus::Acquired, || "wait".into())?;
    check(m.wait(None)? == WaitStatus::Acquired, || "recursion".into())?;
    let mut waiter = Peer::spawn("wait-once", &[&name], &[]);
    waiter.expect("waiting")?;
    // The waiter's wait is on its way to sleep; give it up as a crash would.
    m.abandon("the job stopped at step 3")?;
    let line = waiter.expect("got")?;
    check(line == "got abandoned", || format!("waiter: {line:?}"))?;
    let info = MutexOptions::new().info(&name)?.ok_or("absent")?;
    check(
        info.abandon_note.as_deref() == Some("the job stopped at step 3"),
        || format!("note: {:?}", info.abandon_note),
    )?;
    check(
        info.last_abandoner.map(|(p, _)| p) == Some(std::process::id()),
        || format!("abandoner: {:?}", info.last_abandoner),
    )?;
    check(
        matches!(m.release(), Err(e) if e.kind() == ErrorKind::NotOwner),
        || "the abandoner still owns it".into(),
    )?;
    waiter.finish()?;
    Ok(())
}

fn abandon_not_owner() -> TestResult {
    let (m, _) = NamedMutex::create(&unique("abandon-no"), false)?;
    let e = m.abandon("x").expect_err("abandon without owning");
    check(e.kind() == ErrorKind::NotOwner, || format!("{e}"))?;
    check(
        m.wait(Some(Duration::ZERO))? == WaitStatus::Acquired,
        || "a refused abandon changed the mutex".into(),
    )?;
    m.release()?;
    Ok(())
}

/// Holders of distinct names killed with SIGKILL leave their files; a prune removes them
/// all, and leaves an object a live process holds and one kept for its report (issue 15,
/// case 3).
fn prune_after_kills() -> TestResult {
    let dir = fresh_root("prune");
    let env = [("NAMEDMUTEX_ROOT", dir.to_str().unwrap())];
    const N: usize = 300;
    // The live and kept holders first: a process's first create sweeps a few files.
    let mut live = Peer::spawn("hold", &["live", "1"], &env);
    live.expect("holding")?;
    let mut kept = Peer::spawn("hold", &["kept", "1", "keep"], &env);
    kept.expect("holding")?;
    kept.kill();
    let prefix = unique("many");
    let mut many = Peer::spawn("hold-many", &[&prefix, &N.to_string()], &env);
    many.expect("holding")?;
    many.kill();
    let files = |dir: &std::path::Path| std::fs::read_dir(local_dir(dir)).map_or(0, |d| d.count());
    check(files(&dir) == N + 2, || {
        format!("{} files before the prune", files(&dir))
    })?;
    let opts = MutexOptions::new().root(&dir);
    let pruned = opts.prune(Namespace::Local)?;
    check(
        (pruned.removed, pruned.in_use, pruned.kept_for_report) == (N as u32, 1, 1),
        || format!("prune: {pruned:?}"),
    )?;
    check(files(&dir) == 2, || {
        format!("{} files after the prune", files(&dir))
    })?;
    let m = opts.open("live")?;
    check(
        m.wait(Some(Duration::ZERO))? == WaitStatus::TimedOut,
        || "the live holder lost its mutex".into(),
    )?;
    drop(m);
    live.finish()?;
    Ok(())
}

/// A process's first create of a new object sweeps a few files: with only stale files
/// there, exactly that many go.
fn create_sweeps() -> TestResult {
    let dir = fresh_root("sweep-create");
    let env = [("NAMEDMUTEX_ROOT", dir.to_str().unwrap())];
    let mut many = Peer::spawn("hold-many", &["stale", "20"], &env);
    many.expect("holding")?;
    many.kill();
    let mut creator = Peer::spawn("hold", &["fresh", "1"], &env);
    creator.expect("holding")?;
    let left = std::fs::read_dir(local_dir(&dir)).map_or(0, |d| d.count());
    // 20 stale - 8 swept + the new one.
    check(left == 13, || format!("{left} files after one create"))?;
    creator.finish()?;
    Ok(())
}

fn list_sweeps() -> TestResult {
    let dir = fresh_root("sweep-list");
    let env = [("NAMEDMUTEX_ROOT", dir.to_str().unwrap())];
    let mut many = Peer::spawn("hold-many", &["listed", "30"], &env);
    many.expect("holding")?;
    many.kill();
    let listed = MutexOptions::new().root(&dir).list(Namespace::Local)?;
    check(listed.is_empty(), || {
        format!("list showed {} stale objects", listed.len())
    })?;
    let left = std::fs::read_dir(local_dir(&dir)).map_or(0, |d| d.count());
    check(left == 0, || format!("{left} files after list"))?;
    Ok(())
}

/// A process stopped while it holds an object file's lock exclusively (a closer stopped
/// between its lock and its unlink): an open with the default bound fails after it, naming
/// the process and saying it is stopped; with no bound it waits until the process goes on
/// (issue 15, case 8).
fn stopped_lock_holder() -> TestResult {
    let name = unique("stopped");
    killed_holder(&name, false)?; // a stale file: nobody holds a shared lock on it
    let file = object_file(&name);
    let mut stopper = Peer::spawn("lock-stop", &[file.to_str().unwrap()], &[]);
    let pid = stopper.pid();
    stopper.expect("locked")?;
    wait_until(WATCHDOG, "the child to stop", || {
        process_state(pid) == Some('T')
    })?;

    let started = Instant::now();
    let opts = MutexOptions::new().busy_timeout(Some(Duration::from_millis(300)));
    let e = opts
        .create(&name)
        .err()
        .ok_or("an open succeeded past a held lock")?;
    let took = started.elapsed();
    check(e.kind() == ErrorKind::Busy, || format!("{e}"))?;
    let text = e.to_string();
    check(
        text.contains(&format!("pid {pid}"))
            && text.contains("stopped")
            && !text.contains("busy: busy"),
        || format!("message: {text}"),
    )?;
    check(took < Duration::from_secs(2), || {
        format!("bounded by 300 ms, took {took:?}")
    })?;

    // No bound: still waiting well past the default 2 s, done once the holder goes on.
    let waiting = std::thread::spawn({
        let name = name.clone();
        move || {
            MutexOptions::new()
                .busy_timeout(None)
                .create(&name)
                .map(|_| ())
        }
    });
    let until = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < until {
        check(!waiting.is_finished(), || {
            "the unbounded open gave up".into()
        })?;
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: plain system call on our child.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    stopper.send("unlock");
    stopper.expect("unlocked")?;
    let deadline = Instant::now() + WATCHDOG;
    while !waiting.is_finished() {
        check(Instant::now() < deadline, || {
            "the open did not finish".into()
        })?;
        std::thread::sleep(Duration::from_millis(5));
    }
    waiting.join().map_err(|_| "panicked")??;
    stopper.finish()?;
    Ok(())
}

/// A root on a FUSE file system (bindfs over a local directory) is refused, naming the
/// file system, unless `NAMEDMUTEX_ALLOW_NETWORK_FS=1` (issue 15, case 5). NFS and CIFS are
/// refused by the same check of the `statfs` type; FUSE is the one a test can mount.
fn fuse_root() -> TestResult {
    if !is_root() {
        println!("skipped: mounting a FUSE file system needs root (CI runs as root)");
        return Ok(());
    }
    let src = fresh_root("fuse-src");
    let mnt = fresh_root("fuse-mnt");
    let mounted = std::process::Command::new("bindfs")
        .arg(&src)
        .arg(&mnt)
        .status()
        .map_err(|e| format!("bindfs (tools/test-all.sh installs it): {e}"))?;
    check(mounted.success(), || format!("bindfs failed: {mounted}"))?;
    let result = (|| -> TestResult {
        let e = MutexOptions::new()
            .root(&mnt)
            .create("on-fuse")
            .err()
            .ok_or("a mutex was created on a FUSE root")?;
        check(e.kind() == ErrorKind::Unsupported, || format!("{e:?}"))?;
        check(
            e.to_string().contains("FUSE") && e.to_string().contains("NAMEDMUTEX_ALLOW_NETWORK_FS"),
            || format!("message: {e}"),
        )?;
        let mnt_s = mnt.to_str().unwrap();
        let mut allowed = Peer::spawn(
            "hold",
            &["on-fuse", "1"],
            &[
                ("NAMEDMUTEX_ROOT", mnt_s),
                ("NAMEDMUTEX_ALLOW_NETWORK_FS", "1"),
            ],
        );
        allowed.expect("holding")?;
        check(allowed.finish()? == 0, || {
            "the allowed holder failed".into()
        })?;
        Ok(())
    })();
    let _ = std::process::Command::new("umount").arg(&mnt).status();
    result
}

/// A process that died between making its user directory under a temporary name and
/// renaming it into place leaves the temporary; the next process to make the directory
/// removes it (a live process's is left alone).
fn dead_temporary() -> TestResult {
    let dir = fresh_root("temporary");
    let dead = dir.join(format!(".namedmutex-{}.new-999999999", uid()));
    let live = dir.join(format!(".namedmutex-{}.new-{}", uid(), std::process::id()));
    std::fs::create_dir(&dead)?;
    std::fs::create_dir(&live)?;
    let mut user = Peer::spawn(
        "hold",
        &["x", "1"],
        &[("NAMEDMUTEX_ROOT", dir.to_str().unwrap())],
    );
    user.expect("holding")?;
    check(!dead.exists(), || {
        "a dead creator's temporary directory is left".into()
    })?;
    check(live.exists(), || {
        "a live process's temporary directory was removed".into()
    })?;
    user.finish()?;
    Ok(())
}

/// The state letter of process `pid` (`R`, `S`, `T`, ...).
fn process_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

/// `--child hold-many PREFIX N`: creates and holds PREFIX-0 .. PREFIX-(N-1), says
/// `holding`, and waits for stdin to close (it is killed before).
pub fn hold_many(args: &[String]) -> i32 {
    let n: usize = args[1].parse().unwrap_or(1);
    let mut held = Vec::with_capacity(n);
    for i in 0..n {
        let (m, _) = NamedMutex::create(&format!("{}-{i}", args[0]), true).expect("create");
        held.push(m);
    }
    println!("holding");
    for line in std::io::stdin().lock().lines() {
        if line.is_err() {
            break;
        }
    }
    0
}

/// `--child wait-once NAME`: opens NAME, says `waiting`, waits for it, says
/// `got acquired` or `got abandoned`, releases.
pub fn wait_once(args: &[String]) -> i32 {
    let m = NamedMutex::open(&args[0]).expect("open");
    println!("waiting");
    let status = m.wait(Some(WATCHDOG)).expect("wait");
    println!(
        "got {}",
        match status {
            WaitStatus::Acquired => "acquired",
            WaitStatus::Abandoned => "abandoned",
            WaitStatus::TimedOut => "timed-out",
        }
    );
    if status.is_acquired() {
        m.release().expect("release");
    }
    0
}

/// `--child lock-stop FILE`: takes FILE's `flock` exclusively, says `locked`, stops itself
/// (SIGSTOP); once continued, reads a line, unlocks, says `unlocked`.
pub fn lock_stop(args: &[String]) -> i32 {
    use std::os::fd::AsRawFd;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&args[0])
        .expect("open");
    // SAFETY: a valid descriptor.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        println!("busy");
        return 1;
    }
    println!("locked");
    // SAFETY: plain system call.
    unsafe { libc::raise(libc::SIGSTOP) };
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    // SAFETY: a valid descriptor.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
    println!("unlocked");
    0
}
