//! Acquiring and releasing: the mutex algorithm on an object's lock word.
//!
//! The lock word (see `lock_word.rs`) holds the owner's token, or 0 when free. Uncontended,
//! acquiring is one compare-and-swap of 0 to our token, and releasing one swap back to 0.
//! The recursion count beside it is written only by the owner. Before any contention a mutex
//! may instead be *biased* to the thread that keeps taking it, which then needs no atomic
//! read-modify-write at all: `bias.rs` has that protocol, and this module hands biased words
//! to it (the biased thread's own fast paths are inlined into `wait` and `release`).
//!
//! A waiter first polls: it gives its CPU away with `sched_yield` a bounded number of times,
//! watching the word in between (`Polling::until_change` says why yielding beats spinning),
//! unless its recent waits on that mutex all ended asleep anyway (`Polling::for_mutex`).
//! A waiter that must then block sets `WAITERS` in the word and sleeps, with `futex_waitv`, on
//! two words at once: the lock word (a release changes it and wakes one sleeper) and the
//! owner's lifeline (the kernel changes it and wakes a sleeper when the owner dies, see
//! `lifeline.rs`). So a death is noticed at once, without polling; a sleeper woken that way
//! wakes the others watching the same lifeline. A waiter that takes a dead owner's mutex
//! gets `Abandoned`; the compare-and-swap that replaces the dead token lets exactly one
//! acquirer see it.
//!
//! Sleepers after a hand-off may still watch the previous owner's lifeline, so whoever
//! acquires after sleeping, or after an abandonment, wakes one sleeper (all, for an
//! abandonment) to re-target. A bounded sleep (`BACKSTOP`) covers the cases no wake-up can:
//! a woken sleeper killed before it could pass the wake on.

use super::bias::{self, Revoked};
use super::futex::{self, Wake};
use super::layout::ObjectPage;
use super::lock_word::{self as lock, BIASABLE, MAX_COUNT, WAITERS};
use super::object::Object;
use super::registry::Liveness;
use super::root::Root;
use crate::error::{Error, ErrorKind, Result};
use crate::wait_status::WaitStatus;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// The longest a sleeper sleeps before re-checking on its own.
const BACKSTOP: Duration = Duration::from_millis(250);
/// How many times a waiter gives up its CPU (`sched_yield`), watching the lock word in
/// between, before it goes to sleep in the kernel. About 11 µs on an idle core here (a
/// yield costs 170 ns), longer when other threads want the CPU: they run meanwhile.
const YIELDS: u32 = 64;
/// The longest a waiter polls before it sleeps, however many yields are left: on a busy
/// machine one yield can last a whole time slice of another thread.
const POLL_LIMIT: Duration = Duration::from_micros(200);
/// After this many waits in a row on one mutex ended asleep anyway, a process stops
/// polling on it (the mutex is held long: polling only burns CPU, and a busier waiter is
/// woken later after an owner's death, see bench/README.md "Abandonment")...
const ASLEEP_STREAK: u32 = 8;
/// ...except on every this many-th wait, which polls to find out whether that has changed.
const PROBE_EVERY: u32 = 16;

/// Waits for `obj` (the caller checked the handle's access).
#[inline(always)]
pub(super) fn wait(obj: &Object, timeout: Option<Duration>) -> Result<WaitStatus> {
    // The biased thread's path, small enough to inline into the caller.
    let known = obj.existing_token();
    if let Some(me) = known {
        if obj.page.lock_word().load(Ordering::Relaxed) == me | lock::BIASED
            && bias::try_acquire(obj, me, me | lock::BIASED)
        {
            return Ok(WaitStatus::Acquired);
        }
    }
    wait_unbiased(obj, known, timeout, true)
}

/// Waits for `obj` without taking a bias: for a handle whose acquisitions are timed, which
/// would unbias at once (`note_acquired`), so that its process does not pay for registering
/// the barrier biasing needs (`barrier.rs`: a `membarrier` call and a look at
/// `/proc/self/stat`, which the `namedmutex` command would pay at every start).
pub(super) fn wait_without_bias(obj: &Object, timeout: Option<Duration>) -> Result<WaitStatus> {
    wait_unbiased(obj, obj.existing_token(), timeout, false)
}

