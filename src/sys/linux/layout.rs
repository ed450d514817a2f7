//! The shared-memory format (objects version 3, registries version 1), as FORMAT.md documents it for other implementers.
//!
//! Two kinds of file: an *object page* per mutex, and a *registry* per user and namespace
//! root that holds one lifeline slot per thread. All integers are little-endian (the native
//! order of every platform this backend supports); all fields are accessed atomically.
//!
//! Everything read from these files is validated before use: magic, version, kind, sizes,
//! name. A file that fails is refused with `TypeMismatch`, `Incompatible` or `Corrupt`.

use super::mapping::Mapping;
use crate::error::{Error, ErrorKind, Result};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// The format version of object files. Any change to their layout bumps it.
pub(super) const FORMAT_VERSION: u32 = 3;
/// The format version of registries, which outlive every process (versions 2 and 3 of the
/// object format left them unchanged, so registries made by earlier releases stay usable).
pub(super) const REGISTRY_VERSION: u32 = 1;

// ----- object page -----------------------------------------------------------------------

/// Size of an object file: one page.
pub(super) const OBJECT_SIZE: usize = 4096;
/// `"nmtx-obj"` read as a little-endian u64.
pub(super) const OBJECT_MAGIC: u64 = u64::from_le_bytes(*b"nmtx-obj");
/// The object kind of a mutex (other kinds may share the namespace later).
pub(super) const KIND_MUTEX: u32 = 1;

pub(super) mod obj {
    //! Byte offsets inside an object page (from the types of `format.rs`).
    use super::super::format::{OBJECT_FIELDS, offset};
    /// u64 magic.
    pub const MAGIC: usize = offset(OBJECT_FIELDS, "MAGIC");
    /// u32 format version.
    pub const VERSION: usize = offset(OBJECT_FIELDS, "VERSION");
    /// u32 object kind.
    pub const KIND: usize = offset(OBJECT_FIELDS, "KIND");
    /// u32 size of the file in bytes.
    pub const SIZE: usize = offset(OBJECT_FIELDS, "SIZE");
    /// u32 length of the name in bytes (UTF-8), 0 for unnamed objects.
    pub const NAME_LEN: usize = offset(OBJECT_FIELDS, "NAME_LEN");
    /// u32 flags: bit 0 = Global namespace.
    pub const FLAGS: usize = offset(OBJECT_FIELDS, "FLAGS");
    /// u32 uid of the creating user.
    pub const CREATOR_UID: usize = offset(OBJECT_FIELDS, "CREATOR_UID");
    /// u64 creation time, nanoseconds since the Unix epoch (diagnostics only).
    pub const CREATED_NS: usize = offset(OBJECT_FIELDS, "CREATED_NS");
    /// u32 pid of the creating process, as it saw itself (diagnostics only).
    pub const CREATOR_PID: usize = offset(OBJECT_FIELDS, "CREATOR_PID");
    /// u64 device and u64 inode of the namespace root directory the object belongs to.
    pub const ROOT_DEV: usize = offset(OBJECT_FIELDS, "ROOT_DEV");
    /// See `ROOT_DEV`.
    pub const ROOT_INO: usize = offset(OBJECT_FIELDS, "ROOT_INO");
    /// u64 lock word: low 32 bits are the futex word, high 32 the owner's slot generation.
    pub const LOCK: usize = offset(OBJECT_FIELDS, "LOCK");
    /// u32 recursion count, written only by the owner.
    pub const COUNT: usize = offset(OBJECT_FIELDS, "COUNT");
    /// u32 number of threads sleeping in a wait (approximate: crashes leave it high).
    pub const SLEEPERS: usize = offset(OBJECT_FIELDS, "SLEEPERS");
    /// u64 time the current owner acquired, ns since the Unix epoch; 0 when unknown.
    pub const ACQUIRED_NS: usize = offset(OBJECT_FIELDS, "ACQUIRED_NS");
    /// u32 number of times an acquirer found the mutex abandoned (diagnostics only).
    pub const ABANDON_COUNT: usize = offset(OBJECT_FIELDS, "ABANDON_COUNT");
    /// u32 pid (as the owner saw itself) of the last owner that abandoned it.
    pub const LAST_ABANDONER_PID: usize = offset(OBJECT_FIELDS, "LAST_ABANDONER_PID");
    /// u32 tid of the last owner that abandoned it.
    pub const LAST_ABANDONER_TID: usize = offset(OBJECT_FIELDS, "LAST_ABANDONER_TID");
    /// u32 the biased thread's recursion count while the lock word is biased (see
    /// `bias.rs`); written only by that thread. 0 = it does not hold the mutex.
    pub const BIAS_DEPTH: usize = offset(OBJECT_FIELDS, "BIAS_DEPTH");
    /// u32 1 while the mutex has been neither biased nor contended: its owner, releasing,
    /// puts the word back to `BIASABLE` instead of 0, so that a process that could not bias
    /// yet (see `barrier.rs`) does not lose the chance for good. Written only by the owner.
    pub const FRESH: usize = offset(OBJECT_FIELDS, "FRESH");
    /// u32 length in bytes of `ABANDON_NOTE` (at most `NOTE_CAPACITY`; larger is read as 0).
    pub const ABANDON_NOTE_LEN: usize = offset(OBJECT_FIELDS, "ABANDON_NOTE_LEN");
    /// Why the mutex was last abandoned on purpose (`NamedMutex::abandon`), UTF-8; written by
    /// that owner before it gives the word up, cleared by the winner of an ordinary
    /// abandonment (diagnostics only).
    pub const ABANDON_NOTE: usize = offset(OBJECT_FIELDS, "ABANDON_NOTE");
    /// 64 × u32 user table: `uid + 1` of each user that has opened the object, 0 = empty.
    pub const USERS: usize = offset(OBJECT_FIELDS, "USERS");
    /// The name, UTF-8, `NAME_LEN` bytes.
    pub const NAME: usize = offset(OBJECT_FIELDS, "NAME");
}

