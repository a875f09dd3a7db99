//! `GilFreeDict`: lock-free readers, writers serialized on the dict's own lock.
//!
//! Readers (`get`, `contains_key`, `len`, `version`, iteration) pin an epoch (a store to a
//! thread-local slot), load the current [`Table`] with Acquire and probe it; they take no lock
//! and write no shared cache line. Writers take `writer`, mutate the current table through the
//! protocol in [`crate::table`], and publish a rebuilt table with a Release store when it is
//! full. Unlinked nodes and replaced tables are retired to the epoch collector and freed once no
//! pinned reader can see them; values are therefore never dropped under the lock.
//!
//! Script `eq` never runs under the lock: a reader holds no lock anyway; a writer releases the
//! lock around it and, after re-taking it, checks that the table and the candidate's slot are
//! unchanged (pointer identity; ABA is impossible while pinned), restarting otherwise.

use std::fmt;
use std::marker::PhantomData;
use std::ptr;

use crate::dict::iter::{CheckedSource, Iter, IterChecked};
use crate::dict::FrozenDict;
use crate::lookup::{quick_compare, restart, Quick};
use crate::model::{DefaultHashBuilder, KeyModel};
use crate::reclaim::{self, Guard};
use crate::reentry::{self, Holding};
use crate::sync::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Mutex, MutexGuard, Ordering};
use crate::table::{Node, Probe, Table};
use crate::{Container, Error};

/// A concurrent, insertion-ordered dict whose readers take no lock.
///
/// Python dict semantics: insertion order, overwrite keeps the position, LIFO `popitem`.
/// `K: Clone` because an overwrite publishes a new node that keeps the original key, and
/// `V: Clone` because values that a concurrent reader may still see are returned as clones
/// (a refcount increment for interpreter handles) rather than moved out.
pub struct GilFreeDict<K, V, S = DefaultHashBuilder> {
    table: AtomicPtr<Table<K, V>>,
    writer: Mutex<()>,
    len: AtomicUsize,
    version: AtomicU64,
    keys_version: AtomicU64,
    frozen: AtomicBool,
    hasher: S,
    _owns: PhantomData<Box<Node<K, V>>>,
}

// SAFETY: the dict owns its nodes (K, V) and shares them between threads: readers on any
// thread get `&K`/`&V` (needs Sync), and any thread may drop a retired node (needs Send).
unsafe impl<K: Send + Sync, V: Send + Sync, S: Send> Send for GilFreeDict<K, V, S> {}
// SAFETY: as above; `S` is only read through `&S`.
unsafe impl<K: Send + Sync, V: Send + Sync, S: Sync> Sync for GilFreeDict<K, V, S> {}

/// Where a writer's search ended.
enum Spot<'g, K, V> {
    Found { slot: usize, node: &'g Node<K, V> },
    Vacant { slot: usize },
}

/// A writer's search result: its critical section and where the key is (or would go).
type Located<'g, K, V> = (WriteSession<'g, K, V>, Spot<'g, K, V>);

/// A writer inside its critical section: the lock, and the table it locked.
struct WriteSession<'g, K, V> {
    _lock: MutexGuard<'g, ()>,
    table: &'g Table<K, V>,
}

common_dict_api!(GilFreeDict);

impl<K, V, S> GilFreeDict<K, V, S> {
    fn from_table(table: Table<K, V>, hasher: S) -> Self {
        GilFreeDict {
            len: AtomicUsize::new(table.len()),
            table: AtomicPtr::new(Box::into_raw(Box::new(table))),
            writer: Mutex::new(()),
            version: AtomicU64::new(0),
            keys_version: AtomicU64::new(0),
            frozen: AtomicBool::new(false),
            hasher,
            _owns: PhantomData,
        }
    }

    /// Makes this dict immutable (one-way). Linearizable with writers: a concurrent write
    /// either lands before the freeze or fails with [`Error::Frozen`].
    ///
    /// This dict only: values that are containers stay as they are; to freeze a whole object
    /// tree, use [`freeze`](crate::freeze()).
    ///
    /// Fails with [`Error::Reentrant`] from inside a closure that runs under this dict's lock
    /// (the enclosing write would otherwise land after the freeze).
    pub fn freeze(&self) -> Result<(), Error> {
        let Some(_lock) = self.exclusive() else {
            return Err(Error::Reentrant(Container::Dict));
        };
        self.frozen.store(true, Ordering::Release);
        Ok(())
    }

