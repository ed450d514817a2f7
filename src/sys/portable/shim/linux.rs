//! Linux: `FUTEX_WAIT`/`FUTEX_WAKE` on one shared word (not `_PRIVATE`: the word lies in a
//! file mapping other processes share), and a process's exit reported through its pidfd,
//! which epoll watches.

use super::Waited;
use rustix::event::epoll;
use rustix::fd::{AsFd, OwnedFd};
use rustix::io::Errno;
use rustix::thread::futex;
use rustix::time::Timespec;
use std::io;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// Sleeps while `word` holds `expected`, until woken or `timeout` (`None`: no limit).
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Waited {
    let relative = timeout.map(|t| Timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: i64::from(t.subsec_nanos()),
    });
    match futex::wait(word, futex::Flags::empty(), expected, relative.as_ref()) {
        Ok(()) => Waited::Woken,
        Err(Errno::TIMEDOUT) => Waited::TimedOut,
        Err(_) => Waited::Again,
    }
}

/// Wakes up to `n` threads sleeping on `word`, in any process.
pub(crate) fn wake(word: &AtomicU32, n: u32) {
    // A wake with nobody asleep is a no-op; errors are impossible for a mapped word.
    let _ = futex::wake(word, futex::Flags::empty(), n);
}

/// The exits of the processes a watcher watches, each under a key of its choosing.
pub(crate) struct DeathEvents {
    epoll: OwnedFd,
}

/// One watched process: dropping it stops the watch (closing the pidfd removes it from
/// the epoll set).
pub(crate) struct Watching {
    _pidfd: OwnedFd,
}

impl DeathEvents {
    pub(crate) fn new() -> io::Result<DeathEvents> {
        Ok(DeathEvents {
            epoll: epoll::create(epoll::CreateFlags::CLOEXEC)?,
        })
    }

    /// Reports `pid`'s exit under `key`; `Err(ESRCH)` when it has already gone.
    pub(crate) fn watch(&self, pid: i32, key: u64) -> io::Result<Watching> {
        let pid = rustix::process::Pid::from_raw(pid).ok_or(Errno::SRCH)?;
        let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())?;
        epoll::add(
            &self.epoll,
            pidfd.as_fd(),
            epoll::EventData::new_u64(key),
            epoll::EventFlags::IN | epoll::EventFlags::ONESHOT,
        )?;
        Ok(Watching { _pidfd: pidfd })
    }

    /// Blocks until some watched processes have exited; returns their keys. A key whose
    /// process merely exec'd is never reported here (pidfds report exits only).
    pub(crate) fn next(&self) -> io::Result<Vec<u64>> {
        let mut events = Vec::with_capacity(32);
        loop {
            match epoll::wait(
                &self.epoll,
                rustix::buffer::spare_capacity(&mut events),
                None,
            ) {
                Ok(_) => return Ok(events.iter().map(|e| e.data.u64()).collect()),
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}
