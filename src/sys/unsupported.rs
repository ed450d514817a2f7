//! The backend of platforms that have none yet (macOS, the BSDs, ...): the crate compiles,
//! and every way of getting a mutex fails with [`ErrorKind::Unsupported`], naming the
//! platform. No `RawMutex` is ever made, so the methods that need one cannot be reached.
//!
//! `RawMutex` is an ordinary struct rather than an uninhabited enum on purpose: with an
//! uninhabited type, rustc flags the code after every `RawMutex::create(..)?` in the
//! platform-neutral layer as unreachable, and those warnings would have to be silenced there.

use super::{Backend, CancelSignal, Inspect, Spec, Swept};
use crate::sys::contract::MutexInfo;
use crate::sys::contract::WaitStatus;
use crate::sys::contract::{Error, ErrorKind, Result};
use crate::sys::contract::{Name, Namespace};
use std::io;
use std::time::Duration;

/// A handle that is never made: no constructor succeeds on this platform.
#[allow(dead_code)] // never constructed, by design (see the module's comment)
pub(crate) struct RawMutex {
    _private: (),
}

/// A process-owned acquisition; none is ever made here.
pub(crate) struct Claim {
    _private: (),
}

/// What cancels a blocked process-owned acquisition; nothing here.
pub(crate) struct Cancel {
    _private: (),
}

impl CancelSignal for Cancel {
    fn new() -> Result<Cancel> {
        Ok(Cancel { _private: () })
    }

    fn fire(&self) {}
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

impl Backend for RawMutex {
    type Claim = Claim;
    type Cancel = Cancel;
    type Waiter = ();
    const TRY_DETACHED_IS_EXACT: bool = true;

    fn create(name: Option<&Name<'_>>, _spec: &Spec) -> Result<(RawMutex, bool)> {
        Err(match name {
            Some(name) => unsupported(&format!(
                "create the mutex {:?}",
                crate::sys::contract::shorten(name.full)
            )),
            None => unsupported("create an unnamed mutex"),
        })
    }

    fn open(name: &Name<'_>, _spec: &Spec) -> Result<RawMutex> {
        Err(unsupported(&format!(
            "open the mutex {:?}",
            crate::sys::contract::shorten(name.full)
        )))
    }

    fn wait(&self, _timeout: Option<Duration>) -> Result<WaitStatus> {
        unreachable!("{NEVER}")
    }

    fn wait_multiple(
        _handles: &[&RawMutex],
        _all: bool,
        _timeout: Option<Duration>,
    ) -> Result<crate::sys::contract::WaitAny> {
        Err(unsupported("wait on several mutexes"))
    }

    fn release(&self) -> Result<()> {
        unreachable!("{NEVER}")
    }

    fn abandon(&self, _: &str) -> Result<()> {
        unreachable!("{NEVER}")
    }

    fn still_named(&self) -> bool {
        unreachable!("{NEVER}")
    }

    fn try_clone(&self) -> Result<RawMutex> {
        unreachable!("{NEVER}")
    }

    fn inheritable_handle(&self) -> Option<u64> {
        unreachable!("{NEVER}")
    }

    /// # Safety
    ///
    /// None needed: this always fails and touches nothing.
    #[allow(unsafe_code)] // the signature every backend shares
    unsafe fn from_inherited_handle(_value: u64) -> Result<RawMutex> {
        Err(unsupported("adopt an inherited handle"))
    }

    fn identity(&self) -> Option<u64> {
        unreachable!("{NEVER}")
    }

    fn try_acquire_detached(&self) -> Result<Option<(WaitStatus, Claim)>> {
        unreachable!("{NEVER}")
    }

    fn waiter(&self) -> Result<()> {
        unreachable!("{NEVER}")
    }

    fn acquire_detached(
        _waiter: &(),
        _timeout: Option<Duration>,
        _cancel: &Cancel,
    ) -> Result<Option<(WaitStatus, Claim)>> {
        unreachable!("{NEVER}")
    }

    fn release_detached(&self, _claim: Claim) -> Result<()> {
        unreachable!("{NEVER}")
    }

    fn undo_detached(_waiter: &(), _claim: Claim) -> Result<()> {
        unreachable!("{NEVER}")
    }
}

/// Inspection where the backend cannot enumerate objects yet.
fn no_inspection() -> Error {
    Error::new(
        ErrorKind::Unsupported,
        "listing and inspecting mutexes is not available on this platform yet",
    )
}

impl Inspect for RawMutex {
    fn list(_: &Spec, _: Namespace) -> Result<Vec<MutexInfo>> {
        Err(no_inspection())
    }
    fn info(_: &Spec, _: &Name<'_>) -> Result<Option<MutexInfo>> {
        Err(no_inspection())
    }
    fn list_all_users(_: &Spec) -> Result<(Vec<MutexInfo>, Vec<u32>)> {
        Err(no_inspection())
    }
    fn prune(_: &Spec, _: Namespace) -> Result<Swept> {
        Err(no_inspection())
    }
}
