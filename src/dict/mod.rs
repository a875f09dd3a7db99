//! The dicts: one generic core, [`Dict<K, V, S, St>`], over two stores.
//!
//! Every public operation is written once, here, against the [`DictStore`] interface; the two
//! variants are type aliases that pick the store:
//!
//! - [`GilFreeDict`] = `Dict<K, V, S, GilFreeStore<K, V>>`: readers take no lock and write no
//!   shared cache line; writers serialize on the dict's lock ([`gilfree`]).
//! - [`LockedDict`] = `Dict<K, V, S, LockedStore<K, V>>`: one lock for everything, an
//!   in-place compact table ([`locked`]).
//!
//! Switching a VM from one to the other is a type change; code generic over the variant takes
//! `St: DictStore<K, V>` (see the [`Dict`] docs).
//!
//! ## The object-model protocol (both variants)
//!
//! - `hash` is called once per operation, before any section is opened.
//! - In a section, a probe yields candidates (entries whose hash tag matches). Each is settled
//!   in place when that runs no script code: identity (`identical`), or a pure `eq`.
//! - A candidate that needs script `eq` is *cloned* (key, and value for reads) and compared
//!   after the section is closed: no lock held, no epoch pinned.
//!   - A **read** then answers from its clones: it linearizes at the moment it looked, and
//!     never restarts or fails because of concurrent writers.
//!   - A **write** re-opens its section and checks, with the [`Stamp`] it took, that the table
//!     was not rebuilt, the key it found is still there and no entry with the same hash tag was
//!     appended meanwhile; otherwise it starts over, at most
//!     [`MAX_LOOKUP_RESTARTS`](crate::MAX_LOOKUP_RESTARTS) times, then fails with
//!     [`Error::MutatedDuringLookup`].
//! - User closures that run inside a write section (`upsert`, `compute`,
//!   `get_or_insert_with`, `retain`, `with_lock`) are
//!   registered in `reentry`: they may read the dict, and a write to it from inside
//!   fails with [`Error::Reentrant`] instead of deadlocking.

mod frozen;
pub mod gilfree;
mod index;
mod iter;
pub mod locked;
mod store;

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;

pub use frozen::{FrozenDict, FrozenDictIter};
pub use gilfree::GilFreeStore;
pub use iter::IterChecked;
pub use locked::LockedStore;
pub use store::{DictStore, FrozenTable, Section, Stamp, WriteSection};

use crate::lookup::{quick_compare, restart, Quick};
use crate::model::{infallible, DefaultHashBuilder, KeyModel, Plain};
use crate::reentry::Holding;
use crate::storage::{Ref, Storable};
use crate::Error;
use index::{Found, Verdict};

/// What [`Dict::compute`] does with the entry it looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compute<V> {
    /// Leave it as it is (an absent key stays absent).
    Keep,
    /// Insert this value, or overwrite the present one (the position is kept).
    Set(V),
    /// Remove the entry (nothing happens if the key is absent).
    Remove,
}

/// A concurrent, insertion-ordered dict with Python dict semantics, generic over its store.
///
/// Use it through its aliases, [`GilFreeDict`] and [`LockedDict`]; be generic over the variant
/// with a store parameter:
///
/// ```
/// use gilfree::{Dict, DictStore, GilFreeDict, LockedDict};
///
/// fn bump_counter<St: DictStore<String, i64>>(globals: &Dict<String, i64, gilfree::DefaultHashBuilder, St>) {
///     globals.upsert("calls".to_string(), |n| n.copied().unwrap_or(0) + 1).unwrap();
/// }
///
/// let a: LockedDict<String, i64> = LockedDict::new();
/// let b: GilFreeDict<String, i64> = GilFreeDict::new();
/// bump_counter(&a);
/// bump_counter(&b);
/// assert_eq!(a.get("calls"), b.get("calls"));
/// ```
///
/// Python dict semantics: insertion order, an overwrite keeps the position (and the original
/// key object), LIFO `popitem`, order-insensitive `==`. Every method is atomic (`with_lock`
/// makes a compound update one critical section). Keyed methods come in two forms: plain
/// (`get`, `insert`, ...) for `K: Hash + Eq` keys, hashed with the dict's `BuildHasher` and
/// looked up by any borrowed form (`d.get("x")` on `String` keys), and `*_in(&model, ...)` for
/// interpreter keys whose hash and `eq` go through a [`KeyModel`].
#[repr(C)]
pub struct Dict<K, V, S = DefaultHashBuilder, St = GilFreeStore<K, V>> {
    // First field (`repr(C)`): the dict's address is its store's, which is the identity that
    // re-entry detection and tree-freeze use.
    store: St,
    hasher: S,
    _kv: PhantomData<fn(K) -> V>,
}

// A panic in user code (a key's or value's `Clone` or `Drop`, a closure, script `hash` or
// `eq`) leaves the dict consistent and usable: a write is published whole or not at all, and
// the lock is released on unwind. So a `&Dict` may cross `catch_unwind` as a std `HashMap` of
// the same keys and values could.
impl<K, V, S, St> std::panic::RefUnwindSafe for Dict<K, V, S, St>
where
    K: std::panic::RefUnwindSafe,
    V: std::panic::RefUnwindSafe,
    S: std::panic::RefUnwindSafe,
{
}
impl<K, V, S, St> std::panic::UnwindSafe for Dict<K, V, S, St>
where
    K: std::panic::UnwindSafe,
    V: std::panic::UnwindSafe,
    S: std::panic::UnwindSafe,
{
}

