//! An owned kernel handle: closed (`CloseHandle`) when dropped, duplicated with
//! `DuplicateHandle`.

use super::error;
use crate::sys::contract::Result;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use windows_sys::Win32::Foundation::{
    DUPLICATE_SAME_ACCESS, DuplicateHandle, GetHandleInformation, HANDLE, HANDLE_FLAG_INHERIT,
};
use windows_sys::Win32::System::Threading::GetCurrentProcess;

/// A handle this process owns. `std`'s `OwnedHandle` does the closing, and is `Send` and
/// `Sync`: a kernel handle is a process-wide value with no thread affinity.
#[derive(Debug)]
pub(super) struct Handle(OwnedHandle);

impl Handle {
    /// Takes ownership of `raw`, or returns `None` when it is NULL (how `CreateMutexExW`,
    /// `OpenMutexW` and friends report failure).
    ///
    /// # Safety
    ///
    /// A non-NULL `raw` must be an open handle that nothing else owns or will close.
    pub(super) unsafe fn from_raw(raw: HANDLE) -> Option<Handle> {
        if raw.is_null() {
            return None;
        }
        // SAFETY: non-NULL, open and unowned, as the caller guarantees.
        Some(Handle(unsafe { OwnedHandle::from_raw_handle(raw) }))
    }

    /// The handle's value, for passing to the OS. It stays owned by `self`.
    pub(super) fn raw(&self) -> HANDLE {
        self.0.as_raw_handle()
    }

    /// A new handle to the same object, with the same access; inheritable if `inherit`.
    pub(super) fn duplicate(&self, inherit: bool, what: &str) -> Result<Handle> {
        let mut out: HANDLE = std::ptr::null_mut();
        // SAFETY: `self.raw()` is open for the duration of the call (we borrow `self`), the
        // pseudo-handle of the current process needs no closing, and `out` is a valid place
        // for the new handle.
        let ok = unsafe {
            let process = GetCurrentProcess();
            DuplicateHandle(
                process,
                self.raw(),
                process,
                &mut out,
                0,
                inherit.into(),
                DUPLICATE_SAME_ACCESS,
            )
        };
        if ok == 0 {
            return Err(error::last(format!(
                "cannot duplicate the handle of {what}"
            )));
        }
        // SAFETY: DuplicateHandle succeeded, so `out` is a new handle that only we hold.
        unsafe { Handle::from_raw(out) }
            .ok_or_else(|| error::last(format!("cannot duplicate the handle of {what}")))
    }
}

/// Whether the open handle `raw` is inheritable (`GetHandleInformation`); an error
/// (`ERROR_INVALID_HANDLE`) when `raw` is not an open handle of this process.
pub(super) fn is_inheritable(raw: HANDLE, what: &str) -> Result<bool> {
    let mut flags = 0u32;
    // SAFETY: GetHandleInformation checks `raw` itself (an invalid value is an error, not
    // undefined behaviour) and writes only to `flags`.
    let ok = unsafe { GetHandleInformation(raw, &mut flags) };
    if ok == 0 {
        return Err(error::last(format!(
            "{what} is not an open handle of this process"
        )));
    }
    Ok(flags & HANDLE_FLAG_INHERIT != 0)
}
