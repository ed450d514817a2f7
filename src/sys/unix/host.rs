//! The Linux host of the lock protocol (`crate::protocol`): an object's mapped page supplies
//! the shared words, the registries say whether an owner lives, futexes (`futex_waitv` on the
//! lock word and the owner's robust-futex lifeline) sleep and wake, `membarrier` is the heavy
//! barrier of biased locking, and `CLOCK_MONOTONIC` the clock.

use super::clock;
use super::futex;
use super::layout::ObjectPage;
use super::lifeline::Lifeline;
use super::object::Object;
use super::polling::Polling;
use super::registry::Liveness;
use super::root::Root;
use crate::protocol::{Host, LockWord, Owner, Wake, Watch};
use rustix::time::Timespec;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, compiler_fence};
use std::time::Duration;

/// The longest a sleeper sleeps before re-checking on its own.
const BACKSTOP: Duration = Duration::from_millis(250);

/// Whether sleeps have a backstop: `NAMEDMUTEX_TEST_NO_BACKSTOP=1` takes it away, so that a
/// test of a wake-up path (a death reported by the kernel) hangs, and so fails by its
/// watchdog, if that path is broken, instead of passing late through the backstop.
fn backstop() -> Option<Duration> {
    static OFF: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let off = *OFF
        .get_or_init(|| std::env::var_os("NAMEDMUTEX_TEST_NO_BACKSTOP").is_some_and(|v| v == "1"));
    (!off).then_some(BACKSTOP)
}

/// The owner `word` names, as far as this process can tell, for a page that may not be
/// open as an [`Object`] (a stale one).
pub(super) fn owner_in(page: &ObjectPage, root: &Root, word: LockWord) -> Owner<Lifeline> {
    if word.is_given_up() {
        return Owner::Dead; // given up on purpose: names no thread
    }
    let Some(uid) = page.user(word.user()) else {
        return Owner::Dead; // a token naming nobody: no live thread can own it
    };
    let Some(registry) = root.registry_of(uid) else {
        return Owner::Unknown;
    };
    match registry.liveness(word.slot_plus_one(), word.generation()) {
        Liveness::Dead => Owner::Dead,
        Liveness::Alive { lifeline, value } => Owner::Alive { lifeline, value },
    }
}

impl Host for Object {
    type U32 = AtomicU32;
    type U64 = AtomicU64;
    type Lifeline = Lifeline;
    type Deadline = Timespec;
    type Polling = Polling;

    #[inline(always)]
    fn lock_word(&self) -> &AtomicU64 {
        self.page.lock_word()
    }
    #[inline(always)]
    fn count(&self) -> &AtomicU32 {
        self.page.count()
    }
    #[inline(always)]
    fn sleepers(&self) -> &AtomicU32 {
        self.page.sleepers()
    }
    #[inline(always)]
    fn fresh(&self) -> &AtomicU32 {
        self.page.fresh()
    }
    #[inline(always)]
    fn bias_depth(&self) -> &AtomicU32 {
        self.page.bias_depth()
    }
    fn order_key(&self) -> (u64, u64) {
        self.key
    }

    fn owner(&self, word: LockWord) -> Owner<Lifeline> {
        owner_in(&self.page, &self.root, word)
    }

    #[inline]
    fn wake(&self, n: u32) {
        futex::wake(self.page.futex_word(), n);
    }
    fn wake_watchers(&self, lifeline: Lifeline) {
        lifeline.wake_watchers();
    }
    fn sleep(watches: &[Watch<'_, Object>], until: Option<Timespec>) -> Wake {
        futex::sleep(watches, until)
    }
    #[inline]
    fn deadline_after(timeout: Option<Duration>) -> Option<Timespec> {
        clock::deadline_after(timeout)
    }
    fn passed(deadline: Timespec) -> bool {
        !clock::is_before(clock::now(), deadline)
    }
    fn sleep_until(deadline: Option<Timespec>) -> Option<Timespec> {
        clock::earliest(deadline, clock::deadline_after(backstop()))
    }
    fn start_polling(&self) -> Polling {
        Polling::for_mutex(self.asleep_streak.load(Ordering::Relaxed))
    }
    fn poll(
        &self,
        polling: &mut Polling,
        cur: LockWord,
        owner: Owner<Lifeline>,
        expired: impl Fn() -> bool,
    ) -> bool {
        polling.until_change(self.page.lock_word(), cur, owner, expired)
    }
    /// Remembers whether this wait ended asleep, for the next one's polling. Written only
    /// when it changes: under contention every thread of the process ends its waits here,
    /// and a store would take the cache line (shared with the fields every `wait` reads)
    /// from all of them.
    fn finish_wait(&self, slept: bool) {
        let streak = &self.asleep_streak;
        let old = streak.load(Ordering::Relaxed);
        let new = if slept { old.saturating_add(1) } else { 0 };
        if new != old {
            streak.store(new, Ordering::Relaxed);
        }
    }

    #[inline]
    fn bias_allowed() -> bool {
        super::barrier::bias_allowed()
    }
    /// A compiler fence: `membarrier` on the revoker's side makes every running thread of
    /// a registered process execute a full barrier, so the hardware order needs nothing here.
    #[inline(always)]
    fn light_barrier() {
        compiler_fence(Ordering::SeqCst);
    }
    fn heavy_barrier() {
        super::barrier::heavy();
    }

    /// Notes who abandoned the mutex.
    fn record_abandonment(&self, dead: LockWord) {
        self.saw_death();
        let page = &self.page;
        page.abandon_count().fetch_add(1, Ordering::Relaxed);
        if dead.is_given_up() {
            return; // its giver recorded itself and its note (see `lock::abandon`)
        }
        let who = page
            .user(dead.user())
            .and_then(|uid| self.root.registry_of(uid))
            .and_then(|r| r.owner(dead.slot_plus_one()))
            .unwrap_or_default();
        let (pid, tid) = page.last_abandoner();
        pid.store(who.pid, Ordering::Relaxed);
        tid.store(who.tid, Ordering::Relaxed);
        page.set_abandon_note("");
    }
    fn unrecord_abandonment(&self) {
        self.page.abandon_count().fetch_sub(1, Ordering::Relaxed);
    }
    fn note_acquired(&self) {
        self.page
            .acquired_ns()
            .store(super::clock::realtime_ns(), Ordering::Relaxed);
    }
    #[inline(always)]
    fn clear_acquired(&self) {
        self.page.acquired_ns().store(0, Ordering::Relaxed);
    }

    #[inline(always)]
    fn crash_point(name: &'static str) {
        super::fault::point(name);
    }
    #[inline(always)]
    fn stall_point(name: &'static str) {
        super::fault::stall(name);
    }
}
