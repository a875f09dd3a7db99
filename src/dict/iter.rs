//! Dict iterators.
//!
//! - [`Iter`]: weakly consistent, lock-free. It pins an epoch for its lifetime and walks the
//!   order array of the table that was current when it was created, up to the length that table
//!   had then. It never blocks writers, never fails and never yields an entry twice; a writer
//!   that rebuilds the table leaves the iterator on the (still valid) old one.
//! - [`IterChecked`]: CPython's semantics for a single-threaded caller who mutates while
//!   iterating: a size change yields "dictionary changed size during iteration", a key change at
//!   equal size "dictionary keys changed during iteration", then the iterator ends.

use std::marker::PhantomData;

use crate::reclaim::Guard;
use crate::table::Table;
use crate::Error;

/// A weakly consistent iterator over clones of a dict's entries; see the module docs.
pub struct Iter<'d, K, V> {
    _guard: Guard,
    table: *const Table<K, V>,
    front: usize,
    back: usize,
    _dict: PhantomData<&'d ()>,
}

impl<K, V> Iter<'_, K, V> {
    pub(crate) fn new(guard: Guard, table: *const Table<K, V>, end: usize) -> Self {
        Iter {
            _guard: guard,
            table,
            front: 0,
            back: end,
            _dict: PhantomData,
        }
    }

    fn table(&self) -> &Table<K, V> {
        // SAFETY: loaded while `_guard` was pinned; a retired table is freed only after every
        // guard pinned before its retirement is dropped, and `_guard` lives as long as `self`.
        unsafe { &*self.table }
    }
}

impl<K: Clone, V: Clone> Iterator for Iter<'_, K, V> {
    type Item = (K, V);

    fn next(&mut self) -> Option<(K, V)> {
        while self.front < self.back {
            let pos = self.front;
            self.front += 1;
            if let Some(n) = self.table().entry(pos) {
                return Some((n.key().clone(), n.value().clone()));
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.back - self.front))
    }
}

impl<K: Clone, V: Clone> DoubleEndedIterator for Iter<'_, K, V> {
    fn next_back(&mut self) -> Option<(K, V)> {
        while self.front < self.back {
            self.back -= 1;
            if let Some(n) = self.table().entry(self.back) {
                return Some((n.key().clone(), n.value().clone()));
            }
        }
        None
    }
}

/// What a dict exposes to [`IterChecked`] (sealed: this module is private).
pub trait CheckedSource<K, V> {
    /// Current number of entries.
    fn len(&self) -> usize;
    /// A counter bumped by every change of the key set (not by value overwrites).
    fn keys_version(&self) -> u64;
    /// The entry at order position `pos`: `Ok(Some)` an entry, `Ok(None)` a hole, `Err(())`
    /// past the end.
    fn entry_at(&self, pos: usize) -> Result<Option<(K, V)>, ()>;
}

/// An iterator with CPython's mutation checks; see the module docs.
pub struct IterChecked<'d, K, V, D> {
    dict: &'d D,
    len: usize,
    keys_version: u64,
    pos: usize,
    done: bool,
    _kv: PhantomData<fn() -> (K, V)>,
}

impl<'d, K, V, D: CheckedSource<K, V>> IterChecked<'d, K, V, D> {
    pub(crate) fn new(dict: &'d D) -> Self {
        IterChecked {
            dict,
            len: dict.len(),
            keys_version: dict.keys_version(),
            pos: 0,
            done: false,
            _kv: PhantomData,
        }
    }
}

impl<K, V, D: CheckedSource<K, V>> Iterator for IterChecked<'_, K, V, D> {
    type Item = Result<(K, V), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let fail = |this: &mut Self, e| {
            this.done = true;
            Some(Err(e))
        };
        if self.dict.len() != self.len {
            return fail(self, Error::ChangedSize);
        }
        if self.dict.keys_version() != self.keys_version {
            return fail(self, Error::KeysChanged);
        }
        loop {
            let pos = self.pos;
            self.pos += 1;
            match self.dict.entry_at(pos) {
                Ok(Some(entry)) => return Some(Ok(entry)),
                Ok(None) => continue,
                Err(()) => {
                    self.done = true;
                    return None;
                }
            }
        }
    }
}
