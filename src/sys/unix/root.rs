//! The namespace root: the directory that holds every object, and the verified
//! directories inside it.
//!
//! ```text
//! $NAMEDMUTEX_ROOT (default /dev/shm)       sticky or private; owned by root or us
//! ├── namedmutex-global.<name>               Global\ objects, mode from Security
//! └── namedmutex-<uid>/                      0711, owned by <uid>
//!     ├── registry                           0644: thread slots (others read it to see
//!     │                                      whether our threads live)
//!     └── local/                             0700: Local\ objects, 0600
//! ```
//!
//! Every directory is opened without following links and checked (type, owner, mode)
//! before use; everything below is reached relative to these descriptors, so nobody can
//! redirect us by renaming or planting links in a shared directory.

use super::files;
use super::registry::Registry;
use crate::sys::contract::Namespace;
use crate::sys::contract::{Error, ErrorKind, Result};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock};

/// The environment variable that moves the root (tests, containers).
pub(super) const ROOT_ENV: &str = "NAMEDMUTEX_ROOT";
/// The root when the variable is unset: memory on Linux. macOS has no `/dev/shm`, and its
/// cleaner removes files in `/tmp` not accessed for three days, which would split a mutex
/// whose file is mapped but not read in two; `/var/tmp` (`/private/var/tmp`, sticky, mode
/// 1777) is not cleaned. FreeBSD cleans neither by default.
#[cfg(target_os = "linux")]
pub(super) const DEFAULT_ROOT: &str = "/dev/shm";
#[cfg(target_os = "macos")]
pub(super) const DEFAULT_ROOT: &str = "/private/var/tmp";
#[cfg(not(any(target_os = "linux", target_os = "macos")))]
pub(super) const DEFAULT_ROOT: &str = "/tmp";
/// File-name prefix of `Global\` objects in the root.
pub(super) const GLOBAL_PREFIX: &str = "namedmutex-global.";
/// File-name prefix of per-user directories in the root.
pub(super) const USER_DIR_PREFIX: &str = "namedmutex-";
/// The `Local\` directory inside a user directory.
pub(super) const LOCAL_DIR: &str = "local";

/// The environment variable that lets a root on a network or FUSE file system be used.
pub(super) const ALLOW_FS_ENV: &str = "NAMEDMUTEX_ALLOW_NETWORK_FS";

/// File systems whose files other machines (or a user-space server) may share: shared
/// memory and futexes there work per machine, so processes on two hosts would each get a
/// mutex of their own and never exclude each other. (`statfs` magic numbers from
/// `linux/magic.h`.)
#[cfg(target_os = "linux")]
const SHARED_FILE_SYSTEMS: &[(i64, &str)] = &[
    (0x6969, "NFS"),
    (0x517B, "SMB"),
    (0xFF53_4D42, "CIFS"),
    (0xFE53_4D42, "SMB2"),
    (0x6573_5546, "FUSE"),
    (0x00C3_6400, "Ceph"),
    (0x0102_1997, "9P"),
    (0x5346_414F, "AFS"),
    (0x6B41_4653, "AFS"),
    (0x7375_7245, "Coda"),
    (0x0116_1970, "GFS2"),
    (0x7461_636F, "OCFS2"),
    (0x0BD0_0BD0, "Lustre"),
    (0x4750_4653, "GPFS"),
    (0x2003_0528, "OrangeFS"),
];