/// The bytes of an object file that validation reads: everything up to the end of the name.
pub(super) const HEADER_BYTES: usize = obj::NAME + NAME_CAPACITY;

/// The u64 at `offset` of a header read from a file.
pub(super) fn header_u64(header: &[u8], offset: usize) -> u64 {
    u64::from_le_bytes(header[offset..offset + 8].try_into().expect("8 bytes"))
}

/// The u32 at `offset` of a header read from a file.
pub(super) fn header_u32(header: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes(header[offset..offset + 4].try_into().expect("4 bytes"))
}

/// The index of `uid` in the user table of a header read from a file, if it is there.
pub(super) fn header_user_index(header: &[u8], uid: u32) -> Option<usize> {
    (0..MAX_USERS).find(|&i| header_u32(header, obj::USERS + 4 * i) == uid.wrapping_add(1))
}

/// Entries in an object's user table.
pub(super) const MAX_USERS: usize = 64;
/// Room for the name: 260 UTF-16 units are at most 780 bytes of UTF-8.
pub(super) const NAME_CAPACITY: usize = 1024;
/// Flag: the object is in the `Global\` namespace.
pub(super) const FLAG_GLOBAL: u32 = 1;
/// Flag: the last handle closed (or a stale object was found); the file is being removed
/// and must not be used. A process that opened the file just before sees it and retries.
pub(super) const FLAG_DEAD: u32 = 2;
/// Flag: keep the object while its owner is dead and no acquirer has been told yet, even
/// when no process has it open (`MutexOptions::keep_abandoned`). Set by any handle opened
/// with that option, for the rest of the object's life.
pub(super) const FLAG_KEEP_ABANDONED: u32 = 4;
/// Room for the note of an abandonment on purpose.
pub(super) const NOTE_CAPACITY: usize = 512;

