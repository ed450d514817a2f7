//! The handle table: C handles are numbers that name a slot and its generation, never
//! pointers, so a closed, foreign or garbage handle is found out (`ERROR_INVALID_HANDLE`)
//! instead of being dereferenced.
//!
//! A handle value is `generation << 32 | slot + 1`; 0 is never a handle (NULL, as Win32's
//! failed `CreateMutex`). Slots live in chunks that are allocated once and never freed, so
//! finding a slot needs no lock; each slot's own read-write lock guards its content. A call
//! clones the handle's `Arc` and drops the slot's lock before doing anything that may block,
//! so closing a handle while another thread waits on it works as on Windows: the wait goes
//! on with the object, which lives until that call returns.

use namedmutex::NamedMutex;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

const CHUNK: usize = 1024;
const CHUNKS: usize = 1024;

struct Slot {
    /// The generation the slot's current handle has; odd while it holds one.
    entry: RwLock<(u32, Option<Arc<NamedMutex>>)>,
}

static TABLE: [OnceLock<Box<[Slot]>>; CHUNKS] = [const { OnceLock::new() }; CHUNKS];
/// Free slots, and the next never-used one.
static FREE: Mutex<(Vec<usize>, usize)> = Mutex::new((Vec::new(), 0));

fn slot(index: usize) -> Option<&'static Slot> {
    TABLE
        .get(index / CHUNK)?
        .get()
        .and_then(|chunk| chunk.get(index % CHUNK))
}

fn chunk_slot(index: usize) -> Option<&'static Slot> {
    let chunk = TABLE.get(index / CHUNK)?.get_or_init(|| {
        (0..CHUNK)
            .map(|_| Slot {
                entry: RwLock::new((0, None)),
            })
            .collect()
    });
    chunk.get(index % CHUNK)
}

/// Stores `mutex` and returns its new handle value; `None` when the table is full.
pub(crate) fn insert(mutex: NamedMutex) -> Option<u64> {
    let index = {
        let mut free = FREE.lock().unwrap_or_else(|e| e.into_inner());
        match free.0.pop() {
            Some(i) => i,
            None if free.1 < CHUNK * CHUNKS => {
                free.1 += 1;
                free.1 - 1
            }
            None => return None,
        }
    };
    let slot = chunk_slot(index)?;
    let mut entry = slot.entry.write().unwrap_or_else(|e| e.into_inner());
    // Odd generations hold a handle; the next one after a close.
    entry.0 = entry.0.wrapping_add(1) | 1;
    entry.1 = Some(Arc::new(mutex));
    Some(u64::from(entry.0) << 32 | (index as u64 + 1))
}

fn split(value: u64) -> Option<(usize, u32)> {
    let index = (value & 0xFFFF_FFFF).checked_sub(1)? as usize;
    Some((index, (value >> 32) as u32))
}

/// The mutex behind a handle value, if it is open.
pub(crate) fn get(value: u64) -> Option<Arc<NamedMutex>> {
    let (index, generation) = split(value)?;
    let entry = slot(index)?.entry.read().unwrap_or_else(|e| e.into_inner());
    if entry.0 != generation {
        return None;
    }
    entry.1.clone()
}

/// Closes a handle: false when it was not open.
pub(crate) fn remove(value: u64) -> bool {
    let Some((index, generation)) = split(value) else {
        return false;
    };
    let Some(slot) = slot(index) else {
        return false;
    };
    let mutex = {
        let mut entry = slot.entry.write().unwrap_or_else(|e| e.into_inner());
        if entry.0 != generation || entry.1.is_none() {
            return false;
        }
        entry.0 = entry.0.wrapping_add(1); // even: no handle
        entry.1.take()
    };
    drop(mutex); // outside the slot's lock: closing may take a file lock
    FREE.lock().unwrap_or_else(|e| e.into_inner()).0.push(index);
    true
}
