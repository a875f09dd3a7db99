//! [`LockedStore`]: the storage of `LockedDict` — one lock for readers and writers, and an
//! in-place compact table (no lock-free readers, so no reclamation and no copies).
//!
//! ## Layout
//!
//! The same shape as the GIL-free table: entries `(key, value)` inline in buckets found through
//! control bytes (`dict::index`), and insertion order in an order array of bucket
//! numbers. With no lock-free reader to protect, buckets are reused: an insert takes the first
//! deleted or empty bucket of its chain, a removal may empty its bucket, an overwrite writes
//! the value in place, and a removed entry is moved out at once. When the order array is full
//! the table is rebuilt (compacted, or grown).
//!
//! ## Invariants and protocol
//!
//! - **L1** The table is reached only with the lock held by this thread: through a section
//!   that owns the guard, or re-entrantly from user code that runs under a section of this
//!   thread (registered in `reentry`).
//! - **L2** A `&mut` to the table exists only inside one write-section method call, and never
//!   while user code runs; user code and re-entrant readers only ever see `&` to it.
//! - **L3** A re-entrant read never lends a reference into the table to user code (it lends a
//!   clone): the outer user code may hold a `DictView` whose next write moves the entries.
//! - **L4** Values leave the lock before they die: removed entries are moved out to the caller,
//!   or into the section's graveyard, dropped after the lock is released.
//! - **L5** Order positions are append-only within a *generation*; a rebuild or `clear` starts
//!   a new one (for the core's validation after script `eq`). A bucket's entry was inserted at
//!   position `pos_of[bucket]`, and `order[pos]` names its bucket until it is removed. When
//!   the order array fills up with removed positions, its holes are closed in place
//!   (`compact_order`), which starts a new generation too.
//! - **L6** `empty` counts the buckets whose control byte is empty. Buckets are reused, so the
//!   order array no longer bounds how many are in use or deleted; an insert that would leave
//!   an eighth of them or fewer empty rebuilds the table first, which keeps every probe chain
//!   finite (a chain ends at a group with an empty bucket).

use std::cell::UnsafeCell;
use std::mem::{self, MaybeUninit};

use crate::bias::{BiasGuard, BiasedMutex};
use crate::dict::index::{self, tag32, Ctrl, CtrlView, Cursor, Found, Verdict};
use crate::dict::store::{sealed, Counters, DictStore, FrozenTable, Section, Stamp, WriteSection};
use crate::reentry;
use crate::storage::Ref;
use crate::sync::{AtomicBool, Ordering};
use crate::{Container, Error};

/// `order[pos]` of a removed entry.
const GONE: u32 = u32::MAX;

/// The table behind the lock (see the module docs).
struct Compact<K, V> {
    ctrl: Ctrl,
    /// `buckets[b]` is initialized iff `ctrl` says `b` is full.
    buckets: Box<[MaybeUninit<(K, V)>]>,
    /// Per bucket: the key's hash tag, and the order position of its entry.
    tags: Box<[u32]>,
    pos_of: Box<[u32]>,
    /// Per order position: the bucket, or [`GONE`]; `order.len()` positions are handed out.
    order: Vec<u32>,
    live: usize,
    /// Buckets whose control byte is empty (L6).
    empty: usize,
    /// One past the last live position (`popitem`'s starting point).
    tail: usize,
    generation: u64,
}

impl<K, V> Compact<K, V> {
    /// An empty table; `spread`: probing with spread tags (`index`).
    fn new(capacity: usize, generation: u64, spread: bool) -> Self {
        let positions = index::positions_for(capacity);
        let buckets = index::buckets_for(positions);
        Compact {
            ctrl: Ctrl::new(buckets, spread),
            buckets: (0..buckets).map(|_| MaybeUninit::uninit()).collect(),
            tags: vec![0; buckets].into_boxed_slice(),
            pos_of: vec![0; buckets].into_boxed_slice(),
            order: Vec::with_capacity(positions),
            live: 0,
            empty: buckets,
            tail: 0,
            generation,
        }
    }

    /// Order positions (inserts before the next rebuild).
    #[inline]
    fn cap(&self) -> usize {
        self.order.capacity()
    }

