//! Noticing that a cleaner removed a user's directory under processes that still use it.
//!
//! systemd-logind's `RemoveIPC=yes` deletes a user's files under `/dev/shm` (the default
//! root) when their last session ends, directory and all, whether processes use them or
//! not. Those processes go on with their now nameless objects; a process that then makes
//! the directory afresh would make fresh objects beside them, and the two would not exclude
//! each other. So a process that is about to make a user directory first looks for
//! processes of the same user that still use mutexes of a removed directory of that name
//! (`/proc/<pid>/fd` links to its `local/` directory and to an object file in it, both
//! ending in ` (deleted)`), and if it finds any it does not make the directory: the caller gets `Busy`, naming them (the command waits for them to
//! end, as it would for the lock itself). This runs only when the directory is missing,
//! which is rare: the first use after boot, or after a cleaner.

use crate::sys::contract::{Error, ErrorKind, Result};
use std::path::Path;

/// The environment variable that lets a process make a user directory anyway.
pub(super) const ALLOW_SPLIT_ENV: &str = "NAMEDMUTEX_ALLOW_SPLIT";

/// Refuses to make `dir_name` in the root at `root_path` while processes still use files
/// of a removed directory of that name.
pub(super) fn refuse_if_orphans(root_path: &Path, dir_name: &str) -> Result<()> {
    if std::env::var_os(ALLOW_SPLIT_ENV).is_some_and(|v| v == "1") {
        return Ok(());
    }
    let Ok(root) = std::fs::canonicalize(root_path) else {
        return Ok(());
    };
    let prefix = format!("{}/{dir_name}/", root.display());
    let pids = holders_of_removed(&prefix);
    if pids.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = pids.iter().map(u32::to_string).collect();
    Err(Error::new(
        ErrorKind::Busy,
        format!(
            "{} was removed while pid {} still use mutexes in it (a cleaner: systemd-logind's \
             RemoveIPC=yes at logout, or rm); making it afresh would let this process run \
             beside them, so it is not made while they live (set {ALLOW_SPLIT_ENV}=1 to go \
             on anyway; see RELIABILITY.md, \"Cleaners\")",
            root.join(dir_name).display(),
            list.join(", ")
        ),
    ))
}

/// The processes (that we may inspect: our own user's, or all for root) that still use
/// mutexes of a removed directory whose path began with `prefix`: their `local/` directory
/// shows as removed, and so does an object file in it. Both are needed: in normal use a
/// file of a live directory shows as removed for a moment (a registry being made with
/// `O_TMPFILE`, an object between its unlink and its close), but the `local/` directory
/// itself never is; and a process that only has the directory open (it used mutexes once)
/// holds none that could be split.
fn holders_of_removed(prefix: &str) -> Vec<u32> {
    let me = std::process::id();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let local = format!("{prefix}{} (deleted)", super::root::LOCAL_DIR);
    let in_local = format!("{prefix}{}/", super::root::LOCAL_DIR);
    let mut pids = Vec::new();
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue; // another user's process, or gone
        };
        let (mut dir_removed, mut object_removed) = (false, false);
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let target = target.to_string_lossy();
            dir_removed |= target == local;
            object_removed |= target.starts_with(&in_local) && target.ends_with(" (deleted)");
        }
        if dir_removed && object_removed {
            pids.push(pid);
        }
    }
    pids
}
