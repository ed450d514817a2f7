//! The signals that would end `run`, `hold` and `wait`: caught so that the lock is always
//! released by the thread that owns it (or, for `run`, kept by this process until the
//! command ends), and forwarded to the command that `run` started. That is every signal
//! whose default action ends a process and that a process can catch: SIGINT, SIGTERM,
//! SIGHUP, SIGQUIT, and also SIGUSR1, SIGUSR2, SIGALRM, SIGVTALRM, SIGPROF, SIGXCPU, SIGXFSZ,
//! SIGIO, SIGPWR, SIGSTKFLT and the real-time signals, none of which may kill the wrapper
//! alone and leave its command running unlocked. (SIGKILL cannot be caught: the command
//! is then killed with it, see `command.rs`. SIGPIPE stays ignored, as Rust sets it.)
//!
//! A signal a process sends to `namedmutex` (`kill -TERM <pid>`) is passed on to the
//! command. One the terminal generates (Ctrl-C, Ctrl-\, hangup) already reaches the command
//! directly, because it runs in the same foreground process group; it is not sent twice.

/// The signals handled.
#[cfg(target_os = "linux")]
pub fn handled() -> Vec<i32> {
    let mut all = vec![
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGALRM,
        libc::SIGVTALRM,
        libc::SIGPROF,
        libc::SIGXCPU,
        libc::SIGXFSZ,
        libc::SIGIO,
        libc::SIGPWR,
        libc::SIGSTKFLT,
    ];
    all.extend(libc::SIGRTMIN()..=libc::SIGRTMAX());
    all
}

#[cfg(target_os = "linux")]
mod imp {
    use super::handled;
    use std::sync::atomic::{AtomicI32, Ordering};

