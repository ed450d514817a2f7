//! The error type shared by every backend, and the Win32 codes it maps to.
//!
//! Every failure names what was wrong in its message, and carries an [`ErrorKind`] that is the
//! same on every platform, plus the Win32 error code a Windows program would have seen from
//! `GetLastError` (semantics.md lists the codes). The types are the backend contract's own
//! (`sys/contract/error.rs`), re-exported as they are.

use crate::sys::contract;
pub use crate::sys::contract::{Error, ErrorKind, Result};
use std::io;

/// `ERROR_FILE_NOT_FOUND`: no object has that name.
pub const ERROR_FILE_NOT_FOUND: u32 = contract::ERROR_FILE_NOT_FOUND;
/// `ERROR_PATH_NOT_FOUND`: the name has a backslash after its optional prefix.
pub const ERROR_PATH_NOT_FOUND: u32 = contract::ERROR_PATH_NOT_FOUND;
/// `ERROR_ACCESS_DENIED`.
pub const ERROR_ACCESS_DENIED: u32 = contract::ERROR_ACCESS_DENIED;
/// `ERROR_INVALID_HANDLE`: the name belongs to something that is not a valid mutex.
pub const ERROR_INVALID_HANDLE: u32 = contract::ERROR_INVALID_HANDLE;
/// `ERROR_INVALID_PARAMETER`.
pub const ERROR_INVALID_PARAMETER: u32 = contract::ERROR_INVALID_PARAMETER;
/// `ERROR_INVALID_NAME`.
pub const ERROR_INVALID_NAME: u32 = contract::ERROR_INVALID_NAME;
/// `ERROR_ALREADY_EXISTS`: set by a successful create that opened an existing object.
pub const ERROR_ALREADY_EXISTS: u32 = contract::ERROR_ALREADY_EXISTS;
/// `ERROR_FILENAME_EXCED_RANGE`: the name is longer than `MAX_PATH` (260) UTF-16 units.
pub const ERROR_FILENAME_EXCED_RANGE: u32 = contract::ERROR_FILENAME_EXCED_RANGE;
/// `ERROR_NOT_OWNER`: release by a thread that does not own the mutex.
pub const ERROR_NOT_OWNER: u32 = contract::ERROR_NOT_OWNER;

impl From<Error> for io::Error {
    fn from(err: Error) -> io::Error {
        let kind = match err.kind() {
            ErrorKind::NotFound => io::ErrorKind::NotFound,
            ErrorKind::AccessDenied => io::ErrorKind::PermissionDenied,
            ErrorKind::InvalidName | ErrorKind::PathNotFound | ErrorKind::NameTooLong => {
                io::ErrorKind::InvalidInput
            }
            ErrorKind::InvalidParameter => io::ErrorKind::InvalidInput,
            ErrorKind::Unsupported => io::ErrorKind::Unsupported,
            ErrorKind::Corrupt | ErrorKind::Incompatible | ErrorKind::TypeMismatch => {
                io::ErrorKind::InvalidData
            }
            ErrorKind::Busy => io::ErrorKind::WouldBlock,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, err)
    }
}
