//! Async acquisition: a mutex owned by a task instead of a thread.
//!
//! # The ownership model
//!
//! A task moves between an executor's threads and shares them with other tasks, so an
//! acquisition it makes cannot belong to the thread it happens to run on (that is what goes
//! wrong when a task calls the thread-owned [`NamedMutex::wait`]). An async acquisition
//! belongs to the **process** instead, held for one task at a time:
//!
//! - Tasks of one process that must wait queue per mutex object in a *gate* (`gate.rs`),
//!   first come first served; the task at the front competes for the shared lock with the
//!   other processes and with threads using the synchronous API.
//! - On Linux, macOS and FreeBSD the shared lock is taken with the process's owner token,
//!   which belongs to a thread that only sleeps until the process ends. That token never
//!   recurses (a task finding the lock word owned by it waits like anyone else), so a task
//!   that finds nobody in the gate takes the lock beside it: an uncontended acquisition is
//!   one compare-and-swap on the calling thread, with no thread hand-off; a contended one
//!   enters the gate and sleeps on a helper thread (`helper.rs`), which wakes the task. When the
//!   process dies or execs while a task holds the mutex, the owner thread dies with it and
//!   the next acquirer anywhere gets [`WaitStatus::Abandoned`]. A task that merely ends
//!   (or panics) while holding a guard does not abandon the mutex: the guard's drop releases it.
//! - On Windows the OS ties ownership to a thread, so each async acquisition is made and
//!   held by an owner thread of its own, which releases when the guard tells it to: a
//!   thread per held guard and two hand-offs per lock.
//!
//! The future never blocks the thread that polls it. Dropping it while it waits (for
//! example in `select!` or on a timeout) leaves nothing held: a place in the gate's queue
//! is given up, a sleeping helper is woken and gives back whatever it acquired; an
//! abandonment it had seen is handed back so that the next acquirer is still told.
//!
//! Async acquisitions are not recursive: a task that holds the guard and awaits the same
//! mutex again waits for itself forever, as with any async mutex.

mod gate;
mod helper;
mod timer;

use crate::error::{Error, ErrorKind, Result};
use crate::mutex::NamedMutex;
use crate::sys::{Backend as _, Cancel, CancelSignal as _, Claim, RawMutex};
use crate::wait_status::WaitStatus;
pub(crate) use gate::Gate;
use gate::{Entry, Ticket};
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// What a helper thread waits with (`Backend::Waiter`).
type Waiter = <RawMutex as crate::sys::Backend>::Waiter;

/// How a future, and then its guard, holds the handle: borrowed (`lock_async`: no
/// reference counting on the way) or shared (`lock_async_owned`: `'static`).
pub(crate) enum MutexRef<'a> {
    Borrowed(&'a NamedMutex),
    Shared(Arc<NamedMutex>),
}

impl Deref for MutexRef<'_> {
    type Target = NamedMutex;

    #[inline]
    fn deref(&self) -> &NamedMutex {
        match self {
            MutexRef::Borrowed(m) => m,
            MutexRef::Shared(m) => m,
        }
    }
}

impl fmt::Debug for MutexRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// The gates of this process, by object identity (`RawMutex::identity`).
static GATES: Mutex<BTreeMap<u64, Weak<Gate>>> = Mutex::new(BTreeMap::new());

/// This handle's gate: the one every handle of this process to the same object shares.
#[inline]
pub(crate) fn gate_of<'a>(mutex: &NamedMutex, cell: &'a OnceLock<Arc<Gate>>) -> &'a Arc<Gate> {
    match cell.get() {
        Some(gate) => gate,
        None => first_gate(mutex, cell),
    }
}

/// [`gate_of`] the first time for this handle.
#[cold]
fn first_gate<'a>(mutex: &NamedMutex, cell: &'a OnceLock<Arc<Gate>>) -> &'a Arc<Gate> {
    cell.get_or_init(|| {
        let Some(id) = mutex.raw().identity() else {
            return Arc::default();
        };
        let mut gates = GATES.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(gate) = gates.get(&id).and_then(Weak::upgrade) {
            return gate;
        }
        gates.retain(|_, g| g.strong_count() > 0);
        let gate = Arc::<Gate>::default();
        gates.insert(id, Arc::downgrade(&gate));
        gate
    })
}

