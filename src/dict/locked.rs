//! `LockedDict`: one reader-writer lock per dict; every operation is linearizable.
//!
//! Reads take the dict's lock shared, writes take it exclusive; both walk the same table core
//! as [`GilFreeDict`](crate::GilFreeDict). Because no reader ever runs without the lock, nodes
//! that leave the table are freed as soon as the lock is released (never under it: a value's
//! destructor is script code that may re-enter).
//!
//! Script `eq` never runs under the lock: the candidate key is cloned, the lock released, `eq`
//! called, the lock re-taken, and the lookup restarted if the dict's version moved meanwhile.
//! A closure running under the lock (`with_lock`, `update`, `retain`, `get_with`) registers the
//! dict in [`crate::reentry`]: reads of the same dict from inside are served without locking
//! again (the thread's own lock excludes every writer), writes fail with `Error::Reentrant`.

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;

use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::dict::iter::{CheckedSource, IterChecked};
use crate::dict::FrozenDict;
use crate::lookup::{quick_compare, restart, Quick};
use crate::model::{infallible, DefaultHashBuilder, KeyModel};
use crate::reentry::{self, Holding};
use crate::sync::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use crate::table::{Node, Probe, Table};
use crate::{Container, Error};

/// A concurrent, insertion-ordered dict guarded by one lock of its own.
///
/// Python dict semantics, like [`GilFreeDict`](crate::GilFreeDict); every operation is atomic,
/// and [`with_lock`](Self::with_lock) runs compound updates as one critical section.
pub struct LockedDict<K, V, S = DefaultHashBuilder> {
    lock: RwLock<()>,
    table: AtomicPtr<Table<K, V>>,
    len: AtomicUsize,
    version: AtomicU64,
    keys_version: AtomicU64,
    frozen: AtomicBool,
    hasher: S,
    _owns: PhantomData<Box<Node<K, V>>>,
}

// SAFETY: the dict owns its nodes; readers on any thread get `&K`/`&V` (Sync), and the writer
// that unlinks a node drops it on its own thread (Send).
unsafe impl<K: Send + Sync, V: Send + Sync, S: Send> Send for LockedDict<K, V, S> {}
// SAFETY: as above.
unsafe impl<K: Send + Sync, V: Send + Sync, S: Sync> Sync for LockedDict<K, V, S> {}

