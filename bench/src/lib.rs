//! Support for the namedmutex benchmarks (issue 5): the peers behind one small trait, the
//! worker processes the comparison harness spawns, the shared control page they report
//! through, and statistics.
//!
//! Two front ends use it: `benches/micro.rs` (criterion, scenarios 1 and 2) and the
//! `compare` binary, which runs every scenario against every peer in one run and writes
//! `BENCHMARKS.md`. Both re-execute themselves as workers: a process started with
//! `NMBENCH_ROLE` set runs [`roles::run`] instead of benchmarking.

pub mod control;
pub mod env;
pub mod machine;
pub mod peers;
pub mod pg_roles;
pub mod proc;
pub mod roles;
pub mod stats;

use std::time::Duration;

/// CLOCK_MONOTONIC in nanoseconds: comparable between processes on one machine (which
/// `Instant` is too, but opaquely).
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_MONOTONIC) failed");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Runs `op(iters)` with growing `iters` until one call takes at least `target`; returns
/// that `iters`. The first calls also serve as warm-up.
pub fn calibrate(mut op: impl FnMut(u64), target: Duration) -> u64 {
    let mut iters = 1u64;
    loop {
        let t = std::time::Instant::now();
        op(iters);
        let took = t.elapsed();
        if took >= target || iters >= 1 << 40 {
            return iters;
        }
        let factor = if took.is_zero() {
            16.0
        } else {
            (target.as_secs_f64() / took.as_secs_f64() * 1.2).clamp(1.5, 16.0)
        };
        iters = ((iters as f64) * factor).ceil() as u64;
    }
}

/// Nanoseconds per operation of one call `op(iters)`.
pub fn ns_per_op(mut op: impl FnMut(u64), iters: u64) -> f64 {
    let t = std::time::Instant::now();
    op(iters);
    t.elapsed().as_nanos() as f64 / iters as f64
}