/// `known`: the calling thread's token when `wait` found it (saves a second look).
/// `may_bias`: a fresh mutex may be taken with a bias.
#[inline(never)]
fn wait_unbiased(
    obj: &Object,
    known: Option<u64>,
    timeout: Option<Duration>,
    may_bias: bool,
) -> Result<WaitStatus> {
    let me = match known {
        Some(me) => me,
        None => obj.token()?,
    };
    let word = obj.page.lock_word();
    // Look before the compare-and-swap: a recursive acquisition then costs no atomic
    // read-modify-write (only the owner can have written its own token).
    let cur = word.load(Ordering::Relaxed);
    // `wait` took our own exact biased word; what is left for the bias is a fresh mutex.
    if cur == BIASABLE {
        if may_bias && bias::try_acquire(obj, me, cur) {
            return Ok(WaitStatus::Acquired);
        }
        // This process may not bias (yet, or at all: `NAMEDMUTEX_BIAS=0`, `membarrier`
        // refused): own it as an ordinary mutex that stays biasable (FRESH), with one CAS,
        // as `attempt` would but without its clock read.
        if word
            .compare_exchange(BIASABLE, me, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            super::fault::point("lock.after_cas");
            obj.page.count().store(1, Ordering::Relaxed);
            obj.page.fresh().store(1, Ordering::Relaxed);
            return Ok(WaitStatus::Acquired);
        }
    } else if cur == 0 {
        if word
            .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            super::fault::point("lock.after_cas");
            obj.page.count().store(1, Ordering::Relaxed);
            return Ok(WaitStatus::Acquired);
        }
    } else if lock::token(cur) == me {
        let count = obj.page.count().load(Ordering::Relaxed);
        if (1..MAX_COUNT).contains(&count) {
            obj.page.count().store(count + 1, Ordering::Relaxed);
            return Ok(WaitStatus::Acquired);
        }
    }
    wait_slow(obj, me, timeout)
}

/// The owner the lock word names, as far as this process can tell.
#[derive(Clone, Copy)]
pub(super) enum Owner {
    Dead,
    Alive {
        lifeline: &'static AtomicU32,
        value: u32,
    },
    /// Its registry cannot be read: poll with the backstop.
    Unknown,
}

pub(super) fn owner_of(obj: &Object, word: u64) -> Owner {
    owner_in(&obj.page, &obj.root, word)
}

/// [`owner_of`] for a page that may not be open as an [`Object`] (a stale one).
pub(super) fn owner_in(page: &ObjectPage, root: &Root, word: u64) -> Owner {
    if lock::token(word) == lock::ABANDONED {
        return Owner::Dead; // given up on purpose: names no thread
    }
    let Some(uid) = page.user(lock::user(word)) else {
        return Owner::Dead; // a token naming nobody: no live thread can own it
    };
    let Some(registry) = root.registry_of(uid) else {
        return Owner::Unknown;
    };
    match registry.liveness(lock::slot_plus_one(word), lock::generation(word)) {
        Liveness::Dead => Owner::Dead,
        Liveness::Alive { lifeline, value } => Owner::Alive { lifeline, value },
    }
}

/// How to take back an acquisition (a wait-all that could not get everything).
#[derive(Clone, Copy)]
pub(super) enum Undo {
    /// It was free: release it.
    Release,
    /// We already owned it: one recursion less.
    Recursion,
    /// Its owner had died: give it back to the dead owner, so that the next acquirer
    /// still learns of the abandonment.
    Abandoned(u64),
}

/// The result of one attempt that does not block.
pub(super) enum Attempt {
    Got(WaitStatus, Undo),
    Busy { cur: u64, owner: Owner },
}

