//! The Windows backend: a thin layer over the kernel's own mutex objects.
//!
//! Everything is the OS's: `CreateMutexExW` creates or opens (its `ERROR_ALREADY_EXISTS`
//! says which), `OpenMutexW` opens, `WaitForSingleObject` waits and reports abandonment,
//! `ReleaseMutex` releases, `DuplicateHandle` clones, and the OS checks access rights and
//! names. Errors keep the OS's Win32 code ([`crate::sys::contract::Error::win32_code`]) and are classified
//! with the same [`crate::sys::contract::ErrorKind`] as on the other backends ([`error::kind_of`]).
//!
//! Names reach this module validated by [`crate::name`], so Windows' acceptance of names
//! longer than `MAX_PATH` never shows.

// The only module of the crate that calls the OS directly; every block says why it is sound.
#![allow(unsafe_code)]

#[cfg(feature = "postgres")] // the PostgreSQL backend's sessions end at exit
pub(super) mod at_exit;
mod detached;
mod directory;
mod error;
mod handle;
mod inspect;
mod name;
mod security;
#[cfg(test)]
mod tests;

use super::{Backend, Spec};
use crate::sys::contract::WaitStatus;
use crate::sys::contract::{ERROR_ALREADY_EXISTS, Error, ErrorKind, Result};
use crate::sys::contract::{Name, shorten};
pub(crate) use detached::{Cancel, Claim};

use handle::Handle;
use security::Attributes;
use std::time::{Duration, Instant};
use windows_sys::Win32::Foundation::{
    HANDLE, WAIT_ABANDONED, WAIT_FAILED, WAIT_OBJECT_0, WAIT_TIMEOUT,
};
use windows_sys::Win32::System::Threading::{
    CREATE_MUTEX_INITIAL_OWNER, CreateMutexExW, INFINITE, OpenMutexW, ReleaseMutex,
    WaitForMultipleObjects, WaitForSingleObject,
};

/// The longest finite timeout one `WaitForSingleObject` call takes (`INFINITE` is
/// `u32::MAX`); longer waits are made of several calls.
const MAX_WAIT_MS: u32 = INFINITE - 1;

/// One handle to a mutex object.
#[derive(Debug)]
pub(crate) struct RawMutex {
    handle: Handle,
    /// Whether `handle` is inheritable (`bInheritHandle`).
    inheritable: bool,
    /// The object, for messages: `the mutex "name"` or `an unnamed mutex`.
    what: Box<str>,
}

fn describe(name: Option<&Name<'_>>) -> Box<str> {
    match name {
        Some(name) => format!("the mutex {:?}", shorten(name.full)).into(),
        None => "an unnamed mutex".into(),
    }
}

impl Backend for RawMutex {
    type Claim = Claim;
    type Cancel = Cancel;
    type Waiter = std::sync::Arc<RawMutex>;
    const TRY_DETACHED_IS_EXACT: bool = false;

    /// `CreateMutexExW`: creates the object, or opens the existing one of that name; the bool
    /// is true when it existed (`ERROR_ALREADY_EXISTS`).
    fn create(name: Option<&Name<'_>>, spec: &Spec) -> Result<(RawMutex, bool)> {
        let what = describe(name);
        let attrs = Attributes::for_create(name, spec, &what)?;
        let wide = name.map(|n| name::to_wide(n.full));
        let wide_ptr = wide.as_ref().map_or(std::ptr::null(), |w| w.as_ptr());
        let flags = if spec.initial_owner {
            CREATE_MUTEX_INITIAL_OWNER
        } else {
            0
        };
        // The last error is cleared first so that a success that did not set it is not
        // mistaken for ERROR_ALREADY_EXISTS left over from an earlier call.
        error::set_last_error(0);
        // SAFETY: `attrs` (and the descriptor it points to) and `wide` (NUL-terminated, or a
        // NULL pointer for an unnamed mutex) outlive the call.
        let raw = unsafe { CreateMutexExW(attrs.as_ptr(), wide_ptr, flags, spec.access.bits()) };
        let code = error::last_error();
        // SAFETY: a non-NULL handle returned by CreateMutexExW is new and ours alone.
        let handle = unsafe { Handle::from_raw(raw) }
            .ok_or_else(|| error::from_code(code, format!("cannot create {what}")))?;
        let existed = name.is_some() && code == ERROR_ALREADY_EXISTS;
        Ok((
            RawMutex {
                handle,
                inheritable: spec.inheritable,
                what,
            },
            existed,
        ))
    }

