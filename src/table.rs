//! The insertion-ordered hash table core shared by both dicts.
//!
//! Layout (a compact dict, like CPython's, with one level less indirection):
//! - `slots`: open addressing, linear probing, power-of-two length, load ≤ 1/2. A slot is one
//!   pointer to its [`Node`], with the top 16 bits of the key's hash in the pointer's unused
//!   top bits (a tag that filters mismatches without touching the node); `null` = empty,
//!   [`tombstone`] = removed. 8 bytes a slot keep the probed array small.
//! - `order`: node pointers in insertion order; `null` marks a removed entry. Iteration walks
//!   `order[0..used]`; `positions[slot]` (writers only) is the order index of a slot's node.
//! - `Node`: hash, key, value, immutable once published. Overwriting a key publishes a *new*
//!   node at the same slot and position, so a reader sees either the old or the new
//!   (key, value) pair, never a torn one.
//!
//! Synchronization protocol (readers take no lock and write nothing):
//! - Writers are serialized by the owning container's lock; every method marked `unsafe` here
//!   requires that exclusion.
//! - A writer fully initialises a node, stores it in `order[pos]` (Release), writes the slot
//!   tagged slot pointer (Release), then bumps `used` (Release). A reader that loads a slot
//!   pointer or an order entry with Acquire sees an initialised node.
//! - A slot goes empty → node → (other node with the same key)* → tombstone; it is never reused
//!   within a table (a tombstone stays until a rebuild), so probe chains never break.
//! - Growth or compaction builds a new table over the *same* nodes and the container publishes
//!   it; the old table stays valid for readers that still hold it. Nodes and tables that leave
//!   the structure are freed by the container (immediately under an exclusive lock, or through
//!   epoch reclamation for lock-free readers), never by this module.

use crate::sync::{AtomicPtr, AtomicU32, AtomicUsize, Ordering, Published};

#[cfg(not(target_pointer_width = "64"))]
compile_error!("gilfree's table keeps hash tags in pointer bits and needs a 64-bit target");
use std::ptr;

/// One entry: the key's hash, the key and its value. Owned by the container, not the table.
pub(crate) struct Node<K, V> {
    pub(crate) hash: u64,
    key: Published<K>,
    value: Published<V>,
}

impl<K, V> Node<K, V> {
    /// Allocates a node; the caller owns the returned pointer.
    pub(crate) fn alloc(hash: u64, key: K, value: V) -> *mut Node<K, V> {
        let node = Box::into_raw(Box::new(Node {
            hash,
            key: Published::new(key),
            value: Published::new(value),
        }));
        // Slots keep a hash tag in the top 16 address bits; every 64-bit platform Rust
        // supports hands out user-space heap addresses below 2^48 unless a program opts in to
        // larger address spaces explicitly.
        assert!(
            node.addr() & !ADDR_MASK == 0,
            "gilfree needs heap addresses below 2^48 (got {node:p})"
        );
        node
    }

    /// The key.
    #[inline]
    pub(crate) fn key(&self) -> &K {
        self.key.get()
    }

    /// The value.
    #[inline]
    pub(crate) fn value(&self) -> &V {
        self.value.get()
    }

    /// Replaces the value in place. Only `LockedDict` does this, under its exclusive lock,
    /// where no reference into the node can be alive (its re-entrant readers get clones).
    pub(crate) fn replace_value(&mut self, value: V) -> V {
        std::mem::replace(self.value.get_mut(), value)
    }

    /// Moves the entry out of a node its caller owns.
    pub(crate) fn into_entry(self) -> (K, V) {
        (self.key.into_inner(), self.value.into_inner())
    }
}

/// The marker of a removed slot. Its address is odd, so it is never a real node.
#[inline]
pub(crate) fn tombstone<K, V>() -> *mut Node<K, V> {
    ptr::without_provenance_mut(1)
}

/// A slot: a tagged node pointer (see the module docs).
struct Slot<K, V> {
    node: AtomicPtr<Node<K, V>>,
}

/// Bits of a user-space address (x86-64 and AArch64 Linux/macOS/Windows use at most 48).
const ADDR_BITS: u32 = 48;
const ADDR_MASK: usize = (1 << ADDR_BITS) - 1;