    /// Takes the writer lock, or `None` if this thread already holds it (it runs a closure
    /// under this dict's lock, so no other writer can run).
    fn exclusive(&self) -> Option<MutexGuard<'_, ()>> {
        (!reentry::held_by_me(self.addr())).then(|| self.writer.lock())
    }

    /// The read-only view of this dict if it is frozen: borrowed reads with no lock, no epoch
    /// pin and no refcount traffic, valid for as long as the dict.
    pub fn frozen(&self) -> Option<FrozenDict<'_, K, V, S>> {
        if !self.frozen.load(Ordering::Acquire) {
            return None;
        }
        // SAFETY: frozen (Acquire pairs with the Release in `freeze`, taken under the writer
        // lock after every earlier write): no writer will replace the table or retire a node
        // again, so the current table and its nodes live as long as `&self`.
        Some(unsafe { FrozenDict::new(&*self.table.load(Ordering::Acquire), &self.hasher) })
    }

    fn addr(&self) -> usize {
        self as *const Self as usize
    }

    /// The current table, valid for as long as `guard` is pinned.
    #[inline]
    pub(crate) fn current<'g>(&'g self, _guard: &'g Guard) -> &'g Table<K, V> {
        // SAFETY: `table` always points to a live table. A replaced table is retired only
        // after the new one is published, so a guard pinned before this load keeps it alive.
        unsafe { &*self.table.load(Ordering::Acquire) }
    }

    /// Takes the writer lock for a mutation: refuses re-entry and frozen targets.
    fn lock<'g, E>(&'g self, guard: &'g Guard) -> Result<WriteSession<'g, K, V>, Error<E>> {
        if reentry::held_by_me(self.addr()) {
            return Err(Error::Reentrant(Container::Dict));
        }
        let lock = self.writer.lock();
        if self.frozen.load(Ordering::Relaxed) {
            return Err(Error::Frozen(Container::Dict));
        }
        Ok(WriteSession {
            _lock: lock,
            table: self.current(guard),
        })
    }

    /// Records a mutation (under the writer lock).
    fn bump(&self, table: &Table<K, V>, keys_changed: bool) {
        self.len.store(table.len(), Ordering::Release);
        if keys_changed {
            let k = self.keys_version.load(Ordering::Relaxed);
            self.keys_version.store(k + 1, Ordering::Release);
        }
        let v = self.version.load(Ordering::Relaxed);
        self.version.store(v + 1, Ordering::Release);
    }

    /// Lock-free search. The returned node stays valid while `guard` is pinned.
    fn find<'g, M: KeyModel<K>>(
        &'g self,
        guard: &'g Guard,
        m: &M,
        hash: u64,
        key: &K,
    ) -> Result<Option<&'g Node<K, V>>, Error<M::Error>> {
        let mut restarts = 0;
        'restart: loop {
            let table = self.current(guard);
            let mut cursor = table.start(hash);
            loop {
                let (slot, node) = match table.probe(hash, &mut cursor) {
                    Probe::Vacant(_) => return Ok(None),
                    Probe::Candidate { slot, node } => (slot, node),
                };
                match quick_compare(m, node.key(), key)? {
                    Quick::Equal => return Ok(Some(node)),
                    Quick::NotEqual => {}
                    Quick::Script => {
                        let eq = m.eq(node.key(), key).map_err(Error::Callback)?;
                        if !(ptr::eq(self.current(guard), table) && table.slot_holds(slot, node)) {
                            restart(&mut restarts)?;
                            continue 'restart;
                        }
                        if eq {
                            return Ok(Some(node));
                        }
                    }
                }
            }
        }
    }

    /// Writer search: returns with the lock held, at the key's node or the vacant slot where it
    /// would go. Script `eq` runs with the lock released.
    fn locate<'g, M: KeyModel<K>>(
        &'g self,
        guard: &'g Guard,
        m: &M,
        hash: u64,
        key: &K,
    ) -> Result<Located<'g, K, V>, Error<M::Error>> {
        let mut restarts = 0;
        'restart: loop {
            let mut locked = self.lock(guard)?;
            let table = locked.table;
            let mut cursor = table.start(hash);
            loop {
                let (slot, node) = match table.probe(hash, &mut cursor) {
                    Probe::Vacant(slot) => return Ok((locked, Spot::Vacant { slot })),
                    Probe::Candidate { slot, node } => (slot, node),
                };
                match quick_compare(m, node.key(), key)? {
                    Quick::Equal => return Ok((locked, Spot::Found { slot, node })),
                    Quick::NotEqual => {}
                    Quick::Script => {
                        drop(locked);
                        // The node stays allocated while `guard` is pinned, even if removed.
                        let eq = m.eq(node.key(), key).map_err(Error::Callback)?;
                        locked = self.lock(guard)?;
                        if !(ptr::eq(locked.table, table) && table.slot_holds(slot, node)) {
                            drop(locked);
                            restart(&mut restarts)?;
                            continue 'restart;
                        }
                        if eq {
                            return Ok((locked, Spot::Found { slot, node }));
                        }
                    }
                }
            }
        }
    }

    /// Appends a fresh node at `slot`, publishing a rebuilt table if the current one is full.
    /// Returns whether it retired a table: the caller then calls `reclaim::flush` *after*
    /// releasing the lock (flushing may run destructors, which are script code), so that the
    /// old table is freed promptly and memory stays bounded under resize churn.
    ///
    /// # Safety
    /// Writer lock held; `slot` is the vacant end of the node's probe chain in `table`, the
    /// current table; `node` is fresh.
    #[must_use]
    unsafe fn append(
        &self,
        guard: &Guard,
        table: &Table<K, V>,
        slot: usize,
        node: *mut Node<K, V>,
    ) -> bool {
        // SAFETY: forwarded from the caller.
        match unsafe { table.append(slot, node) } {
            None => {
                self.bump(table, true);
                false
            }
            Some(fresh) => {
                let fresh = Box::into_raw(fresh);
                self.table.store(fresh, Ordering::Release);
                // SAFETY: the old table is unlinked (the new one is published) and retired
                // once; its nodes now belong to `fresh`, and dropping a `Table` frees no node.
                unsafe { reclaim::retire(guard, table as *const Table<K, V> as *mut Table<K, V>) };
                // SAFETY: just published, and only writers (we hold the lock) replace it.
                self.bump(unsafe { &*fresh }, true);
                true
            }
        }
    }
}

