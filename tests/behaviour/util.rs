//! Shared helpers: unique names, watchdogs, checks that return errors instead of panicking,
//! helper threads ("actors") and child processes driven through pipes.
//!
//! Nothing here sleeps to let something happen: every wait is on a channel or a pipe, and
//! is bounded by [`watchdog`]. Where a test needs another thread or process to be *blocked*
//! in a wait before it acts, [`wait_until_sleeping`] checks the thread state on Linux; on
//! other platforms the order is only approximated, which changes no expected result.

use namedmutex::{Error, ErrorKind, WaitStatus};
use std::fmt::Debug;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The result of every test function: `Err` carries the failure message.
/// The name of the thread registry's file in a user directory (the portable backend's is
/// its own, so that it never shares one with the Linux backend).
#[cfg_attr(windows, allow(dead_code))]
pub const REGISTRY_FILE: &str = if cfg!(feature = "portable-backend") {
    "registry-portable"
} else {
    "registry"
};

pub type TestResult = Result<(), String>;

/// Fails the test with a message (and the place) unless `$cond` holds.
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!("{} [{}:{}]", format!($($fmt)+), file!(), line!()));
        }
    };
}

/// Fails the test unless `$got == $want`, saying both.
macro_rules! ensure_eq {
    ($got:expr, $want:expr, $($fmt:tt)+) => {
        let (got, want) = (&$got, &$want);
        if got != want {
            return Err(format!(
                "{}: expected {:?}, got {:?} [{}:{}]",
                format!($($fmt)+),
                want,
                got,
                file!(),
                line!()
            ));
        }
    };
}

pub(crate) use {ensure, ensure_eq};