/// How the current thread holds the lock.
enum Access<'a> {
    Read(#[allow(dead_code)] RwLockReadGuard<'a, ()>),
    Write(#[allow(dead_code)] RwLockWriteGuard<'a, ()>),
    /// An outer frame of this thread holds the lock (a closure under `with_lock` & co.).
    Reentrant,
}

/// A search result: how the lock is held, and where the key is (or would go).
type Located<'a, K, V> = (Access<'a>, Spot<'a, K, V>);

enum Spot<'a, K, V> {
    Found { slot: usize, node: &'a Node<K, V> },
    Vacant { slot: usize },
}

/// Nodes unlinked under the lock, freed when this is dropped, after the lock is released.
struct Graveyard<K, V>(Vec<*mut Node<K, V>>);

impl<K, V> Drop for Graveyard<K, V> {
    fn drop(&mut self) {
        for node in self.0.drain(..) {
            // SAFETY: each node was unlinked under the exclusive lock and buried exactly once;
            // no reader can reach it since that lock was released.
            drop(unsafe { Box::from_raw(node) });
        }
    }
}

common_dict_api!(LockedDict);

impl<K, V, S> LockedDict<K, V, S> {
    fn from_table(table: Table<K, V>, hasher: S) -> Self {
        LockedDict {
            len: AtomicUsize::new(table.len()),
            table: AtomicPtr::new(Box::into_raw(Box::new(table))),
            lock: RwLock::new(()),
            version: AtomicU64::new(0),
            keys_version: AtomicU64::new(0),
            frozen: AtomicBool::new(false),
            hasher,
            _owns: PhantomData,
        }
    }

    /// Makes this dict immutable (one-way), linearizably with respect to its writers.
    ///
    /// This dict only: values that are containers stay as they are; to freeze a whole object
    /// tree, use [`freeze`](crate::freeze()).
    ///
    /// Fails with [`Error::Reentrant`] from inside a closure that runs under this dict's lock.
    pub fn freeze(&self) -> Result<(), Error> {
        if reentry::held_by_me(self.addr()) {
            return Err(Error::Reentrant(Container::Dict));
        }
        let _lock = self.lock.write();
        self.frozen.store(true, Ordering::Release);
        Ok(())
    }

    /// The read-only view of this dict if it is frozen: borrowed reads with no lock and no
    /// refcount traffic, valid for as long as the dict.
    pub fn frozen(&self) -> Option<FrozenDict<'_, K, V, S>> {
        if !self.frozen.load(Ordering::Acquire) {
            return None;
        }
        // SAFETY: frozen (Acquire pairs with the Release in `freeze`, made under the exclusive
        // lock): every later writer fails before touching the table, so the table and its
        // nodes live as long as `&self`.
        Some(unsafe { FrozenDict::new(self.table_ref(), &self.hasher) })
    }

    fn addr(&self) -> usize {
        self as *const Self as usize
    }

    /// The current table.
    ///
    /// Callers may use the reference only while the current thread holds the lock (an
    /// `Access` or an outer frame's lock): only lock holders replace or free tables and nodes.
    #[inline]
    fn table_ref(&self) -> &Table<K, V> {
        // SAFETY: always a live table; see the method docs for how long it stays valid.
        unsafe { &*self.table.load(Ordering::Acquire) }
    }

    #[inline]
    fn access<E, const WRITE: bool>(&self) -> Result<Access<'_>, Error<E>> {
        if reentry::held_by_me(self.addr()) {
            return if WRITE {
                Err(Error::Reentrant(Container::Dict))
            } else {
                Ok(Access::Reentrant)
            };
        }
        if WRITE {
            let guard = self.lock.write();
            if self.frozen.load(Ordering::Relaxed) {
                return Err(Error::Frozen(Container::Dict));
            }
            Ok(Access::Write(guard))
        } else {
            Ok(Access::Read(self.lock.read()))
        }
    }

    /// Records a mutation (under the exclusive lock).
    fn bump(&self, keys_changed: bool) {
        self.len.store(self.table_ref().len(), Ordering::Release);
        if keys_changed {
            let k = self.keys_version.load(Ordering::Relaxed);
            self.keys_version.store(k + 1, Ordering::Release);
        }
        let v = self.version.load(Ordering::Relaxed);
        self.version.store(v + 1, Ordering::Release);
    }

    /// Finds `key` and returns with the lock held (shared, or exclusive if `WRITE`).
    #[inline]
    fn search<'a, M: KeyModel<K>, const WRITE: bool>(
        &'a self,
        m: &M,
        hash: u64,
        key: &K,
    ) -> Result<Located<'a, K, V>, Error<M::Error>>
    where
        K: Clone,
    {
        let mut restarts = 0;
        'restart: loop {
            let mut access = self.access::<_, WRITE>()?;
            let table = self.table_ref();
            let mut cursor = table.start(hash);
            loop {
                let (slot, node) = match table.probe(hash, &mut cursor) {
                    Probe::Vacant(slot) => return Ok((access, Spot::Vacant { slot })),
                    Probe::Candidate { slot, node } => (slot, node),
                };
                match quick_compare(m, node.key(), key)? {
                    Quick::Equal => return Ok((access, Spot::Found { slot, node })),
                    Quick::NotEqual => {}
                    Quick::Script if matches!(access, Access::Reentrant) => {
                        // An outer frame of this thread holds the lock and cannot release it.
                        // No other thread can mutate, and this thread's writes are refused, so
                        // `eq` may run in place (its reads of this dict are served lock-free).
                        if m.eq(node.key(), key).map_err(Error::Callback)? {
                            return Ok((access, Spot::Found { slot, node }));
                        }
                    }
                    Quick::Script => {
                        let stored = node.key().clone();
                        let version = self.version.load(Ordering::Relaxed);
                        drop(access);
                        let eq = m.eq(&stored, key);
                        drop(stored);
                        let eq = eq.map_err(Error::Callback)?;
                        access = self.access::<_, WRITE>()?;
                        // Unchanged version: no node was replaced or freed, the table is the same.
                        if self.version.load(Ordering::Relaxed) != version {
                            drop(access);
                            restart(&mut restarts)?;
                            continue 'restart;
                        }
                        if eq {
                            return Ok((access, Spot::Found { slot, node }));
                        }
                    }
                }
            }
        }
    }

    /// Appends a fresh node at the vacant `slot`, growing the table if needed.
    ///
    /// # Safety
    /// Exclusive lock held; `slot` ends the node's probe chain in the current table.
    unsafe fn append(&self, slot: usize, node: *mut Node<K, V>) {
        let table = self.table_ref();
        // SAFETY: forwarded from the caller.
        if let Some(fresh) = unsafe { table.append(slot, node) } {
            let old = self.table.swap(Box::into_raw(fresh), Ordering::AcqRel);
            // SAFETY: exclusive lock: no reader holds the old table; its nodes moved to the
            // new table, and dropping a `Table` frees no node.
            drop(unsafe { Box::from_raw(old) });
        }
        self.bump(true);
    }
}