    /// The command's pid once `run` has started it; 0 before.
    static CHILD: AtomicI32 = AtomicI32::new(0);
    /// The last signal received and not yet acted on; 0 if none.
    static PENDING: AtomicI32 = AtomicI32::new(0);
    /// The write end of the self-pipe that wakes `hold`; -1 if none.
    static PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);
    /// The read end of the self-pipe.
    static PIPE_READ: AtomicI32 = AtomicI32::new(-1);

    extern "C" fn on_signal(sig: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
        // SAFETY: errno is thread-local; saving and restoring it keeps the interrupted code's
        // value intact across the calls below.
        let errno = unsafe { *libc::__errno_location() };
        let code = if info.is_null() {
            0
        } else {
            // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler.
            unsafe { (*info).si_code }
        };
        // Positive codes (SI_KERNEL) are signals the kernel generated, for a terminal's
        // foreground process group: the child got its own copy.
        let from_process = code <= 0;
        let child = CHILD.load(Ordering::SeqCst);
        if child > 0 {
            if from_process {
                // SAFETY: kill is async-signal-safe.
                unsafe { libc::kill(child, sig) };
            }
        } else {
            PENDING.store(sig, Ordering::SeqCst);
        }
        let fd = PIPE_WRITE.load(Ordering::SeqCst);
        if fd >= 0 {
            let byte = sig as u8;
            // SAFETY: write is async-signal-safe; the pipe is non-blocking, and a full pipe
            // already holds a wake-up.
            unsafe { libc::write(fd, (&raw const byte).cast(), 1) };
        }
        // SAFETY: as above.
        unsafe { *libc::__errno_location() = errno };
    }

    /// Installs the handlers (and the self-pipe `wait_for_stdin_or_signal` uses).
    pub fn install() {
        let mut fds = [-1; 2];
        // SAFETY: fds has room for the two descriptors pipe2 writes.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } == 0 {
            PIPE_READ.store(fds[0], Ordering::SeqCst);
            PIPE_WRITE.store(fds[1], Ordering::SeqCst);
        }
        for sig in handled() {
            // SAFETY: a zeroed sigaction is a valid starting value; the handler has the
            // signature SA_SIGINFO requires and only calls async-signal-safe functions.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as *const () as usize;
                action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(sig, &action, std::ptr::null_mut());
            }
        }
    }

    /// A signal received while no command was running, if any (taken: asking again gives
    /// `None` until the next one).
    pub fn take_pending() -> Option<i32> {
        match PENDING.swap(0, Ordering::SeqCst) {
            0 => None,
            sig => Some(sig),
        }
    }

    /// From now on, signals go to `pid`. A signal that arrived since the last
    /// `take_pending` is sent to it now.
    pub fn forward_to(pid: u32) {
        CHILD.store(pid as i32, Ordering::SeqCst);
        if let Some(sig) = take_pending() {
            // SAFETY: plain system call.
            unsafe { libc::kill(pid as i32, sig) };
        }
    }

    /// Stop forwarding (the command has ended).
    pub fn stop_forwarding() {
        CHILD.store(0, Ordering::SeqCst);
    }

    /// Why `hold` stops holding.
    pub enum HoldEnd {
        /// Standard input reached end of file (or is not open).
        StdinClosed,
        /// This signal arrived.
        Signal(i32),
        /// The process `hold --while-pid` watched ended.
        PidEnded,
    }

    /// A process to hold the lock for: a pidfd, readable once the process has ended.
    pub struct Watched(std::os::fd::OwnedFd);

    impl Watched {
        /// Watches process `pid`; an error if there is no such process (or it cannot be
        /// watched: a kernel before 5.3).
        pub fn new(pid: u32) -> std::io::Result<Watched> {
            use std::os::fd::FromRawFd;
            let Ok(pid) = libc::pid_t::try_from(pid) else {
                return Err(std::io::ErrorKind::InvalidInput.into());
            };
            // SAFETY: pidfd_open takes a pid and flags, and returns a new descriptor or -1.
            let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // SAFETY: `fd` is a descriptor the kernel just gave us and nothing else owns.
            Ok(Watched(unsafe {
                std::os::fd::OwnedFd::from_raw_fd(fd as i32)
            }))
        }
    }

    /// Blocks until a handled signal arrives, `watched` ends, or, when `watch_stdin`,
    /// standard input closes (what is read is discarded); calls `tick` every `every`
    /// meanwhile.
    pub fn wait_for_stdin_or_signal(
        watch_stdin: bool,
        watched: Option<&Watched>,
        every: std::time::Duration,
        tick: &mut dyn FnMut(),
    ) -> HoldEnd {
        use std::os::fd::AsRawFd;
        let millis = every.as_millis().min(i32::MAX as u128) as i32;
        let pipe = PIPE_READ.load(Ordering::SeqCst);
        let mut stdin_open = watch_stdin;
        loop {
            if let Some(sig) = take_pending() {
                return HoldEnd::Signal(sig);
            }
            let mut fds = [
                libc::pollfd {
                    fd: pipe,
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: if stdin_open { 0 } else { -1 },
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: watched.map_or(-1, |w| w.0.as_raw_fd()),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: fds is a valid array of three pollfd; negative fds are ignored.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), 3, millis) };
            if n < 0 {
                continue; // EINTR: the pending check above sees the signal
            }
            if n == 0 {
                tick();
                continue;
            }
            if fds[2].revents != 0 {
                return HoldEnd::PidEnded;
            }
            if fds[0].revents != 0 {
                let mut buf = [0u8; 64];
                // SAFETY: buf is valid for 64 bytes; the pipe is non-blocking.
                unsafe { libc::read(pipe, buf.as_mut_ptr().cast(), buf.len()) };
            }
            if let Some(sig) = take_pending() {
                return HoldEnd::Signal(sig);
            }
            if fds[1].revents & libc::POLLNVAL != 0 {
                return HoldEnd::StdinClosed;
            }
            if fds[1].revents != 0 {
                let mut buf = [0u8; 4096];
                // SAFETY: buf is valid for its length.
                let got = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
                if got == 0 {
                    return HoldEnd::StdinClosed;
                }
                if got < 0 {
                    let err = std::io::Error::last_os_error();
                    if !matches!(
                        err.kind(),
                        std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock
                    ) {
                        // Unreadable standard input: stop watching it, keep holding.
                        stdin_open = false;
                    }
                }
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    /// No signal handling on this platform.
    pub fn install() {}
    /// Never anything pending.
    pub fn take_pending() -> Option<i32> {
        None
    }
    /// Nothing to forward.
    pub fn forward_to(_: u32) {}
    /// Nothing to stop.
    pub fn stop_forwarding() {}
    /// Why `hold` stops holding.
    pub enum HoldEnd {
        /// Standard input reached end of file.
        StdinClosed,
        /// Never produced here.
        #[allow(dead_code)]
        Signal(i32),
        /// Never produced here.
        #[allow(dead_code)]
        PidEnded,
    }
    /// A watched process (not on this platform).
    pub struct Watched;
    impl Watched {
        /// Watching a process is not supported here.
        pub fn new(_: u32) -> std::io::Result<Watched> {
            Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "--while-pid is not supported on this platform",
            ))
        }
    }
    /// Reads standard input to its end (no ticks on this platform).
    pub fn wait_for_stdin_or_signal(
        watch_stdin: bool,
        _: Option<&Watched>,
        _: std::time::Duration,
        _: &mut dyn FnMut(),
    ) -> HoldEnd {
        if watch_stdin {
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        } else {
            loop {
                std::thread::park();
            }
        }
        HoldEnd::StdinClosed
    }
}

pub use imp::*;
