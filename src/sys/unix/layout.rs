//! The object page (format version 3), as FORMAT.md documents it for other implementers:
//! its offsets (from `format.rs`), flags, the validation of a page, typed access to a mapped
//! one, and the first state of a new one. The lock word's encoding is `crate::protocol::lock_word`; the
//! other kind of file, the registry of a user's threads, is `registry_layout.rs`. All
//! integers are little-endian (the native order of every platform this backend supports);
//! all fields are accessed atomically.
//!
//! Everything read from these files is validated before use: magic, version, kind, sizes,
//! name. A file that fails is refused with `TypeMismatch`, `Incompatible` or `Corrupt`.

use super::mapping::Mapping;
use crate::sys::contract::{Error, ErrorKind, Result};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// The format version of object files. Any change to their layout bumps it.
pub(super) const FORMAT_VERSION: u32 = 3 + super::lifeline::OBJECT_FLAVOUR;

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
    /// `crate::protocol::bias`); written only by that thread. 0 = it does not hold the mutex.
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

use crate::protocol::LockWord;

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
        m.u64(obj::LOCK).store(
            owner.unwrap_or(LockWord::BIASABLE.bits()),
            Ordering::Relaxed,
        );
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
/// A named object's file is created empty under its final name (see `object/open.rs`), so readers
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
        None => put(obj::LOCK, &LockWord::BIASABLE.bits().to_le_bytes()),
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

/// Validation of object pages: each field a reader checks, broken alone in an image made as
/// a creator makes it, is refused with the kind of error FORMAT.md gives.
#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fd::{AsFd, OwnedFd};

    const NAME: &str = "layout-test";

    fn image() -> [u8; OBJECT_SIZE] {
        object_image(&ObjectInit {
            name: NAME,
            global: false,
            uid: 1000,
            pid: 42,
            now_ns: 1,
            root: (1, 2),
            owner: None,
            keep_abandoned: false,
        })
        .expect("an image")
    }

    /// `bytes` in an anonymous shared file, mapped as an object would be.
    fn mapped(bytes: &[u8], len: usize) -> (OwnedFd, Mapping) {
        let dir = rustix::fs::open(
            std::env::temp_dir().as_path(),
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
            rustix::fs::Mode::empty(),
        )
        .expect("the temporary directory");
        let fd = super::super::os::anonymous_file(dir.as_fd()).expect("an anonymous file");
        rustix::fs::ftruncate(&fd, len as u64).expect("ftruncate");
        rustix::io::pwrite(&fd, &bytes[..bytes.len().min(len)], 0).expect("pwrite");
        let map = Mapping::map(fd.as_fd(), len, true).expect("mmap");
        (fd, map)
    }

    fn validate_image(bytes: &[u8], len: usize, name: Option<&str>) -> Result<ObjectPage> {
        let (_fd, map) = mapped(bytes, len);
        ObjectPage::validate(map, name)
    }

    fn kind_of(bytes: &[u8]) -> ErrorKind {
        match validate_image(bytes, OBJECT_SIZE, Some(NAME)) {
            Ok(_) => panic!("accepted a broken page"),
            Err(e) => e.kind(),
        }
    }

    fn with_u32(offset: usize, value: u32) -> [u8; OBJECT_SIZE] {
        let mut page = image();
        page[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
        page
    }

    #[test]
    fn a_page_as_a_creator_writes_it_is_accepted() {
        let page = validate_image(&image(), OBJECT_SIZE, Some(NAME)).expect("valid");
        assert_eq!(page.name(), NAME);
        assert_eq!(page.creator(), (1000, 42, 1));
        assert_eq!(
            page.lock_word().load(Ordering::Relaxed),
            LockWord::BIASABLE.bits()
        );
        assert!(
            validate_image(&image(), OBJECT_SIZE, None).is_ok(),
            "no name to check"
        );
    }

    #[test]
    fn each_broken_field_is_refused_with_its_kind() {
        let mut bad_magic = image();
        bad_magic[obj::MAGIC] ^= 1;
        assert_eq!(kind_of(&bad_magic), ErrorKind::TypeMismatch);
        assert_eq!(
            kind_of(&with_u32(obj::VERSION, FORMAT_VERSION + 1)),
            ErrorKind::Incompatible
        );
        assert_eq!(
            kind_of(&with_u32(obj::KIND, KIND_MUTEX + 1)),
            ErrorKind::TypeMismatch
        );
        assert_eq!(kind_of(&with_u32(obj::SIZE, 8192)), ErrorKind::Corrupt);
        let too_long = NAME_CAPACITY as u32 + 1;
        assert_eq!(
            kind_of(&with_u32(obj::NAME_LEN, too_long)),
            ErrorKind::Corrupt
        );
        let mut other_name = image();
        other_name[obj::NAME] = b'L';
        assert_eq!(kind_of(&other_name), ErrorKind::Corrupt);
    }

    #[test]
    fn a_short_file_is_refused() {
        let Err(err) = validate_image(&image(), OBJECT_SIZE / 2, Some(NAME)) else {
            panic!("accepted half a page");
        };
        assert_eq!(err.kind(), ErrorKind::Corrupt);
        assert!(err.to_string().contains("4096"), "{err}");
    }
}
