//! Reliability and security tests of the Linux backend (RELIABILITY.md):
//!
//! - `chaos`: processes × threads hammering named mutexes while a killer SIGKILLs and
//!   SIGSTOPs them, with invariants checked in shared memory (`NAMEDMUTEX_SOAK_SECS` sets
//!   the duration; CI runs 30 s);
//! - `fault`: a crash at each step of create, open, close, lock, unlock and thread
//!   registration (needs `--features fault-injection`; without it these are ignored);
//! - `exhaust`: registry slots, a full file system, a missing root, too many open files;
//! - `hostile`: other local users (needs root: creates users `nmtest1`, `nmtest2`);
//! - `badfiles`: damaged object files in both namespaces, and 200 random mutations.
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
mod shm;
#[cfg(target_os = "linux")]
#[path = "../support/linux.rs"]
mod support;

#[cfg(target_os = "linux")]
fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        std::process::exit(child::run(&args[2..]));
    }
    support::init_root();
    let mut trials = Vec::new();
    trials.extend(chaos::trials());
    trials.extend(fault::trials());
    trials.extend(exhaust::trials());
    trials.extend(hostile::trials());
    trials.extend(badfiles::trials());
    let conclusion = libtest_mimic::run(&libtest_mimic::Arguments::from_args(), trials);
    support::cleanup_root();
    conclusion.exit();
}

#[cfg(not(target_os = "linux"))]
fn main() {}
