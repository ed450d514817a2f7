//! The portable flavour of the shared-memory backend: what macOS and FreeBSD offer where Linux
//! has robust futexes, `futex_waitv` and `membarrier`. The object files, the registry file,
//! the namespaces and the lock protocol (`crate::protocol`) are the Linux backend's
//! (`sys/linux`); this flavour replaces the modules that say whether an owner lives, and how
//! a waiter sleeps. On Linux it is built with the feature `portable-backend`, with Linux
//! shims, so that the whole behavioural and reliability suites run it here
//! (`../shared/design/portable.md` has the research behind it).
//!
//! | module | what it does |
//! |---|---|
//! | `lifeline` | process and thread slots; a process lives while it holds a record lock on its slot's byte of the registry |
//! | `watcher` | one thread per process that the kernel tells of other processes' deaths (pidfd, kqueue); it abandons their mutexes and wakes their sleepers |
//! | `thread_end` | what a thread owns, abandoned by its thread-local destructor |
//! | `futex` | a waiter's sleep: on the lock word alone, registered with the watcher first |
//! | `barrier` | biased locking is off (no `membarrier` on macOS) |
//! | `shim/` | the OS calls: wait and wake on a shared word, death events, record locks |
//!
//! The modules are named after the Linux ones they replace (`lifeline`, `futex`,
//! `barrier`), so that the shared code does not know which flavour it runs on.
//!
//! How a death reaches a sleeper, without polling:
//! - **Another process dies.** A waiter that is about to sleep on a mutex whose owner lives
//!   in another process registers with this process's watcher, which asks the kernel to
//!   report that process's exit, then checks the owner's record lock once more, then sleeps
//!   on the lock word. At the exit the watcher changes the lock word from the dead owner's
//!   token to `ABANDONED` and wakes every sleeper, in every process: a death after the check
//!   changes the very word the sleeper compares, so it is never missed.
//! - **A thread ends.** Its thread-local destructor gives up every mutex it owns the way a
//!   crash would (`ABANDONED`) and retires its slot.
//! - **A process execs.** Its registry descriptor is close-on-exec, so its record lock and
//!   with it its mutexes go. On macOS and FreeBSD kqueue reports the exec (`NOTE_EXEC`); on
//!   Linux a pidfd does not, so sleepers notice it at their backstop (250 ms).
//! - **An owner nobody may watch** (a process in a PID namespace we cannot see, or whose
//!   exit the kernel will not report to us): its waiters sleep in 2 ms slices and check its
//!   record lock between them.

pub(super) mod barrier;
pub(super) mod futex;
pub(super) mod lifeline;
mod shim;
mod thread_end;
mod watcher;
