//! [`Mapping`]: the dict API shared by every variant, so a VM can be generic over it.

use crate::model::KeyModel;
use crate::{Error, GilFreeDict, LockedDict};

/// The dict operations common to [`LockedDict`] and [`GilFreeDict`].
///
/// Switching a VM from one variant to the other is a type change:
///
/// ```
/// use gilfree::{GilFreeDict, LockedDict, Mapping};
///
/// fn bump_counter<D: Mapping<String, i64>>(globals: &D) {
///     let m = globals.plain();
///     globals
///         .update_in(&m, "calls".to_string(), |n| n.copied().unwrap_or(0) + 1)
///         .unwrap();
/// }
///
/// let a: LockedDict<String, i64> = LockedDict::new();
/// let b: GilFreeDict<String, i64> = GilFreeDict::new();
/// bump_counter(&a);
/// bump_counter(&b);
/// assert_eq!(a.get(&"calls".to_string()), b.get(&"calls".to_string()));
/// ```
pub trait Mapping<K, V> {
    /// The `BuildHasher` used for plain keys.
    type Hasher: std::hash::BuildHasher;

    /// The plain-key model over this dict's hasher.
    fn plain(&self) -> crate::Plain<'_, Self::Hasher>;
    /// Number of entries.
    fn len(&self) -> usize;
    /// Whether the dict is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// A tag that changes on every mutation.
    fn version(&self) -> u64;
    /// Whether the dict is frozen.
    fn is_frozen(&self) -> bool;
    /// Makes the dict immutable (one-way).
    fn freeze(&self) -> Result<(), Error>;
    /// A clone of the value for `key`.
    fn get_in<M: KeyModel<K>>(&self, m: &M, key: &K) -> Result<Option<V>, Error<M::Error>>;
    /// Calls `f` with a borrowed reference to the value for `key`.
    fn get_with_in<M: KeyModel<K>, R>(
        &self,
        m: &M,
        key: &K,
        f: impl FnOnce(&V) -> R,
    ) -> Result<Option<R>, Error<M::Error>>;
    /// Whether `key` is present.
    fn contains_key_in<M: KeyModel<K>>(&self, m: &M, key: &K) -> Result<bool, Error<M::Error>>;
    /// Inserts or overwrites; returns the previous value.
    fn insert_in<M: KeyModel<K>>(
        &self,
        m: &M,
        key: K,
        value: V,
    ) -> Result<Option<V>, Error<M::Error>>;
    /// Atomic read-modify-write of one key; returns the previous value.
    fn update_in<M: KeyModel<K>>(
        &self,
        m: &M,
        key: K,
        f: impl FnOnce(Option<&V>) -> V,
    ) -> Result<Option<V>, Error<M::Error>>;
    /// Removes `key`, returning its value.
    fn remove_in<M: KeyModel<K>>(&self, m: &M, key: &K) -> Result<Option<V>, Error<M::Error>>;
    /// Python's `setdefault`.
    fn setdefault_in<M: KeyModel<K>>(
        &self,
        m: &M,
        key: K,
        default: V,
    ) -> Result<V, Error<M::Error>>;
    /// Removes and returns the last inserted entry.
    fn popitem(&self) -> Result<Option<(K, V)>, Error>;
    /// Removes every entry.
    fn clear(&self) -> Result<(), Error>;
    /// Keeps the entries for which `f` returns `true`.
    fn retain(&self, f: impl FnMut(&K, &V) -> bool) -> Result<(), Error>;
    /// An atomic snapshot of the entries, in order.
    fn snapshot(&self) -> Vec<(K, V)>;
    /// Clones of the keys, in order.
    fn keys(&self) -> Vec<K>;
    /// Clones of the values, in order.
    fn values(&self) -> Vec<V>;
}

macro_rules! forward_mapping {
    ($Dict:ident, $($bound:tt)*) => {
        impl<K, V, S> Mapping<K, V> for $Dict<K, V, S>
        where
            K: Clone $($bound)*,
            V: Clone $($bound)*,
            S: std::hash::BuildHasher,
        {
            type Hasher = S;

            fn plain(&self) -> crate::Plain<'_, S> {
                $Dict::plain(self)
            }
            fn len(&self) -> usize {
                $Dict::len(self)
            }
            fn version(&self) -> u64 {
                $Dict::version(self)
            }
            fn is_frozen(&self) -> bool {
                $Dict::is_frozen(self)
            }
            fn freeze(&self) -> Result<(), Error> {
                $Dict::freeze(self)
            }
            fn get_in<M: KeyModel<K>>(&self, m: &M, key: &K) -> Result<Option<V>, Error<M::Error>> {
                $Dict::get_in(self, m, key)
            }
            fn get_with_in<M: KeyModel<K>, R>(
                &self,
                m: &M,
                key: &K,
                f: impl FnOnce(&V) -> R,
            ) -> Result<Option<R>, Error<M::Error>> {
                $Dict::get_with_in(self, m, key, f)
            }
            fn contains_key_in<M: KeyModel<K>>(&self, m: &M, key: &K) -> Result<bool, Error<M::Error>> {
                $Dict::contains_key_in(self, m, key)
            }
            fn insert_in<M: KeyModel<K>>(&self, m: &M, key: K, value: V) -> Result<Option<V>, Error<M::Error>> {
                $Dict::insert_in(self, m, key, value)
            }
            fn update_in<M: KeyModel<K>>(
                &self,
                m: &M,
                key: K,
                f: impl FnOnce(Option<&V>) -> V,
            ) -> Result<Option<V>, Error<M::Error>> {
                $Dict::update_in(self, m, key, f)
            }
            fn remove_in<M: KeyModel<K>>(&self, m: &M, key: &K) -> Result<Option<V>, Error<M::Error>> {
                $Dict::remove_in(self, m, key)
            }
            fn setdefault_in<M: KeyModel<K>>(&self, m: &M, key: K, default: V) -> Result<V, Error<M::Error>> {
                $Dict::setdefault_in(self, m, key, default)
            }
            fn popitem(&self) -> Result<Option<(K, V)>, Error> {
                $Dict::popitem(self)
            }
            fn clear(&self) -> Result<(), Error> {
                $Dict::clear(self)
            }
            fn retain(&self, f: impl FnMut(&K, &V) -> bool) -> Result<(), Error> {
                $Dict::retain(self, f)
            }
            fn snapshot(&self) -> Vec<(K, V)> {
                $Dict::snapshot(self)
            }
            fn keys(&self) -> Vec<K> {
                $Dict::keys(self)
            }
            fn values(&self) -> Vec<V> {
                $Dict::values(self)
            }
        }
    };
}

forward_mapping!(GilFreeDict, + Send + Sync + 'static);
forward_mapping!(LockedDict,);
