//! The error every backend reports, which the public API returns as it is: a kind, the
//! Win32 code Windows gives for it, and a message that names what was wrong.
//!
//! Defined here, below the backends, and re-exported by the crate (`crate::error`) rather
//! than wrapped there: a wrapper must be converted on every acquisition's path, and it
//! showed in bench scenario 1 (the biased acquire+release went from 4.0 ns to 4.3-4.9 ns
//! with the conversion inlined; splitting the fast path out to avoid it cost 1.1 ns on the
//! ordinary path instead). The Win32 codes are the public `synchapi` constants.

use std::borrow::Cow;
use std::fmt;
use std::io;

/// `ERROR_FILE_NOT_FOUND`: no object has that name.
pub(crate) const ERROR_FILE_NOT_FOUND: u32 = 2;
/// `ERROR_PATH_NOT_FOUND`: the name has a backslash after its optional prefix.
pub(crate) const ERROR_PATH_NOT_FOUND: u32 = 3;
/// `ERROR_ACCESS_DENIED`.
pub(crate) const ERROR_ACCESS_DENIED: u32 = 5;
/// `ERROR_INVALID_HANDLE`: the name belongs to something that is not a valid mutex.
pub(crate) const ERROR_INVALID_HANDLE: u32 = 6;
/// `ERROR_INVALID_PARAMETER`.
pub(crate) const ERROR_INVALID_PARAMETER: u32 = 87;
/// `ERROR_INVALID_NAME`.
pub(crate) const ERROR_INVALID_NAME: u32 = 123;
/// `ERROR_ALREADY_EXISTS`: set by a successful create that opened an existing object.
pub(crate) const ERROR_ALREADY_EXISTS: u32 = 183;
/// `ERROR_FILENAME_EXCED_RANGE`: the name is longer than `MAX_PATH` (260) UTF-16 units.
pub(crate) const ERROR_FILENAME_EXCED_RANGE: u32 = 206;
/// `ERROR_NOT_OWNER`: release by a thread that does not own the mutex.
pub(crate) const ERROR_NOT_OWNER: u32 = 288;
/// `ERROR_MUTANT_LIMIT_EXCEEDED`: the recursion count would pass `0x7FFF_FFFF`.
pub(crate) const ERROR_MUTANT_LIMIT_EXCEEDED: u32 = 587;
/// `ERROR_PRIVILEGE_NOT_HELD`: `ACCESS_SYSTEM_SECURITY` asked for without the privilege.
pub(crate) const ERROR_PRIVILEGE_NOT_HELD: u32 = 1314;
/// `ERROR_NOT_ENOUGH_MEMORY`: a fixed table (thread registry, object user table) is full.
pub(crate) const ERROR_NOT_ENOUGH_MEMORY: u32 = 8;
/// `ERROR_NOT_SUPPORTED`.
pub(crate) const ERROR_NOT_SUPPORTED: u32 = 50;
/// `ERROR_BUSY`: an object file stayed locked by another process past the bound we wait.
pub(crate) const ERROR_BUSY: u32 = 170;

