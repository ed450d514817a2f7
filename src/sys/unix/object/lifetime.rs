//! Closing: the last handle anywhere removes the object's file (FORMAT.md, "Lifetime"),
//! unless the object is kept for the report of its abandonment.

use super::super::files;
use super::super::layout::{self, FLAG_DEAD, FLAG_GLOBAL, FLAG_KEEP_ABANDONED, ObjectPage};
use super::super::root::Root;
use super::table::with_table;
use super::{Object, Place, flock, this_pid};
use crate::sys::contract::Namespace;
use crate::sys::contract::Result;
use rustix::fd::OwnedFd;
use rustix::fs::{AtFlags, FlockOperation};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

impl Drop for Object {
    fn drop(&mut self) {
        self.end_name_if_last();
        with_table(|table| {
            if table.get(&self.key).is_some_and(|(id, _)| *id == self.id) {
                table.remove(&self.key);
            }
        });
    }
}

/// A handle of `obj` closes while a thread of this process owns the object, which stays
/// open for that owner (the portable flavour's thread ends: `thread_end.rs`; `kept`: it is
/// kept already). If that was the process's last handle, the process no longer has the
/// object open, as on Windows, where an owner keeps its object alive but not its name: the
/// name ends now if no other process has the object open, else with their last handle, and
/// the process's shared `flock`, which is what counts as its handle, goes until it opens the
/// object again (`open.rs` takes it back).
#[cfg_attr(
    all(target_os = "linux", not(feature = "portable-backend")),
    allow(dead_code)
)]
pub(in crate::sys::unix) fn close_while_owned(obj: &Arc<Object>, kept: bool) {
    // Under the table's lock, so that no thread of this process opens the object meanwhile
    // (opens wait out `last_anywhere`'s grace too, 100 ms at most, after a death was seen).
    with_table(|_| {
        // The strong references besides this handle's and the keeper's: another handle, or a
        // thread's end looking at the object. Then the process may still have it open.
        let others = Arc::strong_count(obj) - 1 - usize::from(kept);
        // A forked child shares its parent's description, and with it the parent's lock.
        if others != 0
            || obj.ofd_pid != this_pid()
            || obj.handle_lock_dropped.load(Ordering::Acquire)
        {
            return;
        }
        obj.end_name_if_last();
        // Whatever that left: an exclusive lock, or none (a refused conversion loses the
        // shared lock: flock converts by removing it first).
        let _ = flock(&obj.fd, FlockOperation::Unlock);
        obj.handle_lock_dropped.store(true, Ordering::Release);
    });
}

impl Object {
    /// If no process has the object open but this one's closing handle, the object ends,
    /// and its name with it, unless it is kept for the report of an abandonment.
    fn end_name_if_last(&self) {
        if let Some(place) = &self.place {
            if self.ofd_pid == this_pid() && self.last_anywhere() && !self.kept_for_report() {
                super::super::fault::point("close.after_lock");
                self.mark_dead(place.namespace);
                super::super::fault::point("close.before_unlink");
                unlink_if_same(&self.root, place, self.key);
            }
        }
    }

    /// After [`close_while_owned`] the process holds no `flock` on the object; an open of it
    /// takes the shared one back. False if it cannot (the object is being removed, or was
    /// marked dead: open the name again).
    pub(in crate::sys::unix) fn take_handle_lock_back(&self) -> Result<bool> {
        if !self.handle_lock_dropped.load(Ordering::Acquire) {
            return Ok(true);
        }
        if !flock(&self.fd, FlockOperation::NonBlockingLockShared)? {
            return Ok(false);
        }
        if read_flags(&self.fd).is_none_or(|f| f & FLAG_DEAD != 0) {
            let _ = flock(&self.fd, FlockOperation::Unlock);
            return Ok(false);
        }
        self.handle_lock_dropped.store(false, Ordering::Release);
        Ok(true)
    }

    /// Marks the object to be kept for the report of an abandonment (`FLAG_KEEP_ABANDONED`).
    pub(super) fn keep_abandoned(&self) {
        let flags = self.page.flags();
        if flags.load(Ordering::Relaxed) & FLAG_KEEP_ABANDONED == 0 {
            flags.fetch_or(FLAG_KEEP_ABANDONED, Ordering::AcqRel);
        }
    }

    /// Whether the object must outlive its last handle: it is marked to be kept, and its
    /// owner died holding it with no acquirer told yet. The flag is read with `pread`, so
    /// that closing an object whose page this process never touched does not fault it in
    /// (see `mark_dead`); only a kept object's lock word is read through the mapping.
    fn kept_for_report(&self) -> bool {
        match read_flags(&self.fd) {
            Some(flags) if flags & FLAG_KEEP_ABANDONED == 0 => false,
            _ => keeps_report(&self.page, &self.root),
        }
    }

