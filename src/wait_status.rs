//! The outcome of a wait, with the Win32 codes it corresponds to.

use crate::sys::contract;
pub use crate::sys::contract::WaitStatus;

/// `WAIT_OBJECT_0`: the wait acquired the mutex.
pub const WAIT_OBJECT_0: u32 = contract::WAIT_OBJECT_0;
/// `WAIT_ABANDONED`: the wait acquired a mutex whose previous owner ended without releasing.
pub const WAIT_ABANDONED: u32 = contract::WAIT_ABANDONED;
/// `WAIT_TIMEOUT`: the timeout passed and nothing was acquired.
pub const WAIT_TIMEOUT: u32 = contract::WAIT_TIMEOUT;
/// `WAIT_FAILED`: the wait failed (the error says why).
pub const WAIT_FAILED: u32 = contract::WAIT_FAILED;

/// What [`wait_any`](crate::wait_any) or [`wait_all`](crate::wait_all) acquired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum WaitAny {
    /// The mutex at this index is now owned by the calling thread.
    Acquired(usize),
    /// The mutex at this index is now owned by the calling thread; its previous owner ended
    /// while owning it.
    Abandoned(usize),
    /// The timeout passed; nothing was acquired.
    TimedOut,
}

impl WaitAny {
    /// The Win32 code: `WAIT_OBJECT_0 + i`, `WAIT_ABANDONED + i`, or `WAIT_TIMEOUT`.
    ///
    /// ```
    /// use namedmutex::WaitAny;
    ///
    /// assert_eq!(WaitAny::Acquired(2).code(), 2);
    /// assert_eq!(WaitAny::Abandoned(1).code(), 0x81);
    /// assert_eq!(WaitAny::TimedOut.code(), 0x102);
    /// ```
    pub fn code(self) -> u32 {
        match self {
            WaitAny::Acquired(i) => WAIT_OBJECT_0 + i as u32,
            WaitAny::Abandoned(i) => WAIT_ABANDONED + i as u32,
            WaitAny::TimedOut => WAIT_TIMEOUT,
        }
    }

    /// The index acquired, if any.
    ///
    /// ```
    /// assert_eq!(namedmutex::WaitAny::Abandoned(3).index(), Some(3));
    /// ```
    pub fn index(self) -> Option<usize> {
        match self {
            WaitAny::Acquired(i) | WaitAny::Abandoned(i) => Some(i),
            WaitAny::TimedOut => None,
        }
    }
}

impl From<contract::WaitAny> for WaitAny {
    #[inline]
    fn from(status: contract::WaitAny) -> WaitAny {
        match status {
            contract::WaitAny::Acquired(i) => WaitAny::Acquired(i),
            contract::WaitAny::Abandoned(i) => WaitAny::Abandoned(i),
            contract::WaitAny::TimedOut => WaitAny::TimedOut,
        }
    }
}
