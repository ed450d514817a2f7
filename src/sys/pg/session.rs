//! A server session that owns mutexes: one per thread and server (ownership belongs to a
//! thread, and a session-level advisory lock belongs to a session), made on first use and
//! closed when the thread ends, so that the server releases what the thread held and the
//! next owner reads the claim left standing as an abandonment. Process-owned acquisitions
//! (the async API) use sessions of their own from a small pool.

use super::server::Server;
use super::sql_error::{Failure, classify, sql_error};
use crate::sys::contract::WaitStatus;
use crate::sys::contract::{Error, ErrorKind, Result};
use postgres::types::{ToSql, Type};
use postgres::{Row, Statement};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The most a thread may own one mutex recursively (Win32's MINLONG limit).
const RECURSION_LIMIT: u32 = 0x7FFF_FFFF;

/// One acquisition this session holds: the recursion count and the fencing token.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Held {
    pub count: u32,
    pub token: u64,
}

/// The statements of an owning session (how each is run: [`Statements`]).
#[derive(Clone, Copy)]
enum Stmt {
    TryAcquire,
    Wait,
    Granted,
    Claim,
    Release,
    TryAcquireAll,
    StillOwned,
}

impl Stmt {
    const COUNT: usize = 7;

    /// Its text; `wait_answers`: the functions have `wait_granted` (revision 5), which
    /// answers whether the lock was granted (and a timeout, and from revision 6 a cancel,
    /// without an error), else `wait` fails on a timeout.
    fn sql(self, wait_answers: bool) -> &'static str {
        match self {
            Stmt::TryAcquire => {
                "SELECT got, abandoned, token FROM namedmutex.try_acquire($1, $2::text::uuid, $3, $4, $5)"
            }
            Stmt::Wait if wait_answers => "SELECT namedmutex.wait_granted($1, $2)",
            Stmt::Wait => "SELECT namedmutex.wait($1, $2)",
            Stmt::Granted => "SELECT namedmutex.granted($1)",
            Stmt::Claim => {
                "SELECT abandoned, token FROM namedmutex.claim($1, $2::text::uuid, $3, $4, $5)"
            }
            Stmt::Release => "SELECT namedmutex.release($1, $2::text::uuid, $3)",
            Stmt::TryAcquireAll => {
                "SELECT abandoned, token FROM namedmutex.try_acquire_all($1, $2::text::uuid, $3, $4, $5)"
            }
            Stmt::StillOwned => "SELECT namedmutex.still_owned($1, $2::text::uuid)",
        }
    }

    /// The types of its parameters, for its first use, which runs it unprepared.
    fn types(self) -> &'static [Type] {
        const OWNER: &[Type] = &[Type::INT4, Type::TEXT, Type::TEXT, Type::INT4, Type::INT4];
        match self {
            Stmt::TryAcquire | Stmt::Claim => OWNER,
            Stmt::Wait => &[Type::INT4, Type::INT4],
            Stmt::Granted => &[Type::INT4],
            Stmt::Release => &[Type::INT4, Type::TEXT, Type::TEXT],
            Stmt::TryAcquireAll => &[
                Type::INT4_ARRAY,
                Type::TEXT,
                Type::TEXT,
                Type::INT4,
                Type::INT4,
            ],
            Stmt::StillOwned => &[Type::INT4, Type::TEXT],
        }
    }
}

/// How a session runs its statements: the first use of each unprepared, in one round
/// trip with the parameters' types given, as a session that takes and gives back once (a
/// command's run) is best served; the second prepares it (one round trip more, once), and
/// every later one runs the prepared statement, which the server need not plan again.
struct Statements {
    prepared: [Option<Statement>; Stmt::COUNT],
    used: [bool; Stmt::COUNT],
    /// See [`Stmt::sql`].
    wait_answers: bool,
}

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

impl Statements {
    /// Runs `which`, which answers exactly one row. An error is the server's or the
    /// connection's, as with any statement: callers read both the same way (a lost
    /// session is a lost session, whichever message met it).
    fn one(
        &mut self,
        client: &mut postgres::Client,
        which: Stmt,
        params: Params<'_>,
    ) -> std::result::Result<Row, postgres::Error> {
        match self.prepared(client, which)? {
            Some(st) => client.query_one(&st, params),
            None => client.query_typed_one(which.sql(self.wait_answers), &typed(which, params)),
        }
    }

