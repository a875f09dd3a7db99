//! `FrozenDict`: the read-only view of a frozen dict.
//!
//! Once a dict is frozen, no writer can change its table again: every mutator fails with
//! `Error::Frozen`, so the current table and its nodes stay put until the dict is dropped. The
//! view therefore reads with plain Acquire loads — no lock, no epoch pin, no atomic
//! read-modify-write — and hands out `&V` for the dict's whole lifetime.

use std::hash::{BuildHasher, Hash};

use crate::model::{infallible, KeyModel, Plain};
use crate::table::{Probe, Table};
use crate::Error;

/// A read-only view of a frozen [`GilFreeDict`](crate::GilFreeDict) or
/// [`LockedDict`](crate::LockedDict): lock-free, pin-free borrowed reads. Obtained from the
/// dict's `frozen()`, which returns `None` while the dict is mutable.
pub struct FrozenDict<'d, K, V, S> {
    table: &'d Table<K, V>,
    hasher: &'d S,
}

impl<K, V, S> Clone for FrozenDict<'_, K, V, S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K, V, S> Copy for FrozenDict<'_, K, V, S> {}

impl<'d, K, V, S> FrozenDict<'d, K, V, S> {
    /// # Safety
    /// The dict that owns `table` is frozen (observed with Acquire), and `'d` borrows it.
    pub(crate) unsafe fn new(table: &'d Table<K, V>, hasher: &'d S) -> Self {
        FrozenDict { table, hasher }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether the dict is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value for `key`, compared through the interpreter's model. Script `eq` may run
    /// freely: nothing can change underneath, so no lookup is ever restarted.
    pub fn get_in<M: KeyModel<K>>(&self, m: &M, key: &K) -> Result<Option<&'d V>, Error<M::Error>> {
        let hash = m.hash(key).map_err(Error::Callback)?;
        let mut cursor = self.table.start(hash);
        loop {
            match self.table.probe(hash, &mut cursor) {
                Probe::Vacant(_) => return Ok(None),
                Probe::Candidate { node, .. } => {
                    if m.identical(node.key(), key)
                        || m.eq(node.key(), key).map_err(Error::Callback)?
                    {
                        return Ok(Some(node.value()));
                    }
                }
            }
        }
    }

    /// Entries in insertion order (double-ended).
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&'d K, &'d V)> + 'd {
        let table = self.table;
        (0..table.used()).filter_map(move |p| table.entry(p).map(|n| (n.key(), n.value())))
    }

    /// Keys in insertion order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &'d K> + 'd {
        self.iter().map(|(k, _)| k)
    }

    /// Values in insertion order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &'d V> + 'd {
        self.iter().map(|(_, v)| v)
    }
}

impl<'d, K: Hash + Eq, V, S: BuildHasher> FrozenDict<'d, K, V, S> {
    /// The value for a plain key.
    #[inline]
    pub fn get(&self, key: &K) -> Option<&'d V> {
        infallible(self.get_in(&Plain(self.hasher), key))
    }

    /// Whether a plain key is present.
    pub fn contains_key(&self, key: &K) -> bool {
        self.get(key).is_some()
    }
}
