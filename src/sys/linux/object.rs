//! Mutex objects: finding, creating, sharing and removing the file behind a name.
//!
//! Lifetime rule: every process that has a handle to a named object holds a shared `flock`
//! on the object file (one open file description per object per process). So:
//!
//! - a successful exclusive `flock` means no handle exists anywhere: a closer that gets it
//!   removes the file; an opener that gets it has found a stale object (its processes
//!   crashed) and removes or resets it, so the name behaves as if the object were gone;
//! - the kernel drops the locks of killed processes, so crashes leave nothing that blocks
//!   a later process.
//!
//! Within a process, all handles to one object share one mapping and one description,
//! found through a table keyed by device and inode.

use super::files;
use super::layout::{
    self, FLAG_DEAD, FLAG_GLOBAL, FLAG_KEEP_ABANDONED, OBJECT_SIZE, ObjectInit, ObjectPage,
};
use super::mapping::Mapping;
use super::registry::Registry;
use super::root::Root;
use super::thread;
use crate::error::{Error, ErrorKind, Result};
use crate::name::{Name, Namespace};
use crate::security::Security;
use rustix::fd::{AsFd, AsRawFd, OwnedFd};
use rustix::fs::{AtFlags, FlockOperation, OFlags};
use rustix::io::Errno;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// How long an open keeps retrying, by default, while another process holds the object
/// file's lock exclusively (a closer removing it takes microseconds; a stopped or hostile
/// holder is refused after this, unless the caller chose another bound).
pub(super) const BUSY_LIMIT: Duration = Duration::from_secs(2);

/// One object as this process sees it: the mapping, the locked file description, and
/// where its name lives.
pub(super) struct Object {
    pub page: ObjectPage,
    fd: OwnedFd,
    pub key: (u64, u64),
    pub root: Arc<Root>,
    /// `root.registry`, copied here so that the lock's fast path finds the calling thread's
    /// token without following pointers.
    registry: &'static Registry,
    /// Our index in the object's user table, shifted into token position.
    user_bits: u64,
    place: Option<Place>,
    /// The process whose open file description `fd` is (after `fork` the child must not
    /// use the parent's to decide the object's fate; see `fork.rs`).
    ofd_pid: u32,
    /// See [`Object::saw_death`].
    saw_death: AtomicBool,
    /// How many waits on this object in this process in a row ended asleep: `lock.rs`
    /// stops polling before sleeping on a mutex whose waits keep ending that way.
    pub asleep_streak: AtomicU32,
    /// [`Object::process_token`]'s cache: the token, and the process it belongs to.
    process_token: (AtomicU64, AtomicU32),
    id: u64,
}

/// A refusal to use a file that is not a good object says which file it is, so that the
/// user can look at it and remove it.
pub(super) fn name_the_file(e: Error, root: &Root, name: &Name<'_>, file: &str) -> Error {
    match e.kind() {
        ErrorKind::TypeMismatch | ErrorKind::Corrupt | ErrorKind::Incompatible => {
            e.with_hint(&format!(
                "the file is {}; if no process uses it (fuser, lsof), remove it",
                root.file_path(name.namespace, file).display()
            ))
        }
        _ => e,
    }
}

/// Where a named object's file is.
#[derive(Clone)]
pub(super) struct Place {
    pub namespace: Namespace,
    pub file: String,
}

impl Place {
    /// Where the object `name`, whose file name is `file`, lives.
    fn of(name: &Name<'_>, file: &str) -> Place {
        Place {
            namespace: name.namespace,
            file: file.to_owned(),
        }
    }
}

/// What a create needs besides the name.
pub(super) struct NewObject {
    pub security: Security,
    pub initial_owner: bool,
}

/// How an open treats the object it finds or makes.
#[derive(Clone, Copy, Default)]
pub(super) struct OpenMode {
    /// Mark the object to be kept, while its owner is dead and no acquirer has been told,
    /// past its last handle (see `FLAG_KEEP_ABANDONED`).
    pub keep_abandoned: bool,
    /// How long to keep retrying while another process holds the object file's lock
    /// exclusively; `None` retries until it is let go.
    pub busy_limit: Option<Duration>,
}

type Table = HashMap<(u64, u64), (u64, Weak<Object>)>;
static TABLE: Mutex<Option<Table>> = Mutex::new(None);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn with_table<T>(f: impl FnOnce(&mut Table) -> T) -> T {
    let mut guard = TABLE.lock().unwrap_or_else(|p| p.into_inner());
    f(guard.get_or_insert_with(HashMap::new))
}

/// This process's id, cached (reset in a child after `fork`, see `fork.rs`).
static PID: AtomicU32 = AtomicU32::new(0);

fn this_pid() -> u32 {
    match PID.load(Ordering::Relaxed) {
        0 => {
            let pid = rustix::process::getpid().as_raw_nonzero().get() as u32;
            PID.store(pid, Ordering::Relaxed);
            pid
        }
        pid => pid,
    }
}

