//! `NamedMutex`, a handle to a mutex object, and `MutexGuard`, the proof of ownership.

use crate::async_lock::{AsyncMutexGuard, LockFuture, MutexRef, OwnedAsyncMutexGuard, Unbounded};
use crate::error::Result;
use crate::name::Name;
use crate::options::MutexOptions;
use crate::sys::{Backend as _, RawMutex};
use crate::wait_status::WaitStatus;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// A handle to a mutex object that threads of any process can share.
///
/// A mutex is owned by a **thread**, never by a handle or a process: any handle to the object
/// serves to release it, and the owning thread may acquire it again without blocking (each
/// acquisition adds one to its count; it is free again after as many releases). When the
/// owning thread ends while it owns the mutex (it returns, its process exits, is killed with
/// SIGKILL, or execs), the next acquirer gets [`WaitStatus::Abandoned`].
///
/// The object lives while any handle to it exists in any process; dropping a handle does not
/// release the mutex.
///
/// ```
/// use namedmutex::NamedMutex;
///
/// let name = format!("doc-namedmutex-{}", std::process::id());
/// let (m, existed) = NamedMutex::create(&name, false)?;
/// assert!(!existed);
/// {
///     let guard = m.lock()?;
///     assert!(!guard.abandoned());
///     // ... the critical section ...
/// } // released here
/// # Ok::<(), namedmutex::Error>(())
/// ```
#[must_use = "the object lives only while a handle does: dropping the only handle at once ends it (keep it, e.g. `let _instance = ...`, not `let _ = ...`)"]
pub struct NamedMutex {
    raw: RawMutex,
    name: Option<Box<str>>,
    /// The queue of this process's tasks for the object (`async_lock`), made on first use.
    gate: OnceLock<Arc<crate::async_lock::Gate>>,
}

// The handle holds no thread-affine state: ownership is recorded in the object, per thread.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<NamedMutex>();
};

impl NamedMutex {
    /// Creates the mutex `name`, or opens it if it exists (`CreateMutex`). Returns the handle
    /// and `opened_existing`: true exactly when the object existed before the call (Win32:
    /// `ERROR_ALREADY_EXISTS`). `initial_owner` makes the calling thread the owner, count 1,
    /// only when this call creates the object, atomically with its creation.
    ///
    /// `""` creates an unnamed mutex; names follow [`crate::name`]'s grammar.
    ///
    /// ```
    /// use namedmutex::NamedMutex;
    ///
    /// let name = format!("doc-create-{}", std::process::id());
    /// let (first, existed) = NamedMutex::create(&name, true)?;
    /// assert!(!existed);
    /// let (second, existed) = NamedMutex::create(&name, true)?;
    /// assert!(existed); // and `second` did not take ownership
    /// first.release()?;
    /// assert!(second.release().is_err());
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    ///
    /// **A single instance**, the Win32 idiom: the first process creates the mutex, later
    /// ones find it existing and leave. Keep the handle for as long as the instance runs:
    /// the object lives only while a handle does. `let _ = NamedMutex::create(..)?` drops the
    /// handle at once (`_` is not a binding), so it excludes nothing; `let _instance = ...`
    /// keeps it. `NamedMutex` is `#[must_use]`, so a call whose result is thrown away warns.
    ///
    /// ```
    /// use namedmutex::NamedMutex;
    ///
    /// # let app = format!("doc-single-{}", std::process::id());
    /// let (_instance, already_running) = NamedMutex::create(&app, false)?;
    /// if already_running {
    ///     eprintln!("another instance is running");
    ///     return Ok(());
    /// }
    /// // ... run; `_instance` keeps the name taken until it is dropped at the end.
    /// assert!(NamedMutex::create(&app, false)?.1); // a second instance would see it
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    ///
    /// With the result thrown away, the compiler complains (denied here, to show it):
    ///
    /// ```compile_fail
    /// #![deny(unused_must_use)]
    /// fn main() -> Result<(), namedmutex::Error> {
    ///     namedmutex::NamedMutex::create("app", false)?; // dropped at once: excludes nothing
    ///     Ok(())
    /// }
    /// ```
    pub fn create(name: &str, initial_owner: bool) -> Result<(NamedMutex, bool)> {
        MutexOptions::new()
            .initial_owner(initial_owner)
            .create(name)
    }

