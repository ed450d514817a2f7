//! Reliability and security tests of the Linux backend (RELIABILITY.md):
//!
//! - `chaos`: processes × threads hammering named mutexes while a killer SIGKILLs and
//!   SIGSTOPs them, with invariants checked in shared memory (`NAMEDMUTEX_SOAK_SECS` sets
//!   the duration; CI runs 30 s);
//! - `fault`: a crash at each step of create, open, close, lock, unlock and thread
//!   registration (needs `--features fault-injection`; without it these are ignored);
//! - `exhaust`: registry slots, a full file system, a missing root, too many open files;
//! - `hostile`: other local users (needs root: creates users `nmtest1`, `nmtest2`);
//! - `badfiles`: damaged object files in both namespaces, and 200 random mutations;
//! - `residue`: abandonment reported across runs, abandonment on purpose, stale objects
//!   swept, an object file locked by a stopped process.
//!
//! Multi-process cases re-execute this binary with `--child ROLE ...`; every wait on a
//! child or on shared memory is bounded by a watchdog. On other platforms the binary is an
//! empty main.
// The tests map shared memory and call a few libc functions (kill, setrlimit, flock, mount),
// each with a SAFETY note.
#![allow(unsafe_code)]

#[cfg(target_os = "linux")]
mod badfiles;
#[cfg(target_os = "linux")]
mod chaos;
#[cfg(target_os = "linux")]
mod child;
#[cfg(target_os = "linux")]
mod exhaust;
#[cfg(target_os = "linux")]
mod fault;
#[cfg(target_os = "linux")]
mod hostile;
#[cfg(target_os = "linux")]
mod residue;
#[cfg(target_os = "linux")]
mod shm;
#[cfg(target_os = "linux")]
#[path = "../support/linux.rs"]
mod support;

#[cfg(target_os = "linux")]
fn main() {
    support::harness(child::run, || {
        [
            chaos::trials(),
            fault::trials(),
            exhaust::trials(),
            hostile::trials(),
            badfiles::trials(),
            residue::trials(),
        ]
        .into_iter()
        .flatten()
        .collect()
    });
}

#[cfg(not(target_os = "linux"))]
fn main() {}