    #[inline(always)]
    fn is_full(&self, b: usize) -> bool {
        self.ctrl.is_full(b, Ordering::Relaxed)
    }

    #[inline(always)]
    fn entry(&self, b: usize) -> &(K, V) {
        debug_assert!(self.is_full(b));
        // SAFETY: callers pass full buckets (probe candidates, or the bucket of a live order
        // position): initialized.
        unsafe { self.buckets.get_unchecked(b).assume_init_ref() }
    }

    #[inline(always)]
    fn entry_mut(&mut self, b: usize) -> &mut (K, V) {
        debug_assert!(self.is_full(b));
        // SAFETY: as `entry`.
        unsafe { self.buckets.get_unchecked_mut(b).assume_init_mut() }
    }

    /// The bucket at position `p` if its entry is live.
    #[inline]
    fn at(&self, p: usize) -> Option<usize> {
        let b = self.order[p];
        (b != GONE).then_some(b as usize)
    }

    /// The next candidate of a step-by-step probe whose full tag matches.
    #[inline]
    fn next(&self, hash: u64, cursor: &mut Cursor) -> Option<usize> {
        self.ctrl
            .next_with_tag(tag32(hash), cursor, Ordering::Relaxed, |b| self.tags[b])
    }

    /// The fast-path probe (see `Section::find`).
    #[inline(always)]
    fn find<E>(
        &self,
        hash: u64,
        mut judge: impl FnMut(&K) -> Result<Verdict, E>,
    ) -> Result<Found, E> {
        self.ctrl
            .find(tag32(hash), Ordering::Relaxed, |b| judge(&self.entry(b).0))
    }

    /// Rebuilds the table with the live entries only, in order, with room for `positions`;
    /// spread (`index`) if it was or if `spread`.
    fn rebuild(&mut self, positions: usize, spread: bool) {
        let spread = spread || self.ctrl.spread();
        let mut fresh = Compact::new(positions, self.generation + 1, spread);
        for p in 0..self.order.len() {
            // Insertion order visits the old buckets at random: load them ahead, and the fresh
            // control word of an entry half as far ahead. (The GIL-free store reads its old
            // buckets in bucket order instead; this store rebuilds only when it grows or its
            // buckets run out of empties, as churn reuses them.)
            const AHEAD: usize = index::REBUILD_PREFETCH;
            if let Some(a) = self.order.get(p + 2 * AHEAD).filter(|&&a| a != GONE) {
                crate::sync::prefetch(&self.buckets[*a as usize]);
                crate::sync::prefetch(&self.tags[*a as usize]);
            }
            if let Some(a) = self.order.get(p + AHEAD).filter(|&&a| a != GONE) {
                let first = fresh.ctrl.prefetch_start(self.tags[*a as usize]);
                crate::sync::prefetch(&fresh.buckets[first]);
                crate::sync::prefetch(&fresh.tags[first]);
            }
            if let Some(b) = self.at(p) {
                let tag = self.tags[b];
                // SAFETY: live bucket, moved out once (the old table is discarded below
                // without dropping its buckets).
                let entry = unsafe { self.buckets[b].assume_init_read() };
                let _ = fresh.push(tag, entry);
            }
        }
        // The old buckets were moved out; the arrays hold nothing to drop.
        *self = fresh;
    }

    /// Whether an insert needs [`make_room`](Self::make_room) first: the order array is full,
    /// or the insert could leave an eighth of the buckets or fewer empty (L6).
    #[inline(always)]
    fn needs_room(&self) -> bool {
        self.order.len() == self.cap() || self.empty <= self.ctrl.buckets() / 8 + 1
    }

    /// Makes room for one insert. A table whose order array filled up with removed positions
    /// while its buckets still have empties (churn at a steady size: buckets are reused, so
    /// they do not run out) closes the holes of the order array in place (`compact_order`); any
    /// other is rebuilt at twice its live entries (`index::grown`).
    #[cold]
    #[inline(never)]
    fn make_room(&mut self) {
        let used = self.order.len();
        let churning = index::churning(used, self.live);
        if used == self.cap() && churning && self.empty > self.ctrl.buckets() / 8 + 1 {
            self.compact_order();
        } else {
            self.rebuild(index::grown(self.live, 1, false), false);
        }
    }

