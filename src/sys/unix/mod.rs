//! The shared-memory backend of Linux, macOS and FreeBSD: Win32 mutex semantics in files
//! every process maps, running the lock protocol (`crate::protocol`). How a dead owner is
//! noticed and how a waiter sleeps is a *flavour*: Linux's own (`sys/linux`: robust futexes,
//! `futex_waitv`, `membarrier`) or the portable one (`sys/portable`: record locks, a watcher
//! thread, one-word waits), which provide the modules `lifeline`, `futex` and `barrier`
//! under the same names. The file format is in `FORMAT.md`; the design notes are in each
//! module.
//!
//! | module | what it does |
//! |---|---|
//! | `root` | the namespace root and the verified per-user directories |
//! | `idmap` | user ids across user namespaces: the key of `Local\` |
//! | `cleaned` | noticing a user directory a cleaner removed under live processes |
//! | `user_dir` | finding a user's directory, also where another user squatted its name |
//! | `file_name` | object names to file names |
//! | `files` | opening without links, creating files exclusively or publishing them whole |
//! | `object` | finding, creating, sharing and removing object files |
//! | `sweep` | removing stale objects nobody will open again |
//! | `format` | the shared-memory format as types: the source of every offset |
//! | `layout`, `mapping` | the object page's format and checked atomic access to it |
//! | `registry_layout` | the registry's file format |
//! | `registry`, `thread` | thread identities: the registry file and its slots, the calling thread's token |
//! | `lifeline` (flavour) | how a slot's thread is known to live, and its death noticed |
//! | `lock` | acquire and release: the calling thread's token, then the lock protocol |
//! | `host` | what the lock protocol (`crate::protocol`) needs: the words, liveness, sleeping, barriers |
//! | `polling` | a waiter's polling before it sleeps |
//! | `detached` | ownership by the process instead of a thread (async tasks) |
//! | `barrier` (flavour) | the heavy side of biased locking's barrier (none in the portable flavour) |
//! | `futex` (flavour), `clock` | sleeping, waking, time |
//! | `os` | the calls whose form differs between Linux, macOS and FreeBSD |
//! | `fork` | what a child process inherits |
//! | `fault` | crash points for fault-injection tests (feature `fault-injection`) |
//! | `fuzz` | entry points for the fuzz targets (feature `fuzzing`) |

mod cleaned;
mod clock;
mod detached;
pub(crate) mod fault;
mod file_name;
mod files;
mod fork;
#[doc(hidden)]
pub mod format;
#[cfg(feature = "fuzzing")]
pub(crate) mod fuzz;
mod host;
mod idmap;
mod inspect;
mod layout;
mod lock;
mod mapping;
mod multi;
mod object;
pub(in crate::sys) mod os;
mod polling;
mod registry;
mod registry_layout;
mod root;
pub(crate) mod sweep;
mod thread;
mod user_dir;

// Who lives and how a waiter sleeps: Linux's own flavour (`sys/linux`: robust-futex
// lifelines, `futex_waitv`, `membarrier`), or the portable one (`sys/portable`: record-lock
// lifelines, a watcher thread, one-word waits) on macOS and FreeBSD, and on Linux with the
// feature `portable-backend`.
#[cfg(all(target_os = "linux", not(feature = "portable-backend")))]
#[path = "../linux/mod.rs"]
mod linux;
#[cfg(all(target_os = "linux", not(feature = "portable-backend")))]
use linux::{barrier, futex, lifeline};
#[cfg(any(not(target_os = "linux"), feature = "portable-backend"))]
#[path = "../portable/mod.rs"]
mod portable;
#[cfg(any(not(target_os = "linux"), feature = "portable-backend"))]
use portable::{barrier, futex, lifeline};

use super::{Backend, CancelSignal, Spec};
use crate::sys::contract::Access;
use crate::sys::contract::Name;
use crate::sys::contract::WaitStatus;
use crate::sys::contract::{Error, ErrorKind, Result};
use object::{NewObject, Object, OpenMode};
use root::Root;
use rustix::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

pub(crate) use detached::{Claim, Waiter};

/// What makes a blocked process-owned acquisition ([`RawMutex::acquire_detached`]) give
/// up: a word its sleep watches.
pub(crate) struct Cancel {
    word: AtomicU32,
}

