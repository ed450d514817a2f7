//! The process's table of objects: one [`Object`] per object file (by device and inode),
//! which all of the process's handles to it share, with one mapping and one open file
//! description (what FORMAT.md's lifetime rule counts as the process's handle).
//!
//! Why the table's lock is held across a whole open (`open.rs`), from looking at the name
//! to entering the object: so that the lookup by (device, inode) and the insert are one step.
//! Two threads that open the same name at once then share one object; without the lock both
//! could miss, and the process would hold two descriptions and two mappings of one object,
//! which breaks the one-description rule (and the count of handles that tools read from the
//! kernel's lock table). The cost: opens in one process are serialised, each for the few
//! microseconds of its system calls; an open that must wait for another process (a file
//! being created or removed) releases the lock while it backs off.

use super::super::layout::ObjectPage;
use super::super::root::Root;
use super::Object;
use super::{Place, this_pid};
use rustix::fd::OwnedFd;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

pub(super) type Table = HashMap<(u64, u64), (u64, Weak<Object>)>;
static TABLE: Mutex<Option<Table>> = Mutex::new(None);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Runs `f` with the table locked.
pub(super) fn with_table<T>(f: impl FnOnce(&mut Table) -> T) -> T {
    let mut guard = TABLE.lock().unwrap_or_else(|p| p.into_inner());
    f(guard.get_or_insert_with(HashMap::new))
}

/// The live object of the file `key`, if this process has one.
pub(super) fn lookup(table: &Table, key: (u64, u64)) -> Option<Arc<Object>> {
    table.get(&key).and_then(|(_, weak)| weak.upgrade())
}

/// Enters a new object for the file `key` into the table.
pub(super) fn insert(
    table: &mut Table,
    page: ObjectPage,
    fd: OwnedFd,
    key: (u64, u64),
    root: &Arc<Root>,
    user: usize,
    place: Option<Place>,
) -> Arc<Object> {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let obj = Arc::new(Object {
        page,
        fd,
        key,
        root: root.clone(),
        registry: root.own_registry(),
        user_bits: crate::protocol::lock_word::user_part(user),
        place,
        ofd_pid: this_pid(),
        saw_death: AtomicBool::new(false),
        asleep_streak: AtomicU32::new(0),
        process_token: (AtomicU64::new(0), AtomicU32::new(0)),
        kept_for_owner: AtomicBool::new(false),
        handle_lock_dropped: AtomicBool::new(false),
        id,
    });
    table.insert(key, (id, Arc::downgrade(&obj)));
    obj
}

/// The live objects of `table` for which `pick` says yes, each held strongly. The others are
/// looked at without taking a strong reference, which would make their last handle's close
/// leave the object to whoever drops that reference later.
#[allow(unsafe_code)]
#[cfg_attr(
    all(target_os = "linux", not(feature = "portable-backend")),
    allow(dead_code)
)]
pub(super) fn picked(table: &Table, pick: impl Fn(&Object) -> bool) -> Vec<Arc<Object>> {
    let mut out = Vec::new();
    for (_, weak) in table.values() {
        if weak.strong_count() == 0 {
            continue; // closing: nobody owns it through this process any more
        }
        // SAFETY: the caller holds the table's lock. An object whose entry is in the table
        // has not finished dropping its fields: `Object::drop` takes this lock (to remove the
        // entry) before its fields are dropped, and its allocation lives while our `Weak`
        // does. So the pointer is to a whole `Object` for as long as the lock is held, even
        // if its last strong reference went meanwhile; `pick` only reads atomics of it.
        let obj = unsafe { &*weak.as_ptr() };
        if pick(obj) {
            if let Some(arc) = weak.upgrade() {
                out.push(arc);
            }
        }
    }
    out
}
