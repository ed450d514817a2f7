//! Removing stale objects without waiting for a later open of the same name.
//!
//! An object whose processes all died (SIGKILL, the OOM killer) keeps its file: nobody was
//! left to close it. `object/open.rs` removes such a file when its name is opened again; a
//! program that uses per-job or per-pid names never opens it again, and its files would
//! fill the root (memory, on `/dev/shm`) until reboot. A sweep looks at the files of a
//! namespace and removes those that no process has open, by the same rule as an open:
//!
//! - a file whose exclusive `flock` succeeds has no handle anywhere (every handle holds a
//!   shared one) and is removed: `DEAD` is set first, so that an opener that opened it just
//!   before sees the flag once it gets its shared lock, and looks again;
//! - except an object kept for the report of its abandonment (`FLAG_KEEP_ABANDONED` and a
//!   dead owner nobody has been told of yet), which stays for its next acquirer;
//! - an empty file nobody holds is a creator that died before writing it: removed;
//! - anything that is not a valid object is left alone (an open of its name says what is
//!   wrong with it), and so is a file the caller may not remove (another user's, in the
//!   sticky `Global\` directory): the next open of that name renews it in place.
//!
//! Sweeps run in full from `list` and `prune` (a `namedmutex prune` from cron), and bounded
//! (a few entries sampled at random) the first time a process creates a new object in a
//! namespace, so that a root that programs keep adding names to is cleaned as it grows.

use super::files;
use super::layout::{OBJECT_SIZE, ObjectPage};
use super::mapping::Mapping;
use super::object::{self, Place};
use super::root::{GLOBAL_PREFIX, Root};
use crate::sys::Swept;
use crate::sys::contract::Namespace;
use crate::sys::contract::Result;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{FlockOperation, OFlags};
use std::sync::atomic::Ordering;

/// Whether `file`, an entry of the directory of `namespace`, is one of its objects' files.
fn is_object_file(namespace: Namespace, file: &str) -> bool {
    match namespace {
        Namespace::Global => file.starts_with(GLOBAL_PREFIX),
        Namespace::Local => !file.starts_with('.'),
    }
}

/// Sweeps every file of `namespace` (nothing in a root opened only to look at that has no
/// `Local\` namespace of ours: see `Root::for_inspection`).
pub(super) fn sweep(root: &Root, namespace: Namespace) -> Result<Swept> {
    if namespace == Namespace::Local && !root.has_local {
        return Ok(Swept::default());
    }
    let names = object_files(root.dir_for(namespace), namespace, usize::MAX)
        .map_err(|e| files::io_error("read", "the namespace directory", e))?;
    Ok(sweep_files(root, namespace, &names))
}

/// Entries a process's first create in a namespace looks at.
const ON_CREATE: usize = 8;
/// Entries that sample is drawn from.
const SAMPLED_FROM: usize = 1024;

/// The bounded sweep of a process's first create of a new object in `namespace`: up to
/// [`ON_CREATE`] files, drawn at random from the first [`SAMPLED_FROM`] of the directory, so
/// that long-lived objects at the head of the directory do not hide stale ones behind them.
/// `created` (the object just made, whose file name is made only when needed) is not among
/// them. Errors are ignored: the create goes on. After the first time, one relaxed load.
pub(super) fn on_create(root: &Root, namespace: Namespace, created: impl FnOnce() -> String) {
    let flag = match namespace {
        Namespace::Local => &root.swept_local,
        Namespace::Global => &root.swept_global,
    };
    if flag.load(Ordering::Relaxed) || flag.swap(true, Ordering::Relaxed) {
        return;
    }
    let created = created();
    let Ok(mut names) = object_files(root.dir_for(namespace), namespace, SAMPLED_FROM) else {
        return;
    };
    names.retain(|n| *n != created);
    let sample = sample(names, ON_CREATE);
    sweep_files(root, namespace, &sample);
}

/// The names of the object files of `namespace` in its directory `dir`, at most `limit`.
pub(super) fn object_files(
    dir: BorrowedFd<'_>,
    namespace: Namespace,
    limit: usize,
) -> rustix::io::Result<Vec<String>> {
    let entries = rustix::fs::Dir::read_from(dir)?;
    let mut names = Vec::new();
    for entry in entries {
        let Ok(entry) = entry else { break };
        if names.len() >= limit {
            break;
        }
        if let Ok(file) = entry.file_name().to_str() {
            if file != "." && file != ".." && is_object_file(namespace, file) {
                names.push(file.to_owned());
            }
        }
    }
    Ok(names)
}

/// `n` of `names` at random (a partial Fisher-Yates shuffle seeded from the clock and the
/// pid: a sweep needs spread, not secrecy).
fn sample(mut names: Vec<String>, n: usize) -> Vec<String> {
    let mut state = super::clock::realtime_ns() ^ u64::from(std::process::id()).rotate_left(32);
    let mut next = || {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let n = n.min(names.len());
    for i in 0..n {
        let j = i + (next() % (names.len() - i) as u64) as usize;
        names.swap(i, j);
    }
    names.truncate(n);
    names
}

fn sweep_files(root: &Root, namespace: Namespace, names: &[String]) -> Swept {
    let mut swept = Swept::default();
    for file in names {
        match sweep_one(root, namespace, file) {
            Verdict::Removed => swept.removed += 1,
            Verdict::InUse => swept.in_use += 1,
            Verdict::Kept => swept.kept_for_report += 1,
            Verdict::Skipped => swept.skipped += 1,
            Verdict::Gone => {}
        }
    }
    swept
}

enum Verdict {
    Removed,
    InUse,
    Kept,
    Skipped,
    /// Removed by somebody else meanwhile.
    Gone,
}

fn sweep_one(root: &Root, namespace: Namespace, file: &str) -> Verdict {
    let dir = root.dir_for(namespace);
    let fd = match files::open_in(dir, file, OFlags::RDWR) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Verdict::Gone,
        Err(_) => return Verdict::Skipped, // not ours to open, or not a plain file
    };
    let Ok(st) = rustix::fs::fstat(&fd) else {
        return Verdict::Skipped;
    };
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return Verdict::Skipped;
    }
    super::fault::point("sweep.before_lock");
    match object::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
        Ok(true) => {}
        Ok(false) => return Verdict::InUse,
        Err(_) => return Verdict::Skipped,
    }
    let place = Place {
        namespace,
        file: file.to_owned(),
    };
    let key = crate::sys::unix::files::key(&st);
    if st.st_size == 0 {
        // A creator that died before writing it (a live one holds its lock).
        return if object::unlink_if_same(root, &place, key) {
            Verdict::Removed
        } else {
            Verdict::Skipped
        };
    }
    let Some(page) = valid_page(&fd, st.st_size) else {
        return Verdict::Skipped;
    };
    if object::keeps_report(&page, root) {
        return Verdict::Kept;
    }
    if object::remove_stale(&page, root, &place, key) {
        Verdict::Removed
    } else {
        Verdict::Skipped // not ours to remove: the next open of its name renews it
    }
}

/// The object in `fd` if it is a valid one.
fn valid_page(fd: &OwnedFd, size: i64) -> Option<ObjectPage> {
    if size as usize != OBJECT_SIZE {
        return None;
    }
    let map = Mapping::map(fd.as_fd(), OBJECT_SIZE, true).ok()?;
    ObjectPage::validate(map, None).ok()
}
