//! Opening or creating a named object: the state machine over the object file (FORMAT.md,
//! "Lifetime" and "Creating an object").

use super::super::files;
use super::super::layout::{self, FLAG_DEAD, FLAG_GLOBAL, OBJECT_SIZE, ObjectInit, ObjectPage};
use super::super::mapping::Mapping;
use super::super::root::Root;
use super::super::thread;
use super::lifetime::{keeps_report, read_flags, remove_stale, unlink_if_same};
use super::table::{Table, insert, lookup, with_table};
use super::{NewObject, Object, OpenMode, Place, busy, flock, map_error, name_the_file, this_pid};
use crate::sys::contract::Security;
use crate::sys::contract::{Error, ErrorKind, Result};
use crate::sys::contract::{Name, Namespace};
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{AtFlags, FlockOperation, OFlags};
use rustix::io::Errno;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How long an open keeps retrying, by default, while another process holds the object
/// file's lock exclusively (a closer removing it takes microseconds; a stopped or hostile
/// holder is refused after this, unless the caller chose another bound).
const BUSY_LIMIT: Duration = Duration::from_secs(2);

impl Object {
    /// Opens the named object, or creates it when `create` says how.
    /// Returns the object and whether it existed.
    pub(in crate::sys::unix) fn open_named(
        root: &Arc<Root>,
        name: &Name<'_>,
        create: Option<&NewObject>,
        mode: OpenMode,
    ) -> Result<(Arc<Object>, bool)> {
        let file = Root::file_name(name.namespace, name.object);
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            let found = with_table(|table| -> Result<Found> {
                let dir = root.dir_for(name.namespace);
                match files::open_in(dir, &file, OFlags::RDWR) {
                    Ok(fd) => open_existing(table, root, name, &file, fd, create)
                        .map_err(|e| name_the_file(e, root, name, &file)),
                    Err(Errno::NOENT) => match create {
                        None => Err(not_found(name)),
                        Some(new) => publish(table, root, name, &file, new, mode),
                    },
                    // Another user's object still being created is private (0600) until
                    // its creator has locked it and set the final mode: look again.
                    Err(Errno::ACCESS) if files::is_empty_file(dir, &file) => Ok(Found::Unfinished),
                    Err(Errno::ACCESS) => Err(files::denied(dir, &file, name.full)),
                    Err(Errno::LOOP) | Err(Errno::NOTDIR) | Err(Errno::NXIO)
                    | Err(Errno::ISDIR) => Err(Error::new(
                        ErrorKind::TypeMismatch,
                        format!(
                            "the name {:?} is taken by a link or special file, not a mutex",
                            name.full
                        ),
                    )),
                    Err(e) => Err(files::io_error(
                        "open the mutex",
                        &format!("{:?}", name.full),
                        e,
                    )),
                }
            })?;
            if let Found::Object(obj, existed) = found {
                // A new object was written with the flag already.
                if mode.keep_abandoned && existed {
                    obj.keep_abandoned();
                }
                return Ok((obj, existed));
            }
            attempt += 1;
            // A damaged DEAD flag is not a process that may let go: it has the bound always.
            let limit = match found {
                Found::MarkedDead => Some(BUSY_LIMIT),
                _ => mode.busy_limit,
            };
            if limit.is_some_and(|limit| started.elapsed() > limit) {
                return Err(gave_up(root, name, &file, &found, started.elapsed()));
            }
            backoff(attempt);
        }
    }
}

enum Found {
    Object(Arc<Object>, bool),
    /// Look again in a moment (the file is being removed, or was replaced).
    Retry,
    /// Look again in a moment: the file is empty and its creator still holds it open.
    Unfinished,
    /// Look again in a moment: the object is marked `DEAD` (a closer removing it, or one
    /// that could not remove it: then the next look finds it stale and renews it).
    MarkedDead,
}

