//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`; not a public API).

use super::layout::{FLAG_GLOBAL, MAX_USERS, OBJECT_SIZE, ObjectPage};
use super::mapping::Mapping;
use crate::protocol::LockWord;
use crate::sys::contract::{Error, ErrorKind, Result};
use rustix::fd::AsFd;
use std::sync::atomic::Ordering;

/// Runs the checks an open applies to an object file holding `bytes` (size, then the header
/// as `ObjectPage::validate` reads it, then the namespace flag, for the expected name
/// `"fuzz"` in the `Local\` namespace), and on success reads every field a later wait or
/// inspection reads. Must never panic or crash, whatever `bytes` holds.
pub(crate) fn validate_object(bytes: &[u8]) -> Result<()> {
    let io = |e: rustix::io::Errno| Error::io(ErrorKind::Io, "fuzz memfd", e.into());
    let fd =
        rustix::fs::memfd_create("namedmutex-fuzz", rustix::fs::MemfdFlags::CLOEXEC).map_err(io)?;
    let mut written = 0;
    while written < bytes.len() {
        written += rustix::io::write(&fd, &bytes[written..]).map_err(io)?;
    }
    if bytes.len() != OBJECT_SIZE {
        return Err(Error::new(ErrorKind::Corrupt, "not one page"));
    }
    let map = Mapping::map(fd.as_fd(), OBJECT_SIZE, true)
        .map_err(|e| Error::io(ErrorKind::Io, "fuzz map", e))?;
    // Without a name (inherited handles), then with one (opens by name).
    let page = ObjectPage::validate(map, None)?;
    let _ = page.name();
    drop(page);
    let map = Mapping::map(fd.as_fd(), OBJECT_SIZE, true)
        .map_err(|e| Error::io(ErrorKind::Io, "fuzz map", e))?;
    let page = ObjectPage::validate(map, Some("fuzz"))?;
    if page.flags().load(Ordering::Relaxed) & FLAG_GLOBAL != 0 {
        return Err(Error::new(ErrorKind::Corrupt, "wrong namespace"));
    }
    let word = page.lock_word().load(Ordering::Acquire);
    let _ = (
        LockWord::from_bits(word).token(),
        LockWord::from_bits(word).user(),
        LockWord::from_bits(word).slot_plus_one(),
        LockWord::from_bits(word).generation(),
        page.user(LockWord::from_bits(word).user()),
    );
    for i in 0..=MAX_USERS {
        let _ = page.user(i);
    }
    let _ = (
        page.creator(),
        page.root_ident(),
        page.count(),
        page.sleepers(),
    );
    page.user_index(12345).map(|_| ())
}