/// Refuses a root on a network or FUSE file system (see [`SHARED_FILE_SYSTEMS`]), unless
/// `NAMEDMUTEX_ALLOW_NETWORK_FS=1` says the user knows that it gives no exclusion between
/// machines (a FUSE file system used by one machine only, say).
fn refuse_shared_file_system(dir: &OwnedFd, path: &Path) -> Result<()> {
    let Ok(fs) = rustix::fs::fstatfs(dir) else {
        return Ok(()); // cannot tell: the checks that follow still apply
    };
    let Some((kind, magic)) = shared_file_system(&fs) else {
        return Ok(());
    };
    if std::env::var_os(ALLOW_FS_ENV).is_some_and(|v| v == "1") {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::Unsupported,
        format!(
            "refusing the namespace root {}: it is on a {kind} file system (statfs type {magic}), \
             where shared memory and futexes work per machine, so processes on two hosts would \
             not exclude each other; use a local directory (tmpfs such as /dev/shm), or set \
             {ALLOW_FS_ENV}=1 if only this machine uses it",
            path.display()
        ),
    ))
}

/// The kind of network or FUSE file system `fs` is, and its type as `statfs` gives it.
#[cfg(target_os = "linux")]
fn shared_file_system(fs: &rustix::fs::StatFs) -> Option<(&'static str, String)> {
    // The type of `f_type` differs between architectures (i64 here, u32 on s390x).
    #[allow(clippy::unnecessary_cast)]
    let magic = fs.f_type as i64 & 0xFFFF_FFFF;
    SHARED_FILE_SYSTEMS
        .iter()
        .find(|(m, _)| *m == magic)
        .map(|(_, kind)| (*kind, format!("{magic:#x}")))
}

/// The kind of network or FUSE file system `fs` is, and its type as `statfs` gives it
/// (`f_fstypename` on macOS and FreeBSD).
#[cfg(not(target_os = "linux"))]
fn shared_file_system(fs: &rustix::fs::StatFs) -> Option<(&'static str, String)> {
    let name: String = fs
        .f_fstypename
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8 as char)
        .collect();
    let kind = match name.as_str() {
        "nfs" => "NFS",
        "smbfs" | "cifs" => "SMB",
        "afpfs" => "AFP",
        "webdav" => "WebDAV",
        "9p" | "p9fs" => "9P",
        n if n.starts_with("fuse") || n.contains("fuse") => "FUSE",
        _ => return None,
    };
    Some((kind, name))
}

/// The environment variable that accepts a sticky root whose owner is not mapped into our
/// user namespace (`/dev/shm` seen from a rootless container).
pub(super) const TRUST_UNMAPPED_ENV: &str = "NAMEDMUTEX_TRUST_UNMAPPED_ROOT";

/// A verified root and the calling user's directories in it.
pub(super) struct Root {
    pub path: PathBuf,
    pub dir: OwnedFd,
    /// Device and inode of the root directory: identifies it in object headers.
    pub ident: (u64, u64),
    pub uid: u32,
    /// Our uid as the file system shows it (differs from `uid` in a user namespace).
    pub fs_uid: u32,
    /// The name of our user directory in the root (see `user_dir.rs`).
    user_dir_name: String,
    pub local: OwnedFd,
    /// False for a root opened only to look at (`Root::for_inspection`) in which the caller
    /// has no `local/` directory: then `local` is the root directory and lists nothing.
    pub has_local: bool,
    /// The calling user's thread registry for this root; `None` only in a root opened to
    /// look at, where the caller has none (see [`Root::own_registry`]).
    registry: Option<&'static Registry>,
    /// Whether this process has made its bounded sweep of each namespace (`sweep.rs`).
    pub swept_local: AtomicBool,
    pub swept_global: AtomicBool,
    foreign: Mutex<HashMap<u32, Option<&'static Registry>>>,
}

static ROOTS: Mutex<Vec<Arc<Root>>> = Mutex::new(Vec::new());

/// Where the root in effect when none is given comes from.
enum DefaultRoot {
    /// `$NAMEDMUTEX_ROOT`.
    Env(PathBuf),
    /// `$NAMEDMUTEX_ROOT` is set but empty: refused (it used to mean the default, silently).
    EmptyEnv,
    Default,
}