/// What went wrong, the same on every platform.
///
/// ```
/// use namedmutex::{ErrorKind, NamedMutex};
///
/// let err = NamedMutex::open("doc-error-kind-no-such-name").unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::NotFound);
/// assert_eq!(err.win32_code(), Some(2));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum ErrorKind {
    /// The name is malformed: `Local\` or `Global\` with nothing after it, or a NUL inside.
    /// Win32: `ERROR_INVALID_NAME` (123).
    InvalidName,
    /// The name has a backslash after its optional prefix (`a\b`).
    /// Win32: `ERROR_PATH_NOT_FOUND` (3).
    PathNotFound,
    /// The name is longer than `MAX_PATH` (260) UTF-16 code units.
    /// Win32: `ERROR_FILENAME_EXCED_RANGE` (206).
    NameTooLong,
    /// No object has that name. Win32: `ERROR_FILE_NOT_FOUND` (2).
    NotFound,
    /// The name belongs to an object that is not a mutex (or to a file that is not a valid
    /// namedmutex object). Win32: `ERROR_INVALID_HANDLE` (6).
    TypeMismatch,
    /// The caller may not open the object with the access asked for, or the handle lacks the
    /// right the operation needs. Win32: `ERROR_ACCESS_DENIED` (5), or
    /// `ERROR_PRIVILEGE_NOT_HELD` (1314) for `ACCESS_SYSTEM_SECURITY`.
    AccessDenied,
    /// Release by a thread that does not own the mutex. Win32: `ERROR_NOT_OWNER` (288).
    NotOwner,
    /// The calling thread owned the mutex, but no longer does: its server ended the session
    /// that held it (a restart, `pg_terminate_backend`, a lost network), and the next owner
    /// is told `Abandoned`. Only a PostgreSQL mutex can lose ownership this way; whatever
    /// the critical section did since may have overlapped the next owner's (check the
    /// fencing token where it matters). Win32 has no such case: `ERROR_NOT_OWNER` (288).
    OwnershipLost,
    /// The recursion count would pass `0x7FFF_FFFF`. Win32: `ERROR_MUTANT_LIMIT_EXCEEDED` (587).
    RecursionLimit,
    /// An argument is out of range (unknown flags, too many handles).
    /// Win32: `ERROR_INVALID_PARAMETER` (87).
    InvalidParameter,
    /// The object was made by an incompatible version of namedmutex (its format version
    /// differs). Win32: `ERROR_INVALID_HANDLE` (6).
    Incompatible,
    /// The object's shared memory is inconsistent (bad sizes, impossible state).
    /// Win32: `ERROR_INVALID_HANDLE` (6).
    Corrupt,
    /// A fixed-size table is full: more live threads than registry slots, or more distinct
    /// users than one object records. Win32: `ERROR_NOT_ENOUGH_MEMORY` (8).
    ResourceExhausted,
    /// An object file stayed locked by another process for longer than namedmutex waits
    /// (a stopped or hostile process). Win32: `ERROR_BUSY` (170).
    Busy,
    /// The platform has no backend yet. Win32: `ERROR_NOT_SUPPORTED` (50).
    Unsupported,
    /// An operating-system call failed for another reason; [`std::error::Error::source`]
    /// gives the `io::Error`.
    Io,
}

impl ErrorKind {
    /// The Win32 error code a Windows program sees for this kind of failure.
    fn default_win32_code(self) -> Option<u32> {
        Some(match self {
            ErrorKind::InvalidName => ERROR_INVALID_NAME,
            ErrorKind::PathNotFound => ERROR_PATH_NOT_FOUND,
            ErrorKind::NameTooLong => ERROR_FILENAME_EXCED_RANGE,
            ErrorKind::NotFound => ERROR_FILE_NOT_FOUND,
            ErrorKind::TypeMismatch | ErrorKind::Incompatible | ErrorKind::Corrupt => {
                ERROR_INVALID_HANDLE
            }
            ErrorKind::AccessDenied => ERROR_ACCESS_DENIED,
            ErrorKind::NotOwner | ErrorKind::OwnershipLost => ERROR_NOT_OWNER,
            ErrorKind::RecursionLimit => ERROR_MUTANT_LIMIT_EXCEEDED,
            ErrorKind::InvalidParameter => ERROR_INVALID_PARAMETER,
            ErrorKind::ResourceExhausted => ERROR_NOT_ENOUGH_MEMORY,
            ErrorKind::Busy => ERROR_BUSY,
            ErrorKind::Unsupported => ERROR_NOT_SUPPORTED,
            ErrorKind::Io => return None,
        })
    }

