//! `MutexOptions`: the builder behind every way of creating or opening a mutex.

use crate::access::Access;
use crate::error::Result;
use crate::info::MutexInfo;
use crate::mutex::NamedMutex;
use crate::name::{Name, Namespace};
use crate::security::Security;
#[cfg(unix)]
use std::path::{Path, PathBuf};

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
    pub(crate) initial_owner: bool,
    pub(crate) access: Access,
    pub(crate) inheritable: bool,
    pub(crate) security: Security,
    #[cfg(unix)]
    pub(crate) root: Option<PathBuf>,
}

impl Default for MutexOptions {
    fn default() -> Self {
        MutexOptions::new()
    }
}

impl MutexOptions {
    /// Defaults: not initially owned, `MUTEX_ALL_ACCESS`, not inheritable,
    /// [`Security::CurrentUser`].
    pub fn new() -> MutexOptions {
        MutexOptions {
            initial_owner: false,
            access: Access::MUTEX_ALL_ACCESS,
            inheritable: false,
            security: Security::CurrentUser,
            #[cfg(unix)]
            root: None,
        }
    }

    /// Whether the calling thread owns a mutex this call *creates* (count 1). Ignored when
    /// the name already exists: the caller then does not own it.
    pub fn initial_owner(mut self, yes: bool) -> MutexOptions {
        self.initial_owner = yes;
        self
    }

    /// The rights the handle gets. Waiting needs [`Access::SYNCHRONIZE`]; an access of 0
    /// is refused by `open`.
    pub fn access(mut self, access: Access) -> MutexOptions {
        self.access = access;
        self
    }

    /// Whether child processes started by this process can inherit the handle (see
    /// [`NamedMutex::inheritable_handle`]).
    pub fn inheritable(mut self, yes: bool) -> MutexOptions {
        self.inheritable = yes;
        self
    }

    /// Who may open a `Global\` object this call creates.
    pub fn security(mut self, security: Security) -> MutexOptions {
        self.security = security;
        self
    }

    /// The directory that holds the namespaces (Unix only). By default it is
    /// `$NAMEDMUTEX_ROOT`, or `/dev/shm` when that variable is unset. Processes share objects
    /// only when they use the same root; tests and containers use this to isolate or share.
    #[cfg(unix)]
    pub fn root(mut self, dir: impl AsRef<Path>) -> MutexOptions {
        self.root = Some(dir.as_ref().to_owned());
        self
    }

    /// Creates the mutex `name`, or opens it if it exists (`CreateMutexEx`). Returns the
    /// handle and whether the object existed before the call. `""` creates an unnamed mutex.
    pub fn create(&self, name: &str) -> Result<(NamedMutex, bool)> {
        NamedMutex::create_with(name, self)
    }

    /// Opens the existing mutex `name` (`OpenMutex`); [`crate::ErrorKind::NotFound`] if
    /// there is none.
    pub fn open(&self, name: &str) -> Result<NamedMutex> {
        NamedMutex::open_with(name, self)
    }

    /// Every mutex in `namespace` under this root (see [`crate::list`]).
    pub fn list(&self, namespace: Namespace) -> Result<Vec<MutexInfo>> {
        crate::sys::inspect::list(self, namespace)
    }

    /// The mutex `name` under this root, or `None` (see [`crate::info`]).
    pub fn info(&self, name: &str) -> Result<Option<MutexInfo>> {
        match Name::parse(name)? {
            Some(parsed) => crate::sys::inspect::info(self, &parsed),
            None => Err(crate::error::Error::new(
                crate::ErrorKind::InvalidParameter,
                "an unnamed mutex cannot be looked up by name",
            )),
        }
    }
}
