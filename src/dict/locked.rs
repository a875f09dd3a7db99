//! [`LockedStore`]: the storage of `LockedDict` — one lock for readers and writers, and an
//! in-place compact table (no lock-free readers, so no reclamation and no copies).
//!
//! ## Layout
//!
//! A compact dict like CPython's: an [`Index`] of tagged slots over an entries vector in
//! insertion order, each entry `(key, value)` inline, plus the slot of each entry (or
//! [`REMOVED`]). A removed entry leaves a hole in the entries and a tombstone in the index;
//! inserts reuse the first tombstone of their probe chain, overwrites write the value in place,
//! and when the entries vector is full the table compacts in place (many holes) or doubles.
//!
//! ## Invariants and protocol
//!
//! - **L1** The table is reached only with the lock held by this thread: through a section
//!   that owns the guard, or re-entrantly from user code that runs under a section of this
//!   thread (registered in [`crate::reentry`]).
//! - **L2** A `&mut` to the table exists only inside one write-section method call, and never
//!   while user code runs; user code and re-entrant readers only ever see `&` to it.
//! - **L3** A re-entrant read never lends a reference into the table to user code (it lends a
//!   clone): the outer user code may hold a `DictView` whose next write moves the entries.
//! - **L4** Values leave the lock before they die: removed entries are moved out to the caller,
//!   or into the section's graveyard, dropped after the lock is released.
//! - **L5** Entry positions are append-only within a *generation*; compaction, growth and
//!   `clear` start a new one (for the core's validation after script `eq`).

use std::cell::UnsafeCell;
use std::mem::{self, MaybeUninit};

use crate::dict::index::{self, tag32, Candidate, Cursor, Index};
use crate::dict::store::{sealed, DictStore, Section, Stamp, WriteSection};
use crate::reentry;
use crate::storage::Ref;
use crate::sync::{AtomicBool, AtomicU64, AtomicUsize, Mutex, MutexGuard, Ordering};
use crate::{Container, Error};

/// `slot_of` of a removed entry.
const REMOVED: u32 = u32::MAX;

/// The table behind the lock (see the module docs).
struct Compact<K, V> {
    index: Index,
    /// `entries[pos]` is initialized iff `slot_of[pos] != REMOVED`.
    entries: Vec<MaybeUninit<(K, V)>>,
    slot_of: Vec<u32>,
    live: usize,
    /// One past the last live position (`popitem`'s starting point).
    tail: usize,
    generation: u64,
}

impl<K, V> Compact<K, V> {
    fn new(capacity: usize, generation: u64) -> Self {
        let cap = index::capacity_for(capacity);
        Compact {
            index: Index::new(cap),
            entries: Vec::with_capacity(cap),
            slot_of: Vec::with_capacity(cap),
            live: 0,
            tail: 0,
            generation,
        }
    }

    #[inline]
    fn cap(&self) -> usize {
        self.index.len() / 2
    }

    #[inline]
    fn is_live(&self, pos: usize) -> bool {
        self.slot_of[pos] != REMOVED
    }

    /// A hash with the tag of live entry `pos`.
    #[inline]
    fn hash_of(&self, pos: usize) -> u64 {
        u64::from(index::slot_tag(
            self.index
                .load(self.slot_of[pos] as usize, Ordering::Relaxed),
        ))
    }

    #[inline(always)]
    fn entry(&self, pos: usize) -> &(K, V) {
        debug_assert!(self.is_live(pos));
        // SAFETY: callers pass live positions (candidates of the index, or checked with
        // `is_live`): initialized.
        unsafe { self.entries[pos].assume_init_ref() }
    }

    #[inline(always)]
    fn entry_mut(&mut self, pos: usize) -> &mut (K, V) {
        debug_assert!(self.is_live(pos));
        // SAFETY: as `entry`.
        unsafe { self.entries[pos].assume_init_mut() }
    }

    /// Rewrites the table with the live entries only, in order, into `new_cap` positions.
    fn rebuild(&mut self, new_cap: usize) {
        let cap = index::capacity_for(new_cap);
        let index = Index::new(cap);
        let mut entries = Vec::with_capacity(cap);
        let mut slot_of = Vec::with_capacity(cap);
        let old_entries = mem::take(&mut self.entries);
        for (pos, e) in old_entries.into_iter().enumerate() {
            let slot = self.slot_of[pos];
            if slot == REMOVED {
                continue;
            }
            let tag = index::slot_tag(self.index.load(slot as usize, Ordering::Relaxed));
            slot_of.push(index.place(tag, entries.len()) as u32);
            entries.push(e);
        }
        self.index = index;
        self.live = entries.len();
        self.tail = entries.len();
        self.entries = entries;
        self.slot_of = slot_of;
        self.generation += 1;
    }

