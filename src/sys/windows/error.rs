//! Win32 error codes: reading `GetLastError`, and turning a code into the crate's [`Error`]
//! with the same [`ErrorKind`] the other backends give for the same situation.

use crate::sys::contract::{
    ERROR_ACCESS_DENIED, ERROR_FILE_NOT_FOUND, ERROR_FILENAME_EXCED_RANGE, ERROR_INVALID_HANDLE,
    ERROR_INVALID_NAME, ERROR_INVALID_PARAMETER, ERROR_MUTANT_LIMIT_EXCEEDED,
    ERROR_NOT_ENOUGH_MEMORY, ERROR_NOT_OWNER, ERROR_PATH_NOT_FOUND, ERROR_PRIVILEGE_NOT_HELD,
    Error, ErrorKind,
};
use std::borrow::Cow;
use std::io;
use windows_sys::Win32::Foundation::{GetLastError, SetLastError};

/// The calling thread's last Win32 error (`GetLastError`).
pub(super) fn last_error() -> u32 {
    // SAFETY: GetLastError only reads a field of the calling thread's TEB.
    unsafe { GetLastError() }
}

/// Sets the calling thread's last Win32 error (`SetLastError`), so that a call which sets it
/// only on some paths can be read unambiguously afterwards.
pub(super) fn set_last_error(code: u32) {
    // SAFETY: SetLastError only writes a field of the calling thread's TEB.
    unsafe { SetLastError(code) }
}

/// The kind of failure a Win32 error code means, as the Linux backend classifies the same
/// situation (semantics.md lists the codes).
pub(super) fn kind_of(code: u32) -> ErrorKind {
    match code {
        ERROR_FILE_NOT_FOUND => ErrorKind::NotFound,
        ERROR_PATH_NOT_FOUND => ErrorKind::PathNotFound,
        ERROR_ACCESS_DENIED | ERROR_PRIVILEGE_NOT_HELD => ErrorKind::AccessDenied,
        ERROR_INVALID_HANDLE => ErrorKind::TypeMismatch,
        ERROR_NOT_ENOUGH_MEMORY => ErrorKind::ResourceExhausted,
        ERROR_INVALID_PARAMETER => ErrorKind::InvalidParameter,
        ERROR_INVALID_NAME => ErrorKind::InvalidName,
        ERROR_FILENAME_EXCED_RANGE => ErrorKind::NameTooLong,
        ERROR_NOT_OWNER => ErrorKind::NotOwner,
        ERROR_MUTANT_LIMIT_EXCEEDED => ErrorKind::RecursionLimit,
        _ => ErrorKind::Io,
    }
}

/// The error for a call that failed with Win32 `code`. The message says what was being
/// done; the OS's own text follows it (through the `io::Error` source), and
/// [`Error::win32_code`] is `code` itself.
pub(super) fn from_code(code: u32, message: impl Into<Cow<'static, str>>) -> Error {
    // Win32 codes are below 0x8000_0000 in practice; the cast keeps the bits either way, which
    // is how `io::Error::last_os_error` stores them too.
    let source = io::Error::from_raw_os_error(code as i32);
    Error::io(kind_of(code), message, source).with_code(code)
}

/// The error for a call that just failed, from `GetLastError`.
pub(super) fn last(message: impl Into<Cow<'static, str>>) -> Error {
    from_code(last_error(), message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_the_kinds_of_every_backend() {
        for (code, kind) in [
            (2, ErrorKind::NotFound),
            (3, ErrorKind::PathNotFound),
            (5, ErrorKind::AccessDenied),
            (6, ErrorKind::TypeMismatch),
            (8, ErrorKind::ResourceExhausted),
            (87, ErrorKind::InvalidParameter),
            (123, ErrorKind::InvalidName),
            (206, ErrorKind::NameTooLong),
            (288, ErrorKind::NotOwner),
            (587, ErrorKind::RecursionLimit),
            (1314, ErrorKind::AccessDenied),
            (1450, ErrorKind::Io),
        ] {
            let err = from_code(code, "doing something");
            assert_eq!(err.kind(), kind, "code {code}");
            assert_eq!(err.win32_code(), Some(code), "code {code}");
            assert!(err.to_string().starts_with("doing something: "), "{err}");
        }
    }
}
