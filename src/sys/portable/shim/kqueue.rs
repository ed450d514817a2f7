//! macOS and FreeBSD: a process's exit and exec reported by kqueue (`EVFILT_PROC` with
//! `NOTE_EXIT | NOTE_EXEC`). macOS lets any process watch any pid for `NOTE_EXIT`; FreeBSD
//! asks `p_cansee`, which can refuse across users (`security.bsd.see_other_uids=0`) and in
//! jails: such an owner is unwatched (`watcher.rs`). The kernel posts `NOTE_EXIT` after the
//! process's files are closed, so its record locks are gone by then; `NOTE_EXEC` may come
//! before the close-on-exec descriptors are closed, so the watcher asks the lock again.
#![allow(unsafe_code)]

use rustix::fd::{AsRawFd, OwnedFd};
use std::io;

/// The exits (and execs) of the processes a watcher watches, each under a key of its
/// choosing.
pub(crate) struct DeathEvents {
    kq: OwnedFd,
}

/// One watched process: dropping it ends the watch.
pub(crate) struct Watching {
    kq: libc::c_int,
    pid: libc::pid_t,
}

/// A `kevent` change for `pid` with `flags` and `key` as its user data.
fn change(pid: libc::pid_t, flags: u16, key: u64) -> libc::kevent {
    // SAFETY: `kevent` is a plain C struct for which all-zero bytes are valid.
    let mut ev: libc::kevent = unsafe { std::mem::zeroed() };
    ev.ident = pid as libc::uintptr_t;
    ev.filter = libc::EVFILT_PROC;
    ev.flags = flags;
    ev.fflags = libc::NOTE_EXIT | libc::NOTE_EXEC;
    ev.udata = key as usize as *mut libc::c_void;
    ev
}

impl DeathEvents {
    pub(crate) fn new() -> io::Result<DeathEvents> {
        // SAFETY: kqueue has no preconditions.
        let kq = unsafe { libc::kqueue() };
        if kq < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `kq` is a new descriptor that nothing else owns.
        let kq = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(kq) };
        rustix::io::fcntl_setfd(&kq, rustix::io::FdFlags::CLOEXEC)?;
        Ok(DeathEvents { kq })
    }

    /// Reports `pid`'s exit (and exec) under `key`; `Err(ESRCH)` when it has already gone.
    pub(crate) fn watch(&self, pid: i32, key: u64) -> io::Result<Watching> {
        let add = change(pid, libc::EV_ADD | libc::EV_RECEIPT, key);
        // SAFETY: a zeroed `kevent` is valid (see `change`).
        let mut out: libc::kevent = unsafe { std::mem::zeroed() };
        // SAFETY: one change in, room for one receipt out, both locals; no timeout.
        let n =
            unsafe { libc::kevent(self.kq.as_raw_fd(), &add, 1, &mut out, 1, std::ptr::null()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if out.flags & libc::EV_ERROR != 0 && out.data != 0 {
            return Err(io::Error::from_raw_os_error(out.data as i32));
        }
        Ok(Watching {
            kq: self.kq.as_raw_fd(),
            pid,
        })
    }

    /// Blocks until some watched processes exited or exec'd; returns their keys.
    pub(crate) fn next(&self) -> io::Result<Vec<u64>> {
        // SAFETY: a zeroed `kevent` is valid (see `change`).
        let mut events: [libc::kevent; 32] = unsafe { std::mem::zeroed() };
        loop {
            // SAFETY: no changes; room for 32 events in a local array; no timeout.
            let n = unsafe {
                libc::kevent(
                    self.kq.as_raw_fd(),
                    std::ptr::null(),
                    0,
                    events.as_mut_ptr(),
                    events.len() as libc::c_int,
                    std::ptr::null(),
                )
            };
            if n >= 0 {
                return Ok(events[..n as usize]
                    .iter()
                    .map(|e| e.udata as usize as u64)
                    .collect());
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(e);
            }
        }
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        let delete = change(self.pid, libc::EV_DELETE, 0);
        // SAFETY: one change, no events out; the kqueue outlives every watch (the watcher
        // keeps its `DeathEvents` for the life of the process). ENOENT (the process's exit
        // already removed the watch) is fine.
        let _ = unsafe {
            libc::kevent(
                self.kq,
                &delete,
                1,
                std::ptr::null_mut(),
                0,
                std::ptr::null(),
            )
        };
    }
}
