//! `MutexOptions`: the builder behind every way of creating or opening a mutex.

use crate::access::Access;
use crate::error::Result;
use crate::info::MutexInfo;
use crate::mutex::NamedMutex;
use crate::name::{Name, Namespace};
use crate::security::Security;
use crate::sys::{Inspect, RawMutex, Spec};
#[cfg(unix)]
use std::path::Path;
use std::time::Duration;

/// See [`MutexOptions::busy_timeout`].
const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(2);

/// Options for creating or opening a mutex: `CreateMutexEx` and `OpenMutex` in one builder.
///
/// ```
/// use namedmutex::{Access, MutexOptions};
///
/// let name = format!("doc-options-{}", std::process::id());
/// let (m, existed) = MutexOptions::new().initial_owner(true).create(&name)?;
/// assert!(!existed);
/// // Another handle, opened with only the right to wait:
/// let waiter = MutexOptions::new().access(Access::SYNCHRONIZE).open(&name)?;
/// m.release()?;
/// assert!(waiter.wait(None)?.is_acquired());
/// waiter.release()?;
/// # Ok::<(), namedmutex::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct MutexOptions {
    /// What the backend receives (`crate::sys::Spec`): the builder only fills it in.
    pub(crate) spec: Spec,
}

impl Default for MutexOptions {
    fn default() -> Self {
        MutexOptions::new()
    }
}

impl MutexOptions {
    /// Defaults: not initially owned, `MUTEX_ALL_ACCESS`, not inheritable,
    /// [`Security::CurrentUser`].
    ///
    /// ```
    /// let opts = namedmutex::MutexOptions::new();
    /// let (m, existed) = opts.create("")?; // unnamed
    /// assert!(!existed);
    /// # drop(m);
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    pub fn new() -> MutexOptions {
        MutexOptions {
            spec: Spec {
                initial_owner: false,
                access: Access::MUTEX_ALL_ACCESS.into(),
                inheritable: false,
                security: Security::CurrentUser.into(),
                #[cfg(unix)]
                root: None,
                keep_abandoned: false,
                busy_timeout: Some(DEFAULT_BUSY_TIMEOUT),
                time_acquisitions: false,
                #[cfg(feature = "postgres")]
                server: std::env::var("NAMEDMUTEX_SERVER")
                    .ok()
                    .map(|url| url.trim().to_owned())
                    .filter(|url| !url.is_empty())
                    .map(Into::into),
            },
        }
    }

    /// Keeps the object on the PostgreSQL server `url` instead of this machine, so that
    /// processes on every host that reaches the server share it (feature `postgres`).
    /// Everything else stays as it is: the same names, waits, guards and abandonment
    /// reports, plus a fencing token ([`MutexGuard::fencing_token`](crate::MutexGuard::fencing_token)).
    /// `url` is a libpq URL (`postgresql://user:password@host:port/database`) or key=value
    /// string; it is checked when a mutex is created or opened. What it leaves out comes from
    /// libpq's environment variables (`PGHOST`, `PGUSER`, `PGSSLMODE`, ...); without a
    /// password of its own, it takes `PGPASSWORD`, else the password file's (`PGPASSFILE` or
    /// `~/.pgpass`, a private file only), as libpq does. Its `sslmode`, `sslrootcert`,
    /// `sslcert` and `sslkey` ask for TLS as they do in libpq (feature `postgres-tls`).
    /// Without this call, the
    /// environment variable `NAMEDMUTEX_SERVER` (when set and not empty) names the server;
    /// [`MutexOptions::local`] keeps a mutex on this machine whatever it says.
    ///
    /// The README's "Across machines" says what is guaranteed and what is not.
    ///
    /// ```
    /// use namedmutex::{ErrorKind, MutexOptions};
    ///
    /// let opts = MutexOptions::new().server("postgresql://app@db.example:5432/locks");
    /// # let _ = opts;
    /// // A URL that cannot be parsed is refused when the mutex is made, naming it:
    /// let err = MutexOptions::new().server("postgresql://app@db:port/x").create("jobs").unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::InvalidParameter);
    /// assert!(err.to_string().contains("postgresql://app@db:port/x"));
    /// ```
    #[cfg(feature = "postgres")]
    pub fn server(mut self, url: &str) -> MutexOptions {
        self.spec.server = Some(url.into());
        self
    }

