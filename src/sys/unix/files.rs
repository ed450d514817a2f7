//! File operations relative to a verified directory: opening without following links, and
//! making new files, either published atomically so that they appear complete or not at all
//! (registries), or created empty under their final name and written afterwards (mutex
//! objects: `object/open.rs` says how readers tell an unfinished one).

use crate::sys::contract::{Error, ErrorKind, Result};
#[cfg(target_os = "linux")]
use rustix::fd::AsFd;
use rustix::fd::{BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;
#[cfg(target_os = "linux")]
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicU64, Ordering};

/// Opens `name` inside `dir`, never following a symbolic link, close-on-exec. `O_NONBLOCK`
/// keeps a FIFO planted under our name from blocking the open.
pub(super) fn open_in(
    dir: BorrowedFd<'_>,
    name: &str,
    flags: OFlags,
) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        flags | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
    )
}

/// Opens the directory `name` inside `dir` without following a link.
pub(super) fn open_dir_in(dir: BorrowedFd<'_>, name: &str) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// How a new file is made: its permissions and size.
pub(super) struct NewFile {
    /// Exact permission bits (applied with `fchmod`, so the umask does not matter).
    pub mode: u32,
    /// A group to give the file (`Security::UnixGroup`).
    pub group: Option<u32>,
    /// Size in bytes; the file is zero-filled.
    pub size: usize,
}

/// Creates a file `name` in `dir`, prepared by `init` before it becomes visible, and links it
/// into place only if `name` does not exist. Returns `Ok(None)` when it already exists.
///
/// The file is built as an anonymous `O_TMPFILE` inode, so a crash at any step leaves
/// nothing behind; it is published with `linkat` through `/proc/self/fd`, which fails rather
/// than replace an existing name. Where either is unavailable, a uniquely named temporary
/// file is used instead, and removed after the link.
pub(super) fn publish_new<T>(
    dir: BorrowedFd<'_>,
    name: &str,
    spec: &NewFile,
    #[cfg_attr(not(target_os = "linux"), allow(unused_mut))] mut init: impl FnMut(&OwnedFd) -> Result<T>,
) -> Result<Option<(OwnedFd, T)>> {
    // macOS and FreeBSD have no `O_TMPFILE`: their objects go by a temporary name.
    #[cfg(target_os = "linux")]
    if !TMPFILE_LINK_FAILED.load(Ordering::Relaxed) {
        let tmp = rustix::fs::openat(
            dir,
            ".",
            OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
            crate::sys::unix::files::mode(0o600),
        );
        match tmp {
            Ok(fd) => {
                prepare(&fd, spec)?;
                let value = init(&fd)?;
                match link_anonymous(&fd, dir, name) {
                    Ok(()) => return Ok(Some((fd, value))),
                    Err(Errno::EXIST) => return Ok(None),
                    Err(e) if e == Errno::NOENT || e == Errno::PERM || e == Errno::ACCESS => {
                        // No /proc, and no CAP_DAC_READ_SEARCH for AT_EMPTY_PATH: use named
                        // temporary files from now on.
                        TMPFILE_LINK_FAILED.store(true, Ordering::Relaxed);
                    }
                    Err(e) => return Err(io_error("link a new object file as", name, e)),
                }
            }
            Err(e) if e == Errno::OPNOTSUPP || e == Errno::ISDIR || e == Errno::INVAL => {
                TMPFILE_LINK_FAILED.store(true, Ordering::Relaxed);
            }
            Err(e) => return Err(io_error("create a new object file for", name, e)),
        }
    }
    publish_via_temp_name(dir, name, spec, init)
}

/// Set once `O_TMPFILE` or linking it into place proved impossible in this process.
#[cfg(target_os = "linux")]
static TMPFILE_LINK_FAILED: AtomicBool = AtomicBool::new(false);

fn prepare(fd: &OwnedFd, spec: &NewFile) -> Result<()> {
    set_permissions(fd, None, spec.mode, spec.group)?;
    rustix::fs::ftruncate(fd, spec.size as u64)
        .map_err(|e| io_error("size", "a new object file", e))?;
    // Give the first page real blocks now (all of an object file; a registry's header):
    // on a full tmpfs, touching an unbacked page of a shared mapping raises SIGBUS
    // instead of failing with ENOSPC.
    let first_page = spec.size.min(4096) as u64;
    match rustix::fs::fallocate(fd, rustix::fs::FallocateFlags::empty(), 0, first_page) {
        Ok(()) | Err(Errno::OPNOTSUPP) => Ok(()),
        Err(e) => Err(io_error("allocate", "a new object file", e)),
    }
}

/// Gives a new file exactly the permission bits `mode` (whatever the umask took away when
/// it was created; `current` is its mode if known, to skip a needless `fchmod`) and, if
/// asked, the group `group`.
pub(super) fn set_permissions(
    fd: &OwnedFd,
    current: Option<u32>,
    mode: u32,
    group: Option<u32>,
) -> Result<()> {
    if current.is_none_or(|m| m & 0o7777 != mode) {
        rustix::fs::fchmod(fd, crate::sys::unix::files::mode(mode))
            .map_err(|e| io_error("set the permissions of", "a new object file", e))?;
    }
    if let Some(gid) = group {
        let gid = rustix::fs::Gid::from_raw(gid);
        rustix::fs::fchown(fd, None, Some(gid)).map_err(|e| {
            Error::io(
                ErrorKind::AccessDenied,
                format!("cannot give a new object file to group {}", gid.as_raw()),
                e.into(),
            )
        })?;
    }
    Ok(())
}

/// Creates the empty file `name` in `dir`, read-write, never through a link; `Ok(None)`
/// when the name exists already.
pub(super) fn create_exclusive(
    dir: BorrowedFd<'_>,
    name: &str,
    mode: u32,
) -> Result<Option<OwnedFd>> {
    match rustix::fs::openat(
        dir,
        name,
        OFlags::CREATE
            | OFlags::EXCL
            | OFlags::RDWR
            | OFlags::NOFOLLOW
            | OFlags::CLOEXEC
            | OFlags::NONBLOCK,
        crate::sys::unix::files::mode(mode),
    ) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::EXIST) => Ok(None),
        Err(e) => Err(io_error("create the object file", name, e)),
    }
}

