//! Time: deadlines on the monotonic clock (timeouts), and wall-clock time for diagnostics
//! (when an object was created, acquired, a slot claimed), never used to measure timeouts.

use rustix::time::{ClockId, Timespec};
use std::time::Duration;

/// Nanoseconds since the Unix epoch, 0 if the clock is before it.
pub(super) fn realtime_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
    u64::try_from(t.tv_sec)
        .ok()
        .and_then(|s| s.checked_mul(1_000_000_000))
        .and_then(|ns| ns.checked_add(t.tv_nsec as u64))
        .unwrap_or(0)
}

/// The current `CLOCK_MONOTONIC` time.
pub(super) fn now() -> Timespec {
    rustix::time::clock_gettime(ClockId::Monotonic)
}

/// `now + timeout` on the monotonic clock; `None` (no deadline) when `timeout` is `None` or
/// so large that the sum does not fit.
pub(super) fn deadline_after(timeout: Option<Duration>) -> Option<Timespec> {
    let timeout = timeout?;
    let now = now();
    let secs = i64::try_from(timeout.as_secs()).ok()?;
    let mut tv_sec = now.tv_sec.checked_add(secs)?;
    let mut tv_nsec = now.tv_nsec + i64::from(timeout.subsec_nanos());
    if tv_nsec >= 1_000_000_000 {
        tv_nsec -= 1_000_000_000;
        tv_sec = tv_sec.checked_add(1)?;
    }
    Some(Timespec { tv_sec, tv_nsec })
}

/// Whether `a` is strictly before `b`.
pub(super) fn is_before(a: Timespec, b: Timespec) -> bool {
    (a.tv_sec, a.tv_nsec) < (b.tv_sec, b.tv_nsec)
}

/// `b - a`, or zero when `b` is not after `a`.
pub(super) fn duration_between(a: Timespec, b: Timespec) -> Duration {
    if !is_before(a, b) {
        return Duration::ZERO;
    }
    let nanos = (b.tv_sec - a.tv_sec) as i128 * 1_000_000_000 + (b.tv_nsec - a.tv_nsec) as i128;
    Duration::from_nanos(nanos.min(u64::MAX as i128) as u64)
}

/// The earlier of two optional deadlines (`None` is "never").
pub(super) fn earliest(a: Option<Timespec>, b: Option<Timespec>) -> Option<Timespec> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if is_before(x, y) { x } else { y }),
        (x, None) => x,
        (None, y) => y,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_order_and_combine() {
        assert_eq!(deadline_after(None), None);
        assert_eq!(
            deadline_after(Some(Duration::MAX)),
            None,
            "too far: no deadline"
        );
        let soon = deadline_after(Some(Duration::from_millis(1))).unwrap();
        let later = deadline_after(Some(Duration::from_secs(1))).unwrap();
        assert!(is_before(soon, later) && !is_before(later, soon) && !is_before(soon, soon));
        assert_eq!(earliest(Some(later), Some(soon)), Some(soon));
        assert_eq!(earliest(None, Some(later)), Some(later));
        assert_eq!(earliest(None, None), None);
        assert_eq!(duration_between(later, soon), Duration::ZERO);
        let gap = duration_between(soon, later);
        assert!(gap > Duration::from_millis(990) && gap <= Duration::from_secs(1));
    }
}
