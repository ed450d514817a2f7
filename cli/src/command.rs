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
