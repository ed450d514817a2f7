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
use crate::sys::contract::{self, shorten};

/// The longest name, in UTF-16 code units (`MAX_PATH`).
pub const MAX_NAME_UTF16: usize = 260;

/// Which namespace a name lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Namespace {
    /// `Local\` or no prefix: private to the calling user (on Windows, the logon session).
    Local,
    /// `Global\`: shared by every user of the machine.
    Global,
}

impl Namespace {
    /// The prefix that selects this namespace (`"Local\\"` or `"Global\\"`).
    ///
    /// ```
    /// use namedmutex::Namespace;
    ///
    /// assert_eq!(Namespace::Global.prefix(), "Global\\");
    /// assert_eq!(Namespace::Local.prefix(), "Local\\");
    /// ```
    pub fn prefix(self) -> &'static str {
        contract::Namespace::from(self).prefix()
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
        let (namespace, object) = if let Some(rest) = name.strip_prefix(Namespace::Global.prefix())
        {
            (Namespace::Global, rest)
        } else if let Some(rest) = name.strip_prefix(Namespace::Local.prefix()) {
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

impl From<contract::Namespace> for Namespace {
    #[inline]
    fn from(namespace: contract::Namespace) -> Namespace {
        match namespace {
            contract::Namespace::Local => Namespace::Local,
            contract::Namespace::Global => Namespace::Global,
        }
    }
}

impl From<Namespace> for contract::Namespace {
    #[inline]
    fn from(namespace: Namespace) -> contract::Namespace {
        match namespace {
            Namespace::Local => contract::Namespace::Local,
            Namespace::Global => contract::Namespace::Global,
        }
    }
}

impl<'a> From<&Name<'a>> for contract::Name<'a> {
    #[inline]
    fn from(name: &Name<'a>) -> contract::Name<'a> {
        contract::Name {
            full: name.full,
            namespace: name.namespace.into(),
            object: name.object,
        }
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
    fn a_backend_receives_the_parsed_name_and_namespace() {
        for (text, namespace, object) in [
            ("Global\\jobs", contract::Namespace::Global, "jobs"),
            ("Local\\jobs", contract::Namespace::Local, "jobs"),
            ("jobs", contract::Namespace::Local, "jobs"),
        ] {
            let parsed = Name::parse(text).unwrap().unwrap();
            let sent = contract::Name::from(&parsed);
            assert_eq!(
                (sent.full, sent.namespace, sent.object),
                (text, namespace, object)
            );
            assert_eq!(Namespace::from(sent.namespace), parsed.namespace);
            assert_eq!(sent.namespace.prefix(), parsed.namespace.prefix());
        }
    }

    #[test]
    fn prefixes_are_stripped_and_case_sensitive() {
        let n = Name::parse("Local\\Jobs").unwrap().unwrap();
        assert_eq!((n.namespace, n.object), (Namespace::Local, "Jobs"));
        let n = Name::parse("LOCAL").unwrap().unwrap();
        assert_eq!((n.namespace, n.object), (Namespace::Local, "LOCAL"));
    }
}

/// The name rules as properties, over generated names (proptest).
#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    /// Object names: no backslash, no NUL, not empty, any other character (ASCII-heavy,
    /// with some from outside the BMP, which count two UTF-16 units).
    fn object() -> impl Strategy<Value = String> {
        "[^\\\\\u{0}]{1,40}|[a-z/%. \u{e9}\u{1F600}]{1,40}"
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn parse_never_panics_and_classifies(s in any::<String>()) {
            match Name::parse(&s) {
                Ok(None) => prop_assert!(s.is_empty()),
                Ok(Some(n)) => {
                    prop_assert_eq!(n.full, s.as_str());
                    prop_assert!(!n.object.is_empty() && !n.object.contains('\\'));
                    prop_assert!(s.encode_utf16().count() <= MAX_NAME_UTF16);
                }
                Err(e) => prop_assert!(matches!(
                    e.kind(),
                    ErrorKind::InvalidName | ErrorKind::PathNotFound | ErrorKind::NameTooLong
                )),
            }
        }

        #[test]
        fn prefixes_select_the_namespace(obj in object()) {
            for (input, ns) in [
                (obj.clone(), Namespace::Local),
                (format!("Local\\{obj}"), Namespace::Local),
                (format!("Global\\{obj}"), Namespace::Global),
            ] {
                if input.encode_utf16().count() > MAX_NAME_UTF16 {
                    prop_assert_eq!(Name::parse(&input).unwrap_err().kind(), ErrorKind::NameTooLong);
                    continue;
                }
                let n = Name::parse(&input).unwrap().unwrap();
                prop_assert_eq!((n.namespace, n.object), (ns, obj.as_str()));
                prop_assert_eq!(n.full, input.as_str());
            }
        }

        #[test]
        fn a_backslash_after_the_prefix_is_path_not_found(
            a in object(), b in "[^\u{0}]{0,20}", prefix in prop::sample::select(vec!["", "Local\\", "Global\\", "global\\", "LOCAL\\"]),
        ) {
            // "Local" + "\\b" would be a prefix, not a backslash after one.
            prop_assume!(!(prefix.is_empty() && (a == "Local" || a == "Global")));
            let input = format!("{prefix}{a}\\{b}");
            prop_assume!(input.encode_utf16().count() <= MAX_NAME_UTF16);
            prop_assert_eq!(Name::parse(&input).unwrap_err().kind(), ErrorKind::PathNotFound);
        }

        #[test]
        fn a_nul_is_invalid_and_length_comes_first(a in object(), b in object(), extra in 0usize..300) {
            let with_nul = format!("{a}\0{b}");
            let padded = format!("{with_nul}{}", "x".repeat(extra));
            let kind = Name::parse(&padded).unwrap_err().kind();
            if padded.encode_utf16().count() > MAX_NAME_UTF16 {
                prop_assert_eq!(kind, ErrorKind::NameTooLong);
            } else {
                prop_assert_eq!(kind, ErrorKind::InvalidName);
            }
        }

        #[test]
        fn the_limit_is_260_utf16_units(units in 1usize..400, astral in any::<bool>()) {
            let s = if astral { "\u{1F600}".repeat(units.div_ceil(2)) } else { "y".repeat(units) };
            let n = s.encode_utf16().count();
            match Name::parse(&s) {
                Ok(Some(_)) => prop_assert!(n <= MAX_NAME_UTF16),
                Err(e) => {
                    prop_assert!(n > MAX_NAME_UTF16);
                    prop_assert_eq!(e.kind(), ErrorKind::NameTooLong);
                }
                Ok(None) => prop_assert!(false, "non-empty name parsed as unnamed"),
            }
        }
    }
}