impl<K, V, S> GilFreeDict<K, V, S>
where
    K: Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Returns a clone of the value for `key` (a refcount increment for handles).
    pub fn get_in<M: KeyModel<K>>(&self, m: &M, key: &K) -> Result<Option<V>, Error<M::Error>> {
        self.get_with_in(m, key, V::clone)
    }

    /// Calls `f` with a borrowed reference to the value for `key` (no refcount traffic).
    /// `f` runs with no lock held and may use the dict.
    pub fn get_with_in<M: KeyModel<K>, R>(
        &self,
        m: &M,
        key: &K,
        f: impl FnOnce(&V) -> R,
    ) -> Result<Option<R>, Error<M::Error>> {
        let hash = m.hash(key).map_err(Error::Callback)?;
        let guard = reclaim::pin();
        Ok(self.find(&guard, m, hash, key)?.map(|n| f(n.value())))
    }

    /// Whether `key` is present.
    pub fn contains_key_in<M: KeyModel<K>>(&self, m: &M, key: &K) -> Result<bool, Error<M::Error>> {
        Ok(self.get_with_in(m, key, |_| ())?.is_some())
    }

    /// Inserts or overwrites; an overwrite keeps the key's position (and the original key
    /// object, as Python does) and returns the previous value.
    pub fn insert_in<M: KeyModel<K>>(
        &self,
        m: &M,
        key: K,
        value: V,
    ) -> Result<Option<V>, Error<M::Error>> {
        self.upsert(m, key, |_| value, false)
    }

    /// Atomic read-modify-write of one key: `f` gets the current value (if any) and returns
    /// the new one; returns the previous value. `f` runs under the writer lock: it may read
    /// this dict, but a write to it from inside fails with [`Error::Reentrant`].
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
        let guard = reclaim::pin();
        let (locked, spot) = self.locate(&guard, m, hash, &key)?;
        let table = locked.table;
        let compute = |old: Option<&V>| {
            let _held = user_code.then(|| Holding::new(self.addr()));
            f(old)
        };
        let mut rebuilt = false;
        let old = match spot {
            Spot::Found { slot, node } => {
                let fresh = Node::alloc(hash, node.key().clone(), compute(Some(node.value())));
                // SAFETY: writer lock held; `slot` holds `node`, whose key `fresh` carries.
                let old = unsafe { table.replace(slot, fresh) };
                self.bump(table, false);
                Some(old)
            }
            Spot::Vacant { slot } => {
                let node = Node::alloc(hash, key, compute(None));
                // SAFETY: writer lock held; `slot` ends the key's probe chain in `table` (a
                // user closure cannot have written to this dict meanwhile).
                rebuilt = unsafe { self.append(&guard, table, slot, node) };
                None
            }
        };
        drop(locked);
        if rebuilt {
            reclaim::flush(&guard);
        }
        Ok(old.map(|p| {
            // SAFETY: `p` was unlinked above and is retired exactly once, here; it stays
            // readable until `guard` unpins.
            unsafe {
                let v = (*p).value().clone();
                reclaim::retire(&guard, p);
                v
            }
        }))
    }

    /// Removes `key`, returning its value (Python's `pop(key)`); `None` if absent.
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
        let guard = reclaim::pin();
        let (locked, spot) = self.locate(&guard, m, hash, key)?;
        let Spot::Found { slot, .. } = spot else {
            return Ok(None);
        };
        // SAFETY: writer lock held; `slot` holds a live node.
        let old = unsafe { locked.table.take(slot) };
        self.bump(locked.table, true);
        drop(locked);
        // SAFETY: unlinked above, retired once here, readable until `guard` unpins.
        Ok(Some(unsafe { self.retire_entry(&guard, old) }))
    }

    /// Python's `setdefault`: the value for `key`, inserting `default` if absent. Calls `hash`
    /// once and `eq` at most once per colliding key.
    pub fn setdefault_in<M: KeyModel<K>>(
        &self,
        m: &M,
        key: K,
        default: V,
    ) -> Result<V, Error<M::Error>> {
        let hash = m.hash(&key).map_err(Error::Callback)?;
        let guard = reclaim::pin();
        let (locked, spot) = self.locate(&guard, m, hash, &key)?;
        let mut rebuilt = false;
        let node = match spot {
            Spot::Found { node, .. } => node as *const Node<K, V>,
            Spot::Vacant { slot } => {
                let node = Node::alloc(hash, key, default);
                // SAFETY: writer lock held; `slot` ends the key's probe chain.
                rebuilt = unsafe { self.append(&guard, locked.table, slot, node) };
                node
            }
        };
        drop(locked);
        if rebuilt {
            reclaim::flush(&guard);
        }
        // SAFETY: the node was reachable while pinned, so it lives until `guard` unpins.
        Ok(unsafe { (*node).value().clone() })
    }

    /// Removes and returns the last inserted entry (LIFO, Python's `popitem`).
    pub fn popitem(&self) -> Result<Option<(K, V)>, Error> {
        let guard = reclaim::pin();
        let locked = self.lock(&guard)?;
        let Some(node) = locked.table.last() else {
            return Ok(None);
        };
        let slot = locked.table.slot_of(node);
        // SAFETY: writer lock held; `slot` holds `node`.
        let old = unsafe { locked.table.take(slot) };
        self.bump(locked.table, true);
        drop(locked);
        // SAFETY: unlinked above, retired once.
        Ok(Some(unsafe { self.retire_entry(&guard, old) }))
    }

    /// Clones the entry out of an unlinked node and retires it.
    ///
    /// # Safety
    /// `node` is unlinked from the dict and retired by no one else.
    unsafe fn retire_entry(&self, guard: &Guard, node: *mut Node<K, V>) -> (K, V) {
        // SAFETY: caller contract; the node is readable until `guard` unpins.
        unsafe {
            let entry = ((*node).key().clone(), (*node).value().clone());
            reclaim::retire(guard, node);
            entry
        }
    }

    /// Removes every entry. The entries are freed after the lock is released, once no reader
    /// can see them.
    pub fn clear(&self) -> Result<(), Error> {
        let guard = reclaim::pin();
        let locked = self.lock(&guard)?;
        let old = locked.table;
        let fresh = Box::into_raw(Box::new(Table::with_capacity(0)));
        self.table.store(fresh, Ordering::Release);
        // SAFETY: just published, writer lock held.
        self.bump(unsafe { &*fresh }, true);
        drop(locked);
        // SAFETY: `old` is unlinked and retired once, with its nodes (no other table holds them).
        unsafe { reclaim::retire(&guard, Doomed::new(old)) };
        reclaim::flush(&guard);
        Ok(())
    }

    /// Keeps only the entries for which `f` returns `true`, in one critical section. `f` runs
    /// under the writer lock: it may read this dict; writing to it fails with `Reentrant`.
    pub fn retain(&self, mut f: impl FnMut(&K, &V) -> bool) -> Result<(), Error> {
        let guard = reclaim::pin();
        let locked = self.lock(&guard)?;
        let table = locked.table;
        let _held = Holding::new(self.addr());
        for pos in 0..table.used() {
            if let Some(node) = table.entry(pos) {
                if !f(node.key(), node.value()) {
                    // SAFETY: writer lock held; `slot_of` finds the slot holding `node`.
                    let old = unsafe { table.take(table.slot_of(node)) };
                    // Recorded and retired at once, so a panicking `f` leaves the dict
                    // consistent. Retiring defers the drop past the lock and every reader.
                    self.bump(table, true);
                    // SAFETY: unlinked just above, retired once.
                    unsafe { reclaim::retire(&guard, old) };
                }
            }
        }
        Ok(())
    }

    /// An atomic copy (Python's `dict.copy()`): a new, mutable dict with the same entries in
    /// the same order. Taken under the writer lock, so it is a consistent snapshot.
    pub fn copy(&self) -> Self
    where
        S: Clone,
    {
        let guard = reclaim::pin();
        let _lock = self.exclusive();
        let table = self.current(&guard);
        let fresh = Table::with_capacity(table.len());
        for node in (0..table.used()).filter_map(|p| table.entry(p)) {
            let copy = Node::alloc(node.hash, node.key().clone(), node.value().clone());
            // SAFETY: `fresh` is private to this thread, and keys are distinct.
            unsafe { fresh.push(fresh.vacant_end(node.hash), copy) };
        }
        Self::from_table(fresh, self.hasher.clone())
    }

    /// An atomic snapshot of the entries, in order.
    pub fn snapshot(&self) -> Vec<(K, V)> {
        let guard = reclaim::pin();
        let _lock = self.exclusive();
        let table = self.current(&guard);
        (0..table.used())
            .filter_map(|p| table.entry(p))
            .map(|n| (n.key().clone(), n.value().clone()))
            .collect()
    }

    /// A weakly consistent iterator over clones of the entries, in insertion order. It never
    /// blocks writers, never fails, and yields each entry at most once; entries added after it
    /// was created may or may not be seen. Double-ended (`rev()` is Python's `reversed`).
    pub fn iter(&self) -> Iter<'_, K, V> {
        let guard = reclaim::pin();
        // SAFETY: the table is loaded under `guard`, which the iterator keeps pinned.
        let table = self.table.load(Ordering::Acquire);
        // SAFETY: as in `current`.
        let end = unsafe { (*table).used() };
        Iter::new(guard, table, end)
    }

    /// An iterator with CPython's checks: it yields `Err(ChangedSize)` if the dict's size
    /// changes while iterating, `Err(KeysChanged)` if its keys change at the same size, and
    /// then ends. Overwriting values while iterating is allowed.
    pub fn iter_checked(&self) -> IterChecked<'_, K, V, Self> {
        IterChecked::new(self)
    }

    /// Clones of the keys, in order.
    pub fn keys(&self) -> Vec<K> {
        self.iter().map(|(k, _)| k).collect()
    }

    /// Clones of the values, in order.
    pub fn values(&self) -> Vec<V> {
        self.iter().map(|(_, v)| v).collect()
    }

    /// Clones of the entries, in order.
    pub fn items(&self) -> Vec<(K, V)> {
        self.iter().collect()
    }

    /// Pins the current thread for a batch of borrowed reads (no refcount traffic, one pin).
    pub fn pin(&self) -> Pinned<'_, K, V, S> {
        Pinned {
            dict: self,
            guard: reclaim::pin(),
        }
    }
}

