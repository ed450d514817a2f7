//! How a backend reports the outcome of a wait. [`WaitStatus`] is the public type itself,
//! re-exported by the crate (`crate::wait_status`) rather than wrapped, for the reason
//! `error.rs` gives; the multi-object outcome [`WaitAny`] is the public `WaitAny`'s source.

/// `WAIT_OBJECT_0`: the wait acquired the mutex.
pub(crate) const WAIT_OBJECT_0: u32 = 0;
/// `WAIT_ABANDONED`: the wait acquired a mutex whose previous owner ended without releasing.
pub(crate) const WAIT_ABANDONED: u32 = 0x80;
/// `WAIT_TIMEOUT`: the timeout passed and nothing was acquired.
pub(crate) const WAIT_TIMEOUT: u32 = 0x102;
/// `WAIT_FAILED`: the wait failed (the error says why).
pub(crate) const WAIT_FAILED: u32 = 0xFFFF_FFFF;

/// How a wait ended.
///
/// ```
/// use namedmutex::{NamedMutex, WaitStatus};
/// use std::time::Duration;
///
/// let m = NamedMutex::create_unnamed(false)?;
/// assert_eq!(m.wait(Some(Duration::ZERO))?, WaitStatus::Acquired);
/// assert_eq!(WaitStatus::Acquired.code(), 0);
/// assert_eq!(WaitStatus::Abandoned.code(), 0x80);
/// assert_eq!(WaitStatus::TimedOut.code(), 0x102);
/// m.release()?;
/// # Ok::<(), namedmutex::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum WaitStatus {
    /// The calling thread now owns the mutex (`WAIT_OBJECT_0`).
    Acquired,
    /// The calling thread now owns the mutex, whose previous owner ended while owning it
    /// (`WAIT_ABANDONED`). Whatever the mutex protects may be inconsistent. The new owner
    /// has count 1 and must release once.
    Abandoned,
    /// The timeout passed; nothing was acquired (`WAIT_TIMEOUT`).
    TimedOut,
}

impl WaitStatus {
    /// The Win32 code of this outcome: 0, 0x80 or 0x102.
    ///
    /// ```
    /// use namedmutex::WaitStatus;
    ///
    /// assert_eq!(WaitStatus::Acquired.code(), 0);
    /// assert_eq!(WaitStatus::Abandoned.code(), 0x80);
    /// assert_eq!(WaitStatus::TimedOut.code(), 0x102);
    /// ```
    #[inline]
    pub fn code(self) -> u32 {
        match self {
            WaitStatus::Acquired => WAIT_OBJECT_0,
            WaitStatus::Abandoned => WAIT_ABANDONED,
            WaitStatus::TimedOut => WAIT_TIMEOUT,
        }
    }

    /// Whether the caller now owns the mutex (`Acquired` or `Abandoned`).
    ///
    /// ```
    /// use namedmutex::WaitStatus;
    ///
    /// assert!(WaitStatus::Abandoned.is_acquired());
    /// assert!(!WaitStatus::TimedOut.is_acquired());
    /// ```
    pub fn is_acquired(self) -> bool {
        !matches!(self, WaitStatus::TimedOut)
    }
}

/// How a wait on several mutexes ended (wait-any or wait-all).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum WaitAny {
    /// The mutex at this index is now owned by the calling thread.
    Acquired(usize),
    /// The mutex at this index is now owned; its previous owner ended while owning it.
    Abandoned(usize),
    /// The timeout passed; nothing was acquired.
    TimedOut,
}
