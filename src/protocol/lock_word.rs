//! The lock word: its encoding, the tokens it holds, and the words the protocol moves it
//! between. This is the one place that knows which bit means what.
//!
//! Low 32 bits (the futex word): bit 31 `WAITERS`, bit 30 `BIASED`, bits 24..29 the owner's
//! index in the object's user table, bits 0..24 the owner's registry slot + 1; the mutex is
//! free when bits 0..30 are 0. High 32 bits: the generation of the owner's slot.
//!
//! A *biased* word (bit 30 set) names the one thread that may acquire and release the mutex
//! without atomic read-modify-write instructions; whether it holds the mutex is its
//! `BIAS_DEPTH` (see `bias.rs`). `BIASED` alone is a free mutex that nobody has held yet: the
//! first acquirer may take the bias.
//!
//! The states and who moves between them (FORMAT.md has the full table):
//!
//! | from | to | by |
//! |---|---|---|
//! | `FREE` / `BIASABLE` | token | an acquirer's compare-and-swap |
//! | `BIASABLE` | token `\|` `BIASED` | the first acquirer that may bias |
//! | token | `FREE` (or `BIASABLE`, while `FRESH`) | the owner's release |
//! | token | `ABANDONED` | the owner giving up on purpose |
//! | dead token or `ABANDONED` | token | one acquirer's compare-and-swap: it alone reports |
//! | any owned word | the same `\|` `WAITERS` | a waiter about to sleep |

/// A thread's token: its identity in a lock word (user index, slot + 1, generation), without
/// `WAITERS` or `BIASED`.
pub(crate) type Token = u64;

/// Somebody may be sleeping on the futex word: the releaser must wake one.
pub(crate) const WAITERS: u64 = 1 << 31;
/// The word names the thread the mutex is biased to (see `bias.rs`).
pub(crate) const BIASED: u64 = 1 << 30;
/// Bits that identify the owner within the low word.
pub(crate) const OWNER_MASK: u64 = 0x3FFF_FFFF;
/// Shift of the user-table index.
pub(crate) const USER_SHIFT: u32 = 24;
/// Mask of the user-table index after shifting.
pub(crate) const USER_MASK: u64 = 0x3F;
/// Mask of slot + 1.
pub(crate) const SLOT_MASK: u64 = 0x00FF_FFFF;
/// Largest recursion count (Windows' limit).
pub(crate) const MAX_COUNT: u32 = 0x7FFF_FFFF;

/// One value of the lock word.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct LockWord(u64);

impl LockWord {
    /// A free mutex that has been biased (or contended) before.
    pub(crate) const FREE: LockWord = LockWord(0);
    /// A fresh mutex: free, and the first thread to take it may take the bias.
    pub(crate) const BIASABLE: LockWord = LockWord(BIASED);
    /// The word of a mutex its owner gave up on purpose (`NamedMutex::abandon`): user 63,
    /// slot + 1 = 0, a token that names no thread, so that every acquirer finds its owner
    /// dead. Distinct from every thread's token (whose slot + 1 is at least 1), and its low
    /// 32 bits differ from the giver's, so that a sleeper about to sleep on the old value is
    /// not left asleep.
    pub(crate) const ABANDONED: LockWord = LockWord(0x3F00_0000);

    /// The word as stored.
    #[inline(always)]
    pub(crate) const fn from_bits(bits: u64) -> LockWord {
        LockWord(bits)
    }
    #[inline(always)]
    pub(crate) const fn bits(self) -> u64 {
        self.0
    }
    /// The word a thread writes to own the mutex.
    #[inline(always)]
    pub(crate) const fn owned_by(token: Token) -> LockWord {
        LockWord(token)
    }
    /// The word that biases the mutex to `token`.
    #[inline(always)]
    pub(crate) const fn biased_to(token: Token) -> LockWord {
        LockWord(token | BIASED)
    }
    /// The futex word: the low half, which every change a sleeper must notice changes.
    #[inline(always)]
    pub(crate) const fn futex_value(self) -> u32 {
        self.0 as u32
    }
    /// The word without its `WAITERS` bit: the owner's full identity (token) in a normal
    /// word. A biased word keeps its `BIASED` bit, so it never equals a token.
    #[inline(always)]
    pub(crate) const fn token(self) -> Token {
        self.0 & !WAITERS
    }
    /// Whether somebody may sleep on the word.
    #[inline(always)]
    pub(crate) const fn has_waiters(self) -> bool {
        self.0 & WAITERS != 0
    }
    /// The same word with `WAITERS` set.
    #[inline(always)]
    pub(crate) const fn with_waiters(self) -> LockWord {
        LockWord(self.0 | WAITERS)
    }
    /// `WAITERS` set if `waiters`, else the word unchanged.
    #[inline(always)]
    pub(crate) const fn with_waiters_if(self, waiters: bool) -> LockWord {
        LockWord(self.0 | if waiters { WAITERS } else { 0 })
    }
    /// `self`'s `WAITERS` bit carried over to `other`.
    #[inline(always)]
    pub(crate) const fn keep_waiters(self, other: LockWord) -> LockWord {
        LockWord(other.0 | (self.0 & WAITERS))
    }
    /// Whether nobody owns the mutex and it is not biased to anyone (`FREE` or `BIASABLE`).
    #[inline(always)]
    pub(crate) const fn is_free(self) -> bool {
        self.0 & OWNER_MASK == 0
    }
    /// Whether the word names a thread the mutex is biased to.
    #[inline(always)]
    pub(crate) const fn is_biased(self) -> bool {
        self.0 & BIASED != 0 && self.0 & OWNER_MASK != 0
    }
    /// The token of the thread a biased word names.
    #[inline(always)]
    pub(crate) const fn bias_holder(self) -> Token {
        self.0 & !(WAITERS | BIASED)
    }
    /// Whether the word was given up on purpose (`ABANDONED`, with or without `WAITERS`).
    #[inline(always)]
    pub(crate) const fn is_given_up(self) -> bool {
        self.token() == LockWord::ABANDONED.0
    }
    /// The owner's user-table index.
    #[inline(always)]
    pub(crate) const fn user(self) -> usize {
        ((self.0 >> USER_SHIFT) & USER_MASK) as usize
    }
    /// The owner's slot + 1 (0: free, or given up).
    #[inline(always)]
    pub(crate) const fn slot_plus_one(self) -> u32 {
        (self.0 & SLOT_MASK) as u32
    }
    /// The owner's slot generation.
    #[inline(always)]
    pub(crate) const fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }
}

