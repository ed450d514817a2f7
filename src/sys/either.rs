//! A handle on this machine or on a PostgreSQL server (feature `postgres`): the choice is
//! made once, at creation, by [`Spec::server`]; every call then goes to the backend that
//! made the handle. One wait cannot mix the two.

use super::pg::{PgCancel, PgClaim, PgMutex};
use super::{Backend, CancelSignal, Inspect, LocalMutex, Spec, Swept};
use crate::sys::contract::MutexInfo;
use crate::sys::contract::{Error, ErrorKind, Result};
use crate::sys::contract::{Name, Namespace};
use crate::sys::contract::{WaitAny, WaitStatus};
use std::time::Duration;

/// A handle of either backend.
pub(crate) enum RawMutex {
    /// This machine's.
    Local(LocalMutex),
    /// A server's.
    Pg(PgMutex),
}

/// A process-owned acquisition of either backend.
pub(crate) enum EitherClaim {
    Local(<LocalMutex as Backend>::Claim),
    Pg(Box<PgClaim>),
}

/// What a helper thread waits with, for either backend.
pub(crate) enum EitherWaiter {
    Local(<LocalMutex as Backend>::Waiter),
    Pg(<PgMutex as Backend>::Waiter),
}

/// A cancel signal that reaches a wait of either backend.
pub(crate) struct EitherCancel {
    local: <LocalMutex as Backend>::Cancel,
    pg: PgCancel,
}

impl CancelSignal for EitherCancel {
    fn new() -> Result<EitherCancel> {
        Ok(EitherCancel {
            local: CancelSignal::new()?,
            pg: PgCancel::new()?,
        })
    }

    fn fire(&self) {
        self.local.fire();
        self.pg.fire();
    }
}

/// `$e` on the handle of whichever backend `$handle` is (`$m` names it in `$e`).
macro_rules! each {
    ($handle:expr, $m:ident => $e:expr) => {
        match $handle {
            RawMutex::Local($m) => $e,
            RawMutex::Pg($m) => $e,
        }
    };
}

/// [`Backend::try_acquire_detached`] on a server's mutex, out of the local fast path.
#[inline(never)]
fn pg_try_acquire_detached(m: &PgMutex) -> Result<Option<(WaitStatus, EitherClaim)>> {
    Ok(m.try_acquire_detached()?
        .map(|(s, c)| (s, EitherClaim::Pg(Box::new(c)))))
}

/// [`Backend::release_detached`] on a server's mutex, out of the local fast path.
#[inline(never)]
fn pg_release_detached(m: &PgMutex, claim: <PgMutex as Backend>::Claim) -> Result<()> {
    m.release_detached(claim)
}

fn mismatch() -> Error {
    Error::new(
        ErrorKind::InvalidParameter,
        "a process-owned acquisition was given to a handle of the other backend",
    )
}

impl Backend for RawMutex {
    type Claim = EitherClaim;
    type Cancel = EitherCancel;
    type Waiter = EitherWaiter;
    const TRY_DETACHED_IS_EXACT: bool =
        LocalMutex::TRY_DETACHED_IS_EXACT && PgMutex::TRY_DETACHED_IS_EXACT;

    #[inline]
    fn create(name: Option<&Name<'_>>, spec: &Spec) -> Result<(RawMutex, bool)> {
        Ok(if spec.server.is_some() {
            let (m, existed) = PgMutex::create(name, spec)?;
            (RawMutex::Pg(m), existed)
        } else {
            let (m, existed) = LocalMutex::create(name, spec)?;
            (RawMutex::Local(m), existed)
        })
    }

    #[inline]
    fn open(name: &Name<'_>, spec: &Spec) -> Result<RawMutex> {
        Ok(if spec.server.is_some() {
            RawMutex::Pg(PgMutex::open(name, spec)?)
        } else {
            RawMutex::Local(LocalMutex::open(name, spec)?)
        })
    }

    #[inline]
    fn wait(&self, timeout: Option<Duration>) -> Result<WaitStatus> {
        each!(self, m => m.wait(timeout))
    }

    #[inline]
    fn wait_multiple(
        handles: &[&RawMutex],
        all: bool,
        timeout: Option<Duration>,
    ) -> Result<WaitAny> {
        let local: Option<Vec<&LocalMutex>> = handles
            .iter()
            .map(|h| match h {
                RawMutex::Local(m) => Some(m),
                RawMutex::Pg(_) => None,
            })
            .collect();
        if let Some(local) = local {
            return LocalMutex::wait_multiple(&local, all, timeout);
        }
        let pg: Option<Vec<&PgMutex>> = handles
            .iter()
            .map(|h| match h {
                RawMutex::Pg(m) => Some(m),
                RawMutex::Local(_) => None,
            })
            .collect();
        match pg {
            Some(pg) => PgMutex::wait_multiple(&pg, all, timeout),
            None => Err(Error::new(
                ErrorKind::InvalidParameter,
                "one wait cannot mix this machine's mutexes with a server's",
            )),
        }
    }

    #[inline]
    fn release(&self) -> Result<()> {
        each!(self, m => m.release())
    }

