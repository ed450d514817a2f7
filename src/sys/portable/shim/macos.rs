//! macOS: wait and wake on a word in a shared file mapping. The public calls
//! (`os_sync_wait_on_address_with_timeout`, `os_sync_wake_by_address_{any,all}` with the
//! `…_SHARED` flags, macOS 14.4) are looked up at run time, so that a binary built here
//! still loads on older systems, which get the private calls they wrap (`__ulock_wait2`,
//! `__ulock_wake` with `UL_COMPARE_AND_WAIT_SHARED`, macOS 11). Process deaths come from
//! kqueue (`kqueue.rs`).
//!
//! From the libplatform and xnu sources (not yet seen running on a Mac): a shared waiter
//! is keyed by the mapped file's VM object and offset, so two independent mappings of one
//! file meet; the timeout is in nanoseconds and must not be 0 (`EINVAL`), so a zero
//! timeout is answered here; `EINTR`, `EFAULT` and `ENOMEM` mean "look again"; a wake with
//! nobody waiting returns `ENOENT`.
#![allow(unsafe_code)]

use super::Waited;
use std::ffi::c_void;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering, fence};
use std::time::Duration;

type OsWait = unsafe extern "C" fn(*mut c_void, u64, libc::size_t, u32) -> libc::c_int;
type OsWaitTimeout = unsafe extern "C" fn(
    *mut c_void,
    u64,
    libc::size_t,
    u32,
    libc::os_clockid_t,
    u64,
) -> libc::c_int;
type OsWake = unsafe extern "C" fn(*mut c_void, libc::size_t, u32) -> libc::c_int;
type UlockWait2 = unsafe extern "C" fn(u32, *mut c_void, u64, u64, u64) -> libc::c_int;
type UlockWake = unsafe extern "C" fn(u32, *mut c_void, u64) -> libc::c_int;

/// `bsd/sys/ulock.h`: compare a 32-bit word, shared between processes.
const UL_COMPARE_AND_WAIT_SHARED: u32 = 3;
/// Wake every waiter.
const ULF_WAKE_ALL: u32 = 0x0000_0100;
/// Return `-errno` instead of setting `errno`.
const ULF_NO_ERRNO: u32 = 0x0100_0000;

/// The calls this system has.
enum Calls {
    Public {
        wait: OsWait,
        wait_timeout: OsWaitTimeout,
        wake_any: OsWake,
        wake_all: OsWake,
    },
    Private {
        wait: UlockWait2,
        wake: UlockWake,
    },
    /// Older than macOS 11: waits sleep in short slices instead.
    None,
}

/// Looks up `name` (NUL-terminated) in the loaded images.
///
/// # Safety
///
/// `T` must be the function pointer type of the symbol's real signature.
unsafe fn symbol<T: Copy>(name: &'static [u8]) -> Option<T> {
    debug_assert_eq!(name.last(), Some(&0));
    // SAFETY: `name` is NUL-terminated; RTLD_DEFAULT searches every loaded image.
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr().cast()) };
    // SAFETY: a non-null result is the symbol's address, which the caller says has type `T`
    // (a function pointer, the size of a data pointer on every Apple target).
    (!p.is_null()).then(|| unsafe { std::mem::transmute_copy::<*mut c_void, T>(&p) })
}

fn calls() -> &'static Calls {
    static CALLS: OnceLock<Calls> = OnceLock::new();
    CALLS.get_or_init(|| {
        // SAFETY: each type is the signature in libplatform's os_sync_wait_on_address.h or
        // xnu's bsd/sys/ulock.h.
        unsafe {
            match (
                symbol::<OsWait>(b"os_sync_wait_on_address\0"),
                symbol::<OsWaitTimeout>(b"os_sync_wait_on_address_with_timeout\0"),
                symbol::<OsWake>(b"os_sync_wake_by_address_any\0"),
                symbol::<OsWake>(b"os_sync_wake_by_address_all\0"),
            ) {
                (Some(wait), Some(wait_timeout), Some(wake_any), Some(wake_all)) => Calls::Public {
                    wait,
                    wait_timeout,
                    wake_any,
                    wake_all,
                },
                _ => match (
                    symbol::<UlockWait2>(b"__ulock_wait2\0"),
                    symbol::<UlockWake>(b"__ulock_wake\0"),
                ) {
                    (Some(wait), Some(wake)) => Calls::Private { wait, wake },
                    _ => Calls::None,
                },
            }
        }
    })
}

