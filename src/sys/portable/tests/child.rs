//! The roles a child process can play (`--child ROLE args...`). Each prints lines the
//! parent waits for; every role ends when told, or when killed.

use crate::support::{REGISTRY_FILE, root, say, uid, wait_for_stdin_close};
use namedmutex::NamedMutex;
use std::io::BufRead;
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

pub fn run(args: &[String]) -> i32 {
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let name = arg(1);
    match arg(0) {
        "hold" => hold(name, Then::StayAlive),
        "hold-then-exec" => hold(name, Then::Exec),
        "hold-then-stray-close" => hold(name, Then::StrayClose),
        "thread-hold" => thread_hold(name, false),
        "thread-hold-closed" => thread_hold(name, true),
        "close-reopen-release" => close_reopen_release(name),
        "wait" => wait(name),
        "read-lock-lifeline-of" => read_lock_lifeline_of(arg(1)),
        other => {
            eprintln!("unknown child role {other:?}");
            2
        }
    }
}

fn tid() -> i64 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) }
}

/// Our registry file in the root the parent gave us.
fn registry() -> std::path::PathBuf {
    root()
        .join(format!("namedmutex-{}", uid()))
        .join(REGISTRY_FILE)
}

fn next_line() {
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
}

/// What a holder does once told (a line on stdin), still owning the mutex.
enum Then {
    /// Nothing: it keeps the mutex until killed or its stdin closes.
    StayAlive,
    /// `exec`s `sleep`, a program that knows nothing of the mutex.
    Exec,
    /// Opens and closes its own registry file, which drops its record locks.
    StrayClose,
}

/// Creates `name`, acquires it, says `holding PID TID`; after one line on stdin does
/// `then` and says `done`; then keeps the mutex until stdin closes.
fn hold(name: &str, then: Then) -> i32 {
    let (m, _) = NamedMutex::create(name, false).expect("create");
    assert!(m.wait(None).expect("wait").is_acquired());
    say(format!("holding {} {}", std::process::id(), tid()));
    next_line();
    match then {
        Then::StayAlive => {}
        Then::Exec => {
            say("done");
            let e = std::process::Command::new("sleep").arg("60").exec();
            eprintln!("exec sleep: {e}");
            return 1;
        }
        Then::StrayClose => {
            drop(std::fs::File::open(registry()).expect("open our registry"));
        }
    }
    say("done");
    wait_for_stdin_close();
    0
}

/// A thread creates `name`, acquires it (with `closed`, then closes its only handle), says
/// `holding PID TID`, and after one line on stdin ends without releasing it; the process
/// says `ended` and lives until stdin closes.
fn thread_hold(name: &str, closed: bool) -> i32 {
    let name = name.to_owned();
    std::thread::spawn(move || {
        let (m, _) = NamedMutex::create(&name, false).expect("create");
        assert!(m.wait(None).expect("wait").is_acquired());
        if closed {
            // The owner keeps the object, without a handle (`thread_end.rs`).
            drop(m);
        }
        say(format!("holding {} {}", std::process::id(), tid()));
        next_line();
    })
    .join()
    .expect("the holding thread");
    say("ended");
    wait_for_stdin_close();
    0
}

/// Creates `name`, acquires it and closes its only handle (still the owner), says `closed`;
/// after a line on stdin opens it again, says `reopened`; after another, releases through
/// that handle and says `released`; lives until stdin closes.
fn close_reopen_release(name: &str) -> i32 {
    let (m, _) = NamedMutex::create(name, false).expect("create");
    assert!(m.wait(None).expect("wait").is_acquired());
    drop(m);
    say("closed");
    next_line();
    let m = NamedMutex::open(name).expect("open again");
    say("reopened");
    next_line();
    m.release().expect("release through the new handle");
    say("released");
    wait_for_stdin_close();
    0
}

/// Opens `name`, says `waiting`, waits (20 s at most), says `status CODE MICROS`, releases.
fn wait(name: &str) -> i32 {
    let m = NamedMutex::open(name).expect("open");
    say("waiting");
    let started = Instant::now();
    let status = m.wait(Some(Duration::from_secs(20))).expect("wait");
    say(format!(
        "status {} {}",
        status.code(),
        started.elapsed().as_micros()
    ));
    if status.is_acquired() {
        m.release().expect("release");
    }
    0
}

/// Opens the registry read-only (what any user who may read it can do), finds the lifeline
/// byte process PID holds, says `found`, and tries to take a read lock on it until that
/// succeeds (after PID's death); says `locked` and keeps it until stdin closes.
fn read_lock_lifeline_of(pid: &str) -> i32 {
    let pid: i32 = pid.parse().expect("pid");
    let file = std::fs::File::open(registry()).expect("open the registry read-only");
    let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
    let fcntl = |cmd: i32, kind: i32, byte: i64| {
        // SAFETY: a zeroed `flock` is a valid value; fcntl reads (F_GETLK: and writes) it
        // during the call only.
        unsafe {
            let mut lock: libc::flock = std::mem::zeroed();
            lock.l_type = kind as _;
            lock.l_whence = libc::SEEK_SET as _;
            lock.l_start = (1 << 40) + byte;
            lock.l_len = 1;
            let rc = libc::fcntl(fd, cmd, &mut lock);
            (rc, lock.l_pid)
        }
    };
    let byte = (0..4096)
        .find(|&b| fcntl(libc::F_GETLK, libc::F_WRLCK, b).1 == pid)
        .expect("the holder's lifeline byte");
    say("found");
    let started = Instant::now();
    while fcntl(libc::F_SETLK, libc::F_RDLCK, byte).0 != 0 {
        assert!(started.elapsed() < Duration::from_secs(20), "never locked");
        std::thread::sleep(Duration::from_micros(100));
    }
    say("locked");
    wait_for_stdin_close();
    0
}