    /// Runs `which`: its rows.
    fn all(
        &mut self,
        client: &mut postgres::Client,
        which: Stmt,
        params: Params<'_>,
    ) -> std::result::Result<Vec<Row>, postgres::Error> {
        match self.prepared(client, which)? {
            Some(st) => client.query(&st, params),
            None => client.query_typed(which.sql(self.wait_answers), &typed(which, params)),
        }
    }

    /// `which` prepared, or `None` the first time (run it unprepared).
    fn prepared(
        &mut self,
        client: &mut postgres::Client,
        which: Stmt,
    ) -> std::result::Result<Option<Statement>, postgres::Error> {
        let at = which as usize;
        if !std::mem::replace(&mut self.used[at], true) {
            return Ok(None);
        }
        if self.prepared[at].is_none() {
            self.prepared[at] = Some(client.prepare(which.sql(self.wait_answers))?);
        }
        Ok(self.prepared[at].clone())
    }
}

/// `params` paired with the types of `which`'s parameters.
fn typed<'a>(which: Stmt, params: Params<'a>) -> Vec<(&'a (dyn ToSql + Sync), Type)> {
    params
        .iter()
        .copied()
        .zip(which.types().iter().cloned())
        .collect()
}

/// An owning session: a connection, its random owner id, and what it holds.
pub(crate) struct Session {
    pub server: Server,
    client: postgres::Client,
    statements: Statements,
    /// The random id of this session in claims; never reused, so a reused pid or a
    /// reconnected session cannot pass for an earlier owner.
    me: String,
    /// The process that made the connection (a forked child makes its own).
    pid: u32,
    /// Who claims through this session, for `list` and abandonment reports: host, process
    /// and thread (the thread that made it; a process-owned acquisition has none of its own).
    holder: (String, i32, i32),
    pub held: HashMap<i32, Held>,
    /// What this thread held through a session that ended: released since by the server,
    /// so a release reports the ownership lost.
    lost: HashSet<i32>,
    /// A cancel request was sent at this session's backend during a wait. The server may
    /// act on it after the wait statement has returned, so the session sends nothing more
    /// (`acquire` gives the acquisition up) and is closed rather than kept for reuse.
    cancel_sent: bool,
}

/// How a wait is cancelled from another thread (a dropped async wait): a flag read between
/// slices, and a cancel request that reaches the session's backend inside a wait statement
/// only (`cancel.rs`: `wait_granted` answers a cancel that reaches its lock wait; one that
/// reached another statement would fail it, and the server would log an ERROR).
/// The provided methods are those of a wait nothing cancels ([`Uncancellable`]).
pub(crate) trait WaitControl {
    /// Whether the wait is to stop.
    fn cancelled(&self) -> bool {
        false
    }
    /// A wait statement is about to be sent: from now a cancel may be sent at the session.
    /// False if the wait is already cancelled (then no statement is sent).
    fn begin_wait(&self) -> bool {
        true
    }
    /// The wait statement has returned: no cancel may be sent at the session any more.
    fn end_wait(&self) {}
    /// Whether a cancel request was sent at the session during this acquisition.
    fn request_sent(&self) -> bool {
        false
    }
}

/// A wait nothing cancels (a thread's own, which blocks that thread).
pub(crate) struct Uncancellable;

impl WaitControl for Uncancellable {}

/// What a claim told: whether the last owner died holding it, and the new fencing token.
pub(crate) struct Claimed {
    pub abandoned: bool,
    pub token: u64,
}

impl Claimed {
    /// The claim's answers in `row`, from column `at` on: abandoned, then the token.
    fn from_row(row: &postgres::Row, at: usize) -> Claimed {
        Claimed {
            abandoned: row.get(at),
            token: row.get::<_, i64>(at + 1) as u64,
        }
    }

    fn status(&self) -> WaitStatus {
        if self.abandoned {
            WaitStatus::Abandoned
        } else {
            WaitStatus::Acquired
        }
    }
}