/// Whether `name` in `dir` is an empty regular file (not following a link).
pub(super) fn is_empty_file(dir: BorrowedFd<'_>, name: &str) -> bool {
    rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).is_ok_and(|st| {
        rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile
            && st.st_size == 0
    })
}

/// Writes all of `data` at `offset` of `fd`.
pub(super) fn write_all_at(fd: &OwnedFd, data: &[u8], offset: u64, what: &str) -> Result<()> {
    let mut done = 0;
    while done < data.len() {
        match rustix::io::pwrite(fd, &data[done..], offset + done as u64) {
            Ok(0) => return Err(io_error("write", what, Errno::NOSPC)),
            Ok(n) => done += n,
            Err(Errno::INTR) => {}
            Err(e) => return Err(io_error("write", what, e)),
        }
    }
    Ok(())
}

/// Links an `O_TMPFILE` inode into `dir` as `name`.
#[cfg(target_os = "linux")]
fn link_anonymous(fd: &OwnedFd, dir: BorrowedFd<'_>, name: &str) -> rustix::io::Result<()> {
    use std::os::fd::AsRawFd;
    let proc_path = format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd());
    match rustix::fs::linkat(
        rustix::fs::CWD,
        proc_path.as_str(),
        dir,
        name,
        AtFlags::SYMLINK_FOLLOW,
    ) {
        Err(Errno::NOENT) => {
            // No /proc: AT_EMPTY_PATH works with CAP_DAC_READ_SEARCH.
            rustix::fs::linkat(fd, "", dir, name, AtFlags::EMPTY_PATH)
        }
        other => other,
    }
}

