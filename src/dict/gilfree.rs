//! [`GilFreeStore`]: the storage of `GilFreeDict` — readers take no lock and write no shared
//! cache line; writers serialize on the dict's lock.
//!
//! ## Layout
//!
//! A [`Table`] is a compact dict: an [`Index`] of tagged slots over an *entries* array in
//! insertion order. An entry holds the key inline, the value's word inline
//! ([`crate::storage`]: the value itself for one-word handles, a box pointer otherwise) and a
//! `meta` word: the entry's insertion sequence number (unique for the dict's lifetime) and a
//! removed bit. A read probes one slot, then reads one entry: one dependent memory access after
//! the index. A writer-only array records each entry's slot (O(1) removal by position).
//!
//! ## Invariants (lock released)
//!
//! - **T1** `table` points to the current table; only a lock holder replaces it (Release), and
//!   a replaced table is never written again and is retired after the lock is released.
//! - **T2** Positions are append-only within a table: entry `pos < used` was fully written
//!   (key, value word, meta) before `used` and its slot were published with Release. A key is
//!   never written again while the table lives; an entry's value word changes only by
//!   overwrite (Release), and a removed entry is marked in `meta` and never written again.
//! - **T3** A slot goes empty → entry → tombstone (or back to empty when the next slot is
//!   empty, which no chain crosses) → entry …; every live entry has exactly one slot.
//! - **T4** A value word is retired (if its type owns anything) when it leaves the current
//!   table: overwritten or removed. A table is retired when it is replaced: a *moved* table
//!   (rebuilt into a new one, which took its live keys and value words bitwise) then drops only
//!   the keys of its removed entries; a *doomed* table (`clear`, the dict's drop) drops every
//!   key and every live value word.
//! - **T5** Each table has a generation number, unique and increasing within the dict.
//!
//! ## Readers
//!
//! A reader pins (see [`crate::reclaim`]), loads `table` (Acquire), probes with Acquire loads,
//! and borrows or clones the key and value it finds; all of it stays allocated until it unpins
//! (T1, T4). It may return a value that a concurrent writer is replacing or removing — the read
//! then linearizes before that write. Script `eq` never runs pinned: the dict core clones the
//! candidates and unpins first.
//!
//! ## Iteration
//!
//! [`Iter`] pins only inside each step. It remembers the sequence number of the last entry it
//! yielded; when the table was rebuilt between two steps (another generation), it finds its
//! place in the new table by binary search over the sequence numbers, which rebuilds keep in
//! order. It yields each entry at most once, every entry present from its creation to the
//! moment it is reached exactly once, and never an entry inserted after its creation.

use std::fmt;
use std::marker::PhantomData;
use std::ptr;

use crate::dict::index::{self, tag32, Candidate, Cursor, Index};
use crate::dict::store::{sealed, DictStore, Section, Stamp, WriteSection};
use crate::reclaim::{self, Guard};
use crate::reentry;
use crate::storage::{Ref, Storable, Storage};
use crate::sync::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Mutex, MutexGuard};
use crate::sync::{Ordering, WriteOnce};
use crate::{Container, Error};

/// `meta`'s removed bit; the sequence number is `meta >> 1` (never 0 for a written entry).
const REMOVED: u64 = 1;

/// One entry: the key, the value's word, and `meta` (see the module docs).
#[repr(C)]
struct Entry<K> {
    key: WriteOnce<K>,
    value: AtomicU64,
    meta: AtomicU64,
}

#[cfg(gilfree_loom)]
impl<K> crate::sync::Zeroed for Entry<K> {
    fn zeroed() -> Self {
        Entry {
            key: WriteOnce::empty(),
            value: AtomicU64::new(0),
            meta: AtomicU64::new(0),
        }
    }
}

#[cfg(gilfree_loom)]
impl crate::sync::Zeroed for AtomicU32 {
    fn zeroed() -> Self {
        AtomicU32::new(0)
    }
}