    /// Closes the holes of the order array in place: live positions keep their order, buckets
    /// stay where they are; a new generation (L5).
    fn compact_order(&mut self) {
        let mut n = 0;
        for p in 0..self.order.len() {
            let b = self.order[p];
            if b != GONE {
                self.order[n] = b;
                self.pos_of[b as usize] = n as u32;
                n += 1;
            }
        }
        debug_assert_eq!(n, self.live);
        self.order.truncate(n);
        self.tail = n;
        self.generation += 1;
    }

    /// Appends an entry whose key is absent (room is checked by the caller). Returns whether
    /// its chain was longer than `index::FAR` groups.
    #[inline]
    fn push(&mut self, tag: u32, entry: (K, V)) -> bool {
        let (b, far) = self.ctrl.free_bucket(tag, true);
        if self.ctrl.is_empty(b) {
            self.empty -= 1;
        }
        let p = self.order.len();
        self.buckets[b].write(entry);
        self.tags[b] = tag;
        self.pos_of[b] = p as u32;
        self.ctrl.occupy(b, tag, Ordering::Relaxed);
        self.order.push(b as u32);
        self.live += 1;
        self.tail = p + 1;
        far
    }

    /// Moves the live entry in bucket `b` out and unlinks it.
    fn take(&mut self, b: usize) -> (K, V) {
        let p = self.pos_of[b] as usize;
        if self.ctrl.vacate(b, true, Ordering::Relaxed) {
            self.empty += 1;
        }
        self.order[p] = GONE;
        self.live -= 1;
        if self.tail == p + 1 {
            self.tail = p;
        }
        // SAFETY: live until the line above; moved out once (now marked free).
        unsafe { self.buckets[b].assume_init_read() }
    }

    fn drop_live(mut self) {
        let live: Vec<usize> = (0..self.order.len()).filter_map(|p| self.at(p)).collect();
        // SAFETY: each live bucket is moved out once; the arrays are then dropped without
        // dropping their (`MaybeUninit`) contents.
        let entries = live
            .into_iter()
            .map(|b| unsafe { self.buckets[b].assume_init_read() });
        crate::cleanup::drop_all(entries.collect::<Vec<_>>());
        self.order.clear();
    }
}

/// The storage of a [`LockedDict`](crate::LockedDict); see the [module docs](self).
pub struct LockedStore<K, V> {
    lock: BiasedMutex,
    table: UnsafeCell<Compact<K, V>>,
    counters: Counters,
    frozen: AtomicBool,
}

impl<K, V> std::fmt::Debug for LockedStore<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockedStore").finish_non_exhaustive()
    }
}

// SAFETY: the store owns its entries; moving it moves them.
unsafe impl<K: Send, V: Send> Send for LockedStore<K, V> {}
// SAFETY: the lock serializes every access (L1); readers on any thread get `&K`/`&V` (Sync),
// and an entry inserted on one thread may be removed and dropped on another (Send).
unsafe impl<K: Send + Sync, V: Send + Sync> Sync for LockedStore<K, V> {}

impl<K, V> sealed::Sealed for LockedStore<K, V> {}

impl<K, V> LockedStore<K, V> {
    /// The table, shared.
    ///
    /// # Safety
    /// This thread holds the lock (L1), and no `&mut` to the table is alive (L2).
    #[inline(always)]
    unsafe fn shared(&self) -> &Compact<K, V> {
        // SAFETY: forwarded.
        unsafe { &*self.table.get() }
    }

    /// Records a mutation (under the lock).
    fn bump(&self, live: usize, keys_changed: bool) {
        self.counters.bump(live, keys_changed);
    }
}

/// A read section: the lock, or a re-entrant read under this thread's own section.
pub struct Read<'a, K, V> {
    store: &'a LockedStore<K, V>,
    /// `None`: re-entrant (an outer frame of this thread holds the lock).
    _lock: Option<BiasGuard<'a>>,
}

impl<K, V> std::fmt::Debug for Read<'_, K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Read").finish_non_exhaustive()
    }
}

impl<K, V> Read<'_, K, V> {
    #[inline(always)]
    fn table(&self) -> &Compact<K, V> {
        // SAFETY: the lock is held by this section or by an outer frame of this thread, and no
        // `&mut` is alive while a read section exists (L1, L2).
        unsafe { self.store.shared() }
    }

    #[inline(always)]
    fn reentrant(&self) -> bool {
        self._lock.is_none()
    }
}