/// What a helper thread's wait came to, shared with the future that started it.
enum Outcome {
    /// The helper still waits; it wakes this waker when done.
    Waiting(Waker),
    Done(Result<Option<(WaitStatus, Claim)>>),
    /// The future was dropped: the helper gives back what it got and leaves the gate.
    Cancelled,
    /// A placeholder while the state is moved out under the lock.
    Taken,
}

/// One wait handed to a helper thread. The helper owns what it needs (the backend's
/// waiter and the gate), never the handle: a future that borrows its handle may be
/// dropped, and the handle closed, while the helper still waits for its cancel signal.
struct Job {
    outcome: Mutex<Outcome>,
    cancel: Cancel,
    waiter: Waiter,
    gate: Arc<Gate>,
}

impl Job {
    fn outcome(&self) -> std::sync::MutexGuard<'_, Outcome> {
        self.outcome.lock().unwrap_or_else(|e| e.into_inner())
    }
}

enum State {
    Start,
    Queued(Arc<Ticket>),
    InGate,
    Blocking(Arc<Job>),
    Finished,
}

/// The future of [`NamedMutex::lock_async_for`] (and, inside, of
/// [`NamedMutex::lock_async`]): resolves to the guard, or `None` when the timeout passed
/// first. `'a` is the borrow of the handle; the `_owned` calls make a `LockFuture<'static>`.
#[must_use = "futures do nothing unless awaited"]
pub struct LockFuture<'a> {
    /// Moved into the guard on success.
    mutex: Option<MutexRef<'a>>,
    deadline: Option<Instant>,
    /// A zero timeout: one look, no waiting.
    poll_only: bool,
    timer_set: bool,
    state: State,
}

impl<'a> LockFuture<'a> {
    #[inline]
    pub(crate) fn new(mutex: MutexRef<'a>, timeout: Option<Duration>) -> LockFuture<'a> {
        LockFuture {
            mutex: Some(mutex),
            // A deadline too far to represent is as good as none.
            deadline: timeout.and_then(|t| Instant::now().checked_add(t)),
            poll_only: timeout == Some(Duration::ZERO),
            timer_set: false,
            state: State::Start,
        }
    }

    fn expired(&self) -> bool {
        self.poll_only || self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    fn arm_timer(&mut self, waker: &Waker) -> Result<()> {
        if let (Some(at), false) = (self.deadline, self.timer_set) {
            timer::wake_at(at, waker.clone()).map_err(|e| {
                Error::io(
                    ErrorKind::ResourceExhausted,
                    "cannot start the thread that ends async waits at their timeout",
                    e,
                )
            })?;
            self.timer_set = true;
        }
        Ok(())
    }

    #[inline]
    fn mutex(&self) -> &NamedMutex {
        self.mutex
            .as_ref()
            .expect("the mutex is taken only when the future completes")
    }

    #[inline]
    fn gate(&self) -> &Gate {
        self.mutex().gate()
    }

    /// The guard of an acquisition made in the gate (`gated`: the guard leaves it) or
    /// beside it.
    #[inline(always)]
    fn guard(&mut self, status: WaitStatus, claim: Claim, gated: bool) -> AsyncMutexGuard<'a> {
        AsyncMutexGuard {
            mutex: self.mutex.take().expect("completes once"),
            claim: Some(claim),
            abandoned: status == WaitStatus::Abandoned,
            gated,
            _not_sync: PhantomData,
        }
    }

    /// Beside the gate: where process-owned acquisitions exclude each other by themselves
    /// and no task of this process waits in the gate, one look at the mutex, with no
    /// read-modify-write of the gate's state (`None`: go through the gate).
    #[inline(always)]
    fn try_beside_gate(&mut self) -> Option<Poll<Result<Option<AsyncMutexGuard<'a>>>>> {
        let raw = self.mutex().raw();
        if !raw.detached_is_exclusive() || !self.gate().is_free() {
            return None;
        }
        match raw.try_acquire_detached() {
            Ok(Some((status, claim))) => {
                self.state = State::Finished;
                Some(Poll::Ready(Ok(Some(self.guard(status, claim, false)))))
            }
            Ok(None) => None,
            Err(e) => {
                self.state = State::Finished;
                Some(Poll::Ready(Err(e)))
            }
        }
    }