    /// `OpenMutexW`: opens the existing object with `spec.access`.
    fn open(name: &Name<'_>, spec: &Spec) -> Result<RawMutex> {
        let what = describe(Some(name));
        let wide = name::to_wide(name.full);
        // SAFETY: `wide` is NUL-terminated and outlives the call.
        let raw = unsafe { OpenMutexW(spec.access.bits(), spec.inheritable.into(), wide.as_ptr()) };
        // SAFETY: a non-NULL handle returned by OpenMutexW is new and ours alone.
        let handle = unsafe { Handle::from_raw(raw) }
            .ok_or_else(|| error::last(format!("cannot open {what}")))?;
        Ok(RawMutex {
            handle,
            inheritable: spec.inheritable,
            what,
        })
    }

    /// `WaitForSingleObject`, repeated while a finite timeout has time left: for timeouts
    /// longer than one call takes, and so that the wait never ends before its deadline on
    /// the monotonic clock.
    fn wait(&self, timeout: Option<Duration>) -> Result<WaitStatus> {
        // A deadline too far to represent is as good as no deadline.
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        loop {
            let millis = deadline.map_or(INFINITE, |d| millis_until(d, Instant::now()));
            match self.wait_once(millis)? {
                WaitStatus::TimedOut if deadline.is_some_and(|d| Instant::now() < d) => continue,
                status => return Ok(status),
            }
        }
    }

    /// `WaitForMultipleObjects`, repeated like [`RawMutex::wait`] while a finite timeout has
    /// time left. The OS checks the count (1 to 64) and, on Windows, duplicates in wait-all.
    fn wait_multiple(
        handles: &[&RawMutex],
        all: bool,
        timeout: Option<Duration>,
    ) -> Result<crate::sys::contract::WaitAny> {
        use crate::sys::contract::WaitAny;
        let raw: Vec<HANDLE> = handles.iter().map(|h| h.handle.raw()).collect();
        let count = u32::try_from(raw.len()).unwrap_or(u32::MAX);
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        loop {
            let millis = deadline.map_or(INFINITE, |d| millis_until(d, Instant::now()));
            // SAFETY: `raw` holds `count` handles that stay open while `handles` is borrowed.
            let rc = unsafe { WaitForMultipleObjects(count, raw.as_ptr(), i32::from(all), millis) };
            let n = raw.len() as u32;
            return match rc {
                WAIT_TIMEOUT if deadline.is_some_and(|d| Instant::now() < d) => continue,
                WAIT_TIMEOUT => Ok(WaitAny::TimedOut),
                rc if rc < WAIT_OBJECT_0 + n => {
                    Ok(WaitAny::Acquired((rc - WAIT_OBJECT_0) as usize))
                }
                rc if (WAIT_ABANDONED..WAIT_ABANDONED + n).contains(&rc) => {
                    Ok(WaitAny::Abandoned((rc - WAIT_ABANDONED) as usize))
                }
                WAIT_FAILED => Err(error::last(format!("cannot wait on {} mutexes", raw.len()))),
                other => Err(Error::new(
                    ErrorKind::Io,
                    format!("WaitForMultipleObjects returned {other:#x}"),
                )),
            };
        }
    }

    /// `ReleaseMutex`.
    fn release(&self) -> Result<()> {
        // SAFETY: the handle is open while `self` is borrowed.
        if unsafe { ReleaseMutex(self.handle.raw()) } != 0 {
            return Ok(());
        }
        let code = error::last_error();
        let message = if error::kind_of(code) == ErrorKind::NotOwner {
            format!(
                "cannot release {}: the calling thread does not own it",
                self.what
            )
        } else {
            format!("cannot release {}", self.what)
        };
        Err(error::from_code(code, message))
    }

