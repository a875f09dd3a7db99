//! The two dicts and what they share.
//!
//! Both [`GilFreeDict`] and [`LockedDict`] are built on the same insertion-ordered table core
//! ([`crate::table`]) and offer the same API in two layers:
//! - `*_in(&model, ...)` methods take a [`KeyModel`](crate::KeyModel): the interpreter's
//!   context, whose hash/eq may fail or run script code;
//! - plain methods (`get`, `insert`, ...) for `K: Hash + Eq`, generated below from the `*_in`
//!   layer with the dict's own `BuildHasher`.
//!
//! The [`Mapping`] trait lets a VM be generic over the variant.

/// Constructors and lock-free accessors, identical for both dicts (each has `len`, `version`,
/// `frozen` and `hasher` fields and a private `from_table`). Defined before the modules that
/// invoke it, so it is in their textual scope.
macro_rules! common_dict_api {
    ($Dict:ident) => {
        impl<K, V> $Dict<K, V, crate::DefaultHashBuilder> {
            /// An empty dict with the default hasher.
            pub fn new() -> Self {
                Self::with_hasher(crate::DefaultHashBuilder::default())
            }

            /// An empty dict with room for `capacity` entries before it grows.
            pub fn with_capacity(capacity: usize) -> Self {
                Self::with_capacity_and_hasher(capacity, crate::DefaultHashBuilder::default())
            }
        }

        impl<K, V, S: Default> Default for $Dict<K, V, S> {
            fn default() -> Self {
                Self::with_hasher(S::default())
            }
        }

        impl<K, V, S> $Dict<K, V, S> {
            /// An empty dict that hashes plain keys with `hasher`.
            pub fn with_hasher(hasher: S) -> Self {
                Self::with_capacity_and_hasher(0, hasher)
            }

            /// An empty dict with room for `capacity` entries, hashing plain keys with `hasher`.
            pub fn with_capacity_and_hasher(capacity: usize, hasher: S) -> Self {
                Self::from_table(crate::table::Table::with_capacity(capacity), hasher)
            }

            /// The hasher used for plain keys.
            pub fn hasher(&self) -> &S {
                &self.hasher
            }

            /// The plain-key model of this dict (its `BuildHasher` and `Eq`).
            pub fn plain(&self) -> crate::Plain<'_, S> {
                crate::Plain(&self.hasher)
            }

            /// Number of entries: one atomic load, no lock (exact when no writer is running).
            #[inline]
            pub fn len(&self) -> usize {
                self.len.load(crate::sync::Ordering::Acquire)
            }

            /// Whether the dict is empty.
            #[inline]
            pub fn is_empty(&self) -> bool {
                self.len() == 0
            }

            /// A tag that changes on every mutation (for inline caches of global lookups, like
            /// CPython's dict versions): one atomic load, no lock.
            #[inline]
            pub fn version(&self) -> u64 {
                self.version.load(crate::sync::Ordering::Acquire)
            }

            /// Whether the dict is frozen (every mutator then fails with
            /// [`Error::Frozen`](crate::Error::Frozen)).
            pub fn is_frozen(&self) -> bool {
                self.frozen.load(crate::sync::Ordering::Acquire)
            }
        }
    };
}

mod frozen;
mod gilfree;
mod iter;
mod locked;
mod mapping;

pub use frozen::FrozenDict;
pub use gilfree::{GilFreeDict, Pinned};
pub use iter::{Iter, IterChecked};
pub use locked::{DictView, LockedDict};
pub use mapping::Mapping;

/// Model-generic compound operations, written once over the `*_in` layer.
macro_rules! model_dict_api {
    ($Dict:ident, $($bound:tt)*) => {
        impl<K, V, S> $Dict<K, V, S>
        where
            K: Clone $($bound)*,
            V: Clone $($bound)*,
        {
            /// Python's `update(iterable)` with interpreter keys: inserts every pair in order;
            /// stops at the first error (pairs before it stay inserted, as in CPython).
            pub fn extend_in<M: crate::KeyModel<K>>(
                &self,
                m: &M,
                pairs: impl IntoIterator<Item = (K, V)>,
            ) -> Result<(), crate::Error<M::Error>> {
                for (k, v) in pairs {
                    self.insert_in(m, k, v)?;
                }
                Ok(())
            }

            /// Python's `==` between dicts with interpreter keys and values: same length and,
            /// for every entry of `self` (an atomic snapshot), `other` has an equal key whose
            /// value `value_eq` accepts. Order-insensitive.
            pub fn eq_in<M: crate::KeyModel<K>>(
                &self,
                m: &M,
                other: &Self,
                mut value_eq: impl FnMut(&V, &V) -> Result<bool, M::Error>,
            ) -> Result<bool, crate::Error<M::Error>> {
                let mine = self.snapshot();
                if mine.len() != other.len() {
                    return Ok(false);
                }
                for (k, v) in &mine {
                    match other.get_in(m, k)? {
                        Some(w) if value_eq(v, &w).map_err(crate::Error::Callback)? => {}
                        _ => return Ok(false),
                    }
                }
                Ok(true)
            }
        }
    };
}