    /// Opens the existing mutex `name` with `MUTEX_ALL_ACCESS` (`OpenMutex`).
    ///
    /// ```
    /// use namedmutex::{ErrorKind, NamedMutex};
    ///
    /// let name = format!("doc-open-{}", std::process::id());
    /// assert_eq!(NamedMutex::open(&name).unwrap_err().kind(), ErrorKind::NotFound);
    /// let (_m, _) = NamedMutex::create(&name, false)?;
    /// let again = NamedMutex::open(&name)?;
    /// assert_eq!(again.name(), Some(name.as_str()));
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    pub fn open(name: &str) -> Result<NamedMutex> {
        MutexOptions::new().open(name)
    }

    /// Creates a mutex without a name, shared only through [`NamedMutex::try_clone`] and
    /// inheritance.
    ///
    /// ```
    /// use namedmutex::NamedMutex;
    ///
    /// let m = NamedMutex::create_unnamed(true)?;
    /// assert_eq!(m.name(), None);
    /// m.release()?;
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    pub fn create_unnamed(initial_owner: bool) -> Result<NamedMutex> {
        Ok(MutexOptions::new()
            .initial_owner(initial_owner)
            .create("")?
            .0)
    }

    pub(crate) fn create_with(name: &str, opts: &MutexOptions) -> Result<(NamedMutex, bool)> {
        let parsed = Name::parse(name)?;
        let (raw, existed) =
            RawMutex::create(parsed.as_ref().map(Into::into).as_ref(), &opts.spec)?;
        Ok((NamedMutex::wrap(raw, parsed.as_ref()), existed))
    }

    pub(crate) fn open_with(name: &str, opts: &MutexOptions) -> Result<NamedMutex> {
        let parsed = match Name::parse(name)? {
            Some(parsed) => parsed,
            None => {
                return Err(crate::error::Error::new(
                    crate::ErrorKind::InvalidParameter,
                    "cannot open a mutex without a name: an unnamed mutex is reached only through its handles",
                ));
            }
        };
        let raw = RawMutex::open(&(&parsed).into(), &opts.spec)?;
        Ok(NamedMutex::wrap(raw, Some(&parsed)))
    }

    pub(crate) fn raw(&self) -> &RawMutex {
        &self.raw
    }

    #[inline]
    pub(crate) fn gate(&self) -> &Arc<crate::async_lock::Gate> {
        crate::async_lock::gate_of(self, &self.gate)
    }

    fn wrap(raw: RawMutex, name: Option<&Name<'_>>) -> NamedMutex {
        NamedMutex {
            raw,
            name: name.map(|n| n.full.into()),
            gate: OnceLock::new(),
        }
    }

    /// Waits until the calling thread owns the mutex, or the timeout passes
    /// (`WaitForSingleObject`). `None` waits forever; `Some(Duration::ZERO)` polls.
    ///
    /// On `Acquired` or `Abandoned` the calling **thread** owns the mutex and must call
    /// [`NamedMutex::release`] once for each successful wait, on the same thread. Async code
    /// must not use this from a task (a task moves between threads, and tasks share
    /// threads): use [`NamedMutex::lock_async`]. Timeouts are measured on a
    /// monotonic clock; signals neither cut a wait short nor extend it. Needs
    /// [`crate::Access::SYNCHRONIZE`].
    ///
    /// ```
    /// use namedmutex::{NamedMutex, WaitStatus};
    /// use std::time::Duration;
    ///
    /// let m = NamedMutex::create_unnamed(false)?;
    /// assert_eq!(m.wait(None)?, WaitStatus::Acquired);
    /// assert_eq!(m.wait(Some(Duration::ZERO))?, WaitStatus::Acquired); // recursion: count 2
    /// let other = m.try_clone()?;
    /// let timed_out = std::thread::scope(|s| {
    ///     s.spawn(|| other.wait(Some(Duration::from_millis(20)))).join().unwrap()
    /// })?;
    /// assert_eq!(timed_out, WaitStatus::TimedOut);
    /// m.release()?;
    /// m.release()?;
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    #[inline]
    pub fn wait(&self, timeout: Option<Duration>) -> Result<WaitStatus> {
        self.raw.wait(timeout)
    }

