//! What only Linux can do for the shared-memory backend (`sys/unix`): a thread's death
//! reported by the kernel through a robust futex it holds (its lifeline), a sleep on the
//! lock word and the owner's lifeline at once (`futex_waitv`), and `membarrier` for biased
//! locking. macOS and FreeBSD have none of these; their flavour is `sys/portable`. The
//! modules are named like the portable ones they stand beside, so that `sys/unix` does not
//! know which it runs on.
//!
//! | module | what it does |
//! |---|---|
//! | `lifeline` | a robust, process-shared `pthread_mutex_t` per registered thread, held for its life |
//! | `futex` | futex wake and waits on several words (`futex_waitv`, or one word in slices) |
//! | `barrier` | `membarrier`: the heavy side of biased locking's barrier |
//!
//! The Linux backend's own tests (`tests/`) are the `linux` test target.

pub(crate) mod barrier;
pub(crate) mod futex;
pub(crate) mod lifeline;