/// One generation of a dict's storage (see the module docs).
pub(crate) struct Table<K> {
    index: Index,
    entries: Box<[Entry<K>]>,
    /// `slot_of[pos]`: the index slot of entry `pos` (writers only).
    slot_of: Box<[AtomicU32]>,
    /// Positions handed out; `entries[..used]` are written (T2).
    used: AtomicUsize,
    /// Live entries.
    live: AtomicUsize,
    /// One past the last live position (writers only; `popitem`'s starting point).
    tail: AtomicUsize,
    generation: u64,
}

impl<K> Table<K> {
    fn new(capacity: usize, generation: u64) -> Table<K> {
        let cap = index::capacity_for(capacity);
        Table {
            index: Index::new(cap),
            // SAFETY: an all-zero entry is an empty key cell and two zero atomics.
            entries: unsafe { crate::sync::zeroed_slice(cap) },
            // SAFETY: zero atomics.
            slot_of: unsafe { crate::sync::zeroed_slice(cap) },
            used: AtomicUsize::new(0),
            live: AtomicUsize::new(0),
            tail: AtomicUsize::new(0),
            generation,
        }
    }

    #[inline]
    fn cap(&self) -> usize {
        self.entries.len()
    }

    #[inline(always)]
    fn entry(&self, pos: usize) -> &Entry<K> {
        &self.entries[pos]
    }

    /// The key at `pos < used`.
    #[inline(always)]
    fn key(&self, pos: usize) -> &K {
        // SAFETY: written before `used`/its slot were published (T2), read after an Acquire of
        // one of them, and dropped only when the table is freed, after every borrow of it.
        unsafe { self.entries[pos].key.get() }
    }

    /// Whether entry `pos < used` is live (Acquire: a reader may race with its removal).
    #[inline(always)]
    fn is_live(&self, pos: usize) -> bool {
        self.entries[pos].meta.load(Ordering::Acquire) & REMOVED == 0
    }

    /// A hash with the tag of entry `pos` (see `Section::hash`).
    #[inline]
    fn hash_of(&self, pos: usize) -> u64 {
        let slot = self.slot_of[pos].load(Ordering::Relaxed) as usize;
        u64::from(index::slot_tag(self.index.load(slot, Ordering::Acquire)))
    }

