//! Read-only snapshots of objects for `list` and `info`.
//!
//! Files are opened read-only and mapped read-only; no shared lock is taken, because a
//! lock would count as a handle and keep the object alive. The one probe that does lock,
//! an exclusive non-blocking `flock` to tell whether any handle exists at all, is dropped
//! at once; an open racing with it just retries.

use super::RawMutex;
use super::files;
use super::layout::{FLAG_GLOBAL, OBJECT_SIZE, ObjectPage};
use super::mapping::Mapping;
use super::registry::{self, Liveness};
use super::root::Root;
use crate::protocol::LockWord;
use crate::sys::contract::Result;
use crate::sys::contract::{MutexInfo, OwnerInfo};
use crate::sys::contract::{Name, Namespace};
use crate::sys::{Inspect, Spec, Swept};
use rustix::fd::{AsFd, BorrowedFd};
use rustix::fs::{FlockOperation, OFlags};
use rustix::io::Errno;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

impl Inspect for RawMutex {
    /// Removes the stale objects of `namespace` (see `sweep.rs`).
    fn prune(opts: &Spec, namespace: Namespace) -> Result<Swept> {
        let root = Root::get(opts.root.as_deref())?;
        super::sweep::sweep(&root, namespace)
    }

    fn info(opts: &Spec, name: &Name<'_>) -> Result<Option<MutexInfo>> {
        let root = Root::for_inspection(opts.root.as_deref())?;
        if name.namespace == Namespace::Local && !root.has_local {
            return Ok(None); // we have no namespace here, so no mutex in it
        }
        let file = Root::file_name(name.namespace, name.object);
        match files::open_in(root.dir_for(name.namespace), &file, OFlags::RDONLY) {
            Ok(fd) => snapshot(&root, fd.as_fd(), Some(name.object))
                .map_err(|e| super::object::name_the_file(e, &root, name, &file)),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(files::io_error("inspect the mutex", name.full, e)),
        }
    }

    fn list(opts: &Spec, namespace: Namespace) -> Result<Vec<MutexInfo>> {
        let root = Root::for_inspection(opts.root.as_deref())?;
        if namespace == Namespace::Local && !root.has_local {
            return Ok(Vec::new()); // we have no namespace here
        }
        // Stale objects are removed rather than listed (failures, on a read-only root say,
        // leave them listed as stale).
        let _ = super::sweep::sweep(&root, namespace);
        let mut found = list_dir(&root, root.dir_for(namespace), namespace)
            .map_err(|e| files::io_error("list", "the namespace", e))?;
        found.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(found)
    }

    /// Every user's `Local\` objects that the caller may read (root: all of them), found
    /// through each user's directory in the root. Users whose namespace the caller may not
    /// read are left out; their uids are returned beside.
    fn list_all_users(opts: &Spec) -> Result<(Vec<MutexInfo>, Vec<u32>)> {
        let root = Root::for_inspection(opts.root.as_deref())?;
        let _ = super::sweep::sweep(&root, Namespace::Local);
        let mut found = Vec::new();
        let mut unreadable = Vec::new();
        for uid in super::user_dir::users(root.dir_for(Namespace::Global)) {
            let local = super::idmap::seen_uid(uid)
                .and_then(|owner| super::user_dir::of(root.dir_for(Namespace::Global), uid, owner))
                .and_then(|dir| files::open_dir_in(dir.as_fd(), super::root::LOCAL_DIR).ok());
            match local.map(|dir| list_dir(&root, dir.as_fd(), Namespace::Local)) {
                Some(Ok(infos)) => found.extend(infos),
                _ => unreadable.push(uid),
            }
        }
        found.sort_by(|a, b| (a.creator_uid, &a.name).cmp(&(b.creator_uid, &b.name)));
        Ok((found, unreadable))
    }
}

/// The objects of `namespace` in `dir`. One the caller may not open is listed as such
/// (`accessible: false`: its name, creator and handles, nothing from inside it).
fn list_dir(
    root: &Root,
    dir: BorrowedFd<'_>,
    namespace: Namespace,
) -> rustix::io::Result<Vec<MutexInfo>> {
    let mut found = Vec::new();
    for file in super::sweep::object_files(dir, namespace, usize::MAX)? {
        let file = file.as_str();
        match files::open_in(dir, file, OFlags::RDONLY) {
            // Files that are not valid objects are left out of the list (opening their
            // name reports what is wrong with them).
            Ok(fd) => {
                if let Ok(Some(info)) = snapshot(root, fd.as_fd(), None) {
                    found.push(info);
                }
            }
            Err(Errno::ACCESS) => {
                if let Some(info) = unreadable(dir, file, namespace) {
                    found.push(info);
                }
            }
            Err(_) => {} // gone meanwhile, or not a plain file
        }
    }
    Ok(found)
}