/// How long anything may take to answer before the test fails: 20 s, or
/// `$NAMEDMUTEX_TEST_WATCHDOG_SECS` (slow emulators).
pub fn watchdog() -> Duration {
    static SECS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    Duration::from_secs(*SECS.get_or_init(|| {
        std::env::var("NAMEDMUTEX_TEST_WATCHDOG_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|&s| s > 0)
            .unwrap_or(20)
    }))
}

/// A timeout for waits that must succeed: long enough never to expire in a passing run.
pub fn long_wait() -> Option<Duration> {
    Some(watchdog())
}

/// True when the Windows build runs under Wine (`NAMEDMUTEX_UNDER_WINE=1`, set by the
/// Wine runner). Known Wine differences are asserted as Wine's answer and printed.
pub fn under_wine() -> bool {
    cfg!(windows) && std::env::var("NAMEDMUTEX_UNDER_WINE").is_ok_and(|v| v == "1")
}

/// True when the mutexes are Wine's own kernel objects: the Windows backend under Wine,
/// not the PostgreSQL backend (whose answers are namedmutex's on every system).
pub fn wine_objects() -> bool {
    under_wine() && !on_server()
}

/// True when the suite runs against a PostgreSQL server (`NAMEDMUTEX_SERVER` set, the
/// library built with feature `postgres`): every round trip then costs a network call, so
/// the stress loops run fewer rounds.
pub fn on_server() -> bool {
    std::env::var("NAMEDMUTEX_SERVER").is_ok_and(|v| !v.trim().is_empty())
}

/// Prints a remark that belongs in the test log (latencies, platform differences).
pub fn note(msg: impl AsRef<str>) {
    println!("    note: {}", msg.as_ref());
}

/// A name no other test, and no other run of this suite, uses: pid, counter and a tag.
pub fn unique(tag: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "nmbt-{}-{}-{tag}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Adds context to a namedmutex result.
pub trait Ctx<T> {
    /// `Err(e)` becomes a message naming `what` and the error.
    fn ctx(self, what: &str) -> Result<T, String>;
}

impl<T> Ctx<T> for namedmutex::Result<T> {
    fn ctx(self, what: &str) -> Result<T, String> {
        self.map_err(|e| {
            format!(
                "{what}: unexpected error {:?} (win32 {:?}): {e}",
                e.kind(),
                e.win32_code()
            )
        })
    }
}

/// Checks that `r` failed with exactly `kind` and Win32 code `code`.
pub fn expect_err<T: Debug>(
    r: namedmutex::Result<T>,
    kind: ErrorKind,
    code: u32,
    what: &str,
) -> TestResult {
    match r {
        Ok(v) => Err(format!(
            "{what}: expected error {kind:?} ({code}), but it succeeded with {v:?}"
        )),
        Err(e) => check_error(&e, kind, code, what),
    }
}

/// Checks an error's kind and code.
pub fn check_error(e: &Error, kind: ErrorKind, code: u32, what: &str) -> TestResult {
    if e.kind() != kind || e.win32_code() != Some(code) {
        return Err(format!(
            "{what}: expected error {kind:?} ({code}), got {:?} ({:?}): {e}",
            e.kind(),
            e.win32_code()
        ));
    }
    Ok(())
}

/// Checks that a wait returned `want`.
pub fn expect_wait(r: namedmutex::Result<WaitStatus>, want: WaitStatus, what: &str) -> TestResult {
    match r {
        Ok(got) if got == want => Ok(()),
        Ok(got) => Err(format!("{what}: expected {want:?}, got {got:?}")),
        Err(e) => Err(format!(
            "{what}: expected {want:?}, got error {:?} ({:?}): {e}",
            e.kind(),
            e.win32_code()
        )),
    }
}

/// What a `wait(0)` on a new thread gives for `m` (the thread releases what it took).
pub fn poll_from_another_thread(
    m: &std::sync::Arc<namedmutex::NamedMutex>,
) -> Result<namedmutex::Result<WaitStatus>, String> {
    let m = m.clone();
    on_new_thread(move || {
        let r = m.wait(Some(Duration::ZERO));
        if matches!(r, Ok(s) if s.is_acquired()) {
            let _ = m.release();
        }
        r
    })
}

/// Another (new) thread finds `m` free: its `wait(0)` gives `Acquired`.
pub fn free_for_another_thread(
    m: &std::sync::Arc<namedmutex::NamedMutex>,
    what: &str,
) -> TestResult {
    expect_wait(poll_from_another_thread(m)?, WaitStatus::Acquired, what)
}

/// A new actor (thread) called `who` that owns `m` (one acquisition, at once).
pub fn owned_by_actor(
    who: &str,
    m: &std::sync::Arc<namedmutex::NamedMutex>,
) -> Result<Actor, String> {
    let owner = Actor::new(who);
    owner.acquire_at_once(m, &format!("{who} acquires"))?;
    Ok(owner)
}

/// The calling thread takes `m` at once (`wait(0)` gives `Acquired`) and releases it.
pub fn take_and_release(m: &namedmutex::NamedMutex, what: &str) -> TestResult {
    expect_wait(m.wait(Some(Duration::ZERO)), WaitStatus::Acquired, what)?;
    m.release().ctx(&format!("{what}: release"))
}

/// The slack a finite wait may show against `Instant` before its timeout: none on Linux
/// (both use CLOCK_MONOTONIC), one timer tick on Windows, whose waits may end up to a tick
/// early when measured with the performance counter.
pub fn timer_slack() -> Duration {
    if cfg!(windows) {
        Duration::from_millis(16)
    } else {
        Duration::ZERO
    }
}

// ----- helper threads -------------------------------------------------------------------

type Job = Box<dyn FnOnce() + Send>;

/// A helper thread that runs closures on request, one at a time: a second thread of the
/// process whose identity persists between steps (ownership is per thread). Dropping or
/// [`Actor::finish`]ing it ends the thread, which abandons whatever it still owns.
pub struct Actor {
    name: String,
    tx: Option<Sender<Job>>,
    handle: Option<JoinHandle<()>>,
    tid: Arc<AtomicU64>,
}

/// The future result of a job started on an [`Actor`].
pub struct Pending<T> {
    rx: Receiver<T>,
    started: Arc<AtomicBool>,
    tid: Arc<AtomicU64>,
    what: String,
}

impl Actor {
    /// The actor takes `m` at once (`wait(0)` gives `Acquired`); `what` names the step.
    pub fn acquire_at_once(
        &self,
        m: &std::sync::Arc<namedmutex::NamedMutex>,
        what: &str,
    ) -> TestResult {
        let o = m.clone();
        expect_wait(
            self.run(move || o.wait(Some(Duration::ZERO)))?,
            WaitStatus::Acquired,
            what,
        )
    }

    /// Starts the thread.
    pub fn new(name: &str) -> Actor {
        let (tx, rx) = mpsc::channel::<Job>();
        let tid = Arc::new(AtomicU64::new(0));
        let tid2 = tid.clone();
        let handle = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                tid2.store(current_tid(), Ordering::SeqCst);
                while let Ok(job) = rx.recv() {
                    job();
                }
            })
            .expect("spawn an actor thread");
        Actor {
            name: name.to_owned(),
            tx: Some(tx),
            handle: Some(handle),
            tid,
        }
    }

    /// Starts `f` on the thread and returns at once.
    pub fn start<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Pending<T> {
        let (tx, rx) = mpsc::channel();
        let started = Arc::new(AtomicBool::new(false));
        let started2 = started.clone();
        let job: Job = Box::new(move || {
            started2.store(true, Ordering::SeqCst);
            let _ = tx.send(f());
        });
        if let Some(sender) = &self.tx {
            let _ = sender.send(job);
        }
        Pending {
            rx,
            started,
            tid: self.tid.clone(),
            what: format!("thread {}", self.name),
        }
    }

    /// Runs `f` on the thread and returns its result, within the watchdog.
    pub fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, String> {
        self.start(f).get()
    }

    /// Ends the thread and waits (bounded) until it has fully exited, so that anything it
    /// owned is abandoned by the time this returns.
    pub fn finish(mut self) -> TestResult {
        self.end()
    }

    fn end(&mut self) -> TestResult {
        self.tx = None;
        if let Some(handle) = self.handle.take() {
            let deadline = Instant::now() + watchdog();
            while !handle.is_finished() {
                if Instant::now() > deadline {
                    return Err(format!(
                        "thread {} did not end within the watchdog",
                        self.name
                    ));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            // pthread_join / WaitForSingleObject: returns once the OS thread is gone.
            handle
                .join()
                .map_err(|_| format!("thread {} panicked", self.name))?;
        }
        Ok(())
    }
}

impl Drop for Actor {
    fn drop(&mut self) {
        let _ = self.end();
    }
}

impl<T> Pending<T> {
    /// The result, within the watchdog.
    pub fn get(self) -> Result<T, String> {
        match self.rx.recv_timeout(watchdog()) {
            Ok(v) => Ok(v),
            Err(RecvTimeoutError::Timeout) => Err(format!(
                "{} did not answer within the watchdog ({:?})",
                self.what,
                watchdog()
            )),
            Err(RecvTimeoutError::Disconnected) => {
                Err(format!("{} ended without an answer (panic?)", self.what))
            }
        }
    }

    /// The result if it is already there.
    pub fn try_now(&self) -> Option<T> {
        self.rx.try_recv().ok()
    }

    /// Returns once the job has started and (on Linux) its thread sleeps in the kernel,
    /// which after the job's start means it is blocked in the wait it was given.
    pub fn wait_blocked(&self) -> TestResult {
        let deadline = Instant::now() + watchdog();
        while !self.started.load(Ordering::SeqCst) {
            if Instant::now() > deadline {
                return Err(format!("{} never started its job", self.what));
            }
            std::thread::yield_now();
        }
        wait_until_sleeping(
            std::process::id(),
            self.tid.load(Ordering::SeqCst),
            &self.what,
        )
    }
}

/// The kernel id of the calling thread (0 where none is needed).
pub fn current_tid() -> u64 {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid has no preconditions and cannot fail.
        #[allow(unsafe_code)]
        let tid = unsafe { libc::syscall(libc::SYS_gettid) };
        tid as u64
    }
    #[cfg(not(target_os = "linux"))]
    {
        0
    }
}

/// On Linux, waits (bounded) until thread `tid` of process `pid` is asleep in the kernel
/// (state S or D). Elsewhere returns at once.
pub fn wait_until_sleeping(pid: u32, tid: u64, what: &str) -> TestResult {
    #[cfg(target_os = "linux")]
    {
        let path = format!("/proc/{pid}/task/{tid}/stat");
        let deadline = Instant::now() + watchdog();
        loop {
            let stat = std::fs::read_to_string(&path)
                .map_err(|e| format!("{what}: cannot read {path}: {e}"))?;
            // The state follows the parenthesised command name, which may contain spaces.
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next());
            if matches!(state, Some('S' | 'D')) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{what}: never went to sleep in its wait within the watchdog (state {state:?}; busy-waiting?)"
                ));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (pid, tid, what);
        Ok(())
    }
}