    /// The first position whose entry's sequence number is at least `seq` (entries are sorted
    /// by sequence number: they are appended in insertion order and rebuilds keep the order).
    fn lower_bound(&self, seq: u64) -> usize {
        let (mut lo, mut hi) = (0, self.used.load(Ordering::Acquire));
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.entries[mid].meta.load(Ordering::Acquire) >> 1 < seq {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }
}

/// A table retired after a rebuild: its live keys and values moved to the new table.
struct Moved<K>(*mut Table<K>);

impl<K> Drop for Moved<K> {
    fn drop(&mut self) {
        // SAFETY: an unlinked table, freed once, after every reader of it unpinned (T1).
        let table = unsafe { Box::from_raw(self.0) };
        if std::mem::needs_drop::<K>() {
            let used = table.used.load(Ordering::Relaxed);
            let removed = (0..used).filter(|&p| !table.is_live(p));
            // SAFETY: the keys of removed entries were not moved (T4) and are dropped once.
            crate::cleanup::drop_all(removed.map(|p| unsafe { table.entries[p].key.take() }));
        }
    }
}

/// A table retired with everything in it (`clear`, the dict's drop).
struct Doomed<K, V: Storable>(*mut Table<K>, PhantomData<V>);

impl<K, V: Storable> Drop for Doomed<K, V> {
    fn drop(&mut self) {
        // SAFETY: an unlinked table, freed once, after every reader of it unpinned (T1), that
        // owns every key and every live value word (T4).
        let table = unsafe { Box::from_raw(self.0) };
        let used = table.used.load(Ordering::Relaxed);
        if V::Storage::OWNS {
            let words = (0..used)
                .filter(|&p| table.is_live(p))
                .map(|p| Word::<V>(table.entries[p].value.load(Ordering::Relaxed), PhantomData));
            crate::cleanup::drop_all(words);
        }
        if std::mem::needs_drop::<K>() {
            // SAFETY: every written key is owned here and dropped once.
            crate::cleanup::drop_all((0..used).map(|p| unsafe { table.entries[p].key.take() }));
        }
    }
}

/// A value word owned by the code holding it: dropping it drops the value.
struct Word<V: Storable>(u64, PhantomData<V>);

impl<V: Storable> Drop for Word<V> {
    fn drop(&mut self) {
        // SAFETY: a word taken out of a table that owned it, dropped once.
        unsafe { V::Storage::drop_word(self.0) };
    }
}

unsafe fn drop_moved<K>(word: u64) {
    // SAFETY: `word` is the exposed address of a retired table (see `Write::drop`).
    drop(Moved::<K>(ptr::with_exposed_provenance_mut(word as usize)));
}

unsafe fn drop_doomed<K, V: Storable>(word: u64) {
    // SAFETY: as `drop_moved`.
    drop(Doomed::<K, V>(
        ptr::with_exposed_provenance_mut(word as usize),
        PhantomData,
    ));
}

/// The storage of a [`GilFreeDict`](crate::GilFreeDict); see the [module docs](self).
pub struct GilFreeStore<K, V> {
    table: AtomicPtr<Table<K>>,
    lock: Mutex<()>,
    len: AtomicUsize,
    version: AtomicU64,
    keys_version: AtomicU64,
    frozen: AtomicBool,
    /// The next entry's sequence number (writers only).
    next_seq: AtomicU64,
    /// Drops a table with everything in it (made where `V: Storable` is known).
    doom: unsafe fn(u64),
    _values: PhantomData<V>,
}

// SAFETY: the store owns its keys and values and shares them between threads: readers on any
// thread get `&K`/`&V` (Sync), and any thread may drop a retired one (Send).
unsafe impl<K: Send + Sync, V: Send + Sync> Send for GilFreeStore<K, V> {}
// SAFETY: as above.
unsafe impl<K: Send + Sync, V: Send + Sync> Sync for GilFreeStore<K, V> {}

impl<K, V> sealed::Sealed for GilFreeStore<K, V> {}

impl<K, V> GilFreeStore<K, V> {
    /// The current table, for a thread that is pinned or holds the lock (T1).
    #[inline(always)]
    fn current(&self) -> &Table<K> {
        // SAFETY: always a live table; the caller's pin or lock keeps it alive (T1).
        unsafe { &*self.table.load(Ordering::Acquire) }
    }

    /// Records a mutation (under the lock).
    #[inline]
    fn bump(&self, table: &Table<K>, keys_changed: bool) {
        self.len
            .store(table.live.load(Ordering::Relaxed), Ordering::Release);
        if keys_changed {
            let k = self.keys_version.load(Ordering::Relaxed);
            self.keys_version.store(k + 1, Ordering::Release);
        }
        let v = self.version.load(Ordering::Relaxed);
        self.version.store(v + 1, Ordering::Release);
    }

    /// A pinned read session (for [`Pinned`](crate::dict::Pinned)).
    pub(crate) fn pinned(&self) -> Read<'_, K, V> {
        let guard = reclaim::pin();
        Read {
            table: self.current(),
            _guard: guard,
            _values: PhantomData,
        }
    }
}

/// A read section: pinned, on the table that was current when it began.
pub struct Read<'a, K, V> {
    table: &'a Table<K>,
    _guard: Guard,
    _values: PhantomData<&'a V>,
}

impl<'a, K, V: Storable> Read<'a, K, V> {
    /// The value at live `pos`, borrowed for the section.
    #[inline(always)]
    pub(crate) fn value(&self, pos: usize) -> Ref<'_, V> {
        let word = self.table.entry(pos).value.load(Ordering::Acquire);
        // SAFETY: a value word loaded while pinned stays alive until the section ends (T4).
        unsafe { V::Storage::borrow(word) }
    }
}