/// Tries once to acquire `obj` for the token `me`, without blocking. `slept` says whether
/// the caller has slept in this wait (then it passes a wake-up on to other sleepers).
pub(super) fn attempt(obj: &Object, me: u64, slept: bool) -> Result<Attempt> {
    let page = &obj.page;
    let word = page.lock_word();
    loop {
        let cur = word.load(Ordering::Acquire);
        if lock::is_free(cur) {
            let sleepers = page.sleepers().load(Ordering::Relaxed);
            let new = me | if sleepers > 0 { WAITERS } else { 0 };
            if word
                .compare_exchange(cur, new, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                super::fault::point("lock.after_cas");
                page.count().store(1, Ordering::Relaxed);
                if cur == BIASABLE {
                    // This process may not bias yet: keep the mutex biasable (see FRESH).
                    page.fresh().store(1, Ordering::Relaxed);
                }
                page.acquired_ns()
                    .store(super::clock::realtime_ns(), Ordering::Relaxed);
                if slept && sleepers > 0 {
                    futex::wake(page.futex_word(), 1); // re-target one sleeper to us
                }
                return Ok(Attempt::Got(WaitStatus::Acquired, Undo::Release));
            }
            continue;
        }
        if lock::token(cur) == me {
            let count = page.count().load(Ordering::Relaxed);
            if count >= MAX_COUNT {
                return Err(Error::new(
                    ErrorKind::RecursionLimit,
                    format!("the calling thread already holds the mutex {MAX_COUNT} times"),
                ));
            }
            page.count().store(count.max(1) + 1, Ordering::Relaxed);
            return Ok(Attempt::Got(WaitStatus::Acquired, Undo::Recursion));
        }
        let biased = lock::is_biased(cur);
        if biased && lock::bias_holder(cur) == me {
            bias::unbias(obj, me); // ours: make it ordinary ownership (or free), look again
            continue;
        }
        let owner = owner_of(obj, cur);
        if let Owner::Dead = owner {
            // A thread the mutex was biased to owned it only if its depth says so.
            let abandoned = !biased || bias::dead_holder_held(obj);
            let sleepers = page.sleepers().load(Ordering::Relaxed);
            let new = me | if sleepers > 0 { WAITERS } else { 0 };
            if word
                .compare_exchange(cur, new, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                if abandoned {
                    record_abandonment(obj, cur);
                }
                page.fresh().store(0, Ordering::Relaxed);
                super::fault::point("lock.after_abandon_cas");
                page.count().store(1, Ordering::Relaxed);
                page.acquired_ns()
                    .store(super::clock::realtime_ns(), Ordering::Relaxed);
                if sleepers > 0 {
                    futex::wake(page.futex_word(), u32::MAX >> 1); // all re-target to us
                }
                return Ok(if abandoned {
                    Attempt::Got(WaitStatus::Abandoned, Undo::Abandoned(cur))
                } else {
                    Attempt::Got(WaitStatus::Acquired, Undo::Release)
                });
            }
            continue;
        }
        if biased {
            match bias::revoke(obj, cur) {
                Revoked::Changed => continue,
                Revoked::Held(cur) => return Ok(Attempt::Busy { cur, owner }),
            }
        }
        return Ok(Attempt::Busy { cur, owner });
    }
}

/// Takes back an acquisition made by [`attempt`].
pub(super) fn undo(obj: &Object, undo: Undo) -> Result<()> {
    let page = &obj.page;
    match undo {
        Undo::Release => release(obj),
        Undo::Recursion => {
            let count = page.count().load(Ordering::Relaxed);
            page.count()
                .store(count.saturating_sub(1).max(1), Ordering::Relaxed);
            Ok(())
        }
        Undo::Abandoned(dead) => {
            page.abandon_count().fetch_sub(1, Ordering::Relaxed);
            page.count().store(0, Ordering::Relaxed);
            let word = page.lock_word();
            let mut cur = word.load(Ordering::Relaxed);
            // Only the owner changes the word, apart from others setting WAITERS.
            while let Err(actual) = word.compare_exchange(
                cur,
                lock::token(dead) | (cur & WAITERS),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                cur = actual;
            }
            if page.sleepers().load(Ordering::Acquire) > 0 {
                futex::wake(page.futex_word(), 1);
            }
            Ok(())
        }
    }
}

/// Sets `WAITERS` in the lock word if `cur` lacks it; returns the futex value to sleep on,
/// or `None` when the word changed meanwhile (look again).
pub(super) fn announce_sleeper(obj: &Object, cur: u64) -> Option<u32> {
    let expected = cur | WAITERS;
    if cur & WAITERS == 0
        && obj
            .page
            .lock_word()
            .compare_exchange(cur, expected, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return None;
    }
    Some(expected as u32)
}

/// The deadline of one sleep: the caller's, but at most [`BACKSTOP`] away.
pub(super) fn sleep_until(
    deadline: Option<rustix::time::Timespec>,
) -> Option<rustix::time::Timespec> {
    futex::earliest(deadline, futex::deadline_after(Some(BACKSTOP)))
}

#[cold]
fn wait_slow(obj: &Object, me: u64, timeout: Option<Duration>) -> Result<WaitStatus> {
    wait_for(obj, me, timeout, None).map(|(status, _)| status)
}

