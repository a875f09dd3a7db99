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
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&'d K, &'d V)> + 'd
    where
        K: 'd,
        V: 'd,
    {
        let store = self.store;
        // SAFETY: frozen for `'d`.
        let used = unsafe { store.frozen_used() };
        // SAFETY: as above; `pos < used`.
        (0..used).filter_map(move |pos| unsafe { store.frozen_entry(pos) })
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
