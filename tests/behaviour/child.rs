//! The child-process side of the multi-process tests: a small command interpreter.
//!
//! The test binary re-executes itself as `behaviour --child LABEL`. The child prints
//! `hello PID`, then reads one command per line on stdin and answers on stdout with
//! `ok FIELDS...` or `err KIND CODE MESSAGE` (KIND is the `ErrorKind` in `Debug` form,
//! CODE the Win32 code or `-`). Names are hex-encoded UTF-8 (`-` for the empty name), so
//! any name fits in one token. Handles are small integers `H` given out by the child.
//!
//! | command | answer |
//! |---|---|
//! | `create NAME OWNER` | `ok H EXISTED` |
//! | `create-ex NAME FLAGS ACCESS` | `ok H EXISTED` (`synchapi::create_mutex_ex`) |
//! | `open NAME` | `ok H` |
//! | `open-access NAME BITS` | `ok H` |
//! | `inherit VALUE` | `ok H` (`NamedMutex::from_inherited_handle`) |
//! | `clone H` | `ok H2` |
//! | `drop H` | `ok` |
//! | `wait H MILLIS\|inf` | `ok CODE MICROS` (code 0, 128 or 258; elapsed time) |
//! | `wait-announce H MILLIS\|inf` | `waiting`, then as `wait` |
//! | `release H` | `ok` |
//! | `lock-depth H N` | `ok CODE` after N successful waits (code of the first) |
//! | `thread-lock-exit H` | `ok CODE`: a new thread acquired and returned while owning |
//! | `thread-lock-hold H` | `ok CODE`: a new thread acquired and keeps owning until exit |
//! | `barrier-create NAME OWNER` | `armed`, then on the line `go`: as `create` |
//! | `cs-loop H PATH ITERS` | `ok`: ITERS critical sections appending to the file PATH |
//! | `mix-loop PATH SEED ITERS NAME...` | `ok`: random single, any and all waits, logged to PATH |
//! | `async-lock H` | `ok CODE`: a task took H (`lock_async`) and holds it until `async-drop` |
//! | `async-drop` | `ok`: the held async guard is dropped (released), on another thread |
//! | `exit CODE` | the process exits with CODE (whatever it owns) |
//! | `abort` | the process aborts |
//! | `print-pid` | `ok PID` |
//! | `exec` (Unix) | the process execs itself; the new image greets with `hello PID` |
//! | `install-sigusr2` (Unix) | `ok`: SIGUSR2 now runs a no-op handler without SA_RESTART |
//! | `fork-check H` (Unix) | `ok` when a forked child neither owns H nor can release it |
//!
//! At the end of its input the child closes every handle it holds and exits with 0.

use crate::util::{dec, watchdog};
use namedmutex::synchapi;
use namedmutex::{Access, Error, MutexOptions, NamedMutex, WaitStatus};
use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The child's entry point; never returns.
pub fn run(label: &str) -> ! {
    // A child never outlives a stuck test for long.
    std::thread::spawn(|| {
        std::thread::sleep(watchdog() * 15);
        eprintln!("behaviour child: life limit reached, exiting");
        std::process::exit(97);
    });
    let _ = label;
    say(&format!("hello {}", std::process::id()));
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut handles: Vec<Option<Arc<NamedMutex>>> = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        match input.read_line(&mut line) {
            Ok(0) | Err(_) => {
                // End of input: close every handle properly, then exit.
                handles.clear();
                std::process::exit(0)
            }
            Ok(_) => {}
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.is_empty() {
            continue;
        }
        let answer = execute(&words, &mut handles, &mut input);
        say(&answer);
    }
}

/// The guard taken by `async-lock`, held by the process (no thread) until `async-drop`.
static ASYNC_HELD: std::sync::Mutex<Option<namedmutex::AsyncMutexGuard>> =
    std::sync::Mutex::new(None);

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn err_line(e: &Error) -> String {
    let code = e
        .win32_code()
        .map_or_else(|| "-".to_owned(), |c| c.to_string());
    format!("err {:?} {code} {e}", e.kind())
}