/// Waits until `me` owns `obj`, the timeout passes, or `cancel` (a word the sleep also
/// watches) becomes non-zero, which ends the wait as a timeout does. Returns how the wait
/// ended and, when it acquired, how to take the acquisition back.
///
/// Inlined into `wait_slow`, where `cancel` is `None` and drops out: as an outlined call
/// the contended path measured about 4% slower (bench scenario 4 at 4 processes, A/B runs
/// alternating with the build before async support).
#[inline]
pub(super) fn wait_for(
    obj: &Object,
    me: u64,
    timeout: Option<Duration>,
    cancel: Option<&AtomicU32>,
) -> Result<(WaitStatus, Option<Undo>)> {
    let page = &obj.page;
    let deadline = futex::deadline_after(timeout);
    let poll = timeout == Some(Duration::ZERO);
    let mut slept = false;
    let mut polling = Polling::for_mutex(obj.asleep_streak.load(Ordering::Relaxed));
    // Remembers whether this wait ended asleep, for the next one's polling. Written only
    // when it changes: under contention every thread of the process ends its waits here,
    // and a store would take the cache line (shared with the fields every `wait` reads) from
    // all of them.
    let note = |slept: bool| {
        let streak = &obj.asleep_streak;
        let old = streak.load(Ordering::Relaxed);
        let new = if slept { old.saturating_add(1) } else { 0 };
        if new != old {
            streak.store(new, Ordering::Relaxed);
        }
    };
    loop {
        let (cur, owner) = match attempt(obj, me, slept)? {
            Attempt::Got(status, undo) => {
                note(slept);
                return Ok((status, Some(undo)));
            }
            Attempt::Busy { cur, owner } => (cur, owner),
        };
        let cancelled = || cancel.is_some_and(|c| c.load(Ordering::Acquire) != 0);
        let expired =
            || cancelled() || deadline.is_some_and(|d| !futex::is_before(futex::now(), d));
        if poll || expired() {
            give_up(obj);
            if slept {
                note(true);
            }
            return Ok((WaitStatus::TimedOut, None));
        }
        if polling.until_change(page.lock_word(), cur, owner, expired) {
            continue; // the word changed, the owner died, or the deadline passed: look again
        }
        let Some(expected) = announce_sleeper(obj, cur) else {
            continue;
        };
        let until = sleep_until(deadline);
        page.sleepers().fetch_add(1, Ordering::AcqRel);
        // The futex word is the low half of the lock word.
        // The futex word first: without `futex_waitv` only the first word is slept on.
        let mut words = [(page.futex_word(), expected); 3];
        let mut n = 1;
        if let Owner::Alive { lifeline, value } = owner {
            words[n] = (lifeline, value);
            n += 1;
        }
        if let Some(cancel) = cancel {
            words[n] = (cancel, 0);
            n += 1;
        }
        let woke = futex::wait(&words[..n], until);
        page.sleepers().fetch_sub(1, Ordering::AcqRel);
        slept = true;
        if let (Wake::Word(1), Owner::Alive { lifeline, .. }) = (woke, owner) {
            // The owner died and the kernel woke only us: wake everyone else watching it.
            futex::wake(lifeline, u32::MAX >> 1);
        }
    }
}

/// A waiter's polling phase, before it sleeps: at most [`YIELDS`] yields and
/// [`POLL_LIMIT`] in all, over however many looks at the mutex.
struct Polling {
    yields: u32,
    until: Option<rustix::time::Timespec>,
}

impl Polling {
    /// The polling of a wait on a mutex whose last `asleep_streak` waits here ended asleep:
    /// none, once that streak is long, apart from a probe now and then. (Under contention
    /// almost every wait ends while polling: of the 16.4 million waits that reached this
    /// path in one counted run of bench/ scenario 4, 933 ended asleep.)
    fn for_mutex(asleep_streak: u32) -> Polling {
        let skip = asleep_streak >= ASLEEP_STREAK && asleep_streak % PROBE_EVERY != 0;
        Polling {
            yields: if skip { YIELDS } else { 0 },
            until: None,
        }
    }