/// Runs `f` on a new thread that ends when `f` returns, and gives its result (bounded).
pub fn on_new_thread<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let actor = Actor::new("helper");
    let r = actor.run(f)?;
    actor.finish()?;
    Ok(r)
}

// ----- child processes ------------------------------------------------------------------

/// A reply line of the child protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `ok FIELDS...`
    Ok(Vec<String>),
    /// `err KIND CODE MESSAGE...`
    Err {
        /// `ErrorKind` in `Debug` form.
        kind: String,
        /// Win32 code, or `None` when the child printed `-`.
        code: Option<u32>,
        /// The rest of the line.
        msg: String,
    },
}

/// A child process running this test binary with `--child`: it reads one command per line
/// on stdin and answers lines on stdout (see child.rs). Every answer is awaited within the
/// watchdog; a child that does not answer is killed and the test fails. Dropping it ends
/// it (gracefully, or killed after the watchdog).
pub struct ChildProc {
    label: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    pid: u32,
    reaped: Option<ExitStatus>,
    /// Under Wine on a server: the `application_name` of the child's sessions (see
    /// [`WineServerSessions`]).
    sessions: Option<WineServerSessions>,
}

/// Under Wine, on a server, a killed child's sessions are ended by the test: wineserver
/// now and then keeps a killed process's sockets open, where Windows closes them with the
/// process. Seen with `ss -tnp`: the connections of killed children held by `wineserver64`
/// for minutes, their backends idle, their locks held, until the next owner's wait timed
/// out (about 1 run in 7 of `multi::stress_mixed_waits_with_owner_kills`; never on Linux).
/// So each child names its sessions (`application_name`), and [`ChildProc::kill`] ends
/// them on the server as the closing of its sockets would.
struct WineServerSessions {
    url: String,
    application_name: String,
}

