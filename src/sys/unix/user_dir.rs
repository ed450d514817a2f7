//! Finding a user's directory in the root, even where another user squatted its name.
//!
//! A user's directory is `namedmutex-<uid>` (holding the `local/` namespace and the
//! registry). The root is shared and sticky (`/dev/shm`), so any local user can create that
//! name first: a directory, link or file of theirs. We never use what is not ours, but a
//! refusal would lock the user out until root removes it; on Windows nobody can squat
//! another user's `Local\`. So a squatted name moves the directory along a chain that every
//! process of the user walks the same way:
//!
//! `namedmutex-<uid>`, then `namedmutex-<uid>.1`, `namedmutex-<uid>.2`, ...
//!
//! **The rule.** Use the first name of the chain that is a directory of ours. If none is,
//! create one at the first free name. A squatter can take names ahead of us, but cannot
//! remove ours (the root is sticky), so once one of ours exists every process of the user
//! finds that same one, whatever the squatter adds or removes later: a name freed below it
//! is passed over, because the walk looks for an existing directory of ours before it
//! creates anything. Two of our processes creating at once race on `mkdir`, which one wins;
//! the other finds the winner's directory on its next walk.
//!
//! The primary name is looked at first with one `open`: unless it is squatted or missing,
//! nothing else is read. A walk reads the root directory once (`getdents`).

use super::files;
use super::root::{USER_DIR_PREFIX, root_error as io_error};
use crate::sys::contract::{Error, ErrorKind, Result};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use std::path::Path;

/// How many times a walk is repeated when others keep taking the name it chose.
const ATTEMPTS: u32 = 64;

/// The calling user's directory in the root `root` (at `root_path`): opened, checked to
/// belong to `owner` (the uid the file system shows us) and set to `mode`. `key` is the uid
/// the names are made of. Returns the directory and its name.
pub(super) fn own(
    root: BorrowedFd<'_>,
    root_path: &Path,
    key: u32,
    owner: u32,
    mode: u32,
) -> Result<(OwnedFd, String)> {
    let primary = format!("{USER_DIR_PREFIX}{key}");
    for _ in 0..ATTEMPTS {
        match look(root, &primary, owner) {
            Look::Ours(dir) => return finish(dir, primary, root_path, mode),
            Look::Missing => {
                // Before making the primary, a directory of ours further along the chain
                // (made while the primary was squatted) must win.
                if let Some((dir, name)) = walk(root, key, owner).0 {
                    return finish(dir, name, root_path, mode);
                }
                make(root, root_path, &primary, mode)?;
                continue; // look at what is there now
            }
            Look::Foreign => {
                let (ours, free) = walk(root, key, owner);
                if let Some((dir, name)) = ours {
                    return finish(dir, name, root_path, mode);
                }
                make(root, root_path, &format!("{primary}.{free}"), mode)?;
                continue;
            }
            Look::Error(e) => return Err(io_error(&root_path.join(&primary), "cannot open", e)),
        }
    }
    Err(Error::new(
        ErrorKind::AccessDenied,
        format!(
            "cannot find or make a directory of our own in {} (uid {key}): other users kept taking {primary} and the names after it",
            root_path.display()
        ),
    ))
}

/// Makes the directory `name` unless it exists, but not while processes still use a
/// removed directory of that name (`cleaned.rs`). It is made under a temporary name, checked
/// for, and renamed into place only then, so that no process finds it before the check.
fn make(root: BorrowedFd<'_>, root_path: &Path, name: &str, mode: u32) -> Result<()> {
    remove_dead_temporaries(root, name);
    let temporary = format!(".{name}.new-{}", std::process::id());
    let discard = || {
        let _ = rustix::fs::unlinkat(root, temporary.as_str(), rustix::fs::AtFlags::REMOVEDIR);
    };
    let cannot = |e| io_error(&root_path.join(name), "cannot create", e);
    match rustix::fs::mkdirat(
        root,
        temporary.as_str(),
        crate::sys::unix::files::mode(mode),
    ) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(cannot(e)),
    }
    if let Err(e) = super::cleaned::refuse_if_orphans(root_path, name) {
        discard();
        return Err(e);
    }
    super::fault::point("userdir.before_rename");
    #[cfg(not(target_os = "freebsd"))]
    let renamed = rustix::fs::renameat_with(
        root,
        temporary.as_str(),
        root,
        name,
        rustix::fs::RenameFlags::NOREPLACE,
    );
    // FreeBSD has no rename that refuses to replace (a plain one would replace a directory
    // another process just made, while still empty): made in place, as below.
    #[cfg(target_os = "freebsd")]
    let renamed: rustix::io::Result<()> = Err(Errno::NOSYS);
    if !matches!(renamed, Ok(())) {
        discard();
    }
    match renamed {
        // Made; or somebody made it (or planted something) first: the caller looks again.
        Ok(()) | Err(Errno::EXIST | Errno::NOTEMPTY) => Ok(()),
        // A file system without RENAME_NOREPLACE (FUSE, when allowed): make it in place,
        // after the same check.
        Err(Errno::INVAL | Errno::NOSYS) => {
            match rustix::fs::mkdirat(root, name, crate::sys::unix::files::mode(mode)) {
                Ok(()) | Err(Errno::EXIST) => Ok(()),
                Err(e) => Err(cannot(e)),
            }
        }
        Err(e) => Err(cannot(e)),
    }
}

