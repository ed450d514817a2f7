//! The backend contract: what a platform must provide, stated as types. The public API
//! reaches a backend only through these traits ([`Backend`] for a handle, [`Inspect`] for
//! looking without opening, [`CancelSignal`] for async waits, and `ServerBackend` for
//! preparing a server), and gives it only sys-level descriptions
//! ([`Spec`]), never its own builder: `MutexOptions` wraps a [`Spec`] the way
//! `std::fs::OpenOptions` wraps its platform's options, so the dependency runs one way.
//!
//! The contract has its own vocabulary, one file per idea, and no backend imports anything
//! of the public API (`sys/tests.rs` fails naming the line if one does):
//!
//! | file | what | the public API |
//! |---|---|---|
//! | [`error`] | the error, its kind, the Win32 codes | re-exports `Error`, `ErrorKind`, `Result` |
//! | [`wait_status`] | the outcome of a wait ([`WaitStatus`]) and of a multiple wait ([`WaitAny`]) | re-exports `WaitStatus`; `WaitAny` is made from ours |
//! | [`name`] | a checked name, its namespace | `Name` (the parser) and `Namespace` convert to ours |
//! | [`access`] | the rights a handle asks for, and Windows's check of them | `Access` converts to ours |
//! | [`security`] | who may open a `Global\` object | `Security` converts to ours |
//! | [`info`] | what inspection sees | `MutexInfo` and `OwnerInfo` are made from ours |
//!
//! The types on every acquisition's path (the error and the wait's outcome) are defined here
//! and re-exported, because converting them there costs time (`error.rs` has the numbers);
//! the rest the public API wraps or converts, so that it may grow (serde, new methods) without
//! touching a backend.

mod access;
mod error;
mod info;
mod name;
mod security;
mod wait_status;

pub(crate) use access::Access;
pub(crate) use error::*;
pub use error::{Error, ErrorKind, Result};
pub(crate) use info::{MutexInfo, OwnerInfo};
pub(crate) use name::{Name, Namespace, shorten};
pub(crate) use security::Security;
#[cfg(unix)]
use std::path::PathBuf;
use std::time::Duration;
pub use wait_status::WaitStatus;
pub(crate) use wait_status::*;

/// What to create or open: every option of `CreateMutexEx`/`OpenMutex` and of this crate,
/// as the public builder collected them.
#[derive(Clone, Debug)]
pub(crate) struct Spec {
    /// Create the mutex owned by the calling thread (only when this call creates it).
    pub initial_owner: bool,
    /// The rights the handle asks for (checked by the backend, or by the OS on Windows).
    pub access: Access,
    /// Whether a child process may inherit the handle.
    pub inheritable: bool,
    /// Who may open a `Global\` object this call creates.
    pub security: Security,
    /// The namespace root (`NAMEDMUTEX_ROOT` when `None`).
    #[cfg(unix)]
    pub root: Option<PathBuf>,
    /// The PostgreSQL server that holds the object (a URL), instead of this machine.
    #[cfg(feature = "postgres")]
    pub server: Option<std::sync::Arc<str>>,
    /// Keep an abandoned object until an acquirer has been told.
    pub keep_abandoned: bool,
    /// How long an open waits for an object being made or removed by another process.
    pub busy_timeout: Option<Duration>,
    /// Record when each acquisition happened (for inspection), at some cost.
    pub time_acquisitions: bool,
}

/// A word that makes a blocked process-owned acquisition ([`Backend::acquire_detached`])
/// give up.
pub(crate) trait CancelSignal: Send + Sync + Sized {
    /// A new, unfired signal.
    fn new() -> Result<Self>;
    /// Makes every acquisition watching this signal return (as a timeout does).
    fn fire(&self);
}

/// What a sweep of stale objects found ([`Inspect::prune`]), file by file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Swept {
    /// Stale objects (and empty files of dead creators) removed.
    pub removed: u32,
    /// Objects left because a process has them open.
    pub in_use: u32,
    /// Objects left because they are kept for the report of their abandonment.
    pub kept_for_report: u32,
    /// Files left because they are not valid objects, or the caller may not remove them.
    pub skipped: u32,
}

/// One handle to a mutex object on one platform (its inspection is [`Inspect`]).
///
/// Names arrive validated ([`crate::name`]); access masks arrive unchecked, because on
/// Windows the OS checks them. Every method that fails returns an [`Error`] whose kind
/// is the Win32 code the same failure has on Windows.
pub(crate) trait Backend: Inspect + Sized + Send + Sync {
    /// A process-owned acquisition, to be released or undone exactly once.
    type Claim: Send;
    /// What a helper thread waits with for a process-owned acquisition
    /// ([`Backend::acquire_detached`]): owned, so that it may outlive the borrow of the
    /// handle that made it (an async wait whose future was dropped goes on until its
    /// cancel signal is seen). Where the platform allows, not a handle of its own (the
    /// shared object; the server and id); on Windows a duplicated handle, which the
    /// thread that owns the acquisition needs anyway.
    type Waiter: Send + Sync + 'static;
    /// See [`CancelSignal`].
    type Cancel: CancelSignal;
    /// Whether [`Backend::try_acquire_detached`] answers `None` only when the mutex is busy
    /// (so a caller out of time may stop there).
    const TRY_DETACHED_IS_EXACT: bool;

