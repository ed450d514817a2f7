//! Setting up a PostgreSQL server for namedmutex (feature `postgres`).

/// Installs namedmutex's schema on the database of `url` if it has none, as the first use
/// of a server does by itself; an administrator runs it once when the roles that use
/// namedmutex may not create schemas (`namedmutex server-setup`). The schema is versioned:
/// a server whose schema another version of namedmutex installed is refused with
/// [`ErrorKind::Incompatible`](crate::ErrorKind::Incompatible).
///
/// Roles other than the installer use namedmutex once granted the role `namedmutex_user`
/// (`GRANT namedmutex_user TO app`). With `lock_down`, PostgreSQL's own advisory lock
/// functions are also revoked from PUBLIC, so that no role can take (and squat) a
/// namedmutex lock key directly; this needs a superuser, and affects every user of that
/// database: give namedmutex a database of its own.
///
/// ```
/// use namedmutex::ErrorKind;
///
/// // Port 1 on the loopback: nothing listens there.
/// let err = namedmutex::setup_server("postgresql://app@127.0.0.1:1/locks", false).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Io);
/// assert!(err.to_string().contains("cannot connect to PostgreSQL at postgresql://app@127.0.0.1:1/locks"));
/// ```
pub fn setup_server(url: &str, lock_down: bool) -> crate::Result<()> {
    <crate::sys::ServerMutex as crate::sys::ServerBackend>::setup_server(url, lock_down)
}