/// The tag a key with this hash carries in its slot pointer.
#[inline]
fn tag(hash: u64) -> usize {
    ((hash >> ADDR_BITS) as usize) << ADDR_BITS
}

/// A node pointer with its key's hash tag in the top bits.
#[inline]
fn tagged<K, V>(node: *mut Node<K, V>, hash: u64) -> *mut Node<K, V> {
    node.map_addr(|a| a | tag(hash))
}

/// The node pointer of a tagged slot value.
#[inline]
fn untagged<K, V>(slot: *mut Node<K, V>) -> *mut Node<K, V> {
    slot.map_addr(|a| a & ADDR_MASK)
}

/// Result of one probing step.
pub(crate) enum Probe<'t, K, V> {
    /// The probe chain ended at this empty slot: no (further) candidate.
    Vacant(usize),
    /// A live slot whose hash equals the searched hash; the key still has to be compared.
    Candidate { slot: usize, node: &'t Node<K, V> },
}

/// See the module docs.
pub(crate) struct Table<K, V> {
    slots: Box<[Slot<K, V>]>,
    /// `positions[slot]`: the order position of the slot's node; writers only (kept out of
    /// the slots so that readers probe 8-byte slots and nodes stay 3 words).
    positions: Box<[AtomicU32]>,
    shift: u32,
    order: Box<[AtomicPtr<Node<K, V>>]>,
    /// Order positions handed out, never taken back; `order[..used]` is initialised.
    used: AtomicUsize,
    /// One past the last live position (writers only; `popitem`'s starting point).
    tail: AtomicUsize,
    /// Live entries.
    len: AtomicUsize,
}

const MIN_ORDER: usize = 4;

impl<K, V> Table<K, V> {
    /// An empty table with room for at least `entries` insertions before a rebuild.
    pub(crate) fn with_capacity(entries: usize) -> Table<K, V> {
        let order_len = entries.max(MIN_ORDER).next_power_of_two();
        assert!(
            order_len <= 1 << 31,
            "a gilfree table holds at most 2^31 entries"
        );
        let slot_len = order_len * 2;
        Table {
            slots: (0..slot_len)
                .map(|_| Slot {
                    node: AtomicPtr::new(ptr::null_mut()),
                })
                .collect(),
            positions: (0..slot_len).map(|_| AtomicU32::new(0)).collect(),
            shift: 64 - slot_len.trailing_zeros(),
            order: (0..order_len)
                .map(|_| AtomicPtr::new(ptr::null_mut()))
                .collect(),
            used: AtomicUsize::new(0),
            tail: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
        }
    }

