//! The backends. Exactly one is compiled, chosen by `cfg`, and re-exported under the same
//! names, so that nothing above this module mentions a platform.
//!
//! Every backend provides `RawMutex`, one handle to a mutex object, with:
//!
//! - `RawMutex::create(name: Option<&Name>, opts: &MutexOptions) -> Result<(RawMutex, bool)>`:
//!   create or open; the bool says the object existed. `None` makes an unnamed object.
//!   Creation and initial ownership are atomic.
//! - `RawMutex::open(name: &Name, opts: &MutexOptions) -> Result<RawMutex>`.
//! - `wait(&self, timeout: Option<Duration>) -> Result<WaitStatus>`: `None` waits forever;
//!   a zero timeout polls. Needs `SYNCHRONIZE` in the handle's access.
//! - `RawMutex::wait_multiple(handles: &[&RawMutex], all: bool, timeout) -> Result<WaitAny>`:
//!   `WaitForMultipleObjects` (the caller checked the count and duplicates).
//! - `release(&self) -> Result<()>`: `NotOwner` unless the calling thread owns the mutex.
//! - `abandon(&self, note: &str) -> Result<()>`: give ownership up as a crash would.
//! - `still_named(&self) -> bool`: whether the name still leads to this object.
//! - `try_clone(&self) -> Result<RawMutex>`: a new handle to the same object.
//! - `inheritable_handle(&self) -> Option<u64>` and
//!   `unsafe from_inherited_handle(value: u64) -> Result<RawMutex>`.
//! - Ownership by the process, for async tasks (`async_lock`): `identity`,
//!   `try_acquire_detached`, `acquire_detached(timeout, &Cancel)`, `release_detached`,
//!   `undo_detached`, with the types `Cancel` and `Claim` and the constant
//!   `TRY_DETACHED_IS_EXACT`.
//!
//! And a module `inspect` with `list`, `info`, `list_all_users` and `prune` (an
//! `Unsupported` error where the backend cannot enumerate objects), and the type [`Swept`].
//!
//! Names arrive validated ([`crate::name`]); access masks arrive unchecked, because on
//! Windows the OS checks them.

/// What a sweep of stale objects found (`MutexOptions::prune`), file by file.
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

#[cfg(target_os = "linux")]
mod linux;
/// The shared-memory format as types (Linux), for tests: see `lib.rs`'s `__format`.
#[cfg(target_os = "linux")]
pub use linux::format;
#[cfg(target_os = "linux")]
pub(crate) use linux::*;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub(crate) use windows::*;

#[cfg(not(any(target_os = "linux", windows)))]
mod unsupported;
#[cfg(not(any(target_os = "linux", windows)))]
pub(crate) use unsupported::*;

/// Inspection where the backend cannot enumerate objects yet.
#[cfg(not(any(target_os = "linux", windows)))]
pub(crate) mod inspect {
    use crate::error::{Error, ErrorKind, Result};
    use crate::info::MutexInfo;
    use crate::name::{Name, Namespace};
    use crate::options::MutexOptions;

    fn unsupported() -> Error {
        Error::new(
            ErrorKind::Unsupported,
            "listing and inspecting mutexes is not available on this platform yet",
        )
    }
    pub(crate) fn list(_: &MutexOptions, _: Namespace) -> Result<Vec<MutexInfo>> {
        Err(unsupported())
    }
    pub(crate) fn info(_: &MutexOptions, _: &Name<'_>) -> Result<Option<MutexInfo>> {
        Err(unsupported())
    }
    pub(crate) fn list_all_users(_: &MutexOptions) -> Result<(Vec<MutexInfo>, Vec<u32>)> {
        Err(unsupported())
    }
    pub(crate) fn prune(_: &MutexOptions, _: Namespace) -> Result<super::Swept> {
        Err(unsupported())
    }
}