/// The lock word. Low 32 bits (the futex word): bit 31 `WAITERS`, bit 30 `BIASED`, bits 24..29
/// the owner's index in the object's user table, bits 0..24 the owner's registry slot + 1; the
/// mutex is free when bits 0..30 are 0. High 32 bits: the generation of the owner's slot.
///
/// A *biased* word (bit 30 set) names the one thread that may acquire and release the mutex
/// without atomic read-modify-write instructions; whether it holds the mutex is its
/// `BIAS_DEPTH` (see `bias.rs`). `BIASED` alone is a free mutex that nobody has held yet: the
/// first acquirer may take the bias.
pub(super) mod lock {
    /// Somebody may be sleeping on the futex word: the releaser must wake one.
    pub const WAITERS: u64 = 1 << 31;
    /// The word names the thread the mutex is biased to (see `bias.rs`).
    pub const BIASED: u64 = 1 << 30;
    /// A fresh mutex: free, and the first thread to take it may take the bias.
    pub const BIASABLE: u64 = BIASED;
    /// Bits that identify the owner within the low word.
    pub const OWNER_MASK: u64 = 0x3FFF_FFFF;
    /// Shift of the user-table index.
    pub const USER_SHIFT: u32 = 24;
    /// Mask of the user-table index after shifting.
    pub const USER_MASK: u64 = 0x3F;
    /// Mask of slot + 1.
    pub const SLOT_MASK: u64 = 0x00FF_FFFF;
    /// The token of a mutex its owner gave up on purpose (`NamedMutex::abandon`): user 63,
    /// slot + 1 = 0, a token that names no thread, so that every acquirer finds its owner
    /// dead. Distinct from every thread's token (whose slot + 1 is at least 1), and its low
    /// 32 bits differ from the giver's, so that a sleeper about to sleep on the old value
    /// is not left asleep.
    pub const ABANDONED: u64 = 0x3F00_0000;
    /// Largest recursion count (Windows' limit).
    pub const MAX_COUNT: u32 = 0x7FFF_FFFF;

    /// The lock word without its `WAITERS` bit: the owner's full identity (token) in a
    /// normal word. A biased word keeps its `BIASED` bit, so it never equals a token.
    pub fn token(word: u64) -> u64 {
        word & !WAITERS
    }
    /// Whether the word names a thread the mutex is biased to.
    pub fn is_biased(word: u64) -> bool {
        word & BIASED != 0 && word & OWNER_MASK != 0
    }
    /// The token of the thread a biased word names.
    pub fn bias_holder(word: u64) -> u64 {
        word & !(WAITERS | BIASED)
    }
    /// The owner's user-table index.
    pub fn user(word: u64) -> usize {
        ((word >> USER_SHIFT) & USER_MASK) as usize
    }
    /// The owner's slot + 1 (0: free).
    pub fn slot_plus_one(word: u64) -> u32 {
        (word & SLOT_MASK) as u32
    }
    /// The owner's slot generation.
    pub fn generation(word: u64) -> u32 {
        (word >> 32) as u32
    }
    /// Whether nobody owns the mutex, and it is not biased to anyone (0, or `BIASABLE`).
    pub fn is_free(word: u64) -> bool {
        word & OWNER_MASK == 0
    }
    /// The part of a token that names a thread: its registry slot + 1 (at least 1) and that
    /// slot's generation.
    pub fn thread_part(generation: u32, slot_plus_one: u32) -> u64 {
        u64::from(generation) << 32 | u64::from(slot_plus_one) & SLOT_MASK
    }
    /// The part of a token that names the user: its index in the object's user table.
    pub fn user_part(user: usize) -> u64 {
        (user as u64 & USER_MASK) << USER_SHIFT
    }
}

/// Typed, validated access to a mapped object page.
pub(super) struct ObjectPage {
    map: Mapping,
}

impl ObjectPage {
    /// Wraps a mapping of an object file after checking its header. `expected_name` is the
    /// name the file must hold (`None` skips the check, for inherited handles).
    pub(super) fn validate(map: Mapping, expected_name: Option<&str>) -> Result<ObjectPage> {
        if map.len() < OBJECT_SIZE {
            return Err(corrupt(format!(
                "the object file is {} bytes; {OBJECT_SIZE} expected",
                map.len()
            )));
        }
        let header = map.read_bytes(0, HEADER_BYTES);
        ObjectPage::validate_header(map, &header, expected_name)
    }