    /// Keeps the object on this machine, even if `NAMEDMUTEX_SERVER` names a server
    /// (feature `postgres`).
    ///
    /// ```
    /// let (m, _) = namedmutex::MutexOptions::new().local().create("")?;
    /// # drop(m);
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    #[cfg(feature = "postgres")]
    pub fn local(mut self) -> MutexOptions {
        self.spec.server = None;
        self
    }

    /// Records when the handle's thread acquires the mutex, also when it did not have to
    /// wait, so that [`OwnerInfo::acquired`](crate::OwnerInfo::acquired) (and the
    /// `namedmutex` command's `HELD` column) always says how long it has been held. By
    /// default only acquisitions that waited record a time: an uncontended one costs a
    /// clock read more than the nanoseconds it otherwise takes. A timed handle does not use
    /// biased locking. The `namedmutex` command times its acquisitions. No effect on Windows.
    ///
    /// ```
    /// use namedmutex::MutexOptions;
    ///
    /// let name = format!("doc-timed-{}", std::process::id());
    /// let (m, _) = MutexOptions::new().time_acquisitions(true).create(&name)?;
    /// assert!(m.wait(None)?.is_acquired());
    /// # #[cfg(target_os = "linux")] {
    /// let owner = namedmutex::info(&name)?.unwrap().owner.unwrap();
    /// assert!(owner.acquired.is_some());
    /// # }
    /// m.release()?;
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    pub fn time_acquisitions(mut self, yes: bool) -> MutexOptions {
        self.spec.time_acquisitions = yes;
        self
    }

    /// Keeps an abandoned mutex until an acquirer has been told. With this option, when
    /// an owner dies holding the mutex (or gives it up with [`NamedMutex::abandon`]), the
    /// object outlives its last handle: the next process to open the name gets
    /// [`WaitStatus::Abandoned`](crate::WaitStatus::Abandoned) on its first acquisition,
    /// exactly once, even if no process had the mutex open when its owner died. After that
    /// acquirer releases, the object lives and dies as usual.
    ///
    /// The default is Win32's: an object dies with its last handle, and a crash that
    /// nobody else saw (no other process had the mutex open) is forgotten. Once any handle
    /// asks for this, the object keeps the setting for the rest of its life. The
    /// `namedmutex` command turns it on for `run`, `hold` and `wait`. On Windows the kernel
    /// owns objects' lifetimes, and this option does nothing.
    ///
    /// ```
    /// use namedmutex::{MutexOptions, WaitStatus};
    ///
    /// let name = format!("doc-keep-{}", std::process::id());
    /// let opts = MutexOptions::new().keep_abandoned(true);
    /// # #[cfg(target_os = "linux")] {
    /// let (m, _) = opts.create(&name)?;
    /// assert!(m.wait(None)?.is_acquired());
    /// m.abandon("the job stopped half-way")?; // as a crash would
    /// drop(m); // the last handle: without the option the object would be gone
    /// let (m, existed) = opts.create(&name)?;
    /// assert!(existed);
    /// assert_eq!(m.wait(None)?, WaitStatus::Abandoned);
    /// m.release()?;
    /// # }
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    pub fn keep_abandoned(mut self, yes: bool) -> MutexOptions {
        self.spec.keep_abandoned = yes;
        self
    }

