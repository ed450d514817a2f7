//! Names as the wide-character API wants them.

/// `s` as a NUL-terminated UTF-16 string for a `PCWSTR` parameter. Names reach the backend
/// validated by [`crate::name`], so they hold no NUL of their own.
pub(super) fn to_wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

/// The NUL-terminated UTF-16 string at `p`, as a `String` (unpaired surrogates replaced).
///
/// # Safety
///
/// `p` must point to a readable, NUL-terminated UTF-16 string.
pub(super) unsafe fn from_wide_ptr(p: *const u16) -> String {
    let mut len = 0;
    // SAFETY: the caller guarantees a NUL-terminated string, so every unit up to and including
    // the NUL is readable.
    while unsafe { *p.add(len) } != 0 {
        len += 1;
    }
    // SAFETY: the `len` units before the NUL were just read, so they are readable and
    // initialised.
    String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(p, len) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_round_trip() {
        let w = to_wide("Global\\ünï😀");
        assert_eq!(w.last(), Some(&0));
        assert_eq!(w.len(), "Global\\ünï😀".encode_utf16().count() + 1);
        // SAFETY: `w` is NUL-terminated and alive.
        assert_eq!(unsafe { from_wide_ptr(w.as_ptr()) }, "Global\\ünï😀");
    }
}
