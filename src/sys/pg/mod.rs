//! The PostgreSQL backend: the same named mutex across machines (feature `postgres`).
//!
//! Ownership is a session-level advisory lock held by the owning thread's own session
//! (`session.rs`); a row per name records the owner's claim, so the next owner can tell a
//! release from a death and reports `Abandoned` exactly once; open handles are shared locks
//! in one session per process (`handles.rs`), so an object lives while a handle does, in any
//! process on any host. schema.sql (the table) and functions.sql hold the server side,
//! installed on first use (`schema.rs`); `server.rs` applies the settings that detect a dead
//! host.
//!
//! | module | what it holds |
//! |---|---|
//! | `server` | the URL, and the per-session detection settings |
//! | `hosts` | several hosts with a password each: one single-host configuration per host, in libpq's order |
//! | `libpq_env` | libpq's environment variables, for what the URL leaves out |
//! | `service` | libpq's connection service file (`service=NAME`), before the environment |
//! | `password` | a password the URL lacks: `PGPASSWORD`, then the password file (a line per host), as libpq |
//! | `tls` | TLS from the URL's `sslmode`, `sslrootcert`, `sslcert`, `sslkey`, `sslpassword`, `sslcrl` and `sslcrldir`, as libpq reads them |
//! | `schema`, `schema.sql`, `functions.sql` | the server's table (versioned) and functions (revised in place) |
//! | `session` | a thread's owning session: waits, claims, releases, fencing tokens |
//! | `ahead` | the owning session of a process's first acquisition, connected beside its first open |
//! | `cancel` | a dropped async wait's cancel: a request that reaches the wait statement only |
//! | `handles` | a process's handle session: create, open, duplicate, close |
//! | `multi` | wait-any and wait-all (polling: weaker than local, see README) |
//! | `inspect` | list, info, prune |
//! | `sql_error` | SQLSTATEs in this crate's error kinds |
//!
//! What is weaker than the local backends is listed in the README ("Across machines").

mod ahead;
mod at_exit;
mod cancel;
mod handles;
mod hosts;
mod inspect;
mod libpq_env;
mod multi;
mod password;
mod runtime;
mod schema;
mod server;
mod service;
mod session;
mod sql_error;
mod tls;

pub(crate) use cancel::PgCancel;
pub(crate) use server::Server;

use super::{Backend, ServerBackend, Spec};
use crate::sys::contract::Access;
use crate::sys::contract::Security;
use crate::sys::contract::{Error, ErrorKind, Result};
use crate::sys::contract::{Name, Namespace};
use crate::sys::contract::{WaitAny, WaitStatus};
use runtime::off_runtime;
use session::{Session, Uncancellable, with_existing, with_thread_session};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A handle to a mutex on a PostgreSQL server.
pub(crate) struct PgMutex {
    server: Server,
    id: i32,
    access: Access,
}

impl std::fmt::Debug for PgMutex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgMutex")
            .field("server", &self.server.key)
            .field("id", &self.id)
            .finish()
    }
}

/// A process-owned acquisition: the session that holds the lock, lent to the claim.
pub(crate) struct PgClaim {
    session: Session,
    id: i32,
    status: WaitStatus,
}

/// A slice of a cancellable wait: how late a cancel that raced the wait's start is seen.
const CANCEL_SLICE: Duration = Duration::from_millis(200);

/// The server of `spec` (only called for specs that name one).
fn server_of(spec: &Spec) -> Result<Server> {
    match &spec.server {
        Some(url) => Server::parse(url),
        None => Err(Error::new(
            ErrorKind::InvalidParameter,
            "no PostgreSQL server was named",
        )),
    }
}

impl ServerBackend for PgMutex {
    /// Installs the schema on `url`'s database if it has none (`namedmutex server-setup`);
    /// `lock_down` also revokes PostgreSQL's advisory lock functions from PUBLIC.
    fn setup_server(url: &str, lock_down: bool) -> Result<()> {
        let server = Server::parse(url)?;
        let mut client = server.connect()?;
        schema::setup(&server.key, &mut client, lock_down)
    }
}

/// A name no caller can give (names never contain `\` after the prefix): an unnamed object.
fn unnamed() -> String {
    use std::hash::BuildHasher;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let unique = std::collections::hash_map::RandomState::new().hash_one((
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now(),
    ));
    format!("\\unnamed\\{}-{unique:016x}", host_name())
}

/// This host's name, for claims and `list` (read once per process).
pub(crate) fn host_name() -> String {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(read_host_name).clone()
}

fn read_host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "?".to_owned())
}