    /// Acquires the mutex, blocking as long as it takes, and returns a guard that releases
    /// it when dropped. If the previous owner ended while owning it, the lock still succeeds
    /// and [`MutexGuard::abandoned`] says so.
    ///
    /// The calling thread owns the mutex and blocks while it waits: in async code use
    /// [`NamedMutex::lock_async`], whose guard may be held across `.await`.
    ///
    /// ```
    /// use namedmutex::NamedMutex;
    ///
    /// let m = NamedMutex::create_unnamed(false)?;
    /// let guard = m.lock()?;
    /// if guard.abandoned() {
    ///     // repair whatever the mutex protects
    /// }
    /// drop(guard);
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    pub fn lock(&self) -> Result<MutexGuard<'_>> {
        let status = self.raw.wait(None)?;
        Ok(MutexGuard::new(self, status))
    }

    /// Like [`NamedMutex::lock`], but gives up after `timeout` and returns `Ok(None)`.
    ///
    /// ```
    /// use namedmutex::NamedMutex;
    /// use std::time::Duration;
    ///
    /// let m = NamedMutex::create_unnamed(false)?;
    /// let guard = m.try_lock_for(Duration::from_millis(10))?.expect("free");
    /// drop(guard);
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    pub fn try_lock_for(&self, timeout: Duration) -> Result<Option<MutexGuard<'_>>> {
        match self.raw.wait(Some(timeout))? {
            WaitStatus::TimedOut => Ok(None),
            status => Ok(Some(MutexGuard::new(self, status))),
        }
    }

    /// Like [`NamedMutex::try_lock_for`] with a deadline instead of a timeout; a deadline
    /// already past polls once.
    ///
    /// ```
    /// use namedmutex::NamedMutex;
    /// use std::time::{Duration, Instant};
    ///
    /// let m = NamedMutex::create_unnamed(false)?;
    /// let deadline = Instant::now() + Duration::from_millis(10);
    /// assert!(m.try_lock_until(deadline)?.is_some());
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    pub fn try_lock_until(&self, deadline: Instant) -> Result<Option<MutexGuard<'_>>> {
        self.try_lock_for(deadline.saturating_duration_since(Instant::now()))
    }

    /// Like [`NamedMutex::lock`] on a shared handle, returning a guard that owns a reference
    /// to it (`'static`): it can be stored, or returned from the function that locked.
    /// Ownership is still the calling thread's, so the guard cannot leave the thread.
    ///
    /// ```
    /// use namedmutex::{NamedMutex, OwnedMutexGuard};
    /// use std::sync::Arc;
    ///
    /// fn locked(name: &str) -> namedmutex::Result<OwnedMutexGuard> {
    ///     let (m, _) = NamedMutex::create(name, false)?;
    ///     Arc::new(m).lock_owned() // the guard keeps the handle alive
    /// }
    /// let guard = locked(&format!("doc-owned-{}", std::process::id()))?;
    /// assert!(!guard.abandoned());
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    pub fn lock_owned(self: &Arc<Self>) -> Result<OwnedMutexGuard> {
        let status = self.raw.wait(None)?;
        Ok(OwnedMutexGuard::new(self.clone(), status))
    }

    /// [`NamedMutex::lock_owned`] with a timeout: `Ok(None)` when it passed first.
    ///
    /// ```
    /// use namedmutex::NamedMutex;
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// let m = Arc::new(NamedMutex::create_unnamed(false)?);
    /// let guard = m.try_lock_for_owned(Duration::from_millis(10))?.expect("free");
    /// drop(guard);
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    pub fn try_lock_for_owned(
        self: &Arc<Self>,
        timeout: Duration,
    ) -> Result<Option<OwnedMutexGuard>> {
        Ok(match self.raw.wait(Some(timeout))? {
            WaitStatus::TimedOut => None,
            status => Some(OwnedMutexGuard::new(self.clone(), status)),
        })
    }

    /// Acquires the mutex for the current async task, without blocking the executor's
    /// thread, on any runtime. The guard is `Send`: it may be held across `.await` while the
    /// task moves between worker threads; dropping it releases the mutex. It borrows the
    /// handle; [`NamedMutex::lock_async_owned`] gives a `'static` guard to move into a
    /// spawned task or return from a function.
    ///
    /// The acquisition belongs to the **process**, held for this task: other tasks of the
    /// process, other threads and other processes are all excluded, and if the process
    /// dies while a task holds it, the next acquirer gets [`WaitStatus::Abandoned`]. Not
    /// recursive: a task that awaits a mutex it holds waits forever. Dropping the future
    /// before it completes leaves nothing held. On Linux an uncontended acquisition is one
    /// compare-and-swap on the polling thread; a contended one sleeps on a helper thread.
    /// On Windows, where the OS ties ownership to a thread, every acquisition is made and
    /// held by an owner thread of its own. The model and its costs are in the README.
    ///
    /// ```
    /// use namedmutex::NamedMutex;
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     let mut f = std::pin::pin!(f);
    /// #     let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    /// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } std::thread::yield_now(); }
    /// # }
    ///
    /// let name = format!("doc-async-{}", std::process::id());
    /// let (m, _) = NamedMutex::create(&name, false)?;
    /// block_on(async {
    ///     let guard = m.lock_async().await?;
    ///     if guard.abandoned() { /* repair */ }
    ///     // ... .await freely while holding it ...
    ///     drop(guard);
    ///     Ok::<(), namedmutex::Error>(())
    /// })?;
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    #[inline]
    pub fn lock_async(&self) -> impl Future<Output = Result<AsyncMutexGuard<'_>>> + Send + '_ {
        Unbounded(LockFuture::new(MutexRef::Borrowed(self), None))
    }

    /// [`NamedMutex::lock_async`] on a shared handle, resolving to a guard that holds the
    /// `Arc` (`'static`): move it into a spawned task, keep it in a struct, return it.
    ///
    /// ```
    /// use namedmutex::{NamedMutex, OwnedAsyncMutexGuard};
    /// use std::sync::Arc;
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     let mut f = std::pin::pin!(f);
    /// #     let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    /// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } std::thread::yield_now(); }
    /// # }
    ///
    /// async fn locked(name: &str) -> namedmutex::Result<OwnedAsyncMutexGuard> {
    ///     let (m, _) = NamedMutex::create(name, false)?;
    ///     Arc::new(m).lock_async_owned().await // the guard keeps the handle alive
    /// }
    /// let guard = block_on(locked(&format!("doc-async-owned-{}", std::process::id())))?;
    /// assert!(!guard.abandoned());
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    #[inline]
    pub fn lock_async_owned(
        self: &Arc<Self>,
    ) -> impl Future<Output = Result<OwnedAsyncMutexGuard>> + Send + 'static {
        Unbounded(LockFuture::new(MutexRef::Shared(self.clone()), None))
    }

    /// [`NamedMutex::lock_async`] with a timeout: resolves to `Ok(None)` when it passed
    /// first (a zero timeout looks once). Measured on the monotonic clock, by a timer thread
    /// of the crate's own, so no runtime's timer is needed.
    ///
    /// ```
    /// use namedmutex::NamedMutex;
    /// use std::time::Duration;
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     let mut f = std::pin::pin!(f);
    /// #     let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    /// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } std::thread::yield_now(); }
    /// # }
    ///
    /// let m = NamedMutex::create_unnamed(false)?;
    /// let held = block_on(m.lock_async())?;
    /// let again = block_on(m.lock_async_for(Duration::from_millis(20)))?;
    /// assert!(again.is_none()); // not recursive: the first task still holds it
    /// drop(held);
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    #[inline]
    pub fn lock_async_for(&self, timeout: Duration) -> LockFuture<'_> {
        LockFuture::new(MutexRef::Borrowed(self), Some(timeout))
    }

    /// [`NamedMutex::lock_async_for`] on a shared handle, resolving to a `'static` guard
    /// (see [`NamedMutex::lock_async_owned`]).
    ///
    /// ```
    /// use namedmutex::NamedMutex;
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     let mut f = std::pin::pin!(f);
    /// #     let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    /// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } std::thread::yield_now(); }
    /// # }
    ///
    /// let m = Arc::new(NamedMutex::create_unnamed(false)?);
    /// let guard = block_on(m.lock_async_for_owned(Duration::from_millis(20)))?.expect("free");
    /// std::thread::spawn(move || drop(guard)).join().unwrap();
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    #[inline]
    pub fn lock_async_for_owned(self: &Arc<Self>, timeout: Duration) -> LockFuture<'static> {
        LockFuture::new(MutexRef::Shared(self.clone()), Some(timeout))
    }

    /// Gives the mutex up the way a crash would, saying why: the next acquirer gets
    /// [`WaitStatus::Abandoned`] (told that whatever the mutex guards may be half-done),
    /// finds this process and thread recorded as the one that abandoned it, and `note` in
    /// [`MutexInfo::abandon_note`](crate::MutexInfo::abandon_note) (cut to 512 bytes). All
    /// of the calling thread's recursion is given up at once. For a supervisor that learns
    /// its work died half-way (the `namedmutex` command does this when its command is
    /// killed by a signal). Fails with [`crate::ErrorKind::NotOwner`] when the calling
    /// thread does not own the mutex, and with [`crate::ErrorKind::Unsupported`] on
    /// Windows, which reports an abandonment only when the owning thread ends.
    ///
    /// ```
    /// use namedmutex::{NamedMutex, WaitStatus};
    ///
    /// let name = format!("doc-abandon-{}", std::process::id());
    /// let (m, _) = NamedMutex::create(&name, true)?;
    /// # #[cfg(target_os = "linux")] {
    /// m.abandon("the import was cut off at row 1200")?;
    /// assert_eq!(m.wait(None)?, WaitStatus::Abandoned);
    /// let info = namedmutex::info(&name)?.expect("it exists");
    /// assert_eq!(info.abandon_note.as_deref(), Some("the import was cut off at row 1200"));
    /// assert_eq!(info.last_abandoner.map(|(pid, _)| pid), Some(std::process::id()));
    /// m.release()?;
    /// # }
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    pub fn abandon(&self, note: &str) -> Result<()> {
        self.raw.abandon(note)
    }

    /// Whether the mutex's name still leads to this object. On Linux an object is a file,
    /// and a cleaner can remove it while processes use it: systemd-logind's `RemoveIPC=yes`
    /// deletes a user's files under `/dev/shm` when their last session ends, and tmp
    /// cleaners delete old files. The handle goes on working, but a later create of the
    /// same name makes a second object, and the two do not exclude each other. A holder
    /// that finds `false` should say so loudly (the `namedmutex` command does); see
    /// RELIABILITY.md for roots that cleaners leave alone. Always true for an unnamed
    /// mutex, and on Windows.
    ///
    /// ```
    /// let name = format!("doc-still-named-{}", std::process::id());
    /// let (m, _) = namedmutex::NamedMutex::create(&name, false)?;
    /// assert!(m.still_named());
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    pub fn still_named(&self) -> bool {
        self.raw.still_named()
    }

    /// Acquires the mutex only if that needs no waiting (a zero timeout).
    ///
    /// ```
    /// use namedmutex::NamedMutex;
    ///
    /// let m = NamedMutex::create_unnamed(false)?;
    /// assert!(m.try_lock()?.is_some());
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    pub fn try_lock(&self) -> Result<Option<MutexGuard<'_>>> {
        self.try_lock_for(Duration::ZERO)
    }

    /// Releases the mutex once (`ReleaseMutex`). Fails with [`crate::ErrorKind::NotOwner`]
    /// (288) when the calling thread does not own it, and then changes nothing. Ownership is
    /// the thread's: a release from another thread (another worker of an async runtime, say)
    /// fails. Tasks use [`NamedMutex::lock_async`] and release by dropping its guard.
    ///
    /// ```
    /// use namedmutex::{ErrorKind, NamedMutex};
    ///
    /// let m = NamedMutex::create_unnamed(true)?;
    /// m.release()?;
    /// assert_eq!(m.release().unwrap_err().kind(), ErrorKind::NotOwner);
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    #[inline]
    pub fn release(&self) -> Result<()> {
        self.raw.release()
    }

    /// Another handle to the same object, with the same access (`DuplicateHandle`).
    /// Ownership is unaffected: the owner may release through either handle.
    ///
    /// ```
    /// use namedmutex::NamedMutex;
    ///
    /// let m = NamedMutex::create_unnamed(false)?;
    /// let copy = m.try_clone()?;
    /// copy.wait(None)?;
    /// m.release()?; // acquired through one handle, released through the other
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    pub fn try_clone(&self) -> Result<NamedMutex> {
        Ok(NamedMutex {
            raw: self.raw.try_clone()?,
            name: self.name.clone(),
            gate: OnceLock::new(),
        })
    }

    /// The name this handle was created or opened with, prefix included; `None` for an
    /// unnamed mutex.
    ///
    /// ```
    /// let name = format!("Global\\doc-name-{}", std::process::id());
    /// let (m, _) = namedmutex::NamedMutex::create(&name, false)?;
    /// assert_eq!(m.name(), Some(name.as_str()));
    /// assert_eq!(namedmutex::NamedMutex::create_unnamed(false)?.name(), None);
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// For a handle made with [`crate::MutexOptions::inheritable`]: the value to pass to a
    /// child process (on its command line, say), which adopts it with
    /// [`NamedMutex::from_inherited_handle`]. On Unix it is a file descriptor that stays
    /// open across `exec`; on Windows a `HANDLE`. `None` for handles that are not inheritable.
    ///
    /// ```
    /// use namedmutex::{MutexOptions, NamedMutex};
    ///
    /// let m = MutexOptions::new().inheritable(true).create("")?.0;
    /// let value = m.inheritable_handle().expect("inheritable");
    /// // std::process::Command::new(child).arg(value.to_string()).spawn()?;
    /// # let _ = value;
    /// assert_eq!(NamedMutex::create_unnamed(false)?.inheritable_handle(), None);
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    pub fn inheritable_handle(&self) -> Option<u64> {
        self.raw.inheritable_handle()
    }

    /// Adopts a handle inherited from the parent process (the value the parent got from
    /// [`NamedMutex::inheritable_handle`]). The object's name is not known to the child, so
    /// [`NamedMutex::name`] returns `None`.
    ///
    /// # Safety
    ///
    /// `value` must be an inherited handle of this kind that nothing else in this process
    /// owns or will close: the returned `NamedMutex` takes ownership of it and closes it
    /// when dropped.
    #[allow(unsafe_code)] // adopting a raw OS handle is unsafe for the same reason as `FromRawFd`
    pub unsafe fn from_inherited_handle(value: u64) -> Result<NamedMutex> {
        // SAFETY: the caller guarantees `value` is an inherited handle nothing else owns.
        let raw = unsafe { RawMutex::from_inherited_handle(value)? };
        Ok(NamedMutex {
            raw,
            name: None,
            gate: OnceLock::new(),
        })
    }
}

