//! Record locks on single bytes of a file (`fcntl` `F_SETLK`/`F_GETLK`): a process's
//! lifeline. The kernel drops a process's record locks when it exits in any way and when it
//! closes *any* descriptor of the file (so a process keeps one descriptor per registry and
//! never closes it: `registry.rs`); the descriptor is close-on-exec, so `exec` drops them
//! too. Any process that can open the file can ask who holds a byte, through a read-only
//! descriptor.
#![allow(unsafe_code)]

use rustix::fd::{AsRawFd, BorrowedFd};
use std::io;

/// What a record lock excludes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A read lock: excludes writers.
    Read,
    /// A write lock: excludes everyone.
    Write,
}

/// A `flock` record describing one byte at `offset`.
fn one_byte(kind: Kind, offset: u64) -> libc::flock {
    // SAFETY: `libc::flock` is a plain C struct of integers, for which all-zero bytes are a
    // valid value (and the documented way to clear fields a platform adds, such as
    // FreeBSD's `l_sysid`).
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = match kind {
        Kind::Read => libc::F_RDLCK as _,
        Kind::Write => libc::F_WRLCK as _,
    };
    lock.l_whence = libc::SEEK_SET as _;
    lock.l_start = offset as libc::off_t;
    lock.l_len = 1;
    lock
}

/// Takes an exclusive lock on the byte at `offset` for this process, without waiting:
/// `Ok(false)` if another process holds it. `fd` must be open for writing.
pub(crate) fn hold(fd: BorrowedFd<'_>, offset: u64) -> io::Result<bool> {
    let lock = one_byte(Kind::Write, offset);
    // SAFETY: F_SETLK reads the `flock` record we pass by pointer, which lives across the call.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETLK, &lock) };
    if rc == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EACCES) => Ok(false),
        _ => Err(e),
    }
}

/// Who holds a lock on the byte at `offset` that excludes `kind` (`Read`: only write locks,
/// which only processes that may write the file can take; `Write`: any lock):
/// `Some(pid)` (as this process sees it, 0 when the holder is outside our PID namespace) or
/// `None` when nobody else does. This process's own locks never show: it must know them.
pub(crate) fn holder(fd: BorrowedFd<'_>, offset: u64, kind: Kind) -> io::Result<Option<i32>> {
    let mut lock = one_byte(kind, offset);
    // SAFETY: F_GETLK reads and overwrites the `flock` record we pass by pointer, which
    // lives across the call and is ours alone.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETLK, &mut lock) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // The field and the constant have different widths on some targets.
    let (found, unlocked): (i64, i64) = (lock.l_type.into(), libc::F_UNLCK.into());
    let unlocked = found == unlocked;
    Ok((!unlocked).then_some(lock.l_pid))
}
