//! [`GilFreeStore`]: the storage of `GilFreeDict` — readers take no lock and write no shared
//! cache line; writers serialize on the dict's lock.
//!
//! ## Layout
//!
//! A `Table` holds its entries in *buckets*, found through control bytes
//! (`dict::index`): a bucket is the key, inline, and the value's *word*
//! ([`crate::storage`]: the value itself for one-word handles, a box pointer otherwise). A
//! read loads one control word (small, cache-resident), then one bucket: for a large table,
//! one cache miss. Insertion order lives beside it: the *order* array lists, position by
//! position, the bucket each insertion went to and its sequence number (unique for the dict's
//! lifetime); and each bucket's hash tag is kept for rebuilds and for script `eq`.
//!
//! ## Invariants (lock released)
//!
//! - **T1** `table` points to the current table; only a lock holder replaces it (Release), and
//!   a replaced table is never written again and is retired after the lock is released.
//! - **T2** Buckets are never reused within a table: a bucket is filled once (key, value word,
//!   tag, its order position) before its control byte is published with Release, and once
//!   marked deleted it stays so. So a key is never written while the table lives; a value word
//!   changes only by overwrite (Release).
//! - **T3** Order positions are append-only: position `p < used` names a bucket filled before
//!   `used` was published with Release. Its entry is live iff that bucket's control byte says
//!   so (buckets are not reused, T2).
//! - **T4** A value word is retired (if its type owns anything) when it leaves the current
//!   table: overwritten or removed. A table is retired when it is replaced: a *moved* table
//!   (rebuilt into a new one, which took its live keys and value words bitwise) then drops only
//!   the keys of its removed entries; a *doomed* table (`clear`, the dict's drop) drops every
//!   key and every live value word.
//! - **T5** Each table has a generation number, unique and increasing within the dict.
//! - **T6** A table's probing mode (plain or spread, `index`) is fixed when it is built and
//!   read with its control words; a rebuild keeps a spread mode.
//!
//! ## Readers
//!
//! A reader pins (see `reclaim`), loads `table` (Acquire), probes with Acquire loads,
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

use crate::bias::{BiasGuard, BiasedMutex};
use crate::dict::index::{self, tag32, Ctrl, CtrlView, Cursor, Found, Verdict};
use crate::dict::store::{sealed, Counters, DictStore, FrozenTable, Section, Stamp, WriteSection};
use crate::reclaim::{self, Guard};
use crate::reentry;
use crate::storage::{Ref, Storable, Storage};
use crate::sync::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize};
use crate::sync::{NewLine, Ordering, WriteOnce};
use crate::{Container, Error};

/// One bucket: the key and the value's word.
#[repr(C)]
struct Bucket<K> {
    key: WriteOnce<K>,
    value: AtomicU64,
}

