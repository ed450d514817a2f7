//! The locks under test, behind one small trait, and the open/close sequences of
//! scenario 2.
//!
//! | peer | what it is |
//! |---|---|
//! | `namedmutex` | this crate |
//! | `pthread` | a robust, recursive, process-shared `pthread_mutex_t` in a shared file mapping (the .NET design) |
//! | `sem` | a POSIX named semaphore (`sem_open`), the no-ownership speed bound |
//! | `flock` | `flock(LOCK_EX)` on a lock file |
//! | `named-lock` | the `named-lock` crate (flock on Linux, plus an in-process mutex) |

use crate::env::Env;
use namedmutex::{MutexOptions, NamedMutex, WaitStatus};
use std::cell::RefCell;
use std::ffi::{CStr, CString};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// One page: what every shared-memory peer maps.
pub const PAGE: usize = 4096;

/// A lock under test.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Peer {
    NamedMutex,
    Pthread,
    Sem,
    Flock,
    NamedLock,
}

impl Peer {
    /// Every peer, namedmutex first.
    pub const ALL: [Peer; 5] = [
        Peer::NamedMutex,
        Peer::Pthread,
        Peer::Sem,
        Peer::Flock,
        Peer::NamedLock,
    ];

    /// Short name, used on command lines and in benchmark ids.
    pub fn key(self) -> &'static str {
        match self {
            Peer::NamedMutex => "namedmutex",
            Peer::Pthread => "pthread",
            Peer::Sem => "sem",
            Peer::Flock => "flock",
            Peer::NamedLock => "named-lock",
        }
    }

    /// Name in reports.
    pub fn label(self) -> &'static str {
        match self {
            Peer::NamedMutex => "**namedmutex**",
            Peer::Pthread => "pthread robust+recursive+pshared",
            Peer::Sem => "POSIX named semaphore",
            Peer::Flock => "flock",
            Peer::NamedLock => "named-lock 0.4.1",
        }
    }

    /// Parses [`Peer::key`].
    pub fn from_key(key: &str) -> Option<Peer> {
        Peer::ALL.into_iter().find(|p| p.key() == key)
    }

    /// Whether the owner can acquire it again without deadlock, each acquisition
    /// needing its own release.
    pub fn recursive(self) -> bool {
        matches!(self, Peer::NamedMutex | Peer::Pthread)
    }

    /// Whether the next acquirer is told that the owner died holding it.
    pub fn reports_abandonment(self) -> bool {
        matches!(self, Peer::NamedMutex | Peer::Pthread)
    }
}

/// What an acquisition found.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Got {
    Acquired,
    /// The previous owner died holding it.
    Abandoned,
}

/// A lock: acquire blocks until the calling thread holds it. Failures panic: this is a
/// benchmark, and the harness reports a dead worker.
pub trait Lock {
    fn acquire(&self) -> Got;
    fn release(&self);
}

/// A lock of any peer; [`with_lock!`](crate::with_lock) runs code on the concrete type, so
/// loops are compiled once per peer with no dispatch inside.
pub enum AnyLock {
    NamedMutex(NmLock),
    Pthread(PthreadLock),
    Sem(SemLock),
    Flock(FlockLock),
    NamedLock(NamedLockLock),
}

/// `with_lock!(any, |l| body)`: `body` with `l` bound to the concrete lock inside `any`.
#[macro_export]
macro_rules! with_lock {
    ($any:expr, |$l:ident| $body:expr) => {
        match $any {
            $crate::peers::AnyLock::NamedMutex($l) => $body,
            $crate::peers::AnyLock::Pthread($l) => $body,
            $crate::peers::AnyLock::Sem($l) => $body,
            $crate::peers::AnyLock::Flock($l) => $body,
            $crate::peers::AnyLock::NamedLock($l) => $body,
        }
    };
}

impl AnyLock {
    /// Creates the lock `name` of `peer` (or opens it where creation is create-or-open).
    pub fn create(peer: Peer, env: &Env, name: &str) -> AnyLock {
        match peer {
            Peer::NamedMutex => AnyLock::NamedMutex(NmLock::open(env, name)),
            Peer::Pthread => AnyLock::Pthread(PthreadLock::create(
                &env.peers.join(format!("pthread-{name}")),
            )),
            Peer::Sem => AnyLock::Sem(SemLock::create(&env.posix_name(name))),
            Peer::Flock => {
                AnyLock::Flock(FlockLock::open(&env.peers.join(format!("flock-{name}"))))
            }
            Peer::NamedLock => AnyLock::NamedLock(NamedLockLock::open(
                &env.peers.join(format!("namedlock-{name}")),
            )),
        }
    }