impl<K, V: Storable> Section<K, V> for Read<'_, K, V> {
    #[inline(always)]
    fn cursor(&self, hash: u64) -> Cursor {
        self.table.index.cursor(tag32(hash))
    }

    #[inline(always)]
    fn next(&self, hash: u64, cursor: &mut Cursor) -> Option<Candidate> {
        self.table
            .index
            .next(tag32(hash), cursor, Ordering::Acquire)
    }

    #[inline(always)]
    fn key(&self, pos: usize) -> &K {
        self.table.key(pos)
    }

    #[inline(always)]
    fn with_value<R>(&self, pos: usize, f: impl FnOnce(&V) -> R) -> R {
        f(&self.value(pos))
    }

    #[inline(always)]
    fn clone_value(&self, pos: usize) -> V
    where
        V: Clone,
    {
        (*self.value(pos)).clone()
    }

    #[inline]
    fn hash(&self, pos: usize) -> u64 {
        self.table.hash_of(pos)
    }

    #[inline]
    fn used(&self) -> usize {
        self.table.used.load(Ordering::Acquire)
    }

    #[inline]
    fn live(&self, pos: usize) -> bool {
        self.table.is_live(pos)
    }
}

/// A write section: the dict's lock (no pin: nothing the section reads can be retired by
/// anyone else while it holds the lock, T1/T4).
pub struct Write<'a, K, V: Storable> {
    store: &'a GilFreeStore<K, V>,
    lock: Option<MutexGuard<'a, ()>>,
    /// Tables this section unlinked, retired when it ends (`(address, doomed)`).
    unlinked: Vec<(*mut Table<K>, bool)>,
}

impl<K, V: Storable> Write<'_, K, V> {
    #[inline(always)]
    fn table(&self) -> &Table<K> {
        self.store.current()
    }

    /// Publishes a rebuilt table with room for `extra` more entries; the old one is retired
    /// when the section ends.
    fn rebuild(&mut self, extra: usize) {
        let old = self.table();
        let live = old.live.load(Ordering::Relaxed);
        let fresh = Table::new(live + live / 2 + extra.max(1), old.generation + 1);
        let mut n = 0;
        for pos in 0..old.used.load(Ordering::Relaxed) {
            let e = old.entry(pos);
            let meta = e.meta.load(Ordering::Relaxed);
            if meta & REMOVED != 0 {
                continue;
            }
            let slot = old.slot_of[pos].load(Ordering::Relaxed) as usize;
            let tag = index::slot_tag(old.index.load(slot, Ordering::Relaxed));
            let to = fresh.entry(n);
            // SAFETY: the fresh table is private; the key moves bitwise (the old table keeps
            // its copy for its readers and will not drop it, T4).
            unsafe { to.key.write(e.key.take()) };
            to.value
                .store(e.value.load(Ordering::Relaxed), Ordering::Relaxed);
            to.meta.store(meta, Ordering::Relaxed);
            let s = fresh.index.place(tag, n);
            fresh.slot_of[n].store(s as u32, Ordering::Relaxed);
            n += 1;
        }
        fresh.used.store(n, Ordering::Relaxed);
        fresh.live.store(n, Ordering::Relaxed);
        fresh.tail.store(n, Ordering::Relaxed);
        let old = self.store.table.load(Ordering::Relaxed);
        // Release: readers that load the new table see it complete.
        self.store
            .table
            .store(Box::into_raw(Box::new(fresh)), Ordering::Release);
        self.unlinked.push((old, false));
    }

    /// The value word at `pos` (the lock is held: it cannot change under us).
    #[inline]
    fn word(&self, pos: usize) -> u64 {
        self.table().entry(pos).value.load(Ordering::Relaxed)
    }

    /// Gives up a word that left the table (T4): returns the value, retiring the stored word
    /// if it owns something a reader may still be looking at.
    #[inline]
    fn release_word(&self, word: u64) -> V
    where
        V: Clone,
    {
        if V::Storage::OWNS {
            // SAFETY: the word was in the table until now; the lock keeps it alive here.
            let out = (*unsafe { V::Storage::borrow(word) }).clone();
            // SAFETY: unlinked from the current table just now, retired once (T4).
            unsafe { reclaim::retire(word, V::Storage::drop_word) };
            out
        } else {
            // SAFETY: nothing to drop: a bitwise copy is the value, and readers' copies stay
            // valid without the original.
            unsafe { V::Storage::from_word(word) }
        }
    }

    /// Unlinks entry `pos` (tombstone, removed bit); the value word is the caller's.
    fn unlink(&mut self, pos: usize) -> u64 {
        let table = self.table();
        let e = table.entry(pos);
        let slot = table.slot_of[pos].load(Ordering::Relaxed) as usize;
        let next = (slot + 1) & (table.index.len() - 1);
        // A slot whose successor is empty ends every chain through it: it can be emptied.
        let mark = if table.index.load(next, Ordering::Relaxed) == index::EMPTY {
            index::EMPTY
        } else {
            index::TOMBSTONE
        };
        table.index.store(slot, mark, Ordering::Release);
        e.meta
            .store(e.meta.load(Ordering::Relaxed) | REMOVED, Ordering::Release);
        table
            .live
            .store(table.live.load(Ordering::Relaxed) - 1, Ordering::Relaxed);
        if table.tail.load(Ordering::Relaxed) == pos + 1 {
            table.tail.store(pos, Ordering::Relaxed);
        }
        self.store.bump(table, true);
        e.value.load(Ordering::Relaxed)
    }
}

