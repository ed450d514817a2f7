//! The backends. Exactly one is compiled, chosen by `cfg`, and re-exported under the same
//! names, so that nothing above this module mentions a platform. What each must provide is
//! the trait [`Backend`] (`contract/`, with the value types it speaks in), implemented by
//! its `RawMutex`.

pub(crate) mod contract;
#[cfg(test)]
mod tests;
#[cfg(feature = "postgres")]
pub(crate) use contract::ServerBackend;
pub(crate) use contract::{Backend, CancelSignal, Inspect, Spec, Swept};

/// The backend's process-owned acquisition ([`Backend::Claim`]).
pub(crate) type Claim = <RawMutex as Backend>::Claim;
/// The backend's cancel signal ([`Backend::Cancel`]).
pub(crate) type Cancel = <RawMutex as Backend>::Cancel;

// Linux, macOS and FreeBSD: mutexes in shared memory (`unix`), with Linux's own way of
// learning of deaths (`linux`) or the portable one (`portable`).
#[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
mod unix;
#[cfg(all(
    any(target_os = "linux", target_os = "macos", target_os = "freebsd"),
    feature = "postgres",
    feature = "fault-injection"
))]
pub(crate) use unix::fault;
/// The shared-memory format as types, for tests: see `lib.rs`'s `__format`.
#[cfg(target_os = "linux")]
pub use unix::format;
#[cfg(all(
    any(target_os = "linux", target_os = "macos", target_os = "freebsd"),
    feature = "postgres",
    feature = "fuzzing"
))]
pub(crate) use unix::fuzz;
#[cfg(all(
    any(target_os = "linux", target_os = "macos", target_os = "freebsd"),
    not(feature = "postgres")
))]
pub(crate) use unix::*;

#[cfg(windows)]
mod windows;
#[cfg(all(windows, not(feature = "postgres")))]
pub(crate) use windows::*;

#[cfg(not(any(
    target_os = "linux",
    target_os = "macos",
    target_os = "freebsd",
    windows
)))]
mod unsupported;
#[cfg(all(
    not(any(
        target_os = "linux",
        target_os = "macos",
        target_os = "freebsd",
        windows
    )),
    not(feature = "postgres")
))]
pub(crate) use unsupported::*;

/// This machine's backend, when the PostgreSQL one is compiled beside it.
#[cfg(all(
    feature = "postgres",
    any(target_os = "linux", target_os = "macos", target_os = "freebsd")
))]
type LocalMutex = unix::RawMutex;
#[cfg(all(feature = "postgres", windows))]
type LocalMutex = windows::RawMutex;
#[cfg(all(
    feature = "postgres",
    not(any(
        target_os = "linux",
        target_os = "macos",
        target_os = "freebsd",
        windows
    ))
))]
type LocalMutex = unsupported::RawMutex;

// With the PostgreSQL backend, a handle is this machine's or a server's, chosen at
// creation (`Spec::server`): `RawMutex` is then the choice of the two.
#[cfg(feature = "postgres")]
mod either;
#[cfg(feature = "postgres")]
mod pg;
#[cfg(feature = "postgres")]
pub(crate) use either::RawMutex;
/// The backend of [`ServerBackend`] (the PostgreSQL one).
#[cfg(feature = "postgres")]
pub(crate) use pg::PgMutex as ServerMutex;
