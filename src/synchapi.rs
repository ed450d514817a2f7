//! The Win32 calls, spelled as Win32 spells them, for people porting Windows code.
//!
//! These mirror the Go package `golang.org/x/sys/windows` wrappers named in the seeds
//! (`CreateMutex`, `CreateMutexEx`, `OpenMutex`, `ReleaseMutex`) plus `WaitForSingleObject`,
//! with the same constants. They are thin layers over [`NamedMutex`] and [`MutexOptions`].
//!
//! ```
//! use namedmutex::synchapi::*;
//!
//! let name = format!("doc-synchapi-{}", std::process::id());
//! let (h, existed) = create_mutex(&name, true, None)?;
//! assert!(!existed);
//! assert_eq!(wait_for_single_object(&h, INFINITE)?, WAIT_OBJECT_0); // recursion
//! release_mutex(&h)?;
//! release_mutex(&h)?;
//! let h2 = open_mutex(&name, SYNCHRONIZE, false)?;
//! assert_eq!(wait_for_single_object(&h2, 0)?, WAIT_OBJECT_0);
//! release_mutex(&h2)?;
//! # Ok::<(), namedmutex::Error>(())
//! ```

use crate::access::Access;
use crate::error::{Error, ErrorKind, Result};
use crate::mutex::NamedMutex;
use crate::options::MutexOptions;
use crate::security::Security;
use std::time::Duration;

pub use crate::error::{
    ERROR_ACCESS_DENIED, ERROR_ALREADY_EXISTS, ERROR_FILE_NOT_FOUND, ERROR_FILENAME_EXCED_RANGE,
    ERROR_INVALID_HANDLE, ERROR_INVALID_NAME, ERROR_INVALID_PARAMETER, ERROR_NOT_OWNER,
    ERROR_PATH_NOT_FOUND,
};
pub use crate::wait_status::{WAIT_ABANDONED, WAIT_FAILED, WAIT_OBJECT_0, WAIT_TIMEOUT};

/// `CREATE_MUTEX_INITIAL_OWNER`: the flag of `CreateMutexEx` asking for initial ownership.
pub const CREATE_MUTEX_INITIAL_OWNER: u32 = 0x0000_0001;
/// `INFINITE`: wait forever.
pub const INFINITE: u32 = 0xFFFF_FFFF;
/// `SYNCHRONIZE`: the right to wait.
pub const SYNCHRONIZE: u32 = Access::SYNCHRONIZE.bits();
/// `MUTEX_MODIFY_STATE`.
pub const MUTEX_MODIFY_STATE: u32 = Access::MUTEX_MODIFY_STATE.bits();
/// `MUTEX_ALL_ACCESS`.
pub const MUTEX_ALL_ACCESS: u32 = Access::MUTEX_ALL_ACCESS.bits();

/// `SECURITY_ATTRIBUTES`: whether the handle is inheritable, and who may open a `Global\`
/// object the call creates.
///
/// ```
/// use namedmutex::synchapi::SecurityAttributes;
/// use namedmutex::Security;
///
/// let attrs = SecurityAttributes { inherit_handle: true, security: Security::Everyone };
/// # let _ = attrs;
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SecurityAttributes {
    /// `bInheritHandle`.
    pub inherit_handle: bool,
    /// `lpSecurityDescriptor`, reduced to the choices [`Security`] offers.
    pub security: Security,
}

fn options_for(attrs: Option<&SecurityAttributes>) -> MutexOptions {
    let attrs = attrs.copied().unwrap_or_default();
    MutexOptions::new()
        .inheritable(attrs.inherit_handle)
        .security(attrs.security)
}

/// `CreateMutexW`: creates or opens `name` with `MUTEX_ALL_ACCESS`. Returns the handle and
/// whether the object already existed (the call's `ERROR_ALREADY_EXISTS`).
///
/// ```
/// use namedmutex::synchapi::create_mutex;
///
/// let (h, existed) = create_mutex("", false, None)?; // unnamed
/// assert!(!existed);
/// # drop(h);
/// # Ok::<(), namedmutex::Error>(())
/// ```
pub fn create_mutex(
    name: &str,
    initial_owner: bool,
    attrs: Option<&SecurityAttributes>,
) -> Result<(NamedMutex, bool)> {
    options_for(attrs).initial_owner(initial_owner).create(name)
}

