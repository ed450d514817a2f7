//! `WaitForMultipleObjects` on one server: wait-any tries the handles in index order,
//! wait-all takes all of them in one statement or none (functions.sql `try_acquire_all`).
//! Between tries the wait listens for the releases of its mutexes (`LISTEN`; a release
//! notifies only when a multi-object wait watches it); an owner that dies sends nothing, so
//! the wait also tries again every 100 ms. A wait-all's statement looks in `pg_locks` before
//! it takes anything, as the local backends look before they take. What is weaker than
//! local: no queue order, a dead owner seen up to 100 ms late, and a wait-all that is
//! all-or-none but not atomic against other wait-alls (README, "Across machines").

use super::PgMutex;
use super::session::{Session, with_thread_session};
use crate::sys::contract::Access;
use crate::sys::contract::{Error, ErrorKind, Result};
use crate::sys::contract::{WaitAny, WaitStatus};
use std::time::{Duration, Instant};

/// The most handles one wait takes (`MAXIMUM_WAIT_OBJECTS`).
const MAXIMUM_WAIT_OBJECTS: usize = 64;

/// The longest pause between two tries (a dead owner notifies nobody).
const MAX_PAUSE: Duration = Duration::from_millis(100);

pub(super) fn wait(handles: &[&PgMutex], all: bool, timeout: Option<Duration>) -> Result<WaitAny> {
    let first = handles.first().ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidParameter,
            "a wait needs at least one handle",
        )
    })?;
    if handles.iter().any(|h| h.server.key != first.server.key) {
        return Err(Error::new(
            ErrorKind::InvalidParameter,
            "the handles of one wait must all be on the same PostgreSQL server",
        ));
    }
    for (i, h) in handles.iter().enumerate() {
        if !h.access.contains(Access::SYNCHRONIZE) {
            return Err(Error::new(
                ErrorKind::AccessDenied,
                format!(
                    "handle {i} of the wait was opened without SYNCHRONIZE access, which waiting needs"
                ),
            ));
        }
    }
    if handles.len() > MAXIMUM_WAIT_OBJECTS {
        return Err(Error::new(
            ErrorKind::InvalidParameter,
            format!(
                "a wait takes 1 to {MAXIMUM_WAIT_OBJECTS} mutexes, not {}",
                handles.len()
            ),
        ));
    }
    if all {
        for (i, h) in handles.iter().enumerate() {
            if handles[..i].iter().any(|o| o.id == h.id) {
                return Err(Error::new(
                    ErrorKind::InvalidParameter,
                    format!("handle {i} of a wait-all is a mutex already in the wait"),
                ));
            }
        }
    }
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let ids: Vec<i32> = handles.iter().map(|h| h.id).collect();
    with_thread_session(&first.server, |s| {
        // The first try needs no watching: most waits end there.
        if let Some(outcome) = attempt(s, handles, all)? {
            return Ok(outcome);
        }
        if deadline.is_some_and(|d| d <= Instant::now()) {
            return Ok(WaitAny::TimedOut);
        }
        s.watch(&ids, true)?;
        let outcome = watched(s, handles, all, deadline);
        let unwatched = s.watch(&ids, false);
        let outcome = outcome?;
        unwatched?;
        Ok(outcome)
    })
}

/// One try, any or all.
fn attempt(s: &mut Session, handles: &[&PgMutex], all: bool) -> Result<Option<WaitAny>> {
    if all {
        try_all(s, handles)
    } else {
        try_any(s, handles)
    }
}

/// Tries until `deadline`, sleeping between tries until a watched mutex is released.
fn watched(
    s: &mut Session,
    handles: &[&PgMutex],
    all: bool,
    deadline: Option<Instant>,
) -> Result<WaitAny> {
    loop {
        // Watching began after the last try: a release since then has notified us.
        if let Some(outcome) = attempt(s, handles, all)? {
            return Ok(outcome);
        }
        let now = Instant::now();
        let left = match deadline {
            Some(d) if d <= now => return Ok(WaitAny::TimedOut),
            Some(d) => d - now,
            None => MAX_PAUSE,
        };
        s.await_release(left.min(MAX_PAUSE));
    }
}

/// The lowest index the calling thread owns or can take now.
fn try_any(s: &mut Session, handles: &[&PgMutex]) -> Result<Option<WaitAny>> {
    for (i, h) in handles.iter().enumerate() {
        if let Some(status) = s.recurse(h.id) {
            status?;
            return Ok(Some(WaitAny::Acquired(i)));
        }
        match s.try_acquire(h.id)? {
            Some(WaitStatus::Abandoned) => return Ok(Some(WaitAny::Abandoned(i))),
            Some(_) => return Ok(Some(WaitAny::Acquired(i))),
            None => {}
        }
    }
    Ok(None)
}

/// All of them at once (counting the ones already owned once more), or none.
fn try_all(s: &mut Session, handles: &[&PgMutex]) -> Result<Option<WaitAny>> {
    let missing: Vec<(usize, i32)> = handles
        .iter()
        .enumerate()
        .filter(|(_, h)| !s.held.contains_key(&h.id))
        .map(|(i, h)| (i, h.id))
        .collect();
    let mut abandoned = None;
    if !missing.is_empty() {
        let ids: Vec<i32> = missing.iter().map(|&(_, id)| id).collect();
        match s.try_acquire_all(&ids)? {
            None => return Ok(None),
            Some(first) => abandoned = first.map(|k| missing[k].0),
        }
    }
    for (i, h) in handles.iter().enumerate() {
        if !missing.iter().any(|&(j, _)| j == i) {
            if let Some(Err(e)) = s.recurse(h.id) {
                return Err(e);
            }
        }
    }
    Ok(Some(match abandoned {
        Some(i) => WaitAny::Abandoned(i),
        None => WaitAny::Acquired(0),
    }))
}