    /// A short phrase for messages.
    fn describe(self) -> &'static str {
        match self {
            ErrorKind::InvalidName => "invalid name",
            ErrorKind::PathNotFound => "path not found",
            ErrorKind::NameTooLong => "name too long",
            ErrorKind::NotFound => "not found",
            ErrorKind::TypeMismatch => "not a mutex",
            ErrorKind::AccessDenied => "access denied",
            ErrorKind::NotOwner => "not the owner",
            ErrorKind::OwnershipLost => "ownership lost",
            ErrorKind::RecursionLimit => "recursion limit reached",
            ErrorKind::InvalidParameter => "invalid parameter",
            ErrorKind::Incompatible => "incompatible format",
            ErrorKind::Corrupt => "corrupt object",
            ErrorKind::ResourceExhausted => "table full",
            ErrorKind::Busy => "busy",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Io => "I/O error",
        }
    }
}

/// The error returned by every fallible call of this crate.
///
/// Its message names the object and the reason; [`Error::kind`] classifies it the same way
/// on every platform and [`Error::win32_code`] gives the code Win32 reports.
///
/// ```
/// use namedmutex::{ErrorKind, NamedMutex};
///
/// let err = NamedMutex::create("Global\\", false).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::InvalidName);
/// assert_eq!(err.win32_code(), Some(123));
/// assert!(err.to_string().contains("Global\\"));
/// ```
pub struct Error {
    kind: ErrorKind,
    code: Option<u32>,
    message: Cow<'static, str>,
    source: Option<io::Error>,
}

impl Error {
    /// An error of `kind` with a message that says what was wrong.
    pub(crate) fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Error {
        Error {
            kind,
            code: kind.default_win32_code(),
            message: message.into(),
            source: None,
        }
    }

    /// The same, with an explicit Win32 code (the OS's own, or a finer code than the
    /// kind's default such as `ERROR_PRIVILEGE_NOT_HELD`).
    #[cfg_attr(not(windows), allow(dead_code))]
    pub(crate) fn with_code(mut self, code: u32) -> Error {
        self.code = Some(code);
        self
    }

    /// The same, with what the user can do about it added to the message (before the OS
    /// error's own text, if any).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn with_hint(mut self, hint: &str) -> Error {
        self.message = format!("{} ({hint})", self.message).into();
        self
    }

    /// An error caused by a failed OS call.
    pub(crate) fn io(
        kind: ErrorKind,
        message: impl Into<Cow<'static, str>>,
        source: io::Error,
    ) -> Error {
        Error {
            kind,
            code: kind.default_win32_code(),
            message: message.into(),
            source: Some(source),
        }
    }

    /// What went wrong, the same on every platform.
    ///
    /// ```
    /// use namedmutex::{ErrorKind, NamedMutex};
    ///
    /// let err = NamedMutex::open("Local\\").unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::InvalidName);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The Win32 error code (`GetLastError`) for this failure: on Windows the OS's own code,
    /// elsewhere the code Windows gives for the same situation. `None` for OS failures that
    /// have no Win32 counterpart.
    ///
    /// ```
    /// let err = namedmutex::NamedMutex::open("a\\b").unwrap_err();
    /// assert_eq!(err.win32_code(), Some(3)); // ERROR_PATH_NOT_FOUND
    /// ```
    pub fn win32_code(&self) -> Option<u32> {
        self.code
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind)
            .field("win32_code", &self.code)
            .field("message", &self.message);
        if let Some(source) = &self.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl ErrorKind {
    /// The phrase used in messages for this kind (for example "not found").
    ///
    /// ```
    /// use namedmutex::ErrorKind;
    ///
    /// assert_eq!(ErrorKind::NotFound.as_str(), ErrorKind::NotFound.to_string());
    /// assert_ne!(ErrorKind::NotFound.as_str(), ErrorKind::NotOwner.as_str());
    /// ```
    pub fn as_str(self) -> &'static str {
        self.describe()
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// The result type of the backends (and, re-exported, of this crate).
pub type Result<T, E = Error> = std::result::Result<T, E>;