/// `CreateMutexExW`: `flags` may hold [`CREATE_MUTEX_INITIAL_OWNER`]; other bits are
/// [`ErrorKind::InvalidParameter`]. The handle gets `desired_access`.
///
/// ```
/// use namedmutex::synchapi::*;
///
/// let (h, _) = create_mutex_ex("", CREATE_MUTEX_INITIAL_OWNER, MUTEX_ALL_ACCESS, None)?;
/// release_mutex(&h)?;
/// # Ok::<(), namedmutex::Error>(())
/// ```
pub fn create_mutex_ex(
    name: &str,
    flags: u32,
    desired_access: u32,
    attrs: Option<&SecurityAttributes>,
) -> Result<(NamedMutex, bool)> {
    if flags & !CREATE_MUTEX_INITIAL_OWNER != 0 {
        return Err(Error::new(
            ErrorKind::InvalidParameter,
            format!(
                "CreateMutexEx flags {flags:#x}: only CREATE_MUTEX_INITIAL_OWNER (1) is defined"
            ),
        ));
    }
    options_for(attrs)
        .initial_owner(flags & CREATE_MUTEX_INITIAL_OWNER != 0)
        .access(Access::from_bits(desired_access))
        .create(name)
}

/// `OpenMutexW`: opens the existing `name` with `desired_access`; `inherit` makes the handle
/// inheritable.
///
/// ```
/// use namedmutex::synchapi::*;
/// use namedmutex::ErrorKind;
///
/// let err = open_mutex("doc-open-mutex-missing", SYNCHRONIZE, false).unwrap_err();
/// assert_eq!(err.win32_code(), Some(ERROR_FILE_NOT_FOUND));
/// ```
pub fn open_mutex(name: &str, desired_access: u32, inherit: bool) -> Result<NamedMutex> {
    MutexOptions::new()
        .access(Access::from_bits(desired_access))
        .inheritable(inherit)
        .open(name)
}

/// `ReleaseMutex`.
///
/// ```
/// use namedmutex::synchapi::*;
///
/// let (h, _) = create_mutex("", false, None)?;
/// let err = release_mutex(&h).unwrap_err();
/// assert_eq!(err.win32_code(), Some(ERROR_NOT_OWNER));
/// # Ok::<(), namedmutex::Error>(())
/// ```
#[inline]
pub fn release_mutex(handle: &NamedMutex) -> Result<()> {
    handle.release()
}

/// `WaitForSingleObject`: returns `WAIT_OBJECT_0`, `WAIT_ABANDONED` or `WAIT_TIMEOUT`;
/// `millis` is a timeout in milliseconds, [`INFINITE`] for none. Where Win32 returns
/// `WAIT_FAILED`, this returns the error.
///
/// ```
/// use namedmutex::synchapi::*;
///
/// let (h, _) = create_mutex("", false, None)?;
/// assert_eq!(wait_for_single_object(&h, 0)?, WAIT_OBJECT_0);
/// release_mutex(&h)?;
/// # Ok::<(), namedmutex::Error>(())
/// ```
#[inline]
pub fn wait_for_single_object(handle: &NamedMutex, millis: u32) -> Result<u32> {
    let timeout = (millis != INFINITE).then(|| Duration::from_millis(u64::from(millis)));
    Ok(handle.wait(timeout)?.code())
}

/// `WaitForMultipleObjects`: with `wait_all` false, returns `WAIT_OBJECT_0 + i` or
/// `WAIT_ABANDONED + i` for the lowest index `i` acquired; with `wait_all` true,
/// `WAIT_OBJECT_0` or `WAIT_ABANDONED` once all are owned; `WAIT_TIMEOUT` when `millis`
/// passes. Where Win32 returns `WAIT_FAILED`, this returns the error.
///
/// ```
/// use namedmutex::synchapi::*;
///
/// let (a, _) = create_mutex("", false, None)?;
/// let (b, _) = create_mutex("", false, None)?;
/// assert_eq!(wait_for_multiple_objects(&[&a, &b], true, INFINITE)?, WAIT_OBJECT_0);
/// release_mutex(&a)?;
/// release_mutex(&b)?;
/// # Ok::<(), namedmutex::Error>(())
/// ```
pub fn wait_for_multiple_objects(
    handles: &[&NamedMutex],
    wait_all: bool,
    millis: u32,
) -> Result<u32> {
    let timeout = (millis != INFINITE).then(|| Duration::from_millis(u64::from(millis)));
    if wait_all {
        Ok(crate::wait_all(handles, timeout)?.code())
    } else {
        Ok(crate::wait_any(handles, timeout)?.code())
    }
}
