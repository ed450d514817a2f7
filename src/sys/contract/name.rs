//! How a backend receives a name: already checked against the Win32 grammar above it (the
//! public `Name::parse`), split into its namespace and the part after the prefix.

/// Which namespace a name lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Namespace {
    /// `Local\` or no prefix: private to the calling user (on Windows, the logon session).
    Local,
    /// `Global\`: shared by every user of the machine.
    Global,
}

impl Namespace {
    /// The prefix that selects this namespace (`"Local\\"` or `"Global\\"`).
    pub(crate) fn prefix(self) -> &'static str {
        match self {
            Namespace::Local => "Local\\",
            Namespace::Global => "Global\\",
        }
    }
}

/// A validated object name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Name<'a> {
    /// The name exactly as the caller gave it (for messages, and Windows's own lookup).
    pub full: &'a str,
    /// The namespace the prefix selects.
    pub namespace: Namespace,
    /// The name without its prefix: what identifies the object inside its namespace.
    pub object: &'a str,
}

/// At most 80 characters of a name, for messages about names that may be very long.
pub(crate) fn shorten(name: &str) -> String {
    const KEEP: usize = 80;
    if name.chars().count() <= KEEP {
        name.to_owned()
    } else {
        let head: String = name.chars().take(KEEP).collect();
        format!("{head}...")
    }
}