    /// Releases through the owner thread.
    /// Windows ties an abandonment to the end of the owning thread, and the calling thread
    /// cannot end itself here; releasing instead would let another waiter in unwarned.
    fn abandon(&self, _: &str) -> Result<()> {
        Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "cannot abandon {} on purpose: Windows reports an abandonment only when the owning thread ends",
                self.what
            ),
        ))
    }

    /// The kernel keeps a name with its object: nothing can remove one under a handle.
    fn still_named(&self) -> bool {
        true
    }

    /// `DuplicateHandle` with the same access. Like `std`'s `try_clone`, the copy is not
    /// inheritable, whatever the original is.
    fn try_clone(&self) -> Result<RawMutex> {
        Ok(RawMutex {
            handle: self.handle.duplicate(false, &self.what)?,
            inheritable: false,
            what: self.what.clone(),
        })
    }

    /// The `HANDLE` value, when the handle is inheritable.
    fn inheritable_handle(&self) -> Option<u64> {
        self.inheritable.then(|| self.handle.raw() as usize as u64)
    }

    /// Adopts an inherited `HANDLE`. The value is checked to be an open handle of this
    /// process (`GetHandleInformation`); an invalid one fails with `ERROR_INVALID_HANDLE`
    /// without being closed.
    ///
    /// # Safety
    ///
    /// `value` must be a handle to a mutex that nothing else in this process owns or will
    /// close.
    unsafe fn from_inherited_handle(value: u64) -> Result<RawMutex> {
        let what: Box<str> = format!("the inherited handle {value:#x}").into();
        let Ok(bits) = usize::try_from(value) else {
            return Err(error::from_code(
                crate::sys::contract::ERROR_INVALID_HANDLE,
                format!("{what} does not fit in a HANDLE on this platform"),
            ));
        };
        let raw = bits as HANDLE;
        let inheritable = handle::is_inheritable(raw, &what)?;
        // SAFETY: `raw` is an open handle (checked just above) that the caller guarantees
        // nothing else owns.
        let handle = unsafe { Handle::from_raw(raw) }.ok_or_else(|| {
            error::from_code(
                crate::sys::contract::ERROR_INVALID_HANDLE,
                format!("{what} is NULL"),
            )
        })?;
        Ok(RawMutex {
            handle,
            inheritable,
            what: "an inherited mutex".into(),
        })
    }

    /// Two handles cannot be told to be one object without asking the OS each time: every
    /// handle is its own, which only costs fairness between tasks of one process.
    fn identity(&self) -> Option<u64> {
        None
    }

    /// Not on Windows without a thread hand-off: always `None`, so that the caller takes
    /// the blocking route ([`RawMutex::acquire_detached`]) on a helper thread.
    fn try_acquire_detached(&self) -> Result<Option<(WaitStatus, Claim)>> {
        Ok(None)
    }

    /// A handle of its own (`DuplicateHandle`), which the owner thread that will wait shares.
    fn waiter(&self) -> Result<std::sync::Arc<RawMutex>> {
        Ok(std::sync::Arc::new(self.try_clone()?))
    }

    /// An acquisition owned by a thread of its own (`detached.rs`).
    fn acquire_detached(
        waiter: &std::sync::Arc<RawMutex>,
        timeout: Option<Duration>,
        cancel: &Cancel,
    ) -> Result<Option<(WaitStatus, Claim)>> {
        detached::acquire(waiter.clone(), timeout, cancel)
    }

    fn release_detached(&self, claim: Claim) -> Result<()> {
        detached::release(claim)
    }

    /// The OS cannot give an abandonment back: the acquisition is released.
    fn undo_detached(_waiter: &std::sync::Arc<RawMutex>, claim: Claim) -> Result<()> {
        detached::release(claim)
    }
}

impl RawMutex {
    fn wait_once(&self, millis: u32) -> Result<WaitStatus> {
        // SAFETY: the handle is open while `self` is borrowed.
        match unsafe { WaitForSingleObject(self.handle.raw(), millis) } {
            WAIT_OBJECT_0 => Ok(WaitStatus::Acquired),
            WAIT_ABANDONED => Ok(WaitStatus::Abandoned),
            WAIT_TIMEOUT => Ok(WaitStatus::TimedOut),
            WAIT_FAILED => Err(error::last(format!("cannot wait on {}", self.what))),
            other => Err(Error::new(
                ErrorKind::Io,
                format!(
                    "cannot wait on {}: WaitForSingleObject returned {other:#x}",
                    self.what
                ),
            )),
        }
    }
}
/// Milliseconds from `now` to `deadline`, rounded up so that a wait never ends early, and
/// capped at the longest finite wait one call takes.
fn millis_until(deadline: Instant, now: Instant) -> u32 {
    let left = deadline.saturating_duration_since(now);
    let millis = left.as_nanos().div_ceil(1_000_000);
    u32::try_from(millis).map_or(MAX_WAIT_MS, |m| m.min(MAX_WAIT_MS))
}
