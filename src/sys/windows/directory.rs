//! Reading a kernel object directory whole while other processes add and remove objects in it.
//!
//! `NtQueryDirectoryObject` can return many entries in one call. Windows fills the buffer in
//! one pass of the kernel (ReactOS's implementation holds the directory's lock throughout),
//! and Wine 9.11 and later answer in one server request, so one call that fits everything is
//! a snapshot: [`entries`] asks for that, with a buffer that doubles until the whole
//! directory fits. Wine 8 cannot run this path; a unit test checks how it handles each
//! answer, with a stand-in for the call.
//!
//! Wine before 9.11 (Debian 12 ships 8.0) returns one entry per call, chosen by index, and
//! answers `STATUS_NOT_IMPLEMENTED` to the batch. An index counts the entries before it, so
//! when an object before the cursor is removed between two calls, the next entry slides into
//! the index just read and a pass skips it (the CI failure of stop 27: a held mutex missing
//! from `list`). No scan by index is exact against every interleaving: another process can
//! keep moving an entry off the index being read. [`scan_by_index`] reads the directory in
//! passes and keeps every entry any pass saw. It stops early once three passes in a row read
//! the same entries in the same order (the directory was most likely quiet meanwhile), and
//! after sixteen passes in any case.
//!
//! Measured with the behaviour test `inspect::list_misses_no_mutex_while_others_come_and_go`
//! raised to 400 listings (two threads creating and closing 10,000 to 18,000 mutexes a
//! second in the same directory; each listing looks for four held mutexes, 1,600 looks in
//! all): one pass per listing missed 314 times, four passes once, sixteen passes never.

use super::handle::Handle;
use crate::sys::contract::{Error, ErrorKind, Result};
use std::collections::HashSet;
use windows_sys::Wdk::Storage::FileSystem::NtQueryDirectoryObject;
use windows_sys::Win32::Foundation::{NTSTATUS, UNICODE_STRING};

/// One entry of an object directory: the object's name and its type's name (`Mutant`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Entry {
    pub(super) name: String,
    pub(super) type_name: String,
}

/// `OBJECT_DIRECTORY_INFORMATION`: the entries come first in the buffer, ended by one that is
/// all zero, and the strings they point to follow them.
#[repr(C)]
#[derive(Clone, Copy)]
struct DirectoryEntry {
    name: UNICODE_STRING,
    type_name: UNICODE_STRING,
}

const STATUS_SUCCESS: NTSTATUS = 0;
const STATUS_MORE_ENTRIES: NTSTATUS = 0x0000_0105;
const STATUS_NO_MORE_ENTRIES: NTSTATUS = 0x8000_001A_u32 as NTSTATUS;
const STATUS_NOT_IMPLEMENTED: NTSTATUS = 0xC000_0002_u32 as NTSTATUS;
const STATUS_BUFFER_TOO_SMALL: NTSTATUS = 0xC000_0023_u32 as NTSTATUS;

/// The first batch buffer, and the largest: 64 MiB holds some 400,000 entries.
const FIRST_BATCH_BYTES: usize = 64 << 10;
const MAX_BATCH_BYTES: usize = 64 << 20;
/// One entry and its two names (each at most 32,767 UTF-16 units, as object names are).
const ONE_ENTRY_BYTES: usize = 160 << 10;
/// A scan by index stops after this many identical passes in a row (the directory was most
/// likely quiet), and after `MAX_PASSES` in any case.
const QUIET_PASSES: usize = 3;
const MAX_PASSES: usize = 16;
/// The most entries one pass reads, so that a directory that grows as fast as it is read
/// still ends the scan.
const MAX_PASS_ENTRIES: usize = 1 << 20;

/// Every entry of the directory `dir` (opened with `DIRECTORY_QUERY`).
pub(super) fn entries(dir: &Handle, path: &str) -> Result<Vec<Entry>> {
    if let Some(all) = read_batch(|buffer| query(dir, buffer, false, 0), path)? {
        return Ok(all);
    }
    // Wine before 9.11: one entry per call, into one buffer.
    let mut buffer = vec![0u64; ONE_ENTRY_BYTES / 8];
    let all = scan_by_index(|index| read_one(dir, &mut buffer, index, path), path)?;
    Ok(all.into_iter().collect())
}

