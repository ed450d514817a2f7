//! The handle session of this process (one per server): every open handle is one shared
//! advisory lock on (1852665602, id) in it, so an object exists exactly while some process
//! holds a handle, and a crashed process's handles go with its connection. Creating and
//! opening run here too, serialized by the row lock of the name (functions.sql `open_handle`).

use super::server::Server;
use super::sql_error::sql_error;
use crate::sys::contract::{Error, ErrorKind, Result};
use postgres::types::{ToSql, Type};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A process's connection for handles.
struct HandleSession {
    client: postgres::Client,
    pid: u32,
    /// The revision of the server's functions (`schema.rs`): from
    /// [`OPEN_FINISHES`](super::schema::OPEN_FINISHES), a create finishes in `open_handle`.
    revision: i32,
    /// The objects this process holds handles to: (global, name) → (id, handles). The
    /// server cannot tell this session's handles from nobody's (a session's own locks never
    /// conflict with each other), so whether an object exists is known here first.
    open: HashMap<(bool, String), (i32, u32)>,
}

/// The number of handles this process holds to `id` goes up (`up`) or down by one.
fn count(session: &mut HandleSession, id: i32, up: bool) {
    let key = session
        .open
        .iter()
        .find(|(_, (i, _))| *i == id)
        .map(|(k, _)| k.clone());
    if let Some(key) = key {
        if let Some(entry) = session.open.get_mut(&key) {
            if up {
                entry.1 += 1;
            } else {
                entry.1 -= 1;
                if entry.1 == 0 {
                    session.open.remove(&key);
                }
            }
        }
    }
}

/// The handle sessions of this process, by server key.
static SESSIONS: Mutex<Option<HashMap<Arc<str>, HandleSession>>> = Mutex::new(None);

/// Runs `f` on this process's handle session to `server`, connecting first if needed.
/// When `f` fails because the session turned out to be closed (the server restarted), it
/// runs once more on a new session that holds the same handles.
fn with_handles<T: Send>(
    server: &Server,
    mut f: impl FnMut(&mut HandleSession) -> Result<T> + Send,
) -> Result<T> {
    super::off_runtime(|| {
        let mut all = SESSIONS.lock().unwrap_or_else(|p| p.into_inner());
        let all = all.get_or_insert_with(HashMap::new);
        let session = session_for(all, server)?;
        match f(session) {
            Err(_) if session.client.is_closed() => f(session_for(all, server)?),
            result => result,
        }
    })
}

/// This process's live handle session to `server`, made (or made again) if needed.
fn session_for<'a>(
    all: &'a mut HashMap<Arc<str>, HandleSession>,
    server: &Server,
) -> Result<&'a mut HandleSession> {
    let stale = all
        .get(&server.key)
        .is_none_or(|s| s.pid != std::process::id() || s.client.is_closed());
    if stale {
        super::at_exit::end_sessions_at_exit();
        let (mut client, revision, _) = super::schema::connect_checked(server, "")?;
        // The handles this process had through a session that ended (a server restart)
        // are taken again, so the objects go on existing as long as the handles do.
        let mut open = HashMap::new();
        if let Some(old) = all.get(&server.key).filter(|o| o.pid == std::process::id()) {
            for &(id, count) in old.open.values() {
                for _ in 0..count {
                    client
                        .execute_typed("SELECT namedmutex.dup_handle($1)", &[(&id, Type::INT4)])
                        .map_err(|e| sql_error(&server.key, "taking the handles again", e))?;
                }
            }
            open = old.open.clone();
        }
        if let Some(old) = all.insert(
            server.key.clone(),
            HandleSession {
                client,
                pid: std::process::id(),
                revision,
                open,
            },
        ) {
            if old.pid != std::process::id() {
                // A forked child: the parent's connection is not ours to close.
                std::mem::forget(old);
            }
        }
    }
    Ok(all.get_mut(&server.key).expect("inserted above"))
}

/// Takes this process's handle sessions out, to end them (at its exit: `at_exit.rs`),
/// unless another thread is using them; a forked child's inherited ones stay (they are the
/// parent's, not to be ended here).
pub(super) fn take_all() -> Vec<Box<dyn Send>> {
    let Ok(mut all) = SESSIONS.try_lock() else {
        return Vec::new();
    };
    let sessions = all.take().into_iter().flat_map(HashMap::into_values);
    super::at_exit::this_process(sessions.map(|s| (s.pid, s.client)))
}

/// How [`open`] opens.
#[derive(Clone, Copy)]
pub(crate) struct How {
    /// Create the object if it does not exist.
    pub create: bool,
    /// A new `Global\` object is open to every role.
    pub everyone: bool,
    /// A new object keeps the claim of an owner that died (`MutexOptions::keep_abandoned`).
    pub keep_abandoned: bool,
    /// The creator takes the new object first (`created` does something): then creating
    /// and finishing are two statements, with the initial acquisition between them.
    pub initial_owner: bool,
}

