//! The lock word: its encoding and the tokens it holds.
//!
//! The lock word. Low 32 bits (the futex word): bit 31 `WAITERS`, bit 30 `BIASED`, bits 24..29
//! the owner's index in the object's user table, bits 0..24 the owner's registry slot + 1; the
//! mutex is free when bits 0..30 are 0. High 32 bits: the generation of the owner's slot.
//!
//! A *biased* word (bit 30 set) names the one thread that may acquire and release the mutex
//! without atomic read-modify-write instructions; whether it holds the mutex is its
//! `BIAS_DEPTH` (see `bias.rs`). `BIASED` alone is a free mutex that nobody has held yet: the
//! first acquirer may take the bias.

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