impl fmt::Debug for NamedMutex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NamedMutex")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Proof that the current thread owns a [`NamedMutex`]; releases it once when dropped.
///
/// Like the guard of a poisoned `std::sync::Mutex`, a guard obtained from an abandoned mutex
/// is still yours: [`MutexGuard::abandoned`] tells you to check what the mutex protects.
/// The guard cannot be sent to another thread, because ownership belongs to the thread that
/// acquired.
///
/// ```
/// use namedmutex::NamedMutex;
///
/// let m = NamedMutex::create_unnamed(false)?;
/// let g = m.lock()?;
/// assert!(!g.abandoned());
/// drop(g);
/// assert!(m.release().is_err()); // the guard released it
/// # Ok::<(), namedmutex::Error>(())
/// ```
#[must_use = "the mutex is released as soon as the guard is dropped"]
pub struct MutexGuard<'a> {
    mutex: &'a NamedMutex,
    abandoned: bool,
    /// Released by [`MutexGuard::release`]: the drop has nothing left to do.
    released: bool,
    // Ownership is per thread: the guard must be dropped on the thread that acquired.
    _not_send: PhantomData<*const ()>,
}

impl<'a> MutexGuard<'a> {
    fn new(mutex: &'a NamedMutex, status: WaitStatus) -> MutexGuard<'a> {
        debug_assert!(status.is_acquired());
        MutexGuard {
            mutex,
            abandoned: status == WaitStatus::Abandoned,
            released: false,
            _not_send: PhantomData,
        }
    }

    /// Whether the previous owner ended while owning the mutex (the wait returned
    /// `WAIT_ABANDONED`).
    ///
    /// ```
    /// let m = namedmutex::NamedMutex::create_unnamed(false)?;
    /// let other = m.try_clone()?;
    /// std::thread::spawn(move || std::mem::forget(other.lock().unwrap())).join().unwrap();
    /// let guard = m.lock()?; // its owner thread ended while owning it
    /// assert!(guard.abandoned());
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    pub fn abandoned(&self) -> bool {
        self.abandoned
    }

    /// The mutex this guard holds.
    ///
    /// ```
    /// let m = namedmutex::NamedMutex::create_unnamed(false)?;
    /// let guard = m.lock()?;
    /// assert!(std::ptr::eq(guard.mutex(), &m));
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    pub fn mutex(&self) -> &'a NamedMutex {
        self.mutex
    }