    /// In the gate: takes the lock if it is free, else hands the wait to a helper thread.
    fn acquire_in_gate(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<AsyncMutexGuard<'a>>>> {
        match self.mutex().raw().try_acquire_detached() {
            Ok(Some((status, claim))) => {
                self.state = State::Finished;
                return Poll::Ready(Ok(Some(self.guard(status, claim, true))));
            }
            Ok(None) => {}
            Err(e) => return self.finish(Err(e)),
        }
        if self.expired() && <crate::sys::RawMutex as crate::sys::Backend>::TRY_DETACHED_IS_EXACT {
            return self.finish(Ok(None));
        }
        let timeout = if self.poll_only {
            Some(Duration::ZERO)
        } else {
            self.deadline
                .map(|d| d.saturating_duration_since(Instant::now()))
        };
        let (cancel, waiter) =
            match Cancel::new().and_then(|c| Ok((c, self.mutex().raw().waiter()?))) {
                Ok(made) => made,
                Err(e) => return self.finish(Err(e)),
            };
        let job = Arc::new(Job {
            outcome: Mutex::new(Outcome::Waiting(cx.waker().clone())),
            cancel,
            waiter,
            gate: self.mutex().gate().clone(),
        });
        let shared = job.clone();
        let started = helper::run(Box::new(move || {
            let result = RawMutex::acquire_detached(&shared.waiter, timeout, &shared.cancel);
            let mut outcome = shared.outcome();
            match std::mem::replace(&mut *outcome, Outcome::Taken) {
                Outcome::Waiting(waker) => {
                    *outcome = Outcome::Done(result);
                    drop(outcome);
                    waker.wake();
                }
                _ => {
                    drop(outcome);
                    if let Ok(Some((_, claim))) = result {
                        let _ = RawMutex::undo_detached(&shared.waiter, claim);
                    }
                    shared.gate.leave();
                }
            }
        }));
        if let Err(e) = started {
            return self.finish(Err(Error::io(
                ErrorKind::ResourceExhausted,
                "cannot start a thread to wait for the mutex",
                e,
            )));
        }
        self.state = State::Blocking(job);
        Poll::Pending
    }

    /// Ends without the lock: leaves the gate.
    fn finish(
        &mut self,
        result: Result<Option<AsyncMutexGuard<'a>>>,
    ) -> Poll<Result<Option<AsyncMutexGuard<'a>>>> {
        self.state = State::Finished;
        self.gate().leave();
        Poll::Ready(result)
    }
}

impl<'a> Future for LockFuture<'a> {
    type Output = Result<Option<AsyncMutexGuard<'a>>>;

    /// The uncontended case inline (one look beside the gate), the rest out of line.
    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let State::Start = this.state {
            if let Some(done) = this.try_beside_gate() {
                return done;
            }
        }
        this.poll_on(cx)
    }
}

impl<'a> LockFuture<'a> {
    /// [`LockFuture::poll`] past its first look.
    #[inline(never)]
    fn poll_on(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<AsyncMutexGuard<'a>>>> {
        loop {
            match &self.state {
                State::Start => {
                    if self.gate().try_enter() {
                        self.state = State::InGate;
                        continue;
                    }
                    if self.expired() {
                        self.state = State::Finished;
                        return Poll::Ready(Ok(None));
                    }
                    match self.gate().enter_or_queue(cx.waker()) {
                        Entry::Entered => self.state = State::InGate,
                        Entry::Queued(ticket) => self.state = State::Queued(ticket),
                    }
                }
                State::Queued(ticket) => {
                    let ticket = ticket.clone();
                    if ticket.granted_or_wait(cx.waker()) {
                        self.state = State::InGate;
                        continue;
                    }
                    let armed = if self.expired() {
                        Ok(false)
                    } else {
                        self.arm_timer(cx.waker()).map(|()| true)
                    };
                    if let Ok(true) = armed {
                        return Poll::Pending;
                    }
                    self.gate().leave_queue(&ticket);
                    self.state = State::Finished;
                    return Poll::Ready(armed.map(|_| None));
                }
                State::InGate => return self.acquire_in_gate(cx),
                State::Blocking(job) => {
                    let job = job.clone();
                    let mut outcome = job.outcome();
                    match std::mem::replace(&mut *outcome, Outcome::Taken) {
                        Outcome::Done(Ok(Some((status, claim)))) => {
                            self.state = State::Finished;
                            return Poll::Ready(Ok(Some(self.guard(status, claim, true))));
                        }
                        Outcome::Done(other) => {
                            drop(outcome);
                            return self.finish(other.map(|_| None));
                        }
                        Outcome::Waiting(_) | Outcome::Cancelled | Outcome::Taken => {
                            *outcome = Outcome::Waiting(cx.waker().clone());
                            return Poll::Pending;
                        }
                    }
                }
                State::Finished => panic!("LockFuture polled after it completed"),
            }
        }
    }
}