    /// Like [`ObjectPage::validate`], with the header already read from the file (with
    /// `pread`: checking it that way spares the mapping a page fault when the caller then
    /// never touches the page, as in an open followed by a close).
    pub(super) fn validate_header(
        map: Mapping,
        header: &[u8],
        expected_name: Option<&str>,
    ) -> Result<ObjectPage> {
        if map.len() < OBJECT_SIZE || header.len() < HEADER_BYTES {
            return Err(corrupt(format!(
                "the object file is {} bytes; {OBJECT_SIZE} expected",
                map.len().min(header.len())
            )));
        }
        let page = ObjectPage { map };
        let magic = header_u64(header, obj::MAGIC);
        if magic != OBJECT_MAGIC {
            return Err(Error::new(
                ErrorKind::TypeMismatch,
                "the name belongs to a file that is not a namedmutex object (bad magic)",
            ));
        }
        let version = header_u32(header, obj::VERSION);
        if version != FORMAT_VERSION {
            return Err(Error::new(
                ErrorKind::Incompatible,
                format!(
                    "the object was made by a namedmutex with format version {version}; this one reads version {FORMAT_VERSION}"
                ),
            ));
        }
        let kind = header_u32(header, obj::KIND);
        if kind != KIND_MUTEX {
            return Err(Error::new(
                ErrorKind::TypeMismatch,
                format!("the name belongs to an object of kind {kind}, not a mutex"),
            ));
        }
        let size = header_u32(header, obj::SIZE) as usize;
        if size != OBJECT_SIZE {
            return Err(corrupt(format!(
                "the object header says {size} bytes; {OBJECT_SIZE} expected"
            )));
        }
        let name_len = header_u32(header, obj::NAME_LEN) as usize;
        if name_len > NAME_CAPACITY {
            return Err(corrupt(format!(
                "the object's name length {name_len} exceeds {NAME_CAPACITY}"
            )));
        }
        if let Some(expected) = expected_name {
            let stored = &header[obj::NAME..obj::NAME + name_len];
            if stored != expected.as_bytes() {
                return Err(corrupt(format!(
                    "the object file holds the name {:?}, not {expected:?}",
                    String::from_utf8_lossy(stored)
                )));
            }
        }
        Ok(page)
    }

    /// Wraps the mapping of an object this process has just written with
    /// [`object_image`] (nothing to validate: nobody else could write it yet).
    pub(super) fn created(map: Mapping) -> ObjectPage {
        ObjectPage { map }
    }

