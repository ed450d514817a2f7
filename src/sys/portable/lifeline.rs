//! Who lives, in the portable flavour: slots of processes and of threads in the registry,
//! and a process's lifeline, an exclusive record lock on one byte of the registry file.
//!
//! A process claims a *process slot* in each registry it uses, then locks the byte
//! [`LIFELINE_BASE`] + slot of the file (past its end, where POSIX allows locks) through its
//! one descriptor of it. The kernel drops that lock when the process dies or execs, and any
//! process can ask for it with `F_GETLK`. Each of its threads claims a *thread slot* that
//! names the process slot and its generation. So a token (thread slot and generation) is
//! alive while:
//!
//! 1. its thread slot is `LIVE` at that generation (the thread's destructor retires it,
//!    `thread_end.rs`), and
//! 2. the process slot it names is `LIVE` at the generation it names, and
//! 3. that process holds its byte, which the watcher (`watcher.rs`) asks the kernel once
//!    and then learns of its exit from the kernel.
//!
//! There is no pid-reuse window: a new process cannot hold the byte without claiming the
//! slot, and claiming it changes the generation.
//!
//! The slot fields this flavour uses lie in the Linux slot's lifeline area (FORMAT.md,
//! "Registry, portable flavour"): `KIND`, `PSLOT`, `PGEN`.

use super::super::object::this_pid;
use super::super::registry::{Liveness, Registry};
use super::super::registry_layout::{slot, slot_state};
use super::shim::record_lock::{self, Kind};
use super::{thread_end, watcher};
use crate::protocol::lock_word::SLOT_MASK;
use crate::sys::contract::{Error, ErrorKind, Result};
use rustix::fd::AsFd;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// The registry file's name: not the Linux backend's, so that the two never share one.
pub(crate) const REGISTRY_FILE: &str = "registry-portable";
/// The registry format version of this flavour (the Linux backend's is 1).
pub(crate) const REGISTRY_VERSION: u32 = 0x101;
/// Added to the object format version: the Linux backend refuses this flavour's objects
/// (and this flavour the Linux backend's) as `Incompatible` instead of misreading tokens.
pub(crate) const OBJECT_FLAVOUR: u32 = 0x100;

/// The byte of process slot 0's lifeline: far past the end of any registry.
pub(crate) const LIFELINE_BASE: u64 = 1 << 40;

/// Slot fields of this flavour, inside the Linux slot's `LIFELINE` area (from the types of
/// `format.rs`).
pub(crate) mod field {
    use super::super::super::format::{PORTABLE_SLOT_FIELDS, offset};
    use super::slot;
    /// u32 what the slot is: [`super::KIND_THREAD`] or [`super::KIND_PROCESS`].
    pub const KIND: usize = slot::LIFELINE + offset(PORTABLE_SLOT_FIELDS, "KIND");
    /// u32 a thread slot's process slot.
    pub const PSLOT: usize = slot::LIFELINE + offset(PORTABLE_SLOT_FIELDS, "PSLOT");
    /// u32 the generation of that process slot.
    pub const PGEN: usize = slot::LIFELINE + offset(PORTABLE_SLOT_FIELDS, "PGEN");
}
/// `KIND` of a thread's slot.
pub(crate) const KIND_THREAD: u32 = 1;
/// `KIND` of a process's slot.
pub(crate) const KIND_PROCESS: u32 = 2;

/// An owner's process as sleepers watch it: a process slot at a generation.
#[derive(Clone, Copy)]
pub(crate) struct Lifeline {
    pub registry: &'static Registry,
    pub pslot: u32,
    pub pgen: u32,
}

impl PartialEq for Lifeline {
    fn eq(&self, other: &Lifeline) -> bool {
        (self.registry.id(), self.pslot, self.pgen)
            == (other.registry.id(), other.pslot, other.pgen)
    }
}

impl std::fmt::Debug for Lifeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Lifeline(registry {:#x}, process slot {} generation {})",
            self.registry.id(),
            self.pslot,
            self.pgen
        )
    }
}

impl Lifeline {
    /// Polling cannot see a process die (the watcher changes the lock word instead).
    #[inline]
    pub(crate) fn changed_from(self, _value: u32) -> bool {
        false
    }

    /// Nothing to wake: sleepers sleep on lock words, which the watcher wakes.
    pub(crate) fn wake_watchers(self) {}