impl Drop for LockFuture<'_> {
    /// Nothing to do for a future that completed (or never ran): checked inline.
    #[inline(always)]
    fn drop(&mut self) {
        if !matches!(self.state, State::Start | State::Finished) {
            self.give_up();
        }
    }
}

impl LockFuture<'_> {
    /// Dropped before completing: gives up its place in the gate, or its helper's wait.
    #[inline(never)]
    fn give_up(&mut self) {
        match std::mem::replace(&mut self.state, State::Finished) {
            State::Start | State::Finished => {}
            State::Queued(ticket) => self.gate().leave_queue(&ticket),
            State::InGate => self.gate().leave(),
            State::Blocking(job) => {
                let mut outcome = job.outcome();
                match std::mem::replace(&mut *outcome, Outcome::Cancelled) {
                    // The helper finished and nobody took the result: give it back here.
                    Outcome::Done(result) => {
                        drop(outcome);
                        if let Ok(Some((_, claim))) = result {
                            let _ = RawMutex::undo_detached(&job.waiter, claim);
                        }
                        self.gate().leave();
                    }
                    // Still waiting: the helper gives back what it gets and leaves the gate.
                    _ => {
                        drop(outcome);
                        job.cancel.fire();
                    }
                }
            }
        }
    }
}

/// [`LockFuture`] without a timeout, resolving to the guard itself (what
/// [`NamedMutex::lock_async`] returns; no `async` block, so nothing is copied around it).
pub(crate) struct Unbounded<'a>(pub(crate) LockFuture<'a>);

impl<'a> Future for Unbounded<'a> {
    type Output = Result<AsyncMutexGuard<'a>>;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.get_mut().0)
            .poll(cx)
            .map(|r| r.map(|g| g.expect("a wait without a timeout does not time out")))
    }
}

impl fmt::Debug for LockFuture<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockFuture")
            .field("mutex", &self.mutex)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

/// Proof that the process holds a [`NamedMutex`] for one task; releases it when dropped, on
/// whichever thread that happens.
///
/// Unlike [`crate::MutexGuard`] it is `Send`: hold it across `.await`, let the task move
/// between worker threads, drop it anywhere. `'a` is the borrow of the handle
/// ([`NamedMutex::lock_async`]); an [`OwnedAsyncMutexGuard`]
/// ([`NamedMutex::lock_async_owned`]) holds an `Arc` instead, so it can be moved into a
/// spawned task or returned from a helper.
///
/// ```
/// use namedmutex::NamedMutex;
/// use std::sync::Arc;
///
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     let mut f = std::pin::pin!(f);
/// #     let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
/// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } std::thread::yield_now(); }
/// # }
/// let m = Arc::new(NamedMutex::create_unnamed(false)?);
/// let guard = block_on(m.lock_async_owned())?;
/// let moved = std::thread::spawn(move || {
///     assert!(!guard.abandoned());
///     drop(guard); // released on another thread: the process owned it, not a thread
/// });
/// moved.join().unwrap();
/// assert!(m.try_lock()?.is_some());
/// # Ok::<(), namedmutex::Error>(())
/// ```
#[must_use = "the mutex is released as soon as the guard is dropped"]
pub struct AsyncMutexGuard<'a> {
    mutex: MutexRef<'a>,
    claim: Option<Claim>,
    abandoned: bool,
    /// Acquired in the gate, which the release leaves.
    gated: bool,
    // Send, not Sync, on every platform (the Windows claim is a channel).
    _not_sync: PhantomData<std::cell::Cell<()>>,
}

