//! The watcher: one thread per process that the kernel tells when another process exits,
//! and which then abandons that process's mutexes on which this process's threads sleep.
//!
//! A process is watched from the first time one of our threads needs to know whether it
//! lives ([`alive`]): the watcher asks its record lock once (`F_GETLK` names the holder's
//! pid), asks the kernel to report the holder's exit, and asks the lock again, so that a
//! report is sure to follow any death after that. From then on the answer is kept here
//! until the report comes, so that a contended acquisition costs no system call.
//!
//! A sleeper registers itself and its mutex under the owner's process before it sleeps
//! ([`register`]); at the report the watcher changes each such mutex's lock word from the
//! dead owner's token to `ABANDONED` and wakes all its sleepers (in every process), under
//! the same lock the sleepers unregister under, so the mutexes it touches are still open.
//!
//! Owners whose exit the kernel will not report to us (a process outside our PID namespace,
//! a permission refused) are *unwatched*: their record lock is asked at every look, and
//! their waiters sleep in short slices. `NAMEDMUTEX_WATCHER=0` in the environment starts no
//! watcher, which makes every owner in another process unwatched (for sandboxes that
//! refuse the watch, and to test that mode).
#![allow(unsafe_code)]

use super::super::object::{Object, this_pid};
use super::lifeline::{self, Lifeline};
use super::shim::{DeathEvents, Watching};
use crate::protocol::{LockWord, release};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

/// A watched process: registry, process slot, generation.
type Key = (usize, u32, u32);

fn key(l: Lifeline) -> Key {
    (l.registry.id(), l.pslot, l.pgen)
}

enum State {
    /// The kernel will report its exit (the watch ends when this is dropped).
    Watched(#[allow(dead_code)] Watching),
    /// It died.
    Dead,
    /// Its exit cannot be watched: ask its record lock each time.
    Unwatched,
}

/// A mutex a thread sleeps on, by address: valid while its registration is in the table
/// (the sleeper removes it, under the table's lock, before it returns).
struct Sleeper {
    id: u64,
    obj: *const Object,
}

// SAFETY: the pointer is only dereferenced by the watcher thread while the table's lock is
// held, during which the registering sleeper has not returned (it unregisters under the
// same lock) and so its `&Object` is alive; `Object` is `Sync`.
unsafe impl Send for Sleeper {}

struct Process {
    state: State,
    /// The key its death is reported under.
    event: u64,
    sleepers: Vec<Sleeper>,
}

/// This process's watcher: the watched processes, and the events its thread waits for.
struct Watcher {
    /// The process that started it (a forked child starts its own).
    pid: u32,
    events: Arc<DeathEvents>,
    processes: HashMap<Key, Process>,
    by_event: HashMap<u64, Key>,
    next_id: u64,
}

static WATCHER: Mutex<Option<Watcher>> = Mutex::new(None);

/// Dead entries without sleepers kept before they are forgotten (a forgotten process is
/// asked again, and found dead, if anyone looks).
const KEEP_DEAD: usize = 1024;

/// The table, with this process's watcher started; `None` if no thread could be started
/// (owners then count as unwatched).
fn table() -> MutexGuard<'static, Option<Watcher>> {
    let mut guard = WATCHER.lock().unwrap_or_else(|p| p.into_inner());
    let pid = this_pid();
    if guard.as_ref().is_some_and(|w| w.pid == pid) {
        return guard;
    }
    // First use, or a forked child: the parent's thread and events are not ours. A child's
    // copy is forgotten, not dropped: kqueue descriptors are not inherited, so closing the
    // parent's number here could close a file of the child's that reuses it.
    if let Some(parents) = guard.take() {
        std::mem::forget(parents);
    }
    *guard = start(pid);
    guard
}

fn start(pid: u32) -> Option<Watcher> {
    if std::env::var_os("NAMEDMUTEX_WATCHER").is_some_and(|v| v == "0") {
        return None; // every other process's owner is unwatched (see the module doc)
    }
    let events = Arc::new(DeathEvents::new().ok()?);
    let theirs = events.clone();
    std::thread::Builder::new()
        .name("namedmutex-watcher".into())
        .spawn(move || run(&theirs))
        .ok()?;
    Some(Watcher {
        pid,
        events,
        processes: HashMap::new(),
        by_event: HashMap::new(),
        next_id: 1,
    })
}

/// The watcher thread: waits for exits, and abandons what the dead owned.
fn run(events: &DeathEvents) {
    loop {
        let Ok(keys) = events.next() else {
            return; // cannot happen for a live epoll/kqueue; the owners' waiters fall back to the backstop
        };
        super::super::fault::point("watcher.woken");
        let mut guard = WATCHER.lock().unwrap_or_else(|p| p.into_inner());
        let Some(w) = guard.as_mut().filter(|w| w.pid == this_pid()) else {
            return; // a forked child's copy of the parent's watcher: not ours
        };
        for event in keys {
            let Some(&k) = w.by_event.get(&event) else {
                continue;
            };
            w.by_event.remove(&event);
            if let Some(p) = w.processes.get_mut(&k) {
                p.state = State::Dead; // closes the pidfd, ends a kqueue watch
                for s in &p.sleepers {
                    // SAFETY: see `Sleeper`: registered, so its sleeper has not returned.
                    let obj = unsafe { &*s.obj };
                    abandon_if_theirs(obj, k);
                }
            }
        }
    }
}

