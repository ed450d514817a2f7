//! The C ABI of namedmutex: the Win32 mutex calls in C shapes, for C and C++ code ported
//! from Windows. A thin client of [`namedmutex::synchapi`]: same names, same semantics,
//! same Win32 error codes (read with [`nm_get_last_error`], per thread, as `GetLastError`).
//!
//! | Win32 | here |
//! |---|---|
//! | `CreateMutexA` | [`nm_create_mutex`] (with the opened-existing flag as an out-parameter) |
//! | `CreateMutexExA` | [`nm_create_mutex_ex`] |
//! | `OpenMutexA` | [`nm_open_mutex`] |
//! | `ReleaseMutex` | [`nm_release_mutex`] |
//! | `WaitForSingleObject` | [`nm_wait_for_single_object`] |
//! | `WaitForMultipleObjects` | [`nm_wait_for_multiple_objects`] |
//! | `DuplicateHandle` | [`nm_duplicate_handle`] |
//! | `CloseHandle` | [`nm_close_handle`] |
//! | `GetLastError` | [`nm_get_last_error`] (and [`nm_get_last_error_message`]) |
//!
//! Names are UTF-8, NUL-terminated; NULL or `""` makes an unnamed mutex. Handles are
//! checked on every call: a closed, foreign or garbage handle fails with
//! `ERROR_INVALID_HANDLE` (6), never a crash. Ownership is per thread, as on Windows.
#![allow(unsafe_code)]

mod handles;

use namedmutex::synchapi;
use namedmutex::{Error, NamedMutex};
use std::cell::{Cell, RefCell};
use std::ffi::{CStr, c_char, c_int};

/// A handle to a mutex: an opaque number, 0 on failure (as Win32's `NULL`).
pub type NmHandle = u64;

/// `WAIT_OBJECT_0`.
pub const NM_WAIT_OBJECT_0: u32 = 0;
/// `WAIT_ABANDONED`.
pub const NM_WAIT_ABANDONED: u32 = 0x80;
/// `WAIT_TIMEOUT`.
pub const NM_WAIT_TIMEOUT: u32 = 0x102;
/// `WAIT_FAILED`: the error is in [`nm_get_last_error`].
pub const NM_WAIT_FAILED: u32 = 0xFFFF_FFFF;
/// `INFINITE`: a wait without a timeout.
pub const NM_INFINITE: u32 = 0xFFFF_FFFF;
/// `CREATE_MUTEX_INITIAL_OWNER`, for [`nm_create_mutex_ex`].
pub const NM_CREATE_MUTEX_INITIAL_OWNER: u32 = 1;
/// `SYNCHRONIZE`: the right to wait.
pub const NM_SYNCHRONIZE: u32 = 0x0010_0000;
/// `MUTEX_MODIFY_STATE`.
pub const NM_MUTEX_MODIFY_STATE: u32 = 0x0001;
/// `MUTEX_ALL_ACCESS`.
pub const NM_MUTEX_ALL_ACCESS: u32 = 0x001F_0001;
/// `ERROR_FILE_NOT_FOUND`.
pub const NM_ERROR_FILE_NOT_FOUND: u32 = 2;
/// `ERROR_ACCESS_DENIED`.
pub const NM_ERROR_ACCESS_DENIED: u32 = 5;
/// `ERROR_INVALID_HANDLE`.
pub const NM_ERROR_INVALID_HANDLE: u32 = 6;
/// `ERROR_NOT_ENOUGH_MEMORY`: the handle table is full.
pub const NM_ERROR_NOT_ENOUGH_MEMORY: u32 = 8;
/// `ERROR_INVALID_PARAMETER`.
pub const NM_ERROR_INVALID_PARAMETER: u32 = 87;
/// `ERROR_INVALID_NAME`.
pub const NM_ERROR_INVALID_NAME: u32 = 123;
/// `ERROR_ALREADY_EXISTS`.
pub const NM_ERROR_ALREADY_EXISTS: u32 = 183;
/// `ERROR_NOT_OWNER`.
pub const NM_ERROR_NOT_OWNER: u32 = 288;
/// `ERROR_GEN_FAILURE`: a failure without a more specific Win32 code (the message says).
pub const NM_ERROR_GEN_FAILURE: u32 = 31;

thread_local! {
    static LAST_ERROR: Cell<u32> = const { Cell::new(0) };
    static LAST_MESSAGE: RefCell<String> = const { RefCell::new(String::new()) };
}

fn set_error(code: u32, message: impl Into<String>) {
    LAST_ERROR.set(code);
    LAST_MESSAGE.with_borrow_mut(|m| *m = message.into());
}

#[cold]
#[inline(never)]
fn fail(e: &Error) {
    set_error(
        e.win32_code().unwrap_or(NM_ERROR_GEN_FAILURE),
        e.to_string(),
    );
}