impl<K, V: Storable> Section<K, V> for Write<'_, K, V> {
    #[inline(always)]
    fn cursor(&self, hash: u64) -> Cursor {
        self.table().index.cursor(tag32(hash))
    }

    #[inline(always)]
    fn next(&self, hash: u64, cursor: &mut Cursor) -> Option<Candidate> {
        self.table()
            .index
            .next(tag32(hash), cursor, Ordering::Relaxed)
    }

    #[inline(always)]
    fn key(&self, pos: usize) -> &K {
        self.table().key(pos)
    }

    #[inline]
    fn with_value<R>(&self, pos: usize, f: impl FnOnce(&V) -> R) -> R {
        // SAFETY: the word stays in the table while the lock is held (only lock holders
        // replace it), so it is alive for the borrow.
        f(&*unsafe { V::Storage::borrow(self.word(pos)) })
    }

    #[inline]
    fn clone_value(&self, pos: usize) -> V
    where
        V: Clone,
    {
        self.with_value(pos, V::clone)
    }

    #[inline]
    fn hash(&self, pos: usize) -> u64 {
        self.table().hash_of(pos)
    }

    #[inline]
    fn used(&self) -> usize {
        self.table().used.load(Ordering::Relaxed)
    }

    #[inline]
    fn live(&self, pos: usize) -> bool {
        self.table().entry(pos).meta.load(Ordering::Relaxed) & REMOVED == 0
    }
}

