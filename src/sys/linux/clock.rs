//! Wall-clock time for diagnostics (when an object was created, acquired, a slot claimed).
//! Never used to measure timeouts: those use the monotonic clock (`futex.rs`).

/// Nanoseconds since the Unix epoch, 0 if the clock is before it.
pub(super) fn realtime_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
    u64::try_from(t.tv_sec)
        .ok()
        .and_then(|s| s.checked_mul(1_000_000_000))
        .and_then(|ns| ns.checked_add(t.tv_nsec as u64))
        .unwrap_or(0)
}
