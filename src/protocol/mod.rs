//! The lock protocol, written once: what a Win32 mutex does to words in shared memory, for
//! every backend that keeps mutexes in memory it shares with other processes (Linux today;
//! macOS and FreeBSD next). Windows keeps its mutexes in the kernel and does not use it.
//!
//! The protocol is generic over [`Host`]: one mutex object on one platform, which supplies
//! the shared words, wait/wake on a 32-bit word, the liveness of an owner, a clock, and the
//! barriers of biased locking. It reaches the OS only through the host (apart from a
//! `yield_now` between the retries of a wait-all). `model/` checks it with loom,
//! on a host made of loom atomics and a modelled futex, through every interleaving of a few
//! threads, including owners that die at each crash point.
//!
//! | module | what it does |
//! |---|---|
//! | `lock_word` | the lock word's encoding and special words: the only place that knows the bits |
//! | `atomic` | the atomics facade: `std`'s in production, loom's in the model tests |
//! | `host` | what a platform provides ([`Host`]), owners, watches, wake-ups |
//! | `acquire` | the fast paths, one attempt of the slow path, stealing from the dead, undo |
//! | `release` | release, the FRESH release, giving up as a crash would |
//! | `bias` | biased locking: acquisition without atomics, revocation |
//! | `sleep` | the wait loop and the rules that keep wake-ups from being lost |
//! | `multi` | wait-any and wait-all (with rollback that keeps abandonment) |
//! | `model/` | tests: every interleaving of a few threads with loom, owners dying at each crash point |
//! | `heap/` | tests: real threads on heap memory, also under Miri for macOS and FreeBSD |
//! | `emulated` | what the two test hosts share: a futex's wait queue, test threads' tokens |

pub(crate) mod acquire;
pub(crate) mod atomic;
pub(crate) mod bias;
pub(crate) mod host;
pub(crate) mod lock_word;
pub(crate) mod multi;
pub(crate) mod release;
pub(crate) mod sleep;

#[cfg(test)]
mod emulated;
#[cfg(test)]
mod heap;
// loom's exhaustive runs take minutes: on Linux only (the heap tests run everywhere).
#[cfg(all(test, target_os = "linux"))]
mod model;

pub(crate) use host::{Host, Owner, Wake, Watch};
pub(crate) use lock_word::LockWord;