    /// Opens the existing lock `name` of `peer`.
    pub fn open(peer: Peer, env: &Env, name: &str) -> AnyLock {
        match peer {
            Peer::Pthread => AnyLock::Pthread(PthreadLock::open(
                &env.peers.join(format!("pthread-{name}")),
            )),
            Peer::Sem => AnyLock::Sem(SemLock::open(&env.posix_name(name))),
            _ => AnyLock::create(peer, env, name),
        }
    }
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("no NUL in paths")
}

fn check(rc: libc::c_int, what: &str) -> libc::c_int {
    if rc < 0 {
        panic!("{what}: {}", io::Error::last_os_error());
    }
    rc
}

fn fd(rc: libc::c_int, what: &str) -> OwnedFd {
    // SAFETY: a non-negative result of open/shm_open is a new descriptor nobody else owns.
    unsafe { OwnedFd::from_raw_fd(check(rc, what)) }
}

fn open_file(path: &CStr, flags: libc::c_int) -> OwnedFd {
    // SAFETY: `path` is NUL-terminated; open with a mode argument is always sound.
    fd(
        unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC, 0o600) },
        "open",
    )
}

/// A shared mapping of a file.
pub struct Mapping {
    ptr: *mut u8,
    len: usize,
}

impl Mapping {
    /// Maps `len` bytes of `fd`, shared, read-write.
    pub fn map(fd: RawFd, len: usize) -> Mapping {
        // SAFETY: a fresh mapping chosen by the kernel overlaps nothing of ours.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            panic!("mmap: {}", io::Error::last_os_error());
        }
        Mapping {
            ptr: ptr.cast(),
            len,
        }
    }

    /// The start of the mapping.
    pub fn ptr(&self) -> *mut u8 {
        self.ptr
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: we mapped exactly this range and nothing refers to it past `self`.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// namedmutex through `wait` and `release` (what `lock()` and its guard do).
pub struct NmLock(pub NamedMutex);

impl NmLock {
    /// Creates or opens `name` under the benchmark's root.
    pub fn open(env: &Env, name: &str) -> NmLock {
        let (m, _) = MutexOptions::new()
            .root(env.root())
            .create(name)
            .unwrap_or_else(|e| panic!("namedmutex create {name}: {e}"));
        NmLock(m)
    }
}

impl Lock for NmLock {
    #[inline]
    fn acquire(&self) -> Got {
        match self.0.wait(None) {
            Ok(WaitStatus::Acquired) => Got::Acquired,
            Ok(WaitStatus::Abandoned) => Got::Abandoned,
            other => panic!("namedmutex wait: {other:?}"),
        }
    }
    #[inline]
    fn release(&self) {
        if let Err(e) = self.0.release() {
            panic!("namedmutex release: {e}");
        }
    }
}

/// A robust, recursive, process-shared `pthread_mutex_t` at the start of a one-page file.
pub struct PthreadLock {
    map: Mapping,
}

impl PthreadLock {
    fn mutex(&self) -> *mut libc::pthread_mutex_t {
        self.map.ptr.cast()
    }

    /// Creates the file and initialises the mutex in it.
    pub fn create(path: &Path) -> PthreadLock {
        let fd = open_file(&cpath(path), libc::O_RDWR | libc::O_CREAT | libc::O_EXCL);
        // SAFETY: `fd` is open.
        check(
            unsafe { libc::ftruncate(fd.as_raw_fd(), PAGE as libc::off_t) },
            "ftruncate",
        );
        let lock = PthreadLock {
            map: Mapping::map(fd.as_raw_fd(), PAGE),
        };
        // SAFETY: the page is ours, zero-filled, and not yet visible to any locker.
        unsafe { init_robust_mutex(lock.mutex()) };
        lock
    }

    /// Maps an initialised file.
    pub fn open(path: &Path) -> PthreadLock {
        let fd = open_file(&cpath(path), libc::O_RDWR);
        PthreadLock {
            map: Mapping::map(fd.as_raw_fd(), PAGE),
        }
    }
}

/// Initialises a robust, recursive, process-shared mutex at `m`.
///
/// # Safety
///
/// `m` must point to writable memory for a `pthread_mutex_t` that no thread uses.
pub unsafe fn init_robust_mutex(m: *mut libc::pthread_mutex_t) {
    let mut attr = MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
    // SAFETY: each call gets the attribute object initialised by the first; `m` is
    // valid by the caller's contract.
    unsafe {
        assert_eq!(libc::pthread_mutexattr_init(attr.as_mut_ptr()), 0);
        assert_eq!(
            libc::pthread_mutexattr_setpshared(attr.as_mut_ptr(), libc::PTHREAD_PROCESS_SHARED),
            0
        );
        assert_eq!(
            libc::pthread_mutexattr_setrobust(attr.as_mut_ptr(), libc::PTHREAD_MUTEX_ROBUST),
            0
        );
        assert_eq!(
            libc::pthread_mutexattr_settype(attr.as_mut_ptr(), libc::PTHREAD_MUTEX_RECURSIVE),
            0
        );
        assert_eq!(libc::pthread_mutex_init(m, attr.as_ptr()), 0);
        libc::pthread_mutexattr_destroy(attr.as_mut_ptr());
    }
}

impl Lock for PthreadLock {
    #[inline]
    fn acquire(&self) -> Got {
        // SAFETY: the mapping holds an initialised mutex and lives as long as `self`.
        match unsafe { libc::pthread_mutex_lock(self.mutex()) } {
            0 => Got::Acquired,
            libc::EOWNERDEAD => {
                // SAFETY: as above; we own it now.
                let rc = unsafe { libc::pthread_mutex_consistent(self.mutex()) };
                assert_eq!(rc, 0, "pthread_mutex_consistent");
                Got::Abandoned
            }
            e => panic!("pthread_mutex_lock: {}", io::Error::from_raw_os_error(e)),
        }
    }
    #[inline]
    fn release(&self) {
        // SAFETY: as in `acquire`.
        let rc = unsafe { libc::pthread_mutex_unlock(self.mutex()) };
        assert_eq!(rc, 0, "pthread_mutex_unlock");
    }
}

/// A POSIX named semaphore with initial value 1.
pub struct SemLock {
    sem: *mut libc::sem_t,
}

impl SemLock {
    /// Creates the semaphore (value 1).
    pub fn create(name: &CStr) -> SemLock {
        // SAFETY: `name` is NUL-terminated; O_CREAT takes a mode and a value.
        let sem = unsafe {
            libc::sem_open(
                name.as_ptr(),
                libc::O_CREAT | libc::O_EXCL,
                0o600 as libc::c_uint,
                1 as libc::c_uint,
            )
        };
        SemLock::checked(sem, name)
    }

    /// Opens an existing semaphore.
    pub fn open(name: &CStr) -> SemLock {
        // SAFETY: `name` is NUL-terminated.
        let sem = unsafe { libc::sem_open(name.as_ptr(), 0) };
        SemLock::checked(sem, name)
    }

    fn checked(sem: *mut libc::sem_t, name: &CStr) -> SemLock {
        if sem == libc::SEM_FAILED {
            panic!("sem_open {name:?}: {}", io::Error::last_os_error());
        }
        SemLock { sem }
    }

    /// `sem_timedwait` with a CLOCK_REALTIME deadline `ms` from now: whether it was taken.
    pub fn acquire_within(&self, ms: u64) -> bool {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is writable.
        unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
        let ns = ts.tv_nsec as u64 + ms * 1_000_000;
        ts.tv_sec += (ns / 1_000_000_000) as libc::time_t;
        ts.tv_nsec = (ns % 1_000_000_000) as libc::c_long;
        loop {
            // SAFETY: `sem` is open until drop.
            if unsafe { libc::sem_timedwait(self.sem, &ts) } == 0 {
                return true;
            }
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ETIMEDOUT) => return false,
                _ => panic!("sem_timedwait: {}", io::Error::last_os_error()),
            }
        }
    }
}

