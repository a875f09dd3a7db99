//! `FrozenList`: the read-only view of a frozen list.
//!
//! Once a list is frozen no writer can change it again (every mutator fails with
//! `Error::Frozen`, `with_lock` included), so its storage stays put until the list is dropped.
//! The view reads with plain Acquire loads — no lock, no epoch pin, no atomic
//! read-modify-write — and lends `&T` for the list's whole lifetime.

use crate::list::item_index;
use crate::storage::{Storable, Storage};
use crate::sync::AtomicU64;
use crate::Error;

/// Where a frozen list's items are.
enum Source<'l, T> {
    /// A `GilFreeList`'s words (`0..len`, each an item: inline, or a box pointer), and how to
    /// read one as a `&T`.
    Words(&'l [AtomicU64], unsafe fn(&AtomicU64) -> &T),
    /// A `LockedList`'s vector.
    Inline(&'l [T]),
}

/// A read-only view of a frozen [`GilFreeList`](crate::GilFreeList) or
/// [`LockedList`](crate::LockedList): lock-free, pin-free borrowed reads. Obtained from the
/// list's `frozen()`, which returns `None` while the list is mutable.
pub struct FrozenList<'l, T> {
    source: Source<'l, T>,
}

impl<T> Clone for FrozenList<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for FrozenList<'_, T> {}

impl<T: std::fmt::Debug> std::fmt::Debug for FrozenList<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<T> Clone for Source<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Source<'_, T> {}

impl<'l, T> FrozenList<'l, T> {
    /// # Safety
    /// The list owning `words` is frozen (observed with Acquire), `'l` borrows it, and `words`
    /// are exactly its items.
    pub(crate) unsafe fn words(words: &'l [AtomicU64]) -> Self
    where
        T: Storable,
    {
        FrozenList {
            source: Source::Words(words, T::Storage::frozen),
        }
    }

    /// # Safety
    /// The list owning `items` is frozen (observed with Acquire) and `'l` borrows it: no
    /// `&mut` to the items will ever be created again.
    pub(crate) unsafe fn inline(items: &'l [T]) -> Self {
        FrozenList {
            source: Source::Inline(items),
        }
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        match self.source {
            Source::Words(s, _) => s.len(),
            Source::Inline(s) => s.len(),
        }
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The item at `i` (negative counts from the end).
    pub fn get(&self, i: isize) -> Result<&'l T, Error> {
        let at = item_index(i, self.len()).ok_or(Error::IndexOutOfRange)?;
        Ok(self.at(at))
    }

    #[inline]
    fn at(&self, at: usize) -> &'l T {
        match self.source {
            Source::Words(s, read) => {
                // SAFETY: a frozen list's words `0..len` are items that are never replaced or
                // retired while the list lives (`words`'s contract).
                unsafe { read(&s[at]) }
            }
            Source::Inline(s) => &s[at],
        }
    }

    /// The items, in order (double-ended).
    pub fn iter(&self) -> FrozenListIter<'l, T> {
        FrozenListIter {
            list: *self,
            at: 0..self.len(),
        }
    }
}

/// The items of a [`FrozenList`], in order (double-ended, exact size): borrowed for the list's
/// lifetime, no lock, no pin.
pub struct FrozenListIter<'l, T> {
    list: FrozenList<'l, T>,
    at: std::ops::Range<usize>,
}

impl<'l, T> Iterator for FrozenListIter<'l, T> {
    type Item = &'l T;

    fn next(&mut self) -> Option<&'l T> {
        self.at.next().map(|i| self.list.at(i))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.at.size_hint()
    }
}

impl<T> DoubleEndedIterator for FrozenListIter<'_, T> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.at.next_back().map(|i| self.list.at(i))
    }
}

impl<T> ExactSizeIterator for FrozenListIter<'_, T> {}

impl<T> std::iter::FusedIterator for FrozenListIter<'_, T> {}

impl<T> std::fmt::Debug for FrozenListIter<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrozenListIter")
            .field("at", &self.at)
            .finish_non_exhaustive()
    }
}

impl<'l, T> IntoIterator for FrozenList<'l, T> {
    type Item = &'l T;
    type IntoIter = FrozenListIter<'l, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'l, T> IntoIterator for &FrozenList<'l, T> {
    type Item = &'l T;
    type IntoIter = FrozenListIter<'l, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}
