//! The backend of platforms that have none yet (macOS, the BSDs, ...): the crate compiles,
//! and every way of getting a mutex fails with [`ErrorKind::Unsupported`], naming the
//! platform. No `RawMutex` is ever made, so the methods that need one cannot be reached.
//!
//! `RawMutex` is an ordinary struct rather than an uninhabited enum on purpose: with an
//! uninhabited type, rustc flags the code after every `RawMutex::create(..)?` in the
//! platform-neutral layer as unreachable, and those warnings would have to be silenced there.

use crate::error::{Error, ErrorKind, Result};
use crate::name::Name;
use crate::options::MutexOptions;
use crate::wait_status::WaitStatus;
use std::io;
use std::time::Duration;

/// A handle that is never made: no constructor succeeds on this platform.
#[allow(dead_code)] // never constructed, by design (see the module's comment)
pub(crate) struct RawMutex {
    _private: (),
}

/// Never consulted: no mutex exists here.
pub(crate) const TRY_DETACHED_IS_EXACT: bool = true;

/// A process-owned acquisition; none is ever made here.
pub(crate) struct Claim {
    _private: (),
}

/// What cancels a blocked process-owned acquisition; nothing here.
pub(crate) struct Cancel {
    _private: (),
}

impl Cancel {
    pub(crate) fn new() -> Result<Cancel> {
        Ok(Cancel { _private: () })
    }

    pub(crate) fn fire(&self) {}
}

const NEVER: &str = "no RawMutex exists on a platform without a backend";

fn unsupported(what: &str) -> Error {
    Error::io(
        ErrorKind::Unsupported,
        format!(
            "cannot {what}: namedmutex has no backend for {} ({}) yet; Linux and Windows are supported",
            std::env::consts::OS,
            std::env::consts::ARCH
        ),
        io::Error::from(io::ErrorKind::Unsupported),
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
        unreachable!("{NEVER}")
    }

    pub(crate) fn wait_multiple(
        _handles: &[&RawMutex],
        _all: bool,
        _timeout: Option<Duration>,
    ) -> Result<crate::multi_wait::WaitAny> {
        Err(unsupported("wait on several mutexes"))
    }

    pub(crate) fn release(&self) -> Result<()> {
        unreachable!("{NEVER}")
    }

    pub(crate) fn abandon(&self, _: &str) -> Result<()> {
        unreachable!("{NEVER}")
    }

    pub(crate) fn still_named(&self) -> bool {
        unreachable!("{NEVER}")
    }

    pub(crate) fn try_clone(&self) -> Result<RawMutex> {
        unreachable!("{NEVER}")
    }

    pub(crate) fn identity(&self) -> Option<u64> {
        unreachable!("{NEVER}")
    }

    pub(crate) fn try_acquire_detached(&self) -> Result<Option<(WaitStatus, Claim)>> {
        unreachable!("{NEVER}")
    }

    pub(crate) fn acquire_detached(
        &self,
        _timeout: Option<Duration>,
        _cancel: &Cancel,
    ) -> Result<Option<(WaitStatus, Claim)>> {
        unreachable!("{NEVER}")
    }

    pub(crate) fn release_detached(&self, _claim: Claim) -> Result<()> {
        unreachable!("{NEVER}")
    }

    pub(crate) fn undo_detached(&self, _claim: Claim) -> Result<()> {
        unreachable!("{NEVER}")
    }

    pub(crate) fn inheritable_handle(&self) -> Option<u64> {
        unreachable!("{NEVER}")
    }

    /// # Safety
    ///
    /// None needed: this always fails and touches nothing.
    #[allow(unsafe_code)] // the signature every backend shares
    pub(crate) unsafe fn from_inherited_handle(_value: u64) -> Result<RawMutex> {
        Err(unsupported("adopt an inherited handle"))
    }
}