/// Forgets the cached process id (the child side of `fork`).
pub(super) fn forget_pid() {
    PID.store(0, Ordering::Relaxed);
}

impl Object {
    /// The calling thread's full token for this object, registering the thread if needed.
    #[inline]
    pub(super) fn token(&self) -> Result<u64> {
        Ok(thread::token_part(self.registry)? | self.user_bits)
    }

    /// The token of this process's owner thread (`detached.rs`): ownership that belongs to
    /// the process, not to the calling thread.
    /// Cached per object with the pid it was made in (a forked child makes its own).
    #[inline]
    pub(super) fn process_token(&self) -> Result<u64> {
        let pid = this_pid();
        if self.process_token.1.load(Ordering::Acquire) == pid {
            return Ok(self.process_token.0.load(Ordering::Relaxed));
        }
        let token = super::detached::owner_part(self.registry)? | self.user_bits;
        self.process_token.0.store(token, Ordering::Relaxed);
        self.process_token.1.store(pid, Ordering::Release);
        Ok(token)
    }

    /// This object's identity in this process: the same for every handle to it.
    pub(super) fn identity(&self) -> u64 {
        self.id
    }

    /// The calling thread's token if it is registered (else it cannot own the object).
    #[inline]
    pub(super) fn existing_token(&self) -> Option<u64> {
        thread::existing_token_part(self.registry).map(|part| part | self.user_bits)
    }

    /// Notes that this process took the object from a dead owner: its close then allows
    /// for the dead process's file lock, which the kernel drops only after it has reported
    /// the death (robust futexes are processed before a dying process's files are closed).
    pub(super) fn saw_death(&self) {
        self.saw_death.store(true, Ordering::Relaxed);
    }

    /// A new open file description of the object for an inheritable handle: it stays open
    /// across `exec` and, for a named object, holds a shared lock of its own, so that a
    /// child holding it keeps the object alive.
    pub(super) fn reopen_inheritable(&self) -> Result<OwnedFd> {
        let path = format!("/proc/self/fd/{}", self.fd.as_raw_fd());
        let fd = rustix::fs::open(path.as_str(), OFlags::RDWR, rustix::fs::Mode::empty())
            .map_err(|e| files::io_error("reopen", "a mutex object (is /proc mounted?)", e))?;
        if self.place.is_some() && !flock(&fd, FlockOperation::NonBlockingLockShared)? {
            return Err(busy("the object is being removed"));
        }
        Ok(fd)
    }