    /// Gives the CPU away (`sched_yield`) while `word` still holds `cur` and the owner's
    /// lifeline says it lives, for what is left of the budget; true when something changed
    /// or `expired` says the caller's deadline passed, false when the budget ran out.
    ///
    /// Why yield rather than spin with `pause`: measured with bench/ (scenario 4,
    /// bench/README.md), a waiter that spins on the CPU takes the lock the moment its owner
    /// releases it, so the lock and the data it guards move between cores on every
    /// acquisition, and with more contenders than cores a spinner also holds a CPU that the
    /// owner, preempted, may need. A yield returns at once on an idle core (so a lone waiter
    /// still sees a release within about 200 ns, two orders of magnitude sooner than a futex
    /// wake-up), and otherwise lets the others run. Replacing four 100-pause spins and four
    /// yields with 64 yields raised throughput at 4 processes on 2 cores from 2.3 to 2.7 M/s,
    /// and at 8 from 2.4 to 3.1–3.3 M/s.
    fn until_change(
        &mut self,
        word: &AtomicU64,
        cur: u64,
        owner: Owner,
        expired: impl Fn() -> bool,
    ) -> bool {
        let until = *self
            .until
            .get_or_insert_with(|| futex::deadline_after(Some(POLL_LIMIT)).unwrap_or(futex::now()));
        while self.yields < YIELDS {
            self.yields += 1;
            std::thread::yield_now();
            super::fault::polled_once();
            if word.load(Ordering::Relaxed) != cur || expired() {
                return true;
            }
            if let Owner::Alive { lifeline, value } = owner {
                if lifeline.load(Ordering::Relaxed) != value {
                    return true; // the owner died: take the mutex now, not after a sleep
                }
            }
            if !futex::is_before(futex::now(), until) {
                self.yields = YIELDS;
            }
        }
        false
    }
}

/// Leaving on timeout: if we may have consumed a wake-up meant for the next sleeper, or
/// others sleep watching a stale owner, pass one on, and make sure the owner's release
/// wakes them.
pub(super) fn give_up(obj: &Object) {
    let page = &obj.page;
    if page.sleepers().load(Ordering::Acquire) == 0 {
        return;
    }
    let word = page.lock_word();
    let mut cur = word.load(Ordering::Relaxed);
    while !lock::is_free(cur) && cur & WAITERS == 0 {
        match word.compare_exchange(cur, cur | WAITERS, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => break,
            Err(actual) => cur = actual,
        }
    }
    futex::wake(page.futex_word(), 1);
}

/// Records now as the time the calling thread acquired `obj`, if it has just taken its
/// first level of ownership (for `MutexOptions::time_acquisitions`: acquisitions that did
/// not wait record no time, to keep them fast). A biased hold is made ordinary first, so
/// that its release clears the time again (a biased release writes nothing shared).
pub(super) fn note_acquired(obj: &Object) {
    let Some(me) = obj.existing_token() else {
        return;
    };
    bias::unbias(obj, me); // no-op unless the word is biased to us
    let page = &obj.page;
    if lock::token(page.lock_word().load(Ordering::Acquire)) == me
        && page.count().load(Ordering::Relaxed) == 1
    {
        page.acquired_ns()
            .store(super::clock::realtime_ns(), Ordering::Relaxed);
    }
}

/// Notes who abandoned the mutex (diagnostics; never used to decide anything).
fn record_abandonment(obj: &Object, dead: u64) {
    obj.saw_death();
    let page = &obj.page;
    page.abandon_count().fetch_add(1, Ordering::Relaxed);
    if lock::token(dead) == lock::ABANDONED {
        return; // its giver recorded itself and its note (see `abandon`)
    }
    let who = page
        .user(lock::user(dead))
        .and_then(|uid| obj.root.registry_of(uid))
        .and_then(|r| r.owner(lock::slot_plus_one(dead)))
        .unwrap_or_default();
    let (pid, tid) = page.last_abandoner();
    pid.store(who.pid, Ordering::Relaxed);
    tid.store(who.tid, Ordering::Relaxed);
    page.set_abandon_note("");
}

/// Gives the mutex up the way a crash would, with `note` saying why: the next acquirer
/// gets `WAIT_ABANDONED`, and finds this process and thread recorded as the abandoner. The
/// calling thread must own it (at any recursion depth; all of it is given up).
pub(super) fn abandon(obj: &Object, note: &str) -> Result<()> {
    let Some(me) = obj.existing_token() else {
        return Err(not_owner());
    };
    let page = &obj.page;
    let word = page.lock_word();
    bias::unbias(obj, me); // a biased hold becomes ordinary ownership first (no-op otherwise)
    let mut cur = word.load(Ordering::Acquire);
    if lock::token(cur) != me {
        return Err(not_owner());
    }
    let (pid, tid) = page.last_abandoner();
    pid.store(
        rustix::process::getpid().as_raw_nonzero().get() as u32,
        Ordering::Relaxed,
    );
    tid.store(
        rustix::thread::gettid().as_raw_nonzero().get() as u32,
        Ordering::Relaxed,
    );
    page.set_abandon_note(note);
    page.fresh().store(0, Ordering::Relaxed);
    page.acquired_ns().store(0, Ordering::Relaxed);
    super::fault::point("abandon.before_swap");
    // Only the owner changes the word, apart from others setting WAITERS.
    while let Err(actual) = word.compare_exchange(
        cur,
        lock::ABANDONED | (cur & WAITERS),
        Ordering::Release,
        Ordering::Relaxed,
    ) {
        cur = actual;
    }
    if cur & WAITERS != 0 || page.sleepers().load(Ordering::Acquire) > 0 {
        futex::wake(page.futex_word(), u32::MAX >> 1); // all look again and find it abandoned
    }
    Ok(())
}