    /// The fencing token of this acquisition: a number that grows with every acquisition of
    /// the object, so that a resource it protects can refuse a write from an owner that was
    /// paused or cut off and has since lost the mutex (see the README's "Across machines").
    /// Mutexes on a PostgreSQL server have one; this machine's mutexes need none (a paused
    /// local owner still excludes everyone) and answer `None`.
    ///
    /// ```
    /// let m = namedmutex::NamedMutex::create_unnamed(false)?;
    /// let guard = m.lock()?;
    /// assert_eq!(guard.fencing_token(), None); // a local mutex
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    pub fn fencing_token(&self) -> Option<u64> {
        self.mutex.raw().fencing_token()
    }

    /// Whether the calling thread still owns the mutex. Always true on this machine; on a
    /// PostgreSQL server it asks the server, and is false once the server ended the session
    /// that held it (a restart, `pg_terminate_backend`, a lost network).
    ///
    /// ```
    /// let m = namedmutex::NamedMutex::create_unnamed(false)?;
    /// let guard = m.lock()?;
    /// assert!(guard.still_owned()?);
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    pub fn still_owned(&self) -> Result<bool> {
        self.mutex.raw().still_owned()
    }

    /// Releases now and reports a failure, which dropping the guard cannot: on a PostgreSQL
    /// server, [`ErrorKind::OwnershipLost`](crate::ErrorKind::OwnershipLost) says the
    /// ownership had already ended.
    ///
    /// ```
    /// let m = namedmutex::NamedMutex::create_unnamed(false)?;
    /// m.lock()?.release()?;
    /// assert!(m.release().is_err()); // released once, by the guard
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    pub fn release(mut self) -> Result<()> {
        self.released = true;
        self.mutex.release()
    }
}

