//! The handle table: C handles are numbers that name a slot and its generation, never
//! pointers, so a closed, foreign or garbage handle is found out (`ERROR_INVALID_HANDLE`)
//! instead of being dereferenced.
//!
//! A handle value is `generation << 32 | slot + 1`, the generation odd while the slot holds
//! a mutex; 0 is never a handle (NULL, as Win32's failed `CreateMutex`). Slots live in
//! chunks that are allocated once and never freed, so finding a slot needs no lock.
//!
//! # Using a handle without an atomic read-modify-write
//!
//! A call announces the handle it uses in its thread's *reader* record (a plain store), then
//! checks the slot's generation and uses the mutex, then clears the record. Closing changes
//! the generation, then runs an asymmetric barrier, then looks at every reader record: a
//! mutex some reader still announces is *retired* and dropped later, by whichever call
//! finds it unused; otherwise it is dropped at once. The barrier is the point: with
//! `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` on the closing side, the reader needs no
//! fence of its own (only the compiler must keep its store before its load), so either the
//! reader sees the new generation and gives up, or the closer sees the announcement. Where
//! `membarrier` is unavailable (other systems, seccomp, old kernels), both sides use
//! `SeqCst` fences. This is the same asymmetric pattern as the Linux backend's biased locking.
//!
//! So closing a handle while another thread waits on it works as on Windows: the wait goes
//! on with the object, which lives until that call returns.

use namedmutex::NamedMutex;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

const CHUNK: usize = 1024;
const CHUNKS: usize = 1024;

struct Slot {
    generation: AtomicU32,
    mutex: AtomicPtr<NamedMutex>,
}

static TABLE: [OnceLock<Box<[Slot]>>; CHUNKS] = [const { OnceLock::new() }; CHUNKS];

/// What only closers and creators touch, under one lock: free slots, the next never-used
/// one, and retired mutexes (handle value, pointer) that readers may still use.
struct Owners {
    free: Vec<usize>,
    next: usize,
    retired: Vec<(u64, *mut NamedMutex)>,
}

// SAFETY: the raw pointers in `retired` are owned boxes, moved between threads only under
// the lock; `NamedMutex` is `Send + Sync`.
unsafe impl Send for Owners {}

static OWNERS: Mutex<Owners> = Mutex::new(Owners {
    free: Vec::new(),
    next: 0,
    retired: Vec::new(),
});
/// Whether `retired` may be non-empty: readers look after each call (a relaxed load).
static RETIRED_PENDING: AtomicBool = AtomicBool::new(false);

fn owners() -> MutexGuard<'static, Owners> {
    OWNERS.lock().unwrap_or_else(|e| e.into_inner())
}

// ----- readers ---------------------------------------------------------------------------

/// What a thread is using: 0 (nothing), a handle value, or [`ALL`].
struct Reader {
    active: AtomicU64,
    taken: AtomicBool,
}

/// Announced by a call that uses several handles at once: keeps every retired mutex.
const ALL: u64 = u64::MAX;

static READERS: Mutex<Vec<&'static Reader>> = Mutex::new(Vec::new());

/// The calling thread's reader record, given back for reuse when the thread ends.
struct ThreadReader(Cell<Option<&'static Reader>>);

impl Drop for ThreadReader {
    fn drop(&mut self) {
        if let Some(r) = self.0.get() {
            r.active.store(0, Ordering::Release);
            r.taken.store(false, Ordering::Release);
        }
    }
}

thread_local! {
    static READER: ThreadReader = const { ThreadReader(Cell::new(None)) };
}

/// The reader record of one call: the thread's own, or (for a call made while the
/// thread's locals are being destroyed, from another thread-local's destructor) one of its
/// own, given back by [`done`].
#[derive(Clone, Copy)]
struct CallReader {
    record: &'static Reader,
    borrowed: bool,
}

#[inline]
fn reader() -> CallReader {
    READER
        .try_with(|tr| {
            let record = match tr.0.get() {
                Some(r) => r,
                None => {
                    let r = claim_reader();
                    tr.0.set(Some(r));
                    r
                }
            };
            CallReader {
                record,
                borrowed: false,
            }
        })
        .unwrap_or_else(|_| CallReader {
            record: claim_reader(),
            borrowed: true,
        })
}

/// Ends a call: clears the announcement, gives back a borrowed record, and drops what
/// closers retired if nobody uses it any more.
#[inline]
fn done(me: CallReader) {
    me.record.active.store(0, Ordering::Release);
    if me.borrowed {
        me.record.taken.store(false, Ordering::Release);
    }
    if RETIRED_PENDING.load(Ordering::Relaxed) {
        reclaim();
    }
}

#[cold]
fn claim_reader() -> &'static Reader {
    let mut all = READERS.lock().unwrap_or_else(|e| e.into_inner());
    for r in all.iter() {
        if r.taken
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            return r;
        }
    }
    // Records are never freed (one per thread alive at once, at most): a closer may be
    // reading any of them.
    let r: &'static Reader = Box::leak(Box::new(Reader {
        active: AtomicU64::new(0),
        taken: AtomicBool::new(true),
    }));
    all.push(r);
    r
}

