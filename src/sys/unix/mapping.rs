//! A shared mapping of a file, and the only place that turns offsets in it into references.
//!
//! Shared memory is foreign data: any process with access to the file can write anything
//! to it at any time. So nothing here hands out plain references or copies whole structs:
//! every access is an atomic load, store or read-modify-write of one aligned word, and every
//! offset is checked against the mapping's length. What the words *mean* is validated by the
//! callers ([`super::layout`]).
#![allow(unsafe_code)]

use rustix::fd::BorrowedFd;
use rustix::mm::{MapFlags, ProtFlags};
use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

/// A `MAP_SHARED` mapping of (the start of) a file.
pub(super) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    writable: bool,
}

// SAFETY: the mapped memory is only ever accessed through atomics (see the module doc), so
// sharing the mapping between threads cannot cause a data race in this process.
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps the first `len` bytes of `fd`, read-write or read-only.
    ///
    /// The caller must have checked that the file is at least `len` bytes long: touching a
    /// page beyond the end of a shared file mapping raises SIGBUS.
    pub(super) fn map(fd: BorrowedFd<'_>, len: usize, writable: bool) -> io::Result<Mapping> {
        let prot = if writable {
            ProtFlags::READ | ProtFlags::WRITE
        } else {
            ProtFlags::READ
        };
        // SAFETY: we ask the kernel for a fresh mapping (no fixed address), so no existing
        // memory is replaced; the pointer is only used through the checked accessors below.
        let ptr =
            unsafe { rustix::mm::mmap(std::ptr::null_mut(), len, prot, MapFlags::SHARED, fd, 0)? };
        let ptr =
            NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave NULL"))?;
        Ok(Mapping { ptr, len, writable })
    }

    /// The mapping's length in bytes.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping may be written (read-only mappings serve other users' registries).
    pub(super) fn is_writable(&self) -> bool {
        self.writable
    }

    #[inline(always)]
    fn check(&self, offset: usize, size: usize) -> *mut u8 {
        if !(offset % size == 0 && offset.checked_add(size).is_some_and(|end| end <= self.len)) {
            out_of_bounds(offset, size, self.len);
        }
        // SAFETY: `offset + size <= len`, so the result stays inside the mapping.
        unsafe { self.ptr.as_ptr().add(offset) }
    }

    /// The 32-bit word at `offset` (4-aligned, inside the mapping).
    #[inline]
    pub(super) fn u32(&self, offset: usize) -> &AtomicU32 {
        let p = self.check(offset, 4);
        // SAFETY: `p` is 4-aligned (mmap returns page-aligned memory and `offset % 4 == 0`),
        // inside the mapping, and lives as long as `self`; AtomicU32 has the layout of u32,
        // and all accesses to shared memory in this crate are atomic.
        unsafe { &*p.cast::<AtomicU32>() }
    }

    /// The 64-bit word at `offset` (8-aligned, inside the mapping).
    #[inline]
    pub(super) fn u64(&self, offset: usize) -> &AtomicU64 {
        let p = self.check(offset, 8);
        // SAFETY: as for `u32`, with 8-byte alignment.
        unsafe { &*p.cast::<AtomicU64>() }
    }

    fn u8(&self, offset: usize) -> &AtomicU8 {
        let p = self.check(offset, 1);
        // SAFETY: any offset inside the mapping is a valid, aligned AtomicU8.
        unsafe { &*p.cast::<AtomicU8>() }
    }

    /// Copies `len` bytes starting at `offset` out of the mapping (byte by byte, atomically).
    pub(super) fn read_bytes(&self, offset: usize, len: usize) -> Vec<u8> {
        (offset..offset + len)
            .map(|i| self.u8(i).load(Ordering::Relaxed))
            .collect()
    }

    /// A raw pointer to `size` bytes at `offset`, for the one foreign API that needs memory of
    /// its own type in the mapping: the robust `pthread_mutex_t` lifelines of the registry.
    #[cfg_attr(
        any(not(target_os = "linux"), feature = "portable-backend"),
        allow(dead_code)
    )] // the Linux flavour's lifelines
    pub(super) fn raw(&self, offset: usize, size: usize) -> *mut u8 {
        assert!(
            offset.checked_add(size).is_some_and(|end| end <= self.len),
            "raw region outside the mapping"
        );
        // SAFETY: checked just above.
        unsafe { self.ptr.as_ptr().add(offset) }
    }
}

/// The failure of [`Mapping::check`], out of line so that the lock's fast path carries no
/// panic arguments (measured: they cost about a nanosecond per acquire + release).
#[cold]
#[inline(never)]
fn out_of_bounds(offset: usize, size: usize, len: usize) -> ! {
    panic!(
        "shared-memory access at offset {offset} of size {size} outside a mapping of {len} bytes"
    )
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe a mapping we made and own; references handed out by the
        // accessors borrow `self`, so none outlives this.
        unsafe {
            let _ = rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}
