//! The thread registry: one file per user and namespace root, with one slot per thread that
//! has used a mutex. A slot gives the thread a short, never-reused identity (slot index and
//! generation: the *token* stored in a mutex's lock word) and holds its lifeline, which the
//! kernel marks when the thread ends (see `lifeline.rs`).
//!
//! Tokens, not thread ids, identify owners: thread ids are reused, and are not unique across
//! PID namespaces (containers sharing the directory). A slot is reused only after its
//! thread has died, and reuse bumps the generation, so a stale token never matches.
//!
//! Registries are mapped once and never unmapped: the kernel walks each thread's robust list
//! through this memory at the thread's death. How a slot's thread is known to live is the
//! flavour's (`lifeline.rs`): a robust futex per thread on Linux, a record lock per process
//! in the portable flavour. This file is the part they share: the file, its slots, claiming.
//!
//! A process keeps exactly one descriptor per registry file, whoever asks for it (deduplicated
//! by device and inode), and never closes it: closing *any* descriptor of a file drops the
//! record locks the process holds on it, which in the portable flavour are its lifelines.

use super::files::{self, NewFile};
use super::lifeline::{self, Lifeline};
use super::mapping::Mapping;
use super::registry_layout::{self as layout, reg, slot, slot_state};
use crate::protocol::lock_word;
use crate::sys::contract::{Error, ErrorKind, Result};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::AtFlags;
use rustix::fs::OFlags;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The file name of a registry inside its user directory (the flavour's: the two never share
/// a registry).
pub(super) const FILE_NAME: &str = lifeline::REGISTRY_FILE;

/// A mapped, validated registry.
pub(super) struct Registry {
    pub(super) map: Mapping,
    /// The file's one descriptor in this process (see the module doc).
    pub(super) fd: OwnedFd,
    /// The file's device and inode: one `Registry` per file and process.
    dev_ino: (u64, u64),
    pub(super) slots: u32,
    pub(super) uid: u32,
    /// What the flavour keeps per registry in this process.
    #[cfg_attr(
        all(target_os = "linux", not(feature = "portable-backend")),
        allow(dead_code)
    )]
    pub(super) local: lifeline::Local,
}

/// What a token's slot says about the thread that owns a mutex.
pub(super) enum Liveness {
    /// The thread has ended (or the slot was reused since): the mutex is abandoned.
    Dead,
    /// The thread lives; the kernel will change `lifeline` from `value` when it dies.
    Alive { lifeline: Lifeline, value: u32 },
}

/// Who a slot belongs to, for diagnostics.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct SlotOwner {
    pub pid: u32,
    pub tid: u32,
    pub pidns: u64,
}

static ALL: Mutex<Vec<&'static Registry>> = Mutex::new(Vec::new());