/// A pinned read session on a [`GilFreeDict`]: borrowed reads valid while it lives.
pub struct Pinned<'d, K, V, S> {
    dict: &'d GilFreeDict<K, V, S>,
    guard: Guard,
}

impl<K, V, S> Pinned<'_, K, V, S>
where
    K: Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A borrowed reference to the value for `key`.
    pub fn get_in<M: KeyModel<K>>(&self, m: &M, key: &K) -> Result<Option<&V>, Error<M::Error>> {
        let hash = m.hash(key).map_err(Error::Callback)?;
        Ok(self
            .dict
            .find(&self.guard, m, hash, key)?
            .map(|n| n.value()))
    }

    /// A borrowed reference to the value for a plain key.
    pub fn get(&self, key: &K) -> Option<&V>
    where
        K: std::hash::Hash + Eq,
        S: std::hash::BuildHasher,
    {
        crate::model::infallible(self.get_in(&self.dict.plain(), key))
    }

    /// Borrowed entries in order (weakly consistent, as [`GilFreeDict::iter`]).
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&K, &V)> + '_ {
        let table = self.dict.current(&self.guard);
        (0..table.used()).filter_map(move |p| table.entry(p).map(|n| (n.key(), n.value())))
    }
}

impl<K: Clone, V: Clone, S> CheckedSource<K, V> for GilFreeDict<K, V, S> {
    fn len(&self) -> usize {
        GilFreeDict::len(self)
    }