/// Sleeps while `word` holds `expected`, until woken or `timeout` (`None`: no limit).
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Waited {
    let nanos = match timeout {
        Some(t) if t.is_zero() => return Waited::TimedOut,
        Some(t) => Some(u64::try_from(t.as_nanos()).unwrap_or(u64::MAX)),
        None => None,
    };
    let addr = word.as_ptr().cast::<c_void>();
    let error = match *calls() {
        Calls::Public {
            wait, wait_timeout, ..
        } => {
            // SAFETY: `addr` is a live, aligned 4-byte word (we borrow it for the call);
            // the flags and clock are the header's.
            let rc = unsafe {
                match nanos {
                    Some(ns) => wait_timeout(
                        addr,
                        u64::from(expected),
                        4,
                        libc::OS_SYNC_WAIT_ON_ADDRESS_SHARED,
                        libc::OS_CLOCK_MACH_ABSOLUTE_TIME,
                        ns,
                    ),
                    None => wait(
                        addr,
                        u64::from(expected),
                        4,
                        libc::OS_SYNC_WAIT_ON_ADDRESS_SHARED,
                    ),
                }
            };
            if rc >= 0 {
                return Waited::Woken;
            }
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
        }
        Calls::Private { wait, .. } => {
            // SAFETY: as above; a timeout of 0 means none to `__ulock_wait2`.
            let rc = unsafe {
                wait(
                    UL_COMPARE_AND_WAIT_SHARED | ULF_NO_ERRNO,
                    addr,
                    u64::from(expected),
                    nanos.unwrap_or(0),
                    0,
                )
            };
            if rc >= 0 {
                return Waited::Woken;
            }
            -rc
        }
        Calls::None => {
            std::thread::sleep(
                timeout
                    .unwrap_or(Duration::MAX)
                    .min(Duration::from_millis(1)),
            );
            return Waited::Again;
        }
    };
    match error {
        libc::ETIMEDOUT => Waited::TimedOut,
        libc::EINTR | libc::EFAULT | libc::ENOMEM => Waited::Again,
        // Not expected: do not spin on it.
        _ => {
            std::thread::sleep(Duration::from_millis(1));
            Waited::Again
        }
    }
}

/// Wakes one thread sleeping on `word` (`n == 1`) or all of them, in any process.
pub(crate) fn wake(word: &AtomicU32, n: u32) {
    // A full fence first. The kernel orders this wake after the store that precedes it
    // against a sleeper's compare; Miri's emulation does only when a sleeper is already
    // queued (it skips its own fence when none is), so a sleeper arriving just after could
    // read the word from before that store and sleep through its wake (seen under Miri:
    // shim::tests::a_wake_ends_a_sleep timed out). Beside a system call it costs nothing.
    fence(Ordering::SeqCst);
    let addr = word.as_ptr().cast::<c_void>();
    match *calls() {
        Calls::Public {
            wake_any, wake_all, ..
        } => {
            let wake = if n == 1 { wake_any } else { wake_all };
            // SAFETY: `addr` is a live, aligned 4-byte word; ENOENT (nobody asleep) is fine.
            let _ = unsafe { wake(addr, 4, libc::OS_SYNC_WAKE_BY_ADDRESS_SHARED) };
        }
        Calls::Private { wake, .. } => {
            let all = if n == 1 { 0 } else { ULF_WAKE_ALL };
            // SAFETY: as above.
            let _ = unsafe { wake(UL_COMPARE_AND_WAIT_SHARED | ULF_NO_ERRNO | all, addr, 0) };
        }
        Calls::None => {}
    }
}

/// Which calls this system offers: "os_sync", "ulock" or "none" (a test asks).
#[cfg(test)]
pub(crate) fn calls_found() -> &'static str {
    match calls() {
        Calls::Public { .. } => "os_sync",
        Calls::Private { .. } => "ulock",
        Calls::None => "none",
    }
}