    pub(super) fn flags(&self) -> &AtomicU32 {
        self.map.u32(obj::FLAGS)
    }
    pub(super) fn creator(&self) -> (u32, u32, u64) {
        (
            self.map.u32(obj::CREATOR_UID).load(Ordering::Relaxed),
            self.map.u32(obj::CREATOR_PID).load(Ordering::Relaxed),
            self.map.u64(obj::CREATED_NS).load(Ordering::Relaxed),
        )
    }
    /// The stored name (validated length; lossy if a writer put invalid UTF-8 there).
    pub(super) fn name(&self) -> String {
        let len = (self.map.u32(obj::NAME_LEN).load(Ordering::Relaxed) as usize).min(NAME_CAPACITY);
        String::from_utf8_lossy(&self.map.read_bytes(obj::NAME, len)).into_owned()
    }
    /// Puts a stale object (no handle anywhere, held exclusively by the caller) back into
    /// the state of a new one, owned by `owner` if given.
    pub(super) fn reset(&self, owner: Option<u64>, now_ns: u64) {
        let m = &self.map;
        m.u32(obj::COUNT)
            .store(u32::from(owner.is_some()), Ordering::Relaxed);
        m.u32(obj::SLEEPERS).store(0, Ordering::Relaxed);
        m.u32(obj::BIAS_DEPTH).store(0, Ordering::Relaxed);
        m.u32(obj::FRESH)
            .store(u32::from(owner.is_some()), Ordering::Relaxed);
        m.u64(obj::ACQUIRED_NS)
            .store(if owner.is_some() { now_ns } else { 0 }, Ordering::Relaxed);
        m.u64(obj::LOCK)
            .store(owner.unwrap_or(lock::BIASABLE), Ordering::Relaxed);
        m.u32(obj::ABANDON_NOTE_LEN).store(0, Ordering::Relaxed);
        m.u32(obj::FLAGS)
            .fetch_and(!(FLAG_DEAD | FLAG_KEEP_ABANDONED), Ordering::Release);
    }
    #[inline]
    pub(super) fn lock_word(&self) -> &AtomicU64 {
        self.map.u64(obj::LOCK)
    }
    /// The futex word: the low half of the lock word.
    #[inline]
    pub(super) fn futex_word(&self) -> &AtomicU32 {
        // Little-endian: the low 32 bits of the u64 are at its address.
        self.map.u32(obj::LOCK)
    }
    #[inline]
    pub(super) fn count(&self) -> &AtomicU32 {
        self.map.u32(obj::COUNT)
    }
    #[inline]
    pub(super) fn bias_depth(&self) -> &AtomicU32 {
        self.map.u32(obj::BIAS_DEPTH)
    }
    #[inline]
    pub(super) fn fresh(&self) -> &AtomicU32 {
        self.map.u32(obj::FRESH)
    }
    #[inline]
    pub(super) fn sleepers(&self) -> &AtomicU32 {
        self.map.u32(obj::SLEEPERS)
    }
    #[inline]
    pub(super) fn acquired_ns(&self) -> &AtomicU64 {
        self.map.u64(obj::ACQUIRED_NS)
    }
    pub(super) fn abandon_count(&self) -> &AtomicU32 {
        self.map.u32(obj::ABANDON_COUNT)
    }
    pub(super) fn last_abandoner(&self) -> (&AtomicU32, &AtomicU32) {
        (
            self.map.u32(obj::LAST_ABANDONER_PID),
            self.map.u32(obj::LAST_ABANDONER_TID),
        )
    }
    /// The note of the last abandonment on purpose, if any.
    pub(super) fn abandon_note(&self) -> Option<String> {
        let len = self.map.u32(obj::ABANDON_NOTE_LEN).load(Ordering::Acquire) as usize;
        if len == 0 || len > NOTE_CAPACITY {
            return None;
        }
        let mut bytes = Vec::with_capacity(len.next_multiple_of(4));
        for i in (0..len).step_by(4) {
            let word = self.map.u32(obj::ABANDON_NOTE + i).load(Ordering::Relaxed);
            bytes.extend_from_slice(&word.to_le_bytes());
        }
        bytes.truncate(len);
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }
    /// Records `note` (cut to `NOTE_CAPACITY` bytes at a character boundary); empty clears it.
    /// Written only by the owner, before it gives the lock word up (the Release there
    /// publishes it).
    pub(super) fn set_abandon_note(&self, note: &str) {
        let mut end = note.len().min(NOTE_CAPACITY);
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        let bytes = &note.as_bytes()[..end];
        for (i, chunk) in bytes.chunks(4).enumerate() {
            let mut word = [0u8; 4];
            word[..chunk.len()].copy_from_slice(chunk);
            self.map
                .u32(obj::ABANDON_NOTE + 4 * i)
                .store(u32::from_le_bytes(word), Ordering::Relaxed);
        }
        self.map
            .u32(obj::ABANDON_NOTE_LEN)
            .store(end as u32, Ordering::Release);
    }
    pub(super) fn root_ident(&self) -> (u64, u64) {
        (
            self.map.u64(obj::ROOT_DEV).load(Ordering::Relaxed),
            self.map.u64(obj::ROOT_INO).load(Ordering::Relaxed),
        )
    }

    /// The uid recorded at `index` of the user table, if any.
    pub(super) fn user(&self, index: usize) -> Option<u32> {
        if index >= MAX_USERS {
            return None;
        }
        match self.map.u32(obj::USERS + 4 * index).load(Ordering::Acquire) {
            0 => None,
            plus_one => Some(plus_one - 1),
        }
    }