/// A dict whose readers take no lock and write no shared cache line; writers serialize on the
/// dict's own lock. See [`Dict`] for the API and [`gilfree`] for the protocol.
///
/// Values are stored inline when their type is a one-word handle ([`Storable`]), boxed
/// otherwise; reads return clones (a refcount increment for handles) or borrow
/// ([`get_with`](Dict::get_with), [`pin`](Dict::pin)).
pub type GilFreeDict<K, V, S = DefaultHashBuilder> = Dict<K, V, S, GilFreeStore<K, V>>;

/// A dict guarded by one lock of its own; every operation is linearizable. See [`Dict`] for
/// the API and [`locked`] for the protocol.
pub type LockedDict<K, V, S = DefaultHashBuilder> = Dict<K, V, S, LockedStore<K, V>>;

/// A writer's search result: the open write section, and the key's bucket if present.
type Located<'a, W, E> = Result<(W, Option<usize>), Error<E>>;

/// The fast path's judge: identity or a pure `eq` settle a candidate; script `eq` cannot.
#[inline(always)]
fn quick_verdict<K, Q: ?Sized, M: KeyModel<K, Q>>(
    m: &M,
    stored: &K,
    probe: &Q,
) -> Result<Verdict, Error<M::Error>> {
    Ok(match quick_compare(m, stored, probe)? {
        Quick::Equal => Verdict::Match,
        Quick::NotEqual => Verdict::Skip,
        Quick::Script => Verdict::Unsure,
    })
}

impl<K, V, St: DictStore<K, V>> Dict<K, V, DefaultHashBuilder, St> {
    /// An empty dict with the default hasher.
    pub fn new() -> Self {
        Self::with_hasher(DefaultHashBuilder::default())
    }

    /// An empty dict with room for `capacity` entries before it grows.
    pub fn with_capacity(capacity: usize) -> Self {
        Self::with_capacity_and_hasher(capacity, DefaultHashBuilder::default())
    }
}

impl<K, V, S: Default, St: DictStore<K, V>> Default for Dict<K, V, S, St> {
    fn default() -> Self {
        Self::with_hasher(S::default())
    }
}

impl<K, V, S, St: DictStore<K, V>> Dict<K, V, S, St> {
    /// An empty dict that hashes plain keys with `hasher`.
    pub fn with_hasher(hasher: S) -> Self {
        Self::with_capacity_and_hasher(0, hasher)
    }

    /// An empty dict with room for `capacity` entries, hashing plain keys with `hasher`.
    pub fn with_capacity_and_hasher(capacity: usize, hasher: S) -> Self {
        Dict {
            store: St::with_capacity(capacity),
            hasher,
            _kv: PhantomData,
        }
    }

    /// The hasher used for plain keys.
    pub fn hasher(&self) -> &S {
        &self.hasher
    }

    /// The plain-key model of this dict (its `BuildHasher` and `Eq`).
    pub fn plain(&self) -> Plain<'_, S> {
        Plain(&self.hasher)
    }

    /// Number of entries: one atomic load, no lock (exact when no writer is running).
    #[inline]
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// Whether the dict is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many entries the dict holds before its table must be rebuilt.
    pub fn capacity(&self) -> usize {
        self.store.capacity()
    }

    /// A tag that changes on every mutation (for inline caches of global lookups, like
    /// CPython's dict versions): one atomic load, no lock.
    #[inline]
    pub fn version(&self) -> u64 {
        self.store.version()
    }

    /// Whether the dict is frozen (every mutator then fails with [`Error::Frozen`]).
    pub fn is_frozen(&self) -> bool {
        self.store.is_frozen()
    }

    /// Makes this dict immutable (one-way). Linearizable with writers: a concurrent write
    /// either lands before the freeze or fails with [`Error::Frozen`].
    ///
    /// This dict only: values that are containers stay as they are; to freeze a whole object
    /// tree, use [`freeze`](crate::freeze()). Fails with [`Error::Reentrant`] from inside a
    /// closure that runs under this dict's lock (the enclosing write would land after it).
    pub fn freeze(&self) -> Result<(), Error> {
        self.store.freeze()
    }

    /// The read-only view of this dict if it is frozen: borrowed reads with no lock, no epoch
    /// pin and no refcount traffic, valid for as long as the dict.
    pub fn frozen(&self) -> Option<FrozenDict<'_, K, V, S, St>> {
        // SAFETY: frozen (an Acquire load that pairs with the Release made under the lock
        // after every earlier write): the store never changes again while `&self` lives.
        self.store
            .is_frozen()
            .then(|| unsafe { FrozenDict::new(&self.store, &self.hasher) })
    }
}

