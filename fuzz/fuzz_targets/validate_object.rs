//! Object-file validation: whatever the bytes, the checks an open applies either accept
//! the page or refuse it with Incompatible, Corrupt or TypeMismatch (or, for a user table
//! full of other users, ResourceExhausted); never a panic or a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use namedmutex::ErrorKind;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = namedmutex::__fuzz_validate_object(data) {
        assert!(
            matches!(
                e.kind(),
                ErrorKind::Incompatible
                    | ErrorKind::Corrupt
                    | ErrorKind::TypeMismatch
                    | ErrorKind::ResourceExhausted
            ),
            "{e:?}"
        );
    }
});
