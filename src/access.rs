//! Access rights of a handle, as Win32 defines them for mutex objects.
//!
//! A handle carries the rights it was opened with. Waiting needs [`Access::SYNCHRONIZE`];
//! releasing needs no particular right (ownership is what counts). Generic rights map to
//! specific ones the way Windows maps them for mutexes.

use crate::error::{ERROR_PRIVILEGE_NOT_HELD, Error, ErrorKind, Result};
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
    pub const MUTEX_MODIFY_STATE: Access = Access(0x0000_0001);
    /// `DELETE`.
    pub const DELETE: Access = Access(0x0001_0000);
    /// `READ_CONTROL`.
    pub const READ_CONTROL: Access = Access(0x0002_0000);
    /// `WRITE_DAC`.
    pub const WRITE_DAC: Access = Access(0x0004_0000);
    /// `WRITE_OWNER`.
    pub const WRITE_OWNER: Access = Access(0x0008_0000);
    /// `SYNCHRONIZE`: needed to wait on the mutex.
    pub const SYNCHRONIZE: Access = Access(0x0010_0000);
    /// `MUTEX_ALL_ACCESS` (0x001F0001): every right a mutex has.
    pub const MUTEX_ALL_ACCESS: Access = Access(0x001F_0001);
    /// `ACCESS_SYSTEM_SECURITY`: refused without the privilege, as on Windows.
    pub const ACCESS_SYSTEM_SECURITY: Access = Access(0x0100_0000);
    /// `MAXIMUM_ALLOWED`: whatever the caller may have.
    pub const MAXIMUM_ALLOWED: Access = Access(0x0200_0000);
    /// `GENERIC_ALL`: maps to `MUTEX_ALL_ACCESS`.
    pub const GENERIC_ALL: Access = Access(0x1000_0000);
    /// `GENERIC_EXECUTE`: maps to `SYNCHRONIZE | READ_CONTROL`.
    pub const GENERIC_EXECUTE: Access = Access(0x2000_0000);
    /// `GENERIC_WRITE`: maps to `READ_CONTROL` only (no `SYNCHRONIZE`).
    pub const GENERIC_WRITE: Access = Access(0x4000_0000);
    /// `GENERIC_READ`: maps to `MUTEX_MODIFY_STATE | READ_CONTROL` (no `SYNCHRONIZE`).
    pub const GENERIC_READ: Access = Access(0x8000_0000);

    /// Bits Windows refuses in an open of a mutex (undefined or reserved rights).
    const REFUSED: u32 = 0x0DE0_FFFE;

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

    /// The rights a handle is granted for this request, checked the way Windows checks an
    /// open of a mutex the caller may fully access: 0 and undefined bits are refused with
    /// `ERROR_ACCESS_DENIED`, `ACCESS_SYSTEM_SECURITY` with `ERROR_PRIVILEGE_NOT_HELD`,
    /// generic rights are mapped.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn grant(self, what: &str) -> Result<Access> {
        if self.0 == 0 {
            return Err(Error::new(
                ErrorKind::AccessDenied,
                format!(
                    "cannot open {what}: the desired access is 0 (ask for at least SYNCHRONIZE)"
                ),
            ));
        }
        if self.contains(Access::ACCESS_SYSTEM_SECURITY) {
            return Err(Error::new(
                ErrorKind::AccessDenied,
                format!("cannot open {what}: ACCESS_SYSTEM_SECURITY needs a privilege the caller does not hold"),
            )
            .with_code(ERROR_PRIVILEGE_NOT_HELD));
        }
        if self.0 & Access::REFUSED != 0 {
            return Err(Error::new(
                ErrorKind::AccessDenied,
                format!(
                    "cannot open {what}: the desired access {:#010x} has bits a mutex does not define ({:#010x})",
                    self.0,
                    self.0 & Access::REFUSED
                ),
            ));
        }
        let mut granted = self.0
            & (Access::MUTEX_ALL_ACCESS.0
                | Access::DELETE.0
                | Access::READ_CONTROL.0
                | Access::WRITE_DAC.0
                | Access::WRITE_OWNER.0);
        if self.contains(Access::GENERIC_ALL) || self.contains(Access::MAXIMUM_ALLOWED) {
            granted |= Access::MUTEX_ALL_ACCESS.0;
        }
        if self.contains(Access::GENERIC_EXECUTE) {
            granted |= Access::SYNCHRONIZE.0 | Access::READ_CONTROL.0;
        }
        if self.contains(Access::GENERIC_WRITE) {
            granted |= Access::READ_CONTROL.0;
        }
        if self.contains(Access::GENERIC_READ) {
            granted |= Access::MUTEX_MODIFY_STATE.0 | Access::READ_CONTROL.0;
        }
        Ok(Access(granted))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_bit_matrix_matches_windows() {
        // checklist 27: these single bits open; the rest of 0..32 are refused.
        let accepted = [0u32, 16, 17, 18, 19, 20, 25, 28, 29, 30, 31];
        for bit in 0..32u32 {
            let r = Access(1 << bit).grant("m");
            if accepted.contains(&bit) {
                assert!(r.is_ok(), "bit {bit} should open");
            } else if bit == 24 {
                assert_eq!(r.unwrap_err().win32_code(), Some(1314));
            } else {
                assert_eq!(r.unwrap_err().win32_code(), Some(5), "bit {bit}");
            }
        }
        assert_eq!(
            Access(0).grant("m").unwrap_err().kind(),
            ErrorKind::AccessDenied
        );
    }

    #[test]
    fn generic_mapping() {
        let g = |a: Access| a.grant("m").unwrap();
        assert!(g(Access::GENERIC_EXECUTE).contains(Access::SYNCHRONIZE));
        assert!(!g(Access::GENERIC_READ | Access::GENERIC_WRITE).contains(Access::SYNCHRONIZE));
        assert_eq!(g(Access::GENERIC_ALL), Access::MUTEX_ALL_ACCESS);
        assert_eq!(g(Access::MAXIMUM_ALLOWED), Access::MUTEX_ALL_ACCESS);
    }
}
