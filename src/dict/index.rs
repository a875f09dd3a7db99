//! The hash index both dict stores probe: open addressing over an entries array.
//!
//! Like CPython's compact dict, a dict is an *entries* array in insertion order plus an index
//! of small slots that map hashes to entry positions. A slot is one 64-bit word:
//!
//! - `0`: empty (ends a probe chain);
//! - `1`: tombstone (a removed entry's slot; probing goes on past it, an insert may reuse it);
//! - otherwise `tag << 32 | (pos + 2)`: the entry at `pos`, whose key's 32-bit hash *tag* is
//!   `tag`. A probe compares tags before it touches an entry, so a lookup reads one slot and
//!   one entry in the common case.
//!
//! The tag ([`tag32`]) folds the key's 64-bit hash to 32 bits; the first slot of a chain is a
//! Fibonacci hash of the tag, so a table rebuilds its index from the tags alone, without the
//! keys' hashes (and without calling script `__hash__` again). Keys whose 64-bit hashes differ
//! but fold to the same tag are compared with `eq` (one chance in 2^32 for unrelated hashes).
//!
//! Linear probing over a power-of-two number of slots, at least twice the entries capacity:
//! at least half the slots are empty, so every chain ends. Slots are atomics so that the
//! GIL-free store's readers probe without a lock (Acquire loads pair with the writer's Release
//! stores); the locked store uses the same type with its lock held.

use crate::sync::{AtomicU64, Ordering};

pub(crate) const EMPTY: u64 = 0;
pub(crate) const TOMBSTONE: u64 = 1;

/// The 32-bit tag a key with this hash carries in its slot.
#[inline(always)]
pub(crate) fn tag32(hash: u64) -> u32 {
    (hash ^ (hash >> 32)) as u32
}

/// The slot word of the entry at `pos` with tag `tag`.
#[inline(always)]
pub(crate) fn slot_word(tag: u32, pos: usize) -> u64 {
    debug_assert!(pos < u32::MAX as usize - 2);
    (u64::from(tag) << 32) | (pos as u64 + 2)
}

/// The tag of a live slot word.
#[inline(always)]
pub(crate) fn slot_tag(word: u64) -> u32 {
    (word >> 32) as u32
}

/// The entry position of a live slot word.
#[inline(always)]
pub(crate) fn slot_pos(word: u64) -> usize {
    (word as u32 as usize) - 2
}

/// Largest entries capacity of one table (positions fit in a slot's low 32 bits).
pub(crate) const MAX_ENTRIES: usize = 1 << 31;

/// The smallest entries capacity a table allocates.
pub(crate) const MIN_ENTRIES: usize = 4;

/// The entries capacity of a table that should hold `n` entries (a power of two).
#[inline]
pub(crate) fn capacity_for(n: usize) -> usize {
    let cap = n.max(MIN_ENTRIES).next_power_of_two();
    assert!(
        cap <= MAX_ENTRIES,
        "a gilfree dict holds at most 2^31 entries"
    );
    cap
}

/// The index: `2 × entries capacity` slots.
pub(crate) struct Index {
    slots: Box<[AtomicU64]>,
    /// `64 - log2(slots)`, for Fibonacci hashing.
    shift: u32,
}

/// Where a probe stands: the slot to look at next, and the first tombstone seen on the way
/// (where an insert may go).
#[derive(Clone, Copy, Debug)]
pub struct Cursor {
    slot: usize,
    first_free: Option<usize>,
}

impl Cursor {
    /// The slot a new entry for this chain goes to, once the probe ended: the first tombstone
    /// passed, or the empty slot that ended the chain.
    #[inline]
    pub(crate) fn insert_slot(&self) -> usize {
        self.first_free.unwrap_or(self.slot)
    }
}

/// A candidate a probe found: a live slot whose tag matches.
#[derive(Clone, Copy, Debug)]
pub struct Candidate {
    pub(crate) pos: usize,
}

impl Index {
    /// An empty index for an entries array of `entries` (a power of two).
    pub(crate) fn new(entries: usize) -> Index {
        debug_assert!(entries.is_power_of_two());
        let n = entries * 2;
        Index {
            // SAFETY: an all-zero `AtomicU64` is a valid (empty) slot.
            slots: unsafe { crate::sync::zeroed_slice(n) },
            shift: 64 - n.trailing_zeros(),
        }
    }