    /// The index of `uid` in the user table, adding it if absent.
    pub(super) fn user_index(&self, uid: u32) -> Result<usize> {
        let want = uid.wrapping_add(1);
        for i in 0..MAX_USERS {
            let slot = self.map.u32(obj::USERS + 4 * i);
            let mut cur = slot.load(Ordering::Acquire);
            if cur == 0 && self.map.is_writable() {
                cur = match slot.compare_exchange(0, want, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => return Ok(i),
                    Err(actual) => actual,
                };
            }
            if cur == want {
                return Ok(i);
            }
        }
        Err(Error::new(
            ErrorKind::ResourceExhausted,
            format!("{MAX_USERS} other users have already opened this object; it records no more"),
        ))
    }
}

/// The whole first state of a new object file, to be written with one `pwrite`.
///
/// A named object's file is created empty under its final name (see `object.rs`), so readers
/// tell a finished object from one being written by its size alone: the kernel sets the size
/// of a tmpfs file after it has copied the data of the write, and a read locks the page the
/// write filled, so whoever sees 4096 bytes sees all of them. One write also allocates the
/// page, so a full tmpfs answers `ENOSPC` here instead of `SIGBUS` on first touch.
pub(super) fn object_image(init: &ObjectInit<'_>) -> Result<[u8; OBJECT_SIZE]> {
    if init.name.len() > NAME_CAPACITY {
        return Err(Error::new(
            ErrorKind::NameTooLong,
            "name too long for the object page",
        ));
    }
    let mut page = [0u8; OBJECT_SIZE];
    let mut put = |offset: usize, bytes: &[u8]| {
        page[offset..offset + bytes.len()].copy_from_slice(bytes);
    };
    put(obj::MAGIC, &OBJECT_MAGIC.to_le_bytes());
    put(obj::VERSION, &FORMAT_VERSION.to_le_bytes());
    put(obj::KIND, &KIND_MUTEX.to_le_bytes());
    put(obj::SIZE, &(OBJECT_SIZE as u32).to_le_bytes());
    put(obj::NAME_LEN, &(init.name.len() as u32).to_le_bytes());
    let flags = if init.global { FLAG_GLOBAL } else { 0 }
        | if init.keep_abandoned {
            FLAG_KEEP_ABANDONED
        } else {
            0
        };
    put(obj::FLAGS, &flags.to_le_bytes());
    put(obj::CREATOR_UID, &init.uid.to_le_bytes());
    put(obj::CREATED_NS, &init.now_ns.to_le_bytes());
    put(obj::CREATOR_PID, &init.pid.to_le_bytes());
    put(obj::ROOT_DEV, &init.root.0.to_le_bytes());
    put(obj::ROOT_INO, &init.root.1.to_le_bytes());
    put(obj::USERS, &init.uid.wrapping_add(1).to_le_bytes());
    put(obj::NAME, init.name.as_bytes());
    match init.owner {
        None => put(obj::LOCK, &lock::BIASABLE.to_le_bytes()),
        Some(token) => {
            put(obj::LOCK, &token.to_le_bytes());
            put(obj::COUNT, &1u32.to_le_bytes());
            put(obj::FRESH, &1u32.to_le_bytes());
            put(obj::ACQUIRED_NS, &init.now_ns.to_le_bytes());
        }
    }
    Ok(page)
}

/// What a new object page is initialised with.
pub(super) struct ObjectInit<'a> {
    pub name: &'a str,
    pub global: bool,
    pub uid: u32,
    pub pid: u32,
    pub now_ns: u64,
    pub root: (u64, u64),
    /// The creator's lock token when it asked for initial ownership.
    pub owner: Option<u64>,
    /// Set `FLAG_KEEP_ABANDONED`.
    pub keep_abandoned: bool,
}

fn corrupt(message: String) -> Error {
    Error::new(ErrorKind::Corrupt, message)
}

// ----- registry --------------------------------------------------------------------------

