//! [`Sequence`]: the list API shared by every variant, so a VM can be generic over it.

use std::cmp::Ordering as CmpOrdering;

use crate::list::{PlainEq, Slice};
use crate::model::{infallible, EqModel};
use crate::{Error, GilFreeList, LockedList};

/// The list operations common to [`LockedList`] and [`GilFreeList`] (Python list semantics;
/// see [`crate::list`]).
///
/// Switching a VM from one variant to the other is a type change:
///
/// ```
/// use gilfree::{GilFreeList, LockedList, Sequence, Slice};
///
/// fn run<L: Sequence<i64> + Default>() -> Vec<i64> {
///     let l = L::default();
///     l.extend([5, 3, 8, 1]).unwrap();
///     l.sort_by(true, |a, b| Ok::<_, ()>(a < b)).unwrap(); // sort(reverse=True)
///     l.del_slice(Slice::range(0, 1)).unwrap(); // del l[0:1]
///     l.append(l.get(-1).unwrap() * 10).unwrap();
///     l.snapshot()
/// }
///
/// assert_eq!(run::<LockedList<i64>>(), vec![5, 3, 1, 10]);
/// assert_eq!(run::<GilFreeList<i64>>(), run::<LockedList<i64>>());
/// ```
pub trait Sequence<T> {
    /// Number of items.
    fn len(&self) -> usize;
    /// Whether the list is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// A tag that changes on every mutation.
    fn version(&self) -> u64;
    /// Whether the list is frozen.
    fn is_frozen(&self) -> bool;
    /// Makes the list immutable (one-way).
    fn freeze(&self);

    /// A clone of the item at `i` (negative counts from the end).
    fn get(&self, i: isize) -> Result<T, Error>;
    /// Calls `f` with a borrowed reference to the item at `i` (no refcount traffic).
    fn get_with<R>(&self, i: isize, f: impl FnOnce(&T) -> R) -> Result<R, Error>;
    /// An atomic snapshot of the items.
    fn snapshot(&self) -> Vec<T>;
    /// Python's `list[slice]`.
    fn get_slice(&self, s: Slice) -> Result<Vec<T>, Error>;
    /// Python's `x in list` under `m`.
    fn contains_in<M: EqModel<T>>(&self, m: &M, x: &T) -> Result<bool, Error<M::Error>>;
    /// Python's `index(x, start, stop)` under `m`.
    fn index_in<M: EqModel<T>>(
        &self,
        m: &M,
        x: &T,
        start: isize,
        stop: isize,
    ) -> Result<usize, Error<M::Error>>;
    /// Python's `count(x)` under `m`.
    fn count_in<M: EqModel<T>>(&self, m: &M, x: &T) -> Result<usize, Error<M::Error>>;
    /// Python's `list == other` under `m`.
    fn eq_in<M: EqModel<T>>(&self, m: &M, other: &Self) -> Result<bool, Error<M::Error>>;
    /// Python's lexicographic comparison under `m`, ordering the first unequal pair by `cmp`.
    fn compare_in<M: EqModel<T>>(
        &self,
        m: &M,
        other: &Self,
        cmp: impl FnMut(&T, &T) -> Result<Option<CmpOrdering>, M::Error>,
    ) -> Result<Option<CmpOrdering>, Error<M::Error>>;
    /// Python's `list.copy()`.
    fn copy(&self) -> Self
    where
        Self: Sized;
    /// Python's `self + other`.
    fn concat(&self, other: &Self) -> Self
    where
        Self: Sized;
    /// Python's `self * n`.
    fn repeat(&self, n: usize) -> Self
    where
        Self: Sized;

    /// Python's `append(x)`.
    fn append(&self, x: T) -> Result<(), Error>;
    /// Python's `extend(iterable)`.
    fn extend<I: IntoIterator<Item = T>>(&self, items: I) -> Result<(), Error>;
    /// Python's `insert(i, x)`.
    fn insert(&self, i: isize, x: T) -> Result<(), Error>;
    /// Python's `pop()`.
    fn pop(&self) -> Result<T, Error>;
    /// Python's `pop(i)`.
    fn pop_at(&self, i: isize) -> Result<T, Error>;
    /// Python's `list[i] = x`.
    fn set(&self, i: isize, x: T) -> Result<(), Error>;
    /// Python's `list[slice] = items`.
    fn set_slice<I: IntoIterator<Item = T>>(&self, s: Slice, items: I) -> Result<(), Error>;
    /// Python's `del list[slice]`.
    fn del_slice(&self, s: Slice) -> Result<(), Error>;
    /// Python's `remove(x)` under `m`.
    fn remove_in<M: EqModel<T>>(&self, m: &M, x: &T) -> Result<(), Error<M::Error>>;
    /// Python's `sort(key=key, reverse=reverse)` with fallible callbacks (`less` is `<`).
    fn sort_by_key<K, E>(
        &self,
        reverse: bool,
        key: impl FnMut(&T) -> Result<K, E>,
        less: impl FnMut(&K, &K) -> Result<bool, E>,
    ) -> Result<(), Error<E>>;
    /// Python's `sort(reverse=reverse)` with a fallible `<`.
    fn sort_by<E>(
        &self,
        reverse: bool,
        less: impl FnMut(&T, &T) -> Result<bool, E>,
    ) -> Result<(), Error<E>>;
    /// Stable sort by `T: Ord` (no script code; never `ModifiedDuringSort`).
    fn sort(&self) -> Result<(), Error>
    where
        T: Ord;
    /// Python's `reverse()`.
    fn reverse(&self) -> Result<(), Error>;
    /// Python's `clear()`.
    fn clear(&self) -> Result<(), Error>;
    /// Python's `self *= n`.
    fn repeat_in_place(&self, n: usize) -> Result<(), Error>;