    /// `CreateMutexEx`: creates `name`, or opens it if it exists (the bool says it existed);
    /// `None` makes an unnamed object. Creation and initial ownership are one atomic step: no
    /// other thread can acquire a mutex created with `initial_owner` before its creator.
    fn create(name: Option<&Name<'_>>, spec: &Spec) -> Result<(Self, bool)>;
    /// `OpenMutex`: opens the existing `name` (`NotFound` if there is none).
    fn open(name: &Name<'_>, spec: &Spec) -> Result<Self>;
    /// `WaitForSingleObject`: `None` waits forever, a zero timeout polls. Needs `SYNCHRONIZE`.
    /// Ownership belongs to the calling thread.
    fn wait(&self, timeout: Option<Duration>) -> Result<WaitStatus>;
    /// `WaitForMultipleObjects` over `handles` (1 to 64, checked by the caller; wait-all
    /// refuses one object twice): any, the lowest acquirable index; or all at once.
    fn wait_multiple(handles: &[&Self], all: bool, timeout: Option<Duration>) -> Result<WaitAny>;
    /// `ReleaseMutex`: `NotOwner` unless the calling thread owns the mutex.
    fn release(&self) -> Result<()>;
    /// Gives ownership up as a crash would, with `note` saying why (where the platform can
    /// keep one): the next acquirer gets `Abandoned`. The calling thread must own it.
    fn abandon(&self, note: &str) -> Result<()>;
    /// Whether the name still leads to this object.
    fn still_named(&self) -> bool;
    /// `DuplicateHandle`: a new handle to the same object, with the same access.
    fn try_clone(&self) -> Result<Self>;
    /// The value a child process passes to [`Backend::from_inherited_handle`], if this
    /// handle is inheritable.
    fn inheritable_handle(&self) -> Option<u64>;
    /// Adopts a handle inherited from the parent process.
    ///
    /// # Safety
    ///
    /// `value` must come from the parent's [`Backend::inheritable_handle`], inherited by this
    /// process, and must not be owned by anything else in it (it is closed with the result).
    #[allow(unsafe_code)] // the caller vouches for the inherited value (see # Safety)
    unsafe fn from_inherited_handle(value: u64) -> Result<Self>;

    /// The same number for every handle of this process to one object (`None`: unknown).
    fn identity(&self) -> Option<u64>;
    /// Whether two process-owned acquisitions of this object exclude each other by
    /// themselves (no recursion between them), so that an async task may take it without
    /// the process's queue of tasks when nobody waits there.
    fn detached_is_exclusive(&self) -> bool {
        false
    }
    /// Acquires for the process (not the calling thread) if that needs no waiting.
    fn try_acquire_detached(&self) -> Result<Option<(WaitStatus, Self::Claim)>>;
    /// The [`Backend::Waiter`] of this handle, checking that it may wait (`SYNCHRONIZE`).
    /// Never blocks: it is made on the thread that polls an async wait.
    fn waiter(&self) -> Result<Self::Waiter>;
    /// Blocks the calling thread until the process owns the mutex; `None` when `timeout`
    /// passed or `cancel` fired first.
    fn acquire_detached(
        waiter: &Self::Waiter,
        timeout: Option<Duration>,
        cancel: &Self::Cancel,
    ) -> Result<Option<(WaitStatus, Self::Claim)>>;
    /// Releases a process-owned acquisition, from any thread.
    fn release_detached(&self, claim: Self::Claim) -> Result<()>;
    /// Takes back a process-owned acquisition nobody used; an abandonment it saw is kept
    /// for the next acquirer.
    fn undo_detached(waiter: &Self::Waiter, claim: Self::Claim) -> Result<()>;

    /// The fencing token of the calling thread's acquisition: a number that grows with every
    /// acquisition of the object (`None` where the backend keeps none, or the thread does not
    /// own it).
    fn fencing_token(&self) -> Option<u64> {
        None
    }
    /// The fencing token of a process-owned acquisition.
    fn claim_token(_claim: &Self::Claim) -> Option<u64> {
        None
    }
    /// Whether the calling thread, which acquired the mutex, still owns it. A local owner
    /// cannot lose ownership while it lives; a server's can (a session ended).
    fn still_owned(&self) -> Result<bool> {
        Ok(true)
    }
}

/// A backend that keeps its objects on a server, which is prepared once (the schema
/// installed) before roles that may not create schemas use it (feature `postgres`).
#[cfg(feature = "postgres")]
pub(crate) trait ServerBackend: Backend {
    /// Installs what the server at `url` needs if it has none; `lock_down` also keeps other
    /// clients of that server from taking this backend's locks directly.
    fn setup_server(url: &str, lock_down: bool) -> Result<()>;
}

/// Looking at objects without opening them (`list`, `info`): a platform implements it for
/// its handle type, beside the rest of [`Backend`].
pub(crate) trait Inspect {
    /// Every object in `namespace` (`Unsupported` where the platform cannot enumerate).
    fn list(spec: &Spec, namespace: Namespace) -> Result<Vec<MutexInfo>>;
    /// The object `name`, or `None`.
    fn info(spec: &Spec, name: &Name<'_>) -> Result<Option<MutexInfo>>;
    /// Every user's `Local\` objects the caller may read, and the users it could not read.
    fn list_all_users(spec: &Spec) -> Result<(Vec<MutexInfo>, Vec<u32>)>;
    /// Removes the stale objects of `namespace`.
    fn prune(spec: &Spec, namespace: Namespace) -> Result<Swept>;
}