#[cold]
#[inline(never)]
fn invalid_handle(h: NmHandle) {
    set_error(
        NM_ERROR_INVALID_HANDLE,
        format!("{h:#x} is not an open namedmutex handle (closed, never made, or garbage)"),
    );
}

/// Runs `f` with the mutex behind `h`; `None` (and the last error set) for a bad handle.
#[inline]
fn with_handle<R>(h: NmHandle, f: impl FnOnce(&NamedMutex) -> R) -> Option<R> {
    let found = handles::with(h, f);
    if found.is_none() {
        invalid_handle(h);
    }
    found
}

fn store(mutex: NamedMutex) -> NmHandle {
    handles::insert(mutex).unwrap_or_else(|| {
        set_error(NM_ERROR_NOT_ENOUGH_MEMORY, "the handle table is full");
        0
    })
}

/// Reads a C name: NULL is the unnamed mutex.
///
/// # Safety
///
/// `name` is NULL or points to a NUL-terminated string.
unsafe fn name_of<'a>(name: *const c_char) -> Option<&'a str> {
    if name.is_null() {
        return Some("");
    }
    // SAFETY: non-NULL and NUL-terminated, as the caller guarantees.
    let bytes = unsafe { CStr::from_ptr(name) };
    match bytes.to_str() {
        Ok(s) => Some(s),
        Err(_) => {
            set_error(NM_ERROR_INVALID_NAME, "the name is not valid UTF-8");
            None
        }
    }
}

/// `CreateMutexA`: creates the mutex `name` (NULL or `""`: unnamed), or opens it if it
/// exists. `*opened_existing` (if not NULL) is set to 1 when it existed (the last error is
/// then `ERROR_ALREADY_EXISTS`, else 0). `initial_owner` non-zero makes the calling thread
/// the owner, only when this call creates it. Returns 0 on failure.
///
/// # Safety
///
/// `name` is NULL or a NUL-terminated string; `opened_existing` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nm_create_mutex(
    name: *const c_char,
    initial_owner: c_int,
    opened_existing: *mut c_int,
) -> NmHandle {
    // SAFETY: passed on from the caller's guarantee.
    let Some(name) = (unsafe { name_of(name) }) else {
        return 0;
    };
    let created = synchapi::create_mutex(name, initial_owner != 0, None);
    // SAFETY: NULL or writable, as the caller guarantees.
    unsafe { finish_create(created, opened_existing) }
}

/// `CreateMutexExA`: `flags` may hold [`NM_CREATE_MUTEX_INITIAL_OWNER`]; the handle gets
/// `desired_access` ([`NM_MUTEX_ALL_ACCESS`], [`NM_SYNCHRONIZE`], ...). As
/// [`nm_create_mutex`] otherwise.
///
/// # Safety
///
/// As [`nm_create_mutex`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nm_create_mutex_ex(
    name: *const c_char,
    flags: u32,
    desired_access: u32,
    opened_existing: *mut c_int,
) -> NmHandle {
    // SAFETY: passed on from the caller's guarantee.
    let Some(name) = (unsafe { name_of(name) }) else {
        return 0;
    };
    let created = synchapi::create_mutex_ex(name, flags, desired_access, None);
    // SAFETY: NULL or writable, as the caller guarantees.
    unsafe { finish_create(created, opened_existing) }
}

/// # Safety
///
/// `opened_existing` is NULL or writable.
unsafe fn finish_create(
    created: namedmutex::Result<(NamedMutex, bool)>,
    opened_existing: *mut c_int,
) -> NmHandle {
    match created {
        Ok((mutex, existed)) => {
            let h = store(mutex);
            if h != 0 {
                if existed {
                    set_error(NM_ERROR_ALREADY_EXISTS, "the mutex existed and was opened");
                } else {
                    set_error(0, "");
                }
                if !opened_existing.is_null() {
                    // SAFETY: non-NULL and writable, as the caller guarantees.
                    unsafe { opened_existing.write(c_int::from(existed)) };
                }
            }
            h
        }
        Err(e) => {
            fail(&e);
            0
        }
    }
}

/// `OpenMutexA`: opens the existing mutex `name` with `desired_access`; `inherit` non-zero
/// makes the handle's OS handle inheritable. Returns 0 on failure (`ERROR_FILE_NOT_FOUND`
/// when there is no such mutex).
///
/// # Safety
///
/// `name` is a NUL-terminated string (NULL is `ERROR_INVALID_PARAMETER`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nm_open_mutex(
    desired_access: u32,
    inherit: c_int,
    name: *const c_char,
) -> NmHandle {
    if name.is_null() {
        set_error(NM_ERROR_INVALID_PARAMETER, "OpenMutex needs a name");
        return 0;
    }
    // SAFETY: non-NULL and NUL-terminated, as the caller guarantees.
    let Some(name) = (unsafe { name_of(name) }) else {
        return 0;
    };
    match synchapi::open_mutex(name, desired_access, inherit != 0) {
        Ok(mutex) => store(mutex),
        Err(e) => {
            fail(&e);
            0
        }
    }
}