/// A session's start, in one round trip: fencing tokens beyond any a crash may have lost
/// (functions.sql, fencing_gap), this session's random id, and whether the functions have
/// wait_granted; the statements run in one implicit transaction. Functions of an older
/// revision stay where the role may not replace them (schema.rs), so what they may lack is
/// looked up, not called: without fencing_gap, claims made with synchronous_commit off may
/// repeat a token after a server crash. Nothing is written on a read-only server (a standby
/// the connection's check then passes over: `Server::connect_and`).
const START: &str = "DO $$ BEGIN \
         IF current_setting('transaction_read_only') = 'off' \
            AND to_regprocedure('namedmutex.fencing_gap()') IS NOT NULL THEN \
             PERFORM namedmutex.fencing_gap(); \
         END IF; \
     END $$; \
     SELECT gen_random_uuid()::text, \
            to_regprocedure('namedmutex.wait_granted(int, int)') IS NOT NULL";

impl Session {
    /// A new connection to `server`, its schema checked.
    pub fn connect(server: &Server) -> Result<Session> {
        let key = &server.key;
        // The session's start runs in the round trip of the connection's check (again,
        // once the schema is installed or upgraded, if the check found it otherwise).
        let (mut client, _, started) = super::schema::connect_checked(server, START)?;
        let started = match started {
            Some(started) => started,
            None => client.simple_query(START),
        }
        .map_err(|e| sql_error(key, "starting a session", e))?;
        let (me, wait_answers) = started
            .iter()
            .find_map(|m| match m {
                postgres::SimpleQueryMessage::Row(row) => {
                    Some((row.get(0).map(str::to_owned), row.get(1) == Some("t")))
                }
                _ => None,
            })
            .and_then(|(me, wait_answers)| Some((me?, wait_answers)))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Corrupt,
                    format!("PostgreSQL at {key} answered no session id"),
                )
            })?;
        let statements = Statements {
            prepared: Default::default(),
            used: [false; Stmt::COUNT],
            wait_answers,
        };
        Ok(Session {
            server: server.clone(),
            client,
            statements,
            me,
            pid: std::process::id(),
            holder: (
                super::host_name(),
                std::process::id() as i32,
                super::thread_number() as i32,
            ),
            held: HashMap::new(),
            lost: HashSet::new(),
            cancel_sent: false,
        })
    }

    /// Whether this session can still be used by this process.
    pub(super) fn usable(&self) -> bool {
        self.pid == std::process::id() && !self.client.is_closed() && !self.cancel_sent
    }

    /// This session, made on another thread (`ahead.rs`), as the calling thread's: the thread
    /// its claims name.
    pub(super) fn adopted(mut self) -> Session {
        self.holder.2 = super::thread_number() as i32;
        self
    }

    /// Records a new acquisition of `id`.
    fn record(&mut self, id: i32, claimed: &Claimed) -> WaitStatus {
        self.lost.remove(&id);
        self.held.insert(
            id,
            Held {
                count: 1,
                token: claimed.token,
            },
        );
        claimed.status()
    }

    /// Adds one to the count of `id` if this session holds it.
    pub fn recurse(&mut self, id: i32) -> Option<Result<WaitStatus>> {
        let held = self.held.get_mut(&id)?;
        if held.count >= RECURSION_LIMIT {
            return Some(Err(Error::new(
                ErrorKind::RecursionLimit,
                "the calling thread already owns this mutex 0x7FFFFFFF times",
            )));
        }
        held.count += 1;
        Some(Ok(WaitStatus::Acquired))
    }

    /// Takes `id` if it is free.
    pub fn try_acquire(&mut self, id: i32) -> Result<Option<WaitStatus>> {
        let (host, pid, tid) = &self.holder;
        let row = self
            .statements
            .one(
                &mut self.client,
                Stmt::TryAcquire,
                &[&id, &self.me, host, pid, tid],
            )
            .map_err(|e| sql_error(&self.server.key, "acquiring a mutex", e))?;
        if !row.get::<_, bool>(0) {
            return Ok(None);
        }
        Ok(Some(self.record(id, &Claimed::from_row(&row, 1))))
    }

    /// Waits for `id` until `deadline` (`None`: forever), or until `control` cancels it:
    /// checked between slices of at most `slice`, and told when a wait statement runs.
    /// `Ok(None)`: timed out (or cancelled).
    pub fn acquire(
        &mut self,
        id: i32,
        deadline: Option<Instant>,
        slice: Option<Duration>,
        control: &dyn WaitControl,
    ) -> Result<Option<WaitStatus>> {
        if let Some(status) = self.try_acquire(id)? {
            return Ok(Some(status));
        }
        loop {
            if control.cancelled() {
                return Ok(None);
            }
            let now = Instant::now();
            let mut left = match deadline {
                Some(d) if d <= now => return Ok(None),
                Some(d) => Some(d - now),
                None => None,
            };
            if let Some(s) = slice {
                left = Some(left.map_or(s, |l| l.min(s)));
            }
            // lock_timeout in whole milliseconds, never 0 (which would mean forever); the
            // server's timer follows the wall clock, so the monotonic deadline is ours.
            let ms: i32 = left.map_or(0, |l| l.as_millis().clamp(1, i32::MAX as u128 - 1) as i32);
            if !control.begin_wait() {
                return Ok(None);
            }
            let waited = self
                .statements
                .one(&mut self.client, Stmt::Wait, &[&id, &ms]);
            control.end_wait();
            if control.request_sent() {
                // A cancel request went out during the wait. The server acts on it when it
                // reads it, which may be after `cancel_query` returned, so it could still
                // fail the next statement, the claim or a look at the grant (an ERROR in
                // the server's log: a claim's was seen once in 5 runs of the behavioural
                // suite). The request goes only for a dropped wait, so nobody wants this
                // acquisition: nothing more is sent, and the session is given up, which
                // frees the lock if the wait got it. The claim row stays as it was, so a
                // dead owner's abandonment is left for the next acquirer instead of a
                // dropped wait.
                self.cancel_sent = true;
                return Ok(None);
            }
            match waited {
                // wait_granted answers a timeout itself (false: not granted; look again).
                Ok(row) if self.statements.wait_answers && !row.get::<_, bool>(0) => {}
                Ok(_) => break,
                Err(e) => match classify(&self.server.key, "waiting for a mutex", e) {
                    // The grant may have raced the timeout: then the lock is ours.
                    Failure::LockTimeout | Failure::Cancelled => {
                        if self.granted(id)? {
                            break;
                        }
                    }
                    // Win32 would wait on: so do we, in the queue again.
                    Failure::Deadlock => {}
                    Failure::SessionLost(err) | Failure::Other(err) => return Err(err),
                },
            }
        }
        let claimed = self.claim(id)?;
        Ok(Some(self.record(id, &claimed)))
    }

    fn granted(&mut self, id: i32) -> Result<bool> {
        Ok(self
            .statements
            .one(&mut self.client, Stmt::Granted, &[&id])
            .map_err(|e| sql_error(&self.server.key, "checking a grant", e))?
            .get(0))
    }

    fn claim(&mut self, id: i32) -> Result<Claimed> {
        let (host, pid, tid) = &self.holder;
        let row = self
            .statements
            .one(
                &mut self.client,
                Stmt::Claim,
                &[&id, &self.me, host, pid, tid],
            )
            .map_err(|e| sql_error(&self.server.key, "claiming a mutex", e))?;
        Ok(Claimed::from_row(&row, 0))
    }

    /// Takes every mutex of `ids` if all are free (none otherwise): the index of the first
    /// abandoned one, if any.
    pub fn try_acquire_all(&mut self, ids: &[i32]) -> Result<Option<Option<usize>>> {
        let (host, pid, tid) = &self.holder;
        let rows = self
            .statements
            .all(
                &mut self.client,
                Stmt::TryAcquireAll,
                &[&ids, &self.me, host, pid, tid],
            )
            .map_err(|e| sql_error(&self.server.key, "acquiring mutexes", e))?;
        if rows.len() != ids.len() {
            return Ok(None);
        }
        let mut first_abandoned = None;
        for (i, (row, &id)) in rows.iter().zip(ids).enumerate() {
            let claimed = Claimed::from_row(row, 0);
            if claimed.abandoned && first_abandoned.is_none() {
                first_abandoned = Some(i);
            }
            self.record(id, &claimed);
        }
        Ok(Some(first_abandoned))
    }

    /// Releases one count of `id`; at zero, clears the claim (or leaves it standing with
    /// `note`: abandonment on purpose) and unlocks.
    pub fn release(&mut self, id: i32, note: Option<&str>) -> Result<()> {
        let Some(held) = self.held.get_mut(&id) else {
            if self.lost.remove(&id) {
                return Err(lost(
                    &self.server.key,
                    "its session ended (server restart, pg_terminate_backend or a lost network), and the server released the lock then",
                ));
            }
            return Err(not_owner());
        };
        if held.count > 1 && note.is_none() {
            held.count -= 1;
            return Ok(());
        }
        self.held.remove(&id);
        let outcome = self
            .statements
            .one(&mut self.client, Stmt::Release, &[&id, &self.me, &note]);
        match outcome {
            Ok(row) => match row.get::<_, i32>(0) {
                0 => Ok(()),
                _ => Err(lost(
                    &self.server.key,
                    "its claim was taken over: the server ended this session's ownership earlier",
                )),
            },
            Err(e) if e.code().is_some_and(|c| c.code() == "NMX02") => Err(Error::new(
                ErrorKind::OwnershipLost,
                format!(
                    "released a mutex on PostgreSQL at {} whose lock this session did not hold: the session was reset, or the connection goes through a transaction pooler (such as PgBouncer in transaction mode), which namedmutex cannot work through",
                    self.server.key
                ),
            )),
            Err(e) => match classify(&self.server.key, "releasing a mutex", e) {
                Failure::SessionLost(_) => Err(lost(
                    &self.server.key,
                    "the session ended (server restart, pg_terminate_backend or a lost network), and the server released the lock then",
                )),
                Failure::Other(err) => Err(err),
                _ => Err(Error::new(
                    ErrorKind::Io,
                    format!("PostgreSQL at {}: releasing failed", self.server.key),
                )),
            },
        }
    }

    /// Whether this session still owns `id` on the server.
    pub fn still_owned(&mut self, id: i32) -> Result<bool> {
        if !self.held.contains_key(&id) {
            return Ok(false);
        }
        let owned = self
            .statements
            .one(&mut self.client, Stmt::StillOwned, &[&id, &self.me]);
        match owned {
            Ok(row) => Ok(row.get(0)),
            Err(e) => match classify(&self.server.key, "checking ownership", e) {
                Failure::SessionLost(_) => Ok(false),
                Failure::Other(err) => Err(err),
                _ => Ok(false),
            },
        }
    }

    /// Starts (`on`) or ends watching `ids` for releases (multi-object waits).
    pub fn watch(&mut self, ids: &[i32], on: bool) -> Result<()> {
        self.client
            .execute_typed(
                "SELECT namedmutex.watch($1, $2)",
                &[(&ids, Type::INT4_ARRAY), (&on, Type::BOOL)],
            )
            .map(drop)
            .map_err(|e| sql_error(&self.server.key, "watching mutexes", e))
    }

    /// Waits up to `limit` for a release of a watched mutex.
    pub fn await_release(&mut self, limit: Duration) {
        use postgres::fallible_iterator::FallibleIterator;
        let mut notes = self.client.notifications();
        let mut woke = false;
        // Everything already here counts; then one wait.
        while matches!(notes.iter().next(), Ok(Some(_))) {
            woke = true;
        }
        if !woke {
            // A notification, a timeout and a lost connection all end the wait alike: the
            // caller tries again either way.
            let _ = notes.timeout_iter(limit).next();
        }
    }

    /// The fencing token of this session's acquisition of `id`.
    pub fn token(&self, id: i32) -> Option<u64> {
        self.held.get(&id).map(|h| h.token)
    }

    /// A token that cancels this session's running statement from another thread.
    pub fn cancel_token(&self) -> postgres::CancelToken {
        self.client.cancel_token()
    }
}

