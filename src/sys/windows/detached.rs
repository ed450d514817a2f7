//! Ownership by an owner thread instead of the caller's, for async tasks
//! (`crate::detached`).
//!
//! Windows ties a mutex's ownership to the thread that acquired it, and only that thread
//! may release it. So a process-owned acquisition here is one made by a thread of its own:
//! [`acquire`] starts an owner thread, which waits (on the mutex and on the cancel event at
//! once), reports the result, and, when it acquired, keeps the mutex until the [`Claim`]
//! tells it to release. The cost is a thread per held acquisition and two hand-offs between
//! threads per lock; an owner thread that dies with its process leaves the mutex abandoned,
//! as the OS reports for any thread.

use super::RawMutex;
use super::error;
use super::handle::Handle;
use crate::sys::contract::WaitStatus;
use crate::sys::contract::{Error, ErrorKind, Result};
use crate::sys::{Backend as _, CancelSignal};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};
use windows_sys::Win32::Foundation::{HANDLE, WAIT_ABANDONED, WAIT_OBJECT_0, WAIT_TIMEOUT};
use windows_sys::Win32::System::Threading::{
    CreateEventW, INFINITE, SetEvent, WaitForMultipleObjects,
};

/// A manual-reset event that an owner thread's wait also watches.
pub(crate) struct Cancel {
    event: Handle,
}

impl CancelSignal for Cancel {
    fn new() -> Result<Cancel> {
        // SAFETY: no security attributes or name (both NULL); a manual-reset event, unset.
        let raw = unsafe { CreateEventW(std::ptr::null(), 1, 0, std::ptr::null()) };
        // SAFETY: a non-NULL handle returned by CreateEventW is new and ours alone.
        let event = unsafe { Handle::from_raw(raw) }
            .ok_or_else(|| error::last("cannot create the event that cancels an async wait"))?;
        Ok(Cancel { event })
    }

    fn fire(&self) {
        // SAFETY: the event handle is open while `self` is borrowed.
        unsafe { SetEvent(self.event.raw()) };
    }
}

enum Command {
    Release,
}

/// A held acquisition: the channel to its owner thread.
pub(crate) struct Claim {
    commands: Sender<Command>,
    results: Receiver<Result<()>>,
}

/// Starts an owner thread that waits for `own` (a handle of the waiter's, and `cancel`)
/// and blocks the caller until it reports; `None` when the timeout passed or `cancel`
/// fired.
pub(crate) fn acquire(
    own: std::sync::Arc<RawMutex>,
    timeout: Option<Duration>,
    cancel: &Cancel,
) -> Result<Option<(WaitStatus, Claim)>> {
    let event = cancel
        .event
        .duplicate(false, "the cancel event of an async wait")?;
    let (report, reported) = channel::<Result<Option<WaitStatus>>>();
    let (commands, received) = channel::<Command>();
    let (done, results) = channel::<Result<()>>();
    std::thread::Builder::new()
        .name("namedmutex-owner".into())
        .spawn(move || {
            let status = wait_or_cancel(&own, &event, timeout);
            let acquired = matches!(status, Ok(Some(_)));
            let _ = report.send(status);
            if acquired {
                // Held until the claim says otherwise (or is dropped: release then too).
                let _ = received.recv();
                let _ = done.send(own.release());
            }
        })
        .map_err(|e| {
            Error::io(
                ErrorKind::ResourceExhausted,
                "cannot start the thread that owns an async acquisition",
                e,
            )
        })?;
    let status = reported.recv().map_err(|_| {
        Error::new(
            ErrorKind::Io,
            "the owner thread of an async wait ended early",
        )
    })??;
    Ok(status.map(|s| (s, Claim { commands, results })))
}

fn wait_or_cancel(
    mutex: &RawMutex,
    event: &Handle,
    timeout: Option<Duration>,
) -> Result<Option<WaitStatus>> {
    let handles: [HANDLE; 2] = [mutex.handle.raw(), event.raw()];
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    loop {
        let millis = deadline.map_or(INFINITE, |d| super::millis_until(d, Instant::now()));
        // SAFETY: both handles stay open for the call (borrowed from `mutex` and `event`).
        let rc = unsafe { WaitForMultipleObjects(2, handles.as_ptr(), 0, millis) };
        return match rc {
            WAIT_OBJECT_0 => Ok(Some(WaitStatus::Acquired)),
            WAIT_ABANDONED => Ok(Some(WaitStatus::Abandoned)),
            rc if rc == WAIT_OBJECT_0 + 1 => Ok(None),
            WAIT_TIMEOUT if deadline.is_some_and(|d| Instant::now() < d) => continue,
            WAIT_TIMEOUT => Ok(None),
            _ => Err(error::last(format!("cannot wait on {}", mutex.what))),
        };
    }
}

/// Tells the owner thread to release, and waits for its answer.
pub(crate) fn release(claim: Claim) -> Result<()> {
    let lost = || {
        Error::new(
            ErrorKind::Io,
            "the owner thread of an async acquisition is gone",
        )
    };
    claim.commands.send(Command::Release).map_err(|_| lost())?;
    claim.results.recv().map_err(|_| lost())?
}