/// A number for the calling thread: the kernel's thread id where there is one.
pub(crate) fn thread_number() -> u32 {
    #[cfg(target_os = "linux")]
    {
        rustix::thread::gettid().as_raw_nonzero().get() as u32
    }
    #[cfg(not(target_os = "linux"))]
    {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        thread_local!(static ID: u64 = NEXT.fetch_add(1, Ordering::Relaxed));
        ID.with(|id| *id as u32)
    }
}

impl PgMutex {
    fn new(server: Server, id: i32, access: Access) -> PgMutex {
        PgMutex { server, id, access }
    }

    fn need(&self, right: Access, what: &str) -> Result<()> {
        if self.access.contains(right) {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::AccessDenied,
                format!("this handle was opened without the access {what} needs"),
            ))
        }
    }
}

impl Drop for PgMutex {
    fn drop(&mut self) {
        handles::close(&self.server, self.id);
    }
}

impl Backend for PgMutex {
    type Claim = PgClaim;
    type Cancel = PgCancel;
    type Waiter = PgWaiter;
    const TRY_DETACHED_IS_EXACT: bool = true;

    fn create(name: Option<&Name<'_>>, spec: &Spec) -> Result<(PgMutex, bool)> {
        let server = server_of(spec)?;
        let everyone = match spec.security {
            Security::CurrentUser => false,
            Security::Everyone => true,
            Security::UnixGroup(_) => {
                return Err(Error::new(
                    ErrorKind::InvalidParameter,
                    "Security::UnixGroup has no meaning on a PostgreSQL server: use Everyone (any role granted namedmutex_user) or CurrentUser (the creating role)",
                ));
            }
        };
        // `inheritable` has nothing to do: a child process opens the object by name (its
        // handle is a lock in this process's session, which a child cannot share).
        let access = spec.access.grant("the mutex")?;
        let (global, object) = match name {
            Some(n) => (n.namespace == Namespace::Global, n.object.to_owned()),
            None => (false, unnamed()),
        };
        if spec.initial_owner && tokio::runtime::Handle::try_current().is_ok() {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "a PostgreSQL mutex cannot be created owned by a thread inside an async runtime: ownership belongs to a thread, and the task may move (create it unowned, then use lock_async)",
            ));
        }
        let take = |id: i32| -> Result<()> {
            if spec.initial_owner {
                // Nobody can open the new object before this returns: the creator is first.
                with_thread_session(&server, |s| s.try_acquire(id)).map(drop)
            } else {
                Ok(())
            }
        };
        let (id, existed) = handles::open(
            &server,
            global,
            &object,
            handles::How {
                create: true,
                everyone,
                keep_abandoned: spec.keep_abandoned,
                initial_owner: spec.initial_owner,
            },
            spec.busy_timeout,
            &take,
        )?;
        Ok((PgMutex::new(server, id, access), existed))
    }

    fn open(name: &Name<'_>, spec: &Spec) -> Result<PgMutex> {
        let server = server_of(spec)?;
        let global = name.namespace == Namespace::Global;
        let (id, _) = handles::open(
            &server,
            global,
            name.object,
            handles::How {
                create: false,
                everyone: false,
                keep_abandoned: spec.keep_abandoned,
                initial_owner: false,
            },
            spec.busy_timeout,
            &|_| Ok(()),
        )?;
        // The name is looked up before the access is checked, as Windows does.
        // (On an error, dropping `m` closes the handle again.)
        let mut m = PgMutex::new(server, id, Access::MUTEX_ALL_ACCESS);
        m.access = spec.access.grant(&format!(
            "the mutex {:?}",
            crate::sys::contract::shorten(name.full)
        ))?;
        Ok(m)
    }

    fn wait(&self, timeout: Option<Duration>) -> Result<WaitStatus> {
        self.need(Access::SYNCHRONIZE, "waiting")?;
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        with_thread_session(&self.server, |s| {
            if let Some(status) = s.recurse(self.id) {
                return status;
            }
            if timeout == Some(Duration::ZERO) {
                return Ok(s.try_acquire(self.id)?.unwrap_or(WaitStatus::TimedOut));
            }
            Ok(s.acquire(self.id, deadline, None, &Uncancellable)?
                .unwrap_or(WaitStatus::TimedOut))
        })
    }

    fn wait_multiple(
        handles: &[&PgMutex],
        all: bool,
        timeout: Option<Duration>,
    ) -> Result<WaitAny> {
        multi::wait(handles, all, timeout)
    }

    fn release(&self) -> Result<()> {
        with_existing(&self.server, |s| match s {
            Some(s) => s.release(self.id, None),
            None => Err(session::not_owner()),
        })
    }

    fn abandon(&self, note: &str) -> Result<()> {
        with_existing(&self.server, |s| match s {
            Some(s) => s.release(self.id, Some(note)),
            None => Err(session::not_owner()),
        })
    }

    fn still_named(&self) -> bool {
        // Rows are never removed while a handle exists, and a name keeps its row.
        true
    }

    fn try_clone(&self) -> Result<PgMutex> {
        handles::duplicate(&self.server, self.id)?;
        Ok(PgMutex::new(self.server.clone(), self.id, self.access))
    }

    fn inheritable_handle(&self) -> Option<u64> {
        None
    }

    #[allow(unsafe_code)] // the trait's contract; nothing unsafe is done here
    unsafe fn from_inherited_handle(_value: u64) -> Result<PgMutex> {
        Err(Error::new(
            ErrorKind::Unsupported,
            "a PostgreSQL mutex cannot be inherited: the child opens it by name",
        ))
    }

    fn identity(&self) -> Option<u64> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (&*self.server.key, self.id).hash(&mut h);
        // The top bit keeps it apart from the local backends' identities.
        Some(h.finish() | 1 << 63)
    }

    fn try_acquire_detached(&self) -> Result<Option<(WaitStatus, PgClaim)>> {
        self.need(Access::SYNCHRONIZE, "waiting")?;
        off_runtime(|| self.try_acquire_detached_here())
    }

    /// The server and the object's id: the wait makes no handle of its own.
    fn waiter(&self) -> Result<PgWaiter> {
        self.need(Access::SYNCHRONIZE, "waiting")?;
        Ok(PgWaiter {
            server: self.server.clone(),
            id: self.id,
        })
    }

    fn acquire_detached(
        waiter: &PgWaiter,
        timeout: Option<Duration>,
        cancel: &PgCancel,
    ) -> Result<Option<(WaitStatus, PgClaim)>> {
        off_runtime(|| acquire_detached_here(&waiter.server, waiter.id, timeout, cancel))
    }

    fn release_detached(&self, mut claim: PgClaim) -> Result<()> {
        off_runtime(move || {
            let result = claim.session.release(claim.id, None);
            session::return_session(claim.session);
            result
        })
    }

    fn undo_detached(_waiter: &PgWaiter, mut claim: PgClaim) -> Result<()> {
        // An abandonment seen by nobody stays standing for the next acquirer.
        let note = (claim.status == WaitStatus::Abandoned).then_some(
            "abandoned by an owner that died (seen by an acquisition that was cancelled)",
        );
        off_runtime(move || {
            let result = claim.session.release(claim.id, note);
            session::return_session(claim.session);
            result
        })
    }

    fn fencing_token(&self) -> Option<u64> {
        with_existing(&self.server, |s| s.and_then(|s| s.token(self.id)))
    }

    fn claim_token(claim: &PgClaim) -> Option<u64> {
        claim.session.token(claim.id)
    }

    fn still_owned(&self) -> Result<bool> {
        with_existing(&self.server, |s| match s {
            Some(s) => s.still_owned(self.id),
            None => Ok(false),
        })
    }
}