/// Opens (or with `create`, creates) `name` in `Global\` or the caller's `Local\`: the id,
/// and whether the object existed. When this call creates it, `created(id)` runs before
/// anyone else (in this process or another) can open it: that is where the initial owner
/// takes it.
pub(crate) fn open(
    server: &Server,
    global: bool,
    name: &str,
    how: How,
    busy_timeout: Option<Duration>,
    created: &(dyn Fn(i32) -> Result<()> + Sync),
) -> Result<(i32, bool)> {
    let How {
        create,
        everyone,
        keep_abandoned,
        initial_owner,
    } = how;
    // The process's first open there: the session of its first acquisition connects
    // meanwhile (`ahead.rs`; once per process and server).
    super::ahead::start(server);
    let started = Instant::now();
    let mut pause = Duration::from_micros(200);
    let key = (global, name.to_owned());
    loop {
        let what = "opening a mutex";
        // The whole step runs under the process's lock of its handle sessions, so no thread
        // of this process opens the object between its creation and `created`.
        let outcome = with_handles(server, |h| {
            if let Some(&(id, _)) = h.open.get(&key) {
                // This process holds a handle already: it exists; one more is taken.
                h.client
                    .execute_typed("SELECT namedmutex.dup_handle($1)", &[(&id, Type::INT4)])
                    .map_err(|e| sql_error(&server.key, what, e))?;
                count(h, id, true);
                return Ok(Some((id, true)));
            }
            // Finished by the server in the same statement, where it can be.
            let finish = create && !initial_owner && h.revision >= super::schema::OPEN_FINISHES;
            let params = [
                (&global as &(dyn ToSql + Sync), Type::BOOL),
                (&name, Type::TEXT),
                (&create, Type::BOOL),
                (&everyone, Type::BOOL),
                (&keep_abandoned, Type::BOOL),
                (&finish, Type::BOOL),
            ];
            let row = if finish {
                h.client.query_typed_one(
                    "SELECT status, id FROM namedmutex.open_handle($1, $2, $3, $4, $5, $6)",
                    &params,
                )
            } else {
                h.client.query_typed_one(
                    "SELECT status, id FROM namedmutex.open_handle($1, $2, $3, $4, $5)",
                    &params[..5],
                )
            }
            .map_err(|e| sql_error(&server.key, what, e))?;
            let status: String = row.get(0);
            match (status.as_str(), row.get::<_, Option<i32>>(1)) {
                ("opened", Some(id)) => {
                    h.open.insert(key.clone(), (id, 1));
                    Ok(Some((id, true)))
                }
                ("created", Some(id)) if finish => {
                    h.open.insert(key.clone(), (id, 1));
                    Ok(Some((id, false)))
                }
                ("created", Some(id)) => {
                    let first = created(id);
                    // Whatever `created` did, the handle becomes an ordinary one.
                    h.client
                        .execute_typed("SELECT namedmutex.finish_create($1)", &[(&id, Type::INT4)])
                        .map_err(|e| sql_error(&server.key, "creating a mutex", e))?;
                    h.open.insert(key.clone(), (id, 1));
                    if let Err(e) = first {
                        let _ = h.client.execute_typed(
                            "SELECT namedmutex.close_handle($1)",
                            &[(&id, Type::INT4)],
                        );
                        count(h, id, false);
                        return Err(e);
                    }
                    Ok(Some((id, false)))
                }
                ("missing", _) => Err(Error::new(
                    ErrorKind::NotFound,
                    format!(
                        "no mutex named {:?} exists on PostgreSQL at {}",
                        crate::sys::contract::shorten(name),
                        server.key
                    ),
                )),
                ("busy", _) => Ok(None),
                (other, _) => Err(Error::new(
                    ErrorKind::Corrupt,
                    format!("namedmutex.open_handle answered {other:?}"),
                )),
            }
        })?;
        if let Some(opened) = outcome {
            return Ok(opened);
        }
        // Another process is creating it right now (it holds the handle lock exclusively).
        if busy_timeout.is_some_and(|limit| started.elapsed() >= limit) {
            return Err(Error::new(
                ErrorKind::Busy,
                format!(
                    "the mutex {:?} stayed in creation by another process for {:?}",
                    crate::sys::contract::shorten(name),
                    started.elapsed()
                ),
            ));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// One more handle to `id` (which this process holds a handle to).
pub(crate) fn duplicate(server: &Server, id: i32) -> Result<()> {
    with_handles(server, |h| {
        h.client
            .execute_typed("SELECT namedmutex.dup_handle($1)", &[(&id, Type::INT4)])
            .map_err(|e| sql_error(&server.key, "duplicating a handle", e))?;
        count(h, id, true);
        Ok(())
    })
    .map(drop)
}

/// Closes one handle to `id`. A lost connection already closed it.
pub(crate) fn close(server: &Server, id: i32) {
    super::off_runtime(|| close_here(server, id))
}

fn close_here(server: &Server, id: i32) {
    let mut all = SESSIONS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(session) = all.as_mut().and_then(|a| a.get_mut(&server.key)) {
        if session.pid == std::process::id() {
            if !session.client.is_closed() {
                let _ = session
                    .client
                    .execute_typed("SELECT namedmutex.close_handle($1)", &[(&id, Type::INT4)]);
            }
            // (A closed session's locks are gone already; it is not taken again for this one.)
            count(session, id, false);
        }
    }
}

/// Runs a query on the handle session (inspection and pruning, which hold nothing),
/// unprepared, its parameters' types given: one round trip.
pub(crate) fn query(
    server: &Server,
    sql: &str,
    params: &[(&(dyn ToSql + Sync), Type)],
    what: &str,
) -> Result<Vec<postgres::Row>> {
    with_handles(server, |h| {
        h.client
            .query_typed(sql, params)
            .map_err(|e| sql_error(&server.key, what, e))
    })
}