impl<K, V, S, St> Dict<K, V, S, St>
where
    K: Clone,
    V: Clone,
    St: DictStore<K, V>,
{
    /// Read lookup (see the module docs): `f` gets the value, borrowed when no script `eq`
    /// ran, else the clone taken when the candidates were compared. `user`: `f` is user code
    /// (lent through `with_value`); otherwise it is the crate's clone or nothing
    /// (`peek_value`).
    #[inline(always)]
    fn lookup<Q: ?Sized, M: KeyModel<K, Q>, R>(
        &self,
        m: &M,
        key: &Q,
        user: bool,
        f: impl FnOnce(&V) -> R,
    ) -> Result<Option<R>, Error<M::Error>> {
        let hash = m.hash(key).map_err(Error::Callback)?;
        let section = self.store.read();
        match section.find(hash, |k| quick_verdict(m, k, key))? {
            Found::At(pos) if user => return Ok(Some(section.with_value(pos, f))),
            Found::At(pos) => return Ok(Some(section.peek_value(pos, f))),
            Found::Absent => return Ok(None),
            Found::Unsure => {}
        }
        // Slow path: clone the candidates, close the section, then run script `eq`.
        let mut script: Vec<(K, V)> = Vec::new();
        let settled = slow_probe(&section, m, hash, key, |b| {
            script.push((section.key(b).clone(), section.clone_value(b)));
        })?
        .map(|b| section.clone_value(b));
        drop(section);
        for (k, v) in &script {
            if m.eq(k, key).map_err(Error::Callback)? {
                return Ok(Some(f(v)));
            }
        }
        Ok(settled.map(|v| f(&v)))
    }

    /// Writer search (see the module docs): returns with the write section open, at the key's
    /// entry or `None` if absent.
    #[inline(always)]
    fn locate<Q: ?Sized, M: KeyModel<K, Q>>(
        &self,
        m: &M,
        hash: u64,
        key: &Q,
    ) -> Located<'_, St::Write<'_>, M::Error> {
        let w = self.store.write()?;
        match w.find(hash, |k| quick_verdict(m, k, key))? {
            Found::At(pos) => Ok((w, Some(pos))),
            Found::Absent => Ok((w, None)),
            Found::Unsure => self.locate_slow(m, hash, key, w),
        }
    }

    /// [`locate`](Self::locate) once a candidate needed script `eq`: compares the candidates
    /// with the section closed, then validates under a new one (restarting if it moved).
    #[cold]
    #[inline(never)]
    fn locate_slow<'s, Q: ?Sized, M: KeyModel<K, Q>>(
        &'s self,
        m: &M,
        hash: u64,
        key: &Q,
        first: St::Write<'s>,
    ) -> Located<'s, St::Write<'s>, M::Error> {
        let mut restarts = 0;
        let mut open = Some(first);
        loop {
            let w = match open.take() {
                Some(w) => w,
                None => {
                    let w = self.store.write()?;
                    match w.find(hash, |k| quick_verdict(m, k, key))? {
                        Found::At(pos) => return Ok((w, Some(pos))),
                        Found::Absent => return Ok((w, None)),
                        Found::Unsure => w,
                    }
                }
            };
            let mut script: Vec<(usize, K)> = Vec::new();
            let settled = slow_probe(&w, m, hash, key, |b| script.push((b, w.key(b).clone())))?;
            let stamp = w.stamp();
            drop(w);
            let mut found = None;
            for (pos, k) in &script {
                if m.eq(k, key).map_err(Error::Callback)? {
                    found = Some(*pos);
                    break;
                }
            }
            let found = found.or(settled);
            drop(script);
            let w = self.store.write()?;
            if w.still_valid(stamp, hash, found) {
                return Ok((w, found));
            }
            drop(w);
            restart(&mut restarts)?;
        }
    }

    /// Returns a clone of the value for `key` (a refcount increment for handles).
    #[inline]
    pub fn get_in<Q: ?Sized, M: KeyModel<K, Q>>(
        &self,
        m: &M,
        key: &Q,
    ) -> Result<Option<V>, Error<M::Error>> {
        self.lookup(m, key, false, V::clone)
    }

    /// Calls `f` with a borrowed reference to the value for `key` (no refcount traffic).
    ///
    /// `GilFreeDict`: `f` runs pinned and holds no lock (keep it short: a pin holds back memory
    /// reclamation). `LockedDict`: `f` runs under the lock; it may read this dict, a write to
    /// it from inside fails with [`Error::Reentrant`].
    pub fn get_with_in<Q: ?Sized, M: KeyModel<K, Q>, R>(
        &self,
        m: &M,
        key: &Q,
        f: impl FnOnce(&V) -> R,
    ) -> Result<Option<R>, Error<M::Error>> {
        self.lookup(m, key, true, f)
    }

    /// Whether `key` is present.
    pub fn contains_key_in<Q: ?Sized, M: KeyModel<K, Q>>(
        &self,
        m: &M,
        key: &Q,
    ) -> Result<bool, Error<M::Error>> {
        Ok(self.lookup(m, key, false, |_| ())?.is_some())
    }

    /// Inserts or overwrites; an overwrite keeps the key's position (and the original key
    /// object, as Python does) and returns the previous value.
    pub fn insert_in<M: KeyModel<K>>(
        &self,
        m: &M,
        key: K,
        value: V,
    ) -> Result<Option<V>, Error<M::Error>> {
        let hash = m.hash(&key).map_err(Error::Callback)?;
        let (mut w, found) = self.locate(m, hash, &key)?;
        Ok(match found {
            Some(pos) => Some(w.replace(pos, value)),
            None => {
                w.insert(hash, key, value);
                None
            }
        })
    }

    /// [`insert_in`](Self::insert_in) with a borrowed key: the key to store is made with
    /// `key.to_owned()` only if the dict lacks it, so an overwrite neither builds nor drops a
    /// key (as Python's `d[k] = v` keeps the stored key object; for `String` keys, no
    /// allocation). `to_owned` runs under the writer lock, as a stored value's `Clone` may: it
    /// must not use this dict. If it panics, nothing was inserted.
    pub fn insert_ref_in<Q, M>(
        &self,
        m: &M,
        key: &Q,
        value: V,
    ) -> Result<Option<V>, Error<M::Error>>
    where
        Q: ?Sized + ToOwned<Owned = K>,
        M: KeyModel<K, Q>,
    {
        let hash = m.hash(key).map_err(Error::Callback)?;
        let (mut w, found) = self.locate(m, hash, key)?;
        Ok(match found {
            Some(pos) => Some(w.replace(pos, value)),
            None => {
                w.insert(hash, key.to_owned(), value);
                None
            }
        })
    }

    /// Atomic read-modify-write of one key: `f` gets the current value (if any) and returns
    /// the new one; returns the previous value. `f` runs under the writer lock: it may read
    /// this dict, but a write to it from inside fails with [`Error::Reentrant`].
    pub fn upsert_in<M: KeyModel<K>>(
        &self,
        m: &M,
        key: K,
        f: impl FnOnce(Option<&V>) -> V,
    ) -> Result<Option<V>, Error<M::Error>> {
        // A compute that always sets: overwrite keeps the position, absent inserts.
        self.compute_in(m, key, |old| Compute::Set(f(old)))
    }

    /// Read-modify-write of one key that may also insert or remove: `f` gets the current
    /// value (if any) and says what to do ([`Compute`]); returns the previous value if the
    /// entry was overwritten or removed. Atomic like [`upsert_in`](Self::upsert_in); `f`
    /// runs under the writer lock (it may read this dict; a write to it from inside fails with
    /// [`Error::Reentrant`]).
    ///
    /// ```
    /// use gilfree::{Compute, GilFreeDict};
    ///
    /// let stock: GilFreeDict<&str, u32> = GilFreeDict::from([("apples", 1)]);
    /// let take = |n: Option<&u32>| match n {
    ///     Some(1) => Compute::Remove,
    ///     Some(&n) => Compute::Set(n - 1),
    ///     None => Compute::Keep,
    /// };
    /// assert_eq!(stock.compute("apples", take), Ok(Some(1))); // the last one: removed
    /// assert_eq!(stock.compute("apples", take), Ok(None)); // absent: kept absent
    /// assert!(stock.is_empty());
    /// ```
    pub fn compute_in<M: KeyModel<K>>(
        &self,
        m: &M,
        key: K,
        f: impl FnOnce(Option<&V>) -> Compute<V>,
    ) -> Result<Option<V>, Error<M::Error>> {
        let hash = m.hash(&key).map_err(Error::Callback)?;
        let (mut w, found) = self.locate(m, hash, &key)?;
        let held = Holding::new(self.store.addr());
        Ok(match found {
            Some(pos) => {
                let op = w.with_value(pos, |old| f(Some(old)));
                drop(held);
                match op {
                    Compute::Keep => None,
                    Compute::Set(value) => Some(w.replace(pos, value)),
                    Compute::Remove => Some(w.remove(pos).1),
                }
            }
            None => {
                let op = f(None);
                drop(held);
                if let Compute::Set(value) = op {
                    w.insert(hash, key, value);
                }
                None
            }
        })
    }

    /// The value for `key` (a clone), inserting `f()` first if it is absent. `f` runs at most
    /// once, under the writer lock (it may read this dict; a write to it from inside fails
    /// with [`Error::Reentrant`]).
    pub fn get_or_insert_with_in<M: KeyModel<K>>(
        &self,
        m: &M,
        key: K,
        f: impl FnOnce() -> V,
    ) -> Result<V, Error<M::Error>> {
        let hash = m.hash(&key).map_err(Error::Callback)?;
        let (mut w, found) = self.locate(m, hash, &key)?;
        Ok(match found {
            Some(pos) => w.clone_value(pos),
            None => {
                let held = Holding::new(self.store.addr());
                let value = f();
                drop(held);
                let out = value.clone();
                w.insert(hash, key, value);
                out
            }
        })
    }

    /// Removes `key`, returning its value (Python's `pop(key)`); `None` if absent.
    pub fn remove_in<Q: ?Sized, M: KeyModel<K, Q>>(
        &self,
        m: &M,
        key: &Q,
    ) -> Result<Option<V>, Error<M::Error>> {
        Ok(self.remove_entry_in(m, key)?.map(|(_, v)| v))
    }

    /// Removes `key`, returning the stored key and its value.
    pub fn remove_entry_in<Q: ?Sized, M: KeyModel<K, Q>>(
        &self,
        m: &M,
        key: &Q,
    ) -> Result<Option<(K, V)>, Error<M::Error>> {
        let hash = m.hash(key).map_err(Error::Callback)?;
        let (mut w, found) = self.locate(m, hash, key)?;
        Ok(found.map(|pos| w.remove(pos)))
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
        let (mut w, found) = self.locate(m, hash, &key)?;
        Ok(match found {
            Some(pos) => w.clone_value(pos),
            None => {
                let out = default.clone();
                w.insert(hash, key, default);
                out
            }
        })
    }

    /// Python's `update(iterable)` with interpreter keys: inserts every pair in order; stops at
    /// the first error (pairs before it stay inserted, as in CPython).
    pub fn extend_in<M: KeyModel<K>>(
        &self,
        m: &M,
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<(), Error<M::Error>> {
        for (k, v) in pairs {
            self.insert_in(m, k, v)?;
        }
        Ok(())
    }

    /// Python's `==` between dicts with interpreter keys and values: same length and, for
    /// every entry of `self` (an atomic snapshot), `other` has an equal key whose value
    /// `value_eq` accepts. Order-insensitive.
    pub fn eq_in<M: KeyModel<K>>(
        &self,
        m: &M,
        other: &Self,
        mut value_eq: impl FnMut(&V, &V) -> Result<bool, M::Error>,
    ) -> Result<bool, Error<M::Error>> {
        let mine = self.snapshot();
        if mine.len() != other.len() {
            return Ok(false);
        }
        for (k, v) in &mine {
            match other.get_in(m, k)? {
                Some(w) if value_eq(v, &w).map_err(Error::Callback)? => {}
                _ => return Ok(false),
            }
        }
        Ok(true)
    }

    /// Removes and returns the last inserted entry (LIFO, Python's `popitem`).
    pub fn popitem(&self) -> Result<Option<(K, V)>, Error> {
        let mut w = self.store.write()?;
        Ok(w.last().map(|pos| w.remove(pos)))
    }

    /// Removes every entry. They are dropped after the lock is released (for `GilFreeDict`,
    /// once no reader can see them).
    pub fn clear(&self) -> Result<(), Error> {
        self.store.write()?.clear();
        Ok(())
    }

    /// Makes room for `additional` more entries without rebuilding the table;
    /// [`Error::TooLarge`] past 2^31 entries (the most a dict holds), with nothing changed.
    /// As for std's collections, an allocation the system refuses aborts the process.
    pub fn reserve(&self, additional: usize) -> Result<(), Error> {
        self.store.write()?.reserve(additional)
    }

    /// Keeps only the entries for which `f` returns `true`, in one critical section. `f` runs
    /// under the writer lock: it may read this dict; writing to it fails with `Reentrant`.
    /// Each removal is recorded at once, so a panicking `f` leaves the dict consistent.
    pub fn retain(&self, mut f: impl FnMut(&K, &V) -> bool) -> Result<(), Error> {
        let mut w = self.store.write()?;
        let _held = Holding::new(self.store.addr());
        for p in 0..w.used() {
            if let Some(b) = w.at(p) {
                if !w.with_value(b, |v| f(w.key(b), v)) {
                    w.discard(b);
                }
            }
        }
        Ok(())
    }

    /// An atomic copy (Python's `dict.copy()`): a new, mutable dict with the same entries in
    /// the same order (a frozen dict's copy is mutable: "thaw"). No key is hashed again.
    pub fn copy(&self) -> Self
    where
        S: Clone,
    {
        fn fill<K: Clone, V: Clone, W: WriteSection<K, V>>(from: &impl Section<K, V>, to: &mut W) {
            for b in (0..from.used()).filter_map(|p| from.at(p)) {
                to.insert(from.hash(b), from.key(b).clone(), from.clone_value(b));
            }
        }
        let fresh = Self::with_capacity_and_hasher(self.len(), self.hasher.clone());
        {
            let mut to = match fresh.store.write::<std::convert::Infallible>() {
                Ok(w) => w,
                Err(_) => unreachable!("a fresh dict is writable"),
            };
            // An atomic walk: under the lock, or in place when this thread already holds it.
            match self.store.exclusive() {
                Some(w) => fill(&w, &mut to),
                None => fill(&self.store.read(), &mut to),
            }
        }
        fresh
    }

    /// An atomic snapshot of the entries, in order.
    pub fn snapshot(&self) -> Vec<(K, V)> {
        fn collect<K: Clone, V: Clone>(s: &impl Section<K, V>) -> Vec<(K, V)> {
            (0..s.used())
                .filter_map(|p| s.at(p))
                .map(|b| (s.key(b).clone(), s.clone_value(b)))
                .collect()
        }
        match self.store.exclusive() {
            Some(w) => collect(&w),
            None => collect(&self.store.read()),
        }
    }

    /// An iterator over clones of the entries, in insertion order (double-ended: `rev()` is
    /// Python's `reversed`). `GilFreeDict`: weakly consistent and lock-free (see
    /// [`gilfree::Iter`]); `LockedDict`: over an atomic snapshot.
    pub fn iter(&self) -> St::Iter<'_> {
        self.store.iter()
    }

    /// An iterator with CPython's checks: it yields `Err(ChangedSize)` if the dict's size
    /// changes while iterating, `Err(KeysChanged)` if its keys change at the same size, and
    /// then ends. Overwriting values while iterating is allowed.
    ///
    /// ```
    /// use gilfree::{Error, GilFreeDict};
    ///
    /// let d: GilFreeDict<u32, u32> = GilFreeDict::from([(1, 10), (2, 20)]);
    /// let mut it = d.iter_checked();
    /// assert_eq!(it.next(), Some(Ok((1, 10))));
    /// d.insert(2, 21).unwrap(); // overwriting is fine
    /// d.insert(3, 30).unwrap(); // a new key changes the size
    /// assert_eq!(it.next(), Some(Err(Error::ChangedSize))); // "dictionary changed size during iteration"
    /// assert_eq!(it.next(), None);
    /// ```
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

    /// Runs `f` with the writer lock held: a compound update as one critical section (like a
    /// CPython per-object critical section). `f` gets a [`DictView`] for plain-key
    /// operations; reading the dict directly from inside works, writing to it directly fails
    /// with [`Error::Reentrant`]. `GilFreeDict`'s lock-free readers keep reading meanwhile and
    /// see each step as it happens. Entries removed inside are dropped after the lock is
    /// released.
    pub fn with_lock<R>(
        &self,
        f: impl FnOnce(&mut DictView<'_, K, V, S, St>) -> R,
    ) -> Result<R, Error> {
        let mut view = DictView {
            section: self.store.write()?,
            hasher: &self.hasher,
            _kv: PhantomData,
        };
        let _held = Holding::new(self.store.addr());
        Ok(f(&mut view))
    }
}