impl WineServerSessions {
    /// The sessions of a child about to start, if it runs under Wine on a server.
    fn for_child() -> Option<WineServerSessions> {
        if !(under_wine() && on_server()) {
            return None;
        }
        let url = std::env::var("NAMEDMUTEX_SERVER").ok()?;
        let application_name = unique("child");
        Some(WineServerSessions {
            url,
            application_name,
        })
    }

    /// The server URL the child uses.
    fn child_url(&self) -> String {
        let joint = if self.url.contains('?') { '&' } else { '?' };
        format!(
            "{}{joint}application_name={}",
            self.url, self.application_name
        )
    }

    /// Ends the child's sessions on the server (it was killed), and waits until they are
    /// gone.
    fn end(&self) -> TestResult {
        let mut admin = postgres::Client::connect(&self.url, postgres::NoTls)
            .map_err(|e| format!("connect to end a killed child's sessions: {e}"))?;
        let deadline = Instant::now() + watchdog();
        loop {
            let left: i64 = admin
                .query_one(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                     WHERE application_name = $1",
                    &[&self.application_name],
                )
                .map_err(|e| format!("end a killed child's sessions: {e}"))?
                .get(0);
            if left == 0 {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{left} sessions of a killed child ({}) still there after the watchdog",
                    self.application_name
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Spawns `cmd`. Under Wine, `CreateProcess` sometimes fails with `ERROR_INTERNAL_ERROR`
/// (1359) while other tests start processes too (once in a CI run of this suite on
/// PostgreSQL, once in the Windows backend's unit tests, whose `spawn_child` retries the
/// same way; the next runs passed): that code alone is tried again, three times at most.
fn spawn_retrying(cmd: &mut Command) -> std::io::Result<std::process::Child> {
    const ERROR_INTERNAL_ERROR: i32 = 1359;
    let mut tries = 0;
    loop {
        match cmd.spawn() {
            Err(e)
                if e.raw_os_error() == Some(ERROR_INTERNAL_ERROR) && cfg!(windows) && tries < 3 =>
            {
                tries += 1;
                std::thread::sleep(Duration::from_millis(50 * tries));
            }
            other => return other,
        }
    }
}

impl ChildProc {
    /// Starts a child.
    pub fn spawn(label: &str) -> Result<ChildProc, String> {
        ChildProc::spawn_with(label, |_| {})
    }

    /// Starts a child, letting `configure` adjust the command first.
    pub fn spawn_with(
        label: &str,
        configure: impl FnOnce(&mut Command),
    ) -> Result<ChildProc, String> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let mut cmd = Command::new(exe);
        cmd.arg("--child")
            .arg(label)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let sessions = WineServerSessions::for_child();
        if let Some(sessions) = &sessions {
            cmd.env("NAMEDMUTEX_SERVER", sessions.child_url());
        }
        configure(&mut cmd);
        let mut child =
            spawn_retrying(&mut cmd).map_err(|e| format!("spawn child {label}: {e}"))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let stdin = child.stdin.take();
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name(format!("reader-{label}"))
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| format!("spawn reader thread: {e}"))?;
        let pid = child.id();
        let mut me = ChildProc {
            label: label.to_owned(),
            child,
            stdin,
            lines: rx,
            pid,
            reaped: None,
            sessions,
        };
        // The child announces itself once it runs its interpreter.
        let hello = me.recv("start")?;
        if hello != format!("hello {pid}") {
            return Err(format!("child {label}: unexpected greeting {hello:?}"));
        }
        Ok(me)
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Writes one command line.
    pub fn send(&mut self, line: &str) -> TestResult {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| format!("child {}: stdin closed", self.label))?;
        writeln!(stdin, "{line}")
            .and_then(|_| stdin.flush())
            .map_err(|e| {
                format!(
                    "child {} (pid {}): cannot send {line:?}: {e}",
                    self.label, self.pid
                )
            })
    }

    /// Reads one answer line within the watchdog; on a timeout the child is killed.
    pub fn recv(&mut self, after: &str) -> Result<String, String> {
        match self.lines.recv_timeout(watchdog()) {
            Ok(line) => Ok(line),
            Err(RecvTimeoutError::Timeout) => {
                let _ = self.kill();
                Err(format!(
                    "child {} (pid {}) did not answer {after:?} within the watchdog ({:?}); killed",
                    self.label,
                    self.pid,
                    watchdog()
                ))
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.wait_exit().ok();
                Err(format!(
                    "child {} (pid {}) closed its output instead of answering {after:?} (exit status {status:?})",
                    self.label, self.pid
                ))
            }
        }
    }

    /// Reads the answer to a command already sent and parses it.
    pub fn reply(&mut self, after: &str) -> Result<Reply, String> {
        let line = self.recv(after)?;
        parse_reply(&line).ok_or_else(|| {
            format!(
                "child {}: unparseable answer {line:?} to {after:?}",
                self.label
            )
        })
    }

    /// Sends a command and parses its answer.
    pub fn call(&mut self, line: &str) -> Result<Reply, String> {
        self.send(line)?;
        self.reply(line)
    }

    /// Sends a command that must succeed; returns the answer's fields.
    pub fn ok(&mut self, line: &str) -> Result<Vec<String>, String> {
        match self.call(line)? {
            Reply::Ok(fields) => Ok(fields),
            Reply::Err { kind, code, msg } => Err(format!(
                "child {} (pid {}): {line:?} failed: {kind} ({code:?}): {msg}",
                self.label, self.pid
            )),
        }
    }

    /// Sends a command whose answer's first field is a number (a handle, a code).
    pub fn ok_num(&mut self, line: &str) -> Result<u64, String> {
        let fields = self.ok(line)?;
        fields
            .first()
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| format!("child {}: {line:?} answered {fields:?}", self.label))
    }

    /// Sends a command that must fail with `kind` and `code`.
    pub fn expect_err(&mut self, line: &str, kind: ErrorKind, code: u32) -> TestResult {
        let reply = self.call(line)?;
        check_reply_err(
            &reply,
            kind,
            code,
            &format!("child {}: {line:?}", self.label),
        )
    }

    /// `create NAME OWNER` → (handle, opened_existing).
    pub fn create(&mut self, name: &str, owner: bool) -> Result<(u64, bool), String> {
        let fields = self.ok(&format!("create {} {}", enc(name), u8::from(owner)))?;
        match fields.as_slice() {
            [h, e] => Ok((
                h.parse().map_err(|_| format!("bad handle {h:?}"))?,
                e == "1",
            )),
            _ => Err(format!("create answered {fields:?}")),
        }
    }

    /// `open NAME` → handle.
    pub fn open(&mut self, name: &str) -> Result<u64, String> {
        self.ok_num(&format!("open {}", enc(name)))
    }

    /// `wait H MILLIS` → the Win32 wait code (0, 0x80, 0x102).
    pub fn wait(&mut self, h: u64, millis: Option<u64>) -> Result<u32, String> {
        let code = self.ok_num(&format!("wait {h} {}", millis_arg(millis)))?;
        Ok(code as u32)
    }

    /// Starts `wait-announce H MILLIS` and returns once the child is blocked in the wait
    /// (on Linux, verified by its thread state); collect the result with
    /// [`ChildProc::wait_result`].
    pub fn start_wait(&mut self, h: u64, millis: Option<u64>) -> TestResult {
        let line = format!("wait-announce {h} {}", millis_arg(millis));
        self.send(&line)?;
        let first = self.recv(&line)?;
        if first != "waiting" {
            return Err(format!("child {}: {line:?} answered {first:?}", self.label));
        }
        let what = format!("child {} (pid {})", self.label, self.pid);
        wait_until_sleeping(self.pid, u64::from(self.pid), &what)
    }

    /// The answer of a wait started with [`ChildProc::start_wait`]: (code, elapsed).
    pub fn wait_result(&mut self) -> Result<(u32, Duration), String> {
        match self.reply("wait-announce")? {
            Reply::Ok(f) if f.len() == 2 => {
                let code = f[0].parse().map_err(|_| format!("bad code {f:?}"))?;
                let us: u64 = f[1].parse().map_err(|_| format!("bad time {f:?}"))?;
                Ok((code, Duration::from_micros(us)))
            }
            other => Err(format!("child {}: wait answered {other:?}", self.label)),
        }
    }

    /// Kills the child hard (SIGKILL / TerminateProcess) and reaps it (under Wine on a
    /// server, then ends its sessions: [`WineServerSessions`]).
    pub fn kill(&mut self) -> TestResult {
        if self.reaped.is_none() {
            let _ = self.child.kill();
        }
        self.wait_exit()?;
        match &self.sessions {
            Some(sessions) => sessions.end(),
            None => Ok(()),
        }
    }

    /// Closes the child's stdin (it exits at end of input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits (bounded) for the child to exit.
    pub fn wait_exit(&mut self) -> Result<ExitStatus, String> {
        if let Some(status) = self.reaped {
            return Ok(status);
        }
        let deadline = Instant::now() + watchdog();
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.reaped = Some(status);
                    return Ok(status);
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Ok(None) => {
                    let _ = self.child.kill();
                    return Err(format!(
                        "child {} (pid {}) did not exit within the watchdog; killed",
                        self.label, self.pid
                    ));
                }
                Err(e) => return Err(format!("child {}: wait: {e}", self.label)),
            }
        }
    }
}

