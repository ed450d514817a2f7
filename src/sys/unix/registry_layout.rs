//! The registry's file format: a header and one slot per thread (FORMAT.md, "Registry").

use super::mapping::Mapping;
use crate::protocol::lock_word;
use crate::sys::contract::{Error, ErrorKind, Result};
use std::sync::atomic::Ordering;

/// The format version of registries, which outlive every process (versions 2 and 3 of the
/// object format left them unchanged, so registries made by earlier releases stay usable).
pub(super) const REGISTRY_VERSION: u32 = super::lifeline::REGISTRY_VERSION;

/// `"nmtx-reg"` read as a little-endian u64.
pub(super) const REGISTRY_MAGIC: u64 = u64::from_le_bytes(*b"nmtx-reg");
/// Size of the registry header; slots start here.
pub(super) const REGISTRY_HEADER: usize = 4096;
/// Size of one slot.
pub(super) const SLOT_SIZE: usize = 128;
/// Room for the `pthread_mutex_t` at the start of each slot (glibc: 40 bytes on x86_64,
/// 48 on aarch64; musl: 40 or 24).
#[cfg_attr(
    any(not(target_os = "linux"), feature = "portable-backend"),
    allow(dead_code)
)]
pub(super) const LIFELINE_SPACE: usize = 64;
/// Slots in a registry made with default settings.
pub(super) const DEFAULT_SLOTS: u32 = 16384;
/// The largest slot count the lock word can address.
pub(super) const MAX_SLOTS: u32 = (lock_word::SLOT_MASK as u32) - 1;

pub(super) mod reg {
    //! Byte offsets inside the registry header (from the types of `format.rs`).
    use super::super::format::{REGISTRY_FIELDS, offset};
    /// u64 magic.
    pub const MAGIC: usize = offset(REGISTRY_FIELDS, "MAGIC");
    /// u32 format version.
    pub const VERSION: usize = offset(REGISTRY_FIELDS, "VERSION");
    /// u32 header size (where slot 0 starts).
    pub const HEADER_SIZE: usize = offset(REGISTRY_FIELDS, "HEADER_SIZE");
    /// u32 slot size.
    pub const SLOT_SIZE: usize = offset(REGISTRY_FIELDS, "SLOT_SIZE");
    /// u32 number of slots.
    pub const SLOT_COUNT: usize = offset(REGISTRY_FIELDS, "SLOT_COUNT");
    /// u32 uid of the user whose threads register here.
    pub const OWNER_UID: usize = offset(REGISTRY_FIELDS, "OWNER_UID");
    /// u32 where the next registration starts looking (rotates so slots are reused rarely).
    pub const NEXT: usize = offset(REGISTRY_FIELDS, "NEXT");
}

pub(super) mod slot {
    //! Byte offsets inside a registry slot (from the types of `format.rs`).
    use super::super::format::{SLOT_FIELDS, offset};
    /// The robust `pthread_mutex_t` (lifeline) the slot's thread holds for its whole life.
    pub const LIFELINE: usize = offset(SLOT_FIELDS, "LIFELINE");
    /// u64 slot word: high 32 bits generation, low 32 bits state.
    pub const WORD: usize = offset(SLOT_FIELDS, "WORD");
    /// u32 pid of the thread's process, as that process sees itself.
    pub const PID: usize = offset(SLOT_FIELDS, "PID");
    /// u32 tid of the thread, as its process sees it.
    pub const TID: usize = offset(SLOT_FIELDS, "TID");
    /// u64 when the slot was claimed, ns since the Unix epoch.
    pub const CLAIMED_NS: usize = offset(SLOT_FIELDS, "CLAIMED_NS");
    /// u64 inode of the thread's PID namespace (`/proc/self/ns/pid`), 0 if unknown.
    pub const PIDNS: usize = offset(SLOT_FIELDS, "PIDNS");
    /// u32 offset of the futex word inside this slot's `pthread_mutex_t` (glibc 0, musl 4).
    #[cfg_attr(
        any(not(target_os = "linux"), feature = "portable-backend"),
        allow(dead_code)
    )]
    pub const LIFELINE_WORD: usize = offset(SLOT_FIELDS, "LIFELINE_WORD");
    /// u32 C library whose `pthread_mutex_t` layout the lifeline has (see `LIBC_*`): a dead
    /// slot is only reused by a thread of the same C library.
    #[cfg_attr(
        any(not(target_os = "linux"), feature = "portable-backend"),
        allow(dead_code)
    )]
    pub const LIBC: usize = offset(SLOT_FIELDS, "LIBC");
}

