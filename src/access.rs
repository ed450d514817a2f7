//! Access rights of a handle, as Win32 defines them for mutex objects.
//!
//! A handle carries the rights it was opened with. Waiting needs [`Access::SYNCHRONIZE`];
//! releasing needs no particular right (ownership is what counts). Generic rights map to
//! specific ones the way Windows maps them for mutexes.

use crate::sys::contract;
use std::fmt;
use std::ops::{BitOr, BitOrAssign};

/// A set of access rights (a Win32 `ACCESS_MASK`).
///
/// ```
/// use namedmutex::Access;
///
/// let a = Access::SYNCHRONIZE | Access::MUTEX_MODIFY_STATE;
/// assert!(a.contains(Access::SYNCHRONIZE));
/// assert_eq!(Access::MUTEX_ALL_ACCESS.bits(), 0x001F_0001);
/// assert_eq!(Access::from_bits(0x0010_0000), Access::SYNCHRONIZE);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Access(u32);

impl Access {
    /// `MUTANT_QUERY_STATE` / `MUTEX_MODIFY_STATE` (the same bit, 0x0001).
    pub const MUTEX_MODIFY_STATE: Access = Access(contract::Access::MUTEX_MODIFY_STATE.0);
    /// `DELETE`.
    pub const DELETE: Access = Access(contract::Access::DELETE.0);
    /// `READ_CONTROL`.
    pub const READ_CONTROL: Access = Access(contract::Access::READ_CONTROL.0);
    /// `WRITE_DAC`.
    pub const WRITE_DAC: Access = Access(contract::Access::WRITE_DAC.0);
    /// `WRITE_OWNER`.
    pub const WRITE_OWNER: Access = Access(contract::Access::WRITE_OWNER.0);
    /// `SYNCHRONIZE`: needed to wait on the mutex.
    pub const SYNCHRONIZE: Access = Access(contract::Access::SYNCHRONIZE.0);
    /// `MUTEX_ALL_ACCESS` (0x001F0001): every right a mutex has.
    pub const MUTEX_ALL_ACCESS: Access = Access(contract::Access::MUTEX_ALL_ACCESS.0);
    /// `ACCESS_SYSTEM_SECURITY`: refused without the privilege, as on Windows.
    pub const ACCESS_SYSTEM_SECURITY: Access = Access(contract::Access::ACCESS_SYSTEM_SECURITY.0);
    /// `MAXIMUM_ALLOWED`: whatever the caller may have.
    pub const MAXIMUM_ALLOWED: Access = Access(contract::Access::MAXIMUM_ALLOWED.0);
    /// `GENERIC_ALL`: maps to `MUTEX_ALL_ACCESS`.
    pub const GENERIC_ALL: Access = Access(contract::Access::GENERIC_ALL.0);
    /// `GENERIC_EXECUTE`: maps to `SYNCHRONIZE | READ_CONTROL`.
    pub const GENERIC_EXECUTE: Access = Access(contract::Access::GENERIC_EXECUTE.0);
    /// `GENERIC_WRITE`: maps to `READ_CONTROL` only (no `SYNCHRONIZE`).
    pub const GENERIC_WRITE: Access = Access(contract::Access::GENERIC_WRITE.0);
    /// `GENERIC_READ`: maps to `MUTEX_MODIFY_STATE | READ_CONTROL` (no `SYNCHRONIZE`).
    pub const GENERIC_READ: Access = Access(contract::Access::GENERIC_READ.0);

    /// The empty set.
    ///
    /// ```
    /// assert!(namedmutex::Access::empty().is_empty());
    /// ```
    pub const fn empty() -> Access {
        Access(0)
    }

    /// The rights with these bits, exactly (unknown bits are kept and refused at open, as on
    /// Windows).
    ///
    /// ```
    /// use namedmutex::Access;
    ///
    /// assert_eq!(Access::from_bits(0x0010_0000), Access::SYNCHRONIZE);
    /// ```
    pub const fn from_bits(bits: u32) -> Access {
        Access(bits)
    }

    /// The raw `ACCESS_MASK`.
    ///
    /// ```
    /// assert_eq!(namedmutex::Access::MUTEX_ALL_ACCESS.bits(), 0x001F_0001);
    /// ```
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Whether every right in `other` is in `self`.
    ///
    /// ```
    /// use namedmutex::Access;
    ///
    /// assert!(Access::MUTEX_ALL_ACCESS.contains(Access::SYNCHRONIZE));
    /// assert!(!Access::MUTEX_MODIFY_STATE.contains(Access::SYNCHRONIZE));
    /// ```
    pub const fn contains(self, other: Access) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether no right is set.
    ///
    /// ```
    /// assert!(!namedmutex::Access::SYNCHRONIZE.is_empty());
    /// ```
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl BitOr for Access {
    type Output = Access;
    fn bitor(self, rhs: Access) -> Access {
        Access(self.0 | rhs.0)
    }
}

impl BitOrAssign for Access {
    fn bitor_assign(&mut self, rhs: Access) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Access({:#010x})", self.0)
    }
}

impl From<Access> for contract::Access {
    #[inline]
    fn from(access: Access) -> contract::Access {
        contract::Access(access.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backend_receives_the_same_mask() {
        for bits in [0, 1, 0x0010_0000, 0x001F_0001, 0x8000_0000, u32::MAX] {
            assert_eq!(contract::Access::from(Access::from_bits(bits)).bits(), bits);
        }
        assert_eq!(
            contract::Access::from(Access::SYNCHRONIZE | Access::MUTEX_MODIFY_STATE),
            contract::Access(0x0010_0001)
        );
    }
}