/// The plain-key layer: `K: Hash + Eq`, hashed with the dict's `BuildHasher`, looked up by
/// any borrowed form of the key.
impl<K, V, S, St> Dict<K, V, S, St>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher,
    St: DictStore<K, V>,
{
    /// Returns a clone of the value for `key`.
    #[inline]
    pub fn get<Q: ?Sized + Hash + Eq>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        infallible(self.get_in(&self.plain(), key))
    }

    /// Calls `f` with a borrowed reference to the value for `key` (see
    /// [`get_with_in`](Self::get_with_in)).
    #[inline]
    pub fn get_with<Q: ?Sized + Hash + Eq, R>(&self, key: &Q, f: impl FnOnce(&V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
    {
        infallible(self.get_with_in(&self.plain(), key, f))
    }

    /// Whether `key` is present.
    #[inline]
    pub fn contains_key<Q: ?Sized + Hash + Eq>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        infallible(self.contains_key_in(&self.plain(), key))
    }

    /// Inserts or overwrites (keeping the position); returns the previous value.
    #[inline]
    pub fn insert(&self, key: K, value: V) -> crate::Result<Option<V>> {
        self.insert_in(&self.plain(), key, value)
    }

    /// Inserts or overwrites a borrowed key, made into a stored key only if absent (see
    /// [`insert_ref_in`](Self::insert_ref_in)); returns the previous value.
    ///
    /// ```
    /// use gilfree::GilFreeDict;
    ///
    /// let d: GilFreeDict<String, u32> = GilFreeDict::new();
    /// assert_eq!(d.insert_ref("hits", 1), Ok(None)); // absent: stores "hits".to_owned()
    /// assert_eq!(d.insert_ref("hits", 2), Ok(Some(1))); // overwrite: no String built
    /// assert_eq!(d.get("hits"), Some(2));
    /// ```
    #[inline]
    pub fn insert_ref<Q>(&self, key: &Q, value: V) -> crate::Result<Option<V>>
    where
        Q: ?Sized + Hash + Eq + ToOwned<Owned = K>,
        K: Borrow<Q>,
    {
        self.insert_ref_in(&self.plain(), key, value)
    }

    /// Removes `key`, returning its value (Python's `pop(key)`).
    #[inline]
    pub fn remove<Q: ?Sized + Hash + Eq>(&self, key: &Q) -> crate::Result<Option<V>>
    where
        K: Borrow<Q>,
    {
        self.remove_in(&self.plain(), key)
    }

    /// Removes `key`, returning the stored key and its value.
    pub fn remove_entry<Q: ?Sized + Hash + Eq>(&self, key: &Q) -> crate::Result<Option<(K, V)>>
    where
        K: Borrow<Q>,
    {
        self.remove_entry_in(&self.plain(), key)
    }

    /// Python's `pop(key, default)`.
    pub fn pop_or<Q: ?Sized + Hash + Eq>(&self, key: &Q, default: V) -> crate::Result<V>
    where
        K: Borrow<Q>,
    {
        Ok(self.remove(key)?.unwrap_or(default))
    }

    /// Python's `setdefault(key, default)`.
    pub fn setdefault(&self, key: K, default: V) -> crate::Result<V> {
        self.setdefault_in(&self.plain(), key, default)
    }

    /// Atomic read-modify-write of one key (see [`upsert_in`](Self::upsert_in)).
    pub fn upsert(&self, key: K, f: impl FnOnce(Option<&V>) -> V) -> crate::Result<()> {
        self.upsert_in(&self.plain(), key, f).map(drop)
    }

    /// Read-modify-write that may also insert or remove (see [`compute_in`](Self::compute_in)).
    pub fn compute(
        &self,
        key: K,
        f: impl FnOnce(Option<&V>) -> Compute<V>,
    ) -> crate::Result<Option<V>> {
        self.compute_in(&self.plain(), key, f)
    }

    /// The value for `key` (a clone), inserting `f()` first if absent (see
    /// [`get_or_insert_with_in`](Self::get_or_insert_with_in)).
    pub fn get_or_insert_with(&self, key: K, f: impl FnOnce() -> V) -> crate::Result<V> {
        self.get_or_insert_with_in(&self.plain(), key, f)
    }

    /// Python's `update(iterable)`: inserts every pair, in order (each insert is atomic; the
    /// whole update is not).
    pub fn extend(&self, pairs: impl IntoIterator<Item = (K, V)>) -> crate::Result<()> {
        self.extend_in(&self.plain(), pairs)
    }

    /// Python's `dict.fromkeys(keys, value)`.
    pub fn fromkeys(keys: impl IntoIterator<Item = K>, value: V) -> Self
    where
        S: Default,
    {
        keys.into_iter().map(|k| (k, value.clone())).collect()
    }

    /// Python's `self | other`: a new dict with `other`'s entries over a copy of ours.
    pub fn union(&self, other: &Self) -> Self
    where
        S: Clone,
    {
        let merged = self.copy();
        // A fresh dict is not frozen and not locked by this thread: inserts succeed.
        infallible(merged.extend(other.snapshot()));
        merged
    }

    /// Python's `self |= other` (`other` is snapshotted atomically first).
    pub fn update_from(&self, other: &Self) -> crate::Result<()> {
        self.extend(other.snapshot())
    }
}