fn publish_via_temp_name<T>(
    dir: BorrowedFd<'_>,
    name: &str,
    spec: &NewFile,
    mut init: impl FnMut(&OwnedFd) -> Result<T>,
) -> Result<Option<(OwnedFd, T)>> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let tmp_name = format!(
        ".nmtx-tmp.{}.{}.{}",
        rustix::process::getpid().as_raw_nonzero(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    );
    let fd = rustix::fs::openat(
        dir,
        tmp_name.as_str(),
        OFlags::CREATE | OFlags::EXCL | OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        crate::sys::unix::files::mode(0o600),
    )
    .map_err(|e| io_error("create a temporary object file for", name, e))?;
    let cleanup = |dir: BorrowedFd<'_>| {
        let _ = rustix::fs::unlinkat(dir, tmp_name.as_str(), AtFlags::empty());
    };
    let result = prepare(&fd, spec).and_then(|()| init(&fd));
    let value = match result {
        Ok(v) => v,
        Err(e) => {
            cleanup(dir);
            return Err(e);
        }
    };
    let linked = rustix::fs::linkat(dir, tmp_name.as_str(), dir, name, AtFlags::empty());
    cleanup(dir);
    match linked {
        Ok(()) => Ok(Some((fd, value))),
        Err(Errno::EXIST) => Ok(None),
        Err(e) => Err(io_error("link a new object file", name, e)),
    }
}

/// An I/O failure while doing `what` to `object`.
/// The refusal to open another user's object: who made it, who may open it, and what its
/// creator would have to do to share it, read from the file's owner and mode (visible to
/// all in the shared root, whatever the mode).
pub(super) fn denied(dir: BorrowedFd<'_>, file: &str, name: &str) -> Error {
    let Ok(st) = rustix::fs::statat(dir, file, AtFlags::SYMLINK_NOFOLLOW) else {
        return io_error("open the mutex", &format!("{name:?}"), Errno::ACCESS);
    };
    let creator = account_name("/etc/passwd", st.st_uid).map_or_else(
        || format!("uid {}", st.st_uid),
        |n| format!("uid {} ({n})", st.st_uid),
    );
    let mode = crate::sys::unix::files::mode_bits(&st) & 0o777;
    let who = if mode & 0o060 != 0 {
        let group = account_name("/etc/group", st.st_gid).map_or_else(
            || format!("group {}", st.st_gid),
            |n| format!("group {} ({n})", st.st_gid),
        );
        format!("its creator and {group} may open it")
    } else {
        "only its creator may open it".to_owned()
    };
    Error::io(
        ErrorKind::AccessDenied,
        format!(
            "cannot open the mutex {name:?}: it was created by {creator} and {who} (mode {mode:04o}); \
             to share it, its creator makes it with Security::Everyone or \
             Security::UnixGroup (the namedmutex command's --everyone or --group)"
        ),
        Errno::ACCESS.into(),
    )
}

/// The name of account `id` in a passwd- or group-format file, if listed there (a hint
/// for messages; accounts from other databases show as numbers).
fn account_name(file: &str, id: u32) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id_field = fields.nth(1)?;
        (id_field.parse::<u32>().ok()? == id).then(|| name.to_owned())
    })
}

/// Permission bits for a call that takes a mode (whose width differs between targets).
#[allow(clippy::unnecessary_cast)]
pub(super) fn mode(bits: u32) -> Mode {
    Mode::from_raw_mode(bits as rustix::fs::RawMode)
}

/// A file's type and permission bits (`st_mode`, whose width differs between targets).
#[allow(clippy::unnecessary_cast)]
pub(super) fn mode_bits(st: &rustix::fs::Stat) -> u32 {
    st.st_mode as u32
}

/// A file's identity: its device and inode (the key of objects and registries).
#[allow(clippy::unnecessary_cast)] // the field types differ between targets
pub(super) fn key(st: &rustix::fs::Stat) -> (u64, u64) {
    (st.st_dev as u64, st.st_ino as u64)
}

pub(super) fn io_error(what: &str, object: &str, e: Errno) -> Error {
    let kind = match e {
        Errno::ACCESS | Errno::PERM => ErrorKind::AccessDenied,
        Errno::MFILE | Errno::NFILE | Errno::NOMEM | Errno::NOSPC | Errno::DQUOT => {
            ErrorKind::ResourceExhausted
        }
        _ => ErrorKind::Io,
    };
    Error::io(kind, format!("cannot {what} {object}"), e.into())
}