impl Drop for MutexGuard<'_> {
    fn drop(&mut self) {
        if !self.released {
            release_from_drop(self.mutex);
        }
    }
}

/// A guard's release when it is dropped. The guard proves this thread owned the mutex, so
/// it cannot fail with NotOwner; a server's mutex can have been lost (`OwnershipLost`, for
/// `release` to report); anything else means the shared state was altered behind our back,
/// and there is nobody to report it to from a destructor.
fn release_from_drop(mutex: &NamedMutex) {
    released_from_drop(mutex.release(), "a guard");
}

/// Checks (in debug builds) the result of a release made by a dropped guard: see
/// [`release_from_drop`]. `what` names the guard.
#[inline]
pub(crate) fn released_from_drop(result: Result<()>, what: &str) {
    debug_assert!(
        match &result {
            Ok(()) => true,
            Err(e) => e.kind() == crate::ErrorKind::OwnershipLost,
        },
        "releasing through {what} failed: {result:?}"
    );
    let _ = (result, what);
}

/// Like [`MutexGuard`], but holding an `Arc` of its handle, so that it is `'static`: made by
/// [`NamedMutex::lock_owned`] and [`NamedMutex::try_lock_for_owned`]. Still owned by the
/// thread that acquired, so it cannot be sent to another thread (async tasks use
/// [`NamedMutex::lock_async`]).
///
/// ```
/// use namedmutex::NamedMutex;
/// use std::sync::Arc;
///
/// let m = Arc::new(NamedMutex::create_unnamed(false)?);
/// let guard = m.lock_owned()?;
/// assert!(Arc::ptr_eq(guard.mutex(), &m));
/// drop(guard);
/// assert!(m.release().is_err()); // the guard released it
/// # Ok::<(), namedmutex::Error>(())
/// ```
#[must_use = "the mutex is released as soon as the guard is dropped"]
pub struct OwnedMutexGuard {
    mutex: Arc<NamedMutex>,
    abandoned: bool,
    /// Released by [`OwnedMutexGuard::release`].
    released: bool,
    _not_send: PhantomData<*const ()>,
}