impl<K, V, S, St> FromIterator<(K, V)> for Dict<K, V, S, St>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher + Default,
    St: DictStore<K, V>,
{
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let dict = Self::default();
        // A fresh dict is not frozen and not locked by this thread: inserts succeed.
        infallible(dict.extend(iter));
        dict
    }
}

/// The slow probe that reads and writes share: walks every candidate for `hash` in probe
/// order, settles those that need no script code, hands the others to `script` (to be cloned
/// and compared once the section is closed), and stops at the first candidate settled equal,
/// which it returns.
fn slow_probe<K, V, Q: ?Sized, M: KeyModel<K, Q>>(
    section: &impl Section<K, V>,
    m: &M,
    hash: u64,
    key: &Q,
    mut script: impl FnMut(usize),
) -> Result<Option<usize>, Error<M::Error>> {
    let mut cursor = section.cursor(hash);
    while let Some(b) = section.next(hash, &mut cursor) {
        match quick_compare(m, section.key(b), key)? {
            Quick::Equal => return Ok(Some(b)),
            Quick::NotEqual => {}
            Quick::Script => script(b),
        }
    }
    Ok(None)
}

impl<K, V, S, St, const N: usize> From<[(K, V); N]> for Dict<K, V, S, St>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher + Default,
    St: DictStore<K, V>,
{
    /// A dict of the pairs, in order (a later pair overwrites an earlier one with its key).
    fn from(pairs: [(K, V); N]) -> Self {
        pairs.into_iter().collect()
    }
}

