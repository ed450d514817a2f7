//! How an object's name becomes a file name.
//!
//! Names may hold any character but NUL, including `/`; file names may not. Bytes that
//! cannot or should not appear in a file name (`/`, `%`, control characters, and a leading
//! `.`, which would hide the file and could spell `.` or `..`) are written as `%XX`. Names
//! whose encoding exceeds [`MAX_ENCODED`] bytes become `%%` and the SHA-256 of the name in
//! hex; the full name is stored in the object and checked at every open, so a collision
//! could only ever be refused, never confused.

use sha2::{Digest, Sha256};
use std::fmt::Write;

/// Longest encoded name kept readable (file systems allow 255 bytes; leave room).
pub(super) const MAX_ENCODED: usize = 200;

/// The file name for the object name `object` (the part after the namespace prefix).
pub(super) fn encode(object: &str) -> String {
    let mut out = String::with_capacity(object.len());
    for (i, ch) in object.char_indices() {
        let escape = matches!(ch, '/' | '%')
            || ch.is_control() && (ch as u32) < 0x80
            || (i == 0 && ch == '.');
        if escape {
            let _ = write!(out, "%{:02X}", ch as u32);
        } else {
            out.push(ch);
        }
    }
    if out.len() > MAX_ENCODED {
        let digest = Sha256::digest(object.as_bytes());
        out.clear();
        out.push_str("%%");
        for b in digest {
            let _ = write!(out, "{b:02x}");
        }
    }
    out
}

/// The object name a file name stands for, when it is a readable (not hashed) encoding.
pub(super) fn decode(file: &str) -> Option<String> {
    if file.starts_with("%%") {
        return None;
    }
    let bytes = file.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = file.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_are_kept() {
        assert_eq!(encode("build-cache"), "build-cache");
        assert_eq!(encode("été ✓ x"), "été ✓ x");
    }

    #[test]
    fn unsafe_bytes_are_escaped_and_round_trip() {
        for name in ["a/b", "..", ".hidden", "50%", "tab\there", "/", "x.y"] {
            let file = encode(name);
            assert!(!file.contains('/'), "{file}");
            assert!(!file.starts_with('.'), "{file}");
            assert_ne!(file, "..");
            assert_eq!(decode(&file).as_deref(), Some(name));
        }
    }

    #[test]
    fn distinct_names_give_distinct_files() {
        assert_ne!(encode("a/b"), encode("a%2Fb"));
        assert_ne!(encode("Foo"), encode("foo"));
    }

    #[test]
    fn long_names_are_hashed() {
        let long = "n".repeat(260);
        let file = encode(&long);
        assert_eq!(file.len(), 66);
        assert!(file.starts_with("%%"));
        assert_eq!(decode(&file), None);
        assert_ne!(encode(&"n".repeat(259)), file);
    }
}