    /// How long `create` and `open` keep trying while another process holds the object's
    /// file locked (which normal use does for microseconds, while it creates or removes
    /// the object). A process stopped at that moment (SIGSTOP, a debugger, a paused
    /// container) holds it until it is continued; after this long the call fails with
    /// [`ErrorKind::Busy`](crate::ErrorKind::Busy), naming the process and saying whether it
    /// is stopped. `None` waits as long as it takes. The default is 2 seconds. Ignored on
    /// Windows, whose kernel has no such state.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let opts = namedmutex::MutexOptions::new().busy_timeout(Some(Duration::from_secs(30)));
    /// let (_m, _) = opts.create("")?;
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    pub fn busy_timeout(mut self, limit: Option<Duration>) -> MutexOptions {
        self.spec.busy_timeout = limit;
        self
    }

    /// Whether the calling thread owns a mutex this call *creates* (count 1). Ignored when
    /// the name already exists: the caller then does not own it.
    ///
    /// ```
    /// let (m, _) = namedmutex::MutexOptions::new().initial_owner(true).create("")?;
    /// m.release()?; // owned since creation
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    pub fn initial_owner(mut self, yes: bool) -> MutexOptions {
        self.spec.initial_owner = yes;
        self
    }

    /// The rights the handle gets. Waiting needs [`Access::SYNCHRONIZE`]; an access of 0
    /// is refused by `open`.
    ///
    /// ```
    /// use namedmutex::{Access, ErrorKind, MutexOptions};
    ///
    /// let name = format!("doc-access-{}", std::process::id());
    /// let (_m, _) = MutexOptions::new().create(&name)?;
    /// let query_only = MutexOptions::new().access(Access::MUTEX_MODIFY_STATE).open(&name)?;
    /// assert_eq!(query_only.wait(None).unwrap_err().kind(), ErrorKind::AccessDenied);
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    pub fn access(mut self, access: Access) -> MutexOptions {
        self.spec.access = access.into();
        self
    }

    /// Whether child processes started by this process can inherit the handle (see
    /// [`NamedMutex::inheritable_handle`]).
    ///
    /// ```
    /// let m = namedmutex::MutexOptions::new().inheritable(true).create("")?.0;
    /// assert!(m.inheritable_handle().is_some());
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    pub fn inheritable(mut self, yes: bool) -> MutexOptions {
        self.spec.inheritable = yes;
        self
    }

    /// Who may open a `Global\` object this call creates.
    ///
    /// ```
    /// use namedmutex::{MutexOptions, Security};
    ///
    /// let name = format!("Global\\doc-security-{}", std::process::id());
    /// let (_m, existed) = MutexOptions::new().security(Security::CurrentUser).create(&name)?;
    /// assert!(!existed);
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    pub fn security(mut self, security: Security) -> MutexOptions {
        self.spec.security = security.into();
        self
    }

    /// The directory that holds the namespaces (Unix only). By default it is
    /// `$NAMEDMUTEX_ROOT`, or `/dev/shm` when that variable is unset. Processes share objects
    /// only when they use the same root; tests and containers use this to isolate or share.
    ///
    /// ```
    /// let dir = std::env::temp_dir().join(format!("doc-root-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// # use std::os::unix::fs::PermissionsExt;
    /// # std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    /// let opts = namedmutex::MutexOptions::new().root(&dir);
    /// let (m, _) = opts.create("isolated")?;
    /// assert!(namedmutex::NamedMutex::open("isolated").is_err()); // not in the default root
    /// assert!(opts.open("isolated").is_ok());
    /// # drop(m);
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    #[cfg(unix)]
    pub fn root(mut self, dir: impl AsRef<Path>) -> MutexOptions {
        self.spec.root = Some(dir.as_ref().to_owned());
        self
    }

    /// Creates the mutex `name`, or opens it if it exists (`CreateMutexEx`). Returns the
    /// handle and whether the object existed before the call. `""` creates an unnamed mutex.
    ///
    /// ```
    /// let name = format!("doc-opts-create-{}", std::process::id());
    /// let (a, existed) = namedmutex::MutexOptions::new().create(&name)?;
    /// assert!(!existed);
    /// let (b, existed) = namedmutex::MutexOptions::new().create(&name)?;
    /// assert!(existed);
    /// # drop((a, b));
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    pub fn create(&self, name: &str) -> Result<(NamedMutex, bool)> {
        NamedMutex::create_with(name, self)
    }

