//! Exit statuses and the one-line error reports that go with them.

use namedmutex::ErrorKind;
use std::fmt;

/// Success; for `info`: the mutex exists and is free.
pub const OK: u8 = 0;
/// `info`: the mutex is held by a live owner.
pub const INFO_HELD: u8 = 1;
/// `info`: no mutex has that name.
pub const INFO_ABSENT: u8 = 2;
/// `info`: the owner died holding it; the next acquirer gets it as abandoned.
pub const INFO_ABANDONED: u8 = 3;
/// Bad command line: unknown option, missing argument, bad duration (`EX_USAGE`).
pub const USAGE: u8 = 64;
/// Bad mutex name: `Local\`, `Global\a\b`, too long, empty (`EX_DATAERR`).
pub const BAD_NAME: u8 = 65;
/// Not available on this platform (`EX_UNAVAILABLE`).
pub const UNAVAILABLE: u8 = 69;
/// Any other failure: I/O, corrupt or incompatible object, full tables (`EX_SOFTWARE`).
pub const SOFTWARE: u8 = 70;
/// The timeout passed before the lock could be taken (`EX_TEMPFAIL`); `run`, `hold` and
/// `wait` take `--conflict-exit-code` to change it.
pub const TIMEOUT: u8 = 75;
/// Permission denied: another user's `Global\` mutex (`EX_NOPERM`).
pub const NO_PERMISSION: u8 = 77;
/// The previous holder died holding the lock: `run`/`hold` with `--on-abandoned fail`,
/// and `wait`.
pub const ABANDONED: u8 = 79;
/// `run`: the command was found but could not be started.
pub const CANNOT_EXECUTE: u8 = 126;
/// `run`: the command was not found.
pub const COMMAND_NOT_FOUND: u8 = 127;

/// A failure to report: one line on stderr, and an exit status.
#[derive(Debug)]
pub struct Failure {
    /// What the failure is about (usually the mutex name), printed before the reason.
    pub subject: Option<String>,
    /// The reason.
    pub reason: String,
    /// The exit status.
    pub code: u8,
}

impl Failure {
    /// A failure about `subject`.
    pub fn new(subject: impl Into<String>, reason: impl Into<String>, code: u8) -> Failure {
        Failure {
            subject: Some(subject.into()),
            reason: reason.into(),
            code,
        }
    }

    /// A library error about the mutex `name`, classified by its kind.
    pub fn from_lib(name: &str, err: &namedmutex::Error) -> Failure {
        // The name kinds also describe a missing or bad namespace root: only a name that
        // does not parse is a bad name.
        let bad_name = namedmutex::Name::parse(name).is_err();
        Failure::classify(name, err, bad_name)
    }

    /// A library error about something other than one name (listing a namespace).
    pub fn from_lib_other(subject: &str, err: &namedmutex::Error) -> Failure {
        Failure::classify(subject, err, false)
    }

    fn classify(subject: &str, err: &namedmutex::Error, bad_name: bool) -> Failure {
        let code = match err.kind() {
            ErrorKind::InvalidName | ErrorKind::PathNotFound | ErrorKind::NameTooLong
                if bad_name =>
            {
                BAD_NAME
            }
            ErrorKind::AccessDenied => NO_PERMISSION,
            ErrorKind::Unsupported => UNAVAILABLE,
            // A server that cannot be reached is a service unavailable, not our bug.
            ErrorKind::Io if err.to_string().starts_with("cannot connect to PostgreSQL") => {
                UNAVAILABLE
            }
            _ => SOFTWARE,
        };
        let reason = match err.kind() {
            _ if code == BAD_NAME => format!("invalid name: {err}"),
            ErrorKind::InvalidName | ErrorKind::PathNotFound | ErrorKind::NameTooLong => {
                err.to_string()
            }
            kind => format!("{kind}: {err}"),
        };
        Failure::new(subject, reason, code)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.subject {
            Some(subject) => write!(f, "namedmutex: {subject}: {}", self.reason),
            None => write!(f, "namedmutex: {}", self.reason),
        }
    }
}