impl Drop for SemLock {
    fn drop(&mut self) {
        // SAFETY: `sem` came from sem_open and is closed once.
        unsafe { libc::sem_close(self.sem) };
    }
}

impl Lock for SemLock {
    #[inline]
    fn acquire(&self) -> Got {
        loop {
            // SAFETY: `sem` is open until drop.
            if unsafe { libc::sem_wait(self.sem) } == 0 {
                return Got::Acquired;
            }
            if io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                panic!("sem_wait: {}", io::Error::last_os_error());
            }
        }
    }
    #[inline]
    fn release(&self) {
        // SAFETY: `sem` is open until drop.
        check(unsafe { libc::sem_post(self.sem) }, "sem_post");
    }
}

/// `flock` on a lock file, through one descriptor.
pub struct FlockLock {
    fd: OwnedFd,
}

impl FlockLock {
    /// Opens (creating if needed) the lock file.
    pub fn open(path: &Path) -> FlockLock {
        FlockLock {
            fd: open_file(&cpath(path), libc::O_RDWR | libc::O_CREAT),
        }
    }
}

fn flock(fd: RawFd, op: libc::c_int) {
    loop {
        // SAFETY: flock on any descriptor number is sound.
        if unsafe { libc::flock(fd, op) } == 0 {
            return;
        }
        if io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            panic!("flock: {}", io::Error::last_os_error());
        }
    }
}