/// `ReleaseMutex`: 1 on success; 0 on failure (`ERROR_NOT_OWNER` when the calling thread
/// does not own it, `ERROR_INVALID_HANDLE` for a bad handle).
#[unsafe(no_mangle)]
pub extern "C" fn nm_release_mutex(h: NmHandle) -> c_int {
    // The closure answers with the C value, so no large `Result` travels back out.
    with_handle(h, |m| match m.release() {
        Ok(()) => 1,
        Err(e) => {
            fail(&e);
            0
        }
    })
    .unwrap_or(0)
}

/// `WaitForSingleObject`: [`NM_WAIT_OBJECT_0`], [`NM_WAIT_ABANDONED`] (acquired; the last
/// owner died holding it), [`NM_WAIT_TIMEOUT`], or [`NM_WAIT_FAILED`] with the last error
/// set. `millis` is [`NM_INFINITE`] for no timeout.
#[unsafe(no_mangle)]
pub extern "C" fn nm_wait_for_single_object(h: NmHandle, millis: u32) -> u32 {
    with_handle(h, |m| match synchapi::wait_for_single_object(m, millis) {
        Ok(code) => code,
        Err(e) => {
            fail(&e);
            NM_WAIT_FAILED
        }
    })
    .unwrap_or(NM_WAIT_FAILED)
}

/// `WaitForMultipleObjects` over `count` handles (1 to 64): with `wait_all` zero, the
/// lowest index acquired as `NM_WAIT_OBJECT_0 + i` or `NM_WAIT_ABANDONED + i`; with
/// `wait_all` non-zero, `NM_WAIT_OBJECT_0` or `NM_WAIT_ABANDONED` once all are owned;
/// `NM_WAIT_TIMEOUT`; or `NM_WAIT_FAILED` with the last error set.
///
/// # Safety
///
/// `handles` points to `count` readable handle values (it may be NULL when `count` is 0,
/// which fails with `ERROR_INVALID_PARAMETER`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nm_wait_for_multiple_objects(
    count: u32,
    handles: *const NmHandle,
    wait_all: c_int,
    millis: u32,
) -> u32 {
    if count == 0 || handles.is_null() || count > 64 {
        set_error(
            NM_ERROR_INVALID_PARAMETER,
            format!("WaitForMultipleObjects takes 1 to 64 handles, not {count}"),
        );
        return NM_WAIT_FAILED;
    }
    // SAFETY: non-NULL and `count` readable values, as the caller guarantees.
    let values = unsafe { std::slice::from_raw_parts(handles, count as usize) };
    let waited = handles::with_all(values, |mutexes| {
        synchapi::wait_for_multiple_objects(mutexes, wait_all != 0, millis)
    });
    match waited {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            fail(&e);
            NM_WAIT_FAILED
        }
        Err(bad) => {
            invalid_handle(bad);
            NM_WAIT_FAILED
        }
    }
}

/// `DuplicateHandle` within the process: another handle to the same object, with the same
/// access; 0 on failure.
#[unsafe(no_mangle)]
pub extern "C" fn nm_duplicate_handle(h: NmHandle) -> NmHandle {
    match with_handle(h, NamedMutex::try_clone) {
        Some(Ok(copy)) => store(copy),
        Some(Err(e)) => {
            fail(&e);
            0
        }
        None => 0,
    }
}

/// `CloseHandle`: 1 on success, 0 with `ERROR_INVALID_HANDLE` when `h` is not open. Closing
/// does not release a mutex the thread owns (as on Windows).
#[unsafe(no_mangle)]
pub extern "C" fn nm_close_handle(h: NmHandle) -> c_int {
    if handles::remove(h) {
        1
    } else {
        invalid_handle(h);
        0
    }
}

/// `GetLastError`: the Win32 code of the calling thread's last failure (0 or
/// `ERROR_ALREADY_EXISTS` after a successful create).
#[unsafe(no_mangle)]
pub extern "C" fn nm_get_last_error() -> u32 {
    LAST_ERROR.get()
}

/// The message of the calling thread's last failure, copied NUL-terminated into `buf` of
/// `len` bytes (cut to fit). Returns the full message's length in bytes, without the NUL.
///
/// # Safety
///
/// `buf` is NULL (with any `len`: only the length is returned) or writable for `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nm_get_last_error_message(buf: *mut c_char, len: usize) -> usize {
    LAST_MESSAGE.with_borrow(|message| {
        if !buf.is_null() && len > 0 {
            let n = message.len().min(len - 1);
            // SAFETY: `buf` is writable for `len` > n bytes, as the caller guarantees, and
            // cannot overlap the thread-local message.
            unsafe {
                std::ptr::copy_nonoverlapping(message.as_ptr().cast::<c_char>(), buf, n);
                buf.add(n).write(0);
            }
        }
        message.len()
    })
}
