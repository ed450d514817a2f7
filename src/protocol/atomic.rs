//! The atomics the protocol is written against: a facade, so that the production build runs
//! on `std`'s atomics (over shared memory) and the model tests on loom's, which explore every
//! interleaving and every weak-memory outcome loom models.
//!
//! The traits have exactly the operations the protocol uses. Every implementation must be a
//! real atomic of that width: a `compare_exchange` that fails returns the value it saw.

use std::sync::atomic::Ordering;

/// A 32-bit atomic word (a count, a flag, a futex word).
pub(crate) trait Atomic32: Sync {
    fn load(&self, order: Ordering) -> u32;
    fn store(&self, value: u32, order: Ordering);
    fn fetch_add(&self, value: u32, order: Ordering) -> u32;
    fn fetch_sub(&self, value: u32, order: Ordering) -> u32;
}

/// A 64-bit atomic word (the lock word).
pub(crate) trait Atomic64: Sync {
    fn load(&self, order: Ordering) -> u64;
    fn swap(&self, value: u64, order: Ordering) -> u64;
    fn compare_exchange(
        &self,
        current: u64,
        new: u64,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u64, u64>;
}

/// Implements a facade trait by forwarding to the inherent methods of the same names.
macro_rules! forward {
    ($trait:ident for $atomic:ty, $int:ty: $($extra:ident),*) => {
        impl $trait for $atomic {
            #[inline(always)]
            fn load(&self, order: Ordering) -> $int {
                <$atomic>::load(self, order)
            }
            $(forward!(@ $extra $atomic, $int);)*
        }
    };
    (@ compare_exchange $atomic:ty, $int:ty) => {
        #[inline(always)]
        fn compare_exchange(
            &self,
            current: $int,
            new: $int,
            success: Ordering,
            failure: Ordering,
        ) -> Result<$int, $int> {
            <$atomic>::compare_exchange(self, current, new, success, failure)
        }
    };
    (@ store $atomic:ty, $int:ty) => {
        #[inline(always)]
        fn store(&self, value: $int, order: Ordering) {
            <$atomic>::store(self, value, order)
        }
    };
    (@ swap $atomic:ty, $int:ty) => {
        #[inline(always)]
        fn swap(&self, value: $int, order: Ordering) -> $int {
            <$atomic>::swap(self, value, order)
        }
    };
    (@ fetch_add $atomic:ty, $int:ty) => {
        #[inline(always)]
        fn fetch_add(&self, value: $int, order: Ordering) -> $int {
            <$atomic>::fetch_add(self, value, order)
        }
    };
    (@ fetch_sub $atomic:ty, $int:ty) => {
        #[inline(always)]
        fn fetch_sub(&self, value: $int, order: Ordering) -> $int {
            <$atomic>::fetch_sub(self, value, order)
        }
    };
}

forward!(Atomic32 for std::sync::atomic::AtomicU32, u32: store, fetch_add, fetch_sub);
forward!(Atomic64 for std::sync::atomic::AtomicU64, u64: swap, compare_exchange);
#[cfg(test)]
forward!(Atomic32 for loom::sync::atomic::AtomicU32, u32: store, fetch_add, fetch_sub);
#[cfg(test)]
forward!(Atomic64 for loom::sync::atomic::AtomicU64, u64: swap, compare_exchange);