fn protocol(msg: impl AsRef<str>) -> String {
    format!("err Protocol - {}", msg.as_ref())
}

fn add(handles: &mut Vec<Option<Arc<NamedMutex>>>, m: NamedMutex) -> usize {
    handles.push(Some(Arc::new(m)));
    handles.len() - 1
}

fn millis(arg: &str) -> Option<Option<Duration>> {
    if arg == "inf" {
        Some(None)
    } else {
        arg.parse().ok().map(|m| Some(Duration::from_millis(m)))
    }
}

fn execute(
    words: &[&str],
    handles: &mut Vec<Option<Arc<NamedMutex>>>,
    input: &mut impl BufRead,
) -> String {
    let handle =
        |handles: &[Option<Arc<NamedMutex>>], i: usize| -> Result<Arc<NamedMutex>, String> {
            let token = words.get(i).ok_or_else(|| protocol("missing handle"))?;
            let index: usize = token.parse().map_err(|_| protocol("bad handle"))?;
            handles
                .get(index)
                .and_then(|h| h.clone())
                .ok_or_else(|| protocol(format!("no handle {index}")))
        };
    let name = |i: usize| -> Result<String, String> {
        words
            .get(i)
            .and_then(|t| dec(t))
            .ok_or_else(|| protocol("bad name"))
    };
    let number = |i: usize| -> Result<u64, String> {
        words
            .get(i)
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| protocol("bad number"))
    };
    let result: Result<String, String> = (|| match words[0] {
        "create" => {
            let n = name(1)?;
            let owner = number(2)? != 0;
            match NamedMutex::create(&n, owner) {
                Ok((m, existed)) => Ok(format!("ok {} {}", add(handles, m), u8::from(existed))),
                Err(e) => Ok(err_line(&e)),
            }
        }
        "create-ex" => {
            let n = name(1)?;
            let (flags, access) = (number(2)? as u32, number(3)? as u32);
            match synchapi::create_mutex_ex(&n, flags, access, None) {
                Ok((m, existed)) => Ok(format!("ok {} {}", add(handles, m), u8::from(existed))),
                Err(e) => Ok(err_line(&e)),
            }
        }
        "open" => match NamedMutex::open(&name(1)?) {
            Ok(m) => Ok(format!("ok {}", add(handles, m))),
            Err(e) => Ok(err_line(&e)),
        },
        "open-access" => {
            let opts = MutexOptions::new().access(Access::from_bits(number(2)? as u32));
            match opts.open(&name(1)?) {
                Ok(m) => Ok(format!("ok {}", add(handles, m))),
                Err(e) => Ok(err_line(&e)),
            }
        }
        "inherit" => {
            let value = number(1)?;
            // SAFETY: the parent passed the value of an inheritable handle it created for
            // this child, which inherited it; nothing else in this process uses it.
            #[allow(unsafe_code)]
            let adopted = unsafe { NamedMutex::from_inherited_handle(value) };
            match adopted {
                Ok(m) => Ok(format!("ok {}", add(handles, m))),
                Err(e) => Ok(err_line(&e)),
            }
        }
        "clone" => match handle(handles, 1)?.try_clone() {
            Ok(m) => Ok(format!("ok {}", add(handles, m))),
            Err(e) => Ok(err_line(&e)),
        },
        "drop" => {
            let index: usize = number(1)? as usize;
            match handles.get_mut(index).and_then(Option::take) {
                Some(_) => Ok("ok".to_owned()),
                None => Err(protocol(format!("no handle {index}"))),
            }
        }
        "wait" | "wait-announce" => {
            let m = handle(handles, 1)?;
            let timeout = words
                .get(2)
                .and_then(|a| millis(a))
                .ok_or_else(|| protocol("bad timeout"))?;
            if words[0] == "wait-announce" {
                say("waiting");
            }
            let start = Instant::now();
            let r = m.wait(timeout);
            let us = start.elapsed().as_micros();
            match r {
                Ok(s) => Ok(format!("ok {} {us}", s.code())),
                Err(e) => Ok(err_line(&e)),
            }
        }
        "async-lock" => {
            let m = handle(handles, 1)?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .map_err(|e| protocol(format!("runtime: {e}")))?;
            match runtime.block_on(m.lock_async_owned()) {
                Ok(guard) => {
                    let code = if guard.abandoned() { 0x80 } else { 0 };
                    *ASYNC_HELD.lock().unwrap() = Some(guard);
                    Ok(format!("ok {code}"))
                }
                Err(e) => Ok(err_line(&e)),
            }
        }
        "async-drop" => {
            let guard = ASYNC_HELD.lock().unwrap().take();
            let guard = guard.ok_or_else(|| protocol("no async guard held"))?;
            std::thread::spawn(move || guard.release())
                .join()
                .map_err(|_| protocol("the releasing thread panicked"))?
                .map_or_else(|e| Ok(err_line(&e)), |()| Ok("ok".to_owned()))
        }
        "release" => match handle(handles, 1)?.release() {
            Ok(()) => Ok("ok".to_owned()),
            Err(e) => Ok(err_line(&e)),
        },
        "lock-depth" => {
            let m = handle(handles, 1)?;
            let n = number(2)?;
            let mut first = None;
            for i in 0..n {
                match m.wait(Some(watchdog())) {
                    Ok(WaitStatus::TimedOut) => {
                        return Ok(protocol(format!("lock-depth: wait {i} timed out")));
                    }
                    Ok(s) => {
                        first.get_or_insert(s.code());
                    }
                    Err(e) => return Ok(err_line(&e)),
                }
            }
            Ok(format!("ok {}", first.unwrap_or(0)))
        }
        "thread-lock-exit" | "thread-lock-hold" => {
            let m = handle(handles, 1)?;
            let hold = words[0] == "thread-lock-hold";
            let (tx, rx) = std::sync::mpsc::channel();
            let t = std::thread::spawn(move || {
                let r = m.wait(Some(watchdog()));
                let _ = tx.send(r);
                if hold {
                    // Keep owning until the process ends.
                    loop {
                        std::thread::park();
                    }
                }
            });
            let r = rx
                .recv_timeout(watchdog() * 2)
                .map_err(|_| protocol("the thread did not answer"))?;
            if !hold {
                t.join().map_err(|_| protocol("the thread panicked"))?;
            }
            match r {
                Ok(s) => Ok(format!("ok {}", s.code())),
                Err(e) => Ok(err_line(&e)),
            }
        }
        "barrier-create" => {
            let n = name(1)?;
            let owner = number(2)? != 0;
            say("armed");
            let mut go = String::new();
            if input.read_line(&mut go).is_err() || go.trim() != "go" {
                return Err(protocol(format!("expected go, got {go:?}")));
            }
            match NamedMutex::create(&n, owner) {
                Ok((m, existed)) => Ok(format!("ok {} {}", add(handles, m), u8::from(existed))),
                Err(e) => Ok(err_line(&e)),
            }
        }
        "cs-loop" => {
            let m = handle(handles, 1)?;
            let path = name(2)?;
            let iters = number(3)?;
            Ok(cs_loop(&m, &path, iters).unwrap_or_else(protocol))
        }
        "mix-loop" => {
            let path = name(1)?;
            let seed = number(2)?;
            let iters = number(3)?;
            let names: Vec<String> = (4..words.len()).map(name).collect::<Result<_, _>>()?;
            Ok(mix_loop(&path, seed, iters, &names).unwrap_or_else(protocol))
        }
        "exit" => {
            let code = number(1)? as i32;
            std::process::exit(code)
        }
        "abort" => std::process::abort(),
        "print-pid" => Ok(format!("ok {}", std::process::id())),
        #[cfg(unix)]
        "exec" => {
            use std::os::unix::process::CommandExt;
            let exe = std::env::current_exe().map_err(|e| protocol(e.to_string()))?;
            let e = std::process::Command::new(exe)
                .arg("--child")
                .arg("exec")
                .exec();
            Err(protocol(format!("exec failed: {e}")))
        }
        #[cfg(unix)]
        "install-sigusr2" => {
            unix::install_sigusr2().map_err(protocol)?;
            Ok("ok".to_owned())
        }
        #[cfg(unix)]
        "fork-check" => {
            let m = handle(handles, 1)?;
            Ok(match unix::fork_check(&m) {
                Ok(()) => "ok".to_owned(),
                Err(e) => format!("err Fork - {e}"),
            })
        }
        other => Err(protocol(format!("unknown command {other:?}"))),
    })();
    result.unwrap_or_else(|e| e)
}

