//! How a backend reports what it sees of an object without opening it (`list`, `info`).
//! The public `MutexInfo` and `OwnerInfo` document each field and are made from these.

use super::name::Namespace;
use std::time::SystemTime;

/// A snapshot of one mutex object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MutexInfo {
    /// As the object records it: `Global\\x`, or no prefix for `Local\\`.
    pub name: String,
    /// Where the object is.
    pub namespace: Namespace,
    /// `None` when free.
    pub owner: Option<OwnerInfo>,
    /// The recursion count (0 when free).
    pub count: u32,
    /// Sleeping waiters (approximate).
    pub waiters: u32,
    /// Processes that have it open, as the platform counts them.
    pub handles: u32,
    /// Nobody has it open: the next open removes it.
    pub stale: bool,
    /// The creating user.
    pub creator_uid: u32,
    /// The creating process, as it saw itself.
    pub creator_pid: u32,
    /// Creation time.
    pub created: Option<SystemTime>,
    /// Acquisitions that found it abandoned.
    pub abandon_count: u32,
    /// Process and thread of the last abandoner.
    pub last_abandoner: Option<(u32, u32)>,
    /// The note of an abandonment on purpose.
    pub abandon_note: Option<String>,
    /// Kept past its last handle for an abandonment report.
    pub kept_for_report: bool,
    /// False for an object the caller may not open (only name, creator, handles are set).
    pub accessible: bool,
}

impl MutexInfo {
    /// What is known of an object the caller may not open: its name and where it is,
    /// who created it and how many handles it has, if the platform says.
    #[cfg_attr(not(any(target_os = "linux", windows)), allow(dead_code))] // no backend lists yet
    pub(crate) fn inaccessible(
        name: String,
        namespace: Namespace,
        creator_uid: u32,
        handles: u32,
    ) -> MutexInfo {
        MutexInfo {
            name,
            namespace,
            owner: None,
            count: 0,
            waiters: 0,
            handles,
            stale: false,
            creator_uid,
            creator_pid: 0,
            created: None,
            abandon_count: 0,
            last_abandoner: None,
            abandon_note: None,
            kept_for_report: false,
            accessible: false,
        }
    }
}

/// The thread that owns a mutex.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OwnerInfo {
    /// Process id (see `same_pid_namespace`).
    pub pid: Option<u32>,
    /// Thread id.
    pub tid: Option<u32>,
    /// Whether `pid` is in the caller's PID namespace.
    pub same_pid_namespace: bool,
    /// User id.
    pub uid: Option<u32>,
    /// When it was acquired, if recorded.
    pub acquired: Option<SystemTime>,
    /// False when the owner has ended (abandoned).
    pub alive: bool,
    /// Its process id as the caller sees it, if the caller can.
    pub visible_pid: Option<u32>,
    /// Its process is stopped (SIGSTOP, a debugger).
    pub stopped: bool,
}