#[cfg(gilfree_loom)]
impl<K> crate::sync::Zeroed for Bucket<K> {
    fn zeroed() -> Self {
        Bucket {
            key: WriteOnce::empty(),
            value: AtomicU64::new(0),
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
///
/// The array pointers that every lookup reads (control bytes, buckets, tags) and the counts
/// that every insert and remove writes are on separate cache lines (two lines in all, the
/// order arrays' pointers beside the counts): on one line, each write would take the line
/// from the other cores, and their next lookups would miss on it.
#[repr(C)]
pub(crate) struct Table<K> {
    ctrl: Ctrl,
    buckets: Box<[Bucket<K>]>,
    /// `tags[bucket]`: the hash tag of the key in `bucket` (written before it is published).
    tags: Box<[AtomicU32]>,
    generation: u64,
    _counts: NewLine,
    /// `order_bucket[p]`: the bucket of the `p`-th insertion into this table (T3).
    order_bucket: Box<[AtomicU32]>,
    /// `order_seq[p]`: its dict-wide sequence number.
    order_seq: Box<[AtomicU64]>,
    /// Positions handed out.
    used: AtomicUsize,
    /// Live entries.
    live: AtomicUsize,
    /// One past the last live position (writers only; `popitem`'s starting point).
    tail: AtomicUsize,
}

impl<K> Table<K> {
    /// An empty table; `spread`: probing with spread tags (`index`).
    fn new(capacity: usize, generation: u64, spread: bool) -> Table<K> {
        let positions = index::positions_for(capacity);
        let buckets = index::buckets_for(positions);
        Table {
            ctrl: Ctrl::new(buckets, spread),
            // SAFETY (all four): all-zero atomics and empty key cells are valid values.
            buckets: unsafe { crate::sync::zeroed_slice(buckets) },
            tags: unsafe { crate::sync::zeroed_slice(buckets) },
            generation,
            _counts: NewLine,
            order_bucket: unsafe { crate::sync::zeroed_slice(positions) },
            order_seq: unsafe { crate::sync::zeroed_slice(positions) },
            used: AtomicUsize::new(0),
            live: AtomicUsize::new(0),
            tail: AtomicUsize::new(0),
        }
    }

    /// Order positions (inserts before the next rebuild).
    #[inline]
    fn cap(&self) -> usize {
        self.order_bucket.len()
    }

    /// Bytes of the table's arrays (for reclamation's weighing).
    fn bytes(&self) -> usize {
        self.buckets.len() * (std::mem::size_of::<Bucket<K>>() + 4 + 1) + self.cap() * 12
    }

    #[inline(always)]
    fn bucket(&self, b: usize) -> &Bucket<K> {
        debug_assert!(b < self.buckets.len());
        // SAFETY: bucket numbers come from the control bytes (`b < groups * GROUP ==
        // buckets.len()`), from the first bucket of a group (`Ctrl::prefetch_start`, the
        // same bound), or from the order array, which only names filled buckets (T3).
        unsafe { self.buckets.get_unchecked(b) }
    }

    /// The key in filled bucket `b`.
    #[inline(always)]
    fn key(&self, b: usize) -> &K {
        // SAFETY: written before the bucket was published (T2), read after an Acquire of its
        // control byte or of `used`, and dropped only when the table is freed, after every
        // borrow of it.
        unsafe { self.bucket(b).key.get() }
    }

    /// The hash tag of filled bucket `b`.
    #[inline(always)]
    fn tag(&self, b: usize) -> u32 {
        self.tags[b].load(Ordering::Acquire)
    }

    /// The bucket at position `p < used` if its entry is live (Acquire: a reader may race
    /// with its removal).
    #[inline]
    fn at(&self, p: usize) -> Option<usize> {
        let b = self.order_bucket[p].load(Ordering::Acquire) as usize;
        self.ctrl.is_full(b, Ordering::Acquire).then_some(b)
    }

    /// The next candidate of a step-by-step probe whose full tag matches.
    #[inline]
    fn next(&self, hash: u64, cursor: &mut Cursor, order: Ordering) -> Option<usize> {
        self.ctrl
            .next_with_tag(tag32(hash), cursor, order, |b| self.tag(b))
    }

    /// The fast-path probe (see `Section::find`).
    #[inline(always)]
    fn find<E>(
        &self,
        hash: u64,
        order: Ordering,
        mut judge: impl FnMut(&K) -> Result<Verdict, E>,
    ) -> Result<Found, E> {
        self.ctrl.find(tag32(hash), order, |b| judge(self.key(b)))
    }

    /// The first position whose entry's sequence number is at least `seq` (positions are in
    /// sequence order: appended in insertion order, and rebuilds keep the order).
    fn lower_bound(&self, seq: u64) -> usize {
        let (mut lo, mut hi) = (0, self.used.load(Ordering::Acquire));
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.order_seq[mid].load(Ordering::Acquire) < seq {
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
            let removed = (0..used)
                .map(|p| table.order_bucket[p].load(Ordering::Relaxed) as usize)
                .filter(|&b| !table.ctrl.is_full(b, Ordering::Relaxed));
            // SAFETY: the keys of removed entries were not moved (T4) and are dropped once.
            crate::cleanup::drop_all(removed.map(|b| unsafe { table.bucket(b).key.take() }));
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
        let filled = || (0..used).map(|p| table.order_bucket[p].load(Ordering::Relaxed) as usize);
        if V::Storage::OWNS {
            let words = filled()
                .filter(|&b| table.ctrl.is_full(b, Ordering::Relaxed))
                .map(|b| Word::<V>(table.bucket(b).value.load(Ordering::Relaxed), PhantomData));
            crate::cleanup::drop_all(words);
        }
        if std::mem::needs_drop::<K>() {
            // SAFETY: every filled bucket's key is owned here and dropped once.
            crate::cleanup::drop_all(filled().map(|b| unsafe { table.bucket(b).key.take() }));
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
///
/// What every lookup reads (the table pointer) and what every write writes (the lock, the
/// counters) are on separate cache lines, as in the table header. So the store, and a `GilFreeDict`,
/// are 64-byte aligned: to embed one in memory that a C allocator hands out (a Python
/// object's is 16-byte aligned), box it.
#[repr(C)]
pub struct GilFreeStore<K, V> {
    table: AtomicPtr<Table<K>>,
    frozen: AtomicBool,
    /// Drops a table with everything in it (made where `V: Storable` is known).
    doom: unsafe fn(u64),
    _values: PhantomData<V>,
    _writers: NewLine,
    lock: BiasedMutex,
    counters: Counters,
    /// The next entry's sequence number (writers only).
    next_seq: AtomicU64,
}

impl<K, V> fmt::Debug for GilFreeStore<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GilFreeStore").finish_non_exhaustive()
    }
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
        self.counters
            .bump(table.live.load(Ordering::Relaxed), keys_changed);
    }

    /// A pinned read session (for [`Pinned`](crate::dict::Pinned)).
    #[inline(always)]
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

impl<K, V> fmt::Debug for Read<'_, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Read").finish_non_exhaustive()
    }
}

impl<K, V: Storable> Read<'_, K, V> {
    /// The value in bucket `b`, borrowed for the section.
    #[inline(always)]
    pub(crate) fn value(&self, b: usize) -> Ref<'_, V> {
        let word = self.table.bucket(b).value.load(Ordering::Acquire);
        // SAFETY: a value word loaded while pinned stays alive until the section ends (T4).
        unsafe { V::Storage::borrow(word) }
    }
}

impl<K, V: Storable> Section<K, V> for Read<'_, K, V> {
    #[inline(always)]
    fn find<E>(&self, hash: u64, judge: impl FnMut(&K) -> Result<Verdict, E>) -> Result<Found, E> {
        self.table.find(hash, Ordering::Acquire, judge)
    }