/// The part of a token that names a thread: its registry slot + 1 (at least 1) and that
/// slot's generation.
pub(crate) const fn thread_part(generation: u32, slot_plus_one: u32) -> Token {
    (generation as u64) << 32 | (slot_plus_one as u64) & SLOT_MASK
}
/// The part of a token that names the user: its index in the object's user table.
pub(crate) const fn user_part(user: usize) -> Token {
    (user as u64 & USER_MASK) << USER_SHIFT
}

/// The lock-word encoding as properties (proptest): every word a thread can own, with and
/// without `WAITERS` and `BIASED`, decodes back to its parts and keeps the invariants the
/// protocol relies on.
#[cfg(test)]
mod lock_word_properties {
    use super::*;
    use proptest::prelude::*;

    /// A token of a real thread: any generation, any user index, a slot + 1 of at least 1.
    fn thread_token() -> impl Strategy<Value = (u32, usize, u32)> {
        (any::<u32>(), 0..64usize, 1..=SLOT_MASK as u32)
    }

    proptest! {
        #[test]
        fn a_token_decodes_to_its_parts((generation, user_index, slot) in thread_token()) {
            let t = LockWord::owned_by(thread_part(generation, slot) | user_part(user_index));
            prop_assert_eq!(t.generation(), generation);
            prop_assert_eq!(t.user(), user_index);
            prop_assert_eq!(t.slot_plus_one(), slot);
            prop_assert!(!t.is_free(), "an owned word is not free");
            prop_assert!(!t.is_biased(), "a token is not a biased word");
            prop_assert!(!t.has_waiters());
            prop_assert!(!t.is_given_up());
        }

        #[test]
        fn waiters_changes_nothing_else((generation, user_index, slot) in thread_token()) {
            let t = LockWord::owned_by(thread_part(generation, slot) | user_part(user_index));
            let w = t.with_waiters();
            prop_assert!(w.has_waiters());
            prop_assert_eq!(w.token(), t.token());
            prop_assert_eq!(t.keep_waiters(LockWord::FREE), LockWord::FREE);
            prop_assert_eq!(w.keep_waiters(LockWord::ABANDONED), LockWord::ABANDONED.with_waiters());
            prop_assert_eq!((w.is_free(), w.is_biased()), (t.is_free(), t.is_biased()));
            prop_assert_eq!((w.user(), w.slot_plus_one(), w.generation()), (user_index, slot, generation));
            prop_assert_ne!(w.futex_value(), LockWord::FREE.futex_value());
        }

        #[test]
        fn a_biased_word_names_its_thread_and_is_no_token((generation, user_index, slot) in thread_token()) {
            let t = thread_part(generation, slot) | user_part(user_index);
            let b = LockWord::biased_to(t);
            prop_assert!(b.is_biased() && b.with_waiters().is_biased());
            prop_assert_eq!(b.with_waiters().bias_holder(), t);
            prop_assert_ne!(b.token(), t, "a biased word never equals its holder's token");
            prop_assert_ne!(b, LockWord::BIASABLE);
            prop_assert!(!b.is_free());
        }

        #[test]
        fn free_words_are_exactly_those_without_owner_bits(bits in any::<u64>()) {
            let word = LockWord::from_bits(bits);
            prop_assert_eq!(word.is_free(), bits & OWNER_MASK == 0);
            if word.is_free() {
                prop_assert!(!word.is_biased(), "a free word is never biased to anyone");
            }
            prop_assert_eq!(word.with_waiters().token(), word.token());
        }
    }

    #[test]
    fn the_special_words() {
        assert!(LockWord::FREE.is_free() && LockWord::BIASABLE.is_free());
        assert!(!LockWord::BIASABLE.is_biased());
        assert!(!LockWord::ABANDONED.is_free() && !LockWord::ABANDONED.is_biased());
        assert_eq!(
            LockWord::ABANDONED.slot_plus_one(),
            0,
            "ABANDONED names no slot"
        );
        assert!(LockWord::ABANDONED.with_waiters().is_given_up());
        assert_ne!(
            LockWord::ABANDONED.futex_value(),
            LockWord::FREE.futex_value()
        );
    }
}
