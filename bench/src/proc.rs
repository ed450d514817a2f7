//! Worker processes: the harness re-executes its own binary with `NMBENCH_ROLE` set, and
//! talks to each worker by lines on its stdin and stdout. Every wait is bounded: the
//! coordinator's reads by a deadline, a worker's whole life by `alarm` (and it dies with
//! the coordinator through `PR_SET_PDEATHSIG`).

use crate::env::Env;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// The variable that makes a process a worker, and names its role.
pub const ROLE_ENV: &str = "NMBENCH_ROLE";
/// The variable that bounds a worker's life, in seconds.
pub const WATCHDOG_ENV: &str = "NMBENCH_WATCHDOG";

/// A worker process as the coordinator sees it.
pub struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: ChildStdout,
    buf: Vec<u8>,
    what: String,
}

impl Worker {
    /// Starts this executable as a worker with `role` and `args`; it dies after
    /// `watchdog` at the latest.
    pub fn spawn(env: &Env, role: &str, args: &[String], watchdog: Duration) -> Worker {
        let exe = std::env::current_exe().expect("the path of this executable");
        Worker::spawn_exe(&exe, env, role, args, watchdog)
    }

    /// Starts `exe`, another build of this crate (the portable backend's, scenario 10), as
    /// a worker with `role` and `args`.
    pub fn spawn_exe(
        exe: &std::path::Path,
        env: &Env,
        role: &str,
        args: &[String],
        watchdog: Duration,
    ) -> Worker {
        let mut cmd = Command::new(exe);
        cmd.args(args)
            .env(ROLE_ENV, role)
            .env(WATCHDOG_ENV, watchdog.as_secs().max(1).to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env.vars() {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn a worker");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("worker stdout");
        Worker {
            what: format!("worker {role} {} (pid {})", args.join(" "), child.id()),
            child,
            stdin,
            stdout,
            buf: Vec::new(),
        }
    }

    /// The worker's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends one line.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        if let Err(e) = writeln!(stdin, "{line}").and_then(|()| stdin.flush()) {
            panic!("{}: cannot send {line:?}: {e}", self.what);
        }
    }

    /// Receives one line, waiting at most `timeout`. Panics on timeout or if the worker
    /// ended (the worker is killed on drop).
    pub fn recv(&mut self, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                return String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!("{}: no answer within {timeout:?}", self.what);
            }
            let mut pfd = libc::pollfd {
                fd: self.stdout.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
            // SAFETY: `pfd` is one valid pollfd.
            let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                panic!("{}: poll: {e}", self.what);
            }
            if rc == 0 {
                continue;
            }
            let mut chunk = [0u8; 4096];
            // SAFETY: reading into a local buffer of the stated size.
            let n = unsafe {
                libc::read(
                    self.stdout.as_raw_fd(),
                    chunk.as_mut_ptr().cast(),
                    chunk.len(),
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                panic!("{}: read: {e}", self.what);
            }
            if n == 0 {
                let status = self.child.wait().ok();
                panic!("{}: ended without answering ({status:?})", self.what);
            }
            self.buf.extend_from_slice(&chunk[..n as usize]);
        }
    }

    /// Receives a line that must start with `word`; returns the rest.
    pub fn expect(&mut self, word: &str, timeout: Duration) -> String {
        let line = self.recv(timeout);
        match line.strip_prefix(word) {
            Some(rest) => rest.trim().to_owned(),
            None => panic!("{}: expected {word:?}, got {line:?}", self.what),
        }
    }

    /// Closes stdin (the worker's cue to end) and waits up to `timeout` for it to exit;
    /// kills it after that.
    pub fn finish(mut self, timeout: Duration) {
        self.stdin = None;
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) if status.success() => return,
                Ok(Some(status)) => panic!("{}: exited with {status}", self.what),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                _ => panic!("{}: did not exit within {timeout:?}", self.what),
            }
        }
    }

    /// SIGKILL now; returns the CLOCK_MONOTONIC time just before the signal was sent.
    pub fn kill_now(&mut self) -> u64 {
        let pid = self.child.id() as libc::pid_t;
        let t = crate::mono_ns();
        // SAFETY: signalling our own, not yet reaped child.
        let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
        assert_eq!(rc, 0, "kill {}", self.what);
        t
    }

    /// Reaps a killed worker.
    pub fn reap(mut self) {
        let _ = self.child.wait();
    }

    /// Waits until the worker's main thread sleeps in a system call (a lock wait), at most
    /// `timeout`; returns the syscall number. Reads `/proc/<pid>/syscall` and `stat`.
    pub fn wait_until_blocked(&self, timeout: Duration) -> i64 {
        let pid = self.pid();
        let deadline = Instant::now() + timeout;
        loop {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .unwrap_or("?");
            let sys = std::fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap_or_default();
            let nr = sys
                .split_whitespace()
                .next()
                .and_then(|s| s.parse::<i64>().ok());
            if let (true, Some(nr)) = (state == "S", nr) {
                // futex, flock, futex_waitv: the ways our peers sleep.
                if matches!(nr, 202 | 73 | 449) {
                    return nr;
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "{}: not blocked in a lock wait within {timeout:?} (state {state}, syscall {sys:?})",
                    self.what
                );
            }
            std::thread::yield_now();
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Worker side: bounds this process's life and ties it to the coordinator's.
pub fn worker_init() {
    let secs: u32 = std::env::var(WATCHDOG_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    // SAFETY: prctl(PR_SET_PDEATHSIG) and alarm only set process attributes.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
        libc::alarm(secs);
    }
}

/// Worker side: sends one line to the coordinator.
pub fn say(line: &str) {
    let mut out = io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .expect("write to the coordinator");
}

/// Worker side: the next line from the coordinator, or `None` at end of input.
pub fn hear() -> Option<String> {
    let mut line = String::new();
    match io::stdin().read_line(&mut line) {
        Ok(0) => None,
        Ok(_) => Some(line.trim_end().to_owned()),
        Err(e) => panic!("read from the coordinator: {e}"),
    }
}