impl Lock for FlockLock {
    #[inline]
    fn acquire(&self) -> Got {
        flock(self.fd.as_raw_fd(), libc::LOCK_EX);
        Got::Acquired
    }
    #[inline]
    fn release(&self) {
        flock(self.fd.as_raw_fd(), libc::LOCK_UN);
    }
}

/// The `named-lock` crate; the guard is kept between `acquire` and `release`.
pub struct NamedLockLock {
    lock: named_lock::NamedLock,
    guards: RefCell<Vec<named_lock::NamedLockGuard>>,
}

impl NamedLockLock {
    /// `NamedLock::with_path`.
    pub fn open(path: &Path) -> NamedLockLock {
        NamedLockLock {
            lock: named_lock::NamedLock::with_path(path).expect("named-lock with_path"),
            guards: RefCell::new(Vec::with_capacity(4)),
        }
    }
}

impl Lock for NamedLockLock {
    #[inline]
    fn acquire(&self) -> Got {
        let guard = self.lock.lock().expect("named-lock lock");
        self.guards.borrow_mut().push(guard);
        Got::Acquired
    }
    #[inline]
    fn release(&self) {
        drop(
            self.guards
                .borrow_mut()
                .pop()
                .expect("named-lock: release without acquire"),
        );
    }
}

/// The objects scenario 2 opens: which peer, or the raw reference sequence.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Opener {
    Peer(Peer),
    /// `shm_open + mmap + flock(LOCK_SH) + munmap + close` (fresh: with `O_CREAT|O_EXCL`,
    /// `ftruncate` and `shm_unlink`).
    Raw,
}

impl Opener {
    /// Every opener: the peers, then the raw sequence.
    pub const ALL: [Opener; 6] = [
        Opener::Peer(Peer::NamedMutex),
        Opener::Peer(Peer::Pthread),
        Opener::Peer(Peer::Sem),
        Opener::Peer(Peer::Flock),
        Opener::Peer(Peer::NamedLock),
        Opener::Raw,
    ];

    /// Short name.
    pub fn key(self) -> &'static str {
        match self {
            Opener::Peer(p) => p.key(),
            Opener::Raw => "raw",
        }
    }

    /// Name in reports.
    pub fn label(self) -> &'static str {
        match self {
            Opener::Peer(p) => p.label(),
            Opener::Raw => "raw shm_open+mmap+flock+munmap+close",
        }
    }
}

/// Creates the object `name` of `opener` and keeps it open (the holder side of "open an
/// existing name").
pub enum Held {
    Lock(AnyLock),
    Raw(OwnedFd, Mapping),
}

