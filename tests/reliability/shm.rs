//! A file mapped shared into every test process: the place where children record what they
//! do, so that the parent can check invariants and watch progress without trusting timing.

use std::path::Path;
use std::sync::atomic::AtomicU64;

/// A `MAP_SHARED` read-write mapping of a whole file. Only atomics are handed out.
pub struct Shm {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the memory is only accessed through atomics, so sharing between threads is sound.
unsafe impl Send for Shm {}
// SAFETY: as above.
unsafe impl Sync for Shm {}

impl Shm {
    /// Creates (or truncates) `path` with `len` zero bytes and maps it.
    pub fn create(path: &Path, len: usize) -> Shm {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        file.set_len(len as u64).unwrap();
        Shm::map(&file, len)
    }

    /// Maps an existing file made by [`Shm::create`].
    pub fn open(path: &Path) -> Shm {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        let len = file.metadata().unwrap().len() as usize;
        Shm::map(&file, len)
    }

    fn map(file: &std::fs::File, len: usize) -> Shm {
        use std::os::fd::AsRawFd;
        // SAFETY: a fresh shared mapping of a file we just sized to `len`; no existing memory
        // is replaced, and the mapping outlives the descriptor as mmap allows.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        assert!(ptr != libc::MAP_FAILED, "mmap failed");
        Shm {
            ptr: ptr.cast(),
            len,
        }
    }

    fn at(&self, offset: usize, size: usize) -> *mut u8 {
        assert!(
            offset % size == 0 && offset + size <= self.len,
            "offset {offset}"
        );
        // SAFETY: checked to be inside the mapping.
        unsafe { self.ptr.add(offset) }
    }

    pub fn u64(&self, offset: usize) -> &AtomicU64 {
        // SAFETY: aligned (page-aligned base, offset % 8 == 0), inside the mapping, and only
        // ever accessed atomically by every process.
        unsafe { &*self.at(offset, 8).cast::<AtomicU64>() }
    }
}

impl Drop for Shm {
    fn drop(&mut self) {
        // SAFETY: our own mapping; the atomics handed out borrow `self`.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}