/// The reading methods of [`Section`] other than `with_value`, the same for both sections.
macro_rules! table_reads {
    () => {
        #[inline(always)]
        fn clone_value(&self, b: usize) -> V
        where
            V: Clone,
        {
            self.table().entry(b).1.clone()
        }

        #[inline]
        fn hash(&self, b: usize) -> u64 {
            u64::from(self.table().tags[b])
        }

        #[inline]
        fn used(&self) -> usize {
            self.table().order.len()
        }

        #[inline]
        fn at(&self, p: usize) -> Option<usize> {
            self.table().at(p)
        }
    };
}

/// The probing methods of [`Section`], the same for both sections: they read the table
/// behind `self.table()`.
macro_rules! table_probes {
    () => {
        #[inline(always)]
        fn find<E>(
            &self,
            hash: u64,
            judge: impl FnMut(&K) -> Result<Verdict, E>,
        ) -> Result<Found, E> {
            self.table().find(hash, judge)
        }

        #[inline]
        fn cursor(&self, hash: u64) -> Cursor {
            self.table().ctrl.cursor(tag32(hash))
        }

        #[inline]
        fn next(&self, hash: u64, cursor: &mut Cursor) -> Option<usize> {
            self.table().next(hash, cursor)
        }

        #[inline(always)]
        fn key(&self, b: usize) -> &K {
            &self.table().entry(b).0
        }
    };
}

impl<K, V: Clone> Section<K, V> for Read<'_, K, V> {
    table_probes!();

    #[inline]
    fn with_value<R>(&self, b: usize, f: impl FnOnce(&V) -> R) -> R {
        // Never lend the storage to user code re-entrantly (L3). Otherwise user code runs
        // under the lock, registered, so its writes to this dict fail instead of deadlocking.
        if self.reentrant() {
            let value = self.clone_value(b);
            f(&value)
        } else {
            let _held = reentry::Holding::new(self.store as *const LockedStore<K, V> as usize);
            f(&self.table().entry(b).1)
        }
    }

    #[inline(always)]
    fn peek_value<R>(&self, b: usize, f: impl FnOnce(&V) -> R) -> R {
        // What `clone_value` reads, re-entrant or not: no user code runs with the reference
        // but `V::clone`, as in L3's clone.
        f(&self.table().entry(b).1)
    }

    table_reads!();
}

/// A write section: the lock, and the graveyard of what it removed (L4).
pub struct Write<'a, K, V> {
    store: &'a LockedStore<K, V>,
    lock: Option<BiasGuard<'a>>,
    grave: Vec<(K, V)>,
    cleared: Vec<Compact<K, V>>,
}

impl<K, V> std::fmt::Debug for Write<'_, K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Write").finish_non_exhaustive()
    }
}

impl<K, V> Write<'_, K, V> {
    #[inline(always)]
    fn table(&self) -> &Compact<K, V> {
        // SAFETY: the section holds the lock; `&self` excludes this section's own `&mut`
        // borrows, and user code (the only other code that could read the table) gets `&`.
        unsafe { self.store.shared() }
    }

    #[inline(always)]
    fn table_mut(&mut self) -> &mut Compact<K, V> {
        // SAFETY: the section holds the lock; the borrow lasts one method call of this
        // section, during which no user code runs (L2).
        unsafe { &mut *self.store.table.get() }
    }

    /// Unlinks the live entry in bucket `b` and moves it out.
    fn take(&mut self, b: usize) -> (K, V) {
        let entry = self.table_mut().take(b);
        let live = self.table().live;
        self.store.bump(live, true);
        entry
    }
}

impl<K, V> Section<K, V> for Write<'_, K, V> {
    table_probes!();

    #[inline]
    fn with_value<R>(&self, b: usize, f: impl FnOnce(&V) -> R) -> R {
        f(&self.table().entry(b).1)
    }

    table_reads!();
}