/// `slot::LIBC` for glibc.
#[cfg_attr(
    any(
        not(target_os = "linux"),
        feature = "portable-backend",
        target_env = "musl"
    ),
    allow(dead_code)
)]
pub(super) const LIBC_GLIBC: u32 = 1;
/// `slot::LIBC` for musl.
#[cfg_attr(not(target_env = "musl"), allow(dead_code))]
pub(super) const LIBC_MUSL: u32 = 2;

/// Slot states (low half of the slot word).
pub(super) mod slot_state {
    /// Never used: the lifeline is not initialised yet.
    pub const VIRGIN: u32 = 0;
    /// A thread is claiming it (initialising or locking the lifeline).
    pub const CLAIMING: u32 = 1;
    /// Claimed; the thread lives as long as its lifeline is held (no `OWNER_DIED`).
    pub const LIVE: u32 = 2;
    /// Given back: by its thread at its end (portable flavour), or by a claimer that could
    /// not use it. Free to claim.
    pub const RETIRED: u32 = 3;
}

/// The file size of a registry with `slots` slots.
pub(super) fn registry_size(slots: u32) -> usize {
    REGISTRY_HEADER + slots as usize * SLOT_SIZE
}

/// Checks a mapped registry header against the file's size and expected owner; returns the
/// slot count.
pub(super) fn validate_registry(map: &Mapping, file_size: u64, uid: u32) -> Result<u32> {
    let bad = |what: String| {
        Error::new(
            ErrorKind::Corrupt,
            format!("the thread registry of uid {uid} is unusable: {what}"),
        )
    };
    if map.len() < REGISTRY_HEADER {
        return Err(bad(format!(
            "{} bytes is smaller than its header",
            map.len()
        )));
    }
    if map.u64(reg::MAGIC).load(Ordering::Acquire) != REGISTRY_MAGIC {
        return Err(bad("bad magic".into()));
    }
    let version = map.u32(reg::VERSION).load(Ordering::Relaxed);
    if version != REGISTRY_VERSION {
        return Err(Error::new(
            ErrorKind::Incompatible,
            format!(
                "the thread registry of uid {uid} has format version {version}; this namedmutex reads {REGISTRY_VERSION}"
            ),
        ));
    }
    let header = map.u32(reg::HEADER_SIZE).load(Ordering::Relaxed) as usize;
    let slot_size = map.u32(reg::SLOT_SIZE).load(Ordering::Relaxed) as usize;
    let count = map.u32(reg::SLOT_COUNT).load(Ordering::Relaxed);
    if header != REGISTRY_HEADER || slot_size != SLOT_SIZE {
        return Err(bad(format!(
            "header {header} / slot size {slot_size} unexpected"
        )));
    }
    if count == 0 || count > MAX_SLOTS || registry_size(count) as u64 != file_size {
        return Err(bad(format!(
            "{count} slots do not fit a file of {file_size} bytes"
        )));
    }
    if map.u32(reg::OWNER_UID).load(Ordering::Relaxed) != uid {
        return Err(bad("it names another owner".into()));
    }
    Ok(count)
}

/// Fills the header of a fresh, zeroed registry that nobody else can see yet.
pub(super) fn initialize_registry(map: &Mapping, slots: u32, uid: u32) {
    map.u32(reg::VERSION)
        .store(REGISTRY_VERSION, Ordering::Relaxed);
    map.u32(reg::HEADER_SIZE)
        .store(REGISTRY_HEADER as u32, Ordering::Relaxed);
    map.u32(reg::SLOT_SIZE)
        .store(SLOT_SIZE as u32, Ordering::Relaxed);
    map.u32(reg::SLOT_COUNT).store(slots, Ordering::Relaxed);
    map.u32(reg::OWNER_UID).store(uid, Ordering::Relaxed);
    map.u64(reg::MAGIC).store(REGISTRY_MAGIC, Ordering::Release);
}