/// Creates and holds `name` for `opener`.
pub fn hold(opener: Opener, env: &Env, name: &str) -> Held {
    match opener {
        Opener::Peer(p) => Held::Lock(AnyLock::create(p, env, name)),
        Opener::Raw => {
            let n = env.posix_name(name);
            // SAFETY: `n` is NUL-terminated.
            let fd = fd(
                unsafe {
                    libc::shm_open(
                        n.as_ptr(),
                        libc::O_RDWR | libc::O_CREAT | libc::O_CLOEXEC,
                        0o600,
                    )
                },
                "shm_open",
            );
            // SAFETY: `fd` is open.
            check(
                unsafe { libc::ftruncate(fd.as_raw_fd(), PAGE as libc::off_t) },
                "ftruncate",
            );
            let map = Mapping::map(fd.as_raw_fd(), PAGE);
            flock(fd.as_raw_fd(), libc::LOCK_SH);
            Held::Raw(fd, map)
        }
    }
}

/// Opens the existing object `name` of `opener` and closes it again.
pub fn open_close_existing(opener: Opener, env: &Env, name: &str) {
    match opener {
        Opener::Peer(Peer::NamedMutex) => {
            let (m, existed) = MutexOptions::new()
                .root(env.root())
                .create(name)
                .expect("namedmutex open");
            debug_assert!(existed);
            drop(std::hint::black_box(m));
        }
        Opener::Peer(p @ (Peer::Pthread | Peer::Sem | Peer::Flock | Peer::NamedLock)) => {
            drop(std::hint::black_box(AnyLock::open(p, env, name)));
        }
        Opener::Raw => raw_sequence(&env.posix_name(name), false),
    }
}

/// Creates the fresh object `name` of `opener` and destroys it (for peers whose close
/// does not remove the name, removes it as the user would have to).
pub fn create_destroy_fresh(opener: Opener, env: &Env, name: &str) {
    match opener {
        Opener::Peer(Peer::NamedMutex) => {
            let (m, existed) = MutexOptions::new()
                .root(env.root())
                .create(name)
                .expect("namedmutex create");
            debug_assert!(!existed);
            drop(std::hint::black_box(m)); // the last handle: removes the object
        }
        Opener::Peer(Peer::Pthread) => {
            let path = env.peers.join(format!("pthread-{name}"));
            drop(std::hint::black_box(PthreadLock::create(&path)));
            unlink(&cpath(&path));
        }
        Opener::Peer(Peer::Sem) => {
            let n = env.posix_name(name);
            drop(std::hint::black_box(SemLock::create(&n)));
            // SAFETY: `n` is NUL-terminated.
            check(unsafe { libc::sem_unlink(n.as_ptr()) }, "sem_unlink");
        }
        Opener::Peer(Peer::Flock) => {
            let path = env.peers.join(format!("flock-{name}"));
            let c = cpath(&path);
            drop(std::hint::black_box(open_file(
                &c,
                libc::O_RDWR | libc::O_CREAT | libc::O_EXCL,
            )));
            unlink(&c);
        }
        Opener::Peer(Peer::NamedLock) => {
            let path = env.peers.join(format!("namedlock-{name}"));
            drop(std::hint::black_box(NamedLockLock::open(&path)));
            unlink(&cpath(&path));
        }
        Opener::Raw => raw_sequence(&env.posix_name(name), true),
    }
}

fn unlink(path: &CStr) {
    // SAFETY: `path` is NUL-terminated.
    check(unsafe { libc::unlink(path.as_ptr()) }, "unlink");
}

/// The reference sequence: what opening a one-page object and taking a shared lifetime
/// lock on it costs at minimum.
pub fn raw_sequence(name: &CStr, fresh: bool) {
    let flags = if fresh {
        libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC
    } else {
        libc::O_RDWR | libc::O_CLOEXEC
    };
    // SAFETY: `name` is NUL-terminated.
    let fd = fd(
        unsafe { libc::shm_open(name.as_ptr(), flags, 0o600) },
        "shm_open",
    );
    if fresh {
        // SAFETY: `fd` is open.
        check(
            unsafe { libc::ftruncate(fd.as_raw_fd(), PAGE as libc::off_t) },
            "ftruncate",
        );
    }
    let map = Mapping::map(fd.as_raw_fd(), PAGE);
    // SAFETY: flock on an open descriptor.
    let rc = unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) };
    std::hint::black_box(rc);
    drop(map);
    drop(fd);
    if fresh {
        // SAFETY: `name` is NUL-terminated.
        check(unsafe { libc::shm_unlink(name.as_ptr()) }, "shm_unlink");
    }
}