/// `$NAMEDMUTEX_ROOT`, read once.
fn default_root() -> &'static DefaultRoot {
    static ROOT: OnceLock<DefaultRoot> = OnceLock::new();
    ROOT.get_or_init(|| match std::env::var_os(ROOT_ENV) {
        Some(p) if p.is_empty() => DefaultRoot::EmptyEnv,
        Some(p) => DefaultRoot::Env(PathBuf::from(p)),
        None => DefaultRoot::Default,
    })
}

impl Root {
    /// The root at `path` (`None`: the default), opened and verified once per process.
    /// Errors end with what the user can change, which depends on where the path came from.
    pub(super) fn get(path: Option<&Path>) -> Result<Arc<Root>> {
        let (path, hint) = resolve(path)?;
        let mut roots = ROOTS.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(root) = roots.iter().find(|r| r.path == path) {
            return Ok(root.clone());
        }
        // The hint says what to change about the root; `Busy` is about other processes.
        let root = Arc::new(Root::open(path).map_err(|e| match e.kind() {
            ErrorKind::Busy => e,
            _ => e.with_hint(hint),
        })?);
        roots.push(root.clone());
        Ok(root)
    }

    fn open(path: &Path) -> Result<Root> {
        let ids = super::idmap::ours();
        let (uid, fs_uid) = (ids.key, ids.fs);
        let (dir, ident) = open_checked(path, ids)?;
        let (user_dir, user_dir_name) =
            super::user_dir::own(dir.as_fd(), path, uid, fs_uid, 0o711)?;
        let local = private_dir(
            user_dir.as_fd(),
            &path.join(&user_dir_name),
            LOCAL_DIR,
            fs_uid,
            0o700,
        )?;
        let registry = Registry::open_own(user_dir.as_fd(), uid, fs_uid)?;
        Ok(Root {
            path: path.to_owned(),
            dir,
            ident,
            uid,
            fs_uid,
            user_dir_name,
            local,
            has_local: true,
            registry: Some(registry),
            swept_local: AtomicBool::new(false),
            swept_global: AtomicBool::new(false),
            foreign: Mutex::new(HashMap::new()),
        })
    }

    /// The root at `path` for `list` and `info`: the usual one, or, where this process may
    /// not make its directories there (a read-only root, or one it may not write to), the
    /// same root opened only to look at: its own `Local\` namespace and registry if they
    /// exist, nothing made. Such a root is never used to open or create a mutex.
    pub(super) fn for_inspection(path: Option<&Path>) -> Result<Arc<Root>> {
        let usual = match Root::get(path) {
            Ok(root) => return Ok(root),
            Err(e) => e,
        };
        let (path, _) = resolve(path)?;
        Root::open_to_look(path).map(Arc::new).map_err(|_| usual)
    }

    fn open_to_look(path: &Path) -> Result<Root> {
        let ids = super::idmap::ours();
        let (uid, fs_uid) = (ids.key, ids.fs);
        let (dir, ident) = open_checked(path, ids)?;
        let user_dir = super::user_dir::of(dir.as_fd(), uid, fs_uid);
        let local = user_dir
            .as_ref()
            .and_then(|d| files::open_dir_in(d.as_fd(), LOCAL_DIR).ok());
        let registry = user_dir
            .as_ref()
            .and_then(|d| Registry::open_foreign(d.as_fd(), uid, fs_uid).ok());
        let has_local = local.is_some();
        let local = match local {
            Some(local) => local,
            None => rustix::io::fcntl_dupfd_cloexec(&dir, 0)
                .map_err(|e| root_error(path, "cannot open the namespace root", e))?,
        };
        Ok(Root {
            path: path.to_owned(),
            dir,
            ident,
            uid,
            fs_uid,
            user_dir_name: format!("{USER_DIR_PREFIX}{uid}"),
            local,
            has_local,
            registry,
            swept_local: AtomicBool::new(true),
            swept_global: AtomicBool::new(true),
            foreign: Mutex::new(HashMap::new()),
        })
    }