impl CancelSignal for Cancel {
    fn new() -> Result<Cancel> {
        Ok(Cancel {
            word: AtomicU32::new(0),
        })
    }

    /// Makes the acquisition return `None` soon (at once if it sleeps).
    fn fire(&self) {
        detached::cancel(&self.word);
    }
}

#[cold]
fn no_synchronize() -> Error {
    Error::new(
        ErrorKind::AccessDenied,
        "this handle was opened without SYNCHRONIZE access, which waiting needs",
    )
}

fn open_mode(spec: &Spec) -> OpenMode {
    OpenMode {
        keep_abandoned: spec.keep_abandoned,
        busy_limit: spec.busy_timeout,
    }
}

/// One handle: the shared object, the rights granted, and for an inheritable handle, a
/// file description that stays open across `exec`.
pub(crate) struct RawMutex {
    obj: Arc<Object>,
    access: Access,
    inherit: Option<OwnedFd>,
    /// Records when it acquired, also without waiting (`MutexOptions::time_acquisitions`).
    timed: bool,
    /// `access` has `SYNCHRONIZE` and `timed` is off: `wait` takes its shortest path.
    plain: bool,
}

impl Backend for RawMutex {
    type Claim = Claim;
    type Cancel = Cancel;
    type Waiter = Waiter;
    const TRY_DETACHED_IS_EXACT: bool = true;

    fn create(name: Option<&Name<'_>>, spec: &Spec) -> Result<(RawMutex, bool)> {
        let access = spec.access.grant("the mutex")?;
        fork::install();
        let root = Root::get(spec.root.as_deref())?;
        let (obj, existed) = match name {
            Some(name) => {
                let new = NewObject {
                    security: spec.security,
                    initial_owner: spec.initial_owner,
                };
                let (obj, existed) = Object::open_named(&root, name, Some(&new), open_mode(spec))?;
                if !existed {
                    sweep::on_create(&root, name.namespace, || {
                        Root::file_name(name.namespace, name.object)
                    });
                }
                (obj, existed)
            }
            None => (Object::create_unnamed(&root, spec.initial_owner)?, false),
        };
        Ok((
            RawMutex::new(obj, access, spec.inheritable, spec.time_acquisitions)?,
            existed,
        ))
    }

    fn open(name: &Name<'_>, spec: &Spec) -> Result<RawMutex> {
        fork::install();
        let root = Root::get(spec.root.as_deref())?;
        // The name is looked up before the access is checked, as Windows does: a missing
        // name is ERROR_FILE_NOT_FOUND whatever the access asked for.
        let (obj, _) = Object::open_named(&root, name, None, open_mode(spec))?;
        let access = spec.access.grant(&format!("the mutex {:?}", name.full))?;
        RawMutex::new(obj, access, spec.inheritable, spec.time_acquisitions)
    }

    /// The common case is one test: a handle that may wait and records nothing extra.
    #[inline]
    fn wait(&self, timeout: Option<Duration>) -> Result<WaitStatus> {
        if self.plain {
            return lock::wait(&self.obj, timeout);
        }
        self.wait_checked(timeout)
    }

    /// `WaitForMultipleObjects` over `handles`: any (index of the one acquired) or all.
    fn wait_multiple(
        handles: &[&RawMutex],
        all: bool,
        timeout: Option<Duration>,
    ) -> Result<crate::sys::contract::WaitAny> {
        if let Some(i) = handles
            .iter()
            .position(|h| !h.access.contains(Access::SYNCHRONIZE))
        {
            return Err(Error::new(
                ErrorKind::AccessDenied,
                format!(
                    "handle {i} of the wait was opened without SYNCHRONIZE access, which waiting needs"
                ),
            ));
        }
        let objs: Vec<&Object> = handles.iter().map(|h| &*h.obj).collect();
        multi::wait(&objs, all, timeout)
    }

    #[inline]
    fn release(&self) -> Result<()> {
        lock::release(&self.obj)
    }

    fn abandon(&self, note: &str) -> Result<()> {
        lock::abandon(&self.obj, note)
    }

    fn still_named(&self) -> bool {
        self.obj.still_named()
    }

    fn try_clone(&self) -> Result<RawMutex> {
        RawMutex::new(
            self.obj.clone(),
            self.access,
            self.inherit.is_some(),
            self.timed,
        )
    }

