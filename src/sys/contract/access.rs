//! The access rights a handle asks for, and the check Windows makes of them, for the
//! backends that emulate it (the public `Access` wraps the same mask).

use super::error::{ERROR_PRIVILEGE_NOT_HELD, Error, ErrorKind, Result};

/// The rights a handle asks for, as the Win32 access mask `CreateMutexEx` and `OpenMutex`
/// take (unchecked: on Windows the OS checks them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub(crate) struct Access(pub u32);

impl Access {
    /// `MUTEX_MODIFY_STATE`: release.
    pub(crate) const MUTEX_MODIFY_STATE: Access = Access(0x0000_0001);
    /// `DELETE`.
    pub(crate) const DELETE: Access = Access(0x0001_0000);
    /// `READ_CONTROL`.
    pub(crate) const READ_CONTROL: Access = Access(0x0002_0000);
    /// `WRITE_DAC`.
    pub(crate) const WRITE_DAC: Access = Access(0x0004_0000);
    /// `WRITE_OWNER`.
    pub(crate) const WRITE_OWNER: Access = Access(0x0008_0000);
    /// `SYNCHRONIZE`: wait.
    pub(crate) const SYNCHRONIZE: Access = Access(0x0010_0000);
    /// `MUTEX_ALL_ACCESS`.
    pub(crate) const MUTEX_ALL_ACCESS: Access = Access(0x001F_0001);
    /// `ACCESS_SYSTEM_SECURITY`.
    pub(crate) const ACCESS_SYSTEM_SECURITY: Access = Access(0x0100_0000);
    /// `MAXIMUM_ALLOWED`.
    pub(crate) const MAXIMUM_ALLOWED: Access = Access(0x0200_0000);
    /// `GENERIC_ALL`.
    pub(crate) const GENERIC_ALL: Access = Access(0x1000_0000);
    /// `GENERIC_EXECUTE`.
    pub(crate) const GENERIC_EXECUTE: Access = Access(0x2000_0000);
    /// `GENERIC_WRITE`.
    pub(crate) const GENERIC_WRITE: Access = Access(0x4000_0000);
    /// `GENERIC_READ`.
    pub(crate) const GENERIC_READ: Access = Access(0x8000_0000);

    /// The mask as Win32 takes it.
    #[cfg_attr(not(windows), allow(dead_code))]
    pub(crate) const fn bits(self) -> u32 {
        self.0
    }

    /// Whether every right of `other` is in this mask.
    pub(crate) const fn contains(self, other: Access) -> bool {
        self.0 & other.0 == other.0
    }

    /// Bits Windows refuses in an open of a mutex (undefined or reserved rights).
    const REFUSED: u32 = 0x0DE0_FFFE;

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::ops::BitOr;

    impl BitOr for Access {
        type Output = Access;
        fn bitor(self, rhs: Access) -> Access {
            Access(self.0 | rhs.0)
        }
    }

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
