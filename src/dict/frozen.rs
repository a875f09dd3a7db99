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

use crate::dict::{DictStore, GilFreeStore};
use crate::model::{infallible, DefaultHashBuilder, KeyModel, Plain};
use crate::Error;

/// A read-only view of a frozen [`GilFreeDict`](crate::GilFreeDict) or
/// [`LockedDict`](crate::LockedDict): lock-free, pin-free borrowed reads. Obtained from the
/// dict's `frozen()`, which returns `None` while the dict is mutable.
pub struct FrozenDict<'d, K, V, S = DefaultHashBuilder, St = GilFreeStore<K, V>> {
    store: &'d St,
    hasher: &'d S,
    _kv: PhantomData<fn(K) -> V>,
}

impl<K, V, S, St> Clone for FrozenDict<'_, K, V, S, St> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K, V, S, St> Copy for FrozenDict<'_, K, V, S, St> {}

impl<'d, K, V, S, St: DictStore<K, V>> FrozenDict<'d, K, V, S, St> {
    /// # Safety
    /// `store` is frozen (observed with Acquire), and `'d` borrows it.
    pub(crate) unsafe fn new(store: &'d St, hasher: &'d S) -> Self {
        FrozenDict {
            store,
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
    /// freely: nothing can change underneath, so no lookup is ever restarted.
    #[inline]
    pub fn get_in<Q: ?Sized, M: KeyModel<K, Q>>(
        &self,
        m: &M,
        key: &Q,
    ) -> Result<Option<&'d V>, Error<M::Error>> {
        let hash = m.hash(key).map_err(Error::Callback)?;
        // SAFETY: the store is frozen for `'d` (`new`'s contract).
        unsafe {
            self.store
                .frozen_find(hash, |k| Ok(m.identical(k, key) || m.eq(k, key)?))
        }
        .map_err(Error::Callback)
    }

    /// Entries in insertion order (double-ended).
    pub fn iter(&self) -> FrozenDictIter<'d, K, V, St> {
        // SAFETY: frozen for `'d`.
        let used = unsafe { self.store.frozen_used() };
        FrozenDictIter {
            store: self.store,
            positions: 0..used,
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
pub struct FrozenDictIter<'d, K, V, St> {
    store: &'d St,
    positions: std::ops::Range<usize>,
    _kv: PhantomData<fn(K) -> V>,
}

impl<'d, K: 'd, V: 'd, St: DictStore<K, V>> Iterator for FrozenDictIter<'d, K, V, St> {
    type Item = (&'d K, &'d V);

    fn next(&mut self) -> Option<Self::Item> {
        for pos in self.positions.by_ref() {
            // SAFETY: frozen for `'d` (the view's contract); `pos < used`.
            if let Some(entry) = unsafe { self.store.frozen_entry(pos) } {
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
            // SAFETY: as in `next`.
            if let Some(entry) = unsafe { self.store.frozen_entry(pos) } {
                return Some(entry);
            }
        }
        None
    }
}

impl<K, V, St> std::iter::FusedIterator for FrozenDictIter<'_, K, V, St> where Self: Iterator {}

impl<K, V, St> fmt::Debug for FrozenDictIter<'_, K, V, St> {
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