    /// Opens the named object, or creates it when `create` says how.
    /// Returns the object and whether it existed.
    pub(super) fn open_named(
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
                    Ok(fd) => open_existing(table, root, name, &file, fd, create, mode)
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
                if mode.keep_abandoned {
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

    /// Creates an unnamed object: a memfd, shared only by cloning and inheritance.
    pub(super) fn create_unnamed(root: &Arc<Root>, initial_owner: bool) -> Result<Arc<Object>> {
        let fd = rustix::fs::memfd_create("namedmutex", rustix::fs::MemfdFlags::CLOEXEC)
            .map_err(|e| files::io_error("create", "an unnamed mutex", e))?;
        let owner = owner_token(root, initial_owner)?;
        let page = write_object(
            &fd,
            &object_init(root, "", false, owner),
            "an unnamed mutex",
        )?;
        let st = rustix::fs::fstat(&fd)
            .map_err(|e| files::io_error("inspect", "an unnamed mutex", e))?;
        Ok(with_table(|table| {
            insert(table, page, fd, (st.st_dev, st.st_ino), root, 0, None)
        }))
    }

    /// Adopts an object file descriptor inherited from the parent process.
    pub(super) fn adopt(fd: OwnedFd) -> Result<Arc<Object>> {
        let st = rustix::fs::fstat(&fd)
            .map_err(|e| files::io_error("inspect", "the inherited handle", e))?;
        if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile
            || st.st_size as usize != OBJECT_SIZE
        {
            return Err(Error::new(
                ErrorKind::InvalidParameter,
                "the inherited handle is not a namedmutex object",
            ));
        }
        let key = (st.st_dev, st.st_ino);
        let root = Root::get(None)?;
        with_table(|table| {
            if let Some(obj) = lookup(table, key) {
                return Ok(obj); // `fd` closes; this process already holds the object.
            }
            let map = Mapping::map(fd.as_fd(), OBJECT_SIZE, true)
                .map_err(|e| map_error("the inherited handle", e))?;
            let page = ObjectPage::validate(map, None)?;
            if page.root_ident() != root.ident {
                return Err(Error::new(
                    ErrorKind::Incompatible,
                    format!(
                        "the inherited mutex belongs to another namespace root than {} (the parent used another NAMEDMUTEX_ROOT)",
                        root.path.display()
                    ),
                ));
            }
            rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC)
                .map_err(|e| files::io_error("adopt", "the inherited handle", e))?;
            let place = find_place(&root, &fd, key, &page);
            if place.is_some() && !flock(&fd, FlockOperation::NonBlockingLockShared)? {
                return Err(busy("the inherited object is being removed"));
            }
            let user = page.user_index(root.uid)?;
            Ok(insert(table, page, fd, key, &root, user, place))
        })
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
    mode: OpenMode,
) -> Result<Found> {
    super::fault::point("open.after_open");
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
    if name.namespace == Namespace::Local && (st.st_uid != root.fs_uid || st.st_mode & 0o077 != 0) {
        return Err(Error::new(
            ErrorKind::AccessDenied,
            format!(
                "refusing the file of {:?}: a private object must belong to uid {} with mode 0600 (found uid {}, mode {:o})",
                name.full,
                root.fs_uid,
                st.st_uid,
                st.st_mode & 0o7777
            ),
        ));
    }
    let key = (st.st_dev, st.st_ino);
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
        super::fault::point("open.after_stale_lock");
        page.flags().fetch_or(FLAG_DEAD, Ordering::AcqRel);
        if unlink_if_same(root, &place, key) {
            return Ok(Found::Retry);
        }
        // We may not remove it (another user's file in a sticky directory): reuse the
        // file in place, as a new object.
        let Some(new) = create else {
            return Err(not_found(name));
        };
        let owner = owner_token(root, new.initial_owner)?;
        page.reset(owner, super::clock::realtime_ns());
        let _ = mode; // the caller marks the object to keep once it has it
        return in_place(table, root, page, fd, key, owner, place);
    }
    if !flock(&fd, FlockOperation::NonBlockingLockShared)? {
        return Ok(Found::Retry); // somebody is removing it right now
    }
    super::fault::point("open.after_flock");
    // Read again now that we hold the lock: a closer may have marked it dead meanwhile.
    let mut flags = [0u8; 4];
    match rustix::io::pread(&fd, &mut flags, layout::obj::FLAGS as u64) {
        Ok(4) => {}
        _ => return Ok(Found::Retry),
    }
    if u32::from_le_bytes(flags) & FLAG_DEAD != 0 {
        return Ok(Found::MarkedDead);
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
    super::fault::point("create.before_publish");
    // Private at first (0600): nobody else can open the file, so nobody can lock it, until
    // we hold our own lock on it; the final mode comes after.
    let Some(fd) = files::create_exclusive(dir, file, 0o600)? else {
        return Ok(Found::Retry); // somebody else created it first: open theirs
    };
    super::fault::point("create.after_create");
    // Lock before writing: from now on nobody can take the empty file for a dead creator's.
    if !flock(&fd, FlockOperation::NonBlockingLockShared)? {
        return Ok(Found::Retry); // an opener took it for a dead creator's, and removes it
    }
    super::fault::point("create.after_lock");
    let st =
        rustix::fs::fstat(&fd).map_err(|e| files::io_error("inspect the mutex", name.full, e))?;
    if st.st_nlink == 0 || st.st_size != 0 {
        // Removed before we locked it, or written in place by an opener that could not
        // remove it: start again.
        return Ok(Found::Retry);
    }
    let key = (st.st_dev, st.st_ino);
    let place = Place::of(name, file);
    let written = files::set_permissions(&fd, Some(st.st_mode), mode, group).and_then(|()| {
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
    super::fault::point("create.after_publish");
    Ok(Found::Object(
        insert(table, page, fd, key, root, 0, Some(place)),
        false,
    ))
}

/// Writes the first state of a new object into the empty file `fd` and maps it.
fn write_object(fd: &OwnedFd, init: &ObjectInit<'_>, what: &str) -> Result<ObjectPage> {
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

fn owner_token(root: &Root, initial_owner: bool) -> Result<Option<u64>> {
    // The creator is user 0 of a new object's user table, so its token is the bare part.
    initial_owner
        .then(|| thread::token_part(root.own_registry()))
        .transpose()
}

fn object_init<'a>(root: &Root, name: &'a str, global: bool, owner: Option<u64>) -> ObjectInit<'a> {
    ObjectInit {
        name,
        global,
        uid: root.uid,
        pid: this_pid(),
        now_ns: super::clock::realtime_ns(),
        root: root.ident,
        owner,
        keep_abandoned: false,
    }
}

fn lookup(table: &Table, key: (u64, u64)) -> Option<Arc<Object>> {
    table.get(&key).and_then(|(_, weak)| weak.upgrade())
}

fn insert(
    table: &mut Table,
    page: ObjectPage,
    fd: OwnedFd,
    key: (u64, u64),
    root: &Arc<Root>,
    user: usize,
    place: Option<Place>,
) -> Arc<Object> {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let obj = Arc::new(Object {
        page,
        fd,
        key,
        root: root.clone(),
        registry: root.own_registry(),
        user_bits: super::lock_word::user_part(user),
        place,
        ofd_pid: this_pid(),
        saw_death: AtomicBool::new(false),
        asleep_streak: AtomicU32::new(0),
        process_token: (AtomicU64::new(0), AtomicU32::new(0)),
        id,
    });
    table.insert(key, (id, Arc::downgrade(&obj)));
    obj
}

impl Drop for Object {
    fn drop(&mut self) {
        if let Some(place) = &self.place {
            if self.ofd_pid == this_pid() && self.last_anywhere() && !self.kept_for_report() {
                super::fault::point("close.after_lock");
                // The last handle anywhere: the object ends, and its name with it.
                self.mark_dead(place.namespace);
                super::fault::point("close.before_unlink");
                unlink_if_same(&self.root, place, self.key);
            }
        }
        with_table(|table| {
            if table.get(&self.key).is_some_and(|(id, _)| *id == self.id) {
                table.remove(&self.key);
            }
        });
    }
}

impl Object {
    /// Marks the object to be kept for the report of an abandonment (`FLAG_KEEP_ABANDONED`).
    fn keep_abandoned(&self) {
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
        let mut flags = [0u8; 4];
        match rustix::io::pread(&self.fd, &mut flags, layout::obj::FLAGS as u64) {
            Ok(4) if u32::from_le_bytes(flags) & FLAG_KEEP_ABANDONED == 0 => false,
            _ => keeps_report(&self.page, &self.root),
        }
    }

    /// Whether the object's name still leads to it: false when its file was removed under
    /// it (a cleaner such as systemd-logind's `RemoveIPC` or a tmp cleaner, or a user's
    /// `rm`), so that a later create of the name makes a second object beside this one.
    pub(super) fn still_named(&self) -> bool {
        let Some(place) = &self.place else {
            return true; // unnamed: nothing to lose
        };
        matches!(
            rustix::fs::statat(
                self.root.dir_for(place.namespace),
                place.file.as_str(),
                AtFlags::SYMLINK_NOFOLLOW,
            ),
            Ok(st) if (st.st_dev, st.st_ino) == self.key
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

/// Whether an object nobody has open must stay for the report of its abandonment: it is
/// marked to be kept and its owner died holding it, with no acquirer told yet.
pub(super) fn keeps_report(page: &ObjectPage, root: &Root) -> bool {
    page.flags().load(Ordering::Acquire) & FLAG_KEEP_ABANDONED != 0
        && super::lock::unreported_abandonment(page, root)
}

/// How long a close waits for a process that died owning the object to release its lock.
const DYING_GRACE: Duration = Duration::from_millis(100);

/// Removes `place` if it still names the inode `key`. False when it cannot be removed.
pub(super) fn unlink_if_same(root: &Root, place: &Place, key: (u64, u64)) -> bool {
    let dir = root.dir_for(place.namespace);
    match rustix::fs::statat(dir, place.file.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if (st.st_dev, st.st_ino) == key => {
            rustix::fs::unlinkat(dir, place.file.as_str(), AtFlags::empty()).is_ok()
        }
        // The name already leads elsewhere (or nowhere): nothing of ours to remove.
        _ => true,
    }
}

/// Finds the name of an inherited object by the path the kernel reports for it.
fn find_place(root: &Root, fd: &OwnedFd, key: (u64, u64), page: &ObjectPage) -> Option<Place> {
    let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()?;
    let file = link.file_name()?.to_str()?.to_owned();
    let namespace = if page.flags().load(Ordering::Relaxed) & FLAG_GLOBAL != 0 {
        Namespace::Global
    } else {
        Namespace::Local
    };
    let st = rustix::fs::statat(
        root.dir_for(namespace),
        file.as_str(),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .ok()?;
    ((st.st_dev, st.st_ino) == key).then_some(Place { namespace, file })
}

/// `flock` without blocking: `Ok(false)` when another description holds a conflicting lock.
fn flock(fd: impl AsFd, op: FlockOperation) -> Result<bool> {
    loop {
        match rustix::fs::flock(fd.as_fd(), op) {
            Ok(()) => return Ok(true),
            Err(Errno::WOULDBLOCK) => return Ok(false),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(files::io_error("lock", "a mutex object file", e)),
        }
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
        Ok(st) => super::inspect::describe_lockers((st.st_dev, st.st_ino)),
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

fn busy(why: &str) -> Error {
    Error::new(ErrorKind::Busy, why.to_owned())
}

fn map_error(what: &str, e: std::io::Error) -> Error {
    Error::io(
        ErrorKind::ResourceExhausted,
        format!("cannot map the mutex {what:?}"),
        e,
    )
}