    /// The number of slots.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// A probe for `tag` from the start of its chain.
    #[inline(always)]
    pub(crate) fn cursor(&self, tag: u32) -> Cursor {
        Cursor {
            slot: (u64::from(tag).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize,
            first_free: None,
        }
    }

    #[inline(always)]
    fn next_slot(&self, slot: usize) -> usize {
        (slot + 1) & (self.slots.len() - 1)
    }

    /// The next live slot with `tag` on the chain, or `None` at the empty slot ending it (the
    /// cursor then stays there). `order` is the load ordering (Acquire for lock-free readers).
    #[inline(always)]
    pub(crate) fn next(&self, tag: u32, cursor: &mut Cursor, order: Ordering) -> Option<Candidate> {
        let mut i = cursor.slot;
        loop {
            // Indexing is bounds-checked; `i` is always masked, so the check never fails.
            let word = self.slots[i].load(order);
            if word == EMPTY {
                cursor.slot = i;
                return None;
            }
            if word == TOMBSTONE {
                if cursor.first_free.is_none() {
                    cursor.first_free = Some(i);
                }
            } else if slot_tag(word) == tag {
                cursor.slot = self.next_slot(i);
                return Some(Candidate {
                    pos: slot_pos(word),
                });
            }
            // At most half the slots are in use, so this loop ends.
            i = self.next_slot(i);
        }
    }

    /// Runs the probe for `tag` to the end of its chain and returns where a new entry goes.
    #[inline]
    pub(crate) fn insert_slot(&self, tag: u32, mut cursor: Cursor, order: Ordering) -> usize {
        while self.next(tag, &mut cursor, order).is_some() {}
        cursor.insert_slot()
    }

    /// The word in `slot`.
    #[inline(always)]
    pub(crate) fn load(&self, slot: usize, order: Ordering) -> u64 {
        self.slots[slot].load(order)
    }

    /// Writes `word` to `slot` (writers only).
    #[inline(always)]
    pub(crate) fn store(&self, slot: usize, word: u64, order: Ordering) {
        self.slots[slot].store(word, order)
    }

    /// Puts the entry at `pos` with `tag` into a fresh index (no key equal to it present, no
    /// reader yet), at the end of its chain; returns the slot.
    #[inline]
    pub(crate) fn place(&self, tag: u32, pos: usize) -> usize {
        let mut i = self.cursor(tag).slot;
        while self.slots[i].load(Ordering::Relaxed) != EMPTY {
            i = self.next_slot(i);
        }
        self.slots[i].store(slot_word(tag, pos), Ordering::Relaxed);
        i
    }
}

#[cfg(all(test, not(gilfree_loom)))]
mod tests {
    use super::*;

    #[test]
    fn slot_words_round_trip() {
        for &(tag, pos) in &[(0u32, 0usize), (u32::MAX, 5), (7, (1 << 31) - 1)] {
            let w = slot_word(tag, pos);
            assert!(w != EMPTY && w != TOMBSTONE);
            assert_eq!((slot_tag(w), slot_pos(w)), (tag, pos));
        }
        assert_eq!(capacity_for(0), MIN_ENTRIES);
        assert_eq!(capacity_for(5), 8);
    }

    #[test]
    fn probing_skips_tombstones_and_reuses_the_first() {
        let ix = Index::new(4);
        // Three entries with the same tag share one chain.
        for pos in 0..3 {
            ix.place(9, pos);
        }
        let mut c = ix.cursor(9);
        let found: Vec<usize> = std::iter::from_fn(|| ix.next(9, &mut c, Ordering::Relaxed))
            .map(|c| c.pos)
            .collect();
        assert_eq!(found, vec![0, 1, 2]);
        let first = ix.cursor(9).slot;
        ix.store(first, TOMBSTONE, Ordering::Relaxed);
        let mut c = ix.cursor(9);
        assert_eq!(ix.next(9, &mut c, Ordering::Relaxed).unwrap().pos, 1);
        assert_eq!(ix.insert_slot(9, ix.cursor(9), Ordering::Relaxed), first);
    }
}