impl Drop for ChildProc {
    /// Ends the child gracefully (end of input: it closes its handles and exits), so that
    /// a test's last handle is closed properly; a child that does not exit within the
    /// watchdog is killed.
    fn drop(&mut self) {
        if self.reaped.is_none() {
            self.close_stdin();
            if self.wait_exit().is_err() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

/// Checks that a reply is `err KIND CODE`.
pub fn check_reply_err(reply: &Reply, kind: ErrorKind, code: u32, what: &str) -> TestResult {
    match reply {
        Reply::Err {
            kind: k, code: c, ..
        } if *k == format!("{kind:?}") && *c == Some(code) => Ok(()),
        other => Err(format!(
            "{what}: expected err {kind:?} {code}, got {other:?}"
        )),
    }
}

fn millis_arg(millis: Option<u64>) -> String {
    millis.map_or_else(|| "inf".to_owned(), |m| m.to_string())
}

fn parse_reply(line: &str) -> Option<Reply> {
    let mut parts = line.splitn(4, ' ');
    match parts.next()? {
        "ok" => Ok::<_, ()>(Reply::Ok(
            line[2..].split_whitespace().map(str::to_owned).collect(),
        ))
        .ok(),
        "err" => {
            let kind = parts.next()?.to_owned();
            let code = parts.next()?;
            let code = if code == "-" {
                None
            } else {
                Some(code.parse().ok()?)
            };
            let msg = parts.next().unwrap_or("").to_owned();
            Some(Reply::Err { kind, code, msg })
        }
        _ => None,
    }
}

/// Encodes a name for the child protocol (one whitespace-free token): hex of its UTF-8.
pub fn enc(name: &str) -> String {
    if name.is_empty() {
        return "-".to_owned();
    }
    name.bytes().map(|b| format!("{b:02x}")).collect()
}

/// Decodes [`enc`].
pub fn dec(token: &str) -> Option<String> {
    if token == "-" {
        return Some(String::new());
    }
    if token.len() % 2 != 0 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

// ----- trials -----------------------------------------------------------------------------

/// Names of the trials running now (for the global watchdog's report).
pub static RUNNING: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// How long one trial may take in all before it is declared hung.
pub fn trial_limit() -> Duration {
    watchdog() * 6
}

/// Runs a test function on its own thread, bounded by [`trial_limit`], turning panics
/// into failures.
pub fn run_bounded(name: &str, f: fn() -> TestResult) -> TestResult {
    RUNNING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(name.to_owned());
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let r = std::panic::catch_unwind(f).unwrap_or_else(|payload| {
                let msg = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "non-string panic".to_owned());
                Err(format!("panicked: {msg}"))
            });
            let _ = tx.send(r);
        });
    let result = match spawned {
        Err(e) => Err(format!("cannot start the test thread: {e}")),
        Ok(_) => match rx.recv_timeout(trial_limit()) {
            Ok(r) => r,
            Err(_) => Err(format!(
                "did not finish within {:?}: hung (its thread is left behind)",
                trial_limit()
            )),
        },
    };
    RUNNING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|n| n != name);
    result
}