/// Whether the page's owner died holding it and no acquirer has been told yet (so an
/// object kept for its report must stay). An owner whose liveness cannot be read counts as
/// dead: keeping a file too long is the lesser harm than losing a report.
pub(super) fn unreported_abandonment(page: &ObjectPage, root: &Root) -> bool {
    let word = page.lock_word().load(Ordering::Acquire);
    if lock::is_free(word) {
        return false;
    }
    if lock::is_biased(word) && page.bias_depth().load(Ordering::Acquire) == 0 {
        return false; // biased to a thread that did not hold it
    }
    !matches!(owner_in(page, root, word), Owner::Alive { .. })
}

/// Releases `obj` once on behalf of the calling thread.
#[inline(always)]
pub(super) fn release(obj: &Object) -> Result<()> {
    // The biased thread's path, small enough to inline into the caller.
    let Some(me) = obj.existing_token() else {
        return Err(not_owner()); // a thread never registered owns nothing
    };
    if obj.page.lock_word().load(Ordering::Relaxed) == me | lock::BIASED {
        return if bias::release(obj, me) {
            Ok(())
        } else {
            Err(not_owner())
        };
    }
    release_unbiased(obj, me)
}

#[inline(never)]
fn release_unbiased(obj: &Object, me: u64) -> Result<()> {
    release_as(obj, me)
}

/// Releases `obj` once on behalf of the owner token `me` (a thread's, or the process
/// owner's of `detached.rs`).
#[inline]
pub(super) fn release_as(obj: &Object, me: u64) -> Result<()> {
    let page = &obj.page;
    let word = page.lock_word();
    let cur = word.load(Ordering::Relaxed);
    if lock::token(cur) != me {
        // `release` took the exact biased word; here ours can only carry a request (WAITERS).
        if lock::is_biased(cur) && lock::bias_holder(cur) == me {
            // Asked to give up the bias: become an ordinary owner first (or find we own nothing).
            bias::unbias(obj, me);
            if lock::token(word.load(Ordering::Relaxed)) != me {
                return Err(not_owner());
            }
        } else {
            return Err(not_owner());
        }
    }
    let count = page.count().load(Ordering::Relaxed);
    if count > 1 {
        page.count().store(count - 1, Ordering::Relaxed);
        return Ok(());
    }
    // COUNT means something only while the word names an owner: no need to clear it.
    page.acquired_ns().store(0, Ordering::Relaxed);
    super::fault::point("unlock.before_swap");
    if page.fresh().load(Ordering::Relaxed) != 0 {
        release_fresh(obj, me);
        return Ok(());
    }
    let old = word.swap(0, Ordering::Release);
    if old & WAITERS != 0 {
        futex::wake(page.futex_word(), 1);
    }
    Ok(())
}

/// The last release of a mutex nobody else has wanted yet: back to `BIASABLE`, unless a
/// waiter showed up (then it is an ordinary mutex from now on). Every release of a process
/// that may not bias comes here: inlined, it costs what the ordinary swap does.
#[inline]
fn release_fresh(obj: &Object, me: u64) {
    let page = &obj.page;
    let word = page.lock_word();
    if word
        .compare_exchange(me, BIASABLE, Ordering::Release, Ordering::Relaxed)
        .is_ok()
    {
        return;
    }
    page.fresh().store(0, Ordering::Relaxed);
    let old = word.swap(0, Ordering::Release);
    if old & WAITERS != 0 {
        futex::wake(page.futex_word(), 1);
    }
}

#[cold]
fn not_owner() -> Error {
    Error::new(
        ErrorKind::NotOwner,
        "the calling thread does not own the mutex (ReleaseMutex by a non-owner)",
    )
}