impl<K, V, S> LockedDict<K, V, S>
where
    K: Clone,
    V: Clone,
{
    /// Returns a clone of the value for `key`.
    pub fn get_in<M: KeyModel<K>>(&self, m: &M, key: &K) -> Result<Option<V>, Error<M::Error>> {
        let hash = m.hash(key).map_err(Error::Callback)?;
        let (access, spot) = self.search::<_, false>(m, hash, key)?;
        let value = match spot {
            Spot::Found { node, .. } => Some(node.value().clone()),
            Spot::Vacant { .. } => None,
        };
        drop(access);
        Ok(value)
    }

    /// Calls `f` with a borrowed reference to the value, under the lock (no refcount traffic).
    /// `f` may read this dict; writing to it from inside fails with [`Error::Reentrant`].
    pub fn get_with_in<M: KeyModel<K>, R>(
        &self,
        m: &M,
        key: &K,
        f: impl FnOnce(&V) -> R,
    ) -> Result<Option<R>, Error<M::Error>> {
        let hash = m.hash(key).map_err(Error::Callback)?;
        let (access, spot) = self.search::<_, false>(m, hash, key)?;
        let out = match (spot, access) {
            (Spot::Found { node, .. }, Access::Reentrant) => {
                // An outer frame of this thread holds the lock and may be a `with_lock` whose
                // view overwrites values in place: lend a clone, never the stored value.
                let value = node.value().clone();
                Some(f(&value))
            }
            (Spot::Found { node, .. }, access) => {
                let _held = Holding::new(self.addr());
                let out = f(node.value());
                drop(access);
                Some(out)
            }
            (Spot::Vacant { .. }, _) => None,
        };
        Ok(out)
    }

    /// Whether `key` is present.
    pub fn contains_key_in<M: KeyModel<K>>(&self, m: &M, key: &K) -> Result<bool, Error<M::Error>> {
        let hash = m.hash(key).map_err(Error::Callback)?;
        let (_access, spot) = self.search::<_, false>(m, hash, key)?;
        Ok(matches!(spot, Spot::Found { .. }))
    }

    /// Inserts or overwrites (keeping the position and the original key); returns the
    /// previous value.
    pub fn insert_in<M: KeyModel<K>>(
        &self,
        m: &M,
        key: K,
        value: V,
    ) -> Result<Option<V>, Error<M::Error>> {
        self.upsert(m, key, |_| value, false)
    }

    /// Atomic read-modify-write: `f` gets the current value (if any) and returns the new one;
    /// returns the previous value. `f` runs under the lock: it may read this dict, a write to
    /// it from inside fails with [`Error::Reentrant`].
    pub fn update_in<M: KeyModel<K>>(
        &self,
        m: &M,
        key: K,
        f: impl FnOnce(Option<&V>) -> V,
    ) -> Result<Option<V>, Error<M::Error>> {
        self.upsert(m, key, f, true)
    }

    /// Insert-or-overwrite with the new value computed under the lock; `user_code` marks `f`
    /// as a user closure (registered for re-entry detection while it runs).
    fn upsert<M: KeyModel<K>>(
        &self,
        m: &M,
        key: K,
        f: impl FnOnce(Option<&V>) -> V,
        user_code: bool,
    ) -> Result<Option<V>, Error<M::Error>> {
        let hash = m.hash(&key).map_err(Error::Callback)?;
        let (access, spot) = self.search::<_, true>(m, hash, &key)?;
        let table = self.table_ref();
        let compute = |old: Option<&V>| {
            let _held = user_code.then(|| Holding::new(self.addr()));
            f(old)
        };
        let old = match spot {
            Spot::Found { slot, node } => {
                let value = compute(Some(node.value()));
                let ptr = table.node_ptr(slot);
                // SAFETY: exclusive lock held, so no other thread holds a reference into the
                // node; this thread's re-entrant readers only ever got clones (`get_with_in`),
                // and `node` is not used after this point. Overwriting in place keeps the
                // position and the original key, and the old value leaves the lock with us.
                Some(unsafe { (*ptr).replace_value(value) })
            }
            Spot::Vacant { slot } => {
                let node = Node::alloc(hash, key, compute(None));
                // SAFETY: exclusive lock; `slot` ends the key's chain (`f` cannot write here).
                unsafe { self.append(slot, node) };
                None
            }
        };
        if old.is_some() {
            self.bump(false);
        }
        drop(access);
        Ok(old)
    }

    /// Removes `key`, returning its value; `None` if absent.
    pub fn remove_in<M: KeyModel<K>>(&self, m: &M, key: &K) -> Result<Option<V>, Error<M::Error>> {
        Ok(self.remove_entry_in(m, key)?.map(|(_, v)| v))
    }

    /// Removes `key`, returning the stored key and its value.
    pub fn remove_entry_in<M: KeyModel<K>>(
        &self,
        m: &M,
        key: &K,
    ) -> Result<Option<(K, V)>, Error<M::Error>> {
        let hash = m.hash(key).map_err(Error::Callback)?;
        let (access, spot) = self.search::<_, true>(m, hash, key)?;
        let Spot::Found { slot, .. } = spot else {
            return Ok(None);
        };
        // SAFETY: exclusive lock; `slot` holds a live node.
        let old = unsafe { self.table_ref().take(slot) };
        self.bump(true);
        drop(access);
        // SAFETY: unlinked under the exclusive lock, now released; we are its only owner.
        let node = unsafe { Box::from_raw(old) };
        Ok(Some(node.into_entry()))
    }

    /// Python's `setdefault`: the value for `key`, inserting `default` if absent.
    pub fn setdefault_in<M: KeyModel<K>>(
        &self,
        m: &M,
        key: K,
        default: V,
    ) -> Result<V, Error<M::Error>> {
        let hash = m.hash(&key).map_err(Error::Callback)?;
        let (access, spot) = self.search::<_, true>(m, hash, &key)?;
        let value = match spot {
            Spot::Found { node, .. } => node.value().clone(),
            Spot::Vacant { slot } => {
                let value = default.clone();
                // SAFETY: exclusive lock; `slot` ends the key's probe chain.
                unsafe { self.append(slot, Node::alloc(hash, key, default)) };
                value
            }
        };
        drop(access);
        Ok(value)
    }

    /// Removes and returns the last inserted entry (LIFO).
    pub fn popitem(&self) -> Result<Option<(K, V)>, Error> {
        let access = self.access::<_, true>()?;
        let table = self.table_ref();
        let Some(node) = table.last() else {
            return Ok(None);
        };
        // SAFETY: exclusive lock; `slot_of` finds the slot holding `node`.
        let old = unsafe { table.take(table.slot_of(node)) };
        self.bump(true);
        drop(access);
        // SAFETY: unlinked under the exclusive lock, now released; we own it.
        let node = unsafe { Box::from_raw(old) };
        Ok(Some(node.into_entry()))
    }

    /// Removes every entry; they are dropped after the lock is released.
    pub fn clear(&self) -> Result<(), Error> {
        let access = self.access::<_, true>()?;
        let old = self.table.swap(
            Box::into_raw(Box::new(Table::with_capacity(0))),
            Ordering::AcqRel,
        );
        self.bump(true);
        drop(access);
        // SAFETY: unlinked under the exclusive lock (now released): we own the table and nodes.
        let old = unsafe { Box::from_raw(old) };
        drop(Graveyard(old.node_ptrs().collect()));
        Ok(())
    }

    /// Keeps only the entries for which `f` returns `true`, in one critical section.
    pub fn retain(&self, mut f: impl FnMut(&K, &V) -> bool) -> Result<(), Error> {
        let mut grave = Graveyard(Vec::new());
        let access = self.access::<_, true>()?;
        let table = self.table_ref();
        {
            let _held = Holding::new(self.addr());
            for pos in 0..table.used() {
                if let Some(node) = table.entry(pos) {
                    if !f(node.key(), node.value()) {
                        // SAFETY: exclusive lock; the slot holds `node`.
                        grave.0.push(unsafe { table.take(table.slot_of(node)) });
                        // Recorded at once, so a panicking `f` leaves the dict consistent.
                        self.bump(true);
                    }
                }
            }
        }
        drop(access);
        drop(grave);
        Ok(())
    }

    /// Runs `f` over the entries, in order, under the shared lock.
    fn scan<R>(&self, f: impl FnOnce(&mut dyn Iterator<Item = &Node<K, V>>) -> R) -> R {
        let access = infallible(self.access::<_, false>());
        let table = self.table_ref();
        let out = f(&mut (0..table.used()).filter_map(|p| table.entry(p)));
        drop(access);
        out
    }

    /// An atomic copy: a new, mutable dict with the same entries in the same order.
    pub fn copy(&self) -> Self
    where
        S: Clone,
    {
        let table = self.scan(|nodes| {
            let fresh = Table::with_capacity(self.len());
            for n in nodes {
                // SAFETY: `fresh` is private; keys are distinct.
                unsafe {
                    fresh.push(
                        fresh.vacant_end(n.hash),
                        Node::alloc(n.hash, n.key().clone(), n.value().clone()),
                    )
                };
            }
            fresh
        });
        Self::from_table(table, self.hasher.clone())
    }

    /// An atomic snapshot of the entries, in order.
    pub fn snapshot(&self) -> Vec<(K, V)> {
        self.scan(|nodes| {
            nodes
                .map(|n| (n.key().clone(), n.value().clone()))
                .collect()
        })
    }

    /// Iterates over an atomic snapshot of the entries (double-ended: `rev()` is `reversed`).
    pub fn iter(&self) -> std::vec::IntoIter<(K, V)> {
        self.snapshot().into_iter()
    }

    /// An iterator with CPython's mutation checks ("dictionary changed size during
    /// iteration"); each step takes the lock briefly.
    pub fn iter_checked(&self) -> IterChecked<'_, K, V, Self> {
        IterChecked::new(self)
    }

    /// Clones of the keys, in order (atomic snapshot).
    pub fn keys(&self) -> Vec<K> {
        self.scan(|nodes| nodes.map(|n| n.key().clone()).collect())
    }

    /// Clones of the values, in order (atomic snapshot).
    pub fn values(&self) -> Vec<V> {
        self.scan(|nodes| nodes.map(|n| n.value().clone()).collect())
    }

    /// Clones of the entries, in order (atomic snapshot).
    pub fn items(&self) -> Vec<(K, V)> {
        self.snapshot()
    }

    /// Runs `f` with the dict locked exclusively: a compound update as one critical section
    /// (like a CPython per-object critical section). `f` gets a [`DictView`] for plain-key
    /// operations; reading the dict directly from inside works, writing to it directly fails
    /// with [`Error::Reentrant`]. Entries removed inside are dropped after the lock is released.
    pub fn with_lock<R>(
        &self,
        f: impl FnOnce(&mut DictView<'_, K, V, S>) -> R,
    ) -> Result<R, Error> {
        let access = self.access::<_, true>()?;
        let mut view = DictView {
            dict: self,
            grave: Graveyard(Vec::new()),
            replaced: Vec::new(),
        };
        let out = {
            let _held = Holding::new(self.addr());
            f(&mut view)
        };
        let DictView {
            grave, replaced, ..
        } = view;
        drop(access);
        drop(grave);
        drop(replaced);
        Ok(out)
    }
}

