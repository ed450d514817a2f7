//! The OS calls of the portable flavour, one file per system, each as thin as it can be:
//! wait and wake on a 32-bit word in shared memory, and death events for other processes.
//! Record locks (`F_SETLK`/`F_GETLK`) are POSIX and the same everywhere: `record_lock.rs`.
//!
//! | system | wait/wake | death events |
//! |---|---|---|
//! | Linux | `FUTEX_WAIT`/`FUTEX_WAKE` (shared) | `pidfd_open` + epoll |
//! | macOS | `os_sync_wait_on_address` (`…_SHARED`), resolved at run time; `__ulock_wait2` before 14.4 | kqueue `EVFILT_PROC` `NOTE_EXIT\|NOTE_EXEC` |
//! | FreeBSD | `_umtx_op` `UMTX_OP_WAIT_UINT`/`UMTX_OP_WAKE` (shared) | kqueue `EVFILT_PROC` `NOTE_EXIT\|NOTE_EXEC` |

pub(crate) mod record_lock;
#[cfg(test)]
mod tests;

#[cfg(target_os = "freebsd")]
mod freebsd;
#[cfg(any(target_os = "macos", target_os = "freebsd"))]
mod kqueue;
#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "macos")]
mod macos;

#[cfg(target_os = "freebsd")]
pub(crate) use freebsd::{wait, wake};
#[cfg(any(target_os = "macos", target_os = "freebsd"))]
pub(crate) use kqueue::{DeathEvents, Watching};
#[cfg(target_os = "linux")]
pub(crate) use linux::{DeathEvents, Watching, wait, wake};
#[cfg(target_os = "macos")]
pub(crate) use macos::{wait, wake};

/// How a wait on a word ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Waited {
    /// Woken (or spuriously returned): look again.
    Woken,
    /// The timeout passed.
    TimedOut,
    /// The word did not hold the expected value, or a signal interrupted: look again.
    Again,
}
