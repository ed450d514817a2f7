//! Who may open an object in the `Global\` namespace.
//!
//! `Local\` objects are always private to their user, whatever is asked here. For `Global\`
//! objects the choice is made once, by whoever creates the object, exactly like a security
//! descriptor passed to `CreateMutex` on Windows.

use crate::sys::contract;

/// Who may open a `Global\` object (set at creation; ignored when the object already exists).
///
/// | variant | Linux (file mode of the object) | Windows (DACL) |
/// |---|---|---|
/// | `CurrentUser` | `0600` | only the creating user |
/// | `Everyone` | `0666` | Everyone |
/// | `UnixGroup(gid)` | `0660`, group `gid` | unsupported: `InvalidParameter` |
///
/// ```
/// use namedmutex::{MutexOptions, Security};
///
/// let opts = MutexOptions::new().security(Security::Everyone);
/// # let _ = opts;
/// assert_eq!(Security::default(), Security::CurrentUser);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Security {
    /// Only the user who creates the object may open it (the default).
    #[default]
    CurrentUser,
    /// Every user of the machine may open, wait on and release it.
    Everyone,
    /// The creating user and the members of this Unix group. The creator must belong to the
    /// group. Not available on Windows.
    UnixGroup(u32),
}

impl From<Security> for contract::Security {
    #[inline]
    fn from(security: Security) -> contract::Security {
        match security {
            Security::CurrentUser => contract::Security::CurrentUser,
            Security::Everyone => contract::Security::Everyone,
            Security::UnixGroup(gid) => contract::Security::UnixGroup(gid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backend_receives_the_same_choice() {
        assert_eq!(
            contract::Security::from(Security::CurrentUser),
            contract::Security::CurrentUser
        );
        assert_eq!(
            contract::Security::from(Security::Everyone),
            contract::Security::Everyone
        );
        assert_eq!(
            contract::Security::from(Security::UnixGroup(42)),
            contract::Security::UnixGroup(42)
        );
        assert_eq!(Security::default(), Security::CurrentUser);
        assert_eq!(
            contract::Security::default(),
            contract::Security::CurrentUser
        );
    }
}
