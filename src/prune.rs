//! Removing stale objects: those whose processes all died without closing them.

use crate::name::Namespace;

/// What [`prune`] removed and what it left.
///
/// ```
/// let pruned = namedmutex::prune(namedmutex::Namespace::Local)?;
/// println!("{} stale objects removed, {} in use", pruned.removed, pruned.in_use);
/// # Ok::<(), namedmutex::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Pruned {
    /// Stale objects removed (no process had them open; their owners, if any, were dead),
    /// and empty files left by creators that died before finishing one.
    pub removed: u32,
    /// Objects left because some process has them open.
    pub in_use: u32,
    /// Objects left because they are kept until an acquirer has been told of their
    /// abandonment ([`MutexOptions::keep_abandoned`](crate::MutexOptions::keep_abandoned)).
    pub kept_for_report: u32,
    /// Files left because they are not valid objects (an open of their name says what is
    /// wrong), or because the caller may not remove them (another user's, in `Global\`).
    pub skipped: u32,
}

impl From<crate::sys::Swept> for Pruned {
    fn from(s: crate::sys::Swept) -> Pruned {
        Pruned {
            removed: s.removed,
            in_use: s.in_use,
            kept_for_report: s.kept_for_report,
            skipped: s.skipped,
        }
    }
}

/// Removes the stale objects of `namespace` under the default root: objects no process
/// has open any more, left behind when all their processes died (SIGKILL, the OOM
/// killer). An open of the same name would remove such an object; a program that uses
/// per-job or per-pid names never opens it again, so their files would stay (in memory,
/// on `/dev/shm`) until reboot. Never removes an object some process has open, or one kept
/// for the report of its abandonment. `list` prunes too, and the first create of a new
/// object in each process prunes a few files at random; a `namedmutex prune` from cron
/// bounds what is left between. Nothing to do on Windows, whose kernel removes objects
/// with their last handle.
///
/// ```
/// use namedmutex::{MutexOptions, Namespace};
///
/// let dir = std::env::temp_dir().join(format!("doc-prune-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// # use std::os::unix::fs::PermissionsExt;
/// # std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
/// let opts = MutexOptions::new().root(&dir);
/// let (open, _) = opts.create("in-use")?;
/// # #[cfg(target_os = "linux")] {
/// let pruned = opts.prune(Namespace::Local)?;
/// assert_eq!((pruned.removed, pruned.in_use), (0, 1)); // an open object stays
/// # }
/// # drop(open);
/// # let _ = std::fs::remove_dir_all(&dir);
/// # Ok::<(), namedmutex::Error>(())
/// ```
pub fn prune(namespace: Namespace) -> crate::Result<Pruned> {
    crate::MutexOptions::new().prune(namespace)
}