    fn keys_version(&self) -> u64 {
        self.keys_version.load(Ordering::Acquire)
    }

    fn entry_at(&self, pos: usize) -> Result<Option<(K, V)>, ()> {
        let guard = reclaim::pin();
        let table = self.current(&guard);
        if pos >= table.used() {
            return Err(());
        }
        Ok(table
            .entry(pos)
            .map(|n| (n.key().clone(), n.value().clone())))
    }
}

impl<K, V, S> crate::freeze::Sealed for GilFreeDict<K, V, S> {}

impl<K, V, S> crate::freeze::Freezable<V> for GilFreeDict<K, V, S>
where
    K: crate::Freeze + Send + Sync + 'static + Clone,
    V: crate::Freeze + Send + Sync + 'static,
    S: Send + Sync,
{
    fn is_frozen(&self) -> bool {
        GilFreeDict::is_frozen(self)
    }

    fn visit_children(&self, f: &mut dyn FnMut(&V) -> bool) {
        let guard = reclaim::pin();
        let table = self.current(&guard);
        for node in (0..table.used()).filter_map(|p| table.entry(p)) {
            if !f(node.value()) {
                return;
            }
        }
    }

    fn child_step(&self, index: usize) -> Option<crate::freeze::Step> {
        let guard = reclaim::pin();
        let table = self.current(&guard);
        let node = (0..table.used())
            .filter_map(|p| table.entry(p))
            .nth(index)?;
        Some(crate::freeze::Step::Key(node.key().repr()))
    }

    fn version_tag(&self) -> u64 {
        self.version()
    }

    fn lock_for_freeze(
        &self,
        timeout: std::time::Duration,
    ) -> Result<Option<crate::freeze::FreezeLock<'_>>, Error> {
        crate::freeze::FreezeLock::mutex(self.addr(), Container::Dict, &self.writer, timeout)
    }

    fn mark_frozen(&self, _lock: &crate::freeze::FreezeLock<'_>) {
        self.frozen.store(true, Ordering::Release);
    }

    fn map_children(&self, f: &mut dyn FnMut(&V) -> Option<V>) -> Result<(), Error> {
        let guard = reclaim::pin();
        let locked = self.lock(&guard)?;
        let table = locked.table;
        for node in (0..table.used()).filter_map(|p| table.entry(p)) {
            if let Some(value) = f(node.value()) {
                let fresh = Node::alloc(node.hash, node.key().clone(), value);
                // SAFETY: writer lock held; `slot_of` finds the slot holding `node`, and
                // `fresh` carries its key.
                let old = unsafe { table.replace(table.slot_of(node), fresh) };
                self.bump(table, false);
                // SAFETY: unlinked just above, retired once.
                unsafe { reclaim::retire(&guard, old) };
            }
        }
        Ok(())
    }
}