/// What can be said of an object file the caller may not open: its name (from the file
/// name, unless it was too long and hashed), its creator (the file's owner) and how many
/// processes have it open (their `flock` locks).
fn unreadable(dir: BorrowedFd<'_>, file: &str, namespace: Namespace) -> Option<MutexInfo> {
    let st = rustix::fs::statat(dir, file, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).ok()?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return None;
    }
    let encoded = match namespace {
        Namespace::Global => file.strip_prefix(super::root::GLOBAL_PREFIX)?,
        Namespace::Local => file,
    };
    let object = super::file_name::decode(encoded).unwrap_or_else(|| format!("<file {encoded}>"));
    let name = match namespace {
        Namespace::Global => format!("Global\\{object}"),
        Namespace::Local => object,
    };
    Some(MutexInfo::inaccessible(
        name,
        namespace,
        st.st_uid,
        flock_holders(crate::sys::unix::files::key(&st)).unwrap_or(0),
    ))
}

/// What the object file `fd` holds; `None` while it is empty (being created, or left by a
/// creator that died before writing it: the next open removes it).
fn snapshot(root: &Root, fd: BorrowedFd<'_>, expected: Option<&str>) -> Result<Option<MutexInfo>> {
    let st = rustix::fs::fstat(fd).map_err(|e| files::io_error("inspect", "a mutex object", e))?;
    if st.st_size == 0 {
        return Ok(None);
    }
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile
        || st.st_size as usize != OBJECT_SIZE
    {
        return Err(crate::sys::contract::Error::new(
            crate::sys::contract::ErrorKind::TypeMismatch,
            "not a mutex object",
        ));
    }
    let map = Mapping::map(fd, OBJECT_SIZE, false).map_err(|e| {
        crate::sys::contract::Error::io(
            crate::sys::contract::ErrorKind::Io,
            "cannot map a mutex object",
            e,
        )
    })?;
    let page = ObjectPage::validate(map, expected)?;
    let global = page.flags().load(Ordering::Relaxed) & FLAG_GLOBAL != 0;
    let namespace = if global {
        Namespace::Global
    } else {
        Namespace::Local
    };
    let name = if global {
        format!("Global\\{}", page.name())
    } else {
        page.name()
    };
    let word = LockWord::from_bits(page.lock_word().load(Ordering::Acquire));
    // A word biased to a thread names an owner only while that thread's depth is not 0.
    let biased = word.is_biased();
    let bias_depth = page.bias_depth().load(Ordering::Acquire);
    let held = !word.is_free() && (!biased || bias_depth > 0);
    let owner = held.then(|| owner_info(root, &page, word));
    // `/proc/locks` shows locks without taking one (one shared lock per process that has
    // the object open); it hides those of processes in other PID namespaces, so "none
    // listed" is confirmed by a probe. (An exclusive lock held for an instant can make a
    // concurrent last close leave the file for the next open.)
    let holders = flock_holders(crate::sys::unix::files::key(&st));
    let stale = holders.unwrap_or(0) == 0 && {
        let free = rustix::fs::flock(fd, FlockOperation::NonBlockingLockExclusive).is_ok();
        if free {
            let _ = rustix::fs::flock(fd, FlockOperation::Unlock);
        }
        free
    };
    let kept_for_report = stale && super::object::keeps_report(&page, root);
    let (creator_uid, creator_pid, created_ns) = page.creator();
    let (ab_pid, ab_tid) = page.last_abandoner();
    let ab = (
        ab_pid.load(Ordering::Relaxed),
        ab_tid.load(Ordering::Relaxed),
    );
    // An owner that gave the mutex up on purpose recorded itself as the abandoner.
    let owner = owner.map(|o| {
        if word.is_given_up() && ab.0 != 0 {
            OwnerInfo {
                pid: Some(ab.0),
                tid: Some(ab.1),
                same_pid_namespace: true,
                ..o
            }
        } else {
            o
        }
    });
    Ok(Some(MutexInfo {
        name,
        namespace,
        count: if owner.is_none() {
            0
        } else if biased {
            bias_depth
        } else {
            page.count().load(Ordering::Relaxed)
        },
        owner,
        waiters: page.sleepers().load(Ordering::Relaxed),
        handles: holders.unwrap_or(u32::from(!stale)),
        stale: stale && !kept_for_report,
        creator_uid,
        creator_pid,
        created: time(created_ns),
        abandon_count: page.abandon_count().load(Ordering::Relaxed),
        last_abandoner: (ab != (0, 0)).then_some(ab),
        abandon_note: page.abandon_note(),
        kept_for_report,
        accessible: true,
    }))
}