fn open_existing(
    table: &mut Table,
    root: &Arc<Root>,
    name: &Name<'_>,
    file: &str,
    fd: OwnedFd,
    create: Option<&NewObject>,
) -> Result<Found> {
    super::super::fault::point("open.after_open");
    let st =
        rustix::fs::fstat(&fd).map_err(|e| files::io_error("inspect the mutex", name.full, e))?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(Error::new(
            ErrorKind::TypeMismatch,
            format!(
                "the name {:?} belongs to something that is not a mutex",
                name.full
            ),
        ));
    }
    if name.namespace == Namespace::Local
        && (st.st_uid != root.fs_uid || crate::sys::unix::files::mode_bits(&st) & 0o077 != 0)
    {
        return Err(Error::new(
            ErrorKind::AccessDenied,
            format!(
                "refusing the file of {:?}: a private object must belong to uid {} with mode 0600 (found uid {}, mode {:o})",
                name.full,
                root.fs_uid,
                st.st_uid,
                crate::sys::unix::files::mode_bits(&st) & 0o7777
            ),
        ));
    }
    let key = crate::sys::unix::files::key(&st);
    if st.st_size == 0 {
        return unfinished(table, root, name, file, fd, key, create);
    }
    if st.st_size as usize != OBJECT_SIZE {
        return Err(Error::new(
            ErrorKind::Corrupt,
            format!(
                "the file of {:?} is {} bytes; a mutex object is {OBJECT_SIZE}",
                name.full, st.st_size
            ),
        ));
    }
    if let Some(obj) = lookup(table, key) {
        if !obj.take_handle_lock_back()? {
            return Ok(Found::Retry);
        }
        return Ok(Found::Object(obj, true));
    }
    // The header is checked from a copy read with pread, so that an open followed by a
    // close never faults the shared page in (a third of the cost of that pair).
    let header = read_header(&fd, name.full)?;
    let map = Mapping::map(fd.as_fd(), OBJECT_SIZE, true).map_err(|e| map_error(name.full, e))?;
    let page = ObjectPage::validate_header(map, &header, Some(name.object))?;
    let global = layout::header_u32(&header, layout::obj::FLAGS) & FLAG_GLOBAL != 0;
    if global != (name.namespace == Namespace::Global) {
        return Err(Error::new(
            ErrorKind::Corrupt,
            format!("the file of {:?} records the wrong namespace", name.full),
        ));
    }
    let place = Place::of(name, file);
    // No handle exists anywhere: the object died with its processes, unless it is kept
    // for the report of an abandonment that no acquirer has had yet (then it is opened
    // as it is, and the shared lock below replaces the exclusive one).
    if flock(&fd, FlockOperation::NonBlockingLockExclusive)? && !keeps_report(&page, root) {
        super::super::fault::point("open.after_stale_lock");
        if remove_stale(&page, root, &place, key) {
            return Ok(Found::Retry);
        }
        // We may not remove it (another user's file in a sticky directory): reuse the
        // file in place, as a new object (the caller marks it to keep, if asked).
        let Some(new) = create else {
            return Err(not_found(name));
        };
        let owner = owner_token(root, new.initial_owner)?;
        page.reset(owner, super::super::clock::realtime_ns());
        return in_place(table, root, page, fd, key, owner, place);
    }
    if !flock(&fd, FlockOperation::NonBlockingLockShared)? {
        return Ok(Found::Retry); // somebody is removing it right now
    }
    super::super::fault::point("open.after_flock");
    // Read again now that we hold the lock: a closer may have marked it dead meanwhile.
    match read_flags(&fd) {
        None => return Ok(Found::Retry),
        Some(flags) if flags & FLAG_DEAD != 0 => return Ok(Found::MarkedDead),
        Some(_) => {}
    }
    let user = match layout::header_user_index(&header, root.uid) {
        Some(user) => user,
        None => page.user_index(root.uid)?,
    };
    Ok(Found::Object(
        insert(table, page, fd, key, root, user, Some(place)),
        true,
    ))
}

/// The first `HEADER_BYTES` of an object file.
fn read_header(fd: &OwnedFd, name: &str) -> Result<Vec<u8>> {
    let mut header = vec![0u8; layout::HEADER_BYTES];
    let mut done = 0;
    while done < header.len() {
        match rustix::io::pread(fd, &mut header[done..], done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(Errno::INTR) => {}
            Err(e) => return Err(files::io_error("read the mutex", name, e)),
        }
    }
    header.truncate(done);
    Ok(header)
}

