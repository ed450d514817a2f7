//! The few calls whose form differs between Linux, macOS and FreeBSD, each with a plain
//! name: the calling thread's id, a file with no name (an unnamed mutex's object), and a new
//! open file description of an open file.

use super::files::io_error;
use crate::sys::contract::Result;
use rustix::fd::{BorrowedFd, OwnedFd};

/// The calling thread's id as its system shows it (diagnostics: who owns, who abandoned).
#[cfg(target_os = "linux")]
pub(super) fn thread_id() -> u32 {
    rustix::thread::gettid().as_raw_nonzero().get() as u32
}

/// The calling thread's id as its system shows it (diagnostics: who owns, who abandoned).
#[cfg(target_os = "macos")]
#[allow(unsafe_code)]
pub(super) fn thread_id() -> u32 {
    let mut id = 0u64;
    // SAFETY: pthread_threadid_np writes the id of the given thread (0: the calling one) to
    // the pointer, which is a valid local.
    unsafe { libc::pthread_threadid_np(0, &mut id) };
    id as u32 // the system-wide id, as `ps -M` shows it (its low 32 bits)
}

/// The calling thread's id as its system shows it (diagnostics: who owns, who abandoned).
#[cfg(target_os = "freebsd")]
#[allow(unsafe_code)]
pub(super) fn thread_id() -> u32 {
    // SAFETY: pthread_getthreadid_np has no preconditions.
    unsafe { libc::pthread_getthreadid_np() as u32 }
}

/// The calling process's id.
pub(super) fn process_id() -> u32 {
    rustix::process::getpid().as_raw_nonzero().get() as u32
}

/// A new file without a name, in memory where the system allows (`memfd_create`), else in
/// `dir` (created under a unique name and unlinked at once): an unnamed mutex's object.
pub(super) fn anonymous_file(dir: BorrowedFd<'_>) -> Result<OwnedFd> {
    #[cfg(any(target_os = "linux", target_os = "freebsd"))]
    {
        let _ = dir;
        rustix::fs::memfd_create("namedmutex", rustix::fs::MemfdFlags::CLOEXEC)
            .map_err(|e| io_error("create", "an unnamed mutex", e))
    }
    #[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
    {
        use rustix::fs::{AtFlags, OFlags};
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            ".nmtx-anon.{}.{}",
            process_id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let fd = rustix::fs::openat(
            dir,
            name.as_str(),
            OFlags::CREATE | OFlags::EXCL | OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            super::files::mode(0o600),
        )
        .map_err(|e| io_error("create", "an unnamed mutex", e))?;
        rustix::fs::unlinkat(dir, name.as_str(), AtFlags::empty())
            .map_err(|e| io_error("unlink the file of", "an unnamed mutex", e))?;
        Ok(fd)
    }
}

/// A new open file description of the file `fd` is open on, read-write and inherited by
/// `exec` (an inheritable handle's, which must hold a `flock` lock of its own). On Linux
/// through `/proc/self/fd`; elsewhere by opening `name` in `dir` again (checked to be the
/// same file), or, for a file without a name, a duplicate of the same description.
pub(super) fn reopen(fd: BorrowedFd<'_>, named: Option<(BorrowedFd<'_>, &str)>) -> Result<OwnedFd> {
    #[cfg(target_os = "linux")]
    {
        let _ = named;
        use std::os::fd::AsRawFd;
        let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        rustix::fs::open(
            path.as_str(),
            rustix::fs::OFlags::RDWR,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| io_error("reopen", "a mutex object (is /proc mounted?)", e))
    }
    #[cfg(not(target_os = "linux"))]
    match named {
        Some((dir, name)) => {
            use rustix::fd::AsFd;
            let again = rustix::fs::openat(
                dir,
                name,
                rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOFOLLOW,
                rustix::fs::Mode::empty(),
            )
            .map_err(|e| io_error("reopen", "a mutex object", e))?;
            let same = |f: BorrowedFd<'_>| rustix::fs::fstat(f).map(|st| super::files::key(&st));
            match (same(fd), same(again.as_fd())) {
                (Ok(a), Ok(b)) if a == b => Ok(again),
                _ => Err(crate::sys::contract::Error::new(
                    crate::sys::contract::ErrorKind::Busy,
                    "the object is being removed",
                )),
            }
        }
        None => rustix::io::dup(fd).map_err(|e| io_error("duplicate", "an unnamed mutex", e)),
    }
}

/// Has `hook` run when the process exits through `exit` (a return from `main`, or
/// `std::process::exit`), after the exiting thread's thread-local destructors; not at
/// `_exit`, a signal or an `exec`. False if the C library's table of such hooks is full.
/// `hook` must not unwind (it is `extern "C"`: a panic escaping it aborts the process).
#[cfg(feature = "postgres")] // the PostgreSQL backend's sessions end at exit
pub(in crate::sys) fn at_exit(hook: extern "C" fn()) -> bool {
    #[allow(unsafe_code)]
    // SAFETY: atexit only stores the pointer, which is to a function that lives as long as
    // the program; the C library calls it with no arguments, as its type says.
    let status = unsafe { libc::atexit(hook) };
    status == 0
}