/// Changes `obj`'s lock word to `ABANDONED` if it names a thread of the dead process `k`,
/// recording that thread as the abandoner, and wakes its sleepers.
fn abandon_if_theirs(obj: &Object, k: Key) {
    let page = &obj.page;
    let word = LockWord::from_bits(page.lock_word().load(Ordering::Acquire));
    if word.is_free() || word.is_given_up() {
        return;
    }
    let Some(registry) = page
        .user(word.user())
        .and_then(|uid| obj.root.registry_of(uid))
    else {
        return;
    };
    let Some((pslot, pgen)) = lifeline::process_of(
        registry,
        word.slot_plus_one().wrapping_sub(1),
        word.generation(),
    ) else {
        return;
    };
    if (registry.id(), pslot, pgen) != k {
        return;
    }
    let who = registry.owner(word.slot_plus_one()).unwrap_or_default();
    release::abandon_dead(obj, word, || {
        let (pid, tid) = page.last_abandoner();
        pid.store(who.pid, Ordering::Relaxed);
        tid.store(who.tid, Ordering::Relaxed);
        page.set_abandon_note("");
        super::super::fault::point("watcher.before_abandon_cas");
    });
}

/// Whether the process `l` names lives, as far as this process can tell (see the module
/// doc); starts watching it the first time.
pub(crate) fn alive(l: Lifeline) -> bool {
    let mut guard = table();
    match look(&mut guard, l) {
        Some(p) => !matches!(p.state, State::Dead),
        None => l.holder().is_some(),
    }
}

/// The table's entry for `l`, made (by asking the record lock and starting a watch) if
/// there is none; `None` when there is no watcher. An unwatched entry is asked again.
fn look<'a>(
    guard: &'a mut MutexGuard<'static, Option<Watcher>>,
    l: Lifeline,
) -> Option<&'a mut Process> {
    let w = guard.as_mut()?;
    let k = key(l);
    if !w.processes.contains_key(&k) {
        if w.processes.len() >= KEEP_DEAD {
            w.processes
                .retain(|_, p| !matches!(p.state, State::Dead) || !p.sleepers.is_empty());
        }
        let event = w.next_id;
        w.next_id += 1;
        let state = first_look(&w.events, l, event);
        if matches!(state, State::Watched(_)) {
            w.by_event.insert(event, k);
        }
        w.processes.insert(
            k,
            Process {
                state,
                event,
                sleepers: Vec::new(),
            },
        );
    }
    let p = w.processes.get_mut(&k)?;
    if matches!(p.state, State::Unwatched) && l.holder().is_none() {
        p.state = State::Dead;
    }
    Some(p)
}

/// Asks `l`'s record lock, and if it is held, has the kernel report its holder's exit
/// under `event`, then asks again (a death in between is then either seen or reported).
fn first_look(events: &DeathEvents, l: Lifeline, event: u64) -> State {
    let Some(pid) = l.holder() else {
        return State::Dead;
    };
    if pid <= 0 {
        return State::Unwatched; // outside our PID namespace
    }
    match events.watch(pid, event) {
        Ok(watching) => match l.holder() {
            Some(again) if again == pid => State::Watched(watching),
            Some(_) => State::Unwatched, // a lock we cannot pin to one process: ask each time
            None => State::Dead,
        },
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => State::Dead,
        Err(_) => State::Unwatched,
    }
}

/// How a sleeper's registration went.
pub(crate) enum Registered {
    /// The watcher will wake it at the owner's death; unregisters on drop.
    Yes(Registration),
    /// The owner is dead already: look again instead of sleeping.
    Dead,
    /// The owner's death cannot be reported: sleep in slices.
    Unwatched,
}

/// A sleeper's entry in the table.
pub(crate) struct Registration {
    k: Key,
    id: u64,
}

/// Registers a thread about to sleep on `obj`, whose owner lives in the process `l`. The
/// record lock is asked once more (a process that exec'd keeps its pid, and a pidfd does
/// not report that): the lock word's compare-and-sleep then cannot miss a death.
pub(crate) fn register(l: Lifeline, obj: &Object) -> Registered {
    let mut guard = table();
    let Some(p) = look(&mut guard, l) else {
        return Registered::Unwatched;
    };
    match p.state {
        State::Dead => return Registered::Dead,
        State::Unwatched => return Registered::Unwatched,
        State::Watched(_) => {}
    }
    if l.holder().is_none() {
        p.state = State::Dead;
        let event = p.event;
        if let Some(w) = guard.as_mut() {
            w.by_event.remove(&event);
        }
        return Registered::Dead;
    }
    let Some(w) = guard.as_mut() else {
        return Registered::Unwatched;
    };
    let id = w.next_id;
    w.next_id += 1;
    if let Some(p) = w.processes.get_mut(&key(l)) {
        p.sleepers.push(Sleeper { id, obj });
    }
    Registered::Yes(Registration { k: key(l), id })
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut guard = WATCHER.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = guard.as_mut().and_then(|w| w.processes.get_mut(&self.k)) {
            p.sleepers.retain(|s| s.id != self.id);
        }
    }
}
