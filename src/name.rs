//! The name grammar of Windows kernel objects, checked once above every backend.
//!
//! | input | meaning |
//! |---|---|
//! | `""` | an unnamed mutex |
//! | `name`, `Local\name` | the same object, in the caller's private namespace |
//! | `Global\name` | the machine-wide namespace |
//! | `Local\`, `Global\` (nothing after) | [`ErrorKind::InvalidName`] (123) |
//! | a backslash after the optional prefix | [`ErrorKind::PathNotFound`] (3) |
//! | more than 260 UTF-16 units in all | [`ErrorKind::NameTooLong`] (206) |
//! | a NUL character | [`ErrorKind::InvalidName`] (123) |
//!
//! Prefixes are matched exactly (case-sensitively): `global\x` is an ordinary name with a
//! backslash in it, so it fails with `PathNotFound` like any other.

use crate::error::{Error, ErrorKind, Result};

/// The longest name, in UTF-16 code units (`MAX_PATH`).
pub const MAX_NAME_UTF16: usize = 260;

const GLOBAL_PREFIX: &str = "Global\\";
const LOCAL_PREFIX: &str = "Local\\";

/// Which namespace a name lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Namespace {
    /// `Local\` or no prefix: private to the calling user (on Windows, the logon session).
    Local,
    /// `Global\`: shared by every user of the machine.
    Global,
}

impl Namespace {
    /// The prefix that selects this namespace (`"Local\\"` or `"Global\\"`).
    pub fn prefix(self) -> &'static str {
        match self {
            Namespace::Local => LOCAL_PREFIX,
            Namespace::Global => GLOBAL_PREFIX,
        }
    }
}

/// A validated object name: its namespace and the part after the prefix.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Name<'a> {
    /// The name exactly as the caller gave it (kept for messages and `NamedMutex::name`).
    pub full: &'a str,
    /// The namespace the prefix selects.
    pub namespace: Namespace,
    /// The name without its prefix: what identifies the object inside its namespace.
    pub object: &'a str,
}

impl<'a> Name<'a> {
    /// Parses and checks `name`. `Ok(None)` means "no name": an unnamed mutex.
    ///
    /// ```
    /// use namedmutex::{ErrorKind, Name, Namespace};
    ///
    /// let n = Name::parse("Global\\jobs").unwrap().unwrap();
    /// assert_eq!((n.namespace, n.object), (Namespace::Global, "jobs"));
    /// assert_eq!(Name::parse("Local\\jobs").unwrap().unwrap().object, "jobs");
    /// assert!(Name::parse("").unwrap().is_none());
    /// assert_eq!(Name::parse("a\\b").unwrap_err().kind(), ErrorKind::PathNotFound);
    /// ```
    pub fn parse(name: &'a str) -> Result<Option<Name<'a>>> {
        if name.is_empty() {
            return Ok(None);
        }
        let units = name.encode_utf16().count();
        if units > MAX_NAME_UTF16 {
            return Err(Error::new(
                ErrorKind::NameTooLong,
                format!(
                    "the name {:?} is {units} UTF-16 units long; the limit is {MAX_NAME_UTF16} (MAX_PATH)",
                    shorten(name)
                ),
            ));
        }
        if name.contains('\0') {
            return Err(Error::new(
                ErrorKind::InvalidName,
                format!("the name {:?} contains a NUL character", shorten(name)),
            ));
        }
        let (namespace, object) = if let Some(rest) = name.strip_prefix(GLOBAL_PREFIX) {
            (Namespace::Global, rest)
        } else if let Some(rest) = name.strip_prefix(LOCAL_PREFIX) {
            (Namespace::Local, rest)
        } else {
            (Namespace::Local, name)
        };
        if object.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidName,
                format!("the name {name:?} has nothing after its namespace prefix"),
            ));
        }
        if object.contains('\\') {
            return Err(Error::new(
                ErrorKind::PathNotFound,
                format!(
                    "the name {:?} has a backslash after its prefix; only \"Local\\\" and \"Global\\\" may be followed by one",
                    shorten(name)
                ),
            ));
        }
        Ok(Some(Name {
            full: name,
            namespace,
            object,
        }))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(name: &str) -> Option<ErrorKind> {
        Name::parse(name).err().map(|e| e.kind())
    }

    #[test]
    fn table_of_semantics_md_section_1() {
        assert!(Name::parse("").unwrap().is_none());
        for ok in [
            "plain",
            "Local\\x",
            "Global\\x",
            "a/b",
            "with space",
            "ünï©ødé",
            "global",
        ] {
            assert!(Name::parse(ok).unwrap().is_some(), "{ok}");
        }
        assert_eq!(kind("Local\\"), Some(ErrorKind::InvalidName));
        assert_eq!(kind("Global\\"), Some(ErrorKind::InvalidName));
        assert_eq!(kind("a\\b"), Some(ErrorKind::PathNotFound));
        assert_eq!(kind("Global\\a\\b"), Some(ErrorKind::PathNotFound));
        assert_eq!(kind("Foo\\bar"), Some(ErrorKind::PathNotFound));
        assert_eq!(kind("global\\Z"), Some(ErrorKind::PathNotFound));
        assert_eq!(kind("\\a"), Some(ErrorKind::PathNotFound));
        assert_eq!(kind("a\0b"), Some(ErrorKind::InvalidName));
    }

    #[test]
    fn length_is_counted_in_utf16_units_over_the_whole_name() {
        let at_limit = "x".repeat(MAX_NAME_UTF16);
        assert!(Name::parse(&at_limit).is_ok());
        assert_eq!(
            kind(&"x".repeat(MAX_NAME_UTF16 + 1)),
            Some(ErrorKind::NameTooLong)
        );
        // The prefix counts too.
        let prefixed = format!("Global\\{}", "x".repeat(MAX_NAME_UTF16 - 7));
        assert!(Name::parse(&prefixed).is_ok());
        assert_eq!(kind(&format!("{prefixed}x")), Some(ErrorKind::NameTooLong));
        // A character outside the BMP is two UTF-16 units.
        let astral = "😀".repeat(MAX_NAME_UTF16 / 2);
        assert!(Name::parse(&astral).is_ok());
        assert_eq!(kind(&format!("{astral}x")), Some(ErrorKind::NameTooLong));
    }

    #[test]
    fn prefixes_are_stripped_and_case_sensitive() {
        let n = Name::parse("Local\\Jobs").unwrap().unwrap();
        assert_eq!((n.namespace, n.object), (Namespace::Local, "Jobs"));
        let n = Name::parse("LOCAL").unwrap().unwrap();
        assert_eq!((n.namespace, n.object), (Namespace::Local, "LOCAL"));
    }
}
