//! Who may open a `Global\` object a backend creates (the public `Security` maps one to
//! one).

/// Who may open a `Global\` object (set at creation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub(crate) enum Security {
    /// Only the creating user.
    #[default]
    CurrentUser,
    /// Every user of the machine.
    Everyone,
    /// The creating user and the members of this Unix group.
    UnixGroup(u32),
}
