//! The backends. Exactly one is compiled, chosen by `cfg`, and re-exported under the same
//! names, so that nothing above this module mentions a platform. What each must provide is
//! the trait [`Backend`] (`contract.rs`), implemented by its `RawMutex`.

mod contract;
#[cfg(test)]
mod tests;
pub(crate) use contract::{Backend, CancelSignal, Inspect, Spec, Swept};

/// The backend's process-owned acquisition ([`Backend::Claim`]).
pub(crate) type Claim = <RawMutex as Backend>::Claim;
/// The backend's cancel signal ([`Backend::Cancel`]).
pub(crate) type Cancel = <RawMutex as Backend>::Cancel;

#[cfg(target_os = "linux")]
mod linux;
/// The shared-memory format as types (Linux), for tests: see `lib.rs`'s `__format`.
#[cfg(target_os = "linux")]
pub use linux::format;
#[cfg(target_os = "linux")]
pub(crate) use linux::*;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub(crate) use windows::*;

#[cfg(not(any(target_os = "linux", windows)))]
mod unsupported;
#[cfg(not(any(target_os = "linux", windows)))]
pub(crate) use unsupported::*;