/// The whole directory in one call of `query` (a batch from the first entry into the buffer
/// given), or `None` where the system returns one entry per call.
fn read_batch(
    mut query: impl FnMut(&mut [u64]) -> NTSTATUS,
    path: &str,
) -> Result<Option<Vec<Entry>>> {
    let mut bytes = FIRST_BATCH_BYTES;
    loop {
        // u64s: the entries hold pointers, and the strings are 2-byte aligned.
        let mut buffer = vec![0u64; bytes / 8];
        match query(&mut buffer) {
            STATUS_SUCCESS => return parse(&buffer, usize::MAX, path).map(Some),
            STATUS_NO_MORE_ENTRIES => return Ok(Some(Vec::new())),
            STATUS_NOT_IMPLEMENTED => return Ok(None),
            // Some entries, not all: ask again from the start with room for all, so the
            // answer is still one snapshot.
            STATUS_MORE_ENTRIES | STATUS_BUFFER_TOO_SMALL if bytes < MAX_BATCH_BYTES => bytes *= 2,
            status => return Err(failed(status, path)),
        }
    }
}

/// The entry at `index` (read into `buffer`), or `None` past the last.
fn read_one(dir: &Handle, buffer: &mut [u64], index: usize, path: &str) -> Result<Option<Entry>> {
    // A pass reads at most MAX_PASS_ENTRIES, far below u32::MAX.
    let index = u32::try_from(index).unwrap_or(u32::MAX);
    match query(dir, buffer, true, index) {
        STATUS_SUCCESS => Ok(parse(buffer, 1, path)?.pop()),
        STATUS_NO_MORE_ENTRIES => Ok(None),
        status => Err(failed(status, path)),
    }
}

/// One `NtQueryDirectoryObject` call from entry `index` (a batch always starts over at 0).
fn query(dir: &Handle, buffer: &mut [u64], single: bool, index: u32) -> NTSTATUS {
    let mut context = index;
    let mut returned = 0u32;
    let bytes = u32::try_from(size_of_val(buffer)).unwrap_or(u32::MAX);
    // SAFETY: `buffer` is writable for `bytes` bytes and outlives the call; `context` and
    // `returned` are writable u32s; `dir` is an open directory handle.
    unsafe {
        NtQueryDirectoryObject(
            dir.raw(),
            buffer.as_mut_ptr().cast(),
            bytes,
            single,
            !single, // a batch restarts: one snapshot from the first entry
            &mut context,
            &mut returned,
        )
    }
}

/// The entries at the start of `buffer`, at most `limit` of them, up to the all-zero one.
///
/// The buffer was written by the system, but is still checked: each name must lie inside it.
fn parse(buffer: &[u64], limit: usize, path: &str) -> Result<Vec<Entry>> {
    let base = buffer.as_ptr() as usize;
    let bytes = size_of_val(buffer);
    // SAFETY: the u64s are initialised and 8-byte aligned, so their bytes read as u16s are
    // initialised and aligned too; the slice covers exactly the buffer's bytes and borrows it.
    let units: &[u16] =
        unsafe { std::slice::from_raw_parts(buffer.as_ptr().cast::<u16>(), bytes / 2) };
    let text = |s: &UNICODE_STRING| -> Option<String> {
        let start = (s.Buffer as usize).checked_sub(base)?;
        let end = start.checked_add(usize::from(s.Length))?;
        if start % 2 != 0 || s.Length % 2 != 0 || end > bytes {
            return None;
        }
        Some(String::from_utf16_lossy(&units[start / 2..end / 2]))
    };
    let mut found = Vec::new();
    let size = size_of::<DirectoryEntry>();
    let mut offset = 0;
    while found.len() < limit && offset + size <= bytes {
        // SAFETY: `offset + size` is within the buffer, whose start is 8-byte aligned, and
        // `size` (two UNICODE_STRINGs) is a multiple of 8 on every Windows target, so the read
        // is in bounds and aligned; every bit pattern is a valid DirectoryEntry (integers and
        // raw pointers, not dereferenced here).
        let entry = unsafe {
            buffer
                .as_ptr()
                .byte_add(offset)
                .cast::<DirectoryEntry>()
                .read()
        };
        if entry.name.Buffer.is_null() && entry.name.Length == 0 {
            break; // the all-zero entry that ends the list
        }
        let (Some(name), Some(type_name)) = (text(&entry.name), text(&entry.type_name)) else {
            return Err(Error::new(
                ErrorKind::Io,
                format!(
                    "the object directory {path} returned an entry whose name lies outside the buffer"
                ),
            ));
        };
        found.push(Entry { name, type_name });
        offset += size;
    }
    Ok(found)
}

/// An error naming the directory and the status the system answered.
fn failed(status: NTSTATUS, path: &str) -> Error {
    Error::new(
        ErrorKind::Io,
        format!("cannot read the object directory {path} (NTSTATUS {status:#010x})"),
    )
}

