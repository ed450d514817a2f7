//! Windows named-mutex semantics on every platform.
//!
//! `namedmutex` gives programs the mutex objects of Win32: `CreateMutex`, `CreateMutexEx`,
//! `OpenMutex`, `ReleaseMutex`, waits with timeouts, and `WAIT_ABANDONED` when an owner dies.
//! A mutex is shared by name between threads and processes, owned by a thread, recursive,
//! and tells the truth when its owner crashes.
//!
//! - On Windows it is a thin, safe layer over the OS's own mutex objects.
//! - On Linux it is implemented in shared memory with the same semantics: uncontended
//!   operations are a single atomic instruction, waiting uses futexes, and an owner's death
//!   (SIGKILL included) is reported by the kernel through a robust-futex "lifeline" per thread.
//!   The shared-memory format is documented in `FORMAT.md`.
//!
//! ```
//! use namedmutex::{NamedMutex, WaitStatus};
//! use std::time::Duration;
//!
//! let name = format!("Local\\crate-doc-{}", std::process::id());
//! let (mutex, _existed) = NamedMutex::create(&name, false)?;
//! match mutex.wait(Some(Duration::from_secs(5)))? {
//!     WaitStatus::Acquired => { /* ours */ }
//!     WaitStatus::Abandoned => { /* ours, but the previous owner died holding it */ }
//!     WaitStatus::TimedOut => return Ok(()),
//! }
//! mutex.release()?;
//! # Ok::<(), namedmutex::Error>(())
//! ```
//!
//! # Names and namespaces
//!
//! `name` and `Local\name` are the same object, private to the calling user; `Global\name` is
//! shared by every user of the machine (who may open it is set at creation with
//! [`Security`]). The grammar is in [`name`]. On Linux the objects live under
//! `$NAMEDMUTEX_ROOT` (default `/dev/shm`): see the README.

mod access;
mod async_lock;
mod error;
mod info;
mod multi_wait;
mod mutex;
pub mod name;
mod options;
// The lock protocol of the backends that keep mutexes in shared memory (Linux, macOS,
// FreeBSD). Windows keeps its mutexes in the kernel. Its tests build everywhere, so that
// Miri can run them for other targets (`tools/miri.sh`).
#[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd", test))]
#[cfg_attr(
    not(any(target_os = "linux", target_os = "macos", target_os = "freebsd")),
    allow(dead_code, unused_imports)
)]
// only its tests use it there
mod protocol;
mod prune;
mod security;
#[cfg(feature = "serde")]
pub mod serde_time;
#[cfg(feature = "postgres")]
mod server_setup;
pub mod synchapi;
mod sys;
mod wait_status;

pub use access::Access;
pub use async_lock::{AsyncMutexGuard, LockFuture, OwnedAsyncMutexGuard};
pub use error::{Error, ErrorKind, Result};
pub use info::{AllUsers, MutexInfo, OwnerInfo, info, list};
pub use multi_wait::{MAXIMUM_WAIT_OBJECTS, wait_all, wait_any};
pub use mutex::{MutexGuard, NamedMutex, OwnedMutexGuard};
pub use name::{Name, Namespace};
pub use options::MutexOptions;
pub use prune::{Pruned, prune};
pub use security::Security;
#[cfg(feature = "postgres")]
pub use server_setup::setup_server;
pub use wait_status::{
    WAIT_ABANDONED, WAIT_FAILED, WAIT_OBJECT_0, WAIT_TIMEOUT, WaitAny, WaitStatus,
};

// The README's Rust examples run as doctests (its shell and C examples run in
// tools/test-all.sh and capi/tests/run-c-tests.sh).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

// For tests only (feature `fault-injection`): how often the calling thread polled.
#[cfg(all(feature = "fault-injection", target_os = "linux"))]
#[doc(hidden)]
pub use sys::fault::__polling_yields;

// For the fuzz targets in fuzz/ only (feature `fuzzing`).
/// The offsets of the shared-memory format, for tests and fuzz targets that write files by
/// hand (not a public API).
#[cfg(target_os = "linux")]
#[doc(hidden)]
pub use sys::format as __format;
/// For the fuzz target `validate_object` only (feature `fuzzing`; not a public API): the
/// checks an open applies to an object file holding `bytes` (see `sys/unix/fuzz.rs`).
#[cfg(all(feature = "fuzzing", target_os = "linux"))]
#[doc(hidden)]
pub fn __fuzz_validate_object(bytes: &[u8]) -> Result<()> {
    sys::fuzz::validate_object(bytes)
}
