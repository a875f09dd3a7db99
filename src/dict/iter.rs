//! [`IterChecked`]: CPython's dict iterator semantics, for a caller who mutates while
//! iterating: a size change yields "dictionary changed size during iteration", a key change at
//! equal size "dictionary keys changed during iteration", then the iterator ends. Each step is
//! one short read section (no pin or lock is held between steps).
//!
//! (The weakly consistent `iter()` of each variant lives with its store.)

use std::fmt;
use std::marker::PhantomData;

use crate::Error;

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

impl<K, V, D> fmt::Debug for IterChecked<'_, K, V, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IterChecked")
            .field("pos", &self.pos)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}
