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
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | the object as this process sees it; unnamed and inherited objects |
//! | `table.rs` | the process's table: one object per file, shared by all its handles |
//! | `open.rs` | opening or creating a named object: the state machine over the file |
//! | `lifetime.rs` | closing: the last handle anywhere removes the file, unless it is kept |

mod lifetime;
mod open;
mod table;

#[cfg(any(not(target_os = "linux"), feature = "portable-backend"))]
pub(super) use lifetime::close_while_owned;
pub(super) use lifetime::{keeps_report, remove_stale, unlink_if_same};

use super::files;
use super::layout::{FLAG_GLOBAL, OBJECT_SIZE, ObjectPage};
use super::mapping::Mapping;
use super::registry::Registry;
use super::root::Root;
use super::thread;
use crate::sys::contract::Security;
use crate::sys::contract::{Error, ErrorKind, Result};
use crate::sys::contract::{Name, Namespace};
use open::{object_init, owner_token, write_object};
use rustix::fd::{AsFd, AsRawFd, OwnedFd};
use rustix::fs::{AtFlags, FlockOperation};
use rustix::io::Errno;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;
use table::{insert, lookup, with_table};

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
    /// How many waits on this object in this process in a row ended asleep: `polling.rs`
    /// stops polling before sleeping on a mutex whose waits keep ending that way.
    pub asleep_streak: AtomicU32,
    /// [`Object::process_token`]'s cache: the token, and the process it belongs to.
    process_token: (AtomicU64, AtomicU32),
    /// Kept open for a thread of this process that owns it, after a handle closed (the
    /// portable flavour's thread ends: `thread_end.rs`).
    #[cfg_attr(
        all(target_os = "linux", not(feature = "portable-backend")),
        allow(dead_code)
    )]
    pub kept_for_owner: AtomicBool,
    /// The process has no handle to the object, which is kept open for its owner, and `fd`
    /// holds no `flock` (`lifetime.rs`, `close_while_owned`): an open takes it again.
    handle_lock_dropped: AtomicBool,
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

/// This process's id, cached (reset in a child after `fork`, see `fork.rs`).
static PID: AtomicU32 = AtomicU32::new(0);

#[inline]
pub(super) fn this_pid() -> u32 {
    match PID.load(Ordering::Relaxed) {
        0 => {
            let pid = rustix::process::getpid().as_raw_nonzero().get() as u32;
            PID.store(pid, Ordering::Relaxed);
            pid
        }
        pid => pid,
    }
}

/// The objects this process has open for which `pick` says yes (for a thread's end in the
/// portable flavour: those it owns). `pick` runs under the table's lock and must not take it;
/// only the objects picked are held (strongly) for the caller, so that looking at the others
/// never keeps an object open past the close of its last handle.
#[cfg_attr(
    all(target_os = "linux", not(feature = "portable-backend")),
    allow(dead_code)
)]
pub(super) fn open_where(pick: impl Fn(&Object) -> bool) -> Vec<Arc<Object>> {
    with_table(|table| table::picked(table, pick))
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
        self.first_process_token(pid)
    }

    /// [`Object::process_token`] the first time in this process (a forked child's too).
    #[cold]
    fn first_process_token(&self, pid: u32) -> Result<u64> {
        let token = super::detached::owner_part(self.registry)? | self.user_bits;
        self.process_token.0.store(token, Ordering::Relaxed);
        self.process_token.1.store(pid, Ordering::Release);
        Ok(token)
    }

    /// This object's identity in this process: the same for every handle to it.
    pub(super) fn identity(&self) -> u64 {
        self.id
    }

    /// The full token of the registry slot whose token part is `part`, in this object.
    #[cfg_attr(
        all(target_os = "linux", not(feature = "portable-backend")),
        allow(dead_code)
    )]
    pub(super) fn token_with(&self, part: u64) -> u64 {
        part | self.user_bits
    }

    /// The key of the registry this process's tokens for this object come from.
    #[cfg_attr(
        all(target_os = "linux", not(feature = "portable-backend")),
        allow(dead_code)
    )]
    pub(super) fn registry_id(&self) -> usize {
        self.registry.id()
    }

    /// The registry this process's threads have their slots in, for this object.
    #[cfg_attr(
        all(target_os = "linux", not(feature = "portable-backend")),
        allow(dead_code)
    )]
    pub(super) fn registry(&self) -> &'static Registry {
        self.registry
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
        let named = self
            .place
            .as_ref()
            .map(|p| (self.root.dir_for(p.namespace), p.file.as_str()));
        let fd = super::os::reopen(self.fd.as_fd(), named)?;
        if self.place.is_some() && !flock(&fd, FlockOperation::NonBlockingLockShared)? {
            return Err(busy("the object is being removed"));
        }
        Ok(fd)
    }

    /// Creates an unnamed object: a memfd, shared only by cloning and inheritance.
    pub(in crate::sys::unix) fn create_unnamed(
        root: &Arc<Root>,
        initial_owner: bool,
    ) -> Result<Arc<Object>> {
        let fd = super::os::anonymous_file(root.dir_for(Namespace::Local))?;
        let owner = owner_token(root, initial_owner)?;
        let page = write_object(
            &fd,
            &object_init(root, "", false, owner),
            "an unnamed mutex",
        )?;
        let st = rustix::fs::fstat(&fd)
            .map_err(|e| files::io_error("inspect", "an unnamed mutex", e))?;
        Ok(with_table(|table| {
            insert(
                table,
                page,
                fd,
                crate::sys::unix::files::key(&st),
                root,
                0,
                None,
            )
        }))
    }

    /// Adopts an object file descriptor inherited from the parent process.
    pub(in crate::sys::unix) fn adopt(fd: OwnedFd) -> Result<Arc<Object>> {
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
        let key = crate::sys::unix::files::key(&st);
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
    (crate::sys::unix::files::key(&st) == key).then_some(Place { namespace, file })
}

/// `flock` without blocking (retrying on `EINTR`): `Ok(false)` when another description holds a conflicting lock.
pub(in crate::sys::unix) fn flock(fd: impl AsFd, op: FlockOperation) -> Result<bool> {
    loop {
        match rustix::fs::flock(fd.as_fd(), op) {
            Ok(()) => return Ok(true),
            Err(Errno::WOULDBLOCK) => return Ok(false),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(files::io_error("lock", "a mutex object file", e)),
        }
    }
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
