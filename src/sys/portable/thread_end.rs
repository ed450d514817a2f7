//! A thread's end: what it owns is abandoned, and its slots retired, by a thread-local
//! destructor that runs in the ending thread (no kernel in this flavour reports a thread's
//! death to other processes; .NET does the same on macOS).
//!
//! Everything the destructor needs is in one thread-local value, since other thread-locals
//! may be gone by the time it runs. A thread that first uses a mutex from inside another
//! thread-local destructor, after this one ran, registers no destructor: what it then owns
//! is abandoned only when its process ends. So is what a thread owns when it is killed
//! without running destructors (Mach `thread_terminate`, a raw `thr_exit`).

use super::super::lock;
use super::super::object::Object;
use super::super::registry::Registry;
use super::lifeline;
use crate::protocol::LockWord;
use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// The calling thread's slots and what it owns.
#[derive(Default)]
struct ThreadEnd {
    /// Each registry the thread has a slot in, with the slot's token part.
    slots: Vec<(&'static Registry, u64)>,
    /// The mutexes it owns (at any depth), each once.
    owned: Vec<Arc<Object>>,
}

thread_local! {
    static END: RefCell<ThreadEnd> = RefCell::new(ThreadEnd::default());
}

impl Drop for ThreadEnd {
    fn drop(&mut self) {
        for obj in self.owned.drain(..).rev() {
            super::super::fault::point("thread_end.before_abandon");
            // Owned at any depth: all of it is given up, and the next acquirer is told. A
            // mutex it no longer owns (released through another path) is refused: fine.
            let _ = lock::abandon(&obj, "");
        }
        for &(registry, part) in &self.slots {
            lifeline::retire(registry, part);
        }
    }
}

/// The calling thread has claimed the slot `part` in `registry`: retire it when the thread
/// ends.
pub(super) fn registered(registry: &'static Registry, part: u64) {
    let _ = END.try_with(|end| end.borrow_mut().slots.push((registry, part)));
}

/// Whether the calling thread owns `obj` at exactly one level (it has just taken it, or is
/// about to let it go).
fn owns_once(obj: &Object) -> Option<bool> {
    let me = obj.existing_token()?;
    let page = &obj.page;
    let word = LockWord::from_bits(page.lock_word().load(Ordering::Relaxed));
    Some(word.token() == me && page.count().load(Ordering::Relaxed) == 1)
}

/// Notes `obj` as owned if the calling thread has just taken its first level.
pub(super) fn after_acquire(obj: &Arc<Object>) {
    if owns_once(obj) == Some(true) {
        let _ = END.try_with(|end| end.borrow_mut().owned.push(obj.clone()));
    }
}

/// Forgets `obj` if the calling thread no longer owns it.
pub(super) fn after_release(obj: &Arc<Object>) {
    let Some(me) = obj.existing_token() else {
        return;
    };
    let word = LockWord::from_bits(obj.page.lock_word().load(Ordering::Relaxed));
    if word.token() == me {
        return; // still owned (recursion)
    }
    let _ = END.try_with(|end| {
        let owned = &mut end.borrow_mut().owned;
        if let Some(i) = owned.iter().rposition(|o| Arc::ptr_eq(o, obj)) {
            owned.swap_remove(i);
        }
    });
}