/// ITERS critical sections: acquire, append `enter PID I`, yield, append `exit PID I`,
/// release. Interleaved lines in the file prove a violation of mutual exclusion.
fn cs_loop(m: &NamedMutex, path: &str, iters: u64) -> Result<String, String> {
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| format!("open {path}: {e}"))?;
    let pid = std::process::id();
    for i in 0..iters {
        match m.wait(Some(watchdog())) {
            Ok(WaitStatus::Acquired) => {}
            Ok(s) => return Err(format!("iteration {i}: wait returned {s:?}")),
            Err(e) => return Ok(err_line(&e)),
        }
        file.write_all(format!("enter {pid} {i}\n").as_bytes())
            .map_err(|e| e.to_string())?;
        for _ in 0..3 {
            std::thread::yield_now();
        }
        file.write_all(format!("exit {pid} {i}\n").as_bytes())
            .map_err(|e| e.to_string())?;
        if let Err(e) = m.release() {
            return Ok(err_line(&e));
        }
    }
    Ok("ok".to_owned())
}

/// Random single waits, wait-any and wait-all over the mutexes `names`, logging every
/// entry into and exit from a critical section to the append-only file `path`
/// (`enter PID NAME ABANDONED` / `exit PID NAME`), for the parent to check afterwards.
fn mix_loop(path: &str, seed: u64, iters: u64, names: &[String]) -> Result<String, String> {
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| format!("open {path}: {e}"))?;
    let handles: Vec<NamedMutex> = names
        .iter()
        .map(|n| NamedMutex::open(n).map_err(|e| format!("open {n}: {e}")))
        .collect::<Result<_, _>>()?;
    let pid = std::process::id();
    let mut rng = seed | 1;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    // Appends from several processes are atomic on Linux and Windows, but not under Wine
    // (it seeks to the end, then writes): there a mutex of its own serialises the log.
    let log_lock = if crate::util::under_wine() {
        let n = format!("{}-log", names[0]);
        Some(NamedMutex::open(&n).map_err(|e| format!("open {n}: {e}"))?)
    } else {
        None
    };
    let mut line = |text: String| {
        let guard = log_lock
            .as_ref()
            .map(|m| m.lock())
            .transpose()
            .map_err(|e| e.to_string())?;
        let r = log.write_all(text.as_bytes()).map_err(|e| e.to_string());
        drop(guard);
        r
    };
    for i in 0..iters {
        // A random non-empty subset, in random order.
        let mut set: Vec<usize> = (0..handles.len()).filter(|_| next(2) == 0).collect();
        if set.is_empty() {
            set.push(next(handles.len() as u64) as usize);
        }
        if next(2) == 0 {
            set.reverse();
        }
        let list: Vec<&NamedMutex> = set.iter().map(|&j| &handles[j]).collect();
        // Abandoned flag per entry: 0 no, 1 this mutex was, 2 some of a wait_all set was.
        let mut held: Vec<(usize, u8)> = Vec::new();
        match next(3) {
            0 => match handles[set[0]].wait(Some(watchdog())) {
                Ok(WaitStatus::TimedOut) => {
                    return Err(format!("iteration {i}: single wait timed out"));
                }
                Ok(s) => held.push((set[0], u8::from(s == WaitStatus::Abandoned))),
                Err(e) => return Ok(err_line(&e)),
            },
            1 => match namedmutex::wait_any(&list, Some(watchdog())) {
                Ok(namedmutex::WaitAny::Acquired(k)) => held.push((set[k], 0)),
                Ok(namedmutex::WaitAny::Abandoned(k)) => held.push((set[k], 1)),
                Ok(namedmutex::WaitAny::TimedOut) => {
                    return Err(format!("iteration {i}: wait_any timed out"));
                }
                Err(e) => return Ok(err_line(&e)),
            },
            _ => match namedmutex::wait_all(&list, Some(watchdog())) {
                // wait_all says only whether *some* was abandoned: log it on each.
                Ok(WaitStatus::TimedOut) => {
                    return Err(format!("iteration {i}: wait_all timed out"));
                }
                Ok(s) => held.extend(
                    set.iter()
                        .map(|&j| (j, 2 * u8::from(s == WaitStatus::Abandoned))),
                ),
                Err(e) => return Ok(err_line(&e)),
            },
        }
        for &(j, abandoned) in &held {
            line(format!("enter {pid} {j} {abandoned}\n"))?;
        }
        // Stay inside a while, so that kills often find an owner.
        for _ in 0..20 {
            std::thread::yield_now();
        }
        for &(j, _) in &held {
            line(format!("exit {pid} {j}\n"))?;
            if let Err(e) = handles[j].release() {
                return Ok(err_line(&e));
            }
        }
    }
    Ok("ok".to_owned())
}

