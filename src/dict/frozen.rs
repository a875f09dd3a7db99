//! `FrozenDict`: the read-only view of a frozen dict.
//!
//! Once a dict is frozen, no writer can change its store again: every mutator fails with
//! `Error::Frozen`, so the current table, its keys and its values stay put until the dict is
//! dropped. The view therefore reads them directly — no lock, no epoch pin, no atomic
//! read-modify-write — and lends `&V` for the dict's whole lifetime, even for values a
//! `GilFreeDict` stores inline (the reference points into the frozen word itself).

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;

use crate::dict::{quick_verdict, DictStore, FrozenTable, GilFreeStore};
use crate::model::{infallible, DefaultHashBuilder, KeyModel, Plain};
use crate::Error;

/// A read-only view of a frozen [`GilFreeDict`](crate::GilFreeDict) or
/// [`LockedDict`](crate::LockedDict): lock-free, pin-free borrowed reads. Obtained from the
/// dict's `frozen()`, which returns `None` while the dict is mutable.
pub struct FrozenDict<'d, K, V, S = DefaultHashBuilder, St = GilFreeStore<K, V>>
where
    St: DictStore<K, V> + 'd,
    K: 'd,
    V: 'd,
{
    store: &'d St,
    /// The store's table, with the control words and buckets at hand: a lookup's first loads
    /// are the control word and the bucket.
    table: St::Frozen<'d>,
    hasher: &'d S,
    _kv: PhantomData<fn(K) -> V>,
}

impl<'d, K, V, S, St: DictStore<K, V>> Clone for FrozenDict<'d, K, V, S, St> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<'d, K, V, S, St: DictStore<K, V>> Copy for FrozenDict<'d, K, V, S, St> {}

// SAFETY: a view reads only what `&'d St` and `&'d S` reach (its `table` was taken from the
// store and lends the same `&K`/`&V`), and writes nothing: it may go wherever those
// references may.
unsafe impl<'d, K, V, S: Sync, St: DictStore<K, V> + Sync> Send for FrozenDict<'d, K, V, S, St> {}
// SAFETY: as above.
unsafe impl<'d, K, V, S: Sync, St: DictStore<K, V> + Sync> Sync for FrozenDict<'d, K, V, S, St> {}

impl<'d, K, V, S, St: DictStore<K, V>> FrozenDict<'d, K, V, S, St> {
    /// # Safety
    /// `store` is frozen (observed with Acquire), and `'d` borrows it.
    pub(crate) unsafe fn new(store: &'d St, hasher: &'d S) -> Self {
        FrozenDict {
            store,
            // SAFETY: forwarded.
            table: unsafe { store.frozen() },
            hasher,
            _kv: PhantomData,
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// Whether the dict is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value for `key`, compared through the interpreter's model. Script `eq` may run
    /// freely: nothing can change underneath, so no lookup is ever restarted. As in a live
    /// lookup, identity and a pure `eq` come first, and script `eq` runs only on candidates
    /// whose full hash tag is the key's.
    #[inline]
    pub fn get_in<Q: ?Sized, M: KeyModel<K, Q>>(
        &self,
        m: &M,
        key: &Q,
    ) -> Result<Option<&'d V>, Error<M::Error>> {
        let hash = m.hash(key).map_err(Error::Callback)?;
        self.table.find(
            hash,
            |k| quick_verdict(m, k, key),
            |k| m.eq(k, key).map_err(Error::Callback),
        )
    }

    /// Entries in insertion order (double-ended).
    pub fn iter(&self) -> FrozenDictIter<'d, K, V, St> {
        FrozenDictIter {
            table: self.table,
            positions: 0..self.table.used(),
            _kv: PhantomData,
        }
    }

    /// Keys in insertion order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &'d K> + 'd
    where
        K: 'd,
        V: 'd,
    {
        self.iter().map(|(k, _)| k)
    }

    /// Values in insertion order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &'d V> + 'd
    where
        K: 'd,
        V: 'd,
    {
        self.iter().map(|(_, v)| v)
    }
}

/// The entries of a [`FrozenDict`], in insertion order (double-ended): borrowed for the
/// dict's lifetime, no lock, no pin.
pub struct FrozenDictIter<'d, K, V, St: DictStore<K, V> + 'd> {
    table: St::Frozen<'d>,
    positions: std::ops::Range<usize>,
    _kv: PhantomData<fn(K) -> V>,
}

// SAFETY: as for `FrozenDict`: it reads only what `&'d St` reaches.
unsafe impl<'d, K, V, St: DictStore<K, V> + Sync> Send for FrozenDictIter<'d, K, V, St> {}
// SAFETY: as above.
unsafe impl<'d, K, V, St: DictStore<K, V> + Sync> Sync for FrozenDictIter<'d, K, V, St> {}

impl<'d, K: 'd, V: 'd, St: DictStore<K, V>> Iterator for FrozenDictIter<'d, K, V, St> {
    type Item = (&'d K, &'d V);

    fn next(&mut self) -> Option<Self::Item> {
        for pos in self.positions.by_ref() {
            if let Some(entry) = self.table.entry(pos) {
                return Some(entry);
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.positions.len()))
    }
}

impl<'d, K: 'd, V: 'd, St: DictStore<K, V>> DoubleEndedIterator for FrozenDictIter<'d, K, V, St> {
    fn next_back(&mut self) -> Option<Self::Item> {
        while let Some(pos) = self.positions.next_back() {
            if let Some(entry) = self.table.entry(pos) {
                return Some(entry);
            }
        }
        None
    }
}

impl<'d, K, V, St: DictStore<K, V>> std::iter::FusedIterator for FrozenDictIter<'d, K, V, St> where
    Self: Iterator
{
}

impl<'d, K, V, St: DictStore<K, V>> fmt::Debug for FrozenDictIter<'d, K, V, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrozenDictIter")
            .field("positions", &self.positions)
            .finish_non_exhaustive()
    }
}

impl<'d, K: 'd, V: 'd, S, St: DictStore<K, V>> IntoIterator for FrozenDict<'d, K, V, S, St> {
    type Item = (&'d K, &'d V);
    type IntoIter = FrozenDictIter<'d, K, V, St>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'d, K: 'd, V: 'd, S, St: DictStore<K, V>> IntoIterator for &FrozenDict<'d, K, V, S, St> {
    type Item = (&'d K, &'d V);
    type IntoIter = FrozenDictIter<'d, K, V, St>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'d, K, V, S: BuildHasher, St: DictStore<K, V>> FrozenDict<'d, K, V, S, St> {
    /// The value for a plain key (any borrowed form of it).
    #[inline]
    pub fn get<Q: ?Sized + Hash + Eq>(&self, key: &Q) -> Option<&'d V>
    where
        K: Borrow<Q>,
    {
        infallible(self.get_in(&Plain(self.hasher), key))
    }

    /// Whether a plain key is present.
    pub fn contains_key<Q: ?Sized + Hash + Eq>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.get(key).is_some()
    }
}

impl<K: fmt::Debug, V: fmt::Debug, S, St: DictStore<K, V>> fmt::Debug
    for FrozenDict<'_, K, V, S, St>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}