impl<K, V: Storable> WriteSection<K, V> for Write<'_, K, V> {
    #[inline]
    fn value_ref(&self, pos: usize) -> Ref<'_, V> {
        // SAFETY: only lock holders replace a word, and this section's writes need `&mut self`,
        // so the word stays alive while the borrow lives.
        unsafe { V::Storage::borrow(self.word(pos)) }
    }

    fn stamp(&self) -> Stamp {
        let t = self.table();
        Stamp {
            generation: t.generation,
            used: t.used.load(Ordering::Relaxed),
        }
    }

    fn still_valid(&self, stamp: Stamp, hash: u64, found: Option<usize>) -> bool {
        let t = self.table();
        if t.generation != stamp.generation || found.is_some_and(|p| !self.live(p)) {
            return false;
        }
        let mut c = self.cursor(hash);
        while let Some(cand) = self.next(hash, &mut c) {
            if cand.pos >= stamp.used {
                return false;
            }
        }
        true
    }

    fn insert(&mut self, hash: u64, cursor: Cursor, key: K, value: V) {
        let tag = tag32(hash);
        let mut slot = self
            .table()
            .index
            .insert_slot(tag, cursor, Ordering::Relaxed);
        if self.table().used.load(Ordering::Relaxed) == self.table().cap() {
            self.rebuild(1);
            slot = self.table().index.insert_slot(
                tag,
                self.table().index.cursor(tag),
                Ordering::Relaxed,
            );
        }
        let table = self.table();
        let pos = table.used.load(Ordering::Relaxed);
        let seq = self.store.next_seq.load(Ordering::Relaxed);
        self.store.next_seq.store(seq + 1, Ordering::Relaxed);
        let e = table.entry(pos);
        // SAFETY: position `pos` was never handed out in this table (T2): its cell is empty
        // and no reader can reach it before the Release stores below.
        unsafe { e.key.write(key) };
        e.value
            .store(V::Storage::into_word(value), Ordering::Relaxed);
        e.meta.store(seq << 1, Ordering::Relaxed);
        table.slot_of[pos].store(slot as u32, Ordering::Relaxed);
        table.used.store(pos + 1, Ordering::Release);
        table
            .index
            .store(slot, index::slot_word(tag, pos), Ordering::Release);
        table
            .live
            .store(table.live.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        table.tail.store(pos + 1, Ordering::Relaxed);
        self.store.bump(table, true);
    }

    fn replace(&mut self, pos: usize, value: V) -> V
    where
        V: Clone,
    {
        let table = self.table();
        let e = table.entry(pos);
        let old = e.value.load(Ordering::Relaxed);
        // Release: a reader that loads the new word sees the value it designates.
        e.value
            .store(V::Storage::into_word(value), Ordering::Release);
        self.store.bump(table, false);
        self.release_word(old)
    }

    fn remove(&mut self, pos: usize) -> (K, V)
    where
        K: Clone,
        V: Clone,
    {
        // The key stays in place for readers (T2); the caller gets a clone.
        let key = self.key(pos).clone();
        let word = self.unlink(pos);
        (key, self.release_word(word))
    }

    fn discard(&mut self, pos: usize) {
        let word = self.unlink(pos);
        if V::Storage::OWNS {
            // SAFETY: unlinked just now, retired once (T4).
            unsafe { reclaim::retire(word, V::Storage::drop_word) };
        }
    }

    fn last(&mut self) -> Option<usize> {
        let table = self.table();
        let mut tail = table.tail.load(Ordering::Relaxed);
        while tail > 0 && !self.live(tail - 1) {
            tail -= 1;
        }
        table.tail.store(tail, Ordering::Relaxed);
        tail.checked_sub(1)
    }

    fn clear(&mut self) {
        let old = self.store.table.load(Ordering::Relaxed);
        let generation = self.table().generation + 1;
        self.store.table.store(
            Box::into_raw(Box::new(Table::new(0, generation))),
            Ordering::Release,
        );
        self.unlinked.push((old, true));
        let fresh = self.table();
        self.store.bump(fresh, true);
    }

    fn reserve(&mut self, additional: usize) {
        let t = self.table();
        let need = t.live.load(Ordering::Relaxed) + additional;
        if t.used.load(Ordering::Relaxed) + additional > t.cap() {
            self.rebuild(need.saturating_sub(t.live.load(Ordering::Relaxed) * 3 / 2));
        }
    }
}

impl<K, V: Storable> Drop for Write<'_, K, V> {
    fn drop(&mut self) {
        drop(self.lock.take());
        let rebuilt = !self.unlinked.is_empty();
        for (table, doomed) in self.unlinked.drain(..) {
            let word = table.expose_provenance() as u64;
            // SAFETY: unlinked (a newer table is published, T1) and retired once, here, after
            // the lock is released.
            unsafe {
                if doomed {
                    reclaim::retire(word, drop_doomed::<K, V>);
                } else {
                    reclaim::retire(word, drop_moved::<K>);
                }
            }
        }
        if rebuilt {
            // Free old tables promptly, so memory stays bounded under resize churn.
            reclaim::flush();
        } else {
            reclaim::after_write();
        }
    }
}