impl OwnedMutexGuard {
    fn new(mutex: Arc<NamedMutex>, status: WaitStatus) -> OwnedMutexGuard {
        debug_assert!(status.is_acquired());
        OwnedMutexGuard {
            mutex,
            abandoned: status == WaitStatus::Abandoned,
            released: false,
            _not_send: PhantomData,
        }
    }

    /// Whether the previous owner ended while owning the mutex (`WAIT_ABANDONED`).
    ///
    /// ```
    /// let m = std::sync::Arc::new(namedmutex::NamedMutex::create_unnamed(false)?);
    /// assert!(!m.lock_owned()?.abandoned());
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    pub fn abandoned(&self) -> bool {
        self.abandoned
    }

    /// The mutex this guard holds.
    ///
    /// ```
    /// let m = std::sync::Arc::new(namedmutex::NamedMutex::create_unnamed(false)?);
    /// let guard = m.lock_owned()?;
    /// assert_eq!(guard.mutex().name(), None);
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    pub fn mutex(&self) -> &Arc<NamedMutex> {
        &self.mutex
    }

    /// The fencing token of this acquisition (see [`MutexGuard::fencing_token`]).
    ///
    /// ```
    /// let m = std::sync::Arc::new(namedmutex::NamedMutex::create_unnamed(false)?);
    /// assert_eq!(m.lock_owned()?.fencing_token(), None); // a local mutex
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    pub fn fencing_token(&self) -> Option<u64> {
        self.mutex.raw().fencing_token()
    }