    fn inheritable_handle(&self) -> Option<u64> {
        self.inherit.as_ref().map(|fd| fd.as_raw_fd() as u64)
    }

    /// # Safety
    ///
    /// `value` must be a file descriptor inherited from the parent (its
    /// `inheritable_handle`) that nothing else in this process owns.
    #[allow(unsafe_code)]
    unsafe fn from_inherited_handle(value: u64) -> Result<RawMutex> {
        let raw = i32::try_from(value)
            .ok()
            .filter(|fd| *fd >= 0)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidParameter,
                    format!("{value} is not a file descriptor"),
                )
            })?;
        if rustix::io::fcntl_getfd(
            // SAFETY: borrowing for one fcntl only checks whether the number is open.
            unsafe { rustix::fd::BorrowedFd::borrow_raw(raw) },
        )
        .is_err()
        {
            return Err(Error::new(
                ErrorKind::InvalidParameter,
                format!("file descriptor {raw} is not open: was the handle made inheritable?"),
            ));
        }
        fork::install();
        // SAFETY: the caller guarantees the descriptor is ours to own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let obj = Object::adopt(fd)?;
        RawMutex::new(obj, Access::MUTEX_ALL_ACCESS, false, false)
    }

    /// The same number for every handle of this process to one object.
    fn identity(&self) -> Option<u64> {
        Some(self.obj.identity())
    }

    /// The process owner never recurses (`detached.rs`): the lock word alone keeps tasks
    /// apart.
    #[inline(always)]
    fn detached_is_exclusive(&self) -> bool {
        true
    }

    /// Acquires for the process (not the calling thread) if that needs no waiting.
    #[inline]
    fn try_acquire_detached(&self) -> Result<Option<(WaitStatus, Claim)>> {
        self.check_synchronize()?;
        detached::try_acquire(&self.obj)
    }

    fn waiter(&self) -> Result<Waiter> {
        self.check_synchronize()?;
        Ok(Waiter(self.obj.clone()))
    }

    /// Blocks the calling thread until the process owns the mutex; `None` when `timeout`
    /// passed or `cancel` fired first.
    fn acquire_detached(
        waiter: &Waiter,
        timeout: Option<Duration>,
        cancel: &Cancel,
    ) -> Result<Option<(WaitStatus, Claim)>> {
        detached::acquire(&waiter.0, timeout, &cancel.word)
    }

    /// Releases a process-owned acquisition, from any thread.
    #[inline]
    fn release_detached(&self, claim: Claim) -> Result<()> {
        detached::release(&self.obj, claim)
    }

    /// Takes back a process-owned acquisition nobody used; an abandonment it saw is kept
    /// for the next acquirer.
    fn undo_detached(waiter: &Waiter, claim: Claim) -> Result<()> {
        detached::undo(&waiter.0, claim)
    }
}

impl Drop for RawMutex {
    #[inline]
    fn drop(&mut self) {
        lifeline::on_close(&self.obj);
    }
}

impl RawMutex {
    fn new(obj: Arc<Object>, access: Access, inheritable: bool, timed: bool) -> Result<RawMutex> {
        let inherit = if inheritable {
            Some(obj.reopen_inheritable()?)
        } else {
            None
        };
        Ok(RawMutex {
            plain: access.contains(Access::SYNCHRONIZE) && !timed,
            obj,
            access,
            inherit,
            timed,
        })
    }

    /// A wait by a handle without `SYNCHRONIZE` (refused), or one that records when it
    /// acquired (`MutexOptions::time_acquisitions`).
    #[cold]
    fn wait_checked(&self, timeout: Option<Duration>) -> Result<WaitStatus> {
        self.check_synchronize()?;
        if !self.timed {
            return lock::wait(&self.obj, timeout);
        }
        let status = lock::wait_without_bias(&self.obj, timeout)?;
        if status.is_acquired() {
            lock::note_acquired(&self.obj);
        }
        Ok(status)
    }

    /// On every wait's path: inlined, with the error built out of line.
    #[inline(always)]
    fn check_synchronize(&self) -> Result<()> {
        if self.access.contains(Access::SYNCHRONIZE) {
            Ok(())
        } else {
            Err(no_synchronize())
        }
    }
}