impl<K, V> DictStore<K, V> for GilFreeStore<K, V>
where
    K: Clone + Send + Sync + 'static,
    V: Storable + Clone + Send + Sync + 'static,
{
    type Read<'a> = Read<'a, K, V>;
    type Write<'a> = Write<'a, K, V>;
    type Iter<'a> = Iter<'a, K, V>;

    fn with_capacity(capacity: usize) -> Self {
        GilFreeStore {
            table: AtomicPtr::new(Box::into_raw(Box::new(Table::new(capacity, 0)))),
            lock: Mutex::new(()),
            len: AtomicUsize::new(0),
            version: AtomicU64::new(0),
            keys_version: AtomicU64::new(0),
            frozen: AtomicBool::new(false),
            next_seq: AtomicU64::new(1),
            doom: drop_doomed::<K, V>,
            _values: PhantomData,
        }
    }

    #[inline]
    fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    fn capacity(&self) -> usize {
        let _guard = reclaim::pin();
        let t = self.current();
        t.cap() - t.used.load(Ordering::Acquire) + t.live.load(Ordering::Acquire)
    }

    #[inline]
    fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    #[inline]
    fn keys_version(&self) -> u64 {
        self.keys_version.load(Ordering::Acquire)
    }

    #[inline]
    fn is_frozen(&self) -> bool {
        self.frozen.load(Ordering::Acquire)
    }

    #[inline(always)]
    fn read(&self) -> Read<'_, K, V> {
        self.pinned()
    }

    #[inline]
    fn write<E>(&self) -> Result<Write<'_, K, V>, Error<E>> {
        if reentry::held_by_me(self.addr()) {
            return Err(Error::Reentrant(Container::Dict));
        }
        let lock = self.lock.lock();
        if self.frozen.load(Ordering::Relaxed) {
            return Err(Error::Frozen(Container::Dict));
        }
        Ok(Write {
            store: self,
            lock: Some(lock),
            unlinked: Vec::new(),
        })
    }

    fn exclusive(&self) -> Option<Write<'_, K, V>> {
        (!reentry::held_by_me(self.addr())).then(|| Write {
            store: self,
            lock: Some(self.lock.lock()),
            unlinked: Vec::new(),
        })
    }

    fn iter(&self) -> Iter<'_, K, V> {
        Iter {
            store: self,
            front: Place {
                generation: u64::MAX,
                pos: 0,
                seq: 0,
            },
            back: Place {
                generation: u64::MAX,
                pos: 0,
                seq: self.next_seq.load(Ordering::Acquire),
            },
        }
    }

    fn freeze(&self) -> Result<(), Error> {
        if reentry::held_by_me(self.addr()) {
            return Err(Error::Reentrant(Container::Dict));
        }
        let _lock = self.lock.lock();
        self.frozen.store(true, Ordering::Release);
        Ok(())
    }

    fn lock_for_freeze(
        &self,
        timeout: std::time::Duration,
    ) -> Result<Option<crate::freeze::FreezeLock<'_>>, Error> {
        crate::freeze::FreezeLock::mutex(self.addr(), Container::Dict, &self.lock, timeout)
    }

    fn mark_frozen(&self) {
        self.frozen.store(true, Ordering::Release);
    }

    unsafe fn frozen_find<E>(
        &self,
        hash: u64,
        mut is_key: impl FnMut(&K) -> Result<bool, E>,
    ) -> Result<Option<&V>, E> {
        // Frozen: the current table and its words never change again (caller), so plain
        // references into them live as long as `&self`.
        let t = self.current();
        let tag = tag32(hash);
        let mut c = t.index.cursor(tag);
        while let Some(cand) = t.index.next(tag, &mut c, Ordering::Relaxed) {
            if is_key(t.key(cand.pos))? {
                // SAFETY: frozen: nobody writes the slot or drops its value while `&self` lives.
                return Ok(Some(unsafe {
                    V::Storage::frozen(&t.entry(cand.pos).value)
                }));
            }
        }
        Ok(None)
    }

    unsafe fn frozen_entry(&self, pos: usize) -> Option<(&K, &V)> {
        let t = self.current();
        t.is_live(pos).then(|| {
            // SAFETY: as in `frozen_find`.
            (t.key(pos), unsafe {
                V::Storage::frozen(&t.entry(pos).value)
            })
        })
    }

    unsafe fn frozen_used(&self) -> usize {
        self.current().used.load(Ordering::Acquire)
    }
}

