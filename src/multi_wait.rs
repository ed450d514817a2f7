//! Waiting on several mutexes at once: `WaitForMultipleObjects`.

use crate::error::Result;
use crate::mutex::NamedMutex;
use crate::sys::contract;
use crate::sys::{Backend as _, RawMutex};
use crate::wait_status::{WaitAny, WaitStatus};
use std::time::Duration;

/// The most mutexes one wait takes (`MAXIMUM_WAIT_OBJECTS`).
pub const MAXIMUM_WAIT_OBJECTS: usize = 64;

/// Waits until the calling thread acquires **one** of `mutexes` (wait-any). When several can
/// be acquired, the lowest index wins. Takes 1 to [`MAXIMUM_WAIT_OBJECTS`] handles (else
/// `InvalidParameter`, 87); each needs `SYNCHRONIZE`. The same mutex may appear twice.
///
/// ```
/// use namedmutex::{NamedMutex, WaitAny};
/// use std::time::Duration;
///
/// let a = NamedMutex::create_unnamed(false)?;
/// let b = NamedMutex::create_unnamed(false)?;
/// let got = namedmutex::wait_any(&[&a, &b], Some(Duration::from_secs(1)))?;
/// assert_eq!(got, WaitAny::Acquired(0));
/// a.release()?;
/// # Ok::<(), namedmutex::Error>(())
/// ```
pub fn wait_any(mutexes: &[&NamedMutex], timeout: Option<Duration>) -> Result<WaitAny> {
    let raws: Vec<&RawMutex> = mutexes.iter().map(|m| m.raw()).collect();
    Ok(RawMutex::wait_multiple(&raws, false, timeout)?.into())
}

/// Waits until the calling thread owns **all** of `mutexes` at once (wait-all). It never
/// holds some of them while it waits: it takes all or none, so a timeout acquires nothing.
/// Returns `Abandoned` if any of them was abandoned (each must then be released once, like
/// the others). The same mutex twice, through one handle or two, is `InvalidParameter` (87).
///
/// ```
/// use namedmutex::{NamedMutex, WaitStatus};
/// use std::time::Duration;
///
/// let a = NamedMutex::create_unnamed(false)?;
/// let b = NamedMutex::create_unnamed(false)?;
/// assert_eq!(namedmutex::wait_all(&[&a, &b], None)?, WaitStatus::Acquired);
/// a.release()?;
/// b.release()?;
/// let twice = namedmutex::wait_all(&[&a, &a], Some(Duration::ZERO));
/// # #[cfg(target_os = "linux")]
/// assert_eq!(twice.unwrap_err().kind(), namedmutex::ErrorKind::InvalidParameter);
/// # Ok::<(), namedmutex::Error>(())
/// ```
pub fn wait_all(mutexes: &[&NamedMutex], timeout: Option<Duration>) -> Result<WaitStatus> {
    let raws: Vec<&RawMutex> = mutexes.iter().map(|m| m.raw()).collect();
    Ok(match RawMutex::wait_multiple(&raws, true, timeout)? {
        contract::WaitAny::Acquired(_) => WaitStatus::Acquired,
        contract::WaitAny::Abandoned(_) => WaitStatus::Abandoned,
        contract::WaitAny::TimedOut => WaitStatus::TimedOut,
    })
}