/// `"nmtx-reg"` read as a little-endian u64.
pub(super) const REGISTRY_MAGIC: u64 = u64::from_le_bytes(*b"nmtx-reg");
/// Size of the registry header; slots start here.
pub(super) const REGISTRY_HEADER: usize = 4096;
/// Size of one slot.
pub(super) const SLOT_SIZE: usize = 128;
/// Room for the `pthread_mutex_t` at the start of each slot (glibc: 40 bytes on x86_64,
/// 48 on aarch64; musl: 40 or 24).
pub(super) const LIFELINE_SPACE: usize = 64;
/// Slots in a registry made with default settings.
pub(super) const DEFAULT_SLOTS: u32 = 16384;
/// The largest slot count the lock word can address.
pub(super) const MAX_SLOTS: u32 = (lock::SLOT_MASK as u32) - 1;

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
    pub const LIFELINE_WORD: usize = offset(SLOT_FIELDS, "LIFELINE_WORD");
    /// u32 C library whose `pthread_mutex_t` layout the lifeline has (see `LIBC_*`): a dead
    /// slot is only reused by a thread of the same C library.
    pub const LIBC: usize = offset(SLOT_FIELDS, "LIBC");
}

/// `slot::LIBC` for glibc.
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

/// The lock-word encoding as properties (proptest): every word a thread can own, with and
/// without `WAITERS` and `BIASED`, decodes back to its parts and keeps the invariants the
/// protocol relies on.
#[cfg(test)]
mod lock_word_properties {
    use super::lock::*;
    use proptest::prelude::*;

    /// A token of a real thread: any generation, any user index, a slot + 1 of at least 1.
    fn thread_token() -> impl Strategy<Value = (u32, usize, u32)> {
        (any::<u32>(), 0..64usize, 1..=SLOT_MASK as u32)
    }

    proptest! {
        #[test]
        fn a_token_decodes_to_its_parts((generation, user_index, slot) in thread_token()) {
            let t = thread_part(generation, slot) | user_part(user_index);
            prop_assert_eq!(generation_of(t), generation);
            prop_assert_eq!(user(t), user_index);
            prop_assert_eq!(slot_plus_one(t), slot);
            prop_assert!(!is_free(t), "an owned word is not free");
            prop_assert!(!is_biased(t), "a token is not a biased word");
            prop_assert_ne!(t, ABANDONED);
        }

        #[test]
        fn waiters_changes_nothing_else((generation, user_index, slot) in thread_token()) {
            let t = thread_part(generation, slot) | user_part(user_index);
            let w = t | WAITERS;
            prop_assert_eq!(token(w), t);
            prop_assert_eq!((is_free(w), is_biased(w)), (is_free(t), is_biased(t)));
            prop_assert_eq!((user(w), slot_plus_one(w), generation_of(w)), (user_index, slot, generation));
        }

        #[test]
        fn a_biased_word_names_its_thread_and_is_no_token((generation, user_index, slot) in thread_token()) {
            let t = thread_part(generation, slot) | user_part(user_index);
            let b = t | BIASED;
            prop_assert!(is_biased(b) && is_biased(b | WAITERS));
            prop_assert_eq!(bias_holder(b | WAITERS), t);
            prop_assert_ne!(token(b), t, "a biased word never equals its holder's token");
            prop_assert!(!is_free(b));
        }

        #[test]
        fn free_words_are_exactly_those_without_owner_bits(word in any::<u64>()) {
            prop_assert_eq!(is_free(word), word & OWNER_MASK == 0);
            if is_free(word) {
                prop_assert!(!is_biased(word), "a free word is never biased to anyone");
            }
        }
    }

    #[test]
    fn the_special_words() {
        assert!(is_free(0) && is_free(BIASABLE) && !is_biased(BIASABLE));
        assert!(!is_free(ABANDONED) && !is_biased(ABANDONED));
        assert_eq!(slot_plus_one(ABANDONED), 0, "ABANDONED names no slot");
        assert_eq!(token(ABANDONED | WAITERS), ABANDONED);
    }

    fn generation_of(word: u64) -> u32 {
        generation(word)
    }
}