    fn drop_live(self) {
        let Compact {
            entries, slot_of, ..
        } = self;
        let live = entries
            .into_iter()
            .zip(slot_of)
            .filter(|(_, s)| *s != REMOVED)
            // SAFETY: live entries are initialized; each is moved out once.
            .map(|(e, _)| unsafe { e.assume_init() });
        crate::cleanup::drop_all(live);
    }
}

/// The storage of a [`LockedDict`](crate::LockedDict); see the [module docs](self).
pub struct LockedStore<K, V> {
    lock: Mutex<()>,
    table: UnsafeCell<Compact<K, V>>,
    len: AtomicUsize,
    version: AtomicU64,
    keys_version: AtomicU64,
    frozen: AtomicBool,
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
        self.len.store(live, Ordering::Release);
        if keys_changed {
            let k = self.keys_version.load(Ordering::Relaxed);
            self.keys_version.store(k + 1, Ordering::Release);
        }
        let v = self.version.load(Ordering::Relaxed);
        self.version.store(v + 1, Ordering::Release);
    }
}

/// A read section: the lock, or a re-entrant read under this thread's own section.
pub struct Read<'a, K, V> {
    store: &'a LockedStore<K, V>,
    /// `None`: re-entrant (an outer frame of this thread holds the lock).
    _lock: Option<MutexGuard<'a, ()>>,
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

impl<K, V: Clone> Section<K, V> for Read<'_, K, V> {
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
        &self.table().entry(pos).0
    }

    #[inline]
    fn with_value<R>(&self, pos: usize, f: impl FnOnce(&V) -> R) -> R {
        // Never lend the storage to user code re-entrantly (L3). Otherwise user code runs
        // under the lock, registered, so its writes to this dict fail instead of deadlocking.
        if self.reentrant() {
            let value = self.clone_value(pos);
            f(&value)
        } else {
            let _held = reentry::Holding::new(self.store as *const LockedStore<K, V> as usize);
            f(&self.table().entry(pos).1)
        }
    }

    #[inline(always)]
    fn clone_value(&self, pos: usize) -> V
    where
        V: Clone,
    {
        self.table().entry(pos).1.clone()
    }

    #[inline]
    fn hash(&self, pos: usize) -> u64 {
        self.table().hash_of(pos)
    }

    #[inline]
    fn used(&self) -> usize {
        self.table().entries.len()
    }

    #[inline]
    fn live(&self, pos: usize) -> bool {
        self.table().is_live(pos)
    }
}

/// A write section: the lock, and the graveyard of what it removed (L4).
pub struct Write<'a, K, V> {
    store: &'a LockedStore<K, V>,
    lock: Option<MutexGuard<'a, ()>>,
    grave: Vec<(K, V)>,
    cleared: Vec<Compact<K, V>>,
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

    /// Unlinks the live entry at `pos` and moves it out.
    fn take(&mut self, pos: usize) -> (K, V) {
        let t = self.table_mut();
        let slot = t.slot_of[pos] as usize;
        let next = (slot + 1) & (t.index.len() - 1);
        let mark = if t.index.load(next, Ordering::Relaxed) == index::EMPTY {
            index::EMPTY
        } else {
            index::TOMBSTONE
        };
        t.index.store(slot, mark, Ordering::Relaxed);
        t.slot_of[pos] = REMOVED;
        t.live -= 1;
        if t.tail == pos + 1 {
            t.tail = pos;
        }
        // SAFETY: live until the line above; moved out once (now marked removed).
        let entry = unsafe { t.entries[pos].assume_init_read() };
        let live = t.live;
        self.store.bump(live, true);
        entry
    }
}

impl<K, V> Section<K, V> for Write<'_, K, V> {
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
        &self.table().entry(pos).0
    }

    #[inline]
    fn with_value<R>(&self, pos: usize, f: impl FnOnce(&V) -> R) -> R {
        f(&self.table().entry(pos).1)
    }

    #[inline]
    fn clone_value(&self, pos: usize) -> V
    where
        V: Clone,
    {
        self.table().entry(pos).1.clone()
    }

    #[inline]
    fn hash(&self, pos: usize) -> u64 {
        self.table().hash_of(pos)
    }

    #[inline]
    fn used(&self) -> usize {
        self.table().entries.len()
    }

    #[inline]
    fn live(&self, pos: usize) -> bool {
        self.table().is_live(pos)
    }
}