#[cfg(unix)]
mod unix {
    //! fork and signals, which need libc.
    #![allow(unsafe_code)]

    use crate::util::watchdog;
    use namedmutex::{ErrorKind, NamedMutex, WaitStatus};
    use std::time::Duration;

    extern "C" fn noop(_: libc::c_int) {}

    pub fn install_sigusr2() -> Result<(), String> {
        // SAFETY: a zeroed sigaction is a valid value to fill in; `noop` is a valid handler
        // that does nothing (async-signal-safe).
        let rc = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = noop as extern "C" fn(libc::c_int) as libc::sighandler_t;
            sa.sa_flags = 0; // no SA_RESTART: interrupted system calls see EINTR
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(libc::SIGUSR2, &sa, std::ptr::null_mut())
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(format!("sigaction: {}", std::io::Error::last_os_error()))
        }
    }

    fn pipe() -> Result<[libc::c_int; 2], String> {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe writes.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
            return Err(format!("pipe: {}", std::io::Error::last_os_error()));
        }
        Ok(fds)
    }

    fn write_fd(fd: libc::c_int, s: &str) {
        // SAFETY: writes from a valid buffer of the given length to a descriptor we own.
        unsafe { libc::write(fd, s.as_ptr().cast(), s.len()) };
    }

    fn close(fd: libc::c_int) {
        // SAFETY: closes a descriptor we own and do not use afterwards.
        unsafe { libc::close(fd) };
    }

    /// Reads one line from `fd`, waiting at most `timeout` in all.
    fn read_line(fd: libc::c_int, timeout: Duration) -> Result<String, String> {
        let deadline = std::time::Instant::now() + timeout;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "no answer from the forked child within {timeout:?} (got {:?})",
                    String::from_utf8_lossy(&out)
                ));
            }
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: polls one valid pollfd.
            let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(60_000) as i32) };
            if n <= 0 {
                continue;
            }
            let mut byte = 0u8;
            // SAFETY: reads one byte into a valid buffer.
            let r = unsafe { libc::read(fd, (&mut byte as *mut u8).cast(), 1) };
            if r <= 0 {
                return Err(format!(
                    "the forked child closed its pipe (got {:?})",
                    String::from_utf8_lossy(&out)
                ));
            }
            if byte == b'\n' {
                return Ok(String::from_utf8_lossy(&out).into_owned());
            }
            out.push(byte);
        }
    }

    fn describe(r: &namedmutex::Result<WaitStatus>) -> String {
        match r {
            Ok(s) => format!("{}", s.code()),
            Err(e) => format!("error-{:?}-{:?}", e.kind(), e.win32_code()),
        }
    }

    /// The calling thread owns `m` (count 1). A forked child must not own it: its release
    /// fails with NotOwner and its wait times out; once we release, it can acquire
    /// (WAIT_OBJECT_0) and release. Afterwards we acquire it again, not abandoned.
    pub fn fork_check(m: &NamedMutex) -> Result<(), String> {
        let to_parent = pipe()?;
        let to_child = pipe()?;
        // SAFETY: this process is single-threaded apart from threads that hold no locks the
        // child needs (the life-limit sleeper); the child only uses the mutex, the pipes,
        // and `_exit`.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(format!("fork: {}", std::io::Error::last_os_error()));
        }
        if pid == 0 {
            close(to_parent[0]);
            close(to_child[1]);
            let release = match m.release() {
                Ok(()) => "succeeded".to_owned(),
                Err(e) if e.kind() == ErrorKind::NotOwner && e.win32_code() == Some(288) => {
                    "288".to_owned()
                }
                Err(e) => format!("error-{:?}-{:?}", e.kind(), e.win32_code()),
            };
            let start = std::time::Instant::now();
            let w = m.wait(Some(Duration::from_millis(300)));
            let ms = start.elapsed().as_millis();
            write_fd(
                to_parent[1],
                &format!("stage1 release={release} wait={} ms={ms}\n", describe(&w)),
            );
            let go = read_line(to_child[0], watchdog());
            let w2 = m.wait(Some(watchdog()));
            let rel2 = match m.release() {
                Ok(()) => "ok".to_owned(),
                Err(e) => format!("error-{:?}-{:?}", e.kind(), e.win32_code()),
            };
            write_fd(
                to_parent[1],
                &format!(
                    "stage2 go={} wait={} release={rel2}\n",
                    go.is_ok(),
                    describe(&w2)
                ),
            );
            // SAFETY: ends the forked child without running the parent's destructors.
            unsafe { libc::_exit(0) };
        }
        close(to_parent[1]);
        close(to_child[0]);
        let result = (|| {
            let stage1 = read_line(to_parent[0], watchdog())?;
            if !stage1.starts_with("stage1 release=288 wait=258 ") {
                return Err(format!(
                    "forked child: expected release=288 and wait=258 while the parent owns, got {stage1:?}"
                ));
            }
            m.release()
                .map_err(|e| format!("parent release after fork: {e}"))?;
            write_fd(to_child[1], "go\n");
            let stage2 = read_line(to_parent[0], watchdog())?;
            if stage2 != "stage2 go=true wait=0 release=ok" {
                return Err(format!(
                    "forked child: expected to acquire (0) and release after the parent released, got {stage2:?}"
                ));
            }
            match m.wait(Some(Duration::ZERO)) {
                Ok(WaitStatus::Acquired) => {}
                other => {
                    return Err(format!(
                        "parent: after the forked child released, wait(0) gave {other:?}, expected Acquired"
                    ));
                }
            }
            m.release()
                .map_err(|e| format!("parent final release: {e}"))?;
            Ok(())
        })();
        close(to_parent[0]);
        close(to_child[1]);
        let mut status = 0;
        // Bounded: the child exits right after stage 2, or is killed here on failure.
        if result.is_err() {
            // SAFETY: signals the child we forked.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        // SAFETY: reaps the child we forked.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        result
    }
}