impl PgMutex {
    fn try_acquire_detached_here(&self) -> Result<Option<(WaitStatus, PgClaim)>> {
        let mut session = session::detached_session(&self.server)?;
        let outcome = session.try_acquire(self.id)?;
        Ok(claim_or_return(session, self.id, outcome))
    }
}

/// What a helper thread waits with for a process-owned acquisition.
pub(crate) struct PgWaiter {
    server: Server,
    id: i32,
}

/// A process-owned acquisition of object `id` that holds `session`, or (nothing acquired)
/// the session given back for reuse.
fn claim_or_return(
    session: Session,
    id: i32,
    outcome: Option<WaitStatus>,
) -> Option<(WaitStatus, PgClaim)> {
    match outcome {
        Some(status) => Some((
            status,
            PgClaim {
                session,
                id,
                status,
            },
        )),
        None => {
            session::return_session(session);
            None
        }
    }
}

fn acquire_detached_here(
    server: &Server,
    id: i32,
    timeout: Option<Duration>,
    cancel: &PgCancel,
) -> Result<Option<(WaitStatus, PgClaim)>> {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let mut session = session::detached_session(server)?;
    let (token, tls) = (session.cancel_token(), tls::copy_of(&session.server.tls));
    cancel.arm(move || {
        let _ = token.cancel_query(tls);
    });
    // A session a cancel request was sent at is given up by `acquire` itself.
    let outcome = session.acquire(id, deadline, Some(CANCEL_SLICE), cancel);
    cancel.disarm();
    Ok(claim_or_return(session, id, outcome?))
}