    /// The calling user's registry. Every root that opens or creates mutexes has one
    /// (`Root::get` makes it); only a root opened to look at may lack it, and that one is
    /// never used for objects.
    pub(super) fn own_registry(&self) -> &'static Registry {
        self.registry
            .expect("a root that opens mutexes has its registry (Root::get makes it)")
    }
}

/// The root a call means (`path`, else `$NAMEDMUTEX_ROOT`, else the default) and what the
/// user can change when it is refused, which depends on where it came from.
fn resolve(path: Option<&Path>) -> Result<(&Path, &'static str)> {
    match (path, default_root()) {
        (Some(path), _) => Ok((path, "a root given explicitly: choose another directory")),
        (None, DefaultRoot::Env(path)) => Ok((
            path.as_path(),
            "from $NAMEDMUTEX_ROOT: set it to another directory",
        )),
        (None, DefaultRoot::EmptyEnv) => Err(Error::new(
            ErrorKind::InvalidParameter,
            format!(
                "{ROOT_ENV} is set but empty: unset it to use the default {DEFAULT_ROOT}, \
                 or set it to a directory"
            ),
        )),
        (None, DefaultRoot::Default) => Ok((
            Path::new(DEFAULT_ROOT),
            "the default root: set $NAMEDMUTEX_ROOT to use another directory",
        )),
    }
}

/// Opens the root directory at `path` and checks that it is safe to use: who owns it, who
/// may write to it, what file system it is on. Returns it and its identity.
fn open_checked(path: &Path, ids: super::idmap::Ids) -> Result<(OwnedFd, (u64, u64))> {
    let fs_uid = ids.fs;
    let dir = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| root_error(path, "cannot open the namespace root", e))?;
    let st = rustix::fs::fstat(&dir)
        .map_err(|e| root_error(path, "cannot inspect the namespace root", e))?;
    let unmapped_owner = ids.in_user_namespace && st.st_uid == super::idmap::overflow_uid();
    if unmapped_owner {
        // Root (or anyone) outside our user namespace: we cannot tell who. Only a sticky
        // directory, and only when the user says it is the shared one they meant.
        if std::env::var_os(TRUST_UNMAPPED_ENV).is_none_or(|v| v != "1") {
            return Err(refused(
                path,
                &format!(
                    "in this user namespace its owner is not mapped (it shows as uid {}), so \
                         we cannot tell whether root or another user owns it; if it is the \
                         machine's shared root (/dev/shm, owned by root outside), set \
                         {TRUST_UNMAPPED_ENV}=1",
                    st.st_uid
                ),
            ));
        }
        if crate::sys::unix::files::mode_bits(&st) & 0o1000 == 0 {
            return Err(refused(
                path,
                &format!(
                    "its owner is not mapped here and it is not sticky ({TRUST_UNMAPPED_ENV} accepts only a sticky root)"
                ),
            ));
        }
    } else if st.st_uid != 0 && st.st_uid != fs_uid {
        return Err(refused(
            path,
            &format!("it belongs to uid {}, neither root nor us", st.st_uid),
        ));
    }
    if crate::sys::unix::files::mode_bits(&st) & 0o022 != 0
        && crate::sys::unix::files::mode_bits(&st) & 0o1000 == 0
    {
        return Err(refused(
            path,
            "others may write to it but it is not sticky, so they could delete our files",
        ));
    }
    refuse_shared_file_system(&dir, path)?;
    Ok((dir, crate::sys::unix::files::key(&st)))
}

