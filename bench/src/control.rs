//! The control page: a small shared file through which the coordinator starts, samples and
//! stops the workers of one measurement. Everything in it is an atomic; per-process slots
//! are a cache line each, so counting does not add false sharing to what is measured.

use crate::peers::Mapping;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Most worker processes one measurement can have.
pub const MAX_WORKERS: usize = 64;

/// One worker's results.
#[repr(C, align(64))]
pub struct Slot {
    /// Acquisitions while `measuring` was set.
    pub count: AtomicU64,
    /// Longest wait for the lock (ns) while `measuring` was set.
    pub max_wait_ns: AtomicU64,
}

/// A cache line of data the critical section writes.
#[repr(C, align(64))]
pub struct Line(pub [AtomicU64; 8]);

/// The shared layout.
#[repr(C)]
pub struct Control {
    /// Set by the coordinator: workers leave their loop.
    pub stop: AtomicU32,
    /// Set by the coordinator for the measured window.
    pub measuring: AtomicU32,
    _pad: [u8; 56],
    /// Ping-pong: the number of the current holding phase (the holder of phase `k` is
    /// worker `k % 2`); published by each new holder right after it acquired.
    pub phase: AtomicU64,
    /// Ping-pong: the phase the other worker announced it is about to wait for.
    pub waiting: AtomicU64,
    /// Ping-pong: CLOCK_MONOTONIC just before the holder's release.
    pub t_release: AtomicU64,
    /// Who is in the critical section (worker id + 1), to detect broken exclusion.
    pub holder: AtomicU64,
    /// Times a worker entered while another was inside.
    pub violations: AtomicU64,
    _pad2: [u8; 24],
    /// What the critical section writes.
    pub shared: Line,
    /// Per worker.
    pub slots: [Slot; MAX_WORKERS],
}

/// A mapped control page.
pub struct ControlPage {
    map: Mapping,
}

impl ControlPage {
    fn size() -> usize {
        std::mem::size_of::<Control>().next_multiple_of(4096)
    }

    /// Creates a zeroed control page at `path`.
    pub fn create(path: &Path) -> ControlPage {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .expect("create a control page");
        f.set_len(ControlPage::size() as u64)
            .expect("size a control page");
        ControlPage {
            map: Mapping::map(f.as_raw_fd(), ControlPage::size()),
        }
    }

    /// Maps the control page at `path`.
    pub fn open(path: &Path) -> ControlPage {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .expect("open a control page");
        ControlPage {
            map: Mapping::map(f.as_raw_fd(), ControlPage::size()),
        }
    }

    /// The shared state.
    pub fn get(&self) -> &Control {
        // SAFETY: the mapping is page-aligned, at least size_of::<Control>() long, lives as
        // long as `self`, and all-zero bytes are a valid `Control` (atomics and padding);
        // every shared field is accessed only through atomics.
        unsafe { &*self.map.ptr().cast::<Control>() }
    }

    /// Sum and spread of the slots of `n` workers.
    pub fn counts(&self, n: usize) -> Vec<u64> {
        self.get().slots[..n]
            .iter()
            .map(|s| s.count.load(Ordering::Acquire))
            .collect()
    }

    /// Longest wait of any of `n` workers (ns).
    pub fn max_wait_ns(&self, n: usize) -> u64 {
        self.get().slots[..n]
            .iter()
            .map(|s| s.max_wait_ns.load(Ordering::Acquire))
            .max()
            .unwrap_or(0)
    }
}