// ----- the asymmetric barrier ------------------------------------------------------------

const UNKNOWN: u8 = 0;
/// Readers may skip their fence: closers use `membarrier`.
const EXPEDITED: u8 = 1;
/// Both sides use `SeqCst` fences.
const FENCES: u8 = 2;
static BARRIER: AtomicU8 = AtomicU8::new(UNKNOWN);

/// Decides the barrier mode once, before the first handle exists (so before any reader
/// can pass its check). Registering is the caller's cost, once per process.
fn init_barrier() {
    if BARRIER.load(Ordering::Acquire) != UNKNOWN {
        return;
    }
    #[cfg(target_os = "linux")]
    let mode = {
        use rustix::thread::{MembarrierCommand, membarrier};
        if membarrier(MembarrierCommand::RegisterPrivateExpedited).is_ok() {
            EXPEDITED
        } else {
            FENCES
        }
    };
    #[cfg(not(target_os = "linux"))]
    let mode = FENCES;
    BARRIER.store(mode, Ordering::Release);
}

/// The reader's half: between announcing a handle and checking its slot.
#[inline(always)]
fn light() {
    if BARRIER.load(Ordering::Relaxed) == EXPEDITED {
        std::sync::atomic::compiler_fence(Ordering::SeqCst);
    } else {
        std::sync::atomic::fence(Ordering::SeqCst);
    }
}

/// The closer's half: between changing a generation and reading the reader records.
/// False when the expedited barrier failed (a forked child that has not registered, say):
/// then nothing may be dropped yet.
fn heavy() -> bool {
    std::sync::atomic::fence(Ordering::SeqCst);
    if BARRIER.load(Ordering::Acquire) != EXPEDITED {
        return true;
    }
    #[cfg(target_os = "linux")]
    {
        use rustix::thread::{MembarrierCommand, membarrier};
        if membarrier(MembarrierCommand::PrivateExpedited).is_ok() {
            return true;
        }
        // Registration does not survive into a forked child: register, then try again.
        membarrier(MembarrierCommand::RegisterPrivateExpedited).is_ok()
            && membarrier(MembarrierCommand::PrivateExpedited).is_ok()
    }
    #[cfg(not(target_os = "linux"))]
    false
}

// ----- the table -------------------------------------------------------------------------

fn slot(index: usize) -> Option<&'static Slot> {
    TABLE
        .get(index / CHUNK)?
        .get()
        .and_then(|chunk| chunk.get(index % CHUNK))
}

fn split(value: u64) -> Option<(usize, u32)> {
    let index = (value & 0xFFFF_FFFF).checked_sub(1)? as usize;
    Some((index, (value >> 32) as u32))
}

/// Stores `mutex` and returns its new handle value; `None` when the table is full.
pub(crate) fn insert(mutex: NamedMutex) -> Option<u64> {
    init_barrier();
    let mut owners = owners();
    let index = match owners.free.pop() {
        Some(i) => i,
        None if owners.next < CHUNK * CHUNKS => {
            owners.next += 1;
            owners.next - 1
        }
        None => return None,
    };
    let chunk = TABLE[index / CHUNK].get_or_init(|| {
        (0..CHUNK)
            .map(|_| Slot {
                generation: AtomicU32::new(0),
                mutex: AtomicPtr::new(std::ptr::null_mut()),
            })
            .collect()
    });
    let slot = &chunk[index % CHUNK];
    // The pointer first (a release store: see `current`), then the (odd) generation that
    // makes it reachable.
    slot.mutex
        .store(Box::into_raw(Box::new(mutex)), Ordering::Release);
    let generation = slot.generation.load(Ordering::Relaxed).wrapping_add(1) | 1;
    slot.generation.store(generation, Ordering::Release);
    Some(u64::from(generation) << 32 | (index as u64 + 1))
}