    /// Whether the calling thread still owns the mutex (see [`MutexGuard::still_owned`]).
    ///
    /// ```
    /// let m = std::sync::Arc::new(namedmutex::NamedMutex::create_unnamed(false)?);
    /// assert!(m.lock_owned()?.still_owned()?);
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    pub fn still_owned(&self) -> Result<bool> {
        self.mutex.raw().still_owned()
    }

    /// Releases now and reports a failure (see [`MutexGuard::release`]).
    ///
    /// ```
    /// let m = std::sync::Arc::new(namedmutex::NamedMutex::create_unnamed(false)?);
    /// m.lock_owned()?.release()?;
    /// assert!(m.release().is_err());
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    pub fn release(mut self) -> Result<()> {
        self.released = true;
        self.mutex.release()
    }
}

impl Drop for OwnedMutexGuard {
    fn drop(&mut self) {
        if !self.released {
            release_from_drop(&self.mutex);
        }
    }
}

impl fmt::Debug for OwnedMutexGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedMutexGuard")
            .field("mutex", &self.mutex)
            .field("abandoned", &self.abandoned)
            .finish()
    }
}

impl fmt::Debug for MutexGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MutexGuard")
            .field("mutex", self.mutex)
            .field("abandoned", &self.abandoned)
            .finish()
    }
}