    #[inline]
    fn cursor(&self, hash: u64) -> Cursor {
        self.table.ctrl.cursor(tag32(hash))
    }

    #[inline]
    fn next(&self, hash: u64, cursor: &mut Cursor) -> Option<usize> {
        self.table.next(hash, cursor, Ordering::Acquire)
    }

    #[inline(always)]
    fn key(&self, b: usize) -> &K {
        self.table.key(b)
    }

    #[inline(always)]
    fn with_value<R>(&self, b: usize, f: impl FnOnce(&V) -> R) -> R {
        f(&self.value(b))
    }

    #[inline(always)]
    fn clone_value(&self, b: usize) -> V
    where
        V: Clone,
    {
        (*self.value(b)).clone()
    }

    #[inline]
    fn hash(&self, b: usize) -> u64 {
        u64::from(self.table.tag(b))
    }

    #[inline]
    fn used(&self) -> usize {
        self.table.used.load(Ordering::Acquire)
    }

    #[inline]
    fn at(&self, p: usize) -> Option<usize> {
        self.table.at(p)
    }
}

/// A write section: the dict's lock (no pin: nothing the section reads can be retired by
/// anyone else while it holds the lock, T1/T4).
pub struct Write<'a, K, V: Storable> {
    store: &'a GilFreeStore<K, V>,
    lock: Option<BiasGuard<'a>>,
    /// Tables this section unlinked, retired when it ends (`(address, doomed)`).
    unlinked: Vec<(*mut Table<K>, bool)>,
}