impl<K, V> Drop for GilFreeStore<K, V> {
    fn drop(&mut self) {
        // `&mut self`: no reader or writer is left; the current table and everything in it are
        // ours. Tables retired earlier belong to the collector.
        let word = self.table.load(Ordering::Relaxed).expose_provenance() as u64;
        // SAFETY: the current table, owned, dropped once, by the destructor made for `K, V`
        // when the store was built.
        unsafe { (self.doom)(word) };
    }
}

/// Where one end of an [`Iter`] stands: the table generation its position belongs to, the
/// position, and the sequence number bounding it (front: the last yielded, back: the bound).
#[derive(Clone, Copy, Debug)]
struct Place {
    generation: u64,
    pos: usize,
    seq: u64,
}

/// A weakly consistent iterator over clones of a `GilFreeDict`'s entries, in insertion order
/// (double-ended: `rev()` is Python's `reversed`).
///
/// It pins only inside each step, so a long loop body never holds back memory reclamation, and
/// it never blocks writers and never fails. It yields every entry present from its creation to
/// the moment it is reached exactly once, never one inserted after its creation, and no entry
/// twice, across any number of concurrent rebuilds (see the module docs of the store).
pub struct Iter<'d, K, V> {
    store: &'d GilFreeStore<K, V>,
    front: Place,
    back: Place,
}

impl<K, V> Iter<'_, K, V> {
    /// Moves `place` onto table `t`: positions of another generation are found again by
    /// sequence number (front: the first entry after `seq`; back: the first at or after it).
    fn settle(t: &Table<K>, place: &mut Place, front: bool) {
        if place.generation != t.generation {
            place.pos = if front {
                t.lower_bound(place.seq + 1)
            } else {
                t.lower_bound(place.seq)
            };
            place.generation = t.generation;
        }
    }
}

impl<K: Clone, V: Storable + Clone> Iterator for Iter<'_, K, V> {
    type Item = (K, V);

    fn next(&mut self) -> Option<(K, V)> {
        let _guard = reclaim::pin();
        let t = self.store.current();
        Self::settle(t, &mut self.front, true);
        let used = t.used.load(Ordering::Acquire);
        while self.front.pos < used {
            let pos = self.front.pos;
            let meta = t.entry(pos).meta.load(Ordering::Acquire);
            let seq = meta >> 1;
            if seq >= self.back.seq {
                break;
            }
            self.front.pos += 1;
            if meta & REMOVED == 0 {
                self.front.seq = seq;
                let word = t.entry(pos).value.load(Ordering::Acquire);
                // SAFETY: pinned: the word stays alive until `_guard` drops (T4).
                let value = (*unsafe { V::Storage::borrow(word) }).clone();
                return Some((t.key(pos).clone(), value));
            }
        }
        // Ended: make every later call end at once.
        self.back.seq = self.front.seq;
        None
    }
}

impl<K: Clone, V: Storable + Clone> DoubleEndedIterator for Iter<'_, K, V> {
    fn next_back(&mut self) -> Option<(K, V)> {
        let _guard = reclaim::pin();
        let t = self.store.current();
        if self.back.generation == u64::MAX {
            self.back.generation = t.generation;
            self.back.pos = t.lower_bound(self.back.seq);
        }
        Self::settle(t, &mut self.back, false);
        while self.back.pos > 0 {
            let pos = self.back.pos - 1;
            let meta = t.entry(pos).meta.load(Ordering::Acquire);
            let seq = meta >> 1;
            if seq <= self.front.seq {
                break;
            }
            self.back.pos = pos;
            self.back.seq = seq;
            if meta & REMOVED == 0 {
                let word = t.entry(pos).value.load(Ordering::Acquire);
                // SAFETY: as in `next`.
                let value = (*unsafe { V::Storage::borrow(word) }).clone();
                return Some((t.key(pos).clone(), value));
            }
        }
        self.back.seq = self.front.seq;
        None
    }
}

impl<K, V> fmt::Debug for Iter<'_, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter")
            .field("front", &self.front)
            .field("back", &self.back)
            .finish_non_exhaustive()
    }
}