/// Removes the temporary directories (`.<name>.new-<pid>`) of processes that died between
/// making one and renaming it into place.
fn remove_dead_temporaries(root: BorrowedFd<'_>, name: &str) {
    let prefix = format!(".{name}.new-");
    let Ok(entries) = rustix::fs::Dir::read_from(root) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(file) = entry.file_name().to_str() else {
            continue;
        };
        let Some(pid) = file
            .strip_prefix(&prefix)
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        let alive = rustix::process::Pid::from_raw(pid)
            .is_some_and(|p| rustix::process::test_kill_process(p) != Err(Errno::SRCH));
        if !alive {
            let _ = rustix::fs::unlinkat(root, file, rustix::fs::AtFlags::REMOVEDIR);
        }
    }
}

/// The directory of user `key` (whose files the file system shows as `owner`), opened with
/// `O_PATH` (another user's directory is searchable, not readable), to read their registry.
/// How a directory is opened only to be looked at (`O_PATH` where it exists).
#[cfg(target_os = "linux")]
const LOOK_ONLY: OFlags = OFlags::PATH;
#[cfg(not(target_os = "linux"))]
const LOOK_ONLY: OFlags = OFlags::RDONLY;

pub(super) fn of(root: BorrowedFd<'_>, key: u32, owner: u32) -> Option<OwnedFd> {
    let primary = format!("{USER_DIR_PREFIX}{key}");
    let path_only = |name: &str| {
        rustix::fs::openat(
            root,
            name,
            LOOK_ONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()
        .filter(|d| rustix::fs::fstat(d).is_ok_and(|st| st.st_uid == owner))
    };
    if let Some(dir) = path_only(&primary) {
        return Some(dir);
    }
    chain_names(root, key)
        .into_iter()
        .find_map(|(_, name)| path_only(&name))
}

/// The users that have a directory in the root (by the names: `namedmutex-<uid>` and the
/// chain after it), each once, in order.
pub(super) fn users(root: BorrowedFd<'_>) -> Vec<u32> {
    let Ok(entries) = rustix::fs::Dir::read_from(root) else {
        return Vec::new();
    };
    let mut uids: Vec<u32> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str().ok()?.to_owned();
            let rest = name.strip_prefix(USER_DIR_PREFIX)?;
            let digits = rest.split('.').next()?;
            digits.parse().ok()
        })
        .collect();
    uids.sort_unstable();
    uids.dedup();
    uids
}

enum Look {
    Ours(OwnedFd),
    Missing,
    /// Somebody else's directory, a link, a file: squatted.
    Foreign,
    Error(Errno),
}

fn look(root: BorrowedFd<'_>, name: &str, owner: u32) -> Look {
    match files::open_dir_in(root, name) {
        Ok(dir) => match rustix::fs::fstat(&dir) {
            Ok(st) if st.st_uid == owner => Look::Ours(dir),
            Ok(_) => Look::Foreign,
            Err(e) => Look::Error(e),
        },
        Err(Errno::NOENT) => Look::Missing,
        Err(Errno::LOOP | Errno::NOTDIR) => Look::Foreign,
        Err(e) => Look::Error(e),
    }
}

/// The names `namedmutex-<key>.<k>` (k ≥ 1) present in the root, by k.
fn chain_names(root: BorrowedFd<'_>, key: u32) -> Vec<(u64, String)> {
    let prefix = format!("{USER_DIR_PREFIX}{key}.");
    let Ok(entries) = rustix::fs::Dir::read_from(root) else {
        return Vec::new();
    };
    let mut found: Vec<(u64, String)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str().ok()?.to_owned();
            let k: u64 = name.strip_prefix(&prefix)?.parse().ok()?;
            // Only the canonical spelling (no leading zeros or signs) is a link of the chain.
            (k >= 1 && name == format!("{prefix}{k}")).then_some((k, name))
        })
        .collect();
    found.sort();
    found
}

/// Walks the chain after the primary: the first directory of ours, if any, and the first
/// free k.
fn walk(root: BorrowedFd<'_>, key: u32, owner: u32) -> (Option<(OwnedFd, String)>, u64) {
    let names = chain_names(root, key);
    for (_, name) in &names {
        if let Look::Ours(dir) = look(root, name, owner) {
            return (Some((dir, name.clone())), 0);
        }
    }
    let mut free = 1;
    for (k, _) in &names {
        if *k == free {
            free += 1;
        } else if *k > free {
            break;
        }
    }
    (None, free)
}

/// Sets the mode of our directory back to `mode` if the umask (or we) changed it.
fn finish(dir: OwnedFd, name: String, root_path: &Path, mode: u32) -> Result<(OwnedFd, String)> {
    let path = root_path.join(&name);
    let st =
        rustix::fs::fstat(&dir).map_err(|e| io_error(&path, "cannot inspect the directory", e))?;
    if crate::sys::unix::files::mode_bits(&st) & 0o7777 != mode {
        rustix::fs::fchmod(dir.as_fd(), crate::sys::unix::files::mode(mode))
            .map_err(|e| io_error(&path, "cannot set the mode of the directory", e))?;
    }
    Ok((dir, name))
}