impl<K, V> WriteSection<K, V> for Write<'_, K, V> {
    #[inline]
    fn value_ref(&self, b: usize) -> Ref<'_, V> {
        Ref::shared(&self.table().entry(b).1)
    }

    fn stamp(&self) -> Stamp {
        let t = self.table();
        Stamp {
            generation: t.generation,
            used: t.order.len(),
        }
    }

    fn still_valid(&self, stamp: Stamp, hash: u64, found: Option<usize>) -> bool {
        let t = self.table();
        // Buckets are reused: a found bucket must still be full *and* hold the entry inserted
        // before the stamp (a reused bucket's entry has a later position, L5).
        if t.generation != stamp.generation
            || found.is_some_and(|b| !t.is_full(b) || t.pos_of[b] as usize >= stamp.used)
        {
            return false;
        }
        let tag = tag32(hash);
        t.order[stamp.used..]
            .iter()
            .all(|&b| b == GONE || t.tags[b as usize] != tag)
    }

    fn insert(&mut self, hash: u64, key: K, value: V) {
        let tag = tag32(hash);
        let t = self.table_mut();
        if t.needs_room() {
            t.make_room();
        }
        let far = t.push(tag, (key, value));
        if far && !t.ctrl.spread() {
            // A chain this long means structured tags: the table is rebuilt spread, once.
            let positions = t.cap();
            t.rebuild(positions, true);
        }
        let live = t.live;
        self.store.bump(live, true);
    }

    fn replace(&mut self, b: usize, value: V) -> V
    where
        V: Clone,
    {
        let old = mem::replace(&mut self.table_mut().entry_mut(b).1, value);
        let live = self.table().live;
        self.store.bump(live, false);
        old
    }

    fn remove(&mut self, b: usize) -> (K, V)
    where
        K: Clone,
        V: Clone,
    {
        self.take(b)
    }

    fn discard(&mut self, b: usize) {
        let entry = self.take(b);
        self.grave.push(entry);
    }

    fn last(&mut self) -> Option<usize> {
        let t = self.table_mut();
        while t.tail > 0 && t.order[t.tail - 1] == GONE {
            t.tail -= 1;
        }
        t.tail.checked_sub(1).map(|p| t.order[p] as usize)
    }

    fn clear(&mut self) {
        let generation = self.table().generation + 1;
        let spread = self.table().ctrl.spread();
        let old = mem::replace(self.table_mut(), Compact::new(0, generation, spread));
        self.cleared.push(old);
        self.store.bump(0, true);
    }

    fn reserve(&mut self, additional: usize) -> Result<(), Error> {
        let t = self.table_mut();
        index::room_for(t.live, additional)?;
        if t.order.len().saturating_add(additional) > t.cap() {
            let holes = t.order.len() != t.live;
            let need = t.live + additional;
            t.rebuild(need, false);
            if holes {
                // The rebuild closed the holes: order positions moved, which a checked
                // iterator must learn (as if keys changed).
                let live = t.live;
                self.store.bump(live, true);
            }
        }
        Ok(())
    }
}

impl<K, V> Drop for Write<'_, K, V> {
    #[inline]
    fn drop(&mut self) {
        drop(self.lock.take());
        if !self.grave.is_empty() || !self.cleared.is_empty() {
            self.bury();
        }
    }
}

impl<K, V> Write<'_, K, V> {
    /// Drops what the section removed (the lock is released already).
    #[cold]
    fn bury(&mut self) {
        crate::cleanup::drop_all(mem::take(&mut self.grave));
        for t in self.cleared.drain(..) {
            t.drop_live();
        }
    }
}

impl<K: Clone, V: Clone> DictStore<K, V> for LockedStore<K, V> {
    type Read<'a>
        = Read<'a, K, V>
    where
        Self: 'a;
    type Write<'a>
        = Write<'a, K, V>
    where
        Self: 'a;
    type Iter<'a>
        = std::vec::IntoIter<(K, V)>
    where
        Self: 'a;
    type Frozen<'a>
        = Frozen<'a, K, V>
    where
        Self: 'a;

    fn with_capacity(capacity: usize) -> Self {
        LockedStore {
            lock: BiasedMutex::new(),
            table: UnsafeCell::new(Compact::new(capacity, 0, false)),
            counters: Counters::new(),
            frozen: AtomicBool::new(false),
        }
    }

    #[inline]
    fn len(&self) -> usize {
        self.counters.len()
    }