impl<K, V: Storable> fmt::Debug for Write<'_, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Write").finish_non_exhaustive()
    }
}

impl<K, V: Storable> Write<'_, K, V> {
    #[inline(always)]
    fn table(&self) -> &Table<K> {
        self.store.current()
    }

    /// Publishes a rebuilt table with room for `extra` more entries, spread (`index`) if the
    /// old one was or if `spread`; the old one is retired when the section ends.
    #[cold]
    #[inline(never)]
    fn rebuild(&mut self, extra: usize, spread: bool) {
        let old = self.table();
        let (live, used) = (
            old.live.load(Ordering::Relaxed),
            old.used.load(Ordering::Relaxed),
        );
        let positions = index::grown(live, extra, index::churning(used, live));
        let fresh = Table::new(positions, old.generation + 1, spread || old.ctrl.spread());
        // Without removed positions every position is live: no control byte to check.
        let holes = used != live;
        // Two passes, so that the old table's buckets are read in sequence (a walk in insertion
        // order would visit them at random, as many cache misses as entries):
        //
        // 1. in insertion order, over the order array: each live entry's new position (its rank
        //    among the live entries), kept by old bucket in `rank`, and its sequence number;
        // 2. in bucket order: each live entry moves to the fresh table, at its new position.
        //
        // The scratch array costs 4 bytes per old bucket while the rebuild runs.
        let mut rank: Vec<u32> = Vec::with_capacity(old.buckets.len());
        let rank = &mut rank.spare_capacity_mut()[..old.buckets.len()];
        let mut n = 0;
        for p in 0..used {
            let b = old.order_bucket[p].load(Ordering::Relaxed) as usize;
            if holes {
                // The control words are read at random: start loading one a few positions ahead.
                if let Some(ahead) = old.order_bucket.get(p + 2 * index::REBUILD_PREFETCH) {
                    old.ctrl
                        .prefetch_bucket(ahead.load(Ordering::Relaxed) as usize);
                }
                if !old.ctrl.is_full(b, Ordering::Relaxed) {
                    continue;
                }
            }
            rank[b].write(n as u32);
            fresh.order_seq[n].store(old.order_seq[p].load(Ordering::Relaxed), Ordering::Relaxed);
            n += 1;
        }
        let mut moved = 0;
        for b in old.ctrl.full_buckets() {
            // The fresh table is written at random: start loading the control word and bucket
            // where an entry a few buckets ahead will go.
            let a = b + index::REBUILD_PREFETCH;
            if a < old.buckets.len() && old.ctrl.is_full(a, Ordering::Relaxed) {
                let first = fresh
                    .ctrl
                    .prefetch_start(old.tags[a].load(Ordering::Relaxed));
                crate::sync::prefetch(fresh.bucket(first));
                crate::sync::prefetch(&fresh.tags[first]);
            }
            // SAFETY: a full bucket holds a live entry (T2), and the order array names it at
            // one position below `used` (T3), which pass 1 visited and wrote `rank[b]` for.
            let to_position = unsafe { rank[b].assume_init_read() } as usize;
            let tag = old.tags[b].load(Ordering::Relaxed);
            let (to, _) = fresh.ctrl.free_bucket(tag, false);
            let (from, into) = (old.bucket(b), fresh.bucket(to));
            // SAFETY: the fresh table is private; the key moves bitwise (the old table keeps
            // its copy for its readers and will not drop it, T4).
            unsafe { into.key.write(from.key.take()) };
            into.value
                .store(from.value.load(Ordering::Relaxed), Ordering::Relaxed);
            fresh.tags[to].store(tag, Ordering::Relaxed);
            fresh.ctrl.occupy(to, tag, Ordering::Relaxed);
            fresh.order_bucket[to_position].store(to as u32, Ordering::Relaxed);
            moved += 1;
        }
        debug_assert_eq!(moved, n, "every live entry moves once");
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

    /// The value word in bucket `b` (the lock is held: it cannot change under us).
    #[inline]
    fn word(&self, b: usize) -> u64 {
        self.table().bucket(b).value.load(Ordering::Relaxed)
    }

    /// Gives up a word that left the table (T4): returns the value, retiring the stored word
    /// if it owns something a reader may still be looking at.
    #[inline]
    fn release_word(&self, word: u64) -> V
    where
        V: Clone,
    {
        // SAFETY: unlinked from the current table just now by this section; used again only
        // if not taken back.
        if let Some(value) = unsafe { reclaim::take_back(word) } {
            return value;
        }
        // SAFETY: the word was in the table until now; the lock keeps it alive here.
        let out = (*unsafe { V::Storage::borrow(word) }).clone();
        // SAFETY: unlinked from the current table just now, retired once (T4).
        unsafe { reclaim::retire(word, V::Storage::drop_word) };
        out
    }

    /// Unlinks the entry in bucket `b` (marked deleted, T2); the value word is the caller's.
    fn unlink(&mut self, b: usize) -> u64 {
        let table = self.table();
        let _ = table.ctrl.vacate(b, false, Ordering::Release);
        table
            .live
            .store(table.live.load(Ordering::Relaxed) - 1, Ordering::Relaxed);
        self.store.bump(table, true);
        table.bucket(b).value.load(Ordering::Relaxed)
    }
}