/// The plain-key layer of a dict type: every method forwards to its `*_in` twin with
/// [`Plain`](crate::Plain) over the dict's own hasher.
macro_rules! plain_dict_api {
    ($Dict:ident, $($bound:tt)*) => {
        impl<K, V, S> $Dict<K, V, S>
        where
            K: std::hash::Hash + Eq + Clone $($bound)*,
            V: Clone $($bound)*,
            S: std::hash::BuildHasher,
        {
            /// Returns a clone of the value for `key`.
            #[inline]
            pub fn get(&self, key: &K) -> Option<V> {
                crate::model::infallible(self.get_in(&self.plain(), key))
            }

            /// Calls `f` with a borrowed reference to the value for `key`.
            #[inline]
            pub fn get_with<R>(&self, key: &K, f: impl FnOnce(&V) -> R) -> Option<R> {
                crate::model::infallible(self.get_with_in(&self.plain(), key, f))
            }

            /// Whether `key` is present.
            #[inline]
            pub fn contains_key(&self, key: &K) -> bool {
                crate::model::infallible(self.contains_key_in(&self.plain(), key))
            }

            /// Inserts or overwrites (keeping the position); returns the previous value.
            #[inline]
            pub fn insert(&self, key: K, value: V) -> crate::Result<Option<V>> {
                self.insert_in(&self.plain(), key, value)
            }

            /// Removes `key`, returning its value (Python's `pop(key)`).
            #[inline]
            pub fn remove(&self, key: &K) -> crate::Result<Option<V>> {
                self.remove_in(&self.plain(), key)
            }

            /// Removes `key`, returning the stored key and its value.
            pub fn remove_entry(&self, key: &K) -> crate::Result<Option<(K, V)>> {
                self.remove_entry_in(&self.plain(), key)
            }

            /// Python's `pop(key, default)`.
            pub fn pop_or(&self, key: &K, default: V) -> crate::Result<V> {
                Ok(self.remove(key)?.unwrap_or(default))
            }

            /// Python's `setdefault(key, default)`.
            pub fn setdefault(&self, key: K, default: V) -> crate::Result<V> {
                self.setdefault_in(&self.plain(), key, default)
            }

            /// Atomic read-modify-write of one key (see `update_in`).
            pub fn update(&self, key: K, f: impl FnOnce(Option<&V>) -> V) -> crate::Result<()> {
                self.update_in(&self.plain(), key, f).map(drop)
            }

            /// Python's `update(iterable)`: inserts every pair, in order (each insert is
            /// atomic; the whole update is not).
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
                crate::model::infallible(merged.extend(other.snapshot()));
                merged
            }

            /// Python's `self |= other` (`other` is snapshotted atomically first).
            pub fn update_from(&self, other: &Self) -> crate::Result<()> {
                self.extend(other.snapshot())
            }
        }

        impl<K, V, S> FromIterator<(K, V)> for $Dict<K, V, S>
        where
            K: std::hash::Hash + Eq + Clone $($bound)*,
            V: Clone $($bound)*,
            S: std::hash::BuildHasher + Default,
        {
            fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
                let dict = Self::default();
                // A fresh dict is not frozen and not locked by this thread: inserts succeed.
                crate::model::infallible(dict.extend(iter));
                dict
            }
        }

        /// Order-insensitive equality, like Python's `dict.__eq__`.
        impl<K, V, S> PartialEq for $Dict<K, V, S>
        where
            K: std::hash::Hash + Eq + Clone $($bound)*,
            V: Clone + PartialEq $($bound)*,
            S: std::hash::BuildHasher,
        {
            fn eq(&self, other: &Self) -> bool {
                let mine = self.snapshot();
                mine.len() == other.len()
                    && mine.iter().all(|(k, v)| other.get_with(k, |w| w == v) == Some(true))
            }
        }

        impl<K, V, S> Clone for $Dict<K, V, S>
        where
            K: Clone $($bound)*,
            V: Clone $($bound)*,
            S: Clone,
        {
            /// Same as [`copy`](Self::copy).
            fn clone(&self) -> Self {
                self.copy()
            }
        }
    };
}

plain_dict_api!(GilFreeDict, + Send + Sync + 'static);
plain_dict_api!(LockedDict,);
model_dict_api!(GilFreeDict, + Send + Sync + 'static);
model_dict_api!(LockedDict,);