/// `Extend` takes `&mut self`, so no other thread can hold the dict and no closure of it can
/// be running: the only way it fails is a frozen dict, where it panics. The inherent
/// [`extend`](Dict::extend) (`&self`) returns that error instead.
impl<K, V, S, St> Extend<(K, V)> for Dict<K, V, S, St>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher,
    St: DictStore<K, V>,
{
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, pairs: I) {
        if let Err(e) = Dict::extend(self, pairs) {
            panic!("Extend on a dict: {e}");
        }
    }
}

impl<'a, K, V, S, St> IntoIterator for &'a Dict<K, V, S, St>
where
    K: Clone,
    V: Clone,
    St: DictStore<K, V>,
{
    type Item = (K, V);
    type IntoIter = St::Iter<'a>;

    /// Same as [`iter`](Dict::iter).
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Order-insensitive equality, like Python's `dict.__eq__`.
impl<K, V, S, St> PartialEq for Dict<K, V, S, St>
where
    K: Hash + Eq + Clone,
    V: Clone + PartialEq,
    S: BuildHasher,
    St: DictStore<K, V>,
{
    fn eq(&self, other: &Self) -> bool {
        let mine = self.snapshot();
        mine.len() == other.len()
            && mine
                .iter()
                .all(|(k, v)| other.get_with(k, |w| w == v) == Some(true))
    }
}

impl<K, V, S, St> Eq for Dict<K, V, S, St>
where
    K: Hash + Eq + Clone,
    V: Clone + Eq,
    S: BuildHasher,
    St: DictStore<K, V>,
{
}

impl<K, V, S, St> Clone for Dict<K, V, S, St>
where
    K: Clone,
    V: Clone,
    S: Clone,
    St: DictStore<K, V>,
{
    /// Same as [`copy`](Self::copy).
    fn clone(&self) -> Self {
        self.copy()
    }
}

impl<K, V, S, St> fmt::Debug for Dict<K, V, S, St>
where
    K: Clone + fmt::Debug,
    V: Clone + fmt::Debug,
    St: DictStore<K, V>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// `GilFreeDict`'s explicit read sessions.
impl<K, V, S> GilFreeDict<K, V, S>
where
    K: Clone + Send + Sync + 'static,
    V: Storable + Clone + Send + Sync + 'static,
{
    /// Pins the current thread for a batch of borrowed reads (no refcount traffic, one pin).
    ///
    /// Keep the session short: while it lives, memory reclamation waits for it, for every
    /// GIL-free container in the process; a leaked session (`mem::forget`) stops reclamation
    /// for good.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use gilfree::GilFreeDict;
    ///
    /// let names: GilFreeDict<u32, Arc<str>> = (0..100).map(|i| (i, Arc::from(format!("n{i}")))).collect();
    /// let total: usize = {
    ///     let session = names.pin(); // one pin for the batch
    ///     (0..100).filter_map(|i| session.get(&i)).map(|s| s.len()).sum() // no Arc clones
    /// };
    /// assert_eq!(total, 10 * 2 + 90 * 3);
    /// ```
    pub fn pin(&self) -> Pinned<'_, K, V, S> {
        Pinned {
            read: self.store.pinned(),
            hasher: &self.hasher,
        }
    }
}