    /// Python's `x in list` for `T: PartialEq`.
    fn contains(&self, x: &T) -> bool
    where
        T: PartialEq,
    {
        infallible(self.contains_in(&PlainEq, x))
    }
    /// Python's `index(x)` for `T: PartialEq`.
    fn index(&self, x: &T) -> Result<usize, Error>
    where
        T: PartialEq,
    {
        self.index_in(&PlainEq, x, 0, isize::MAX)
    }
    /// Python's `count(x)` for `T: PartialEq`.
    fn count(&self, x: &T) -> usize
    where
        T: PartialEq,
    {
        infallible(self.count_in(&PlainEq, x))
    }
    /// Python's `remove(x)` for `T: PartialEq`.
    fn remove(&self, x: &T) -> Result<(), Error>
    where
        T: PartialEq,
    {
        self.remove_in(&PlainEq, x)
    }
}

macro_rules! forward_sequence {
    ($List:ident, $($bound:tt)*) => {
        impl<T> Sequence<T> for $List<T>
        where
            T: Clone $($bound)*,
        {
            fn len(&self) -> usize {
                $List::len(self)
            }
            fn version(&self) -> u64 {
                $List::version(self)
            }
            fn is_frozen(&self) -> bool {
                $List::is_frozen(self)
            }
            fn freeze(&self) {
                $List::freeze(self)
            }
            fn get(&self, i: isize) -> Result<T, Error> {
                $List::get(self, i)
            }
            fn get_with<R>(&self, i: isize, f: impl FnOnce(&T) -> R) -> Result<R, Error> {
                $List::get_with(self, i, f)
            }
            fn snapshot(&self) -> Vec<T> {
                $List::snapshot(self)
            }
            fn get_slice(&self, s: Slice) -> Result<Vec<T>, Error> {
                $List::get_slice(self, s)
            }
            fn contains_in<M: EqModel<T>>(&self, m: &M, x: &T) -> Result<bool, Error<M::Error>> {
                $List::contains_in(self, m, x)
            }
            fn index_in<M: EqModel<T>>(
                &self,
                m: &M,
                x: &T,
                start: isize,
                stop: isize,
            ) -> Result<usize, Error<M::Error>> {
                $List::index_in(self, m, x, start, stop)
            }
            fn count_in<M: EqModel<T>>(&self, m: &M, x: &T) -> Result<usize, Error<M::Error>> {
                $List::count_in(self, m, x)
            }
            fn eq_in<M: EqModel<T>>(&self, m: &M, other: &Self) -> Result<bool, Error<M::Error>> {
                $List::eq_in(self, m, other)
            }
            fn compare_in<M: EqModel<T>>(
                &self,
                m: &M,
                other: &Self,
                cmp: impl FnMut(&T, &T) -> Result<Option<CmpOrdering>, M::Error>,
            ) -> Result<Option<CmpOrdering>, Error<M::Error>> {
                $List::compare_in(self, m, other, cmp)
            }
            fn copy(&self) -> Self {
                $List::copy(self)
            }
            fn concat(&self, other: &Self) -> Self {
                $List::concat(self, other)
            }
            fn repeat(&self, n: usize) -> Self {
                $List::repeat(self, n)
            }
            fn append(&self, x: T) -> Result<(), Error> {
                $List::append(self, x)
            }
            fn extend<I: IntoIterator<Item = T>>(&self, items: I) -> Result<(), Error> {
                $List::extend(self, items)
            }
            fn insert(&self, i: isize, x: T) -> Result<(), Error> {
                $List::insert(self, i, x)
            }
            fn pop(&self) -> Result<T, Error> {
                $List::pop(self)
            }
            fn pop_at(&self, i: isize) -> Result<T, Error> {
                $List::pop_at(self, i)
            }
            fn set(&self, i: isize, x: T) -> Result<(), Error> {
                $List::set(self, i, x)
            }
            fn set_slice<I: IntoIterator<Item = T>>(&self, s: Slice, items: I) -> Result<(), Error> {
                $List::set_slice(self, s, items)
            }
            fn del_slice(&self, s: Slice) -> Result<(), Error> {
                $List::del_slice(self, s)
            }
            fn remove_in<M: EqModel<T>>(&self, m: &M, x: &T) -> Result<(), Error<M::Error>> {
                $List::remove_in(self, m, x)
            }
            fn sort_by_key<K, E>(
                &self,
                reverse: bool,
                key: impl FnMut(&T) -> Result<K, E>,
                less: impl FnMut(&K, &K) -> Result<bool, E>,
            ) -> Result<(), Error<E>> {
                $List::sort_by_key(self, reverse, key, less)
            }
            fn sort_by<E>(
                &self,
                reverse: bool,
                less: impl FnMut(&T, &T) -> Result<bool, E>,
            ) -> Result<(), Error<E>> {
                $List::sort_by(self, reverse, less)
            }
            fn sort(&self) -> Result<(), Error>
            where
                T: Ord,
            {
                $List::sort(self)
            }
            fn reverse(&self) -> Result<(), Error> {
                $List::reverse(self)
            }
            fn clear(&self) -> Result<(), Error> {
                $List::clear(self)
            }
            fn repeat_in_place(&self, n: usize) -> Result<(), Error> {
                $List::repeat_in_place(self, n)
            }
        }
    };
}

forward_sequence!(GilFreeList, + Send + Sync + 'static);
forward_sequence!(LockedList,);