impl<K, V> WriteSection<K, V> for Write<'_, K, V> {
    #[inline]
    fn value_ref(&self, pos: usize) -> Ref<'_, V> {
        Ref::shared(&self.table().entry(pos).1)
    }

    fn stamp(&self) -> Stamp {
        let t = self.table();
        Stamp {
            generation: t.generation,
            used: t.entries.len(),
        }
    }

    fn still_valid(&self, stamp: Stamp, hash: u64, found: Option<usize>) -> bool {
        if self.table().generation != stamp.generation || found.is_some_and(|p| !self.live(p)) {
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
        let t = self.table_mut();
        let mut slot = t.index.insert_slot(tag, cursor, Ordering::Relaxed);
        if t.entries.len() == t.cap() {
            // Full: compact in place when at least half are holes, else double.
            let cap = t.cap();
            t.rebuild(if t.live <= cap / 2 { cap } else { cap * 2 });
            slot = t
                .index
                .insert_slot(tag, t.index.cursor(tag), Ordering::Relaxed);
        }
        let pos = t.entries.len();
        t.index
            .store(slot, index::slot_word(tag, pos), Ordering::Relaxed);
        t.entries.push(MaybeUninit::new((key, value)));
        t.slot_of.push(slot as u32);
        t.live += 1;
        t.tail = pos + 1;
        let live = t.live;
        self.store.bump(live, true);
    }

    fn replace(&mut self, pos: usize, value: V) -> V
    where
        V: Clone,
    {
        let old = mem::replace(&mut self.table_mut().entry_mut(pos).1, value);
        let live = self.table().live;
        self.store.bump(live, false);
        old
    }

    fn remove(&mut self, pos: usize) -> (K, V)
    where
        K: Clone,
        V: Clone,
    {
        self.take(pos)
    }

    fn discard(&mut self, pos: usize) {
        let entry = self.take(pos);
        self.grave.push(entry);
    }

    fn last(&mut self) -> Option<usize> {
        let t = self.table_mut();
        while t.tail > 0 && t.slot_of[t.tail - 1] == REMOVED {
            t.tail -= 1;
        }
        t.tail.checked_sub(1)
    }

    fn clear(&mut self) {
        let generation = self.table().generation + 1;
        let old = mem::replace(self.table_mut(), Compact::new(0, generation));
        self.cleared.push(old);
        self.store.bump(0, true);
    }

    fn reserve(&mut self, additional: usize) {
        let t = self.table_mut();
        if t.entries.len() + additional > t.cap() {
            let need = t.live + additional;
            t.rebuild(need);
        }
    }
}

impl<K, V> Drop for Write<'_, K, V> {
    fn drop(&mut self) {
        drop(self.lock.take());
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

    fn with_capacity(capacity: usize) -> Self {
        LockedStore {
            lock: Mutex::new(()),
            table: UnsafeCell::new(Compact::new(capacity, 0)),
            len: AtomicUsize::new(0),
            version: AtomicU64::new(0),
            keys_version: AtomicU64::new(0),
            frozen: AtomicBool::new(false),
        }
    }

    #[inline]
    fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    fn capacity(&self) -> usize {
        let r = self.read();
        let t = r.table();
        t.cap() - t.entries.len() + t.live
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
        let items: Vec<(K, V)> = (0..t.entries.len())
            .filter(|&p| t.is_live(p))
            .map(|p| {
                let (k, v) = t.entry(p);
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

    unsafe fn frozen_find<E>(
        &self,
        hash: u64,
        mut is_key: impl FnMut(&K) -> Result<bool, E>,
    ) -> Result<Option<&V>, E> {
        // SAFETY: frozen (caller): every later write section fails before touching the table,
        // so no `&mut` to it is created again (L2) and a shared borrow lives as long as `&self`.
        let t = unsafe { self.shared() };
        let tag = tag32(hash);
        let mut c = t.index.cursor(tag);
        while let Some(cand) = t.index.next(tag, &mut c, Ordering::Relaxed) {
            let (k, v) = t.entry(cand.pos);
            if is_key(k)? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    unsafe fn frozen_entry(&self, pos: usize) -> Option<(&K, &V)> {
        // SAFETY: as in `frozen_find`.
        let t = unsafe { self.shared() };
        t.is_live(pos).then(|| {
            let (k, v) = t.entry(pos);
            (k, v)
        })
    }

    unsafe fn frozen_used(&self) -> usize {
        // SAFETY: as in `frozen_find`.
        unsafe { self.shared() }.entries.len()
    }
}

impl<K, V> Drop for LockedStore<K, V> {
    fn drop(&mut self) {
        let t = mem::replace(self.table.get_mut(), Compact::new(0, 0));
        t.drop_live();
    }
}