/// An [`AsyncMutexGuard`] that holds its handle by `Arc`: `'static`, from
/// [`NamedMutex::lock_async_owned`] and [`NamedMutex::lock_async_for_owned`].
pub type OwnedAsyncMutexGuard = AsyncMutexGuard<'static>;

const _: () = {
    const fn assert_send<T: Send + 'static>() {}
    assert_send::<OwnedAsyncMutexGuard>();
    assert_send::<LockFuture<'static>>();
};

impl AsyncMutexGuard<'_> {
    /// Whether the previous owner ended while owning the mutex (`WAIT_ABANDONED`).
    ///
    /// ```
    /// # use namedmutex::NamedMutex;
    /// # use std::sync::Arc;
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     let mut f = std::pin::pin!(f);
    /// #     let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    /// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } std::thread::yield_now(); }
    /// # }
    /// let m = Arc::new(NamedMutex::create_unnamed(false)?);
    /// let other = m.try_clone()?;
    /// std::thread::spawn(move || std::mem::forget(other.lock().unwrap())).join().unwrap();
    /// assert!(block_on(m.lock_async())?.abandoned());
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    pub fn abandoned(&self) -> bool {
        self.abandoned
    }

    /// The mutex this guard holds.
    ///
    /// ```
    /// # use namedmutex::NamedMutex;
    /// # use std::sync::Arc;
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     let mut f = std::pin::pin!(f);
    /// #     let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    /// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } std::thread::yield_now(); }
    /// # }
    /// let m = NamedMutex::create_unnamed(false)?;
    /// let guard = block_on(m.lock_async())?;
    /// assert!(std::ptr::eq(guard.mutex(), &m));
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    pub fn mutex(&self) -> &NamedMutex {
        &self.mutex
    }

    /// The fencing token of this acquisition (see
    /// [`MutexGuard::fencing_token`](crate::MutexGuard::fencing_token)): `None` for a local
    /// mutex.
    ///
    /// ```
    /// # use namedmutex::NamedMutex;
    /// # use std::sync::Arc;
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     let mut f = std::pin::pin!(f);
    /// #     let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    /// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } std::thread::yield_now(); }
    /// # }
    /// let m = Arc::new(NamedMutex::create_unnamed(false)?);
    /// assert_eq!(block_on(m.lock_async())?.fencing_token(), None);
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    pub fn fencing_token(&self) -> Option<u64> {
        self.claim
            .as_ref()
            .and_then(<crate::sys::RawMutex as crate::sys::Backend>::claim_token)
    }

    /// Releases now and reports a failure, which dropping the guard cannot.
    ///
    /// ```
    /// # use namedmutex::NamedMutex;
    /// # use std::sync::Arc;
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     let mut f = std::pin::pin!(f);
    /// #     let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    /// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } std::thread::yield_now(); }
    /// # }
    /// let m = Arc::new(NamedMutex::create_unnamed(false)?);
    /// block_on(m.lock_async())?.release()?;
    /// # Ok::<(), namedmutex::Error>(())
    /// ```
    pub fn release(mut self) -> Result<()> {
        self.release_now()
    }

    #[inline(always)]
    fn release_now(&mut self) -> Result<()> {
        let Some(claim) = self.claim.take() else {
            return Ok(());
        };
        let result = self.mutex.raw().release_detached(claim);
        if self.gated {
            self.mutex.gate().leave();
        }
        result
    }
}

impl Drop for AsyncMutexGuard<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        crate::mutex::released_from_drop(self.release_now(), "an async guard");
    }
}

impl fmt::Debug for AsyncMutexGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncMutexGuard")
            .field("mutex", &self.mutex)
            .field("abandoned", &self.abandoned)
            .finish()
    }
}