fn owner_info(root: &Root, page: &ObjectPage, word: LockWord) -> OwnerInfo {
    let slot = word.slot_plus_one();
    let uid = page.user(word.user());
    let registry = uid.and_then(|uid| root.registry_of(uid));
    let recorded = registry.and_then(|r| r.owner(slot));
    let alive = registry
        .is_some_and(|r| matches!(r.liveness(slot, word.generation()), Liveness::Alive { .. }));
    let ours = registry::pid_namespace();
    let same_ns = recorded.is_some_and(|o| o.pidns != 0 && o.pidns == ours);
    let visible_pid = recorded
        .filter(|_| alive)
        .and_then(|o| visible_pid(o.pid, o.pidns, ours));
    OwnerInfo {
        pid: recorded.map(|o| o.pid).filter(|p| *p != 0),
        tid: recorded.map(|o| o.tid).filter(|t| *t != 0),
        same_pid_namespace: same_ns,
        uid,
        acquired: time(page.acquired_ns().load(Ordering::Relaxed)),
        alive,
        visible_pid,
        stopped: visible_pid.is_some_and(is_stopped),
    }
}

/// The id in our PID namespace of the process that is `pid` in the namespace `pidns`.
fn visible_pid(pid: u32, pidns: u64, ours: u64) -> Option<u32> {
    if pid == 0 || pidns == 0 {
        return None;
    }
    if pidns == ours {
        return Some(pid);
    }
    // A nested namespace: the process is also in ours, and its status lists its ids from
    // our namespace down to its own (`NSpid: 4321 7 1`).
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(candidate) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(format!("/proc/{candidate}/status")) else {
            continue;
        };
        let Some(ids) = status.lines().find_map(|l| l.strip_prefix("NSpid:")) else {
            continue;
        };
        let ids: Vec<u32> = ids
            .split_whitespace()
            .filter_map(|i| i.parse().ok())
            .collect();
        if ids.len() < 2 || ids.last() != Some(&pid) {
            continue;
        }
        // The same inner id may exist in several containers: the namespace must match.
        let ns = std::fs::metadata(format!("/proc/{candidate}/ns/pid"))
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m));
        if ns.ok() == Some(pidns) {
            return Some(candidate);
        }
    }
    None
}

/// Whether process `pid` (of our namespace) is stopped: state `T` (signal) or `t` (tracer)
/// in `/proc/<pid>/stat`.
fn is_stopped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 1..];
            rest.split_whitespace()
                .next()
                .map(|state| state == "T" || state == "t")
        })
        .unwrap_or(false)
}

fn time(ns: u64) -> Option<SystemTime> {
    (ns != 0).then(|| UNIX_EPOCH + Duration::from_nanos(ns))
}

/// How many `flock` locks are held on the file `(dev, ino)`, from `/proc/locks`: one per
/// process that has the object open (plus one per inheritable handle). `None` if the table
/// cannot be read.
fn flock_holders(key: (u64, u64)) -> Option<u32> {
    flock_lockers(key).map(|lockers| lockers.len() as u32)
}

/// The `flock` locks held on the file `(dev, ino)`: unknown where there is no `/proc/locks`
/// (macOS, FreeBSD).
#[cfg(not(target_os = "linux"))]
fn flock_lockers(_key: (u64, u64)) -> Option<Vec<(u32, bool)>> {
    None
}

/// The `flock` locks held on the file `(dev, ino)`, from `/proc/locks`: for each, the pid
/// (0 for a holder in another PID namespace, which the table hides) and whether it is
/// exclusive.
#[cfg(target_os = "linux")]
fn flock_lockers((dev, ino): (u64, u64)) -> Option<Vec<(u32, bool)>> {
    let table = std::fs::read_to_string("/proc/locks").ok()?;
    let want = format!(
        "{:02x}:{:02x}:{ino}",
        rustix::fs::major(dev),
        rustix::fs::minor(dev)
    );
    let held = table.lines().filter_map(|line| {
        let mut fields = line
            .split_whitespace()
            .skip_while(|f| f.ends_with(':') || *f == "->");
        // FLOCK  ADVISORY  WRITE  1234  00:1a:5678  0  EOF
        if fields.next() != Some("FLOCK") {
            return None;
        }
        let _advisory = fields.next()?;
        let exclusive = fields.next()? == "WRITE";
        let pid = fields.next()?.parse().unwrap_or(0);
        (fields.next()? == want).then_some((pid, exclusive))
    });
    Some(held.collect())
}

/// Who holds `flock` locks on the file `(dev, ino)`, for an error message: empty when
/// nothing can be said, else `"; pid 1234 holds its lock exclusively and is stopped (...)"`.
pub(super) fn describe_lockers(key: (u64, u64)) -> String {
    let Some(lockers) = flock_lockers(key) else {
        return String::new();
    };
    let mut parts = Vec::new();
    for (pid, exclusive) in lockers.into_iter().filter(|(pid, _)| *pid != 0) {
        let how = if exclusive { "exclusively" } else { "shared" };
        if is_stopped(pid) {
            parts.push(format!(
                "pid {pid} holds its lock {how} and is stopped (SIGSTOP, a debugger or a paused container): it will not let go until it is continued"
            ));
        } else {
            parts.push(format!("pid {pid} holds its lock {how}"));
        }
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("; {}", parts.join("; "))
    }
}