impl<K, V: Storable> Section<K, V> for Write<'_, K, V> {
    #[inline(always)]
    fn find<E>(&self, hash: u64, judge: impl FnMut(&K) -> Result<Verdict, E>) -> Result<Found, E> {
        self.table().find(hash, Ordering::Relaxed, judge)
    }

    #[inline]
    fn cursor(&self, hash: u64) -> Cursor {
        self.table().ctrl.cursor(tag32(hash))
    }

    #[inline]
    fn next(&self, hash: u64, cursor: &mut Cursor) -> Option<usize> {
        self.table().next(hash, cursor, Ordering::Relaxed)
    }

    #[inline(always)]
    fn key(&self, b: usize) -> &K {
        self.table().key(b)
    }

    #[inline]
    fn with_value<R>(&self, b: usize, f: impl FnOnce(&V) -> R) -> R {
        // SAFETY: the word stays in the table while the lock is held (only lock holders
        // replace it), so it is alive for the borrow.
        f(&*unsafe { V::Storage::borrow(self.word(b)) })
    }

    #[inline]
    fn clone_value(&self, b: usize) -> V
    where
        V: Clone,
    {
        self.with_value(b, V::clone)
    }

    #[inline]
    fn hash(&self, b: usize) -> u64 {
        u64::from(self.table().tag(b))
    }

    #[inline]
    fn used(&self) -> usize {
        self.table().used.load(Ordering::Relaxed)
    }

    #[inline]
    fn at(&self, p: usize) -> Option<usize> {
        self.table().at(p)
    }
}