impl Root {
    /// The directory holding the objects of `namespace`.
    pub(super) fn dir_for(&self, namespace: Namespace) -> BorrowedFd<'_> {
        match namespace {
            Namespace::Local => self.local.as_fd(),
            Namespace::Global => self.dir.as_fd(),
        }
    }

    /// The path of the object file `file` of `namespace`, for messages.
    pub(super) fn file_path(&self, namespace: Namespace, file: &str) -> PathBuf {
        match namespace {
            Namespace::Local => self
                .path
                .join(&self.user_dir_name)
                .join(LOCAL_DIR)
                .join(file),
            Namespace::Global => self.path.join(file),
        }
    }

    /// The file name of the object `object` in `namespace`.
    pub(super) fn file_name(namespace: Namespace, object: &str) -> String {
        let encoded = super::file_name::encode(object);
        match namespace {
            Namespace::Local => encoded,
            Namespace::Global => format!("{GLOBAL_PREFIX}{encoded}"),
        }
    }

    /// The registry of user `uid` in this root: ours, or another user's mapped read-only.
    /// `None` if it cannot be read (then nobody can tell whether that user's threads live).
    pub(super) fn registry_of(&self, uid: u32) -> Option<&'static Registry> {
        if uid == self.uid {
            return self.registry;
        }
        let mut foreign = self.foreign.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = foreign.get(&uid) {
            if found.is_some() {
                return *found;
            }
        }
        // O_PATH: another user's directory is 0711, searchable but not readable by us.
        // A user not mapped into our user namespace shows as the overflow uid: their
        // directory cannot be told from anybody else's.
        let opened = super::idmap::seen_uid(uid).and_then(|owner| {
            super::user_dir::of(self.dir.as_fd(), uid, owner)
                .and_then(|d| Registry::open_foreign(d.as_fd(), uid, owner).ok())
        });
        foreign.insert(uid, opened);
        opened
    }
}

/// Opens (creating it if needed) the directory `name` in `parent`, which must belong to
/// `uid` and must not be writable by others; fixes its mode to `mode` if the umask cut it.
fn private_dir(
    parent: BorrowedFd<'_>,
    parent_path: &Path,
    name: &str,
    uid: u32,
    mode: u32,
) -> Result<OwnedFd> {
    let path = parent_path.join(name);
    match rustix::fs::mkdirat(parent, name, crate::sys::unix::files::mode(mode)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(root_error(&path, "cannot create the directory", e)),
    }
    let dir = files::open_dir_in(parent, name).map_err(|e| match e {
        Errno::LOOP | Errno::NOTDIR => refused(
            &path,
            "it is not a directory (a link or file was planted there)",
        ),
        e => root_error(&path, "cannot open the directory", e),
    })?;
    let st = rustix::fs::fstat(&dir)
        .map_err(|e| root_error(&path, "cannot inspect the directory", e))?;
    if st.st_uid != uid {
        return Err(refused(
            &path,
            &format!("it belongs to uid {}, not to us (uid {uid})", st.st_uid),
        ));
    }
    if crate::sys::unix::files::mode_bits(&st) & 0o7777 != mode {
        // Ours, so made by us under another umask (or changed by us): set it back. Files
        // others might have planted meanwhile are refused one by one (owner checks).
        rustix::fs::fchmod(&dir, crate::sys::unix::files::mode(mode))
            .map_err(|e| root_error(&path, "cannot set the mode of the directory", e))?;
    }
    Ok(dir)
}

pub(super) fn root_error(path: &Path, what: &str, e: Errno) -> Error {
    let kind = match e {
        Errno::ACCESS | Errno::PERM => ErrorKind::AccessDenied,
        Errno::NOENT | Errno::NOTDIR => ErrorKind::PathNotFound,
        Errno::NOSPC | Errno::DQUOT | Errno::MFILE | Errno::NFILE | Errno::NOMEM => {
            ErrorKind::ResourceExhausted
        }
        _ => ErrorKind::Io,
    };
    Error::io(kind, format!("{what} {}", path.display()), e.into())
}

fn refused(path: &Path, why: &str) -> Error {
    Error::new(
        ErrorKind::AccessDenied,
        format!(
            "refusing to use {} for named mutexes: {why}",
            path.display()
        ),
    )
}