    /// The lifeline's byte in the registry file.
    fn byte(self) -> u64 {
        LIFELINE_BASE + u64::from(self.pslot)
    }

    /// Whether this is the calling process's own slot.
    pub(crate) fn is_own(self) -> bool {
        own(self.registry) == Some((self.pslot, self.pgen))
    }

    /// Whether the process still holds its slot at this generation (one `F_GETLK`);
    /// `Some(pid)` names the holder as this process sees it (0: outside our PID namespace).
    pub(crate) fn holder(self) -> Option<i32> {
        if !process_slot_live(self.registry, self.pslot, self.pgen) {
            return None;
        }
        let held = record_lock::holder(self.registry.fd.as_fd(), self.byte(), Kind::Read);
        // Re-read the slot: a holder seen after the slot moved on may be a new process.
        match held {
            Ok(Some(pid)) if process_slot_live(self.registry, self.pslot, self.pgen) => Some(pid),
            Ok(_) => None,
            // The file cannot be asked (which should not happen for an open file): count
            // the owner as alive, as the Linux backend does an unreadable registry.
            Err(_) => Some(0),
        }
    }
}

/// This process's slot in a registry.
#[derive(Default)]
pub(crate) struct Local {
    /// Held while this process claims its slot.
    claiming: Mutex<()>,
    /// `(slot + 1) << 32 | generation` of this process's slot; 0 until claimed.
    own: AtomicU64,
    /// The process that claimed `own` (a forked child holds none of its parent's locks).
    claimed_by: AtomicU32,
}

/// This process's slot and generation in `registry`, if it has claimed one (not inherited
/// through `fork`).
#[inline]
pub(crate) fn own(registry: &'static Registry) -> Option<(u32, u32)> {
    let own = registry.local.own.load(Ordering::Acquire);
    (own != 0 && registry.local.claimed_by.load(Ordering::Relaxed) == this_pid())
        .then(|| ((own >> 32) as u32 - 1, own as u32))
}

fn u32_at(registry: &Registry, index: u32, field: usize) -> &AtomicU32 {
    registry.map.u32(registry.slot_offset(index) + field)
}

/// Whether process slot `pslot` is `LIVE` at generation `pgen` and is a process's slot.
fn process_slot_live(registry: &'static Registry, pslot: u32, pgen: u32) -> bool {
    if pslot >= registry.slots {
        return false;
    }
    let live = u64::from(pgen) << 32 | u64::from(slot_state::LIVE);
    registry.slot_word(pslot).load(Ordering::Acquire) == live
        && u32_at(registry, pslot, field::KIND).load(Ordering::Relaxed) == KIND_PROCESS
}

/// Whether slot `index` (whose word holds `generation` and `state`) may be claimed: never
/// used, retired by its thread, or its owner is gone.
pub(crate) fn reusable(
    registry: &'static Registry,
    index: u32,
    generation: u32,
    state: u32,
) -> bool {
    match state {
        slot_state::VIRGIN | slot_state::RETIRED => true,
        slot_state::LIVE => match u32_at(registry, index, field::KIND).load(Ordering::Relaxed) {
            KIND_PROCESS => {
                let lifeline = Lifeline {
                    registry,
                    pslot: index,
                    pgen: generation,
                };
                !lifeline.is_own() && lifeline.holder().is_none()
            }
            KIND_THREAD => matches!(liveness(registry, index, generation), Liveness::Dead),
            _ => true, // a slot no flavour wrote: nobody's
        },
        _ => false,
    }
}

/// Claims a thread slot for the calling thread (and this process's slot first, if it has
/// none here), and has its destructor retire it; returns its token part.
pub(crate) fn claim_thread(registry: &'static Registry) -> Result<u64> {
    let (pslot, pgen) = own_process_slot(registry)?;
    let part = registry.claim_slot(|index| {
        u32_at(registry, index, field::PSLOT).store(pslot, Ordering::Relaxed);
        u32_at(registry, index, field::PGEN).store(pgen, Ordering::Relaxed);
        u32_at(registry, index, field::KIND).store(KIND_THREAD, Ordering::Relaxed);
        Ok(true)
    })?;
    thread_end::registered(registry, part);
    Ok(part)
}

