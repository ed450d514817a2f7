//! What the scenarios share: the server, names, bounded waits, and client processes.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

pub type TestResult = Result<(), String>;

/// The bound of every wait for an answer.
pub fn watchdog() -> Duration {
    Duration::from_secs(
        std::env::var("NAMEDMUTEX_TEST_WATCHDOG_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(20),
    )
}

/// Runs `f` on a thread of its own and fails if it does not end within 3 watchdogs.
pub fn bounded(name: &str, f: fn() -> TestResult) -> TestResult {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let r = std::panic::catch_unwind(f).unwrap_or_else(|p| {
            Err(p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panicked".into()))
        });
        let _ = tx.send(r);
    });
    rx.recv_timeout(watchdog() * 3)
        .unwrap_or_else(|_| Err(format!("{name} did not end within the watchdog")))
}

/// The server's URL (a superuser's).
pub fn url() -> String {
    std::env::var("NAMEDMUTEX_TEST_PG_URL").expect("NAMEDMUTEX_TEST_PG_URL")
}

/// The test server's port, from its URL (`postgresql://user@host:PORT/db`).
pub fn server_port() -> Result<String, String> {
    let url = url();
    url.rsplit_once(':')
        .and_then(|(_, rest)| rest.split('/').next())
        .filter(|port| !port.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| format!("no port in {url}"))
}

/// The directory `tools/pg-server.sh start` made (the server's data, its CA and certificates).
pub fn pg_dir() -> Result<String, String> {
    std::env::var("NAMEDMUTEX_TEST_PG_DIR")
        .map_err(|_| "NAMEDMUTEX_TEST_PG_DIR is not set (tools/test-all.sh sets it)".to_string())
}

/// `tools/pg-server.sh HOW DIR` on the test server: `restart` (clean) or `crash`.
pub fn pg_server(how: &str) -> TestResult {
    let status = Command::new("tools/pg-server.sh")
        .args([how, &pg_dir()?])
        .status()
        .ctx(&format!("tools/pg-server.sh {how}"))?;
    ensure(status.success(), format!("tools/pg-server.sh {how} failed"))
}

/// An administrative connection, for what the library does not do (terminate, inspect).
pub fn admin() -> postgres::Client {
    postgres::Client::connect(&url(), postgres::NoTls).expect("admin connection")
}

/// A new, empty database `db` on the test server (dropped first if a run left it): its URL.
pub fn fresh_database(admin: &mut postgres::Client, db: &str) -> Result<String, String> {
    let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .ctx("create database")?;
    Ok(url()
        .rsplit_once('/')
        .map(|(base, _)| format!("{base}/{db}"))
        .unwrap())
}

/// The test server's log (tools/pg-server.sh writes it to DIR/log) from a mark on.
pub struct ServerLog {
    path: String,
    start: u64,
}

impl ServerLog {
    /// Marks the log's end now.
    pub fn mark() -> Result<ServerLog, String> {
        let path = format!("{}/log", pg_dir()?);
        let start = std::fs::metadata(&path).ctx("the server's log")?.len();
        Ok(ServerLog { path, start })
    }

    /// Fails, showing them, if lines containing `needle` were logged since the mark.
    pub fn expect_none(&self, needle: &str) -> TestResult {
        let lines = self.lines_with(needle)?;
        ensure(
            lines.is_empty(),
            format!(
                "the server logged {} lines with {needle:?}: {lines:?}",
                lines.len()
            ),
        )
    }

    /// The lines logged since the mark by sessions of application `app` (the log names each
    /// line's application_name: tools/pg-server.sh) that contain `needle`.
    pub fn lines_of(&self, app: &str, needle: &str) -> Result<Vec<String>, String> {
        let tag = format!("app={app} ");
        Ok(self
            .lines_with(needle)?
            .into_iter()
            .filter(|line| line.contains(&tag))
            .collect())
    }

    /// The lines logged since the mark that contain `needle`.
    pub fn lines_with(&self, needle: &str) -> Result<Vec<String>, String> {
        let text = std::fs::read(&self.path).ctx("the server's log")?;
        let since = text.get(self.start as usize..).unwrap_or_default();
        Ok(String::from_utf8_lossy(since)
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect())
    }
}