/// A pinned read session on a [`GilFreeDict`]: borrowed reads valid while it lives.
pub struct Pinned<'d, K, V, S> {
    read: gilfree::Read<'d, K, V>,
    hasher: &'d S,
}

impl<'d, K, V: Storable, S> Pinned<'d, K, V, S> {
    /// A borrowed reference to the value for `key`. Script `eq` runs pinned here (the session
    /// is already pinned), so keep it short.
    pub fn get_in<Q: ?Sized, M: KeyModel<K, Q>>(
        &self,
        m: &M,
        key: &Q,
    ) -> Result<Option<Ref<'_, V>>, Error<M::Error>> {
        let hash = m.hash(key).map_err(Error::Callback)?;
        let mut cursor = self.read.cursor(hash);
        while let Some(b) = self.read.next(hash, &mut cursor) {
            let stored = self.read.key(b);
            if m.identical(stored, key) || m.eq(stored, key).map_err(Error::Callback)? {
                return Ok(Some(self.read.value(b)));
            }
        }
        Ok(None)
    }

    /// A borrowed reference to the value for a plain key.
    pub fn get<Q: ?Sized + Hash + Eq>(&self, key: &Q) -> Option<Ref<'_, V>>
    where
        K: Borrow<Q>,
        S: BuildHasher,
    {
        infallible(self.get_in(&Plain(self.hasher), key))
    }

    /// Borrowed entries in order (the entries of the table current when the session began).
    pub fn iter<'s>(
        &'s self,
    ) -> impl DoubleEndedIterator<Item = (&'s K, Ref<'s, V>)> + use<'d, 's, K, V, S> {
        (0..self.read.used())
            .filter_map(move |p| self.read.at(p))
            .map(move |b| (self.read.key(b), self.read.value(b)))
    }
}

