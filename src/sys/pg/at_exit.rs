//! Ending this process's server sessions when it exits, as a client should: each gets
//! PostgreSQL's Terminate message instead of a socket the kernel closes.
//!
//! Why: over TLS, a connection that ends without Terminate (and without TLS's close_notify)
//! is logged by the server as "could not receive data from client: Connection reset by
//! peer", once per exiting process: every run of the command left that line in the
//! server's log. A thread's own sessions end with the thread (its thread-local
//! destructor, which `exit` also runs for the exiting thread); the sessions that live in
//! statics do not: the handle sessions (`handles.rs`), the spare sessions of
//! process-owned acquisitions (`session.rs`) and a session connected ahead and never taken
//! (`ahead.rs`). This ends those, and waits for the closer
//! thread to end the exiting thread's own (its destructor hands them there, and nothing
//! waited for that before the process was gone).
//!
//! What it changes for mutexes: nothing. The handles and acquisitions of those sessions
//! end when the process does anyway; Terminate only makes the server see it at once.
//!
//! Where: Linux, macOS and FreeBSD (C's `atexit`: at a return from `main` or
//! `std::process::exit`), and Windows (the C runtime's `atexit`: at a return from `main`;
//! `std::process::exit` ends a Windows process without running such hooks, and there the
//! server notices the closed socket, as before). On Windows the exiting thread's
//! thread-local destructors run only after `ExitProcess` has ended every other thread (the
//! closer thread among them), so the hook hands that thread's sessions to the closer itself.

/// Registers [`end_sessions`] to run at exit, once per process (later calls do nothing).
pub(super) fn end_sessions_at_exit() {
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    REGISTERED.call_once(|| {
        // A full table of exit hooks only costs the log line this hook avoids.
        let _ = register(end_sessions);
    });
}

/// Has `hook` run at exit: false where it cannot (see the module's docs).
fn register(hook: extern "C" fn()) -> bool {
    #[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
    return crate::sys::unix::os::at_exit(hook);
    #[cfg(windows)]
    return crate::sys::windows::at_exit::at_exit(hook);
    #[allow(unreachable_code)]
    {
        let _ = hook;
        false
    }
}

/// The sessions among `sessions` (each with the process that made it) that this process
/// made, boxed to be ended; the others, a forked child's inherited ones, are the parent's
/// connections: they are forgotten, never ended here.
pub(super) fn this_process<S: Send + 'static>(
    sessions: impl Iterator<Item = (u32, S)>,
) -> Vec<Box<dyn Send>> {
    let mut mine: Vec<Box<dyn Send>> = Vec::new();
    for (pid, session) in sessions {
        if pid == std::process::id() {
            mine.push(Box::new(session));
        } else {
            std::mem::forget(session);
        }
    }
    mine
}

/// Ends the static sessions of this process: what [`end_sessions_at_exit`] registers.
/// Never blocks on a lock another thread holds (that thread may be mid-call while the
/// process exits: its session is then left to the kernel), waits at most [`EXIT_WAIT`], and
/// never panics out.
extern "C" fn end_sessions() {
    let _ = std::panic::catch_unwind(|| {
        let deadline = std::time::Instant::now() + EXIT_WAIT;
        let mut ending = super::handles::take_all();
        ending.extend(super::session::take_spares());
        ending.extend(super::ahead::take_all());
        if !ending.is_empty() {
            // A client ends on a runtime of its own, whose thread-locals this thread may
            // have lost by now (C's exit runs its thread-local destructors first): on a new
            // thread.
            let (done, finished) = std::sync::mpsc::channel();
            let spawned = std::thread::Builder::new()
                .name("namedmutex-pg-exit".into())
                .spawn(move || {
                    drop(ending);
                    let _ = done.send(());
                });
            if spawned.is_ok() {
                let _ = finished.recv_timeout(EXIT_WAIT);
            }
        }
        // The exiting thread's own sessions: handed to the closer thread by its thread-local
        // destructor just before (C's exit), or here (Windows, module docs). Let the closer
        // finish them too.
        #[cfg(windows)]
        super::session::close_this_threads_sessions();
        super::session::wait_for_closer(
            deadline.saturating_duration_since(std::time::Instant::now()),
        );
    });
}

/// How long an exiting process waits for its sessions to end (a server that stopped
/// answering must not hold the exit up).
const EXIT_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