impl<K, V: Storable> WriteSection<K, V> for Write<'_, K, V> {
    #[inline]
    fn value_ref(&self, b: usize) -> Ref<'_, V> {
        // SAFETY: only lock holders replace a word, and this section's writes need `&mut self`,
        // so the word stays alive while the borrow lives.
        unsafe { V::Storage::borrow(self.word(b)) }
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
        if t.generation != stamp.generation
            || found.is_some_and(|b| !t.ctrl.is_full(b, Ordering::Relaxed))
        {
            return false;
        }
        // No entry with this tag inserted since (buckets are not reused, T2, so a found
        // bucket still full still holds the key that was compared).
        let tag = tag32(hash);
        (stamp.used..t.used.load(Ordering::Relaxed)).all(|p| {
            t.tags[t.order_bucket[p].load(Ordering::Relaxed) as usize].load(Ordering::Relaxed)
                != tag
        })
    }

    #[inline]
    fn insert(&mut self, hash: u64, key: K, value: V) {
        let tag = tag32(hash);
        if self.table().used.load(Ordering::Relaxed) == self.table().cap() {
            self.rebuild(1, false);
        }
        let table = self.table();
        let (b, far) = table.ctrl.free_bucket(tag, false);
        // A chain this long means structured tags: the table is rebuilt spread, once.
        let respread = far && !table.ctrl.spread();
        let p = table.used.load(Ordering::Relaxed);
        let seq = self.store.next_seq.load(Ordering::Relaxed);
        let bucket = table.bucket(b);
        // SAFETY: bucket `b` is empty: never filled in this table (T2), so its key cell is
        // empty and no reader can reach it before the Release stores below.
        unsafe { bucket.key.write(key) };
        bucket
            .value
            .store(V::Storage::into_word(value), Ordering::Relaxed);
        table.tags[b].store(tag, Ordering::Relaxed);
        table.order_bucket[p].store(b as u32, Ordering::Relaxed);
        table.order_seq[p].store(seq, Ordering::Relaxed);
        // Release (all three), in this order: a reader that sees the control byte sees the
        // bucket; one that sees the position sees the bucket in use; an iterator whose bound
        // (`next_seq`) covers this entry sees both.
        table.ctrl.occupy(b, tag, Ordering::Release);
        table.used.store(p + 1, Ordering::Release);
        self.store.next_seq.store(seq + 1, Ordering::Release);
        table
            .live
            .store(table.live.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        table.tail.store(p + 1, Ordering::Relaxed);
        if respread {
            // Same room as before (a `with_capacity` or `reserve` stays honoured), and the
            // bump below comes after the rebuild, which may have moved order positions.
            let room = table.cap() - table.live.load(Ordering::Relaxed);
            self.rebuild(room, true);
        }
        self.store.bump(self.table(), true);
    }

    fn replace(&mut self, b: usize, value: V) -> V
    where
        V: Clone,
    {
        let table = self.table();
        let slot = &table.bucket(b).value;
        let old = slot.load(Ordering::Relaxed);
        // Release: a reader that loads the new word sees the value it designates.
        slot.store(V::Storage::into_word(value), Ordering::Release);
        self.store.bump(table, false);
        self.release_word(old)
    }

    fn remove(&mut self, b: usize) -> (K, V)
    where
        K: Clone,
        V: Clone,
    {
        // The key stays in place for readers (T2); the caller gets a clone.
        let key = self.key(b).clone();
        let word = self.unlink(b);
        (key, self.release_word(word))
    }

    fn discard(&mut self, b: usize) {
        let word = self.unlink(b);
        if V::Storage::OWNS {
            // SAFETY: unlinked just now, retired once (T4).
            unsafe { reclaim::retire(word, V::Storage::drop_word) };
        }
    }

    fn last(&mut self) -> Option<usize> {
        let table = self.table();
        let mut tail = table.tail.load(Ordering::Relaxed);
        let found = loop {
            if tail == 0 {
                break None;
            }
            if let Some(b) = table.at(tail - 1) {
                break Some(b);
            }
            tail -= 1;
        };
        table.tail.store(tail, Ordering::Relaxed);
        found
    }

    fn clear(&mut self) {
        let old = self.store.table.load(Ordering::Relaxed);
        let generation = self.table().generation + 1;
        self.store.table.store(
            Box::into_raw(Box::new(Table::new(
                0,
                generation,
                self.table().ctrl.spread(),
            ))),
            Ordering::Release,
        );
        self.unlinked.push((old, true));
        let fresh = self.table();
        self.store.bump(fresh, true);
    }

    fn reserve(&mut self, additional: usize) -> Result<(), Error> {
        let t = self.table();
        let used = t.used.load(Ordering::Relaxed);
        index::room_for(t.live.load(Ordering::Relaxed), additional)?;
        if used.saturating_add(additional) > t.cap() {
            let holes = used != t.live.load(Ordering::Relaxed);
            self.rebuild(additional, false);
            if holes {
                // The rebuild closed the holes: order positions moved, which a checked
                // iterator must learn (as if keys changed).
                self.store.bump(self.table(), true);
            }
        }
        Ok(())
    }
}