    fn capacity(&self) -> usize {
        let r = self.read();
        let t = r.table();
        t.cap() - t.order.len() + t.live
    }

    #[inline]
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

    #[inline]
    fn read(&self) -> Read<'_, K, V> {
        let lock = if reentry::held_by_me(self.addr()) {
            None
        } else {
            Some(self.lock.lock())
        };
        Read {
            store: self,
            _lock: lock,
        }
    }

    #[inline]
    fn write<E>(&self) -> Result<Write<'_, K, V>, Error<E>> {
        let lock = self
            .lock
            .lock_for_write(Container::Dict, self.addr(), &self.frozen)?;
        Ok(Write {
            store: self,
            lock: Some(lock),
            grave: Vec::new(),
            cleared: Vec::new(),
        })
    }

    fn exclusive(&self) -> Option<Write<'_, K, V>> {
        (!reentry::held_by_me(self.addr())).then(|| Write {
            store: self,
            lock: Some(self.lock.lock()),
            grave: Vec::new(),
            cleared: Vec::new(),
        })
    }

    fn iter(&self) -> std::vec::IntoIter<(K, V)> {
        let r = self.read();
        let t = r.table();
        let items: Vec<(K, V)> = (0..t.order.len())
            .filter_map(|p| t.at(p))
            .map(|b| {
                let (k, v) = t.entry(b);
                (k.clone(), v.clone())
            })
            .collect();
        drop(r);
        items.into_iter()
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
        // SAFETY: frozen (caller): every later write section fails before touching the table,
        // so no `&mut` to it is created again (L2) and a shared borrow lives as long as `&self`.
        let table = unsafe { self.shared() };
        Frozen {
            ctrl: table.ctrl.view(),
            buckets: &table.buckets,
            table,
        }
    }
}

/// The table of a frozen store ([`DictStore::frozen`]), with the control words and the bucket
/// array copied out of it so that a lookup starts at them.
pub struct Frozen<'a, K, V> {
    ctrl: CtrlView<'a>,
    buckets: &'a [MaybeUninit<(K, V)>],
    table: &'a Compact<K, V>,
}

impl<K, V> Clone for Frozen<'_, K, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K, V> Copy for Frozen<'_, K, V> {}

impl<K, V> std::fmt::Debug for Frozen<'_, K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frozen").finish_non_exhaustive()
    }
}

impl<'a, K: 'a, V: 'a> FrozenTable<'a, K, V> for Frozen<'a, K, V> {
    #[inline(always)]
    fn find<E>(
        self,
        hash: u64,
        mut quick: impl FnMut(&'a K) -> Result<Verdict, E>,
        mut script: impl FnMut(&'a K) -> Result<bool, E>,
    ) -> Result<Option<&'a V>, E> {
        // SAFETY: a bucket number from the control bytes is below `buckets.len()`, and a
        // bucket the control bytes call full is initialized (`Compact::buckets`); frozen:
        // nothing writes or drops it during `'a`.
        let entry = |b: usize| unsafe { self.buckets.get_unchecked(b).assume_init_ref() };
        let tag = tag32(hash);
        let found = self.ctrl.find_where(tag, Ordering::Relaxed, |b| {
            let key = &entry(b).0;
            quick(key)?.or_script(|| self.table.tags[b] == tag, || script(key))
        })?;
        Ok(found.map(|b| &entry(b).1))
    }

    fn entry(self, pos: usize) -> Option<(&'a K, &'a V)> {
        self.table.at(pos).map(|b| {
            let (k, v) = self.table.entry(b);
            (k, v)
        })
    }

    fn used(self) -> usize {
        self.table.order.len()
    }
}

impl<K, V> Drop for LockedStore<K, V> {
    fn drop(&mut self) {
        let t = mem::replace(self.table.get_mut(), Compact::new(0, 0, false));
        t.drop_live();
    }
}

#[cfg(all(test, not(gilfree_loom)))]
mod tests {
    use crate::dict::DictStore;
    use crate::LockedDict;