/// Makes a new object under its final name. The file is created empty (`O_EXCL`), locked,
/// then written in one `pwrite`: openers that find it empty leave it alone while a lock on it
/// shows that its creator lives (they look again shortly), and remove it when nobody holds
/// one, because its creator died before finishing (see [`unfinished`]). Cheaper than building
/// the file unnamed and linking it into place, which costs a path walk through `/proc`.
fn publish(
    table: &mut Table,
    root: &Arc<Root>,
    name: &Name<'_>,
    file: &str,
    new: &NewObject,
    open: OpenMode,
) -> Result<Found> {
    let (mode, group) = match (name.namespace, new.security) {
        (Namespace::Local, _) | (Namespace::Global, Security::CurrentUser) => (0o600, None),
        (Namespace::Global, Security::Everyone) => (0o666, None),
        (Namespace::Global, Security::UnixGroup(gid)) => (0o660, Some(gid)),
    };
    let owner = owner_token(root, new.initial_owner)?;
    let global = name.namespace == Namespace::Global;
    let dir = root.dir_for(name.namespace);
    super::super::fault::point("create.before_publish");
    // Private at first (0600): nobody else can open the file, so nobody can lock it, until
    // we hold our own lock on it; the final mode comes after.
    let Some(fd) = files::create_exclusive(dir, file, 0o600)? else {
        return Ok(Found::Retry); // somebody else created it first: open theirs
    };
    super::super::fault::point("create.after_create");
    // Lock before writing: from now on nobody can take the empty file for a dead creator's.
    if !flock(&fd, FlockOperation::NonBlockingLockShared)? {
        return Ok(Found::Retry); // an opener took it for a dead creator's, and removes it
    }
    super::super::fault::point("create.after_lock");
    let st =
        rustix::fs::fstat(&fd).map_err(|e| files::io_error("inspect the mutex", name.full, e))?;
    if st.st_nlink == 0 || st.st_size != 0 {
        // Removed before we locked it, or written in place by an opener that could not
        // remove it: start again.
        return Ok(Found::Retry);
    }
    let key = crate::sys::unix::files::key(&st);
    let place = Place::of(name, file);
    let written = files::set_permissions(
        &fd,
        Some(crate::sys::unix::files::mode_bits(&st)),
        mode,
        group,
    )
    .and_then(|()| {
        let mut init = object_init(root, name.object, global, owner);
        init.keep_abandoned = open.keep_abandoned;
        write_object(&fd, &init, name.full)
    });
    let page = match written {
        Ok(page) => page,
        Err(e) => {
            // Leave nothing behind: the name is free again.
            unlink_if_same(root, &place, key);
            return Err(e);
        }
    };
    super::super::fault::point("create.after_publish");
    Ok(Found::Object(
        insert(table, page, fd, key, root, 0, Some(place)),
        false,
    ))
}

/// Writes the first state of a new object into the empty file `fd` and maps it.
pub(super) fn write_object(fd: &OwnedFd, init: &ObjectInit<'_>, what: &str) -> Result<ObjectPage> {
    let image = layout::object_image(init)?;
    files::write_all_at(fd, &image, 0, what)?;
    let map = Mapping::map(fd.as_fd(), OBJECT_SIZE, true).map_err(|e| map_error(what, e))?;
    Ok(ObjectPage::created(map))
}