impl Registry {
    /// Opens (creating it if needed) the registry of the calling user in `user_dir`: `uid`
    /// is the user's key, `owner` the uid its files show (see `idmap.rs`).
    pub(super) fn open_own(
        user_dir: BorrowedFd<'_>,
        uid: u32,
        owner: u32,
    ) -> Result<&'static Registry> {
        for _ in 0..100 {
            if let Some(known) = Registry::already_open(user_dir, true) {
                return Ok(known);
            }
            match files::open_in(user_dir, FILE_NAME, OFlags::RDWR) {
                Ok(fd) => return Registry::adopt(fd, uid, owner, true),
                Err(rustix::io::Errno::NOENT) => {}
                Err(e) => return Err(files::io_error("open", "the thread registry", e)),
            }
            let slots = default_slots();
            let spec = NewFile {
                mode: 0o644,
                group: None,
                size: layout::registry_size(slots),
            };
            let made = files::publish_new(user_dir, FILE_NAME, &spec, |fd| {
                let map = Mapping::map(fd.as_fd(), layout::REGISTRY_HEADER, true)
                    .map_err(|e| Error::io(ErrorKind::Io, "cannot map a new thread registry", e))?;
                layout::initialize_registry(&map, slots, uid);
                Ok(())
            })?;
            if let Some((fd, ())) = made {
                return Registry::adopt(fd, uid, owner, true);
            }
            // Another process published it first: open theirs.
        }
        Err(Error::new(
            ErrorKind::Busy,
            "the thread registry keeps appearing and disappearing",
        ))
    }

    /// Maps another user's registry read-only, to tell whether their threads live.
    pub(super) fn open_foreign(
        user_dir: BorrowedFd<'_>,
        uid: u32,
        owner: u32,
    ) -> Result<&'static Registry> {
        if let Some(known) = Registry::already_open(user_dir, false) {
            return Ok(known);
        }
        let fd = files::open_in(user_dir, FILE_NAME, OFlags::RDONLY)
            .map_err(|e| files::io_error("open", "another user's thread registry", e))?;
        Registry::adopt(fd, uid, owner, false)
    }

    /// The registry this process already has for the file `FILE_NAME` in `user_dir`, if
    /// any (mapped read-write if `writable`), found without opening the file: an open and
    /// close of a second descriptor would drop this process's record locks on it.
    fn already_open(user_dir: BorrowedFd<'_>, writable: bool) -> Option<&'static Registry> {
        let st = rustix::fs::statat(user_dir, FILE_NAME, AtFlags::SYMLINK_NOFOLLOW).ok()?;
        let all = ALL.lock().unwrap_or_else(|p| p.into_inner());
        all.iter()
            .find(|r| r.dev_ino == files::key(&st) && (r.map.is_writable() || !writable))
            .copied()
    }

    /// `uid` is the user's key (recorded in the header), `owner` the uid the file shows.
    fn adopt(fd: OwnedFd, uid: u32, owner: u32, writable: bool) -> Result<&'static Registry> {
        let st = rustix::fs::fstat(&fd)
            .map_err(|e| files::io_error("inspect", "the thread registry", e))?;
        let bad = |what: &str| {
            Error::new(
                ErrorKind::AccessDenied,
                format!("refusing the thread registry of uid {uid}: {what}"),
            )
        };
        if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
            return Err(bad("it is not a regular file"));
        }
        if st.st_uid != owner {
            return Err(bad(&format!("it belongs to uid {}", st.st_uid)));
        }
        if crate::sys::unix::files::mode_bits(&st) & 0o022 != 0 {
            return Err(bad("others may write to it"));
        }
        let size = st.st_size as u64;
        if (size as usize) < layout::REGISTRY_HEADER {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!("the thread registry of uid {uid} is truncated ({size} bytes)"),
            ));
        }
        // Map the header first to learn the size the header claims, then the whole file.
        let header = Mapping::map(fd.as_fd(), layout::REGISTRY_HEADER, false)
            .map_err(|e| Error::io(ErrorKind::Io, "cannot map the thread registry", e))?;
        let slots = layout::validate_registry(&header, size, uid)?;
        drop(header);
        let map = Mapping::map(fd.as_fd(), layout::registry_size(slots), writable)
            .map_err(|e| Error::io(ErrorKind::Io, "cannot map the thread registry", e))?;
        let mut all = ALL.lock().unwrap_or_else(|p| p.into_inner());
        // Opened twice meanwhile (another thread): keep the first, and this descriptor too,
        // since closing it would drop the first's record locks.
        if let Some(known) = all
            .iter()
            .find(|r| r.dev_ino == files::key(&st) && (r.map.is_writable() || !writable))
        {
            std::mem::forget(fd);
            return Ok(known);
        }
        let registry: &'static Registry = Box::leak(Box::new(Registry {
            map,
            fd,
            dev_ino: files::key(&st),
            slots,
            uid,
            local: lifeline::Local::default(),
        }));
        all.push(registry);
        Ok(registry)
    }

    /// The key of this registry in per-thread caches: its address, unique because
    /// registries are never freed.
    #[inline]
    pub(super) fn id(&self) -> usize {
        self as *const Registry as usize
    }

    pub(super) fn slot_offset(&self, index: u32) -> usize {
        layout::REGISTRY_HEADER + index as usize * layout::SLOT_SIZE
    }

    pub(super) fn slot_word(&self, index: u32) -> &AtomicU64 {
        self.map.u64(self.slot_offset(index) + slot::WORD)
    }

    /// Claims a free slot, runs `fill` on it (the flavour's: set up the lifeline, say who
    /// owns it), and returns its token part: `generation << 32 | (slot + 1)`. A `fill` that
    /// answers `false` gives the slot back (as retired, so claimable) and the scan goes on.
    ///
    /// Slots are scanned from a rotating start, so a freed slot is reused as late as
    /// possible. A slot is taken if it was never used, or if the flavour says its owner is
    /// gone (`lifeline::reusable`). Slots caught mid-claim by a process that then crashed
    /// stay unusable (one slot per such crash; documented in FORMAT.md).
    pub(super) fn claim_slot(
        &'static self,
        mut fill: impl FnMut(u32) -> Result<bool>,
    ) -> Result<u64> {
        assert!(
            self.map.is_writable(),
            "claiming a slot in a read-only registry"
        );
        let start = self.map.u32(reg::NEXT).fetch_add(1, Ordering::Relaxed);
        for i in 0..self.slots {
            let index = start.wrapping_add(i) % self.slots;
            if i == 0 || index % SLOTS_PER_PAGE == 0 {
                self.back(index)?;
            }
            let word = self.slot_word(index);
            let cur = word.load(Ordering::Acquire);
            let (generation, state) = ((cur >> 32) as u32, cur as u32);
            if !lifeline::reusable(self, index, generation, state) {
                continue;
            }
            let next_gen = generation.wrapping_add(1).max(1);
            let claiming = u64::from(next_gen) << 32 | u64::from(slot_state::CLAIMING);
            if word
                .compare_exchange(cur, claiming, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            super::fault::point("register.after_claim_cas");
            if !fill(index)? {
                let retired = u64::from(next_gen) << 32 | u64::from(slot_state::RETIRED);
                word.store(retired, Ordering::Release);
                continue;
            }
            self.record_claimer(index);
            super::fault::point("register.before_live");
            word.store(
                u64::from(next_gen) << 32 | u64::from(slot_state::LIVE),
                Ordering::Release,
            );
            return Ok(lock_word::thread_part(next_gen, index + 1));
        }
        Err(Error::new(
            ErrorKind::ResourceExhausted,
            format!(
                "all {} slots of the thread registry of uid {} belong to live threads; \
                 end some threads or raise NAMEDMUTEX_REGISTRY_SLOTS before the registry is created",
                self.slots, self.uid
            ),
        ))
    }

    /// Gives the page of slot `index` blocks before it is first touched: the registry is
    /// sparse, and on a full tmpfs the first touch of an unbacked page of a shared mapping
    /// raises SIGBUS instead of failing.
    #[cfg(not(target_os = "linux"))]
    fn back(&self, _index: u32) -> Result<()> {
        Ok(()) // tmpfs's SIGBUS on a full file system is Linux's; elsewhere nothing to do
    }

    #[cfg(target_os = "linux")]
    fn back(&self, index: u32) -> Result<()> {
        let page = (self.slot_offset(index) & !4095) as u64;
        match rustix::fs::fallocate(&self.fd, rustix::fs::FallocateFlags::KEEP_SIZE, page, 4096) {
            Ok(()) | Err(rustix::io::Errno::OPNOTSUPP) => Ok(()),
            Err(e) => Err(files::io_error(
                "find room for a new slot in",
                "the thread registry",
                e,
            )),
        }
    }

    /// Records who claimed slot `index` (diagnostics: `list`, `info`, abandonment reports).
    fn record_claimer(&self, index: u32) {
        let base = self.slot_offset(index);
        let pid = super::os::process_id();
        let tid = super::os::thread_id();
        self.map.u32(base + slot::PID).store(pid, Ordering::Relaxed);
        self.map.u32(base + slot::TID).store(tid, Ordering::Relaxed);
        self.map
            .u64(base + slot::CLAIMED_NS)
            .store(super::clock::realtime_ns(), Ordering::Relaxed);
        self.map
            .u64(base + slot::PIDNS)
            .store(pid_namespace(), Ordering::Relaxed);
    }

    /// Whether the thread with this token part (`slot_plus_one`, `generation`) still lives.
    #[inline]
    pub(super) fn liveness(&'static self, slot_plus_one: u32, generation: u32) -> Liveness {
        if slot_plus_one == 0 || slot_plus_one > self.slots {
            return Liveness::Dead;
        }
        lifeline::liveness(self, slot_plus_one - 1, generation)
    }

    /// The process and thread recorded in slot `slot_plus_one - 1` (diagnostics only).
    pub(super) fn owner(&self, slot_plus_one: u32) -> Option<SlotOwner> {
        if slot_plus_one == 0 || slot_plus_one > self.slots {
            return None;
        }
        let base = self.slot_offset(slot_plus_one - 1);
        Some(SlotOwner {
            pid: self.map.u32(base + slot::PID).load(Ordering::Relaxed),
            tid: self.map.u32(base + slot::TID).load(Ordering::Relaxed),
            pidns: self.map.u64(base + slot::PIDNS).load(Ordering::Relaxed),
        })
    }
}

/// Slots per 4 KiB page (pages are allocated one by one, see `Registry::back`).
const SLOTS_PER_PAGE: u32 = (4096 / layout::SLOT_SIZE) as u32;

/// The slot count for a registry created now: `NAMEDMUTEX_REGISTRY_SLOTS` (for tests of
/// exhaustion) or the default.
fn default_slots() -> u32 {
    std::env::var("NAMEDMUTEX_REGISTRY_SLOTS")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|n| (1..=layout::MAX_SLOTS).contains(n))
        .unwrap_or(layout::DEFAULT_SLOTS)
}

/// The inode of this process's PID namespace, 0 if unknown (diagnostics: it tells which
/// namespace a recorded pid belongs to).
pub(super) fn pid_namespace() -> u64 {
    std::fs::metadata("/proc/self/ns/pid")
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .unwrap_or(0)
}
