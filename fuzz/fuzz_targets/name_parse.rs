//! The name parser: never panics, and what it accepts obeys the name rules.
#![no_main]

use libfuzzer_sys::fuzz_target;
use namedmutex::{ErrorKind, Name};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match Name::parse(s) {
        Ok(None) => assert!(s.is_empty()),
        Ok(Some(n)) => {
            assert_eq!(n.full, s);
            assert!(!n.object.is_empty());
            assert!(!n.object.contains('\\') && !s.contains('\0'));
            assert!(s.encode_utf16().count() <= namedmutex::name::MAX_NAME_UTF16);
            assert!(s.ends_with(n.object));
            assert_eq!(
                format!("{}{}", n.namespace.prefix(), n.object) == s,
                s.starts_with("Local\\") || s.starts_with("Global\\")
            );
        }
        Err(e) => assert!(matches!(
            e.kind(),
            ErrorKind::InvalidName | ErrorKind::PathNotFound | ErrorKind::NameTooLong
        )),
    }
});