/// A retired table that also owns its nodes (after `clear`, or when the dict is dropped).
struct Doomed<K, V>(*mut Table<K, V>);

impl<K, V> Doomed<K, V> {
    fn new(table: &Table<K, V>) -> *mut Doomed<K, V> {
        Box::into_raw(Box::new(Doomed(
            table as *const Table<K, V> as *mut Table<K, V>,
        )))
    }
}

impl<K, V> Drop for Doomed<K, V> {
    fn drop(&mut self) {
        // SAFETY: a `Doomed` is created only for an unlinked table whose nodes are in no other
        // table, and is dropped once, after every reader that could see them unpinned.
        unsafe {
            let table = Box::from_raw(self.0);
            for node in table.node_ptrs() {
                drop(Box::from_raw(node));
            }
        }
    }
}

impl<K, V, S> Drop for GilFreeDict<K, V, S> {
    fn drop(&mut self) {
        // `&mut self`: no reader or writer is left. Tables and nodes retired earlier are owned
        // by the collector; the current table and its nodes are ours.
        drop(Doomed(self.table.load(Ordering::Relaxed)));
    }
}

impl<K, V, S> fmt::Debug for GilFreeDict<K, V, S>
where
    K: Clone + Send + Sync + 'static + fmt::Debug,
    V: Clone + Send + Sync + 'static + fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}