/// This process's slot in `registry`, claimed and locked on first use (and anew in a
/// forked child, which holds none of its parent's record locks).
fn own_process_slot(registry: &'static Registry) -> Result<(u32, u32)> {
    if let Some(own) = own(registry) {
        return Ok(own);
    }
    let _claiming = registry
        .local
        .claiming
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(own) = own(registry) {
        return Ok(own); // another thread claimed it meanwhile
    }
    let part = registry.claim_slot(|index| {
        u32_at(registry, index, field::KIND).store(KIND_PROCESS, Ordering::Relaxed);
        super::super::fault::point("register.before_lifeline_lock");
        let byte = Lifeline {
            registry,
            pslot: index,
            pgen: 0,
        }
        .byte();
        match record_lock::hold(registry.fd.as_fd(), byte) {
            Ok(true) => Ok(true),
            // Another process (a reader of the registry) holds a lock on the byte: give the
            // slot back (retired, so that it is tried again later) and take another.
            Ok(false) => Ok(false),
            // Leave the slot CLAIMING (unusable) rather than hand out one without a lifeline.
            Err(e) => Err(Error::io(
                ErrorKind::Io,
                "cannot lock this process's lifeline in the registry",
                e,
            )),
        }
    })?;
    let slot = ((part & SLOT_MASK) as u32) - 1;
    let generation = (part >> 32) as u32;
    registry
        .local
        .claimed_by
        .store(this_pid(), Ordering::Relaxed);
    registry.local.own.store(
        u64::from(slot + 1) << 32 | u64::from(generation),
        Ordering::Release,
    );
    Ok((slot, generation))
}

/// Whether the thread of slot `index` at `generation` still lives.
pub(crate) fn liveness(registry: &'static Registry, index: u32, generation: u32) -> Liveness {
    let word = registry.slot_word(index);
    let live = u64::from(generation) << 32 | u64::from(slot_state::LIVE);
    if word.load(Ordering::Acquire) != live {
        return Liveness::Dead;
    }
    let kind = u32_at(registry, index, field::KIND).load(Ordering::Relaxed);
    let pslot = u32_at(registry, index, field::PSLOT).load(Ordering::Relaxed);
    let pgen = u32_at(registry, index, field::PGEN).load(Ordering::Relaxed);
    // Re-read the slot word: if it changed meanwhile, the fields may be a new thread's.
    if kind != KIND_THREAD || word.load(Ordering::Acquire) != live {
        return Liveness::Dead;
    }
    let lifeline = Lifeline {
        registry,
        pslot,
        pgen,
    };
    if !process_slot_live(registry, pslot, pgen) {
        return Liveness::Dead;
    }
    if lifeline.is_own() || watcher::alive(lifeline) {
        Liveness::Alive { lifeline, value: 0 }
    } else {
        Liveness::Dead
    }
}

/// The process slot and generation a token's thread slot names, from memory alone (the
/// watcher's test of whether a lock word names a process that has just died).
pub(crate) fn process_of(
    registry: &'static Registry,
    index: u32,
    generation: u32,
) -> Option<(u32, u32)> {
    if index >= registry.slots {
        return None;
    }
    let word = registry.slot_word(index);
    let live = u64::from(generation) << 32 | u64::from(slot_state::LIVE);
    let kind = u32_at(registry, index, field::KIND).load(Ordering::Relaxed);
    let found = (
        u32_at(registry, index, field::PSLOT).load(Ordering::Relaxed),
        u32_at(registry, index, field::PGEN).load(Ordering::Relaxed),
    );
    (word.load(Ordering::Acquire) == live && kind == KIND_THREAD).then_some(found)
}

/// Marks a thread slot retired (its thread ended): its tokens are dead from now on.
pub(crate) fn retire(registry: &'static Registry, part: u64) {
    let index = ((part & SLOT_MASK) as u32).wrapping_sub(1);
    if index >= registry.slots {
        return;
    }
    let generation = (part >> 32) as u32;
    let live = u64::from(generation) << 32 | u64::from(slot_state::LIVE);
    let retired = u64::from(generation) << 32 | u64::from(slot_state::RETIRED);
    let _ = registry.slot_word(index).compare_exchange(
        live,
        retired,
        Ordering::AcqRel,
        Ordering::Relaxed,
    );
}

/// A handle of `obj` is closing: see [`thread_end::on_close`].
#[inline]
pub(crate) fn on_close(obj: &std::sync::Arc<super::super::object::Object>) {
    thread_end::on_close(obj);
}
