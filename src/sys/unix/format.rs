//! The shared-memory format as types: the one source of truth for every offset.
//!
//! Each file kind is a `#[repr(C)]` struct of atomics (shared memory is touched only through
//! atomics). The structs are never built or referenced in place: they fix the layout, from
//! which `layout.rs` takes its offsets (`offset_of!`), the compile-time checks below pin each
//! field to the offset FORMAT.md documents (a reordered or resized field does not build),
//! and [`OBJECT_FIELDS`], [`REGISTRY_FIELDS`] and [`SLOT_FIELDS`] list them for the test that
//! checks FORMAT.md's tables, and for tests and fuzz targets that write files by hand
//! (exported, hidden, as `namedmutex::__format`).

#![allow(dead_code)] // the structs exist for their layout; only offsets are used

use std::mem::{offset_of, size_of};
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64};

/// An object file: one 4096-byte page.
#[repr(C)]
pub struct ObjectFormat {
    magic: AtomicU64,
    version: AtomicU32,
    kind: AtomicU32,
    size: AtomicU32,
    name_len: AtomicU32,
    flags: AtomicU32,
    creator_uid: AtomicU32,
    created_ns: AtomicU64,
    creator_pid: AtomicU32,
    reserved_44: AtomicU32,
    root_dev: AtomicU64,
    root_ino: AtomicU64,
    lock: AtomicU64,
    count: AtomicU32,
    sleepers: AtomicU32,
    acquired_ns: AtomicU64,
    abandon_count: AtomicU32,
    last_abandoner_pid: AtomicU32,
    last_abandoner_tid: AtomicU32,
    bias_depth: AtomicU32,
    fresh: AtomicU32,
    abandon_note_len: AtomicU32,
    reserved_112: [AtomicU32; 4],
    users: [AtomicU32; 64],
    reserved_384: [AtomicU32; 32],
    name: [AtomicU8; 1024],
    abandon_note: [AtomicU8; 512],
    reserved_2048: [AtomicU8; 2048],
}

/// A registry's header (its first page; slots follow).
#[repr(C)]
pub struct RegistryHeaderFormat {
    magic: AtomicU64,
    version: AtomicU32,
    header_size: AtomicU32,
    slot_size: AtomicU32,
    slot_count: AtomicU32,
    owner_uid: AtomicU32,
    reserved_28: AtomicU32,
    next: AtomicU32,
    reserved_36: [AtomicU8; 4060],
}

/// One registry slot.
#[repr(C)]
pub struct SlotFormat {
    lifeline: [AtomicU8; 64],
    word: AtomicU64,
    pid: AtomicU32,
    tid: AtomicU32,
    claimed_ns: AtomicU64,
    pidns: AtomicU64,
    lifeline_word: AtomicU32,
    libc: AtomicU32,
    reserved_104: [AtomicU8; 24],
}

/// The portable flavour's use of a slot's first 64 bytes (Linux's `LIFELINE`): what kind of
/// slot it is, and for a thread's slot, its process's slot and that slot's generation.
#[repr(C)]
pub struct PortableSlotFormat {
    kind: AtomicU32,
    pslot: AtomicU32,
    pgen: AtomicU32,
    reserved_12: [AtomicU8; 52],
}

/// A documented field: its name in FORMAT.md, offset and size in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub offset: usize,
    pub size: usize,
}

/// `Field` for `$field` of `$ty`, named `$name`, of `$size` bytes.
macro_rules! field {
    ($ty:ty, $field:ident, $name:literal, $size:expr) => {
        Field {
            name: $name,
            offset: offset_of!($ty, $field),
            size: $size,
        }
    };
}

/// The documented fields of an object page, in order.
pub const OBJECT_FIELDS: &[Field] = &[
    field!(ObjectFormat, magic, "MAGIC", 8),
    field!(ObjectFormat, version, "VERSION", 4),
    field!(ObjectFormat, kind, "KIND", 4),
    field!(ObjectFormat, size, "SIZE", 4),
    field!(ObjectFormat, name_len, "NAME_LEN", 4),
    field!(ObjectFormat, flags, "FLAGS", 4),
    field!(ObjectFormat, creator_uid, "CREATOR_UID", 4),
    field!(ObjectFormat, created_ns, "CREATED_NS", 8),
    field!(ObjectFormat, creator_pid, "CREATOR_PID", 4),
    field!(ObjectFormat, root_dev, "ROOT_DEV", 8),
    field!(ObjectFormat, root_ino, "ROOT_INO", 8),
    field!(ObjectFormat, lock, "LOCK", 8),
    field!(ObjectFormat, count, "COUNT", 4),
    field!(ObjectFormat, sleepers, "SLEEPERS", 4),
    field!(ObjectFormat, acquired_ns, "ACQUIRED_NS", 8),
    field!(ObjectFormat, abandon_count, "ABANDON_COUNT", 4),
    field!(ObjectFormat, last_abandoner_pid, "LAST_ABANDONER_PID", 4),
    field!(ObjectFormat, last_abandoner_tid, "LAST_ABANDONER_TID", 4),
    field!(ObjectFormat, bias_depth, "BIAS_DEPTH", 4),
    field!(ObjectFormat, fresh, "FRESH", 4),
    field!(ObjectFormat, abandon_note_len, "ABANDON_NOTE_LEN", 4),
    field!(ObjectFormat, users, "USERS", 256),
    field!(ObjectFormat, name, "NAME", 1024),
    field!(ObjectFormat, abandon_note, "ABANDON_NOTE", 512),
];