pub(crate) fn not_owner() -> Error {
    Error::new(
        ErrorKind::NotOwner,
        "the calling thread does not own this mutex",
    )
}

fn lost(server: &str, why: &str) -> Error {
    Error::new(
        ErrorKind::OwnershipLost,
        format!("this thread no longer owned the mutex on PostgreSQL at {server}: {why}"),
    )
}

/// The sessions of this thread, by server key. A session that died (or a forked child's
/// inherited one) is replaced on next use; what it held is reported lost then.
struct ThreadSessions(HashMap<std::sync::Arc<str>, Session>);

impl Drop for ThreadSessions {
    /// The thread is ending: what it owns is abandoned and its sessions close. The client
    /// cannot be used here (closing it runs its runtime, whose own thread-locals may already
    /// be gone), so the closer thread does both; the ending thread waits for that when it
    /// owned something, so that whoever joins it finds the mutex abandoned, as on Windows.
    fn drop(&mut self) {
        for (_, session) in self.0.drain() {
            let owned = !session.held.is_empty();
            let done = Arc::new(AtomicBool::new(false));
            if close_elsewhere(session, done.clone()) && owned {
                let started = Instant::now();
                while !done.load(Ordering::Acquire) && started.elapsed() < CLOSE_WAIT {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        }
    }
}

/// How long an ending thread waits for the closer to abandon what it owned.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// What the closer thread is asked to do.
enum Closing {
    /// Close a session, and set the flag when it is closed.
    Close(Box<Session>, Arc<AtomicBool>),
    /// Answer once everything asked before is done (the process is exiting).
    Flush(std::sync::mpsc::Sender<()>),
}

/// The closer thread's inbox (started with the first session of any thread).
static CLOSER: Mutex<Option<std::sync::mpsc::Sender<Closing>>> = Mutex::new(None);

/// Starts the closer thread if it is not running.
fn start_closer() -> Result<()> {
    let mut closer = CLOSER.lock().unwrap_or_else(|p| p.into_inner());
    if closer.is_none() {
        let (tx, rx) = std::sync::mpsc::channel::<Closing>();
        std::thread::Builder::new()
            .name("namedmutex-pg-closer".into())
            .spawn(move || {
                for job in rx {
                    let (mut session, done) = match job {
                        Closing::Close(session, done) => (*session, done),
                        Closing::Flush(answer) => {
                            let _ = answer.send(());
                            continue;
                        }
                    };
                    // Abandoned explicitly rather than by the session's end: the next owner
                    // learns it now, not when the server notices the closed socket.
                    let ids: Vec<i32> = session.held.keys().copied().collect();
                    for id in ids {
                        if session.usable() {
                            let _ = session.release(id, Some("its owning thread ended"));
                        }
                    }
                    drop(session);
                    done.store(true, Ordering::Release);
                }
            })
            .map_err(|e| {
                Error::io(
                    ErrorKind::ResourceExhausted,
                    "cannot start the thread that closes PostgreSQL sessions",
                    e,
                )
            })?;
        *closer = Some(tx);
    }
    Ok(())
}

/// Hands `session` to the closer thread, which sets `done` when it is closed (false: there
/// is no closer, and the socket is left to close when the process exits).
fn close_elsewhere(session: Session, done: Arc<AtomicBool>) -> bool {
    let closer = CLOSER.lock().unwrap_or_else(|p| p.into_inner());
    match closer.as_ref() {
        Some(tx) => match tx.send(Closing::Close(Box::new(session), done)) {
            Ok(()) => true,
            Err(back) => {
                std::mem::forget(back.0);
                false
            }
        },
        None => {
            std::mem::forget(session);
            false
        }
    }
}

thread_local! {
    static SESSIONS: RefCell<Option<ThreadSessions>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's session to `server`, connecting first if there is none.
/// A session that held nothing and turns out to be closed (the server restarted, or ended
/// it) is replaced, and `f` runs once more on the new one.
pub(crate) fn with_thread_session<T>(
    server: &Server,
    mut f: impl FnMut(&mut Session) -> Result<T>,
) -> Result<T> {
    let (result, retry) = with_thread_session_once(server, &mut f)?;
    if retry {
        return with_thread_session_once(server, &mut f)?.0;
    }
    result
}

/// One try of [`with_thread_session`]: `f`'s result, and whether it failed only because
/// an idle session was gone.
fn with_thread_session_once<T>(
    server: &Server,
    f: &mut impl FnMut(&mut Session) -> Result<T>,
) -> Result<(Result<T>, bool)> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(Error::new(
            ErrorKind::Unsupported,
            "a PostgreSQL mutex cannot be waited for or released by a thread inside an async runtime: ownership belongs to a thread, and the task may move (use lock_async)",
        ));
    }
    let fresh = SESSIONS
        .try_with(|s| {
            s.borrow()
                .as_ref()
                .and_then(|all| all.0.get(&server.key))
                .is_none_or(|sess| !sess.usable())
        })
        .unwrap_or(true);
    let new = if fresh {
        // The closer must exist before a session can end with its thread.
        start_closer()?;
        Some(match super::ahead::take(server) {
            Some(session) => session,
            None => Session::connect(server)?,
        })
    } else {
        None
    };
    SESSIONS
        .try_with(|s| {
            let mut guard = s.borrow_mut();
            let all = guard.get_or_insert_with(|| ThreadSessions(HashMap::new()));
            if let Some(mut new) = new {
                if let Some(old) = all.0.get(&server.key) {
                    new.lost = old.held.keys().chain(&old.lost).copied().collect();
                }
                let old = all.0.insert(server.key.clone(), new);
                if let Some(old) = old {
                    if old.pid != std::process::id() {
                        // A forked child: the parent's connection is not ours to close.
                        std::mem::forget(old);
                    } else {
                        close_elsewhere(old, Arc::new(AtomicBool::new(false)));
                    }
                }
            }
            let session = all.0.get_mut(&server.key).expect("inserted above");
            let idle = session.held.is_empty();
            let result = f(session);
            let retry = result.is_err() && idle && session.client.is_closed();
            (result, retry)
        })
        .map_err(|_| {
            Error::new(
                ErrorKind::Unsupported,
                "a PostgreSQL mutex was used while its thread was ending",
            )
        })
}

/// Runs `f` with this thread's session to `server` only if one exists (for release and
/// queries about ownership, which never need a new connection).
pub(crate) fn with_existing<T>(server: &Server, f: impl FnOnce(Option<&mut Session>) -> T) -> T {
    let mut f = Some(f);
    if tokio::runtime::Handle::try_current().is_ok() {
        // Nothing can have been acquired in here (with_thread_session refuses).
        return (f.take().expect("called once"))(None);
    }
    SESSIONS
        .try_with(|s| {
            let mut guard = s.borrow_mut();
            // A forked child's inherited session is the parent's: the child owns nothing.
            let session = guard
                .as_mut()
                .and_then(|all| all.0.get_mut(&server.key))
                .filter(|s| s.pid == std::process::id());
            (f.take().expect("called once"))(session)
        })
        .unwrap_or_else(|_| (f.take().expect("called once"))(None))
}

/// Sessions for process-owned acquisitions, kept for reuse (by server key).
static SPARE: Mutex<Vec<Session>> = Mutex::new(Vec::new());

/// A session for a process-owned acquisition: a spare one, the one connected ahead
/// (`ahead.rs`), or a new connection.
pub(crate) fn detached_session(server: &Server) -> Result<Session> {
    let mut spare = SPARE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(i) = spare
        .iter()
        .position(|s| s.server.key == server.key && s.usable())
    {
        return Ok(spare.swap_remove(i));
    }
    drop(spare);
    match super::ahead::take(server) {
        Some(session) => Ok(session),
        None => Session::connect(server),
    }
}

/// Gives back a session that holds nothing.
pub(crate) fn return_session(session: Session) {
    if session.held.is_empty() && session.usable() {
        let mut spare = SPARE.lock().unwrap_or_else(|p| p.into_inner());
        if spare.len() < 8 {
            super::at_exit::end_sessions_at_exit();
            spare.push(session);
        }
    }
}

/// Waits, at most `limit`, for the closer thread to finish what it was given (at this
/// process's exit: the exiting thread's own sessions went there a moment ago).
pub(super) fn wait_for_closer(limit: Duration) {
    let Ok(closer) = CLOSER.try_lock() else {
        return;
    };
    let (answer, answered) = std::sync::mpsc::channel();
    let asked = closer
        .as_ref()
        .is_some_and(|tx| tx.send(Closing::Flush(answer)).is_ok());
    drop(closer);
    if asked {
        let _ = answered.recv_timeout(limit);
    }
}

/// Hands the calling thread's sessions to the closer thread, without waiting: at this
/// process's exit on Windows (`at_exit.rs`), where the exiting thread's thread-local
/// destructors run only after `ExitProcess` has ended every other thread, the closer among
/// them. What the thread owns is abandoned, as when a thread ends holding a mutex.
#[cfg(windows)]
pub(super) fn close_this_threads_sessions() {
    let taken = SESSIONS
        .try_with(|s| s.try_borrow_mut().ok().and_then(|mut s| s.take()))
        .ok()
        .flatten();
    for (_, session) in taken
        .into_iter()
        .flat_map(|mut all| std::mem::take(&mut all.0))
    {
        close_elsewhere(session, Arc::new(AtomicBool::new(false)));
    }
}

/// Takes the spare sessions out, to end them (at this process's exit: `at_exit.rs`),
/// unless another thread is taking one; a forked child's inherited ones stay (they are the
/// parent's, not to be ended here).
pub(super) fn take_spares() -> Vec<Box<dyn Send>> {
    let Ok(mut spare) = SPARE.try_lock() else {
        return Vec::new();
    };
    super::at_exit::this_process(spare.drain(..).map(|s| (s.pid, s)))
}

/// Against a real server: `NAMEDMUTEX_TEST_PG_URL` (tools/test-all.sh sets it). Without
/// it these tests pass doing nothing, unless `NAMEDMUTEX_REQUIRE_PG=1`.
#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> Option<Server> {
        match std::env::var("NAMEDMUTEX_TEST_PG_URL") {
            Ok(url) if !url.is_empty() => Some(Server::parse(&url).expect("the test URL")),
            _ => {
                assert!(
                    std::env::var("NAMEDMUTEX_REQUIRE_PG").is_err(),
                    "NAMEDMUTEX_REQUIRE_PG is set but NAMEDMUTEX_TEST_PG_URL is not"
                );
                None
            }
        }
    }

    /// A wait at whose session a cancel request went out: what a dropped async wait's
    /// control reports when its request was sent while the lock was being granted.
    struct RequestSent;

    impl WaitControl for RequestSent {
        fn request_sent(&self) -> bool {
            true
        }
    }

    /// A wait granted after a cancel request went out sends nothing more (the request
    /// could fail it): no claim. The session is given up and frees the lock, and the dead
    /// owner's abandonment stays for the next acquirer.
    #[test]
    fn a_wait_granted_after_a_cancel_request_is_given_up() {
        let Some(server) = server() else { return };
        let bound = Duration::from_secs(20);
        let mut waiter = Session::connect(&server).expect("connect the waiter");
        // The owner: a raw session with a handle, which claims the mutex and then dies.
        let mut owner = server.connect().expect("connect the owner");
        let name = format!(
            "session-test-{}-{}",
            std::process::id(),
            super::super::thread_number()
        );
        let id: i32 = owner
            .query_one(
                "SELECT id FROM namedmutex.open_handle(true, $1, true, false, false)",
                &[&name],
            )
            .expect("open a handle")
            .get(0);
        let got: bool = owner
            .query_one(
                "SELECT got FROM namedmutex.try_acquire($1, gen_random_uuid(), 'test', 1, 1)",
                &[&id],
            )
            .expect("the owner's acquisition")
            .get(0);
        assert!(got, "the owner did not get the free mutex");
        let mut watch = server.connect().expect("connect the watcher");
        let outcome = std::thread::scope(|scope| {
            let waiting = scope
                .spawn(|| waiter.acquire(id, Some(Instant::now() + bound), None, &RequestSent));
            // The wait is in the server's queue before the owner dies (else the waiter's
            // first try would take the mutex without a wait).
            let until = Instant::now() + bound;
            while watch
                .query_one(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
                       AND classid = 1852665601 AND objid = $1::int::oid AND NOT granted",
                    &[&id],
                )
                .expect("pg_locks")
                .get::<_, i64>(0)
                == 0
            {
                assert!(Instant::now() < until, "the waiter never waited");
                std::thread::sleep(Duration::from_millis(2));
            }
            drop(owner);
            waiting.join().expect("the waiting thread")
        });
        assert!(
            matches!(outcome, Ok(None)),
            "a wait granted after a cancel request: {outcome:?}"
        );
        assert!(!waiter.usable(), "the session is kept for reuse");
        drop(waiter);
        // The dead owner's claim stands: the next acquirer is told.
        let mut next = Session::connect(&server).expect("connect the next acquirer");
        let until = Instant::now() + bound;
        let status = loop {
            if let Some(status) = next.try_acquire(id).expect("the next acquisition") {
                break status;
            }
            // The given-up session's end frees the lock a moment after it is dropped.
            assert!(Instant::now() < until, "the lock stayed held");
            std::thread::sleep(Duration::from_millis(2));
        };
        assert_eq!(status, WaitStatus::Abandoned);
        next.release(id, None).expect("release");
    }
}
