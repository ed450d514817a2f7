//! A thread's end: the mutexes it owns are abandoned, and its slots retired, by a
//! thread-local destructor that runs in the ending thread (no kernel in this flavour reports
//! a thread's death to other processes; .NET does the same on macOS).
//!
//! Nothing is noted per acquisition, so that acquiring costs what it costs on Linux: the
//! destructor looks through the objects the process has open for those whose lock word
//! names the thread. So that an object stays open while a thread owns it, a handle that
//! closes while a thread of this process owns its object keeps the object (not the handle)
//! in [`KEPT`] until a later close or the owner's end finds it no longer owned.
//!
//! Everything the destructor needs is in one thread-local value, registered when the thread
//! claims its first slot. A thread that first uses a mutex from inside another thread-local
//! destructor, after this one ran, has no destructor: what it then owns is abandoned only
//! when its process ends. So is what a thread owns when it is killed without running
//! destructors (Mach `thread_terminate`, a raw `thr_exit`).

use super::super::lock;
use super::super::object::{self, Object};
use super::super::registry::Registry;
use super::lifeline;
use crate::protocol::LockWord;
use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// Objects kept open because a thread of this process owns them (see the module doc).
static KEPT: Mutex<Vec<Arc<Object>>> = Mutex::new(Vec::new());

/// The calling thread's slots: each registry it has one in, with the slot's token part.
#[derive(Default)]
struct ThreadEnd {
    slots: Vec<(&'static Registry, u64)>,
}

thread_local! {
    static END: RefCell<ThreadEnd> = RefCell::new(ThreadEnd::default());
}

impl Drop for ThreadEnd {
    fn drop(&mut self) {
        let mine = |obj: &Object| {
            self.slots
                .iter()
                .find(|(r, _)| r.id() == obj.registry_id())
                .map(|&(_, part)| obj.token_with(part))
        };
        // Only the objects the thread owns are held, and given up once out of the table's
        // lock (giving up wakes sleepers; dropping one may close it, which takes that lock).
        let open = object::open_where(|obj| {
            let word = LockWord::from_bits(obj.page.lock_word().load(Ordering::Acquire));
            mine(obj).is_some_and(|me| word.token() == me)
        });
        for obj in &open {
            if let Some(me) = mine(obj) {
                super::super::fault::point("thread_end.before_abandon");
                // Owned at any depth: all of it is given up, and the next acquirer is told. A
                // refusal means another path already let it go.
                let _ = lock::abandon_as(obj, me, "");
            }
        }
        for &(registry, part) in &self.slots {
            lifeline::retire(registry, part);
        }
        for obj in &open {
            release_kept(obj);
        }
    }
}

/// Whether a thread of this process owns `obj` (its lock word names a live thread slot of
/// this process's).
fn owned_here(obj: &Object) -> bool {
    let word = LockWord::from_bits(obj.page.lock_word().load(Ordering::Acquire));
    let ours = LockWord::from_bits(obj.token_with(0)).user();
    if word.is_free() || word.is_given_up() || word.user() != ours {
        return false; // free, or owned by another user
    }
    let registry = obj.registry();
    lifeline::process_of(
        registry,
        word.slot_plus_one().wrapping_sub(1),
        word.generation(),
    )
    .is_some_and(|p| lifeline::own(registry) == Some(p))
}

/// A handle of `obj` is closing: if a thread of this process owns the object, keep the
/// object open until that thread releases it or ends; if one was kept and is no longer
/// owned, let it go.
pub(super) fn on_close(obj: &Arc<Object>) {
    if owned_here(obj) {
        let kept = obj.kept_for_owner.swap(true, Ordering::AcqRel);
        object::close_while_owned(obj, kept);
        if !kept {
            KEPT.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(obj.clone());
        }
    } else {
        release_kept(obj);
    }
}

/// Lets `obj` go if it was kept and no thread of this process owns it any more.
fn release_kept(obj: &Arc<Object>) {
    if obj.kept_for_owner.load(Ordering::Acquire) && !owned_here(obj) {
        let mut kept = KEPT.lock().unwrap_or_else(|p| p.into_inner());
        if obj.kept_for_owner.swap(false, Ordering::AcqRel) {
            if let Some(i) = kept.iter().position(|k| Arc::ptr_eq(k, obj)) {
                let gone = kept.swap_remove(i);
                drop(kept); // its drop may close the object, which takes other locks
                drop(gone);
            }
        }
    }
}

/// The calling thread has claimed the slot `part` in `registry`: at its end, abandon what
/// it owns there and retire the slot.
pub(super) fn registered(registry: &'static Registry, part: u64) {
    let _ = END.try_with(|end| end.borrow_mut().slots.push((registry, part)));
}