impl<K, V: Storable> Drop for Write<'_, K, V> {
    #[inline]
    fn drop(&mut self) {
        drop(self.lock.take());
        if !self.unlinked.is_empty() {
            self.retire_tables();
        }
        reclaim::after_write();
    }
}

impl<K, V: Storable> Write<'_, K, V> {
    /// Retires the tables this section unlinked (the lock is released already).
    #[cold]
    fn retire_tables(&mut self) {
        for (table, doomed) in self.unlinked.drain(..) {
            let word = table.expose_provenance() as u64;
            // SAFETY: unlinked (a newer table is published, T1), not freed while the lock was
            // held; reading its size is a read of a live table.
            let weight = reclaim::weight_of(unsafe { (*table).bytes() });
            // SAFETY: unlinked and retired once, here, after the lock is released.
            unsafe {
                if doomed {
                    reclaim::retire_weighted(word, drop_doomed::<K, V>, weight);
                } else {
                    reclaim::retire_weighted(word, drop_moved::<K>, weight);
                }
            }
        }
        // The next `after_write` collects when enough (weighed) garbage is pending: old
        // tables are freed promptly and memory stays bounded under resize churn.
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
    type Frozen<'a> = Frozen<'a, K, V>;

    fn with_capacity(capacity: usize) -> Self {
        GilFreeStore {
            table: AtomicPtr::new(Box::into_raw(Box::new(Table::new(capacity, 0, false)))),
            frozen: AtomicBool::new(false),
            doom: drop_doomed::<K, V>,
            _values: PhantomData,
            _writers: NewLine,
            lock: BiasedMutex::new(),
            counters: Counters::new(),
            next_seq: AtomicU64::new(1),
        }
    }

    #[inline(always)]
    fn len(&self) -> usize {
        self.counters.len()
    }

    fn capacity(&self) -> usize {
        let _guard = reclaim::pin();
        let t = self.current();
        t.cap() - t.used.load(Ordering::Acquire) + t.live.load(Ordering::Acquire)
    }

    #[inline(always)]
    fn version(&self) -> u64 {
        self.counters.version()
    }

    #[inline]
    fn keys_version(&self) -> u64 {
        self.counters.keys_version()
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
        let lock = self
            .lock
            .lock_for_write(Container::Dict, self.addr(), &self.frozen)?;
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

    unsafe fn frozen(&self) -> Frozen<'_, K, V> {
        let table = self.current();
        Frozen {
            ctrl: table.ctrl.view(),
            buckets: &table.buckets,
            table,
            _v: PhantomData,
        }
    }
}

/// The current table of a frozen store ([`DictStore::frozen`]): the control words and the
/// bucket array are copied out of the table, so that a lookup's first loads are the control
/// word and the bucket (as for a `HashMap` read through `&`), not the store's table pointer
/// and the table's fields.
pub struct Frozen<'a, K, V> {
    ctrl: CtrlView<'a>,
    buckets: &'a [Bucket<K>],
    table: &'a Table<K>,
    _v: PhantomData<fn() -> V>,
}

impl<K, V> Clone for Frozen<'_, K, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K, V> Copy for Frozen<'_, K, V> {}

impl<K, V> fmt::Debug for Frozen<'_, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frozen").finish_non_exhaustive()
    }
}