/// Plain-key access to a [`LockedDict`] inside [`LockedDict::with_lock`].
pub struct DictView<'d, K, V, S> {
    dict: &'d LockedDict<K, V, S>,
    /// Nodes removed inside the closure, freed after the lock is released.
    grave: Graveyard<K, V>,
    /// Values overwritten inside the closure, dropped after the lock is released.
    replaced: Vec<V>,
}

impl<K, V, S> DictView<'_, K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher,
{
    fn find(&self, key: &K) -> (u64, Spot<'_, K, V>) {
        let hash = self.dict.hasher.hash_one(key);
        let table = self.dict.table_ref();
        let mut cursor = table.start(hash);
        loop {
            match table.probe(hash, &mut cursor) {
                Probe::Vacant(slot) => return (hash, Spot::Vacant { slot }),
                Probe::Candidate { slot, node } if node.key() == key => {
                    return (hash, Spot::Found { slot, node })
                }
                Probe::Candidate { .. } => {}
            }
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.dict.table_ref().len()
    }

    /// Whether the dict is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A borrowed reference to the value for `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        match self.find(key).1 {
            Spot::Found { node, .. } => Some(node.value()),
            Spot::Vacant { .. } => None,
        }
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &K) -> bool {
        self.get(key).is_some()
    }

    /// Inserts or overwrites; returns the previous value.
    pub fn insert(&mut self, key: K, value: V) -> Result<Option<V>, Error> {
        if self.dict.is_frozen() {
            return Err(Error::Frozen(Container::Dict));
        }
        let (hash, spot) = self.find(&key);
        match spot {
            Spot::Found { slot, .. } => {
                let ptr = self.dict.table_ref().node_ptr(slot);
                // SAFETY: the exclusive lock is held by `with_lock`; `&mut self` rules out a
                // reference lent by this view, and re-entrant reads of the dict got clones.
                let old = unsafe { (*ptr).replace_value(value) };
                self.dict.bump(false);
                let clone = old.clone();
                self.replaced.push(old);
                Ok(Some(clone))
            }
            Spot::Vacant { slot } => {
                // SAFETY: exclusive lock held; `slot` ends the key's probe chain.
                unsafe { self.dict.append(slot, Node::alloc(hash, key, value)) };
                Ok(None)
            }
        }
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &K) -> Result<Option<V>, Error> {
        if self.dict.is_frozen() {
            return Err(Error::Frozen(Container::Dict));
        }
        match self.find(key).1 {
            Spot::Vacant { .. } => Ok(None),
            Spot::Found { slot, .. } => {
                // SAFETY: exclusive lock held; `slot` holds a live node.
                let old = unsafe { self.dict.table_ref().take(slot) };
                self.grave.0.push(old);
                self.dict.bump(true);
                // SAFETY: `old` is buried until the lock is released.
                Ok(Some(unsafe { (*old).value().clone() }))
            }
        }
    }

    /// Borrowed entries, in order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&K, &V)> + '_ {
        let table = self.dict.table_ref();
        (0..table.used()).filter_map(move |p| table.entry(p).map(|n| (n.key(), n.value())))
    }
}