    /// Live entries in this table.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Order positions in use (the iteration bound).
    #[inline]
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// The first slot of `hash`'s probe chain.
    #[inline]
    pub(crate) fn start(&self, hash: u64) -> usize {
        // Fibonacci hashing: spreads interpreter hashes like `hash(int) == int` over the table.
        (hash.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    #[inline]
    fn next(&self, slot: usize) -> usize {
        (slot + 1) & (self.slots.len() - 1)
    }

    /// Walks the probe chain of `hash` from `*cursor` to the next candidate (a live slot with
    /// an equal hash) or to the empty slot that ends the chain. On a candidate, `*cursor` moves
    /// past it, so calling again continues the search.
    ///
    /// The returned node lives as long as `&self`: callers hold a table reference only while
    /// pinned (lock-free readers) or while holding the container's lock.
    #[inline]
    pub(crate) fn probe(&self, hash: u64, cursor: &mut usize) -> Probe<'_, K, V> {
        let mut i = *cursor;
        loop {
            let slot = &self.slots[i];
            let node = slot.node.load(Ordering::Acquire);
            if node.is_null() {
                *cursor = i;
                return Probe::Vacant(i);
            }
            if node != tombstone() && node.addr() & !ADDR_MASK == tag(hash) {
                // SAFETY: a non-null, non-tombstone slot holds a tagged node pointer published
                // with Release after full initialisation (Acquire load above); the node is
                // freed only after it is unlinked *and* no reader/lock holder can still see
                // this table (module protocol), which outlives the `&self` borrow.
                let node = unsafe { &*untagged(node) };
                if node.hash == hash {
                    *cursor = self.next(i);
                    return Probe::Candidate { slot: i, node };
                }
            }
            // Load ≤ 1/2 guarantees an empty slot, so this loop ends.
            i = self.next(i);
        }
    }

    /// The node pointer in a live `slot` (for a writer that mutates it in place).
    #[inline]
    pub(crate) fn node_ptr(&self, slot: usize) -> *mut Node<K, V> {
        untagged(self.slots[slot].node.load(Ordering::Acquire))
    }

    /// The node currently in `slot`, if it is still exactly `node` (pointer identity).
    #[inline]
    pub(crate) fn slot_holds(&self, slot: usize, node: *const Node<K, V>) -> bool {
        ptr::eq(
            untagged(self.slots[slot].node.load(Ordering::Acquire)),
            node,
        )
    }

    /// The entry at order position `pos`, or `None` if it was removed (or not yet written).
    #[inline]
    pub(crate) fn entry(&self, pos: usize) -> Option<&Node<K, V>> {
        let node = self.order.get(pos)?.load(Ordering::Acquire);
        // SAFETY: as in `probe`: order entries are published with Release after
        // initialisation and outlive every borrow of a table that can still reach them.
        unsafe { node.as_ref() }
    }

    /// The slot holding `node`, found by pointer identity (no user code runs).
    pub(crate) fn slot_of(&self, node: &Node<K, V>) -> usize {
        let mut i = self.start(node.hash);
        loop {
            let p = self.slots[i].node.load(Ordering::Acquire);
            if ptr::eq(untagged(p), node) {
                return i;
            }
            assert!(
                !p.is_null(),
                "table invariant broken: live node missing from its slots"
            );
            i = self.next(i);
        }
    }

    /// The last live entry in order (for `popitem`; writers only). Moves the tail hint down
    /// over the removed positions it passes, so a run of them is walked once.
    pub(crate) fn last(&self) -> Option<&Node<K, V>> {
        let mut tail = self.tail.load(Ordering::Relaxed);
        while tail > 0 {
            if let Some(node) = self.entry(tail - 1) {
                self.tail.store(tail, Ordering::Relaxed);
                return Some(node);
            }
            tail -= 1;
        }
        self.tail.store(0, Ordering::Relaxed);
        None
    }

    /// Whether one more entry fits without a rebuild.
    #[inline]
    pub(crate) fn has_room(&self) -> bool {
        // Every append takes a fresh position and a fresh slot, so `used` also counts the
        // non-empty slots: load ≤ 1/2.
        self.used.load(Ordering::Relaxed) < self.order.len()
    }

    /// Appends `node` (key not present) at the empty `slot` the probe ended on.
    ///
    /// # Safety
    /// Caller holds the container's writer exclusion, `has_room()` is true, `slot` is the
    /// `Vacant` end of `node.hash`'s probe chain in this table, and `node` is a live node not
    /// yet in any table.
    pub(crate) unsafe fn push(&self, slot: usize, node: *mut Node<K, V>) {
        let pos = self.used.load(Ordering::Relaxed);
        debug_assert!(pos < self.order.len());
        // SAFETY: the caller passes a live node that no reader can see yet.
        let n = unsafe { &*node };
        self.positions[slot].store(pos as u32, Ordering::Relaxed);
        self.order[pos].store(node, Ordering::Release);
        let s = &self.slots[slot];
        debug_assert!(s.node.load(Ordering::Relaxed).is_null());
        s.node.store(tagged(node, n.hash), Ordering::Release);
        self.used.store(pos + 1, Ordering::Release);
        self.tail.store(pos + 1, Ordering::Relaxed);
        self.len
            .store(self.len.load(Ordering::Relaxed) + 1, Ordering::Release);
    }

    /// Puts `new` (same key, new value) in place of the node in `slot`; returns the old node,
    /// which the caller now owns (and must free or retire).
    ///
    /// # Safety
    /// Writer exclusion; `slot` holds a live node whose key equals `new`'s; `new` is fresh.
    pub(crate) unsafe fn replace(&self, slot: usize, new: *mut Node<K, V>) -> *mut Node<K, V> {
        let s = &self.slots[slot];
        let old = untagged(s.node.load(Ordering::Relaxed));
        // SAFETY: the slot holds a live node (caller contract); `new` is fresh and private.
        let hash = unsafe { (*old).hash };
        let pos = self.positions[slot].load(Ordering::Relaxed) as usize;
        self.order[pos].store(new, Ordering::Release);
        s.node.store(tagged(new, hash), Ordering::Release);
        old
    }

    /// Unlinks the node in `slot`; returns it, owned by the caller (free or retire it).
    ///
    /// # Safety
    /// Writer exclusion; `slot` holds a live node.
    pub(crate) unsafe fn take(&self, slot: usize) -> *mut Node<K, V> {
        let s = &self.slots[slot];
        let old = untagged(s.node.load(Ordering::Relaxed));
        let pos = self.positions[slot].load(Ordering::Relaxed) as usize;
        s.node.store(tombstone(), Ordering::Release);
        self.order[pos].store(ptr::null_mut(), Ordering::Release);
        // Removing the last live entry moves the writers' tail hint down by one; `last` walks it
        // further down over removed positions when `popitem` needs it. (Walking here would
        // rescan the same run of removed positions on every insert-then-remove at the end.)
        // Positions themselves are never reused within a table: an iterator that already
        // passed one must not meet a new entry there.
        if self.tail.load(Ordering::Relaxed) == pos + 1 {
            self.tail.store(pos, Ordering::Relaxed);
        }
        self.len
            .store(self.len.load(Ordering::Relaxed) - 1, Ordering::Release);
        old
    }

    /// Appends a fresh `node` (key absent) whose probe chain ended at the vacant `slot`. If the
    /// table is full, returns instead a rebuilt table that holds every entry plus `node`; the
    /// caller must publish it in place of `self` and dispose of `self` (not of its nodes).
    ///
    /// # Safety
    /// Writer exclusion; `slot` ends `node.hash`'s chain here; `node` is fresh.
    pub(crate) unsafe fn append(
        &self,
        slot: usize,
        node: *mut Node<K, V>,
    ) -> Option<Box<Table<K, V>>> {
        // SAFETY (all blocks): forwarded from the caller; `fresh` is still private.
        if self.has_room() {
            unsafe { self.push(slot, node) };
            None
        } else {
            let fresh = unsafe { self.rebuild(1) };
            unsafe { fresh.push(fresh.vacant_end((*node).hash), node) };
            Some(Box::new(fresh))
        }
    }

    /// Builds a compacted table over the same nodes with room for `extra` more entries.
    ///
    /// # Safety
    /// Writer exclusion. Afterwards the nodes' `pos` refer to the new table, so the caller must
    /// publish it in place of `self` before releasing the exclusion.
    pub(crate) unsafe fn rebuild(&self, extra: usize) -> Table<K, V> {
        let len = self.len.load(Ordering::Relaxed);
        // Room for at least len/2 + extra more entries keeps rebuilds amortized O(1).
        let fresh = Table::with_capacity(len + len / 2 + extra.max(1));
        for pos in 0..self.used.load(Ordering::Relaxed) {
            let node = self.order[pos].load(Ordering::Relaxed);
            if !node.is_null() {
                // SAFETY: live node, moved (by pointer) into a table no reader sees yet.
                unsafe {
                    let slot = fresh.vacant_end((*node).hash);
                    fresh.push(slot, node);
                }
            }
        }
        fresh
    }

    /// The empty slot ending `hash`'s probe chain, for a key known to be absent.
    pub(crate) fn vacant_end(&self, hash: u64) -> usize {
        let mut i = self.start(hash);
        while !self.slots[i].node.load(Ordering::Relaxed).is_null() {
            i = self.next(i);
        }
        i
    }

    /// The live nodes in order (used to free them when the container is dropped or cleared).
    pub(crate) fn node_ptrs(&self) -> impl Iterator<Item = *mut Node<K, V>> + '_ {
        (0..self.used.load(Ordering::Acquire))
            .map(|pos| self.order[pos].load(Ordering::Acquire))
            .filter(|p| !p.is_null())
    }
}