/// The documented fields of a registry header, in order.
pub const REGISTRY_FIELDS: &[Field] = &[
    field!(RegistryHeaderFormat, magic, "MAGIC", 8),
    field!(RegistryHeaderFormat, version, "VERSION", 4),
    field!(RegistryHeaderFormat, header_size, "HEADER_SIZE", 4),
    field!(RegistryHeaderFormat, slot_size, "SLOT_SIZE", 4),
    field!(RegistryHeaderFormat, slot_count, "SLOT_COUNT", 4),
    field!(RegistryHeaderFormat, owner_uid, "OWNER_UID", 4),
    field!(RegistryHeaderFormat, next, "NEXT", 4),
];

/// The documented fields of a registry slot, in order.
pub const SLOT_FIELDS: &[Field] = &[
    field!(SlotFormat, lifeline, "LIFELINE", 64),
    field!(SlotFormat, word, "WORD", 8),
    field!(SlotFormat, pid, "PID", 4),
    field!(SlotFormat, tid, "TID", 4),
    field!(SlotFormat, claimed_ns, "CLAIMED_NS", 8),
    field!(SlotFormat, pidns, "PIDNS", 8),
    field!(SlotFormat, lifeline_word, "LIFELINE_WORD", 4),
    field!(SlotFormat, libc, "LIBC", 4),
];

/// The documented fields of a slot's first 64 bytes in the portable flavour, in order.
pub const PORTABLE_SLOT_FIELDS: &[Field] = &[
    field!(PortableSlotFormat, kind, "KIND", 4),
    field!(PortableSlotFormat, pslot, "PSLOT", 4),
    field!(PortableSlotFormat, pgen, "PGEN", 4),
];

/// The offset of the field named `name` in `fields` (a test helper: panics on a typo).
pub const fn offset(fields: &[Field], name: &str) -> usize {
    let mut i = 0;
    while i < fields.len() {
        if const_str_eq(fields[i].name, name) {
            return fields[i].offset;
        }
        i += 1;
    }
    panic!("no such field");
}

const fn const_str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

// The pins: sizes, and every offset as FORMAT.md documents it.
const _: () = {
    assert!(size_of::<ObjectFormat>() == 4096);
    assert!(size_of::<RegistryHeaderFormat>() == 4096);
    assert!(size_of::<SlotFormat>() == 128);
    assert!(size_of::<PortableSlotFormat>() == 64);
    let object: [(&str, usize); 24] = [
        ("MAGIC", 0),
        ("VERSION", 8),
        ("KIND", 12),
        ("SIZE", 16),
        ("NAME_LEN", 20),
        ("FLAGS", 24),
        ("CREATOR_UID", 28),
        ("CREATED_NS", 32),
        ("CREATOR_PID", 40),
        ("ROOT_DEV", 48),
        ("ROOT_INO", 56),
        ("LOCK", 64),
        ("COUNT", 72),
        ("SLEEPERS", 76),
        ("ACQUIRED_NS", 80),
        ("ABANDON_COUNT", 88),
        ("LAST_ABANDONER_PID", 92),
        ("LAST_ABANDONER_TID", 96),
        ("BIAS_DEPTH", 100),
        ("FRESH", 104),
        ("ABANDON_NOTE_LEN", 108),
        ("USERS", 128),
        ("NAME", 512),
        ("ABANDON_NOTE", 1536),
    ];
    let mut i = 0;
    while i < object.len() {
        assert!(offset(OBJECT_FIELDS, object[i].0) == object[i].1);
        i += 1;
    }
    assert!(offset(REGISTRY_FIELDS, "NEXT") == 32);
    assert!(offset(REGISTRY_FIELDS, "OWNER_UID") == 24);
    assert!(offset(SLOT_FIELDS, "WORD") == 64);
    assert!(offset(SLOT_FIELDS, "LIBC") == 100);
};

#[cfg(test)]
mod tests {
    use super::*;

    /// The sizes listed are the fields' own (the offsets are the compiler's already).
    #[test]
    fn listed_sizes_are_the_fields_sizes() {
        for fields in [OBJECT_FIELDS, REGISTRY_FIELDS, SLOT_FIELDS] {
            for pair in fields.windows(2) {
                assert!(
                    pair[0].offset + pair[0].size <= pair[1].offset,
                    "{:?} overlaps {:?}",
                    pair[0],
                    pair[1]
                );
            }
        }
        assert_eq!(size_of::<[AtomicU32; 64]>(), 256);
    }

    /// FORMAT.md's tables of the object page, the registry header and a slot list exactly
    /// these fields, at these offsets, of these sizes.
    #[test]
    fn format_md_tables_match_the_types() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/FORMAT.md"))
            .expect("FORMAT.md");
        let table = |heading: &str| -> Vec<Field> {
            let start = text.find(heading).unwrap_or_else(|| panic!("no {heading}"));
            text[start..]
                .lines()
                .skip_while(|l| !l.starts_with('|'))
                .take_while(|l| l.starts_with('|'))
                .filter_map(|row| {
                    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
                    let offset = cells.get(1)?.parse().ok()?;
                    let size = cells.get(2)?.parse().ok()?;
                    let name = cells
                        .get(3)?
                        .split_whitespace()
                        .next()?
                        .trim_end_matches(':');
                    let name: &'static str = Box::leak(name.to_owned().into_boxed_str());
                    Some(Field { name, offset, size })
                })
                .collect()
        };
        assert_eq!(table("| offset | size | field | meaning |"), OBJECT_FIELDS);
        assert_eq!(table("| header offset | size | field |"), REGISTRY_FIELDS);
        assert_eq!(table("| slot offset | size | field |"), SLOT_FIELDS);
        assert_eq!(
            table("| portable slot offset | size | field |"),
            PORTABLE_SLOT_FIELDS
        );
    }
}