impl<K, V, S> crate::freeze::Sealed for LockedDict<K, V, S> {}

impl<K, V, S> crate::freeze::Freezable<V> for LockedDict<K, V, S>
where
    K: crate::Freeze + Send + Sync,
    V: crate::Freeze + Send + Sync,
    S: Send + Sync,
{
    fn is_frozen(&self) -> bool {
        LockedDict::is_frozen(self)
    }

    fn visit_children(&self, f: &mut dyn FnMut(&V) -> bool) {
        self.scan(|nodes| {
            for node in nodes {
                if !f(node.value()) {
                    return;
                }
            }
        })
    }

    fn child_step(&self, index: usize) -> Option<crate::freeze::Step> {
        self.scan(|nodes| {
            let node = nodes.nth(index)?;
            Some(crate::freeze::Step::Key(node.key().repr()))
        })
    }

    fn version_tag(&self) -> u64 {
        self.version()
    }

    fn lock_for_freeze(
        &self,
        timeout: std::time::Duration,
    ) -> Result<Option<crate::freeze::FreezeLock<'_>>, Error> {
        crate::freeze::FreezeLock::rwlock(self.addr(), Container::Dict, &self.lock, timeout)
    }

    fn mark_frozen(&self, _lock: &crate::freeze::FreezeLock<'_>) {
        self.frozen.store(true, Ordering::Release);
    }

    fn map_children(&self, f: &mut dyn FnMut(&V) -> Option<V>) -> Result<(), Error> {
        let mut grave = Graveyard(Vec::new());
        let access = self.access::<_, true>()?;
        let table = self.table_ref();
        for node in (0..table.used()).filter_map(|p| table.entry(p)) {
            if let Some(value) = f(node.value()) {
                let fresh = Node::alloc(node.hash, node.key().clone(), value);
                // SAFETY: exclusive lock; the slot holds `node`, and `fresh` carries its key.
                grave
                    .0
                    .push(unsafe { table.replace(table.slot_of(node), fresh) });
                self.bump(false);
            }
        }
        drop(access);
        drop(grave);
        Ok(())
    }
}

impl<K: Clone, V: Clone, S> CheckedSource<K, V> for LockedDict<K, V, S> {
    fn len(&self) -> usize {
        LockedDict::len(self)
    }

    fn keys_version(&self) -> u64 {
        self.keys_version.load(Ordering::Acquire)
    }

    fn entry_at(&self, pos: usize) -> Result<Option<(K, V)>, ()> {
        let access = infallible(self.access::<_, false>());
        let table = self.table_ref();
        let out = if pos >= table.used() {
            Err(())
        } else {
            Ok(table
                .entry(pos)
                .map(|n| (n.key().clone(), n.value().clone())))
        };
        drop(access);
        out
    }
}

impl<K, V, S> Drop for LockedDict<K, V, S> {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: no other user is left; we own the table and its nodes.
        let table = unsafe { Box::from_raw(self.table.load(Ordering::Relaxed)) };
        drop(Graveyard(table.node_ptrs().collect()));
    }
}

impl<K, V, S> fmt::Debug for LockedDict<K, V, S>
where
    K: Clone + fmt::Debug,
    V: Clone + fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.snapshot()).finish()
    }
}