/// Every entry, read one index at a time, in passes (see the module's notes): every entry
/// any pass reads is kept, since one that existed at some moment may be listed (the caller
/// drops names gone by the time it opens them); what matters is that none is skipped.
fn scan_by_index(
    mut read: impl FnMut(usize) -> Result<Option<Entry>>,
    path: &str,
) -> Result<HashSet<Entry>> {
    let mut seen = HashSet::new();
    let mut previous: Option<Vec<Entry>> = None;
    let mut same = 0;
    for _ in 0..MAX_PASSES {
        let mut pass = Vec::new();
        while let Some(entry) = read(pass.len())? {
            if pass.len() == MAX_PASS_ENTRIES {
                return Err(Error::new(
                    ErrorKind::Io,
                    format!(
                        "the object directory {path} holds more than {MAX_PASS_ENTRIES} entries"
                    ),
                ));
            }
            pass.push(entry);
        }
        seen.extend(pass.iter().cloned());
        same = if previous.as_ref() == Some(&pass) {
            same + 1
        } else {
            0
        };
        if same + 1 == QUIET_PASSES {
            break; // most likely nothing came or went while these passes read it
        }
        previous = Some(pass);
    }
    Ok(seen)
}

#[cfg(test)]
mod tests {
    //! The scan by index against a directory that changes between reads as a script says.

    use super::*;

    /// A directory of names, changed before each read by `change(read number, names)`.
    struct Scripted<F: FnMut(usize, &mut Vec<String>)> {
        names: Vec<String>,
        change: F,
        reads: usize,
    }

    impl<F: FnMut(usize, &mut Vec<String>)> Scripted<F> {
        fn read(&mut self, index: usize) -> Result<Option<Entry>> {
            (self.change)(self.reads, &mut self.names);
            self.reads += 1;
            Ok(self.names.get(index).map(|name| Entry {
                name: name.clone(),
                type_name: "Mutant".to_owned(),
            }))
        }
    }

    /// The names the scan lists (sorted) and how many reads it made.
    fn scan(names: &[&str], change: impl FnMut(usize, &mut Vec<String>)) -> (Vec<String>, usize) {
        let mut dir = Scripted {
            names: names.iter().map(|n| (*n).to_owned()).collect(),
            change,
            reads: 0,
        };
        let mut listed: Vec<String> = scan_by_index(|i| dir.read(i), "\\Test")
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        listed.sort();
        (listed, dir.reads)
    }

    #[test]
    fn a_quiet_directory_is_read_in_three_passes() {
        let (listed, reads) = scan(&["b", "a", "c"], |_, _| {});
        assert_eq!(listed, ["a", "b", "c"]);
        assert_eq!(
            reads,
            QUIET_PASSES * 4,
            "three passes of three entries and the end"
        );
        assert_eq!(scan(&[], |_, _| {}), (vec![], QUIET_PASSES));
    }

    /// The stop-27 failure: "a" goes just after it was read, "b" slides into index 0, and the
    /// first pass reads "c" at index 1. A later pass reads "b".
    #[test]
    fn an_entry_removed_before_the_cursor_is_read_by_a_later_pass() {
        let (listed, _) = scan(&["a", "b", "c"], |read, names| {
            if read == 1 {
                names.retain(|n| n != "a");
            }
        });
        assert_eq!(listed, ["a", "b", "c"]);
    }

