//! [`ListIter`]: CPython's list iterator over either list.

use std::marker::PhantomData;

use crate::list::Sequence;

/// An iterator over clones of a list's items with CPython's `listiterator` semantics.
///
/// It keeps only an index: each step reads the item at that index in the list *as it is now*
/// (one short lock-free read for `GilFreeList`, one short lock for `LockedList`), and
/// the iteration ends at the first index past the current end; once ended it stays ended. It
/// never fails, never blocks writers between steps and holds no epoch pin or lock while the
/// caller's loop body runs, so a long loop never delays memory reclamation. A list that
/// shifts under it (an `insert(0, ..)` or `pop(0)` by the loop body or another thread) makes
/// it see an item twice or skip one, exactly as in CPython.
pub struct ListIter<'l, T, L: ?Sized> {
    list: &'l L,
    next: usize,
    done: bool,
    _item: PhantomData<fn() -> T>,
}

impl<T, L: ?Sized> std::fmt::Debug for ListIter<'_, T, L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListIter")
            .field("next", &self.next)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<'l, T, L: ?Sized> ListIter<'l, T, L> {
    pub(crate) fn new(list: &'l L) -> Self {
        ListIter {
            list,
            next: 0,
            done: false,
            _item: PhantomData,
        }
    }
}

impl<T, L: Sequence<T> + ?Sized> Iterator for ListIter<'_, T, L> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        if self.done {
            return None;
        }
        let item = isize::try_from(self.next)
            .ok()
            .and_then(|i| self.list.get(i).ok());
        match item {
            Some(item) => {
                self.next += 1;
                Some(item)
            }
            None => {
                self.done = true;
                None
            }
        }
    }
}

impl<T, L: Sequence<T> + ?Sized> std::iter::FusedIterator for ListIter<'_, T, L> {}