    #[inline]
    fn abandon(&self, note: &str) -> Result<()> {
        each!(self, m => m.abandon(note))
    }

    #[inline]
    fn still_named(&self) -> bool {
        each!(self, m => m.still_named())
    }

    #[inline]
    fn try_clone(&self) -> Result<RawMutex> {
        Ok(match self {
            RawMutex::Local(m) => RawMutex::Local(m.try_clone()?),
            RawMutex::Pg(m) => RawMutex::Pg(m.try_clone()?),
        })
    }

    #[inline]
    fn inheritable_handle(&self) -> Option<u64> {
        each!(self, m => m.inheritable_handle())
    }

    #[allow(unsafe_code)] // the caller's promise is passed on unchanged
    unsafe fn from_inherited_handle(value: u64) -> Result<RawMutex> {
        // SAFETY: the caller vouches for `value` (see the trait); only local handles are
        // inheritable, so it is this machine's backend's.
        Ok(RawMutex::Local(unsafe {
            LocalMutex::from_inherited_handle(value)?
        }))
    }

    #[inline]
    fn identity(&self) -> Option<u64> {
        each!(self, m => m.identity())
    }

    #[inline]
    fn detached_is_exclusive(&self) -> bool {
        each!(self, m => m.detached_is_exclusive())
    }

    /// The local path inlined into the async fast path; the server's out of line (a round
    /// trip dwarfs a call, and inlining it made the whole too big to inline).
    #[inline(always)]
    fn try_acquire_detached(&self) -> Result<Option<(WaitStatus, EitherClaim)>> {
        Ok(match self {
            RawMutex::Local(m) => m
                .try_acquire_detached()?
                .map(|(s, c)| (s, EitherClaim::Local(c))),
            RawMutex::Pg(m) => pg_try_acquire_detached(m)?,
        })
    }

    fn waiter(&self) -> Result<EitherWaiter> {
        Ok(match self {
            RawMutex::Local(m) => EitherWaiter::Local(m.waiter()?),
            RawMutex::Pg(m) => EitherWaiter::Pg(m.waiter()?),
        })
    }

    fn acquire_detached(
        waiter: &EitherWaiter,
        timeout: Option<Duration>,
        cancel: &EitherCancel,
    ) -> Result<Option<(WaitStatus, EitherClaim)>> {
        Ok(match waiter {
            EitherWaiter::Local(w) => LocalMutex::acquire_detached(w, timeout, &cancel.local)?
                .map(|(s, c)| (s, EitherClaim::Local(c))),
            EitherWaiter::Pg(w) => PgMutex::acquire_detached(w, timeout, &cancel.pg)?
                .map(|(s, c)| (s, EitherClaim::Pg(Box::new(c)))),
        })
    }

    /// As [`Backend::try_acquire_detached`]: the local path inlined, the server's not.
    #[inline(always)]
    fn release_detached(&self, claim: EitherClaim) -> Result<()> {
        match (self, claim) {
            (RawMutex::Local(m), EitherClaim::Local(c)) => m.release_detached(c),
            (RawMutex::Pg(m), EitherClaim::Pg(c)) => pg_release_detached(m, *c),
            _ => Err(mismatch()),
        }
    }

    fn undo_detached(waiter: &EitherWaiter, claim: EitherClaim) -> Result<()> {
        match (waiter, claim) {
            (EitherWaiter::Local(w), EitherClaim::Local(c)) => LocalMutex::undo_detached(w, c),
            (EitherWaiter::Pg(w), EitherClaim::Pg(c)) => PgMutex::undo_detached(w, *c),
            _ => Err(mismatch()),
        }
    }

    #[inline]
    fn fencing_token(&self) -> Option<u64> {
        each!(self, m => m.fencing_token())
    }

    #[inline]
    fn claim_token(claim: &EitherClaim) -> Option<u64> {
        match claim {
            EitherClaim::Local(c) => LocalMutex::claim_token(c),
            EitherClaim::Pg(c) => PgMutex::claim_token(c),
        }
    }

    #[inline]
    fn still_owned(&self) -> Result<bool> {
        each!(self, m => m.still_owned())
    }
}

impl Inspect for RawMutex {
    fn list(spec: &Spec, namespace: Namespace) -> Result<Vec<MutexInfo>> {
        if spec.server.is_some() {
            PgMutex::list(spec, namespace)
        } else {
            LocalMutex::list(spec, namespace)
        }
    }

    fn info(spec: &Spec, name: &Name<'_>) -> Result<Option<MutexInfo>> {
        if spec.server.is_some() {
            PgMutex::info(spec, name)
        } else {
            LocalMutex::info(spec, name)
        }
    }

    fn list_all_users(spec: &Spec) -> Result<(Vec<MutexInfo>, Vec<u32>)> {
        if spec.server.is_some() {
            PgMutex::list_all_users(spec)
        } else {
            LocalMutex::list_all_users(spec)
        }
    }

    fn prune(spec: &Spec, namespace: Namespace) -> Result<Swept> {
        if spec.server.is_some() {
            PgMutex::prune(spec, namespace)
        } else {
            LocalMutex::prune(spec, namespace)
        }
    }
}
