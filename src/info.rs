//! Looking at mutexes without touching them: who owns what, for diagnostics and tools
//! (the `namedmutex` command's `list` and `info`).
//!
//! Inspection opens nothing that counts as a handle and takes nothing: it cannot keep an
//! object alive, block anyone, or change who owns what. What it reports is a snapshot that
//! may be stale by the time it is read, and the diagnostic fields (owner pid, times,
//! counts of handles and waiters) are what processes recorded, not facts the library relies on.

use crate::name::Namespace;
use crate::sys::contract;
use std::time::SystemTime;

/// A snapshot of one mutex object.
///
/// ```
/// use namedmutex::NamedMutex;
///
/// let name = format!("doc-info-{}", std::process::id());
/// let (m, _) = NamedMutex::create(&name, true)?;
/// let info = namedmutex::info(&name)?.expect("it exists");
/// assert_eq!(info.name, name);
/// let owner = info.owner.expect("owned");
/// assert_eq!(owner.pid, Some(std::process::id()));
/// assert_eq!(info.count, 1);
/// m.release()?;
/// assert!(namedmutex::info(&name)?.unwrap().owner.is_none());
/// # Ok::<(), namedmutex::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct MutexInfo {
    /// The name with its prefix as the object records it (`Global\x`; no prefix for `Local\`).
    pub name: String,
    /// The namespace the object is in.
    pub namespace: Namespace,
    /// The owner, or `None` when the mutex is free.
    pub owner: Option<OwnerInfo>,
    /// The owner's recursion count (0 when free).
    pub count: u32,
    /// Threads currently sleeping in a wait on it (approximate).
    pub waiters: u32,
    /// Processes that have the object open (each holds one shared lock on its file; an
    /// inheritable handle counts as one more), as the kernel's lock table shows them. Read
    /// from `/proc/locks`, which hides processes of other PID namespaces.
    pub handles: u32,
    /// No process has the object open any more; the next open or create will remove it.
    pub stale: bool,
    /// Who created the object: user id and process id (as the creator saw itself).
    pub creator_uid: u32,
    /// See `creator_uid`.
    pub creator_pid: u32,
    /// When the object was created.
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_time::opt_time"))]
    pub created: Option<SystemTime>,
    /// How many times an acquirer found it abandoned.
    pub abandon_count: u32,
    /// The process and thread of the last owner that abandoned it, if any.
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_time::opt_abandoner"))]
    pub last_abandoner: Option<(u32, u32)>,
    /// Why the last abandonment happened, when its owner gave the mutex up on purpose
    /// with [`NamedMutex::abandon`](crate::NamedMutex::abandon) (an owner that died says
    /// nothing: then `None`).
    #[cfg_attr(feature = "serde", serde(default))]
    pub abandon_note: Option<String>,
    /// The object outlives its last handle until an acquirer has been told of its
    /// abandonment ([`MutexOptions::keep_abandoned`](crate::MutexOptions::keep_abandoned)):
    /// its owner is dead, and it is not `stale`.
    #[cfg_attr(feature = "serde", serde(default))]
    pub kept_for_report: bool,
    /// False for an object the caller may not open (another user's private `Global\`
    /// object): `list` shows it by its name, creator and handles, and every other field is
    /// empty.
    #[cfg_attr(feature = "serde", serde(default = "crate::serde_time::yes"))]
    pub accessible: bool,
}

/// The thread that owns a mutex.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct OwnerInfo {
    /// The owner's process id, as seen from the caller's PID namespace when
    /// `same_pid_namespace`, else as the owner saw itself. `None` if unknown.
    pub pid: Option<u32>,
    /// The owner's thread id (same caveat).
    pub tid: Option<u32>,
    /// Whether the owner ran in the caller's PID namespace, so that `pid` names a process
    /// the caller can see.
    pub same_pid_namespace: bool,
    /// The owner's user id, if known.
    pub uid: Option<u32>,
    /// When the owner acquired the mutex, if recorded (acquisitions that did not have to
    /// wait are not timed, to keep them fast, unless the owner's handle was opened with
    /// [`MutexOptions::time_acquisitions`](crate::MutexOptions::time_acquisitions): then
    /// this is `None`).
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_time::opt_time"))]
    pub acquired: Option<SystemTime>,
    /// False when the owner has ended: the mutex is abandoned and the next acquirer will
    /// get `WAIT_ABANDONED`.
    pub alive: bool,
    /// The owner's process id in the caller's PID namespace, where the kernel shows it
    /// there: `pid` itself in the same namespace; for an owner in a namespace nested in the
    /// caller's (a container started from here), its id out here, from the `NSpid` line of
    /// `/proc/<pid>/status`. `None` when the caller cannot see the process (another
    /// container, or it has ended).
    #[cfg_attr(feature = "serde", serde(default))]
    pub visible_pid: Option<u32>,
    /// Whether the owner's process is stopped (SIGSTOP, a debugger, a paused container): it
    /// holds the mutex and will not release it until it is continued. False when unknown.
    #[cfg_attr(feature = "serde", serde(default))]
    pub stopped: bool,
}