/// The box in `slot` if the slot is still at `generation`.
///
/// The pointer is read *before* the generation is checked: the other order could pair the
/// right generation with the box a later `insert` put in the reused slot, which the
/// caller's announcement (of the old handle value) would not protect. Here a pointer from a
/// later `insert` (a release store after the close's generation change) makes the
/// generation load that follows see the change.
#[inline]
fn current(slot: &Slot, generation: u32) -> Option<*mut NamedMutex> {
    let p = slot.mutex.load(Ordering::Acquire);
    (slot.generation.load(Ordering::Acquire) == generation && !p.is_null()).then_some(p)
}

/// Runs `f` with the mutex behind handle `value`; `None` when it is not open.
#[inline]
pub(crate) fn with<R>(value: u64, f: impl FnOnce(&NamedMutex) -> R) -> Option<R> {
    let (index, generation) = split(value)?;
    let slot = slot(index)?;
    let me = reader();
    me.record.active.store(value, Ordering::Relaxed);
    light();
    let found = current(slot, generation).map(|p| {
        // SAFETY: `current` found the box of generation `generation` after we announced
        // `value`, so a closer either has not changed the generation yet (the box is alive)
        // or will see our announcement after its barrier and retire the box instead of
        // dropping it; it is dropped only once no reader announces `value` (module docs).
        f(unsafe { &*p })
    });
    done(me);
    found
}

/// Runs `f` with the mutexes behind several handles; `Err(value)` names the first one that
/// is not open.
pub(crate) fn with_all<R>(values: &[u64], f: impl FnOnce(&[&NamedMutex]) -> R) -> Result<R, u64> {
    let me = reader();
    me.record.active.store(ALL, Ordering::Relaxed);
    light();
    let mut mutexes = Vec::with_capacity(values.len());
    let mut bad = None;
    for &value in values {
        let found = split(value).and_then(|(index, generation)| current(slot(index)?, generation));
        match found {
            // SAFETY: as in `with`; announcing ALL keeps every retired box alive.
            Some(p) => mutexes.push(unsafe { &*p }),
            None => {
                bad = Some(value);
                break;
            }
        }
    }
    let result = match bad {
        None => Ok(f(&mutexes)),
        Some(value) => Err(value),
    };
    drop(mutexes);
    done(me);
    result
}

/// Closes a handle: false when it was not open.
pub(crate) fn remove(value: u64) -> bool {
    let Some((index, generation)) = split(value) else {
        return false;
    };
    let Some(slot) = slot(index) else {
        return false;
    };
    let mut owners = owners();
    if generation & 1 == 0 || slot.generation.load(Ordering::Relaxed) != generation {
        return false;
    }
    slot.generation
        .store(generation.wrapping_add(1), Ordering::Relaxed);
    let p = slot.mutex.swap(std::ptr::null_mut(), Ordering::Relaxed);
    owners.free.push(index);
    owners.retired.push((value, p));
    RETIRED_PENDING.store(true, Ordering::Relaxed);
    let dead = collect(&mut owners);
    drop(owners);
    drop(dead); // outside the lock: closing may take a file lock
    true
}

/// Drops the retired mutexes that no reader uses any more.
#[cold]
fn reclaim() {
    let mut owners = owners();
    let dead = collect(&mut owners);
    drop(owners);
    drop(dead);
}

/// Takes out of `owners.retired` what may be dropped now.
/// The mutexes are dropped by the caller, after it lets go of the lock.
#[allow(clippy::vec_box)] // boxes from `Box::from_raw`, dropped as they are
fn collect(owners: &mut Owners) -> Vec<Box<NamedMutex>> {
    if owners.retired.is_empty() || !heavy() {
        return Vec::new();
    }
    let readers = READERS.lock().unwrap_or_else(|e| e.into_inner());
    let in_use = |value: u64| {
        readers.iter().any(|r| {
            let a = r.active.load(Ordering::Acquire);
            a == value || a == ALL
        })
    };
    let mut dead = Vec::new();
    owners.retired.retain(|&(value, p)| {
        if in_use(value) {
            return true;
        }
        // SAFETY: `p` came from `Box::into_raw` in `insert`, its slot no longer leads to
        // it, and (after the barrier) no reader announces it: nobody else can reach it.
        dead.push(unsafe { Box::from_raw(p) });
        false
    });
    if owners.retired.is_empty() {
        RETIRED_PENDING.store(false, Ordering::Relaxed);
    }
    dead
}