    /// Something comes or goes before every read: the scan still ends after its last pass,
    /// with every entry that stayed throughout.
    #[test]
    fn a_directory_that_never_rests_still_ends_with_every_steady_entry() {
        let steady = ["s0", "s1", "s2", "s3"];
        let mut names: Vec<&str> = vec!["t0", "t1", "t2", "t3", "t4", "t5"];
        names.extend(steady);
        let mut state = 0x2545_f491_u32;
        let mut next = 6;
        let (listed, reads) = scan(&names, |_, names| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let churn: Vec<usize> = (0..names.len())
                .filter(|&i| names[i].starts_with('t'))
                .collect();
            if state % 2 == 0 && !churn.is_empty() {
                names.remove(churn[state as usize / 2 % churn.len()]);
            } else {
                names.insert(state as usize / 2 % (names.len() + 1), format!("t{next}"));
                next += 1;
            }
        });
        for s in steady {
            assert!(
                listed.contains(&s.to_owned()),
                "{s} missing from {listed:?}"
            );
        }
        assert!(reads <= MAX_PASSES * 64, "{reads} reads");
    }

    /// Writes `names` into `buffer` as the system does: the entries, an all-zero one, then
    /// the strings. Returns the offset where the strings start.
    fn fill(buffer: &mut [u64], names: &[&str]) -> usize {
        let size = size_of::<DirectoryEntry>();
        let mut text_at = (names.len() + 1) * size;
        let base = buffer.as_mut_ptr();
        for (i, name) in names.iter().enumerate() {
            let mut strings = [UNICODE_STRING {
                Length: 0,
                MaximumLength: 0,
                Buffer: std::ptr::null_mut(),
            }; 2];
            for (string, text) in strings.iter_mut().zip([*name, "Mutant"]) {
                let units: Vec<u16> = text.encode_utf16().collect();
                // SAFETY: the strings go after the entries, inside the buffer (the
                // callers give room); u16 writes at even offsets of a u64 buffer are aligned.
                unsafe {
                    let at = base.byte_add(text_at).cast::<u16>();
                    at.copy_from_nonoverlapping(units.as_ptr(), units.len());
                    *string = UNICODE_STRING {
                        Length: (units.len() * 2) as u16,
                        MaximumLength: (units.len() * 2) as u16,
                        Buffer: at,
                    };
                }
                text_at += (units.len() * 2).next_multiple_of(8);
            }
            let [name, type_name] = strings;
            // SAFETY: entry `i` lies before the strings, inside the buffer, aligned.
            unsafe {
                base.byte_add(i * size)
                    .cast::<DirectoryEntry>()
                    .write(DirectoryEntry { name, type_name });
            }
        }
        text_at
    }

    /// A batch that does not fit is asked again, from the start, with a bigger buffer, until
    /// everything fits; `STATUS_NOT_IMPLEMENTED` (Wine before 9.11) means "scan by index".
    #[test]
    fn a_batch_grows_until_the_whole_directory_fits() {
        let mut sizes = Vec::new();
        let got = read_batch(
            |buffer| {
                sizes.push(size_of_val(buffer));
                if size_of_val(buffer) < 4 * FIRST_BATCH_BYTES {
                    fill(buffer, &["partial"]);
                    return STATUS_MORE_ENTRIES;
                }
                fill(buffer, &["one", "two"]);
                STATUS_SUCCESS
            },
            "\\Test",
        )
        .unwrap()
        .unwrap();
        let names: Vec<_> = got
            .iter()
            .map(|e| (e.name.as_str(), e.type_name.as_str()))
            .collect();
        assert_eq!(names, [("one", "Mutant"), ("two", "Mutant")]);
        assert_eq!(
            sizes,
            [
                FIRST_BATCH_BYTES,
                2 * FIRST_BATCH_BYTES,
                4 * FIRST_BATCH_BYTES
            ]
        );
        assert!(
            read_batch(|_| STATUS_NOT_IMPLEMENTED, "\\Test")
                .unwrap()
                .is_none()
        );
        assert_eq!(
            read_batch(|_| STATUS_NO_MORE_ENTRIES, "\\Test").unwrap(),
            Some(vec![])
        );
        let err = read_batch(|_| STATUS_MORE_ENTRIES, "\\Test").unwrap_err();
        assert!(
            err.to_string().contains("\\Test") && err.to_string().contains("0x00000105"),
            "{err}"
        );
    }

    /// A name that points outside the buffer is an error, not a read out of bounds.
    #[test]
    fn a_name_outside_the_buffer_is_refused() {
        let mut buffer = vec![0u64; 64];
        fill(&mut buffer, &["inside"]);
        assert_eq!(parse(&buffer, usize::MAX, "\\Test").unwrap().len(), 1);
        let outside = [0u16; 8];
        let mut entry = DirectoryEntry {
            name: UNICODE_STRING {
                Length: 16,
                MaximumLength: 16,
                Buffer: outside.as_ptr().cast_mut(),
            },
            type_name: UNICODE_STRING {
                Length: 0,
                MaximumLength: 0,
                Buffer: outside.as_ptr().cast_mut(),
            },
        };
        // SAFETY: entry 0 of a buffer of 64 u64s, aligned.
        unsafe { buffer.as_mut_ptr().cast::<DirectoryEntry>().write(entry) };
        let err = parse(&buffer, usize::MAX, "\\Test").unwrap_err();
        assert!(err.to_string().contains("outside the buffer"), "{err}");
        entry.name.Buffer = std::ptr::null_mut();
        entry.name.Length = 0;
        // SAFETY: as above. A null name of length 0 ends the list.
        unsafe { buffer.as_mut_ptr().cast::<DirectoryEntry>().write(entry) };
        assert!(parse(&buffer, usize::MAX, "\\Test").unwrap().is_empty());
    }
}