impl<'a, K: 'a, V: Storable + 'a> FrozenTable<'a, K, V> for Frozen<'a, K, V> {
    #[inline(always)]
    fn find<E>(
        self,
        hash: u64,
        mut quick: impl FnMut(&'a K) -> Result<Verdict, E>,
        mut script: impl FnMut(&'a K) -> Result<bool, E>,
    ) -> Result<Option<&'a V>, E> {
        // SAFETY (the bucket): a bucket number from the control bytes is below
        // `groups * GROUP == buckets.len()`.
        let bucket = |b: usize| unsafe { self.buckets.get_unchecked(b) };
        let tag = tag32(hash);
        let found = self.ctrl.find_where(tag, Ordering::Relaxed, |b| {
            // SAFETY: a full bucket's key was written before its control byte was published
            // (T2); frozen (`DictStore::frozen`'s contract): it is dropped only with the
            // store, after `'a`.
            let key = unsafe { bucket(b).key.get() };
            quick(key)?.or_script(|| self.table.tag(b) == tag, || script(key))
        })?;
        // SAFETY: frozen: nobody writes the word or drops its value during `'a`.
        Ok(found.map(|b| unsafe { V::Storage::frozen(&bucket(b).value) }))
    }

    fn entry(self, pos: usize) -> Option<(&'a K, &'a V)> {
        let t = self.table;
        t.at(pos).map(|b| {
            // SAFETY: as in `find`.
            (t.key(b), unsafe { V::Storage::frozen(&t.bucket(b).value) })
        })
    }

    fn used(self) -> usize {
        self.table.used.load(Ordering::Acquire)
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

    /// The entry at live position `p` of `t`, cloned while pinned.
    fn clone_at(t: &Table<K>, b: usize) -> (K, V)
    where
        K: Clone,
        V: Storable + Clone,
    {
        let word = t.bucket(b).value.load(Ordering::Acquire);
        // SAFETY: the caller is pinned: the word stays alive until it unpins (T4).
        let value = (*unsafe { V::Storage::borrow(word) }).clone();
        (t.key(b).clone(), value)
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
            let p = self.front.pos;
            let seq = t.order_seq[p].load(Ordering::Acquire);
            if seq >= self.back.seq {
                break;
            }
            self.front.pos += 1;
            if let Some(b) = t.at(p) {
                self.front.seq = seq;
                return Some(Self::clone_at(t, b));
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
            let p = self.back.pos - 1;
            let seq = t.order_seq[p].load(Ordering::Acquire);
            if seq <= self.front.seq {
                break;
            }
            self.back.pos = p;
            self.back.seq = seq;
            if let Some(b) = t.at(p) {
                return Some(Self::clone_at(t, b));
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

#[cfg(all(test, not(gilfree_loom)))]
mod tests {
    use super::*;
    use std::mem::{align_of, offset_of};

    /// What lookups read and what writes write sit on different cache lines (see `Table`
    /// and `GilFreeStore`): a reordering of the fields would put them back on one.
    #[test]
    fn lookup_fields_and_write_fields_are_on_separate_lines() {
        let line = |offset: usize| offset / 64;
        assert!(align_of::<Table<u64>>() >= 64 && align_of::<GilFreeStore<u64, u64>>() >= 64);
        for read in [
            offset_of!(Table<u64>, ctrl),
            offset_of!(Table<u64>, buckets),
        ] {
            for written in [
                offset_of!(Table<u64>, used),
                offset_of!(Table<u64>, live),
                offset_of!(Table<u64>, tail),
            ] {
                assert_ne!(line(read), line(written), "Table: {read} and {written}");
            }
        }
        let table = offset_of!(GilFreeStore<u64, u64>, table);
        for written in [
            offset_of!(GilFreeStore<u64, u64>, lock),
            offset_of!(GilFreeStore<u64, u64>, counters),
            offset_of!(GilFreeStore<u64, u64>, next_seq),
        ] {
            assert_ne!(
                line(table),
                line(written),
                "GilFreeStore: {table} and {written}"
            );
        }
        // The lock is more than a word: its last byte must be past the readers' line too.
        assert!(offset_of!(GilFreeStore<u64, u64>, lock) >= 64);
    }

    impl<S> crate::dict::index::tests::TableMode for crate::dict::Dict<u64, u64, S> {
        fn spread(&self) -> bool {
            self.store.current().ctrl.spread()
        }
        fn positions(&self) -> usize {
            self.store.current().cap()
        }
    }

    /// The spread-mode scenario (`index`) on the GIL-free store, where the respreading insert
    /// also closes the order's holes.
    #[test]
    fn the_spread_mode_is_kept_by_every_later_table() {
        crate::dict::index::tests::spread_mode_is_kept::<GilFreeStore<u64, u64>>(|_| {});
    }
}