impl<K, V, S> fmt::Debug for Pinned<'_, K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pinned").finish_non_exhaustive()
    }
}

/// Plain-key access to a dict inside [`Dict::with_lock`]: the writer lock is held.
pub struct DictView<'a, K, V, S, St: DictStore<K, V> + 'a> {
    section: St::Write<'a>,
    hasher: &'a S,
    _kv: PhantomData<fn(K) -> V>,
}

impl<'a, K, V, S, St> DictView<'a, K, V, S, St>
where
    K: Clone,
    V: Clone,
    S: BuildHasher,
    St: DictStore<K, V>,
{
    fn find<Q: ?Sized + Hash + Eq>(&self, key: &Q) -> (u64, Option<usize>)
    where
        K: Borrow<Q>,
    {
        let hash = self.hasher.hash_one(key);
        let found = self.section.find(hash, |k| {
            Ok::<_, std::convert::Infallible>(if k.borrow() == key {
                Verdict::Match
            } else {
                Verdict::Skip
            })
        });
        match found {
            Ok(Found::At(pos)) => (hash, Some(pos)),
            _ => (hash, None),
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        (0..self.section.used())
            .filter(|&p| self.section.at(p).is_some())
            .count()
    }

    /// Whether the dict is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value for `key`, borrowed while the view lives.
    pub fn get<Q: ?Sized + Hash + Eq>(&self, key: &Q) -> Option<Ref<'_, V>>
    where
        K: Borrow<Q>,
    {
        self.find(key).1.map(|pos| self.section.value_ref(pos))
    }

    /// Whether `key` is present.
    pub fn contains_key<Q: ?Sized + Hash + Eq>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.find(key).1.is_some()
    }

    /// Inserts or overwrites; returns the previous value.
    pub fn insert(&mut self, key: K, value: V) -> Result<Option<V>, Error>
    where
        K: Hash + Eq,
    {
        match self.find(&key) {
            (_, Some(pos)) => Ok(Some(self.section.replace(pos, value))),
            (hash, None) => {
                self.section.insert(hash, key, value);
                Ok(None)
            }
        }
    }

    /// Removes `key`, returning its value.
    pub fn remove<Q: ?Sized + Hash + Eq>(&mut self, key: &Q) -> Result<Option<V>, Error>
    where
        K: Borrow<Q>,
    {
        Ok(self.find(key).1.map(|pos| self.section.remove(pos).1))
    }

    /// Borrowed entries, in order.
    pub fn iter<'s>(
        &'s self,
    ) -> impl DoubleEndedIterator<Item = (&'s K, Ref<'s, V>)> + use<'a, 's, K, V, S, St> {
        (0..self.section.used())
            .filter_map(|p| self.section.at(p))
            .map(|b| (self.section.key(b), self.section.value_ref(b)))
    }

    /// Calls `f` on every entry, in order.
    pub fn for_each(&self, mut f: impl FnMut(&K, &V)) {
        for (k, v) in self.iter() {
            f(k, &v);
        }
    }
}

impl<K, V, S, St: DictStore<K, V>> fmt::Debug for DictView<'_, K, V, S, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DictView").finish_non_exhaustive()
    }
}

impl<K: Clone, V: Clone, S, St: DictStore<K, V>> iter::CheckedSource<K, V> for Dict<K, V, S, St> {
    fn len(&self) -> usize {
        self.store.len()
    }

    fn keys_version(&self) -> u64 {
        self.store.keys_version()
    }

    fn entry_at(&self, pos: usize) -> Result<Option<(K, V)>, ()> {
        let s = self.store.read();
        if pos >= s.used() {
            return Err(());
        }
        Ok(s.at(pos).map(|b| (s.key(b).clone(), s.clone_value(b))))
    }
}

impl<K, V, S, St> crate::freeze::Sealed for Dict<K, V, S, St> {}

impl<K, V, S, St> crate::freeze::Freezable<V> for Dict<K, V, S, St>
where
    K: crate::Freeze + Send + Sync,
    V: crate::Freeze + Send + Sync,
    S: Send + Sync,
    St: DictStore<K, V> + Send + Sync,
{
    fn is_frozen(&self) -> bool {
        self.store.is_frozen()
    }

    fn visit_children(&self, f: &mut dyn FnMut(&V) -> bool) {
        let s = self.store.read();
        for p in 0..s.used() {
            if let Some(b) = s.at(p) {
                if !s.with_value(b, |v| f(v)) {
                    return;
                }
            }
        }
    }

    fn child_step(&self, index: usize) -> Option<crate::freeze::Step> {
        let s = self.store.read();
        let b = (0..s.used()).filter_map(|p| s.at(p)).nth(index)?;
        Some(crate::freeze::Step::Key(s.key(b).repr()))
    }

    fn version_tag(&self) -> u64 {
        self.store.version()
    }

    fn lock_for_freeze(
        &self,
        timeout: std::time::Duration,
    ) -> Result<Option<crate::freeze::FreezeLock<'_>>, Error> {
        self.store.lock_for_freeze(timeout)
    }

    fn mark_frozen(&self, _lock: &crate::freeze::FreezeLock<'_>) {
        self.store.mark_frozen();
    }

    fn map_children(&self, f: &mut dyn FnMut(&V) -> Option<V>) -> Result<(), Error> {
        let mut replaced = Vec::new();
        {
            let mut w = self.store.write()?;
            for p in 0..w.used() {
                if let Some(b) = w.at(p) {
                    if let Some(value) = w.with_value(b, |v| f(v)) {
                        replaced.push(w.replace(b, value));
                    }
                }
            }
        }
        crate::cleanup::drop_all(replaced);
        Ok(())
    }
}
