//! PostgreSQL's errors in this crate's terms: each SQLSTATE the backend can meet becomes the
//! `ErrorKind` (and so the Win32 code) of the same failure on a local backend, with a message
//! that names the server and what to do.

use crate::sys::contract::{Error, ErrorKind};
use postgres::error::SqlState;

/// What a failed statement means for the caller.
pub(crate) enum Failure {
    /// `lock_timeout` passed (55P03): the wait may still have been granted.
    LockTimeout,
    /// The deadlock detector chose this wait (40P01): Win32 would go on waiting.
    Deadlock,
    /// The statement was cancelled (57014): a cancel signal fired.
    Cancelled,
    /// The connection is gone: the server released everything this session held.
    SessionLost(Error),
    /// Anything else, already in this crate's terms.
    Other(Error),
}

/// Classifies the error of a statement run on `server` while doing `what`.
pub(crate) fn classify(server: &str, what: &str, e: postgres::Error) -> Failure {
    let Some(db) = e.as_db_error() else {
        // Without a server error, the failure is the connection's: closed, or an I/O error
        // on its socket (a reset, a timeout). Anything else is a value this crate sent or
        // read wrongly.
        let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
        return if e.is_closed() || io {
            Failure::SessionLost(Error::new(
                ErrorKind::Io,
                format!("lost the connection to PostgreSQL at {server} while {what}: {e}"),
            ))
        } else {
            Failure::Other(Error::new(
                ErrorKind::Io,
                format!("PostgreSQL at {server}, while {what}: {e}"),
            ))
        };
    };
    let code = db.code();
    if *code == SqlState::LOCK_NOT_AVAILABLE {
        return Failure::LockTimeout;
    }
    if *code == SqlState::T_R_DEADLOCK_DETECTED {
        return Failure::Deadlock;
    }
    if *code == SqlState::QUERY_CANCELED {
        return Failure::Cancelled;
    }
    if *code == SqlState::ADMIN_SHUTDOWN
        || *code == SqlState::CRASH_SHUTDOWN
        || *code == SqlState::CANNOT_CONNECT_NOW
        || *code == SqlState::IDLE_SESSION_TIMEOUT
    {
        return Failure::SessionLost(Error::new(
            ErrorKind::Io,
            format!(
                "PostgreSQL at {server} ended the session while {what}: {}",
                db.message()
            ),
        ));
    }
    let kind = if *code == SqlState::INSUFFICIENT_PRIVILEGE {
        ErrorKind::AccessDenied
    } else if *code == SqlState::NO_DATA_FOUND {
        ErrorKind::NotFound
    } else if *code == SqlState::READ_ONLY_SQL_TRANSACTION {
        ErrorKind::Unsupported
    } else {
        ErrorKind::Io
    };
    let mut message = format!("PostgreSQL at {server}, while {what}: {}", db.message());
    if *code == SqlState::INSUFFICIENT_PRIVILEGE && db.message().contains("namedmutex") {
        // Our own refusal: its message already says who created the object.
    } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
        message.push_str(
            " (this role may not use namedmutex on this database: an administrator grants it with `GRANT namedmutex_user TO <role>`)",
        );
    }
    Failure::Other(Error::new(kind, message))
}

/// The error of a statement, whatever it was (for callers with no special case).
pub(crate) fn sql_error(server: &str, what: &str, e: postgres::Error) -> Error {
    match classify(server, what, e) {
        Failure::SessionLost(err) | Failure::Other(err) => err,
        Failure::LockTimeout => Error::new(
            ErrorKind::Io,
            format!("PostgreSQL at {server}: lock_timeout while {what}"),
        ),
        Failure::Deadlock => Error::new(
            ErrorKind::Io,
            format!("PostgreSQL at {server}: deadlock detected while {what}"),
        ),
        Failure::Cancelled => Error::new(
            ErrorKind::Io,
            format!("PostgreSQL at {server}: statement cancelled while {what}"),
        ),
    }
}

/// What went wrong in a connection attempt, without saying where: the server's message, or
/// the crate's with its innermost cause.
pub(crate) fn describe(e: postgres::Error) -> String {
    let text = e.to_string();
    e.as_db_error()
        .map(|db| db.message().to_owned())
        .unwrap_or_else(|| {
            let mut source: Option<&dyn std::error::Error> = std::error::Error::source(&e);
            let mut last = text.clone();
            while let Some(s) = source {
                last = s.to_string();
                source = s.source();
            }
            if last == text {
                text.clone()
            } else {
                format!("{text}: {last}")
            }
        })
}

/// What a connection attempt met, with the likely cause spelled out, without saying where
/// (`server.rs` does, once for all its tries); `skipped_file`: why a password file was not
/// read (said when the failure is about a password).
pub(crate) fn connect_failure(e: postgres::Error, skipped_file: Option<&str>) -> String {
    let detail = describe(e);
    let hint = if detail.contains("unsupported startup parameter") {
        " (a connection pooler such as PgBouncer refused the session settings: namedmutex needs a direct connection or session pooling, because advisory locks belong to a server session)"
    } else if detail.contains("password missing") {
        " (the server wants a password: give it in PGPASSWORD, or in a password file that only you may read, ~/.pgpass or PGPASSFILE, one host:port:database:user:password line)"
    } else if detail.contains("Connection refused") || detail.contains("timed out") {
        " (is the server running, and is the host and port right?)"
    } else {
        ""
    };
    let about_password = detail.contains("password") || detail.contains("authentication");
    let file = match skipped_file {
        Some(why) if about_password => format!("; {why}"),
        _ => String::new(),
    };
    format!("{detail}{hint}{file}")
}