/// An object file found empty: its creator is still writing it, or died before it could.
fn unfinished(
    table: &mut Table,
    root: &Arc<Root>,
    name: &Name<'_>,
    file: &str,
    fd: OwnedFd,
    key: (u64, u64),
    create: Option<&NewObject>,
) -> Result<Found> {
    if !flock(&fd, FlockOperation::NonBlockingLockExclusive)? {
        return Ok(Found::Unfinished); // its creator holds its lock: look again in a moment
    }
    // Nobody has it open: its creator died before writing it, or has not locked it yet
    // (then its lock fails, or it finds the file gone, and it starts again).
    let place = Place::of(name, file);
    if unlink_if_same(root, &place, key) {
        return Ok(Found::Retry);
    }
    // We may not remove it (another user's file in a sticky directory): write it in place.
    let Some(new) = create else {
        return Err(not_found(name));
    };
    let st =
        rustix::fs::fstat(&fd).map_err(|e| files::io_error("inspect the mutex", name.full, e))?;
    if st.st_size != 0 {
        return Ok(Found::Retry); // written by another opener before we locked it
    }
    let owner = owner_token(root, new.initial_owner)?;
    let global = name.namespace == Namespace::Global;
    let page = write_object(
        &fd,
        &object_init(root, name.object, global, owner),
        name.full,
    )?;
    in_place(table, root, page, fd, key, owner, place)
}

/// Finishes making a new object in the file of a dead one (or of a dead creator), which the
/// caller holds exclusively and has just written: trade the exclusive lock for the shared
/// one every handle holds, and enter it. Returns whether it existed: another process may
/// have done the same between our two locks, and then its object is the one we open.
fn in_place(
    table: &mut Table,
    root: &Arc<Root>,
    page: ObjectPage,
    fd: OwnedFd,
    key: (u64, u64),
    owner: Option<u64>,
    place: Place,
) -> Result<Found> {
    if !flock(&fd, FlockOperation::NonBlockingLockShared)? {
        return Ok(Found::Retry);
    }
    let user = page.user_index(root.uid)?;
    let ours = owner.is_none_or(|t| page.lock_word().load(Ordering::Acquire) == t);
    Ok(Found::Object(
        insert(table, page, fd, key, root, user, Some(place)),
        !ours,
    ))
}

pub(super) fn owner_token(root: &Root, initial_owner: bool) -> Result<Option<u64>> {
    // The creator is user 0 of a new object's user table, so its token is the bare part.
    initial_owner
        .then(|| thread::token_part(root.own_registry()))
        .transpose()
}

pub(super) fn object_init<'a>(
    root: &Root,
    name: &'a str,
    global: bool,
    owner: Option<u64>,
) -> ObjectInit<'a> {
    ObjectInit {
        name,
        global,
        uid: root.uid,
        pid: this_pid(),
        now_ns: super::super::clock::realtime_ns(),
        root: root.ident,
        owner,
        keep_abandoned: false,
    }
}

fn backoff(attempt: u32) {
    if attempt < 4 {
        std::thread::yield_now();
    } else {
        let micros = 20u64 << attempt.min(9);
        std::thread::sleep(Duration::from_micros(micros));
    }
}

/// The error for an open that kept finding `last` for as long as it was allowed to. An
/// object file stays locked, empty or marked dead only for microseconds in normal
/// operation; longer means a process holds its lock (a stopped or hostile one) or somebody
/// damaged the file. The message names the processes that hold the file's lock, and says
/// which of them are stopped.
fn gave_up(root: &Root, name: &Name<'_>, file: &str, last: &Found, waited: Duration) -> Error {
    let holders = match rustix::fs::statat(
        root.dir_for(name.namespace),
        file,
        AtFlags::SYMLINK_NOFOLLOW,
    ) {
        Ok(st) => super::super::inspect::describe_lockers(crate::sys::unix::files::key(&st)),
        Err(_) => String::new(),
    };
    match last {
        Found::Unfinished => Error::new(
            ErrorKind::Corrupt,
            format!(
                "the file of {:?} stayed empty for {waited:.1?}: a creator stopped or died before writing it (and we may not remove its file), or someone truncated the object{holders}",
                name.full
            ),
        ),
        Found::MarkedDead => Error::new(
            ErrorKind::Corrupt,
            format!(
                "the object {:?} stayed marked as removed (DEAD) for {waited:.1?} while processes still have it open: its flags were damaged",
                name.full
            ),
        ),
        _ => busy(&format!(
            "the file of {:?} stayed locked by another process for {waited:.1?}{holders}",
            name.full
        )),
    }
}

fn not_found(name: &Name<'_>) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!("no mutex is named {:?}", name.full),
    )
}
