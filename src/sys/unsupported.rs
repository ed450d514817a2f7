//! The backend of platforms that have none yet (macOS, the BSDs, ...): the crate compiles,
//! and every way of getting a mutex fails with [`ErrorKind::Unsupported`], naming the
//! platform. `RawMutex` is uninhabited, so the methods that need a handle cannot be reached.

use crate::error::{Error, ErrorKind, Result};
use crate::name::Name;
use crate::options::MutexOptions;
use crate::wait_status::WaitStatus;
use std::time::Duration;

/// A handle that cannot exist: no constructor succeeds on this platform.
pub(crate) enum RawMutex {}

fn unsupported(what: &str) -> Error {
    Error::new(
        ErrorKind::Unsupported,
        format!(
            "cannot {what}: namedmutex has no backend for {} ({}) yet; Linux and Windows are supported",
            std::env::consts::OS,
            std::env::consts::ARCH
        ),
    )
}

impl RawMutex {
    pub(crate) fn create(
        name: Option<&Name<'_>>,
        _opts: &MutexOptions,
    ) -> Result<(RawMutex, bool)> {
        Err(match name {
            Some(name) => unsupported(&format!(
                "create the mutex {:?}",
                crate::name::shorten(name.full)
            )),
            None => unsupported("create an unnamed mutex"),
        })
    }

    pub(crate) fn open(name: &Name<'_>, _opts: &MutexOptions) -> Result<RawMutex> {
        Err(unsupported(&format!(
            "open the mutex {:?}",
            crate::name::shorten(name.full)
        )))
    }

    pub(crate) fn wait(&self, _timeout: Option<Duration>) -> Result<WaitStatus> {
        match *self {}
    }

    pub(crate) fn release(&self) -> Result<()> {
        match *self {}
    }

    pub(crate) fn try_clone(&self) -> Result<RawMutex> {
        match *self {}
    }

    pub(crate) fn inheritable_handle(&self) -> Option<u64> {
        match *self {}
    }

    /// # Safety
    ///
    /// None needed: this always fails and touches nothing.
    #[allow(unsafe_code)] // the signature every backend shares
    pub(crate) unsafe fn from_inherited_handle(_value: u64) -> Result<RawMutex> {
        Err(unsupported("adopt an inherited handle"))
    }
}
