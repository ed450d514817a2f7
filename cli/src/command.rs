//! Starting `run`'s command so that it cannot outlive the process that holds its lock.
//!
//! The lock belongs to this process (the wrapper), not to the command. If the wrapper dies
//! (SIGKILL, the OOM killer, systemd's `KillMode=process`), the kernel reports the lock
//! abandoned at once; a command left running would then work beside the next holder. So
//! the command is started with `PR_SET_PDEATHSIG` = SIGKILL: the kernel kills it when the
//! wrapper dies. The death signal is set in the child between `fork` and `exec`; a wrapper
//! that died before that point is caught by comparing the parent pid afterwards.
//!
//! What is left: the kernel processes a dying wrapper's robust-futex list (which abandons
//! the lock) a few microseconds before it sends the death signal, so a next holder can
//! start in that window while the command is being killed. And the death signal follows
//! the thread that started the command, so this must be called from the main thread, which
//! lives as long as the process.

use std::io;
use std::process::{Child, Command};

/// Starts `command` as a child that dies with this process.
#[cfg(target_os = "linux")]
pub fn spawn_bound(command: &mut Command) -> io::Result<Child> {
    use std::os::unix::process::CommandExt;
    let wrapper = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the child between fork and exec, and calls only prctl,
    // getppid and raise, which are async-signal-safe; it touches no memory of the parent.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::getppid() != wrapper {
                // The wrapper died before the death signal was set: die as it would have
                // made us.
                libc::raise(libc::SIGKILL);
            }
            Ok(())
        });
    }
    command.spawn()
}

/// Starts `command` (no death signal on this platform: see cli/README.md).
#[cfg(not(target_os = "linux"))]
pub fn spawn_bound(command: &mut Command) -> io::Result<Child> {
    command.spawn()
}

/// Waits for `child` to end, calling `tick` every `every` meanwhile (on the calling thread:
/// no thread to start, which `run`'s start-up would pay for).
#[cfg(target_os = "linux")]
pub fn wait_ticking(
    child: &mut Child,
    every: std::time::Duration,
    tick: &mut dyn FnMut(),
) -> io::Result<std::process::ExitStatus> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: pidfd_open takes a pid and flags, and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id() as libc::pid_t, 0) };
    if fd < 0 {
        return child.wait(); // a kernel before 5.3: no ticks
    }
    // SAFETY: a descriptor the kernel just gave us, owned by nobody else.
    let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let millis = every.as_millis().min(i32::MAX as u128) as i32;
    loop {
        let mut pfd = libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, millis) };
        if n > 0 {
            return child.wait();
        }
        if n == 0 {
            tick();
        }
        // n < 0: EINTR (a signal, forwarded by its handler): look again.
    }
}

/// Waits for `child` to end (no ticks on this platform).
#[cfg(not(target_os = "linux"))]
pub fn wait_ticking(
    child: &mut Child,
    _: std::time::Duration,
    _: &mut dyn FnMut(),
) -> io::Result<std::process::ExitStatus> {
    child.wait()
}
