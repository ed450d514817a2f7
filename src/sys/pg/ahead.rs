//! The owning session of a process's first acquisition, connected ahead of need.
//!
//! A process's first acquisition on a server needs two connections: the handle session
//! (open or create, `handles.rs`) and the session that owns the lock (`session.rs`). Made one
//! after the other, their round trips add up: far from the server, most of what a command
//! such as `namedmutex run NAME -- true` waits for. So when a process first opens (or
//! creates) a mutex on a server, the owning session is connected at the same time as the
//! handle session, on a thread of its own, and the first thread that needs a session (its own, or one for a process-owned
//! acquisition) takes it, waiting for it if it is not made yet, instead of connecting. A
//! process that opens but never acquires pays one connection more; it is ended at exit
//! (`at_exit.rs`) like the others. Looking without opening (list, info, prune) connects
//! nothing ahead.
//!
//! Not on Windows (see [`start`]). Only the first open of a process on a server does this: later owning sessions (other
//! threads', or after a server restart) connect when they are needed. A forked child never
//! takes its parent's (the thread that connects it does not exist there).

use super::server::Server;
use super::session::Session;
use crate::sys::contract::Result;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// A session being connected (or made, and not taken yet).
struct Ahead {
    key: Arc<str>,
    pid: u32,
    connecting: JoinHandle<Result<Session>>,
}

/// What was started and not taken yet, and the servers this process has started one for.
struct State {
    pending: Vec<Ahead>,
    started: HashSet<Arc<str>>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

fn state() -> MutexGuard<'static, Option<State>> {
    STATE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts connecting an owning session to `server`, once per process and server: the
/// process opens a mutex there.
pub(super) fn start(server: &Server) {
    // Not on Windows: with it on, one CI run of the behavioural suite on PostgreSQL under
    // Wine stalled (multi::stress_mixed_waits_with_owner_kills, no progress for 20 s) where
    // two had passed, and why is not known yet.
    if cfg!(windows) {
        return;
    }
    let mut guard = state();
    let state = guard.get_or_insert_with(|| State {
        pending: Vec::new(),
        started: HashSet::new(),
    });
    if !state.started.insert(server.key.clone()) {
        return;
    }
    let for_it = server.clone();
    // Without a thread, the first acquisition connects as it would have.
    if let Ok(connecting) = std::thread::Builder::new()
        .name("namedmutex-pg-ahead".into())
        .spawn(move || Session::connect(&for_it))
    {
        super::at_exit::end_sessions_at_exit();
        state.pending.push(Ahead {
            key: server.key.clone(),
            pid: std::process::id(),
            connecting,
        });
    }
}

/// The session connected ahead to `server`, for the calling thread, if one was started and
/// not taken (waiting for its connection to finish); `None` if there is none, or it failed
/// (the caller connects, and meets the failure itself).
pub(super) fn take(server: &Server) -> Option<Session> {
    let ahead = {
        let mut guard = state();
        let pending = &mut guard.as_mut()?.pending;
        let at = pending
            .iter()
            .position(|a| a.key == server.key && a.pid == std::process::id())?;
        pending.swap_remove(at)
    };
    match ahead.connecting.join() {
        Ok(Ok(session)) if session.usable() => Some(session.adopted()),
        _ => None,
    }
}

/// Takes what was connected ahead and not taken, to end it (at this process's exit:
/// `at_exit.rs`); each is joined where it is dropped. A forked child's are the parent's:
/// forgotten.
pub(super) fn take_all() -> Vec<Box<dyn Send>> {
    let Ok(mut guard) = STATE.try_lock() else {
        return Vec::new();
    };
    let Some(state) = guard.as_mut() else {
        return Vec::new();
    };
    let mine = std::process::id();
    let mut ending: Vec<Box<dyn Send>> = Vec::new();
    for ahead in state.pending.drain(..) {
        if ahead.pid == mine {
            ending.push(Box::new(Ending(Some(ahead.connecting))));
        } else {
            std::mem::forget(ahead.connecting);
        }
    }
    ending
}

/// A session still being connected at exit: dropped, it waits for the connection and ends
/// it.
struct Ending(Option<JoinHandle<Result<Session>>>);

impl Drop for Ending {
    fn drop(&mut self) {
        if let Some(connecting) = self.0.take() {
            drop(connecting.join());
        }
    }
}
