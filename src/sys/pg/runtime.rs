//! The sync client drives a tokio runtime of its own for every call, and tokio refuses to
//! start one inside another: a call made from an async task (creating or dropping a handle,
//! the async API's acquisitions and releases) would panic. Such calls run on a short-lived
//! thread of their own instead; every other call runs where it is made.

/// Runs `f` here, or, inside a tokio runtime, on a thread of its own (waiting for it).
pub(crate) fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|s| {
        s.spawn(f)
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}