/// Creates a mutex named after `tag` through `url`, takes it (it must be `Acquired`) and
/// releases it; `who` names the case in errors.
pub fn take_and_release(url: &str, tag: &str, who: &str) -> TestResult {
    let (m, _) = namedmutex::MutexOptions::new()
        .server(url)
        .create(&unique(tag))
        .ctx(&format!("{who} creates"))?;
    let s = m.wait(Some(watchdog())).ctx(&format!("{who} waits"))?;
    ensure(
        s == namedmutex::WaitStatus::Acquired,
        format!("{who}: {s:?}"),
    )?;
    m.release().ctx(&format!("{who} releases"))
}

/// Options for a mutex on the test server.
pub fn opts() -> namedmutex::MutexOptions {
    namedmutex::MutexOptions::new().server(&url())
}

/// The error of creating `name` on the server `url`, which must fail (`what`: why it must).
pub fn refused(url: &str, name: &str, what: &str) -> Result<namedmutex::Error, String> {
    namedmutex::MutexOptions::new()
        .server(url)
        .create(name)
        .err()
        .ok_or_else(|| what.to_string())
}

/// A name no other test or run uses.
pub fn unique(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "pgt-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Adds context to an error.
pub trait Ctx<T> {
    fn ctx(self, what: &str) -> Result<T, String>;
}

impl<T, E: std::fmt::Display> Ctx<T> for Result<T, E> {
    fn ctx(self, what: &str) -> Result<T, String> {
        self.map_err(|e| format!("{what}: {e}"))
    }
}

/// Waits for `m` (within the watchdog), checks that the wait answered `want`, and releases.
pub fn wait_expecting(
    m: &namedmutex::NamedMutex,
    want: namedmutex::WaitStatus,
    what: &str,
) -> TestResult {
    let got = m.wait(Some(watchdog())).ctx(what)?;
    ensure(got == want, format!("{what}: {got:?}"))?;
    m.release().ctx(&format!("{what}: release"))
}

/// Fails with `msg` unless `cond`.
pub fn ensure(cond: bool, msg: impl Into<String>) -> TestResult {
    if cond { Ok(()) } else { Err(msg.into()) }
}

/// A client process running `--child COMMAND URL NAME`, its output read line by line.
pub struct Client {
    child: Child,
    lines: Receiver<String>,
    input: Option<std::process::ChildStdin>,
}

impl Client {
    pub fn spawn(command: &str, url: &str, name: &str) -> Result<Client, String> {
        Client::spawn_with(
            Command::new(std::env::current_exe().unwrap()),
            command,
            url,
            name,
        )
    }

    /// As `spawn`, through `prefix` (for example `unshare --net`).
    pub fn spawn_with(
        mut cmd: Command,
        command: &str,
        url: &str,
        name: &str,
    ) -> Result<Client, String> {
        if cmd.get_program() != std::env::current_exe().unwrap().as_os_str() {
            cmd.arg(std::env::current_exe().unwrap());
        }
        let mut child = cmd
            .args(["--child", command, url, name])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .ctx("spawn a client process")?;
        let input = child.stdin.take();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Client {
            child,
            lines,
            input,
        })
    }

    /// Tells the client `line` (on its standard input).
    pub fn send(&mut self, line: &str) -> TestResult {
        use std::io::Write;
        let input = self.input.as_mut().ok_or("the client's input is closed")?;
        writeln!(input, "{line}")
            .and_then(|()| input.flush())
            .ctx("write to the client")
    }

    /// The next line, which must start with `prefix`: the rest of it.
    pub fn expect(&mut self, prefix: &str) -> Result<String, String> {
        let line = self
            .lines
            .recv_timeout(watchdog())
            .map_err(|_| format!("the client said nothing starting {prefix:?} in time"))?;
        line.strip_prefix(prefix)
            .map(|rest| rest.trim().to_owned())
            .ok_or_else(|| format!("the client said {line:?}, expected {prefix:?}"))
    }

    /// Waits (at most a watchdog) for the process to exit by itself: its exit status.
    pub fn wait_exit(&mut self) -> Result<std::process::ExitStatus, String> {
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().ctx("wait for the client")? {
                return Ok(status);
            }
            if started.elapsed() > watchdog() {
                return Err("the client did not exit in time".into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(&mut self) -> TestResult {
        self.child.kill().ctx("SIGKILL the client")?;
        self.child.wait().ctx("reap the client")?;
        Ok(())
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A new thread (a server session of its own) waits for `m` at most one watchdog and
/// releases it: what the wait returned.
pub fn acquire_on_another_thread(
    m: &std::sync::Arc<namedmutex::NamedMutex>,
) -> Result<namedmutex::WaitStatus, String> {
    wait_on_another_thread(m, watchdog())
}

/// A new thread (a server session of its own) waits for `m` at most `timeout` and releases
/// what it got: what the wait returned.
pub fn wait_on_another_thread(
    m: &std::sync::Arc<namedmutex::NamedMutex>,
    timeout: Duration,
) -> Result<namedmutex::WaitStatus, String> {
    let o = m.clone();
    std::thread::spawn(move || {
        let s = o.wait(Some(timeout));
        if s.as_ref()
            .is_ok_and(|s| *s != namedmutex::WaitStatus::TimedOut)
        {
            let _ = o.release();
        }
        s
    })
    .join()
    .map_err(|_| "the other thread panicked".to_owned())?
    .ctx("wait on another thread")
}

/// The owner behind `g` has lost the mutex `when`: `still_owned` says so, and the release
/// reports `OwnershipLost`.
pub fn expect_lost(g: namedmutex::MutexGuard<'_>, when: &str) -> TestResult {
    ensure(
        !g.still_owned().ctx("still_owned")?,
        format!("still owned {when}"),
    )?;
    let e = g
        .release()
        .err()
        .ok_or_else(|| format!("the release {when} succeeded"))?;
    ensure(
        e.kind() == namedmutex::ErrorKind::OwnershipLost,
        format!("the release {when}: {e}"),
    )
}

/// The fencing token in a client's `held TOKEN STATUS` line (after `held`).
pub fn token_of(held: &str) -> Result<u64, String> {
    held.split(' ')
        .next()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| format!("no token in {held:?}"))
}

/// Polls `cond` until it holds, at most one watchdog.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) -> TestResult {
    let started = std::time::Instant::now();
    while !cond() {
        if started.elapsed() > watchdog() {
            return Err(format!("{what}: not within the watchdog"));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

/// Takes the mutex `name` in the raw session `owner` as the library would, with the owner id
/// `me` (a uuid): its id. The raw session plays an owner the test controls, one it can end
/// or keep from committing when it chooses.
pub fn raw_claim(owner: &mut postgres::Client, name: &str, me: &str) -> Result<i32, String> {
    let id: i32 = owner
        .query_one("SELECT id FROM namedmutex.mutex WHERE name = $1", &[&name])
        .map_err(|e| format!("the id of {name}: {e}"))?
        .get(0);
    let got: bool = owner
        .query_one(
            "SELECT got FROM namedmutex.try_acquire($1, $2::text::uuid, 'test', 1, 1)",
            &[&id, &me],
        )
        .map_err(|e| format!("the raw owner's acquisition of {name}: {e}"))?
        .get(0);
    ensure(
        got,
        format!("the raw owner did not get {name}, which was free"),
    )?;
    Ok(id)
}

/// The number of sessions waiting for (`granted` false) or holding the ownership lock of
/// any namedmutex object, as the server sees them.
pub fn ownership_locks(admin: &mut postgres::Client, granted: bool) -> i64 {
    admin
        .query_one(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 1852665601 AND granted = $1",
            &[&granted],
        )
        .map(|r| r.get(0))
        .unwrap_or(-1)
}

/// The backend pid of the session that holds the ownership lock of the mutex `name`.
pub fn owner_backend(admin: &mut postgres::Client, name: &str) -> Option<i32> {
    admin
        .query_opt(
            "SELECT l.pid FROM pg_locks l JOIN namedmutex.mutex m ON l.objid = m.id::oid
             WHERE l.locktype = 'advisory' AND l.classid = 1852665601 AND l.granted
               AND m.name = $1",
            &[&name],
        )
        .ok()
        .flatten()
        .map(|r| r.get(0))
}

/// The number of sessions whose `application_name` is `app`, as the server sees them: all of
/// them, or (`blocked_in` a namedmutex function's name) those blocked on a lock inside that
/// function's statement. -1 when the query fails (a test waiting for a count goes on
/// waiting, and its watchdog names what it waited for).
pub fn sessions_of(admin: &mut postgres::Client, app: &str, blocked_in: Option<&str>) -> i64 {
    let counted = match blocked_in {
        None => admin.query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        ),
        Some(function) => admin.query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1
               AND wait_event_type = 'Lock' AND query LIKE $2",
            &[&app, &format!("%namedmutex.{function}(%")],
        ),
    };
    counted.map(|r| r.get(0)).unwrap_or(-1)
}