    /// Opens the existing mutex `name` (`OpenMutex`); [`crate::ErrorKind::NotFound`] if
    /// there is none.
    ///
    /// ```
    /// use namedmutex::{ErrorKind, MutexOptions};
    ///
    /// let name = format!("doc-opts-open-{}", std::process::id());
    /// assert_eq!(MutexOptions::new().open(&name).unwrap_err().kind(), ErrorKind::NotFound);
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    pub fn open(&self, name: &str) -> Result<NamedMutex> {
        NamedMutex::open_with(name, self)
    }

    /// Every mutex in `namespace` under this root (see [`crate::list`]).
    ///
    /// ```
    /// use namedmutex::{MutexOptions, Namespace};
    ///
    /// let name = format!("doc-opts-list-{}", std::process::id());
    /// let opts = MutexOptions::new();
    /// let (_m, _) = opts.create(&name)?;
    /// assert!(opts.list(Namespace::Local)?.iter().any(|i| i.name == name));
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    pub fn list(&self, namespace: Namespace) -> Result<Vec<MutexInfo>> {
        let found = <RawMutex as Inspect>::list(&self.spec, namespace.into())?;
        Ok(found.into_iter().map(MutexInfo::from).collect())
    }

    /// Every user's `Local\` mutexes under this root that the caller may read: all of
    /// them for root (as `lslocks` shows every user's locks), the caller's own otherwise,
    /// with the users whose namespaces could not be read listed beside. On Windows, where
    /// `Local\` is per session, the caller's session's mutexes.
    ///
    /// ```
    /// use namedmutex::MutexOptions;
    ///
    /// let name = format!("doc-all-users-{}", std::process::id());
    /// let opts = MutexOptions::new();
    /// let (_m, _) = opts.create(&name)?;
    /// # #[cfg(target_os = "linux")] {
    /// let all = opts.list_all_users()?;
    /// assert!(all.mutexes.iter().any(|i| i.name == name));
    /// # }
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    pub fn list_all_users(&self) -> Result<crate::AllUsers> {
        let (mutexes, unreadable) = <RawMutex as Inspect>::list_all_users(&self.spec)?;
        Ok(crate::AllUsers {
            mutexes: mutexes.into_iter().map(MutexInfo::from).collect(),
            unreadable,
        })
    }

    /// Removes the stale objects of `namespace` under this root (see [`crate::prune()`]).
    ///
    /// ```
    /// use namedmutex::{MutexOptions, Namespace};
    ///
    /// let opts = MutexOptions::new();
    /// let name = format!("doc-opts-prune-{}", std::process::id());
    /// let (_m, _) = opts.create(&name)?;
    /// # #[cfg(target_os = "linux")] {
    /// let pruned = opts.prune(Namespace::Local)?;
    /// assert!(pruned.in_use >= 1); // ours is open: left alone
    /// assert!(opts.info(&name)?.is_some());
    /// # }
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    pub fn prune(&self, namespace: Namespace) -> Result<crate::Pruned> {
        <RawMutex as Inspect>::prune(&self.spec, namespace.into()).map(crate::Pruned::from)
    }

    /// The mutex `name` under this root, or `None` (see [`crate::info()`]).
    ///
    /// ```
    /// let name = format!("doc-opts-info-{}", std::process::id());
    /// let opts = namedmutex::MutexOptions::new();
    /// assert!(opts.info(&name)?.is_none());
    /// let (_m, _) = opts.create(&name)?;
    /// assert!(opts.info(&name)?.is_some());
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    pub fn info(&self, name: &str) -> Result<Option<MutexInfo>> {
        match Name::parse(name)? {
            Some(parsed) => Ok(
                <RawMutex as Inspect>::info(&self.spec, &(&parsed).into())?.map(MutexInfo::from)
            ),
            None => Err(crate::error::Error::new(
                crate::ErrorKind::InvalidParameter,
                "an unnamed mutex cannot be looked up by name",
            )),
        }
    }
}