impl From<contract::MutexInfo> for MutexInfo {
    fn from(i: contract::MutexInfo) -> MutexInfo {
        MutexInfo {
            name: i.name,
            namespace: i.namespace.into(),
            owner: i.owner.map(OwnerInfo::from),
            count: i.count,
            waiters: i.waiters,
            handles: i.handles,
            stale: i.stale,
            creator_uid: i.creator_uid,
            creator_pid: i.creator_pid,
            created: i.created,
            abandon_count: i.abandon_count,
            last_abandoner: i.last_abandoner,
            abandon_note: i.abandon_note,
            kept_for_report: i.kept_for_report,
            accessible: i.accessible,
        }
    }
}

impl From<contract::OwnerInfo> for OwnerInfo {
    fn from(o: contract::OwnerInfo) -> OwnerInfo {
        OwnerInfo {
            pid: o.pid,
            tid: o.tid,
            same_pid_namespace: o.same_pid_namespace,
            uid: o.uid,
            acquired: o.acquired,
            alive: o.alive,
            visible_pid: o.visible_pid,
            stopped: o.stopped,
        }
    }
}

/// Every user's `Local\` mutexes that the caller may read, from
/// [`MutexOptions::list_all_users`](crate::MutexOptions::list_all_users).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AllUsers {
    /// The mutexes, by user (`creator_uid`), then name.
    pub mutexes: Vec<MutexInfo>,
    /// Users that have a namespace under the root that the caller may not read (only
    /// root may read every user's).
    pub unreadable: Vec<u32>,
}

/// Every mutex in `namespace` under the default root (for `Local`, the calling user's).
///
/// Every mutex that exists throughout the call is listed, however many others are created
/// and closed meanwhile; those may be listed or not. (Under Wine before 9.11, which reads
/// the object directory one entry per call, this is very likely rather than certain: see
/// the README.)
///
/// ```
/// use namedmutex::{NamedMutex, Namespace};
///
/// let name = format!("doc-list-{}", std::process::id());
/// let (_m, _) = NamedMutex::create(&name, false)?;
/// let all = namedmutex::list(Namespace::Local)?;
/// assert!(all.iter().any(|i| i.name == name));
/// # Ok::<(), namedmutex::Error>(())
/// ```
pub fn list(namespace: Namespace) -> crate::Result<Vec<MutexInfo>> {
    crate::MutexOptions::new().list(namespace)
}

/// The mutex `name` under the default root, or `None` if there is none.
///
/// ```
/// let missing = format!("doc-info-missing-{}", std::process::id());
/// assert!(namedmutex::info(&missing)?.is_none());
/// # Ok::<(), namedmutex::Error>(())
/// ```
pub fn info(name: &str) -> crate::Result<Option<MutexInfo>> {
    crate::MutexOptions::new().info(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    /// Every field a backend reports reaches the public snapshot, in its own place (distinct
    /// values, so a swapped or dropped field fails).
    #[test]
    fn every_field_of_a_backend_snapshot_is_carried_over() {
        let at = |s| Some(UNIX_EPOCH + Duration::from_secs(s));
        let owner = contract::OwnerInfo {
            pid: Some(11),
            tid: Some(12),
            same_pid_namespace: true,
            uid: Some(13),
            acquired: at(14),
            alive: false,
            visible_pid: Some(15),
            stopped: true,
        };
        let sys = contract::MutexInfo {
            name: "Global\\x".to_owned(),
            namespace: contract::Namespace::Global,
            owner: Some(owner),
            count: 1,
            waiters: 2,
            handles: 3,
            stale: true,
            creator_uid: 4,
            creator_pid: 5,
            created: at(6),
            abandon_count: 7,
            last_abandoner: Some((8, 9)),
            abandon_note: Some("note".to_owned()),
            kept_for_report: true,
            accessible: false,
        };
        let public = MutexInfo::from(sys);
        assert_eq!(
            (
                public.name.as_str(),
                public.namespace,
                public.count,
                public.waiters
            ),
            ("Global\\x", Namespace::Global, 1, 2)
        );
        assert_eq!(
            (
                public.handles,
                public.stale,
                public.creator_uid,
                public.creator_pid
            ),
            (3, true, 4, 5)
        );
        assert_eq!(
            (public.created, public.abandon_count, public.last_abandoner),
            (at(6), 7, Some((8, 9)))
        );
        assert_eq!(
            (
                public.abandon_note.as_deref(),
                public.kept_for_report,
                public.accessible
            ),
            (Some("note"), true, false)
        );
        let o = public.owner.expect("the owner");
        assert_eq!(
            (o.pid, o.tid, o.same_pid_namespace, o.uid),
            (Some(11), Some(12), true, Some(13))
        );
        assert_eq!(
            (o.acquired, o.alive, o.visible_pid, o.stopped),
            (at(14), false, Some(15), true)
        );
    }
}