    /// Whether the object's name still leads to it: false when its file was removed under
    /// it (a cleaner such as systemd-logind's `RemoveIPC` or a tmp cleaner, or a user's
    /// `rm`), so that a later create of the name makes a second object beside this one.
    pub(in crate::sys::unix) fn still_named(&self) -> bool {
        let Some(place) = &self.place else {
            return true; // unnamed: nothing to lose
        };
        matches!(
            rustix::fs::statat(
                self.root.dir_for(place.namespace),
                place.file.as_str(),
                AtFlags::SYMLINK_NOFOLLOW,
            ),
            Ok(st) if crate::sys::unix::files::key(&st) == self.key
        )
    }

    /// Sets `DEAD` in the object's flags, for openers that opened the file just before its
    /// name goes: they see the flag once they hold their shared lock, and look again. The
    /// caller holds the file's exclusive lock, so nobody else writes the flags; they are
    /// written with `pwrite` rather than through the mapping, so that closing an object whose
    /// page this process never touched (created or opened, then closed) does not fault the
    /// page in just to mark it (a fault and its teardown cost about 1 µs).
    fn mark_dead(&self, namespace: Namespace) {
        let global = if namespace == Namespace::Global {
            FLAG_GLOBAL
        } else {
            0
        };
        let flags = (global | FLAG_DEAD).to_le_bytes();
        if files::write_all_at(&self.fd, &flags, layout::obj::FLAGS as u64, "the flags").is_err() {
            // Cannot fail on a mapped tmpfs page; if it did, the mapping still works.
            self.page.flags().fetch_or(FLAG_DEAD, Ordering::AcqRel);
        }
    }

    /// Takes the exclusive lock that proves no other process has the object open.
    fn last_anywhere(&self) -> bool {
        let exclusive =
            || flock(&self.fd, FlockOperation::NonBlockingLockExclusive).unwrap_or(false);
        if exclusive() {
            return true;
        }
        if !self.saw_death.load(Ordering::Relaxed) {
            return false;
        }
        // A process we saw die may still be closing its files: give it a moment.
        let deadline = Instant::now() + DYING_GRACE;
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_micros(200));
            if exclusive() {
                return true;
            }
        }
        false
    }
}

/// The object's `FLAGS`, read from its file with `pread` (not through the mapping, whose
/// page this process may never have touched); `None` if it cannot be read.
pub(super) fn read_flags(fd: &OwnedFd) -> Option<u32> {
    let mut flags = [0u8; 4];
    match rustix::io::pread(fd, &mut flags, layout::obj::FLAGS as u64) {
        Ok(4) => Some(u32::from_le_bytes(flags)),
        _ => None,
    }
}

/// Whether an object nobody has open must stay for the report of its abandonment: it is
/// marked to be kept and its owner died holding it, with no acquirer told yet.
pub(in crate::sys::unix) fn keeps_report(page: &ObjectPage, root: &Root) -> bool {
    page.flags().load(Ordering::Acquire) & FLAG_KEEP_ABANDONED != 0
        && super::super::lock::unreported_abandonment(page, root)
}

/// Removes a stale object (no handle anywhere: the caller holds its exclusive `flock`):
/// `DEAD` first, for openers that opened the file just before and see the flag once they
/// get their shared lock, then the name. False when the name cannot be removed (another
/// user's file in a sticky directory): then `DEAD` is cleared again, and the object stays
/// usable (an opener renews it in place).
pub(in crate::sys::unix) fn remove_stale(
    page: &ObjectPage,
    root: &Root,
    place: &Place,
    key: (u64, u64),
) -> bool {
    let flags = page.flags();
    flags.fetch_or(FLAG_DEAD, Ordering::AcqRel);
    super::super::fault::point("stale.before_unlink");
    if unlink_if_same(root, place, key) {
        return true;
    }
    flags.fetch_and(!FLAG_DEAD, Ordering::AcqRel);
    false
}

/// How long a close waits for a process that died owning the object to release its lock.
const DYING_GRACE: Duration = Duration::from_millis(100);

/// Removes `place` if it still names the inode `key`. False when it cannot be removed.
pub(in crate::sys::unix) fn unlink_if_same(root: &Root, place: &Place, key: (u64, u64)) -> bool {
    let dir = root.dir_for(place.namespace);
    match rustix::fs::statat(dir, place.file.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if crate::sys::unix::files::key(&st) == key => {
            rustix::fs::unlinkat(dir, place.file.as_str(), AtFlags::empty()).is_ok()
        }
        // The name already leads elsewhere (or nowhere): nothing of ours to remove.
        _ => true,
    }
}