    /// The table's shape, read under the lock: (buckets, order capacity, generation, empty).
    fn shape(d: &LockedDict<u64, u64>) -> (usize, usize, u64, usize) {
        let r = d.store.read();
        let t = r.table();
        // L6 after every operation: more than an eighth of the buckets are empty, and the
        // count is the control bytes' own.
        let counted = (0..t.ctrl.buckets())
            .filter(|&b| t.ctrl.is_empty(b))
            .count();
        assert_eq!(t.empty, counted, "L6: empty count");
        assert!(t.empty > t.ctrl.buckets() / 8, "L6: an eighth stays empty");
        (t.ctrl.buckets(), t.cap(), t.generation, t.empty)
    }

    #[test]
    fn churn_at_a_steady_size_compacts_the_order_in_place() {
        // Remove the oldest key, insert a fresh one: the size stays at `n`, the order array
        // fills with removed positions again and again. It is compacted in place (a new
        // generation, the same buckets), the contents and their order stay those of the model,
        // and the table does not grow.
        let d: LockedDict<u64, u64> = LockedDict::new();
        let n = 1_000u64;
        for k in 0..n {
            d.insert(k, k * 3).unwrap();
        }
        let mut oldest = 0;
        let mut churn = |steps: u64| {
            for _ in 0..steps {
                assert_eq!(d.remove(&oldest).unwrap(), Some(oldest * 3));
                d.insert(oldest + n, (oldest + n) * 3).unwrap();
                oldest += 1;
                if oldest % 97 == 0 {
                    shape(&d);
                }
            }
        };
        // The first time the order array fills, it holds too few holes to be worth closing:
        // the table grows once (to twice its live entries), then stays.
        churn(2 * n);
        let (buckets, cap, generation, _) = shape(&d);
        churn(20 * n);
        let (buckets_after, cap_after, generation_after, _) = shape(&d);
        assert_eq!(
            (buckets_after, cap_after),
            (buckets, cap),
            "no growth under churn"
        );
        assert!(
            generation_after >= generation + 19,
            "compacted once per n inserts or so"
        );
        let keys: Vec<u64> = d.keys();
        assert_eq!(
            keys,
            (oldest..oldest + n).collect::<Vec<_>>(),
            "insertion order kept"
        );
        for k in oldest..oldest + n {
            assert_eq!(d.get(&k), Some(k * 3));
        }
        assert_eq!(d.get(&(oldest - 1)), None);
    }

    #[test]
    fn random_churn_keeps_empties_and_every_probe_finite() {
        // Random keys removed and inserted at a steady size leave deleted marks in full
        // groups that inserts may not reuse; the empty count must trigger rebuilds before the
        // empties run out (otherwise a miss would probe forever).
        let d: LockedDict<u64, u64> = LockedDict::new();
        let mut model = std::collections::BTreeSet::new();
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..600 {
            let k = next() % 1_000_000;
            d.insert(k, k).unwrap();
            model.insert(k);
        }
        for step in 0..60_000 {
            let victim = *model
                .iter()
                .nth((next() % model.len() as u64) as usize)
                .unwrap();
            assert_eq!(d.remove(&victim).unwrap(), Some(victim));
            model.remove(&victim);
            let k = next() % 1_000_000;
            d.insert(k, k).unwrap();
            model.insert(k);
            assert_eq!(
                d.get(&(next() % 1_000_000 + 1_000_000)),
                None,
                "a miss ends"
            );
            if step % 1_000 == 0 {
                shape(&d);
            }
        }
        shape(&d);
        assert_eq!(d.len(), model.len());
        for k in &model {
            assert_eq!(d.get(k), Some(*k));
        }
    }

    impl<S> crate::dict::index::tests::TableMode
        for crate::dict::Dict<u64, u64, S, super::LockedStore<u64, u64>>
    {
        fn spread(&self) -> bool {
            self.store.read().table().ctrl.spread()
        }
        fn positions(&self) -> usize {
            self.store.read().table().cap()
        }
    }

    /// The spread-mode scenario (`index`) on the locked store, with churn at a steady size in
    /// the middle (its order array is compacted in place).
    #[test]
    fn the_spread_mode_is_kept_by_every_later_table() {
        crate::dict::index::tests::spread_mode_is_kept::<super::LockedStore<u64, u64>>(|d| {
            for k in 6_000..300_000u64 {
                d.insert(k, k).unwrap();
                assert_eq!(d.remove(&(k - 5_900)), Ok(Some(k - 5_900)));
            }
        });
    }
}