// ----- files (Linux namespace inspection) -------------------------------------------------

/// Names whose object file may legitimately outlive the run's handles: the last holder was
/// a process that exited or was killed without closing (semantics.md §6: such files must
/// only be cleanable and reusable by a later process, which the final check verifies).
pub static LEFTOVER_ALLOWED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Declares that `name`'s object file may be left behind by a process that ends holding it.
pub fn allow_leftover(name: &str) {
    LEFTOVER_ALLOWED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(name.to_owned());
}

/// Every non-directory entry below `dir`, recursively (symlinks are not followed).
#[cfg(unix)]
pub fn list_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => out.extend(list_files(&path)),
            _ => out.push(path),
        }
    }
    out.sort();
    out
}

/// A fresh private directory for a namespace root: mode 0755, owned by us, removed on drop.
#[cfg(unix)]
pub struct TempRoot {
    /// Its path.
    pub path: std::path::PathBuf,
}

#[cfg(unix)]
impl TempRoot {
    /// Creates it under the system temporary directory.
    pub fn new(tag: &str) -> Result<TempRoot, String> {
        use std::os::unix::fs::PermissionsExt;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "namedmutex-behaviour-{}-{tag}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir(&path).map_err(|e| format!("create {}: {e}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("chmod {}: {e}", path.display()))?;
        Ok(TempRoot { path })
    }

    /// The object files below it: everything but directories and registry files.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))] // its users are Linux tests
    pub fn object_files(&self) -> Vec<std::path::PathBuf> {
        list_files(&self.path)
            .into_iter()
            .filter(|p| p.file_name().is_none_or(|n| n != REGISTRY_FILE))
            .collect()
    }
}

#[cfg(unix)]
impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
